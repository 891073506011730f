//! Interoperability with independent implementations: Cloudflare's `signed_note` verifies our
//! checkpoints with the key `stele key public` prints, and `tlog_tiles` (a port of Go's
//! `sumdb/tlog`) recomputes our roots from our tiles alone and checks our inclusion and
//! consistency proofs. Nothing here uses Stele's own hashing or proof code.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::cell::Cell;

use serde_json::Value;
use signed_note::{Note, StandardVerifier, VerifierList};
use stele_tests::{event, frames, public_key, Server};
use tlog_tiles::{
    check_record, check_tree, record_hash, stored_hash_index, tree_hash, Checkpoint, Hash,
    HashReader, Tile, TileHashReader, TileReader,
};

/// Tile height of C2SP tlog-tiles.
const HEIGHT: u8 = 8;
/// The tree size of the example in tlog-tiles "Partial Tiles".
const BIG: u64 = 70_000;
const SMALL: u64 = 300;

/// A `TileReader` over the log's HTTP tile API.
struct HttpTiles<'a> {
    server: &'a Server,
    fetched: Cell<usize>,
}

impl HttpTiles<'_> {
    /// Maps `tlog_tiles`' `tile/<H>/<L>/<N>[.p/<W>]` (Go sumdb layout, with the height) to
    /// C2SP `/tile/<L>/<N>[.p/<W>]` (height fixed at 8 and not in the path).
    fn url_path(tile: &Tile) -> String {
        let path = tile.path();
        let rest = path
            .strip_prefix("tile/8/")
            .unwrap_or_else(|| panic!("unexpected tile path {path}"));
        match rest.strip_prefix("data/") {
            Some(n) => format!("/tile/entries/{n}"),
            None => format!("/{}", path.replacen("tile/8/", "tile/", 1)),
        }
    }

    fn fetch(&self, tile: &Tile) -> Result<Vec<u8>, tlog_tiles::Error> {
        let want = tile.width() as usize * 32;
        self.fetched.set(self.fetched.get() + 1);
        let (status, body) = self.server.get(&Self::url_path(tile));
        if status == 200 {
            return if body.len() == want {
                Ok(body)
            } else {
                Err(tlog_tiles::Error::InvalidTile)
            };
        }
        // tlog-tiles: a log may drop a partial tile once the full tile exists; clients then
        // fall back to the full tile.
        if status == 404 && tile.width() < 256 {
            let full = Tile::new(HEIGHT, tile.level(), tile.level_index(), 256, false);
            let (status, body) = self.server.get(&Self::url_path(&full));
            if status == 200 && body.len() == 256 * 32 {
                return Ok(body[..want].to_vec());
            }
        }
        Err(tlog_tiles::Error::InvalidTile)
    }
}

impl TileReader for HttpTiles<'_> {
    fn height(&self) -> u8 {
        HEIGHT
    }

    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles.iter().map(|t| self.fetch(t)).collect()
    }

    fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
}

/// Verifies `note` with `signed_note` and parses it with `tlog_tiles`.
fn open_checkpoint(note: &[u8], vkey: &str) -> Checkpoint {
    let verifier = StandardVerifier::new(vkey)
        .unwrap_or_else(|e| panic!("signed_note rejects the key {vkey:?}: {e}"));
    let name = signed_note::Verifier::name(&verifier).to_owned();
    let list = VerifierList::new(vec![Box::new(verifier)]);
    let parsed = Note::from_bytes(note).unwrap_or_else(|e| {
        panic!(
            "signed_note cannot parse the checkpoint: {e}\n{}",
            String::from_utf8_lossy(note)
        )
    });
    let (verified, _) = parsed
        .verify(&list)
        .unwrap_or_else(|e| panic!("signed_note: checkpoint does not verify: {e}"));
    assert_eq!(verified.len(), 1);
    let cp = Checkpoint::from_bytes(parsed.text())
        .unwrap_or_else(|e| panic!("tlog_tiles cannot parse the checkpoint: {e}"));
    assert_eq!(
        cp.origin(),
        name,
        "the checkpoint's origin is not the signing key's name"
    );

    // Not vacuous: a changed root no longer verifies.
    let text = String::from_utf8(note.to_vec()).unwrap();
    let root_line = text.lines().nth(2).unwrap();
    let mut other = root_line.as_bytes().to_vec();
    other[0] = if other[0] == b'A' { b'B' } else { b'A' };
    let forged = text.replacen(root_line, std::str::from_utf8(&other).unwrap(), 1);
    let forged = Note::from_bytes(forged.as_bytes()).unwrap();
    assert!(forged.verify(&list).is_err(), "a forged root verifies");
    cp
}

/// Recomputes the root of `cp` from the log's tiles and returns the authenticated reader.
fn check_root_from_tiles<'a>(cp: &Checkpoint, tiles: &'a HttpTiles<'a>) -> TileHashReader<'a> {
    let reader = TileHashReader::new(cp.size(), *cp.hash(), tiles);
    let root = tree_hash(cp.size(), &reader)
        .unwrap_or_else(|e| panic!("tiles for size {}: {e}", cp.size()));
    assert_eq!(
        root,
        *cp.hash(),
        "root recomputed from tiles differs from the checkpoint at size {}",
        cp.size()
    );
    reader
}

fn hashes(answer: &Value) -> Vec<Hash> {
    answer["hashes"]
        .as_array()
        .unwrap_or_else(|| panic!("no hashes: {answer}"))
        .iter()
        .map(|h| Hash::parse_hash(h.as_str().unwrap()).unwrap())
        .collect()
}

fn entry(server: &Server, index: u64) -> Vec<u8> {
    let (status, body) = server.get(&format!("/v1/events/{index}"));
    assert_eq!(status, 200, "GET /v1/events/{index}");
    body
}

/// Checks the log's inclusion proof of `index` in the tree of size `size` with root `root`.
fn check_inclusion(server: &Server, index: u64, size: u64, root: Hash) {
    let answer = server.get_json(&format!(
        "/v1/proofs/inclusion?index={index}&tree_size={size}"
    ));
    let leaf = record_hash(&entry(server, index));
    let proof = hashes(&answer);
    check_record(&proof, size, root, index, leaf)
        .unwrap_or_else(|e| panic!("inclusion of {index} in {size}: {e}: {answer}"));
    if index + 1 < size {
        let other = record_hash(&entry(server, index + 1));
        assert!(
            check_record(&proof, size, root, index, other).is_err(),
            "proof of {index} also proves another entry"
        );
    }
}

/// Checks the log's consistency proof between sizes `from` and `to`.
fn check_consistency(server: &Server, from: u64, from_root: Hash, to: u64, to_root: Hash) {
    let answer = server.get_json(&format!("/v1/proofs/consistency?from={from}&to={to}"));
    let proof = hashes(&answer);
    check_tree(&proof, to, to_root, from, from_root)
        .unwrap_or_else(|e| panic!("consistency {from} -> {to}: {e}: {answer}"));
}

fn append(server: &Server, from: u64, to: u64, batch: u64) {
    let mut n = from;
    while n < to {
        let end = (n + batch).min(to);
        let events: Vec<Value> = (n..end).map(event).collect();
        let (status, answer) = server.post_json(&Value::Array(events));
        assert_eq!(status, 200, "{answer}");
        n = end;
    }
    assert_eq!(server.size(), to);
}

#[test]
fn independent_verifiers_accept_checkpoints_tiles_and_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--checkpoint-interval", "200ms"]);
    let vkey = public_key(&data);
    let tiles = HttpTiles {
        server: &server,
        fetched: Cell::new(0),
    };

    append(&server, 0, SMALL, 60);
    let cp1 = open_checkpoint(&server.checkpoint_at_least(SMALL), &vkey);
    assert_eq!(cp1.size(), SMALL);
    check_root_from_tiles(&cp1, &tiles);
    for i in [0, 1, 255, 256, SMALL - 1] {
        check_inclusion(&server, i, SMALL, *cp1.hash());
    }

    append(&server, SMALL, BIG, 5000);
    let cp2 = open_checkpoint(&server.checkpoint_at_least(BIG), &vkey);
    assert_eq!(cp2.size(), BIG);
    let reader = check_root_from_tiles(&cp2, &tiles);
    // The older checkpoint still checks out against the grown log's tiles.
    check_root_from_tiles(&cp1, &tiles);
    check_consistency(&server, SMALL, *cp1.hash(), BIG, *cp2.hash());

    // Roots of other sizes, from the authenticated tiles of the big tree.
    for n in [1u64, 2, 3, 256, 257, 65_535, 65_536, 65_537, BIG - 1] {
        let root_n = tree_hash(n, &reader).unwrap();
        check_consistency(&server, n, root_n, BIG, *cp2.hash());
        check_inclusion(&server, n - 1, n, root_n);
        check_inclusion(&server, n - 1, BIG, *cp2.hash());
        if n > 1 {
            check_inclusion(&server, 0, n, root_n);
        }
    }
    for i in [0u64, 12_345, 65_535, 65_536, BIG - 1] {
        check_inclusion(&server, i, BIG, *cp2.hash());
    }

    // tlog-tiles "Partial Tiles": a tree of 70,000 has 273 full level-0 tiles and one of
    // width 112, one full level-1 tile and one of width 17, and a level-2 tile of width 1.
    for (path, len) in [
        ("/tile/0/272", 256),
        ("/tile/0/273.p/112", 112),
        ("/tile/1/000", 256),
        ("/tile/1/001.p/17", 17),
        ("/tile/2/000.p/1", 1),
    ] {
        let (status, body) = server.get(path);
        assert_eq!((status, body.len()), (200, len * 32), "GET {path}");
    }
    // Nothing beyond the tree: no empty tiles, no tile wider than the tree.
    for path in [
        "/tile/0/273",
        "/tile/0/273.p/113",
        "/tile/0/274.p/1",
        "/tile/1/001",
        "/tile/2/000.p/2",
        "/tile/3/000.p/1",
        "/tile/entries/273",
        "/tile/entries/274.p/1",
    ] {
        assert_eq!(server.get(path).0, 404, "GET {path} should be 404");
    }

    // Every entry bundle hashes to the authenticated leaf hashes, and matches the entries API.
    let mut n = 0u64;
    while n * 256 < BIG {
        let width = (BIG - n * 256).min(256);
        let mut tile = Tile::new(HEIGHT, 0, n, u32::try_from(width).unwrap(), false);
        tile.set_is_data();
        let (status, bundle) = server.get(&HttpTiles::url_path(&tile));
        assert_eq!(status, 200, "entry bundle {n}");
        let entries = frames::parse_bundle(&bundle);
        assert_eq!(entries.len() as u64, width, "entry bundle {n}");
        let indexes: Vec<u64> = (n * 256..n * 256 + width)
            .map(|i| stored_hash_index(0, i))
            .collect();
        let leaves = reader.read_hashes(&indexes).unwrap();
        for (k, (e, leaf)) in entries.iter().zip(&leaves).enumerate() {
            assert_eq!(
                record_hash(e),
                *leaf,
                "entry {} in bundle {n} does not hash to its leaf",
                n * 256 + k as u64
            );
        }
        if [0, 1, 100, 200, 273].contains(&n) {
            assert_eq!(
                entries[0],
                entry(&server, n * 256).as_slice(),
                "bundle {n} and /v1/events disagree"
            );
        }
        n += 1;
    }
    eprintln!("fetched {} hash tiles", tiles.fetched.get());
    assert!(server.terminate().success());
}
