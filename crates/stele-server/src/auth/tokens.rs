//! The token table the server checks credentials against, reloaded whenever the token file
//! changes, so a revocation or a new token made by another process (`stele token … --data`)
//! takes effect on the very next request.
//!
//! Each authenticated request costs one `stat` of the token file (a microsecond), a hash map
//! lookup by the token's public id and one SHA-256 of the presented token, compared in
//! constant time with the stored digest.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::http::HeaderValue;
use stele_auth::model::Status;
use stele_auth::{
    AuthError, CertFingerprint, Credential, FileStamp, Principal, Token, TokenId, TokenRecord,
    TokenStore,
};
use stele_core::timestamp::Timestamp;

use crate::error::ApiError;

/// Why a request is not authenticated. Messages never include the presented token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    NotBearer,
    /// Not a token of this log (malformed, unknown id, or wrong secret). `claimed` is the
    /// id part of a well-formed token, for the meta-log.
    Invalid {
        /// The id the token claims.
        claimed: Option<TokenId>,
    },
    /// A real token (or certificate principal) past its expiry.
    Expired {
        /// The token.
        id: TokenId,
        /// When it expired.
        at: Timestamp,
        /// `token` or `cert` (the principal-id prefix).
        kind: &'static str,
    },
    /// A real token (or certificate principal) that was revoked.
    Revoked {
        /// The token.
        id: TokenId,
        /// `token` or `cert` (the principal-id prefix).
        kind: &'static str,
    },
    /// A client certificate that chains to the client CA but is bound to no principal.
    UnknownCertificate {
        /// Its fingerprint.
        sha256: CertFingerprint,
    },
}

/// How a credential kind is named in messages.
fn noun(kind: &str) -> &'static str {
    if kind == "cert" {
        "certificate principal"
    } else {
        "token"
    }
}

impl AuthFailure {
    /// The message of the 401 answer.
    pub(crate) fn message(&self) -> String {
        match self {
            AuthFailure::Missing => {
                "authentication required: send Authorization: Bearer <token> (or, over mTLS, a registered client certificate)".to_owned()
            }
            AuthFailure::NotBearer => {
                "the Authorization header must be \"Bearer <token>\"".to_owned()
            }
            AuthFailure::Invalid { .. } => "invalid token".to_owned(),
            AuthFailure::Expired { id, at, kind } => format!("{} {id} expired at {at}", noun(kind)),
            AuthFailure::Revoked { id, kind } => format!("{} {id} has been revoked", noun(kind)),
            AuthFailure::UnknownCertificate { sha256 } => format!(
                "client certificate {sha256} is not bound to a principal (stele token create --cert)"
            ),
        }
    }

    /// The principal id to name in the meta-log: the token's, once the caller has shown it
    /// holds the secret (expired, revoked), else `anonymous`.
    pub(crate) fn actor_id(&self) -> String {
        match self {
            AuthFailure::Expired { id, kind, .. } | AuthFailure::Revoked { id, kind } => {
                format!("{kind}:{id}")
            }
            _ => "anonymous".to_owned(),
        }
    }

    /// Into the API error answered.
    pub(crate) fn into_api_error(self) -> ApiError {
        // `error="invalid_token"` (RFC 6750 §3.1) only when a bearer token was presented.
        let with_error = !matches!(
            self,
            AuthFailure::Missing | AuthFailure::UnknownCertificate { .. }
        ) && !matches!(
            &self,
            AuthFailure::Expired { kind: "cert", .. } | AuthFailure::Revoked { kind: "cert", .. }
        );
        ApiError::Unauthorized {
            message: self.message(),
            invalid_token: with_error,
        }
    }
}

struct Entry {
    record: TokenRecord,
    principal: Arc<Principal>,
}

/// One version of the token file, indexed by token id.
pub(crate) struct Table {
    stamp: Option<FileStamp>,
    by_id: HashMap<TokenId, Entry>,
    /// Certificate principals by fingerprint, in file order (revoked ones stay, so one
    /// fingerprint can have several records; at most one is usable at a time).
    by_cert: HashMap<CertFingerprint, Vec<TokenId>>,
    records: Vec<TokenRecord>,
}

impl Table {
    fn new(snapshot: stele_auth::file::Snapshot) -> Table {
        let by_id = snapshot
            .tokens
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    Entry {
                        record: r.clone(),
                        principal: Arc::new(r.principal()),
                    },
                )
            })
            .collect();
        let mut by_cert: HashMap<CertFingerprint, Vec<TokenId>> = HashMap::new();
        for r in &snapshot.tokens {
            if let Credential::Certificate { sha256 } = &r.credential {
                by_cert.entry(*sha256).or_default().push(r.id.clone());
            }
        }
        Table {
            stamp: snapshot.stamp,
            by_id,
            by_cert,
            records: snapshot.tokens,
        }
    }

    /// Every record, in file order.
    pub(crate) fn records(&self) -> &[TokenRecord] {
        &self.records
    }
}

/// The server's view of the token file.
pub(crate) struct TokenTable {
    store: TokenStore,
    current: RwLock<Arc<Table>>,
}

impl TokenTable {
    /// Loads the token file.
    pub(crate) fn open(store: TokenStore) -> Result<TokenTable, AuthError> {
        let table = Table::new(store.load()?);
        Ok(TokenTable {
            store,
            current: RwLock::new(Arc::new(table)),
        })
    }

    pub(crate) fn store(&self) -> &TokenStore {
        &self.store
    }

    /// The current table, reloaded first if the file changed. The flag says whether it was.
    pub(crate) fn current(&self) -> Result<(Arc<Table>, bool), AuthError> {
        let stamp = self.store.stamp()?;
        let cached = self
            .current
            .read()
            .map(|t| Arc::clone(&t))
            .unwrap_or_else(|poisoned| Arc::clone(&poisoned.into_inner()));
        if cached.stamp == stamp {
            return Ok((cached, false));
        }
        let fresh = Arc::new(Table::new(self.store.load()?));
        match self.current.write() {
            Ok(mut t) => *t = Arc::clone(&fresh),
            Err(poisoned) => *poisoned.into_inner() = Arc::clone(&fresh),
        }
        Ok((fresh, true))
    }

    /// The current table (reloaded if need be).
    pub(crate) fn snapshot(&self) -> Result<Arc<Table>, AuthError> {
        self.current().map(|(t, _)| t)
    }
}

/// Checks the request's credentials against `table` at `now`: the `Authorization` header
/// when there is one (a bearer token decides, whatever certificate the connection shows);
/// otherwise the client certificate the TLS handshake verified, if any.
pub(crate) fn authenticate(
    table: &Table,
    header: Option<&HeaderValue>,
    certificate: Option<&CertFingerprint>,
    now: Timestamp,
) -> Result<Arc<Principal>, AuthFailure> {
    let Some(header) = header else {
        return match certificate {
            Some(fp) => authenticate_certificate(table, fp, now),
            None => Err(AuthFailure::Missing),
        };
    };
    let text = header.to_str().map_err(|_| AuthFailure::NotBearer)?;
    let (scheme, credentials) = text.trim().split_once(' ').ok_or(AuthFailure::NotBearer)?;
    // RFC 9110 §11.1: the scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::NotBearer);
    }
    let Some(token) = Token::parse(credentials.trim()) else {
        return Err(AuthFailure::Invalid { claimed: None });
    };
    let invalid = || AuthFailure::Invalid {
        claimed: Some(token.id().clone()),
    };
    let entry = table.by_id.get(token.id()).ok_or_else(invalid)?;
    let Credential::Token { sha256 } = &entry.record.credential else {
        // The id of a certificate principal: no token has it.
        return Err(invalid());
    };
    if !sha256.matches(&token) {
        return Err(invalid());
    }
    usable(entry, now)
}

/// The principal bound to a verified client certificate: the usable record, else (for the
/// message) the last one.
fn authenticate_certificate(
    table: &Table,
    fp: &CertFingerprint,
    now: Timestamp,
) -> Result<Arc<Principal>, AuthFailure> {
    let entries: Vec<&Entry> = table
        .by_cert
        .get(fp)
        .map(|ids| ids.iter().filter_map(|id| table.by_id.get(id)).collect())
        .unwrap_or_default();
    if let Some(e) = entries
        .iter()
        .find(|e| e.record.status(now) == Status::Active)
    {
        return Ok(Arc::clone(&e.principal));
    }
    match entries.last() {
        Some(e) => usable(e, now),
        None => Err(AuthFailure::UnknownCertificate { sha256: *fp }),
    }
}

fn usable(entry: &Entry, now: Timestamp) -> Result<Arc<Principal>, AuthFailure> {
    let kind = entry.record.credential.principal_prefix();
    match entry.record.status(now) {
        Status::Active => Ok(Arc::clone(&entry.principal)),
        Status::Revoked => Err(AuthFailure::Revoked {
            id: entry.record.id.clone(),
            kind,
        }),
        Status::Expired => Err(AuthFailure::Expired {
            id: entry.record.id.clone(),
            at: entry.record.expires.unwrap_or(now),
            kind,
        }),
    }
}

/// A token file that cannot be read: the server refuses to guess who anyone is (503).
pub(crate) fn unavailable(e: AuthError) -> ApiError {
    tracing::error!(error = %e, "cannot read the token file; refusing authenticated requests");
    ApiError::Unavailable(format!("authentication is unavailable: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use stele_auth::{NewToken, Role};

    use super::*;

    const NOW: Timestamp = Timestamp::from_unix_nanos(1_800_000_000_000_000_000);

    fn bearer(t: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer {t}")).unwrap()
    }

    #[test]
    fn tokens_authenticate_until_revoked_or_expired() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let spec = NewToken {
            role: Some(Role::Auditor),
            expires: Some(Timestamp::from_unix_nanos(NOW.unix_nanos() + 1_000)),
            ..NewToken::default()
        };
        let (token, _) = store.create(&spec, "cli", NOW).unwrap();
        let table = TokenTable::open(store.clone()).unwrap();
        let (t, reloaded) = table.current().unwrap();
        assert!(!reloaded);
        let p = authenticate(&t, Some(&bearer(token.expose())), None, NOW).unwrap();
        assert_eq!(p.role, Role::Auditor);
        assert_eq!(p.id, format!("token:{}", token.id()));
        // The scheme is case-insensitive.
        let lower = HeaderValue::from_str(&format!("bearer {}", token.expose())).unwrap();
        assert!(authenticate(&t, Some(&lower), None, NOW).is_ok());

        let later = Timestamp::from_unix_nanos(NOW.unix_nanos() + 1_000);
        assert!(matches!(
            authenticate(&t, Some(&bearer(token.expose())), None, later),
            Err(AuthFailure::Expired { .. })
        ));

        store.revoke(token.id(), "cli", NOW).unwrap();
        let (t, reloaded) = table.current().unwrap();
        assert!(reloaded, "the change on disk was not noticed");
        let e = authenticate(&t, Some(&bearer(token.expose())), None, NOW).unwrap_err();
        assert_eq!(
            e,
            AuthFailure::Revoked {
                id: token.id().clone(),
                kind: "token"
            }
        );
        assert!(!e.message().contains(token.expose()));
    }

    #[test]
    fn bad_credentials_are_told_apart_only_as_far_as_is_safe() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let spec = NewToken {
            role: Some(Role::Admin),
            ..NewToken::default()
        };
        let (token, _) = store.create(&spec, "cli", NOW).unwrap();
        let table = TokenTable::open(store).unwrap();
        let t = table.snapshot().unwrap();
        assert_eq!(authenticate(&t, None, None, NOW), Err(AuthFailure::Missing));
        let basic = HeaderValue::from_static("Basic dXNlcjpwYXNz");
        assert_eq!(
            authenticate(&t, Some(&basic), None, NOW),
            Err(AuthFailure::NotBearer)
        );
        assert_eq!(
            authenticate(&t, Some(&bearer("nonsense")), None, NOW),
            Err(AuthFailure::Invalid { claimed: None })
        );
        // Right id, wrong secret; unknown id: the same answer.
        let forged = Token::generate_with_id(token.id().clone()).unwrap();
        let stranger = Token::generate().unwrap();
        for t2 in [&forged, &stranger] {
            let e = authenticate(&t, Some(&bearer(t2.expose())), None, NOW).unwrap_err();
            assert_eq!(e.message(), "invalid token");
            assert_eq!(e.actor_id(), "anonymous");
        }
    }

    #[test]
    fn a_certificate_authenticates_its_principal_unless_a_token_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let fp = CertFingerprint::of_der(b"client certificate");
        let spec = NewToken {
            role: Some(Role::Reader),
            tenants: vec!["acme".to_owned()],
            certificate_sha256: Some(fp),
            ..NewToken::default()
        };
        let record = store.register_certificate(&spec, "cli", NOW).unwrap();
        let writer = NewToken {
            role: Some(Role::Writer),
            ..NewToken::default()
        };
        let (token, _) = store.create(&writer, "cli", NOW).unwrap();
        let table = TokenTable::open(store.clone()).unwrap();
        let t = table.snapshot().unwrap();
        let p = authenticate(&t, None, Some(&fp), NOW).unwrap();
        assert_eq!(
            (p.id.clone(), p.role),
            (format!("cert:{}", record.id), Role::Reader)
        );
        // A bearer token decides when both are presented.
        let p = authenticate(&t, Some(&bearer(token.expose())), Some(&fp), NOW).unwrap();
        assert_eq!(p.role, Role::Writer);
        // A certificate principal's id is no token id.
        let fake = Token::generate_with_id(record.id.clone()).unwrap();
        assert!(matches!(
            authenticate(&t, Some(&bearer(fake.expose())), None, NOW),
            Err(AuthFailure::Invalid { .. })
        ));
        let stranger = CertFingerprint::of_der(b"another certificate");
        let e = authenticate(&t, None, Some(&stranger), NOW).unwrap_err();
        assert_eq!(e, AuthFailure::UnknownCertificate { sha256: stranger });
        assert!(e.message().contains(&stranger.to_hex()));
        store.revoke(&record.id, "cli", NOW).unwrap();
        let t = table.snapshot().unwrap();
        let e = authenticate(&t, None, Some(&fp), NOW).unwrap_err();
        assert_eq!(e.actor_id(), format!("cert:{}", record.id));
        assert!(e.message().contains("revoked"), "{}", e.message());
    }
}
