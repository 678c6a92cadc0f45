//! Typed jobs on the client: enqueue a [`JobType`]'s arguments, get a
//! [`JobHandle`] whose [`result`](JobHandle::result) is the decoded output.

use super::wait::Outcome;
use super::Client;
use crate::error::Result;
use crate::job_type::JobType;
use crate::ExecutionSpec;
use ff_core::contract::execution::Created;
use ff_core::ExecutionId;
use std::marker::PhantomData;
use std::time::Duration;
use tokio::time::Instant;

/// An enqueued typed job.
#[derive(Debug)]
pub struct JobHandle<J: JobType> {
    client: Client,
    created: Created,
    job: PhantomData<fn() -> J>,
}

impl<J: JobType> Clone for JobHandle<J> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            created: self.created.clone(),
            job: PhantomData,
        }
    }
}

impl<J: JobType> JobHandle<J> {
    /// A handle on an execution of `J` made earlier (by its id).
    pub fn of(client: &Client, execution: ExecutionId) -> Self {
        Self {
            client: client.clone(),
            created: Created {
                execution,
                created: false,
                state: ff_core::state::PublicState::Waiting,
            },
            job: PhantomData,
        }
    }

    /// The execution's id.
    pub fn id(&self) -> &ExecutionId {
        &self.created.execution
    }

    /// What the create answered (`created` is false for an idempotency-key
    /// duplicate: the handle is then on the existing execution).
    pub fn created(&self) -> &Created {
        &self.created
    }

    /// Wait for the end, however long it takes; the output decoded.
    pub async fn result(&self) -> Result<Outcome<J::Output>> {
        self.decode(self.client.wait_until(self.id(), None).await?)
    }

    /// Wait for the end at most `timeout` ([`crate::Error::TimedOut`] after).
    pub async fn result_within(&self, timeout: Duration) -> Result<Outcome<J::Output>> {
        let deadline = Instant::now().checked_add(timeout);
        self.decode(self.client.wait_until(self.id(), deadline).await?)
    }

    /// The progress the running attempt last reported (JSON), if any.
    pub async fn progress(&self) -> Result<Option<serde_json::Value>> {
        let r = self.client.get(self.id()).await?;
        Ok(r.progress.and_then(|p| serde_json::from_slice(&p).ok()))
    }

    fn decode(&self, o: Outcome<Vec<u8>>) -> Result<Outcome<J::Output>> {
        Ok(o.try_map(|bytes| J::CODEC.decode(J::KIND, &bytes))?)
    }
}

impl Client {
    /// Enqueue a job of type `J` with the default options.
    pub async fn enqueue<J: JobType>(&self, job: J, args: &J::Args) -> Result<JobHandle<J>> {
        self.enqueue_with(job, args, |spec| spec).await
    }

    /// Enqueue a job of type `J`; `options` sets the spec's options (delay,
    /// priority, retry, idempotency key, flow, budgets, capabilities...).
    pub async fn enqueue_with<J: JobType>(
        &self,
        _job: J,
        args: &J::Args,
        options: impl FnOnce(ExecutionSpec) -> ExecutionSpec,
    ) -> Result<JobHandle<J>> {
        let payload = J::CODEC.encode(J::KIND, args)?;
        let created = self
            .create(options(ExecutionSpec::new(J::KIND)).payload(payload))
            .await?;
        Ok(JobHandle {
            client: self.clone(),
            created,
            job: PhantomData,
        })
    }
}
