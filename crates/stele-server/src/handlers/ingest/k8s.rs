//! `POST /v1/ingest/kubernetes`: the kube-apiserver audit webhook backend.
//!
//! kube-apiserver (`--audit-webhook-config-file`) POSTs an `audit.k8s.io/v1` `EventList`
//! as JSON; each item is one audit `Event` (`k8s.io/apiserver/pkg/apis/audit/v1`). A single
//! `Event` object (one line of the log backend) is accepted too, and `audit.k8s.io/v1beta1`
//! and legacy events without `apiVersion` are read the same way. The mapping is documented in
//! `docs/integrations/kubernetes.md`.

use std::borrow::Cow;
use std::fmt;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use stele_core::event::{EventLimits, WirePolicy, MAX_ID_CHARS, MAX_NAME_CHARS};

use super::map::{self, fit_id, fit_owned, fit_text, object, Str};
use super::{
    content_id, ingest_bytes, read_body, IngestReport, Mapped, MappedEvent, RecordProblem,
};
use crate::error::ApiError;
use crate::state::AppState;

/// The `source` of events from this receiver.
pub const SOURCE: &str = "kubernetes";

/// `POST /v1/ingest/kubernetes`.
///
/// # Errors
///
/// 400 when the body is not an audit `EventList` or `Event` (nothing stored) or when some
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

/// The envelope: an `EventList` (or a lone `Event`).
#[derive(Deserialize)]
#[serde(remote = "Self")]
struct Envelope<'a> {
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "apiVersion")]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    items: Option<Vec<&'a RawValue>>,
}

/// Splits a body into records and maps each one.
///
/// # Errors
///
/// 400 (nothing stored) for a body that is not JSON, not an `audit.k8s.io` `EventList` or
/// `Event`, or holds no events; 413 for more than `max_events` items.
pub fn map_body(
    bytes: &[u8],
    max_events: usize,
    limits: &EventLimits,
) -> Result<Vec<Mapped>, ApiError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ApiError::BadRequest(format!("the body is not UTF-8 JSON: {e}")))?;
    let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body is not an audit.k8s.io/v1 EventList: {e}; nothing was stored"
        ))
    })?;
    check_api_version(envelope.api_version.as_deref())
        .map_err(|m| ApiError::BadRequest(format!("{m} (EventList); nothing was stored")))?;
    let items: Vec<&str> = match (envelope.kind.as_deref(), envelope.items) {
        (Some("EventList"), Some(items)) => items.into_iter().map(RawValue::get).collect(),
        (Some("EventList"), None) => {
            return Err(ApiError::BadRequest(
                "the EventList has no `items` array; nothing was stored".to_owned(),
            ))
        }
        (Some("Event"), _) => vec![text.trim_ascii()],
        (kind, _) => {
            return Err(ApiError::BadRequest(format!(
                "expected an audit.k8s.io/v1 EventList (kind \"EventList\"), as kube-apiserver's \
                 audit webhook sends, or a single audit Event; got kind {}; nothing was stored",
                kind.map_or_else(|| "missing".to_owned(), |k| format!("{k:?}"))
            )))
        }
    };
    if items.is_empty() {
        return Err(ApiError::BadRequest(
            "the EventList holds no events".to_owned(),
        ));
    }
    if items.len() > max_events {
        return Err(ApiError::TooManyEvents { limit: max_events });
    }
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, raw)| map_record(i, raw, limits))
        .collect())
}

fn check_api_version(v: Option<&str>) -> Result<(), String> {
    match v {
        None | Some("audit.k8s.io/v1" | "audit.k8s.io/v1beta1") => Ok(()),
        Some(other) => Err(format!(
            "apiVersion {other:?} is not audit.k8s.io/v1 (or v1beta1)"
        )),
    }
}

#[derive(Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase")]
struct AuditEvent<'a> {
    #[serde(borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    api_version: Option<Str<'a>>,
    #[serde(borrow, rename = "auditID")]
    audit_id: Option<Str<'a>>,
    #[serde(borrow)]
    stage: Option<Str<'a>>,
    #[serde(borrow, rename = "requestURI")]
    request_uri: Option<Str<'a>>,
    #[serde(borrow)]
    verb: Option<Str<'a>>,
    #[serde(borrow)]
    user: Option<UserInfo<'a>>,
    #[serde(borrow)]
    impersonated_user: Option<UserInfo<'a>>,
    #[serde(borrow, rename = "sourceIPs")]
    source_ips: Option<Vec<Str<'a>>>,
    #[serde(borrow)]
    user_agent: Option<Str<'a>>,
    #[serde(borrow)]
    object_ref: Option<ObjectRef<'a>>,
    #[serde(borrow)]
    response_status: Option<Status<'a>>,
    #[serde(borrow)]
    request_received_timestamp: Option<Str<'a>>,
    #[serde(borrow)]
    stage_timestamp: Option<Str<'a>>,
    /// Pre-v1 events (2018) carry this instead of the two above.
    #[serde(borrow)]
    timestamp: Option<Str<'a>>,
    #[serde(borrow)]
    annotations: Option<Annotations<'a>>,
}

/// The two annotations of an audit `Event` the mapping reads (the authorizer's decision and
/// reason). Read as a map of strings, as `map[string]string` is: a later duplicate key wins,
/// and a value that is not a string makes the record unreadable, as it did when the whole
/// map was kept.
#[derive(Default)]
struct Annotations<'a> {
    decision: Option<Str<'a>>,
    reason: Option<Str<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Annotations<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Annotations<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<M: MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Annotations<'de>, M::Error> {
                let mut found = Annotations::default();
                while let Some((key, value)) = map.next_entry::<Str<'de>, Str<'de>>()? {
                    match &*key {
                        "authorization.k8s.io/decision" => found.decision = Some(value),
                        "authorization.k8s.io/reason" => found.reason = Some(value),
                        _ => {}
                    }
                }
                Ok(found)
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

#[derive(Deserialize)]
#[serde(remote = "Self")]
struct UserInfo<'a> {
    #[serde(borrow)]
    username: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase")]
struct ObjectRef<'a> {
    #[serde(borrow)]
    resource: Option<Str<'a>>,
    #[serde(borrow)]
    namespace: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    api_group: Option<Str<'a>>,
    #[serde(borrow)]
    subresource: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(remote = "Self")]
struct Status<'a> {
    code: Option<i64>,
    #[serde(borrow)]
    reason: Option<Str<'a>>,
    #[serde(borrow)]
    message: Option<Str<'a>>,
}

// Each is read from a JSON object only: serde would also read an array of the fields, in
// order, as the record.
stele_core::objects_only!(Envelope, AuditEvent, UserInfo, ObjectRef, Status);

/// Maps one audit `Event` (its JSON text `raw`) to an event, checked against `limits`.
pub fn map_record(record: usize, raw: &str, limits: &EventLimits) -> Mapped {
    let problem = |path: &str, message: String| RecordProblem::source(record, path, message);
    let ev: AuditEvent<'_> = serde_json::from_str(raw)
        .map_err(|e| problem("$", format!("not an audit.k8s.io Event: {e}")))?;
    if let Some(kind) = ev.kind.as_deref().filter(|k| *k != "Event") {
        return Err(problem(
            "kind",
            format!("is {kind:?}; an EventList's items are audit Events"),
        ));
    }
    check_api_version(ev.api_version.as_deref()).map_err(|m| problem("apiVersion", m))?;
    fn required<'s>(
        record: usize,
        v: Option<&'s str>,
        path: &str,
    ) -> Result<&'s str, RecordProblem> {
        v.filter(|s| !s.is_empty()).ok_or_else(|| {
            RecordProblem::source(
                record,
                path,
                "is missing; kube-apiserver always sets it on an audit Event",
            )
        })
    }
    let audit_id = required(record, ev.audit_id.as_deref(), "auditID")?;
    let stage = required(record, ev.stage.as_deref(), "stage")?;
    let verb = required(record, ev.verb.as_deref(), "verb")?;
    let user = ev.user.as_ref();
    let username = required(
        record,
        user.and_then(|u| u.username.as_deref()),
        "user.username",
    )?;

    let annotations = ev.annotations.as_ref();
    let decision = non_empty(annotations.and_then(|a| a.decision.as_ref()));
    let authz_reason = non_empty(annotations.and_then(|a| a.reason.as_ref()));
    let status = ev.response_status.as_ref();
    let code = status.and_then(|s| s.code);
    let outcome = match (decision, code) {
        (Some("allow"), _) => "allow",
        (Some("forbid"), _) => "deny",
        // Without the authorizer's annotation: 401 and 403 are refusals; any other answer
        // means the request got past authorization.
        (_, Some(401 | 403)) => "deny",
        _ => "allow",
    };
    let reason = authz_reason
        .or_else(|| {
            (outcome == "deny")
                .then(|| status.and_then(|s| s.message.as_deref().or(s.reason.as_deref())))
                .flatten()
        })
        .and_then(fit_text);
    let (policy, rbac_role) = match authz_reason.and_then(rbac_grant) {
        Some((binding, role)) => (
            fit_owned(binding, MAX_ID_CHARS),
            fit_owned(role, MAX_ID_CHARS),
        ),
        None => (None, None),
    };

    let actor_type = if username.starts_with("system:serviceaccount:") {
        "service"
    } else if username.starts_with("system:") && username != "system:anonymous" {
        "system"
    } else {
        "user"
    };
    let action = map::action("k8s", verb).ok_or_else(|| {
        problem(
            "verb",
            format!("{verb:?} cannot be made into an action name"),
        )
    })?;

    // Only what identifies and correlates the record: everything else the audit Event says
    // is in `original`, and copying it would double the entry (and the disk it takes).
    let context = object([
        ("audit_id", Some(json!(audit_id))),
        ("stage", Some(json!(stage))),
        ("response_code", code.map(Value::from)),
        (
            "impersonated_user",
            ev.impersonated_user
                .as_ref()
                .and_then(|u| u.username.as_deref())
                .and_then(fit_id)
                .map(Value::from),
        ),
        ("rbac_role", rbac_role.map(Value::from)),
    ]);
    let client_time = [
        &ev.stage_timestamp,
        &ev.request_received_timestamp,
        &ev.timestamp,
    ]
    .into_iter()
    .find_map(|t| t.as_deref().and_then(map::client_time));
    let id = content_id(SOURCE, raw.as_bytes(), client_time.as_deref());
    // `username` is not empty, so it always fits.
    let mut actor = map::actor(actor_type, fit_id(username).unwrap_or_default());
    actor.ip = ev
        .source_ips
        .iter()
        .flatten()
        .next()
        .and_then(|ip| map::ip_of(ip))
        .map(Str::from);
    actor.user_agent = ev.user_agent.as_deref().and_then(fit_text).map(Str::from);
    let resource = resource_of(ev.object_ref.as_ref(), ev.request_uri.as_deref());
    let mut event = map::event(SOURCE, actor, action, resource, outcome, raw);
    event.id = Some(id.hyphenated().to_string().into());
    event.reason = reason.map(Str::from);
    event.policy = policy.map(|id| WirePolicy {
        id: id.into(),
        version: None,
    });
    event.context = Some(context);
    event.client_time = client_time.map(Str::from);
    Ok(MappedEvent::check(event, limits))
}

/// The string if there is one and it is not empty.
fn non_empty<'s>(v: Option<&'s Str<'_>>) -> Option<&'s str> {
    v.map(|v| &**v).filter(|v| !v.is_empty())
}

/// `resource` (type, id) from `objectRef`: type `resource[.apiGroup][/subresource]`, id
/// `namespace/name`, `name`, `namespace/*` or `*`; for a non-resource request (no
/// `objectRef`), type `url` and the path of `requestURI`.
fn resource_of(object_ref: Option<&ObjectRef<'_>>, uri: Option<&str>) -> (String, String) {
    fn some<'s>(s: &'s Option<Str<'_>>) -> Option<&'s str> {
        non_empty(s.as_ref())
    }
    if let Some(o) = object_ref.filter(|o| some(&o.resource).is_some()) {
        let (group, sub) = (some(&o.api_group), some(&o.subresource));
        let resource = some(&o.resource).unwrap_or_default();
        // Built in place: this runs per record, and `format!` for each part cost more.
        let mut kind = String::with_capacity(
            resource.len() + group.map_or(0, |g| g.len() + 1) + sub.map_or(0, |s| s.len() + 1),
        );
        kind.push_str(resource);
        if let Some(group) = group {
            kind.push('.');
            kind.push_str(group);
        }
        if let Some(sub) = sub {
            kind.push('/');
            kind.push_str(sub);
        }
        let id = match (some(&o.namespace), some(&o.name)) {
            (Some(ns), Some(name)) => map::join(ns, '/', name),
            (None, Some(name)) => name.to_owned(),
            (Some(ns), None) => map::join(ns, '/', "*"),
            (None, None) => "*".to_owned(),
        };
        return (
            fit_owned(kind, MAX_NAME_CHARS).unwrap_or_else(|| "unknown".to_owned()),
            fit_owned(id, MAX_ID_CHARS).unwrap_or_else(|| "*".to_owned()),
        );
    }
    let path = uri
        .map(|u| u.split('?').next().unwrap_or(u))
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    (
        "url".to_owned(),
        fit_id(path).unwrap_or_else(|| "/".to_owned()),
    )
}

/// The binding and role of an RBAC authorizer reason such as `RBAC: allowed by
/// ClusterRoleBinding "x" of ClusterRole "cluster-admin" to User "u"`: `("ClusterRoleBinding/x",
/// "ClusterRole/cluster-admin")`.
fn rbac_grant(reason: &str) -> Option<(String, String)> {
    let rest = reason.strip_prefix("RBAC: allowed by ")?;
    let (binding, rest) = kind_and_quoted(rest)?;
    let rest = rest.trim_start().strip_prefix("of ")?;
    let (role, _) = kind_and_quoted(rest)?;
    Some((binding, role))
}

/// `Kind "name"…` → (`Kind/name`, the rest).
fn kind_and_quoted(s: &str) -> Option<(String, &str)> {
    let (kind, rest) = s.split_once(' ')?;
    let rest = rest.strip_prefix('"')?;
    let (name, rest) = rest.split_once('"')?;
    Some((map::join(kind, '/', name), rest))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The event a record maps to, as JSON.
    fn mapped(record: usize, raw: &str) -> Result<Value, RecordProblem> {
        map_record(record, raw, &EventLimits::default()).map(|m| m.to_json())
    }

    #[test]
    fn rbac_reasons_name_binding_and_role() {
        let reason = r#"RBAC: allowed by ClusterRoleBinding "system:openshift:operator:x" of ClusterRole "cluster-admin" to ServiceAccount "a/b""#;
        assert_eq!(
            rbac_grant(reason).unwrap(),
            (
                "ClusterRoleBinding/system:openshift:operator:x".to_owned(),
                "ClusterRole/cluster-admin".to_owned()
            )
        );
        assert_eq!(rbac_grant(""), None);
        assert_eq!(rbac_grant("RBAC: allowed by something"), None);
    }

    #[test]
    fn annotations_are_read_as_a_map_of_strings() {
        let with = |annotations: &str| {
            format!(
                r#"{{"kind":"Event","auditID":"a","stage":"ResponseComplete","verb":"get","user":{{"username":"u"}},"responseStatus":{{"code":403}},"annotations":{annotations}}}"#
            )
        };
        // A later duplicate wins, as in a map; escaped strings are read.
        let event = mapped(
            0,
            &with(r#"{"authorization.k8s.io/decision":"forbid","x":"y","authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"say \"hi\""}"#),
        )
        .unwrap();
        assert_eq!(event["outcome"], "allow");
        assert_eq!(event["reason"], "say \"hi\"");
        // Without annotations, the 403 decides.
        assert_eq!(mapped(0, &with("null")).unwrap()["outcome"], "deny");
        // Values that are not strings make the record unreadable, naming what was expected.
        let err = mapped(1, &with(r#"{"x":5}"#)).unwrap_err();
        assert_eq!(err.path, "$");
        assert!(
            err.message
                .contains("invalid type: integer `5`, expected a string"),
            "{}",
            err.message
        );
        let err = mapped(1, &with("7")).unwrap_err();
        assert!(
            err.message
                .contains("invalid type: integer `7`, expected a map"),
            "{}",
            err.message
        );
    }

    #[test]
    fn records_written_as_arrays_are_refused() {
        let limits = EventLimits::default();
        let event = r#"{"kind":"Event","auditID":"a","stage":"ResponseComplete","verb":"get","user":{"username":"u"},"objectRef":{"resource":"pods"},"responseStatus":{"code":200}}"#;
        assert!(mapped(0, event).is_ok());
        // The whole event, or any object in it, as an array of its fields in order.
        for bad in [
            r#"["Event","audit.k8s.io/v1","Metadata","a","ResponseComplete","/","get"]"#,
            &event.replace(r#"{"username":"u"}"#, r#"["u"]"#),
            &event.replace(r#"{"resource":"pods"}"#, r#"["pods"]"#),
            &event.replace(r#"{"code":200}"#, r#"[200]"#),
        ] {
            let err = mapped(0, bad).unwrap_err();
            assert_eq!(err.path, "$", "{bad}");
            assert!(
                err.message.contains("expected an object"),
                "{bad}: {}",
                err.message
            );
        }
        // An array body is not an EventList.
        let body = format!(r#"["EventList","audit.k8s.io/v1",[{event}]]"#);
        match map_body(body.as_bytes(), 10, &limits) {
            Err(ApiError::BadRequest(m)) => assert!(m.contains("expected an object"), "{m}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("an array body was read as an EventList"),
        }
    }

    #[test]
    fn missing_required_fields_are_named() {
        let err = mapped(
            3,
            r#"{"kind":"Event","auditID":"a","stage":"ResponseComplete","verb":"get"}"#,
        )
        .unwrap_err();
        assert_eq!((err.record, err.path.as_str()), (3, "user.username"));
        let err = mapped(0, r#"{"kind":"Event","auditID":5}"#).unwrap_err();
        assert_eq!(err.path, "$");
        assert!(err.message.contains("invalid type"), "{}", err.message);
        let err = mapped(0, r#"{"kind":"Pod"}"#).unwrap_err();
        assert_eq!(err.path, "kind");
    }
}
