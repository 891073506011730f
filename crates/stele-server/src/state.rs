//! Shared state of the router: the store, the limits and the log's public identity.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use stele_core::event::EventLimits;
use stele_store::{Store, StoreError};

use crate::error::ApiError;
use crate::handlers::ingest::IngestLimits;
use crate::metrics::{HttpMetrics, IngestMetrics};

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
    verifier_key: String,
    started: Instant,
    registry: Registry,
    http: HttpMetrics,
    ingest: IngestMetrics,
}

impl AppState {
    /// Wraps an open store. The log's origin and verifier key are the store's (it holds the
    /// signing key). The store's metrics and the HTTP metrics are registered in one registry,
    /// served at `GET /metrics`.
    pub fn new(store: Store, config: ServerConfig) -> Self {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let ingest = IngestMetrics::register(&mut registry);
        store.register_metrics(&mut registry);
        AppState(Arc::new(Inner {
            origin: store.origin().to_owned(),
            verifier_key: store.verifier_key().to_owned(),
            store,
            config,
            started: Instant::now(),
            registry,
            http,
            ingest,
        }))
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

    /// The C2SP verifier key (`<name>+<hex id>+<base64 key>`) that checks the checkpoints.
    pub fn verifier_key(&self) -> &str {
        &self.0.verifier_key
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
