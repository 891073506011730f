//! C2SP signed-note (c2sp.org/signed-note) with Ed25519 keys (signature type `0x01`):
//! key strings, signing, parsing and verification.
//!
//! A signed note is a text ending in a newline, a blank line, and one or more signature lines
//! `— <key name> <base64(key ID ‖ signature)>`. Key strings follow the Go `sumdb/note`
//! convention, which the spec's "Verifier keys" section adopts for public keys:
//!
//! - verifier key: `<name>+<8 lowercase hex key ID>+<base64(0x01 ‖ 32-byte public key)>`
//! - signer key: `PRIVATE+KEY+<name>+<8 lowercase hex key ID>+<base64(0x01 ‖ 32-byte seed)>`
//!
//! What this module leaves out: other signature types (they parse as signatures from unknown
//! keys and are ignored, as the spec requires), key storage, and any policy about which keys
//! to trust — callers pass the one [`NoteVerifier`] they trust.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// Signature type identifier byte for Ed25519 (signed-note §"Signature types").
pub const ALG_ED25519: u8 = 0x01;

/// Largest note [`Note::parse`] accepts, in bytes. The spec asks verifiers to bound note size;
/// this matches Go's `sumdb/note` and Cloudflare's `signed_note`.
pub const MAX_NOTE_SIZE: usize = 1_000_000;

/// Most signature lines [`Note::parse`] accepts. The spec requires at least 16; this matches
/// Go's `sumdb/note` and Cloudflare's `signed_note`.
pub const MAX_SIGNATURES: usize = 100;

/// The literal prefix of a signer key string, which keeps it from being mistaken for a
/// verifier key.
pub(crate) const SIGNER_KEY_PREFIX: &str = "PRIVATE+KEY+";

/// The prefix of every signature line: em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Errors from key strings, signing, parsing and verifying notes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    /// A key name is empty or contains a Unicode space, a plus or a control character.
    #[error("invalid key name {name:?}")]
    InvalidKeyName {
        /// The rejected name.
        name: String,
    },
    /// A verifier or signer key string does not have the expected shape.
    #[error("malformed key string: {reason}")]
    MalformedKey {
        /// What was wrong.
        reason: &'static str,
    },
    /// A key string names a signature type other than Ed25519.
    #[error("unsupported signature type 0x{alg:02x}")]
    UnsupportedAlgorithm {
        /// The signature type byte found.
        alg: u8,
    },
    /// The key ID in a key string is not the one the name and public key hash to.
    #[error("key ID {found:08x} for {name} does not match the computed {expected:08x}")]
    KeyIdMismatch {
        /// The key name.
        name: String,
        /// The key ID written in the key string.
        found: u32,
        /// The key ID computed from the name and public key.
        expected: u32,
    },
    /// Text to sign, or a note's text, breaks the spec's rules.
    #[error("malformed note text: {reason}")]
    MalformedText {
        /// What was wrong.
        reason: &'static str,
    },
    /// A note does not follow the signed-note format.
    #[error("malformed note: {reason}")]
    MalformedNote {
        /// What was wrong.
        reason: &'static str,
    },
    /// A signature by the trusted key did not verify, so the whole note is rejected.
    #[error("invalid signature for key {name}+{key_id:08x}")]
    InvalidSignature {
        /// Key name of the failing signature.
        name: String,
        /// Key ID of the failing signature.
        key_id: u32,
    },
    /// The note carries no signature by the trusted key.
    #[error("note has no signature by key {name}+{key_id:08x}")]
    NotSignedBy {
        /// Key name of the trusted key.
        name: String,
        /// Key ID of the trusted key.
        key_id: u32,
    },
    /// The operating system's random number generator failed.
    #[error("OS randomness unavailable: {0}")]
    Randomness(String),
}

/// Computes a key ID as the spec recommends:
/// `SHA-256(key name ‖ 0x0A ‖ signature type ‖ public key)[:4]`, read big-endian.
pub fn key_id(name: &str, alg: u8, pubkey: &[u8]) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', alg]);
    hasher.update(pubkey);
    let digest: [u8; 32] = hasher.finalize().into();
    let [a, b, c, d, ..] = digest;
    u32::from_be_bytes([a, b, c, d])
}

/// Reports whether `name` may be used as a key name: non-empty, with no Unicode white space
/// (the same set as Go's `unicode.IsSpace`), no plus (U+002B), and — stricter than the spec's
/// The default key name of a host's log or witness: `<host>/<suffix>`, or
/// `localhost/<suffix>` when `host` (e.g. the contents of /etc/hostname) is empty or holds
/// anything but ASCII letters, digits, `-` and `.`.
pub fn key_name_for_host(host: &str, suffix: &str) -> String {
    let host = host.trim();
    if !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        format!("{host}/{suffix}")
    } else {
        format!("localhost/{suffix}")
    }
}

/// name rule, but implied by its note rule — no control character below U+0020.
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c < '\u{20}')
}

pub(crate) fn check_name(name: &str) -> Result<(), NoteError> {
    if valid_key_name(name) {
        Ok(())
    } else {
        Err(NoteError::InvalidKeyName {
            name: name.to_owned(),
        })
    }
}

/// Checks the spec's rules for a note text: ends in a newline, no control characters but
/// newline. (UTF-8 validity comes with `&str`.)
fn check_text(text: &str) -> Result<(), NoteError> {
    if text.len() > MAX_NOTE_SIZE {
        return Err(NoteError::MalformedText {
            reason: "text too large",
        });
    }
    if !text.ends_with('\n') {
        return Err(NoteError::MalformedText {
            reason: "text does not end in a newline",
        });
    }
    if text.chars().any(|c| c < '\u{20}' && c != '\n') {
        return Err(NoteError::MalformedText {
            reason: "text contains a control character",
        });
    }
    Ok(())
}

/// Parses `<name>+<8 hex>+<base64(0x01 ‖ 32 bytes)>` into its name, key ID and key bytes.
/// The key ID is only parsed here; callers check it once they know the public key.
fn parse_key_parts(s: &str) -> Result<(&str, u32, [u8; 32]), NoteError> {
    let (name, id, _alg, key) = parse_key_string(s, &[ALG_ED25519])?;
    Ok((name, id, key))
}

/// Parses `<name>+<8 hex>+<base64(alg ‖ 32 bytes)>` for a signature type in `algs` (the
/// key-string shape that other 32-byte key types, such as the tlog-cosignature type `0x04`,
/// share with Ed25519 note keys). Returns the name, the key ID as written (not yet checked),
/// the type byte and the key bytes.
pub(crate) fn parse_key_string<'a>(
    s: &'a str,
    algs: &[u8],
) -> Result<(&'a str, u32, u8, [u8; 32]), NoteError> {
    // The name cannot contain '+' but the base64 key can, so split at most twice.
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(NoteError::MalformedKey {
            reason: "expected <name>+<key ID>+<key>",
        });
    };
    check_name(name)?;
    // The spec's hex encoding is fixed-length lowercase.
    if id_hex.len() != 8
        || !id_hex
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(NoteError::MalformedKey {
            reason: "key ID is not 8 lowercase hex digits",
        });
    }
    let id = u32::from_str_radix(id_hex, 16).map_err(|_| NoteError::MalformedKey {
        reason: "key ID is not 8 lowercase hex digits",
    })?;
    let raw = STANDARD
        .decode(key_b64)
        .map_err(|_| NoteError::MalformedKey {
            reason: "key is not valid base64",
        })?;
    let (&alg, key) = raw.split_first().ok_or(NoteError::MalformedKey {
        reason: "key is empty",
    })?;
    if !algs.contains(&alg) {
        return Err(NoteError::UnsupportedAlgorithm { alg });
    }
    let key: [u8; 32] = key.try_into().map_err(|_| NoteError::MalformedKey {
        reason: "Ed25519 key is not 32 bytes",
    })?;
    Ok((name, id, alg, key))
}

fn check_key_id(name: &str, found: u32, pubkey: &VerifyingKey) -> Result<u32, NoteError> {
    let expected = key_id(name, ALG_ED25519, pubkey.as_bytes());
    if found == expected {
        Ok(expected)
    } else {
        Err(NoteError::KeyIdMismatch {
            name: name.to_owned(),
            found,
            expected,
        })
    }
}

fn encode_key(name: &str, key_id: u32, key: &[u8; 32]) -> String {
    encode_key_string(name, key_id, ALG_ED25519, key)
}

/// Encodes `<name>+<8 hex key ID>+<base64(alg ‖ key)>`.
pub(crate) fn encode_key_string(name: &str, key_id: u32, alg: u8, key: &[u8; 32]) -> String {
    let mut raw = [0u8; 33];
    let (alg_byte, rest) = raw.split_at_mut(1);
    alg_byte.fill(alg);
    rest.copy_from_slice(key);
    format!("{name}+{key_id:08x}+{}", STANDARD.encode(raw))
}

/// An Ed25519 signing key with its key name and key ID. Its `Debug` output omits the secret.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// Generates a new key for `name` from the operating system's randomness.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`] for a bad name, [`NoteError::Randomness`] if the OS
    /// random number generator fails.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| NoteError::Randomness(e.to_string()))?;
        Self::from_seed(name, seed)
    }

    /// Builds a signer from a 32-byte Ed25519 seed (RFC 8032 private key).
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`] if `name` is not a valid key name.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id(name, ALG_ED25519, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Parses a signer key string `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 ‖ seed)>`.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedKey`], [`NoteError::InvalidKeyName`],
    /// [`NoteError::UnsupportedAlgorithm`], or [`NoteError::KeyIdMismatch`] when the key ID is
    /// not the one derived from the name and the seed's public key.
    pub fn from_signer_key(s: &str) -> Result<Self, NoteError> {
        let rest = s
            .strip_prefix(SIGNER_KEY_PREFIX)
            .ok_or(NoteError::MalformedKey {
                reason: "signer key does not start with PRIVATE+KEY+",
            })?;
        let (name, id, seed) = parse_key_parts(rest)?;
        let signer = Self::from_seed(name, seed)?;
        check_key_id(name, id, &signer.key.verifying_key())?;
        Ok(signer)
    }

    /// Encodes the signer key string. It holds the secret key: store it like one.
    pub fn to_signer_key(&self) -> String {
        format!(
            "{SIGNER_KEY_PREFIX}{}",
            encode_key(&self.name, self.key_id, self.key.as_bytes())
        )
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Signs `text` and returns the whole signed note: the text, a blank line and one
    /// signature line.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedText`] if `text` does not end in a newline, contains a control
    /// character other than newline, or exceeds [`MAX_NOTE_SIZE`].
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        Ok(format!("{text}\n{}", self.sign_line(text)))
    }

    /// Signs `text` and returns one signature line, `— <name> <base64(key ID ‖ sig)>\n`
    /// (newline included), to append to an existing note whose text is `text`.
    ///
    /// `text` is not checked here; take it from a parsed [`Note`] or check it with
    /// [`NoteSigner::sign`]'s rules.
    pub fn sign_line(&self, text: &str) -> String {
        // Ed25519 signing cannot fail; `Signer::sign` only panics on errors it cannot have.
        let sig = self.key.sign(text.as_bytes());
        NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            bytes: sig.to_bytes().to_vec(),
        }
        .to_line()
    }
}

/// An Ed25519 public key with its key name and key ID: the key a client trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Builds a verifier from a name and public key, deriving the key ID.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`] if `name` is not a valid key name.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, ALG_ED25519, key.as_bytes()),
            key,
        })
    }

    /// Parses a verifier key string `<name>+<hex key ID>+<base64(0x01 ‖ public key)>`.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedKey`] (including a public key that is not a valid curve point),
    /// [`NoteError::InvalidKeyName`], [`NoteError::UnsupportedAlgorithm`], or
    /// [`NoteError::KeyIdMismatch`].
    pub fn from_verifier_key(s: &str) -> Result<Self, NoteError> {
        let (name, id, pubkey) = parse_key_parts(s)?;
        let key = VerifyingKey::from_bytes(&pubkey).map_err(|_| NoteError::MalformedKey {
            reason: "not a valid Ed25519 public key",
        })?;
        let key_id = check_key_id(name, id, &key)?;
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Encodes the verifier key string.
    pub fn to_verifier_key(&self) -> String {
        encode_key(&self.name, self.key_id, self.key.as_bytes())
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Reports whether `signature` (64 bytes, without the key ID) is a valid Ed25519
    /// signature of `text` by this key.
    ///
    /// Uses `verify_strict`, which also rejects small-order keys and `R` values, so one
    /// signature can never be valid for two different texts.
    pub fn verify_text(&self, text: &str, signature: &[u8]) -> bool {
        let Ok(sig) = Signature::from_slice(signature) else {
            return false;
        };
        self.key.verify_strict(text.as_bytes(), &sig).is_ok()
    }
}

/// One signature line of a note, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name from the signature line.
    pub name: String,
    /// Key ID: the first four bytes of the decoded signature, big-endian.
    pub key_id: u32,
    /// The signature proper: the decoded bytes after the key ID.
    pub bytes: Vec<u8>,
}

impl NoteSignature {
    /// Encodes the signature line, `— <name> <base64(key ID ‖ bytes)>\n`.
    pub fn to_line(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.bytes.len());
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&self.bytes);
        format!("{SIG_PREFIX}{} {}\n", self.name, STANDARD.encode(raw))
    }

    /// Parses one signature line (without its newline), e.g. a line of a C2SP tlog-witness
    /// `add-checkpoint` response.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedNote`] naming the rule broken.
    pub fn parse_line(line: &str) -> Result<Self, NoteError> {
        let malformed = |reason| NoteError::MalformedNote { reason };
        let rest = line.strip_prefix(SIG_PREFIX).ok_or(malformed(
            "signature line does not start with an em dash and a space",
        ))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(malformed("signature line has no space after the key name"))?;
        if !valid_key_name(name) {
            return Err(malformed("invalid key name in signature line"));
        }
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| malformed("signature is not valid base64"))?;
        // 4 bytes of key ID and at least one byte of signature.
        match raw.split_first_chunk::<4>() {
            Some((id, sig)) if !sig.is_empty() => Ok(Self {
                name: name.to_owned(),
                key_id: u32::from_be_bytes(*id),
                bytes: sig.to_vec(),
            }),
            _ => Err(malformed("signature shorter than 5 bytes")),
        }
    }
}

/// A parsed signed note. Nothing about the text may be trusted until
/// [`Note::verified_by`] succeeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The signed text, including its final newline, excluding the blank separator line.
    pub text: String,
    /// The signature lines, in order, duplicates and unknown keys included.
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a signed note: valid UTF-8 of at most [`MAX_NOTE_SIZE`] bytes, no control
    /// character but newline, the text separated from the signatures by the last blank line,
    /// then 1 to [`MAX_SIGNATURES`] signature lines each ending in a newline.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedNote`] naming the first rule broken.
    pub fn parse(bytes: &[u8]) -> Result<Note, NoteError> {
        let malformed = |reason| NoteError::MalformedNote { reason };
        if bytes.len() > MAX_NOTE_SIZE {
            return Err(malformed("note too large"));
        }
        let msg = std::str::from_utf8(bytes).map_err(|_| malformed("note is not UTF-8"))?;
        if msg.chars().any(|c| c < '\u{20}' && c != '\n') {
            return Err(malformed("note contains a control character"));
        }
        let (text, sigs) = msg
            .rsplit_once("\n\n")
            .ok_or(malformed("no blank line before the signatures"))?;
        let sigs = sigs
            .strip_suffix('\n')
            .ok_or(malformed("signatures do not end in a newline"))?;
        let mut signatures = Vec::new();
        for line in sigs.split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(malformed("too many signatures"));
            }
            signatures.push(NoteSignature::parse_line(line)?);
        }
        Ok(Note {
            text: format!("{text}\n"),
            signatures,
        })
    }

    /// Checks that `verifier`'s key signed this note.
    ///
    /// Follows the spec's "Signatures" section: signatures whose (name, key ID) pair is not
    /// the verifier's are ignored, even if one of the two matches; every signature that does
    /// match must verify (a duplicate that fails rejects the note, where Go's `sumdb/note`
    /// would skip it); and at least one must.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidSignature`] if a signature by this key fails,
    /// [`NoteError::NotSignedBy`] if there is none.
    pub fn verified_by(&self, verifier: &NoteVerifier) -> Result<(), NoteError> {
        let mut found = false;
        for sig in &self.signatures {
            if sig.name != verifier.name || sig.key_id != verifier.key_id {
                continue;
            }
            if !verifier.verify_text(&self.text, &sig.bytes) {
                return Err(NoteError::InvalidSignature {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            found = true;
        }
        if found {
            Ok(())
        } else {
            Err(NoteError::NotSignedBy {
                name: verifier.name.clone(),
                key_id: verifier.key_id,
            })
        }
    }

    /// Encodes the note: text, blank line, signature lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{}\n", self.text);
        for sig in &self.signatures {
            out.push_str(&sig.to_line());
        }
        out.into_bytes()
    }
}
