//! C2SP tlog-tiles (height 8): tile coordinates, resource paths and entry bundles.
//!
//! Paths are `tile/<L>/<N>[.p/<W>]` for hash tiles and `tile/entries/<N>[.p/<W>]` for entry
//! bundles, without the log's URL prefix or a leading slash. Parsing accepts exactly the paths
//! [`TilePath::to_path`] produces, so every tile has one name (a cache or file store keyed by path
//! cannot hold two copies of a tile).
//!
//! A hash tile at tile level `L` holds nodes of tree level `8·L`: tile `N` holds nodes
//! `[N·256, N·256 + W)` of that level ([`tile_hashes_for`]).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Tree levels per tile.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile, entries in a full bundle.
pub const TILE_WIDTH: u64 = 256;
/// Longest entry an entry bundle can carry (its length prefix is a `u16`).
pub const MAX_ENTRY_LEN: usize = 65535;
/// Highest tile level a path may name.
pub const MAX_TILE_LEVEL: u8 = 63;

/// What a tile holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileKind {
    /// Merkle tree hashes at tile level `level` (tree level `8·level`).
    Hash {
        /// Tile level, 0..=63.
        level: u8,
    },
    /// An entry bundle (the entries hashed into level-0 tiles).
    Entries,
}

/// A tile or entry bundle, named as in a tlog-tiles path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TilePath {
    /// Hash tile or entry bundle.
    pub kind: TileKind,
    /// Tile index `N` within its level.
    pub index: u64,
    /// `Some(W)` with `W` in 1..=255 for a partial tile, `None` for a full one.
    pub width: Option<u16>,
}

/// Why a string is not a canonical tile path.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TilePathError {
    /// The path does not start with `tile/`.
    #[error("tile path must start with \"tile/\"")]
    MissingPrefix,
    /// `<L>` is not a decimal 0..=63 without leading zeros (nor `entries`).
    #[error("tile level {0:?} is not a decimal integer 0..=63 without leading zeros")]
    BadLevel(String),
    /// `<N>` is missing or an element is not `x` + 3 digits (all but last) or 3 digits (last).
    #[error("tile index element {0:?} is not a 3-digit group")]
    BadIndexElement(String),
    /// `<N>` has a leading `x000` group, which [`encode_n`] never writes.
    #[error("tile index has a leading zero group")]
    LeadingZeroGroup,
    /// `<N>` does not fit in 64 bits.
    #[error("tile index does not fit in 64 bits")]
    IndexOverflow,
    /// `<W>` is not a decimal 1..=255 without leading zeros.
    #[error("partial tile width {0:?} is not a decimal integer 1..=255 without leading zeros")]
    BadWidth(String),
}

/// Errors of entry bundles and tile coordinate arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TileError {
    /// An entry longer than [`MAX_ENTRY_LEN`] cannot be length-prefixed.
    #[error("entry {index} is {len} bytes; bundle entries are at most 65535 bytes")]
    EntryTooLong {
        /// Position of the entry in the bundle.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// A bundle holds at most [`TILE_WIDTH`] entries.
    #[error("{count} entries do not fit in one bundle of 256")]
    TooManyEntries {
        /// Entries given (decoding: the count at which the limit was passed).
        count: usize,
    },
    /// The bundle ends inside a length prefix or an entry.
    #[error("entry bundle truncated at byte {offset}")]
    Truncated {
        /// Offset of the entry (its length prefix) that is cut short.
        offset: usize,
    },
    /// The tile's width is not 1..=256, or its coordinates exceed 64-bit node indices.
    #[error("tile coordinates out of range")]
    OutOfRange,
}

impl TilePath {
    /// A checked tile path.
    ///
    /// # Errors
    /// [`TilePathError::BadLevel`] for a hash tile level above 63, [`TilePathError::BadWidth`]
    /// for a width outside 1..=255.
    pub fn new(kind: TileKind, index: u64, width: Option<u16>) -> Result<Self, TilePathError> {
        if let TileKind::Hash { level } = kind {
            if level > MAX_TILE_LEVEL {
                return Err(TilePathError::BadLevel(level.to_string()));
            }
        }
        if let Some(w) = width {
            if !(1..=255).contains(&w) {
                return Err(TilePathError::BadWidth(w.to_string()));
            }
        }
        Ok(TilePath { kind, index, width })
    }

    /// Number of hashes (or entries) the tile holds: its width, 256 when full.
    pub fn count(&self) -> u64 {
        self.width.map_or(TILE_WIDTH, u64::from)
    }

    /// Parses a canonical path such as `tile/0/x001/234.p/17` or `tile/entries/000`.
    ///
    /// # Errors
    /// A [`TilePathError`] naming the first non-canonical part.
    pub fn parse(path: &str) -> Result<TilePath, TilePathError> {
        let rest = path
            .strip_prefix("tile/")
            .ok_or(TilePathError::MissingPrefix)?;
        let mut parts = rest.split('/');
        // `split` yields at least one (possibly empty) element.
        let kind_elem = parts.next().unwrap_or_default();
        let mut elems: Vec<&str> = parts.collect();
        let kind = if kind_elem == "entries" {
            TileKind::Entries
        } else {
            let level = parse_canonical(kind_elem, 2)
                .and_then(|l| u8::try_from(l).ok())
                .filter(|&l| l <= MAX_TILE_LEVEL)
                .ok_or_else(|| TilePathError::BadLevel(kind_elem.to_owned()))?;
            TileKind::Hash { level }
        };
        // A partial tile ends in ".p/<W>": the ".p" rides on the last index element.
        let mut width = None;
        if let [.., last_n, w] = elems.as_mut_slice() {
            if let Some(stripped) = last_n.strip_suffix(".p") {
                let value = parse_canonical(w, 3)
                    .and_then(|v| u16::try_from(v).ok())
                    .filter(|v| (1..=255).contains(v))
                    .ok_or_else(|| TilePathError::BadWidth((*w).to_owned()))?;
                width = Some(value);
                *last_n = stripped;
                elems.pop();
            }
        }
        let index = parse_n(&elems)?;
        Ok(TilePath { kind, index, width })
    }

    /// The path, e.g. `tile/0/x001/234.p/17` (no leading slash).
    pub fn to_path(&self) -> String {
        let kind = match self.kind {
            TileKind::Hash { level } => level.to_string(),
            TileKind::Entries => "entries".to_owned(),
        };
        let partial = self.width.map_or(String::new(), |w| format!(".p/{w}"));
        format!("tile/{kind}/{}{partial}", encode_n(self.index))
    }
}

impl fmt::Display for TilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_path())
    }
}

impl FromStr for TilePath {
    type Err = TilePathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TilePath::parse(s)
    }
}

/// A decimal of at most `max_digits` ASCII digits without leading zeros.
fn parse_canonical(s: &str, max_digits: usize) -> Option<u64> {
    let canonical = !s.is_empty()
        && s.len() <= max_digits
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

/// Decodes `<N>` from its path elements: `x`-prefixed 3-digit groups, then a bare 3-digit group.
fn parse_n(elems: &[&str]) -> Result<u64, TilePathError> {
    let (last, init) = elems
        .split_last()
        .ok_or_else(|| TilePathError::BadIndexElement(String::new()))?;
    if init.first().is_some_and(|first| *first == "x000") {
        return Err(TilePathError::LeadingZeroGroup);
    }
    let groups = init
        .iter()
        .map(|e| (*e, e.strip_prefix('x')))
        .chain(std::iter::once((*last, Some(*last))));
    let mut n: u64 = 0;
    for (elem, digits) in groups {
        let group = digits
            .filter(|d| d.len() == 3 && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u64>().ok())
            .ok_or_else(|| TilePathError::BadIndexElement(elem.to_owned()))?;
        n = n
            .checked_mul(1000)
            .and_then(|n| n.checked_add(group))
            .ok_or(TilePathError::IndexOverflow)?;
    }
    Ok(n)
}

/// Encodes a tile index as path elements: `1234067` → `x001/x234/067`, `5` → `005`.
pub fn encode_n(n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// Width of the rightmost (partial) tile at tile `level` for a tree of `size` leaves:
/// `floor(size / 256^level) mod 256`. Zero means that level has no partial tile.
pub fn partial_width(level: u8, size: u64) -> u64 {
    let shift = u32::from(level) * u32::from(TILE_HEIGHT);
    size.checked_shr(shift).unwrap_or(0) % TILE_WIDTH
}

/// The tree nodes a hash tile holds: `(tree_level, first, count)`, i.e. nodes
/// `(tree_level, first..first + count)` where `tree_level = 8·level`, `first = index·256` and
/// `count = width` (1..=256).
///
/// # Errors
/// [`TileError::OutOfRange`] if `width` is not 1..=256, or the tree level or node indices do not
/// fit (tile levels above 7 name tree levels beyond any 64-bit tree size).
pub fn tile_hashes_for(level: u8, index: u64, width: u64) -> Result<(u8, u64, u64), TileError> {
    if !(1..=TILE_WIDTH).contains(&width) {
        return Err(TileError::OutOfRange);
    }
    let tree_level = level
        .checked_mul(TILE_HEIGHT)
        .ok_or(TileError::OutOfRange)?;
    let first = index.checked_mul(TILE_WIDTH).ok_or(TileError::OutOfRange)?;
    // The last node must have an index too.
    first.checked_add(width - 1).ok_or(TileError::OutOfRange)?;
    Ok((tree_level, first, width))
}

/// Appends an entry bundle: each entry as a big-endian `u16` length and its bytes.
///
/// Nothing is written on error.
///
/// # Errors
/// [`TileError::TooManyEntries`] for more than 256 entries, [`TileError::EntryTooLong`] for an
/// entry longer than [`MAX_ENTRY_LEN`].
pub fn bundle_encode(entries: &[&[u8]], out: &mut Vec<u8>) -> Result<(), TileError> {
    if entries.len() > bundle_cap() {
        return Err(TileError::TooManyEntries {
            count: entries.len(),
        });
    }
    let mut prefixes = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let len = u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLong {
            index,
            len: entry.len(),
        })?;
        prefixes.push(len.to_be_bytes());
    }
    out.reserve(entries.iter().map(|e| e.len() + 2).sum());
    for (prefix, entry) in prefixes.iter().zip(entries) {
        out.extend_from_slice(prefix);
        out.extend_from_slice(entry);
    }
    Ok(())
}

/// Splits an entry bundle into its entries (borrowed from `data`).
///
/// # Errors
/// [`TileError::Truncated`] if the data ends inside a length prefix or an entry,
/// [`TileError::TooManyEntries`] for more than 256 entries.
pub fn bundle_decode(data: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let mut entries = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let offset = data.len() - rest.len();
        let truncated = TileError::Truncated { offset };
        let (prefix, tail) = rest.split_first_chunk::<2>().ok_or(truncated)?;
        let len = usize::from(u16::from_be_bytes(*prefix));
        let (entry, tail) = tail.split_at_checked(len).ok_or(truncated)?;
        entries.push(entry);
        if entries.len() > bundle_cap() {
            return Err(TileError::TooManyEntries {
                count: entries.len(),
            });
        }
        rest = tail;
    }
    Ok(entries)
}

fn bundle_cap() -> usize {
    usize::try_from(TILE_WIDTH).unwrap_or(usize::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        // tlog-tiles: "index 1234067 will be encoded as x001/x234/067".
        assert_eq!(encode_n(1_234_067), "x001/x234/067");
        let t = TilePath::parse("tile/0/x001/x234/067").unwrap();
        assert_eq!(
            t,
            TilePath {
                kind: TileKind::Hash { level: 0 },
                index: 1_234_067,
                width: None
            }
        );
        // "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level
        // 0 tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and
        // one partial level 2 tile of width 1."
        assert_eq!(70_000 / TILE_WIDTH, 273);
        assert_eq!(partial_width(0, 70_000), 112);
        assert_eq!(partial_width(1, 70_000), 17);
        assert_eq!(partial_width(2, 70_000), 1);
        assert_eq!(partial_width(3, 70_000), 0);
        // "a tree of size 256 will be represented by a full level 0 tile and a partial level 1
        // tile of width 1."
        assert_eq!(partial_width(0, 256), 0);
        assert_eq!(partial_width(1, 256), 1);
        assert_eq!(partial_width(8, u64::MAX), 0);
    }

    #[test]
    fn paths_round_trip() {
        let cases = [
            ("tile/entries/000", TileKind::Entries, 0, None),
            (
                "tile/entries/x001/000.p/1",
                TileKind::Entries,
                1000,
                Some(1),
            ),
            (
                "tile/63/999.p/255",
                TileKind::Hash { level: 63 },
                999,
                Some(255),
            ),
            (
                "tile/7/x018/x446/x744/x073/x709/x551/615",
                TileKind::Hash { level: 7 },
                u64::MAX,
                None,
            ),
        ];
        for (path, kind, index, width) in cases {
            let t = TilePath::new(kind, index, width).unwrap();
            assert_eq!(t.to_path(), path);
            assert_eq!(t.to_string(), path);
            assert_eq!(TilePath::parse(path), Ok(t));
            assert_eq!(path.parse::<TilePath>(), Ok(t));
        }
    }

    #[test]
    fn non_canonical_paths_are_rejected() {
        use TilePathError::*;
        let cases: &[(&str, TilePathError)] = &[
            ("/tile/0/000", MissingPrefix),
            ("tiles/0/000", MissingPrefix),
            ("tile/00/000", BadLevel("00".into())),
            ("tile/01/000", BadLevel("01".into())),
            ("tile/64/000", BadLevel("64".into())),
            ("tile/256/000", BadLevel("256".into())),
            ("tile/data/000", BadLevel("data".into())),
            ("tile/+1/000", BadLevel("+1".into())),
            ("tile/0", BadIndexElement(String::new())),
            ("tile/0/", BadIndexElement(String::new())),
            ("tile/0/000/", BadIndexElement("000".into())),
            ("tile/0/01", BadIndexElement("01".into())),
            ("tile/0/0001", BadIndexElement("0001".into())),
            ("tile/0/x001", BadIndexElement("x001".into())),
            ("tile/0/001/234", BadIndexElement("001".into())),
            ("tile/0/x000/234", LeadingZeroGroup),
            ("tile/0/x018/x446/x744/x073/x709/x551/616", IndexOverflow),
            ("tile/0/000.p/0", BadWidth("0".into())),
            ("tile/0/000.p/256", BadWidth("256".into())),
            ("tile/0/000.p/01", BadWidth("01".into())),
            ("tile/0/000.p/", BadWidth(String::new())),
            ("tile/0/000.p", BadIndexElement("000.p".into())),
            ("tile/0/000.p/5/6", BadIndexElement("000.p".into())),
        ];
        for (path, want) in cases {
            assert_eq!(TilePath::parse(path).as_ref(), Err(want), "{path}");
        }
        assert!(TilePath::new(TileKind::Hash { level: 64 }, 0, None).is_err());
        assert!(TilePath::new(TileKind::Entries, 0, Some(0)).is_err());
        assert!(TilePath::new(TileKind::Entries, 0, Some(256)).is_err());
    }

    #[test]
    fn tile_hash_coordinates() {
        assert_eq!(tile_hashes_for(0, 3, 256), Ok((0, 768, 256)));
        assert_eq!(tile_hashes_for(1, 2, 17), Ok((8, 512, 17)));
        assert_eq!(tile_hashes_for(7, 0, 1), Ok((56, 0, 1)));
        assert_eq!(tile_hashes_for(0, 0, 0), Err(TileError::OutOfRange));
        assert_eq!(tile_hashes_for(0, 0, 257), Err(TileError::OutOfRange));
        assert_eq!(tile_hashes_for(32, 0, 1), Err(TileError::OutOfRange));
        assert_eq!(
            tile_hashes_for(0, u64::MAX / 256 + 1, 1),
            Err(TileError::OutOfRange)
        );
        let t = TilePath::parse("tile/1/002.p/17").unwrap();
        assert_eq!(t.count(), 17);
        assert_eq!(TilePath::parse("tile/1/002").unwrap().count(), 256);
    }

    #[test]
    fn bundles_round_trip() {
        let big = vec![7u8; MAX_ENTRY_LEN];
        let entries: Vec<&[u8]> = vec![&b""[..], &b"a"[..], &b"hello"[..], &big];
        let mut out = vec![0xff];
        bundle_encode(&entries, &mut out).unwrap();
        assert_eq!(&out[..6], &[0xff, 0, 0, 0, 1, b'a']);
        assert_eq!(out.len(), 1 + 2 * 4 + 1 + 5 + MAX_ENTRY_LEN);
        assert_eq!(bundle_decode(&out[1..]).unwrap(), entries);

        let full: Vec<&[u8]> = vec![&b"x"[..]; 256];
        let mut out = Vec::new();
        bundle_encode(&full, &mut out).unwrap();
        assert_eq!(bundle_decode(&out).unwrap().len(), 256);
        assert_eq!(bundle_decode(&[]).unwrap(), Vec::<&[u8]>::new());
    }

    #[test]
    fn bundle_errors() {
        let too_big = vec![0u8; MAX_ENTRY_LEN + 1];
        let mut out = vec![1, 2];
        let entries: Vec<&[u8]> = vec![&b"ok"[..], &too_big];
        assert_eq!(
            bundle_encode(&entries, &mut out),
            Err(TileError::EntryTooLong {
                index: 1,
                len: MAX_ENTRY_LEN + 1
            })
        );
        assert_eq!(out, vec![1, 2], "nothing written on error");
        let many: Vec<&[u8]> = vec![&b""[..]; 257];
        assert_eq!(
            bundle_encode(&many, &mut out),
            Err(TileError::TooManyEntries { count: 257 })
        );

        let mut good = Vec::new();
        bundle_encode(&[&b"abc"[..], &b"defg"[..]], &mut good).unwrap();
        // Cut inside the second entry, inside its prefix, and add a stray byte.
        assert_eq!(
            bundle_decode(&good[..8]),
            Err(TileError::Truncated { offset: 5 })
        );
        assert_eq!(
            bundle_decode(&good[..6]),
            Err(TileError::Truncated { offset: 5 })
        );
        assert_eq!(
            bundle_decode(&good[..2]),
            Err(TileError::Truncated { offset: 0 })
        );
        let mut stray = good.clone();
        stray.push(0);
        assert_eq!(
            bundle_decode(&stray),
            Err(TileError::Truncated { offset: good.len() })
        );
        assert_eq!(
            bundle_decode(&vec![0u8; 2 * 257]),
            Err(TileError::TooManyEntries { count: 257 })
        );
    }
}
