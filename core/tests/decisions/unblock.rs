//! The unblock scanner's decision: who goes back to eligible, who is
//! cancelled, who waits and until when.

use ff_core::admission::{Admission, QuotaLimits};
use ff_core::contract::admission::{BlockReason, BreachPolicy, QuotaRecord};
use ff_core::reply::Reply;
use ff_core::scan::unblock::*;
use ff_core::{BudgetId, ExecutionId, QuotaId};
use std::collections::BTreeMap;

fn q(s: &str) -> QuotaId {
    QuotaId::parse(s).unwrap()
}

fn waiter(r: u128, slot: usize, reason: BlockReason) -> Waiter {
    Waiter {
        blocked_at: r as f64,
        slot,
        reason,
        execution: ExecutionId::new(slot as u16, r),
    }
}

fn needs(b: &[&str], qs: &[&str], caps: &[&str]) -> Admission {
    Admission {
        budgets: b.iter().map(|s| BudgetId::parse(s).unwrap()).collect(),
        quotas: qs.iter().map(|s| q(s)).collect(),
        capabilities: caps.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn quota_room() {
    let rec = |admitted: Vec<u64>, max, holders| QuotaRecord {
        now_ms: 1000,
        limits: QuotaLimits {
            window_ms: 100,
            max_per_window: max,
            concurrency: 3,
        },
        holders,
        admitted_at: admitted,
    };
    assert_eq!(
        QuotaRoom::of(&rec(vec![970, 950, 960, 800], 2, 0)),
        QuotaRoom {
            free: 0,
            frees_at: Some(1060)
        }
    );
    assert_eq!(
        QuotaRoom::of(&rec(vec![950, 960], 2, 0)),
        QuotaRoom {
            free: 0,
            frees_at: Some(1050)
        }
    );
    assert_eq!(
        QuotaRoom::of(&rec(vec![950], 2, 0)),
        QuotaRoom {
            free: 1,
            frees_at: None
        }
    );
    assert_eq!(
        QuotaRoom::of(&rec(vec![950], 0, 1)),
        QuotaRoom {
            free: 2,
            frees_at: None
        }
    );
    assert_eq!(QuotaRoom::UNLIMITED.free, u64::MAX);
}

#[test]
fn decisions() {
    let waiters = [
        waiter(1, 0, BlockReason::Quota),
        waiter(2, 1, BlockReason::Quota),
        waiter(3, 1, BlockReason::Budget),
        waiter(4, 0, BlockReason::Route),
        waiter(5, 0, BlockReason::Route),
        waiter(6, 1, BlockReason::Quota),
        waiter(7, 0, BlockReason::Budget),
    ];
    let needs = [
        needs(&[], &["api"], &[]),
        needs(&[], &["api"], &[]),
        needs(&["held"], &[], &[]),
        needs(&[], &[], &["gpu"]),
        needs(&[], &[], &["tpu"]),
        needs(&["gone"], &["api"], &[]),
        needs(&["ok"], &["free"], &[]),
    ];
    let limits = Limits {
        breached: BTreeMap::from([
            ("held".to_owned(), Some(BreachPolicy::Block)),
            ("gone".to_owned(), Some(BreachPolicy::Cancel)),
            ("ok".to_owned(), None),
        ]),
        room: BTreeMap::from([
            (
                q("api"),
                QuotaRoom {
                    free: 1,
                    frees_at: Some(500),
                },
            ),
            (
                q("free"),
                QuotaRoom {
                    free: 0,
                    frees_at: None,
                },
            ),
        ]),
        live: vec![("w1".into(), vec!["gpu".into(), "ssd".into()])],
    };
    let d = decide(&waiters, &needs, &limits, 900, 3);
    let e = |w: &Waiter| w.execution.clone();
    assert_eq!(
        d.moves,
        BTreeMap::from([
            ((0, "quota"), (BlockReason::Quota, vec![e(&waiters[0])])),
            ((0, "route"), (BlockReason::Route, vec![e(&waiters[3])])),
        ])
    );
    assert_eq!(
        d.cancels,
        BTreeMap::from([(
            (1, "quota", "gone".to_owned()),
            (BlockReason::Quota, vec![e(&waiters[5])])
        )])
    );
    // Waiting: the second on api (its one place taken), the breached budget,
    // the one needing a tpu, and the one on a full quota.
    assert_eq!(d.backlog, 4);
    assert_eq!(
        d.watch,
        BTreeMap::from([(q("api"), vec![1]), (q("free"), vec![0])])
    );
    // Slot 1's quota waiter looks again when api's window frees a place.
    assert_eq!(d.next_due, [Some(900), Some(500), None]);
}

#[test]
fn no_room_no_move_and_no_slot_no_due() {
    let w = [waiter(1, 5, BlockReason::Quota)];
    let n = [needs(&[], &["api"], &[])];
    let limits = Limits {
        room: BTreeMap::from([(
            q("api"),
            QuotaRoom {
                free: 0,
                frees_at: Some(2000),
            },
        )]),
        ..Limits::default()
    };
    // The frees-at time later than the fallback: the fallback.
    let d = decide(&w, &n, &limits, 900, 1);
    assert!(d.moves.is_empty());
    assert_eq!((d.backlog, d.next_due.clone()), (1, vec![None]));
    // A quota the limits do not know is unlimited.
    let n = [needs(&[], &["other"], &[])];
    let d = decide(&w, &n, &limits, 900, 6);
    assert_eq!(d.moves.len(), 1);
    assert_eq!(d.backlog, 0);
    assert_eq!(d.next_due, vec![None; 6]);
}

#[test]
fn waiters_parse_oldest_first() {
    let (a, b) = (ExecutionId::new(0, 1), ExecutionId::new(2, 2));
    let arr = |v: Vec<Reply>| Reply::Array(v);
    let replies = [
        arr(vec![
            Reply::bulk(b.as_str()),
            Reply::bulk("20.5"),
            Reply::bulk("junk"),
            Reply::bulk("1"),
            Reply::bulk(a.as_str()),
            Reply::bulk("x"),
        ]),
        arr(vec![Reply::bulk(a.as_str()), Reply::bulk("3")]),
        Reply::Nil,
    ];
    let targets = [
        (2, BlockReason::Quota),
        (0, BlockReason::Route),
        (1, BlockReason::Budget),
    ];
    let (waiters, full) = parse_waiters(&targets, &replies, 3, 3);
    assert_eq!(
        waiters,
        [
            Waiter {
                blocked_at: 3.0,
                slot: 0,
                reason: BlockReason::Route,
                execution: a.clone()
            },
            Waiter {
                blocked_at: 20.5,
                slot: 2,
                reason: BlockReason::Quota,
                execution: b.clone()
            },
        ]
    );
    // Three pairs read with a batch of 3: full, read again.
    assert_eq!(full, [false, false, true]);
    let (_, full) = parse_waiters(&targets, &replies, 4, 3);
    assert_eq!(full, [false, false, false]);
    let (_, full) = parse_waiters(&targets, &replies, 1, 3);
    assert_eq!(full, [true, false, true]);
}
