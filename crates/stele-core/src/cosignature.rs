//! C2SP tlog-cosignature (c2sp.org/tlog-cosignature), the Ed25519 `cosignature/v1` type:
//! witness keys, signing and verifying one cosignature line, and a witness policy (which
//! witness keys, how many of them) over a cosigned checkpoint note.
//!
//! A cosignature is a signed-note signature line on a checkpoint:
//!
//! ```text
//! — <witness name> base64(key ID ‖ u64 big-endian timestamp ‖ 64-byte Ed25519 signature)
//! ```
//!
//! - key ID = `SHA-256(<name> ‖ "\n" ‖ 0x04 ‖ 32-byte public key)[:4]` (§"Format");
//! - the signed message is `cosignature/v1\ntime <timestamp>\n` followed by the whole
//!   checkpoint note text, extension lines included (§"Ed25519 signed message");
//! - the timestamp is POSIX seconds, at most 2^63 − 1, never zero (tlog-witness requires a
//!   timestamp; a zero one makes no statement about time).
//!
//! Key strings follow the signed-note shapes with signature type `0x04`: the verifier key
//! `<name>+<hex key ID>+<base64(0x04 ‖ public key)>` (the spec's "vkeys with signature type
//! 0x04"), and — a Go `transparency-dev/formats` convention, not part of the spec — the
//! signer key `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 ‖ 32-byte seed)>`. A standard
//! Ed25519 note signer key (type `0x01`) is also accepted as a cosigner's secret key, as Go
//! does; the cosigner's key ID is then still computed with `0x04`.
//!
//! Parsing of notes and signature lines is [`crate::note`]'s; this module adds the message,
//! the timestamp and the policy.
//!
//! What it leaves out: the ML-DSA-44 cosignature type (`0x06`) and subtree cosignatures (lines
//! of that type are ignored as unknown keys), clocks (callers pass the time), and trust in any
//! particular witness.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::checkpoint::Checkpoint;
use crate::note::{
    check_name, encode_key_string, key_id, parse_key_string, Note, NoteError, NoteSignature,
    ALG_ED25519, SIGNER_KEY_PREFIX,
};

/// Signature type byte of Ed25519 `cosignature/v1` keys (tlog-cosignature §"Format").
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// The header line of the signed message, domain separation from other signatures.
pub const HEADER: &str = "cosignature/v1";

/// Largest timestamp the spec allows: 2^63 − 1.
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Length of the decoded signature after the key ID: timestamp and Ed25519 signature.
const SIGNATURE_LEN: usize = 8 + 64;

/// Errors from witness keys, cosigning, and checking cosignatures against a policy.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CosignatureError {
    /// A key string, name or note was malformed (see the inner error).
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The text to cosign is not a checkpoint.
    #[error("cosigned text is not a checkpoint: {0}")]
    NotACheckpoint(String),
    /// A timestamp of zero or above 2^63 − 1.
    #[error("cosignature timestamp {0} is out of range (1 to 2^63-1)")]
    TimestampOutOfRange(u64),
    /// A signature line by a trusted witness that is not 72 bytes after the key ID.
    #[error("cosignature by {name} has {len} bytes after the key ID, expected 72")]
    WrongLength {
        /// The witness's key name.
        name: String,
        /// Bytes found.
        len: usize,
    },
    /// A signature line by a trusted witness that does not verify. The note is then malformed
    /// (signed-note §"Signatures"), so the whole note is rejected.
    #[error("invalid cosignature by witness {name}+{key_id:08x}")]
    InvalidSignature {
        /// The witness's key name.
        name: String,
        /// The witness's key ID.
        key_id: u32,
    },
    /// A policy whose quorum exceeds its number of witnesses, or that names a key twice.
    #[error("invalid witness policy: {0}")]
    InvalidPolicy(String),
    /// Fewer valid cosignatures than the policy's quorum.
    #[error("checkpoint has valid cosignatures from {found} of the required {quorum} witnesses")]
    QuorumNotMet {
        /// Distinct trusted witnesses with a valid cosignature.
        found: usize,
        /// The policy's quorum.
        quorum: usize,
    },
}

/// The message a `cosignature/v1` signs: `cosignature/v1\ntime <timestamp>\n<text>`, where
/// `text` is the checkpoint note text (including its final newline, no signature lines).
///
/// # Errors
///
/// [`CosignatureError::TimestampOutOfRange`] above 2^63 − 1. (Zero is allowed here, so the
/// message of any line can be recomputed; [`Cosigner::cosign`] and
/// [`CosignatureVerifier::verify`] refuse it.)
pub fn signed_message(timestamp: u64, text: &str) -> Result<String, CosignatureError> {
    if timestamp > MAX_TIMESTAMP {
        return Err(CosignatureError::TimestampOutOfRange(timestamp));
    }
    Ok(format!("{HEADER}\ntime {timestamp}\n{text}"))
}

/// The decoded payload of a cosignature line: the timestamp and the Ed25519 signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cosignature {
    /// POSIX seconds at which the witness cosigned.
    pub timestamp: u64,
    /// Ed25519 signature of [`signed_message`].
    pub signature: [u8; 64],
}

impl Cosignature {
    /// Decodes the bytes after the key ID of a signature line: `u64 BE timestamp ‖ 64 bytes`.
    /// Returns `None` for any other length.
    pub fn decode(bytes: &[u8]) -> Option<Cosignature> {
        let (ts, sig) = bytes.split_first_chunk::<8>()?;
        let signature: [u8; 64] = sig.try_into().ok()?;
        Some(Cosignature {
            timestamp: u64::from_be_bytes(*ts),
            signature,
        })
    }

    /// Encodes `timestamp ‖ signature` (72 bytes), the inverse of [`Cosignature::decode`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGNATURE_LEN);
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.signature);
        out
    }
}

/// A witness's secret key: name, `0x04` key ID and Ed25519 key. `Debug` omits the secret.
#[derive(Clone)]
pub struct Cosigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cosigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl Cosigner {
    /// Generates a new witness key for `name` from the operating system's randomness.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`] or [`NoteError::Randomness`], wrapped.
    pub fn generate(name: &str) -> Result<Self, CosignatureError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| NoteError::Randomness(e.to_string()))?;
        Self::from_seed(name, seed)
    }

    /// Builds a witness key from a 32-byte Ed25519 seed.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`], wrapped.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, CosignatureError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, ALG_COSIGNATURE_V1, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex key ID>+<base64(type ‖ seed)>` with type `0x04` (key ID
    /// computed with `0x04`) or `0x01` (a note signer key; key ID computed with `0x01`).
    ///
    /// # Errors
    ///
    /// Malformed strings, other types, and a key ID that does not match, wrapped
    /// [`NoteError`]s.
    pub fn from_signer_key(s: &str) -> Result<Self, CosignatureError> {
        let rest = s
            .strip_prefix(SIGNER_KEY_PREFIX)
            .ok_or(NoteError::MalformedKey {
                reason: "signer key does not start with PRIVATE+KEY+",
            })?;
        let (name, id, alg, seed) = parse_key_string(rest, &[ALG_COSIGNATURE_V1, ALG_ED25519])?;
        let cosigner = Self::from_seed(name, seed)?;
        let expected = key_id(name, alg, cosigner.key.verifying_key().as_bytes());
        if id != expected {
            return Err(NoteError::KeyIdMismatch {
                name: name.to_owned(),
                found: id,
                expected,
            }
            .into());
        }
        Ok(cosigner)
    }

    /// Encodes the secret key as `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 ‖ seed)>`.
    pub fn to_signer_key(&self) -> String {
        format!(
            "{SIGNER_KEY_PREFIX}{}",
            encode_key_string(
                &self.name,
                self.key_id,
                ALG_COSIGNATURE_V1,
                self.key.as_bytes()
            )
        )
    }

    /// The matching public key.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The witness's key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `0x04` key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Cosigns the checkpoint note text `text` at `timestamp` (POSIX seconds) and returns the
    /// signature line to append to the note.
    ///
    /// # Errors
    ///
    /// [`CosignatureError::NotACheckpoint`] if `text` does not parse as a checkpoint,
    /// [`CosignatureError::TimestampOutOfRange`] for 0 or above 2^63 − 1.
    pub fn cosign(&self, text: &str, timestamp: u64) -> Result<NoteSignature, CosignatureError> {
        Checkpoint::parse(text).map_err(|e| CosignatureError::NotACheckpoint(e.to_string()))?;
        if timestamp == 0 {
            return Err(CosignatureError::TimestampOutOfRange(0));
        }
        let message = signed_message(timestamp, text)?;
        let signature = self.key.sign(message.as_bytes()).to_bytes();
        Ok(NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            bytes: Cosignature {
                timestamp,
                signature,
            }
            .encode(),
        })
    }
}

/// A witness's public key: what a log or a verifier trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// Builds a verifier from a name and an Ed25519 public key, deriving the `0x04` key ID.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`], wrapped.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, CosignatureError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, ALG_COSIGNATURE_V1, key.as_bytes()),
            key,
        })
    }

    /// Parses `<name>+<hex key ID>+<base64(0x04 ‖ 32-byte public key)>`.
    ///
    /// A type-`0x01` key (a log's note key) is refused: a witness key says which cosignature
    /// format it signs, and mixing the two would change its key ID.
    ///
    /// # Errors
    ///
    /// [`NoteError::UnsupportedAlgorithm`] for other types, [`NoteError::MalformedKey`] for a
    /// bad shape or an invalid curve point, [`NoteError::KeyIdMismatch`]; all wrapped.
    pub fn from_verifier_key(s: &str) -> Result<Self, CosignatureError> {
        let (name, id, _, pubkey) = parse_key_string(s, &[ALG_COSIGNATURE_V1])?;
        let key = VerifyingKey::from_bytes(&pubkey).map_err(|_| NoteError::MalformedKey {
            reason: "not a valid Ed25519 public key",
        })?;
        let v = Self::new(name, key)?;
        if v.key_id != id {
            return Err(NoteError::KeyIdMismatch {
                name: name.to_owned(),
                found: id,
                expected: v.key_id,
            }
            .into());
        }
        Ok(v)
    }

    /// Encodes the verifier key string (type `0x04`).
    pub fn to_verifier_key(&self) -> String {
        encode_key_string(
            &self.name,
            self.key_id,
            ALG_COSIGNATURE_V1,
            self.key.as_bytes(),
        )
    }

    /// The witness's key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `0x04` key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Whether a signature line claims to be by this key (same name and key ID). Lines that do
    /// not are to be ignored, never counted as failures.
    pub fn is_signer_of(&self, sig: &NoteSignature) -> bool {
        sig.name == self.name && sig.key_id == self.key_id
    }

    /// Checks a cosignature line by this key over the checkpoint note text `text` and returns
    /// its timestamp.
    ///
    /// Uses `verify_strict`, like [`crate::note`].
    ///
    /// # Errors
    ///
    /// [`CosignatureError::InvalidSignature`] if the line is not this key's or does not
    /// verify, [`CosignatureError::WrongLength`] for a payload that is not 72 bytes,
    /// [`CosignatureError::TimestampOutOfRange`] for a zero or too large timestamp.
    pub fn verify(&self, text: &str, sig: &NoteSignature) -> Result<u64, CosignatureError> {
        let invalid = || CosignatureError::InvalidSignature {
            name: self.name.clone(),
            key_id: self.key_id,
        };
        if !self.is_signer_of(sig) {
            return Err(invalid());
        }
        let cosig =
            Cosignature::decode(&sig.bytes).ok_or_else(|| CosignatureError::WrongLength {
                name: self.name.clone(),
                len: sig.bytes.len(),
            })?;
        if cosig.timestamp == 0 {
            return Err(CosignatureError::TimestampOutOfRange(0));
        }
        let message = signed_message(cosig.timestamp, text)?;
        self.key
            .verify_strict(message.as_bytes(), &Signature::from_bytes(&cosig.signature))
            .map_err(|_| invalid())?;
        Ok(cosig.timestamp)
    }
}

/// A valid cosignature found by [`WitnessPolicy::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidCosignature {
    /// The witness's key name.
    pub name: String,
    /// The witness's key ID.
    pub key_id: u32,
    /// When the witness cosigned (POSIX seconds).
    pub timestamp: u64,
}

/// Which witnesses a client trusts and how many of them must have cosigned a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessPolicy {
    witnesses: Vec<CosignatureVerifier>,
    quorum: usize,
}

impl WitnessPolicy {
    /// A policy requiring valid cosignatures from at least `quorum` distinct `witnesses`.
    ///
    /// # Errors
    ///
    /// [`CosignatureError::InvalidPolicy`] if `quorum` exceeds the number of witnesses or two
    /// witnesses share a name and key ID (they could not be told apart).
    pub fn new(
        witnesses: Vec<CosignatureVerifier>,
        quorum: usize,
    ) -> Result<Self, CosignatureError> {
        if quorum > witnesses.len() {
            return Err(CosignatureError::InvalidPolicy(format!(
                "quorum {quorum} is more than the {} witness keys given",
                witnesses.len()
            )));
        }
        for (i, w) in witnesses.iter().enumerate() {
            if witnesses
                .iter()
                .skip(i.saturating_add(1))
                .any(|o| o.name == w.name && o.key_id == w.key_id)
            {
                return Err(CosignatureError::InvalidPolicy(format!(
                    "witness key {} is given twice",
                    w.to_verifier_key()
                )));
            }
        }
        Ok(Self { witnesses, quorum })
    }

    /// The trusted witnesses.
    pub fn witnesses(&self) -> &[CosignatureVerifier] {
        &self.witnesses
    }

    /// The number of distinct witnesses that must have cosigned.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// Checks every cosignature of `note` by a trusted witness and returns one valid
    /// cosignature per witness (the first), in policy order. Lines by other keys are ignored.
    ///
    /// It does not check the log's own signature: open the checkpoint with the log key first.
    ///
    /// # Errors
    ///
    /// Any error of [`CosignatureVerifier::verify`] for a line that names a trusted witness
    /// (such a note is malformed, so it is rejected whole), and
    /// [`CosignatureError::QuorumNotMet`].
    pub fn check(&self, note: &Note) -> Result<Vec<ValidCosignature>, CosignatureError> {
        let mut found = Vec::new();
        for w in &self.witnesses {
            let mut first = None;
            for sig in note.signatures.iter().filter(|s| w.is_signer_of(s)) {
                let timestamp = w.verify(&note.text, sig)?;
                first.get_or_insert(timestamp);
            }
            if let Some(timestamp) = first {
                found.push(ValidCosignature {
                    name: w.name.clone(),
                    key_id: w.key_id,
                    timestamp,
                });
            }
        }
        if found.len() < self.quorum {
            return Err(CosignatureError::QuorumNotMet {
                found: found.len(),
                quorum: self.quorum,
            });
        }
        Ok(found)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::Hash;

    fn text(size: u64) -> String {
        Checkpoint {
            origin: "example.com/log".into(),
            size,
            root: Hash([7; 32]),
            extensions: vec![],
        }
        .to_text()
    }

    #[test]
    fn cosign_then_verify_round_trips_and_binds_text_and_time() {
        let w = Cosigner::from_seed("witness.example/w1", [1; 32]).unwrap();
        let v = w.verifier();
        let sig = w.cosign(&text(5), 1_700_000_000).unwrap();
        assert_eq!(sig.bytes.len(), 72);
        assert_eq!(v.verify(&text(5), &sig).unwrap(), 1_700_000_000);
        assert!(v.verify(&text(6), &sig).is_err());
        let mut later = sig.clone();
        later.bytes[7] ^= 1;
        assert!(v.verify(&text(5), &later).is_err());
        // The line survives encoding as a note signature line.
        let line = sig.to_line();
        let parsed = NoteSignature::parse_line(line.trim_end_matches('\n')).unwrap();
        assert_eq!(v.verify(&text(5), &parsed).unwrap(), 1_700_000_000);
    }

    #[test]
    fn keys_round_trip_and_use_type_4_key_ids() {
        let w = Cosigner::generate("witness.example/w1").unwrap();
        let again = Cosigner::from_signer_key(&w.to_signer_key()).unwrap();
        assert_eq!(again.verifier(), w.verifier());
        let vkey = w.verifier().to_verifier_key();
        assert_eq!(
            CosignatureVerifier::from_verifier_key(&vkey).unwrap(),
            w.verifier()
        );
        assert_eq!(
            w.key_id(),
            key_id(
                "witness.example/w1",
                0x04,
                w.verifier().verifying_key().as_bytes()
            )
        );
        // A note key of the same seed has another key ID, and is no witness verifier key.
        let note_signer =
            crate::note::NoteSigner::from_seed("witness.example/w1", [9; 32]).unwrap();
        assert_ne!(
            note_signer.key_id(),
            Cosigner::from_seed("witness.example/w1", [9; 32])
                .unwrap()
                .key_id()
        );
        let note_vkey = note_signer.verifier().to_verifier_key();
        assert!(matches!(
            CosignatureVerifier::from_verifier_key(&note_vkey),
            Err(CosignatureError::Note(NoteError::UnsupportedAlgorithm {
                alg: 1
            }))
        ));
        // ...but its signer key string is accepted as a cosigner secret, as Go does.
        let from_note = Cosigner::from_signer_key(&note_signer.to_signer_key()).unwrap();
        assert_eq!(
            from_note.verifier().verifying_key(),
            note_signer.verifier().verifying_key()
        );
        assert_eq!(
            from_note.key_id(),
            Cosigner::from_seed("witness.example/w1", [9; 32])
                .unwrap()
                .key_id()
        );
    }

    #[test]
    fn zero_and_huge_timestamps_and_non_checkpoints_are_refused() {
        let w = Cosigner::from_seed("w", [2; 32]).unwrap();
        assert_eq!(
            w.cosign(&text(1), 0),
            Err(CosignatureError::TimestampOutOfRange(0))
        );
        assert_eq!(
            w.cosign(&text(1), MAX_TIMESTAMP + 1),
            Err(CosignatureError::TimestampOutOfRange(MAX_TIMESTAMP + 1))
        );
        assert!(w.cosign(&text(1), MAX_TIMESTAMP).is_ok());
        assert!(matches!(
            w.cosign("just one line\n", 5),
            Err(CosignatureError::NotACheckpoint(_))
        ));
    }

    #[test]
    fn policy_counts_distinct_valid_witnesses_and_rejects_bad_lines() {
        let log = crate::note::NoteSigner::from_seed("example.com/log", [3; 32]).unwrap();
        let ws: Vec<Cosigner> = (0..3)
            .map(|i| Cosigner::from_seed(&format!("w{i}.example"), [10 + i; 32]).unwrap())
            .collect();
        let signed = log.sign(&text(9)).unwrap();
        let mut note = Note::parse(signed.as_bytes()).unwrap();
        note.signatures.push(ws[0].cosign(&note.text, 100).unwrap());
        note.signatures.push(ws[0].cosign(&note.text, 101).unwrap());
        note.signatures.push(ws[1].cosign(&note.text, 102).unwrap());
        let policy = |q| WitnessPolicy::new(ws.iter().map(Cosigner::verifier).collect(), q);
        let found = policy(2).unwrap().check(&note).unwrap();
        assert_eq!(
            found.iter().map(|c| c.timestamp).collect::<Vec<_>>(),
            [100, 102]
        );
        assert_eq!(
            policy(3).unwrap().check(&note),
            Err(CosignatureError::QuorumNotMet {
                found: 2,
                quorum: 3
            })
        );
        // A forged line under a trusted witness's name and key ID rejects the note.
        let mut forged = note.clone();
        let mut bad = ws[2].cosign(&note.text, 103).unwrap();
        bad.bytes[20] ^= 0x40;
        forged.signatures.push(bad);
        assert!(matches!(
            policy(1).unwrap().check(&forged),
            Err(CosignatureError::InvalidSignature { .. })
        ));
        assert!(WitnessPolicy::new(vec![ws[0].verifier(), ws[0].verifier()], 1).is_err());
        assert!(WitnessPolicy::new(vec![ws[0].verifier()], 2).is_err());
    }
}
