//! The remote verifier's memory: the last checkpoint it trusted, as the signed note, one file
//! per log. Replaced atomically so a crash leaves either the old or the new checkpoint.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use stele_core::checkpoint::{open_checkpoint, Checkpoint};
use stele_core::note::NoteVerifier;

/// The trusted checkpoint in `path`, re-verified with `verifier`, and its signed note (the
/// evidence should the log contradict it later); `None` if there is no file.
///
/// # Errors
/// An unreadable file, or one that does not hold a checkpoint signed by `verifier` (the state
/// belongs to another key, or was altered).
pub fn load(path: &Path, verifier: &NoteVerifier) -> Result<Option<(Checkpoint, String)>> {
    let note = match std::fs::read(path) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("reading the trusted checkpoint {}", path.display()))
        }
    };
    let (cp, _) = open_checkpoint(&note, verifier).with_context(|| {
        format!("{} does not hold a checkpoint signed by {} (remove it to trust this log afresh, or pass another --state)", path.display(), verifier.to_verifier_key())
    })?;
    // open_checkpoint parsed the note, so it is UTF-8.
    let note = String::from_utf8_lossy(&note).into_owned();
    Ok(Some((cp, note)))
}

/// Like [`load`], accepting a checkpoint signed by any of `keys` (the keys of a log's
/// rotation chain, oldest first: a checkpoint trusted before a rotation was signed by an
/// earlier key).
///
/// # Errors
/// As [`load`], when no key of `keys` signed it.
pub fn load_any(path: &Path, keys: &[NoteVerifier]) -> Result<Option<(Checkpoint, String)>> {
    let mut last = None;
    for key in keys.iter().rev() {
        match load(path, key) {
            Ok(found) => return Ok(found),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// Where the rotation statements a verifier followed are kept: beside the state file.
pub fn rotations_path(state: &Path) -> std::path::PathBuf {
    let mut p = state.as_os_str().to_owned();
    p.push(".rotations");
    std::path::PathBuf::from(p)
}

/// The rotation statements followed before (notes, as served), none if there is no file.
///
/// # Errors
/// An unreadable or malformed file.
pub fn load_rotations(state: &Path) -> Result<Vec<String>> {
    let path = rotations_path(state);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| {
            format!(
                "{} is not a JSON list of rotation statements",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Saves the rotation statements followed, so later runs keep trusting the newest key even
/// if the log stops serving them (and never go back to an older key).
///
/// # Errors
/// I/O errors.
pub fn save_rotations(state: &Path, statements: &[String]) -> Result<()> {
    let text = serde_json::to_string_pretty(statements).context("encoding the statements")?;
    save(&rotations_path(state), &format!("{text}\n"))
}

/// Replaces `path` with `note`: write a temporary file beside it, fsync, rename, fsync the
/// directory. Creates the directory if needed.
///
/// # Errors
/// I/O errors.
pub fn save(path: &Path, note: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(note.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("saving the trusted checkpoint to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use stele_core::checkpoint::sign_checkpoint;
    use stele_core::note::NoteSigner;
    use stele_core::Hash;

    use super::*;

    fn note(signer: &NoteSigner, size: u64) -> String {
        let cp = Checkpoint {
            origin: signer.name().into(),
            size,
            root: Hash([size as u8; 32]),
            extensions: vec![],
        };
        sign_checkpoint(&cp, signer).unwrap()
    }

    #[test]
    fn saved_checkpoint_loads_back_and_replaces_the_old_one() {
        let signer = NoteSigner::generate("example.com/log").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/example.com_log.checkpoint");
        assert_eq!(load(&path, &signer.verifier()).unwrap(), None);
        save(&path, &note(&signer, 5)).unwrap();
        assert_eq!(load(&path, &signer.verifier()).unwrap().unwrap().0.size, 5);
        save(&path, &note(&signer, 9)).unwrap();
        let (cp, saved) = load(&path, &signer.verifier()).unwrap().unwrap();
        assert_eq!((cp.size, saved), (9, note(&signer, 9)));
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "temporary files left behind: {leftovers:?}"
        );
    }

    #[test]
    fn state_signed_by_another_key_or_altered_is_refused() {
        let signer = NoteSigner::generate("example.com/log").unwrap();
        let other = NoteSigner::generate("example.com/log").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.checkpoint");
        save(&path, &note(&other, 5)).unwrap();
        assert!(load(&path, &signer.verifier()).is_err());
        save(&path, &note(&signer, 5).replacen("\n5\n", "\n6\n", 1)).unwrap();
        assert!(load(&path, &signer.verifier()).is_err());
    }
}
