//! Schedules in the simulated workload: a few schedules fire through the
//! whole fault window (engine crashes and cuts, lost replies, store
//! restarts, clock jumps, several replicas racing), and the judge checks that
//! every fire time produced exactly one execution, or none as the misfire
//! and overlap policies say, and that the schedules kept up.

use ff_core::contract::execution::ExecutionRecord;
use ff_core::schedule::{fire_execution_id, Misfire, Overlap, ScheduleName, Timetable};
use ff_engine::client::Schedule;
use ff_engine::{Client, ExecutionSpec};
use std::collections::BTreeMap;
use std::time::Duration;

/// One simulated schedule and its first fire time.
#[derive(Debug, Clone)]
pub struct SimSchedule {
    pub name: String,
    pub first: u64,
    /// Every fire time must have its execution (catch-up covering any outage).
    pub complete: bool,
}

fn defs() -> Vec<(&'static str, Schedule, bool)> {
    let t = || ExecutionSpec::new("ok").retention(Duration::from_secs(24 * 3600));
    vec![
        // Catch up on everything an outage or a clock jump left behind.
        (
            "sched-catchup",
            Schedule::every(Duration::from_millis(2_000))
                .grace(Duration::from_secs(5))
                .misfire(Misfire::CatchUp(100))
                .template(t()),
            true,
        ),
        (
            "sched-skip",
            Schedule::cron("*/3 * * * * *")
                .zone("Europe/Berlin")
                .grace(Duration::from_secs(2))
                .misfire(Misfire::Skip)
                .template(t()),
            false,
        ),
        (
            "sched-once",
            Schedule::every(Duration::from_millis(1_500))
                .grace(Duration::from_secs(1))
                .misfire(Misfire::Once)
                .overlap(Overlap::Skip)
                .template(t()),
            false,
        ),
    ]
}

/// Define the schedules (through store faults: retried; a define repeated
/// after a lost reply is answered unchanged).
pub async fn define(client: &Client) -> Vec<SimSchedule> {
    let mut out = Vec::new();
    for (name, s, complete) in defs() {
        while client.define_schedule(name, s.clone()).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let first = loop {
            match client.get_schedule(name).await {
                Ok(Some(r)) => break r.next_fire_ms.unwrap_or(u64::MAX),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        out.push(SimSchedule {
            name: name.to_owned(),
            first,
            complete,
        });
    }
    out
}

/// Stop the schedules (the liveness phase needs every execution to end).
pub async fn pause(client: &Client, schedules: &[SimSchedule]) {
    for s in schedules {
        while client.pause_schedule(&s.name).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Check each schedule against the executions in the store. `behind_ms`:
/// how far a schedule's next fire may lag `now_ms` when it was paused (it
/// must have kept up once faults stopped).
pub async fn check(
    client: &Client,
    schedules: &[SimSchedule],
    records: &BTreeMap<String, ExecutionRecord>,
    paused_at: Option<(u64, u64)>,
) -> Vec<String> {
    let mut v = Vec::new();
    for s in schedules {
        let rec = match client.get_schedule(&s.name).await {
            Ok(Some(r)) => r,
            other => {
                v.push(format!("schedule {}: cannot read it: {other:?}", s.name));
                continue;
            }
        };
        let table = match Timetable::new(
            &rec.spec.trigger,
            &rec.spec.zone,
            rec.spec.start_ms,
            rec.spec.end_ms,
        ) {
            Ok(t) => t,
            Err(e) => {
                v.push(format!("schedule {}: {e}", s.name));
                continue;
            }
        };
        let name = ScheduleName::new(s.name.as_str()).expect("a valid name");
        let p = name.partition(client.config());
        // Executions by fire time: never two for one fire time.
        let mut by_fire: BTreeMap<u64, Vec<&ExecutionRecord>> = BTreeMap::new();
        for r in records.values() {
            if r.tags.get("ff.schedule") == Some(&s.name) {
                match r.tags.get("ff.fire").and_then(|f| f.parse::<u64>().ok()) {
                    Some(t) => by_fire.entry(t).or_default().push(r),
                    None => v.push(format!(
                        "schedule {}: {} has no fire time",
                        s.name, r.execution
                    )),
                }
            }
        }
        for (t, rs) in &by_fire {
            if rs.len() > 1 {
                v.push(format!(
                    "schedule {}: fire time {t} made {} executions",
                    s.name,
                    rs.len()
                ));
            }
            if table.first_at_or_after(*t) != Some(*t) || *t < s.first {
                v.push(format!(
                    "schedule {}: {t} is not one of its fire times",
                    s.name
                ));
            }
            for r in rs {
                if r.execution != fire_execution_id(p, &name, *t) {
                    v.push(format!(
                        "schedule {}: {} is not the id of fire {t}",
                        s.name, r.execution
                    ));
                }
                if r.created_at_ms < *t {
                    v.push(format!(
                        "schedule {}: fire {t} made before its time",
                        s.name
                    ));
                }
            }
        }
        // Every fire time decided is accounted once: made, missed or overlapped.
        let fire_times = match rec.last_fire_ms {
            Some(last) if last >= s.first => {
                let mut n = 1u64;
                let mut at = s.first;
                while let Some(next) = table.next_after(at) {
                    if next > last {
                        break;
                    }
                    n += 1;
                    at = next;
                }
                n
            }
            _ => 0,
        };
        let made = by_fire.len() as u64;
        if made == 0 {
            v.push(format!(
                "schedule {}: made nothing in the whole run",
                s.name
            ));
        }
        if rec.fired != made {
            v.push(format!(
                "schedule {}: counts {} fired, {made} executions",
                s.name, rec.fired
            ));
        }
        if rec.fired + rec.missed + rec.overlapped != fire_times {
            v.push(format!(
                "schedule {}: {} fire times up to {:?}, accounted {} fired + {} missed + {} overlapped",
                s.name, fire_times, rec.last_fire_ms, rec.fired, rec.missed, rec.overlapped
            ));
        }
        if s.complete && made != fire_times {
            v.push(format!(
                "schedule {}: catch-up made {made} executions for {fire_times} fire times",
                s.name
            ));
        }
        // Kept up: when paused (faults stopped a while before), its last fire
        // decided was recent.
        if let Some((now, behind)) = paused_at {
            if rec.last_fire_ms.is_none_or(|l| l + behind < now) {
                v.push(format!(
                    "schedule {}: behind when paused at {now}: last fire {:?}",
                    s.name, rec.last_fire_ms
                ));
            }
        }
    }
    v
}
