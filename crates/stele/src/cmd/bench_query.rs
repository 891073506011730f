//! `stele bench query`: builds a log of realistic events spread over months (default
//! 10,000,000), indexes it, and prints each figure the query layer promises beside its target:
//! index build rate from the log, follower rate and lag while appends run, index size against
//! the raw log, a selective filter's p99, count/group-by over all events, and replay p99.
//!
//! Event times: the store's clock is replaced by one the bench sets before each batch, so the
//! events span `--query-days` days as in a long-lived log (times still never decrease).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use stele_core::note::NoteSigner;
use stele_index::replay::ScopeFilter;
use stele_index::synth::{prepare, Synth, SynthConfig, ROLES};
use stele_index::{Field, Filter, GroupBy, Index, IndexOptions, Match, Order};
use stele_store::{NewEntry, Store, StoreOptions};

use crate::cmd::bench::{bench_token, enable_auth, load_average, process_cpu, BenchServer};

/// The bench clock: the commit time the store stamps (ns since the epoch).
static NOW: AtomicI64 = AtomicI64::new(0);

fn bench_clock() -> i64 {
    NOW.load(Ordering::Relaxed)
}

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000_000_000;
const BATCH: usize = 8_192;

/// Runs the query bench in `scratch` over `events` events spanning `days` days.
///
/// # Errors
/// Store or index errors.
pub fn run(scratch: &Path, events: u64, days: u64) -> Result<()> {
    let span = i64::try_from(days)? * 86_400_000_000_000;
    let step = span / i64::try_from(events.max(1))?;
    let signer = NoteSigner::generate("bench.stele.invalid/query").context("generating a key")?;
    let mut opts = StoreOptions::new(scratch.join("data"), signer);
    opts.clock = bench_clock;
    opts.key_of = crate::cmd::serve::key_of;
    let store = Store::open(opts).context("opening the bench log")?;
    let cfg = SynthConfig::default();
    let mut synth = Synth::new(42, cfg);
    println!(
        "query bench: {events} events over {days} days, {} users, {} tenants, {}% permission changes; load average {} at start",
        cfg.users, cfg.tenants, cfg.change_percent, load_average()
    );

    // 1. Most of the log, appended without an index.
    let followed = (events / 5).max(1).min(events);
    let first = events - followed;
    let t = Instant::now();
    append_generated(&store, &mut synth, 0, first, step)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  built log: {first} events in {secs:.1} s ({:.0} events/s incl. generation and validation)",
        first as f64 / secs
    );

    // 2. Index build from the log alone (what `stele index rebuild` does).
    let index_dir = scratch.join("data").join("index");
    let mut iopts = IndexOptions::new(&index_dir);
    iopts.follow = false;
    let t = Instant::now();
    let cpu = process_cpu().as_secs_f64();
    let index = Index::open(store.clone(), iopts).context("opening the index")?;
    index.catch_up()?;
    let secs = t.elapsed().as_secs_f64();
    let cpu = process_cpu().as_secs_f64() - cpu;
    println!(
        "  index build from the log: {first} events in {secs:.1} s = {:.0} events/s (target >= 300000); {cpu:.1} CPU-s = {:.0} events per CPU-second, {:.2} cores busy; load average {}",
        first as f64 / secs,
        first as f64 / cpu,
        cpu / secs,
        load_average()
    );
    drop(index);

    // 3. The follower while appends run as fast as the store takes them. Entries are
    // generated beforehand so generation does not compete for the two cores.
    // Already cut into the batches to append: draining them from the front of one vector
    // moved the rest of it down on every batch (quadratic, ~1 CPU-s of memmove for 2M events
    // counted as the store's and the follower's).
    let t = Instant::now();
    let mut pending: Vec<Vec<NewEntry>> = Vec::new();
    let mut left = followed;
    while left > 0 {
        let k = left.min(BATCH as u64);
        let mut batch = Vec::with_capacity(k as usize);
        for _ in 0..k {
            batch.push(prepare(synth.event()).context("generated an invalid event")?);
        }
        pending.push(batch);
        left -= k;
    }
    println!(
        "  generated {followed} more events in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let index = Index::open(store.clone(), IndexOptions::new(&index_dir))?;
    let max_lag = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (index, max_lag, done) = (index.clone(), max_lag.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                max_lag.fetch_max(index.lag(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let t = Instant::now();
    let cpu = process_cpu().as_secs_f64();
    let mut at = first;
    let mut in_flight = std::collections::VecDeque::new();
    for batch in pending {
        NOW.store(T0 + step * i64::try_from(at)?, Ordering::Relaxed);
        at += batch.len() as u64;
        in_flight.push_back(store.append_pipelined(batch)?);
        if in_flight.len() > 4 {
            if let Some(rx) = in_flight.pop_front() {
                rx.blocking_recv().context("append dropped")??;
            }
        }
    }
    for rx in in_flight {
        rx.blocking_recv().context("append dropped")??;
    }
    let append_secs = t.elapsed().as_secs_f64();
    let caught_up = index.wait_for(store.size(), Duration::from_secs(600));
    let total_secs = t.elapsed().as_secs_f64();
    let cpu = process_cpu().as_secs_f64() - cpu;
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    println!(
        "  follower during appends: {followed} events appended at {:.0} events/s; index caught up {:.2} s after the last append ({}), max lag {} entries; follower rate {:.0} events/s (target >= 300000)",
        followed as f64 / append_secs,
        total_secs - append_secs,
        if caught_up { "ok" } else { "TIMED OUT" },
        max_lag.load(Ordering::Relaxed),
        followed as f64 / total_secs
    );
    println!(
        "    (store writer and follower together: {cpu:.2} CPU-s = {:.2} CPU-µs per event, {:.2} cores busy; load average {})",
        cpu * 1e6 / followed as f64,
        cpu / total_secs,
        load_average()
    );
    index.shutdown();

    // 4. Size.
    let raw = dir_bytes(&scratch.join("data").join("log").join("entries"))?;
    let idx = dir_bytes(&index_dir)?;
    println!(
        "  size: index {:.0} MB, raw log segments {:.0} MB: {:.1}% (target <= 50%)",
        idx as f64 / 1e6,
        raw as f64 / 1e6,
        100.0 * idx as f64 / raw as f64
    );

    // 5. Selective filter: one actor, one week, up to 100 newest results read from the log
    // with their leaf hashes (what GET /v1/events does, less HTTP).
    let mut lat = Vec::new();
    let mut hits = 0;
    let mut pick = Synth::new(7, cfg);
    let weeks = (days / 7).max(1);
    for k in 0..300u64 {
        let _ = pick.event();
        let actor = format!("user-{}", (k * 7919) % 5_000);
        let week = (k * 31) % weeks;
        let from = T0 + i64::try_from(week)? * 7 * 86_400_000_000_000;
        let f = Filter {
            fields: vec![(Field::Actor, Match::Exact(actor))],
            from: Some(from),
            to: Some(from + 7 * 86_400_000_000_000),
            ..Filter::default()
        };
        let t = Instant::now();
        let page = index.search(&f, Order::Desc, None, None, 100);
        for &i in &page.hits {
            std::hint::black_box((store.entry(i)?, store.leaf_hash(i)?));
        }
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        hits += page.hits.len();
    }
    let (p50, p99) = percentiles(&mut lat);
    println!(
        "  selective filter (one actor, one week, <= 100 results read from the log): p50 {p50:.2} ms, p99 {p99:.2} ms, {:.1} results on average (target p99 < 50 ms)",
        hits as f64 / 300.0
    );

    // 6. Count and group-by over every event.
    for (name, group, filter) in [
        ("count all", None, Filter::default()),
        (
            "group by actor",
            Some(GroupBy::Field(Field::Actor)),
            Filter::default(),
        ),
        (
            "group by action",
            Some(GroupBy::Field(Field::Action)),
            Filter::default(),
        ),
        (
            "group by outcome",
            Some(GroupBy::Field(Field::Outcome)),
            Filter::default(),
        ),
        ("group by hour", Some(GroupBy::Hour), Filter::default()),
        (
            "denials grouped by actor",
            Some(GroupBy::Field(Field::Actor)),
            Filter {
                fields: vec![(Field::Outcome, Match::Exact("deny".into()))],
                ..Filter::default()
            },
        ),
    ] {
        let t = Instant::now();
        let c = index.count(&filter, group, None);
        println!(
            "  {name} over all {} events: {:.0} ms ({} groups, total {}) (target < 2000 ms)",
            c.indexed,
            t.elapsed().as_secs_f64() * 1e3,
            c.groups.len(),
            c.total
        );
    }

    // 7. Replay as of random instants.
    let mut lat = Vec::new();
    let mut lat_role = Vec::new();
    for k in 0..300u64 {
        let as_of = T0 + (span / 300) * i64::try_from(k)?;
        let t = Instant::now();
        std::hint::black_box(index.replay_principal(&format!("user-{}", k % 3_000), as_of)?);
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        let role = ROLES
            .get((k % ROLES.len() as u64) as usize)
            .copied()
            .unwrap_or("admin");
        let scopes = ScopeFilter {
            kind: Some("tenant".into()),
            id: Some(format!("tenant-{}", k % 20)),
        };
        let t = Instant::now();
        std::hint::black_box(index.replay_role(role, &scopes, as_of)?);
        lat_role.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (p50, p99) = percentiles(&mut lat);
    let (r50, r99) = percentiles(&mut lat_role);
    println!(
        "  replay as of an instant ({} change events indexed): by principal p50 {p50:.3} ms, p99 {p99:.3} ms; by role in a tenant p50 {r50:.2} ms, p99 {r99:.2} ms (target < 100 ms)",
        index.change_events()
    );

    // 8. The selective filter again, over HTTP with authentication on, where every query is
    // appended to the log (`audit.query`, durable) before it is answered.
    http_reads(&scratch.join("data"), &store, &index, weeks)?;
    drop(index);
    store.close()?;
    Ok(())
}

/// Runs the selective filter of step 5 through `GET /v1/events` as an auditor and as a reader
/// bound to one tenant, with authentication on, and prints the latencies beside the number
/// of meta-log entries the queries appended.
fn http_reads(data: &Path, store: &Store, index: &Index, weeks: u64) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let config = stele_server::ServerConfig::default();
    let state = stele_server::AppState::build(store.clone(), config, None, Some(index.clone()));
    let auditor = bench_token(data, stele_auth::Role::Auditor, &[])?;
    let reader = bench_token(data, stele_auth::Role::Reader, &["tenant-0"])?;
    enable_auth(
        data,
        store,
        &state,
        stele_server::auth::AuthSettings::default(),
    )?;
    let server = BenchServer::start(&rt, state)?;
    let addr = server.addr;
    let client = reqwest::Client::new();
    for (who, token) in [("auditor", &auditor), ("reader of one tenant", &reader)] {
        let before = store.size();
        let mut lat = Vec::new();
        let mut hits = 0usize;
        for k in 0..300u64 {
            let actor = format!("user-{}", (k * 7919) % 5_000);
            let week = (k * 31) % weeks;
            let from = T0 + i64::try_from(week)? * 7 * 86_400_000_000_000;
            let at = |ns: i64| stele_core::timestamp::Timestamp::from_unix_nanos(ns).format();
            let url = format!(
                "http://{addr}/v1/events?actor={actor}&from={}&to={}&limit=100",
                at(from),
                at(from + 7 * 86_400_000_000_000)
            );
            let t = Instant::now();
            let body: serde_json::Value = rt.block_on(async {
                let r = client.get(&url).bearer_auth(token).send().await?;
                anyhow::ensure!(r.status().is_success(), "GET {url}: {}", r.status());
                Ok(r.json().await?)
            })?;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            hits += body["events"].as_array().map_or(0, Vec::len);
        }
        let (p50, p99) = percentiles(&mut lat);
        println!(
            "  selective filter over HTTP as {who}, authentication on, each query meta-logged: p50 {p50:.2} ms, p99 {p99:.2} ms, {:.1} results on average; {} audit.query entries appended for 300 queries (target p99 < 50 ms)",
            hits as f64 / 300.0,
            store.size() - before
        );
    }
    server.stop(&rt);
    Ok(())
}

/// Generates and appends `n` events starting at log position `at`, with the bench clock
/// advancing `step` ns per event. Generation and validation run on a second thread; batches
/// are appended one at a time, so each is its own group commit with its own time (pipelined
/// batches would share one commit time and bunch the timeline).
fn append_generated(store: &Store, synth: &mut Synth, at: u64, n: u64, step: i64) -> Result<()> {
    const GROUP: u64 = 1_024;
    let (tx, rx) = sync_channel::<Vec<NewEntry>>(16);
    let mut gen = std::mem::replace(synth, Synth::new(0, SynthConfig::default()));
    let producer = std::thread::spawn(move || {
        let mut left = n;
        while left > 0 {
            let k = left.min(GROUP);
            let batch: Vec<NewEntry> = (0..k).filter_map(|_| prepare(gen.event())).collect();
            if tx.send(batch).is_err() {
                break;
            }
            left -= k;
        }
        gen
    });
    let mut pos = at;
    for batch in rx {
        NOW.store(T0 + step * i64::try_from(pos)?, Ordering::Relaxed);
        pos += batch.len() as u64;
        store.append_blocking(batch)?;
    }
    *synth = producer
        .join()
        .map_err(|_| anyhow::anyhow!("event generator panicked"))?;
    Ok(())
}

fn percentiles(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (at(0.5), at(0.99))
}

fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        let meta = e.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&e.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
