//! `stele serve`: open (or create) a data directory and serve its log over HTTP until SIGINT or
//! SIGTERM, then close the store so the final checkpoint covers every acknowledged append.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use stele_core::event::entry_key;
use stele_index::{Index, IndexOptions};
use stele_server::witnessing::{parse_witness_arg, WitnessConfig, Witnessing};
use stele_server::{AppState, ServerConfig};
use stele_store::{datadir, EntryKey, Store, StoreOptions};

use crate::{paths, units};

mod access;

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
    /// A C2SP tlog-witness to submit every new checkpoint to: its URL (the prefix of
    /// /add-checkpoint) and its cosignature verifier key. Repeat for several witnesses.
    #[arg(long = "witness", value_name = "URL=VKEY", value_parser = parse_witness_arg)]
    witnesses: Vec<WitnessConfig>,
    /// Serve at /checkpoint only checkpoints cosigned by at least K of the witnesses (the
    /// previous one until a newer one is) [default: serve every checkpoint at once].
    #[arg(long, value_name = "K", requires = "witnesses")]
    witness_quorum: Option<usize>,
    /// Time limit of each request to a witness (e.g. 500ms, 10s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = units::parse_duration, requires = "witnesses")]
    witness_timeout: Duration,
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
    #[command(flatten)]
    access: access::AccessArgs,
    #[command(flatten)]
    tls: TlsArgs,
}

/// TLS flags of `stele serve`.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// Serve HTTPS with this PEM certificate chain (the server's certificate first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1); keep it mode 0600.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Verify client certificates against the CA certificate(s) in this PEM file (mTLS). A
    /// verified certificate bound to a principal (`stele token create --cert`) authenticates
    /// the request without a token.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// With --client-ca: refuse the TLS handshake of a client that shows no certificate
    /// (default: such clients may still use bearer tokens and the public routes).
    #[arg(long, requires = "client_ca")]
    require_client_cert: bool,
}

impl TlsArgs {
    /// The rustls configuration, if TLS is asked for: every file is read and checked now, so
    /// a bad one stops the start with a message naming it.
    fn load(&self) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let files = stele_server::tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: self.client_ca.clone(),
            require_client_cert: self.require_client_cert,
        };
        warn_if_readable_by_others(key);
        stele_server::tls::load_server_config(&files)
            .map(Some)
            .context("--tls-cert / --tls-key / --client-ca")
    }
}

/// Warns when a TLS private key file can be read by group or others.
fn warn_if_readable_by_others(key: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(key) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(file = %key.display(), mode = format!("{mode:o}"), "the TLS private key can be read by others; chmod 600 it");
        }
    }
}

/// The idempotency key of a stored event, recomputed from its bytes: how the store rebuilds
/// its id index after a crash. Must agree with the keys `stele-server` appends with.
pub(crate) fn key_of(entry: &[u8]) -> Option<EntryKey> {
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
    let witnessing = if args.witnesses.is_empty() {
        None
    } else {
        anyhow::ensure!(
            !args.witness_timeout.is_zero(),
            "--witness-timeout must be more than zero"
        );
        let quorum = args.witness_quorum.unwrap_or(0);
        Some(
            Witnessing::new(args.witnesses.clone(), quorum, args.witness_timeout)
                .context("--witness / --witness-quorum")?,
        )
    };
    // Before the log is opened: a bad certificate or key is told at once.
    let tls = args.tls.load()?;
    let syslog_tls = match (&args.syslog_tls_cert, &args.syslog_tls_key) {
        (Some(cert), Some(key)) => Some(
            stele_server::syslog::tls_acceptor(cert, key)
                .map_err(anyhow::Error::msg)
                .context("loading the syslog TLS certificate and key")?,
        ),
        _ => None,
    };
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
    let store =
        Store::open(opts).with_context(|| format!("opening the log in {}", dir.display()))?;
    let report = store.recovery_report();
    tracing::info!(size = store.size(), recovery = ?report, "log opened");
    // A rotation requested while no server ran (or interrupted by a crash) is carried out
    // before anything is served, so the banner shows the key that signs.
    if let Some(r) =
        stele_server::keys::rotate_pending(&store, &dir, &ServerConfig::default().limits)
            .map_err(anyhow::Error::msg)
            .context("carrying out the requested key rotation")?
    {
        tracing::info!(old = %r.old_key, new = %r.new_key, from_size = r.from_size, "rotated the signing key");
    }
    let access = access::prepare(&args.access, &dir)?;
    // The query index is derived data in DATA/index: it loads what it has and follows the log
    // from there on its own thread, so serving starts at once even while it catches up.
    let index = Index::open(store.clone(), IndexOptions::new(dir.join("index")))
        .with_context(|| format!("opening the query index in {}", dir.join("index").display()))?;
    tracing::info!(
        indexed = index.indexed(),
        lag = index.lag(),
        "query index opened"
    );

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
        // Before the banner: whoever reads it may signal at once.
        let shutdown = shutdown_signal();
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
        access.announce(&mut out, &dir)?;
        // Before the HTTP address, which scripts wait for as the sign that the server is up.
        if let Some(l) = &syslog_listener {
            let scheme = if syslog_tls.is_some() { "tls" } else { "tcp" };
            writeln!(out, "syslog on {scheme}://{}", l.local_addr()?)?;
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        writeln!(out, "listening on {scheme}://{addr}")?;
        out.flush()?;
        drop(out);
        tracing::info!(%addr, tls = tls.is_some(), mtls = args.tls.client_ca.is_some(), "serving");
        let state = AppState::build(
            store.clone(),
            config,
            witnessing.clone(),
            Some(index.clone()),
        );
        // Before the first request is served (the listener only queues connections so far).
        access.enable(&dir, &state, &store, config.limits).await?;
        // Rotations requested with `stele key rotate --data` while the server runs.
        let rotating = tokio::spawn(stele_server::keys::watch_rotations(
            store.clone(),
            dir.clone(),
            config.limits,
        ));
        // Witness submissions run beside the server and never hold up appends.
        let submitting = witnessing.map(|w| {
            tracing::info!(
                witnesses = w.witnesses().len(),
                quorum = w.quorum(),
                "submitting checkpoints to witnesses"
            );
            tokio::spawn(w.run(store.clone()))
        });
        // One signal stops both listeners; the store is closed after both have finished.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let syslog = syslog_listener.map(|l| {
            tokio::spawn(stele_server::syslog::serve(
                l,
                state.clone(),
                syslog_tls,
                stop_rx.clone(),
            ))
        });
        let mut http_stop = stop_rx;
        let stopped = async move {
            let _ = http_stop.wait_for(|s| *s).await;
        };
        let served = match tls {
            Some(config) => stele_server::serve_https(listener, state, config, stopped).await,
            None => stele_server::serve(listener, state, stopped).await,
        }
        .context("serving HTTP");
        if let Some(task) = submitting {
            task.abort();
        }
        rotating.abort();
        if let Some(syslog) = syslog {
            syslog
                .await
                .context("syslog listener task")?
                .context("serving syslog")?;
        }
        served
    });
    // Close even when serving failed, so acknowledged appends get their final checkpoint.
    index.shutdown();
    let closed = store.close().context("closing the log");
    runtime.shutdown_timeout(Duration::from_secs(5));
    served?;
    closed?;
    let cp = store.latest_checkpoint();
    tracing::info!(size = cp.as_ref().map(|c| c.size), "log closed");
    Ok(ExitCode::SUCCESS)
}

/// Waits for `signal`, or for ever without one.
async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Completes on the first SIGINT or SIGTERM. The handlers are installed when this is
/// called (not when the future is first polled), so a signal that arrives once the server
/// has announced itself is never taken by the default action. Call inside the runtime.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let watch = |kind: SignalKind, name: &'static str| match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, signal = name, "cannot watch this signal");
            None
        }
    };
    let mut term = watch(SignalKind::terminate(), "SIGTERM");
    let mut int = watch(SignalKind::interrupt(), "SIGINT");
    async move {
        tokio::select! {
            () = recv(term.as_mut()) => {}
            () = recv(int.as_mut()) => {}
        }
        tracing::info!("shutting down: no new connections; finishing requests in flight");
    }
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
