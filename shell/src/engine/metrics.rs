//! Per-scanner counters: updated by the runner, read by `Engine::metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct ScannerMetrics {
    pub cycles: AtomicU64,
    pub acted: AtomicU64,
    pub repaired: AtomicU64,
    pub skipped: AtomicU64,
    pub malformed: AtomicU64,
    pub errors: AtomicU64,
    pub restarts: AtomicU64,
    pub last_cycle_micros: AtomicU64,
    pub backlog: AtomicU64,
}

/// A point-in-time copy of one scanner's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannerStats {
    pub scanner: &'static str,
    /// Cycles run (a cycle looks at every partition known or announced due).
    pub cycles: u64,
    /// Members acted on (for the reconciler: executions checked and consistent).
    pub acted: u64,
    /// Index entries that disagreed with their record and were repaired.
    pub repaired: u64,
    /// Due members left aside (failure backoff, another engine's filter).
    pub skipped: u64,
    /// Malformed entries found in Valkey, counted and removed from the index.
    pub malformed: u64,
    /// Failed store calls and failed member actions.
    pub errors: u64,
    /// Times the supervisor restarted the scanner after a panic.
    pub restarts: u64,
    /// Duration of the last cycle that did work, in microseconds.
    pub last_cycle_micros: u64,
    /// Due members seen in the last cycle's snapshots.
    pub backlog: u64,
}

impl ScannerMetrics {
    pub fn snapshot(&self, scanner: &'static str) -> ScannerStats {
        ScannerStats {
            scanner,
            cycles: self.cycles.load(Relaxed),
            acted: self.acted.load(Relaxed),
            repaired: self.repaired.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            errors: self.errors.load(Relaxed),
            restarts: self.restarts.load(Relaxed),
            last_cycle_micros: self.last_cycle_micros.load(Relaxed),
            backlog: self.backlog.load(Relaxed),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}
