//! C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint) note texts:
//! `<origin>\n<size>\n<base64 root>\n[<extension line>\n]*`, signed as a [`crate::note`].
//!
//! Stele names its log key after the origin, so [`sign_checkpoint`] and [`open_checkpoint`]
//! require the key name to equal the origin (the spec's "SHOULD match").
//!
//! What this module leaves out: consistency between checkpoints (see [`crate::merkle`]) and
//! cosignatures (c2sp.org/tlog-cosignature); witness signature lines are kept in the
//! returned [`Note`] but not checked.

use base64::{engine::general_purpose::STANDARD, Engine as _};

use crate::note::{Note, NoteError, NoteSigner, NoteVerifier};
use crate::Hash;

/// Errors from parsing, signing and opening checkpoints.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// The text does not end in a newline.
    #[error("checkpoint text does not end in a newline")]
    MissingFinalNewline,
    /// Fewer than the three mandatory lines (origin, size, root).
    #[error("checkpoint has {found} lines, needs at least 3")]
    TooFewLines {
        /// Lines found.
        found: usize,
    },
    /// An empty line: the origin and extension lines must be non-empty.
    #[error("checkpoint line {line} is empty")]
    EmptyLine {
        /// 1-based line number.
        line: usize,
    },
    /// A control character other than newline, which no note text may hold.
    #[error("checkpoint line {line} contains a control character")]
    ControlCharacter {
        /// 1-based line number.
        line: usize,
    },
    /// The size line is not a decimal `u64` without sign or leading zeros.
    #[error("invalid tree size {value:?}")]
    InvalidSize {
        /// The size line as found.
        value: String,
    },
    /// The root line is not the base64 of 32 bytes.
    #[error("invalid root hash {value:?}")]
    InvalidRoot {
        /// The root line as found.
        value: String,
    },
    /// The key name is not the checkpoint's origin.
    #[error("checkpoint origin {origin:?} does not match key name {key_name:?}")]
    OriginMismatch {
        /// The checkpoint's origin.
        origin: String,
        /// The signing or verifying key's name.
        key_name: String,
    },
    /// The signed note around the checkpoint is malformed or not validly signed.
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// A checkpoint: a log's tree head at some size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `example.com/log42`.
    pub origin: String,
    /// Number of leaves in the tree.
    pub size: u64,
    /// RFC 6962 Merkle tree hash at `size`.
    pub root: Hash,
    /// Extension lines, each non-empty and without newline (opaque; NOT RECOMMENDED).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// Encodes the note text: one line each for origin, size, base64 root and each
    /// extension, every line ending in a newline. Does not check the fields; see
    /// [`Checkpoint::validate`].
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root.0)
        );
        for ext in &self.extensions {
            out.push_str(ext);
            out.push('\n');
        }
        out
    }

    /// Checks that [`Checkpoint::to_text`] yields a text that [`Checkpoint::parse`] returns
    /// unchanged: origin and extension lines non-empty, without newline or other control
    /// characters.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::EmptyLine`] or [`CheckpointError::ControlCharacter`], numbering
    /// lines as in the encoded text.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        check_free_line(1, &self.origin)?;
        for (i, ext) in self.extensions.iter().enumerate() {
            check_free_line(i.saturating_add(4), ext)?;
        }
        Ok(())
    }

    /// Parses a checkpoint note text (as found in [`Note::text`]).
    ///
    /// The text must end in a newline and hold at least three non-empty lines: a non-empty
    /// origin (any characters but controls: the spec says clients MUST NOT assume its
    /// format), the size in decimal with no sign and no leading zeros (`0` for the empty
    /// tree), the base64 of a 32-byte root, then non-empty extension lines.
    ///
    /// # Errors
    ///
    /// A [`CheckpointError`] naming the first rule broken.
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        let lines: Vec<&str> = body.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            check_free_line(i.saturating_add(1), line)?;
        }
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::TooFewLines { found: lines.len() });
        };
        Ok(Checkpoint {
            origin: (*origin).to_owned(),
            size: parse_size(size)?,
            root: parse_root(root)?,
            extensions: extensions.iter().map(|s| (*s).to_owned()).collect(),
        })
    }
}

/// A checkpoint line other than size and root: non-empty, no control characters.
fn check_free_line(line: usize, s: &str) -> Result<(), CheckpointError> {
    if s.is_empty() {
        return Err(CheckpointError::EmptyLine { line });
    }
    if s.chars().any(|c| c < '\u{20}') {
        return Err(CheckpointError::ControlCharacter { line });
    }
    Ok(())
}

fn parse_size(s: &str) -> Result<u64, CheckpointError> {
    let invalid = || CheckpointError::InvalidSize {
        value: s.to_owned(),
    };
    // `u64::from_str` alone would accept "+5" and "007".
    let digits_only = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (s.len() > 1 && s.starts_with('0')) {
        return Err(invalid());
    }
    s.parse().map_err(|_| invalid())
}

fn parse_root(s: &str) -> Result<Hash, CheckpointError> {
    let invalid = || CheckpointError::InvalidRoot {
        value: s.to_owned(),
    };
    let raw = STANDARD.decode(s).map_err(|_| invalid())?;
    let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| invalid())?;
    Ok(Hash(bytes))
}

fn check_origin(cp: &Checkpoint, key_name: &str) -> Result<(), CheckpointError> {
    if cp.origin == key_name {
        Ok(())
    } else {
        Err(CheckpointError::OriginMismatch {
            origin: cp.origin.clone(),
            key_name: key_name.to_owned(),
        })
    }
}

/// Signs `cp` and returns the whole signed note (checkpoint text, blank line, signature).
///
/// # Errors
///
/// [`CheckpointError::OriginMismatch`] if the signer's name is not the origin, or the
/// errors of [`Checkpoint::validate`].
pub fn sign_checkpoint(cp: &Checkpoint, signer: &NoteSigner) -> Result<String, CheckpointError> {
    cp.validate()?;
    check_origin(cp, signer.name())?;
    Ok(signer.sign(&cp.to_text())?)
}

/// Parses a signed checkpoint note, verifies its signature by `verifier`, and returns the
/// checkpoint and the note (whose other signatures, e.g. witness cosignatures, are kept but
/// not checked). The signature is checked before the text is interpreted.
///
/// # Errors
///
/// [`CheckpointError::Note`] for a malformed or not validly signed note, a parse error for
/// a malformed checkpoint text, [`CheckpointError::OriginMismatch`] if the origin is not the
/// verifier's key name.
pub fn open_checkpoint(
    note: &[u8],
    verifier: &NoteVerifier,
) -> Result<(Checkpoint, Note), CheckpointError> {
    let note = Note::parse(note)?;
    note.verified_by(verifier)?;
    let cp = Checkpoint::parse(&note.text)?;
    check_origin(&cp, verifier.name())?;
    Ok((cp, note))
}
