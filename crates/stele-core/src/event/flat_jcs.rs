//! RFC 8785 (JCS) of a flat object, written directly.
//!
//! The `context` an integration maps a record to is flat: a few ids as strings and perhaps
//! a status code. The general canonicalizer buffers every member, and parses each key back
//! from JSON to sort it, which took about 6% of the Kubernetes receiver's CPU (0.4 µs of
//! 6.7 µs per event). For an object whose values are all strings, booleans, `null` or
//! integers a double holds exactly, the canonical form is simple to write: members in the
//! order of their keys' UTF-16 code units, strings escaped as everywhere in the entry
//! ([`write_str`]), and integers as their digits (what ECMAScript prints for an integral
//! double below 10^21). Anything else is left to the general canonicalizer.

use serde_json::{Map, Value};

use super::json_str::write_str;

/// 2^53: every integer of at most this magnitude is a double exactly.
const MAX_EXACT: u64 = 1 << 53;

/// The canonical bytes of `map` if it is flat (see the module documentation), else `None`.
pub(super) fn canonical_flat(map: &Map<String, Value>) -> Option<Vec<u8>> {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    // Keys are distinct, so an unstable sort gives the one order.
    members.sort_unstable_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    let mut out = Vec::with_capacity(
        members
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len) + 8)
            .sum::<usize>()
            + 2,
    );
    out.push(b'{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(&mut out, key);
        out.push(b':');
        match value {
            Value::String(s) => write_str(&mut out, s),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::Null => out.extend_from_slice(b"null"),
            Value::Number(n) => {
                let digits = match (n.as_u64(), n.as_i64()) {
                    (Some(u), _) if u <= MAX_EXACT => u.to_string(),
                    (None, Some(i)) if i.unsigned_abs() <= MAX_EXACT => i.to_string(),
                    _ => return None,
                };
                out.extend_from_slice(digits.as_bytes());
            }
            Value::Array(_) | Value::Object(_) => return None,
        }
    }
    out.push(b'}');
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn jcs(map: &Map<String, Value>) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(map).unwrap()
    }

    #[test]
    fn flat_objects_are_written_as_jcs() {
        let map = json!({
            "stage": "ResponseComplete", "audit_id": "a\"b", "response_code": 403,
            "neg": -9_007_199_254_740_992_i64, "max": 9_007_199_254_740_992_u64,
            "t": true, "f": false, "n": null, "\u{ffff}": 1, "😀": 2, "": "",
        });
        let map = map.as_object().unwrap();
        assert_eq!(canonical_flat(map).unwrap(), jcs(map));
        // U+1F600 is the surrogates D83D DE00 in UTF-16, so it sorts before U+FFFF.
        let text = String::from_utf8(canonical_flat(map).unwrap()).unwrap();
        assert!(text.find('😀').unwrap() < text.find('\u{ffff}').unwrap());
        assert_eq!(canonical_flat(&Map::new()).unwrap(), b"{}");
    }

    #[test]
    fn other_objects_are_left_to_the_canonicalizer() {
        for value in [
            json!(1.5),
            json!(-0.0),
            json!(9_007_199_254_740_993_u64),
            json!(-9_007_199_254_740_993_i64),
            json!([]),
            json!({}),
        ] {
            let map = json!({ "a": "b", "k": value });
            assert_eq!(canonical_flat(map.as_object().unwrap()), None, "{value}");
        }
    }

    fn key() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                (0u8..0x80).prop_map(char::from),
                prop::sample::select(vec!['é', '\u{2028}', '\u{e000}', '\u{ffff}', '😀', '𐀀']),
                any::<char>(),
            ],
            0..6,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    fn scalar() -> impl Strategy<Value = Value> {
        let exact = MAX_EXACT as i64;
        prop_oneof![
            key().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
            (-exact..=exact).prop_map(Value::from),
            prop::sample::select(vec![MAX_EXACT - 1, MAX_EXACT]).prop_map(Value::from),
        ]
    }

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => scalar(),
            1 => any::<i64>().prop_map(Value::from),
            1 => any::<u64>().prop_map(Value::from),
            1 => (-1e300f64..1e300).prop_map(Value::from),
            1 => Just(json!([1, "x"])),
            1 => Just(json!({"x": 1})),
        ]
    }

    proptest! {
        /// Flat objects always take this path, and it gives the canonicalizer's bytes.
        #[test]
        fn flat_matches_the_canonicalizer(members in prop::collection::vec((key(), scalar()), 0..8)) {
            let map: Map<String, Value> = members.into_iter().collect();
            prop_assert_eq!(canonical_flat(&map), Some(jcs(&map)));
        }

        /// Any object: this path gives the canonicalizer's bytes or declines.
        #[test]
        fn never_differs_from_the_canonicalizer(members in prop::collection::vec((key(), any_value()), 0..8)) {
            let map: Map<String, Value> = members.into_iter().collect();
            if let Some(bytes) = canonical_flat(&map) {
                prop_assert_eq!(bytes, jcs(&map));
            }
        }
    }
}
