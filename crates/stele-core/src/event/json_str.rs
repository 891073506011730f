//! Writing a string as a JSON string the way RFC 8785 §3.2.2.2 (ECMAScript's
//! `JSON.stringify`) and serde_json do: `"` and `\` escaped with a backslash, U+0008, U+0009,
//! U+000A, U+000C and U+000D as `\b \t \n \f \r`, the other controls below U+0020 as `\u00xx`
//! in lowercase hex, and everything else (`/`, DEL, non-ASCII, U+2028) as is.
//!
//! Entries store an integration's source record verbatim in `original`, and JSON text is
//! dense with quotes (about one byte in nine of a compact Kubernetes audit event), so this is on
//! the intake hot path. Three comparisons per byte decide, and the runs between escapes are
//! copied whole. Measured on the 1002-byte audit event of `stele bench ingest-k8s` (best of
//! 15 × 20,000 calls, this 2-core VM, Dec 2026): 555–600 ns. Slower, and so not used:
//! matching each byte against every escape, or searching for the next quote with `memchr`
//! (1.3–2x); testing eight bytes at a time on a `u64` (SWAR): 485–500 ns on that record, but
//! 200 ns instead of 31 ns on an 870-byte string without escapes and 14 ns instead of 7 ns on
//! a short field, which most calls are, and even behind the vectorized clean scan it was no
//! faster (565–580 ns), since the cost is per escape, not per byte scanned.

/// Appends `s` as a JSON string (see the module documentation for the escapes).
pub(super) fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most strings need no escape: one branch-free scan (which the compiler vectorizes), then
    // the string is copied whole.
    let clean = !bytes
        .iter()
        .fold(false, |dirty, &b| dirty | needs_escape(b));
    if clean {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    out.reserve(
        bytes
            .len()
            .saturating_add(bytes.len() / 8)
            .saturating_add(1),
    );
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        // Escapes are ASCII, so `i` is on a character boundary.
        if let Some(run) = bytes.get(run_start..i) {
            out.extend_from_slice(run);
        }
        write_escape(out, b);
        run_start = i + 1;
    }
    if let Some(run) = bytes.get(run_start..) {
        out.extend_from_slice(run);
    }
    out.push(b'"');
}

/// How many bytes [`write_str`] appends for `s`, quotes included.
///
/// Counted 32 bytes at a time into a `u8` (at most 5 extra bytes per input byte, so 160 per
/// block), which the compiler vectorizes: 80–90 ns for the 1002-byte audit event, where
/// adding up a `usize` per byte took 490 ns.
pub(super) fn escaped_len(s: &str) -> usize {
    let extra: usize = s
        .as_bytes()
        .chunks(32)
        .map(|block| {
            usize::from(
                block
                    .iter()
                    .fold(0u8, |sum, &b| sum.wrapping_add(escape_extra(b))),
            )
        })
        .sum();
    s.len().saturating_add(extra).saturating_add(2)
}

/// How many bytes the escape of `b` adds to `b` itself: 1 for `"`, `\` and the controls with
/// a short escape (`\b \t \n \f \r`), 5 for the other controls (`\u00xx`), else 0.
/// Branch-free, for [`escaped_len`].
fn escape_extra(b: u8) -> u8 {
    let control = u8::from(b < 0x20);
    let short = u8::from((b == 0x08) | (b == 0x09) | (b == 0x0a) | (b == 0x0c) | (b == 0x0d));
    u8::from(b == b'"') + u8::from(b == b'\\') + 5 * control - 4 * short
}

/// Whether a JSON string must escape byte `b`: `"`, `\` and the controls below U+0020.
fn needs_escape(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

/// Appends the escape of `b`, a byte [`needs_escape`] flags.
fn write_escape(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x09 => out.extend_from_slice(b"\\t"),
        0x0a => out.extend_from_slice(b"\\n"),
        0x0c => out.extend_from_slice(b"\\f"),
        0x0d => out.extend_from_slice(b"\\r"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            hex_digit(b >> 4),
            hex_digit(b & 0xf),
        ]),
    }
}

/// The lowercase hex digit for `n` < 16.
fn hex_digit(n: u8) -> u8 {
    if n < 10 {
        b'0' + n
    } else {
        b'a' + (n - 10)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn written(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_byte_is_tested_exactly() {
        // Each ASCII byte after 0 to 16 bytes that neighbour the escaped ones (0x01 above
        // 0x00, `!` and `#` around `"`, `[` and `]` around `\`, 0x1f and space around the
        // controls' end), so that a scan by words or blocks would be tested at every offset.
        for b in 0u8..0x80 {
            let c = char::from(b);
            for pad in 0..17 {
                let s = format!(
                    "{}{c}{}",
                    "\u{1}!#[]\u{1f} ".repeat(3).get(..pad).unwrap(),
                    "ab"
                );
                assert_eq!(
                    written(&s),
                    serde_json::to_string(&s).unwrap(),
                    "{b:#x} at {pad}"
                );
            }
        }
    }

    #[test]
    fn escapes_are_the_ones_rfc_8785_names() {
        assert_eq!(written(""), r#""""#);
        assert_eq!(written("\"\\/\u{8}\t\n\u{c}\r"), r#""\"\\/\b\t\n\f\r""#);
        assert_eq!(written("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\u{7f}\"");
        assert_eq!(written("é\u{2028}😀"), "\"é\u{2028}😀\"");
    }

    /// Characters that stress the escapes: controls, the escaped ASCII and its neighbours,
    /// DEL, non-ASCII of every UTF-8 length, and U+2028/U+2029 (which JSON leaves as is).
    fn tricky_char() -> impl Strategy<Value = char> {
        prop_oneof![
            (0u8..0x20).prop_map(char::from),
            prop::sample::select(vec!['"', '\\', '/', '!', '#', '[', ']', ' ', 'a', '\u{7f}']),
            prop::sample::select(vec!['é', '\u{2028}', '\u{2029}', '\u{feff}', '😀']),
            any::<char>(),
        ]
    }

    proptest! {
        /// The same bytes as serde_json's string serializer for any string.
        #[test]
        fn matches_serde_json(s in prop::collection::vec(tricky_char(), 0..80)) {
            let s: String = s.into_iter().collect();
            prop_assert_eq!(written(&s), serde_json::to_string(&s).unwrap());
        }

        /// [`escaped_len`] is the length [`write_str`] writes.
        #[test]
        fn escaped_len_is_exact(s in prop::collection::vec(tricky_char(), 0..200)) {
            let s: String = s.into_iter().collect();
            prop_assert_eq!(escaped_len(&s), written(&s).len());
        }

        /// Appending keeps what the buffer held.
        #[test]
        fn appends(prefix in ".{0,12}", s in ".{0,40}") {
            let mut out = prefix.clone().into_bytes();
            write_str(&mut out, &s);
            prop_assert_eq!(out, format!("{prefix}{}", serde_json::to_string(&s).unwrap()).into_bytes());
        }
    }
}
