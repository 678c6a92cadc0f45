//! The engine's shared rescan. Announcements on `ff:wake` can be lost (a
//! reconnect, a message published while nobody listened), so every partition
//! is re-read now and then. Rather than each scanner reading its own index of
//! every partition, one read-only call per partition (`ff_partition_heads`)
//! returns the earliest score of every due-time index and blocked index, and
//! each scanner is told its own as a wake-up: idle, a rescan costs one
//! command per held partition per `rescan_interval`.
//!
//! It runs after every (re)subscription of the wake-up listener (what was
//! announced meanwhile is lost) and every `rescan_interval`.

use super::ownership::Subscriber;
use super::runner::Wake;
use super::wake::Routes;
use crate::store::Store;
use ff_core::contract::scan::{self as contract, HEAD_INDEXES};
use ff_core::{Partition, PartitionFamily};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tokio::time::Instant;

/// Without a subscription to start from, the first rescan waits this long.
const FIRST_WAIT: Duration = Duration::from_secs(2);

/// The scanner route an index's head goes to (the unblock scanner reads the
/// three blocked indexes as one).
fn route_of(index: &str) -> &str {
    if index.starts_with("blocked_") {
        "blocked"
    } else {
        index
    }
}

/// Does the shared rescan tell the scanner reading `index` its heads?
pub(crate) fn covers(index: &str) -> bool {
    HEAD_INDEXES.iter().any(|h| route_of(h) == index)
}

#[derive(Clone)]
pub(crate) struct Settings {
    pub flow_partitions: u16,
    pub every: Duration,
    pub owned: Option<Subscriber>,
}

/// Rescan on every nudge from `now` (the listener subscribed again) and
/// every `every`, until shutdown.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    settings: Settings,
    routes: Routes,
    now: &mut UnboundedReceiver<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut next = Instant::now() + FIRST_WAIT;
    let mut nudges = true;
    loop {
        tokio::select! {
            biased;
            r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
            n = async { if nudges { now.recv().await } else { std::future::pending().await } } => {
                if n.is_none() {
                    // The listener is gone: the schedule alone.
                    nudges = false;
                    continue;
                }
                while now.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep_until(next) => {}
        }
        rescan(store.as_ref(), &settings, &routes).await;
        next = Instant::now() + settings.every;
    }
}

async fn rescan(store: &dyn Store, settings: &Settings, routes: &Routes) {
    let started = Instant::now();
    let held = |i: u16| {
        settings.owned.as_ref().is_none_or(|o| {
            o.current()
                .epoch(usize::from(i), tokio::time::Instant::now())
                .is_some()
        })
    };
    let parts: Vec<Partition> = (0..settings.flow_partitions)
        .filter(|&i| held(i))
        .map(|i| Partition::new(PartitionFamily::Flow, i))
        .collect();
    let calls: Vec<_> = parts
        .iter()
        .map(|p| contract::partition_heads(*p))
        .collect();
    let (mut told, mut failed) = (0usize, 0usize);
    for (p, r) in parts.iter().zip(store.fcall_many(&calls).await) {
        let heads = r
            .map_err(|e| e.to_string())
            .and_then(|r| contract::decode_partition_heads(&r).map_err(|e| e.to_string()));
        match heads {
            Ok(heads) => {
                for (index, due) in heads {
                    let Some(due_ms) = due else { continue };
                    for (name, tx) in routes {
                        if *name == route_of(index) {
                            told += 1;
                            let _ = tx.send(Wake::At {
                                partition: p.index,
                                due_ms,
                            });
                        }
                    }
                }
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(partition = p.index, error = %e, "rescan read failed; its scanners read it themselves");
                // Due at once: each scanner reads the partition on its own.
                for (_, tx) in routes {
                    let _ = tx.send(Wake::At {
                        partition: p.index,
                        due_ms: 0,
                    });
                }
            }
        }
    }
    tracing::debug!(
        partitions = parts.len(),
        told,
        failed,
        micros = started.elapsed().as_micros() as u64,
        "rescan"
    );
}
