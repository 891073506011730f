//! `stele export-ocsf`: stored events as OCSF events (API Activity, Authorize Session, Account
//! Change), one JSON object per line, for SIEMs. Reads a range of a running log through its
//! entry bundles (C2SP tlog-tiles), or stored entries from a file. The mapping is
//! `stele_server::ocsf` (docs/integrations/ocsf.md).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use stele_core::tile::{bundle_decode, TileKind, TilePath};

use crate::client::{Client, DEFAULT_URL};

/// Entries per full entry bundle.
const BUNDLE: u64 = 256;

/// Arguments of `stele export-ocsf`.
#[derive(Debug, Args)]
pub struct ExportOcsfArgs {
    /// Server URL.
    #[arg(long, default_value = DEFAULT_URL)]
    url: String,
    /// First log index to export.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Log index to stop before [default: the log's size].
    #[arg(long)]
    to: Option<u64>,
    /// Read stored entries (one JSON object per line, as `stele get` prints them) from this
    /// file instead of a server; `-` for standard input.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["from", "to"])]
    input: Option<PathBuf>,
}

#[derive(Deserialize)]
struct LogInfo {
    size: u64,
}

/// Runs `stele export-ocsf`.
///
/// # Errors
/// An unreachable server or unreadable file (exit 2), an entry that is not a stored event
/// (exit 1 via the error's text).
pub fn run(args: ExportOcsfArgs) -> Result<ExitCode> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut emit = |entry: &[u8], at: &str| -> Result<()> {
        let event = stele_server::ocsf::from_entry(entry)
            .with_context(|| format!("{at} is not a stored Stele event"))?;
        serde_json::to_writer(&mut out, &event).context("writing to stdout")?;
        out.write_all(b"\n").context("writing to stdout")
    };
    if let Some(path) = &args.input {
        let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            let f =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            Box::new(std::io::BufReader::new(f))
        };
        for (n, line) in reader.split(b'\n').enumerate() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            if line.trim_ascii().is_empty() {
                continue;
            }
            emit(line.trim_ascii(), &format!("line {}", n + 1))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let client = Client::new(&args.url)?;
    let size = client.get_json::<LogInfo>("/v1/log")?.size;
    let to = args.to.unwrap_or(size).min(size);
    if args.from > to {
        bail!("--from {} is past --to {to}", args.from);
    }
    let mut index = args.from;
    while index < to {
        let bundle = index / BUNDLE;
        let bundle_end = ((bundle + 1) * BUNDLE).min(size);
        let width = bundle_end - bundle * BUNDLE;
        let width = (width < BUNDLE)
            .then(|| u16::try_from(width))
            .transpose()
            .context("bundle width")?;
        let path = TilePath::new(TileKind::Entries, bundle, width)
            .context("entry bundle path")?
            .to_path();
        let data = client.get_bytes(&format!("/{path}"))?;
        let entries = bundle_decode(&data).with_context(|| format!("decoding /{path}"))?;
        for (i, entry) in entries.iter().enumerate() {
            let at = bundle * BUNDLE + i as u64;
            if at >= index && at < to {
                emit(entry, &format!("entry {at}"))?;
            }
        }
        index = bundle_end.min(to).max(index + 1);
    }
    Ok(ExitCode::SUCCESS)
}
