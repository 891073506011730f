//! Signing-key rotation end to end, against the real binary: `stele key rotate` on a data
//! directory a server is serving (the server carries it out live) and on one no server has
//! open; checkpoints signed by both keys during the window and by the new key alone after
//! it; verification of both eras offline (`stele verify --data`, with the current or an old
//! key), remotely with the old key following the statement (and remembering it), with the
//! new key alone; and forged statements refused.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ed25519_dalek::Signer as _;
use serde_json::Value;
use stele_tests::{event, public_key, run_stele, Server};

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The (name, key ID) pairs of a note's signature lines.
fn signers(note: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(note);
    let (_, sigs) = text.rsplit_once("\n\n").unwrap();
    sigs.lines()
        .map(|l| {
            let (name, b64) = l.trim_start_matches("\u{2014} ").split_once(' ').unwrap();
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            format!("{name}+{}", hex(&raw[..4]))
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `<name>+<key id>` of a verifier key.
fn key_id(vkey: &str) -> String {
    let mut parts = vkey.splitn(3, '+');
    format!("{}+{}", parts.next().unwrap(), parts.next().unwrap())
}

/// `stele verify --url … --key KEY --state STATE`, as the server's auditor if it has one
/// (consistency proofs need a principal when authentication is on).
fn verify_url(server: &Server, key: &str, state: &Path) -> Output {
    let mut args = vec![
        "verify",
        "--url",
        &server.url,
        "--key",
        key,
        "--state",
        s(state),
    ];
    if let Some(t) = server.tokens() {
        args.extend(["--token", &t.auditor]);
    }
    run_stele(args)
}

/// Posts events until the checkpoint grows past what it is now, and returns it.
fn grow(server: &Server, n: u64) -> Vec<u8> {
    for i in 0..n {
        let (status, body) = server.post_json(&event(i));
        assert_eq!(status, 200, "{body}");
    }
    server.checkpoint_at_least(server.size())
}

#[test]
fn a_live_rotation_is_followed_by_old_key_holders_and_both_eras_verify() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_secured(
        &data,
        &["--public-verification", "--checkpoint-interval", "100ms"],
    );
    let key_a = public_key(&data);
    grow(&server, 3);
    let state_old = dir.path().join("old.checkpoint");
    ok(&verify_url(&server, &key_a, &state_old));

    // Rotate while the server runs: it carries out the request within a second.
    // The window has to outlast the checks made during it on a loaded machine.
    let rotated_at = Instant::now();
    let out = run_stele(["key", "rotate", "--data", s(&data), "--window", "20s"]);
    let key_b = ok(&out).lines().last().unwrap().trim().to_owned();
    assert_ne!(key_b, key_a);
    assert_eq!(public_key(&data), key_b);
    assert_eq!(
        key_id(&key_a).split('+').next(),
        key_id(&key_b).split('+').next()
    );
    // The running server serves the new key and the statement.
    let (_, info) = server.get("/v1/log");
    let info: Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(info["verifier_key"], key_b.as_str());
    let (status, body) = server.get("/v1/key/rotations");
    assert_eq!(status, 200);
    let served: Value = serde_json::from_slice(&body).unwrap();
    let rotation = &served["rotations"][0];
    assert_eq!(
        (rotation["old_key"].as_str(), rotation["new_key"].as_str()),
        (Some(key_a.as_str()), Some(key_b.as_str()))
    );
    let statement = rotation["statement"].as_str().unwrap();
    assert!(
        statement.starts_with(&format!(
            "stele-key-rotation/v1\n{}\n{key_b}\n{}\n\n",
            key_a.split('+').next().unwrap(),
            rotation["from_size"]
        )),
        "{statement}"
    );
    // The rotation is in the log, as the log's own event, at from_size - 1.
    let event_index = rotation["event_index"].as_u64().unwrap();
    assert_eq!(rotation["from_size"].as_u64().unwrap(), event_index + 1);
    let (_, record) = server.get(&format!("/v1/events/{event_index}"));
    let record: Value = serde_json::from_slice(&record).unwrap();
    assert_eq!(record["action"], "admin.key.rotate");
    assert_eq!(record["source"], "stele.meta");
    assert_eq!(record["context"]["old_key"], key_a.as_str());
    assert_eq!(record["context"]["new_key"], key_b.as_str());

    // During the window: checkpoints carry both keys' signatures.
    let note = grow(&server, 2);
    let sigs = signers(&note);
    assert!(
        sigs.contains(&key_id(&key_a)) && sigs.contains(&key_id(&key_b)),
        "{sigs:?}"
    );
    // Every kind of verifier passes: old key (following), new key alone.
    let out = ok(&verify_url(&server, &key_a, &state_old));
    assert!(out.contains("key rotation: from tree size"), "{out}");
    let state_new = dir.path().join("new.checkpoint");
    ok(&verify_url(&server, &key_b, &state_new));

    // After the window: the new key alone.
    std::thread::sleep(Duration::from_secs(21).saturating_sub(rotated_at.elapsed()));
    let note = grow(&server, 2);
    assert_eq!(signers(&note), vec![key_id(&key_b)]);
    // The verifier that followed keeps verifying with nothing but the old key on its
    // command line (the rotation is remembered beside its state).
    let out = ok(&verify_url(&server, &key_a, &state_old));
    assert!(!out.contains("key rotation:"), "followed twice: {out}");
    assert!(state_old.with_extension("checkpoint.rotations").exists());
    // A fresh verifier with only the old key follows the served statement.
    let out = ok(&verify_url(
        &server,
        &key_a,
        &dir.path().join("fresh.checkpoint"),
    ));
    assert!(out.contains("key rotation:"), "{out}");
    ok(&verify_url(&server, &key_b, &state_new));

    // Offline, while the server runs: every era (the old key's last checkpoint against the
    // entries, the statement, the record), with the current key or the old one.
    let out = ok(&run_stele(["verify", "--data", s(&data)]));
    assert!(out.contains("1 key rotations"), "{out}");
    let out = run_stele(["verify", "--data", s(&data), "--key", &key_a]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("followed a key rotation"));

    // The retired private key was deleted when its window closed; the current one is 0600.
    use std::os::unix::fs::PermissionsExt;
    let retired: Vec<_> = std::fs::read_dir(data.join("key/retired"))
        .unwrap()
        .collect();
    assert!(retired.is_empty(), "{retired:?}");
    let mode = std::fs::metadata(data.join("key/signer.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0);
    // No secret in the server's logs.
    let stderr = server.stderr();
    assert!(!stderr.contains("PRIVATE+KEY"), "{stderr}");
}

#[test]
fn an_offline_rotation_is_carried_out_at_once_and_served_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--checkpoint-interval", "100ms"]);
    let key_a = public_key(&data);
    grow(&server, 3);
    let state = dir.path().join("s.checkpoint");
    ok(&verify_url(&server, &key_a, &state));
    server.terminate();

    let out = run_stele(["key", "rotate", "--data", s(&data), "--window", "1h"]);
    let key_b = ok(&out).lines().last().unwrap().trim().to_owned();
    assert!(!data.join("key/rotate.pending").exists());
    let out = ok(&run_stele(["verify", "--data", s(&data), "--key", &key_a]));
    assert!(out.contains("1 key rotations"), "{out}");
    // A second request while one is pending is refused (none is pending now: make one).
    let server = Server::start(&data, &["--checkpoint-interval", "100ms"]);
    assert!(
        server
            .banner
            .iter()
            .any(|l| l == &format!("verifier key: {key_b}")),
        "{:?}",
        server.banner
    );
    let note = grow(&server, 1);
    let sigs = signers(&note);
    assert!(
        sigs.contains(&key_id(&key_a)) && sigs.contains(&key_id(&key_b)),
        "{sigs:?}"
    );
    let out = ok(&verify_url(&server, &key_a, &state));
    assert!(out.contains("key rotation:"), "{out}");
}

#[test]
fn forged_rotation_statements_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--checkpoint-interval", "100ms"]);
    let key_a = public_key(&data);
    let origin = key_a.split('+').next().unwrap().to_owned();
    grow(&server, 2);

    // Mallory's own key, named after the log.
    let mallory = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let m_pub = mallory.verifying_key().to_bytes();
    let m_id = key_id_of(&origin, &m_pub);
    let m_vkey = format!(
        "{origin}+{m_id}+{}",
        base64::engine::general_purpose::STANDARD.encode([&[1u8][..], &m_pub].concat())
    );
    let text = format!("stele-key-rotation/v1\n{origin}\n{m_vkey}\n3\n");
    let sign_as = |id: &str| {
        let sig = mallory.sign(text.as_bytes()).to_bytes();
        let raw = [
            &u32::from_str_radix(id, 16).unwrap().to_be_bytes()[..],
            &sig,
        ]
        .concat();
        format!(
            "\u{2014} {origin} {}\n",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    let a_id = key_a.split('+').nth(1).unwrap();

    // 1. Signed by a key that is not the log's (twice Mallory's): not followed, and a
    //    checkpoint signed by Mallory would not verify.
    let state = dir.path().join("s.checkpoint");
    let forged = format!("{text}\n{}{}", sign_as(&m_id), sign_as(&m_id));
    std::fs::write(
        dir.path().join("s.checkpoint.rotations"),
        serde_json::to_string(&vec![forged]).unwrap(),
    )
    .unwrap();
    let out = ok(&verify_url(&server, &key_a, &state));
    assert!(
        !out.contains("key rotation:") && !out.contains(&m_vkey),
        "{out}"
    );

    // 2. Claiming the log key's signature: the statement does not verify, verification fails.
    let forged = format!("{text}\n{}{}", sign_as(a_id), sign_as(&m_id));
    std::fs::write(
        dir.path().join("s.checkpoint.rotations"),
        serde_json::to_string(&vec![forged.clone()]).unwrap(),
    )
    .unwrap();
    let out = verify_url(&server, &key_a, &state);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid signature"), "{err}");

    // 3. Offline: a forged statement in the data directory's history is caught.
    server.terminate();
    ok(&run_stele([
        "key",
        "rotate",
        "--data",
        s(&data),
        "--window",
        "0",
    ]));
    ok(&run_stele(["verify", "--data", s(&data)]));
    let path = data.join("key/rotations.json");
    let mut history: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    history["rotations"][0]["statement"] = Value::String(forged);
    std::fs::write(&path, serde_json::to_vec_pretty(&history).unwrap()).unwrap();
    let out = run_stele(["verify", "--data", s(&data)]);
    assert_eq!(out.status.code(), Some(1));
    let out = run_stele(["verify", "--data", s(&data), "--key", &key_a]);
    assert_eq!(out.status.code(), Some(1));
}

/// The C2SP key ID of an Ed25519 key named `name`.
fn key_id_of(name: &str, public: &[u8; 32]) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', 1])
        .chain_update(public)
        .finalize();
    hex(&d[..4])
}

#[test]
fn a_second_rotation_request_waits_for_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&run_stele([
        "keygen",
        "--data",
        s(&data),
        "--origin",
        "test.example/log",
    ]));
    // No log yet: `key rotate` opens (and creates) it, rotates, and is done.
    let first = ok(&run_stele(["key", "rotate", "--data", s(&data)]));
    assert!(first.trim_end().ends_with(&public_key(&data)));
    // A request left pending (as if a server had not yet looked) blocks another.
    std::fs::write(data.join("key/rotate.pending"), "{}").unwrap();
    let out = run_stele(["key", "rotate", "--data", s(&data)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already pending"));
}
