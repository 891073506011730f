//! `POST /v1/events` (atomic batch intake) and `GET /v1/events/{index_or_id}`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stele_core::event::{self, EventLimits, FieldError, PrepareError, PreparedEvent};
use stele_core::timestamp::Timestamp;
use stele_core::Hash;
use stele_store::{EntryKey, NewEntry};
use uuid::Uuid;

use crate::auth::{Caller, Returned};
use crate::body::{self, Item};
use crate::error::{ApiError, Problem, MAX_PROBLEMS};
use crate::state::AppState;

/// The header carrying the log index of a returned entry.
pub const STELE_INDEX: HeaderName = HeaderName::from_static("stele-index");

/// Bodies below this size are validated on the async worker instead of the blocking pool.
const INLINE_BODY_BYTES: usize = 16 * 1024;

/// Answer of `POST /v1/events`.
#[derive(Debug, Serialize)]
pub struct AppendResponse {
    /// One entry per event, in request order.
    pub entries: Vec<AppendedEntry>,
}

/// Where one event landed in the log.
#[derive(Debug, Serialize)]
pub struct AppendedEntry {
    /// Log index.
    pub index: u64,
    /// Event id (the client's, or the one the log assigned).
    pub id: Uuid,
    /// RFC 6962 leaf hash of the stored entry.
    pub leaf_hash: Hash,
    /// Time the log assigned; for a duplicate, the time of the original.
    pub time: Timestamp,
    /// True when the event was already in the log (an idempotent retry).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// `POST /v1/events`: validates every event, then appends all of them or none. A writer
/// bound to a source or tenants gets them stamped on each event that leaves them out.
///
/// # Errors
///
/// 415 for an unknown Content-Type, 413 for a body, event count or entry over its limit, 400
/// for malformed JSON or invalid events (every problem listed), 403 when an event names a
/// source or tenant the writer may not write (or the meta-log's reserved source), 409 when
/// an id is already in the log with other content, 503 when the store is busy or refuses
/// writes.
pub async fn append(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<AppendResponse, ApiError> {
    let format = body::body_format(&headers)?;
    let bytes = body::read_limited(&headers, body, state.config().max_body_bytes).await?;
    let bytes_len = bytes.len();
    let now = now()?;
    // Parsing and canonicalising up to 100 000 events is CPU work for the blocking pool; a
    // small body (a few events, microseconds of work) is cheaper to handle here than to hand
    // to another thread and back.
    let config = *state.config();
    let work = move || {
        if let Some(prepared) = prepare_typed(&bytes, format, &caller, &config, now) {
            return Ok(prepared);
        }
        let mut items = body::parse(&bytes, format, config.max_events)?;
        bind_all(&caller, &mut items)?;
        prepare_all(items, &config.limits, now)
    };
    let prepared = if bytes_len < INLINE_BODY_BYTES {
        work()?
    } else {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::Internal(format!("validation task failed: {e}")))??
    };

    let ids: Vec<Uuid> = prepared.iter().map(|p| p.id).collect();
    let entries = prepared
        .into_iter()
        .map(|p| NewEntry {
            key: Some(EntryKey {
                id: p.id.into_bytes(),
                digest: p.content_digest,
            }),
            time_offset: Some(p.time_offset),
            data: p.bytes,
        })
        .collect();
    let appended = state.store().append(entries).await?;
    if appended.len() != ids.len() {
        return Err(ApiError::Internal(format!(
            "store acknowledged {} of {} entries",
            appended.len(),
            ids.len()
        )));
    }
    let entries = appended
        .into_iter()
        .zip(ids)
        .map(|(a, id)| AppendedEntry {
            index: a.index,
            id,
            leaf_hash: a.leaf_hash,
            time: a.time,
            duplicate: a.duplicate,
        })
        .collect();
    Ok(AppendResponse { entries })
}

/// The fast path: every event of a body that is valid as sent (typed parse, binding, the
/// schema's rules, the entry limit), prepared; `None` as soon as one is not, and then the
/// full path ([`bind_all`], [`prepare_all`]) runs and reports every problem. The fast path
/// accepts exactly what the full path accepts and builds the same entries (see
/// `stele_core::event::WireEvent`; bindings go through the same rule, `binding`).
fn prepare_typed(
    bytes: &[u8],
    format: body::BodyFormat,
    caller: &Caller,
    config: &crate::ServerConfig,
    now: Timestamp,
) -> Option<Vec<PreparedEvent>> {
    use stele_auth::policy::{binding, Field};
    fn field(f: Option<&str>) -> Field<'_> {
        f.map_or(Field::Absent, Field::Text)
    }
    let events = body::parse_typed(bytes, format, config.max_events)?;
    let mut prepared = Vec::with_capacity(events.len());
    for wire in events {
        let mut ev = wire.check(&config.limits).ok()?;
        let stamps = binding(caller.principal(), field(ev.source()), field(ev.tenant())).ok()?;
        if !ev.fill_in(stamps.source, stamps.tenant) {
            return None;
        }
        prepared.push(ev.encode(Uuid::now_v7(), now, &config.limits).ok()?);
    }
    Some(prepared)
}

impl AppendResponse {
    /// The answer's JSON, exactly as serde would write it, without its per-field
    /// allocations and escaping scans (serde_json's string escaping alone was 1.8% of the
    /// batched HTTP bench's CPU, besides a String per id, hash and time). Every value is ASCII
    /// that JSON needs no escape for (digits, a hyphenated UUID, base64, an RFC 3339 time).
    fn to_json(&self) -> Vec<u8> {
        use base64::Engine;
        const PER_ENTRY: usize = 160;
        let mut out = Vec::with_capacity(16 + PER_ENTRY * self.entries.len());
        out.extend_from_slice(b"{\"entries\":[");
        let mut uuid = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let mut hash = [0u8; 44];
        let mut time = [0u8; stele_core::timestamp::TIMESTAMP_LEN];
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"index\":");
            out.extend_from_slice(itoa::Buffer::new().format(e.index).as_bytes());
            out.extend_from_slice(b",\"id\":\"");
            out.extend_from_slice(e.id.hyphenated().encode_lower(&mut uuid).as_bytes());
            out.extend_from_slice(b"\",\"leaf_hash\":\"");
            let n = base64::engine::general_purpose::STANDARD
                .encode_slice(e.leaf_hash.0, &mut hash)
                .unwrap_or(0);
            out.extend_from_slice(hash.get(..n).unwrap_or_default());
            out.extend_from_slice(b"\",\"time\":\"");
            e.time.write_to(&mut time);
            out.extend_from_slice(&time);
            out.push(b'"');
            if e.duplicate {
                out.extend_from_slice(b",\"duplicate\":true");
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        out
    }
}

impl IntoResponse for AppendResponse {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.to_json(),
        )
            .into_response()
    }
}

/// Applies the writer's source and tenant binding to every event (before validation, so a
/// stamped field is validated like a sent one); the first event that breaks it refuses the
/// whole request.
fn bind_all(caller: &Caller, items: &mut [Item]) -> Result<(), ApiError> {
    for (position, item) in items.iter_mut().enumerate() {
        if let Some(event) = item.value.as_object_mut() {
            stele_auth::policy::bind_event(caller.principal(), event).map_err(|e| {
                ApiError::Forbidden(match item.index {
                    Some(_) => format!("event {position}: {e}; nothing was appended"),
                    None => format!("{e}; nothing was appended"),
                })
            })?;
        }
    }
    Ok(())
}

/// Validates and canonicalises every event, collecting every problem of every event.
fn prepare_all(
    items: Vec<Item>,
    limits: &EventLimits,
    now: Timestamp,
) -> Result<Vec<PreparedEvent>, ApiError> {
    let mut problems = Vec::new();
    let mut oversize = None;
    let mut prepared = Vec::with_capacity(items.len());
    for (position, item) in items.into_iter().enumerate() {
        let problem = |e: FieldError| Problem {
            index: item.index,
            line: item.line,
            path: e.path,
            message: e.message,
        };
        let ev = match event::validate_owned(item.value, limits) {
            Ok(ev) => ev,
            Err(errors) => {
                problems.extend(errors.into_iter().map(problem));
                continue;
            }
        };
        match ev.encode(Uuid::now_v7(), now, limits) {
            Ok(p) => prepared.push(p),
            Err(PrepareError::TooLarge { size, .. }) => {
                oversize.get_or_insert((position, size));
            }
            Err(e @ PrepareError::Internal(_)) => problems.push(problem(e.into())),
        }
    }
    if !problems.is_empty() {
        let omitted = problems.len().saturating_sub(MAX_PROBLEMS);
        problems.truncate(MAX_PROBLEMS);
        return Err(ApiError::InvalidEvents { problems, omitted });
    }
    if let Some((index, size)) = oversize {
        return Err(ApiError::EntryTooLarge {
            index,
            size,
            limit: max_entry_bytes(limits),
        });
    }
    Ok(prepared)
}

/// The entry limit `prepare` applies: the configured one, never above what tlog-tiles
/// bundles can frame.
fn max_entry_bytes(limits: &EventLimits) -> usize {
    limits.max_entry_bytes.min(event::MAX_ENTRY_BYTES)
}

/// The wall clock as a log timestamp.
///
/// # Errors
/// A clock outside 1970..2262.
pub(crate) fn now() -> Result<Timestamp, ApiError> {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| ApiError::Internal("system clock is before 1970".to_owned()))?;
    let nanos = i64::try_from(since_epoch.as_nanos())
        .map_err(|_| ApiError::Internal("system clock is past 2262".to_owned()))?;
    Ok(Timestamp::from_unix_nanos(nanos))
}

/// `GET /v1/events/{index_or_id}`: the stored entry, byte for byte, with its index in the
/// `Stele-Index` header. A reader gets only entries of its tenants; any other is answered
/// exactly as a missing one.
///
/// # Errors
///
/// 400 if the path segment is neither a decimal index nor a UUID, 404 if no such entry.
pub async fn get_event(
    State(state): State<AppState>,
    caller: Caller,
    key: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(key) = key?;
    let index = if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) {
        key.parse::<u64>()
            .map_err(|_| ApiError::NotFound(format!("no entry at index {key}")))?
    } else if let Ok(id) = Uuid::try_parse(&key) {
        state
            .with_store(move |s| s.index_of(&id.into_bytes()))
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no event with id {id}")))?
    } else {
        return Err(ApiError::BadRequest(format!(
            "{key:?} is neither a decimal log index nor a UUID"
        )));
    };
    let missing = || match Uuid::try_parse(&key) {
        Ok(id) => ApiError::NotFound(format!("no event with id {id}")),
        Err(_) => ApiError::NotFound(format!("no entry at index {index}")),
    };
    if index >= state.store().size() {
        return Err(missing());
    }
    let entry = state.with_store(move |s| s.entry(index)).await?;
    if !caller.may_see(stele_auth::policy::entry_tenant(&entry).as_deref()) {
        return Ok(withheld(missing(), index));
    }
    let mut response = (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (STELE_INDEX, HeaderValue::from(index)),
        ],
        entry,
    )
        .into_response();
    response.extensions_mut().insert(Returned {
        entries: 1,
        index: Some(index),
        withheld: false,
    });
    Ok(response)
}

/// The answer for an entry the caller may not see: `not_found`, exactly as for a missing
/// entry, marked for the meta-log.
pub(crate) fn withheld(not_found: ApiError, index: u64) -> Response {
    let mut response = not_found.into_response();
    response.extensions_mut().insert(Returned {
        entries: 0,
        index: Some(index),
        withheld: true,
    });
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use stele_auth::{Principal, Role};

    use super::*;
    use crate::body::BodyFormat;
    use crate::ServerConfig;

    const NOW: Timestamp = Timestamp::from_unix_nanos(1_795_460_599_123_456_789);

    fn writer(source: Option<&str>, tenants: &[&str]) -> Caller {
        Caller::Principal(Arc::new(Principal {
            id: "token:w".to_owned(),
            role: Role::Writer,
            tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
            source: source.map(str::to_owned),
            label: None,
        }))
    }

    /// What the full path answers: the prepared events, or the error's message.
    fn full_path(
        body: &[u8],
        format: BodyFormat,
        caller: &Caller,
        config: &ServerConfig,
    ) -> Result<Vec<PreparedEvent>, String> {
        let run = || {
            let mut items = body::parse(body, format, config.max_events)?;
            bind_all(caller, &mut items)?;
            prepare_all(items, &config.limits, NOW)
        };
        run().map_err(|e: ApiError| format!("{e:?}"))
    }

    #[test]
    fn the_append_answer_is_what_serde_writes() {
        let entry = |index: u64, duplicate: bool| AppendedEntry {
            index,
            id: Uuid::from_u128(0x0190_b7f2_6b1c_7cc3_9a4f_3c9e_2b1d_4e5f ^ u128::from(index)),
            leaf_hash: Hash([index as u8 ^ 0xa5; 32]),
            time: Timestamp::from_unix_nanos(1_795_460_599_000_000_007 + index as i64),
            duplicate,
        };
        for entries in [
            vec![],
            vec![entry(0, false)],
            vec![entry(u64::MAX, true), entry(7, false), entry(1 << 40, true)],
        ] {
            let answer = AppendResponse { entries };
            assert_eq!(
                String::from_utf8(answer.to_json()).unwrap(),
                serde_json::to_string(&answer).unwrap()
            );
        }
    }

    #[test]
    fn the_fast_path_prepares_what_the_full_path_prepares_or_defers_to_it() {
        // Client ids, so both paths build the same bytes.
        let event = |n: u32, extra: &str| {
            format!(
                r#"{{"id":"0190b7f2-6b1c-7cc3-9a4f-3c9e2b1d4e{n:02x}","actor":{{"type":"user","id":"u-{n}","ip":"10.0.0.{n}"}},"action":"authz.check","resource":{{"type":"doc","id":"d"}},"outcome":"deny","reason":"caf\u00e9 \"q\""{extra}}}"#
            )
        };
        let config = ServerConfig::default();
        let small = ServerConfig {
            max_events: 2,
            ..ServerConfig::default()
        };
        let ndjson = |events: &[String]| events.join("\n").into_bytes();
        let plain = [
            event(1, ""),
            event(2, r#","context":{"b":[1,2.5],"a":null}"#),
        ];
        let tenants = [
            event(3, r#","tenant":"acme""#),
            event(4, r#","tenant":"umbrella""#),
        ];
        let cases: Vec<(Vec<u8>, BodyFormat, Caller, &ServerConfig, bool)> = vec![
            // Taken by the fast path.
            (
                ndjson(&plain),
                BodyFormat::Ndjson,
                Caller::Open,
                &config,
                true,
            ),
            (
                plain[0].clone().into_bytes(),
                BodyFormat::Json,
                Caller::Open,
                &config,
                true,
            ),
            (
                format!("[{}]", plain.join(",")).into_bytes(),
                BodyFormat::Json,
                Caller::Open,
                &config,
                true,
            ),
            (
                ndjson(&plain),
                BodyFormat::Ndjson,
                writer(Some("billing"), &["acme"]),
                &config,
                true,
            ),
            (
                ndjson(&tenants),
                BodyFormat::Ndjson,
                writer(None, &["acme", "umbrella"]),
                &config,
                true,
            ),
            (
                ndjson(&[event(5, r#","source":"billing""#)]),
                BodyFormat::Ndjson,
                writer(Some("billing"), &[]),
                &config,
                true,
            ),
            // Left to the full path, which answers them.
            (
                ndjson(&plain),
                BodyFormat::Ndjson,
                writer(None, &["acme", "umbrella"]),
                &config,
                false,
            ),
            (
                ndjson(&tenants),
                BodyFormat::Ndjson,
                writer(None, &["acme"]),
                &config,
                false,
            ),
            (
                ndjson(&[event(6, r#","source":"other""#)]),
                BodyFormat::Ndjson,
                writer(Some("billing"), &[]),
                &config,
                false,
            ),
            (
                ndjson(&[event(7, r#","source":"stele.meta""#)]),
                BodyFormat::Ndjson,
                Caller::Open,
                &config,
                false,
            ),
            (
                ndjson(&[event(8, r#","extra":1"#)]),
                BodyFormat::Ndjson,
                Caller::Open,
                &config,
                false,
            ),
            (
                ndjson(&[plain[0].clone(), "{".to_owned()]),
                BodyFormat::Ndjson,
                Caller::Open,
                &config,
                false,
            ),
            (
                ndjson(&[plain[0].clone(), plain[1].clone(), event(9, "")]),
                BodyFormat::Ndjson,
                Caller::Open,
                &small,
                false,
            ),
            (
                ndjson(&[event(
                    10,
                    &format!(r#","context":{{"x":"{}"}}"#, "y".repeat(20_000)),
                )]),
                BodyFormat::Ndjson,
                Caller::Open,
                &config,
                false,
            ),
            (
                b"[]".to_vec(),
                BodyFormat::Json,
                Caller::Open,
                &config,
                false,
            ),
            (
                b"\n\n".to_vec(),
                BodyFormat::Ndjson,
                Caller::Open,
                &config,
                false,
            ),
        ];
        for (body, format, caller, config, fast) in cases {
            let text = String::from_utf8_lossy(&body).into_owned();
            let typed = prepare_typed(&body, format, &caller, config, NOW);
            let full = full_path(&body, format, &caller, config);
            assert_eq!(typed.is_some(), fast, "{text}: {full:?}");
            if let Some(typed) = typed {
                assert_eq!(Ok(typed), full, "{text}");
            } else {
                assert!(full.is_err(), "{text}: the full path took it: {full:?}");
            }
        }
    }
}
