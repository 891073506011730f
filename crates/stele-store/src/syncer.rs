//! The durability stage of the writer's pipeline.
//!
//! The writer thread sequences a group, hashes it and `write`s its frames, then hands the group
//! here and goes on preparing the next one. This thread `fdatasync`s, and only then indexes the
//! group's ids, publishes the new size and answers. So hashing and framing of group *k+1*
//! overlap the fsync of group *k*; at most one group waits here while another syncs, which
//! bounds what is written but not yet durable.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::error::{Result, StoreError};
use crate::idindex::{IdIndex, Indexed};
use crate::shared::Shared;
use crate::types::Appended;

/// Where a request's answer goes.
pub(crate) type Reply = tokio::sync::oneshot::Sender<Result<Vec<Appended>>>;

/// A group whose frames are written but not yet durable.
pub(crate) struct SyncJob {
    /// The segment holding the group's last frames (earlier segments were synced at roll).
    pub file: Arc<File>,
    /// Its path, for errors.
    pub path: PathBuf,
    /// Bytes of `file` written once the group's frames are (all of them synced with it).
    pub len: u64,
    /// Log size once the group is durable.
    pub end: u64,
    /// Entries the group appends.
    pub appended: usize,
    /// When its frames were handed over, for the fsync-latency metric.
    pub since: Instant,
    /// Id-index records of its new entries.
    pub records: Vec<Indexed>,
    /// Answers, sent once durable.
    pub answers: Vec<(Reply, Result<Vec<Appended>>)>,
}

/// How many groups the fsync thread has finished (counted, not sized: a group of retries
/// only appends nothing).
#[derive(Default)]
struct Progress {
    done: Mutex<u64>,
    moved: Condvar,
}

/// The writer's handle on the durability stage.
pub(crate) struct Syncer {
    tx: Option<SyncSender<SyncJob>>,
    thread: Option<JoinHandle<()>>,
    progress: Arc<Progress>,
    /// Groups handed over so far.
    submitted: u64,
}

impl Syncer {
    /// Starts the thread.
    pub fn start(shared: Arc<Shared>, ids: Arc<IdIndex>) -> Result<Syncer> {
        // Capacity 0: `send` hands over only when the thread is free, so one group syncs while
        // the writer holds the next one, prepared.
        let (tx, rx) = sync_channel(0);
        let progress = Arc::new(Progress::default());
        let p = progress.clone();
        let thread = std::thread::Builder::new()
            .name("stele-fsync".into())
            .spawn(move || run(&rx, &shared, &ids, &p))
            .map_err(|e| StoreError::Index(format!("spawning the fsync thread: {e}")))?;
        Ok(Syncer {
            tx: Some(tx),
            thread: Some(thread),
            progress,
            submitted: 0,
        })
    }

    /// Hands a group over (waiting while the previous one syncs).
    pub fn submit(&mut self, job: SyncJob) {
        self.submitted += 1;
        if let Some(tx) = &self.tx {
            if let Err(std::sync::mpsc::SendError(job)) = tx.send(job) {
                // The thread is gone (it panicked): nothing can be made durable.
                for (reply, _) in job.answers {
                    let _ = reply.send(Err(StoreError::Poisoned));
                }
            }
        }
    }

    /// Waits until everything submitted is durable, indexed and answered (or failed).
    pub fn drain(&self) {
        let mut done = self.progress.done.lock().unwrap_or_else(|p| p.into_inner());
        while *done < self.submitted && self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            done = self
                .progress
                .moved
                .wait_timeout(done, std::time::Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Segment bytes left in the page cache behind the write head; synced pages older than that
/// are dropped (`POSIX_FADV_DONTNEED`). An append-only log never rewrites them, and readers
/// of recent entries (the query index's follower, tile requests) find the newest 64 MiB
/// cached, hundreds of thousands of entries. Without it every write lands in a page the kernel
/// must newly allocate and zero, and the page cache grows until memory pressure evicts it:
/// writing 1 GiB in 4 MiB `pwrite` + `fdatasync` steps measured 196–265 MB/s and 2.4–3.1
/// CPU-s that way on the 2-core VM, against 540–1,080 MB/s and 0.4–0.75 CPU-s dropping
/// behind a 16–64 MiB window (`stele bench disk` prints both).
pub const CACHE_BEHIND: u64 = 64 << 20;

/// Drops are batched: at least this many bytes at a time.
const DROP_STEP: u64 = 8 << 20;

/// Drops a file's synced pages more than [`CACHE_BEHIND`] behind its end from the page
/// cache, as the fsync thread does for the segment being written (and `stele bench disk`
/// does for its probe, to measure the same way of writing).
#[derive(Default)]
pub struct DropBehind {
    file: Option<Arc<File>>,
    upto: u64,
}

impl DropBehind {
    /// After `file` is durable up to `len` bytes; a file other than the last one starts over
    /// from its beginning.
    pub fn synced(&mut self, file: &Arc<File>, len: u64) {
        if !self.file.as_ref().is_some_and(|f| Arc::ptr_eq(f, file)) {
            // A new segment (the writer rolled): start from its beginning.
            self.file = Some(file.clone());
            self.upto = 0;
        }
        let until = len.saturating_sub(CACHE_BEHIND);
        if until >= self.upto.saturating_add(DROP_STEP) {
            crate::fsutil::drop_cached(file, self.upto, until - self.upto);
            self.upto = until;
        }
    }
}

fn run(rx: &Receiver<SyncJob>, shared: &Shared, ids: &IdIndex, progress: &Progress) {
    let mut behind = DropBehind::default();
    for job in rx {
        let SyncJob {
            file,
            path,
            len,
            end,
            appended,
            since,
            records,
            answers,
        } = job;
        let durable = !shared.poisoned.load(Ordering::Acquire)
            && match file.sync_data() {
                Ok(()) => true,
                Err(e) => {
                    poison(shared, &StoreError::io("fdatasync", &path)(e));
                    false
                }
            };
        if durable {
            shared.metrics.observe_commit(appended, since.elapsed());
            if let Err(e) = ids.insert(&records, end) {
                // The entries are durable; only the derived index failed. Recovery rebuilds
                // it, but this process must not go on serving from it.
                poison(shared, &e);
            }
            shared.size.store(end, Ordering::Release);
            shared.metrics.tree_size.set(end as i64);
        }
        for (reply, result) in answers {
            let _ = reply.send(if durable {
                result
            } else {
                Err(StoreError::Poisoned)
            });
        }
        // Failed groups count as done too: their callers have their answer.
        *progress.done.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        progress.moved.notify_all();
        // After the answers: dropping pages is housekeeping, not part of an acknowledgement.
        if durable {
            behind.synced(&file, len);
        }
    }
}

/// Marks the store unable to write until restart.
pub(crate) fn poison(shared: &Shared, e: &StoreError) {
    tracing::error!(error = %e, "storage write failed; refusing further writes until restart");
    shared.poisoned.store(true, Ordering::Release);
}
