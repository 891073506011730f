//! Posting lists within one chunk, and the bit sets queries combine them in.
//!
//! A posting list holds the offsets (0 .. chunk size, so `u16`) of the chunk's entries that
//! carry one term. Sealed chunks store a sparse list as little-endian `u16`s and a dense one
//! (more than chunk size / 16 entries, where the bitmap is smaller) as a bitmap, like a
//! Roaring container; the open chunk keeps a plain `Vec<u16>`.

/// One term's entries within a chunk.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Posting<'a> {
    /// Ascending little-endian `u16` offsets (sealed chunk, sparse).
    Le(&'a [u8]),
    /// A bitmap, bit `i` of byte `i / 8` for offset `i` (sealed chunk, dense).
    Bitmap(&'a [u8]),
    /// Ascending offsets (open chunk).
    Mem(&'a [u16]),
}

impl Posting<'_> {
    /// Calls `f` with every offset, ascending.
    pub fn for_each(&self, mut f: impl FnMut(usize)) {
        match self {
            Posting::Le(b) => b
                .chunks_exact(2)
                .for_each(|c| f(usize::from(u16::from_le_bytes([c[0], c[1]])))),
            Posting::Mem(v) => v.iter().for_each(|&x| f(usize::from(x))),
            Posting::Bitmap(b) => {
                for (w, word) in b.chunks_exact(8).enumerate() {
                    let mut bits = u64::from_le_bytes(word_of(word));
                    while bits != 0 {
                        f(w * 64 + bits.trailing_zeros() as usize);
                        bits &= bits - 1;
                    }
                }
            }
        }
    }
}

fn word_of(c: &[u8]) -> [u8; 8] {
    let mut w = [0u8; 8];
    w.copy_from_slice(c);
    w
}

/// A set of offsets within a chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bits {
    words: Vec<u64>,
}

impl Bits {
    /// The empty set over `len` offsets.
    pub fn empty(len: usize) -> Bits {
        Bits {
            words: vec![0; len.div_ceil(64)],
        }
    }

    /// The offsets `lo .. hi`.
    pub fn range(len: usize, lo: usize, hi: usize) -> Bits {
        let mut b = Bits::empty(len);
        let hi = hi.min(len);
        let mut i = lo;
        while i < hi {
            if i.is_multiple_of(64) && hi - i >= 64 {
                b.words[i / 64] = u64::MAX;
                i += 64;
            } else {
                b.words[i / 64] |= 1 << (i % 64);
                i += 1;
            }
        }
        b
    }

    /// The offsets of `p`.
    #[cfg(test)]
    pub fn from_posting(len: usize, p: &Posting<'_>) -> Bits {
        let mut b = Bits::empty(len);
        b.or(p);
        b
    }

    /// Adds the offsets of `p`.
    pub fn or(&mut self, p: &Posting<'_>) {
        match p {
            Posting::Bitmap(bytes) => {
                for (w, c) in self.words.iter_mut().zip(bytes.chunks_exact(8)) {
                    *w |= u64::from_le_bytes(word_of(c));
                }
            }
            _ => p.for_each(|i| self.insert(i)),
        }
    }

    /// Keeps only offsets also in `p`.
    pub fn and(&mut self, p: &Posting<'_>) {
        match p {
            Posting::Bitmap(bytes) => {
                for (w, c) in self.words.iter_mut().zip(bytes.chunks_exact(8)) {
                    *w &= u64::from_le_bytes(word_of(c));
                }
            }
            _ => {
                let mut kept = Bits::empty(self.words.len() * 64);
                p.for_each(|i| {
                    if self.contains(i) {
                        kept.insert(i);
                    }
                });
                *self = kept;
            }
        }
    }

    /// Keeps only offsets also in `other`.
    pub fn and_bits(&mut self, other: &Bits) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w &= o;
        }
    }

    /// Removes the offsets of `p`.
    pub fn remove_posting(&mut self, p: &Posting<'_>) {
        p.for_each(|i| {
            if let Some(w) = self.words.get_mut(i / 64) {
                *w &= !(1 << (i % 64));
            }
        });
    }

    /// Adds offset `i` (ignored past the end).
    pub fn insert(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    /// Whether offset `i` is in the set.
    pub fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Number of offsets in the set.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Number of offsets of `p` in the set.
    pub fn count_in(&self, p: &Posting<'_>) -> u64 {
        match p {
            Posting::Bitmap(bytes) => self
                .words
                .iter()
                .zip(bytes.chunks_exact(8))
                .map(|(w, c)| u64::from((w & u64::from_le_bytes(word_of(c))).count_ones()))
                .sum(),
            _ => {
                let mut n = 0;
                p.for_each(|i| n += u64::from(self.contains(i)));
                n
            }
        }
    }

    /// The offsets, ascending.
    pub fn iter_asc(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let i = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    w * 64 + i
                })
            })
        })
    }

    /// The offsets, descending.
    pub fn iter_desc(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().rev().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let i = 63 - bits.leading_zeros() as usize;
                    bits &= !(1u64 << i);
                    w * 64 + i
                })
            })
        })
    }
}

/// Encodes ascending offsets for a sealed chunk of `chunk_size`: the bytes, and whether they
/// are a bitmap (more than `chunk_size / 16` offsets) rather than a `u16` list.
pub(crate) fn encode(offsets: &[u16], chunk_size: usize, out: &mut Vec<u8>) {
    if is_dense(offsets.len(), chunk_size) {
        let start = out.len();
        out.resize(start + chunk_size / 8, 0);
        for &o in offsets {
            let o = usize::from(o);
            if let Some(b) = out.get_mut(start + o / 8) {
                *b |= 1 << (o % 8);
            }
        }
    } else {
        for &o in offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
    }
}

/// Whether a posting of `count` offsets in a chunk of `chunk_size` is stored as a bitmap.
pub(crate) fn is_dense(count: usize, chunk_size: usize) -> bool {
    count > chunk_size / 16
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn collect(p: &Posting<'_>) -> Vec<usize> {
        let mut v = Vec::new();
        p.for_each(|i| v.push(i));
        v
    }

    #[test]
    fn sparse_and_dense_encodings_hold_the_same_offsets() {
        let size = 256;
        let sparse: Vec<u16> = vec![0, 3, 64, 255];
        let dense: Vec<u16> = (0..200).map(|i| i as u16).collect();
        for offsets in [&sparse, &dense] {
            let mut bytes = Vec::new();
            encode(offsets, size, &mut bytes);
            let p = if is_dense(offsets.len(), size) {
                assert_eq!(bytes.len(), size / 8);
                Posting::Bitmap(&bytes)
            } else {
                Posting::Le(&bytes)
            };
            let want: Vec<usize> = offsets.iter().map(|&o| usize::from(o)).collect();
            assert_eq!(collect(&p), want);
            let bits = Bits::from_posting(size, &p);
            assert_eq!(bits.iter_asc().collect::<Vec<_>>(), want);
            let mut desc: Vec<usize> = bits.iter_desc().collect();
            desc.reverse();
            assert_eq!(desc, want);
            assert_eq!(bits.count(), want.len() as u64);
        }
    }

    #[test]
    fn set_operations() {
        let mut a = Bits::range(200, 10, 150);
        assert_eq!(a.count(), 140);
        let odd: Vec<u16> = (0..200).filter(|i| i % 2 == 1).collect();
        assert_eq!(a.count_in(&Posting::Mem(&odd)), 70);
        a.and(&Posting::Mem(&odd));
        assert_eq!(a.iter_asc().next(), Some(11));
        assert_eq!(a.iter_desc().next(), Some(149));
        a.remove_posting(&Posting::Mem(&[11, 13]));
        assert_eq!(a.count(), 68);
        assert!(!a.contains(11) && a.contains(15));
    }
}
