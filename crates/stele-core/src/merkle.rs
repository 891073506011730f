//! Merkle tree roots and proofs (RFC 6962 §2.1, RFC 9162 §2.1.3–2.1.4).
//!
//! Node coordinates: `(level, index)` names the complete subtree of `2^level` leaves
//! `[index·2^level, (index+1)·2^level)`. Level 0 nodes are leaf hashes.
//!
//! Generation ([`root`], [`inclusion_proof`], [`consistency_proof`]) reads nodes from any
//! [`NodeSource`] and only ever asks for *complete* subtrees that lie inside the requested tree
//! size: the hash of an incomplete range is the right-to-left fold of its maximal aligned complete
//! subtrees, exactly RFC 6962's `MTH`. Each proof costs O(log n) node reads.
//!
//! Verification ([`verify_inclusion`], [`verify_consistency`]) follows RFC 9162 §2.1.3.2 and
//! §2.1.4.2, with the semantics of transparency-dev/merkle: a consistency proof from an empty tree
//! is rejected, and `from == to` requires an empty proof and equal roots.
//!
//! [`Frontier`] is the right edge of a growing tree (one peak per set bit of the size); appending a
//! leaf reports every node it completes, which is how a store persists the tree.
//!
//! ```
//! use stele_core::hash::leaf_hash;
//! use stele_core::merkle::{inclusion_proof, root, verify_inclusion, Frontier, MemoryTree};
//!
//! let entries = ["a", "b", "c", "d", "e"];
//! let tree = MemoryTree::from_entries(entries);
//! let mut frontier = Frontier::new();
//! for e in entries {
//!     frontier.push(leaf_hash(e.as_bytes()), |_level, _index, _hash| { /* persist */ });
//! }
//! let size = 5;
//! assert_eq!(frontier.root(), root(&tree, size)?);
//!
//! let proof = inclusion_proof(&tree, 2, size)?;
//! verify_inclusion(&leaf_hash(b"c"), 2, size, &proof, &frontier.root())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use thiserror::Error;

use crate::hash::{empty_root, node_hash};
use crate::Hash;

/// Read access to the complete-subtree hashes of a tree.
///
/// Callers in this module MUST only ask for nodes `(level, index)` whose subtree
/// `[index·2^level, (index+1)·2^level)` lies inside a tree size the source holds; implementations
/// MAY therefore store only complete nodes and MUST return an error (not a made-up hash) for a
/// node they do not have.
pub trait NodeSource {
    /// Why a node could not be read (I/O, missing data).
    type Error;

    /// Hash of the complete subtree at `(level, index)`.
    ///
    /// # Errors
    /// Whatever the source reports for a node it cannot produce.
    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

impl<S: NodeSource + ?Sized> NodeSource for &S {
    type Error = S::Error;

    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        (**self).node(level, index)
    }
}

/// Why a proof could not be generated or did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// Requested leaf index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// A consistency proof needs `1 <= from <= to`.
    #[error("consistency between sizes {from} and {to} is undefined (need 1 <= from <= to)")]
    SizeOutOfRange {
        /// Old tree size.
        from: u64,
        /// New tree size.
        to: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("proof has {got} hashes, expected {expected}")]
    WrongProofSize {
        /// Hashes a valid proof has.
        expected: usize,
        /// Hashes this proof has.
        got: usize,
    },
    /// The proof leads to a root other than the (new) tree root given.
    #[error("proof does not lead to the expected root")]
    RootMismatch,
    /// A consistency proof leads to an old root other than the one given.
    #[error("consistency proof does not lead to the expected old root")]
    FromRootMismatch,
}

/// A proof could not be generated: the node source failed, or the request was invalid.
#[derive(Debug, Error)]
pub enum MerkleError<E> {
    /// Reading a node failed.
    #[error("reading a tree node failed")]
    Source(#[source] E),
    /// The request was out of range.
    #[error(transparent)]
    Proof(#[from] ProofError),
}

/// A node the source does not hold (used by [`MemoryTree`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("no node at level {level}, index {index}")]
pub struct MissingNode {
    /// Level of the missing node.
    pub level: u8,
    /// Index of the missing node within its level.
    pub index: u64,
}

/// Largest power of two strictly less than `n` (RFC 6962's split point `k`); `n` must be >= 2.
fn split_point(n: u64) -> u64 {
    1u64 << highest_bit(n.saturating_sub(1))
}

/// Position of the highest set bit of `n` (0 for `n <= 1`).
fn highest_bit(n: u64) -> u8 {
    // ilog2 of a u64 is at most 63, so the narrowing cannot fail.
    u8::try_from(n.max(1).ilog2()).unwrap_or(63)
}

/// Level of the complete subtree of `pow2` leaves.
fn level_of(pow2: u64) -> u8 {
    // trailing_zeros of a u64 is at most 64, so the narrowing cannot fail.
    u8::try_from(pow2.trailing_zeros()).unwrap_or(64)
}

/// `MTH(D[lo:hi])` for a non-empty range whose `lo` is a multiple of the largest power of two not
/// exceeding `hi - lo` (true of every range RFC 6962's recursion produces): the right-to-left fold
/// of the range's maximal aligned complete subtrees, largest first. At most 64 node reads.
fn range_hash<S: NodeSource>(src: &S, lo: u64, hi: u64) -> Result<Hash, S::Error> {
    let mut peaks: Vec<Hash> = Vec::with_capacity(64);
    let mut start = lo;
    let mut remaining = hi.saturating_sub(lo);
    while remaining > 0 {
        let level = highest_bit(remaining);
        peaks.push(src.node(level, start >> level)?);
        start += 1u64 << level;
        remaining -= 1u64 << level;
    }
    Ok(fold_peaks(&peaks))
}

/// Root over the peaks of a tree, largest first: fold right to left. No peaks: the empty root.
fn fold_peaks(peaks: &[Hash]) -> Hash {
    let mut iter = peaks.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |acc, peak| node_hash(peak, &acc))
}

/// Number of hashes in the inclusion proof for leaf `index` of a tree of `size` (`index < size`):
/// the levels where the paths to `index` and to the last leaf differ, plus the right-edge
/// ancestors above them that have a left sibling.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = 64 - (index ^ size.saturating_sub(1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    to_usize(inner + border)
}

/// Number of hashes in the consistency proof between sizes `1 <= from < to`.
fn consistency_proof_len(from: u64, to: u64) -> usize {
    let last = from.saturating_sub(1);
    let inner = 64 - (last ^ to.saturating_sub(1)).leading_zeros();
    let border = last.checked_shr(inner).unwrap_or(0).count_ones();
    // The old tree's largest aligned right-edge subtree of 2^shift leaves is shared with the new
    // tree; the proof starts there, and names that subtree itself unless it is the whole old tree.
    let shift = from.trailing_zeros();
    let seed = u32::from(!from.is_power_of_two());
    to_usize(inner.saturating_sub(shift) + border + seed)
}

fn to_usize(n: u32) -> usize {
    // Proof lengths are at most 129; usize is at least 16 bits.
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Root of the first `size` leaves (`MTH(D[0:size])`); [`empty_root`] for size 0.
///
/// # Errors
/// The source's error for a node it cannot read.
pub fn root<S: NodeSource>(src: &S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(src, 0, size)
}

/// Inclusion proof (RFC 6962 §2.1.1 audit path) for leaf `index` in the tree of `size` leaves,
/// ordered from the leaf's sibling upwards. Reads O(log size) nodes: one per level, plus one per
/// peak of the right edge.
///
/// # Errors
/// [`ProofError::IndexOutOfRange`] unless `index < size`; [`MerkleError::Source`] if a node
/// cannot be read.
pub fn inclusion_proof<S: NodeSource>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, MerkleError<S::Error>> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size }.into());
    }
    // Walk down RFC 6962's PATH recursion iteratively, collecting siblings top-down. Only the
    // first step to the left can leave an incomplete right sibling (the tree's right edge);
    // every later sibling is a single complete node, hence O(log n) reads.
    let mut proof = Vec::with_capacity(64);
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            proof.push(range_hash(src, lo + k, hi).map_err(MerkleError::Source)?);
            hi = lo + k;
        } else {
            let level = level_of(k);
            proof.push(src.node(level, lo >> level).map_err(MerkleError::Source)?);
            lo += k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Consistency proof (RFC 6962 §2.1.2 `PROOF(from, D[0:to])`) between the trees of `from` and
/// `to` leaves. Empty when `from == to`. Reads O(log to) nodes.
///
/// # Errors
/// [`ProofError::SizeOutOfRange`] unless `1 <= from <= to` (consistency with the empty tree proves
/// nothing, so it is refused as verification refuses it); [`MerkleError::Source`] if a node
/// cannot be read.
pub fn consistency_proof<S: NodeSource>(
    src: &S,
    from: u64,
    to: u64,
) -> Result<Vec<Hash>, MerkleError<S::Error>> {
    if from == 0 || from > to {
        return Err(ProofError::SizeOutOfRange { from, to }.into());
    }
    // SUBPROOF(m, D[lo:hi], complete) unrolled; `m` counts old leaves from `lo`.
    let mut proof = Vec::with_capacity(64);
    let (mut lo, mut hi, mut m, mut complete) = (0u64, to, from, true);
    loop {
        let n = hi - lo;
        if m == n {
            if !complete {
                proof.push(range_hash(src, lo, hi).map_err(MerkleError::Source)?);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            proof.push(range_hash(src, lo + k, hi).map_err(MerkleError::Source)?);
            hi = lo + k;
        } else {
            let level = level_of(k);
            proof.push(src.node(level, lo >> level).map_err(MerkleError::Source)?);
            lo += k;
            m -= k;
            complete = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Checks that `proof` shows leaf hash `leaf` at `index` in the tree of `size` leaves with root
/// `root` (RFC 9162 §2.1.3.2).
///
/// # Errors
/// [`ProofError::IndexOutOfRange`], [`ProofError::WrongProofSize`] or [`ProofError::RootMismatch`].
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofSize {
            expected,
            got: proof.len(),
        });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongProofSize {
                expected,
                got: proof.len(),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongProofSize {
            expected,
            got: proof.len(),
        });
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that `proof` shows the tree of `from` leaves with root `from_root` is a prefix of the
/// tree of `to` leaves with root `to_root` (RFC 9162 §2.1.4.2).
///
/// `from == to` needs an empty proof and equal roots. `from == 0` is refused: every tree extends
/// the empty tree, so such a "proof" would prove nothing (transparency-dev/merkle semantics).
///
/// # Errors
/// [`ProofError::SizeOutOfRange`], [`ProofError::WrongProofSize`], [`ProofError::FromRootMismatch`]
/// or [`ProofError::RootMismatch`].
pub fn verify_consistency(
    from: u64,
    to: u64,
    proof: &[Hash],
    from_root: &Hash,
    to_root: &Hash,
) -> Result<(), ProofError> {
    if from == 0 || from > to {
        return Err(ProofError::SizeOutOfRange { from, to });
    }
    if from == to {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofSize {
                expected: 0,
                got: proof.len(),
            });
        }
        if from_root != to_root {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    let expected = consistency_proof_len(from, to);
    let wrong_size = ProofError::WrongProofSize {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_size);
    }
    // When the old tree is a complete subtree, its root is the seed and is not in the proof.
    let (seed, rest) = if from.is_power_of_two() {
        (*from_root, proof)
    } else {
        let (first, rest) = proof.split_first().ok_or(wrong_size)?;
        (*first, rest)
    };
    let (fr, sr) = fold_consistency(from, to, seed, rest, wrong_size)?;
    if fr != *from_root {
        return Err(ProofError::FromRootMismatch);
    }
    if sr != *to_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Reconstructs the old and the new root from a consistency proof in *full form*: the RFC 9162
/// proof from `from` to `to`, with — only when `from` is a power of two — the hash of the
/// subtree `[0, from)` *as the new tree holds it* put in front. (RFC 9162 leaves that hash out
/// because a verifier that holds the old root supplies it; in full form the proof carries its
/// own starting point.)
///
/// Verification of consistency is `consistency_roots(..) == (old root, new root)`. The
/// function exists for the case where that fails: if the reconstructed new root equals a
/// checkpoint's root, then (unless SHA-256 collides) the reconstructed old root *is* the root
/// of the first `from` leaves of that tree, so an older checkpoint naming another root for
/// size `from` contradicts it. That is what a proof of misbehaviour checks
/// ([`crate::misbehaviour`]).
///
/// # Errors
/// [`ProofError::SizeOutOfRange`] unless `1 <= from < to`; [`ProofError::WrongProofSize`]
/// unless the proof has exactly the full form's number of hashes.
pub fn consistency_roots(from: u64, to: u64, proof: &[Hash]) -> Result<(Hash, Hash), ProofError> {
    if from == 0 || from >= to {
        return Err(ProofError::SizeOutOfRange { from, to });
    }
    let expected = consistency_proof_len(from, to) + usize::from(from.is_power_of_two());
    let wrong_size = ProofError::WrongProofSize {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_size);
    }
    let (seed, rest) = proof.split_first().ok_or(wrong_size)?;
    fold_consistency(from, to, *seed, rest, wrong_size)
}

/// The loop of RFC 9162 §2.1.4.2 from `seed` over `rest`: returns the old and the new root.
/// `1 <= from < to` and the proof length are checked by the callers.
fn fold_consistency(
    from: u64,
    to: u64,
    seed: Hash,
    rest: &[Hash],
    wrong_size: ProofError,
) -> Result<(Hash, Hash), ProofError> {
    let (mut fnode, mut snode) = (from - 1, to - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if snode == 0 {
            return Err(wrong_size);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(wrong_size);
    }
    Ok((fr, sr))
}

/// [`Frontier::from_peaks`] was given peaks that do not fit the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("a tree of size {size} has {expected} peaks, got {got}")]
pub struct PeakCountError {
    /// The tree size given.
    pub size: u64,
    /// Peaks a tree of that size has (its number of set bits).
    pub expected: usize,
    /// Peaks given.
    pub got: usize,
}

/// The right edge of a tree: one peak (complete subtree root) per set bit of the size, largest
/// first. Enough to append leaves and compute the root without reading anything else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    peaks: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier from stored peaks, largest first, as read at [`Frontier::peak_coords`]`(size)`.
    ///
    /// # Errors
    /// [`PeakCountError`] unless there is exactly one peak per set bit of `size`.
    pub fn from_peaks(size: u64, peaks: Vec<Hash>) -> Result<Self, PeakCountError> {
        let expected = to_usize(size.count_ones());
        if peaks.len() != expected {
            return Err(PeakCountError {
                size,
                expected,
                got: peaks.len(),
            });
        }
        Ok(Frontier { size, peaks })
    }

    /// Number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The peaks, largest (leftmost) first.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Coordinates `(level, index)` of the peaks of a tree of `size` leaves, largest first.
    pub fn peak_coords(size: u64) -> Vec<(u8, u64)> {
        (0..64u8)
            .rev()
            .filter(|&level| (size >> level) & 1 == 1)
            .map(|level| (level, (size >> level) - 1))
            .collect()
    }

    /// Root of the tree so far ([`empty_root`] when empty).
    pub fn root(&self) -> Hash {
        fold_peaks(&self.peaks)
    }

    /// Appends a leaf hash. Calls `on_node(level, index, hash)` for the leaf itself (level 0) and
    /// then for every node the leaf completes, bottom-up: exactly the nodes a store must persist
    /// for a [`NodeSource`] of the grown tree.
    ///
    /// # Panics
    /// If the tree already holds `u64::MAX` leaves (no more leaf indices exist).
    pub fn push(&mut self, leaf: Hash, mut on_node: impl FnMut(u8, u64, Hash)) {
        let index = self.size;
        #[allow(clippy::expect_used)] // Unreachable in practice: 2^64 - 1 appends.
        let new_size = index.checked_add(1).expect("Merkle tree size overflow");
        on_node(0, index, leaf);
        // Each trailing one bit of the old size is a peak the new node completes with.
        let mut hash = leaf;
        for level in 1..=index.trailing_ones() {
            let Some(left) = self.peaks.pop() else {
                break; // from_peaks guarantees one peak per set bit.
            };
            hash = node_hash(&left, &hash);
            let level = u8::try_from(level).unwrap_or(u8::MAX);
            on_node(level, index >> level, hash);
        }
        self.peaks.push(hash);
        self.size = new_size;
    }

    /// Appends a complete subtree of `2^level` leaves whose root is `root`, as if its leaves
    /// had been pushed one by one: calls `on_node(level, index, root)` and then, bottom-up,
    /// for every node above it that it completes. The nodes inside the subtree are the
    /// caller's (see [`subtree_levels`]). Lets the hashing of a large append be split into
    /// aligned blocks computed in parallel.
    ///
    /// # Errors
    /// [`UnalignedSubtree`] unless the size is a multiple of `2^level` (`level` < 64), the only
    /// place such a subtree can go; nothing changes then.
    ///
    /// # Panics
    /// If the tree would then hold more than `u64::MAX` leaves.
    pub fn push_subtree(
        &mut self,
        level: u8,
        root: Hash,
        mut on_node: impl FnMut(u8, u64, Hash),
    ) -> Result<(), UnalignedSubtree> {
        let aligned = level < 64 && self.size.trailing_zeros() >= u32::from(level);
        if !aligned {
            return Err(UnalignedSubtree {
                size: self.size,
                level,
            });
        }
        let index = self.size >> level;
        #[allow(clippy::expect_used)] // Unreachable in practice: 2^64 - 1 appends.
        let new_size = self
            .size
            .checked_add(1 << level)
            .expect("Merkle tree size overflow");
        on_node(level, index, root);
        let mut hash = root;
        for up in 1..=index.trailing_ones() {
            let Some(left) = self.peaks.pop() else {
                break; // from_peaks guarantees one peak per set bit.
            };
            hash = node_hash(&left, &hash);
            let l = u8::try_from(u32::from(level) + up).unwrap_or(u8::MAX);
            on_node(l, index >> up, hash);
        }
        self.peaks.push(hash);
        self.size = new_size;
        Ok(())
    }
}

/// [`Frontier::push_subtree`] was given a subtree that cannot go at the tree's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("a subtree of 2^{level} leaves cannot be appended to a tree of {size} leaves")]
pub struct UnalignedSubtree {
    /// The tree size.
    pub size: u64,
    /// The subtree's level.
    pub level: u8,
}

/// Every inner node of the complete subtree over `leaves` (a power of two of them), level
/// by level from level 1 up, each level left to right, appended to `out`; the last one is
/// the subtree's root. Returns the subtree's level (0 for one leaf, which has no inner
/// node), or `None`, appending nothing, if the number of leaves is not a power of two.
pub fn subtree_levels(leaves: &[Hash], out: &mut Vec<Hash>) -> Option<u8> {
    if !leaves.len().is_power_of_two() {
        return None;
    }
    out.reserve(leaves.len() - 1);
    let parents = |nodes: &[Hash]| -> Vec<Hash> {
        nodes
            .chunks_exact(2)
            .map(|pair| match pair {
                [left, right] => node_hash(left, right),
                // `chunks_exact(2)` yields pairs only.
                _ => Hash::default(),
            })
            .collect()
    };
    let mut level = parents(leaves);
    while !level.is_empty() {
        out.extend_from_slice(&level);
        level = parents(&level);
    }
    u8::try_from(leaves.len().trailing_zeros()).ok()
}

/// A whole tree in memory, every level kept: a [`NodeSource`] for tests and small verifiers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryTree {
    /// `levels[l]` holds the complete nodes of level `l`, left to right.
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tree over these leaf hashes, built level by level.
    pub fn from_leaves(leaves: Vec<Hash>) -> Self {
        let mut levels = vec![leaves];
        while let Some(below) = levels.last().filter(|l| l.len() >= 2) {
            let above = below
                .chunks_exact(2)
                .filter_map(|pair| match pair {
                    [l, r] => Some(node_hash(l, r)),
                    _ => None,
                })
                .collect();
            levels.push(above);
        }
        MemoryTree { levels }
    }

    /// The tree over these entries (leaf-hashed per RFC 6962).
    pub fn from_entries<E: AsRef<[u8]>>(entries: impl IntoIterator<Item = E>) -> Self {
        Self::from_leaves(
            entries
                .into_iter()
                .map(|e| crate::hash::leaf_hash(e.as_ref()))
                .collect(),
        )
    }

    /// Appends a leaf hash, completing its ancestors.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        for level in 0.. {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            let Some(nodes) = self.levels.get_mut(level) else {
                return;
            };
            nodes.push(hash);
            match nodes.as_slice() {
                [.., l, r] if nodes.len() % 2 == 0 => hash = node_hash(l, r),
                _ => return,
            }
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels
            .first()
            .map_or(0, |l| u64::try_from(l.len()).unwrap_or(u64::MAX))
    }

    /// The complete nodes at `level`, left to right (empty above the tree's height).
    pub fn nodes(&self, level: u8) -> &[Hash] {
        self.levels
            .get(usize::from(level))
            .map_or(&[], |l| l.as_slice())
    }

    /// Root of the whole tree.
    pub fn root(&self) -> Hash {
        // Cannot fail: the tree holds every complete node of its own size.
        root(self, self.size()).unwrap_or_else(|_| empty_root())
    }
}

impl NodeSource for MemoryTree {
    type Error = MissingNode;

    fn node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.nodes(level).get(i))
            .copied()
            .ok_or(MissingNode { level, index })
    }
}
