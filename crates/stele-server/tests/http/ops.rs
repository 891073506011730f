//! Operational routes, unknown routes and methods.

use serde_json::Value;

use crate::common::{event, start, ORIGIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_log_info_and_openapi() {
    let log = start().await;
    log.append(&Value::Array((0..3).map(event).collect())).await;
    let (status, health) = log.get_json("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["size"], 3);

    let (_, note) = log.checkpoint().await;
    let (status, info) = log.get_json("/v1/log").await;
    assert_eq!(status, 200);
    assert_eq!(info["origin"], ORIGIN);
    assert_eq!(info["verifier_key"], log.verifier.to_verifier_key());
    assert_eq!(info["size"], 3);
    assert_eq!(info["checkpoint"], note.as_str());

    let (status, doc) = log.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/v1/events"]["post"].is_object());
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route() {
    let log = start().await;
    log.append(&event(0)).await;
    log.get("/v1/events/0").await;
    log.get("/v1/events/7").await;
    let resp = log.get("/metrics").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    let line = |labels: &str| {
        text.lines()
            .find(|l| l.starts_with("stele_http_requests_total{") && l.contains(labels))
            .unwrap_or_else(|| panic!("no series {labels} in\n{text}"))
            .to_owned()
    };
    assert!(line(r#"route="/v1/events/{index_or_id}",status="200""#).ends_with(" 1"));
    assert!(line(r#"route="/v1/events/{index_or_id}",status="404""#).ends_with(" 1"));
    assert!(line(r#"method="POST",route="/v1/events",status="200""#).ends_with(" 1"));
    assert!(text.contains("stele_http_request_duration_seconds_bucket{"));
    // The store's own metrics are in the same exposition.
    assert!(
        text.lines().any(|l| l == "stele_store_tree_size 1"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("stele_store_appended_entries_total 1")),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"));
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods() {
    let log = start().await;
    log.append(&event(0)).await;
    let (status, answer) = log.get_json("/v2/events").await;
    assert_eq!(status, 404);
    assert!(answer["error"].as_str().unwrap().contains("/v2/events"));

    // The log is append-only: no update or delete, whatever the path.
    for (method, path) in [
        (reqwest::Method::DELETE, "/v1/events/0"),
        (reqwest::Method::PUT, "/v1/events/0"),
        (reqwest::Method::PATCH, "/v1/events/0"),
        (reqwest::Method::DELETE, "/v1/events"),
        (reqwest::Method::POST, "/checkpoint"),
    ] {
        let resp = log
            .client
            .request(method.clone(), format!("{}{path}", log.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 405, "{method} {path}");
        assert!(resp.headers().contains_key("allow"), "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].is_string());
    }
    assert_eq!(log.store.size(), 1);
    log.stop().await;
}
