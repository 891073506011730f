//! The witness's identity in its data directory: `key/witness.key` (the secret, mode 0600,
//! refused if group or others may read it) and `key/witness.vkey` (the public verifier key).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use stele_core::cosignature::{CosignatureVerifier, Cosigner};

use crate::files::{create_dir_durable, create_new, replace_file};
use crate::WitnessError;

/// Path of the secret key in data directory `dir`.
pub fn secret_key_path(dir: &Path) -> PathBuf {
    dir.join("key").join("witness.key")
}

/// Path of the public verifier key in data directory `dir`.
pub fn public_key_path(dir: &Path) -> PathBuf {
    dir.join("key").join("witness.vkey")
}

/// Loads the witness key of `dir`, generating it (named `name`) on first use. `name` must
/// match an existing key's name when given. Returns the key and whether it was just created.
///
/// # Errors
///
/// [`WitnessError::Key`] for a key others may read, a malformed key or a name mismatch;
/// [`WitnessError::Io`].
pub fn load_or_create(dir: &Path, name: Option<&str>) -> Result<(Cosigner, bool), WitnessError> {
    let path = secret_key_path(dir);
    if path.exists() {
        let key = load(&path)?;
        if let Some(n) = name.filter(|n| *n != key.name()) {
            return Err(WitnessError::Key {
                path,
                detail: format!("the witness key is named {:?}, not {n:?}", key.name()),
            });
        }
        return Ok((key, false));
    }
    let name = name.map_or_else(default_name, str::to_owned);
    let key = Cosigner::generate(&name).map_err(|e| WitnessError::Key {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    let key_dir = dir.join("key");
    create_dir_durable(&key_dir, 0o700)?;
    if !create_new(
        &path,
        format!("{}\n", key.to_signer_key()).as_bytes(),
        0o600,
    )? {
        // Another process created it between the check and here: use that one.
        return Ok((load(&path)?, false));
    }
    replace_file(
        &public_key_path(dir),
        format!("{}\n", key.verifier().to_verifier_key()).as_bytes(),
    )?;
    Ok((key, true))
}

/// The public key of the witness in `dir`, read from its secret key (the `.vkey` file is a
/// convenience copy).
///
/// # Errors
///
/// As [`load_or_create`] when the key exists; [`WitnessError::Io`] when it does not.
pub fn load_public(dir: &Path) -> Result<CosignatureVerifier, WitnessError> {
    Ok(load(&secret_key_path(dir))?.verifier())
}

fn load(path: &Path) -> Result<Cosigner, WitnessError> {
    let meta = std::fs::metadata(path).map_err(WitnessError::io("stat", path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(WitnessError::Key {
            path: path.to_path_buf(),
            detail: format!(
                "mode {mode:o} lets others read the private key; run `chmod 600 {}`",
                path.display()
            ),
        });
    }
    let text = std::fs::read_to_string(path).map_err(WitnessError::io("read", path))?;
    Cosigner::from_signer_key(text.trim()).map_err(|e| WitnessError::Key {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// `<hostname>/witness`, or `localhost/witness` when the host name is unusable.
fn default_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    stele_core::note::key_name_for_host(&host, "witness")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let (k, created) = load_or_create(dir.path(), Some("w.example/1")).unwrap();
        assert!(created);
        let mode = std::fs::metadata(secret_key_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = load_or_create(dir.path(), None).unwrap();
        assert!(!created);
        assert_eq!(again.verifier(), k.verifier());
        assert_eq!(load_public(dir.path()).unwrap(), k.verifier());
        let vkey = std::fs::read_to_string(public_key_path(dir.path())).unwrap();
        assert_eq!(vkey.trim(), k.verifier().to_verifier_key());
        assert!(load_or_create(dir.path(), Some("other")).is_err());
        std::fs::set_permissions(
            secret_key_path(dir.path()),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(load_or_create(dir.path(), None).is_err());
    }
}
