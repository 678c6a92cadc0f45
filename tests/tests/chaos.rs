//! Real faults on real servers, each test bounded in time: redis-server
//! killed with SIGKILL mid-workload and restarted; a cluster master failed
//! over to its replica mid-workload; every client paused for longer than a
//! lease. The servers are the harness's, on loopback.

mod common;

use common::*;
use ff_engine::core::contract::ownership as own;
use ff_engine::core::state::PublicState;
use ff_engine::core::{ExecutionId, FfError};
use ff_engine::store::{RedisStore, RedisStoreOptions, Store};
use ff_engine::worker::{Job, Worker};
use ff_engine::{Client, Engine, EngineConfig, Error, ExecutionSpec};
use ff_tests::{RedisCluster, RedisServer};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_millis(1_000);
const HEARTBEAT: Duration = Duration::from_millis(250);

fn config() -> EngineConfig {
    EngineConfig {
        ownership_lease_ttl: TTL,
        ownership_heartbeat: HEARTBEAT,
        ..Default::default()
    }
}

/// Fail the test if `f` takes longer than `limit`.
async fn bounded<F: std::future::Future<Output = ()>>(limit: Duration, f: F) {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("chaos test did not finish within {limit:?}"));
}

/// A worker that completes everything with its payload, after a short pause
/// (so some work is always in flight when the fault hits).
fn worker(c: &Client) -> Worker {
    Worker::builder(c.clone(), "chaos")
        .concurrency(16)
        .lease_ttl(Duration::from_secs(2))
        .fallback(|job: Job| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(job.payload)
        })
        .start()
        .expect("worker")
}

/// Create `n` executions one after another; `acked` grows as they are
/// acknowledged. No error may reach the program: the store rides through
/// the fault and a repeated create answers as the first.
fn create_all(
    c: Client,
    n: usize,
    acked: Arc<Mutex<Vec<ExecutionId>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for i in 0..n {
            let spec = ExecutionSpec::new("chaos").payload(format!("{i}"));
            match c.create(spec).await {
                Ok(created) => acked.lock().unwrap().push(created.execution),
                Err(e) => panic!("create {i} reached the program as an error: {e}"),
            }
        }
    })
}

async fn wait_created(acked: &Arc<Mutex<Vec<ExecutionId>>>, n: usize) {
    wait_for("executions created", Duration::from_secs(20), || async {
        acked.lock().unwrap().len() >= n
    })
    .await;
}

/// Every acknowledged execution exists and completed with its own payload.
async fn all_completed(c: &Client, ids: &[ExecutionId]) -> bool {
    for e in ids {
        match c.get(e).await {
            Ok(r) if r.public_state == PublicState::Completed => {}
            _ => return false,
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_with_sigkill_and_restarted_loses_no_execution() {
    bounded(Duration::from_secs(120), async {
        let n = 400;
        let mut server = RedisServer::start_with_aof();
        let url = server.url();
        let engine = Engine::start(config(), store(&url).await).await.unwrap();
        let c = client(&url).await;
        let w = worker(&c);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let creator = create_all(c.clone(), n, acked.clone());
        wait_created(&acked, n / 3).await;

        let killed_at = acked.lock().unwrap().len();
        tokio::task::block_in_place(|| {
            server.kill();
            std::thread::sleep(Duration::from_millis(500));
            server.restart();
            // The worst case for the library: the server came back without it
            // (Redis 7 keeps functions in the AOF; a restore from an older
            // backup would not). Engine and workers must reload it.
            server
                .command(&["FUNCTION", "FLUSH"])
                .expect("FUNCTION FLUSH");
        });
        eprintln!("killed and restarted after {killed_at} of {n} acknowledged creates");

        creator.await.unwrap();
        let ids = acked.lock().unwrap().clone();
        assert_eq!(ids.len(), n);
        wait_for("every execution completed", Duration::from_secs(60), || {
            all_completed(&c, &ids)
        })
        .await;
        for (i, e) in ids.iter().enumerate() {
            let r = c.get(e).await.unwrap();
            assert_eq!(r.result.as_deref(), Some(format!("{i}").as_bytes()));
        }
        let errors: u64 = engine.metrics().iter().map(|m| m.errors).sum();
        eprintln!("engine store errors during the outage: {errors}");
        // One replica, so after the restart it owns everything again.
        assert_eq!(engine.owned_partitions().len(), 256);
        w.shutdown().await;
        assert!(engine.shutdown().await);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_failed_over_mid_workload_and_the_work_completes() {
    bounded(Duration::from_secs(150), async {
        let n = 300;
        let cluster = RedisCluster::start_with_replicas();
        let opts = RedisStoreOptions {
            cluster: true,
            ..Default::default()
        };
        let connect = || async {
            Arc::new(
                RedisStore::connect(&cluster.urls(), opts.clone())
                    .await
                    .unwrap(),
            )
        };
        let (engine_a, engine_b) = (
            Engine::start(config(), connect().await).await.unwrap(),
            Engine::start(config(), connect().await).await.unwrap(),
        );
        let c = Client::new(connect().await).await.unwrap();
        let w = worker(&c);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let creator = create_all(c.clone(), n, acked.clone());
        wait_created(&acked, n / 3).await;

        let (replica, master) = cluster.replica_pairs()[0];
        let started = Instant::now();
        tokio::task::block_in_place(|| cluster.failover(replica));
        eprintln!(
            "failed master {master} over to {replica} in {:?}, after {} of {n} creates",
            started.elapsed(),
            acked.lock().unwrap().len()
        );

        creator.await.unwrap();
        let ids = acked.lock().unwrap().clone();
        assert_eq!(ids.len(), n);
        wait_for("every execution completed", Duration::from_secs(60), || {
            all_completed(&c, &ids)
        })
        .await;
        // Ownership came through too: every partition has one live owner.
        // (1 s leases on a loaded 2-core machine running three clusters'
        // worth of servers can lapse and be taken again more than once: the
        // bound is generous, and the output says what each engine held as it
        // changed.)
        let both = [&engine_a, &engine_b];
        let last = Mutex::new(Vec::new());
        wait_for("ownership settles", Duration::from_secs(30), || async {
            let owned: Vec<usize> = both.iter().map(|e| e.owned_partitions().len()).collect();
            let settled = owned.iter().sum::<usize>() == 256;
            let mut last = last.lock().unwrap();
            if *last != owned {
                eprintln!("partitions held by the two engines: {owned:?}");
                *last = owned;
            }
            settled
        })
        .await;
        w.shutdown().await;
        engine_a.shutdown().await;
        engine_b.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_paused_past_a_lease_leases_are_reclaimed_and_the_late_worker_fenced_out() {
    bounded(Duration::from_secs(60), async {
        let server = RedisServer::start();
        let url = server.url();
        let s = store(&url).await;
        let (a, b) = (
            Engine::start(config(), store(&url).await).await.unwrap(),
            Engine::start(config(), store(&url).await).await.unwrap(),
        );
        let both = [&a, &b];
        let split = || async {
            both.iter()
                .map(|e| e.owned_partitions().len())
                .sum::<usize>()
                == 256
                && both.iter().all(|e| e.owned_partitions().len() == 128)
        };
        wait_for("two replicas split", Duration::from_secs(5), split).await;
        let c = client(&url).await;
        let x = c
            .create(ExecutionSpec::new("paused"))
            .await
            .unwrap()
            .execution;
        let (lane, wn, wi) = common::worker();
        let claimed = c
            .claim(&lane, &wn, &wi, Duration::from_millis(1_000), 1)
            .await
            .unwrap()
            .pop()
            .expect("claimed");

        // Every client stalls; the server's clock does not.
        let pause = Duration::from_millis(2_500);
        server
            .command(&["CLIENT", "PAUSE", &pause.as_millis().to_string(), "ALL"])
            .expect("CLIENT PAUSE");
        let paused = Instant::now();
        // Cut off, each replica stops trusting its leases once they run out.
        tokio::time::sleep(TTL + HEARTBEAT).await;
        assert!(
            both.iter().all(|e| e.owned_partitions().is_empty()),
            "a replica kept scanning past its lease while cut off"
        );
        tokio::time::sleep(pause.saturating_sub(paused.elapsed())).await;

        // After the pause: the worker's lease expired, so the owner of its
        // partition reclaims it...
        wait_for(
            "the expired lease reclaimed",
            Duration::from_secs(10),
            || async {
                let r = c.get(&x).await.unwrap();
                r.reclaims == 1 && r.lease.is_none()
            },
        )
        .await;
        // ...ownership is re-established, one live owner per partition...
        wait_for("ownership re-established", Duration::from_secs(10), split).await;
        let v = own::decode_view(
            own::VIEW,
            &s.fcall(&own::view(&own::Ring::default())).await.unwrap(),
        )
        .unwrap();
        assert!((0..256).all(|p| v.owner_of(p).is_some()));
        // ...and the late worker is fenced out.
        match c.complete(&claimed.lease, b"late").await {
            Err(Error::Rejected(FfError::StaleLease)) => {}
            other => panic!("a fenced-out complete answered {other:?}"),
        }
        let again = claim_one(&c).await;
        assert_eq!(again.lease.execution, x);
        c.complete(&again.lease, b"in time").await.unwrap();
        let r = c.get(&x).await.unwrap();
        assert_eq!(r.public_state, PublicState::Completed);
        assert_eq!(r.result.as_deref(), Some(&b"in time"[..]));
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}
