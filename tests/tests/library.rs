//! The function library: loaded on connect, reloaded transparently when the
//! server lost it, replaced when it is of another version; partition counts
//! are checked at every start.

mod common;

use common::*;
use ff_engine::core::PartitionConfig;
use ff_engine::store::{cmd, Store};
use ff_engine::{Client, Error, ExecutionSpec};
use ff_tests::TestRedis;

#[tokio::test]
async fn library_flushed_is_reloaded_on_the_next_call() {
    let redis = TestRedis::standalone();
    let store = store(&redis.url()).await;
    let c = client(&redis.url()).await;
    let eid = c.create(ExecutionSpec::new("job")).await.unwrap().execution;
    store.command(&cmd(["FUNCTION", "FLUSH"])).await.unwrap();
    // Every kind of call recovers: a read, a write, a batch.
    c.get(&eid).await.unwrap();
    store.command(&cmd(["FUNCTION", "FLUSH"])).await.unwrap();
    let claimed = claim_one(&c).await;
    store.command(&cmd(["FUNCTION", "FLUSH"])).await.unwrap();
    c.complete(&claimed.lease, b"").await.unwrap();
    store.command(&cmd(["FUNCTION", "FLUSH"])).await.unwrap();
    promote(&c, eid.partition()).await;
}

#[tokio::test]
async fn another_version_is_replaced_on_connect() {
    let redis = TestRedis::standalone();
    let store = store(&redis.url()).await;
    let old = "#!lua name=ff\nredis.register_function{function_name='ff_version', callback=function() return {'old'} end, flags={'no-writes'}}";
    store
        .command(&cmd(["FUNCTION", "LOAD", "REPLACE", old]))
        .await
        .unwrap();
    store.ensure_library().await.unwrap();
    let lib = ff_engine::store::library::library();
    let v = store
        .command(&cmd(["FCALL", "ff_version", "0"]))
        .await
        .unwrap();
    assert_eq!(
        v,
        ff_engine::core::reply::Reply::Array(vec![ff_engine::core::reply::Reply::bulk(
            lib.version.as_str()
        )])
    );
}

#[tokio::test]
async fn partition_counts_are_recorded_and_checked() {
    let redis = TestRedis::standalone();
    let store = store(&redis.url()).await;
    Client::new(store.clone()).await.unwrap();
    let other = PartitionConfig {
        flow_partitions: 64,
        ..Default::default()
    };
    let err = Client::with_partitions(store.clone(), other)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PartitionMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("256/32/32"), "{err}");
    // The engine refuses to start with other counts too.
    let config = ff_engine::EngineConfig {
        partitions: Some(other),
        ..Default::default()
    };
    let err = ff_engine::Engine::start(config, store.clone())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, Error::PartitionMismatch { .. }), "{err:?}");
    // The recorded counts are unchanged and the right config still works.
    Client::new(store).await.unwrap();
}

#[tokio::test]
async fn a_deployment_made_with_other_counts_is_joined_without_repeating_them() {
    let redis = TestRedis::standalone();
    let store = store(&redis.url()).await;
    let other = PartitionConfig {
        flow_partitions: 16,
        budget_partitions: 4,
        quota_partitions: 2,
    };
    Client::with_partitions(store.clone(), other).await.unwrap();
    // Later clients and engines read the recorded counts.
    let c = Client::new(store.clone()).await.unwrap();
    assert_eq!(*c.config(), other);
    let engine = ff_engine::Engine::start(Default::default(), store.clone())
        .await
        .unwrap();
    let mut held = 0;
    for _ in 0..100 {
        held = engine.owned_partitions().len();
        if held == 16 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(held, 16, "the engine scans the recorded 16 flow partitions");
    assert!(engine.shutdown().await);
}
