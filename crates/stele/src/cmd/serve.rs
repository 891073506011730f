//! `stele serve`: open (or create) a data directory and serve its log over HTTP until SIGINT or
//! SIGTERM, then close the store so the final checkpoint covers every acknowledged append.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use stele_core::event::entry_key;
use stele_server::{AppState, ServerConfig};
use stele_store::{datadir, EntryKey, Store, StoreOptions};

use crate::{paths, units};

/// Arguments of `stele serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory [default: $STELE_DATA, $XDG_DATA_HOME/stele or ~/.local/share/stele].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port (printed on startup).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7407")]
    listen: String,
    /// The log's origin (key name), used only when the data directory is new
    /// [default: <hostname>/stele].
    #[arg(long, value_name = "NAME")]
    origin: Option<String>,
    /// Publish a checkpoint at least this often while entries arrive (e.g. 250ms, 1s).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = units::parse_duration)]
    checkpoint_interval: Duration,
    /// Largest accepted request body (e.g. 1048576, 16MiB).
    #[arg(long, value_name = "BYTES", default_value = "16MiB", value_parser = units::parse_bytes)]
    max_body: usize,
    /// Also accept RFC 5424 syslog over TCP (octet-counted or newline-framed) on this
    /// address; with --syslog-tls-cert and --syslog-tls-key, over TLS instead.
    #[arg(long, value_name = "HOST:PORT")]
    syslog_listen: Option<String>,
    /// PEM certificate chain for syslog over TLS.
    #[arg(long, value_name = "FILE", requires_all = ["syslog_listen", "syslog_tls_key"])]
    syslog_tls_cert: Option<PathBuf>,
    /// PEM private key for syslog over TLS.
    #[arg(long, value_name = "FILE", requires_all = ["syslog_listen", "syslog_tls_cert"])]
    syslog_tls_key: Option<PathBuf>,
}

/// The idempotency key of a stored event, recomputed from its bytes: how the store rebuilds
/// its id index after a crash. Must agree with the keys `stele-server` appends with.
fn key_of(entry: &[u8]) -> Option<EntryKey> {
    entry_key(entry).map(|(id, digest)| EntryKey {
        id: id.into_bytes(),
        digest,
    })
}

/// Runs `stele serve`.
///
/// # Errors
/// An unusable data directory or key file, a directory locked by another process, an address
/// that cannot be bound (all exit 2).
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    anyhow::ensure!(
        !args.checkpoint_interval.is_zero(),
        "--checkpoint-interval must be more than zero"
    );
    anyhow::ensure!(args.max_body > 0, "--max-body must be more than zero");
    let dir = paths::data_dir(args.data.as_deref())?;
    let (signer, created) =
        datadir::open_or_init(&dir, args.origin.as_deref()).with_context(|| {
            format!(
                "opening the identity and signing key of data directory {}",
                dir.display()
            )
        })?;
    if created {
        tracing::info!(origin = signer.name(), dir = %dir.display(), "created a new log identity and signing key");
    }
    let mut opts = StoreOptions::new(&dir, signer);
    opts.checkpoint_interval = args.checkpoint_interval;
    opts.key_of = key_of;
    let tls = match (&args.syslog_tls_cert, &args.syslog_tls_key) {
        (Some(cert), Some(key)) => Some(
            stele_server::syslog::tls_acceptor(cert, key)
                .map_err(anyhow::Error::msg)
                .context("loading the syslog TLS certificate and key")?,
        ),
        _ => None,
    };
    let store =
        Store::open(opts).with_context(|| format!("opening the log in {}", dir.display()))?;
    let report = store.recovery_report();
    tracing::info!(size = store.size(), recovery = ?report, "log opened");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("stele-http")
        .build()
        .context("starting the async runtime")?;
    let config = ServerConfig {
        max_body_bytes: args.max_body,
        ..ServerConfig::default()
    };
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let syslog_listener = match &args.syslog_listen {
            Some(at) => Some(
                tokio::net::TcpListener::bind(at)
                    .await
                    .with_context(|| format!("cannot listen for syslog on {at}"))?,
            ),
            None => None,
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "origin: {}", store.origin())?;
        writeln!(out, "verifier key: {}", store.verifier_key())?;
        writeln!(out, "data: {}", dir.display())?;
        // Before the HTTP address, which scripts wait for as the sign that the server is up.
        if let Some(l) = &syslog_listener {
            let scheme = if tls.is_some() { "tls" } else { "tcp" };
            writeln!(out, "syslog on {scheme}://{}", l.local_addr()?)?;
        }
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
        drop(out);
        tracing::info!(%addr, "serving");
        let state = AppState::new(store.clone(), config);
        // One signal stops both listeners; the store is closed after both have finished.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        let syslog = syslog_listener.map(|l| {
            tokio::spawn(stele_server::syslog::serve(
                l,
                state.clone(),
                tls,
                stop_rx.clone(),
            ))
        });
        let mut http_stop = stop_rx;
        let served = stele_server::serve(listener, state, async move {
            let _ = http_stop.wait_for(|s| *s).await;
        })
        .await
        .context("serving HTTP");
        if let Some(syslog) = syslog {
            syslog
                .await
                .context("syslog listener task")?
                .context("serving syslog")?;
        }
        served
    });
    // Close even when serving failed, so acknowledged appends get their final checkpoint.
    let closed = store.close().context("closing the log");
    runtime.shutdown_timeout(Duration::from_secs(5));
    served?;
    closed?;
    let cp = store.latest_checkpoint();
    tracing::info!(size = cp.as_ref().map(|c| c.size), "log closed");
    Ok(ExitCode::SUCCESS)
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the server gracefully");
            None
        }
    };
    let sigterm = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot watch SIGINT");
                std::future::pending::<()>().await;
            }
        }
        () = sigterm => {}
    }
    tracing::info!("shutting down: no new connections; finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use stele_core::event::validate;
    use stele_core::timestamp::Timestamp;

    use super::*;

    #[test]
    fn key_of_recomputes_the_key_the_event_was_prepared_with() {
        let value = serde_json::json!({"actor": {"type": "user", "id": "alice"}, "action": "auth.login", "resource": {"type": "app", "id": "console"}, "outcome": "allow"});
        let limits = stele_core::event::EventLimits::default();
        let event = validate(&value, &limits).unwrap();
        let id = uuid::Uuid::now_v7();
        let prepared = event
            .prepare(
                id,
                Timestamp::from_unix_nanos(1_700_000_000_000_000_000),
                &limits,
            )
            .unwrap();
        let key = key_of(&prepared.bytes).unwrap();
        assert_eq!(
            key,
            EntryKey {
                id: id.into_bytes(),
                digest: prepared.content_digest
            }
        );
        assert_eq!(key_of(b"not json"), None);
    }
}
