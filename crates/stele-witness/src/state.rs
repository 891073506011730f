//! The witness's durable state and its evidence files, under its data directory:
//!
//! ```text
//! DATA/state/<origin hash>.checkpoint     latest cosigned checkpoint of each log (the served note)
//! DATA/misbehaviour/<origin hash 16>-<content hash 16>.proof   proofs of misbehaviour
//! DATA/misbehaviour/<origin hash 16>-<content hash 16>.alarm   unprovable suspicions
//! ```
//!
//! `<origin hash>` is the lowercase hex SHA-256 of the origin (as in the monitoring URL).
//! The state file is replaced atomically and durably (write, fsync, rename, fsync directory)
//! before a cosignature is returned, so after a crash or restart the witness never forgets a
//! checkpoint it cosigned and so never cosigns a rollback. Evidence files are named by their
//! content's hash, so a repeated request does not add files, and at most
//! [`MAX_EVIDENCE_FILES`] are kept (a misbehaving log could otherwise fill the disk).

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use stele_core::checkpoint::Checkpoint;
use stele_core::hash::Hash;
use stele_core::note::{Note, NoteVerifier};
use stele_core::witness::origin_hash;

use crate::check::Latest;
use crate::files::{create_dir_durable, create_new, replace_file};
use crate::WitnessError;

/// Most files kept in `DATA/misbehaviour/`.
pub const MAX_EVIDENCE_FILES: usize = 10_000;

/// The state file of `origin` in data directory `dir`.
pub fn state_path(dir: &Path, origin: &str) -> PathBuf {
    dir.join("state")
        .join(format!("{}.checkpoint", origin_hash(origin)))
}

/// The evidence directory of data directory `dir`.
pub fn evidence_dir(dir: &Path) -> PathBuf {
    dir.join("misbehaviour")
}

/// Loads the latest cosigned checkpoint of `origin`, re-verified with the log's `keys`.
///
/// # Errors
///
/// [`WitnessError::State`] if the file does not hold a checkpoint of `origin` signed by one of
/// `keys` (the log key was changed, or the file altered): the witness refuses to start rather
/// than forget what it cosigned.
pub(crate) fn load(
    dir: &Path,
    origin: &str,
    keys: &[NoteVerifier],
) -> Result<Option<Latest>, WitnessError> {
    let path = state_path(dir, origin);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(WitnessError::io("read", &path)(e)),
    };
    let bad = |detail: String| WitnessError::State {
        path: path.clone(),
        detail,
    };
    let note = Note::parse(&bytes).map_err(|e| bad(e.to_string()))?;
    if !keys.iter().any(|k| note.verified_by(k).is_ok()) {
        return Err(bad(format!(
            "not signed by any configured key of log {origin:?}; if the log's key really changed, move this file away (the witness then starts afresh for this log)"
        )));
    }
    let checkpoint = Checkpoint::parse(&note.text).map_err(|e| bad(e.to_string()))?;
    if checkpoint.origin != origin {
        return Err(bad(format!(
            "holds a checkpoint of {:?}, not {origin:?}",
            checkpoint.origin
        )));
    }
    let note = String::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
    Ok(Some(Latest { checkpoint, note }))
}

/// Durably replaces the state of `origin` with `note`.
///
/// # Errors
///
/// [`WitnessError::Io`].
pub(crate) fn save(dir: &Path, origin: &str, note: &str) -> Result<(), WitnessError> {
    let path = state_path(dir, origin);
    if let Some(parent) = path.parent() {
        create_dir_durable(parent, 0o755)?;
    }
    replace_file(&path, note.as_bytes())
}

/// Writes an evidence file (`ext` is `proof` or `alarm`) unless the same content exists or
/// the directory is full. Returns its path, or `None` when nothing was written because the
/// directory is full.
///
/// # Errors
///
/// [`WitnessError::Io`].
pub(crate) fn save_evidence(
    dir: &Path,
    origin: &str,
    ext: &str,
    content: &str,
) -> Result<Option<PathBuf>, WitnessError> {
    let edir = evidence_dir(dir);
    create_dir_durable(&edir, 0o755)?;
    let name = format!(
        "{}-{}.{ext}",
        origin_hash(origin).get(..16).unwrap_or_default(),
        Hash(Sha256::digest(content.as_bytes()).into())
            .to_hex()
            .get(..16)
            .unwrap_or_default()
    );
    let path = edir.join(name);
    if path.exists() {
        return Ok(Some(path));
    }
    let count = std::fs::read_dir(&edir)
        .map_err(WitnessError::io("list", &edir))?
        .count();
    if count >= MAX_EVIDENCE_FILES {
        return Ok(None);
    }
    create_new(&path, content.as_bytes(), 0o644)?;
    Ok(Some(path))
}
