//! Replay against a hand-checked scenario of grants, revocations, deactivations and group
//! membership.

mod common;

use serde_json::{json, Value};
use stele_index::{Index, ScopeFilter};
use stele_store::Store;

fn ev(action: &str, change: Value) -> Value {
    json!({
        "actor": {"type": "user", "id": "root"},
        "action": action,
        "resource": {"type": "role", "id": "x"},
        "outcome": "allow",
        "change": change,
    })
}

/// Appends each event on its own, so each gets its own commit time; returns the times.
fn append_each(store: &Store, events: &[Value]) -> Vec<i64> {
    for e in events {
        common::append(store, std::slice::from_ref(e));
    }
    common::stored(store)
        .iter()
        .map(|e| {
            let t = e.as_ref().unwrap()["time"].as_str().unwrap();
            stele_core::timestamp::Timestamp::parse(t)
                .unwrap()
                .unix_nanos()
        })
        .collect()
}

/// The first hand-checked scenario; returns the events' commit times.
fn scenario(store: &Store) -> Vec<i64> {
    let acme = json!({"type": "tenant", "id": "acme"});
    let mut denied = ev("role.grant", json!({"principal": "dave", "role": "admin"}));
    denied["outcome"] = json!("deny");
    let events = [
        /* 0 */
        ev(
            "role.grant",
            json!({"principal": "alice", "role": "viewer", "scope": acme}),
        ),
        /* 1 */ ev("role.grant", json!({"principal": "alice", "role": "admin"})),
        /* 2 */
        ev(
            "role.grant",
            json!({"principal": "bob", "role": "viewer", "scope": acme}),
        ),
        /* 3 */ ev("group.add", json!({"principal": "carol", "group": "eng"})),
        /* 4 */
        ev(
            "role.grant",
            json!({"principal": "eng", "role": "editor", "scope": {"type": "project", "id": "p1"}}),
        ),
        /* 5 */
        ev(
            "role.revoke",
            json!({"principal": "alice", "role": "admin"}),
        ),
        /* 6 */ ev("user.deactivate", json!({"principal": "bob"})),
        /* 7 */
        ev(
            "role.grant",
            json!({"principal": "alice", "role": "viewer", "scope": acme}),
        ),
        /* 8 */ denied,
        /* 9 */ ev("user.activate", json!({"principal": "bob"})),
        /* 10 */
        ev(
            "group.remove",
            json!({"principal": "carol", "group": "eng"}),
        ),
        /* 11 */
        ev(
            "role.grant",
            json!({"principal": "erin", "role": "viewer", "scope": {"type": "tenant", "id": "globex"}}),
        ),
        /* 12 */ ev("role.grant", json!({"principal": "frank"})),
    ];
    append_each(store, &events)
}

/// (role, scope or "*", index, via group@membership index) of one grant.
type Held = (String, String, u64, Option<String>);

/// Whether `who` is active at `t`, and its grants.
fn roles(index: &Index, who: &str, t: i64) -> (bool, Vec<Held>) {
    let r = index.replay_principal(who, t).unwrap();
    assert_eq!(r.principal, who);
    assert_eq!(r.as_of.unix_nanos(), t);
    for g in &r.roles {
        assert_eq!(g.leaf_hash, index.store().leaf_hash(g.index).unwrap());
        assert!(g.principal.is_none());
    }
    let list = r
        .roles
        .into_iter()
        .map(|g| {
            (
                g.role,
                g.scope
                    .map_or("*".to_owned(), |s| format!("{}/{}", s.kind, s.id)),
                g.index,
                g.via.map(|v| format!("{}@{}", v.group, v.index)),
            )
        })
        .collect();
    (r.active, list)
}

fn holders(
    index: &Index,
    role: &str,
    scope: &ScopeFilter,
    t: i64,
) -> Vec<(String, u64, Option<String>)> {
    let r = index.replay_role(role, scope, t).unwrap();
    assert_eq!(r.role, role);
    r.principals
        .into_iter()
        .map(|g| (g.principal.unwrap(), g.index, g.via.map(|v| v.group)))
        .collect()
}

fn own(s: &str) -> String {
    s.to_owned()
}

#[test]
fn replay_follows_grants_revocations_deactivations_and_groups() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_store(dir.path());
    let t = scenario(&store);
    assert!(
        t.windows(2).all(|w| w[0] < w[1]),
        "each event has its own time"
    );
    // Chunks of 64 hold all 13 events in the open chunk; reopen below seals nothing either,
    // so also check with the smallest chunk after a reopen from sealed files.
    let index = common::open_index(&store, &dir.path().join("index"), 64);
    index.catch_up().unwrap();
    check(&index, &t);
}

fn check(index: &Index, t: &[i64]) {
    let acme = || own("tenant/acme");
    // Before anything: active, no roles. Instants are inclusive.
    assert_eq!(roles(index, "alice", t[0] - 1), (true, vec![]));
    assert_eq!(
        roles(index, "alice", t[1]),
        (
            true,
            vec![
                (own("admin"), own("*"), 1, None),
                (own("viewer"), acme(), 0, None)
            ]
        )
    );
    // Revoked at 5; the repeated grant at 7 does not replace the establishing one at 0.
    assert_eq!(
        roles(index, "alice", t[5]),
        (true, vec![(own("viewer"), acme(), 0, None)])
    );
    assert_eq!(
        roles(index, "alice", t[12]),
        (true, vec![(own("viewer"), acme(), 0, None)])
    );
    // Deactivated bob keeps his (dormant) grant, and is active again from 9.
    assert_eq!(
        roles(index, "bob", t[6]),
        (false, vec![(own("viewer"), acme(), 2, None)])
    );
    assert_eq!(
        roles(index, "bob", t[9]),
        (true, vec![(own("viewer"), acme(), 2, None)])
    );
    // Carol holds editor through eng from 4 until she leaves the group at 10.
    assert_eq!(roles(index, "carol", t[3]), (true, vec![]));
    assert_eq!(
        roles(index, "carol", t[4]),
        (
            true,
            vec![(own("editor"), own("project/p1"), 4, Some(own("eng@3")))]
        )
    );
    assert_eq!(roles(index, "carol", t[10]), (true, vec![]));
    // A denied grant changes nothing; a grant without a role is not a grant.
    assert_eq!(roles(index, "dave", t[12]), (true, vec![]));
    assert_eq!(roles(index, "frank", t[12]), (true, vec![]));

    // Who held viewer on tenant acme: global and acme grants count, globex does not.
    let on_acme = ScopeFilter {
        kind: Some(own("tenant")),
        id: Some(own("acme")),
    };
    assert_eq!(
        holders(index, "viewer", &on_acme, t[2]),
        vec![(own("alice"), 0, None), (own("bob"), 2, None)]
    );
    assert_eq!(
        holders(index, "viewer", &on_acme, t[6]),
        vec![(own("alice"), 0, None)]
    );
    assert_eq!(
        holders(index, "viewer", &on_acme, t[9]),
        vec![(own("alice"), 0, None), (own("bob"), 2, None)]
    );
    assert_eq!(
        holders(index, "viewer", &ScopeFilter::default(), t[12]),
        vec![
            (own("alice"), 0, None),
            (own("bob"), 2, None),
            (own("erin"), 11, None)
        ]
    );
    // Admin on anything: alice until her revocation; dave never.
    assert_eq!(
        holders(index, "admin", &on_acme, t[4]),
        vec![(own("alice"), 1, None)]
    );
    assert_eq!(
        holders(index, "admin", &ScopeFilter::default(), t[12]),
        vec![]
    );
    // Editor: the group and its member, then the group alone.
    assert_eq!(
        holders(index, "editor", &ScopeFilter::default(), t[4]),
        vec![(own("carol"), 4, Some(own("eng"))), (own("eng"), 4, None)]
    );
    assert_eq!(
        holders(index, "editor", &ScopeFilter::default(), t[10]),
        vec![(own("eng"), 4, None)]
    );
}

#[test]
fn replay_survives_sealing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_store(dir.path());
    let t = scenario(&store);
    // Pad to two full chunks of 64 so the scenario lies in a sealed chunk file.
    let filler: Vec<Value> = (0..115).map(|_| ev("authz.check", json!({}))).collect();
    common::append(&store, &filler);
    let index_dir = dir.path().join("index");
    let index = common::open_index(&store, &index_dir, 64);
    index.catch_up().unwrap();
    assert_eq!(
        index.change_events(),
        11,
        "the denied grant and the grant without a role are not changes"
    );
    drop(index);
    let index = common::open_index(&store, &index_dir, 64);
    assert_eq!(
        index.indexed(),
        128,
        "the two sealed chunks load without the log"
    );
    assert_eq!(
        index.change_events(),
        11,
        "the denied grant and the grant without a role are not changes"
    );
    check(&index, &t);
}

/// Role permissions from `policy.update`: a second hand-checked scenario.
fn permission_scenario(store: &Store) -> Vec<i64> {
    let acme = json!({"type": "tenant", "id": "acme"});
    let mut denied = ev(
        "policy.update",
        json!({"role": "editor", "permissions": []}),
    );
    denied["outcome"] = json!("deny");
    let events = [
        /* 0 */
        ev(
            "policy.update",
            json!({"role": "editor", "permissions": ["doc.write", "doc.read", "doc.read"]}),
        ),
        /* 1 */
        ev(
            "role.grant",
            json!({"principal": "alice", "role": "editor", "scope": acme}),
        ),
        /* 2 */ ev("group.add", json!({"principal": "carol", "group": "eng"})),
        /* 3 */ ev("role.grant", json!({"principal": "eng", "role": "editor"})),
        /* 4 */
        ev(
            "policy.update",
            json!({"role": "editor", "permissions": ["doc.read"]}),
        ),
        /* 5: not every permission is a string: changes nothing */
        ev(
            "policy.update",
            json!({"role": "viewer", "permissions": [1, "x"]}),
        ),
        /* 6 */ ev("role.grant", json!({"principal": "bob", "role": "viewer"})),
        /* 7 */
        ev(
            "policy.update",
            json!({"role": "viewer", "permissions": ["doc.read"]}),
        ),
        /* 8 */ denied,
        /* 9 */
        ev(
            "role.revoke",
            json!({"principal": "alice", "role": "editor", "scope": acme}),
        ),
    ];
    append_each(store, &events)
}

/// (role, permissions, index of the defining policy.update) of each grant of `who`.
fn permissions(index: &Index, who: &str, t: i64) -> Vec<(String, Vec<String>, Option<u64>)> {
    let r = index.replay_principal(who, t).unwrap();
    r.roles
        .into_iter()
        .map(|g| {
            if let Some(p) = &g.permissions {
                assert_eq!(p.leaf_hash, index.store().leaf_hash(p.index).unwrap());
            }
            (
                g.role,
                g.permissions.as_ref().map_or(vec![], |p| p.set.clone()),
                g.permissions.map(|p| p.index),
            )
        })
        .collect()
}

/// (principal, role, via group) of everyone holding `permission` at `t`.
fn permitted(
    index: &Index,
    permission: &str,
    scope: &ScopeFilter,
    t: i64,
) -> Vec<(String, String, Option<String>)> {
    let r = index.replay_permission(permission, scope, t).unwrap();
    assert_eq!(r.permission, permission);
    r.principals
        .into_iter()
        .map(|g| {
            let set = &g.permissions.as_ref().unwrap().set;
            assert!(set.iter().any(|p| p == permission), "{set:?}");
            (g.principal.unwrap(), g.role, g.via.map(|v| v.group))
        })
        .collect()
}

fn check_permissions(index: &Index, t: &[i64]) {
    let s = |v: &[&str]| v.iter().map(|x| own(x)).collect::<Vec<_>>();
    let all = ScopeFilter::default();
    // The first definition, deduplicated and sorted.
    assert_eq!(
        permissions(index, "alice", t[1]),
        vec![(own("editor"), s(&["doc.read", "doc.write"]), Some(0))]
    );
    // Redefined at 4: the new set replaces the old one.
    assert_eq!(
        permissions(index, "alice", t[4]),
        vec![(own("editor"), s(&["doc.read"]), Some(4))]
    );
    // The malformed definition at 5 changes nothing: viewer has no permissions yet.
    assert_eq!(
        permissions(index, "bob", t[6]),
        vec![(own("viewer"), vec![], None)]
    );
    assert_eq!(
        permissions(index, "bob", t[7]),
        vec![(own("viewer"), s(&["doc.read"]), Some(7))]
    );
    // The denied update at 8 changes nothing either.
    assert_eq!(
        permissions(index, "carol", t[8]),
        vec![(own("editor"), s(&["doc.read"]), Some(4))]
    );
    // Reverse: who could write documents, directly or through a group, and when.
    assert_eq!(
        permitted(index, "doc.write", &all, t[3]),
        vec![
            (own("alice"), own("editor"), None),
            (own("carol"), own("editor"), Some(own("eng"))),
            (own("eng"), own("editor"), None),
        ]
    );
    assert_eq!(permitted(index, "doc.write", &all, t[4]), vec![]);
    assert_eq!(permitted(index, "doc.write", &all, t[0] - 1), vec![]);
    assert_eq!(
        permitted(index, "doc.read", &all, t[7])
            .into_iter()
            .map(|(p, r, _)| (p, r))
            .collect::<Vec<_>>(),
        vec![
            (own("alice"), own("editor")),
            (own("bob"), own("viewer")),
            (own("carol"), own("editor")),
            (own("eng"), own("editor")),
        ]
    );
    // After alice's revocation; and a scope alice's grant is not in.
    let after: Vec<String> = permitted(index, "doc.read", &all, t[9])
        .into_iter()
        .map(|(p, _, _)| p)
        .collect();
    assert_eq!(after, s(&["bob", "carol", "eng"]));
    let globex = ScopeFilter {
        kind: Some(own("tenant")),
        id: Some(own("globex")),
    };
    let in_globex: Vec<String> = permitted(index, "doc.read", &globex, t[7])
        .into_iter()
        .map(|(p, _, _)| p)
        .collect();
    assert_eq!(in_globex, s(&["bob", "carol", "eng"]));
    assert_eq!(permitted(index, "nothing.at.all", &all, t[9]), vec![]);
}

#[test]
fn replay_gives_each_role_the_permissions_policy_updates_defined_then() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_store(dir.path());
    let t = permission_scenario(&store);
    let index_dir = dir.path().join("index");
    let index = common::open_index(&store, &index_dir, 64);
    index.catch_up().unwrap();
    assert_eq!(
        index.change_events(),
        8,
        "the malformed and the denied policy.update are not changes"
    );
    check_permissions(&index, &t);
    // The same from sealed chunk files, without the log.
    let filler: Vec<Value> = (0..118).map(|_| ev("authz.check", json!({}))).collect();
    common::append(&store, &filler);
    index.catch_up().unwrap();
    drop(index);
    let index = common::open_index(&store, &index_dir, 64);
    assert_eq!(index.indexed(), 128);
    assert_eq!(index.change_events(), 8);
    check_permissions(&index, &t);
}
