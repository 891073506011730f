//! Merkle tree roots and proofs (RFC 6962 §2.1, RFC 9162 §2.1.3–2.1.4).
//!
//! Node coordinates: `(level, index)` names the complete subtree of `2^level` leaves
//! `[index·2^level, (index+1)·2^level)`. Level 0 nodes are leaf hashes.
//!
// API (to implement):
// pub trait NodeSource { type Error; fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>; }
//   (only ever asked for complete subtrees inside the requested tree size)
// pub enum ProofError (thiserror): IndexOutOfRange{index,size}, SizeOutOfRange, WrongProofSize{expected,got}, RootMismatch, ... 
// pub enum MerkleError<E> { Source(E), Proof(ProofError) } (or similar)
// pub fn root<S: NodeSource>(src: &S, size: u64) -> Result<Hash, S::Error>   // empty_root() for size 0
// pub fn inclusion_proof<S>(src, index: u64, size: u64) -> Result<Vec<Hash>, MerkleError<S::Error>>
// pub fn consistency_proof<S>(src, from: u64, to: u64) -> Result<Vec<Hash>, MerkleError<S::Error>>
// pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<(), ProofError>
// pub fn verify_consistency(from: u64, to: u64, proof: &[Hash], from_root: &Hash, to_root: &Hash) -> Result<(), ProofError>
// pub struct Frontier { size: u64, peaks: Vec<Hash> }  // one peak per set bit of size, largest first
//   new(), from_peaks(size, peaks) -> Result<..>, size(), peaks(), root() -> Hash,
//   push(&mut self, leaf: Hash, on_node: impl FnMut(u8 /*level*/, u64 /*index*/, Hash))  // reports the leaf (level 0) and every node it completes
//   pub fn peak_coords(size) -> Vec<(u8, u64)>  // coordinates of the peaks of a tree of `size`, largest first
// pub struct MemoryTree (Vec<Vec<Hash>> levels) implementing NodeSource, for tests and small verifiers.
use crate::Hash;
#[allow(dead_code)]
fn _uses(_: Hash) {}
