//! Per-scanner counters: updated by the runner, read by `Engine::metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Restarts after a panic of the engine's tasks that are not scanners.
#[derive(Debug, Default)]
pub(crate) struct TaskRestarts {
    pub ownership: Arc<AtomicU64>,
    pub shared_rescan: Arc<AtomicU64>,
    pub wake_listener: Arc<AtomicU64>,
    pub completion_listener: Arc<AtomicU64>,
}

impl TaskRestarts {
    /// (task, restarts) of each.
    pub fn snapshot(&self) -> [(&'static str, u64); 4] {
        [
            ("ownership", &self.ownership),
            ("shared_rescan", &self.shared_rescan),
            ("wake_listener", &self.wake_listener),
            ("completion_listener", &self.completion_listener),
        ]
        .map(|(name, c)| (name, c.load(Relaxed)))
    }
}

/// One scanner's live counters (atomics; the runner writes, anyone reads).
#[derive(Debug, Default)]
pub struct ScannerMetrics {
    /// Cycles run.
    pub cycles: AtomicU64,
    /// Members acted on.
    pub acted: AtomicU64,
    /// Index entries repaired (see [`ScannerStats::repaired`]).
    pub repaired: AtomicU64,
    /// Due members left aside.
    pub skipped: AtomicU64,
    /// Malformed entries found and removed.
    pub malformed: AtomicU64,
    /// Failed store calls and member actions.
    pub errors: AtomicU64,
    /// Restarts after a panic.
    pub restarts: AtomicU64,
    /// Duration of the last cycle, in microseconds.
    pub last_cycle_micros: AtomicU64,
    /// Due members seen in the last cycle.
    pub backlog: AtomicU64,
    /// Durations of every cycle.
    pub cycle_duration: Histogram,
}

/// A point-in-time copy of one scanner's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannerStats {
    /// The scanner's name.
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
    /// Durations of every cycle.
    pub cycle_duration: HistogramSnapshot,
}

impl ScannerMetrics {
    /// A copy of the counters, labelled `scanner`.
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
            cycle_duration: self.cycle_duration.snapshot(),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

/// Upper bounds (inclusive, in microseconds) of [`Histogram`]'s default
/// buckets: 100 µs to 10 s in 1-2.5-5 steps, then +Inf.
pub const DURATION_BUCKETS_MICROS: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// A lock-free histogram of durations with fixed buckets: recording is one
/// atomic add per field, so hot paths can record without contention.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// One count per bound, plus the overflow bucket (+Inf) last.
    counts: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new(DURATION_BUCKETS_MICROS)
    }
}

impl Histogram {
    /// A histogram with these inclusive upper bounds in microseconds
    /// (ascending; the +Inf bucket is added).
    pub fn new(bounds: &'static [u64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Count one observation.
    pub fn record(&self, d: Duration) {
        self.record_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Count one observation given in microseconds.
    pub fn record_micros(&self, micros: u64) {
        let i = self.bounds.partition_point(|&b| b < micros);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    /// A copy of the counts (each bucket read atomically; the whole is not a
    /// single instant, which is fine for monitoring).
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds_micros: self.bounds,
            counts: self.counts.iter().map(|c| c.load(Relaxed)).collect(),
            sum_micros: self.sum_micros.load(Relaxed),
        }
    }
}

/// A point-in-time copy of a [`Histogram`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Inclusive upper bounds of the finite buckets, in microseconds.
    pub bounds_micros: &'static [u64],
    /// Observations per bucket (not cumulative); one more than the bounds,
    /// the last being the +Inf bucket.
    pub counts: Vec<u64>,
    /// Sum of every observation, in microseconds.
    pub sum_micros: u64,
}

impl HistogramSnapshot {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Cumulative counts per finite bound, then the total (Prometheus' `le`).
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        let bounds = self.bounds_micros.iter().map(|&b| Some(b)).chain([None]);
        bounds.zip(self.counts.iter().scan(0u64, |acc, c| {
            *acc += c;
            Some(*acc)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_inclusive_and_cumulative() {
        let h = Histogram::new(&[10, 100]);
        for m in [0, 10, 11, 100, 101, 5_000] {
            h.record_micros(m);
        }
        let s = h.snapshot();
        assert_eq!(s.counts, vec![2, 2, 2]);
        assert_eq!(s.count(), 6);
        assert_eq!(s.sum_micros, 5_222);
        let c: Vec<_> = s.cumulative().collect();
        assert_eq!(c, vec![(Some(10), 2), (Some(100), 4), (None, 6)]);
        h.record(Duration::from_secs(u64::MAX));
        assert_eq!(h.snapshot().counts[2], 3);
    }
}
