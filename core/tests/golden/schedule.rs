//! `contract::schedule`: define, pause, resume, delete, get and list, byte
//! for byte (the fire call is in decisions/fire_cycle.rs). A file of its own:
//! schedule code changes often.

use crate::support::*;
use ff_core::admission::Admission;
use ff_core::contract::schedule::*;
use ff_core::retry::RetryPolicy;
use ff_core::schedule::{Misfire, Overlap, ScheduleName, ScheduleSpec, Template, Trigger};
use ff_core::{ExecutionId, Kind, Lane, Namespace, Partition, PartitionConfig, PartitionFamily};
use std::collections::BTreeMap;

fn name() -> ScheduleName {
    ScheduleName::new("nightly").unwrap()
}

/// `nightly` lives in flow partition 186 of 256.
const KEY: &str = "ff:sched:{fp:186}:nightly";

fn template() -> Template {
    Template {
        namespace: Namespace::new("shop").unwrap(),
        lane: Lane::new("mail").unwrap(),
        kind: Kind::new("report").unwrap(),
        priority: 7,
        payload: b"p".to_vec(),
        delay_ms: 0,
        attempt_timeout_ms: 5_000,
        deadline_ms: 0,
        retry: RetryPolicy::fixed(1, 10),
        max_reclaims: 3,
        retention_ms: 60_000,
        tags: vec![],
        admission: Admission::default(),
    }
}

fn spec() -> ScheduleSpec {
    ScheduleSpec {
        trigger: Trigger::Every(1000),
        zone: "UTC".into(),
        start_ms: Some(5),
        end_ms: None,
        misfire: Misfire::CatchUp(3),
        grace_ms: 60_000,
        overlap: Overlap::Allow,
        paused: true,
        template: template(),
    }
}

const SHAPE: [&str; 15] = [
    "shop", "mail", "report", "7", "0", "5000", "0", "1:f:10", "3", "60000", "0", "", "", "", "0",
];

#[test]
fn define_call_and_answers() {
    let c = define(&PartitionConfig::default(), &name(), &spec(), Some(1005));
    let mut want = vec![
        "nightly",
        "every:1000",
        "UTC",
        "5",
        "",
        "catch_up:3",
        "60000",
        "allow",
        "1",
        "1005",
        "p",
        "15",
    ];
    want.extend(SHAPE);
    assert_call(&c, "ff_schedule_define", &[KEY], &want, false);
    let c = define(
        &PartitionConfig::default(),
        &name(),
        &ScheduleSpec {
            paused: false,
            end_ms: Some(9),
            ..spec()
        },
        None,
    );
    assert_eq!(
        &args(&c)[3..10],
        ["5", "9", "catch_up:3", "60000", "allow", "0", ""]
    );
    let d = |o: &str, n| decode_define(&ok(vec![b(o), i(n)]));
    assert_eq!(d("created", 1), Ok(Defined::Created(1)));
    assert_eq!(d("updated", 2), Ok(Defined::Updated(2)));
    assert_eq!(d("unchanged", 3), Ok(Defined::Unchanged(3)));
    assert_eq!(d("stale", 4), Ok(Defined::Stale(4)));
    assert_decode_error(d("made", 1));
    assert_decode_error(d("created", -1));
}

#[test]
fn pause_resume_delete_get_list() {
    let c = PartitionConfig::default();
    assert_call(
        &pause(&c, &name()),
        "ff_schedule_pause",
        &[KEY],
        &["nightly"],
        false,
    );
    assert_eq!(decode_pause(&ok(vec![i(1)])), Ok(true));
    assert_eq!(decode_pause(&ok(vec![i(0)])), Ok(false));
    assert_call(
        &resume(&c, &name(), 4, Some(7000)),
        "ff_schedule_resume",
        &[KEY],
        &["nightly", "4", "7000"],
        false,
    );
    assert_eq!(args(&resume(&c, &name(), 4, None))[2], "");
    assert_eq!(decode_resume(&ok(vec![b("resumed")])), Ok(Resumed::Resumed));
    assert_eq!(decode_resume(&ok(vec![b("active")])), Ok(Resumed::Active));
    assert_eq!(decode_resume(&ok(vec![b("stale")])), Ok(Resumed::Stale));
    assert_decode_error(decode_resume(&ok(vec![b("paused")])));
    assert_call(
        &delete(&c, &name()),
        "ff_schedule_delete",
        &[KEY],
        &["nightly"],
        false,
    );
    assert_eq!(decode_delete(&ok(vec![i(1)])), Ok(true));
    assert_eq!(decode_delete(&ok(vec![i(0)])), Ok(false));
    assert_call(
        &get(&c, &name()),
        "ff_schedule_get",
        &[KEY],
        &["nightly"],
        true,
    );
    let p = Partition::new(PartitionFamily::Flow, 3);
    assert_call(
        &list(p),
        "ff_schedule_list",
        &["ff:idx:{fp:3}:schedule_names"],
        &[],
        true,
    );
}

fn netstrings(parts: &[&str]) -> String {
    parts.iter().map(|p| format!("{}:{p}", p.len())).collect()
}

fn stored() -> Vec<(&'static str, String)> {
    let e = ExecutionId::new(186, 9).to_string();
    vec![
        ("trigger", "every:1000".into()),
        ("zone", "UTC".into()),
        ("start", "5".into()),
        ("end", "".into()),
        ("misfire", "catch_up:3".into()),
        ("grace", "60000".into()),
        ("overlap", "allow".into()),
        ("paused", "1".into()),
        ("shape", netstrings(&SHAPE)),
        ("payload", "p".into()),
        ("rev", "4".into()),
        ("next", "7000".into()),
        ("last_fire", "6000".into()),
        ("last_exec", e),
        ("fired", "10".into()),
        ("missed", "2".into()),
        ("overlapped", "1".into()),
        ("created", "100".into()),
        ("updated", "200".into()),
    ]
}

fn want_record(read_at_ms: u64) -> ScheduleRecord {
    ScheduleRecord {
        name: name(),
        spec: spec(),
        rev: 4,
        next_fire_ms: Some(7000),
        last_fire_ms: Some(6000),
        last_execution: Some(ExecutionId::new(186, 9)),
        fired: 10,
        missed: 2,
        overlapped: 1,
        created_at_ms: 100,
        updated_at_ms: 200,
        broken: None,
        read_at_ms,
    }
}

#[test]
fn get_and_list_decode_records() {
    let mut items = vec![i(999)];
    for (k, v) in stored() {
        items.push(b(k));
        items.push(b(&v));
    }
    assert_eq!(decode_get(&name(), &ok(items)), Ok(Some(want_record(999))));
    assert_eq!(decode_get(&name(), &ok(vec![i(999)])), Ok(None));
    assert_decode_error(decode_get(&name(), &ok(vec![i(-1)])));
    assert_decode_error(decode_get(&name(), &ok(vec![i(1), b("trigger"), b("x")])));

    let mut list = vec![i(5), b("nightly"), i(stored().len() as i64)];
    for (k, v) in stored() {
        list.push(b(k));
        list.push(b(&v));
    }
    list.extend([
        b("bad name"),
        i(0),
        b("hourly"),
        i(1),
        b("trigger"),
        b("at:1"),
    ]);
    let got = decode_list(&ok(list)).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], ("nightly".to_owned(), Ok(want_record(5))));
    assert_eq!(got[1].0, "bad name");
    assert!(got[1].1.is_err());
    assert_eq!(got[2].0, "hourly");
    assert!(got[2].1.as_ref().unwrap_err().contains("trigger"));
    assert_decode_error(decode_list(&ok(vec![i(5), b("x"), i(-1)])));
}

#[test]
fn records_refused_and_defaults() {
    let map = |pairs: Vec<(&'static str, String)>| -> BTreeMap<String, Vec<u8>> {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_bytes()))
            .collect()
    };
    let with = |k: &'static str, v: &str| {
        let mut s = stored();
        s.retain(|(key, _)| *key != k);
        s.push((k, v.to_owned()));
        ScheduleRecord::from_fields(name(), &map(s), 0)
    };
    for (k, v) in [
        ("shape", "9:x"),
        ("rev", "x"),
        ("next", "-1"),
        ("last_exec", "nope"),
        ("misfire", "never"),
        ("overlap", "both"),
        ("trigger", "at:1"),
    ] {
        assert!(with(k, v).is_err(), "{k}={v}");
    }
    let r = with("broken", "bad zone").unwrap();
    assert_eq!(r.broken.as_deref(), Some("bad zone"));
    let r = with("paused", "0").unwrap();
    assert!(!r.spec.paused);
    let r = with("last_exec", "").unwrap();
    assert_eq!(r.last_execution, None);
    let mut bare = stored();
    bare.retain(|(k, _)| !matches!(*k, "rev" | "next" | "fired" | "created"));
    let r = ScheduleRecord::from_fields(name(), &map(bare), 0).unwrap();
    assert_eq!(
        (r.rev, r.next_fire_ms, r.fired, r.created_at_ms),
        (0, None, 0, 0)
    );
    let mut bad_text = map(stored());
    bad_text.insert("zone".into(), vec![0xff]);
    assert!(ScheduleRecord::from_fields(name(), &bad_text, 0).is_err());
}

#[test]
fn netstrings_and_fire_items() {
    assert_eq!(
        split_netstrings(b"1:a2:bc"),
        Some(vec![b"a".to_vec(), b"bc".to_vec()])
    );
    assert_eq!(split_netstrings(b"1:a2:b"), None);
    assert_eq!(split_netstrings(b"1a"), None);
    assert_eq!(
        DUE_FIELDS,
        [
            "rev",
            "next",
            "trigger",
            "zone",
            "start",
            "end",
            "misfire",
            "grace",
            "paused",
            "last_fire"
        ]
    );
    let f = FireItem::Fire {
        name: "a".into(),
        rev: 1,
        next: 2,
        last: 2,
        new_next: None,
        missed: 0,
        fires: vec![],
    };
    assert_eq!(f.name(), "a");
    let r = FireItem::Repair {
        name: "b".into(),
        rev: None,
        broken: None,
    };
    assert_eq!(r.name(), "b");
    let d = decode_fire(&ok(vec![i(1), i(2), i(3), i(-1), b("x"), b("gone")])).unwrap();
    assert_eq!(
        d,
        FireOutcome {
            fired: 1,
            missed: 2,
            overlapped: 3,
            next_due_ms: None,
            exceptions: vec![("x".into(), "gone".into())]
        }
    );
    assert_decode_error(decode_fire(&ok(vec![i(-1), i(0), i(0), i(0)])));
    assert_decode_error(decode_fire(&ok(vec![i(0), i(-1), i(0), i(0)])));
    assert_decode_error(decode_fire(&ok(vec![i(0), i(0), i(-1), i(0)])));
}
