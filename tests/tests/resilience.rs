//! Callers ride through lost connections: the store sends a request again
//! (within its retry window) when the connection drops, the server restarts
//! or loads its data, and every data-plane function answers its own repeat.
//! Real servers, real faults: a proxy that loses a reply after the server
//! applied the request, SIGKILL and restart from the AOF, `CLIENT KILL`
//! storms.

mod common;

use common::*;
use ff_engine::core::contract::admission::{BudgetDef, DimensionLimits, UsageReport};
use ff_engine::core::contract::execution::EndOutcome;
use ff_engine::core::retry::RetryPolicy;
use ff_engine::core::state::PublicState;
use ff_engine::core::ExecutionId;
use ff_engine::store::{RedisStore, RedisStoreOptions};
use ff_engine::worker::{Job, Worker};
use ff_engine::{Client, Engine, EngineConfig, ExecutionSpec};
use ff_sim::invariants::Checker;
use ff_tests::{LossyProxy, RedisServer};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn store_at(url: &str) -> Arc<RedisStore> {
    Arc::new(
        RedisStore::connect(&[url.to_owned()], RedisStoreOptions::default())
            .await
            .expect("connect"),
    )
}

/// A client through a proxy in front of `server`, and its store.
async fn lossy(server: &RedisServer) -> (LossyProxy, Arc<RedisStore>, Client) {
    let proxy = LossyProxy::start(server.port());
    let s = store_at(&proxy.url()).await;
    let c = Client::new(s.clone()).await.unwrap();
    (proxy, s, c)
}

/// The reply to the next `function` call is lost after the server applied
/// it; `call` must still answer, having been sent again on a new connection.
async fn lose_one<T: std::fmt::Debug>(
    proxy: &LossyProxy,
    s: &RedisStore,
    function: &str,
    call: impl std::future::Future<Output = T>,
) -> T {
    let (lost, retried, conns) = (
        proxy.lost(),
        s.retry_stats().retries.load(Relaxed),
        proxy.accepted(),
    );
    proxy.lose_reply_to(function);
    let out = call.await;
    assert_eq!(
        proxy.lost(),
        lost + 1,
        "the reply to {function} was lost: {out:?}"
    );
    assert!(
        s.retry_stats().retries.load(Relaxed) > retried,
        "{function} was sent again"
    );
    assert!(proxy.accepted() > conns, "the store reconnected");
    out
}

#[tokio::test]
async fn a_reply_lost_after_the_write_applied_is_answered_by_the_retry() {
    let server = RedisServer::start();
    let (proxy, s, c) = lossy(&server).await;
    let (lane, wn, wi) = worker();

    // A create (its id is made by the client, so the repeat carries the
    // same): the retry finds its own execution and answers as created.
    let created = lose_one(
        &proxy,
        &s,
        "ff_create",
        c.create(ExecutionSpec::new("lost").payload("p")),
    )
    .await
    .expect("a repeated create answers");
    let id = created.execution;
    assert_eq!(count_all(&s).await, 1);
    assert_eq!(c.get(&id).await.unwrap().public_state, PublicState::Waiting);

    // A claim: the first send's lease is lost with its reply; the retry
    // finds nothing more to claim, and the lost lease runs out and is
    // reclaimed (the lease rule: no run, let alone two, before then).
    let got = lose_one(
        &proxy,
        &s,
        "ff_claim",
        c.claim(&lane, &wn, &wi, Duration::from_millis(500), 1),
    )
    .await
    .expect("a repeated claim answers");
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(c.get(&id).await.unwrap().public_state, PublicState::Active);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(reclaim(&c, id.partition()).await.acted, 1);
    let cl = claim_one(&c).await;
    assert_eq!(cl.lease.execution, id);
    assert_eq!(c.get(&id).await.unwrap().reclaims, 1);

    // A usage report: counted once (its sequence number).
    let limits = [(
        "tokens".to_owned(),
        DimensionLimits {
            hard: 1_000,
            soft: 500,
        },
    )];
    let def = BudgetDef {
        limits: limits.into(),
        ..BudgetDef::default()
    };
    c.define_budget("lost.tokens", &def).await.unwrap();
    let report = UsageReport {
        execution: id.clone(),
        attempt: cl.attempt,
        seq: 1,
        deltas: vec![("tokens".to_owned(), 10)],
    };
    lose_one(
        &proxy,
        &s,
        "ff_report_usage",
        c.report_usage("lost.tokens", &report),
    )
    .await
    .expect("a repeated usage report answers");
    let b = c.get_budget("lost.tokens").await.unwrap();
    assert_eq!(b.usage.get("tokens").copied(), Some(10), "{b:?}");

    // A complete: answered from the record as the first was.
    let ended = lose_one(&proxy, &s, "ff_complete", c.complete(&cl.lease, b"done"))
        .await
        .expect("a repeated complete answers");
    assert_eq!(ended.outcome, EndOutcome::Completed);
    let r = c.get(&id).await.unwrap();
    assert_eq!(r.public_state, PublicState::Completed);
    assert_eq!(r.result.as_deref(), Some(&b"done"[..]));

    // A failure with a retry left: answered from the fence, one retry used.
    let f = c
        .create(ExecutionSpec::new("lost").retry(RetryPolicy::fixed(3, 60_000)))
        .await
        .unwrap()
        .execution;
    let cl = claim_one(&c).await;
    assert_eq!(cl.lease.execution, f);
    let ended = lose_one(&proxy, &s, "ff_fail", c.fail(&cl.lease, "boom", true))
        .await
        .expect("a repeated fail answers");
    assert!(matches!(ended.outcome, EndOutcome::RetryScheduled { .. }));
    let r = c.get(&f).await.unwrap();
    assert_eq!((r.public_state, r.retries), (PublicState::Delayed, 1));
}

/// Executions recorded on the server (members of every `all` set).
async fn count_all(s: &RedisStore) -> usize {
    let mut n = 0;
    for k in all_keys(s).await.iter().filter(|k| k.ends_with(":all")) {
        n += smembers(s, k).await.len();
    }
    n
}

/// A worker that completes everything with its payload, after a short
/// pause so work is always in flight when a fault hits.
fn echo_worker(c: &Client, name: &str) -> Worker {
    Worker::builder(c.clone(), name)
        .concurrency(32)
        .lease_ttl(Duration::from_secs(5))
        .fallback(|job: Job| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok(job.payload)
        })
        .start()
        .expect("worker")
}

/// What a workload saw.
#[derive(Debug, Default)]
struct Run {
    ids: Vec<ExecutionId>,
    /// The slowest create, as the program saw it (it spans an outage).
    slowest_create: Duration,
}

/// Create `n` executions one after another; any error fails the test (the
/// store rides through faults for the program). `fault` runs on a thread
/// when a third have been created.
async fn run_through(
    url: &str,
    n: usize,
    kind: &str,
    fault: impl FnOnce() + Send + 'static,
) -> (Run, [Arc<RedisStore>; 2]) {
    let (engine_store, client_store) = (store_at(url).await, store_at(url).await);
    let engine = Engine::start(EngineConfig::default(), engine_store.clone())
        .await
        .unwrap();
    let c = Client::new(client_store.clone()).await.unwrap();
    let w = echo_worker(&c, kind);
    let mut run = Run::default();
    let mut fault = Some(fault);
    let mut faulting = None;
    for i in 0..n {
        if i == n / 3 {
            let f = fault.take().unwrap();
            faulting = Some(std::thread::spawn(f));
        }
        let started = Instant::now();
        let created = c
            .create(ExecutionSpec::new(kind).payload(i.to_string()))
            .await
            .unwrap_or_else(|e| panic!("create {i} reached the program as an error: {e}"));
        run.slowest_create = run.slowest_create.max(started.elapsed());
        run.ids.push(created.execution);
    }
    faulting.unwrap().join().expect("the fault thread");
    wait_for(
        "every execution completed",
        Duration::from_secs(60),
        || async {
            let mut done = 0;
            for e in &run.ids {
                if c.get(e).await.unwrap().public_state == PublicState::Completed {
                    done += 1;
                }
            }
            done == n
        },
    )
    .await;
    for (i, e) in run.ids.iter().enumerate() {
        let r = c.get(e).await.unwrap();
        assert_eq!(r.result.as_deref(), Some(i.to_string().as_bytes()));
    }
    assert_eq!(
        w.stats().report_errors.load(Relaxed),
        0,
        "a worker report reached the program as an error"
    );
    w.shutdown().await;
    assert!(engine.shutdown().await);
    // An independent walk of the database: every execution in exactly the
    // indexes its state says, no index member without its record.
    let obs = Checker::default().check(&*client_store, &run.ids).await;
    assert!(obs.violations.is_empty(), "{:#?}", obs.violations);
    assert_eq!(obs.count(PublicState::Completed), n);
    (run, [engine_store, client_store])
}

fn retries(stores: &[Arc<RedisStore>]) -> (u64, u64, u64) {
    stores.iter().fold((0, 0, 0), |(a, b, c), s| {
        let st = s.retry_stats();
        (
            a + st.retries.load(Relaxed),
            b + st.recovered.load(Relaxed),
            c + st.gave_up.load(Relaxed),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_rides_through_sigkill_and_restart_from_the_aof() {
    let n = 3_000;
    let server = Arc::new(std::sync::Mutex::new(RedisServer::start_with_aof()));
    let url = server.lock().unwrap().url();
    let s = server.clone();
    let (run, stores) = run_through(&url, n, "restart", move || {
        for _ in 0..2 {
            let mut s = s.lock().unwrap();
            s.kill();
            std::thread::sleep(Duration::from_millis(300));
            let t = Instant::now();
            s.restart();
            eprintln!("restarted from the AOF in {:?}", t.elapsed());
            drop(s);
            std::thread::sleep(Duration::from_millis(700));
        }
    })
    .await;
    let (retried, recovered, gave_up) = retries(&stores);
    eprintln!(
        "{n} executions, 2 SIGKILL restarts: {retried} retries, {recovered} requests recovered, \
         slowest create {:?}",
        run.slowest_create
    );
    assert!(retried > 0 && recovered > 0);
    assert_eq!(gave_up, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_rides_through_a_client_kill_storm() {
    let n = 2_000;
    let server = RedisServer::start();
    let url = server.url();
    let port = server.port();
    let (run, stores) = run_through(&url, n, "storm", move || {
        let killer = RedisServer::command_on;
        let until = Instant::now() + Duration::from_secs(2);
        let mut kills = 0;
        while Instant::now() < until {
            if let Ok(k) = killer(port, &["CLIENT", "KILL", "TYPE", "normal"]) {
                kills += k.parse::<u64>().unwrap_or(0);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("CLIENT KILL TYPE normal: {kills} connections killed");
    })
    .await;
    let (retried, recovered, gave_up) = retries(&stores);
    eprintln!(
        "{n} executions through a CLIENT KILL storm: {retried} retries, {recovered} recovered, \
         slowest create {:?}",
        run.slowest_create
    );
    assert!(retried > 0);
    assert_eq!(gave_up, 0);
}

#[tokio::test]
async fn a_wake_up_lost_while_the_engine_resubscribes_is_found_at_once() {
    use ff_engine::core::contract::execution as ex;
    let server = RedisServer::start();
    let url = server.url();
    let c = client(&url).await;
    let config = EngineConfig {
        // Promoted in time only by a wake-up or the rescan on resubscribe.
        delayed_promoter_interval: Duration::from_secs(60),
        ..Default::default()
    };
    let engine = Engine::start(config, store(&url).await).await.unwrap();
    // Past the first shared rescan (2 s after start); the next is a minute
    // away (`rescan_interval`).
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    // One transaction cuts every subscriber, then creates a delayed
    // execution: its wake-up is published to a connection already closing,
    // so it reaches nobody (as one published during a restart would).
    let mut args = create_args(3, 0x5ca1ab1e);
    args.delay_ms = 300;
    let call = ex::create(&args);
    let mut fcall = redis::cmd("FCALL");
    fcall.arg(call.function).arg(call.keys.len());
    for k in &call.keys {
        fcall.arg(k);
    }
    for a in &call.args {
        fcall.arg(a.as_slice());
    }
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let (killed, _): (u64, redis::Value) = redis::pipe()
        .atomic()
        .cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .add_command(fcall)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(killed >= 1, "the engine's subscriptions were cut");
    let started = Instant::now();
    wait_for(
        "promoted after the rescan",
        Duration::from_secs(10),
        || async { c.get(&args.execution).await.unwrap().public_state == PublicState::Waiting },
    )
    .await;
    eprintln!("promoted {:?} after the lost wake-up", started.elapsed());
    assert!(engine.shutdown().await);
}
