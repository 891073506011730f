//! `POST /v1/ingest/opa`: Open Policy Agent decision logs.
//!
//! OPA's `decision_logs` plugin, configured with `service: stele` and
//! `resource: /v1/ingest/opa`, uploads a gzip-compressed JSON array of decision events
//! (`Content-Encoding: gzip`). Plain JSON is accepted too. The mapping is documented in
//! `docs/integrations/opa.md`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use stele_core::event::{EventLimits, WirePolicy};

use super::map::{self, fit_id, fit_name, fit_text, object, Str};
use super::{
    content_id, ingest_bytes, read_body, IngestReport, Mapped, MappedEvent, RecordProblem,
};
use crate::error::ApiError;
use crate::state::AppState;

/// The `source` of events from this receiver.
pub const SOURCE: &str = "opa";

/// Keys of `input` that name the subject of a decision, in the order they are tried.
const SUBJECT_KEYS: [&str; 6] = [
    "user",
    "subject",
    "principal",
    "identity",
    "username",
    "sub",
];
/// Keys inside an `input.user`-like object that hold its id.
const ID_KEYS: [&str; 4] = ["id", "username", "name", "sub"];

/// `POST /v1/ingest/opa`.
///
/// # Errors
///
/// 400 when the body is not a JSON array of decision objects (nothing stored) or when some
/// records were rejected (the report says which; the others are stored); 413/415 for size and
/// encoding; 503 when the log is busy.
pub async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<IngestReport, ApiError> {
    let bytes = read_body(&headers, body, &state.ingest_limits()).await?;
    let max = state.config().max_events;
    let limits = state.config().limits;
    ingest_bytes(&state, SOURCE, bytes, move |b| map_body(b, max, &limits)).await
}

/// Splits a body (a JSON array of decisions) into records and maps each one.
///
/// # Errors
///
/// 400 (nothing stored) for a body that is not a JSON array, or an empty one; 413 for more
/// than `max_events` decisions.
pub fn map_body(
    bytes: &[u8],
    max_events: usize,
    limits: &EventLimits,
) -> Result<Vec<Mapped>, ApiError> {
    let items: Vec<&RawValue> = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body is not a JSON array of OPA decision log events: {e}; nothing was stored"
        ))
    })?;
    if items.is_empty() {
        return Err(ApiError::BadRequest(
            "the array holds no decision log events".to_owned(),
        ));
    }
    if items.len() > max_events {
        return Err(ApiError::TooManyEvents { limit: max_events });
    }
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, raw)| map_record(i, raw.get(), limits))
        .collect())
}

#[derive(Deserialize)]
#[serde(remote = "Self")]
struct Decision<'a> {
    #[serde(borrow)]
    decision_id: Option<Str<'a>>,
    #[serde(borrow)]
    path: Option<Str<'a>>,
    #[serde(borrow)]
    query: Option<Str<'a>>,
    input: Option<Value>,
    result: Option<Value>,
    error: Option<Value>,
    #[serde(borrow)]
    requested_by: Option<Str<'a>>,
    #[serde(borrow)]
    timestamp: Option<Str<'a>>,
    labels: Option<Map<String, Value>>,
    #[serde(borrow)]
    bundles: Option<BTreeMap<Str<'a>, Bundle<'a>>>,
    #[serde(borrow)]
    trace_id: Option<Str<'a>>,
    #[serde(borrow)]
    span_id: Option<Str<'a>>,
    erased: Option<Vec<String>>,
    masked: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(remote = "Self")]
struct Bundle<'a> {
    #[serde(borrow)]
    revision: Option<Str<'a>>,
}

// A decision (or a bundle) written as an array of its fields is not one.
stele_core::objects_only!(Decision, Bundle);

/// Maps one decision (its JSON text `raw`) to an event, checked against `limits`.
pub fn map_record(record: usize, raw: &str, limits: &EventLimits) -> Mapped {
    let d: Decision<'_> = serde_json::from_str(raw).map_err(|e| {
        RecordProblem::source(record, "$", format!("not an OPA decision log event: {e}"))
    })?;
    let input = d.input.as_ref();
    let (outcome, why) = decide(d.result.as_ref(), d.error.as_ref());
    let path = d.path.as_deref().map(|p| p.trim_start_matches('/'));

    let subject = input.and_then(subject_of);
    let requester_ip = d.requested_by.as_deref().and_then(map::ip_of);
    let actor = match &subject {
        // `subject_of` finds only non-empty ids, which always fit.
        Some(id) => map::actor("user", fit_id(id).unwrap_or_default()),
        None => {
            let id = d.requested_by.as_deref().and_then(fit_id);
            let mut actor = map::actor("service", id.unwrap_or_else(|| "unknown".to_owned()));
            actor.ip = requester_ip.map(Str::from);
            actor
        }
    };
    let action = input
        .and_then(|i| i.get("action"))
        .and_then(Value::as_str)
        .filter(|a| map::is_action(a))
        .map(str::to_owned)
        .or_else(|| {
            input
                .and_then(|i| i.get("method"))
                .and_then(Value::as_str)
                .and_then(|m| map::action("http", m))
        })
        .unwrap_or_else(|| "opa.decision".to_owned());
    let resource =
        input
            .and_then(resource_of)
            .unwrap_or_else(|| match (path, d.query.as_deref()) {
                (Some(p), _) if !p.is_empty() => {
                    ("opa.path".to_owned(), fit_id(p).unwrap_or_default())
                }
                (_, Some(q)) if !q.is_empty() => {
                    ("opa.query".to_owned(), fit_id(q).unwrap_or_default())
                }
                _ => ("opa.path".to_owned(), "unknown".to_owned()),
            });
    let reason = why.or_else(|| {
        d.result
            .as_ref()
            .and_then(|r| ["reason", "message", "msg"].iter().find_map(|k| r.get(*k)))
            .and_then(Value::as_str)
            .and_then(fit_text)
    });
    let policy_id = path
        .filter(|p| !p.is_empty())
        .or(d.query.as_deref())
        .and_then(fit_id);
    let revisions: Vec<String> = d
        .bundles
        .iter()
        .flatten()
        .filter_map(|(name, b)| b.revision.as_deref().map(|r| format!("{}@{r}", &**name)))
        .collect();
    let policy = policy_id.map(|id| WirePolicy {
        id: id.into(),
        version: fit_id(&revisions.join(",")).map(Str::from),
    });
    // Identifiers for correlation only: the decision itself (input, result, bundles,
    // metrics…) is in `original`, and copying it would double the entry.
    let context = object([
        (
            "decision_id",
            d.decision_id.as_deref().and_then(fit_id).map(Value::from),
        ),
        (
            "requested_by",
            d.requested_by.as_deref().and_then(fit_id).map(Value::from),
        ),
        ("labels", d.labels.map(Value::Object).filter(small)),
        (
            "trace_id",
            d.trace_id.as_deref().and_then(fit_id).map(Value::from),
        ),
        (
            "span_id",
            d.span_id.as_deref().and_then(fit_id).map(Value::from),
        ),
        ("erased", d.erased.map(Value::from).filter(small)),
        ("masked", d.masked.map(Value::from).filter(small)),
    ]);
    let id = content_id(SOURCE, raw.as_bytes(), d.timestamp.as_deref());
    let mut event = map::event(SOURCE, actor, action, resource, outcome, raw);
    event.id = Some(id.hyphenated().to_string().into());
    event.reason = reason.map(Str::from);
    event.policy = policy;
    event.context = Some(context);
    event.client_time = d
        .timestamp
        .as_deref()
        .and_then(map::client_time)
        .map(Str::from);
    Ok(MappedEvent::check(event, limits))
}

/// Whether a context value is small enough to copy (the whole record is in `original`).
fn small(v: &Value) -> bool {
    serde_json::to_vec(v).is_ok_and(|b| b.len() <= 1024)
}

/// The outcome a decision states, and why when it is not plain.
///
/// `true`/`false` (also as the strings `"true"`/`"false"`, as in OPA's documented example);
/// an object's `allow`/`allowed` boolean (also `response.allowed`, as admission controllers
/// answer), or a `deny`/`violations` list (non-empty means deny). An evaluation `error`, no
/// result (undefined decision) or any other shape is `error`.
fn decide(result: Option<&Value>, error: Option<&Value>) -> (&'static str, Option<String>) {
    if let Some(error) = error {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| error.to_string(), str::to_owned);
        return ("error", fit_text(&format!("evaluation failed: {message}")));
    }
    let Some(result) = result else {
        return (
            "error",
            Some("the decision is undefined (the policy returned no result)".to_owned()),
        );
    };
    let from_bool = |b: bool| if b { "allow" } else { "deny" };
    match result {
        Value::Bool(b) => return (from_bool(*b), None),
        Value::String(s) if s == "true" || s == "false" => return (from_bool(s == "true"), None),
        Value::Object(o) => {
            for key in ["allow", "allowed"] {
                if let Some(Value::Bool(b)) = o.get(key) {
                    return (from_bool(*b), None);
                }
            }
            if let Some(Value::Bool(b)) = o.get("response").and_then(|r| r.get("allowed")) {
                return (from_bool(*b), None);
            }
            for key in ["deny", "violations"] {
                if let Some(Value::Array(list)) = o.get(key) {
                    return (from_bool(list.is_empty()), None);
                }
            }
        }
        _ => {}
    }
    (
        "error",
        Some("the result states neither allow nor deny; it is kept in `original`".to_owned()),
    )
}

/// The subject of a decision: the first of `input.user`, `input.subject`, … that is a string
/// or an object with an `id`, `username`, `name` or `sub` string.
fn subject_of(input: &Value) -> Option<String> {
    SUBJECT_KEYS.iter().find_map(|key| match input.get(*key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(o) => ID_KEYS.iter().find_map(|k| {
            o.get(*k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        }),
        _ => None,
    })
}

/// The event's `resource` (type, id): `input.resource` as a string (type `resource`) or an
/// object with `type` and `id` strings; else `input.path` (a string, or a list of segments
/// joined by `/`) as type `http.path`.
fn resource_of(input: &Value) -> Option<(String, String)> {
    match input.get("resource") {
        Some(Value::String(s)) if !s.is_empty() => {
            return Some(("resource".to_owned(), fit_id(s)?));
        }
        Some(Value::Object(o)) => {
            let kind = o.get("type").and_then(Value::as_str).and_then(fit_name);
            let id = o.get("id").and_then(Value::as_str).and_then(fit_id);
            if let (Some(kind), Some(id)) = (kind, id) {
                return Some((kind, id));
            }
        }
        _ => {}
    }
    let path = match input.get("path")? {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let parts: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
            format!("/{}", parts.join("/"))
        }
        _ => return None,
    };
    fit_id(&path).map(|id| ("http.path".to_owned(), id))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decisions_of_common_shapes() {
        let d = |r: Value| decide(Some(&r), None).0;
        assert_eq!(d(json!(true)), "allow");
        assert_eq!(d(json!("false")), "deny");
        assert_eq!(d(json!({"allow": false, "reason": "x"})), "deny");
        assert_eq!(d(json!({"response": {"allowed": true}})), "allow");
        assert_eq!(d(json!({"deny": ["no"]})), "deny");
        assert_eq!(d(json!({"violations": []})), "allow");
        assert_eq!(d(json!(42)), "error");
        assert_eq!(decide(None, None).0, "error");
        let (o, why) = decide(Some(&json!(true)), Some(&json!({"message": "boom"})));
        assert_eq!(
            (o, why.unwrap().as_str()),
            ("error", "evaluation failed: boom")
        );
    }

    #[test]
    fn a_decision_written_as_an_array_is_refused() {
        let limits = EventLimits::default();
        // An object with the same values is a decision (so the array is refused for its
        // shape, not its contents).
        assert!(map_record(
            0,
            r#"{"decision_id": "d-1", "path": "authz/allow"}"#,
            &limits
        )
        .is_ok());
        let problem = map_record(0, r#"["d-1", "authz/allow"]"#, &limits).unwrap_err();
        assert_eq!(problem.path, "$");
        assert!(
            problem.message.contains("expected an object"),
            "{}",
            problem.message
        );
        let nested = r#"{"decision_id": "d-1", "bundles": {"authz": ["r1"]}}"#;
        let problem = map_record(0, nested, &limits).unwrap_err();
        assert!(
            problem.message.contains("expected an object"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn subjects_and_resources_from_input() {
        assert_eq!(subject_of(&json!({"user": "alice"})).unwrap(), "alice");
        assert_eq!(
            subject_of(&json!({"subject": {"id": "u-1"}})).unwrap(),
            "u-1"
        );
        assert_eq!(subject_of(&json!({"method": "GET"})), None);
        assert_eq!(
            resource_of(&json!({"path": ["salary", "bob"]})).unwrap(),
            ("http.path".to_owned(), "/salary/bob".to_owned())
        );
        assert_eq!(
            resource_of(&json!({"resource": {"type": "doc", "id": "d1"}})).unwrap(),
            ("doc".to_owned(), "d1".to_owned())
        );
    }
}
