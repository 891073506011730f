//! `stele bench`: measures the append, proof and verify paths on this machine and prints the
//! figures beside the physical limits measured in the same run (disk write rate, fsync
//! latency, SHA-256 rate), so the ratio to what the hardware allows is visible.
//!
//! Every acknowledged append in these benches is durable (fdatasync), as in production.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use stele_core::hash::{leaf_hash, node_hash};
use stele_core::note::NoteSigner;
use stele_store::{EntryKey, NewEntry, Store, StoreOptions};

/// Which benches to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Bench {
    /// Every bench below.
    All,
    /// Sequential write bandwidth and 4 KiB append+fdatasync latency of the disk.
    Disk,
    /// SHA-256 leaf and node hashing rate.
    Hash,
    /// Batched appends through the library API.
    Append,
    /// Batched appends over HTTP (NDJSON).
    HttpBatch,
    /// One event per request over HTTP at many concurrent connections.
    HttpSingle,
    /// Inclusion-proof latency in a large log.
    Proof,
    /// Offline verification rate.
    Verify,
    /// The query index over a large log of realistic events (not part of `all`: it writes
    /// several GB).
    Query,
    /// Kubernetes audit webhook receiver (EventLists), durable.
    IngestK8s,
    /// OPA decision-log receiver (gzip arrays), durable.
    IngestOpa,
    /// OTLP/HTTP logs receiver (protobuf), durable.
    IngestOtlp,
    /// Syslog listener (RFC 5424 over TCP), durable.
    IngestSyslog,
}

/// Arguments of `stele bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Benches to run.
    #[arg(value_enum, default_value = "all")]
    pub which: Vec<Bench>,
    /// Scratch directory (on the disk to measure); a temporary directory inside it is used
    /// and removed.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Entries for the library append bench.
    #[arg(long, default_value_t = 2_000_000)]
    pub entries: u64,
    /// Entry size in bytes.
    #[arg(long, default_value_t = 300)]
    pub entry_size: usize,
    /// Entries per library append batch.
    #[arg(long, default_value_t = 16_384)]
    pub batch: usize,
    /// Size of the log built for the proof and verify benches.
    #[arg(long, default_value_t = 10_000_000)]
    pub proof_log_size: u64,
    /// Seconds each HTTP bench runs.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent connections for the single-event HTTP bench.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Concurrent connections for the batched HTTP bench.
    #[arg(long, default_value_t = 8)]
    pub batch_connections: usize,
    /// Run the HTTP benches twice, without and with authentication (a writer token on every
    /// request, checked and rate-limited as in production), and print the difference.
    #[arg(long)]
    pub auth: bool,
    /// Events in the log built for the query bench.
    #[arg(long, default_value_t = 10_000_000)]
    pub query_events: u64,
    /// Days the query bench's events span.
    #[arg(long, default_value_t = 180)]
    pub query_days: u64,
}

/// Runs the selected benches, printing one line per figure.
///
/// # Errors
/// I/O or store errors.
pub fn run(args: &BenchArgs) -> Result<()> {
    let all = args.which.contains(&Bench::All);
    let on = |b: Bench| (all && b != Bench::Query) || args.which.contains(&b);
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("stele-bench-")
        .tempdir_in(&args.dir)
        .context("creating a scratch directory")?;
    println!(
        "stele bench: scratch {}, {} CPUs, entry size {} B",
        scratch.path().display(),
        num_cpus(),
        args.entry_size
    );
    if on(Bench::Disk) {
        disk(scratch.path())?;
    }
    if on(Bench::Hash) {
        hash(args.entry_size);
    }
    if on(Bench::Append) {
        append(scratch.path(), args, false)?;
        append(scratch.path(), args, true)?;
    }
    if on(Bench::HttpBatch) || on(Bench::HttpSingle) {
        let (batch, single) = (on(Bench::HttpBatch), on(Bench::HttpSingle));
        let mut open = http(&scratch.path().join("http"), args, batch, single, false)?;
        if args.auth {
            // Alternate off/on twice and keep each one's best run, so a burst of noise
            // from other processes does not decide the comparison.
            let mut authed = http(&scratch.path().join("http-auth"), args, batch, single, true)?;
            let open2 = http(&scratch.path().join("http2"), args, batch, single, false)?;
            let authed2 = http(
                &scratch.path().join("http-auth2"),
                args,
                batch,
                single,
                true,
            )?;
            for (best, again) in [(&mut open, open2), (&mut authed, authed2)] {
                for (b, a) in best.iter_mut().zip(again) {
                    b.rate = b.rate.max(a.rate);
                    b.cpu_us = b.cpu_us.min(a.cpu_us);
                }
            }
            for (off, with) in open.iter().zip(&authed) {
                // Throughput on a shared machine swings with whatever else runs; the CPU
                // time this process spends per event is the steadier measure of the cost.
                println!(
                    "{}: authentication costs {:+.1}% throughput (best of two: {:.0} -> {:.0} events/s), {:+.1}% CPU per event (best of two: {:.2} -> {:.2} CPU-µs)",
                    off.name,
                    (off.rate - with.rate) / off.rate * 100.0,
                    off.rate,
                    with.rate,
                    (with.cpu_us - off.cpu_us) / off.cpu_us * 100.0,
                    off.cpu_us,
                    with.cpu_us,
                );
            }
        }
    }
    if on(Bench::Proof) || on(Bench::Verify) {
        proof_and_verify(scratch.path(), args, on(Bench::Proof), on(Bench::Verify))?;
    }
    if on(Bench::Query) {
        crate::cmd::bench_query::run(scratch.path(), args.query_events, args.query_days)?;
    }
    use super::bench_ingest::{run as ingest, Receiver};
    for (bench, receiver) in [
        (Bench::IngestK8s, Receiver::Kubernetes),
        (Bench::IngestOpa, Receiver::Opa),
        (Bench::IngestOtlp, Receiver::Otlp),
        (Bench::IngestSyslog, Receiver::Syslog),
    ] {
        if on(bench) {
            ingest(scratch.path(), args, receiver)?;
        }
    }
    Ok(())
}

pub(crate) fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn signer() -> Result<NoteSigner> {
    NoteSigner::generate("bench.stele.invalid/log").context("generating a key")
}

/// Builds `n` distinct entries of `size` bytes (JSON-looking, like real events).
fn make_entries(start: u64, n: usize, size: usize) -> Vec<NewEntry> {
    (0..n as u64)
        .map(|i| {
            let mut d = format!("{{\"n\":{},\"pad\":\"", start + i).into_bytes();
            d.resize(size.saturating_sub(2).max(d.len()), b'x');
            d.extend_from_slice(b"\"}");
            NewEntry::raw(d)
        })
        .collect()
}

fn disk(dir: &Path) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("disk-probe");
    let f = std::fs::File::create(&path)?;
    let chunk = vec![0x5au8; 4 << 20];
    let total: u64 = 1 << 30;
    let t = Instant::now();
    let mut off = 0u64;
    while off < total {
        f.write_all_at(&chunk, off)?;
        off += chunk.len() as u64;
    }
    f.sync_data()?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "disk: sequential write {:.0} MB/s (1 GiB, 4 MiB writes, one fdatasync)",
        total as f64 / secs / 1e6
    );
    drop(f);
    std::fs::remove_file(&path)?;
    // As the store writes: durable steps, synced pages dropped behind a window. On a machine
    // where a newly allocated page-cache page is expensive (this VM), the figure above measures
    // that cost more than the device; this one is the rate the store can reach.
    let f = std::sync::Arc::new(std::fs::File::create(&path)?);
    let mut behind = stele_store::DropBehind::default();
    let t = Instant::now();
    let mut off = 0u64;
    while off < total {
        f.write_all_at(&chunk, off)?;
        off += chunk.len() as u64;
        f.sync_data()?;
        behind.synced(&f, off);
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "disk: sequential write {:.0} MB/s as the store writes (1 GiB, 4 MiB writes each \
         fdatasynced, pages dropped from the cache {} MiB behind)",
        total as f64 / secs / 1e6,
        stele_store::CACHE_BEHIND >> 20
    );
    drop(f);
    std::fs::remove_file(&path)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let block = vec![0x33u8; 4096];
    let mut lat = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        (&f).write_all(&block)?;
        f.sync_data()?;
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "disk: 4 KiB append + fdatasync: median {:.3} ms, p99 {:.3} ms (300 appends)",
        ms(lat[lat.len() / 2]),
        ms(lat[lat.len() * 99 / 100])
    );
    std::fs::remove_file(&path)?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn hash(size: usize) {
    let data = vec![0x61u8; size];
    let n = 2_000_000u32;
    let t = Instant::now();
    let mut h = leaf_hash(&data);
    for _ in 1..n {
        h = leaf_hash(std::hint::black_box(&data));
    }
    let leaf_ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    let t = Instant::now();
    let mut acc = h;
    for _ in 0..n {
        acc = node_hash(std::hint::black_box(&acc), &h);
    }
    let node_ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    std::hint::black_box(acc);
    println!("hash: leaf of {size} B {leaf_ns:.0} ns ({:.2} M/s per core); node {node_ns:.0} ns ({:.2} M/s per core)", 1e3 / leaf_ns, 1e3 / node_ns);
}

pub(crate) fn open_store(dir: &Path) -> Result<(Store, stele_core::note::NoteVerifier)> {
    let signer = signer()?;
    let verifier = signer.verifier();
    let mut o = StoreOptions::new(dir, signer);
    o.checkpoint_interval = Duration::from_secs(1);
    o.max_queued_bytes = 1 << 30;
    Ok((Store::open(o).context("opening the bench store")?, verifier))
}

/// Appends `args.entries` entries in batches. `keyed` entries carry an event id (UUIDv7) and
/// content digest, as events from the HTTP API do, so the id index is maintained too.
fn append(dir: &Path, args: &BenchArgs, keyed: bool) -> Result<()> {
    let name = if keyed { "append-keyed" } else { "append" };
    let (store, _) = open_store(&dir.join(name))?;
    let batches = (args.entries as usize).div_ceil(args.batch);
    // Build the input first so the measurement is the log's work, not the generator's.
    let input: Vec<Vec<NewEntry>> = (0..batches)
        .map(|b| {
            let mut entries = make_entries((b * args.batch) as u64, args.batch, args.entry_size);
            if keyed {
                for e in &mut entries {
                    // Any 16 bytes that depend on the content serve as its digest here.
                    let mut d = [0u8; 16];
                    d.copy_from_slice(&leaf_hash(&e.data).0[..16]);
                    e.key = Some(EntryKey {
                        id: uuid::Uuid::now_v7().into_bytes(),
                        digest: d,
                    });
                }
            }
            entries
        })
        .collect();
    let bytes: usize = input.iter().flatten().map(|e| e.data.len()).sum();
    let t = Instant::now();
    // Pipelined: keep a few batches queued so hashing and the next write overlap the fsync.
    let mut inflight = std::collections::VecDeque::new();
    for batch in input {
        inflight.push_back(store.append_pipelined(batch)?);
        if inflight.len() >= 4 {
            if let Some(rx) = inflight.pop_front() {
                rx.blocking_recv().context("writer gone")??;
            }
        }
    }
    for rx in inflight {
        rx.blocking_recv().context("writer gone")??;
    }
    let secs = t.elapsed().as_secs_f64();
    let n = store.size();
    let commits = store.metrics().commits.get();
    println!(
        "{name} (library, batches of {}, durable{}): {:.0} events/s, {:.0} MB/s of entries, {} group commits, {:.1} s for {n} events",
        args.batch,
        if keyed { ", with event ids indexed" } else { "" },
        n as f64 / secs,
        bytes as f64 / secs / 1e6,
        commits,
        secs
    );
    println!("{name}: peak RSS {} MiB", peak_rss_mib());
    store.close()?;
    Ok(())
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

/// The highest resident set size seen while it runs, sampled every 5 ms by a thread.
struct PeakRss {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl PeakRss {
    fn start() -> PeakRss {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = current_rss_mib();
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(current_rss_mib());
                std::thread::sleep(Duration::from_millis(5));
            }
            peak.max(current_rss_mib())
        });
        PeakRss { stop, thread }
    }

    /// Stops sampling; the peak in MiB.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

/// Resident memory in MiB, less what the allocator has handed back lazily (`MADV_FREE`: the
/// kernel reclaims those pages whenever it needs memory, and counts them resident until then).
fn current_rss_mib() -> u64 {
    let Ok(rollup) = std::fs::read_to_string("/proc/self/smaps_rollup") else {
        return 0;
    };
    let kib = |field: &str| {
        rollup
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    kib("Rss:").saturating_sub(kib("LazyFree:")) / 1024
}

fn sample_event(i: u64, size: usize) -> String {
    let mut e = format!(
        "{{\"actor\":{{\"type\":\"user\",\"id\":\"user-{}\",\"ip\":\"10.1.2.3\"}},\"action\":\"authz.check\",\"resource\":{{\"type\":\"document\",\"id\":\"doc-{i}\"}},\"outcome\":\"allow\",\"policy\":{{\"id\":\"rbac\",\"version\":\"7\"}},\"tenant\":\"acme\",\"source\":\"bench\",\"reason\":\"",
        i % 1000
    );
    // Pad the reason so the stored entry (with id and time added, ~90 B) is about `size` bytes.
    let target = size.saturating_sub(90);
    loop {
        e.push('r');
        if e.len() + 2 >= target {
            break;
        }
    }
    e.push_str("\"}");
    e
}

/// One HTTP bench's result.
struct HttpRate {
    name: &'static str,
    /// Events acknowledged per second.
    rate: f64,
    /// CPU time of this whole process (server, store and client) per event, in µs.
    cpu_us: f64,
}

/// CPU time (user + system) this process has used so far.
pub(crate) fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Runs the HTTP benches on a fresh log in `dir`; with `auth`, every request carries a writer
/// token and passes the production authentication path (token file check, constant-time
/// digest comparison, per-principal rate limiter with a limit the bench never reaches).
/// Returns each bench's name and rate.
fn http(
    dir: &Path,
    args: &BenchArgs,
    batch: bool,
    single: bool,
    auth: bool,
) -> Result<Vec<HttpRate>> {
    let (store, _) = open_store(dir)?;
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(num_cpus())
        .enable_all()
        .build()?;
    let config = stele_server::ServerConfig::default();
    let state = stele_server::AppState::new(store.clone(), config);
    let token = if auth {
        let token = bench_token(dir, stele_auth::Role::Writer, &[])?;
        let settings = stele_server::auth::AuthSettings {
            rate_limit: std::num::NonZeroU32::new(u32::MAX / 4),
            ..Default::default()
        };
        enable_auth(dir, &store, &state, settings)?;
        Some(token)
    } else {
        None
    };
    let label = if auth { ", auth on" } else { "" };
    let mut rates = Vec::new();
    let server = BenchServer::start(&server_rt, state)?;
    let addr = server.addr;
    let url = format!("http://{addr}/v1/events");
    // Named apart from the server's workers, so a profile tells the load generator's share.
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(num_cpus())
        .thread_name("bench-client")
        .enable_all()
        .build()?;
    let dur = Duration::from_secs(args.seconds);
    if batch {
        let per_req = 1000usize;
        let body: String = (0..per_req as u64)
            .map(|i| sample_event(i, args.entry_size) + "\n")
            .collect();
        let (n, secs, cpu) = client_rt.block_on(load(
            &url,
            args.batch_connections,
            dur,
            body,
            "application/x-ndjson",
            per_req as u64,
            token.as_deref(),
        ))?;
        let r = HttpRate {
            name: "http batched",
            rate: n as f64 / secs,
            cpu_us: cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
        };
        println!("http batched (NDJSON, {per_req} events/request, {} connections{label}): {:.0} events/s over {secs:.1} s, {:.2} CPU-µs/event", args.batch_connections, r.rate, r.cpu_us);
        rates.push(r);
    }
    if single {
        let body = sample_event(1, args.entry_size);
        let (n, secs, cpu) = client_rt.block_on(load(
            &url,
            args.connections,
            dur,
            body,
            "application/json",
            1,
            token.as_deref(),
        ))?;
        let commits_before = store.metrics().commits.get();
        let r = HttpRate {
            name: "http single",
            rate: n as f64 / secs,
            cpu_us: cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
        };
        println!("http single (1 event/request, {} connections{label}): {:.0} events/s over {secs:.1} s, {:.2} CPU-µs/event ({} group commits in all so far)", args.connections, r.rate, r.cpu_us, commits_before);
        rates.push(r);
    }
    server.stop(&server_rt);
    store.close()?;
    Ok(rates)
}

/// Issues a token of `role` bound to `tenants` in the data directory `dir`; the secret.
///
/// # Errors
/// The token file cannot be written, or the clock is unusable.
pub(crate) fn bench_token(dir: &Path, role: stele_auth::Role, tenants: &[&str]) -> Result<String> {
    let spec = stele_auth::NewToken {
        role: Some(role),
        tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
        ..stele_auth::NewToken::default()
    };
    let (token, _) = stele_auth::TokenStore::new(dir)
        .create(&spec, "bench", bench_now()?)
        .context("creating a bench token")?;
    Ok(token.expose().to_owned())
}

/// Turns authentication on for `state`, whose log `store` lives in `dir`: every request then
/// passes the production authentication path and audited ones are meta-logged.
///
/// # Errors
/// The token file cannot be read, or authentication was already on.
pub(crate) fn enable_auth(
    dir: &Path,
    store: &Store,
    state: &stele_server::AppState,
    settings: stele_server::auth::AuthSettings,
) -> Result<()> {
    let limits = stele_server::ServerConfig::default().limits;
    let auth = stele_server::auth::Auth::open(dir, store.clone(), limits, settings)
        .context("turning authentication on")?;
    if state.enable_auth(auth).is_err() {
        bail!("authentication was already on");
    }
    Ok(())
}

/// A server on a loopback port, run by a bench's runtime until [`BenchServer::stop`].
pub(crate) struct BenchServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl BenchServer {
    /// Serves `state` on `rt`.
    ///
    /// # Errors
    /// No loopback port could be bound.
    pub(crate) fn start(
        rt: &tokio::runtime::Runtime,
        state: stele_server::AppState,
    ) -> Result<BenchServer> {
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = rt.spawn(stele_server::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Ok(BenchServer { addr, stop, task })
    }

    /// Shuts it down and waits until it has.
    pub(crate) fn stop(self, rt: &tokio::runtime::Runtime) {
        let _ = self.stop.send(());
        let _ = rt.block_on(self.task);
    }
}

/// The 1-minute load average (other work on the machine shares its cores).
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn bench_now() -> Result<stele_core::timestamp::Timestamp> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    Ok(stele_core::timestamp::Timestamp::from_unix_nanos(
        i64::try_from(nanos).context("the clock is past 2262")?,
    ))
}

/// Sends `body` from `conns` concurrent connections for `dur` with the bench load generator
/// ([`super::bench_load`]); returns (events acked, secs, CPU time the process spent meanwhile).
async fn load(
    url: &str,
    conns: usize,
    dur: Duration,
    body: String,
    ctype: &'static str,
    per_req: u64,
    token: Option<&str>,
) -> Result<(u64, f64, Duration)> {
    let mut load = super::bench_load::Load::post(url, ctype, conns, dur, per_req)?;
    if let Some(t) = token {
        load.headers.push(("Authorization", format!("Bearer {t}")));
    }
    let body = hyper::body::Bytes::from(body);
    let cpu_start = process_cpu();
    let measured = super::bench_load::run(load, move |_| Some(body.clone())).await?;
    let cpu = process_cpu().saturating_sub(cpu_start);
    Ok((measured.events, measured.secs, cpu))
}

fn proof_and_verify(dir: &Path, args: &BenchArgs, proof: bool, verify: bool) -> Result<()> {
    let n = args.proof_log_size;
    // Entries of the benched size: proof cost depends only on the tree, but verification
    // re-hashes every entry, so its rate is only meaningful at the real size.
    let entry_size = args.entry_size;
    let ldir = dir.join("proof");
    let (store, verifier) = open_store(&ldir)?;
    let rss0 = current_rss_mib();
    let t = Instant::now();
    let batch = 65_536usize;
    let mut start = 0u64;
    let mut inflight = std::collections::VecDeque::new();
    while start < n {
        let k = batch.min((n - start) as usize);
        inflight.push_back(store.append_pipelined(make_entries(start, k, entry_size))?);
        if inflight.len() >= 4 {
            if let Some(rx) = inflight.pop_front() {
                rx.blocking_recv().context("writer gone")??;
            }
        }
        start += k as u64;
        if start % 1_000_000 < batch as u64 {
            print!("\rbuilding a {n}-entry log: {start}");
            let _ = std::io::stdout().flush();
        }
    }
    for rx in inflight {
        rx.blocking_recv().context("writer gone")??;
    }
    println!("\rbuilt a {n}-entry log of {entry_size}-byte entries in {:.1} s; RSS {} MiB before, {} MiB after", t.elapsed().as_secs_f64(), rss0, current_rss_mib());
    let cp = store.publish_checkpoint()?;
    if proof {
        let mut lat = Vec::with_capacity(20_000);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let index = x % cp.size;
            let t = Instant::now();
            let p = store.inclusion_proof(index, cp.size)?;
            lat.push(t.elapsed());
            std::hint::black_box(p);
        }
        lat.sort();
        let q = |f: f64| lat[((lat.len() as f64 * f) as usize).min(lat.len() - 1)];
        println!(
            "proof: inclusion in a {}-entry log: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs (20,000 random indices, warm page cache)",
            cp.size,
            q(0.5).as_secs_f64() * 1e6,
            q(0.99).as_secs_f64() * 1e6,
            q(1.0).as_secs_f64() * 1e6
        );
    }
    store.close()?;
    drop(store);
    if verify {
        // What building the log freed would otherwise stay resident for the allocator's purge
        // delay and hide what verification itself needs.
        crate::release_free_memory();
        let rss0 = current_rss_mib();
        let peak = PeakRss::start();
        let t = Instant::now();
        let report =
            stele_store::verify_dir(&ldir, &verifier).map_err(|e| anyhow::anyhow!("{e}"))?;
        let secs = t.elapsed().as_secs_f64();
        let peak = peak.stop();
        println!("verify: offline over {} entries of {entry_size} B: {:.0} entries/s, {:.0} MB/s ({secs:.1} s); RSS {} MiB before, peak {} MiB during", report.entries, report.entries as f64 / secs, (report.entries as f64 * entry_size as f64) / secs / 1e6, rss0, peak);
    }
    Ok(())
}
