//! Scanner plans at their boundaries, result feedback, the wake time, and
//! the announcements' parsers at their length limits.

use ff_core::scan::{
    next_wake, plan, read_limit, record_results, ItemResult, Member, Plan, Snapshot,
};
use ff_core::scan::{ReadyMessage, WakeMessage};
use ff_core::tracker::FailureTracker;

fn snap(now: u64, scores: &[u64], limit: usize) -> Snapshot {
    Snapshot {
        now_ms: now,
        members: scores
            .iter()
            .enumerate()
            .map(|(i, &s)| Member {
                id: format!("m{i}"),
                score: s,
            })
            .collect(),
        limit,
    }
}

#[test]
fn read_limit_covers_the_batch_the_skipped_and_one_more() {
    let mut t = FailureTracker::default();
    assert_eq!(read_limit(5, &t), 6);
    t.set_aside("a");
    t.set_aside("b");
    assert_eq!(read_limit(5, &t), 8);
    assert_eq!(read_limit(0, &t), 3);
}

#[test]
fn plans() {
    let t = FailureTracker::default();
    // A member due exactly now is due.
    assert_eq!(
        plan(&snap(100, &[100, 101], 5), &t, 5),
        Plan {
            act: vec!["m0".into()],
            skipped: 0,
            due: 1,
            again: false,
            next_due_ms: Some(101)
        }
    );
    // A full read of due members: maybe more.
    let p = plan(&snap(100, &[1, 2], 2), &t, 5);
    assert_eq!((p.act.len(), p.again, p.next_due_ms), (2, true, None));
    // A short read: all of them.
    let p = plan(&snap(100, &[1, 2], 3), &t, 5);
    assert!(!p.again);
    // The batch is full: again, whatever the read.
    let p = plan(&snap(100, &[1, 2, 3], 10), &t, 2);
    assert_eq!(
        (p.act, p.due, p.again),
        (vec!["m0".to_owned(), "m1".into()], 3, true)
    );
    // Skipped members count as due, not acted on; with nothing acted on a
    // full read does not ask again.
    let mut t = FailureTracker::default();
    t.set_aside("m0");
    t.set_aside("m1");
    let p = plan(&snap(100, &[1, 2], 2), &t, 5);
    assert_eq!((p.skipped, p.due, p.act.len(), p.again), (2, 2, 0, false));
    let p = plan(&snap(100, &[1, 2, 3], 3), &t, 5);
    assert_eq!(
        (p.skipped, p.due, p.act, p.again),
        (2, 3, vec!["m2".to_owned()], true)
    );
    // Nothing read.
    assert_eq!(plan(&snap(100, &[], 0), &t, 5), Plan::default());
}

#[test]
fn results_feed_the_tracker() {
    let mut t = FailureTracker::default();
    let failed = ItemResult::Failed("boom".into());
    assert_eq!(record_results(&mut t, [("a", &failed), ("b", &failed)]), 0);
    assert_eq!(record_results(&mut t, [("a", &failed), ("b", &failed)]), 0);
    assert_eq!(
        record_results(
            &mut t,
            [("a", &failed), ("b", &failed), ("c", &ItemResult::Filtered)]
        ),
        2
    );
    assert!(t.is_skipped("a") && t.is_skipped("b") && t.is_skipped("c"));
    assert_eq!(record_results(&mut t, [("a", &ItemResult::Done)]), 0);
    assert!(!t.is_skipped("a"));
    assert_eq!(t.len(), 2);
}

#[test]
fn next_wake_is_the_earlier_of_due_and_interval() {
    assert_eq!(next_wake(None, 100, 50), 150);
    assert_eq!(next_wake(Some(120), 100, 50), 120);
    assert_eq!(next_wake(Some(200), 100, 50), 150);
    assert_eq!(next_wake(None, u64::MAX - 1, 50), u64::MAX);
}

#[test]
fn wake_messages_at_their_limits() {
    assert_eq!(WakeMessage::CHANNEL, "ff:wake");
    assert_eq!(ReadyMessage::CHANNEL, "ff:ready");
    let i32 = "i".repeat(32);
    assert_eq!(
        WakeMessage::parse(format!("{i32} {{q:65535}} 7").as_bytes()),
        Some(WakeMessage {
            index: i32.clone(),
            partition: 65535,
            due_ms: 7
        })
    );
    assert_eq!(
        WakeMessage::parse(format!("{i32}i {{q:1}} 7").as_bytes()),
        None
    );
    assert_eq!(WakeMessage::parse(b" {fp:1} 7"), None);
    assert_eq!(
        WakeMessage::parse(b"x {fp:12345} 7").unwrap().partition,
        12345
    );
    assert_eq!(WakeMessage::parse(b"x {fp:123456} 7"), None);
    // (six digits, even when the value fits)
    assert_eq!(WakeMessage::parse(b"x {fp:000012} 7"), None);
    assert_eq!(WakeMessage::parse(b"x {fp:65536} 7"), None);
    assert_eq!(WakeMessage::parse(b"x {fp:} 7"), None);
    assert_eq!(WakeMessage::parse(b"x {fp:1a} 7"), None);
    // u16's parser takes a sign; the announcement has none.
    assert_eq!(WakeMessage::parse(b"x {fp:+5} 7"), None);
    assert_eq!(WakeMessage::parse(b"x {xy:5} 7"), None);
    assert_eq!(WakeMessage::parse(b"x {fp:1 7"), None);
    assert_eq!(WakeMessage::parse(b"x fp:1} 7"), None);
    assert_eq!(WakeMessage::parse(b"x {fp:1} x"), None);
    assert_eq!(WakeMessage::parse(b"x {fp:1}"), None);
    assert_eq!(WakeMessage::parse(b"x - 9").unwrap().due_ms, 9);
    assert_eq!(
        ReadyMessage::parse(b"mail {fp:65535}"),
        Some(ReadyMessage {
            lane: "mail".into(),
            partition: 65535
        })
    );
    assert_eq!(
        ReadyMessage::parse(b"mail {fp:12345}").unwrap().partition,
        12345
    );
    assert_eq!(ReadyMessage::parse(b"mail {fp:1x}"), None);
    assert_eq!(ReadyMessage::parse(b"mail {fp:+5}"), None);
    assert_eq!(ReadyMessage::parse(b"mail {fp:65536}"), None);
    assert_eq!(ReadyMessage::parse(b"mail {b:1}"), None);
}

#[test]
fn index_reads_and_their_replies() {
    use ff_core::contract::scan::BatchFunction;
    use ff_core::keys::PartitionKeys;
    use ff_core::reply::Reply;
    use ff_core::scan::{parse_members, parse_page, read_heads, read_page};
    use ff_core::{Partition, PartitionFamily};
    let keys = PartitionKeys::new(Partition::new(PartitionFamily::Flow, 4));
    assert_eq!(
        read_heads(BatchFunction::PromoteDelayed, &keys, 201),
        [
            "ZRANGEBYSCORE",
            "ff:idx:{fp:4}:delayed",
            "-inf",
            "+inf",
            "WITHSCORES",
            "LIMIT",
            "0",
            "201"
        ]
    );
    assert_eq!(
        read_page(BatchFunction::ReconcileIndexes, &keys, "17", 50),
        ["SSCAN", "ff:idx:{fp:4}:all", "17", "COUNT", "50"]
    );
    let b = Reply::bulk;
    assert_eq!(
        parse_members(&Reply::Array(vec![
            b("a"),
            b("12"),
            b("b"),
            b("1.5e3"),
            b("c"),
            b("-4"),
            b("d"),
            b("0")
        ])),
        Ok(vec![
            Member {
                id: "a".into(),
                score: 12
            },
            Member {
                id: "b".into(),
                score: 1500
            },
            Member {
                id: "c".into(),
                score: 0
            },
            Member {
                id: "d".into(),
                score: 0
            },
        ])
    );
    assert_eq!(parse_members(&Reply::Array(vec![])), Ok(vec![]));
    assert!(parse_members(&Reply::Array(vec![b("a")])).is_err());
    assert!(parse_members(&Reply::Array(vec![b("a"), b("x")])).is_err());
    assert!(parse_members(&Reply::Array(vec![Reply::Nil, b("1")])).is_err());
    assert!(parse_members(&Reply::Nil).is_err());
    assert_eq!(
        parse_page(&Reply::Array(vec![
            b("9"),
            Reply::Array(vec![b("m1"), b("m2")])
        ])),
        Ok(("9".to_owned(), vec!["m1".to_owned(), "m2".to_owned()]))
    );
    assert!(parse_page(&Reply::Array(vec![b("9")])).is_err());
    assert!(parse_page(&Reply::Array(vec![Reply::Nil, Reply::Array(vec![])])).is_err());
    assert!(parse_page(&Reply::Array(vec![b("9"), b("m")])).is_err());
    assert!(parse_page(&Reply::Array(vec![b("9"), Reply::Array(vec![]), b("x")])).is_err());
}

#[test]
fn admission_scans_and_their_partitions() {
    use ff_core::scan::AdmissionScan::*;
    use ff_core::PartitionFamily;
    let want = [
        (BudgetReset, PartitionFamily::Budget, false, "resets"),
        (BudgetReconcile, PartitionFamily::Budget, true, "budgets"),
        (QuotaReconcile, PartitionFamily::Quota, true, "quotas"),
        (Unblock, PartitionFamily::Flow, false, "blocked"),
    ];
    for (scan, family, sweep, index) in want {
        assert_eq!(scan.family(), family, "{scan:?}");
        assert_eq!(scan.is_sweep(), sweep, "{scan:?}");
        assert_eq!(scan.index_name(), index, "{scan:?}");
    }
}

#[test]
fn scan_work_names_its_index_and_partitions() {
    use ff_core::contract::scan::BatchFunction;
    use ff_core::scan::{AdmissionScan, ScanWork};
    use ff_core::PartitionFamily;
    let cases = [
        (
            ScanWork::Batch(BatchFunction::PromoteDelayed),
            "delayed",
            false,
            PartitionFamily::Flow,
        ),
        (
            ScanWork::Batch(BatchFunction::ReconcileIndexes),
            "all",
            true,
            PartitionFamily::Flow,
        ),
        (
            ScanWork::Admission(AdmissionScan::QuotaReconcile),
            "quotas",
            true,
            PartitionFamily::Quota,
        ),
        (
            ScanWork::Admission(AdmissionScan::BudgetReset),
            "resets",
            false,
            PartitionFamily::Budget,
        ),
        (
            ScanWork::Schedules,
            "schedules",
            false,
            PartitionFamily::Flow,
        ),
    ];
    for (w, index, sweep, family) in cases {
        assert_eq!(w.index_name(), index, "{w:?}");
        assert_eq!(w.is_sweep(), sweep, "{w:?}");
        assert_eq!(w.family(), family, "{w:?}");
    }
}

mod schedule_machine {
    //! The scanner schedule between cycles: when it wants to run, what
    //! wake-ups and ownership changes do to its partitions.
    use ff_core::contract::scan::{BatchFunction, ScannerFilter};
    use ff_core::reply::Reply;
    use ff_core::scan::{ScanWork, Schedule, Settings, Slot, Wake};
    use ff_core::PartitionConfig;

    fn schedule(work: ScanWork, interval_ms: u64) -> Schedule {
        Schedule::new(Settings {
            work,
            interval_ms,
            batch: 10,
            rescan_ms: 10_000,
            config: PartitionConfig {
                flow_partitions: 3,
                budget_partitions: 1,
                quota_partitions: 1,
            },
            filter: ScannerFilter::default(),
        })
    }

    const DELAYED: ScanWork = ScanWork::Batch(BatchFunction::PromoteDelayed);
    const SWEEP: ScanWork = ScanWork::Batch(BatchFunction::ReconcileIndexes);

    /// Run one cycle in which every head read finds nothing.
    fn empty_cycle(s: &mut Schedule, now: u64) {
        s.begin_cycle(now);
        let n = s.poll_reads().len();
        s.handle_reads(vec![Ok(Reply::Array(vec![])); n]);
        assert!(s.poll_calls().is_empty());
        s.end_cycle();
    }

    #[test]
    fn when_it_wants_to_run() {
        let mut s = schedule(DELAYED, 500);
        assert_eq!(s.settings().interval_ms, 500);
        assert_eq!(s.partitions().len(), 3);
        assert_eq!(s.held(), [Some(0), Some(0), Some(0)]);
        // New: every partition is read at once.
        assert_eq!(
            s.slot(0),
            Slot {
                next_due: None,
                dirty: true
            }
        );
        assert_eq!(s.poll_timeout(1000), 1000);
        empty_cycle(&mut s, 1000);
        assert_eq!(s.slot(0), Slot::default());
        // Nothing known: the interval.
        assert_eq!(s.poll_timeout(1000), 1500);
        // A wake-up for a held partition: its due time, the earliest one kept.
        s.handle_wake(
            Wake::At {
                partition: 1,
                due_ms: 1200,
            },
            1000,
        );
        s.handle_wake(
            Wake::At {
                partition: 1,
                due_ms: 1300,
            },
            1000,
        );
        assert_eq!(s.slot(1).next_due, Some(1200));
        assert_eq!(s.poll_timeout(1000), 1200);
        // Not one of ours (out of range here): ignored.
        s.handle_wake(
            Wake::At {
                partition: 7,
                due_ms: 1100,
            },
            1000,
        );
        assert_eq!(s.poll_timeout(1000), 1200);
        // Changed: partitions with a known due time are read again.
        s.handle_wake(Wake::Changed, 1000);
        assert_eq!((s.slot(0).dirty, s.slot(1).dirty), (false, true));
        assert_eq!(s.poll_timeout(1000), 1000);
        // Only due partitions are read.
        s.begin_cycle(1000);
        assert_eq!(s.poll_reads().len(), 1);
        s.handle_reads(vec![Ok(Reply::Array(vec![]))]);
        s.end_cycle();
        // Rescan: all of them.
        s.handle_wake(Wake::Rescan, 1000);
        assert!((0..3).all(|i| s.slot(i).dirty));
        empty_cycle(&mut s, 1000);
        // The own rescan comes due after rescan_ms.
        assert_eq!(s.poll_timeout(10_999), 11_499);
        assert_eq!(s.poll_timeout(11_000), 11_000);
        assert!(s.slot(2).dirty);
    }

    #[test]
    fn a_shared_rescan_leaves_the_rereads_to_the_engine() {
        let mut s = schedule(DELAYED, 500).shared_rescan();
        assert_eq!(s.slot(0), Slot::default());
        assert_eq!(s.poll_timeout(1000), 1500);
        assert_eq!(s.poll_timeout(1_000_000), 1_000_500);
        assert!(!s.slot(0).dirty);
    }

    #[test]
    fn a_sweep_runs_every_interval() {
        let mut s = schedule(SWEEP, 500);
        assert_eq!(s.poll_timeout(1000), 1500);
        s.begin_cycle(1200);
        let n = s.poll_reads().len();
        assert_eq!(n, 3);
        s.handle_reads(vec![
            Ok(Reply::Array(vec![
                Reply::bulk("0"),
                Reply::Array(vec![])
            ]));
            n
        ]);
        s.end_cycle();
        assert_eq!(s.poll_timeout(1300), 1700);
        // A clock failure: the interval again from then.
        s.handle_clock_failure(1400);
        assert_eq!(s.poll_timeout(1400), 1900);
        // Not for a due-driven scanner.
        let mut d = schedule(DELAYED, 500);
        empty_cycle(&mut d, 1000);
        d.handle_clock_failure(5000);
        assert_eq!(d.poll_timeout(1000), 1500);
    }

    #[test]
    fn ownership_changes() {
        let mut s = schedule(DELAYED, 500);
        empty_cycle(&mut s, 1000);
        assert_eq!(s.handle_ownership(&[Some(0), Some(0), Some(0)]), (0, 0));
        assert_eq!(s.handle_ownership(&[None, Some(0), Some(3)]), (1, 1));
        assert_eq!(s.held(), [None, Some(0), Some(3)]);
        // Lost: forgotten; gained (a new epoch): read at once.
        assert_eq!(
            s.slot(0),
            Slot {
                next_due: None,
                dirty: false
            }
        );
        assert_eq!(
            s.slot(2),
            Slot {
                next_due: None,
                dirty: true
            }
        );
        assert_eq!(s.handle_ownership(&[Some(1), None, None]), (1, 2));
        // A wake-up for a partition not held is ignored.
        s.handle_wake(
            Wake::At {
                partition: 1,
                due_ms: 1100,
            },
            1000,
        );
        assert_eq!(s.slot(1).next_due, None);
        s.handle_wake(Wake::Rescan, 1000);
        assert_eq!((s.slot(0).dirty, s.slot(1).dirty), (true, false));
    }

    #[test]
    fn a_failed_read_is_retried_after_the_interval_capped_at_a_second() {
        for (interval, want) in [(500, 1500), (5000, 2000), (0, 1001)] {
            let mut s = schedule(DELAYED, interval);
            s.begin_cycle(1000);
            let n = s.poll_reads().len();
            s.handle_reads(vec![Err("down".into()); n]);
            assert_eq!(s.end_cycle().errors, 3);
            assert_eq!(s.slot(0).next_due, Some(want), "interval {interval}");
        }
        // A known due time sooner than that stays.
        let mut s = schedule(DELAYED, 5000);
        empty_cycle(&mut s, 1000);
        s.handle_wake(
            Wake::At {
                partition: 0,
                due_ms: 1100,
            },
            1000,
        );
        s.handle_wake(Wake::Rescan, 1000);
        s.begin_cycle(1000);
        let n = s.poll_reads().len();
        s.handle_reads(vec![Err("down".into()); n]);
        s.end_cycle();
        assert_eq!(s.slot(0).next_due, Some(1100));
        assert_eq!(s.slot(1).next_due, Some(2000));
    }
}
