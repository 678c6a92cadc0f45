//! Schedules on [`Client`]: define (create or update), pause, resume,
//! delete, read, list and preview. The engine's schedule scanner fires them
//! (exactly once per fire time: `ff_core::contract::schedule`).

use super::Client;
use crate::error::{Error, Result};
use crate::ExecutionSpec;
use ff_core::admission::{self, Admission};
use ff_core::contract::schedule::{self as sc, Defined, Resumed, ScheduleRecord};
use ff_core::schedule::{
    validate_template, Misfire, Overlap, ScheduleError, ScheduleName, ScheduleSpec, Template,
    Timetable, Trigger, DEFAULT_GRACE_MS,
};
use ff_core::{BudgetId, Kind, Lane, Namespace, PartitionFamily, QuotaId, TagName};
use std::time::Duration;

/// Calls a define or resume makes when its next fire time keeps losing the
/// race with a fire (each recomputes from the last fire time decided).
const MAX_STALE_RETRIES: usize = 5;

/// A schedule's definition, as a caller writes it: when it fires, and the
/// execution each fire makes. Defaults: zone `UTC`, no start or end, misfire
/// [`Misfire::Once`] with a 60 s grace, overlap [`Overlap::Allow`], active.
///
/// ```
/// use ff_engine::client::Schedule;
/// use ff_engine::core::schedule::{Misfire, Overlap};
/// use ff_engine::ExecutionSpec;
///
/// let nightly = Schedule::cron("0 30 2 * * *")          // 02:30:00 every day
///     .zone("Europe/Berlin")
///     .misfire(Misfire::Skip)
///     .overlap(Overlap::Skip)
///     .template(ExecutionSpec::new("report.nightly").lane("reports"));
/// ```
#[derive(Debug, Clone)]
pub struct Schedule {
    /// When it fires.
    pub trigger: Trigger,
    /// The IANA zone a cron expression is read in.
    pub zone: String,
    /// No fire time before this (Unix ms); an interval's anchor.
    pub start_ms: Option<u64>,
    /// No fire time after this (Unix ms).
    pub end_ms: Option<u64>,
    /// Fire times reached later than the grace.
    pub misfire: Misfire,
    /// How late a fire time may be made and still be on time.
    pub grace: Duration,
    /// A fire while the previous fire's execution is live.
    pub overlap: Overlap,
    /// Defined but not firing.
    pub paused: bool,
    /// The execution each fire makes (no idempotency key, flow or id: the
    /// fire names its execution).
    pub template: ExecutionSpec,
}

impl Schedule {
    fn new(trigger: Trigger) -> Self {
        Self {
            trigger,
            zone: "UTC".into(),
            start_ms: None,
            end_ms: None,
            misfire: Misfire::Once,
            grace: Duration::from_millis(DEFAULT_GRACE_MS),
            overlap: Overlap::Allow,
            paused: false,
            template: ExecutionSpec::new("scheduled"),
        }
    }

    /// Fire on a cron expression: 5 fields, or 6 with seconds first.
    pub fn cron(expr: impl Into<String>) -> Self {
        Self::new(Trigger::Cron(expr.into()))
    }

    /// Fire every `every`: at multiples of it since the Unix epoch, or since
    /// the start when there is one.
    pub fn every(every: Duration) -> Self {
        Self::new(Trigger::Every(
            u64::try_from(every.as_millis()).unwrap_or(u64::MAX),
        ))
    }

    /// Read the cron expression in this IANA zone.
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = zone.into();
        self
    }
    /// No fire time before `ms` (Unix ms).
    pub fn start_at_ms(mut self, ms: u64) -> Self {
        self.start_ms = Some(ms);
        self
    }
    /// No fire time after `ms` (Unix ms).
    pub fn end_at_ms(mut self, ms: u64) -> Self {
        self.end_ms = Some(ms);
        self
    }
    /// What happens to missed fire times.
    pub fn misfire(mut self, m: Misfire) -> Self {
        self.misfire = m;
        self
    }
    /// How late a fire time may be made and still be on time.
    pub fn grace(mut self, d: Duration) -> Self {
        self.grace = d;
        self
    }
    /// What a fire does while the previous one's execution is live.
    pub fn overlap(mut self, o: Overlap) -> Self {
        self.overlap = o;
        self
    }
    /// Define it paused.
    pub fn paused(mut self, p: bool) -> Self {
        self.paused = p;
        self
    }
    /// The execution each fire makes.
    pub fn template(mut self, t: ExecutionSpec) -> Self {
        self.template = t;
        self
    }

    /// Check it into core's definition (every field; nothing is sent).
    pub fn into_spec(self) -> Result<(ScheduleSpec, Timetable)> {
        let t = self.template;
        let field = |field: &'static str| {
            move |e: ff_core::ParseError| Error::Invalid {
                field,
                reason: e.to_string(),
            }
        };
        let invalid = |field: &'static str, reason: &str| Error::Invalid {
            field,
            reason: reason.to_owned(),
        };
        if t.idempotency.is_some() {
            return Err(invalid(
                "template.idempotency",
                "a fire names its own execution: no idempotency key",
            ));
        }
        if t.flow.is_some() {
            return Err(invalid("template.flow", "a schedule makes no flow members"));
        }
        if t.id.is_some() {
            return Err(invalid("template.id", "a fire names its own execution"));
        }
        let ms = |field: &'static str, d: Duration| {
            u64::try_from(d.as_millis()).map_err(|_| invalid(field, "too long"))
        };
        if t.budgets.len() > admission::MAX_PER_EXECUTION
            || t.quotas.len() > admission::MAX_PER_EXECUTION
        {
            return Err(invalid("template.admission", "too many budgets or quotas"));
        }
        let template = Template {
            namespace: Namespace::new(t.namespace).map_err(field("template.namespace"))?,
            lane: Lane::new(t.lane).map_err(field("template.lane"))?,
            kind: Kind::new(t.kind).map_err(field("template.kind"))?,
            priority: t.priority,
            payload: t.payload,
            delay_ms: ms("template.delay", t.delay)?,
            attempt_timeout_ms: t
                .attempt_timeout
                .map(|d| ms("template.attempt_timeout", d))
                .transpose()?
                .unwrap_or(0),
            deadline_ms: t
                .deadline
                .map(|d| ms("template.deadline", d))
                .transpose()?
                .unwrap_or(0),
            retry: t.retry,
            max_reclaims: t.max_reclaims,
            retention_ms: ms("template.retention", t.retention)?,
            tags: t
                .tags
                .into_iter()
                .map(|(k, v)| Ok((TagName::new(k).map_err(field("template.tags"))?, v)))
                .collect::<Result<_>>()?,
            admission: Admission {
                budgets: t
                    .budgets
                    .iter()
                    .map(|b| BudgetId::parse(b))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(field("template.budgets"))?,
                quotas: t
                    .quotas
                    .iter()
                    .map(|q| QuotaId::parse(q))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(field("template.quotas"))?,
                capabilities: t
                    .capabilities
                    .iter()
                    .map(|c| {
                        admission::parse_capabilities(c).and_then(|v| {
                            v.into_iter()
                                .next()
                                .ok_or(ff_core::ParseError::Empty { kind: "capability" })
                        })
                    })
                    .collect::<std::result::Result<_, _>>()
                    .map_err(field("template.capabilities"))?,
            },
        };
        validate_template(&template).map_err(schedule_error)?;
        let spec = ScheduleSpec {
            trigger: self.trigger,
            zone: self.zone,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            misfire: self.misfire,
            grace_ms: ms("grace", self.grace)?,
            overlap: self.overlap,
            paused: self.paused,
            template,
        };
        let table = spec.validate().map_err(schedule_error)?;
        Ok((spec, table))
    }
}

fn schedule_error(e: ScheduleError) -> Error {
    Error::Invalid {
        field: e.field,
        reason: e.reason,
    }
}

/// The first fire time after both `now` and the last fire time decided.
fn next_fire(table: &Timetable, now: u64, last_fire: Option<u64>) -> Option<u64> {
    table.next_after(now.max(last_fire.unwrap_or(0)))
}

impl Client {
    /// Create the schedule `name`, or replace its definition (an update
    /// takes effect from its next fire: the first fire time of the new
    /// definition after now; a fire time of the old one that was due and not
    /// yet fired is dropped). Everything is checked first: a bad field is
    /// refused with [`Error::Invalid`] naming it (`expr`, `zone`, `every`,
    /// `template.lane`, …) and nothing is stored.
    pub async fn define_schedule(&self, name: &str, schedule: Schedule) -> Result<Defined> {
        let name = ScheduleName::new(name)?;
        let (spec, table) = schedule.into_spec()?;
        match self.check_lane(&spec.template.lane).await {
            Err(Error::Rejected(ff_core::FfError::UnknownLane(l))) => {
                return Err(Error::Invalid {
                    field: "template.lane",
                    reason: format!("lane {l:?} is not registered"),
                })
            }
            r => r?,
        }
        if spec.template.admission.needs_admission() {
            self.mark_in_use().await?;
        }
        let mut last = None;
        for _ in 0..MAX_STALE_RETRIES {
            let now = self.store.time_ms().await?;
            let next = if spec.paused {
                None
            } else {
                next_fire(&table, now, last)
            };
            let reply = self
                .call(&sc::define(&self.config, &name, &spec, next))
                .await?;
            match sc::decode_define(&reply)? {
                Defined::Stale(l) => last = Some(l),
                d => {
                    tracing::debug!(schedule = %name, outcome = ?d, next, "define_schedule");
                    return Ok(d);
                }
            }
        }
        Err(Error::Cycle(format!(
            "schedule {name}: the next fire time kept falling behind the fires"
        )))
    }

    /// Stop a schedule firing until [`Client::resume_schedule`]. True when
    /// this call paused it (false: paused already).
    pub async fn pause_schedule(&self, name: &str) -> Result<bool> {
        let name = ScheduleName::new(name)?;
        Ok(sc::decode_pause(
            &self.call(&sc::pause(&self.config, &name)).await?,
        )?)
    }

    /// Fire a paused schedule again, from its first fire time after now
    /// (fire times while it was paused make nothing). True when this call
    /// resumed it (false: it was active).
    pub async fn resume_schedule(&self, name: &str) -> Result<bool> {
        let parsed = ScheduleName::new(name)?;
        for _ in 0..MAX_STALE_RETRIES {
            let Some(rec) = self.get_schedule(name).await? else {
                return Err(ff_core::FfError::NotFound.into());
            };
            if !rec.spec.paused {
                return Ok(false);
            }
            let table = rec.spec.validate().map_err(schedule_error)?;
            let next = next_fire(&table, rec.read_at_ms, rec.last_fire_ms);
            let call = sc::resume(&self.config, &parsed, rec.rev, next);
            match sc::decode_resume(&self.call(&call).await?)? {
                Resumed::Resumed => return Ok(true),
                Resumed::Active => return Ok(false),
                Resumed::Stale => continue,
            }
        }
        Err(Error::Cycle(format!(
            "schedule {name}: changed under every resume"
        )))
    }

    /// Delete a schedule (the executions it made stay). True when this call
    /// deleted it.
    pub async fn delete_schedule(&self, name: &str) -> Result<bool> {
        let name = ScheduleName::new(name)?;
        Ok(sc::decode_delete(
            &self.call(&sc::delete(&self.config, &name)).await?,
        )?)
    }

    /// One schedule as stored (`None`: no such schedule).
    pub async fn get_schedule(&self, name: &str) -> Result<Option<ScheduleRecord>> {
        let name = ScheduleName::new(name)?;
        Ok(sc::decode_get(
            &name,
            &self.call(&sc::get(&self.config, &name)).await?,
        )?)
    }

    /// Every schedule, by name, with its next fire time. A record that does
    /// not decode (damaged data) is logged and left out.
    pub async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>> {
        let calls: Vec<_> = self
            .config
            .partitions(PartitionFamily::Flow)
            .map(sc::list)
            .collect();
        let mut out = Vec::new();
        for reply in self.store.fcall_many(&calls).await {
            for (name, rec) in sc::decode_list(&reply?)? {
                match rec {
                    Ok(r) => out.push(r),
                    Err(reason) => {
                        tracing::warn!(schedule = %name, %reason, "skipping a schedule record that does not decode")
                    }
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The next `n` fire times (Unix ms) of a trigger in `zone`, after the
    /// server's now (nothing is stored).
    pub async fn preview_schedule(
        &self,
        trigger: &Trigger,
        zone: &str,
        n: usize,
    ) -> Result<Vec<u64>> {
        let table = Timetable::new(trigger, zone, None, None).map_err(schedule_error)?;
        let now = self.store.time_ms().await?;
        Ok(table.preview(now, n))
    }
}
