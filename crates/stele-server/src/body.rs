//! The body of `POST /v1/events`: content-type dispatch, the size limit, and parsing of JSON
//! and NDJSON with positions for every error.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use serde_json::Value;
use stele_core::event::WireEvent;

use crate::error::ApiError;

/// How the events of a request are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`: one object, or an array of objects.
    Json,
    /// `application/x-ndjson`: one object per line; blank lines are skipped.
    Ndjson,
}

/// One event as found in the body, with its position for error reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The parsed JSON value (not yet known to be an object).
    pub value: Value,
    /// Position among the events (absent when the body is a single JSON object).
    pub index: Option<usize>,
    /// 1-based line in an NDJSON body.
    pub line: Option<usize>,
}

/// Picks the format from the Content-Type header (parameters such as `charset` are ignored).
///
/// # Errors
///
/// [`ApiError::UnsupportedMediaType`] if the header is missing or names another type.
pub fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType { got: None });
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(BodyFormat::Json),
        "application/x-ndjson" => Ok(BodyFormat::Ndjson),
        _ => Err(ApiError::UnsupportedMediaType {
            got: Some(text.into_owned()),
        }),
    }
}

/// Reads the whole body, refusing more than `limit` bytes.
///
/// A Content-Length above the limit is refused before a byte of the body is read; a body
/// without one (chunked) is cut off as soon as it passes the limit.
///
/// # Errors
///
/// [`ApiError::BodyTooLarge`] past the limit, [`ApiError::BadRequest`] if the body cannot be
/// read (malformed Content-Length, client gone).
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if let Some(length) = headers.get(header::CONTENT_LENGTH) {
        let length = length
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::BadRequest("malformed Content-Length".to_owned()))?;
        if u64::try_from(limit).is_ok_and(|limit| length > limit) {
            return Err(ApiError::BodyTooLarge { limit });
        }
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(e) => {
            let inner = e.into_inner();
            if inner
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::BodyTooLarge { limit })
            } else {
                Err(ApiError::BadRequest(format!(
                    "could not read the request body: {inner}"
                )))
            }
        }
    }
}

/// Splits a body into events.
///
/// # Errors
///
/// [`ApiError::BadJson`] with the position of a syntax error, [`ApiError::BadRequest`] for a
/// body without events or with a top-level value that is neither an object nor an array, and
/// [`ApiError::TooManyEvents`] past `max_events`.
pub fn parse(bytes: &[u8], format: BodyFormat, max_events: usize) -> Result<Vec<Item>, ApiError> {
    let items = match format {
        BodyFormat::Json => parse_json(bytes, max_events)?,
        BodyFormat::Ndjson => parse_ndjson(bytes, max_events)?,
    };
    if items.is_empty() {
        return Err(ApiError::BadRequest(
            "the request holds no events".to_owned(),
        ));
    }
    Ok(items)
}

fn parse_json(bytes: &[u8], max_events: usize) -> Result<Vec<Item>, ApiError> {
    if bytes.trim_ascii().is_empty() {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| bad_json(&e, e.line()))?;
    match value {
        Value::Object(_) => Ok(vec![Item {
            value,
            index: None,
            line: None,
        }]),
        Value::Array(values) => {
            if values.len() > max_events {
                return Err(ApiError::TooManyEvents { limit: max_events });
            }
            Ok(values
                .into_iter()
                .enumerate()
                .map(|(i, value)| Item {
                    value,
                    index: Some(i),
                    line: None,
                })
                .collect())
        }
        _ => Err(ApiError::BadRequest(
            "expected a JSON object or an array of objects".to_owned(),
        )),
    }
}

fn parse_ndjson(bytes: &[u8], max_events: usize) -> Result<Vec<Item>, ApiError> {
    let mut items = Vec::new();
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = n.saturating_add(1);
        if line.trim_ascii().is_empty() {
            continue;
        }
        if items.len() == max_events {
            return Err(ApiError::TooManyEvents { limit: max_events });
        }
        let value: Value = serde_json::from_slice(line).map_err(|e| bad_json(&e, line_no))?;
        items.push(Item {
            value,
            index: Some(items.len()),
            line: Some(line_no),
        });
    }
    Ok(items)
}

/// The fast path of intake: every event of the body deserialized straight into its typed
/// form, or `None` if anything in the body is not simply a well-typed event (a syntax error,
/// an unknown field, a `null`, no events, more than `max_events`). Then [`parse`] and full
/// validation run instead and report the problems; see `stele_core::event::WireEvent`.
pub fn parse_typed(
    bytes: &[u8],
    format: BodyFormat,
    max_events: usize,
) -> Option<Vec<WireEvent<'_>>> {
    let events = match format {
        BodyFormat::Json => match bytes.trim_ascii_start().first()? {
            b'{' => vec![serde_json::from_slice(bytes).ok()?],
            b'[' => serde_json::from_slice(bytes).ok()?,
            _ => return None,
        },
        BodyFormat::Ndjson => {
            let mut events = Vec::new();
            for line in bytes.split(|&b| b == b'\n') {
                if line.trim_ascii().is_empty() {
                    continue;
                }
                if events.len() == max_events {
                    return None;
                }
                events.push(serde_json::from_slice(line).ok()?);
            }
            events
        }
    };
    (!events.is_empty() && events.len() <= max_events).then_some(events)
}

/// Builds the 400 for a syntax error; `line` replaces serde's line for NDJSON, where serde
/// sees one line at a time.
fn bad_json(e: &serde_json::Error, line: usize) -> ApiError {
    let full = e.to_string();
    // serde_json's Display appends " at line L column C"; the position is reported in fields.
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    ApiError::BadJson {
        message,
        line,
        column: e.column(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        h
    }

    #[test]
    fn content_type_ignores_parameters_and_case() {
        assert_eq!(
            body_format(&headers("Application/JSON; charset=utf-8")).unwrap(),
            BodyFormat::Json
        );
        assert_eq!(
            body_format(&headers("application/x-ndjson")).unwrap(),
            BodyFormat::Ndjson
        );
        assert!(matches!(
            body_format(&headers("text/plain")),
            Err(ApiError::UnsupportedMediaType { got: Some(_) })
        ));
        assert!(matches!(
            body_format(&HeaderMap::new()),
            Err(ApiError::UnsupportedMediaType { got: None })
        ));
    }

    #[test]
    fn json_syntax_error_reports_line_and_column() {
        let err = parse(b"{\n  \"a\": 1,\n  \"b\" 2\n}", BodyFormat::Json, 10).unwrap_err();
        match err {
            ApiError::BadJson {
                line,
                column,
                message,
            } => {
                assert_eq!((line, column), (3, 7));
                assert!(!message.contains("at line"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ndjson_reports_the_body_line_and_skips_blank_lines() {
        let items = parse(b"{\"a\":1}\r\n\n  \n{\"a\":2}\n", BodyFormat::Ndjson, 10).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!((items[1].index, items[1].line), (Some(1), Some(4)));
        let err = parse(b"{\"a\":1}\n\n{\"a\":}\n", BodyFormat::Ndjson, 10).unwrap_err();
        assert!(
            matches!(
                err,
                ApiError::BadJson {
                    line: 3,
                    column: 6,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn empty_bodies_and_counts() {
        for (body, format) in [
            (&b""[..], BodyFormat::Json),
            (b" [ ] ", BodyFormat::Json),
            (b"\n\n", BodyFormat::Ndjson),
        ] {
            assert!(matches!(
                parse(body, format, 10),
                Err(ApiError::BadRequest(_))
            ));
        }
        assert!(matches!(
            parse(b"[{},{},{}]", BodyFormat::Json, 2),
            Err(ApiError::TooManyEvents { limit: 2 })
        ));
        assert!(matches!(
            parse(b"{}\n{}\n{}", BodyFormat::Ndjson, 2),
            Err(ApiError::TooManyEvents { limit: 2 })
        ));
        assert_eq!(parse(b"{}", BodyFormat::Json, 1).unwrap()[0].index, None);
        assert!(matches!(
            parse(b"3", BodyFormat::Json, 1),
            Err(ApiError::BadRequest(_))
        ));
    }
}
