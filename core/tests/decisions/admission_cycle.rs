//! The admission scanners' cycles (`scan::admission`), driven like the
//! shell's runner drives them: the in-use check, budget resets, the budget
//! and quota reconcilers' walks, quota holders checked and released. (Only
//! the shell's integration tests ran them before.)

use ff_core::admission::{quota_key, IN_USE};
use ff_core::contract::scan::ScannerFilter;
use ff_core::reply::Reply;
use ff_core::scan::{AdmissionScan, CycleReport, Notice, ScanWork, Schedule, Settings};
use ff_core::{ExecutionId, PartitionConfig, QuotaId};

const NOW: u64 = 50_000;

fn config() -> PartitionConfig {
    PartitionConfig {
        flow_partitions: 1,
        budget_partitions: 2,
        quota_partitions: 1,
    }
}

fn schedule(scan: AdmissionScan) -> Schedule {
    Schedule::new(Settings {
        work: ScanWork::Admission(scan),
        interval_ms: 1000,
        batch: 10,
        rescan_ms: 3_600_000,
        config: config(),
        filter: ScannerFilter::default(),
    })
}

fn ok(items: Vec<Reply>) -> Result<Reply, String> {
    let mut v = vec![Reply::Int(1)];
    v.extend(items);
    Ok(Reply::Array(v))
}

fn args(c: &ff_core::contract::Call) -> Vec<String> {
    c.args
        .iter()
        .map(|a| String::from_utf8(a.clone()).unwrap())
        .collect()
}

/// Begin a cycle and answer the in-use check.
fn in_use(s: &mut Schedule, answer: Result<Reply, String>) {
    s.begin_cycle(NOW);
    assert_eq!(
        s.poll_reads(),
        [vec!["EXISTS".to_owned(), IN_USE.to_owned()]]
    );
    s.handle_reads(vec![answer]);
}

#[test]
fn budget_resets() {
    let mut s = schedule(AdmissionScan::BudgetReset);
    in_use(&mut s, Ok(Reply::Int(1)));
    let calls = s.poll_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].function, "ff_budget_resets");
    assert_eq!(calls[0].keys, ["ff:idx:{b:0}:resets"]);
    assert_eq!(calls[1].keys, ["ff:idx:{b:1}:resets"]);
    assert_eq!(args(&calls[0]), ["10"]);
    s.handle_results(vec![
        ok(vec![Reply::Int(10), Reply::Int(60_000)]),
        ok(vec![Reply::Int(3), Reply::Int(-1)]),
    ]);
    assert!(s.poll_calls().is_empty());
    assert_eq!(
        s.end_cycle(),
        CycleReport {
            acted: 13,
            ..CycleReport::default()
        }
    );
    // A full batch: read again at once; otherwise at the next due reset.
    assert_eq!((s.slot(0).next_due, s.slot(0).dirty), (Some(60_000), true));
    assert_eq!((s.slot(1).next_due, s.slot(1).dirty), (None, false));
    // Known in use now: no second EXISTS.
    s.begin_cycle(NOW + 1);
    assert!(s.poll_reads().is_empty());
    assert_eq!(s.poll_calls().len(), 1);
}

#[test]
fn an_unknown_or_unused_admission_does_nothing() {
    let mut s = schedule(AdmissionScan::BudgetReset);
    in_use(&mut s, Ok(Reply::Int(0)));
    assert!(s.poll_calls().is_empty());
    assert_eq!(s.end_cycle(), CycleReport::default());
    let mut s = schedule(AdmissionScan::BudgetReset);
    in_use(&mut s, Err("LOADING".into()));
    assert!(s.poll_calls().is_empty());
    let r = s.end_cycle();
    assert_eq!(r.errors, 1);
    assert_eq!(r.notices, [Notice::InUseUnknown("LOADING".into())]);
    assert_eq!(s.slot(0).next_due, Some(NOW + 1000));
    assert_eq!(s.slot(1).next_due, Some(NOW + 1000));
}

#[test]
fn a_bad_answer_fails_the_cycle() {
    let mut s = schedule(AdmissionScan::BudgetReset);
    in_use(&mut s, Ok(Reply::Int(1)));
    s.poll_calls();
    s.handle_results(vec![ok(vec![Reply::Int(-1), Reply::Int(0)]), ok(vec![])]);
    let r = s.end_cycle();
    assert_eq!((r.errors, r.acted), (1, 0));
    assert!(matches!(
        &r.notices[..],
        [Notice::AdmissionFailed { partitions: 2, .. }]
    ));
    assert_eq!(s.slot(1).next_due, Some(NOW + 1000));
}

#[test]
fn the_budget_reconciler_walks_until_cursor_zero() {
    let mut s = schedule(AdmissionScan::BudgetReconcile);
    in_use(&mut s, Ok(Reply::Int(1)));
    let calls = s.poll_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].function, "ff_budget_reconcile");
    assert_eq!(calls[0].keys, ["ff:idx:{b:0}:budgets"]);
    assert_eq!(args(&calls[1]), ["0", "10"]);
    s.handle_results(vec![
        ok(vec![Reply::bulk("7"), Reply::Int(4), Reply::Int(1)]),
        ok(vec![Reply::bulk("0"), Reply::Int(2), Reply::Int(0)]),
    ]);
    let calls = s.poll_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].keys, ["ff:idx:{b:0}:budgets"]);
    assert_eq!(args(&calls[0]), ["7", "10"]);
    s.handle_results(vec![ok(vec![
        Reply::bulk("0"),
        Reply::Int(3),
        Reply::Int(2),
    ])]);
    assert!(s.poll_calls().is_empty());
    assert_eq!(
        s.end_cycle(),
        CycleReport {
            acted: 6,
            repaired: 3,
            backlog: 9,
            ..CycleReport::default()
        }
    );
}

#[test]
fn the_quota_reconciler_releases_the_slots_of_gone_holders() {
    let mut s = schedule(AdmissionScan::QuotaReconcile);
    in_use(&mut s, Ok(Reply::Int(1)));
    let calls = s.poll_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].function, "ff_quota_reconcile");
    assert_eq!(calls[0].keys, ["ff:idx:{q:0}:quotas"]);
    let (e1, e2, e3) = (
        ExecutionId::new(0, 1),
        ExecutionId::new(0, 2),
        ExecutionId::new(0, 3),
    );
    let b = Reply::bulk;
    s.handle_results(vec![ok(vec![
        b("0"),
        Reply::Int(3),
        b("api"),
        b(e1.as_str()),
        b("2"),
        b("api"),
        b(e2.as_str()),
        b("5"),
        b("gpu"),
        b(e3.as_str()),
        b("1"),
    ])]);
    let reads = s.poll_reads();
    let hmget = |e: &ExecutionId| {
        vec![
            "HMGET".to_owned(),
            format!("ff:exec:{e}"),
            "phase".into(),
            "epoch".into(),
        ]
    };
    assert_eq!(reads, [hmget(&e1), hmget(&e2), hmget(&e3)]);
    s.handle_reads(vec![
        Ok(Reply::Array(vec![b("active"), b("2")])),
        Ok(Reply::Array(vec![b("active"), b("6")])),
        Ok(Reply::Array(vec![Reply::Nil, Reply::Nil])),
    ]);
    // e1 is live at its epoch; e2 was claimed again since, e3 is gone.
    let calls = s.poll_calls();
    let api = QuotaId::parse("api").unwrap();
    let gpu = QuotaId::parse("gpu").unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].function, "ff_quota_release");
    assert_eq!(calls[0].keys, [quota_key(&config(), &api)]);
    assert_eq!(args(&calls[0]), ["api", e2.as_str(), "5", "0"]);
    assert_eq!(calls[1].keys, [quota_key(&config(), &gpu)]);
    assert_eq!(args(&calls[1]), ["gpu", e3.as_str(), "1", "0"]);
    s.handle_results(vec![ok(vec![Reply::Int(1)]), ok(vec![Reply::Int(0)])]);
    assert!(s.poll_calls().is_empty() && s.poll_reads().is_empty());
    assert_eq!(
        s.end_cycle(),
        CycleReport {
            acted: 1,
            repaired: 3,
            backlog: 3,
            ..CycleReport::default()
        }
    );

    // All live: nothing to release.
    let mut s = schedule(AdmissionScan::QuotaReconcile);
    in_use(&mut s, Ok(Reply::Int(1)));
    s.poll_calls();
    s.handle_results(vec![ok(vec![
        b("0"),
        Reply::Int(0),
        b("api"),
        b(e1.as_str()),
        b("2"),
    ])]);
    s.poll_reads();
    s.handle_reads(vec![Ok(Reply::Array(vec![b("active"), b("2")]))]);
    assert!(s.poll_calls().is_empty());
    assert_eq!(s.end_cycle().backlog, 1);
}

fn unblock_schedule() -> Schedule {
    schedule(AdmissionScan::Unblock)
}

fn zrange(index: &str) -> Vec<String> {
    [
        "ZRANGE",
        &format!("ff:idx:{{fp:0}}:{index}"),
        "0",
        "9",
        "WITHSCORES",
    ]
    .map(str::to_owned)
    .to_vec()
}

#[test]
fn the_unblock_scanner_moves_cancels_and_watches() {
    use ff_core::admission::budget_key;
    use ff_core::BudgetId;
    let b = Reply::bulk;
    let (ea, eb, ec, ed) = (
        ExecutionId::new(0, 0xa),
        ExecutionId::new(0, 0xb),
        ExecutionId::new(0, 0xc),
        ExecutionId::new(0, 0xd),
    );
    let mut s = unblock_schedule();
    in_use(&mut s, Ok(Reply::Int(1)));
    assert_eq!(
        s.poll_reads(),
        [
            zrange("blocked_budget"),
            zrange("blocked_quota"),
            zrange("blocked_route")
        ]
    );
    s.handle_reads(vec![
        Ok(Reply::Array(vec![b(ea.as_str()), b("1")])),
        Ok(Reply::Array(vec![
            b(eb.as_str()),
            b("2"),
            b(ec.as_str()),
            b("3"),
        ])),
        Ok(Reply::Array(vec![b(ed.as_str()), b("4")])),
    ]);
    // What each draws on, oldest first.
    let hget = |e: &ExecutionId| vec!["HGET".to_owned(), format!("ff:exec:{e}"), "adm".into()];
    assert_eq!(s.poll_reads(), [hget(&ea), hget(&eb), hget(&ec), hget(&ed)]);
    s.handle_reads(vec![
        Ok(b("b1;")),
        Ok(b(";q1")),
        Ok(b("gone;q1")),
        Ok(b(";;gpu")),
    ]);
    // Each budget's marker once, by name.
    let hmget = |name: &str| {
        let k = budget_key(&config(), &BudgetId::parse(name).unwrap());
        vec!["HMGET".to_owned(), k, "breached".into(), "on_breach".into()]
    };
    assert_eq!(s.poll_reads(), [hmget("b1"), hmget("gone")]);
    s.handle_reads(vec![
        Ok(Reply::Array(vec![b("0"), Reply::Nil])),
        Ok(Reply::Array(vec![b("1"), b("cancel")])),
    ]);
    // The quota's room, and the live workers (a route waiter is there).
    let calls = s.poll_calls();
    assert_eq!(
        calls.iter().map(|c| c.function).collect::<Vec<_>>(),
        ["ff_quota_get", "ff_workers_live"]
    );
    assert_eq!(args(&calls[0]), ["q1"]);
    s.handle_results(vec![
        ok(vec![
            Reply::Int(NOW as i64),
            Reply::Int(1000),
            Reply::Int(0),
            Reply::Int(1),
            Reply::Int(0),
        ]),
        ok(vec![b("w1"), b("gpu")]),
    ]);
    let calls = s.poll_calls();
    let shown: Vec<(&str, String, Vec<String>)> = calls
        .iter()
        .map(|c| (c.function, c.keys[0].clone(), args(c)))
        .collect();
    assert_eq!(
        shown,
        [
            (
                "ff_unblock",
                "ff:idx:{fp:0}:blocked_budget".to_owned(),
                vec![ea.to_string()]
            ),
            (
                "ff_unblock",
                "ff:idx:{fp:0}:blocked_quota".to_owned(),
                vec![eb.to_string()]
            ),
            (
                "ff_unblock",
                "ff:idx:{fp:0}:blocked_route".to_owned(),
                vec![ed.to_string()]
            ),
            (
                "ff_breach_cancel",
                "ff:idx:{fp:0}:blocked_quota".to_owned(),
                vec!["gone".to_owned(), ec.to_string()]
            ),
        ]
    );
    let pair = |a, r| ok(vec![Reply::Int(a), Reply::Int(r)]);
    s.handle_results(vec![pair(1, 0), pair(1, 0), pair(1, 0), pair(1, 0)]);
    assert!(s.poll_reads().is_empty() && s.poll_calls().is_empty());
    assert_eq!(
        s.end_cycle(),
        CycleReport {
            acted: 4,
            cancelled: 1,
            ..CycleReport::default()
        }
    );
}

#[test]
fn the_unblock_scanner_watches_a_full_quota() {
    let b = Reply::bulk;
    let (e1, e2) = (ExecutionId::new(0, 1), ExecutionId::new(0, 2));
    let mut s = unblock_schedule();
    in_use(&mut s, Ok(Reply::Int(1)));
    s.poll_reads();
    s.handle_reads(vec![
        Ok(Reply::Array(vec![])),
        Ok(Reply::Array(vec![
            b(e1.as_str()),
            b("1"),
            b(e2.as_str()),
            b("2"),
        ])),
        Ok(Reply::Array(vec![])),
    ]);
    s.poll_reads();
    s.handle_reads(vec![Ok(b(";q1")), Ok(b(";q1"))]);
    // No budget: straight to the quota (no route waiter: no worker read).
    let calls = s.poll_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].function, "ff_quota_get");
    // One place: the older goes, the other waits and the quota is watched.
    s.handle_results(vec![ok(vec![
        Reply::Int(NOW as i64),
        Reply::Int(1000),
        Reply::Int(0),
        Reply::Int(1),
        Reply::Int(0),
    ])]);
    let calls = s.poll_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].function, args(&calls[0])),
        ("ff_unblock", vec![e1.to_string()])
    );
    s.handle_results(vec![ok(vec![Reply::Int(1), Reply::Int(0)])]);
    let calls = s.poll_calls();
    assert_eq!(
        (calls[0].function, args(&calls[0])),
        ("ff_quota_watch", vec!["q1".to_owned()])
    );
    // Freed meanwhile: look again at once.
    s.handle_results(vec![ok(vec![Reply::Int(1)])]);
    assert!(s.poll_calls().is_empty());
    let r = s.end_cycle();
    assert_eq!((r.acted, r.backlog), (1, 1));
    assert!(s.slot(0).dirty);
    // The waiter looks again at the fallback (an interval) at the latest.
    assert_eq!(s.slot(0).next_due, Some(NOW + 1000));

    // The next cycle knows what they draw on: no HGET for e2.
    s.begin_cycle(NOW + 5);
    s.poll_reads();
    s.handle_reads(vec![
        Ok(Reply::Array(vec![])),
        Ok(Reply::Array(vec![b(e2.as_str()), b("2")])),
        Ok(Reply::Array(vec![])),
    ]);
    assert!(s.poll_reads().is_empty());
    assert_eq!(s.poll_calls()[0].function, "ff_quota_get");
}

#[test]
fn nothing_blocked_is_one_read_round() {
    let mut s = unblock_schedule();
    in_use(&mut s, Ok(Reply::Int(1)));
    s.poll_reads();
    s.handle_reads(vec![Ok(Reply::Array(vec![])); 3]);
    assert!(s.poll_reads().is_empty() && s.poll_calls().is_empty());
    assert_eq!(s.end_cycle(), CycleReport::default());
}

#[test]
fn a_full_blocked_read_is_read_again_at_once_after_its_moves() {
    // A batch (10) of budget waiters drawing on nothing: all let through,
    // and more may wait behind them, so the partition is read again at
    // once; 9 (not full) are all there was.
    let b = |s: &str| Reply::bulk(s);
    for (n, full) in [(10u128, true), (9, false)] {
        let ids: Vec<ExecutionId> = (1..=n).map(|i| ExecutionId::new(0, i)).collect();
        let mut s = unblock_schedule();
        in_use(&mut s, Ok(Reply::Int(1)));
        s.poll_reads();
        s.handle_reads(vec![
            Ok(Reply::Array(
                ids.iter()
                    .enumerate()
                    .flat_map(|(k, e)| [b(e.as_str()), b(&k.to_string())])
                    .collect(),
            )),
            Ok(Reply::Array(vec![])),
            Ok(Reply::Array(vec![])),
        ]);
        assert_eq!(s.poll_reads().len(), n as usize, "what each draws on");
        s.handle_reads(vec![Ok(b(";;")); n as usize]);
        let calls = s.poll_calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(
            (calls[0].function, args(&calls[0]).len()),
            ("ff_unblock", n as usize)
        );
        s.handle_results(vec![ok(vec![Reply::Int(n as i64), Reply::Int(0)])]);
        assert!(s.poll_reads().is_empty() && s.poll_calls().is_empty());
        let r = s.end_cycle();
        assert_eq!((r.acted, r.backlog), (n as u64, 0), "{n} waiters");
        assert_eq!(s.slot(0).dirty, full, "{n} waiters");
    }
}
