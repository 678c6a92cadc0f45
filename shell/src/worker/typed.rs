//! A typed job's handler: the payload decoded into the job type's
//! arguments before the handler runs (a payload that does not decode fails
//! the execution for good, naming the kind and the codec's complaint), the
//! output encoded after.

use super::handler::{Handler, Job, JobError, JobResult};
use crate::failure::Failure;
use crate::job_type::JobType;
use futures::future::BoxFuture;
use std::future::Future;
use std::marker::PhantomData;

pub(crate) struct Typed<J, F> {
    f: F,
    job: PhantomData<fn() -> J>,
}

impl<J, F> Typed<J, F> {
    pub(crate) fn new(f: F) -> Self {
        Self {
            f,
            job: PhantomData,
        }
    }
}

impl<J, F, Fut> Handler for Typed<J, F>
where
    J: JobType,
    F: Fn(Job, J::Args) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<J::Output, JobError>> + Send + 'static,
{
    fn run(&self, job: Job) -> BoxFuture<'static, JobResult> {
        let args = match J::CODEC.decode::<J::Args>(J::KIND, &job.payload) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(execution = %job.execution, error = %e, "payload does not decode; failing for good");
                let f = Failure::from_error(Failure::DECODE, &e, false);
                return Box::pin(std::future::ready(Err(JobError::Failed(f))));
            }
        };
        let running = (self.f)(job, args);
        Box::pin(async move {
            let out = running.await?;
            J::CODEC
                .encode(J::KIND, &out)
                .map_err(|e| JobError::Failed(Failure::from_error(Failure::DECODE, &e, false)))
        })
    }
}
