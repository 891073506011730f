//! Signing-key rotation statements: how a verifier that trusts a log's old key learns, with
//! nothing but that key, which key signs the log's checkpoints from some tree size on.
//!
//! A statement is a C2SP signed note (see [`crate::note`]) whose text is
//!
//! ```text
//! stele-key-rotation/v1\n
//! <origin>\n
//! <new verifier key>\n
//! <from size>\n
//! ```
//!
//! signed by the **old** key (which makes it authoritative for anyone trusting that key) and
//! by the **new** key (proof that whoever holds the new key agreed to sign for this origin).
//! `<from size>` is the size of the tree that holds the log's own record of the rotation
//! (the `admin.key.rotate` event is its last entry): every checkpoint of that size or more is
//! signed by the new key; checkpoints of smaller trees were signed by the old one.
//!
//! The origin is the key name of both keys (Stele names its log keys after the origin); the
//! new key differs from the old one; the size is decimal without sign or leading zeros.
//!
//! What this module leaves out: where statements are kept and served (`stele-store`,
//! `stele-server`), and any decision about what a caller then trusts beyond what
//! [`follow`] returns.

use crate::note::{Note, NoteError, NoteSigner, NoteVerifier};

/// First line of every statement.
pub const HEADER: &str = "stele-key-rotation/v1";

/// Most rotations [`follow`] walks through.
pub const MAX_CHAIN: usize = 100;

/// Errors from making, opening and following rotation statements.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RotationError {
    /// The statement text does not have the format above.
    #[error("malformed key-rotation statement: {0}")]
    Malformed(&'static str),
    /// A key in the statement or given to sign it does not fit (another origin, the same
    /// key twice).
    #[error("key-rotation statement: {0}")]
    Keys(String),
    /// The note is malformed or not validly signed by the key that must sign it.
    #[error("key-rotation statement: {0}")]
    Note(#[from] NoteError),
    /// Following statements went around in a circle or too far.
    #[error("key-rotation chain: {0}")]
    Chain(String),
}

/// What a statement says: from tree size `from_size` on, log `origin` signs with `new_key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRotation {
    /// The log's origin (key name of the old and new keys).
    pub origin: String,
    /// The key that signs from `from_size` on.
    pub new_key: NoteVerifier,
    /// The first tree size whose checkpoints the new key signs.
    pub from_size: u64,
}

impl KeyRotation {
    /// The note text.
    pub fn to_text(&self) -> String {
        format!(
            "{HEADER}\n{}\n{}\n{}\n",
            self.origin,
            self.new_key.to_verifier_key(),
            self.from_size
        )
    }

    /// Parses a statement's text (not its signatures).
    ///
    /// # Errors
    /// [`RotationError::Malformed`] naming the rule broken.
    pub fn parse(text: &str) -> Result<KeyRotation, RotationError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(RotationError::Malformed("text does not end in a newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [header, origin, key, size] = lines.as_slice() else {
            return Err(RotationError::Malformed("expected exactly four lines"));
        };
        if *header != HEADER {
            return Err(RotationError::Malformed(
                "first line is not stele-key-rotation/v1",
            ));
        }
        let new_key = NoteVerifier::from_verifier_key(key)
            .map_err(|_| RotationError::Malformed("third line is not a verifier key"))?;
        let digits = !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit());
        if !digits || (size.len() > 1 && size.starts_with('0')) {
            return Err(RotationError::Malformed(
                "fourth line is not a decimal tree size",
            ));
        }
        let from_size = size
            .parse()
            .map_err(|_| RotationError::Malformed("fourth line is not a decimal tree size"))?;
        if origin.is_empty() || new_key.name() != *origin {
            return Err(RotationError::Malformed(
                "the new key's name is not the origin",
            ));
        }
        Ok(KeyRotation {
            origin: (*origin).to_owned(),
            new_key,
            from_size,
        })
    }

    /// Signs the statement with `old` and `new` and returns the whole note.
    ///
    /// # Errors
    /// [`RotationError::Keys`] when `new` is not the statement's new key, either key is not
    /// named after the origin, or the keys are the same.
    pub fn sign(&self, old: &NoteSigner, new: &NoteSigner) -> Result<String, RotationError> {
        if new.verifier() != self.new_key {
            return Err(RotationError::Keys(
                "the new signer is not the key the statement names".to_owned(),
            ));
        }
        check_pair(&self.origin, &old.verifier(), &self.new_key)?;
        let text = self.to_text();
        let mut note = old.sign(&text)?;
        note.push_str(&new.sign_line(&text));
        Ok(note)
    }

    /// Parses a statement note and checks that `old` signed it (and that the new key it
    /// names signed it too). Nothing in it is trusted unless this succeeds.
    ///
    /// # Errors
    /// [`RotationError::Note`] when `old` did not sign it (or a signature by either key
    /// fails), [`RotationError::Malformed`] or [`RotationError::Keys`] for its content.
    pub fn open(note: &[u8], old: &NoteVerifier) -> Result<KeyRotation, RotationError> {
        let note = Note::parse(note)?;
        note.verified_by(old)?;
        let r = KeyRotation::parse(&note.text)?;
        check_pair(&r.origin, old, &r.new_key)?;
        note.verified_by(&r.new_key)?;
        Ok(r)
    }
}

fn check_pair(origin: &str, old: &NoteVerifier, new: &NoteVerifier) -> Result<(), RotationError> {
    if old.name() != origin || new.name() != origin {
        return Err(RotationError::Keys(format!(
            "both keys must be named after the origin {origin:?}"
        )));
    }
    if old == new {
        return Err(RotationError::Keys("the new key is the old key".to_owned()));
    }
    Ok(())
}

/// Follows rotation statements from `trusted`: repeatedly takes the statement the current key
/// signed and moves to the key it names. Statements other keys signed are ignored (they
/// belong to other eras of the log, or are forgeries). Returns the newest key reached and
/// the rotations followed, in order.
///
/// # Errors
/// A statement that claims the current key's signature but does not verify, or whose content
/// is bad; a key met twice; sizes that go backwards; more than [`MAX_CHAIN`] steps.
pub fn follow<'a>(
    trusted: &NoteVerifier,
    statements: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(NoteVerifier, Vec<KeyRotation>), RotationError> {
    let parsed: Vec<Note> = statements
        .into_iter()
        .map(Note::parse)
        .collect::<Result<_, _>>()?;
    let mut current = trusted.clone();
    let mut seen = vec![trusted.clone()];
    let mut followed: Vec<KeyRotation> = Vec::new();
    loop {
        // The statement that rotates *away* from the current key: it carries the current
        // key's signature and names another key (the statement that rotated *to* the current
        // key carries its signature too, as the new key's).
        let signed_by_current = parsed.iter().find(|n| {
            n.signatures
                .iter()
                .any(|s| s.name == current.name() && s.key_id == current.key_id())
                && KeyRotation::parse(&n.text).map_or(true, |r| r.new_key != current)
        });
        let Some(note) = signed_by_current else {
            return Ok((current, followed));
        };
        let r = KeyRotation::open(&note.to_bytes(), &current)?;
        if seen.contains(&r.new_key) {
            return Err(RotationError::Chain(format!(
                "key {} appears twice",
                r.new_key.to_verifier_key()
            )));
        }
        if let Some(prev) = followed.last() {
            if r.from_size < prev.from_size {
                return Err(RotationError::Chain(format!(
                    "rotation to {} starts at size {}, before the previous one ({})",
                    r.new_key.to_verifier_key(),
                    r.from_size,
                    prev.from_size
                )));
            }
        }
        if followed.len() == MAX_CHAIN {
            return Err(RotationError::Chain(format!(
                "more than {MAX_CHAIN} rotations"
            )));
        }
        seen.push(r.new_key.clone());
        current = r.new_key.clone();
        followed.push(r);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const ORIGIN: &str = "example.com/log";

    fn key(seed: u8) -> NoteSigner {
        NoteSigner::from_seed(ORIGIN, [seed; 32]).unwrap()
    }

    fn statement(old: &NoteSigner, new: &NoteSigner, from: u64) -> String {
        KeyRotation {
            origin: ORIGIN.to_owned(),
            new_key: new.verifier(),
            from_size: from,
        }
        .sign(old, new)
        .unwrap()
    }

    #[test]
    fn a_statement_has_the_documented_bytes_and_opens_with_the_old_key_only() {
        let (a, b) = (key(1), key(2));
        let note = statement(&a, &b, 42);
        let text = format!(
            "stele-key-rotation/v1\n{ORIGIN}\n{}\n42\n",
            b.verifier().to_verifier_key()
        );
        assert!(
            note.starts_with(&format!("{text}\n\u{2014} {ORIGIN} ")),
            "{note}"
        );
        assert_eq!(note.matches('\u{2014}').count(), 2);
        let r = KeyRotation::open(note.as_bytes(), &a.verifier()).unwrap();
        assert_eq!((r.new_key, r.from_size), (b.verifier(), 42));
        // The new key alone is not the authority.
        assert!(KeyRotation::open(note.as_bytes(), &b.verifier()).is_err());
        assert!(KeyRotation::open(note.as_bytes(), &key(3).verifier()).is_err());
    }

    #[test]
    fn forged_and_malformed_statements_are_refused() {
        let (a, b, mallory) = (key(1), key(2), key(9));
        // Signed by a key that is not the log's: not the old key's statement.
        let forged = statement(&mallory, &b, 5);
        assert!(matches!(
            KeyRotation::open(forged.as_bytes(), &a.verifier()),
            Err(RotationError::Note(NoteError::NotSignedBy { .. }))
        ));
        // Altered after signing.
        let altered = statement(&a, &b, 5).replacen("\n5\n", "\n6\n", 1);
        assert!(KeyRotation::open(altered.as_bytes(), &a.verifier()).is_err());
        // Without the new key's signature.
        let text = KeyRotation {
            origin: ORIGIN.to_owned(),
            new_key: b.verifier(),
            from_size: 5,
        }
        .to_text();
        let only_old = a.sign(&text).unwrap();
        assert!(KeyRotation::open(only_old.as_bytes(), &a.verifier()).is_err());
        for bad in [
            "stele-key-rotation/v2\nexample.com/log\nk\n1\n",
            "stele-key-rotation/v1\nexample.com/log\nnot a key\n1\n",
            "stele-key-rotation/v1\nexample.com/log\n1\n",
        ] {
            assert!(KeyRotation::parse(bad).is_err(), "{bad:?}");
        }
        let other_origin = NoteSigner::from_seed("other.example/log", [2; 32]).unwrap();
        let text = format!(
            "{HEADER}\n{ORIGIN}\n{}\n01\n",
            b.verifier().to_verifier_key()
        );
        assert!(KeyRotation::parse(&text).is_err());
        let text = format!(
            "{HEADER}\n{ORIGIN}\n{}\n1\n",
            other_origin.verifier().to_verifier_key()
        );
        assert!(KeyRotation::parse(&text).is_err());
        let same = KeyRotation {
            origin: ORIGIN.to_owned(),
            new_key: a.verifier(),
            from_size: 1,
        };
        assert!(matches!(same.sign(&a, &a), Err(RotationError::Keys(_))));
    }

    #[test]
    fn follow_walks_the_chain_from_any_trusted_key_and_ignores_other_signers() {
        let (a, b, c, mallory) = (key(1), key(2), key(3), key(9));
        let ab = statement(&a, &b, 10);
        let bc = statement(&b, &c, 20);
        let forged = statement(&mallory, &key(8), 30);
        let all = [forged.as_bytes(), bc.as_bytes(), ab.as_bytes()];
        let (end, followed) = follow(&a.verifier(), all).unwrap();
        assert_eq!(end, c.verifier());
        assert_eq!(
            followed.iter().map(|r| r.from_size).collect::<Vec<_>>(),
            [10, 20]
        );
        let (end, followed) = follow(&b.verifier(), all).unwrap();
        assert_eq!((end, followed.len()), (c.verifier(), 1));
        let (end, followed) = follow(&c.verifier(), all).unwrap();
        assert_eq!((end, followed.len()), (c.verifier(), 0));
        // A key met twice.
        let ca = statement(&c, &a, 30);
        assert!(matches!(
            follow(&a.verifier(), [ab.as_bytes(), bc.as_bytes(), ca.as_bytes()]),
            Err(RotationError::Chain(_))
        ));
        // Sizes going backwards.
        let bc_early = statement(&b, &c, 5);
        assert!(follow(&a.verifier(), [ab.as_bytes(), bc_early.as_bytes()]).is_err());
        // A statement claiming the trusted key's signature that does not verify.
        let mut tampered = ab.clone().into_bytes();
        let pos = tampered.iter().position(|&x| x == b'\n').unwrap() + 1;
        tampered[pos] ^= 0x20;
        assert!(follow(&a.verifier(), [tampered.as_slice()]).is_err());
    }
}
