//! Partition ownership between engine replicas, on a real redis-server:
//! replicas share the partitions fairly, rebalance when one joins, leaves or
//! dies silently, and together do all the work.

mod common;

use common::*;
use ff_engine::core::contract::ownership as own;
use ff_engine::core::ownership::{decide, View};
use ff_engine::core::state::PublicState;
use ff_engine::store::Store;
use ff_engine::worker::{Job, Worker};
use ff_engine::{Engine, EngineConfig, ExecutionSpec};
use ff_tests::TestRedis;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PARTITIONS: u16 = 256;
const TTL: Duration = Duration::from_millis(900);
const HEARTBEAT: Duration = Duration::from_millis(150);
/// A rebalance after a join or a graceful leave: a couple of heartbeats.
const REBALANCE: Duration = Duration::from_secs(3);

fn config() -> EngineConfig {
    EngineConfig {
        ownership_lease_ttl: TTL,
        ownership_heartbeat: HEARTBEAT,
        ..Default::default()
    }
}

async fn start(url: &str) -> Engine {
    Engine::start(config(), store(url).await)
        .await
        .expect("engine")
}

async fn view(store: &dyn Store) -> View {
    let r = store
        .fcall(&own::view(&own::Ring::default()))
        .await
        .expect("view");
    own::decode_view(own::VIEW, &r).expect("decode view")
}

/// Every partition held by exactly one of `engines`, each holding its fair
/// share (within one), as the engines themselves and Valkey both see it.
async fn evenly_split(store: &dyn Store, engines: &[&Engine]) -> bool {
    let mut seen = BTreeSet::new();
    let (mut least, mut most) = (usize::MAX, 0);
    for e in engines {
        let owned = e.owned_partitions();
        least = least.min(owned.len());
        most = most.max(owned.len());
        for p in owned {
            if !seen.insert(p) {
                return false;
            }
        }
    }
    if seen.len() != PARTITIONS as usize || most - least > 1 {
        return false;
    }
    let v = view(store).await;
    (0..PARTITIONS).all(|p| {
        v.owner_of(p)
            .is_some_and(|o| engines.iter().any(|e| e.member_id() == Some(o)))
    })
}

#[tokio::test]
async fn replicas_share_the_partitions_and_rebalance_on_join_and_leave() {
    let redis = TestRedis::standalone();
    let url = redis.url();
    let s = store(&url).await;
    let a = start(&url).await;
    let set1 = [&a];
    wait_for("a lone replica owns everything", REBALANCE, || {
        evenly_split(s.as_ref(), &set1)
    })
    .await;
    let b = start(&url).await;
    let set2 = [&a, &b];
    wait_for("two replicas split 128/128", REBALANCE, || {
        evenly_split(s.as_ref(), &set2)
    })
    .await;
    let c = start(&url).await;
    let set3 = [&a, &b, &c];
    wait_for("three replicas split 86/85/85", REBALANCE, || {
        evenly_split(s.as_ref(), &set3)
    })
    .await;
    // A graceful leave hands the leases back at once.
    let left = Instant::now();
    assert!(b.shutdown().await);
    let set4 = [&a, &c];
    wait_for("the two left take b's share", REBALANCE, || {
        evenly_split(s.as_ref(), &set4)
    })
    .await;
    eprintln!("rebalanced {:?} after a graceful leave", left.elapsed());
    a.shutdown().await;
    c.shutdown().await;
    let v = view(s.as_ref()).await;
    assert!(v.live_members().is_empty(), "everyone left: {v:?}");
    assert!((0..PARTITIONS).all(|p| v.owner_of(p).is_none()));
}

#[tokio::test]
async fn a_replica_that_dies_silently_is_replaced_within_its_lease() {
    let redis = TestRedis::standalone();
    let url = redis.url();
    let s = store(&url).await;
    let a = start(&url).await;
    wait_for("a owns everything", REBALANCE, || async {
        a.owned_partitions().len() == PARTITIONS as usize
    })
    .await;
    // A ghost replica, driven by hand: it joins, takes its half, then stops
    // heartbeating without a word.
    let ghost = "e-ghost";
    let ttl_ms = TTL.as_millis() as u64;
    let deadline = Instant::now() + REBALANCE;
    loop {
        let r = s
            .fcall(&own::sync(
                &own::Ring::default(),
                ghost,
                ttl_ms,
                PARTITIONS,
                &[],
                &[],
            ))
            .await;
        let v = own::decode_view(own::SYNC, &r.unwrap()).unwrap();
        let d = decide(&v, ghost, PARTITIONS);
        let r = s
            .fcall(&own::sync(
                &own::Ring::default(),
                ghost,
                ttl_ms,
                PARTITIONS,
                &d.claim,
                &d.release,
            ))
            .await;
        let v = own::decode_view(own::SYNC, &r.unwrap()).unwrap();
        if v.held_by(ghost, PARTITIONS).len() == PARTITIONS as usize / 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the ghost never got its half");
        tokio::time::sleep(HEARTBEAT).await;
    }
    assert_eq!(a.owned_partitions().len(), PARTITIONS as usize / 2);
    let died = Instant::now();
    wait_for(
        "a takes the ghost's partitions over",
        TTL + REBALANCE,
        || async { a.owned_partitions().len() == PARTITIONS as usize },
    )
    .await;
    let took = died.elapsed();
    eprintln!("took over {took:?} after a silent death (lease {TTL:?})");
    assert!(
        took >= TTL / 2,
        "not before the ghost's leases could expire"
    );
    let v = view(s.as_ref()).await;
    assert_eq!(v.live_members(), vec![a.member_id().unwrap()]);
    a.shutdown().await;
}

#[tokio::test]
async fn with_ownership_off_an_engine_scans_everything_and_writes_no_lease() {
    let redis = TestRedis::standalone();
    let url = redis.url();
    let s = store(&url).await;
    let e = Engine::start(
        EngineConfig {
            ownership: false,
            ..config()
        },
        s.clone(),
    )
    .await
    .unwrap();
    assert_eq!(e.member_id(), None);
    assert_eq!(e.owned_partitions().len(), PARTITIONS as usize);
    tokio::time::sleep(HEARTBEAT * 3).await;
    let v = view(s.as_ref()).await;
    assert!(v.members.is_empty() && v.leases.is_empty(), "{v:?}");
    e.shutdown().await;
}

/// Engines with ownership off each scan every partition, and together they
/// do the work: delayed executions come due and are promoted.
#[tokio::test]
async fn engines_with_ownership_off_promote_what_comes_due() {
    let redis = TestRedis::standalone();
    let url = redis.url();
    let s = store(&url).await;
    let mut engines = Vec::new();
    for _ in 0..2 {
        let cfg = EngineConfig {
            ownership: false,
            ..config()
        };
        engines.push(Engine::start(cfg, s.clone()).await.unwrap());
    }
    let c = client(&url).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let spec = ExecutionSpec::new("k").delay(Duration::from_millis(300));
        ids.push(c.create(spec).await.unwrap().execution);
    }
    wait_for("promotion", Duration::from_secs(10), || {
        let (c, ids) = (c.clone(), ids.clone());
        async move {
            for id in &ids {
                if c.get(id).await.unwrap().public_state != PublicState::Waiting {
                    return false;
                }
            }
            true
        }
    })
    .await;
    for e in engines {
        e.shutdown().await;
    }
}

#[tokio::test]
async fn a_bad_ownership_config_is_refused() {
    let redis = TestRedis::standalone();
    let s = store(&redis.url()).await;
    let bad = EngineConfig {
        ownership_lease_ttl: HEARTBEAT * 2,
        ..config()
    };
    let err = Engine::start(bad, s).await.err().expect("refused");
    assert!(err.to_string().contains("ownership_lease_ttl"), "{err}");
}

#[tokio::test]
async fn two_replicas_together_do_all_the_work_each_on_its_own_partitions() {
    let redis = TestRedis::standalone();
    let url = redis.url();
    let s = store(&url).await;
    let (a, b) = (start(&url).await, start(&url).await);
    let both = [&a, &b];
    wait_for("split", REBALANCE, || evenly_split(s.as_ref(), &both)).await;
    let c = client(&url).await;
    let worker = Worker::builder(c.clone(), "w")
        .concurrency(32)
        .fallback(|_job: Job| async move { Ok(b"ok".to_vec()) })
        .start()
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..300 {
        let spec = ExecutionSpec::new("job")
            .payload(format!("{i}"))
            .delay(Duration::from_millis(200));
        ids.push(c.create(spec).await.unwrap().execution);
    }
    let ids = Arc::new(ids);
    wait_for(
        "every delayed execution promoted and done",
        Duration::from_secs(20),
        || {
            let (c, ids) = (c.clone(), ids.clone());
            async move {
                for e in ids.iter() {
                    if c.get(e).await.unwrap().public_state != PublicState::Completed {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
    let promoted = |e: &Engine| {
        e.metrics()
            .iter()
            .find(|m| m.scanner == "delayed_promoter")
            .map_or(0, |m| m.acted)
    };
    let (pa, pb) = (promoted(&a), promoted(&b));
    eprintln!("promoted: a {pa}, b {pb}");
    assert_eq!(pa + pb, 300, "each promoted once, by its owner");
    assert!(pa > 0 && pb > 0);
    worker.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
}

/// Engines with different filters act on different executions, so each
/// filter's engines split the partitions in a ring of their own: two engines
/// filtered by namespace on one server each hold every partition and handle
/// every execution of their namespace (with one shared ring, each skipped the
/// other's executions in its half, and those were never promoted).
#[tokio::test]
async fn engines_with_different_filters_each_handle_all_their_work() {
    use ff_engine::core::contract::scan::ScannerFilter;
    use ff_engine::core::Namespace;
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let filtered = |ns: &str| EngineConfig {
        filter: ScannerFilter {
            namespace: Some(Namespace::new(ns).unwrap()),
            instance_tag: None,
        },
        ..config()
    };
    let a = Engine::start(filtered("alpha"), store(&redis.url()).await)
        .await
        .unwrap();
    let b = Engine::start(filtered("beta"), store(&redis.url()).await)
        .await
        .unwrap();
    wait_for("each ring held whole", REBALANCE, || async {
        a.owned_partitions().len() == PARTITIONS as usize
            && b.owned_partitions().len() == PARTITIONS as usize
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..200 {
        let ns = if i % 2 == 0 { "alpha" } else { "beta" };
        let spec = ExecutionSpec::new("j")
            .namespace(ns)
            .delay(Duration::from_millis(100));
        ids.push(c.create(spec).await.unwrap().execution);
    }
    // (What is tested is that every one is handled, not how fast: with
    // 900 ms leases on a loaded 2-core machine running this file's other
    // engines, leases lapse and are taken again, which once took past 10 s.)
    wait_for(
        "every execution promoted",
        Duration::from_secs(30),
        || async {
            for id in &ids {
                if c.get(id).await.unwrap().public_state != PublicState::Waiting {
                    return false;
                }
            }
            true
        },
    )
    .await;
    assert!(a.shutdown().await && b.shutdown().await);
}
