//! Signing-key rotation of a data directory.
//!
//! ```text
//! key/signer.key          the current signing key (0600)
//! key/verifier.vkey       its verifier key
//! key/rotations.json      {"format": 1, "rotations": [RotationRecord, …]}, oldest first
//! key/retired/<id>.key    a retired signing key (0600), kept only during its transition window
//! key/rotate.pending      a requested rotation: the new key (0600) and the window
//! ```
//!
//! A rotation is requested by writing `key/rotate.pending` ([`request_rotation`]); whoever
//! has the log open carries it out ([`crate::Store::rotate_key`]) on the writer thread:
//!
//! 1. the caller's record of the rotation (the `admin.key.rotate` event) is appended and made
//!    durable, as an idempotent entry (a retry after a crash finds it);
//! 2. the statement (`stele_core::rotation`) is signed by the old and new keys, with
//!    `from_size` = the tree size that holds that record;
//! 3. the old key goes to `key/retired/<id>.key`, the record to `key/rotations.json`, the new
//!    key replaces `key/signer.key` and `key/verifier.vkey`, and the pending file goes — each
//!    step durable and safe to redo, so a crash anywhere leaves a state the next open
//!    (which sees the pending file again) completes;
//! 4. a checkpoint is published at once, signed by the new key and, until the window ends,
//!    by the old one too (and by any older key whose window is still open).
//!
//! Once a window ends the writer stops signing with that key and deletes its private key
//! file; its verifier key stays in `rotations.json` forever, so old checkpoints (and the
//! last one signed by the old key alone, kept in the record) stay verifiable.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stele_core::note::{NoteSigner, NoteVerifier};
use stele_core::timestamp::Timestamp;

use crate::error::{Result, StoreError};
use crate::layout::Layout;

/// Format of `key/rotations.json`.
pub const FORMAT: u64 = 1;

/// One rotation, as kept in `key/rotations.json` and served to verifiers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationRecord {
    /// The retired verifier key.
    pub old_key: String,
    /// The verifier key that signs from `from_size` on.
    pub new_key: String,
    /// The first tree size signed by the new key: the size that holds `event_index`.
    pub from_size: u64,
    /// Log index of the record of the rotation (the `admin.key.rotate` event).
    pub event_index: u64,
    /// When the rotation was carried out.
    pub rotated: Timestamp,
    /// Until when checkpoints are signed by the old key too.
    pub window_ends: Timestamp,
    /// The statement: a `stele-key-rotation/v1` note signed by the old and new keys.
    pub statement: String,
    /// The latest checkpoint signed before the rotation (by the old key), kept so that an
    /// offline verification checks a checkpoint of every era.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_checkpoint: Option<String>,
}

impl RotationRecord {
    /// The retired key.
    ///
    /// # Errors
    /// `Key` if the stored key string is malformed.
    pub fn old_verifier(&self, layout: &Layout) -> Result<NoteVerifier> {
        parse_vkey(layout, &self.old_key)
    }

    /// The key that took over.
    ///
    /// # Errors
    /// `Key` if the stored key string is malformed.
    pub fn new_verifier(&self, layout: &Layout) -> Result<NoteVerifier> {
        parse_vkey(layout, &self.new_key)
    }
}

fn parse_vkey(layout: &Layout, s: &str) -> Result<NoteVerifier> {
    NoteVerifier::from_verifier_key(s).map_err(|e| StoreError::Key {
        path: layout.rotations(),
        detail: e.to_string(),
    })
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotationsFile {
    format: u64,
    rotations: Vec<RotationRecord>,
}

/// Every rotation of data directory `dir`, oldest first (none if it never rotated).
///
/// # Errors
/// `Corrupt` for a malformed file; I/O errors.
pub fn load_rotations(dir: &Path) -> Result<Vec<RotationRecord>> {
    let path = Layout::new(dir).rotations();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("read", &path)(e)),
    };
    let file: RotationsFile = serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::corrupt(&path, None, e.to_string()))?;
    if file.format != FORMAT {
        return Err(StoreError::corrupt(
            &path,
            None,
            format!(
                "format {} is not supported (this build reads {FORMAT})",
                file.format
            ),
        ));
    }
    Ok(file.rotations)
}

/// Adds `record` (replacing one for the same new key: a redone rotation) and saves.
fn save_record(layout: &Layout, record: &RotationRecord) -> Result<()> {
    let mut rotations = load_rotations(layout.root())?;
    rotations.retain(|r| r.new_key != record.new_key);
    rotations.push(record.clone());
    let mut bytes = serde_json::to_vec_pretty(&RotationsFile {
        format: FORMAT,
        rotations,
    })
    .map_err(|e| StoreError::corrupt(layout.rotations(), None, e.to_string()))?;
    bytes.push(b'\n');
    crate::fsutil::replace_file(&layout.rotations(), &bytes)
}

/// A requested rotation: the new key and how long the old key keeps co-signing.
pub struct PendingRotation {
    /// The new signing key.
    pub signer: NoteSigner,
    /// The transition window.
    pub window: Duration,
}

impl std::fmt::Debug for PendingRotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRotation")
            .field("new_key", &self.signer.verifier().to_verifier_key())
            .field("window", &self.window)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingFile {
    /// The new signer key string (secret).
    signer: String,
    window_seconds: u64,
}

/// Requests a rotation of `dir`'s signing key: generates a new key for the log's origin
/// (`origin`) and writes it, with the window, to `key/rotate.pending` (mode 0600). Returns
/// the new verifier key. Nothing is rotated until the log is opened by a server (which
/// notices within a second) or by `stele key rotate` itself.
///
/// # Errors
/// `Key` when a rotation is already pending; I/O errors.
pub fn request_rotation(dir: &Path, origin: &str, window: Duration) -> Result<NoteVerifier> {
    let layout = Layout::new(dir);
    let path = layout.pending_rotation();
    let signer = NoteSigner::generate(origin).map_err(|e| StoreError::Key {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    let body = serde_json::to_vec(&PendingFile {
        signer: signer.to_signer_key(),
        window_seconds: window.as_secs(),
    })
    .map_err(|e| StoreError::corrupt(&path, None, e.to_string()))?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                StoreError::Key {
                    path: path.clone(),
                    detail: "a key rotation is already pending (it is carried out when the log is next opened, or within a second by a running server)".into(),
                }
            } else {
                StoreError::io("create", &path)(e)
            }
        })?;
    f.write_all(&body)
        .and_then(|()| f.sync_all())
        .map_err(StoreError::io("write", &path))?;
    crate::fsutil::sync_dir(&layout.key_dir())?;
    Ok(signer.verifier())
}

/// The pending rotation of `dir`, if one was requested and not yet carried out.
///
/// # Errors
/// `Key` for a file that group or others can read, or that is malformed (its content is
/// never quoted); I/O errors.
pub fn pending_rotation(dir: &Path) -> Result<Option<PendingRotation>> {
    let path = Layout::new(dir).pending_rotation();
    if !path.exists() {
        return Ok(None);
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path)
        .map_err(StoreError::io("stat", &path))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(StoreError::Key {
            path,
            detail: format!("mode {mode:o} lets others read the new private key"),
        });
    }
    let bytes = std::fs::read(&path).map_err(StoreError::io("read", &path))?;
    let file: PendingFile = serde_json::from_slice(&bytes).map_err(|_| StoreError::Key {
        path: path.clone(),
        detail: "not a pending rotation (malformed JSON)".into(),
    })?;
    let signer = NoteSigner::from_signer_key(&file.signer).map_err(|e| StoreError::Key {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    Ok(Some(PendingRotation {
        signer,
        window: Duration::from_secs(file.window_seconds),
    }))
}

/// A retired key that still co-signs checkpoints.
pub(crate) struct Cosigning {
    pub signer: NoteSigner,
    /// Until when (ns since the Unix epoch).
    pub until_ns: i64,
}

/// The retired keys whose window is open at `now_ns` (their private key files are loaded);
/// the private key files of those whose window has ended are deleted.
///
/// # Errors
/// A retired key file that cannot be read or is malformed; I/O errors.
pub(crate) fn cosigners(
    layout: &Layout,
    records: &[RotationRecord],
    now_ns: i64,
) -> Result<Vec<Cosigning>> {
    let mut out = Vec::new();
    for r in records {
        let old = r.old_verifier(layout)?;
        let path = layout.retired_signer(old.key_id());
        let until_ns = r.window_ends.unix_nanos();
        if until_ns <= now_ns {
            forget(&path)?;
            continue;
        }
        if !path.exists() {
            tracing::warn!(file = %path.display(), "a retired key's window is open but its key file is gone; it no longer co-signs");
            continue;
        }
        let signer = crate::datadir::load_signer(&path)?;
        if signer.verifier() != old {
            return Err(StoreError::Key {
                path,
                detail: format!("holds another key than {}", r.old_key),
            });
        }
        out.push(Cosigning { signer, until_ns });
    }
    Ok(out)
}

/// Deletes a retired key file whose window has ended.
pub(crate) fn forget(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            tracing::info!(file = %path.display(), "transition window over: deleted the retired signing key");
            if let Some(dir) = path.parent() {
                crate::fsutil::sync_dir(dir)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove", path)(e)),
    }
}

/// Step 3 of a rotation: every file, each write durable and safe to redo.
pub(crate) fn persist(
    layout: &Layout,
    old: &NoteSigner,
    new: &NoteSigner,
    record: &RotationRecord,
    keep_old: bool,
) -> Result<()> {
    let retired = layout.retired_dir();
    crate::fsutil::create_dir_durable(&retired)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&retired, std::fs::Permissions::from_mode(0o700))
            .map_err(StoreError::io("chmod", &retired))?;
    }
    if keep_old {
        crate::fsutil::replace_private_file(
            &layout.retired_signer(old.key_id()),
            format!("{}\n", old.to_signer_key()).as_bytes(),
        )?;
    }
    save_record(layout, record)?;
    crate::fsutil::replace_private_file(
        &layout.signer_key(),
        format!("{}\n", new.to_signer_key()).as_bytes(),
    )?;
    crate::fsutil::replace_file(
        &layout.verifier_key(),
        format!("{}\n", new.verifier().to_verifier_key()).as_bytes(),
    )?;
    forget_pending(layout)
}

fn forget_pending(layout: &Layout) -> Result<()> {
    let path = layout.pending_rotation();
    match std::fs::remove_file(&path) {
        Ok(()) => crate::fsutil::sync_dir(&layout.key_dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove", &path)(e)),
    }
}

/// Finishes a rotation whose every step but removing the pending file was done (the current
/// key already is the pending one): returns its record.
pub(crate) fn already_done(layout: &Layout, new: &NoteVerifier) -> Result<Option<RotationRecord>> {
    let key = new.to_verifier_key();
    let found = load_rotations(layout.root())?
        .into_iter()
        .find(|r| r.new_key == key);
    if found.is_some() {
        forget_pending(layout)?;
    }
    Ok(found)
}

/// A rotation handed to the writer thread.
pub(crate) struct RotateRequest {
    /// The new key.
    pub signer: NoteSigner,
    /// How long the old key keeps co-signing.
    pub window: Duration,
    /// The caller's record of the rotation, with an idempotency key.
    pub entry: crate::types::NewEntry,
    /// Where the answer goes.
    pub reply: tokio::sync::oneshot::Sender<Result<RotationRecord>>,
}

type RotateReply = tokio::sync::oneshot::Sender<Result<RotationRecord>>;

impl crate::writer::Writer {
    /// Carries out a rotation (steps 1–4 of the module documentation). Returns the reply
    /// channel with the outcome.
    pub(crate) fn rotate(&mut self, req: RotateRequest) -> (RotateReply, Result<RotationRecord>) {
        let RotateRequest {
            signer,
            window,
            entry,
            reply,
        } = req;
        (reply, self.rotate_to(signer, window, entry))
    }

    fn rotate_to(
        &mut self,
        new: NoteSigner,
        window: Duration,
        entry: crate::types::NewEntry,
    ) -> Result<RotationRecord> {
        use std::sync::atomic::Ordering;
        let pending = self.layout.pending_rotation();
        let key_err = |detail: String| StoreError::Key {
            path: pending.clone(),
            detail,
        };
        if self.shared.poisoned.load(Ordering::Acquire) {
            return Err(StoreError::Poisoned);
        }
        if new.verifier() == self.signer.verifier() {
            // Every step was done but removing the pending file.
            return already_done(&self.layout, &new.verifier())?.ok_or_else(|| {
                key_err(
                    "the new key already is the log's key, but no rotation to it is recorded"
                        .into(),
                )
            });
        }
        if new.name() != self.signer.name() {
            return Err(key_err(format!(
                "the new key is named {:?}, but the log's origin is {:?}",
                new.name(),
                self.signer.name()
            )));
        }
        if entry.key.is_none() {
            return Err(StoreError::InvalidArgument(
                "the record of a key rotation needs an idempotency key".into(),
            ));
        }
        // 1. The record, durable (a retry after a crash finds the stored one).
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let bytes = entry.data.len();
        self.commit_group(vec![crate::writer::AppendRequest {
            entries: vec![entry],
            bytes,
            reply: tx,
        }]);
        // Its answer comes once the fsync thread has made it durable.
        self.drain();
        let appended = rx.try_recv().map_err(|_| StoreError::Closed)??;
        let index = appended
            .first()
            .map(|a| a.index)
            .ok_or_else(|| StoreError::Index("the rotation record was not appended".into()))?;
        if self.shared.poisoned.load(Ordering::Acquire) {
            return Err(StoreError::Poisoned);
        }
        // 2. The statement.
        let old = self.signer.clone();
        let from_size = index + 1;
        let statement = stele_core::rotation::KeyRotation {
            origin: old.name().to_owned(),
            new_key: new.verifier(),
            from_size,
        }
        .sign(&old, &new)
        .map_err(|e| key_err(e.to_string()))?;
        let now_ns = (self.clock)();
        let until_ns = now_ns.saturating_add(i64::try_from(window.as_nanos()).unwrap_or(i64::MAX));
        let record = RotationRecord {
            old_key: old.verifier().to_verifier_key(),
            new_key: new.verifier().to_verifier_key(),
            from_size,
            event_index: index,
            rotated: Timestamp::from_unix_nanos(now_ns),
            window_ends: Timestamp::from_unix_nanos(until_ns),
            statement,
            old_checkpoint: self
                .shared
                .checkpoint
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|c| c.note.clone()),
        };
        // 3. The files.
        let keep_old = !window.is_zero();
        persist(&self.layout, &old, &new, &record, keep_old)?;
        // 4. Sign with the new key (and the old one during the window) from now on.
        *self
            .shared
            .verifier_key
            .write()
            .unwrap_or_else(|p| p.into_inner()) = record.new_key.clone();
        self.signer = new;
        if keep_old {
            self.cosigners.push(Cosigning {
                signer: old,
                until_ns,
            });
        }
        self.publish_checkpoint()?;
        tracing::info!(old = %record.old_key, new = %record.new_key, from_size, "rotated the log's signing key");
        Ok(record)
    }
}
