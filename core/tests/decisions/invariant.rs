//! `invariant`: which indexes a record must be in, and the violations found
//! in states that break that.

use ff_core::contract::execution::ExecutionRecord;
use ff_core::contract::suspension::WaitpointRecord;
use ff_core::invariant::*;
use ff_core::keys::PartitionKeys;
use ff_core::state::{Eligibility, LifecyclePhase};
use ff_core::{ExecutionId, Lane, LeaseId, WaitpointId};
use std::collections::{BTreeMap, BTreeSet};

fn eid(r: u128) -> ExecutionId {
    ExecutionId::new(6, r)
}

/// A record of `eid(r)` in lane `mail` with these stored fields.
fn rec(r: u128, extra: &[(&str, &str)]) -> ExecutionRecord {
    let mut m: BTreeMap<String, Vec<u8>> = [
        ("ns", "shop"),
        ("lane", "mail"),
        ("kind", "send"),
        ("retry", "0:f:0"),
        ("retention", "1000"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect();
    if m.get("phase").map(Vec::as_slice) == Some(b"active") {
        m.insert(
            "lease_id".into(),
            LeaseId::from_u128(1).to_string().into_bytes(),
        );
    }
    ExecutionRecord::from_fields(&eid(r), &m, 0).unwrap()
}

fn idx(name: &str) -> String {
    format!("ff:idx:{{fp:6}}:{name}")
}

fn m(index: &str, score: Option<u64>) -> Membership {
    Membership {
        index: idx(index),
        score,
    }
}

#[test]
fn state_index_table() {
    use Eligibility::*;
    use LifecyclePhase::*;
    let cases = [
        (Runnable, Some(Eligible), Some("eligible")),
        (Runnable, Some(Delayed), Some("delayed")),
        (Runnable, Some(WaitingChildren), Some("waiting_children")),
        (Runnable, Some(BlockedBudget), Some("blocked_budget")),
        (Runnable, Some(BlockedQuota), Some("blocked_quota")),
        (Runnable, Some(BlockedRoute), Some("blocked_route")),
        (Runnable, None, None),
        (Active, None, Some("lease_expiry")),
        (Suspended, None, Some("suspension_timeout")),
        (Terminal, Some(Eligible), Some("terminal")),
    ];
    for (p, e, want) in cases {
        assert_eq!(state_index(p, e), want, "{p:?} {e:?}");
    }
}

#[test]
fn candidate_indexes_are_the_lanes_eligible_and_every_scored_index() {
    let pk = PartitionKeys::of(&eid(1));
    let got = candidate_indexes(&pk, &Lane::new("mail").unwrap());
    let mut want = vec![idx("eligible:mail")];
    want.extend(SCORED_INDEXES.iter().map(|n| idx(n)));
    assert_eq!(got, want);
    assert_eq!(got.len(), 11);
}

#[test]
fn expected_memberships_by_state() {
    let e = rec(
        1,
        &[
            ("phase", "runnable"),
            ("elig", "eligible"),
            ("deadline", "90"),
        ],
    );
    assert_eq!(
        expected_memberships(&e),
        [m("eligible:mail", None), m("deadline", Some(90))]
    );
    let d = rec(
        1,
        &[("phase", "runnable"), ("elig", "delayed"), ("due", "50")],
    );
    assert_eq!(expected_memberships(&d), [m("delayed", Some(50))]);
    let w = rec(1, &[("phase", "runnable"), ("elig", "waiting_children")]);
    assert_eq!(expected_memberships(&w), [m("waiting_children", None)]);
    let a = rec(
        1,
        &[
            ("phase", "active"),
            ("lease_exp", "70"),
            ("att_due", "60"),
            ("deadline", "90"),
        ],
    );
    assert_eq!(
        expected_memberships(&a),
        [
            m("lease_expiry", Some(70)),
            m("attempt_timeout", Some(60)),
            m("deadline", Some(90))
        ]
    );
    let a = rec(1, &[("phase", "active"), ("lease_exp", "70")]);
    assert_eq!(expected_memberships(&a), [m("lease_expiry", Some(70))]);
    // Suspended without a timeout is in no index of its own.
    let s = rec(1, &[("phase", "suspended"), ("deadline", "90")]);
    assert_eq!(expected_memberships(&s), [m("deadline", Some(90))]);
    let s = rec(1, &[("phase", "suspended"), ("susp_due", "80")]);
    assert_eq!(
        expected_memberships(&s),
        [m("suspension_timeout", Some(80))]
    );
    // Terminal: kept for its retention from its end; the deadline no longer applies.
    let t = rec(
        1,
        &[
            ("phase", "terminal"),
            ("outcome", "failed"),
            ("ended", "500"),
            ("deadline", "90"),
        ],
    );
    assert_eq!(expected_memberships(&t), [m("terminal", Some(1500))]);
    let t = rec(1, &[("phase", "terminal"), ("outcome", "failed")]);
    assert_eq!(expected_memberships(&t), [m("terminal", Some(1000))]);
}

#[test]
fn indexes_holding_executions() {
    assert!(holds_executions(&idx("delayed")));
    assert!(holds_executions(&idx("eligible:mail")));
    assert!(!holds_executions(&idx("flow_work")));
    assert!(!holds_executions(&idx("flows")));
    assert!(!holds_executions(&idx("pending_waitpoints")));
    assert!(!holds_executions("ff:idx:{b:1}:resets"));
    assert!(!holds_executions("ff:exec:{fp:1}:x"));
}

type Zsets = BTreeMap<String, BTreeMap<String, u64>>;

fn world(records: &[ExecutionRecord]) -> BTreeMap<String, ExecutionRecord> {
    records
        .iter()
        .map(|r| (r.execution.to_string(), r.clone()))
        .collect()
}

fn zsets(entries: &[(&str, &ExecutionId, u64)]) -> Zsets {
    let mut z = Zsets::new();
    for (name, e, s) in entries {
        z.entry(idx(name)).or_default().insert(e.to_string(), *s);
    }
    z
}

fn alls(ids: &[&ExecutionId]) -> BTreeMap<String, BTreeSet<String>> {
    BTreeMap::from([(idx("all"), ids.iter().map(|e| e.to_string()).collect())])
}

fn messages(v: Vec<Violation>) -> Vec<String> {
    v.into_iter().map(|v| v.to_string()).collect()
}

#[test]
fn a_consistent_store_passes() {
    let (e1, e2) = (eid(1), eid(2));
    let records = world(&[
        rec(
            1,
            &[("phase", "runnable"), ("elig", "delayed"), ("due", "50")],
        ),
        rec(2, &[("phase", "runnable"), ("elig", "eligible")]),
    ]);
    let z = zsets(&[("delayed", &e1, 50), ("eligible:mail", &e2, 12345)]);
    assert_eq!(index_violations(&records, &z, &alls(&[&e1, &e2])), []);
    // Flow work and changed flows hold other members: not checked here.
    let mut z2 = z.clone();
    z2.entry(idx("flow_work"))
        .or_default()
        .insert("d:x".into(), 1);
    z2.entry(idx("flows")).or_default().insert("f".into(), 1);
    assert_eq!(index_violations(&records, &z2, &alls(&[&e1, &e2])), []);
}

#[test]
fn states_that_must_not_pass() {
    let e1 = eid(1);
    let d = e1.to_string();
    let records = world(&[rec(
        1,
        &[("phase", "runnable"), ("elig", "delayed"), ("due", "50")],
    )]);
    // Not in its `all` set.
    assert_eq!(
        messages(index_violations(
            &records,
            &zsets(&[("delayed", &e1, 50)]),
            &BTreeMap::new()
        )),
        [format!("{d} (delayed) missing from {}", idx("all"))]
    );
    // A wrong score.
    let v = index_violations(&records, &zsets(&[("delayed", &e1, 51)]), &alls(&[&e1]));
    assert_eq!(
        messages(v.clone()),
        [format!(
            "{d} (delayed) in {} with score 51, state says Some(50)",
            idx("delayed")
        )]
    );
    assert_eq!(v[0].member, d);
    // Missing from its index, and in one it must not be in.
    assert_eq!(
        messages(index_violations(
            &records,
            &zsets(&[("terminal", &e1, 50)]),
            &alls(&[&e1])
        )),
        [
            format!("{d} (delayed) missing from {}", idx("delayed")),
            format!("{d} (delayed) wrongly in {}", idx("terminal")),
        ]
    );
    // Index entries and `all` members without a record.
    let ghost = eid(9);
    let g = ghost.to_string();
    let v = index_violations(
        &records,
        &zsets(&[("delayed", &e1, 50), ("deadline", &ghost, 1)]),
        &alls(&[&e1, &ghost]),
    );
    assert_eq!(
        messages(v.clone()),
        [
            format!("{} holds {g}, which has no record", idx("deadline")),
            format!("{} lists {g}, which has no record", idx("all")),
        ]
    );
    assert_eq!(v[1].member, g);
    // The eligible index scores a priority order: any score passes.
    let records = world(&[rec(2, &[("phase", "runnable"), ("elig", "eligible")])]);
    let e2 = eid(2);
    assert_eq!(
        index_violations(
            &records,
            &zsets(&[("eligible:mail", &e2, 7)]),
            &alls(&[&e2])
        ),
        []
    );
}

fn wp(r: u128, state: &str, expires: Option<&str>) -> (String, WaitpointRecord) {
    let id = WaitpointId::from_u128(r);
    let mut m: BTreeMap<String, Vec<u8>> = [("eid", eid(1).to_string()), ("state", state.into())]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_bytes()))
        .collect();
    if let Some(x) = expires {
        m.insert("expires".into(), x.as_bytes().to_vec());
    }
    (
        format!("ff:wp:{{fp:6}}:{id}"),
        WaitpointRecord::from_fields(&id, &m, 0).unwrap(),
    )
}

#[test]
fn waitpoints_that_must_and_must_not_pass() {
    let pending = idx("pending_waitpoints");
    let w1 = WaitpointId::from_u128(1).to_string();
    let w2 = WaitpointId::from_u128(2).to_string();
    let wps = BTreeMap::from([wp(1, "pending", Some("40")), wp(2, "closed", None)]);
    let z = |entries: &[(&str, u64)]| -> Zsets {
        BTreeMap::from([(
            pending.clone(),
            entries.iter().map(|(m, s)| (m.to_string(), *s)).collect(),
        )])
    };
    assert_eq!(waitpoint_violations(&wps, &z(&[(&w1, 40)])), []);
    assert_eq!(
        messages(waitpoint_violations(&wps, &z(&[(&w1, 41)]))),
        [format!(
            "waitpoint {w1} in {pending} with score 41, expires Some(40)"
        )]
    );
    assert_eq!(
        messages(waitpoint_violations(&wps, &z(&[]))),
        [format!("pending waitpoint {w1} missing from {pending}")]
    );
    let v = waitpoint_violations(&wps, &z(&[(&w1, 40), (&w2, 9)]));
    assert_eq!(
        messages(v.clone()),
        [format!("closed waitpoint {w2} wrongly in {pending}")]
    );
    assert_eq!(v[0].member, w2);
    let v = waitpoint_violations(&wps, &z(&[(&w1, 40), ("stray", 9)]));
    assert_eq!(
        messages(v.clone()),
        [format!("{pending} holds stray, which is no waitpoint")]
    );
    assert_eq!(v[0].member, "stray");
    // Other indexes are not the waitpoints' business.
    let mut other = z(&[(&w1, 40)]);
    other.insert(idx("delayed"), BTreeMap::from([("x".to_owned(), 1)]));
    assert_eq!(waitpoint_violations(&wps, &other), []);
}
