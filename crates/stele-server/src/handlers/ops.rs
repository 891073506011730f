//! Operational routes: `/v1/log`, `/healthz`, `/metrics`, `/openapi.json`.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::AppState;

/// The OpenAPI 3.1 description of this API as written; [`openapi_document`] is what is served.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// JSON Schema of an event, schema v1 (the workspace's `schema/event-v1.schema.json`).
pub const EVENT_SCHEMA: &str = include_str!("../../../../schema/event-v1.schema.json");

/// Content type of the OpenMetrics text exposition format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /v1/log`: what a client needs to verify the log.
pub async fn log_info(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "origin": state.origin(),
        "verifier_key": state.verifier_key(),
        "size": state.store().size(),
        "checkpoint": state.store().latest_checkpoint().map(|c| c.note),
    }))
}

/// `GET /healthz`: 200 while the store accepts writes; 503 once an I/O failure has poisoned
/// it (reads still work, appends are refused until a restart recovers the log).
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let poisoned = state.store().is_poisoned();
    let status = if poisoned {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = json!({
        "status": if poisoned { "poisoned" } else { "ok" },
        "size": state.store().size(),
        "uptime_seconds": state.uptime().as_secs(),
    });
    (status, Json(body))
}

/// `GET /metrics`: HTTP and store metrics in the OpenMetrics text format.
///
/// # Errors
///
/// 500 if a metric fails to encode.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    if let Some(index) = state.index() {
        index.update_metrics();
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, state.registry())
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS))],
        text,
    )
        .into_response())
}

/// The served OpenAPI document: [`OPENAPI`] with the event schema embedded as
/// `components/schemas/Event`, so the document stands alone and the schema has one source.
///
/// # Errors
///
/// If either document is not JSON (the crate's tests rule that out).
pub fn openapi_document() -> Result<&'static str, ApiError> {
    static DOCUMENT: OnceLock<Result<String, String>> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| build_openapi().map_err(|e| e.to_string()))
        .as_deref()
        .map_err(|e| ApiError::Internal(format!("building the OpenAPI document: {e}")))
}

fn build_openapi() -> Result<String, serde_json::Error> {
    let mut doc: Value = serde_json::from_str(OPENAPI)?;
    let schema: Value = serde_json::from_str(EVENT_SCHEMA)?;
    // Embedded, the schema is found by its `$id`; the stored form lives in its `$defs`.
    let id = schema
        .get("$id")
        .and_then(Value::as_str)
        .unwrap_or("/schema/event-v1.schema.json")
        .to_owned();
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        schemas.insert("Event".to_owned(), schema);
        schemas.insert(
            "StoredEvent".to_owned(),
            json!({ "$ref": format!("{id}#/$defs/storedEvent") }),
        );
    }
    serde_json::to_string_pretty(&doc)
}

/// `GET /openapi.json`.
///
/// # Errors
///
/// 500 if the document cannot be built.
pub async fn openapi() -> Result<Response, ApiError> {
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        openapi_document()?,
    )
        .into_response())
}

/// `GET /schema/event-v1.schema.json`: lets clients validate events before sending them.
pub async fn event_schema() -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/schema+json"),
        )],
        EVENT_SCHEMA,
    )
        .into_response()
}
