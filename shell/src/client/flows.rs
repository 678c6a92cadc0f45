//! The flow half of [`Client`]: create a flow, add members (with
//! [`ExecutionSpec::in_flow`](crate::ExecutionSpec::in_flow), or existing
//! executions with [`Client::add_to_flow`]) and dependency edges, read its
//! summary, its members and edges, and what parents passed a member, cancel it.
//!
//! A flow's members live in the flow's partition, so the data plane resolves
//! a finished parent's edges in the same atomic call that ended it.

use super::{random_u128, Client};
use crate::error::{Error, Result};
use ff_core::contract::flow::{
    self as fl, AddToFlowArgs, AddedToFlow, EdgeAdded, EdgeArgs, FlowRecord, MembersPage,
};
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

    /// Make an existing execution a member of a flow, waiting on the parents
    /// `args` names (members of the flow) as a member created after its
    /// edges does. The execution must be in the flow's partition (create it
    /// with [`Client::new_member_id`] and
    /// [`ExecutionSpec::id`](crate::ExecutionSpec::id)), in no flow and not
    /// ended, and with parents not claimed yet. Refused with
    /// [`FfError::FlowCancelled`](ff_core::FfError::FlowCancelled) on a
    /// cancelled flow, [`FfError::FlowEnded`](ff_core::FfError::FlowEnded) on one
    /// whose members all ended, [`FfError::AlreadyTerminal`](ff_core::FfError::AlreadyTerminal)
    /// for an ended execution, [`FfError::InvalidState`](ff_core::FfError::InvalidState)
    /// for a member of another flow, [`FfError::NotFound`](ff_core::FfError::NotFound)
    /// for an unknown flow, execution or parent; nothing is written then.
    /// Safe to repeat: a member with those edges is answered `added: false`.
    pub async fn add_to_flow(&self, args: &AddToFlowArgs) -> Result<AddedToFlow> {
        let keys = FlowKeys::new(&args.flow, &self.config);
        let partition = flow_partition(&args.flow, &self.config).index;
        let ids = std::iter::once(("execution", &args.execution))
            .chain(args.parents.iter().map(|(p, _)| ("parent", p)));
        for (field, id) in ids {
            if id.partition_index() != partition {
                return Err(Error::Invalid {
                    field,
                    reason: format!("{id} is not in the flow's partition {partition}"),
                });
            }
        }
        if args.parents.len() > limits::MAX_EDGES_PER_CHILD as usize {
            return Err(Error::Invalid {
                field: "parents",
                reason: format!("more than {}", limits::MAX_EDGES_PER_CHILD),
            });
        }
        Ok(fl::decode_add_execution_to_flow(
            &self.call(&fl::add_execution_to_flow(&keys, args)).await?,
        )?)
    }

    /// One page of `flow`'s members, in id order from `offset` (0 for the
    /// first page; a page says where the next starts), each with its state
    /// and incoming edges: up to `limit` (1..=[`MAX_FLOW_PAGE`](limits::MAX_FLOW_PAGE))
    /// members, fewer once the page's edges pass
    /// [`MAX_FLOW_PAGE_EDGES`](limits::MAX_FLOW_PAGE_EDGES). Offsets count
    /// members in id order, so a member purged between two pages shifts the
    /// next one by one (a member may be skipped).
    pub async fn flow_members(
        &self,
        flow: &FlowId,
        offset: u64,
        limit: u32,
    ) -> Result<MembersPage> {
        if !(1..=limits::MAX_FLOW_PAGE).contains(&limit) {
            return Err(Error::Invalid {
                field: "limit",
                reason: format!("{limit} is outside 1..={}", limits::MAX_FLOW_PAGE),
            });
        }
        if offset > u64::from(limits::MAX_FLOW_MEMBERS) {
            return Err(Error::Invalid {
                field: "offset",
                reason: format!("{offset} is past {}", limits::MAX_FLOW_MEMBERS),
            });
        }
        let keys = FlowKeys::new(flow, &self.config);
        Ok(fl::decode_flow_members(
            &self
                .call(&fl::flow_members(&keys, flow, offset, limit))
                .await?,
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
