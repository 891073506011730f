//! Signing-key rotation through the store's public API: the record, the statement, dual
//! signatures during the window, restarts mid-window, redone rotations, the end of the
//! window, and offline verification across key eras.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use stele_core::checkpoint::open_checkpoint;
use stele_core::note::{NoteSigner, NoteVerifier};
use stele_core::rotation::{follow, KeyRotation};
use stele_store::rotation::{load_rotations, pending_rotation, request_rotation};
use stele_store::{datadir, layout::Layout, verify_dir, EntryKey, NewEntry, Store, StoreOptions};

const ORIGIN: &str = "test.example/log";
const HOUR_NS: i64 = 3_600_000_000_000;

/// A clock the test moves (one per test binary; the tests here share it, so each sets it).
static NOW: AtomicI64 = AtomicI64::new(1_800_000_000_000_000_000);
fn clock() -> i64 {
    NOW.load(Ordering::SeqCst)
}

fn open(dir: &Path) -> Store {
    let signer = datadir::load_signer(&Layout::new(dir).signer_key()).unwrap();
    let mut o = StoreOptions::new(dir, signer);
    o.checkpoint_interval = Duration::from_secs(3600);
    o.clock = clock;
    Store::open(o).unwrap()
}

fn record_entry(new: &NoteVerifier) -> NewEntry {
    let id: [u8; 16] = new.key_id().to_be_bytes().repeat(4).try_into().unwrap();
    NewEntry {
        data: format!("rotate to {}", new.to_verifier_key()).into_bytes(),
        time_offset: None,
        key: Some(EntryKey {
            id,
            digest: [1; 16],
        }),
    }
}

fn signed_by(note: &str, key: &NoteVerifier) -> bool {
    open_checkpoint(note.as_bytes(), key).is_ok()
}

#[test]
fn rotation_signs_with_both_keys_in_the_window_and_verifies_across_eras() {
    NOW.store(1_800_000_000_000_000_000, Ordering::SeqCst);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (a, _) = datadir::open_or_init(dir, Some(ORIGIN)).unwrap();
    let store = open(dir);
    store
        .append_blocking((0..5).map(|i| NewEntry::raw(vec![b'x', i])).collect())
        .unwrap();
    let before = store.publish_checkpoint().unwrap();

    // Request, then carry out.
    let b_vkey = request_rotation(dir, ORIGIN, Duration::from_secs(3600)).unwrap();
    assert!(request_rotation(dir, ORIGIN, Duration::from_secs(60)).is_err());
    let pending = pending_rotation(dir).unwrap().unwrap();
    assert_eq!(pending.signer.verifier(), b_vkey);
    let entry = record_entry(&b_vkey);
    let record = store
        .rotate_key(pending.signer, pending.window, entry.clone())
        .unwrap();
    assert_eq!((record.event_index, record.from_size), (5, 6));
    assert_eq!(record.old_checkpoint.as_deref(), Some(before.note.as_str()));
    assert!(pending_rotation(dir).unwrap().is_none());
    assert_eq!(store.verifier_key(), b_vkey.to_verifier_key());
    assert_eq!(datadir::load_verifier(dir).unwrap(), b_vkey);
    let stated = KeyRotation::open(record.statement.as_bytes(), &a.verifier()).unwrap();
    assert_eq!(
        (stated.new_key.clone(), stated.from_size),
        (b_vkey.clone(), 6)
    );
    // The checkpoint after the rotation: both keys, and it covers the record.
    let cp = store.latest_checkpoint().unwrap();
    assert_eq!(cp.size, 6);
    assert!(signed_by(&cp.note, &a.verifier()) && signed_by(&cp.note, &b_vkey));
    // Private keys stay private.
    use std::os::unix::fs::PermissionsExt;
    let retired = Layout::new(dir).retired_signer(a.key_id());
    for f in [retired.clone(), Layout::new(dir).signer_key()] {
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o077,
            0,
            "{f:?}"
        );
    }

    // Offline: passes with the new key, hands back the record's entry; the old key alone
    // is not the end of the history.
    let report = verify_dir(dir, &b_vkey).unwrap();
    assert_eq!(report.rotations.len(), 1);
    assert_eq!(report.rotations[0].event, entry.data);
    let e = verify_dir(dir, &a.verifier()).unwrap_err();
    assert!(e.detail.contains("key history ends at"), "{e}");
    // A verifier holding only the old key follows the statements to the new one.
    let statements: Vec<String> = load_rotations(dir)
        .unwrap()
        .into_iter()
        .map(|r| r.statement)
        .collect();
    let (end, _) = follow(&a.verifier(), statements.iter().map(|s| s.as_bytes())).unwrap();
    assert_eq!(end, b_vkey);

    // Restart within the window: the old key still co-signs.
    store
        .append_blocking(vec![NewEntry::raw(b"after".to_vec())])
        .unwrap();
    store.close().unwrap();
    drop(store);
    let store = open(dir);
    let cp = store.publish_checkpoint().unwrap();
    assert_eq!(cp.size, 7);
    assert!(signed_by(&cp.note, &a.verifier()) && signed_by(&cp.note, &b_vkey));

    // Redoing the same rotation (a crash before the pending file went) adds nothing.
    let again = store
        .rotate_key(
            datadir::load_signer(&Layout::new(dir).signer_key()).unwrap(),
            Duration::from_secs(3600),
            entry.clone(),
        )
        .unwrap();
    assert_eq!(again, record);
    assert_eq!(store.size(), 7);

    // After the window: the new key alone, and the retired private key is gone.
    NOW.fetch_add(2 * HOUR_NS, Ordering::SeqCst);
    store
        .append_blocking(vec![NewEntry::raw(b"later".to_vec())])
        .unwrap();
    let cp = store.publish_checkpoint().unwrap();
    assert!(signed_by(&cp.note, &b_vkey));
    assert!(!signed_by(&cp.note, &a.verifier()));
    assert!(!retired.exists());

    // A second rotation, without a window.
    let c_vkey = request_rotation(dir, ORIGIN, Duration::ZERO).unwrap();
    let pending = pending_rotation(dir).unwrap().unwrap();
    let r2 = store
        .rotate_key(pending.signer, pending.window, record_entry(&c_vkey))
        .unwrap();
    assert_eq!(r2.from_size, 9);
    let cp = store.latest_checkpoint().unwrap();
    assert!(signed_by(&cp.note, &c_vkey) && !signed_by(&cp.note, &b_vkey));
    let report = verify_dir(dir, &c_vkey).unwrap();
    assert_eq!(report.rotations.len(), 2);
    store.close().unwrap();

    // Tampering with the history is caught.
    let path = Layout::new(dir).rotations();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"from_size\": 9", "\"from_size\": 8")).unwrap();
    assert!(verify_dir(dir, &c_vkey).is_err());
    std::fs::write(&path, &text).unwrap();
    verify_dir(dir, &c_vkey).unwrap();
}

#[test]
fn a_rotation_to_a_key_of_another_origin_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    datadir::open_or_init(dir, Some(ORIGIN)).unwrap();
    let store = open(dir);
    let other = NoteSigner::generate("other.example/log").unwrap();
    let e = store
        .rotate_key(
            other.clone(),
            Duration::ZERO,
            record_entry(&other.verifier()),
        )
        .unwrap_err();
    assert!(e.to_string().contains("origin"), "{e}");
    assert_eq!(store.size(), 0);
    assert!(load_rotations(dir).unwrap().is_empty());
}

#[test]
fn a_rotation_interrupted_after_its_record_was_stored_completes_without_a_second_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    datadir::open_or_init(dir, Some(ORIGIN)).unwrap();
    let store = open(dir);
    store
        .append_blocking(vec![NewEntry::raw(b"first".to_vec())])
        .unwrap();
    let new = request_rotation(dir, ORIGIN, Duration::from_secs(60)).unwrap();
    // What a crash right after step 1 leaves: the record is in the log, nothing else done.
    let entry = record_entry(&new);
    store.append_blocking(vec![entry.clone()]).unwrap();
    store
        .append_blocking(vec![NewEntry::raw(b"meanwhile".to_vec())])
        .unwrap();
    store.close().unwrap();
    drop(store);
    let store = open(dir);
    let pending = pending_rotation(dir).unwrap().unwrap();
    let record = store
        .rotate_key(pending.signer, pending.window, entry)
        .unwrap();
    assert_eq!((record.event_index, record.from_size), (1, 2));
    assert_eq!(store.size(), 3, "the record was appended twice");
    assert_eq!(store.verifier_key(), new.to_verifier_key());
    store.close().unwrap();
    verify_dir(dir, &new).unwrap();
}
