//! What a worker runs: handlers by kind, the job they receive, and how they
//! say how it went.

use super::data::Data;
use super::progress::Progress;
use crate::failure::Failure;
use ff_core::contract::execution::Lease;
use ff_core::{ExecutionId, Kind};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
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
    /// Its payload (in a flow, the last result a data-passing parent passed
    /// it: [`Job::parent_results`] has each by parent).
    pub payload: Vec<u8>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The lease the worker holds for it.
    pub lease: Lease,
    lost: watch::Receiver<bool>,
    progress: Arc<Progress>,
    data: Arc<Data>,
    client: crate::Client,
}

impl Job {
    pub(crate) fn new(
        claimed: ff_core::contract::execution::Claimed,
        lost: watch::Receiver<bool>,
        client: &crate::Client,
        data: Arc<Data>,
    ) -> Self {
        Self {
            execution: claimed.lease.execution.clone(),
            kind: claimed.kind,
            payload: claimed.payload,
            attempt: claimed.attempt,
            progress: Arc::new(Progress::new(client.clone(), claimed.lease.clone())),
            lease: claimed.lease,
            lost,
            data,
            client: client.clone(),
        }
    }

    /// The results this flow member's data-passing parents passed it, by
    /// parent ([`Client::parent_results`](crate::Client::parent_results)):
    /// with several, the payload holds only the last one passed. One read
    /// of the store, made only when asked.
    pub async fn parent_results(&self) -> crate::error::Result<BTreeMap<ExecutionId, Vec<u8>>> {
        self.client.parent_results(&self.execution).await
    }

    /// Report progress: a number or a small JSON value (at most
    /// [`MAX_PROGRESS_BYTES`](ff_core::contract::limits::MAX_PROGRESS_BYTES)
    /// encoded), stored on the record where `get`, a
    /// [`JobHandle`](crate::JobHandle) and `ff inspect` see it. Throttled:
    /// at most one write every 250 ms; the latest value always lands.
    pub fn progress(&self, value: impl serde::Serialize) {
        match serde_json::to_vec(&value) {
            Ok(v) => Progress::report(&self.progress, v),
            Err(e) => {
                tracing::warn!(execution = %self.execution, error = %e, "progress is not JSON; dropped")
            }
        }
    }

    /// The application state of type `T` given to the worker
    /// ([`WorkerBuilder::data`](super::WorkerBuilder::data)), e.g. a
    /// database pool. `None` when none of that type was given.
    pub fn data<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.data.get::<T>()
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

/// How a handler says an attempt did not succeed. `?` on any
/// `std::error::Error` makes a retryable failure that keeps the error's type
/// and chain of causes ([`Failure`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// The attempt failed: tried again under the execution's retry policy
    /// when the failure is retryable, failed for good otherwise.
    Failed(Failure),
    /// Not a failure: run it again after this delay (uses no retry).
    Delay(Duration),
    /// Not a failure: wait for signals (the next claim after it resumes is
    /// the next attempt). Create pending waitpoints first
    /// ([`crate::Client::create_waitpoint`]) to hand out their tokens.
    Suspend(crate::client::Suspension),
}

impl JobError {
    /// A failure that may be retried (per the execution's policy).
    pub fn retry(msg: impl std::fmt::Display) -> Self {
        JobError::Failed(Failure::message(Failure::MESSAGE, msg, true))
    }
    /// A failure that is final, whatever retries are left.
    pub fn fatal(msg: impl std::fmt::Display) -> Self {
        JobError::Failed(Failure::message(Failure::MESSAGE, msg, false))
    }
    /// An error that is final, kept with its type and causes.
    pub fn fatal_error<E: std::error::Error>(e: E) -> Self {
        JobError::Failed(Failure::from_error(std::any::type_name::<E>(), &e, false))
    }
    /// Run it again after `d`, using no retry.
    pub fn delay(d: Duration) -> Self {
        JobError::Delay(d)
    }
    /// Wait for signals.
    pub fn suspend(how: crate::client::Suspension) -> Self {
        JobError::Suspend(how)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError::Failed(Failure::from_error(std::any::type_name::<E>(), &e, true))
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
