//! The worker's report batcher. Attempts that ended (completed or failed)
//! are queued here and sent as `ff_end_many` batches, at most
//! [`ROUNDS_IN_FLIGHT`] rounds at a time: while they are in flight the next
//! one fills, so under load a batch grows to whatever finished meanwhile, and
//! at rest a report goes out at once.

use crate::error::{Error, Result, StoreError};
use crate::Client;
use ff_core::contract::execution::{Ended, Report};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Most reports sent in one round (split per partition by the client).
const MAX_ROUND: usize = 4096;
/// Rounds in flight at once: one fills while the server works on another.
const ROUNDS_IN_FLIGHT: usize = 2;

struct Pending {
    report: Report,
    reply: oneshot::Sender<Result<Ended>>,
}

/// The queue in front of the batching task; the task ends when this drops.
pub(crate) struct Reporter {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Reporter {
    pub(crate) fn start(client: Client) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client, rx));
        Reporter { tx }
    }

    /// Send one report with the next round; its outcome as `complete`/`fail`
    /// would have returned it.
    pub(crate) async fn send(&self, report: Report) -> Result<Ended> {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Pending { report, reply }).is_err() {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// The batching task is gone (it only stops with the worker).
fn stopped() -> Error {
    Error::Store(StoreError::Unavailable(
        "the worker's reporter stopped".into(),
    ))
}

async fn run(client: Client, mut rx: mpsc::UnboundedReceiver<Pending>) {
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
        tokio::spawn(async move {
            let (reports, replies): (Vec<Report>, Vec<_>) =
                round.into_iter().map(|p| (p.report, p.reply)).unzip();
            tracing::debug!(reports = reports.len(), "report round");
            let results = client.report_many(reports).await;
            for (reply, result) in replies.into_iter().zip(results) {
                // The job may have been taken over by shutdown meanwhile.
                let _ = reply.send(result);
            }
            drop(slot);
        });
    }
}
