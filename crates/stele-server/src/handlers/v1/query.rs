//! `GET /v1/events?…` (search) and `GET /v1/events/count?…` (counts and group-by), answered
//! from the query index; the events themselves are read from the log, byte for byte.
//!
//! Parameters are described in `docs/query.md` and the OpenAPI document. An empty value
//! counts as absent; an unknown, repeated or malformed parameter is a 400 naming it.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use stele_core::Hash;
use stele_index::{parse_instant, Field, Filter, GroupBy, Index, Match, Order};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Default and largest `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest `limit`.
pub const MAX_LIMIT: usize = 1_000;

/// The filter parameters shared by search and count.
const FILTER_PARAMS: [&str; 13] = [
    "actor",
    "actor_type",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "tenant",
    "source",
    "session",
    "ip",
    "from",
    "to",
    "q",
];

pub(crate) type RawParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Query parameters, checked for unknown and repeated names; empty values are dropped.
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub(crate) fn parse(raw: RawParams, known: &[&[&str]]) -> Result<Params, ApiError> {
        let Query(pairs) = raw?;
        let mut map = HashMap::new();
        for (k, v) in pairs {
            if !known.iter().any(|set| set.contains(&k.as_str())) {
                let names: Vec<&str> = known.iter().flat_map(|s| s.iter().copied()).collect();
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {k:?}; expected one of {}",
                    names.join(", ")
                )));
            }
            if map.contains_key(&k) {
                return Err(ApiError::BadRequest(format!(
                    "the query parameter {k} is given more than once"
                )));
            }
            if !v.is_empty() {
                map.insert(k, v);
            }
        }
        Ok(Params(map))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub(crate) fn instant(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                parse_instant(v)
                    .map_err(|e| ApiError::BadRequest(format!("the query parameter {name}: {e}")))
            })
            .transpose()
    }

    pub(crate) fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::BadRequest(format!(
                        "the query parameter {name} must be a decimal integer, got {v:?}"
                    ))
                })
            })
            .transpose()
    }

    /// The filter the parameters describe, narrowed to what `caller` may see.
    fn filter_for(&self, caller: &Caller) -> Result<Filter, ApiError> {
        let mut f = self.filter()?;
        confine(&mut f, caller)?;
        Ok(f)
    }

    /// The filter the parameters describe.
    fn filter(&self) -> Result<Filter, ApiError> {
        let mut f = Filter::default();
        for field in Field::ALL {
            let Some(v) = self.get(field.name()) else {
                continue;
            };
            let allowed: &[&str] = match field {
                Field::Outcome => &["allow", "deny", "error"],
                Field::ActorType => &["user", "service", "system"],
                _ => &[],
            };
            if !allowed.is_empty() && !allowed.contains(&v) {
                return Err(ApiError::BadRequest(format!(
                    "the query parameter {field} must be one of {}, got {v:?}",
                    allowed.join(", ")
                )));
            }
            // Only action takes a wildcard: its values can never contain `*` (the schema's
            // pattern), while any other field's value may, and then matches literally.
            let m = if field == Field::Action {
                let m = Match::parse(v);
                if let Match::Exact(s) | Match::Prefix(s) = &m {
                    if s.contains('*') {
                        return Err(ApiError::BadRequest(format!(
                            "the query parameter action takes `*` only as its last character (role.*), got {v:?}"
                        )));
                    }
                }
                m
            } else {
                Match::Exact(v.to_owned())
            };
            f.fields.push((field, m));
        }
        if let Some(q) = self.get("q") {
            if !f.set_text(q) {
                return Err(ApiError::BadRequest(format!(
                    "the query parameter q has no words to search for: {q:?}"
                )));
            }
        }
        f.from = self.instant("from")?;
        f.to = self.instant("to")?;
        if let (Some(a), Some(b)) = (f.from, f.to) {
            if a > b {
                return Err(ApiError::BadRequest(
                    "the query parameter from is later than to".to_owned(),
                ));
            }
        }
        Ok(f)
    }

    /// `proof_tree_size`: a tree size (1 ..= log size) or `latest` (the latest checkpoint).
    pub(crate) fn proof_tree_size(&self, state: &AppState) -> Result<Option<u64>, ApiError> {
        let Some(v) = self.get("proof_tree_size") else {
            return Ok(None);
        };
        let size = state.store().size();
        let n = if v == "latest" {
            state
                .store()
                .latest_checkpoint()
                .map(|c| c.size)
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "the query parameter proof_tree_size=latest: no checkpoint yet".to_owned(),
                    )
                })?
        } else {
            self.number("proof_tree_size")?.unwrap_or(0)
        };
        if n == 0 || n > size {
            return Err(ApiError::BadRequest(format!(
                "the query parameter proof_tree_size must be latest or a tree size from 1 to the log's size {size}, got {v:?}"
            )));
        }
        Ok(Some(n))
    }
}

/// Narrows `filter` to the entries `caller` may see. A reader sees only events of its own
/// tenants ([`stele_auth::policy::may_see`]), so its filter gains the condition "tenant is
/// one of mine" whatever else it asks, and naming another tenant is refused outright (403
/// naming it) rather than answered with an empty page. The index applies the condition
/// before anything is counted or grouped, so nothing of another tenant is seen, counted or
/// inferred.
///
/// # Errors
/// 403 when the filter names a tenant the reader is not bound to.
fn confine(filter: &mut Filter, caller: &Caller) -> Result<(), ApiError> {
    if !caller.is_tenant_bound() {
        return Ok(());
    }
    let own: Vec<String> = caller
        .principal()
        .map(|p| p.tenants.clone())
        .unwrap_or_default();
    for (field, m) in &filter.fields {
        if let (Field::Tenant, Match::Exact(t)) = (field, m) {
            if !own.contains(t) {
                return Err(ApiError::Forbidden(format!(
                    "this token may read only the tenants {}; it may not query tenant {t:?}",
                    if own.is_empty() {
                        "(none)".to_owned()
                    } else {
                        own.join(", ")
                    }
                )));
            }
        }
    }
    filter.fields.push((Field::Tenant, Match::AnyOf(own)));
    Ok(())
}

pub(crate) fn index_of(state: &AppState) -> Result<Index, ApiError> {
    state
        .index()
        .cloned()
        .ok_or_else(|| ApiError::Unavailable("this server has no query index".to_owned()))
}

/// A cursor: the order letter and the last index returned.
fn parse_cursor(v: &str, order: Order) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "the query parameter cursor is not a cursor this API returned: {v:?}"
        ))
    };
    let (letter, rest) = v.split_at_checked(1).ok_or_else(bad)?;
    let want = match order {
        Order::Asc => "a",
        Order::Desc => "d",
    };
    if letter != want {
        return Err(ApiError::BadRequest(format!(
            "the query parameter cursor was returned for the other order; keep order the same while paging (got {v:?})"
        )));
    }
    rest.parse().map_err(|_| bad())
}

fn cursor(order: Order, last: u64) -> String {
    match order {
        Order::Asc => format!("a{last}"),
        Order::Desc => format!("d{last}"),
    }
}

/// `GET /v1/events?…`: matching events, each the stored event with `index` and `leaf_hash`
/// (and `inclusion_proof` with `proof_tree_size`), a cursor for the next page, and the
/// index's lag.
///
/// A reader's search is confined to its tenants (see [`confine`]).
///
/// # Errors
/// 400 naming a bad parameter; 403 naming a tenant the reader may not read; 503 without an
/// index.
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    raw: RawParams,
) -> Result<Response, ApiError> {
    let params = Params::parse(
        raw,
        &[
            &FILTER_PARAMS,
            &["limit", "cursor", "order", "proof_tree_size"],
        ],
    )?;
    let index = index_of(&state)?;
    let filter = params.filter_for(&caller)?;
    let order = match params.get("order") {
        None | Some("desc") => Order::Desc,
        Some("asc") => Order::Asc,
        Some(o) => {
            return Err(ApiError::BadRequest(format!(
                "the query parameter order must be asc or desc, got {o:?}"
            )))
        }
    };
    let limit = match params.number("limit")? {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::BadRequest(format!(
                "the query parameter limit must be from 1 to {MAX_LIMIT}, got {n}"
            )))
        }
    };
    let cursor_at = params
        .get("cursor")
        .map(|c| parse_cursor(c, order))
        .transpose()?;
    let proof_size = params.proof_tree_size(&state)?;
    let checkpoint = proof_size.and_then(|n| {
        state
            .store()
            .latest_checkpoint()
            .filter(|c| c.size == n)
            .map(|c| c.note)
    });
    let (after, mut before) = match order {
        Order::Asc => (cursor_at, None),
        Order::Desc => (None, cursor_at),
    };
    // With proofs, only entries inside the proven tree.
    if let Some(n) = proof_size {
        before = Some(before.map_or(n, |b| b.min(n)));
    }
    let body = state
        .with_store(move |store| {
            let page = index.search(&filter, order, after, before, limit);
            let mut out = String::with_capacity(page.hits.len() * 600 + 64);
            out.push_str("{\"events\":[");
            for (k, &i) in page.hits.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                let proof = proof_size
                    .map(|n| store.inclusion_proof(i, n))
                    .transpose()?;
                result_json(&mut out, i, &store.leaf_hash(i)?, proof, &store.entry(i)?);
            }
            out.push_str("],\"next_cursor\":");
            match (page.more, page.hits.last()) {
                (true, Some(&last)) => {
                    let _ = write!(out, "\"{}\"", cursor(order, last));
                }
                _ => out.push_str("null"),
            }
            let lag = store.size().saturating_sub(page.indexed);
            let _ = write!(out, ",\"index_lag\":{lag}");
            if let Some(n) = proof_size {
                let _ = write!(out, ",\"proof_tree_size\":{n}");
                if let Some(note) = &checkpoint {
                    out.push_str(",\"checkpoint\":");
                    out.push_str(&Value::String(note.clone()).to_string());
                }
            }
            out.push('}');
            Ok((out, page.hits.len()))
        })
        .await?;
    let (body, returned) = body;
    let mut response = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    // For the meta-log (`audit.query`): how many events this answer disclosed.
    response.extensions_mut().insert(crate::auth::Returned {
        entries: returned as u64,
        index: None,
        withheld: false,
    });
    Ok(response)
}

/// Appends one result: `{"index":…,"leaf_hash":…,["inclusion_proof":[…],]` and the stored
/// event's members. The stored event is canonical JSON, so it starts with `{` and has
/// members; splicing keeps it byte-identical to what the leaf hash covers.
fn result_json(out: &mut String, index: u64, leaf: &Hash, proof: Option<Vec<Hash>>, entry: &[u8]) {
    let _ = write!(
        out,
        "{{\"index\":{index},\"leaf_hash\":\"{}\"",
        leaf.to_base64()
    );
    if let Some(hashes) = proof {
        out.push_str(",\"inclusion_proof\":[");
        for (k, h) in hashes.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{}\"", h.to_base64());
        }
        out.push(']');
    }
    match std::str::from_utf8(entry)
        .ok()
        .and_then(|e| e.strip_prefix('{'))
    {
        Some(rest) if rest != "}" => {
            out.push(',');
            out.push_str(rest);
        }
        // Not an event (the index never returns such entries): give it whole.
        _ => {
            out.push_str(",\"entry\":");
            out.push_str(&Value::String(String::from_utf8_lossy(entry).into_owned()).to_string());
            out.push('}');
        }
    }
}

/// `GET /v1/events/count?…&group_by=…`: `{"total", "groups", "index_lag"}`.
///
/// A reader's counts are confined to its tenants (see [`confine`]).
///
/// # Errors
/// 400 naming a bad parameter; 403 naming a tenant the reader may not read; 503 without an
/// index.
pub async fn count(
    State(state): State<AppState>,
    caller: Caller,
    raw: RawParams,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(raw, &[&FILTER_PARAMS, &["group_by"]])?;
    let index = index_of(&state)?;
    let filter = params.filter_for(&caller)?;
    let group = match params.get("group_by") {
        None => None,
        Some("hour") => Some(GroupBy::Hour),
        Some(g) => Some(GroupBy::Field(Field::from_name(g).ok_or_else(|| {
            let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
            ApiError::BadRequest(format!(
                "the query parameter group_by must be hour or one of {}, got {g:?}",
                names.join(", ")
            ))
        })?)),
    };
    let (counts, lag) = state
        .with_store(move |store| {
            let c = index.count(&filter, group, None);
            let lag = store.size().saturating_sub(c.indexed);
            Ok((c, lag))
        })
        .await?;
    Ok(Json(json!({
        "total": counts.total,
        "groups": counts.groups,
        "index_lag": lag,
    })))
}
