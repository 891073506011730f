//! RFC 6962 §2.1 hashing: `leaf = SHA-256(0x00 ‖ entry)`, `node = SHA-256(0x01 ‖ left ‖ right)`,
//! and the empty tree's root `SHA-256("")`.
//!
//! [`Hash`](struct@Hash) prints as lowercase hex (`Debug`, `Display`) and serializes as a standard (padded)
//! base64 string, the encoding checkpoints and tlog-proof use.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::{self, Deserializer, Visitor};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// Length of a hash in bytes.
    pub const LEN: usize = 32;

    /// The hash held in `bytes`, or `None` unless `bytes` is exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Hash> {
        <[u8; 32]>::try_from(bytes).ok().map(Hash)
    }

    /// The hash's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits (either case); `None` for any other input.
    pub fn from_hex(s: &str) -> Option<Hash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Hash(out))
    }

    /// Standard base64 with padding, 44 characters.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// Parses standard padded base64 of exactly 32 bytes; `None` for any other input.
    pub fn from_base64(s: &str) -> Option<Hash> {
        // Decode to a Vec rather than a fixed buffer so that a longer input is reported as
        // "not a hash" instead of being silently accepted or truncated.
        let bytes = BASE64.decode(s).ok()?;
        Hash::from_slice(&bytes)
    }
}

impl From<[u8; 32]> for Hash {
    fn from(bytes: [u8; 32]) -> Self {
        Hash(bytes)
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HashVisitor;

        impl Visitor<'_> for HashVisitor {
            type Value = Hash;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a standard base64 string encoding a 32-byte SHA-256 hash")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Hash, E> {
                Hash::from_base64(s).ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
            }
        }

        deserializer.deserialize_str(HashVisitor)
    }
}

/// RFC 6962 leaf hash: `SHA-256(0x00 ‖ entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(entry);
    Hash(hasher.finalize().into())
}

/// RFC 6962 interior node hash: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One 65-byte stack buffer and a one-shot digest: this is the hot path of appends and proof
    // checks, and avoids the hasher's incremental block bookkeeping across three updates.
    let mut buf = [0u8; 65];
    let (prefix, rest) = buf.split_at_mut(1);
    let (l, r) = rest.split_at_mut(32);
    prefix.copy_from_slice(&[0x01]);
    l.copy_from_slice(&left.0);
    r.copy_from_slice(&right.0);
    Hash(Sha256::digest(buf).into())
}

/// RFC 6962 interior node hash over children of any length: `SHA-256(0x01 ‖ left ‖ right)`.
///
/// Equal to [`node_hash`] for 32-byte children. It exists for test vectors and foreign data whose
/// children are not SHA-256 outputs; tree code uses [`node_hash`].
pub fn node_hash_bytes(left: &[u8], right: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    Hash(hasher.finalize().into())
}

/// Root of the empty tree: `SHA-256("")` (RFC 6962 §2.1, `MTH({})`).
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_encodings_round_trip() {
        let h = leaf_hash(b"stele");
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(Hash::from_hex(&h.to_hex().to_uppercase()), Some(h));
        assert_eq!(Hash::from_base64(&h.to_base64()), Some(h));
        assert_eq!(h.to_string(), h.to_hex());
        assert_eq!(format!("{h:?}"), h.to_hex());
        assert_eq!(h.to_base64().len(), 44);
        assert_eq!(Hash::from_slice(h.as_ref()), Some(h));
    }

    #[test]
    fn malformed_text_is_refused() {
        let h = leaf_hash(b"stele");
        assert_eq!(Hash::from_hex(&h.to_hex()[..62]), None);
        assert_eq!(Hash::from_hex(&format!("{}00", h.to_hex())), None);
        assert_eq!(Hash::from_hex(&"zz".repeat(32)), None);
        // 31 and 33 bytes, and base64 without padding.
        assert_eq!(Hash::from_base64(&BASE64.encode([0u8; 31])), None);
        assert_eq!(Hash::from_base64(&BASE64.encode([0u8; 33])), None);
        assert_eq!(Hash::from_base64(h.to_base64().trim_end_matches('=')), None);
        assert_eq!(Hash::from_slice(&[0u8; 33]), None);
    }

    #[test]
    fn serde_is_a_base64_string() {
        let h = leaf_hash(b"stele");
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{}\"", h.to_base64()));
        assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), h);
        assert!(serde_json::from_str::<Hash>(&format!("\"{}\"", h.to_hex())).is_err());
        assert!(serde_json::from_str::<Hash>("42").is_err());
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
