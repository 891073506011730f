//! Store behaviour through its public API: appends are readable, provable and recoverable.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::Path;
use std::time::Duration;

use stele_core::checkpoint::open_checkpoint;
use stele_core::hash::leaf_hash;
use stele_core::merkle::{verify_consistency, verify_inclusion, MemoryTree};
use stele_core::note::NoteSigner;
use stele_core::timestamp::{Timestamp, TIMESTAMP_LEN};
use stele_store::{verify_dir, EntryKey, NewEntry, Store, StoreError, StoreOptions};

fn signer() -> NoteSigner {
    NoteSigner::from_seed("test.example/log", [7u8; 32]).unwrap()
}

fn open(dir: &Path) -> Store {
    let mut o = StoreOptions::new(dir, signer());
    o.checkpoint_interval = Duration::from_secs(3600);
    o.key_of = key_of;
    Store::open(o).unwrap()
}

/// Test entries: "<16 hex id>|<16 hex digest>|payload".
fn key_of(e: &[u8]) -> Option<EntryKey> {
    let s = std::str::from_utf8(e).ok()?;
    let mut parts = s.splitn(3, '|');
    let id: [u8; 16] = hex::decode(parts.next()?).ok()?.try_into().ok()?;
    let digest: [u8; 16] = hex::decode(parts.next()?).ok()?.try_into().ok()?;
    Some(EntryKey { id, digest })
}

fn keyed(id: u8, digest: u8, payload: &str) -> NewEntry {
    let data = format!(
        "{}|{}|{payload}",
        hex::encode([id; 16]),
        hex::encode([digest; 16])
    )
    .into_bytes();
    NewEntry {
        key: key_of(&data),
        data,
        time_offset: None,
    }
}

fn entry(i: u64) -> Vec<u8> {
    format!("entry number {i} {}", "x".repeat((i % 300) as usize)).into_bytes()
}

fn fill(store: &Store, n: u64, batch: u64) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    let mut i = store.size();
    let end = i + n;
    while i < end {
        let k = batch.min(end - i);
        let es: Vec<Vec<u8>> = (i..i + k).map(entry).collect();
        let acks = store
            .append_blocking(es.iter().cloned().map(NewEntry::raw).collect())
            .unwrap();
        for (j, a) in acks.iter().enumerate() {
            assert_eq!(a.index, i + j as u64);
            assert_eq!(a.leaf_hash, leaf_hash(&es[j]));
            assert!(!a.duplicate);
        }
        all.extend(es);
        i += k;
    }
    all
}

#[test]
fn appended_entries_read_back_prove_and_tile() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let entries = fill(&store, 1300, 97);
    assert_eq!(store.size(), 1300);
    let tree = MemoryTree::from_entries(&entries);
    for i in [0u64, 1, 255, 256, 257, 1000, 1299] {
        assert_eq!(store.entry(i).unwrap(), entries[i as usize]);
    }
    assert!(matches!(store.entry(1300), Err(StoreError::NotFound(_))));
    let cp = store.publish_checkpoint().unwrap();
    assert_eq!(cp.size, 1300);
    assert_eq!(cp.root, tree.root());
    let (parsed, _) = open_checkpoint(cp.note.as_bytes(), &signer().verifier()).unwrap();
    assert_eq!((parsed.size, parsed.root), (1300, tree.root()));
    for size in [1u64, 2, 3, 255, 256, 257, 700, 1300] {
        let root = store.root(size).unwrap();
        assert_eq!(
            root,
            MemoryTree::from_entries(&entries[..size as usize]).root()
        );
        for index in [0, size / 2, size - 1] {
            let p = store.inclusion_proof(index, size).unwrap();
            verify_inclusion(&leaf_hash(&entries[index as usize]), index, size, &p, &root).unwrap();
        }
        let p = store.consistency_proof(size, 1300).unwrap();
        verify_consistency(size, 1300, &p, &root, &cp.root).unwrap();
    }
    // Hash tiles are byte ranges of the tree's levels; entry bundles hold the entries.
    let t0 = store.hash_tile(0, 1, None).unwrap();
    let want: Vec<u8> = tree.nodes(0)[256..512].iter().flat_map(|h| h.0).collect();
    assert_eq!(t0, want);
    let t0p = store.hash_tile(0, 5, Some(20)).unwrap();
    let want: Vec<u8> = tree.nodes(0)[1280..1300].iter().flat_map(|h| h.0).collect();
    assert_eq!(t0p, want);
    assert!(store.hash_tile(0, 5, None).is_err());
    assert!(store.hash_tile(0, 5, Some(21)).is_err());
    let t1 = store.hash_tile(1, 0, Some(5)).unwrap();
    let want: Vec<u8> = tree.nodes(8)[..5].iter().flat_map(|h| h.0).collect();
    assert_eq!(t1, want);
    let b = store.entry_bundle(4, None).unwrap();
    let decoded = stele_core::tile::bundle_decode(&b).unwrap();
    assert_eq!(decoded.len(), 256);
    assert_eq!(decoded[3], entries[1024 + 3].as_slice());
    let bp = store.entry_bundle(5, Some(20)).unwrap();
    assert_eq!(stele_core::tile::bundle_decode(&bp).unwrap().len(), 20);
    store.close().unwrap();
    let report = verify_dir(dir.path(), &signer().verifier()).unwrap();
    assert_eq!(report.entries, 1300);
}

/// Groups large enough that their leaves and the nodes of the tree's 1024-leaf blocks they
/// fill are hashed by several threads while the writer writes their frames: sizes around the
/// thresholds, groups that start and end inside blocks and groups that fill some whole.
/// `verify_dir` recomputes every stored node from the entries.
#[test]
fn large_groups_hashed_in_parallel_get_every_leaf_in_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut entries = Vec::new();
    for batch in [2047u64, 2048, 2049, 3333, 1024, 5000] {
        // `fill` checks each acknowledged leaf hash against the entry's own.
        entries.extend(fill(&store, batch, batch));
    }
    let cp = store.publish_checkpoint().unwrap();
    assert_eq!(cp.size, entries.len() as u64);
    assert_eq!(cp.root, MemoryTree::from_entries(&entries).root());
    store.close().unwrap();
    let report = verify_dir(dir.path(), &signer().verifier()).unwrap();
    assert_eq!(report.entries, entries.len() as u64);
}

#[test]
fn entry_bundles_of_one_frame_or_several_hold_their_entries() {
    // Bundles 0 and 1 are written as one frame each; bundle 2 in frames of 100 entries and
    // its tail by single appends; bundle 3 is partial.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut entries = fill(&store, 512, 256);
    entries.extend(fill(&store, 200, 100));
    entries.extend(fill(&store, 56, 1));
    entries.extend(fill(&store, 30, 30));
    for (bundle, width) in [
        (0u64, None),
        (1, None),
        (2, None),
        (3, Some(30u16)),
        (2, Some(150)),
    ] {
        let b = store.entry_bundle(bundle, width).unwrap();
        let got = stele_core::tile::bundle_decode(&b).unwrap();
        let first = bundle as usize * 256;
        let n = width.map_or(256, usize::from);
        let want: Vec<&[u8]> = entries[first..first + n]
            .iter()
            .map(Vec::as_slice)
            .collect();
        assert_eq!(got, want, "bundle {bundle}, width {width:?}");
    }
}

#[test]
fn reopening_keeps_everything_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = {
        let store = open(dir.path());
        let e = fill(&store, 600, 50);
        store.close().unwrap();
        e
    };
    let store = open(dir.path());
    assert_eq!(store.size(), 600);
    assert_eq!(store.latest_checkpoint().unwrap().size, 600);
    entries.extend(fill(&store, 100, 7));
    assert_eq!(
        store.root(700).unwrap(),
        MemoryTree::from_entries(&entries).root()
    );
    assert!(matches!(
        Store::open(StoreOptions::new(dir.path(), signer())),
        Err(StoreError::Locked(_))
    ));
}

#[test]
fn times_are_stamped_and_never_decrease() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut last = Timestamp::from_unix_nanos(0);
    for i in 0..20 {
        let data = format!("{{\"time\":\"{}\",\"n\":{i}}}", "0".repeat(TIMESTAMP_LEN)).into_bytes();
        let ack = store
            .append_blocking(vec![NewEntry {
                data,
                time_offset: Some(9),
                key: None,
            }])
            .unwrap();
        let stored = String::from_utf8(store.entry(ack[0].index).unwrap()).unwrap();
        assert_eq!(&stored[9..9 + TIMESTAMP_LEN], ack[0].time.format());
        assert!(ack[0].time >= last);
        last = ack[0].time;
        assert_eq!(ack[0].leaf_hash, leaf_hash(stored.as_bytes()));
    }
}

static CLOCK: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

#[test]
fn times_never_decrease_when_the_wall_clock_steps_back() {
    fn clock() -> i64 {
        CLOCK.load(std::sync::atomic::Ordering::SeqCst)
    }
    let set = |t: i64| CLOCK.store(t, std::sync::atomic::Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let opts = || {
        let mut o = StoreOptions::new(dir.path(), signer());
        o.clock = clock;
        o
    };
    let store = Store::open(opts()).unwrap();
    set(2_000_000_000_000_000_000);
    let a = store
        .append_blocking(vec![NewEntry::raw(b"a".to_vec())])
        .unwrap()[0]
        .time;
    set(1_000_000_000_000_000_000); // the clock steps back 31 years
    let b = store
        .append_blocking(vec![NewEntry::raw(b"b".to_vec())])
        .unwrap()[0]
        .time;
    assert_eq!(b, a, "time went backwards with the wall clock");
    store.close().unwrap();
    drop(store);
    // Across a restart too: the last commit time is recovered from the frames.
    let store = Store::open(opts()).unwrap();
    let c = store
        .append_blocking(vec![NewEntry::raw(b"c".to_vec())])
        .unwrap()[0]
        .time;
    assert_eq!(c, a);
    set(2_000_000_000_000_000_001);
    let d = store
        .append_blocking(vec![NewEntry::raw(b"d".to_vec())])
        .unwrap()[0]
        .time;
    assert!(d > a);
}

#[test]
fn retries_are_idempotent_and_conflicts_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let first = store
        .append_blocking(vec![keyed(1, 1, "a"), keyed(2, 2, "b")])
        .unwrap();
    let again = store
        .append_blocking(vec![keyed(2, 2, "b"), keyed(3, 3, "c")])
        .unwrap();
    assert_eq!(again[0].index, first[1].index);
    assert!(again[0].duplicate);
    assert_eq!(again[0].leaf_hash, first[1].leaf_hash);
    assert_eq!(again[0].time, first[1].time);
    assert_eq!(again[1].index, 2);
    assert_eq!(store.size(), 3);
    // Same id, other content: the whole request is refused.
    let err = store
        .append_blocking(vec![keyed(4, 4, "d"), keyed(1, 9, "changed")])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { index: 0, .. }),
        "{err}"
    );
    assert_eq!(store.size(), 3);
    // The same id twice in one request: one entry, reported twice.
    let twice = store
        .append_blocking(vec![keyed(5, 5, "e"), keyed(5, 5, "e")])
        .unwrap();
    assert_eq!(twice[0].index, twice[1].index);
    assert!(!twice[0].duplicate && twice[1].duplicate);
    assert_eq!(store.size(), 4);
    assert_eq!(store.index_of(&[3; 16]).unwrap(), Some(2));
    assert_eq!(store.index_of(&[9; 16]).unwrap(), None);
    assert_eq!(store.index_of_leaf(&first[1].leaf_hash).unwrap(), Some(1));
    assert_eq!(
        store.index_of_leaf(&leaf_hash(b"not in the log")).unwrap(),
        None
    );
    store.close().unwrap();
    // The index survives reopening; ids are still known.
    let store = open(dir.path());
    assert!(store.append_blocking(vec![keyed(1, 1, "a")]).unwrap()[0].duplicate);
    assert!(matches!(
        store.append_blocking(vec![keyed(1, 2, "a2")]),
        Err(StoreError::Conflict { .. })
    ));
}

#[test]
fn a_refused_request_leaves_nothing_behind_in_its_group() {
    // Requests queued together are one group commit. A request refused for a conflict must
    // not leave its new ids to the requests after it in the same group (nor append them).
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.append_blocking(vec![keyed(1, 1, "a")]).unwrap();
    for round in 0..20u8 {
        // A large first request keeps the writer busy while the others queue behind it.
        let filler: Vec<NewEntry> = (0..2_000u32)
            .map(|i| keyed_n(u32::from(round) * 10_000 + 1_000 + i, "filler"))
            .collect();
        let fresh = 100 + round;
        let rx = [
            store.append_pipelined(filler).unwrap(),
            // A new id, then a conflict with entry 0: refused as a whole.
            store
                .append_pipelined(vec![keyed(fresh, 1, "x"), keyed(1, 9, "changed")])
                .unwrap(),
            // The same new id with other content: not a conflict, since the refused request
            // appended nothing.
            store
                .append_pipelined(vec![keyed(fresh, 2, "y"), keyed(fresh, 2, "y")])
                .unwrap(),
        ];
        let [filler, refused, taken] = rx.map(|r| r.blocking_recv().unwrap());
        assert_eq!(filler.unwrap().len(), 2_000);
        assert!(
            matches!(refused, Err(StoreError::Conflict { index: 0, .. })),
            "{refused:?}"
        );
        let taken = taken.unwrap();
        assert!(!taken[0].duplicate && taken[1].duplicate, "round {round}");
        assert_eq!(taken[0].index, taken[1].index);
        assert_eq!(store.size(), taken[0].index + 1);
        assert_eq!(store.index_of(&[fresh; 16]).unwrap(), Some(taken[0].index));
        let stored = String::from_utf8(store.entry(taken[0].index).unwrap()).unwrap();
        assert!(stored.ends_with("|y"), "{stored}");
    }
}

#[test]
fn retries_in_and_out_of_order_are_found_in_the_pipeline() {
    // Groups in flight and the group being resolved keep ids in order when they arrive in
    // order and fall back to a table when not; retries must be found either way.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for round in 0..10u32 {
        let base = round * 100_000;
        let ordered: Vec<NewEntry> = (0..3_000).map(|i| keyed_n(base + i, "first")).collect();
        let shuffled: Vec<u32> = (0..500)
            .map(|i| base + 50_000 + (i * 7_919) % 500)
            .collect();
        let rx = [
            store.append_pipelined(ordered).unwrap(),
            // Out of order, with a repeat of one of its own and retries of the first request.
            store
                .append_pipelined(
                    shuffled
                        .iter()
                        .map(|&n| keyed_n(n, "second"))
                        .chain([
                            keyed_n(shuffled[3], "second"),
                            keyed_n(base + 2_999, "first"),
                        ])
                        .chain([keyed_n(base + 17, "first")])
                        .collect(),
                )
                .unwrap(),
            // Retries of both, in order and not.
            store
                .append_pipelined(vec![
                    keyed_n(base + 50_000 + 499, "second"),
                    keyed_n(base + 1, "first"),
                    keyed_n(base + 2_000, "first"),
                ])
                .unwrap(),
            // A retry with other content: refused, naming the entry.
            store.append_pipelined(vec![changed_n(base + 5)]).unwrap(),
        ];
        let [first, second, third, refused] = rx.map(|r| r.blocking_recv().unwrap());
        let first = first.unwrap();
        let second = second.unwrap();
        let third = third.unwrap();
        assert!(first.iter().all(|a| !a.duplicate));
        let at = |n: u32| store.index_of(&id_n(n)).unwrap().unwrap();
        for (a, &n) in second.iter().zip(&shuffled) {
            assert!(!a.duplicate);
            assert_eq!(a.index, at(n));
        }
        let tail = &second[shuffled.len()..];
        assert!(tail.iter().all(|a| a.duplicate), "round {round}");
        assert_eq!(tail[0].index, second[3].index);
        assert_eq!(tail[1].index, first[2_999].index);
        assert_eq!(tail[2].index, first[17].index);
        assert!(third.iter().all(|a| a.duplicate));
        assert_eq!(
            third.iter().map(|a| a.index).collect::<Vec<_>>(),
            vec![at(base + 50_499), first[1].index, first[2_000].index]
        );
        let err = refused.unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { index, .. } if index == first[5].index),
            "{err}"
        );
    }
    assert_eq!(store.size(), 10 * 3_500);
}

/// [`keyed_n`]'s entry `n` with another content digest.
fn changed_n(n: u32) -> NewEntry {
    let data = format!(
        "{}|{}|changed",
        hex::encode(id_n(n)),
        hex::encode([9u8; 16])
    )
    .into_bytes();
    NewEntry {
        key: key_of(&data),
        data,
        time_offset: None,
    }
}

/// The event id of [`keyed_n`]'s entry `n`.
fn id_n(n: u32) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id
}

/// An entry with a distinct 16-byte id made from `n`.
fn keyed_n(n: u32, payload: &str) -> NewEntry {
    let id = id_n(n);
    let data = format!("{}|{}|{payload}", hex::encode(id), hex::encode([7u8; 16])).into_bytes();
    NewEntry {
        key: key_of(&data),
        data,
        time_offset: None,
    }
}

/// A log of `n` keyed entries (appended `batch` at a time, then checkpointed and closed),
/// reopened after its id index was deleted.
fn reopened_without_id_index(dir: &Path, n: u32, batch: usize) -> Store {
    let store = open(dir);
    for chunk in (0..n).collect::<Vec<_>>().chunks(batch) {
        let entries = chunk.iter().map(|&i| keyed_n(i, "event")).collect();
        store.append_blocking(entries).unwrap();
    }
    store.publish_checkpoint().unwrap();
    store.close().unwrap();
    drop(store);
    std::fs::remove_dir_all(dir.join("log/idindex")).unwrap();
    open(dir)
}

#[test]
fn lost_id_index_is_rebuilt_from_the_entries() {
    // The id index is derived: without it (lost, or written by an older build) every id is
    // indexed again on open, including those in the partial bundle just below the
    // checkpoint, which recovery does not re-hash.
    let dir = tempfile::tempdir().unwrap();
    let n = 600u32;
    let store = reopened_without_id_index(dir.path(), n, 97);
    for i in 0..n {
        assert_eq!(
            store.index_of(&id_n(i)).unwrap(),
            Some(u64::from(i)),
            "id of entry {i}"
        );
    }
    let again = store.append_blocking(vec![keyed_n(599, "event")]).unwrap();
    assert!(again[0].duplicate);
    assert_eq!(again[0].index, 599);
    assert_eq!(store.size(), u64::from(n));
}

#[test]
fn a_large_lost_id_index_is_rebuilt_a_chunk_at_a_time() {
    // More records than one re-index chunk (65,536) and than one in-memory layer (229,376):
    // recovery hands them over in chunks and a layer is written out while it runs. Every id
    // must still be found, from whichever tier holds it, and retries stay idempotent.
    let dir = tempfile::tempdir().unwrap();
    let n = 300_000u32;
    let store = reopened_without_id_index(dir.path(), n, 20_000);
    for i in (0..n)
        .step_by(7)
        .chain([65_535, 65_536, 229_375, 229_376, n - 1])
    {
        assert_eq!(
            store.index_of(&id_n(i)).unwrap(),
            Some(u64::from(i)),
            "id of entry {i}"
        );
    }
    let again = store
        .append_blocking(vec![keyed_n(70_000, "event"), keyed_n(n - 1, "event")])
        .unwrap();
    assert!(again.iter().all(|a| a.duplicate));
    assert_eq!((again[0].index, again[1].index), (70_000, u64::from(n - 1)));
    assert_eq!(store.size(), u64::from(n));
    // Reopened once more, the rebuilt index is trusted as far as it reached disk.
    store.close().unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.index_of(&id_n(123_456)).unwrap(), Some(123_456));
}

/// Copies a live data directory: what a crash at this instant would leave (all written data).
fn crash_copy(from: &Path, to: &Path) {
    for e in walk(from) {
        let rel = e.strip_prefix(from).unwrap();
        let dst = to.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        if rel.ends_with("LOCK") {
            continue;
        }
        match std::fs::copy(&e, &dst) {
            Ok(_) => {}
            // A temporary file renamed away mid-copy (the writer publishing a checkpoint).
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => panic!("copying {}: {err}", e.display()),
        }
    }
}

fn walk(d: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn recovery_rebuilds_past_the_checkpoint_and_drops_a_torn_tail() {
    let live = tempfile::tempdir().unwrap();
    let store = open(live.path());
    let mut entries = fill(&store, 300, 40);
    store.publish_checkpoint().unwrap();
    entries.extend(fill(&store, 333, 11));
    for i in 0..5u8 {
        store.append_blocking(vec![keyed(100 + i, i, "k")]).unwrap();
        entries.push(store.entry(store.size() - 1).unwrap());
    }
    let crashed = tempfile::tempdir().unwrap();
    crash_copy(live.path(), crashed.path());
    // Unsynced derived data may be garbage after a crash: scribble over it.
    let lvl0 = crashed.path().join("log/hashes/00");
    let len = std::fs::metadata(&lvl0).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&lvl0).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xAB; 64], len - 64).unwrap();
    // A torn frame at the end of the segment: half of a real frame.
    let seg = crashed.path().join("log/entries/00000000.seg");
    let mut frame = Vec::new();
    stele_store::frame::encode(
        &mut frame,
        638,
        0,
        [b"never acknowledged".as_slice()].into_iter(),
    );
    let mut data = std::fs::read(&seg).unwrap();
    data.extend_from_slice(&frame[..frame.len() / 2]);
    std::fs::write(&seg, &data).unwrap();

    let warn = verify_dir(crashed.path(), &signer().verifier());
    assert!(warn.is_err() || !warn.unwrap().warnings.is_empty());
    let re = open(crashed.path());
    assert_eq!(re.size(), 638);
    assert_eq!(re.recovery_report().checkpoint_size, 300);
    assert_eq!(re.recovery_report().torn_bytes as usize, frame.len() / 2);
    assert_eq!(
        re.root(638).unwrap(),
        MemoryTree::from_entries(&entries).root()
    );
    assert!(
        re.append_blocking(vec![keyed(102, 2, "k")]).unwrap()[0].duplicate,
        "id index rebuilt past the checkpoint"
    );
    assert_eq!(
        re.index_of_leaf(&leaf_hash(&entries[635])).unwrap(),
        Some(635),
        "leaf index rebuilt past the checkpoint"
    );
    re.close().unwrap();
    let report = verify_dir(crashed.path(), &signer().verifier()).unwrap();
    assert_eq!(report.entries, 638);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

fn flip(path: &Path, at: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

#[test]
fn verify_locates_tampering() {
    let base = tempfile::tempdir().unwrap();
    {
        let store = open(base.path());
        fill(&store, 700, 64);
        store.close().unwrap();
    }
    let v = signer().verifier();
    verify_dir(base.path(), &v).unwrap();
    let case = |name: &str, damage: &dyn Fn(&Path), file_part: &str, index: Option<Option<u64>>| {
        let d = tempfile::tempdir().unwrap();
        crash_copy(base.path(), d.path());
        damage(d.path());
        let e = verify_dir(d.path(), &v).expect_err(name);
        assert!(e.file.to_string_lossy().contains(file_part), "{name}: {e}");
        if let Some(i) = index {
            assert_eq!(e.index, i, "{name}: {e}");
        }
    };
    let seg = "log/entries/00000000.seg";
    case(
        "entry byte",
        &|d| flip(&d.join(seg), 40),
        "00000000.seg",
        Some(Some(0)),
    );
    case(
        "leaf hash",
        &|d| flip(&d.join("log/hashes/00"), 32 * 300 + 5),
        "hashes/00",
        Some(Some(300)),
    );
    case(
        "level 8 hash",
        &|d| flip(&d.join("log/hashes/08"), 33),
        "hashes/08",
        Some(Some(256)),
    );
    case(
        "checkpoint",
        &|d| flip(&d.join("log/checkpoint"), 20),
        "checkpoint",
        None,
    );
    case(
        "truncated segment",
        &|d| {
            let p = d.join(seg);
            let len = std::fs::metadata(&p).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        },
        "00000000.seg",
        None,
    );
    case(
        "removed segment",
        &|d| std::fs::remove_file(d.join(seg)).unwrap(),
        "00000000.seg",
        Some(Some(0)),
    );
    case(
        "removed level file",
        &|d| std::fs::remove_file(d.join("log/hashes/00")).unwrap(),
        "hashes/00",
        Some(Some(0)),
    );
    case(
        "bundle index",
        &|d| flip(&d.join("log/bundles.idx"), 15),
        "bundles.idx",
        Some(Some(256)),
    );

    // Opening re-reads the last checkpointed bundle: damage there makes the store refuse to
    // open rather than cut or serve acknowledged entries.
    let d = tempfile::tempdir().unwrap();
    crash_copy(base.path(), d.path());
    let p = d.path().join(seg);
    let len = std::fs::metadata(&p).unwrap().len();
    flip(&p, len - 10);
    let mut o = StoreOptions::new(d.path(), signer());
    o.key_of = key_of;
    match Store::open(o) {
        Err(StoreError::Corrupt { index, .. }) => assert!(index.unwrap() >= 512),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("store opened despite a damaged checkpointed entry"),
    }
}

/// Simulated power loss, many times over: everything acknowledged was fsynced, so it stays;
/// derived files lose any unsynced suffix past what the checkpoint vouches for (cut at a random
/// point, then random garbage), and the segment may carry written-but-unacknowledged frames,
/// whole or torn. Recovery must keep every acknowledged entry and the log must verify.
#[test]
fn simulated_power_loss_keeps_every_acknowledged_entry() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n.max(1)
    };
    let live = tempfile::tempdir().unwrap();
    let mut o = StoreOptions::new(live.path(), signer());
    o.checkpoint_interval = Duration::from_millis(1);
    o.key_of = key_of;
    let store = Store::open(o).unwrap();
    let mut entries: Vec<Vec<u8>> = Vec::new();
    for round in 0..25 {
        let n = 1 + next(700);
        entries.extend(fill(&store, n, 1 + next(200)));
        if next(3) == 0 {
            store.publish_checkpoint().unwrap();
        }
        let acked = store.size();
        let crashed = tempfile::tempdir().unwrap();
        crash_copy(live.path(), crashed.path());
        let log = crashed.path().join("log");
        // What the checkpoint that survived vouches for (the writer may have published a newer
        // one than we last saw while the copy was made).
        let note = std::fs::read(log.join("checkpoint")).unwrap();
        let cp = open_checkpoint(&note, &signer().verifier()).unwrap().0.size;
        // Derived files: keep what the checkpoint vouches for, lose a random part of the rest.
        for level in 0..64u8 {
            let p = log.join(format!("hashes/{level:02}"));
            let Ok(meta) = std::fs::metadata(&p) else {
                break;
            };
            let keep = (cp >> level) * 32;
            damage_tail(&p, keep, meta.len(), &mut next);
        }
        let p = log.join("bundles.idx");
        let len = std::fs::metadata(&p).unwrap().len();
        damage_tail(&p, cp.div_ceil(256) * 8, len, &mut next);
        // Written but never acknowledged: a few whole frames, then maybe a torn one.
        let seg = log.join(format!("entries/{:08}.seg", acked / (1 << 20)));
        let mut data = std::fs::read(&seg).unwrap();
        let extra = next(3);
        let mut index = acked;
        for _ in 0..extra {
            if index % 256 == 255 {
                break;
            }
            stele_store::frame::encode(
                &mut data,
                index,
                0,
                [format!("unacked {index}").as_bytes()].into_iter(),
            );
            index += 1;
        }
        if next(2) == 0 && index % 256 != 255 {
            let mut f = Vec::new();
            stele_store::frame::encode(&mut f, index, 0, [b"torn".as_slice()].into_iter());
            data.extend_from_slice(&f[..1 + next(f.len() as u64 - 1) as usize]);
        }
        std::fs::write(&seg, &data).unwrap();

        let re = open(crashed.path());
        assert!(
            re.size() >= acked,
            "round {round}: lost acknowledged entries ({} < {acked})",
            re.size()
        );
        assert_eq!(
            re.size(),
            index,
            "round {round}: whole unacknowledged frames are kept, torn ones dropped"
        );
        for i in [0, acked / 2, acked - 1] {
            assert_eq!(
                re.entry(i).unwrap(),
                entries[i as usize],
                "round {round}, entry {i}"
            );
        }
        assert_eq!(
            re.root(acked).unwrap(),
            MemoryTree::from_entries(&entries).root(),
            "round {round}"
        );
        re.close().unwrap();
        let report = verify_dir(crashed.path(), &signer().verifier())
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(report.entries, index);
    }
}

/// Cuts `path` somewhere in `[keep, len]` and appends up to 64 random bytes.
fn damage_tail(path: &Path, keep: u64, len: u64, next: &mut impl FnMut(u64) -> u64) {
    let cut = keep + next(len - keep + 1);
    let garbage: Vec<u8> = (0..next(65)).map(|_| next(256) as u8).collect();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(cut).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &garbage, cut).unwrap();
}

/// Retries racing their originals through the write pipeline (one group syncing while the next
/// is prepared) are answered from the original, and never appended twice.
#[test]
fn retries_racing_through_the_pipeline_are_never_appended_twice() {
    use std::collections::HashMap;
    let tmp = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(tmp.path()));
    const IDS: u8 = 200;
    // Each thread keeps requests in flight, drawing ids from a small set so that a retry
    // often lands in the group after its original, while that one is still syncing. One
    // request in 16 carries the id with another digest: a conflict.
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let mut queue = std::collections::VecDeque::new();
                for n in 0..1500u32 {
                    let x = n.wrapping_mul(2_654_435_761).wrapping_add(t * 97);
                    let id = (x % u32::from(IDS)) as u8;
                    let digest = if x % 16 == 0 { id.wrapping_add(1) } else { id };
                    let rx = store
                        .append_pipelined(vec![keyed(id, digest, "racing")])
                        .unwrap();
                    queue.push_back((id, digest, rx));
                    if queue.len() >= 24 {
                        let (id, digest, rx) = queue.pop_front().unwrap();
                        out.push((id, digest, rx.blocking_recv().unwrap()));
                    }
                }
                for (id, digest, rx) in queue {
                    out.push((id, digest, rx.blocking_recv().unwrap()));
                }
                out
            })
        })
        .collect();
    let results: Vec<_> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let size = store.size();
    let commits = store.metrics().commits.get();
    assert!(
        commits > 10,
        "the requests should spread over many groups, got {commits}"
    );
    // The log: each id once.
    let mut stored: HashMap<[u8; 16], (u64, [u8; 16])> = HashMap::new();
    for i in 0..size {
        let k = key_of(&store.entry(i).unwrap()).unwrap();
        assert!(
            stored.insert(k.id, (i, k.digest)).is_none(),
            "id {:?} appended twice (again at {i})",
            k.id[0]
        );
    }
    let mut firsts: HashMap<u8, u32> = HashMap::new();
    for (id, digest, result) in results {
        let (index, stored_digest) = stored[&[id; 16]];
        match result {
            Ok(acks) => {
                assert_eq!(acks.len(), 1);
                assert_eq!(acks[0].index, index, "id {id} answered with another index");
                assert_eq!(
                    stored_digest, [digest; 16],
                    "id {id} acknowledged other content"
                );
                assert_eq!(acks[0].leaf_hash, leaf_hash(&store.entry(index).unwrap()));
                if !acks[0].duplicate {
                    *firsts.entry(id).or_default() += 1;
                }
            }
            Err(StoreError::Conflict { index: at, .. }) => {
                assert_eq!(at, index, "conflict on id {id} names another index");
                assert_ne!(
                    stored_digest, [digest; 16],
                    "id {id} refused its own content"
                );
            }
            Err(e) => panic!("unexpected error for id {id}: {e}"),
        }
    }
    for (id, n) in firsts {
        assert_eq!(n, 1, "id {id} acknowledged as new {n} times");
    }
    assert_eq!(size, stored.len() as u64);
    store.close().unwrap();
}

/// The fsync thread drops synced segment pages from the page cache once they are more than
/// `CACHE_BEHIND` bytes behind the write head. Entries there are read back from the disk:
/// every one must still read as appended, and the log verify.
#[test]
fn entries_far_behind_the_write_head_read_back_after_their_pages_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let entry_len = 8 << 10;
    let total = stele_store::CACHE_BEHIND + (32 << 20);
    let n = total / entry_len;
    let make = |i: u64| {
        let mut e = format!("entry {i} ").into_bytes();
        e.resize(entry_len as usize, b'a' + (i % 26) as u8);
        e
    };
    let mut all = Vec::new();
    for start in (0..n).step_by(512) {
        let batch: Vec<Vec<u8>> = (start..n.min(start + 512)).map(make).collect();
        store
            .append_blocking(batch.iter().cloned().map(NewEntry::raw).collect())
            .unwrap();
        all.extend(batch);
    }
    for i in (0..n).step_by(97).chain([n - 1]) {
        assert_eq!(store.entry(i).unwrap(), all[i as usize], "entry {i}");
    }
    assert_eq!(
        store.root(n).unwrap(),
        MemoryTree::from_entries(&all).root()
    );
    store.close().unwrap();
    drop(store);
    let report = verify_dir(dir.path(), &signer().verifier()).unwrap();
    assert_eq!((report.entries, report.checkpoint_size), (n, n));
}
