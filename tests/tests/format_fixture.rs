//! The on-disk format is a promise: a data directory written by the first release of the
//! format (`tests/fixtures/format-v1`, committed once and never regenerated) must be read,
//! served, proven, verified and appended to by every later build.
//!
//! The derived files are part of the fixture: the checkpoint vouches for `hashes/` and
//! `bundles.idx`, so a later build must read them as they are. The id index was a redb file
//! (`ids.redb`) when the fixture was written; later builds replace it with `idindex/`, rebuilt
//! from the entries, which the lookups by id and the idempotent retry below exercise.
//!
//! `expected.ndjson` beside it was recorded when the fixture was written, from the server's
//! acknowledgements and its `GET /v1/events/{index}` answers: one line per entry with the
//! index, id, leaf hash and the entry bytes (base64). `sent.ndjson` holds the events as
//! they were posted.
//!
//! The generator is the ignored test `write_format_fixture`; it refuses to overwrite an
//! existing fixture (delete it by hand only when a *new* format version is introduced, and
//! keep the old one).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use stele_tests::{
    acks, b64, client_fields, copy_dir, event, leaf_hash, public_key, unb64, verify,
    workspace_root, Server,
};

/// Entries in the fixture: more than one full 256-entry bundle, ending in a partial one.
const FIXTURE_ENTRIES: u64 = 600;

fn fixture_dir() -> PathBuf {
    workspace_root().join("tests/fixtures/format-v1")
}

/// One line of `expected.ndjson`.
struct Expected {
    index: u64,
    id: String,
    leaf_hash: [u8; 32],
    entry: Vec<u8>,
}

fn expected() -> Vec<Expected> {
    let text = std::fs::read_to_string(fixture_dir().join("expected.ndjson")).unwrap();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Expected {
                index: v["index"].as_u64().unwrap(),
                id: v["id"].as_str().unwrap().to_owned(),
                leaf_hash: unb64(v["leaf_hash"].as_str().unwrap()).try_into().unwrap(),
                entry: unb64(v["entry"].as_str().unwrap()),
            }
        })
        .collect()
}

fn sent() -> Vec<Value> {
    let text = std::fs::read_to_string(fixture_dir().join("sent.ndjson")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A private copy of the fixture's data directory, with the key file made private again
/// (git does not keep file modes beyond the executable bit).
fn fixture_copy(tmp: &Path) -> PathBuf {
    let data = tmp.join("data");
    copy_dir(&fixture_dir().join("data"), &data);
    let key = data.join("key/signer.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    data
}

/// RFC 6962 Merkle tree hash of `leaves` (leaf hashes), written out independently of the
/// code under test.
fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            let mut h = Sha256::new();
            h.update([1u8]);
            h.update(mth(&leaves[..k]));
            h.update(mth(&leaves[k..]));
            h.finalize().into()
        }
    }
}

/// `v` with every number as an IEEE-754 double, which is how the stored (RFC 8785) form
/// keeps numbers: `3.0` is stored as `3`, `-0.0` as `0`.
fn as_doubles(v: Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap() + 0.0),
        Value::Array(a) => Value::Array(a.into_iter().map(as_doubles).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, as_doubles(v))).collect()),
        other => other,
    }
}

/// Root hash line (third line) of a checkpoint note, decoded.
fn checkpoint_root(note: &[u8]) -> [u8; 32] {
    let text = std::str::from_utf8(note).unwrap();
    unb64(text.lines().nth(2).unwrap()).try_into().unwrap()
}

fn assert_verifies(data: &Path) {
    let out = verify(data);
    assert!(
        out.status.success(),
        "stele verify failed on the fixture: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Serves the fixture and checks every entry, its id lookup, the root, an idempotent retry
/// and a new append on top of the old format.
fn check_served(data: &Path) {
    let expected = expected();
    let sent = sent();
    assert_eq!(expected.len() as u64, FIXTURE_ENTRIES);
    assert_eq!(sent.len(), expected.len());
    let server = Server::start(data, &[]);
    assert_eq!(server.size(), FIXTURE_ENTRIES);
    for (e, s) in expected.iter().zip(&sent) {
        let (status, body) = server.get(&format!("/v1/events/{}", e.index));
        assert_eq!(status, 200, "entry {}", e.index);
        assert_eq!(body, e.entry, "entry {} changed", e.index);
        assert_eq!(
            leaf_hash(&body),
            e.leaf_hash,
            "leaf hash of entry {}",
            e.index
        );
        let stored: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(stored["id"], e.id.as_str());
        let mut posted = s.clone();
        posted.as_object_mut().unwrap().remove("id");
        assert_eq!(
            as_doubles(client_fields(&stored)),
            as_doubles(posted),
            "entry {}",
            e.index
        );
    }
    for e in expected.iter().step_by(37) {
        let (status, body) = server.get(&format!("/v1/events/{}", e.id));
        assert_eq!(status, 200);
        assert_eq!(body, e.entry, "lookup by id {}", e.id);
    }
    let leaves: Vec<[u8; 32]> = expected.iter().map(|e| e.leaf_hash).collect();
    let root = mth(&leaves);
    let note = server.checkpoint_at_least(FIXTURE_ENTRIES);
    assert_eq!(checkpoint_root(&note), root);

    // A retry of an event that carried its own id still finds the original.
    let with_id = sent
        .iter()
        .position(|s| s.get("id").is_some())
        .expect("the fixture holds client ids");
    let (status, answer) = server.post_json(&sent[with_id]);
    assert_eq!(status, 200, "{answer}");
    let ack = &acks(&answer)[0];
    assert!(ack.duplicate);
    assert_eq!(ack.index, expected[with_id].index);

    // New entries go on top of the old ones, and the whole log still verifies.
    let (status, answer) = server.post_json(&event(FIXTURE_ENTRIES));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(acks(&answer)[0].index, FIXTURE_ENTRIES);
    server.checkpoint_at_least(FIXTURE_ENTRIES + 1);
    assert_eq!(server.terminate().code(), Some(0));
    assert_verifies(data);
}

#[test]
fn format_v1_fixture_verifies_offline_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = fixture_copy(tmp.path());
    assert_verifies(&data);
    let vkey = std::fs::read_to_string(fixture_dir().join("data/key/verifier.vkey")).unwrap();
    assert_eq!(public_key(&data), vkey.trim());
    // The committed checkpoint's root is the root of the recorded entries.
    let note = std::fs::read(data.join("log/checkpoint")).unwrap();
    let leaves: Vec<[u8; 32]> = expected().iter().map(|e| e.leaf_hash).collect();
    assert_eq!(checkpoint_root(&note), mth(&leaves));
}

#[test]
fn format_v1_fixture_is_served_and_appendable() {
    let tmp = tempfile::tempdir().unwrap();
    let data = fixture_copy(tmp.path());
    check_served(&data);
}

/// Events of every shape schema v1 allows, so the fixture pins the canonical encoding of
/// each field: optional fields, escapes, non-ASCII text, numbers, nested context, client
/// ids, client times (one skewed), policies and changes.
fn fixture_events() -> Vec<Value> {
    (0..FIXTURE_ENTRIES)
        .map(|n| match n % 8 {
            0 => event(n),
            1 => json!({
                "id": uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + u128::from(n)).to_string(),
                "actor": {"type": "service", "id": format!("svc-{n}"), "name": "Bätch “job”",
                          "ip": "2001:db8::1", "user_agent": "curl/8.5.0", "session_id": "s-1"},
                "action": "authz.check",
                "resource": {"type": "document", "id": format!("doc/{n}"), "name": "Q3 \"plan\"\n"},
                "outcome": "deny",
                "reason": "tab\tnewline\ncontrol\u{1}slash/ emoji 🔒 and \u{2028}",
                "policy": {"id": "p-7", "version": "2026-01-01"},
                "tenant": "acme",
                "source": "gateway",
            }),
            2 => json!({
                "actor": {"type": "user", "id": "alice"},
                "action": "role.grant",
                "resource": {"type": "role", "id": "admin"},
                "outcome": "allow",
                "change": {"principal": format!("user-{n}"), "role": "admin",
                           "scope": {"type": "tenant", "id": "acme"}},
            }),
            3 => json!({
                "actor": {"type": "system", "id": "scheduler"},
                "action": "user.deactivate",
                "resource": {"type": "user", "id": format!("user-{n}")},
                "outcome": "allow",
                "client_time": "2026-11-23T12:00:00.123456789Z",
                "context": {"floats": [1.5, -0.0, 1e21, 1e-7, 3.0], "big": 9_007_199_254_740_993_u64,
                            "nested": {"z": 1, "a": [true, false, null], "é": "x", "aa": {}}},
            }),
            4 => json!({
                "actor": {"type": "user", "id": format!("user-{n}"), "ip": "10.0.0.7"},
                "action": "auth.login",
                "resource": {"type": "app", "id": "console"},
                "outcome": "error",
                "client_time": "2026-11-23T12:00:00Z",
            }),
            5 => json!({
                "actor": {"type": "user", "id": "bob"},
                "action": "policy.update",
                "resource": {"type": "policy", "id": "p-7"},
                "outcome": "allow",
                "policy": {"id": "p-7"},
                "change": {"before": {"allow": ["read"]}, "after": {"allow": ["read", "write"]}},
            }),
            6 => json!({
                "actor": {"type": "user", "id": format!("user-{}", n % 13)},
                "action": "role.revoke",
                "resource": {"type": "role", "id": "viewer"},
                "outcome": "allow",
                "tenant": "globex",
                "change": {"principal": format!("user-{}", n % 13), "role": "viewer",
                           "scope": {"type": "tenant", "id": "globex"}},
            }),
            _ => event(n * 1_000_003),
        })
        .collect()
}

/// Writes the fixture. Run once, when a format version is introduced:
/// `STELE_WRITE_FIXTURE=1 cargo test -p stele-tests --test format_fixture -- --ignored`.
#[test]
#[ignore = "writes the committed fixture; run by hand only for a new format version"]
fn write_format_fixture() {
    if std::env::var_os("STELE_WRITE_FIXTURE").is_none() {
        eprintln!("set STELE_WRITE_FIXTURE=1 to write the fixture");
        return;
    }
    let dir = fixture_dir();
    assert!(
        !dir.exists(),
        "{} exists: the fixture is never rewritten",
        dir.display()
    );
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = Server::start(&data, &["--origin", "fixture.stele.example/log"]);
    let events = fixture_events();
    let mut expected = String::new();
    let mut sent = String::new();
    // Batches of varying size so frames of many shapes are on disk.
    let mut start = 0usize;
    let mut batch = 1usize;
    while start < events.len() {
        let end = (start + batch).min(events.len());
        let body = Value::Array(events[start..end].to_vec());
        let (status, answer) = server.post_json(&body);
        assert_eq!(status, 200, "{answer}");
        for (ack, ev) in acks(&answer).iter().zip(&events[start..end]) {
            let (status, entry) = server.get(&format!("/v1/events/{}", ack.index));
            assert_eq!(status, 200);
            assert_eq!(leaf_hash(&entry), ack.leaf_hash);
            let line = json!({"index": ack.index, "id": ack.id,
                              "leaf_hash": b64(&ack.leaf_hash), "entry": b64(&entry)});
            expected.push_str(&format!("{line}\n"));
            sent.push_str(&format!("{ev}\n"));
        }
        start = end;
        batch = batch % 97 + 13;
    }
    server.checkpoint_at_least(FIXTURE_ENTRIES);
    assert_eq!(server.terminate().code(), Some(0));
    std::fs::remove_file(data.join("log/LOCK")).ok();
    std::fs::write(dir.join("expected.ndjson"), expected).unwrap();
    std::fs::write(dir.join("sent.ndjson"), sent).unwrap();
}
