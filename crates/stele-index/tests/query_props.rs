//! Query results equal a brute-force scan of the stored events, on generated logs.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;
use stele_index::synth::{Synth, SynthConfig};
use stele_index::{Field, Filter, GroupBy, Index, Match, Order};
use stele_store::{NewEntry, Store};
use tempfile::TempDir;

struct Log {
    _dir: TempDir,
    store: Store,
    index: Index,
    events: Vec<Option<Value>>,
}

/// Two logs: 700 events in chunks of 64 (many sealed chunks, an open tail, some entries that
/// are not events) and 150 events in chunks of 128 (nothing sealed yet).
fn logs() -> &'static [Log; 2] {
    static LOGS: OnceLock<[Log; 2]> = OnceLock::new();
    LOGS.get_or_init(|| [build(1, 700, 64), build(2, 150, 128)])
}

fn build(seed: u64, n: usize, chunk_size: u32) -> Log {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_store(dir.path());
    let cfg = SynthConfig {
        users: 12,
        tenants: 4,
        resources: 30,
        change_percent: 10,
    };
    let mut synth = Synth::new(seed, cfg);
    let mut appended = 0;
    let mut batch = 1;
    while appended < n {
        let k = batch.min(n - appended);
        let events: Vec<Value> = (0..k).map(|_| synth.event()).collect();
        common::append(&store, &events);
        appended += k;
        batch = batch * 2 % 97 + 1;
        if appended % 5 == 0 {
            // An entry that is not an event: queries never return it.
            store
                .append_blocking(vec![NewEntry::raw(b"not an event".to_vec())])
                .unwrap();
        }
    }
    let index = common::open_index(&store, &dir.path().join("index"), chunk_size);
    index.catch_up().unwrap();
    assert_eq!(index.indexed(), store.size());
    let events = common::stored(&store);
    Log {
        _dir: dir,
        store,
        index,
        events,
    }
}

fn time_of(log: &Log, i: usize) -> Option<i64> {
    let ev = log.events.get(i)?.as_ref()?;
    Some(
        stele_core::timestamp::Timestamp::parse(ev["time"].as_str()?)
            .ok()?
            .unix_nanos(),
    )
}

/// Field conditions, a full-text query, and `from`/`to` as positions in the log.
type Spec = (
    Vec<(Field, String)>,
    Option<String>,
    Option<usize>,
    Option<usize>,
);

fn filter_strategy() -> impl Strategy<Value = Spec> {
    let field = prop_oneof![
        (0u64..14).prop_map(|u| (Field::Actor, format!("user-{u}"))),
        Just((Field::Actor, "svc-3".to_owned())),
        Just((Field::ActorType, "service".to_owned())),
        prop::sample::select(vec![
            "authz.check",
            "role.*",
            "auth.*",
            "document.read",
            "role.grant",
            "user.*",
            "x*",
            "*"
        ])
        .prop_map(|a| (Field::Action, a.to_owned())),
        prop::sample::select(vec!["allow", "deny", "error"])
            .prop_map(|o| (Field::Outcome, o.to_owned())),
        (0u64..5).prop_map(|t| (Field::Tenant, format!("tenant-{t}"))),
        // A set of tenants (as a reader's token is bound to), possibly empty.
        prop::collection::vec(0u64..6, 0..3).prop_map(|ts| {
            let names: Vec<String> = ts.iter().map(|t| format!("tenant-{t}")).collect();
            (Field::Tenant, format!("any:{}", names.join(",")))
        }),
        (0u64..9).prop_map(|s| (Field::Source, format!("gateway-{s}"))),
        prop::sample::select(vec!["document", "role", "app", "group"])
            .prop_map(|r| (Field::ResourceType, r.to_owned())),
        (0u64..6).prop_map(|r| (Field::ResourceId, format!("document-{r}"))),
    ];
    (
        prop::collection::vec(field, 0..3),
        prop::option::of(
            prop::sample::select(vec![
                "ticket",
                "denied mfa",
                "route",
                "api v1",
                "REVIEW",
                "nothing-here",
            ])
            .prop_map(str::to_owned),
        ),
        prop::option::of(0usize..900),
        prop::option::of(0usize..900),
    )
}

fn make_filter(log: &Log, spec: &Spec) -> Filter {
    let mut f = Filter {
        fields: spec
            .0
            .iter()
            .map(|(fd, v)| match v.strip_prefix("any:") {
                Some(set) => (
                    *fd,
                    Match::AnyOf(
                        set.split(',')
                            .filter(|t| !t.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    ),
                ),
                None => (*fd, Match::parse(v)),
            })
            .collect(),
        ..Filter::default()
    };
    if let Some(q) = &spec.1 {
        assert!(f.set_text(q));
    }
    f.from = spec.2.and_then(|i| time_of(log, i));
    f.to = spec.3.and_then(|i| time_of(log, i));
    f
}

fn brute(log: &Log, f: &Filter) -> Vec<u64> {
    log.events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.as_ref().is_some_and(|e| common::matches(e, f)))
        .map(|(i, _)| i as u64)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn pages_of_a_search_equal_a_brute_force_scan(which in 0usize..2, spec in filter_strategy(), desc: bool, limit in 1usize..40) {
        let log = &logs()[which];
        let f = make_filter(log, &spec);
        let mut want = brute(log, &f);
        let order = if desc { want.reverse(); Order::Desc } else { Order::Asc };
        let mut got = Vec::new();
        let mut cursor = None;
        loop {
            let (after, before) = match order { Order::Asc => (cursor, None), Order::Desc => (None, cursor) };
            let page = log.index.search(&f, order, after, before, limit);
            prop_assert!(page.hits.len() <= limit);
            got.extend_from_slice(&page.hits);
            if !page.more { break; }
            prop_assert_eq!(page.hits.len(), limit);
            cursor = page.hits.last().copied();
        }
        prop_assert_eq!(got, want);
    }

    #[test]
    fn counts_and_groups_equal_a_brute_force_scan(which in 0usize..2, spec in filter_strategy(), group in 0usize..5) {
        let log = &logs()[which];
        let f = make_filter(log, &spec);
        let hits = brute(log, &f);
        let group_by = [None, Some(GroupBy::Field(Field::Actor)), Some(GroupBy::Field(Field::Action)), Some(GroupBy::Field(Field::Tenant)), Some(GroupBy::Hour)][group];
        let counts = log.index.count(&f, group_by, None);
        prop_assert_eq!(counts.total, hits.len() as u64);
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for i in &hits {
            let ev = log.events[*i as usize].as_ref().unwrap();
            let key = match group_by {
                None => None,
                Some(GroupBy::Field(Field::Actor)) => ev.pointer("/actor/id").and_then(Value::as_str).map(str::to_owned),
                Some(GroupBy::Field(Field::Action)) => ev["action"].as_str().map(str::to_owned),
                Some(GroupBy::Field(_)) => ev.get("tenant").and_then(Value::as_str).map(str::to_owned),
                Some(GroupBy::Hour) => Some(format!("{}:00:00Z", &ev["time"].as_str().unwrap()[..13])),
            };
            if let Some(k) = key {
                *want.entry(k).or_default() += 1;
            }
        }
        prop_assert_eq!(counts.groups, want);
    }
}

#[test]
fn every_event_is_found_by_its_own_fields() {
    let log = &logs()[0];
    assert!(log.index.indexed() > 700);
    for (i, ev) in log.events.iter().enumerate().step_by(37) {
        let Some(ev) = ev else { continue };
        let f = Filter {
            fields: vec![
                common::on(Field::Actor, ev["actor"]["id"].as_str().unwrap()),
                common::on(Field::Action, ev["action"].as_str().unwrap()),
            ],
            ..Filter::default()
        };
        let page = log.index.search(&f, Order::Asc, None, None, 10_000);
        assert!(page.hits.contains(&(i as u64)), "entry {i} not found");
        assert_eq!(page.hits, brute(log, &f));
    }
    assert_eq!(log.store.size(), log.index.indexed());
}
