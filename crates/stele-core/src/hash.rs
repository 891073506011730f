//! RFC 6962 §2.1 hashing: `leaf = SHA-256(0x00 ‖ entry)`, `node = SHA-256(0x01 ‖ left ‖ right)`,
//! and the empty tree's root `SHA-256("")`.

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

// API (to implement):
// impl Hash { pub const LEN: usize = 32; pub fn from_slice(&[u8]) -> Option<Hash>; pub fn to_hex(&self) -> String;
//   pub fn from_hex(&str) -> Option<Hash>; pub fn to_base64(&self) -> String; pub fn from_base64(&str) -> Option<Hash>; }
// impl Debug (hex), Display (hex), serde Serialize/Deserialize as base64 string.
// pub fn leaf_hash(entry: &[u8]) -> Hash;
// pub fn node_hash(left: &Hash, right: &Hash) -> Hash;
// pub fn empty_root() -> Hash;
