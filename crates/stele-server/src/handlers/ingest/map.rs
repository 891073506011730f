//! Helpers the mappings share: fitting source strings into schema v1's bounds, action names,
//! IP literals and times.

use std::net::{IpAddr, SocketAddr};

use serde_json::{Map, Value};
use stele_core::event::{
    WireActor, WireEvent, WireResource, MAX_ID_CHARS, MAX_NAME_CHARS, MAX_TEXT_CHARS,
};
use stele_core::timestamp::{parse_unix_nanos_wide, Timestamp};

/// Size limits of the ingest routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngestLimits {
    /// Largest request body as sent (compressed or not), in bytes.
    pub max_body_bytes: usize,
    /// Largest body after `Content-Encoding: gzip` is decoded, in bytes.
    pub max_decoded_bytes: usize,
}

/// A JSON string of a source record, borrowed from the body unless it had escapes (the type
/// client events are read with too).
pub use stele_core::event::Str;

/// Marks a mapped value that was cut to fit its field; the whole value is in `original`.
const CUT: char = '…';

/// `s` cut to at most `max` characters (ending with `…` when cut), or `None` if empty.
/// Mapped fields are a view of the record: when a source value is longer than schema v1
/// allows, the field is shortened rather than the record rejected, since `original` keeps it
/// whole.
pub fn fit(s: &str, max: usize) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    if s.len() <= max || s.chars().count() <= max {
        return Some(s.to_owned());
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push(CUT);
    Some(out)
}

/// [`fit`] of a string the caller built: returned as is, not copied, when it fits.
pub fn fit_owned(s: String, max: usize) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    if s.len() <= max || s.chars().count() <= max {
        return Some(s);
    }
    fit(&s, max)
}

/// `a`, `sep` and `b` in one string, allocated once (the receivers build ids such as
/// `namespace/name` per record, where `format!` costs several times as much).
pub fn join(a: &str, sep: char, b: &str) -> String {
    let mut out = String::with_capacity(a.len() + sep.len_utf8() + b.len());
    out.push_str(a);
    out.push(sep);
    out.push_str(b);
    out
}

/// [`fit`] for identifiers (≤ 256 characters).
pub fn fit_id(s: &str) -> Option<String> {
    fit(s, MAX_ID_CHARS)
}

/// [`fit`] for free text (≤ 1024 characters).
pub fn fit_text(s: &str) -> Option<String> {
    fit(s, MAX_TEXT_CHARS)
}

/// [`fit`] for names and resource types (≤ 128 characters).
pub fn fit_name(s: &str) -> Option<String> {
    fit(s, MAX_NAME_CHARS)
}

/// `prefix.segment` where `segment` is `raw` made into an action segment: lowercase, runs of
/// characters outside `a-z 0-9 _ -` replaced by `-`, a leading non-letter prefixed with `x`.
/// `None` if nothing usable is left.
pub fn action(prefix: &str, raw: &str) -> Option<String> {
    let mut segment = String::with_capacity(raw.len());
    for c in raw.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
            segment.push(c);
        } else if !segment.ends_with('-') {
            segment.push('-');
        }
    }
    let segment = segment.trim_matches('-');
    if segment.is_empty() {
        return None;
    }
    let lead = if segment.starts_with(|c: char| c.is_ascii_lowercase()) {
        ""
    } else {
        "x"
    };
    let mut name = String::with_capacity(prefix.len() + 1 + lead.len() + segment.len());
    name.push_str(prefix);
    name.push('.');
    name.push_str(lead);
    name.push_str(segment);
    fit_owned(name, MAX_NAME_CHARS).filter(|n| !n.ends_with(CUT))
}

/// Whether `s` is already a valid action name (`^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$`,
/// ≤ 128 characters).
pub fn is_action(s: &str) -> bool {
    s.len() <= MAX_NAME_CHARS
        && s.split('.').count() >= 2
        && s.split('.').all(|seg| {
            seg.starts_with(|c: char| c.is_ascii_lowercase())
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        })
}

/// The IP literal of `s` if it is one, or the IP of `s` as `ip:port` / `[ip]:port`.
pub fn ip_of(s: &str) -> Option<String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        // Kept as sent when it is a plain literal (schema v1 stores IPs as sent).
        return Some(if s.len() <= 45 {
            s.to_owned()
        } else {
            ip.to_string()
        });
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip().to_string())
}

/// `s` if schema v1 accepts it as `client_time` (RFC 3339, ≤ 64 characters).
pub fn client_time(s: &str) -> Option<String> {
    (s.len() <= 64 && parse_unix_nanos_wide(s).is_ok()).then(|| s.to_owned())
}

/// Nanoseconds since the epoch as an RFC 3339 `client_time`; `None` for 0 (unset in OTLP)
/// or past 2262.
pub fn client_time_from_nanos(nanos: u64) -> Option<String> {
    if nanos == 0 {
        return None;
    }
    i64::try_from(nanos)
        .ok()
        .map(|n| Timestamp::from_unix_nanos(n).format())
}

/// A mapped event with what every integration sets: `source`, `actor`, `action`, `resource`
/// (type, id), `outcome`, and the record verbatim in `original`. The caller sets the rest.
pub fn event<'a>(
    source: &'static str,
    actor: WireActor<'a>,
    action: String,
    (resource_type, resource_id): (String, String),
    outcome: impl Into<Str<'a>>,
    original: impl Into<Str<'a>>,
) -> WireEvent<'a> {
    WireEvent {
        id: None,
        actor,
        action: action.into(),
        resource: WireResource {
            kind: resource_type.into(),
            id: resource_id.into(),
            name: None,
        },
        outcome: outcome.into(),
        reason: None,
        policy: None,
        tenant: None,
        source: Some(source.into()),
        change: None,
        context: None,
        client_time: None,
        original: Some(original.into()),
    }
}

/// An actor of type `kind` (`user`, `service`, `system`) and id `id`; the caller sets the
/// rest.
pub fn actor<'a>(kind: impl Into<Str<'a>>, id: String) -> WireActor<'a> {
    WireActor {
        kind: kind.into(),
        id: id.into(),
        name: None,
        ip: None,
        user_agent: None,
        session_id: None,
    }
}

/// Builds an object from `(key, value)` pairs, leaving out `None`s.
pub fn object<const N: usize>(fields: [(&str, Option<Value>); N]) -> Map<String, Value> {
    // Sized up front: collecting a `filter_map` starts from an empty map and grows (and
    // rehashes) it two or three times per object, which showed in receiver profiles.
    let mut map = Map::with_capacity(fields.iter().filter(|(_, v)| v.is_some()).count());
    for (k, v) in fields {
        if let Some(v) = v {
            map.insert(k.to_owned(), v);
        }
    }
    map
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn fit_cuts_by_characters_and_marks_the_cut() {
        assert_eq!(fit("", 3), None);
        assert_eq!(fit("abc", 3).unwrap(), "abc");
        assert_eq!(fit("ééé", 3).unwrap(), "ééé");
        assert_eq!(fit("abcd", 3).unwrap(), "ab…");
        assert_eq!(fit("éééé", 3).unwrap(), "éé…");
        assert_eq!(fit(&"x".repeat(300), 256).unwrap().chars().count(), 256);
        // The owned form cuts the same way.
        for (s, max) in [("", 3), ("abc", 3), ("ééé", 3), ("abcd", 3), ("éééé", 3)] {
            assert_eq!(fit_owned(s.to_owned(), max), fit(s, max), "{s}");
        }
        assert_eq!(join("payments", '/', "ledger-sa"), "payments/ledger-sa");
    }

    #[test]
    fn actions_are_made_valid() {
        assert_eq!(action("k8s", "get").unwrap(), "k8s.get");
        assert_eq!(
            action("k8s", "DeleteCollection").unwrap(),
            "k8s.deletecollection"
        );
        assert_eq!(
            action("syslog", "LOGIN FAIL!").unwrap(),
            "syslog.login-fail"
        );
        assert_eq!(action("syslog", "42").unwrap(), "syslog.x42");
        assert_eq!(action("syslog", "!!"), None);
        for a in ["k8s.get", "syslog.login-fail", "syslog.x42"] {
            assert!(is_action(a), "{a}");
        }
        assert!(!is_action("Auth.login"));
        assert!(!is_action("auth"));
        assert!(!is_action("auth..login"));
    }

    #[test]
    fn ips_from_literals_and_socket_addresses() {
        assert_eq!(ip_of("10.0.0.1").unwrap(), "10.0.0.1");
        assert_eq!(ip_of("127.0.0.1:36412").unwrap(), "127.0.0.1");
        assert_eq!(ip_of("[::1]:59943").unwrap(), "::1");
        assert_eq!(ip_of("example.com"), None);
    }
}
