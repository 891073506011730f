//! The OCSF mapping checked against the OCSF schema files in shared/testdata/ocsf: every
//! required attribute of the class is present, every attribute emitted is one the class (or
//! the dictionary, for profile attributes) defines, activity ids come from the class's enum,
//! and the classification numbers agree with the schema.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::collections::BTreeSet;

use serde_json::{json, Value};
use stele_core::event::{validate, validate_ingested, EventLimits};
use stele_core::timestamp::Timestamp;
use stele_server::ocsf;
use uuid::Uuid;

const OCSF: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/testdata/ocsf/"
);

fn load(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{OCSF}{name}")).unwrap()).unwrap()
}

/// A stored entry for `event`, as the log would hold it.
fn stored(event: Value) -> Vec<u8> {
    let limits = EventLimits::default();
    let ev = if event.get("original").is_some() {
        validate_ingested(event, &limits).unwrap()
    } else {
        validate(&event, &limits).unwrap()
    };
    ev.encode(
        Uuid::now_v7(),
        Timestamp::from_unix_nanos(1_795_460_599_123_456_789),
        &limits,
    )
    .unwrap()
    .bytes
}

fn check(ocsf_event: &Value, class_key: &str, summary: &Value, dictionary: &Value) {
    let class = &summary["classes"][class_key];
    let attributes = class["attributes"].as_array().unwrap();
    let names: BTreeSet<&str> = attributes
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    let object = ocsf_event.as_object().unwrap();
    for a in attributes {
        if a["requirement"] == "required" {
            let name = a["name"].as_str().unwrap();
            assert!(
                object.contains_key(name),
                "{class_key}: required {name} missing in {ocsf_event}"
            );
        }
    }
    let dict = dictionary["attributes"].as_object().unwrap();
    for key in object.keys() {
        assert!(
            names.contains(key.as_str()) || dict.contains_key(key),
            "{class_key}: {key} is not an OCSF attribute"
        );
    }
    let activity = ocsf_event["activity_id"].as_u64().unwrap();
    let enum_ = class["activity_id_enum"].as_object().unwrap();
    assert!(
        activity == 99 || enum_.contains_key(&activity.to_string()),
        "{class_key}: activity {activity} not in {enum_:?}"
    );
    // class_uid = category_uid * 1000 + uid; type_uid = class_uid * 100 + activity_id.
    let category = ocsf_event["category_uid"].as_u64().unwrap();
    let class_uid = ocsf_event["class_uid"].as_u64().unwrap();
    assert_eq!(class_uid, category * 1000 + class["uid"].as_u64().unwrap());
    assert_eq!(
        ocsf_event["type_uid"].as_u64().unwrap(),
        class_uid * 100 + activity
    );
    // Status values from the base event's enum.
    let base = load("events/base_event.json");
    let status = ocsf_event["status_id"].as_u64().unwrap().to_string();
    assert!(
        status == "0"
            || base["attributes"]["status_id"]["enum"]
                .get(&status)
                .is_some()
    );
    // timestamp_t is milliseconds.
    assert_eq!(ocsf_event["time"], 1_795_460_599_123u64);
    assert_eq!(ocsf_event["metadata"]["product"]["name"], "Stele");
}

#[test]
fn events_map_to_the_three_classes_as_the_schema_defines_them() {
    let summary = load("attributes-summary.json");
    let dictionary = load("dictionary.json");
    let check_ = |e: Value, class: &str| {
        let out = ocsf::from_entry(&stored(e)).unwrap();
        check(&out, class, &summary, &dictionary);
        out
    };

    let api = check_(
        json!({"actor": {"type": "user", "id": "alice", "ip": "203.0.113.7"}, "action": "document.read",
               "resource": {"type": "document", "id": "doc-9"}, "outcome": "deny", "reason": "not in finance",
               "policy": {"id": "rbac", "version": "7"}, "source": "gateway"}),
        "api_activity",
    );
    assert_eq!(
        (api["class_uid"].as_u64(), api["activity_id"].as_u64()),
        (Some(6003), Some(2))
    );
    assert_eq!(api["status_id"], 2);
    assert_eq!(api["disposition_id"], 2);
    assert_eq!(api["actor"]["user"]["uid"], "alice");
    assert_eq!(api["src_endpoint"]["ip"], "203.0.113.7");
    assert_eq!(api["resources"][0]["uid"], "doc-9");
    assert_eq!(api["policy"]["version"], "7");
    assert_eq!(api["status_detail"], "not in finance");

    let grant = check_(
        json!({"actor": {"type": "user", "id": "u-17"}, "action": "role.grant",
               "resource": {"type": "role", "id": "billing-admin"}, "outcome": "allow",
               "change": {"subject": "u-42", "role": "billing-admin"}}),
        "authorize_session",
    );
    assert_eq!(
        (grant["class_uid"].as_u64(), grant["activity_id"].as_u64()),
        (Some(3003), Some(3))
    );
    assert_eq!(grant["user"]["uid"], "u-42");
    assert_eq!(grant["iam_roles"][0]["name"], "billing-admin");
    assert_eq!(grant["unmapped"]["change"]["subject"], "u-42");

    let account = check_(
        json!({"actor": {"type": "service", "id": "scim"}, "action": "user.deactivate",
               "resource": {"type": "user", "id": "u-42", "name": "Bob"}, "outcome": "allow"}),
        "account_change",
    );
    assert_eq!(
        (
            account["class_uid"].as_u64(),
            account["activity_id"].as_u64()
        ),
        (Some(3001), Some(5))
    );
    assert_eq!(account["user"], json!({"uid": "u-42", "name": "Bob"}));

    // An ingested Kubernetes record keeps its original as raw_data.
    let k8s = check_(
        json!({"actor": {"type": "service", "id": "system:serviceaccount:a:b"}, "action": "k8s.get",
               "resource": {"type": "serviceaccounts", "id": "ns/sa"}, "outcome": "allow",
               "source": "kubernetes", "original": "{\"kind\":\"Event\"}"}),
        "api_activity",
    );
    assert_eq!(k8s["raw_data"], "{\"kind\":\"Event\"}");
    assert_eq!(k8s["api"]["service"]["name"], "kubernetes");
}
