//! API errors and their HTTP form: a status code and a JSON body `{"error": "...", ...}`.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use stele_auth::Role;
use stele_store::StoreError;

/// The media types `POST /v1/events` accepts.
pub const ACCEPTED_CONTENT_TYPES: [&str; 2] = ["application/json", "application/x-ndjson"];

/// Most problems listed in one answer: a request of many bad events must not produce an
/// answer larger than the request.
pub const MAX_PROBLEMS: usize = 1000;

/// One problem with one event of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Position of the event in a JSON array or NDJSON body (absent for a single object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// 1-based line of the event in an NDJSON body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// JSON path of the offending value inside the event, such as `$.actor.type`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Everything a handler can answer instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// At least one event failed validation; nothing was appended (400).
    #[error("invalid event")]
    InvalidEvents {
        /// The problems found, in request order, at most [`MAX_PROBLEMS`].
        problems: Vec<Problem>,
        /// How many further problems were found but left out of the answer.
        omitted: usize,
    },
    /// The body is not JSON (400). `line` is the NDJSON line for NDJSON bodies.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    BadJson {
        /// The parser's description.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// Any other malformed request (400).
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than the configured limit (413).
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The request holds more events than allowed (413).
    #[error("too many events in one request: the limit is {limit}")]
    TooManyEvents {
        /// The limit.
        limit: usize,
    },
    /// One event's stored form is larger than an entry may be (413).
    #[error("event {index} is {size} bytes as stored, more than the limit of {limit} bytes")]
    EntryTooLarge {
        /// Position of the event in the request (0 for a single object).
        index: usize,
        /// Size of its canonical form.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Missing or unsupported Content-Type (415).
    #[error("unsupported content type")]
    UnsupportedMediaType {
        /// The Content-Type received, if any.
        got: Option<String>,
    },
    /// No credentials, or credentials that are not a valid token of this log (401 with
    /// `WWW-Authenticate: Bearer`).
    #[error("{message}")]
    Unauthorized {
        /// What is wrong; never contains the presented token.
        message: String,
        /// Credentials were sent but are invalid (RFC 6750 `error="invalid_token"`).
        invalid_token: bool,
    },
    /// The principal's role may not use this route (403).
    #[error("this route needs the {} role; this token has the {has} role", crate::auth::middleware::role_list(.needed))]
    WrongRole {
        /// The roles the route allows.
        needed: Vec<Role>,
        /// The principal's role.
        has: Role,
    },
    /// The principal may use the route, but not for this (a writer naming another source or
    /// tenant) (403).
    #[error("{0}")]
    Forbidden(String),
    /// The principal's rate limit is spent (429 + Retry-After).
    #[error("too many requests: this token's rate limit is spent; retry in {retry_after_secs} s")]
    TooManyRequests {
        /// Seconds until a request will be accepted again.
        retry_after_secs: u64,
    },
    /// Missing or unsupported Content-Type on a route with its own media types (415).
    #[error("unsupported content type {}; accepted: {}", got.as_deref().map_or_else(|| "(none)".to_owned(), |g| format!("{g:?}")), accepted.join(", "))]
    UnsupportedMediaTypeOf {
        /// The Content-Type received, if any.
        got: Option<String>,
        /// What the route accepts.
        accepted: &'static [&'static str],
    },
    /// A Content-Encoding other than gzip or identity (415).
    #[error("unsupported content encoding {0:?}; accepted: gzip, identity")]
    UnsupportedEncoding(String),
    /// A gzip body decodes to more than the limit (413).
    #[error("the gzip body decodes to more than the limit of {limit} bytes; nothing was stored")]
    DecodedTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No such resource (404).
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not for this method (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// An event reuses an id already in the log with different content (409).
    #[error("id conflict")]
    Conflict {
        /// The id.
        id: String,
        /// Log index of the event that already has the id.
        index: u64,
    },
    /// The store's queue is full; the client should retry (503 + Retry-After).
    #[error("the log is busy; retry shortly")]
    Overloaded,
    /// The store refuses writes or reads for now (503).
    #[error("{0}")]
    Unavailable(String),
    /// A fault on the server's side (500).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidEvents { .. } | ApiError::BadJson { .. } | ApiError::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::BodyTooLarge { .. }
            | ApiError::DecodedTooLarge { .. }
            | ApiError::TooManyEvents { .. }
            | ApiError::EntryTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::WrongRole { .. } | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnsupportedMediaType { .. }
            | ApiError::UnsupportedMediaTypeOf { .. }
            | ApiError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Overloaded | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body: always an object with an `error` string, plus structured details.
    pub fn body(&self) -> Value {
        let error = self.to_string();
        match self {
            ApiError::InvalidEvents {
                problems,
                omitted: 0,
            } => {
                json!({ "error": error, "problems": problems })
            }
            ApiError::InvalidEvents { problems, omitted } => {
                json!({ "error": error, "problems": problems, "omitted_problems": omitted })
            }
            ApiError::BadJson {
                message,
                line,
                column,
            } => json!({
                "error": error, "message": message, "line": line, "column": column,
            }),
            ApiError::BodyTooLarge { limit }
            | ApiError::DecodedTooLarge { limit }
            | ApiError::TooManyEvents { limit } => {
                json!({ "error": error, "limit": limit })
            }
            ApiError::EntryTooLarge { index, size, limit } => json!({
                "error": error, "index": index, "size": size, "limit": limit,
            }),
            ApiError::UnsupportedMediaType { got } => json!({
                "error": match got {
                    Some(got) => format!("unsupported content type {got:?}"),
                    None => "missing content type".to_owned(),
                },
                "accepted": ACCEPTED_CONTENT_TYPES,
            }),
            ApiError::WrongRole { needed, has } => json!({
                "error": error,
                "required_role": needed.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                "role": has.as_str(),
            }),
            ApiError::TooManyRequests { retry_after_secs } => {
                json!({ "error": error, "retry_after": retry_after_secs })
            }
            ApiError::Conflict { id, index } => json!({
                "error": error,
                "id": id,
                "index": index,
                "message": "an event with this id and different content is already in the log",
            }),
            _ => json!({ "error": error }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        tracing::warn!(status = status.as_u16(), error = %self, "request failed");
        let mut response = (status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        match &self {
            // Refused before the body was read: the connection cannot carry another request
            // (the rest of the body is still on it), and saying so keeps clients from
            // reusing it.
            ApiError::BodyTooLarge { .. } | ApiError::UnsupportedMediaType { .. } => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            ApiError::Overloaded => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::TooManyRequests { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            // RFC 6750 §3: the challenge, with `invalid_token` when credentials were sent.
            ApiError::Unauthorized { invalid_token, .. } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(if *invalid_token {
                        "Bearer realm=\"stele\", error=\"invalid_token\""
                    } else {
                        "Bearer realm=\"stele\""
                    }),
                );
            }
            ApiError::WrongRole { .. } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"stele\", error=\"insufficient_scope\"",
                    ),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict { id, index } => ApiError::Conflict { id, index },
            StoreError::Overloaded => ApiError::Overloaded,
            StoreError::InvalidArgument(what) => ApiError::BadRequest(what),
            StoreError::Poisoned => ApiError::Unavailable(
                "the store refuses writes after a failed write; it must be restarted".to_owned(),
            ),
            StoreError::Closed => ApiError::Unavailable("the log is shutting down".to_owned()),
            other => ApiError::Internal(format!("storage error: {other}")),
        }
    }
}

impl From<stele_index::IndexError> for ApiError {
    fn from(e: stele_index::IndexError) -> Self {
        match e {
            stele_index::IndexError::Store(e) => e.into(),
            stele_index::IndexError::InvalidQuery(what) => ApiError::BadRequest(what),
            other => ApiError::Internal(format!("query index error: {other}")),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::BadRequest(e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::BadRequest(e.body_text())
    }
}

/// Fallback for paths no route serves.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no such resource: {}", uri.path()))
}

/// Fallback for a method a route does not serve (axum keeps the `Allow` header).
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn answer(e: StoreError) -> (StatusCode, Option<String>, Value) {
        let api = ApiError::from(e);
        let body = api.body();
        let response = api.into_response();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status(), retry, body)
    }

    #[test]
    fn store_errors_map_to_statuses() {
        let (status, retry, _) = answer(StoreError::Overloaded);
        assert_eq!(
            (status, retry.as_deref()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("1"))
        );
        let (status, retry, _) = answer(StoreError::Poisoned);
        assert_eq!((status, retry), (StatusCode::SERVICE_UNAVAILABLE, None));
        let (status, _, body) = answer(StoreError::Conflict {
            id: "0190d7a4-5c1e-7cc4-9b8e-0a1b2c3d4e5f".to_owned(),
            index: 4,
        });
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"], "id conflict");
        assert_eq!(body["id"], "0190d7a4-5c1e-7cc4-9b8e-0a1b2c3d4e5f");
        assert_eq!(body["index"], 4);
        let (status, _, _) = answer(StoreError::NotFound("tile".to_owned()));
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, body) = answer(StoreError::Io {
            op: "write",
            path: "/data/log/seg".into(),
            source: std::io::Error::other("disk on fire"),
        });
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body["error"].as_str().unwrap().contains("disk on fire"),
            "{body}"
        );
    }

    #[test]
    fn access_errors_carry_their_challenge_and_retry_headers() {
        let header = |e: ApiError, name: header::HeaderName| {
            let r = e.into_response();
            (
                r.status(),
                r.headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned()),
            )
        };
        let missing = ApiError::Unauthorized {
            message: "authentication required".to_owned(),
            invalid_token: false,
        };
        assert_eq!(
            header(missing, header::WWW_AUTHENTICATE),
            (
                StatusCode::UNAUTHORIZED,
                Some("Bearer realm=\"stele\"".to_owned())
            )
        );
        let invalid = ApiError::Unauthorized {
            message: "invalid token".to_owned(),
            invalid_token: true,
        };
        let (_, challenge) = header(invalid, header::WWW_AUTHENTICATE);
        assert!(challenge.unwrap().contains("error=\"invalid_token\""));
        let role = ApiError::WrongRole {
            needed: vec![Role::Reader, Role::Auditor],
            has: Role::Writer,
        };
        let body = role.body();
        assert_eq!(
            body["error"],
            "this route needs the reader or auditor role; this token has the writer role"
        );
        assert_eq!(body["required_role"], json!(["reader", "auditor"]));
        assert_eq!(role.status(), StatusCode::FORBIDDEN);
        let limited = ApiError::TooManyRequests {
            retry_after_secs: 3,
        };
        assert_eq!(
            header(limited, header::RETRY_AFTER),
            (StatusCode::TOO_MANY_REQUESTS, Some("3".to_owned()))
        );
    }

    #[test]
    fn every_error_body_is_an_object_with_an_error_string() {
        let errors = [
            ApiError::InvalidEvents {
                problems: Vec::new(),
                omitted: 2,
            },
            ApiError::BadJson {
                message: "x".to_owned(),
                line: 1,
                column: 2,
            },
            ApiError::BadRequest("x".to_owned()),
            ApiError::BodyTooLarge { limit: 1 },
            ApiError::TooManyEvents { limit: 1 },
            ApiError::EntryTooLarge {
                index: 0,
                size: 2,
                limit: 1,
            },
            ApiError::UnsupportedMediaType { got: None },
            ApiError::Unauthorized {
                message: "x".to_owned(),
                invalid_token: true,
            },
            ApiError::WrongRole {
                needed: vec![Role::Reader, Role::Auditor],
                has: Role::Writer,
            },
            ApiError::Forbidden("x".to_owned()),
            ApiError::TooManyRequests {
                retry_after_secs: 1,
            },
            ApiError::UnsupportedMediaTypeOf {
                got: None,
                accepted: &["a/b"],
            },
            ApiError::UnsupportedEncoding("br".to_owned()),
            ApiError::DecodedTooLarge { limit: 1 },
            ApiError::NotFound("x".to_owned()),
            ApiError::MethodNotAllowed,
            ApiError::Conflict {
                id: "x".to_owned(),
                index: 0,
            },
            ApiError::Overloaded,
            ApiError::Unavailable("x".to_owned()),
            ApiError::Internal("x".to_owned()),
        ];
        for e in errors {
            assert!(e.body()["error"].is_string(), "{e:?}");
        }
    }
}
