//! The engine's counters as Prometheus metrics, through the
//! [`prometheus_client`] crate, so an embedding service puts them in its own
//! [`Registry`] beside its own metrics: [`Engine::register_metrics`] adds a
//! collector that reads the engine's live counters at each scrape (nothing
//! is copied in between, and the counters themselves stay plain atomics).
//! [`Worker::register_metrics`](crate::worker::Worker::register_metrics)
//! does the same for a worker's counters.
//!
//! One family per [`ScannerStats`] field across all scanners (label
//! `scanner`), so a new scanner needs nothing here. [`encode`] writes a
//! registry in the Prometheus text format (0.0.4), as `ff engine
//! --metrics-addr` serves it.
//!
//! ```
//! use ff_engine::prometheus_client::registry::Registry;
//! use ff_engine::store::MemoryStore;
//! use ff_engine::{engine::prometheus, Engine, EngineConfig};
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::start(EngineConfig::default(), Arc::new(MemoryStore::new())).await?;
//! let mut registry = Registry::default(); // the service's own registry
//! engine.register_metrics(&mut registry);
//! let text = prometheus::encode(&registry);
//! assert!(text.contains("# TYPE ff_scanner_cycles_total counter\n"));
//! assert!(text.contains("ff_scanner_cycle_duration_seconds_count{scanner=\"delayed_promoter\"}"));
//! engine.shutdown().await;
//! # Ok(())
//! # }
//! ```

use super::listener::{ListenerMetrics, ListenerStats};
use super::metrics::TaskRestarts;
use super::metrics::{HistogramSnapshot, ScannerMetrics, ScannerStats};
use super::Engine;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::Arc;

/// The `Content-Type` of what [`encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every metric of `registry` in the Prometheus text format (0.0.4).
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; a collector's error would be ours.
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
        .expect("metrics encode into a String");
    out
}

impl Engine {
    /// Put the engine's metrics (every scanner's families and the completion
    /// listener's) into `registry`. They are read from the live counters at
    /// each scrape, for as long as the registry lives (after shutdown, the
    /// last values). Register one engine per registry: a second would repeat
    /// the families (give it a sub-registry with a prefix).
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(EngineCollector {
            scanners: self
                .metrics
                .iter()
                .map(|(name, index, m)| (*name, *index, m.clone()))
                .collect(),
            listener: self.listener.clone(),
            tasks: self.tasks.clone(),
        }));
    }
}

/// Reads the engine's counters at scrape time.
#[derive(Debug)]
struct EngineCollector {
    /// (scanner, the index it reads, its counters).
    scanners: Vec<(&'static str, &'static str, Arc<ScannerMetrics>)>,
    listener: Arc<ListenerMetrics>,
    tasks: Arc<TaskRestarts>,
}

impl Collector for EngineCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let stats: Vec<(ScannerStats, &'static str)> = self
            .scanners
            .iter()
            .map(|(name, index, m)| (m.snapshot(name), *index))
            .collect();
        scanners(&mut e, &stats)?;
        completion_listener(&mut e, &self.listener.snapshot())?;
        counter(
            &mut e,
            "ff_task_restarts",
            "Restarts after a panic of the engine's tasks that are not scanners.",
            self.tasks
                .snapshot()
                .map(|(task, n)| (vec![("task", task)], n)),
        )
    }
}

/// Label pairs of one sample.
pub(crate) type Labels<'a> = Vec<(&'a str, &'a str)>;

/// A counter family. `name` is without the `_total` the encoder adds.
pub(crate) fn counter<'a>(
    e: &mut DescriptorEncoder,
    name: &'static str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in samples {
        if labels.is_empty() {
            m.encode_counter::<NoLabelSet, _, u64>(&v, None)?;
        } else {
            m.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
        }
    }
    Ok(())
}

/// A gauge family.
pub(crate) fn gauge<'a>(
    e: &mut DescriptorEncoder,
    name: &'static str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in samples {
        if labels.is_empty() {
            m.encode_gauge(&v)?;
        } else {
            m.encode_family(&labels)?.encode_gauge(&v)?;
        }
    }
    Ok(())
}

/// A histogram family of durations (the snapshot's microseconds are
/// written as seconds, as Prometheus expects).
pub(crate) fn histogram<'a>(
    e: &mut DescriptorEncoder,
    name: &'static str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'a>, &'a HistogramSnapshot)>,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in samples {
        // Per-bucket counts, the +Inf bucket last (the encoder accumulates).
        let bounds = h
            .bounds_micros
            .iter()
            .map(|&b| seconds(b))
            .chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds.zip(h.counts.iter().copied()).collect();
        let (sum, count) = (seconds(h.sum_micros), h.count());
        if labels.is_empty() {
            m.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        } else {
            m.encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
    }
    Ok(())
}

fn seconds(micros: u64) -> f64 {
    micros as f64 / 1e6
}

type Field = (&'static str, &'static str, fn(&ScannerStats) -> u64);

/// Per-scanner counters: (family without `_total`, help, field).
const SCANNER_COUNTERS: &[Field] = &[
    ("ff_scanner_cycles", "Scan cycles run.", |s| s.cycles),
    (
        "ff_scanner_acted",
        "Members acted on (reconciler: executions checked).",
        |s| s.acted,
    ),
    ("ff_scanner_repaired", "Index entries repaired.", |s| {
        s.repaired
    }),
    (
        "ff_scanner_skipped",
        "Due members left aside (failure backoff, filter).",
        |s| s.skipped,
    ),
    (
        "ff_scanner_malformed",
        "Malformed entries found and removed from the index.",
        |s| s.malformed,
    ),
    (
        "ff_scanner_errors",
        "Failed store calls and member actions.",
        |s| s.errors,
    ),
    ("ff_scanner_restarts", "Restarts after a panic.", |s| {
        s.restarts
    }),
];

/// Every scanner's families: each scanner is a sample (label `scanner`);
/// the backlog also names the index the scanner reads (label `index`).
fn scanners(e: &mut DescriptorEncoder, stats: &[(ScannerStats, &str)]) -> fmt::Result {
    let labels = |s: &ScannerStats| vec![("scanner", s.scanner)];
    for (name, help, get) in SCANNER_COUNTERS {
        counter(
            e,
            name,
            help,
            stats.iter().map(|(s, _)| (labels(s), get(s))),
        )?;
    }
    gauge(
        e,
        "ff_scanner_backlog",
        "Due members seen in the last cycle's snapshots of the scanner's index.",
        stats
            .iter()
            .map(|(s, index)| (vec![("scanner", s.scanner), ("index", *index)], s.backlog)),
    )?;
    gauge(
        e,
        "ff_scanner_last_cycle_microseconds",
        "Duration of the last cycle.",
        stats.iter().map(|(s, _)| (labels(s), s.last_cycle_micros)),
    )?;
    histogram(
        e,
        "ff_scanner_cycle_duration_seconds",
        "Durations of scan cycles.",
        stats.iter().map(|(s, _)| (labels(s), &s.cycle_duration)),
    )
}

/// The completion listener's families (flow dependency dispatch).
fn completion_listener(e: &mut DescriptorEncoder, l: &ListenerStats) -> fmt::Result {
    for (name, help, v) in [
        (
            "ff_listener_completions",
            "Completion messages received.",
            l.completions,
        ),
        (
            "ff_listener_dispatches",
            "Drains of a partition's queued flow work.",
            l.dispatches,
        ),
        (
            "ff_listener_dispatch_failures",
            "Failed drains (their work stays queued for the flow reconciler).",
            l.dispatch_failures,
        ),
        (
            "ff_listener_work",
            "Units of flow work the drains did (edges resolved, members cancelled).",
            l.work_done,
        ),
        (
            "ff_listener_reconnects",
            "Times the completion subscription was re-established.",
            l.reconnects,
        ),
        (
            "ff_listener_malformed",
            "Completion messages that did not parse.",
            l.malformed,
        ),
        (
            "ff_listener_handed_to_reconciler",
            "Partitions left to the flow reconciler (round bound, failure, reconnect).",
            l.handed_to_reconciler,
        ),
        (
            "ff_listener_deduplicated",
            "Messages folded into a drain already in flight.",
            l.deduplicated,
        ),
    ] {
        counter(e, name, help, [(Vec::new(), v)])?;
    }
    histogram(
        e,
        "ff_listener_dispatch_duration_seconds",
        "Durations of the drain calls.",
        [(Vec::new(), &l.dispatch_duration)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{scanners as specs, EngineConfig};

    /// A registry holding an engine collector over these scanners' counters
    /// (the index each reads taken from the engine's scanner table).
    fn registry(scanners: &[(&'static str, Arc<ScannerMetrics>)]) -> Registry {
        let table = specs(&EngineConfig::default());
        let mut r = Registry::default();
        r.register_collector(Box::new(EngineCollector {
            scanners: scanners
                .iter()
                .map(|(name, m)| {
                    let index = table
                        .iter()
                        .find(|s| s.name == *name)
                        .map_or("none", |s| s.work.index_name());
                    (*name, index, m.clone())
                })
                .collect(),
            listener: Default::default(),
            tasks: Default::default(),
        }));
        r
    }

    #[test]
    fn the_readme_lists_every_family() {
        let readme = include_str!("../../../docs/metrics.md");
        let text = encode(&registry(&[("s", Default::default())]));
        for family in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let (name, kind) = family.split_once(' ').unwrap();
            let row = format!("| `{name}` | {kind} |");
            assert!(
                readme.contains(&row),
                "docs/metrics.md's metrics table lacks {row:?}"
            );
        }
    }

    #[test]
    fn every_scanner_is_a_sample_of_every_family() {
        let m = Arc::new(ScannerMetrics::default());
        ScannerMetrics::add(&m.acted, 7);
        m.backlog.store(3, std::sync::atomic::Ordering::Relaxed);
        m.cycle_duration.record_micros(150);
        let r = registry(&[("delayed_promoter", m.clone()), ("a\"new\"one", m.clone())]);
        let text = encode(&r);
        assert!(text.contains("# TYPE ff_scanner_acted_total counter\n"));
        assert!(text.contains("ff_scanner_acted_total{scanner=\"delayed_promoter\"} 7\n"));
        assert!(text.contains("ff_scanner_acted_total{scanner=\"a\\\"new\\\"one\"} 7\n"));
        assert!(
            text.contains("ff_scanner_backlog{scanner=\"delayed_promoter\",index=\"delayed\"} 3\n"),
            "{text}"
        );
        let b = "ff_scanner_cycle_duration_seconds_bucket{scanner=\"delayed_promoter\",le=";
        assert!(text.contains(&format!("{b}\"0.0001\"}} 0\n")), "{text}");
        assert!(text.contains(&format!("{b}\"0.00025\"}} 1\n")));
        assert!(text.contains(&format!("{b}\"+Inf\"}} 1\n")));
        assert!(text.contains(
            "ff_scanner_cycle_duration_seconds_sum{scanner=\"delayed_promoter\"} 0.00015\n"
        ));
        assert!(text
            .contains("ff_scanner_cycle_duration_seconds_count{scanner=\"delayed_promoter\"} 1\n"));
        // One HELP/TYPE per family, whatever the number of scanners.
        assert_eq!(text.matches("# TYPE ff_scanner_backlog gauge").count(), 1);
        // Read at scrape time: a later change shows in the next scrape.
        ScannerMetrics::add(&m.acted, 1);
        assert!(encode(&r).contains("ff_scanner_acted_total{scanner=\"delayed_promoter\"} 8\n"));
    }

    #[test]
    fn the_listener_families_have_no_labels() {
        let text = encode(&registry(&[]));
        assert!(text.contains("ff_listener_completions_total 0\n"), "{text}");
        assert!(text.contains("ff_listener_dispatch_duration_seconds_bucket{le=\"+Inf\"} 0\n"));
        assert!(text.contains("ff_listener_dispatch_duration_seconds_count 0\n"));
    }
}
