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
    Actor, ActorType, Canonical, Event, EventLimits, Named, Outcome, Policy, Resource,
    MAX_CLIENT_TIME_CHARS, MAX_ID_CHARS, MAX_IP_CHARS, MAX_NAME_CHARS, MAX_TEXT_CHARS,
};
use crate::timestamp::parse_unix_nanos_wide;

/// An event in the shape it is sent in: schema v1's fields and no others, each of the right
/// JSON type, strings as sent. Not yet checked against the schema's rules: see
/// [`WireEvent::check`].
///
/// Two kinds of producers make one. Client intake deserializes it from a request body (the
/// fast path above). Integrations build one in code from a source record, with `original` set
/// to the record verbatim: their mapped events skip building a `serde_json::Value` just to
/// validate it, and still pass exactly the rules a client's event passes.
#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct WireEvent<'a> {
    /// `id`: a hyphenated UUID.
    #[serde(borrow, default, deserialize_with = "present")]
    pub id: Option<Str<'a>>,
    /// `actor`.
    #[serde(borrow)]
    pub actor: WireActor<'a>,
    /// `action`: a dotted name.
    #[serde(borrow)]
    pub action: Str<'a>,
    /// `resource`.
    #[serde(borrow)]
    pub resource: WireResource<'a>,
    /// `outcome`: `allow`, `deny` or `error`.
    #[serde(borrow)]
    pub outcome: Str<'a>,
    /// `reason`.
    #[serde(borrow, default, deserialize_with = "present")]
    pub reason: Option<Str<'a>>,
    /// `policy`.
    #[serde(borrow, default, deserialize_with = "present")]
    pub policy: Option<WirePolicy<'a>>,
    /// `tenant`.
    #[serde(borrow, default, deserialize_with = "present")]
    pub tenant: Option<Str<'a>>,
    /// `source`.
    #[serde(borrow, default, deserialize_with = "present")]
    pub source: Option<Str<'a>>,
    /// `change`.
    #[serde(default, deserialize_with = "present")]
    pub change: Option<Map<String, Value>>,
    /// `context`.
    #[serde(default, deserialize_with = "present")]
    pub context: Option<Map<String, Value>>,
    /// `client_time`: RFC 3339.
    #[serde(borrow, default, deserialize_with = "present")]
    pub client_time: Option<Str<'a>>,
    /// `original`: the source record verbatim, which only integrations set. Never read from
    /// JSON: a client's event that holds it is an unknown field here, so full validation
    /// answers it (and says why it is refused).
    #[serde(skip)]
    pub original: Option<Str<'a>>,
}

/// The `actor` of a [`WireEvent`].
#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct WireActor<'a> {
    /// `type`: `user`, `service` or `system`.
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    /// `id`.
    #[serde(borrow)]
    pub id: Str<'a>,
    /// `name`.
    #[serde(borrow, default, deserialize_with = "present")]
    pub name: Option<Str<'a>>,
    /// `ip`: an IPv4 or IPv6 literal.
    #[serde(borrow, default, deserialize_with = "present")]
    pub ip: Option<Str<'a>>,
    /// `user_agent`.
    #[serde(borrow, default, deserialize_with = "present")]
    pub user_agent: Option<Str<'a>>,
    /// `session_id`.
    #[serde(borrow, default, deserialize_with = "present")]
    pub session_id: Option<Str<'a>>,
}

/// The `resource` of a [`WireEvent`].
#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct WireResource<'a> {
    /// `type`.
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    /// `id`.
    #[serde(borrow)]
    pub id: Str<'a>,
    /// `name`.
    #[serde(borrow, default, deserialize_with = "present")]
    pub name: Option<Str<'a>>,
}

/// The `policy` of a [`WireEvent`].
#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct WirePolicy<'a> {
    /// `id`.
    #[serde(borrow)]
    pub id: Str<'a>,
    /// `version`.
    #[serde(borrow, default, deserialize_with = "present")]
    pub version: Option<Str<'a>>,
}

// Each wire type takes a JSON object only: serde's derived structs also accept an array of
// their fields in order (`"policy": ["p"]`), which schema v1, and full validation, refuse.
crate::objects_only!(WireEvent, WireActor, WireResource, WirePolicy);

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

impl<'a> From<&'a str> for Str<'a> {
    fn from(s: &'a str) -> Self {
        Str(Cow::Borrowed(s))
    }
}

impl From<String> for Str<'_> {
    fn from(s: String) -> Self {
        Str(Cow::Owned(s))
    }
}

impl Str<'_> {
    fn into_string(self) -> String {
        self.0.into_owned()
    }
}

/// Whether `s` is a valid string field of at most `max` characters.
fn fits(s: &str, max: usize) -> bool {
    text_problem(s, max).is_none()
}

/// Whether an optional string field is absent or valid.
fn fits_opt(s: &Option<Str<'_>>, max: usize) -> bool {
    s.as_ref().is_none_or(|s| fits(s, max))
}

fn owned(s: Option<Str<'_>>) -> Option<String> {
    s.map(Str::into_string)
}

/// What [`WireEvent::check`] derives from the fields while it tests them.
struct Derived {
    id: Option<uuid::Uuid>,
    actor_kind: ActorType,
    outcome: Outcome,
    context_canonical: Option<Canonical>,
}

impl<'a> WireEvent<'a> {
    /// The event, if it passes every rule of schema v1 and `limits` (`original`, when set,
    /// must be a non-empty string); otherwise the wire event back, untouched, for
    /// [`validate_owned`](super::validate_owned) or
    /// [`validate_ingested`](super::validate_ingested) of [`WireEvent::into_value`] to say
    /// which rules it breaks. Every rule is tested before anything is moved, so a refusal
    /// costs no copy.
    ///
    /// # Errors
    ///
    /// The unchanged `self` when any rule is broken (boxed: it is large, and the rare case).
    pub fn check(self, limits: &EventLimits) -> Result<Event, Box<Self>> {
        match self.derive(limits) {
            Some(derived) => Ok(self.into_event(derived)),
            None => Err(Box::new(self)),
        }
    }

    fn derive(&self, limits: &EventLimits) -> Option<Derived> {
        let id = match &self.id {
            None => None,
            Some(id) if fits(id, MAX_ID_CHARS) => Some(event_id(id).ok()?),
            Some(_) => return None,
        };
        let actor_kind = self.actor.derive()?;
        let resource = &self.resource;
        let policy_fits = self
            .policy
            .as_ref()
            .is_none_or(|p| fits(&p.id, MAX_ID_CHARS) && fits_opt(&p.version, MAX_ID_CHARS));
        let rules = fits(&self.action, MAX_NAME_CHARS)
            && is_action_name(&self.action)
            && fits(&resource.kind, MAX_NAME_CHARS)
            && fits(&resource.id, MAX_ID_CHARS)
            && fits_opt(&resource.name, MAX_TEXT_CHARS)
            && fits_opt(&self.reason, MAX_TEXT_CHARS)
            && policy_fits
            && fits_opt(&self.tenant, MAX_ID_CHARS)
            && fits_opt(&self.source, MAX_ID_CHARS)
            && fits_opt(&self.client_time, MAX_CLIENT_TIME_CHARS)
            && self
                .client_time
                .as_ref()
                .is_none_or(|t| parse_unix_nanos_wide(t).is_ok())
            && fits_opt(&self.original, usize::MAX);
        if !rules {
            return None;
        }
        let outcome = Outcome::named(&self.outcome)?;
        let context_canonical = match &self.context {
            None => None,
            Some(map) => canonical_context(map, limits).ok()?,
        };
        Some(Derived {
            id,
            actor_kind,
            outcome,
            context_canonical,
        })
    }

    fn into_event(self, derived: Derived) -> Event {
        let actor = self.actor;
        let resource = self.resource;
        Event {
            id: derived.id,
            actor: Actor {
                kind: derived.actor_kind,
                id: actor.id.into_string(),
                name: owned(actor.name),
                ip: owned(actor.ip),
                user_agent: owned(actor.user_agent),
                session_id: owned(actor.session_id),
            },
            action: self.action.into_string(),
            resource: Resource {
                kind: resource.kind.into_string(),
                id: resource.id.into_string(),
                name: owned(resource.name),
            },
            outcome: derived.outcome,
            reason: owned(self.reason),
            policy: self.policy.map(|p| Policy {
                id: p.id.into_string(),
                version: owned(p.version),
            }),
            tenant: owned(self.tenant),
            source: owned(self.source),
            change: self.change,
            context: self.context,
            context_canonical: derived.context_canonical,
            client_time: owned(self.client_time),
            original: owned(self.original),
        }
    }

    /// The event as the JSON object it stands for (the fields that are set, `original`
    /// included), for full validation to report what [`WireEvent::check`] refused.
    pub fn into_value(self) -> Value {
        fn put(map: &mut Map<String, Value>, key: &str, value: Option<Str<'_>>) {
            if let Some(v) = value {
                map.insert(key.to_owned(), Value::String(v.into_string()));
            }
        }
        let mut actor = Map::new();
        put(&mut actor, "type", Some(self.actor.kind));
        put(&mut actor, "id", Some(self.actor.id));
        put(&mut actor, "name", self.actor.name);
        put(&mut actor, "ip", self.actor.ip);
        put(&mut actor, "user_agent", self.actor.user_agent);
        put(&mut actor, "session_id", self.actor.session_id);
        let mut resource = Map::new();
        put(&mut resource, "type", Some(self.resource.kind));
        put(&mut resource, "id", Some(self.resource.id));
        put(&mut resource, "name", self.resource.name);
        let mut event = Map::new();
        put(&mut event, "id", self.id);
        event.insert("actor".to_owned(), Value::Object(actor));
        put(&mut event, "action", Some(self.action));
        event.insert("resource".to_owned(), Value::Object(resource));
        put(&mut event, "outcome", Some(self.outcome));
        put(&mut event, "reason", self.reason);
        if let Some(p) = self.policy {
            let mut policy = Map::new();
            put(&mut policy, "id", Some(p.id));
            put(&mut policy, "version", p.version);
            event.insert("policy".to_owned(), Value::Object(policy));
        }
        put(&mut event, "tenant", self.tenant);
        put(&mut event, "source", self.source);
        if let Some(change) = self.change {
            event.insert("change".to_owned(), Value::Object(change));
        }
        if let Some(context) = self.context {
            event.insert("context".to_owned(), Value::Object(context));
        }
        put(&mut event, "client_time", self.client_time);
        put(&mut event, "original", self.original);
        Value::Object(event)
    }
}

impl WireActor<'_> {
    fn derive(&self) -> Option<ActorType> {
        let rules = fits(&self.id, MAX_ID_CHARS)
            && fits_opt(&self.name, MAX_TEXT_CHARS)
            && fits_opt(&self.ip, MAX_IP_CHARS)
            && self.ip.as_ref().is_none_or(|ip| is_ip_literal(ip))
            && fits_opt(&self.user_agent, MAX_TEXT_CHARS)
            && fits_opt(&self.session_id, MAX_ID_CHARS);
        if rules {
            ActorType::named(&self.kind)
        } else {
            None
        }
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
