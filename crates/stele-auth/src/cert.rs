//! Client-certificate credentials (mTLS): a principal bound to one certificate by the
//! SHA-256 fingerprint of its DER encoding.
//!
//! The fingerprint is what `openssl x509 -noout -fingerprint -sha256` prints (without the
//! colons, lowercase). Binding to the fingerprint rather than to a subject name ties the
//! principal to one key pair: a renewed certificate is a new credential, registered anew,
//! and a CA that issues another certificate with the same subject gains nothing. The TLS
//! layer (`stele-server`) has already checked that the certificate chains to the configured
//! client CA before a fingerprint is looked up here.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::AuthError;

/// SHA-256 of a certificate's DER encoding, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CertFingerprint([u8; 32]);

impl CertFingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> CertFingerprint {
        CertFingerprint(Sha256::digest(der).into())
    }

    /// Parses 64 hex digits, optionally in pairs separated by colons (OpenSSL's form) and
    /// optionally prefixed `sha256:`.
    ///
    /// # Errors
    /// [`AuthError::InvalidSpec`] for anything else.
    pub fn parse(s: &str) -> Result<CertFingerprint, AuthError> {
        let s = s.trim();
        let s = s.strip_prefix("sha256:").unwrap_or(s);
        let digits: String = s.chars().filter(|c| *c != ':').collect();
        let mut out = [0u8; 32];
        hex::decode_to_slice(&digits, &mut out).map_err(|_| {
            AuthError::InvalidSpec(format!(
                "{:?} is not a SHA-256 certificate fingerprint (64 hex digits)",
                s.chars().take(100).collect::<String>()
            ))
        })?;
        Ok(CertFingerprint(out))
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({})", self.to_hex())
    }
}

impl Serialize for CertFingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for CertFingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CertFingerprint::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_openssl_and_plain_form_and_round_trip() {
        let fp = CertFingerprint::of_der(b"not really a certificate");
        let hex = fp.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(CertFingerprint::parse(&hex).unwrap(), fp);
        let openssl: Vec<String> = hex
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8(c.to_vec()).unwrap().to_uppercase())
            .collect();
        assert_eq!(CertFingerprint::parse(&openssl.join(":")).unwrap(), fp);
        assert_eq!(
            CertFingerprint::parse(&format!("sha256:{hex}")).unwrap(),
            fp
        );
        let not_hex = format!("{}zz", &hex[..62]);
        for bad in ["", "abc", &hex[..62], &format!("{hex}00"), &not_hex] {
            assert!(CertFingerprint::parse(bad).is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(serde_json::from_str::<CertFingerprint>(&json).unwrap(), fp);
    }
}
