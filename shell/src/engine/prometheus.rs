//! The engine's counters in the Prometheus text format (version 0.0.4).
//!
//! [`Exposition`] writes metric families; [`render`] writes every scanner's
//! counters, one family per [`ScannerStats`] field across all scanners, so a
//! new scanner needs nothing here and a new section of the engine's snapshot
//! is one [`Exposition`] call.
//!
//! ```
//! use ff_engine::engine::{prometheus, ScannerMetrics};
//!
//! let m = ScannerMetrics::default();
//! m.cycle_duration.record_micros(1_200);
//! let text = prometheus::render(&[m.snapshot("delayed_promoter")], &[], &Default::default());
//! assert!(text.contains("ff_scanner_cycles_total{scanner=\"delayed_promoter\"} 0"));
//! assert!(text.contains("ff_scanner_cycle_duration_seconds_count{scanner=\"delayed_promoter\"} 1"));
//! ```

use super::listener::ListenerStats;
use super::metrics::{HistogramSnapshot, ScannerStats};
use super::runner::ScannerSpec;
use std::fmt::Write;

/// Label pairs of one sample.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// A Prometheus text document being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter family (`name` should end in `_total`).
    pub fn counter<'a>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
    ) {
        self.family(name, help, "counter", samples);
    }

    /// A gauge family.
    pub fn gauge<'a>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
    ) {
        self.family(name, help, "gauge", samples);
    }

    fn family<'a>(
        &mut self,
        name: &str,
        help: &str,
        kind: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
    ) {
        self.header(name, help, kind);
        for (labels, v) in samples {
            self.sample(name, labels, None, &v.to_string());
        }
    }

    /// A histogram family of durations (the snapshot's microseconds are
    /// written as seconds, as Prometheus expects).
    pub fn histogram<'a>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'a>, &'a HistogramSnapshot)>,
    ) {
        self.header(name, help, "histogram");
        for (labels, h) in samples {
            let bucket = format!("{name}_bucket");
            for (bound, n) in h.cumulative() {
                let le = bound.map_or("+Inf".to_owned(), seconds);
                self.sample(&bucket, labels, Some(&le), &n.to_string());
            }
            self.sample(&format!("{name}_sum"), labels, None, &seconds(h.sum_micros));
            self.sample(
                &format!("{name}_count"),
                labels,
                None,
                &h.count().to_string(),
            );
        }
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: Labels<'_>, le: Option<&str>, value: &str) {
        self.out.push_str(name);
        let pairs = labels.iter().copied().chain(le.map(|le| ("le", le)));
        for (i, (k, v)) in pairs.enumerate() {
            let sep = if i == 0 { '{' } else { ',' };
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(self.out, "{sep}{k}=\"{v}\"");
        }
        if !labels.is_empty() || le.is_some() {
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The document.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Microseconds as seconds, exactly (no float rounding noise).
fn seconds(micros: u64) -> String {
    let (s, frac) = (micros / 1_000_000, micros % 1_000_000);
    if frac == 0 {
        return s.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{s}.{}", frac.trim_end_matches('0'))
}

type Counter = (&'static str, &'static str, fn(&ScannerStats) -> u64);

/// Per-scanner counters: (family, help, field).
const SCANNER_COUNTERS: &[Counter] = &[
    ("ff_scanner_cycles_total", "Scan cycles run.", |s| s.cycles),
    (
        "ff_scanner_acted_total",
        "Members acted on (reconciler: executions checked).",
        |s| s.acted,
    ),
    (
        "ff_scanner_repaired_total",
        "Index entries repaired.",
        |s| s.repaired,
    ),
    (
        "ff_scanner_skipped_total",
        "Due members left aside (failure backoff, filter).",
        |s| s.skipped,
    ),
    (
        "ff_scanner_malformed_total",
        "Malformed entries found and removed from the index.",
        |s| s.malformed,
    ),
    (
        "ff_scanner_errors_total",
        "Failed store calls and member actions.",
        |s| s.errors,
    ),
    (
        "ff_scanner_restarts_total",
        "Restarts after a panic.",
        |s| s.restarts,
    ),
];

/// Every scanner's counters. `specs` (e.g. [`super::scanners`]) names the
/// index each scanner reads, for the `index` label of the backlog; a
/// scanner without a spec gets none.
pub fn render(stats: &[ScannerStats], specs: &[ScannerSpec], listener: &ListenerStats) -> String {
    let mut e = Exposition::new();
    scanners(&mut e, stats, specs);
    completion_listener(&mut e, listener);
    e.finish()
}

/// The completion listener's families (flow dependency dispatch).
pub fn completion_listener(e: &mut Exposition, l: &ListenerStats) {
    let none: &[(&str, &str)] = &[];
    for (name, help, v) in [
        (
            "ff_listener_completions_total",
            "Completion messages received.",
            l.completions,
        ),
        (
            "ff_listener_dispatches_total",
            "Drains of a partition's queued flow work.",
            l.dispatches,
        ),
        (
            "ff_listener_dispatch_failures_total",
            "Failed drains (their work stays queued for the flow reconciler).",
            l.dispatch_failures,
        ),
        (
            "ff_listener_work_total",
            "Units of flow work the drains did (edges resolved, members cancelled).",
            l.work_done,
        ),
        (
            "ff_listener_reconnects_total",
            "Times the completion subscription was re-established.",
            l.reconnects,
        ),
        (
            "ff_listener_malformed_total",
            "Completion messages that did not parse.",
            l.malformed,
        ),
        (
            "ff_listener_handed_to_reconciler_total",
            "Partitions left to the flow reconciler (round bound, failure, reconnect).",
            l.handed_to_reconciler,
        ),
        (
            "ff_listener_deduplicated_total",
            "Messages folded into a drain already in flight.",
            l.deduplicated,
        ),
    ] {
        e.counter(name, help, [(none, v)]);
    }
    e.histogram(
        "ff_listener_dispatch_duration_seconds",
        "Durations of the drain calls.",
        [(none, &l.dispatch_duration)],
    );
}

/// Write every scanner's families into `e`.
pub fn scanners(e: &mut Exposition, stats: &[ScannerStats], specs: &[ScannerSpec]) {
    let labels: Vec<[(&str, &str); 1]> = stats.iter().map(|s| [("scanner", s.scanner)]).collect();
    for (name, help, get) in SCANNER_COUNTERS {
        e.counter(
            name,
            help,
            stats.iter().zip(&labels).map(|(s, l)| (&l[..], get(s))),
        );
    }
    let backlog_labels: Vec<Vec<(&str, &str)>> = stats
        .iter()
        .map(|s| {
            let index = specs.iter().find(|p| p.name == s.scanner);
            let mut l = vec![("scanner", s.scanner)];
            l.extend(index.map(|p| ("index", p.work.index_name())));
            l
        })
        .collect();
    e.gauge(
        "ff_scanner_backlog",
        "Due members seen in the last cycle's snapshots of the scanner's index.",
        stats
            .iter()
            .zip(&backlog_labels)
            .map(|(s, l)| (&l[..], s.backlog)),
    );
    e.gauge(
        "ff_scanner_last_cycle_microseconds",
        "Duration of the last cycle.",
        stats
            .iter()
            .zip(&labels)
            .map(|(s, l)| (&l[..], s.last_cycle_micros)),
    );
    e.histogram(
        "ff_scanner_cycle_duration_seconds",
        "Durations of scan cycles.",
        stats
            .iter()
            .zip(&labels)
            .map(|(s, l)| (&l[..], &s.cycle_duration)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{scanners as specs, EngineConfig, ScannerMetrics};

    #[test]
    fn the_readme_lists_every_family() {
        let readme = include_str!("../../../docs/metrics.md");
        let m = ScannerMetrics::default();
        let text = render(&[m.snapshot("s")], &[], &Default::default());
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
    fn seconds_are_exact() {
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(2_000_000), "2");
        assert_eq!(seconds(100), "0.0001");
        assert_eq!(seconds(2_500_000), "2.5");
    }

    #[test]
    fn every_scanner_is_a_sample_of_every_family() {
        let specs = specs(&EngineConfig::default());
        let m = ScannerMetrics::default();
        ScannerMetrics::add(&m.acted, 7);
        m.backlog.store(3, std::sync::atomic::Ordering::Relaxed);
        m.cycle_duration.record_micros(150);
        let stats = vec![m.snapshot("delayed_promoter"), m.snapshot("a\"new\"one")];
        let text = render(&stats, &specs, &Default::default());
        assert!(text.contains("# TYPE ff_scanner_acted_total counter\n"));
        assert!(text.contains("ff_scanner_acted_total{scanner=\"delayed_promoter\"} 7\n"));
        assert!(text.contains("ff_scanner_acted_total{scanner=\"a\\\"new\\\"one\"} 7\n"));
        assert!(
            text.contains("ff_scanner_backlog{scanner=\"delayed_promoter\",index=\"delayed\"} 3\n")
        );
        assert!(text.contains("ff_scanner_backlog{scanner=\"a\\\"new\\\"one\"} 3\n"));
        let b = "ff_scanner_cycle_duration_seconds_bucket{scanner=\"delayed_promoter\",le=";
        assert!(text.contains(&format!("{b}\"0.0001\"}} 0\n")));
        assert!(text.contains(&format!("{b}\"0.00025\"}} 1\n")));
        assert!(text.contains(&format!("{b}\"+Inf\"}} 1\n")));
        assert!(text.contains(
            "ff_scanner_cycle_duration_seconds_sum{scanner=\"delayed_promoter\"} 0.00015\n"
        ));
        // One HELP/TYPE per family, whatever the number of scanners.
        assert_eq!(text.matches("# TYPE ff_scanner_backlog gauge").count(), 1);
    }
}
