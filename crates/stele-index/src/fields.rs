//! What the index takes from each entry: the commit time, one term per keyword field, the
//! full-text tokens of `reason` and `context`, and (for permission-change events) the change
//! that replay folds.
//!
//! Parsing borrows from the entry bytes wherever the JSON has no escapes and never builds a
//! `serde_json::Value`, because this runs once per appended event and the index must keep up
//! with the log: a single-pass reader ([`crate::scan`]) takes nearly every entry, and serde
//! reads (and defines the result for) whatever that reader is unsure of.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use stele_core::timestamp::Timestamp;

use crate::replay::{ChangeKind, ChangeRecord};
use crate::scan::Parts;

/// A keyword field: every event has at most one term in it, matched exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// `actor.id`.
    Actor = 0,
    /// `actor.type`.
    ActorType = 1,
    /// `action`.
    Action = 2,
    /// `resource.type`.
    ResourceType = 3,
    /// `resource.id`.
    ResourceId = 4,
    /// `outcome`.
    Outcome = 5,
    /// `tenant`.
    Tenant = 6,
    /// `source`.
    Source = 7,
    /// `actor.session_id`.
    Session = 8,
    /// `actor.ip`.
    Ip = 9,
}

/// Posting tables of a chunk: the keyword fields, then the full-text tokens, then the
/// entries that are not events.
pub(crate) const TABLES: usize = 12;
/// Table of full-text tokens.
pub(crate) const TEXT: usize = 10;
/// Table of entries that are not events (a single term, the empty string).
pub(crate) const INVALID: usize = 11;

impl Field {
    /// Every keyword field, in table order.
    pub const ALL: [Field; 10] = [
        Field::Actor,
        Field::ActorType,
        Field::Action,
        Field::ResourceType,
        Field::ResourceId,
        Field::Outcome,
        Field::Tenant,
        Field::Source,
        Field::Session,
        Field::Ip,
    ];

    /// The posting table of this field.
    pub(crate) fn table(self) -> usize {
        self as usize
    }

    /// The field's name as a query parameter and `group_by` value.
    pub fn name(self) -> &'static str {
        match self {
            Field::Actor => "actor",
            Field::ActorType => "actor_type",
            Field::Action => "action",
            Field::ResourceType => "resource_type",
            Field::ResourceId => "resource_id",
            Field::Outcome => "outcome",
            Field::Tenant => "tenant",
            Field::Source => "source",
            Field::Session => "session",
            Field::Ip => "ip",
        }
    }

    /// The field named `name` (see [`Field::name`]).
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Longest token kept, in bytes: longer runs (hashes, base64 blobs) are not words anyone
/// searches for, and would only bloat the dictionary.
pub const MAX_TOKEN_BYTES: usize = 64;

/// Splits `text` into full-text tokens: maximal runs of alphanumeric characters, lowercased;
/// runs longer than [`MAX_TOKEN_BYTES`] are dropped. Queries (`q`) are tokenized the same way.
pub fn tokenize(text: &str, out: &mut Vec<String>) {
    let mut tokens = Vec::new();
    tokenize_into(text, &mut tokens);
    out.extend(tokens.into_iter().map(Cow::into_owned));
}

/// [`tokenize`], borrowing tokens from `text` when they are already lowercase ASCII (most
/// are), since this runs for every indexed event.
pub(crate) fn tokenize_into<'a>(text: &'a str, out: &mut Vec<Cow<'a, str>>) {
    if !text.is_ascii() {
        return tokenize_unicode(text, out);
    }
    // For ASCII text, `char::is_alphanumeric` is `is_ascii_alphanumeric` and lowercasing is
    // ASCII lowercasing: the same tokens as `tokenize_unicode`, without decoding chars.
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        let mut upper = false;
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            upper |= b[i].is_ascii_uppercase();
            i += 1;
        }
        if i - start > MAX_TOKEN_BYTES {
            continue;
        }
        // Runs of ASCII bytes lie on char boundaries.
        let Some(word) = text.get(start..i) else {
            continue;
        };
        out.push(if upper {
            Cow::Owned(word.to_ascii_lowercase())
        } else {
            Cow::Borrowed(word)
        });
    }
}

/// [`tokenize_into`] for text that is not all ASCII.
fn tokenize_unicode<'a>(text: &'a str, out: &mut Vec<Cow<'a, str>>) {
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() || word.len() > MAX_TOKEN_BYTES {
            continue;
        }
        if word
            .bytes()
            .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
        {
            out.push(Cow::Borrowed(word));
        } else {
            out.push(Cow::Owned(word.to_lowercase()));
        }
    }
}

/// [`tokenize_into`] for text that does not outlive the call: every token is owned.
pub(crate) fn tokenize_owned(text: &str, out: &mut Vec<Cow<'_, str>>) {
    let mut tokens = Vec::new();
    tokenize_into(text, &mut tokens);
    out.extend(tokens.into_iter().map(|t| Cow::Owned(t.into_owned())));
}

/// What the index keeps of one entry.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Extracted<'a> {
    /// Commit time in ns (`None` for an entry that is not an event).
    pub time: Option<i64>,
    /// Term per keyword field, in [`Field::ALL`] order.
    pub terms: [Option<Cow<'a, str>>; 10],
    /// Full-text tokens, in text order, possibly repeated.
    pub tokens: Vec<Cow<'a, str>>,
    /// The permission change this event makes, if it is one replay folds.
    pub change: Option<Box<ChangeRecord>>,
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    actor: RawActor<'a>,
    #[serde(borrow)]
    resource: RawResource<'a>,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    #[serde(borrow, default)]
    tenant: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow, default)]
    change: Option<&'a RawValue>,
    #[serde(borrow, default)]
    context: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawActor<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    ip: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    session_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawResource<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
}

/// Extracts the indexed fields of `entry` at log index `index`. An entry that is not a stored
/// event (not JSON, or lacking a required field or a valid `time`) yields `time: None` and
/// nothing else: the index records it as not an event, and no query returns it.
///
/// The single-pass reader in [`crate::scan`] handles nearly every entry; whatever it is unsure
/// of, serde reads, and serde's reading is what defines the result.
pub(crate) fn extract(index: u64, entry: &[u8]) -> Extracted<'_> {
    match crate::scan::scan(entry).or_else(|| serde_parts(entry)) {
        Some(parts) => finish(index, parts),
        None => Extracted::default(),
    }
}

/// [`extract`] by serde alone: the reference the fast path is tested against.
#[cfg(test)]
pub(crate) fn extract_serde(index: u64, entry: &[u8]) -> Extracted<'_> {
    serde_parts(entry).map_or_else(Extracted::default, |p| finish(index, p))
}

/// The indexed fields of `entry` as serde reads them, or `None` if it is not an event.
fn serde_parts(entry: &[u8]) -> Option<Parts<'_>> {
    let ev = serde_json::from_slice::<RawEvent<'_>>(entry).ok()?;
    let mut context_tokens = Vec::new();
    if let Some(context) = ev.context {
        let mut de = serde_json::Deserializer::from_str(context.get());
        // A context that fails to walk (past serde_json's nesting limit, or holding a number
        // an f64 cannot hold) adds the tokens found before the failure.
        let _ = TextSink(&mut context_tokens).deserialize(&mut de);
    }
    Some(Parts {
        action: Some(ev.action),
        actor_kind: Some(ev.actor.kind),
        actor_id: Some(ev.actor.id),
        ip: ev.actor.ip,
        session: ev.actor.session_id,
        resource_kind: Some(ev.resource.kind),
        resource_id: Some(ev.resource.id),
        outcome: Some(ev.outcome),
        tenant: ev.tenant,
        source: ev.source,
        reason: ev.reason,
        time: Some(ev.time),
        change: ev.change.map(RawValue::get),
        context_tokens,
    })
}

/// What the index keeps of an event's fields.
fn finish(index: u64, p: Parts<'_>) -> Extracted<'_> {
    let Some(Ok(time)) = p.time.as_deref().map(Timestamp::parse) else {
        return Extracted::default();
    };
    let time = time.unix_nanos();
    // The reason's tokens, then the context's: appended to the context's vector and rotated
    // to the front, which spares an allocation per event.
    let mut tokens = p.context_tokens;
    let context = tokens.len();
    match p.reason {
        Some(Cow::Borrowed(reason)) => tokenize_into(reason, &mut tokens),
        Some(Cow::Owned(reason)) => tokenize_owned(&reason, &mut tokens),
        None => {}
    }
    tokens.rotate_left(context);
    let action = p.action.unwrap_or_default();
    let change = ChangeKind::of_action(&action)
        .filter(|_| p.outcome.as_deref() == Some("allow"))
        .and_then(|kind| ChangeRecord::parse(kind, index, time, p.change?))
        // Boxed: few events are changes, and inline the record was a third of every
        // extracted entry the follower moves and walks.
        .map(Box::new);
    Extracted {
        time: Some(time),
        terms: [
            p.actor_id,
            p.actor_kind,
            Some(action),
            p.resource_kind,
            p.resource_id,
            p.outcome,
            p.tenant,
            p.source,
            p.session,
            p.ip,
        ],
        tokens,
        change,
    }
}

/// Walks a JSON value and tokenizes every string value in it (object keys are not text).
struct TextSink<'b, 'de>(&'b mut Vec<Cow<'de, str>>);

impl<'de> DeserializeSeed<'de> for TextSink<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextSink<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<(), E> {
        tokenize_into(v, self.0);
        Ok(())
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        tokenize_owned(v, self.0);
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(TextSink(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            map.next_value_seed(TextSink(&mut *self.0))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_lowercases_and_splits_on_non_alphanumerics() {
        let mut out = Vec::new();
        tokenize("Break-glass TICKET #4711, Ärger; x", &mut out);
        assert_eq!(out, ["break", "glass", "ticket", "4711", "ärger", "x"]);
        out.clear();
        tokenize(&"a".repeat(65), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn extract_takes_every_field_and_the_text_of_reason_and_context() {
        let entry = br#"{"action":"role.grant","actor":{"id":"u\"1","ip":"10.0.0.1","session_id":"s1","type":"user"},"change":{"principal":"bob","role":"admin"},"context":{"k":["Deep Word",{"n":"Nested"}],"num":5,"ticket":"T-9"},"id":"0190d7a4-5c1e-7cc4-9b8e-0a1b2c3d4e5f","outcome":"allow","reason":"Approved","resource":{"id":"admin","type":"role"},"source":"gw","tenant":"acme","time":"2026-01-02T03:04:05.000000006Z"}"#;
        let x = extract(7, entry);
        assert_eq!(
            x.time,
            Some(
                Timestamp::parse("2026-01-02T03:04:05.000000006Z")
                    .unwrap()
                    .unix_nanos()
            )
        );
        let terms: Vec<Option<&str>> = x.terms.iter().map(|t| t.as_deref()).collect();
        assert_eq!(
            terms,
            [
                Some("u\"1"),
                Some("user"),
                Some("role.grant"),
                Some("role"),
                Some("admin"),
                Some("allow"),
                Some("acme"),
                Some("gw"),
                Some("s1"),
                Some("10.0.0.1")
            ]
        );
        let mut tokens = x.tokens.clone();
        tokens.sort();
        assert_eq!(tokens, ["9", "approved", "deep", "nested", "t", "word"]);
        let change = x.change.unwrap();
        assert_eq!((change.index, &*change.principal), (7, "bob"));
    }

    #[test]
    fn entries_that_are_not_events_yield_nothing() {
        for entry in [&b"not json"[..], b"{}", br#"{"action":"a.b"}"#] {
            let x = extract(0, entry);
            assert!(x.time.is_none() && x.terms.iter().all(Option::is_none));
        }
        let bad_time = br#"{"action":"a.b","actor":{"id":"a","type":"user"},"outcome":"allow","resource":{"id":"r","type":"t"},"time":"yesterday"}"#;
        assert!(extract(0, bad_time).time.is_none());
    }
}
