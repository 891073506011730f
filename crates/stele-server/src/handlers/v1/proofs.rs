//! `GET /v1/proofs/inclusion` and `GET /v1/proofs/consistency` (RFC 9162 §2.1.3, §2.1.4).
//!
//! Proofs are answered for any tree size up to the log's current size; the signed checkpoint
//! is included when the requested size is the latest checkpoint's, so a client can verify
//! against a signed root in one round trip.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use stele_core::Hash;
use uuid::Uuid;

use crate::auth::{Caller, Returned};
use crate::error::ApiError;
use crate::handlers::v1::events::withheld;
use crate::state::AppState;

/// Answer of `GET /v1/proofs/inclusion`.
#[derive(Debug, Serialize)]
pub struct InclusionResponse {
    /// Log index of the entry.
    pub index: u64,
    /// Size of the tree the proof is for.
    pub tree_size: u64,
    /// RFC 6962 leaf hash of the entry.
    pub leaf_hash: Hash,
    /// The audit path, leaf to root.
    pub hashes: Vec<Hash>,
    /// The latest signed checkpoint, when its size is `tree_size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

/// Answer of `GET /v1/proofs/consistency`.
#[derive(Debug, Serialize)]
pub struct ConsistencyResponse {
    /// The older tree size.
    pub from: u64,
    /// The newer tree size.
    pub to: u64,
    /// The consistency proof.
    pub hashes: Vec<Hash>,
    /// The latest signed checkpoint, when its size is `to`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// `GET /v1/proofs/inclusion?index=I|id=UUID[&tree_size=N]`.
///
/// # Errors
///
/// 400 unless exactly one of `index`, `id` and `leaf_hash` is given, `index < tree_size` and
/// `tree_size` is at most the log's size; 404 for an unknown id or when no checkpoint exists
/// to default `tree_size` to. A reader gets proofs only for entries of its tenants; for any
/// other entry, and for an index past the log, it gets the 404 of a missing entry.
pub async fn inclusion(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    check_known(&params, &["index", "id", "leaf_hash", "tree_size"])?;
    let latest = state.store().latest_checkpoint();
    let size = state.store().size();
    let tree_size = match number(&params, "tree_size")? {
        Some(n) => n,
        None => latest_size(latest.as_ref().map(|c| c.size))?,
    };
    if tree_size > size {
        return Err(ApiError::BadRequest(format!(
            "tree_size {tree_size} is larger than the log, which holds {size} entries"
        )));
    }
    // What a missing entry is answered with, by how it was asked for.
    let missing: ApiError;
    let index = match (
        number(&params, "index")?,
        params.get("id"),
        params.get("leaf_hash"),
    ) {
        (Some(index), None, None) => {
            missing = ApiError::NotFound(format!("no entry at index {index}"));
            index
        }
        (None, Some(id), None) => {
            let id = Uuid::try_parse(id)
                .map_err(|_| ApiError::BadRequest(format!("id {id:?} is not a UUID")))?;
            missing = ApiError::NotFound(format!("no event with id {id}"));
            match state
                .with_store(move |s| s.index_of(&id.into_bytes()))
                .await?
            {
                Some(index) => index,
                None => return Err(missing),
            }
        }
        (None, None, Some(leaf)) => {
            let hash = Hash::from_base64(leaf)
                .or_else(|| Hash::from_hex(leaf))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "leaf_hash {leaf:?} is not a 32-byte hash in base64 or hex"
                    ))
                })?;
            missing = ApiError::NotFound(format!("no event with leaf hash {hash}"));
            match state.with_store(move |s| s.index_of_leaf(&hash)).await? {
                Some(index) => index,
                None => return Err(missing),
            }
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of the query parameters index, id and leaf_hash".to_owned(),
            ))
        }
    };
    if caller.is_tenant_bound() {
        // Checked before the tree size, so an answer never depends on whether the entry of
        // another tenant exists.
        if index >= size {
            return Err(missing);
        }
        let entry = state.with_store(move |s| s.entry(index)).await?;
        if !caller.may_see(stele_auth::policy::entry_tenant(&entry).as_deref()) {
            return Ok(withheld(missing, index));
        }
    }
    if index >= tree_size {
        return Err(ApiError::BadRequest(format!(
            "index {index} is not in a tree of size {tree_size}"
        )));
    }
    let (leaf_hash, hashes) = state
        .with_store(move |s| Ok((s.leaf_hash(index)?, s.inclusion_proof(index, tree_size)?)))
        .await?;
    let mut response = Json(InclusionResponse {
        index,
        tree_size,
        leaf_hash,
        hashes,
        checkpoint: latest.filter(|c| c.size == tree_size).map(|c| c.note),
    })
    .into_response();
    response.extensions_mut().insert(Returned {
        entries: 1,
        index: Some(index),
        withheld: false,
    });
    Ok(response)
}

/// `GET /v1/proofs/consistency?from=A[&to=B]`.
///
/// # Errors
///
/// 400 unless `0 < from <= to <= size`; 404 when no checkpoint exists to default `to` to.
pub async fn consistency(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<ConsistencyResponse>, ApiError> {
    let Query(params) = params?;
    check_known(&params, &["from", "to"])?;
    let latest = state.store().latest_checkpoint();
    let size = state.store().size();
    let from = number(&params, "from")?
        .ok_or_else(|| ApiError::BadRequest("the query parameter from is required".to_owned()))?;
    let to = match number(&params, "to")? {
        Some(n) => n,
        None => latest_size(latest.as_ref().map(|c| c.size))?,
    };
    if from == 0 {
        return Err(ApiError::BadRequest(
            "from must be at least 1: nothing proves consistency with the empty tree".to_owned(),
        ));
    }
    if from > to {
        return Err(ApiError::BadRequest(format!(
            "from {from} is larger than to {to}"
        )));
    }
    if to > size {
        return Err(ApiError::BadRequest(format!(
            "to {to} is larger than the log, which holds {size} entries"
        )));
    }
    let hashes = state
        .with_store(move |s| s.consistency_proof(from, to))
        .await?;
    Ok(Json(ConsistencyResponse {
        from,
        to,
        hashes,
        checkpoint: latest.filter(|c| c.size == to).map(|c| c.note),
    }))
}

fn latest_size(size: Option<u64>) -> Result<u64, ApiError> {
    size.ok_or_else(|| ApiError::NotFound("no checkpoint has been published yet".to_owned()))
}

fn number(params: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "the query parameter {name} must be a decimal integer, got {v:?}"
                ))
            })
        })
        .transpose()
}

/// Refuses parameters the route does not know, so a typo is not silently ignored.
fn check_known(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(ApiError::BadRequest(format!(
            "unknown query parameter {unknown:?}; expected one of {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}
