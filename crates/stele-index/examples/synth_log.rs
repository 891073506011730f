//! Writes a log of synthetic events (`stele_index::synth`) into a data directory, for
//! profiling the index build on a fixed log (`stele index rebuild --data DIR` under `perf`)
//! without regenerating the log each time as `stele bench query` does.
//!
//! `cargo run --release -p stele-index --example synth_log -- DIR EVENTS [DAYS]`

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};

use stele_index::synth::{prepare, Synth, SynthConfig};
use stele_store::{datadir, NewEntry, Store, StoreOptions};

/// The commit time the store stamps, set before each batch so events span `DAYS`.
static NOW: AtomicI64 = AtomicI64::new(0);

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: synth_log DIR EVENTS [DAYS]";
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let events: u64 = args.next().ok_or(usage)?.parse()?;
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
