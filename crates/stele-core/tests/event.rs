//! Event schema v1: validation, canonical encoding, time stamping, entry keys, limits.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use stele_core::event::{
    decode_entry, entry_key, parse_entry, stamp_time, validate, validate_ingested, validate_owned,
    Event, EventLimits, FieldError, Outcome, PrepareError, PreparedEvent, WireEvent,
    MAX_ENTRY_BYTES,
};
use stele_core::timestamp::{Timestamp, TIMESTAMP_LEN};
use uuid::Uuid;

const SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../schema/event-v1.schema.json"
);

/// 2026-11-23T19:03:19.123456789Z
const NOW: Timestamp = Timestamp::from_unix_nanos(1_795_460_599_123_456_789);
const ID: Uuid = Uuid::from_u128(0x0190_b7f2_6b1c_7cc3_9a4f_3c9e_2b1d_4e5f);

fn limits() -> EventLimits {
    EventLimits::default()
}

fn prepare(value: &Value, now: Timestamp) -> PreparedEvent {
    validate(value, &limits())
        .unwrap()
        .prepare(ID, now, &limits())
        .unwrap()
}

/// Paths of the problems `value` has, in the order reported.
fn problem_paths(value: &Value) -> Vec<String> {
    validate(value, &limits())
        .unwrap_err()
        .into_iter()
        .map(|p| p.path)
        .collect()
}

fn problems(value: &Value) -> Vec<FieldError> {
    validate(value, &limits()).unwrap_err()
}

fn minimal() -> Value {
    json!({
        "actor": {"type": "user", "id": "u-1"},
        "action": "authz.check",
        "resource": {"type": "document", "id": "doc-9"},
        "outcome": "allow"
    })
}

/// One realistic event per action kind the product is built around.
fn examples() -> Vec<Value> {
    vec![
        json!({
            "actor": {"type": "service", "id": "svc-billing", "ip": "2001:db8::7"},
            "action": "authz.check",
            "resource": {"type": "invoice", "id": "inv-2026-0042"},
            "outcome": "deny",
            "reason": "missing permission invoices.read",
            "policy": {"id": "rbac-main", "version": "17"},
            "tenant": "acme",
            "source": "gateway-eu-1",
            "context": {"request_id": "r-1", "latency_ms": 3, "path": "/v1/invoices/42"}
        }),
        json!({
            "id": "0190B7F2-6B1C-7CC3-9A4F-3C9E2B1D4E60",
            "actor": {"type": "user", "id": "u-17", "name": "Zoë Ångström", "ip": "203.0.113.7",
                      "user_agent": "Mozilla/5.0", "session_id": "s-ab12"},
            "action": "auth.login",
            "resource": {"type": "account", "id": "u-17"},
            "outcome": "allow",
            "client_time": "2026-11-23T20:03:19.5+01:00"
        }),
        json!({
            "actor": {"type": "user", "id": "admin-1"},
            "action": "role.grant",
            "resource": {"type": "role", "id": "billing-admin", "name": "Billing administrator"},
            "outcome": "allow",
            "change": {"subject": "u-17", "role": "billing-admin", "scope": ["acme"]}
        }),
        json!({
            "actor": {"type": "user", "id": "admin-1"},
            "action": "role.revoke",
            "resource": {"type": "role", "id": "billing-admin"},
            "outcome": "error",
            "reason": "directory unavailable",
            "change": {"subject": "u-17", "role": "billing-admin"}
        }),
        json!({
            "actor": {"type": "system", "id": "policy-sync"},
            "action": "policy.update",
            "resource": {"type": "policy", "id": "rbac-main"},
            "outcome": "allow",
            "policy": {"id": "rbac-main", "version": "18"},
            "change": {"before": {"version": "17"}, "after": {"version": "18"}}
        }),
        json!({
            "actor": {"type": "system", "id": "hr-sync"},
            "action": "user.deactivate",
            "resource": {"type": "user", "id": "u-99"},
            "outcome": "allow",
            "tenant": "acme"
        }),
    ]
}

fn jcs(value: &Value) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(value).unwrap()
}

#[test]
fn examples_round_trip_through_the_stored_entry() {
    for example in examples() {
        let event = validate(&example, &limits()).unwrap();
        let prepared = event.clone().prepare(ID, NOW, &limits()).unwrap();
        let stored = decode_entry(&prepared.bytes).unwrap();
        assert_eq!(stored.id, prepared.id);
        assert_eq!(stored.time, NOW);
        assert!(!stored.client_time_skewed);

        // The stored entry is exactly the client's fields plus id and time.
        let mut want = example.as_object().unwrap().clone();
        let want_id = event.id().map_or(ID, |id| id).to_string();
        assert_eq!(want_id, want_id.to_lowercase());
        want.insert("id".into(), json!(want_id));
        want.insert("time".into(), json!(NOW.format()));
        assert_eq!(parse_entry(&prepared.bytes).unwrap(), Value::Object(want));

        // Serde's Deserialize runs the same validation, and Serialize gives the client form.
        let via_serde: Event = serde_json::from_value(example.clone()).unwrap();
        assert_eq!(via_serde, event);
        let mut client_form = example.as_object().unwrap().clone();
        if let Some(id) = event.id() {
            client_form.insert("id".into(), json!(id.to_string()));
        }
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            Value::Object(client_form)
        );
    }
}

#[test]
fn accessors_expose_the_validated_fields() {
    let event = validate(&examples()[0], &limits()).unwrap();
    assert_eq!(event.action(), "authz.check");
    assert_eq!(event.outcome(), Outcome::Deny);
    assert_eq!(event.actor().ip.as_deref(), Some("2001:db8::7"));
    assert_eq!(event.resource().id, "inv-2026-0042");
    assert_eq!(event.policy().unwrap().version.as_deref(), Some("17"));
    assert_eq!(event.tenant(), Some("acme"));
    assert_eq!(event.context().unwrap()["latency_ms"], json!(3));
    assert_eq!(event.id(), None);
}

#[test]
fn client_id_is_used_and_stored_lowercase() {
    let prepared = prepare(&examples()[1], NOW);
    assert_eq!(
        prepared.id.to_string(),
        "0190b7f2-6b1c-7cc3-9a4f-3c9e2b1d4e60"
    );
    assert_eq!(
        parse_entry(&prepared.bytes).unwrap()["id"],
        json!("0190b7f2-6b1c-7cc3-9a4f-3c9e2b1d4e60")
    );
    // Without a client id the assigned one is used.
    assert_eq!(prepare(&minimal(), NOW).id, ID);
}

#[test]
fn non_objects_are_rejected_at_the_root() {
    for value in [json!([]), json!("event"), json!(null), json!(1)] {
        let errors = problems(&value);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "$");
        assert!(errors[0].message.contains("must be a JSON object"));
    }
}

#[test]
fn every_missing_required_field_is_reported() {
    assert_eq!(
        problem_paths(&json!({})),
        ["$.actor", "$.action", "$.resource", "$.outcome"]
    );
    let errors = problems(
        &json!({"actor": {}, "resource": {}, "policy": {}, "action": "a.b", "outcome": "deny"}),
    );
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "$.actor.type",
            "$.actor.id",
            "$.resource.type",
            "$.resource.id",
            "$.policy.id"
        ]
    );
    assert!(errors.iter().all(|e| e.message == "is required"));
}

#[test]
fn wrong_types_are_reported_with_paths_and_types() {
    let errors = problems(&json!({
        "id": 7,
        "actor": "bob",
        "action": ["a.b"],
        "resource": {"type": 1, "id": true, "name": {}},
        "outcome": null,
        "reason": null,
        "policy": "p",
        "tenant": 1.5,
        "source": false,
        "change": [],
        "context": "x",
        "client_time": 0
    }));
    let got: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.path.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("$.id", "must be a string, not a number"),
            ("$.actor", "must be an object, not a string"),
            ("$.action", "must be a string, not an array"),
            ("$.resource.type", "must be a string, not a number"),
            ("$.resource.id", "must be a string, not a boolean"),
            ("$.resource.name", "must be a string, not an object"),
            ("$.outcome", "must be a string, not null"),
            ("$.reason", "must be a string, not null"),
            ("$.policy", "must be an object, not a string"),
            ("$.tenant", "must be a string, not a number"),
            ("$.source", "must be a string, not a boolean"),
            ("$.change", "must be an object, not an array"),
            ("$.context", "must be an object, not a string"),
            ("$.client_time", "must be a string, not a number"),
        ]
    );
}

#[test]
fn bad_values_inside_objects_are_all_reported() {
    let mut event = minimal();
    event["actor"] = json!({"type": "robot", "id": "", "ip": "999.1.1.1", "role": "admin"});
    event["policy"] = json!({"id": "p", "version": 3, "hash": "x"});
    event["outcome"] = json!("maybe");
    let errors = problems(&event);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "$.actor.role",
            "$.actor.type",
            "$.actor.id",
            "$.actor.ip",
            "$.outcome",
            "$.policy.hash",
            "$.policy.version",
        ]
    );
    assert!(errors[0].message.contains("unknown field"));
    assert_eq!(
        errors[1].message,
        r#"must be one of "user", "service", "system", not "robot""#
    );
    assert!(errors[2].message.contains("must not be empty"));
    assert!(errors[3].message.contains("IPv4 or IPv6"));
    assert_eq!(
        errors[4].message,
        r#"must be one of "allow", "deny", "error", not "maybe""#
    );
}

#[test]
fn server_assigned_and_unknown_fields_are_rejected() {
    let mut event = minimal();
    event["time"] = json!("2026-11-23T19:03:19Z");
    event["client_time_skewed"] = json!(false);
    event["extra"] = json!({"a": 1});
    event["weird key"] = json!(1);
    let errors = problems(&event);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "$.time",
            "$.client_time_skewed",
            "$.extra",
            "$[\"weird key\"]"
        ]
    );
    assert!(errors[0].message.contains("client_time"));
    assert!(errors[1].message.contains("assigned by the server"));
    assert!(errors[2].message.contains("context"));
}

#[test]
fn action_must_be_a_dotted_lowercase_name() {
    for good in ["a.b", "auth.login", "k8s.pod-exec.create", "x_y.z-1.w2"] {
        let mut event = minimal();
        event["action"] = json!(good);
        assert!(validate(&event, &limits()).is_ok(), "{good}");
    }
    for bad in [
        "login",
        "Auth.login",
        "auth..login",
        "auth.login.",
        ".auth.login",
        "1auth.x",
        "auth.1x",
        "auth.lo gin",
        "auth.löogin",
    ] {
        let mut event = minimal();
        event["action"] = json!(bad);
        assert_eq!(problem_paths(&event), ["$.action"], "{bad}");
    }
    let mut event = minimal();
    event["action"] = json!(format!("a.{}", "b".repeat(126)));
    assert!(validate(&event, &limits()).is_ok());
    event["action"] = json!(format!("a.{}", "b".repeat(127)));
    assert_eq!(
        problems(&event)[0].message,
        "is 129 characters long; the limit is 128"
    );
}

#[test]
fn id_must_be_a_hyphenated_non_nil_uuid() {
    for bad in [
        "not-a-uuid",
        "0190b7f26b1c7cc39a4f3c9e2b1d4e5f",
        "{0190b7f2-6b1c-7cc3-9a4f-3c9e2b1d4e5f}",
        "urn:uuid:0190b7f2-6b1c-7cc3-9a4f-3c9e2b1d4e5f",
        "00000000-0000-0000-0000-000000000000",
    ] {
        let mut event = minimal();
        event["id"] = json!(bad);
        assert_eq!(problem_paths(&event), ["$.id"], "{bad}");
    }
}

#[test]
fn client_time_must_be_rfc3339_and_is_kept_as_sent() {
    for bad in [
        "yesterday",
        "2026-11-23 19:03:19Z",
        "2026-11-23T19:03:19",
        "2026-02-30T00:00:00Z",
    ] {
        let mut event = minimal();
        event["client_time"] = json!(bad);
        assert_eq!(problem_paths(&event), ["$.client_time"], "{bad}");
    }
    let mut event = minimal();
    let sent = "2026-11-23t20:03:19.123456789123+01:00";
    event["client_time"] = json!(sent);
    let prepared = prepare(&event, NOW);
    assert_eq!(
        parse_entry(&prepared.bytes).unwrap()["client_time"],
        json!(sent)
    );
}

#[test]
fn client_time_skew_is_flagged_beyond_the_tolerance() {
    let tolerance = limits().client_time_tolerance_ns;
    let at = |offset_ns: i64| Timestamp::from_unix_nanos(NOW.unix_nanos() + offset_ns).format();
    let skewed = |client_time: &str, limits: &EventLimits| {
        let mut event = minimal();
        event["client_time"] = json!(client_time);
        let prepared = validate(&event, limits)
            .unwrap()
            .prepare(ID, NOW, limits)
            .unwrap();
        let flag = parse_entry(&prepared.bytes)
            .unwrap()
            .get("client_time_skewed")
            .cloned();
        assert_eq!(
            decode_entry(&prepared.bytes).unwrap().client_time_skewed,
            flag.is_some()
        );
        match flag {
            None => false,
            Some(v) => {
                assert_eq!(v, json!(true), "only ever stored as true");
                true
            }
        }
    };
    assert!(!skewed(&at(0), &limits()));
    assert!(!skewed(&at(tolerance), &limits()));
    assert!(!skewed(&at(-tolerance), &limits()));
    assert!(skewed(&at(tolerance + 1), &limits()));
    assert!(skewed(&at(-tolerance - 1), &limits()));
    // Offsets count: 20:03:19.123456789+01:00 is NOW.
    assert!(!skewed("2026-11-23T20:03:19.123456789+01:00", &limits()));
    assert!(skewed("2026-11-23T19:03:19.123456789+01:00", &limits()));
    // Far outside the nanosecond timestamp range: accepted, and skewed.
    assert!(skewed("0001-01-01T00:00:00Z", &limits()));
    assert!(skewed("9999-12-31T23:59:59Z", &limits()));
    let strict = EventLimits {
        client_time_tolerance_ns: 0,
        ..limits()
    };
    assert!(skewed(&at(1), &strict));
    assert!(!skewed(&at(0), &strict));
}

#[test]
fn canonical_bytes_are_jcs() {
    let mut event = minimal();
    event["context"] = json!({"z": [1.0, 1e21, -0.0, "\u{1F600}", "\u{7f}\n"], "\u{e000}": 1, "\u{1F600}": 2, "a": null});
    let prepared = prepare(&event, NOW);
    // Derived by hand from RFC 8785: keys sorted by UTF-16 code units (U+1F600 is the
    // surrogate pair D83D DE00, which sorts before U+E000 although its code point is larger),
    // numbers as ECMAScript prints doubles, only control characters escaped, no whitespace.
    let want = concat!(
        r#"{"action":"authz.check","actor":{"id":"u-1","type":"user"},"#,
        "\"context\":{\"a\":null,\"z\":[1,1e+21,0,\"\u{1F600}\",\"\u{7f}\\n\"],\"\u{1F600}\":2,\"\u{e000}\":1},",
        r#""id":"0190b7f2-6b1c-7cc3-9a4f-3c9e2b1d4e5f","outcome":"allow","#,
        r#""resource":{"id":"doc-9","type":"document"},"time":"2026-11-23T19:03:19.123456789Z"}"#
    );
    assert_eq!(String::from_utf8(prepared.bytes.clone()).unwrap(), want);
    assert_eq!(
        &prepared.bytes[prepared.time_offset..][..TIMESTAMP_LEN],
        NOW.format().as_bytes()
    );
}

#[test]
fn third_parties_can_recompute_the_leaf_hash() {
    for example in examples() {
        let prepared = prepare(&example, NOW);
        let reparsed: Value = serde_json::from_slice(&prepared.bytes).unwrap();
        assert_eq!(jcs(&reparsed), prepared.bytes);
        let leaf = |bytes: &[u8]| {
            Sha256::new()
                .chain_update([0u8])
                .chain_update(bytes)
                .finalize()
        };
        assert_eq!(leaf(&jcs(&reparsed)), leaf(&prepared.bytes));
    }
}

#[test]
fn stamping_equals_preparing_with_that_time() {
    for example in examples() {
        let later = Timestamp::from_unix_nanos(NOW.unix_nanos() + 1);
        let mut stamped = prepare(&example, NOW);
        stamp_time(&mut stamped.bytes, stamped.time_offset, later).unwrap();
        assert_eq!(stamped, prepare(&example, later));
        assert_eq!(decode_entry(&stamped.bytes).unwrap().time, later);
    }
}

#[test]
fn stamping_refuses_an_offset_that_is_not_the_time_value() {
    let mut prepared = prepare(&minimal(), NOW);
    let original = prepared.bytes.clone();
    let len = prepared.bytes.len();
    for offset in [
        0,
        1,
        prepared.time_offset - 1,
        prepared.time_offset + 1,
        len,
        usize::MAX,
    ] {
        assert!(
            stamp_time(&mut prepared.bytes, offset, NOW).is_err(),
            "{offset}"
        );
        assert_eq!(prepared.bytes, original);
    }
}

#[test]
fn entry_key_agrees_with_prepare_and_ignores_time_and_skew() {
    for example in examples() {
        let prepared = prepare(&example, NOW);
        assert_eq!(
            entry_key(&prepared.bytes),
            Some((prepared.id, prepared.content_digest))
        );
    }
    // A retry (same id, same content) an hour later, now with a skewed client_time, has the
    // same digest; different content does not.
    let mut event = minimal();
    event["id"] = json!(ID.to_string());
    event["client_time"] = json!(NOW.format());
    let first = prepare(&event, NOW);
    let retry = prepare(
        &event,
        Timestamp::from_unix_nanos(NOW.unix_nanos() + 3_600_000_000_000),
    );
    assert!(parse_entry(&retry.bytes).unwrap()["client_time_skewed"] == json!(true));
    assert_eq!(first.content_digest, retry.content_digest);
    assert_eq!(entry_key(&retry.bytes), Some((ID, first.content_digest)));
    event["reason"] = json!("changed");
    assert_ne!(prepare(&event, NOW).content_digest, first.content_digest);
    // The digest covers the stored event minus time and skew, as documented.
    let mut without = parse_entry(&first.bytes).unwrap();
    without.as_object_mut().unwrap().remove("time");
    assert_eq!(
        first.content_digest[..],
        Sha256::digest(jcs(&without))[..16]
    );

    assert_eq!(entry_key(b"not json"), None);
    assert_eq!(entry_key(b"[]"), None);
    assert_eq!(entry_key(br#"{"id":"nope"}"#), None);
}

#[test]
fn context_size_is_bounded_by_its_canonical_form() {
    let limit = limits().max_context_bytes;
    // {"k":"…"} is 8 bytes plus the string.
    let mut event = minimal();
    event["context"] = json!({"k": "x".repeat(limit - 8)});
    assert!(validate(&event, &limits()).is_ok());
    // Whitespace and key order in the input do not count; the canonical form does.
    event["context"] = json!({"k": "x".repeat(limit - 7)});
    let errors = problems(&event);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "$.context");
    assert!(
        errors[0]
            .message
            .contains(&format!("is {} bytes", limit + 1)),
        "{}",
        errors[0].message
    );
    assert!(errors[0]
        .message
        .contains(&format!("limit is {limit} bytes")));
    let small = EventLimits {
        max_context_bytes: 10,
        ..limits()
    };
    event["context"] = json!({"k": "xx"});
    assert!(validate(&event, &small).is_ok());
    event["context"] = json!({"k": "xxx"});
    assert!(validate(&event, &small).is_err());
}

#[test]
fn oversized_entries_are_rejected_with_their_size() {
    let mut event = minimal();
    event["change"] = json!({"blob": "x".repeat(MAX_ENTRY_BYTES)});
    let err = validate(&event, &limits())
        .unwrap()
        .prepare(ID, NOW, &limits())
        .unwrap_err();
    assert_eq!(err.path, "$");
    let size = jcs(&event).len()
        + r#","id":"0190b7f2-6b1c-7cc3-9a4f-3c9e2b1d4e5f","time":"2026-11-23T19:03:19.123456789Z""#
            .len();
    assert!(
        err.message.contains(&format!("is {size} bytes")),
        "{}",
        err.message
    );
    assert!(err.message.contains("limit is 65535 bytes"));

    // The exact boundary: an entry of 65535 bytes is accepted, one more byte is not.
    let base = prepare(&minimal(), NOW).bytes.len() + r#","change":{"b":""}"#.len();
    event["change"] = json!({"b": "x".repeat(MAX_ENTRY_BYTES - base)});
    assert_eq!(prepare(&event, NOW).bytes.len(), MAX_ENTRY_BYTES);
    event["change"] = json!({"b": "x".repeat(MAX_ENTRY_BYTES - base + 1)});
    let event = validate(&event, &limits()).unwrap();
    assert!(event.clone().prepare(ID, NOW, &limits()).is_err());
    // A configured limit above the tlog-tiles bound does not lift it.
    let lax = EventLimits {
        max_entry_bytes: usize::MAX,
        ..limits()
    };
    assert!(event.prepare(ID, NOW, &lax).is_err());
}

#[test]
fn deserializing_an_event_validates_it() {
    let err = serde_json::from_value::<Event>(json!({"action": "x"})).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("$.actor: is required"), "{message}");
    assert!(message.contains("$.action:"), "{message}");
}

/// Every field the schema declares is accepted by `validate`, every field `validate` accepts
/// is declared, and each `maxLength`/`required` in the schema matches the code.
#[test]
fn json_schema_agrees_with_the_validator() {
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(SCHEMA).unwrap()).unwrap();
    let defs = &schema["$defs"];
    let full = json!({
        "id": ID.to_string(),
        "actor": {"type": "user", "id": "u", "name": "n", "ip": "::1", "user_agent": "ua", "session_id": "s"},
        "action": "a.b",
        "resource": {"type": "t", "id": "i", "name": "n"},
        "outcome": "allow",
        "reason": "r",
        "policy": {"id": "p", "version": "1"},
        "tenant": "t",
        "source": "s",
        "change": {},
        "context": {},
        "client_time": "2026-11-23T19:03:19Z"
    });
    validate(&full, &limits()).unwrap();
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    let objects = [
        ("$", &defs["clientFields"], &schema["required"], &full),
        (
            "$.actor",
            &defs["actor"],
            &defs["actor"]["required"],
            &full["actor"],
        ),
        (
            "$.resource",
            &defs["resource"],
            &defs["resource"]["required"],
            &full["resource"],
        ),
        (
            "$.policy",
            &defs["policy"],
            &defs["policy"]["required"],
            &full["policy"],
        ),
    ];
    for (path, def, required, example) in objects {
        assert_eq!(keys(&def["properties"]), keys(example), "{path}");
        for name in required.as_array().unwrap() {
            let name = name.as_str().unwrap();
            let mut event = full.clone();
            let target = if path == "$" {
                &mut event
            } else {
                &mut event[&path[2..]]
            };
            target.as_object_mut().unwrap().remove(name);
            assert_eq!(problem_paths(&event), [format!("{path}.{name}")]);
        }
        for (name, property) in def["properties"].as_object().unwrap() {
            let Some(max) = property["maxLength"].as_u64() else {
                continue;
            };
            if property.get("pattern").is_some()
                || property.get("format").is_some()
                || property.get("anyOf").is_some()
            {
                continue; // Exercised by the dedicated tests above.
            }
            let max = usize::try_from(max).unwrap();
            let mut event = full.clone();
            let target = if path == "$" {
                &mut event
            } else {
                &mut event[&path[2..]]
            };
            // Multi-byte characters: the limit counts characters, as JSON Schema does.
            target[name] = json!("é".repeat(max));
            assert!(validate(&event, &limits()).is_ok(), "{path}.{name}");
            let target = if path == "$" {
                &mut event
            } else {
                &mut event[&path[2..]]
            };
            target[name] = json!("é".repeat(max + 1));
            assert_eq!(problem_paths(&event), [format!("{path}.{name}")]);
            assert_eq!(property["minLength"], json!(1), "{path}.{name}");
            let target = if path == "$" {
                &mut event
            } else {
                &mut event[&path[2..]]
            };
            target[name] = json!("");
            assert_eq!(problem_paths(&event), [format!("{path}.{name}")]);
        }
    }
}

/// Arbitrary JSON: every number shape serde_json can hold (u64 and i64 beyond 2^53, finite
/// doubles including subnormals and -0.0), any Unicode in strings and keys, nesting.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinities", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn stored_bytes_are_recomputable(
        context in prop::collection::btree_map(".{0,6}", json_value(), 0..6),
        change in json_value(),
        nanos in any::<i64>(),
        later in any::<i64>(),
    ) {
        let mut event = minimal();
        event["context"] = Value::Object(context.into_iter().collect());
        event["change"] = json!({"value": change});
        let now = Timestamp::from_unix_nanos(nanos);
        let prepared = prepare(&event, now);

        // Anyone can parse the entry and apply JCS to get the same bytes back.
        let reparsed: Value = serde_json::from_slice(&prepared.bytes).unwrap();
        prop_assert_eq!(jcs(&reparsed), prepared.bytes.clone());
        // entry_key (storage recovery) agrees with prepare.
        prop_assert_eq!(entry_key(&prepared.bytes), Some((ID, prepared.content_digest)));
        // Stamping a later time equals preparing with it.
        let later = Timestamp::from_unix_nanos(later);
        let mut stamped = prepared.clone();
        stamp_time(&mut stamped.bytes, stamped.time_offset, later).unwrap();
        prop_assert_eq!(stamped, prepare(&event, later));
        // And the stored entry decodes back to an event with the same canonical form.
        let decoded = decode_entry(&prepared.bytes).unwrap();
        prop_assert_eq!(decoded.time, now);
        let again = decoded.event.prepare(Uuid::nil(), now, &limits()).unwrap();
        prop_assert_eq!(again, prepared);
    }
}

/// The stored entry as `prepare` built it before it wrote canonical bytes directly: serialize
/// the client form to a `Value`, add the server fields, apply a general RFC 8785
/// implementation. Kept as the oracle for the direct writer.
fn oracle_prepare(
    event: &Event,
    assigned_id: Uuid,
    now: Timestamp,
    limits: &EventLimits,
) -> Result<PreparedEvent, FieldError> {
    let Value::Object(mut stored) = serde_json::to_value(event).unwrap() else {
        panic!("an event serializes to an object");
    };
    let id = event.id().unwrap_or(assigned_id);
    stored.insert("id".into(), json!(id.to_string()));
    let digest = Sha256::digest(jcs(&Value::Object(stored.clone())));
    if event.client_time_skewed(now, limits.client_time_tolerance_ns) {
        stored.insert("client_time_skewed".into(), json!(true));
    }
    stored.insert("time".into(), json!(now.format()));
    let bytes = jcs(&Value::Object(stored));
    let max = limits.max_entry_bytes.min(MAX_ENTRY_BYTES);
    if bytes.len() > max {
        return Err(FieldError::new(
            "$",
            format!(
                "the stored event is {} bytes in canonical form; the limit is {max} bytes",
                bytes.len()
            ),
        ));
    }
    Ok(PreparedEvent {
        id,
        time_offset: bytes.len() - TIMESTAMP_LEN - 2,
        bytes,
        content_digest: digest[..16].try_into().unwrap(),
    })
}

/// Characters that stress JSON string escaping and UTF-16 key ordering: every control
/// character, quote, backslash, solidus, DEL, line and paragraph separators, private use,
/// non-BMP (surrogate pairs in UTF-16), and anything else.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::char::range('a', 'z'),
        2 => prop::char::range('\u{0}', '\u{1f}'),
        2 => prop::sample::select(vec![
            '"', '\\', '/', '\u{7f}', '\u{80}', '\u{a0}', 'é', 'Å', '\u{2028}', '\u{2029}',
            '\u{1F600}', '\u{e000}', '\u{fffd}', '\u{ffff}', '\u{10000}', '\u{10ffff}', '<', '&',
            '\'', ' ', '+',
        ]),
        1 => any::<char>(),
    ]
}

/// A non-empty string of at most `max` tricky characters.
fn tricky(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 1..=max).prop_map(String::from_iter)
}

/// Sometimes a value, sometimes absent.
fn maybe<T: std::fmt::Debug + Clone>(
    strategy: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop::option::weighted(0.6, strategy)
}

/// A `client_time` for a given `now`: at, just inside or just outside the skew tolerance,
/// anywhere in the timestamp range, with other offsets, or far outside the range.
fn client_time(now: Timestamp) -> impl Strategy<Value = String> {
    let tolerance = EventLimits::default().client_time_tolerance_ns;
    let at = move |delta: i64| {
        Timestamp::from_unix_nanos(now.unix_nanos().saturating_add(delta)).format()
    };
    prop_oneof![
        prop::sample::select(vec![
            0,
            tolerance,
            -tolerance,
            tolerance + 1,
            -tolerance - 1
        ])
        .prop_map(at),
        any::<i64>().prop_map(|n| Timestamp::from_unix_nanos(n).format()),
        Just("2026-11-23T20:03:19.5+01:00".to_owned()),
        Just("2026-11-23t19:03:19.123456789123z".to_owned()),
        Just("0001-01-01T00:00:00Z".to_owned()),
        Just("9999-12-31T23:59:59Z".to_owned()),
    ]
}

/// A random valid event at a random `now`.
fn valid_event() -> impl Strategy<Value = (Value, Timestamp)> {
    let actor = (
        prop::sample::select(vec!["user", "service", "system"]),
        tricky(12),
        maybe(tricky(12)),
        maybe(any::<std::net::IpAddr>().prop_map(|ip| ip.to_string())),
        maybe(tricky(12)),
        maybe(tricky(12)),
    )
        .prop_map(|(kind, id, name, ip, user_agent, session_id)| {
            let mut actor = json!({"type": kind, "id": id});
            for (key, value) in [
                ("name", name),
                ("ip", ip),
                ("user_agent", user_agent),
                ("session_id", session_id),
            ] {
                if let Some(value) = value {
                    actor[key] = json!(value);
                }
            }
            actor
        });
    let resource = (tricky(12), tricky(12), maybe(tricky(12))).prop_map(|(kind, id, name)| {
        let mut resource = json!({"type": kind, "id": id});
        if let Some(name) = name {
            resource["name"] = json!(name);
        }
        resource
    });
    let policy = (tricky(12), maybe(tricky(6))).prop_map(|(id, version)| {
        let mut policy = json!({"id": id});
        if let Some(version) = version {
            policy["version"] = json!(version);
        }
        policy
    });
    let object = || {
        prop::collection::btree_map(tricky(6), json_value(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    };
    let id = any::<u128>()
        .prop_filter("not nil", |n| *n != 0)
        .prop_flat_map(|n| {
            let id = Uuid::from_u128(n).to_string();
            prop_oneof![Just(id.clone()), Just(id.to_uppercase())]
        });
    (
        (
            maybe(id),
            actor,
            "[a-z][a-z0-9_-]{0,5}(\\.[a-z][a-z0-9_-]{0,5}){1,3}",
            resource,
            prop::sample::select(vec!["allow", "deny", "error"]),
            maybe(tricky(40)),
            maybe(policy),
        ),
        (
            maybe(tricky(12)),
            maybe(tricky(12)),
            maybe(object()),
            maybe(object()),
            any::<i64>().prop_map(Timestamp::from_unix_nanos),
            // `original` as an integration sets it (validate_ingested): any text.
            prop::option::weighted(0.3, tricky(60)),
        ),
    )
        .prop_flat_map(|(head, (tenant, source, change, context, now, original))| {
            (
                Just((head, tenant, source, change, context, now, original)),
                maybe(client_time(now)),
            )
        })
        .prop_map(
            |(
                (
                    (id, actor, action, resource, outcome, reason, policy),
                    tenant,
                    source,
                    change,
                    context,
                    now,
                    original,
                ),
                client_time,
            )| {
                let mut event = json!({
                    "actor": actor, "action": action, "resource": resource, "outcome": outcome
                });
                let optional = [
                    ("id", id.map(Value::from)),
                    ("reason", reason.map(Value::from)),
                    ("policy", policy),
                    ("tenant", tenant.map(Value::from)),
                    ("source", source.map(Value::from)),
                    ("change", change),
                    ("context", context),
                    ("client_time", client_time.map(Value::from)),
                    ("original", original.map(Value::from)),
                ];
                for (key, value) in optional {
                    if let Some(value) = value {
                        event[key] = value;
                    }
                }
                (event, now)
            },
        )
}

/// Turns a valid event into a likely invalid one: fields removed, replaced by arbitrary
/// JSON (wrong types, empty or over-long strings), unknown or server-assigned fields added,
/// at the top level and inside `actor`, `resource` and `policy`.
fn mutated_event() -> impl Strategy<Value = Value> {
    let path = prop::sample::select(vec!["", "", "", "actor", "resource", "policy"]);
    let key = prop::sample::select(vec![
        "id",
        "actor",
        "action",
        "resource",
        "outcome",
        "reason",
        "policy",
        "tenant",
        "source",
        "change",
        "context",
        "client_time",
        "original",
        "time",
        "client_time_skewed",
        "type",
        "name",
        "ip",
        "user_agent",
        "session_id",
        "version",
        "extra",
        "weird key",
        "",
    ]);
    let replacement = prop_oneof![
        json_value(),
        Just(json!("")),
        Just(json!("x".repeat(300))),
        Just(json!("é".repeat(1100))),
        Just(json!("maybe")),
        Just(json!({})),
        Just(Value::Null),
    ];
    let edit = (path, key, prop::option::of(replacement));
    (valid_event(), prop::collection::vec(edit, 0..5)).prop_map(|((mut event, _), edits)| {
        for (path, key, replacement) in edits {
            let target = if path.is_empty() {
                &mut event
            } else {
                &mut event[path]
            };
            let Some(object) = target.as_object_mut() else {
                continue;
            };
            match replacement {
                Some(value) => {
                    object.insert(key.to_owned(), value);
                }
                None => {
                    object.remove(key);
                }
            }
        }
        event
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The direct canonical writer produces exactly what serializing to a `Value` and
    /// applying a general RFC 8785 implementation produces: bytes, time offset, digest, id.
    #[test]
    fn direct_writer_matches_generic_jcs((value, now) in valid_event()) {
        let event = validate_ingested(value.clone(), &limits()).unwrap();
        if value.get("original").is_some() {
            // Clients may not send it; only integrations (validate_ingested) set it.
            let refused = validate(&value, &limits()).unwrap_err();
            prop_assert_eq!(refused.len(), 1);
            prop_assert_eq!(&refused[0].path, "$.original");
        } else {
            prop_assert_eq!(&validate(&value, &limits()).unwrap(), &event);
            prop_assert_eq!(&validate_owned(value.clone(), &limits()).unwrap(), &event);
        }
        // Decoding the stored entry gives the same event back, `original` included.
        let stored = event.encode(ID, now, &limits()).unwrap();
        let decoded = decode_entry(&stored.bytes).unwrap();
        prop_assert_eq!(decoded.event.original(), event.original());
        let want = oracle_prepare(&event, ID, now, &limits());
        prop_assert_eq!(event.clone().prepare(ID, now, &limits()), want.clone());
        prop_assert_eq!(event.encode(ID, now, &limits()).map_err(FieldError::from), want);
        // A tight entry limit fails both ways with the same size and message.
        let tight = EventLimits { max_entry_bytes: 200, ..limits() };
        let want = oracle_prepare(&event, ID, now, &tight);
        prop_assert_eq!(event.clone().prepare(ID, now, &tight), want.clone());
        match (event.encode(ID, now, &tight), want) {
            (Err(PrepareError::TooLarge { size, limit }), Err(want)) => {
                prop_assert_eq!(limit, 200);
                let stated = format!("is {size} bytes");
                prop_assert!(want.message.contains(&stated), "{}", want.message);
            }
            (got, want) => prop_assert_eq!(got.map_err(FieldError::from), want),
        }
    }

    /// Validating a value by reference or by value gives the same event or the same
    /// problems, in the same order.
    #[test]
    fn validate_owned_agrees_with_validate(value in mutated_event()) {
        prop_assert_eq!(validate_owned(value.clone(), &limits()), validate(&value, &limits()));
    }

    /// The typed fast path accepts exactly the events validation accepts, and builds the
    /// same event from the JSON text; everything else it leaves to validation.
    #[test]
    fn typed_fast_path_agrees_with_validation(value in mutated_event()) {
        assert_fast_path_agrees(&value)?;
    }

    /// The same over valid events of every shape (escapes, `context`, `change`, client ids).
    #[test]
    fn typed_fast_path_takes_every_valid_event((value, _now) in valid_event()) {
        assert_fast_path_agrees(&value)?;
    }

    /// An integration's wire event (`original` set in code) is checked exactly as
    /// `validate_ingested` checks the same event's JSON; a refused one comes back whole.
    #[test]
    fn wire_events_with_original_agree_with_validate_ingested(
        value in mutated_event(),
        original in prop_oneof![Just(String::new()), "[a-z\"\\\\é]{1,20}"],
    ) {
        assert_wire_original_agrees(value, &original)?;
    }

    /// The same over valid events of every shape.
    #[test]
    fn valid_wire_events_with_original_agree_with_validate_ingested(
        (value, _now) in valid_event(),
        original in "[a-z\"\\\\é]{1,20}",
    ) {
        assert_wire_original_agrees(value, &original)?;
    }

    /// An integration's event is checked exactly like a client's, except that `original` is
    /// allowed: same event or same problems, in the same order, once `original` is set aside.
    #[test]
    fn validate_ingested_differs_only_in_original(value in mutated_event()) {
        let mut without = value.clone();
        let original = without.as_object_mut().and_then(|m| m.shift_remove("original"));
        let ingested = validate_ingested(value, &limits());
        let client = validate_owned(without, &limits());
        match (original, ingested, client) {
            (None, ingested, client) => prop_assert_eq!(ingested, client),
            (Some(Value::String(s)), Ok(ingested), Ok(client)) if !s.is_empty() => {
                prop_assert_eq!(ingested.original(), Some(s.as_str()));
                prop_assert_eq!(ingested.actor(), client.actor());
            }
            (Some(Value::String(s)), Err(ingested), Err(client)) if !s.is_empty() => {
                prop_assert_eq!(ingested, client);
            }
            (Some(_), Err(ingested), client) => {
                // A bad `original` adds exactly its own problem, after the others.
                let (last, rest) = ingested.split_last().unwrap();
                prop_assert_eq!(&last.path, "$.original");
                prop_assert_eq!(rest.to_vec(), client.err().unwrap_or_default());
            }
            (original, ingested, client) => {
                prop_assert!(false, "{original:?}: {ingested:?} vs {client:?}");
            }
        }
    }
}

/// The fast path's answer for `text`.
fn fast_path(text: &[u8], limits: &EventLimits) -> Option<Event> {
    serde_json::from_slice::<WireEvent>(text)
        .ok()
        .and_then(|wire| wire.check(limits).ok())
}

fn assert_fast_path_agrees(value: &Value) -> Result<(), TestCaseError> {
    let text = serde_json::to_vec(value).unwrap();
    for limits in [
        limits(),
        EventLimits {
            max_context_bytes: 40,
            ..limits()
        },
    ] {
        let fast = fast_path(&text, &limits);
        let full = validate_owned(value.clone(), &limits);
        match (fast, full) {
            (Some(fast), Ok(full)) => prop_assert_eq!(fast, full),
            (None, Err(_)) => {}
            (fast, full) => prop_assert!(false, "{value}: fast {fast:?}, validation {full:?}"),
        }
    }
    Ok(())
}

/// Parses `value` (without `original`) as a wire event, sets `original` in code, and checks
/// that [`WireEvent::check`] agrees with `validate_ingested` of the JSON with `original`, and
/// that [`WireEvent::into_value`] gives back that JSON exactly.
fn assert_wire_original_agrees(mut value: Value, original: &str) -> Result<(), TestCaseError> {
    let Some(object) = value.as_object_mut() else {
        return Ok(());
    };
    object.shift_remove("original");
    let text = serde_json::to_vec(&value).unwrap();
    let Ok(mut wire) = serde_json::from_slice::<WireEvent>(&text) else {
        return Ok(());
    };
    wire.original = Some(original.to_owned().into());
    let mut want = value.clone();
    want["original"] = json!(original);
    match (
        wire.check(&limits()),
        validate_ingested(want.clone(), &limits()),
    ) {
        (Ok(fast), Ok(full)) => {
            prop_assert_eq!(fast.original(), Some(original));
            prop_assert_eq!(fast, full);
        }
        (Err(back), Err(_)) => prop_assert_eq!((*back).into_value(), want),
        (fast, full) => prop_assert!(false, "{want}: wire {fast:?}, validation {full:?}"),
    }
    Ok(())
}

#[test]
fn the_fast_path_leaves_what_it_does_not_take_to_validation() {
    // Validation reports these (or, for a repeated key, keeps the last); the fast path takes
    // none of them, so their answer is always validation's.
    let minimal_text = serde_json::to_string(&minimal()).unwrap();
    let body = minimal_text.strip_prefix('{').unwrap();
    for text in [
        format!(r#"{{"reason":null,{body}"#),
        format!(r#"{{"reason":"a","reason":"b",{body}"#),
        format!(r#"{{"context":null,{body}"#),
        format!(r#"{{"extra":1,{body}"#),
        format!(r#"{{"time":"2026-11-23T19:03:19Z",{body}"#),
        format!(r#"{{"original":"x",{body}"#),
        format!(r#"{{"tenant":"",{body}"#),
        format!(r#"{{"id":"00000000-0000-0000-0000-000000000000",{body}"#),
        // serde's derived structs would take an array of the fields in order.
        format!(r#"{{"policy":["p"],{body}"#),
        r#"{"actor":["user","a"],"action":"a.b","resource":["t","r"],"outcome":"allow"}"#
            .to_owned(),
        r#"[null,{"type":"user","id":"a"},"a.b",{"type":"t","id":"r"},"allow"]"#.to_owned(),
        r#"{"actor":{"type":"user","id":"u"}}"#.to_owned(),
        "[]".to_owned(),
    ] {
        assert_eq!(fast_path(text.as_bytes(), &limits()), None, "{text}");
    }
    let repeated = format!(r#"{{"reason":"a","reason":"b",{body}"#);
    let value: Value = serde_json::from_str(&repeated).unwrap();
    assert_eq!(validate(&value, &limits()).unwrap().reason(), Some("b"));
    // Escaped strings are unescaped as validation unescapes them.
    let escaped = format!(r#"{{"reason":"tab\there \u00e9 \"q\"",{body}"#);
    let event = fast_path(escaped.as_bytes(), &limits()).unwrap();
    assert_eq!(event.reason(), Some("tab\there é \"q\""));
}

#[test]
fn the_fast_path_applies_every_length_limit_as_validation_does() {
    let fields: [(&[&str], usize); 13] = [
        (&["reason"], 1024),
        (&["actor", "name"], 1024),
        (&["actor", "user_agent"], 1024),
        (&["resource", "name"], 1024),
        (&["actor", "id"], 256),
        (&["actor", "session_id"], 256),
        (&["resource", "id"], 256),
        (&["tenant"], 256),
        (&["source"], 256),
        (&["policy", "id"], 256),
        (&["policy", "version"], 256),
        (&["resource", "type"], 128),
        (&["client_time"], 64),
    ];
    for (path, max) in fields {
        for len in [max, max + 1] {
            for unit in ["x", "é"] {
                let mut event = minimal();
                event["policy"] = json!({"id": "p"});
                let (last, parents) = path.split_last().unwrap();
                let mut target = &mut event;
                for parent in parents {
                    target = &mut target[*parent];
                }
                target[*last] = if *last == "client_time" {
                    // A valid time padded with fractional digits to the length.
                    let base = "2026-11-23T19:03:19.";
                    json!(format!("{base}{}Z", "1".repeat(len - base.len() - 1)))
                } else {
                    json!(unit.repeat(len))
                };
                assert_fast_path_agrees(&event).unwrap();
                let accepted = validate(&event, &limits()).is_ok();
                assert_eq!(accepted, len == max, "{path:?} at {len} × {unit:?}");
            }
        }
    }
}

#[test]
fn filling_in_bound_fields_checks_them_like_sent_ones() {
    let mut event = validate(&minimal(), &limits()).unwrap();
    assert!(event.fill_in(Some("billing".to_owned()), None));
    assert_eq!((event.source(), event.tenant()), (Some("billing"), None));
    // A field already set is not overwritten; an invalid value is refused; both leave the
    // event as it was.
    let before = event.clone();
    assert!(!event.fill_in(Some("other".to_owned()), Some("acme".to_owned())));
    assert!(!event.fill_in(None, Some(String::new())));
    assert!(!event.fill_in(None, Some("t".repeat(257))));
    assert_eq!(event, before);
    assert!(event.fill_in(None, Some("acme".to_owned())));
    assert_eq!(event.tenant(), Some("acme"));
}

#[test]
fn original_is_refused_from_clients_and_kept_for_integrations() {
    let mut event = minimal();
    event["time"] = json!("2026-11-23T19:03:19Z");
    event["original"] = json!("{\"kind\":\"Event\"}");
    event["extra"] = json!(1);
    // Refused like the other fields that must not be sent, in input order, with a message
    // that says who sets it.
    let errors = problems(&event);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["$.time", "$.original", "$.extra"]);
    assert!(
        errors[1].message.contains("integrations"),
        "{}",
        errors[1].message
    );
    assert_eq!(
        validate_owned(event.clone(), &limits()).unwrap_err(),
        errors
    );

    // An integration may set it; it must be a non-empty string.
    let mut event = minimal();
    event["original"] = json!("<13>1 - host app - - - hi \"there\"");
    let ingested = validate_ingested(event.clone(), &limits()).unwrap();
    assert_eq!(
        ingested.original(),
        Some("<13>1 - host app - - - hi \"there\"")
    );
    for bad in [json!(""), json!({"kind": "Event"}), Value::Null] {
        let mut event = minimal();
        event["original"] = bad;
        let errors = validate_ingested(event, &limits()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "$.original");
    }

    // Stored between `id` and `outcome` (RFC 8785 order), escaped, and decoded back.
    let prepared = ingested.encode(ID, NOW, &limits()).unwrap();
    let text = std::str::from_utf8(&prepared.bytes).unwrap();
    assert!(
        text.contains(&format!(
            r#""id":"{ID}","original":"<13>1 - host app - - - hi \"there\"","outcome":"allow""#
        )),
        "{text}"
    );
    let decoded = decode_entry(&prepared.bytes).unwrap();
    assert_eq!(decoded.event.original(), ingested.original());
    let again = decoded.event.encode(Uuid::nil(), NOW, &limits()).unwrap();
    assert_eq!(again, prepared);
    assert_eq!(
        entry_key(&prepared.bytes),
        Some((ID, prepared.content_digest))
    );
}

#[test]
fn encode_reports_the_size_of_an_oversized_entry() {
    let mut event = minimal();
    event["change"] = json!({"blob": "x".repeat(MAX_ENTRY_BYTES)});
    let event = validate(&event, &limits()).unwrap();
    let err = event.encode(ID, NOW, &limits()).unwrap_err();
    let want = oracle_prepare(&event, ID, NOW, &limits()).unwrap_err();
    let PrepareError::TooLarge { size, limit } = err.clone() else {
        panic!("expected TooLarge, got {err:?}");
    };
    assert_eq!(limit, MAX_ENTRY_BYTES);
    assert!(size > MAX_ENTRY_BYTES);
    // The size is that of the entry the oracle builds, and prepare's error is the same text.
    assert!(
        want.message.contains(&format!("is {size} bytes")),
        "{}",
        want.message
    );
    assert_eq!(FieldError::from(err), want);
    assert_eq!(event.prepare(ID, NOW, &limits()).unwrap_err(), want);
}

#[test]
fn strings_are_escaped_as_rfc_8785_prescribes() {
    let mut event = minimal();
    let reason: String =
        (0u8..0x20).map(char::from).collect::<String>() + "\"\\/\u{7f}\u{2028}\u{1F600}é";
    event["reason"] = json!(reason);
    let prepared = prepare(&event, NOW);
    // Derived by hand from RFC 8785 §3.2.2.2: short escapes for \b \t \n \f \r, \u00xx in
    // lowercase hex for the other controls, backslash before " and \, the rest as is.
    let want = concat!(
        r#""reason":"\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r"#,
        r#"\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a"#,
        r#"\u001b\u001c\u001d\u001e\u001f\"\\/"#,
        "\u{7f}\u{2028}\u{1F600}é\","
    );
    let text = String::from_utf8(prepared.bytes).unwrap();
    assert!(text.contains(want), "{text}");
}
