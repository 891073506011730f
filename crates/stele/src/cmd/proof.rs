//! `stele proof inclusion|consistency`: fetch a proof from the HTTP API, print it, and with
//! `--key` check it locally against the log's signed checkpoint.
//!
//! A proof can only be checked against a signed root of the same tree size, so with `--key`
//! the proof is requested for the size of the latest checkpoint unless a size is given; for
//! another size the proof is printed but cannot be checked (exit 2).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;
use stele_core::checkpoint::Checkpoint;
use stele_core::hash::leaf_hash;
use stele_core::merkle::{verify_consistency, verify_inclusion};
use stele_core::note::NoteVerifier;
use stele_core::Hash;

use crate::client::{Client, ConsistencyProof, InclusionProof, DEFAULT_URL};
use crate::exit::{self, Failure};
use crate::keys;

/// How long `proof inclusion --key` waits for a checkpoint covering a just-appended entry.
const CHECKPOINT_WAIT: Duration = Duration::from_secs(10);

/// Arguments of `stele proof`.
#[derive(Debug, Args)]
pub struct ProofArgs {
    #[command(subcommand)]
    command: ProofCommand,
}

#[derive(Debug, Subcommand)]
enum ProofCommand {
    /// Proof that an entry is in the tree of a given size.
    Inclusion(InclusionArgs),
    /// Proof that the tree of one size is a prefix of the tree of a larger size.
    Consistency(ConsistencyArgs),
}

#[derive(Debug, Args)]
struct Remote {
    /// Server URL.
    #[arg(long, default_value = DEFAULT_URL)]
    url: String,
    /// Verify the proof against the signed checkpoint with this verifier key (or @FILE).
    #[arg(long, value_name = "VKEY")]
    key: Option<String>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("entry").required(true).args(["index", "id", "leaf_hash"]))]
struct InclusionArgs {
    /// Log index of the entry.
    #[arg(long)]
    index: Option<u64>,
    /// Event id of the entry.
    #[arg(long)]
    id: Option<uuid::Uuid>,
    /// RFC 6962 leaf hash of the entry (base64 or hex).
    #[arg(long, value_name = "HASH", value_parser = parse_hash)]
    leaf_hash: Option<Hash>,
    /// Tree size [default: the latest checkpoint's].
    #[arg(long, value_name = "N")]
    tree_size: Option<u64>,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
struct ConsistencyArgs {
    /// The older tree size.
    #[arg(long, value_name = "A")]
    from: u64,
    /// The newer tree size [default: the latest checkpoint's].
    #[arg(long, value_name = "B")]
    to: Option<u64>,
    /// Root of the tree of size A (base64 or hex), which --key needs to check the proof.
    #[arg(long, value_name = "ROOT", requires = "key", value_parser = parse_hash)]
    from_root: Option<Hash>,
    #[command(flatten)]
    remote: Remote,
}

/// Runs `stele proof`.
///
/// # Errors
/// Server errors (exit 1), a proof that fails to verify (exit 1), bad arguments (exit 2).
pub fn run(args: ProofArgs) -> Result<ExitCode> {
    match args.command {
        ProofCommand::Inclusion(a) => inclusion(a),
        ProofCommand::Consistency(a) => consistency(a),
    }
}

fn inclusion(args: InclusionArgs) -> Result<ExitCode> {
    let client = Client::new(&args.remote.url)?;
    let Some(key) = &args.remote.key else {
        let mut query = match (args.index, args.id, args.leaf_hash) {
            (Some(i), _, _) => format!("index={i}"),
            (None, Some(id), _) => format!("id={id}"),
            (None, None, Some(h)) => format!("leaf_hash={}", h.to_hex()),
            (None, None, None) => bail!("give --index, --id or --leaf-hash"),
        };
        if let Some(n) = args.tree_size {
            query.push_str(&format!("&tree_size={n}"));
        }
        print_json(&client.get_bytes(&format!("/v1/proofs/inclusion?{query}"))?)?;
        return Ok(ExitCode::SUCCESS);
    };
    let verifier = keys::verifier_from_arg(key)?;
    let mut args = args;
    if let (None, None, Some(h)) = (args.index, args.id, args.leaf_hash) {
        // Find the entry's index; the leaf is then checked against the entry's own bytes.
        let found: serde_json::Value = serde_json::from_slice(
            &client.get_bytes(&format!("/v1/proofs/inclusion?leaf_hash={}", h.to_hex()))?,
        )
        .context("reading the proof answer")?;
        args.index = Some(
            found["index"]
                .as_u64()
                .ok_or_else(|| Failure::verification("the proof answer lacks an index"))?,
        );
    }
    // The entry itself, so its leaf hash is computed here rather than taken from the server.
    let which = args.index.map_or_else(
        || args.id.map(|id| id.to_string()).unwrap_or_default(),
        |i| i.to_string(),
    );
    let resp = client.get(&format!("/v1/events/{which}"))?;
    let index = match args.index {
        Some(i) => i,
        None => resp
            .headers()
            .get("stele-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                Failure::verification("the event answer lacks a valid Stele-Index header")
            })?,
    };
    let entry = resp.bytes().context("reading the entry")?;
    let mut cp = client.checkpoint(&verifier)?.0;
    if args.tree_size.is_none() && index >= cp.size {
        eprintln!(
            "waiting for a checkpoint that covers entry {index} (latest: size {})",
            cp.size
        );
        let start = Instant::now();
        while index >= cp.size && start.elapsed() < CHECKPOINT_WAIT {
            std::thread::sleep(Duration::from_millis(250));
            cp = client.checkpoint(&verifier)?.0;
        }
    }
    let tree_size = args.tree_size.unwrap_or(cp.size);
    let body = client.get_bytes(&format!(
        "/v1/proofs/inclusion?index={index}&tree_size={tree_size}"
    ))?;
    print_json(&body)?;
    let proof: InclusionProof = parse(&body)?;
    if proof.index != index || proof.tree_size != tree_size {
        return Err(Failure::verification(format!(
            "asked for entry {index} in size {tree_size}, got entry {} in size {}",
            proof.index, proof.tree_size
        ))
        .into());
    }
    let leaf = leaf_hash(&entry);
    if let Some(wanted) = args.leaf_hash.filter(|w| *w != leaf) {
        return Err(Failure::verification(format!(
            "the server found entry {index} for leaf {}, but that entry hashes to {}",
            wanted.to_base64(),
            leaf.to_base64()
        ))
        .into());
    }
    if leaf != proof.leaf_hash {
        return Err(Failure::verification(format!(
            "entry {index} hashes to {}, but the proof is for leaf {}",
            leaf.to_base64(),
            proof.leaf_hash.to_base64()
        ))
        .into());
    }
    if tree_size != cp.size {
        return Ok(cannot_verify(&cp, tree_size));
    }
    verify_inclusion(&leaf, index, tree_size, &proof.hashes, &cp.root).map_err(|e| {
        Failure::verification(format!(
            "inclusion proof of entry {index} in size {tree_size}: {e}"
        ))
    })?;
    eprintln!(
        "verified: entry {index} is in {} at signed checkpoint size {} (root {})",
        cp.origin,
        cp.size,
        cp.root.to_base64()
    );
    Ok(ExitCode::SUCCESS)
}

fn consistency(args: ConsistencyArgs) -> Result<ExitCode> {
    let client = Client::new(&args.remote.url)?;
    let verified: Option<(NoteVerifier, Checkpoint)> = match &args.remote.key {
        Some(key) => {
            let verifier = keys::verifier_from_arg(key)?;
            let cp = client.checkpoint(&verifier)?.0;
            Some((verifier, cp))
        }
        None => None,
    };
    let to = args.to.or(verified.as_ref().map(|(_, cp)| cp.size));
    let query = match to {
        Some(to) => format!("from={}&to={to}", args.from),
        None => format!("from={}", args.from),
    };
    let body = client.get_bytes(&format!("/v1/proofs/consistency?{query}"))?;
    print_json(&body)?;
    let Some((_, cp)) = verified else {
        return Ok(ExitCode::SUCCESS);
    };
    let proof: ConsistencyProof = parse(&body)?;
    if proof.from != args.from || Some(proof.to) != to {
        return Err(Failure::verification(format!(
            "asked for sizes {}..{to:?}, got {}..{}",
            args.from, proof.from, proof.to
        ))
        .into());
    }
    if proof.to != cp.size {
        return Ok(cannot_verify(&cp, proof.to));
    }
    let Some(from_root) = args.from_root else {
        eprintln!(
            "not verified: checking a consistency proof needs the root of size {} too; give --from-root \
             (or use `stele verify --url`, which keeps the last checkpoint it trusted)",
            args.from
        );
        return Ok(ExitCode::from(exit::USAGE));
    };
    verify_consistency(proof.from, proof.to, &proof.hashes, &from_root, &cp.root).map_err(|e| {
        Failure::verification(format!(
            "consistency proof {}..{}: {e}",
            proof.from, proof.to
        ))
    })?;
    eprintln!(
        "verified: the tree of size {} (root {}) is a prefix of {} at signed checkpoint size {}",
        proof.from,
        from_root.to_base64(),
        cp.origin,
        cp.size
    );
    Ok(ExitCode::SUCCESS)
}

/// Says why a proof for `size` was not checked against checkpoint `cp`; exit 2.
fn cannot_verify(cp: &Checkpoint, size: u64) -> ExitCode {
    eprintln!(
        "not verified: the proof is for tree size {size}, but the signed checkpoint is for size {} \
         and a proof can only be checked against a signed root of its own size (leave out the size to use the checkpoint's)",
        cp.size
    );
    ExitCode::from(exit::USAGE)
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| Failure::verification(format!("malformed proof: {e}")).into())
}

/// Prints a JSON answer pretty (or as is, if it is not JSON).
fn print_json(body: &[u8]) -> Result<()> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => println!(
            "{}",
            serde_json::to_string_pretty(&v).context("formatting JSON")?
        ),
        Err(_) => println!("{}", String::from_utf8_lossy(body)),
    }
    Ok(())
}

/// A hash as base64 (as in checkpoints and the API) or hex.
fn parse_hash(s: &str) -> Result<Hash, String> {
    Hash::from_base64(s)
        .or_else(|| Hash::from_hex(s))
        .ok_or_else(|| format!("{s:?} is not a 32-byte hash in base64 or hex"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: ProofCommand,
    }

    #[test]
    fn inclusion_needs_exactly_one_of_index_and_id() {
        assert!(Cli::try_parse_from(["p", "inclusion", "--index", "3"]).is_ok());
        assert!(Cli::try_parse_from([
            "p",
            "inclusion",
            "--id",
            "0190d7a0-0000-7000-8000-000000000000"
        ])
        .is_ok());
        assert!(Cli::try_parse_from(["p", "inclusion"]).is_err());
        assert!(Cli::try_parse_from([
            "p",
            "inclusion",
            "--index",
            "3",
            "--id",
            "0190d7a0-0000-7000-8000-000000000000"
        ])
        .is_err());
    }

    #[test]
    fn roots_are_read_as_base64_or_hex() {
        let h = Hash([7u8; 32]);
        assert_eq!(parse_hash(&h.to_base64()), Ok(h));
        assert_eq!(parse_hash(&h.to_hex()), Ok(h));
        assert!(parse_hash("abc").is_err());
        assert!(
            Cli::try_parse_from([
                "p",
                "consistency",
                "--from",
                "1",
                "--from-root",
                &h.to_hex()
            ])
            .is_err(),
            "--from-root without --key"
        );
    }
}
