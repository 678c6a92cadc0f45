//! Batch calls: bulk submit (`ff_create_many`) and a worker's batched reports
//! (`ff_end_many`, with a claim riding along). Items are grouped by partition, one call per partition and
//! chunk (pipelined), so the per-call costs are paid once per batch; each
//! item is answered as its single call would be.

use super::execution::claim_limits;
use super::{random_u128, Client};
use crate::error::{Error, Result, StoreError};
use crate::ExecutionSpec;
use ff_core::contract::execution::{self as ex, ClaimArgs, Claimed, Created, Ended, Report};
use ff_core::contract::{limits, Call, CallError};
use ff_core::reply::Reply;
use ff_core::{Lane, LeaseId, Partition, WorkerInstance, WorkerName};
use std::collections::HashMap;
use std::time::Duration;
use tracing::Instrument;

type Decode<R> =
    fn(&Reply, usize) -> std::result::Result<Vec<std::result::Result<R, CallError>>, CallError>;

impl Client {
    /// Create many executions at once (bulk submit). One result per spec, in
    /// order, each what [`Client::create`] would have returned for it.
    pub async fn create_many(&self, specs: Vec<ExecutionSpec>) -> Vec<Result<Created>> {
        let mut results: Vec<Option<Result<Created>>> = Vec::with_capacity(specs.len());
        let mut items = Vec::with_capacity(specs.len());
        // Lanes found unknown in this call (asked once each: the lane cache
        // only remembers known lanes).
        let mut unknown: Vec<Lane> = Vec::new();
        for spec in specs {
            let args = match spec.into_args(&self.config, random_u128()) {
                Ok(a) => a,
                Err(e) => {
                    results.push(Some(Err(e)));
                    continue;
                }
            };
            if unknown.contains(&args.lane) {
                results.push(Some(Err(ff_core::FfError::UnknownLane(
                    args.lane.as_str().to_owned(),
                )
                .into())));
                continue;
            }
            if let Err(e) = self.check_lane(&args.lane).await {
                if matches!(e, Error::Rejected(ff_core::FfError::UnknownLane(_))) {
                    unknown.push(args.lane.clone());
                }
                results.push(Some(Err(e)));
                continue;
            }
            items.push((results.len(), args.execution.partition(), args));
            results.push(None);
        }
        self.per_partition(items, &mut results, ex::create_many, ex::decode_create_many)
            .await;
        finished(results)
    }

    /// End many attempts at once. One result per report, in order, each what
    /// [`Client::complete`] or [`Client::fail`] would have returned for it.
    pub async fn report_many(&self, reports: Vec<Report>) -> Vec<Result<Ended>> {
        let (mut results, items) = checked(reports);
        self.per_partition(items, &mut results, ex::end_many, ex::decode_end_many)
            .await;
        finished(results)
    }

    /// [`Client::report_many`] with claims riding along: each claim
    /// `(partition, lane, max)` is sent in the same call as that partition's
    /// reports (`ff_end_many` with a claim; on its own, pipelined with them,
    /// when the partition has none), so a worker refills the slots its
    /// finished jobs free without a round trip of its own, and a dependent
    /// the reports made eligible can be handed out at once. One result per
    /// report, as [`Client::report_many`]'s, and one per claim, as
    /// [`Client::claim_in_capable`]'s (one page: executions needing other
    /// capabilities are routed, not looked past).
    #[allow(clippy::too_many_arguments)]
    pub async fn report_many_claim(
        &self,
        reports: Vec<Report>,
        claims: &[(Partition, Lane, usize)],
        worker: &WorkerName,
        instance: &WorkerInstance,
        lease_ttl: Duration,
        capabilities: &[String],
    ) -> (Vec<Result<Ended>>, Vec<Result<Vec<Claimed>>>) {
        let (mut results, items) = checked(reports);
        let mut claimed: Vec<Option<Result<Vec<Claimed>>>> = Vec::with_capacity(claims.len());
        let mut asks: Vec<Option<ClaimArgs>> = Vec::with_capacity(claims.len());
        for (partition, lane, max) in claims {
            match claim_limits(lease_ttl, *max) {
                Ok(lease_ttl_ms) => {
                    claimed.push(None);
                    asks.push(Some(ClaimArgs {
                        partition: *partition,
                        lane: lane.clone(),
                        worker: worker.clone(),
                        instance: instance.clone(),
                        lease_ttl_ms,
                        max: *max,
                        lease_id: LeaseId::from_u128(random_u128()),
                        capabilities: capabilities.to_vec(),
                        skip: 0,
                    }));
                }
                Err(e) => {
                    claimed.push(Some(Err(e)));
                    asks.push(None);
                }
            }
        }
        // Each call, and what its reply answers: report slots, and a claim.
        let mut calls = Vec::new();
        let mut sent: Vec<(Vec<usize>, Option<usize>)> = Vec::new();
        for (p, group) in by_partition(items) {
            let (slots, group): (Vec<usize>, Vec<Report>) = group.into_iter().unzip();
            let ride = asks
                .iter()
                .position(|a| a.as_ref().is_some_and(|a| a.partition == p));
            match ride {
                Some(k) if group.len() <= limits::MAX_CLAIM_BATCH => {
                    let args = asks[k].as_ref().expect("found above");
                    calls.push(ex::end_many_claim(&group, args));
                    sent.push((slots, Some(k)));
                }
                _ => {
                    for (s, chunk) in slots
                        .chunks(limits::MAX_CLAIM_BATCH)
                        .zip(group.chunks(limits::MAX_CLAIM_BATCH))
                    {
                        calls.push(ex::end_many(p, chunk));
                        sent.push((s.to_vec(), None));
                    }
                }
            }
        }
        for (k, a) in asks.iter().enumerate() {
            if let Some(a) = a {
                if !sent.iter().any(|(_, c)| *c == Some(k)) {
                    calls.push(ex::claim(a));
                    sent.push((Vec::new(), Some(k)));
                }
            }
        }
        let span = tracing::debug_span!("fcall", function = "ff_end_many", calls = calls.len());
        let replies = self.store.fcall_many(&calls).instrument(span).await;
        let mut skipped = Vec::new();
        for (reply, (slots, claim)) in replies.into_iter().zip(sent) {
            let ask = claim.map(|k| asks[k].as_ref().expect("sent"));
            let decoded = reply.map_err(Whole::Store).and_then(|r| {
                let (each, got) = match ask {
                    Some(a) if slots.is_empty() => (
                        Vec::new(),
                        Some(ex::decode_claim_routed(&r, &a.lease_id, a.max)),
                    ),
                    Some(a) => {
                        let (each, got) =
                            ex::decode_end_many_claim(&r, slots.len(), &a.lease_id, a.max)
                                .map_err(Whole::Call)?;
                        (each, Some(got))
                    }
                    None => (
                        ex::decode_end_many(&r, slots.len()).map_err(Whole::Call)?,
                        None,
                    ),
                };
                Ok((each, got))
            });
            match decoded {
                Ok((each, got)) => {
                    for (&i, r) in slots.iter().zip(each) {
                        results[i] = Some(r.map_err(Error::from));
                    }
                    if let (Some(k), Some(got)) = (claim, got) {
                        claimed[k] = Some(got.map_err(Error::from).map(|(got, passed)| {
                            skipped.extend(passed);
                            got
                        }));
                    }
                }
                Err(e) => {
                    // A failure of the whole call is every report's, and its claim's.
                    tracing::warn!(error = ?e, items = slots.len(), "batch call failed");
                    for &i in &slots {
                        results[i] = Some(Err(e.error()));
                    }
                    if let Some(k) = claim {
                        claimed[k] = Some(Err(e.error()));
                    }
                }
            }
        }
        if !skipped.is_empty() {
            self.route_skipped(&skipped).await;
        }
        let mut out = Vec::with_capacity(claimed.len());
        for c in claimed {
            out.push(match c.expect("every claim has an answer") {
                Ok(got) => Ok(self.claimed(got).await),
                Err(e) => Err(e),
            });
        }
        (finished(results), out)
    }

    /// Send `items` (result slot, partition, item) as one `call` per partition
    /// and chunk, pipelined, and fill each slot with its decoded answer.
    async fn per_partition<T, R>(
        &self,
        items: Vec<(usize, Partition, T)>,
        results: &mut [Option<Result<R>>],
        call: fn(Partition, &[T]) -> Call,
        decode: Decode<R>,
    ) {
        let groups = by_partition(items);
        let mut calls = Vec::new();
        let mut slots: Vec<Vec<usize>> = Vec::new();
        for (p, group) in groups {
            let mut group = group.into_iter().peekable();
            while group.peek().is_some() {
                let (s, chunk): (Vec<usize>, Vec<T>) =
                    group.by_ref().take(limits::MAX_CLAIM_BATCH).unzip();
                calls.push(call(p, &chunk));
                slots.push(s);
            }
        }
        let Some(first) = calls.first() else { return };
        let span = tracing::debug_span!("fcall", function = first.function, calls = calls.len());
        let replies = self.store.fcall_many(&calls).instrument(span).await;
        for (reply, chunk) in replies.into_iter().zip(slots) {
            // A failure of the whole call (in the store, or a refusal or bad
            // shape of its reply) is every item's.
            let whole: Error = match reply.map(|r| decode(&r, chunk.len())) {
                Ok(Ok(each)) => {
                    for (&i, r) in chunk.iter().zip(each) {
                        results[i] = Some(r.map_err(Error::from));
                    }
                    continue;
                }
                Ok(Err(e)) => {
                    for &i in &chunk {
                        results[i] = Some(Err(e.clone().into()));
                    }
                    e.into()
                }
                Err(e) => {
                    for &i in &chunk {
                        results[i] = Some(Err(Error::Store(e.clone())));
                    }
                    e.into()
                }
            };
            tracing::warn!(error = %whole, items = chunk.len(), "batch call failed");
        }
    }
}

fn finished<R>(results: Vec<Option<Result<R>>>) -> Vec<Result<R>> {
    results
        .into_iter()
        .map(|r| r.expect("every item has an answer: the store returns one reply per call"))
        .collect()
}

/// Reports, each with its result slot: answered already when its result is
/// too large to send, else to be sent (slot, partition, report).
#[allow(clippy::type_complexity)]
fn checked(reports: Vec<Report>) -> (Vec<Option<Result<Ended>>>, Vec<(usize, Partition, Report)>) {
    let mut results: Vec<Option<Result<Ended>>> = Vec::with_capacity(reports.len());
    let mut items = Vec::with_capacity(reports.len());
    for r in reports {
        if let Report::Complete { result, .. } = &r {
            if let Err(e) = super::result_fits(result) {
                results.push(Some(Err(e)));
                continue;
            }
        }
        items.push((results.len(), r.lease().execution.partition(), r));
        results.push(None);
    }
    (results, items)
}

/// Why a whole call went unanswered: every item of it gets this.
#[derive(Debug)]
enum Whole {
    Store(StoreError),
    Call(CallError),
}

impl Whole {
    fn error(&self) -> Error {
        match self {
            Whole::Store(e) => Error::Store(e.clone()),
            Whole::Call(e) => e.clone().into(),
        }
    }
}

/// `items` (slot, partition, item) grouped by partition, in first-seen order
/// (no hash order reaches the calls).
fn by_partition<T>(items: Vec<(usize, Partition, T)>) -> Vec<(Partition, Vec<(usize, T)>)> {
    let mut groups: Vec<(Partition, Vec<(usize, T)>)> = Vec::new();
    let mut group_of: HashMap<Partition, usize> = HashMap::new();
    for (slot, p, item) in items {
        let g = *group_of.entry(p).or_insert_with(|| {
            groups.push((p, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push((slot, item));
    }
    groups
}
