//! The middleware every request passes through (see the [module documentation](super)).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use stele_auth::{Principal, Role};

use super::meta::RequestInfo;
use super::routes::{rule_for, RouteRule};
use super::tokens::{self, AuthFailure};
use super::{Auth, Caller, Returned};
use crate::error::ApiError;
use crate::state::AppState;

/// Authenticates, rate-limits and authorizes the request, runs it, and meta-logs it if the
/// route is audited. With authentication off, marks the request [`Caller::Open`] and runs it.
pub(crate) async fn enforce(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(auth) = state.auth().cloned() else {
        req.extensions_mut().insert(Caller::Open);
        return next.run(req).await;
    };
    // Requests no route matches are answered 404/405 by the fallbacks; nothing to protect.
    // A cheap handle (shared string): the route is copied out only when a record needs it.
    let Some(route) = req.extensions().get::<MatchedPath>().cloned() else {
        req.extensions_mut().insert(Caller::Anonymous);
        return next.run(req).await;
    };
    let rule = rule_for(req.method(), route.as_str(), req.uri().path());
    let Some(roles) = rule.access.roles(auth.settings()) else {
        req.extensions_mut().insert(Caller::Anonymous);
        return next.run(req).await;
    };
    // What a meta-log record says of the request: taken now (the request moves on below),
    // but only for audited routes; a refusal builds its own.
    let info = rule.audit.is_some().then(|| request_info(&req, &route));
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let refuse = |e: ApiError| refusal(has_body, e);

    let table = match auth.0.tokens.current() {
        Ok((table, reloaded)) => {
            if reloaded {
                record_history(&auth, &table).await;
            }
            table
        }
        Err(e) => return refuse(tokens::unavailable(e)),
    };
    let now = match crate::handlers::v1::events::now() {
        Ok(now) => now,
        Err(e) => return refuse(e),
    };
    let certificate = req
        .extensions()
        .get::<crate::tls::PeerCertificate>()
        .map(|c| c.0);
    let principal = match tokens::authenticate(
        &table,
        req.headers().get(header::AUTHORIZATION),
        certificate.as_ref(),
        now,
    ) {
        Ok(p) => p,
        Err(failure) => {
            let claimed = match &failure {
                AuthFailure::Invalid { claimed } => {
                    claimed.as_ref().map(|c| ("claimed_token", c.to_string()))
                }
                AuthFailure::UnknownCertificate { sha256 } => {
                    Some(("claimed_certificate", sha256.to_hex()))
                }
                _ => None,
            };
            record_failure_later(
                &auth,
                &request_info(&req, &route),
                &failure.actor_id(),
                StatusCode::UNAUTHORIZED,
                &failure.message(),
                claimed.as_ref().map(|(k, v)| (*k, v.as_str())),
            );
            return refuse(failure.into_api_error());
        }
    };
    drop(table);

    if let Some(limiter) = &auth.0.limiter {
        if let Err(not_until) = limiter.check_key(&principal.id) {
            let wait = not_until.wait_time_from(auth.0.clock.now());
            return refuse(ApiError::TooManyRequests {
                retry_after_secs: wait.as_secs().saturating_add(1),
            });
        }
    }

    if !roles.contains(&principal.role) {
        let denied = ApiError::WrongRole {
            needed: roles.to_vec(),
            has: principal.role,
        };
        record_failure_later(
            &auth,
            &request_info(&req, &route),
            &principal.id,
            StatusCode::FORBIDDEN,
            &denied.to_string(),
            None,
        );
        return refuse(denied);
    }

    req.extensions_mut()
        .insert(Caller::Principal(Arc::clone(&principal)));
    let response = next.run(req).await;
    match &info {
        Some(info) => record_request(&auth, rule, &principal, info, response).await,
        None => response,
    }
}

/// Meta-logs an audited request before its answer leaves: if the log refuses the record, the
/// answer is withheld (503), so no read goes unrecorded.
async fn record_request(
    auth: &Auth,
    rule: RouteRule,
    principal: &Principal,
    info: &RequestInfo,
    response: Response,
) -> Response {
    let Some(audit) = rule.audit else {
        return response;
    };
    let status = response.status();
    if audit.handler_records_success && status.is_success() {
        return response;
    }
    let returned = response.extensions().get::<Returned>().copied();
    match auth
        .0
        .meta
        .request(&audit, principal, info, status, returned)
        .await
    {
        Ok(()) => response,
        Err(e) => {
            tracing::error!(error = %e, action = audit.action, "cannot record an audited request; withholding the answer");
            ApiError::Unavailable(format!(
                "the answer is withheld because the log cannot record this {} ({e})",
                audit.action
            ))
            .into_response()
        }
    }
}

/// Meta-logs a refused request in the background (within the failure budget): the refusal
/// is answered at once, whatever the log does.
fn record_failure_later(
    auth: &Auth,
    info: &RequestInfo,
    actor_id: &str,
    status: StatusCode,
    reason: &str,
    claimed: Option<(&str, &str)>,
) {
    let Some(event) = auth.0.meta.failure(info, actor_id, status, reason, claimed) else {
        return;
    };
    let auth = auth.clone();
    tokio::spawn(async move {
        if let Err(e) = auth.0.meta.append_one(event).await {
            tracing::warn!(error = %e, "cannot record an authentication failure");
        }
    });
}

/// Records the token history after the token file changed under us, before the request that
/// noticed the change is served: a token made offline is in the log before its first use.
/// A log that refuses the record does not stop the request (the next change, or restart,
/// records it).
async fn record_history(auth: &Auth, table: &super::tokens::Table) {
    match auth.0.meta.token_history(table).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(events = n, "recorded token changes made outside the server"),
        Err(e) => tracing::warn!(error = %e, "cannot record token changes"),
    }
}

/// The answer to a request refused before its body was read: with `Connection: close` when
/// it has a body, since the unread rest of it makes the connection unusable for another
/// request, and a client that reuses it would fail.
fn refusal(has_body: bool, e: ApiError) -> Response {
    let mut response = e.into_response();
    if has_body {
        response.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

fn request_info(req: &Request, route: &MatchedPath) -> RequestInfo {
    RequestInfo {
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        route: route.as_str().to_owned(),
        ip: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

/// The roles as a human list: "reader or auditor".
pub(crate) fn role_list(roles: &[Role]) -> String {
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    match names.split_last() {
        None => "no".to_owned(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}
