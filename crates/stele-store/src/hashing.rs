//! The hashing of one group commit: its leaf hashes and the tree nodes they complete.
//!
//! The group is cut at the tree's blocks of [`BLOCK`] leaves (aligned to the log, not to the
//! group). Threads take blocks in turn and hash their leaves; for a block the group fills
//! whole, the same thread also computes every node inside it, up to its root, which is most
//! of the node hashing the group causes. The writer starts helper threads, writes the
//! group's frames meanwhile (they do not depend on any hash), then takes blocks itself until
//! none is left. Hashing everything first and writing after left a core idle through the
//! write; hashing the nodes one leaf at a time on the writer afterwards did too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use stele_core::hash::leaf_hash;
use stele_core::merkle::{subtree_levels, Frontier};
use stele_core::Hash;

use crate::error::{Result, StoreError};
use crate::levels::LevelWriter;
use crate::types::NewEntry;

/// The level of a block's root: blocks hold `2^BLOCK_LEVEL` leaves.
const BLOCK_LEVEL: u8 = 10;
/// Leaves per block: enough that taking a block and storing its hashes cost nothing beside
/// hashing it (about 0.3 ms of work), few enough that the threads finish close together.
pub(crate) const BLOCK: u64 = 1 << BLOCK_LEVEL;
/// Groups with fewer new entries are hashed by the writer alone: starting a thread would
/// cost more than it saves.
const PARALLEL_FROM: usize = 2048;

/// One group's hashing, shared by the threads that do it.
pub(crate) struct GroupHashing<'a> {
    /// Log index of `entries[0]`.
    start: u64,
    entries: &'a [NewEntry],
    /// The next block to take.
    next: AtomicUsize,
    /// What the blocks taken so far produced.
    out: Mutex<Hashed>,
}

/// What hashing a group produced.
struct Hashed {
    /// Every leaf hash, in order.
    leaves: Vec<Hash>,
    /// Per block: its inner nodes ([`subtree_levels`]) if the group fills it whole.
    inner: Vec<Option<Vec<Hash>>>,
    /// Blocks done.
    done: usize,
}

/// A group's hashes, every block done: see [`GroupHashing::finish`].
pub(crate) struct GroupHashes {
    start: u64,
    hashed: Hashed,
}

impl<'a> GroupHashing<'a> {
    /// The hashing of `entries`, the first at log index `start`.
    pub fn new(start: u64, entries: &'a [NewEntry]) -> Self {
        let blocks = block_count(start, entries.len());
        GroupHashing {
            start,
            entries,
            next: AtomicUsize::new(0),
            out: Mutex::new(Hashed {
                leaves: vec![Hash::default(); entries.len()],
                inner: std::iter::repeat_with(|| None).take(blocks).collect(),
                done: 0,
            }),
        }
    }

    /// Hashes the group on helper threads while this thread runs `beside` (the writer's
    /// write of the frames), then on this thread too until every block is done.
    ///
    /// # Errors
    ///
    /// As [`GroupHashing::finish`].
    pub fn run_beside<T>(self, beside: impl FnOnce() -> T) -> (Result<GroupHashes>, T) {
        let out = std::thread::scope(|s| {
            let this = &self;
            let helpers: Vec<_> = (0..self.helpers())
                .map(|_| s.spawn(move || this.work()))
                .collect();
            let out = beside();
            self.work();
            for h in helpers {
                // A helper that panicked left its block unhashed; `finish` then says so.
                let _ = h.join();
            }
            out
        });
        (self.finish(), out)
    }

    /// How many helper threads to start beside the writer.
    fn helpers(&self) -> usize {
        // Asked once: on Linux the answer reads the cgroup's CPU quota from files each time.
        static CORES: OnceLock<usize> = OnceLock::new();
        if self.entries.len() < PARALLEL_FROM {
            return 0;
        }
        let cores =
            *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        cores.clamp(1, 8) - 1
    }

    /// Hashes blocks until none is left.
    fn work(&self) {
        let blocks = block_count(self.start, self.entries.len());
        let mut leaves = Vec::new();
        loop {
            let b = self.next.fetch_add(1, Ordering::Relaxed);
            if b >= blocks {
                return;
            }
            let (from, to) = block_range(self.start, self.entries.len(), b);
            leaves.clear();
            leaves.extend(
                self.entries
                    .get(from..to)
                    .unwrap_or_default()
                    .iter()
                    .map(|e| leaf_hash(&e.data)),
            );
            let whole = to - from == BLOCK as usize;
            let inner = whole.then(|| {
                let mut nodes = Vec::new();
                subtree_levels(&leaves, &mut nodes);
                nodes
            });
            let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(slots) = out.leaves.get_mut(from..to) {
                slots.copy_from_slice(&leaves);
            }
            if let Some(slot) = out.inner.get_mut(b) {
                *slot = inner;
            }
            out.done += 1;
        }
    }

    /// The hashes, once every block is in.
    ///
    /// # Errors
    ///
    /// If a block is missing (a thread hashing it panicked).
    fn finish(self) -> Result<GroupHashes> {
        let hashed = self.out.into_inner().unwrap_or_else(|p| p.into_inner());
        if hashed.done != hashed.inner.len() {
            return Err(StoreError::Index(
                "a leaf-hashing thread failed; the group was not committed".to_owned(),
            ));
        }
        Ok(GroupHashes {
            start: self.start,
            hashed,
        })
    }
}

impl GroupHashes {
    /// Appends the group's leaves to `frontier`, giving `levels` every node they complete,
    /// each level in order (whole blocks as computed, their root and what it completes
    /// through the frontier).
    ///
    /// # Errors
    ///
    /// If `frontier` is not at the group's start, or a whole block does not fall on a block
    /// boundary of the tree: bugs, which leave the tree files unusable.
    pub fn extend_tree(&self, frontier: &mut Frontier, levels: &mut LevelWriter) -> Result<()> {
        if frontier.size() != self.start {
            return Err(StoreError::Index(format!(
                "the tree has {} leaves; the group starts at {}",
                frontier.size(),
                self.start
            )));
        }
        let mut store = |level: u8, _index: u64, hash: Hash| levels.push(level, &hash);
        let n = self.hashed.leaves.len();
        for (b, inner) in self.hashed.inner.iter().enumerate() {
            let (from, to) = block_range(self.start, n, b);
            let leaves = self.hashed.leaves.get(from..to).unwrap_or_default();
            let Some(inner) = inner else {
                for leaf in leaves {
                    frontier.push(*leaf, &mut store);
                }
                continue;
            };
            for leaf in leaves {
                store(0, 0, *leaf);
            }
            // Levels 1 to BLOCK_LEVEL - 1, each left to right; the root is last.
            let mut rest = inner.as_slice();
            for level in 1..BLOCK_LEVEL {
                let (nodes, above) = rest.split_at((BLOCK >> level) as usize);
                for node in nodes {
                    store(level, 0, *node);
                }
                rest = above;
            }
            let root = rest.first().copied().unwrap_or_default();
            frontier
                .push_subtree(BLOCK_LEVEL, root, &mut store)
                .map_err(|e| StoreError::Index(format!("hashing a group: {e}")))?;
        }
        Ok(())
    }

    /// The leaf hashes, in order.
    pub fn into_leaves(self) -> Vec<Hash> {
        self.hashed.leaves
    }
}

/// How many blocks of the tree `n` entries from log index `start` touch.
fn block_count(start: u64, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let last = start + n as u64 - 1;
    (last / BLOCK - start / BLOCK + 1) as usize
}

/// The entries (positions in the group) that fall in the `b`-th block the group touches.
fn block_range(start: u64, n: usize, b: usize) -> (usize, usize) {
    let end = start + n as u64;
    let block_start = (start / BLOCK + b as u64) * BLOCK;
    let from = block_start.max(start).min(end);
    let to = (block_start + BLOCK).min(end);
    ((from - start) as usize, (to - start) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_follow_the_tree_not_the_group() {
        assert_eq!(block_count(0, 0), 0);
        assert_eq!(block_count(0, 1024), 1);
        assert_eq!(block_count(1000, 48), 2);
        assert_eq!(block_count(1000, 24), 1);
        assert_eq!(block_count(1000, 2072), 3);
        assert_eq!(block_range(1000, 2072, 0), (0, 24));
        assert_eq!(block_range(1000, 2072, 1), (24, 1048));
        assert_eq!(block_range(1000, 2072, 2), (1048, 2072));
        assert_eq!(block_range(2048, 100, 0), (0, 100));
    }
}
