//! The [`Index`] handle: open (loading sealed chunks), follow the log, answer queries.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use stele_core::timestamp::Timestamp;
use stele_store::Store;

use crate::chunk::{chunk_path, ChunkRead, OpenChunk, SealedChunk};
use crate::error::{IndexError, Result};
use crate::fields::{extract, Extracted};
use crate::query::{Counts, Filter, GroupBy, Order, Page, Snapshot};
use crate::replay::{
    ChangeRecord, Grant, PermissionReplay, PrincipalReplay, RawGrant, ReplayLog, RolePermissions,
    RoleReplay, ScopeFilter,
};

/// Entries per chunk by default: offsets fit a `u16`, and a chunk's bit set is 8 KiB.
pub const DEFAULT_CHUNK_SIZE: u32 = 65_536;

/// Entries the follower reads from the log per step.
const BATCH: u64 = 8_192;

/// How to open an index.
#[derive(Clone, Debug)]
pub struct IndexOptions {
    /// The index directory (by convention `DATA/index`, beside the log's `DATA/log`).
    pub dir: PathBuf,
    /// Entries per chunk: a power of two from 64 to 65536. An index written with another
    /// size is rebuilt.
    pub chunk_size: u32,
    /// Whether to start the follower thread that indexes new entries as they are appended.
    pub follow: bool,
}

impl IndexOptions {
    /// Defaults for the index in `dir`: 65536-entry chunks, following the log.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        IndexOptions {
            dir: dir.into(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            follow: true,
        }
    }
}

/// `index/meta.json`.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct Meta {
    format: u32,
    chunk_size: u32,
}

struct State {
    sealed: Vec<Arc<SealedChunk>>,
    open: OpenChunk,
}

struct Metrics {
    indexed: Gauge,
    lag: Gauge,
    chunks: Gauge,
    bytes: Gauge,
}

struct Inner {
    store: Store,
    chunks_dir: PathBuf,
    chunk_size: u32,
    state: RwLock<State>,
    replay: RwLock<ReplayLog>,
    /// Commit time of the last indexed entry (the time given to entries that are not events).
    last_time: AtomicU64,
    stop: AtomicBool,
    follower: Mutex<Option<JoinHandle<()>>>,
    /// Held through each [`step`]: a step reads where the open chunk ends, works without the
    /// state lock, then appends there, so two at once (the follower and a caller of
    /// [`Index::catch_up`]) would index the same entries twice.
    stepping: Mutex<()>,
    metrics: Metrics,
}

/// A derived, rebuildable query index over a log. Cheap to clone. The follower thread (if
/// started) stops when [`Index::shutdown`] is called or the last handle is dropped.
#[derive(Clone)]
pub struct Index {
    inner: Arc<Inner>,
}

/// Stops the follower when the last [`Index`] handle goes.
impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl Index {
    /// Opens (or creates) the index of `store` in `opts.dir`: loads and checks every sealed
    /// chunk, discarding from the first one that fails a check or does not match the log, and
    /// starts following the log from there.
    ///
    /// # Errors
    /// I/O errors creating the directory; reading the log.
    pub fn open(store: Store, opts: IndexOptions) -> Result<Index> {
        let chunk_size = opts.chunk_size;
        if !chunk_size.is_power_of_two() || !(64..=65_536).contains(&chunk_size) {
            return Err(IndexError::InvalidQuery(format!(
                "chunk size {chunk_size} is not a power of two from 64 to 65536"
            )));
        }
        let chunks_dir = opts.dir.join("chunks");
        std::fs::create_dir_all(&chunks_dir).map_err(IndexError::io("create", &chunks_dir))?;
        let meta_path = opts.dir.join("meta.json");
        // Format 2: sealed chunks also hold `policy.update` permission records; chunks of
        // format 1 lack them, so they are rebuilt rather than trusted.
        let meta = Meta {
            format: 2,
            chunk_size,
        };
        let found: Option<Meta> = std::fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if found.as_ref() != Some(&meta) {
            if found.is_some() {
                tracing::info!("index format or chunk size changed; rebuilding the index");
            }
            remove_chunks_from(&chunks_dir, 0)?;
            let bytes = serde_json::to_vec(&meta).unwrap_or_default();
            std::fs::write(&meta_path, bytes).map_err(IndexError::io("write", &meta_path))?;
        }
        let mut sealed = Vec::new();
        let mut replay = ReplayLog::default();
        let cs = u64::from(chunk_size);
        loop {
            let n = sealed.len() as u64;
            let path = chunk_path(&chunks_dir, n);
            if !path.exists() {
                break;
            }
            let last = (n + 1) * cs - 1;
            let opened = SealedChunk::open(&path, n * cs, chunk_size).and_then(|(c, leaf)| {
                if last >= store.size() || store.leaf_hash(last)? != leaf {
                    return Err(IndexError::Corrupt {
                        file: path.clone(),
                        detail: "does not match the log (another log, or a log cut short)".into(),
                    });
                }
                Ok(c)
            });
            match opened {
                Ok(c) => {
                    for r in c.changes() {
                        replay.push(r.clone());
                    }
                    sealed.push(Arc::new(c));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "discarding index chunks from {n} on; they are rebuilt from the log");
                    break;
                }
            }
        }
        remove_chunks_from(&chunks_dir, sealed.len() as u64)?;
        let first = sealed.len() as u64 * cs;
        let last_time = sealed.last().map_or(i64::MIN, |c| c.time(c.len() - 1));
        let inner = Arc::new(Inner {
            store,
            chunks_dir,
            chunk_size,
            state: RwLock::new(State {
                sealed,
                open: OpenChunk::new(first),
            }),
            replay: RwLock::new(replay),
            last_time: AtomicU64::new(last_time as u64),
            stop: AtomicBool::new(false),
            follower: Mutex::new(None),
            stepping: Mutex::new(()),
            metrics: Metrics {
                indexed: Gauge::default(),
                lag: Gauge::default(),
                chunks: Gauge::default(),
                bytes: Gauge::default(),
            },
        });
        let index = Index { inner };
        index.update_metrics();
        if opts.follow {
            let weak = Arc::downgrade(&index.inner);
            let handle = std::thread::Builder::new()
                .name("stele-index".into())
                .spawn(move || follow(weak))
                .map_err(IndexError::io("spawn follower", &opts.dir))?;
            *index
                .inner
                .follower
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(handle);
        }
        Ok(index)
    }

    /// Deletes the index in `dir` (it is derived data) so the next [`Index::open`] rebuilds
    /// it from the log.
    ///
    /// # Errors
    /// I/O errors.
    pub fn remove(dir: &Path) -> Result<()> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(IndexError::io("remove", dir)(e)),
        }
    }

    /// The log this index follows.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Entries indexed so far.
    pub fn indexed(&self) -> u64 {
        let st = self.read_state();
        st.open.first() + st.open.len() as u64
    }

    /// Entries of the log not yet indexed.
    pub fn lag(&self) -> u64 {
        self.inner.store.size().saturating_sub(self.indexed())
    }

    /// Bytes of the sealed chunk files.
    pub fn size_bytes(&self) -> u64 {
        self.read_state()
            .sealed
            .iter()
            .map(|c| c.byte_len() as u64)
            .sum()
    }

    /// Indexes whatever the log holds now, on the calling thread (without a follower, or to
    /// catch up at once). Returns the entries indexed.
    ///
    /// # Errors
    /// Reading the log.
    pub fn catch_up(&self) -> Result<u64> {
        let mut done = 0;
        loop {
            let n = step(&self.inner)?;
            if n == 0 {
                return Ok(done);
            }
            done += n;
        }
    }

    /// Waits until at least `size` entries are indexed, or `timeout` passes; returns whether
    /// they are.
    pub fn wait_for(&self, size: u64, timeout: Duration) -> bool {
        let start = Instant::now();
        while self.indexed() < size {
            if start.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Stops the follower thread and waits for it.
    pub fn shutdown(&self) {
        self.inner.stop.store(true, Ordering::Release);
        let handle = self
            .inner
            .follower
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            h.thread().unpark();
            let _ = h.join();
        }
    }

    /// Registers the index's gauges (`stele_index_indexed_entries`, `stele_index_lag_entries`,
    /// `stele_index_chunks`, `stele_index_bytes`).
    pub fn register_metrics(&self, registry: &mut Registry) {
        let m = &self.inner.metrics;
        registry.register(
            "stele_index_indexed_entries",
            "Log entries the query index covers",
            m.indexed.clone(),
        );
        registry.register(
            "stele_index_lag_entries",
            "Log entries not yet in the query index",
            m.lag.clone(),
        );
        registry.register(
            "stele_index_chunks",
            "Sealed chunks of the query index",
            m.chunks.clone(),
        );
        registry.register(
            "stele_index_bytes",
            "Bytes of the query index's sealed chunk files",
            m.bytes.clone(),
        );
    }

    /// Refreshes the gauges (the follower does this as it goes; call before a scrape for an
    /// exact lag).
    pub fn update_metrics(&self) {
        let (indexed, chunks, bytes) = {
            let st = self.read_state();
            let bytes: usize = st.sealed.iter().map(|c| c.byte_len()).sum();
            (
                st.open.first() + st.open.len() as u64,
                st.sealed.len(),
                bytes,
            )
        };
        let m = &self.inner.metrics;
        m.indexed.set(gauge(indexed));
        m.lag
            .set(gauge(self.inner.store.size().saturating_sub(indexed)));
        m.chunks.set(gauge(chunks as u64));
        m.bytes.set(gauge(bytes as u64));
    }

    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn with_snapshot<T>(&self, f: impl FnOnce(&Snapshot<'_>) -> T) -> T {
        let st = self.read_state();
        let mut chunks: Vec<&dyn ChunkRead> =
            st.sealed.iter().map(|c| &**c as &dyn ChunkRead).collect();
        chunks.push(&st.open);
        f(&Snapshot { chunks })
    }

    /// Up to `limit` matching indexes in `order`, strictly between the cursor bounds
    /// `(after, before)` (either may be absent), and only below `below` if given.
    pub fn search(
        &self,
        filter: &Filter,
        order: Order,
        after: Option<u64>,
        before: Option<u64>,
        limit: usize,
    ) -> Page {
        let lo = after.map_or(0, |a| a.saturating_add(1));
        let hi = before.unwrap_or(u64::MAX);
        self.with_snapshot(|s| s.search(filter, order, (lo, hi), limit))
    }

    /// Counts matching events among the first `below` entries (all if `None`), grouped.
    pub fn count(&self, filter: &Filter, group: Option<GroupBy>, below: Option<u64>) -> Counts {
        self.with_snapshot(|s| s.count(filter, group, (0, below.unwrap_or(u64::MAX))))
    }

    /// Replays the grants of `principal` as of `as_of` (inclusive), with the leaf hash of
    /// each establishing entry.
    ///
    /// # Errors
    /// Reading leaf hashes from the log.
    pub fn replay_principal(&self, principal: &str, as_of: i64) -> Result<PrincipalReplay> {
        let size = self.indexed();
        let (active, raw) = self
            .inner
            .replay
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .principal(principal, as_of, size);
        Ok(PrincipalReplay {
            principal: principal.to_owned(),
            as_of: Timestamp::from_unix_nanos(as_of),
            active,
            roles: self.grants(raw, false)?,
        })
    }

    /// Replays who held `role` (in the scopes `scopes` admits) as of `as_of` (inclusive).
    ///
    /// # Errors
    /// Reading leaf hashes from the log.
    pub fn replay_role(&self, role: &str, scopes: &ScopeFilter, as_of: i64) -> Result<RoleReplay> {
        Ok(RoleReplay {
            role: role.to_owned(),
            as_of: Timestamp::from_unix_nanos(as_of),
            principals: self.replayed(|log, size| log.role(role, scopes, as_of, size))?,
        })
    }

    /// Replays who held, in the scopes `scopes` admits, a role whose permissions included
    /// `permission` as of `as_of` (inclusive).
    ///
    /// # Errors
    /// Reading leaf hashes from the log.
    pub fn replay_permission(
        &self,
        permission: &str,
        scopes: &ScopeFilter,
        as_of: i64,
    ) -> Result<PermissionReplay> {
        Ok(PermissionReplay {
            permission: permission.to_owned(),
            as_of: Timestamp::from_unix_nanos(as_of),
            principals: self
                .replayed(|log, size| log.permission(permission, scopes, as_of, size))?,
        })
    }

    /// Number of permission-change events indexed.
    pub fn change_events(&self) -> usize {
        self.inner
            .replay
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Folds the replay log as far as the index reaches with `fold`, then looks up the leaf
    /// hashes of the grants it gives (each naming its principal).
    fn replayed(&self, fold: impl FnOnce(&ReplayLog, u64) -> Vec<RawGrant>) -> Result<Vec<Grant>> {
        let size = self.indexed();
        // The lock is released before the log is read for leaf hashes.
        let raw = fold(
            &self.inner.replay.read().unwrap_or_else(|p| p.into_inner()),
            size,
        );
        self.grants(raw, true)
    }

    fn grants(&self, raw: Vec<RawGrant>, with_principal: bool) -> Result<Vec<Grant>> {
        raw.into_iter()
            .map(|g| {
                Ok(Grant {
                    principal: with_principal.then_some(g.principal),
                    role: g.role,
                    scope: g.scope,
                    granted_at: Timestamp::from_unix_nanos(g.time),
                    index: g.index,
                    leaf_hash: self.inner.store.leaf_hash(g.index)?,
                    via: g.via,
                    permissions: g
                        .permissions
                        .map(|(set, time, index)| -> Result<RolePermissions> {
                            Ok(RolePermissions {
                                set,
                                defined_at: Timestamp::from_unix_nanos(time),
                                index,
                                leaf_hash: self.inner.store.leaf_hash(index)?,
                                inclusion_proof: None,
                            })
                        })
                        .transpose()?,
                    inclusion_proof: None,
                })
            })
            .collect()
    }
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Removes chunk files numbered `from` and above (and stray temporary files).
fn remove_chunks_from(dir: &Path, from: u64) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(IndexError::io("list", dir))?;
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let n = name
            .strip_suffix(".idx")
            .and_then(|n| n.parse::<u64>().ok());
        if n.is_none_or(|n| n >= from) {
            let path = e.path();
            std::fs::remove_file(&path).map_err(IndexError::io("remove", &path))?;
        }
    }
    Ok(())
}

/// The follower: indexes new entries until stopped or the index is dropped.
fn follow(weak: std::sync::Weak<Inner>) {
    let mut last_error: Option<Instant> = None;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        if inner.stop.load(Ordering::Acquire) {
            return;
        }
        let result = step(&inner);
        let index = Index {
            inner: inner.clone(),
        };
        index.update_metrics();
        drop(index);
        drop(inner);
        match result {
            Ok(0) => std::thread::park_timeout(Duration::from_millis(2)),
            Ok(_) => {}
            Err(e) => {
                if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, "query index cannot read the log; retrying");
                    last_error = Some(Instant::now());
                }
                std::thread::park_timeout(Duration::from_millis(100));
            }
        }
    }
}

/// Indexes up to [`BATCH`] new entries (stopping at a chunk boundary); returns how many.
fn step(inner: &Inner) -> Result<u64> {
    let _stepping = inner.stepping.lock().unwrap_or_else(|p| p.into_inner());
    let cs = u64::from(inner.chunk_size);
    let (from, open_first) = {
        let st = inner.state.read().unwrap_or_else(|p| p.into_inner());
        (st.open.first() + st.open.len() as u64, st.open.first())
    };
    let size = inner.store.size();
    if from >= size {
        return Ok(0);
    }
    let to = size.min(from + BATCH).min(open_first + cs);
    let bundles = read_bundles(&inner.store, from, to)?;
    let entries: Vec<&[u8]> = bundles
        .iter()
        .flat_map(|(data, ranges)| ranges.iter().filter_map(|r| data.get(r.clone())))
        .collect();
    if entries.len() as u64 != to - from {
        return Err(IndexError::Corrupt {
            file: PathBuf::from(format!("entries {from}..{to}")),
            detail: format!("read {} entries", entries.len()),
        });
    }
    let mut prev = inner.last_time.load(Ordering::Acquire) as i64;
    // Parsing is the expensive part: on a large step, split it over two threads. The two
    // halves stay separate vectors (in log order), so nothing is moved to join them.
    let extracted: Vec<Vec<Extracted<'_>>> = if entries.len() >= 1_024 {
        let (a, b) = entries.split_at(entries.len() / 2);
        let mid = from + a.len() as u64;
        std::thread::scope(|s| {
            let second = s.spawn(|| extract_all(b, mid));
            let first = extract_all(a, from);
            let second = second
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            vec![first, second]
        })
    } else {
        vec![extract_all(&entries, from)]
    };
    {
        let mut st = inner.state.write().unwrap_or_else(|p| p.into_inner());
        let mut replay = inner.replay.write().unwrap_or_else(|p| p.into_inner());
        for c in extracted.iter().flatten().filter_map(|x| x.change.as_ref()) {
            replay.push(ChangeRecord::clone(c));
        }
        st.open.extend(extracted, prev);
        prev = st.open.last_time().unwrap_or(prev);
    }
    inner.last_time.store(prev as u64, Ordering::Release);
    if to == open_first + cs {
        seal(inner, open_first)?;
    }
    Ok(to - from)
}

/// Extracts the entries `part`, the first at log index `base`.
fn extract_all<'a>(part: &[&'a [u8]], base: u64) -> Vec<Extracted<'a>> {
    part.iter()
        .enumerate()
        .map(|(i, e)| extract(base + i as u64, e))
        .collect()
}

/// Writes the full open chunk to its file, maps it, and swaps it in for the open chunk.
fn seal(inner: &Inner, first: u64) -> Result<()> {
    let cs = u64::from(inner.chunk_size);
    let leaf = inner.store.leaf_hash(first + cs - 1)?;
    let bytes = {
        let st = inner.state.read().unwrap_or_else(|p| p.into_inner());
        st.open.encode(inner.chunk_size, &leaf)
    };
    let n = first / cs;
    let path = chunk_path(&inner.chunks_dir, n);
    let chunk = match write_chunk(&path, &bytes)
        .and_then(|()| SealedChunk::open(&path, first, inner.chunk_size).map(|(c, _)| c))
    {
        Ok(c) => c,
        Err(e) => {
            // The index is derived: keep serving from memory; a restart rebuilds the file.
            tracing::warn!(error = %e, "cannot write an index chunk; keeping it in memory");
            SealedChunk::in_memory(bytes, first, inner.chunk_size)?
        }
    };
    let full = {
        let mut st = inner.state.write().unwrap_or_else(|p| p.into_inner());
        st.sealed.push(Arc::new(chunk));
        std::mem::replace(&mut st.open, OpenChunk::new(first + cs))
    };
    // Emptied outside the lock (queries meanwhile see the new, empty chunk), then swapped in
    // for it while it is still empty.
    let recycled = full.recycle(first + cs);
    let mut st = inner.state.write().unwrap_or_else(|p| p.into_inner());
    if st.open.first() == first + cs && st.open.len() == 0 {
        st.open = recycled;
    }
    Ok(())
}

/// Writes a chunk file under a temporary name, then renames it into place. No fsync: the
/// index is derived, and a chunk that does not survive a crash intact fails its checksum on
/// open and is rebuilt from the log.
fn write_chunk(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(IndexError::io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(IndexError::io("rename", path))
}

/// The entries `from .. to` of the log, read bundle by bundle: each bundle's bytes and the
/// byte ranges of the wanted entries in it.
#[allow(clippy::type_complexity)]
fn read_bundles(store: &Store, from: u64, to: u64) -> Result<Vec<(Vec<u8>, Vec<Range<usize>>)>> {
    const W: u64 = 256;
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let bundle = at / W;
        let width = (to - bundle * W).min(W);
        let data = store.entry_bundle(bundle, (width < W).then_some(width as u16))?;
        let mut ranges = Vec::with_capacity(width as usize);
        let mut pos = 0usize;
        let mut i = bundle * W;
        while let Some(len) = data
            .get(pos..pos + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        {
            let start = pos + 2;
            if start + len > data.len() {
                return Err(IndexError::Corrupt {
                    file: PathBuf::from(format!("entry bundle {bundle}")),
                    detail: "entry runs past the bundle".into(),
                });
            }
            if i >= at && i < to {
                ranges.push(start..start + len);
            }
            i += 1;
            pos = start + len;
        }
        out.push((data, ranges));
        at = bundle * W + width;
    }
    Ok(out)
}
