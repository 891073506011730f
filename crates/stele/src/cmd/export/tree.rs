//! The tree of one checkpoint, read from C2SP hash tiles: a [`NodeSource`] for the core's
//! proof generation, so an export computes every inclusion and consistency proof locally
//! from a few tiles instead of asking the server once per event.
//!
//! A tile at tile level `L` holds up to 256 nodes of tree level `8·L`; the nodes of tree
//! levels `8·L+1 … 8·L+7` above them are hashed once when the tile arrives. Tiles are kept
//! while they can still be needed: an export walks the log in index order, and the proofs of
//! entry `i` only touch, at each tile level, the tile on `i`'s own path and the rightmost
//! (partial) tile holding the tree's right edge. Inserting tile `N` of a level therefore drops
//! that level's tiles left of `N`, so memory stays a few tiles per level however large the
//! log or the selection.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use anyhow::{anyhow, Result};
use stele_core::hash::node_hash;
use stele_core::merkle::NodeSource;
use stele_core::tile::{TILE_HEIGHT, TILE_WIDTH};
use stele_core::Hash;

use crate::exit::Failure;

/// Fetches hash tile `(tile level, tile index)` holding `width` nodes; may return more bytes
/// (a full tile standing in for a dropped partial one).
pub trait FetchTile {
    /// The tile's bytes.
    ///
    /// # Errors
    /// Whatever fetching reports.
    fn fetch(&self, level: u8, index: u64, width: u64) -> Result<Vec<u8>>;
}

impl<F: Fn(u8, u64, u64) -> Result<Vec<u8>>> FetchTile for F {
    fn fetch(&self, level: u8, index: u64, width: u64) -> Result<Vec<u8>> {
        self(level, index, width)
    }
}

/// The nodes of one tile: `levels[r]` holds the complete nodes of tree level `8·L + r` under
/// the tile, left to right.
struct TileNodes {
    levels: Vec<Vec<Hash>>,
}

impl TileNodes {
    fn new(base: Vec<Hash>) -> TileNodes {
        let mut levels = vec![base];
        for _ in 1..TILE_HEIGHT {
            let below = levels.last().map(Vec::as_slice).unwrap_or_default();
            let above = below
                .chunks_exact(2)
                .filter_map(|pair| match pair {
                    [l, r] => Some(node_hash(l, r)),
                    _ => None,
                })
                .collect();
            levels.push(above);
        }
        TileNodes { levels }
    }
}

/// The tree of `size` leaves, read from hash tiles on demand.
pub struct TileTree<F> {
    size: u64,
    fetch: F,
    tiles: RefCell<BTreeMap<(u8, u64), Rc<TileNodes>>>,
    fetched: Cell<u64>,
}

impl<F: FetchTile> TileTree<F> {
    /// The tree of the first `size` leaves; tiles come from `fetch`.
    pub fn new(size: u64, fetch: F) -> Self {
        TileTree {
            size,
            fetch,
            tiles: RefCell::new(BTreeMap::new()),
            fetched: Cell::new(0),
        }
    }

    /// How many tiles have been fetched so far.
    pub fn fetched(&self) -> u64 {
        self.fetched.get()
    }

    /// Width of tile `index` at tile level `level` in this tree, or `None` if the tree has
    /// no node there.
    fn width(&self, level: u8, index: u64) -> Option<u64> {
        let nodes = self
            .size
            .checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))?;
        let start = index.checked_mul(TILE_WIDTH)?;
        let width = nodes.checked_sub(start)?.min(TILE_WIDTH);
        (width > 0).then_some(width)
    }

    /// Supplies level-0 tile `index` from leaf hashes computed locally (from the entry bundle
    /// of the same index), which saves fetching it. `leaves` must be that tile's width.
    pub fn insert_leaves(&self, index: u64, leaves: Vec<Hash>) {
        if self.width(0, index) == u64::try_from(leaves.len()).ok() {
            self.insert(0, index, TileNodes::new(leaves));
        }
    }

    fn insert(&self, level: u8, index: u64, nodes: TileNodes) -> Rc<TileNodes> {
        let nodes = Rc::new(nodes);
        let mut tiles = self.tiles.borrow_mut();
        // Tiles of this level left of `index` are behind the export's position (see the
        // module comment): drop them.
        let stale: Vec<(u8, u64)> = tiles
            .range((level, 0)..(level, index))
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            tiles.remove(&k);
        }
        tiles.insert((level, index), nodes.clone());
        nodes
    }

    fn tile(&self, level: u8, index: u64) -> Result<Rc<TileNodes>> {
        if let Some(t) = self.tiles.borrow().get(&(level, index)) {
            return Ok(t.clone());
        }
        let width = self.width(level, index).ok_or_else(|| {
            anyhow!(
                "tile {level}/{index} is outside the tree of size {}",
                self.size
            )
        })?;
        let data = self.fetch.fetch(level, index, width)?;
        self.fetched.set(self.fetched.get() + 1);
        let want = usize::try_from(width)? * Hash::LEN;
        let bytes = data.get(..want).ok_or_else(|| {
            Failure::verification(format!(
                "hash tile {level}/{index} holds {} bytes, expected {want}",
                data.len()
            ))
        })?;
        let base = bytes
            .chunks_exact(Hash::LEN)
            .filter_map(Hash::from_slice)
            .collect();
        Ok(self.insert(level, index, TileNodes::new(base)))
    }
}

impl<F: FetchTile> NodeSource for TileTree<F> {
    type Error = anyhow::Error;

    fn node(&self, level: u8, index: u64) -> Result<Hash> {
        let (tile_level, r) = (level / TILE_HEIGHT, level % TILE_HEIGHT);
        // The node covers base nodes [index·2^r, (index+1)·2^r) of its tile level.
        let per_tile = TILE_WIDTH >> r;
        let tile = self.tile(tile_level, index / per_tile)?;
        let at = usize::try_from(index % per_tile)?;
        tile.levels
            .get(usize::from(r))
            .and_then(|nodes| nodes.get(at))
            .copied()
            .ok_or_else(|| {
                anyhow!(
                    "node ({level}, {index}) is not complete in the tree of size {}",
                    self.size
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use stele_core::hash::leaf_hash;
    use stele_core::merkle::{consistency_proof, inclusion_proof, MemoryTree};

    use super::*;

    /// Serves hash tiles of `tree` at its full size (so partial tiles are prefixes of what a
    /// larger tree would serve, as on a live log), recording the requests.
    fn tiles_of(tree: &MemoryTree) -> impl Fn(u8, u64, u64) -> Result<Vec<u8>> + '_ {
        move |level, index, width| {
            let nodes = tree.nodes(level * TILE_HEIGHT);
            let start = usize::try_from(index * TILE_WIDTH)?;
            let end = start + usize::try_from(width)?;
            let slice = nodes.get(start..end).ok_or_else(|| anyhow!("no tile"))?;
            Ok(slice.iter().flat_map(|h| h.0).collect())
        }
    }

    #[test]
    fn proofs_from_tiles_equal_proofs_from_the_whole_tree() {
        // Big enough for two tile levels and partial tiles on both.
        let n = 70_000u64;
        let tree = MemoryTree::from_leaves((0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect());
        for size in [1, 255, 256, 257, 65_536, 65_537, 69_999] {
            let tiles = TileTree::new(size, tiles_of(&tree));
            for index in [0, size / 2, size - 1] {
                assert_eq!(
                    inclusion_proof(&tiles, index, size).unwrap(),
                    inclusion_proof(&tree, index, size).unwrap(),
                    "inclusion {index} in {size}"
                );
            }
            for from in [1, size / 3 + 1, size] {
                assert_eq!(
                    consistency_proof(&tiles, from, size).unwrap(),
                    consistency_proof(&tree, from, size).unwrap(),
                    "consistency {from}..{size}"
                );
            }
        }
    }

    #[test]
    fn a_walk_in_index_order_fetches_each_tile_about_once() {
        let n = 70_000u64;
        let tree = MemoryTree::from_leaves((0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect());
        let requests = RefCell::new(Vec::new());
        let inner = tiles_of(&tree);
        let tiles = TileTree::new(n, |l: u8, i: u64, w: u64| {
            requests.borrow_mut().push((l, i));
            inner(l, i, w)
        });
        for index in (0..n).step_by(97) {
            inclusion_proof(&tiles, index, n).unwrap();
        }
        // 274 level-0 tiles, 2 level-1 tiles and the level-2 tile holding node (16, 0), the
        // left half of the tree; the right edge's partial tiles are fetched again at most once
        // each after being dropped. At most two tiles per level are kept.
        assert!(tiles.tiles.borrow().len() <= 6);
        let requests = requests.borrow().clone();
        let mut distinct = requests.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 274 + 2 + 1);
        assert!(requests.len() <= distinct.len() + 4, "{}", requests.len());
    }

    #[test]
    fn locally_hashed_leaves_replace_level_zero_tiles_and_short_tiles_are_refused() {
        let tree =
            MemoryTree::from_leaves((0..300u64).map(|i| leaf_hash(&i.to_be_bytes())).collect());
        let tiles = TileTree::new(300, |_: u8, _: u64, _: u64| -> Result<Vec<u8>> {
            Err(anyhow!("no network"))
        });
        // Right to left: inserting a tile drops the tiles left of it on its level.
        tiles.insert_leaves(1, tree.nodes(0)[256..300].to_vec());
        tiles.insert_leaves(0, tree.nodes(0)[..256].to_vec());
        assert_eq!(
            inclusion_proof(&tiles, 3, 300).unwrap(),
            inclusion_proof(&tree, 3, 300).unwrap()
        );
        assert_eq!(tiles.fetched(), 0);

        let short = TileTree::new(300, |_: u8, _: u64, _: u64| Ok(vec![0u8; 31]));
        let err = inclusion_proof(&short, 3, 300).unwrap_err();
        let stele_core::merkle::MerkleError::Source(err) = err else {
            panic!("expected a source error");
        };
        assert!(err.to_string().contains("holds 31 bytes"), "{err}");
    }
}
