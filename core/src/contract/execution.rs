//! Contracts of the execution lifecycle functions (`lua/create.lua`,
//! `lua/claim.lua`, `lua/lease.lua`; the state rules in `lua/execution.lua`).

use super::{ok_fields, Call, CallError};
use crate::error::FfError;
use crate::id::{ExecutionId, LeaseId, WaitpointId};
use crate::keys::{self, IdempotencyKey, PartitionKeys};
use crate::name::{Kind, Lane, Namespace, TagName, WorkerInstance, WorkerName};
use crate::partition::Partition;
use crate::reply::{DecodeError, Fields, Reply};
use crate::retry::RetryPolicy;
use crate::state::{
    AttemptState, Eligibility, LifecyclePhase, PublicState, StateVector, TerminalOutcome,
};
use std::collections::{BTreeMap, HashMap};

/// The fencing token of one claim: the lease id and its epoch. Only the holder
/// of the current lease may renew, complete, fail or delay the execution.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The execution the lease is on.
    pub execution: ExecutionId,
    /// The lease id the claim handed out.
    pub id: LeaseId,
    /// Bumped at every claim; a stale holder's epoch no longer matches.
    pub epoch: u64,
}

/// Everything `ff_create` stores for a new execution.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateArgs {
    /// The new execution's id (its partition is in it).
    pub execution: ExecutionId,
    /// Namespace (scanner filter, idempotency scope).
    pub namespace: Namespace,
    /// The lane whose workers may claim it.
    pub lane: Lane,
    /// What kind of work it is (selects the worker's handler).
    pub kind: Kind,
    /// Claim order within the lane: higher first (0..=1000).
    pub priority: u32,
    /// Opaque input for the handler.
    pub payload: Vec<u8>,
    /// 0: eligible at once.
    pub delay_ms: u64,
    /// 0: none. Each attempt must finish within this.
    pub attempt_timeout_ms: u64,
    /// 0: none. The whole execution must finish within this (from creation).
    pub deadline_ms: u64,
    /// How failed attempts are retried.
    pub retry: RetryPolicy,
    /// Times an expired lease may be reclaimed before the execution fails.
    pub max_reclaims: u32,
    /// How long a terminal execution is kept before retention purges it.
    pub retention_ms: u64,
    /// With its TTL in ms: a repeat create with the same key returns the first execution.
    pub idempotency: Option<(IdempotencyKey, u64)>,
    /// Free-form tags (the scanner filter's instance tag is one).
    pub tags: Vec<(TagName, String)>,
    /// A flow member: `execution` must be in the flow's partition.
    pub flow: Option<super::flow::Membership>,
    /// The budgets and quotas it draws on (checked when it is claimed).
    pub admission: crate::admission::Admission,
}

/// The answer to `ff_create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The execution (the earlier one for a duplicate).
    pub execution: ExecutionId,
    /// False when the idempotency key named an execution created earlier.
    pub created: bool,
    /// Its state after the call.
    pub state: PublicState,
}

/// `ff_create`: store a new execution, eligible or delayed.
///
/// Repeat: answered `created` again, with the execution's state now: the record
/// under the same id is recognised as this creation (every field a creation
/// fixes is as sent), and nothing is written; with an idempotency key too (its
/// record names this very id). A repeat after retention purged the execution
/// would create it again: retention must outlast the store's retry window.
pub fn create(a: &CreateArgs) -> Call {
    let mut keys = vec![keys::exec(&a.execution)];
    keys.extend(idempotency_record(a));
    let mut call = Call::new("ff_create", keys).arg(&a.execution);
    let mut shape = shape(a).into_iter();
    call.args.extend(shape.by_ref().take(4));
    call.args.push(a.payload.clone());
    call.args.extend(shape);
    call
}

/// The key of a creation's idempotency record, if it has one.
fn idempotency_record(a: &CreateArgs) -> Option<String> {
    a.idempotency
        .as_ref()
        .map(|(k, _)| PartitionKeys::of(&a.execution).idempotency(&a.namespace, k))
}

/// A creation's shape: `ff_create`'s arguments but the id and the payload.
/// A bulk submit sends each distinct shape once (most batches have one).
pub(crate) fn shape(a: &CreateArgs) -> Vec<Vec<u8>> {
    let idem_ttl = a.idempotency.as_ref().map_or(0, |(_, ttl)| *ttl);
    let mut call = Call::new("", Vec::new())
        .arg(&a.namespace)
        .arg(&a.lane)
        .arg(&a.kind)
        .arg(a.priority)
        .arg(a.delay_ms)
        .arg(a.attempt_timeout_ms)
        .arg(a.deadline_ms)
        .arg(a.retry.encode())
        .arg(a.max_reclaims)
        .arg(a.retention_ms)
        .arg(idem_ttl);
    call = match &a.flow {
        Some(m) => call
            .arg(&m.flow)
            .arg(m.join.encode())
            .arg(u8::from(m.cancel_remaining)),
        None => call.arg("").arg("").arg(""),
    };
    call = call.arg(a.tags.len());
    for (k, v) in &a.tags {
        call = call.arg(k).arg(v);
    }
    if !a.admission.is_empty() {
        let (budgets, quotas, caps) = a.admission.encode_parts();
        call = call.arg(budgets).arg(quotas).arg(caps);
    }
    call.args
}

/// `ff_create_many`: many creations on one partition in one call (bulk
/// submit). Each distinct shape is sent once, numbered in order of first use.
///
/// Repeat: each item is answered as the repeat of its [`create`]: `created`
/// with its state now (in full, not the short id), nothing written.
pub fn create_many(partition: Partition, items: &[CreateArgs]) -> Call {
    let mut shapes: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut numbers: HashMap<Vec<Vec<u8>>, usize> = HashMap::new();
    let mut tail: Vec<Vec<u8>> = Vec::with_capacity(4 * items.len());
    for a in items {
        let s = shape(a);
        let next = shapes.len() + 1;
        let number = *numbers.entry(s).or_insert_with_key(|s| {
            shapes.push(s.clone());
            next
        });
        tail.push(number.to_string().into_bytes());
        tail.push(a.execution.to_string().into_bytes());
        tail.push(a.payload.clone());
        tail.push(idempotency_record(a).unwrap_or_default().into_bytes());
    }
    let mut call = Call::new("ff_create_many", vec![PartitionKeys::new(partition).all()])
        .arg(items.len())
        .arg(shapes.len());
    for s in shapes {
        call.args.push(s.len().to_string().into_bytes());
        call.args.extend(s);
    }
    call.args.extend(tail);
    call
}

/// Decode `ff_create_many`'s reply: one creation (or refusal) per item, in
/// order. The common answer, created and eligible at once, comes short: the
/// execution id alone.
pub fn decode_create_many(
    reply: &Reply,
    n: usize,
) -> Result<Vec<Result<Created, CallError>>, CallError> {
    decode_each("ff_create_many", reply, n, |r| match r {
        Reply::Bulk(id) => Ok(Created {
            execution: ExecutionId::parse(&String::from_utf8_lossy(id)).map_err(|e| {
                DecodeError {
                    function: "ff_create_many",
                    reason: e.to_string(),
                }
            })?,
            created: true,
            state: PublicState::Waiting,
        }),
        _ => decode_create(r),
    })
}

/// The replies of a batch function (`{1, n, reply * n}`), each decoded on its own.
fn decode_each<T>(
    function: &'static str,
    reply: &Reply,
    n: usize,
    decode: impl Fn(&Reply) -> Result<T, CallError>,
) -> Result<Vec<Result<T, CallError>>, CallError> {
    Ok(decode_each_then(function, reply, n, 0, decode)?.0)
}

/// [`decode_each`] of a reply that holds `tail` more elements after the `n`
/// item replies: the items' answers and the tail's fields.
fn decode_each_then<'a, T>(
    function: &'static str,
    reply: &'a Reply,
    n: usize,
    tail: usize,
    decode: impl Fn(&Reply) -> Result<T, CallError>,
) -> Result<(Vec<Result<T, CallError>>, crate::reply::Fields<'a>), CallError> {
    let mut f = ok_fields(function, reply)?;
    let count = f.int("count")?;
    if count != n as i64 || f.remaining() != n + tail {
        return Err(f.error(format!("expected {n} replies, got {count}")).into());
    }
    let each = (0..n)
        .map(|_| {
            f.next_reply("item reply")
                .map_err(CallError::from)
                .and_then(&decode)
        })
        .collect();
    Ok((each, f))
}

/// Decode `ff_create`'s reply.
pub fn decode_create(reply: &Reply) -> Result<Created, CallError> {
    let mut f = ok_fields("ff_create", reply)?;
    let created = match f.text("outcome")?.as_str() {
        "created" => true,
        "duplicate" => false,
        o => return Err(f.error(format!("unknown outcome {o:?}")).into()),
    };
    let execution = parse_eid(&mut f)?;
    let state = parse_state(&mut f)?;
    let state = state
        .public_state()
        .ok_or_else(|| f.error(format!("contradictory state {state:?}")))?;
    Ok(Created {
        execution,
        created,
        state,
    })
}

/// Claim up to `max` eligible executions of one lane in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimArgs {
    /// The partition to claim from.
    pub partition: crate::partition::Partition,
    /// The lane to claim from.
    pub lane: Lane,
    /// The claiming worker's name.
    pub worker: WorkerName,
    /// The claiming worker's instance.
    pub instance: WorkerInstance,
    /// Lease length in ms.
    pub lease_ttl_ms: u64,
    /// The most executions the call may hand out.
    pub max: usize,
    /// A fresh lease id: every execution the call hands out holds it, each
    /// under its own epoch (one id, not one per execution: each id sent is
    /// an argument the server converts and checks).
    pub lease_id: LeaseId,
    /// What the claiming worker can run: executions needing a capability
    /// not listed are skipped (left eligible for a capable worker).
    pub capabilities: Vec<String>,
    /// Start this many entries into the eligible index: past those an
    /// earlier call of the same claim skipped (at most [`MAX_CLAIM_SKIP`]).
    pub skip: u32,
}

/// Executions needing capabilities the claimer lacks that one `ff_claim`
/// looks past (and lists); a claim that skipped this many may go on with
/// [`ClaimArgs::skip`] (the Lua reads it from [`crate::lua_facts`]).
pub const ROUTE_LOOKAHEAD: usize = 64;

/// Largest [`ClaimArgs::skip`] (the Lua reads it from [`crate::lua_facts`]).
pub const MAX_CLAIM_SKIP: u32 = 65_536;

/// One execution handed out by `ff_claim`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The fencing token to report with.
    pub lease: Lease,
    /// The attempt now running (1 for the first).
    pub attempt: u32,
    /// When the lease expires unless renewed (server ms).
    pub lease_expires_at_ms: u64,
    /// The execution's kind.
    pub kind: Kind,
    /// The execution's payload.
    pub payload: Vec<u8>,
    /// The budgets and quotas it draws on: the claimer admits it against them.
    pub admission: crate::admission::Admission,
}

/// `ff_claim`: lease up to `max` eligible executions, highest priority first.
///
/// Repeat: not idempotent, but harmless: the second send claims a fresh batch
/// (the same lease id, on other executions), and its reply is the one the
/// worker gets. The first batch's leases are held by nobody: they expire after
/// `lease_ttl_ms` and the lease-expiry scanner reclaims them (one of each
/// execution's `max_reclaims`; with none left it fails, as after any lost
/// worker). Not sending again would not save them: the first send applied
/// either way.
pub fn claim(a: &ClaimArgs) -> Call {
    let pk = PartitionKeys::new(a.partition);
    claim_argv(Call::new("ff_claim", vec![pk.eligible(&a.lane)]), a)
}

/// A claim's ARGV (`ff_claim`'s, which `ff_end_many` takes after its reports).
fn claim_argv(call: Call, a: &ClaimArgs) -> Call {
    let mut call = call
        .arg(&a.lane)
        .arg(&a.worker)
        .arg(&a.instance)
        .arg(a.lease_ttl_ms)
        .arg(a.max)
        .arg(&a.lease_id);
    if !a.capabilities.is_empty() || a.skip > 0 {
        call = call.arg(a.capabilities.join(","));
    }
    if a.skip > 0 {
        call = call.arg(a.skip);
    }
    call
}

/// Decode `ff_claim`'s reply (possibly empty) to the call that sent
/// `lease_id` and `max`: every execution handed out holds that lease id.
pub fn decode_claim(
    reply: &Reply,
    lease_id: &LeaseId,
    max: usize,
) -> Result<Vec<Claimed>, CallError> {
    Ok(decode_claim_routed(reply, lease_id, max)?.0)
}

/// An eligible execution a claim skipped: it needs capabilities the claimer lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unroutable {
    /// The execution skipped.
    pub execution: ExecutionId,
    /// The capabilities it needs.
    pub capabilities: Vec<String>,
}

/// The executions handed out (each holding `lease_id`), and those skipped
/// for their capabilities.
pub fn decode_claim_routed(
    reply: &Reply,
    lease_id: &LeaseId,
    max: usize,
) -> Result<(Vec<Claimed>, Vec<Unroutable>), CallError> {
    let mut f = ok_fields("ff_claim", reply)?;
    let n = f.int("count")?;
    if n < 0 || n as usize > max {
        return Err(f
            .error(format!("count {n} out of range for a claim of {max}"))
            .into());
    }
    let lease_expires_at_ms = non_negative(&mut f, "lease expiry")?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let execution = parse_eid(&mut f)?;
        let epoch = non_negative(&mut f, "epoch")?;
        // (one attempt per claim: the epoch is the attempt number)
        let attempt = u32::try_from(epoch).map_err(|_| f.error("epoch out of range"))?;
        let kind = Kind::new(f.text("kind")?).map_err(|e| f.error(e.to_string()))?;
        let payload = f.bytes("payload")?;
        out.push(Claimed {
            lease: Lease {
                execution,
                id: lease_id.clone(),
                epoch,
            },
            attempt,
            lease_expires_at_ms,
            kind,
            payload,
            admission: Default::default(),
        });
    }
    // The admissions, listed only when one is not empty; then the skipped.
    let listed = f.int("admissions")?;
    if listed != 0 && listed != n {
        return Err(f
            .error(format!("{listed} admissions for {n} executions"))
            .into());
    }
    if listed == n {
        for c in &mut out {
            let a = f.text("admission")?;
            c.admission =
                crate::admission::Admission::parse(&a).map_err(|e| f.error(e.to_string()))?;
        }
    }
    let mut skipped = Vec::new();
    let k = f.int("skipped")?;
    for _ in 0..k.max(0) {
        let execution = parse_eid(&mut f)?;
        let caps = f.text("capabilities")?;
        skipped.push(Unroutable {
            execution,
            capabilities: crate::admission::parse_capabilities(&caps)
                .map_err(|e| f.error(e.to_string()))?,
        });
    }
    Ok((out, skipped))
}

fn fenced(function: &'static str, lease: &Lease) -> Call {
    Call::new(function, vec![keys::exec(&lease.execution)])
        .arg(&lease.execution)
        .arg(&lease.id)
        .arg(lease.epoch)
}

/// `ff_renew`: extend the lease by `ttl_ms` from now.
///
/// Repeat: extends the lease again, from the second send's time (a later expiry
/// than the first answer; same lease).
pub fn renew(lease: &Lease, ttl_ms: u64) -> Call {
    fenced("ff_renew", lease).arg(ttl_ms)
}

/// The new lease expiry (server ms).
pub fn decode_renew(reply: &Reply) -> Result<u64, CallError> {
    let mut f = ok_fields("ff_renew", reply)?;
    Ok(non_negative(&mut f, "lease expiry")?)
}

/// The answer to a lease-ending call; `replayed` when it repeats an accepted
/// call of the same lease (the stored outcome is returned, nothing changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// What became of the execution.
    pub outcome: EndOutcome,
    /// True when this repeats an accepted call of the same lease.
    pub replayed: bool,
}

/// How a lease-ending call (or cancel) left the execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndOutcome {
    /// Finished with a result.
    Completed,
    /// Failed for good (not retryable, or retries spent).
    Failed,
    /// Cancelled.
    Cancelled,
    /// Back to delayed until the given server time (ms): a retry after a
    /// failure, or a worker's own reschedule.
    RetryScheduled {
        /// When the retry becomes eligible (server ms).
        due_at_ms: u64,
    },
    /// Rescheduled by the worker (`ff_delay`).
    Delayed {
        /// When it becomes eligible again (server ms).
        due_at_ms: u64,
    },
    /// Handed back unfinished: eligible again at once.
    Released,
}

/// `ff_complete`: finish the attempt with `result`.
///
/// Repeat: answered `Completed`, `replayed` (the record ended in success under
/// this lease); nothing changes.
pub fn complete(lease: &Lease, result: &[u8]) -> Call {
    fenced("ff_complete", lease).arg_bytes(result)
}

/// `ff_fail`: fail the attempt; retried per the policy when `retryable`.
///
/// Repeat: answered from the execution's `fence` as the first was
/// (`RetryScheduled` at the same due time, or `Failed`), `replayed`; no second
/// retry is counted. Once a later lease of the execution has ended by fail,
/// delay, release, suspend or block, the fence is that one's and the repeat is
/// refused `stale_lease` (fenced out, as callers treat it); the first send's
/// effect stands.
pub fn fail(lease: &Lease, error: &str, retryable: bool) -> Call {
    fenced("ff_fail", lease).arg(error).arg(u8::from(retryable))
}

/// A worker's report that ends an attempt, as batched by `ff_end_many`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// `ff_complete` with this result.
    Complete {
        /// The lease being ended.
        lease: Lease,
        /// The handler's result.
        result: Vec<u8>,
    },
    /// `ff_fail` with this error; retried per the policy when `retryable`.
    Fail {
        /// The lease being ended.
        lease: Lease,
        /// What went wrong (truncated to the reason limit by the server).
        error: String,
        /// Whether the retry policy applies.
        retryable: bool,
    },
}

impl Report {
    /// The lease the report ends.
    pub fn lease(&self) -> &Lease {
        match self {
            Report::Complete { lease, .. } | Report::Fail { lease, .. } => lease,
        }
    }
}

/// `ff_end_many`: many reports of one partition in one call (each answered
/// as its `ff_complete`/`ff_fail` would be). Every report must be on
/// `partition`, and there must be 1..=[`MAX_CLAIM_BATCH`](super::limits::MAX_CLAIM_BATCH) of them.
///
/// Repeat: each report is answered as the repeat of its [`complete`] or
/// [`fail`] (a completion as `Completed`, `replayed`: in full, not the short
/// `1`); nothing changes.
pub fn end_many(partition: Partition, reports: &[Report]) -> Call {
    let mut call = Call::new(
        "ff_end_many",
        vec![PartitionKeys::new(partition).lease_expiry()],
    )
    .arg(reports.len());
    for r in reports {
        call = match r {
            Report::Complete { lease, result } => call
                .arg("complete")
                .arg(&lease.execution)
                .arg(&lease.id)
                .arg(lease.epoch)
                .arg_bytes(result)
                .arg(0),
            Report::Fail {
                lease,
                error,
                retryable,
            } => call
                .arg("fail")
                .arg(&lease.execution)
                .arg(&lease.id)
                .arg(lease.epoch)
                .arg(error)
                .arg(u8::from(*retryable)),
        };
    }
    call
}

/// Decode `ff_end_many`'s reply: one outcome (or refusal) per report, in order.
pub fn decode_end_many(
    reply: &Reply,
    n: usize,
) -> Result<Vec<Result<Ended, CallError>>, CallError> {
    decode_each("ff_end_many", reply, n, decode_end_item)
}

/// One report's answer in `ff_end_many`'s reply.
fn decode_end_item(r: &Reply) -> Result<Ended, CallError> {
    match r {
        // The common answer, short: completed, not a replay.
        Reply::Int(1) => Ok(Ended {
            outcome: EndOutcome::Completed,
            replayed: false,
        }),
        _ => decode_ended("ff_end_many", r),
    }
}

/// [`end_many`] of reports on `claim`'s partition and then, in the same
/// call, [`claim`] `claim`: a worker's finished jobs' slots refilled without a round
/// trip of their own. The claim runs after the reports and the flow work
/// they left, so a dependent they made eligible can be among what it hands
/// out (a DAG's next level in the same round trip). A claim that would be
/// refused as a whole (malformed) refuses the call; `lane_paused` is the
/// claim's answer alone (the reports still apply).
///
/// Repeat: the reports as [`end_many`]'s, the claim as [`claim`]'s.
pub fn end_many_claim(reports: &[Report], claim: &ClaimArgs) -> Call {
    let mut call = end_many(claim.partition, reports);
    call.keys
        .push(PartitionKeys::new(claim.partition).eligible(&claim.lane));
    claim_argv(call, claim)
}

/// Decode [`end_many_claim`]'s reply: each report's answer (as
/// [`decode_end_many`]'s) and the claim's (as [`decode_claim_routed`]'s).
#[allow(clippy::type_complexity)]
pub fn decode_end_many_claim(
    reply: &Reply,
    n: usize,
    lease_id: &LeaseId,
    max: usize,
) -> Result<
    (
        Vec<Result<Ended, CallError>>,
        Result<(Vec<Claimed>, Vec<Unroutable>), CallError>,
    ),
    CallError,
> {
    let (each, mut f) = decode_each_then("ff_end_many", reply, n, 1, decode_end_item)?;
    let claim = decode_claim_routed(f.next_reply("claim reply")?, lease_id, max);
    Ok((each, claim))
}

/// `ff_delay`: end the attempt and make it eligible again after `delay_ms`.
///
/// Repeat: answered from the fence as the first was (`Delayed` at the same due
/// time), `replayed`; same limit as [`fail`]'s.
pub fn delay(lease: &Lease, delay_ms: u64) -> Call {
    fenced("ff_delay", lease).arg(delay_ms)
}

/// `ff_release`: hand the execution back unfinished, eligible at once.
///
/// Repeat: answered from the fence (`Released`), `replayed`; same limit as
/// [`fail`]'s.
pub fn release(lease: &Lease) -> Call {
    fenced("ff_release", lease)
}

/// `ff_cancel`: cancel a non-terminal execution, whoever holds it.
///
/// Repeat: answered `Cancelled`, `replayed` (it is cancelled already); nothing
/// changes.
pub fn cancel(execution: &ExecutionId, reason: &str) -> Call {
    Call::new("ff_cancel", vec![keys::exec(execution)])
        .arg(execution)
        .arg(reason)
}

/// Decodes the reply of complete, fail, delay, release and cancel: `{1, outcome, due_ms, replayed}`.
pub fn decode_ended(function: &'static str, reply: &Reply) -> Result<Ended, CallError> {
    let mut f = ok_fields(function, reply)?;
    let outcome = f.text("outcome")?;
    let due_at_ms = non_negative(&mut f, "due time")?;
    let replayed = f.int("replayed")? == 1;
    let outcome = match outcome.as_str() {
        "completed" => EndOutcome::Completed,
        "failed" => EndOutcome::Failed,
        "cancelled" => EndOutcome::Cancelled,
        "retry_scheduled" => EndOutcome::RetryScheduled { due_at_ms },
        "delayed" => EndOutcome::Delayed { due_at_ms },
        "released" => EndOutcome::Released,
        o => return Err(f.error(format!("unknown outcome {o:?}")).into()),
    };
    Ok(Ended { outcome, replayed })
}

/// `ff_get`: read one execution (read-only).
///
/// Repeat: read-only: the record as it is now.
pub fn get(execution: &ExecutionId) -> Call {
    Call::new("ff_get", vec![keys::exec(execution)])
        .arg(execution)
        .read_only()
}

/// One execution as stored, decoded and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRecord {
    /// Its id.
    pub execution: ExecutionId,
    /// Its namespace.
    pub namespace: Namespace,
    /// Its lane.
    pub lane: Lane,
    /// Its kind.
    pub kind: Kind,
    /// Its priority.
    pub priority: u32,
    /// The full state vector.
    pub state: StateVector,
    /// The state as users see it.
    pub public_state: PublicState,
    /// Attempts started (0 before the first claim).
    pub attempt: u32,
    /// The current attempt's state, once there is one.
    pub attempt_state: Option<AttemptState>,
    /// Retries scheduled after failures.
    pub retries: u32,
    /// Expired leases reclaimed.
    pub reclaims: u32,
    /// Epoch of the latest lease.
    pub lease_epoch: u64,
    /// The current lease (active executions only).
    pub lease: Option<Lease>,
    /// When the current lease expires (server ms).
    pub lease_expires_at_ms: Option<u64>,
    /// The worker holding the lease.
    pub worker: Option<String>,
    /// The worker instance holding the lease.
    pub worker_instance: Option<String>,
    /// When a delayed execution becomes eligible (server ms).
    pub delayed_until_ms: Option<u64>,
    /// When the execution's deadline passes (server ms).
    pub deadline_at_ms: Option<u64>,
    /// Per-attempt timeout in ms (0: none).
    pub attempt_timeout_ms: u64,
    /// When the running attempt times out (active executions with a timeout).
    pub attempt_due_ms: Option<u64>,
    /// The retry policy.
    pub retry: RetryPolicy,
    /// Reclaims allowed before the execution fails.
    pub max_reclaims: u32,
    /// How long it is kept once terminal, in ms.
    pub retention_ms: u64,
    /// The payload.
    pub payload: Vec<u8>,
    /// The result of a completed execution.
    pub result: Option<Vec<u8>>,
    /// The latest failure's message.
    pub last_error: Option<String>,
    /// The latest progress a running attempt reported (kept once terminal).
    pub progress: Option<Vec<u8>>,
    /// Creation time (server ms).
    pub created_at_ms: u64,
    /// When it became terminal (server ms).
    pub ended_at_ms: Option<u64>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// The flow this execution is a member of, and its join.
    pub flow: Option<(crate::id::FlowId, crate::flow::JoinPolicy)>,
    /// Every waitpoint the execution created (oldest first).
    pub waitpoints: Vec<WaitpointId>,
    /// The waitpoints a suspended execution waits on.
    pub suspended_on: Vec<WaitpointId>,
    /// When a suspended execution's timeout applies (if it has one).
    pub suspension_due_ms: Option<u64>,
    /// Times it resumed from a suspension.
    pub resumes: u32,
    /// Signals accepted over its life (bounded).
    pub signals: u32,
    /// Server time when the record was read.
    pub read_at_ms: u64,
}

/// Decode `ff_get`'s reply for `execution`.
pub fn decode_get(execution: &ExecutionId, reply: &Reply) -> Result<ExecutionRecord, CallError> {
    let mut f = ok_fields("ff_get", reply)?;
    let read_at_ms = non_negative(&mut f, "server time")?;
    let mut m: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    while f.remaining() >= 2 {
        let k = f.text("field")?;
        let v = f.bytes("value")?;
        m.insert(k, v);
    }
    ExecutionRecord::from_fields(execution, &m, read_at_ms).map_err(Into::into)
}

impl ExecutionRecord {
    /// Decode a stored execution hash read by its key's id (`ff:exec:<id>`):
    /// an id that does not parse is a decode error like any other.
    pub fn from_hash(
        id: &str,
        m: &BTreeMap<String, Vec<u8>>,
        read_at_ms: u64,
    ) -> Result<Self, DecodeError> {
        let execution = ExecutionId::parse(id).map_err(|e| DecodeError {
            function: "ff_get",
            reason: format!("execution id {id:?}: {e}"),
        })?;
        Self::from_fields(&execution, m, read_at_ms)
    }

    /// Decode the fields of the hash of `execution` (the record holds no id
    /// of its own: its key names it). A record that breaks the state model is
    /// reported, never guessed at.
    pub fn from_fields(
        execution: &ExecutionId,
        m: &BTreeMap<String, Vec<u8>>,
        read_at_ms: u64,
    ) -> Result<Self, DecodeError> {
        let err = |reason: String| DecodeError {
            function: "ff_get",
            reason,
        };
        // (a field a creation leaves out reads as its value: record.rs)
        let text = |k: &str| -> Option<String> {
            m.get(k)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .or_else(|| super::record::absent_value(k).map(str::to_owned))
        };
        let req = |k: &str| text(k).ok_or_else(|| err(format!("field {k} missing")));
        let num = |k: &str| -> Result<Option<u64>, DecodeError> {
            match text(k) {
                None => Ok(None),
                Some(s) if s.is_empty() => Ok(None),
                Some(s) => s
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| err(format!("field {k} = {s:?} is not a number"))),
            }
        };
        let num0 = |k: &str| num(k).map(|v| v.unwrap_or(0));
        let small = |k: &str| -> Result<u32, DecodeError> {
            u32::try_from(num0(k)?).map_err(|_| err(format!("field {k} out of range")))
        };
        let nonempty = |k: &str| text(k).filter(|s| !s.is_empty());

        let execution = execution.clone();
        let phase = LifecyclePhase::parse(&req("phase")?).ok_or_else(|| err("bad phase".into()))?;
        let eligibility = match nonempty("elig") {
            None => None,
            Some(s) => {
                Some(Eligibility::parse(&s).ok_or_else(|| err(format!("bad eligibility {s:?}")))?)
            }
        };
        let outcome = match nonempty("outcome") {
            None => None,
            Some(s) => {
                Some(TerminalOutcome::parse(&s).ok_or_else(|| err(format!("bad outcome {s:?}")))?)
            }
        };
        let state = StateVector {
            phase,
            eligibility,
            outcome,
        };
        let public_state = state
            .public_state()
            .ok_or_else(|| err(format!("contradictory state {state:?}")))?;
        let lease_epoch = num0("epoch")?;
        let lease = match (phase, nonempty("lease_id")) {
            (LifecyclePhase::Active, Some(id)) => Some(Lease {
                execution: execution.clone(),
                id: LeaseId::parse(&id).map_err(|e| err(e.to_string()))?,
                epoch: lease_epoch,
            }),
            (LifecyclePhase::Active, None) => return Err(err("active without a lease".into())),
            _ => None,
        };
        // `by`: '<worker> <instance>' of the lease (names have no spaces).
        let (worker, worker_instance) = match (phase, nonempty("by")) {
            (LifecyclePhase::Active, Some(by)) => match by.split_once(' ') {
                Some((w, i)) => (Some(w.to_owned()), Some(i.to_owned())),
                None => (Some(by), None),
            },
            _ => (None, None),
        };
        // A claim and a completion write no attempt state: an active
        // execution's attempt is running, and one that ended in success
        // succeeded (the hot paths write one field fewer each).
        let attempt_state = match (phase, outcome, nonempty("att_state")) {
            (LifecyclePhase::Active, _, _) => Some(AttemptState::Running),
            (_, Some(TerminalOutcome::Success), _) => Some(AttemptState::Succeeded),
            (_, _, None) => None,
            (_, _, Some(s)) => Some(
                AttemptState::parse(&s).ok_or_else(|| err(format!("bad attempt state {s:?}")))?,
            ),
        };
        let ids = |k: &str| -> Result<Vec<WaitpointId>, DecodeError> {
            text(k)
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| WaitpointId::parse(s).map_err(|e| err(format!("field {k}: {e}"))))
                .collect()
        };
        let suspended = phase == LifecyclePhase::Suspended;
        let tags = m
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("tag.")
                    .map(|t| (t.to_owned(), String::from_utf8_lossy(v).into_owned()))
            })
            .collect();
        Ok(Self {
            namespace: Namespace::new(req("ns")?).map_err(|e| err(e.to_string()))?,
            lane: Lane::new(req("lane")?).map_err(|e| err(e.to_string()))?,
            kind: Kind::new(req("kind")?).map_err(|e| err(e.to_string()))?,
            priority: small("pri")?,
            state,
            public_state,
            // (one attempt per claim: the epoch is the attempt number)
            attempt: small("epoch")?,
            attempt_state,
            retries: small("retries")?,
            reclaims: small("reclaims")?,
            lease_epoch,
            lease,
            lease_expires_at_ms: if phase == LifecyclePhase::Active {
                num("lease_exp")?
            } else {
                None
            },
            worker,
            worker_instance,
            delayed_until_ms: if eligibility == Some(Eligibility::Delayed) {
                num("due")?
            } else {
                None
            },
            deadline_at_ms: num("deadline")?,
            attempt_timeout_ms: num0("att_timeout")?,
            attempt_due_ms: if phase == LifecyclePhase::Active {
                num("att_due")?
            } else {
                None
            },
            retry: RetryPolicy::decode(&req("retry")?).map_err(|e| err(e.to_string()))?,
            max_reclaims: small("max_reclaims")?,
            retention_ms: num0("retention")?,
            payload: m.get("payload").cloned().unwrap_or_default(),
            // (a completion with an empty result stores none)
            result: m
                .get("result")
                .cloned()
                .or_else(|| (outcome == Some(TerminalOutcome::Success)).then(Vec::new)),
            last_error: nonempty("error"),
            progress: m.get("progress").cloned(),
            created_at_ms: num0("created")?,
            ended_at_ms: num("ended")?,
            tags,
            flow: match (nonempty("flow"), nonempty("join")) {
                (None, _) => None,
                (Some(f), join) => Some((
                    crate::id::FlowId::parse(&f).map_err(|e| err(e.to_string()))?,
                    crate::flow::JoinPolicy::parse(join.as_deref().unwrap_or("all"))
                        .map_err(|e| err(e.to_string()))?,
                )),
            },
            waitpoints: ids("wps")?,
            suspended_on: if suspended {
                ids("susp_wps")?
            } else {
                Vec::new()
            },
            suspension_due_ms: if suspended { num("susp_due")? } else { None },
            resumes: small("resumes")?,
            signals: small("sigs")?,
            execution,
            read_at_ms,
        })
    }
}

fn parse_eid(f: &mut Fields<'_>) -> Result<ExecutionId, DecodeError> {
    let s = f.text("execution id")?;
    ExecutionId::parse(&s).map_err(|e| f.error(e.to_string()))
}

/// The three stored state dimensions `phase, elig, outcome` ('' for none).
pub(crate) fn parse_state(f: &mut Fields<'_>) -> Result<StateVector, DecodeError> {
    let phase = f.text("phase")?;
    let phase =
        LifecyclePhase::parse(&phase).ok_or_else(|| f.error(format!("unknown phase {phase:?}")))?;
    let elig = f.text("eligibility")?;
    let eligibility = match elig.as_str() {
        "" => None,
        s => Some(
            Eligibility::parse(s).ok_or_else(|| f.error(format!("unknown eligibility {s:?}")))?,
        ),
    };
    let outcome = f.text("outcome")?;
    let outcome = match outcome.as_str() {
        "" => None,
        s => Some(
            TerminalOutcome::parse(s).ok_or_else(|| f.error(format!("unknown outcome {s:?}")))?,
        ),
    };
    Ok(StateVector {
        phase,
        eligibility,
        outcome,
    })
}

fn non_negative(f: &mut Fields<'_>, what: &str) -> Result<u64, DecodeError> {
    let v = f.int(what)?;
    u64::try_from(v).map_err(|_| f.error(format!("{what} is negative")))
}

/// Map a rejection of a fenced call for callers that only care whether they
/// still hold the lease.
pub fn is_fenced_out(e: &CallError) -> bool {
    matches!(
        e,
        CallError::Rejected(FfError::StaleLease) | CallError::Rejected(FfError::NotActive(_))
    )
}
