//! The supervisor: runs a task, restarts it after a pause when it panics
//! (counting restarts), and stops when shutdown is signalled or the engine is
//! dropped. Every long-lived task of the engine runs under one: the scanners,
//! the listeners, the shared rescan and the ownership heartbeat.

use super::metrics::ScannerMetrics;
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Count a scanner's restarts in its metrics.
pub(crate) fn scanner_restarts(m: &Arc<ScannerMetrics>) -> Arc<dyn Fn() + Send + Sync> {
    let m = m.clone();
    Arc::new(move || ScannerMetrics::add(&m.restarts, 1))
}

/// Count a task's restarts in `counter`.
pub(crate) fn task_restarts(counter: &Arc<AtomicU64>) -> Arc<dyn Fn() + Send + Sync> {
    let c = counter.clone();
    Arc::new(move || {
        c.fetch_add(1, Relaxed);
    })
}

pub(crate) fn supervise<F>(
    name: &'static str,
    on_restart: Arc<dyn Fn() + Send + Sync>,
    backoff: Duration,
    mut shutdown: watch::Receiver<bool>,
    make: F,
) -> JoinHandle<()>
where
    F: Fn() -> BoxFuture<'static, ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            // Aborted with the supervisor (a shutdown whose bound ran out):
            // nothing of the engine runs on after `shutdown()` returns.
            let mut task = AbortOnDrop(tokio::spawn(make()));
            let ended = loop {
                tokio::select! {
                    biased;
                    r = &mut task.0 => break r,
                    r = shutdown.changed() => {
                        if r.is_err() || *shutdown.borrow() {
                            // The task sees the same signal; let it finish its step.
                            let _ = (&mut task.0).await;
                            return;
                        }
                    }
                }
            };
            match ended {
                Err(e) if e.is_panic() => {
                    on_restart();
                    tracing::error!(task = name, ?backoff, "task panicked; restarting");
                }
                _ => return,
            }
            tokio::select! {
                biased;
                _ = tokio::time::sleep(backoff) => {}
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
            }
        }
    })
}

/// A task handle that aborts its task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
