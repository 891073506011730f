//! The C2SP tlog-tiles read API: `GET /checkpoint` and `GET /tile/…`, byte-exact.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use stele_core::tile::{TileKind, TilePath};

use crate::error::ApiError;
use crate::state::AppState;

/// Full tiles never change (tlog-tiles: "full tiles are immutable").
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A partial tile of a given width never changes either, but the spec lets a log stop serving
/// it once the full tile exists, so it is cached for a shorter time.
const PARTIAL: &str = "public, max-age=3600";

/// `GET /checkpoint`: the latest signed checkpoint note.
///
/// # Errors
///
/// 404 before the first checkpoint is published.
pub async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let latest = state
        .store()
        .latest_checkpoint()
        .ok_or_else(|| ApiError::NotFound("no checkpoint has been published yet".to_owned()))?;
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
        latest.note,
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
    let cache = if width.is_none() { IMMUTABLE } else { PARTIAL };
    Ok((
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
        .into_response())
}
