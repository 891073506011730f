//! Receivers for the records of systems that make authorization decisions: Kubernetes audit
//! events (`POST /v1/ingest/kubernetes`), OPA decision logs (`POST /v1/ingest/opa`) and
//! OpenTelemetry logs (`POST /v1/logs`). The syslog listener (`crate::syslog`) shares the
//! mapping and commit steps below.
//!
//! Each receiver decodes its native body, maps every record to an event of schema v1 (its
//! fields plus the record verbatim in `original`, see `docs/integrations/`), and appends every
//! record that maps to a valid event in one durable append. A record that cannot be stored
//! is reported by its position with the reason, and the others are still stored: a sender's
//! batch is never dropped whole for one bad record, and never cut silently. Ids of Kubernetes
//! and OPA records are derived from the record's bytes ([`content_id`]), so a sender that
//! retries a batch gets `duplicate: true` for what was already stored instead of copies.

pub mod k8s;
mod map;
pub mod opa;
pub mod otlp;

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use stele_core::event::{
    self, Event, EventLimits, FieldError, PrepareError, PreparedEvent, WireEvent,
};
use stele_core::timestamp::Timestamp;
use stele_core::Hash;
use stele_store::{EntryKey, NewEntry, Store};
use uuid::Uuid;

use crate::body;
use crate::error::ApiError;
use crate::state::AppState;

pub use map::{
    action as action_name, client_time, fit, is_action, object as map_object, IngestLimits,
};

/// Most problems listed in one answer.
const MAX_REPORTED: usize = 1000;

/// One source record turned into an event (`original` included), or why it could not be.
pub type Mapped = Result<MappedEvent, RecordProblem>;

/// An event an integration mapped a record to.
#[derive(Debug, Clone, PartialEq)]
pub enum MappedEvent {
    /// Built as a [`WireEvent`] and already checked against schema v1 (the typed path: no
    /// JSON object is built just to be validated).
    Checked(Box<Event>),
    /// The event's JSON, for [`prepare_all`] to validate (reporting every problem).
    Json(Value),
}

impl From<Value> for MappedEvent {
    fn from(value: Value) -> Self {
        MappedEvent::Json(value)
    }
}

impl MappedEvent {
    /// Checks a mapped wire event; if it breaks a rule, keeps its JSON instead, so that
    /// validation reports every problem with its path exactly as for a JSON-mapped record.
    pub fn check(wire: WireEvent<'_>, limits: &EventLimits) -> Self {
        match wire.check(limits) {
            Ok(event) => MappedEvent::Checked(Box::new(event)),
            Err(wire) => MappedEvent::Json((*wire).into_value()),
        }
    }

    /// The event as JSON: what the mapping says, as a test reads it.
    #[cfg(test)]
    pub fn to_json(&self) -> Value {
        match self {
            MappedEvent::Checked(event) => serde_json::to_value(event).unwrap_or(Value::Null),
            MappedEvent::Json(value) => value.clone(),
        }
    }
}

/// Why one record of a batch was not stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordProblem {
    /// Position of the record in the batch (for OTLP: across all resource and scope groups,
    /// in request order).
    pub record: usize,
    /// Where the problem is: a path in the source record (like `user.username`), or
    /// `event:$.actor.id` for a field of the event the record was mapped to.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl RecordProblem {
    /// A problem with the source record itself.
    pub fn source(record: usize, path: impl Into<String>, message: impl Into<String>) -> Self {
        RecordProblem {
            record,
            path: path.into(),
            message: message.into(),
        }
    }

    fn event(record: usize, e: FieldError) -> Self {
        RecordProblem {
            record,
            path: format!("event:{}", e.path),
            message: e.message,
        }
    }
}

/// Where one record landed in the log.
#[derive(Clone, Debug, Serialize)]
pub struct StoredRecord {
    /// Position of the record in the batch.
    pub record: usize,
    /// Log index of its event.
    pub index: u64,
    /// The event's id.
    pub id: Uuid,
    /// RFC 6962 leaf hash of the entry.
    pub leaf_hash: Hash,
    /// Time the log assigned (for a duplicate, the original's).
    pub time: Timestamp,
    /// The record was already in the log (a sender's retry): nothing new was appended.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// What happened to a batch: every record is either in `entries` or in `problems`.
#[derive(Clone, Debug, Serialize)]
pub struct IngestReport {
    /// The integration (the events' `source`).
    pub source: &'static str,
    /// Records in the batch.
    pub received: usize,
    /// Records stored (new or duplicate).
    pub accepted: usize,
    /// Records not stored.
    pub rejected: usize,
    /// The stored records, in batch order.
    pub entries: Vec<StoredRecord>,
    /// The rejected records, in batch order, at most 1000.
    pub problems: Vec<RecordProblem>,
    /// Problems left out of `problems`.
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted_problems: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl IngestReport {
    /// A one-line summary for logs and error answers.
    pub fn summary(&self) -> String {
        format!(
            "{} of {} records were rejected and not stored; the other {} are stored",
            self.rejected, self.received, self.accepted
        )
    }
}

impl IntoResponse for IngestReport {
    /// 200 when every record is stored; otherwise 400 with `error` naming how many were
    /// rejected, and the report saying which (the stored ones stay stored).
    fn into_response(self) -> Response {
        if self.rejected == 0 {
            return (StatusCode::OK, Json(self)).into_response();
        }
        tracing::warn!(source = self.source, "{}", self.summary());
        let mut body = serde_json::to_value(&self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut body {
            map.insert("error".to_owned(), Value::String(self.summary()));
        }
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

/// Reads a request body within `max_body_bytes`, and decodes `Content-Encoding: gzip`
/// within `max_decoded_bytes` (a gzip bomb stops there).
///
/// # Errors
///
/// 413 past either limit; 415 for an encoding other than gzip or identity; 400 for a
/// truncated or corrupt gzip stream.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: &IngestLimits,
) -> Result<Bytes, ApiError> {
    let bytes = body::read_limited(headers, body, limits.max_body_bytes).await?;
    let encoding = headers.get(header::CONTENT_ENCODING).map(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .trim()
            .to_ascii_lowercase()
    });
    match encoding.as_deref() {
        None | Some("" | "identity") => Ok(bytes),
        Some("gzip" | "x-gzip") => {
            let max = limits.max_decoded_bytes;
            if bytes.len() > INLINE_GZIP_BYTES {
                tokio::task::spawn_blocking(move || gunzip(&bytes, max))
                    .await
                    .map_err(|e| ApiError::Internal(format!("gzip task failed: {e}")))?
            } else {
                gunzip(&bytes, max)
            }
        }
        Some(other) => Err(ApiError::UnsupportedEncoding(other.to_owned())),
    }
}

/// Compressed bodies up to this size are decoded on the async worker.
const INLINE_GZIP_BYTES: usize = 16 * 1024;

/// Decodes a gzip body (several members are one body, as RFC 1952 allows), refusing more
/// than `max` decoded bytes.
///
/// # Errors
///
/// 413 past `max`, 400 for a stream that is not gzip, is cut short or fails its CRC.
pub fn gunzip(compressed: &[u8], max: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(max));
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut decoder = flate2::read::MultiGzDecoder::new(compressed).take(limit);
    match decoder.read_to_end(&mut out) {
        Ok(_) if out.len() > max => Err(ApiError::DecodedTooLarge { limit: max }),
        Ok(_) => Ok(Bytes::from(out)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(ApiError::BadRequest(format!(
                "the gzip body is truncated: it ends after {} compressed bytes, in the middle of \
                 the stream; nothing was stored",
                compressed.len()
            )))
        }
        Err(e) => Err(ApiError::BadRequest(format!(
            "the body is not valid gzip ({e}); nothing was stored"
        ))),
    }
}

/// An id derived from a record: UUIDv8 whose first 48 bits are the record's own time in
/// milliseconds since the epoch (`record_time`, an RFC 3339 string; 0 when absent or
/// unreadable) and whose other 74 free bits are SHA-256 of the source name and the record's
/// bytes. The same record sent again gets the same id, so the store answers a retry with the
/// original entry; and ids of records in time order sort in time order, as UUIDv7 ids do,
/// which keeps the id index's inserts near its right edge.
pub fn content_id(source: &str, record: &[u8], record_time: Option<&str>) -> Uuid {
    let mut hasher = Sha256::new();
    hasher.update(b"stele content id\n");
    hasher.update(source.as_bytes());
    hasher.update(b"\n");
    hasher.update(record);
    let digest = hasher.finalize();
    let millis = record_time
        .and_then(|t| stele_core::timestamp::parse_unix_nanos_wide(t).ok())
        .and_then(|ns| u64::try_from(ns / 1_000_000).ok())
        .filter(|ms| *ms < 1 << 48)
        .unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes
        .iter_mut()
        .zip(millis.to_be_bytes().iter().skip(2).chain(digest.iter()))
        .for_each(|(o, d)| *o = *d);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Validates and encodes every mapped record, then appends the valid ones in one durable
/// append. CPU work runs on the blocking pool for large batches.
///
/// # Errors
///
/// Only what stops the whole batch: the store refusing the append (503 busy or failed, or
/// 409 if a derived id collides with other content). Record problems are in the report.
pub async fn commit(
    state: &AppState,
    source: &'static str,
    records: Vec<Mapped>,
) -> Result<IngestReport, ApiError> {
    let limits = state.config().limits;
    let now = now()?;
    let received = records.len();
    let (prepared, problems) = if received > 64 {
        tokio::task::spawn_blocking(move || prepare_all(records, &limits, now))
            .await
            .map_err(|e| ApiError::Internal(format!("prepare task failed: {e}")))?
    } else {
        prepare_all(records, &limits, now)
    };
    let report = append(state.store(), source, received, prepared, problems).await?;
    state.ingest_metrics().count(source, &report);
    Ok(report)
}

/// Maps a body with `map` and validates and encodes the records in one task (on the
/// blocking pool for bodies over 16 KiB), then appends them: the whole path of an ingest
/// route after the body is read.
///
/// # Errors
///
/// What `map` refuses the body for (nothing stored), and what [`commit`] fails with.
pub async fn ingest_bytes<F>(
    state: &AppState,
    source: &'static str,
    bytes: Bytes,
    map: F,
) -> Result<IngestReport, ApiError>
where
    F: FnOnce(&[u8]) -> Result<Vec<Mapped>, ApiError> + Send + 'static,
{
    let limits = state.config().limits;
    let now = now()?;
    let inline = bytes.len() <= INLINE_GZIP_BYTES;
    let work = move || {
        let records = map(&bytes)?;
        let received = records.len();
        Ok::<_, ApiError>((received, prepare_all(records, &limits, now)))
    };
    let (received, (prepared, problems)) = if inline {
        work()?
    } else {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::Internal(format!("ingest task failed: {e}")))??
    };
    let report = append(state.store(), source, received, prepared, problems).await?;
    state.ingest_metrics().count(source, &report);
    Ok(report)
}

/// What [`prepare_all`] gives: the encoded events with their record positions, and the
/// problems of the others.
pub type Prepared = (Vec<(usize, PreparedEvent)>, Vec<RecordProblem>);

/// Validates every mapped record against schema v1 (`original` allowed) and encodes it.
pub fn prepare_all(records: Vec<Mapped>, limits: &EventLimits, now: Timestamp) -> Prepared {
    let mut prepared = Vec::with_capacity(records.len());
    let mut problems = Vec::new();
    for (record, mapped) in records.into_iter().enumerate() {
        let checked = match mapped {
            Ok(MappedEvent::Checked(ev)) => Ok(*ev),
            Ok(MappedEvent::Json(value)) => event::validate_ingested(value, limits),
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let ev = match checked {
            Ok(ev) => ev,
            Err(errors) => {
                problems.extend(errors.into_iter().map(|e| RecordProblem::event(record, e)));
                continue;
            }
        };
        // Records with an id of their own (every Kubernetes and OPA record) need no fresh
        // one: making a UUIDv7 reads the clock and draws random bytes.
        let assigned = ev.id().unwrap_or_else(Uuid::now_v7);
        match ev.encode(assigned, now, limits) {
            Ok(p) => prepared.push((record, p)),
            Err(PrepareError::TooLarge { size, limit }) => problems.push(RecordProblem {
                record,
                path: "event:$".to_owned(),
                message: format!(
                    "the event with the record verbatim in `original` is {size} bytes in \
                     canonical form; the limit is {limit} bytes (an entry of a tlog-tiles log); \
                     send less per record (for Kubernetes, a lower audit level for this \
                     resource; for OPA, a mask)"
                ),
            }),
            Err(e @ PrepareError::Internal(_)) => {
                problems.push(RecordProblem::event(record, e.into()));
            }
        }
    }
    (prepared, problems)
}

/// Appends prepared events in one request and builds the report.
///
/// # Errors
///
/// The store's refusal of the whole append.
pub async fn append(
    store: &Store,
    source: &'static str,
    received: usize,
    prepared: Vec<(usize, PreparedEvent)>,
    mut problems: Vec<RecordProblem>,
) -> Result<IngestReport, ApiError> {
    let mut positions = Vec::with_capacity(prepared.len());
    let mut entries = Vec::with_capacity(prepared.len());
    for (record, p) in prepared {
        positions.push((record, p.id));
        entries.push(NewEntry {
            key: Some(EntryKey {
                id: p.id.into_bytes(),
                digest: p.content_digest,
            }),
            time_offset: Some(p.time_offset),
            data: p.bytes,
        });
    }
    let appended = store.append(entries).await?;
    if appended.len() != positions.len() {
        return Err(ApiError::Internal(format!(
            "store acknowledged {} of {} entries",
            appended.len(),
            positions.len()
        )));
    }
    let entries: Vec<StoredRecord> = appended
        .into_iter()
        .zip(positions)
        .map(|(a, (record, id))| StoredRecord {
            record,
            index: a.index,
            id,
            leaf_hash: a.leaf_hash,
            time: a.time,
            duplicate: a.duplicate,
        })
        .collect();
    // One record may have several problems; count records, not problems.
    let mut rejected_records: Vec<usize> = problems.iter().map(|p| p.record).collect();
    rejected_records.dedup();
    let omitted = problems.len().saturating_sub(MAX_REPORTED);
    problems.truncate(MAX_REPORTED);
    Ok(IngestReport {
        source,
        received,
        accepted: entries.len(),
        rejected: rejected_records.len(),
        entries,
        problems,
        omitted_problems: omitted,
    })
}

/// The server's clock as a log timestamp.
///
/// # Errors
///
/// 500 for a clock outside 1970..2262.
pub fn now() -> Result<Timestamp, ApiError> {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| ApiError::Internal("system clock is before 1970".to_owned()))?;
    let nanos = i64::try_from(since_epoch.as_nanos())
        .map_err(|_| ApiError::Internal("system clock is past 2262".to_owned()))?;
    Ok(Timestamp::from_unix_nanos(nanos))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gunzip_bounds_output_and_names_truncation() {
        let data = b"[{\"a\":1}]".repeat(1000);
        let z = gzip(&data);
        assert_eq!(&gunzip(&z, data.len()).unwrap()[..], &data[..]);
        assert!(matches!(
            gunzip(&z, data.len() - 1),
            Err(ApiError::DecodedTooLarge { .. })
        ));
        let err = gunzip(&z[..z.len() / 2], 1 << 20).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let err = gunzip(b"not gzip at all", 1 << 20).unwrap_err();
        assert!(err.to_string().contains("not valid gzip"), "{err}");
        // A bomb: 64 MiB of zeros in ~64 KiB, stopped at the limit.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 128 << 10);
        assert!(matches!(
            gunzip(&bomb, 1 << 20),
            Err(ApiError::DecodedTooLarge { limit }) if limit == 1 << 20
        ));
    }

    #[test]
    fn content_ids_are_stable_v8_and_depend_on_source_and_bytes() {
        let t = Some("2026-12-02T05:20:00Z");
        let a = content_id("kubernetes", b"{}", t);
        assert_eq!(a, content_id("kubernetes", b"{}", t));
        assert_ne!(a, content_id("opa", b"{}", t));
        assert_ne!(a, content_id("kubernetes", b"{ }", t));
        assert_eq!(a.get_version_num(), 8);
        // Time-ordered by the record's time; no time sorts first.
        let later = content_id("kubernetes", b"{}", Some("2026-12-02T05:20:00.001Z"));
        assert!(later > a);
        assert!(content_id("kubernetes", b"{}", None) < a);
        assert!(content_id("kubernetes", b"{}", Some("garbage")) < a);
    }
}
