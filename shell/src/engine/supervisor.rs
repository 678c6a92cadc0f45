//! The supervisor: runs a task, restarts it after a pause when it panics
//! (counting restarts), and stops when shutdown is signalled or the engine is
//! dropped.

use super::metrics::ScannerMetrics;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub(crate) fn supervise<F>(
    name: &'static str,
    metrics: Arc<ScannerMetrics>,
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
                    ScannerMetrics::add(&metrics.restarts, 1);
                    tracing::error!(scanner = name, ?backoff, "scanner panicked; restarting");
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
