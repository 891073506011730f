//! RFC 6962 / RFC 9162 vectors (transparency-dev/merkle tables) and the transparency-dev golden
//! probe files, loaded from ../shared/testdata at test time.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Deserialize;
use stele_core::hash::{empty_root, leaf_hash, node_hash, node_hash_bytes};
use stele_core::merkle::{
    consistency_proof, inclusion_proof, root, verify_consistency, verify_inclusion, Frontier,
    MemoryTree,
};
use stele_core::Hash;

const TESTDATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/testdata/rfc6962"
);

#[derive(Deserialize)]
struct Vectors {
    hash_primitives: Vec<Primitive>,
    leaves: Vec<String>,
    roots: Vec<RootVector>,
    inclusion: Vec<InclusionVector>,
    consistency: Vec<ConsistencyVector>,
}

#[derive(Deserialize)]
struct Primitive {
    desc: String,
    input_hex: Option<String>,
    leaf_hex: Option<String>,
    left_hex: Option<String>,
    right_hex: Option<String>,
    hash: String,
}

#[derive(Deserialize)]
struct RootVector {
    size: u64,
    hash: String,
}

#[derive(Deserialize)]
struct InclusionVector {
    leaf_index: u64,
    tree_size: u64,
    proof: Vec<String>,
}

#[derive(Deserialize)]
struct ConsistencyVector {
    size1: u64,
    size2: u64,
    proof: Vec<String>,
}

fn vectors() -> Vectors {
    let path = format!("{TESTDATA}/rfc6962-vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn h(hex: &str) -> Hash {
    Hash::from_hex(hex).unwrap_or_else(|| panic!("not a hash: {hex}"))
}

fn hashes(hexes: &[String]) -> Vec<Hash> {
    hexes.iter().map(|x| h(x)).collect()
}

fn vector_tree(v: &Vectors) -> MemoryTree {
    MemoryTree::from_entries(v.leaves.iter().map(|l| hex::decode(l).unwrap()))
}

fn root_of(v: &Vectors, size: u64) -> Hash {
    let r = v
        .roots
        .iter()
        .find(|r| r.size == size)
        .expect("root for size");
    h(&r.hash)
}

#[test]
fn hash_primitives() {
    let v = vectors();
    assert_eq!(v.hash_primitives.len(), 4);
    for p in &v.hash_primitives {
        let want = h(&p.hash);
        let got = match (&p.input_hex, &p.leaf_hex, &p.left_hex, &p.right_hex) {
            (Some(input), None, None, None) => {
                assert!(
                    input.is_empty(),
                    "{}: only the empty tree is a plain hash",
                    p.desc
                );
                empty_root()
            }
            (None, Some(leaf), None, None) => leaf_hash(&hex::decode(leaf).unwrap()),
            (None, None, Some(l), Some(r)) => {
                node_hash_bytes(&hex::decode(l).unwrap(), &hex::decode(r).unwrap())
            }
            _ => panic!("unknown primitive shape: {}", p.desc),
        };
        assert_eq!(got, want, "{}", p.desc);
    }
}

#[test]
fn node_hash_matches_byte_form_for_hashes() {
    let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
    assert_eq!(node_hash(&a, &b), node_hash_bytes(&a.0, &b.0));
    assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
}

#[test]
fn roots_from_memory_tree_and_frontier() {
    let v = vectors();
    let tree = vector_tree(&v);
    let mut frontier = Frontier::new();
    assert_eq!(frontier.root(), empty_root());
    assert_eq!(root(&tree, 0).unwrap(), empty_root());
    for (i, leaf) in v.leaves.iter().enumerate() {
        frontier.push(leaf_hash(&hex::decode(leaf).unwrap()), |_, _, _| {});
        let size = u64::try_from(i + 1).unwrap();
        let want = root_of(&v, size);
        assert_eq!(root(&tree, size).unwrap(), want, "size {size}");
        assert_eq!(frontier.root(), want, "frontier size {size}");
    }
    assert_eq!(v.roots.len(), v.leaves.len());
    assert_eq!(tree.root(), root_of(&v, 8));
}

#[test]
fn inclusion_vectors_regenerate_and_verify() {
    let v = vectors();
    let tree = vector_tree(&v);
    assert_eq!(v.inclusion.len(), 5);
    for c in &v.inclusion {
        let want = hashes(&c.proof);
        let got = inclusion_proof(&tree, c.leaf_index, c.tree_size).unwrap();
        assert_eq!(got, want, "index {} size {}", c.leaf_index, c.tree_size);
        let leaf = leaf_hash(&hex::decode(&v.leaves[c.leaf_index as usize]).unwrap());
        verify_inclusion(
            &leaf,
            c.leaf_index,
            c.tree_size,
            &want,
            &root_of(&v, c.tree_size),
        )
        .unwrap();
    }
}

#[test]
fn consistency_vectors_regenerate_and_verify() {
    let v = vectors();
    let tree = vector_tree(&v);
    assert_eq!(v.consistency.len(), 5);
    for c in &v.consistency {
        let want = hashes(&c.proof);
        let got = consistency_proof(&tree, c.size1, c.size2).unwrap();
        assert_eq!(got, want, "sizes {} -> {}", c.size1, c.size2);
        let (r1, r2) = (root_of(&v, c.size1), root_of(&v, c.size2));
        verify_consistency(c.size1, c.size2, &want, &r1, &r2).unwrap();
    }
}

// ---- transparency-dev golden probes ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionProbe {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyProbe {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn golden(kind: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    json_files(
        &Path::new(TESTDATA)
            .join("transparency-dev-merkle-golden")
            .join(kind),
        &mut files,
    );
    files.sort();
    files
}

/// A leaf hash or proof element as a verifier receives it: anything but 32 bytes is not a
/// SHA-256 output and is refused while decoding (`None`), before any proof checking.
fn wire_hash(b64: &str) -> Option<Hash> {
    Hash::from_slice(&BASE64.decode(b64).unwrap())
}

fn wire_proof(proof: &Option<Vec<String>>) -> Option<Vec<Hash>> {
    proof.iter().flatten().map(|p| wire_hash(p)).collect()
}

/// A root as the probes give it. The Go verifier compares roots as opaque byte strings, and some
/// probes use non-hash placeholders ("don't care") as roots, even in an accepting case (equal
/// sizes, equal placeholder roots). Our roots are typed 32-byte hashes, so a placeholder gets a
/// stand-in: equal placeholders map to equal hashes and different ones to different hashes, which
/// keeps every root comparison the verifier makes exactly as the Go verifier sees it.
fn wire_root(b64: &str) -> Hash {
    let bytes = BASE64.decode(b64).unwrap();
    Hash::from_slice(&bytes).unwrap_or_else(|| node_hash_bytes(b"placeholder root", &bytes))
}

#[test]
fn golden_inclusion_probes() {
    let files = golden("inclusion");
    assert_eq!(files.len(), 98, "inclusion probe files");
    let (mut accepted, mut rejected) = (0, 0);
    for file in &files {
        let probe: InclusionProbe =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let root = wire_root(&probe.root);
        let result = match (wire_hash(&probe.leaf_hash), wire_proof(&probe.proof)) {
            (Some(leaf), Some(proof)) => {
                verify_inclusion(&leaf, probe.leaf_idx, probe.tree_size, &proof, &root).is_ok()
            }
            _ => false,
        };
        assert_eq!(
            result,
            !probe.want_err,
            "{}: {}",
            file.display(),
            probe.desc
        );
        if result {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    assert!(accepted > 0 && rejected > 0);
}

#[test]
fn golden_consistency_probes() {
    let files = golden("consistency");
    assert_eq!(files.len(), 98, "consistency probe files");
    let (mut accepted, mut rejected) = (0, 0);
    for file in &files {
        let probe: ConsistencyProbe =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let (r1, r2) = (wire_root(&probe.root1), wire_root(&probe.root2));
        let result = match wire_proof(&probe.proof) {
            Some(proof) => verify_consistency(probe.size1, probe.size2, &proof, &r1, &r2).is_ok(),
            None => false,
        };
        assert_eq!(
            result,
            !probe.want_err,
            "{}: {}",
            file.display(),
            probe.desc
        );
        if result {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    assert!(accepted > 0 && rejected > 0);
}

/// The golden happy paths use the same eight leaves as the tables; our generator must produce
/// their proofs exactly, not merely proofs that verify.
#[test]
fn golden_happy_paths_regenerate() {
    let v = vectors();
    let tree = vector_tree(&v);
    let mut checked = 0;
    for file in golden("inclusion") {
        let probe: InclusionProbe =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        if probe.desc == "happy path" && probe.tree_size <= 8 {
            let want = wire_proof(&probe.proof).unwrap();
            assert_eq!(
                inclusion_proof(&tree, probe.leaf_idx, probe.tree_size).unwrap(),
                want
            );
            assert_eq!(wire_root(&probe.root), root_of(&v, probe.tree_size));
            checked += 1;
        }
    }
    for file in golden("consistency") {
        let probe: ConsistencyProbe =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        if probe.desc == "happy path" && probe.size2 <= 8 {
            let want = wire_proof(&probe.proof).unwrap();
            assert_eq!(
                consistency_proof(&tree, probe.size1, probe.size2).unwrap(),
                want
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} happy paths checked");
}
