//! The schedule against a model: a small world of sorted sets and sets
//! ([`test_world`]) answers the reads and batch calls the schedule asks for,
//! the data plane's wake-ups are sent as the Lua sends them (when a member
//! becomes its index's earliest), and proptest drives arbitrary sequences of
//! additions, time, wake-ups, rescans, ownership changes and failures. The
//! properties: nothing due in a held partition is left after the cycles that
//! follow (once reads work again), nothing unheld is touched, batches stay
//! within their size and hold only due members, the schedule never spins;
//! a failing member is backed off by the tracker's rule and never crowds out
//! good ones; a split batch strands nothing; a sweep visits every held member
//! once per sweep. The cycle-by-cycle unit tests are in [`cycle_tests`].

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

#[derive(Debug, Clone)]
enum SplitOp {
    Add { p: u16, delay: u64 },
    Poison { p: u16 },
    BatchErrors(usize),
    Advance(u64),
}

fn split_op(partitions: u16) -> impl Strategy<Value = SplitOp> {
    prop_oneof![
        6 => (0..partitions, 0u64..1_500).prop_map(|(p, delay)| SplitOp::Add { p, delay }),
        1 => (0..partitions).prop_map(|p| SplitOp::Poison { p }),
        2 => (0usize..4).prop_map(SplitOp::BatchErrors),
        4 => (1u64..1_000).prop_map(SplitOp::Advance),
    ]
}

proptest! {
    /// Failure backoff, against the tracker's rule: a member whose action
    /// fails is sent in every cycle that reads it until it has failed
    /// `FAILURE_THRESHOLD` times; then it is not sent for the rest of that
    /// cycle and the `BACKOFF_CYCLES` cycles after; then it is sent again.
    /// Meanwhile it never crowds out good members: every good member due at
    /// a cycle is acted on in that cycle, whatever the batch size.
    #[test]
    fn a_failing_member_is_backed_off_and_never_crowds_out_good_ones(
        partitions in 1u16..3,
        batch in 1usize..4,
        bads in 1usize..4,
        goods in prop::collection::vec(0u32..6, 1..40),
    ) {
        use crate::tracker::{BACKOFF_CYCLES, FAILURE_THRESHOLD};
        let mut s = Schedule::new(settings(partitions, batch, ScanWork::Batch(F)));
        let mut w = World::default();
        let bad: Vec<String> = (0..bads).map(|i| format!("bad{i}")).collect();
        // Per bad member: failures counted, and the last cycle it is skipped in.
        let mut model: Vec<(u32, Option<u64>)> = vec![(0, None); bads];
        for (i, id) in bad.iter().enumerate() {
            let p = i as u16 % partitions;
            w.zadd(&key(F, p), 1 + i as u64, id);
            w.failing.insert(id.clone());
        }
        let base = 10_000u64;
        for (k, &n) in goods.iter().enumerate() {
            let (k, now) = (k as u64, base + k as u64);
            // Every partition is read (as a rescan would have it).
            s.handle_wake(Wake::Rescan, now);
            for j in 0..n {
                w.add(j as u16 % partitions, now);
            }
            // Not in backoff when the cycle begins: it is tried in this cycle.
            let free: Vec<bool> = model.iter().map(|(_, u)| u.is_none_or(|u| k > u)).collect();
            let rounds = w.calls.len();
            cycle(&mut s, &mut w, now);
            let mut sent = vec![false; bads];
            for id in w.calls[rounds..].iter().flatten().flat_map(ids_of) {
                let Some(i) = bad.iter().position(|b| *b == id) else { continue };
                let (count, until) = &mut model[i];
                prop_assert!(
                    until.is_none_or(|u| k > u),
                    "{} sent in cycle {} while in backoff until cycle {:?}", id, k, until
                );
                sent[i] = true;
                *count += 1;
                if *count == FAILURE_THRESHOLD {
                    *until = Some(k + BACKOFF_CYCLES);
                    *count = 0;
                }
            }
            for (i, id) in bad.iter().enumerate() {
                prop_assert!(sent[i] || !free[i], "{} not sent in cycle {}", id, k);
            }
            for p in 0..partitions {
                let left: Vec<String> = w
                    .zmembers(&key(F, p))
                    .into_iter()
                    .filter(|m| !bad.contains(m))
                    .collect();
                prop_assert!(left.is_empty(), "good members {:?} left in {} at cycle {}", left, p, k);
            }
        }
    }

    /// A batch that fails as a whole is split into single-member calls, and
    /// never strands anything: after the cycles at each time, no partition a
    /// cycle read has a due member left but for poison ones (they make every
    /// batch they are in fail, and fail alone), and with no poison in the
    /// world nothing due is left anywhere. Batches stay within their size and
    /// hold only due members (the world checks each call).
    #[test]
    fn a_failed_batch_never_strands_due_members(
        partitions in 1u16..4,
        batch in 1usize..4,
        ops in prop::collection::vec(split_op(3), 1..60),
    ) {
        let mut s = Schedule::new(settings(partitions, batch, ScanWork::Batch(F)));
        let mut w = World::default();
        let mut now = 1_000u64;
        for op in ops {
            match op {
                SplitOp::Add { p, delay } => {
                    if p < partitions {
                        if let (_, Some(wake)) = w.add(p, now + delay) {
                            s.handle_wake(wake, now);
                        }
                    }
                }
                SplitOp::Poison { p } => {
                    if p < partitions {
                        let (id, wake) = w.add(p, now);
                        w.poison.insert(id);
                        if let Some(wake) = wake {
                            s.handle_wake(wake, now);
                        }
                    }
                }
                SplitOp::BatchErrors(n) => w.batch_errors = n,
                SplitOp::Advance(dt) => {
                    now += dt;
                    let mut cycles = 0;
                    while s.poll_timeout(now) <= now {
                        cycles += 1;
                        prop_assert!(cycles <= 3, "the schedule spins at {now}");
                        cycle(&mut s, &mut w, now);
                        for p in w.touched.last().unwrap().clone() {
                            let left: Vec<String> = w
                                .zsets
                                .get(&key(F, p))
                                .into_iter()
                                .flatten()
                                .filter(|(sc, m)| *sc <= now && !w.poison.contains(m))
                                .map(|(_, m)| m.clone())
                                .collect();
                            prop_assert!(left.is_empty(), "{:?} due and left in {} at {}", left, p, now);
                        }
                    }
                    if w.poison.is_empty() {
                        for p in 0..partitions {
                            let due = w.earliest(p).filter(|&e| e <= now);
                            prop_assert!(due.is_none(), "partition {} has a member due at {:?} left at {}", p, due, now);
                        }
                    }
                }
            }
        }
    }

    /// A sweep visits every member of every held partition exactly once per
    /// sweep, whatever the batch size and however SSCAN pages (COUNT is only
    /// a hint), in calls of at most a batch, and nothing of a partition not
    /// held; its report counts each member once.
    #[test]
    fn a_sweep_visits_every_held_member_once_per_sweep(
        sizes in prop::collection::vec(0usize..12, 1..4),
        batch in 1usize..5,
        page in prop::option::of(1usize..8),
        mask in any::<u8>(),
        sweeps in 1usize..4,
    ) {
        let partitions = sizes.len() as u16;
        let work = ScanWork::Batch(SWEEP);
        let mut s = Schedule::new(settings(partitions, batch, work));
        let mut w = World::default();
        w.sscan_page = page;
        for (p, &n) in sizes.iter().enumerate() {
            w.sets.insert(key(SWEEP, p as u16), (0..n).map(|i| format!("p{p}-{i}")).collect());
        }
        let held: Vec<Option<u64>> = (0..partitions).map(|p| (mask & (1 << p) != 0).then_some(1)).collect();
        s.handle_ownership(&held);
        let mut expected: Vec<String> = (0..partitions)
            .filter(|&p| held[p as usize].is_some())
            .flat_map(|p| w.sets[&key(SWEEP, p)].clone())
            .collect();
        expected.sort();
        let mut now = 1_000u64;
        prop_assert!(s.poll_timeout(now) > now, "the first sweep waits an interval");
        for sweep in 0..sweeps {
            now += INTERVAL;
            prop_assert!(s.poll_timeout(now) <= now, "sweep {} is due", sweep);
            let rounds = w.calls.len();
            let r = cycle(&mut s, &mut w, now);
            let mut sent = Vec::new();
            for c in w.calls[rounds..].iter().flatten() {
                let p = partition_of(&c.keys[0]);
                for id in ids_of(c) {
                    prop_assert!(id.starts_with(&format!("p{p}-")), "{} sent on {}'s key", id, p);
                    sent.push(id);
                }
            }
            sent.sort();
            prop_assert_eq!(&sent, &expected, "sweep {}", sweep);
            prop_assert_eq!(r.acted, expected.len() as u64);
            prop_assert_eq!(r.backlog, expected.len() as u64);
            for p in w.touched.last().unwrap() {
                prop_assert!(held[*p as usize].is_some(), "touched unheld partition {}", p);
            }
            prop_assert!(s.poll_timeout(now) > now, "one sweep per interval");
        }
    }
}

/// Regression test (this was a bug, in the runner before the schedule moved
/// to core): a member whose action keeps failing enters backoff while it is
/// its index's earliest. A member added behind it gets no wake-up (the data
/// plane announces only a new earliest), and the schedule, having read a
/// head of only skipped members, forgot the partition (`next_due` = the
/// plan's, `None`): the new member waited for the rescan interval, and so
/// did the failing member after its backoff.
#[test]
fn a_member_behind_one_in_backoff_is_not_stranded() {
    let mut s = Schedule::new(settings(1, 10, ScanWork::Batch(F)));
    let mut w = World::default();
    let mut now = 1_000u64;
    let (bad, wake) = w.add(0, now);
    w.failing.insert(bad.clone());
    s.handle_wake(wake.unwrap(), now);
    let mut errors = 0;
    let mut run_until = |s: &mut Schedule, w: &mut World, now: &mut u64, end: u64| {
        while *now < end {
            *now += 50;
            while s.poll_timeout(*now) <= *now {
                errors += cycle(s, w, *now).errors;
            }
        }
    };
    // Long enough for three failures (retried soon after each).
    run_until(&mut s, &mut w, &mut now, 5_000);
    let due = now + 100;
    let (good, wake) = w.add(0, due);
    assert_eq!(wake, None, "{bad} is still the earliest");
    // Well within the rescan interval (an hour here).
    run_until(&mut s, &mut w, &mut now, 60_000);
    assert!(
        errors > u64::from(crate::tracker::FAILURE_THRESHOLD),
        "{bad} failed into backoff and was tried again after it ({errors} errors)"
    );
    assert!(
        !w.zmembers(&key(F, 0)).contains(&good),
        "{good}, due at {due}, still in the index at {now}; slot {:?}",
        s.slot(0)
    );
}

proptest! {
    /// Ownership: at each change, the partitions gained or held again under
    /// a new epoch (someone else may have had them) are read at the next
    /// cycle, and only they (nothing else is due here); a partition lost is
    /// never read, whatever wake-ups or rescans say.
    #[test]
    fn ownership_changes_are_read_at_once_and_lost_partitions_never(
        partitions in 1u16..6,
        changes in prop::collection::vec(
            (prop::collection::vec(prop::option::of(0u64..3), 6), any::<bool>()),
            1..30,
        ),
    ) {
        let mut s = Schedule::new(settings(partitions, 4, ScanWork::Batch(F)));
        let mut w = World::default();
        for p in 0..partitions {
            // Something in every index, due long after the test.
            w.add(p, u64::MAX / 2);
        }
        let now = 1_000u64;
        cycle(&mut s, &mut w, now);
        let mut held = vec![Some(0u64); partitions as usize];
        for (epochs, rescan) in changes {
            let next: Vec<Option<u64>> = epochs[..partitions as usize].to_vec();
            let gained: BTreeSet<u16> = (0..partitions)
                .filter(|&p| next[p as usize].is_some() && next[p as usize] != held[p as usize])
                .collect();
            let lost = (0..partitions)
                .filter(|&p| next[p as usize].is_none() && held[p as usize].is_some())
                .count();
            prop_assert_eq!(s.handle_ownership(&next), (gained.len(), lost));
            prop_assert_eq!(s.held(), &next[..]);
            held = next;
            for p in 0..partitions {
                s.handle_wake(Wake::At { partition: p, due_ms: u64::MAX / 4 }, now);
            }
            let mut expect = gained.clone();
            if rescan {
                s.handle_wake(Wake::Rescan, now);
                expect.extend((0..partitions).filter(|&p| held[p as usize].is_some()));
            }
            prop_assert_eq!(s.poll_timeout(now) <= now, !expect.is_empty());
            cycle(&mut s, &mut w, now);
            prop_assert_eq!(w.touched.last().unwrap(), &expect);
        }
    }
}
