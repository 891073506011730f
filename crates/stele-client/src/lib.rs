//! # stele-client
//!
//! Records an application's authorization events in a Stele log without ever losing one
//! while the log is unreachable.
//!
//! - **Checked and identified at once.** [`Client::record`] validates the event against
//!   schema v1 (the same code the server runs, from `stele-core`) and gives it a UUIDv7 `id`
//!   unless it has one, so a malformed event fails in the caller's hands, and every retry of
//!   it is idempotent: the log answers a resend with the original entry.
//! - **Batching.** A background thread sends events in batches (up to
//!   [`ClientBuilder::max_batch`], or what arrived within [`ClientBuilder::linger`]) as NDJSON
//!   to `POST /v1/events`, with `Authorization: Bearer <token>` when a token is set.
//! - **Spool.** A batch the log does not take (unreachable, timeout, 5xx, 503 busy, 401/403)
//!   is written to the spool directory and fsynced; from then on new events go behind it, so
//!   the order is kept, and the spool is replayed oldest first, with exponential backoff,
//!   until the log takes it. The spool survives restarts of the application. It is bounded
//!   ([`ClientBuilder::max_spool_bytes`]); when it is full, [`Client::record`] fails with
//!   [`ClientError::SpoolFull`] instead of dropping anything.
//! - **Backpressure.** The queue to the background thread is bounded: [`Client::record`]
//!   blocks while it is full, [`Client::try_record`] returns [`ClientError::QueueFull`].
//! - **Durability points.** [`Client::record_durable`] and [`Client::flush`] return once the
//!   events are in the log or in the fsynced spool; [`Client::drain`] once they are in the log.
//!
//! A batch the log refuses for good (400, 409, 413: a bug, not an outage) is moved to
//! `rejected/` in the spool directory and reported, never retried forever nor dropped.
//!
//! What it leaves out: reading the log and verifying proofs (see the `stele` CLI and
//! `stele-core`); async APIs (the background thread serves sync and async programs alike).

mod spool;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use stele_core::event::{self, EventLimits, FieldError};
use uuid::Uuid;

/// Everything that can go wrong recording events.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The event does not satisfy schema v1; nothing was queued.
    #[error("invalid event: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// The queue to the background thread is full ([`Client::try_record`] only).
    #[error("the client's queue is full")]
    QueueFull,
    /// The log is unreachable and the spool is full: the event was not recorded.
    #[error(
        "the log is unreachable and the spool is full ({limit} bytes); the event was not recorded"
    )]
    SpoolFull {
        /// The spool bound in bytes.
        limit: u64,
    },
    /// The log refused the batch for good; it was kept in `path` (or only reported, without
    /// a spool).
    #[error("the log refused the batch (HTTP {status}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The log's error answer.
        message: String,
        /// Where the batch was kept.
        path: Option<PathBuf>,
    },
    /// Reading or writing the spool failed.
    #[error("spool {op} {}: {source}", path.display())]
    Spool {
        /// The operation.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The events could not be written to the spool (the cause is logged and in the text).
    #[error("the events could not be spooled: {0}")]
    SpoolFailed(String),
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Http(String),
    /// The wait ended before the events were durable.
    #[error("timed out waiting for events to become durable")]
    Timeout,
    /// The background thread is gone (the client was closed, or it panicked).
    #[error("the client is closed")]
    Closed,
}

/// Where an event is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// In the log, at this index.
    Stored {
        /// Log index.
        index: u64,
    },
    /// In the fsynced spool, to be sent when the log is reachable.
    Spooled,
}

/// Counters of a client since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events the log acknowledged (sent directly or replayed from the spool).
    pub stored: u64,
    /// Events written to the spool.
    pub spooled: u64,
    /// Events the log refused for good.
    pub rejected: u64,
    /// Events that could not be recorded because the spool was full.
    pub lost_to_full_spool: u64,
    /// Bytes in the spool now.
    pub spool_bytes: u64,
}

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    pub(crate) url: String,
    pub(crate) token: Option<String>,
    pub(crate) spool_dir: Option<PathBuf>,
    pub(crate) max_spool_bytes: u64,
    pub(crate) max_batch: usize,
    pub(crate) linger: Duration,
    pub(crate) queue: usize,
    pub(crate) timeout: Duration,
    pub(crate) retry_min: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) limits: EventLimits,
}

impl ClientBuilder {
    /// A client of the log at `url` (like `http://127.0.0.1:7407`), with defaults: no token,
    /// no spool (batches are retried from memory), batches of 1000 or 20 ms, a queue of
    /// 10,000 events, 10 s request timeout, backoff from 100 ms to 30 s, 256 MiB spool bound.
    pub fn new(url: impl Into<String>) -> Self {
        ClientBuilder {
            url: url.into().trim_end_matches('/').to_owned(),
            token: None,
            spool_dir: None,
            max_spool_bytes: 256 << 20,
            max_batch: 1000,
            linger: Duration::from_millis(20),
            queue: 10_000,
            timeout: Duration::from_secs(10),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
            limits: EventLimits::default(),
        }
    }
    /// Sends `Authorization: Bearer <token>`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    /// Spools batches the log does not take in `dir` (created if missing). Without a spool,
    /// events wait in memory while the log is unreachable, and are lost if the process ends.
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }
    /// Bound on the spool's size.
    pub fn max_spool_bytes(mut self, bytes: u64) -> Self {
        self.max_spool_bytes = bytes;
        self
    }
    /// Most events per request (at least 1).
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }
    /// How long a batch waits for more events before it is sent.
    pub fn linger(mut self, d: Duration) -> Self {
        self.linger = d;
        self
    }
    /// Events queued for the background thread before [`Client::record`] blocks.
    pub fn queue(mut self, n: usize) -> Self {
        self.queue = n.max(1);
        self
    }
    /// Timeout of one HTTP request.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }
    /// First and longest wait between retries (doubling in between).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.retry_min = min;
        self.retry_max = max.max(min);
        self
    }
    /// Starts the client: opens the spool (replaying what an earlier run left there) and the
    /// background thread.
    ///
    /// # Errors
    ///
    /// An unusable spool directory, or an HTTP client that cannot be built.
    pub fn build(self) -> Result<Client, ClientError> {
        let spool = match &self.spool_dir {
            Some(dir) => Some(spool::Spool::open(dir, self.max_spool_bytes)?),
            None => None,
        };
        let http = worker::http_client(&self)?;
        let shared = Arc::new(Shared::default());
        if let Some(s) = &spool {
            shared.spool_bytes.store(s.bytes(), Ordering::Relaxed);
        }
        let (tx, rx) = mpsc::sync_channel(self.queue);
        let limits = self.limits;
        let w = worker::Worker::new(self, http, spool, shared.clone());
        let handle = std::thread::Builder::new()
            .name("stele-client".to_owned())
            .spawn(move || w.run(rx))
            .map_err(|e| ClientError::Http(format!("starting the client thread: {e}")))?;
        Ok(Client {
            tx: Some(tx),
            handle: Mutex::new(Some(handle)),
            shared,
            limits,
        })
    }
}

/// State the application threads and the background thread share.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) stored: AtomicU64,
    pub(crate) spooled: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) spool_bytes: AtomicU64,
    /// Set while the log is unreachable and the spool cannot take another batch.
    pub(crate) spool_full: AtomicBool,
    pub(crate) spool_limit: AtomicU64,
}

/// A message to the background thread.
pub(crate) enum Cmd {
    /// One event as an NDJSON line (with its id), and who waits for it.
    Record {
        line: Vec<u8>,
        done: Option<SyncSender<Result<Delivery, ClientError>>>,
    },
    /// Answer once everything before is in the log or the spool.
    Flush(SyncSender<Result<(), ClientError>>),
    /// Answer once everything before is in the log (the spool is empty).
    Drain(SyncSender<Result<(), ClientError>>),
}

/// A handle to the background sender. Cheap to share between threads (`&Client` is enough
/// to record). Dropping it flushes what is queued (to the log or the spool) and stops.
pub struct Client {
    tx: Option<SyncSender<Cmd>>,
    handle: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
    limits: EventLimits,
}

impl Client {
    /// A builder for the log at `url`.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    /// Checks `event`, gives it an id if it has none, and queues it; blocks while the queue
    /// is full. Returns the event's id.
    ///
    /// # Errors
    ///
    /// [`ClientError::Invalid`] with every problem; [`ClientError::SpoolFull`] while the log
    /// is unreachable and the spool full; [`ClientError::Closed`].
    pub fn record(&self, event: Value) -> Result<Uuid, ClientError> {
        let (id, line) = self.prepare(event)?;
        self.send(Cmd::Record { line, done: None }, true)?;
        Ok(id)
    }

    /// [`Client::record`] that fails with [`ClientError::QueueFull`] instead of blocking.
    ///
    /// # Errors
    ///
    /// As [`Client::record`], and [`ClientError::QueueFull`].
    pub fn try_record(&self, event: Value) -> Result<Uuid, ClientError> {
        let (id, line) = self.prepare(event)?;
        self.send(Cmd::Record { line, done: None }, false)?;
        Ok(id)
    }

    /// [`Client::record`], then waits until the event is in the log or in the fsynced spool.
    ///
    /// # Errors
    ///
    /// As [`Client::record`], and [`ClientError::Rejected`] if the log refused it for good.
    pub fn record_durable(&self, event: Value) -> Result<(Uuid, Delivery), ClientError> {
        let (id, line) = self.prepare(event)?;
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(
            Cmd::Record {
                line,
                done: Some(tx),
            },
            true,
        )?;
        let delivery = rx.recv().map_err(|_| ClientError::Closed)??;
        Ok((id, delivery))
    }

    /// Waits until every event recorded before is in the log or in the fsynced spool.
    ///
    /// # Errors
    ///
    /// [`ClientError::Timeout`] after `timeout`; [`ClientError::Closed`].
    pub fn flush(&self, timeout: Duration) -> Result<(), ClientError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Cmd::Flush(tx), true)?;
        wait(&rx, timeout)
    }

    /// Waits until every event recorded before is in the log, the spool included.
    ///
    /// # Errors
    ///
    /// [`ClientError::Timeout`] after `timeout` (for example while the log is down).
    pub fn drain(&self, timeout: Duration) -> Result<(), ClientError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Cmd::Drain(tx), true)?;
        wait(&rx, timeout)
    }

    /// Counters since the client started.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            stored: s.stored.load(Ordering::Relaxed),
            spooled: s.spooled.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            lost_to_full_spool: s.lost.load(Ordering::Relaxed),
            spool_bytes: s.spool_bytes.load(Ordering::Relaxed),
        }
    }

    /// Stops the background thread after it has put every queued event in the log or the
    /// spool.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tx = None;
        let handle = self.handle.lock().map(|mut h| h.take()).unwrap_or(None);
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("the stele-client thread panicked");
            }
        }
    }

    fn prepare(&self, mut event: Value) -> Result<(Uuid, Vec<u8>), ClientError> {
        if self.shared.spool_full.load(Ordering::Acquire) {
            self.shared.lost.fetch_add(1, Ordering::Relaxed);
            return Err(ClientError::SpoolFull {
                limit: self.shared.spool_limit.load(Ordering::Relaxed),
            });
        }
        if let Value::Object(map) = &mut event {
            if !map.contains_key("id") {
                map.insert("id".to_owned(), Value::String(Uuid::now_v7().to_string()));
            }
        }
        let checked = event::validate(&event, &self.limits).map_err(ClientError::Invalid)?;
        let id = checked
            .id()
            .ok_or_else(|| ClientError::Invalid(vec![FieldError::new("$.id", "is required")]))?;
        let mut line = serde_json::to_vec(&event)
            .map_err(|e| ClientError::Invalid(vec![FieldError::new("$", e.to_string())]))?;
        line.push(b'\n');
        Ok((id, line))
    }

    fn send(&self, cmd: Cmd, block: bool) -> Result<(), ClientError> {
        let tx = self.tx.as_ref().ok_or(ClientError::Closed)?;
        if block {
            tx.send(cmd).map_err(|_| ClientError::Closed)
        } else {
            tx.try_send(cmd).map_err(|e| match e {
                TrySendError::Full(_) => ClientError::QueueFull,
                TrySendError::Disconnected(_) => ClientError::Closed,
            })
        }
    }
}

fn wait(
    rx: &mpsc::Receiver<Result<(), ClientError>>,
    timeout: Duration,
) -> Result<(), ClientError> {
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(ClientError::Timeout),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(ClientError::Closed),
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop();
    }
}
