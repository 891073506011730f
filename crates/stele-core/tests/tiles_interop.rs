//! Interop with Cloudflare's `tlog_tiles` 0.2 (a port of Go's golang.org/x/mod/sumdb/tlog):
//! tile paths, hashing, proofs and tile contents must agree.
//!
//! `tlog_tiles` 0.2 names tiles the Go sumdb way, with the tile height in the path and `data` for
//! entry bundles: `tile/8/0/x001/234.p/17`, `tile/8/data/000`. C2SP tlog-tiles fixes the height at
//! 8 and drops it: `tile/0/x001/234.p/17`, `tile/entries/000`. The tests translate between the two.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::sync::OnceLock;

use proptest::prelude::*;
use stele_core::hash::{leaf_hash, node_hash};
use stele_core::merkle::{consistency_proof, inclusion_proof, root, MemoryTree, NodeSource};
use stele_core::tile::{partial_width, tile_hashes_for, TileKind, TilePath, TILE_HEIGHT};
use stele_core::Hash;
use tlog_tiles as tl;

/// C2SP path → tlog_tiles path.
fn to_tlog(path: &str) -> String {
    let rest = path.strip_prefix("tile/").expect("tile/ prefix");
    let rest = match rest.strip_prefix("entries/") {
        Some(r) => format!("data/{r}"),
        None => rest.to_owned(),
    };
    format!("tile/{TILE_HEIGHT}/{rest}")
}

/// tlog_tiles path (height 8) → C2SP path.
fn from_tlog(path: &str) -> String {
    let rest = path.strip_prefix("tile/8/").expect("height-8 tile path");
    match rest.strip_prefix("data/") {
        Some(r) => format!("tile/entries/{r}"),
        None => format!("tile/{rest}"),
    }
}

fn ours(h: tl::Hash) -> Hash {
    Hash(h.0)
}

fn theirs(h: Hash) -> tl::Hash {
    tl::Hash(h.0)
}

const LEAVES: u64 = 70_000;

/// 70,000 leaves: the spec's example size, with full and partial tiles at levels 0 and 1.
fn tree() -> &'static MemoryTree {
    static TREE: OnceLock<MemoryTree> = OnceLock::new();
    TREE.get_or_init(|| {
        MemoryTree::from_leaves((0..LEAVES).map(|i| leaf_hash(&i.to_le_bytes())).collect())
    })
}

/// A tlog_tiles hash reader over our tree (stored-hash index → our node coordinates).
struct Reader<'a>(&'a MemoryTree);

impl tl::HashReader for Reader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tl::Hash>, tl::Error> {
        indexes
            .iter()
            .map(|&i| {
                let (level, n) = tl::split_stored_hash_index(i);
                self.0
                    .node(level, n)
                    .map(theirs)
                    .map_err(|_| tl::Error::IndexesNotInTree)
            })
            .collect()
    }
}

fn tile_path() -> impl Strategy<Value = TilePath> {
    let kind = prop_oneof![
        Just(TileKind::Entries),
        (0u8..=63).prop_map(|level| TileKind::Hash { level })
    ];
    let index = prop_oneof![0u64..2000, any::<u64>(), (0u32..64).prop_map(|b| 1u64 << b)];
    let width = prop_oneof![Just(None), (1u16..=255).prop_map(Some)];
    (kind, index, width).prop_map(|(kind, index, width)| TilePath::new(kind, index, width).unwrap())
}

/// Path-like strings, canonical or not, built from pieces both parsers care about. Pieces that
/// make tlog_tiles 0.2 panic instead of returning an error are left out: a level of 64..=255
/// (`Tile::new` asserts) and a width that parses as 0 (accepted by `from_path`, then asserted).
fn path_like() -> impl Strategy<Value = String> {
    let level = prop::sample::select(vec![
        "0", "1", "7", "63", "00", "01", "063", "", "entries", "+1", "-1", "x", "1.p",
    ]);
    let group = prop_oneof![
        prop::sample::select(vec![
            "000", "001", "x000", "x001", "01", "0001", "x01", "xx001", "x", "", "1.p", "000.p"
        ])
        .prop_map(str::to_owned),
        (0u32..1000).prop_map(|g| format!("{g:03}")),
        (0u32..1000).prop_map(|g| format!("x{g:03}")),
    ];
    let width = prop_oneof![
        prop::sample::select(vec![
            "1", "17", "255", "256", "01", "+1", "1000", "", "x", "-1"
        ])
        .prop_map(str::to_owned),
        (1u32..300).prop_map(|w| w.to_string()),
    ];
    let suffix = prop_oneof![Just(String::new()), width.prop_map(|w| format!(".p/{w}"))];
    (level, prop::collection::vec(group, 0..9), suffix)
        .prop_map(|(l, groups, suffix)| format!("tile/{l}/{}{suffix}", groups.join("/")))
        .prop_filter("tlog_tiles panics on width 0", |p| !tlog_panics_on_width(p))
}

/// `tile/…/<x>.p/<W>` where `W` parses as 0: tlog_tiles 0.2 accepts the width, then
/// `Tile::new` asserts `W >= 1`.
fn tlog_panics_on_width(path: &str) -> bool {
    let elems: Vec<&str> = path.split('/').collect();
    match elems.as_slice() {
        [.., n, w] => n.ends_with(".p") && w.parse::<u32>() == Ok(0),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn paths_agree_with_tlog_tiles(t in tile_path()) {
        let path = t.to_path();
        let theirs = tl::Tile::from_path(&to_tlog(&path)).unwrap();
        prop_assert_eq!(theirs.height(), TILE_HEIGHT);
        prop_assert_eq!(theirs.level_index(), t.index);
        prop_assert_eq!(u64::from(theirs.width()), t.count());
        match t.kind {
            TileKind::Entries => prop_assert!(theirs.is_data()),
            TileKind::Hash { level } => {
                prop_assert!(!theirs.is_data());
                prop_assert_eq!(theirs.level(), level);
            }
        }
        // And back: a tile tlog_tiles builds formats to a path we parse to the same tile.
        let (level, is_data) = match t.kind {
            TileKind::Entries => (0, true),
            TileKind::Hash { level } => (level, false),
        };
        let built = tl::Tile::new(TILE_HEIGHT, level, t.index, u32::try_from(t.count()).unwrap(), is_data);
        prop_assert_eq!(from_tlog(&built.path()), path.clone());
        prop_assert_eq!(TilePath::parse(&from_tlog(&built.path())), Ok(t));
    }

    /// Both parsers accept exactly the same strings, and read them the same way.
    #[test]
    fn parsers_agree_on_arbitrary_paths(path in path_like()) {
        let ours = TilePath::parse(&path);
        let theirs = tl::Tile::from_path(&to_tlog(&path));
        prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{} ours {:?} theirs {:?}", path, ours, theirs);
        if let (Ok(o), Ok(t)) = (ours, theirs) {
            prop_assert_eq!(o.index, t.level_index());
            prop_assert_eq!(o.count(), u64::from(t.width()));
            prop_assert_eq!(o.kind == TileKind::Entries, t.is_data());
        }
    }

    #[test]
    fn hashes_agree(data in prop::collection::vec(any::<u8>(), 0..600), l in any::<[u8; 32]>(), r in any::<[u8; 32]>()) {
        prop_assert_eq!(leaf_hash(&data), ours(tl::record_hash(&data)));
        prop_assert_eq!(node_hash(&Hash(l), &Hash(r)), ours(tl::node_hash(tl::Hash(l), tl::Hash(r))));
    }

    #[test]
    fn proofs_agree(size in 1..=LEAVES, index_frac in 0.0f64..1.0, from_frac in 0.0f64..1.0) {
        let t = tree();
        let reader = Reader(t);
        let index = ((size as f64 * index_frac) as u64).min(size - 1);
        let from = ((size as f64 * from_frac) as u64).clamp(1, size);
        let r = root(t, size).unwrap();
        prop_assert_eq!(ours(tl::tree_hash(size, &reader).unwrap()), r);

        let p = inclusion_proof(t, index, size).unwrap();
        let tp: Vec<tl::Hash> = p.iter().copied().map(theirs).collect();
        let leaf = t.node(0, index).unwrap();
        tl::check_record(&tp, size, theirs(r), index, theirs(leaf)).unwrap();
        let their_p: Vec<Hash> = tl::prove_record(size, index, &reader).unwrap().into_iter().map(ours).collect();
        prop_assert_eq!(&their_p, &p);

        let c = consistency_proof(t, from, size).unwrap();
        let tc: Vec<tl::Hash> = c.iter().copied().map(theirs).collect();
        let r1 = root(t, from).unwrap();
        tl::check_tree(&tc, size, theirs(r), from, theirs(r1)).unwrap();
        let their_c: Vec<Hash> = tl::prove_tree(size, from, &reader).unwrap().into_iter().map(ours).collect();
        prop_assert_eq!(&their_c, &c);
        // A proof for another leaf is refused by their verifier too.
        let other = t.node(0, (index + 1) % size).unwrap();
        if size > 1 {
            prop_assert!(tl::check_record(&tp, size, theirs(r), index, theirs(other)).is_err());
        }
    }
}

#[test]
fn tree_hash_agrees_for_small_sizes() {
    let reader = Reader(tree());
    for size in 0..=1100 {
        assert_eq!(
            ours(tl::tree_hash(size, &reader).unwrap()),
            root(tree(), size).unwrap(),
            "{size}"
        );
    }
}

/// Every tile tlog_tiles says a tree needs, read through our coordinates
/// (`tile_hashes_for` + `partial_width`), holds the same bytes as tlog_tiles reads.
#[test]
fn tile_contents_agree() {
    let t = tree();
    let reader = Reader(t);
    for size in [1, 255, 256, 257, 65_535, 65_536, 65_537, LEAVES] {
        let tiles = tl::Tile::new_tiles(TILE_HEIGHT, 0, size);
        assert!(!tiles.is_empty());
        for level in 0..3u8 {
            let at_level: Vec<&tl::Tile> = tiles.iter().filter(|x| x.level() == level).collect();
            let full = size >> (8 * (u32::from(level) + 1));
            let partial = partial_width(level, size);
            assert_eq!(
                at_level.len() as u64,
                full + u64::from(partial > 0),
                "size {size} level {level}"
            );
            if partial > 0 {
                assert_eq!(u64::from(at_level.last().unwrap().width()), partial);
            }
        }
        for theirs in &tiles {
            let path = TilePath::parse(&from_tlog(&theirs.path())).unwrap();
            let TileKind::Hash { level } = path.kind else {
                panic!("hash tile expected")
            };
            let (tree_level, first, count) =
                tile_hashes_for(level, path.index, path.count()).unwrap();
            let mut bytes = Vec::new();
            for i in first..first + count {
                bytes.extend_from_slice(&t.node(tree_level, i).unwrap().0);
            }
            assert_eq!(bytes, theirs.read_data(&reader).unwrap(), "{}", path);
        }
    }
}
