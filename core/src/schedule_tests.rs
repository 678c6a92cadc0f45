use super::*;
use proptest::prelude::*;

fn utc(s: &str) -> u64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("a test time")
        .timestamp_millis() as u64
}

fn cron(expr: &str, zone: &str) -> Timetable {
    Timetable::new(&Trigger::Cron(expr.into()), zone, None, None).expect("a valid cron")
}

fn every(ms: u64, start: Option<u64>) -> Timetable {
    Timetable::new(&Trigger::Every(ms), "UTC", start, None).expect("a valid interval")
}

#[test]
fn cron_with_seconds_fires_strictly_after_the_given_time() {
    let t = cron("*/10 * * * * *", "UTC");
    let at = utc("2024-01-01T00:00:00Z");
    assert_eq!(t.next_after(at), Some(at + 10_000));
    assert_eq!(t.next_after(at + 1), Some(at + 10_000));
    assert_eq!(t.next_after(at + 9_999), Some(at + 10_000));
    assert_eq!(t.next_after(at + 10_000), Some(at + 20_000));
    assert_eq!(t.prev_before(at + 10_000), Some(at));
    assert_eq!(t.prev_before(at + 10_001), Some(at + 10_000));
    assert_eq!(t.prev_before(at + 1), Some(at));
    // Five fields: minutes first, the second is 0.
    let t = cron("5 * * * *", "UTC");
    assert_eq!(t.next_after(at), Some(at + 5 * 60_000));
}

#[test]
fn a_cron_expression_is_read_in_its_zone() {
    let t = cron("0 0 9 * * *", "Europe/Berlin");
    // 09:00 in Berlin in winter is 08:00 UTC, in summer 07:00 UTC.
    assert_eq!(
        t.next_after(utc("2024-01-15T00:00:00Z")),
        Some(utc("2024-01-15T08:00:00Z"))
    );
    assert_eq!(
        t.next_after(utc("2024-07-15T00:00:00Z")),
        Some(utc("2024-07-15T07:00:00Z"))
    );
}

#[test]
fn spring_forward_a_fixed_time_that_does_not_exist_fires_right_after_the_gap() {
    // America/New_York, 2024-03-10: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
    let t = cron("0 30 2 * * *", "America/New_York");
    let day_before = utc("2024-03-09T07:30:00Z"); // 02:30 EST on the 9th
    assert_eq!(t.next_after(day_before - 1), Some(day_before));
    // The 10th has no 02:30: it fires once, at the first second after the gap.
    let fired = t.next_after(day_before).expect("fires on the 10th");
    assert_eq!(fired, utc("2024-03-10T07:00:00Z"), "03:00 EDT");
    // Then 02:30 EDT on the 11th as usual.
    assert_eq!(t.next_after(fired), Some(utc("2024-03-11T06:30:00Z")));
}

#[test]
fn spring_forward_wildcard_times_inside_the_gap_are_skipped() {
    let t = cron("0 */30 * * * *", "America/New_York");
    let times = t.preview(utc("2024-03-10T06:00:00Z") - 1, 4);
    assert_eq!(
        times,
        vec![
            utc("2024-03-10T06:00:00Z"), // 01:00 EST
            utc("2024-03-10T06:30:00Z"), // 01:30 EST
            utc("2024-03-10T07:00:00Z"), // 03:00 EDT: 02:00 and 02:30 do not exist
            utc("2024-03-10T07:30:00Z"), // 03:30 EDT
        ]
    );
}

#[test]
fn fall_back_a_fixed_time_that_happens_twice_fires_once_at_the_first() {
    // America/New_York, 2024-11-03: 02:00 EDT falls back to 01:00 EST, so
    // 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
    let t = cron("0 30 1 * * *", "America/New_York");
    let times = t.preview(utc("2024-11-03T00:00:00Z"), 2);
    assert_eq!(
        times,
        vec![utc("2024-11-03T05:30:00Z"), utc("2024-11-04T06:30:00Z")]
    );
}

#[test]
fn fall_back_wildcard_times_fire_in_both_passes() {
    let t = cron("0 */30 * * * *", "America/New_York");
    let times = t.preview(utc("2024-11-03T05:00:00Z") - 1, 5);
    assert_eq!(
        times,
        vec![
            utc("2024-11-03T05:00:00Z"), // 01:00 EDT
            utc("2024-11-03T05:30:00Z"), // 01:30 EDT
            utc("2024-11-03T06:00:00Z"), // 01:00 EST
            utc("2024-11-03T06:30:00Z"), // 01:30 EST
            utc("2024-11-03T07:00:00Z"), // 02:00 EST
        ]
    );
}

#[test]
fn intervals_are_aligned_to_the_epoch_or_to_the_start() {
    let t = every(1_000, None);
    assert_eq!(t.next_after(1_500), Some(2_000));
    assert_eq!(t.next_after(2_000), Some(3_000));
    assert_eq!(t.prev_before(2_000), Some(1_000));
    assert_eq!(t.prev_before(2_001), Some(2_000));
    let t = every(1_000, Some(10_250));
    assert_eq!(t.next_after(0), Some(10_250));
    assert_eq!(t.next_after(10_249), Some(10_250));
    assert_eq!(t.next_after(10_250), Some(11_250));
    assert_eq!(t.prev_before(10_250), None, "nothing before the start");
    let t = Timetable::new(&Trigger::Every(1_000), "UTC", Some(5_000), Some(7_000)).unwrap();
    assert_eq!(t.preview(0, 10), vec![5_000, 6_000, 7_000]);
    assert_eq!(t.prev_before(100_000), Some(7_000));
    assert_eq!(t.prev_before(7_000), Some(6_000), "strictly before the end");
    assert_eq!(t.prev_before(7_001), Some(7_000));
}

#[test]
fn bad_definitions_name_their_field() {
    let field = |trigger: Trigger, zone: &str| {
        Timetable::new(&trigger, zone, None, None)
            .map(|_| ())
            .unwrap_err()
            .field
    };
    assert_eq!(field(Trigger::Cron("not a cron".into()), "UTC"), "expr");
    assert_eq!(field(Trigger::Cron("61 * * * * *".into()), "UTC"), "expr");
    assert_eq!(
        field(Trigger::Cron("* * * * *".into()), "Mars/Olympus"),
        "zone"
    );
    assert_eq!(field(Trigger::Every(0), "UTC"), "every");
    let e = Timetable::new(&Trigger::Every(1000), "UTC", Some(10), Some(5)).unwrap_err();
    assert_eq!(e.field, "end");
    assert_eq!(Misfire::parse("catch_up:0").unwrap_err().field, "misfire");
    assert_eq!(Misfire::parse("catch_up:101").unwrap_err().field, "misfire");
    assert_eq!(Misfire::parse("sometimes").unwrap_err().field, "misfire");
    assert_eq!(Overlap::parse("maybe").unwrap_err().field, "overlap");
}

fn template() -> Template {
    Template {
        namespace: Namespace::new("default").unwrap(),
        lane: Lane::new("default").unwrap(),
        kind: Kind::new("report").unwrap(),
        priority: 7,
        payload: b"p".to_vec(),
        delay_ms: 0,
        attempt_timeout_ms: 5_000,
        deadline_ms: 0,
        retry: RetryPolicy::default(),
        max_reclaims: 3,
        retention_ms: 60_000,
        tags: vec![(TagName::new("team").unwrap(), "ops".into())],
        admission: Admission {
            budgets: vec![crate::BudgetId::parse("b1").unwrap()],
            quotas: vec![],
            capabilities: vec!["gpu".into()],
        },
    }
}

#[test]
fn a_template_goes_through_its_stored_shape_unchanged() {
    let t = template();
    let back = Template::from_shape(&t.shape(), t.payload.clone()).unwrap();
    assert_eq!(back, t);
    let plain = Template {
        tags: vec![],
        admission: Admission::default(),
        ..template()
    };
    assert_eq!(
        Template::from_shape(&plain.shape(), plain.payload.clone()).unwrap(),
        plain
    );
    // Admission sits after the tags: any number of tags, with and without it.
    for n in 0..4 {
        for admission in [Admission::default(), template().admission] {
            let t = Template {
                tags: (0..n)
                    .map(|i| (TagName::new(format!("t{i}")).unwrap(), format!("v{i}")))
                    .collect(),
                admission,
                ..template()
            };
            let back = Template::from_shape(&t.shape(), t.payload.clone());
            assert_eq!(back.as_ref(), Ok(&t), "{n} tags");
        }
    }
}

#[test]
fn a_template_create_would_refuse_is_refused_naming_its_field() {
    let bad = |t: Template| validate_template(&t).unwrap_err().field;
    assert_eq!(
        bad(Template {
            priority: 1001,
            ..template()
        }),
        "template.priority"
    );
    assert_eq!(
        bad(Template {
            payload: vec![0; limits::MAX_PAYLOAD_BYTES + 1],
            ..template()
        }),
        "template.payload"
    );
    assert_eq!(
        bad(Template {
            retry: RetryPolicy::fixed(1, retry_too_long()),
            ..template()
        }),
        "template.retry"
    );
    let reserved = vec![(TagName::new("ff.fire").unwrap(), "1".into())];
    assert_eq!(
        bad(Template {
            tags: reserved,
            ..template()
        }),
        "template.tags"
    );
}

fn retry_too_long() -> u64 {
    crate::retry::MAX_BACKOFF_MS + 1
}

#[test]
fn fire_ids_are_derived_from_the_schedule_and_the_fire_time() {
    let p = Partition::new(PartitionFamily::Flow, 3);
    let a = ScheduleName::new("nightly").unwrap();
    let b = ScheduleName::new("hourly").unwrap();
    let id = fire_execution_id(p, &a, 1_000);
    assert_eq!(id, fire_execution_id(p, &a, 1_000));
    assert_eq!(id.partition_index(), 3);
    assert_ne!(id, fire_execution_id(p, &a, 2_000));
    assert_ne!(id, fire_execution_id(p, &b, 1_000));
}

#[test]
fn nothing_is_decided_before_the_next_fire_time() {
    let t = every(1_000, None);
    assert_eq!(decide(&t, Misfire::Once, 60_000, 5_000, 4_999), None);
}

#[test]
fn an_on_time_fire_fires_and_moves_to_the_next() {
    let t = every(1_000, None);
    let d = decide(&t, Misfire::Skip, 60_000, 100_000, 100_003).unwrap();
    assert_eq!(
        d,
        Decision {
            fire: vec![100_000],
            missed: 0,
            last: 100_000,
            next: Some(101_000)
        }
    );
    // A little late, two fire times due: both are on time.
    let d = decide(&t, Misfire::Skip, 60_000, 100_000, 101_500).unwrap();
    assert_eq!(d.fire, vec![100_000, 101_000]);
    assert_eq!(d.next, Some(102_000));
}

#[test]
fn misfire_policies_after_an_outage() {
    // Every second; the engine was away from 100 s to 200 s; grace 10 s.
    let t = every(1_000, None);
    let (next, now, grace) = (100_000, 200_000, 10_000);
    // Missed: 100..189 s (90 fire times); on time: 190..200 s (11).
    let on_time: Vec<u64> = (190..=200).map(|s| s * 1_000).collect();
    let d = decide(&t, Misfire::Skip, grace, next, now).unwrap();
    assert_eq!(d.fire, on_time);
    assert_eq!(d.missed, 90);
    assert_eq!((d.last, d.next), (200_000, Some(201_000)));
    let d = decide(&t, Misfire::Once, grace, next, now).unwrap();
    assert_eq!(d.fire[0], 189_000, "the latest missed fire time runs once");
    assert_eq!(&d.fire[1..], &on_time[..]);
    assert_eq!(d.missed, 89);
    let d = decide(&t, Misfire::CatchUp(5), grace, next, now).unwrap();
    assert_eq!(&d.fire[..5], &[185_000, 186_000, 187_000, 188_000, 189_000]);
    assert_eq!(d.missed, 85);
    assert_eq!(
        d.fire.len() as u64 + d.missed,
        101,
        "every fire time accounted once"
    );
}

#[test]
fn a_long_run_of_due_fire_times_is_decided_in_parts() {
    let t = every(10, None);
    let d = decide(&t, Misfire::Skip, 60_000, 10_000, 20_000).unwrap();
    assert_eq!(d.fire.len(), MAX_FIRES_PER_DECISION);
    assert_eq!(d.last, 10_990);
    assert_eq!(d.next, Some(11_000), "still due: the next decision goes on");
}

#[test]
fn a_schedule_past_its_end_has_no_next_fire() {
    let t = Timetable::new(&Trigger::Every(1_000), "UTC", None, Some(5_000)).unwrap();
    let d = decide(&t, Misfire::Skip, 60_000, 5_000, 5_001).unwrap();
    assert_eq!(d.fire, vec![5_000]);
    assert_eq!(d.next, None);
}

proptest! {
    /// Decisions made one after another cover every fire time exactly once:
    /// each is fired or counted missed, none twice, in order, never early.
    #[test]
    fn successive_decisions_account_for_every_fire_time_once(
        every_ms in 1u64..5_000,
        start in prop_oneof![Just(0u64), 0u64..10_000],
        grace in MIN_GRACE_MS..20_000,
        steps in prop::collection::vec(0u64..40_000, 1..20),
        policy in 0u32..4,
    ) {
        let misfire = match policy { 0 => Misfire::Skip, 1 => Misfire::Once, 2 => Misfire::CatchUp(3), _ => Misfire::CatchUp(100) };
        let t = Timetable::new(&Trigger::Every(every_ms), "UTC", Some(start), None).unwrap();
        let first = t.first_at_or_after(start).unwrap();
        prop_assert_eq!(first, start, "an interval's start is its first fire time");
        let mut next = first;
        let mut now = start;
        let (mut fired, mut missed) = (Vec::new(), 0u64);
        for step in steps {
            now += step;
            while let Some(d) = decide(&t, misfire, grace, next, now) {
                for f in &d.fire {
                    prop_assert!(*f <= now, "never early");
                    prop_assert!(fired.last().is_none_or(|l| l < f), "ascending, no repeat");
                }
                prop_assert!(d.fire.iter().all(|f| *f <= d.last));
                fired.extend(d.fire.iter().copied());
                missed += d.missed;
                let n = d.next.expect("an interval never ends");
                prop_assert!(n > d.last);
                next = n;
            }
        }
        // Fire times in [first, next): all fired or missed.
        let total = (next - first) / every_ms;
        prop_assert_eq!(fired.len() as u64 + missed, total);
        for f in &fired {
            prop_assert_eq!((f - start) % every_ms, 0);
        }
    }

    /// Issue 23: whatever the start (0, near 0, on a fire time or between),
    /// `next_after` is strictly after its argument, `first_at_or_after` is
    /// at or after it and never before the start, the two agree one ms
    /// apart, and a start that is a fire time is the first fire.
    #[test]
    fn next_is_strictly_after_and_a_fire_time_start_is_the_first(
        start in prop_oneof![Just(0u64), 0u64..3_000, (0u64..4).prop_map(|d| d * 86_400_000)],
        t in prop_oneof![Just(0u64), 0u64..3_000, 0u64..(5 * 86_400_000)],
        kind in 0usize..4,
    ) {
        let trigger = match kind {
            0 => Trigger::Every(1000),
            1 => Trigger::Every(7),
            2 => Trigger::Cron("0 0 * * *".into()),
            _ => Trigger::Cron("* * * * * *".into()),
        };
        let table = Timetable::new(&trigger, "UTC", Some(start), None).unwrap();
        let next = table.next_after(t).unwrap();
        prop_assert!(next > t);
        prop_assert!(next >= start);
        let first = table.first_at_or_after(t).unwrap();
        prop_assert!(first >= t && first >= start);
        prop_assert!(first <= next);
        prop_assert_eq!(table.first_at_or_after(t + 1), Some(next));
        if first == t {
            prop_assert_eq!(table.prev_before(next), Some(t), "t is a fire time");
        } else {
            prop_assert_eq!(first, next, "t is not a fire time");
        }
        let start_fires = match kind {
            0 | 1 => true,
            2 => start % 86_400_000 == 0,
            _ => start % 1000 == 0,
        };
        let head = table.first_at_or_after(start).unwrap();
        prop_assert_eq!(head == start, start_fires);
        // Deciding on from the first fire: each fire time once, ascending.
        let d = decide(&table, Misfire::Skip, 60_000, head, head + 2_500).unwrap();
        prop_assert_eq!(d.fire.first(), Some(&head));
        prop_assert!(d.fire.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(d.next.unwrap() > d.last);
    }

    /// `prev_before(t)` is the latest fire time strictly before `t`, for a
    /// `t` anywhere in a second (croner searches whole seconds).
    #[test]
    fn cron_prev_is_the_latest_fire_time_before(
        offset in 0u64..(2 * 24 * 3600 * 1000),
        expr in 0usize..3,
    ) {
        let exprs = ["* * * * * *", "*/7 * * * * *", "0 */7 * * * *"];
        let t = cron(exprs[expr], "Europe/Berlin");
        let at = utc("2024-03-30T12:00:00Z") + offset;
        let prev = t.prev_before(at).unwrap();
        prop_assert!(prev < at);
        prop_assert_eq!(prev % 1000, 0);
        let next = t.next_after(prev).unwrap();
        prop_assert!(next >= at, "{} is a fire time between {} and {}", next, prev, at);
    }

    #[test]
    fn cron_next_and_prev_agree(offset in 0u64..(400 * 24 * 3600 * 1000), zone in 0usize..3) {
        let zones = ["UTC", "America/New_York", "Europe/Berlin"];
        let t = cron("0 */7 * * * *", zones[zone]);
        let at = utc("2024-01-01T00:00:00Z") + offset;
        let next = t.next_after(at).unwrap();
        prop_assert!(next > at);
        prop_assert_eq!(next % 1000, 0);
        // Nothing between `at` and `next`: the one before `next` is at or before `at`.
        let prev = t.prev_before(next).unwrap();
        prop_assert!(prev <= at);
        prop_assert_eq!(t.next_after(prev), Some(next));
    }
}
