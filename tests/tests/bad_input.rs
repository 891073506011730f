//! Bad input is refused with the documented status and details, and never changes the log;
//! a signing key others can read keeps the server from starting.
//!
//! The API test runs with authentication on (a writer token posts, an auditor token reads),
//! as in production; its reads are meta-logged, so "unchanged" is checked before each read.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};
use stele_tests::{acks, event, event_with_id, new_id, Server};

const MAX_BODY: usize = 65536;
/// Largest stored entry (the tlog-tiles uint16 length prefix).
const MAX_ENTRY: usize = 65535;

/// Asserts the log did not change: same size, and nothing at index `size`.
fn assert_unchanged(server: &Server, size: u64, what: &str) {
    assert_eq!(server.size(), size, "{what}: the log grew");
    let (status, _) = server.get(&format!("/v1/events/{size}"));
    assert_eq!(status, 404, "{what}: an entry appeared at index {size}");
}

/// Posts and expects `want`; returns the JSON error body after checking it has an `error`.
fn refused(
    server: &Server,
    content_type: Option<&str>,
    body: impl Into<reqwest::blocking::Body>,
    want: u16,
    what: &str,
) -> Value {
    let size = server.size();
    let (status, answer) = server.post(content_type, body);
    assert_eq!(status, want, "{what}: {answer}");
    assert!(
        answer["error"].is_string(),
        "{what}: error body without an `error` string: {answer}"
    );
    assert_unchanged(server, size, what);
    answer
}

/// The `path`s of the `problems` of a 400 answer.
fn paths(answer: &Value) -> Vec<String> {
    answer["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems listed: {answer}"))
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_owned())
        .collect()
}

/// The message of the problem at `path`.
fn message<'a>(answer: &'a Value, path: &str) -> &'a str {
    answer["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == path)
        .and_then(|p| p["message"].as_str())
        .unwrap_or_else(|| panic!("no problem at {path}: {answer}"))
}

/// A valid event whose compact JSON is exactly `len` bytes, padded in `change`.
fn event_of_len(len: usize) -> Value {
    let mut e = event(7);
    e["change"] = json!({"blob": ""});
    let base = e.to_string().len();
    assert!(len >= base);
    e["change"]["blob"] = Value::String("x".repeat(len - base));
    assert_eq!(e.to_string().len(), len);
    e
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_secured(
        &data,
        &[
            "--max-body",
            &MAX_BODY.to_string(),
            "--checkpoint-interval",
            "200ms",
        ],
    );
    let json = Some("application/json");
    let ndjson = Some("application/x-ndjson");

    // A few good events first, so "unchanged" is about a non-empty log. (The log already
    // holds the meta-log's records of the tokens' creation.)
    let base = server.size();
    let (status, answer) = server.post_json(&json!([event(1), event(2), event(3)]));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(server.size(), base + 3);

    // Malformed JSON: 400 with the line and column of the offending character.
    let body = "{\"actor\": {\"type\": \"user\", \"id\": \"alice\"},\n  \"action\": @\n}";
    let answer = refused(&server, json, body, 400, "malformed JSON");
    assert_eq!(answer["line"], 2, "{answer}");
    let col = "  \"action\": @".find('@').unwrap() + 1;
    assert_eq!(answer["column"], col, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("line 2"),
        "{answer}"
    );

    // NDJSON: a syntax error names its line; an invalid event names its line and position.
    let good = event(4).to_string();
    let answer = refused(
        &server,
        ndjson,
        format!("{good}\n{{\"actor\": }}\n{good}\n"),
        400,
        "NDJSON syntax error",
    );
    assert_eq!(answer["line"], 2, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("line 2"),
        "{answer}"
    );
    let mut bad = event(5);
    bad["outcome"] = json!("maybe");
    let answer = refused(
        &server,
        ndjson,
        format!("{good}\n\n{bad}\n"),
        400,
        "NDJSON invalid event",
    );
    let problem = &answer["problems"][0];
    assert_eq!(
        (
            problem["line"].as_u64(),
            problem["index"].as_u64(),
            problem["path"].as_str()
        ),
        (Some(3), Some(1), Some("$.outcome")),
        "{answer}"
    );

    // Wrong type, missing required field and unknown field, all reported with JSON paths.
    let body = json!({
        "actor": {"type": "user", "id": 5},
        "action": "auth.login",
        "resource": {"type": "app"},
        "outcome": "allow",
        "color": "red",
    });
    let answer = refused(&server, json, body.to_string(), 400, "invalid fields");
    let mut got = paths(&answer);
    got.sort();
    assert_eq!(got, ["$.actor.id", "$.color", "$.resource.id"], "{answer}");
    assert!(
        message(&answer, "$.actor.id").contains("string"),
        "{answer}"
    );
    assert!(
        message(&answer, "$.resource.id").contains("required"),
        "{answer}"
    );
    assert!(message(&answer, "$.color").contains("unknown"), "{answer}");

    // A batch is all or nothing: one bad event among good ones appends nothing.
    let mut bad = event(6);
    bad.as_object_mut().unwrap().remove("action");
    let answer = refused(
        &server,
        json,
        json!([event(7), bad, event(8)]).to_string(),
        400,
        "batch with a bad event",
    );
    assert_eq!(answer["problems"][0]["index"], 1, "{answer}");
    assert_eq!(answer["problems"][0]["path"], "$.action", "{answer}");

    // The server assigns `time`; a client may not send it.
    let mut timed = event(9);
    timed["time"] = json!("2026-01-01T00:00:00Z");
    let answer = refused(&server, json, timed.to_string(), 400, "client time");
    assert!(paths(&answer).contains(&"$.time".to_owned()), "{answer}");

    // No events.
    refused(&server, json, "[]", 400, "empty array");
    refused(&server, ndjson, "\n\n", 400, "empty NDJSON");
    refused(&server, json, "", 400, "empty body");

    // Content types.
    refused(
        &server,
        Some("text/plain"),
        event(10).to_string(),
        415,
        "text/plain",
    );
    refused(&server, None, event(10).to_string(), 415, "no content type");

    // Body limit: announced by Content-Length, and streamed without one (chunked).
    let big = "x".repeat(MAX_BODY + 1);
    refused(&server, json, big.clone(), 413, "oversize body");
    let chunked = reqwest::blocking::Body::new(
        std::io::Cursor::new(big.into_bytes()).chain(std::io::empty()),
    );
    refused(&server, json, chunked, 413, "oversize chunked body");

    // Entry limit: the stored form adds `"id":"<36>"` and `"time":"<30>"` (84 bytes with
    // their commas) to the client's canonical JSON. Exactly 65535 bytes is accepted ...
    let fits = event_of_len(MAX_ENTRY - 84);
    let size = server.size();
    let (status, answer) = server.post_json(&fits);
    assert_eq!(
        status, 200,
        "an entry of exactly {MAX_ENTRY} bytes: {answer}"
    );
    let (status, stored) = server.get(&format!("/v1/events/{size}"));
    assert_eq!((status, stored.len()), (200, MAX_ENTRY));
    // ... one byte more is 413, although the body is within the body limit.
    let over = event_of_len(MAX_ENTRY - 83);
    assert!(over.to_string().len() <= MAX_BODY);
    refused(
        &server,
        json,
        over.to_string(),
        413,
        "entry over 65535 bytes",
    );

    // Same id: same content is an idempotent retry, other content a conflict.
    let id = new_id();
    let (status, answer) = server.post_json(&event_with_id(11, &id));
    assert_eq!(status, 200, "{answer}");
    let first = acks(&answer)[0].clone();
    let size = server.size();
    let (status, answer) = server.post_json(&event_with_id(11, &id));
    assert_eq!(status, 200, "{answer}");
    let again = &acks(&answer)[0];
    assert!(
        again.duplicate && again.index == first.index && again.leaf_hash == first.leaf_hash,
        "{answer}"
    );
    assert_unchanged(&server, size, "idempotent retry");
    let answer = refused(
        &server,
        json,
        event_with_id(12, &id).to_string(),
        409,
        "same id, other content",
    );
    assert_eq!(answer["index"], first.index, "{answer}");
    // A conflict inside a batch rejects the whole batch.
    refused(
        &server,
        json,
        json!([event(13), event_with_id(12, &id)]).to_string(),
        409,
        "conflict in a batch",
    );

    // The checkpoint catches up with the log and no further: nothing refused was sequenced.
    let size = server.size();
    let note = server.checkpoint_at_least(size);
    assert_eq!(stele_tests::checkpoint_size(&note), Some(size));
    let status = server.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn readable_signing_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    assert!(server.terminate().success());
    let key = data.join("key/signer.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600,
        "the key is created private"
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let failure = match Server::try_start(&data, &[]) {
        Ok(server) => panic!(
            "stele serve started at {} with a world-readable key",
            server.url
        ),
        Err(f) => f,
    };
    let status = failure.status.expect("stele serve should exit, not hang");
    assert!(!status.success(), "{status}");
    assert!(
        failure.stderr.contains("signer.key"),
        "the message does not name the key file:\n{}",
        failure.stderr
    );

    // The refusal was about the permissions: made private again, it starts.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = Server::start(&data, &[]);
    assert!(server.terminate().success());
}
