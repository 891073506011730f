//! Chunks: the index of `chunk_size` consecutive log entries. The newest chunk is open (in
//! memory, growing); the others are sealed: written once to a file, memory-mapped, never
//! changed.
//!
//! Sealed chunk file (`index/chunks/NNNNNNNN.idx`), little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `STXC` |
//! | 4..8 | format, 1 |
//! | 8..16 | index of the first entry |
//! | 16..20 | number of entries *n* (= chunk size) |
//! | 20..24 | chunk size |
//! | 24..28 | CRC-32C of bytes 64.. |
//! | 28..32 | zero |
//! | 32..64 | leaf hash of the last entry (ties the chunk to its log) |
//! | 64.. | *n* commit times, i64 ns |
//! | then | 12 posting tables (10 keyword fields, text tokens, non-events), each: term count *t* (u32), *t*+1 term-byte offsets (u32), *t*+1 posting-byte offsets (u32), *t* posting sizes (u32), term bytes (UTF-8, sorted), posting bytes |
//! | then | the chunk's permission changes, JSON array (u32 length first) |
//!
//! A posting of more than chunk size / 16 offsets is a bitmap, otherwise a `u16` list (see
//! [`crate::posting`]).

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use stele_core::Hash;

use crate::error::{IndexError, Result};
use crate::fields::{Extracted, INVALID, TABLES, TEXT};
use crate::posting::{self, Posting};
use crate::replay::ChangeRecord;
use crate::terms::Terms;

const MAGIC: &[u8; 4] = b"STXC";
const FORMAT: u32 = 1;
const HEADER_LEN: usize = 64;

/// Read access to a chunk, open or sealed.
pub(crate) trait ChunkRead {
    /// Log index of the chunk's first entry.
    fn first(&self) -> u64;
    /// Entries in the chunk.
    fn len(&self) -> usize;
    /// Commit time of the entry at `offset` (non-decreasing along the chunk).
    fn time(&self, offset: usize) -> i64;
    /// The posting of `term` in `table`.
    fn posting(&self, table: usize, term: &str) -> Option<Posting<'_>>;
    /// Calls `f` with every term of `table` starting with `prefix`, its posting and size.
    fn visit<'a>(
        &'a self,
        table: usize,
        prefix: &str,
        f: &mut dyn FnMut(&'a str, Posting<'a>, u64),
    );

    /// The first offset whose time is at least `t`.
    fn first_at_or_after(&self, t: i64) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.time(mid) < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// The chunk being filled.
pub(crate) struct OpenChunk {
    first: u64,
    times: Vec<i64>,
    tables: Vec<Terms>,
    changes: Vec<ChangeRecord>,
}

impl OpenChunk {
    /// An empty chunk starting at log index `first`.
    pub fn new(first: u64) -> Self {
        OpenChunk {
            first,
            times: Vec::new(),
            tables: (0..TABLES).map(|_| Terms::default()).collect(),
            changes: Vec::new(),
        }
    }

    /// This chunk emptied to start at `first`, keeping its memory: chunks of one log look
    /// alike, so the next one fills the same tables without growing them or faulting in
    /// fresh pages.
    pub fn recycle(mut self, first: u64) -> Self {
        self.first = first;
        self.times.clear();
        self.tables.iter_mut().for_each(Terms::clear);
        self.changes.clear();
        self
    }

    /// Adds the next entries, in log order (`parts` one after another). Each entry's time is its commit time, or for an
    /// entry that is not an event the previous entry's (times stay non-decreasing so they can
    /// be searched); `prev_time` is the time of the entry before the first.
    ///
    /// The keyword tables and the full-text table are filled on two threads for a large
    /// batch: they are independent, and hash-map inserts are most of the indexing work.
    pub fn extend(&mut self, parts: Vec<Vec<Extracted<'_>>>, prev_time: i64) {
        let base = self.times.len();
        let mut prev = prev_time;
        let xs = || parts.iter().flatten();
        let count = parts.iter().map(Vec::len).sum::<usize>();
        for (i, x) in xs().enumerate() {
            let time = x.time.map_or(prev, |t| t.max(prev));
            self.times.push(time);
            prev = time;
            if x.time.is_none() {
                self.tables[INVALID].add("", (base + i) as u16);
            }
        }
        let (keyword, rest) = self.tables.split_at_mut(TEXT);
        let text = &mut rest[0];
        // Table by table, each as one batch: `Terms::add_all` prefetches ahead within a
        // batch, and one table's lines stay in cache while it is filled.
        let fill_keywords = |keyword: &mut [Terms]| {
            // Every table's batch in one pass over the entries (a pass per table walked the
            // extracted entries ten times, each time a cache miss per entry).
            let mut items: Vec<Vec<(&str, u16)>> =
                keyword.iter().map(|_| Vec::with_capacity(count)).collect();
            for (i, x) in xs().enumerate() {
                for (list, term) in items.iter_mut().zip(&x.terms) {
                    if let Some(term) = term {
                        list.push((term, (base + i) as u16));
                    }
                }
            }
            for (table, items) in keyword.iter_mut().zip(&items) {
                table.add_all(items);
            }
        };
        let fill_text = |text: &mut Terms| {
            let mut items = Vec::with_capacity(xs().map(|x| x.tokens.len()).sum());
            for (i, x) in xs().enumerate() {
                items.extend(x.tokens.iter().map(|t| (&**t, (base + i) as u16)));
            }
            text.add_all(&items);
        };
        if count >= 1_024 {
            std::thread::scope(|s| {
                s.spawn(|| fill_text(text));
                fill_keywords(keyword);
            });
        } else {
            fill_keywords(keyword);
            fill_text(text);
        }
        self.changes.extend(
            parts
                .into_iter()
                .flatten()
                .filter_map(|x| x.change.map(|c| *c)),
        );
    }

    /// The last entry's time.
    pub fn last_time(&self) -> Option<i64> {
        self.times.last().copied()
    }

    /// The sealed-chunk file bytes of this (full) chunk.
    pub fn encode(&self, chunk_size: u32, last_leaf: &Hash) -> Vec<u8> {
        let cs = chunk_size as usize;
        let n = self.times.len();
        // Serializing plain records cannot fail.
        let changes = serde_json::to_vec(&self.changes).unwrap_or_else(|_| b"[]".to_vec());
        let tables_len: usize = self.tables.iter().map(|t| encoded_len(t, cs)).sum();
        let mut out = Vec::with_capacity(HEADER_LEN + n * 8 + tables_len + 4 + changes.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&self.first.to_le_bytes());
        out.extend_from_slice(&(n as u32).to_le_bytes());
        out.extend_from_slice(&chunk_size.to_le_bytes());
        out.extend_from_slice(&[0u8; 8]);
        out.extend_from_slice(&last_leaf.0);
        for t in &self.times {
            out.extend_from_slice(&t.to_le_bytes());
        }
        let (keyword, rest) = self.tables.split_at(TEXT);
        let (text, invalid) = rest.split_at(1);
        // The full-text table is the largest (each event's request id is a term of its own):
        // sort and encode it on a second thread while this one does the keyword tables.
        let text_bytes = if text.iter().map(Terms::len).sum::<usize>() >= 4_096 {
            std::thread::scope(|s| {
                let text = s.spawn(|| {
                    let mut b = Vec::new();
                    text.iter().for_each(|t| encode_table(t, cs, &mut b));
                    b
                });
                keyword.iter().for_each(|t| encode_table(t, cs, &mut out));
                text.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
        } else {
            keyword.iter().for_each(|t| encode_table(t, cs, &mut out));
            let mut b = Vec::new();
            text.iter().for_each(|t| encode_table(t, cs, &mut b));
            b
        };
        out.extend_from_slice(&text_bytes);
        invalid.iter().for_each(|t| encode_table(t, cs, &mut out));
        out.extend_from_slice(&(changes.len() as u32).to_le_bytes());
        out.extend_from_slice(&changes);
        let crc = crc32c::crc32c(&out[HEADER_LEN..]);
        out[24..28].copy_from_slice(&crc.to_le_bytes());
        out
    }
}

/// Bytes of a posting of `count` offsets in a sealed chunk of `chunk_size`.
fn posting_len(count: usize, chunk_size: usize) -> usize {
    if posting::is_dense(count, chunk_size) {
        chunk_size / 8
    } else {
        count * 2
    }
}

/// Bytes [`encode_table`] writes for `terms`.
fn encoded_len(terms: &Terms, chunk_size: usize) -> usize {
    let t = terms.len();
    let postings: usize = terms
        .iter()
        .map(|(_, p)| posting_len(p.len(), chunk_size))
        .sum();
    4 + (t + 1) * 8 + t * 4 + terms.text_len() + postings
}

/// Appends one posting table: term count, term-byte offsets, posting-byte offsets, posting
/// sizes, term bytes (sorted), posting bytes.
fn encode_table(terms: &Terms, chunk_size: usize, out: &mut Vec<u8>) {
    let sorted = terms.sorted();
    out.reserve(encoded_len(terms, chunk_size));
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    let mut at = 0u32;
    out.extend_from_slice(&at.to_le_bytes());
    for (term, _) in &sorted {
        at += term.len() as u32;
        out.extend_from_slice(&at.to_le_bytes());
    }
    let mut at = 0u32;
    out.extend_from_slice(&at.to_le_bytes());
    for (_, offsets) in &sorted {
        at += posting_len(offsets.len(), chunk_size) as u32;
        out.extend_from_slice(&at.to_le_bytes());
    }
    for (_, offsets) in &sorted {
        out.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
    }
    for (term, _) in &sorted {
        out.extend_from_slice(term.as_bytes());
    }
    for (_, offsets) in &sorted {
        posting::encode(offsets, chunk_size, out);
    }
}

impl ChunkRead for OpenChunk {
    fn first(&self) -> u64 {
        self.first
    }

    fn len(&self) -> usize {
        self.times.len()
    }

    fn time(&self, offset: usize) -> i64 {
        self.times.get(offset).copied().unwrap_or(i64::MAX)
    }

    fn posting(&self, table: usize, term: &str) -> Option<Posting<'_>> {
        self.tables.get(table)?.get(term).map(Posting::Mem)
    }

    fn visit<'a>(
        &'a self,
        table: usize,
        prefix: &str,
        f: &mut dyn FnMut(&'a str, Posting<'a>, u64),
    ) {
        if let Some(t) = self.tables.get(table) {
            for (term, v) in t.iter() {
                if term.starts_with(prefix) {
                    f(term, Posting::Mem(v), v.len() as u64);
                }
            }
        }
    }
}

/// The bytes of a sealed chunk: mapped from its file, or held in memory when the file could
/// not be written.
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// Where one posting table lies within the chunk bytes.
#[derive(Clone, Debug, Default)]
struct Table {
    terms: usize,
    term_offs: usize,
    post_offs: usize,
    sizes: usize,
    term_bytes: usize,
    post_bytes: usize,
}

/// A sealed, immutable chunk.
pub(crate) struct SealedChunk {
    bytes: Bytes,
    first: u64,
    len: usize,
    chunk_size: usize,
    tables: Vec<Table>,
    changes: Vec<ChangeRecord>,
}

/// Reads a u32 at `at`.
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut w = [0u8; 8];
    w.copy_from_slice(s);
    Some(u64::from_le_bytes(w))
}

impl SealedChunk {
    /// Maps and checks the chunk file at `path`, which must hold chunk `first` of `chunk_size`.
    ///
    /// # Errors
    /// `Corrupt` when the file fails a check (the caller rebuilds it); I/O errors.
    pub fn open(path: &Path, first: u64, chunk_size: u32) -> Result<(SealedChunk, Hash)> {
        let file = File::open(path).map_err(IndexError::io("open", path))?;
        // SAFETY: sealed chunk files are written once (to a temporary name, then renamed) and
        // never modified while mapped; the index directory is owned by this process's index.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(IndexError::io("map", path))?;
        Self::parse(Bytes::Mapped(map), first, chunk_size).map_err(|detail| IndexError::Corrupt {
            file: path.to_path_buf(),
            detail,
        })
    }

    /// A sealed chunk held in memory (when its file could not be written).
    pub fn in_memory(bytes: Vec<u8>, first: u64, chunk_size: u32) -> Result<SealedChunk> {
        Self::parse(Bytes::Owned(bytes), first, chunk_size)
            .map(|(c, _)| c)
            .map_err(|detail| IndexError::Corrupt {
                file: PathBuf::from("<memory>"),
                detail,
            })
    }

    fn parse(
        bytes: Bytes,
        want_first: u64,
        want_size: u32,
    ) -> std::result::Result<(SealedChunk, Hash), String> {
        let b = &*bytes;
        if b.len() < HEADER_LEN || &b[..4] != MAGIC {
            return Err("not a chunk file (bad magic or too short)".into());
        }
        let short = || "truncated".to_string();
        let format = u32_at(b, 4).ok_or_else(short)?;
        if format != FORMAT {
            return Err(format!("unknown chunk format {format}"));
        }
        let first = u64_at(b, 8).ok_or_else(short)?;
        let len = u32_at(b, 16).ok_or_else(short)? as usize;
        let chunk_size = u32_at(b, 20).ok_or_else(short)?;
        let crc = u32_at(b, 24).ok_or_else(short)?;
        if first != want_first || chunk_size != want_size || len != chunk_size as usize {
            return Err(format!(
                "holds {len} entries from {first} in chunks of {chunk_size}; expected {want_size} from {want_first}"
            ));
        }
        if crc32c::crc32c(&b[HEADER_LEN..]) != crc {
            return Err("checksum mismatch".into());
        }
        let mut leaf = [0u8; 32];
        leaf.copy_from_slice(&b[32..64]);
        let mut at = HEADER_LEN + len * 8;
        if at > b.len() {
            return Err(short());
        }
        let mut tables = Vec::with_capacity(TABLES);
        for _ in 0..TABLES {
            let terms = u32_at(b, at).ok_or_else(short)? as usize;
            let term_offs = at + 4;
            let post_offs = term_offs + (terms + 1) * 4;
            let sizes = post_offs + (terms + 1) * 4;
            let term_bytes = sizes + terms * 4;
            let term_len = u32_at(b, post_offs - 4).ok_or_else(short)? as usize;
            let post_bytes = term_bytes + term_len;
            let post_len = u32_at(b, sizes - 4).ok_or_else(short)? as usize;
            let end = post_bytes + post_len;
            if end > b.len() {
                return Err(short());
            }
            let t = Table {
                terms,
                term_offs,
                post_offs,
                sizes,
                term_bytes,
                post_bytes,
            };
            // Every offset ascends and every posting's byte length fits its size and kind,
            // so readers never index out of range.
            for i in 0..terms {
                let (ts, te) = (offset(b, term_offs, i), offset(b, term_offs, i + 1));
                let (ps, pe) = (offset(b, post_offs, i), offset(b, post_offs, i + 1));
                let size = u32_at(b, sizes + i * 4).unwrap_or(0) as usize;
                let want = if posting::is_dense(size, len) {
                    len / 8
                } else {
                    size * 2
                };
                if ts > te || te > term_len || ps > pe || pe > post_len || pe - ps != want {
                    return Err(format!("posting table entry {i} is inconsistent"));
                }
                if std::str::from_utf8(&b[term_bytes + ts..term_bytes + te]).is_err() {
                    return Err(format!("term {i} is not UTF-8"));
                }
            }
            tables.push(t);
            at = end;
        }
        let changes_len = u32_at(b, at).ok_or_else(short)? as usize;
        let changes = b
            .get(at + 4..at + 4 + changes_len)
            .ok_or_else(short)
            .and_then(|c| serde_json::from_slice(c).map_err(|e| format!("changes: {e}")))?;
        Ok((
            SealedChunk {
                bytes,
                first,
                len,
                chunk_size: chunk_size as usize,
                tables,
                changes,
            },
            Hash(leaf),
        ))
    }

    /// The chunk's permission changes.
    pub fn changes(&self) -> &[ChangeRecord] {
        &self.changes
    }

    /// Size of the chunk's data in bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    fn term<'a>(&'a self, t: &Table, i: usize) -> &'a str {
        let b = &*self.bytes;
        let r =
            t.term_bytes + offset(b, t.term_offs, i)..t.term_bytes + offset(b, t.term_offs, i + 1);
        b.get(r)
            .and_then(|s| std::str::from_utf8(s).ok())
            .unwrap_or("")
    }

    fn posting_at(&self, t: &Table, i: usize) -> (Posting<'_>, u64) {
        let b = &*self.bytes;
        let r: Range<usize> =
            t.post_bytes + offset(b, t.post_offs, i)..t.post_bytes + offset(b, t.post_offs, i + 1);
        let size = u32_at(b, t.sizes + i * 4).unwrap_or(0) as usize;
        let bytes = b.get(r).unwrap_or(&[]);
        let p = if posting::is_dense(size, self.chunk_size) {
            Posting::Bitmap(bytes)
        } else {
            Posting::Le(bytes)
        };
        (p, size as u64)
    }

    /// The first term index of `t` not less than `key`.
    fn lower_bound(&self, t: &Table, key: &str) -> usize {
        let (mut lo, mut hi) = (0, t.terms);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.term(t, mid) < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

fn offset(b: &[u8], base: usize, i: usize) -> usize {
    u32_at(b, base + i * 4).unwrap_or(0) as usize
}

impl ChunkRead for SealedChunk {
    fn first(&self) -> u64 {
        self.first
    }

    fn len(&self) -> usize {
        self.len
    }

    fn time(&self, offset: usize) -> i64 {
        u64_at(&self.bytes, HEADER_LEN + offset * 8).map_or(i64::MAX, |v| v as i64)
    }

    fn posting(&self, table: usize, term: &str) -> Option<Posting<'_>> {
        let t = self.tables.get(table)?;
        let i = self.lower_bound(t, term);
        (i < t.terms && self.term(t, i) == term).then(|| self.posting_at(t, i).0)
    }

    fn visit<'a>(
        &'a self,
        table: usize,
        prefix: &str,
        f: &mut dyn FnMut(&'a str, Posting<'a>, u64),
    ) {
        let Some(t) = self.tables.get(table) else {
            return;
        };
        let mut i = self.lower_bound(t, prefix);
        while i < t.terms {
            let term = self.term(t, i);
            if !term.starts_with(prefix) {
                break;
            }
            let (p, n) = self.posting_at(t, i);
            f(term, p, n);
            i += 1;
        }
    }
}

/// Path of sealed chunk `n` in `dir`.
pub(crate) fn chunk_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:08}.idx"))
}
