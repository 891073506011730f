//! The Kubernetes audit webhook and OPA decision-log receivers, fed the sample payloads in
//! shared/testdata byte for byte, gzip-compressed, and broken in the ways senders break them.

use std::io::Write;

use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
use serde_json::{json, Value};

use crate::common::{start, start_with, TestLog};

const K8S: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/testdata/k8s-audit/"
);
const OPA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/testdata/opa-decision-logs/"
);

/// Every audit Event sample, as (file name, bytes).
fn k8s_samples() -> Vec<(String, Vec<u8>)> {
    let mut samples: Vec<(String, Vec<u8>)> = std::fs::read_dir(K8S)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    samples.sort();
    assert_eq!(samples.len(), 6, "the k8s-audit samples");
    samples
}

/// An EventList as kube-apiserver's webhook sends it, with each item's bytes as given.
fn event_list(items: &[&[u8]]) -> Vec<u8> {
    let mut body =
        br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":["#.to_vec();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item.trim_ascii());
    }
    body.extend_from_slice(b"]}");
    body
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

async fn post(log: &TestLog, path: &str, body: Vec<u8>, gzipped: bool) -> (u16, Value) {
    let mut req = log
        .client
        .post(format!("{}{path}", log.url))
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    if gzipped {
        req = req.header(CONTENT_ENCODING, "gzip");
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn stored(log: &TestLog, index: u64) -> Value {
    serde_json::from_slice(&log.entry(index).await).unwrap()
}

#[tokio::test]
async fn k8s_samples_are_stored_verbatim_and_mapped() {
    let log = start().await;
    let samples = k8s_samples();
    let items: Vec<&[u8]> = samples.iter().map(|(_, b)| b.trim_ascii()).collect();
    let (status, report) = post(&log, "/v1/ingest/kubernetes", event_list(&items), false).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["source"], "kubernetes");
    assert_eq!(
        (
            &report["received"],
            &report["accepted"],
            &report["rejected"]
        ),
        (&json!(6), &json!(6), &json!(0))
    );
    let mut by_file = std::collections::HashMap::new();
    for (n, (name, bytes)) in samples.iter().enumerate() {
        let entry = &report["entries"][n];
        assert_eq!(entry["record"], n);
        let index = entry["index"].as_u64().unwrap();
        let event = stored(&log, index).await;
        assert_eq!(event["source"], "kubernetes", "{name}");
        // The record, byte for byte, in `original`.
        assert_eq!(
            event["original"].as_str().unwrap().as_bytes(),
            bytes.trim_ascii(),
            "{name}"
        );
        let sample: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(event["context"]["audit_id"], sample["auditID"], "{name}");
        assert_eq!(event["actor"]["id"], sample["user"]["username"], "{name}");
        assert_eq!(
            event["action"],
            format!("k8s.{}", sample["verb"].as_str().unwrap()),
            "{name}"
        );
        by_file.insert(name.clone(), event);
    }
    let forbidden = &by_file["openshift-clo-forbidden-anonymous.json"];
    assert_eq!(forbidden["outcome"], "deny");
    assert_eq!(forbidden["resource"], json!({"type": "url", "id": "/"}));
    assert_eq!(forbidden["actor"]["ip"], "10.128.0.1");
    assert_eq!(forbidden["context"]["response_code"], 403);
    assert_eq!(forbidden["client_time"], "2021-07-06T08:26:58.687Z");

    let sa = &by_file["openshift-clo-rbac-allowed-serviceaccount.json"];
    assert_eq!(sa["outcome"], "allow");
    assert_eq!(sa["actor"]["type"], "service");
    assert_eq!(
        sa["resource"],
        json!({"type": "serviceaccounts", "id": "openshift-kube-storage-version-migrator/kube-storage-version-migrator-sa"})
    );
    assert_eq!(
        sa["policy"]["id"],
        "ClusterRoleBinding/system:openshift:operator:kube-storage-version-migrator-operator"
    );
    assert_eq!(sa["context"]["rbac_role"], "ClusterRole/cluster-admin");
    assert!(sa["reason"]
        .as_str()
        .unwrap()
        .starts_with("RBAC: allowed by"));

    let exec = &by_file["falco-exec_pod.json"];
    assert_eq!(exec["resource"]["type"], "pods/exec");
    assert_eq!(
        exec["resource"]["id"],
        "default/nginx-deployment-7998647bdf-phvq7"
    );
    let crb = &by_file["falco-attach_cluster_admin_role.json"];
    assert_eq!(
        crb["resource"],
        json!({"type": "clusterrolebindings.rbac.authorization.k8s.io", "id": "some-reader-binding"})
    );
    // 2018 timestamps are kept as the client time, flagged as far from the log's time.
    assert_eq!(crb["client_time"], "2018-10-26T14:26:34.242498Z");
    assert_eq!(crb["client_time_skewed"], true);
}

#[tokio::test]
async fn k8s_single_events_replayed_byte_for_byte_and_retries_are_duplicates() {
    let log = start().await;
    let mut first = Vec::new();
    for (name, bytes) in k8s_samples() {
        // A lone Event, exactly the sample file (the log backend's line form).
        let (status, report) = post(&log, "/v1/ingest/kubernetes", bytes.clone(), false).await;
        assert_eq!(status, 200, "{name}: {report}");
        first.push(report["entries"][0].clone());
    }
    // The same records again, batched and gzip-compressed: every one is a duplicate.
    let samples = k8s_samples();
    let items: Vec<&[u8]> = samples.iter().map(|(_, b)| b.as_slice()).collect();
    let (status, report) = post(
        &log,
        "/v1/ingest/kubernetes",
        gzip(&event_list(&items)),
        true,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    for (n, entry) in report["entries"].as_array().unwrap().iter().enumerate() {
        assert_eq!(entry["duplicate"], true);
        assert_eq!(entry["index"], first[n]["index"]);
        assert_eq!(entry["id"], first[n]["id"]);
    }
    assert_eq!(log.store.size(), 6);
}

#[tokio::test]
async fn k8s_bad_records_are_named_and_the_rest_stored() {
    let log = start().await;
    let samples = k8s_samples();
    let good = samples[0].1.trim_ascii();
    let no_user = br#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","stage":"ResponseComplete","verb":"get"}"#;
    let wrong_type = br#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","stage":"ResponseComplete","verb":["get"],"user":{"username":"u"}}"#;
    let wrong_kind = br#"{"kind":"Pod","apiVersion":"v1"}"#;
    let huge_uri = format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"big","stage":"ResponseComplete","verb":"get","user":{{"username":"u"}},"requestURI":"/{}"}}"#,
        "a".repeat(70_000)
    );
    let body = event_list(&[no_user, good, wrong_type, wrong_kind, huge_uri.as_bytes()]);
    let (status, report) = post(&log, "/v1/ingest/kubernetes", body, false).await;
    assert_eq!(status, 400, "{report}");
    assert_eq!(
        (
            &report["received"],
            &report["accepted"],
            &report["rejected"]
        ),
        (&json!(5), &json!(1), &json!(4))
    );
    assert_eq!(
        report["error"],
        "4 of 5 records were rejected and not stored; the other 1 are stored"
    );
    assert_eq!(report["entries"][0]["record"], 1);
    let problems = report["problems"].as_array().unwrap();
    let summary: Vec<(u64, &str)> = problems
        .iter()
        .map(|p| (p["record"].as_u64().unwrap(), p["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [(0, "user.username"), (2, "$"), (3, "kind"), (4, "event:$")]
    );
    assert!(problems[1]["message"]
        .as_str()
        .unwrap()
        .contains("invalid type"));
    assert!(problems[3]["message"]
        .as_str()
        .unwrap()
        .contains("the limit is 65535 bytes"));
    // What the report says is stored is stored, and nothing else.
    assert_eq!(log.store.size(), 1);
    let event = stored(&log, 0).await;
    assert_eq!(event["original"].as_str().unwrap().as_bytes(), good);
}

#[tokio::test]
async fn k8s_bodies_that_are_not_event_lists_are_refused_whole() {
    let log = start().await;
    let samples = k8s_samples();
    let list = event_list(&[samples[0].1.as_slice()]);
    let zipped = gzip(&list);
    let cases: Vec<(Vec<u8>, bool, u16, &str)> = vec![
        (
            b"{not json".to_vec(),
            false,
            400,
            "not an audit.k8s.io/v1 EventList",
        ),
        (
            br#"{"kind":"PodList","items":[]}"#.to_vec(),
            false,
            400,
            "got kind \"PodList\"",
        ),
        (
            br#"{"kind":"EventList","apiVersion":"v1","items":[]}"#.to_vec(),
            false,
            400,
            "apiVersion \"v1\"",
        ),
        (
            br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}"#.to_vec(),
            false,
            400,
            "holds no events",
        ),
        (zipped[..zipped.len() - 9].to_vec(), true, 400, "truncated"),
        (list.clone(), true, 400, "not valid gzip"),
    ];
    for (body, gzipped, want_status, want_message) in cases {
        let (status, answer) = post(&log, "/v1/ingest/kubernetes", body, gzipped).await;
        assert_eq!(status, want_status, "{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains(want_message),
            "{error:?} lacks {want_message:?}"
        );
    }
    assert_eq!(log.store.size(), 0);
}

#[tokio::test]
async fn oversize_and_gzip_bombs_are_refused() {
    let log = start_with(|c| {
        c.max_body_bytes = 64 * 1024;
        c.max_decoded_bytes = 1 << 20;
    })
    .await;
    let samples = k8s_samples();
    let item = samples[0].1.trim_ascii();
    let many: Vec<&[u8]> = std::iter::repeat_n(item, 200).collect();
    let (status, answer) = post(&log, "/v1/ingest/kubernetes", event_list(&many), false).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["limit"], 64 * 1024);
    // 32 MiB of whitespace inside a valid list, compressed to a few KiB.
    let mut bomb = br#"{"kind":"EventList","items":["#.to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 32 << 20));
    bomb.extend_from_slice(b"]}");
    let zipped = gzip(&bomb);
    assert!(zipped.len() < 64 * 1024);
    let (status, answer) = post(&log, "/v1/ingest/opa", zipped, true).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("decodes to more than"));
    let resp = log
        .client
        .post(format!("{}/v1/ingest/opa", log.url))
        .header(CONTENT_ENCODING, "br")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    assert_eq!(log.store.size(), 0);
}

#[tokio::test]
async fn opa_upload_sample_gzip_is_stored_verbatim_and_mapped() {
    let log = start().await;
    let body = std::fs::read(format!("{OPA}upload-body-example.json")).unwrap();
    let (status, report) = post(&log, "/v1/ingest/opa", gzip(&body), true).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["source"], "opa");
    let event = stored(&log, 0).await;
    let sample: Value = serde_json::from_slice(&body).unwrap();
    let decision = &sample[0];
    // The original is the array element's text exactly as it appears in the upload.
    let text = std::str::from_utf8(&body).unwrap();
    let start = text.find('{').unwrap();
    let end = text.rfind('}').unwrap();
    assert_eq!(event["original"].as_str().unwrap(), &text[start..=end]);
    assert_eq!(event["source"], "opa");
    assert_eq!(event["outcome"], "allow"); // "result": "true", as documented
    assert_eq!(event["action"], "http.get");
    assert_eq!(
        event["resource"],
        json!({"type": "http.path", "id": "/salary/bob"})
    );
    assert_eq!(
        event["policy"],
        json!({"id": "http/example/authz/allow", "version": "authz@W3sibCI6InN5cy9jYXRhbG9nIiwicyI6NDA3MX1d"})
    );
    assert_eq!(event["context"]["decision_id"], decision["decision_id"]);
    assert_eq!(event["context"]["labels"], decision["labels"]);
    assert_eq!(
        event["actor"],
        json!({"type": "service", "id": "[::1]:59943", "ip": "::1"})
    );
    assert_eq!(event["client_time"], "2018-01-01T00:00:00.000000Z");
}

#[tokio::test]
async fn opa_masking_samples_and_broken_records() {
    let log = start().await;
    let erased = std::fs::read(format!("{OPA}masking-erased-example.partial.json")).unwrap();
    let masked = std::fs::read(format!("{OPA}masking-masked-example.partial.json")).unwrap();
    let mut body = b"[".to_vec();
    body.extend_from_slice(&erased);
    body.extend_from_slice(b",42,");
    body.extend_from_slice(&masked);
    body.extend_from_slice(br#",{"decision_id":7}]"#);
    let (status, report) = post(&log, "/v1/ingest/opa", body, false).await;
    assert_eq!(status, 400, "{report}");
    assert_eq!(
        (&report["accepted"], &report["rejected"]),
        (&json!(2), &json!(2))
    );
    let paths: Vec<(u64, &str)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["record"].as_u64().unwrap(), p["path"].as_str().unwrap()))
        .collect();
    assert_eq!(paths, [(1, "$"), (3, "$")]);
    // Two decisions with the same decision_id but different content are both kept.
    let first = stored(&log, 0).await;
    let second = stored(&log, 1).await;
    assert_eq!(
        first["original"].as_str().unwrap().as_bytes(),
        erased.trim_ascii()
    );
    assert_eq!(
        second["original"].as_str().unwrap().as_bytes(),
        masked.trim_ascii()
    );
    assert_eq!(first["actor"]["type"], "service");
    assert_eq!(second["context"]["masked"], json!(["/input/password"]));
    assert_eq!(first["outcome"], "allow");
    assert_eq!(first["resource"], json!({"type": "resource", "id": "user"}));
    // A body that is not an array is refused whole.
    let (status, answer) = post(
        &log,
        "/v1/ingest/opa",
        br#"{"decision_id":"x"}"#.to_vec(),
        false,
    )
    .await;
    assert_eq!(status, 400);
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("not a JSON array"));
}

#[tokio::test]
async fn clients_may_not_send_original() {
    let log = start().await;
    let (status, answer) = log
        .post(
            Some("application/json"),
            json!({"actor": {"type": "user", "id": "u"}, "action": "a.b", "resource": {"type": "t", "id": "i"}, "outcome": "allow", "original": "forged"})
                .to_string(),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(answer["problems"][0]["path"], "$.original");
    assert!(answer["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("integrations"));
    assert_eq!(log.store.size(), 0);
}
