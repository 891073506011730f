//! `stele verify`: check a log.
//!
//! - Offline (`--data DIR`): re-derive everything in the data directory from the stored
//!   entries and check it against the signed checkpoint ([`stele_store::verify_dir`]). Reads
//!   only, so it is safe while the server runs.
//! - Remote (`--url URL --key VKEY`): check the server's signed checkpoint, prove it consistent
//!   with the last checkpoint this client trusted (kept in a state file), and with `--full`
//!   recompute the root from every entry the server serves.

mod remote;
mod state;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
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
}

/// Runs `stele verify`.
///
/// # Errors
/// Usage and environment problems (exit 2). Damage and verification failures exit 1.
pub fn run(args: VerifyArgs) -> Result<ExitCode> {
    match (&args.url, &args.key) {
        (Some(url), Some(key)) => remote::run(url, key, args.state.as_deref(), args.full),
        (Some(_), None) => {
            bail!("--url needs --key: a remote log is checked against the key you trust")
        }
        (None, key) => offline(args.data.as_deref(), key.as_deref()),
    }
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
    let verifier = match key {
        Some(k) => keys::verifier_from_arg(k)?,
        None => datadir::load_verifier(&dir).with_context(|| {
            format!(
                "reading the verifier key of {} (or give --key)",
                dir.display()
            )
        })?,
    };
    match verify_dir(&dir, &verifier) {
        Ok(report) => {
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "ok: {} entries, checkpoint size {}, root {}",
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
    fn missing_data_directory_is_an_environment_error_not_damage() {
        let dir = tempfile::tempdir().unwrap();
        let err = offline(Some(&dir.path().join("absent")), None).unwrap_err();
        assert_eq!(exit::code_for(&err), ExitCode::from(exit::USAGE));
        let err = offline(Some(dir.path()), None).unwrap_err();
        assert!(err.to_string().contains("no log"), "{err}");
    }
}
