//! `ff schedule`: list, show, pause, resume, delete and preview schedules.
//! Reads print text, or one JSON value with `--json`.

use chrono::{DateTime, Utc};
use ff_core::contract::schedule::ScheduleRecord;
use ff_core::schedule::{Timetable, Trigger};
use ff_engine::Client;

/// A server time (Unix ms) as RFC 3339 in UTC.
pub fn utc(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map_or_else(
            || ms.to_string(),
            |d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
}

/// A time in `zone` (RFC 3339 with its offset), or UTC when the zone is unknown.
pub fn zoned(ms: u64, zone: &str) -> String {
    match (
        zone.parse::<chrono_tz::Tz>(),
        i64::try_from(ms)
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis),
    ) {
        (Ok(tz), Some(d)) => d
            .with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        _ => utc(ms),
    }
}

/// The next `n` fire times of a stored schedule, from its next fire time.
pub fn upcoming(r: &ScheduleRecord, n: usize) -> Vec<u64> {
    let (Some(next), Ok(table)) = (r.next_fire_ms, r.spec.validate()) else {
        return Vec::new();
    };
    let mut out = vec![next];
    out.extend(table.preview(next, n.saturating_sub(1)));
    out
}

/// One schedule as JSON.
pub fn to_json(r: &ScheduleRecord, next: usize) -> serde_json::Value {
    let t = &r.spec.template;
    serde_json::json!({
        "name": r.name.as_str(),
        "trigger": r.spec.trigger.encode(),
        "zone": r.spec.zone,
        "start_ms": r.spec.start_ms,
        "end_ms": r.spec.end_ms,
        "misfire": r.spec.misfire.encode(),
        "grace_ms": r.spec.grace_ms,
        "overlap": r.spec.overlap.as_str(),
        "paused": r.spec.paused,
        "template": {
            "kind": t.kind.as_str(), "lane": t.lane.as_str(), "namespace": t.namespace.as_str(),
            "priority": t.priority, "payload_bytes": t.payload.len(),
        },
        "rev": r.rev,
        "next_fire_ms": r.next_fire_ms,
        "next_fires_ms": upcoming(r, next),
        "last_fire_ms": r.last_fire_ms,
        "last_execution": r.last_execution.as_ref().map(|e| e.to_string()),
        "fired": r.fired,
        "missed": r.missed,
        "overlapped": r.overlapped,
        "broken": r.broken,
    })
}

/// `ff schedule list` as text: one line per schedule.
pub fn list_text(records: &[ScheduleRecord]) -> String {
    let mut out = format!(
        "{:<24} {:<28} {:<16} {:<8} {:<26} {:>8} {:>8} {:>10}\n",
        "NAME", "TRIGGER", "ZONE", "STATE", "NEXT FIRE (UTC)", "FIRED", "MISSED", "OVERLAPPED"
    );
    for r in records {
        let state = if r.broken.is_some() {
            "broken"
        } else if r.spec.paused {
            "paused"
        } else if r.next_fire_ms.is_none() {
            "ended"
        } else {
            "active"
        };
        out.push_str(&format!(
            "{:<24} {:<28} {:<16} {:<8} {:<26} {:>8} {:>8} {:>10}\n",
            r.name.as_str(),
            r.spec.trigger.encode(),
            r.spec.zone,
            state,
            r.next_fire_ms.map_or_else(|| "-".into(), utc),
            r.fired,
            r.missed,
            r.overlapped
        ));
    }
    out
}

/// `ff schedule show` as text.
pub fn show_text(r: &ScheduleRecord, next: usize) -> String {
    let t = &r.spec.template;
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<16} {v}\n"));
    line("name", r.name.to_string());
    line("trigger", r.spec.trigger.encode());
    line("zone", r.spec.zone.clone());
    line("start", r.spec.start_ms.map_or_else(|| "-".into(), utc));
    line("end", r.spec.end_ms.map_or_else(|| "-".into(), utc));
    line(
        "misfire",
        format!("{} (grace {} ms)", r.spec.misfire.encode(), r.spec.grace_ms),
    );
    line("overlap", r.spec.overlap.as_str().into());
    line("paused", r.spec.paused.to_string());
    line(
        "template",
        format!(
            "kind {} lane {} namespace {} priority {} payload {} bytes",
            t.kind,
            t.lane,
            t.namespace,
            t.priority,
            t.payload.len()
        ),
    );
    line("revision", r.rev.to_string());
    line("last fire", r.last_fire_ms.map_or_else(|| "-".into(), utc));
    line(
        "last execution",
        r.last_execution
            .as_ref()
            .map_or_else(|| "-".into(), |e| e.to_string()),
    );
    line(
        "fired",
        format!(
            "{} (missed {}, overlapped {})",
            r.fired, r.missed, r.overlapped
        ),
    );
    if let Some(b) = &r.broken {
        line("broken", b.clone());
    }
    for (i, f) in upcoming(r, next).into_iter().enumerate() {
        line(
            if i == 0 { "next fires" } else { "" },
            format!("{}  ({})", utc(f), zoned(f, &r.spec.zone)),
        );
    }
    out
}

/// The next `n` fire times of a trigger in `zone` after `now_ms`.
pub fn preview(trigger: &Trigger, zone: &str, now_ms: u64, n: usize) -> Result<Vec<u64>, String> {
    let table = Timetable::new(trigger, zone, None, None).map_err(|e| e.to_string())?;
    Ok(table.preview(now_ms, n))
}

/// Every schedule (the client's listing).
pub async fn list(client: &Client) -> Result<Vec<ScheduleRecord>, ff_engine::Error> {
    client.list_schedules().await
}
