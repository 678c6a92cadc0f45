//! Flows: DAGs of executions sharing one partition.
//!
//! The Lua data plane resolves dependency edges atomically as members end;
//! this module holds the pure parts: join policies ([`join`]), the flow
//! summary and its state ([`summary`]), the completion messages and the
//! completion listener's dispatch planner ([`dispatch`]), and a naive
//! reference of settlement the tests compare the data plane with
//! ([`reference`](mod@reference)).

pub mod dispatch;
pub mod join;
pub mod reference;
pub mod summary;

pub use dispatch::{
    CompletionMessage, DispatchLimits, DispatchPlanner, DispatchStats, COMPLETION_CHANNEL,
};
pub use join::{EdgeCounts, JoinDecision, JoinPolicy, MAX_QUORUM};
pub use reference::{settle, Dag, Fate};
pub use summary::{FlowState, FlowSummary};
