//! Turning a contradiction the remote verifier runs into into a proof of misbehaviour file
//! ([`stele_core::misbehaviour`]) that anyone can check offline with
//! `stele verify-misbehaviour FILE --key VKEY`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use stele_core::merkle::MemoryTree;
use stele_core::misbehaviour::{Contradiction, MisbehaviourProof};
use stele_core::note::NoteVerifier;
use stele_core::tile::{TileKind, TILE_WIDTH};
use stele_core::Hash;

use super::remote::fetch_tile;
use crate::client::Client;

/// The hash of the subtree of the first `from` leaves (`from` a power of two, below `to`) of
/// the log's tree of size `to`, computed from its hash tiles. Nothing here is trusted: the
/// full-form proof it starts is only evidence if it leads to a signed root.
fn subtree_root(client: &Client, from: u64, to: u64) -> Result<Hash> {
    let k = from.trailing_zeros();
    let (tile_level, below) = (k / 8, k % 8);
    let level = u8::try_from(tile_level).context("tile level")?;
    let nodes = (to >> (8 * tile_level)).min(TILE_WIDTH);
    let data = fetch_tile(client, TileKind::Hash { level }, 0, nodes)?;
    let want = 1usize << below;
    let hashes: Vec<Hash> = data
        .chunks_exact(Hash::LEN)
        .take(want)
        .filter_map(Hash::from_slice)
        .collect();
    anyhow::ensure!(
        hashes.len() == want,
        "hash tile {level}/000 holds fewer than {want} hashes"
    );
    // A perfect tree of 2^below nodes folds the same way at any level.
    Ok(MemoryTree::from_leaves(hashes).root())
}

/// The full form of an RFC 9162 consistency proof served by the log: the proof itself, with
/// the old subtree's hash in front when `from` is a power of two.
pub fn full_form(client: &Client, from: u64, to: u64, proof: &[Hash]) -> Result<Vec<Hash>> {
    let mut full = Vec::with_capacity(proof.len().saturating_add(1));
    if from.is_power_of_two() {
        full.push(subtree_root(client, from, to)?);
    }
    full.extend_from_slice(proof);
    Ok(full)
}

/// A verified proof that the two notes contradict each other (given `full`, a full-form proof
/// between their sizes in the larger tree), or `None` if they do not make one.
pub fn bind(
    a: &str,
    b: &str,
    full: Vec<Hash>,
    log: &NoteVerifier,
) -> Option<(MisbehaviourProof, Contradiction)> {
    let proof = MisbehaviourProof::new(a, b, full, log);
    let c = proof.verify(log).ok()?;
    Some((proof, c))
}

/// Where to write a proof when `--misbehaviour-out` is not given: beside the state file,
/// `<state file>.<unix seconds>.misbehaviour`.
pub fn default_path(state_file: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = state_file.as_os_str().to_owned();
    name.push(format!(".{secs}.misbehaviour"));
    PathBuf::from(name)
}

/// Writes `proof` to `path` (never replacing a file: `.1`, `.2`, … are tried) and returns
/// where it went.
///
/// # Errors
/// I/O errors.
pub fn save(path: &Path, proof: &MisbehaviourProof) -> Result<PathBuf> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = proof.to_text();
    for n in 0..1000u32 {
        let candidate = if n == 0 {
            path.to_path_buf()
        } else {
            let mut p = path.as_os_str().to_owned();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(mut f) => {
                f.write_all(text.as_bytes())
                    .and_then(|()| f.sync_all())
                    .with_context(|| format!("writing {}", candidate.display()))?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e).with_context(|| format!("creating {}", candidate.display()));
            }
        }
    }
    anyhow::bail!("{} and 999 numbered variants exist already", path.display())
}
