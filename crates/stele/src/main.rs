//! # stele
//!
//! The command-line tool of Stele: run a log server (`serve`), manage its keys (`keygen`,
//! `key`), talk to a running log over HTTP (`append`, `get`, `proof`, `query`, `replay`),
//! check a log (`verify`, offline against a data directory or remotely against the HTTP API)
//! and rebuild its query index (`index rebuild`).
//! `key`), talk to a running log over HTTP (`append`, `get`, `proof`, `export-ocsf`) and check
//! a log (`verify`, offline against a data directory or remotely against the HTTP API).
//!
//! A thin shell in ripgrep's shape: [`main`] calls [`run`] and maps the outcome to an exit
//! code. Exit codes: 0 success, 1 a verification failure, damage or an HTTP error answer,
//! 2 a usage or environment problem (bad arguments, missing files, unreachable server).
//!
//! What it leaves out: storage, proofs and HTTP handling live in the library crates; this
//! crate only parses arguments, wires them together and prints.

mod client;
mod cmd;
mod exit;
mod keys;
mod paths;
mod units;

/// The event path allocates many small JSON values; mimalloc handles that churn far better
/// than the system allocator (measured with `stele bench http-batch`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (the same position in its v2 and v3 option enums).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// How long freed memory stays with the process before mimalloc returns it to the OS.
///
/// mimalloc's default (1 s, ×10 for arenas) returned the buffers of request bodies and
/// responses between bursts, and taking them back cost a page fault that zeroes a 2 MiB
/// transparent huge page: 9 000–17 000 faults in a 5-second `stele bench http-batch`, against
/// about 650 with a 10-second delay (`perf stat -e page-faults`). Memory still goes back to
/// the OS once the server has been quieter than this for a while, so a burst does not pin it.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// mimalloc's `mi_option_purge_decommits` (the same position in its v2 and v3 option enums).
const MI_OPTION_PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;
/// Whether a purge decommits memory (`MADV_DONTNEED`) rather than resetting it (`MADV_FREE`).
///
/// Reset: the kernel takes the pages back only when it needs memory, and until then the
/// process reuses them at no cost, where a decommitted page faults back in zeroed. On the
/// 2-core VM the kernel zeroing pages (`clear_page_erms`) was 3.0% of all samples of a
/// 5-second `stele bench ingest-k8s` under `perf record` with decommit, under 0.3% with reset.
const PURGE_DECOMMITS: std::ffi::c_long = 0;

/// Returns the allocator's free memory to the OS now instead of after [`PURGE_DELAY_MS`]:
/// for measurements of resident memory that should see only what is live (the benches count
/// memory reset with `MADV_FREE` as free, as the kernel does).
pub(crate) fn release_free_memory() {
    // SAFETY: `mi_collect` only frees memory mimalloc holds and no object uses; it is safe to
    // call from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Applies the allocator settings above; before anything else runs.
fn tune_allocator() {
    // SAFETY: `mi_option_set` only stores an integer option; any value is valid for these
    // options, and mimalloc reads options atomically, so setting them while other threads
    // allocate is allowed (there are none yet).
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DECOMMITS, PURGE_DECOMMITS);
    }
}

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// An immutable, independently verifiable audit log of authorization events.
#[derive(Debug, Parser)]
#[command(
    name = "stele",
    version,
    propagate_version = true,
    after_help = "Exit codes: 0 success; 1 verification failure, damage or an HTTP error answer; 2 usage or environment error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// API token sent as `Authorization: Bearer` by commands that talk to a server.
    #[arg(
        long,
        global = true,
        env = "STELE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// For https:// servers: trust the PEM CA certificate(s) in FILE instead of the public
    /// roots (a private CA).
    #[arg(long, global = true, env = "STELE_CA", value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// A PEM client certificate to show servers that verify them (mTLS); with --client-key.
    #[arg(long, global = true, env = "STELE_CLIENT_CERT", value_name = "FILE")]
    client_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --client-cert.
    #[arg(long, global = true, env = "STELE_CLIENT_KEY", value_name = "FILE")]
    client_key: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the log server over a data directory.
    Serve(cmd::serve::ServeArgs),
    /// Create a signing key: for a data directory, or a standalone key file.
    Keygen(cmd::keygen::KeygenArgs),
    /// Show a data directory's keys.
    Key(cmd::key::KeyArgs),
    /// Append NDJSON events to a running log.
    Append(cmd::append::AppendArgs),
    /// Fetch one stored event by log index or event id.
    Get(cmd::get::GetArgs),
    /// Fetch (and optionally verify) inclusion and consistency proofs.
    Proof(cmd::proof::ProofArgs),
    /// Verify a log: a data directory offline, or a server against a trusted key.
    Verify(cmd::verify::VerifyArgs),
    /// Write an offline evidence bundle: the events of a time window with their proofs.
    Export(cmd::export::ExportArgs),
    /// Check an evidence bundle offline against the log's key.
    VerifyBundle(cmd::verify_bundle::VerifyBundleArgs),
    /// Make a compliance report (HTML or Markdown) from an evidence bundle.
    Report(cmd::report::ReportArgs),
    /// Run a C2SP tlog-witness that cosigns logs' checkpoints (or show its key).
    Witness(cmd::witness::WitnessArgs),
    /// Check a proof of misbehaviour (two contradicting signed checkpoints) offline.
    VerifyMisbehaviour(cmd::verify_misbehaviour::VerifyMisbehaviourArgs),
    /// Manage API tokens: offline on a data directory, or over a server's admin API.
    Token(cmd::token::TokenArgs),
    /// Search a running log's events (filters, full text, counts and group-by).
    Query(Box<cmd::query::QueryArgs>),
    /// Replay who held which role at an instant, from the log's permission changes.
    Replay(cmd::replay::ReplayArgs),
    /// Manage a data directory's query index (`stele index rebuild`).
    Index(cmd::index::IndexArgs),
    /// Measure append, HTTP, proof and verify rates beside the disk's and SHA-256's limits.
    Bench(cmd::bench::BenchArgs),
    /// Print stored events as OCSF events (API Activity, Authorize Session, Account Change).
    ExportOcsf(cmd::export_ocsf::ExportOcsfArgs),
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            exit::code_for(&e)
        }
    }
}

/// Runs one subcommand. Errors that are [`exit::Failure`]s exit with 1, all others with 2.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let serving = matches!(cli.command, Command::Serve(_) | Command::Witness(_));
    init_tracing(if serving { "info" } else { "warn" });
    client::set_token(cli.token);
    client::set_tls(client::TlsOptions {
        ca: cli.ca,
        client_cert: cli.client_cert,
        client_key: cli.client_key,
    })?;
    match cli.command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::Keygen(args) => cmd::keygen::run(args),
        Command::Key(args) => cmd::key::run(args),
        Command::Append(args) => cmd::append::run(args),
        Command::Get(args) => cmd::get::run(args),
        Command::Proof(args) => cmd::proof::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Export(args) => cmd::export::run(args),
        Command::VerifyBundle(args) => cmd::verify_bundle::run(args),
        Command::Report(args) => cmd::report::run(args),
        Command::Witness(args) => cmd::witness::run(args),
        Command::VerifyMisbehaviour(args) => cmd::verify_misbehaviour::run(&args),
        Command::Token(args) => cmd::token::run(args),
        Command::Query(args) => cmd::query::run(*args),
        Command::Replay(args) => cmd::replay::run(args),
        Command::Index(args) => cmd::index::run(args),
        Command::Bench(args) => cmd::bench::run(&args).map(|()| ExitCode::SUCCESS),
        Command::ExportOcsf(args) => cmd::export_ocsf::run(args),
    }
}

/// The error and its causes joined by `: `, leaving out a cause whose text the previous
/// message already ends with (some errors print their source in their own message too).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Logs to stderr, filtered by `RUST_LOG` (default: `default`), so stdout stays for results.
fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Fails only if a subscriber is already set, which this process never does twice.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn error_chain_joins_causes_and_drops_repeated_ones() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        #[derive(Debug, thiserror::Error)]
        #[error("read /k: {0}")]
        struct Echoing(#[source] std::io::Error);
        let e = anyhow::Error::new(Echoing(io)).context("loading the key");
        assert_eq!(error_chain(&e), "loading the key: read /k: no such file");
    }

    #[test]
    fn the_allocator_settings_land_on_mimallocs_options() {
        // Option 15 holds mimalloc v3's documented purge-delay default (1000 ms) and option 5
        // its purge-decommits default (1) until set (other options default to other
        // values), then ours.
        // SAFETY: reads integer options.
        let get = |option| unsafe { libmimalloc_sys::mi_option_get(option) };
        let before = get(MI_OPTION_PURGE_DELAY);
        assert!(before == 1000 || before == PURGE_DELAY_MS, "{before}");
        let before = get(MI_OPTION_PURGE_DECOMMITS);
        assert!(before == 1 || before == PURGE_DECOMMITS, "{before}");
        tune_allocator();
        assert_eq!(get(MI_OPTION_PURGE_DELAY), PURGE_DELAY_MS);
        assert_eq!(get(MI_OPTION_PURGE_DECOMMITS), PURGE_DECOMMITS);
        release_free_memory();
        assert_eq!(get(MI_OPTION_PURGE_DECOMMITS), PURGE_DECOMMITS);
    }

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
