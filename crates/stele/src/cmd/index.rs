//! `stele index rebuild --data DIR`: throw away a data directory's query index and rebuild it
//! from the log alone (the index is derived data, never the source of truth).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use stele_index::{Index, IndexOptions};
use stele_store::{datadir, Store, StoreOptions};

use crate::paths;

/// Arguments of `stele index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    #[command(subcommand)]
    command: IndexCommand,
}

#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Delete the query index and rebuild it from the log (the server must be stopped).
    Rebuild {
        /// Data directory [default: $STELE_DATA, $XDG_DATA_HOME/stele or ~/.local/share/stele].
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
    },
}

/// Runs `stele index`.
///
/// # Errors
/// A data directory without a log, or locked by a running server (exit 2); I/O errors.
pub fn run(args: IndexArgs) -> Result<ExitCode> {
    let IndexCommand::Rebuild { data } = args.command;
    let dir = paths::data_dir(data.as_deref())?;
    anyhow::ensure!(
        datadir::has_key(&dir),
        "{} holds no Stele log (no signing key)",
        dir.display()
    );
    let (signer, _) = datadir::open_or_init(&dir, None)
        .with_context(|| format!("opening the data directory {}", dir.display()))?;
    let mut store_opts = StoreOptions::new(&dir, signer);
    // As the server opens it, so a recovery on open rebuilds the id index the same way.
    store_opts.key_of = crate::cmd::serve::key_of;
    let store = Store::open(store_opts).with_context(|| {
        format!(
            "opening the log in {} (stop the server first: the index is rebuilt offline)",
            dir.display()
        )
    })?;
    let index_dir = dir.join("index");
    Index::remove(&index_dir)
        .with_context(|| format!("removing the old index {}", index_dir.display()))?;
    let start = Instant::now();
    let mut opts = IndexOptions::new(&index_dir);
    opts.follow = false;
    let index = Index::open(store.clone(), opts).context("creating the index")?;
    index.catch_up().context("indexing the log")?;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let n = index.indexed();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "indexed {n} entries in {:.1} s ({:.0} entries/s); index {} bytes in {}",
        secs,
        n as f64 / secs,
        index.size_bytes(),
        index_dir.display()
    )?;
    drop(index);
    store.close().context("closing the log")?;
    Ok(ExitCode::SUCCESS)
}
