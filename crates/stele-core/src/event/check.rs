//! Validation of a client's JSON against event schema v1, collecting every problem.
//!
//! Hand-written rather than derived with serde because serde stops at the first error, and a
//! client fixing a rejected event wants the whole list at once, each with its JSON path.

use std::fmt;
use std::net::IpAddr;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    Actor, ActorType, Event, EventLimits, FieldError, Outcome, Policy, Resource,
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

const TOP_LEVEL: &[&str] = &[
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
const ACTOR_FIELDS: &[&str] = &["type", "id", "name", "ip", "user_agent", "session_id"];
const RESOURCE_FIELDS: &[&str] = &["type", "id", "name"];
const POLICY_FIELDS: &[&str] = &["id", "version"];

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
    let Value::Object(top) = value else {
        return Err(vec![FieldError::new(
            "$",
            format!("an event must be a JSON object, not {}", kind(value)),
        )]);
    };
    let mut c = Checker::default();
    for key in top.keys() {
        match key.as_str() {
            "time" => c.problem(
                "$.time",
                "is assigned by the server and must not be sent; \
                 send the client's own clock reading as client_time",
            ),
            "client_time_skewed" => c.problem(
                "$.client_time_skewed",
                "is assigned by the server and must not be sent",
            ),
            k if TOP_LEVEL.contains(&k) => {}
            _ => c.problem(
                child("$", key),
                "unknown field; free-form data belongs in context",
            ),
        }
    }
    let id = c.optional(top, "$", "id", Checker::uuid);
    let actor = c.required(top, "$", "actor", Checker::actor);
    let action = c.required(top, "$", "action", Checker::action);
    let resource = c.required(top, "$", "resource", Checker::resource);
    let outcome = c.required(top, "$", "outcome", |c, p, v| {
        c.one_of(
            p,
            v,
            &[
                ("allow", Outcome::Allow),
                ("deny", Outcome::Deny),
                ("error", Outcome::Error),
            ],
        )
    });
    let reason = c.optional(top, "$", "reason", text(MAX_TEXT_CHARS));
    let policy = c.optional(top, "$", "policy", Checker::policy);
    let tenant = c.optional(top, "$", "tenant", text(MAX_ID_CHARS));
    let source = c.optional(top, "$", "source", text(MAX_ID_CHARS));
    let change = c.optional(top, "$", "change", |c, p, v| c.object(p, v).cloned());
    let context = c.optional(top, "$", "context", |c, p, v| {
        let map = c.object(p, v)?;
        let size = serde_json_canonicalizer::to_vec(map)
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        if size > limits.max_context_bytes {
            c.problem(
                p,
                format!(
                    "is {size} bytes in canonical (RFC 8785) form; the limit is {} bytes",
                    limits.max_context_bytes
                ),
            );
            return None;
        }
        Some(map.clone())
    });
    let client_time = c.optional(top, "$", "client_time", |c, p, v| {
        let s = c.string(p, v, MAX_CLIENT_TIME_CHARS)?;
        match parse_unix_nanos_wide(&s) {
            Ok(_) => Some(s),
            Err(e) => {
                c.problem(
                    p,
                    format!("must be an RFC 3339 date-time such as 2026-11-23T19:03:19.123Z ({e})"),
                );
                None
            }
        }
    });
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
                client_time,
            })
        }
        _ if c.problems.is_empty() => Err(vec![FieldError::new("$", "invalid event")]),
        _ => Err(c.problems),
    }
}

/// A string check for [`Checker::optional`] / [`Checker::required`].
fn text(max: usize) -> impl Fn(&mut Checker, &str, &Value) -> Option<String> {
    move |c, p, v| c.string(p, v, max)
}

#[derive(Default)]
struct Checker {
    problems: Vec<FieldError>,
}

impl Checker {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(FieldError::new(path, message));
    }

    /// Checks `parent.key` with `check` if present; `None` if absent or invalid.
    fn optional<T>(
        &mut self,
        obj: &Map<String, Value>,
        parent: &str,
        key: &str,
        check: impl FnOnce(&mut Self, &str, &Value) -> Option<T>,
    ) -> Option<T> {
        let value = obj.get(key)?;
        check(self, &child(parent, key), value)
    }

    /// Like [`Checker::optional`], and reports a missing field.
    fn required<T>(
        &mut self,
        obj: &Map<String, Value>,
        parent: &str,
        key: &str,
        check: impl FnOnce(&mut Self, &str, &Value) -> Option<T>,
    ) -> Option<T> {
        let path = child(parent, key);
        match obj.get(key) {
            Some(value) => check(self, &path, value),
            None => {
                self.problem(path, "is required");
                None
            }
        }
    }

    fn object<'v>(&mut self, path: &str, value: &'v Value) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                self.problem(path, format!("must be an object, not {}", kind(other)));
                None
            }
        }
    }

    /// An object whose keys all come from `known`.
    fn closed_object<'v>(
        &mut self,
        path: &str,
        value: &'v Value,
        known: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let map = self.object(path, value)?;
        for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
            self.problem(
                child(path, key),
                format!("unknown field; allowed here: {}", known.join(", ")),
            );
        }
        Some(map)
    }

    /// A non-empty string of at most `max` Unicode scalar values.
    fn string(&mut self, path: &str, value: &Value, max: usize) -> Option<String> {
        let Value::String(s) = value else {
            self.problem(path, format!("must be a string, not {}", kind(value)));
            return None;
        };
        let chars = s.chars().count();
        if chars == 0 {
            self.problem(path, "must not be empty (omit an optional field instead)");
            return None;
        }
        if chars > max {
            self.problem(
                path,
                format!("is {chars} characters long; the limit is {max}"),
            );
            return None;
        }
        Some(s.clone())
    }

    fn one_of<T: Copy>(&mut self, path: &str, value: &Value, options: &[(&str, T)]) -> Option<T> {
        let s = self.string(path, value, MAX_NAME_CHARS)?;
        let found = options.iter().find(|(name, _)| *name == s).map(|(_, v)| *v);
        if found.is_none() {
            let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            self.problem(
                path,
                format!("must be one of {}, not {}", names.join(", "), quoted(&s)),
            );
        }
        found
    }

    fn uuid(&mut self, path: &str, value: &Value) -> Option<Uuid> {
        let s = self.string(path, value, MAX_ID_CHARS)?;
        let id = Uuid::try_parse(&s).ok().filter(|_| s.len() == 36);
        match id {
            Some(id) if id.is_nil() => self.problem(path, "must not be the nil UUID"),
            Some(id) => return Some(id),
            None => self.problem(
                path,
                "must be a UUID in hyphenated form, like 0190b7f2-6b1c-7cc3-9a4f-3c9e2b1d4e5f",
            ),
        }
        None
    }

    fn action(&mut self, path: &str, value: &Value) -> Option<String> {
        let s = self.string(path, value, MAX_NAME_CHARS)?;
        if is_action_name(&s) {
            return Some(s);
        }
        self.problem(
            path,
            "must be a dotted lowercase name of two or more segments, like \"role.grant\"; \
             each segment starts with a-z and continues with a-z, 0-9, '_' or '-'",
        );
        None
    }

    fn actor(&mut self, path: &str, value: &Value) -> Option<Actor> {
        let obj = self.closed_object(path, value, ACTOR_FIELDS)?;
        let kind = self.required(obj, path, "type", |c, p, v| {
            c.one_of(
                p,
                v,
                &[
                    ("user", ActorType::User),
                    ("service", ActorType::Service),
                    ("system", ActorType::System),
                ],
            )
        });
        let id = self.required(obj, path, "id", text(MAX_ID_CHARS));
        let name = self.optional(obj, path, "name", text(MAX_TEXT_CHARS));
        let ip = self.optional(obj, path, "ip", |c, p, v| {
            let s = c.string(p, v, MAX_IP_CHARS)?;
            if s.parse::<IpAddr>().is_ok() {
                return Some(s);
            }
            c.problem(
                p,
                "must be an IPv4 or IPv6 address literal, like 203.0.113.7 or 2001:db8::7",
            );
            None
        });
        let user_agent = self.optional(obj, path, "user_agent", text(MAX_TEXT_CHARS));
        let session_id = self.optional(obj, path, "session_id", text(MAX_ID_CHARS));
        Some(Actor {
            kind: kind?,
            id: id?,
            name,
            ip,
            user_agent,
            session_id,
        })
    }

    fn resource(&mut self, path: &str, value: &Value) -> Option<Resource> {
        let obj = self.closed_object(path, value, RESOURCE_FIELDS)?;
        let kind = self.required(obj, path, "type", text(MAX_NAME_CHARS));
        let id = self.required(obj, path, "id", text(MAX_ID_CHARS));
        let name = self.optional(obj, path, "name", text(MAX_TEXT_CHARS));
        Some(Resource {
            kind: kind?,
            id: id?,
            name,
        })
    }

    fn policy(&mut self, path: &str, value: &Value) -> Option<Policy> {
        let obj = self.closed_object(path, value, POLICY_FIELDS)?;
        let id = self.required(obj, path, "id", text(MAX_ID_CHARS));
        let version = self.optional(obj, path, "version", text(MAX_ID_CHARS));
        Some(Policy { id: id?, version })
    }
}

/// `^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$`
fn is_action_name(s: &str) -> bool {
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
