//! A fast path for [`crate::fields::extract`]: one pass over the entry's bytes that takes the
//! indexed fields without serde, borrowing every string that has no escapes.
//!
//! The contract is one-sided, so the index cannot change meaning: [`scan`] returns the fields
//! only when it is sure that the serde-based reader ([`crate::fields`]) would accept the entry
//! and read the same values; whenever it is unsure — invalid JSON, a missing or repeated
//! field, a field of another type, a key with an escape, deep nesting, a number serde might
//! reject, an array where an object is expected (serde would read a struct from it) — it
//! returns `None` and the caller runs the serde reader, which decides. The grammar checked
//! here is therefore at least as strict as serde_json's (RFC 8259, UTF-8 everywhere).

use std::borrow::Cow;

use crate::fields::{tokenize_into, tokenize_owned};

/// The fields the index takes, as they appear in the entry.
#[derive(Debug, Default)]
pub(crate) struct Parts<'a> {
    pub action: Option<Cow<'a, str>>,
    pub actor_kind: Option<Cow<'a, str>>,
    pub actor_id: Option<Cow<'a, str>>,
    pub ip: Option<Cow<'a, str>>,
    pub session: Option<Cow<'a, str>>,
    pub resource_kind: Option<Cow<'a, str>>,
    pub resource_id: Option<Cow<'a, str>>,
    pub outcome: Option<Cow<'a, str>>,
    pub tenant: Option<Cow<'a, str>>,
    pub source: Option<Cow<'a, str>>,
    pub reason: Option<Cow<'a, str>>,
    pub time: Option<Cow<'a, str>>,
    /// The raw JSON of `change` (absent or `null`: `None`).
    pub change: Option<&'a str>,
    /// Full-text tokens of the string values inside `context`, in document order.
    pub context_tokens: Vec<Cow<'a, str>>,
}

/// Deepest nesting accepted. serde_json refuses more than 128 levels when it walks `context`
/// for its text; staying well below keeps the two readers in agreement.
const MAX_DEPTH: usize = 64;

/// Reads the indexed fields of `entry`, or `None` when the serde reader must decide.
pub(crate) fn scan(entry: &[u8]) -> Option<Parts<'_>> {
    // One UTF-8 check for the whole entry (fast: it is nearly all ASCII); every slice taken
    // below starts and ends at an ASCII delimiter, so it is valid UTF-8 as well.
    let text = std::str::from_utf8(entry).ok()?;
    let mut r = Reader {
        s: text,
        b: entry,
        pos: 0,
    };
    let mut p = Parts {
        // Room for the tokens of a typical context and reason (added to this vector later):
        // growing it from empty was an allocation and a few reallocations per entry.
        context_tokens: Vec::with_capacity(16),
        ..Parts::default()
    };
    // Known fields seen so far, one bit each: serde refuses a repeated one.
    let mut seen = Seen(0);
    r.ws();
    r.object(|r, key| match key {
        "action" => seen.first(0).and_then(|()| r.string_into(&mut p.action)),
        "outcome" => seen.first(1).and_then(|()| r.string_into(&mut p.outcome)),
        "time" => seen.first(2).and_then(|()| r.string_into(&mut p.time)),
        "tenant" => seen
            .first(3)
            .and_then(|()| r.nullable_string(&mut p.tenant)),
        "source" => seen
            .first(4)
            .and_then(|()| r.nullable_string(&mut p.source)),
        "reason" => seen
            .first(5)
            .and_then(|()| r.nullable_string(&mut p.reason)),
        "change" => seen.first(6).and_then(|()| r.raw(&mut p.change, None)),
        "context" => {
            seen.first(7)?;
            let mut raw = None;
            r.raw(&mut raw, Some(&mut p.context_tokens))
        }
        "actor" => {
            seen.first(8)?;
            let mut seen = Seen(0);
            r.object(|r, key| match key {
                "type" => seen
                    .first(0)
                    .and_then(|()| r.string_into(&mut p.actor_kind)),
                "id" => seen.first(1).and_then(|()| r.string_into(&mut p.actor_id)),
                "ip" => seen.first(2).and_then(|()| r.nullable_string(&mut p.ip)),
                "session_id" => seen
                    .first(3)
                    .and_then(|()| r.nullable_string(&mut p.session)),
                _ => r.skip(1, None),
            })?;
            // Both are required.
            p.actor_kind.as_ref().and(p.actor_id.as_ref()).map(|_| ())
        }
        "resource" => {
            seen.first(9)?;
            let mut seen = Seen(0);
            r.object(|r, key| match key {
                "type" => seen
                    .first(0)
                    .and_then(|()| r.string_into(&mut p.resource_kind)),
                "id" => seen
                    .first(1)
                    .and_then(|()| r.string_into(&mut p.resource_id)),
                _ => r.skip(1, None),
            })?;
            p.resource_kind
                .as_ref()
                .and(p.resource_id.as_ref())
                .map(|_| ())
        }
        _ => r.skip(0, None),
    })?;
    r.ws();
    if r.pos != r.b.len() {
        return None;
    }
    // The fields serde requires (an actor or resource present has both of its own).
    p.action.as_ref()?;
    p.outcome.as_ref()?;
    p.time.as_ref()?;
    p.actor_kind.as_ref()?;
    p.resource_kind.as_ref()?;
    Some(p)
}

/// Fields of one object seen so far.
struct Seen(u32);

impl Seen {
    /// `Some` the first time field `bit` is seen, `None` after.
    fn first(&mut self, bit: u32) -> Option<()> {
        let mask = 1 << bit;
        if self.0 & mask != 0 {
            return None;
        }
        self.0 |= mask;
        Some(())
    }
}

struct Reader<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// Moves past string content that needs no attention: up to the next `"`, `\\` or control
    /// character (or the end). Eight bytes at a time, since strings are most of an entry.
    fn skip_plain(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        while let Some(chunk) = self.b.get(self.pos..self.pos + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let x = u64::from_le_bytes(w);
            // A byte's high bit is set in `special` if it is a quote, a backslash or below
            // 0x20 (the classic "has zero byte" / "has byte less than" tests). Borrows can
            // only flag bytes above a real match, so the lowest flag is exact.
            let quote = x ^ (ONES * u64::from(b'"'));
            let backslash = x ^ (ONES * u64::from(b'\\'));
            let special = (quote.wrapping_sub(ONES) & !quote
                | backslash.wrapping_sub(ONES) & !backslash
                | x.wrapping_sub(ONES * 0x20) & !x)
                & HIGH;
            if special != 0 {
                self.pos += special.trailing_zeros() as usize / 8;
                return;
            }
            self.pos += 8;
        }
        while let Some(c) = self.peek() {
            if c == b'"' || c == b'\\' || c < 0x20 {
                return;
            }
            self.pos += 1;
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.pos += 1)
    }

    /// An object at the current position; `field` reads each member's value (positioned at
    /// it, after whitespace) and must leave the position right after it.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.key()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            field(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.pos += 1;
                    self.ws();
                }
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An object key without escapes (a key with one is left to serde).
    fn key(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        self.skip_plain();
        if self.peek()? != b'"' {
            return None;
        }
        let key = self.s.get(start..self.pos)?;
        self.pos += 1;
        Some(key)
    }

    /// A string value into `slot` (a value of another type is left to serde).
    fn string_into(&mut self, slot: &mut Option<Cow<'a, str>>) -> Option<()> {
        *slot = Some(self.string()?);
        Some(())
    }

    /// A string or `null` (leaving `slot` empty, as serde reads it into an `Option`).
    fn nullable_string(&mut self, slot: &mut Option<Cow<'a, str>>) -> Option<()> {
        if self.peek()? == b'n' {
            return self.literal(b"null");
        }
        self.string_into(slot)
    }

    /// A raw JSON value into `slot` (`null` leaves it empty, as serde reads an
    /// `Option<&RawValue>`); with `tokens`, the text of its string values is tokenized on the
    /// way.
    fn raw(
        &mut self,
        slot: &mut Option<&'a str>,
        tokens: Option<&mut Vec<Cow<'a, str>>>,
    ) -> Option<()> {
        if self.peek()? == b'n' {
            return self.literal(b"null");
        }
        let start = self.pos;
        self.skip(1, tokens)?;
        *slot = Some(self.s.get(start..self.pos)?);
        Some(())
    }

    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        let end = self.pos.checked_add(lit.len())?;
        (self.b.get(self.pos..end)? == lit).then(|| self.pos = end)
    }

    /// Skips any JSON value at `depth` (checking its syntax), tokenizing its string values
    /// into `tokens` if given.
    fn skip(&mut self, depth: usize, mut tokens: Option<&mut Vec<Cow<'a, str>>>) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => {
                let s = self.string()?;
                match (tokens, s) {
                    (Some(out), Cow::Borrowed(s)) => tokenize_into(s, out),
                    (Some(out), Cow::Owned(s)) => tokenize_owned(&s, out),
                    (None, _) => {}
                }
                Some(())
            }
            b'{' => {
                // Object keys are not text.
                self.object(|r, _| r.skip(depth + 1, tokens.as_deref_mut()))
            }
            b'[' => {
                self.pos += 1;
                self.ws();
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.skip(depth + 1, tokens.as_deref_mut())?;
                    self.ws();
                    match self.peek()? {
                        b',' => {
                            self.pos += 1;
                            self.ws();
                        }
                        b']' => {
                            self.pos += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    /// A number, RFC 8259 grammar. Refuses exponents and very long integer parts: serde_json
    /// rejects numbers that overflow an `f64` when it walks `context`, and these are the only
    /// ways to write one.
    fn number(&mut self) -> Option<()> {
        let _ = self.eat(b'-');
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                let start = self.pos;
                while let Some(b'0'..=b'9') = self.peek() {
                    self.pos += 1;
                }
                if self.pos - start > 300 {
                    return None;
                }
            }
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            let start = self.pos;
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
            if self.pos == start {
                return None;
            }
        }
        match self.peek() {
            Some(b'e' | b'E') => None,
            _ => Some(()),
        }
    }

    /// A string value: borrowed when it has no escapes, decoded otherwise. Refuses control
    /// characters, unknown escapes and unpaired surrogates (serde_json refuses them too).
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.pos;
        self.skip_plain();
        match self.peek()? {
            b'"' => {
                let s = self.s.get(start..self.pos)?;
                self.pos += 1;
                return Some(Cow::Borrowed(s));
            }
            b'\\' => {}
            _ => return None,
        }
        let mut out = String::from(self.s.get(start..self.pos)?);
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    self.pos += 1;
                    let c = match self.peek()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            self.pos += 1;
                            let hi = self.hex4()?;
                            let c = match hi {
                                0xD800..=0xDBFF => {
                                    self.literal(b"\\u")?;
                                    let lo = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&lo) {
                                        return None;
                                    }
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                }
                                0xDC00..=0xDFFF => return None,
                                _ => hi,
                            };
                            out.push(char::from_u32(c)?);
                            continue;
                        }
                        _ => return None,
                    };
                    self.pos += 1;
                    out.push(c);
                }
                c if c < 0x20 => return None,
                _ => {
                    let run = self.pos;
                    self.skip_plain();
                    out.push_str(self.s.get(run..self.pos)?);
                }
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let end = self.pos.checked_add(4)?;
        let digits = self.b.get(self.pos..end)?;
        let mut v = 0;
        for &d in digits {
            v = v * 16 + char::from(d).to_digit(16)?;
        }
        self.pos = end;
        Some(v)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;
    use crate::fields::{extract, extract_serde};
    use crate::synth::{prepare, Synth, SynthConfig};

    /// Both readers agree on `entry`; returns whether the fast path took it.
    fn agree(entry: &[u8]) -> bool {
        let fast = scan(entry).is_some();
        assert_eq!(
            extract(3, entry),
            extract_serde(3, entry),
            "{}",
            String::from_utf8_lossy(entry)
        );
        fast
    }

    const BASE: &str = r#"{"action":"role.grant","actor":{"id":"u1","ip":"10.0.0.1","session_id":"s1","type":"user"},"change":{"principal":"bob","role":"admin"},"context":{"k":["Deep Word",{"n":"Nested"}],"num":5,"ticket":"T-9"},"id":"0190d7a4-5c1e-7cc4-9b8e-0a1b2c3d4e5f","outcome":"allow","reason":"Approved","resource":{"id":"admin","type":"role"},"source":"gw","tenant":"acme","time":"2026-01-02T03:04:05.000000006Z"}"#;

    #[test]
    fn stored_events_take_the_fast_path_and_agree() {
        let mut synth = Synth::new(9, SynthConfig::default());
        for _ in 0..3_000 {
            let e = prepare(synth.event()).unwrap();
            // The time slot as the store fills it.
            let mut data = e.data;
            let at = e.time_offset.unwrap();
            data[at..at + 30].copy_from_slice(b"2026-03-04T05:06:07.000000008Z");
            assert!(agree(&data), "{}", String::from_utf8_lossy(&data));
        }
        assert!(agree(BASE.as_bytes()));
    }

    #[test]
    fn escapes_and_unicode_are_decoded_like_serde() {
        let cases = [
            // Escapes in terms, reason and context; non-ASCII text; surrogate pairs.
            BASE.replace(r#""u1""#, r#""u\"1\\ \/ \b\f\n\r\t \u00e9\u0041""#),
            BASE.replace(r#""Approved""#, r#""Ärger über DAS Ticket #4711, ok""#),
            BASE.replace(r#""Approved""#, r#""emoji \ud83d\ude00 and \u00C4rger""#),
            BASE.replace(r#""Deep Word""#, r#""Tief\u00dfe W\u00d6rter \u0000 x""#),
            BASE.replace(r#""acme""#, r#""caf\u00e9 😀 Straße""#),
            BASE.replace(r#""Approved""#, &format!("\"{}\"", "A".repeat(65))),
            BASE.replace(r#""Approved""#, r#""İstanbul ǅ ﬃ Σσς""#),
        ];
        for c in &cases {
            assert!(agree(c.as_bytes()), "{c}");
        }
    }

    #[test]
    fn odd_but_valid_json_agrees() {
        let cases = [
            // Whitespace everywhere, keys in another order.
            " \n{ \"time\" : \"2026-01-02T03:04:05Z\" ,\r\n\t\"outcome\":\"deny\", \"resource\" : { \"type\" : \"t\" , \"id\" : \"r\" } , \"actor\":{\"type\":\"user\",\"id\":\"a\"},\"action\":\"a.b\" } \n".to_owned(),
            // Nulls for optional fields; unknown fields of every type.
            BASE.replace(r#""tenant":"acme""#, r#""tenant":null"#)
                .replace(r#""ip":"10.0.0.1""#, r#""ip":null,"x":[1,-2.5,0,true,false,null,{},[]]"#)
                .replace(r#""reason":"Approved""#, r#""reason":null"#),
            BASE.replace(r#""change":{"principal":"bob","role":"admin"}"#, r#""change":null"#),
            BASE.replace(r#""context":{"k""#, r#""context":null,"other":{"k""#),
            // Context of other shapes: a string, a number, an array, deep but allowed.
            BASE.replace(r#"{"k":["Deep Word",{"n":"Nested"}],"num":5,"ticket":"T-9"}"#, r#""Just Text""#),
            BASE.replace(r#"{"k":["Deep Word",{"n":"Nested"}],"num":5,"ticket":"T-9"}"#, "-0.25"),
            BASE.replace(r#"{"k":["Deep Word",{"n":"Nested"}],"num":5,"ticket":"T-9"}"#, r#"["a b",["c",{"d":"e f"}],12345678901234567890123]"#),
            BASE.replace(r#""num":5"#, &format!("\"deep\":{}\"w\"{}", "[".repeat(40), "]".repeat(40))),
            // Keys in context are not text; non-ASCII keys.
            BASE.replace(r#""num":5"#, r#""KeyWord":"value","clé":"Wert""#),
            BASE.replace(r#""id":"0190"#, r#""clé":{"ü":[]},"id":"0190"#),
            // Change with a scope; change that is not an object; outcome that is not allow.
            BASE.replace(r#"{"principal":"bob","role":"admin"}"#, r#"{"principal":"bob","role":"admin","scope":{"type":"tenant","id":"t1"}}"#),
            BASE.replace(r#"{"principal":"bob","role":"admin"}"#, r#"[1,2]"#),
            BASE.replace(r#""outcome":"allow""#, r#""outcome":"deny""#),
            // Empty strings.
            BASE.replace(r#""Approved""#, r#""""#).replace(r#""gw""#, r#""""#),
        ];
        for c in &cases {
            assert!(agree(c.as_bytes()), "{c}");
        }
    }

    #[test]
    fn what_the_fast_path_leaves_to_serde_still_agrees() {
        let deep = format!("\"deep\":{}\"w\"{}", "[".repeat(130), "]".repeat(130));
        let cases: Vec<Vec<u8>> = vec![
            // Repeated fields (serde: duplicate field), also after a null.
            BASE.replace(r#""source":"gw""#, r#""source":"gw","source":"gx""#).into(),
            BASE.replace(r#""tenant":"acme""#, r#""tenant":null,"tenant":"acme""#).into(),
            BASE.replace(r#""type":"user"}"#, r#""type":"user","ip":"x"}"#).into(),
            BASE.replace(r#""context":{"k""#, r#""context":null,"context":{"k""#).into(),
            // An escaped key naming a field.
            BASE.replace(r#""source":"gw""#, r#""sour\u0063e":"gw""#).into(),
            // Wrong types, missing fields, an array where an object is expected.
            BASE.replace(r#""outcome":"allow""#, r#""outcome":1"#).into(),
            BASE.replace(r#""tenant":"acme""#, r#""tenant":["acme"]"#).into(),
            BASE.replace(r#""outcome":"allow","#, "").into(),
            BASE.replace(r#","source":"gw""#, "").into(),
            br#"["a.b",{"type":"user","id":"a"},{"type":"t","id":"r"},"allow",null,null,null,"2026-01-02T03:04:05Z"]"#.to_vec(),
            b"{}".to_vec(),
            b"not json".to_vec(),
            b"".to_vec(),
            // Numbers serde may refuse or reads differently; exponents.
            BASE.replace(r#""num":5"#, r#""num":1e400,"after":"Lost Words""#).into(),
            BASE.replace(r#""num":5"#, r#""num":1.5E-3"#).into(),
            BASE.replace(r#""num":5"#, r#""num":01"#).into(),
            BASE.replace(r#""num":5"#, r#""num":-"#).into(),
            BASE.replace(r#""num":5"#, r#""num":1."#).into(),
            BASE.replace(r#""num":5"#, &format!("\"num\":{}", "9".repeat(400))).into(),
            // Nesting past serde's limit (its text walk stops there).
            BASE.replace(r#""num":5"#, &deep).into(),
            // Unpaired surrogates, bad escapes, control characters.
            BASE.replace(r#""Approved""#, r#""a\ud800b""#).into(),
            BASE.replace(r#""Deep Word""#, r#""a\udc00b""#).into(),
            BASE.replace(r#""Approved""#, r#""a\xb""#).into(),
            BASE.replace(r#""Approved""#, "\"a\tb\"").into(),
            BASE.replace(r#""Approved""#, r#""\u12""#).into(),
            // Trailing data, a trailing comma, truncation.
            format!("{BASE} x").into(),
            BASE.replace(r#""gw","#, r#""gw",,"#).into(),
            BASE.replace(r#"Z"}"#, r#"Z",}"#).into(),
            BASE[..BASE.len() - 1].into(),
            // Not a valid time.
            BASE.replace("2026-01-02T03:04:05.000000006Z", "yesterday").into(),
        ];
        let mut invalid_utf8 = BASE.as_bytes().to_vec();
        let at = BASE.find("Approved").unwrap();
        invalid_utf8[at] = 0xff;
        for c in cases.iter().chain([&invalid_utf8]) {
            agree(c);
        }
        // The cases above that serde does accept but that the fast path leaves to it.
        assert!(scan(BASE.replace(r#""num":5"#, &deep).as_bytes()).is_none());
        assert!(scan(BASE.replace(r#""num":5"#, r#""num":1.5E-3"#).as_bytes()).is_none());
        assert!(
            extract(0, BASE.replace(r#""num":5"#, r#""num":1.5E-3"#).as_bytes())
                .time
                .is_some()
        );
    }

    /// Text with characters that need escapes, non-ASCII letters and case.
    fn text() -> impl Strategy<Value = String> {
        proptest::string::string_regex(
            "[a-zA-Z0-9 .,/\"\\\\\\t\\n\u{0}\u{1f}éÄßİ😀\u{2028}-]{0,24}",
        )
        .unwrap()
    }

    /// A JSON value of a few levels, with text from [`text`], that the fast path takes.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            text().prop_map(Value::String),
            any::<i64>().prop_map(Value::from),
            // Fractions written without an exponent (the fast path leaves exponents to serde).
            any::<i32>().prop_map(|i| Value::from(f64::from(i) / 4.0)),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                // ASCII keys without escapes, even with `escape_all` (the fast path leaves
                // escaped keys to serde).
                prop::collection::btree_map("[a-zA-Z0-9 _-]{0,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn generated_events_agree(
            actor in text(), tenant in prop::option::of(text()), reason in prop::option::of(text()),
            context in value(), extra in value(), escape_all in any::<bool>(),
        ) {
            let mut ev = json!({
                "action": "role.grant", "actor": {"type": "user", "id": actor},
                "resource": {"type": "role", "id": "admin"}, "outcome": "allow",
                "time": "2026-01-02T03:04:05Z", "context": context, "extra": extra,
                "change": {"principal": reason.clone(), "role": "admin"},
            });
            if let Some(t) = tenant { ev["tenant"] = Value::String(t); }
            if let Some(r) = reason { ev["reason"] = Value::String(r); }
            let mut bytes = serde_json::to_vec(&ev).unwrap();
            if escape_all {
                // The same document with every non-ASCII character written as \u escapes.
                let s = String::from_utf8(bytes).unwrap();
                let mut out = String::new();
                let mut in_string = false;
                let mut prev_backslash = false;
                for c in s.chars() {
                    if c == '"' && !prev_backslash { in_string = !in_string; }
                    prev_backslash = c == '\\' && !prev_backslash;
                    if in_string && !c.is_ascii() {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) { out.push_str(&format!("\\u{u:04x}")); }
                    } else {
                        out.push(c);
                    }
                }
                bytes = out.into_bytes();
            }
            prop_assert!(agree(&bytes));
        }

        #[test]
        fn damaged_events_agree(edits in prop::collection::vec((any::<prop::sample::Index>(), 0..4u8, prop::sample::select(&b"{}[]\",:\\ n0-.eu\x00\xc3\xa9"[..])), 1..4)) {
            let mut bytes = BASE.as_bytes().to_vec();
            for (at, op, c) in edits {
                let i = at.index(bytes.len() + 1);
                match op {
                    0 => bytes.insert(i, c),
                    1 if i < bytes.len() => { bytes.remove(i); }
                    _ if i < bytes.len() => bytes[i] = c,
                    _ => {}
                }
            }
            agree(&bytes);
        }
    }
}
