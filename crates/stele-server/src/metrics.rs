//! HTTP metrics (requests by route and status, latency by route) and the middleware that
//! records them and logs each request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// The HTTP metric families.
pub(crate) struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
}

impl HttpMetrics {
    /// Creates the families and registers them in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "stele_http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        // 100 µs to ~3.3 s: reads are sub-millisecond, appends wait for an fsync.
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        registry.register(
            "stele_http_request_duration_seconds",
            "Time from request to response head, by method and route template",
            latency.clone(),
        );
        HttpMetrics { requests, latency }
    }
}

/// Middleware: records the request in the metrics and logs it at debug.
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Label by route template, never by raw path, to bound the number of series.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let path = req.uri().path().to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    tracing::debug!(%method, %path, status, elapsed_us = elapsed.as_micros(), "request");
    let metrics = state.http_metrics();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    metrics
        .latency
        .get_or_create(&RouteLabels { method, route })
        .observe(elapsed.as_secs_f64());
    response
}

/// Known methods by name, anything else as "other" (clients choose the method string).
fn method_label(method: &Method) -> String {
    match *method {
        Method::GET
        | Method::POST
        | Method::HEAD
        | Method::PUT
        | Method::DELETE
        | Method::PATCH
        | Method::OPTIONS => method.as_str().to_owned(),
        _ => "other".to_owned(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IngestLabels {
    source: String,
    result: String,
}

/// Records taken in by the integrations, by source and result (`accepted`, `rejected`).
pub(crate) struct IngestMetrics {
    records: Family<IngestLabels, Counter>,
}

impl IngestMetrics {
    /// Creates the family and registers it in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let records = Family::<IngestLabels, Counter>::default();
        registry.register(
            "stele_ingest_records",
            "Source records received by the integrations, by source and result",
            records.clone(),
        );
        IngestMetrics { records }
    }

    /// Counts a batch's accepted and rejected records.
    pub(crate) fn count(&self, source: &str, report: &crate::handlers::ingest::IngestReport) {
        self.add(source, "accepted", report.accepted);
        self.add(source, "rejected", report.rejected);
    }

    /// Adds `n` records of `source` with `result`.
    pub(crate) fn add(&self, source: &str, result: &str, n: usize) {
        if n == 0 {
            return;
        }
        self.records
            .get_or_create(&IngestLabels {
                source: source.to_owned(),
                result: result.to_owned(),
            })
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }
}
