//! The admin API: `POST /v1/admin/tokens` (create), `GET /v1/admin/tokens` (list),
//! `DELETE /v1/admin/tokens/{id}` (revoke). Admin role only (the middleware checks it); an
//! admin manages credentials and has no route to entries.
//!
//! Changes go through the same token file as `stele token … --data`, under its lock, and are
//! recorded in the log (`admin.token.create`, `admin.token.revoke`) before they are answered.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use stele_auth::model::Status;
use stele_auth::{AuthError, NewToken, Role, TokenId, TokenRecord};
use stele_core::timestamp::Timestamp;

use super::{Auth, Caller};
use crate::error::ApiError;
use crate::state::AppState;

/// Body of `POST /v1/admin/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    role: Role,
    #[serde(default)]
    tenants: Vec<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    label: Option<String>,
    /// Absolute expiry (RFC 3339).
    #[serde(default)]
    expires: Option<Timestamp>,
    /// Expiry relative to now, in seconds.
    #[serde(default)]
    expires_in_seconds: Option<u64>,
    /// Bind a client certificate (mTLS) by its SHA-256 fingerprint instead of issuing a token.
    #[serde(default)]
    certificate_sha256: Option<stele_auth::CertFingerprint>,
}

/// The JSON description of a token record (never its digest, let alone a secret). A
/// certificate principal also shows its certificate's fingerprint, which is public.
pub fn describe(record: &TokenRecord, now: Timestamp) -> Value {
    let mut v = json!({
        "id": record.id,
        "role": record.role,
        "tenants": record.tenants,
        "source": record.source,
        "label": record.label,
        "created": record.created,
        "created_by": record.created_by,
        "expires": record.expires,
        "revoked": record.revoked,
        "revoked_by": record.revoked_by,
        "status": record.status(now).as_str(),
        "credential": record.credential.kind(),
    });
    if let stele_auth::Credential::Certificate { sha256 } = &record.credential {
        v["certificate_sha256"] = json!(sha256);
    }
    v
}

fn auth_of(state: &AppState) -> Result<Auth, ApiError> {
    state.auth().cloned().ok_or_else(|| {
        ApiError::NotFound(
            "authentication is off (stele serve --no-auth): there are no tokens to manage"
                .to_owned(),
        )
    })
}

fn admin_id(caller: &Caller) -> Result<String, ApiError> {
    caller.principal().map(|p| p.id.clone()).ok_or_else(|| {
        ApiError::Internal("an admin route was reached without a principal".to_owned())
    })
}

fn store_error(e: AuthError) -> ApiError {
    match e {
        AuthError::InvalidSpec(m) => ApiError::BadRequest(m),
        AuthError::UnknownId(id) => ApiError::NotFound(format!("no token with id {id}")),
        AuthError::BadId(_) => ApiError::BadRequest(e.to_string()),
        other => ApiError::Internal(format!("token file: {other}")),
    }
}

/// `POST /v1/admin/tokens`: creates a token and answers it once (201).
///
/// # Errors
/// 400 for a body that is not a valid token request; 503 if the log cannot record the
/// creation (the token then exists but its secret is not disclosed: revoke it).
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let auth = auth_of(&state)?;
    let by = admin_id(&caller)?;
    let req: CreateRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid token request: {e}")))?;
    let now = crate::handlers::v1::events::now()?;
    let expires = match (req.expires, req.expires_in_seconds) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give expires or expires_in_seconds, not both".to_owned(),
            ))
        }
        (Some(at), None) => Some(at),
        (None, Some(secs)) => Some(
            i64::try_from(secs)
                .ok()
                .and_then(|s| s.checked_mul(1_000_000_000))
                .and_then(|ns| now.unix_nanos().checked_add(ns))
                .map(Timestamp::from_unix_nanos)
                .ok_or_else(|| {
                    ApiError::BadRequest("expires_in_seconds is too large".to_owned())
                })?,
        ),
        (None, None) => None,
    };
    let spec = NewToken {
        role: Some(req.role),
        tenants: req.tenants,
        source: req.source,
        label: req.label,
        expires,
        certificate_sha256: req.certificate_sha256,
    };
    let store = auth.token_store().clone();
    let (token, record) = tokio::task::spawn_blocking(move || {
        if spec.certificate_sha256.is_some() {
            store
                .register_certificate(&spec, &by, now)
                .map(|r| (None, r))
        } else {
            store.create(&spec, &by, now).map(|(t, r)| (Some(t), r))
        }
    })
    .await
    .map_err(|e| ApiError::Internal(format!("token task failed: {e}")))?
    .map_err(store_error)?;
    tracing::info!(id = %record.id, role = %record.role, "token created over the admin API");
    if let Err(e) = auth.0.meta.token_lifecycle(&record).await {
        return Err(ApiError::Unavailable(format!(
            "token {} was created but the log cannot record it ({e}); its secret is withheld — revoke it",
            record.id
        )));
    }
    let mut answer = describe(&record, now);
    if let Some(token) = token {
        answer["token"] = json!(token.expose());
    }
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /v1/admin/tokens`: every token, revoked and expired ones included, without secrets.
///
/// # Errors
/// 503 if the token file cannot be read.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let auth = auth_of(&state)?;
    let table = auth
        .0
        .tokens
        .snapshot()
        .map_err(super::tokens::unavailable)?;
    let now = crate::handlers::v1::events::now()?;
    let tokens: Vec<Value> = table.records().iter().map(|r| describe(r, now)).collect();
    Ok(Json(json!({ "tokens": tokens })))
}

/// `DELETE /v1/admin/tokens/{id}`: revokes a token; it is refused from the next request on.
/// Revoking a revoked token answers 200 with `"already_revoked": true`.
///
/// # Errors
/// 400 for a malformed id, 404 for an unknown one; 503 if the log cannot record the
/// revocation (the token is revoked all the same).
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    let auth = auth_of(&state)?;
    let by = admin_id(&caller)?;
    let id = TokenId::parse(&id).map_err(store_error)?;
    let now = crate::handlers::v1::events::now()?;
    let store = auth.token_store().clone();
    let (record, newly) = tokio::task::spawn_blocking(move || store.revoke(&id, &by, now))
        .await
        .map_err(|e| ApiError::Internal(format!("token task failed: {e}")))?
        .map_err(store_error)?;
    if newly {
        tracing::info!(id = %record.id, "token revoked over the admin API");
    }
    if let Err(e) = auth.0.meta.token_lifecycle(&record).await {
        return Err(ApiError::Unavailable(format!(
            "token {} is revoked, but the log cannot record it yet ({e})",
            record.id
        )));
    }
    let mut answer = describe(&record, now);
    if !newly {
        answer["already_revoked"] = json!(true);
    }
    debug_assert_eq!(record.status(now), Status::Revoked);
    Ok(Json(answer))
}
