//! The OTLP/HTTP logs receiver of the real binary, driven by the official OpenTelemetry
//! Python SDK and its OTLP/HTTP exporter (protobuf, plain and gzip), installed from PyPI by
//! `scripts/otel-env.sh` into target/otel-env. The events are read back through the API.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;
use stele_tests::bin::workspace_root;
use stele_tests::server::Server;

/// The venv's python, creating the venv on first use (pip install from PyPI).
fn otel_python() -> String {
    let script = workspace_root().join("scripts/otel-env.sh");
    let out = Command::new(&script)
        .output()
        .expect("running scripts/otel-env.sh");
    assert!(
        out.status.success(),
        "scripts/otel-env.sh failed (it installs the OpenTelemetry Python SDK from PyPI):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn opentelemetry_python_sdk_exports_logs_that_become_events() {
    let python = otel_python();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let run_id = uuid::Uuid::new_v4().to_string();
    let out = Command::new(&python)
        .arg(workspace_root().join("tests/otel/send_logs.py"))
        .arg(&server.url)
        .arg(&run_id)
        .output()
        .expect("running the OpenTelemetry sender");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("plain ok") && stdout.contains("gzip ok"),
        "the Python exporter failed: {stdout}\n{}\nserver stderr:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.stderr()
    );
    // SimpleLogRecordProcessor exports each record once the server has answered 200, so all
    // four are stored by now.
    assert_eq!(server.size(), 4, "{}", server.stderr());
    let events: Vec<Value> = (0..4)
        .map(|i| server.get_json(&format!("/v1/events/{i}")))
        .collect();
    for (i, exporter) in [(0, "plain"), (2, "gzip")] {
        let denied = &events[i];
        assert_eq!(
            denied["source"], "otlp",
            "record sent by the {exporter} exporter"
        );
        assert_eq!(denied["actor"]["id"], "alice");
        assert_eq!(denied["actor"]["ip"], "203.0.113.9");
        assert_eq!(denied["action"], "document.read");
        assert_eq!(denied["resource"]["type"], "document");
        assert_eq!(denied["resource"]["id"], "doc-42");
        assert_eq!(denied["outcome"], "deny");
        assert_eq!(denied["policy"]["id"], "finance-only");
        assert_eq!(denied["policy"]["version"], "12");
        assert_eq!(denied["reason"], format!("{run_id}: read of doc-42 denied"));
        assert_eq!(denied["context"]["service"], "billing-api");
        assert_eq!(denied["context"]["severity_text"], "WARN");
        // The record in OTLP/JSON, with its body and every attribute.
        let original: Value = serde_json::from_str(denied["original"].as_str().unwrap()).unwrap();
        assert_eq!(
            original["body"]["stringValue"],
            format!("{run_id}: read of doc-42 denied")
        );
        assert_eq!(original["severityNumber"], 13);
        let keys: Vec<&str> = original["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["key"].as_str().unwrap())
            .collect();
        assert!(
            keys.contains(&"stele.outcome") && keys.contains(&"enduser.id"),
            "{keys:?}"
        );
        assert!(
            original["timeUnixNano"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 0
        );
        assert!(denied["client_time"].as_str().unwrap().ends_with('Z'));

        let granted = &events[i + 1];
        assert_eq!(granted["actor"]["id"], "bob");
        assert_eq!(granted["action"], "role.grant");
        assert_eq!(granted["outcome"], "allow");
        assert_eq!(granted["resource"]["id"], "billing-api");
    }
}
