//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ff_engine::core::contract::execution::{Claimed, CreateArgs};
use ff_engine::core::retry::RetryPolicy;
use ff_engine::core::{ExecutionId, Kind, Lane, Namespace, WorkerInstance, WorkerName};
use ff_engine::store::{cmd, RedisStore, RedisStoreOptions, Store};
use ff_engine::Client;
use std::sync::Arc;
use std::time::Duration;

pub const LEASE: Duration = Duration::from_secs(30);

pub async fn store(url: &str) -> Arc<RedisStore> {
    Arc::new(
        RedisStore::connect(&[url.to_owned()], RedisStoreOptions::default())
            .await
            .expect("connect"),
    )
}

pub async fn client(url: &str) -> Client {
    Client::new(store(url).await).await.expect("client")
}

/// A client on any store.
pub async fn client_on(store: Arc<dyn Store>) -> Client {
    Client::new(store).await.expect("client")
}

pub async fn cluster_client(urls: Vec<String>) -> Client {
    let opts = RedisStoreOptions {
        cluster: true,
        ..Default::default()
    };
    let store = RedisStore::connect(&urls, opts)
        .await
        .expect("connect cluster");
    Client::new(Arc::new(store)).await.expect("client")
}

pub fn worker() -> (Lane, WorkerName, WorkerInstance) {
    (
        Lane::default_lane(),
        WorkerName::new("test-worker").unwrap(),
        WorkerInstance::new("w1").unwrap(),
    )
}

/// Create an execution of `kind` due after `delay`; its id.
pub async fn create_delayed(c: &Client, kind: &str, delay: Duration) -> ExecutionId {
    c.create(ff_engine::ExecutionSpec::new(kind).delay(delay))
        .await
        .expect("create")
        .execution
}

/// Claim exactly one execution from the default lane.
pub async fn claim_one(c: &Client) -> Claimed {
    let (lane, w, i) = worker();
    let mut got = c.claim(&lane, &w, &i, LEASE, 1).await.expect("claim");
    assert_eq!(got.len(), 1, "expected one claimable execution");
    got.pop().unwrap()
}

/// Every key in the database, sorted (standalone only).
pub async fn all_keys(store: &dyn Store) -> Vec<String> {
    let reply = store.command(&cmd(["KEYS", "*"])).await.expect("KEYS");
    let mut keys: Vec<String> = match reply {
        ff_engine::core::reply::Reply::Array(items) => {
            items.iter().filter_map(|r| r.text()).collect()
        }
        other => panic!("KEYS answered {other:?}"),
    };
    keys.sort();
    keys
}

/// Members of a sorted set.
pub async fn zmembers(store: &dyn Store, key: &str) -> Vec<String> {
    match store
        .command(&cmd(["ZRANGE", key, "0", "-1"]))
        .await
        .expect("ZRANGE")
    {
        ff_engine::core::reply::Reply::Array(items) => {
            items.iter().filter_map(|r| r.text()).collect()
        }
        other => panic!("ZRANGE answered {other:?}"),
    }
}

/// Members of a set.
pub async fn smembers(store: &dyn Store, key: &str) -> Vec<String> {
    match store
        .command(&cmd(["SMEMBERS", key]))
        .await
        .expect("SMEMBERS")
    {
        ff_engine::core::reply::Reply::Array(items) => {
            items.iter().filter_map(|r| r.text()).collect()
        }
        other => panic!("SMEMBERS answered {other:?}"),
    }
}

pub async fn server_ms(store: &dyn Store) -> u64 {
    store.time_ms().await.expect("TIME")
}

/// One look by the delayed promoter at one partition.
pub async fn promote(
    c: &Client,
    p: ff_engine::core::Partition,
) -> ff_engine::core::contract::scan::BatchOutcome {
    run_scan(
        c,
        ff_engine::core::contract::scan::BatchFunction::PromoteDelayed,
        p,
    )
    .await
}

/// One look by the lease-expiry scanner at one partition.
pub async fn reclaim(
    c: &Client,
    p: ff_engine::core::Partition,
) -> ff_engine::core::contract::scan::BatchOutcome {
    run_scan(
        c,
        ff_engine::core::contract::scan::BatchFunction::ReclaimExpired,
        p,
    )
    .await
}

pub async fn run_scan(
    c: &Client,
    f: ff_engine::core::contract::scan::BatchFunction,
    p: ff_engine::core::Partition,
) -> ff_engine::core::contract::scan::BatchOutcome {
    ff_engine::engine::scan_once(&**c.store(), f, p, &Default::default(), 100)
        .await
        .expect("scan")
}

/// A store that counts every call, logs each FCALL round trip (the function
/// of its calls and how many), and, if asked, panics on its first TIME call
/// or its first subscription to one channel.
pub struct Flaky {
    pub inner: Arc<dyn Store>,
    pub panic_once: std::sync::atomic::AtomicBool,
    pub panic_on_subscribe: std::sync::Mutex<Option<&'static str>>,
    pub calls: std::sync::atomic::AtomicU64,
    pub fcalls: std::sync::Mutex<Vec<(&'static str, usize)>>,
}

impl Flaky {
    pub fn new(inner: Arc<dyn Store>, panic_once: bool) -> Self {
        Self {
            inner,
            panic_once: panic_once.into(),
            panic_on_subscribe: Default::default(),
            calls: 0.into(),
            fcalls: Default::default(),
        }
    }

    fn count(&self) {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl Store for Flaky {
    async fn fcall(
        &self,
        call: &ff_engine::core::contract::Call,
    ) -> Result<ff_engine::core::reply::Reply, ff_engine::error::StoreError> {
        self.count();
        self.fcalls.lock().unwrap().push((call.function, 1));
        self.inner.fcall(call).await
    }
    async fn fcall_many(
        &self,
        calls: &[ff_engine::core::contract::Call],
    ) -> Vec<Result<ff_engine::core::reply::Reply, ff_engine::error::StoreError>> {
        self.count();
        if let Some(c) = calls.first() {
            self.fcalls.lock().unwrap().push((c.function, calls.len()));
        }
        self.inner.fcall_many(calls).await
    }
    async fn command(
        &self,
        args: &[Vec<u8>],
    ) -> Result<ff_engine::core::reply::Reply, ff_engine::error::StoreError> {
        self.count();
        self.inner.command(args).await
    }
    async fn command_many(
        &self,
        cmds: &[Vec<Vec<u8>>],
    ) -> Vec<Result<ff_engine::core::reply::Reply, ff_engine::error::StoreError>> {
        self.count();
        self.inner.command_many(cmds).await
    }
    async fn time_ms(&self) -> Result<u64, ff_engine::error::StoreError> {
        self.count();
        if self
            .panic_once
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("injected scanner panic");
        }
        self.inner.time_ms().await
    }
    async fn ensure_library(&self) -> Result<(), ff_engine::error::StoreError> {
        self.inner.ensure_library().await
    }
    async fn subscribe(
        &self,
        channel: &str,
    ) -> Result<
        tokio::sync::mpsc::UnboundedReceiver<ff_engine::store::SubEvent>,
        ff_engine::error::StoreError,
    > {
        let panic_now = {
            let mut once = self.panic_on_subscribe.lock().unwrap();
            once.take_if(|c| *c == channel).is_some()
        };
        if panic_now {
            panic!("injected subscriber panic");
        }
        self.inner.subscribe(channel).await
    }
}

/// Valid `ff_create` arguments for execution `random` of `partition`
/// (tests change the field under test).
pub fn create_args(partition: u16, random: u128) -> CreateArgs {
    CreateArgs {
        execution: ExecutionId::new(partition, random),
        namespace: Namespace::default_namespace(),
        lane: Lane::default_lane(),
        kind: Kind::new("k").unwrap(),
        priority: 0,
        payload: b"p".to_vec(),
        delay_ms: 0,
        attempt_timeout_ms: 0,
        deadline_ms: 0,
        retry: RetryPolicy::default(),
        max_reclaims: 3,
        retention_ms: 1000,
        idempotency: None,
        tags: vec![],
        flow: None,
        admission: Default::default(),
    }
}

pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A client on a fresh in-process MemoryStore, and the store (to move its clock).
pub async fn memory_client() -> (Arc<ff_engine::store::MemoryStore>, Client) {
    let store = Arc::new(ff_engine::store::MemoryStore::new());
    let c = Client::new(store.clone())
        .await
        .expect("client on MemoryStore");
    (store, c)
}

/// Run each named `async fn(Arc<dyn Store>)` as two tests: on a real
/// redis-server (`on_redis::name`) and on MemoryStore (`on_memory::name`).
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod on_redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let redis = ff_tests::TestRedis::standalone();
                    super::$name($crate::common::store(&redis.url()).await).await
                }
            )*
        }
        mod on_memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(std::sync::Arc::new(ff_engine::store::MemoryStore::new())).await
                }
            )*
        }
    };
}
