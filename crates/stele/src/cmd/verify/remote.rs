//! `stele verify --url URL --key VKEY [--state FILE] [--full] [--witness-key VKEY…
//! --witness-quorum K] [--gossip WITNESS_URL…] [--misbehaviour-out FILE]`.
//!
//! Trust on first use, then append-only: the first run trusts the signed checkpoint it sees
//! and remembers it; every later run accepts a new checkpoint only with a consistency proof
//! from the remembered one (RFC 9162 §2.1.4), so a rollback or a rewritten history (split
//! view) is caught. A contradiction that two signed checkpoints prove (same size and another
//! root, or a proof that leads to the new root from another old root) is written out as a
//! proof of misbehaviour. With a witness policy, the checkpoint must also carry valid
//! cosignatures from K of the trusted witnesses; with `--gossip`, it is compared with what
//! each witness cosigned.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use stele_core::checkpoint::Checkpoint;
use stele_core::cosignature::WitnessPolicy;
use stele_core::hash::leaf_hash;
use stele_core::merkle::{verify_consistency, Frontier};
use stele_core::note::{Note, NoteVerifier};
use stele_core::tile::{bundle_decode, TileKind, TilePath, TILE_WIDTH};
use stele_core::Hash;

use super::{evidence, gossip, rotation, state};
use crate::client::{Client, ConsistencyProof};
use crate::exit::Failure;
use crate::{keys, paths};

/// What it takes to accept a new checkpoint given the trusted one.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// Nothing trusted yet: trust on first use.
    FirstUse,
    /// Same size and root as the trusted checkpoint.
    Unchanged,
    /// The trusted tree is empty; every tree extends it.
    FromEmpty,
    /// A consistency proof from the trusted size to the new size is needed.
    Prove {
        /// Trusted size.
        from: u64,
        /// New size.
        to: u64,
    },
}

fn plan(old: Option<&Checkpoint>, new: &Checkpoint) -> Result<Plan, Failure> {
    let Some(old) = old else {
        return Ok(Plan::FirstUse);
    };
    if new.size < old.size {
        return Err(Failure::verification(format!(
            "rollback: the log's checkpoint has size {}, smaller than the size {} trusted before",
            new.size, old.size
        )));
    }
    if new.size == old.size {
        if new.root != old.root {
            return Err(Failure::verification(format!(
                "split view: the log signed two different roots for size {}: {} (trusted) and {} (now)",
                new.size,
                old.root.to_base64(),
                new.root.to_base64()
            )));
        }
        return Ok(Plan::Unchanged);
    }
    if old.size == 0 {
        return Ok(Plan::FromEmpty);
    }
    Ok(Plan::Prove {
        from: old.size,
        to: new.size,
    })
}

fn check_proof(
    old: &Checkpoint,
    new: &Checkpoint,
    proof: &ConsistencyProof,
) -> Result<(), Failure> {
    if (proof.from, proof.to) != (old.size, new.size) {
        return Err(Failure::verification(format!(
            "asked for a consistency proof {}..{}, got {}..{}",
            old.size, new.size, proof.from, proof.to
        )));
    }
    verify_consistency(old.size, new.size, &proof.hashes, &old.root, &new.root).map_err(|e| {
        Failure::verification(format!("split view or rewritten history: the checkpoint of size {} is not an extension of the trusted one of size {} ({e})", new.size, old.size))
    })
}

/// What `stele verify --url` is asked to check.
pub struct Options<'a> {
    /// The log's base URL.
    pub url: &'a str,
    /// The log's verifier key, or `@FILE`.
    pub key: &'a str,
    /// Where the trusted checkpoint is kept (default: per origin, under the XDG state dir).
    pub state_file: Option<&'a Path>,
    /// Whether to rehash every entry.
    pub full: bool,
    /// The witness policy the checkpoint must meet, if any.
    pub policy: Option<WitnessPolicy>,
    /// Witnesses to compare views with.
    pub gossip: &'a [String],
    /// Where to write a proof of misbehaviour (default: beside the state file).
    pub misbehaviour_out: Option<&'a Path>,
}

/// Runs the remote verification.
///
/// # Errors
/// Verification failures (exit 1), including a checkpoint that contradicts the trusted one (a
/// proof of misbehaviour is written when the contradiction can be proven) or misses the
/// witness policy; unreachable server, bad key, unusable state file (exit 2).
pub fn run(o: &Options<'_>) -> Result<ExitCode> {
    let given = keys::verifier_from_arg(o.key)?;
    let client = Client::new(o.url)?;
    // The key name is the origin (Stele requires it of checkpoints).
    let state_path = match o.state_file {
        Some(p) => p.to_path_buf(),
        None => paths::default_state_file(given.name())?,
    };
    let rotation = rotation::follow(&client, &given, &state_path)?;
    let verifier = rotation.current.clone();
    let (new, note) = client.checkpoint(&verifier)?;
    let evidence_out = o
        .misbehaviour_out
        .map_or_else(|| evidence::default_path(&state_path), Path::to_path_buf);
    let old = state::load_any(&state_path, &rotation.chain)?;
    let old_cp = old.as_ref().map(|(cp, _)| cp);
    let planned = match plan(old_cp, &new) {
        Ok(p) => p,
        Err(failure) => {
            let Some((old_cp, old_note)) = &old else {
                return Err(failure.into());
            };
            // Equal sizes: the two notes prove it. A smaller tree: nothing binds it.
            if old_cp.size == new.size {
                if let Some((proof, _)) = evidence::bind(old_note, &note, vec![], &verifier) {
                    return Err(gossip::written(&proof, &failure.to_string(), &evidence_out));
                }
            }
            return Err(Failure::verification(format!(
                "{failure} (a return to a smaller tree cannot be proven from two checkpoints; the trusted one stays in {})",
                state_path.display()
            ))
            .into());
        }
    };
    let how = match planned {
        Plan::FirstUse => format!(
            "first use: no checkpoint trusted before in {}",
            state_path.display()
        ),
        Plan::Unchanged => "unchanged since the last check".to_string(),
        Plan::FromEmpty => "extends the empty tree trusted before".to_string(),
        Plan::Prove { from, to } => {
            let proof: ConsistencyProof =
                client.get_json(&format!("/v1/proofs/consistency?from={from}&to={to}"))?;
            let (old_cp, old_note) = old
                .as_ref()
                .context("a proof was planned without a trusted checkpoint")?;
            if let Err(failure) = check_proof(old_cp, &new, &proof) {
                return Err(inconsistent(
                    &client,
                    failure,
                    (old_note, &note),
                    &proof,
                    &verifier,
                    &evidence_out,
                ));
            }
            format!("consistent with the size {from} trusted before")
        }
    };
    let cosigned = match &o.policy {
        Some(policy) => {
            let parsed = Note::parse(note.as_bytes())
                .map_err(|e| Failure::verification(format!("the checkpoint note: {e}")))?;
            let valid = policy.check(&parsed).map_err(|e| {
                Failure::verification(format!(
                    "the checkpoint does not meet the witness policy: {e}"
                ))
            })?;
            format!(
                ", cosigned by {} of {} trusted witnesses (quorum {})",
                valid.len(),
                policy.witnesses().len(),
                policy.quorum()
            )
        }
        None => String::new(),
    };
    if o.full {
        recompute_root(&client, &new)?;
    }
    let ours = gossip::Ours {
        cp: &new,
        note: &note,
    };
    let mut compared = Vec::new();
    for url in o.gossip {
        compared.push(gossip::compare(
            &client,
            url,
            &verifier,
            &ours,
            &evidence_out,
        )?);
    }
    state::save(&state_path, &note)?;
    rotation.save(&state_path)?;
    let full_note = if o.full { ", every entry rehashed" } else { "" };
    println!(
        "ok: {} at size {}, root {} ({how}{full_note}{cosigned})",
        new.origin,
        new.size,
        new.root.to_base64()
    );
    for line in compared {
        println!("gossip: {line}");
    }
    for r in &rotation.newly_followed {
        println!(
            "key rotation: from tree size {} the log signs with {}; trusting that key from now on",
            r.from_size,
            r.new_key.to_verifier_key()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The log's proof from the trusted size failed: prove the contradiction if the proof binds
/// one (it leads to the new signed root from another old root), else report a broken proof.
fn inconsistent(
    client: &Client,
    failure: Failure,
    (old_note, new_note): (&str, &str),
    proof: &ConsistencyProof,
    verifier: &NoteVerifier,
    out: &Path,
) -> anyhow::Error {
    let full = match evidence::full_form(client, proof.from, proof.to, &proof.hashes) {
        Ok(f) => f,
        Err(e) => {
            return Failure::verification(format!(
                "{failure} (and the subtree hash needed to prove it could not be read: {e:#})"
            ))
            .into()
        }
    };
    match evidence::bind(old_note, new_note, full, verifier) {
        Some((p, c)) => gossip::written(&p, &format!("{failure}: {c}"), out),
        None => Failure::verification(format!(
            "{failure} (the log's proof does not lead to its own signed root either, so it proves nothing)"
        ))
        .into(),
    }
}

/// Downloads every entry bundle (and level-0 tile) of the checkpoint's tree, one at a time,
/// and checks that the entries hash to the served leaf hashes and to the signed root.
fn recompute_root(client: &Client, cp: &Checkpoint) -> Result<()> {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(cp.size)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} entries {per_sec} eta {eta}")
    {
        bar.set_style(style);
    }
    let mut frontier = Frontier::new();
    let mut tile = 0u64;
    while frontier.size() < cp.size {
        let width = (cp.size - frontier.size()).min(TILE_WIDTH);
        let bundle = fetch_tile(client, TileKind::Entries, tile, width)?;
        let hashes = fetch_tile(client, TileKind::Hash { level: 0 }, tile, width)?;
        check_bundle(tile, width, &bundle, &hashes, &mut frontier)?;
        bar.set_position(frontier.size());
        tile += 1;
    }
    bar.finish_and_clear();
    if frontier.root() != cp.root {
        return Err(Failure::verification(format!(
            "the {} entries served hash to root {}, not to the signed root {}",
            cp.size,
            frontier.root().to_base64(),
            cp.root.to_base64()
        ))
        .into());
    }
    Ok(())
}

/// Fetches tile `index` of `kind` holding `width` items. A partial tile the log no longer
/// serves is read as the prefix of the full tile (tlog-tiles allows logs to drop them).
pub(super) fn fetch_tile(
    client: &Client,
    kind: TileKind,
    index: u64,
    width: u64,
) -> Result<Vec<u8>> {
    let partial = (width < TILE_WIDTH)
        .then(|| u16::try_from(width))
        .transpose()
        .context("tile width")?;
    let path = TilePath::new(kind, index, partial).context("tile path")?;
    if let Some(data) = client.get_bytes_if_found(&format!("/{path}"))? {
        return Ok(data);
    }
    if partial.is_none() {
        return Err(Failure::verification(format!(
            "{} is missing (404) though the checkpoint covers it",
            client.url(&format!("/{path}"))
        ))
        .into());
    }
    let full = TilePath::new(kind, index, None).context("tile path")?;
    client
        .get_bytes(&format!("/{full}"))
        .with_context(|| format!("/{path} is gone (404), and so is the full tile"))
}

/// Checks one bundle of `width` entries against its level-0 tile and pushes its leaves. Extra
/// items in a full tile fetched for a dropped partial one are ignored.
fn check_bundle(
    tile: u64,
    width: u64,
    bundle: &[u8],
    hashes: &[u8],
    frontier: &mut Frontier,
) -> Result<(), Failure> {
    let where_ = |kind: &str| format!("tile/{kind}/{}", stele_core::tile::encode_n(tile));
    let entries = bundle_decode(bundle).map_err(|e| {
        Failure::verification(format!(
            "{}: malformed entry bundle: {e}",
            where_("entries")
        ))
    })?;
    let want = usize::try_from(width).unwrap_or(usize::MAX);
    if entries.len() < want {
        return Err(Failure::verification(format!(
            "{}: holds {} entries, expected {want}",
            where_("entries"),
            entries.len()
        )));
    }
    let served: Vec<&[u8]> = hashes.chunks_exact(Hash::LEN).collect();
    if served.len() < want {
        return Err(Failure::verification(format!(
            "{}: holds {} hashes, expected {want}",
            where_("0"),
            served.len()
        )));
    }
    for (entry, served) in entries.iter().zip(served).take(want) {
        let index = frontier.size();
        let leaf = leaf_hash(entry);
        if leaf.as_bytes().as_slice() != served {
            return Err(Failure::verification(format!(
                "entry {index}: the entry in {} does not hash to the leaf hash in {}",
                where_("entries"),
                where_("0")
            )));
        }
        frontier.push(leaf, |_, _, _| {});
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use stele_core::merkle::{consistency_proof, MemoryTree};
    use stele_core::tile::bundle_encode;

    use super::*;

    fn tree(n: u64) -> MemoryTree {
        MemoryTree::from_entries((0..n).map(|i| format!("entry {i}")))
    }

    fn cp(t: &MemoryTree) -> Checkpoint {
        Checkpoint {
            origin: "example.com/log".into(),
            size: t.size(),
            root: t.root(),
            extensions: vec![],
        }
    }

    #[test]
    fn plan_trusts_first_use_and_refuses_rollback_and_forks() {
        let (t5, t9) = (tree(5), tree(9));
        assert_eq!(plan(None, &cp(&t9)).unwrap(), Plan::FirstUse);
        assert_eq!(plan(Some(&cp(&t9)), &cp(&t9)).unwrap(), Plan::Unchanged);
        assert_eq!(
            plan(Some(&cp(&tree(0))), &cp(&t9)).unwrap(),
            Plan::FromEmpty
        );
        assert_eq!(
            plan(Some(&cp(&t5)), &cp(&t9)).unwrap(),
            Plan::Prove { from: 5, to: 9 }
        );
        let rollback = plan(Some(&cp(&t9)), &cp(&t5)).unwrap_err().to_string();
        assert!(rollback.contains("rollback"), "{rollback}");
        let mut forked = cp(&t9);
        forked.root = tree(10).root();
        let split = plan(Some(&cp(&t9)), &forked).unwrap_err().to_string();
        assert!(split.contains("split view"), "{split}");
    }

    #[test]
    fn consistency_proofs_accept_extensions_and_reject_rewritten_history() {
        let (t5, t9) = (tree(5), tree(9));
        let proof = ConsistencyProof {
            from: 5,
            to: 9,
            hashes: consistency_proof(&t9, 5, 9).unwrap(),
        };
        check_proof(&cp(&t5), &cp(&t9), &proof).unwrap();
        // A log whose first five entries differ cannot prove consistency with the trusted tree.
        let other5 = MemoryTree::from_entries((0..5).map(|i| format!("other {i}")));
        assert!(check_proof(&cp(&other5), &cp(&t9), &proof).is_err());
        let wrong_sizes = ConsistencyProof { from: 4, ..proof };
        assert!(check_proof(&cp(&t5), &cp(&t9), &wrong_sizes).is_err());
    }

    #[test]
    fn bundles_rehash_to_the_tiles_and_the_root_and_tampering_is_located() {
        let entries: Vec<Vec<u8>> = (0..300u32)
            .map(|i| format!("entry {i}").into_bytes())
            .collect();
        let t = MemoryTree::from_entries(&entries);
        let tiles: Vec<(Vec<u8>, Vec<u8>)> = entries
            .chunks(256)
            .map(|c| {
                let mut b = Vec::new();
                bundle_encode(&c.iter().map(Vec::as_slice).collect::<Vec<_>>(), &mut b).unwrap();
                let h: Vec<u8> = c.iter().flat_map(|e| leaf_hash(e).0).collect();
                (b, h)
            })
            .collect();
        let mut f = Frontier::new();
        check_bundle(0, 256, &tiles[0].0, &tiles[0].1, &mut f).unwrap();
        check_bundle(1, 44, &tiles[1].0, &tiles[1].1, &mut f).unwrap();
        assert_eq!(f.root(), t.root());

        let mut bad_hashes = tiles[1].1.clone();
        bad_hashes[32 * 3] ^= 1;
        let mut f = Frontier::new();
        check_bundle(0, 256, &tiles[0].0, &tiles[0].1, &mut f).unwrap();
        let err = check_bundle(1, 44, &tiles[1].0, &bad_hashes, &mut f)
            .unwrap_err()
            .to_string();
        assert!(err.contains("entry 259"), "{err}");
        let err = check_bundle(1, 45, &tiles[1].0, &tiles[1].1, &mut Frontier::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected 45"), "{err}");
    }
}
