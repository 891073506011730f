//! The derived id index `log/ids.redb`: event id → (index, commit time, content digest), and
//! leaf-hash prefix → index for entries that carry an id (events).
//!
//! It answers "which entry has this id / this leaf hash" and makes retries idempotent. Commits during normal
//! operation are not fsynced (the entries are); the durable commit made before each checkpoint
//! records how far the index reaches (`indexed_through`), and recovery re-indexes the rest from
//! the segments.

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::{Result, StoreError};

const IDS: TableDefinition<&[u8; 16], &[u8; 32]> = TableDefinition::new("ids");
const LEAVES: TableDefinition<&[u8; 16], u64> = TableDefinition::new("leaves");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const INDEXED_THROUGH: &str = "indexed_through";
/// Page cache of the index database.
const CACHE_BYTES: usize = 64 << 20;

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

/// A read snapshot of the id table.
pub struct IdReader {
    table: redb::ReadOnlyTable<&'static [u8; 16], &'static [u8; 32]>,
}

impl IdReader {
    /// Looks an id up.
    ///
    /// # Errors
    /// Database errors.
    pub fn get(&self, id: &[u8; 16]) -> Result<Option<IdRecord>> {
        Ok(self
            .table
            .get(id)
            .map_err(db_err)?
            .map(|v| IdRecord::decode(v.value())))
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
}

impl IdIndex {
    /// Opens or creates the index at `path`.
    ///
    /// # Errors
    /// Database errors.
    pub fn open(path: &std::path::Path) -> Result<Self> {
        // A bounded cache keeps memory flat as the log grows (redb's default is 1 GiB).
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| StoreError::Index(format!("{}: {e}", path.display())))?;
        let tx = db.begin_write().map_err(db_err)?;
        {
            tx.open_table(IDS).map_err(db_err)?;
            tx.open_table(LEAVES).map_err(db_err)?;
            tx.open_table(META).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(IdIndex { db })
    }

    /// How many leading entries of the log are indexed (durably or not).
    ///
    /// # Errors
    /// Database errors.
    pub fn indexed_through(&self) -> Result<u64> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(META).map_err(db_err)?;
        Ok(t.get(INDEXED_THROUGH)
            .map_err(db_err)?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    /// Looks an id up.
    ///
    /// # Errors
    /// Database errors.
    pub fn get(&self, id: &[u8; 16]) -> Result<Option<IdRecord>> {
        self.reader()?.get(id)
    }

    /// A snapshot for many lookups (one read transaction for a whole group commit).
    ///
    /// # Errors
    /// Database errors.
    pub fn reader(&self) -> Result<IdReader> {
        let tx = self.db.begin_read().map_err(db_err)?;
        Ok(IdReader {
            table: tx.open_table(IDS).map_err(db_err)?,
        })
    }

    /// The index of an entry whose leaf hash starts with `prefix` (the caller confirms the
    /// whole hash: a prefix can collide).
    ///
    /// # Errors
    /// Database errors.
    pub fn get_leaf(&self, prefix: &[u8; 16]) -> Result<Option<u64>> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(LEAVES).map_err(db_err)?;
        Ok(t.get(prefix).map_err(db_err)?.map(|v| v.value()))
    }

    /// Inserts records and moves `indexed_through` to `through` in one commit, fsynced only
    /// when `durable`.
    ///
    /// # Errors
    /// Database errors.
    pub fn insert(&self, records: &[Indexed], through: u64, durable: bool) -> Result<()> {
        let mut tx = self.db.begin_write().map_err(db_err)?;
        tx.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })
        .map_err(db_err)?;
        {
            let mut t = tx.open_table(IDS).map_err(db_err)?;
            let mut leaves = tx.open_table(LEAVES).map_err(db_err)?;
            for r in records {
                // First writer wins: a crash replay may see an id already indexed.
                if t.get(&r.id).map_err(db_err)?.is_none() {
                    t.insert(&r.id, &r.record.encode()).map_err(db_err)?;
                }
                if leaves.get(&r.leaf_prefix).map_err(db_err)?.is_none() {
                    leaves
                        .insert(&r.leaf_prefix, r.record.index)
                        .map_err(db_err)?;
                }
            }
            let mut m = tx.open_table(META).map_err(db_err)?;
            m.insert(INDEXED_THROUGH, through).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Makes every earlier commit durable.
    ///
    /// # Errors
    /// Database errors.
    pub fn sync(&self, through: u64) -> Result<()> {
        self.insert(&[], through, true)
    }
}
