//! `rediss://` with certificate verification on: a private CA's server, the
//! execution lifecycle and the engine's pub/sub over it, mutual TLS, and
//! refusals. Each test starts its own TLS-only server; on a binary from
//! `FF_REDIS_SERVER_BIN` built without TLS it prints why and skips.

mod common;

use common::*;
use ff_cli::serve::{serve, ServeOptions};
use ff_cli::tls::TlsArgs;
use ff_engine::core::reply::Reply;
use ff_engine::core::scan::{ReadyMessage, WakeMessage};
use ff_engine::core::state::PublicState;
use ff_engine::error::StoreError;
use ff_engine::store::{cmd, RedisStore, RedisStoreOptions, Store, SubEvent, TlsOptions};
use ff_engine::worker::{Job, Worker};
use ff_engine::{Engine, EngineConfig, ExecutionSpec};
use ff_tests::{ClientAuth, TestPki, TlsRedisServer};
use std::sync::Arc;
use std::time::Duration;

/// Longer than connecting may take: a refusal must come back, not hang.
const CONNECT_LIMIT: Duration = Duration::from_secs(20);
/// A refused handshake is not retried: it comes back at once.
const REFUSAL_LIMIT: Duration = Duration::from_secs(3);

fn trusting(ca: &TestPki) -> RedisStoreOptions {
    RedisStoreOptions {
        tls: Some(TlsOptions::from_files(Some(&ca.ca_cert()), None).expect("read CA")),
        ..Default::default()
    }
}

fn with_client_cert(pki: &TestPki) -> RedisStoreOptions {
    RedisStoreOptions {
        tls: Some(
            TlsOptions::from_files(
                Some(&pki.ca_cert()),
                Some((&pki.client_cert(), &pki.client_key())),
            )
            .expect("read PEM files"),
        ),
        ..Default::default()
    }
}

async fn connect(url: &str, opts: RedisStoreOptions) -> Result<RedisStore, StoreError> {
    tokio::time::timeout(CONNECT_LIMIT, RedisStore::connect(&[url.to_owned()], opts))
        .await
        .expect("connect neither succeeded nor failed in time")
}

/// Create, claim, complete, read back.
async fn lifecycle(store: Arc<dyn Store>) {
    let c = client_on(store).await;
    let created = c
        .create(ExecutionSpec::new("tls-job").payload("over tls"))
        .await
        .unwrap();
    assert_eq!(created.state, PublicState::Waiting);
    let claimed = claim_one(&c).await;
    assert_eq!(claimed.lease.execution, created.execution);
    assert_eq!(claimed.payload, b"over tls");
    c.complete(&claimed.lease, b"done").await.unwrap();
    let rec = c.get(&created.execution).await.unwrap();
    assert_eq!(rec.public_state, PublicState::Completed);
    assert_eq!(rec.result.as_deref(), Some(&b"done"[..]));
}

#[tokio::test]
async fn the_lifecycle_over_tls_with_a_private_ca() {
    let Some(server) = TlsRedisServer::start_or_skip(ClientAuth::None) else {
        return;
    };
    let store = connect(&server.url(), trusting(server.pki()))
        .await
        .expect("a server of the trusted CA is accepted");
    lifecycle(Arc::new(store)).await;
}

#[tokio::test]
async fn a_subscription_over_tls_receives_what_is_published() {
    let Some(server) = TlsRedisServer::start_or_skip(ClientAuth::None) else {
        return;
    };
    let store = connect(&server.url(), trusting(server.pki()))
        .await
        .unwrap();
    let mut rx = store.subscribe("ff-test:tls").await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert!(
        matches!(first, Ok(Some(SubEvent::Subscribed))),
        "no subscription over TLS: {first:?}"
    );
    store
        .command(&cmd(["PUBLISH", "ff-test:tls", "hello"]))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert!(
        matches!(&got, Ok(Some(SubEvent::Message(m))) if m == b"hello"),
        "{got:?}"
    );
}

/// Subscribers of `channel` on the server.
async fn subscribers(store: &dyn Store, channel: &str) -> i64 {
    match store
        .command(&cmd(["PUBSUB", "NUMSUB", channel]))
        .await
        .unwrap()
    {
        Reply::Array(items) => items.get(1).and_then(Reply::int).unwrap_or(0),
        other => panic!("PUBSUB NUMSUB answered {other:?}"),
    }
}

/// Only pub/sub can finish this in time: the promoter's and the worker's own
/// schedules are a minute, so the promotion must come from the wake-up
/// announcement and the claim from the ready announcement.
#[tokio::test]
async fn a_delayed_execution_is_promoted_and_run_through_tls_pubsub() {
    let Some(server) = TlsRedisServer::start_or_skip(ClientAuth::None) else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(
        connect(&server.url(), trusting(server.pki()))
            .await
            .unwrap(),
    );
    let c = client_on(store.clone()).await;
    let slow = Duration::from_secs(60);
    let config = EngineConfig {
        delayed_promoter_interval: slow,
        rescan_interval: slow,
        ..Default::default()
    };
    let engine = Engine::start(config, store.clone()).await.unwrap();
    let worker = Worker::builder(c.clone(), "tls-worker")
        .poll_interval(slow)
        .handle("later", |job: Job| async move {
            Ok(job.payload.to_ascii_uppercase())
        })
        .start()
        .unwrap();
    wait_for(
        "the engine's and the worker's subscriptions",
        Duration::from_secs(5),
        || async {
            subscribers(&*store, WakeMessage::CHANNEL).await >= 1
                && subscribers(&*store, ReadyMessage::CHANNEL).await >= 1
        },
    )
    .await;
    // Past the first full looks, which would otherwise find the execution.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let eid = c
        .create(
            ExecutionSpec::new("later")
                .payload("tls")
                .delay(Duration::from_millis(300)),
        )
        .await
        .unwrap()
        .execution;
    wait_for(
        "completion through pub/sub",
        Duration::from_secs(10),
        || async { c.get(&eid).await.unwrap().public_state == PublicState::Completed },
    )
    .await;
    assert_eq!(
        c.get(&eid).await.unwrap().result.as_deref(),
        Some(&b"TLS"[..])
    );
    worker.shutdown().await;
    engine.shutdown().await;
}

/// Connects and expects a Config error naming the TLS failure, in time: no
/// retry mends a certificate.
async fn assert_tls_refusal(url: &str, opts: RedisStoreOptions, what: &str) -> String {
    let start = std::time::Instant::now();
    let r = connect(url, opts).await;
    assert!(
        start.elapsed() < REFUSAL_LIMIT,
        "{what}: refused after {:?}",
        start.elapsed()
    );
    match r {
        Err(StoreError::Config(msg)) => {
            assert!(msg.starts_with("TLS:"), "{what}: {msg}");
            msg
        }
        Err(other) => panic!("{what}: refused, but not as a TLS configuration error: {other:?}"),
        Ok(_) => panic!("{what}: connected"),
    }
}

#[tokio::test]
async fn a_server_signed_by_another_ca_is_refused() {
    let Some(server) = TlsRedisServer::start_or_skip(ClientAuth::None) else {
        return;
    };
    let other = TestPki::create();
    let msg = assert_tls_refusal(&server.url(), trusting(&other), "server of another CA").await;
    assert!(msg.contains("UnknownIssuer"), "{msg}");
    // Without options the system's trust store applies, which does not hold
    // the test CA: verification is on by default too.
    assert_tls_refusal(
        &server.url(),
        RedisStoreOptions::default(),
        "server of a CA not in the system's store",
    )
    .await;
}

#[tokio::test]
async fn mutual_tls_with_a_client_certificate() {
    let Some(server) = TlsRedisServer::start_or_skip(ClientAuth::Required) else {
        return;
    };
    let store = connect(&server.url(), with_client_cert(server.pki()))
        .await
        .expect("a client certificate of the server's CA is accepted");
    lifecycle(Arc::new(store)).await;

    let msg = assert_tls_refusal(
        &server.url(),
        trusting(server.pki()),
        "no client certificate",
    )
    .await;
    assert!(msg.contains("CertificateRequired"), "{msg}");
    // A certificate from a CA the server does not trust.
    let other = TestPki::create();
    let opts = RedisStoreOptions {
        tls: Some(
            TlsOptions::from_files(
                Some(&server.pki().ca_cert()),
                Some((&other.client_cert(), &other.client_key())),
            )
            .unwrap(),
        ),
        ..Default::default()
    };
    assert_tls_refusal(&server.url(), opts, "client certificate of another CA").await;
}

#[tokio::test]
async fn tls_options_with_a_plain_url_are_a_configuration_error() {
    // Refused before any connection is tried, so no server is needed.
    let pki = TestPki::create();
    let r = RedisStore::connect(&["redis://127.0.0.1:1".to_owned()], trusting(&pki)).await;
    assert!(
        matches!(&r, Err(StoreError::Config(msg)) if msg.contains("rediss://")),
        "{r:?}"
    );
}

/// `ff engine`'s loop with what its `--tls-ca/--tls-cert/--tls-key` flags
/// give, on a server that requires client certificates.
#[tokio::test]
async fn ff_engine_runs_over_mutual_tls_with_the_flags_options() {
    let Some(server) = TlsRedisServer::start_or_skip(ClientAuth::Required) else {
        return;
    };
    assert!(TlsArgs::default().options().unwrap().is_none());
    let pki = server.pki();
    let flags = TlsArgs {
        tls_ca: Some(pki.ca_cert()),
        tls_cert: Some(pki.client_cert()),
        tls_key: Some(pki.client_key()),
    };
    let tls = flags.options().unwrap();
    let opts = RedisStoreOptions {
        tls: tls.clone(),
        ..Default::default()
    };
    let c = client_on(Arc::new(connect(&server.url(), opts).await.unwrap())).await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(serve(
        ServeOptions {
            urls: vec![server.url()],
            cluster: false,
            tls,
            config: EngineConfig::default(),
            metrics: None,
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    let eid = create_delayed(&c, "later", Duration::from_millis(100)).await;
    wait_for(
        "promotion by ff engine's loop",
        Duration::from_secs(5),
        || async { c.get(&eid).await.unwrap().public_state == PublicState::Waiting },
    )
    .await;
    stop_tx.send(()).unwrap();
    assert!(run.await.unwrap().unwrap(), "stopped within its bound");
}
