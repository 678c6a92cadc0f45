//! ff-core: the pure part of ff.
//!
//! Ids and names, partitions and key builders, the execution state model, retry
//! policy, and the FCALL contracts (how each call is encoded and how its reply is
//! decoded). Nothing here performs I/O, reads a clock or spawns a task: the shell
//! reads snapshots, hands them to these functions, and carries out what they say.

#![warn(missing_docs)]

pub mod admission;
pub mod contract;
pub mod counts;
pub mod error;
pub mod flow;
pub mod id;
pub mod invariant;
pub mod keys;
pub mod listing;
pub mod lua_facts;
pub mod name;
pub mod ownership;
pub mod partition;
pub mod reply;
pub mod retry;
pub mod scan;
pub mod schedule;
pub mod state;
pub mod tracker;

pub use error::{FfError, ParseError};
pub use id::{
    AttemptId, BudgetId, EdgeId, ExecutionId, FlowId, LeaseId, QuotaId, SignalId, WaitpointId,
};
pub use name::{Kind, Lane, Namespace, SignalName, TagName, WorkerInstance, WorkerName};
pub use partition::{Partition, PartitionConfig, PartitionFamily};
