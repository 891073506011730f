//! Verifying a [`Bundle`]: the steps of `docs/bundles.md` §"Verifying", in that order, stopping
//! at the first problem.

use std::fmt;

use thiserror::Error;

use super::{Bundle, FilterError, ProvedEntry, FORMAT};
use crate::checkpoint::{open_checkpoint, Checkpoint, CheckpointError};
use crate::event::{decode_entry, parse_entry, EntryError, StoredEvent};
use crate::hash::leaf_hash;
use crate::merkle::{verify_consistency, verify_inclusion, ProofError};
use crate::note::{Note, NoteVerifier};
use crate::timestamp::Timestamp;
use crate::Hash;

/// What a verified bundle proves.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The checkpoint every event is proved against.
    pub checkpoint: Checkpoint,
    /// Its signed note, with every signature line (witness cosignatures included, unchecked).
    pub note: Note,
    /// The older checkpoint the bundle's checkpoint was proved consistent with.
    pub previous: Option<Checkpoint>,
    /// Start of the window (inclusive).
    pub from: Timestamp,
    /// End of the window (exclusive).
    pub to: Timestamp,
    /// Whether the bundle holds every entry of `[first_index, end_index)` (true when it has
    /// no filters; with filters an omitted matching event cannot be detected).
    pub complete: bool,
    /// The events, in index order, decoded.
    pub events: Vec<VerifiedEvent>,
}

/// One verified event.
#[derive(Debug, Clone)]
pub struct VerifiedEvent {
    /// Log index.
    pub index: u64,
    /// RFC 6962 leaf hash of the entry.
    pub leaf_hash: Hash,
    /// The decoded stored event.
    pub event: StoredEvent,
}

/// Where in the bundle an entry is: its JSON path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// `before`, the boundary entry preceding the window.
    Before,
    /// `after`, the boundary entry ending the window.
    After,
    /// `events[n]`, counting from 0.
    Event(usize),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Before => f.write_str("before"),
            Place::After => f.write_str("after"),
            Place::Event(n) => write!(f, "events[{n}]"),
        }
    }
}

/// What is wrong with one entry of a bundle.
#[derive(Debug, Error)]
pub enum EntryProblem {
    /// A boundary entry where the selection has none: `before` with `first_index` 0, or
    /// `after` with `end_index` equal to the tree size.
    #[error("there is no entry on this side of the window, so this must be null")]
    Unexpected,
    /// A boundary entry is not at the index the selection implies.
    #[error("index must be {expected}")]
    Index {
        /// The index it must have.
        expected: u64,
    },
    /// An event outside `[first_index, end_index)`.
    #[error("index is outside the selection's [first_index, end_index) = [{first}, {end})")]
    OutOfRange {
        /// `selection.first_index`.
        first: u64,
        /// `selection.end_index`.
        end: u64,
    },
    /// Events are not in strictly increasing index order.
    #[error("index is not greater than the previous event's ({previous})")]
    NotIncreasing {
        /// The previous event's index.
        previous: u64,
    },
    /// The entry does not hash to its `leaf_hash`.
    #[error(
        "the entry does not hash to its leaf_hash (SHA-256(0x00 ‖ entry) is {computed}): the entry or its leaf hash was altered",
        computed = .computed.to_base64()
    )]
    LeafHash {
        /// The leaf hash of the entry as it is.
        computed: Hash,
    },
    /// The inclusion proof does not lead from the leaf hash to the checkpoint's root.
    #[error("the inclusion proof does not verify against the checkpoint (size {size}): {source}")]
    Inclusion {
        /// The checkpoint's tree size.
        size: u64,
        /// How it failed.
        source: ProofError,
    },
    /// The entry is not a stored event.
    #[error("the entry is not a stored event: {0}")]
    Decode(EntryError),
    /// The entry's `time` is not the 30-byte form the log writes.
    #[error("the entry's time is not a 30-byte log timestamp")]
    TimeForm,
    /// An event whose time is outside the window.
    #[error("time {time} is outside the window [{from}, {to})")]
    OutsideWindow {
        /// The event's time.
        time: Timestamp,
        /// Window start.
        from: Timestamp,
        /// Window end.
        to: Timestamp,
    },
    /// The `before` entry is not before the window.
    #[error("time {time} is not before the window's start {from}")]
    NotBefore {
        /// Its time.
        time: Timestamp,
        /// Window start.
        from: Timestamp,
    },
    /// The `after` entry is before the window's end.
    #[error("time {time} is before the window's end {to}")]
    NotAfter {
        /// Its time.
        time: Timestamp,
        /// Window end.
        to: Timestamp,
    },
    /// An event that does not match a filter.
    #[error("the event does not match filter {0}")]
    Filter(&'static str),
}

/// The first problem found in a bundle.
#[derive(Debug, Error)]
pub enum BundleError {
    /// Not JSON, or not the shape of a bundle.
    #[error("not a valid bundle: {0}")]
    Json(serde_json::Error),
    /// Another format, or none.
    #[error("format is {found:?}, this verifier reads {FORMAT:?}")]
    Format {
        /// The `format` value found.
        found: Option<String>,
    },
    /// The checkpoint is malformed or not signed by the trusted key.
    #[error("checkpoint: {0}")]
    Checkpoint(CheckpointError),
    /// `log.origin` is not the checkpoint's origin.
    #[error("log.origin {bundle:?} is not the checkpoint's origin {checkpoint:?}")]
    Origin {
        /// `log.origin`.
        bundle: String,
        /// The checkpoint's origin.
        checkpoint: String,
    },
    /// `log.verifier_keys` does not list the trusted key: the bundle claims another log key.
    #[error("log.verifier_keys does not list the key you trust ({key})")]
    KeyNotListed {
        /// The trusted key.
        key: String,
    },
    /// `selection.from` or `selection.to` is not a 30-byte log timestamp.
    #[error("selection.{field} {value:?} is not a 30-byte log timestamp like 2026-11-23T19:03:19.123456789Z")]
    WindowTime {
        /// `from` or `to`.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// The window is empty or reversed.
    #[error("selection: from {from} is not before to {to}")]
    EmptyWindow {
        /// Start.
        from: Timestamp,
        /// End.
        to: Timestamp,
    },
    /// A filter is unusable.
    #[error("selection.filters: {0}")]
    Filter(FilterError),
    /// The index range does not fit the checkpoint.
    #[error(
        "selection: need first_index <= end_index <= tree size, got {first} <= {end} <= {size}"
    )]
    IndexRange {
        /// `first_index`.
        first: u64,
        /// `end_index`.
        end: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The previous checkpoint is malformed or not signed by the trusted key.
    #[error("previous.checkpoint: {0}")]
    Previous(CheckpointError),
    /// The previous checkpoint is larger than the bundle's: the log was rolled back.
    #[error("previous.checkpoint has size {from}, larger than the checkpoint's {to}: the log was rolled back")]
    Rollback {
        /// The previous size.
        from: u64,
        /// The checkpoint's size.
        to: u64,
    },
    /// The previous checkpoint is of the empty tree, which proves nothing.
    #[error(
        "previous.checkpoint is of the empty tree; a consistency proof from it proves nothing"
    )]
    PreviousEmpty,
    /// The consistency proof fails.
    #[error("previous.consistency: the checkpoint of size {to} is not proved to extend the one of size {from}: {source}")]
    Consistency {
        /// The previous size.
        from: u64,
        /// The checkpoint's size.
        to: u64,
        /// How it failed.
        source: ProofError,
    },
    /// A boundary entry is missing where the selection needs one.
    #[error("{which} is null, but the selection needs the entry at log index {index} there")]
    MissingBoundary {
        /// `before` or `after`.
        which: Place,
        /// The index it must have.
        index: u64,
    },
    /// One entry is wrong.
    #[error("{place} (log index {index}): {problem}")]
    Entry {
        /// Where it is.
        place: Place,
        /// Its stated log index.
        index: u64,
        /// What is wrong.
        problem: EntryProblem,
    },
    /// Without filters, a bundle must hold every entry of its index range.
    #[error("events: log index {index} is missing; a bundle without filters holds every entry of [first_index, end_index) = [{first}, {end})")]
    Missing {
        /// The first missing index.
        index: u64,
        /// `first_index`.
        first: u64,
        /// `end_index`.
        end: u64,
    },
}

/// Verifies `bundle` against the log key `key`, as `docs/bundles.md` §"Verifying" lists.
///
/// # Errors
///
/// The first [`BundleError`] found, in the order of that list.
pub fn verify(bundle: &Bundle, key: &NoteVerifier) -> Result<Verified, BundleError> {
    if bundle.format != FORMAT {
        return Err(BundleError::Format {
            found: Some(bundle.format.clone()),
        });
    }
    let (checkpoint, note) =
        open_checkpoint(bundle.checkpoint.as_bytes(), key).map_err(BundleError::Checkpoint)?;
    if bundle.log.origin != checkpoint.origin {
        return Err(BundleError::Origin {
            bundle: bundle.log.origin.clone(),
            checkpoint: checkpoint.origin.clone(),
        });
    }
    let trusted = key.to_verifier_key();
    if !bundle.log.verifier_keys.contains(&trusted) {
        return Err(BundleError::KeyNotListed { key: trusted });
    }
    let sel = &bundle.selection;
    let from = window_time("from", &sel.from)?;
    let to = window_time("to", &sel.to)?;
    if from >= to {
        return Err(BundleError::EmptyWindow { from, to });
    }
    sel.filters.validate().map_err(BundleError::Filter)?;
    let (first, end, size) = (sel.first_index, sel.end_index, checkpoint.size);
    if !(first <= end && end <= size) {
        return Err(BundleError::IndexRange { first, end, size });
    }
    let previous = match &bundle.previous {
        None => None,
        Some(p) => Some(check_previous(
            &p.checkpoint,
            &p.consistency,
            &checkpoint,
            key,
        )?),
    };

    let cp = &checkpoint;
    check_boundary(
        cp,
        Place::Before,
        bundle.before.as_ref(),
        first.checked_sub(1),
        |t| (t >= from).then_some(EntryProblem::NotBefore { time: t, from }),
    )?;
    check_boundary(
        cp,
        Place::After,
        bundle.after.as_ref(),
        (end < size).then_some(end),
        |t| (t < to).then_some(EntryProblem::NotAfter { time: t, to }),
    )?;

    let complete = sel.filters.is_empty();
    let mut events = Vec::with_capacity(bundle.events.len());
    let mut previous_index: Option<u64> = None;
    for (position, e) in bundle.events.iter().enumerate() {
        let place = Place::Event(position);
        let fail = |problem| BundleError::Entry {
            place,
            index: e.index,
            problem,
        };
        if let Some(previous) = previous_index {
            if e.index <= previous {
                return Err(fail(EntryProblem::NotIncreasing { previous }));
            }
        }
        if !(first..end).contains(&e.index) {
            return Err(fail(EntryProblem::OutOfRange { first, end }));
        }
        // Without filters the events are exactly first, first + 1, …: the first gap is
        // reported as the missing index.
        let expected = u64::try_from(position)
            .ok()
            .and_then(|p| first.checked_add(p));
        if complete && expected != Some(e.index) {
            return Err(BundleError::Missing {
                index: expected.unwrap_or(end),
                first,
                end,
            });
        }
        previous_index = Some(e.index);
        let stored = check_entry(cp, place, e)?;
        if !(from..to).contains(&stored.time) {
            return Err(fail(EntryProblem::OutsideWindow {
                time: stored.time,
                from,
                to,
            }));
        }
        if let Some(filter) = sel.filters.mismatch(&stored) {
            return Err(fail(EntryProblem::Filter(filter)));
        }
        events.push(VerifiedEvent {
            index: e.index,
            leaf_hash: e.leaf_hash,
            event: stored,
        });
    }
    if complete {
        let held = u64::try_from(events.len()).unwrap_or(u64::MAX);
        if held < end - first {
            return Err(BundleError::Missing {
                index: first.saturating_add(held),
                first,
                end,
            });
        }
    }
    Ok(Verified {
        checkpoint,
        note,
        previous,
        from,
        to,
        complete,
        events,
    })
}

/// Parses a window bound, which must be in the log's own 30-byte form so that byte order is
/// time order (what simple verifiers rely on).
fn window_time(field: &'static str, value: &str) -> Result<Timestamp, BundleError> {
    match Timestamp::parse(value) {
        Ok(t) if t.format() == value => Ok(t),
        _ => Err(BundleError::WindowTime {
            field,
            value: value.to_owned(),
        }),
    }
}

fn check_previous(
    note: &str,
    proof: &[Hash],
    checkpoint: &Checkpoint,
    key: &NoteVerifier,
) -> Result<Checkpoint, BundleError> {
    let (old, _) = open_checkpoint(note.as_bytes(), key).map_err(BundleError::Previous)?;
    if old.size > checkpoint.size {
        return Err(BundleError::Rollback {
            from: old.size,
            to: checkpoint.size,
        });
    }
    if old.size == 0 {
        return Err(BundleError::PreviousEmpty);
    }
    verify_consistency(
        old.size,
        checkpoint.size,
        proof,
        &old.root,
        &checkpoint.root,
    )
    .map_err(|source| BundleError::Consistency {
        from: old.size,
        to: checkpoint.size,
        source,
    })?;
    Ok(old)
}

/// Checks a boundary entry: present exactly when `index` is `Some`, at that index, valid as
/// every entry is, and on the right side of the window (`outside` names the problem if not).
fn check_boundary(
    cp: &Checkpoint,
    which: Place,
    entry: Option<&ProvedEntry>,
    index: Option<u64>,
    outside: impl Fn(Timestamp) -> Option<EntryProblem>,
) -> Result<(), BundleError> {
    let (e, index) = match (entry, index) {
        (None, None) => return Ok(()),
        (Some(e), Some(index)) => (e, index),
        (None, Some(index)) => return Err(BundleError::MissingBoundary { which, index }),
        (Some(e), None) => {
            return Err(BundleError::Entry {
                place: which,
                index: e.index,
                problem: EntryProblem::Unexpected,
            })
        }
    };
    let fail = |problem| BundleError::Entry {
        place: which,
        index: e.index,
        problem,
    };
    if e.index != index {
        return Err(fail(EntryProblem::Index { expected: index }));
    }
    let stored = check_entry(cp, which, e)?;
    match outside(stored.time) {
        Some(problem) => Err(fail(problem)),
        None => Ok(()),
    }
}

/// The checks every entry gets, boundary or event, in this order: leaf hash, inclusion in
/// the checkpoint's tree, decoding as a stored event, the form of its time.
fn check_entry(cp: &Checkpoint, place: Place, e: &ProvedEntry) -> Result<StoredEvent, BundleError> {
    let fail = |problem| BundleError::Entry {
        place,
        index: e.index,
        problem,
    };
    let bytes = e.entry.as_bytes();
    let computed = leaf_hash(bytes);
    if computed != e.leaf_hash {
        return Err(fail(EntryProblem::LeafHash { computed }));
    }
    verify_inclusion(&computed, e.index, cp.size, &e.inclusion, &cp.root).map_err(|source| {
        fail(EntryProblem::Inclusion {
            size: cp.size,
            source,
        })
    })?;
    let stored = decode_entry(bytes).map_err(|err| fail(EntryProblem::Decode(err)))?;
    let raw_time = parse_entry(bytes)
        .ok()
        .and_then(|v| v.get("time").and_then(|t| t.as_str().map(str::to_owned)));
    if raw_time.as_deref() != Some(stored.time.format().as_str()) {
        return Err(fail(EntryProblem::TimeForm));
    }
    Ok(stored)
}
