//! # stele-server
//!
//! The HTTP API of a Stele log, on axum and tokio:
//!
//! - `POST /v1/events` accepts events (one JSON object, a JSON array, or NDJSON), validates every
//!   one against schema v1 ([`stele_core::event`]) and appends the whole request atomically.
//! - `GET /v1/events/{index_or_id}` returns a stored entry byte for byte.
//! - `GET /v1/events?…` searches the log through the query index ([`stele_index`]),
//!   `GET /v1/events/count` counts and groups, `GET /v1/replay` replays grants as of an instant.
//! - `GET /v1/proofs/inclusion` and `GET /v1/proofs/consistency` serve RFC 9162 §2.1.3 / §2.1.4
//!   proofs.
//! - `GET /checkpoint`, `GET /tile/…` implement the C2SP tlog-tiles read API byte-exactly
//!   (tlog-tiles "Checkpoints", "Merkle Tree" and "Log Entries" sections). With witnesses
//!   configured ([`witnessing`]), the checkpoint carries their C2SP tlog-cosignatures.
//!   (tlog-tiles "Checkpoints", "Merkle Tree" and "Log Entries" sections).
//! - `POST /v1/ingest/kubernetes` (audit webhook), `POST /v1/ingest/opa` (decision logs) and
//!   `POST /v1/logs` (OTLP/HTTP logs) map other systems' records to events
//!   ([`handlers::ingest`]); [`syslog`] listens for RFC 5424 syslog over TCP and TLS.
//! - `GET /v1/log`, `GET /healthz`, `GET /metrics` (OpenMetrics text), `GET /openapi.json`
//!   (OpenAPI 3.1, with the event JSON Schema embedded) and `GET /schema/event-v1.schema.json`.
//!
//! - `/v1/admin/tokens` (create, list, revoke) manages API tokens.
//! - `GET /v1/key/rotations` serves the signing-key rotation statements ([`keys`]).
//!
//! Access control ([`auth`]): with authentication on, every route but the public ones needs
//! `Authorization: Bearer <token>` of a role the route allows; reads are meta-logged. Without
//! it ([`AppState::enable_auth`] not called) the API is open.
//!
//! HTTPS ([`tls`], rustls): [`serve_https`] serves the same router over TLS and, with a client
//! CA, verifies client certificates (mTLS), which the access middleware maps to principals.
//!
//! What it leaves out: there is no update or delete route for entries (the log is
//! append-only), the query index is
//! `stele-index`'s, handed in with [`AppState::build`].
//!
//! Every error is answered with a JSON body `{"error": "...", ...}` (see [`error::ApiError`]).

pub mod auth;
pub mod body;
pub mod error;
pub mod handlers;
pub mod keys;
mod metrics;
pub mod ocsf;
pub mod state;
pub mod syslog;
pub mod tls;
pub mod witnessing;

use std::future::Future;

use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;

pub use error::ApiError;
pub use state::{AppState, ServerConfig};

/// Builds the router serving every route of the API over `state`.
///
/// The body of `POST /v1/events` is limited by [`ServerConfig::max_body_bytes`] alone: axum's
/// default 2 MB extractor limit is disabled because the handler reads the body itself.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (path, _method, handler) in routes() {
        router = router.route(path, handler);
    }
    router
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::middleware::enforce,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// The route table: path template (axum syntax), method, handler. One entry per method, so
/// the OpenAPI document can be checked against it.
pub(crate) fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    use handlers::{ingest, ops, tiles, v1};
    vec![
        ("/v1/events", "post", post(v1::events::append)),
        ("/v1/events", "get", get(v1::query::search)),
        ("/v1/events/count", "get", get(v1::query::count)),
        ("/v1/replay", "get", get(v1::replay::replay)),
        ("/v1/ingest/kubernetes", "post", post(ingest::k8s::ingest)),
        ("/v1/ingest/opa", "post", post(ingest::opa::ingest)),
        ("/v1/logs", "post", post(ingest::otlp::ingest)),
        (
            "/v1/events/{index_or_id}",
            "get",
            get(v1::events::get_event),
        ),
        ("/v1/proofs/inclusion", "get", get(v1::proofs::inclusion)),
        (
            "/v1/proofs/consistency",
            "get",
            get(v1::proofs::consistency),
        ),
        ("/v1/log", "get", get(ops::log_info)),
        ("/checkpoint", "get", get(tiles::checkpoint)),
        ("/v1/key/rotations", "get", get(keys::rotations)),
        ("/tile/{*rest}", "get", get(tiles::tile)),
        ("/healthz", "get", get(ops::healthz)),
        ("/metrics", "get", get(ops::metrics)),
        ("/openapi.json", "get", get(ops::openapi)),
        (
            "/schema/event-v1.schema.json",
            "get",
            get(ops::event_schema),
        ),
        ("/v1/admin/tokens", "post", post(auth::admin::create)),
        ("/v1/admin/tokens", "get", get(auth::admin::list)),
        (
            "/v1/admin/tokens/{id}",
            "delete",
            delete(auth::admin::revoke),
        ),
    ]
}

/// Serves the API on `listener` until `shutdown` completes, then finishes in-flight requests.
///
/// The store is not closed here: the caller owns it and closes it after this returns, so the
/// final checkpoint covers every acknowledged append.
///
/// # Errors
///
/// Returns the I/O error that stopped the accept loop.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer address is kept for the meta-log (`actor.ip`).
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Like [`serve`], over TLS with `config` (see [`tls::load_server_config`]): requests carry
/// the verified client certificate, if any, for the access middleware.
///
/// # Errors
///
/// As [`tls::serve_tls`].
pub async fn serve_https(
    listener: tokio::net::TcpListener,
    state: AppState,
    config: std::sync::Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tls::serve_tls(listener, router(state), config, shutdown).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    #[test]
    fn openapi_document_describes_exactly_the_served_routes() {
        let doc: Value =
            serde_json::from_str(crate::handlers::ops::openapi_document().unwrap()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = doc["paths"].as_object().unwrap();
        let documented: BTreeSet<(String, String)> = paths
            .iter()
            .flat_map(|(path, item)| {
                let methods = item.as_object().unwrap().keys();
                methods
                    .filter(|m| {
                        ["get", "post", "put", "patch", "delete", "head"].contains(&m.as_str())
                    })
                    .map(move |m| (path.clone(), m.clone()))
            })
            .collect();
        // axum writes a catch-all as `{*name}`, OpenAPI as `{name}`.
        let served: BTreeSet<(String, String)> = super::routes()
            .into_iter()
            .map(|(path, method, _)| (path.replace("{*", "{"), method.to_owned()))
            .collect();
        assert_eq!(documented, served);
    }

    #[test]
    fn openapi_document_embeds_the_event_schema() {
        use crate::handlers::ops::{openapi_document, EVENT_SCHEMA};
        let doc: Value = serde_json::from_str(openapi_document().unwrap()).unwrap();
        let schema: Value = serde_json::from_str(EVENT_SCHEMA).unwrap();
        assert_eq!(doc["components"]["schemas"]["Event"], schema);
        let stored = doc["components"]["schemas"]["StoredEvent"]["$ref"]
            .as_str()
            .unwrap();
        let (id, pointer) = stored.split_once('#').unwrap();
        assert_eq!(id, schema["$id"]);
        assert!(schema.pointer(pointer).unwrap().is_object());
        // Every reference to a component resolves (the embedded schema's own `#/$defs/...`
        // references resolve against its `$id`, not against this document).
        let text = openapi_document().unwrap();
        for piece in text.split("\"$ref\": \"#/components/").skip(1) {
            let pointer = format!("/components/{}", piece.split('"').next().unwrap());
            assert!(doc.pointer(&pointer).is_some(), "dangling $ref #{pointer}");
        }
    }
}
