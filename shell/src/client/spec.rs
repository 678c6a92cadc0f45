//! ExecutionSpec: what a caller asks for when creating an execution, checked
//! into the contract's arguments before anything is sent.

use crate::error::{Error, Result};
use ff_core::admission;
use ff_core::contract::execution::CreateArgs;
use ff_core::contract::flow::Membership;
use ff_core::contract::{limits, record};
use ff_core::flow::JoinPolicy;
use ff_core::keys::flow_partition;
use ff_core::keys::IdempotencyKey;
use ff_core::retry::RetryPolicy;
use ff_core::{
    BudgetId, ExecutionId, FlowId, Kind, Lane, Namespace, PartitionConfig, PartitionFamily,
    QuotaId, TagName,
};
use std::time::Duration;

/// A new execution. Defaults: lane `default`, namespace `default`, priority 0,
/// no delay/timeout/deadline, [`RetryPolicy::default`], 3 lease reclaims,
/// retention 24 h.
#[derive(Debug, Clone)]
pub struct ExecutionSpec {
    /// What kind of work (selects the worker's handler).
    pub kind: String,
    /// The lane whose workers may claim it.
    pub lane: String,
    /// Its namespace.
    pub namespace: String,
    /// Claim order within the lane: higher first (0..=1000).
    pub priority: u32,
    /// Input for the handler.
    pub payload: Vec<u8>,
    /// Eligible only after this long.
    pub delay: Duration,
    /// Each attempt must finish within this.
    pub attempt_timeout: Option<Duration>,
    /// The whole execution must finish within this (from creation).
    pub deadline: Option<Duration>,
    /// How failed attempts are retried.
    pub retry: RetryPolicy,
    /// Expired leases reclaimed before the execution fails.
    pub max_reclaims: u32,
    /// How long it is kept once terminal.
    pub retention: Duration,
    /// Key and TTL: a repeat create with the same key returns the first execution.
    pub idempotency: Option<(String, Duration)>,
    /// Free-form tags.
    pub tags: Vec<(String, String)>,
    /// A flow member: the flow, its join, and whether to cancel the parents
    /// left unresolved once the join is decided.
    pub flow: Option<(FlowId, JoinPolicy, bool)>,
    /// An id allocated beforehand (`Client::new_member_id`), so that edges to
    /// the execution can be declared before it exists.
    pub id: Option<ExecutionId>,
    /// Budgets it draws on: not claimable while one is breached.
    pub budgets: Vec<String>,
    /// Quotas it draws on: admitted against their window and concurrency cap.
    pub quotas: Vec<String>,
    /// Capabilities a worker needs to run it.
    pub capabilities: Vec<String>,
}

impl ExecutionSpec {
    /// An execution of `kind` with the defaults above.
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            lane: "default".into(),
            namespace: record::DEFAULT_NAMESPACE.into(),
            priority: 0,
            payload: Vec::new(),
            delay: Duration::ZERO,
            attempt_timeout: None,
            deadline: None,
            retry: RetryPolicy::default(),
            max_reclaims: record::DEFAULT_MAX_RECLAIMS,
            retention: Duration::from_millis(record::DEFAULT_RETENTION_MS),
            idempotency: None,
            tags: Vec::new(),
            flow: None,
            id: None,
            budgets: Vec::new(),
            quotas: Vec::new(),
            capabilities: Vec::new(),
        }
    }

    /// Set the lane.
    pub fn lane(mut self, lane: impl Into<String>) -> Self {
        self.lane = lane.into();
        self
    }
    /// Set the namespace.
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = ns.into();
        self
    }
    /// Set the priority.
    pub fn priority(mut self, p: u32) -> Self {
        self.priority = p;
        self
    }
    /// Set the payload.
    pub fn payload(mut self, p: impl Into<Vec<u8>>) -> Self {
        self.payload = p.into();
        self
    }
    /// Make it eligible only after `d`.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    /// Bound each attempt.
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = Some(d);
        self
    }
    /// Bound the whole execution.
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = Some(d);
        self
    }
    /// Set the retry policy.
    pub fn retry(mut self, r: RetryPolicy) -> Self {
        self.retry = r;
        self
    }
    /// Set how many expired leases are reclaimed before it fails.
    pub fn max_reclaims(mut self, n: u32) -> Self {
        self.max_reclaims = n;
        self
    }
    /// Keep it this long once terminal.
    pub fn retention(mut self, d: Duration) -> Self {
        self.retention = d;
        self
    }
    /// A repeat create with the same key (within `ttl`) returns the first execution.
    pub fn idempotency_key(mut self, key: impl Into<String>, ttl: Duration) -> Self {
        self.idempotency = Some((key.into(), ttl));
        self
    }
    /// Add a tag.
    pub fn tag(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((name.into(), value.into()));
        self
    }
    /// A member of `flow` that runs once its parents satisfy `join`.
    pub fn in_flow(mut self, flow: &FlowId, join: JoinPolicy) -> Self {
        self.flow = Some((flow.clone(), join, false));
        self
    }
    /// Once this member's join is decided, cancel the parents still running
    /// (e.g. the losers of an `AnyOf` race).
    pub fn cancel_remaining_parents(mut self) -> Self {
        if let Some(f) = &mut self.flow {
            f.2 = true;
        }
        self
    }
    /// Draw on a budget (`Client::define_budget`).
    pub fn budget(mut self, name: impl Into<String>) -> Self {
        self.budgets.push(name.into());
        self
    }
    /// Be admitted by a quota (`Client::define_quota`).
    pub fn quota(mut self, name: impl Into<String>) -> Self {
        self.quotas.push(name.into());
        self
    }
    /// Run only on a worker that registered this capability.
    pub fn capability(mut self, name: impl Into<String>) -> Self {
        self.capabilities.push(name.into());
        self
    }
    /// Create under an id allocated with `Client::new_member_id` (a member
    /// of the flow, or an execution to add to it later with
    /// `Client::add_to_flow`).
    pub fn id(mut self, id: ExecutionId) -> Self {
        self.id = Some(id);
        self
    }

    /// Check every field and build the call's arguments. The execution's
    /// partition is CRC16 of its random id, or of its idempotency key when it
    /// has one (so a repeated create meets the first one's record).
    pub(crate) fn into_args(self, config: &PartitionConfig, random: u128) -> Result<CreateArgs> {
        let ms = |field: &'static str, d: Duration, min: u64| -> Result<u64> {
            let v = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            if v < min || v > limits::MAX_DURATION_MS {
                return Err(Error::Invalid {
                    field,
                    reason: format!("{v} ms is outside {min}..={} ms", limits::MAX_DURATION_MS),
                });
            }
            Ok(v)
        };
        if self.priority > limits::MAX_PRIORITY {
            return Err(Error::Invalid {
                field: "priority",
                reason: format!("{} exceeds {}", self.priority, limits::MAX_PRIORITY),
            });
        }
        if self.payload.len() > limits::MAX_PAYLOAD_BYTES {
            return Err(ff_core::FfError::PayloadTooLarge {
                len: self.payload.len() as u64,
                max: limits::MAX_PAYLOAD_BYTES as u64,
            }
            .into());
        }
        if self.tags.len() > limits::MAX_TAGS {
            return Err(Error::Invalid {
                field: "tags",
                reason: format!("{} tags, at most {}", self.tags.len(), limits::MAX_TAGS),
            });
        }
        self.retry.validate().map_err(|reason| Error::Invalid {
            field: "retry",
            reason,
        })?;
        let namespace = Namespace::new(self.namespace)?;
        let tags = self
            .tags
            .into_iter()
            .map(|(k, v)| {
                if v.len() > limits::MAX_TAG_VALUE_BYTES {
                    return Err(Error::Invalid {
                        field: "tags",
                        reason: format!(
                            "value of {k} is longer than {} bytes",
                            limits::MAX_TAG_VALUE_BYTES
                        ),
                    });
                }
                Ok((TagName::new(k)?, v))
            })
            .collect::<Result<Vec<_>>>()?;
        let idempotency = match self.idempotency {
            None => None,
            Some((k, ttl)) => Some((IdempotencyKey::new(k)?, ms("idempotency_ttl", ttl, 1)?)),
        };
        // A flow member lives in its flow's partition (its idempotency record
        // too: a repeated create of the same member meets it there).
        let partition = match (&self.flow, &idempotency) {
            (Some((flow, _, _)), _) => flow_partition(flow, config).index,
            (None, Some((key, _))) => key.partition(&namespace, config).index,
            // (an id given, e.g. one of a flow's partition to add it to the
            // flow later: Client::add_to_flow, is created where it says)
            (None, None) => match &self.id {
                Some(id) => id.partition_index(),
                None => {
                    config
                        .partition_of(PartitionFamily::Flow, &format!("{random:032x}"))
                        .index
                }
            },
        };
        if partition >= config.flow_partitions {
            return Err(Error::Invalid {
                field: "id",
                reason: format!(
                    "partition {partition} is past this deployment's {}",
                    config.flow_partitions
                ),
            });
        }
        let execution = match self.id {
            Some(id) if id.partition_index() == partition => id,
            Some(id) => {
                return Err(Error::Invalid {
                    field: "id",
                    reason: format!(
                    "{id} is not in partition {partition} (its flow's, or its idempotency key's)"
                ),
                })
            }
            None => ExecutionId::new(partition, random),
        };
        if self.budgets.len() > admission::MAX_PER_EXECUTION
            || self.quotas.len() > admission::MAX_PER_EXECUTION
        {
            return Err(Error::Invalid {
                field: "admission",
                reason: format!(
                    "at most {} budgets and {} quotas",
                    admission::MAX_PER_EXECUTION,
                    admission::MAX_PER_EXECUTION
                ),
            });
        }
        let admission = admission::Admission {
            budgets: self
                .budgets
                .iter()
                .map(|b| BudgetId::parse(b))
                .collect::<std::result::Result<_, _>>()?,
            quotas: self
                .quotas
                .iter()
                .map(|q| QuotaId::parse(q))
                .collect::<std::result::Result<_, _>>()?,
            capabilities: admission::parse_capabilities(&self.capabilities.join(","))?,
        };
        if admission.capabilities.len() != self.capabilities.len() {
            return Err(Error::Invalid {
                field: "capabilities",
                reason: "a capability name is empty".into(),
            });
        }
        let flow = self.flow.map(|(flow, join, cancel_remaining)| Membership {
            flow,
            join,
            cancel_remaining,
        });
        Ok(CreateArgs {
            execution,
            namespace,
            lane: Lane::new(self.lane)?,
            kind: Kind::new(self.kind)?,
            priority: self.priority,
            payload: self.payload,
            delay_ms: ms("delay", self.delay, 0)?,
            attempt_timeout_ms: self
                .attempt_timeout
                .map(|d| ms("attempt_timeout", d, 1))
                .transpose()?
                .unwrap_or(0),
            deadline_ms: self
                .deadline
                .map(|d| ms("deadline", d, 1))
                .transpose()?
                .unwrap_or(0),
            retry: self.retry,
            max_reclaims: self.max_reclaims,
            retention_ms: ms("retention", self.retention, 0)?,
            idempotency,
            tags,
            flow,
            admission,
        })
    }
}
