//! Bounds the data plane enforces. The Lua reads these numbers (`crate::lua_facts`: the
//! server is the trust boundary); the client checks them first to fail fast.

/// Largest payload or result, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Longest delay, timeout, deadline, retention or idempotency TTL.
pub const MAX_DURATION_MS: u64 = 365 * 24 * 3600 * 1000;
/// Shortest and longest lease.
pub const MIN_LEASE_MS: u64 = 100;
/// Longest lease.
pub const MAX_LEASE_MS: u64 = 24 * 3600 * 1000;
/// Highest priority (claimed first); 0 is the lowest.
pub const MAX_PRIORITY: u32 = 1000;
/// Most tags on one execution.
pub const MAX_TAGS: usize = 32;
/// Longest tag value, in bytes.
pub const MAX_TAG_VALUE_BYTES: usize = 256;
/// Most executions one claim call hands out.
pub const MAX_CLAIM_BATCH: usize = 1000;
/// Longest error message or cancel reason kept, in bytes.
pub const MAX_REASON_BYTES: usize = 4096;
/// Most waitpoints one suspension waits on.
pub const MAX_SUSPENSION_WAITPOINTS: usize = 16;
/// Most waitpoints one execution creates over its life.
pub const MAX_EXECUTION_WAITPOINTS: usize = 256;
/// Most signals one execution accepts over its life.
pub const MAX_EXECUTION_SIGNALS: usize = 1000;
/// Largest signal payload, in bytes.
pub const MAX_SIGNAL_PAYLOAD_BYTES: usize = 64 * 1024;
/// Most signal names in one resume condition.
pub const MAX_CONDITION_NAMES: usize = 16;
/// Bounds of a waitpoint-token secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;
/// Longest waitpoint-token secret, in bytes.
pub const MAX_SECRET_BYTES: usize = 64;
/// Most lease reclaims an execution may be given before it fails.
pub const MAX_RECLAIMS: u32 = 10_000;
/// Most members one flow may hold.
pub const MAX_FLOW_MEMBERS: u32 = 100_000;
/// Most parents (incoming edges) one flow member may have.
pub const MAX_EDGES_PER_CHILD: u32 = 10_000;
/// Most parents that pass one flow member their results: each result is at
/// most [`MAX_PAYLOAD_BYTES`], so the results a member keeps (and one read
/// returns) stay within 32 MiB.
pub const MAX_DATA_PARENTS: u32 = 32;
/// Most members one page of a flow's members holds (`ff_flow_members`).
pub const MAX_FLOW_PAGE: u32 = 1000;
/// A page of a flow's members ends early once the edges it read pass this
/// (a member's edges always come whole), so one read stays bounded.
pub const MAX_FLOW_PAGE_EDGES: u32 = 10_000;
/// Largest progress value a running attempt stores, in bytes.
pub const MAX_PROGRESS_BYTES: usize = 1024;
