//! Who may use each route, and which routes are meta-logged.
//!
//! | route | who | meta-log action |
//! |---|---|---|
//! | `POST /v1/events` | writer | (the events are the record) |
//! | `POST /v1/ingest/kubernetes`, `POST /v1/ingest/opa`, `POST /v1/logs` | writer | (the events are the record) |
//! | `GET /v1/events/{index_or_id}` | reader (own tenants), auditor | `audit.read` |
//! | `GET /v1/proofs/inclusion` | reader (own tenants), auditor | `audit.proof` |
//! | `GET /v1/proofs/consistency` | reader, auditor | `audit.proof` |
//! | `GET /v1/events?…`, `GET /v1/events/count` | reader (own tenants only), auditor | `audit.query` |
//! | `GET /v1/replay` | auditor | `audit.query` |
//! | `GET /tile/entries/…` | auditor | `audit.export` |
//! | `GET /checkpoint`, `GET /tile/<L>/…`, `GET /v1/log`, `GET /v1/key/rotations` | public with `--public-verification`, auditor with `--auditor-only-verification`, else reader, auditor | — |
//! | `GET /metrics` | public with `--public-metrics`, else auditor, admin | — |
//! | `/v1/admin/tokens…` | admin | `admin.token.create`, `.list`, `.revoke` |
//! | `GET /healthz`, `/openapi.json`, `/schema/…` | public | — |
//!
//! A route missing from the table is for auditors only (fail closed); a test checks that
//! every served route is in it.

use axum::http::Method;
use stele_auth::Role;

use super::meta;
use super::AuthSettings;

/// Roles that may read entries (readers only of their tenants).
pub const READERS: &[Role] = &[Role::Reader, Role::Auditor];
/// Roles that may append.
pub const WRITERS: &[Role] = &[Role::Writer];
/// Auditors alone.
pub const AUDITORS: &[Role] = &[Role::Auditor];
/// Admins alone.
pub const ADMINS: &[Role] = &[Role::Admin];
/// Roles that may see operational metrics.
pub const OPERATORS: &[Role] = &[Role::Auditor, Role::Admin];

/// Who may use a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials.
    Public,
    /// Verification material: public with [`AuthSettings::public_verification`], auditors
    /// only with [`AuthSettings::auditor_only_verification`], else
    /// [`READERS`].
    Verification,
    /// Metrics: public with [`AuthSettings::public_metrics`], else [`OPERATORS`].
    Metrics,
    /// Principals with one of these roles.
    Roles(&'static [Role]),
}

impl Access {
    /// The roles allowed under `settings`; `None` for a public route.
    pub fn roles(self, settings: &AuthSettings) -> Option<&'static [Role]> {
        match self {
            Access::Public => None,
            Access::Verification if settings.public_verification => None,
            Access::Verification if settings.auditor_only_verification => Some(AUDITORS),
            Access::Verification => Some(READERS),
            Access::Metrics if settings.public_metrics => None,
            Access::Metrics => Some(OPERATORS),
            Access::Roles(roles) => Some(roles),
        }
    }
}

/// How an audited route is recorded in the meta-log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Audit {
    /// The event's `action`.
    pub action: &'static str,
    /// The event's `resource.type`.
    pub resource_type: &'static str,
    /// The handler records its successes itself (with a record-derived event); the
    /// middleware records only its failures.
    pub handler_records_success: bool,
}

/// The rule of one route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRule {
    /// Who may use it.
    pub access: Access,
    /// Whether and how it is meta-logged.
    pub audit: Option<Audit>,
}

const fn audit(action: &'static str, resource_type: &'static str) -> Option<Audit> {
    Some(Audit {
        action,
        resource_type,
        handler_records_success: false,
    })
}

const fn rule(access: Access, audit: Option<Audit>) -> RouteRule {
    RouteRule { access, audit }
}

/// The rule for a request to route template `route` (axum syntax) at `path`.
pub fn rule_for(method: &Method, route: &str, path: &str) -> RouteRule {
    explicit_rule(method, route, path).unwrap_or(rule(Access::Roles(AUDITORS), None))
}

/// The table itself; `None` for a route it does not list.
fn explicit_rule(method: &Method, route: &str, path: &str) -> Option<RouteRule> {
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    let own = |action| {
        Some(Audit {
            action,
            resource_type: "token",
            handler_records_success: true,
        })
    };
    Some(match route {
        "/v1/events" if post => rule(Access::Roles(WRITERS), None),
        // Integrations append too: the receiver names its source on every event it maps.
        "/v1/ingest/kubernetes" | "/v1/ingest/opa" | "/v1/logs" if post => {
            rule(Access::Roles(WRITERS), None)
        }
        // Search and counts: a reader's are confined to its tenants by the handlers.
        "/v1/events" if get => rule(
            Access::Roles(READERS),
            audit(meta::AUDIT_QUERY, "events_search"),
        ),
        "/v1/events/count" if get => rule(
            Access::Roles(READERS),
            audit(meta::AUDIT_QUERY, "events_count"),
        ),
        // Replay derives grants from role events of every tenant (a grant's scope need not
        // be its event's tenant): auditors only.
        "/v1/replay" if get => rule(Access::Roles(AUDITORS), audit(meta::AUDIT_QUERY, "replay")),
        "/v1/events/{index_or_id}" if get => {
            rule(Access::Roles(READERS), audit(meta::AUDIT_READ, "event"))
        }
        "/v1/proofs/inclusion" if get => rule(
            Access::Roles(READERS),
            audit(meta::AUDIT_PROOF, "inclusion_proof"),
        ),
        "/v1/proofs/consistency" if get => rule(
            Access::Roles(READERS),
            audit(meta::AUDIT_PROOF, "consistency_proof"),
        ),
        "/tile/{*rest}" if get && path.starts_with("/tile/entries/") => rule(
            Access::Roles(AUDITORS),
            audit(meta::AUDIT_EXPORT, "entry_bundle"),
        ),
        "/tile/{*rest}" | "/checkpoint" | "/v1/log" | "/v1/key/rotations" if get => {
            rule(Access::Verification, None)
        }
        "/metrics" if get => rule(Access::Metrics, None),
        "/healthz" | "/openapi.json" | "/schema/event-v1.schema.json" if get => {
            rule(Access::Public, None)
        }
        "/v1/admin/tokens" if post => rule(Access::Roles(ADMINS), own(meta::TOKEN_CREATE)),
        "/v1/admin/tokens" if get => rule(
            Access::Roles(ADMINS),
            Some(Audit {
                action: meta::TOKEN_LIST,
                resource_type: "token",
                handler_records_success: false,
            }),
        ),
        "/v1/admin/tokens/{id}" if method == Method::DELETE => {
            rule(Access::Roles(ADMINS), own(meta::TOKEN_REVOKE))
        }
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_served_route_has_an_explicit_rule() {
        for (route, method, _) in crate::routes() {
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let path = route.replace("{*rest}", "0/000");
            assert!(
                explicit_rule(&method, route, &path).is_some(),
                "{method} {route} has no access rule in auth::routes"
            );
        }
    }

    #[test]
    fn entry_bundles_are_for_auditors_even_with_public_verification() {
        let public = AuthSettings {
            public_verification: true,
            ..AuthSettings::default()
        };
        let bundle = rule_for(&Method::GET, "/tile/{*rest}", "/tile/entries/000");
        assert_eq!(bundle.access.roles(&public), Some(AUDITORS));
        assert_eq!(bundle.audit.unwrap().action, "audit.export");
        let hashes = rule_for(&Method::GET, "/tile/{*rest}", "/tile/0/000");
        assert_eq!(hashes.access.roles(&public), None);
        assert_eq!(hashes.access.roles(&AuthSettings::default()), Some(READERS));
        // Unknown routes fail closed.
        let unknown = rule_for(&Method::GET, "/v2/whatever", "/v2/whatever");
        assert_eq!(unknown.access.roles(&public), Some(AUDITORS));
    }
}
