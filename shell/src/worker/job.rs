//! One job's life inside the worker: run the handler in its own task (a panic
//! fails the attempt, never the worker), renew the lease every third of its
//! length while it runs, and report the outcome — unless the lease was lost,
//! in which case the result is dropped and the handler was told.

use super::handler::{Job, JobError, SharedHandler};
use super::reporter::{Refill, Refilled};
use super::Inner;
use crate::failure::Failure;
use ff_core::contract::execution::{Claimed, Lease, Report};
use futures::FutureExt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// A job in flight, as the worker tracks it.
pub(crate) struct Running {
    pub(crate) lease: Lease,
    lost: watch::Sender<bool>,
    handler: AbortHandle,
}

impl Running {
    /// Tell the handler its lease is gone and stop it.
    pub(crate) fn abandon(&self) {
        let _ = self.lost.send(true);
        self.handler.abort();
    }
}

pub(crate) struct JobSlot;

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "handler panicked".to_owned())
}

/// How a handler's task ended.
type Ended = Result<std::thread::Result<super::JobResult>, tokio::task::JoinError>;

impl JobSlot {
    pub(crate) fn start(
        inner: Arc<Inner>,
        claimed: Claimed,
        lane: usize,
        handler: SharedHandler,
        permit: OwnedSemaphorePermit,
    ) {
        let (lost_tx, lost_rx) = watch::channel(false);
        let lease = claimed.lease.clone();
        let admission = claimed.admission.clone();
        let mut expires = Instant::now() + inner.lease_ttl;
        let job = Job::new(claimed, lost_rx, &inner.client, inner.data.clone());
        // Panics are caught inside the task, so they come back as values under
        // every runtime (the simulator's JoinError carries no payload).
        let mut task = tokio::spawn(std::panic::AssertUnwindSafe(handler.run(job)).catch_unwind());
        let key = lease.execution.to_string();
        {
            let mut running = inner.running.lock().expect("running jobs lock");
            running.insert(
                key.clone(),
                Running {
                    lease: lease.clone(),
                    lost: lost_tx.clone(),
                    handler: task.abort_handle(),
                },
            );
            // (counted from the jobs, not the permits: a claim round on its
            // way holds permits for what it may hand out)
            inner
                .stats
                .max_running
                .fetch_max(running.len() as u64, Relaxed);
        }
        tokio::spawn(async move {
            let renew_every = inner.lease_ttl / 3;
            let mut lost = false;
            // A handler that ignores the lost lease is stopped after this, so it
            // does not hold a concurrency slot for ever.
            let mut give_up_at = Instant::now();
            let outcome = loop {
                tokio::select! {
                    biased;
                    r = &mut task => break r,
                    _ = tokio::time::sleep_until(give_up_at), if lost => {
                        task.abort();
                        break (&mut task).await;
                    }
                    _ = tokio::time::sleep(renew_every), if !lost => {
                        match inner.client.renew(&lease, inner.lease_ttl).await {
                            Ok(_) => {
                                inner.stats.renewals.fetch_add(1, Relaxed);
                                expires = Instant::now() + inner.lease_ttl;
                            }
                            Err(e) if e.is_fenced_out() => {
                                tracing::warn!(execution = %lease.execution, "lease lost while the handler ran; its result will be dropped");
                                lost = true;
                                give_up_at = Instant::now() + inner.lease_ttl;
                                let _ = lost_tx.send(true);
                            }
                            Err(e) => {
                                inner.stats.report_errors.fetch_add(1, Relaxed);
                                tracing::warn!(execution = %lease.execution, error = %e, "lease renewal failed; retrying");
                                if Instant::now() >= expires {
                                    lost = true;
                                    give_up_at = Instant::now() + inner.lease_ttl;
                                    let _ = lost_tx.send(true);
                                }
                            }
                        }
                    }
                }
            };
            // Shutdown may have taken this job over (and handed it back).
            let still_ours = inner
                .running
                .lock()
                .expect("running jobs lock")
                .remove(&key)
                .is_some();
            // The slot may be refilled by the report's own call: not while
            // stopping, nor for a job holding quota slots (they go back only
            // after the report, and the next job's admission may need them).
            let mut slot = Some(permit);
            if lost || !still_ours {
                if lost {
                    inner.stats.lease_lost.fetch_add(1, Relaxed);
                }
            } else {
                let refill = (admission.quotas.is_empty() && !inner.stopping())
                    .then(|| slot.take())
                    .flatten()
                    .map(|permit| Refill { lane, permit });
                if let Some((claimed, lane, permit)) = report(&inner, &lease, outcome, refill).await
                {
                    inner.stats.refilled.fetch_add(1, Relaxed);
                    inner.start_job(claimed, lane, permit);
                }
            }
            // The lease ended (reported, lost, or handed back by shutdown):
            // its quota slots go back (fenced by the epoch; the quota
            // reconciler covers a failure here).
            if !admission.quotas.is_empty() {
                if let Err(e) = inner.client.release_admission(&lease, &admission).await {
                    tracing::warn!(execution = %lease.execution, error = %e, "giving back quota slots failed");
                }
            }
            drop(slot);
            inner.slot_freed.notify_one();
        });
    }
}

/// Report how the attempt ended. A completion or failure goes with the
/// reporter's next round, which may refill `refill`'s slot with a job claimed
/// in the same call (the slot then comes back with it); a slot not refilled
/// is dropped (free again).
async fn report(inner: &Inner, lease: &Lease, outcome: Ended, refill: Option<Refill>) -> Refilled {
    let client = &inner.client;
    let s = &inner.stats;
    let (r, next) = match outcome {
        Ok(Ok(Ok(result))) => {
            let report = Report::Complete {
                lease: lease.clone(),
                result,
            };
            let (r, next) = inner.reporter.send(report, refill).await;
            (r.map(|_| s.completed.fetch_add(1, Relaxed)), next)
        }
        Ok(Ok(Err(JobError::Failed(f)))) => fail(inner, lease, f, refill).await,
        Ok(Ok(Err(JobError::Delay(d)))) => {
            let r = client.delay(lease, d).await;
            (r.map(|_| s.delayed.fetch_add(1, Relaxed)), None)
        }
        Ok(Ok(Err(JobError::Suspend(how)))) => {
            let r = client.suspend(lease, &how).await;
            (r.map(|_| s.suspended.fetch_add(1, Relaxed)), None)
        }
        Ok(Err(payload)) => {
            let msg = panic_message(payload);
            s.panicked.fetch_add(1, Relaxed);
            tracing::error!(execution = %lease.execution, panic = %msg, "handler panicked; failing the attempt");
            fail(
                inner,
                lease,
                Failure::message(Failure::PANIC, msg, true),
                refill,
            )
            .await
        }
        Err(e) => {
            // Stopped from outside (shutdown took it over): nothing to report.
            tracing::debug!(execution = %lease.execution, error = %e, "handler task ended without a result");
            return None;
        }
    };
    if let Err(e) = r {
        s.report_errors.fetch_add(1, Relaxed);
        if e.is_fenced_out() {
            s.lease_lost.fetch_add(1, Relaxed);
        }
        tracing::warn!(execution = %lease.execution, error = %e, "reporting the outcome failed");
    }
    next
}

async fn fail(
    inner: &Inner,
    lease: &Lease,
    f: Failure,
    refill: Option<Refill>,
) -> (crate::error::Result<u64>, Refilled) {
    let report = Report::Fail {
        lease: lease.clone(),
        error: f.encode(),
        retryable: f.retryable,
    };
    let (r, next) = inner.reporter.send(report, refill).await;
    (r.map(|_| inner.stats.failed.fetch_add(1, Relaxed)), next)
}
