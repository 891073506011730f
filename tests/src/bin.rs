//! Finding the `stele` binary under test, and building it when it is missing or stale.
//!
//! `CARGO_BIN_EXE_stele` exists only for tests of the `stele` package itself, and
//! `cargo test -p stele-tests` does not build other packages' binaries (nor does
//! `cargo test --workspace`, unless the `stele` package has integration tests of its own). A
//! test cannot simply run `cargo build -p stele` either: the `cargo test` that runs it holds
//! the lock of the target directory until every test has finished, so the nested build
//! would wait forever. So:
//!
//! 1. `STELE_BIN`, if set, names the binary to test.
//! 2. Otherwise `<target>/<profile>/stele` (what `cargo build -p stele` produces) is used if
//!    it is newer than every source file it is built from.
//! 3. Otherwise `cargo build -p stele` runs once, into a separate target directory
//!    (`<target>/e2e-bin`) whose lock nobody holds, and that binary is used. The first such
//!    build compiles every dependency again; run `cargo build -p stele` before the tests
//!    to avoid it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_path_buf()
}

/// The `stele` binary to test, built first if need be (once per test process).
///
/// # Panics
///
/// If the binary cannot be found or built.
pub fn stele_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(locate)
}

fn locate() -> PathBuf {
    if let Some(bin) = std::env::var_os("STELE_BIN") {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "STELE_BIN={} is not a file", bin.display());
        return bin;
    }
    // The test executable is <target>/<profile-dir>/deps/<name>-<hash>.
    let exe = std::env::current_exe().expect("path of the test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable inside <target>/<profile>/deps")
        .to_path_buf();
    let target = profile_dir
        .parent()
        .expect("profile directory inside the target directory")
        .to_path_buf();
    let profile_name = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("profile directory name")
        .to_owned();
    let built = profile_dir.join("stele");
    let newest_source = newest_source_mtime(&workspace_root());
    match mtime(&built) {
        Some(t) if t >= newest_source => return built,
        Some(_) => eprintln!(
            "stele-tests: {} is older than its sources; building a fresh one",
            built.display()
        ),
        None => eprintln!("stele-tests: {} is missing; building it", built.display()),
    }
    let own_target = target.join("e2e-bin");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("-p")
        .arg("stele")
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&own_target);
    match profile_name.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.arg("--profile").arg(other);
        }
    }
    let status = cmd.status().expect("running cargo build -p stele");
    assert!(status.success(), "cargo build -p stele failed: {status}");
    let bin = own_target.join(&profile_name).join("stele");
    assert!(
        bin.is_file(),
        "cargo build -p stele produced no {}",
        bin.display()
    );
    bin
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time among the files the binary is built from: the workspace
/// manifests and lock file, `schema/`, and each crate under `crates/` except its tests and
/// benches.
fn newest_source_mtime(root: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut consider = |p: &Path| {
        if let Some(t) = mtime(p) {
            newest = newest.max(t);
        }
    };
    consider(&root.join("Cargo.toml"));
    consider(&root.join("Cargo.lock"));
    let mut files = Vec::new();
    walk(&root.join("schema"), &mut files);
    if let Ok(crates) = std::fs::read_dir(root.join("crates")) {
        for krate in crates.flatten() {
            if let Ok(items) = std::fs::read_dir(krate.path()) {
                for item in items.flatten() {
                    let name = item.file_name();
                    if name != "tests" && name != "benches" && name != "target" {
                        walk(&item.path(), &mut files);
                    }
                }
            }
        }
    }
    for f in &files {
        consider(f);
    }
    newest
}

fn walk(path: &Path, out: &mut Vec<PathBuf>) {
    match std::fs::read_dir(path) {
        Ok(entries) => {
            for e in entries.flatten() {
                walk(&e.path(), out);
            }
        }
        Err(_) => {
            if path.is_file() {
                out.push(path.to_path_buf());
            }
        }
    }
}
