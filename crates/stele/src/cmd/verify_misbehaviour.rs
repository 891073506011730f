//! `stele verify-misbehaviour FILE --key VKEY`: check a proof of misbehaviour offline — two
//! checkpoints signed by the log's key that cannot both be true (the format is in
//! `docs/witness.md`). Exit 0 when the file proves the log misbehaved, 1 when it does not.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use stele_core::misbehaviour::MisbehaviourProof;

use crate::exit::Failure;
use crate::keys;

/// Arguments of `stele verify-misbehaviour`.
#[derive(Debug, Args)]
pub struct VerifyMisbehaviourArgs {
    /// The proof file (written by `stele verify` or found in a witness's misbehaviour/ directory).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The log's verifier key, or @FILE.
    #[arg(long, value_name = "VKEY")]
    key: String,
}

/// Runs `stele verify-misbehaviour`; prints what the proof shows.
///
/// # Errors
/// A proof that is malformed or proves nothing (exit 1); an unreadable file or a bad key (2).
pub fn run(args: &VerifyMisbehaviourArgs) -> Result<ExitCode> {
    let key = keys::verifier_from_arg(&args.key)?;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let proof = MisbehaviourProof::parse(&bytes)
        .map_err(|e| Failure::verification(format!("{}: {e}", args.file.display())))?;
    let contradiction = proof.verify(&key).map_err(|e| {
        Failure::verification(format!(
            "{} does not prove misbehaviour by {}: {e}",
            args.file.display(),
            key.to_verifier_key()
        ))
    })?;
    println!("proven: {contradiction}");
    Ok(ExitCode::SUCCESS)
}
