//! The four admission scanners, run as one pass over the budget, quota and
//! execution partitions:
//!
//! - **budget reset**: budgets whose periodic reset is due (`resets` index of
//!   each budget partition) are reset and rescheduled on their grid;
//! - **budget reconciler**: each budget's breach marker is made to match its
//!   usage against its limits (and a lost reset schedule restored);
//! - **quota reconciler**: windows trimmed; every concurrency slot holder is
//!   checked against its execution (another slot: read here, then a release
//!   fenced by the holder's epoch), so a slot held by an execution that is no
//!   longer active at that epoch — crashed worker, cancel, expiry, a worker
//!   that never released — is given back;
//! - **unblock**: blocked executions (oldest first) are re-checked against
//!   their budgets and quotas (reads on those slots), or, when blocked for
//!   their route, against the live worker registrations, and the admissible ones
//!   moved back to eligible with one single-slot call per partition. A quota
//!   lets through at most as many as it has free places, so a freed slot does
//!   not send every waiter back to be refused again.

use crate::error::Result;
use crate::store::{cmd, Store};
use ff_core::admission::{budget_key, capable, free_slots, Admission, IN_USE};
use ff_core::contract::admission::{self as ad, BlockReason};
use ff_core::keys;
use ff_core::reply::Reply;
use ff_core::{ExecutionId, Partition, PartitionConfig, PartitionFamily, QuotaId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What one pass did.
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
}

/// Most members read or acted on per partition and call.
const BATCH: u32 = 200;

/// One pass of every admission scanner; `reconcile` includes the two
/// reconcilers (they walk every budget and quota, so they run less often).
pub async fn scan_admission_once(
    store: &Arc<dyn Store>,
    config: &PartitionConfig,
    reconcile: bool,
) -> Result<AdmissionPass> {
    let mut pass = AdmissionPass::default();
    let budget_parts: Vec<Partition> = config.partitions(PartitionFamily::Budget).collect();
    let calls: Vec<_> = budget_parts
        .iter()
        .map(|p| ad::budget_resets(*p, BATCH))
        .collect();
    for r in store.fcall_many(&calls).await {
        pass.budgets_reset += ad::decode_budget_resets(&r?)?.0;
    }
    if reconcile {
        reconcile_budgets(store, &budget_parts, &mut pass).await?;
        reconcile_quotas(store, config, &mut pass).await?;
    }
    unblock(store, config, &mut pass).await?;
    Ok(pass)
}

async fn reconcile_budgets(
    store: &Arc<dyn Store>,
    parts: &[Partition],
    pass: &mut AdmissionPass,
) -> Result<()> {
    for p in parts {
        let mut cursor = "0".to_owned();
        loop {
            let r = store
                .fcall(&ad::budget_reconcile(*p, &cursor, BATCH))
                .await?;
            let (next, _, repaired) = ad::decode_budget_reconcile(&r)?;
            pass.budgets_repaired += repaired;
            if next == "0" {
                break;
            }
            cursor = next;
        }
    }
    Ok(())
}

async fn reconcile_quotas(
    store: &Arc<dyn Store>,
    config: &PartitionConfig,
    pass: &mut AdmissionPass,
) -> Result<()> {
    let mut holders = Vec::new();
    for p in config.partitions(PartitionFamily::Quota) {
        let mut cursor = "0".to_owned();
        loop {
            let r = store.fcall(&ad::quota_reconcile(p, &cursor, BATCH)).await?;
            let step = ad::decode_quota_reconcile(&r)?;
            pass.windows_trimmed += step.trimmed;
            holders.extend(step.holders);
            if step.cursor == "0" {
                break;
            }
            cursor = step.cursor;
        }
    }
    if holders.is_empty() {
        return Ok(());
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
            pass.slots_released += 1;
        }
    }
    Ok(())
}

/// A blocked execution read for re-checking.
struct Waiter {
    blocked_at: f64,
    partition: Partition,
    reason: BlockReason,
    execution: ExecutionId,
}

async fn unblock(
    store: &Arc<dyn Store>,
    config: &PartitionConfig,
    pass: &mut AdmissionPass,
) -> Result<()> {
    let mut targets = Vec::new();
    for p in config.partitions(PartitionFamily::Flow) {
        for reason in BlockReason::ALL {
            targets.push((p, reason));
        }
    }
    let reads: Vec<_> = targets
        .iter()
        .map(|(p, r)| {
            cmd([
                "ZRANGE",
                &r.index(*p),
                "0",
                &(BATCH - 1).to_string(),
                "WITHSCORES",
            ])
        })
        .collect();
    let mut waiters = Vec::new();
    for ((p, reason), r) in targets.iter().zip(store.command_many(&reads).await) {
        if let Reply::Array(items) = r? {
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
                        partition: *p,
                        reason: *reason,
                        execution,
                    });
                }
            }
        }
    }
    if waiters.is_empty() {
        return Ok(());
    }
    waiters.sort_by(|a, b| a.blocked_at.total_cmp(&b.blocked_at));
    let reads: Vec<_> = waiters
        .iter()
        .map(|w| cmd(["HGET", &keys::exec(&w.execution), "adm"]))
        .collect();
    let mut needs = Vec::with_capacity(waiters.len());
    for r in store.command_many(&reads).await {
        needs.push(Admission::parse(&r?.text().unwrap_or_default()).unwrap_or_default());
    }
    // Each budget's marker and each quota's free places, read once.
    let mut breached: HashMap<String, bool> = HashMap::new();
    let mut free: HashMap<QuotaId, u64> = HashMap::new();
    for a in &needs {
        for b in &a.budgets {
            if !breached.contains_key(b.as_str()) {
                let r = store
                    .command(&cmd(["HGET", &budget_key(config, b), "breached"]))
                    .await?;
                breached.insert(b.to_string(), r.text().as_deref() == Some("1"));
            }
        }
        for q in &a.quotas {
            if !free.contains_key(q) {
                let r = store.fcall(&ad::get_quota(config, q)).await?;
                let n = match ad::decode_get_quota(&r) {
                    Ok(rec) => free_slots(&rec.limits, rec.now_ms, &rec.admitted_at, rec.holders),
                    // No such quota: it limits nothing.
                    Err(_) => u64::MAX,
                };
                free.insert(q.clone(), n);
            }
        }
    }
    // Capable workers, read once when something waits for one.
    let live = if waiters.iter().any(|w| w.reason == BlockReason::Route) {
        ad::decode_live_workers(&store.fcall(&ad::live_workers()).await?)?
    } else {
        Vec::new()
    };
    let mut moves: BTreeMap<(u16, &'static str), (Partition, BlockReason, Vec<ExecutionId>)> =
        BTreeMap::new();
    for (w, a) in waiters.iter().zip(&needs) {
        let admissible = match w.reason {
            // (its budgets and quotas are checked when a capable worker claims it)
            BlockReason::Route => live.iter().any(|(_, have)| capable(&a.capabilities, have)),
            BlockReason::Budget | BlockReason::Quota => {
                a.budgets.iter().all(|b| !breached[b.as_str()])
                    && a.quotas.iter().all(|q| free[q] > 0)
            }
        };
        if !admissible {
            pass.still_blocked += 1;
            continue;
        }
        if w.reason != BlockReason::Route {
            for q in &a.quotas {
                if let Some(n) = free.get_mut(q) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        moves
            .entry((w.partition.index, w.reason.as_str()))
            .or_insert_with(|| (w.partition, w.reason, Vec::new()))
            .2
            .push(w.execution.clone());
    }
    let calls: Vec<_> = moves
        .values()
        .map(|(p, reason, ids)| ad::unblock(*p, *reason, ids))
        .collect();
    for r in store.fcall_many(&calls).await {
        pass.unblocked += ad::decode_unblock(&r?)?.0;
    }
    Ok(())
}

/// Run the pass every `interval` until shutdown (a pass in progress is
/// dropped: each of its calls is atomic on its own); the reconcilers every
/// tenth pass. Until [`IN_USE`] exists a pass is one `EXISTS`.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    config: PartitionConfig,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut n: u64 = 0;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let pass = async {
            let used = store.command(&cmd(["EXISTS", IN_USE])).await?;
            if used.int() != Some(1) {
                return Ok(None);
            }
            scan_admission_once(&store, &config, n % 10 == 0)
                .await
                .map(Some)
        };
        let result = tokio::select! {
            biased;
            r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { break } else { continue },
            r = pass => r,
        };
        match result {
            Ok(None) => {}
            Ok(Some(p)) => tracing::debug!(
                reset = p.budgets_reset,
                repaired = p.budgets_repaired,
                trimmed = p.windows_trimmed,
                released = p.slots_released,
                unblocked = p.unblocked,
                still_blocked = p.still_blocked,
                "admission pass"
            ),
            Err(e) => tracing::warn!(error = %e, "admission pass failed"),
        }
        n += 1;
        tokio::select! {
            biased;
            r = shutdown.changed() => if r.is_err() { break },
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
