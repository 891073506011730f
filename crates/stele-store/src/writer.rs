//! The single writer thread: sequencing, group commit and checkpoint publication.
//!
//! Appenders queue requests; the writer takes everything queued (up to a bound), resolves
//! idempotent retries, stamps one commit time, writes all the new frames with one `write` per
//! segment while other threads hash them ([`crate::hashing`]), and updates the derived tree
//! files, then hands the group to the fsync thread ([`crate::syncer`]), which makes it durable
//! with one `fdatasync` and only then indexes its ids, publishes the new size and answers.
//! Publishing checkpoints on this thread, after waiting for the fsync thread, means a
//! checkpoint can make the derived files durable at exactly the size it signs.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stele_core::checkpoint::{sign_checkpoint, Checkpoint};
use stele_core::merkle::Frontier;
use stele_core::note::NoteSigner;
use stele_core::timestamp::{Timestamp, TIMESTAMP_LEN};
use tokio::sync::oneshot;

use crate::bundles::BundleIndexWriter;
use crate::error::{Result, StoreError};
use crate::frame;
use crate::hashing::GroupHashing;
use crate::idindex::{FastMap, IdIndex, IdReader, IdRecord, Indexed};
use crate::layout::{Layout, BUNDLE_WIDTH, ENTRIES_PER_SEGMENT};
use crate::levels::LevelWriter;
use crate::segments::SegmentWriter;
use crate::shared::Shared;
use crate::syncer::{Reply, SyncJob, Syncer};
use crate::types::{Appended, NewEntry, SignedCheckpoint};

/// Most entries one group commit takes.
const MAX_GROUP_ENTRIES: usize = 1 << 16;
/// Most bytes one group commit takes.
const MAX_GROUP_BYTES: usize = 64 << 20;

/// A message to the writer.
pub(crate) enum Msg {
    /// Append entries; answer when durable.
    Append(AppendRequest),
    /// Publish a checkpoint now.
    Checkpoint(oneshot::Sender<Result<SignedCheckpoint>>),
    /// Rotate the signing key (see [`crate::rotation`]). Boxed: rare, and much larger than
    /// the other messages.
    Rotate(Box<crate::rotation::RotateRequest>),
}

/// One caller's append.
pub(crate) struct AppendRequest {
    pub entries: Vec<NewEntry>,
    pub bytes: usize,
    pub reply: Reply,
}

/// Everything the writer owns.
pub(crate) struct Writer {
    pub layout: Layout,
    pub shared: Arc<Shared>,
    pub segments: SegmentWriter,
    pub levels: LevelWriter,
    pub bundles: BundleIndexWriter,
    pub frontier: Frontier,
    pub ids: Arc<IdIndex>,
    pub signer: NoteSigner,
    /// Retired keys that still co-sign checkpoints (transition windows).
    pub cosigners: Vec<crate::rotation::Cosigning>,
    pub last_time_ns: i64,
    pub clock: fn() -> i64,
    pub checkpoint_interval: Duration,
    pub checkpointed_size: u64,
    pub last_checkpoint_at: Instant,
    /// The fsync thread, started with the first group.
    pub syncer: Option<Syncer>,
    /// Ids of groups handed to the fsync thread and not yet in the id index.
    pub in_flight: InFlight,
    /// The frames of a group, reused.
    pub frame_buf: Vec<u8>,
    /// Ids new in the group being resolved, with their digest and position among its new
    /// entries (reused).
    pub pending_ids: PendingIds,
}

/// Ids appended by groups still in the pipeline, so a retry in the next group finds them.
///
/// Each group's ids are kept in a vector sorted by id rather than in a hash table: building
/// it is a sort at most (none when ids arrive in order, as the server's UUIDv7s do), and an
/// id outside a group's range, such as nearly every new event's, is ruled out by two
/// comparisons. A table cost an insert, a lookup and a removal per appended event, each a
/// likely cache miss.
#[derive(Default)]
pub(crate) struct InFlight {
    /// Per group: the log size once it is done, and its new ids sorted by id (ids are
    /// unique within a group).
    groups: VecDeque<(u64, Vec<InFlightId>)>,
}

/// A new id of a group in flight.
struct InFlightId {
    id: [u8; 16],
    digest: [u8; 16],
    /// Its entry's answer.
    appended: Appended,
}

impl InFlight {
    /// The digest and answer of `id` if a group in flight appended it.
    fn get(&self, id: &[u8; 16]) -> Option<([u8; 16], Appended)> {
        self.groups.iter().find_map(|(_, ids)| {
            let (first, last) = (ids.first()?, ids.last()?);
            if *id < first.id || *id > last.id {
                return None;
            }
            let at = ids.binary_search_by(|e| e.id.cmp(id)).ok()?;
            ids.get(at).map(|e| (e.digest, e.appended))
        })
    }
}

/// The ids new in the group being resolved, with their digest and position among its new
/// entries.
///
/// While ids arrive in increasing order (the server's UUIDv7s do), an id above the last one
/// is new and nothing is hashed; the first id at or below the last moves them all into a
/// hash table, which then serves the rest of the group.
#[derive(Default)]
pub(crate) struct PendingIds {
    /// Every pending id, once `ordered` is false (kept across groups for its memory).
    map: FastMap<[u8; 16], ([u8; 16], usize)>,
    /// Whether the pending ids arrived in increasing order and are not (yet) in `map`.
    ordered: bool,
    /// While `ordered`: the last, so the greatest, pending id.
    last: Option<[u8; 16]>,
}

impl PendingIds {
    /// Empties it for the next group.
    fn reset(&mut self) {
        self.map.clear();
        self.ordered = true;
        self.last = None;
    }

    /// The digest and position of `id` if it is pending; `entries` are the group's new
    /// entries so far.
    fn get(&mut self, id: &[u8; 16], entries: &[NewEntry]) -> Option<([u8; 16], usize)> {
        if self.ordered {
            if self.last.is_none_or(|last| *id > last) {
                return None;
            }
            // Out of order: from here on, a table of every pending id.
            self.map.reserve(entries.len());
            for (pos, e) in entries.iter().enumerate() {
                if let Some(k) = e.key {
                    self.map.insert(k.id, (k.digest, pos));
                }
            }
            self.ordered = false;
        }
        self.map.get(id).copied()
    }

    /// Adds `id`, which [`PendingIds::get`] just did not find, at position `pos`.
    fn insert(&mut self, id: [u8; 16], digest: [u8; 16], pos: usize) {
        if self.ordered {
            // Above the last one: `get` switches to the table for any other.
            self.last = Some(id);
        } else {
            self.map.insert(id, (digest, pos));
        }
    }

    /// Forgets the ids of `refused`, the new entries of a refused request (the last ones);
    /// `kept` are the new entries before them.
    fn forget(&mut self, refused: &[NewEntry], kept: &[NewEntry]) {
        if self.ordered {
            self.last = kept.iter().rev().find_map(|e| e.key).map(|k| k.id);
        } else {
            for k in refused.iter().filter_map(|e| e.key) {
                self.map.remove(&k.id);
            }
        }
    }
}

/// Where one requested entry ends up.
enum Slot {
    /// New entry at this position of the group's new entries.
    New(usize),
    /// Already in the log before this group.
    Existing(IdRecord),
    /// Appended by an earlier group that is still being made durable.
    InFlight(Appended),
}

impl Writer {
    /// Runs until every sender is gone, then publishes a final checkpoint.
    pub fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let due = self.frontier.size() > self.checkpointed_size;
            let wait = if due {
                self.checkpoint_interval
                    .saturating_sub(self.last_checkpoint_at.elapsed())
            } else {
                Duration::from_secs(3600)
            };
            let first = match rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut group = Vec::new();
            let mut cp_waiters = Vec::new();
            let mut rotations = Vec::new();
            let (mut n, mut bytes) = (0usize, 0usize);
            let mut next = first;
            while let Some(msg) = next {
                match msg {
                    Msg::Append(r) => {
                        n += r.entries.len();
                        bytes += r.bytes;
                        group.push(r);
                    }
                    Msg::Checkpoint(tx) => cp_waiters.push(tx),
                    Msg::Rotate(r) => {
                        // After the appends queued before it.
                        rotations.push(r);
                        break;
                    }
                }
                if n >= MAX_GROUP_ENTRIES || bytes >= MAX_GROUP_BYTES {
                    break;
                }
                next = rx.try_recv().ok();
            }
            if !group.is_empty() {
                self.shared.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                self.commit_group(group);
            }
            for r in rotations {
                let (reply, result) = self.rotate(*r);
                if let Err(e) = &result {
                    tracing::error!(error = %e, "key rotation failed");
                }
                let _ = reply.send(result);
            }
            let due = self.frontier.size() > self.checkpointed_size
                && self.last_checkpoint_at.elapsed() >= self.checkpoint_interval;
            if due || !cp_waiters.is_empty() {
                let res = self.publish_checkpoint();
                if let Err(e) = &res {
                    tracing::error!(error = %e, "checkpoint publication failed");
                }
                for w in cp_waiters {
                    let _ = w.send(match &res {
                        Ok(cp) => Ok(cp.clone()),
                        Err(e) => Err(StoreError::Index(format!("checkpoint failed: {e}"))),
                    });
                }
            }
        }
        self.drain();
        if self.frontier.size() > self.checkpointed_size
            && !self.shared.poisoned.load(Ordering::Acquire)
        {
            if let Err(e) = self.publish_checkpoint() {
                tracing::error!(error = %e, "final checkpoint failed");
            }
        }
        if !self.shared.poisoned.load(Ordering::Acquire) {
            // Spares the next open re-indexing what is still in memory.
            if let Err(e) = self.ids.flush() {
                tracing::warn!(error = %e, "writing the id index on close failed; the next open re-indexes");
            }
        }
        drop(self.syncer.take());
    }

    pub(crate) fn commit_group(&mut self, group: Vec<AppendRequest>) {
        if self.shared.poisoned.load(Ordering::Acquire) {
            for r in group {
                let _ = r.reply.send(Err(StoreError::Poisoned));
            }
            return;
        }
        self.prune_in_flight();
        // 1. Resolve ids: retries of stored events, retries within this group, conflicts.
        let n: usize = group.iter().map(|r| r.entries.len()).sum();
        // Kept across groups, like the vectors below are sized up front: a group's tables and
        // vectors are megabytes, and fresh ones were page faults on every group.
        let mut pending = std::mem::take(&mut self.pending_ids);
        pending.reset();
        let mut new_entries: Vec<NewEntry> = Vec::with_capacity(n);
        let mut plans: Vec<(Reply, Vec<Slot>)> = Vec::with_capacity(group.len());
        let ids = self.ids.clone();
        let mut ids_reader = None;
        for req in group {
            let base = new_entries.len();
            let resolved = resolve(
                req.entries,
                &mut Resolution {
                    in_flight: &self.in_flight,
                    reader: &mut ids_reader,
                    ids: &ids,
                    pending: &mut pending,
                    new_entries: &mut new_entries,
                    start: self.frontier.size(),
                },
            );
            match resolved {
                Ok(slots) => plans.push((req.reply, slots)),
                Err(e) => {
                    // A rejected request appends nothing: its new entries and their ids go.
                    let (kept, refused) = new_entries.split_at(base);
                    pending.forget(refused, kept);
                    new_entries.truncate(base);
                    let _ = req.reply.send(Err(e));
                }
            }
        }
        self.pending_ids = pending;
        // The reader holds the index's in-memory tiers; step 4 inserts into them.
        drop(ids_reader);

        // 2. One commit time for the group, never before the previous one.
        let time_ns = (self.clock)().max(self.last_time_ns);
        let time = Timestamp::from_unix_nanos(time_ns);
        // Formatted once: every entry of the group gets the same bytes.
        let mut stamp = [0u8; TIMESTAMP_LEN];
        time.write_to(&mut stamp);
        for e in &mut new_entries {
            if let Some(off) = e.time_offset {
                if let Some(slot) = e.data.get_mut(off..off + TIMESTAMP_LEN) {
                    slot.copy_from_slice(&stamp);
                }
            }
        }
        // 3. Frames, one write per segment (the fsync thread makes them durable), while
        // other threads hash the leaves: framing does not need them, and this thread joins the
        // hashing once its write is done. Hashing first and writing after left one core idle
        // through the write, the kernel's copy of the group into the page cache.
        let start = self.frontier.size();
        let (hashes, written) = GroupHashing::new(start, &new_entries)
            .run_beside(|| self.write_frames(start, time_ns, &new_entries));
        let (hashes, bundle_starts) = match (hashes, written) {
            (Ok(hashes), Ok(b)) => (hashes, b),
            (Err(e), _) | (_, Err(e)) => {
                self.poison(&e);
                for (reply, _) in plans {
                    let _ = reply.send(Err(StoreError::Poisoned));
                }
                return;
            }
        };
        let written_at = Instant::now();
        self.last_time_ns = time_ns;

        // 4. Derived tree files: tree nodes, bundle offsets (written, not yet synced: recovery
        // truncates both to the checkpoint and rebuilds them from the entries).
        for off in bundle_starts {
            self.bundles.push(off);
        }
        if let Err(e) = hashes.extend_tree(&mut self.frontier, &mut self.levels) {
            // A bug, not an I/O failure; the tree files can no longer be trusted.
            self.poison(&e);
        }
        let leaves = hashes.into_leaves();
        let end = self.frontier.size();
        let records: Vec<Indexed> = new_entries
            .iter()
            .zip(&leaves)
            .enumerate()
            .filter_map(|(i, (e, leaf))| {
                e.key
                    .map(|k| Indexed::new(k.id, start + i as u64, time_ns, k.digest, leaf))
            })
            .collect();
        if let Err(e) = self.levels.flush().and_then(|_| self.bundles.flush()) {
            // Only derived files failed; still, this process must not go on serving from
            // them. The fsync thread then answers the group `Poisoned` too.
            self.poison(&e);
        }

        // 5. Answers, sent by the fsync thread once the group is durable.
        let mut answers = Vec::with_capacity(plans.len());
        // Group-wide: of all requests naming a new entry, only the first appended it.
        let mut seen = vec![false; new_entries.len()];
        for (reply, slots) in plans {
            let result: Result<Vec<Appended>> = slots
                .into_iter()
                .map(|s| match s {
                    Slot::New(pos) => {
                        let first = seen
                            .get_mut(pos)
                            .is_some_and(|s| !std::mem::replace(s, true));
                        Ok(Appended {
                            index: start + pos as u64,
                            leaf_hash: leaves.get(pos).copied().unwrap_or_default(),
                            time,
                            duplicate: !first,
                        })
                    }
                    Slot::Existing(rec) => Ok(Appended {
                        index: rec.index,
                        leaf_hash: self.shared.leaf_hash(rec.index)?,
                        time: Timestamp::from_unix_nanos(rec.time_ns),
                        duplicate: true,
                    }),
                    Slot::InFlight(a) => Ok(Appended {
                        duplicate: true,
                        ..a
                    }),
                })
                .collect();
            answers.push((reply, result));
        }
        if !records.is_empty() {
            let mut ids: Vec<InFlightId> = records
                .iter()
                .map(|r| {
                    let appended = Appended {
                        index: r.record.index,
                        leaf_hash: leaves
                            .get((r.record.index - start) as usize)
                            .copied()
                            .unwrap_or_default(),
                        time,
                        duplicate: false,
                    };
                    InFlightId {
                        id: r.id,
                        digest: r.record.digest,
                        appended,
                    }
                })
                .collect();
            if !ids.is_sorted_by_key(|e| e.id) {
                ids.sort_unstable_by_key(|e| e.id);
            }
            self.in_flight.groups.push_back((end, ids));
        }
        let job = SyncJob {
            file: self.segments.handle(),
            path: self.segments.path(),
            len: self.segments.len(),
            end,
            appended: new_entries.len(),
            since: written_at,
            records,
            answers,
        };
        match self.syncer() {
            Some(s) => s.submit(job),
            None => {
                for (reply, _) in job.answers {
                    let _ = reply.send(Err(StoreError::Poisoned));
                }
            }
        }
    }

    /// The fsync thread, started on first use.
    fn syncer(&mut self) -> Option<&mut Syncer> {
        if self.syncer.is_none() {
            match Syncer::start(self.shared.clone(), self.ids.clone()) {
                Ok(s) => self.syncer = Some(s),
                Err(e) => {
                    self.poison(&e);
                    return None;
                }
            }
        }
        self.syncer.as_mut()
    }

    /// Waits until every group handed to the fsync thread is durable and answered.
    pub(crate) fn drain(&mut self) {
        if let Some(s) = &self.syncer {
            s.drain();
        }
        self.prune_in_flight();
    }

    /// Forgets in-flight ids that the id index now holds.
    fn prune_in_flight(&mut self) {
        let done = self.shared.size.load(Ordering::Acquire);
        while self
            .in_flight
            .groups
            .front()
            .is_some_and(|(end, _)| *end <= done)
        {
            self.in_flight.groups.pop_front();
        }
    }

    /// Writes the frames for `entries` (first index `start`) and returns the offsets of the
    /// bundles that start in them. Only a segment it finishes is synced here; the last one is
    /// the fsync thread's.
    fn write_frames(&mut self, start: u64, time_ns: i64, entries: &[NewEntry]) -> Result<Vec<u64>> {
        let mut bundle_starts = Vec::new();
        // Reused across groups: a fresh buffer of tens of MB is fresh pages to fault in.
        let mut buf = std::mem::take(&mut self.frame_buf);
        buf.clear();
        buf.reserve(entries.iter().map(|e| e.data.len() + 2).sum::<usize>() + 64);
        let mut i = 0usize;
        while i < entries.len() {
            let index = start + i as u64;
            if index.is_multiple_of(ENTRIES_PER_SEGMENT)
                && index > 0
                && crate::layout::segment_of(index) != self.segments.segment()
            {
                if !buf.is_empty() {
                    self.segments.append(&buf)?;
                    buf.clear();
                }
                self.segments.sync()?;
                self.segments.roll()?;
            }
            if index.is_multiple_of(BUNDLE_WIDTH) {
                bundle_starts.push(self.segments.len() + buf.len() as u64);
            }
            let room = (BUNDLE_WIDTH - index % BUNDLE_WIDTH) as usize;
            let run = room.min(entries.len() - i);
            frame::encode(
                &mut buf,
                index,
                time_ns,
                entries[i..i + run].iter().map(|e| e.data.as_slice()),
            );
            i += run;
        }
        if !buf.is_empty() {
            self.segments.append(&buf)?;
        }
        self.frame_buf = buf;
        Ok(bundle_starts)
    }

    fn poison(&self, e: &StoreError) {
        crate::syncer::poison(&self.shared, e);
    }

    /// Makes derived files durable at the current size, then signs and writes a checkpoint.
    pub fn publish_checkpoint(&mut self) -> Result<SignedCheckpoint> {
        self.drain();
        if self.shared.poisoned.load(Ordering::Acquire) {
            return Err(StoreError::Poisoned);
        }
        let size = self.frontier.size();
        self.levels.sync()?;
        self.bundles.sync()?;
        self.ids.checkpoint()?;
        let cp = Checkpoint {
            origin: self.signer.name().to_string(),
            size,
            root: self.frontier.root(),
            extensions: Vec::new(),
        };
        let mut note = sign_checkpoint(&cp, &self.signer).map_err(|e| StoreError::Key {
            path: self.layout.signer_key(),
            detail: e.to_string(),
        })?;
        // Retired keys in their transition window co-sign (C2SP signed notes carry several
        // signatures), so verifiers that still hold an old key keep working meanwhile.
        let now = (self.clock)();
        let (open, ended): (Vec<_>, Vec<_>) = std::mem::take(&mut self.cosigners)
            .into_iter()
            .partition(|c| c.until_ns > now);
        self.cosigners = open;
        for c in ended {
            let path = self.layout.retired_signer(c.signer.key_id());
            if let Err(e) = crate::rotation::forget(&path) {
                tracing::warn!(error = %e, "cannot delete a retired signing key");
            }
        }
        let text = cp.to_text();
        for c in &self.cosigners {
            note.push_str(&c.signer.sign_line(&text));
        }
        crate::fsutil::replace_file(&self.layout.checkpoint(), note.as_bytes())?;
        let signed = SignedCheckpoint {
            size,
            root: cp.root,
            note,
        };
        *self
            .shared
            .checkpoint
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(signed.clone());
        self.checkpointed_size = size;
        self.last_checkpoint_at = Instant::now();
        self.shared.metrics.checkpoints.inc();
        Ok(signed)
    }
}

/// What resolving one request reads and fills.
struct Resolution<'a, 'r> {
    in_flight: &'a InFlight,
    /// Opened on the first lookup, then kept for the group.
    reader: &'a mut Option<IdReader<'r>>,
    ids: &'r IdIndex,
    /// Ids new in the group so far.
    pending: &'a mut PendingIds,
    /// The group's new entries so far.
    new_entries: &'a mut Vec<NewEntry>,
    /// Log size before the group.
    start: u64,
}

/// Decides where each entry of one request ends up, adding the new ones (and their ids) to
/// `r`. On an error (a conflicting id, a failed lookup) the caller takes back what this
/// request added: its new entries are those past the length `new_entries` had before.
fn resolve(entries: Vec<NewEntry>, r: &mut Resolution<'_, '_>) -> Result<Vec<Slot>> {
    let mut slots = Vec::with_capacity(entries.len());
    for e in entries {
        if let Some(k) = e.key {
            // Earlier in this group (this request or an accepted one).
            if let Some((digest, pos)) = r.pending.get(&k.id, r.new_entries) {
                if digest != k.digest {
                    return Err(conflict(&k.id, r.start + pos as u64));
                }
                slots.push(Slot::New(pos));
                continue;
            }
            if let Some((digest, appended)) = r.in_flight.get(&k.id) {
                if digest != k.digest {
                    return Err(conflict(&k.id, appended.index));
                }
                slots.push(Slot::InFlight(appended));
                continue;
            }
            let reader = r.reader.get_or_insert_with(|| r.ids.reader());
            if let Some(rec) = reader.get(&k.id)? {
                if rec.digest != k.digest {
                    return Err(conflict(&k.id, rec.index));
                }
                slots.push(Slot::Existing(rec));
                continue;
            }
            r.pending.insert(k.id, k.digest, r.new_entries.len());
        }
        slots.push(Slot::New(r.new_entries.len()));
        r.new_entries.push(e);
    }
    Ok(slots)
}

fn conflict(id: &[u8; 16], index: u64) -> StoreError {
    StoreError::Conflict {
        id: uuid::Uuid::from_bytes(*id).to_string(),
        index,
    }
}
