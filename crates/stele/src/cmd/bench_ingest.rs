//! `stele bench ingest-*`: the integrations' receivers under load, each counted only once its
//! events are durable (an HTTP 200 is sent after the fsync; for syslog, which has no answer,
//! the log's durable size is counted).
//!
//! Kubernetes and OPA records get ids from their bytes, so every record sent must differ (a
//! repeat would be answered as a duplicate without being written): the Kubernetes bodies are
//! a template whose `auditID`s are rewritten per request, and the OPA bodies are distinct
//! decision arrays gzip-compressed before the clock starts, as OPA sends them.
//!
//! Server and client share the machine's cores, so besides the rate each bench prints CPU
//! time per event: the receiver's own work measured alone on one thread (decode, map,
//! validate and encode one request's records; no HTTP, no store), and during the run the
//! store's writer thread and every other thread (server and client) separately. Those
//! figures hold still when other work on the machine moves the rate.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::AsyncWriteExt;

use super::bench::{load_average, num_cpus, open_store, BenchArgs};

/// Which receiver to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receiver {
    /// `POST /v1/ingest/kubernetes`, EventLists as kube-apiserver sends them.
    Kubernetes,
    /// `POST /v1/ingest/opa`, gzip JSON arrays as OPA sends them.
    Opa,
    /// `POST /v1/logs`, OTLP protobuf as the SDKs send it.
    Otlp,
    /// The syslog listener, octet-counted RFC 5424 over TCP.
    Syslog,
}

/// Records per HTTP request (kube-apiserver's default webhook batch is 400; OPA's upload
/// size is bounded in bytes, 32 KiB compressed by default).
const PER_REQUEST: usize = 1000;
/// Concurrent senders.
const CONNECTIONS: usize = 8;

/// A Metadata-level audit Event like kube-apiserver writes; `AUDITID000000000` is replaced.
const K8S_EVENT: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a6299d35-5759-4f67-9bed-AUDITID000000000","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/payments/serviceaccounts/ledger-sa","verb":"get","user":{"username":"system:serviceaccount:payments:ledger-operator","uid":"d40a1a15-8b96-4ffa-a56b-5a834583532e","groups":["system:serviceaccounts","system:serviceaccounts:payments","system:authenticated"]},"sourceIPs":["10.128.0.16"],"userAgent":"ledger-operator/v1.4.2 (linux/amd64) kubernetes/abcdef","objectRef":{"resource":"serviceaccounts","namespace":"payments","name":"ledger-sa","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-07-06T08:26:58.687123Z","stageTimestamp":"2026-07-06T08:26:58.689871Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by RoleBinding \"ledger-operator/payments\" of Role \"ledger-reader\" to ServiceAccount \"ledger-operator/payments\""}}"#;
const K8S_SLOT: &str = "AUDITID000000000";

fn opa_decision(n: u64) -> String {
    format!(
        r#"{{"labels":{{"app":"billing","id":"1780d507-aea2-45cc-ae50-fa153c8e4a5a","version":"1.2.0"}},"decision_id":"4ca636c1-55e4-417a-b1d8-{n:012x}","bundles":{{"authz":{{"revision":"W3sibCI6InN5cy9jYXRhbG9nIiwicyI6NDA3MX1d"}}}},"path":"http/example/authz/allow","input":{{"method":"GET","path":["salary","u{user}"],"user":"u{user}"}},"result":{{"allow":{allow}}},"requested_by":"10.1.2.3:59943","timestamp":"2026-07-06T08:26:58.{frac:06}Z"}}"#,
        user = n % 5000,
        allow = !n.is_multiple_of(7),
        frac = n % 1_000_000,
    )
}

fn syslog_message(n: u64) -> Vec<u8> {
    let msg = format!(
        r#"<86>1 2026-07-06T08:26:58.{:06}Z fw-{} authd 4242 LOGIN [stele@32473 actor="u{}" action="auth.login" resource="vpn" resource_type="service" outcome="{}"] session opened for user u{} from 198.51.100.7 port 51122"#,
        n % 1_000_000,
        n % 8,
        n % 5000,
        if n.is_multiple_of(9) { "deny" } else { "allow" },
        n % 5000
    );
    let mut framed = format!("{} ", msg.len()).into_bytes();
    framed.extend_from_slice(msg.as_bytes());
    framed
}

fn otlp_body() -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    let kv = |k: &str, v: &str| KeyValue {
        key: k.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_owned())),
        }),
        ..Default::default()
    };
    let records = (0..PER_REQUEST as u64)
        .map(|n| LogRecord {
            time_unix_nano: 1_783_326_418_687_000_000 + n,
            observed_time_unix_nano: 1_783_326_418_687_000_000 + n,
            severity_number: 9,
            severity_text: "INFO".to_owned(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "read of invoice-{n} allowed"
                ))),
            }),
            attributes: vec![
                kv("enduser.id", &format!("u{}", n % 5000)),
                kv("stele.action", "document.read"),
                kv("stele.resource.type", "invoice"),
                kv("stele.resource.id", &format!("invoice-{n}")),
                kv("stele.outcome", "allow"),
                kv("stele.policy.id", "billing-rbac"),
            ],
            trace_id: vec![0x5b; 16],
            span_id: vec![0xee; 8],
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "billing-api")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// One OPA upload: a gzip array of [`PER_REQUEST`] distinct decisions (request `r`).
fn opa_body(r: u64) -> Vec<u8> {
    let mut json = b"[".to_vec();
    for i in 0..PER_REQUEST as u64 {
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(opa_decision(r * PER_REQUEST as u64 + i).as_bytes());
    }
    json.push(b']');
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = z.write_all(&json);
    z.finish().unwrap_or_default()
}

/// About 1 MiB of distinct framed syslog messages numbered from `first`, and how many.
fn syslog_chunk(first: u64) -> (Vec<u8>, u64) {
    let mut chunk = Vec::with_capacity(1 << 20);
    let mut n = 0u64;
    while chunk.len() < 1 << 20 {
        chunk.extend_from_slice(&syslog_message(first + n));
        n += 1;
    }
    (chunk, n)
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the struct we own; the clock id is always valid.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Microseconds of CPU per event the receiver spends on one request's worth of input
/// (`input`: the request body, or for syslog a chunk of the stream), on this thread alone:
/// what the server does between reading the bytes and handing entries to the store.
/// Repeated for at least half a second of CPU.
fn receiver_alone(receiver: Receiver, input: &impl ReceiverInput) -> Result<f64> {
    use stele_server::handlers::ingest::{self as ingest, k8s, opa, otlp};
    let config = stele_server::ServerConfig::default();
    let limits = config.limits;
    let ingest_limits = ingest::IngestLimits {
        max_body_bytes: config.max_body_bytes,
        max_decoded_bytes: config.max_decoded_bytes,
    };
    let now = ingest::now().map_err(|e| anyhow::anyhow!("{e}"))?;
    let max = config.max_events;
    let once = || -> Result<usize> {
        let records = match receiver {
            Receiver::Kubernetes => k8s::map_body(input.bytes(), max, &limits),
            Receiver::Opa => ingest::gunzip(input.bytes(), ingest_limits.max_decoded_bytes)
                .and_then(|b| opa::map_body(&b, max, &limits)),
            Receiver::Otlp => otlp::map_body(input.bytes(), otlp::Encoding::Protobuf, max, &limits),
            Receiver::Syslog => Ok(stele_server::syslog::map_stream(
                input.bytes(),
                "127.0.0.1:51122",
            )),
        }
        .map_err(|e| anyhow::anyhow!("the bench's own input was refused: {e}"))?;
        let n = records.len();
        let (prepared, problems) = ingest::prepare_all(records, &limits, now);
        if let Some(p) = problems.first() {
            bail!(
                "the bench's own input was refused: record {}: {}: {}",
                p.record,
                p.path,
                p.message
            );
        }
        drop(std::hint::black_box(prepared));
        Ok(n)
    };
    once()?; // warm up
    let start = thread_cpu_seconds();
    let mut events = 0usize;
    while thread_cpu_seconds() - start < 0.5 {
        events += once()?;
    }
    Ok((thread_cpu_seconds() - start) * 1e6 / events.max(1) as f64)
}

/// What [`receiver_alone`] feeds a receiver.
trait ReceiverInput {
    fn bytes(&self) -> &[u8];
}
impl ReceiverInput for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}
impl ReceiverInput for (Vec<u8>, u64) {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// CPU seconds used so far by this process, and by the store's writer thread.
struct ThreadCpu {
    total: f64,
    writer: f64,
}

impl ThreadCpu {
    fn now() -> Self {
        ThreadCpu {
            total: crate::cmd::bench::process_cpu().as_secs_f64(),
            writer: named_threads_cpu("stele-writer"),
        }
    }

    fn since(&self, earlier: &ThreadCpu) -> ThreadCpu {
        ThreadCpu {
            total: self.total - earlier.total,
            writer: self.writer - earlier.writer,
        }
    }
}

/// CPU seconds (user + system) of this process's threads named `name`, from
/// `/proc/self/task/*/stat` (clock ticks, so 10 ms resolution).
fn named_threads_cpu(name: &str) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            if comm.trim_end() != name {
                return None;
            }
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
            let rest = stat.rsplit_once(')')?.1;
            let mut fields = rest.split_whitespace().skip(11);
            let utime: f64 = fields.next()?.parse().ok()?;
            let stime: f64 = fields.next()?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .sum()
}

/// Runs one receiver's bench and prints its figure.
///
/// # Errors
/// Store, server or client failures, or a request that was not answered 200.
pub fn run(dir: &Path, args: &BenchArgs, receiver: Receiver) -> Result<()> {
    let name = match receiver {
        Receiver::Kubernetes => "ingest-k8s",
        Receiver::Opa => "ingest-opa",
        Receiver::Otlp => "ingest-otlp",
        Receiver::Syslog => "ingest-syslog",
    };
    let (store, _) = open_store(&dir.join(name))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(num_cpus())
        .enable_all()
        .build()?;
    let state = stele_server::AppState::new(store.clone(), stele_server::ServerConfig::default());
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let syslog_listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let syslog_addr = syslog_listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut http_stop = stop_rx.clone();
    let server = rt.spawn(stele_server::serve(listener, state.clone(), async move {
        let _ = http_stop.wait_for(|s| *s).await;
    }));
    let syslog = rt.spawn(stele_server::syslog::serve(
        syslog_listener,
        state,
        None,
        stop_rx,
    ));
    let dur = Duration::from_secs(args.seconds);
    let (events, secs, bytes, alone) = match receiver {
        Receiver::Kubernetes => {
            let mut template =
                br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":["#
                    .to_vec();
            let mut slots = Vec::new();
            for i in 0..PER_REQUEST {
                if i > 0 {
                    template.push(b',');
                }
                let at = K8S_EVENT.find(K8S_SLOT).context("slot")?;
                slots.push(template.len() + at);
                template.extend_from_slice(K8S_EVENT.as_bytes());
            }
            template.extend_from_slice(b"]}");
            let bytes = template.len() as u64;
            let make = move |request: u64| {
                let mut body = template.clone();
                for (i, &at) in slots.iter().enumerate() {
                    let id = format!("{:016x}", request * PER_REQUEST as u64 + i as u64);
                    body[at..at + K8S_SLOT.len()].copy_from_slice(id.as_bytes());
                }
                body
            };
            let alone = receiver_alone(receiver, &make(u64::MAX / 2 / PER_REQUEST as u64))?;
            let cpu = ThreadCpu::now();
            let url = format!("http://{addr}/v1/ingest/kubernetes");
            let (n, secs) = rt.block_on(load(url, dur, make, "application/json", None))?;
            (n, secs, bytes, Some((alone, cpu)))
        }
        Receiver::Opa => {
            // Enough distinct bodies for the run at a rate well above the target.
            let requests = (args.seconds as usize * 400_000 / PER_REQUEST).max(8);
            print!("ingest-opa: compressing {requests} distinct uploads first…");
            let _ = std::io::stdout().flush();
            let bodies: Vec<Vec<u8>> = (0..requests as u64).map(opa_body).collect();
            println!(" done");
            let bytes = bodies.first().map_or(0, |b| b.len() as u64);
            let bodies = Arc::new(bodies);
            let make = move |request: u64| {
                let i = usize::try_from(request).unwrap_or(usize::MAX);
                bodies.get(i).cloned().unwrap_or_default()
            };
            let alone = receiver_alone(receiver, &opa_body(u64::MAX / 2 / PER_REQUEST as u64))?;
            let cpu = ThreadCpu::now();
            let url = format!("http://{addr}/v1/ingest/opa");
            let (n, secs) = rt.block_on(load(url, dur, make, "application/json", Some("gzip")))?;
            (n, secs, bytes, Some((alone, cpu)))
        }
        Receiver::Otlp => {
            let body = otlp_body();
            let bytes = body.len() as u64;
            let alone = receiver_alone(receiver, &body)?;
            let cpu = ThreadCpu::now();
            let url = format!("http://{addr}/v1/logs");
            let (n, secs) = rt.block_on(load(
                url,
                dur,
                move |_| body.clone(),
                "application/x-protobuf",
                None,
            ))?;
            (n, secs, bytes, Some((alone, cpu)))
        }
        Receiver::Syslog => {
            let alone = receiver_alone(receiver, &syslog_chunk(u64::MAX / 4))?;
            let cpu = ThreadCpu::now();
            let (n, secs) = rt.block_on(syslog_load(syslog_addr, dur, &store))?;
            (n, secs, 0, Some((alone, cpu)))
        }
    };
    let _ = stop_tx.send(true);
    let _ = rt.block_on(server);
    let _ = rt.block_on(syslog);
    let what = match receiver {
        Receiver::Kubernetes => format!("EventLists of {PER_REQUEST} Metadata-level audit Events ({bytes} B/request), {CONNECTIONS} connections"),
        Receiver::Opa => format!("gzip arrays of {PER_REQUEST} decisions ({bytes} B/request compressed), {CONNECTIONS} connections"),
        Receiver::Otlp => format!("protobuf requests of {PER_REQUEST} log records ({bytes} B/request), {CONNECTIONS} connections"),
        Receiver::Syslog => format!("octet-counted RFC 5424 over TCP, {CONNECTIONS} connections, counted when durable"),
    };
    println!(
        "{name}: {:.0} events/s durable over {secs:.1} s ({events} events; {what})",
        events as f64 / secs
    );
    if let Some((alone, cpu)) = alone {
        let used = ThreadCpu::now().since(&cpu);
        let per = |s: f64| s * 1e6 / events.max(1) as f64;
        println!(
            "{name}: CPU per event: receiver alone {alone:.2} µs (one thread: decode, map, \
             validate, encode); in the run {:.2} µs = writer thread {:.2} + other threads {:.2} \
             (server and client); load average {}",
            per(used.total),
            per(used.writer),
            per(used.total - used.writer),
            load_average()
        );
    }
    store.close()?;
    Ok(())
}

/// Posts bodies from [`CONNECTIONS`] senders for `dur`; request `r` (counted across senders)
/// gets `make(r)`. Returns (events acknowledged, seconds).
async fn load<F>(
    url: String,
    dur: Duration,
    make: F,
    content_type: &'static str,
    encoding: Option<&'static str>,
) -> Result<(u64, f64)>
where
    F: Fn(u64) -> Vec<u8> + Send + Sync + 'static,
{
    let mut load =
        super::bench_load::Load::post(&url, content_type, CONNECTIONS, dur, PER_REQUEST as u64)?;
    if let Some(e) = encoding {
        load.headers.push(("Content-Encoding", e.to_owned()));
    }
    let measured = super::bench_load::run(load, move |r| {
        let body = make(r);
        (!body.is_empty()).then(|| hyper::body::Bytes::from(body))
    })
    .await
    .context("the ingest bench")?;
    Ok((measured.events, measured.secs))
}

/// Streams syslog messages from [`CONNECTIONS`] connections for `dur`, then waits until the
/// log holds all of them durably. Returns (events, seconds until the last was durable).
async fn syslog_load(
    addr: std::net::SocketAddr,
    dur: Duration,
    store: &stele_store::Store,
) -> Result<(u64, f64)> {
    // One 1 MiB chunk of distinct messages per connection, written over and over.
    let chunks: Vec<(Vec<u8>, u64)> = (0..CONNECTIONS as u64)
        .map(|c| syslog_chunk(c * 1_000_000))
        .collect();
    let before = store.size();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (chunk, per_chunk) in chunks {
        tasks.push(tokio::spawn(async move {
            let mut sock = tokio::net::TcpStream::connect(addr).await?;
            let mut sent = 0u64;
            while start.elapsed() < dur {
                sock.write_all(&chunk).await?;
                sent += per_chunk;
            }
            sock.shutdown().await?;
            Ok::<u64, std::io::Error>(sent)
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await.context("syslog sender")?.context("syslog sender")?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.size() - before < sent {
        if Instant::now() > deadline {
            bail!(
                "only {} of {sent} syslog messages became durable",
                store.size() - before
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((sent, start.elapsed().as_secs_f64()))
}
