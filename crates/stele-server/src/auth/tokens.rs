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
    AuthError, Credential, FileStamp, Principal, Token, TokenId, TokenRecord, TokenStore,
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
    /// A real token past its expiry.
    Expired {
        /// The token.
        id: TokenId,
        /// When it expired.
        at: Timestamp,
    },
    /// A real token that was revoked.
    Revoked {
        /// The token.
        id: TokenId,
    },
}

impl AuthFailure {
    /// The message of the 401 answer.
    pub(crate) fn message(&self) -> String {
        match self {
            AuthFailure::Missing => {
                "authentication required: send Authorization: Bearer <token>".to_owned()
            }
            AuthFailure::NotBearer => {
                "the Authorization header must be \"Bearer <token>\"".to_owned()
            }
            AuthFailure::Invalid { .. } => "invalid token".to_owned(),
            AuthFailure::Expired { id, at } => format!("token {id} expired at {at}"),
            AuthFailure::Revoked { id } => format!("token {id} has been revoked"),
        }
    }

    /// The principal id to name in the meta-log: the token's, once the caller has shown it
    /// holds the secret (expired, revoked), else `anonymous`.
    pub(crate) fn actor_id(&self) -> String {
        match self {
            AuthFailure::Expired { id, .. } | AuthFailure::Revoked { id } => format!("token:{id}"),
            _ => "anonymous".to_owned(),
        }
    }

    /// Into the API error answered.
    pub(crate) fn into_api_error(self) -> ApiError {
        let with_error = !matches!(self, AuthFailure::Missing);
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
        Table {
            stamp: snapshot.stamp,
            by_id,
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

/// Checks the `Authorization` header against `table` at `now`.
pub(crate) fn authenticate(
    table: &Table,
    header: Option<&HeaderValue>,
    now: Timestamp,
) -> Result<Arc<Principal>, AuthFailure> {
    let Some(header) = header else {
        return Err(AuthFailure::Missing);
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
    let Credential::Token { sha256 } = &entry.record.credential;
    if !sha256.matches(&token) {
        return Err(invalid());
    }
    match entry.record.status(now) {
        Status::Active => Ok(Arc::clone(&entry.principal)),
        Status::Revoked => Err(AuthFailure::Revoked {
            id: entry.record.id.clone(),
        }),
        Status::Expired => Err(AuthFailure::Expired {
            id: entry.record.id.clone(),
            at: entry.record.expires.unwrap_or(now),
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
        let p = authenticate(&t, Some(&bearer(token.expose())), NOW).unwrap();
        assert_eq!(p.role, Role::Auditor);
        assert_eq!(p.id, format!("token:{}", token.id()));
        // The scheme is case-insensitive.
        let lower = HeaderValue::from_str(&format!("bearer {}", token.expose())).unwrap();
        assert!(authenticate(&t, Some(&lower), NOW).is_ok());

        let later = Timestamp::from_unix_nanos(NOW.unix_nanos() + 1_000);
        assert!(matches!(
            authenticate(&t, Some(&bearer(token.expose())), later),
            Err(AuthFailure::Expired { .. })
        ));

        store.revoke(token.id(), "cli", NOW).unwrap();
        let (t, reloaded) = table.current().unwrap();
        assert!(reloaded, "the change on disk was not noticed");
        let e = authenticate(&t, Some(&bearer(token.expose())), NOW).unwrap_err();
        assert_eq!(
            e,
            AuthFailure::Revoked {
                id: token.id().clone()
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
        assert_eq!(authenticate(&t, None, NOW), Err(AuthFailure::Missing));
        let basic = HeaderValue::from_static("Basic dXNlcjpwYXNz");
        assert_eq!(
            authenticate(&t, Some(&basic), NOW),
            Err(AuthFailure::NotBearer)
        );
        assert_eq!(
            authenticate(&t, Some(&bearer("nonsense")), NOW),
            Err(AuthFailure::Invalid { claimed: None })
        );
        // Right id, wrong secret; unknown id: the same answer.
        let forged = Token::generate_with_id(token.id().clone()).unwrap();
        let stranger = Token::generate().unwrap();
        for t2 in [&forged, &stranger] {
            let e = authenticate(&t, Some(&bearer(t2.expose())), NOW).unwrap_err();
            assert_eq!(e.message(), "invalid token");
            assert_eq!(e.actor_id(), "anonymous");
        }
    }
}
