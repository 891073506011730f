//! The event, schema v1: validation with JSON paths, and the canonical encoding stored as the
//! log entry.
//!
//! [`validate`] turns a client's JSON into an [`Event`], reporting *every* problem with its JSON
//! path. [`Event::prepare`] adds the server-assigned fields (`id`, `time`, maybe
//! `client_time_skewed`) and encodes the result with RFC 8785 (JCS); those bytes are the log
//! entry, and its leaf hash is `SHA-256(0x00 ‖ bytes)` (RFC 6962 §2.1). Because JCS sorts keys
//! and `time` sorts after every other top-level field, the time value is always the last 30
//! bytes before `"}`, so [`stamp_time`] can overwrite it in place when the store sequences the
//! entry. The field reference is `docs/event-schema.md`; the JSON Schema is
//! `schema/event-v1.schema.json`.
//!
//! Numbers inside `context` and `change` are stored as RFC 8785 prints them: as IEEE-754
//! doubles, so integers beyond ±2^53 lose precision. Parsing a stored entry and applying JCS
//! again reproduces it byte for byte.
//!
//! Preparing is on the intake hot path, so the entry is written straight from the typed
//! [`Event`]: schema v1's keys are fixed and all ASCII, so their RFC 8785 order (UTF-16 code
//! units) is byte order and can be spelled out once in [`Event::encode`]. Only the free-form
//! `change` and `context` go through a general JCS serializer. The tests compare this writer
//! with serializing the event to a `Value` and canonicalizing that.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;
use uuid::Uuid;

use crate::timestamp::{parse_unix_nanos_wide, Timestamp, TIMESTAMP_LEN};
use json_str::write_str;

mod check;
mod flat_jcs;
mod json_str;
mod wire;

pub use check::{validate, validate_ingested, validate_owned, InvalidEvent};
pub use wire::{Str, WireActor, WireEvent, WirePolicy, WireResource};

/// Longest identifier (`actor.id`, `resource.id`, `session_id`, `policy.*`, `tenant`,
/// `source`), in Unicode scalar values (what JSON Schema's `maxLength` counts).
pub const MAX_ID_CHARS: usize = 256;
/// Longest free-text field (`actor.name`, `actor.user_agent`, `resource.name`, `reason`).
pub const MAX_TEXT_CHARS: usize = 1024;
/// Longest `action` and `resource.type`.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest `client_time`.
pub const MAX_CLIENT_TIME_CHARS: usize = 64;
/// Longest IP literal (an IPv4-mapped IPv6 address in full is 45 characters).
pub const MAX_IP_CHARS: usize = 45;
/// Largest entry tlog-tiles can hold: entry bundles prefix each entry with a `uint16` length.
pub const MAX_ENTRY_BYTES: usize = 65_535;
/// Length of [`PreparedEvent::content_digest`].
pub const DIGEST_LEN: usize = 16;

/// Bounds applied by [`validate`] and [`Event::prepare`] that a deployment may tune.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimits {
    /// Largest `context`, measured as its RFC 8785 canonical bytes. Default 16 KiB.
    pub max_context_bytes: usize,
    /// Largest canonical entry. Default (and ceiling) [`MAX_ENTRY_BYTES`].
    pub max_entry_bytes: usize,
    /// How far `client_time` may be from the server's time before the stored event is
    /// marked `client_time_skewed`. Default 5 minutes.
    pub client_time_tolerance_ns: i64,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            max_context_bytes: 16 * 1024,
            max_entry_bytes: MAX_ENTRY_BYTES,
            client_time_tolerance_ns: 5 * 60 * 1_000_000_000,
        }
    }
}

impl EventLimits {
    /// No size limits: for re-reading entries that were accepted under a deployment's limits.
    const UNBOUNDED: Self = Self {
        max_context_bytes: usize::MAX,
        max_entry_bytes: usize::MAX,
        client_time_tolerance_ns: i64::MAX,
    };
}

/// One problem with a submitted event. The server returns these as
/// `{"error": "invalid event", "problems": [{"path": …, "message": …}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// JSON path of the offending value, like `$.actor.type`; `$` for the whole event.
    pub path: String,
    /// What is wrong, in words a client developer can act on.
    pub message: String,
}

impl FieldError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorType {
    /// A person.
    User,
    /// A workload acting with its own identity.
    Service,
    /// The platform itself (schedulers, reconcilers).
    System,
}

/// What the authorization decision was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Permitted.
    Allow,
    /// Refused.
    Deny,
    /// No decision could be made.
    Error,
}

/// The `actor` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// `type`.
    #[serde(rename = "type")]
    pub kind: ActorType,
    /// Stable identifier of the actor.
    pub id: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// IPv4 or IPv6 literal, kept as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// HTTP `User-Agent` or similar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Session the action belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// The `resource` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    /// Kind of resource, like `document` or `role`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Identifier of the resource.
    pub id: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The `policy` object: which policy decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Identifier of the policy.
    pub id: String,
    /// Version of the policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A validated event as a client submitted it (no `time`).
///
/// Only [`validate`] (or deserializing, which runs [`validate`] with default limits) makes
/// one, so every `Event` satisfies schema v1. Serializes to the client form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value")]
pub struct Event {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Uuid>,
    actor: Actor,
    action: String,
    resource: Resource,
    outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<Policy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    change: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<Map<String, Value>>,
    /// `context` in RFC 8785 form: validation computes it to bound its size, and
    /// [`Event::encode`] stores it as is instead of canonicalizing a second time.
    #[serde(skip)]
    context_canonical: Option<Canonical>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_time: Option<String>,
    /// The source record verbatim, set only by integrations ([`validate_ingested`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    original: Option<String>,
}

/// RFC 8785 bytes of a JSON value, kept next to the value they encode.
#[derive(Clone, PartialEq, Eq)]
struct Canonical(Vec<u8>);

impl fmt::Debug for Canonical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

/// Why [`Event::encode`] could not build the stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PrepareError {
    /// The canonical entry is longer than the limit.
    #[error("the stored event is {size} bytes in canonical form; the limit is {limit} bytes")]
    TooLarge {
        /// Length of the canonical entry, in bytes.
        size: usize,
        /// The limit applied: `limits.max_entry_bytes`, never more than [`MAX_ENTRY_BYTES`].
        limit: usize,
    },
    /// A bug, not the client's doing (for example `change` failing to canonicalize, which
    /// a value that came from JSON cannot).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<PrepareError> for FieldError {
    /// The problem [`Event::prepare`] reports: path `$`, the error's message.
    fn from(e: PrepareError) -> Self {
        FieldError::new("$", e.to_string())
    }
}

impl TryFrom<Value> for Event {
    type Error = InvalidEvent;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        validate_owned(value, &EventLimits::default()).map_err(InvalidEvent)
    }
}

impl Event {
    /// The client-chosen id, if it sent one.
    pub fn id(&self) -> Option<Uuid> {
        self.id
    }
    /// `actor`.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
    /// `action`, like `role.grant`.
    pub fn action(&self) -> &str {
        &self.action
    }
    /// `resource`.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }
    /// `outcome`.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }
    /// `reason`.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
    /// `policy`.
    pub fn policy(&self) -> Option<&Policy> {
        self.policy.as_ref()
    }
    /// `tenant`.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
    /// `source`.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }
    /// `change`: permission-change details.
    pub fn change(&self) -> Option<&Map<String, Value>> {
        self.change.as_ref()
    }
    /// `context`: free-form data.
    pub fn context(&self) -> Option<&Map<String, Value>> {
        self.context.as_ref()
    }
    /// `client_time` exactly as the client sent it.
    pub fn client_time(&self) -> Option<&str> {
        self.client_time.as_deref()
    }
    /// `original`: the record an integration received, verbatim (never set by a client).
    pub fn original(&self) -> Option<&str> {
        self.original.as_deref()
    }

    /// Whether `client_time` is more than `tolerance_ns` away from `now`. A client time that
    /// cannot be read counts as skewed (validation makes that impossible).
    pub fn client_time_skewed(&self, now: Timestamp, tolerance_ns: i64) -> bool {
        let Some(client_time) = &self.client_time else {
            return false;
        };
        let Ok(client) = parse_unix_nanos_wide(client_time) else {
            return true;
        };
        let tolerance = u128::try_from(tolerance_ns).unwrap_or(0);
        i128::from(now.unix_nanos()).abs_diff(client) > tolerance
    }

    /// Builds the stored entry: the event plus `id` (the client's, else `assigned_id`),
    /// `time` = `now` as a placeholder to be overwritten by [`stamp_time`], and
    /// `"client_time_skewed": true` when `client_time` is off from `now` by more than
    /// `limits.client_time_tolerance_ns`.
    ///
    /// # Errors
    ///
    /// Path `$` if the canonical entry is longer than `limits.max_entry_bytes` (never more
    /// than [`MAX_ENTRY_BYTES`]).
    pub fn prepare(
        self,
        assigned_id: Uuid,
        now: Timestamp,
        limits: &EventLimits,
    ) -> Result<PreparedEvent, FieldError> {
        self.encode(assigned_id, now, limits)
            .map_err(FieldError::from)
    }

    /// [`Event::prepare`] without consuming the event, and with a typed error that carries
    /// the size of an oversized entry.
    ///
    /// # Errors
    ///
    /// [`PrepareError::TooLarge`] if the canonical entry is longer than
    /// `limits.max_entry_bytes` (never more than [`MAX_ENTRY_BYTES`]).
    pub fn encode(
        &self,
        assigned_id: Uuid,
        now: Timestamp,
        limits: &EventLimits,
    ) -> Result<PreparedEvent, PrepareError> {
        let id = self.id.unwrap_or(assigned_id);
        let skewed = self.client_time_skewed(now, limits.client_time_tolerance_ns);
        let mut bytes = Vec::with_capacity(self.encoded_len_hint());
        let skew_at = self.write_members(id, skewed, &mut bytes)?;
        // The digest covers the entry without `time` and `client_time_skewed`: the members
        // just written, minus the skew flag if any, and the closing brace.
        let content_digest = if skewed {
            let before = bytes.get(..skew_at);
            let after = skew_at
                .checked_add(SKEWED.len())
                .and_then(|end| bytes.get(end..));
            match (before, after) {
                (Some(before), Some(after)) => digest_parts(&[before, after, b"}"]),
                _ => return Err(PrepareError::Internal("skew flag misplaced".to_owned())),
            }
        } else {
            digest_parts(&[&bytes, b"}"])
        };
        // `time` sorts after every other key, so it is the last member.
        bytes.extend_from_slice(b",\"time\":\"");
        let time_offset = bytes.len();
        let mut time = [0u8; TIMESTAMP_LEN];
        now.write_to(&mut time);
        bytes.extend_from_slice(&time);
        bytes.extend_from_slice(b"\"}");
        let limit = limits.max_entry_bytes.min(MAX_ENTRY_BYTES);
        if bytes.len() > limit {
            return Err(PrepareError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        let time_offset = time_offset_checked(&bytes, time_offset)
            .ok_or_else(|| PrepareError::Internal("time is not last".to_owned()))?;
        Ok(PreparedEvent {
            id,
            bytes,
            time_offset,
            content_digest,
        })
    }

    /// Writes the entry's members in RFC 8785 order up to, not including, `time` and the
    /// closing brace: `{"action":…,…,"tenant":…`. Returns where `client_time_skewed` was (or
    /// would have been) written.
    ///
    /// Every key is ASCII, so sorting by UTF-16 code units is sorting by bytes:
    /// action < actor < change < client_time < client_time_skewed < context < id < original <
    /// outcome < policy < reason < resource < source < tenant (< time); inside `actor`
    /// id < ip < name < session_id < type < user_agent; inside `resource` id < name < type;
    /// inside `policy` id < version.
    fn write_members(
        &self,
        id: Uuid,
        skewed: bool,
        out: &mut Vec<u8>,
    ) -> Result<usize, PrepareError> {
        let canonicalize =
            |e: serde_json::Error| PrepareError::Internal(format!("canonicalization failed: {e}"));
        out.extend_from_slice(b"{\"action\":");
        write_str(out, &self.action);
        let actor = &self.actor;
        out.extend_from_slice(b",\"actor\":{\"id\":");
        write_str(out, &actor.id);
        write_opt(out, b",\"ip\":", actor.ip.as_deref());
        write_opt(out, b",\"name\":", actor.name.as_deref());
        write_opt(out, b",\"session_id\":", actor.session_id.as_deref());
        out.extend_from_slice(b",\"type\":");
        write_str(out, actor.kind.name());
        write_opt(out, b",\"user_agent\":", actor.user_agent.as_deref());
        out.push(b'}');
        if let Some(change) = &self.change {
            out.extend_from_slice(b",\"change\":");
            serde_json_canonicalizer::to_writer(change, out).map_err(canonicalize)?;
        }
        write_opt(out, b",\"client_time\":", self.client_time.as_deref());
        let skew_at = out.len();
        if skewed {
            out.extend_from_slice(SKEWED);
        }
        match (&self.context_canonical, &self.context) {
            (Some(Canonical(canonical)), _) => {
                out.extend_from_slice(b",\"context\":");
                out.extend_from_slice(canonical);
            }
            (None, Some(context)) => {
                out.extend_from_slice(b",\"context\":");
                serde_json_canonicalizer::to_writer(context, out).map_err(canonicalize)?;
            }
            (None, None) => {}
        }
        out.extend_from_slice(b",\"id\":");
        write_str(
            out,
            id.hyphenated().encode_lower(&mut Uuid::encode_buffer()),
        );
        write_opt(out, b",\"original\":", self.original.as_deref());
        out.extend_from_slice(b",\"outcome\":");
        write_str(out, self.outcome.name());
        if let Some(policy) = &self.policy {
            out.extend_from_slice(b",\"policy\":{\"id\":");
            write_str(out, &policy.id);
            write_opt(out, b",\"version\":", policy.version.as_deref());
            out.push(b'}');
        }
        write_opt(out, b",\"reason\":", self.reason.as_deref());
        let resource = &self.resource;
        out.extend_from_slice(b",\"resource\":{\"id\":");
        write_str(out, &resource.id);
        write_opt(out, b",\"name\":", resource.name.as_deref());
        out.extend_from_slice(b",\"type\":");
        write_str(out, &resource.kind);
        out.push(b'}');
        write_opt(out, b",\"source\":", self.source.as_deref());
        write_opt(out, b",\"tenant\":", self.tenant.as_deref());
        Ok(skew_at)
    }

    /// Enough capacity for the entry unless strings other than `original` need escaping:
    /// every string's length (`original` escaped), the canonical context, and the keys,
    /// punctuation, id and time of a full event.
    fn encoded_len_hint(&self) -> usize {
        let actor = &self.actor;
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        [
            self.action.len(),
            actor.id.len(),
            opt(&actor.ip),
            opt(&actor.name),
            opt(&actor.session_id),
            opt(&actor.user_agent),
            self.resource.id.len(),
            self.resource.kind.len(),
            opt(&self.resource.name),
            self.policy.as_ref().map_or(0, |p| p.id.len()),
            self.policy.as_ref().map_or(0, |p| opt(&p.version)),
            opt(&self.reason),
            opt(&self.source),
            opt(&self.tenant),
            opt(&self.client_time),
            // `original` is JSON text, dense with quotes: its escapes are counted, so that the
            // entry is sized exactly rather than reallocated (a copy, and twice the memory
            // held: 3738 bytes of capacity for the 1915-byte entry of the bench's audit event).
            self.original.as_deref().map_or(0, json_str::escaped_len),
            self.context_canonical.as_ref().map_or(0, |c| c.0.len()),
            384,
        ]
        .iter()
        .fold(0usize, |sum, n| sum.saturating_add(*n))
    }
}

/// The member [`Event::encode`] adds for a skewed `client_time`.
const SKEWED: &[u8] = b",\"client_time_skewed\":true";

/// Appends `,"key":"value"` (`member` is `,"key":`) if `value` is present.
fn write_opt(out: &mut Vec<u8>, member: &[u8], value: Option<&str>) {
    if let Some(value) = value {
        out.extend_from_slice(member);
        write_str(out, value);
    }
}

/// An event encoded as a log entry, waiting for its final time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedEvent {
    /// The stored `id`.
    pub id: Uuid,
    /// RFC 8785 canonical JSON of the stored event.
    pub bytes: Vec<u8>,
    /// Offset in `bytes` of the 30-byte `time` value (inside its quotes).
    pub time_offset: usize,
    /// First 16 bytes of SHA-256 over the canonical stored event without `time` and
    /// `client_time_skewed`: equal for a retry of the same event with the same id, whatever
    /// time it arrives at. [`entry_key`] recomputes it from `bytes`.
    pub content_digest: [u8; DIGEST_LEN],
}

/// Why an entry could not be read or stamped.
#[derive(Debug, Error)]
pub enum EntryError {
    /// Not JSON.
    #[error("entry is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but not an object.
    #[error("entry is not a JSON object")]
    NotAnObject,
    /// A server-assigned field is missing or malformed.
    #[error("entry field `{0}` is missing or malformed")]
    Field(&'static str),
    /// The client fields do not form a valid event.
    #[error("entry does not hold a valid event: {0}")]
    Invalid(InvalidEvent),
    /// `time_offset` does not point at the time value of this entry.
    #[error("offset {offset} is not the time value of this {len}-byte entry")]
    TimeOffset {
        /// The offset given.
        offset: usize,
        /// Length of the entry.
        len: usize,
    },
}

/// A stored entry decoded: the server-assigned fields and the client's event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// `id`.
    pub id: Uuid,
    /// `time`, assigned at sequencing.
    pub time: Timestamp,
    /// `client_time_skewed` (absent means false).
    pub client_time_skewed: bool,
    /// The client fields; `event.id()` is `Some(id)`.
    pub event: Event,
}

/// Overwrites the time value of an entry made by [`Event::prepare`] with `t`. The entry's
/// length and everything else in it stay the same, so the result equals what preparing at
/// `t` gives whenever the `client_time_skewed` decision (taken at prepare time) is the same.
///
/// # Errors
///
/// [`EntryError::TimeOffset`] if `time_offset` is not where this entry's time value is.
pub fn stamp_time(entry: &mut [u8], time_offset: usize, t: Timestamp) -> Result<(), EntryError> {
    let bad = EntryError::TimeOffset {
        offset: time_offset,
        len: entry.len(),
    };
    if time_offset_checked(entry, time_offset).is_none() {
        return Err(bad);
    }
    let slot = time_offset
        .checked_add(TIMESTAMP_LEN)
        .and_then(|end| entry.get_mut(time_offset..end))
        .and_then(|slot| <&mut [u8; TIMESTAMP_LEN]>::try_from(slot).ok());
    match slot {
        Some(slot) => {
            t.write_to(slot);
            Ok(())
        }
        None => Err(bad),
    }
}

/// The `(id, content_digest)` of a stored entry, computed exactly as [`Event::prepare`] did;
/// storage recovery uses it to rebuild the id index. `None` if the entry is not a JSON object
/// with a UUID `id`.
pub fn entry_key(entry: &[u8]) -> Option<(Uuid, [u8; DIGEST_LEN])> {
    let mut stored = parse_object(entry).ok()?;
    let id = stored.get("id")?.as_str()?;
    let id = Uuid::try_parse(id).ok()?;
    stored.remove("time");
    stored.remove("client_time_skewed");
    Some((id, digest(&stored).ok()?))
}

/// Parses a stored entry as JSON.
///
/// # Errors
///
/// [`EntryError::Json`] if it is not JSON, [`EntryError::NotAnObject`] if it is not an object.
pub fn parse_entry(entry: &[u8]) -> Result<Value, EntryError> {
    parse_object(entry).map(Value::Object)
}

/// Decodes a stored entry into its typed form. Size limits are not re-applied: the entry was
/// accepted under whatever limits the deployment had then.
///
/// # Errors
///
/// As [`parse_entry`]; [`EntryError::Field`] for a missing or malformed `id`, `time` or
/// `client_time_skewed`; [`EntryError::Invalid`] if the rest is not a valid event.
pub fn decode_entry(entry: &[u8]) -> Result<StoredEvent, EntryError> {
    let mut stored = parse_object(entry)?;
    let time = stored
        .remove("time")
        .and_then(|t| Timestamp::parse(t.as_str()?).ok())
        .ok_or(EntryError::Field("time"))?;
    let client_time_skewed = match stored.remove("client_time_skewed") {
        None => false,
        Some(Value::Bool(skewed)) => skewed,
        Some(_) => return Err(EntryError::Field("client_time_skewed")),
    };
    let event = validate_ingested(Value::Object(stored), &EventLimits::UNBOUNDED)
        .map_err(|problems| EntryError::Invalid(InvalidEvent(problems)))?;
    let id = event.id.ok_or(EntryError::Field("id"))?;
    Ok(StoredEvent {
        id,
        time,
        client_time_skewed,
        event,
    })
}

fn parse_object(entry: &[u8]) -> Result<Map<String, Value>, EntryError> {
    match serde_json::from_slice(entry)? {
        Value::Object(map) => Ok(map),
        _ => Err(EntryError::NotAnObject),
    }
}

fn digest(stored: &Map<String, Value>) -> Result<[u8; DIGEST_LEN], serde_json::Error> {
    Ok(digest_bytes(&serde_json_canonicalizer::to_vec(stored)?))
}

/// First 16 bytes of SHA-256 of canonical bytes.
fn digest_bytes(canonical: &[u8]) -> [u8; DIGEST_LEN] {
    digest_parts(&[canonical])
}

/// [`digest_bytes`] of the concatenation of `parts`.
fn digest_parts(parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let full = hasher.finalize();
    let mut out = [0u8; DIGEST_LEN];
    for (o, b) in out.iter_mut().zip(full.iter()) {
        *o = *b;
    }
    out
}

/// `offset` if the time value of a canonical entry starts there. JCS sorts keys, and `time`
/// sorts after every other top-level field of schema v1, so the entry ends with
/// `"time":"<30 bytes>"}`.
fn time_offset_checked(entry: &[u8], offset: usize) -> Option<usize> {
    const KEY: &[u8] = b"\"time\":\"";
    let before = entry.get(offset.checked_sub(KEY.len())?..offset)?;
    let after = entry.get(offset.checked_add(TIMESTAMP_LEN)?..)?;
    (before == KEY && after == b"\"}").then_some(offset)
}

/// A closed set of names, as schema v1 spells them: the one list both validation paths
/// match against and the error messages quote.
pub(crate) trait Named: Copy + 'static {
    /// Every value, in schema order.
    const ALL: &'static [Self];
    /// The JSON value.
    fn name(self) -> &'static str;
    /// The value named `s`, if any.
    fn named(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == s)
    }
}

impl Named for ActorType {
    const ALL: &'static [Self] = &[Self::User, Self::Service, Self::System];
    fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Service => "service",
            Self::System => "system",
        }
    }
}

impl Named for Outcome {
    const ALL: &'static [Self] = &[Self::Allow, Self::Deny, Self::Error];
    fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for ActorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
