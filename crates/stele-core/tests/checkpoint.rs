//! Checkpoint texts against the C2SP examples and Cloudflare's `tlog_tiles`, and signed
//! checkpoints against `signed_note`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use base64::{engine::general_purpose::STANDARD, Engine as _};
use proptest::prelude::*;
use stele_core::checkpoint::{open_checkpoint, sign_checkpoint, Checkpoint, CheckpointError};
use stele_core::note::{Note, NoteError, NoteSigner};
use stele_core::Hash;

const EXAMPLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/testdata/c2sp/examples/"
);

fn example(name: &str) -> Vec<u8> {
    let path = format!("{EXAMPLES}{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

const ORIGIN: &str = "example.com/stele";

fn sample(size: u64, extensions: &[&str]) -> Checkpoint {
    // Any 32 bytes will do as a root here; derive them from the size so they vary.
    let mut root = [0u8; 32];
    for (i, b) in root.iter_mut().enumerate() {
        *b = (size as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    Checkpoint {
        origin: ORIGIN.to_owned(),
        size,
        root: Hash(root),
        extensions: extensions.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[test]
fn spec_example_body_parses() {
    for file in [
        "tlog-checkpoint-example.note",
        "tlog-cosignature-cosigned-checkpoint.note",
    ] {
        let note = Note::parse(&example(file)).unwrap();
        let cp = Checkpoint::parse(&note.text).unwrap();
        // The values the tlog-checkpoint spec's example states.
        assert_eq!(cp.origin, "example.com/behind-the-sofa");
        assert_eq!(cp.size, 20_852_163);
        assert_eq!(
            STANDARD.encode(cp.root.0),
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
        );
        assert!(cp.extensions.is_empty());
        assert_eq!(cp.to_text(), note.text, "{file} re-encodes byte for byte");
    }
}

#[test]
fn round_trip_with_and_without_extensions() {
    for cp in [
        sample(0, &[]),
        sample(1, &[]),
        sample(u64::MAX, &[]),
        sample(7, &["ext one", "— ext two with unicode ü"]),
    ] {
        let text = cp.to_text();
        assert!(text.ends_with('\n'));
        assert_eq!(Checkpoint::parse(&text).unwrap(), cp);
    }
    assert_eq!(
        sample(0, &["x"]).to_text(),
        format!(
            "{ORIGIN}\n0\n{}\nx\n",
            STANDARD.encode(sample(0, &[]).root.0)
        )
    );
}

#[test]
fn malformed_bodies_are_rejected() {
    let root = STANDARD.encode(sample(5, &[]).root.0);
    let short_root = STANDARD.encode([7u8; 31]);
    let long_root = STANDARD.encode([7u8; 33]);
    let unpadded = root.trim_end_matches('=').to_owned();
    let invalid_size = |v: &str| CheckpointError::InvalidSize {
        value: v.to_owned(),
    };
    let invalid_root = |v: &str| CheckpointError::InvalidRoot {
        value: v.to_owned(),
    };
    let cases: Vec<(String, CheckpointError)> = vec![
        (String::new(), CheckpointError::MissingFinalNewline),
        (
            format!("{ORIGIN}\n5\n{root}"),
            CheckpointError::MissingFinalNewline,
        ),
        (
            format!("{ORIGIN}\n5\n"),
            CheckpointError::TooFewLines { found: 2 },
        ),
        (
            format!("{ORIGIN}\n"),
            CheckpointError::TooFewLines { found: 1 },
        ),
        (
            format!("\n5\n{root}\n"),
            CheckpointError::EmptyLine { line: 1 },
        ),
        (
            format!("{ORIGIN}\n5\n{root}\n\n"),
            CheckpointError::EmptyLine { line: 4 },
        ),
        (
            format!("{ORIGIN}\n5\n{root}\next\n\nmore\n"),
            CheckpointError::EmptyLine { line: 5 },
        ),
        (
            format!("{ORIGIN}\t\n5\n{root}\n"),
            CheckpointError::ControlCharacter { line: 1 },
        ),
        (
            format!("{ORIGIN}\r\n5\n{root}\n"),
            CheckpointError::ControlCharacter { line: 1 },
        ),
        (
            format!("{ORIGIN}\n5\n{root}\nex\u{0}t\n"),
            CheckpointError::ControlCharacter { line: 4 },
        ),
        (format!("{ORIGIN}\n05\n{root}\n"), invalid_size("05")),
        (format!("{ORIGIN}\n00\n{root}\n"), invalid_size("00")),
        (format!("{ORIGIN}\n+5\n{root}\n"), invalid_size("+5")),
        (format!("{ORIGIN}\n-5\n{root}\n"), invalid_size("-5")),
        (format!("{ORIGIN}\n 5\n{root}\n"), invalid_size(" 5")),
        (format!("{ORIGIN}\n5x\n{root}\n"), invalid_size("5x")),
        (format!("{ORIGIN}\n0x5\n{root}\n"), invalid_size("0x5")),
        (
            format!("{ORIGIN}\n18446744073709551616\n{root}\n"),
            invalid_size("18446744073709551616"),
        ),
        (
            format!("{ORIGIN}\n5\n{short_root}\n"),
            invalid_root(&short_root),
        ),
        (
            format!("{ORIGIN}\n5\n{long_root}\n"),
            invalid_root(&long_root),
        ),
        (
            format!("{ORIGIN}\n5\n{unpadded}\n"),
            invalid_root(&unpadded),
        ),
        (
            format!("{ORIGIN}\n5\n{}*\n", &root[..root.len() - 1]),
            invalid_root(&format!("{}*", &root[..root.len() - 1])),
        ),
        (
            format!("{ORIGIN}\n5\n {root}\n"),
            invalid_root(&format!(" {root}")),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(Checkpoint::parse(&text), Err(want), "{text:?}");
    }
    // The largest size and the empty tree's "0" are fine.
    assert_eq!(
        Checkpoint::parse(&format!("{ORIGIN}\n18446744073709551615\n{root}\n"))
            .unwrap()
            .size,
        u64::MAX
    );
    assert_eq!(
        Checkpoint::parse(&format!("{ORIGIN}\n0\n{root}\n"))
            .unwrap()
            .size,
        0
    );
}

#[test]
fn origin_follows_spec_not_key_name_rules() {
    // Clients MUST NOT assume the origin format: a space parses, but such an origin can never
    // equal a key name, so no Stele key can sign or open it.
    let mut cp = sample(3, &[]);
    cp.origin = "example.com log".to_owned();
    assert_eq!(Checkpoint::parse(&cp.to_text()).unwrap(), cp);
    let signer = NoteSigner::generate(ORIGIN).unwrap();
    assert!(matches!(
        sign_checkpoint(&cp, &signer),
        Err(CheckpointError::OriginMismatch { .. })
    ));
}

#[test]
fn sign_and_open_round_trip() {
    let signer = NoteSigner::generate(ORIGIN).unwrap();
    for cp in [sample(0, &[]), sample(12345, &["extension"])] {
        let note = sign_checkpoint(&cp, &signer).unwrap();
        assert!(note.starts_with(&format!("{}\n\u{2014} {ORIGIN} ", cp.to_text())));
        let (opened, parsed) = open_checkpoint(note.as_bytes(), &signer.verifier()).unwrap();
        assert_eq!(opened, cp);
        assert_eq!(parsed.to_bytes(), note.as_bytes());
    }
}

#[test]
fn sign_rejects_fields_that_would_not_round_trip() {
    let signer = NoteSigner::generate(ORIGIN).unwrap();
    let mut newline_ext = sample(1, &["a\nb"]);
    assert_eq!(
        sign_checkpoint(&newline_ext, &signer),
        Err(CheckpointError::ControlCharacter { line: 4 })
    );
    newline_ext.extensions = vec![String::new()];
    assert_eq!(
        sign_checkpoint(&newline_ext, &signer),
        Err(CheckpointError::EmptyLine { line: 4 })
    );
    let other = NoteSigner::generate("example.com/other").unwrap();
    assert_eq!(
        sign_checkpoint(&sample(1, &[]), &other),
        Err(CheckpointError::OriginMismatch {
            origin: ORIGIN.to_owned(),
            key_name: "example.com/other".to_owned(),
        })
    );
}

#[test]
fn open_rejects_key_name_other_than_origin() {
    // Sign the checkpoint text directly, as a key named differently from the origin.
    let other = NoteSigner::generate("example.com/other").unwrap();
    let note = other.sign(&sample(9, &[]).to_text()).unwrap();
    assert_eq!(
        open_checkpoint(note.as_bytes(), &other.verifier()),
        Err(CheckpointError::OriginMismatch {
            origin: ORIGIN.to_owned(),
            key_name: "example.com/other".to_owned(),
        })
    );
}

#[test]
fn open_rejects_tampering_and_wrong_keys() {
    let signer = NoteSigner::generate(ORIGIN).unwrap();
    let cp = sample(1000, &[]);
    let note = sign_checkpoint(&cp, &signer).unwrap();
    let root = STANDARD.encode(cp.root.0);
    let other_root = STANDARD.encode(sample(1001, &[]).root.0);
    for tampered in [
        note.replacen("\n1000\n", "\n1001\n", 1),
        note.replacen("\n1000\n", "\n999\n", 1),
        note.replacen(&root, &other_root, 1),
        note.replacen(ORIGIN, "example.com/stelf", 1),
    ] {
        assert_ne!(tampered, note);
        let err = open_checkpoint(tampered.as_bytes(), &signer.verifier()).unwrap_err();
        assert!(
            matches!(
                err,
                CheckpointError::Note(NoteError::InvalidSignature { .. })
            ),
            "{tampered:?}: {err:?}"
        );
    }
    // Same name, another key: its signature is not ours.
    let impostor = NoteSigner::generate(ORIGIN).unwrap();
    assert!(matches!(
        open_checkpoint(note.as_bytes(), &impostor.verifier()),
        Err(CheckpointError::Note(NoteError::NotSignedBy { .. }))
    ));
    // A validly signed text that is not a checkpoint.
    let junk = signer
        .sign(&format!("{ORIGIN}\nnot a size\n{root}\n"))
        .unwrap();
    assert!(matches!(
        open_checkpoint(junk.as_bytes(), &signer.verifier()),
        Err(CheckpointError::InvalidSize { .. })
    ));
}

#[test]
fn cosignatures_are_kept_and_ignored() {
    let log = NoteSigner::generate(ORIGIN).unwrap();
    let witness = NoteSigner::generate("witness.example/w1").unwrap();
    let cp = sample(77, &[]);
    let note = sign_checkpoint(&cp, &log).unwrap();
    let cosigned = format!("{note}{}", witness.sign_line(&cp.to_text()));
    let (opened, parsed) = open_checkpoint(cosigned.as_bytes(), &log.verifier()).unwrap();
    assert_eq!(opened, cp);
    assert_eq!(parsed.signatures.len(), 2);
    assert_eq!(parsed.signatures[1].name, "witness.example/w1");
}

#[test]
fn our_signed_checkpoints_read_in_tlog_tiles_and_signed_note() {
    let signer = NoteSigner::generate(ORIGIN).unwrap();
    for cp in [sample(0, &[]), sample(20_852_163, &["ext a", "ext b"])] {
        let note = sign_checkpoint(&cp, &signer).unwrap();

        let theirs_note = signed_note::Note::from_bytes(note.as_bytes()).unwrap();
        let v = signed_note::StandardVerifier::new(&signer.verifier().to_verifier_key()).unwrap();
        let list = signed_note::VerifierList::new(vec![Box::new(v)]);
        let (verified, _) = theirs_note.verify(&list).unwrap();
        assert_eq!(verified.len(), 1);

        let theirs = tlog_tiles::Checkpoint::from_bytes(theirs_note.text()).unwrap();
        assert_eq!(theirs.origin(), cp.origin);
        assert_eq!(theirs.size(), cp.size);
        assert_eq!(theirs.hash().0, cp.root.0);
        let ext: String = cp.extensions.iter().map(|e| format!("{e}\n")).collect();
        assert_eq!(theirs.extension(), ext);
        assert_eq!(theirs.to_bytes(), cp.to_text().as_bytes());
    }
}

#[test]
fn tlog_tiles_checkpoints_read_in_ours() {
    let hash = tlog_tiles::Hash(sample(3, &[]).root.0);
    let theirs = tlog_tiles::Checkpoint::new("example.com/azul", 3, hash, "e1\n").unwrap();
    let ours = Checkpoint::parse(std::str::from_utf8(&theirs.to_bytes()).unwrap()).unwrap();
    assert_eq!(ours.origin, "example.com/azul");
    assert_eq!(ours.size, 3);
    assert_eq!(ours.root.0, hash.0);
    assert_eq!(ours.extensions, vec!["e1".to_owned()]);
}

fn checkpoint() -> impl Strategy<Value = Checkpoint> {
    (
        "[^\\p{Cc}]{1,30}",
        any::<u64>(),
        any::<[u8; 32]>(),
        prop::collection::vec("[^\\p{Cc}]{1,20}", 0..3),
    )
        .prop_map(|(origin, size, root, extensions)| Checkpoint {
            origin,
            size,
            root: Hash(root),
            extensions,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_valid_checkpoint_round_trips_and_matches_tlog_tiles(cp in checkpoint()) {
        let text = cp.to_text();
        prop_assert_eq!(Checkpoint::parse(&text).unwrap(), cp.clone());
        let theirs = tlog_tiles::Checkpoint::from_bytes(text.as_bytes()).unwrap();
        prop_assert_eq!(theirs.size(), cp.size);
        prop_assert_eq!(theirs.hash().0, cp.root.0);
        prop_assert_eq!(theirs.origin(), cp.origin.as_str());
    }
}
