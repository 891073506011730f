//! Inclusion and consistency proofs verify against the signed checkpoint and against roots
//! recomputed from the entries.

use serde_json::Value;
use stele_core::hash::leaf_hash;
use stele_core::merkle::{verify_consistency, verify_inclusion, MemoryTree};
use stele_core::Hash;

use crate::common::{event, start, TestLog};

fn hashes(answer: &Value) -> Vec<Hash> {
    answer["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect()
}

/// Appends `n` events and returns the stored entries, read back through the API.
async fn fill(log: &TestLog, n: usize) -> (Vec<Value>, Vec<Vec<u8>>) {
    let answer = log.append(&Value::Array((0..n).map(event).collect())).await;
    let mut entries = Vec::new();
    for i in 0..log.store.size() {
        entries.push(log.entry(i).await);
    }
    (answer, entries)
}

fn root_of(entries: &[Vec<u8>], size: u64) -> Hash {
    MemoryTree::from_entries(entries.iter().take(size as usize)).root()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inclusion_proofs_verify() {
    let log = start().await;
    let (appended, mut entries) = fill(&log, 300).await;
    let (cp, note) = log.checkpoint().await;
    assert_eq!(cp.size, 300);
    assert_eq!(cp.root, root_of(&entries, 300));

    // Default tree size: the checkpoint's, which comes along.
    let (status, answer) = log.get_json("/v1/proofs/inclusion?index=123").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["tree_size"], 300);
    assert_eq!(answer["checkpoint"], note.as_str());
    let leaf = leaf_hash(&entries[123]);
    assert_eq!(answer["leaf_hash"], leaf.to_base64());
    verify_inclusion(&leaf, 123, 300, &hashes(&answer), &cp.root).unwrap();
    // The proof is for this leaf only.
    assert!(verify_inclusion(
        &leaf_hash(&entries[124]),
        123,
        300,
        &hashes(&answer),
        &cp.root
    )
    .is_err());

    for (index, tree_size) in [
        (0, 1),
        (0, 300),
        (299, 300),
        (5, 6),
        (100, 257),
        (255, 256),
        (256, 257),
    ] {
        let path = format!("/v1/proofs/inclusion?index={index}&tree_size={tree_size}");
        let (status, answer) = log.get_json(&path).await;
        assert_eq!(status, 200, "{path}: {answer}");
        assert_eq!(answer["index"], index);
        assert_eq!(answer["tree_size"], tree_size);
        assert_eq!(
            answer.get("checkpoint").is_some(),
            tree_size == 300,
            "{path}"
        );
        let leaf = leaf_hash(&entries[index as usize]);
        verify_inclusion(
            &leaf,
            index,
            tree_size,
            &hashes(&answer),
            &root_of(&entries, tree_size),
        )
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    }

    let id = appended[42]["id"].as_str().unwrap();
    let (status, answer) = log.get_json(&format!("/v1/proofs/inclusion?id={id}")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["index"], 42);
    verify_inclusion(
        &leaf_hash(&entries[42]),
        42,
        300,
        &hashes(&answer),
        &cp.root,
    )
    .unwrap();

    // By leaf hash, base64 or hex (recomputed from the stored entry, not taken from the server).
    let leaf = leaf_hash(&entries[77]);
    for form in [
        leaf.to_base64()
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D"),
        leaf.to_hex(),
    ] {
        let (status, answer) = log
            .get_json(&format!("/v1/proofs/inclusion?leaf_hash={form}"))
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["index"], 77);
        verify_inclusion(&leaf, 77, 300, &hashes(&answer), &cp.root).unwrap();
    }
    let (status, _) = log
        .get_json(&format!(
            "/v1/proofs/inclusion?leaf_hash={}",
            leaf_hash(b"absent").to_hex()
        ))
        .await;
    assert_eq!(status, 404);
    let (status, _) = log.get_json("/v1/proofs/inclusion?leaf_hash=abc").await;
    assert_eq!(status, 400);

    // Past the checkpoint, up to the log's size, without a checkpoint in the answer.
    log.append(&Value::Array((300..305).map(event).collect()))
        .await;
    for i in 300..305 {
        entries.push(log.entry(i).await);
    }
    let (status, answer) = log
        .get_json("/v1/proofs/inclusion?index=302&tree_size=305")
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.get("checkpoint").is_none());
    verify_inclusion(
        &leaf_hash(&entries[302]),
        302,
        305,
        &hashes(&answer),
        &root_of(&entries, 305),
    )
    .unwrap();
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_proofs_verify() {
    let log = start().await;
    let (_, entries) = fill(&log, 300).await;
    let (cp, note) = log.checkpoint().await;

    let (status, answer) = log.get_json("/v1/proofs/consistency?from=7").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["to"], 300);
    assert_eq!(answer["checkpoint"], note.as_str());
    verify_consistency(7, 300, &hashes(&answer), &root_of(&entries, 7), &cp.root).unwrap();

    for (from, to) in [
        (1, 300),
        (256, 300),
        (300, 300),
        (3, 17),
        (100, 257),
        (1, 1),
    ] {
        let path = format!("/v1/proofs/consistency?from={from}&to={to}");
        let (status, answer) = log.get_json(&path).await;
        assert_eq!(status, 200, "{path}: {answer}");
        assert_eq!(
            (answer["from"].as_u64(), answer["to"].as_u64()),
            (Some(from), Some(to))
        );
        verify_consistency(
            from,
            to,
            &hashes(&answer),
            &root_of(&entries, from),
            &root_of(&entries, to),
        )
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_parameters_are_checked() {
    let log = start().await;
    fill(&log, 10).await;
    log.checkpoint().await;
    for (path, status, needle) in [
        ("/v1/proofs/inclusion?index=10", 400, "10"),
        ("/v1/proofs/inclusion?index=3&tree_size=3", 400, "3"),
        ("/v1/proofs/inclusion?index=0&tree_size=11", 400, "11"),
        ("/v1/proofs/inclusion?index=0&tree_size=0", 400, "0"),
        ("/v1/proofs/inclusion?index=abc", 400, "abc"),
        ("/v1/proofs/inclusion?index=-1", 400, "-1"),
        ("/v1/proofs/inclusion", 400, "index"),
        (
            "/v1/proofs/inclusion?index=1&id=0190d7a4-5c1e-7cc4-9b8e-0a1b2c3d4e5f",
            400,
            "index",
        ),
        ("/v1/proofs/inclusion?leaf_hash=AAAA", 400, "leaf_hash"),
        ("/v1/proofs/inclusion?idx=1", 400, "idx"),
        ("/v1/proofs/inclusion?id=nope", 400, "nope"),
        (
            "/v1/proofs/inclusion?id=0190d7a4-5c1e-7cc4-9b8e-0a1b2c3d4e5f",
            404,
            "0190d7a4",
        ),
        ("/v1/proofs/consistency?from=0", 400, "from"),
        ("/v1/proofs/consistency?from=6&to=5", 400, "6"),
        ("/v1/proofs/consistency?from=1&to=11", 400, "11"),
        ("/v1/proofs/consistency", 400, "from"),
        ("/v1/proofs/consistency?from=x", 400, "x"),
    ] {
        let (got, answer) = log.get_json(path).await;
        assert_eq!(got, status, "{path}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(needle), "{path}: {error}");
    }
    log.stop().await;
}
