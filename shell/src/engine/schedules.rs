//! The schedule scanner outside any runner: one cycle over every partition,
//! for tests, tools and operators (the engine's runner drives the same cycle,
//! `ff_core::scan::ScanWork::Schedules`).

use super::runner::cycle_once;
use crate::error::Result;
use crate::store::Store;
use ff_core::contract::scan::ScannerFilter;
use ff_core::scan::{CycleReport, ScanWork, Settings};
use ff_core::PartitionConfig;

/// Fire every due schedule once (as the engine's scanner would at this
/// server time), looping while more is due. `acted` counts the executions
/// made. Fails with the first failure the cycle met.
pub async fn fire_schedules_once(
    store: &dyn Store,
    config: &PartitionConfig,
    filter: &ScannerFilter,
) -> Result<CycleReport> {
    cycle_once(
        store,
        Settings {
            work: ScanWork::Schedules,
            interval_ms: 0,
            batch: 200,
            rescan_ms: u64::MAX,
            config: *config,
            filter: filter.clone(),
        },
    )
    .await
}
