//! The worker's report batcher. Attempts that ended (completed or failed)
//! are queued here and sent as `ff_end_many` batches, at most
//! [`ROUNDS_IN_FLIGHT`] rounds at a time: while they are in flight the next
//! one fills, so under load a batch grows to whatever finished meanwhile, and
//! at rest a report goes out at once.
//!
//! A report may bring its job's slot (a [`Refill`]): the partition's call
//! then claims that many more of the job's lane in the same round trip, and
//! each job it hands out goes back with one of the slots.

use crate::error::{Error, Result, StoreError};
use crate::Client;
use ff_core::contract::execution::{Claimed, Ended, Report};
use ff_core::{Lane, Partition, WorkerInstance, WorkerName};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// Most reports sent in one round (split per partition by the client).
const MAX_ROUND: usize = 4096;
/// Rounds in flight at once: one fills while the server works on another.
const ROUNDS_IN_FLIGHT: usize = 2;

/// A finished job's slot, offered for a job of its lane (an index into the
/// claimer's lanes) claimed with the report.
pub(crate) struct Refill {
    pub(crate) lane: usize,
    pub(crate) permit: OwnedSemaphorePermit,
}

/// A job claimed with a report, holding the slot the report brought.
pub(crate) type Refilled = Option<(Claimed, usize, OwnedSemaphorePermit)>;

/// Who claims with the reports, and how.
pub(crate) struct Claimer {
    pub(crate) lanes: Vec<Lane>,
    pub(crate) worker: WorkerName,
    pub(crate) instance: WorkerInstance,
    pub(crate) lease_ttl: Duration,
    pub(crate) claim_batch: usize,
    pub(crate) capabilities: Vec<String>,
}

struct Pending {
    report: Report,
    refill: Option<Refill>,
    reply: oneshot::Sender<(Result<Ended>, Refilled)>,
}

/// The queue in front of the batching task; the task ends when this drops.
pub(crate) struct Reporter {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Reporter {
    pub(crate) fn start(client: Client, claimer: Claimer) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client, Arc::new(claimer), rx));
        Reporter { tx }
    }

    /// Send one report with the next round; its outcome as `complete`/`fail`
    /// would have returned it, and the job claimed into `refill`'s slot, if
    /// any (a slot not refilled is dropped: free again).
    pub(crate) async fn send(
        &self,
        report: Report,
        refill: Option<Refill>,
    ) -> (Result<Ended>, Refilled) {
        let (reply, answer) = oneshot::channel();
        if self
            .tx
            .send(Pending {
                report,
                refill,
                reply,
            })
            .is_err()
        {
            return (Err(stopped()), None);
        }
        answer.await.unwrap_or_else(|_| (Err(stopped()), None))
    }
}

/// The batching task is gone (it only stops with the worker).
fn stopped() -> Error {
    Error::Store(StoreError::Unavailable(
        "the worker's reporter stopped".into(),
    ))
}

async fn run(client: Client, claimer: Arc<Claimer>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let rounds = Arc::new(Semaphore::new(ROUNDS_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(slot) = rounds.clone().acquire_owned().await else {
            return;
        };
        let mut round = vec![first];
        while round.len() < MAX_ROUND {
            match rx.try_recv() {
                Ok(p) => round.push(p),
                Err(_) => break,
            }
        }
        let client = client.clone();
        let claimer = claimer.clone();
        tokio::spawn(async move {
            tracing::debug!(reports = round.len(), "report round");
            send_round(&client, &claimer, round).await;
            drop(slot);
        });
    }
}

/// One round, in one pipelined batch: each partition's reports, and when
/// they brought slots, a claim of the lane most of those are of (as many as
/// those slots, at most a claim batch) in the same call.
async fn send_round(client: &Client, claimer: &Claimer, round: Vec<Pending>) {
    // Slots per (partition, lane), partitions in first-seen order.
    let mut slots: Vec<(Partition, Vec<usize>)> = Vec::new();
    for p in &round {
        if let Some(r) = &p.refill {
            let partition = p.report.lease().execution.partition();
            let at = match slots.iter().position(|(q, _)| *q == partition) {
                Some(at) => at,
                None => {
                    slots.push((partition, vec![0; claimer.lanes.len()]));
                    slots.len() - 1
                }
            };
            slots[at].1[r.lane] += 1;
        }
    }
    // Under load (more slots in the round than one claim takes) the claim
    // loop's batches are larger than a partition's share of a round: a
    // partition's slots ride along only when they make a fair batch (a small
    // claim costs the server its fixed part per few jobs). At lighter load
    // every slot does, which is where the round trip saved shows.
    let total: usize = slots.iter().flat_map(|(_, l)| l.iter()).sum();
    let least = if total > claimer.claim_batch {
        claimer.claim_batch.div_ceil(4)
    } else {
        1
    };
    // (the first lane of the most slots: max_by_key keeps the last)
    let claims: Vec<(Partition, usize, usize)> = slots
        .into_iter()
        .filter_map(|(p, per_lane)| {
            let (lane, n) = per_lane.iter().enumerate().rev().max_by_key(|&(_, n)| *n)?;
            (*n >= least).then(|| (p, lane, (*n).min(claimer.claim_batch)))
        })
        .collect();
    let asks: Vec<(Partition, Lane, usize)> = claims
        .iter()
        .map(|&(p, lane, n)| (p, claimer.lanes[lane].clone(), n))
        .collect();
    let mut reports = Vec::with_capacity(round.len());
    let mut waiting = Vec::with_capacity(round.len());
    for p in round {
        waiting.push((p.reply, p.refill, p.report.lease().execution.partition()));
        reports.push(p.report);
    }
    let (results, claimed) = client
        .report_many_claim(
            reports,
            &asks,
            &claimer.worker,
            &claimer.instance,
            claimer.lease_ttl,
            &claimer.capabilities,
        )
        .await;
    let mut handed: Vec<std::vec::IntoIter<Claimed>> = Vec::with_capacity(claimed.len());
    for ((p, _, _), got) in claims.iter().zip(claimed) {
        handed.push(match got {
            Ok(c) => c.into_iter(),
            Err(Error::Rejected(ff_core::FfError::LanePaused(l))) => {
                tracing::debug!(partition = p.index, lane = %l, "lane paused");
                Vec::new().into_iter()
            }
            Err(e) => {
                tracing::warn!(partition = p.index, error = %e, "claim with the reports failed");
                Vec::new().into_iter()
            }
        });
    }
    for ((reply, refill, partition), result) in waiting.into_iter().zip(results) {
        let refilled = refill.and_then(|r| {
            let k = claims.iter().position(|c| c.0 == partition)?;
            let lane = claims[k].1;
            (r.lane == lane)
                .then(|| handed[k].next())
                .flatten()
                .map(|c| (c, lane, r.permit))
        });
        // A job handed out for a report nobody waits for any more goes back.
        if let Err((_, Some((c, _, _)))) = reply.send((result, refilled)) {
            let _ = client.release(&c.lease).await;
        }
    }
}
