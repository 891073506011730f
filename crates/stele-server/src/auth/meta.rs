//! The meta-log: events the log writes about itself — who read what, who changed which
//! token, who failed to get in — appended to the same tree as every other event, so they
//! are as tamper-evident as the rest.
//!
//! Every meta-log event is a schema-v1 event with `source` [`stele_auth::META_SOURCE`] (no
//! client may write that source) and no `tenant` (so no reader sees it; auditors see all):
//!
//! ```json
//! {"action": "audit.read", "source": "stele.meta", "outcome": "allow",
//!  "actor": {"type": "service", "id": "token:1f0c…", "name": "billing reader", "ip": "10.0.0.7"},
//!  "resource": {"type": "event", "id": "/v1/events/42"},
//!  "context": {"request": {"method": "GET", "path": "/v1/events/42"}, "status": 200,
//!              "entries": 1, "index": 42, "role": "reader", "tenants": ["acme"]}}
//! ```
//!
//! Token creation and revocation events get an id derived from the token (UUIDv8 of
//! SHA-256 over action and token id) and content derived from the token record alone, so
//! recording them again (after a restart, or when the server notices a change the offline
//! CLI made) is an idempotent retry, not a second entry.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use stele_auth::{Principal, TokenRecord, META_SOURCE};
use stele_core::event::{self, EventLimits};
use stele_store::{EntryKey, NewEntry, Store};
use uuid::Uuid;

use super::routes::Audit;
use super::tokens::Table;
use super::Returned;
use crate::error::ApiError;

/// An event (or events) read: `GET /v1/events/{index_or_id}`.
pub const AUDIT_READ: &str = "audit.read";
/// A proof served: `GET /v1/proofs/*`.
pub const AUDIT_PROOF: &str = "audit.proof";
/// A query answered: search, count or replay.
pub const AUDIT_QUERY: &str = "audit.query";
/// Entries exported in bulk: `GET /tile/entries/*`.
pub const AUDIT_EXPORT: &str = "audit.export";
/// A request refused for its credentials (401) or its role (403).
pub const AUTH_FAILURE: &str = "auth.failure";
/// A token created.
pub const TOKEN_CREATE: &str = "admin.token.create";
/// A token revoked.
pub const TOKEN_REVOKE: &str = "admin.token.revoke";
/// The tokens listed.
pub const TOKEN_LIST: &str = "admin.token.list";

/// Most `auth.failure` events per second, and their burst: enough to see an attack in the
/// log, too few for one to flood it. Failures beyond it are counted in the next one logged.
const FAILURES_PER_SECOND: u32 = 5;
const FAILURE_BURST: u32 = 20;

/// Longest request path or query kept in an event (characters).
const MAX_REQUEST_CHARS: usize = 2048;
/// The event schema's limits on `resource.id` and `actor.user_agent`.
const MAX_ID_CHARS: usize = event::MAX_ID_CHARS;
const MAX_TEXT_CHARS: usize = event::MAX_TEXT_CHARS;

/// What the meta-log says about a request.
#[derive(Clone, Debug)]
pub(crate) struct RequestInfo {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path as requested.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The route template, such as `/v1/events/{index_or_id}`.
    pub route: String,
    /// The peer's address.
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
}

impl RequestInfo {
    fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    fn context(&self) -> Value {
        let mut request = Map::new();
        request.insert("method".to_owned(), json!(self.method));
        request.insert(
            "path".to_owned(),
            json!(truncate(&self.path, MAX_REQUEST_CHARS)),
        );
        if let Some(q) = &self.query {
            request.insert("query".to_owned(), json!(truncate(q, MAX_REQUEST_CHARS)));
        }
        Value::Object(request)
    }

    fn actor(&self, kind: &str, id: &str, name: Option<&str>) -> Value {
        let mut actor = Map::new();
        actor.insert("type".to_owned(), json!(kind));
        actor.insert("id".to_owned(), json!(truncate(id, MAX_ID_CHARS)));
        if let Some(n) = name {
            actor.insert("name".to_owned(), json!(truncate(n, MAX_TEXT_CHARS)));
        }
        if let Some(ip) = self.ip {
            actor.insert("ip".to_owned(), json!(ip.to_canonical().to_string()));
        }
        if let Some(ua) = self.user_agent.as_deref().filter(|u| !u.is_empty()) {
            actor.insert("user_agent".to_owned(), json!(truncate(ua, MAX_TEXT_CHARS)));
        }
        Value::Object(actor)
    }
}

/// Writes meta-log events to the store.
pub(crate) struct MetaLog {
    store: Store,
    limits: EventLimits,
    failures: DefaultDirectRateLimiter,
    suppressed: AtomicU64,
}

impl MetaLog {
    pub(crate) fn new(store: Store, limits: EventLimits) -> MetaLog {
        let per_second = NonZeroU32::new(FAILURES_PER_SECOND).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(FAILURE_BURST).unwrap_or(NonZeroU32::MIN);
        MetaLog {
            store,
            limits,
            failures: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Validates, encodes and durably appends `events` (with their fixed ids, if any) in one
    /// request. Returns how many were new (not idempotent repeats).
    async fn append(&self, events: Vec<(Option<Uuid>, Value)>) -> Result<usize, ApiError> {
        let now = crate::handlers::v1::events::now()?;
        let mut entries = Vec::with_capacity(events.len());
        for (id, mut value) in events {
            if let (Some(id), Some(obj)) = (id, value.as_object_mut()) {
                obj.insert("id".to_owned(), json!(id));
            }
            let ev = event::validate_owned(value, &self.limits).map_err(|problems| {
                ApiError::Internal(format!("a meta-log event is invalid: {problems:?}"))
            })?;
            let p = ev
                .encode(Uuid::now_v7(), now, &self.limits)
                .map_err(|e| ApiError::Internal(format!("encoding a meta-log event: {e}")))?;
            entries.push(NewEntry {
                key: Some(EntryKey {
                    id: p.id.into_bytes(),
                    digest: p.content_digest,
                }),
                time_offset: Some(p.time_offset),
                data: p.bytes,
            });
        }
        let appended = self.store.append(entries).await?;
        Ok(appended.iter().filter(|a| !a.duplicate).count())
    }

    /// Records an audited request of `principal` that was answered with `status`.
    pub(crate) async fn request(
        &self,
        audit: &Audit,
        principal: &Principal,
        req: &RequestInfo,
        status: StatusCode,
        returned: Option<Returned>,
    ) -> Result<(), ApiError> {
        let returned = returned.unwrap_or_default();
        let mut context = Map::new();
        context.insert("request".to_owned(), req.context());
        context.insert("status".to_owned(), json!(status.as_u16()));
        context.insert("entries".to_owned(), json!(returned.entries));
        if let Some(i) = returned.index {
            context.insert("index".to_owned(), json!(i));
        }
        if returned.withheld {
            context.insert("withheld".to_owned(), json!(true));
        }
        context.insert("role".to_owned(), json!(principal.role.as_str()));
        if !principal.tenants.is_empty() {
            context.insert("tenants".to_owned(), json!(principal.tenants));
        }
        let event = json!({
            "actor": req.actor("service", &principal.id, principal.label.as_deref()),
            "action": audit.action,
            "resource": {"type": audit.resource_type, "id": truncate(&req.target(), MAX_ID_CHARS)},
            "outcome": outcome(status),
            "source": META_SOURCE,
            "context": context,
        });
        self.append(vec![(None, event)]).await.map(|_| ())
    }

    /// Builds the `auth.failure` event for a refused request, or `None` when the failure
    /// budget is spent (the failure is then counted in the next event that is written).
    pub(crate) fn failure(
        &self,
        req: &RequestInfo,
        actor_id: &str,
        status: StatusCode,
        reason: &str,
        claimed: Option<(&str, &str)>,
    ) -> Option<Value> {
        if self.failures.check().is_err() {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let mut context = Map::new();
        context.insert("request".to_owned(), req.context());
        context.insert("status".to_owned(), json!(status.as_u16()));
        // `claimed_token` (the id part of a presented token) or `claimed_certificate` (the
        // fingerprint of a verified but unbound client certificate): never a secret.
        if let Some((key, value)) = claimed {
            context.insert(key.to_owned(), json!(value));
        }
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        if suppressed > 0 {
            context.insert("unlogged_failures_before".to_owned(), json!(suppressed));
        }
        Some(json!({
            "actor": req.actor("service", actor_id, None),
            "action": AUTH_FAILURE,
            "resource": {"type": "route", "id": truncate(&format!("{} {}", req.method, req.route), MAX_ID_CHARS)},
            "outcome": "deny",
            "reason": truncate(reason, MAX_TEXT_CHARS),
            "source": META_SOURCE,
            "context": context,
        }))
    }

    /// Appends one event built by [`MetaLog::failure`].
    pub(crate) async fn append_one(&self, event: Value) -> Result<(), ApiError> {
        self.append(vec![(None, event)]).await.map(|_| ())
    }

    /// Records the creation (and revocation, if revoked) of `record`.
    pub(crate) async fn token_lifecycle(&self, record: &TokenRecord) -> Result<usize, ApiError> {
        self.append(token_events(record)).await
    }

    /// Records every token's lifecycle; returns how many events were new.
    pub(crate) async fn token_history(&self, table: &Table) -> Result<usize, ApiError> {
        let events: Vec<_> = table.records().iter().flat_map(token_events).collect();
        if events.is_empty() {
            return Ok(0);
        }
        self.append(events).await
    }
}

/// The lifecycle events of a token, each with its fixed id, derived from the record alone.
pub(crate) fn token_events(record: &TokenRecord) -> Vec<(Option<Uuid>, Value)> {
    let mut details = Map::new();
    details.insert("role".to_owned(), json!(record.role.as_str()));
    if !record.tenants.is_empty() {
        details.insert("tenants".to_owned(), json!(record.tenants));
    }
    if let Some(s) = &record.source {
        details.insert("source".to_owned(), json!(s));
    }
    if let Some(e) = record.expires {
        details.insert("expires".to_owned(), json!(e));
    }
    // Token records keep exactly the content they always had (their events are recorded
    // idempotently, so it must never change); certificate principals name their certificate.
    let resource_type = match &record.credential {
        stele_auth::Credential::Token { .. } => "token",
        stele_auth::Credential::Certificate { sha256 } => {
            details.insert("certificate_sha256".to_owned(), json!(sha256));
            "certificate"
        }
    };
    let mut resource = json!({"type": resource_type, "id": record.id.as_str()});
    if let Some(label) = &record.label {
        resource["name"] = json!(label);
    }
    let mut created = details.clone();
    created.insert("created".to_owned(), json!(record.created));
    let mut out = vec![(
        Some(lifecycle_id(TOKEN_CREATE, record)),
        json!({
            "actor": by_actor(&record.created_by),
            "action": TOKEN_CREATE,
            "resource": resource,
            "outcome": "allow",
            "source": META_SOURCE,
            "context": created,
        }),
    )];
    if let Some(revoked) = record.revoked {
        let mut context = details;
        context.insert("revoked".to_owned(), json!(revoked));
        out.push((
            Some(lifecycle_id(TOKEN_REVOKE, record)),
            json!({
                "actor": by_actor(record.revoked_by.as_deref().unwrap_or("unknown")),
                "action": TOKEN_REVOKE,
                "resource": resource,
                "outcome": "allow",
                "source": META_SOURCE,
                "context": context,
            }),
        ));
    }
    out
}

/// The actor of a token change made by `by` (`token:<id>`, `cli` or `bootstrap`).
fn by_actor(by: &str) -> Value {
    let kind = if by.starts_with("token:") {
        "service"
    } else if by == stele_auth::file::BOOTSTRAP {
        "system"
    } else {
        "user"
    };
    json!({"type": kind, "id": truncate(by, MAX_ID_CHARS)})
}

/// UUIDv8 from SHA-256 over the action and the token id (and its creation time, so a token
/// file rebuilt from scratch that happened to reuse an id is not mistaken for the old one).
fn lifecycle_id(action: &str, record: &TokenRecord) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"stele meta-log\0");
    h.update(action.as_bytes());
    h.update(b"\0");
    h.update(record.id.as_str().as_bytes());
    h.update(b"\0");
    h.update(record.created.format().as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    for (b, d) in bytes.iter_mut().zip(digest.iter()) {
        *b = *d;
    }
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

fn outcome(status: StatusCode) -> &'static str {
    if status.is_success() {
        "allow"
    } else if status.is_server_error() {
        "error"
    } else {
        "deny"
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => s.get(..cut).unwrap_or(s).to_owned(),
        None => s.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use stele_auth::{NewToken, Role, TokenStore};
    use stele_core::timestamp::Timestamp;

    use super::*;

    #[test]
    fn lifecycle_events_are_valid_and_fixed_by_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let spec = NewToken {
            role: Some(Role::Writer),
            tenants: vec!["acme".to_owned()],
            source: Some("gw-1".to_owned()),
            label: Some("gateway".to_owned()),
            ..NewToken::default()
        };
        let now = Timestamp::from_unix_nanos(1_800_000_000_000_000_000);
        let (_, record) = store.create(&spec, "token:00000000000000aa", now).unwrap();
        let (revoked, _) = store.revoke(&record.id, "cli", now).unwrap();
        let a = token_events(&revoked);
        let b = token_events(&revoked);
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        assert_ne!(a[0].0, a[1].0);
        for (id, value) in a {
            assert_eq!(id.unwrap().get_version_num(), 8);
            let ev = event::validate_owned(value.clone(), &EventLimits::default()).unwrap();
            assert_eq!(ev.source(), Some(META_SOURCE));
            assert_eq!(ev.tenant(), None);
        }
        // The creation event is the same before and after the revocation.
        assert_eq!(token_events(&record)[0], token_events(&revoked)[0]);
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("héllo", 2), "hé");
        assert_eq!(truncate("hé", 5), "hé");
    }
}
