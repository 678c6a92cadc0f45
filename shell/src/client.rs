//! Client: the typed async API over the execution data plane.

use crate::error::{Error, Result, StoreError};
use crate::spec::ExecutionSpec;
use crate::store::{cmd, Store};
use ff_core::contract::execution::{
    self as ex, ClaimArgs, Claimed, Created, Ended, ExecutionRecord, Lease,
};
use ff_core::contract::{limits, Call};
use ff_core::keys::{self, PartitionKeys};
use ff_core::reply::Reply;
use ff_core::{
    ExecutionId, Lane, LeaseId, Partition, PartitionConfig, PartitionFamily, WorkerInstance,
    WorkerName,
};
use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tracing::Instrument;

mod batch;
mod suspension;
pub use suspension::{PendingWaitpoint, Signal, Suspension};

/// A handler's result within the payload limit, refused before it is sent.
fn result_fits(result: &[u8]) -> Result<()> {
    if result.len() > limits::MAX_PAYLOAD_BYTES {
        return Err(ff_core::FfError::PayloadTooLarge {
            len: result.len() as u64,
            max: limits::MAX_PAYLOAD_BYTES as u64,
        }
        .into());
    }
    Ok(())
}

/// Most `ff_claim` calls one claim makes to get past executions needing
/// capabilities the worker lacks (each looks past up to
/// [`ex::ROUTE_LOOKAHEAD`] of them).
const MAX_ROUTE_PAGES: usize = 16;

/// A handle on the data plane. Cheap to clone; share one per process.
///
/// Create an execution, claim it as a worker would, complete it, read it
/// back (on the in-process store; [`crate::store::RedisStore`] for a server):
///
/// ```
/// use ff_engine::core::state::PublicState;
/// use ff_engine::core::{Lane, WorkerInstance, WorkerName};
/// use ff_engine::store::MemoryStore;
/// use ff_engine::{Client, ExecutionSpec};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::new(Arc::new(MemoryStore::new()), Default::default()).await?;
/// let created = client.create(ExecutionSpec::new("email.send").payload("to: ada")).await?;
/// assert_eq!(created.state, PublicState::Waiting);
///
/// let (worker, instance) = (WorkerName::new("mailer")?, WorkerInstance::new("mailer-1")?);
/// let mut claimed = client
///     .claim(&Lane::default_lane(), &worker, &instance, Duration::from_secs(30), 10)
///     .await?;
/// let job = claimed.pop().expect("one eligible execution");
/// assert_eq!(job.payload, b"to: ada");
/// client.complete(&job.lease, b"sent").await?;
///
/// let record = client.get(&created.execution).await?;
/// assert_eq!(record.public_state, PublicState::Completed);
/// assert_eq!(record.result.as_deref(), Some(&b"sent"[..]));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    store: Arc<dyn Store>,
    pub(crate) config: PartitionConfig,
    lanes: Arc<RwLock<HashSet<String>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish()
    }
}

fn millis(field: &'static str, d: Duration, min: u64, max: u64) -> Result<u64> {
    let v = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if v < min || v > max {
        return Err(Error::Invalid {
            field,
            reason: format!("{v} ms is outside {min}..={max} ms"),
        });
    }
    Ok(v)
}

/// 128 random bits for a new id. Read from getrandom on every call (not a
/// thread-local generator seeded once): under the simulator getrandom is the
/// simulation's, so every run of a seed draws the same ids.
pub(crate) fn random_u128() -> u128 {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the system random source is available");
    u128::from_le_bytes(b)
}

/// Record the partition counts on first start; refuse counts that differ
/// from the recorded ones (they would move every id's keys).
pub(crate) async fn check_partition_config(store: &dyn Store, c: &PartitionConfig) -> Result<()> {
    let configured = format!(
        "{}/{}/{}",
        c.flow_partitions, c.budget_partitions, c.quota_partitions
    );
    let fields = [
        ("flow_partitions", c.flow_partitions),
        ("budget_partitions", c.budget_partitions),
        ("quota_partitions", c.quota_partitions),
    ];
    let mut stored = Vec::new();
    for (field, value) in fields {
        store
            .command(&cmd(["HSETNX", keys::CONFIG, field, &value.to_string()]))
            .await?;
        let got = store.command(&cmd(["HGET", keys::CONFIG, field])).await?;
        stored.push(got.text().unwrap_or_default());
    }
    let stored = stored.join("/");
    if stored != configured {
        return Err(Error::PartitionMismatch { stored, configured });
    }
    Ok(())
}

impl Client {
    /// Attach to a store: record the partition counts on first start (and
    /// refuse to run with counts that differ from the recorded ones), register
    /// the `default` lane and load the lane registry.
    pub async fn new(store: Arc<dyn Store>, config: PartitionConfig) -> Result<Self> {
        config.validate().map_err(|reason| Error::Invalid {
            field: "partition config",
            reason,
        })?;
        let client = Self {
            store,
            config,
            lanes: Arc::new(RwLock::new(HashSet::new())),
        };
        check_partition_config(client.store.as_ref(), &client.config).await?;
        client.register_lane(&Lane::default_lane()).await?;
        Ok(client)
    }

    /// The partition counts in use.
    pub fn config(&self) -> &PartitionConfig {
        &self.config
    }

    /// The store it talks to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Make a lane known: creates and claims name only registered lanes.
    pub async fn register_lane(&self, lane: &Lane) -> Result<()> {
        self.store
            .command(&cmd(["SADD", keys::LANES, lane.as_str()]))
            .await?;
        self.lanes
            .write()
            .expect("lane cache lock")
            .insert(lane.as_str().to_owned());
        Ok(())
    }

    /// Lanes registered in Valkey (by any process).
    pub async fn lanes(&self) -> Result<Vec<Lane>> {
        let reply = self.store.command(&cmd(["SMEMBERS", keys::LANES])).await?;
        let names: Vec<String> = match reply {
            Reply::Array(items) => items.iter().filter_map(Reply::text).collect(),
            _ => Vec::new(),
        };
        let mut cache = self.lanes.write().expect("lane cache lock");
        let mut out = Vec::new();
        for n in names {
            match Lane::new(n.clone()) {
                Ok(l) => {
                    cache.insert(n);
                    out.push(l);
                }
                Err(e) => {
                    tracing::warn!(lane = %n, error = %e, "skipping malformed lane in the registry")
                }
            }
        }
        Ok(out)
    }

    async fn check_lane(&self, lane: &Lane) -> Result<()> {
        if self
            .lanes
            .read()
            .expect("lane cache lock")
            .contains(lane.as_str())
        {
            return Ok(());
        }
        // Another process may have registered it since we last looked.
        let reply = self
            .store
            .command(&cmd(["SISMEMBER", keys::LANES, lane.as_str()]))
            .await?;
        if reply.int() == Some(1) {
            self.lanes
                .write()
                .expect("lane cache lock")
                .insert(lane.as_str().to_owned());
            return Ok(());
        }
        Err(ff_core::FfError::UnknownLane(lane.as_str().to_owned()).into())
    }

    pub(crate) async fn call(&self, call: &Call) -> Result<Reply> {
        let span = tracing::debug_span!("fcall", function = call.function);
        self.store
            .fcall(call)
            .instrument(span)
            .await
            .map_err(|e: StoreError| {
                tracing::warn!(function = call.function, error = %e, "fcall failed");
                Error::Store(e)
            })
    }

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
        let lease_ttl_ms = millis(
            "lease_ttl",
            lease_ttl,
            limits::MIN_LEASE_MS,
            limits::MAX_LEASE_MS,
        )?;
        if max == 0 || max > limits::MAX_CLAIM_BATCH {
            return Err(Error::Invalid {
                field: "max",
                reason: format!("{max} is outside 1..={}", limits::MAX_CLAIM_BATCH),
            });
        }
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
                lease_ids: (claimed.len()..max)
                    .map(|_| LeaseId::from_u128(random_u128()))
                    .collect(),
                capabilities: capabilities.to_vec(),
                skip: u32::try_from(skipped.len()).unwrap_or(ex::MAX_CLAIM_SKIP),
            };
            let reply = self.call(&ex::claim(&args)).await?;
            let (got, passed) = ex::decode_claim_routed(&reply, &args.lease_ids)?;
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
        // Executions that draw on budgets or quotas are admitted (or blocked) here.
        let claimed = self.admit_claimed(claimed).await;
        for c in &claimed {
            tracing::debug!(execution = %c.lease.execution, epoch = c.lease.epoch, attempt = c.attempt, "claimed");
        }
        Ok(claimed)
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

    pub(crate) fn check_partition(&self, execution: &ExecutionId) -> Result<()> {
        if execution.partition_index() >= self.config.flow_partitions {
            return Err(Error::Invalid {
                field: "execution id",
                reason: format!(
                    "partition {} is outside this deployment's {} partitions",
                    execution.partition_index(),
                    self.config.flow_partitions
                ),
            });
        }
        Ok(())
    }
}
