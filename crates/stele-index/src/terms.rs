//! The open chunk's posting table for one field: a hash table from term to the offsets that
//! carry it, built for the follower's insert-heavy work.
//!
//! A general `HashMap<Box<str>, Vec<u16>>` cost two allocations per new term (its key and
//! its posting), hashed and probed twice to insert one, and freed them one by one when the
//! chunk was sealed; a chunk sees over a hundred thousand new terms (each event's request id
//! is one). Here term texts are appended to one buffer, postings of up to [`INLINE`] offsets
//! live in place, the table stores indexes into a term list (so sealing sorts and walks a
//! plain vector), and an insert hashes once.
//!
//! The large tables (ids, sessions, addresses, tokens) outgrow the CPU caches, so an insert
//! is bound by memory latency: the slot, then the term, then its text, each a likely cache
//! miss that depends on the one before. Slots carry a tag of the hash, so probing past other
//! terms touches only the slot array, and [`Terms::add_all`] takes a whole batch and
//! prefetches those three lines for the terms a few places ahead, so the misses overlap
//! instead of following one another.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;

/// Offsets a posting holds without an allocation. Most terms of the high-cardinality fields
/// (resource ids, sessions, addresses, request ids) occur only a few times in a chunk.
const INLINE: usize = 10;

/// How far ahead of the insert [`Terms::add_all`] prefetches a term's bytes, its slot, its
/// entry in the term list, and the stored text (each stage reads the line the previous stage
/// fetched). Far enough for a
/// miss (~100 ns) to arrive while the inserts in between run; measured on the index build.
const AHEAD_BYTES: usize = 40;
const AHEAD_SLOT: usize = 28;
const AHEAD_TERM: usize = 16;
const AHEAD_TEXT: usize = 8;

/// One term's offsets, ascending.
#[derive(Clone, Debug)]
enum Post {
    Inline { len: u8, offsets: [u16; INLINE] },
    Heap(Vec<u16>),
}

impl Post {
    fn one(offset: u16) -> Post {
        let mut offsets = [0; INLINE];
        offsets[0] = offset;
        Post::Inline { len: 1, offsets }
    }

    fn as_slice(&self) -> &[u16] {
        match self {
            Post::Inline { len, offsets } => offsets.get(..usize::from(*len)).unwrap_or(&[]),
            Post::Heap(v) => v,
        }
    }

    /// Appends `offset` unless it is already the last one (a term twice in one entry is
    /// posted once, since offsets arrive in order).
    fn push(&mut self, offset: u16) {
        match self {
            Post::Inline { len, offsets } => {
                let n = usize::from(*len);
                if n > 0 && offsets.get(n - 1) == Some(&offset) {
                    return;
                }
                if let Some(slot) = offsets.get_mut(n) {
                    *slot = offset;
                    *len += 1;
                } else {
                    let mut v = Vec::with_capacity(INLINE * 4);
                    v.extend_from_slice(offsets);
                    v.push(offset);
                    *self = Post::Heap(v);
                }
            }
            Post::Heap(v) => {
                if v.last() != Some(&offset) {
                    v.push(offset);
                }
            }
        }
    }
}

/// `repr(C)`: what a lookup reads (hash and text range) comes first, so prefetching the
/// term's first 24 bytes fetches it.
#[derive(Clone, Debug)]
#[repr(C)]
struct Term {
    hash: u64,
    start: usize,
    end: usize,
    post: Post,
}

/// Terms of one posting table and their postings.
pub(crate) struct Terms {
    /// Open addressing with linear probing. A slot is empty (0) or holds the high 32 bits of
    /// its term's hash (a tag: other terms are passed over without reading them) above the
    /// index into `terms` plus one. The length is a power of two, kept at least twice the
    /// number of terms.
    slots: Vec<u64>,
    terms: Vec<Term>,
    /// The texts of all terms, one after another.
    text: String,
    hasher: RandomState,
}

impl Default for Terms {
    fn default() -> Self {
        Terms::with_capacity(0)
    }
}

/// The tag of `hash` as it sits in a slot.
fn tag(hash: u64) -> u64 {
    hash & 0xFFFF_FFFF_0000_0000
}

/// `a == b`, without a call to `memcmp` for the short terms that are nearly all of them:
/// two overlapping 8-byte words (or 4-byte, or bytes) cover up to 16 bytes. With the terms of
/// a batch looked up back to back, the library call and its length branches were a tenth of
/// the index build.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    fn word8(s: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_ne_bytes(w)
    }
    fn word4(s: &[u8], at: usize) -> u32 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&s[at..at + 4]);
        u32::from_ne_bytes(w)
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        8..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        4..=7 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        _ => a == b,
    }
}

/// Hints the CPU to load the cache line at `p` (a no-op where there is no such hint).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults and reads nothing the program sees,
    // whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl Terms {
    /// An empty table with room for about `n` terms before it grows.
    pub fn with_capacity(n: usize) -> Terms {
        Terms {
            slots: vec![0; (n * 2).next_power_of_two().max(16)],
            terms: Vec::with_capacity(n),
            text: String::new(),
            hasher: RandomState::default(),
        }
    }

    /// Empties the table, keeping its memory for the next chunk: a new chunk's tables
    /// allocated afresh were tens of megabytes of page faults per chunk.
    pub fn clear(&mut self) {
        self.slots.fill(0);
        self.terms.clear();
        self.text.clear();
    }

    /// Number of distinct terms.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// Bytes of term text.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    fn text_of(&self, t: &Term) -> &str {
        self.text.get(t.start..t.end).unwrap_or("")
    }

    fn hash(&self, term: &str) -> u64 {
        self.hasher.hash_one(term)
    }

    /// The slot holding `term`, or the empty slot where it would go.
    fn find(&self, term: &str, hash: u64) -> (usize, Option<usize>) {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            match self.slots[i] {
                0 => return (i, None),
                s if s & 0xFFFF_FFFF_0000_0000 == tag(hash) => {
                    let k = (s as u32) as usize - 1;
                    let t = &self.terms[k];
                    if t.hash == hash && same(self.text_of(t).as_bytes(), term.as_bytes()) {
                        return (i, Some(k));
                    }
                }
                _ => {}
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds `offset` to the posting of `term`; offsets arrive in ascending order.
    pub fn add(&mut self, term: &str, offset: u16) {
        let hash = self.hash(term);
        self.add_hashed(term, hash, offset);
    }

    fn add_hashed(&mut self, term: &str, hash: u64, offset: u16) {
        match self.find(term, hash) {
            (_, Some(k)) => self.terms[k].post.push(offset),
            (slot, None) => {
                let start = self.text.len();
                self.text.push_str(term);
                self.terms.push(Term {
                    hash,
                    start,
                    end: self.text.len(),
                    post: Post::one(offset),
                });
                // Chunks hold at most 65,536 entries with entries of at most 64 KiB, so
                // terms number far below u32::MAX.
                self.slots[slot] = tag(hash) | self.terms.len() as u64;
                if self.terms.len() * 2 > self.slots.len() {
                    self.grow();
                }
            }
        }
    }

    /// [`Terms::add`] for each `(term, offset)` of `items` in order (offsets ascending),
    /// prefetching the memory each insert will read while the ones before it run.
    pub fn add_all(&mut self, items: &[(&str, u16)]) {
        // Each term is hashed when its slot is prefetched, not all up front: its bytes are
        // then still in cache when the insert compares them.
        let mut hashes = vec![0u64; items.len()];
        for (t, _) in items.iter().take(AHEAD_BYTES) {
            prefetch(t.as_ptr());
        }
        for (h, (t, _)) in hashes.iter_mut().zip(items).take(AHEAD_SLOT) {
            *h = self.hash(t);
            prefetch(self.home(*h));
        }
        for (i, (term, offset)) in items.iter().enumerate() {
            // The term's bytes, in the entry read from the log: hashed a few steps on.
            if let Some((t, _)) = items.get(i + AHEAD_BYTES) {
                prefetch(t.as_ptr());
            }
            if let Some((t, _)) = items.get(i + AHEAD_SLOT) {
                let h = self.hash(t);
                hashes[i + AHEAD_SLOT] = h;
                prefetch(self.home(h));
            }
            let hash = &hashes[i];
            if let Some(k) = hashes
                .get(i + AHEAD_TERM)
                .and_then(|&h| self.first_match(h))
            {
                let t: *const Term = &self.terms[k];
                prefetch(t);
                prefetch(&self.terms[k].end);
            }
            if let Some(k) = hashes
                .get(i + AHEAD_TEXT)
                .and_then(|&h| self.first_match(h))
            {
                prefetch(self.text.as_ptr().wrapping_add(self.terms[k].start));
            }
            self.add_hashed(term, *hash, *offset);
        }
    }

    /// The home slot of `hash`.
    fn home(&self, hash: u64) -> *const u64 {
        let mask = self.slots.len() - 1;
        &self.slots[hash as usize & mask]
    }

    /// The term in the home slot of `hash` if its tag matches (the term `hash` most likely
    /// finds; a guess only good for prefetching).
    fn first_match(&self, hash: u64) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let s = self.slots[hash as usize & mask];
        (s != 0 && s & 0xFFFF_FFFF_0000_0000 == tag(hash)).then(|| (s as u32) as usize - 1)
    }

    fn grow(&mut self) {
        let mut slots = vec![0u64; self.slots.len() * 2];
        let mask = slots.len() - 1;
        for (k, t) in self.terms.iter().enumerate() {
            let mut i = t.hash as usize & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = tag(t.hash) | (k as u64 + 1);
        }
        self.slots = slots;
    }

    /// The posting of `term`.
    pub fn get(&self, term: &str) -> Option<&[u16]> {
        let (_, k) = self.find(term, self.hash(term));
        Some(self.terms.get(k?)?.post.as_slice())
    }
    /// Every term and its posting, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u16])> + '_ {
        self.terms
            .iter()
            .map(|t| (self.text_of(t), t.post.as_slice()))
    }

    /// Every term and its posting, in ascending byte order of the terms.
    pub fn sorted(&self) -> Vec<(&str, &[u16])> {
        // Sort on the first eight bytes as a big-endian number first (zero-padded: a shorter
        // term that is a prefix sorts first, as in byte order), comparing whole terms only on
        // a tie. Most comparisons then touch no term text.
        let mut keyed: Vec<(u64, &str, &[u16])> = self
            .iter()
            .map(|(term, post)| {
                let mut prefix = [0u8; 8];
                let n = term.len().min(8);
                prefix[..n].copy_from_slice(&term.as_bytes()[..n]);
                (u64::from_be_bytes(prefix), term, post)
            })
            .collect();
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        keyed.into_iter().map(|(_, t, p)| (t, p)).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn behaves_like_a_sorted_map_of_deduplicated_postings(
            // Lengths around the word sizes `same` compares by.
            adds in prop::collection::vec(("[ab\u{0}é]{0,10}|[ab]{14,20}", 0..3u16), 0..400),
            capacity in 0..64usize,
            // Inserted one by one, or in batches of up to this many through `add_all`.
            batch in 0..100usize,
        ) {
            let mut terms = Terms::with_capacity(capacity);
            let mut want: BTreeMap<String, Vec<u16>> = BTreeMap::new();
            let mut offset = 0u16;
            let mut items = Vec::new();
            for (term, step) in &adds {
                offset += step;
                items.push((term.as_str(), offset));
                let v = want.entry(term.clone()).or_default();
                if v.last() != Some(&offset) {
                    v.push(offset);
                }
            }
            if batch == 0 {
                for (term, offset) in &items {
                    terms.add(term, *offset);
                }
            } else {
                for part in items.chunks(batch) {
                    terms.add_all(part);
                }
            }
            prop_assert_eq!(terms.len(), want.len());
            let sorted = terms.sorted();
            let got: Vec<(String, Vec<u16>)> =
                sorted.iter().map(|(t, p)| (t.to_string(), p.to_vec())).collect();
            let expected: Vec<(String, Vec<u16>)> = want.clone().into_iter().collect();
            prop_assert_eq!(got, expected);
            for (term, post) in &want {
                prop_assert_eq!(terms.get(term), Some(&post[..]));
            }
            prop_assert_eq!(terms.get("not a term"), None);
        }
    }

    #[test]
    fn a_cleared_table_is_empty_and_fills_again() {
        let mut terms = Terms::default();
        for o in 0..5_000u16 {
            terms.add(&format!("old-{}", o % 3_000), o);
        }
        terms.clear();
        assert_eq!((terms.len(), terms.text_len()), (0, 0));
        assert_eq!(terms.get("old-1"), None);
        let items: Vec<(String, u16)> =
            (0..100u16).map(|o| (format!("new-{}", o % 7), o)).collect();
        let items: Vec<(&str, u16)> = items.iter().map(|(t, o)| (t.as_str(), *o)).collect();
        terms.add_all(&items);
        assert_eq!(terms.len(), 7);
        assert_eq!(terms.get("old-1"), None);
        assert_eq!(
            terms.get("new-3").unwrap(),
            (0..100).filter(|o| o % 7 == 3).collect::<Vec<u16>>()
        );
    }

    #[test]
    fn sorted_is_byte_order_across_shared_and_padded_prefixes() {
        let a16 = "a".repeat(16);
        let words = [
            format!("{a16}b"),
            format!("{a16}\0"),
            a16.clone(),
            format!("{a16}a"),
            "aaaa".to_string(),
            "aaaa\0".to_string(),
            "aaaa\0\0".to_string(),
            format!("{}b", &a16[..15]),
            String::new(),
            "document-123".to_string(),
            "document-1234".to_string(),
            "document-12".to_string(),
        ];
        let mut terms = Terms::default();
        for (o, w) in words.iter().enumerate() {
            terms.add(w, o as u16);
        }
        let got: Vec<&str> = terms.sorted().into_iter().map(|(t, _)| t).collect();
        let mut want: Vec<&str> = words.iter().map(String::as_str).collect();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn same_compares_every_byte() {
        let base = b"abcdefghijklmnopqrstuvwxyz0123456789";
        for n in 0..base.len() {
            let a = &base[..n];
            assert!(same(a, a));
            assert!(!same(a, &base[..n + 1]));
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 1;
                assert!(!same(a, &b), "length {n}, byte {at}");
            }
        }
    }

    #[test]
    fn long_postings_move_to_the_heap_and_keep_order() {
        let mut terms = Terms::default();
        for o in 0..1_000u16 {
            terms.add("every", o);
            terms.add("every", o);
            if o % 3 == 0 {
                terms.add(&format!("t{}", o % 7), o);
            }
        }
        assert_eq!(
            terms.get("every").unwrap(),
            (0..1_000).collect::<Vec<u16>>()
        );
        assert_eq!(terms.len(), 8);
        assert_eq!(
            terms.get("t0").unwrap(),
            (0..1_000).filter(|o| o % 21 == 0).collect::<Vec<u16>>()
        );
    }
}
