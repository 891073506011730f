//! C2SP tlog-witness (c2sp.org/tlog-witness) wire formats, and Stele's small gossip body.
//!
//! - [`AddCheckpointRequest`]: the body of `POST <prefix>/add-checkpoint` — an `old <size>`
//!   line, up to 63 base64 consistency-proof lines, an empty line, then the signed checkpoint.
//! - [`parse_size_body`] / [`size_body`]: the `409 Conflict` body (`text/x.tlog.size`), the
//!   witness's latest cosigned size and a newline.
//! - [`parse_cosignature_lines`]: the `200` body, one or more signature lines.
//! - [`origin_hash`]: the path segment of the monitoring endpoint
//!   `GET <prefix>/<origin hash>/checkpoint` (lowercase hex SHA-256 of the origin).
//! - [`GossipRequest`]: Stele's `POST /gossip` body (not part of C2SP; `docs/witness.md`):
//!   zero or more base64 proof lines, an empty line, then a signed checkpoint.
//!
//! What it leaves out: HTTP itself, and the witness's decisions (the `stele-witness` crate).

use sha2::{Digest as _, Sha256};

use crate::note::{NoteError, NoteSignature};
use crate::Hash;

/// Most consistency-proof lines a client may send (tlog-witness §"add-checkpoint").
pub const MAX_PROOF_LINES: usize = 63;

/// Most proof lines in a [`GossipRequest`]: a full-form proof is one longer than RFC 9162's,
/// and a proof between 64-bit sizes has at most 2·64 hashes.
pub const MAX_GOSSIP_PROOF_LINES: usize = 130;

/// Content type of the `409 Conflict` answer to `add-checkpoint`.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// Why a witness protocol body does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WitnessProtocolError {
    /// The body breaks the format.
    #[error("malformed request body: {0}")]
    Malformed(&'static str),
    /// A signature line of a response is malformed.
    #[error("malformed cosignature line: {0}")]
    SignatureLine(NoteError),
}

/// The body of `POST /add-checkpoint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpointRequest {
    /// Size of the checkpoint the proof starts from (the witness's latest, or 0).
    pub old_size: u64,
    /// RFC 6962 consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, as sent (not yet parsed or checked).
    pub checkpoint: Vec<u8>,
}

impl AddCheckpointRequest {
    /// Parses the body. The checkpoint is returned as bytes; parsing and checking it is the
    /// witness's job (it answers 400, 403 or 404 depending on what is wrong).
    ///
    /// # Errors
    ///
    /// [`WitnessProtocolError::Malformed`]: no `old` line, a size with a sign or leading zeros,
    /// a proof line that is not the base64 of 32 bytes, more than 63 proof lines, no empty line.
    pub fn parse(body: &[u8]) -> Result<Self, WitnessProtocolError> {
        let malformed = WitnessProtocolError::Malformed;
        let (first, rest) = split_line(body).ok_or(malformed("missing old size line"))?;
        let old = first
            .strip_prefix(b"old ")
            .ok_or(malformed("first line is not \"old <size>\""))?;
        let old_size = parse_decimal(old).ok_or(malformed("old size is not a decimal number"))?;
        let (proof, checkpoint) = take_proof(rest, MAX_PROOF_LINES)?;
        Ok(AddCheckpointRequest {
            old_size,
            proof,
            checkpoint: checkpoint.to_vec(),
        })
    }

    /// Encodes the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old_size).into_bytes();
        push_proof(&mut out, &self.proof);
        out.extend_from_slice(&self.checkpoint);
        out
    }
}

/// The body of Stele's `POST /gossip`: a checkpoint someone saw, and optionally a full-form
/// consistency proof ([`crate::merkle::consistency_roots`]) between it and the witness's
/// latest checkpoint of that log, from the smaller size to the larger, in the larger tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipRequest {
    /// Full-form consistency proof (may be empty).
    pub proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub checkpoint: Vec<u8>,
}

impl GossipRequest {
    /// Parses the body: proof lines, an empty line, the note.
    ///
    /// # Errors
    ///
    /// [`WitnessProtocolError::Malformed`].
    pub fn parse(body: &[u8]) -> Result<Self, WitnessProtocolError> {
        let (proof, checkpoint) = take_proof(body, MAX_GOSSIP_PROOF_LINES)?;
        Ok(GossipRequest {
            proof,
            checkpoint: checkpoint.to_vec(),
        })
    }

    /// Encodes the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        push_proof(&mut out, &self.proof);
        out.extend_from_slice(&self.checkpoint);
        out
    }
}

/// The `409 Conflict` body: `<size>\n`.
pub fn size_body(size: u64) -> String {
    format!("{size}\n")
}

/// Parses a `409 Conflict` body, `<decimal size>\n`.
///
/// # Errors
///
/// [`WitnessProtocolError::Malformed`] for anything else.
pub fn parse_size_body(body: &[u8]) -> Result<u64, WitnessProtocolError> {
    body.strip_suffix(b"\n")
        .and_then(parse_decimal)
        .ok_or(WitnessProtocolError::Malformed(
            "size body is not a decimal number and a newline",
        ))
}

/// Parses a `200` answer to `add-checkpoint`: one or more signature lines, each ending in a
/// newline.
///
/// # Errors
///
/// [`WitnessProtocolError::Malformed`] for an empty body or one without a final newline,
/// [`WitnessProtocolError::SignatureLine`] for a malformed line.
pub fn parse_cosignature_lines(body: &[u8]) -> Result<Vec<NoteSignature>, WitnessProtocolError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| WitnessProtocolError::Malformed("response is not UTF-8"))?;
    let lines = text.strip_suffix('\n').filter(|t| !t.is_empty()).ok_or(
        WitnessProtocolError::Malformed("response is not signature lines ending in a newline"),
    )?;
    lines
        .split('\n')
        .map(|l| NoteSignature::parse_line(l).map_err(WitnessProtocolError::SignatureLine))
        .collect()
}

/// The monitoring path segment of a log: lowercase hex SHA-256 of its origin.
pub fn origin_hash(origin: &str) -> String {
    hex::encode(Sha256::digest(origin.as_bytes()))
}

fn push_proof(out: &mut Vec<u8>, proof: &[Hash]) {
    for h in proof {
        out.extend_from_slice(h.to_base64().as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Reads base64 hash lines up to the first empty line; returns them and what follows.
fn take_proof(mut rest: &[u8], max: usize) -> Result<(Vec<Hash>, &[u8]), WitnessProtocolError> {
    let malformed = WitnessProtocolError::Malformed;
    let mut proof = Vec::new();
    loop {
        let (line, tail) = split_line(rest).ok_or(malformed("missing empty line"))?;
        rest = tail;
        if line.is_empty() {
            return Ok((proof, rest));
        }
        if proof.len() == max {
            return Err(malformed("too many consistency proof lines"));
        }
        let hash = std::str::from_utf8(line)
            .ok()
            .and_then(Hash::from_base64)
            .ok_or(malformed("proof line is not the base64 of a 32-byte hash"))?;
        proof.push(hash);
    }
}

/// Splits off the bytes before the first `\n`, and the bytes after it.
fn split_line(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|&c| c == b'\n')?;
    Some((b.get(..i)?, b.get(i.checked_add(1)?..)?))
}

/// ASCII decimal `u64`, no sign, no leading zeros (except `0` itself).
fn parse_decimal(b: &[u8]) -> Option<u64> {
    if b.is_empty()
        || !b.iter().all(u8::is_ascii_digit)
        || (b.len() > 1 && b.first() == Some(&b'0'))
    {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_and_rejects_bad_framing() {
        let req = AddCheckpointRequest {
            old_size: 3,
            proof: vec![Hash([1; 32]), Hash([2; 32])],
            checkpoint: b"o\n5\nAAAA\n\n- sig\n".to_vec(),
        };
        assert_eq!(AddCheckpointRequest::parse(&req.to_bytes()).unwrap(), req);
        for bad in [
            &b"old 03\n\nx"[..],
            b"old +3\n\nx",
            b"old 3\nnot base64\n\nx",
            b"old 3\nAAAA\n\nx",
            b"new 3\n\nx",
            b"old 3\n",
        ] {
            assert!(AddCheckpointRequest::parse(bad).is_err(), "{bad:?}");
        }
        let many = AddCheckpointRequest {
            old_size: 1,
            proof: vec![Hash([0; 32]); 64],
            checkpoint: vec![],
        };
        assert!(AddCheckpointRequest::parse(&many.to_bytes()).is_err());
    }

    #[test]
    fn size_body_and_gossip_round_trip() {
        assert_eq!(parse_size_body(size_body(42).as_bytes()).unwrap(), 42);
        assert!(parse_size_body(b"42").is_err());
        assert!(parse_size_body(b"042\n").is_err());
        let g = GossipRequest {
            proof: vec![Hash([9; 32])],
            checkpoint: b"note".to_vec(),
        };
        assert_eq!(GossipRequest::parse(&g.to_bytes()).unwrap(), g);
        assert_eq!(
            origin_hash("example.com/log"),
            hex::encode(Sha256::digest(b"example.com/log"))
        );
    }
}
