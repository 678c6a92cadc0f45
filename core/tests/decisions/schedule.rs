//! Schedules (`crate::schedule`): spellings, bounds on both sides, fire ids
//! (golden, computed independently: FNV-1a 128), timetables at their edges
//! and misfire decisions. A file of its own: schedule code changes often.

use ff_core::admission::Admission;
use ff_core::contract::limits;
use ff_core::retry::RetryPolicy;
use ff_core::schedule::*;
use ff_core::{
    ExecutionId, Kind, Lane, Namespace, Partition, PartitionConfig, PartitionFamily, TagName,
};

const DAY: u64 = 86_400_000;

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
        tags: vec![],
        admission: Admission::default(),
    }
}

fn spec(trigger: Trigger) -> ScheduleSpec {
    ScheduleSpec {
        trigger,
        zone: "UTC".into(),
        start_ms: None,
        end_ms: None,
        misfire: Misfire::Skip,
        grace_ms: DEFAULT_GRACE_MS,
        overlap: Overlap::Skip,
        paused: false,
        template: template(),
    }
}

#[test]
fn constants() {
    assert_eq!(SCHEDULE_PREFIX, "ff:sched:");
    assert_eq!((MAX_FIRES_PER_DECISION, MAX_CATCH_UP), (100, 100));
    assert_eq!(MAX_COUNTED_MISSES, 10_000);
    assert_eq!(
        (DEFAULT_GRACE_MS, MIN_GRACE_MS, MAX_GRACE_MS),
        (60_000, 1_000, DAY)
    );
    assert_eq!((MIN_INTERVAL_MS, MAX_EXPR_LEN), (1, 256));
}

#[test]
fn names_and_keys() {
    let n = ScheduleName::new("nightly").unwrap();
    assert_eq!(n.as_str(), "nightly");
    assert_eq!(n.to_string(), "nightly");
    assert!(ScheduleName::new("a b").is_err());
    // CRC16 of `sched:<name>` over the flow partitions.
    let p = n.partition(&PartitionConfig::default());
    assert_eq!(p, Partition::new(PartitionFamily::Flow, 186));
    assert_eq!(record_key(p, &n), "ff:sched:{fp:186}:nightly");
    assert_eq!(due_index(p), "ff:idx:{fp:186}:schedules");
    assert_eq!(names_index(p), "ff:idx:{fp:186}:schedule_names");
}

#[test]
fn fire_ids_are_fnv1a_128_of_the_schedule_and_fire_time() {
    let p = Partition::new(PartitionFamily::Flow, 3);
    let n = ScheduleName::new("nightly").unwrap();
    assert_eq!(
        fire_execution_id(p, &n, 1000),
        ExecutionId::parse("{fp:3}:7313ec61693bb09e9187af33edb7ec5b").unwrap()
    );
}

#[test]
fn spellings() {
    assert_eq!(Trigger::Cron("0 * * * *".into()).encode(), "cron:0 * * * *");
    assert_eq!(Trigger::Every(500).encode(), "every:500");
    assert_eq!(Trigger::parse("every:500"), Ok(Trigger::Every(500)));
    assert_eq!(
        Trigger::parse("cron:* * * * *"),
        Ok(Trigger::Cron("* * * * *".into()))
    );
    assert_eq!(Trigger::parse("every:x").unwrap_err().field, "every");
    assert_eq!(Trigger::parse("at:1").unwrap_err().field, "trigger");
    for (s, m) in [
        ("skip", Misfire::Skip),
        ("once", Misfire::Once),
        ("catch_up:1", Misfire::CatchUp(1)),
        ("catch_up:100", Misfire::CatchUp(100)),
    ] {
        assert_eq!(Misfire::parse(s), Ok(m));
        assert_eq!(m.encode(), s);
    }
    for bad in [
        "catch_up:0",
        "catch_up:101",
        "catch_up:",
        "catch_up:-1",
        "Skip",
    ] {
        assert_eq!(Misfire::parse(bad).unwrap_err().field, "misfire", "{bad}");
    }
    for (s, o) in [("skip", Overlap::Skip), ("allow", Overlap::Allow)] {
        assert_eq!(Overlap::parse(s), Ok(o));
        assert_eq!(o.as_str(), s);
    }
}

#[test]
fn templates_at_each_bound() {
    let field = |t: Template| validate_template(&t).err().map(|e| e.field);
    let max_dur = limits::MAX_DURATION_MS;
    let tags = |n: usize| {
        (0..n)
            .map(|i| (TagName::new(format!("t{i}")).unwrap(), "v".to_owned()))
            .collect::<Vec<_>>()
    };
    let ok = [
        Template {
            priority: 1000,
            ..template()
        },
        Template {
            payload: vec![0; limits::MAX_PAYLOAD_BYTES],
            ..template()
        },
        Template {
            delay_ms: max_dur,
            attempt_timeout_ms: max_dur,
            deadline_ms: max_dur,
            retention_ms: max_dur,
            ..template()
        },
        Template {
            max_reclaims: limits::MAX_RECLAIMS,
            ..template()
        },
        Template {
            tags: tags(limits::MAX_TAGS - 2),
            ..template()
        },
        Template {
            tags: vec![(
                TagName::new("x").unwrap(),
                "v".repeat(limits::MAX_TAG_VALUE_BYTES),
            )],
            ..template()
        },
    ];
    for t in ok {
        assert_eq!(field(t), None);
    }
    let bad = [
        (
            Template {
                priority: 1001,
                ..template()
            },
            "template.priority",
        ),
        (
            Template {
                payload: vec![0; limits::MAX_PAYLOAD_BYTES + 1],
                ..template()
            },
            "template.payload",
        ),
        (
            Template {
                delay_ms: max_dur + 1,
                ..template()
            },
            "template.delay",
        ),
        (
            Template {
                attempt_timeout_ms: max_dur + 1,
                ..template()
            },
            "template.attempt_timeout",
        ),
        (
            Template {
                deadline_ms: max_dur + 1,
                ..template()
            },
            "template.deadline",
        ),
        (
            Template {
                retention_ms: max_dur + 1,
                ..template()
            },
            "template.retention",
        ),
        (
            Template {
                retry: RetryPolicy::exponential(1, 5, 4),
                ..template()
            },
            "template.retry",
        ),
        (
            Template {
                max_reclaims: limits::MAX_RECLAIMS + 1,
                ..template()
            },
            "template.max_reclaims",
        ),
        (
            Template {
                tags: tags(limits::MAX_TAGS - 1),
                ..template()
            },
            "template.tags",
        ),
        (
            Template {
                tags: vec![(
                    TagName::new("x").unwrap(),
                    "v".repeat(limits::MAX_TAG_VALUE_BYTES + 1),
                )],
                ..template()
            },
            "template.tags",
        ),
    ];
    for (t, want) in bad {
        assert_eq!(field(t), Some(want));
    }
}

#[test]
fn template_shapes_refused() {
    let t = template();
    let shape = t.shape();
    let mut short = shape.clone();
    short.pop();
    assert!(Template::from_shape(&short, vec![]).is_err());
    let mut many = shape.clone();
    many[14] = b"33".to_vec();
    assert!(Template::from_shape(&many, vec![]).is_err());
    let mut big = shape.clone();
    big[3] = b"4294967296".to_vec();
    assert!(Template::from_shape(&big, vec![]).is_err());
    let mut nan = shape;
    nan[4] = b"x".to_vec();
    assert!(Template::from_shape(&nan, vec![]).is_err());
    let back = Template::from_shape(&t.shape(), b"q".to_vec()).unwrap();
    assert_eq!(back.payload, b"q");
    // One argument more than its tag count says.
    let mut long = t.shape();
    long.push(b"x".to_vec());
    assert!(Template::from_shape(&long, vec![]).is_err());
    // Tags: as many as a record may hold, and one more.
    let tagged = |n: usize| Template {
        tags: (0..n)
            .map(|i| (TagName::new(format!("t{i}")).unwrap(), "v".to_owned()))
            .collect(),
        ..template()
    };
    let most = tagged(limits::MAX_TAGS);
    assert_eq!(
        Template::from_shape(&most.shape(), vec![]).unwrap().tags,
        most.tags
    );
    assert!(Template::from_shape(&tagged(limits::MAX_TAGS + 1).shape(), vec![]).is_err());
}

#[test]
fn specs_at_their_bounds() {
    let every = |ms| spec(Trigger::Every(ms));
    assert!(every(1).validate().is_ok());
    assert!(every(limits::MAX_DURATION_MS).validate().is_ok());
    assert_eq!(every(0).validate().unwrap_err().field, "every");
    assert_eq!(
        every(limits::MAX_DURATION_MS + 1)
            .validate()
            .unwrap_err()
            .field,
        "every"
    );
    for (grace, ok) in [
        (MIN_GRACE_MS, true),
        (MIN_GRACE_MS - 1, false),
        (MAX_GRACE_MS, true),
        (MAX_GRACE_MS + 1, false),
    ] {
        let s = ScheduleSpec {
            grace_ms: grace,
            ..every(1000)
        };
        assert_eq!(s.validate().is_ok(), ok, "grace {grace}");
    }
    let s = ScheduleSpec {
        misfire: Misfire::CatchUp(0),
        ..every(1000)
    };
    assert_eq!(s.validate().unwrap_err().field, "misfire");
    let s = ScheduleSpec {
        template: Template {
            priority: 5000,
            ..template()
        },
        ..every(1000)
    };
    assert_eq!(s.validate().unwrap_err().field, "template.priority");
    // February 30th never comes.
    assert_eq!(
        spec(Trigger::Cron("0 0 30 2 *".into()))
            .validate()
            .unwrap_err()
            .field,
        "expr"
    );
    let long = format!("0 0 * * * {}", " ".repeat(MAX_EXPR_LEN));
    assert_eq!(
        spec(Trigger::Cron(long)).validate().unwrap_err().field,
        "expr"
    );
    // Valid expressions of exactly MAX_EXPR_LEN bytes and one more: the
    // bound is inclusive, and the longer one is refused for its length.
    let list = |n: u32| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let at_bound = format!("{} {} {} * * *", list(60), list(29), list(2));
    assert_eq!(at_bound.len(), MAX_EXPR_LEN);
    assert!(parse_cron(&at_bound).is_ok());
    assert!(spec(Trigger::Cron(at_bound)).validate().is_ok());
    let over = format!("{} {} {} * * *", list(60), list(30), list(1));
    assert_eq!(over.len(), MAX_EXPR_LEN + 1);
    let e = parse_cron(&over).unwrap_err();
    assert_eq!(
        (e.field, e.reason.as_str()),
        ("expr", "longer than 256 bytes")
    );
    let s = ScheduleSpec {
        zone: "Mars/Olympus".into(),
        ..every(1000)
    };
    assert_eq!(s.validate().unwrap_err().field, "zone");
}

#[test]
fn timetable_edges() {
    let tt = |t: Trigger, start, end| Timetable::new(&t, "UTC", start, end);
    let e = |ms| Trigger::Every(ms);
    assert_eq!(tt(e(10), Some(5), Some(4)).unwrap_err().field, "end");
    assert!(tt(e(10), Some(5), Some(5)).is_ok());
    let max_time = 95_617_584_000_000;
    assert!(tt(e(10), Some(max_time), None).is_ok());
    assert_eq!(
        tt(e(10), Some(max_time + 1), None).unwrap_err().field,
        "start"
    );
    assert_eq!(
        tt(e(10), None, Some(max_time + 1)).unwrap_err().field,
        "end"
    );

    // An interval is anchored at its start (or the epoch).
    let t = tt(e(1000), None, None).unwrap();
    assert_eq!(t.next_after(0), Some(1000));
    assert_eq!(t.next_after(999), Some(1000));
    assert_eq!(t.next_after(1000), Some(2000));
    assert_eq!(t.prev_before(1000), Some(0));
    assert_eq!(t.prev_before(1001), Some(1000));
    assert_eq!(t.prev_before(0), None);
    assert_eq!(t.preview(500, 3), [1000, 2000, 3000]);
    assert_eq!(t.preview(500, 0), Vec::<u64>::new());
    let t = tt(e(1000), Some(0), None).unwrap();
    assert_eq!(t.first_at_or_after(0), Some(0), "a start at 0 fires at 0");
    assert_eq!(t.next_after(0), Some(1000), "once: the next is after it");
    let t = tt(e(1000), Some(2500), Some(4500)).unwrap();
    assert_eq!(t.next_after(0), Some(2500));
    assert_eq!(t.next_after(2499), Some(2500));
    assert_eq!(t.next_after(2500), Some(3500));
    assert_eq!(t.next_after(3500), Some(4500), "the end is inclusive");
    assert_eq!(t.next_after(4500), None);
    assert_eq!(t.prev_before(2500), None);
    assert_eq!(t.prev_before(2501), Some(2500));
    assert_eq!(t.prev_before(99_999), Some(4500), "at the end, not after");
    assert_eq!(t.preview(0, 9), [2500, 3500, 4500]);
    let t = tt(e(1000), None, Some(3000)).unwrap();
    assert_eq!(t.next_after(2999), Some(3000), "the end is inclusive");
    assert_eq!(t.prev_before(5000), Some(3000));
    let t = tt(e(1000), None, Some(u64::MAX)).unwrap_err();
    assert_eq!(t.field, "end");

    // Cron at midnight UTC: a start at 0 includes 0 itself.
    let c = |start| tt(Trigger::Cron("0 0 * * *".into()), start, None).unwrap();
    assert_eq!(c(Some(0)).first_at_or_after(0), Some(0));
    assert_eq!(c(Some(0)).next_after(0), Some(DAY));
    assert_eq!(c(None).next_after(0), Some(DAY));
    assert_eq!(c(Some(1)).next_after(0), Some(DAY));
    assert_eq!(c(None).next_after(DAY - 1), Some(DAY));
    assert_eq!(c(None).prev_before(DAY), Some(0));
    assert_eq!(c(None).prev_before(DAY + 1), Some(DAY));
    assert_eq!(c(None).prev_before(DAY + 1000), Some(DAY));
    assert_eq!(c(Some(DAY)).prev_before(DAY), None);

    // Every second: the one before a time inside a second is that second's
    // start, on both halves of the second; before a whole second, the one
    // before it.
    let s = tt(Trigger::Cron("* * * * * *".into()), None, None).unwrap();
    assert_eq!(s.prev_before(5000), Some(4000));
    assert_eq!(s.prev_before(5001), Some(5000));
    assert_eq!(s.prev_before(5499), Some(5000));
    assert_eq!(s.prev_before(5500), Some(5000));
    assert_eq!(s.prev_before(5999), Some(5000));
    assert_eq!(s.prev_before(6000), Some(5000));
    assert_eq!(s.prev_before(999), Some(0));
    assert_eq!(s.prev_before(1), Some(0));
    assert_eq!(s.prev_before(0), None);
}

#[test]
fn decisions_at_the_grace_boundary() {
    let t = Timetable::new(&Trigger::Every(1000), "UTC", None, None).unwrap();
    // Due exactly now: fires.
    let d = decide(&t, Misfire::Skip, 5000, 10_000, 10_000).unwrap();
    assert_eq!(
        d,
        Decision {
            fire: vec![10_000],
            missed: 0,
            last: 10_000,
            next: Some(11_000)
        }
    );
    // Exactly at the grace's edge: on time.
    let d = decide(&t, Misfire::Skip, 5000, 10_000, 15_000).unwrap();
    assert_eq!(d.fire, [10_000, 11_000, 12_000, 13_000, 14_000, 15_000]);
    assert_eq!(d.missed, 0);
    // One ms later the first is missed.
    let d = decide(&t, Misfire::Skip, 5000, 10_000, 15_001).unwrap();
    assert_eq!(d.fire, [11_000, 12_000, 13_000, 14_000, 15_000]);
    assert_eq!((d.missed, d.last, d.next), (1, 15_000, Some(16_000)));
    // Missed and nothing on time: `last` is the latest missed.
    let d = decide(&t, Misfire::Skip, 1000, 10_000, 20_500).unwrap();
    assert_eq!(d.fire, [20_000]);
    assert_eq!((d.missed, d.last), (10, 20_000));
    let d = decide(&t, Misfire::Skip, 100, 10_000, 19_950).unwrap();
    assert_eq!(d.fire, Vec::<u64>::new());
    assert_eq!((d.missed, d.last, d.next), (10, 19_000, Some(20_000)));
    let d = decide(&t, Misfire::CatchUp(3), 1000, 10_000, 19_999).unwrap();
    assert_eq!(d.fire, [16_000, 17_000, 18_000, 19_000]);
    assert_eq!((d.missed, d.last, d.next), (6, 19_000, Some(20_000)));
    // Catching up more than were missed: all of them.
    let d = decide(&t, Misfire::CatchUp(50), 1000, 10_000, 13_500).unwrap();
    assert_eq!(d.fire, [10_000, 11_000, 12_000, 13_000]);
    assert_eq!(d.missed, 0);
    // A cron schedule counts its misses one by one.
    let c = Timetable::new(&Trigger::Cron("0 0 * * *".into()), "UTC", None, None).unwrap();
    let d = decide(&c, Misfire::Once, 1000, DAY, 5 * DAY + 2000).unwrap();
    assert_eq!(d.fire, [5 * DAY]);
    assert_eq!((d.missed, d.last, d.next), (4, 5 * DAY, Some(6 * DAY)));
    let d = decide(&c, Misfire::Skip, 1000, DAY, 5 * DAY).unwrap();
    assert_eq!(d.fire, [5 * DAY]);
    assert_eq!(d.missed, 4);
}

#[test]
fn a_fire_time_at_zero_within_the_grace_is_on_time() {
    // next = 0 and now within the grace: nothing is missed, and nothing
    // before 0 is looked for.
    let t = Timetable::new(&Trigger::Every(1000), "UTC", None, None).unwrap();
    let d = decide(&t, Misfire::CatchUp(5), 60_000, 0, 500).unwrap();
    assert_eq!(
        d,
        Decision {
            fire: vec![0],
            missed: 0,
            last: 0,
            next: Some(1000)
        }
    );
}

#[test]
fn a_schedule_starting_at_zero_fires_zero_once() {
    // Issue 23: with the start at 0, a fire at 0 repeated (next_after(0)
    // was 0 again) until the decision's cap, and the next fire stayed 0.
    let t = Timetable::new(&Trigger::Every(1000), "UTC", Some(0), None).unwrap();
    let d = decide(&t, Misfire::Skip, 60_000, 0, 500).unwrap();
    assert_eq!((d.fire, d.next), (vec![0], Some(1000)));
    let d = decide(&t, Misfire::Skip, 60_000, 0, 2500).unwrap();
    assert_eq!(
        (d.fire, d.last, d.next),
        (vec![0, 1000, 2000], 2000, Some(3000))
    );
    assert_eq!(t.preview(0, 3), [1000, 2000, 3000], "after 0, not 0 again");
    // Cron at midnight UTC, from the epoch: the same.
    let c = Timetable::new(&Trigger::Cron("0 0 * * *".into()), "UTC", Some(0), None).unwrap();
    let d = decide(&c, Misfire::Skip, 60_000, 0, 500).unwrap();
    assert_eq!(
        d,
        Decision {
            fire: vec![0],
            missed: 0,
            last: 0,
            next: Some(DAY)
        }
    );
    // Missed at 0: counted once, among the rest.
    let d = decide(&c, Misfire::Skip, 1000, 0, 2 * DAY + 500).unwrap();
    assert_eq!(
        (d.fire, d.missed, d.next),
        (vec![2 * DAY], 2, Some(3 * DAY))
    );
}

#[test]
fn a_due_time_that_is_not_a_fire_time_counts_no_miss() {
    // The stored next fire time need not be one of the table's (written
    // under another definition): only fire times are counted missed.
    let d = |t: &Timetable, next, now| decide(t, Misfire::Skip, 1000, next, now).unwrap();
    let t = Timetable::new(&Trigger::Every(1000), "UTC", None, None).unwrap();
    assert_eq!(
        d(&t, 10_500, 11_900),
        Decision {
            fire: vec![11_000],
            missed: 0,
            last: 11_000,
            next: Some(12_000)
        }
    );
    // Before the start.
    let t = Timetable::new(&Trigger::Every(1000), "UTC", Some(20_000), None).unwrap();
    assert_eq!(
        d(&t, 10_000, 15_000),
        Decision {
            fire: vec![],
            missed: 0,
            last: 10_000,
            next: Some(20_000)
        }
    );
    let c = Timetable::new(&Trigger::Cron("0 0 * * *".into()), "UTC", None, None).unwrap();
    assert_eq!(
        d(&c, DAY + 500, 2 * DAY - 1),
        Decision {
            fire: vec![],
            missed: 0,
            last: DAY + 500,
            next: Some(2 * DAY)
        }
    );
}

#[test]
fn a_missed_fire_time_at_zero_is_counted() {
    // Fire times 0, 1000, …, 4000 are missed and 5000 is on time, with the
    // start at 0 or none (the epoch is the anchor, 0 a fire time): the
    // count of misses began after 0 when there was no start.
    for start in [None, Some(0)] {
        let t = Timetable::new(&Trigger::Every(1000), "UTC", start, None).unwrap();
        let d = decide(&t, Misfire::Skip, 1000, 0, 5500).unwrap();
        assert_eq!(
            d,
            Decision {
                fire: vec![5000],
                missed: 5,
                last: 5000,
                next: Some(6000)
            },
            "start {start:?}"
        );
        let d = decide(&t, Misfire::Once, 1000, 0, 5500).unwrap();
        assert_eq!((d.fire, d.missed), (vec![4000, 5000], 4), "start {start:?}");
        assert_eq!(t.first_at_or_after(0), Some(0), "start {start:?}");
        assert_eq!(t.next_after(0), Some(1000), "start {start:?}");
    }
}

#[test]
fn a_start_near_zero_or_on_a_fire_time_fires_once_at_its_first() {
    let every = |start| Timetable::new(&Trigger::Every(1000), "UTC", Some(start), None).unwrap();
    let midnight = |start| {
        Timetable::new(&Trigger::Cron("0 0 * * *".into()), "UTC", Some(start), None).unwrap()
    };
    // An interval is anchored at its start: the start is its first fire.
    for start in [1, 999, 1000, 5000, 5001] {
        let t = every(start);
        assert_eq!(t.first_at_or_after(0), Some(start));
        assert_eq!(t.first_at_or_after(start), Some(start));
        assert_eq!(t.first_at_or_after(start + 1), Some(start + 1000));
        assert_eq!(t.next_after(start - 1), Some(start));
        assert_eq!(t.next_after(start), Some(start + 1000));
        assert_eq!(t.prev_before(start), None);
        let d = decide(&t, Misfire::Skip, 60_000, start, start).unwrap();
        assert_eq!((d.fire, d.next), (vec![start], Some(start + 1000)));
    }
    // A cron start just after a fire time: the next one.
    for start in [1, 999, 1000, DAY - 1] {
        let c = midnight(start);
        assert_eq!(c.first_at_or_after(0), Some(DAY), "start {start}");
        assert_eq!(c.first_at_or_after(start), Some(DAY), "start {start}");
        assert_eq!(c.next_after(0), Some(DAY), "start {start}");
    }
    // A cron start on a fire time: fires there, once.
    let c = midnight(DAY);
    assert_eq!(c.first_at_or_after(0), Some(DAY));
    assert_eq!(c.first_at_or_after(DAY), Some(DAY));
    assert_eq!(c.first_at_or_after(DAY + 1), Some(2 * DAY));
    assert_eq!(c.next_after(DAY - 1), Some(DAY));
    assert_eq!(c.next_after(DAY), Some(2 * DAY));
    let d = decide(&c, Misfire::Skip, 60_000, DAY, DAY + 10).unwrap();
    assert_eq!((d.fire, d.last, d.next), (vec![DAY], DAY, Some(2 * DAY)));
    // The end bounds the first fire too, inclusive.
    let t = Timetable::new(&Trigger::Every(1000), "UTC", Some(0), Some(0)).unwrap();
    assert_eq!(t.first_at_or_after(0), Some(0));
    assert_eq!(t.next_after(0), None);
    let d = decide(&t, Misfire::Skip, 60_000, 0, 10).unwrap();
    assert_eq!((d.fire, d.next), (vec![0], None));
    assert_eq!(every(0).first_at_or_after(u64::MAX), None);
    assert_eq!(every(0).next_after(u64::MAX), None);
}

#[test]
fn a_cron_schedules_misses_are_counted_up_to_the_cap() {
    // Every second, 20,000 s away: the misses are counted one by one, up to
    // MAX_COUNTED_MISSES.
    let c = Timetable::new(&Trigger::Cron("* * * * * *".into()), "UTC", None, None).unwrap();
    let next = 1_000_000;
    let d = decide(&c, Misfire::Skip, 1000, next, next + 20_000_000).unwrap();
    assert_eq!(d.missed, MAX_COUNTED_MISSES);
    assert_eq!(d.fire, [next + 19_999_000, next + 20_000_000]);
}
