//! The C2SP tlog-tiles read API: `GET /checkpoint` and `GET /tile/…`, byte-exact.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use stele_core::tile::{TileKind, TilePath};

use crate::auth::Returned;
use crate::error::ApiError;
use crate::state::AppState;

/// Full tiles never change (tlog-tiles: "full tiles are immutable").
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A partial tile of a given width never changes either, but the spec lets a log stop serving
/// it once the full tile exists, so it is cached for a shorter time.
const PARTIAL: &str = "public, max-age=3600";
/// The same for tiles only some principals may fetch: no shared cache may keep them.
const IMMUTABLE_PRIVATE: &str = "private, max-age=31536000, immutable";
const PARTIAL_PRIVATE: &str = "private, max-age=3600";

/// `GET /checkpoint`: the latest signed checkpoint note; with witnesses, with their
/// cosignatures (and, under a quorum, the latest checkpoint that meets it).
///
/// # Errors
///
/// 404 before the first checkpoint is published (or, under a quorum, cosigned by enough
/// witnesses).
pub async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let latest = state.store().latest_checkpoint();
    let note = match state.witnessing() {
        Some(w) => w.checkpoint_note(latest).ok_or_else(|| {
            ApiError::NotFound(match w.quorum() {
                0 => "no checkpoint has been published yet".to_owned(),
                q => format!("no checkpoint has been cosigned by {q} witnesses yet"),
            })
        })?,
        None => {
            latest
                .ok_or_else(|| {
                    ApiError::NotFound("no checkpoint has been published yet".to_owned())
                })?
                .note
        }
    };
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            // The checkpoint moves forward; caches must always ask again.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        note,
    )
        .into_response())
}

/// `GET /tile/<L>/<N>[.p/<W>]` and `GET /tile/entries/<N>[.p/<W>]`.
///
/// # Errors
///
/// 400 for a path that is not a tile path, 404 for a tile beyond the tree.
pub async fn tile(
    State(state): State<AppState>,
    rest: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(rest) = rest?;
    let path = format!("tile/{rest}");
    let tile = TilePath::parse(&path)
        .map_err(|e| ApiError::BadRequest(format!("malformed tile path /{path}: {e}")))?;
    let (index, width) = (tile.index, tile.width);
    // Entry bundles are auditor-only whenever authentication is on; hash tiles unless
    // verification material is public.
    let public = match state.auth() {
        None => true,
        Some(auth) => {
            matches!(tile.kind, TileKind::Hash { .. }) && auth.settings().public_verification
        }
    };
    let data = match tile.kind {
        TileKind::Hash { level } => {
            state
                .with_store(move |s| s.hash_tile(level, index, width))
                .await?
        }
        TileKind::Entries => {
            state
                .with_store(move |s| s.entry_bundle(index, width))
                .await?
        }
    };
    let cache = match (width.is_none(), public) {
        (true, true) => IMMUTABLE,
        (false, true) => PARTIAL,
        (true, false) => IMMUTABLE_PRIVATE,
        (false, false) => PARTIAL_PRIVATE,
    };
    let entries = match tile.kind {
        TileKind::Entries => width.map_or(256, u64::from),
        TileKind::Hash { .. } => 0,
    };
    let mut response = (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        data,
    )
        .into_response();
    response.extensions_mut().insert(Returned {
        entries,
        index: Some(index.saturating_mul(256)),
        withheld: false,
    });
    Ok(response)
}
