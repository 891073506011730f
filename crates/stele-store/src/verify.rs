//! Offline verification of a data directory, independent of the code that wrote it: every
//! frame's checksum, every leaf and stored node hash recomputed from the entries, the bundle
//! index, and the signed checkpoint's root. Reads only; safe while the server runs.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use stele_core::checkpoint::open_checkpoint;
use stele_core::hash::leaf_hash;
use stele_core::merkle::Frontier;
use stele_core::note::NoteVerifier;
use stele_core::Hash;

use crate::frame::{self, HEADER_LEN};
use crate::layout::{Layout, BUNDLE_WIDTH, ENTRIES_PER_SEGMENT};
use crate::levels::MAX_LEVEL;

/// The first problem found, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {detail}", file.display(), index.map(|i| format!(": entry {i}")).unwrap_or_default())]
pub struct VerifyError {
    /// The file where the problem is.
    pub file: PathBuf,
    /// The first entry index affected, when there is one.
    pub index: Option<u64>,
    /// What is wrong.
    pub detail: String,
}

/// What a successful verification covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Size in the signed checkpoint.
    pub checkpoint_size: u64,
    /// Root in the signed checkpoint (recomputed and matched).
    pub checkpoint_root: Hash,
    /// Entries checked (may exceed the checkpoint while the log grows).
    pub entries: u64,
    /// Every key rotation of the log, checked (statements, key chain, each earlier era's
    /// last checkpoint), with the entry that records it for the caller to check.
    pub rotations: Vec<crate::verify_keys::CheckedRotation>,
    /// Things worth knowing that are not damage (a torn unacknowledged tail, derived files
    /// not yet rebuilt past the checkpoint).
    pub warnings: Vec<String>,
}

fn err(file: impl Into<PathBuf>, index: Option<u64>, detail: impl Into<String>) -> VerifyError {
    VerifyError {
        file: file.into(),
        index,
        detail: detail.into(),
    }
}

/// Sequential reader of one derived file, compared against recomputed values.
struct Expect {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    /// Set once the file ended past the checkpoint (not yet rebuilt): stop comparing.
    ended: bool,
}

impl Expect {
    fn new(path: PathBuf) -> Self {
        let reader = File::open(&path)
            .ok()
            .map(|f| BufReader::with_capacity(1 << 16, f));
        Expect {
            path,
            reader,
            ended: false,
        }
    }

    /// Compares the next `want.len()` bytes. `within` says whether they are vouched for by the
    /// checkpoint (then absence is damage) or lie past it (then absence is only a warning).
    fn next(
        &mut self,
        want: &[u8],
        index: u64,
        within: bool,
        what: &str,
        warnings: &mut Vec<String>,
    ) -> Result<(), VerifyError> {
        if self.ended {
            return Ok(());
        }
        let mut got = vec![0u8; want.len()];
        let read = match self.reader.as_mut() {
            Some(r) => r.read_exact(&mut got).is_ok(),
            None => false,
        };
        if !read {
            if within {
                let why = if self.reader.is_none() {
                    "file is missing"
                } else {
                    "file is truncated"
                };
                return Err(err(
                    &self.path,
                    Some(index),
                    format!("{why}: no {what} for an entry the checkpoint vouches for"),
                ));
            }
            self.ended = true;
            warnings.push(format!("{} ends before entry {index}, past the checkpoint (rebuilt when the server next opens the log)", self.path.display()));
            return Ok(());
        }
        if got != want {
            return Err(err(
                &self.path,
                Some(index),
                format!("stored {what} differs from the one recomputed from the entries"),
            ));
        }
        Ok(())
    }
}

/// Verifies the log in data directory `dir` against `verifier` (the log's current public
/// key; after rotations, the newest — see `stele_core::rotation::follow`). The key history
/// in `key/rotations.json`, if any, is checked too: each statement with its old key, the
/// chain ending at `verifier`, and each earlier key's last checkpoint against the entries.
///
/// # Errors
/// The first damage found, naming the file and the first bad entry index.
pub fn verify_dir(dir: &Path, verifier: &NoteVerifier) -> Result<VerifyReport, VerifyError> {
    let layout = Layout::new(dir);
    let cp_path = layout.checkpoint();
    let note = std::fs::read(&cp_path)
        .map_err(|e| err(&cp_path, None, format!("cannot read the checkpoint: {e}")))?;
    let (cp, _) = open_checkpoint(&note, verifier)
        .map_err(|e| err(&cp_path, None, format!("checkpoint does not verify: {e}")))?;
    let c = cp.size;
    let mut eras = crate::verify_keys::Eras::load(&layout, verifier, c)?;
    eras.root(&layout, 0, &Frontier::new().root())?;
    let mut report = VerifyReport {
        checkpoint_size: c,
        checkpoint_root: cp.root,
        ..Default::default()
    };

    let mut levels: Vec<Expect> = (0..=MAX_LEVEL)
        .map(|l| Expect::new(layout.level(l)))
        .collect();
    let mut bundle_idx = Expect::new(layout.bundle_index());
    let mut frontier = Frontier::new();
    let mut seg = 0u64;
    let mut warnings = Vec::new();
    let mut root_checked = c == 0;
    if c == 0 && cp.root != Frontier::new().root() {
        return Err(err(
            &cp_path,
            None,
            "empty checkpoint with a non-empty root",
        ));
    }
    'segments: loop {
        let path = layout.segment(seg);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(_) if frontier.size() >= c => break,
            Err(e) => {
                return Err(err(
                    &path,
                    Some(frontier.size()),
                    format!(
                    "segment missing or unreadable ({e}); the checkpoint vouches for {c} entries"
                ),
                ))
            }
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut r = BufReader::with_capacity(1 << 20, file);
        let mut at = 0u64;
        let mut header = [0u8; HEADER_LEN];
        let mut buf = Vec::new();
        while at < len {
            let next = frontier.size();
            let torn = |detail: String, warnings: &mut Vec<String>| -> Result<(), VerifyError> {
                if next >= c && !layout.segment(seg + 1).exists() {
                    warnings.push(format!("{}: {} bytes of torn, unacknowledged tail at byte {at} ({detail}); the server drops them when it next opens the log", path.display(), len - at));
                    Ok(())
                } else {
                    Err(err(
                        &path,
                        Some(next),
                        format!("bad frame at byte {at}: {detail}"),
                    ))
                }
            };
            if r.read_exact(&mut header).is_err() {
                torn("truncated header".into(), &mut warnings)?;
                break 'segments;
            }
            let h = match frame::parse_header(&header) {
                Ok(h) => h,
                Err(e) => {
                    torn(e.to_string(), &mut warnings)?;
                    break 'segments;
                }
            };
            buf.clear();
            buf.extend_from_slice(&header);
            buf.resize(HEADER_LEN + h.payload_len as usize, 0);
            if at + h.frame_len() > len || r.read_exact(&mut buf[HEADER_LEN..]).is_err() {
                torn("frame runs past the end of the file".into(), &mut warnings)?;
                break 'segments;
            }
            let payload = match frame::check_frame(&buf) {
                Ok((_, p)) => p,
                Err(e) => {
                    torn(e.to_string(), &mut warnings)?;
                    break 'segments;
                }
            };
            if h.first_index != next {
                return Err(err(
                    &path,
                    Some(next),
                    format!(
                        "frame at byte {at} starts at entry {}, expected {next}",
                        h.first_index
                    ),
                ));
            }
            if next / ENTRIES_PER_SEGMENT != seg
                || (next % BUNDLE_WIDTH) + u64::from(h.count) > BUNDLE_WIDTH
            {
                return Err(err(
                    &path,
                    Some(next),
                    format!("frame at byte {at} crosses a bundle or segment boundary"),
                ));
            }
            if next.is_multiple_of(BUNDLE_WIDTH) {
                bundle_idx.next(
                    &at.to_be_bytes(),
                    next,
                    next < c,
                    "bundle offset",
                    &mut warnings,
                )?;
            }
            for e in frame::entries(payload) {
                let index = frontier.size();
                let within = index < c;
                if within {
                    eras.entry(index, e);
                }
                let mut bad: Option<VerifyError> = None;
                frontier.push(leaf_hash(e), |level, node_index, hash| {
                    if bad.is_none() {
                        if let Some(x) = levels.get_mut(usize::from(level)) {
                            let what = if level == 0 {
                                "leaf hash".to_string()
                            } else {
                                format!("level-{level} node hash")
                            };
                            if let Err(mut v) =
                                x.next(&hash.0, node_index << level, within, &what, &mut warnings)
                            {
                                if level == 0 {
                                    v.detail = format!(
                                        "{} (entry bytes in {} or the hash file was altered)",
                                        v.detail,
                                        path.display()
                                    );
                                }
                                bad = Some(v);
                            }
                        }
                    }
                });
                if let Some(v) = bad {
                    return Err(v);
                }
                if frontier.size() <= c && eras.wants_root(frontier.size()) {
                    eras.root(&layout, frontier.size(), &frontier.root())?;
                }
                if frontier.size() == c && !root_checked {
                    if frontier.root() != cp.root {
                        return Err(err(
                            &cp_path,
                            Some(c - 1),
                            format!("the entries do not produce the signed root at size {c}"),
                        ));
                    }
                    root_checked = true;
                }
            }
            at += h.frame_len();
        }
        if frontier.size() < c && frontier.size() != (seg + 1) * ENTRIES_PER_SEGMENT {
            return Err(err(
                &path,
                Some(frontier.size()),
                format!(
                    "segment ends after entry {}, but the checkpoint vouches for {c} entries",
                    frontier.size()
                ),
            ));
        }
        seg += 1;
    }
    if frontier.size() < c || !root_checked {
        return Err(err(
            layout.segment(seg.saturating_sub(1)),
            Some(frontier.size()),
            format!(
                "the log holds {} entries, but the checkpoint vouches for {c}",
                frontier.size()
            ),
        ));
    }
    report.entries = frontier.size();
    report.rotations = eras.finish(&layout)?;
    report.warnings = warnings;
    Ok(report)
}
