//! `contract::execution`: create, claim, the lease-ending calls and get.

use crate::support::*;
use ff_core::admission::Admission;
use ff_core::contract::execution::*;
use ff_core::contract::flow::Membership;
use ff_core::contract::CallError;
use ff_core::flow::JoinPolicy;
use ff_core::keys::IdempotencyKey;
use ff_core::reply::Reply;
use ff_core::retry::RetryPolicy;
use ff_core::state::{
    AttemptState, Eligibility, LifecyclePhase, PublicState, StateVector, TerminalOutcome,
};
use ff_core::{
    BudgetId, ExecutionId, FfError, FlowId, Kind, Lane, LeaseId, Namespace, Partition,
    PartitionFamily, QuotaId, TagName, WaitpointId, WorkerInstance, WorkerName,
};
use std::collections::BTreeMap;

fn eid(r: u128) -> ExecutionId {
    ExecutionId::new(5, r)
}

fn args_of(r: u128) -> CreateArgs {
    CreateArgs {
        execution: eid(r),
        namespace: Namespace::new("shop").unwrap(),
        lane: Lane::new("mail").unwrap(),
        kind: Kind::new("send").unwrap(),
        priority: 7,
        payload: b"hello".to_vec(),
        delay_ms: 10,
        attempt_timeout_ms: 20,
        deadline_ms: 30,
        retry: RetryPolicy::fixed(2, 500),
        max_reclaims: 3,
        retention_ms: 40,
        idempotency: None,
        tags: vec![(TagName::new("tenant").unwrap(), "t1".into())],
        flow: None,
        admission: Admission::default(),
    }
}

fn lease(r: u128) -> Lease {
    Lease {
        execution: eid(r),
        id: LeaseId::from_u128(0x11),
        epoch: 2,
    }
}

const SHAPE: [&str; 15] = [
    "shop", "mail", "send", "7", "10", "20", "30", "2:f:500", "3", "40", "0", "", "", "", "1",
];

#[test]
fn create_args() {
    let a = args_of(1);
    let e = eid(1).to_string();
    let c = create(&a);
    let mut want = vec![e.as_str(), "shop", "mail", "send", "7", "hello"];
    want.extend(&SHAPE[4..]);
    want.extend(["tenant", "t1"]);
    assert_call(&c, "ff_create", &[&format!("ff:exec:{e}")], &want, false);
    assert!(c.repeatable);

    // With an idempotency key, a flow and admission.
    let mut a = args_of(1);
    a.idempotency = Some((IdempotencyKey::new("k1").unwrap(), 9000));
    a.flow = Some(Membership {
        flow: FlowId::from_u128(0xf),
        join: JoinPolicy::Quorum(2),
        cancel_remaining: true,
    });
    a.tags.clear();
    a.admission = Admission {
        budgets: vec![
            BudgetId::parse("b1").unwrap(),
            BudgetId::parse("b2").unwrap(),
        ],
        quotas: vec![QuotaId::parse("q").unwrap()],
        capabilities: vec!["gpu".into()],
    };
    let c = create(&a);
    assert_eq!(
        c.keys,
        [format!("ff:exec:{e}"), "ff:idem:{fp:5}:shop:k1".to_owned()]
    );
    let f = FlowId::from_u128(0xf).to_string();
    assert_eq!(
        args(&c),
        [
            e.as_str(),
            "shop",
            "mail",
            "send",
            "7",
            "hello",
            "10",
            "20",
            "30",
            "2:f:500",
            "3",
            "40",
            "9000",
            &f,
            "q:2",
            "1",
            "0",
            "b1,b2",
            "q",
            "gpu"
        ]
    );
    a.flow.as_mut().unwrap().cancel_remaining = false;
    assert_eq!(args(&create(&a))[15], "0");
}

#[test]
fn create_many_sends_each_shape_once() {
    let a = args_of(1);
    let b2 = args_of(2);
    let mut other = args_of(3);
    other.priority = 9;
    other.idempotency = Some((IdempotencyKey::new("k").unwrap(), 5));
    let p = Partition::new(PartitionFamily::Flow, 5);
    let c = create_many(p, &[a, b2, other]);
    assert_eq!(c.function, "ff_create_many");
    assert_eq!(c.keys, ["ff:idx:{fp:5}:all"]);
    let mut want: Vec<String> = vec!["3".into(), "2".into(), "17".into()];
    let shape1: Vec<String> = SHAPE
        .iter()
        .map(|s| s.to_string())
        .chain(["tenant".into(), "t1".into()])
        .collect();
    want.extend(shape1.clone());
    want.push("17".into());
    let mut shape2 = shape1;
    shape2[3] = "9".into();
    shape2[10] = "5".into();
    want.extend(shape2);
    for (n, r, idem) in [
        ("1", 1, ""),
        ("1", 2, ""),
        ("2", 3, "ff:idem:{fp:5}:shop:k"),
    ] {
        want.extend([
            n.to_owned(),
            eid(r).to_string(),
            "hello".into(),
            idem.into(),
        ]);
    }
    assert_eq!(args(&c), want);
}

#[test]
fn decode_creations() {
    let e = eid(1);
    let full = Reply::Array(vec![
        i(1),
        b("duplicate"),
        b(e.as_str()),
        b("runnable"),
        b("delayed"),
        b(""),
    ]);
    assert_eq!(
        decode_create(&full),
        Ok(Created {
            execution: e.clone(),
            created: false,
            state: PublicState::Delayed
        })
    );
    let done = ok(vec![
        b("created"),
        b(e.as_str()),
        b("terminal"),
        b(""),
        b("success"),
    ]);
    assert_eq!(decode_create(&done).unwrap().state, PublicState::Completed);
    assert!(decode_create(&done).unwrap().created);
    for bad in [
        ok(vec![
            b("made"),
            b(e.as_str()),
            b("runnable"),
            b("eligible"),
            b(""),
        ]),
        ok(vec![
            b("created"),
            b("nope"),
            b("runnable"),
            b("eligible"),
            b(""),
        ]),
        ok(vec![
            b("created"),
            b(e.as_str()),
            b("running"),
            b("eligible"),
            b(""),
        ]),
        ok(vec![
            b("created"),
            b(e.as_str()),
            b("runnable"),
            b("soon"),
            b(""),
        ]),
        ok(vec![
            b("created"),
            b(e.as_str()),
            b("terminal"),
            b(""),
            b("won"),
        ]),
        // terminal without an outcome contradicts the state model
        ok(vec![
            b("created"),
            b(e.as_str()),
            b("terminal"),
            b(""),
            b(""),
        ]),
    ] {
        assert_decode_error(decode_create(&bad));
    }

    let many = ok(vec![
        i(3),
        b(e.as_str()),
        full.clone(),
        Reply::Array(vec![i(0), b("lane_paused"), b("mail")]),
    ]);
    let got = decode_create_many(&many, 3).unwrap();
    assert_eq!(
        got[0],
        Ok(Created {
            execution: e.clone(),
            created: true,
            state: PublicState::Waiting
        })
    );
    assert_eq!(got[1], decode_create(&full));
    assert_eq!(
        got[2],
        Err(CallError::Rejected(FfError::LanePaused("mail".into())))
    );
    assert_decode_error(decode_create_many(&many, 2));
    assert_decode_error(decode_create_many(&ok(vec![i(3), b(e.as_str())]), 3));
    assert_decode_error(
        decode_create_many(&ok(vec![i(1), b("bad")]), 1)
            .unwrap()
            .remove(0),
    );
}

fn claim_args(caps: Vec<String>, skip: u32) -> ClaimArgs {
    ClaimArgs {
        partition: Partition::new(PartitionFamily::Flow, 5),
        lane: Lane::new("mail").unwrap(),
        worker: WorkerName::new("w").unwrap(),
        instance: WorkerInstance::new("w-1").unwrap(),
        lease_ttl_ms: 30_000,
        max: 2,
        lease_id: LeaseId::from_u128(1),
        capabilities: caps,
        skip,
    }
}

#[test]
fn claim_args_by_options() {
    let l1 = LeaseId::from_u128(1).to_string();
    let base = ["mail", "w", "w-1", "30000", "2", &l1];
    let key = ["ff:idx:{fp:5}:eligible:mail"];
    assert_call(
        &claim(&claim_args(vec![], 0)),
        "ff_claim",
        &key,
        &base,
        false,
    );
    let mut with_caps = base.to_vec();
    with_caps.push("gpu,ssd");
    assert_call(
        &claim(&claim_args(vec!["gpu".into(), "ssd".into()], 0)),
        "ff_claim",
        &key,
        &with_caps,
        false,
    );
    let mut with_skip = base.to_vec();
    with_skip.extend(["", "64"]);
    assert_call(
        &claim(&claim_args(vec![], 64)),
        "ff_claim",
        &key,
        &with_skip,
        false,
    );
    assert_eq!(ROUTE_LOOKAHEAD, 64);
    assert_eq!(MAX_CLAIM_SKIP, 65_536);
}

/// `ff_claim`'s reply of one claim (`e`, epoch 3, lease until 9 000, kind
/// send, payload p, no admission) and the `skipped` (id, capabilities) after.
fn one_claimed(e: &ExecutionId, skipped: &[(&ExecutionId, &str)]) -> Reply {
    let mut v = vec![
        i(1),
        i(9000),
        b(e.as_str()),
        i(3),
        b("send"),
        b("p"),
        i(0),
        i(skipped.len() as i64),
    ];
    for (s, caps) in skipped {
        v.extend([b(s.as_str()), b(caps)]);
    }
    ok(v)
}

#[test]
fn decode_claims() {
    let id = LeaseId::from_u128(1);
    let (e1, e2) = (eid(1), eid(2));
    let one = one_claimed(&e1, &[(&e2, "gpu")]);
    let (got, skipped) = decode_claim_routed(&one, &id, 2).unwrap();
    assert_eq!(
        got,
        vec![Claimed {
            lease: Lease {
                execution: e1.clone(),
                id: id.clone(),
                epoch: 3
            },
            attempt: 3,
            lease_expires_at_ms: 9000,
            kind: Kind::new("send").unwrap(),
            payload: b"p".to_vec(),
            admission: Admission::default(),
        }]
    );
    assert_eq!(
        skipped,
        vec![Unroutable {
            execution: e2.clone(),
            capabilities: vec!["gpu".into()]
        }]
    );
    assert_eq!(decode_claim(&one, &id, 2).unwrap(), got);

    // Both handed out, with their admissions listed.
    let two = ok(vec![
        i(2),
        i(9000),
        b(e1.as_str()),
        i(1),
        b("send"),
        b(""),
        b(e2.as_str()),
        i(1),
        b("send"),
        Reply::Nil,
        i(2),
        b("b1;"),
        b(""),
        i(0),
    ]);
    let got = decode_claim(&two, &id, 2).unwrap();
    assert_eq!(got.len(), 2);
    // (one lease id for the whole claim, each execution under its own epoch)
    assert_eq!(got[1].lease.id, id);
    assert_eq!(got[1].payload, b"");
    assert_eq!(got[0].admission.budgets, [BudgetId::parse("b1").unwrap()]);
    assert!(got[1].admission.is_empty());

    let empty = ok(vec![i(0), i(0), i(0), i(0)]);
    assert_eq!(decode_claim_routed(&empty, &id, 2), Ok((vec![], vec![])));
    // A count past the claim's, or negative.
    assert_decode_error(decode_claim(&ok(vec![i(3), i(0)]), &id, 2));
    assert_decode_error(decode_claim(&ok(vec![i(-1), i(0)]), &id, 2));
    assert_decode_error(decode_claim(&ok(vec![i(0), i(-5), i(0), i(0)]), &id, 2));
    // Admissions listed for some but not all.
    let partial = ok(vec![
        i(2),
        i(9000),
        b(e1.as_str()),
        i(1),
        b("send"),
        b(""),
        b(e2.as_str()),
        i(1),
        b("send"),
        b(""),
        i(1),
        b("b1;"),
        i(0),
    ]);
    assert_decode_error(decode_claim(&partial, &id, 2));
    // An epoch past u32 cannot be an attempt number.
    let big = ok(vec![
        i(1),
        i(9000),
        b(e1.as_str()),
        i(1 << 32),
        b("send"),
        b(""),
        i(0),
        i(0),
    ]);
    assert_decode_error(decode_claim(&big, &id, 2));
    let bad_kind = ok(vec![
        i(1),
        i(9000),
        b(e1.as_str()),
        i(1),
        b("a b"),
        b(""),
        i(0),
        i(0),
    ]);
    assert_decode_error(decode_claim(&bad_kind, &id, 2));
    let bad_adm = ok(vec![
        i(1),
        i(9000),
        b(e1.as_str()),
        i(1),
        b("k"),
        b(""),
        i(1),
        b("x"),
        i(0),
    ]);
    assert_decode_error(decode_claim(&bad_adm, &id, 2));
    let bad_caps = ok(vec![i(0), i(0), i(0), i(1), b(e2.as_str()), b("a b")]);
    assert_decode_error(decode_claim(&bad_caps, &id, 2));
    let neg_skipped = ok(vec![i(0), i(0), i(0), i(-1)]);
    assert_eq!(
        decode_claim_routed(&neg_skipped, &id, 2),
        Ok((vec![], vec![]))
    );
}

#[test]
fn fenced_calls() {
    let l = lease(1);
    let e = eid(1).to_string();
    let k = format!("ff:exec:{e}");
    let lid = LeaseId::from_u128(0x11).to_string();
    assert_call(
        &renew(&l, 500),
        "ff_renew",
        &[&k],
        &[&e, &lid, "2", "500"],
        false,
    );
    assert_eq!(decode_renew(&ok(vec![i(1234)])), Ok(1234));
    assert_decode_error(decode_renew(&ok(vec![i(-1)])));
    assert_call(
        &complete(&l, b"r"),
        "ff_complete",
        &[&k],
        &[&e, &lid, "2", "r"],
        false,
    );
    assert_call(
        &fail(&l, "boom", true),
        "ff_fail",
        &[&k],
        &[&e, &lid, "2", "boom", "1"],
        false,
    );
    assert_eq!(args(&fail(&l, "boom", false))[4], "0");
    assert_call(
        &delay(&l, 70),
        "ff_delay",
        &[&k],
        &[&e, &lid, "2", "70"],
        false,
    );
    assert_call(&release(&l), "ff_release", &[&k], &[&e, &lid, "2"], false);
    assert_call(
        &cancel(&eid(1), "why"),
        "ff_cancel",
        &[&k],
        &[&e, "why"],
        false,
    );
}

#[test]
fn end_many_and_its_reply() {
    let r1 = Report::Complete {
        lease: lease(1),
        result: b"ok".to_vec(),
    };
    let r2 = Report::Fail {
        lease: lease(2),
        error: "bad".into(),
        retryable: true,
    };
    assert_eq!(r1.lease(), &lease(1));
    assert_eq!(r2.lease(), &lease(2));
    let lid = LeaseId::from_u128(0x11).to_string();
    let (e1, e2) = (eid(1).to_string(), eid(2).to_string());
    let p = Partition::new(PartitionFamily::Flow, 5);
    assert_call(
        &end_many(p, &[r1, r2]),
        "ff_end_many",
        &["ff:idx:{fp:5}:lease_expiry"],
        &[
            "2", "complete", &e1, &lid, "2", "ok", "0", "fail", &e2, &lid, "2", "bad", "1",
        ],
        false,
    );
    let reply = ok(vec![
        i(2),
        i(1),
        ok(vec![b("retry_scheduled"), i(800), i(1)]),
    ]);
    assert_eq!(
        decode_end_many(&reply, 2),
        Ok(vec![
            Ok(Ended {
                outcome: EndOutcome::Completed,
                replayed: false
            }),
            Ok(Ended {
                outcome: EndOutcome::RetryScheduled { due_at_ms: 800 },
                replayed: true
            })
        ])
    );
    assert_decode_error(decode_end_many(&reply, 3));
    // With a claim: its reply after the reports', decoded as ff_claim's; a
    // refused claim leaves the reports' answers.
    let id = LeaseId::from_u128(7);
    let claimed = one_claimed(&eid(1), &[]);
    let (each, claim) = decode_end_many_claim(&ok(vec![i(1), i(1), claimed]), 1, &id, 1).unwrap();
    assert_eq!(
        each,
        vec![Ok(Ended {
            outcome: EndOutcome::Completed,
            replayed: false
        })]
    );
    let (got, skipped) = claim.unwrap();
    assert_eq!(
        got.iter()
            .map(|c| (c.lease.execution.clone(), c.lease.id.clone(), c.attempt))
            .collect::<Vec<_>>(),
        vec![(eid(1), id.clone(), 3)]
    );
    assert!(skipped.is_empty());
    let (each, claim) = decode_end_many_claim(&ok(vec![i(1), i(1), refusal()]), 1, &id, 1).unwrap();
    assert_eq!(each.len(), 1);
    assert_refused(claim);
    // The claim's reply missing, or one element too many.
    assert_decode_error(decode_end_many_claim(&ok(vec![i(1), i(1)]), 1, &id, 1));
    assert_decode_error(decode_end_many_claim(
        &ok(vec![i(1), i(1), ok(vec![i(0), i(0), i(0)]), i(0)]),
        1,
        &id,
        1,
    ));
}

#[test]
fn decode_endings() {
    let d = |o: &str, due, rep| decode_ended("ff_fail", &ok(vec![b(o), i(due), i(rep)]));
    let e = |outcome, replayed| Ok(Ended { outcome, replayed });
    assert_eq!(d("completed", 0, 0), e(EndOutcome::Completed, false));
    assert_eq!(d("failed", 0, 1), e(EndOutcome::Failed, true));
    assert_eq!(d("cancelled", 0, 0), e(EndOutcome::Cancelled, false));
    assert_eq!(
        d("retry_scheduled", 5, 0),
        e(EndOutcome::RetryScheduled { due_at_ms: 5 }, false)
    );
    assert_eq!(
        d("delayed", 6, 0),
        e(EndOutcome::Delayed { due_at_ms: 6 }, false)
    );
    assert_eq!(d("released", 0, 0), e(EndOutcome::Released, false));
    assert_decode_error(d("lost", 0, 0));
    assert_decode_error(d("failed", -1, 0));
    assert!(is_fenced_out(&CallError::Rejected(FfError::StaleLease)));
    assert!(is_fenced_out(&CallError::Rejected(FfError::NotActive(
        String::new()
    ))));
    assert!(!is_fenced_out(&CallError::Rejected(FfError::NotFound)));
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

const BASE: [(&str, &str); 5] = [
    ("ns", "shop"),
    ("lane", "mail"),
    ("kind", "send"),
    ("retry", "2:f:500"),
    ("pri", "7"),
];

fn record(extra: &[(&str, &str)]) -> Result<ExecutionRecord, ff_core::reply::DecodeError> {
    let mut m = fields(&BASE);
    m.extend(fields(extra));
    ExecutionRecord::from_fields(&eid(1), &m, 777)
}

#[test]
fn fields_a_creation_leaves_out_read_as_the_spec_defaults() {
    let m = fields(&[
        ("lane", "mail"),
        ("kind", "send"),
        ("phase", "runnable"),
        ("elig", "eligible"),
    ]);
    let r = ExecutionRecord::from_fields(&eid(1), &m, 0).unwrap();
    assert_eq!(r.namespace.as_str(), "default");
    assert_eq!(r.priority, 0);
    assert_eq!(r.attempt_timeout_ms, 0);
    assert_eq!(r.retry, RetryPolicy::default());
    assert_eq!(r.max_reclaims, 3);
    assert_eq!(r.retention_ms, 86_400_000);
    // (present, a field is read as stored)
    let r = record(&[
        ("phase", "runnable"),
        ("elig", "eligible"),
        ("max_reclaims", "0"),
    ])
    .unwrap();
    assert_eq!(
        (r.namespace.as_str(), r.priority, r.max_reclaims),
        ("shop", 7, 0)
    );
}

#[test]
fn get_decodes_an_active_record() {
    let e = eid(1);
    let lid = LeaseId::from_u128(0x11);
    let wp1 = WaitpointId::from_u128(1);
    let wp2 = WaitpointId::from_u128(2);
    assert_call(
        &get(&e),
        "ff_get",
        &[&format!("ff:exec:{e}")],
        &[e.as_str()],
        true,
    );
    let wps = format!("{wp1},{wp2}");
    let flow = FlowId::from_u128(0xf).to_string();
    let mut items = vec![i(777)];
    let pairs = [
        ("ns", "shop"),
        ("lane", "mail"),
        ("kind", "send"),
        ("pri", "7"),
        ("phase", "active"),
        ("elig", ""),
        ("outcome", ""),
        ("epoch", "3"),
        ("lease_id", lid.as_str()),
        ("by", "w w-1"),
        ("retries", "1"),
        ("reclaims", "2"),
        ("lease_exp", "9000"),
        ("due", "1"),
        ("deadline", "99999"),
        ("att_timeout", "500"),
        ("att_due", "1500"),
        ("retry", "2:f:500"),
        ("max_reclaims", "4"),
        ("retention", "60000"),
        ("payload", "in"),
        ("error", "last"),
        ("progress", "half"),
        ("created", "100"),
        ("ended", ""),
        ("tag.tenant", "t1"),
        ("flow", &flow),
        ("join", "any"),
        ("wps", &wps),
        ("susp_wps", &wps),
        ("susp_due", "5"),
        ("resumes", "1"),
        ("sigs", "6"),
    ];
    for (k, v) in pairs {
        items.push(b(k));
        items.push(b(v));
    }
    let r = decode_get(&e, &ok(items)).unwrap();
    let want = ExecutionRecord {
        execution: e.clone(),
        namespace: Namespace::new("shop").unwrap(),
        lane: Lane::new("mail").unwrap(),
        kind: Kind::new("send").unwrap(),
        priority: 7,
        state: StateVector {
            phase: LifecyclePhase::Active,
            eligibility: None,
            outcome: None,
        },
        public_state: PublicState::Active,
        attempt: 3,
        attempt_state: Some(AttemptState::Running),
        retries: 1,
        reclaims: 2,
        lease_epoch: 3,
        lease: Some(Lease {
            execution: e.clone(),
            id: lid.clone(),
            epoch: 3,
        }),
        lease_expires_at_ms: Some(9000),
        worker: Some("w".into()),
        worker_instance: Some("w-1".into()),
        // only a delayed execution has a due time
        delayed_until_ms: None,
        deadline_at_ms: Some(99999),
        attempt_timeout_ms: 500,
        attempt_due_ms: Some(1500),
        retry: RetryPolicy::fixed(2, 500),
        max_reclaims: 4,
        retention_ms: 60000,
        payload: b"in".to_vec(),
        result: None,
        last_error: Some("last".into()),
        progress: Some(b"half".to_vec()),
        created_at_ms: 100,
        ended_at_ms: None,
        tags: BTreeMap::from([("tenant".to_owned(), "t1".to_owned())]),
        flow: Some((FlowId::from_u128(0xf), JoinPolicy::AnyOf)),
        waitpoints: vec![wp1, wp2],
        // only a suspended execution waits on waitpoints
        suspended_on: vec![],
        suspension_due_ms: None,
        resumes: 1,
        signals: 6,
        read_at_ms: 777,
    };
    assert_eq!(r, want);
    // A trailing odd field is ignored; a negative read time is not.
    assert_decode_error(decode_get(&e, &ok(vec![i(-1)])));
}

#[test]
fn get_decodes_other_phases() {
    let wp = WaitpointId::from_u128(3).to_string();
    let r = record(&[
        ("phase", "suspended"),
        ("susp_wps", &wp),
        ("susp_due", "50"),
        ("lease_id", "ignored"),
        ("by", "w w-1"),
        ("lease_exp", "1"),
        ("att_due", "1"),
        ("att_state", "suspended"),
    ])
    .unwrap();
    assert_eq!(r.public_state, PublicState::Suspended);
    assert_eq!(r.suspended_on, [WaitpointId::from_u128(3)]);
    assert_eq!(r.suspension_due_ms, Some(50));
    assert_eq!(r.lease, None);
    assert_eq!((r.worker, r.worker_instance), (None, None));
    assert_eq!(r.lease_expires_at_ms, None);
    assert_eq!(r.attempt_due_ms, None);
    assert_eq!(r.attempt_state, Some(AttemptState::Suspended));

    let r = record(&[("phase", "runnable"), ("elig", "delayed"), ("due", "42")]).unwrap();
    assert_eq!(r.public_state, PublicState::Delayed);
    assert_eq!(r.state.eligibility, Some(Eligibility::Delayed));
    assert_eq!(r.delayed_until_ms, Some(42));
    assert_eq!(r.attempt_state, None);
    assert_eq!(r.flow, None);

    let r = record(&[("phase", "runnable"), ("elig", "eligible"), ("due", "42")]).unwrap();
    assert_eq!(r.delayed_until_ms, None);

    // A completion stores no attempt state and, for an empty result, no result.
    let r = record(&[
        ("phase", "terminal"),
        ("outcome", "success"),
        ("ended", "9"),
    ])
    .unwrap();
    assert_eq!(r.public_state, PublicState::Completed);
    assert_eq!(r.state.outcome, Some(TerminalOutcome::Success));
    assert_eq!(r.attempt_state, Some(AttemptState::Succeeded));
    assert_eq!(r.result, Some(Vec::new()));
    assert_eq!(r.ended_at_ms, Some(9));
    let r = record(&[
        ("phase", "terminal"),
        ("outcome", "success"),
        ("result", "R"),
    ])
    .unwrap();
    assert_eq!(r.result, Some(b"R".to_vec()));
    let r = record(&[
        ("phase", "terminal"),
        ("outcome", "failed"),
        ("att_state", "failed"),
    ])
    .unwrap();
    assert_eq!(r.result, None);
    assert_eq!(r.attempt_state, Some(AttemptState::Failed));

    // `by` without an instance; a flow member without a join reads as all.
    let lid = LeaseId::from_u128(1).to_string();
    let flow = FlowId::from_u128(2).to_string();
    let r = record(&[
        ("phase", "active"),
        ("lease_id", &lid),
        ("by", "solo"),
        ("flow", &flow),
    ])
    .unwrap();
    assert_eq!(
        (r.worker.as_deref(), r.worker_instance),
        (Some("solo"), None)
    );
    assert_eq!(r.flow, Some((FlowId::from_u128(2), JoinPolicy::AllOf)));
    // Absent counters read as 0; the defaults of a bare record.
    assert_eq!(
        (r.retries, r.reclaims, r.resumes, r.signals, r.attempt),
        (0, 0, 0, 0, 0)
    );
    assert_eq!(r.created_at_ms, 0);
    assert_eq!(r.priority, 7);
    assert_eq!(r.read_at_ms, 777);
}

#[test]
fn get_refuses_broken_records() {
    let lid = LeaseId::from_u128(1).to_string();
    for bad in [
        vec![("phase", "paused")],
        vec![("phase", "runnable"), ("elig", "soon")],
        vec![("phase", "terminal"), ("outcome", "won")],
        vec![("phase", "terminal")],
        vec![("phase", "active")],
        vec![("phase", "active"), ("lease_id", "xyz")],
        vec![("phase", "runnable"), ("elig", "eligible"), ("pri", "high")],
        vec![
            ("phase", "runnable"),
            ("elig", "eligible"),
            ("retries", "4294967296"),
        ],
        vec![
            ("phase", "runnable"),
            ("elig", "eligible"),
            ("att_state", "dreaming"),
        ],
        vec![("phase", "runnable"), ("elig", "eligible"), ("wps", "a,b")],
        vec![("phase", "runnable"), ("elig", "eligible"), ("retry", "x")],
        vec![("phase", "runnable"), ("elig", "eligible"), ("flow", "x")],
        vec![
            ("phase", "runnable"),
            ("elig", "eligible"),
            ("flow", &lid),
            ("join", "some"),
        ],
        vec![("phase", "runnable"), ("elig", "eligible"), ("ns", "a b")],
        vec![("phase", "runnable"), ("elig", "eligible"), ("lane", "a b")],
        vec![("phase", "runnable"), ("elig", "eligible"), ("kind", "a b")],
    ] {
        assert!(record(&bad).is_err(), "{bad:?}");
    }
    let mut m = fields(&BASE);
    m.remove("lane");
    m.extend(fields(&[("phase", "runnable"), ("elig", "eligible")]));
    assert!(ExecutionRecord::from_fields(&eid(1), &m, 0).is_err());
    m.insert("lane".into(), b"fast".to_vec());
    let r = ExecutionRecord::from_hash(eid(1).as_str(), &m, 3).unwrap();
    assert_eq!(r.execution, eid(1));
    assert!(ExecutionRecord::from_hash("nope", &m, 3).is_err());
}
