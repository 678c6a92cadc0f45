//! Contracts of the schedule functions (`lua/schedules.lua`): define (create
//! or update), pause, resume, delete, read, list, and the scanner's fire.
//!
//! A schedule lives in one flow partition (CRC16 of `sched:<name>`): its hash
//! `ff:sched:{fp:N}:<name>`, its entry in the partition's due index
//! `ff:idx:{fp:N}:schedules` (score: the next fire time) while it is active,
//! and its name in `ff:idx:{fp:N}:schedule_names`. The executions its fires
//! make live in the same partition, so a fire and its creations are one
//! single-slot call.
//!
//! Exactly once per fire time: the Lua has no cron parser, so next fire
//! times are computed in Rust ([`crate::schedule`]) and every call that moves
//! a schedule's next fire carries what it was computed from. [`fire`] carries
//! the revision and the next fire time it read, and applies only while the
//! record still holds both: it makes the executions of the fire times it
//! names (ids derived from the fire), counts the missed ones, and writes the
//! new next fire time, in one atomic call. Two engines, a retry after a lost
//! reply, or a decision made before an update all find the record moved on
//! and do nothing. [`define`] and [`resume`] are refused (answered `stale`)
//! when their new next fire time is not after the last fire time decided, so
//! no fire time is decided twice.

use super::{ok_fields, Call, CallError};
use crate::contract::scan::ScannerFilter;
use crate::id::ExecutionId;
use crate::partition::{Partition, PartitionConfig};
use crate::reply::{DecodeError, Fields, Reply};
use crate::schedule::{
    due_index, names_index, record_key, Misfire, Overlap, ScheduleName, ScheduleSpec, Template,
    Trigger,
};
use std::collections::BTreeMap;

fn opt_ms(v: Option<u64>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

/// `ff_schedule_define`: create the schedule `name`, or replace its
/// definition; `next` is its first fire time under `spec` (computed after the
/// server time and the last fire time decided; `None` when paused or ended).
///
/// Repeat: the stored definition equals the call's: answered `unchanged`,
/// nothing written.
pub fn define(
    config: &PartitionConfig,
    name: &ScheduleName,
    spec: &ScheduleSpec,
    next: Option<u64>,
) -> Call {
    let p = name.partition(config);
    let shape = spec.template.shape();
    let mut call = Call::new("ff_schedule_define", vec![record_key(p, name)])
        .arg(name)
        .arg(spec.trigger.encode())
        .arg(&spec.zone)
        .arg(opt_ms(spec.start_ms))
        .arg(opt_ms(spec.end_ms))
        .arg(spec.misfire.encode())
        .arg(spec.grace_ms)
        .arg(spec.overlap.as_str())
        .arg(u8::from(spec.paused))
        .arg(opt_ms(next))
        .arg_bytes(&spec.template.payload)
        .arg(shape.len());
    call.args.extend(shape);
    call
}

/// What a define did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defined {
    /// A new schedule, at this revision.
    Created(u64),
    /// The definition replaced, now at this revision.
    Updated(u64),
    /// The stored definition was this one already.
    Unchanged(u64),
    /// The next fire time sent is not after the last fire time decided
    /// (given): compute again from it.
    Stale(u64),
}

/// Decode `ff_schedule_define`'s reply.
pub fn decode_define(reply: &Reply) -> Result<Defined, CallError> {
    let mut f = ok_fields("ff_schedule_define", reply)?;
    let what = f.text("outcome")?;
    let n = non_negative(&mut f, "revision")?;
    Ok(match what.as_str() {
        "created" => Defined::Created(n),
        "updated" => Defined::Updated(n),
        "unchanged" => Defined::Unchanged(n),
        "stale" => Defined::Stale(n),
        o => return Err(f.error(format!("unknown outcome {o:?}")).into()),
    })
}

/// `ff_schedule_pause`: stop firing (out of the due index) until resumed.
///
/// Repeat: answered `false` (paused already); nothing written.
pub fn pause(config: &PartitionConfig, name: &ScheduleName) -> Call {
    Call::new(
        "ff_schedule_pause",
        vec![record_key(name.partition(config), name)],
    )
    .arg(name)
}

/// Decode `ff_schedule_pause`: true when this call paused it.
pub fn decode_pause(reply: &Reply) -> Result<bool, CallError> {
    let mut f = ok_fields("ff_schedule_pause", reply)?;
    Ok(f.int("changed")? == 1)
}

/// `ff_schedule_resume`: fire again from `next` (computed after the server
/// time and the last fire time decided of the record at revision `rev`).
///
/// Repeat: the schedule is active: answered [`Resumed::Active`], nothing written.
pub fn resume(config: &PartitionConfig, name: &ScheduleName, rev: u64, next: Option<u64>) -> Call {
    Call::new(
        "ff_schedule_resume",
        vec![record_key(name.partition(config), name)],
    )
    .arg(name)
    .arg(rev)
    .arg(opt_ms(next))
}

/// What a resume did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// Resumed by this call.
    Resumed,
    /// Active already.
    Active,
    /// The record changed since it was read (or `next` is not after the last
    /// fire time decided): read it again.
    Stale,
}

/// Decode `ff_schedule_resume`.
pub fn decode_resume(reply: &Reply) -> Result<Resumed, CallError> {
    let mut f = ok_fields("ff_schedule_resume", reply)?;
    Ok(match f.text("outcome")?.as_str() {
        "resumed" => Resumed::Resumed,
        "active" => Resumed::Active,
        "stale" => Resumed::Stale,
        o => return Err(f.error(format!("unknown outcome {o:?}")).into()),
    })
}

/// `ff_schedule_delete`: remove the schedule (its record and index entries;
/// the executions it made stay).
///
/// Repeat: answered `false` (nothing left to delete).
pub fn delete(config: &PartitionConfig, name: &ScheduleName) -> Call {
    Call::new(
        "ff_schedule_delete",
        vec![record_key(name.partition(config), name)],
    )
    .arg(name)
}

/// Decode `ff_schedule_delete`: true when this call deleted it.
pub fn decode_delete(reply: &Reply) -> Result<bool, CallError> {
    let mut f = ok_fields("ff_schedule_delete", reply)?;
    Ok(f.int("deleted")? == 1)
}

/// `ff_schedule_get`: read one schedule (read-only).
///
/// Repeat: read-only: the record as it is now.
pub fn get(config: &PartitionConfig, name: &ScheduleName) -> Call {
    Call::new(
        "ff_schedule_get",
        vec![record_key(name.partition(config), name)],
    )
    .arg(name)
    .read_only()
}

/// `ff_schedule_list`: every schedule of one partition (read-only).
///
/// Repeat: read-only: the records as they are now.
pub fn list(partition: Partition) -> Call {
    Call::new("ff_schedule_list", vec![names_index(partition)]).read_only()
}

/// One schedule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRecord {
    /// Its name.
    pub name: ScheduleName,
    /// Its definition.
    pub spec: ScheduleSpec,
    /// Bumped by every define, pause and resume (fires are fenced by it).
    pub rev: u64,
    /// The next fire time (server ms); `None` while paused or once ended.
    pub next_fire_ms: Option<u64>,
    /// The latest fire time decided (fired or missed).
    pub last_fire_ms: Option<u64>,
    /// The execution the latest fire made.
    pub last_execution: Option<ExecutionId>,
    /// Executions made by its fires.
    pub fired: u64,
    /// Fire times the misfire policy made nothing for.
    pub missed: u64,
    /// Fire times skipped because the previous fire's execution was live.
    pub overlapped: u64,
    /// When it was first defined (server ms).
    pub created_at_ms: u64,
    /// When its definition last changed (server ms).
    pub updated_at_ms: u64,
    /// Set when the engine found the record unusable (it no longer fires).
    pub broken: Option<String>,
    /// Server time of the read.
    pub read_at_ms: u64,
}

/// Decode `ff_schedule_get`: `None` when there is no such schedule.
pub fn decode_get(name: &ScheduleName, reply: &Reply) -> Result<Option<ScheduleRecord>, CallError> {
    let mut f = ok_fields("ff_schedule_get", reply)?;
    let read_at = non_negative(&mut f, "server time")?;
    if f.remaining() == 0 {
        return Ok(None);
    }
    let m = field_map(&mut f)?;
    Ok(Some(
        ScheduleRecord::from_fields(name.clone(), &m, read_at).map_err(|r| f.error(r))?,
    ))
}

/// Decode `ff_schedule_list`: each record of the partition, or why it does
/// not decode (malformed data is reported, not fatal to the listing).
#[allow(clippy::type_complexity)]
pub fn decode_list(
    reply: &Reply,
) -> Result<Vec<(String, Result<ScheduleRecord, String>)>, CallError> {
    let mut f = ok_fields("ff_schedule_list", reply)?;
    let read_at = non_negative(&mut f, "server time")?;
    let mut out = Vec::new();
    while f.remaining() > 0 {
        let name = f.lossy_text("name")?;
        let n = non_negative(&mut f, "field count")?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let k = f.text("field")?;
            m.insert(k, f.bytes("value")?);
        }
        let rec = ScheduleName::new(name.clone())
            .map_err(|e| e.to_string())
            .and_then(|n| ScheduleRecord::from_fields(n, &m, read_at));
        out.push((name, rec));
    }
    Ok(out)
}

fn field_map(f: &mut Fields<'_>) -> Result<BTreeMap<String, Vec<u8>>, DecodeError> {
    let mut m = BTreeMap::new();
    while f.remaining() >= 2 {
        let k = f.text("field")?;
        m.insert(k, f.bytes("value")?);
    }
    Ok(m)
}

/// Split a stored shape: netstrings, `<len>:<bytes>` one after another.
pub fn split_netstrings(mut s: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let colon = s.iter().position(|&b| b == b':')?;
        let n: usize = std::str::from_utf8(&s[..colon]).ok()?.parse().ok()?;
        let rest = &s[colon + 1..];
        if rest.len() < n {
            return None;
        }
        out.push(rest[..n].to_vec());
        s = &rest[n..];
    }
    Some(out)
}

impl ScheduleRecord {
    /// Decode a stored schedule hash.
    pub fn from_fields(
        name: ScheduleName,
        m: &BTreeMap<String, Vec<u8>>,
        read_at_ms: u64,
    ) -> Result<Self, String> {
        let text = |k: &str| -> Result<&str, String> {
            std::str::from_utf8(m.get(k).map_or(&b""[..], Vec::as_slice))
                .map_err(|_| format!("field {k} is not text"))
        };
        let num = |k: &str| -> Result<Option<u64>, String> {
            match text(k)? {
                "" => Ok(None),
                t => t
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("field {k} is not a number: {t:?}")),
            }
        };
        let count = |k: &str| num(k).map(Option::unwrap_or_default);
        let e = |err: crate::schedule::ScheduleError| err.to_string();
        let shape = split_netstrings(m.get("shape").map_or(&b""[..], Vec::as_slice))
            .ok_or("field shape is not netstrings")?;
        let payload = m.get("payload").cloned().unwrap_or_default();
        let spec = ScheduleSpec {
            trigger: Trigger::parse(text("trigger")?).map_err(e)?,
            zone: text("zone")?.to_owned(),
            start_ms: num("start")?,
            end_ms: num("end")?,
            misfire: Misfire::parse(text("misfire")?).map_err(e)?,
            grace_ms: count("grace")?,
            overlap: Overlap::parse(text("overlap")?).map_err(e)?,
            paused: text("paused")? == "1",
            template: Template::from_shape(&shape, payload).map_err(e)?,
        };
        let last_execution = match text("last_exec")? {
            "" => None,
            t => Some(ExecutionId::parse(t).map_err(|e| e.to_string())?),
        };
        Ok(Self {
            name,
            spec,
            rev: count("rev")?,
            next_fire_ms: num("next")?,
            last_fire_ms: num("last_fire")?,
            last_execution,
            fired: count("fired")?,
            missed: count("missed")?,
            overlapped: count("overlapped")?,
            created_at_ms: count("created")?,
            updated_at_ms: count("updated")?,
            broken: Some(text("broken")?.to_owned()).filter(|b| !b.is_empty()),
            read_at_ms,
        })
    }
}

/// The fields of a schedule the scanner reads to decide a fire, in this order.
pub const DUE_FIELDS: [&str; 10] = [
    "rev",
    "next",
    "trigger",
    "zone",
    "start",
    "end",
    "misfire",
    "grace",
    "paused",
    "last_fire",
];

/// One schedule's part of a fire call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireItem {
    /// Fire: applies only while the record is at `rev` with next fire time `next`.
    Fire {
        /// The schedule.
        name: String,
        /// The revision the decision read.
        rev: u64,
        /// The next fire time the decision read (the fence).
        next: u64,
        /// The latest fire time the decision covers.
        last: u64,
        /// The new next fire time (`None`: the schedule has ended).
        new_next: Option<u64>,
        /// Fire times covered that make nothing (misfire policy).
        missed: u64,
        /// Fire times to make an execution for, with the derived ids.
        fires: Vec<(u64, ExecutionId)>,
    },
    /// Put the due index right for a record that is not due as indexed:
    /// its entry follows the record's next fire time (none: out of the
    /// index; no record: out), and with `broken` (the record does not
    /// decode) the record is marked broken and leaves the index. Applies
    /// only while the record is still at `rev` (`None`: no record was found).
    Repair {
        /// The schedule (as found in the index).
        name: String,
        /// The revision read.
        rev: Option<u64>,
        /// Why the record is unusable, if it is.
        broken: Option<String>,
    },
}

impl FireItem {
    /// The schedule it is about.
    pub fn name(&self) -> &str {
        match self {
            FireItem::Fire { name, .. } | FireItem::Repair { name, .. } => name,
        }
    }
}

/// `ff_schedule_fire`: fire the due schedules of one partition.
///
/// Repeat: every item's fence (revision and next fire time) no longer holds:
/// each is answered `gone`, nothing is made twice (and the ids are derived
/// from the fire: a creation that somehow came twice would find its
/// execution there).
pub fn fire(partition: Partition, filter: &ScannerFilter, items: &[FireItem]) -> Call {
    let (tag_name, tag_value) = match &filter.instance_tag {
        Some((n, v)) => (n.as_str(), v.as_str()),
        None => ("", ""),
    };
    let mut call = Call::new("ff_schedule_fire", vec![due_index(partition)])
        .arg(filter.namespace.as_ref().map_or("", |n| n.as_str()))
        .arg(tag_name)
        .arg(tag_value)
        .arg(items.len());
    for item in items {
        call = match item {
            FireItem::Fire {
                name,
                rev,
                next,
                last,
                new_next,
                missed,
                fires,
            } => {
                let mut c = call
                    .arg("fire")
                    .arg(name)
                    .arg(rev)
                    .arg(next)
                    .arg(last)
                    .arg(opt_ms(*new_next))
                    .arg(missed)
                    .arg(fires.len());
                for (t, id) in fires {
                    c = c.arg(t).arg(id);
                }
                c
            }
            FireItem::Repair { name, rev, broken } => call
                .arg("repair")
                .arg(name)
                .arg(opt_ms(*rev))
                .arg(broken.as_deref().unwrap_or("")),
        };
    }
    call
}

/// What one fire call did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FireOutcome {
    /// Executions made.
    pub fired: u32,
    /// Fire times the misfire policy made nothing for.
    pub missed: u32,
    /// Fire times skipped because the previous fire's execution was live.
    pub overlapped: u32,
    /// The earliest next fire time left in the partition's due index.
    pub next_due_ms: Option<u64>,
    /// Items not fired as sent, with why: `gone` (the record moved on: fired
    /// by another engine, updated, paused, deleted), `filtered`, `repaired`
    /// (an index entry put right), `malformed` (a record marked broken).
    pub exceptions: Vec<(String, String)>,
}

/// Decode `ff_schedule_fire`.
pub fn decode_fire(reply: &Reply) -> Result<FireOutcome, CallError> {
    let mut f = ok_fields("ff_schedule_fire", reply)?;
    let small = |f: &mut Fields<'_>, what: &str| -> Result<u32, DecodeError> {
        let v = f.int(what)?;
        u32::try_from(v).map_err(|_| f.error(format!("{what} out of range")))
    };
    let fired = small(&mut f, "fired")?;
    let missed = small(&mut f, "missed")?;
    let overlapped = small(&mut f, "overlapped")?;
    let next = f.int("next due")?;
    let mut out = FireOutcome {
        fired,
        missed,
        overlapped,
        next_due_ms: u64::try_from(next).ok(),
        exceptions: Vec::new(),
    };
    while f.remaining() > 0 {
        let name = f.lossy_text("name")?;
        let code = f.text("code")?;
        out.exceptions.push((name, code));
    }
    Ok(out)
}

fn non_negative(f: &mut Fields<'_>, what: &str) -> Result<u64, DecodeError> {
    let v = f.int(what)?;
    u64::try_from(v).map_err(|_| f.error(format!("{what} is negative")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstrings_split_back_into_their_parts() {
        assert_eq!(
            split_netstrings(b"3:abc0:2:x:"),
            Some(vec![b"abc".to_vec(), vec![], b"x:".to_vec()])
        );
        assert_eq!(split_netstrings(b""), Some(vec![]));
        assert_eq!(split_netstrings(b"5:abc"), None);
        assert_eq!(split_netstrings(b"x:abc"), None);
    }

    #[test]
    fn a_fire_reply_decodes_with_its_exceptions() {
        let reply = Reply::Array(vec![
            Reply::Int(1),
            Reply::Int(3),
            Reply::Int(1),
            Reply::Int(0),
            Reply::Int(5000),
            Reply::bulk("nightly"),
            Reply::bulk("gone"),
        ]);
        let out = decode_fire(&reply).unwrap();
        assert_eq!((out.fired, out.missed, out.next_due_ms), (3, 1, Some(5000)));
        assert_eq!(out.exceptions, vec![("nightly".into(), "gone".into())]);
    }
}
