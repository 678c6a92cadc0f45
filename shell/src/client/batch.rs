//! Batch calls: bulk submit (`ff_create_many`) and a worker's batched reports
//! (`ff_end_many`). Items are grouped by partition, one call per partition and
//! chunk (pipelined), so the per-call costs are paid once per batch; each
//! item is answered as its single call would be.

use super::{random_u128, Client};
use crate::error::{Error, Result};
use crate::ExecutionSpec;
use ff_core::contract::execution::{self as ex, Created, Ended, Report};
use ff_core::contract::{limits, Call, CallError};
use ff_core::reply::Reply;
use ff_core::{Lane, Partition};
use std::collections::HashMap;
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
        self.per_partition(items, &mut results, ex::end_many, ex::decode_end_many)
            .await;
        finished(results)
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
        // Grouped in first-seen order (no hash order reaches the calls).
        let mut groups: Vec<(Partition, Vec<(usize, T)>)> = Vec::new();
        let mut group_of: HashMap<Partition, usize> = HashMap::new();
        for (slot, p, item) in items {
            let g = *group_of.entry(p).or_insert_with(|| {
                groups.push((p, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push((slot, item));
        }
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
