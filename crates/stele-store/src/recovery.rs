//! Opening a store: trust what the last checkpoint vouches for, rebuild the rest from the
//! segments, and drop a torn tail that was never acknowledged.
//!
//! The checkpoint at size C was written only after the derived files were made durable at C,
//! so: derived files are truncated to C; segment frames holding entries ≥ C are re-read,
//! re-hashed and re-indexed. A frame that fails its checksum is a torn write only if nothing
//! valid follows it; then it and everything after it are cut off (they were never
//! acknowledged, because acknowledgement follows `fdatasync`). Anything else is corruption,
//! and the store refuses to open rather than cut acknowledged entries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stele_core::checkpoint::open_checkpoint;
use stele_core::hash::leaf_hash;
use stele_core::merkle::Frontier;
use stele_core::note::{NoteSigner, NoteVerifier};
use stele_core::Hash;

use crate::bundles::{self, BundleIndexWriter};
use crate::error::{Result, StoreError};
use crate::frame;
use crate::idindex::{IdIndex, Indexed};
use crate::layout::{Layout, BUNDLES_PER_SEGMENT, BUNDLE_WIDTH, ENTRIES_PER_SEGMENT};
use crate::levels::LevelWriter;
use crate::segments::{read_up_to, SegmentWriter};
use crate::shared::Shared;
use crate::types::{EntryKey, SignedCheckpoint};
use crate::writer::Writer;

/// What recovery found, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Size vouched for by the checkpoint found on disk.
    pub checkpoint_size: u64,
    /// Durable entries found after recovery.
    pub size: u64,
    /// Bytes of torn, unacknowledged tail cut off.
    pub torn_bytes: u64,
}

/// Reads and checks the checkpoint file, if any: it must be signed by the current key or by
/// a retired one (a crash during a key rotation can leave the last checkpoint signed by the
/// old key only).
pub(crate) fn read_checkpoint(
    layout: &Layout,
    signer: &NoteSigner,
    retired: &[NoteVerifier],
) -> Result<Option<SignedCheckpoint>> {
    let path = layout.checkpoint();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::Io {
                op: "read",
                path,
                source: e,
            })
        }
    };
    let mut opened = open_checkpoint(&bytes, &signer.verifier());
    for key in retired {
        if opened.is_ok() {
            break;
        }
        if let Ok(ok) = open_checkpoint(&bytes, key) {
            opened = Ok(ok);
        }
    }
    let (cp, _) = opened.map_err(|e| {
        StoreError::corrupt(&path, None, format!("checkpoint does not verify: {e}"))
    })?;
    let note = String::from_utf8(bytes)
        .map_err(|_| StoreError::corrupt(&path, None, "checkpoint is not UTF-8"))?;
    Ok(Some(SignedCheckpoint {
        size: cp.size,
        root: cp.root,
        note,
    }))
}

pub(crate) fn recover(
    layout: &Layout,
    shared: &Arc<Shared>,
    signer: NoteSigner,
    retired: &[NoteVerifier],
    key_of: fn(&[u8]) -> Option<EntryKey>,
    checkpoint_interval: Duration,
) -> Result<(Writer, RecoveryReport)> {
    let log_dir = layout.log_dir();
    crate::fsutil::create_dir_durable(&log_dir)?;
    let cp = read_checkpoint(layout, &signer, retired)?;
    let c = cp.as_ref().map(|c| c.size).unwrap_or(0);
    let mut levels = LevelWriter::open(layout, c)?;
    let mut bundles = BundleIndexWriter::open(layout, c.div_ceil(BUNDLE_WIDTH))?;

    // The frontier at C, from the level files, must reproduce the signed root.
    let peaks = Frontier::peak_coords(c)
        .into_iter()
        .map(|(level, index)| {
            use stele_core::merkle::NodeSource;
            shared.levels.node(level, index)
        })
        .collect::<Result<Vec<Hash>>>()?;
    let mut frontier = Frontier::from_peaks(c, peaks)
        .map_err(|e| StoreError::corrupt(layout.hashes_dir(), None, e.to_string()))?;
    if let Some(cp) = &cp {
        if frontier.root() != cp.root {
            return Err(StoreError::corrupt(
                layout.hashes_dir(),
                None,
                format!("hashes at the checkpointed size {c} do not give the signed root"),
            ));
        }
    }

    let legacy = layout.legacy_ids();
    if legacy.exists() {
        // Written by an earlier build (redb). Derived data: the new index starts empty and
        // is rebuilt below from the entries, which the checkpoint vouches for.
        tracing::warn!(file = %legacy.display(), "replacing the old id index; re-indexing every entry");
        std::fs::remove_file(&legacy).map_err(StoreError::io("remove", legacy.clone()))?;
    }
    let ids = Arc::new(IdIndex::open(&layout.ids())?);
    let indexed = ids.indexed_through()?.min(c);

    // Scan from the start of the bundle holding entry C-1 (or from the beginning).
    let (mut seg, mut at) = if c == 0 {
        (0, 0)
    } else {
        let b = (c - 1) / BUNDLE_WIDTH;
        let f = std::fs::File::open(layout.bundle_index())
            .map_err(StoreError::io("open", layout.bundle_index()))?;
        (
            b / BUNDLES_PER_SEGMENT,
            bundles::read_offset(&f, &layout.bundle_index(), b)?,
        )
    };
    let mut next = if c == 0 {
        0
    } else {
        ((c - 1) / BUNDLE_WIDTH) * BUNDLE_WIDTH
    };
    let mut last_time_ns = 0i64;
    let mut torn_bytes = 0u64;
    let mut records: Vec<Indexed> = Vec::new();
    let mut reindex_from = indexed;
    // Entries between `indexed` and C need re-indexing too; they lie before the scan start
    // only when the index lags more than a bundle behind, so re-read them first.
    if indexed < next {
        reindex_range(layout, shared, key_of, &ids, indexed, next, &mut records)?;
        reindex_from = next;
    }
    loop {
        let path = layout.segment(seg);
        if !path.exists() {
            break;
        }
        let file = std::fs::File::open(&path).map_err(StoreError::io("open", &path))?;
        let len = file
            .metadata()
            .map_err(StoreError::io("stat", &path))?
            .len();
        if len < at {
            return Err(StoreError::corrupt(
                &path,
                Some(next),
                format!("segment holds {len} bytes, the bundle index points at byte {at}"),
            ));
        }
        let data =
            read_up_to(&file, at, (len - at) as usize).map_err(StoreError::io("read", &path))?;
        let seg_len = at + data.len() as u64;
        let mut rel = 0usize;
        while rel < data.len() {
            let here = at + rel as u64;
            match frame::check_frame(&data[rel..]) {
                Ok((h, payload)) if h.first_index == next => {
                    for (i, e) in frame::entries(payload).enumerate() {
                        let index = h.first_index + i as u64;
                        if index < c {
                            // Hashed and bundled already (the checkpoint vouches for
                            // them), but the id index may lag behind C.
                            if index >= reindex_from {
                                if let Some(k) = key_of(e) {
                                    records.push(Indexed::new(
                                        k.id,
                                        index,
                                        h.time_ns,
                                        k.digest,
                                        &leaf_hash(e),
                                    ));
                                }
                                hand_over_if_full(&ids, &mut records, index + 1)?;
                            }
                            continue;
                        }
                        if index.is_multiple_of(BUNDLE_WIDTH) {
                            bundles.push(here);
                        }
                        let leaf = leaf_hash(e);
                        frontier.push(leaf, |level, _, hash| levels.push(level, &hash));
                        if index >= reindex_from {
                            if let Some(k) = key_of(e) {
                                records.push(Indexed::new(k.id, index, h.time_ns, k.digest, &leaf));
                            }
                        }
                    }
                    next += u64::from(h.count);
                    last_time_ns = last_time_ns.max(h.time_ns);
                    rel += h.frame_len() as usize;
                }
                Ok((h, _)) => {
                    return Err(StoreError::corrupt(
                        &path,
                        Some(next),
                        format!(
                            "frame at byte {here} starts at entry {}, expected {next}",
                            h.first_index
                        ),
                    ));
                }
                Err(e) => {
                    // Torn tail, or corruption? Torn only if no valid frame follows anywhere.
                    if next < c {
                        return Err(StoreError::corrupt(
                            &path,
                            Some(next),
                            format!("bad frame at byte {here} inside the checkpointed log: {e}"),
                        ));
                    }
                    if valid_frame_after(&data[rel + 1..]) || layout.segment(seg + 1).exists() {
                        return Err(StoreError::corrupt(
                            &path,
                            Some(next),
                            format!("bad frame at byte {here} followed by valid data: {e}"),
                        ));
                    }
                    torn_bytes = seg_len - here;
                    tracing::warn!(file = %path.display(), offset = here, bytes = torn_bytes, "dropping torn, unacknowledged tail: {e}");
                    break;
                }
            }
        }
        at += rel as u64;
        if torn_bytes > 0 || !layout.segment(seg + 1).exists() {
            break;
        }
        if next != (seg + 1) * ENTRIES_PER_SEGMENT {
            return Err(StoreError::corrupt(
                &path,
                Some(next),
                "segment ends before its last bundle but a later segment exists",
            ));
        }
        seg += 1;
        at = 0;
    }
    if frontier.size() < c {
        return Err(StoreError::corrupt(
            layout.segment(seg),
            Some(frontier.size()),
            format!(
                "the checkpoint vouches for {c} entries but the segments hold {}",
                frontier.size()
            ),
        ));
    }
    // Continue in a fresh segment when the last one ended exactly at its capacity.
    let segments = SegmentWriter::open(layout, seg, at)?;
    levels.flush()?;
    bundles.flush()?;
    let size = frontier.size();
    if !records.is_empty() || indexed < size {
        ids.insert(&records, size)?;
    }
    shared
        .size
        .store(size, std::sync::atomic::Ordering::Release);
    shared.metrics.tree_size.set(size as i64);
    *shared.checkpoint.write().unwrap_or_else(|p| p.into_inner()) = cp.clone();
    let report = RecoveryReport {
        checkpoint_size: c,
        size,
        torn_bytes,
    };
    if size > c || torn_bytes > 0 {
        tracing::info!(
            checkpoint = c,
            size,
            torn_bytes,
            "recovered the log past its last checkpoint"
        );
    }
    let writer = Writer {
        layout: layout.clone(),
        shared: shared.clone(),
        segments,
        levels,
        bundles,
        frontier,
        ids,
        signer,
        cosigners: Vec::new(),
        last_time_ns,
        clock: crate::store::system_clock,
        checkpoint_interval,
        checkpointed_size: c,
        last_checkpoint_at: Instant::now(),
        syncer: None,
        in_flight: Default::default(),
        frame_buf: Vec::new(),
        pending_ids: Default::default(),
    };
    Ok((writer, report))
}

/// Whether any offset of `data` starts a frame that checks out.
fn valid_frame_after(data: &[u8]) -> bool {
    let mut from = 0usize;
    while let Some(pos) = data
        .get(from..)
        .and_then(|d| d.windows(4).position(|w| w == frame::MAGIC))
    {
        let at = from + pos;
        if frame::check_frame(&data[at..]).is_ok() {
            return true;
        }
        from = at + 1;
    }
    false
}

/// Records of checkpointed entries collected before they are handed to the id index, so
/// that rebuilding a lost index (or one far behind) takes memory bounded by this and the
/// index's own layers, not by the log's size.
const REINDEX_CHUNK: usize = 1 << 16;

/// Hands `records` to the id index once there are [`REINDEX_CHUNK`] of them. Only for
/// entries below the checkpoint: those are durable, so the index may cover them (through
/// entry `through - 1`) and write that to disk.
fn hand_over_if_full(ids: &IdIndex, records: &mut Vec<Indexed>, through: u64) -> Result<()> {
    if records.len() >= REINDEX_CHUNK {
        ids.insert(records, through)?;
        records.clear();
    }
    Ok(())
}

/// Re-reads entries `[from, to)` (all below the checkpoint, so their bundles are indexed) to
/// rebuild id records that a crash kept out of the index, handing them to `ids` a chunk at a
/// time.
fn reindex_range(
    layout: &Layout,
    shared: &Arc<Shared>,
    key_of: fn(&[u8]) -> Option<EntryKey>,
    ids: &IdIndex,
    from: u64,
    to: u64,
    out: &mut Vec<Indexed>,
) -> Result<()> {
    let f = std::fs::File::open(layout.bundle_index())
        .map_err(StoreError::io("open", layout.bundle_index()))?;
    let mut bundle = from / BUNDLE_WIDTH;
    while bundle * BUNDLE_WIDTH < to {
        let off = bundles::read_offset(&f, &layout.bundle_index(), bundle)?;
        let frames = shared.segments.read_frames(
            bundle / BUNDLES_PER_SEGMENT,
            off,
            bundle * BUNDLE_WIDTH,
            BUNDLE_WIDTH.min(to - bundle * BUNDLE_WIDTH),
        )?;
        for fr in frames {
            for (i, e) in frame::entries(&fr.payload).enumerate() {
                let index = fr.header.first_index + i as u64;
                if index >= from && index < to {
                    if let Some(k) = key_of(e) {
                        out.push(Indexed::new(
                            k.id,
                            index,
                            fr.header.time_ns,
                            k.digest,
                            &leaf_hash(e),
                        ));
                    }
                }
            }
        }
        bundle += 1;
        hand_over_if_full(ids, out, (bundle * BUNDLE_WIDTH).min(to))?;
    }
    Ok(())
}
