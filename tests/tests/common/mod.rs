//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ff_engine::core::contract::execution::Claimed;
use ff_engine::core::{Lane, WorkerInstance, WorkerName};
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
    Client::new(store(url).await, Default::default())
        .await
        .expect("client")
}

pub async fn cluster_client(urls: Vec<String>) -> Client {
    let opts = RedisStoreOptions {
        cluster: true,
        ..Default::default()
    };
    let store = RedisStore::connect(&urls, opts)
        .await
        .expect("connect cluster");
    Client::new(Arc::new(store), Default::default())
        .await
        .expect("client")
}

pub fn worker() -> (Lane, WorkerName, WorkerInstance) {
    (
        Lane::default_lane(),
        WorkerName::new("test-worker").unwrap(),
        WorkerInstance::new("w1").unwrap(),
    )
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
    match store.command(&cmd(["SMEMBERS", key])).await.expect("SMEMBERS") {
        ff_engine::core::reply::Reply::Array(items) => items.iter().filter_map(|r| r.text()).collect(),
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
