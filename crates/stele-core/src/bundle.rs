//! Offline evidence bundles, format `stele-bundle/1`: the events of a time window (and
//! optional filters), each with an RFC 9162 inclusion proof against one signed checkpoint,
//! an optional consistency proof from an older checkpoint the auditor holds, and the entries
//! just outside the window that prove where it starts and ends.
//!
//! The byte-exact description is `docs/bundles.md`; this module is its reference
//! implementation. [`Bundle`] is the JSON document (serde, unknown fields refused);
//! [`verify`] checks one against a trusted log key and reports the *first* problem as a
//! [`BundleError`] that names the event (position and log index) and what is wrong with it.
//!
//! What it leaves out: fetching anything (the CLI's `stele export` builds bundles from a
//! server's tiles), witness policies (cosignature lines are carried inside the checkpoint
//! note unchanged; checking them is the caller's business), and reports.

mod verify;

use serde::{Deserialize, Serialize};

use crate::event::{Outcome, StoredEvent};
use crate::hash::leaf_hash;
use crate::Hash;

pub use verify::{verify, BundleError, EntryProblem, Place, Verified, VerifiedEvent};

/// The value of [`Bundle::format`] this module writes and reads.
pub const FORMAT: &str = "stele-bundle/1";

/// An evidence bundle: one JSON object. Every field is required (`null` where a value is
/// absent), except inside [`Filters`], and no other field is allowed.
///
/// `E` is how the events are held: a `Vec` once read, or — for a writer that produces them
/// while it serializes, so that memory does not grow with the selection — any type that
/// serializes as a sequence of [`ProvedEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle<E = Vec<ProvedEntry>> {
    /// Always [`FORMAT`]; a reader refuses any other value.
    pub format: String,
    /// Who made the bundle, when and from where. Informational: not covered by any proof.
    pub produced: Produced,
    /// The log: its origin and the verifier key(s) the exporter used. A verifier checks
    /// against a key it trusts, never against the bundle's own claim, and refuses a bundle
    /// whose list does not include that key.
    pub log: LogInfo,
    /// The time window and filters, and the log index range the window covers.
    pub selection: Selection,
    /// The signed checkpoint note every inclusion proof leads to, verbatim (text, blank line,
    /// signature lines, witness cosignatures included).
    pub checkpoint: String,
    /// An older checkpoint and the consistency proof from it to [`Bundle::checkpoint`].
    pub previous: Option<Previous>,
    /// The entry at `first_index - 1` (time before the window); `null` iff `first_index` is 0.
    pub before: Option<ProvedEntry>,
    /// The entry at `end_index` (time at or after the window's end); `null` iff `end_index`
    /// equals the checkpoint's tree size.
    pub after: Option<ProvedEntry>,
    /// The selected events, in increasing index order.
    pub events: E,
}

/// How and when a bundle was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Produced {
    /// When, by the exporter's clock (RFC 3339).
    pub at: String,
    /// The program, like `stele 0.1.0`.
    pub by: String,
    /// Where the entries came from, like the server's URL.
    pub source: String,
}

/// The log the bundle is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogInfo {
    /// The log's origin; must equal the checkpoint's.
    pub origin: String,
    /// C2SP verifier keys of the log (`<name>+<hex id>+<base64>`).
    pub verifier_keys: Vec<String>,
}

/// What was selected: events with `from <= time < to` matching every filter, taken from the
/// log indices `[first_index, end_index)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Start of the window, inclusive, as a 30-byte log timestamp
    /// (`2026-11-23T19:03:19.123456789Z`).
    pub from: String,
    /// End of the window, exclusive, same form.
    pub to: String,
    /// Filters on the events' fields; none means every event of the window.
    pub filters: Filters,
    /// The first log index whose time is `>= from`.
    pub first_index: u64,
    /// The first log index whose time is `>= to` (or the tree size if there is none).
    pub end_index: u64,
}

/// Field filters; an event is selected when it matches every filter present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// `actor.id` equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// `action` equals this, or, for a value `p.*`, starts with `p.`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `resource.type` equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// `resource.id` equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// `outcome` equals this (`allow`, `deny` or `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// `tenant` is present and equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `source` is present and equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// An older checkpoint and the proof that the bundle's checkpoint extends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Previous {
    /// The older signed checkpoint note, verbatim.
    pub checkpoint: String,
    /// RFC 9162 §2.1.4 consistency proof from its size to the bundle checkpoint's size.
    pub consistency: Vec<Hash>,
}

/// One log entry with its inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvedEntry {
    /// Log index.
    pub index: u64,
    /// RFC 6962 leaf hash of [`ProvedEntry::entry`]'s UTF-8 bytes, `SHA-256(0x00 ‖ entry)`.
    pub leaf_hash: Hash,
    /// The stored entry: its bytes, which are UTF-8 (canonical JSON), as a JSON string.
    pub entry: String,
    /// RFC 9162 §2.1.3 inclusion proof for `index` in the checkpoint's tree.
    pub inclusion: Vec<Hash>,
}

impl ProvedEntry {
    /// An entry with its leaf hash computed from `entry`.
    pub fn new(index: u64, entry: String, inclusion: Vec<Hash>) -> Self {
        Self {
            index,
            leaf_hash: leaf_hash(entry.as_bytes()),
            entry,
            inclusion,
        }
    }
}

/// Why a selection's filters are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A filter value is the empty string.
    #[error("filter {0} is empty")]
    Empty(&'static str),
    /// `outcome` is not one of the three outcomes.
    #[error("filter outcome must be allow, deny or error, not {0:?}")]
    Outcome(String),
    /// `action` holds a `*` other than as a final `.*`.
    #[error("filter action {0:?}: `*` is allowed only as a final `.*` (like `role.*`)")]
    Wildcard(String),
}

impl Filters {
    /// Whether no filter is set (then a bundle must hold every event of its window).
    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|(_, v)| v.is_none())
    }

    /// The filters as `(name, value)` pairs, in the order `docs/bundles.md` lists them.
    pub fn fields(&self) -> [(&'static str, Option<&str>); 7] {
        [
            ("actor", self.actor.as_deref()),
            ("action", self.action.as_deref()),
            ("resource_type", self.resource_type.as_deref()),
            ("resource_id", self.resource_id.as_deref()),
            ("outcome", self.outcome.as_deref()),
            ("tenant", self.tenant.as_deref()),
            ("source", self.source.as_deref()),
        ]
    }

    /// Checks that every filter can match something.
    ///
    /// # Errors
    ///
    /// A [`FilterError`] for the first unusable filter.
    pub fn validate(&self) -> Result<(), FilterError> {
        for (name, value) in self.fields() {
            if value == Some("") {
                return Err(FilterError::Empty(name));
            }
        }
        if let Some(outcome) = &self.outcome {
            if !matches!(outcome.as_str(), "allow" | "deny" | "error") {
                return Err(FilterError::Outcome(outcome.clone()));
            }
        }
        if let Some(action) = &self.action {
            let body = action.strip_suffix(".*").unwrap_or(action);
            if body.contains('*') || body.is_empty() {
                return Err(FilterError::Wildcard(action.clone()));
            }
        }
        Ok(())
    }

    /// The first filter `event` does not match, or `None` if it matches them all.
    pub fn mismatch(&self, event: &StoredEvent) -> Option<&'static str> {
        let e = &event.event;
        let equal = |filter: &Option<String>, value: Option<&str>| {
            filter.as_deref().is_none_or(|f| Some(f) == value)
        };
        let outcome = match e.outcome() {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Error => "error",
        };
        let action_ok = match self.action.as_deref() {
            None => true,
            Some(pattern) => match pattern.strip_suffix('*') {
                Some(prefix) if prefix.ends_with('.') => e.action().starts_with(prefix),
                _ => e.action() == pattern,
            },
        };
        [
            ("actor", equal(&self.actor, Some(&e.actor().id))),
            ("action", action_ok),
            (
                "resource_type",
                equal(&self.resource_type, Some(&e.resource().kind)),
            ),
            (
                "resource_id",
                equal(&self.resource_id, Some(&e.resource().id)),
            ),
            ("outcome", equal(&self.outcome, Some(outcome))),
            ("tenant", equal(&self.tenant, e.tenant())),
            ("source", equal(&self.source, e.source())),
        ]
        .into_iter()
        .find_map(|(name, ok)| (!ok).then_some(name))
    }
}

impl Bundle {
    /// Parses a bundle file. Only the JSON shape is checked here; see [`verify`].
    ///
    /// # Errors
    ///
    /// [`BundleError::Json`] (with line and column) for anything that is not a bundle
    /// object, [`BundleError::Format`] for another format version.
    pub fn from_json(bytes: &[u8]) -> Result<Bundle, BundleError> {
        // Read the version first, so that a future format is reported as such rather than
        // as a list of unknown fields.
        #[derive(Deserialize)]
        struct Version {
            format: Option<String>,
        }
        let version: Version = serde_json::from_slice(bytes).map_err(BundleError::Json)?;
        match version.format {
            Some(f) if f == FORMAT => {}
            found => return Err(BundleError::Format { found }),
        }
        serde_json::from_slice(bytes).map_err(BundleError::Json)
    }
}

impl<E: Serialize> Bundle<E> {
    /// The bundle as pretty-printed JSON with a final newline.
    ///
    /// # Errors
    ///
    /// Whatever serializing the events reports; a `Vec` of entries never fails.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::new();
        self.write_json(&mut out)?;
        Ok(out)
    }

    /// Writes [`Bundle::to_json`]'s bytes to `out` without holding them in memory.
    ///
    /// # Errors
    ///
    /// The writer's errors, and those of serializing the events, as serde_json reports them.
    pub fn write_json<W: std::io::Write>(&self, mut out: W) -> Result<(), serde_json::Error> {
        serde_json::to_writer_pretty(&mut out, self)?;
        out.write_all(b"\n").map_err(serde_json::Error::io)
    }
}
