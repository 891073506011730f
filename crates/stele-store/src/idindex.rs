//! The derived id index `log/idindex/`: event id → (index, commit time, content digest), and
//! leaf-hash prefix → index for entries that carry an id (events).
//!
//! It answers "which entry has this id / this leaf hash" and makes retries idempotent.
//!
//! Two tiers. New records go to in-memory hash maps (the *active* layer), which the writer
//! fills after each group commit's fsync and answers lookups from at hash-map cost. When the
//! active layer is large (or old, at a checkpoint) it is *frozen* and a background thread
//! bulk-loads it, sorted, into an LSM tree (fjall) as new tables, then records durably how far
//! the on-disk index reaches (`indexed_through`). Lookups read active, then frozen, then disk,
//! except for an id above the greatest indexed one (most new ids: the server's are UUIDv7s),
//! which none of them can hold.
//!
//! Why not insert straight into the LSM tree: its memtable is a skip list, and with random
//! keys (leaf hashes always, event ids whenever clients pick UUIDv4s) each insert and each
//! lookup of a fresh id walked a large skip list — the single biggest cost of the writer
//! thread, which every append waits on. Bulk loading sorted runs skips the memtable and its
//! journal entirely. Why an LSM tree and not a B-tree on disk: a copy-on-write B-tree (redb,
//! used before) dirtied a page per random insert, so each commit rewrote a share of an index
//! that grew with the log; an LSM tree writes sequentially, merges in the background, and
//! answers absent keys — every fresh id — from bloom filters.
//!
//! Durability: the index is derived data. Records reach disk only after the entries they
//! describe were fsynced, and `indexed_through` only after its tables; after a crash, recovery
//! re-indexes the entries from `indexed_through` on (at most a couple of layers' worth).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
/// L0 tables (written layers) at which fjall merges L0 into L1 (its default: 4).
const L0_TABLES: u8 = 12;
/// Target size of a table made by compaction (fjall's default: 64 MiB); L1 holds
/// [`L0_TABLES`] of them. Smaller tables cost more files (fjall keeps 900 open): 8 MiB
/// keeps the tables of some 90 million events open.
const TABLE_BYTES: u64 = 8 << 20;
/// Records at which the active layer is frozen and written to disk. Bounds memory (two layers
/// of 19 MiB: 7/8 of 2^18 fills hash tables of 2^18 buckets exactly) and the work recovery
/// redoes after a crash.
const FREEZE_RECORDS: usize = (1 << 18) / 8 * 7;
/// At a checkpoint, a non-empty active layer older than this is written out too, so a quiet
/// log's index reaches disk without waiting for [`FREEZE_RECORDS`] events.
const FREEZE_AGE: Duration = Duration::from_secs(30);

/// Keyed by client-chosen ids, so randomly seeded (no engineered collisions), but fast.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

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

/// How the keyspaces are laid out and compacted. fjall records these when it creates a
/// keyspace and keeps them for its life: an index created by an earlier build keeps the
/// options it was created with (still correct, only compacted differently).
///
/// Each written layer lands in L0 as one table per keyspace whose keys (random: leaf hashes
/// always, ids whenever clients pick UUIDv4s) span the whole key space, so every L0→L1
/// compaction rewrites all of L1. fjall's defaults (L0 compacted at 4 tables, 64 MiB
/// tables, so a 256 MiB L1) made that the bulk of the index's CPU, and more so the larger
/// the log: three times the L0 tables rewrite L1 a third as often, and smaller tables make
/// a smaller L1 (96 MiB) that drains into deeper levels a table at a time.
/// Over an 8-million-event bench this cut compaction CPU by half. Lookups of fresh ids pay
/// for the extra L0 tables with a few more bloom filter probes (not measurable there).
fn keyspace_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default().compaction_strategy(Arc::new(
        fjall::compaction::Leveled::default()
            .with_l0_threshold(L0_TABLES)
            .with_table_target_size(TABLE_BYTES),
    ))
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Index(e.to_string())
}

/// Records not yet on disk.
#[derive(Default)]
struct Layer {
    ids: FastMap<[u8; 16], IdRecord>,
    leaves: FastMap<[u8; 16], u64>,
    /// Every entry before this one is in this layer or an older tier.
    through: u64,
}

impl Layer {
    /// Sized for a whole layer, so filling it never rehashes.
    fn with_capacity(records: usize, through: u64) -> Layer {
        Layer {
            ids: FastMap::with_capacity_and_hasher(records, Default::default()),
            leaves: FastMap::with_capacity_and_hasher(records, Default::default()),
            through,
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// The in-memory tiers.
struct Tiers {
    active: Layer,
    active_since: Instant,
    /// Being written to disk by the background thread.
    frozen: Option<Arc<Layer>>,
    /// `indexed_through` as last made durable.
    on_disk: u64,
    /// A written layer's emptied maps, kept for the next active layer: refilling allocated
    /// tables costs no page faults.
    spare: Option<Layer>,
    /// The greatest id in any tier (as a big-endian number, the keys' byte order), `None`
    /// while there is none. A greater id is in no tier, so its lookup ends here: the server
    /// gives events UUIDv7 ids, which grow with time, so nearly every new event's id is
    /// above all the others, and looking it up was two hash-table misses and an LSM-tree
    /// read on the writer thread for each appended event.
    max_id: Option<u128>,
}

/// The keyspaces, shared with the background writer.
#[derive(Clone)]
struct Disk {
    db: Database,
    ids: Keyspace,
    leaves: Keyspace,
    meta: Keyspace,
}

/// The id index.
pub struct IdIndex {
    disk: Disk,
    tiers: Arc<RwLock<Tiers>>,
    /// The thread writing the frozen layer, if one runs.
    flusher: Mutex<Option<JoinHandle<Result<()>>>>,
    /// [`FREEZE_RECORDS`], smaller in tests.
    freeze_records: usize,
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
            // One background worker. With two or more, fjall's worker 0 hands every
            // compaction request back to the queue (to stay free for flushes) and picks it up
            // again at once while the other worker is busy: a spin that took 7% of the CPU in
            // the batched HTTP bench. Our tables are bulk-loaded, so a single worker for
            // compactions and the rare memtable flush (only `meta`) is plenty.
            .worker_threads(1)
            // Durability is ours to decide: only `indexed_through` goes through the journal,
            // persisted after the tables it vouches for.
            .manual_journal_persist(true)
            .open()
            .map_err(|e| StoreError::Index(format!("{}: {e}", path.display())))?;
        let ks = |name: &str| db.keyspace(name, keyspace_options).map_err(db_err);
        let (ids, leaves, meta) = (ks(IDS)?, ks(LEAVES)?, ks(META)?);
        let disk = Disk {
            db,
            ids,
            leaves,
            meta,
        };
        let through = disk.indexed_through()?;
        let max_id = disk.max_id()?;
        Ok(IdIndex {
            disk,
            tiers: Arc::new(RwLock::new(Tiers {
                active: Layer {
                    through,
                    ..Layer::default()
                },
                active_since: Instant::now(),
                frozen: None,
                on_disk: through,
                spare: None,
                max_id,
            })),
            flusher: Mutex::new(None),
            freeze_records: FREEZE_RECORDS,
        })
    }

    /// How many leading entries of the log are indexed on disk.
    ///
    /// # Errors
    /// Database errors, or a malformed stored value.
    pub fn indexed_through(&self) -> Result<u64> {
        self.disk.indexed_through()
    }

    /// Looks an id up.
    ///
    /// # Errors
    /// Database errors.
    pub fn get(&self, id: &[u8; 16]) -> Result<Option<IdRecord>> {
        self.reader().get(id)
    }

    /// A handle for many lookups (one per group commit): holds the in-memory tiers for
    /// reading, so it must not live across [`IdIndex::insert`].
    pub fn reader(&self) -> IdReader<'_> {
        IdReader {
            tiers: self.tiers.read().unwrap_or_else(|p| p.into_inner()),
            disk: &self.disk,
        }
    }

    /// The index of an entry whose leaf hash starts with `prefix` (the caller confirms the
    /// whole hash: a prefix can collide).
    ///
    /// # Errors
    /// Database errors, or a malformed stored value.
    pub fn get_leaf(&self, prefix: &[u8; 16]) -> Result<Option<u64>> {
        {
            let t = self.tiers.read().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = t.active.leaves.get(prefix) {
                return Ok(Some(*i));
            }
            if let Some(i) = t.frozen.as_ref().and_then(|f| f.leaves.get(prefix)) {
                return Ok(Some(*i));
            }
        }
        // A layer frozen meanwhile is on disk before it leaves memory, so nothing falls
        // between the two reads.
        match self.disk.leaves.get(prefix).map_err(db_err)? {
            None => Ok(None),
            Some(v) => {
                let b: [u8; 8] = v.as_ref().try_into().map_err(|_| {
                    StoreError::Index(format!("leaf record of {} bytes, not 8", v.len()))
                })?;
                Ok(Some(u64::from_be_bytes(b)))
            }
        }
    }

    /// Adds records (in index order) and moves the index's reach to `through`. Records must
    /// describe durable entries only. Writes a layer to disk in the background when the
    /// active one is full.
    ///
    /// # Errors
    /// The failure of an earlier background write (the caller stops trusting the index).
    pub fn insert(&self, records: &[Indexed], through: u64) -> Result<()> {
        let mut rest = records;
        while !rest.is_empty() {
            let full = {
                let mut t = self.tiers.write().unwrap_or_else(|p| p.into_inner());
                let room = self.freeze_records.saturating_sub(t.active.len()).max(1);
                let (now, later) = rest.split_at(room.min(rest.len()));
                if let Some(top) = now.iter().map(|r| u128::from_be_bytes(r.id)).max() {
                    t.max_id = t.max_id.max(Some(top));
                }
                let a = &mut t.active;
                a.ids.reserve(now.len());
                a.leaves.reserve(now.len());
                for r in now {
                    a.ids.insert(r.id, r.record);
                    a.leaves.insert(r.leaf_prefix, r.record.index);
                }
                rest = later;
                // Entries up to the last record are covered; past it only if the batch ends.
                a.through = if rest.is_empty() {
                    through
                } else {
                    now.last().map_or(a.through, |r| r.record.index + 1)
                };
                a.len() >= self.freeze_records
            };
            if full {
                self.freeze(false)?;
            }
        }
        let mut t = self.tiers.write().unwrap_or_else(|p| p.into_inner());
        t.active.through = t.active.through.max(through);
        Ok(())
    }

    /// At a checkpoint: writes the active layer out if it has waited long enough.
    ///
    /// # Errors
    /// The failure of this or an earlier background write.
    pub fn checkpoint(&self) -> Result<()> {
        let due = {
            let t = self.tiers.read().unwrap_or_else(|p| p.into_inner());
            (t.active.len() > 0 || t.active.through > t.on_disk)
                && t.active_since.elapsed() >= FREEZE_AGE
        };
        if due {
            self.freeze(false)?;
        }
        Ok(())
    }

    /// Writes everything in memory to disk and waits for it: on close, and in tests.
    ///
    /// # Errors
    /// Database errors.
    pub fn flush(&self) -> Result<()> {
        self.freeze(true)
    }

    /// Moves the active layer to frozen (after the previous frozen layer is on disk) and
    /// writes it in the background, or in this thread when `wait`.
    fn freeze(&self, wait: bool) -> Result<()> {
        let mut flusher = self.flusher.lock().unwrap_or_else(|p| p.into_inner());
        // One layer in flight at a time: keeps `indexed_through` in order and memory bounded.
        if let Some(h) = flusher.take() {
            h.join()
                .map_err(|_| StoreError::Index("id index writer panicked".into()))??;
        }
        let layer = {
            let mut t = self.tiers.write().unwrap_or_else(|p| p.into_inner());
            let through = t.active.through;
            let next = match t.spare.take() {
                Some(mut spare) => {
                    spare.through = through;
                    spare
                }
                None => Layer::with_capacity(self.freeze_records, through),
            };
            let layer = Arc::new(std::mem::replace(&mut t.active, next));
            t.active_since = Instant::now();
            t.frozen = Some(layer.clone());
            layer
        };
        let (disk, tiers) = (self.disk.clone(), self.tiers.clone());
        let job = move || -> Result<()> {
            disk.write_layer(&layer)?;
            let mut t = tiers.write().unwrap_or_else(|p| p.into_inner());
            t.frozen = None;
            t.on_disk = layer.through;
            if let Ok(mut done) = Arc::try_unwrap(layer) {
                done.ids.clear();
                done.leaves.clear();
                t.spare = Some(done);
            }
            Ok(())
        };
        if wait {
            job()
        } else {
            *flusher = Some(
                std::thread::Builder::new()
                    .name("stele-idindex".into())
                    .spawn(job)
                    .map_err(|e| StoreError::Index(format!("spawning the id index writer: {e}")))?,
            );
            Ok(())
        }
    }
}

impl Drop for IdIndex {
    fn drop(&mut self) {
        // Let a running layer write finish before the database closes under it.
        if let Some(h) = self
            .flusher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = h.join();
        }
    }
}

/// Lookups of ids, for the writer's many lookups in one group commit.
pub struct IdReader<'a> {
    tiers: RwLockReadGuard<'a, Tiers>,
    disk: &'a Disk,
}

impl IdReader<'_> {
    /// Looks an id up.
    ///
    /// # Errors
    /// Database errors, or a stored record of the wrong length.
    pub fn get(&self, id: &[u8; 16]) -> Result<Option<IdRecord>> {
        if self
            .tiers
            .max_id
            .is_none_or(|max| u128::from_be_bytes(*id) > max)
        {
            return Ok(None);
        }
        if let Some(r) = self.tiers.active.ids.get(id) {
            return Ok(Some(*r));
        }
        if let Some(r) = self.tiers.frozen.as_ref().and_then(|f| f.ids.get(id)) {
            return Ok(Some(*r));
        }
        // While this reader lives the frozen layer cannot leave memory, so a record is
        // always in one of the three places.
        match self.disk.ids.get(id).map_err(db_err)? {
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

impl Disk {
    fn indexed_through(&self) -> Result<u64> {
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

    /// The greatest id on disk, `None` if there is none. A key of another length (not
    /// written by this index) gives no bound at all rather than a wrong one.
    fn max_id(&self) -> Result<Option<u128>> {
        let Some(last) = self.ids.last_key_value() else {
            return Ok(None);
        };
        let key = last.key().map_err(db_err)?;
        Ok(Some(
            <[u8; 16]>::try_from(key.as_ref()).map_or(u128::MAX, u128::from_be_bytes),
        ))
    }

    /// Bulk-loads a layer as sorted runs (fsynced tables), then durably records its reach.
    fn write_layer(&self, layer: &Layer) -> Result<()> {
        // Copied out of the hash tables, then sorted as integers (big-endian, so in the byte
        // order of the keys): a sort of pointers into the tables would chase them on every
        // comparison.
        let mut ids: Vec<(u128, IdRecord)> = layer
            .ids
            .iter()
            .map(|(k, r)| (u128::from_be_bytes(*k), *r))
            .collect();
        ids.sort_unstable_by_key(|(k, _)| *k);
        if !ids.is_empty() {
            let mut run = self.ids.start_ingestion().map_err(db_err)?;
            for (k, r) in ids {
                run.write(k.to_be_bytes(), r.encode()).map_err(db_err)?;
            }
            run.finish().map_err(db_err)?;
        }
        let mut leaves: Vec<(u128, u64)> = layer
            .leaves
            .iter()
            .map(|(k, i)| (u128::from_be_bytes(*k), *i))
            .collect();
        leaves.sort_unstable_by_key(|(k, _)| *k);
        if !leaves.is_empty() {
            let mut run = self.leaves.start_ingestion().map_err(db_err)?;
            for (k, i) in leaves {
                run.write(k.to_be_bytes(), i.to_be_bytes())
                    .map_err(db_err)?;
            }
            run.finish().map_err(db_err)?;
        }
        self.meta
            .insert(INDEXED_THROUGH, layer.through.to_be_bytes())
            .map_err(db_err)?;
        self.db.persist(PersistMode::SyncAll).map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u64) -> Indexed {
        // Ids and leaves spread over the key space like random UUIDs and hashes.
        let h = stele_core::hash::leaf_hash(&i.to_be_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&h.0[16..]);
        Indexed::new(id, i, i as i64 * 10, [i as u8; 16], &h)
    }

    fn open_small(dir: &Path, freeze: usize) -> IdIndex {
        let mut ix = IdIndex::open(dir).unwrap();
        ix.freeze_records = freeze;
        ix
    }

    fn assert_finds(ix: &IdIndex, range: std::ops::Range<u64>) {
        for i in range {
            let r = record(i);
            assert_eq!(ix.get(&r.id).unwrap(), Some(r.record), "id of entry {i}");
            assert_eq!(
                ix.get_leaf(&r.leaf_prefix).unwrap(),
                Some(i),
                "leaf of entry {i}"
            );
        }
    }

    #[test]
    fn records_are_found_in_every_tier_and_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let ix = open_small(dir.path(), 100);
        // Batches that straddle freezes: some records sit in the active layer, some frozen or
        // being written, some on disk.
        let mut next = 0u64;
        for batch in [7u64, 150, 1, 93, 260, 40] {
            let rs: Vec<Indexed> = (next..next + batch).map(record).collect();
            next += batch;
            ix.insert(&rs, next).unwrap();
            assert_finds(&ix, 0..next);
        }
        let absent = record(next + 1);
        assert_eq!(ix.get(&absent.id).unwrap(), None);
        assert_eq!(ix.get_leaf(&absent.leaf_prefix).unwrap(), None);
        ix.flush().unwrap();
        assert_eq!(ix.indexed_through().unwrap(), next);
        drop(ix);
        let ix = IdIndex::open(dir.path()).unwrap();
        assert_eq!(ix.indexed_through().unwrap(), next);
        assert_finds(&ix, 0..next);
    }

    #[test]
    fn without_a_flush_disk_reach_covers_only_written_layers() {
        let dir = tempfile::tempdir().unwrap();
        let ix = open_small(dir.path(), 100);
        let rs: Vec<Indexed> = (0..250).map(record).collect();
        // Two full layers go to disk; 50 records stay in memory.
        ix.insert(&rs, 260).unwrap();
        // Not yet due: the active layer is young.
        ix.checkpoint().unwrap();
        // As after a crash: dropping waits for the background write, nothing more.
        drop(ix);
        let ix = IdIndex::open(dir.path()).unwrap();
        let through = ix.indexed_through().unwrap();
        assert_eq!(
            through, 200,
            "reach of the layers written, not of the batch"
        );
        assert_finds(&ix, 0..200);
        for i in 200..250 {
            assert_eq!(
                ix.get(&record(i).id).unwrap(),
                None,
                "entry {i} was only in memory"
            );
        }
    }

    #[test]
    fn an_index_created_with_other_keyspace_options_keeps_working() {
        let dir = tempfile::tempdir().unwrap();
        {
            // As earlier builds created it: fjall's default options, which fjall keeps.
            let db = Database::builder(dir.path()).open().unwrap();
            for name in [IDS, LEAVES, META] {
                db.keyspace(name, KeyspaceCreateOptions::default).unwrap();
            }
            db.persist(PersistMode::SyncAll).unwrap();
        }
        let ix = open_small(dir.path(), 100);
        let rs: Vec<Indexed> = (0..950).map(record).collect();
        ix.insert(&rs, 950).unwrap();
        ix.flush().unwrap();
        assert_finds(&ix, 0..950);
        drop(ix);
        let ix = IdIndex::open(dir.path()).unwrap();
        assert_eq!(ix.indexed_through().unwrap(), 950);
        assert_finds(&ix, 0..950);
    }

    /// An entry whose id is the number `n`.
    fn record_with_id(n: u128, index: u64) -> Indexed {
        let h = stele_core::hash::leaf_hash(&index.to_be_bytes());
        Indexed::new(n.to_be_bytes(), index, 0, [1; 16], &h)
    }

    #[test]
    fn ids_above_the_greatest_are_absent_in_every_tier_and_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let ix = open_small(dir.path(), 2);
        let get = |ix: &IdIndex, n: u128| ix.get(&n.to_be_bytes()).unwrap().map(|r| r.index);
        assert_eq!(get(&ix, 0), None, "empty index");
        // Out of order, and spread over disk, frozen and active layers.
        let ids = [500u128, 100, 900, 300, 700];
        for (i, &n) in ids.iter().enumerate() {
            ix.insert(&[record_with_id(n, i as u64)], i as u64 + 1)
                .unwrap();
        }
        for (i, &n) in ids.iter().enumerate() {
            assert_eq!(get(&ix, n), Some(i as u64), "id {n}");
        }
        for n in [0, 101, 899, 901, u128::MAX] {
            assert_eq!(get(&ix, n), None, "id {n}");
        }
        ix.flush().unwrap();
        drop(ix);
        // The bound comes back from the disk tier.
        let ix = open_small(dir.path(), 2);
        assert_eq!(get(&ix, 900), Some(2));
        assert_eq!(get(&ix, 901), None);
        // A greater id added later is found.
        ix.insert(&[record_with_id(1_000, 5)], 6).unwrap();
        assert_eq!(get(&ix, 1_000), Some(5));
        assert_eq!(get(&ix, 900), Some(2));
        assert_eq!(get(&ix, 1_001), None);
    }

    #[test]
    fn a_stored_key_of_another_length_leaves_ids_unbounded() {
        let dir = tempfile::tempdir().unwrap();
        {
            let ix = IdIndex::open(dir.path()).unwrap();
            ix.insert(&[record_with_id(7, 0)], 1).unwrap();
            ix.flush().unwrap();
            // Not something this index writes: the bound must not be read from it.
            ix.disk.ids.insert([0xffu8; 20], [0u8; 32]).unwrap();
            ix.disk.db.persist(PersistMode::SyncAll).unwrap();
        }
        let ix = IdIndex::open(dir.path()).unwrap();
        assert_eq!(
            ix.get(&7u128.to_be_bytes()).unwrap().map(|r| r.index),
            Some(0)
        );
        ix.insert(&[record_with_id(u128::MAX - 1, 1)], 2).unwrap();
        ix.flush().unwrap();
        drop(ix);
        let ix = IdIndex::open(dir.path()).unwrap();
        assert_eq!(
            ix.get(&(u128::MAX - 1).to_be_bytes())
                .unwrap()
                .map(|r| r.index),
            Some(1)
        );
    }

    #[test]
    fn reach_moves_without_records() {
        let dir = tempfile::tempdir().unwrap();
        let ix = open_small(dir.path(), 100);
        ix.insert(&[], 1000).unwrap();
        ix.flush().unwrap();
        drop(ix);
        assert_eq!(
            IdIndex::open(dir.path())
                .unwrap()
                .indexed_through()
                .unwrap(),
            1000
        );
    }
}
