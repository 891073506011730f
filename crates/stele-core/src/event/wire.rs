//! A typed fast path for events that are valid as sent.
//!
//! [`validate`](super::validate) walks a parsed `serde_json::Value`, which costs a map, a key
//! string and a value string per field before a single rule is checked: parse, validate and
//! encode took 4.7 µs per event that way against 2.1 µs on this path (criterion,
//! `cargo bench -p stele-core --bench event -- server/`). Most events a server sees are valid, so
//! intake first deserializes straight into [`WireEvent`] (strings borrowed from the request
//! body where they hold no escapes) and checks it with [`WireEvent::check`]. Anything this
//! path does not accept — an unknown or duplicate field, a `null`, a wrong type, any rule
//! broken — yields `None`, and the caller runs the full validation, which reports every
//! problem with its path. So this path never produces an error of its own, and where it
//! accepts, the [`Event`] is the one validation returns (the tests compare them on generated
//! input). The rules themselves are the functions `check.rs` uses, so they cannot drift.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::check::{canonical_context, event_id, is_action_name, is_ip_literal, text_problem};
use super::{
    Actor, ActorType, Event, EventLimits, Named, Outcome, Policy, Resource, MAX_CLIENT_TIME_CHARS,
    MAX_ID_CHARS, MAX_IP_CHARS, MAX_NAME_CHARS, MAX_TEXT_CHARS,
};
use crate::timestamp::parse_unix_nanos_wide;

/// A client's event as deserialized by the fast path: schema v1's fields and no others, each
/// of the right JSON type. Not yet checked against the schema's rules: see
/// [`WireEvent::check`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireEvent<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    actor: WireActor<'a>,
    #[serde(borrow)]
    action: Str<'a>,
    #[serde(borrow)]
    resource: WireResource<'a>,
    #[serde(borrow)]
    outcome: Str<'a>,
    #[serde(borrow, default, deserialize_with = "present")]
    reason: Option<Str<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    policy: Option<WirePolicy<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    tenant: Option<Str<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    source: Option<Str<'a>>,
    #[serde(default, deserialize_with = "present")]
    change: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "present")]
    context: Option<Map<String, Value>>,
    #[serde(borrow, default, deserialize_with = "present")]
    client_time: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireActor<'a> {
    #[serde(borrow, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow, default, deserialize_with = "present")]
    name: Option<Str<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    ip: Option<Str<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    user_agent: Option<Str<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    session_id: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireResource<'a> {
    #[serde(borrow, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow, default, deserialize_with = "present")]
    name: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePolicy<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow, default, deserialize_with = "present")]
    version: Option<Str<'a>>,
}

/// A JSON string, borrowed from the input unless it holds escapes.
///
/// serde borrows a `Cow<str>` only when it is a field's own type: inside an `Option`, a `Vec`
/// or a map it always allocates. This type borrows wherever it is. It expects what `String`
/// expects ("a string"), so it refuses `null`, which validation reports as a wrong type rather
/// than an absent field. The integrations' record types use it too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Str<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// An optional field that, when present, must hold a value of its type (`null` included is
/// refused): `#[serde(default)]` covers absence.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

impl Str<'_> {
    /// The string if it is a valid string field of at most `max` characters.
    fn within(self, max: usize) -> Option<String> {
        text_problem(&self.0, max)
            .is_none()
            .then(|| self.0.into_owned())
    }
}

/// Checks an optional text field; `Err(())` if present and invalid.
fn optional(field: Option<Str<'_>>, max: usize) -> Result<Option<String>, ()> {
    match field {
        None => Ok(None),
        Some(text) => text.within(max).map(Some).ok_or(()),
    }
}

impl WireEvent<'_> {
    /// The event, if it passes every rule of schema v1 and `limits`; `None` if any is broken
    /// (then [`validate_owned`](super::validate_owned) of the same JSON says which).
    pub fn check(self, limits: &EventLimits) -> Option<Event> {
        let id = match self.id {
            None => None,
            Some(id) => {
                let s = id.within(MAX_ID_CHARS)?;
                Some(event_id(&s).ok()?)
            }
        };
        let actor = self.actor.check()?;
        let action = self.action.within(MAX_NAME_CHARS)?;
        if !is_action_name(&action) {
            return None;
        }
        let resource = Resource {
            kind: self.resource.kind.within(MAX_NAME_CHARS)?,
            id: self.resource.id.within(MAX_ID_CHARS)?,
            name: optional(self.resource.name, MAX_TEXT_CHARS).ok()?,
        };
        let outcome = Outcome::named(&self.outcome)?;
        let reason = optional(self.reason, MAX_TEXT_CHARS).ok()?;
        let policy = match self.policy {
            None => None,
            Some(p) => Some(Policy {
                id: p.id.within(MAX_ID_CHARS)?,
                version: optional(p.version, MAX_ID_CHARS).ok()?,
            }),
        };
        let tenant = optional(self.tenant, MAX_ID_CHARS).ok()?;
        let source = optional(self.source, MAX_ID_CHARS).ok()?;
        let (context, context_canonical) = match self.context {
            None => (None, None),
            Some(map) => {
                let canonical = canonical_context(&map, limits).ok()?;
                (Some(map), canonical)
            }
        };
        let client_time = optional(self.client_time, MAX_CLIENT_TIME_CHARS).ok()?;
        if let Some(t) = &client_time {
            parse_unix_nanos_wide(t).ok()?;
        }
        Some(Event {
            id,
            actor,
            action,
            resource,
            outcome,
            reason,
            policy,
            tenant,
            source,
            change: self.change,
            context,
            context_canonical,
            client_time,
            original: None,
        })
    }
}

impl WireActor<'_> {
    fn check(self) -> Option<Actor> {
        let kind = ActorType::named(&self.kind)?;
        let ip = optional(self.ip, MAX_IP_CHARS).ok()?;
        if ip.as_deref().is_some_and(|ip| !is_ip_literal(ip)) {
            return None;
        }
        Some(Actor {
            kind,
            id: self.id.within(MAX_ID_CHARS)?,
            name: optional(self.name, MAX_TEXT_CHARS).ok()?,
            ip,
            user_agent: optional(self.user_agent, MAX_TEXT_CHARS).ok()?,
            session_id: optional(self.session_id, MAX_ID_CHARS).ok()?,
        })
    }
}

impl Event {
    /// Fills in `source` and `tenant` where the event leaves them out (a writer's bindings),
    /// checking each value by the rule a sent one meets. `false`, and the event unchanged, if
    /// a value breaks it or the field is already set.
    pub fn fill_in(&mut self, source: Option<String>, tenant: Option<String>) -> bool {
        let fits = |field: &Option<String>, value: &Option<String>| match value {
            None => true,
            Some(v) => field.is_none() && text_problem(v, MAX_ID_CHARS).is_none(),
        };
        if !fits(&self.source, &source) || !fits(&self.tenant, &tenant) {
            return false;
        }
        if source.is_some() {
            self.source = source;
        }
        if tenant.is_some() {
            self.tenant = tenant;
        }
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let v: Vec<Option<Str<'_>>> =
            serde_json::from_str(r#"["plain","esc\"aped",null]"#).unwrap();
        assert!(matches!(v[0], Some(Str(Cow::Borrowed("plain")))));
        assert!(matches!(&v[1], Some(Str(Cow::Owned(s))) if s == "esc\"aped"));
        assert!(v[2].is_none());
        let err = serde_json::from_str::<Str<'_>>("5").unwrap_err();
        assert!(err.to_string().contains("expected a string"), "{err}");
    }
}
