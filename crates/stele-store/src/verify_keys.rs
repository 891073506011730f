//! The key history part of offline verification: every rotation's statement, the chain from
//! the first key to the current one, the last checkpoint of every earlier key era (checked
//! with that era's key against the root recomputed from the entries), and the log's own
//! record of each rotation (handed back for the caller, who knows the event schema).

use std::collections::BTreeMap;
use std::path::Path;

use stele_core::checkpoint::open_checkpoint;
use stele_core::note::NoteVerifier;
use stele_core::rotation::KeyRotation;
use stele_core::Hash;

use crate::layout::Layout;
use crate::rotation::{load_rotations, RotationRecord};
use crate::verify::VerifyError;

/// A rotation whose statement, chain position and era checkpoint verified, with the entry
/// the log recorded it as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRotation {
    /// The record from `key/rotations.json`.
    pub record: RotationRecord,
    /// The stored bytes of entry `record.event_index`.
    pub event: Vec<u8>,
}

/// What the entry scan must check for the key history.
pub(crate) struct Eras {
    records: Vec<RotationRecord>,
    /// Tree size → expected roots (from era checkpoints), with the record they came from.
    roots: BTreeMap<u64, Vec<(Hash, usize)>>,
    /// Entry index → record position, for the events to hand back.
    events: BTreeMap<u64, usize>,
    found: Vec<Option<Vec<u8>>>,
}

fn err(path: &Path, detail: String) -> VerifyError {
    VerifyError {
        file: path.to_path_buf(),
        index: None,
        detail,
    }
}

impl Eras {
    /// Loads and checks `key/rotations.json` against `current` (the key the latest checkpoint
    /// is verified with) and `size` (the latest checkpoint's size).
    pub(crate) fn load(
        layout: &Layout,
        current: &NoteVerifier,
        size: u64,
    ) -> Result<Eras, VerifyError> {
        let path = layout.rotations();
        let records = load_rotations(layout.root()).map_err(|e| err(&path, e.to_string()))?;
        let mut roots: BTreeMap<u64, Vec<(Hash, usize)>> = BTreeMap::new();
        let mut events = BTreeMap::new();
        let mut previous: Option<(NoteVerifier, u64)> = None;
        for (i, r) in records.iter().enumerate() {
            let at = |what: String| err(&path, format!("rotation {i} ({}): {what}", r.new_key));
            let old = r.old_verifier(layout).map_err(|e| at(e.to_string()))?;
            let new = r.new_verifier(layout).map_err(|e| at(e.to_string()))?;
            if let Some((prev_new, prev_from)) = &previous {
                if *prev_new != old {
                    return Err(at(format!(
                        "rotates away from {}, but the previous rotation ended at {}",
                        r.old_key,
                        prev_new.to_verifier_key()
                    )));
                }
                if r.from_size < *prev_from {
                    return Err(at("starts before the previous rotation".into()));
                }
            }
            let stated = KeyRotation::open(r.statement.as_bytes(), &old).map_err(|e| {
                at(format!(
                    "the statement does not verify with the old key: {e}"
                ))
            })?;
            if stated.new_key != new || stated.from_size != r.from_size {
                return Err(at(
                    "the statement says something else than the record".into()
                ));
            }
            if r.from_size != r.event_index + 1 {
                return Err(at(
                    "from_size is not the size that holds the rotation's record".into(),
                ));
            }
            if r.from_size > size {
                return Err(at(format!(
                    "its record (entry {}) lies past the checkpoint's size {size}",
                    r.event_index
                )));
            }
            if let Some(note) = &r.old_checkpoint {
                let (cp, _) = open_checkpoint(note.as_bytes(), &old).map_err(|e| {
                    at(format!(
                        "the last checkpoint of the old key does not verify with it: {e}"
                    ))
                })?;
                // Normally smaller than `from_size`; larger only when a crash interrupted the
                // rotation after its record was stored and the restart signed with the old key.
                if cp.size > size {
                    return Err(at(format!(
                        "the old key's checkpoint of size {} is larger than the latest checkpoint",
                        cp.size
                    )));
                }
                roots.entry(cp.size).or_default().push((cp.root, i));
            }
            events.insert(r.event_index, i);
            previous = Some((new, r.from_size));
        }
        if let Some((last, _)) = &previous {
            if last != current {
                return Err(err(
                    &path,
                    format!(
                        "the key history ends at {}, but the checkpoint is checked with {}",
                        last.to_verifier_key(),
                        current.to_verifier_key()
                    ),
                ));
            }
        }
        let found = vec![None; records.len()];
        Ok(Eras {
            records,
            roots,
            events,
            found,
        })
    }

    /// Called with entry `index` before it is added to the tree.
    pub(crate) fn entry(&mut self, index: u64, bytes: &[u8]) {
        if let Some(&i) = self.events.get(&index) {
            if let Some(slot) = self.found.get_mut(i) {
                *slot = Some(bytes.to_vec());
            }
        }
    }

    /// Called with the root of the tree of `size` entries.
    pub(crate) fn root(&self, layout: &Layout, size: u64, root: &Hash) -> Result<(), VerifyError> {
        for (want, i) in self.roots.get(&size).into_iter().flatten() {
            if want != root {
                return Err(VerifyError {
                    file: layout.rotations(),
                    index: size.checked_sub(1),
                    detail: format!(
                        "rotation {i}: the old key's checkpoint of size {size} has another root than the entries"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Tree sizes whose roots [`Eras::root`] wants.
    pub(crate) fn wants_root(&self, size: u64) -> bool {
        self.roots.contains_key(&size)
    }

    /// The checked rotations, once the scan has passed every record's entry.
    pub(crate) fn finish(self, layout: &Layout) -> Result<Vec<CheckedRotation>, VerifyError> {
        self.records
            .into_iter()
            .zip(self.found)
            .map(|(record, event)| match event {
                Some(event) => Ok(CheckedRotation { record, event }),
                None => Err(err(
                    &layout.rotations(),
                    format!(
                        "the log holds no entry {}, the record of the rotation to {}",
                        record.event_index, record.new_key
                    ),
                )),
            })
            .collect()
    }
}
