//! Crash consistency of the real binary: concurrent clients append while `stele serve` is
//! killed with SIGKILL at a random moment, round after round on the same data directory.
//! After every crash the directory must verify offline, and after every restart every
//! acknowledged event must be at its acknowledged index with its id, its content and its leaf
//! hash; client ids stay idempotent across crashes.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::Value;
use stele_tests::{
    acks, client_fields, event, event_with_id, frames, leaf_hash, new_id, start_and_kill_after,
    verify, Ack, Rng, Server,
};
use tlog_tiles::{check_tree, Checkpoint, Hash};

const ROUNDS: usize = 15;
const CLIENTS: usize = 8;
/// Acknowledged client-id events re-sent after each restart.
const RETRIES_PER_ROUND: usize = 20;
const SERVE_ARGS: [&str; 2] = ["--checkpoint-interval", "200ms"];

/// An acknowledged event: what was sent and what the log answered.
#[derive(Clone, Debug)]
struct Acked {
    sent: Value,
    ack: Ack,
}

/// What one client thread saw in one round.
#[derive(Default)]
struct ClientLog {
    acked: Vec<Acked>,
    /// Requests sent but never answered (the server died first).
    in_flight: Vec<Value>,
    /// Answers other than 200 or a transport error: always a bug here.
    unexpected: Vec<String>,
}

/// Appends until the server stops answering (or 20 s pass, which never happens).
fn client(
    server_url: String,
    http: reqwest::blocking::Client,
    seed: u64,
    counter: Arc<AtomicU64>,
    go: Arc<Barrier>,
) -> ClientLog {
    let mut rng = Rng::new(seed);
    let mut log = ClientLog::default();
    go.wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        // Mostly small requests; now and then one large enough to span several frames and
        // bundles, so a crash can land in the middle of a multi-frame write.
        let n = if rng.chance(1, 2) {
            1
        } else if rng.chance(1, 20) {
            rng.range(100, 400)
        } else {
            rng.range(2, 6)
        };
        let events: Vec<Value> = (0..n)
            .map(|_| {
                let k = counter.fetch_add(1, Ordering::Relaxed);
                if rng.chance(2, 5) {
                    event_with_id(k, &new_id())
                } else {
                    event(k)
                }
            })
            .collect();
        let body = if n == 1 {
            events[0].clone()
        } else {
            Value::Array(events.clone())
        };
        let sent = http
            .post(format!("{server_url}/v1/events"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .and_then(|r| {
                let status = r.status().as_u16();
                r.bytes().map(|b| (status, b))
            });
        match sent {
            Ok((200, bytes)) => {
                let answer: Value = serde_json::from_slice(&bytes).unwrap();
                let got = acks(&answer);
                if got.len() != events.len() {
                    log.unexpected.push(format!(
                        "{} acks for {} events: {answer}",
                        got.len(),
                        events.len()
                    ));
                }
                for (sent, ack) in events.into_iter().zip(got) {
                    log.acked.push(Acked { sent, ack });
                }
            }
            Ok((status, bytes)) => {
                log.unexpected.push(format!(
                    "status {status}: {}",
                    String::from_utf8_lossy(&bytes)
                ));
            }
            Err(_) => {
                log.in_flight.push(body);
                break;
            }
        }
    }
    log
}

/// Everything the test knows about the log so far.
#[derive(Default)]
struct Knowledge {
    /// Acknowledged entries by index.
    by_index: BTreeMap<u64, Acked>,
}

impl Knowledge {
    /// Records a fresh (non-duplicate) acknowledgement; an index acknowledged twice means the
    /// log lost an acknowledged entry and reused its index.
    fn record(&mut self, a: Acked) {
        assert!(
            !a.ack.duplicate,
            "a fresh event was answered as a duplicate: {:?}",
            a.ack
        );
        if let Some(old) = self.by_index.get(&a.ack.index) {
            panic!(
                "index {} acknowledged twice: first for id {} ({}), now for id {} ({}); an acknowledged entry was lost",
                a.ack.index, old.ack.id, old.sent, a.ack.id, a.sent
            );
        }
        self.by_index.insert(a.ack.index, a);
    }
}

/// Checks that `a` is in the log exactly as acknowledged.
fn check_present(server: &Server, a: &Acked) {
    let (status, body) = server.get(&format!("/v1/events/{}", a.ack.index));
    assert_eq!(
        status,
        200,
        "acknowledged entry {} ({}) is gone after the crash: {}",
        a.ack.index,
        a.ack.id,
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        leaf_hash(&body),
        a.ack.leaf_hash,
        "entry {}: stored bytes do not hash to the acknowledged leaf hash",
        a.ack.index
    );
    let stored: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        stored["id"].as_str(),
        Some(a.ack.id.as_str()),
        "entry {}: wrong id",
        a.ack.index
    );
    if let Some(id) = a.sent.get("id") {
        assert_eq!(Some(a.ack.id.as_str()), id.as_str(), "client id not kept");
        // The id index is derived data, rebuilt by recovery: lookups by id still work.
        let (status, by_id) = server.get(&format!("/v1/events/{}", a.ack.id));
        assert_eq!(status, 200, "GET /v1/events/{} after the crash", a.ack.id);
        assert_eq!(
            by_id, body,
            "GET by id and by index {} disagree",
            a.ack.index
        );
    }
    assert_eq!(
        client_fields(&stored),
        client_fields(&a.sent),
        "entry {}: content differs from what was sent",
        a.ack.index
    );
}

/// Re-sends requests that were in flight when the server died. Each event must come back
/// either as a duplicate of an entry that really is in the log, or as a new entry.
fn retry_in_flight(server: &Server, requests: &[Value], known: &mut Knowledge) {
    let (mut dups, mut fresh, mut partial) = (0, 0, 0);
    for body in requests {
        let events: Vec<Value> = match body {
            Value::Array(a) => a.clone(),
            one => vec![one.clone()],
        };
        let size_before = server.size();
        let (status, answer) = server.post_json(body);
        assert_eq!(status, 200, "retry of an unanswered request: {answer}");
        let got = acks(&answer);
        assert_eq!(got.len(), events.len(), "{answer}");
        let mut request_dups = 0;
        let mut fresh_with_id = 0;
        for (sent, ack) in events.into_iter().zip(got) {
            let a = Acked { sent, ack };
            if a.ack.duplicate {
                assert!(
                    a.sent.get("id").is_some(),
                    "an event without a client id was answered as a duplicate: {answer}"
                );
                assert!(
                    a.ack.index < size_before,
                    "duplicate names index {} beyond the log ({size_before})",
                    a.ack.index
                );
                check_present(server, &a);
                request_dups += 1;
            } else {
                fresh_with_id += usize::from(a.sent.get("id").is_some());
                known.record(a);
            }
        }
        // Part of the request stored and part not: the crash tore it (reported, not a
        // broken promise: nothing of it had been acknowledged, and client ids make the
        // retry safe).
        partial += usize::from(request_dups > 0 && fresh_with_id > 0);
        dups += request_dups;
        fresh += answer["entries"].as_array().unwrap().len() - request_dups;
    }
    if !requests.is_empty() {
        eprintln!(
            "retried {} unanswered requests: {dups} events had been stored, {fresh} were new; {partial} requests were partly stored",
            requests.len()
        );
    }
}

/// Re-sends acknowledged client-id events: each must be answered as a duplicate with its
/// original index and leaf hash, and the log must not grow.
fn retry_acknowledged(server: &Server, known: &Knowledge, rng: &mut Rng) {
    let with_id: Vec<&Acked> = known
        .by_index
        .values()
        .filter(|a| a.sent.get("id").is_some())
        .collect();
    if with_id.is_empty() {
        return;
    }
    let size_before = server.size();
    for _ in 0..RETRIES_PER_ROUND {
        let a = with_id[usize::try_from(rng.range(0, with_id.len() as u64 - 1)).unwrap()];
        let (status, answer) = server.post_json(&a.sent);
        assert_eq!(
            status, 200,
            "retry of acknowledged event {}: {answer}",
            a.ack.id
        );
        let got = acks(&answer);
        assert_eq!(got.len(), 1);
        assert!(
            got[0].duplicate,
            "retry of acknowledged event {} was appended again: {answer}",
            a.ack.id
        );
        assert_eq!(
            got[0].index, a.ack.index,
            "retry answered with another index"
        );
        assert_eq!(
            got[0].leaf_hash, a.ack.leaf_hash,
            "retry answered with another leaf hash"
        );
        assert_eq!(got[0].id, a.ack.id);
    }
    assert_eq!(
        server.size(),
        size_before,
        "idempotent retries grew the log"
    );
}

/// Reads the whole log through the entry bundles and checks every acknowledged entry, that
/// ids are unique and that times never decrease.
fn check_whole_log(server: &Server, known: &Knowledge) {
    let size = server.size();
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut n = 0u64;
    while n * 256 < size {
        let width = (size - n * 256).min(256);
        let path = if width == 256 {
            format!("/tile/entries/{}", tile_index(n))
        } else {
            format!("/tile/entries/{}.p/{width}", tile_index(n))
        };
        let (status, body) = server.get(&path);
        assert_eq!(status, 200, "GET {path}");
        let bundle = frames::parse_bundle(&body);
        assert_eq!(
            bundle.len() as u64,
            width,
            "{path} holds {} entries",
            bundle.len()
        );
        entries.extend(bundle.into_iter().map(<[u8]>::to_vec));
        n += 1;
    }
    let mut ids = HashSet::new();
    let mut last_time = String::new();
    for (i, e) in entries.iter().enumerate() {
        let v: Value =
            serde_json::from_slice(e).unwrap_or_else(|err| panic!("entry {i} is not JSON: {err}"));
        let id = v["id"].as_str().unwrap().to_owned();
        assert!(
            ids.insert(id.clone()),
            "id {id} appears twice in the log (second at {i})"
        );
        let time = v["time"].as_str().unwrap().to_owned();
        assert!(
            time >= last_time,
            "time goes backwards at entry {i}: {last_time} then {time}"
        );
        last_time = time;
    }
    for (index, a) in &known.by_index {
        let e = &entries[usize::try_from(*index).unwrap()];
        assert_eq!(
            leaf_hash(e),
            a.ack.leaf_hash,
            "entry {index} in its bundle differs from the acknowledged one"
        );
    }
    eprintln!(
        "whole log: {size} entries, {} acknowledged to this test",
        known.by_index.len()
    );
}

/// The last signed checkpoint seen, and the rule that every later one extends it: a crash
/// must never fork or shrink the log that a signed checkpoint vouched for.
#[derive(Default)]
struct CheckpointChain {
    last: Option<(u64, Hash)>,
}

impl CheckpointChain {
    /// Checks `note` against the last checkpoint, with a consistency proof from `server`
    /// (verified with `tlog_tiles`), and makes it the last one.
    fn follow(&mut self, server: &Server, note: &[u8], what: &str) {
        let parsed = signed_note::Note::from_bytes(note)
            .unwrap_or_else(|e| panic!("{what}: not a signed note: {e}"));
        let cp = Checkpoint::from_bytes(parsed.text())
            .unwrap_or_else(|e| panic!("{what}: not a checkpoint: {e}"));
        let (size, root) = (cp.size(), *cp.hash());
        if let Some((last_size, last_root)) = self.last {
            assert!(
                size >= last_size,
                "{what}: checkpoint size went back from {last_size} to {size}"
            );
            if size == last_size {
                assert_eq!(
                    root, last_root,
                    "{what}: two checkpoints of size {size} with different roots"
                );
            } else if last_size > 0 {
                let answer = server.get_json(&format!(
                    "/v1/proofs/consistency?from={last_size}&to={size}"
                ));
                let proof: Vec<Hash> = answer["hashes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| Hash::parse_hash(h.as_str().unwrap()).unwrap())
                    .collect();
                check_tree(&proof, size, root, last_size, last_root)
                    .unwrap_or_else(|e| panic!("{what}: checkpoint {size} is not consistent with checkpoint {last_size}: {e}"));
            }
        }
        self.last = Some((size, root));
    }

    /// Follows the checkpoint the server publishes now, if any.
    fn follow_served(&mut self, server: &Server, what: &str) {
        let (status, note) = server.get("/checkpoint");
        if status == 200 {
            self.follow(server, &note, what);
        } else {
            assert_eq!(status, 404, "{what}: GET /checkpoint");
            assert!(self.last.is_none(), "{what}: the checkpoint disappeared");
        }
    }
}

/// tlog-tiles path element for tile index `n` (`x001/234`).
fn tile_index(mut n: u64) -> String {
    let mut s = format!("{:03}", n % 1000);
    while n >= 1000 {
        n /= 1000;
        s = format!("x{:03}/{s}", n % 1000);
    }
    s
}

fn assert_verifies(dir: &std::path::Path, when: &str) {
    let out = verify(dir);
    assert!(
        out.status.success(),
        "stele verify failed {when} (status {}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn acknowledged_events_survive_sigkill() {
    let started = Instant::now();
    let mut rng = Rng::from_env("crash");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut known = Knowledge::default();
    let mut last_round: Vec<Acked> = Vec::new();
    let mut in_flight: Vec<Value> = Vec::new();
    let counter = Arc::new(AtomicU64::new(0));
    let mut chain = CheckpointChain::default();
    let mut crashed_checkpoint: Option<Vec<u8>> = None;
    for round in 0..ROUNDS {
        let server = Server::start(&data, &SERVE_ARGS);
        if let Some(note) = &crashed_checkpoint {
            chain.follow(
                &server,
                note,
                &format!("checkpoint on disk after the crash of round {}", round - 1),
            );
        }
        chain.follow_served(&server, &format!("checkpoint served after restart {round}"));
        let size = server.size();
        if let Some(max) = last_round.iter().map(|a| a.ack.index).max() {
            assert!(size > max, "round {round}: log holds {size} entries after restart, but index {max} was acknowledged");
        }
        for a in &last_round {
            check_present(&server, a);
        }
        retry_in_flight(&server, &in_flight, &mut known);
        retry_acknowledged(&server, &known, &mut rng);

        let server = if round % 5 == 4 {
            // Now and then, also a graceful stop: it must exit cleanly and leave a log that verifies.
            let status = server.terminate();
            assert!(
                status.success(),
                "round {round}: stele serve exited with {status} after SIGTERM"
            );
            assert_verifies(&data, &format!("after a graceful stop in round {round}"));
            Server::start(&data, &SERVE_ARGS)
        } else {
            server
        };

        let go = Arc::new(Barrier::new(CLIENTS + 1));
        let threads: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (url, http, seed, counter, go) = (
                    server.url.clone(),
                    server.client().clone(),
                    rng.next_u64(),
                    counter.clone(),
                    go.clone(),
                );
                std::thread::spawn(move || client(url, http, seed, counter, go))
            })
            .collect();
        let delay = Duration::from_millis(rng.range(20, 400));
        go.wait();
        std::thread::sleep(delay);
        server.kill();
        let logs: Vec<ClientLog> = threads.into_iter().map(|t| t.join().unwrap()).collect();

        last_round.clear();
        in_flight.clear();
        for log in logs {
            assert!(
                log.unexpected.is_empty(),
                "round {round}: unexpected answers: {:?}",
                log.unexpected
            );
            for a in log.acked {
                known.record(a.clone());
                last_round.push(a);
            }
            in_flight.extend(log.in_flight.into_iter().filter(|body| match body {
                Value::Array(a) => a.iter().any(|e| e.get("id").is_some()),
                one => one.get("id").is_some(),
            }));
        }
        eprintln!(
            "round {round}: killed after {delay:?}, {} events acknowledged",
            last_round.len()
        );
        assert_verifies(&data, &format!("right after the SIGKILL of round {round}"));
        if rng.chance(1, 3) {
            // A second crash while the server recovers from the first.
            let delay = Duration::from_millis(rng.range(0, 50));
            start_and_kill_after(&data, &SERVE_ARGS, delay);
            assert_verifies(
                &data,
                &format!("after a SIGKILL {delay:?} into the restart after round {round}"),
            );
        }
        crashed_checkpoint = std::fs::read(data.join("log/checkpoint")).ok();
    }

    let server = Server::start(&data, &SERVE_ARGS);
    if let Some(note) = &crashed_checkpoint {
        chain.follow(&server, note, "checkpoint on disk after the last crash");
    }
    chain.follow_served(&server, "checkpoint served after the last restart");
    for a in &last_round {
        check_present(&server, a);
    }
    retry_in_flight(&server, &in_flight, &mut known);
    retry_acknowledged(&server, &known, &mut rng);
    check_whole_log(&server, &known);
    // The checkpoint catches up with the whole log, consistent with every earlier one.
    let note = server.checkpoint_at_least(server.size());
    chain.follow(&server, &note, "final checkpoint");
    let status = server.terminate();
    assert!(
        status.success(),
        "stele serve exited with {status} after SIGTERM"
    );
    assert_verifies(&data, "at the end");
    eprintln!("crash test took {:?}", started.elapsed());
}

#[test]
fn sigterm_under_load_checkpoints_every_acknowledged_event() {
    let mut rng = Rng::from_env("graceful");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let counter = Arc::new(AtomicU64::new(0));
    let mut acked: Vec<Acked> = Vec::new();
    for round in 0..3 {
        let server = Server::start(&data, &SERVE_ARGS);
        let go = Arc::new(Barrier::new(CLIENTS + 1));
        let threads: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (url, http, seed, counter, go) = (
                    server.url.clone(),
                    server.client().clone(),
                    rng.next_u64(),
                    counter.clone(),
                    go.clone(),
                );
                std::thread::spawn(move || client(url, http, seed, counter, go))
            })
            .collect();
        go.wait();
        std::thread::sleep(Duration::from_millis(rng.range(50, 300)));
        let status = server.terminate();
        assert!(
            status.success(),
            "round {round}: exit status {status} after SIGTERM under load"
        );
        let mut round_acks = 0;
        for log in threads.into_iter().map(|t| t.join().unwrap()) {
            assert!(
                log.unexpected.is_empty(),
                "round {round}: unexpected answers: {:?}",
                log.unexpected
            );
            round_acks += log.acked.len();
            acked.extend(log.acked);
        }
        // The final checkpoint covers every acknowledged append.
        let note = std::fs::read(data.join("log/checkpoint")).unwrap();
        let size = stele_tests::checkpoint_size(&note).unwrap();
        let max = acked.iter().map(|a| a.ack.index).max().unwrap();
        assert!(size > max, "round {round}: final checkpoint covers {size} entries, but index {max} was acknowledged");
        assert_verifies(&data, &format!("after SIGTERM under load, round {round}"));
        eprintln!(
            "round {round}: {round_acks} events acknowledged before the stop; checkpoint at {size}"
        );
    }
    let server = Server::start(&data, &SERVE_ARGS);
    for a in &acked {
        check_present(&server, a);
    }
    assert!(server.terminate().success());
}
