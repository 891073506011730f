//! State shared between the writer and readers, and the read paths: entries, bundles, tiles,
//! roots and proofs. Readers never see past `size`, which the writer publishes only after
//! the entries are durable and the derived files hold them.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock};

use stele_core::merkle::{self, NodeSource};
use stele_core::Hash;

use crate::bundles;
use crate::error::{Result, StoreError};
use crate::frame;
use crate::idindex::IdIndex;
use crate::layout::{Layout, BUNDLES_PER_SEGMENT, BUNDLE_WIDTH};
use crate::levels::LevelReader;
use crate::metrics::StoreMetrics;
use crate::segments::SegmentReader;
use crate::types::SignedCheckpoint;

/// Shared state.
pub(crate) struct Shared {
    pub layout: Layout,
    /// Durable, acknowledged entries.
    pub size: AtomicU64,
    pub poisoned: AtomicBool,
    pub closed: AtomicBool,
    /// Bytes of entries queued but not yet taken by the writer (back-pressure).
    pub queued_bytes: AtomicUsize,
    pub checkpoint: RwLock<Option<SignedCheckpoint>>,
    /// The current verifier key string (changes when the key is rotated).
    pub verifier_key: RwLock<String>,
    pub levels: LevelReader,
    pub segments: SegmentReader,
    bundle_index: OnceLock<File>,
    pub ids: RwLock<Option<std::sync::Arc<IdIndex>>>,
    pub metrics: StoreMetrics,
}

impl Shared {
    pub fn new(layout: &Layout) -> Self {
        Shared {
            layout: layout.clone(),
            size: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            queued_bytes: AtomicUsize::new(0),
            checkpoint: RwLock::new(None),
            verifier_key: RwLock::new(String::new()),
            levels: LevelReader::new(layout),
            segments: SegmentReader::new(layout),
            bundle_index: OnceLock::new(),
            ids: RwLock::new(None),
            metrics: StoreMetrics::default(),
        }
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    fn check_index(&self, index: u64) -> Result<u64> {
        let size = self.size();
        if index >= size {
            return Err(StoreError::NotFound(format!(
                "entry {index} (the log holds {size})"
            )));
        }
        Ok(size)
    }

    fn bundle_offset(&self, bundle: u64) -> Result<u64> {
        let path = self.layout.bundle_index();
        let file = match self.bundle_index.get() {
            Some(f) => f,
            None => {
                let f = File::open(&path).map_err(StoreError::io("open", &path))?;
                self.bundle_index.get_or_init(|| f)
            }
        };
        bundles::read_offset(file, &path, bundle)
    }

    /// The payloads of the first `width` entries of bundle `bundle`, concatenated: the C2SP
    /// entry bundle (full when `width` is 256).
    fn bundle_payload(&self, bundle: u64, width: u64) -> Result<Vec<u8>> {
        let offset = self.bundle_offset(bundle)?;
        let frames = self.segments.read_frames(
            bundle / BUNDLES_PER_SEGMENT,
            offset,
            bundle * BUNDLE_WIDTH,
            width,
        )?;
        // Most bundles are one whole frame: its payload is the answer, without a copy.
        if let [f] = frames.as_slice() {
            if u64::from(f.header.count) == width {
                return Ok(frames
                    .into_iter()
                    .next()
                    .map(|f| f.payload)
                    .unwrap_or_default());
            }
        }
        let mut out = Vec::new();
        let mut left = width;
        for f in frames {
            let take = u64::from(f.header.count).min(left);
            if take == u64::from(f.header.count) {
                out.extend_from_slice(&f.payload);
            } else {
                for e in frame::entries(&f.payload).take(take as usize) {
                    out.extend_from_slice(&(e.len() as u16).to_be_bytes());
                    out.extend_from_slice(e);
                }
            }
            left -= take;
        }
        Ok(out)
    }

    pub fn entry(&self, index: u64) -> Result<Vec<u8>> {
        self.check_index(index)?;
        let bundle = index / BUNDLE_WIDTH;
        let offset = self.bundle_offset(bundle)?;
        let within = index % BUNDLE_WIDTH;
        let frames = self.segments.read_frames(
            bundle / BUNDLES_PER_SEGMENT,
            offset,
            bundle * BUNDLE_WIDTH,
            within + 1,
        )?;
        for f in frames {
            let first = f.header.first_index;
            if index < first + u64::from(f.header.count) {
                if let Some(e) = frame::entries(&f.payload).nth((index - first) as usize) {
                    return Ok(e.to_vec());
                }
            }
        }
        Err(StoreError::corrupt(
            self.layout.segment(bundle / BUNDLES_PER_SEGMENT),
            Some(index),
            "entry missing from its bundle",
        ))
    }

    pub fn entry_bundle(&self, index: u64, width: Option<u16>) -> Result<Vec<u8>> {
        let size = self.size();
        let available = size.saturating_sub(index * BUNDLE_WIDTH).min(BUNDLE_WIDTH);
        let want = width.map(u64::from).unwrap_or(BUNDLE_WIDTH);
        if available < want || want == 0 {
            return Err(StoreError::NotFound(format!(
                "entry bundle {index} of width {want} (the log holds {size})"
            )));
        }
        self.bundle_payload(index, want)
    }

    pub fn hash_tile(&self, level: u8, index: u64, width: Option<u16>) -> Result<Vec<u8>> {
        let size = self.size();
        let tree_level = u32::from(level) * 8;
        if tree_level >= 64 {
            return Err(StoreError::NotFound(format!("tile level {level}")));
        }
        let nodes = size >> tree_level;
        let available = nodes
            .saturating_sub(index.saturating_mul(BUNDLE_WIDTH))
            .min(BUNDLE_WIDTH);
        let want = width.map(u64::from).unwrap_or(BUNDLE_WIDTH);
        if available < want || want == 0 {
            return Err(StoreError::NotFound(format!(
                "tile {level}/{index} of width {want} (the log holds {size})"
            )));
        }
        self.levels
            .read_raw(tree_level as u8, index * BUNDLE_WIDTH, want)
    }

    pub fn leaf_hash(&self, index: u64) -> Result<Hash> {
        self.check_index(index)?;
        self.levels.node(0, index)
    }

    pub fn root(&self, size: u64) -> Result<Hash> {
        let have = self.size();
        if size > have {
            return Err(StoreError::InvalidArgument(format!(
                "tree size {size} exceeds the log's size {have}"
            )));
        }
        merkle::root(&self.levels, size)
    }

    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>> {
        let have = self.size();
        if size > have || index >= size {
            return Err(StoreError::InvalidArgument(format!(
                "need index < tree_size ≤ {have}; got index {index}, tree_size {size}"
            )));
        }
        merkle::inclusion_proof(&self.levels, index, size).map_err(merkle_err)
    }

    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>> {
        let have = self.size();
        if from == 0 || from > to || to > have {
            return Err(StoreError::InvalidArgument(format!(
                "need 0 < from ≤ to ≤ {have}; got from {from}, to {to}"
            )));
        }
        merkle::consistency_proof(&self.levels, from, to).map_err(merkle_err)
    }
}

fn merkle_err(e: merkle::MerkleError<StoreError>) -> StoreError {
    match e {
        merkle::MerkleError::Source(e) => e,
        other => StoreError::InvalidArgument(other.to_string()),
    }
}
