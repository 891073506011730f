//! Filters, searches and counts over a snapshot of chunks.
//!
//! Commit times never decrease along the log, so a time range is an index range, found by
//! binary search, and "sorted by time" and "sorted by index" are the same order. Within each
//! chunk overlapping that range, the filters' postings are intersected in a bit set of the
//! chunk's entries.

use std::collections::{BTreeMap, HashMap};

use foldhash::fast::RandomState;
use stele_core::timestamp::Timestamp;

use crate::chunk::ChunkRead;
use crate::fields::{tokenize, Field, INVALID, TEXT};
use crate::posting::Bits;

/// How a keyword field is matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// The whole value.
    Exact(String),
    /// Values starting with this prefix (`action=role.*`).
    Prefix(String),
    /// Any one of these whole values (a reader's tenants); none matches nothing.
    AnyOf(Vec<String>),
}

impl Match {
    /// `value` as a match: a trailing `*` makes it a prefix match.
    pub fn parse(value: &str) -> Match {
        match value.strip_suffix('*') {
            Some(prefix) => Match::Prefix(prefix.to_owned()),
            None => Match::Exact(value.to_owned()),
        }
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Match::Exact(v) => v == value,
            Match::Prefix(p) => value.starts_with(p.as_str()),
            Match::AnyOf(vs) => vs.iter().any(|v| v == value),
        }
    }
}

/// A conjunction of conditions on events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Conditions on keyword fields.
    pub fields: Vec<(Field, Match)>,
    /// Full-text tokens that must all occur in `reason` or `context` (see
    /// [`crate::fields::tokenize`]).
    pub text: Vec<String>,
    /// Commit time at or after this (ns since the epoch).
    pub from: Option<i64>,
    /// Commit time before this (ns since the epoch).
    pub to: Option<i64>,
}

impl Filter {
    /// Sets the full-text condition from a query string; returns false if it has no tokens.
    pub fn set_text(&mut self, q: &str) -> bool {
        let mut tokens = Vec::new();
        tokenize(q, &mut tokens);
        tokens.sort_unstable();
        tokens.dedup();
        self.text = tokens;
        !self.text.is_empty()
    }
}

/// Result order: by log index, which is also commit-time order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// What to group counts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// The values of a keyword field (events without the field are in no group).
    Field(Field),
    /// The UTC hour of the commit time, as `YYYY-MM-DDTHH:00:00Z`.
    Hour,
}

/// One page of matching log indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// Matching indexes in the requested order.
    pub hits: Vec<u64>,
    /// Whether more matches follow the last hit (in the snapshot searched).
    pub more: bool,
    /// Entries indexed when the search ran.
    pub indexed: u64,
}

/// Counts of matching events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counts {
    /// All matching events.
    pub total: u64,
    /// Matching events per group (empty without grouping).
    pub groups: BTreeMap<String, u64>,
    /// Entries indexed when the count ran.
    pub indexed: u64,
}

/// A consistent view of the chunks, in log order; the last may be the open chunk.
pub(crate) struct Snapshot<'a> {
    pub chunks: Vec<&'a dyn ChunkRead>,
}

impl Snapshot<'_> {
    /// Entries covered.
    pub fn indexed(&self) -> u64 {
        self.chunks.last().map_or(0, |c| c.first() + c.len() as u64)
    }

    /// The first index whose commit time is at least `t`.
    fn index_at(&self, t: i64) -> u64 {
        // The first chunk whose last time reaches t.
        let pos = self
            .chunks
            .partition_point(|c| c.len() == 0 || c.time(c.len() - 1) < t);
        match self.chunks.get(pos) {
            Some(c) => c.first() + c.first_at_or_after(t) as u64,
            None => self.indexed(),
        }
    }

    /// The index range `[lo, hi)` the filter's times and `bounds` allow.
    fn range(&self, f: &Filter, bounds: (u64, u64)) -> (u64, u64) {
        let lo = f.from.map_or(0, |t| self.index_at(t)).max(bounds.0);
        let hi =
            f.to.map_or(u64::MAX, |t| self.index_at(t))
                .min(self.indexed())
                .min(bounds.1);
        (lo, hi)
    }

    /// The matching offsets of `chunk` within `[lo, hi)`, or `None` when nothing matches.
    fn matches(&self, chunk: &dyn ChunkRead, f: &Filter, lo: u64, hi: u64) -> Option<Bits> {
        let first = chunk.first();
        let len = chunk.len();
        let end = first + len as u64;
        if hi <= first || lo >= end || lo >= hi {
            return None;
        }
        let (a, b) = (
            (lo.max(first) - first) as usize,
            (hi.min(end) - first) as usize,
        );
        let mut bits = Bits::range(len, a, b);
        if let Some(p) = chunk.posting(INVALID, "") {
            bits.remove_posting(&p);
        }
        for (field, m) in &f.fields {
            match m {
                Match::Exact(v) => bits.and(&chunk.posting(field.table(), v)?),
                Match::Prefix(p) => {
                    let mut any = Bits::empty(len);
                    chunk.visit(field.table(), p, &mut |_, posting, _| any.or(&posting));
                    bits.and_bits(&any);
                }
                Match::AnyOf(vs) => {
                    let mut any = Bits::empty(len);
                    for v in vs {
                        if let Some(posting) = chunk.posting(field.table(), v) {
                            any.or(&posting);
                        }
                    }
                    bits.and_bits(&any);
                }
            }
            if bits.is_empty() {
                return None;
            }
        }
        for token in &f.text {
            bits.and(&chunk.posting(TEXT, token)?);
            if bits.is_empty() {
                return None;
            }
        }
        Some(bits)
    }

    /// Up to `limit` matches in `order` strictly inside `bounds` (exclusive of a cursor:
    /// `(after + 1, before)`), and whether more follow.
    pub fn search(&self, f: &Filter, order: Order, bounds: (u64, u64), limit: usize) -> Page {
        let (lo, hi) = self.range(f, bounds);
        let mut hits = Vec::new();
        let mut more = false;
        let mut visit = |chunk: &&dyn ChunkRead| -> bool {
            let Some(bits) = self.matches(*chunk, f, lo, hi) else {
                return true;
            };
            let first = chunk.first();
            let mut take = |off: usize| {
                if hits.len() == limit {
                    more = true;
                    return false;
                }
                hits.push(first + off as u64);
                true
            };
            match order {
                Order::Asc => bits.iter_asc().all(&mut take),
                Order::Desc => bits.iter_desc().all(&mut take),
            }
        };
        match order {
            Order::Asc => {
                let _ = self.chunks.iter().all(&mut visit);
            }
            Order::Desc => {
                let _ = self.chunks.iter().rev().all(&mut visit);
            }
        }
        Page {
            hits,
            more,
            indexed: self.indexed(),
        }
    }

    /// Counts matches within `bounds`, grouped by `group`.
    pub fn count(&self, f: &Filter, group: Option<GroupBy>, bounds: (u64, u64)) -> Counts {
        let (lo, hi) = self.range(f, bounds);
        let mut total = 0;
        let mut by_term: HashMap<&str, u64, RandomState> = HashMap::default();
        let mut by_hour: BTreeMap<i64, u64> = BTreeMap::new();
        for chunk in &self.chunks {
            let Some(bits) = self.matches(*chunk, f, lo, hi) else {
                continue;
            };
            let n = bits.count();
            total += n;
            match group {
                None => {}
                Some(GroupBy::Field(field)) => {
                    let whole = n == chunk.len() as u64;
                    chunk.visit(field.table(), "", &mut |term, posting, size| {
                        let c = if whole { size } else { bits.count_in(&posting) };
                        if c > 0 {
                            *by_term.entry(term).or_default() += c;
                        }
                    });
                }
                Some(GroupBy::Hour) => {
                    const HOUR: i64 = 3_600_000_000_000;
                    let mut current = (i64::MIN, 0u64);
                    for off in bits.iter_asc() {
                        let h = chunk.time(off).div_euclid(HOUR);
                        if h != current.0 {
                            if current.1 > 0 {
                                *by_hour.entry(current.0).or_default() += current.1;
                            }
                            current = (h, 0);
                        }
                        current.1 += 1;
                    }
                    if current.1 > 0 {
                        *by_hour.entry(current.0).or_default() += current.1;
                    }
                }
            }
        }
        let mut groups: BTreeMap<String, u64> = by_term
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        for (h, n) in by_hour {
            groups.insert(hour_key(h), n);
        }
        Counts {
            total,
            groups,
            indexed: self.indexed(),
        }
    }
}

/// `YYYY-MM-DDTHH:00:00Z` for hour number `h` since the epoch.
pub fn hour_key(h: i64) -> String {
    let ts = Timestamp::from_unix_nanos(h.saturating_mul(3_600_000_000_000)).format();
    format!("{}:00:00Z", ts.get(..13).unwrap_or(&ts))
}

/// Parses an instant for `from`, `to` and `as_of`: RFC 3339 (`2026-03-01T12:00:00Z`, any
/// offset, any fraction), or the same without seconds (`2026-03-01T12:00Z`), or a date alone
/// (`2026-03-01`, midnight UTC). Returns ns since the epoch.
///
/// # Errors
/// A message saying what forms are accepted.
pub fn parse_instant(s: &str) -> Result<i64, String> {
    let fail = || {
        format!(
            "{s:?} is not an RFC 3339 date-time (like 2026-03-01T12:00:00Z), a date-time without seconds (2026-03-01T12:00Z) or a date (2026-03-01)"
        )
    };
    if let Ok(t) = Timestamp::parse(s) {
        return Ok(t.unix_nanos());
    }
    let b = s.as_bytes();
    let expanded = if b.len() == 10 {
        format!("{s}T00:00:00Z")
    } else if b.len() >= 16 && matches!(b.get(10), Some(b'T' | b't')) && b.get(13) == Some(&b':') {
        // Insert ":00" seconds after HH:MM.
        let (head, tail) = s.split_at(16);
        if tail.starts_with(':') {
            return Err(fail());
        }
        format!("{head}:00{tail}")
    } else {
        return Err(fail());
    };
    Timestamp::parse(&expanded)
        .map(Timestamp::unix_nanos)
        .map_err(|_| fail())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn instants_in_every_accepted_form() {
        let t = parse_instant("2026-03-01T12:00:00Z").unwrap();
        assert_eq!(parse_instant("2026-03-01T12:00Z").unwrap(), t);
        assert_eq!(parse_instant("2026-03-01T13:00+01:00").unwrap(), t);
        assert_eq!(
            parse_instant("2026-03-01").unwrap(),
            t - 12 * 3_600_000_000_000
        );
        for bad in [
            "",
            "2026",
            "2026-03-01T12",
            "yesterday",
            "2026-13-01",
            "2026-03-01T12:00:00:00Z",
        ] {
            assert!(parse_instant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hour_keys() {
        let t = parse_instant("2026-03-01T12:34:56Z").unwrap();
        assert_eq!(
            hour_key(t.div_euclid(3_600_000_000_000)),
            "2026-03-01T12:00:00Z"
        );
    }

    #[test]
    fn trailing_star_is_a_prefix() {
        assert_eq!(Match::parse("role.*"), Match::Prefix("role.".into()));
        assert!(Match::parse("role.*").matches("role.grant"));
        assert!(!Match::parse("role.grant").matches("role.grants"));
    }
}
