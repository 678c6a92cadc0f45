//! What a worker runs: handlers by kind, the job they receive, and how they
//! say how it went.

use ff_core::contract::execution::Lease;
use ff_core::{ExecutionId, Kind};
use futures::future::BoxFuture;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// One claimed execution, handed to a handler.
#[derive(Debug)]
pub struct Job {
    /// The execution.
    pub execution: ExecutionId,
    /// Its kind.
    pub kind: Kind,
    /// Its payload.
    pub payload: Vec<u8>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The lease the worker holds for it.
    pub lease: Lease,
    lost: watch::Receiver<bool>,
}

impl Job {
    pub(crate) fn new(
        claimed: ff_core::contract::execution::Claimed,
        lost: watch::Receiver<bool>,
    ) -> Self {
        Self {
            execution: claimed.lease.execution.clone(),
            kind: claimed.kind,
            payload: claimed.payload,
            attempt: claimed.attempt,
            lease: claimed.lease,
            lost,
        }
    }

    /// True once the lease is gone (taken over, cancelled, expired, or the
    /// worker is shutting down): whatever the handler returns will not be
    /// reported, so it may as well stop.
    pub fn is_cancelled(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves when the lease is gone (see [`Job::is_cancelled`]).
    pub async fn cancelled(&self) {
        let mut rx = self.lost.clone();
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                // The worker dropped the job's signal: it will never be cancelled.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// How a handler says an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// Try again under the execution's retry policy.
    Retry(String),
    /// Fail for good, whatever retries are left.
    Fatal(String),
    /// Not a failure: run it again after this delay (uses no retry).
    Delay(Duration),
}

impl JobError {
    /// A failure that may be retried (per the execution's policy).
    pub fn retry(msg: impl std::fmt::Display) -> Self {
        JobError::Retry(msg.to_string())
    }
    /// A failure that is final.
    pub fn fatal(msg: impl std::fmt::Display) -> Self {
        JobError::Fatal(msg.to_string())
    }
}

/// The result a handler returns: the execution's result bytes, or how it failed.
pub type JobResult = Result<Vec<u8>, JobError>;

/// Something that runs jobs. Implemented for every
/// `Fn(Job) -> impl Future<Output = JobResult>`.
pub trait Handler: Send + Sync + 'static {
    /// Run one job.
    fn run(&self, job: Job) -> BoxFuture<'static, JobResult>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobResult> + Send + 'static,
{
    fn run(&self, job: Job) -> BoxFuture<'static, JobResult> {
        Box::pin(self(job))
    }
}

pub(crate) type SharedHandler = Arc<dyn Handler>;
