//! Helpers shared by the index tests: a store in a temporary directory whose clock advances a
//! minute per group commit (so time filters have something to cut), events appended the way
//! the server appends them, and a brute-force evaluation of a filter over the stored events.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::Value;
use stele_core::note::NoteSigner;
use stele_index::fields::tokenize;
use stele_index::{Field, Filter, Index, IndexOptions, Match};
use stele_store::{NewEntry, Store, StoreOptions};

/// 2026-01-01T00:00:00Z, advancing one minute per reading.
static CLOCK: AtomicI64 = AtomicI64::new(1_767_225_600_000_000_000);

fn minute_clock() -> i64 {
    CLOCK.fetch_add(60_000_000_000, Ordering::Relaxed)
}

/// Opens (or creates) a store in `dir` with the minute clock.
pub fn open_store(dir: &Path) -> Store {
    let signer = NoteSigner::from_seed("test.example/log", [7u8; 32]).unwrap();
    let mut o = StoreOptions::new(dir, signer);
    o.clock = minute_clock;
    o.key_of = |e| {
        stele_core::event::entry_key(e).map(|(id, digest)| stele_store::EntryKey {
            id: id.into_bytes(),
            digest,
        })
    };
    Store::open(o).unwrap()
}

/// Opens the index of `store` in `dir` without a follower (tests drive it with `catch_up`).
pub fn open_index(store: &Store, dir: &Path, chunk_size: u32) -> Index {
    let mut o = IndexOptions::new(dir);
    o.chunk_size = chunk_size;
    o.follow = false;
    Index::open(store.clone(), o).unwrap()
}

/// Appends `events` as one request.
pub fn append(store: &Store, events: &[Value]) {
    let entries: Vec<NewEntry> = events
        .iter()
        .map(|e| stele_index::synth::prepare(e.clone()).unwrap())
        .collect();
    store.append_blocking(entries).unwrap();
}

/// Every stored entry parsed as JSON (`None` when it is not a JSON object event).
pub fn stored(store: &Store) -> Vec<Option<Value>> {
    (0..store.size())
        .map(|i| {
            let v: Value = serde_json::from_slice(&store.entry(i).unwrap()).ok()?;
            v.get("time")?;
            Some(v)
        })
        .collect()
}

fn field_value(ev: &Value, f: Field) -> Option<&str> {
    let path = match f {
        Field::Actor => "/actor/id",
        Field::ActorType => "/actor/type",
        Field::Action => "/action",
        Field::ResourceType => "/resource/type",
        Field::ResourceId => "/resource/id",
        Field::Outcome => "/outcome",
        Field::Tenant => "/tenant",
        Field::Source => "/source",
        Field::Session => "/actor/session_id",
        Field::Ip => "/actor/ip",
    };
    ev.pointer(path)?.as_str()
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => tokenize(s, out),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// Whether `ev` matches `f`, decided from the stored event alone.
pub fn matches(ev: &Value, f: &Filter) -> bool {
    let t = stele_core::timestamp::Timestamp::parse(ev["time"].as_str().unwrap())
        .unwrap()
        .unix_nanos();
    if f.from.is_some_and(|from| t < from) || f.to.is_some_and(|to| t >= to) {
        return false;
    }
    for (field, m) in &f.fields {
        match field_value(ev, *field) {
            Some(v) if m.matches(v) => {}
            _ => return false,
        }
    }
    let mut words = Vec::new();
    if let Some(r) = ev.get("reason") {
        strings(r, &mut words);
    }
    if let Some(c) = ev.get("context") {
        strings(c, &mut words);
    }
    f.text.iter().all(|t| words.contains(t))
}

/// A filter on one field.
pub fn on(field: Field, value: &str) -> (Field, Match) {
    (field, Match::parse(value))
}
