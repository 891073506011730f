//! The index as derived data: incremental indexing (with restarts) equals a rebuild from the
//! log, damaged chunk files are rebuilt, and cursors stay stable while the log grows.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use stele_index::synth::{Synth, SynthConfig};
use stele_index::{Field, Filter, GroupBy, Index, IndexOptions, Match, Order, ScopeFilter};
use stele_store::Store;

fn cfg() -> SynthConfig {
    SynthConfig {
        users: 10,
        tenants: 3,
        resources: 20,
        change_percent: 15,
    }
}

fn chunk_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir.join("chunks"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn filters() -> Vec<Filter> {
    let mut text = Filter::default();
    assert!(text.set_text("ticket"));
    vec![
        Filter::default(),
        Filter {
            fields: vec![(Field::Action, Match::parse("role.*"))],
            ..Filter::default()
        },
        Filter {
            fields: vec![
                (Field::Actor, Match::parse("user-1")),
                (Field::Outcome, Match::parse("deny")),
            ],
            ..Filter::default()
        },
        text,
    ]
}

/// Everything a client could observe of an index.
fn observe(index: &Index, t_end: i64) -> Vec<String> {
    let mut out = Vec::new();
    for f in filters() {
        out.push(format!(
            "{:?}",
            index.search(&f, Order::Desc, None, None, 1_000).hits
        ));
        for g in [GroupBy::Field(Field::Actor), GroupBy::Hour] {
            out.push(format!("{:?}", index.count(&f, Some(g), None)));
        }
    }
    for u in 0..10 {
        out.push(format!(
            "{:?}",
            index.replay_principal(&format!("user-{u}"), t_end).unwrap()
        ));
    }
    out.push(format!(
        "{:?}",
        index
            .replay_role("admin", &ScopeFilter::default(), t_end)
            .unwrap()
    ));
    out
}

#[test]
fn incremental_indexing_with_restarts_equals_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_store(dir.path());
    let inc_dir = dir.path().join("index-incremental");
    let mut synth = Synth::new(11, cfg());
    let mut index = common::open_index(&store, &inc_dir, 64);
    for round in 0..14 {
        let events: Vec<Value> = (0..(round * 13 + 5)).map(|_| synth.event()).collect();
        common::append(&store, &events);
        index.catch_up().unwrap();
        if round % 4 == 3 {
            // Restart: sealed chunks load from their files, the open chunk is re-read.
            drop(index);
            index = common::open_index(&store, &inc_dir, 64);
            index.catch_up().unwrap();
        }
    }
    assert_eq!(index.indexed(), store.size());
    let t_end = i64::MAX;
    let incremental = observe(&index, t_end);

    let rebuilt_dir = dir.path().join("index-rebuilt");
    let rebuilt = common::open_index(&store, &rebuilt_dir, 64);
    rebuilt.catch_up().unwrap();
    assert_eq!(
        chunk_files(&inc_dir),
        chunk_files(&rebuilt_dir),
        "chunk files are identical"
    );
    assert!(chunk_files(&rebuilt_dir).len() >= 10);
    assert_eq!(observe(&rebuilt, t_end), incremental);

    // A damaged chunk file is discarded (with every later one) and rebuilt identically.
    let victim = inc_dir.join("chunks").join("00000003.idx");
    let mut bytes = std::fs::read(&victim).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&victim, bytes).unwrap();
    drop(index);
    let reopened = common::open_index(&store, &inc_dir, 64);
    assert_eq!(reopened.indexed(), 3 * 64, "chunks 0-2 survive");
    reopened.catch_up().unwrap();
    assert_eq!(chunk_files(&inc_dir), chunk_files(&rebuilt_dir));
    assert_eq!(observe(&reopened, t_end), incremental);

    // Chunk size changes nothing observable; one large step (over 1,024 entries) also takes
    // the two-thread parsing and filling path.
    assert!(store.size() > 1_024);
    let big = common::open_index(&store, &dir.path().join("index-4096"), 4096);
    big.catch_up().unwrap();
    assert_eq!(observe(&big, t_end), incremental);

    // An index of another chunk size is rebuilt, not misread.
    drop(reopened);
    let other = common::open_index(&store, &inc_dir, 128);
    assert_eq!(other.indexed(), 0);
    other.catch_up().unwrap();
    assert_eq!(observe(&other, t_end), incremental);
}

#[test]
fn an_index_of_another_log_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let a = common::open_store(&dir.path().join("a"));
    let b = common::open_store(&dir.path().join("b"));
    let mut synth = Synth::new(3, cfg());
    for s in [&a, &b] {
        let events: Vec<Value> = (0..200).map(|_| synth.event()).collect();
        common::append(s, &events);
    }
    let index_dir = dir.path().join("index");
    let ia = common::open_index(&a, &index_dir, 64);
    ia.catch_up().unwrap();
    drop(ia);
    let ib = common::open_index(&b, &index_dir, 64);
    assert_eq!(
        ib.indexed(),
        0,
        "chunks of log a do not match log b's leaf hashes"
    );
}

#[test]
fn cursors_are_stable_while_the_log_grows() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_store(dir.path());
    let mut synth = Synth::new(5, cfg());
    let first: Vec<Value> = (0..300).map(|_| synth.event()).collect();
    common::append(&store, &first);
    let mut o = IndexOptions::new(dir.path().join("index"));
    o.chunk_size = 64;
    let index = Index::open(store.clone(), o).unwrap();
    assert!(index.wait_for(store.size(), Duration::from_secs(20)));

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut synth = Synth::new(6, cfg());
            // A bounded growth (about 2,100 events), so that slow paging on a loaded machine
            // still reaches the end; the pages are read while it is being appended.
            for _ in 0..300 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let batch: Vec<Value> = (0..7).map(|_| synth.event()).collect();
                common::append(&store, &batch);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let filter = Filter {
        fields: vec![(Field::Outcome, Match::parse("allow"))],
        ..Filter::default()
    };
    for order in [Order::Asc, Order::Desc] {
        let mut got = Vec::new();
        let mut cursor = None;
        let mut snapshot_size = None;
        let mut pages = 0;
        loop {
            let (after, before) = match order {
                Order::Asc => (cursor, None),
                Order::Desc => (None, cursor),
            };
            let page = index.search(&filter, order, after, before, 9);
            snapshot_size.get_or_insert(page.indexed);
            got.extend_from_slice(&page.hits);
            pages += 1;
            // Asc pages are read slowly enough for the log to grow under them.
            std::thread::sleep(Duration::from_millis(2));
            assert!(pages < 10_000, "paging never ended");
            if !page.more {
                if order == Order::Asc {
                    snapshot_size = Some(page.indexed);
                }
                break;
            }
            cursor = page.hits.last().copied();
        }
        // Every page joined gives exactly the matches of one snapshot: no gap, no repeat.
        let events = common::stored(&store);
        let size = snapshot_size.unwrap() as usize;
        let mut want: Vec<u64> = (0..size)
            .filter(|&i| {
                events[i]
                    .as_ref()
                    .is_some_and(|e| common::matches(e, &filter))
            })
            .map(|i| i as u64)
            .collect();
        if order == Order::Desc {
            want.reverse();
        }
        assert_eq!(got, want, "{order:?}");
        assert!(size > 300 || order == Order::Desc);
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(index.wait_for(store.size(), Duration::from_secs(20)));
    assert_eq!(index.lag(), 0);
    index.shutdown();
    let _: &Store = index.store();
}

/// Indexing from several threads at once (the follower, and callers of `catch_up`) indexes
/// every entry exactly once.
#[test]
fn concurrent_catch_ups_index_each_entry_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_store(dir.path());
    let mut o = IndexOptions::new(dir.path().join("index"));
    o.chunk_size = 64;
    o.follow = true;
    let index = Index::open(store.clone(), o).unwrap();
    let mut synth = Synth::new(5, cfg());
    let stop = Arc::new(AtomicBool::new(false));
    let catchers: Vec<_> = (0..3)
        .map(|_| {
            let (index, stop) = (index.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    index.catch_up().unwrap();
                }
            })
        })
        .collect();
    for round in 0..60 {
        let events: Vec<Value> = (0..(round % 7 + 1) * 9).map(|_| synth.event()).collect();
        common::append(&store, &events);
    }
    stop.store(true, Ordering::Relaxed);
    for c in catchers {
        c.join().unwrap();
    }
    index.catch_up().unwrap();
    assert_eq!(index.indexed(), store.size());
    let all = index.count(&Filter::default(), None, None);
    assert_eq!(all.total, store.size());
    index.shutdown();
}
