//! Frames: the unit of durable writing in an entry segment.
//!
//! A group commit writes one or more frames with a single `write` and one `fdatasync`. Each
//! frame carries a run of consecutive entries that never crosses an entry-bundle boundary (256
//! entries), so the payloads of a bundle's frames, concatenated, are exactly its C2SP
//! tlog-tiles entry bundle.
//!
//! Layout (all integers big-endian), 32-byte header then payload:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `STF1` |
//! | 4..8 | CRC-32C of bytes 8..32 and the payload |
//! | 8..16 | index of the first entry |
//! | 16..24 | commit time, ns since the Unix epoch (shared by every entry of the frame) |
//! | 24..28 | number of entries |
//! | 28..32 | payload length in bytes |
//! | 32.. | payload: entries, each a uint16 length then its bytes |
//!
//! The CRC is what lets recovery tell a torn, never-acknowledged tail from good data.

/// Frame magic.
pub const MAGIC: [u8; 4] = *b"STF1";
/// Header length in bytes.
pub const HEADER_LEN: usize = 32;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Index of the first entry in the frame.
    pub first_index: u64,
    /// Commit time of the frame, ns since the Unix epoch.
    pub time_ns: i64,
    /// Entries in the frame.
    pub count: u32,
    /// Payload bytes after the header.
    pub payload_len: u32,
    /// The CRC stored in the header.
    pub crc: u32,
}

impl FrameHeader {
    /// Total length of the frame, header included.
    pub fn frame_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.payload_len)
    }
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than a header or than the header's payload length.
    #[error("truncated frame: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed.
        need: u64,
        /// Bytes available.
        have: u64,
    },
    /// The magic is wrong.
    #[error("bad frame magic")]
    BadMagic,
    /// The CRC does not match.
    #[error("frame checksum mismatch")]
    BadChecksum,
    /// The payload does not hold exactly `count` length-prefixed entries.
    #[error("frame payload malformed: {0}")]
    BadPayload(String),
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}
fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// Parses a header from the first 32 bytes of `buf` (magic checked, CRC not yet).
///
/// # Errors
/// `Truncated` or `BadMagic`.
pub fn parse_header(buf: &[u8]) -> Result<FrameHeader, FrameError> {
    if buf.len() < HEADER_LEN {
        return Err(FrameError::Truncated {
            need: HEADER_LEN as u64,
            have: buf.len() as u64,
        });
    }
    if buf[..4] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    Ok(FrameHeader {
        crc: be_u32(buf, 4),
        first_index: be_u64(buf, 8),
        time_ns: be_u64(buf, 16) as i64,
        count: be_u32(buf, 24),
        payload_len: be_u32(buf, 28),
    })
}

/// Checks a whole frame (`buf` starts at the header and holds at least the frame) and returns
/// its header and payload.
///
/// # Errors
/// Any [`FrameError`].
pub fn check_frame(buf: &[u8]) -> Result<(FrameHeader, &[u8]), FrameError> {
    let h = parse_header(buf)?;
    let end = h.frame_len();
    if (buf.len() as u64) < end {
        return Err(FrameError::Truncated {
            need: end,
            have: buf.len() as u64,
        });
    }
    let end = end as usize;
    let mut crc = crc32c::crc32c(&buf[8..HEADER_LEN]);
    crc = crc32c::crc32c_append(crc, &buf[HEADER_LEN..end]);
    if crc != h.crc {
        return Err(FrameError::BadChecksum);
    }
    let payload = &buf[HEADER_LEN..end];
    let n = count_entries(payload)?;
    if n != u64::from(h.count) {
        return Err(FrameError::BadPayload(format!(
            "header says {} entries, payload holds {n}",
            h.count
        )));
    }
    Ok((h, payload))
}

/// Counts the length-prefixed entries in a payload, rejecting a ragged end.
fn count_entries(payload: &[u8]) -> Result<u64, FrameError> {
    let mut at = 0usize;
    let mut n = 0u64;
    while at < payload.len() {
        if at + 2 > payload.len() {
            return Err(FrameError::BadPayload("dangling length byte".into()));
        }
        let len = usize::from(u16::from_be_bytes([payload[at], payload[at + 1]]));
        at += 2 + len;
        if at > payload.len() {
            return Err(FrameError::BadPayload("entry runs past the payload".into()));
        }
        n += 1;
    }
    Ok(n)
}

/// Iterates the entries of a checked payload.
pub fn entries(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at + 2 > payload.len() {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([payload[at], payload[at + 1]]));
        let e = payload.get(at + 2..at + 2 + len)?;
        at += 2 + len;
        Some(e)
    })
}

/// Appends a frame holding `entries` to `out`.
///
/// The caller guarantees each entry is at most 65535 bytes and the run stays inside one bundle.
pub fn encode<'a>(
    out: &mut Vec<u8>,
    first_index: u64,
    time_ns: i64,
    entries: impl Iterator<Item = &'a [u8]>,
) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&first_index.to_be_bytes());
    out.extend_from_slice(&time_ns.to_be_bytes());
    out.extend_from_slice(&[0u8; 8]);
    let mut count = 0u32;
    for e in entries {
        debug_assert!(e.len() <= usize::from(u16::MAX));
        out.extend_from_slice(&(e.len() as u16).to_be_bytes());
        out.extend_from_slice(e);
        count += 1;
    }
    let payload_len = (out.len() - start - HEADER_LEN) as u32;
    out[start + 24..start + 28].copy_from_slice(&count.to_be_bytes());
    out[start + 28..start + 32].copy_from_slice(&payload_len.to_be_bytes());
    let mut crc = crc32c::crc32c(&out[start + 8..start + HEADER_LEN]);
    crc = crc32c::crc32c_append(crc, &out[start + HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flipped_bit_fails() {
        let mut buf = Vec::new();
        let es: Vec<&[u8]> = vec![b"alpha", b"", b"gamma-gamma"];
        encode(&mut buf, 42, 7, es.iter().copied());
        let (h, payload) = check_frame(&buf).unwrap();
        assert_eq!((h.first_index, h.time_ns, h.count), (42, 7, 3));
        assert_eq!(entries(payload).collect::<Vec<_>>(), es);
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    check_frame(&bad).is_err(),
                    "flip at byte {byte} bit {bit} accepted"
                );
            }
        }
        for cut in 0..buf.len() {
            assert!(check_frame(&buf[..cut]).is_err());
        }
    }
}
