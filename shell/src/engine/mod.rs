//! The engine: the background half of ff. Scanners act when something becomes
//! due (a lease expired, a delay elapsed, a timeout or deadline hit, retention
//! ran out) and a reconciler repairs index drift; a supervisor restarts a
//! scanner that panicked; shutdown is bounded.

pub mod admission;
pub mod config;
mod heads;
mod listener;
pub mod metrics;
#[cfg(not(madsim))]
pub mod metrics_http;
mod ownership;
pub mod prometheus;
pub mod runner;
mod schedules;
mod supervisor;
mod wake;

pub use admission::{scan_admission_once, AdmissionPass, AdmissionScan};
pub use config::EngineConfig;
use futures::future::BoxFuture;
use listener::ListenerMetrics;
pub use listener::ListenerStats;
use metrics::TaskRestarts;
pub use metrics::{Histogram, HistogramSnapshot, ScannerMetrics, ScannerStats};
pub use runner::{scan_once, ScanWork, ScannerSpec};
pub use schedules::fire_schedules_once;

use crate::error::{Error, Result};
use crate::store::Store;
use ff_core::contract::scan::BatchFunction;
use runner::{Runner, Wake};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;

/// The scanners of this engine, as data.
pub fn scanners(config: &EngineConfig) -> Vec<ScannerSpec> {
    use AdmissionScan::*;
    use BatchFunction::*;
    use ScanWork::{Admission, Batch};
    vec![
        ScannerSpec {
            name: "lease_expiry",
            work: Batch(ReclaimExpired),
            interval: config.lease_expiry_interval,
        },
        ScannerSpec {
            name: "delayed_promoter",
            work: Batch(PromoteDelayed),
            interval: config.delayed_promoter_interval,
        },
        ScannerSpec {
            name: "attempt_timeout",
            work: Batch(ExpireAttempts),
            interval: config.attempt_timeout_interval,
        },
        ScannerSpec {
            name: "execution_deadline",
            work: Batch(ExpireDeadlines),
            interval: config.execution_deadline_interval,
        },
        ScannerSpec {
            name: "retention_trimmer",
            work: Batch(PurgeRetained),
            interval: config.retention_trimmer_interval,
        },
        ScannerSpec {
            name: "index_reconciler",
            work: Batch(ReconcileIndexes),
            interval: config.index_reconciler_interval,
        },
        ScannerSpec {
            name: "flow_reconciler",
            work: Batch(ReconcileFlowWork),
            interval: config.flow_reconciler_interval,
        },
        ScannerSpec {
            name: "dependency_reconciler",
            work: Batch(ReconcileDependencies),
            interval: config.dependency_reconciler_interval,
        },
        ScannerSpec {
            name: "flow_projector",
            work: Batch(ProjectFlows),
            interval: config.flow_projector_interval,
        },
        ScannerSpec {
            name: "suspension_timeout",
            work: Batch(ExpireSuspensions),
            interval: config.suspension_timeout_interval,
        },
        ScannerSpec {
            name: "pending_waitpoint_expiry",
            work: Batch(ExpireWaitpoints),
            interval: config.pending_waitpoint_interval,
        },
        ScannerSpec {
            name: "schedules",
            work: ScanWork::Schedules,
            interval: config.schedule_interval,
        },
        ScannerSpec {
            name: "budget_reset",
            work: Admission(BudgetReset),
            interval: config.budget_reset_interval,
        },
        ScannerSpec {
            name: "budget_reconciler",
            work: Admission(BudgetReconcile),
            interval: config.budget_reconciler_interval,
        },
        ScannerSpec {
            name: "quota_reconciler",
            work: Admission(QuotaReconcile),
            interval: config.quota_reconciler_interval,
        },
        ScannerSpec {
            name: "unblock",
            work: Admission(Unblock),
            interval: config.unblock_interval,
        },
    ]
}

/// A running engine. Dropping it without [`Engine::shutdown`] stops its tasks
/// too (they see the signal channel close), just without waiting for them.
///
/// Start it beside a client, watch the delayed promoter make a delayed
/// execution eligible on time, read its counters, stop it:
///
/// ```
/// use ff_engine::core::state::PublicState;
/// use ff_engine::store::{MemoryStore, Store};
/// use ff_engine::{Client, Engine, EngineConfig, ExecutionSpec};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// let client = Client::new(store.clone()).await?;
/// let engine = Engine::start(EngineConfig::default(), store).await?;
///
/// let spec = ExecutionSpec::new("reminder").delay(Duration::from_millis(50));
/// let id = client.create(spec).await?.execution;
/// while client.get(&id).await?.public_state != PublicState::Waiting {
///     tokio::time::sleep(Duration::from_millis(10)).await;
/// }
/// let promoter = engine.metrics().into_iter().find(|s| s.scanner == "delayed_promoter");
/// assert_eq!(promoter.map(|s| s.acted), Some(1));
/// assert!(engine.shutdown().await, "stopped within the bound");
/// # Ok(())
/// # }
/// ```
pub struct Engine {
    shutdown_tx: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
    /// (scanner, the index it reads, its counters).
    metrics: Vec<(&'static str, &'static str, Arc<ScannerMetrics>)>,
    listener: Arc<ListenerMetrics>,
    /// Restarts of the tasks that are not scanners.
    tasks: Arc<TaskRestarts>,
    shutdown_timeout: Duration,
    /// This replica's member id and what it holds (ownership on).
    ownership: Option<(String, ownership::Subscriber)>,
    partition_count: u16,
}

impl Engine {
    /// Check the configuration against the store (the partition counts
    /// recorded at first start must match), then start every scanner and the
    /// wake-up listener; returns once they are running.
    pub async fn start(config: EngineConfig, store: Arc<dyn Store>) -> Result<Self> {
        config.validate().map_err(|reason| Error::Invalid {
            field: "engine config",
            reason,
        })?;
        let partitions =
            crate::client::resolve_partitions(store.as_ref(), config.partitions.as_ref()).await?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut handles = Vec::new();
        let tasks = Arc::new(TaskRestarts::default());
        let ownership = config.ownership.then(|| {
            let settings = ownership::Settings {
                // Engines with another filter act on other executions: they
                // split the partitions in a ring of their own.
                ring: ff_core::contract::ownership::Ring::of(&config.filter),
                member: ownership::new_member_id(),
                partitions: partitions.flow_partitions,
                lease_ttl: config.ownership_lease_ttl,
                heartbeat: config.ownership_heartbeat,
            };
            let member = settings.member.clone();
            let (tx, rx) = ownership::channel(ownership::Owned::nothing(settings.partitions));
            let make = {
                let (store, tx, shutdown) = (store.clone(), tx.clone(), shutdown_rx.clone());
                move || -> BoxFuture<'static, ()> {
                    let (store, s, tx, sd) = (
                        store.clone(),
                        settings.clone(),
                        tx.clone(),
                        shutdown.clone(),
                    );
                    Box::pin(ownership::maintain(store, s, tx, sd))
                }
            };
            handles.push(supervisor::supervise(
                "ownership",
                supervisor::task_restarts(&tasks.ownership),
                config.restart_backoff,
                shutdown_rx.clone(),
                make,
            ));
            (member, (tx, rx))
        });
        let (ownership, publisher) = match ownership {
            Some((member, (tx, rx))) => (Some((member, rx)), Some(tx)),
            None => (None, None),
        };
        let mut metrics = Vec::new();
        let mut routes = Vec::new();
        for spec in scanners(&config) {
            let m = Arc::new(ScannerMetrics::default());
            let index = spec.work.index_name();
            metrics.push((spec.name, index, m.clone()));
            let (tx, rx) = mpsc::unbounded_channel::<Wake>();
            // Told its heads by the shared rescan (otherwise it rescans itself).
            let shared = heads::covers(index) && !spec.work.is_sweep();
            routes.push((index, tx.clone()));
            if spec.work == ScanWork::Admission(AdmissionScan::Unblock) {
                routes.push((wake::ADMISSION, tx));
            }
            // The receiver outlives a panicked runner: the restarted one takes it up.
            let rx = Arc::new(Mutex::new(rx));
            let (store, cfg, rx_shutdown) = (store.clone(), config.clone(), shutdown_rx.clone());
            // One subscription per scanner, kept across restarts.
            let owned = publisher.as_ref().map(ownership::Publisher::subscribe);
            // A runner restarted after a panic reads everything it holds once.
            let restarted = AtomicBool::new(false);
            let make = {
                let m = m.clone();
                move || -> BoxFuture<'static, ()> {
                    let runner = Runner::new(
                        spec,
                        store.clone(),
                        &partitions,
                        cfg.filter.clone(),
                        if spec.work.is_sweep() {
                            cfg.sweep_batch_size
                        } else {
                            cfg.batch_size
                        },
                        cfg.rescan_interval,
                        m.clone(),
                    );
                    let runner = if shared && !restarted.swap(true, Relaxed) {
                        runner.with_shared_rescan()
                    } else {
                        runner
                    };
                    let runner = match &owned {
                        Some(o) => runner.with_ownership(o.clone()),
                        None => runner,
                    };
                    let (rx, shutdown) = (rx.clone(), rx_shutdown.clone());
                    Box::pin(async move {
                        let mut rx = rx.lock().await;
                        runner.run(Some(&mut *rx), shutdown).await
                    })
                }
            };
            handles.push(supervisor::supervise(
                spec.name,
                supervisor::scanner_restarts(&m),
                config.restart_backoff,
                shutdown_rx.clone(),
                make,
            ));
        }
        let (rescan_tx, rescan_rx) = mpsc::unbounded_channel();
        // The receiver outlives a panicked rescan task: the restarted one takes it up.
        let rescan_rx = Arc::new(Mutex::new(rescan_rx));
        let heads_settings = heads::Settings {
            flow_partitions: partitions.flow_partitions,
            every: config.rescan_interval,
            owned: publisher.as_ref().map(ownership::Publisher::subscribe),
        };
        let make = {
            let (store, routes, sd) = (store.clone(), routes.clone(), shutdown_rx.clone());
            move || -> BoxFuture<'static, ()> {
                let (store, s, routes, rx, sd) = (
                    store.clone(),
                    heads_settings.clone(),
                    routes.clone(),
                    rescan_rx.clone(),
                    sd.clone(),
                );
                Box::pin(async move {
                    let mut rx = rx.lock().await;
                    heads::run(store, s, routes, &mut rx, sd).await
                })
            }
        };
        let restarts = supervisor::task_restarts(&tasks.shared_rescan);
        let sd = shutdown_rx.clone();
        let backoff = config.restart_backoff;
        handles.push(supervisor::supervise(
            "shared_rescan",
            restarts,
            backoff,
            sd,
            make,
        ));
        let make = {
            let (store, sd) = (store.clone(), shutdown_rx.clone());
            move || -> BoxFuture<'static, ()> {
                let (store, routes, tx, sd) =
                    (store.clone(), routes.clone(), rescan_tx.clone(), sd.clone());
                Box::pin(wake::listen(store, routes, tx, sd))
            }
        };
        let restarts = supervisor::task_restarts(&tasks.wake_listener);
        let sd = shutdown_rx.clone();
        handles.push(supervisor::supervise(
            "wake_listener",
            restarts,
            backoff,
            sd,
            make,
        ));
        let listener = Arc::new(ListenerMetrics::default());
        let listener_config = listener::ListenerConfig {
            partitions: partitions.flow_partitions,
            owned: publisher.as_ref().map(ownership::Publisher::subscribe),
            concurrency: config.dispatch_concurrency,
            budget: config.batch_size,
        };
        let make = {
            let (m, sd) = (listener.clone(), shutdown_rx.clone());
            move || -> BoxFuture<'static, ()> {
                let (store, c, m, sd) = (
                    store.clone(),
                    listener_config.clone(),
                    m.clone(),
                    sd.clone(),
                );
                Box::pin(listener::listen(store, c, m, sd))
            }
        };
        let restarts = supervisor::task_restarts(&tasks.completion_listener);
        handles.push(supervisor::supervise(
            "completion_listener",
            restarts,
            backoff,
            shutdown_rx,
            make,
        ));
        tracing::info!(
            scanners = metrics.len(),
            partitions = partitions.flow_partitions,
            member = ownership.as_ref().map(|(m, _)| m.as_str()),
            "engine started"
        );
        Ok(Self {
            shutdown_tx,
            handles,
            metrics,
            listener,
            tasks,
            shutdown_timeout: config.shutdown_timeout,
            ownership,
            partition_count: partitions.flow_partitions,
        })
    }

    /// This replica's member id in partition ownership (`None`: ownership off).
    pub fn member_id(&self) -> Option<&str> {
        self.ownership.as_ref().map(|(m, _)| m.as_str())
    }

    /// The partition indexes this replica scans now (all with ownership off).
    pub fn owned_partitions(&self) -> Vec<u16> {
        let Some((_, rx)) = &self.ownership else {
            return (0..self.partition_count).collect();
        };
        let now = tokio::time::Instant::now();
        let owned = rx.current();
        (0..self.partition_count)
            .filter(|&p| owned.epoch(p as usize, now).is_some())
            .collect()
    }

    /// Counters of every scanner.
    pub fn metrics(&self) -> Vec<ScannerStats> {
        self.metrics
            .iter()
            .map(|(name, _, m)| m.snapshot(name))
            .collect()
    }

    /// Counters of the completion listener (flow dependency dispatch).
    pub fn listener_metrics(&self) -> ListenerStats {
        self.listener.snapshot()
    }

    /// Signal every task to stop and wait at most the configured bound.
    /// Returns false when the bound ran out (the rest are abandoned).
    pub async fn shutdown(self) -> bool {
        let _ = self.shutdown_tx.send(true);
        let mut handles = self.handles;
        let all = futures::future::join_all(handles.iter_mut());
        match tokio::time::timeout(self.shutdown_timeout, all).await {
            Ok(_) => {
                tracing::info!("engine stopped");
                true
            }
            Err(_) => {
                tracing::warn!(bound = ?self.shutdown_timeout, "engine shutdown bound reached; abandoning remaining tasks");
                for h in &handles {
                    h.abort();
                }
                false
            }
        }
    }
}
