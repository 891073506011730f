//! The token file and the first-start admin token.
//!
//! ```text
//! DATA/auth/tokens.json   {"format": 1, "tokens": [TokenRecord, …]}   mode 0600
//! DATA/auth/LOCK          advisory lock held while the file is rewritten
//! DATA/admin.token        the first admin token, written once at the first start (0600)
//! ```
//!
//! Every change takes the lock, reads the file, changes it, writes `tokens.json.tmp`, fsyncs
//! it, renames it over `tokens.json` and fsyncs the directory: after a crash the file is the
//! old one or the new one, never a mix. Readers (the server) do not take the lock: a rename
//! is atomic, so they always see a whole file.
//!
//! A running server notices changes made by another process (the offline CLI) through
//! [`FileStamp`]: device, inode, size and modification time of the file. Each change renames a
//! new inode into place and every change makes the file longer (records are only added, and
//! revocation only adds fields), so the stamp differs after every change.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stele_core::timestamp::Timestamp;

use crate::model::{Credential, NewToken, Role, TokenRecord};
use crate::token::{Token, TokenId};
use crate::AuthError;

/// The token file format this version reads and writes.
pub const FORMAT: u64 = 1;
/// Where the first admin token is written, relative to the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// Who created the first admin token.
pub const BOOTSTRAP: &str = "bootstrap";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBody {
    format: u64,
    tokens: Vec<TokenRecord>,
}

/// Identity of one version of the token file (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl FileStamp {
    fn of(m: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        }
    }
}

/// The tokens of one data directory.
#[derive(Clone, Debug)]
pub struct TokenStore {
    data: PathBuf,
    /// `DATA/auth/tokens.json`, built once: the server stats it on every request.
    tokens: PathBuf,
}

/// The tokens as read at one moment, with the stamp of the file they were read from (`None`
/// when there is no file yet).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every record, revoked and expired ones included, in creation order.
    pub tokens: Vec<TokenRecord>,
    /// The file's stamp.
    pub stamp: Option<FileStamp>,
}

impl TokenStore {
    /// The token store of data directory `data` (nothing is touched yet).
    pub fn new(data: &Path) -> TokenStore {
        TokenStore {
            data: data.to_path_buf(),
            tokens: data.join("auth").join("tokens.json"),
        }
    }

    /// `DATA/auth`.
    pub fn dir(&self) -> PathBuf {
        self.data.join("auth")
    }

    /// `DATA/auth/tokens.json`.
    pub fn path(&self) -> PathBuf {
        self.tokens.clone()
    }

    /// `DATA/admin.token`.
    pub fn admin_token_path(&self) -> PathBuf {
        self.data.join(ADMIN_TOKEN_FILE)
    }

    /// The current stamp of the file, `None` if there is none.
    ///
    /// # Errors
    /// I/O errors other than the file being absent.
    pub fn stamp(&self) -> Result<Option<FileStamp>, AuthError> {
        match std::fs::metadata(&self.tokens) {
            Ok(m) => Ok(Some(FileStamp::of(&m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AuthError::io("stat", self.path())(e)),
        }
    }

    /// Reads every record. The stamp is taken from the open file, so it is the stamp of
    /// exactly the content returned.
    ///
    /// # Errors
    /// I/O errors; [`AuthError::Malformed`] or [`AuthError::UnsupportedFormat`].
    pub fn load(&self) -> Result<Snapshot, AuthError> {
        let path = self.path();
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Snapshot::default()),
            Err(e) => return Err(AuthError::io("open", path)(e)),
        };
        let meta = f.metadata().map_err(AuthError::io("stat", &path))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)
            .map_err(AuthError::io("read", &path))?;
        let format = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("format").and_then(serde_json::Value::as_u64));
        if let Some(found) = format.filter(|f| *f != FORMAT) {
            return Err(AuthError::UnsupportedFormat {
                path,
                found,
                supported: FORMAT,
            });
        }
        let body: FileBody = serde_json::from_slice(&bytes).map_err(|e| AuthError::Malformed {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut ids: Vec<&TokenId> = body.tokens.iter().map(|t| &t.id).collect();
        ids.sort();
        if let Some(w) = ids.windows(2).find(|w| w.first() == w.get(1)) {
            return Err(AuthError::Malformed {
                path,
                message: format!(
                    "token id {} appears twice",
                    w.first().map_or("", |i| i.as_str())
                ),
            });
        }
        Ok(Snapshot {
            tokens: body.tokens,
            stamp: Some(FileStamp::of(&meta)),
        })
    }

    /// Creates a token as `spec` asks, recorded as created by `by` at `now`. The token text
    /// is returned here and nowhere else; only its digest is stored.
    ///
    /// # Errors
    /// [`AuthError::InvalidSpec`] for a spec that breaks a rule of its role; I/O errors.
    pub fn create(
        &self,
        spec: &NewToken,
        by: &str,
        now: Timestamp,
    ) -> Result<(Token, TokenRecord), AuthError> {
        let role = spec.validate(now)?;
        if spec.certificate_sha256.is_some() {
            return Err(AuthError::InvalidSpec(
                "a certificate principal gets no token; register it with register_certificate"
                    .to_owned(),
            ));
        }
        self.update(|tokens| {
            let token = loop {
                let t = Token::generate()?;
                if tokens.iter().all(|r| &r.id != t.id()) {
                    break t;
                }
            };
            let record = TokenRecord {
                id: token.id().clone(),
                role,
                tenants: spec.tenants.clone(),
                source: spec.source.clone(),
                label: spec.label.clone(),
                created: now,
                created_by: by.to_owned(),
                expires: spec.expires,
                revoked: None,
                revoked_by: None,
                credential: Credential::Token {
                    sha256: token.digest(),
                },
            };
            tokens.push(record.clone());
            Ok((token, record))
        })
    }

    /// Registers a principal authenticated by the client certificate whose fingerprint is
    /// `spec.certificate_sha256` (mTLS), recorded as created by `by` at `now`. Its record
    /// lives beside the tokens (listed, expired and revoked the same way) under a fresh id.
    ///
    /// # Errors
    /// [`AuthError::InvalidSpec`] without a fingerprint, for a spec that breaks a rule of its
    /// role, or when a usable principal is already bound to that certificate (one
    /// certificate, one role); I/O errors.
    pub fn register_certificate(
        &self,
        spec: &NewToken,
        by: &str,
        now: Timestamp,
    ) -> Result<TokenRecord, AuthError> {
        let role = spec.validate(now)?;
        let Some(fingerprint) = spec.certificate_sha256 else {
            return Err(AuthError::InvalidSpec(
                "a certificate principal needs the certificate's SHA-256 fingerprint".to_owned(),
            ));
        };
        self.update(|tokens| {
            if let Some(other) = tokens.iter().find(|r| {
                r.credential
                    == (Credential::Certificate {
                        sha256: fingerprint,
                    })
                    && r.status(now) == crate::model::Status::Active
            }) {
                return Err(AuthError::InvalidSpec(format!(
                    "certificate {fingerprint} is already bound to principal {} (revoke it first)",
                    other.id
                )));
            }
            let id = loop {
                let id = TokenId::random()?;
                if tokens.iter().all(|r| r.id != id) {
                    break id;
                }
            };
            let record = TokenRecord {
                id,
                role,
                tenants: spec.tenants.clone(),
                source: spec.source.clone(),
                label: spec.label.clone(),
                created: now,
                created_by: by.to_owned(),
                expires: spec.expires,
                revoked: None,
                revoked_by: None,
                credential: Credential::Certificate {
                    sha256: fingerprint,
                },
            };
            tokens.push(record.clone());
            Ok(record)
        })
    }

    /// Revokes token `id` (by `by`, at `now`). Revoking a revoked token changes nothing and
    /// answers `false`.
    ///
    /// # Errors
    /// [`AuthError::UnknownId`]; I/O errors.
    pub fn revoke(
        &self,
        id: &TokenId,
        by: &str,
        now: Timestamp,
    ) -> Result<(TokenRecord, bool), AuthError> {
        self.update(|tokens| {
            let record = tokens
                .iter_mut()
                .find(|r| &r.id == id)
                .ok_or_else(|| AuthError::UnknownId(id.to_string()))?;
            if record.revoked.is_some() {
                return Ok((record.clone(), false));
            }
            record.revoked = Some(now);
            record.revoked_by = Some(by.to_owned());
            Ok((record.clone(), true))
        })
    }

    /// On a log's first start with authentication: unless an admin token was ever issued
    /// (revoked ones count, so revoking every admin token is not undone by a restart), creates
    /// one, writes it to `DATA/admin.token` (mode 0600) and returns it.
    ///
    /// `admin.token` is written before the record: a crash between the two leaves no record,
    /// so the next start makes a new token and overwrites the file.
    ///
    /// # Errors
    /// I/O errors.
    pub fn bootstrap_admin(&self, now: Timestamp) -> Result<Option<Token>, AuthError> {
        if !self.data.is_dir() {
            return Err(AuthError::NoDataDir(self.data.clone()));
        }
        // Cheap check without the lock first: almost every start finds one.
        if self.load()?.tokens.iter().any(|t| t.role == Role::Admin) {
            return Ok(None);
        }
        let admin_path = self.admin_token_path();
        self.update(|tokens| {
            if tokens.iter().any(|t| t.role == Role::Admin) {
                return Ok(None);
            }
            let token = Token::generate()?;
            write_durably(&admin_path, format!("{}\n", token.expose()).as_bytes())?;
            tokens.push(TokenRecord {
                id: token.id().clone(),
                role: Role::Admin,
                tenants: Vec::new(),
                source: None,
                label: Some("first admin token".to_owned()),
                created: now,
                created_by: BOOTSTRAP.to_owned(),
                expires: None,
                revoked: None,
                revoked_by: None,
                credential: Credential::Token {
                    sha256: token.digest(),
                },
            });
            Ok(Some(token))
        })
    }

    /// Runs `change` on the records under the lock and writes the result durably, unless
    /// `change` fails (then nothing is written).
    fn update<T>(
        &self,
        change: impl FnOnce(&mut Vec<TokenRecord>) -> Result<T, AuthError>,
    ) -> Result<T, AuthError> {
        if !self.data.is_dir() {
            return Err(AuthError::NoDataDir(self.data.clone()));
        }
        let dir = self.dir();
        create_private_dir(&dir)?;
        let _lock = Lock::acquire(&dir.join("LOCK"))?;
        let mut tokens = self.load()?.tokens;
        let before = tokens.clone();
        let out = change(&mut tokens)?;
        if tokens != before {
            let body = FileBody {
                format: FORMAT,
                tokens,
            };
            let mut bytes = serde_json::to_vec_pretty(&body).map_err(|e| AuthError::Malformed {
                path: self.path(),
                message: e.to_string(),
            })?;
            bytes.push(b'\n');
            write_durably(&self.path(), &bytes)?;
        }
        Ok(out)
    }
}

/// Creates `dir` (mode 0700) if missing and fsyncs its parent so the entry survives a crash.
fn create_private_dir(dir: &Path) -> Result<(), AuthError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(AuthError::io("create dir", dir)(e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), AuthError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(AuthError::io("fsync dir", dir))
}

/// Replaces `path` with `bytes`: a 0600 temp file beside it, fsync, rename, fsync of the
/// directory.
///
/// # Errors
/// I/O errors.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), AuthError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(AuthError::io("create", &tmp))?;
        f.write_all(bytes).map_err(AuthError::io("write", &tmp))?;
        f.sync_all().map_err(AuthError::io("fsync", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(AuthError::io("rename", path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// An exclusive advisory lock (flock), released when dropped or when the process dies.
struct Lock {
    _file: File,
}

impl Lock {
    /// Waits for the lock at `path`: writers hold it for one small rewrite.
    fn acquire(path: &Path) -> Result<Lock, AuthError> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(AuthError::io("open", path))?;
        loop {
            // SAFETY: flock on a valid descriptor that `f` owns for the call's duration.
            let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(Lock { _file: f });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(AuthError::io("lock", path)(err));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::model::Status;

    const NOW: Timestamp = Timestamp::from_unix_nanos(1_800_000_000_000_000_000);

    fn writer() -> NewToken {
        NewToken {
            role: Some(Role::Writer),
            tenants: vec!["acme".to_owned()],
            source: Some("gw-1".to_owned()),
            ..NewToken::default()
        }
    }

    #[test]
    fn created_tokens_are_stored_as_digests_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        assert!(store.load().unwrap().tokens.is_empty());
        let (token, record) = store.create(&writer(), "cli", NOW).unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains(token.expose()), "the secret is in the file");
        assert!(text.contains(record.id.as_str()));
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "token file mode {mode:o}");

        let again = TokenStore::new(dir.path()).load().unwrap();
        assert_eq!(again.tokens, vec![record.clone()]);
        let Credential::Token { sha256 } = &again.tokens[0].credential else {
            panic!("not a token credential");
        };
        assert!(sha256.matches(&token));
    }

    #[test]
    fn a_certificate_is_bound_to_one_usable_principal_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let fp = crate::CertFingerprint::of_der(b"client certificate");
        let spec = NewToken {
            role: Some(Role::Reader),
            tenants: vec!["acme".to_owned()],
            certificate_sha256: Some(fp),
            ..NewToken::default()
        };
        // create() issues tokens only.
        assert!(matches!(
            store.create(&spec, "cli", NOW),
            Err(AuthError::InvalidSpec(_))
        ));
        let record = store.register_certificate(&spec, "cli", NOW).unwrap();
        assert_eq!(record.credential, Credential::Certificate { sha256: fp });
        assert_eq!(record.principal().id, format!("cert:{}", record.id));
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(
            text.contains("\"certificate\"") && text.contains(&fp.to_hex()),
            "{text}"
        );
        assert_eq!(store.load().unwrap().tokens, vec![record.clone()]);
        let e = store.register_certificate(&spec, "cli", NOW).unwrap_err();
        assert!(e.to_string().contains("already bound"), "{e}");
        store.revoke(&record.id, "cli", NOW).unwrap();
        let again = store.register_certificate(&spec, "cli", NOW).unwrap();
        assert_ne!(again.id, record.id);
        // Without a fingerprint there is nothing to bind.
        let bare = NewToken {
            certificate_sha256: None,
            ..spec
        };
        assert!(store.register_certificate(&bare, "cli", NOW).is_err());
    }

    #[test]
    fn every_change_changes_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        assert_eq!(store.stamp().unwrap(), None);
        let (_, a) = store.create(&writer(), "cli", NOW).unwrap();
        let s1 = store.stamp().unwrap().unwrap();
        assert_eq!(store.load().unwrap().stamp, Some(s1));
        let (revoked, newly) = store.revoke(&a.id, "cli", NOW).unwrap();
        assert!(newly);
        assert_eq!(revoked.status(NOW), Status::Revoked);
        let s2 = store.stamp().unwrap().unwrap();
        assert_ne!(s1, s2);
        // Revoking again changes nothing, not even the file.
        let (_, newly) = store.revoke(&a.id, "cli", NOW).unwrap();
        assert!(!newly);
        assert_eq!(store.stamp().unwrap(), Some(s2));
        let unknown = TokenId::parse("ffffffffffffffff").unwrap();
        assert!(matches!(
            store.revoke(&unknown, "cli", NOW),
            Err(AuthError::UnknownId(_))
        ));
    }

    #[test]
    fn the_admin_token_is_made_once_even_if_every_admin_is_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        store.create(&writer(), "cli", NOW).unwrap();
        let admin = store.bootstrap_admin(NOW).unwrap().unwrap();
        let written = std::fs::read_to_string(store.admin_token_path()).unwrap();
        assert_eq!(written.trim(), admin.expose());
        let mode = std::fs::metadata(store.admin_token_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "admin.token mode {mode:o}");
        assert!(store.bootstrap_admin(NOW).unwrap().is_none());
        store.revoke(admin.id(), "cli", NOW).unwrap();
        assert!(store.bootstrap_admin(NOW).unwrap().is_none());
    }

    #[test]
    fn bad_files_and_missing_directories_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TokenStore::new(&dir.path().join("nope"));
        assert!(matches!(
            missing.create(&writer(), "cli", NOW),
            Err(AuthError::NoDataDir(_))
        ));
        let store = TokenStore::new(dir.path());
        std::fs::create_dir_all(store.dir()).unwrap();
        std::fs::write(store.path(), b"{\"format\": 2, \"tokens\": []}").unwrap();
        assert!(matches!(
            store.load(),
            Err(AuthError::UnsupportedFormat { found: 2, .. })
        ));
        std::fs::write(store.path(), b"{\"format\": 1, \"tokens\": [{}]}").unwrap();
        let e = store.load().unwrap_err().to_string();
        assert!(e.contains("tokens.json is malformed"), "{e}");
        // A refused change leaves the file alone.
        std::fs::remove_file(store.path()).unwrap();
        let bad = NewToken::default();
        assert!(store.create(&bad, "cli", NOW).is_err());
        assert!(!store.path().exists());
    }
}
