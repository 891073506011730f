//! The open chunk's posting table for one field: a hash table from term to the offsets that
//! carry it, built for the follower's insert-heavy work.
//!
//! A general `HashMap<Box<str>, Vec<u16>>` cost two allocations per new term (its key and
//! its posting), hashed and probed twice to insert one, and freed them one by one when the
//! chunk was sealed; a chunk sees over a hundred thousand new terms (each event's request id
//! is one). Here term texts are appended to one buffer, postings of up to [`INLINE`] offsets
//! live in place, the table stores indexes into a term list (so sealing sorts and walks a
//! plain vector), and an insert hashes once.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;

/// Offsets a posting holds without an allocation. Most terms of the high-cardinality fields
/// (resource ids, sessions, addresses, request ids) occur only a few times in a chunk.
const INLINE: usize = 10;

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

#[derive(Clone, Debug)]
struct Term {
    hash: u64,
    start: usize,
    end: usize,
    post: Post,
}

/// Terms of one posting table and their postings.
pub(crate) struct Terms {
    /// Open addressing with linear probing: an index into `terms` plus one, 0 for an empty
    /// slot. The length is a power of two, kept at least twice the number of terms.
    slots: Vec<u32>,
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

    /// The slot holding `term`, or the empty slot where it would go.
    fn find(&self, term: &str, hash: u64) -> (usize, Option<usize>) {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            match self.slots[i] {
                0 => return (i, None),
                s => {
                    let k = s as usize - 1;
                    let t = &self.terms[k];
                    if t.hash == hash && self.text_of(t) == term {
                        return (i, Some(k));
                    }
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds `offset` to the posting of `term`; offsets arrive in ascending order.
    pub fn add(&mut self, term: &str, offset: u16) {
        let hash = self.hasher.hash_one(term);
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
                self.slots[slot] = self.terms.len() as u32;
                if self.terms.len() * 2 > self.slots.len() {
                    self.grow();
                }
            }
        }
    }

    fn grow(&mut self) {
        let mut slots = vec![0u32; self.slots.len() * 2];
        let mask = slots.len() - 1;
        for (k, t) in self.terms.iter().enumerate() {
            let mut i = t.hash as usize & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = k as u32 + 1;
        }
        self.slots = slots;
    }

    /// The posting of `term`.
    pub fn get(&self, term: &str) -> Option<&[u16]> {
        let (_, k) = self.find(term, self.hasher.hash_one(term));
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
            adds in prop::collection::vec(("[ab\u{0}é]{0,10}", 0..3u16), 0..400),
            capacity in 0..64usize,
        ) {
            let mut terms = Terms::with_capacity(capacity);
            let mut want: BTreeMap<String, Vec<u16>> = BTreeMap::new();
            let mut offset = 0u16;
            for (term, step) in &adds {
                offset += step;
                terms.add(term, offset);
                let v = want.entry(term.clone()).or_default();
                if v.last() != Some(&offset) {
                    v.push(offset);
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
