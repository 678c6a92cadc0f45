//! The `data_plane` target: arbitrary sequences of client calls, scanner
//! batches and raw writes, with arbitrary arguments, run against the `lua/`
//! library on a fresh in-process [`MemoryStore`] per input.
//!
//! The input is read with `arbitrary` as up to [`MAX_OPS`] [`Op`]s (see
//! [`ops_from_bytes`]). Eight executions ([`exec_id`]) in two partitions are
//! the ones the operations name, and four flows ([`flow_id`]), two in each
//! partition; leases are those earlier claims handed out
//! (lease ids from a counter), so every run is deterministic. The store's
//! clock stands still at [`START_MS`] unless an [`Op::Advance`] moves it.
//!
//! # What is checked
//!
//! Nothing may panic. Then, after every call and step:
//!
//! 1. **Replies.** Every FCALL answers either a success that its contract
//!    decodes (`decode_create`, `decode_claim`, `decode_batch`, …) or a typed
//!    refusal `{0, code, detail}` with a code [`FfError::from_code`] knows.
//!    A Lua runtime error (the store's `StoreError::Server`, "… script:
//!    ff_x, on @user_function:N") or a success reply that does not decode is a
//!    finding, with one exception: a per-execution call (create, renew,
//!    complete, fail, delay, release, cancel, get) whose execution record the
//!    input *corrupted* (an [`Op::HSet`], [`Op::HDel`] or [`Op::Del`] on it
//!    earlier; for create, also the record its idempotency key names) may
//!    raise or answer something its contract refuses — those functions trust
//!    the record they were given. `ff_claim` and the six scanner batch
//!    functions get no exception: they are documented to count malformed
//!    records and skip them, so they must never raise, whatever the data.
//! 2. **Messages.** Every `ff:wake` and `ff:ready` message parses
//!    ([`WakeMessage::parse`], [`ReadyMessage::parse`]) — until the input has
//!    corrupted anything (a corrupted due time may make an unparsable
//!    wake-up; the engine drops it and looks at its next interval anyway).
//! 3. **Index invariant.** Every record decodes and every execution is in
//!    exactly the index sets its state says, with the right scores, and no
//!    index holds a member without a record
//!    ([`ff_core::invariant::index_violations`], as the simulator checks) —
//!    except for *tainted* members: those whose record the input corrupted
//!    or whose index entries it wrote directly (ZADD/ZREM/SADD/SREM).
//!    Raw writes keep each key's type (on `all`, ZADD and ZREM act as SADD
//!    and SREM): a wrongly typed index key is not data the Lua guards against.
//! 4. **Nothing lost, outcomes final.** An untainted execution disappears only
//!    when it was terminal and past its retention (purged), and its terminal
//!    state never changes while it exists.
//! 5. **Flows.** Every flow hash has `done <= n` and its per-outcome counts
//!    sum to `done` (unless an execution of its partition is tainted); every
//!    `ff:deps:<eid>` hash has `#s + #i <= #n`; every `flow_work` member is
//!    `d:<eid>` or `x:<eid>` (an execution id of that partition) or
//!    `f:<flow id>`. Indexes that do not hold executions (`flow_work`,
//!    `flows`: [`holds_executions`]) stay out of the index invariant.
//!
//! Flow calls cascade: ending a member resolves its edges and decides its
//! children, cancelling a flow ends its members. So the exception of rule 1
//! widens there: while a corrupted execution of a call's partition is tied to
//! a flow (a member, or has edges), any call on that partition may raise or
//! answer what its contract refuses — and when one does, its partition's
//! executions count as tainted from then on (a raise leaves the writes made
//! before it).

use arbitrary::{Arbitrary, Unstructured};
use ff_core::admission::{budget_key, quota_key};
use ff_core::contract::admission as ad;
use ff_core::contract::execution::ExecutionRecord;
use ff_core::contract::execution::{self as ex, Lease};
use ff_core::contract::flow as fl;
use ff_core::contract::limits::MAX_PAYLOAD_BYTES;
use ff_core::contract::scan::{decode_batch, BatchFunction};
use ff_core::contract::{Call, CallError};
use ff_core::invariant::{holds_executions, index_violations};
use ff_core::keys::{self, flow_partition, FlowKeys, PartitionKeys};
use ff_core::partition::PartitionConfig;
use ff_core::reply::Reply;
use ff_core::scan::{ReadyMessage, WakeMessage};
use ff_core::state::PublicState;
use ff_core::{
    BudgetId, ExecutionId, FfError, FlowId, LeaseId, Partition, PartitionFamily, QuotaId,
};
use ff_engine::error::StoreError;
use ff_engine::store::{cmd, MemoryStore, Store, SubEvent};
use futures::executor::block_on;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

mod args;
mod invariants;
mod ops;
mod replies;
mod run;
mod step;

pub use args::*;
use invariants::*;
pub use ops::*;
use replies::*;
pub use run::Stats;
use run::*;

/// Executions the operations name (ids in [`PARTITIONS`] partitions).
pub const EXECS: usize = 8;
/// Flows the operations name (half in each partition).
pub const FLOWS: usize = 4;
pub const PARTITIONS: u16 = 2;
/// Most operations read from one input.
pub const MAX_OPS: usize = 48;
/// The store's clock before any [`Op::Advance`] (server ms).
pub const START_MS: u64 = 1_700_000_000_000;

pub fn exec_id(i: u8) -> ExecutionId {
    let i = usize::from(i) % EXECS;
    ExecutionId::new((i % PARTITIONS as usize) as u16, 0xf022_0000 + i as u128)
}

fn partition(p: u8) -> Partition {
    Partition::new(PartitionFamily::Flow, u16::from(p) % PARTITIONS)
}

/// The target's partition layout: flows spread over [`PARTITIONS`].
fn config() -> PartitionConfig {
    PartitionConfig {
        flow_partitions: PARTITIONS,
        ..PartitionConfig::default()
    }
}

/// Flow `i % FLOWS`: the first ids from `f1000…` on, taken so that flow `i`
/// lands in partition `i % PARTITIONS` (see [`flow_partition`]).
pub fn flow_id(i: u8) -> FlowId {
    let i = usize::from(i) % FLOWS;
    let want = (i % PARTITIONS as usize) as u16;
    let config = config();
    (0u128..)
        .map(|k| FlowId::from_u128(0xf100_0000_0000_0000_0000_0000_0000_0000 + k))
        .filter(|f| flow_partition(f, &config).index == want)
        .nth(i / PARTITIONS as usize)
        .expect("an id in every partition")
}

fn flow_keys(flow: &FlowId) -> FlowKeys {
    FlowKeys::new(flow, &config())
}

/// Execution `i` of partition `p` (so a member of that partition's flows).
pub fn local_exec(i: u8, p: u16) -> ExecutionId {
    let per = (EXECS / PARTITIONS as usize) as u8;
    exec_id((i % per) * PARTITIONS as u8 + p as u8)
}

/// Fuzz target `data_plane`.
pub fn data_plane(data: &[u8]) {
    run_ops(&ops_from_bytes(data));
}

/// Run `ops` on a fresh store, checking after every step.
pub fn run_ops(ops: &[Op]) -> Stats {
    let mut run = Run::new();
    for op in ops {
        run.step(op);
    }
    run.stats
}
