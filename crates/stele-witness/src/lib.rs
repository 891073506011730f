//! # stele-witness
//!
//! A C2SP tlog-witness (c2sp.org/tlog-witness): a process with its own Ed25519 key and its own
//! durable state that follows one or more logs, checks that every checkpoint submitted to it
//! is signed by the log and consistent with the last one it cosigned, and answers with a
//! C2SP tlog-cosignature (`cosignature/v1`). It works with any log that speaks the protocol,
//! not only Stele.
//!
//! HTTP interface (`docs/witness.md` has the details):
//!
//! - `POST /add-checkpoint` — tlog-witness §"add-checkpoint", byte for byte: 200 with the
//!   cosignature line, 400, 403, 404, 409 (`text/x.tlog.size`) or 422.
//! - `GET /<origin hash>/checkpoint` — tlog-witness §"Monitor Retrieval Mechanism": the latest
//!   cosigned checkpoint, with the log's signature and the witness's cosignature.
//! - `POST /gossip` — Stele's own, small: a checkpoint someone else saw (and optionally a
//!   consistency proof) is compared with the witness's; a contradiction is answered 409 with a
//!   proof of misbehaviour. Gossip never changes what the witness cosigns.
//! - `GET /healthz` — `ok`.
//!
//! A checkpoint that contradicts the one cosigned before (same size and another root, or a
//! larger tree whose proof shows other leaves) is refused, logged at error level and saved as
//! a [`stele_core::misbehaviour`] proof under `DATA/misbehaviour/`; a smaller tree or an
//! unprovable inconsistency is refused, logged and saved as an `.alarm` (see [`state`]).
//!
//! What it leaves out: the `sign-subtree` call (OPTIONAL in the spec), ML-DSA-44
//! cosignatures, fetching anything from a log (the protocol is push-only), TLS and rate
//! limits (run it behind a proxy that provides them).
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

mod check;
mod files;
mod http;
pub mod keyfile;
pub mod state;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use stele_core::cosignature::{CosignatureVerifier, Cosigner};
use stele_core::note::NoteVerifier;
use stele_core::witness::origin_hash;

/// Errors opening a witness.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// A file-system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The witness key is unusable.
    #[error("witness key {}: {detail}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A state file does not hold what it must.
    #[error("witness state {}: {detail}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
}

impl WitnessError {
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| WitnessError::Io { op, path, source }
    }
}

/// How to open a witness.
#[derive(Clone, Debug)]
pub struct WitnessOptions {
    /// Data directory: key, state, evidence.
    pub data_dir: PathBuf,
    /// Key name for a new witness key (default: `<hostname>/witness`); must match an existing
    /// key's name if given.
    pub name: Option<String>,
    /// The logs followed: origin and a trusted log key (an origin may be given several keys).
    pub logs: Vec<(String, NoteVerifier)>,
    /// The clock, in POSIX seconds, that stamps cosignatures.
    pub clock: fn() -> u64,
}

impl WitnessOptions {
    /// Options with the system clock.
    pub fn new(data_dir: impl Into<PathBuf>, logs: Vec<(String, NoteVerifier)>) -> Self {
        WitnessOptions {
            data_dir: data_dir.into(),
            name: None,
            logs,
            clock: system_clock,
        }
    }
}

/// Seconds since the Unix epoch by the system clock (at least 1: a cosignature's timestamp
/// must not be zero).
pub fn system_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs().max(1))
}

/// One followed log.
struct Log {
    keys: Vec<NoteVerifier>,
    /// The latest cosigned checkpoint. Held across check and persist, so two concurrent
    /// submissions cannot both pass the old-size check (tlog-witness's race).
    latest: tokio::sync::Mutex<Option<check::Latest>>,
}

struct Inner {
    data_dir: PathBuf,
    cosigner: Cosigner,
    logs: BTreeMap<String, Log>,
    /// Origin hash → origin, for the monitoring endpoint.
    by_hash: BTreeMap<String, String>,
    clock: fn() -> u64,
}

/// A witness: its key, the logs it follows and their state. Cheap to clone.
#[derive(Clone)]
pub struct Witness(Arc<Inner>);

impl Witness {
    /// Opens (or creates) the witness in `opts.data_dir`: loads or generates its key, and
    /// loads the latest cosigned checkpoint of every configured log. Returns the witness and
    /// whether its key was just created.
    ///
    /// # Errors
    ///
    /// [`WitnessError::Config`] for no logs or a data directory that belongs to a log;
    /// key, state and I/O errors.
    pub fn open(opts: WitnessOptions) -> Result<(Witness, bool), WitnessError> {
        if opts.logs.is_empty() {
            return Err(WitnessError::Config(
                "a witness needs at least one log to follow".into(),
            ));
        }
        if opts.data_dir.join("stele.json").exists() {
            return Err(WitnessError::Config(format!(
                "{} is a log's data directory; give the witness a directory of its own",
                opts.data_dir.display()
            )));
        }
        files::create_dir_durable(&opts.data_dir, 0o755)?;
        let (cosigner, created) = keyfile::load_or_create(&opts.data_dir, opts.name.as_deref())?;
        let mut keys: BTreeMap<String, Vec<NoteVerifier>> = BTreeMap::new();
        for (origin, key) in opts.logs {
            let list = keys.entry(origin).or_default();
            if !list.contains(&key) {
                list.push(key);
            }
        }
        let mut logs = BTreeMap::new();
        let mut by_hash = BTreeMap::new();
        for (origin, keys) in keys {
            let latest = state::load(&opts.data_dir, &origin, &keys)?;
            by_hash.insert(origin_hash(&origin), origin.clone());
            logs.insert(
                origin,
                Log {
                    keys,
                    latest: tokio::sync::Mutex::new(latest),
                },
            );
        }
        Ok((
            Witness(Arc::new(Inner {
                data_dir: opts.data_dir,
                cosigner,
                logs,
                by_hash,
                clock: opts.clock,
            })),
            created,
        ))
    }

    /// The witness's public key (type `0x04`), what logs and verifiers configure.
    pub fn verifier(&self) -> CosignatureVerifier {
        self.0.cosigner.verifier()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.0.data_dir
    }

    /// The origins followed.
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.0.logs.keys().map(String::as_str)
    }

    /// The router serving the witness's HTTP interface.
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }
}

/// Serves `witness` on `listener` until `shutdown` completes.
///
/// # Errors
///
/// The I/O error that stopped the accept loop.
pub async fn serve(
    listener: tokio::net::TcpListener,
    witness: Witness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, witness.router())
        .with_graceful_shutdown(shutdown)
        .await
}
