//! `stele witness`: run a C2SP tlog-witness (see `docs/witness.md` and the `stele-witness`
//! crate), and `stele witness key public` to print its verifier key.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use stele_core::note::NoteVerifier;
use stele_witness::{keyfile, Witness, WitnessOptions};

/// Arguments of `stele witness`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WitnessArgs {
    #[command(subcommand)]
    command: Option<WitnessCommand>,
    /// The witness's data directory: its key (created on first start), its state and the
    /// evidence it records. Must not be a log's data directory.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port (printed on startup).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7408")]
    listen: String,
    /// A log to witness: its origin and its verifier key. Repeat for several logs (or several
    /// keys of one log).
    #[arg(long = "log", value_name = "ORIGIN=VKEY", value_parser = parse_log_arg)]
    logs: Vec<(String, NoteVerifier)>,
    /// Key name of the witness, used only when its key is created [default: <hostname>/witness].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

#[derive(Debug, Subcommand)]
enum WitnessCommand {
    /// Show the witness's key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Print the witness's cosignature verifier key (type 0x04), one line: what logs
    /// (`stele serve --witness URL=VKEY`) and verifiers (`stele verify --witness-key`) trust.
    Public {
        /// The witness's data directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
    },
}

/// Parses `ORIGIN=VKEY`. An origin may contain `=`, so the key is what follows the first `=`
/// after which a valid verifier key follows.
fn parse_log_arg(arg: &str) -> Result<(String, NoteVerifier), String> {
    let mut last = String::from("expected ORIGIN=VKEY");
    for (i, _) in arg.match_indices('=') {
        let (origin, key) = (
            arg.get(..i).unwrap_or_default(),
            arg.get(i + 1..).unwrap_or_default(),
        );
        match NoteVerifier::from_verifier_key(key) {
            Ok(v) if !origin.is_empty() => return Ok((origin.to_owned(), v)),
            Ok(_) => last = "the origin is empty".into(),
            Err(e) => last = format!("{key:?} is not a log verifier key: {e}"),
        }
    }
    Err(last)
}

/// Runs `stele witness`.
///
/// # Errors
/// Missing `--data` or `--log`, an unusable data directory, key or state file, an address that
/// cannot be bound (exit 2).
pub fn run(args: WitnessArgs) -> Result<ExitCode> {
    if let Some(WitnessCommand::Key {
        command: KeyCommand::Public { data },
    }) = args.command
    {
        if !keyfile::secret_key_path(&data).exists() {
            bail!(
                "no witness key in {} (`stele witness --data {0} --log ...` creates it on first start)",
                data.display()
            );
        }
        let key = keyfile::load_public(&data)
            .with_context(|| format!("reading the witness key in {}", data.display()))?;
        println!("{}", key.to_verifier_key());
        return Ok(ExitCode::SUCCESS);
    }
    let Some(data) = args.data else {
        bail!("--data DIR is required: the witness keeps its key and state there");
    };
    if args.logs.is_empty() {
        bail!("give at least one --log ORIGIN=VKEY to witness");
    }
    let mut opts = WitnessOptions::new(&data, args.logs);
    opts.name = args.name;
    let (witness, created) = Witness::open(opts)
        .with_context(|| format!("opening the witness in {}", data.display()))?;
    let vkey = witness.verifier().to_verifier_key();
    if created {
        tracing::info!(key = %vkey, dir = %data.display(), "created a new witness key");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("stele-witness")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let shutdown = super::serve::shutdown_signal();
        let mut out = std::io::stdout().lock();
        writeln!(out, "witness key: {vkey}")?;
        for origin in witness.origins() {
            writeln!(out, "log: {origin}")?;
        }
        writeln!(out, "data: {}", data.display())?;
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
        drop(out);
        tracing::info!(%addr, "witness serving");
        stele_witness::serve(listener, witness, shutdown)
            .await
            .context("serving HTTP")
    })?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use stele_core::note::NoteSigner;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: WitnessArgs,
    }

    #[test]
    fn log_arguments_split_at_the_key_and_key_public_is_a_subcommand() {
        let log = NoteSigner::generate("example.com/a=b").unwrap();
        let vkey = log.verifier().to_verifier_key();
        let (origin, v) = parse_log_arg(&format!("example.com/a=b={vkey}")).unwrap();
        assert_eq!((origin.as_str(), v), ("example.com/a=b", log.verifier()));
        assert!(parse_log_arg(&format!("={vkey}")).is_err());
        assert!(parse_log_arg("example.com/log=nope").is_err());

        let cli = Cli::try_parse_from(["w", "key", "public", "--data", "/d"]).unwrap();
        assert!(cli.args.command.is_some());
        let arg = format!("example.com/log={vkey}");
        let cli = Cli::try_parse_from(["w", "--data", "/d", "--log", &arg, "--log", &arg]).unwrap();
        assert_eq!(cli.args.logs.len(), 2);
        assert!(
            Cli::try_parse_from(["w", "--data", "/d", "key", "public", "--data", "/d"]).is_err()
        );
    }
}
