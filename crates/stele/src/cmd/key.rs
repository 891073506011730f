//! `stele key public`: print a data directory's verifier key. `stele key rotate`: replace
//! the log's signing key (see `docs/key-rotation.md`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use stele_store::rotation::{load_rotations, request_rotation, RotationRecord};
use stele_store::{datadir, Store, StoreError, StoreOptions};

use crate::{paths, units};

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
    /// Replace the log's signing key with a new one (same origin, new key ID). The rotation
    /// is recorded in the log (admin.key.rotate), a statement signed by the old and new keys
    /// is served at /v1/key/rotations, and checkpoints are signed by both keys during the
    /// window. Works with or without a server running on the directory. Prints the new
    /// verifier key on the last line of stdout.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
struct RotateArgs {
    /// Data directory [default: $STELE_DATA, $XDG_DATA_HOME/stele or ~/.local/share/stele].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// How long the old key keeps co-signing checkpoints: 7d, 12h, 0 (not at all).
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_window)]
    window: Duration,
    /// With a server running on the directory: how long to wait for it to carry out the
    /// rotation (it looks every second).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = units::parse_duration)]
    wait: Duration,
}

/// Longest transition window: beyond it, the point of rotating is lost.
const MAX_WINDOW: Duration = Duration::from_secs(366 * 86_400);

/// `7d`, `2w`, or a duration of the other commands (`12h`, `90m`, `0`).
fn parse_window(s: &str) -> Result<Duration, String> {
    let days = |n: &str, unit: u64| {
        n.parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit))
            .map(Duration::from_secs)
    };
    let d = if s == "0" {
        Some(Duration::ZERO)
    } else if let Some(n) = s.strip_suffix('d') {
        days(n, 86_400)
    } else if let Some(n) = s.strip_suffix('w') {
        days(n, 604_800)
    } else {
        units::parse_duration(s).ok()
    };
    match d {
        Some(d) if d <= MAX_WINDOW => Ok(d),
        Some(_) => Err(format!("--window {s}: at most 366 days")),
        None => Err(format!("--window {s:?} is not a duration (7d, 2w, 12h, 0)")),
    }
}

/// Runs `stele key`.
///
/// # Errors
/// No data directory or no key in it (exit 2); a rotation that cannot be carried out.
pub fn run(args: KeyArgs) -> Result<ExitCode> {
    match args.command {
        KeyCommand::Public { data } => {
            let dir = paths::data_dir(data.as_deref())?;
            let verifier = stele_store::datadir::load_verifier(&dir)
                .with_context(|| format!("no verifier key in data directory {} (run `stele keygen --data {0}` or `stele serve` first)", dir.display()))?;
            println!("{}", verifier.to_verifier_key());
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Rotate(a) => rotate(&a),
    }
}

fn rotate(args: &RotateArgs) -> Result<ExitCode> {
    let dir = paths::data_dir(args.data.as_deref())?;
    if !datadir::has_key(&dir) {
        bail!(
            "{} has no signing key to rotate (run `stele keygen --data {0}` or `stele serve` first)",
            dir.display()
        );
    }
    let (signer, _) = datadir::open_or_init(&dir, None)
        .with_context(|| format!("reading the signing key of {}", dir.display()))?;
    let new = request_rotation(&dir, signer.name(), args.window)
        .with_context(|| format!("requesting a key rotation in {}", dir.display()))?;
    let new_vkey = new.to_verifier_key();
    let mut opts = StoreOptions::new(&dir, signer);
    opts.key_of = crate::cmd::serve::key_of;
    let record = match Store::open(opts) {
        Ok(store) => {
            // No server: carry it out here.
            let limits = stele_server::ServerConfig::default().limits;
            let done = stele_server::keys::rotate_pending(&store, &dir, &limits);
            let closed = store.close();
            let record = done
                .map_err(anyhow::Error::msg)
                .context("carrying out the key rotation (the request stays in key/rotate.pending; the next `stele serve` retries it)")?
                .context("the rotation request disappeared")?;
            closed.context("closing the log")?;
            record
        }
        Err(StoreError::Locked(_)) => {
            eprintln!("a server has the log open; waiting for it to carry out the rotation");
            wait_for(&dir, &new_vkey, args.wait)?
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "opening the log in {} (the request stays in key/rotate.pending)",
                dir.display()
            )))
        }
    };
    eprintln!(
        "rotated the signing key of {}: from tree size {} (the admin.key.rotate event is entry {}), checkpoints are signed by the new key{}",
        new.name(),
        record.from_size,
        record.event_index,
        if args.window.is_zero() {
            " only".to_owned()
        } else {
            format!(" and, until {}, by the old one {} too", record.window_ends, record.old_key)
        }
    );
    eprintln!("give the new key to witnesses (stele witness --log) and verifiers; those holding the old key follow /v1/key/rotations");
    println!("{new_vkey}");
    Ok(ExitCode::SUCCESS)
}

/// Polls `key/rotations.json` until a running server has rotated to `new_vkey`.
fn wait_for(dir: &Path, new_vkey: &str, limit: Duration) -> Result<RotationRecord> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(r) = load_rotations(dir)?
            .into_iter()
            .find(|r| r.new_key == new_vkey)
        {
            return Ok(r);
        }
        if Instant::now() >= deadline {
            bail!(
                "the server did not carry out the rotation within {:?}; the request stays in {} and is carried out when the server next looks (or starts)",
                limit,
                stele_store::layout::Layout::new(dir).pending_rotation().display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_take_days_weeks_and_durations_up_to_a_year() {
        assert_eq!(parse_window("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(
            parse_window("2w").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(parse_window("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_window("0").unwrap(), Duration::ZERO);
        for bad in ["", "soon", "-1d", "400d"] {
            assert!(parse_window(bad).is_err(), "{bad:?}");
        }
    }
}
