//! Search, count and replay over HTTP, against the events appended through the API.

use serde_json::{json, Value};
use stele_core::hash::leaf_hash;
use stele_core::merkle::verify_inclusion;

use crate::common::start;

fn ev(actor: &str, action: &str, outcome: &str, tenant: &str, reason: &str) -> Value {
    json!({
        "actor": {"type": "user", "id": actor, "session_id": format!("s-{actor}"), "ip": "203.0.113.7"},
        "action": action,
        "resource": {"type": "document", "id": "doc-1"},
        "outcome": outcome,
        "tenant": tenant,
        "reason": reason,
        "context": {"ticket": "INC-4711"},
    })
}

fn indexes(answer: &Value) -> Vec<u64> {
    answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_filters_pages_and_proves() {
    let log = start().await;
    let batch: Vec<Value> = (0..30)
        .map(|i| {
            let (actor, outcome) = (
                format!("user-{}", i % 3),
                if i % 4 == 0 { "deny" } else { "allow" },
            );
            let action = if i % 5 == 0 {
                "role.grant"
            } else {
                "authz.check"
            };
            ev(
                &actor,
                action,
                outcome,
                if i < 15 { "acme" } else { "globex" },
                &format!("case {i}"),
            )
        })
        .collect();
    let appended = log.append(&Value::Array(batch)).await;
    log.indexed().await;

    // Every deny of user-0, newest first; each result is the stored event plus index and leaf hash.
    let (status, answer) = log.get_json("/v1/events?actor=user-0&outcome=deny").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(indexes(&answer), [24, 12, 0]);
    assert_eq!(answer["next_cursor"], Value::Null);
    assert_eq!(answer["index_lag"], 0);
    for e in answer["events"].as_array().unwrap() {
        let i = e["index"].as_u64().unwrap();
        let stored: Value = serde_json::from_slice(&log.entry(i).await).unwrap();
        let mut rebuilt = e.clone();
        let obj = rebuilt.as_object_mut().unwrap();
        obj.remove("index");
        let leaf = obj.remove("leaf_hash").unwrap();
        assert_eq!(rebuilt, stored);
        assert_eq!(leaf, appended[i as usize]["leaf_hash"]);
        assert_eq!(leaf, leaf_hash(&log.entry(i).await).to_base64());
    }
    // Prefix action, tenant, session, ip, actor type and full text.
    let (_, a) = log
        .get_json("/v1/events?action=role.*&tenant=acme&order=asc")
        .await;
    assert_eq!(indexes(&a), [0, 5, 10]);
    let (_, a) = log
        .get_json("/v1/events?session=s-user-1&ip=203.0.113.7&actor_type=user&order=asc&limit=3")
        .await;
    assert_eq!(indexes(&a), [1, 4, 7]);
    let (_, a) = log.get_json("/v1/events?q=CASE%2017&order=asc").await;
    assert_eq!(indexes(&a), [17]);
    let (_, a) = log.get_json("/v1/events?q=inc-4711&limit=1").await;
    assert_eq!(indexes(&a), [29]);
    // Empty values count as absent.
    let (_, a) = log
        .get_json("/v1/events?actor=&action=&outcome=&limit=2")
        .await;
    assert_eq!(indexes(&a), [29, 28]);

    // Time range: from inclusive, to exclusive (all 30 share one commit time).
    let t = appended[0]["time"].as_str().unwrap().to_owned();
    let (_, a) = log
        .get_json(&format!("/v1/events?from={t}&limit=1000"))
        .await;
    assert_eq!(indexes(&a).len(), 30);
    let (_, a) = log.get_json(&format!("/v1/events?to={t}")).await;
    assert_eq!(indexes(&a), Vec::<u64>::new());

    // Paging with cursors, while the log grows between pages.
    let (_, p1) = log
        .get_json("/v1/events?tenant=globex&order=asc&limit=6")
        .await;
    assert_eq!(indexes(&p1), [15, 16, 17, 18, 19, 20]);
    log.append(&ev("user-9", "authz.check", "allow", "globex", "late"))
        .await;
    log.indexed().await;
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = log
        .get_json(&format!(
            "/v1/events?tenant=globex&order=asc&limit=6&cursor={cursor}"
        ))
        .await;
    assert_eq!(indexes(&p2), [21, 22, 23, 24, 25, 26]);
    let cursor = p2["next_cursor"].as_str().unwrap();
    let (_, p3) = log
        .get_json(&format!(
            "/v1/events?tenant=globex&order=asc&limit=6&cursor={cursor}"
        ))
        .await;
    assert_eq!(indexes(&p3), [27, 28, 29, 30]);
    assert_eq!(p3["next_cursor"], Value::Null);

    // Inclusion proofs against a checkpoint.
    let (cp, note) = log.checkpoint().await;
    let (status, a) = log
        .get_json("/v1/events?actor=user-2&limit=2&proof_tree_size=latest")
        .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["proof_tree_size"], cp.size);
    assert_eq!(a["checkpoint"], note);
    for e in a["events"].as_array().unwrap() {
        let proof: Vec<stele_core::Hash> =
            serde_json::from_value(e["inclusion_proof"].clone()).unwrap();
        let leaf: stele_core::Hash = serde_json::from_value(e["leaf_hash"].clone()).unwrap();
        verify_inclusion(
            &leaf,
            e["index"].as_u64().unwrap(),
            cp.size,
            &proof,
            &cp.root,
        )
        .unwrap();
    }
    // A smaller tree limits results to entries inside it.
    let (_, a) = log
        .get_json("/v1/events?actor=user-2&proof_tree_size=10")
        .await;
    assert_eq!(indexes(&a), [8, 5, 2]);
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_and_groups() {
    let log = start().await;
    let batch: Vec<Value> = (0..12)
        .map(|i| {
            ev(
                &format!("user-{}", i % 2),
                if i % 3 == 0 {
                    "role.grant"
                } else {
                    "authz.check"
                },
                if i < 4 { "deny" } else { "allow" },
                "acme",
                "x",
            )
        })
        .collect();
    log.append(&Value::Array(batch)).await;
    log.indexed().await;
    let (status, a) = log.get_json("/v1/events/count").await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a, json!({"total": 12, "groups": {}, "index_lag": 0}));
    let (_, a) = log.get_json("/v1/events/count?group_by=actor").await;
    assert_eq!(a["groups"], json!({"user-0": 6, "user-1": 6}));
    let (_, a) = log
        .get_json("/v1/events/count?outcome=allow&group_by=action")
        .await;
    assert_eq!(
        a,
        json!({"total": 8, "groups": {"authz.check": 6, "role.grant": 2}, "index_lag": 0})
    );
    let (_, a) = log
        .get_json("/v1/events/count?group_by=outcome&action=role.*")
        .await;
    assert_eq!(a["groups"], json!({"allow": 2, "deny": 2}));
    let (_, a) = log.get_json("/v1/events/count?group_by=hour").await;
    let groups = a["groups"].as_object().unwrap();
    assert_eq!(groups.len(), 1);
    let (hour, n) = groups.iter().next().unwrap();
    assert!(hour.ends_with(":00:00Z") && hour.len() == 20, "{hour}");
    assert_eq!(n, 12);
    // The lag is in /metrics too.
    let metrics = log.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("stele_index_lag_entries 0"), "{metrics}");
    assert!(
        metrics.contains("stele_index_indexed_entries 12"),
        "{metrics}"
    );
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_by_principal_and_by_role() {
    let log = start().await;
    let change = |action: &str, c: Value| {
        json!({
            "actor": {"type": "user", "id": "root"}, "action": action,
            "resource": {"type": "role", "id": "r"}, "outcome": "allow", "change": c,
        })
    };
    let scope = json!({"type": "tenant", "id": "acme"});
    let a = log
        .append(&change(
            "role.grant",
            json!({"principal": "alice", "role": "admin", "scope": scope}),
        ))
        .await;
    let t0 = a[0]["time"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let b = log
        .append(&change("user.deactivate", json!({"principal": "alice"})))
        .await;
    let t1 = b[0]["time"].as_str().unwrap().to_owned();
    log.indexed().await;
    log.checkpoint().await;

    let (status, r) = log
        .get_json(&format!(
            "/v1/replay?as_of={t0}&principal=alice&proof_tree_size=latest"
        ))
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["principal"], "alice");
    assert_eq!(r["as_of"], t0);
    assert_eq!(r["active"], true);
    assert_eq!(r["index_lag"], 0);
    let roles = r["roles"].as_array().unwrap();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["role"], "admin");
    assert_eq!(roles[0]["scope"], scope);
    assert_eq!(roles[0]["granted_at"], t0);
    assert_eq!(roles[0]["index"], 0);
    assert_eq!(roles[0]["leaf_hash"], a[0]["leaf_hash"]);
    assert_eq!(roles[0]["inclusion_proof"].as_array().unwrap().len(), 1);

    let (_, r) = log
        .get_json(&format!("/v1/replay?as_of={t1}&principal=alice"))
        .await;
    assert_eq!(r["active"], false);
    let (_, r) = log
        .get_json(&format!(
            "/v1/replay?as_of={t0}&role=admin&scope_type=tenant&scope_id=acme"
        ))
        .await;
    assert_eq!(r["role"], "admin");
    let principals = r["principals"].as_array().unwrap();
    assert_eq!(principals.len(), 1);
    assert_eq!(principals[0]["principal"], "alice");
    assert_eq!(principals[0]["index"], 0);
    let (_, r) = log
        .get_json(&format!("/v1/replay?as_of={t1}&role=admin"))
        .await;
    assert_eq!(
        r["principals"],
        json!([]),
        "deactivated principals hold nothing"
    );
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_by_permission_with_the_defining_policy_update_proven() {
    let log = start().await;
    let change = |action: &str, c: Value| {
        json!({
            "actor": {"type": "user", "id": "root"}, "action": action,
            "resource": {"type": "role", "id": "r"}, "outcome": "allow", "change": c,
        })
    };
    let p = log
        .append(&change(
            "policy.update",
            json!({"role": "auditor", "permissions": ["log.read", "log.export"]}),
        ))
        .await;
    let g = log
        .append(&change(
            "role.grant",
            json!({"principal": "alice", "role": "auditor"}),
        ))
        .await;
    let t = g[0]["time"].as_str().unwrap().to_owned();
    log.indexed().await;
    log.checkpoint().await;

    let (status, r) = log
        .get_json(&format!(
            "/v1/replay?as_of={t}&permission=log.export&proof_tree_size=latest"
        ))
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["permission"], "log.export");
    let principals = r["principals"].as_array().unwrap();
    assert_eq!(principals.len(), 1, "{r}");
    let grant = &principals[0];
    assert_eq!(
        (&grant["principal"], &grant["role"]),
        (&json!("alice"), &json!("auditor"))
    );
    assert_eq!(grant["index"], 1);
    let perms = &grant["permissions"];
    assert_eq!(perms["set"], json!(["log.export", "log.read"]));
    assert_eq!(perms["index"], 0);
    assert_eq!(perms["leaf_hash"], p[0]["leaf_hash"]);
    assert_eq!(perms["defined_at"], p[0]["time"]);
    // Both entries come with proofs against the checkpoint: the grant and the definition.
    for proof in [&grant["inclusion_proof"], &perms["inclusion_proof"]] {
        assert_eq!(proof.as_array().unwrap().len(), 1, "{r}");
    }
    // By principal, the role carries its permissions too.
    let (_, r) = log
        .get_json(&format!("/v1/replay?as_of={t}&principal=alice"))
        .await;
    assert_eq!(
        r["roles"][0]["permissions"]["set"],
        json!(["log.export", "log.read"])
    );
    // A permission no role gives: nobody.
    let (_, r) = log
        .get_json(&format!("/v1/replay?as_of={t}&permission=log.delete"))
        .await;
    assert_eq!(r["principals"], json!([]));
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_400_naming_the_parameter() {
    let log = start().await;
    log.append(&ev("u", "authz.check", "allow", "t", "r")).await;
    let cases = [
        ("/v1/events?actr=x", "actr"),
        ("/v1/events?limit=0", "limit"),
        ("/v1/events?limit=1001", "limit"),
        ("/v1/events?limit=ten", "limit"),
        ("/v1/events?order=up", "order"),
        ("/v1/events?from=yesterday", "from"),
        ("/v1/events?to=2026-13-01", "to"),
        ("/v1/events?from=2026-03-02&to=2026-03-01", "from"),
        ("/v1/events?outcome=maybe", "outcome"),
        ("/v1/events?actor_type=robot", "actor_type"),
        ("/v1/events?action=ro*le", "action"),
        ("/v1/events?q=%21%21", "q"),
        ("/v1/events?cursor=zz", "cursor"),
        ("/v1/events?cursor=a5&order=desc", "cursor"),
        ("/v1/events?actor=a&actor=b", "actor"),
        ("/v1/events?proof_tree_size=99", "proof_tree_size"),
        ("/v1/events/count?group_by=color", "group_by"),
        ("/v1/events/count?limit=3", "limit"),
        ("/v1/replay?principal=alice", "as_of"),
        ("/v1/replay?as_of=2026-03-01T12:00Z", "principal"),
        (
            "/v1/replay?as_of=2026-03-01T12:00Z&principal=a&role=b",
            "principal",
        ),
        ("/v1/replay?as_of=soon&principal=a", "as_of"),
        ("/v1/replay?as_of=2026-03-01&role=r&scope_id=x", "scope_id"),
        (
            "/v1/replay?as_of=2026-03-01&role=r&permission=p",
            "permission",
        ),
        (
            "/v1/replay?as_of=2026-03-01&principal=a&scope_type=tenant",
            "scope_type",
        ),
    ];
    for (path, param) in cases {
        let (status, body) = log.get_json(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let msg = body["error"].as_str().unwrap();
        assert!(msg.contains(param), "{path}: {msg:?} does not name {param}");
    }
    // The existing routes still answer: an index or id, and the append route.
    assert_eq!(log.get("/v1/events/0").await.status().as_u16(), 200);
    assert_eq!(log.get("/v1/events/count").await.status().as_u16(), 200);
    log.stop().await;
}
