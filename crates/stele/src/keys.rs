//! Reading a trusted verifier key from the command line: the key string itself or `@FILE`.

use std::path::Path;

use anyhow::{Context, Result};
use stele_core::note::NoteVerifier;

/// Parses `--key`: a C2SP verifier key string (`<name>+<hex id>+<base64 key>`), or `@FILE`
/// naming a file that holds one (surrounding whitespace ignored).
///
/// # Errors
/// An unreadable file or a malformed key.
pub fn verifier_from_arg(arg: &str) -> Result<NoteVerifier> {
    let (text, from) = match arg.strip_prefix('@') {
        Some(path) => {
            let text = std::fs::read_to_string(Path::new(path))
                .with_context(|| format!("reading verifier key file {path}"))?;
            (text, format!(" in {path}"))
        }
        None => (arg.to_string(), String::new()),
    };
    NoteVerifier::from_verifier_key(text.trim()).with_context(|| {
        format!("malformed verifier key{from} (expected <name>+<hex key id>+<base64 key>)")
    })
}

#[cfg(test)]
mod tests {
    use stele_core::note::NoteSigner;

    use super::*;

    #[test]
    fn key_is_read_inline_or_from_a_file() {
        let signer = NoteSigner::generate("example.com/log").unwrap();
        let vkey = signer.verifier().to_verifier_key();
        assert_eq!(verifier_from_arg(&vkey).unwrap(), signer.verifier());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("log.vkey");
        std::fs::write(&file, format!("{vkey}\n")).unwrap();
        assert_eq!(
            verifier_from_arg(&format!("@{}", file.display())).unwrap(),
            signer.verifier()
        );

        assert!(verifier_from_arg("not-a-key").is_err());
        let missing =
            verifier_from_arg(&format!("@{}", dir.path().join("nope").display())).unwrap_err();
        assert!(format!("{missing:#}").contains("nope"), "{missing:#}");
    }
}
