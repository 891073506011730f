//! Signing-key rotation on the server side: the log's record of a rotation (the
//! `admin.key.rotate` event), `GET /v1/key/rotations` (the statements verifiers follow), and
//! the watcher that carries out a rotation requested with `stele key rotate --data` while
//! the server runs.
//!
//! The mechanics (statement, files, co-signing window) are `stele_store::rotation`'s; the
//! statement format is `stele_core::rotation`'s. See `docs/key-rotation.md`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use sha2::{Digest, Sha256};
use stele_core::event::{self, EventLimits};
use stele_core::note::NoteVerifier;
use stele_store::rotation::{pending_rotation, RotationRecord};
use stele_store::{EntryKey, NewEntry, Store, StoreError};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// The meta-log action recording a rotation.
pub const KEY_ROTATE: &str = "admin.key.rotate";

/// How often the server looks for a requested rotation.
const POLL: Duration = Duration::from_secs(1);

/// The log's record of a rotation from `old` to `new`, requested by `actor` (`cli` for the
/// offline command), as an entry with an id and content derived from the keys alone — so
/// that redoing an interrupted rotation finds the stored record instead of adding one.
///
/// # Errors
/// The event does not fit the schema's limits (an origin too long for them).
pub fn rotation_entry(
    old: &NoteVerifier,
    new: &NoteVerifier,
    window: Duration,
    actor: &str,
    limits: &EventLimits,
) -> Result<NewEntry, ApiError> {
    let new_vkey = new.to_verifier_key();
    let value = json!({
        "id": rotation_event_id(&new_vkey),
        "actor": {"type": "user", "id": actor},
        "action": KEY_ROTATE,
        "resource": {"type": "signing_key", "id": format!("{:08x}", new.key_id()), "name": new.name()},
        "outcome": "allow",
        "source": stele_auth::META_SOURCE,
        "context": {
            "old_key": old.to_verifier_key(),
            "new_key": new_vkey,
            "window_seconds": window.as_secs(),
        },
    });
    let ev = event::validate_owned(value, limits).map_err(|problems| {
        ApiError::Internal(format!("the key-rotation event is invalid: {problems:?}"))
    })?;
    let now = crate::handlers::v1::events::now()?;
    let p = ev
        .encode(Uuid::now_v7(), now, limits)
        .map_err(|e| ApiError::Internal(format!("encoding the key-rotation event: {e}")))?;
    Ok(NewEntry {
        key: Some(EntryKey {
            id: p.id.into_bytes(),
            digest: p.content_digest,
        }),
        time_offset: Some(p.time_offset),
        data: p.bytes,
    })
}

/// UUIDv8 of SHA-256 over a fixed label and the new verifier key.
fn rotation_event_id(new_vkey: &str) -> Uuid {
    let digest = Sha256::new()
        .chain_update(b"stele key rotation\0")
        .chain_update(new_vkey.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    for (b, d) in bytes.iter_mut().zip(digest.iter()) {
        *b = *d;
    }
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Checks that a stored entry is the record of the rotation `r`: an `admin.key.rotate`
/// event of the log's own source naming the same old and new keys.
///
/// # Errors
/// What differs.
pub fn check_rotation_entry(entry: &[u8], r: &RotationRecord) -> Result<(), String> {
    let v = event::parse_entry(entry).map_err(|e| format!("not an event: {e}"))?;
    let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).unwrap_or_default();
    if s("/action") != KEY_ROTATE || s("/source") != stele_auth::META_SOURCE {
        return Err(format!(
            "entry {} is not an {KEY_ROTATE} event of source {}",
            r.event_index,
            stele_auth::META_SOURCE
        ));
    }
    if s("/context/old_key") != r.old_key || s("/context/new_key") != r.new_key {
        return Err(format!(
            "entry {} names other keys than the rotation record",
            r.event_index
        ));
    }
    Ok(())
}

/// Carries out the rotation requested in `dir`, if any (blocking). Returns its record.
///
/// # Errors
/// An unreadable request, or the store refusing the rotation.
pub fn rotate_pending(
    store: &Store,
    dir: &Path,
    limits: &EventLimits,
) -> Result<Option<RotationRecord>, String> {
    let Some(pending) = pending_rotation(dir).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let old = NoteVerifier::from_verifier_key(&store.verifier_key()).map_err(|e| e.to_string())?;
    let new = pending.signer.verifier();
    // When `old == new` every step but removing the request was done; the store then only
    // tidies up and the entry is not used.
    let entry =
        rotation_entry(&old, &new, pending.window, "cli", limits).map_err(|e| e.to_string())?;
    store
        .rotate_key(pending.signer, pending.window, entry)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Runs until the store closes: every second, carries out a rotation requested with
/// `stele key rotate --data` (the request file `key/rotate.pending`). A failure is logged
/// once per distinct message and retried.
pub async fn watch_rotations(store: Store, dir: PathBuf, limits: EventLimits) {
    let mut last_error = String::new();
    loop {
        tokio::time::sleep(POLL).await;
        if !stele_store::layout::Layout::new(&dir)
            .pending_rotation()
            .exists()
        {
            continue;
        }
        let (s, d) = (store.clone(), dir.clone());
        let done = tokio::task::spawn_blocking(move || rotate_pending(&s, &d, &limits)).await;
        match done {
            Ok(Ok(Some(r))) => {
                tracing::info!(old = %r.old_key, new = %r.new_key, from_size = r.from_size, window_ends = %r.window_ends, "rotated the signing key");
                last_error.clear();
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) if e.contains(&StoreError::Closed.to_string()) => return,
            Ok(Err(e)) => {
                if e != last_error {
                    tracing::error!(error = %e, "cannot carry out the requested key rotation");
                    last_error = e;
                }
            }
            Err(e) => tracing::error!(error = %e, "key rotation task failed"),
        }
    }
}

/// `GET /v1/key/rotations`: the log's current verifier key and every rotation, oldest
/// first, with its statement (a `stele-key-rotation/v1` note signed by the old and new
/// keys). A verifier holding any earlier key follows the statements to the current one.
///
/// # Errors
/// 500 if the rotation file cannot be read.
pub async fn rotations(State(state): State<AppState>) -> Result<Response, ApiError> {
    let records = state.with_store(|s| s.rotations()).await?;
    let body = json!({
        "origin": state.origin(),
        "verifier_key": state.verifier_key(),
        "rotations": records,
    });
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response())
}
