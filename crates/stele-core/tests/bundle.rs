//! Evidence bundles (`stele-bundle/1`): a bundle built from an in-memory log verifies, and
//! every kind of tampering is caught and named.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use serde_json::json;
use stele_core::bundle::{
    verify, Bundle, BundleError, EntryProblem, Filters, LogInfo, Place, Previous, Produced,
    ProvedEntry, Selection, FORMAT,
};
use stele_core::checkpoint::{sign_checkpoint, Checkpoint, CheckpointError};
use stele_core::event::{validate, EventLimits};
use stele_core::hash::leaf_hash;
use stele_core::merkle::{consistency_proof, inclusion_proof, MemoryTree, ProofError};
use stele_core::note::{NoteError, NoteSigner};
use stele_core::timestamp::Timestamp;
use uuid::Uuid;

const ORIGIN: &str = "example.com/stele";
/// 2026-11-23T19:03:19Z; entry `i` is stamped `T0 + (i / 2)` µs, so pairs share a time as
/// entries of one group commit do.
const T0: i64 = 1_795_460_599_000_000_000;

fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, [7; 32]).unwrap()
}

fn time_of(i: u64) -> Timestamp {
    Timestamp::from_unix_nanos(T0 + i64::try_from(i / 2).unwrap() * 1000)
}

/// Entry `i` of the test log: actions and outcomes cycle so filters have something to do.
fn entry(i: u64) -> String {
    let actions = ["role.grant", "auth.login", "role.revoke", "doc.read"];
    let outcomes = ["allow", "deny", "allow"];
    let value = json!({
        "actor": {"type": "user", "id": format!("user-{}", i % 3)},
        "action": actions[usize::try_from(i % 4).unwrap()],
        "resource": {"type": "role", "id": "admin"},
        "outcome": outcomes[usize::try_from(i % 3).unwrap()],
        "tenant": "acme",
    });
    let limits = EventLimits::default();
    let prepared = validate(&value, &limits)
        .unwrap()
        .prepare(Uuid::from_u128(u128::from(i) + 1), time_of(i), &limits)
        .unwrap();
    String::from_utf8(prepared.bytes).unwrap()
}

struct Log {
    entries: Vec<String>,
    tree: MemoryTree,
}

impl Log {
    fn new(n: u64) -> Log {
        Log::of((0..n).map(entry).collect())
    }

    fn of(entries: Vec<String>) -> Log {
        let tree = MemoryTree::from_entries(&entries);
        Log { entries, tree }
    }

    fn size(&self) -> u64 {
        self.tree.size()
    }

    fn checkpoint(&self, size: u64) -> String {
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: stele_core::merkle::root(&self.tree, size).unwrap(),
            extensions: vec![],
        };
        sign_checkpoint(&cp, &signer()).unwrap()
    }

    fn proved(&self, i: u64) -> ProvedEntry {
        ProvedEntry::new(
            i,
            self.entries[usize::try_from(i).unwrap()].clone(),
            inclusion_proof(&self.tree, i, self.size()).unwrap(),
        )
    }

    /// A bundle of the window `[time_of(from), time_of(to))` as an exporter would build it.
    fn bundle(&self, from: u64, to: u64, filters: Filters) -> Bundle {
        let (from_t, to_t) = (time_of(from), time_of(to));
        let first = (0..self.size()).find(|&i| time_of(i) >= from_t).unwrap();
        let end = (0..self.size())
            .find(|&i| time_of(i) >= to_t)
            .unwrap_or(self.size());
        let events = (first..end)
            .map(|i| self.proved(i))
            .filter(|p| {
                if filters.is_empty() {
                    return true;
                }
                let stored = stele_core::event::decode_entry(p.entry.as_bytes()).unwrap();
                filters.mismatch(&stored).is_none()
            })
            .collect();
        Bundle {
            format: FORMAT.into(),
            produced: Produced {
                at: "2026-11-24T00:00:00Z".into(),
                by: "test".into(),
                source: "memory".into(),
            },
            log: LogInfo {
                origin: ORIGIN.into(),
                verifier_keys: vec![signer().verifier().to_verifier_key()],
            },
            selection: Selection {
                from: from_t.format(),
                to: to_t.format(),
                filters,
                first_index: first,
                end_index: end,
            },
            checkpoint: self.checkpoint(self.size()),
            previous: None,
            before: first.checked_sub(1).map(|i| self.proved(i)),
            after: (end < self.size()).then(|| self.proved(end)),
            events,
        }
    }
}

fn check(b: &Bundle) -> Result<stele_core::bundle::Verified, BundleError> {
    verify(b, &signer().verifier())
}

/// The entry problem at `place`, or a panic naming what was found instead.
fn entry_problem(b: &Bundle, want: Place) -> EntryProblem {
    match check(b) {
        Err(BundleError::Entry { place, problem, .. }) if place == want => problem,
        other => panic!("expected a problem at {want}, got {other:?}"),
    }
}

#[test]
fn an_exported_window_verifies_with_exact_boundaries() {
    let log = Log::new(40);
    // Entries 10 and 11 share time_of(10); 24 and 25 share time_of(24) = the window's end.
    let b = log.bundle(10, 24, Filters::default());
    let v = check(&b).unwrap();
    let indices: Vec<u64> = v.events.iter().map(|e| e.index).collect();
    assert_eq!(indices, (10..24).collect::<Vec<_>>());
    assert!(v.complete);
    assert_eq!(b.before.as_ref().unwrap().index, 9);
    assert_eq!(b.after.as_ref().unwrap().index, 24);
    assert_eq!(v.checkpoint.size, 40);
    assert_eq!(v.events[0].event.time, time_of(10));

    // The whole log: no boundary entries on either side.
    let all = log.bundle(0, 40, Filters::default());
    assert!(all.before.is_none() && all.after.is_none());
    assert_eq!(check(&all).unwrap().events.len(), 40);
}

#[test]
fn filters_select_and_make_the_bundle_incomplete() {
    let log = Log::new(60);
    let filters = Filters {
        action: Some("role.*".into()),
        outcome: Some("allow".into()),
        ..Filters::default()
    };
    let b = log.bundle(4, 50, filters);
    let v = check(&b).unwrap();
    assert!(!v.complete);
    let want: Vec<u64> = (4..50).filter(|i| i % 2 == 0 && i % 3 != 1).collect();
    assert_eq!(v.events.iter().map(|e| e.index).collect::<Vec<_>>(), want);

    // An event that does not match is named with the filter it breaks.
    let mut wrong = b.clone();
    wrong.selection.filters.actor = Some("user-1".into());
    let problem = entry_problem(&wrong, Place::Event(0));
    assert!(
        matches!(problem, EntryProblem::Filter("actor")),
        "{problem}"
    );
}

#[test]
fn json_round_trips_and_unknown_fields_and_formats_are_refused() {
    let log = Log::new(9);
    let b = log.bundle(2, 6, Filters::default());
    let bytes = b.to_json().unwrap();
    assert_eq!(Bundle::from_json(&bytes).unwrap(), b);

    let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    value["extra"] = json!(1);
    let err = Bundle::from_json(value.to_string().as_bytes()).unwrap_err();
    assert!(matches!(err, BundleError::Json(_)), "{err}");
    assert!(err.to_string().contains("extra"), "{err}");

    value["format"] = json!("stele-bundle/2");
    let err = Bundle::from_json(value.to_string().as_bytes()).unwrap_err();
    assert!(matches!(err, BundleError::Format { .. }), "{err}");
    assert!(matches!(
        Bundle::from_json(b"[]").unwrap_err(),
        BundleError::Json(_)
    ));
}

#[test]
fn altered_entries_and_proofs_are_named() {
    let log = Log::new(40);
    let b = log.bundle(10, 24, Filters::default());

    // One byte of an entry changed: the leaf hash no longer matches.
    let mut altered = b.clone();
    altered.events[3].entry = altered.events[3].entry.replace("acme", "acmf");
    let problem = entry_problem(&altered, Place::Event(3));
    assert!(
        matches!(problem, EntryProblem::LeafHash { .. }),
        "{problem}"
    );
    assert!(problem.to_string().contains("altered"), "{problem}");

    // ... and with its leaf hash recomputed: the proof no longer leads to the root.
    altered.events[3].leaf_hash = leaf_hash(altered.events[3].entry.as_bytes());
    let problem = entry_problem(&altered, Place::Event(3));
    assert!(
        matches!(
            problem,
            EntryProblem::Inclusion {
                source: ProofError::RootMismatch,
                ..
            }
        ),
        "{problem}"
    );

    // A proof hash dropped, and one flipped.
    let mut short = b.clone();
    short.events[5].inclusion.pop();
    let problem = entry_problem(&short, Place::Event(5));
    assert!(
        matches!(
            problem,
            EntryProblem::Inclusion {
                source: ProofError::WrongProofSize { .. },
                ..
            }
        ),
        "{problem}"
    );
    let mut flipped = b.clone();
    flipped.after.as_mut().unwrap().inclusion[0].0[7] ^= 0x10;
    let problem = entry_problem(&flipped, Place::After);
    assert!(
        matches!(problem, EntryProblem::Inclusion { .. }),
        "{problem}"
    );
}

#[test]
fn logged_entries_that_are_not_events_or_lack_the_log_time_form_are_refused() {
    let mut entries: Vec<String> = (0..40).map(entry).collect();
    entries[12] = r#"{"not":"an event"}"#.into();
    // A stored event whose time has an offset instead of the log's 30-byte UTC form.
    let t = time_of(13).format();
    entries[13] = entries[13].replace(&t, &t.replace('Z', "+00:00"));
    let log = Log::of(entries);
    let b = log.bundle(10, 24, Filters::default());
    let problem = entry_problem(&b, Place::Event(2));
    assert!(matches!(problem, EntryProblem::Decode(_)), "{problem}");
    let mut rest = b.clone();
    rest.events.remove(2);
    rest.selection.filters.tenant = Some("acme".into());
    let problem = entry_problem(&rest, Place::Event(2));
    assert!(matches!(problem, EntryProblem::TimeForm), "{problem}");
}

#[test]
fn swapped_or_foreign_checkpoints_are_refused() {
    let log = Log::new(40);
    let b = log.bundle(10, 24, Filters::default());

    // A genuine checkpoint of another size: the proofs do not fit it.
    let mut swapped = b.clone();
    swapped.checkpoint = log.checkpoint(39);
    let problem = entry_problem(&swapped, Place::Before);
    assert!(
        matches!(problem, EntryProblem::Inclusion { .. }),
        "{problem}"
    );

    // Signed by someone else.
    let mallory = NoteSigner::from_seed(ORIGIN, [8; 32]).unwrap();
    let mut foreign = b.clone();
    let cp = Checkpoint::parse(
        &stele_core::note::Note::parse(b.checkpoint.as_bytes())
            .unwrap()
            .text,
    )
    .unwrap();
    foreign.checkpoint = sign_checkpoint(&cp, &mallory).unwrap();
    let err = check(&foreign).unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::Checkpoint(CheckpointError::Note(NoteError::NotSignedBy { .. }))
        ),
        "{err}"
    );

    // One flipped byte in the signature.
    let mut bad_sig = b.clone();
    let at = bad_sig.checkpoint.len() - 6;
    bad_sig.checkpoint.replace_range(at..=at, "A");
    if bad_sig.checkpoint == b.checkpoint {
        bad_sig.checkpoint.replace_range(at..=at, "B");
    }
    assert!(matches!(
        check(&bad_sig).unwrap_err(),
        BundleError::Checkpoint(_)
    ));

    let mut origin = b.clone();
    origin.log.origin = "example.com/other".into();
    assert!(matches!(
        check(&origin).unwrap_err(),
        BundleError::Origin { .. }
    ));
}

#[test]
fn missing_extra_and_misordered_events_are_caught() {
    let log = Log::new(40);
    let b = log.bundle(10, 24, Filters::default());

    let mut gap = b.clone();
    gap.events.remove(4);
    let err = check(&gap).unwrap_err();
    assert!(
        matches!(err, BundleError::Missing { index: 14, .. }),
        "{err}"
    );
    let mut tail = b.clone();
    tail.events.pop();
    assert!(matches!(
        check(&tail).unwrap_err(),
        BundleError::Missing { index: 23, .. }
    ));

    // With a filter, omissions cannot be detected, but order and range still are.
    let mut filtered = log.bundle(
        10,
        24,
        Filters {
            tenant: Some("acme".into()),
            ..Filters::default()
        },
    );
    filtered.events.swap(1, 2);
    let problem = entry_problem(&filtered, Place::Event(2));
    assert!(
        matches!(problem, EntryProblem::NotIncreasing { previous: 12 }),
        "{problem}"
    );
    let mut outside = log.bundle(
        10,
        24,
        Filters {
            tenant: Some("acme".into()),
            ..Filters::default()
        },
    );
    outside.events.push(log.proved(24));
    let problem = entry_problem(&outside, Place::Event(14));
    assert!(
        matches!(problem, EntryProblem::OutOfRange { .. }),
        "{problem}"
    );
}

#[test]
fn windows_and_boundaries_must_agree_with_the_entries() {
    let log = Log::new(40);
    let b = log.bundle(10, 24, Filters::default());

    // The stated end moved before the last events: they are outside the window.
    let mut early = b.clone();
    early.selection.to = time_of(20).format();
    let problem = entry_problem(&early, Place::Event(10));
    assert!(
        matches!(problem, EntryProblem::OutsideWindow { .. }),
        "{problem}"
    );

    // The stated start moved back to the `before` entry's own time.
    let mut late = b.clone();
    late.selection.from = time_of(9).format();
    let problem = entry_problem(&late, Place::Before);
    assert!(
        matches!(problem, EntryProblem::NotBefore { .. }),
        "{problem}"
    );

    // The end moved past the `after` entry.
    let mut after = b.clone();
    after.selection.to = time_of(26).format();
    let problem = entry_problem(&after, Place::After);
    assert!(
        matches!(problem, EntryProblem::NotAfter { .. }),
        "{problem}"
    );

    let mut no_before = b.clone();
    no_before.before = None;
    assert!(matches!(
        check(&no_before).unwrap_err(),
        BundleError::MissingBoundary {
            which: Place::Before,
            index: 9
        }
    ));
    let mut wrong_before = b.clone();
    wrong_before.before = Some(log.proved(8));
    let problem = entry_problem(&wrong_before, Place::Before);
    assert!(
        matches!(problem, EntryProblem::Index { expected: 9 }),
        "{problem}"
    );
    let mut extra_after = log.bundle(10, 40, Filters::default());
    extra_after.after = Some(log.proved(39));
    let problem = entry_problem(&extra_after, Place::After);
    assert!(matches!(problem, EntryProblem::Unexpected), "{problem}");

    let mut range = b.clone();
    range.selection.end_index = 41;
    assert!(matches!(
        check(&range).unwrap_err(),
        BundleError::IndexRange { .. }
    ));
    let mut loose = b.clone();
    loose.selection.from = "2026-11-23T19:03:19Z".into();
    assert!(matches!(
        check(&loose).unwrap_err(),
        BundleError::WindowTime { field: "from", .. }
    ));
    let mut reversed = b.clone();
    reversed.selection.to = reversed.selection.from.clone();
    assert!(matches!(
        check(&reversed).unwrap_err(),
        BundleError::EmptyWindow { .. }
    ));
}

#[test]
fn consistency_with_a_previous_checkpoint() {
    let log = Log::new(40);
    let mut b = log.bundle(10, 24, Filters::default());
    for from in [1, 7, 16, 39, 40] {
        b.previous = Some(Previous {
            checkpoint: log.checkpoint(from),
            consistency: consistency_proof(&log.tree, from, 40).unwrap(),
        });
        let v = check(&b).unwrap();
        assert_eq!(v.previous.unwrap().size, from);
    }

    let good = Previous {
        checkpoint: log.checkpoint(7),
        consistency: consistency_proof(&log.tree, 7, 40).unwrap(),
    };
    let mut flipped = good.clone();
    flipped.consistency[1].0[0] ^= 1;
    b.previous = Some(flipped);
    assert!(matches!(
        check(&b).unwrap_err(),
        BundleError::Consistency {
            from: 7,
            to: 40,
            ..
        }
    ));

    // A checkpoint of a different history (other entries) under the same key.
    let forked = Log {
        entries: vec![],
        tree: MemoryTree::from_entries((0..7).map(|i| format!("other {i}"))),
    };
    b.previous = Some(Previous {
        checkpoint: forked.checkpoint(7),
        ..good.clone()
    });
    assert!(matches!(
        check(&b).unwrap_err(),
        BundleError::Consistency {
            source: ProofError::FromRootMismatch,
            ..
        }
    ));

    // The auditor's checkpoint is newer than the bundle's: a rollback.
    let bigger = Log::new(41);
    b.previous = Some(Previous {
        checkpoint: bigger.checkpoint(41),
        consistency: vec![],
    });
    assert!(matches!(
        check(&b).unwrap_err(),
        BundleError::Rollback { from: 41, to: 40 }
    ));
    b.previous = Some(Previous {
        checkpoint: log.checkpoint(0),
        consistency: vec![],
    });
    assert!(matches!(check(&b).unwrap_err(), BundleError::PreviousEmpty));
}

#[test]
fn filter_rules() {
    let ok = Filters {
        action: Some("role.*".into()),
        outcome: Some("deny".into()),
        ..Filters::default()
    };
    ok.validate().unwrap();
    for bad in [
        Filters {
            outcome: Some("denied".into()),
            ..Filters::default()
        },
        Filters {
            action: Some("role*".into()),
            ..Filters::default()
        },
        Filters {
            action: Some(".*".into()),
            ..Filters::default()
        },
        Filters {
            tenant: Some(String::new()),
            ..Filters::default()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
    let grant = stele_core::event::decode_entry(entry(0).as_bytes()).unwrap();
    let prefix = |p: &str| Filters {
        action: Some(p.into()),
        ..Filters::default()
    };
    assert_eq!(prefix("role.*").mismatch(&grant), None);
    assert_eq!(prefix("role.grant").mismatch(&grant), None);
    assert_eq!(prefix("role.gr").mismatch(&grant), Some("action"));
    assert_eq!(prefix("rol.*").mismatch(&grant), Some("action"));
    let source = Filters {
        source: Some("gw".into()),
        ..Filters::default()
    };
    assert_eq!(source.mismatch(&grant), Some("source"));
}

#[test]
fn the_trusted_key_must_be_listed() {
    let log = Log::new(9);
    let mut b = log.bundle(2, 6, Filters::default());
    b.log.verifier_keys = vec![NoteSigner::from_seed(ORIGIN, [9; 32])
        .unwrap()
        .verifier()
        .to_verifier_key()];
    assert!(matches!(
        check(&b).unwrap_err(),
        BundleError::KeyNotListed { .. }
    ));
}

/// Byte ranges of the string values a bundle states but cannot prove: `produced.*`, and the
/// window bounds, which may move freely between the boundary entries' times.
fn restatable(json: &[u8], b: &Bundle) -> Vec<std::ops::Range<usize>> {
    let text = std::str::from_utf8(json).unwrap();
    [
        ("at", &b.produced.at),
        ("by", &b.produced.by),
        ("source", &b.produced.source),
        ("from", &b.selection.from),
        ("to", &b.selection.to),
    ]
    .iter()
    .map(|(key, value)| {
        let needle = format!("\"{key}\": \"{value}\"");
        let at = text.find(&needle).unwrap() + needle.len() - value.len() - 1;
        at..at + value.len()
    })
    .collect()
}

#[test]
fn every_flipped_bit_outside_the_restatable_fields_is_caught() {
    let log = Log::new(7);
    let mut b = log.bundle(2, 4, Filters::default());
    b.previous = Some(Previous {
        checkpoint: log.checkpoint(3),
        consistency: consistency_proof(&log.tree, 3, 7).unwrap(),
    });
    check(&b).unwrap();
    let json = b.to_json().unwrap();
    let skip = restatable(&json, &b);
    let key = signer().verifier();
    for at in 0..json.len() {
        if skip.iter().any(|r| r.contains(&at)) {
            continue;
        }
        for bit in [0x01u8, 0x20, 0x80] {
            let mut altered = json.clone();
            altered[at] ^= bit;
            let verdict = Bundle::from_json(&altered).and_then(|b| verify(&b, &key));
            assert!(
                verdict.is_err(),
                "flipping {bit:#04x} at byte {at} went unnoticed: …{}…",
                String::from_utf8_lossy(&json[at.saturating_sub(30)..(at + 30).min(json.len())])
            );
        }
    }
}
