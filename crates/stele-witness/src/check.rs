//! The witness's decisions, pure: given its latest cosigned checkpoint of a log and a
//! submission (tlog-witness `add-checkpoint`) or a gossiped checkpoint, what to answer and
//! what evidence of misbehaviour the request carries.
//!
//! The `add-checkpoint` checks run in the spec's order (tlog-witness §"add-checkpoint"), after
//! the caller has answered 404 for an unknown origin and 403 for a missing or bad log
//! signature: old size above the checkpoint size → 400; old size other than the latest
//! cosigned size → 409 with that size; a size-0 checkpoint without the empty root → 422; a
//! proof with old size 0 → 422; the same size with another root → 422; a consistency proof
//! that does not verify → 422. Independently of the old size the client claims, a checkpoint
//! is compared with the latest cosigned one, because a validly signed checkpoint that
//! contradicts it is evidence whatever else is wrong with the request.

use axum::http::StatusCode;
use stele_core::checkpoint::Checkpoint;
use stele_core::hash::empty_root;
use stele_core::merkle::{consistency_roots, verify_consistency};
use stele_core::misbehaviour::{Contradiction, MisbehaviourProof};
use stele_core::note::NoteVerifier;
use stele_core::Hash;

/// The latest checkpoint the witness cosigned for one log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Latest {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The note served at the monitoring endpoint: the checkpoint text, the log signature
    /// lines the witness verified, and the witness's cosignature.
    pub note: String,
}

/// What a request shows about the log, beyond the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Evidence {
    /// A self-contained proof that the log signed contradicting checkpoints.
    Proof(MisbehaviourProof, Contradiction),
    /// Something a misbehaving log would do but that the request cannot prove (anyone can
    /// replay an old checkpoint or send a bad proof): worth an operator's look.
    Suspicion(String),
}

/// The answer to give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Every check passed: cosign, persist, answer 200.
    Cosign,
    /// Refuse with this status and message; `size` is the 409 body's size.
    Refuse {
        status: StatusCode,
        message: String,
        size: Option<u64>,
    },
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Decision {
    Decision::Refuse {
        status,
        message: message.into(),
        size: None,
    }
}

/// Decides an `add-checkpoint` request whose checkpoint `cp` (note `note`, validly signed by
/// one of `keys`) came with `old_size` and `proof`.
pub(crate) fn add_checkpoint(
    latest: Option<&Latest>,
    old_size: u64,
    proof: &[Hash],
    cp: &Checkpoint,
    note: &str,
    keys: &[NoteVerifier],
) -> (Decision, Option<Evidence>) {
    if old_size > cp.size {
        return (
            refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "old size {old_size} is larger than the checkpoint size {}",
                    cp.size
                ),
            ),
            None,
        );
    }
    let evidence = latest.and_then(|l| compare(l, old_size, proof, cp, note, keys));
    let latest_size = latest.map_or(0, |l| l.checkpoint.size);
    if old_size != latest_size {
        let decision = Decision::Refuse {
            status: StatusCode::CONFLICT,
            message: format!("the latest cosigned size is {latest_size}, not {old_size}"),
            size: Some(latest_size),
        };
        return (decision, evidence);
    }
    if cp.size == 0 && cp.root != empty_root() {
        return (
            refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "a checkpoint of size 0 must have the empty tree's root",
            ),
            evidence,
        );
    }
    let decision = match latest {
        _ if old_size == 0 => {
            if proof.is_empty() {
                Decision::Cosign
            } else {
                refuse(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "a consistency proof from size 0 must be empty",
                )
            }
        }
        // old_size == latest size > 0, so there is a latest checkpoint.
        None => refuse(StatusCode::CONFLICT, "no checkpoint cosigned yet"),
        Some(l) if old_size == cp.size => {
            if l.checkpoint.root == cp.root && proof.is_empty() {
                Decision::Cosign
            } else {
                refuse(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "the checkpoint of size {} has another root than the one cosigned (or a needless proof)",
                        cp.size
                    ),
                )
            }
        }
        Some(l) => match verify_consistency(old_size, cp.size, proof, &l.checkpoint.root, &cp.root)
        {
            Ok(()) => Decision::Cosign,
            Err(e) => refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "the consistency proof from size {old_size} to {} does not verify: {e}",
                    cp.size
                ),
            ),
        },
    };
    (decision, evidence)
}

/// Compares a validly signed checkpoint with the latest cosigned one and returns evidence of
/// misbehaviour, if there is any.
fn compare(
    latest: &Latest,
    old_size: u64,
    proof: &[Hash],
    cp: &Checkpoint,
    note: &str,
    keys: &[NoteVerifier],
) -> Option<Evidence> {
    let l = &latest.checkpoint;
    if cp.size == l.size {
        if cp.root == l.root {
            return None;
        }
        return Some(prove(&latest.note, note, vec![], keys));
    }
    if cp.size < l.size {
        return Some(Evidence::Suspicion(format!(
            "a checkpoint of size {} (smaller than the size {} cosigned before): a rollback, or an old checkpoint replayed",
            cp.size, l.size
        )));
    }
    if old_size != l.size || l.size == 0 {
        // The proof is not about our checkpoint; a 409 tells the client where to start.
        return None;
    }
    if verify_consistency(l.size, cp.size, proof, &l.root, &cp.root).is_ok() {
        return None;
    }
    // A proof that leads to the new root from another old root binds the contradiction. When
    // the old size is a power of two, RFC 9162 proofs leave out the old subtree's hash (the
    // verifier is meant to supply it), so the log's own version of it is unknown here.
    if !l.size.is_power_of_two() {
        if let Ok((_, new)) = consistency_roots(l.size, cp.size, proof) {
            if new == cp.root {
                return Some(prove(&latest.note, note, proof.to_vec(), keys));
            }
        }
    }
    Some(Evidence::Suspicion(format!(
        "a checkpoint of size {} whose consistency proof from the cosigned size {} does not verify and cannot be bound to a contradiction (a fork, or a bad proof)",
        cp.size, l.size
    )))
}

/// Assembles and verifies a proof from notes `a` and `b` with each of the log's keys: a
/// proof, or (should no key verify both notes) a suspicion.
fn prove(a: &str, b: &str, consistency: Vec<Hash>, keys: &[NoteVerifier]) -> Evidence {
    let mut last = String::from("no log key configured");
    for k in keys {
        let proof = MisbehaviourProof::new(a, b, consistency.clone(), k);
        match proof.verify(k) {
            Ok(c) => return Evidence::Proof(proof, c),
            Err(e) => last = e.to_string(),
        }
    }
    Evidence::Suspicion(format!(
        "contradicting checkpoints that do not make a proof: {last}"
    ))
}

/// Decides a gossiped checkpoint `cp` (note `note`) with an optional full-form consistency
/// proof between it and the latest cosigned one. Gossip never changes the witness's state.
pub(crate) fn gossip(
    latest: Option<&Latest>,
    proof: &[Hash],
    cp: &Checkpoint,
    note: &str,
    keys: &[NoteVerifier],
) -> (StatusCode, String, Option<Evidence>) {
    let Some(latest) = latest else {
        return (
            StatusCode::NOT_FOUND,
            "no checkpoint of this log has been cosigned here yet\n".into(),
            None,
        );
    };
    let l = &latest.checkpoint;
    if cp.size == l.size {
        if cp.root == l.root {
            return (StatusCode::OK, "consistent\n".into(), None);
        }
        let ev = prove(&latest.note, note, vec![], keys);
        return contradiction(ev);
    }
    let (small, large) = if cp.size < l.size { (cp, l) } else { (l, cp) };
    if proof.is_empty() {
        return (
            StatusCode::OK,
            format!(
                "unverified: sizes differ ({} here, {} sent); send a consistency proof to compare\n",
                l.size, cp.size
            ),
            None,
        );
    }
    if small.size == 0 {
        return (
            StatusCode::BAD_REQUEST,
            "no proof is needed from the empty tree\n".into(),
            None,
        );
    }
    match consistency_roots(small.size, large.size, proof) {
        Err(e) => (StatusCode::BAD_REQUEST, format!("bad proof: {e}\n"), None),
        Ok((_, new)) if new != large.root => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the proof does not lead to the root of the checkpoint of size {}\n",
                large.size
            ),
            None,
        ),
        Ok((old, _)) if old == small.root => (StatusCode::OK, "consistent\n".into(), None),
        Ok(_) => {
            let ev = prove(&latest.note, note, proof.to_vec(), keys);
            contradiction(ev)
        }
    }
}

/// A 409 answer carrying the proof, or a 422 when the contradiction is not provable.
fn contradiction(ev: Evidence) -> (StatusCode, String, Option<Evidence>) {
    match &ev {
        Evidence::Proof(p, _) => (StatusCode::CONFLICT, p.to_text(), Some(ev)),
        Evidence::Suspicion(s) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{s}\n"), Some(ev)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use stele_core::checkpoint::sign_checkpoint;
    use stele_core::merkle::{consistency_proof, root, MemoryTree};
    use stele_core::note::NoteSigner;

    use super::*;

    struct Log {
        key: NoteSigner,
    }

    impl Log {
        fn new() -> Self {
            Log {
                key: NoteSigner::from_seed("example.com/log", [1; 32]).unwrap(),
            }
        }
        fn note(&self, t: &MemoryTree) -> (Checkpoint, String) {
            let cp = Checkpoint {
                origin: "example.com/log".into(),
                size: t.size(),
                root: t.root(),
                extensions: vec![],
            };
            let n = sign_checkpoint(&cp, &self.key).unwrap();
            (cp, n)
        }
        fn latest(&self, t: &MemoryTree) -> Latest {
            let (checkpoint, note) = self.note(t);
            Latest { checkpoint, note }
        }
        fn keys(&self) -> Vec<NoteVerifier> {
            vec![self.key.verifier()]
        }
    }

    fn tree(tag: &str, common: u64, n: u64) -> MemoryTree {
        MemoryTree::from_entries((0..n).map(|i| {
            if i < common {
                format!("common {i}")
            } else {
                format!("{tag} {i}")
            }
        }))
    }

    fn status(d: &Decision) -> StatusCode {
        match d {
            Decision::Cosign => StatusCode::OK,
            Decision::Refuse { status, .. } => *status,
        }
    }

    #[test]
    fn spec_status_codes() {
        let log = Log::new();
        let (t6, t9) = (tree("a", 9, 6), tree("a", 9, 9));
        let latest = log.latest(&t6);
        let (cp9, n9) = log.note(&t9);
        let p = consistency_proof(&t9, 6, 9).unwrap();
        let keys = log.keys();
        let d = |l: Option<&Latest>, old, proof: &[Hash]| {
            add_checkpoint(l, old, proof, &cp9, &n9, &keys).0
        };
        assert_eq!(d(Some(&latest), 6, &p), Decision::Cosign);
        assert_eq!(status(&d(Some(&latest), 10, &[])), StatusCode::BAD_REQUEST);
        assert_eq!(
            d(Some(&latest), 0, &[]),
            Decision::Refuse {
                status: StatusCode::CONFLICT,
                message: "the latest cosigned size is 6, not 0".into(),
                size: Some(6)
            }
        );
        assert_eq!(d(None, 0, &[]), Decision::Cosign);
        assert_eq!(status(&d(None, 0, &p)), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(status(&d(None, 6, &p)), StatusCode::CONFLICT);
        let mut bad = p.clone();
        bad[0].0[0] ^= 1;
        assert_eq!(
            status(&d(Some(&latest), 6, &bad)),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        // Same size, same root: cosigned again.
        let l9 = log.latest(&t9);
        assert_eq!(d(Some(&l9), 9, &[]), Decision::Cosign);
        // Size 0 with a non-empty root.
        let zero = Checkpoint {
            size: 0,
            ..cp9.clone()
        };
        let zn = sign_checkpoint(&zero, &log.key).unwrap();
        let (dec, _) = add_checkpoint(None, 0, &[], &zero, &zn, &keys);
        assert_eq!(status(&dec), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn forks_become_proofs_whatever_the_old_size_claimed() {
        let log = Log::new();
        let keys = log.keys();
        let latest = log.latest(&tree("a", 3, 6));
        // Same size, other root: provable even with a wrong old size (409).
        let (cp, n) = log.note(&tree("b", 3, 6));
        let (dec, ev) = add_checkpoint(Some(&latest), 0, &[], &cp, &n, &keys);
        assert_eq!(status(&dec), StatusCode::CONFLICT);
        let Some(Evidence::Proof(p, Contradiction::SameSizeDifferentRoots { size: 6, .. })) = ev
        else {
            panic!("{ev:?}")
        };
        p.verify(&keys[0]).unwrap();
        // Larger, with the fork's own (valid) proof from size 6.
        let fork = tree("b", 3, 11);
        let (cp, n) = log.note(&fork);
        let proof = consistency_proof(&fork, 6, 11).unwrap();
        let (dec, ev) = add_checkpoint(Some(&latest), 6, &proof, &cp, &n, &keys);
        assert_eq!(status(&dec), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            matches!(
                ev,
                Some(Evidence::Proof(_, Contradiction::NotAnExtension { .. }))
            ),
            "{ev:?}"
        );
        // Old size a power of two: refused, but only suspected.
        let latest8 = log.latest(&tree("a", 3, 8));
        let proof = consistency_proof(&fork, 8, 11).unwrap();
        let (dec, ev) = add_checkpoint(Some(&latest8), 8, &proof, &cp, &n, &keys);
        assert_eq!(status(&dec), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(matches!(ev, Some(Evidence::Suspicion(_))), "{ev:?}");
        // Smaller tree: refused (409 or 400), suspected.
        let (cp, n) = log.note(&tree("a", 3, 4));
        let (dec, ev) = add_checkpoint(Some(&latest), 0, &[], &cp, &n, &keys);
        assert_eq!(status(&dec), StatusCode::CONFLICT);
        assert!(matches!(ev, Some(Evidence::Suspicion(_))), "{ev:?}");
    }

    #[test]
    fn gossip_compares_without_changing_anything() {
        let log = Log::new();
        let keys = log.keys();
        let honest = tree("a", 20, 12);
        let latest = log.latest(&tree("a", 20, 8));
        let (cp, n) = log.note(&honest);
        let full = |t: &MemoryTree, from: u64, to: u64| {
            let mut p = consistency_proof(t, from, to).unwrap();
            if from.is_power_of_two() {
                p.insert(0, root(t, from).unwrap());
            }
            p
        };
        let g =
            |proof: &[Hash], cp: &Checkpoint, n: &str| gossip(Some(&latest), proof, cp, n, &keys);
        assert_eq!(g(&full(&honest, 8, 12), &cp, &n).0, StatusCode::OK);
        assert!(g(&[], &cp, &n).1.starts_with("unverified"));
        let fork = tree("b", 2, 12);
        let (fcp, fnote) = log.note(&fork);
        let (status, body, ev) = g(&full(&fork, 8, 12), &fcp, &fnote);
        assert_eq!(status, StatusCode::CONFLICT);
        let parsed = MisbehaviourProof::parse(body.as_bytes()).unwrap();
        parsed.verify(&keys[0]).unwrap();
        assert!(matches!(ev, Some(Evidence::Proof(..))));
        // A smaller gossiped checkpoint, with a proof in the witness's (larger) tree.
        let small = tree("a", 20, 5);
        let (scp, snote) = log.note(&small);
        assert_eq!(
            g(&full(&tree("a", 20, 8), 5, 8), &scp, &snote).0,
            StatusCode::OK
        );
        assert_eq!(
            gossip(None, &[], &scp, &snote, &keys).0,
            StatusCode::NOT_FOUND
        );
    }
}
