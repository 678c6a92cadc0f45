//! The schedule scanner's cycle (`scan::fire`), driven like the shell's
//! runner drives it: the head read, the records read, the one fenced fire
//! call per partition it decides, and what it makes of the answer. (Only
//! the shell's integration tests ran it before.) A file of its own: schedule
//! code changes often.

use ff_core::contract::scan::ScannerFilter;
use ff_core::contract::schedule::DUE_FIELDS;
use ff_core::reply::Reply;
use ff_core::scan::{CycleReport, Notice, ScanWork, Schedule, Settings};
use ff_core::schedule::{due_index, fire_execution_id, record_key, ScheduleName};
use ff_core::{Partition, PartitionConfig, PartitionFamily};

const NOW: u64 = 10_000;

fn schedule() -> Schedule {
    schedule_over(1)
}

/// The scanner over `partitions` flow partitions, all held.
fn schedule_over(partitions: u16) -> Schedule {
    Schedule::new(Settings {
        work: ScanWork::Schedules,
        interval_ms: 1000,
        batch: 10,
        rescan_ms: 3_600_000,
        config: PartitionConfig {
            flow_partitions: partitions,
            budget_partitions: 1,
            quota_partitions: 1,
        },
        filter: ScannerFilter::default(),
    })
}

fn p0() -> Partition {
    Partition::new(PartitionFamily::Flow, 0)
}

fn b(s: &str) -> Reply {
    Reply::bulk(s)
}

/// A record as HMGET returns DUE_FIELDS.
fn record(rev: &str, next: &str, trigger: &str, grace: &str, paused: &str) -> Reply {
    let v = [rev, next, trigger, "UTC", "", "", "skip", grace, paused, ""];
    Reply::Array(
        v.iter()
            .map(|s| if s.is_empty() { Reply::Nil } else { b(s) })
            .collect(),
    )
}

fn args(c: &ff_core::contract::Call) -> Vec<String> {
    c.args
        .iter()
        .map(|a| String::from_utf8(a.clone()).unwrap())
        .collect()
}

#[test]
fn a_cycle_reads_decides_fires_and_absorbs_the_answer() {
    let mut s = schedule();
    s.begin_cycle(NOW);
    let reads = s.poll_reads();
    assert_eq!(
        reads,
        [[
            "ZRANGEBYSCORE",
            &due_index(p0()),
            "-inf",
            "+inf",
            "WITHSCORES",
            "LIMIT",
            "0",
            "5"
        ]
        .map(str::to_owned)]
    );
    // Due: a malformed name, one deleted meanwhile, a paused one, a broken
    // trigger, one without grace, one whose record is ahead of its entry,
    // one to fire; not due: `later`.
    let index = [
        ("x y", "1"),
        ("gone", "2"),
        ("paused", "3"),
        ("broken", "4"),
        ("nograce", "5"),
        ("ahead", "6"),
        ("every", "9000"),
        ("later", "20000"),
    ];
    s.handle_reads(vec![Ok(Reply::Array(
        index.iter().flat_map(|(m, sc)| [b(m), b(sc)]).collect(),
    ))]);
    let reads = s.poll_reads();
    let names = [
        "x y", "gone", "paused", "broken", "nograce", "ahead", "every",
    ];
    let want: Vec<Vec<String>> = names
        .iter()
        .map(|n| {
            let key = match ScheduleName::new(*n) {
                Ok(name) => record_key(p0(), &name),
                Err(_) => due_index(p0()),
            };
            let mut cmd = vec!["HMGET".to_owned(), key];
            cmd.extend(DUE_FIELDS.iter().map(|f| f.to_string()));
            cmd
        })
        .collect();
    assert_eq!(reads, want);
    s.handle_reads(vec![
        Ok(Reply::Nil),
        Ok(Reply::Array(vec![Reply::Nil; 10])),
        Ok(record("3", "", "every:1000", "60000", "1")),
        Ok(record("5", "4", "cron:nonsense", "60000", "0")),
        Ok(record("6", "5", "every:1000", "", "0")),
        Ok(record("7", "50000", "every:1000", "60000", "0")),
        Ok(record("8", "9000", "every:1000", "60000", "0")),
    ]);
    assert!(s.poll_reads().is_empty());
    let calls = s.poll_calls();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(
        (c.function, c.keys.clone()),
        ("ff_schedule_fire", vec![due_index(p0())])
    );
    let a = args(c);
    let every = ScheduleName::new("every").unwrap();
    let id = |t| fire_execution_id(p0(), &every, t).to_string();
    assert_eq!(&a[..4], ["", "", "", "7"]);
    assert_eq!(&a[4..8], ["repair", "x y", "", "malformed name"]);
    assert_eq!(&a[8..12], ["repair", "gone", "", ""]);
    assert_eq!(&a[12..16], ["repair", "paused", "3", ""]);
    assert_eq!(&a[16..19], ["repair", "broken", "5"]);
    assert!(a[19].starts_with("invalid expr: \"nonsense\""), "{}", a[19]);
    assert_eq!(&a[20..24], ["repair", "nograce", "6", "grace: missing"]);
    assert_eq!(&a[24..28], ["repair", "ahead", "7", ""]);
    // Every second since 9 s: 9 s and 10 s fire, 11 s is next.
    assert_eq!(
        &a[28..],
        [
            "fire",
            "every",
            "8",
            "9000",
            "10000",
            "11000",
            "0",
            "2",
            "9000",
            &id(9000),
            "10000",
            &id(10000)
        ]
    );
    s.handle_results(vec![Ok(Reply::Array(vec![
        Reply::Int(1),
        Reply::Int(2),
        Reply::Int(0),
        Reply::Int(0),
        Reply::Int(11_000),
        b("x y"),
        b("malformed"),
        b("gone"),
        b("repaired"),
        b("paused"),
        b("repaired"),
        b("ahead"),
        b("early"),
    ]))]);
    assert!(s.poll_reads().is_empty() && s.poll_calls().is_empty());
    assert_eq!(
        s.end_cycle(),
        CycleReport {
            acted: 2,
            malformed: 1,
            repaired: 2,
            backlog: 7,
            ..CycleReport::default()
        }
    );
    // `later` at 20 s, but the fire call said 11 s.
    assert_eq!(s.slot(0).next_due, Some(11_000));
}

#[test]
fn failures_are_counted_and_looked_at_again_soon() {
    // A failed head read.
    let mut s = schedule();
    s.begin_cycle(NOW);
    s.poll_reads();
    s.handle_reads(vec![Err("connection reset".into())]);
    assert!(s.poll_reads().is_empty() && s.poll_calls().is_empty());
    let r = s.end_cycle();
    assert_eq!(r.errors, 1);
    assert_eq!(
        r.notices,
        [Notice::ReadFailed {
            partition: 0,
            error: "connection reset".into()
        }]
    );
    assert_eq!(s.slot(0).next_due, Some(NOW + 1000));

    // A failed record read, then a fire refused for one item, then a
    // failed call.
    let mut s = schedule();
    s.begin_cycle(NOW);
    s.poll_reads();
    s.handle_reads(vec![Ok(Reply::Array(vec![b("a"), b("1"), b("b"), b("2")]))]);
    s.poll_reads();
    s.handle_reads(vec![
        Err("timeout".into()),
        Ok(record("1", "9000", "every:1000", "60000", "0")),
    ]);
    let calls = s.poll_calls();
    assert_eq!(args(&calls[0])[3], "1");
    s.handle_results(vec![Ok(Reply::Array(vec![
        Reply::Int(1),
        Reply::Int(1),
        Reply::Int(0),
        Reply::Int(0),
        Reply::Int(-1),
        b("b"),
        b("stale"),
    ]))]);
    let r = s.end_cycle();
    assert_eq!((r.acted, r.errors, r.backlog), (1, 2, 2));
    assert_eq!(
        r.notices,
        [
            Notice::ReadFailed {
                partition: 0,
                error: "timeout".into()
            },
            Notice::MembersFailed {
                failed: 1,
                entered_backoff: 0
            }
        ]
    );

    let mut s = schedule();
    s.begin_cycle(NOW);
    s.poll_reads();
    s.handle_reads(vec![Ok(Reply::Array(vec![b("b"), b("2")]))]);
    s.poll_reads();
    s.handle_reads(vec![Ok(record("1", "9000", "every:1000", "60000", "0"))]);
    s.poll_calls();
    s.handle_results(vec![Err("READONLY".into())]);
    let r = s.end_cycle();
    assert_eq!(r.errors, 1);
    assert_eq!(
        r.notices,
        [Notice::BatchFailed {
            partition: 0,
            error: "READONLY".into(),
            batch: 1
        }]
    );
    assert_eq!(s.slot(0).next_due, Some(NOW + 1000));
}

#[test]
fn a_long_catch_up_waits_for_the_next_round() {
    // Two schedules of 100 fires each: one call takes one, the next round
    // the other (a call stays a few ms).
    let mut s = schedule();
    s.begin_cycle(NOW);
    s.poll_reads();
    s.handle_reads(vec![Ok(Reply::Array(vec![b("a"), b("1"), b("b"), b("2")]))]);
    s.poll_reads();
    let busy = || Ok(record("1", "100", "every:10", "60000", "0"));
    s.handle_reads(vec![busy(), busy()]);
    let calls = s.poll_calls();
    assert_eq!(args(&calls[0])[3], "1");
    assert_eq!(args(&calls[0])[5], "a");
    let fired = |n: i64| {
        Ok(Reply::Array(vec![
            Reply::Int(1),
            Reply::Int(n),
            Reply::Int(0),
            Reply::Int(0),
            Reply::Int(-1),
        ]))
    };
    s.handle_results(vec![fired(100)]);
    // The next round reads the index again.
    let reads = s.poll_reads();
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0][0], "ZRANGEBYSCORE");
    s.handle_reads(vec![Ok(Reply::Array(vec![b("b"), b("2")]))]);
    // (b's record was read in the first round: its timetable is kept)
    assert!(s.poll_reads().is_empty());
    let calls = s.poll_calls();
    assert_eq!(args(&calls[0])[5], "b");
    s.handle_results(vec![fired(100)]);
    assert!(s.poll_reads().is_empty() && s.poll_calls().is_empty());
    let r = s.end_cycle();
    assert_eq!((r.acted, r.backlog), (200, 2));
}

#[test]
fn a_schedule_in_failure_backoff_is_skipped_and_looked_at_after_an_interval() {
    let mut s = schedule();
    let refused = || {
        Ok(Reply::Array(vec![
            Reply::Int(1),
            Reply::Int(0),
            Reply::Int(0),
            Reply::Int(0),
            Reply::Int(-1),
            b("a"),
            b("boom"),
        ]))
    };
    // Three refusals in a row put it in backoff.
    for k in 0..3u64 {
        // (each failure looks again a second later)
        let now = NOW + k * 2000;
        s.begin_cycle(now);
        s.poll_reads();
        s.handle_reads(vec![Ok(Reply::Array(vec![b("a"), b("1")]))]);
        // (its record is read once: a refusal keeps its compiled timetable)
        let reads = s.poll_reads();
        assert_eq!(reads.len(), usize::from(k == 0));
        if k == 0 {
            s.handle_reads(vec![Ok(record("1", "9000", "every:1000", "60000", "0"))]);
        }
        assert_eq!(s.poll_calls().len(), 1);
        s.handle_results(vec![refused()]);
        let r = s.end_cycle();
        assert_eq!(r.errors, 1);
        assert_eq!(
            r.notices,
            [Notice::MembersFailed {
                failed: 1,
                entered_backoff: usize::from(k == 2)
            }]
        );
    }
    // Still due, but skipped: nothing read or called, and looked at again
    // an interval later (no announcement would come: it stays the earliest).
    s.begin_cycle(NOW + 6000);
    s.poll_reads();
    s.handle_reads(vec![Ok(Reply::Array(vec![
        b("a"),
        b("1"),
        b("b"),
        b("50000"),
    ]))]);
    assert!(s.poll_reads().is_empty() && s.poll_calls().is_empty());
    let r = s.end_cycle();
    assert_eq!((r.skipped, r.backlog, r.errors), (1, 1, 0));
    assert_eq!(s.slot(0).next_due, Some(NOW + 6000 + 1000));
}

#[test]
fn an_entry_left_due_now_does_not_make_the_partition_due_again() {
    // The fire call's answer says the index's earliest entry is due now
    // (another engine's schedule, set aside by the filter): that is no
    // future due time, so the partition is not due again at once (it would
    // be read and set aside over and over within the same millisecond).
    let mut s = schedule();
    s.begin_cycle(NOW);
    s.poll_reads();
    s.handle_reads(vec![Ok(Reply::Array(vec![b("a"), b("10000")]))]);
    s.poll_reads();
    s.handle_reads(vec![Ok(record("1", "10000", "every:1000", "60000", "0"))]);
    assert_eq!(s.poll_calls().len(), 1);
    s.handle_results(vec![Ok(Reply::Array(vec![
        Reply::Int(1),
        Reply::Int(0),
        Reply::Int(0),
        Reply::Int(0),
        Reply::Int(NOW as i64),
        b("a"),
        b("filtered"),
    ]))]);
    assert!(s.poll_reads().is_empty() && s.poll_calls().is_empty());
    let r = s.end_cycle();
    assert_eq!((r.acted, r.errors), (0, 0));
    assert_eq!(s.slot(0).next_due, None);
    assert!(!s.slot(0).dirty);
    assert!(s.poll_timeout(NOW) > NOW, "nothing due at now");
}

#[test]
fn records_that_cannot_be_read_wait_for_the_next_cycle_and_then_back_off() {
    // A full first page of due schedules whose records all fail to read
    // (a WRONGTYPE key fails the same way every time).
    let names = ["a", "b", "c", "d", "e"];
    let mut s = schedule();
    let mut cycle = |now: u64| {
        s.begin_cycle(now);
        let heads = s.poll_reads();
        assert_eq!(heads.len(), 1);
        s.handle_reads(vec![Ok(Reply::Array(
            names.iter().flat_map(|n| [b(n), b("1")]).collect(),
        ))]);
        let reads = s.poll_reads();
        let n = reads.len();
        s.handle_reads(vec![Err("WRONGTYPE".to_owned()); n]);
        // Not read again in this cycle: the partition waits an interval.
        assert!(s.poll_reads().is_empty() && s.poll_calls().is_empty());
        let r = s.end_cycle();
        assert_eq!(r.errors, n as u64);
        assert_eq!(s.slot(0).next_due, Some(now + 1000));
        n
    };
    // Three failures each, then each schedule is skipped for a while.
    assert_eq!(cycle(NOW), 5);
    assert_eq!(cycle(NOW + 1000), 5);
    assert_eq!(cycle(NOW + 2000), 5);
    assert_eq!(cycle(NOW + 3000), 0);
}

/// A fire call's answer: `fired` executions made, the index's next due time,
/// then (name, code) per exception.
fn fired(n: i64, next_due: i64, exceptions: &[(&str, &str)]) -> Result<Reply, String> {
    let mut v = vec![
        Reply::Int(1),
        Reply::Int(n),
        Reply::Int(0),
        Reply::Int(0),
        Reply::Int(next_due),
    ];
    v.extend(exceptions.iter().flat_map(|(n, c)| [b(n), b(c)]));
    Ok(Reply::Array(v))
}

#[test]
fn a_partition_failing_again_waits_another_interval() {
    // Its retry time, now reached, is spent: not kept as a due time of now
    // (the partition would be read at once, over and over).
    let mut s = schedule();
    for now in [NOW, NOW + 1000] {
        s.begin_cycle(now);
        assert_eq!(s.poll_reads().len(), 1);
        s.handle_reads(vec![Err("connection reset".into())]);
        assert_eq!(s.end_cycle().errors, 1);
        assert_eq!(s.slot(0).next_due, Some(now + 1000));
    }
}

#[test]
fn a_fire_call_holds_up_to_a_hundred_fires() {
    // `every:10` from 9020 is due 99 times by 10 s; from 10 s, once.
    let (ninety_nine, one) = (
        || Ok(record("1", "9020", "every:10", "60000", "0")),
        || Ok(record("1", "10000", "every:1000", "60000", "0")),
    );
    let hundred = || Ok(record("1", "100", "every:10", "60000", "0"));
    // 99 + 1 fit one call; 1 + 100 do not: the second waits for a round.
    for (first, second, items) in [(ninety_nine(), one(), "2"), (one(), hundred(), "1")] {
        let mut s = schedule();
        s.begin_cycle(NOW);
        s.poll_reads();
        s.handle_reads(vec![Ok(Reply::Array(vec![b("a"), b("1"), b("b"), b("2")]))]);
        s.poll_reads();
        s.handle_reads(vec![first, second]);
        let calls = s.poll_calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(args(&calls[0])[3], items);
    }
}

#[test]
fn compiled_schedules_are_kept_and_a_stale_one_has_its_partition_read_again() {
    let once = || Ok(record("1", "10000", "every:1000", "60000", "0"));
    let mut s = schedule();
    s.begin_cycle(NOW);
    s.poll_reads();
    s.handle_reads(vec![Ok(Reply::Array(vec![
        b("a"),
        b("10000"),
        b("b"),
        b("10000"),
    ]))]);
    assert_eq!(s.poll_reads().len(), 2);
    s.handle_reads(vec![once(), once()]);
    assert_eq!(args(&s.poll_calls()[0])[3], "2");
    s.handle_results(vec![fired(2, 11_000, &[])]);
    s.end_cycle();
    assert_eq!(s.slot(0).next_due, Some(11_000));

    // Both are decided without reading their records again.
    s.begin_cycle(11_000);
    s.poll_reads();
    s.handle_reads(vec![Ok(Reply::Array(vec![
        b("a"),
        b("11000"),
        b("b"),
        b("11000"),
    ]))]);
    assert!(s.poll_reads().is_empty(), "both records are kept compiled");
    let calls = s.poll_calls();
    assert_eq!(args(&calls[0])[3], "2");
    // `a` changed meanwhile: decided from a stale entry, so the partition
    // is read again at the next cycle.
    s.handle_results(vec![fired(1, 12_000, &[("a", "gone")])]);
    s.end_cycle();
    assert!(s.slot(0).dirty);
}

#[test]
fn a_record_that_fails_to_read_leaves_another_partitions_next_round() {
    let mut s = schedule_over(2);
    let p1 = Partition::new(PartitionFamily::Flow, 1);
    s.begin_cycle(NOW);
    assert_eq!(s.poll_reads().len(), 2);
    s.handle_reads(vec![
        Ok(Reply::Array(vec![b("a"), b("1"), b("b"), b("2")])),
        Ok(Reply::Array(vec![b("c"), b("3")])),
    ]);
    assert_eq!(s.poll_reads().len(), 3);
    // p0's two long catch-ups take two rounds; p1's record fails.
    let hundred = || Ok(record("1", "100", "every:10", "60000", "0"));
    s.handle_reads(vec![hundred(), hundred(), Err("WRONGTYPE".into())]);
    let calls = s.poll_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].keys, [due_index(p0())]);
    s.handle_results(vec![fired(100, -1, &[])]);
    // p0 has its next round in this cycle; p1 waits an interval.
    let reads = s.poll_reads();
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0][1], due_index(p0()));
    assert_ne!(reads[0][1], due_index(p1));
}
