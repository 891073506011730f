//! Shared state of the router: the store, the limits and the log's public identity.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use stele_core::event::EventLimits;
use stele_index::Index;
use stele_store::{Store, StoreError};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::handlers::ingest::IngestLimits;
use crate::metrics::{HttpMetrics, IngestMetrics};
use crate::witnessing::Witnessing;

/// Settings of the API that are not the store's.
#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    /// Limits every event is validated against.
    pub limits: EventLimits,
    /// Largest accepted `POST /v1/events` body, in bytes.
    pub max_body_bytes: usize,
    /// Largest number of events in one `POST /v1/events` request (and of records in one
    /// ingest request).
    pub max_events: usize,
    /// Largest ingest body after gzip decoding (`Content-Encoding: gzip`), in bytes.
    pub max_decoded_bytes: usize,
}

impl ServerConfig {
    /// Default body limit: 16 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;
    /// Default number of events per request.
    pub const DEFAULT_MAX_EVENTS: usize = 100_000;
    /// Default decoded-body limit: 64 MiB.
    pub const DEFAULT_MAX_DECODED_BYTES: usize = 64 << 20;
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: EventLimits::default(),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_events: Self::DEFAULT_MAX_EVENTS,
            max_decoded_bytes: Self::DEFAULT_MAX_DECODED_BYTES,
        }
    }
}

/// Cheaply clonable state handed to every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Store,
    config: ServerConfig,
    origin: String,
    started: Instant,
    registry: Registry,
    http: HttpMetrics,
    witnessing: Option<Witnessing>,
    auth: OnceLock<Auth>,
    index: Option<Index>,
    ingest: IngestMetrics,
}

impl AppState {
    /// Wraps an open store. The log's origin and verifier key are the store's (it holds the
    /// signing key). The store's metrics and the HTTP metrics are registered in one registry,
    /// served at `GET /metrics`.
    pub fn new(store: Store, config: ServerConfig) -> Self {
        Self::build(store, config, None, None)
    }

    /// Like [`AppState::new`], with witnesses: `GET /checkpoint` then serves what
    /// `witnessing` decides (cosigned checkpoints), and its metrics join the registry. The
    /// caller runs [`Witnessing::run`].
    pub fn with_witnessing(
        store: Store,
        config: ServerConfig,
        witnessing: Option<Witnessing>,
    ) -> Self {
        Self::build(store, config, witnessing, None)
    }

    /// Like [`AppState::new`], with the query index of the store, which serves
    /// `GET /v1/events?…`, `GET /v1/events/count` and `GET /v1/replay` (without one they
    /// answer 503). Its gauges join the metrics.
    pub fn with_index(store: Store, config: ServerConfig, index: Index) -> Self {
        Self::build(store, config, None, Some(index))
    }

    /// The general constructor: optional witnesses and optional query index.
    pub fn build(
        store: Store,
        config: ServerConfig,
        witnessing: Option<Witnessing>,
        index: Option<Index>,
    ) -> Self {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let ingest = IngestMetrics::register(&mut registry);
        store.register_metrics(&mut registry);
        if let Some(w) = &witnessing {
            w.register_metrics(&mut registry);
        }
        if let Some(index) = &index {
            index.register_metrics(&mut registry);
        }
        AppState(Arc::new(Inner {
            origin: store.origin().to_owned(),
            store,
            config,
            started: Instant::now(),
            registry,
            http,
            witnessing,
            auth: OnceLock::new(),
            index,
            ingest,
        }))
    }

    /// Turns authentication on: from now on every request is checked by `auth` (see
    /// [`crate::auth`]). Without it the API is open. Call before serving.
    ///
    /// # Errors
    /// Gives `auth` back if authentication is already on.
    pub fn enable_auth(&self, auth: Auth) -> Result<(), Auth> {
        self.0.auth.set(auth)
    }

    /// The authentication state, if authentication is on.
    pub fn auth(&self) -> Option<&Auth> {
        self.0.auth.get()
    }

    /// The witnessing configuration, if witnesses are configured.
    pub fn witnessing(&self) -> Option<&Witnessing> {
        self.0.witnessing.as_ref()
    }

    /// The query index, if the server has one.
    pub fn index(&self) -> Option<&Index> {
        self.0.index.as_ref()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    /// The log's origin (the first line of its checkpoints).
    pub fn origin(&self) -> &str {
        &self.0.origin
    }

    /// The C2SP verifier key (`<name>+<hex id>+<base64 key>`) that checks the checkpoints:
    /// the current one (a key rotation changes it while the server runs).
    pub fn verifier_key(&self) -> String {
        self.0.store.verifier_key()
    }

    /// Time since the state was created.
    pub fn uptime(&self) -> Duration {
        self.0.started.elapsed()
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.0.registry
    }

    pub(crate) fn http_metrics(&self) -> &HttpMetrics {
        &self.0.http
    }

    /// Records accepted and rejected per integration.
    pub(crate) fn ingest_metrics(&self) -> &IngestMetrics {
        &self.0.ingest
    }

    /// The size limits of the ingest routes.
    pub fn ingest_limits(&self) -> IngestLimits {
        IngestLimits {
            max_body_bytes: self.0.config.max_body_bytes,
            max_decoded_bytes: self.0.config.max_decoded_bytes,
        }
    }

    /// Runs a synchronous store call on the blocking pool: reads touch files and must not
    /// stall the async workers.
    pub(crate) async fn with_store<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let state = self.clone();
        let joined = tokio::task::spawn_blocking(move || f(state.store())).await;
        match joined {
            Ok(result) => result.map_err(ApiError::from),
            Err(e) => Err(ApiError::Internal(format!("store task failed: {e}"))),
        }
    }
}
