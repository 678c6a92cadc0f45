//! The completion listener: follows `ff:done` on its own subscription and
//! drains a partition's queued flow work as soon as a member's end leaves some
//! (a large fan-out, a skip cascade, a cancel). The data plane resolves small
//! fan-outs inside the call that ends the parent, so most completions need no
//! dispatch at all; what this listener misses (a lost message, a restart) stays
//! queued in Valkey for the flow reconciler.
//!
//! Decisions (dedup, concurrency, how many rounds before handing a partition to
//! the reconciler) are `ff_core::flow::DispatchPlanner`'s; this is its driver.

use super::metrics::{Histogram, HistogramSnapshot};
use crate::store::{Store, SubEvent};
use ff_core::contract::flow::{decode_drain, drain, Drained};
use ff_core::flow::{CompletionMessage, DispatchLimits, DispatchPlanner, COMPLETION_CHANNEL};
use ff_core::partition::{Partition, PartitionFamily};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The listener's counters (read through `Engine::listener_metrics`).
#[derive(Debug, Default)]
pub(crate) struct ListenerMetrics {
    pub completions: AtomicU64,
    pub dispatches: AtomicU64,
    pub dispatch_failures: AtomicU64,
    pub work_done: AtomicU64,
    pub reconnects: AtomicU64,
    pub malformed: AtomicU64,
    pub handed_to_reconciler: AtomicU64,
    pub deduplicated: AtomicU64,
    pub dispatch_duration: Histogram,
}

/// A point-in-time copy of the listener's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerStats {
    /// Completion messages received.
    pub completions: u64,
    /// Drain calls made.
    pub dispatches: u64,
    /// Drain calls that failed (their work stays queued for the reconciler).
    pub dispatch_failures: u64,
    /// Units of flow work the drains did (edges resolved, members cancelled).
    pub work_done: u64,
    /// Times the subscription was re-established after a loss.
    pub reconnects: u64,
    /// Messages that did not parse (counted and ignored).
    pub malformed: u64,
    /// Partitions left to the flow reconciler (round bound reached, call failed).
    pub handed_to_reconciler: u64,
    /// Messages for a partition already being drained (folded into one more drain).
    pub deduplicated: u64,
    /// Durations of the drain calls (message received to drain answered
    /// is this plus the pub/sub hop).
    pub dispatch_duration: HistogramSnapshot,
}

impl Default for ListenerStats {
    fn default() -> Self {
        ListenerMetrics::default().snapshot()
    }
}

impl ListenerMetrics {
    pub(crate) fn snapshot(&self) -> ListenerStats {
        ListenerStats {
            completions: self.completions.load(Relaxed),
            dispatches: self.dispatches.load(Relaxed),
            dispatch_failures: self.dispatch_failures.load(Relaxed),
            work_done: self.work_done.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            handed_to_reconciler: self.handed_to_reconciler.load(Relaxed),
            deduplicated: self.deduplicated.load(Relaxed),
            dispatch_duration: self.dispatch_duration.snapshot(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct ListenerConfig {
    pub partitions: u16,
    /// With partition ownership: what this replica holds. Every replica hears
    /// every completion; only the owner of its partition drains it.
    pub owned: Option<super::ownership::Subscriber>,
    pub concurrency: usize,
    pub budget: usize,
}

type Dispatch = BoxFuture<'static, (u16, Result<Drained, String>, Duration)>;

fn dispatch(store: Arc<dyn Store>, partition: u16, budget: usize) -> Dispatch {
    Box::pin(async move {
        let started = Instant::now();
        let call = drain(Partition::new(PartitionFamily::Flow, partition), budget);
        let result = match store.fcall(&call).await {
            Ok(reply) => decode_drain(&reply).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        (partition, result, started.elapsed())
    })
}

pub(crate) async fn listen(
    store: Arc<dyn Store>,
    config: ListenerConfig,
    metrics: Arc<ListenerMetrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rx = loop {
        match store.subscribe(COMPLETION_CHANNEL).await {
            Ok(rx) => break rx,
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow completions; the flow reconciler does the dispatch until it works");
                tokio::select! {
                    biased;
                    r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let mut planner = DispatchPlanner::new(DispatchLimits {
        max_in_flight: config.concurrency,
        ..DispatchLimits::default()
    });
    let mut in_flight: FuturesUnordered<Dispatch> = FuturesUnordered::new();
    let mut subscribed_once = false;
    loop {
        while let Some(p) = planner.poll_dispatch() {
            metrics.dispatches.fetch_add(1, Relaxed);
            in_flight.push(dispatch(store.clone(), p, config.budget));
        }
        tokio::select! {
            biased;
            r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
            Some((p, result, took)) = in_flight.next(), if !in_flight.is_empty() => {
                metrics.dispatch_duration.record(took);
                let micros = took.as_micros() as u64;
                match result {
                    Ok(d) => {
                        metrics.work_done.fetch_add(d.worked, Relaxed);
                        tracing::debug!(partition = p, worked = d.worked, remaining = d.remaining, micros, "flow work drained");
                        planner.on_drained(p, d.remaining);
                    }
                    Err(e) => {
                        metrics.dispatch_failures.fetch_add(1, Relaxed);
                        tracing::warn!(partition = p, error = %e, "flow drain failed; the reconciler takes the partition's work");
                        planner.on_failed(p);
                    }
                }
                let s = planner.stats();
                metrics.handed_to_reconciler.store(s.handed_to_reconciler, Relaxed);
                metrics.deduplicated.store(s.deduplicated, Relaxed);
            }
            ev = rx.recv() => match ev {
                Some(SubEvent::Subscribed) => {
                    if subscribed_once {
                        metrics.reconnects.fetch_add(1, Relaxed);
                        tracing::info!("completion subscription re-established; missed work is the reconciler's");
                    }
                    subscribed_once = true;
                    planner.on_reset();
                }
                Some(SubEvent::Message(m)) => match CompletionMessage::parse(&m) {
                    Ok(msg) if msg.execution.partition_index() < config.partitions => {
                        metrics.completions.fetch_add(1, Relaxed);
                        let p = msg.execution.partition_index() as usize;
                        let mine = config
                            .owned
                            .as_ref()
                            .is_none_or(|o| o.current().epoch(p, Instant::now()).is_some());
                        if mine {
                            planner.on_completion(&msg);
                        }
                    }
                    _ => {
                        let n = metrics.malformed.fetch_add(1, Relaxed) + 1;
                        tracing::warn!(malformed = n, "ignoring a malformed completion message");
                    }
                },
                None => return,
            },
        }
    }
}
