//! Data-directory identity: the log's origin (`stele.json`) and its signing key
//! (`key/signer.key`, mode 0600; a key file that group or others can read is refused).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use stele_core::note::{NoteSigner, NoteVerifier};

use crate::error::{Result, StoreError};
use crate::layout::Layout;

/// Current data-directory format.
pub const FORMAT: u64 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct Identity {
    format: u64,
    origin: String,
}

/// Whether a signing key exists in `dir`.
pub fn has_key(dir: &Path) -> bool {
    Layout::new(dir).signer_key().exists()
}

/// Loads the signing key of `dir`, creating identity and key on first use.
///
/// `origin` is used only when the directory is new; afterwards it must match (or be `None`).
/// Returns the signer and whether it was just created.
///
/// # Errors
/// `Key` when the key file is readable by others, malformed, or names another origin; I/O.
pub fn open_or_init(dir: &Path, origin: Option<&str>) -> Result<(NoteSigner, bool)> {
    let layout = Layout::new(dir);
    crate::fsutil::create_dir_durable(dir)?;
    let id_path = layout.identity();
    let identity = match std::fs::read(&id_path) {
        Ok(b) => {
            let id: Identity = serde_json::from_slice(&b)
                .map_err(|e| StoreError::corrupt(&id_path, None, e.to_string()))?;
            if id.format != FORMAT {
                return Err(StoreError::corrupt(
                    &id_path,
                    None,
                    format!(
                        "data format {} is not supported (this build reads {FORMAT})",
                        id.format
                    ),
                ));
            }
            if let Some(o) = origin {
                if o != id.origin {
                    return Err(StoreError::Key {
                        path: id_path,
                        detail: format!(
                            "this data directory belongs to log {:?}, not {o:?}",
                            id.origin
                        ),
                    });
                }
            }
            id
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = Identity {
                format: FORMAT,
                origin: origin.map(str::to_string).unwrap_or_else(default_origin),
            };
            let bytes = serde_json::to_vec_pretty(&id)
                .map_err(|e| StoreError::corrupt(&id_path, None, e.to_string()))?;
            crate::fsutil::replace_file(&id_path, &bytes)?;
            id
        }
        Err(e) => {
            return Err(StoreError::Io {
                op: "read",
                path: id_path,
                source: e,
            })
        }
    };
    if layout.signer_key().exists() {
        let signer = load_signer(&layout.signer_key())?;
        if signer.name() != identity.origin {
            return Err(StoreError::Key {
                path: layout.signer_key(),
                detail: format!(
                    "key is named {:?} but the log's origin is {:?}",
                    signer.name(),
                    identity.origin
                ),
            });
        }
        return Ok((signer, false));
    }
    let signer = NoteSigner::generate(&identity.origin).map_err(|e| StoreError::Key {
        path: layout.signer_key(),
        detail: e.to_string(),
    })?;
    write_signer(&layout, &signer)?;
    Ok((signer, true))
}

/// Writes `signer` as the directory's key (mode 0600, never overwriting) and its verifier key.
///
/// # Errors
/// `Key` if a key already exists; I/O errors.
pub fn write_signer(layout: &Layout, signer: &NoteSigner) -> Result<()> {
    let kd = layout.key_dir();
    crate::fsutil::create_dir_durable(&kd)?;
    std::fs::set_permissions(&kd, std::fs::Permissions::from_mode(0o700))
        .map_err(StoreError::io("chmod", &kd))?;
    let path = layout.signer_key();
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                StoreError::Key {
                    path: path.clone(),
                    detail: "a signing key already exists; refusing to overwrite it".into(),
                }
            } else {
                StoreError::Io {
                    op: "create",
                    path: path.clone(),
                    source: e,
                }
            }
        })?;
    f.write_all(format!("{}\n", signer.to_signer_key()).as_bytes())
        .map_err(StoreError::io("write", &path))?;
    f.sync_all().map_err(StoreError::io("fsync", &path))?;
    crate::fsutil::replace_file(
        &layout.verifier_key(),
        format!("{}\n", signer.verifier().to_verifier_key()).as_bytes(),
    )?;
    crate::fsutil::sync_dir(&kd)
}

/// Loads a signer key file, refusing one that group or others may read.
///
/// # Errors
/// `Key` for unsafe permissions or a malformed key; I/O errors.
pub fn load_signer(path: &Path) -> Result<NoteSigner> {
    let meta = std::fs::metadata(path).map_err(StoreError::io("stat", path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StoreError::Key {
            path: path.to_path_buf(),
            detail: format!(
                "mode {mode:o} lets others read the private key; run `chmod 600 {}`",
                path.display()
            ),
        });
    }
    let text = std::fs::read_to_string(path).map_err(StoreError::io("read", path))?;
    NoteSigner::from_signer_key(text.trim()).map_err(|e| StoreError::Key {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Loads the verifier key of a data directory.
///
/// # Errors
/// `Key` for a malformed key; I/O errors.
pub fn load_verifier(dir: &Path) -> Result<NoteVerifier> {
    let path = Layout::new(dir).verifier_key();
    let text = std::fs::read_to_string(&path).map_err(StoreError::io("read", &path))?;
    NoteVerifier::from_verifier_key(text.trim()).map_err(|e| StoreError::Key {
        path,
        detail: e.to_string(),
    })
}

/// `<hostname>/stele`, or `localhost/stele` when the host name is unusable as a key name.
fn default_origin() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    stele_core::note::key_name_for_host(&host, "stele")
}
