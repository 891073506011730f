//! Witnesses end to end, every party a real process on loopback: two `stele witness`es and
//! `stele serve` logs.
//!
//! 1. Normal operation: with `--witness-quorum 2`, `/checkpoint` carries two cosignatures,
//!    checked here by hand (ed25519-dalek over the `cosignature/v1` message) and by
//!    `stele verify --witness-key … --witness-quorum 2`.
//! 2. A fork: a copy of the log's data directory (same key) grows other entries. Both
//!    witnesses refuse it and save a proof of misbehaviour; `stele verify` against the fork
//!    (trusted state, or a fresh state plus `--gossip`) exits 1 and writes one; every proof
//!    verifies offline with `stele verify-misbehaviour`, and no altered copy does.
//! 3. A rollback: an old backup of a second log's data directory is restored. The witnesses
//!    refuse the smaller tree and raise an alarm, `stele verify` reports the rollback, and once
//!    the restored log has grown past the trusted size (a power of two, so the proof needs the
//!    subtree hash from the tiles) `stele verify` proves the rewrite.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use stele_tests::{copy_dir, event, run_stele, stele_bin, Server};

const LOG_A: &str = "a.test/log";
const LOG_R: &str = "r.test/log";
// `--no-auth`: authentication is beside the point here, and `stele verify` reads anonymously.
const SERVE: [&str; 3] = ["--checkpoint-interval", "100ms", "--no-auth"];
const WAIT: Duration = Duration::from_secs(30);

/// A running `stele witness`. Killed when dropped.
struct WitnessProc {
    child: Child,
    url: String,
    vkey: String,
    data: PathBuf,
}

impl WitnessProc {
    fn start(data: &Path, logs: &[(&str, &str)]) -> WitnessProc {
        let mut cmd = Command::new(stele_bin());
        cmd.arg("witness")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--name"])
            .arg(format!(
                "{}.witness.test",
                data.file_name().unwrap().to_string_lossy()
            ));
        for (origin, vkey) in logs {
            cmd.arg("--log").arg(format!("{origin}={vkey}"));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning stele witness");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let (mut url, mut vkey) = (None, None);
        while url.is_none() {
            let line = rx
                .recv_timeout(WAIT)
                .expect("stele witness printed its address");
            if let Some(k) = line.strip_prefix("witness key: ") {
                vkey = Some(k.trim().to_owned());
            }
            if let Some(u) = line.strip_prefix("listening on ") {
                url = Some(u.trim().to_owned());
            }
        }
        WitnessProc {
            child,
            url: url.unwrap(),
            vkey: vkey.expect("witness key line before the address"),
            data: data.to_path_buf(),
        }
    }

    fn arg(&self) -> String {
        format!("{}={}", self.url, self.vkey)
    }

    fn evidence(&self, ext: &str) -> Vec<PathBuf> {
        let Ok(dir) = std::fs::read_dir(self.data.join("misbehaviour")) else {
            return vec![];
        };
        let mut files: Vec<PathBuf> = dir
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == ext))
            .collect();
        files.sort();
        files
    }

    /// Waits for an evidence file whose content contains `needle`.
    fn wait_evidence(&self, ext: &str, needle: &str) -> PathBuf {
        let deadline = Instant::now() + WAIT;
        loop {
            for f in self.evidence(ext) {
                if std::fs::read_to_string(&f).unwrap().contains(needle) {
                    return f;
                }
            }
            assert!(
                Instant::now() < deadline,
                "witness {} saved no .{ext} containing {needle:?}: {:?}",
                self.url,
                self.evidence(ext)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for WitnessProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stele<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(args: I) -> Output {
    run_stele(args)
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn keygen(data: &Path, origin: &str) -> String {
    let out = stele([
        "keygen".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--origin".as_ref(),
        origin.as_ref(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn append(server: &Server, from: u64, n: u64) {
    let batch: Vec<Value> = (from..from + n).map(event).collect();
    let (status, answer) = server.post_json(&Value::Array(batch));
    assert_eq!(status, 200, "{answer}");
}

/// `GET /checkpoint` until it names exactly `size`; returns the note.
fn checkpoint_of_size(server: &Server, size: u64) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = server.get("/checkpoint");
        let note = String::from_utf8(body).unwrap();
        if status == 200 && note.lines().nth(1) == Some(&size.to_string()) {
            return note;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {size} at {} (last: {status} {note}); stderr:\n{}",
            server.url,
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checks the cosignature lines of `note` by `vkeys` by hand, after C2SP tlog-cosignature:
/// key ID = SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[:4]; the signature is over
/// "cosignature/v1\ntime <t>\n" ‖ the note text; the payload is key ID ‖ u64 t ‖ signature.
/// Returns how many distinct witnesses' lines verify.
fn count_cosignatures_by_hand(note: &str, vkeys: &[&str]) -> usize {
    let (body, sigs) = note.rsplit_once("\n\n").unwrap();
    let text = format!("{body}\n");
    let mut valid = 0;
    for vkey in vkeys {
        let mut parts = vkey.splitn(3, '+');
        let (name, id_hex, key_b64) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let raw = STANDARD.decode(key_b64).unwrap();
        assert_eq!(raw[0], 0x04, "a witness key has type 0x04");
        let pubkey: [u8; 32] = raw[1..].try_into().unwrap();
        let mut h = Sha256::new();
        h.update(name.as_bytes());
        h.update([b'\n', 0x04]);
        h.update(pubkey);
        let key_id: [u8; 4] = h.finalize()[..4].try_into().unwrap();
        assert_eq!(hex_lower(&key_id), id_hex);
        let vk = VerifyingKey::from_bytes(&pubkey).unwrap();
        let mine = sigs.lines().find_map(|l| {
            let rest = l.strip_prefix("\u{2014} ")?;
            let (n, b64) = rest.split_once(' ')?;
            let bytes = STANDARD.decode(b64).ok()?;
            (n == name && bytes[..4] == key_id).then_some(bytes)
        });
        let Some(bytes) = mine else { continue };
        assert_eq!(bytes.len(), 4 + 8 + 64);
        let t = u64::from_be_bytes(bytes[4..12].try_into().unwrap());
        assert!(t > 1_600_000_000, "timestamp {t}");
        let message = format!("cosignature/v1\ntime {t}\n{text}");
        let sig = Signature::from_slice(&bytes[12..]).unwrap();
        vk.verify_strict(message.as_bytes(), &sig).unwrap();
        valid += 1;
    }
    valid
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `stele verify-misbehaviour FILE --key VKEY`.
fn verify_misbehaviour(file: &Path, vkey: &str) -> Output {
    stele([
        "verify-misbehaviour".as_ref(),
        file.as_os_str(),
        "--key".as_ref(),
        vkey.as_ref(),
    ])
}

/// The proof verifies, and altering it anywhere (some bytes of each part) makes it fail.
fn assert_proof_is_tight(file: &Path, vkey: &str, scratch: &Path) {
    let out = verify_misbehaviour(file, vkey);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("proven: "));
    let bytes = std::fs::read(file).unwrap();
    let s = String::from_utf8(bytes.clone()).unwrap();
    // Positions inside: the header, each note's text and signature, each length line, and
    // the last proof hash (or the consistency count).
    let mut positions = vec![3, bytes.len() - 2];
    for needle in [LOG_A, LOG_R, "\u{2014} ", "checkpoint ", "consistency "] {
        for (i, _) in s.match_indices(needle).take(2) {
            positions.push(i + needle.len() + 1);
        }
    }
    for (n, &i) in positions.iter().enumerate() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x02;
        let path = scratch.join(format!("altered-{n}.misbehaviour"));
        std::fs::write(&path, &bad).unwrap();
        let out = verify_misbehaviour(&path, vkey);
        assert_eq!(
            out.status.code(),
            Some(1),
            "altered byte {i} still verifies: {}",
            text(&out)
        );
    }
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let other = keygen(&scratch.join(format!("other-key-{n}")), LOG_A);
    assert_eq!(verify_misbehaviour(file, &other).status.code(), Some(1));
}

#[test]
fn witnesses_cosign_detect_forks_and_rollbacks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |n: &str| tmp.path().join(n);
    let key_a = keygen(&dir("a"), LOG_A);
    let key_r = keygen(&dir("r"), LOG_R);
    let logs = [(LOG_A, key_a.as_str()), (LOG_R, key_r.as_str())];
    let w1 = WitnessProc::start(&dir("w1"), &logs);
    let w2 = WitnessProc::start(&dir("w2"), &logs);
    let out = stele([
        "witness".as_ref(),
        "key".as_ref(),
        "public".as_ref(),
        "--data".as_ref(),
        w1.data.as_os_str(),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), w1.vkey);
    let with_witnesses = |quorum: bool| -> Vec<String> {
        let mut a: Vec<String> = SERVE.iter().map(ToString::to_string).collect();
        a.extend(["--witness".into(), w1.arg(), "--witness".into(), w2.arg()]);
        if quorum {
            a.extend(["--witness-quorum".into(), "2".into()]);
        }
        a
    };
    let start_with = |data: &Path, quorum: bool, extra: &[String]| {
        let mut args = with_witnesses(quorum);
        args.extend_from_slice(extra);
        Server::start(data, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let start = |data: &Path, quorum: bool| start_with(data, quorum, &[]);
    let verify = |url: &str, key: &str, extra: &[&str]| {
        let mut args = vec!["verify", "--url", url, "--key", key];
        args.extend_from_slice(extra);
        stele(args)
    };
    let path_str = |p: PathBuf| p.to_string_lossy().into_owned();
    let (s1, s2, s3) = (
        path_str(dir("s1.checkpoint")),
        path_str(dir("s2.checkpoint")),
        path_str(dir("s3.checkpoint")),
    );

    // 1. Normal operation: quorum 2.
    let a = start(&dir("a"), true);
    append(&a, 0, 5);
    let note = checkpoint_of_size(&a, 5);
    assert_eq!(count_cosignatures_by_hand(&note, &[&w1.vkey, &w2.vkey]), 2);
    let out = verify(
        &a.url,
        &key_a,
        &[
            "--state",
            &s1,
            "--witness-key",
            &w1.vkey,
            "--witness-key",
            &w2.vkey,
            "--witness-quorum",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cosigned by 2 of 2"));
    // A policy naming a witness that never cosigned is not met.
    let stranger = {
        let vk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let mut h = Sha256::new();
        h.update(b"stranger.test\n\x04");
        h.update(vk.as_bytes());
        let id = hex_lower(&h.finalize()[..4]);
        let mut raw = vec![0x04];
        raw.extend_from_slice(vk.as_bytes());
        format!("stranger.test+{id}+{}", STANDARD.encode(raw))
    };
    let out = verify(
        &a.url,
        &key_a,
        &[
            "--state",
            &path_str(dir("s-x")),
            "--witness-key",
            &w1.vkey,
            "--witness-key",
            &stranger,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("witness policy"), "{}", text(&out));

    // 2. A fork: stop, copy the data directory, and let both copies grow apart.
    assert!(a.terminate().success());
    copy_dir(&dir("a"), &dir("b"));
    let a = start(&dir("a"), true);
    append(&a, 100, 2);
    checkpoint_of_size(&a, 7);
    let out = verify(&a.url, &key_a, &["--state", &s1, "--gossip", &w1.url]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("consistent"),
        "{}",
        text(&out)
    );
    let metric = |server: &Server, name: &str, witness: &str| -> Option<f64> {
        let (_, body) = server.get("/metrics");
        String::from_utf8(body).unwrap().lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.split_once("} ")?;
            labels
                .contains(&format!("witness=\"{witness}\""))
                .then(|| value.parse().unwrap())
        })
    };
    let w1_name = w1.vkey.split('+').next().unwrap().to_owned();
    assert_eq!(
        metric(&a, "stele_witness_cosigned_size", &w1_name),
        Some(7.0)
    );
    let (_, body) = a.get("/metrics");
    assert!(
        String::from_utf8(body)
            .unwrap()
            .lines()
            .any(|l| l == "stele_checkpoint_cosigned_size 7"),
        "the size /checkpoint serves is in the metrics"
    );
    // The fork also submits to a witness nobody runs: it must not slow anything down.
    let nowhere = format!("http://127.0.0.1:1={stranger}");
    let b = start_with(&dir("b"), false, &["--witness".into(), nowhere]);
    append(&b, 200, 5);
    checkpoint_of_size(&b, 10);
    let deadline = Instant::now() + WAIT;
    while metric(&b, "stele_witness_failures_total", "stranger.test").unwrap_or(0.0) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no failure counted for an unreachable witness"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for w in [&w1, &w2] {
        let proof = w.wait_evidence("proof", "\n10\n");
        assert_proof_is_tight(&proof, &key_a, tmp.path());
    }
    // The verifier that trusted the size-7 checkpoint of one copy meets the other.
    let p1 = dir("fork-1.misbehaviour");
    let out = verify(
        &b.url,
        &key_a,
        &["--state", &s1, "--misbehaviour-out", &path_str(p1.clone())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("proof of misbehaviour written"),
        "{}",
        text(&out)
    );
    assert_proof_is_tight(&p1, &key_a, tmp.path());
    // A fresh verifier trusts the fork at first sight, but gossip with a witness exposes it.
    let p2 = dir("fork-2.misbehaviour");
    let out = verify(
        &b.url,
        &key_a,
        &[
            "--state",
            &s2,
            "--gossip",
            &w2.url,
            "--misbehaviour-out",
            &path_str(p2.clone()),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(verify_misbehaviour(&p2, &key_a).status.success());
    // The fork cannot show a checkpoint that meets the policy.
    let out = verify(
        &b.url,
        &key_a,
        &["--state", &path_str(dir("s-y")), "--witness-key", &w1.vkey],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    drop((a, b));

    // 3. A rollback: back up at size 3, grow to 8 (cosigned, trusted), restore the backup.
    let r = start(&dir("r"), true);
    append(&r, 300, 3);
    checkpoint_of_size(&r, 3);
    assert!(r.terminate().success());
    copy_dir(&dir("r"), &dir("r-backup"));
    let r = start(&dir("r"), true);
    append(&r, 303, 5);
    checkpoint_of_size(&r, 8);
    let out = verify(
        &r.url,
        &key_r,
        &[
            "--state",
            &s3,
            "--witness-key",
            &w1.vkey,
            "--witness-key",
            &w2.vkey,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(r.terminate().success());
    std::fs::remove_dir_all(dir("r")).unwrap();
    copy_dir(&dir("r-backup"), &dir("r"));
    // Restored without the quorum, so that /checkpoint shows what the log signs.
    let r = start(&dir("r"), false);
    for w in [&w1, &w2] {
        w.wait_evidence("alarm", "smaller than the size 8");
    }
    let out = verify(&r.url, &key_r, &["--state", &s3]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("rollback"), "{}", text(&out));
    // Other entries where the trusted ones were: provable once the tree is larger again.
    append(&r, 400, 7);
    checkpoint_of_size(&r, 10);
    let p3 = dir("rollback.misbehaviour");
    let out = verify(
        &r.url,
        &key_r,
        &["--state", &s3, "--misbehaviour-out", &path_str(p3.clone())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_proof_is_tight(&p3, &key_r, tmp.path());
    // The witnesses refuse it too (size 8 is a power of two: suspected, not provable there).
    for w in [&w1, &w2] {
        w.wait_evidence("alarm", "of size 10 whose consistency proof");
    }
    // The trusted state never moved.
    let trusted = std::fs::read_to_string(&s3).unwrap();
    assert_eq!(trusted.lines().nth(1), Some("8"));
}
