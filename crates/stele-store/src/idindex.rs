//! The derived id index `log/idindex/`: event id → (index, commit time, content digest), and
//! leaf-hash prefix → index for entries that carry an id (events).
//!
//! It answers "which entry has this id / this leaf hash" and makes retries idempotent. Commits
//! during normal operation are not fsynced (the entries are); the durable commit made before
//! each checkpoint records how far the index reaches (`indexed_through`), and recovery
//! re-indexes the rest from the segments.
//!
//! Why an LSM tree (fjall) and not a B-tree: both keys are random (leaf hashes always, event
//! ids whenever clients pick UUIDv4s), and a copy-on-write B-tree (redb, used before) dirties
//! a page per random insert, so each group commit rewrote a share of the index that grew with
//! the log. An LSM tree writes sequentially and merges in the
//! background; absent keys — every fresh id — are answered by bloom filters.

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::error::{Result, StoreError};

const IDS: &str = "ids";
const LEAVES: &str = "leaves";
const META: &str = "meta";
const INDEXED_THROUGH: &[u8] = b"indexed_through";
/// Block cache of the index database. Bounded, so memory stays flat as the log grows.
const CACHE_BYTES: u64 = 64 << 20;
/// Journal size at which fjall flushes memtables to tables (its minimum).
const MAX_JOURNAL_BYTES: u64 = 64 << 20;

/// What the index holds for one id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRecord {
    /// Entry index.
    pub index: u64,
    /// Commit time of the entry, ns since the Unix epoch.
    pub time_ns: i64,
    /// Digest of the client-supplied content (see `stele_core::event`).
    pub digest: [u8; 16],
}

impl IdRecord {
    fn encode(&self) -> [u8; 32] {
        let mut v = [0u8; 32];
        v[..8].copy_from_slice(&self.index.to_be_bytes());
        v[8..16].copy_from_slice(&self.time_ns.to_be_bytes());
        v[16..].copy_from_slice(&self.digest);
        v
    }
    fn decode(v: &[u8; 32]) -> Self {
        let mut i = [0u8; 8];
        i.copy_from_slice(&v[..8]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&v[8..16]);
        let mut d = [0u8; 16];
        d.copy_from_slice(&v[16..]);
        IdRecord {
            index: u64::from_be_bytes(i),
            time_ns: i64::from_be_bytes(t),
            digest: d,
        }
    }
}

/// Lookups of ids, for the writer's many lookups in one group commit.
pub struct IdReader {
    ids: Keyspace,
}

impl IdReader {
    /// Looks an id up.
    ///
    /// # Errors
    /// Database errors, or a stored record of the wrong length.
    pub fn get(&self, id: &[u8; 16]) -> Result<Option<IdRecord>> {
        match self.ids.get(id).map_err(db_err)? {
            None => Ok(None),
            Some(v) => {
                let bytes: &[u8; 32] = v.as_ref().try_into().map_err(|_| {
                    StoreError::Index(format!("id record of {} bytes, not 32", v.len()))
                })?;
                Ok(Some(IdRecord::decode(bytes)))
            }
        }
    }
}

/// One entry to index.
#[derive(Debug, Clone, Copy)]
pub struct Indexed {
    /// Event id.
    pub id: [u8; 16],
    /// What the id maps to.
    pub record: IdRecord,
    /// First 16 bytes of the entry's leaf hash.
    pub leaf_prefix: [u8; 16],
}

impl Indexed {
    /// Builds the record of entry `index`.
    pub fn new(
        id: [u8; 16],
        index: u64,
        time_ns: i64,
        digest: [u8; 16],
        leaf: &stele_core::Hash,
    ) -> Self {
        let mut leaf_prefix = [0u8; 16];
        leaf_prefix.copy_from_slice(&leaf.0[..16]);
        Indexed {
            id,
            record: IdRecord {
                index,
                time_ns,
                digest,
            },
            leaf_prefix,
        }
    }
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Index(e.to_string())
}

/// The id index database.
pub struct IdIndex {
    db: Database,
    ids: Keyspace,
    leaves: Keyspace,
    meta: Keyspace,
}

impl IdIndex {
    /// Opens or creates the index in the directory `path`.
    ///
    /// # Errors
    /// Database errors.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::builder(path)
            .cache_size(CACHE_BYTES)
            .max_journaling_size(MAX_JOURNAL_BYTES)
            // Durability is ours to decide: `insert(.., durable)` and `sync` persist.
            .manual_journal_persist(true)
            .open()
            .map_err(|e| StoreError::Index(format!("{}: {e}", path.display())))?;
        let ks = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(db_err)
        };
        let (ids, leaves, meta) = (ks(IDS)?, ks(LEAVES)?, ks(META)?);
        Ok(IdIndex {
            db,
            ids,
            leaves,
            meta,
        })
    }

    /// How many leading entries of the log are indexed (durably or not).
    ///
    /// # Errors
    /// Database errors, or a malformed stored value.
    pub fn indexed_through(&self) -> Result<u64> {
        match self.meta.get(INDEXED_THROUGH).map_err(db_err)? {
            None => Ok(0),
            Some(v) => {
                let b: [u8; 8] = v.as_ref().try_into().map_err(|_| {
                    StoreError::Index(format!("indexed_through of {} bytes, not 8", v.len()))
                })?;
                Ok(u64::from_be_bytes(b))
            }
        }
    }

    /// Looks an id up.
    ///
    /// # Errors
    /// Database errors.
    pub fn get(&self, id: &[u8; 16]) -> Result<Option<IdRecord>> {
        self.reader()?.get(id)
    }

    /// A handle for many lookups (one per group commit).
    ///
    /// # Errors
    /// None today; kept fallible so the writer's error path does not depend on the engine.
    pub fn reader(&self) -> Result<IdReader> {
        Ok(IdReader {
            ids: self.ids.clone(),
        })
    }

    /// The index of an entry whose leaf hash starts with `prefix` (the caller confirms the
    /// whole hash: a prefix can collide).
    ///
    /// # Errors
    /// Database errors, or a malformed stored value.
    pub fn get_leaf(&self, prefix: &[u8; 16]) -> Result<Option<u64>> {
        match self.leaves.get(prefix).map_err(db_err)? {
            None => Ok(None),
            Some(v) => {
                let b: [u8; 8] = v.as_ref().try_into().map_err(|_| {
                    StoreError::Index(format!("leaf record of {} bytes, not 8", v.len()))
                })?;
                Ok(Some(u64::from_be_bytes(b)))
            }
        }
    }

    /// Inserts records and moves `indexed_through` to `through` in one atomic batch, fsynced
    /// only when `durable`.
    ///
    /// # Errors
    /// Database errors.
    pub fn insert(&self, records: &[Indexed], through: u64, durable: bool) -> Result<()> {
        let mut batch = self.db.batch();
        for r in records {
            // Blind writes, no read first: a key can only be met again when recovery replays
            // entries already indexed, and then it carries the same record (the writer never
            // lets an id into the log twice, and a leaf hash covers the id).
            batch.insert(&self.ids, r.id, r.record.encode());
            batch.insert(&self.leaves, r.leaf_prefix, r.record.index.to_be_bytes());
        }
        batch.insert(&self.meta, INDEXED_THROUGH, through.to_be_bytes());
        batch.commit().map_err(db_err)?;
        if durable {
            self.db.persist(PersistMode::SyncAll).map_err(db_err)?;
        }
        Ok(())
    }

    /// Makes every earlier commit durable.
    ///
    /// # Errors
    /// Database errors.
    pub fn sync(&self, through: u64) -> Result<()> {
        self.insert(&[], through, true)
    }
}
