//! The four admission scanners, as descriptions the generic runner drives
//! ([`AdmissionScan`]; the runner calls [`cycle`] for them where it would make
//! batch calls for the others):
//!
//! - **budget reset** (due-driven, budget partitions): budgets whose periodic
//!   reset is due (`resets` index) are reset and rescheduled on their grid;
//!   the data plane announces a new earliest reset (`resets {b:N} <due>`);
//! - **budget reconciler** (sweep, budget partitions): each budget's breach
//!   marker is made to match its usage against its limits (and a lost reset
//!   schedule restored);
//! - **quota reconciler** (sweep, quota partitions): windows trimmed; every
//!   concurrency slot holder is checked against its execution (another slot:
//!   read here, then a release fenced by the holder's epoch), so a slot held
//!   by an execution no longer active at that epoch — crashed worker, cancel,
//!   expiry, a worker that never released — is given back;
//! - **unblock** (event-driven, flow partitions): blocked executions (oldest
//!   first) are re-checked against their budgets and quotas (reads on those
//!   slots), or, when blocked for their route, against the live worker
//!   registrations, and the admissible ones moved back to eligible with one
//!   single-slot call per partition. A quota lets through at most as many as
//!   it has free places, so a freed slot does not send every waiter back to be
//!   refused again. A partition's blocked indexes are read only when something
//!   could have changed: an execution was blocked there (`blocked {fp:N}`), a
//!   breach cleared, a quota place freed or a worker registered (`admission -
//!   0`: every partition holding blocked executions), a rate window frees a
//!   place (its time is known), or as a fallback every `unblock_interval` for
//!   partitions known to hold blocked executions.

use crate::error::Result;
use crate::store::{cmd, Store};
use ff_core::admission::{budget_key, capable, free_slots, in_window, Admission, IN_USE};
use ff_core::contract::admission::{self as ad, BlockReason, BreachPolicy};
use ff_core::contract::Call;
use ff_core::keys;
use ff_core::reply::Reply;
use ff_core::{ExecutionId, Partition, PartitionConfig, PartitionFamily, QuotaId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// An admission scanner, as the runner's description names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdmissionScan {
    /// Due periodic budget resets.
    BudgetReset,
    /// Budget breach markers and reset schedules made right.
    BudgetReconcile,
    /// Quota windows trimmed, slots of dead holders given back.
    QuotaReconcile,
    /// Blocked executions now admissible moved back to eligible.
    Unblock,
}

impl AdmissionScan {
    /// The partitions it walks.
    pub fn family(self) -> PartitionFamily {
        match self {
            AdmissionScan::BudgetReset | AdmissionScan::BudgetReconcile => PartitionFamily::Budget,
            AdmissionScan::QuotaReconcile => PartitionFamily::Quota,
            AdmissionScan::Unblock => PartitionFamily::Flow,
        }
    }

    /// Walks every partition each interval (not driven by due times).
    pub fn is_sweep(self) -> bool {
        matches!(
            self,
            AdmissionScan::BudgetReconcile | AdmissionScan::QuotaReconcile
        )
    }

    /// The index it reads, as in wake-up messages and metric labels
    /// (`blocked`: the three blocked indexes).
    pub fn index_name(self) -> &'static str {
        match self {
            AdmissionScan::BudgetReset => "resets",
            AdmissionScan::BudgetReconcile => "budgets",
            AdmissionScan::QuotaReconcile => "quotas",
            AdmissionScan::Unblock => "blocked",
        }
    }
}

/// What one cycle did on the partitions it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Budgets reset / budgets found right / slots given back / executions unblocked.
    pub acted: u64,
    /// Budgets repaired / admissions trimmed from windows.
    pub repaired: u64,
    /// Still blocked (unblock), or names walked (reconcilers).
    pub backlog: u64,
    /// Blocked executions cancelled for a budget breached under the cancel
    /// policy (unblock; the runner counts them as acted).
    pub cancelled: u64,
    /// Per partition given (same order): when to look again (server ms).
    pub next_due: Vec<Option<u64>>,
    /// Per partition given: more is due now (a full batch was taken).
    pub again: Vec<bool>,
}

impl Outcome {
    fn new(n: usize) -> Self {
        Self {
            next_due: vec![None; n],
            again: vec![false; n],
            ..Self::default()
        }
    }
}

/// What blocked executions draw on (`adm` is written once, at create), kept
/// by the unblock scanner between cycles so a re-check of a partition whose
/// waiters it has seen costs its three index reads, not a read per waiter.
#[derive(Debug, Default)]
pub(crate) struct Needs(HashMap<ExecutionId, Admission>);

/// Entries [`Needs`] keeps at most (then it starts over).
const MAX_NEEDS: usize = 100_000;

/// Has admission ever been used here (a budget, quota or worker defined)?
/// Until then every admission cycle is this one `EXISTS`.
pub(crate) async fn in_use(store: &dyn Store) -> Result<bool> {
    Ok(store.command(&cmd(["EXISTS", IN_USE])).await?.int() == Some(1))
}

/// One cycle of `scan` over `parts`; `recheck` is how soon partitions left
/// holding blocked executions are looked at again without an announcement.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn cycle(
    scan: AdmissionScan,
    store: &Arc<dyn Store>,
    config: &PartitionConfig,
    parts: &[Partition],
    now: u64,
    batch: usize,
    recheck: Duration,
    needs: &mut Needs,
) -> Result<Outcome> {
    let batch = u32::try_from(batch.clamp(1, 1000)).unwrap_or(1000);
    match scan {
        AdmissionScan::BudgetReset => budget_reset(store, parts, batch).await,
        AdmissionScan::BudgetReconcile => reconcile_budgets(store, parts, batch).await,
        AdmissionScan::QuotaReconcile => reconcile_quotas(store, config, parts, batch).await,
        AdmissionScan::Unblock => unblock(store, config, parts, now, batch, recheck, needs).await,
    }
}

async fn budget_reset(store: &Arc<dyn Store>, parts: &[Partition], batch: u32) -> Result<Outcome> {
    let mut out = Outcome::new(parts.len());
    let calls: Vec<_> = parts.iter().map(|p| ad::budget_resets(*p, batch)).collect();
    for (i, r) in store.fcall_many(&calls).await.into_iter().enumerate() {
        let (done, next) = ad::decode_budget_resets(&r?)?;
        out.acted += u64::from(done);
        out.next_due[i] = next;
        out.again[i] = done >= batch;
    }
    Ok(out)
}

/// Walk every partition's cursor in step, one pipelined round per step,
/// until each is back at "0"; `step` reads one call's reply and returns the
/// partition's next cursor.
async fn walk_cursors(
    store: &Arc<dyn Store>,
    parts: &[Partition],
    call: impl Fn(Partition, &str) -> Call,
    mut step: impl FnMut(&Reply) -> Result<String>,
) -> Result<()> {
    let mut cursors: Vec<(Partition, String)> =
        parts.iter().map(|p| (*p, "0".to_owned())).collect();
    while !cursors.is_empty() {
        let calls: Vec<_> = cursors.iter().map(|(p, c)| call(*p, c)).collect();
        let mut next = Vec::new();
        for ((p, _), r) in cursors.iter().zip(store.fcall_many(&calls).await) {
            let cursor = step(&r?)?;
            if cursor != "0" {
                next.push((*p, cursor));
            }
        }
        cursors = next;
    }
    Ok(())
}

async fn reconcile_budgets(
    store: &Arc<dyn Store>,
    parts: &[Partition],
    batch: u32,
) -> Result<Outcome> {
    let mut out = Outcome::new(parts.len());
    let call = |p, c: &str| ad::budget_reconcile(p, c, batch);
    walk_cursors(store, parts, call, |r| {
        let (cursor, checked, repaired) = ad::decode_budget_reconcile(r)?;
        out.backlog += u64::from(checked);
        out.repaired += u64::from(repaired);
        out.acted += u64::from(checked.saturating_sub(repaired));
        Ok(cursor)
    })
    .await?;
    Ok(out)
}

async fn reconcile_quotas(
    store: &Arc<dyn Store>,
    config: &PartitionConfig,
    parts: &[Partition],
    batch: u32,
) -> Result<Outcome> {
    let mut out = Outcome::new(parts.len());
    let mut holders = Vec::new();
    let call = |p, c: &str| ad::quota_reconcile(p, c, batch);
    walk_cursors(store, parts, call, |r| {
        let step = ad::decode_quota_reconcile(r)?;
        out.repaired += u64::from(step.trimmed);
        out.backlog += step.holders.len() as u64;
        holders.extend(step.holders);
        Ok(step.cursor)
    })
    .await?;
    if holders.is_empty() {
        return Ok(out);
    }
    // A holder is live while its execution is active at the epoch it was admitted under.
    let reads: Vec<_> = holders
        .iter()
        .map(|h| cmd(["HMGET", &keys::exec(&h.execution), "phase", "epoch"]))
        .collect();
    let mut releases = Vec::new();
    for (h, r) in holders.iter().zip(store.command_many(&reads).await) {
        let (phase, epoch) = match r? {
            Reply::Array(v) => (
                v.first().and_then(Reply::text),
                v.get(1).and_then(Reply::text),
            ),
            _ => (None, None),
        };
        let live = phase.as_deref() == Some("active")
            && epoch.and_then(|e| e.parse::<u64>().ok()) == Some(h.epoch);
        if !live {
            releases.push(ad::release_slot(
                config,
                &h.quota,
                &h.execution,
                h.epoch,
                false,
            ));
        }
    }
    for r in store.fcall_many(&releases).await {
        if ad::decode_release_slot(&r?)? {
            out.acted += 1;
        }
    }
    Ok(out)
}

/// A blocked execution read for re-checking.
struct Waiter {
    blocked_at: f64,
    /// Index into the partitions given.
    slot: usize,
    reason: BlockReason,
    execution: ExecutionId,
}

/// What a quota can admit now, and when a rate window next frees a place.
struct QuotaRoom {
    free: u64,
    frees_at: Option<u64>,
}

async fn unblock(
    store: &Arc<dyn Store>,
    config: &PartitionConfig,
    parts: &[Partition],
    now: u64,
    batch: u32,
    recheck: Duration,
    cache: &mut Needs,
) -> Result<Outcome> {
    let mut out = Outcome::new(parts.len());
    let targets: Vec<(usize, BlockReason)> = (0..parts.len())
        .flat_map(|i| BlockReason::ALL.map(|r| (i, r)))
        .collect();
    let reads: Vec<_> = targets
        .iter()
        .map(|(i, r)| {
            cmd([
                "ZRANGE",
                &r.index(parts[*i]),
                "0",
                &(batch - 1).to_string(),
                "WITHSCORES",
            ])
        })
        .collect();
    let mut waiters = Vec::new();
    let mut full = vec![false; parts.len()];
    for ((i, reason), r) in targets.iter().zip(store.command_many(&reads).await) {
        if let Reply::Array(items) = r? {
            full[*i] |= items.len() / 2 >= batch as usize;
            for pair in items.chunks(2) {
                let (Some(id), Some(score)) = (
                    pair.first().and_then(Reply::text),
                    pair.get(1).and_then(Reply::text),
                ) else {
                    continue;
                };
                // A malformed entry is the index reconciler's to drop.
                if let (Ok(execution), Ok(blocked_at)) =
                    (ExecutionId::parse(&id), score.parse::<f64>())
                {
                    waiters.push(Waiter {
                        blocked_at,
                        slot: *i,
                        reason: *reason,
                        execution,
                    });
                }
            }
        }
    }
    if waiters.is_empty() {
        return Ok(out);
    }
    waiters.sort_by(|a, b| a.blocked_at.total_cmp(&b.blocked_at));
    let unknown: Vec<&ExecutionId> = waiters
        .iter()
        .map(|w| &w.execution)
        .filter(|e| !cache.0.contains_key(*e))
        .collect();
    let reads: Vec<_> = unknown
        .iter()
        .map(|e| cmd(["HGET", &keys::exec(e), "adm"]))
        .collect();
    if cache.0.len() + unknown.len() > MAX_NEEDS {
        cache.0.clear();
    }
    for (e, r) in unknown.iter().zip(store.command_many(&reads).await) {
        let a = Admission::parse(&r?.text().unwrap_or_default()).unwrap_or_default();
        cache.0.insert((*e).clone(), a);
    }
    let needs: Vec<Admission> = waiters
        .iter()
        .map(|w| cache.0.get(&w.execution).cloned().unwrap_or_default())
        .collect();
    // Each budget's marker and each quota's room, read once (pipelined).
    let budgets: BTreeMap<String, &ff_core::BudgetId> = needs
        .iter()
        .flat_map(|a| a.budgets.iter().map(|b| (b.to_string(), b)))
        .collect();
    let mut quotas: Vec<QuotaId> = needs.iter().flat_map(|a| a.quotas.clone()).collect();
    quotas.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    quotas.dedup();
    // Breached budgets, with whether their policy cancels.
    let mut breached: HashMap<String, Option<BreachPolicy>> = HashMap::new();
    let reads: Vec<_> = budgets
        .values()
        .map(|b| cmd(["HMGET", &budget_key(config, b), "breached", "on_breach"]))
        .collect();
    for (b, r) in budgets.keys().zip(store.command_many(&reads).await) {
        let state = match r? {
            Reply::Array(v) if v.first().and_then(Reply::text).as_deref() == Some("1") => Some(
                BreachPolicy::parse(v.get(1).and_then(Reply::text).as_deref()),
            ),
            _ => None,
        };
        breached.insert(b.clone(), state);
    }
    let calls: Vec<_> = quotas.iter().map(|q| ad::get_quota(config, q)).collect();
    let mut room: HashMap<QuotaId, QuotaRoom> = HashMap::new();
    for (q, r) in quotas.iter().zip(store.fcall_many(&calls).await) {
        let r = match ad::decode_get_quota(&r?) {
            Ok(rec) => {
                let inside = in_window(&rec.limits, rec.now_ms, &rec.admitted_at);
                let max = rec.limits.max_per_window as usize;
                QuotaRoom {
                    free: free_slots(&rec.limits, rec.now_ms, &rec.admitted_at, rec.holders),
                    // The admission that must leave for a place to open.
                    frees_at: (max > 0 && inside.len() >= max)
                        .then(|| inside[inside.len() - max] + rec.limits.window_ms),
                }
            }
            // No such quota: it limits nothing.
            Err(_) => QuotaRoom {
                free: u64::MAX,
                frees_at: None,
            },
        };
        room.insert(q.clone(), r);
    }
    // Capable workers, read once when something waits for one.
    let live = if waiters.iter().any(|w| w.reason == BlockReason::Route) {
        ad::decode_live_workers(&store.fcall(&ad::live_workers()).await?)?
    } else {
        Vec::new()
    };
    let fallback = now + recheck.as_millis() as u64;
    let mut moves: BTreeMap<(usize, &'static str), (BlockReason, Vec<ExecutionId>)> =
        BTreeMap::new();
    let mut cancels: BTreeMap<(usize, &'static str, String), (BlockReason, Vec<ExecutionId>)> =
        BTreeMap::new();
    // Quotas left with waiters, and the partitions they wait in.
    let mut watch: HashMap<QuotaId, Vec<usize>> = HashMap::new();
    for (w, a) in waiters.iter().zip(&needs) {
        // Whatever it waits for, a budget breached under the cancel policy ends it.
        if let Some(b) = a
            .budgets
            .iter()
            .find(|b| breached[b.as_str()] == Some(BreachPolicy::Cancel))
        {
            cancels
                .entry((w.slot, w.reason.as_str(), b.to_string()))
                .or_insert_with(|| (w.reason, Vec::new()))
                .1
                .push(w.execution.clone());
            continue;
        }
        let admissible = match w.reason {
            // (its budgets and quotas are checked when a capable worker claims it)
            BlockReason::Route => live.iter().any(|(_, have)| capable(&a.capabilities, have)),
            BlockReason::Budget | BlockReason::Quota => {
                a.budgets.iter().all(|b| breached[b.as_str()].is_none())
                    && a.quotas.iter().all(|q| room[q].free > 0)
            }
        };
        if !admissible {
            out.backlog += 1;
            if w.reason != BlockReason::Route {
                for q in a.quotas.iter().filter(|q| room[*q].free == 0) {
                    watch.entry(q.clone()).or_default().push(w.slot);
                }
            }
            // Looked at again on an announcement, when a window it waits
            // for frees a place, or at the fallback.
            let at = a
                .quotas
                .iter()
                .filter_map(|q| room[q].frees_at)
                .filter(|_| w.reason == BlockReason::Quota)
                .fold(fallback, u64::min);
            let d = &mut out.next_due[w.slot];
            *d = Some(d.map_or(at, |x| x.min(at)));
            continue;
        }
        if w.reason != BlockReason::Route {
            for q in &a.quotas {
                if let Some(r) = room.get_mut(q) {
                    r.free = r.free.saturating_sub(1);
                }
            }
        }
        moves
            .entry((w.slot, w.reason.as_str()))
            .or_insert_with(|| (w.reason, Vec::new()))
            .1
            .push(w.execution.clone());
    }
    // Those leaving their blocked index are forgotten.
    for (_, ids) in moves.values().chain(cancels.values()) {
        for id in ids {
            cache.0.remove(id);
        }
    }
    let keys: Vec<_> = moves.keys().copied().collect();
    let calls: Vec<_> = moves
        .iter()
        .map(|((i, _), (reason, ids))| ad::unblock(parts[*i], *reason, ids))
        .collect();
    for ((i, _), r) in keys.iter().zip(store.fcall_many(&calls).await) {
        out.acted += u64::from(ad::decode_unblock(&r?)?.0);
        // Beyond the batch read, more may wait behind the ones let through.
        out.again[*i] |= full[*i];
    }
    let calls: Vec<_> = cancels
        .iter()
        .filter_map(|((i, _, b), (reason, ids))| {
            let b = budgets.get(b)?;
            Some((*i, ad::breach_cancel(parts[*i], *reason, b, ids)))
        })
        .collect();
    let (slots, calls): (Vec<usize>, Vec<_>) = calls.into_iter().unzip();
    for (i, r) in slots.iter().zip(store.fcall_many(&calls).await) {
        out.cancelled += u64::from(ad::decode_breach_cancel(&r?)?.0);
        out.again[*i] |= full[*i];
    }
    // Their next release announces itself; one freed meanwhile: look again now.
    let watched: Vec<(&QuotaId, &Vec<usize>)> = watch.iter().collect();
    let calls: Vec<_> = watched
        .iter()
        .map(|(q, _)| ad::watch_quota(config, q))
        .collect();
    for ((_, waiting), r) in watched.iter().zip(store.fcall_many(&calls).await) {
        if ad::decode_watch_quota(&r?)? {
            for i in *waiting {
                out.again[*i] = true;
            }
        }
    }
    Ok(out)
}

/// What one pass of every admission scanner did ([`scan_admission_once`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdmissionPass {
    /// Budgets reset on schedule.
    pub budgets_reset: u32,
    /// Budgets whose breach marker or reset schedule was repaired.
    pub budgets_repaired: u32,
    /// Admissions that left their windows.
    pub windows_trimmed: u32,
    /// Concurrency slots given back for holders no longer live.
    pub slots_released: u32,
    /// Blocked executions moved back to eligible.
    pub unblocked: u32,
    /// Blocked executions looked at and left blocked.
    pub still_blocked: u32,
    /// Blocked executions cancelled: a budget they draw on is breached
    /// under the cancel policy.
    pub cancelled: u32,
}

/// One look by every admission scanner at every partition, outside any
/// runner (the reconcilers only with `reconcile`): for tests, tools and
/// operators, like [`super::scan_once`].
pub async fn scan_admission_once(
    store: &Arc<dyn Store>,
    config: &PartitionConfig,
    reconcile: bool,
) -> Result<AdmissionPass> {
    let now = store.time_ms().await?;
    let mut pass = AdmissionPass::default();
    let run = |scan: AdmissionScan| {
        let parts: Vec<Partition> = config.partitions(scan.family()).collect();
        async move {
            let mut needs = Needs::default();
            cycle(
                scan,
                store,
                config,
                &parts,
                now,
                200,
                Duration::ZERO,
                &mut needs,
            )
            .await
        }
    };
    let n = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    pass.budgets_reset = n(run(AdmissionScan::BudgetReset).await?.acted);
    if reconcile {
        pass.budgets_repaired = n(run(AdmissionScan::BudgetReconcile).await?.repaired);
        let q = run(AdmissionScan::QuotaReconcile).await?;
        pass.windows_trimmed = n(q.repaired);
        pass.slots_released = n(q.acted);
    }
    let u = run(AdmissionScan::Unblock).await?;
    pass.unblocked = n(u.acted);
    pass.still_blocked = n(u.backlog);
    pass.cancelled = n(u.cancelled);
    Ok(pass)
}
