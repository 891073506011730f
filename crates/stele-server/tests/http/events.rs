//! Appending events and reading them back.

use serde_json::{json, Value};
use stele_core::hash::leaf_hash;

use crate::common::{event, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_object_is_appended_and_read_back_byte_for_byte() {
    let log = start().await;
    let entries = log.append(&event(1)).await;
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(entry["index"], 0);
    assert!(entry.get("duplicate").is_none());
    let id = entry["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);

    let resp = log.get("/v1/events/0").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["stele-index"], "0");
    let stored = resp.bytes().await.unwrap().to_vec();
    // The answer's leaf hash is the hash of exactly these bytes, and they hold the event.
    assert_eq!(entry["leaf_hash"], leaf_hash(&stored).to_base64());
    let parsed: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(parsed["id"], id);
    assert_eq!(parsed["time"], entry["time"]);
    assert_eq!(parsed["actor"], event(1)["actor"]);

    let by_id = log.get(&format!("/v1/events/{id}")).await;
    assert_eq!(by_id.headers()["stele-index"], "0");
    assert_eq!(by_id.bytes().await.unwrap().to_vec(), stored);
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_and_ndjson_are_appended_in_request_order() {
    let log = start().await;
    let batch: Vec<Value> = (0..3).map(event).collect();
    let entries = log.append(&Value::Array(batch.clone())).await;
    let indexes: Vec<u64> = entries
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [0, 1, 2]);

    let ndjson = format!("{}\r\n\n   \n{}\n", event(3), event(4));
    let (status, answer) = log.post(Some("application/x-ndjson"), ndjson).await;
    assert_eq!(status, 200, "{answer}");
    let entries: Vec<Value> = [entries, answer["entries"].as_array().unwrap().clone()].concat();
    assert_eq!(entries.len(), 5);
    for (n, entry) in entries.iter().enumerate() {
        let index = entry["index"].as_u64().unwrap();
        assert_eq!(index, n as u64);
        let stored: Value = serde_json::from_slice(&log.entry(index).await).unwrap();
        assert_eq!(stored["resource"], event(n)["resource"], "entry {n}");
        assert_eq!(stored["id"], entry["id"]);
    }
    assert_eq!(log.store.size(), 5);
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_is_idempotent_and_a_reused_id_is_a_conflict() {
    let log = start().await;
    let id = "0190d7a4-5c1e-7cc4-9b8e-0a1b2c3d4e5f";
    let mut ev = event(1);
    ev["id"] = json!(id);
    let first = log.append(&ev).await;
    log.append(&json!([event(2)])).await;
    let retry = log.append(&ev).await;
    assert_eq!(retry[0]["index"], first[0]["index"]);
    assert_eq!(retry[0]["time"], first[0]["time"]);
    assert_eq!(retry[0]["leaf_hash"], first[0]["leaf_hash"]);
    assert_eq!(retry[0]["id"], id);
    assert_eq!(retry[0]["duplicate"], true);
    assert_eq!(log.store.size(), 2);

    let mut changed = ev.clone();
    changed["outcome"] = json!("deny");
    let (status, answer) = log
        .post(Some("application/json"), changed.to_string())
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"], "id conflict");
    assert_eq!(answer["id"], id);
    assert_eq!(log.store.size(), 2);
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_larger_than_axums_default_limit_are_accepted() {
    let log = start().await;
    // ~3 MB: over axum's default limit of 2 MiB, under our 16 MiB.
    let padding = "p".repeat(15_000);
    let batch: Vec<Value> = (0..200)
        .map(|n| {
            let mut ev = event(n);
            ev["context"] = json!({ "padding": padding });
            ev
        })
        .collect();
    let body = Value::Array(batch).to_string();
    assert!(body.len() > 2 << 20);
    let (status, answer) = log.post(Some("application/json"), body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(log.store.size(), 200);
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_events_that_do_not_exist() {
    let log = start().await;
    log.append(&event(0)).await;
    for (path, status) in [
        ("/v1/events/1", 404),
        ("/v1/events/99999999999999999999999", 404),
        ("/v1/events/0190d7a4-5c1e-7cc4-9b8e-0a1b2c3d4e5f", 404),
        ("/v1/events/abc", 400),
        ("/v1/events/-1", 400),
    ] {
        let (got, body) = log.get_json(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    log.stop().await;
}
