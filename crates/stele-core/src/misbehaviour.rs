//! Proofs of misbehaviour: two checkpoints, validly signed by the same log key, that cannot
//! both be true of one append-only log — a portable, self-contained piece of evidence that the
//! log showed two histories (a split view) or rewrote its history.
//!
//! Two kinds of contradiction are provable with no trust in whoever found them:
//!
//! - **same size, different roots**: both checkpoints claim size *n*, with other roots;
//! - **not an extension**: sizes *n1 < n2*, and a consistency proof in *full form*
//!   ([`crate::merkle::consistency_roots`]) whose reconstructed new root is checkpoint 2's
//!   root but whose reconstructed old root is not checkpoint 1's. Unless SHA-256 collides,
//!   the tree behind checkpoint 2 therefore begins with other leaves than the tree behind
//!   checkpoint 1.
//!
//! A log that only went back to an older, smaller tree (a rollback) is *not* provable this way
//! from the two checkpoints alone, because the smaller tree's nodes are in neither: the
//! witness and the verifier report it, but cannot bind it.
//!
//! # Text format (version 1)
//!
//! UTF-8, every line ending in `\n`, no other separators:
//!
//! ```text
//! stele misbehaviour proof v1
//! checkpoint <L1>
//! <exactly L1 bytes: the first signed checkpoint note, signature lines included>
//! checkpoint <L2>
//! <exactly L2 bytes: the second signed checkpoint note>
//! consistency <K>
//! <base64 hash>            (K lines)
//! ```
//!
//! Lengths and counts are decimal without leading zeros. The notes are kept byte for byte (so
//! their signatures still verify), which is why they are framed by length: a note contains a
//! blank line of its own. Each note holds only signature lines by the log's key (cosignatures
//! are dropped when a proof is made), so that no byte of a valid proof can change unnoticed. The first checkpoint's size is at most the second's. Equal sizes
//! need `K = 0`; for sizes `n1 < n2` the `K` hashes are the full-form consistency proof from
//! `n1` to `n2` in the second checkpoint's tree.
//!
//! [`MisbehaviourProof::verify`] is pure: it needs only the log's verifier key.

use crate::checkpoint::Checkpoint;
use crate::merkle::{consistency_roots, ProofError};
use crate::note::{Note, NoteError, NoteVerifier, MAX_NOTE_SIZE};
use crate::Hash;

/// The first line of the text format.
pub const MAGIC: &str = "stele misbehaviour proof v1";

/// Most hashes a consistency proof can have (full form included) between 64-bit sizes.
const MAX_PROOF_HASHES: usize = 130;

/// Why a misbehaviour proof does not parse or does not prove anything.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MisbehaviourError {
    /// The text does not follow the format.
    #[error("malformed misbehaviour proof: {0}")]
    Malformed(&'static str),
    /// A checkpoint note is malformed or not validly signed by the log key.
    #[error("checkpoint {which} of the proof: {source}")]
    Note {
        /// 1 or 2.
        which: u8,
        /// What was wrong.
        source: NoteError,
    },
    /// A note's text is not a checkpoint.
    #[error("checkpoint {which} of the proof is not a checkpoint: {reason}")]
    NotACheckpoint {
        /// 1 or 2.
        which: u8,
        /// What was wrong.
        reason: String,
    },
    /// A checkpoint note holds a signature line by another key than the log's.
    #[error(
        "checkpoint {which} of the proof holds a signature line by another key than the log's"
    )]
    ForeignSignature {
        /// 1 or 2.
        which: u8,
    },
    /// The two checkpoints name different logs.
    #[error("the checkpoints are of different logs: {first:?} and {second:?}")]
    OriginMismatch {
        /// Origin of checkpoint 1.
        first: String,
        /// Origin of checkpoint 2.
        second: String,
    },
    /// The checkpoints do not contradict each other (given this proof).
    #[error("no contradiction: {0}")]
    NoContradiction(String),
}

/// What a valid proof shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contradiction {
    /// Two roots for one tree size.
    SameSizeDifferentRoots {
        /// The log's origin.
        origin: String,
        /// The tree size.
        size: u64,
        /// Root in checkpoint 1.
        first_root: Hash,
        /// Root in checkpoint 2.
        second_root: Hash,
    },
    /// The larger tree does not begin with the smaller one.
    NotAnExtension {
        /// The log's origin.
        origin: String,
        /// Size of checkpoint 1.
        first_size: u64,
        /// Root of checkpoint 1.
        first_root: Hash,
        /// Size of checkpoint 2.
        second_size: u64,
        /// Root of checkpoint 2.
        second_root: Hash,
        /// The root of the first `first_size` leaves of checkpoint 2's tree, as the proof
        /// shows it: not `first_root`.
        implied_first_root: Hash,
    },
}

impl std::fmt::Display for Contradiction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Contradiction::SameSizeDifferentRoots {
                origin,
                size,
                first_root,
                second_root,
            } => write!(
                f,
                "log {origin} signed two different roots for size {size}: {} and {}",
                first_root.to_base64(),
                second_root.to_base64()
            ),
            Contradiction::NotAnExtension {
                origin,
                first_size,
                first_root,
                second_size,
                second_root,
                implied_first_root,
            } => write!(
                f,
                "log {origin} signed size {first_size} with root {} and size {second_size} with root {}, whose first {first_size} leaves have root {}",
                first_root.to_base64(),
                second_root.to_base64(),
                implied_first_root.to_base64()
            ),
        }
    }
}

/// Two signed checkpoints and the consistency proof that shows they contradict each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MisbehaviourProof {
    /// The signed note of the checkpoint with the smaller (or equal) size, byte for byte.
    pub first: String,
    /// The signed note of the other checkpoint.
    pub second: String,
    /// Full-form consistency proof from the first size to the second, in the second's tree
    /// (empty for equal sizes).
    pub consistency: Vec<Hash>,
}

impl MisbehaviourProof {
    /// Assembles a proof from two signed notes in either order (it puts the smaller tree
    /// first) and a full-form consistency proof between them, in the larger tree. Signature
    /// lines by keys other than `log` (such as cosignatures) are dropped, so that every byte
    /// of the proof is covered by the log's signatures or the proof's checks. Nothing else is
    /// checked: call [`MisbehaviourProof::verify`].
    pub fn new(a: &str, b: &str, consistency: Vec<Hash>, log: &NoteVerifier) -> Self {
        let parsed = |n: &str| Note::parse(n.as_bytes()).ok();
        let size = |n: &Option<Note>| {
            n.as_ref()
                .and_then(|n| Checkpoint::parse(&n.text).ok())
                .map(|c| c.size)
        };
        let only_log = |raw: &str, n: Option<Note>| match n {
            Some(mut n) => {
                n.signatures
                    .retain(|s| s.name == log.name() && s.key_id == log.key_id());
                String::from_utf8_lossy(&n.to_bytes()).into_owned()
            }
            None => raw.to_owned(),
        };
        let (na, nb) = (parsed(a), parsed(b));
        let swap = size(&na) > size(&nb);
        let (a, b) = (only_log(a, na), only_log(b, nb));
        let (first, second) = if swap { (b, a) } else { (a, b) };
        MisbehaviourProof {
            first,
            second,
            consistency,
        }
    }

    /// Encodes the text format.
    pub fn to_text(&self) -> String {
        let mut out = format!("{MAGIC}\n");
        for note in [&self.first, &self.second] {
            out.push_str(&format!("checkpoint {}\n", note.len()));
            out.push_str(note);
        }
        out.push_str(&format!("consistency {}\n", self.consistency.len()));
        for h in &self.consistency {
            out.push_str(&h.to_base64());
            out.push('\n');
        }
        out
    }

    /// Parses the text format. Only the framing is checked here.
    ///
    /// # Errors
    ///
    /// [`MisbehaviourError::Malformed`] naming the first rule broken.
    pub fn parse(bytes: &[u8]) -> Result<Self, MisbehaviourError> {
        let malformed = MisbehaviourError::Malformed;
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))?;
        let rest = text
            .strip_prefix(MAGIC)
            .and_then(|r| r.strip_prefix('\n'))
            .ok_or(malformed(
                "does not start with the line \"stele misbehaviour proof v1\"",
            ))?;
        let (first, rest) = take_note(rest)?;
        let (second, rest) = take_note(rest)?;
        let (count, mut rest) = take_counted_line(rest, "consistency ")?;
        if count > MAX_PROOF_HASHES {
            return Err(malformed("too many consistency proof hashes"));
        }
        let mut consistency = Vec::with_capacity(count);
        for _ in 0..count {
            let (line, tail) = rest
                .split_once('\n')
                .ok_or(malformed("consistency proof ends early"))?;
            consistency.push(
                Hash::from_base64(line)
                    .ok_or(malformed("consistency proof line is not a base64 hash"))?,
            );
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(malformed("bytes after the consistency proof"));
        }
        Ok(MisbehaviourProof {
            first: first.to_owned(),
            second: second.to_owned(),
            consistency,
        })
    }

    /// Checks that both checkpoints are validly signed by `log` and by no other key, name the
    /// same origin, and contradict each other.
    ///
    /// # Errors
    ///
    /// [`MisbehaviourError::Note`], [`MisbehaviourError::ForeignSignature`] or
    /// [`MisbehaviourError::NotACheckpoint`] for a checkpoint that is not validly and only
    /// signed by `log` or not a checkpoint, [`MisbehaviourError::OriginMismatch`],
    /// [`MisbehaviourError::NoContradiction`] when the two are compatible (or the proof does
    /// not lead to the second root).
    pub fn verify(&self, log: &NoteVerifier) -> Result<Contradiction, MisbehaviourError> {
        let a = open(1, &self.first, log)?;
        let b = open(2, &self.second, log)?;
        if a.origin != b.origin {
            return Err(MisbehaviourError::OriginMismatch {
                first: a.origin,
                second: b.origin,
            });
        }
        let none = |why: String| Err(MisbehaviourError::NoContradiction(why));
        if a.size > b.size {
            return none("the first checkpoint is the larger one".into());
        }
        if a.size == b.size {
            if !self.consistency.is_empty() {
                return none("equal sizes take no consistency proof".into());
            }
            if a.root == b.root {
                return none(format!(
                    "both checkpoints have size {} and the same root",
                    a.size
                ));
            }
            return Ok(Contradiction::SameSizeDifferentRoots {
                origin: a.origin,
                size: a.size,
                first_root: a.root,
                second_root: b.root,
            });
        }
        if a.size == 0 {
            return none("every tree extends the empty tree".into());
        }
        let (old, new) = consistency_roots(a.size, b.size, &self.consistency)
            .map_err(|e: ProofError| MisbehaviourError::NoContradiction(e.to_string()))?;
        if new != b.root {
            return none(
                "the consistency proof does not lead to the second checkpoint's root".into(),
            );
        }
        if old == a.root {
            return none(format!(
                "the checkpoint of size {} is a prefix of the one of size {}",
                a.size, b.size
            ));
        }
        Ok(Contradiction::NotAnExtension {
            origin: a.origin,
            first_size: a.size,
            first_root: a.root,
            second_size: b.size,
            second_root: b.root,
            implied_first_root: old,
        })
    }
}

fn open(which: u8, note: &str, log: &NoteVerifier) -> Result<Checkpoint, MisbehaviourError> {
    let parsed =
        Note::parse(note.as_bytes()).map_err(|source| MisbehaviourError::Note { which, source })?;
    parsed
        .verified_by(log)
        .map_err(|source| MisbehaviourError::Note { which, source })?;
    // Lines by other keys would be ignored, so they could be altered unnoticed: refuse them.
    if parsed
        .signatures
        .iter()
        .any(|s| s.name != log.name() || s.key_id != log.key_id())
    {
        return Err(MisbehaviourError::ForeignSignature { which });
    }
    Checkpoint::parse(&parsed.text).map_err(|e| MisbehaviourError::NotACheckpoint {
        which,
        reason: e.to_string(),
    })
}

/// Splits `<prefix><decimal>\n` off the front of `s`.
fn take_counted_line<'a>(
    s: &'a str,
    prefix: &'static str,
) -> Result<(usize, &'a str), MisbehaviourError> {
    let malformed = MisbehaviourError::Malformed;
    let (line, rest) = s.split_once('\n').ok_or(malformed("missing line"))?;
    let digits = line
        .strip_prefix(prefix)
        .ok_or(if prefix == "checkpoint " {
            malformed("expected a \"checkpoint <length>\" line")
        } else {
            malformed("expected a \"consistency <count>\" line")
        })?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    let n = digits
        .parse()
        .ok()
        .filter(|_| canonical)
        .ok_or(malformed("length or count is not a decimal number"))?;
    Ok((n, rest))
}

/// Splits `checkpoint <L>\n<L bytes>` off the front of `s`.
fn take_note(s: &str) -> Result<(&str, &str), MisbehaviourError> {
    let malformed = MisbehaviourError::Malformed;
    let (len, rest) = take_counted_line(s, "checkpoint ")?;
    if len > MAX_NOTE_SIZE {
        return Err(malformed("checkpoint note too large"));
    }
    if !rest.is_char_boundary(len) || rest.len() < len {
        return Err(malformed("checkpoint note shorter than its length"));
    }
    Ok(rest.split_at(len))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::checkpoint::sign_checkpoint;
    use crate::merkle::{consistency_proof, MemoryTree};
    use crate::note::NoteSigner;

    fn signer() -> NoteSigner {
        NoteSigner::from_seed("example.com/log", [5; 32]).unwrap()
    }

    fn note(s: &NoteSigner, t: &MemoryTree) -> String {
        let cp = Checkpoint {
            origin: s.name().into(),
            size: t.size(),
            root: t.root(),
            extensions: vec![],
        };
        sign_checkpoint(&cp, s).unwrap()
    }

    fn tree(prefix: &str, n: u64) -> MemoryTree {
        MemoryTree::from_entries((0..n).map(|i| format!("{prefix} {i}")))
    }

    /// The log's fork: `a` and `b` share the first `common` entries.
    fn fork(common: u64, a: u64, b: u64) -> (MemoryTree, MemoryTree) {
        let entries = |tag: &str, n: u64| {
            (0..n)
                .map(|i| {
                    if i < common {
                        format!("common {i}")
                    } else {
                        format!("{tag} {i}")
                    }
                })
                .collect::<Vec<_>>()
        };
        (
            MemoryTree::from_entries(entries("a", a)),
            MemoryTree::from_entries(entries("b", b)),
        )
    }

    fn full_proof(t: &MemoryTree, from: u64, to: u64) -> Vec<Hash> {
        let mut p = consistency_proof(t, from, to).unwrap();
        if from.is_power_of_two() {
            p.insert(0, crate::merkle::root(t, from).unwrap());
        }
        p
    }

    #[test]
    fn same_size_fork_is_proven_and_round_trips_through_text() {
        let s = signer();
        let (a, b) = fork(3, 6, 6);
        let proof = MisbehaviourProof::new(&note(&s, &a), &note(&s, &b), vec![], &s.verifier());
        let text = proof.to_text();
        let parsed = MisbehaviourProof::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed, proof);
        let c = parsed.verify(&s.verifier()).unwrap();
        assert!(matches!(
            c,
            Contradiction::SameSizeDifferentRoots { size: 6, .. }
        ));
        assert!(
            c.to_string().contains("two different roots for size 6"),
            "{c}"
        );
    }

    #[test]
    fn not_an_extension_is_proven_for_every_old_size_including_powers_of_two() {
        let s = signer();
        for old in 1..=9u64 {
            let (a, b) = fork(old.min(2) - 1, old, 13);
            let proof = MisbehaviourProof::new(
                &note(&s, &b),
                &note(&s, &a),
                full_proof(&b, old, 13),
                &s.verifier(),
            );
            assert!(
                proof.first.contains(&format!("\n{old}\n")),
                "smaller tree goes first"
            );
            let c = proof.verify(&s.verifier()).unwrap();
            match c {
                Contradiction::NotAnExtension {
                    implied_first_root, ..
                } => {
                    assert_eq!(implied_first_root, crate::merkle::root(&b, old).unwrap());
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn honest_pairs_and_wrong_proofs_prove_nothing() {
        let s = signer();
        let t = tree("x", 13);
        let t5 = tree("x", 5);
        let honest = MisbehaviourProof::new(
            &note(&s, &t5),
            &note(&s, &t),
            full_proof(&t, 5, 13),
            &s.verifier(),
        );
        assert!(matches!(
            honest.verify(&s.verifier()),
            Err(MisbehaviourError::NoContradiction(_))
        ));
        let same = MisbehaviourProof::new(&note(&s, &t), &note(&s, &t), vec![], &s.verifier());
        assert!(same.verify(&s.verifier()).is_err());
        // A proof from another tree does not lead to the second root.
        let (a, b) = fork(2, 5, 13);
        let wrong = MisbehaviourProof::new(
            &note(&s, &a),
            &note(&s, &b),
            full_proof(&t, 5, 13),
            &s.verifier(),
        );
        assert!(wrong.verify(&s.verifier()).is_err());
    }

    #[test]
    fn any_altered_byte_or_foreign_key_breaks_the_proof() {
        let s = signer();
        let (a, b) = fork(2, 6, 11);
        // A cosignature on a note is dropped: it is not the log's to vouch for.
        let w = crate::cosignature::Cosigner::from_seed("w.example", [8; 32]).unwrap();
        let mut cosigned = Note::parse(note(&s, &a).as_bytes()).unwrap();
        cosigned
            .signatures
            .push(w.cosign(&cosigned.text, 1_000).unwrap());
        let cosigned = String::from_utf8(cosigned.to_bytes()).unwrap();
        let proof = MisbehaviourProof::new(
            &cosigned,
            &note(&s, &b),
            full_proof(&b, 6, 11),
            &s.verifier(),
        );
        assert_eq!(proof.first, note(&s, &a));
        proof.verify(&s.verifier()).unwrap();
        let with_foreign = MisbehaviourProof {
            first: cosigned,
            ..proof.clone()
        };
        assert_eq!(
            with_foreign.verify(&s.verifier()),
            Err(MisbehaviourError::ForeignSignature { which: 1 })
        );
        let other = NoteSigner::from_seed("example.com/log", [6; 32]).unwrap();
        assert!(proof.verify(&other.verifier()).is_err());
        let text = proof.to_text().into_bytes();
        for i in 0..text.len() {
            let mut bad = text.clone();
            bad[i] ^= 0x01;
            let ok = MisbehaviourProof::parse(&bad)
                .ok()
                .and_then(|p| p.verify(&s.verifier()).ok());
            assert_eq!(ok, None, "flipping a bit of byte {i} still verifies");
        }
        assert!(MisbehaviourProof::parse(&text[..text.len() - 1]).is_err());
        let mut longer = text.clone();
        longer.push(b'\n');
        assert!(MisbehaviourProof::parse(&longer).is_err());
    }
}
