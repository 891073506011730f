//! The tlog-tiles read API serves tiles consistent with the entries and the checkpoint.

use serde_json::Value;
use stele_core::checkpoint::open_checkpoint;
use stele_core::hash::leaf_hash;
use stele_core::merkle::MemoryTree;
use stele_core::tile::bundle_decode;

use crate::common::{event, start};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_hold_the_entries_and_their_hashes() {
    let log = start().await;
    log.append(&Value::Array((0..300).map(event).collect()))
        .await;
    let mut entries = Vec::new();
    for i in 0..300 {
        entries.push(log.entry(i).await);
    }
    log.checkpoint().await;

    let resp = log.get("/checkpoint").await;
    assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let (cp, _) = open_checkpoint(&resp.bytes().await.unwrap(), &log.verifier).unwrap();
    assert_eq!(cp.size, 300);
    assert_eq!(cp.root, MemoryTree::from_entries(&entries).root());

    let get_tile = |path: &'static str| {
        let log = &log;
        async move {
            let resp = log.get(path).await;
            assert_eq!(resp.status().as_u16(), 200, "{path}");
            assert_eq!(resp.headers()["content-type"], "application/octet-stream");
            let cache = resp.headers()["cache-control"].to_str().unwrap().to_owned();
            (cache, resp.bytes().await.unwrap().to_vec())
        }
    };

    let (cache, bundle) = get_tile("/tile/entries/000").await;
    assert_eq!(cache, IMMUTABLE);
    assert_eq!(
        bundle_decode(&bundle).unwrap(),
        entries[..256].iter().map(Vec::as_slice).collect::<Vec<_>>()
    );
    let (cache, bundle) = get_tile("/tile/entries/001.p/44").await;
    assert_ne!(cache, IMMUTABLE);
    assert_eq!(
        bundle_decode(&bundle).unwrap(),
        entries[256..].iter().map(Vec::as_slice).collect::<Vec<_>>()
    );

    let leaves: Vec<u8> = entries.iter().flat_map(|e| leaf_hash(e).0).collect();
    let (cache, tile) = get_tile("/tile/0/000").await;
    assert_eq!(cache, IMMUTABLE);
    assert_eq!(tile, leaves[..256 * 32]);
    let (_, tile) = get_tile("/tile/0/001.p/44").await;
    assert_eq!(tile, leaves[256 * 32..]);
    // A client holding an older checkpoint (size 266) asks for the narrower partial tiles.
    let (_, bundle) = get_tile("/tile/entries/001.p/10").await;
    assert_eq!(
        bundle_decode(&bundle).unwrap(),
        entries[256..266]
            .iter()
            .map(Vec::as_slice)
            .collect::<Vec<_>>()
    );
    let (_, tile) = get_tile("/tile/0/001.p/10").await;
    assert_eq!(tile, leaves[256 * 32..266 * 32]);
    // Level 1 holds tree level 8: the root of each full run of 256 leaves.
    let (_, tile) = get_tile("/tile/1/000.p/1").await;
    assert_eq!(tile, MemoryTree::from_entries(&entries[..256]).root().0);

    for (path, status) in [
        ("/tile/entries/002", 404),
        ("/tile/entries/001", 404),
        ("/tile/0/001", 404),
        ("/tile/1/000", 404),
        ("/tile/2/000.p/1", 404),
        ("/tile/0/1", 400),
        ("/tile/x/000", 400),
        ("/tile/entries/000.p/0", 400),
        ("/tile/entries/000.p/256", 400),
        ("/tile/0/000/extra", 400),
    ] {
        let (got, answer) = log.get_json(path).await;
        assert_eq!(got, status, "{path}: {answer}");
        assert!(answer["error"].is_string(), "{path}");
    }
    log.stop().await;
}
