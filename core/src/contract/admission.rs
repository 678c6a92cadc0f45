//! Contracts of the admission functions (`lua/budgets.lua`, `lua/quotas.lua`,
//! `lua/blocking.lua`): budgets and
//! quotas on their own partitions, and the execution-side block/unblock.

use super::execution::Lease;
use super::{ok_fields, Call, CallError};
use crate::admission::{
    budget_key, budgets_index, quota_key, quotas_index, resets_index, QuotaLimits,
};
use crate::id::{BudgetId, ExecutionId, QuotaId};
use crate::keys;
use crate::partition::{Partition, PartitionConfig};
use crate::reply::Reply;
use std::collections::BTreeMap;

/// One dimension's limits; 0 = none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DimensionLimits {
    /// Reaching it blocks new claims (0: none).
    pub hard: u64,
    /// Reaching it is reported (0: none).
    pub soft: u64,
}

/// What a hard breach does to the executions that draw on a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BreachPolicy {
    /// They wait (blocked) until the breach clears (a reset, higher limits).
    #[default]
    Block,
    /// The pending ones are cancelled: those blocked on it (by the unblock
    /// scanner) and each one a claim hands out while it is breached (instead
    /// of blocking it). Running ones finish.
    Cancel,
}

impl BreachPolicy {
    /// As stored and passed to `ff_budget_define`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreachPolicy::Block => "block",
            BreachPolicy::Cancel => "cancel",
        }
    }

    /// As stored (`None` reads as the default, block).
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("cancel") => BreachPolicy::Cancel,
            _ => BreachPolicy::Block,
        }
    }
}

/// A budget's definition: limits per dimension, optional periodic reset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BudgetDef {
    /// Limits per dimension (tokens, cost, calls, ...).
    pub limits: BTreeMap<String, DimensionLimits>,
    /// 0: never reset.
    pub reset_every_ms: u64,
    /// What a hard breach does to the executions drawing on it.
    pub on_breach: BreachPolicy,
}

/// Create a budget or replace its limits.
///
/// Repeat: the same limits are written again (usage kept); answered `updated`
/// (false) where the first said created.
pub fn define_budget(c: &PartitionConfig, b: &BudgetId, def: &BudgetDef) -> Call {
    let mut call = Call::new("ff_budget_define", vec![budget_key(c, b)])
        .arg(b)
        .arg(def.reset_every_ms)
        .arg(def.limits.len());
    for (dim, l) in &def.limits {
        call = call.arg(dim).arg(l.hard).arg(l.soft);
    }
    call.arg(def.on_breach.as_str())
}

/// True when created, false when an existing budget's limits were replaced.
pub fn decode_define(function: &'static str, reply: &Reply) -> Result<bool, CallError> {
    let mut f = ok_fields(function, reply)?;
    match f.text("outcome")?.as_str() {
        "created" => Ok(true),
        "updated" => Ok(false),
        o => Err(f.error(format!("unknown outcome {o:?}")).into()),
    }
}

/// One usage report of one attempt; `seq` increases with each report of the attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    /// The execution the usage belongs to.
    pub execution: ExecutionId,
    /// Its attempt (each attempt has its own sequence).
    pub attempt: u32,
    /// Increases with each report of the attempt (from 1).
    pub seq: u64,
    /// Usage per dimension to add.
    pub deltas: Vec<(String, u64)>,
}

/// Add an attempt's usage to a budget, once per (execution, attempt, seq).
///
/// Repeat: answered `duplicate` (`applied: false`) with the markers now: the
/// (execution, attempt, seq) was counted once.
pub fn report_usage(c: &PartitionConfig, b: &BudgetId, r: &UsageReport) -> Call {
    let mut call = Call::new("ff_report_usage", vec![budget_key(c, b)])
        .arg(b)
        .arg(&r.execution)
        .arg(r.attempt)
        .arg(r.seq)
        .arg(r.deltas.len());
    for (dim, d) in &r.deltas {
        call = call.arg(dim).arg(d);
    }
    call
}

/// The answer to a usage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageReported {
    /// False for a repeat of a report already applied (nothing changed).
    pub applied: bool,
    /// A hard limit is reached: executions drawing on it are not admitted.
    pub breached: bool,
    /// A soft limit is reached (informational).
    pub soft_reached: bool,
}

/// Decode `ff_report_usage`.
pub fn decode_report_usage(reply: &Reply) -> Result<UsageReported, CallError> {
    let mut f = ok_fields("ff_report_usage", reply)?;
    let applied = match f.text("outcome")?.as_str() {
        "applied" => true,
        "duplicate" => false,
        o => return Err(f.error(format!("unknown outcome {o:?}")).into()),
    };
    Ok(UsageReported {
        applied,
        breached: f.int("breached")? == 1,
        soft_reached: f.int("soft")? == 1,
    })
}

/// Reset a budget's usage to zero now. `reset` identifies this reset (a
/// fresh random number per reset): the budget keeps the last one's, so the
/// same reset sent again is told from a new one.
///
/// Repeat: answered `repeat` (false) while `reset` is the budget's last reset:
/// the usage reported since is kept.
pub fn reset_budget(c: &PartitionConfig, b: &BudgetId, reset: u128) -> Call {
    Call::new("ff_budget_reset", vec![budget_key(c, b)])
        .arg(b)
        .arg(format!("{reset:032x}"))
}

/// True when the call reset the budget, false for a repeat of the last reset.
pub fn decode_reset_budget(reply: &Reply) -> Result<bool, CallError> {
    let mut f = ok_fields("ff_budget_reset", reply)?;
    match f.text("outcome")?.as_str() {
        "reset" => Ok(true),
        "repeat" => Ok(false),
        o => Err(f.error(format!("unknown outcome {o:?}")).into()),
    }
}

/// Read a budget.
///
/// Repeat: read-only: the budget as it is now.
pub fn get_budget(c: &PartitionConfig, b: &BudgetId) -> Call {
    Call::new("ff_budget_get", vec![budget_key(c, b)])
        .arg(b)
        .read_only()
}

/// A budget as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BudgetRecord {
    /// Limits per dimension.
    pub limits: BTreeMap<String, DimensionLimits>,
    /// Usage per dimension since the last reset.
    pub usage: BTreeMap<String, u64>,
    /// A hard limit is reached.
    pub breached: bool,
    /// A soft limit is reached.
    pub soft_reached: bool,
    /// Periodic reset interval (0: none).
    pub reset_every_ms: u64,
    /// When the next periodic reset is due (server ms).
    pub next_reset_ms: Option<u64>,
    /// What a hard breach does.
    pub on_breach: BreachPolicy,
}

/// Decode `ff_budget_get`.
pub fn decode_get_budget(reply: &Reply) -> Result<BudgetRecord, CallError> {
    let mut f = ok_fields("ff_budget_get", reply)?;
    let _now = f.int("server time")?;
    let mut r = BudgetRecord::default();
    while f.remaining() >= 2 {
        let k = f.text("field")?;
        let v = f.text("value")?;
        let n = || {
            v.parse::<u64>()
                .map_err(|_| f.error(format!("field {k} = {v:?} is not a number")))
        };
        if let Some(d) = k.strip_prefix("use.") {
            r.usage.insert(d.to_owned(), n()?);
        } else if let Some(d) = k.strip_prefix("hard.") {
            r.limits.entry(d.to_owned()).or_default().hard = n()?;
        } else if let Some(d) = k.strip_prefix("soft.") {
            r.limits.entry(d.to_owned()).or_default().soft = n()?;
        } else {
            match k.as_str() {
                "breached" => r.breached = v == "1",
                "soft" => r.soft_reached = v == "1",
                "every_ms" => r.reset_every_ms = n()?,
                "next_reset" => r.next_reset_ms = Some(n()?),
                "on_breach" => r.on_breach = BreachPolicy::parse(Some(&v)),
                _ => {}
            }
        }
    }
    Ok(r)
}

/// Create a quota or replace its limits.
///
/// Repeat: the same limits are written again; answered `updated` (false).
pub fn define_quota(c: &PartitionConfig, q: &QuotaId, l: &QuotaLimits) -> Call {
    Call::new("ff_quota_define", vec![quota_key(c, q)])
        .arg(q)
        .arg(l.window_ms)
        .arg(l.max_per_window)
        .arg(l.concurrency)
}

/// Admit a claimed execution: the holder is the execution at its lease epoch.
///
/// Repeat: answered `held` ([`Admitted::Yes`]): the holder's slot, or without a
/// concurrency cap its place in the window, records the first admission;
/// nothing is taken twice.
pub fn admit(c: &PartitionConfig, q: &QuotaId, lease: &Lease) -> Call {
    Call::new("ff_admit", vec![quota_key(c, q)])
        .arg(q)
        .arg(&lease.execution)
        .arg(lease.epoch)
}

/// What a quota answered for one claimed execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Admitted now (or by an earlier try of the same call), or no such quota.
    Yes,
    /// The window is full.
    Rate {
        /// When a window place frees up (server ms).
        retry_at_ms: u64,
    },
    /// Every concurrency slot is held.
    Concurrency,
}

/// Decode `ff_admit`.
pub fn decode_admit(reply: &Reply) -> Result<Admitted, CallError> {
    let mut f = ok_fields("ff_admit", reply)?;
    let outcome = f.text("outcome")?;
    let at = f.int("retry at")?;
    Ok(match outcome.as_str() {
        "admitted" | "held" | "unlimited" => Admitted::Yes,
        "rate" => Admitted::Rate {
            retry_at_ms: u64::try_from(at).map_err(|_| f.error("retry at out of range"))?,
        },
        "concurrency" => Admitted::Concurrency,
        o => return Err(f.error(format!("unknown outcome {o:?}")).into()),
    })
}

/// Give back the slot the execution holds at `epoch`; `undo` also takes its
/// admission out of the window (it was refused elsewhere and never ran).
///
/// Repeat: the slot was given back: answered false, nothing changes (an `undo`
/// does not take a second place out of the window).
pub fn release_slot(
    c: &PartitionConfig,
    q: &QuotaId,
    execution: &ExecutionId,
    epoch: u64,
    undo: bool,
) -> Call {
    Call::new("ff_quota_release", vec![quota_key(c, q)])
        .arg(q)
        .arg(execution)
        .arg(epoch)
        .arg(u8::from(undo))
}

/// True when a slot was given back.
pub fn decode_release_slot(reply: &Reply) -> Result<bool, CallError> {
    let mut f = ok_fields("ff_quota_release", reply)?;
    Ok(f.int("released")? == 1)
}

/// Read a quota with the admissions still in its window.
///
/// Repeat: read-only: the quota as it is now.
pub fn get_quota(c: &PartitionConfig, q: &QuotaId) -> Call {
    Call::new("ff_quota_get", vec![quota_key(c, q)])
        .arg(q)
        .read_only()
}

/// Executions are left blocked waiting for a place of `q`: make its next
/// release announce itself (the unblock scanner).
///
/// Repeat: sets the watch again and answers whether there is room now.
pub fn watch_quota(c: &PartitionConfig, q: &QuotaId) -> Call {
    Call::new("ff_quota_watch", vec![quota_key(c, q)]).arg(q)
}

/// True when the quota has a place now.
pub fn decode_watch_quota(reply: &Reply) -> Result<bool, CallError> {
    Ok(ok_fields("ff_quota_watch", reply)?.int("room")? == 1)
}

/// A quota as stored, with the admissions still in its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRecord {
    /// Server time of the read (ms).
    pub now_ms: u64,
    /// Its limits.
    pub limits: QuotaLimits,
    /// Executions holding a concurrency slot.
    pub holders: u64,
    /// Admission times still inside the window (ms).
    pub admitted_at: Vec<u64>,
}

/// Decode `ff_quota_get`.
pub fn decode_get_quota(reply: &Reply) -> Result<QuotaRecord, CallError> {
    let mut f = ok_fields("ff_quota_get", reply)?;
    let mut n = |what: &str| -> Result<u64, CallError> {
        let v = f.int(what)?;
        Ok(u64::try_from(v).map_err(|_| f.error(format!("{what} out of range")))?)
    };
    let now_ms = n("server time")?;
    let limits = QuotaLimits {
        window_ms: n("window")?,
        max_per_window: n("max")?,
        concurrency: n("concurrency")?,
    };
    let holders = n("holders")?;
    let mut admitted_at = Vec::new();
    while f.remaining() > 0 {
        let v = f.int("admitted at")?;
        admitted_at.push(u64::try_from(v).map_err(|_| f.error("admission time out of range"))?);
    }
    Ok(QuotaRecord {
        now_ms,
        limits,
        holders,
        admitted_at,
    })
}

/// Why an execution is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockReason {
    /// A budget it draws on is breached.
    Budget,
    /// A quota refused it (window full or every slot held).
    Quota,
    /// It needs capabilities no live worker has ([`block_route`]).
    Route,
}

impl BlockReason {
    /// Every reason, in index order.
    pub const ALL: [BlockReason; 3] = [BlockReason::Budget, BlockReason::Quota, BlockReason::Route];

    /// The reason as `ff_block` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockReason::Budget => "budget",
            BlockReason::Quota => "quota",
            BlockReason::Route => "route",
        }
    }

    /// The partition index blocked executions of this reason wait in.
    pub fn index(self, p: Partition) -> String {
        let pk = keys::PartitionKeys::new(p);
        match self {
            BlockReason::Budget => pk.blocked_budget(),
            BlockReason::Quota => pk.blocked_quota(),
            BlockReason::Route => pk.blocked_route(),
        }
    }
}

/// An eligible execution needs capabilities no live worker has: into blocked_route.
///
/// Repeat: answered false: the execution is blocked already. Moved back in
/// between by the unblock scanner, it would be blocked again and announced, so
/// the scanner looks at it again at once.
pub fn block_route(execution: &ExecutionId) -> Call {
    Call::new("ff_block_route", vec![keys::exec(execution)]).arg(execution)
}

/// True when moved, false when it was no longer eligible.
pub fn decode_block_route(reply: &Reply) -> Result<bool, CallError> {
    let mut f = ok_fields("ff_block_route", reply)?;
    match f.text("outcome")?.as_str() {
        "blocked" => Ok(true),
        "skipped" => Ok(false),
        o => Err(f.error(format!("unknown outcome {o:?}")).into()),
    }
}

/// Worker registrations: one hash, instance → `<expires ms>;<capabilities>`.
pub const WORKERS: &str = "ff:workers";

/// Register a worker instance with its capabilities, or renew it (heartbeat).
///
/// Repeat: a heartbeat: the expiry moves to the second send's time.
pub fn register_worker(instance: &str, ttl_ms: u64, capabilities: &[String]) -> Call {
    Call::new("ff_worker_register", vec![WORKERS.to_owned()])
        .arg(instance)
        .arg(ttl_ms)
        .arg(capabilities.join(","))
}

/// When the registration expires (server ms).
pub fn decode_register_worker(reply: &Reply) -> Result<u64, CallError> {
    let mut f = ok_fields("ff_worker_register", reply)?;
    let v = f.int("expires")?;
    Ok(u64::try_from(v).map_err(|_| f.error("expiry out of range"))?)
}

/// The live registrations (expired ones are dropped by the call).
///
/// Repeat: drops expired registrations (none are left) and lists the same.
pub fn live_workers() -> Call {
    Call::new("ff_workers_live", vec![WORKERS.to_owned()])
}

/// (instance, capabilities) of every live worker.
pub fn decode_live_workers(reply: &Reply) -> Result<Vec<(String, Vec<String>)>, CallError> {
    let mut f = ok_fields("ff_workers_live", reply)?;
    let mut out = Vec::new();
    while f.remaining() >= 2 {
        let inst = f.text("instance")?;
        let caps = crate::admission::parse_capabilities(&f.text("capabilities")?)
            .map_err(|e| f.error(e.to_string()))?;
        out.push((inst, caps));
    }
    Ok(out)
}

/// The claimer found the execution not admissible: its lease ends (no retry
/// used) and it waits in the blocked index. `detail` names the budget or quota.
///
/// Repeat: answered from the fence as the first was, `replayed` (decoded
/// false); same limit as [`fail`](super::execution::fail)'s.
pub fn block(lease: &Lease, reason: BlockReason, detail: &str) -> Call {
    Call::new("ff_block", vec![keys::exec(&lease.execution)])
        .arg(&lease.execution)
        .arg(&lease.id)
        .arg(lease.epoch)
        .arg(reason.as_str())
        .arg(detail)
}

/// A claimed execution draws on `budget`, breached under the cancel policy:
/// its lease ends and it ends cancelled (fenced like [`block`]).
///
/// Repeat: as [`block`]'s.
pub fn cancel_for_breach(lease: &Lease, budget: &BudgetId) -> Call {
    Call::new("ff_block", vec![keys::exec(&lease.execution)])
        .arg(&lease.execution)
        .arg(&lease.id)
        .arg(lease.epoch)
        .arg("cancel")
        .arg(budget)
}

/// True when blocked (or cancelled) by this call, false for the repeat of
/// an accepted one.
pub fn decode_block(reply: &Reply) -> Result<bool, CallError> {
    let mut f = ok_fields("ff_block", reply)?;
    match f.text("outcome")?.as_str() {
        "blocked" | "cancelled" => {}
        o => return Err(f.error(format!("unknown outcome {o:?}")).into()),
    }
    let _ = f.int("due")?;
    Ok(f.int("replayed")? == 0)
}

/// Cancel blocked executions of one partition that draw on `budget`,
/// breached under the cancel policy (the unblock scanner).
///
/// Repeat: those cancelled have left the blocked index: nothing is done, (0,
/// 0).
pub fn breach_cancel(
    p: Partition,
    reason: BlockReason,
    budget: &BudgetId,
    ids: &[ExecutionId],
) -> Call {
    ids.iter().fold(
        Call::new("ff_breach_cancel", vec![reason.index(p)]).arg(budget),
        |c, id| c.arg(id),
    )
}

/// (cancelled, stale entries dropped).
pub fn decode_breach_cancel(reply: &Reply) -> Result<(u32, u32), CallError> {
    let mut f = ok_fields("ff_breach_cancel", reply)?;
    let mut n = |what: &str| -> Result<u32, CallError> {
        let v = f.int(what)?;
        Ok(u32::try_from(v).map_err(|_| f.error(format!("{what} out of range")))?)
    };
    Ok((n("cancelled")?, n("repaired")?))
}

/// Move blocked executions (found admissible) of one partition back to eligible.
///
/// Repeat: those moved have left the blocked index: nothing is done, (0, 0).
/// One blocked again in between (claimed and refused) would be moved back once
/// more, and refused again at its next claim.
pub fn unblock(p: Partition, reason: BlockReason, ids: &[ExecutionId]) -> Call {
    let mut call = Call::new("ff_unblock", vec![reason.index(p)]);
    for id in ids {
        call = call.arg(id);
    }
    call
}

/// (moved back to eligible, stale index entries dropped).
pub fn decode_unblock(reply: &Reply) -> Result<(u32, u32), CallError> {
    let mut f = ok_fields("ff_unblock", reply)?;
    let mut n = |what: &str| -> Result<u32, CallError> {
        let v = f.int(what)?;
        Ok(u32::try_from(v).map_err(|_| f.error(format!("{what} out of range")))?)
    };
    Ok((n("moved")?, n("repaired")?))
}

/// Reset the due budgets of a budget partition (the reset scanner).
///
/// Repeat: the budgets the first send reset were rescheduled: none is due, (0,
/// next due).
pub fn budget_resets(p: Partition, limit: u32) -> Call {
    Call::new("ff_budget_resets", vec![resets_index(p)]).arg(limit)
}

/// (budgets reset, next due ms).
pub fn decode_budget_resets(reply: &Reply) -> Result<(u32, Option<u64>), CallError> {
    let mut f = ok_fields("ff_budget_resets", reply)?;
    let done = u32::try_from(f.int("reset")?).map_err(|_| f.error("count out of range"))?;
    Ok((done, u64::try_from(f.int("next due")?).ok()))
}

/// One SSCAN step of the budget reconciler over a budget partition.
///
/// Repeat: the same step again: its repairs are made once, so it answers the
/// same cursor with fewer repaired.
pub fn budget_reconcile(p: Partition, cursor: &str, count: u32) -> Call {
    Call::new("ff_budget_reconcile", vec![budgets_index(p)])
        .arg(cursor)
        .arg(count)
}

/// (next cursor, checked, repaired).
pub fn decode_budget_reconcile(reply: &Reply) -> Result<(String, u32, u32), CallError> {
    let mut f = ok_fields("ff_budget_reconcile", reply)?;
    let cursor = f.text("cursor")?;
    let mut n = |what: &str| -> Result<u32, CallError> {
        let v = f.int(what)?;
        Ok(u32::try_from(v).map_err(|_| f.error(format!("{what} out of range")))?)
    };
    Ok((cursor, n("checked")?, n("repaired")?))
}

/// One SSCAN step of the quota reconciler over a quota partition.
///
/// Repeat: the same step again: windows are trimmed already; the same cursor
/// and holders.
pub fn quota_reconcile(p: Partition, cursor: &str, count: u32) -> Call {
    Call::new("ff_quota_reconcile", vec![quotas_index(p)])
        .arg(cursor)
        .arg(count)
}

/// A concurrency slot holder: the execution at the lease epoch it was admitted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The quota whose slot it holds.
    pub quota: QuotaId,
    /// The execution holding it.
    pub execution: ExecutionId,
    /// The lease epoch it was admitted under.
    pub epoch: u64,
}

/// One step of the quota reconciler's walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaReconcileStep {
    /// Where the walk continues (`0`: done).
    pub cursor: String,
    /// Admissions that left their windows.
    pub trimmed: u32,
    /// Every slot holder of the quotas of this step.
    pub holders: Vec<Holder>,
}

/// Decode `ff_quota_reconcile`.
pub fn decode_quota_reconcile(reply: &Reply) -> Result<QuotaReconcileStep, CallError> {
    let mut f = ok_fields("ff_quota_reconcile", reply)?;
    let cursor = f.text("cursor")?;
    let trimmed = u32::try_from(f.int("trimmed")?).map_err(|_| f.error("trimmed out of range"))?;
    let mut holders = Vec::new();
    while f.remaining() >= 3 {
        let quota = QuotaId::parse(&f.text("quota")?).map_err(|e| f.error(e.to_string()))?;
        let execution =
            ExecutionId::parse(&f.text("holder")?).map_err(|e| f.error(e.to_string()))?;
        let epoch = f
            .text("epoch")?
            .parse::<u64>()
            .map_err(|_| f.error("epoch is not a number"))?;
        holders.push(Holder {
            quota,
            execution,
            epoch,
        });
    }
    Ok(QuotaReconcileStep {
        cursor,
        trimmed,
        holders,
    })
}
