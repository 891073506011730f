//! Signed notes against the C2SP and Go examples in shared/testdata and against Cloudflare's
//! independent `signed_note` crate.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use base64::{engine::general_purpose::STANDARD, Engine as _};
use proptest::prelude::*;
use stele_core::note::{
    key_id, valid_key_name, Note, NoteError, NoteSignature, NoteSigner, NoteVerifier, ALG_ED25519,
    MAX_SIGNATURES,
};

const EXAMPLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/testdata/c2sp/examples/"
);

fn example(name: &str) -> Vec<u8> {
    let path = format!("{EXAMPLES}{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn example_str(name: &str) -> String {
    String::from_utf8(example(name)).unwrap()
}

/// The verifiable example pairs: (vkey file, note file).
const VERIFIABLE: [(&str, &str); 2] = [
    ("signed-note-example.vkey", "signed-note-example.note"),
    (
        "golang-sumdb-note-PeterNeumann.vkey",
        "golang-sumdb-note-PeterNeumann.note",
    ),
];

fn load_pair(vkey: &str, note: &str) -> (String, NoteVerifier, Vec<u8>) {
    let vkey_str = example_str(vkey).trim_end().to_owned();
    let verifier = NoteVerifier::from_verifier_key(&vkey_str).unwrap();
    (vkey_str, verifier, example(note))
}

/// A rand_core 0.6 RNG over OS randomness, for `signed_note::generate_key`.
struct OsBytes;

impl rand_core_06::RngCore for OsBytes {
    fn next_u32(&mut self) -> u32 {
        rand_core_06::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core_06::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        getrandom::fill(dest).unwrap();
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core_06::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core_06::CryptoRng for OsBytes {}

fn their_verifier_list(vkey: &str) -> signed_note::VerifierList {
    let v = signed_note::StandardVerifier::new(vkey).unwrap();
    signed_note::VerifierList::new(vec![Box::new(v)])
}

#[test]
fn spec_examples_verify_and_round_trip() {
    for (vkey, note) in VERIFIABLE {
        let (vkey_str, verifier, bytes) = load_pair(vkey, note);
        let parsed = Note::parse(&bytes).unwrap();
        parsed.verified_by(&verifier).unwrap();
        assert_eq!(parsed.to_bytes(), bytes, "{note} re-encodes byte for byte");
        assert_eq!(verifier.to_verifier_key(), vkey_str);
        assert_eq!(
            key_id(
                verifier.name(),
                ALG_ED25519,
                verifier.verifying_key().as_bytes()
            ),
            verifier.key_id()
        );
        assert_eq!(parsed.signatures.len(), 1);
        assert_eq!(parsed.signatures[0].name, verifier.name());
        assert_eq!(parsed.signatures[0].key_id, verifier.key_id());
    }
}

#[test]
fn go_signer_key_reproduces_go_note() {
    // The private key of the PeterNeumann example, published in Go's sumdb/note tests and in
    // signed_note's docs. Ed25519 is deterministic, so signing the text must give the example.
    let skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    let signer = NoteSigner::from_signer_key(skey).unwrap();
    assert_eq!(signer.to_signer_key(), skey);
    let want = example("golang-sumdb-note-PeterNeumann.note");
    let text = Note::parse(&want).unwrap().text;
    assert_eq!(signer.sign(&text).unwrap().as_bytes(), want.as_slice());
    let vkey = example_str("golang-sumdb-note-PeterNeumann.vkey");
    assert_eq!(signer.verifier().to_verifier_key(), vkey.trim_end());
}

#[test]
fn flipping_any_note_byte_fails() {
    for (vkey, note) in VERIFIABLE {
        let (_, verifier, bytes) = load_pair(vkey, note);
        for i in 0..bytes.len() {
            for mask in [0x01, 0x20, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= mask;
                let ok = Note::parse(&bad).is_ok_and(|n| n.verified_by(&verifier).is_ok());
                assert!(!ok, "{note}: byte {i} ^ {mask:#04x} still verifies");
            }
        }
    }
}

#[test]
fn flipping_any_signature_bit_fails() {
    for (vkey, note) in VERIFIABLE {
        let (_, verifier, bytes) = load_pair(vkey, note);
        let good = Note::parse(&bytes).unwrap();
        for byte in 0..good.signatures[0].bytes.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad.signatures[0].bytes[byte] ^= 1 << bit;
                assert_eq!(
                    bad.verified_by(&verifier),
                    Err(NoteError::InvalidSignature {
                        name: verifier.name().to_owned(),
                        key_id: verifier.key_id(),
                    }),
                    "{note}: signature byte {byte} bit {bit}"
                );
            }
        }
        // A flipped key ID makes it some other key's signature: ignored, so not signed by us.
        let mut bad = good.clone();
        bad.signatures[0].key_id ^= 1;
        assert!(matches!(
            bad.verified_by(&verifier),
            Err(NoteError::NotSignedBy { .. })
        ));
    }
}

#[test]
fn wrong_key_fails() {
    let (_, peter, peter_note) = load_pair(VERIFIABLE[1].0, VERIFIABLE[1].1);
    let (_, foo, foo_note) = load_pair(VERIFIABLE[0].0, VERIFIABLE[0].1);
    let peter_note = Note::parse(&peter_note).unwrap();
    let foo_note = Note::parse(&foo_note).unwrap();
    assert!(matches!(
        peter_note.verified_by(&foo),
        Err(NoteError::NotSignedBy { .. })
    ));
    assert!(matches!(
        foo_note.verified_by(&peter),
        Err(NoteError::NotSignedBy { .. })
    ));
    // A fresh key under the same name has another key ID, so its signatures are not ours.
    let impostor = NoteSigner::generate(peter.name()).unwrap();
    assert!(matches!(
        peter_note.verified_by(&impostor.verifier()),
        Err(NoteError::NotSignedBy { .. })
    ));
    let forged = Note::parse(impostor.sign(&peter_note.text).unwrap().as_bytes()).unwrap();
    assert!(matches!(
        forged.verified_by(&peter),
        Err(NoteError::NotSignedBy { .. })
    ));
}

#[test]
fn unknown_signatures_are_ignored_and_known_bad_ones_reject() {
    let (_, peter, bytes) = load_pair(VERIFIABLE[1].0, VERIFIABLE[1].1);
    let good = Note::parse(&bytes).unwrap();
    let sig = good.signatures[0].clone();
    let same_name_other_id = NoteSignature {
        key_id: sig.key_id.wrapping_add(1),
        bytes: vec![0; 64],
        ..sig.clone()
    };
    let same_id_other_name = NoteSignature {
        name: "EnochRoot".to_owned(),
        bytes: vec![0; 64],
        ..sig.clone()
    };
    let mut note = good.clone();
    note.signatures.insert(0, same_name_other_id);
    note.signatures.push(same_id_other_name);
    let reparsed = Note::parse(&note.to_bytes()).unwrap();
    assert_eq!(reparsed, note);
    reparsed.verified_by(&peter).unwrap();

    // A second, broken signature by the trusted key rejects the whole note.
    let mut dup = good.clone();
    let mut broken = sig.clone();
    broken.bytes[0] ^= 1;
    dup.signatures.push(broken);
    assert!(matches!(
        dup.verified_by(&peter),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn other_examples_parse_without_keys() {
    let stranger = NoteSigner::generate("stranger.example").unwrap().verifier();
    let cases = [
        (
            "signed-note-intro-quasimodo.note",
            vec!["quasimodo.example/salvatore"],
        ),
        (
            "tlog-checkpoint-example.note",
            vec!["example.com/behind-the-sofa"],
        ),
        (
            "tlog-cosignature-cosigned-checkpoint.note",
            vec!["example.com/behind-the-sofa", "witness.example.com/w1"],
        ),
    ];
    for (file, names) in cases {
        let bytes = example(file);
        let note = Note::parse(&bytes).unwrap();
        let got: Vec<&str> = note.signatures.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(got, names, "{file}");
        assert_eq!(note.to_bytes(), bytes, "{file} re-encodes byte for byte");
        // The text runs to the last blank line, keeping any earlier blank line.
        let s = String::from_utf8(bytes).unwrap();
        let cut = s.rfind("\n\n").unwrap();
        assert_eq!(note.text, s[..=cut]);
        assert!(matches!(
            note.verified_by(&stranger),
            Err(NoteError::NotSignedBy { .. })
        ));
    }
    // The quasimodo text has an inner blank line.
    let q = Note::parse(&example("signed-note-intro-quasimodo.note")).unwrap();
    assert!(q.text.contains(":\n\ned"));
}

#[test]
fn malformed_notes_are_rejected() {
    let good = example_str("golang-sumdb-note-PeterNeumann.note");
    let (text, sigs) = good.rsplit_once("\n\n").unwrap();
    let sig_line = sigs.trim_end();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("text only", format!("{text}\n").into_bytes()),
        (
            "no blank line",
            format!("{text}\n{sig_line}\n").into_bytes(),
        ),
        (
            "no final newline",
            format!("{text}\n\n{sig_line}").into_bytes(),
        ),
        ("empty signature block", format!("{text}\n\n").into_bytes()),
        (
            "control character",
            format!("{text}\t\n\n{sig_line}\n").into_bytes(),
        ),
        (
            "carriage return",
            format!("{text}\r\n\n{sig_line}\n").into_bytes(),
        ),
        ("not UTF-8", [&[0xff], good.as_bytes()].concat()),
        (
            "hyphen instead of em dash",
            format!("{text}\n\n{}\n", sig_line.replacen('\u{2014}', "-", 1)).into_bytes(),
        ),
        (
            "space in key name",
            format!("{text}\n\n{}\n", sig_line.replacen("Peter", "Peter ", 1)).into_bytes(),
        ),
        (
            "plus in key name",
            format!("{text}\n\n{}\n", sig_line.replacen("Peter", "Peter+", 1)).into_bytes(),
        ),
        (
            "bad base64",
            format!("{text}\n\n{}\n", sig_line.replacen("x08", "x0*", 1)).into_bytes(),
        ),
        (
            "signature of 4 bytes",
            format!(
                "{text}\n\n\u{2014} PeterNeumann {}\n",
                STANDARD.encode([1, 2, 3, 4])
            )
            .into_bytes(),
        ),
        (
            "blank line after the signatures",
            format!("{text}\n\n{sig_line}\n\n").into_bytes(),
        ),
    ];
    for (what, bytes) in bad {
        assert!(
            matches!(Note::parse(&bytes), Err(NoteError::MalformedNote { .. })),
            "{what} must not parse"
        );
    }
}

#[test]
fn signature_count_limit() {
    let good = example_str("golang-sumdb-note-PeterNeumann.note");
    let (text, sigs) = good.rsplit_once("\n\n").unwrap();
    let at_limit = format!("{text}\n\n{}", sigs.repeat(MAX_SIGNATURES));
    const { assert!(MAX_SIGNATURES >= 16, "the spec requires accepting 16") };
    assert_eq!(
        Note::parse(at_limit.as_bytes()).unwrap().signatures.len(),
        MAX_SIGNATURES
    );
    let over = format!("{text}\n\n{}", sigs.repeat(MAX_SIGNATURES + 1));
    assert!(matches!(
        Note::parse(over.as_bytes()),
        Err(NoteError::MalformedNote { .. })
    ));
}

#[test]
fn signing_checks_text_and_names() {
    let signer = NoteSigner::generate("example.com/log").unwrap();
    for text in ["", "no newline", "tab\there\n", "cr\r\n"] {
        assert!(
            matches!(signer.sign(text), Err(NoteError::MalformedText { .. })),
            "{text:?}"
        );
    }
    for name in [
        "",
        "a b",
        "a+b",
        "a\u{a0}b",
        "a\u{2003}b",
        "a\nb",
        "a\u{1}b",
    ] {
        assert!(!valid_key_name(name), "{name:?}");
        assert_eq!(
            NoteSigner::from_seed(name, [7; 32]).unwrap_err(),
            NoteError::InvalidKeyName {
                name: name.to_owned()
            }
        );
    }
    assert!(valid_key_name("example.com/log-1_ü"));
}

#[test]
fn key_strings_round_trip_and_reject_malformed() {
    let signer = NoteSigner::generate("example.com/log").unwrap();
    let skey = signer.to_signer_key();
    let vkey = signer.verifier().to_verifier_key();
    assert!(skey.starts_with("PRIVATE+KEY+example.com/log+"));
    assert_eq!(
        NoteSigner::from_signer_key(&skey).unwrap().to_signer_key(),
        skey
    );
    let verifier = NoteVerifier::from_verifier_key(&vkey).unwrap();
    assert_eq!(verifier, signer.verifier());
    assert_eq!(
        vkey,
        format!("example.com/log+{:08x}+{}", signer.key_id(), {
            let mut raw = vec![ALG_ED25519];
            raw.extend_from_slice(verifier.verifying_key().as_bytes());
            STANDARD.encode(raw)
        })
    );

    // Variations on the Go example key, whose ID has letters in it.
    let peter = example_str("golang-sumdb-note-PeterNeumann.vkey");
    let peter = peter.trim_end();
    NoteVerifier::from_verifier_key(peter).unwrap();
    let (name, rest) = peter.split_once('+').unwrap();
    let (id, key) = rest.split_once('+').unwrap();
    let raw = STANDARD.decode(key).unwrap();
    let mut other = raw.clone();
    other[0] = 0x02;
    let other_alg = format!("{name}+{id}+{}", STANDARD.encode(&other));
    assert_eq!(
        NoteVerifier::from_verifier_key(&other_alg).unwrap_err(),
        NoteError::UnsupportedAlgorithm { alg: 0x02 }
    );
    let wrong_id = format!(
        "{name}+{:08x}+{key}",
        u32::from_str_radix(id, 16).unwrap() ^ 1
    );
    assert!(matches!(
        NoteVerifier::from_verifier_key(&wrong_id),
        Err(NoteError::KeyIdMismatch { .. })
    ));
    let renamed = format!("PaulNeumann+{id}+{key}");
    assert!(matches!(
        NoteVerifier::from_verifier_key(&renamed),
        Err(NoteError::KeyIdMismatch { .. })
    ));
    let short = format!("{name}+{id}+{}", STANDARD.encode(&raw[..32]));
    let malformed = [
        format!("{name}+{id}"),
        format!("{name}+{}+{key}", id.to_uppercase()),
        format!("{name}+{}+{key}", &id[1..]),
        format!("{name}+0{id}+{key}"),
        format!("{name}+{id}+{key}!"),
        format!("{name}+{id}+"),
        short,
    ];
    for s in &malformed {
        assert!(
            matches!(
                NoteVerifier::from_verifier_key(s),
                Err(NoteError::MalformedKey { .. })
            ),
            "{s}"
        );
    }
    // A verifier key is not a signer key, and vice versa.
    assert!(NoteSigner::from_signer_key(&vkey).is_err());
    assert!(NoteVerifier::from_verifier_key(&skey).is_err());
    let swapped = skey.replacen(&format!("+{:08x}+", signer.key_id()), "+00000000+", 1);
    assert!(matches!(
        NoteSigner::from_signer_key(&swapped),
        Err(NoteError::KeyIdMismatch { .. })
    ));
    // The Debug output of a signer never shows the secret.
    let secret_b64 = skey.splitn(5, '+').nth(4).unwrap();
    assert_eq!(secret_b64.len(), 44);
    assert!(!format!("{signer:?}").contains(secret_b64));
}

#[test]
fn our_notes_verify_with_signed_note() {
    let signer = NoteSigner::generate("example.com/stele").unwrap();
    let text = "hello\n\nworld\n";
    let note = signer.sign(text).unwrap();
    let theirs = signed_note::Note::from_bytes(note.as_bytes()).unwrap();
    let list = their_verifier_list(&signer.verifier().to_verifier_key());
    let (verified, unverified) = theirs.verify(&list).unwrap();
    assert!(unverified.is_empty());
    assert_eq!(verified.len(), 1);
    assert_eq!(verified[0].name(), signer.name());
    assert_eq!(verified[0].id(), signer.key_id());
    assert_eq!(theirs.text(), text.as_bytes());
    assert_eq!(theirs.to_bytes(), note.as_bytes());

    // A line from sign_line appended to the note also verifies there.
    let cosigner = NoteSigner::generate("witness.example").unwrap();
    let cosigned = format!("{note}{}", cosigner.sign_line(text));
    let theirs = signed_note::Note::from_bytes(cosigned.as_bytes()).unwrap();
    let list = their_verifier_list(&cosigner.verifier().to_verifier_key());
    let (verified, unverified) = theirs.verify(&list).unwrap();
    assert_eq!(verified[0].name(), "witness.example");
    assert_eq!(unverified[0].name(), "example.com/stele");
}

#[test]
fn signed_note_notes_verify_with_ours() {
    let (skey, vkey) = signed_note::generate_key(&mut OsBytes, "example.com/azul");
    let their_signer = signed_note::StandardSigner::new(&skey).unwrap();
    let text = "tree head\n42\n";
    let mut theirs = signed_note::Note::new(text.as_bytes(), &[]).unwrap();
    theirs.add_sigs(&[&their_signer]).unwrap();
    let bytes = theirs.to_bytes();

    let verifier = NoteVerifier::from_verifier_key(&vkey).unwrap();
    let ours = Note::parse(&bytes).unwrap();
    assert_eq!(ours.text, text);
    ours.verified_by(&verifier).unwrap();
    assert_eq!(ours.to_bytes(), bytes);
}

#[test]
fn key_strings_and_ids_agree_with_signed_note() {
    use signed_note::{Signer as _, Verifier as _};

    // Theirs in ours: same name, key ID and encoding; same deterministic signature.
    let (skey, vkey) = signed_note::generate_key(&mut OsBytes, "example.com/azul");
    let our_signer = NoteSigner::from_signer_key(&skey).unwrap();
    let our_verifier = NoteVerifier::from_verifier_key(&vkey).unwrap();
    let their_signer = signed_note::StandardSigner::new(&skey).unwrap();
    let their_verifier = signed_note::StandardVerifier::new(&vkey).unwrap();
    assert_eq!(our_signer.to_signer_key(), skey);
    assert_eq!(our_verifier.to_verifier_key(), vkey);
    assert_eq!(our_signer.key_id(), their_signer.key_id());
    assert_eq!(our_verifier.key_id(), their_verifier.key_id());
    assert_eq!(our_signer.name(), their_signer.name());
    let text = "same bytes\n";
    let mut theirs = signed_note::Note::new(text.as_bytes(), &[]).unwrap();
    theirs.add_sigs(&[&their_signer]).unwrap();
    assert_eq!(our_signer.sign(text).unwrap().as_bytes(), theirs.to_bytes());

    // Ours in theirs.
    let signer = NoteSigner::generate("example.com/stele").unwrap();
    let their_signer = signed_note::StandardSigner::new(&signer.to_signer_key()).unwrap();
    let their_verifier =
        signed_note::StandardVerifier::new(&signer.verifier().to_verifier_key()).unwrap();
    assert_eq!(their_signer.key_id(), signer.key_id());
    assert_eq!(their_verifier.key_id(), signer.key_id());
    assert_eq!(their_verifier.name(), signer.name());

    // The key ID functions agree (theirs takes the type byte as part of the key).
    let pubkey = signer.verifier().verifying_key().to_bytes();
    let typed = [&[ALG_ED25519][..], &pubkey].concat();
    assert_eq!(
        key_id(signer.name(), ALG_ED25519, &pubkey),
        signed_note::key_id(signer.name(), &typed)
    );
}

/// Texts a note may carry: printable lines (any Unicode, no controls), each ending in '\n'.
fn note_text() -> impl Strategy<Value = String> {
    prop::collection::vec("[^\\p{Cc}]{0,40}", 1..6).prop_map(|lines| {
        lines.into_iter().fold(String::new(), |mut acc, l| {
            acc.push_str(&l);
            acc.push('\n');
            acc
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_text_signs_parses_and_verifies_both_ways(text in note_text(), seed in any::<[u8; 32]>()) {
        let signer = NoteSigner::from_seed("example.com/prop", seed).unwrap();
        let signed = signer.sign(&text).unwrap();
        let note = Note::parse(signed.as_bytes()).unwrap();
        prop_assert_eq!(&note.text, &text);
        prop_assert!(note.verified_by(&signer.verifier()).is_ok());
        prop_assert_eq!(note.to_bytes(), signed.as_bytes());
        let theirs = signed_note::Note::from_bytes(signed.as_bytes()).unwrap();
        let list = their_verifier_list(&signer.verifier().to_verifier_key());
        prop_assert!(theirs.verify(&list).is_ok());
    }
}
