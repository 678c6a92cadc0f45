//! A worker's counters ([`WorkerStats`]) as Prometheus metrics in the
//! caller's [`Registry`], read from the live counters at each scrape (see
//! [`crate::engine::prometheus`] for the engine's).

use super::{Worker, WorkerStats};
use crate::engine::prometheus::{counter, gauge};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

impl Worker {
    /// Put this worker's counters into `registry` (families `ff_worker_*`,
    /// labels `worker` and `instance`), read at each scrape. Register one
    /// worker per registry (a family is written once): a second worker of
    /// the same process goes in a sub-registry with its own prefix.
    ///
    /// ```
    /// use ff_engine::engine::prometheus;
    /// use ff_engine::prometheus_client::registry::Registry;
    /// use ff_engine::store::MemoryStore;
    /// use ff_engine::worker::{Job, Worker};
    /// use ff_engine::{Client, ExecutionSpec};
    /// use std::sync::atomic::Ordering::Relaxed;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = Client::new(Arc::new(MemoryStore::new())).await?;
    /// let worker = Worker::builder(client.clone(), "mailer")
    ///     .instance("mailer-1")
    ///     .handle("email.send", |_job: Job| async move { Ok(b"sent".to_vec()) })
    ///     .start()?;
    /// let mut registry = Registry::default();
    /// worker.register_metrics(&mut registry);
    /// client.create(ExecutionSpec::new("email.send")).await?;
    /// while worker.stats().completed.load(Relaxed) == 0 {
    ///     tokio::time::sleep(Duration::from_millis(10)).await;
    /// }
    /// let text = prometheus::encode(&registry);
    /// assert!(text.contains("ff_worker_completed_total{worker=\"mailer\",instance=\"mailer-1\"} 1\n"));
    /// worker.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(WorkerCollector {
            stats: self.inner.stats.clone(),
            worker: self.inner.name.to_string(),
            instance: self.inner.instance.to_string(),
        }));
    }
}

#[derive(Debug)]
struct WorkerCollector {
    stats: Arc<WorkerStats>,
    worker: String,
    instance: String,
}

type Field = (&'static str, &'static str, fn(&WorkerStats) -> &AtomicU64);

/// (family without `_total`, help, counter).
pub(crate) const COUNTERS: &[Field] = &[
    ("ff_worker_claimed", "Executions claimed.", |s| &s.claimed),
    (
        "ff_worker_refilled",
        "Executions claimed with a report, into the slot its job freed.",
        |s| &s.refilled,
    ),
    ("ff_worker_completed", "Executions completed.", |s| {
        &s.completed
    }),
    (
        "ff_worker_failed",
        "Attempts failed (retried or final).",
        |s| &s.failed,
    ),
    (
        "ff_worker_delayed",
        "Executions delayed by their handler.",
        |s| &s.delayed,
    ),
    (
        "ff_worker_suspended",
        "Handlers that suspended their execution on waitpoints.",
        |s| &s.suspended,
    ),
    (
        "ff_worker_panicked",
        "Handlers that panicked (the attempt failed).",
        |s| &s.panicked,
    ),
    (
        "ff_worker_lease_lost",
        "Handlers whose lease was lost while they ran (their result was dropped).",
        |s| &s.lease_lost,
    ),
    (
        "ff_worker_released",
        "Executions handed back at shutdown.",
        |s| &s.released,
    ),
    ("ff_worker_renewals", "Lease renewals.", |s| &s.renewals),
    (
        "ff_worker_report_errors",
        "Reports (complete, fail, renew) that failed to reach the store.",
        |s| &s.report_errors,
    ),
];

impl Collector for WorkerCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let labels = || {
            vec![
                ("worker", self.worker.as_str()),
                ("instance", self.instance.as_str()),
            ]
        };
        for (name, help, get) in COUNTERS {
            counter(
                &mut e,
                name,
                help,
                [(labels(), get(&self.stats).load(Relaxed))],
            )?;
        }
        gauge(
            &mut e,
            "ff_worker_max_running",
            "Largest number of handlers seen running at once.",
            [(labels(), self.stats.max_running.load(Relaxed))],
        )?;
        gauge(
            &mut e,
            "ff_worker_engine_unseen",
            "1 while no engine has been seen alive for a minute.",
            [(labels(), self.stats.engine_unseen.load(Relaxed))],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::prometheus::encode;

    #[test]
    fn every_counter_is_a_family_with_the_worker_labels() {
        let stats = Arc::new(WorkerStats::default());
        stats.completed.store(5, Relaxed);
        stats.max_running.store(3, Relaxed);
        let mut r = Registry::default();
        r.register_collector(Box::new(WorkerCollector {
            stats,
            worker: "mailer".into(),
            instance: "mailer-1".into(),
        }));
        let text = encode(&r);
        assert!(text.contains("# TYPE ff_worker_completed_total counter\n"));
        assert!(
            text.contains("ff_worker_completed_total{worker=\"mailer\",instance=\"mailer-1\"} 5\n"),
            "{text}"
        );
        assert!(text.contains("ff_worker_max_running{worker=\"mailer\",instance=\"mailer-1\"} 3\n"));
        assert_eq!(text.matches("# TYPE ").count(), COUNTERS.len() + 2);
    }

    #[test]
    fn the_metrics_page_lists_every_worker_family() {
        let page = include_str!("../../../docs/metrics.md");
        let mut r = Registry::default();
        r.register_collector(Box::new(WorkerCollector {
            stats: Arc::default(),
            worker: "w".into(),
            instance: "i".into(),
        }));
        for family in encode(&r).lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let (name, kind) = family.split_once(' ').unwrap();
            let row = format!("| `{name}` | {kind} |");
            assert!(page.contains(&row), "docs/metrics.md lacks {row:?}");
        }
    }
}
