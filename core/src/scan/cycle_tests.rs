//! A batch scanner's cycles against the model world: which partitions are
//! read and with what LIMIT, the batch calls sent, batches split after a
//! failure, failure backoff, filtered members, read errors, sweeps, and
//! ownership. (These were the shell runner's mocked tests; the schedule is
//! core's now, so they drive it directly, one [`cycle`] at a time.)

use super::test_world::*;
use super::*;
use crate::tracker::{BACKOFF_CYCLES, FAILURE_THRESHOLD};

/// Server time at the start of a test (ms).
const BASE: u64 = 1_000_000;

struct Setup {
    function: BatchFunction,
    partitions: u16,
    batch: usize,
    interval_ms: u64,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            function: DELAYED,
            partitions: 3,
            batch: 10,
            interval_ms: 10,
        }
    }
}

impl Setup {
    fn build(self) -> Schedule {
        Schedule::new(Settings {
            work: ScanWork::Batch(self.function),
            interval_ms: self.interval_ms,
            batch: self.batch,
            rescan_ms: 3_600_000,
            config: PartitionConfig {
                flow_partitions: self.partitions,
                budget_partitions: 1,
                quota_partitions: 1,
            },
            filter: ScannerFilter::default(),
        })
    }
}

/// Is a cycle due at `now`?
fn has_work(s: &mut Schedule, now: u64) -> bool {
    s.poll_timeout(now) <= now
}

fn slots(s: &Schedule) -> Vec<Slot> {
    (0..s.held().len()).map(|i| s.slot(i)).collect()
}

// ---------------------------------------------------------------------------
// 1. The batch path.

#[test]
fn cycle_reads_every_partition_then_sends_one_pipelined_batch_per_due_partition() {
    let mut w = World::default();
    let (k0, k2) = (key(DELAYED, 0), key(DELAYED, 2));
    w.zadd(&k0, 100, "a");
    w.zadd(&k0, 200, "b");
    w.zadd(&k0, BASE, "c"); // due exactly now
    w.zadd(&k0, BASE + 5_000, "future");
    // partition 1 is empty
    w.zadd(&k2, 50, "d");
    w.stale.insert("d".into());
    let mut s = Setup::default().build();
    let r = cycle(&mut s, &mut w, BASE);

    // One pipelined read of every partition (all start dirty), LIMIT batch + 1.
    assert_eq!(w.reads.len(), 1);
    assert_eq!(
        w.reads[0],
        (0..3).map(|p| read_cmd(DELAYED, p, 11)).collect::<Vec<_>>()
    );
    assert_eq!(
        w.reads[0][0],
        strs(&[
            "ZRANGEBYSCORE",
            "ff:idx:{fp:0}:delayed",
            "-inf",
            "+inf",
            "WITHSCORES",
            "LIMIT",
            "0",
            "11"
        ])
    );
    // One pipelined FCALL: a batch for partitions 0 and 2, none for the empty one.
    assert_eq!(w.calls.len(), 1);
    let calls = &w.calls[0];
    assert_eq!(calls.len(), 2);
    for c in calls {
        assert_eq!(c.function, "ff_promote_delayed");
        assert!(!c.read_only);
        assert_eq!(&c.args[..3], [b"".to_vec(), b"".to_vec(), b"".to_vec()]);
    }
    assert_eq!(
        batches(calls),
        vec![
            (key(DELAYED, 0), strs(&["a", "b", "c"])),
            (key(DELAYED, 2), strs(&["d"])),
        ]
    );
    assert_eq!(w.zmembers(&key(DELAYED, 0)), ["future"]);

    assert_eq!(
        (r.acted, r.repaired, r.backlog, r.errors, r.skipped),
        (3, 1, 4, 0, 0)
    );
    // The schedule now knows partition 0's next due time and nothing is dirty.
    assert_eq!(s.slot(0).next_due, Some(BASE + 5_000));
    assert!(slots(&s).iter().all(|s| !s.dirty));
    assert!(!has_work(&mut s, BASE));
}

#[test]
fn a_cycle_with_nothing_due_reads_nothing() {
    let mut w = World::default();
    w.zadd(&key(DELAYED, 1), BASE + 60_000, "later");
    let mut s = Setup::default().build();
    let r1 = cycle(&mut s, &mut w, BASE);
    assert_eq!(w.reads.len(), 1);
    assert!(w.calls.is_empty(), "nothing was due");
    // Second cycle: no partition is dirty or due, so no read at all.
    let r2 = cycle(&mut s, &mut w, BASE);
    assert_eq!(w.reads.len(), 1);
    let r = sum(&[r1, r2]);
    assert_eq!((r.acted, r.backlog), (0, 0));
    assert_eq!(s.slot(1).next_due, Some(BASE + 60_000));
}

#[test]
fn a_partition_whose_next_due_time_passed_is_read_again() {
    let mut w = World::default();
    w.zadd(&key(DELAYED, 1), BASE + 100, "x");
    let mut s = Setup::default().build();
    let r1 = cycle(&mut s, &mut w, BASE);
    assert!(has_work(&mut s, BASE + 100));
    let r2 = cycle(&mut s, &mut w, BASE + 100);
    assert_eq!(w.reads.len(), 2);
    assert_eq!(w.reads[1], vec![read_cmd(DELAYED, 1, 11)]);
    assert_eq!(w.calls.len(), 1);
    assert_eq!(batches(&w.calls[0]), vec![(key(DELAYED, 1), strs(&["x"]))]);
    assert_eq!(sum(&[r1, r2]).acted, 1);
    assert_eq!(s.slot(1).next_due, None);
}

// ---------------------------------------------------------------------------
// 2. More due than one batch takes.

#[test]
fn more_than_a_batch_due_loops_within_the_cycle() {
    let mut w = World::default();
    for i in 0..5u64 {
        w.zadd(&key(DELAYED, 0), 10 + i, &format!("m{i}"));
    }
    w.zadd(&key(DELAYED, 1), 5, "solo");
    let mut s = Setup {
        partitions: 2,
        batch: 2,
        ..Setup::default()
    }
    .build();
    let r = cycle(&mut s, &mut w, BASE);

    // Round 1 reads both partitions; later rounds only the one with more due.
    assert_eq!(
        w.reads,
        [
            vec![read_cmd(DELAYED, 0, 3), read_cmd(DELAYED, 1, 3)],
            vec![read_cmd(DELAYED, 0, 3)],
            vec![read_cmd(DELAYED, 0, 3)],
        ]
    );
    let rounds: Vec<_> = w.calls.iter().map(|c| batches(c)).collect();
    assert_eq!(
        rounds,
        [
            vec![
                (key(DELAYED, 0), strs(&["m0", "m1"])),
                (key(DELAYED, 1), strs(&["solo"])),
            ],
            vec![(key(DELAYED, 0), strs(&["m2", "m3"]))],
            vec![(key(DELAYED, 0), strs(&["m4"]))],
        ]
    );
    assert!(w.zmembers(&key(DELAYED, 0)).is_empty());
    assert_eq!((r.acted, r.errors), (6, 0));
    // The backlog is what the first round's snapshots showed (capped by LIMIT).
    assert_eq!(r.backlog, 4);
    assert!(!has_work(&mut s, BASE));
}

// ---------------------------------------------------------------------------
// 3. Errors from the batch calls.

#[test]
fn a_failed_batch_is_retried_member_by_member_in_one_pipeline() {
    let mut w = World::default();
    for (sc, id) in [(1, "a"), (2, "bad"), (3, "c")] {
        w.zadd(&key(DELAYED, 0), sc, id);
    }
    w.zadd(&key(DELAYED, 1), 1, "ok");
    w.poison.insert("bad".into());
    let mut s = Setup {
        partitions: 2,
        ..Setup::default()
    }
    .build();
    let r = cycle(&mut s, &mut w, BASE);

    let rounds: Vec<_> = w.calls.iter().map(|c| batches(c)).collect();
    assert_eq!(
        rounds,
        [
            vec![
                (key(DELAYED, 0), strs(&["a", "bad", "c"])),
                (key(DELAYED, 1), strs(&["ok"])),
            ],
            // Only the failed batch is split, its members pipelined together.
            vec![
                (key(DELAYED, 0), strs(&["a"])),
                (key(DELAYED, 0), strs(&["bad"])),
                (key(DELAYED, 0), strs(&["c"])),
            ],
        ]
    );
    assert_eq!(w.zmembers(&key(DELAYED, 0)), ["bad"]);
    // One failed call, one failed member.
    assert_eq!((r.acted, r.errors), (3, 2));
}

#[test]
fn per_member_failures_are_counted_as_errors() {
    let mut w = World::default();
    for (sc, id) in [(1, "a"), (2, "f1"), (3, "f2")] {
        w.zadd(&key(DELAYED, 0), sc, id);
    }
    w.failing.extend(["f1".to_owned(), "f2".to_owned()]);
    let mut s = Setup {
        partitions: 1,
        ..Setup::default()
    }
    .build();
    let r = cycle(&mut s, &mut w, BASE);
    assert_eq!(w.calls.len(), 1, "a reply with exceptions is not split");
    assert_eq!((r.acted, r.errors), (1, 2));
    assert_eq!(w.zmembers(&key(DELAYED, 0)), ["f1", "f2"]);
}

#[test]
fn a_single_member_call_that_fails_is_looked_at_again_soon() {
    let mut w = World::default();
    w.zadd(&key(DELAYED, 0), 1, "x");
    w.calls_fail = true;
    let mut s = Setup {
        partitions: 1,
        ..Setup::default()
    }
    .build();
    let r = cycle(&mut s, &mut w, BASE);
    assert_eq!((w.reads.len(), w.calls.len()), (1, 1));
    assert_eq!(r.errors, 1);
    // Looked at again soon (within a second), not at once: no spinning.
    assert!(s
        .slot(0)
        .next_due
        .is_some_and(|d| d > BASE && d <= BASE + 1_000));
}

#[test]
fn a_reply_of_the_wrong_shape_counts_as_a_failed_call() {
    let mut w = World::default();
    w.zadd(&key(DELAYED, 0), 1, "x");
    w.zadd(&key(DELAYED, 0), 2, "y");
    w.calls_misshapen = true;
    let mut s = Setup {
        partitions: 1,
        ..Setup::default()
    }
    .build();
    let r = cycle(&mut s, &mut w, BASE);
    // The batch and then each single call failed to decode.
    assert_eq!((w.reads.len(), w.calls.len()), (1, 2));
    assert_eq!(r.errors, 3);
    assert_eq!(w.calls[1].len(), 2);
}

/// Regression test (this was a bug; runner.rs, `absorb`/`execute`/`cycle`): when a batch of a partition
/// that had more due than one batch (`more` = true) fails as a whole and is
/// split, the partition is neither pushed to `again` nor marked dirty, and
/// its `next_due` is the plan's (`None` when every member read was due). The
/// due members beyond the failed batch are then stranded until the rescan
/// interval (60 s by default) or a wake-up, even if every single-member
/// retry succeeded.
#[test]
fn due_members_after_a_failed_batch_are_not_stranded() {
    let mut w = World::default();
    for (sc, id) in [(1, "a"), (2, "b"), (3, "c")] {
        w.zadd(&key(DELAYED, 0), sc, id);
    }
    // A transient failure: the batch [a, b] fails, a and b alone succeed.
    w.batch_errors = 1;
    let mut s = Setup {
        partitions: 1,
        batch: 2,
        ..Setup::default()
    }
    .build();
    cycle(&mut s, &mut w, BASE);
    let rounds: Vec<_> = w.calls.iter().map(|c| batches(c)).collect();
    assert_eq!(rounds[0], [(key(DELAYED, 0), strs(&["a", "b"]))]);
    assert_eq!(
        rounds[1],
        [
            (key(DELAYED, 0), strs(&["a"])),
            (key(DELAYED, 0), strs(&["b"])),
        ]
    );
    // Give it another cycle: c is due and should be acted on by now.
    cycle(&mut s, &mut w, BASE);
    assert!(
        w.zmembers(&key(DELAYED, 0)).is_empty(),
        "c is still in the index: {:?}, and the schedule sees no work: dirty={} next_due={:?}",
        w.zmembers(&key(DELAYED, 0)),
        s.slot(0).dirty,
        s.slot(0).next_due
    );
}

// ---------------------------------------------------------------------------
// 4. Failure backoff.

/// Mark the partition for a read (as a rescan would), add `goods` fresh due
/// members, run one cycle; returns the ids sent in each call round, the LIMIT
/// of the first read and the report.
fn backoff_cycle(
    s: &mut Schedule,
    w: &mut World,
    n: &mut u32,
    goods: u32,
) -> (Vec<Vec<String>>, Option<String>, CycleReport) {
    s.handle_wake(Wake::Rescan, BASE);
    for _ in 0..goods {
        *n += 1;
        w.zadd(&key(DELAYED, 0), 10 + u64::from(*n), &g(*n));
    }
    let (reads, calls) = (w.reads.len(), w.calls.len());
    let r = cycle(s, w, BASE);
    let rounds = w.calls[calls..]
        .iter()
        .map(|c| c.iter().flat_map(ids_of).collect())
        .collect();
    let limit = w.reads[reads..].first().map(|r| r[0][7].clone());
    (rounds, limit, r)
}

fn g(n: u32) -> String {
    format!("g{n:03}")
}

#[test]
fn a_member_failing_three_times_is_skipped_without_crowding_out_others() {
    let mut w = World::default();
    w.zadd(&key(DELAYED, 0), 1, "bad");
    w.failing.insert("bad".into());
    let mut s = Setup {
        partitions: 1,
        batch: 2,
        ..Setup::default()
    }
    .build();
    let bad = || "bad".to_owned();
    let mut n = 0;
    let mut reports = Vec::new();
    for cycle in 1..=FAILURE_THRESHOLD {
        let (rounds, limit, r) = backoff_cycle(&mut s, &mut w, &mut n, 1);
        reports.push(r);
        assert_eq!(rounds, [vec![bad(), g(n)]], "cycle {cycle}");
        assert_eq!(limit.as_deref(), Some("3"), "cycle {cycle}");
    }
    assert_eq!(sum(&reports).errors, u64::from(FAILURE_THRESHOLD));
    // In backoff: not sent; the read widens by one, and the first round's
    // batch is full of good members (the rest follow in a second round).
    let skipped_cycles = BACKOFF_CYCLES - 1;
    for cycle in 0..skipped_cycles {
        let (rounds, limit, r) = backoff_cycle(&mut s, &mut w, &mut n, 3);
        reports.push(r);
        assert_eq!(
            rounds,
            [vec![g(n - 2), g(n - 1)], vec![g(n)]],
            "backoff cycle {cycle}"
        );
        assert_eq!(limit.as_deref(), Some("4"), "backoff cycle {cycle}");
    }
    let t = sum(&reports);
    assert_eq!(t.skipped, skipped_cycles);
    assert_eq!(t.errors, u64::from(FAILURE_THRESHOLD));
    assert_eq!(t.acted, u64::from(n));
    // Its backoff over (by the next cycle or the one after), it is tried again.
    let mut retried = false;
    for _ in 0..2 {
        let (rounds, _, _) = backoff_cycle(&mut s, &mut w, &mut n, 1);
        retried |= rounds.iter().flatten().any(|id| id == "bad");
    }
    assert!(retried, "bad is retried after its backoff");
}

/// Regression test (this was a bug; off by one, runner.rs `cycle` with core/src/tracker.rs): the tracker
/// counts the cycle in which a member enters backoff as the first of its
/// `BACKOFF_CYCLES` skipped cycles, but the runner has already acted in that
/// cycle (it advances the cycle counter before acting). So a member that
/// failed `FAILURE_THRESHOLD` times is skipped in only `BACKOFF_CYCLES - 1`
/// (9) following cycles and sent again in the 10th.
#[test]
fn a_member_in_backoff_is_skipped_for_backoff_cycles() {
    let mut w = World::default();
    w.zadd(&key(DELAYED, 0), 1, "bad");
    w.failing.insert("bad".into());
    let mut s = Setup {
        partitions: 1,
        batch: 2,
        ..Setup::default()
    }
    .build();
    let mut n = 0;
    for _ in 0..FAILURE_THRESHOLD {
        backoff_cycle(&mut s, &mut w, &mut n, 0);
    }
    for cycle in 1..=BACKOFF_CYCLES {
        let (sent, _, _) = backoff_cycle(&mut s, &mut w, &mut n, 0);
        assert!(sent.is_empty(), "sent {sent:?} in backoff cycle {cycle}");
    }
}

/// Regression test (this was a suspected bug; runner.rs `absorb`): a member whose action fails
/// (`error:<reason>` in an otherwise successful reply) stays due in its index,
/// and the batch function reports it as the index's next due time (≤ now);
/// `absorb` drops any next due time ≤ now and does not mark the partition
/// dirty (unlike a failed single-member call), so the member is retried only
/// when the partition is read for another reason — the rescan interval (60 s
/// by default) or a wake-up for a new earliest member. A member therefore
/// needs three rescans (minutes) to reach `FAILURE_THRESHOLD`, and "cycles"
/// of backoff count cycles of unrelated partitions.
#[test]
fn a_failed_member_is_retried_before_the_rescan_interval() {
    let mut w = World::default();
    w.zadd(&key(DELAYED, 0), 1, "bad");
    w.failing.insert("bad".into());
    let mut s = Setup {
        partitions: 1,
        interval_ms: 10,
        ..Setup::default()
    }
    .build();
    // 150 ms of the schedule's own timing, a cycle whenever it asks for one.
    let mut errors = 0;
    for now in BASE..BASE + 150 {
        if has_work(&mut s, now) {
            errors += cycle(&mut s, &mut w, now).errors;
        }
    }
    let attempts = w
        .calls
        .iter()
        .flatten()
        .filter(|c| ids_of(c).contains(&"bad".to_owned()))
        .count();
    assert!(
        attempts >= 2,
        "bad attempted {attempts} time(s) in 150 ms with a 10 ms interval ({errors} errors)"
    );
}

#[test]
fn filtered_members_are_set_aside_at_once() {
    let mut w = World::default();
    w.zadd(&key(DELAYED, 0), 1, "theirs");
    w.zadd(&key(DELAYED, 0), 2, "ours");
    w.filtered.insert("theirs".into());
    let mut s = Setup {
        partitions: 1,
        ..Setup::default()
    }
    .build();
    let r1 = cycle(&mut s, &mut w, BASE);
    // Another member of ours becomes due; "theirs" stays in the index.
    w.zadd(&key(DELAYED, 0), 2, "ours");
    s.handle_wake(Wake::Rescan, BASE);
    let r2 = cycle(&mut s, &mut w, BASE);
    let sent: Vec<Vec<String>> = w.calls.iter().flatten().map(ids_of).collect();
    assert_eq!(sent, [strs(&["theirs", "ours"]), strs(&["ours"])]);
    let t = sum(&[r1, r2]);
    assert_eq!((t.errors, t.skipped, t.acted), (0, 1, 2));
}

#[test]
fn a_call_reports_a_due_time_added_after_the_read() {
    // The batch reply's next due time is the index's earliest score after
    // the call: a member added between the read and the call (no wake-up
    // seen) is due then, and the schedule learns it from the reply.
    let mut w = World::default();
    let k0 = key(DELAYED, 0);
    w.zadd(&k0, 1, "a");
    let mut s = Setup {
        partitions: 1,
        ..Setup::default()
    }
    .build();
    w.arrivals.push((k0.clone(), BASE + 500, "new".into()));
    let r = cycle(&mut s, &mut w, BASE);
    assert_eq!(r.acted, 1);
    assert_eq!(batches(&w.calls[0]), vec![(k0.clone(), strs(&["a"]))]);
    assert_eq!(s.slot(0).next_due, Some(BASE + 500));
    assert!(!has_work(&mut s, BASE + 499));
    assert!(has_work(&mut s, BASE + 500));
}

#[test]
fn a_member_left_due_now_does_not_make_the_partition_due_again() {
    // Another engine's member due exactly now stays in the index after the
    // call: the reply's next due time is `now`, which is not a future due
    // time, so the partition is not read again at once (it would be read
    // and set aside over and over within the same millisecond).
    let mut w = World::default();
    w.zadd(&key(DELAYED, 0), BASE, "theirs");
    w.filtered.insert("theirs".into());
    let mut s = Setup {
        partitions: 1,
        ..Setup::default()
    }
    .build();
    let r = cycle(&mut s, &mut w, BASE);
    assert_eq!((r.acted, r.errors), (0, 0));
    assert_eq!(
        batches(&w.calls[0]),
        vec![(key(DELAYED, 0), strs(&["theirs"]))]
    );
    assert_eq!(w.zmembers(&key(DELAYED, 0)), ["theirs"]);
    assert_eq!(s.slot(0).next_due, None);
    assert!(!has_work(&mut s, BASE));
}

#[test]
fn malformed_members_are_counted_and_noticed_only_when_found() {
    // The data plane answers `malformed` for an unusable record and takes
    // it out of the index: counted, one notice per call that found any, and
    // no notice from a call that found none.
    let mut w = World::default();
    let k0 = key(DELAYED, 0);
    w.zadd(&k0, 1, "a");
    w.zadd(&k0, 2, "bad1");
    w.zadd(&k0, 3, "bad2");
    w.zadd(&k0, BASE + 5, "later");
    w.zadd(&key(DELAYED, 1), 1, "b");
    w.malformed_members = ["bad1".into(), "bad2".into()].into();
    let mut s = Setup::default().build();
    let r = cycle(&mut s, &mut w, BASE);
    assert_eq!((r.acted, r.malformed, r.errors), (2, 2, 0));
    assert_eq!(r.notices, [Notice::Malformed(2)]);
    assert_eq!(w.zmembers(&k0), ["later"], "out of the index");
    assert_eq!(s.slot(0).next_due, Some(BASE + 5));
    let r = cycle(&mut s, &mut w, BASE + 5);
    assert_eq!((r.acted, r.malformed), (1, 0));
    assert_eq!(r.notices, []);
}

// ---------------------------------------------------------------------------
// 5. Read errors.

#[test]
fn a_failed_snapshot_read_is_counted_and_retried_soon() {
    let mut w = World::default();
    w.zadd(&key(DELAYED, 0), 1, "a");
    w.zadd(&key(DELAYED, 1), 1, "b");
    w.zadd(&key(DELAYED, 2), 1, "c");
    w.read_errors.insert(key(DELAYED, 1));
    w.malformed_reads.insert(key(DELAYED, 2));
    let mut s = Setup::default().build();
    let r1 = cycle(&mut s, &mut w, BASE);
    assert_eq!(batches(&w.calls[0]), vec![(key(DELAYED, 0), strs(&["a"]))]);
    assert_eq!((r1.errors, r1.acted), (2, 1));
    assert!(
        matches!(
            &r1.notices[..],
            [
                Notice::ReadFailed { partition: 1, .. },
                Notice::ReadFailed { partition: 2, .. }
            ]
        ),
        "{:?}",
        r1.notices
    );
    assert!(!s.slot(0).dirty);
    // The failed partitions are looked at again soon (within a second), not at once.
    assert!(!has_work(&mut s, BASE));
    for i in [1, 2] {
        assert!(s
            .slot(i)
            .next_due
            .is_some_and(|d| d > BASE && d <= BASE + 1_000));
    }

    w.read_errors.clear();
    w.malformed_reads.clear();
    let later = BASE + 1_000;
    assert!(has_work(&mut s, later));
    let r2 = cycle(&mut s, &mut w, later);
    assert_eq!(
        w.reads[1],
        vec![read_cmd(DELAYED, 1, 11), read_cmd(DELAYED, 2, 11)],
        "only the partitions that failed are read again"
    );
    assert_eq!(
        batches(&w.calls[1]),
        vec![
            (key(DELAYED, 1), strs(&["b"])),
            (key(DELAYED, 2), strs(&["c"])),
        ]
    );
    let t = sum(&[r1, r2]);
    assert_eq!((t.errors, t.acted), (2, 3));
}

// ---------------------------------------------------------------------------
// 8. The sweep scanner.

fn sscan(p: u16, c: &str, count: usize) -> Vec<String> {
    strs(&["SSCAN", &key(SWEEP, p), c, "COUNT", &count.to_string()])
}

#[test]
fn sweep_walks_every_partition_with_sscan_until_cursor_zero() {
    let mut w = World::default();
    w.sets
        .insert(key(SWEEP, 0), (0..5).map(|i| format!("a{i}")).collect());
    w.sets.insert(key(SWEEP, 1), vec!["b0".into()]);
    w.stale.insert("a3".into());
    let mut s = Setup {
        function: SWEEP,
        partitions: 3,
        batch: 2,
        interval_ms: 30_000,
    }
    .build();
    // The first sweep waits one interval after start.
    assert!(!has_work(&mut s, BASE));
    let r = cycle(&mut s, &mut w, BASE);
    assert_eq!(
        w.reads,
        [
            vec![sscan(0, "0", 2), sscan(1, "0", 2), sscan(2, "0", 2)],
            vec![sscan(0, "2", 2)],
            vec![sscan(0, "4", 2)],
        ]
    );
    let rounds: Vec<_> = w.calls.iter().map(|c| batches(c)).collect();
    assert_eq!(
        rounds,
        [
            vec![
                (key(SWEEP, 0), strs(&["a0", "a1"])),
                (key(SWEEP, 1), strs(&["b0"])),
            ],
            vec![(key(SWEEP, 0), strs(&["a2", "a3"]))],
            vec![(key(SWEEP, 0), strs(&["a4"]))],
        ]
    );
    assert!(w.calls[0]
        .iter()
        .all(|c| c.function == "ff_reconcile_indexes"));
    assert_eq!((r.acted, r.repaired, r.backlog), (5, 1, 6));
    // Not again before the interval.
    assert!(!has_work(&mut s, BASE));
}

#[test]
fn sweep_chunks_a_large_sscan_page_by_batch_size() {
    let mut w = World::default();
    w.sets
        .insert(key(SWEEP, 0), (0..5).map(|i| format!("a{i}")).collect());
    w.sscan_page = Some(100); // COUNT is only a hint
    let mut s = Setup {
        function: SWEEP,
        partitions: 1,
        batch: 2,
        ..Setup::default()
    }
    .build();
    let r = cycle(&mut s, &mut w, BASE);
    assert_eq!(w.reads.len(), 1);
    assert_eq!(w.calls.len(), 1, "all chunks in one pipeline");
    assert_eq!(
        batches(&w.calls[0]),
        vec![
            (key(SWEEP, 0), strs(&["a0", "a1"])),
            (key(SWEEP, 0), strs(&["a2", "a3"])),
            (key(SWEEP, 0), strs(&["a4"])),
        ]
    );
    assert_eq!(r.acted, 5);
}

#[test]
fn sweep_read_errors_are_counted_and_the_rest_goes_on() {
    let mut w = World::default();
    w.sets.insert(key(SWEEP, 0), vec!["a".into()]);
    w.sets.insert(key(SWEEP, 1), vec!["b".into()]);
    w.read_errors.insert(key(SWEEP, 0));
    let mut s = Setup {
        function: SWEEP,
        partitions: 2,
        ..Setup::default()
    }
    .build();
    let r = cycle(&mut s, &mut w, BASE);
    assert_eq!(batches(&w.calls[0]), vec![(key(SWEEP, 1), strs(&["b"]))]);
    assert_eq!((r.errors, r.acted), (1, 1));
}

// ---------------------------------------------------------------------------
// Ownership: only the partitions this replica holds are scanned.

/// Per slot, `epoch` for the `held` partitions out of `n`.
fn owning(n: u16, held: &[u16], epoch: u64) -> Vec<Option<u64>> {
    (0..n).map(|p| held.contains(&p).then_some(epoch)).collect()
}

#[test]
fn only_held_partitions_are_read_and_acted_on() {
    let mut w = World::default();
    w.zadd(&key(DELAYED, 0), 10, "a");
    w.zadd(&key(DELAYED, 2), 10, "c");
    let mut s = Setup::default().build();
    s.handle_ownership(&owning(3, &[0], 1));
    let r = cycle(&mut s, &mut w, BASE);
    assert_eq!(w.reads[0], vec![read_cmd(DELAYED, 0, 11)]);
    assert_eq!(batches(&w.calls[0]), vec![(key(DELAYED, 0), strs(&["a"]))]);
    assert_eq!(r.acted, 1);
    assert_eq!(w.zmembers(&key(DELAYED, 2)), ["c"], "another replica's");
    assert!(!has_work(&mut s, BASE));
}

#[test]
fn a_partition_gained_is_read_at_once_and_one_lost_is_dropped() {
    let mut w = World::default();
    let mut s = Setup::default().build();
    s.handle_ownership(&owning(3, &[0], 1));
    cycle(&mut s, &mut w, BASE);
    w.zadd(&key(DELAYED, 2), 10, "c");
    assert_eq!(s.handle_ownership(&owning(3, &[2], 1)), (1, 1));
    assert!(
        has_work(&mut s, BASE),
        "the partition gained is read at once"
    );
    cycle(&mut s, &mut w, BASE);
    assert_eq!(w.reads[1], vec![read_cmd(DELAYED, 2, 11)]);
    assert_eq!(batches(&w.calls[0]), vec![(key(DELAYED, 2), strs(&["c"]))]);
    assert_eq!(s.held(), [None, None, Some(1)]);
}

#[test]
fn a_new_epoch_rereads_a_partition_held_all_along() {
    let mut w = World::default();
    let mut s = Setup {
        partitions: 2,
        ..Setup::default()
    }
    .build();
    s.handle_ownership(&owning(2, &[0, 1], 1));
    cycle(&mut s, &mut w, BASE);
    assert!(!has_work(&mut s, BASE));
    // Partition 1 was lost and claimed again: another replica may have changed it.
    s.handle_ownership(&[Some(1), Some(2)]);
    cycle(&mut s, &mut w, BASE);
    assert_eq!(w.reads[1], vec![read_cmd(DELAYED, 1, 11)]);
}

#[test]
fn wake_ups_and_rescans_of_unheld_partitions_are_ignored() {
    let mut w = World::default();
    let mut s = Setup::default().build();
    s.handle_ownership(&owning(3, &[1], 1));
    cycle(&mut s, &mut w, BASE);
    s.handle_wake(
        Wake::At {
            partition: 2,
            due_ms: 0,
        },
        BASE,
    );
    assert_eq!(s.slot(2).next_due, None);
    s.handle_wake(Wake::Rescan, BASE);
    assert!(!s.slot(0).dirty && !s.slot(2).dirty);
    assert!(s.slot(1).dirty);
}

#[test]
fn a_sweep_walks_only_held_partitions() {
    let mut w = World::default();
    w.sets.insert(key(SWEEP, 0), vec!["a".into()]);
    w.sets.insert(key(SWEEP, 1), vec!["b".into()]);
    let mut s = Setup {
        function: SWEEP,
        partitions: 2,
        ..Setup::default()
    }
    .build();
    s.handle_ownership(&owning(2, &[1], 1));
    cycle(&mut s, &mut w, BASE);
    assert_eq!(batches(&w.calls[0]), vec![(key(SWEEP, 1), strs(&["b"]))]);
}

#[test]
fn a_partition_lost_mid_cycle_is_left_to_its_new_owner() {
    let mut w = World::default();
    for p in 0..2 {
        for i in 0..5u64 {
            w.zadd(&key(DELAYED, p), 10 + i, &format!("p{p}m{i}"));
        }
    }
    let mut s = Setup {
        partitions: 2,
        batch: 2,
        ..Setup::default()
    }
    .build();
    // Partition 1 is lost after the first round of calls (rounds 0: read, 1: calls).
    cycle_with(&mut s, &mut w, BASE, |s, round| {
        if round == 2 {
            s.handle_ownership(&[Some(0), None]);
        }
    });
    assert_eq!(
        w.reads[0],
        vec![read_cmd(DELAYED, 0, 3), read_cmd(DELAYED, 1, 3)]
    );
    assert!(
        w.reads[1..]
            .iter()
            .flatten()
            .all(|r| r[1] == key(DELAYED, 0)),
        "{:?}",
        w.reads
    );
    assert!(w.calls[1..]
        .iter()
        .flatten()
        .all(|c| c.keys[0] == key(DELAYED, 0)));
    assert!(w.zmembers(&key(DELAYED, 0)).is_empty());
    assert_eq!(w.zmembers(&key(DELAYED, 1)).len(), 3, "the new owner's");
}

#[test]
fn a_clock_failure_makes_a_sweep_wait_its_interval_again() {
    let mut s = Setup {
        function: SWEEP,
        partitions: 1,
        interval_ms: 30_000,
        ..Setup::default()
    }
    .build();
    assert_eq!(s.poll_timeout(BASE), BASE + 30_000);
    s.handle_clock_failure(BASE + 30_000);
    assert_eq!(s.poll_timeout(BASE + 30_000), BASE + 60_000, "no spin");
    // A due-time scanner keeps what it had to do.
    let mut s = Setup::default().build();
    s.handle_clock_failure(BASE);
    assert!(has_work(&mut s, BASE));
}
