//! EngineConfig: the seed's defaults, plus what our runner adds.

use ff_core::contract::limits::MAX_CLAIM_BATCH;
use ff_core::contract::scan::ScannerFilter;
use ff_core::PartitionConfig;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub partitions: PartitionConfig,
    /// Longest sleep of each scanner (seed defaults). A scanner wakes at the
    /// earliest due time it knows of, when the data plane announces an earlier
    /// one, or after this interval; a wake-up reads only the partitions known
    /// to be due, so waking costs nothing when nothing is (the full re-read is
    /// `rescan_interval`).
    pub lease_expiry_interval: Duration,
    pub delayed_promoter_interval: Duration,
    pub attempt_timeout_interval: Duration,
    pub execution_deadline_interval: Duration,
    pub retention_trimmer_interval: Duration,
    /// The index reconciler walks every execution once per interval.
    pub index_reconciler_interval: Duration,
    pub suspension_timeout_interval: Duration,
    pub pending_waitpoint_interval: Duration,
    /// Every partition's index is re-read at least this often, whatever the
    /// scanner believes it holds (the net under lost wake-up messages).
    pub rescan_interval: Duration,
    /// Most members one batch call acts on (keeps each call to a few ms).
    pub batch_size: usize,
    /// `shutdown` waits at most this long for the scanners to stop.
    pub shutdown_timeout: Duration,
    /// A scanner that panicked is restarted after this pause.
    pub restart_backoff: Duration,
    pub filter: ScannerFilter,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            partitions: PartitionConfig::default(),
            lease_expiry_interval: Duration::from_millis(1500),
            delayed_promoter_interval: Duration::from_millis(750),
            attempt_timeout_interval: Duration::from_secs(2),
            execution_deadline_interval: Duration::from_secs(5),
            retention_trimmer_interval: Duration::from_secs(60),
            index_reconciler_interval: Duration::from_secs(45),
            suspension_timeout_interval: Duration::from_secs(2),
            pending_waitpoint_interval: Duration::from_secs(5),
            rescan_interval: Duration::from_secs(60),
            batch_size: 200,
            shutdown_timeout: Duration::from_secs(15),
            restart_backoff: Duration::from_secs(1),
            filter: ScannerFilter::default(),
        }
    }
}

impl EngineConfig {
    /// Check every field; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        self.partitions.validate()?;
        let min = Duration::from_millis(10);
        for (name, d) in [
            ("lease_expiry_interval", self.lease_expiry_interval),
            ("delayed_promoter_interval", self.delayed_promoter_interval),
            ("attempt_timeout_interval", self.attempt_timeout_interval),
            (
                "execution_deadline_interval",
                self.execution_deadline_interval,
            ),
            (
                "retention_trimmer_interval",
                self.retention_trimmer_interval,
            ),
            ("index_reconciler_interval", self.index_reconciler_interval),
            (
                "suspension_timeout_interval",
                self.suspension_timeout_interval,
            ),
            (
                "pending_waitpoint_interval",
                self.pending_waitpoint_interval,
            ),
            ("rescan_interval", self.rescan_interval),
        ] {
            if d < min {
                return Err(format!("{name} must be at least 10 ms, got {d:?}"));
            }
        }
        if self.batch_size == 0 || self.batch_size > MAX_CLAIM_BATCH {
            return Err(format!(
                "batch_size must be in 1..={MAX_CLAIM_BATCH}, got {}",
                self.batch_size
            ));
        }
        Ok(())
    }
}
