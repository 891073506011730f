//! The query layer end to end with the real binary: `GET /v1/events` and `/v1/replay`
//! through `stele query` and `stele replay` in every output format, the index surviving a
//! restart, and `stele index rebuild` giving the same answers.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use serde_json::{json, Value};
use stele_tests::{run_stele, Server};

fn ev(n: u64) -> Value {
    json!({
        "actor": {"type": "user", "id": format!("user-{}", n % 4)},
        "action": if n.is_multiple_of(10) { "role.grant" } else { "authz.check" },
        "resource": {"type": "document", "id": format!("doc-{n}")},
        "outcome": if n.is_multiple_of(3) { "deny" } else { "allow" },
        "tenant": if n.is_multiple_of(2) { "acme" } else { "globex" },
        "reason": format!("case number {n}, with \"quotes\""),
        "change": {"principal": format!("user-{}", n % 4), "role": "auditor"},
    })
}

fn stele(args: &[&str]) -> String {
    let out = run_stele(args);
    assert!(
        out.status.success(),
        "stele {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Waits until the server's index covers its whole log.
fn wait_indexed(server: &Server) {
    for _ in 0..500 {
        let a = server.get_json("/v1/events?limit=1");
        if a["index_lag"] == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the index did not catch up");
}

#[test]
fn query_and_replay_through_the_cli_before_and_after_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let events: Vec<Value> = (0..40).map(ev).collect();
    let (status, answer) = server.post_json(&Value::Array(events));
    assert_eq!(status, 200, "{answer}");
    wait_indexed(&server);
    let url = server.at("");
    let url = url.trim_end_matches('/');

    // NDJSON: one stored event per line, newest first.
    let out = stele(&[
        "query",
        "--url",
        url,
        "--actor",
        "user-1",
        "--outcome",
        "deny",
        "--format",
        "ndjson",
    ]);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<u64> = lines.iter().map(|l| l["index"].as_u64().unwrap()).collect();
    assert_eq!(got, [33, 21, 9]);
    assert!(lines
        .iter()
        .all(|l| l["leaf_hash"].is_string() && l["actor"]["id"] == "user-1"));

    // JSON with --all follows the cursors across pages.
    let out = stele(&[
        "query", "--url", url, "--action", "role.*", "--asc", "--limit", "2", "--all", "--format",
        "json",
    ]);
    let all: Value = serde_json::from_str(&out).unwrap();
    let got: Vec<u64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(got, [0, 10, 20, 30]);
    assert_eq!(all["next_cursor"], Value::Null);

    // CSV quotes what needs quoting; the table has a header and one row per event.
    let out = stele(&["query", "--url", url, "-q", "number 7", "--format", "csv"]);
    let mut rows = out.lines();
    assert_eq!(rows.next().unwrap(), "index,time,actor_type,actor,action,resource_type,resource_id,outcome,tenant,source,reason,leaf_hash");
    let row = rows.next().unwrap();
    assert!(
        row.starts_with("7,") && row.contains(",\"case number 7, with \"\"quotes\"\"\","),
        "{row}"
    );
    assert!(rows.next().is_none());
    let out = stele(&["query", "--url", url, "--tenant", "acme", "--limit", "3"]);
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(out.lines().next().unwrap().contains("INDEX"));

    // Counts.
    let out = stele(&[
        "query",
        "--url",
        url,
        "--count",
        "--group-by",
        "outcome",
        "--format",
        "json",
    ]);
    let counts: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(counts["total"], 40);
    assert_eq!(counts["groups"], json!({"allow": 26, "deny": 14}));

    // A bad filter is the server's 400, exit 1, with the parameter named.
    let out = run_stele(["query", "--url", url, "--outcome", "maybe"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("outcome"));

    // Replay: user-2 was granted auditor by entries 10 and 30 (the first establishes it).
    let time_of = |i: u64| -> String {
        server.get_json(&format!("/v1/events/{i}"))["time"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let t = time_of(39);
    let replay = |t: &str, rest: &[&str]| {
        stele(&[&["replay", "--url", url, "--as-of", t][..], rest].concat())
    };
    let out = replay(&t, &["--principal", "user-2", "--format", "json"]);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["active"], true);
    assert_eq!(r["roles"].as_array().unwrap().len(), 1);
    assert_eq!(r["roles"][0]["role"], "auditor");
    assert_eq!(r["roles"][0]["index"], 10);
    let out = replay(&t, &["--role", "auditor"]);
    assert!(out.contains("user-0") && out.contains("user-2"), "{out}");
    // A policy.update gives the auditor role a permission: replay by permission finds its
    // holders, each row naming the entry that defined it (index 40).
    let (status, answer) = server.post_json(&json!({
        "actor": {"type": "user", "id": "root"}, "action": "policy.update",
        "resource": {"type": "role", "id": "auditor"}, "outcome": "allow",
        "change": {"role": "auditor", "permissions": ["log.read"]},
    }));
    assert_eq!(status, 200, "{answer}");
    wait_indexed(&server);
    let t = time_of(40);
    let out = replay(&t, &["--permission", "log.read"]);
    assert!(
        out.starts_with("permission log.read as of")
            && out.contains("user-2 (auditor)")
            && out.contains("log.read (40)"),
        "{out}"
    );
    let before: Vec<Value> = [
        "/v1/events?q=case&limit=1000",
        "/v1/events/count?group_by=actor",
    ]
    .iter()
    .map(|p| server.get_json(p))
    .collect();
    server.terminate();

    // Restart: the index comes back (nothing sealed at this size, so it is re-read) and
    // answers the same.
    let server = Server::start(&data, &[]);
    wait_indexed(&server);
    for (p, want) in [
        "/v1/events?q=case&limit=1000",
        "/v1/events/count?group_by=actor",
    ]
    .iter()
    .zip(&before)
    {
        assert_eq!(&server.get_json(p), want, "{p}");
    }
    // A rebuild needs the log to itself.
    let busy = run_stele(["index", "rebuild", "--data", data.to_str().unwrap()]);
    assert_eq!(busy.status.code(), Some(2));
    server.terminate();
    let out = stele(&["index", "rebuild", "--data", data.to_str().unwrap()]);
    assert!(out.contains("indexed 41 entries"), "{out}");
    let server = Server::start(&data, &[]);
    wait_indexed(&server);
    for (p, want) in [
        "/v1/events?q=case&limit=1000",
        "/v1/events/count?group_by=actor",
    ]
    .iter()
    .zip(&before)
    {
        assert_eq!(&server.get_json(p), want, "{p}");
    }
    server.terminate();
}
