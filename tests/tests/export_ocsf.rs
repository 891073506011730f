//! `stele export-ocsf` against the real binary: events appended directly and ingested from
//! Kubernetes come out as OCSF events, from the server's entry bundles and from a file.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use serde_json::{json, Value};
use stele_tests::server::{run_stele, Server};

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/testdata/k8s-audit/openshift-clo-forbidden-anonymous.json"
);

#[test]
fn export_ocsf_from_a_running_log_and_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, _) = server.post_json(&json!([
        {"actor": {"type": "user", "id": "u-17"}, "action": "role.grant", "resource": {"type": "role", "id": "admin"}, "outcome": "allow", "change": {"subject": "u-42"}},
        {"actor": {"type": "service", "id": "scim"}, "action": "user.deactivate", "resource": {"type": "user", "id": "u-42"}, "outcome": "allow"}
    ]));
    assert_eq!(status, 200);
    let sample = std::fs::read(SAMPLE).unwrap();
    let resp = server
        .client()
        .post(server.at("/v1/ingest/kubernetes"))
        .header("content-type", "application/json")
        .body(sample.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    let out = run_stele(["export-ocsf", "--url", &server.url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let classes: Vec<u64> = events
        .iter()
        .map(|e| e["class_uid"].as_u64().unwrap())
        .collect();
    assert_eq!(classes, [3003, 3001, 6003]);
    let k8s = &events[2];
    assert_eq!(k8s["status_id"], 2); // forbidden
    assert_eq!(
        k8s["raw_data"].as_str().unwrap().as_bytes(),
        sample.trim_ascii()
    );
    assert_eq!(k8s["actor"]["user"]["uid"], "system:anonymous");

    // The same from a file of stored entries, and a range of the log.
    let entry = server.get("/v1/events/2").1;
    let file = dir.path().join("entries.ndjson");
    std::fs::write(&file, [&entry[..], b"\n"].concat()).unwrap();
    let out = run_stele(["export-ocsf", "--input", file.to_str().unwrap()]);
    assert!(out.status.success());
    let from_file: Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
    assert_eq!(&from_file, k8s);
    let out = run_stele([
        "export-ocsf",
        "--url",
        &server.url,
        "--from",
        "1",
        "--to",
        "2",
    ]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
    // Something that is not a stored event is an error, not a silent skip.
    std::fs::write(&file, b"{\"not\":\"an event\"}\n").unwrap();
    let out = run_stele(["export-ocsf", "--input", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1 is not a stored Stele event"));
}
