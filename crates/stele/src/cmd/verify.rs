//! `stele verify`: check a log.
//!
//! - Offline (`--data DIR`): re-derive everything in the data directory from the stored
//!   entries and check it against the signed checkpoint ([`stele_store::verify_dir`]). Reads
//!   only, so it is safe while the server runs.
//! - Remote (`--url URL --key VKEY`): check the server's signed checkpoint, prove it consistent
//!   with the last checkpoint this client trusted (kept in a state file), and with `--full`
//!   recompute the root from every entry the server serves. `--witness-key`/`--witness-quorum`
//!   require witness cosignatures, `--gossip` compares with witnesses' views, and a caught
//!   contradiction is written out as a proof of misbehaviour (see `docs/witness.md`).
//!   A key of an earlier era follows the log's key-rotation statements to the current key
//!   (see `docs/key-rotation.md`); offline, `--key` may be such a key too.

mod evidence;
mod gossip;
mod remote;
mod rotation;
mod state;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use stele_core::cosignature::{CosignatureVerifier, WitnessPolicy};
use stele_store::{datadir, layout::Layout, verify_dir};

use crate::{exit, keys, paths};

/// Arguments of `stele verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Data directory to verify offline [default: $STELE_DATA, $XDG_DATA_HOME/stele or
    /// ~/.local/share/stele].
    #[arg(long, value_name = "DIR", conflicts_with = "url")]
    data: Option<PathBuf>,
    /// Verify a running server instead, over its HTTP API (needs --key).
    #[arg(long, requires = "key")]
    url: Option<String>,
    /// The log's verifier key, or @FILE [offline default: DIR/key/verifier.vkey].
    #[arg(long, value_name = "VKEY")]
    key: Option<String>,
    /// Where to keep the last trusted checkpoint (with --url)
    /// [default: $XDG_STATE_HOME/stele/<origin>.checkpoint or ~/.local/state/stele/…].
    #[arg(long, value_name = "FILE", requires = "url")]
    state: Option<PathBuf>,
    /// Also download every entry bundle and level-0 tile and recompute the root (with --url).
    #[arg(long, requires = "url")]
    full: bool,
    /// A trusted witness's cosignature verifier key (type 0x04), or @FILE; repeat for several.
    /// The checkpoint must carry valid cosignatures from --witness-quorum of them (with --url).
    #[arg(long = "witness-key", value_name = "VKEY", requires = "url")]
    witness_keys: Vec<String>,
    /// How many of the --witness-key witnesses must have cosigned [default: all of them].
    #[arg(long, value_name = "K", requires = "witness_keys")]
    witness_quorum: Option<usize>,
    /// Compare the checkpoint with the one this witness cosigned (its URL), and show it ours;
    /// repeat for several (with --url).
    #[arg(long = "gossip", value_name = "WITNESS_URL", requires = "url")]
    gossip: Vec<String>,
    /// Where to write a proof of misbehaviour if the log is caught contradicting itself
    /// [default: beside the state file, <state file>.<unix time>.misbehaviour].
    #[arg(long, value_name = "FILE", requires = "url")]
    misbehaviour_out: Option<PathBuf>,
}

/// Runs `stele verify`.
///
/// # Errors
/// Usage and environment problems (exit 2). Damage and verification failures exit 1.
pub fn run(args: VerifyArgs) -> Result<ExitCode> {
    match (&args.url, &args.key) {
        (Some(url), Some(key)) => remote::run(&remote::Options {
            url,
            key,
            state_file: args.state.as_deref(),
            full: args.full,
            policy: witness_policy(&args.witness_keys, args.witness_quorum)?,
            gossip: &args.gossip,
            misbehaviour_out: args.misbehaviour_out.as_deref(),
        }),
        (Some(_), None) => {
            bail!("--url needs --key: a remote log is checked against the key you trust")
        }
        (None, key) => offline(args.data.as_deref(), key.as_deref()),
    }
}

/// The policy of `--witness-key` (inline or `@FILE`) and `--witness-quorum` (default: all).
fn witness_policy(keys: &[String], quorum: Option<usize>) -> Result<Option<WitnessPolicy>> {
    if keys.is_empty() {
        return Ok(None);
    }
    let mut witnesses = Vec::with_capacity(keys.len());
    for arg in keys {
        let text = match arg.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading witness key file {path}"))?,
            None => arg.clone(),
        };
        witnesses.push(
            CosignatureVerifier::from_verifier_key(text.trim()).with_context(|| {
                format!("--witness-key {arg:?} is not a witness (type 0x04) verifier key")
            })?,
        );
    }
    let quorum = quorum.unwrap_or(witnesses.len());
    if quorum == 0 {
        bail!("--witness-quorum 0 would accept any checkpoint; leave out --witness-key instead");
    }
    Ok(Some(
        WitnessPolicy::new(witnesses, quorum).context("--witness-quorum")?,
    ))
}

fn offline(data: Option<&std::path::Path>, key: Option<&str>) -> Result<ExitCode> {
    let dir = paths::data_dir(data)?;
    if !dir.is_dir() {
        bail!("no data directory at {}", dir.display());
    }
    if !Layout::new(&dir).log_dir().is_dir() {
        bail!(
            "{} holds no log yet (no log/ directory; `stele serve` creates it)",
            dir.display()
        );
    }
    let given = match key {
        Some(k) => keys::verifier_from_arg(k)?,
        None => datadir::load_verifier(&dir).with_context(|| {
            format!(
                "reading the verifier key of {} (or give --key)",
                dir.display()
            )
        })?,
    };
    // A key of an earlier era leads, through the rotation statements it signed, to the key
    // that signs the latest checkpoint.
    let history = stele_store::rotation::load_rotations(&dir)?;
    let (verifier, followed) = match stele_core::rotation::follow(
        &given,
        history.iter().map(|r| r.statement.as_bytes()),
    ) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {}: {e}", Layout::new(&dir).rotations().display());
            return Ok(ExitCode::from(exit::FAILURE));
        }
    };
    for r in &followed {
        eprintln!(
            "followed a key rotation: from tree size {} the log signs with {}",
            r.from_size,
            r.new_key.to_verifier_key()
        );
    }
    match verify_dir(&dir, &verifier) {
        Ok(report) => {
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            for r in &report.rotations {
                if let Err(e) = stele_server::keys::check_rotation_entry(&r.event, &r.record) {
                    eprintln!("error: {}: {e}", Layout::new(&dir).rotations().display());
                    return Ok(ExitCode::from(exit::FAILURE));
                }
            }
            let eras = if report.rotations.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} key rotations (each statement, record and earlier key's checkpoint checked)",
                    report.rotations.len()
                )
            };
            println!(
                "ok: {} entries, checkpoint size {}, root {}{eras}",
                report.entries,
                report.checkpoint_size,
                report.checkpoint_root.to_base64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            // Display is `<file>: entry <index>: <detail>`.
            eprintln!("error: {e}");
            Ok(ExitCode::from(exit::FAILURE))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: VerifyArgs,
    }

    #[test]
    fn remote_only_flags_need_url_and_url_needs_key() {
        assert!(Cli::try_parse_from(["v", "--data", "/d"]).is_ok());
        assert!(Cli::try_parse_from([
            "v", "--url", "http://h", "--key", "k", "--full", "--state", "/s"
        ])
        .is_ok());
        assert!(Cli::try_parse_from(["v", "--url", "http://h"]).is_err());
        assert!(Cli::try_parse_from(["v", "--data", "/d", "--full"]).is_err());
        assert!(Cli::try_parse_from(["v", "--data", "/d", "--state", "/s"]).is_err());
        assert!(
            Cli::try_parse_from(["v", "--data", "/d", "--url", "http://h", "--key", "k"]).is_err()
        );
    }

    #[test]
    fn witness_flags_need_url_and_keys_and_make_a_policy() {
        let w = stele_core::cosignature::Cosigner::generate("w.example").unwrap();
        let vkey = w.verifier().to_verifier_key();
        let url = ["v", "--url", "http://h", "--key", "k"];
        let with = |extra: &[&str]| {
            let mut a = url.to_vec();
            a.extend_from_slice(extra);
            Cli::try_parse_from(a)
        };
        assert!(with(&[
            "--witness-key",
            &vkey,
            "--witness-quorum",
            "1",
            "--gossip",
            "http://w"
        ])
        .is_ok());
        assert!(with(&["--witness-quorum", "1"]).is_err());
        assert!(Cli::try_parse_from(["v", "--data", "/d", "--witness-key", &vkey]).is_err());
        assert!(Cli::try_parse_from(["v", "--data", "/d", "--gossip", "http://w"]).is_err());

        let policy = witness_policy(std::slice::from_ref(&vkey), None)
            .unwrap()
            .unwrap();
        assert_eq!((policy.quorum(), policy.witnesses().len()), (1, 1));
        assert!(witness_policy(std::slice::from_ref(&vkey), Some(2)).is_err());
        assert!(witness_policy(std::slice::from_ref(&vkey), Some(0)).is_err());
        assert!(witness_policy(&[], Some(1)).unwrap().is_none());
        // A log's (type 0x01) key is not a witness key.
        let log = stele_core::note::NoteSigner::generate("log").unwrap();
        assert!(witness_policy(&[log.verifier().to_verifier_key()], None).is_err());
    }

    #[test]
    fn missing_data_directory_is_an_environment_error_not_damage() {
        let dir = tempfile::tempdir().unwrap();
        let err = offline(Some(&dir.path().join("absent")), None).unwrap_err();
        assert_eq!(exit::code_for(&err), ExitCode::from(exit::USAGE));
        let err = offline(Some(dir.path()), None).unwrap_err();
        assert!(err.to_string().contains("no log"), "{err}");
    }
}
