//! Validation of a client's JSON against event schema v1, collecting every problem.
//!
//! Hand-written rather than derived with serde because serde stops at the first error, and a
//! client fixing a rejected event wants the whole list at once, each with its JSON path.
//!
//! Validation is on the intake hot path, so it is written to allocate only what the [`Event`]
//! keeps: each object is walked once (no hash lookup per field), the JSON paths of schema
//! fields are literals (other paths are built only for a problem), and [`validate_owned`]
//! moves strings and maps out of the input instead of copying them. Both entry points share one
//! implementation over [`Cow`], so they cannot disagree.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::flat_jcs::canonical_flat;
use super::{
    Actor, ActorType, Canonical, Event, EventLimits, FieldError, Named, Outcome, Policy, Resource,
    MAX_CLIENT_TIME_CHARS, MAX_ID_CHARS, MAX_IP_CHARS, MAX_NAME_CHARS, MAX_TEXT_CHARS,
};
use crate::timestamp::parse_unix_nanos_wide;

/// Every problem found in a submitted event, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidEvent(pub Vec<FieldError>);

impl fmt::Display for InvalidEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid event")?;
        for (i, problem) in self.0.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// The fields of each object, in schema order (the order problems are reported in).
const TOP_LEVEL: [&str; 12] = [
    "id",
    "actor",
    "action",
    "resource",
    "outcome",
    "reason",
    "policy",
    "tenant",
    "source",
    "change",
    "context",
    "client_time",
];
const ACTOR_FIELDS: [&str; 6] = ["type", "id", "name", "ip", "user_agent", "session_id"];
const RESOURCE_FIELDS: [&str; 3] = ["type", "id", "name"];
const POLICY_FIELDS: [&str; 2] = ["id", "version"];

/// A JSON value being checked: borrowed by [`validate`], owned by [`validate_owned`].
type In<'a> = Cow<'a, Value>;
/// A JSON object being checked.
type Obj<'a> = Cow<'a, Map<String, Value>>;

/// Checks `value` against schema v1 and `limits` and returns the event, or every problem
/// found: unknown fields (top-level and inside `actor`, `resource`, `policy`), the
/// server-assigned `time` and `client_time_skewed`, missing required fields, wrong types,
/// empty strings, over-long strings, malformed `action`, `id`, `actor.ip` and `client_time`,
/// and an oversized `context`.
///
/// # Errors
///
/// The problems, in order: fields that must not be there (in input order), then each field
/// in schema order.
pub fn validate(value: &Value, limits: &EventLimits) -> Result<Event, Vec<FieldError>> {
    check_event(Cow::Borrowed(value), limits, Original::Refused)
}

/// [`validate`] for a value the caller no longer needs: the event takes its strings and maps
/// instead of copying them, which saves most of validation's allocations. The result, and
/// every problem reported, are exactly those of [`validate`].
///
/// # Errors
///
/// As [`validate`].
pub fn validate_owned(value: Value, limits: &EventLimits) -> Result<Event, Vec<FieldError>> {
    check_event(Cow::Owned(value), limits, Original::Refused)
}

/// [`validate_owned`] for an event built by an integration (a receiver that maps another
/// system's record), the only kind that may carry `original`: the source record verbatim.
/// Everything else is checked exactly as for a client's event. Also used to decode stored
/// entries, which may hold `original`.
///
/// # Errors
///
/// As [`validate`], plus `$.original` if it is present and not a non-empty string.
pub fn validate_ingested(mut value: Value, limits: &EventLimits) -> Result<Event, Vec<FieldError>> {
    // Taken out first so that the shared walk below treats a remaining `original` key as
    // refused; `shift_remove` keeps the other keys in input order for the problem list.
    let original = match &mut value {
        Value::Object(map) => map.shift_remove("original"),
        _ => None,
    };
    check_event(Cow::Owned(value), limits, Original::Allowed(original))
}

/// What to do with the top-level `original` field.
enum Original {
    /// A client's event (`POST /v1/events`): `original` is refused.
    Refused,
    /// An integration's event, or a stored entry: the value taken out of the object, if any.
    Allowed(Option<Value>),
}

fn check_event(
    value: In<'_>,
    limits: &EventLimits,
    original_mode: Original,
) -> Result<Event, Vec<FieldError>> {
    let top = match value {
        Cow::Borrowed(Value::Object(map)) => Cow::Borrowed(map),
        Cow::Owned(Value::Object(map)) => Cow::Owned(map),
        other => {
            return Err(vec![FieldError::new(
                "$",
                format!("an event must be a JSON object, not {}", kind(&other)),
            )]);
        }
    };
    let mut c = Checker::default();
    let [id, actor, action, resource, outcome, reason, policy, tenant, source, change, context, client_time] =
        fields(top, &TOP_LEVEL, |key| match key {
            "time" => c.problem(
                "$.time",
                "is assigned by the server and must not be sent; \
                 send the client's own clock reading as client_time",
            ),
            "client_time_skewed" => c.problem(
                "$.client_time_skewed",
                "is assigned by the server and must not be sent",
            ),
            "original" => c.problem(
                "$.original",
                "is set only by Stele's integrations (the source record they received, \
                 verbatim) and must not be sent; free-form data belongs in context",
            ),
            _ => c.problem(
                child("$", key),
                "unknown field; free-form data belongs in context",
            ),
        });
    let id = c.optional("$.id", id, Checker::uuid);
    let actor = c.required("$.actor", actor, Checker::actor);
    let action = c.required("$.action", action, Checker::action);
    let resource = c.required("$.resource", resource, Checker::resource);
    let outcome = c.required("$.outcome", outcome, |c, p, v| c.one_of::<Outcome>(p, v));
    let reason = c.optional("$.reason", reason, text(MAX_TEXT_CHARS));
    let policy = c.optional("$.policy", policy, Checker::policy);
    let tenant = c.optional("$.tenant", tenant, text(MAX_ID_CHARS));
    let source = c.optional("$.source", source, text(MAX_ID_CHARS));
    let change = c.optional("$.change", change, |c, p, v| {
        c.object(p, v).map(Cow::into_owned)
    });
    let context = c.optional("$.context", context, |c, p, v| {
        let map = c.object(p, v)?;
        match canonical_context(&map, limits) {
            Ok(canonical) => Some((map.into_owned(), canonical)),
            Err(message) => {
                c.problem(p, message);
                None
            }
        }
    });
    let client_time = c.optional("$.client_time", client_time, |c, p, v| {
        let s = c.string(p, v, MAX_CLIENT_TIME_CHARS)?;
        match parse_unix_nanos_wide(&s) {
            Ok(_) => Some(s.into_owned()),
            Err(e) => {
                c.problem(
                    p,
                    format!("must be an RFC 3339 date-time such as 2026-11-23T19:03:19.123Z ({e})"),
                );
                None
            }
        }
    });
    let original = match original_mode {
        Original::Allowed(original) => {
            c.optional("$.original", original.map(Cow::Owned), |c, p, v| {
                c.string(p, v, usize::MAX).map(Cow::into_owned)
            })
        }
        Original::Refused => None,
    };
    let (context, context_canonical) = context.unzip();
    match (actor, action, resource, outcome) {
        (Some(actor), Some(action), Some(resource), Some(outcome)) if c.problems.is_empty() => {
            Ok(Event {
                id,
                actor,
                action,
                resource,
                outcome,
                reason,
                policy,
                tenant,
                source,
                change,
                context,
                context_canonical: context_canonical.flatten(),
                client_time,
                original,
            })
        }
        _ if c.problems.is_empty() => Err(vec![FieldError::new("$", "invalid event")]),
        _ => Err(c.problems),
    }
}

/// Splits `map` into the values of the `known` keys, in `known`'s order, and calls `unknown`
/// with every other key, in input order. One pass over the map instead of a hash lookup per
/// known key.
fn fields<'a, const N: usize>(
    map: Obj<'a>,
    known: &[&str; N],
    mut unknown: impl FnMut(&str),
) -> [Option<In<'a>>; N] {
    let mut slots: [Option<In<'a>>; N] = std::array::from_fn(|_| None);
    let mut put = |key: &str, value: In<'a>| {
        // Compared byte by byte: keys are short, and a `memcmp` call per candidate showed up
        // in profiles.
        let slot = known
            .iter()
            .position(|k| k.len() == key.len() && k.bytes().zip(key.bytes()).all(|(a, b)| a == b))
            .and_then(|i| slots.get_mut(i));
        match slot {
            Some(slot) => *slot = Some(value),
            None => unknown(key),
        }
    };
    match map {
        Cow::Borrowed(map) => map.iter().for_each(|(k, v)| put(k, Cow::Borrowed(v))),
        Cow::Owned(map) => map.into_iter().for_each(|(k, v)| put(&k, Cow::Owned(v))),
    }
    slots
}

/// A string check for [`Checker::optional`] / [`Checker::required`].
fn text<'a>(max: usize) -> impl Fn(&mut Checker, &'static str, In<'a>) -> Option<String> {
    move |c, p, v| c.string(p, v, max).map(Cow::into_owned)
}

#[derive(Default)]
struct Checker {
    problems: Vec<FieldError>,
}

impl Checker {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(FieldError::new(path, message));
    }

    /// Checks the field at `path` with `check` if present; `None` if absent or invalid.
    fn optional<'a, T>(
        &mut self,
        path: &'static str,
        value: Option<In<'a>>,
        check: impl FnOnce(&mut Self, &'static str, In<'a>) -> Option<T>,
    ) -> Option<T> {
        check(self, path, value?)
    }

    /// Like [`Checker::optional`], and reports a missing field.
    fn required<'a, T>(
        &mut self,
        path: &'static str,
        value: Option<In<'a>>,
        check: impl FnOnce(&mut Self, &'static str, In<'a>) -> Option<T>,
    ) -> Option<T> {
        match value {
            Some(value) => check(self, path, value),
            None => {
                self.problem(path, "is required");
                None
            }
        }
    }

    fn object<'a>(&mut self, path: &str, value: In<'a>) -> Option<Obj<'a>> {
        match value {
            Cow::Borrowed(Value::Object(map)) => Some(Cow::Borrowed(map)),
            Cow::Owned(Value::Object(map)) => Some(Cow::Owned(map)),
            other => {
                self.problem(path, format!("must be an object, not {}", kind(&other)));
                None
            }
        }
    }

    /// The values of an object whose keys all come from `known`, in `known`'s order.
    fn closed_object<'a, const N: usize>(
        &mut self,
        path: &str,
        value: In<'a>,
        known: &[&str; N],
    ) -> Option<[Option<In<'a>>; N]> {
        let map = self.object(path, value)?;
        Some(fields(map, known, |key| {
            self.problem(
                child(path, key),
                format!("unknown field; allowed here: {}", known.join(", ")),
            );
        }))
    }

    /// A non-empty string of at most `max` Unicode scalar values.
    fn string<'a>(&mut self, path: &str, value: In<'a>, max: usize) -> Option<Cow<'a, str>> {
        let s = match value {
            Cow::Borrowed(Value::String(s)) => Cow::Borrowed(s.as_str()),
            Cow::Owned(Value::String(s)) => Cow::Owned(s),
            other => {
                self.problem(path, format!("must be a string, not {}", kind(&other)));
                return None;
            }
        };
        match text_problem(&s, max) {
            None => Some(s),
            Some(message) => {
                self.problem(path, message);
                None
            }
        }
    }

    fn one_of<T: Named>(&mut self, path: &str, value: In<'_>) -> Option<T> {
        let s = self.string(path, value, MAX_NAME_CHARS)?;
        let found = T::named(&s);
        if found.is_none() {
            let names: Vec<String> = T::ALL.iter().map(|v| format!("\"{}\"", v.name())).collect();
            self.problem(
                path,
                format!("must be one of {}, not {}", names.join(", "), quoted(&s)),
            );
        }
        found
    }

    fn uuid(&mut self, path: &'static str, value: In<'_>) -> Option<Uuid> {
        let s = self.string(path, value, MAX_ID_CHARS)?;
        match event_id(&s) {
            Ok(id) => Some(id),
            Err(message) => {
                self.problem(path, message);
                None
            }
        }
    }

    fn action(&mut self, path: &'static str, value: In<'_>) -> Option<String> {
        let s = self.string(path, value, MAX_NAME_CHARS)?;
        if is_action_name(&s) {
            return Some(s.into_owned());
        }
        self.problem(
            path,
            "must be a dotted lowercase name of two or more segments, like \"role.grant\"; \
             each segment starts with a-z and continues with a-z, 0-9, '_' or '-'",
        );
        None
    }

    fn actor(&mut self, path: &'static str, value: In<'_>) -> Option<Actor> {
        let [kind, id, name, ip, user_agent, session_id] =
            self.closed_object(path, value, &ACTOR_FIELDS)?;
        let kind = self.required("$.actor.type", kind, |c, p, v| c.one_of::<ActorType>(p, v));
        let id = self.required("$.actor.id", id, text(MAX_ID_CHARS));
        let name = self.optional("$.actor.name", name, text(MAX_TEXT_CHARS));
        let ip = self.optional("$.actor.ip", ip, |c, p, v| {
            let s = c.string(p, v, MAX_IP_CHARS)?;
            if is_ip_literal(&s) {
                return Some(s.into_owned());
            }
            c.problem(
                p,
                "must be an IPv4 or IPv6 address literal, like 203.0.113.7 or 2001:db8::7",
            );
            None
        });
        let user_agent = self.optional("$.actor.user_agent", user_agent, text(MAX_TEXT_CHARS));
        let session_id = self.optional("$.actor.session_id", session_id, text(MAX_ID_CHARS));
        Some(Actor {
            kind: kind?,
            id: id?,
            name,
            ip,
            user_agent,
            session_id,
        })
    }

    fn resource(&mut self, path: &'static str, value: In<'_>) -> Option<Resource> {
        let [kind, id, name] = self.closed_object(path, value, &RESOURCE_FIELDS)?;
        let kind = self.required("$.resource.type", kind, text(MAX_NAME_CHARS));
        let id = self.required("$.resource.id", id, text(MAX_ID_CHARS));
        let name = self.optional("$.resource.name", name, text(MAX_TEXT_CHARS));
        Some(Resource {
            kind: kind?,
            id: id?,
            name,
        })
    }

    fn policy(&mut self, path: &'static str, value: In<'_>) -> Option<Policy> {
        let [id, version] = self.closed_object(path, value, &POLICY_FIELDS)?;
        let id = self.required("$.policy.id", id, text(MAX_ID_CHARS));
        let version = self.optional("$.policy.version", version, text(MAX_ID_CHARS));
        Some(Policy { id: id?, version })
    }
}

/// Why `s` is not a valid string field of at most `max` Unicode scalar values, if it is not.
pub(super) fn text_problem(s: &str, max: usize) -> Option<String> {
    if s.is_empty() {
        return Some("must not be empty (omit an optional field instead)".to_owned());
    }
    // A string has at most as many characters as bytes: only count when that could exceed
    // the limit.
    if s.len() > max {
        let chars = s.chars().count();
        if chars > max {
            return Some(format!("is {chars} characters long; the limit is {max}"));
        }
    }
    None
}

/// `s` (already a valid string field) as an event id: a hyphenated, non-nil UUID.
pub(super) fn event_id(s: &str) -> Result<Uuid, &'static str> {
    match Uuid::try_parse(s).ok().filter(|_| s.len() == 36) {
        Some(id) if id.is_nil() => Err("must not be the nil UUID"),
        Some(id) => Ok(id),
        None => Err("must be a UUID in hyphenated form, like 0190b7f2-6b1c-7cc3-9a4f-3c9e2b1d4e5f"),
    }
}

/// Whether `s` is an IPv4 or IPv6 address literal (`actor.ip`).
pub(super) fn is_ip_literal(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// The RFC 8785 form of a `context` object (kept: `encode` stores exactly these bytes), or
/// why it is refused: larger than `limits.max_context_bytes` in that form.
pub(super) fn canonical_context(
    map: &Map<String, Value>,
    limits: &EventLimits,
) -> Result<Option<Canonical>, String> {
    let canonical = match canonical_flat(map) {
        Some(flat) => Ok(flat),
        None => serde_json_canonicalizer::to_vec(map),
    };
    let size = canonical.as_ref().map_or(usize::MAX, Vec::len);
    if size > limits.max_context_bytes {
        return Err(format!(
            "is {size} bytes in canonical (RFC 8785) form; the limit is {} bytes",
            limits.max_context_bytes
        ));
    }
    Ok(canonical.ok().map(Canonical))
}

/// `^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$`
pub(super) fn is_action_name(s: &str) -> bool {
    let mut segments = 0usize;
    for segment in s.split('.') {
        let mut chars = segment.chars();
        if !matches!(chars.next(), Some('a'..='z')) {
            return false;
        }
        if !chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-')) {
            return false;
        }
        segments += 1;
    }
    segments >= 2
}

/// `parent.key`, or `parent["key"]` when the key is not a plain name (RFC 9535 syntax).
fn child(parent: &str, key: &str) -> String {
    let plain = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{parent}.{key}")
    } else {
        format!("{parent}[{}]", quoted(key))
    }
}

/// `s` as a JSON string literal, for messages and paths.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"?\""))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
