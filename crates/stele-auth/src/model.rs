//! Roles, token records and principals.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use stele_core::event::MAX_ID_CHARS;
use stele_core::timestamp::Timestamp;

use crate::cert::CertFingerprint;
use crate::token::{TokenDigest, TokenId};
use crate::{AuthError, META_SOURCE};

/// Longest label of a token, in characters.
pub const MAX_LABEL_CHARS: usize = 256;

/// What a principal may do. One role per token: a system that both writes and reads holds
/// two tokens, so each credential can do as little as possible.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Appends events (`POST /v1/events`) and nothing else; optionally bound to a source and
    /// to tenants, which the server stamps on every event.
    Writer,
    /// Reads events and their proofs, only of its tenants.
    Reader,
    /// Reads everything across tenants: events, proofs, entry bundles, the meta-log.
    Auditor,
    /// Manages tokens (`/v1/admin/tokens`); no power over entries, not even to read them.
    Admin,
}

impl Role {
    /// Every role, in the order the documentation lists them.
    pub const ALL: [Role; 4] = [Role::Writer, Role::Reader, Role::Auditor, Role::Admin];

    /// The role's name: `writer`, `reader`, `auditor` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                AuthError::InvalidSpec(format!(
                    "{s:?} is not a role; expected writer, reader, auditor or admin"
                ))
            })
    }
}

/// How a principal proves who it is. Tagged by `kind` in the token file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credential {
    /// A bearer token, kept as the SHA-256 of its text.
    Token {
        /// SHA-256 of the token text.
        sha256: TokenDigest,
    },
    /// A TLS client certificate (mTLS), named by the SHA-256 of its DER encoding. It is not
    /// a secret: possession is proven by the TLS handshake, which the server only completes
    /// for certificates chaining to its `--client-ca`.
    Certificate {
        /// SHA-256 fingerprint of the certificate.
        sha256: CertFingerprint,
    },
}

impl Credential {
    /// `token` or `certificate`.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Token { .. } => "token",
            Credential::Certificate { .. } => "certificate",
        }
    }

    /// The principal-id prefix of this kind of credential: `token` or `cert`.
    pub fn principal_prefix(&self) -> &'static str {
        match self {
            Credential::Token { .. } => "token",
            Credential::Certificate { .. } => "cert",
        }
    }
}

/// Whether a token can be used now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Usable.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
}

impl Status {
    /// `active`, `expired` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
        }
    }
}

/// One token in the token file. Revoked tokens stay in the file (marked), so the file is a
/// history of every credential ever issued and an id is never reused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// Public id.
    pub id: TokenId,
    /// The one role it grants.
    pub role: Role,
    /// Reader: the tenants it may read. Writer: the tenants it may write (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// Writer: the source stamped on (and required of) every event it writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A free description ("gateway eu-1").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// When it was created.
    pub created: Timestamp,
    /// Who created it: `token:<id>` (over the admin API), `cli` (offline) or `bootstrap`.
    pub created_by: String,
    /// When it stops working, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
    /// When it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Timestamp>,
    /// Who revoked it (as `created_by`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    /// What proves it.
    pub credential: Credential,
}

impl TokenRecord {
    /// Whether it is usable at `now`. Revocation wins over expiry.
    pub fn status(&self, now: Timestamp) -> Status {
        if self.revoked.is_some() {
            Status::Revoked
        } else if self.expires.is_some_and(|e| e <= now) {
            Status::Expired
        } else {
            Status::Active
        }
    }

    /// The principal this token authenticates: `token:<id>`, or `cert:<id>` for a
    /// certificate credential.
    pub fn principal(&self) -> Principal {
        Principal {
            id: format!("{}:{}", self.credential.principal_prefix(), self.id),
            role: self.role,
            tenants: self.tenants.clone(),
            source: self.source.clone(),
            label: self.label.clone(),
        }
    }
}

/// An authenticated caller: what the server knows about whoever sent a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Stable name of the credential: `token:<id>` or `cert:<id>` (a client certificate;
    /// its fingerprint is in the token file and in the `admin.token.create` event). The
    /// meta-log names the principal by it.
    pub id: String,
    /// Its role.
    pub role: Role,
    /// Its tenants (see [`TokenRecord::tenants`]).
    pub tenants: Vec<String>,
    /// A writer's source binding.
    pub source: Option<String>,
    /// Its label.
    pub label: Option<String>,
}

/// What `stele token create` and `POST /v1/admin/tokens` ask for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    /// The role.
    pub role: Option<Role>,
    /// Tenants (see [`TokenRecord::tenants`]).
    #[serde(default)]
    pub tenants: Vec<String>,
    /// A writer's source.
    #[serde(default)]
    pub source: Option<String>,
    /// A description.
    #[serde(default)]
    pub label: Option<String>,
    /// Expiry.
    #[serde(default)]
    pub expires: Option<Timestamp>,
    /// Bind the principal to this client certificate (mTLS) instead of issuing a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_sha256: Option<CertFingerprint>,
}

impl NewToken {
    /// Checks the rules of each role and returns the role.
    ///
    /// - writer: any number of tenants (none: it may write any tenant), an optional source;
    /// - reader: at least one tenant, no source;
    /// - auditor and admin: neither tenants nor source (an auditor reads every tenant; an admin
    ///   touches no entry);
    /// - tenant and source names: 1 to 256 characters (the event schema's limit) without
    ///   whitespace, control characters or commas (so `stele token list` can print them as
    ///   one column); the source must not be the meta-log's own (`stele.meta`);
    /// - an expiry in the future.
    ///
    /// # Errors
    /// [`AuthError::InvalidSpec`] naming the broken rule.
    pub fn validate(&self, now: Timestamp) -> Result<Role, AuthError> {
        let bad = |m: String| Err(AuthError::InvalidSpec(m));
        let Some(role) = self.role else {
            return bad("a role is required: writer, reader, auditor or admin".to_owned());
        };
        for t in &self.tenants {
            check_name("tenant", t)?;
        }
        if let Some(s) = &self.source {
            check_name("source", s)?;
            if s == META_SOURCE {
                return bad(format!(
                    "source {META_SOURCE:?} is reserved for the log's own meta-log events"
                ));
            }
        }
        let mut sorted = self.tenants.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != self.tenants.len() {
            return bad("a tenant is named twice".to_owned());
        }
        match role {
            Role::Writer => {}
            Role::Reader => {
                if self.tenants.is_empty() {
                    return bad(
                        "a reader needs at least one tenant (an auditor reads across tenants)"
                            .to_owned(),
                    );
                }
                if self.source.is_some() {
                    return bad("a source binds a writer; a reader reads by tenant only".to_owned());
                }
            }
            Role::Auditor | Role::Admin => {
                if !self.tenants.is_empty() || self.source.is_some() {
                    return bad(format!(
                        "an {role} token takes neither tenants nor a source{}",
                        if role == Role::Auditor {
                            " (an auditor reads across tenants)"
                        } else {
                            " (an admin has no access to entries)"
                        }
                    ));
                }
            }
        }
        if let Some(label) = &self.label {
            let n = label.chars().count();
            if n == 0 || n > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
                return bad(format!(
                    "a label is 1 to {MAX_LABEL_CHARS} characters without control characters"
                ));
            }
        }
        if let Some(e) = self.expires {
            if e <= now {
                return bad(format!("the expiry {e} is not in the future"));
            }
        }
        Ok(role)
    }
}

fn check_name(what: &str, name: &str) -> Result<(), AuthError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_ID_CHARS {
        return Err(AuthError::InvalidSpec(format!(
            "a {what} is 1 to {MAX_ID_CHARS} characters long"
        )));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ',')
    {
        return Err(AuthError::InvalidSpec(format!(
            "{what} {name:?} contains whitespace, a control character or a comma"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_unix_nanos(1_800_000_000_000_000_000);

    fn spec(role: Role, tenants: &[&str], source: Option<&str>) -> NewToken {
        NewToken {
            role: Some(role),
            tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
            source: source.map(str::to_owned),
            ..NewToken::default()
        }
    }

    #[test]
    fn each_role_takes_the_bindings_that_mean_something_for_it() {
        let ok = [
            spec(Role::Writer, &[], None),
            spec(Role::Writer, &["acme"], Some("gw-1")),
            spec(Role::Writer, &["acme", "globex"], None),
            spec(Role::Reader, &["acme"], None),
            spec(Role::Auditor, &[], None),
            spec(Role::Admin, &[], None),
        ];
        for s in ok {
            assert!(s.validate(NOW).is_ok(), "{s:?}");
        }
        let refused = [
            (spec(Role::Reader, &[], None), "at least one tenant"),
            (
                spec(Role::Reader, &["acme"], Some("gw")),
                "source binds a writer",
            ),
            (spec(Role::Auditor, &["acme"], None), "neither tenants"),
            (spec(Role::Admin, &[], Some("gw")), "neither tenants"),
            (spec(Role::Writer, &["a b"], None), "whitespace"),
            (spec(Role::Writer, &["a,b"], None), "comma"),
            (spec(Role::Writer, &[""], None), "1 to 256"),
            (spec(Role::Writer, &["a", "a"], None), "twice"),
            (spec(Role::Writer, &[], Some(META_SOURCE)), "reserved"),
            (NewToken::default(), "role is required"),
        ];
        for (s, why) in refused {
            let e = s.validate(NOW).unwrap_err().to_string();
            assert!(e.contains(why), "{s:?}: {e}");
        }
        let mut past = spec(Role::Auditor, &[], None);
        past.expires = Some(NOW);
        assert!(past
            .validate(NOW)
            .unwrap_err()
            .to_string()
            .contains("future"));
    }

    #[test]
    fn status_is_revoked_before_expired() {
        let mut r = TokenRecord {
            id: TokenId::parse("00112233445566aa").unwrap(),
            role: Role::Reader,
            tenants: vec!["acme".to_owned()],
            source: None,
            label: None,
            created: NOW,
            created_by: "cli".to_owned(),
            expires: Some(Timestamp::from_unix_nanos(NOW.unix_nanos() + 10)),
            revoked: None,
            revoked_by: None,
            credential: Credential::Token {
                sha256: crate::Token::generate().unwrap().digest(),
            },
        };
        assert_eq!(r.status(NOW), Status::Active);
        assert_eq!(
            r.status(Timestamp::from_unix_nanos(NOW.unix_nanos() + 10)),
            Status::Expired
        );
        r.revoked = Some(NOW);
        assert_eq!(r.status(NOW), Status::Revoked);
        assert_eq!(r.principal().id, "token:00112233445566aa");
    }

    #[test]
    fn roles_parse_by_name() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
