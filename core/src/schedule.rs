//! Schedules: executions made on a timetable (a cron expression with seconds
//! in an IANA time zone, or a fixed interval), exactly once per fire time.
//!
//! Everything here is pure: the timetable's arithmetic takes the time as an
//! argument (server milliseconds), the misfire decision ([`decide`]) is a
//! function of the stored schedule and the time, and the id of the execution
//! a fire makes is derived from (schedule, fire time) ([`fire_execution_id`]).
//! The data plane (`lua/schedules.lua`) has no cron parser: the engine's
//! schedule scanner computes fire times here and hands them to one atomic,
//! fenced call (see [`crate::contract::schedule`]).
//!
//! Cron parsing and evaluation is the `croner` crate's (OCPS / Vixie cron,
//! optional seconds field); time zones are `chrono-tz`'s compiled IANA
//! database. Daylight saving, as croner defines it (its README, "DST
//! Handling"), on the absolute time line:
//! - a wall-clock time that does not exist (spring forward): a job at fixed
//!   hours and minutes fires at the first valid second after the gap on the
//!   same day; an interval or wildcard job's occurrences inside the gap are
//!   skipped;
//! - a wall-clock time that happens twice (fall back): a job at fixed hours
//!   and minutes fires once, at the first pass; a wildcard job fires at each
//!   matching instant of both passes (they are different instants, so
//!   different fire times).

use crate::admission::Admission;
use crate::contract::execution::CreateArgs;
use crate::contract::limits;
use crate::error::ParseError;
use crate::id::ExecutionId;
use crate::keys::IDX_PREFIX;
use crate::name::{validate_name, Kind, Lane, Namespace, TagName, MAX_NAME_LEN};
use crate::partition::{Partition, PartitionConfig, PartitionFamily};
use crate::retry::RetryPolicy;
use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use std::fmt;
use thiserror::Error;

/// The fixed part of a schedule's hash: `ff:sched:<tag>:<name>`.
pub const SCHEDULE_PREFIX: &str = "ff:sched:";

/// Most fire times one decision fires (a longer run of due fire times is
/// decided over several calls, the schedule staying due meanwhile).
pub const MAX_FIRES_PER_DECISION: usize = 100;
/// Largest `N` of [`Misfire::CatchUp`].
pub const MAX_CATCH_UP: u32 = MAX_FIRES_PER_DECISION as u32;
/// Missed fire times one decision counts one by one (a cron schedule missed
/// for longer is counted up to this; an interval is counted exactly).
pub const MAX_COUNTED_MISSES: u64 = 10_000;
/// The default misfire grace: a fire time later than this is missed.
pub const DEFAULT_GRACE_MS: u64 = 60_000;
/// The shortest misfire grace (a scan is normally a few ms late).
pub const MIN_GRACE_MS: u64 = 1_000;
/// The longest misfire grace.
pub const MAX_GRACE_MS: u64 = 24 * 3600 * 1000;
/// The shortest interval.
pub const MIN_INTERVAL_MS: u64 = 1;
/// Longest cron expression, in bytes.
pub const MAX_EXPR_LEN: usize = 256;

/// A schedule's name: 1..64 bytes of ASCII letters, digits, `-`, `_`, `.`.
/// Its partition is CRC16 of `sched:<name>`; its executions live there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScheduleName(String);

impl ScheduleName {
    /// Validate and wrap.
    pub fn new(s: impl Into<String>) -> Result<Self, ParseError> {
        let s = s.into();
        validate_name("schedule name", &s, MAX_NAME_LEN)?;
        Ok(Self(s))
    }
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The flow partition the schedule and the executions it makes live in.
    pub fn partition(&self, config: &PartitionConfig) -> Partition {
        config.partition_of(PartitionFamily::Flow, &format!("sched:{}", self.0))
    }
}

impl fmt::Display for ScheduleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A schedule's hash: `ff:sched:{fp:N}:<name>`.
pub fn record_key(partition: Partition, name: &ScheduleName) -> String {
    format!(
        "{SCHEDULE_PREFIX}{}:{}",
        partition.hash_tag(),
        name.as_str()
    )
}

/// A partition's active schedules (a sorted set), scored by their next fire
/// time (server ms): what the schedule scanner reads.
pub fn due_index(partition: Partition) -> String {
    format!("{IDX_PREFIX}{}:schedules", partition.hash_tag())
}

/// Every schedule name of a partition (a set: what a listing walks).
pub fn names_index(partition: Partition) -> String {
    format!("{IDX_PREFIX}{}:schedule_names", partition.hash_tag())
}

/// Why a schedule definition (or a preview) is refused: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {field}: {reason}")]
pub struct ScheduleError {
    /// The field at fault (`expr`, `zone`, `every`, `start`, `end`, `misfire`,
    /// `grace`, `template.<field>`, …).
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ScheduleError {
    ScheduleError {
        field,
        reason: reason.into(),
    }
}

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A cron expression: 5 fields, or 6 with seconds first (croner's syntax:
    /// `L`, `W`, `#`, names, `@daily` …), evaluated in the schedule's zone.
    Cron(String),
    /// Every this many ms: fire times are `start + k·every`, or multiples of
    /// `every` since the Unix epoch when there is no start.
    Every(u64),
}

impl Trigger {
    /// The stored form: `cron:<expr>` or `every:<ms>`.
    pub fn encode(&self) -> String {
        match self {
            Trigger::Cron(e) => format!("cron:{e}"),
            Trigger::Every(ms) => format!("every:{ms}"),
        }
    }

    /// Read the stored form.
    pub fn parse(s: &str) -> Result<Self, ScheduleError> {
        if let Some(e) = s.strip_prefix("cron:") {
            Ok(Trigger::Cron(e.to_owned()))
        } else if let Some(ms) = s.strip_prefix("every:") {
            ms.parse()
                .map(Trigger::Every)
                .map_err(|_| invalid("every", format!("{ms:?} is not a number of ms")))
        } else {
            Err(invalid(
                "trigger",
                format!("{s:?} is neither cron: nor every:"),
            ))
        }
    }
}

/// What happens to fire times the engine reached later than the grace
/// (an outage, a clock jump): "missed" fire times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misfire {
    /// Missed fire times make nothing (each is counted as missed).
    Skip,
    /// Missed fire times make one execution, for the latest of them.
    Once,
    /// The latest `N` missed fire times each make their execution (1..=100);
    /// older ones are skipped.
    CatchUp(u32),
}

impl Misfire {
    /// The stored form: `skip`, `once` or `catch_up:N`.
    pub fn encode(&self) -> String {
        match self {
            Misfire::Skip => "skip".into(),
            Misfire::Once => "once".into(),
            Misfire::CatchUp(n) => format!("catch_up:{n}"),
        }
    }

    /// Read the stored form.
    pub fn parse(s: &str) -> Result<Self, ScheduleError> {
        let m = match s {
            "skip" => Misfire::Skip,
            "once" => Misfire::Once,
            _ => match s.strip_prefix("catch_up:").map(str::parse::<u32>) {
                Some(Ok(n)) => Misfire::CatchUp(n),
                _ => {
                    return Err(invalid(
                        "misfire",
                        format!("{s:?} is not skip, once or catch_up:N"),
                    ))
                }
            },
        };
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), ScheduleError> {
        match self {
            Misfire::CatchUp(n) if *n == 0 || *n > MAX_CATCH_UP => Err(invalid(
                "misfire",
                format!("catch up {n}: expected 1..={MAX_CATCH_UP}"),
            )),
            _ => Ok(()),
        }
    }
}

/// What a fire does while the execution of the previous fire is live (not
/// terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// The fire makes nothing (counted as overlapped).
    Skip,
    /// The fire makes its execution anyway.
    Allow,
}

impl Overlap {
    /// The stored form: `skip` or `allow`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Allow => "allow",
        }
    }

    /// Read the stored form.
    pub fn parse(s: &str) -> Result<Self, ScheduleError> {
        match s {
            "skip" => Ok(Overlap::Skip),
            "allow" => Ok(Overlap::Allow),
            _ => Err(invalid("overlap", format!("{s:?} is not skip or allow"))),
        }
    }
}

/// The execution a fire makes: `ff_create`'s arguments but the id (derived
/// from the fire), the idempotency key (the derived id is one) and the flow
/// (a schedule's executions live in the schedule's partition).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Namespace.
    pub namespace: Namespace,
    /// Lane (must be registered).
    pub lane: Lane,
    /// Kind.
    pub kind: Kind,
    /// Priority (0..=1000).
    pub priority: u32,
    /// Payload.
    pub payload: Vec<u8>,
    /// Delay after the fire (ms).
    pub delay_ms: u64,
    /// Per-attempt timeout (ms, 0: none).
    pub attempt_timeout_ms: u64,
    /// Deadline from creation (ms, 0: none).
    pub deadline_ms: u64,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Lease reclaims before failing.
    pub max_reclaims: u32,
    /// Retention once terminal (ms).
    pub retention_ms: u64,
    /// Tags (each execution also gets `ff.schedule` and `ff.fire`).
    pub tags: Vec<(TagName, String)>,
    /// Budgets, quotas and capabilities.
    pub admission: Admission,
}

impl Template {
    /// The creation of one fire's execution.
    pub fn create_args(&self, execution: ExecutionId) -> CreateArgs {
        CreateArgs {
            execution,
            namespace: self.namespace.clone(),
            lane: self.lane.clone(),
            kind: self.kind.clone(),
            priority: self.priority,
            payload: self.payload.clone(),
            delay_ms: self.delay_ms,
            attempt_timeout_ms: self.attempt_timeout_ms,
            deadline_ms: self.deadline_ms,
            retry: self.retry,
            max_reclaims: self.max_reclaims,
            retention_ms: self.retention_ms,
            idempotency: None,
            tags: self.tags.clone(),
            flow: None,
            admission: self.admission.clone(),
        }
    }

    /// `ff_create`'s shape (its arguments but the id and the payload).
    pub fn shape(&self) -> Vec<Vec<u8>> {
        crate::contract::execution::shape(&self.create_args(ExecutionId::new(0, 0)))
    }

    /// Read a stored shape (and payload) back.
    pub fn from_shape(shape: &[Vec<u8>], payload: Vec<u8>) -> Result<Self, ScheduleError> {
        let text = |i: usize| -> Result<&str, ScheduleError> {
            shape
                .get(i)
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| invalid("template", format!("argument {i} missing or not text")))
        };
        let num = |i: usize| -> Result<u64, ScheduleError> {
            text(i)?
                .parse()
                .map_err(|_| invalid("template", format!("argument {i} is not a number")))
        };
        let small = |i: usize| -> Result<u32, ScheduleError> {
            u32::try_from(num(i)?)
                .map_err(|_| invalid("template", format!("argument {i} too large")))
        };
        let bad = |e: ParseError| invalid("template", e.to_string());
        let ntags = usize::try_from(num(14)?).unwrap_or(usize::MAX);
        if ntags > limits::MAX_TAGS
            || (shape.len() != 15 + 2 * ntags && shape.len() != 18 + 2 * ntags)
        {
            return Err(invalid("template", "bad tag count"));
        }
        let mut tags = Vec::with_capacity(ntags);
        for i in 0..ntags {
            tags.push((
                TagName::new(text(15 + 2 * i)?).map_err(bad)?,
                text(16 + 2 * i)?.to_owned(),
            ));
        }
        let admission = if shape.len() == 18 + 2 * ntags {
            let at = 15 + 2 * ntags;
            Admission::parse(&format!(
                "{};{};{}",
                text(at)?,
                text(at + 1)?,
                text(at + 2)?
            ))
            .map_err(bad)?
        } else {
            Admission::default()
        };
        Ok(Self {
            namespace: Namespace::new(text(0)?).map_err(bad)?,
            lane: Lane::new(text(1)?).map_err(bad)?,
            kind: Kind::new(text(2)?).map_err(bad)?,
            priority: small(3)?,
            payload,
            delay_ms: num(4)?,
            attempt_timeout_ms: num(5)?,
            deadline_ms: num(6)?,
            retry: RetryPolicy::decode(text(7)?).map_err(bad)?,
            max_reclaims: small(8)?,
            retention_ms: num(9)?,
            tags,
            admission,
        })
    }
}

/// A schedule's definition: what `define_schedule` stores.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    /// When it fires.
    pub trigger: Trigger,
    /// The IANA time zone a cron expression is read in (default `UTC`).
    pub zone: String,
    /// No fire time before this (server ms); an interval's anchor.
    pub start_ms: Option<u64>,
    /// No fire time after this (server ms).
    pub end_ms: Option<u64>,
    /// Fire times reached later than `grace_ms`.
    pub misfire: Misfire,
    /// How late a fire time may be made and still count as on time.
    pub grace_ms: u64,
    /// A fire while the previous fire's execution is live.
    pub overlap: Overlap,
    /// Defined but not firing.
    pub paused: bool,
    /// The execution each fire makes.
    pub template: Template,
}

impl ScheduleSpec {
    /// Check every field (the template's bounds included) and compile the
    /// timetable. Nothing is stored on an error.
    pub fn validate(&self) -> Result<Timetable, ScheduleError> {
        self.misfire.validate()?;
        if !(MIN_GRACE_MS..=MAX_GRACE_MS).contains(&self.grace_ms) {
            return Err(invalid(
                "grace",
                format!(
                    "{} ms is outside {MIN_GRACE_MS}..={MAX_GRACE_MS} ms",
                    self.grace_ms
                ),
            ));
        }
        validate_template(&self.template)?;
        let table = Timetable::new(&self.trigger, &self.zone, self.start_ms, self.end_ms)?;
        if table.first_at_or_after(0).is_none() && table.end.is_none() {
            return Err(invalid("expr", "never fires"));
        }
        Ok(table)
    }
}

/// The bounds `ff_create` would refuse, checked before anything is sent.
pub fn validate_template(t: &Template) -> Result<(), ScheduleError> {
    let dur = |field: &'static str, v: u64| {
        if v > limits::MAX_DURATION_MS {
            Err(invalid(
                field,
                format!("{v} ms exceeds {} ms", limits::MAX_DURATION_MS),
            ))
        } else {
            Ok(())
        }
    };
    if t.priority > limits::MAX_PRIORITY {
        return Err(invalid(
            "template.priority",
            format!("{} exceeds {}", t.priority, limits::MAX_PRIORITY),
        ));
    }
    if t.payload.len() > limits::MAX_PAYLOAD_BYTES {
        return Err(invalid(
            "template.payload",
            format!(
                "{} bytes exceed {}",
                t.payload.len(),
                limits::MAX_PAYLOAD_BYTES
            ),
        ));
    }
    dur("template.delay", t.delay_ms)?;
    dur("template.attempt_timeout", t.attempt_timeout_ms)?;
    dur("template.deadline", t.deadline_ms)?;
    dur("template.retention", t.retention_ms)?;
    t.retry
        .validate()
        .map_err(|r| invalid("template.retry", r))?;
    if t.max_reclaims > limits::MAX_RECLAIMS {
        return Err(invalid(
            "template.max_reclaims",
            format!("{} exceeds {}", t.max_reclaims, limits::MAX_RECLAIMS),
        ));
    }
    // Two tags are the schedule's own (ff.schedule, ff.fire).
    if t.tags.len() + 2 > limits::MAX_TAGS {
        return Err(invalid(
            "template.tags",
            format!("{} tags, at most {}", t.tags.len(), limits::MAX_TAGS - 2),
        ));
    }
    for (k, v) in &t.tags {
        if k.as_str().starts_with("ff.") {
            return Err(invalid(
                "template.tags",
                format!("{k}: the ff. prefix is reserved"),
            ));
        }
        if v.len() > limits::MAX_TAG_VALUE_BYTES {
            return Err(invalid(
                "template.tags",
                format!(
                    "value of {k} is longer than {} bytes",
                    limits::MAX_TAG_VALUE_BYTES
                ),
            ));
        }
    }
    Ok(())
}

/// The id of the execution a fire of `name` at `fire_ms` makes, in the
/// schedule's partition: FNV-1a 128 of (name, fire time). The same fire
/// always names the same execution, so a fire made twice creates nothing new.
pub fn fire_execution_id(partition: Partition, name: &ScheduleName, fire_ms: u64) -> ExecutionId {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u128::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    eat(b"ff-schedule\0");
    eat(name.as_str().as_bytes());
    eat(b"\0");
    eat(&fire_ms.to_be_bytes());
    ExecutionId::new(partition.index, h)
}

#[derive(Debug, Clone)]
enum Table {
    Cron(Box<croner::Cron>, Tz),
    Every { every: u64, anchor: u64 },
}

/// A compiled trigger with its zone and bounds: fire times as server ms.
#[derive(Debug, Clone)]
pub struct Timetable {
    table: Table,
    start: Option<u64>,
    end: Option<u64>,
}

/// Parse an IANA zone name (`UTC`, `Europe/Berlin`, …).
pub fn parse_zone(zone: &str) -> Result<Tz, ScheduleError> {
    zone.parse::<Tz>()
        .map_err(|_| invalid("zone", format!("{zone:?} is not an IANA time zone")))
}

/// Parse a cron expression (5 fields, or 6 with seconds first).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, ScheduleError> {
    if expr.len() > MAX_EXPR_LEN {
        return Err(invalid("expr", format!("longer than {MAX_EXPR_LEN} bytes")));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| invalid("expr", format!("{expr:?}: {e}")))
}

impl Timetable {
    /// Compile a trigger in `zone`, bounded by `start` and `end` (ms).
    pub fn new(
        trigger: &Trigger,
        zone: &str,
        start: Option<u64>,
        end: Option<u64>,
    ) -> Result<Self, ScheduleError> {
        let tz = parse_zone(zone)?;
        if let (Some(s), Some(e)) = (start, end) {
            if e < s {
                return Err(invalid("end", format!("{e} is before the start {s}")));
            }
        }
        for (field, v) in [("start", start), ("end", end)] {
            if v.is_some_and(|v| v > MAX_TIME_MS) {
                return Err(invalid(field, "after the year 4999"));
            }
        }
        let table = match trigger {
            Trigger::Cron(expr) => Table::Cron(Box::new(parse_cron(expr)?), tz),
            Trigger::Every(every) => {
                if *every < MIN_INTERVAL_MS || *every > limits::MAX_DURATION_MS {
                    return Err(invalid(
                        "every",
                        format!(
                            "{every} ms is outside {MIN_INTERVAL_MS}..={} ms",
                            limits::MAX_DURATION_MS
                        ),
                    ));
                }
                Table::Every {
                    every: *every,
                    anchor: start.unwrap_or(0),
                }
            }
        };
        Ok(Self { table, start, end })
    }

    /// The first fire time strictly after `t` (and not before the start,
    /// not after the end), if any: after a fire at `t`, the next one.
    pub fn next_after(&self, t: u64) -> Option<u64> {
        self.first_at_or_after(t.checked_add(1)?)
    }

    /// The first fire time at or after `t` (and not before the start, not
    /// after the end), if any: a schedule's first fire is
    /// `first_at_or_after(start)`, which is the start itself when the start
    /// is a fire time (0 included, which `next_after` cannot express).
    pub fn first_at_or_after(&self, t: u64) -> Option<u64> {
        let t = self.start.map_or(t, |s| t.max(s));
        let next = match t.checked_sub(1) {
            Some(before) => self.raw_after(before),
            None => self.first_at_zero(),
        };
        self.within(next)
    }

    fn raw_after(&self, t: u64) -> Option<u64> {
        match &self.table {
            Table::Every { every, anchor } => {
                if t < *anchor {
                    Some(*anchor)
                } else {
                    anchor.checked_add(((t - anchor) / every + 1).checked_mul(*every)?)
                }
            }
            Table::Cron(cron, tz) => cron_next(cron, tz, t),
        }
    }

    /// The first fire time at or after 0, with no start or a start at 0
    /// (so an interval's anchor is 0, a fire time).
    fn first_at_zero(&self) -> Option<u64> {
        match &self.table {
            Table::Every { .. } => Some(0),
            Table::Cron(cron, tz) => {
                let at = tz.timestamp_millis_opt(0).single()?;
                cron.find_next_occurrence(&at, true)
                    .ok()
                    .and_then(|d| u64::try_from(d.timestamp_millis()).ok())
            }
        }
    }

    fn within(&self, next: Option<u64>) -> Option<u64> {
        next.filter(|n| self.end.is_none_or(|e| *n <= e) && *n <= MAX_TIME_MS)
    }

    /// The last fire time strictly before `t` (and not before the start), if any.
    pub fn prev_before(&self, t: u64) -> Option<u64> {
        let t = match self.end {
            Some(e) if t > e => e.checked_add(1)?,
            _ => t,
        };
        let prev = match &self.table {
            Table::Every { every, anchor } => {
                if t <= *anchor {
                    None
                } else {
                    Some(anchor + (t - 1 - anchor) / every * every)
                }
            }
            Table::Cron(cron, tz) => cron_prev(cron, tz, t),
        };
        prev.filter(|p| self.start.is_none_or(|s| *p >= s))
    }

    /// The next `n` fire times after `t`.
    pub fn preview(&self, t: u64, n: usize) -> Vec<u64> {
        let mut out = Vec::with_capacity(n.min(1000));
        let mut at = t;
        while out.len() < n {
            match self.next_after(at) {
                Some(next) => {
                    out.push(next);
                    at = next;
                }
                None => break,
            }
        }
        out
    }

    /// How many fire times are in `[from, to]`: exact for an interval, up to
    /// `cap` for cron (counted one by one).
    fn count_between(&self, from: u64, to: u64, cap: u64) -> u64 {
        if to < from {
            return 0;
        }
        match (&self.table, self.first_at_or_after(from)) {
            (_, None) => 0,
            (_, Some(first)) if first > to => 0,
            (Table::Every { every, .. }, Some(first)) => {
                let last = self.prev_before(to.saturating_add(1)).unwrap_or(first);
                (last.saturating_sub(first)) / every + 1
            }
            (Table::Cron(..), Some(first)) => {
                let (mut n, mut at) = (1, first);
                while n < cap {
                    match self.next_after(at) {
                        Some(next) if next <= to => {
                            n += 1;
                            at = next;
                        }
                        _ => break,
                    }
                }
                n
            }
        }
    }
}

/// Fire times are kept below the year 5000 (croner's bound).
const MAX_TIME_MS: u64 = 95_617_584_000_000;

fn to_zoned(tz: &Tz, ms: u64) -> Option<chrono::DateTime<Tz>> {
    let ms = i64::try_from(ms).ok()?;
    Some(Utc.timestamp_millis_opt(ms).single()?.with_timezone(tz))
}

fn cron_next(cron: &croner::Cron, tz: &Tz, t: u64) -> Option<u64> {
    // croner works in whole seconds: search from the second holding `t`
    // and step past any answer not strictly after `t`.
    let mut at = to_zoned(tz, t - t % 1000)?;
    let mut inclusive = false;
    for _ in 0..3 {
        let next = cron.find_next_occurrence(&at, inclusive).ok()?;
        let ms = u64::try_from(next.timestamp_millis()).ok()?;
        if ms > t {
            return Some(ms);
        }
        at = next;
        inclusive = false;
    }
    None
}

fn cron_prev(cron: &croner::Cron, tz: &Tz, t: u64) -> Option<u64> {
    // The second holding `t` is before `t` when `t` is not on a second.
    let (at, inclusive) = if t % 1000 == 0 {
        (to_zoned(tz, t)?, false)
    } else {
        (to_zoned(tz, t - t % 1000)?, true)
    };
    let prev = cron.find_previous_occurrence(&at, inclusive).ok()?;
    let ms = u64::try_from(prev.timestamp_millis()).ok()?;
    (ms < t).then_some(ms)
}

/// What one decision does with a due schedule: the fire times to make
/// executions for, how many were missed (made nothing by the misfire
/// policy), the last fire time it covers, and the schedule's next fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Fire times to make an execution for, ascending.
    pub fire: Vec<u64>,
    /// Fire times covered that make nothing (the misfire policy).
    pub missed: u64,
    /// The latest fire time this decision covers (fired or missed).
    pub last: u64,
    /// The next fire time after `last` (`None`: the schedule has ended).
    /// At or before `now` when more was due than one decision fires.
    pub next: Option<u64>,
}

/// Decide what a schedule whose next fire time is `next` does at `now`
/// (server ms), under its misfire policy: `None` when nothing is due.
///
/// Fire times in `[next, now - grace)` are missed: [`Misfire`] says which of
/// them still fire. Those in `[now - grace, now]` fire, at most
/// [`MAX_FIRES_PER_DECISION`] in all; the rest stay due for the next decision.
pub fn decide(
    table: &Timetable,
    misfire: Misfire,
    grace_ms: u64,
    next: u64,
    now: u64,
) -> Option<Decision> {
    if next > now {
        return None;
    }
    let on_time_from = now.saturating_sub(grace_ms);
    let mut fire = Vec::new();
    let mut missed = 0;
    let mut last = next;
    if next < on_time_from {
        // Missed: [next, on_time_from). Which of them fire (the latest ones).
        let keep = match misfire {
            Misfire::Skip => 0,
            Misfire::Once => 1,
            Misfire::CatchUp(n) => n as usize,
        };
        let mut kept = Vec::new();
        let mut at = on_time_from;
        while kept.len() < keep {
            match table.prev_before(at) {
                Some(p) if p >= next => {
                    kept.push(p);
                    at = p;
                }
                _ => break,
            }
        }
        kept.reverse();
        let last_missed = table.prev_before(on_time_from).filter(|p| *p >= next);
        let total = table.count_between(next, on_time_from - 1, MAX_COUNTED_MISSES);
        missed = total.saturating_sub(kept.len() as u64);
        last = last_missed.unwrap_or(next);
        fire = kept;
    }
    // On time: [max(next, on_time_from), now].
    let mut at = if next >= on_time_from {
        Some(next)
    } else {
        table.next_after(on_time_from - 1)
    };
    while let Some(t) = at {
        if t > now || fire.len() >= MAX_FIRES_PER_DECISION {
            break;
        }
        fire.push(t);
        last = last.max(t);
        at = table.next_after(t);
    }
    // `at` is the first fire time not decided: `next_after(last)`, as each
    // fire time pushed is followed by the one after it, and a decision that
    // fired nothing on time looked from `on_time_from`, past every missed one.
    Some(Decision {
        fire,
        missed,
        last,
        next: at,
    })
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
