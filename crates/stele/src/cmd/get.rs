//! `stele get INDEX|ID`: print one stored event as the log holds it.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::client::{Client, DEFAULT_URL};

/// Arguments of `stele get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Log index (decimal) or event id (UUID).
    #[arg(value_name = "INDEX|ID")]
    key: String,
    /// Server URL.
    #[arg(long, default_value = DEFAULT_URL)]
    url: String,
}

/// Runs `stele get`: prints the stored entry byte for byte, then a newline.
///
/// # Errors
/// A key that is neither index nor UUID (exit 2); the server's error answer, e.g. 404 (exit 1).
pub fn run(args: GetArgs) -> Result<ExitCode> {
    let is_index = !args.key.is_empty() && args.key.bytes().all(|b| b.is_ascii_digit());
    if !is_index && uuid::Uuid::try_parse(&args.key).is_err() {
        bail!(
            "{:?} is neither a log index nor an event id (UUID)",
            args.key
        );
    }
    let client = Client::new(&args.url)?;
    let entry = client.get_bytes(&format!("/v1/events/{}", args.key))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&entry)
        .and_then(|()| out.write_all(b"\n"))
        .context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}
