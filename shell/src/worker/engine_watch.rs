//! Without an engine nothing is retried, promoted, timed out or reclaimed,
//! and nothing says so. A worker that runs no engine of its own looks for
//! live engines (their ownership heartbeats) a few times per grace period
//! (`WorkerBuilder::warn_without_engine_after`, a minute by default) and
//! warns, and sets `engine_unseen`, once none has been seen for that long.
//! Engines with ownership off or a scanner filter heartbeat elsewhere and
//! are not seen here.

use super::Inner;
use ff_core::contract::ownership as own;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The default grace: how long no engine may be seen before the worker warns.
pub(crate) const GRACE: Duration = Duration::from_secs(60);

pub(crate) async fn run(inner: Arc<Inner>, grace: Duration, mut stop: watch::Receiver<bool>) {
    let every = grace / 4;
    let mut unseen_since: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
            _ = tokio::time::sleep(every) => {}
        }
        let live = match inner.client.call(&own::view(&own::Ring::default())).await {
            Ok(r) => match own::decode_view(own::VIEW, &r) {
                Ok(v) => !v.live_members().is_empty(),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the engines' heartbeats");
                    continue;
                }
            },
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the engines' heartbeats");
                continue;
            }
        };
        if live {
            if inner.stats.engine_unseen.swap(0, Relaxed) == 1 {
                tracing::info!(worker = %inner.name, "an engine is running again");
            }
            unseen_since = None;
            continue;
        }
        let since = *unseen_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= grace && inner.stats.engine_unseen.swap(1, Relaxed) == 0 {
            tracing::warn!(
                worker = %inner.name,
                ?grace,
                "no engine seen: retries, delays, timeouts and lease expiry wait until one runs \
                 (start `ff engine`, or the worker with start_with_engine)"
            );
        }
    }
}
