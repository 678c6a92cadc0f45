//! Flows with the engine on real redis-servers: the completion listener drains
//! large fan-outs at once, the reconcilers finish what a lost message or a
//! killed listener left, flow cancel under load, a worker's job reading its
//! parents' results, and a cluster run.

mod common;

use common::*;
use ff_engine::core::contract::scan::BatchFunction;
use ff_engine::core::flow::{FlowState, JoinPolicy};
use ff_engine::core::keys::{self, flow_partition, PartitionKeys};
use ff_engine::core::state::PublicState;
use ff_engine::core::{ExecutionId, FlowId};
use ff_engine::engine::{Engine, EngineConfig};
use ff_engine::store::cmd;
use ff_engine::worker::{Job, JobError, Worker};
use ff_engine::{Client, ExecutionSpec};
use ff_tests::{RedisCluster, TestRedis};
use std::time::Duration;

fn quick() -> EngineConfig {
    EngineConfig {
        flow_reconciler_interval: Duration::from_millis(200),
        dependency_reconciler_interval: Duration::from_millis(200),
        ..EngineConfig::default()
    }
}

/// A root with `n` children, children created after their edge.
async fn fan_out(c: &Client, flow: &FlowId, n: usize) -> (ExecutionId, Vec<ExecutionId>) {
    let root = c
        .create(ExecutionSpec::new("root").in_flow(flow, JoinPolicy::AllOf))
        .await
        .unwrap()
        .execution;
    let mut children = Vec::new();
    for _ in 0..n {
        let id = c.new_member_id(flow);
        c.add_edge(flow, &root, &id, false).await.unwrap();
        c.create(
            ExecutionSpec::new("leaf")
                .in_flow(flow, JoinPolicy::AllOf)
                .id(id.clone()),
        )
        .await
        .unwrap();
        children.push(id);
    }
    (root, children)
}

async fn complete_root(c: &Client, flow: &FlowId, root: &ExecutionId) {
    let (lane, w, i) = worker();
    let p = flow_partition(flow, c.config());
    let claimed = c.claim_in(p, &lane, &w, &i, LEASE, 1).await.unwrap();
    assert_eq!(&claimed[0].lease.execution, root);
    c.complete(&claimed[0].lease, b"").await.unwrap();
}

/// Eligible members of `flow` (other flows may share its partition).
async fn eligible_count(c: &Client, flow: &FlowId) -> usize {
    let fk = keys::FlowKeys::new(flow, c.config());
    let members: std::collections::HashSet<String> = zmembers(&**c.store(), &fk.members())
        .await
        .into_iter()
        .collect();
    let pk = PartitionKeys::new(flow_partition(flow, c.config()));
    zmembers(&**c.store(), &pk.eligible(&worker().0))
        .await
        .into_iter()
        .filter(|e| members.contains(e))
        .count()
}

#[tokio::test]
async fn the_listener_drains_a_large_fan_out_at_once() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let engine = Engine::start(EngineConfig::default(), c.store().clone())
        .await
        .unwrap();
    let flow = c.create_flow("default").await.unwrap();
    let (root, children) = fan_out(&c, &flow, 2000).await;
    complete_root(&c, &flow, &root).await;
    // Well before the reconciler's grace (2 s) would take over.
    wait_for(
        "all children eligible",
        Duration::from_millis(1500),
        || async { eligible_count(&c, &flow).await == children.len() },
    )
    .await;
    let l = engine.listener_metrics();
    assert!(l.dispatches >= 1, "{l:?}");
    assert!(l.completions >= 1, "{l:?}");
    assert_eq!(l.dispatch_failures, 0);
    assert!(engine.shutdown().await);
}

#[tokio::test]
async fn work_whose_message_was_lost_is_finished_by_the_reconciler() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let flow = c.create_flow("default").await.unwrap();
    let (root, children) = fan_out(&c, &flow, 500).await;
    // No engine while the parent completes: its announcement reaches nobody.
    complete_root(&c, &flow, &root).await;
    assert!(eligible_count(&c, &flow).await < children.len());
    let engine = Engine::start(quick(), c.store().clone()).await.unwrap();
    wait_for("reconciler finishes", Duration::from_secs(6), || async {
        eligible_count(&c, &flow).await == children.len()
    })
    .await;
    let acted = engine
        .metrics()
        .into_iter()
        .find(|s| s.scanner == "flow_reconciler")
        .unwrap()
        .acted;
    assert!(acted >= 1);
    assert!(engine.shutdown().await);
}

#[tokio::test]
async fn a_killed_listener_resubscribes_and_nothing_is_stuck() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let engine = Engine::start(quick(), c.store().clone()).await.unwrap();
    let flow = c.create_flow("default").await.unwrap();
    let mut roots = Vec::new();
    for _ in 0..5 {
        roots.push(fan_out(&c, &flow, 200).await.0);
    }
    let (lane, w, i) = worker();
    let p = flow_partition(&flow, c.config());
    let claimed = c.claim_in(p, &lane, &w, &i, LEASE, 5).await.unwrap();
    assert_eq!(claimed.len(), 5);
    for (n, cl) in claimed.iter().enumerate() {
        if n % 2 == 0 {
            // Every subscriber connection (the listener's among them) is cut.
            c.store()
                .command(&cmd(["CLIENT", "KILL", "TYPE", "pubsub"]))
                .await
                .unwrap();
        }
        c.complete(&cl.lease, b"").await.unwrap();
    }
    wait_for("every child eligible", Duration::from_secs(8), || async {
        eligible_count(&c, &flow).await == 1000
    })
    .await;
    wait_for("listener reconnected", Duration::from_secs(3), || async {
        engine.listener_metrics().reconnects >= 1
    })
    .await;
    assert!(engine.shutdown().await);
}

#[tokio::test]
async fn the_dependency_reconciler_releases_a_child_whose_edge_was_never_resolved() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let flow = c.create_flow("default").await.unwrap();
    let (root, children) = fan_out(&c, &flow, 1).await;
    let child = &children[0];
    complete_root(&c, &flow, &root).await;
    assert_eq!(
        c.get(child).await.unwrap().public_state,
        PublicState::Waiting
    );
    // Simulate a lost resolution: the child waits again on an edge marked
    // pending although its parent succeeded.
    let s = c.store();
    let ek = keys::exec(child);
    let pk = PartitionKeys::of(child);
    for command in [
        cmd(["HSET", &keys::deps(child), root.as_str(), "p", "#s", "0"]),
        cmd(["HSET", &ek, "elig", "waiting_children"]),
        cmd(["ZREM", &pk.eligible(&worker().0), child.as_str()]),
        cmd(["ZADD", &pk.waiting_children(), "0", child.as_str()]),
    ] {
        s.command(&command).await.unwrap();
    }
    let out = run_scan(
        &c,
        BatchFunction::ReconcileDependencies,
        pk_partition(child),
    )
    .await;
    assert_eq!(out.repaired, 1, "{out:?}");
    assert_eq!(
        c.get(child).await.unwrap().public_state,
        PublicState::Waiting
    );
}

fn pk_partition(e: &ExecutionId) -> ff_engine::core::Partition {
    e.partition()
}

#[tokio::test]
async fn cancelling_a_flow_under_load_ends_every_member() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let engine = Engine::start(quick(), c.store().clone()).await.unwrap();
    let flow = c.create_flow("default").await.unwrap();
    let (_root, _children) = fan_out(&c, &flow, 1500).await;
    // Slow enough that the whole flow cannot finish before the cancel
    // (1 500 members at 16 × 200 ms take ~19 s), on any machine.
    let worker = Worker::builder(c.clone(), "w")
        .concurrency(16)
        .fallback(|_job: Job| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok::<_, JobError>(Vec::new())
        })
        .start()
        .unwrap();
    wait_for("work under way", Duration::from_secs(5), || async {
        c.get_flow(&flow).await.unwrap().summary.done > 20
    })
    .await;
    assert!(c.cancel_flow(&flow, "operator").await.unwrap());
    wait_for("every member ended", Duration::from_secs(10), || async {
        let s = c.get_flow(&flow).await.unwrap().summary;
        s.done == s.members
    })
    .await;
    let s = c.get_flow(&flow).await.unwrap().summary;
    assert_eq!(s.members, 1501);
    assert!(s.cancelled > 0, "{s:?}");
    assert_eq!(s.success + s.cancelled, 1501, "{s:?}");
    assert_eq!(s.state(), FlowState::Cancelled);
    worker.shutdown().await;
    assert!(engine.shutdown().await);
}

#[tokio::test]
async fn a_worker_job_reads_every_parents_result_by_parent() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let flow = c.create_flow("default").await.unwrap();
    let member = |kind: &str| ExecutionSpec::new(kind).in_flow(&flow, JoinPolicy::AllOf);
    let sink = c.new_member_id(&flow);
    let mut parents = Vec::new();
    for name in ["p1", "p2", "p3"] {
        let p = c
            .create(member(name).payload(name))
            .await
            .unwrap()
            .execution;
        c.add_edge(&flow, &p, &sink, true).await.unwrap();
        parents.push(p);
    }
    c.create(member("sink").id(sink.clone())).await.unwrap();
    let worker = Worker::builder(c.clone(), "w")
        .fallback(|job: Job| async move {
            if job.kind.as_str() != "sink" {
                return Ok(job.payload.clone());
            }
            // By parent id, in id order: "<id>=<result>" joined by spaces.
            let results = job.parent_results().await.map_err(JobError::fatal)?;
            let parts: Vec<String> = results
                .iter()
                .map(|(p, r)| format!("{p}={}", String::from_utf8_lossy(r)))
                .collect();
            Ok(parts.join(" ").into_bytes())
        })
        .start()
        .unwrap();
    wait_for("the sink ran", Duration::from_secs(10), || async {
        c.get(&sink).await.unwrap().public_state == PublicState::Completed
    })
    .await;
    let mut want: Vec<(ExecutionId, &str)> = parents.into_iter().zip(["p1", "p2", "p3"]).collect();
    want.sort();
    let want: Vec<String> = want.iter().map(|(p, r)| format!("{p}={r}")).collect();
    let got = c.get(&sink).await.unwrap().result.unwrap();
    assert_eq!(String::from_utf8(got).unwrap(), want.join(" "));
    worker.shutdown().await;
}

#[tokio::test]
async fn flows_on_a_cluster() {
    let cluster = RedisCluster::start();
    let c = cluster_client(cluster.urls()).await;
    let engine = Engine::start(quick(), c.store().clone()).await.unwrap();
    let mut flows = Vec::new();
    for _ in 0..6 {
        let flow = c.create_flow("default").await.unwrap();
        let (root, children) = fan_out(&c, &flow, 150).await;
        flows.push((flow, root, children));
    }
    for (flow, root, _) in &flows {
        complete_root(&c, flow, root).await;
    }
    for (flow, _, children) in &flows {
        wait_for("children eligible", Duration::from_secs(8), || async {
            eligible_count(&c, flow).await == children.len()
        })
        .await;
    }
    // A read of a member's other keys, on its node (no data passed here).
    assert!(c.parent_results(&flows[0].2[0]).await.unwrap().is_empty());
    let l = engine.listener_metrics();
    assert!(l.dispatches >= 1 && l.dispatch_failures == 0, "{l:?}");
    assert!(engine.shutdown().await);
}
