//! An independent reader of entry segments (`log/entries/NNNNNNNN.seg`), written from the
//! format description, so tests can tell which entries a byte of a segment belongs to.
//!
//! A segment is a sequence of frames; each frame is a 32-byte header (magic `STF1`,
//! CRC-32C u32, first index u64, commit time i64 ns, entry count u32, payload length u32, all
//! big-endian) and a payload of uint16-length-prefixed entries.

/// Frame header length.
pub const HEADER_LEN: usize = 32;

/// One frame of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Byte offset of the header in the segment.
    pub offset: usize,
    /// Index of the first entry.
    pub first_index: u64,
    /// Commit time, ns since the epoch.
    pub time_ns: i64,
    /// Number of entries.
    pub count: u32,
    /// Payload length.
    pub payload_len: u32,
    /// (byte offset in the segment, length) of each entry's bytes.
    pub entries: Vec<(usize, usize)>,
}

impl Frame {
    /// Total length, header included.
    pub fn len(&self) -> usize {
        HEADER_LEN + usize::try_from(self.payload_len).expect("u32 fits usize")
    }

    /// Whether the frame holds no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// One past the last byte.
    pub fn end(&self) -> usize {
        self.offset + self.len()
    }

    /// The entry indexes the frame holds.
    pub fn indexes(&self) -> std::ops::Range<u64> {
        self.first_index..self.first_index + u64::from(self.count)
    }
}

fn be(bytes: &[u8], at: usize, n: usize) -> u64 {
    bytes[at..at + n]
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// Parses every frame of a whole, undamaged segment.
///
/// # Panics
///
/// On anything that is not a well-formed sequence of frames (the tests parse only segments
/// they expect to be intact).
pub fn parse_segment(bytes: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        assert!(bytes.len() - at >= HEADER_LEN, "short header at byte {at}");
        assert_eq!(&bytes[at..at + 4], b"STF1", "bad magic at byte {at}");
        let first_index = be(bytes, at + 8, 8);
        let time_ns = i64::from_be_bytes(bytes[at + 16..at + 24].try_into().expect("8 bytes"));
        let count = u32::try_from(be(bytes, at + 24, 4)).expect("u32");
        let payload_len = u32::try_from(be(bytes, at + 28, 4)).expect("u32");
        let start = at + HEADER_LEN;
        let end = start + usize::try_from(payload_len).expect("usize");
        assert!(end <= bytes.len(), "frame at byte {at} runs past the end");
        let mut entries = Vec::new();
        let mut p = start;
        while p < end {
            let len = usize::try_from(be(bytes, p, 2)).expect("usize");
            entries.push((p + 2, len));
            p += 2 + len;
        }
        assert_eq!(p, end, "ragged payload in frame at byte {at}");
        assert_eq!(
            entries.len(),
            count as usize,
            "entry count of frame at byte {at}"
        );
        frames.push(Frame {
            offset: at,
            first_index,
            time_ns,
            count,
            payload_len,
            entries,
        });
        at = end;
    }
    frames
}

/// Splits an entry bundle (tlog-tiles: uint16-length-prefixed entries) into entries.
///
/// # Panics
///
/// On a ragged bundle.
pub fn parse_bundle(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut p = 0usize;
    while p < bytes.len() {
        assert!(p + 2 <= bytes.len(), "dangling length in bundle");
        let len = usize::try_from(be(bytes, p, 2)).expect("usize");
        assert!(p + 2 + len <= bytes.len(), "entry runs past the bundle");
        out.push(&bytes[p + 2..p + 2 + len]);
        p += 2 + len;
    }
    out
}
