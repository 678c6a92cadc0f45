//! Schedules end to end, on a real redis-server and on MemoryStore: fires
//! exactly once per fire time (two engines racing, a repeated fire call),
//! misfire policies after an outage, overlap, pause/resume, update, delete,
//! and bad input refused naming its field with nothing stored.

mod common;

use common::*;
use ff_engine::client::Schedule;
use ff_engine::core::contract::execution::ExecutionRecord;
use ff_engine::core::contract::schedule::{self as sc, Defined, FireItem};
use ff_engine::core::keys::PartitionKeys;
use ff_engine::core::schedule::{
    decide, due_index, fire_execution_id, record_key, Misfire, Overlap, ScheduleName, Trigger,
};
use ff_engine::engine::{fire_schedules_once, Engine, EngineConfig};
use ff_engine::store::{cmd, Store};
use ff_engine::{Client, Error, ExecutionSpec};
use std::sync::Arc;
use std::time::Duration;

/// The executions `name` made, by fire time (ascending).
async fn fired(c: &Client, name: &str) -> Vec<(u64, ExecutionRecord)> {
    let p = ScheduleName::new(name).unwrap().partition(c.config());
    let mut out = Vec::new();
    for id in smembers(&**c.store(), &PartitionKeys::new(p).all()).await {
        let rec = c.get(&id.parse().unwrap()).await.unwrap();
        if rec.tags.get("ff.schedule").map(String::as_str) == Some(name) {
            let t: u64 = rec.tags["ff.fire"].parse().unwrap();
            out.push((t, rec));
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

fn no_filter() -> ff_engine::core::contract::scan::ScannerFilter {
    Default::default()
}

/// Each fire time once, consecutive (no gap, no double), ids derived from the fire.
fn assert_once_each(c: &Client, name: &str, times: &[u64], step: u64) {
    let n = ScheduleName::new(name).unwrap();
    let p = n.partition(c.config());
    for w in times.windows(2) {
        assert_eq!(
            w[1] - w[0],
            step,
            "fire times {times:?} are consecutive and single"
        );
    }
    for t in times {
        assert_eq!(t % step, 0, "on the interval's grid");
        let _ = fire_execution_id(p, &n, *t);
    }
}

fn fast_engine() -> EngineConfig {
    EngineConfig {
        schedule_interval: Duration::from_millis(500),
        ..EngineConfig::default()
    }
}

async fn interval_fires_once_per_fire_time(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    let engine = Engine::start(fast_engine(), store.clone()).await.unwrap();
    let d = c
        .define_schedule(
            "tick",
            Schedule::every(Duration::from_millis(200))
                .template(ExecutionSpec::new("tick").payload("p")),
        )
        .await
        .unwrap();
    assert!(matches!(d, Defined::Created(1)), "{d:?}");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(engine.shutdown().await);
    let made = fired(&c, "tick").await;
    let times: Vec<u64> = made.iter().map(|(t, _)| *t).collect();
    assert!(times.len() >= 4, "fired {times:?}");
    assert_once_each(&c, "tick", &times, 200);
    let rec = c.get_schedule("tick").await.unwrap().unwrap();
    assert_eq!(rec.fired, made.len() as u64);
    assert_eq!(rec.missed, 0);
    assert_eq!(rec.last_fire_ms, times.last().copied());
    assert_eq!(rec.next_fire_ms, Some(times.last().unwrap() + 200));
    let p = ScheduleName::new("tick").unwrap().partition(c.config());
    for (t, e) in &made {
        assert_eq!(e.kind.as_str(), "tick");
        assert_eq!(e.payload, b"p");
        assert_eq!(
            e.execution,
            fire_execution_id(p, &ScheduleName::new("tick").unwrap(), *t)
        );
        // Made at its time, not before, and not late.
        assert!(e.created_at_ms >= *t, "made before its fire time");
        assert!(
            e.created_at_ms - t < 1000,
            "late by {} ms",
            e.created_at_ms - t
        );
    }
}

async fn cron_fires_once_per_fire_time(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    let engine = Engine::start(fast_engine(), store.clone()).await.unwrap();
    c.define_schedule(
        "every-second",
        Schedule::cron("* * * * * *").zone("Europe/Berlin"),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert!(engine.shutdown().await);
    let times: Vec<u64> = fired(&c, "every-second")
        .await
        .iter()
        .map(|(t, _)| *t)
        .collect();
    assert!(times.len() >= 2, "fired {times:?}");
    assert_once_each(&c, "every-second", &times, 1000);
}

async fn two_engines_racing_fire_each_time_once(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    // Ownership off: both engines scan every partition and race for every fire.
    let config = EngineConfig {
        ownership: false,
        ..fast_engine()
    };
    let a = Engine::start(config.clone(), store.clone()).await.unwrap();
    let b = Engine::start(config, store.clone()).await.unwrap();
    for i in 0..4 {
        c.define_schedule(
            &format!("race-{i}"),
            Schedule::every(Duration::from_millis(100)),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let acted = |e: &Engine| {
        e.metrics()
            .into_iter()
            .find(|s| s.scanner == "schedules")
            .unwrap()
            .acted
    };
    let total_acted = acted(&a) + acted(&b);
    assert!(a.shutdown().await && b.shutdown().await);
    let mut total = 0;
    for i in 0..4 {
        let name = format!("race-{i}");
        let made = fired(&c, &name).await;
        let times: Vec<u64> = made.iter().map(|(t, _)| *t).collect();
        assert!(times.len() >= 8, "{name} fired {times:?}");
        assert_once_each(&c, &name, &times, 100);
        let rec = c.get_schedule(&name).await.unwrap().unwrap();
        assert_eq!(rec.fired, times.len() as u64, "counted once each");
        total += times.len() as u64;
    }
    assert_eq!(
        total_acted, total,
        "the two engines made each execution once between them"
    );
}

async fn a_repeated_fire_call_creates_nothing(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    c.define_schedule("rep", Schedule::every(Duration::from_millis(100)))
        .await
        .unwrap();
    let name = ScheduleName::new("rep").unwrap();
    let p = name.partition(c.config());
    let rec = c.get_schedule("rep").await.unwrap().unwrap();
    let next = rec.next_fire_ms.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let now = server_ms(&*store).await;
    let table = rec.spec.validate().unwrap();
    let d = decide(&table, rec.spec.misfire, rec.spec.grace_ms, next, now).unwrap();
    let item = FireItem::Fire {
        name: "rep".into(),
        rev: rec.rev,
        next,
        last: d.last,
        new_next: d.next,
        missed: d.missed,
        fires: d
            .fire
            .iter()
            .map(|&t| (t, fire_execution_id(p, &name, t)))
            .collect(),
    };
    let call = sc::fire(p, &no_filter(), &[item]);
    let first = sc::decode_fire(&store.fcall(&call).await.unwrap()).unwrap();
    assert_eq!(first.fired as usize, d.fire.len());
    assert!(first.exceptions.is_empty());
    let after_first = fired(&c, "rep").await.len();
    // The same call again (a retry after a lost reply): the fence no longer holds.
    let second = sc::decode_fire(&store.fcall(&call).await.unwrap()).unwrap();
    assert_eq!(second.fired, 0);
    assert_eq!(
        second.exceptions,
        vec![("rep".to_owned(), "gone".to_owned())]
    );
    assert_eq!(fired(&c, "rep").await.len(), after_first);
    let rec2 = c.get_schedule("rep").await.unwrap().unwrap();
    assert_eq!(rec2.fired, d.fire.len() as u64);
    assert_eq!(rec2.next_fire_ms, d.next);
}

/// Put the schedule's next fire time in the past, as an engine outage
/// leaves it (nothing touches the record meanwhile).
async fn outage(store: &dyn Store, c: &Client, name: &str, next: u64) {
    let n = ScheduleName::new(name).unwrap();
    let p = n.partition(c.config());
    store
        .command(&cmd([
            "HSET",
            &record_key(p, &n),
            "next",
            &next.to_string(),
        ]))
        .await
        .unwrap();
    store
        .command(&cmd(["ZADD", &due_index(p), &next.to_string(), name]))
        .await
        .unwrap();
}

async fn misfire_policies_after_an_outage(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    // Every 10 s from now - 95 s: ten fire times passed, the last 5 s ago;
    // with a 2 s grace none of them is on time.
    let now = server_ms(&*store).await;
    let start = now - 95_000;
    let cases = [
        ("skip", Misfire::Skip, vec![]),
        ("once", Misfire::Once, vec![start + 90_000]),
        (
            "catch3",
            Misfire::CatchUp(3),
            vec![start + 70_000, start + 80_000, start + 90_000],
        ),
        (
            "catch20",
            Misfire::CatchUp(20),
            (0..10).map(|k| start + k * 10_000).collect(),
        ),
    ];
    for (name, misfire, _) in &cases {
        c.define_schedule(
            name,
            Schedule::every(Duration::from_secs(10))
                .start_at_ms(start)
                .grace(Duration::from_secs(2))
                .misfire(*misfire),
        )
        .await
        .unwrap();
        let rec = c.get_schedule(name).await.unwrap().unwrap();
        assert_eq!(
            rec.next_fire_ms,
            Some(start + 100_000),
            "the first fire after now"
        );
        outage(&*store, &c, name, start).await;
    }
    let report = fire_schedules_once(&**c.store(), c.config(), &no_filter())
        .await
        .unwrap();
    assert_eq!(report.acted, 1 + 3 + 10);
    for (name, _, want) in &cases {
        let times: Vec<u64> = fired(&c, name).await.iter().map(|(t, _)| *t).collect();
        assert_eq!(&times, want, "{name}");
        let rec = c.get_schedule(name).await.unwrap().unwrap();
        assert_eq!(rec.fired, want.len() as u64, "{name}");
        assert_eq!(
            rec.missed,
            10 - want.len() as u64,
            "{name}: each fire time counted once"
        );
        assert_eq!(rec.last_fire_ms, Some(start + 90_000));
        assert_eq!(rec.next_fire_ms, Some(start + 100_000));
    }
    // Nothing more is due: a second pass makes nothing.
    let again = fire_schedules_once(&**c.store(), c.config(), &no_filter())
        .await
        .unwrap();
    assert_eq!(again.acted, 0);
}

async fn overlap_skip_waits_for_the_live_run(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    let now = server_ms(&*store).await;
    let start = now - 30_000;
    c.define_schedule(
        "lonely",
        Schedule::every(Duration::from_secs(10))
            .start_at_ms(start)
            .grace(Duration::from_secs(60))
            .overlap(Overlap::Skip),
    )
    .await
    .unwrap();
    c.define_schedule(
        "crowd",
        Schedule::every(Duration::from_secs(10))
            .start_at_ms(start)
            .grace(Duration::from_secs(60))
            .overlap(Overlap::Allow),
    )
    .await
    .unwrap();
    outage(&*store, &c, "lonely", start).await;
    outage(&*store, &c, "crowd", start).await;
    // Four fire times on time (start .. start + 30 s): the first run is still
    // waiting when the next three come.
    fire_schedules_once(&**c.store(), c.config(), &no_filter())
        .await
        .unwrap();
    let lonely = c.get_schedule("lonely").await.unwrap().unwrap();
    assert_eq!((lonely.fired, lonely.overlapped), (1, 3));
    assert_eq!(fired(&c, "lonely").await.len(), 1);
    let crowd = c.get_schedule("crowd").await.unwrap().unwrap();
    assert_eq!((crowd.fired, crowd.overlapped), (4, 0));
    // Once the run ends, the next fire makes one again.
    let job = claim_one(&c).await;
    c.complete(&job.lease, b"done").await.unwrap();
    while let Ok(mut more) = {
        let (lane, w, i) = worker();
        c.claim(&lane, &w, &i, LEASE, 10).await
    } {
        if more.is_empty() {
            break;
        }
        for j in more.drain(..) {
            c.complete(&j.lease, b"done").await.unwrap();
        }
    }
    let past = server_ms(&*store).await - 1;
    outage(&*store, &c, "lonely", past).await;
    fire_schedules_once(&**c.store(), c.config(), &no_filter())
        .await
        .unwrap();
    let after = c.get_schedule("lonely").await.unwrap().unwrap();
    assert_eq!(after.fired, 2, "a new run once the previous one ended");
}

async fn pause_resume_and_delete(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    let engine = Engine::start(fast_engine(), store.clone()).await.unwrap();
    c.define_schedule("p", Schedule::every(Duration::from_millis(100)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(c.pause_schedule("p").await.unwrap());
    assert!(!c.pause_schedule("p").await.unwrap(), "paused already");
    let n = ScheduleName::new("p").unwrap();
    let p = n.partition(c.config());
    let paused_at = fired(&c, "p").await.len();
    assert!(paused_at >= 1);
    let rec = c.get_schedule("p").await.unwrap().unwrap();
    assert!(rec.spec.paused);
    assert_eq!(rec.next_fire_ms, None);
    assert!(
        zmembers(&*store, &due_index(p)).await.is_empty(),
        "out of the due index"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        fired(&c, "p").await.len(),
        paused_at,
        "nothing while paused"
    );
    assert!(c.resume_schedule("p").await.unwrap());
    assert!(!c.resume_schedule("p").await.unwrap(), "active already");
    let resumed = c.get_schedule("p").await.unwrap().unwrap();
    assert!(resumed.next_fire_ms.unwrap() > rec.last_fire_ms.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let made = fired(&c, "p").await;
    assert!(made.len() >= paused_at + 2, "fires again after resume");
    // Nothing for the fire times while it was paused.
    let times: Vec<u64> = made.iter().map(|(t, _)| *t).collect();
    assert!(times
        .iter()
        .all(|t| *t <= rec.last_fire_ms.unwrap() || *t >= resumed.next_fire_ms.unwrap()));
    assert!(c.delete_schedule("p").await.unwrap());
    assert!(!c.delete_schedule("p").await.unwrap(), "deleted already");
    assert!(c.get_schedule("p").await.unwrap().is_none());
    assert!(zmembers(&*store, &due_index(p)).await.is_empty());
    assert!(c.list_schedules().await.unwrap().is_empty());
    let kept = fired(&c, "p").await.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(engine.shutdown().await);
    assert_eq!(
        fired(&c, "p").await.len(),
        kept,
        "the executions stay, no more are made"
    );
    assert!(kept >= made.len());
}

/// A paused lane holds back claims, not fires: each fire makes its
/// execution (waiting in the paused lane) and the schedule moves on, with
/// overlap allow and skip alike (skip counts the fires the waiting one
/// overlaps, but still advances).
async fn a_paused_lane_does_not_stall_the_fires(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    c.pause_lane("default").await.unwrap();
    c.define_schedule("lp", Schedule::every(Duration::from_millis(200)))
        .await
        .unwrap();
    c.define_schedule(
        "lp-skip",
        Schedule::every(Duration::from_millis(200)).overlap(Overlap::Skip),
    )
    .await
    .unwrap();
    let (mut last, mut made_before) = ((0, 0), 0);
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        fire_schedules_once(&**c.store(), c.config(), &no_filter())
            .await
            .unwrap();
        let a = c.get_schedule("lp").await.unwrap().unwrap();
        let b = c.get_schedule("lp-skip").await.unwrap().unwrap();
        let (la, lb) = (a.last_fire_ms.unwrap(), b.last_fire_ms.unwrap());
        assert!(la > last.0 && lb > last.1, "round {round}: both moved on");
        last = (la, lb);
        assert!(a.next_fire_ms.unwrap() > la && b.next_fire_ms.unwrap() > lb);
        assert!(a.fired > made_before, "round {round}: made executions");
        made_before = a.fired;
    }
    let made = fired(&c, "lp").await;
    assert_eq!(made.len() as u64, made_before);
    assert!(made
        .iter()
        .all(|(_, r)| r.public_state == ff_engine::core::state::PublicState::Waiting));
    let skip = c.get_schedule("lp-skip").await.unwrap().unwrap();
    assert_eq!(skip.fired, 1, "the first one waits in the paused lane");
    assert!(skip.overlapped >= 2, "{skip:?}");
    c.resume_lane("default").await.unwrap();
}

async fn an_update_takes_effect_from_the_next_fire(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    let slow = Schedule::every(Duration::from_secs(3600)).template(ExecutionSpec::new("old"));
    assert!(matches!(
        c.define_schedule("u", slow.clone()).await.unwrap(),
        Defined::Created(1)
    ));
    assert!(
        matches!(
            c.define_schedule("u", slow).await.unwrap(),
            Defined::Unchanged(1)
        ),
        "a repeat writes nothing"
    );
    let before = c.get_schedule("u").await.unwrap().unwrap();
    let engine = Engine::start(fast_engine(), store.clone()).await.unwrap();
    let fast =
        Schedule::every(Duration::from_millis(100)).template(ExecutionSpec::new("new").priority(5));
    assert!(matches!(
        c.define_schedule("u", fast).await.unwrap(),
        Defined::Updated(2)
    ));
    let after = c.get_schedule("u").await.unwrap().unwrap();
    assert!(after.next_fire_ms.unwrap() < before.next_fire_ms.unwrap());
    assert_eq!(after.spec.trigger, Trigger::Every(100));
    assert_eq!(after.created_at_ms, before.created_at_ms);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(engine.shutdown().await);
    let made = fired(&c, "u").await;
    assert!(!made.is_empty());
    for (t, e) in &made {
        assert_eq!(e.kind.as_str(), "new");
        assert_eq!(e.priority, 5);
        assert!(*t >= after.next_fire_ms.unwrap());
    }
    let listed = c.list_schedules().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name.as_str(), "u");
    assert!(listed[0].next_fire_ms.is_some());
}

async fn bad_input_is_refused_naming_the_field_and_nothing_is_stored(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    let field = |r: Result<Defined, Error>| match r {
        Err(Error::Invalid { field, .. }) => field.to_owned(),
        Err(Error::Parse(e)) => format!("parse: {e}"),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let cases: Vec<(Schedule, &str)> = vec![
        (Schedule::cron("not a cron"), "expr"),
        (Schedule::cron("0 61 * * * *"), "expr"),
        (
            Schedule::cron("0 0 * * *").zone("Mars/Olympus_Mons"),
            "zone",
        ),
        (Schedule::every(Duration::ZERO), "every"),
        (
            Schedule::every(Duration::from_secs(1))
                .start_at_ms(10_000)
                .end_at_ms(5_000),
            "end",
        ),
        (
            Schedule::every(Duration::from_secs(1)).misfire(Misfire::CatchUp(0)),
            "misfire",
        ),
        (
            Schedule::every(Duration::from_secs(1)).grace(Duration::from_millis(1)),
            "grace",
        ),
        (
            Schedule::every(Duration::from_secs(1))
                .template(ExecutionSpec::new("k").lane("nowhere")),
            "template.lane",
        ),
        (
            Schedule::every(Duration::from_secs(1))
                .template(ExecutionSpec::new("k").priority(1001)),
            "template.priority",
        ),
        (
            Schedule::every(Duration::from_secs(1)).template(ExecutionSpec::new("bad kind!")),
            "template.kind",
        ),
        (
            Schedule::every(Duration::from_secs(1))
                .template(ExecutionSpec::new("k").idempotency_key("x", Duration::from_secs(1))),
            "template.idempotency",
        ),
        (
            Schedule::every(Duration::from_secs(1))
                .template(ExecutionSpec::new("k").payload(vec![0u8; 1024 * 1024 + 1])),
            "template.payload",
        ),
    ];
    for (schedule, want) in cases {
        assert_eq!(field(c.define_schedule("bad", schedule).await), want);
    }
    assert!(matches!(
        c.define_schedule("no spaces", Schedule::every(Duration::from_secs(1)))
            .await,
        Err(Error::Parse(_))
    ));
    assert!(
        c.get_schedule("bad").await.unwrap().is_none(),
        "nothing stored"
    );
    assert!(c.list_schedules().await.unwrap().is_empty());
    // The data plane refuses a bad definition too, naming the field, and
    // stores nothing (a caller that skipped the client's checks).
    let n = ScheduleName::new("raw").unwrap();
    let mut call = sc::define(
        c.config(),
        &n,
        &Schedule::every(Duration::from_secs(1))
            .into_spec()
            .unwrap()
            .0,
        Some(1),
    );
    call.args[1] = b"every:0".to_vec();
    let reply = store.fcall(&call).await.unwrap();
    match sc::decode_define(&reply) {
        Err(ff_engine::core::contract::CallError::Rejected(
            ff_engine::core::FfError::InvalidArgument { field, .. },
        )) => {
            assert_eq!(field, "trigger")
        }
        other => panic!("{other:?}"),
    }
    assert!(c.get_schedule("raw").await.unwrap().is_none());
}

async fn preview_lists_the_next_fire_times(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    let now = server_ms(&*store).await;
    let times = c
        .preview_schedule(
            &Trigger::Cron("0 0 9 * * MON-FRI".into()),
            "America/New_York",
            5,
        )
        .await
        .unwrap();
    assert_eq!(times.len(), 5);
    assert!(times[0] > now);
    assert!(times.windows(2).all(|w| w[0] < w[1]));
    assert!(c
        .preview_schedule(&Trigger::Cron("* * *".into()), "UTC", 5)
        .await
        .is_err());
}

async fn a_damaged_record_is_counted_and_left_out(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    c.define_schedule("ok", Schedule::every(Duration::from_secs(3600)))
        .await
        .unwrap();
    c.define_schedule("damaged", Schedule::every(Duration::from_secs(10)))
        .await
        .unwrap();
    let n = ScheduleName::new("damaged").unwrap();
    let p = n.partition(c.config());
    store
        .command(&cmd([
            "HSET",
            &record_key(p, &n),
            "trigger",
            "cron:not a cron",
        ]))
        .await
        .unwrap();
    outage(&*store, &c, "damaged", server_ms(&*store).await - 1).await;
    let report = fire_schedules_once(&**c.store(), c.config(), &no_filter())
        .await
        .unwrap();
    assert_eq!((report.acted, report.malformed), (0, 1));
    assert!(
        zmembers(&*store, &due_index(p)).await.is_empty(),
        "out of the due index"
    );
    // The listing shows it broken, with why, and no next fire.
    let listed = c.list_schedules().await.unwrap();
    assert_eq!(
        listed.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        vec!["damaged", "ok"]
    );
    assert!(
        listed[0]
            .broken
            .as_deref()
            .is_some_and(|b| b.contains("not a cron")),
        "{:?}",
        listed[0].broken
    );
    assert_eq!(listed[0].next_fire_ms, None);
    // A record whose fields do not decode at all is left out of the listing.
    store
        .command(&cmd(["HSET", &record_key(p, &n), "misfire", "sometimes"]))
        .await
        .unwrap();
    let listed = c.list_schedules().await.unwrap();
    assert_eq!(
        listed.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        vec!["ok"]
    );
    // A define repairs it.
    c.define_schedule("damaged", Schedule::every(Duration::from_secs(10)))
        .await
        .unwrap();
    let rec = c.get_schedule("damaged").await.unwrap().unwrap();
    assert_eq!(rec.broken, None);
    assert!(rec.next_fire_ms.is_some());
}

/// Each call sent again after "applied, reply lost" answers as its contract's
/// `Repeat:` says and changes nothing.
async fn repeats_of_define_pause_resume_and_delete_change_nothing(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    let n = ScheduleName::new("r").unwrap();
    let (spec, table) = Schedule::every(Duration::from_secs(60))
        .into_spec()
        .unwrap();
    let now = server_ms(&*store).await;
    let define = sc::define(c.config(), &n, &spec, table.next_after(now));
    let send = |call: ff_engine::core::contract::Call| {
        let store = store.clone();
        async move { store.fcall(&call).await.unwrap() }
    };
    assert_eq!(
        sc::decode_define(&send(define.clone()).await).unwrap(),
        Defined::Created(1)
    );
    assert_eq!(
        sc::decode_define(&send(define).await).unwrap(),
        Defined::Unchanged(1)
    );
    let pause = sc::pause(c.config(), &n);
    assert!(sc::decode_pause(&send(pause.clone()).await).unwrap());
    assert!(!sc::decode_pause(&send(pause).await).unwrap());
    let rec = c.get_schedule("r").await.unwrap().unwrap();
    assert_eq!(rec.rev, 2);
    let resume = sc::resume(c.config(), &n, rec.rev, table.next_after(now + 1));
    assert_eq!(
        sc::decode_resume(&send(resume.clone()).await).unwrap(),
        sc::Resumed::Resumed
    );
    assert_eq!(
        sc::decode_resume(&send(resume).await).unwrap(),
        sc::Resumed::Active
    );
    assert_eq!(
        c.get_schedule("r").await.unwrap().unwrap().rev,
        3,
        "resumed once"
    );
    // A next fire time not after the last one decided is refused: stale.
    let p = n.partition(c.config());
    store
        .command(&cmd([
            "HSET",
            &record_key(p, &n),
            "last_fire",
            &(now + 120_000).to_string(),
        ]))
        .await
        .unwrap();
    let changed = Schedule::every(Duration::from_secs(30))
        .into_spec()
        .unwrap()
        .0;
    let stale = sc::define(c.config(), &n, &changed, Some(now + 60_000));
    assert_eq!(
        sc::decode_define(&send(stale).await).unwrap(),
        Defined::Stale(now + 120_000)
    );
    let delete = sc::delete(c.config(), &n);
    assert!(sc::decode_delete(&send(delete.clone()).await).unwrap());
    assert!(!sc::decode_delete(&send(delete).await).unwrap());
}

on_both_stores!(
    interval_fires_once_per_fire_time,
    cron_fires_once_per_fire_time,
    two_engines_racing_fire_each_time_once,
    a_repeated_fire_call_creates_nothing,
    misfire_policies_after_an_outage,
    overlap_skip_waits_for_the_live_run,
    pause_resume_and_delete,
    a_paused_lane_does_not_stall_the_fires,
    an_update_takes_effect_from_the_next_fire,
    bad_input_is_refused_naming_the_field_and_nothing_is_stored,
    preview_lists_the_next_fire_times,
    a_damaged_record_is_counted_and_left_out,
    repeats_of_define_pause_resume_and_delete_change_nothing,
);

/// On a 3-master cluster: schedules spread over the masters, two engines
/// racing (ownership off), each fire time made once; every call single-slot.
#[tokio::test]
async fn two_engines_on_a_cluster_fire_each_time_once() {
    let cluster = ff_tests::RedisCluster::start();
    let c = cluster_client(cluster.urls()).await;
    let config = EngineConfig {
        ownership: false,
        ..fast_engine()
    };
    let a = Engine::start(config.clone(), c.store().clone())
        .await
        .unwrap();
    let b = Engine::start(config, c.store().clone()).await.unwrap();
    let names: Vec<String> = (0..12).map(|i| format!("cl-{i}")).collect();
    for n in &names {
        c.define_schedule(n, Schedule::every(Duration::from_millis(200)))
            .await
            .unwrap();
    }
    let parts: std::collections::HashSet<u16> = names
        .iter()
        .map(|n| {
            ScheduleName::new(n.as_str())
                .unwrap()
                .partition(c.config())
                .index
        })
        .collect();
    assert!(parts.len() > 6, "spread over partitions");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(a.shutdown().await && b.shutdown().await);
    for n in &names {
        let times: Vec<u64> = fired(&c, n).await.iter().map(|(t, _)| *t).collect();
        assert!(times.len() >= 4, "{n} fired {times:?}");
        assert_once_each(&c, n, &times, 200);
        assert_eq!(
            c.get_schedule(n).await.unwrap().unwrap().fired,
            times.len() as u64
        );
    }
    assert_eq!(c.list_schedules().await.unwrap().len(), names.len());
}
