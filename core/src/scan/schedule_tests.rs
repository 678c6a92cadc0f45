//! The schedule against a model: a small world of sorted sets answers the
//! reads and batch calls the schedule asks for, the data plane's wake-ups are
//! sent as the Lua sends them (when a member becomes its index's earliest),
//! and proptest drives arbitrary sequences of additions, time, wake-ups,
//! rescans, ownership changes and failing reads. The properties: nothing
//! due in a held partition is left after the cycles that follow (once reads
//! work again), nothing unheld is touched, batches stay within their size and
//! hold only due members, and the schedule never spins.

use super::*;
use crate::contract::scan::BatchFunction;
use proptest::prelude::*;
use std::collections::BTreeSet;
use test_world::*;

#[path = "cycle_tests.rs"]
mod cycle_tests;
#[path = "test_world.rs"]
mod test_world;

const F: BatchFunction = DELAYED;
const INTERVAL: u64 = 500;

fn settings(partitions: u16, batch: usize, work: ScanWork) -> Settings {
    Settings {
        work,
        interval_ms: INTERVAL,
        batch,
        rescan_ms: 3_600_000,
        config: PartitionConfig {
            flow_partitions: partitions,
            ..PartitionConfig::default()
        },
        filter: ScannerFilter::default(),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add { p: u16, delay: u64 },
    Advance(u64),
    Rescan,
    Own { mask: u8 },
    Fail { p: u16 },
    Heal,
}

fn op(partitions: u16) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..partitions, 0u64..3_000).prop_map(|(p, delay)| Op::Add { p, delay }),
        4 => (1u64..2_000).prop_map(Op::Advance),
        1 => Just(Op::Rescan),
        1 => any::<u8>().prop_map(|mask| Op::Own { mask }),
        1 => (0..partitions).prop_map(|p| Op::Fail { p }),
        1 => Just(Op::Heal),
    ]
}

proptest! {
    #[test]
    fn nothing_due_is_stranded_and_nothing_unheld_is_touched(
        partitions in 1u16..5,
        batch in 1usize..4,
        ops in prop::collection::vec(op(4), 1..80),
    ) {
        let mut s = Schedule::new(settings(partitions, batch, ScanWork::Batch(F)));
        let mut w = World::default();
        let mut now = 1_000u64;
        let mut held: Vec<Option<u64>> = vec![Some(0); partitions as usize];
        let mut epoch = 0;
        // Until when reads may have failed (the schedule retries after that).
        let mut failed_until = 0u64;
        for op in ops {
            match op {
                Op::Add { p, delay } => {
                    if p < partitions {
                        if let (_, Some(wake)) = w.add(p, now + delay) {
                            s.handle_wake(wake, now);
                        }
                    }
                }
                Op::Rescan => s.handle_wake(Wake::Rescan, now),
                Op::Own { mask } => {
                    epoch += 1;
                    held = (0..partitions)
                        .map(|p| (mask & (1 << p) != 0).then_some(epoch))
                        .collect();
                    s.handle_ownership(&held);
                }
                Op::Fail { p } => {
                    w.read_errors.insert(key(F, p));
                }
                Op::Heal => w.read_errors.clear(),
                Op::Advance(dt) => {
                    now += dt;
                    let mut cycles = 0;
                    while s.poll_timeout(now) <= now {
                        cycles += 1;
                        prop_assert!(cycles <= 3, "the schedule spins at {now}");
                        let report = cycle(&mut s, &mut w, now);
                        if report.errors > 0 {
                            failed_until = now + INTERVAL;
                        }
                        for p in w.touched.last().unwrap() {
                            prop_assert!(held[*p as usize].is_some(), "touched unheld partition {p}");
                        }
                    }
                    let wake = s.poll_timeout(now);
                    prop_assert!(wake > now && wake <= now + INTERVAL);
                    if w.read_errors.is_empty() && now > failed_until {
                        for p in 0..partitions {
                            let due = w.earliest(p).filter(|&e| e <= now);
                            prop_assert!(
                                held[p as usize].is_none() || due.is_none(),
                                "partition {p} has a member due at {due:?} left at {now}"
                            );
                            // A future member is known: the schedule wakes for it.
                            if let (Some(e), true) = (w.earliest(p), held[p as usize].is_some()) {
                                prop_assert!(wake <= e, "wakes at {wake}, {p} is due at {e}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_sweep_runs_once_per_interval(steps in prop::collection::vec(1u64..400, 1..60)) {
        let work = ScanWork::Batch(BatchFunction::ReconcileIndexes);
        let mut s = Schedule::new(settings(2, 10, work));
        let mut now = 10_000;
        let mut last = now;
        prop_assert_eq!(s.poll_timeout(now), now + INTERVAL, "the first sweep waits an interval");
        for dt in steps {
            now += dt;
            if s.poll_timeout(now) <= now {
                prop_assert!(now - last >= INTERVAL);
                s.begin_cycle(now);
                s.end_cycle();
                last = now;
            }
            prop_assert_eq!(s.poll_timeout(now), last + INTERVAL);
        }
    }
}

#[test]
fn a_change_rereads_the_partitions_with_something_left() {
    let mut s = Schedule::new(settings(3, 10, ScanWork::Batch(F))).shared_rescan();
    assert!(
        s.poll_timeout(0) > 0,
        "a shared-rescan schedule starts with nothing to read"
    );
    s.handle_wake(
        Wake::At {
            partition: 1,
            due_ms: u64::MAX,
        },
        0,
    );
    s.handle_wake(Wake::Changed, 0);
    let dirty: Vec<bool> = (0..3).map(|i| s.slot(i).dirty).collect();
    assert_eq!(dirty, vec![false, true, false]);
}

#[test]
fn a_wake_keeps_the_earliest_due_time_and_ignores_unknown_partitions() {
    let mut s = Schedule::new(settings(3, 10, ScanWork::Batch(F))).shared_rescan();
    for due_ms in [500, 900, 300] {
        s.handle_wake(
            Wake::At {
                partition: 2,
                due_ms,
            },
            0,
        );
    }
    s.handle_wake(
        Wake::At {
            partition: 7,
            due_ms: 1,
        },
        0,
    );
    assert_eq!(s.slot(2).next_due, Some(300));
    assert_eq!(s.slot(0).next_due, None);
    assert_eq!(s.poll_timeout(0), 300);
    s.handle_wake(Wake::Rescan, 0);
    assert!((0..3).all(|i| s.slot(i).dirty));
    assert_eq!(s.poll_timeout(0), 0);
}

#[test]
fn a_partition_not_held_is_neither_read_nor_woken_for() {
    let mut s = Schedule::new(settings(3, 10, ScanWork::Batch(F)));
    s.handle_ownership(&[None, Some(4), None]);
    let mut w = World::default();
    w.add(0, 10);
    w.add(1, 10);
    cycle(&mut s, &mut w, 100);
    assert_eq!(w.touched[0], BTreeSet::from([1]));
    s.handle_wake(
        Wake::At {
            partition: 0,
            due_ms: 5,
        },
        100,
    );
    assert_eq!(s.slot(0).next_due, None);
    // Held again under a new epoch: read at once.
    assert_eq!(s.handle_ownership(&[Some(5), Some(4), None]), (1, 0));
    assert_eq!(s.poll_timeout(100), 100);
}

#[test]
fn an_admission_cycle_is_one_exists_until_admission_is_used() {
    let work = ScanWork::Admission(AdmissionScan::BudgetReset);
    let mut s = Schedule::new(settings(2, 10, work));
    s.begin_cycle(0);
    let reads = s.poll_reads();
    assert_eq!(
        reads,
        vec![vec![
            "EXISTS".to_owned(),
            crate::admission::IN_USE.to_owned()
        ]]
    );
    s.handle_reads(vec![Ok(Reply::Int(0))]);
    assert!(s.poll_reads().is_empty() && s.poll_calls().is_empty());
    assert_eq!(s.end_cycle(), CycleReport::default());
    // In use: the budget partitions' due resets are called for.
    s.handle_wake(Wake::Rescan, 0);
    s.begin_cycle(0);
    s.poll_reads();
    s.handle_reads(vec![Ok(Reply::Int(1))]);
    let calls = s.poll_calls();
    assert_eq!(calls.len(), s.partitions().len());
    assert!(calls.iter().all(|c| c.function == "ff_budget_resets"));
}
