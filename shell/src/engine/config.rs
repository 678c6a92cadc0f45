//! EngineConfig: the seed's defaults, plus what our runner adds.

use ff_core::contract::limits::{MAX_CLAIM_BATCH, MAX_LEASE_MS};
use ff_core::contract::scan::ScannerFilter;
use ff_core::PartitionConfig;
use std::time::Duration;

/// How an [`Engine`](super::Engine) runs. [`Default`] gives the seed's defaults; the `ff` command (ff-cli's `config_source`) loads one from a file, the environment and flags.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Partition counts: `None` uses those recorded in Valkey (the defaults
    /// are recorded on first start); set them only to create a deployment
    /// with other counts (refused where others are recorded).
    pub partitions: Option<PartitionConfig>,
    /// Longest sleep of each scanner (seed defaults). A scanner wakes at the
    /// earliest due time it knows of, when the data plane announces an earlier
    /// one, or after this interval; a wake-up reads only the partitions known
    /// to be due, so waking costs nothing when nothing is (the full re-read is
    /// `rescan_interval`).
    pub lease_expiry_interval: Duration,
    /// Longest sleep of the delayed promoter.
    pub delayed_promoter_interval: Duration,
    /// Longest sleep of the attempt timeout scanner.
    pub attempt_timeout_interval: Duration,
    /// Longest sleep of the execution deadline scanner.
    pub execution_deadline_interval: Duration,
    /// Longest sleep of the retention trimmer.
    pub retention_trimmer_interval: Duration,
    /// The index reconciler walks every execution once per interval.
    pub index_reconciler_interval: Duration,
    /// Queued flow work (dependency dispatch, edge and flow cancels) is taken
    /// over from the completion listener when it stays queued past its grace.
    pub flow_reconciler_interval: Duration,
    /// Waiting children are re-checked against their parents.
    pub dependency_reconciler_interval: Duration,
    /// Changed flows are recounted from their members.
    pub flow_projector_interval: Duration,
    /// Longest sleep of the budget reset scanner (it wakes when a reset is
    /// due or a new earliest one is announced).
    pub budget_reset_interval: Duration,
    /// The budget reconciler walks every budget once per interval.
    pub budget_reconciler_interval: Duration,
    /// The quota reconciler walks every quota once per interval (a crashed
    /// holder's slot is given back within about this).
    pub quota_reconciler_interval: Duration,
    /// The unblock scanner re-checks blocked executions when the data plane
    /// announces a change that may admit them; partitions still holding
    /// blocked executions are re-checked at least this often regardless.
    pub unblock_interval: Duration,
    /// The completion listener drains at most this many partitions at once.
    pub dispatch_concurrency: usize,
    /// Longest sleep of the suspension timeout scanner (a suspension past its
    /// timeout gets its timeout behaviour).
    pub suspension_timeout_interval: Duration,
    /// Longest sleep of the pending waitpoint scanner (a pending waitpoint no
    /// suspension took up in time expires).
    pub pending_waitpoint_interval: Duration,
    /// Longest sleep of the schedule scanner (it wakes at the earliest next
    /// fire time it knows of, or when an earlier one is announced).
    pub schedule_interval: Duration,
    /// Every partition's index is re-read at least this often, whatever the
    /// scanner believes it holds (the net under lost wake-up messages).
    pub rescan_interval: Duration,
    /// Most members one batch call acts on (keeps each call to a few ms).
    pub batch_size: usize,
    /// Most members one call of a sweep (the index, budget and quota
    /// reconcilers) checks: it reads several keys per member, and due work
    /// waits behind the call it is in, so its calls are kept near 1 ms.
    pub sweep_batch_size: usize,
    /// `shutdown` waits at most this long for the scanners to stop.
    pub shutdown_timeout: Duration,
    /// A scanner that panicked is restarted after this pause.
    pub restart_backoff: Duration,
    /// Which executions this engine acts on (namespace, instance tag).
    pub filter: ScannerFilter,
    /// Replicas share the partitions through leases held in Valkey; each scans
    /// only what it holds. Off: this engine scans every partition.
    pub ownership: bool,
    /// A partition lease (and a member's heartbeat) lasts this long without
    /// renewal: a replica that dies silently is replaced within about this.
    pub ownership_lease_ttl: Duration,
    /// How often a replica renews its leases and rebalances (at most a third
    /// of the lease TTL, so one lost heartbeat does not lose the leases).
    pub ownership_heartbeat: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            partitions: None,
            lease_expiry_interval: Duration::from_millis(1500),
            delayed_promoter_interval: Duration::from_millis(750),
            attempt_timeout_interval: Duration::from_secs(2),
            execution_deadline_interval: Duration::from_secs(5),
            retention_trimmer_interval: Duration::from_secs(60),
            index_reconciler_interval: Duration::from_secs(45),
            flow_reconciler_interval: Duration::from_secs(5),
            dependency_reconciler_interval: Duration::from_secs(15),
            flow_projector_interval: Duration::from_secs(15),
            budget_reset_interval: Duration::from_secs(5),
            budget_reconciler_interval: Duration::from_secs(60),
            quota_reconciler_interval: Duration::from_secs(30),
            unblock_interval: Duration::from_secs(60),
            dispatch_concurrency: 16,
            suspension_timeout_interval: Duration::from_secs(2),
            pending_waitpoint_interval: Duration::from_secs(5),
            schedule_interval: Duration::from_secs(5),
            rescan_interval: Duration::from_secs(60),
            batch_size: 200,
            sweep_batch_size: 50,
            shutdown_timeout: Duration::from_secs(15),
            restart_backoff: Duration::from_secs(1),
            filter: ScannerFilter::default(),
            ownership: true,
            ownership_lease_ttl: Duration::from_secs(6),
            ownership_heartbeat: Duration::from_secs(2),
        }
    }
}

impl EngineConfig {
    /// Check every field; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = &self.partitions {
            p.validate()?;
        }
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
            ("flow_reconciler_interval", self.flow_reconciler_interval),
            (
                "dependency_reconciler_interval",
                self.dependency_reconciler_interval,
            ),
            ("flow_projector_interval", self.flow_projector_interval),
            (
                "suspension_timeout_interval",
                self.suspension_timeout_interval,
            ),
            (
                "pending_waitpoint_interval",
                self.pending_waitpoint_interval,
            ),
            ("schedule_interval", self.schedule_interval),
            ("budget_reset_interval", self.budget_reset_interval),
            (
                "budget_reconciler_interval",
                self.budget_reconciler_interval,
            ),
            ("quota_reconciler_interval", self.quota_reconciler_interval),
            ("unblock_interval", self.unblock_interval),
            ("rescan_interval", self.rescan_interval),
            ("ownership_heartbeat", self.ownership_heartbeat),
        ] {
            if d < min {
                return Err(format!("{name} must be at least 10 ms, got {d:?}"));
            }
        }
        for (name, n) in [
            ("batch_size", self.batch_size),
            ("sweep_batch_size", self.sweep_batch_size),
        ] {
            if n == 0 || n > MAX_CLAIM_BATCH {
                return Err(format!("{name} must be in 1..={MAX_CLAIM_BATCH}, got {n}"));
            }
        }
        if self.dispatch_concurrency == 0 || self.dispatch_concurrency > 1024 {
            return Err(format!(
                "dispatch_concurrency must be in 1..=1024, got {}",
                self.dispatch_concurrency
            ));
        }
        if self.ownership_lease_ttl < self.ownership_heartbeat * 3 {
            return Err(format!(
                "ownership_lease_ttl must be at least 3 × ownership_heartbeat ({:?}), got {:?}",
                self.ownership_heartbeat * 3,
                self.ownership_lease_ttl
            ));
        }
        if self.ownership_lease_ttl.as_millis() > MAX_LEASE_MS as u128 {
            return Err(format!(
                "ownership_lease_ttl must be at most {MAX_LEASE_MS} ms, got {:?}",
                self.ownership_lease_ttl
            ));
        }
        Ok(())
    }
}
