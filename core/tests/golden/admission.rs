//! `contract::admission`: budgets, quotas, workers, block and unblock.

use crate::support::*;
use ff_core::admission::{budget_key, quota_key, QuotaLimits};
use ff_core::contract::admission::*;
use ff_core::contract::execution::Lease;

use ff_core::{
    BudgetId, ExecutionId, LeaseId, Partition, PartitionConfig, PartitionFamily, QuotaId,
};
use std::collections::BTreeMap;

fn cfg() -> PartitionConfig {
    PartitionConfig::default()
}

fn budget() -> BudgetId {
    BudgetId::parse("tokens").unwrap()
}

fn quota() -> QuotaId {
    QuotaId::parse("api").unwrap()
}

fn eid() -> ExecutionId {
    ExecutionId::new(3, 0xabc)
}

fn lease() -> Lease {
    Lease {
        execution: eid(),
        id: LeaseId::from_u128(0xde),
        epoch: 4,
    }
}

#[test]
fn breach_policy_spellings() {
    assert_eq!(BreachPolicy::Block.as_str(), "block");
    assert_eq!(BreachPolicy::Cancel.as_str(), "cancel");
    assert_eq!(BreachPolicy::parse(Some("cancel")), BreachPolicy::Cancel);
    assert_eq!(BreachPolicy::parse(Some("block")), BreachPolicy::Block);
    assert_eq!(BreachPolicy::parse(None), BreachPolicy::Block);
    assert_eq!(BreachPolicy::default(), BreachPolicy::Block);
}

#[test]
fn define_budget_args() {
    let def = BudgetDef {
        limits: BTreeMap::from([
            ("cost".to_owned(), DimensionLimits { hard: 9, soft: 5 }),
            ("calls".to_owned(), DimensionLimits { hard: 0, soft: 2 }),
        ]),
        reset_every_ms: 60_000,
        on_breach: BreachPolicy::Cancel,
    };
    let key = budget_key(&cfg(), &budget());
    let c = define_budget(&cfg(), &budget(), &def);
    assert_call(
        &c,
        "ff_budget_define",
        &[&key],
        &[
            "tokens", "60000", "2", "calls", "0", "2", "cost", "9", "5", "cancel",
        ],
        false,
    );
    assert!(c.repeatable);
    assert_eq!(
        decode_define("ff_budget_define", &ok(vec![b("created")])),
        Ok(true)
    );
    assert_eq!(
        decode_define("ff_budget_define", &ok(vec![b("updated")])),
        Ok(false)
    );
    assert_decode_error(decode_define("ff_budget_define", &ok(vec![b("made")])));
    assert_refused(decode_define("ff_budget_define", &refusal()));
}

#[test]
fn report_usage_args_and_reply() {
    let r = UsageReport {
        execution: eid(),
        attempt: 2,
        seq: 7,
        deltas: vec![("tokens".into(), 100), ("calls".into(), 1)],
    };
    let c = report_usage(&cfg(), &budget(), &r);
    let e = eid().to_string();
    assert_call(
        &c,
        "ff_report_usage",
        &[&budget_key(&cfg(), &budget())],
        &["tokens", &e, "2", "7", "2", "tokens", "100", "calls", "1"],
        false,
    );
    let d = |o, br, s| decode_report_usage(&ok(vec![b(o), i(br), i(s)]));
    assert_eq!(
        d("applied", 1, 0),
        Ok(UsageReported {
            applied: true,
            breached: true,
            soft_reached: false
        })
    );
    assert_eq!(
        d("duplicate", 0, 1),
        Ok(UsageReported {
            applied: false,
            breached: false,
            soft_reached: true
        })
    );
    assert_decode_error(d("other", 0, 0));
    assert_decode_error(decode_report_usage(&ok(vec![b("applied"), i(0)])));
}

#[test]
fn reset_and_get_budget() {
    let key = budget_key(&cfg(), &budget());
    assert_call(
        &reset_budget(&cfg(), &budget(), 0xff),
        "ff_budget_reset",
        &[&key],
        &["tokens", "000000000000000000000000000000ff"],
        false,
    );
    assert_eq!(decode_reset_budget(&ok(vec![b("reset")])), Ok(true));
    assert_eq!(decode_reset_budget(&ok(vec![b("repeat")])), Ok(false));
    assert_decode_error(decode_reset_budget(&ok(vec![b("x")])));

    assert_call(
        &get_budget(&cfg(), &budget()),
        "ff_budget_get",
        &[&key],
        &["tokens"],
        true,
    );
    let reply = ok(vec![
        i(1000),
        b("use.tokens"),
        b("12"),
        b("hard.tokens"),
        b("100"),
        b("soft.tokens"),
        b("50"),
        b("soft.calls"),
        b("3"),
        b("breached"),
        b("1"),
        b("soft"),
        b("0"),
        b("every_ms"),
        b("60000"),
        b("next_reset"),
        b("61000"),
        b("on_breach"),
        b("cancel"),
        b("unknown_field"),
        b("x"),
    ]);
    let r = decode_get_budget(&reply).unwrap();
    assert_eq!(r.usage, BTreeMap::from([("tokens".to_owned(), 12)]));
    assert_eq!(
        r.limits,
        BTreeMap::from([
            (
                "tokens".to_owned(),
                DimensionLimits {
                    hard: 100,
                    soft: 50
                }
            ),
            ("calls".to_owned(), DimensionLimits { hard: 0, soft: 3 }),
        ])
    );
    assert!(r.breached);
    assert!(!r.soft_reached);
    assert_eq!(r.reset_every_ms, 60_000);
    assert_eq!(r.next_reset_ms, Some(61_000));
    assert_eq!(r.on_breach, BreachPolicy::Cancel);
    let r = decode_get_budget(&ok(vec![i(5), b("breached"), b("0"), b("soft"), b("1")])).unwrap();
    assert!(!r.breached && r.soft_reached);
    assert_eq!(r.next_reset_ms, None);
    assert_decode_error(decode_get_budget(&ok(vec![i(5), b("use.x"), b("many")])));
    assert_decode_error(decode_get_budget(&ok(vec![i(5), b("every_ms"), b("-1")])));
}

#[test]
fn quotas() {
    let key = quota_key(&cfg(), &quota());
    let l = QuotaLimits {
        window_ms: 1000,
        max_per_window: 10,
        concurrency: 2,
    };
    assert_call(
        &define_quota(&cfg(), &quota(), &l),
        "ff_quota_define",
        &[&key],
        &["api", "1000", "10", "2"],
        false,
    );
    let e = eid().to_string();
    assert_call(
        &admit(&cfg(), &quota(), &lease()),
        "ff_admit",
        &[&key],
        &["api", &e, "4"],
        false,
    );
    for o in ["admitted", "held", "unlimited"] {
        assert_eq!(decode_admit(&ok(vec![b(o), i(0)])), Ok(Admitted::Yes));
    }
    assert_eq!(
        decode_admit(&ok(vec![b("rate"), i(1500)])),
        Ok(Admitted::Rate { retry_at_ms: 1500 })
    );
    assert_decode_error(decode_admit(&ok(vec![b("rate"), i(-1)])));
    assert_eq!(
        decode_admit(&ok(vec![b("concurrency"), i(0)])),
        Ok(Admitted::Concurrency)
    );
    assert_decode_error(decode_admit(&ok(vec![b("full"), i(0)])));

    assert_call(
        &release_slot(&cfg(), &quota(), &eid(), 4, true),
        "ff_quota_release",
        &[&key],
        &["api", &e, "4", "1"],
        false,
    );
    assert_eq!(
        args(&release_slot(&cfg(), &quota(), &eid(), 4, false))[3],
        "0"
    );
    assert_eq!(decode_release_slot(&ok(vec![i(1)])), Ok(true));
    assert_eq!(decode_release_slot(&ok(vec![i(0)])), Ok(false));

    assert_call(
        &get_quota(&cfg(), &quota()),
        "ff_quota_get",
        &[&key],
        &["api"],
        true,
    );
    assert_call(
        &watch_quota(&cfg(), &quota()),
        "ff_quota_watch",
        &[&key],
        &["api"],
        false,
    );
    assert_eq!(decode_watch_quota(&ok(vec![i(1)])), Ok(true));
    assert_eq!(decode_watch_quota(&ok(vec![i(0)])), Ok(false));

    assert_eq!(
        decode_get_quota(&ok(vec![
            i(5000),
            i(1000),
            i(10),
            i(2),
            i(1),
            i(4100),
            i(4900)
        ])),
        Ok(QuotaRecord {
            now_ms: 5000,
            limits: l,
            holders: 1,
            admitted_at: vec![4100, 4900],
        })
    );
    assert_decode_error(decode_get_quota(&ok(vec![
        i(5000),
        i(-1),
        i(10),
        i(2),
        i(1),
    ])));
    assert_decode_error(decode_get_quota(&ok(vec![
        i(5000),
        i(1000),
        i(10),
        i(2),
        i(1),
        i(-3),
    ])));
}

#[test]
fn block_reasons_and_their_indexes() {
    let p = Partition::new(PartitionFamily::Flow, 9);
    assert_eq!(
        BlockReason::ALL.map(BlockReason::as_str),
        ["budget", "quota", "route"]
    );
    assert_eq!(BlockReason::Budget.index(p), "ff:idx:{fp:9}:blocked_budget");
    assert_eq!(BlockReason::Quota.index(p), "ff:idx:{fp:9}:blocked_quota");
    assert_eq!(BlockReason::Route.index(p), "ff:idx:{fp:9}:blocked_route");
}

#[test]
fn block_and_route() {
    let e = eid().to_string();
    let ek = format!("ff:exec:{e}");
    assert_call(&block_route(&eid()), "ff_block_route", &[&ek], &[&e], false);
    assert_eq!(decode_block_route(&ok(vec![b("blocked")])), Ok(true));
    assert_eq!(decode_block_route(&ok(vec![b("skipped")])), Ok(false));
    assert_decode_error(decode_block_route(&ok(vec![b("moved")])));

    let lid = LeaseId::from_u128(0xde).to_string();
    assert_call(
        &block(&lease(), BlockReason::Quota, "api"),
        "ff_block",
        &[&ek],
        &[&e, &lid, "4", "quota", "api"],
        false,
    );
    assert_call(
        &cancel_for_breach(&lease(), &budget()),
        "ff_block",
        &[&ek],
        &[&e, &lid, "4", "cancel", "tokens"],
        false,
    );
    assert_eq!(decode_block(&ok(vec![b("blocked"), i(0), i(0)])), Ok(true));
    assert_eq!(
        decode_block(&ok(vec![b("cancelled"), i(0), i(0)])),
        Ok(true)
    );
    assert_eq!(decode_block(&ok(vec![b("blocked"), i(0), i(1)])), Ok(false));
    assert_decode_error(decode_block(&ok(vec![b("delayed"), i(0), i(0)])));
    assert_decode_error(decode_block(&ok(vec![b("blocked"), i(0)])));
    assert_refused(decode_block(&refusal()));
}

#[test]
fn workers() {
    let caps = vec!["gpu".to_owned(), "ssd".to_owned()];
    assert_call(
        &register_worker("w-1", 30_000, &caps),
        "ff_worker_register",
        &[WORKERS],
        &["w-1", "30000", "gpu,ssd"],
        false,
    );
    assert_eq!(WORKERS, "ff:workers");
    assert_eq!(decode_register_worker(&ok(vec![i(99)])), Ok(99));
    assert_decode_error(decode_register_worker(&ok(vec![i(-1)])));
    assert_call(&live_workers(), "ff_workers_live", &[WORKERS], &[], false);
    assert_eq!(
        decode_live_workers(&ok(vec![b("w-1"), b("gpu,ssd"), b("w-2"), b("")])),
        Ok(vec![
            ("w-1".to_owned(), caps.clone()),
            ("w-2".to_owned(), Vec::new())
        ])
    );
    assert_decode_error(decode_live_workers(&ok(vec![b("w-1"), b("bad cap")])));
}

#[test]
fn unblock_scanner_calls() {
    let p = Partition::new(PartitionFamily::Flow, 2);
    let ids = [ExecutionId::new(2, 1), ExecutionId::new(2, 2)];
    let (a, z) = (ids[0].to_string(), ids[1].to_string());
    assert_call(
        &breach_cancel(p, BlockReason::Budget, &budget(), &ids),
        "ff_breach_cancel",
        &["ff:idx:{fp:2}:blocked_budget"],
        &["tokens", &a, &z],
        false,
    );
    assert_eq!(decode_breach_cancel(&ok(vec![i(2), i(1)])), Ok((2, 1)));
    assert_decode_error(decode_breach_cancel(&ok(vec![i(-2), i(1)])));
    assert_decode_error(decode_breach_cancel(&ok(vec![i(2), i(-1)])));
    assert_call(
        &unblock(p, BlockReason::Route, &ids),
        "ff_unblock",
        &["ff:idx:{fp:2}:blocked_route"],
        &[&a, &z],
        false,
    );
    assert_eq!(decode_unblock(&ok(vec![i(3), i(0)])), Ok((3, 0)));
    assert_decode_error(decode_unblock(&ok(vec![i(-3), i(0)])));
    assert_decode_error(decode_unblock(&ok(vec![i(3), i(-1)])));
}

#[test]
fn reset_and_reconcile_scanner_calls() {
    let bp = Partition::new(PartitionFamily::Budget, 4);
    assert_call(
        &budget_resets(bp, 200),
        "ff_budget_resets",
        &["ff:idx:{b:4}:resets"],
        &["200"],
        false,
    );
    assert_eq!(
        decode_budget_resets(&ok(vec![i(3), i(7000)])),
        Ok((3, Some(7000)))
    );
    assert_eq!(decode_budget_resets(&ok(vec![i(0), i(-1)])), Ok((0, None)));
    assert_decode_error(decode_budget_resets(&ok(vec![i(-1), i(0)])));

    assert_call(
        &budget_reconcile(bp, "17", 50),
        "ff_budget_reconcile",
        &["ff:idx:{b:4}:budgets"],
        &["17", "50"],
        false,
    );
    assert_eq!(
        decode_budget_reconcile(&ok(vec![b("0"), i(5), i(1)])),
        Ok(("0".to_owned(), 5, 1))
    );
    assert_decode_error(decode_budget_reconcile(&ok(vec![b("0"), i(-5), i(1)])));

    let qp = Partition::new(PartitionFamily::Quota, 1);
    assert_call(
        &quota_reconcile(qp, "0", 20),
        "ff_quota_reconcile",
        &["ff:idx:{q:1}:quotas"],
        &["0", "20"],
        false,
    );
    let e = ExecutionId::new(5, 9);
    let step = decode_quota_reconcile(&ok(vec![
        b("33"),
        i(4),
        b("api"),
        b(e.as_str()),
        b("2"),
        b("gpu"),
        b(e.as_str()),
        b("3"),
    ]))
    .unwrap();
    assert_eq!(
        step,
        QuotaReconcileStep {
            cursor: "33".into(),
            trimmed: 4,
            holders: vec![
                Holder {
                    quota: quota(),
                    execution: e.clone(),
                    epoch: 2
                },
                Holder {
                    quota: QuotaId::parse("gpu").unwrap(),
                    execution: e.clone(),
                    epoch: 3
                },
            ],
        }
    );
    assert_decode_error(decode_quota_reconcile(&ok(vec![b("0"), i(-1)])));
    assert_decode_error(decode_quota_reconcile(&ok(vec![
        b("0"),
        i(0),
        b("api"),
        b(e.as_str()),
        b("x"),
    ])));
    assert_decode_error(decode_quota_reconcile(&ok(vec![
        b("0"),
        i(0),
        b("a b"),
        b(e.as_str()),
        b("1"),
    ])));
    assert_decode_error(decode_quota_reconcile(&ok(vec![
        b("0"),
        i(0),
        b("api"),
        b("nope"),
        b("1"),
    ])));
}
