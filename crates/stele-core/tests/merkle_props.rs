//! Properties of proof generation, verification and the frontier, checked against a naive
//! transcription of RFC 6962 §2.1 (MTH, PATH, SUBPROOF) over explicit leaf lists.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;
use stele_core::hash::{empty_root, leaf_hash, node_hash};
use stele_core::merkle::{
    consistency_proof, inclusion_proof, root, subtree_levels, verify_consistency, verify_inclusion,
    Frontier, MemoryTree, MerkleError, MissingNode, NodeSource, PeakCountError, ProofError,
    UnalignedSubtree,
};
use stele_core::Hash;

const MAX: u64 = 2000;

fn leaf(i: u64) -> Hash {
    leaf_hash(&i.to_be_bytes())
}

fn leaves() -> &'static [Hash] {
    static LEAVES: OnceLock<Vec<Hash>> = OnceLock::new();
    LEAVES.get_or_init(|| (0..MAX).map(leaf).collect())
}

/// Built by `push`, one leaf at a time.
fn tree() -> &'static MemoryTree {
    static TREE: OnceLock<MemoryTree> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut t = MemoryTree::new();
        leaves().iter().for_each(|l| t.push(*l));
        t
    })
}

// ---- RFC 6962 §2.1, transcribed literally ----

fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => empty_root(),
        1 => d[0],
        n => {
            let k = k_of(n);
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
    if d.len() == 1 {
        return vec![];
    }
    let k = k_of(d.len());
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = k_of(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

/// What a verifier does with an inclusion proof: one direction per proof hash, top-down.
/// Equal shapes mean identical hash computations.
fn inclusion_shape(m: u64, n: u64) -> Vec<bool> {
    let (mut lo, mut hi, mut dirs) = (0, n, vec![]);
    while hi - lo > 1 {
        let k = k_of(usize::try_from(hi - lo).unwrap()) as u64;
        dirs.push(m < lo + k);
        if m < lo + k {
            hi = lo + k;
        } else {
            lo += k;
        }
    }
    dirs
}

/// What a verifier does with a consistency proof: whether the seed is the old root (not sent),
/// then one step per proof hash (sibling on the left of both old and new, or on the right of the
/// new tree only). `None` for `from == to` (empty proof, roots compared).
fn consistency_shape(m: u64, n: u64) -> Option<(bool, Vec<bool>)> {
    if m == n {
        return None;
    }
    let (mut lo, mut hi, mut m, mut b, mut ops) = (0, n, m, true, vec![]);
    loop {
        if m == hi - lo {
            return Some((b, ops));
        }
        let k = k_of(usize::try_from(hi - lo).unwrap()) as u64;
        ops.push(m <= k);
        if m <= k {
            hi = lo + k;
        } else {
            lo += k;
            m -= k;
            b = false;
        }
    }
}

/// The first `size` leaves of the shared tree, refusing (as an error) any node that is not a
/// complete subtree inside `size`, and counting reads.
struct Prefix {
    size: u64,
    reads: Cell<u32>,
}

impl Prefix {
    fn new(size: u64) -> Self {
        Prefix {
            size,
            reads: Cell::new(0),
        }
    }
}

impl NodeSource for Prefix {
    type Error = MissingNode;
    fn node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        self.reads.set(self.reads.get() + 1);
        if !inside(level, index, self.size) {
            return Err(MissingNode { level, index });
        }
        tree().node(level, index)
    }
}

/// Whether node `(level, index)` is a complete subtree of a tree of `size` leaves.
fn inside(level: u8, index: u64, size: u64) -> bool {
    level < 64 && (u128::from(index) + 1) << level <= u128::from(size)
}

fn bits(n: u64) -> u32 {
    64 - n.leading_zeros()
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut out = *h;
    out.0[bit / 8] ^= 1 << (bit % 8);
    out
}

fn prefix_root(size: u64) -> Hash {
    root(&Prefix::new(size), size).unwrap()
}

#[test]
fn exhaustive_small_trees_match_rfc() {
    let d = leaves();
    for n in 1..=64usize {
        let size = n as u64;
        let r = mth(&d[..n]);
        assert_eq!(prefix_root(size), r, "root {n}");
        for m in 0..n {
            let p = inclusion_proof(&Prefix::new(size), m as u64, size).unwrap();
            assert_eq!(p, path(m, &d[..n]), "PATH({m}, {n})");
            verify_inclusion(&d[m], m as u64, size, &p, &r).unwrap();
        }
        for m in 1..=n {
            let p = consistency_proof(&Prefix::new(size), m as u64, size).unwrap();
            assert_eq!(p, subproof(m, &d[..n], true), "PROOF({m}, {n})");
            verify_consistency(m as u64, size, &p, &mth(&d[..m]), &r).unwrap();
        }
    }
}

#[test]
fn memory_tree_push_equals_bulk_build() {
    assert_eq!(*tree(), MemoryTree::from_leaves(leaves().to_vec()));
    assert_eq!(tree().size(), MAX);
}

#[test]
fn frontier_matches_memory_tree_at_every_size() {
    let t = tree();
    let mut frontier = Frontier::new();
    let mut reported: Vec<Vec<Hash>> = vec![];
    for (i, l) in leaves().iter().enumerate() {
        let mut levels_this_push = vec![];
        frontier.push(*l, |level, index, hash| {
            levels_this_push.push(level);
            let level = usize::from(level);
            if reported.len() <= level {
                reported.resize(level + 1, vec![]);
            }
            // Nodes arrive in order along each level, each exactly once.
            assert_eq!(index, reported[level].len() as u64, "level {level}");
            reported[level].push(hash);
        });
        // The leaf first, then the nodes it completes, bottom-up.
        let expected: Vec<u8> = (0..=(i as u64).trailing_ones() as u8).collect();
        assert_eq!(levels_this_push, expected, "push {i}");
        let size = i as u64 + 1;
        assert_eq!(frontier.size(), size);
        assert_eq!(frontier.root(), prefix_root(size), "root at {size}");
        let peaks: Vec<Hash> = Frontier::peak_coords(size)
            .iter()
            .map(|&(l, n)| t.node(l, n).unwrap())
            .collect();
        assert_eq!(
            Frontier::from_peaks(size, peaks).unwrap(),
            frontier,
            "peaks at {size}"
        );
    }
    for (level, nodes) in reported.iter().enumerate() {
        assert_eq!(nodes.as_slice(), t.nodes(level as u8), "level {level}");
    }
    assert!(t.nodes(reported.len() as u8).is_empty());
}

/// Pushes `leaves` one by one, or a complete aligned block at a time as [`subtree_levels`]
/// and [`Frontier::push_subtree`] allow, recording every node reported or computed, per
/// level in arrival order.
fn grow(frontier: &mut Frontier, blocks: &[(u8, bool)], reported: &mut Vec<Vec<(u64, Hash)>>) {
    let mut record = |level: u8, index: u64, hash: Hash| {
        let level = usize::from(level);
        if reported.len() <= level {
            reported.resize(level + 1, vec![]);
        }
        reported[level].push((index, hash));
    };
    for &(level, whole) in blocks {
        let from = frontier.size();
        let n = 1u64 << level;
        let block = &leaves()[from as usize..(from + n) as usize];
        let aligned = from.is_multiple_of(n);
        if whole && aligned {
            let mut inner = vec![];
            assert_eq!(subtree_levels(block, &mut inner), Some(level));
            assert_eq!(inner.len() as u64, n - 1);
            // The caller stores the leaves and the inner nodes, level by level, all but the
            // root (a block of one leaf is its own root).
            for (i, l) in block.iter().enumerate().filter(|_| level > 0) {
                record(0, from + i as u64, *l);
            }
            let mut at = 0;
            for l in 1..level {
                let width = (n >> l) as usize;
                for (i, h) in inner[at..at + width].iter().enumerate() {
                    record(l, (from >> l) + i as u64, *h);
                }
                at += width;
            }
            let root = if level == 0 { block[0] } else { inner[at] };
            frontier.push_subtree(level, root, &mut record).unwrap();
        } else {
            if whole {
                let before = frontier.clone();
                assert_eq!(
                    frontier.push_subtree(level, leaf(0), |_, _, _| panic!("no node")),
                    Err(UnalignedSubtree { size: from, level })
                );
                assert_eq!(*frontier, before);
            }
            for l in block {
                frontier.push(*l, &mut record);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Appending complete aligned subtrees (their inner nodes computed apart, as the store's
    /// hashing threads do) reports exactly the nodes, in the order per level, and reaches
    /// exactly the peaks and root that pushing their leaves one at a time does.
    #[test]
    fn aligned_subtrees_grow_the_tree_as_their_leaves_do(
        start in 0u64..600,
        blocks in proptest::collection::vec((0u8..7, any::<bool>()), 1..12),
    ) {
        let mut by_blocks = Frontier::new();
        let mut by_leaves = Frontier::new();
        let (mut a, mut b) = (vec![], vec![]);
        for l in &leaves()[..start as usize] {
            by_blocks.push(*l, |_, _, _| {});
            by_leaves.push(*l, |_, _, _| {});
        }
        let leaf_blocks: Vec<(u8, bool)> = blocks.iter().map(|&(l, _)| (l, false)).collect();
        grow(&mut by_blocks, &blocks, &mut a);
        grow(&mut by_leaves, &leaf_blocks, &mut b);
        prop_assert_eq!(&by_blocks, &by_leaves);
        prop_assert_eq!(by_blocks.root(), prefix_root(by_blocks.size()));
        prop_assert_eq!(a, b);
    }
}

#[test]
fn subtree_levels_wants_a_power_of_two() {
    let mut out = vec![];
    assert_eq!(subtree_levels(&leaves()[..3], &mut out), None);
    assert_eq!(subtree_levels(&[], &mut out), None);
    assert!(out.is_empty());
    assert_eq!(subtree_levels(&leaves()[..1], &mut out), Some(0));
    assert!(out.is_empty());
    assert_eq!(subtree_levels(&leaves()[..8], &mut out), Some(3));
    assert_eq!(out.len(), 7);
    assert_eq!(out[6], tree().node(3, 0).unwrap());
    assert_eq!(out[4..6], tree().nodes(2)[..2]);
}

#[test]
fn frontier_rejects_wrong_peak_count() {
    assert_eq!(
        Frontier::from_peaks(5, vec![leaf(0)]),
        Err(PeakCountError {
            size: 5,
            expected: 2,
            got: 1
        })
    );
    assert_eq!(
        Frontier::from_peaks(0, vec![]).unwrap().root(),
        empty_root()
    );
    assert_eq!(Frontier::peak_coords(0), vec![]);
    assert_eq!(Frontier::peak_coords(13), vec![(3, 0), (2, 2), (0, 12)]);
}

#[test]
fn generation_refuses_bad_requests() {
    let t = tree();
    assert!(matches!(
        inclusion_proof(t, 5, 5),
        Err(MerkleError::Proof(ProofError::IndexOutOfRange {
            index: 5,
            size: 5
        }))
    ));
    for (from, to) in [(0, 0), (0, 3), (4, 3)] {
        assert!(matches!(
            consistency_proof(t, from, to),
            Err(MerkleError::Proof(ProofError::SizeOutOfRange { .. }))
        ));
    }
    assert_eq!(consistency_proof(t, 7, 7).unwrap(), vec![]);
    // A source that lacks nodes reports it instead of inventing hashes.
    assert!(matches!(
        inclusion_proof(t, 0, MAX + 1),
        Err(MerkleError::Source(_))
    ));
    assert!(root(t, MAX + 1).is_err());
}

#[test]
fn verification_errors_are_typed() {
    let size = 11;
    let r = prefix_root(size);
    let p = inclusion_proof(&Prefix::new(size), 3, size).unwrap();
    let l = leaves()[3];
    assert_eq!(
        verify_inclusion(&l, 11, size, &p, &r),
        Err(ProofError::IndexOutOfRange { index: 11, size })
    );
    assert_eq!(
        verify_inclusion(&l, 3, size, &p[1..], &r),
        Err(ProofError::WrongProofSize {
            expected: p.len(),
            got: p.len() - 1
        })
    );
    assert_eq!(
        verify_inclusion(&l, 3, size, &p, &flip(&r, 0)),
        Err(ProofError::RootMismatch)
    );
    let c = consistency_proof(&Prefix::new(size), 6, size).unwrap();
    let r6 = prefix_root(6);
    assert_eq!(
        verify_consistency(6, size, &c, &flip(&r6, 9), &r),
        Err(ProofError::FromRootMismatch)
    );
    assert_eq!(
        verify_consistency(6, size, &c, &r6, &flip(&r, 9)),
        Err(ProofError::RootMismatch)
    );
    assert_eq!(
        verify_consistency(0, 0, &[], &r, &r),
        Err(ProofError::SizeOutOfRange { from: 0, to: 0 })
    );
    assert_eq!(
        verify_consistency(size, size, &c, &r, &r),
        Err(ProofError::WrongProofSize {
            expected: 0,
            got: c.len()
        })
    );
}

/// RFC 9162 inclusion proofs do not authenticate the tree size: the size comes from the signed
/// checkpoint next to the root. The last leaf of a 5-leaf tree has the same one-hash proof shape
/// as the last leaf of a 3-leaf tree, so the wrong (index, size) is accepted for the right root.
/// Callers must take the size from the same checkpoint as the root.
#[test]
fn inclusion_proof_alone_does_not_bind_size() {
    let (r, l) = (prefix_root(5), leaves()[4]);
    let p = inclusion_proof(&Prefix::new(5), 4, 5).unwrap();
    assert_eq!(inclusion_shape(4, 5), inclusion_shape(2, 3));
    assert_eq!(verify_inclusion(&l, 2, 3, &p, &r), Ok(()));
    assert!(verify_inclusion(&l, 3, 5, &p, &r).is_err());
}

/// Tree sizes with their leaf index or old size: the whole range plus the edges around powers
/// of two, where the proof shapes change.
fn size_and_index() -> impl Strategy<Value = (u64, u64)> {
    let size = prop_oneof![
        1..=MAX,
        (1u32..=10, -1i64..=1).prop_map(|(p, d)| ((1i64 << p) + d) as u64),
    ];
    (size, any::<Index>()).prop_map(|(n, i)| (n, i.index(n as usize) as u64))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn inclusion_proofs_match_rfc_and_verify((size, index) in size_and_index()) {
        let src = Prefix::new(size);
        let p = inclusion_proof(&src, index, size).unwrap();
        prop_assert!(src.reads.get() <= 2 * bits(size) + 1, "{} reads", src.reads.get());
        let d = &leaves()[..size as usize];
        prop_assert_eq!(&p, &path(index as usize, d));
        verify_inclusion(&d[index as usize], index, size, &p, &prefix_root(size)).unwrap();
    }

    #[test]
    fn inclusion_rejects_any_flipped_bit(
        (size, index) in size_and_index(), which in any::<Index>(), bit in 0usize..256,
    ) {
        let p = inclusion_proof(&Prefix::new(size), index, size).unwrap();
        let (l, r) = (leaves()[index as usize], prefix_root(size));
        prop_assert!(verify_inclusion(&flip(&l, bit), index, size, &p, &r).is_err());
        prop_assert!(verify_inclusion(&l, index, size, &p, &flip(&r, bit)).is_err());
        if !p.is_empty() {
            let mut bad = p.clone();
            let i = which.index(p.len());
            bad[i] = flip(&bad[i], bit);
            prop_assert!(verify_inclusion(&l, index, size, &bad, &r).is_err());
        }
    }

    /// An inclusion proof binds the leaf's position only through the shape of its path: another
    /// (index, size) is accepted exactly when the verifier would run the same computation
    /// (e.g. the last leaf of 3 and of 5). Within one tree size, another index always fails.
    #[test]
    fn inclusion_wrong_coordinates((size, index) in size_and_index(), (size2, index2) in size_and_index()) {
        prop_assume!((size, index) != (size2, index2));
        let p = inclusion_proof(&Prefix::new(size), index, size).unwrap();
        let (l, r) = (leaves()[index as usize], prefix_root(size));
        let ok = verify_inclusion(&l, index2, size2, &p, &r).is_ok();
        prop_assert_eq!(ok, inclusion_shape(index2, size2) == inclusion_shape(index, size));
        for other in [index ^ 1, index.wrapping_sub(1), index + 1] {
            if other != index && other < size {
                prop_assert!(verify_inclusion(&l, other, size, &p, &r).is_err());
            }
        }
    }

    #[test]
    fn consistency_proofs_match_rfc_and_verify((to, from) in size_and_index()) {
        let from = from + 1;
        let src = Prefix::new(to);
        let p = consistency_proof(&src, from, to).unwrap();
        prop_assert!(src.reads.get() <= 2 * bits(to) + 2, "{} reads", src.reads.get());
        let d = &leaves()[..to as usize];
        prop_assert_eq!(&p, &subproof(from as usize, d, true));
        verify_consistency(from, to, &p, &prefix_root(from), &prefix_root(to)).unwrap();
    }

    #[test]
    fn consistency_rejects_any_flipped_bit(
        (to, from) in size_and_index(), which in any::<Index>(), bit in 0usize..256,
    ) {
        let from = from + 1;
        let p = consistency_proof(&Prefix::new(to), from, to).unwrap();
        let (r1, r2) = (prefix_root(from), prefix_root(to));
        prop_assert!(verify_consistency(from, to, &p, &flip(&r1, bit), &r2).is_err());
        prop_assert!(verify_consistency(from, to, &p, &r1, &flip(&r2, bit)).is_err());
        if !p.is_empty() {
            let mut bad = p.clone();
            let i = which.index(p.len());
            bad[i] = flip(&bad[i], bit);
            prop_assert!(verify_consistency(from, to, &bad, &r1, &r2).is_err());
        }
    }

    /// As for inclusion: other sizes are accepted exactly when the verifier's computation is the
    /// same one.
    #[test]
    fn consistency_wrong_sizes((to, from) in size_and_index(), (to2, from2) in size_and_index()) {
        let (from, from2) = (from + 1, from2 + 1);
        prop_assume!((from, to) != (from2, to2));
        let p = consistency_proof(&Prefix::new(to), from, to).unwrap();
        let (r1, r2) = (prefix_root(from), prefix_root(to));
        let ok = verify_consistency(from2, to2, &p, &r1, &r2).is_ok();
        prop_assert_eq!(ok, consistency_shape(from2, to2) == consistency_shape(from, to));
        // The golden files' mutations: neighbouring and doubled/halved sizes.
        for (f, t) in [(from - 1, to), (from + 1, to), (from, to + 1), (from, to * 2), (from, to / 2)] {
            if f >= 1 && f <= t {
                let ok = verify_consistency(f, t, &p, &r1, &r2).is_ok();
                prop_assert_eq!(ok, consistency_shape(f, t) == consistency_shape(from, to), "{} {}", f, t);
            }
        }
    }
}

// ---- Huge trees through a synthetic source ----

/// Period of the synthetic tree's leaves: leaf `i` is `leaf(i mod 16)`, so every level-4 node is
/// the same hash and any node of a tree of up to 2^63 leaves costs at most 31 hashes.
const PERIOD_LEVEL: u8 = 4;

/// A synthetic tree of `size` leaves (any u64) that answers only complete in-range nodes.
struct Periodic {
    size: u64,
    reads: Cell<u32>,
    memo: std::cell::RefCell<HashMap<(u8, u64), Hash>>,
}

impl Periodic {
    fn new(size: u64) -> Self {
        Periodic {
            size,
            reads: Cell::new(0),
            memo: Default::default(),
        }
    }

    fn compute(&self, level: u8, index: u64) -> Hash {
        if level == 0 {
            return leaf(index % (1 << PERIOD_LEVEL));
        }
        let key = if level >= PERIOD_LEVEL {
            (level, 0)
        } else {
            (level, index % (1 << (PERIOD_LEVEL - level)))
        };
        if let Some(h) = self.memo.borrow().get(&key) {
            return *h;
        }
        let h = node_hash(
            &self.compute(level - 1, 2 * key.1),
            &self.compute(level - 1, 2 * key.1 + 1),
        );
        self.memo.borrow_mut().insert(key, h);
        h
    }
}

impl NodeSource for Periodic {
    type Error = MissingNode;
    fn node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        self.reads.set(self.reads.get() + 1);
        if !inside(level, index, self.size) {
            return Err(MissingNode { level, index });
        }
        Ok(self.compute(level, index))
    }
}

#[test]
fn periodic_source_is_a_real_tree() {
    let d: Vec<Hash> = (0..300).map(|i| leaf(i % 16)).collect();
    for n in [1usize, 2, 15, 16, 17, 100, 255, 256, 300] {
        assert_eq!(
            root(&Periodic::new(n as u64), n as u64).unwrap(),
            mth(&d[..n]),
            "size {n}"
        );
    }
}

fn huge() -> impl Strategy<Value = (u64, u64)> {
    (1u64 << 20..=1u64 << 62, any::<Index>()).prop_map(|(n, i)| {
        // Index::index takes a usize; scale by hand to cover all of u64.
        let frac = i.index(1 << 20) as u128;
        (n, ((frac * n as u128) >> 20) as u64)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn huge_trees_prove_in_log_reads((size, index) in huge(), bit in 0usize..256) {
        let src = Periodic::new(size);
        let r = root(&src, size).unwrap();
        let peaks: Vec<Hash> = Frontier::peak_coords(size).iter().map(|&(l, n)| src.node(l, n).unwrap()).collect();
        prop_assert_eq!(Frontier::from_peaks(size, peaks).unwrap().root(), r);

        src.reads.set(0);
        let p = inclusion_proof(&src, index, size).unwrap();
        prop_assert!(src.reads.get() <= 2 * bits(size) + 1, "{} reads", src.reads.get());
        let l = src.compute(0, index);
        verify_inclusion(&l, index, size, &p, &r).unwrap();
        prop_assert!(verify_inclusion(&flip(&l, bit), index, size, &p, &r).is_err());

        let from = index + 1;
        src.reads.set(0);
        let c = consistency_proof(&src, from, size).unwrap();
        prop_assert!(src.reads.get() <= 2 * bits(size) + 2, "{} reads", src.reads.get());
        let r1 = root(&Periodic::new(from), from).unwrap();
        verify_consistency(from, size, &c, &r1, &r).unwrap();
        prop_assert!(verify_consistency(from, size, &c, &flip(&r1, bit), &r).is_err());
    }
}
