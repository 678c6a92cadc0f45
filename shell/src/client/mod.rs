//! Client: the typed async API over the data plane. This file holds the
//! handle itself (attach to a store, the lane registry, the one way calls
//! go out); each part of the API is a file beside it: `execution`
//! (create, claim, end, cancel, read), `batch` (bulk submit and batched
//! reports), `counts` (index cardinalities per state and lane),
//! `suspension` (waitpoints and signals), `flows`, `admission` (budgets,
//! quotas, worker registration), `schedules` (cron and interval schedules:
//! [`Schedule`]) and `spec`
//! ([`ExecutionSpec`](crate::ExecutionSpec)).

use crate::error::{Error, Result, StoreError};
use crate::store::{cmd, Store};
use ff_core::contract::{limits, Call};
use ff_core::keys;
use ff_core::reply::Reply;
use ff_core::{ExecutionId, Lane, PartitionConfig};
use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tracing::Instrument;

mod admission;
mod batch;
mod counts;
mod execution;
mod flows;
mod list;
mod operator;
mod schedules;
pub(crate) mod spec;
mod suspension;
mod typed;
mod wait;
pub use counts::{Counts, Series};
pub use list::{ListQuery, Page};
pub use operator::{BulkRequeue, Requeued, BULK_MAX};
pub use schedules::Schedule;
pub use suspension::{PendingWaitpoint, Signal, Suspension};
pub use typed::JobHandle;
pub use wait::Outcome;

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
/// let client = Client::new(Arc::new(MemoryStore::new())).await?;
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
    /// Started by the first `wait`.
    waiters: Arc<tokio::sync::OnceCell<wait::Waiters>>,
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

/// The partition counts of the deployment: those recorded in Valkey, after
/// recording `wanted` (or the defaults) if none are yet. Counts that differ
/// from the recorded ones are refused: they would move every id's keys.
pub(crate) async fn resolve_partitions(
    store: &dyn Store,
    wanted: Option<&PartitionConfig>,
) -> Result<PartitionConfig> {
    let first = wanted.copied().unwrap_or_default();
    let fields = [
        ("flow_partitions", first.flow_partitions),
        ("budget_partitions", first.budget_partitions),
        ("quota_partitions", first.quota_partitions),
    ];
    for (field, value) in fields {
        store
            .command(&cmd(["HSETNX", keys::CONFIG, field, &value.to_string()]))
            .await?;
    }
    let got = store
        .command(&cmd([
            "HMGET",
            keys::CONFIG,
            "flow_partitions",
            "budget_partitions",
            "quota_partitions",
        ]))
        .await?;
    let texts: Vec<String> = match &got {
        Reply::Array(items) => items.iter().map(|r| r.text().unwrap_or_default()).collect(),
        _ => Vec::new(),
    };
    let show = |c: &PartitionConfig| {
        format!(
            "{}/{}/{}",
            c.flow_partitions, c.budget_partitions, c.quota_partitions
        )
    };
    let stored = match texts.iter().map(|t| t.parse::<u16>()).collect::<Vec<_>>()[..] {
        [Ok(flow_partitions), Ok(budget_partitions), Ok(quota_partitions)] => PartitionConfig {
            flow_partitions,
            budget_partitions,
            quota_partitions,
        },
        _ => {
            return Err(Error::PartitionMismatch {
                stored: texts.join("/"),
                configured: show(&first),
            })
        }
    };
    if let Some(w) = wanted {
        if *w != stored {
            return Err(Error::PartitionMismatch {
                stored: show(&stored),
                configured: show(w),
            });
        }
    }
    Ok(stored)
}

impl Client {
    /// Attach to a store: use the partition counts recorded in it (the
    /// defaults, 256 / 32 / 32, are recorded on first start), register the
    /// `default` lane and load the lane registry.
    pub async fn new(store: Arc<dyn Store>) -> Result<Self> {
        Self::attach(store, None).await
    }

    /// Attach to a store with these partition counts: recorded if the
    /// store has none yet (a new deployment), refused if it has others.
    pub async fn with_partitions(store: Arc<dyn Store>, config: PartitionConfig) -> Result<Self> {
        config.validate().map_err(|reason| Error::Invalid {
            field: "partition config",
            reason,
        })?;
        Self::attach(store, Some(config)).await
    }

    async fn attach(store: Arc<dyn Store>, wanted: Option<PartitionConfig>) -> Result<Self> {
        let config = resolve_partitions(store.as_ref(), wanted.as_ref()).await?;
        let client = Self {
            store,
            config,
            lanes: Arc::new(RwLock::new(HashSet::new())),
            waiters: Arc::default(),
        };
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
