//! Bearer tokens: `stele_<id>_<secret>`.
//!
//! - `<id>`: 16 lowercase hex digits (8 random bytes), public. It names the token in
//!   `stele token list` and `revoke`, in the meta-log and in error messages, and lets the
//!   server find the one record to compare against.
//! - `<secret>`: 32 random bytes from the operating system, base64url without padding
//!   (43 characters).
//!
//! Only SHA-256 of the whole token string is stored. With 256 random bits a salted or slow
//! hash would add nothing: the digest cannot be inverted or guessed, and a plain hash keeps
//! the check to a microsecond on every request. Digests are compared in constant time
//! ([`subtle`]); the id lookup before it leaks only the public id.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AuthError;

/// Every token starts with this.
pub const PREFIX: &str = "stele_";
/// Hex digits of a token id.
pub const ID_HEX_LEN: usize = 16;
/// Random bytes of a token secret.
pub const SECRET_BYTES: usize = 32;
/// Characters of the base64url-encoded secret.
const SECRET_CHARS: usize = 43;
/// Length of a whole token string.
pub const TOKEN_LEN: usize = PREFIX.len() + ID_HEX_LEN + 1 + SECRET_CHARS;

/// The public id of a token: 16 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(String);

impl TokenId {
    /// Parses an id (hex digits in either case; kept lowercase).
    ///
    /// # Errors
    /// [`AuthError::BadId`] unless it is exactly 16 hex digits.
    pub fn parse(s: &str) -> Result<TokenId, AuthError> {
        if s.len() == ID_HEX_LEN && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(TokenId(s.to_ascii_lowercase()))
        } else {
            Err(AuthError::BadId(s.chars().take(64).collect()))
        }
    }

    /// A fresh random id.
    ///
    /// # Errors
    /// [`AuthError::Random`] if the system RNG fails.
    pub fn random() -> Result<TokenId, AuthError> {
        let mut bytes = [0u8; ID_HEX_LEN / 2];
        getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
        Ok(TokenId(hex::encode(bytes)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({})", self.0)
    }
}

impl Serialize for TokenId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TokenId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TokenId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A whole token, secret included. Its `Debug` and `Display` show only the id, so it cannot
/// end up in a log line by accident; [`Token::expose`] gives the secret text.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    text: String,
    id: TokenId,
}

impl Token {
    /// A new token with a fresh random id and secret.
    ///
    /// # Errors
    /// [`AuthError::Random`] if the system RNG fails.
    pub fn generate() -> Result<Token, AuthError> {
        let id = TokenId::random()?;
        Token::generate_with_id(id)
    }

    /// A new token with the given id and a fresh secret.
    ///
    /// # Errors
    /// [`AuthError::Random`] if the system RNG fails.
    pub fn generate_with_id(id: TokenId) -> Result<Token, AuthError> {
        let mut secret = [0u8; SECRET_BYTES];
        getrandom::fill(&mut secret).map_err(|e| AuthError::Random(e.to_string()))?;
        let text = format!("{PREFIX}{id}_{}", URL_SAFE_NO_PAD.encode(secret));
        Ok(Token { text, id })
    }

    /// Reads a presented token: `None` unless it has the exact shape of a Stele token (the
    /// prefix, 16 hex digits, `_`, 43 base64url characters decoding to 32 bytes).
    pub fn parse(text: &str) -> Option<Token> {
        let rest = text.strip_prefix(PREFIX)?;
        if text.len() != TOKEN_LEN {
            return None;
        }
        let (raw_id, rest) = rest.split_at_checked(ID_HEX_LEN)?;
        let secret = rest.strip_prefix('_')?;
        let id = TokenId::parse(raw_id).ok()?;
        // The id must be written as generated (lowercase), or two spellings would name one token.
        if id.as_str() != raw_id {
            return None;
        }
        let decoded = URL_SAFE_NO_PAD.decode(secret).ok()?;
        (decoded.len() == SECRET_BYTES).then(|| Token {
            text: text.to_owned(),
            id,
        })
    }

    /// The public id.
    pub fn id(&self) -> &TokenId {
        &self.id
    }

    /// The token text, secret included: for showing once to its owner and for sending as
    /// `Authorization: Bearer`. Never log it.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The digest stored in place of the token.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest(Sha256::digest(self.text.as_bytes()).into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({PREFIX}{}_…)", self.id)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}_…", self.id)
    }
}

/// SHA-256 of a token's text: what the token file stores. Serialized as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// Whether `token` hashes to this digest, compared in constant time.
    pub fn matches(&self, token: &Token) -> bool {
        let other = token.digest();
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({})", hex::encode(self.0))
    }
}

impl Serialize for TokenDigest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for TokenDigest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out)
            .map_err(|_| serde::de::Error::custom("a SHA-256 digest is 64 hex digits"))?;
        Ok(TokenDigest(out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back_and_match_only_their_digest() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_eq!(a.expose().len(), TOKEN_LEN);
        assert!(a.expose().starts_with("stele_"));
        assert_ne!(a.id(), b.id());
        let parsed = Token::parse(a.expose()).unwrap();
        assert_eq!(&parsed, &a);
        assert!(a.digest().matches(&parsed));
        assert!(!a.digest().matches(&b));
        // Same id, other secret: no match.
        let forged = Token::generate_with_id(a.id().clone()).unwrap();
        assert!(!a.digest().matches(&forged));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = Token::generate().unwrap();
        let text = good.expose();
        let upper_id = format!("stele_{}{}", text[6..22].to_ascii_uppercase(), &text[22..]);
        let cases = [
            String::new(),
            "stele_".to_owned(),
            text[..text.len() - 1].to_owned(),
            format!("{text}A"),
            text.replacen("stele_", "steel_", 1),
            text.replacen('_', "-", 2),
            format!("{}!{}", &text[..30], &text[31..]),
            upper_id,
        ];
        for bad in cases {
            if bad == text {
                continue;
            }
            assert!(Token::parse(&bad).is_none(), "{bad:?} accepted");
        }
    }

    #[test]
    fn formatting_never_shows_the_secret() {
        let t = Token::generate().unwrap();
        let secret = &t.expose()[PREFIX.len() + ID_HEX_LEN + 1..];
        for shown in [format!("{t}"), format!("{t:?}")] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains(t.id().as_str()), "{shown}");
        }
    }

    #[test]
    fn ids_are_16_hex_digits() {
        assert!(TokenId::parse("0123456789abcdef").is_ok());
        assert_eq!(
            TokenId::parse("0123456789ABCDEF").unwrap().as_str(),
            "0123456789abcdef"
        );
        for bad in ["", "0123", "0123456789abcdeg", "0123456789abcdef0"] {
            assert!(TokenId::parse(bad).is_err(), "{bad}");
        }
    }
}
