//! The background thread: gathers batches, sends them, spools what the log does not take, and
//! replays the spool with backoff.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::spool::Spool;
use crate::{ClientBuilder, ClientError, Cmd, Delivery, Shared};

/// How a send went.
enum Sent {
    /// The log took every event; their indexes in batch order.
    Stored(Vec<u64>),
    /// Try again later (unreachable, timeout, 5xx, 429, 401/403).
    Retry(String),
    /// The log refused the batch for good.
    Refused { status: u16, message: String },
}

type Waiter = Option<SyncSender<Result<Delivery, ClientError>>>;

/// The blocking HTTP client the thread uses.
pub(crate) fn http_client(b: &ClientBuilder) -> Result<reqwest::blocking::Client, ClientError> {
    reqwest::blocking::Client::builder()
        .timeout(b.timeout)
        .build()
        .map_err(|e| ClientError::Http(e.to_string()))
}

pub(crate) struct Worker {
    cfg: ClientBuilder,
    http: reqwest::blocking::Client,
    spool: Option<Spool>,
    /// Without a spool: batches waiting in memory, oldest first.
    memory: VecDeque<Vec<u8>>,
    shared: Arc<Shared>,
    backoff: Duration,
    next_try: Instant,
    drains: Vec<SyncSender<Result<(), ClientError>>>,
}

impl Worker {
    pub(crate) fn new(
        cfg: ClientBuilder,
        http: reqwest::blocking::Client,
        spool: Option<Spool>,
        shared: Arc<Shared>,
    ) -> Self {
        shared
            .spool_limit
            .store(cfg.max_spool_bytes, Ordering::Relaxed);
        Worker {
            backoff: cfg.retry_min,
            cfg,
            http,
            spool,
            memory: VecDeque::new(),
            shared,
            next_try: Instant::now(),
            drains: Vec::new(),
        }
    }

    fn backlog(&self) -> bool {
        !self.memory.is_empty() || self.spool.as_ref().is_some_and(|s| !s.is_empty())
    }

    pub(crate) fn run(mut self, rx: Receiver<Cmd>) {
        let mut open = true;
        while open || self.backlog() {
            let wait = if self.backlog() {
                self.next_try.saturating_duration_since(Instant::now())
            } else {
                Duration::from_secs(3600)
            };
            let mut batch: Vec<u8> = Vec::new();
            let mut waiters: Vec<Waiter> = Vec::new();
            let mut flushes = Vec::new();
            if open {
                match rx.recv_timeout(wait) {
                    Ok(cmd) => self.take(cmd, &mut batch, &mut waiters, &mut flushes),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => open = false,
                }
                // Gather more for up to `linger`, unless asked to flush.
                let until = Instant::now() + self.cfg.linger;
                while open && waiters.len() < self.cfg.max_batch && flushes.is_empty() {
                    let left = until.saturating_duration_since(Instant::now());
                    if waiters.is_empty() {
                        break;
                    }
                    match rx.recv_timeout(left) {
                        Ok(cmd) => self.take(cmd, &mut batch, &mut waiters, &mut flushes),
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => open = false,
                    }
                }
            } else if !self.backlog() {
                break;
            }
            if !waiters.is_empty() {
                self.deliver(batch, waiters);
            }
            for f in flushes {
                let _ = f.send(Ok(()));
            }
            if self.backlog() && Instant::now() >= self.next_try {
                self.replay();
            }
            if !self.backlog() {
                for d in self.drains.drain(..) {
                    let _ = d.send(Ok(()));
                }
            }
            if !open && self.backlog() {
                // Closing with a backlog: it is in the spool (or, without one, lost with
                // the process); stop instead of retrying forever.
                if self.spool.is_some() {
                    break;
                }
                tracing::error!(
                    batches = self.memory.len(),
                    "stele-client closing with unsent batches and no spool"
                );
                break;
            }
        }
    }

    fn take(
        &mut self,
        cmd: Cmd,
        batch: &mut Vec<u8>,
        waiters: &mut Vec<Waiter>,
        flushes: &mut Vec<SyncSender<Result<(), ClientError>>>,
    ) {
        match cmd {
            Cmd::Record { line, done } => {
                batch.extend_from_slice(&line);
                waiters.push(done);
            }
            Cmd::Flush(tx) => flushes.push(tx),
            Cmd::Drain(tx) => self.drains.push(tx),
        }
    }

    /// Sends a new batch, or queues it behind the backlog to keep the order.
    fn deliver(&mut self, batch: Vec<u8>, waiters: Vec<Waiter>) {
        let n = waiters.len() as u64;
        if !self.backlog() {
            match self.post(&batch) {
                Sent::Stored(indexes) => {
                    self.shared.stored.fetch_add(n, Ordering::Relaxed);
                    for (w, index) in waiters.into_iter().zip(indexes) {
                        answer(w, Ok(Delivery::Stored { index }));
                    }
                    return;
                }
                Sent::Refused { status, message } => {
                    self.shared.rejected.fetch_add(n, Ordering::Relaxed);
                    let path = self
                        .spool
                        .as_mut()
                        .and_then(|s| s.reject_batch(&batch).ok());
                    tracing::error!(status, %message, path = ?path, "the log refused a batch");
                    for w in waiters {
                        answer(
                            w,
                            Err(ClientError::Rejected {
                                status,
                                message: message.clone(),
                                path: path.clone(),
                            }),
                        );
                    }
                    return;
                }
                Sent::Retry(why) => {
                    tracing::warn!(%why, "the log is unreachable; spooling");
                    self.schedule_retry();
                }
            }
        }
        let queued = match self.spool.as_mut() {
            Some(spool) => spool.push(&batch).map(|()| Delivery::Spooled),
            None => {
                let held: u64 = self.memory.iter().map(|b| b.len() as u64).sum();
                if held.saturating_add(batch.len() as u64) > self.cfg.max_spool_bytes {
                    Err(ClientError::SpoolFull {
                        limit: self.cfg.max_spool_bytes,
                    })
                } else {
                    self.memory.push_back(batch);
                    Ok(Delivery::Spooled)
                }
            }
        };
        match queued {
            Ok(d) => {
                self.shared.spooled.fetch_add(n, Ordering::Relaxed);
                self.update_spool_size();
                for w in waiters {
                    answer(w, Ok(d));
                }
            }
            Err(e) => {
                if matches!(e, ClientError::SpoolFull { .. }) {
                    self.shared.spool_full.store(true, Ordering::Release);
                }
                self.shared.lost.fetch_add(n, Ordering::Relaxed);
                tracing::error!(error = %e, events = n, "events could not be spooled");
                for w in waiters {
                    let err = match &e {
                        ClientError::SpoolFull { limit } => {
                            ClientError::SpoolFull { limit: *limit }
                        }
                        other => ClientError::SpoolFailed(other.to_string()),
                    };
                    answer(w, Err(err));
                }
            }
        }
    }

    /// Sends the backlog, oldest first, until it is empty or the log fails again.
    fn replay(&mut self) {
        loop {
            let next = match self.spool.as_ref() {
                Some(spool) => match spool.oldest() {
                    Ok(Some((seq, data))) => Some((Some(seq), data)),
                    Ok(None) => None,
                    Err(e) => {
                        tracing::error!(error = %e, "reading the spool failed");
                        self.schedule_retry();
                        return;
                    }
                },
                None => self.memory.front().map(|b| (None, b.clone())),
            };
            let Some((seq, data)) = next else {
                break;
            };
            let n = data.iter().filter(|b| **b == b'\n').count() as u64;
            match self.post(&data) {
                Sent::Stored(_) => {
                    self.shared.stored.fetch_add(n, Ordering::Relaxed);
                    self.finish(seq, false);
                }
                Sent::Refused { status, message } => {
                    self.shared.rejected.fetch_add(n, Ordering::Relaxed);
                    tracing::error!(status, %message, "the log refused a spooled batch; kept in rejected/");
                    self.finish(seq, true);
                }
                Sent::Retry(why) => {
                    tracing::warn!(%why, "replaying the spool failed; will retry");
                    self.schedule_retry();
                    return;
                }
            }
        }
        self.backoff = self.cfg.retry_min;
        self.shared.spool_full.store(false, Ordering::Release);
    }

    /// Removes a replayed batch from the backlog (to `rejected/` if `rejected`).
    fn finish(&mut self, seq: Option<u64>, rejected: bool) {
        match (self.spool.as_mut(), seq) {
            (Some(spool), Some(seq)) => {
                let done = if rejected {
                    spool.reject(seq).map(|_| ())
                } else {
                    spool.remove(seq)
                };
                if let Err(e) = done {
                    tracing::error!(error = %e, "updating the spool failed");
                }
            }
            _ => {
                self.memory.pop_front();
            }
        }
        self.update_spool_size();
        self.shared.spool_full.store(false, Ordering::Release);
    }

    fn update_spool_size(&self) {
        let bytes = match &self.spool {
            Some(s) => s.bytes(),
            None => self.memory.iter().map(|b| b.len() as u64).sum(),
        };
        self.shared.spool_bytes.store(bytes, Ordering::Relaxed);
    }

    fn schedule_retry(&mut self) {
        self.next_try = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.cfg.retry_max);
    }

    /// POSTs an NDJSON batch to `/v1/events`.
    fn post(&self, ndjson: &[u8]) -> Sent {
        let mut req = self
            .http
            .post(format!("{}/v1/events", self.cfg.url))
            .header("content-type", "application/x-ndjson")
            .body(ndjson.to_vec());
        if let Some(token) = &self.cfg.token {
            req = req.bearer_auth(token);
        }
        let resp = match req.send() {
            Ok(r) => r,
            Err(e) => return Sent::Retry(e.to_string()),
        };
        let status = resp.status().as_u16();
        let body = resp.text().unwrap_or_default();
        match status {
            200 => {
                let indexes = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| {
                        v.get("entries")?
                            .as_array()?
                            .iter()
                            .map(|e| e.get("index")?.as_u64())
                            .collect::<Option<Vec<u64>>>()
                    })
                    .unwrap_or_default();
                Sent::Stored(indexes)
            }
            401 | 403 => {
                tracing::error!(
                    status,
                    "the log refused the client's credentials; spooling until they are fixed"
                );
                Sent::Retry(format!("HTTP {status}: {body}"))
            }
            408 | 429 | 500..=599 => Sent::Retry(format!("HTTP {status}: {body}")),
            _ => Sent::Refused {
                status,
                message: body,
            },
        }
    }
}

fn answer(w: Waiter, r: Result<Delivery, ClientError>) {
    if let Some(w) = w {
        let _ = w.send(r);
    }
}
