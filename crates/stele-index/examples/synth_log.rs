//! Writes a log of synthetic events (`stele_index::synth`) into a data directory, or rebuilds
//! its index printing wall and CPU time, for profiling the index build on a fixed log (under
//! `perf`) without regenerating the log each time as `stele bench query` does.
//!
//! `cargo run --release -p stele-index --example synth_log -- DIR EVENTS [DAYS]`
//! `cargo run --release -p stele-index --example synth_log -- DIR build`

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use stele_index::synth::{prepare, Synth, SynthConfig};
use stele_index::{Index, IndexOptions};
use stele_store::{datadir, NewEntry, Store, StoreOptions};

/// The commit time the store stamps, set before each batch so events span `DAYS`.
static NOW: AtomicI64 = AtomicI64::new(0);

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: synth_log DIR EVENTS [DAYS]";
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let what = args.next().ok_or(usage)?;
    if what == "build" {
        return build(&dir);
    }
    let events: u64 = what.parse()?;
    let days: i64 = args.next().map_or(Ok(180), |d| d.parse())?;
    let (signer, _) = datadir::open_or_init(&dir, None)?;
    let mut opts = StoreOptions::new(&dir, signer);
    opts.clock = || NOW.load(Ordering::Relaxed);
    let store = Store::open(opts)?;
    let step = days * 86_400_000_000_000 / i64::try_from(events.max(1))?;
    let mut synth = Synth::new(42, SynthConfig::default());
    let mut at = store.size();
    while at < events {
        let k = (events - at).min(1_024);
        let batch: Vec<NewEntry> = (0..k).filter_map(|_| prepare(synth.event())).collect();
        NOW.store(T0 + step * i64::try_from(at)?, Ordering::Relaxed);
        at += batch.len() as u64;
        store.append_blocking(batch)?;
    }
    store.close()?;
    println!("{} holds {at} entries", dir.display());
    Ok(())
}

/// Deletes and rebuilds the index of the log in `dir`, printing the time it took.
fn build(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let (signer, _) = datadir::open_or_init(dir, None)?;
    let store = Store::open(StoreOptions::new(dir, signer))?;
    let index_dir = dir.join("index");
    Index::remove(&index_dir)?;
    let mut opts = IndexOptions::new(&index_dir);
    opts.follow = false;
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let index = Index::open(store.clone(), opts)?;
    index.catch_up()?;
    let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    let n = index.indexed() as f64;
    println!(
        "indexed {n} entries in {secs:.2} s ({:.0}/s), {cpu:.2} CPU-s ({:.0} per CPU-second)",
        n / secs,
        n / cpu
    );
    drop(index);
    store.close()?;
    Ok(())
}

/// User + system time of this process (all its threads, also finished ones), from
/// `/proc/self/stat` in clock ticks (USER_HZ, 100 on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}
