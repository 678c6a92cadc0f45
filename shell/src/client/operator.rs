//! An operator's calls: pause and resume a lane, requeue an execution that
//! ended badly, delete a terminal one now.

use super::Client;
use crate::error::Result;
use crate::store::cmd;
use ff_core::contract::operator as op;
pub use ff_core::contract::operator::Requeued;
use ff_core::reply::Reply;
use ff_core::{keys, ExecutionId, Lane, PartitionFamily};

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

    /// Delete a terminal execution now. False when there was nothing to
    /// delete (an unknown id, or deleted already).
    pub async fn delete(&self, execution: &ExecutionId) -> Result<bool> {
        Ok(op::decode_delete(
            &self.call(&op::delete(execution)).await?,
        )?)
    }
}
