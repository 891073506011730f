//! Properties of full-form consistency proofs (`merkle::consistency_roots`) and of proofs of
//! misbehaviour: honest trees reconstruct their own roots, every fork is provable from the
//! fork's proof whatever the sizes, and no honest pair ever is.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use proptest::prelude::*;
use stele_core::checkpoint::{sign_checkpoint, Checkpoint};
use stele_core::merkle::{consistency_proof, consistency_roots, root, MemoryTree, ProofError};
use stele_core::misbehaviour::{Contradiction, MisbehaviourProof};
use stele_core::note::NoteSigner;
use stele_core::Hash;

/// A tree whose leaves `i < common` are shared by every `tag`, the others tagged.
fn tree(tag: u8, common: u64, n: u64) -> MemoryTree {
    MemoryTree::from_entries((0..n).map(|i| {
        let t = if i < common { 0 } else { tag };
        [&[t][..], &i.to_be_bytes()].concat()
    }))
}

fn full(t: &MemoryTree, from: u64, to: u64) -> Vec<Hash> {
    let mut p = consistency_proof(t, from, to).unwrap();
    if from.is_power_of_two() {
        p.insert(0, root(t, from).unwrap());
    }
    p
}

fn note(s: &NoteSigner, t: &MemoryTree) -> String {
    let cp = Checkpoint {
        origin: s.name().into(),
        size: t.size(),
        root: t.root(),
        extensions: vec![],
    };
    sign_checkpoint(&cp, s).unwrap()
}

fn sizes() -> impl Strategy<Value = (u64, u64)> {
    (2u64..300).prop_flat_map(|to| (1..to, Just(to)))
}

proptest! {
    #[test]
    fn full_form_reconstructs_both_roots((from, to) in sizes()) {
        let t = tree(1, to, to);
        let (old, new) = consistency_roots(from, to, &full(&t, from, to)).unwrap();
        prop_assert_eq!(old, root(&t, from).unwrap());
        prop_assert_eq!(new, t.root());
    }

    #[test]
    fn full_form_needs_exactly_its_length((from, to) in sizes(), extra in any::<bool>()) {
        let t = tree(1, to, to);
        let mut p = full(&t, from, to);
        if extra { p.push(Hash([0; 32])); } else { p.pop(); }
        let wrong = matches!(
            consistency_roots(from, to, &p),
            Err(ProofError::WrongProofSize { .. })
        );
        prop_assert!(wrong);
    }

    #[test]
    fn every_fork_is_provable_and_no_honest_pair_is(
        (from, to) in sizes(),
        common in 0u64..300,
    ) {
        let log = NoteSigner::from_seed("example.com/log", [3; 32]).unwrap();
        let common = common % from; // the fork starts inside the smaller tree
        let (a, b) = (tree(1, common, from), tree(2, common, to));
        let proof = MisbehaviourProof::new(&note(&log, &b), &note(&log, &a), full(&b, from, to), &log.verifier());
        let contradiction = proof.verify(&log.verifier()).unwrap();
        let is_not_an_extension = matches!(contradiction, Contradiction::NotAnExtension { .. });
        prop_assert!(is_not_an_extension);
        let text = proof.to_text();
        prop_assert_eq!(MisbehaviourProof::parse(text.as_bytes()).unwrap(), proof);

        let honest_small = tree(2, common, from);
        let honest = MisbehaviourProof::new(&note(&log, &honest_small), &note(&log, &b), full(&b, from, to), &log.verifier());
        prop_assert!(honest.verify(&log.verifier()).is_err());
    }
}
