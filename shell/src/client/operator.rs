//! An operator's calls: pause and resume a lane, requeue an execution that
//! ended badly, delete a terminal one now.

use super::list::ListQuery;
use super::Client;
use crate::error::Result;
use crate::store::cmd;
use ff_core::contract::operator as op;
pub use ff_core::contract::operator::Requeued;
use ff_core::reply::Reply;
use ff_core::{keys, ExecutionId, Lane, PartitionFamily};

/// Most executions one [`Client::requeue_matching`] call requeues.
pub const BULK_MAX: usize = 5_000;
/// Most list pages it reads to gather them.
const BULK_PAGES: usize = 50;
/// Requeues in flight at once.
const BULK_CONCURRENCY: usize = 100;

/// What a bulk requeue did.
#[derive(Debug, Clone, Default)]
pub struct BulkRequeue {
    /// Executions the filter matched (at most [`BULK_MAX`]).
    pub matched: usize,
    /// Requeued.
    pub requeued: u64,
    /// Already running again (requeued meanwhile).
    pub live: u64,
    /// Refused, with why.
    pub refused: Vec<(ExecutionId, String)>,
    /// False when more may match: call again to go on (the requeued ones
    /// no longer match).
    pub complete: bool,
}

impl Client {
    /// Pause `lane`: its claims hand out nothing (workers idle; the engine
    /// keeps making its executions eligible) until [`resume_lane`](Self::resume_lane).
    /// An unknown lane is refused.
    pub async fn pause_lane(&self, lane: &str) -> Result<()> {
        let lane = Lane::new(lane)?;
        self.check_lane(&lane).await?;
        // The registry first: workers stop looking at the lane as the
        // partitions start refusing its claims.
        self.store
            .command(&cmd(["SADD", keys::PAUSED_LANES, lane.as_str()]))
            .await?;
        self.set_paused(&lane, true).await
    }

    /// Resume `lane`: its partitions with eligible executions announce
    /// them, so workers start at once.
    pub async fn resume_lane(&self, lane: &str) -> Result<()> {
        let lane = Lane::new(lane)?;
        self.check_lane(&lane).await?;
        self.set_paused(&lane, false).await?;
        self.store
            .command(&cmd(["SREM", keys::PAUSED_LANES, lane.as_str()]))
            .await?;
        Ok(())
    }

    async fn set_paused(&self, lane: &Lane, paused: bool) -> Result<()> {
        let calls: Vec<_> = self
            .config
            .partitions(PartitionFamily::Flow)
            .map(|p| op::pause_lane(p, lane, paused))
            .collect();
        for r in self.store.fcall_many(&calls).await {
            op::decode_pause_lane(&r?)?;
        }
        Ok(())
    }

    /// The paused lanes, sorted.
    pub async fn paused_lanes(&self) -> Result<Vec<String>> {
        let reply = self
            .store
            .command(&cmd(["SMEMBERS", keys::PAUSED_LANES]))
            .await?;
        let mut lanes: Vec<String> = match reply {
            Reply::Array(items) => items.iter().filter_map(Reply::text).collect(),
            _ => Vec::new(),
        };
        lanes.sort();
        Ok(lanes)
    }

    /// Run a failed, cancelled or expired execution again (see
    /// [`op::requeue`] for what is kept and what is refused).
    pub async fn requeue(&self, execution: &ExecutionId) -> Result<Requeued> {
        Ok(op::decode_requeue(
            &self.call(&op::requeue(execution)).await?,
        )?)
    }

    /// Requeue what `query` matches, in bounded work: the matches are
    /// gathered first (up to [`BULK_MAX`], reading at most 50 pages) and
    /// only then requeued, since requeueing while paging would shift the
    /// list under its cursor and skip some.
    pub async fn requeue_matching(&self, query: &ListQuery) -> Result<BulkRequeue> {
        let (mut ids, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
        let mut out = BulkRequeue::default();
        loop {
            let page = self.list(query, cursor.as_deref()).await?;
            pages += 1;
            ids.extend(page.items.into_iter().map(|r| r.execution));
            match page.next {
                None => {
                    out.complete = true;
                    break;
                }
                Some(n) => cursor = Some(n),
            }
            if ids.len() >= BULK_MAX || pages >= BULK_PAGES {
                break;
            }
        }
        if ids.len() > BULK_MAX {
            ids.truncate(BULK_MAX);
            out.complete = false;
        }
        out.matched = ids.len();
        for chunk in ids.chunks(BULK_CONCURRENCY) {
            let results = futures::future::join_all(chunk.iter().map(|id| self.requeue(id))).await;
            for (id, r) in chunk.iter().zip(results) {
                match r {
                    Ok(Requeued::Requeued) => out.requeued += 1,
                    Ok(Requeued::Live) => out.live += 1,
                    Err(e) => out.refused.push((id.clone(), e.to_string())),
                }
            }
        }
        Ok(out)
    }

    /// Delete a terminal execution now. False when there was nothing to
    /// delete (an unknown id, or deleted already).
    pub async fn delete(&self, execution: &ExecutionId) -> Result<bool> {
        Ok(op::decode_delete(
            &self.call(&op::delete(execution)).await?,
        )?)
    }
}
