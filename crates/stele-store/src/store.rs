//! The [`Store`] handle: open (with recovery), append, read.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use stele_core::note::NoteSigner;
use stele_core::tile::MAX_ENTRY_LEN;
use stele_core::Hash;
use tokio::sync::oneshot;

use crate::error::{Result, StoreError};
use crate::fsutil::DirLock;
use crate::layout::Layout;
use crate::metrics::StoreMetrics;
use crate::recovery::{recover, RecoveryReport};
use crate::shared::Shared;
use crate::types::{Appended, EntryKey, NewEntry, SignedCheckpoint};
use crate::writer::{AppendRequest, Msg};

/// How to open a store.
pub struct StoreOptions {
    /// The data directory (the log lives in `DIR/log`).
    pub dir: PathBuf,
    /// The log's signing key; its name is the log's origin.
    pub signer: NoteSigner,
    /// Publish a checkpoint at least this often while entries arrive.
    pub checkpoint_interval: Duration,
    /// Recomputes an entry's idempotency key from its stored bytes (for rebuilding the id
    /// index after a crash). Must agree with the keys given to `append`.
    pub key_of: fn(&[u8]) -> Option<EntryKey>,
    /// Most bytes of entries waiting for the writer before appends get `Overloaded`.
    pub max_queued_bytes: usize,
    /// The wall clock, in ns since the Unix epoch (replaceable so tests can step it back).
    pub clock: fn() -> i64,
}

/// The system wall clock in ns since the Unix epoch (0 if it reads before 1970).
pub fn system_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}

impl StoreOptions {
    /// Options with defaults: checkpoint every second, 256 MiB queue, no idempotency keys.
    pub fn new(dir: impl Into<PathBuf>, signer: NoteSigner) -> Self {
        StoreOptions {
            dir: dir.into(),
            signer,
            checkpoint_interval: Duration::from_secs(1),
            key_of: |_| None,
            max_queued_bytes: 256 << 20,
            clock: system_clock,
        }
    }
}

struct Inner {
    shared: Arc<Shared>,
    tx: Mutex<Option<SyncSender<Msg>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    max_queued_bytes: usize,
    origin: String,
    recovery: RecoveryReport,
    lock: Mutex<Option<DirLock>>,
}

/// A handle on an open log. Cheap to clone; the log closes when the last handle is dropped
/// or [`Store::close`] is called.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens the log in `opts.dir`, creating it if needed, and recovers from any crash.
    ///
    /// # Errors
    /// `Locked` if another process has it open; `Corrupt` if acknowledged data is damaged
    /// (the store then refuses to open rather than lose entries); I/O errors.
    pub fn open(opts: StoreOptions) -> Result<Store> {
        let layout = Layout::new(&opts.dir);
        let log_dir = layout.log_dir();
        crate::fsutil::create_dir_durable(&log_dir)?;
        let lock = DirLock::acquire(&layout.lock())?;
        let shared = Arc::new(Shared::new(&layout));
        let origin = opts.signer.name().to_string();
        *shared
            .verifier_key
            .write()
            .unwrap_or_else(|p| p.into_inner()) = opts.signer.verifier().to_verifier_key();
        let rotations = crate::rotation::load_rotations(&opts.dir)?;
        let retired = rotations
            .iter()
            .map(|r| r.old_verifier(&layout))
            .collect::<Result<Vec<_>>>()?;
        let (mut writer, recovery) = recover(
            &layout,
            &shared,
            opts.signer,
            &retired,
            opts.key_of,
            opts.checkpoint_interval,
        )?;
        writer.clock = opts.clock;
        writer.cosigners = crate::rotation::cosigners(&layout, &rotations, (opts.clock)())?;
        if shared
            .checkpoint
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| c.size)
            != Some(writer.frontier.size())
        {
            writer.publish_checkpoint()?;
        }
        *shared.ids.write().unwrap_or_else(|p| p.into_inner()) = Some(writer.ids.clone());
        let (tx, rx) = sync_channel(4096);
        let handle = std::thread::Builder::new()
            .name("stele-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(StoreError::io("spawn writer", &log_dir))?;
        Ok(Store {
            inner: Arc::new(Inner {
                shared,
                tx: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(handle)),
                max_queued_bytes: opts.max_queued_bytes,
                origin,
                recovery,
                lock: Mutex::new(Some(lock)),
            }),
        })
    }

    fn submit(
        &self,
        entries: Vec<NewEntry>,
        block: bool,
    ) -> Result<oneshot::Receiver<Result<Vec<Appended>>>> {
        let sh = &self.inner.shared;
        if sh.poisoned.load(Ordering::Acquire) {
            return Err(StoreError::Poisoned);
        }
        for (i, e) in entries.iter().enumerate() {
            if e.data.len() > MAX_ENTRY_LEN {
                return Err(StoreError::InvalidArgument(format!(
                    "entry {i} is {} bytes; the limit is {MAX_ENTRY_LEN}",
                    e.data.len()
                )));
            }
            if let Some(off) = e.time_offset {
                if off + stele_core::timestamp::TIMESTAMP_LEN > e.data.len() {
                    return Err(StoreError::InvalidArgument(format!(
                        "entry {i}: time slot at {off} lies outside the entry"
                    )));
                }
            }
        }
        let bytes: usize = entries.iter().map(|e| e.data.len()).sum();
        let queued = sh.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        if !block && queued > 0 && queued + bytes > self.inner.max_queued_bytes {
            sh.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(StoreError::Overloaded);
        }
        let (reply, rx) = oneshot::channel();
        let msg = Msg::Append(AppendRequest {
            entries,
            bytes,
            reply,
        });
        let tx = self
            .inner
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(tx) = tx else {
            sh.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(StoreError::Closed);
        };
        let sent = if block {
            tx.send(msg).map_err(|_| StoreError::Closed)
        } else {
            tx.try_send(msg).map_err(|e| match e {
                TrySendError::Full(_) => StoreError::Overloaded,
                TrySendError::Disconnected(_) => StoreError::Closed,
            })
        };
        if let Err(e) = sent {
            sh.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(e);
        }
        Ok(rx)
    }

    /// Appends entries as one all-or-nothing request and resolves once they are durable,
    /// answering in request order. A retried entry (same key id and digest) answers with its
    /// original index and `duplicate: true`.
    ///
    /// # Errors
    /// `Conflict` when a key id names a stored entry with another digest (nothing of the
    /// request is appended); `Overloaded` under back-pressure; `Poisoned` after an I/O failure;
    /// `InvalidArgument` for an entry over 65535 bytes.
    pub async fn append(&self, entries: Vec<NewEntry>) -> Result<Vec<Appended>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let rx = self.submit(entries, false)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Blocking form of [`Store::append`] (waits for queue space instead of `Overloaded`).
    ///
    /// # Errors
    /// As [`Store::append`].
    pub fn append_blocking(&self, entries: Vec<NewEntry>) -> Result<Vec<Appended>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let rx = self.submit(entries, true)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Queues an append and returns a receiver for its acknowledgement, so one thread can keep
    /// many requests in flight (pipelining).
    ///
    /// # Errors
    /// As [`Store::append`], for what can be known before queueing.
    pub fn append_pipelined(
        &self,
        entries: Vec<NewEntry>,
    ) -> Result<oneshot::Receiver<Result<Vec<Appended>>>> {
        self.submit(entries, true)
    }

    /// Whether an I/O failure has poisoned the store (it then refuses writes until restart).
    pub fn is_poisoned(&self) -> bool {
        self.inner.shared.poisoned.load(Ordering::Acquire)
    }

    /// Durable, acknowledged entries.
    pub fn size(&self) -> u64 {
        self.inner.shared.size()
    }

    /// The log's origin (its key name).
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The log's current verifier key string (a rotation changes it).
    pub fn verifier_key(&self) -> String {
        self.inner
            .shared
            .verifier_key
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every rotation of the log's signing key, oldest first (`key/rotations.json`).
    ///
    /// # Errors
    /// A malformed file; I/O errors.
    pub fn rotations(&self) -> Result<Vec<crate::rotation::RotationRecord>> {
        crate::rotation::load_rotations(self.inner.shared.layout.root())
    }

    /// Rotates the log's signing key to `signer` (see [`crate::rotation`]): appends `entry`
    /// (the caller's record of the rotation; it must carry an idempotency key so a retry
    /// after a crash finds it), signs the statement, stores the keys and records, and
    /// publishes a checkpoint signed by the new key and — for `window` — by the old one.
    /// Blocks until done. Calling it again with the same key and entry after a crash
    /// completes the rotation without a second record.
    ///
    /// # Errors
    /// `Key` for a key of another origin or a failed signature; `Closed`, `Poisoned`, I/O.
    pub fn rotate_key(
        &self,
        signer: NoteSigner,
        window: Duration,
        entry: NewEntry,
    ) -> Result<crate::rotation::RotationRecord> {
        let (reply, rx) = oneshot::channel();
        let tx = self
            .inner
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(StoreError::Closed)?;
        tx.send(Msg::Rotate(Box::new(crate::rotation::RotateRequest {
            signer,
            window,
            entry,
            reply,
        })))
        .map_err(|_| StoreError::Closed)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// What recovery did when the store opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// The latest published checkpoint.
    pub fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        self.inner
            .shared
            .checkpoint
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Publishes a checkpoint of everything durable now and returns it.
    ///
    /// # Errors
    /// `Closed`, `Poisoned`, I/O errors.
    pub fn publish_checkpoint(&self) -> Result<SignedCheckpoint> {
        let (reply, rx) = oneshot::channel();
        let tx = self
            .inner
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(StoreError::Closed)?;
        tx.send(Msg::Checkpoint(reply))
            .map_err(|_| StoreError::Closed)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// The stored bytes of entry `index`.
    ///
    /// # Errors
    /// `NotFound` past the end; `Corrupt`, I/O errors.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>> {
        self.inner.shared.entry(index)
    }

    /// The index of the entry with event id `id`.
    ///
    /// # Errors
    /// Index database errors.
    pub fn index_of(&self, id: &[u8; 16]) -> Result<Option<u64>> {
        let ids = self
            .inner
            .shared
            .ids
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(StoreError::Closed)?;
        Ok(ids.get(id)?.map(|r| r.index).filter(|&i| i < self.size()))
    }

    /// The index of the event entry whose leaf hash is `leaf` (entries appended with a key).
    ///
    /// # Errors
    /// Index database errors.
    pub fn index_of_leaf(&self, leaf: &Hash) -> Result<Option<u64>> {
        let ids = self
            .inner
            .shared
            .ids
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(StoreError::Closed)?;
        let mut prefix = [0u8; 16];
        prefix.copy_from_slice(&leaf.0[..16]);
        match ids.get_leaf(&prefix)? {
            Some(i) if i < self.size() && self.leaf_hash(i)? == *leaf => Ok(Some(i)),
            _ => Ok(None),
        }
    }

    /// The leaf hash of entry `index`.
    ///
    /// # Errors
    /// `NotFound` past the end; I/O errors.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash> {
        self.inner.shared.leaf_hash(index)
    }

    /// The root of the tree of the first `size` entries.
    ///
    /// # Errors
    /// `InvalidArgument` when `size` exceeds the log.
    pub fn root(&self, size: u64) -> Result<Hash> {
        self.inner.shared.root(size)
    }

    /// RFC 9162 inclusion proof of entry `index` in the tree of size `size`.
    ///
    /// # Errors
    /// `InvalidArgument` unless `index < size ≤ self.size()`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>> {
        self.inner.shared.inclusion_proof(index, size)
    }

    /// RFC 9162 consistency proof between tree sizes `from` and `to`.
    ///
    /// # Errors
    /// `InvalidArgument` unless `0 < from ≤ to ≤ self.size()`.
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>> {
        self.inner.shared.consistency_proof(from, to)
    }

    /// The C2SP hash tile `level/index`, full or of `width` hashes.
    ///
    /// # Errors
    /// `NotFound` when the tree does not yet hold it.
    pub fn hash_tile(&self, level: u8, index: u64, width: Option<u16>) -> Result<Vec<u8>> {
        self.inner.shared.hash_tile(level, index, width)
    }

    /// The C2SP entry bundle `index`, full or of `width` entries.
    ///
    /// # Errors
    /// `NotFound` when the log does not yet hold it.
    pub fn entry_bundle(&self, index: u64, width: Option<u16>) -> Result<Vec<u8>> {
        self.inner.shared.entry_bundle(index, width)
    }

    /// Metrics for export.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.inner.shared.metrics
    }

    /// Registers the store's metrics in a Prometheus registry.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.inner.shared.metrics.register(registry);
    }

    /// Stops accepting appends, lets queued ones finish, publishes a final checkpoint and
    /// waits for the writer, then releases the directory lock. Other clones of the handle
    /// can still read.
    ///
    /// # Errors
    /// None today; reserved for a failing final checkpoint.
    pub fn close(&self) -> Result<()> {
        self.inner.shared.closed.store(true, Ordering::Release);
        drop(
            self.inner
                .tx
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        if let Some(h) = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = h.join();
        }
        // Release the directory: reads through remaining handles still work, and another
        // process (or this one) may open the log again.
        drop(
            self.inner
                .shared
                .ids
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        drop(
            self.inner
                .lock
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(h) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }
}
