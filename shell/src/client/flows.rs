//! The flow half of [`Client`]: create a flow, add members (with
//! [`ExecutionSpec::in_flow`](crate::ExecutionSpec::in_flow)) and dependency
//! edges, read its summary and what parents passed a member, cancel it.
//!
//! A flow's members live in the flow's partition, so the data plane resolves
//! a finished parent's edges in the same atomic call that ended it.

use super::{random_u128, Client};
use crate::error::{Error, Result};
use ff_core::contract::flow::{self as fl, EdgeAdded, EdgeArgs, FlowRecord};
use ff_core::contract::limits;
use ff_core::keys::{flow_partition, FlowKeys};
use ff_core::{ExecutionId, FlowId, Namespace};
use std::collections::BTreeMap;

impl Client {
    /// Create a flow in `namespace`; its id is new and random.
    pub async fn create_flow(&self, namespace: &str) -> Result<FlowId> {
        let flow = FlowId::from_u128(random_u128());
        let ns = Namespace::new(namespace)?;
        let keys = FlowKeys::new(&flow, &self.config);
        fl::decode_create_flow(&self.call(&fl::create_flow(&keys, &flow, &ns)).await?)?;
        tracing::debug!(flow = %flow, "flow created");
        Ok(flow)
    }

    /// A fresh execution id in `flow`'s partition: create the member with
    /// [`ExecutionSpec::id`](crate::ExecutionSpec::id) after declaring the
    /// edges it waits on, so it can never run before them.
    pub fn new_member_id(&self, flow: &FlowId) -> ExecutionId {
        ExecutionId::new(flow_partition(flow, &self.config).index, random_u128())
    }

    /// Make `child` wait on `parent` (both of `flow`; `child` may not exist
    /// yet, or must not have started). Refused with
    /// [`FfError::Cycle`](ff_core::FfError::Cycle) when `parent` already depends on
    /// `child`. With `pass_data`, the parent's result becomes the child's
    /// payload; a child with several such parents (at most
    /// [`MAX_DATA_PARENTS`](limits::MAX_DATA_PARENTS)) reads every one by
    /// parent with [`Client::parent_results`].
    pub async fn add_edge(
        &self,
        flow: &FlowId,
        parent: &ExecutionId,
        child: &ExecutionId,
        pass_data: bool,
    ) -> Result<EdgeAdded> {
        let keys = FlowKeys::new(flow, &self.config);
        let partition = flow_partition(flow, &self.config).index;
        for (field, id) in [("parent", parent), ("child", child)] {
            if id.partition_index() != partition {
                return Err(Error::Invalid {
                    field,
                    reason: format!("{id} is not in the flow's partition {partition}"),
                });
            }
        }
        let args = EdgeArgs {
            flow: flow.clone(),
            parent: parent.clone(),
            child: child.clone(),
            pass_data,
        };
        Ok(fl::decode_add_edge(
            &self.call(&fl::add_edge(&keys, &args)).await?,
        )?)
    }

    /// The results `child`'s data-passing parents passed it, by parent: those
    /// that succeeded while it waited for its join. With one such parent this
    /// is its payload, named; empty without any.
    pub async fn parent_results(
        &self,
        child: &ExecutionId,
    ) -> Result<BTreeMap<ExecutionId, Vec<u8>>> {
        Ok(fl::decode_parent_results(
            &self.call(&fl::parent_results(child)).await?,
        )?)
    }

    /// The flow's exact member counts and derived state.
    pub async fn get_flow(&self, flow: &FlowId) -> Result<FlowRecord> {
        let keys = FlowKeys::new(flow, &self.config);
        Ok(fl::decode_get_flow(
            flow,
            &self.call(&fl::get_flow(&keys, flow)).await?,
        )?)
    }

    /// Cancel every member that has not ended. Durable: the flow takes no new
    /// members or edges from now on; members are cancelled in bounded steps by
    /// this call and then by the engine. False when already cancelling.
    pub async fn cancel_flow(&self, flow: &FlowId, reason: &str) -> Result<bool> {
        if reason.len() > limits::MAX_REASON_BYTES {
            return Err(Error::Invalid {
                field: "reason",
                reason: format!("longer than {} bytes", limits::MAX_REASON_BYTES),
            });
        }
        let keys = FlowKeys::new(flow, &self.config);
        Ok(fl::decode_cancel_flow(
            &self.call(&fl::cancel_flow(&keys, flow, reason)).await?,
        )?)
    }
}
