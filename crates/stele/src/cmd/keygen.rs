//! `stele keygen`: create a log's identity and signing key in a data directory, or a
//! standalone signer key file (e.g. for a witness).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use stele_core::note::NoteSigner;
use stele_store::datadir;

use crate::paths;

/// Arguments of `stele keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Data directory to create the log's key in [default: $STELE_DATA, $XDG_DATA_HOME/stele
    /// or ~/.local/share/stele].
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "name"])]
    data: Option<PathBuf>,
    /// The log's origin (key name) for a new data directory [default: <hostname>/stele].
    #[arg(long, value_name = "NAME", conflicts_with = "out")]
    origin: Option<String>,
    /// Write a standalone signer key file (mode 0600) instead; it must not exist yet.
    #[arg(long, value_name = "FILE", requires = "name")]
    out: Option<PathBuf>,
    /// Key name of the standalone key (with --out).
    #[arg(long, value_name = "NAME", requires = "out")]
    name: Option<String>,
}

/// Runs `stele keygen`; prints the new verifier key on stdout.
///
/// # Errors
/// A key that already exists, a bad key name, I/O errors (all exit 2).
pub fn run(args: KeygenArgs) -> Result<ExitCode> {
    let verifier = match (&args.out, &args.name) {
        (Some(out), Some(name)) => standalone(out, name)?,
        _ => {
            let dir = paths::data_dir(args.data.as_deref())?;
            if datadir::has_key(&dir) {
                bail!(
                    "data directory {} already has a signing key; refusing to replace it",
                    dir.display()
                );
            }
            let (signer, _) = datadir::open_or_init(&dir, args.origin.as_deref())
                .with_context(|| format!("creating a key in {}", dir.display()))?;
            eprintln!(
                "created the signing key of log {:?} in {}",
                signer.name(),
                dir.display()
            );
            signer.verifier().to_verifier_key()
        }
    };
    println!("{verifier}");
    Ok(ExitCode::SUCCESS)
}

/// Generates a key named `name` into a new file `out`, readable only by its owner.
fn standalone(out: &Path, name: &str) -> Result<String> {
    let signer =
        NoteSigner::generate(name).with_context(|| format!("cannot make a key named {name:?}"))?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| {
            format!(
                "creating key file {} (an existing file is never overwritten)",
                out.display()
            )
        })?;
    f.write_all(format!("{}\n", signer.to_signer_key()).as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing key file {}", out.display()))?;
    Ok(signer.verifier().to_verifier_key())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn standalone_key_is_private_loadable_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("witness.key");
        let vkey = standalone(&out, "witness.example/w1").unwrap();
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let signer = datadir::load_signer(&out).unwrap();
        assert_eq!(signer.verifier().to_verifier_key(), vkey);
        assert!(standalone(&out, "witness.example/w1").is_err());
        assert_eq!(
            datadir::load_signer(&out)
                .unwrap()
                .verifier()
                .to_verifier_key(),
            vkey
        );
    }
}
