//! The execution half of [`Client`]: create an execution, claim it as a
//! worker, renew its lease, end it (complete, fail, delay, release), cancel
//! it and read it back.

use super::{millis, random_u128, result_fits, Client};
use crate::error::{Error, Result};
use crate::store::cmd;
use crate::ExecutionSpec;
use ff_core::contract::execution::{
    self as ex, ClaimArgs, Claimed, Created, Ended, ExecutionRecord, Lease,
};
use ff_core::contract::limits;
use ff_core::keys::PartitionKeys;
use ff_core::reply::Reply;
use ff_core::{ExecutionId, Lane, LeaseId, Partition, PartitionFamily, WorkerInstance, WorkerName};
use std::time::Duration;

/// Most `ff_claim` calls one claim makes to get past executions needing
/// capabilities the worker lacks (each looks past up to
/// [`ex::ROUTE_LOOKAHEAD`] of them).
const MAX_ROUTE_PAGES: usize = 16;

impl Client {
    /// Create an execution.
    pub async fn create(&self, spec: ExecutionSpec) -> Result<Created> {
        let args = spec.into_args(&self.config, random_u128())?;
        self.check_lane(&args.lane).await?;
        let reply = self.call(&ex::create(&args)).await?;
        let created = ex::decode_create(&reply)?;
        tracing::debug!(execution = %created.execution, created = created.created, state = %created.state, "create");
        Ok(created)
    }

    /// Claim up to `max` eligible executions of `lane`, from any partition.
    /// Partitions are visited in the order of their best head (highest
    /// priority, then oldest); within a partition the order is exact, across
    /// partitions a batch may take lower-priority work of a better partition
    /// before the head of the next one (claim one at a time for a strict
    /// global order).
    pub async fn claim(
        &self,
        lane: &Lane,
        worker: &WorkerName,
        instance: &WorkerInstance,
        lease_ttl: Duration,
        max: usize,
    ) -> Result<Vec<Claimed>> {
        millis(
            "lease_ttl",
            lease_ttl,
            limits::MIN_LEASE_MS,
            limits::MAX_LEASE_MS,
        )?;
        self.check_lane(lane).await?;
        let max = max.clamp(1, limits::MAX_CLAIM_BATCH);
        // One pipelined round: the head of each partition's eligible index.
        let partitions: Vec<Partition> = self.config.partitions(PartitionFamily::Flow).collect();
        let heads = self
            .store
            .command_many(
                &partitions
                    .iter()
                    .map(|p| {
                        cmd([
                            "ZRANGE",
                            &PartitionKeys::new(*p).eligible(lane),
                            "0",
                            "0",
                            "WITHSCORES",
                        ])
                    })
                    .collect::<Vec<_>>(),
            )
            .await;
        let mut ready: Vec<(f64, Partition)> = Vec::new();
        for (p, head) in partitions.iter().zip(heads) {
            if let Reply::Array(items) = head? {
                if let Some(score) = items
                    .get(1)
                    .and_then(Reply::text)
                    .and_then(|s| s.parse::<f64>().ok())
                {
                    ready.push((score, *p));
                }
            }
        }
        ready.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut out = Vec::new();
        for (_, p) in ready {
            if out.len() >= max {
                break;
            }
            out.extend(
                self.claim_in(p, lane, worker, instance, lease_ttl, max - out.len())
                    .await?,
            );
        }
        Ok(out)
    }

    /// Claim up to `max` eligible executions of `lane` in one partition (one
    /// FCALL), as a worker without capabilities.
    pub async fn claim_in(
        &self,
        partition: Partition,
        lane: &Lane,
        worker: &WorkerName,
        instance: &WorkerInstance,
        lease_ttl: Duration,
        max: usize,
    ) -> Result<Vec<Claimed>> {
        self.claim_in_capable(partition, lane, worker, instance, lease_ttl, max, &[])
            .await
    }

    /// [`Client::claim_in`] for a worker with `capabilities`: executions that
    /// need others are skipped (see `shell/src/admission.rs`).
    #[allow(clippy::too_many_arguments)]
    pub async fn claim_in_capable(
        &self,
        partition: Partition,
        lane: &Lane,
        worker: &WorkerName,
        instance: &WorkerInstance,
        lease_ttl: Duration,
        max: usize,
        capabilities: &[String],
    ) -> Result<Vec<Claimed>> {
        let lease_ttl_ms = claim_limits(lease_ttl, max)?;
        // A call that looked past a full lookahead of executions needing
        // capabilities this worker lacks goes on behind them, page by page.
        let (mut claimed, mut skipped) = (Vec::new(), Vec::new());
        for _ in 0..MAX_ROUTE_PAGES {
            let args = ClaimArgs {
                partition,
                lane: lane.clone(),
                worker: worker.clone(),
                instance: instance.clone(),
                lease_ttl_ms,
                max: max - claimed.len(),
                lease_id: LeaseId::from_u128(random_u128()),
                capabilities: capabilities.to_vec(),
                skip: u32::try_from(skipped.len()).unwrap_or(ex::MAX_CLAIM_SKIP),
            };
            let reply = self.call(&ex::claim(&args)).await?;
            let (got, passed) = ex::decode_claim_routed(&reply, &args.lease_id, args.max)?;
            let more = passed.len() >= ex::ROUTE_LOOKAHEAD;
            claimed.extend(got);
            skipped.extend(passed);
            if !more || claimed.len() >= max {
                break;
            }
        }
        if !skipped.is_empty() {
            self.route_skipped(&skipped).await;
        }
        Ok(self.claimed(claimed).await)
    }

    /// What a claim handed out, once admitted: executions that draw on
    /// budgets or quotas are admitted (or blocked) here.
    pub(crate) async fn claimed(&self, claimed: Vec<Claimed>) -> Vec<Claimed> {
        let claimed = self.admit_claimed(claimed).await;
        for c in &claimed {
            tracing::debug!(execution = %c.lease.execution, epoch = c.lease.epoch, attempt = c.attempt, "claimed");
        }
        claimed
    }

    /// Extend a lease; returns the new expiry (server ms).
    pub async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<u64> {
        let ttl = millis("lease_ttl", ttl, limits::MIN_LEASE_MS, limits::MAX_LEASE_MS)?;
        Ok(ex::decode_renew(&self.call(&ex::renew(lease, ttl)).await?)?)
    }

    /// Finish successfully with `result`.
    pub async fn complete(&self, lease: &Lease, result: &[u8]) -> Result<Ended> {
        result_fits(result)?;
        Ok(ex::decode_ended(
            "ff_complete",
            &self.call(&ex::complete(lease, result)).await?,
        )?)
    }

    /// Report a failed attempt. With `retryable` and retries left, the
    /// execution is delayed by the retry policy's backoff; otherwise it fails.
    pub async fn fail(&self, lease: &Lease, error: &str, retryable: bool) -> Result<Ended> {
        Ok(ex::decode_ended(
            "ff_fail",
            &self.call(&ex::fail(lease, error, retryable)).await?,
        )?)
    }

    /// Give the execution back, due again after `delay` (uses no retry).
    pub async fn delay(&self, lease: &Lease, delay: Duration) -> Result<Ended> {
        let delay = millis("delay", delay, 0, limits::MAX_DURATION_MS)?;
        Ok(ex::decode_ended(
            "ff_delay",
            &self.call(&ex::delay(lease, delay)).await?,
        )?)
    }

    /// Hand the execution back unfinished: eligible again at once, using no
    /// retry (e.g. the worker is shutting down).
    pub async fn release(&self, lease: &Lease) -> Result<Ended> {
        Ok(ex::decode_ended(
            "ff_release",
            &self.call(&ex::release(lease)).await?,
        )?)
    }

    /// Cancel a non-terminal execution (an active one loses its lease).
    pub async fn cancel(&self, execution: &ExecutionId, reason: &str) -> Result<Ended> {
        self.check_partition(execution)?;
        if reason.len() > limits::MAX_REASON_BYTES {
            return Err(Error::Invalid {
                field: "reason",
                reason: format!("longer than {} bytes", limits::MAX_REASON_BYTES),
            });
        }
        Ok(ex::decode_ended(
            "ff_cancel",
            &self.call(&ex::cancel(execution, reason)).await?,
        )?)
    }

    /// Read one execution.
    pub async fn get(&self, execution: &ExecutionId) -> Result<ExecutionRecord> {
        self.check_partition(execution)?;
        Ok(ex::decode_get(
            execution,
            &self.call(&ex::get(execution)).await?,
        )?)
    }
}

/// A claim's lease length in ms, once it and the claim's size `max` are checked.
pub(crate) fn claim_limits(lease_ttl: Duration, max: usize) -> Result<u64> {
    if max == 0 || max > limits::MAX_CLAIM_BATCH {
        return Err(Error::Invalid {
            field: "max",
            reason: format!("{max} is outside 1..={}", limits::MAX_CLAIM_BATCH),
        });
    }
    millis(
        "lease_ttl",
        lease_ttl,
        limits::MIN_LEASE_MS,
        limits::MAX_LEASE_MS,
    )
}
