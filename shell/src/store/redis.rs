//! RedisStore: the Store over the redis crate, standalone or cluster.
//!
//! Standalone uses a ConnectionManager (multiplexed, reconnects by itself);
//! cluster uses the cluster-async connection (slot routing, reconnects,
//! follows MOVED). Concurrent requests share one connection per node and are
//! pipelined by the driver, so `fcall_many` is one round of writes per node.

use super::library::library;
use super::retry::{Retry, RetryStats};
use super::{Store, SubEvent};
use crate::error::StoreError;
use ff_core::contract::Call;
use ff_core::reply::Reply;
use futures::future::join_all;
use futures::StreamExt;
use prometheus_client::registry::Registry;
use redis::aio::ConnectionLike;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{Cmd, ErrorKind, RedisError, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

mod tls;
use self::tls::{check_handshake, classify_connect, client, prepare_tls};
pub use self::tls::{ClientIdentity, TlsOptions};

/// How to reach the server(s).
#[derive(Debug, Clone)]
pub struct RedisStoreOptions {
    /// Treat the URLs as seeds of a Redis Cluster.
    pub cluster: bool,
    /// Give up on one request after this long (the caller sees `Unavailable`).
    pub response_timeout: Duration,
    /// Give up connecting after this long.
    pub connection_timeout: Duration,
    /// How long a request keeps being sent again while the store is
    /// unavailable (a restart, a failover, a dropped connection), with
    /// jittered exponential backoff; after it the caller sees `Unavailable`.
    /// Zero sends every request once.
    pub retry_window: Duration,
    /// Certificates for `rediss://` URLs: a private CA, a client certificate.
    /// None: the system's trust store, no client certificate.
    pub tls: Option<TlsOptions>,
}

impl Default for RedisStoreOptions {
    fn default() -> Self {
        Self {
            cluster: false,
            response_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(5),
            retry_window: Duration::from_secs(30),
            tls: None,
        }
    }
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A Store backed by Redis 7+ / Valkey 7.2+. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    retry: Retry,
    /// For pub/sub, which runs on its own connection. In a cluster PUBLISH is
    /// broadcast to every node, so one node's subscription sees everything.
    urls: Vec<String>,
    /// Pub/sub connects with the same certificates.
    tls: Option<TlsOptions>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.conn {
            Conn::Single(_) => "standalone",
            Conn::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisStore").field("mode", &kind).finish()
    }
}

fn classify(e: RedisError) -> StoreError {
    if e.kind() == ErrorKind::AuthenticationFailed {
        StoreError::Config(e.to_string())
    } else if e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
    {
        StoreError::Unavailable(e.to_string())
    } else {
        classify_reply(e.code().unwrap_or_default(), e.to_string())
    }
}

/// Error replies that say "not now" rather than "no": a server loading its
/// data after a restart, a cluster changing hands, a write reaching a node
/// just demoted to replica, a long script still running.
const TRANSIENT_CODES: &[&str] = &[
    "LOADING",
    "TRYAGAIN",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "READONLY",
    "BUSY",
];

/// An error reply by its code (its first word) and whole text.
fn classify_reply(code: &str, text: String) -> StoreError {
    if text.contains("Function not found") {
        StoreError::FunctionNotFound(text)
    } else if TRANSIENT_CODES.contains(&code) {
        StoreError::Unavailable(text)
    } else {
        StoreError::Server(text)
    }
}

/// The driver's value as core's Reply.
fn to_reply(v: Value) -> Reply {
    match v {
        Value::Nil => Reply::Nil,
        Value::Int(i) => Reply::Int(i),
        Value::BulkString(b) => Reply::Bulk(b),
        Value::SimpleString(s) => Reply::Status(s),
        Value::Okay => Reply::Status("OK".into()),
        Value::Array(items) | Value::Set(items) => {
            Reply::Array(items.into_iter().map(to_reply).collect())
        }
        Value::Map(pairs) => Reply::Array(
            pairs
                .into_iter()
                .flat_map(|(k, v)| [to_reply(k), to_reply(v)])
                .collect(),
        ),
        Value::Double(d) => Reply::Bulk(d.to_string().into_bytes()),
        Value::Boolean(b) => Reply::Int(b as i64),
        Value::VerbatimString { text, .. } => Reply::Bulk(text.into_bytes()),
        Value::ServerError(e) => Reply::Error(format!("{e:?}")),
        other => Reply::Error(format!("unsupported reply type: {other:?}")),
    }
}

fn fcall_cmd(call: &Call) -> Cmd {
    let mut c = redis::cmd(if call.read_only { "FCALL_RO" } else { "FCALL" });
    c.arg(call.function).arg(call.keys.len());
    for k in &call.keys {
        c.arg(k);
    }
    for a in &call.args {
        c.arg(a.as_slice());
    }
    c
}

fn plain_cmd(args: &[Vec<u8>]) -> Cmd {
    let mut c = Cmd::new();
    for a in args {
        c.arg(a.as_slice());
    }
    c
}

impl RedisStore {
    /// Connect to `urls` (one URL standalone; any seeds for a cluster) and make
    /// sure the function library of this build is loaded. URLs may carry an ACL
    /// user and password (`redis://user:pass@host:port`) and use TLS (`rediss://`;
    /// certificates in [`RedisStoreOptions::tls`]).
    pub async fn connect(urls: &[String], opts: RedisStoreOptions) -> Result<Self, StoreError> {
        let cfg = |e: RedisError| StoreError::Config(e.to_string());
        prepare_tls(urls, opts.tls.as_ref())?;
        let conn = if opts.cluster {
            let mut builder = ClusterClient::builder(urls.iter().map(String::as_str))
                .connection_timeout(opts.connection_timeout)
                .response_timeout(opts.response_timeout);
            if let Some(tls) = &opts.tls {
                builder = builder.certs(tls.certificates());
            }
            let client = builder.build().map_err(cfg)?;
            Conn::Cluster(
                client
                    .get_async_connection()
                    .await
                    .map_err(classify_connect)?,
            )
        } else {
            let url = match urls {
                [one] => one,
                _ => {
                    return Err(StoreError::Config(format!(
                        "standalone mode takes one URL, got {}",
                        urls.len()
                    )))
                }
            };
            let client = client(url, opts.tls.as_ref())?;
            if url.starts_with("rediss://") {
                check_handshake(&client, &opts).await?;
            }
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(Some(opts.response_timeout))
                .set_connection_timeout(Some(opts.connection_timeout));
            Conn::Single(
                client
                    .get_connection_manager_with_config(config)
                    .await
                    .map_err(classify_connect)?,
            )
        };
        let store = Self {
            conn,
            retry: Retry::new(opts.retry_window),
            urls: urls.to_vec(),
            tls: opts.tls,
        };
        store.ensure_library().await?;
        Ok(store)
    }

    /// How this store's requests fared with the retry window.
    pub fn retry_stats(&self) -> &Arc<RetryStats> {
        self.retry.stats()
    }

    /// Put the store's counters (`ff_store_*`) into `registry`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.retry.register_metrics(registry);
    }

    /// Send `cmd` (`what` names it in logs), again while the store is
    /// unavailable (see [`Retry`]).
    async fn raw(&self, what: &str, cmd: &Cmd) -> Result<Value, StoreError> {
        self.retry.run(what, || self.send(cmd)).await
    }

    /// An FCALL, sent again only when its contract says a repeat is safe.
    async fn raw_fcall(&self, call: &Call, cmd: &Cmd) -> Result<Value, StoreError> {
        if call.repeatable {
            self.raw(call.function, cmd).await
        } else {
            self.send(cmd).await
        }
    }

    async fn send(&self, cmd: &Cmd) -> Result<Value, StoreError> {
        let r = match &self.conn {
            Conn::Single(c) => c.clone().req_packed_command(cmd).await,
            Conn::Cluster(c) => c.clone().req_packed_command(cmd).await,
        };
        match r.map_err(classify)? {
            // An error reply can arrive as a value; it is an error all the same.
            Value::ServerError(e) => Err(classify_reply(
                e.code(),
                format!("{} {}", e.code(), e.details().unwrap_or_default()),
            )),
            v => Ok(v),
        }
    }

    /// Send to every primary; `policy` says how their answers combine.
    async fn all_primaries(&self, cmd: &Cmd, policy: ResponsePolicy) -> Result<Value, StoreError> {
        match &self.conn {
            Conn::Single(_) => self.raw("all primaries", cmd).await,
            Conn::Cluster(c) => {
                let routing =
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, Some(policy)));
                self.retry
                    .run("all primaries", || async {
                        c.clone()
                            .route_command(cmd.clone(), routing.clone())
                            .await
                            .map_err(classify)
                    })
                    .await
            }
        }
    }

    async fn load_library(&self) -> Result<(), StoreError> {
        let lib = library();
        tracing::info!(version = %lib.version, "loading the ff function library");
        let mut c = redis::cmd("FUNCTION");
        c.arg("LOAD").arg("REPLACE").arg(&lib.source);
        self.all_primaries(&c, ResponsePolicy::AllSucceeded)
            .await
            .map(drop)
    }

    async fn run_fcall(&self, call: &Call) -> Result<Reply, StoreError> {
        let cmd = fcall_cmd(call);
        match self.raw_fcall(call, &cmd).await {
            Err(StoreError::FunctionNotFound(e)) => {
                tracing::warn!(function = call.function, error = %e, "function library missing; reloading and retrying once");
                self.load_library().await?;
                self.raw_fcall(call, &cmd).await.map(to_reply)
            }
            r => r.map(to_reply),
        }
    }
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn fcall(&self, call: &Call) -> Result<Reply, StoreError> {
        let r = self.run_fcall(call).await;
        if let Err(e) = &r {
            tracing::debug!(function = call.function, error = %e, "fcall failed");
        }
        r
    }

    async fn fcall_many(&self, calls: &[Call]) -> Vec<Result<Reply, StoreError>> {
        join_all(calls.iter().map(|c| self.fcall(c))).await
    }

    async fn command(&self, args: &[Vec<u8>]) -> Result<Reply, StoreError> {
        let what = args
            .first()
            .map(|a| String::from_utf8_lossy(a))
            .unwrap_or_default();
        self.raw(&what, &plain_cmd(args)).await.map(to_reply)
    }

    async fn command_many(&self, cmds: &[Vec<Vec<u8>>]) -> Vec<Result<Reply, StoreError>> {
        join_all(cmds.iter().map(|c| self.command(c))).await
    }

    async fn time_ms(&self) -> Result<u64, StoreError> {
        let v = self.raw("TIME", &redis::cmd("TIME")).await?;
        let parts: Vec<u64> = match to_reply(v) {
            Reply::Array(items) => items
                .iter()
                .filter_map(|r| r.int())
                .map(|i| i as u64)
                .collect(),
            _ => Vec::new(),
        };
        match parts.as_slice() {
            [secs, micros] => Ok(secs * 1000 + micros / 1000),
            _ => Err(StoreError::Server(
                "TIME returned an unexpected reply".into(),
            )),
        }
    }

    async fn ensure_library(&self) -> Result<(), StoreError> {
        let lib = library();
        let mut check = redis::cmd("FCALL_RO");
        check.arg("ff_version").arg(0);
        let current = match self
            .all_primaries(&check, ResponsePolicy::CombineArrays)
            .await
        {
            Ok(v) => match to_reply(v) {
                Reply::Array(vs)
                    if !vs.is_empty()
                        && vs
                            .iter()
                            .all(|v| v.text().as_deref() == Some(lib.version.as_str())) =>
                {
                    return Ok(());
                }
                other => format!("{other:?}"),
            },
            // A node without the library answers with an error; in a cluster the
            // combined answer is then not an array of versions.
            Err(e @ StoreError::Unavailable(_)) => return Err(e),
            Err(e) => e.to_string(),
        };
        tracing::info!(found = %current, wanted = %lib.version, "function library missing or of another version");
        self.load_library().await
    }

    async fn subscribe(&self, channel: &str) -> Result<UnboundedReceiver<SubEvent>, StoreError> {
        let clients = self
            .urls
            .iter()
            .map(|u| client(u, self.tls.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let (tx, rx) = unbounded_channel();
        tokio::spawn(follow(clients, channel.to_owned(), tx));
        Ok(rx)
    }
}

/// Keep one subscription alive across disconnects, trying each seed in turn.
async fn follow(clients: Vec<redis::Client>, channel: String, tx: UnboundedSender<SubEvent>) {
    let mut backoff = Duration::from_millis(50);
    let mut next = 0usize;
    while !tx.is_closed() {
        let client = &clients[next % clients.len()];
        next += 1;
        let attempt = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, RedisError>(pubsub)
        };
        match attempt.await {
            Ok(mut pubsub) => {
                backoff = Duration::from_millis(50);
                if tx.send(SubEvent::Subscribed).is_err() {
                    return;
                }
                let mut messages = pubsub.on_message();
                loop {
                    tokio::select! {
                        biased;
                        msg = messages.next() => match msg {
                            Some(m) => {
                                if tx.send(SubEvent::Message(m.get_payload_bytes().to_vec())).is_err() {
                                    return;
                                }
                            }
                            None => break,
                        },
                        _ = tx.closed() => return,
                    }
                }
                tracing::warn!(channel = %channel, "subscription lost; reconnecting");
            }
            Err(e) => {
                tracing::warn!(channel = %channel, error = %e, ?backoff, "subscribe failed; retrying");
                tokio::select! {
                    biased;
                    _ = tokio::time::sleep(backoff) => {}
                    _ = tx.closed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
