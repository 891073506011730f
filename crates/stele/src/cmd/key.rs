//! `stele key public`: print a data directory's verifier key.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::paths;

/// Arguments of `stele key`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Print the log's C2SP verifier key (the public key clients trust), one line.
    Public {
        /// Data directory [default: $STELE_DATA, $XDG_DATA_HOME/stele or ~/.local/share/stele].
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
    },
}

/// Runs `stele key`.
///
/// # Errors
/// No data directory or no key in it (exit 2).
pub fn run(args: KeyArgs) -> Result<ExitCode> {
    match args.command {
        KeyCommand::Public { data } => {
            let dir = paths::data_dir(data.as_deref())?;
            let verifier = stele_store::datadir::load_verifier(&dir)
                .with_context(|| format!("no verifier key in data directory {} (run `stele keygen --data {0}` or `stele serve` first)", dir.display()))?;
            println!("{}", verifier.to_verifier_key());
            Ok(ExitCode::SUCCESS)
        }
    }
}
