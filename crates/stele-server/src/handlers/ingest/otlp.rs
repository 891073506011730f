//! `POST /v1/logs`: an OTLP/HTTP logs receiver (OTLP specification, "OTLP/HTTP"), binary
//! protobuf (`application/x-protobuf`) and JSON (`application/json`, with OTLP's JSON rules:
//! lowerCamelCase keys, hex trace and span ids, 64-bit integers as strings or numbers, enums
//! as integers). Answers follow the same specification: an `ExportLogsServiceResponse` in the
//! request's encoding, with `partial_success` when some records were rejected (the sender
//! must not retry those), and a `google.rpc.Status` body on errors (503 + `Retry-After` when
//! the log is busy, which the sender retries). Messages come from the `opentelemetry-proto`
//! crate. The attribute conventions are in `docs/integrations/opentelemetry.md`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde::ser::Impossible;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use stele_core::event::{EventLimits, WirePolicy};

use super::map::{self, fit_id, fit_name, fit_text, object, Str};
use super::{ingest_bytes, read_body, IngestReport, Mapped, MappedEvent, RecordProblem};
use crate::error::ApiError;
use crate::state::AppState;

/// The `source` of events from this receiver.
pub const SOURCE: &str = "otlp";

/// The two encodings of OTLP/HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP error answers (fields 1 and 2; `details` is
/// left empty).
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// An OTLP/HTTP answer: success (maybe partial) or an error as `google.rpc.Status`.
pub struct OtlpResponse {
    encoding: Encoding,
    status: StatusCode,
    body: Vec<u8>,
    retry_after: bool,
}

impl IntoResponse for OtlpResponse {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.encoding.content_type()),
            )],
            self.body,
        )
            .into_response();
        if self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl OtlpResponse {
    fn success(encoding: Encoding, report: &IngestReport) -> Self {
        let partial_success = (report.rejected > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: i64::try_from(report.rejected).unwrap_or(i64::MAX),
            error_message: rejection_message(report),
        });
        if report.rejected > 0 {
            tracing::warn!(source = SOURCE, "{}", report.summary());
        }
        let response = ExportLogsServiceResponse { partial_success };
        let body = match encoding {
            Encoding::Protobuf => response.encode_to_vec(),
            Encoding::Json => {
                let mut v = json!({});
                if let Some(p) = &response.partial_success {
                    v = json!({"partialSuccess": {
                        "rejectedLogRecords": p.rejected_log_records.to_string(),
                        "errorMessage": p.error_message,
                    }});
                }
                v.to_string().into_bytes()
            }
        };
        OtlpResponse {
            encoding,
            status: StatusCode::OK,
            body,
            retry_after: false,
        }
    }

    fn error(encoding: Encoding, e: &ApiError) -> Self {
        let status = e.status();
        tracing::warn!(status = status.as_u16(), error = %e, "OTLP request failed");
        // gRPC codes: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL.
        let code = match status.as_u16() {
            400 | 415 => 3,
            413 => 8,
            503 => 14,
            _ => 13,
        };
        let status_message = RpcStatus {
            code,
            message: e.to_string(),
        };
        let body = match encoding {
            Encoding::Protobuf => status_message.encode_to_vec(),
            Encoding::Json => json!({"code": code, "message": status_message.message})
                .to_string()
                .into_bytes(),
        };
        OtlpResponse {
            encoding,
            status,
            body,
            retry_after: matches!(e, ApiError::Overloaded),
        }
    }
}

/// The `error_message` of a partial success: how many were stored and why each rejected
/// record was (the first ten).
fn rejection_message(report: &IngestReport) -> String {
    let mut message = report.summary();
    for p in report.problems.iter().take(10) {
        message.push_str(&format!("; record {}: {}: {}", p.record, p.path, p.message));
    }
    if report.problems.len() > 10 || report.omitted_problems > 0 {
        message.push_str("; …");
    }
    message
}

/// `POST /v1/logs`.
///
/// # Errors
///
/// Never as an `Err`: failures are OTLP answers (400 for an undecodable body, 413, 415,
/// 503 with `Retry-After` when busy) with a `google.rpc.Status` body.
pub async fn ingest(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let encoding = match encoding_of(&headers) {
        Ok(e) => e,
        Err(e) => return OtlpResponse::error(Encoding::Json, &e).into_response(),
    };
    match ingest_inner(&state, &headers, body, encoding).await {
        Ok(report) => OtlpResponse::success(encoding, &report).into_response(),
        Err(e) => OtlpResponse::error(encoding, &e).into_response(),
    }
}

async fn ingest_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    encoding: Encoding,
) -> Result<IngestReport, ApiError> {
    let bytes = read_body(headers, body, &state.ingest_limits()).await?;
    let max = state.config().max_events;
    let limits = state.config().limits;
    ingest_bytes(state, SOURCE, bytes, move |b| {
        map_body(b, encoding, max, &limits)
    })
    .await
}

fn encoding_of(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let got = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let essence = got
        .as_deref()
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/x-protobuf" | "application/protobuf") => Ok(Encoding::Protobuf),
        Some("application/json") => Ok(Encoding::Json),
        _ => Err(ApiError::UnsupportedMediaTypeOf {
            got,
            accepted: &["application/x-protobuf", "application/json"],
        }),
    }
}

/// One log record with what it inherits from its resource and scope.
struct Item<'r> {
    resource: Option<&'r Resource>,
    scope: Option<&'r InstrumentationScope>,
    record: Result<LogRecord, String>,
    /// The record's JSON text as received (OTLP/JSON only).
    raw: Option<&'r str>,
}

#[derive(Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase")]
struct JsonRequest<'a> {
    #[serde(borrow, default)]
    resource_logs: Vec<JsonResourceLogs<'a>>,
}

#[derive(Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase")]
struct JsonResourceLogs<'a> {
    resource: Option<Resource>,
    #[serde(borrow, default)]
    scope_logs: Vec<JsonScopeLogs<'a>>,
}

#[derive(Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase")]
struct JsonScopeLogs<'a> {
    scope: Option<InstrumentationScope>,
    #[serde(borrow, default)]
    log_records: Vec<&'a RawValue>,
}

// OTLP/JSON messages are objects; serde would also read an array of their fields.
stele_core::objects_only!(JsonRequest, JsonResourceLogs, JsonScopeLogs);

/// Decodes a request and maps every log record, in request order, each event checked
/// against `limits`.
///
/// # Errors
///
/// 400 (nothing stored) for a body that does not decode as an `ExportLogsServiceRequest`;
/// 413 for more than `max_events` records.
pub fn map_body(
    bytes: &[u8],
    encoding: Encoding,
    max_events: usize,
    limits: &EventLimits,
) -> Result<Vec<Mapped>, ApiError> {
    match encoding {
        Encoding::Protobuf => {
            let request = ExportLogsServiceRequest::decode(bytes).map_err(|e| {
                ApiError::BadRequest(format!(
                    "the body is not a protobuf ExportLogsServiceRequest: {e}; nothing was stored"
                ))
            })?;
            let count: usize = request
                .resource_logs
                .iter()
                .flat_map(|rl| &rl.scope_logs)
                .map(|sl| sl.log_records.len())
                .sum();
            if count > max_events {
                return Err(ApiError::TooManyEvents { limit: max_events });
            }
            let mut mapped = Vec::with_capacity(count);
            for rl in request.resource_logs {
                for sl in rl.scope_logs {
                    for record in sl.log_records {
                        let item = Item {
                            resource: rl.resource.as_ref(),
                            scope: sl.scope.as_ref(),
                            record: Ok(record),
                            raw: None,
                        };
                        mapped.push(map_record(mapped.len(), item, limits));
                    }
                }
            }
            Ok(mapped)
        }
        Encoding::Json => {
            let request: JsonRequest<'_> = serde_json::from_slice(bytes).map_err(|e| {
                ApiError::BadRequest(format!(
                    "the body is not an OTLP/JSON ExportLogsServiceRequest: {e}; nothing was stored"
                ))
            })?;
            let mut items = Vec::new();
            for rl in &request.resource_logs {
                for sl in &rl.scope_logs {
                    for raw in &sl.log_records {
                        items.push(Item {
                            resource: rl.resource.as_ref(),
                            scope: sl.scope.as_ref(),
                            record: serde_json::from_str::<LogRecord>(raw.get())
                                .map_err(|e| e.to_string()),
                            raw: Some(raw.get()),
                        });
                    }
                }
            }
            map_items(items, max_events, limits)
        }
    }
}

fn map_items(
    items: Vec<Item<'_>>,
    max_events: usize,
    limits: &EventLimits,
) -> Result<Vec<Mapped>, ApiError> {
    if items.len() > max_events {
        return Err(ApiError::TooManyEvents { limit: max_events });
    }
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, item)| map_record(i, item, limits))
        .collect())
}

/// The value of attribute `key`: the last one set when a key repeats (as a map built from
/// the list would hold). A scan, not a map: records carry a handful of attributes, and
/// hashing them all cost more than the lookups.
fn lookup<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .rev()
        .filter(|kv| kv.key == key)
        .find_map(|kv| kv.value.as_ref())
}

/// A string form of an attribute value: strings as they are, numbers and booleans printed.
fn text_of(v: &AnyValue) -> Option<String> {
    match v.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

/// The record's OTLP/JSON encoding without the fields at their default (as the protobuf
/// JSON mapping omits them): what `original` holds for a protobuf record.
///
/// Written in one pass: each top-level field is serialized by the record's own `Serialize`
/// and taken back out when it came out at its default (`null`, `""`, `0`, `[]`, or `"0"` for
/// a timestamp).
/// Building a `Value` of the whole record to filter it cost more than the rest of the
/// mapping. The test module keeps that definition and checks the two agree.
fn record_json(record: &LogRecord) -> Result<String, String> {
    let mut out = Vec::with_capacity(256);
    record
        .serialize(Pruned(&mut out))
        .map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// A serializer for one struct, written as a JSON object without its fields at their
/// default (see [`record_json`]). Anything but a struct is refused.
struct Pruned<'a>(&'a mut Vec<u8>);

/// The fields of a [`Pruned`] struct.
struct PrunedFields<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

/// Whether field `key` is at its default, by its JSON: unset message, empty string or bytes,
/// zero, empty list, and for the two 64-bit timestamps (which OTLP/JSON writes as strings) a
/// zero. A *string* field holding "0" (`severityText`, `eventName`) is not at its default
/// and stays in `original`.
fn is_default_json(key: &str, value: &[u8]) -> bool {
    match value {
        b"null" | b"\"\"" | b"0" | b"[]" => true,
        b"\"0\"" => key.ends_with("UnixNano"),
        _ => false,
    }
}

impl serde::ser::SerializeStruct for PrunedFields<'_> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        let start = self.out.len();
        if !self.first {
            self.out.push(b',');
        }
        serde_json::to_writer(&mut *self.out, key)?;
        self.out.push(b':');
        let value_at = self.out.len();
        serde_json::to_writer(&mut *self.out, value)?;
        if self
            .out
            .get(value_at..)
            .is_some_and(|v| is_default_json(key, v))
        {
            self.out.truncate(start);
        } else {
            self.first = false;
        }
        Ok(())
    }

    fn end(self) -> Result<(), Self::Error> {
        self.out.push(b'}');
        Ok(())
    }
}

/// The error of [`Pruned`] for anything but a struct.
fn not_a_struct() -> serde_json::Error {
    serde::ser::Error::custom("expected a struct")
}

impl<'a> serde::Serializer for Pruned<'a> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Impossible<(), serde_json::Error>;
    type SerializeTuple = Impossible<(), serde_json::Error>;
    type SerializeTupleStruct = Impossible<(), serde_json::Error>;
    type SerializeTupleVariant = Impossible<(), serde_json::Error>;
    type SerializeMap = Impossible<(), serde_json::Error>;
    type SerializeStruct = PrunedFields<'a>;
    type SerializeStructVariant = Impossible<(), serde_json::Error>;

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<PrunedFields<'a>, Self::Error> {
        self.0.push(b'{');
        Ok(PrunedFields {
            out: self.0,
            first: true,
        })
    }

    fn serialize_bool(self, _: bool) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_i8(self, _: i8) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_i16(self, _: i16) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_i32(self, _: i32) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_i64(self, _: i64) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_u8(self, _: u8) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_u16(self, _: u16) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_u32(self, _: u32) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_u64(self, _: u64) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_f32(self, _: f32) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_f64(self, _: f64) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_char(self, _: char) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_str(self, _: &str) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_none(self) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_unit(self) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        Err(not_a_struct())
    }
}

/// Maps one log record to an event (conventions in `docs/integrations/opentelemetry.md`).
fn map_record(index: usize, item: Item<'_>, limits: &EventLimits) -> Mapped {
    let problem = |m: String| RecordProblem::source(index, "$", m);
    let record = item
        .record
        .map_err(|e| problem(format!("not an OTLP/JSON LogRecord: {e}")))?;
    let original = match item.raw {
        Some(raw) => raw.to_owned(),
        None => {
            record_json(&record).map_err(|e| problem(format!("cannot encode the record: {e}")))?
        }
    };
    let attr = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| lookup(&record.attributes, k).and_then(text_of))
            .filter(|s| !s.is_empty())
    };
    let service = item
        .resource
        .and_then(|r| lookup(&r.attributes, "service.name"))
        .and_then(text_of)
        .filter(|s| !s.is_empty());

    let user = attr(&["stele.actor.id", "enduser.id", "user.id"]);
    let actor = match user {
        Some(id) => {
            let kind = attr(&["stele.actor.type"])
                .filter(|t| ["user", "service", "system"].contains(&t.as_str()))
                .unwrap_or_else(|| "user".to_owned());
            // `attr` finds only non-empty values, which always fit.
            let mut actor = map::actor(kind, fit_id(&id).unwrap_or_default());
            actor.name = attr(&["stele.actor.name", "user.name"])
                .and_then(|s| map::fit_text(&s))
                .map(Str::from);
            actor.ip = attr(&["client.address"])
                .and_then(|s| map::ip_of(&s))
                .map(Str::from);
            actor.user_agent = attr(&["user_agent.original"])
                .and_then(|s| fit_text(&s))
                .map(Str::from);
            actor.session_id = attr(&["session.id"])
                .and_then(|s| fit_id(&s))
                .map(Str::from);
            actor
        }
        None => {
            let id = service.as_deref().and_then(fit_id);
            map::actor(
                "service",
                id.unwrap_or_else(|| "unknown_service".to_owned()),
            )
        }
    };
    let event_name = (!record.event_name.is_empty()).then(|| record.event_name.clone());
    let action = attr(&["stele.action"])
        .into_iter()
        .chain(event_name.clone())
        .chain(attr(&["event.name"]))
        .find(|a| map::is_action(a))
        .unwrap_or_else(|| "otel.log".to_owned());
    // `attr` finds only non-empty values, which always fit.
    let resource = match (attr(&["stele.resource.type"]), attr(&["stele.resource.id"])) {
        (Some(kind), Some(id)) => (
            fit_name(&kind).unwrap_or_default(),
            fit_id(&id).unwrap_or_default(),
        ),
        _ => match attr(&["url.path", "http.route"]) {
            Some(path) => ("url".to_owned(), fit_id(&path).unwrap_or_default()),
            None => (
                "service".to_owned(),
                service
                    .as_deref()
                    .and_then(fit_id)
                    .unwrap_or_else(|| "unknown_service".to_owned()),
            ),
        },
    };
    let stated = attr(&["stele.outcome"]).map(|o| o.to_ascii_lowercase());
    let outcome = match stated.as_deref() {
        Some(o @ ("allow" | "deny" | "error")) => o.to_owned(),
        Some(other) => {
            return Err(RecordProblem::source(
                index,
                "attributes.stele.outcome",
                format!("must be \"allow\", \"deny\" or \"error\", not {other:?}"),
            ))
        }
        // No stated outcome: an ERROR or FATAL record is an error, anything else a
        // permitted action that was logged.
        None if record.severity_number >= 17 => "error".to_owned(),
        None => "allow".to_owned(),
    };
    let body_text = record
        .body
        .as_ref()
        .and_then(|b| match b.value.as_ref() {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .filter(|s| !s.is_empty());
    let reason = attr(&["stele.reason"])
        .or_else(|| body_text.clone())
        .and_then(|r| fit_text(&r));
    let policy = attr(&["stele.policy.id"])
        .and_then(|id| fit_id(&id))
        .map(|id| WirePolicy {
            id: id.into(),
            version: attr(&["stele.policy.version"])
                .and_then(|v| fit_id(&v))
                .map(Str::from),
        });
    let context = object([
        (
            "service",
            service.as_deref().and_then(fit_id).map(Value::from),
        ),
        (
            "severity_text",
            fit_id(&record.severity_text).map(Value::from),
        ),
        (
            "severity_number",
            (record.severity_number != 0).then(|| json!(record.severity_number)),
        ),
        (
            "event_name",
            event_name.as_deref().and_then(fit_id).map(Value::from),
        ),
        (
            "trace_id",
            (!record.trace_id.is_empty()).then(|| json!(hex::encode(&record.trace_id))),
        ),
        (
            "span_id",
            (!record.span_id.is_empty()).then(|| json!(hex::encode(&record.span_id))),
        ),
        (
            "scope",
            item.scope.and_then(|s| fit_id(&s.name)).map(Value::from),
        ),
    ]);
    let time = if record.time_unix_nano != 0 {
        record.time_unix_nano
    } else {
        record.observed_time_unix_nano
    };
    let mut event = map::event(SOURCE, actor, action, resource, outcome, original);
    event.reason = reason.map(Str::from);
    event.policy = policy;
    event.tenant = attr(&["stele.tenant"])
        .and_then(|t| fit_id(&t))
        .map(Str::from);
    event.context = Some(context);
    event.client_time = map::client_time_from_nanos(time).map(Str::from);
    Ok(MappedEvent::check(event, limits))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    use super::*;

    /// The definition [`record_json`] replaced: the record as a `Value`, top-level fields at
    /// their default removed.
    fn record_json_by_value(record: &LogRecord) -> String {
        let mut value = serde_json::to_value(record).unwrap();
        if let Value::Object(map) = &mut value {
            map.retain(|k, v| match v {
                Value::Null => false,
                Value::String(s) => {
                    let zero_time = s == "0" && k.ends_with("UnixNano");
                    !(s.is_empty() || zero_time)
                }
                Value::Number(n) => n.as_u64() != Some(0),
                Value::Array(a) => !a.is_empty(),
                _ => true,
            });
        }
        serde_json::to_string(&value).unwrap()
    }

    fn any(v: any_value::Value) -> Option<AnyValue> {
        Some(AnyValue { value: Some(v) })
    }

    fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value,
            ..Default::default()
        }
    }

    #[test]
    fn json_messages_written_as_arrays_are_refused() {
        let limits = EventLimits::default();
        let map = |body: &str| map_body(body.as_bytes(), Encoding::Json, 100, &limits);
        // The object forms decode (no records: nothing to map).
        assert!(map(r#"{"resourceLogs": [{"scopeLogs": [{"logRecords": []}]}]}"#).is_ok());
        for body in [
            r#"[[]]"#,
            r#"{"resourceLogs": [[null, []]]}"#,
            r#"{"resourceLogs": [{"scopeLogs": [[null, []]]}]}"#,
        ] {
            match map(body) {
                Err(ApiError::BadRequest(m)) => assert!(m.contains("expected an object"), "{m}"),
                Err(e) => panic!("{body}: {e}"),
                Ok(_) => panic!("{body} was accepted"),
            }
        }
    }

    #[test]
    fn record_json_matches_the_value_definition_byte_for_byte() {
        use any_value::Value as V;
        let every_kind = vec![
            kv(
                "s",
                any(V::StringValue("a \"quoted\" \\ line\n\u{1}é".to_owned())),
            ),
            kv("empty", any(V::StringValue(String::new()))),
            kv("zero-string", any(V::StringValue("0".to_owned()))),
            kv("b", any(V::BoolValue(false))),
            kv("i", any(V::IntValue(0))),
            kv("big", any(V::IntValue(i64::MIN))),
            kv("d", any(V::DoubleValue(1.0))),
            kv("nan", any(V::DoubleValue(f64::NAN))),
            kv("tiny", any(V::DoubleValue(-5e-324))),
            kv("bytes", any(V::BytesValue(vec![0, 255, 7]))),
            kv(
                "list",
                any(V::ArrayValue(ArrayValue {
                    values: vec![AnyValue::default(), any(V::IntValue(3)).unwrap()],
                })),
            ),
            kv(
                "map",
                any(V::KvlistValue(KeyValueList {
                    values: vec![
                        kv("inner", any(V::StringValue("x".to_owned()))),
                        kv("none", None),
                    ],
                })),
            ),
            kv("unset", None),
            kv("unset-value", Some(AnyValue::default())),
        ];
        let records = [
            LogRecord::default(),
            LogRecord {
                time_unix_nano: 1_796_189_270_000_000_000,
                observed_time_unix_nano: 1,
                severity_number: 17,
                severity_text: "ERROR".to_owned(),
                body: any(V::StringValue("policy engine unreachable".to_owned())),
                attributes: every_kind.clone(),
                dropped_attributes_count: 2,
                flags: 1,
                trace_id: vec![1; 16],
                span_id: vec![0xee; 8],
                event_name: "authz.check".to_owned(),
            },
            LogRecord {
                severity_number: -3,
                severity_text: "0".to_owned(),
                body: Some(AnyValue::default()),
                attributes: vec![kv("k", None)],
                event_name: "\u{2028}".to_owned(),
                ..Default::default()
            },
            LogRecord {
                observed_time_unix_nano: u64::MAX,
                body: any(V::KvlistValue(KeyValueList { values: every_kind })),
                flags: u32::MAX,
                trace_id: vec![0; 1],
                ..Default::default()
            },
        ];
        for record in &records {
            let got = record_json(record).unwrap();
            assert_eq!(got, record_json_by_value(record));
            // And it is JSON.
            serde_json::from_str::<Value>(&got).unwrap();
        }
        assert_eq!(record_json(&LogRecord::default()).unwrap(), "{}");
        // A string field that says "0" is kept; a zero timestamp is not.
        let zero_text = record_json(&records[2]).unwrap();
        assert!(zero_text.contains(r#""severityText":"0""#), "{zero_text}");
        assert!(!zero_text.contains("UnixNano"), "{zero_text}");
    }

    #[test]
    fn a_repeated_attribute_counts_with_its_last_value() {
        let text = |s: &str| any(any_value::Value::StringValue(s.to_owned()));
        let attributes = vec![
            kv("user.id", text("first")),
            kv("other", text("x")),
            kv("user.id", text("last")),
            kv("user.id", None),
        ];
        let found = lookup(&attributes, "user.id").and_then(text_of);
        assert_eq!(found.as_deref(), Some("last"));
        assert!(lookup(&attributes, "missing").is_none());
        assert!(lookup(&[kv("k", None)], "k").is_none());
    }

    #[test]
    fn pruned_refuses_what_is_not_a_struct() {
        let mut out = Vec::new();
        assert!(7u8.serialize(Pruned(&mut out)).is_err());
        assert!(vec![1].serialize(Pruned(&mut out)).is_err());
    }
}
