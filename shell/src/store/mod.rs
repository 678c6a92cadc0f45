//! The Store trait: the seam between the engine and Valkey.

pub mod library;
pub mod memory;
#[cfg(not(madsim))]
pub mod redis;
#[cfg(not(madsim))]
pub mod retry;

#[cfg(not(madsim))]
pub use self::redis::{ClientIdentity, RedisStore, RedisStoreOptions, TlsOptions};
use crate::error::StoreError;
use ff_core::contract::Call;
use ff_core::reply::Reply;
pub use memory::MemoryStore;

/// What the engine needs from Valkey. Implementations: [`RedisStore`] (a real
/// server, standalone or cluster) and, later, the in-process MemoryStore.
#[cfg_attr(test, mockall::automock)]
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Run one FCALL. A "function not found" answer (the server restarted or
    /// failed over and lost the library) is handled inside: the library is
    /// loaded again and the call retried once.
    async fn fcall(&self, call: &Call) -> Result<Reply, StoreError>;

    /// Run many FCALLs pipelined; one result per call, in order.
    async fn fcall_many(&self, calls: &[Call]) -> Vec<Result<Reply, StoreError>>;

    /// Run one plain command (reads and small admin writes), routed by its key.
    async fn command(&self, args: &[Vec<u8>]) -> Result<Reply, StoreError>;

    /// Run many plain commands pipelined; one result per command, in order.
    async fn command_many(&self, cmds: &[Vec<Vec<u8>>]) -> Vec<Result<Reply, StoreError>>;

    /// Server time in milliseconds.
    async fn time_ms(&self) -> Result<u64, StoreError>;

    /// Make sure the function library of this build is loaded on every node.
    async fn ensure_library(&self) -> Result<(), StoreError>;

    /// Follow a pub/sub channel. The subscription reconnects by itself and
    /// sends [`SubEvent::Subscribed`] after every (re)subscribe: messages
    /// published while it was away are lost, so the receiver should rescan.
    /// Dropping the receiver ends the subscription.
    async fn subscribe(
        &self,
        channel: &str,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<SubEvent>, StoreError>;
}

/// What a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubEvent {
    /// (Re)subscribed; anything published before may have been missed.
    Subscribed,
    /// A message published on the channel.
    Message(Vec<u8>),
}

/// Build a command's argument vector from displayable parts.
pub fn cmd<I, S>(parts: I) -> Vec<Vec<u8>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    parts.into_iter().map(|p| p.as_ref().to_vec()).collect()
}
