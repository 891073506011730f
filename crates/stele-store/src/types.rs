//! Values that cross the store's API.

use stele_core::timestamp::Timestamp;
use stele_core::Hash;

/// Identity of an entry for idempotent retries: the event id and a digest of the content the
/// client sent (excluding what the log assigns, such as the time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryKey {
    /// Event id (UUID bytes).
    pub id: [u8; 16],
    /// Digest of the client-supplied content.
    pub digest: [u8; 16],
}

/// An entry to append.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The entry bytes, at most 65535 (tlog-tiles bound).
    pub data: Vec<u8>,
    /// Where to write the 30-byte commit timestamp into `data`, if anywhere. The store stamps
    /// the time at sequencing so that times never decrease along the log.
    pub time_offset: Option<usize>,
    /// Idempotency key, if the entry has an id.
    pub key: Option<EntryKey>,
}

impl NewEntry {
    /// An opaque entry with no timestamp slot and no key.
    pub fn raw(data: Vec<u8>) -> Self {
        NewEntry {
            data,
            time_offset: None,
            key: None,
        }
    }
}

/// The acknowledgement of one appended (or already present) entry. Only returned once durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Position in the log.
    pub index: u64,
    /// RFC 6962 leaf hash of the entry.
    pub leaf_hash: Hash,
    /// Commit time.
    pub time: Timestamp,
    /// True when the entry was already in the log (idempotent retry) and nothing was appended.
    pub duplicate: bool,
}

/// A published checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// Tree size.
    pub size: u64,
    /// Root hash at that size.
    pub root: Hash,
    /// The whole signed note (C2SP tlog-checkpoint body + signature lines).
    pub note: String,
}
