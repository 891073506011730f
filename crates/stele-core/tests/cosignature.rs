//! tlog-cosignature and tlog-witness against the C2SP spec's example files (read from
//! `shared/testdata/c2sp/examples`), plus published vectors from Go's
//! `transparency-dev/formats` (`note/note_cosigv1_test.go`).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::PathBuf;

use stele_core::checkpoint::Checkpoint;
use stele_core::cosignature::{signed_message, Cosignature, CosignatureVerifier, Cosigner};
use stele_core::note::{key_id, Note};
use stele_core::witness::{parse_cosignature_lines, AddCheckpointRequest};

fn example(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/c2sp/examples")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `time <n>` line of the spec's example message.
fn example_time(message: &str) -> u64 {
    message
        .lines()
        .find_map(|l| l.strip_prefix("time "))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn spec_cosigned_checkpoint_parses_and_its_cosignature_signs_the_spec_message() {
    let note = Note::parse(&example("tlog-cosignature-cosigned-checkpoint.note")).unwrap();
    let message = String::from_utf8(example("tlog-cosignature-v1-signed-message.txt")).unwrap();
    Checkpoint::parse(&note.text).unwrap();
    assert_eq!(note.signatures.len(), 2);
    let cosig = &note.signatures[1];
    assert_eq!(cosig.name, "witness.example.com/w1");
    let decoded = Cosignature::decode(&cosig.bytes).expect("72 bytes after the key ID");
    assert_eq!(decoded.encode(), cosig.bytes);
    // The timestamp in the line is the one in the spec's signed message, and the message
    // is exactly the one this module builds from it and the note text.
    assert_eq!(decoded.timestamp, example_time(&message));
    assert_eq!(
        signed_message(decoded.timestamp, &note.text).unwrap(),
        message
    );
    // The log's own line is no cosignature (64 bytes, not 72).
    assert_eq!(Cosignature::decode(&note.signatures[0].bytes), None);
}

#[test]
fn our_cosignatures_verify_the_way_the_spec_describes_them() {
    // Recompute the signed message by hand from the spec's format and check the raw
    // Ed25519 signature with ed25519-dalek, independently of CosignatureVerifier.
    let w = Cosigner::from_seed("witness.example.com/w1", [42; 32]).unwrap();
    let note = Note::parse(&example("tlog-cosignature-cosigned-checkpoint.note")).unwrap();
    let message = String::from_utf8(example("tlog-cosignature-v1-signed-message.txt")).unwrap();
    let t = example_time(&message);
    let line = w.cosign(&note.text, t).unwrap();
    assert_eq!(line.key_id, {
        let vk = w.verifier();
        key_id(
            "witness.example.com/w1",
            0x04,
            vk.verifying_key().as_bytes(),
        )
    });
    let ts = u64::from_be_bytes(line.bytes[..8].try_into().unwrap());
    assert_eq!(ts, t);
    let sig = ed25519_dalek::Signature::from_slice(&line.bytes[8..]).unwrap();
    w.verifier()
        .verifying_key()
        .verify_strict(message.as_bytes(), &sig)
        .unwrap();
    assert_eq!(w.verifier().verify(&note.text, &line).unwrap(), t);
}

#[test]
fn go_formats_vectors() {
    // A native type-0x04 verifier key ("works: native algEd25519CosignatureV1 verifier").
    let vkey = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2";
    let v = CosignatureVerifier::from_verifier_key(vkey).unwrap();
    assert_eq!(v.to_verifier_key(), vkey);
    // A type-0x01 key is refused ("works: convert from algEd25519" in Go, which converts).
    assert!(CosignatureVerifier::from_verifier_key(
        "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
    )
    .is_err());
    // TestCoSigV1Timestamp: the timestamp of a cosignature line's payload.
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode("ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==")
        .unwrap();
    assert_eq!(
        Cosignature::decode(&raw[4..]).unwrap().timestamp,
        1_727_964_367
    );
}

#[test]
fn spec_add_checkpoint_request_and_response_bodies_parse() {
    let body = example("tlog-witness-add-checkpoint-request-body.txt");
    let req = AddCheckpointRequest::parse(&body).unwrap();
    let text = String::from_utf8(body.clone()).unwrap();
    let first = text.lines().next().unwrap();
    assert_eq!(first, format!("old {}", req.old_size));
    let proof_lines: Vec<&str> = text.lines().skip(1).take_while(|l| !l.is_empty()).collect();
    assert_eq!(
        req.proof.iter().map(|h| h.to_base64()).collect::<Vec<_>>(),
        proof_lines
    );
    let note = Note::parse(&req.checkpoint).unwrap();
    let cp = Checkpoint::parse(&note.text).unwrap();
    assert!(cp.size >= req.old_size);
    assert_eq!(note.signatures.len(), 2);
    // Re-encoding gives the file back byte for byte.
    assert_eq!(req.to_bytes(), body);

    let resp = example("tlog-witness-add-checkpoint-response-body.txt");
    let lines = parse_cosignature_lines(&resp).unwrap();
    let resp_text = String::from_utf8(resp.clone()).unwrap();
    let names: Vec<&str> = resp_text
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(
        lines.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        names
    );
    let again: String = lines.iter().map(|s| s.to_line()).collect();
    assert_eq!(again.into_bytes(), resp);
}
