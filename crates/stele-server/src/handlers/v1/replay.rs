//! `GET /v1/replay?as_of=T&principal=ID`, `GET /v1/replay?as_of=T&role=NAME[&scope_type=…
//! [&scope_id=…]]` and `GET /v1/replay?as_of=T&permission=P[&scope_type=…[&scope_id=…]]`: the
//! grants in force at an instant, each with the log entry that established it and the
//! permissions its role gave then (conventions in `docs/query.md`).

use axum::extract::State;
use axum::Json;
use serde_json::Value;
use stele_index::ScopeFilter;

use crate::error::ApiError;
use crate::handlers::v1::query::{index_of, Params, RawParams};
use crate::state::AppState;

/// `GET /v1/replay`.
///
/// # Errors
/// 400 naming a missing, conflicting or malformed parameter, or when `proof_tree_size` does
/// not include an establishing entry; 503 without an index.
pub async fn replay(
    State(state): State<AppState>,
    raw: RawParams,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(
        raw,
        &[&[
            "as_of",
            "principal",
            "role",
            "permission",
            "scope_type",
            "scope_id",
            "proof_tree_size",
        ]],
    )?;
    let index = index_of(&state)?;
    let as_of = params
        .instant("as_of")?
        .ok_or_else(|| ApiError::BadRequest("the query parameter as_of is required".to_owned()))?;
    let principal = params.get("principal").map(str::to_owned);
    let role = params.get("role").map(str::to_owned);
    let permission = params.get("permission").map(str::to_owned);
    let scopes = ScopeFilter {
        kind: params.get("scope_type").map(str::to_owned),
        id: params.get("scope_id").map(str::to_owned),
    };
    if scopes.id.is_some() && scopes.kind.is_none() {
        return Err(ApiError::BadRequest(
            "the query parameter scope_id needs scope_type".to_owned(),
        ));
    }
    if principal.is_some() && (scopes.kind.is_some()) {
        return Err(ApiError::BadRequest(
            "the query parameters scope_type and scope_id go with role or permission, not principal"
                .to_owned(),
        ));
    }
    let proof_size = params.proof_tree_size(&state)?;
    let answer = state
        .with_store(move |store| {
            let mut value =
                match (principal, role, permission) {
                    (Some(p), None, None) => {
                        let mut r = index.replay_principal(&p, as_of).map_err(store_err)?;
                        prove_grants(store, &mut r.roles, proof_size)?;
                        serde_json::to_value(r)
                    }
                    (None, Some(role), None) => {
                        let mut r = index
                            .replay_role(&role, &scopes, as_of)
                            .map_err(store_err)?;
                        prove_grants(store, &mut r.principals, proof_size)?;
                        serde_json::to_value(r)
                    }
                    (None, None, Some(permission)) => {
                        let mut r = index
                            .replay_permission(&permission, &scopes, as_of)
                            .map_err(store_err)?;
                        prove_grants(store, &mut r.principals, proof_size)?;
                        serde_json::to_value(r)
                    }
                    _ => return Err(stele_store::StoreError::InvalidArgument(
                        "give exactly one of the query parameters principal, role and permission"
                            .to_owned(),
                    )),
                };
            // How far the index was behind the log once the replay had run.
            let lag = index.lag();
            if let Ok(Value::Object(map)) = &mut value {
                map.insert("index_lag".to_owned(), Value::from(lag));
                if let Some(n) = proof_size {
                    map.insert("proof_tree_size".to_owned(), Value::from(n));
                }
            }
            value.map_err(|e| stele_store::StoreError::InvalidArgument(e.to_string()))
        })
        .await?;
    Ok(Json(answer))
}

/// With `proof_tree_size`, proves each grant's establishing entry and the `policy.update`
/// that defined its role's permissions.
fn prove_grants(
    store: &stele_store::Store,
    grants: &mut [stele_index::Grant],
    proof_size: Option<u64>,
) -> Result<(), stele_store::StoreError> {
    let Some(n) = proof_size else {
        return Ok(());
    };
    for g in grants {
        g.inclusion_proof = Some(prove(store, g.index, n)?);
        if let Some(p) = &mut g.permissions {
            p.inclusion_proof = Some(prove(store, p.index, n)?);
        }
    }
    Ok(())
}

fn prove(
    store: &stele_store::Store,
    index: u64,
    size: u64,
) -> Result<Vec<stele_core::Hash>, stele_store::StoreError> {
    if index >= size {
        return Err(stele_store::StoreError::InvalidArgument(format!(
            "the query parameter proof_tree_size {size} does not include entry {index}, on which a replayed grant rests; use a later tree size"
        )));
    }
    store.inclusion_proof(index, size)
}

fn store_err(e: stele_index::IndexError) -> stele_store::StoreError {
    match e {
        stele_index::IndexError::Store(e) => e,
        other => stele_store::StoreError::InvalidArgument(other.to_string()),
    }
}
