//! The witness's HTTP handlers. Every answer is plain text; errors are one line.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use stele_core::checkpoint::Checkpoint;
use stele_core::note::{Note, NoteError, NoteVerifier, MAX_NOTE_SIZE};
use stele_core::witness::{size_body, AddCheckpointRequest, GossipRequest, SIZE_CONTENT_TYPE};

use crate::check::{self, Decision, Evidence, Latest};
use crate::{state, Log, Witness};

/// Largest request body: a note of the largest size plus a generous proof section.
const MAX_BODY: usize = MAX_NOTE_SIZE + 16 * 1024;

const TEXT: &str = "text/plain; charset=utf-8";

pub(crate) fn router(w: Witness) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/gossip", post(gossip))
        .route("/{origin_hash}/checkpoint", get(monitor))
        .route("/healthz", get(|| async { text(StatusCode::OK, "ok\n") }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(w)
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(TEXT))],
        body.into(),
    )
        .into_response()
}

fn line(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    text(status, format!("{msg}\n"))
}

/// A checkpoint note that parsed and is validly signed by a followed log.
struct Submitted<'a> {
    log: &'a Log,
    note: Note,
    raw: String,
    cp: Checkpoint,
}

/// Parses and authenticates a submitted note: 400 malformed, 404 unknown origin, 403 no valid
/// signature by the log (or a bad one by a trusted key). The error is a status and a message.
fn authenticate<'a>(w: &'a Witness, bytes: &[u8]) -> Result<Submitted<'a>, (StatusCode, String)> {
    let bad = |e: &dyn std::fmt::Display| (StatusCode::BAD_REQUEST, format!("checkpoint: {e}"));
    let note = Note::parse(bytes).map_err(|e| bad(&e))?;
    let cp = Checkpoint::parse(&note.text).map_err(|e| bad(&e))?;
    let log = w.0.logs.get(&cp.origin).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!("unknown log origin {:?}", cp.origin),
        )
    })?;
    let mut signed = false;
    for key in &log.keys {
        match note.verified_by(key) {
            Ok(()) => signed = true,
            Err(NoteError::NotSignedBy { .. }) => {}
            Err(e) => return Err((StatusCode::FORBIDDEN, e.to_string())),
        }
    }
    if !signed {
        return Err((
            StatusCode::FORBIDDEN,
            "no signature by a trusted key of this log".into(),
        ));
    }
    // Note::parse accepted the bytes as UTF-8.
    let raw = String::from_utf8_lossy(bytes).into_owned();
    Ok(Submitted { log, note, raw, cp })
}

/// `POST /add-checkpoint`.
async fn add_checkpoint(State(w): State<Witness>, body: Bytes) -> Response {
    let req = match AddCheckpointRequest::parse(&body) {
        Ok(r) => r,
        Err(e) => return line(StatusCode::BAD_REQUEST, e),
    };
    let sub = match authenticate(&w, &req.checkpoint) {
        Ok(s) => s,
        Err((status, msg)) => return line(status, msg),
    };
    let origin = sub.cp.origin.clone();
    let mut latest = sub.log.latest.lock().await;
    let (decision, evidence) = check::add_checkpoint(
        latest.as_ref(),
        req.old_size,
        &req.proof,
        &sub.cp,
        &sub.raw,
        &sub.log.keys,
    );
    if let Some(ev) = evidence {
        record(
            &w,
            &origin,
            ev,
            &String::from_utf8_lossy(&body),
            latest.as_ref(),
        )
        .await;
    }
    match decision {
        Decision::Refuse {
            status,
            message,
            size: Some(size),
        } => {
            tracing::info!(%origin, size = sub.cp.size, old = req.old_size, latest = size, "add-checkpoint: 409, {message}");
            (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(SIZE_CONTENT_TYPE),
                )],
                size_body(size),
            )
                .into_response()
        }
        Decision::Refuse {
            status, message, ..
        } => {
            tracing::warn!(%origin, size = sub.cp.size, old = req.old_size, status = status.as_u16(), "add-checkpoint refused: {message}");
            line(status, message)
        }
        Decision::Cosign => match cosign(&w, &sub, &origin).await {
            Ok((cosig, served)) => {
                tracing::info!(%origin, size = sub.cp.size, root = %sub.cp.root.to_base64(), "cosigned");
                *latest = Some(served);
                text(StatusCode::OK, cosig)
            }
            Err(_) => line(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the witness cannot cosign now",
            ),
        },
    }
}

/// Cosigns the submitted checkpoint, persists it, and returns the cosignature line and the new
/// latest state.
async fn cosign(
    w: &Witness,
    sub: &Submitted<'_>,
    origin: &str,
) -> Result<(String, Latest), String> {
    let internal = |e: String| {
        tracing::error!(%origin, "cannot cosign: {e}");
        e
    };
    let cosig =
        w.0.cosigner
            .cosign(&sub.note.text, (w.0.clock)())
            .map_err(|e| internal(e.to_string()))?;
    // The served note keeps the log signatures the witness verified, and its own.
    let mut signatures: Vec<_> = sub
        .note
        .signatures
        .iter()
        .filter(|s| sub.log.keys.iter().any(|k| is_key(k, s)))
        .cloned()
        .collect();
    signatures.push(cosig.clone());
    let served = Note {
        text: sub.note.text.clone(),
        signatures,
    }
    .to_bytes();
    let served = String::from_utf8(served).map_err(|e| internal(e.to_string()))?;
    let (dir, o, s) = (w.0.data_dir.clone(), origin.to_owned(), served.clone());
    tokio::task::spawn_blocking(move || state::save(&dir, &o, &s))
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| internal(e.to_string()))?;
    Ok((
        cosig.to_line(),
        Latest {
            checkpoint: sub.cp.clone(),
            note: served,
        },
    ))
}

fn is_key(k: &NoteVerifier, s: &stele_core::note::NoteSignature) -> bool {
    s.name == k.name() && s.key_id == k.key_id()
}

/// Logs evidence at error level and saves it under the data directory.
async fn record(w: &Witness, origin: &str, ev: Evidence, request: &str, latest: Option<&Latest>) {
    let (ext, content) = match &ev {
        Evidence::Proof(proof, contradiction) => {
            tracing::error!(%origin, "ALARM: proven misbehaviour: {contradiction}");
            ("proof", proof.to_text())
        }
        Evidence::Suspicion(what) => {
            tracing::error!(%origin, "ALARM: suspected misbehaviour (not provable from this request): {what}");
            let mine = latest.map_or("", |l| l.note.as_str());
            (
                "alarm",
                format!(
                    "stele witness alarm\nlog: {origin}\nwhat: {what}\n\nlatest cosigned checkpoint:\n{mine}\nrequest body:\n{request}"
                ),
            )
        }
    };
    let (dir, o) = (w.0.data_dir.clone(), origin.to_owned());
    match tokio::task::spawn_blocking(move || state::save_evidence(&dir, &o, ext, &content)).await {
        Ok(Ok(Some(path))) => tracing::error!(%origin, path = %path.display(), "evidence saved"),
        Ok(Ok(None)) => {
            tracing::error!(%origin, "evidence not saved: the misbehaviour directory is full")
        }
        Ok(Err(e)) => tracing::error!(%origin, "evidence not saved: {e}"),
        Err(e) => tracing::error!(%origin, "evidence not saved: {e}"),
    }
}

/// `POST /gossip`.
async fn gossip(State(w): State<Witness>, body: Bytes) -> Response {
    let req = match GossipRequest::parse(&body) {
        Ok(r) => r,
        Err(e) => return line(StatusCode::BAD_REQUEST, e),
    };
    let sub = match authenticate(&w, &req.checkpoint) {
        Ok(s) => s,
        Err((status, msg)) => return line(status, msg),
    };
    let origin = sub.cp.origin.clone();
    let latest = sub.log.latest.lock().await.clone();
    let (status, answer, evidence) = check::gossip(
        latest.as_ref(),
        &req.proof,
        &sub.cp,
        &sub.raw,
        &sub.log.keys,
    );
    if let Some(ev) = evidence {
        record(
            &w,
            &origin,
            ev,
            &String::from_utf8_lossy(&body),
            latest.as_ref(),
        )
        .await;
    }
    text(status, answer)
}

/// `GET /<origin hash>/checkpoint`.
async fn monitor(State(w): State<Witness>, Path(hash): Path<String>) -> Response {
    let Some(log) = w.0.by_hash.get(&hash).and_then(|o| w.0.logs.get(o)) else {
        return line(StatusCode::NOT_FOUND, "unknown log");
    };
    match log.latest.lock().await.as_ref() {
        Some(l) => {
            let mut resp = text(StatusCode::OK, l.note.clone());
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        None => line(
            StatusCode::NOT_FOUND,
            "no checkpoint of this log has been cosigned yet",
        ),
    }
}
