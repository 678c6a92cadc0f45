//! The admission scanners run by hand: one look by each at every partition
//! ([`scan_admission_once`]). Their cycles are core's
//! ([`ff_core::scan::AdmissionScan`]); the engine's runner drives them like
//! every scanner.

use super::runner::cycle_once;
use crate::error::Result;
use crate::store::Store;
use ff_core::scan::{ScanWork, Settings};
use ff_core::PartitionConfig;
use std::sync::Arc;

pub use ff_core::scan::AdmissionScan;

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
    let run = |scan: AdmissionScan| {
        let settings = Settings {
            work: ScanWork::Admission(scan),
            interval_ms: 0,
            batch: 200,
            rescan_ms: u64::MAX,
            config: *config,
            filter: Default::default(),
        };
        cycle_once(store.as_ref(), settings)
    };
    let n = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    let mut pass = AdmissionPass {
        budgets_reset: n(run(AdmissionScan::BudgetReset).await?.acted),
        ..AdmissionPass::default()
    };
    if reconcile {
        pass.budgets_repaired = n(run(AdmissionScan::BudgetReconcile).await?.repaired);
        let q = run(AdmissionScan::QuotaReconcile).await?;
        pass.windows_trimmed = n(q.repaired);
        pass.slots_released = n(q.acted);
    }
    let u = run(AdmissionScan::Unblock).await?;
    pass.unblocked = n(u.acted - u.cancelled);
    pass.still_blocked = n(u.backlog);
    pass.cancelled = n(u.cancelled);
    Ok(pass)
}
