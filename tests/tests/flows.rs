//! Flows on the data plane: edges, joins, cascades, data passing, cancel —
//! on a real redis-server and on MemoryStore (the same bodies run on both).
//! The engine's part (completion listener, reconcilers) is in flow_engine.rs.

mod common;

use common::*;
use ff_engine::core::contract::execution::Claimed;
use ff_engine::core::contract::flow::{self as fl, EdgeDecision};
use ff_engine::core::contract::limits;
use ff_engine::core::contract::scan::BatchFunction;
use ff_engine::core::flow::{FlowState, JoinPolicy};
use ff_engine::core::keys::{self, flow_partition, PartitionKeys};
use ff_engine::core::reply::Reply;
use ff_engine::core::state::PublicState;
use ff_engine::core::{ExecutionId, FfError, FlowId};
use ff_engine::store::{cmd, Store};
use ff_engine::{Client, Error, ExecutionSpec};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Members of one flow, created with pre-allocated ids after their edges.
struct Dag {
    c: Client,
    flow: FlowId,
}

impl Dag {
    async fn new(store: Arc<dyn Store>) -> Self {
        let c = client_on(store).await;
        let flow = c.create_flow("default").await.unwrap();
        Self { c, flow }
    }

    fn id(&self) -> ExecutionId {
        self.c.new_member_id(&self.flow)
    }

    async fn create(&self, id: &ExecutionId, join: JoinPolicy) -> PublicState {
        self.create_spec(id, ExecutionSpec::new("step").in_flow(&self.flow, join))
            .await
    }

    async fn create_spec(&self, id: &ExecutionId, spec: ExecutionSpec) -> PublicState {
        self.c.create(spec.id(id.clone())).await.unwrap().state
    }

    async fn edge(&self, parent: &ExecutionId, child: &ExecutionId) -> EdgeDecision {
        self.c
            .add_edge(&self.flow, parent, child, false)
            .await
            .unwrap()
            .decision
    }

    async fn state(&self, id: &ExecutionId) -> PublicState {
        self.c.get(id).await.unwrap().public_state
    }

    /// Claim everything eligible now.
    async fn claim_all(&self) -> HashMap<ExecutionId, Claimed> {
        let (lane, w, i) = worker();
        let p = flow_partition(&self.flow, self.c.config());
        let got = self
            .c
            .claim_in(p, &lane, &w, &i, LEASE, 1000)
            .await
            .unwrap();
        got.into_iter()
            .map(|c| (c.lease.execution.clone(), c))
            .collect()
    }

    /// Claim `id` (it must be eligible) and complete it with `result`.
    async fn succeed(&self, id: &ExecutionId, result: &str) {
        let claimed = self.claim_all().await;
        let cl = claimed.get(id).expect("eligible");
        self.c.complete(&cl.lease, result.as_bytes()).await.unwrap();
        for (other, cl) in claimed {
            if &other != id {
                // (the call may have cancelled it: a decided join's losers)
                if let Err(e) = self.c.release(&cl.lease).await {
                    assert!(e.is_fenced_out(), "{e:?}");
                }
            }
        }
    }

    async fn fail(&self, id: &ExecutionId) {
        let claimed = self.claim_all().await;
        let cl = claimed.get(id).expect("eligible");
        self.c.fail(&cl.lease, "boom", false).await.unwrap();
        for (other, cl) in claimed {
            if &other != id {
                // (the call may have cancelled it: a decided join's losers)
                if let Err(e) = self.c.release(&cl.lease).await {
                    assert!(e.is_fenced_out(), "{e:?}");
                }
            }
        }
    }

    async fn has_key(&self, key: &str) -> bool {
        let n = self.c.store().command(&cmd(["EXISTS", key])).await.unwrap();
        n == Reply::Int(1)
    }

    /// Drain the partition's queued flow work as the completion listener would.
    async fn drain(&self) -> fl::Drained {
        let p = flow_partition(&self.flow, self.c.config());
        let reply = self.c.store().fcall(&fl::drain(p, 1000)).await.unwrap();
        fl::decode_drain(&reply).unwrap()
    }
}

async fn diamond_runs_each_child_once_its_parents_succeed(store: Arc<dyn Store>) {
    let d = Dag::new(store).await;
    let [a, b, c, x] = [d.id(), d.id(), d.id(), d.id()];
    // Parents first; each child's edges before the child, so it never runs early.
    assert_eq!(d.create(&a, JoinPolicy::AllOf).await, PublicState::Waiting);
    for (parents, child) in [(vec![&a], &b), (vec![&a], &c), (vec![&b, &c], &x)] {
        for p in parents {
            assert_eq!(d.edge(p, child).await, EdgeDecision::Recorded);
        }
        assert_eq!(
            d.create(child, JoinPolicy::AllOf).await,
            PublicState::WaitingChildren
        );
    }
    assert_eq!(
        d.c.get(&x).await.unwrap().flow,
        Some((d.flow.clone(), JoinPolicy::AllOf))
    );
    d.succeed(&a, "a").await;
    // Resolved inside the completing call: no engine involved.
    assert_eq!(d.state(&b).await, PublicState::Waiting);
    assert_eq!(d.state(&c).await, PublicState::Waiting);
    assert_eq!(d.state(&x).await, PublicState::WaitingChildren);
    d.succeed(&b, "b").await;
    assert_eq!(d.state(&x).await, PublicState::WaitingChildren);
    d.succeed(&c, "c").await;
    assert_eq!(d.state(&x).await, PublicState::Waiting);
    d.succeed(&x, "x").await;
    let f = d.c.get_flow(&d.flow).await.unwrap();
    assert_eq!(f.summary.members, 4);
    assert_eq!(f.summary.success, 4);
    assert_eq!(f.summary.state(), FlowState::Completed);
    assert_eq!(d.drain().await.remaining, 0);
}

async fn a_fifty_level_chain_advances_one_call_per_level(store: Arc<dyn Store>) {
    let d = Dag::new(store).await;
    let ids: Vec<ExecutionId> = (0..50).map(|_| d.id()).collect();
    d.create(&ids[0], JoinPolicy::AllOf).await;
    for w in ids.windows(2) {
        d.edge(&w[0], &w[1]).await;
        d.create(&w[1], JoinPolicy::AllOf).await;
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(d.state(id).await, PublicState::Waiting, "level {i}");
        if let Some(next) = ids.get(i + 1) {
            assert_eq!(d.state(next).await, PublicState::WaitingChildren);
        }
        d.succeed(id, "ok").await;
    }
    let f = d.c.get_flow(&d.flow).await.unwrap();
    assert_eq!((f.summary.done, f.summary.success), (50, 50));
}

async fn a_failure_skips_the_subtree_and_nothing_else(store: Arc<dyn Store>) {
    let d = Dag::new(store).await;
    // a -> b -> c -> e ; a -> d (any_of with f) ; f -> d
    let [a, b, c, e, dd, f] = [d.id(), d.id(), d.id(), d.id(), d.id(), d.id()];
    d.create(&a, JoinPolicy::AllOf).await;
    d.create(&f, JoinPolicy::AllOf).await;
    for (p, ch) in [(&a, &b), (&b, &c), (&c, &e)] {
        d.edge(p, ch).await;
        d.create(ch, JoinPolicy::AllOf).await;
    }
    d.edge(&a, &dd).await;
    d.edge(&f, &dd).await;
    d.create(&dd, JoinPolicy::AnyOf).await;
    d.fail(&a).await;
    for id in [&b, &c, &e] {
        assert_eq!(d.state(id).await, PublicState::Skipped);
    }
    // any_of: still possible through f.
    assert_eq!(d.state(&dd).await, PublicState::WaitingChildren);
    d.succeed(&f, "f").await;
    assert_eq!(d.state(&dd).await, PublicState::Waiting);
    let s = d.c.get_flow(&d.flow).await.unwrap().summary;
    assert_eq!((s.failed, s.skipped, s.success), (1, 3, 1));
    assert_eq!(s.state(), FlowState::Running);
}

async fn any_of_with_cancel_remaining_cancels_the_losers(store: Arc<dyn Store>) {
    let d = Dag::new(store).await;
    let [p1, p2, p3, ch] = [d.id(), d.id(), d.id(), d.id()];
    for p in [&p1, &p2, &p3] {
        d.create(p, JoinPolicy::AllOf).await;
        d.edge(p, &ch).await;
    }
    d.create_spec(
        &ch,
        ExecutionSpec::new("step")
            .in_flow(&d.flow, JoinPolicy::AnyOf)
            .cancel_remaining_parents(),
    )
    .await;
    d.succeed(&p2, "fast").await;
    assert_eq!(d.state(&ch).await, PublicState::Waiting);
    assert_eq!(d.state(&p1).await, PublicState::Cancelled);
    assert_eq!(d.state(&p3).await, PublicState::Cancelled);
}

async fn quorum_decides_on_the_nth_success_or_when_out_of_reach(store: Arc<dyn Store>) {
    let d = Dag::new(store).await;
    let parents: Vec<ExecutionId> = (0..3).map(|_| d.id()).collect();
    let [ok_child, skip_child] = [d.id(), d.id()];
    for p in &parents {
        d.create(p, JoinPolicy::AllOf).await;
        d.edge(p, &ok_child).await;
        d.edge(p, &skip_child).await;
    }
    d.create(&ok_child, JoinPolicy::quorum(2).unwrap()).await;
    d.create(&skip_child, JoinPolicy::quorum(3).unwrap()).await;
    d.succeed(&parents[0], "1").await;
    assert_eq!(d.state(&ok_child).await, PublicState::WaitingChildren);
    d.fail(&parents[1]).await;
    // 3 of 3 is out of reach now.
    assert_eq!(d.state(&skip_child).await, PublicState::Skipped);
    assert_eq!(d.state(&ok_child).await, PublicState::WaitingChildren);
    d.succeed(&parents[2], "3").await;
    assert_eq!(d.state(&ok_child).await, PublicState::Waiting);
}

async fn a_parent_result_becomes_the_child_payload(store: Arc<dyn Store>) {
    let d = Dag::new(store).await;
    let [p, ch, late] = [d.id(), d.id(), d.id()];
    d.create(&p, JoinPolicy::AllOf).await;
    d.c.add_edge(&d.flow, &p, &ch, true).await.unwrap();
    d.create(&ch, JoinPolicy::AllOf).await;
    d.succeed(&p, "the-result").await;
    assert_eq!(d.c.get(&ch).await.unwrap().payload, b"the-result");
    // An edge added after the parent succeeded, to a child not created yet:
    // the result waits for the child.
    let added = d.c.add_edge(&d.flow, &p, &late, true).await.unwrap();
    assert_eq!(added.decision, EdgeDecision::Recorded);
    assert_eq!(
        d.create(&late, JoinPolicy::AllOf).await,
        PublicState::Waiting
    );
    assert_eq!(d.c.get(&late).await.unwrap().payload, b"the-result");
    // Read by parent too, from the payload: one data parent is not copied.
    for child in [&ch, &late] {
        let results = d.c.parent_results(child).await.unwrap();
        assert_eq!(
            results,
            BTreeMap::from([(p.clone(), b"the-result".to_vec())])
        );
        assert!(!d.has_key(&keys::passed(child)).await);
    }
    assert!(d.c.parent_results(&p).await.unwrap().is_empty());
}

async fn a_child_with_three_data_parents_reads_each_result_by_parent(store: Arc<dyn Store>) {
    let d = Dag::new(store).await;
    let [a, b, c, plain, sink] = [d.id(), d.id(), d.id(), d.id(), d.id()];
    for p in [&a, &b, &c, &plain] {
        d.create(p, JoinPolicy::AllOf).await;
        d.c.add_edge(&d.flow, p, &sink, p != &plain).await.unwrap();
    }
    d.create_spec(
        &sink,
        ExecutionSpec::new("sink")
            .payload("own")
            .in_flow(&d.flow, JoinPolicy::AllOf)
            .retention(Duration::from_millis(50)),
    )
    .await;
    for (p, r) in [(&b, "rb"), (&plain, "not passed"), (&a, ""), (&c, "rc")] {
        d.succeed(p, r).await;
    }
    let want = BTreeMap::from([
        (a.clone(), Vec::new()),
        (b.clone(), b"rb".to_vec()),
        (c.clone(), b"rc".to_vec()),
    ]);
    assert_eq!(d.c.parent_results(&sink).await.unwrap(), want);
    // The payload is the last result passed, as before fan-in was kept.
    let claimed = d.claim_all().await;
    assert_eq!(claimed[&sink].payload, b"rc");
    assert_eq!(d.c.parent_results(&sink).await.unwrap(), want);
    d.c.complete(&claimed[&sink].lease, b"").await.unwrap();
    // Purged with the child.
    tokio::time::sleep(Duration::from_millis(60)).await;
    let p = flow_partition(&d.flow, d.c.config());
    run_scan(&d.c, BatchFunction::PurgeRetained, p).await;
    assert!(d.c.get(&sink).await.is_err());
    assert!(!d.has_key(&keys::passed(&sink)).await);
}

async fn data_parents_added_after_one_passed_keep_every_result(store: Arc<dyn Store>) {
    // Created first, before the data edges; one parent passes while it is
    // the only one; the second data edge keeps that result by its id; the
    // third parent had already succeeded, so its edge resolves at once.
    for created_first in [true, false] {
        let d = Dag::new(store.clone()).await;
        let [a, b, c, ch] = [d.id(), d.id(), d.id(), d.id()];
        for p in [&a, &b, &c] {
            d.create(p, JoinPolicy::AllOf).await;
        }
        if created_first {
            d.create(&ch, JoinPolicy::AllOf).await;
        }
        d.c.add_edge(&d.flow, &a, &ch, true).await.unwrap();
        d.succeed(&c, "rc").await;
        d.succeed(&a, "ra").await;
        let only_a = BTreeMap::from([(a.clone(), b"ra".to_vec())]);
        assert_eq!(d.c.parent_results(&ch).await.unwrap(), only_a);
        d.c.add_edge(&d.flow, &b, &ch, true).await.unwrap();
        assert_eq!(d.c.parent_results(&ch).await.unwrap(), only_a);
        let added = d.c.add_edge(&d.flow, &c, &ch, true).await.unwrap();
        let want = if created_first {
            EdgeDecision::Waiting
        } else {
            EdgeDecision::Recorded
        };
        assert_eq!(added.decision, want);
        if !created_first {
            d.create(&ch, JoinPolicy::AllOf).await;
        }
        d.succeed(&b, "rb").await;
        assert_eq!(d.state(&ch).await, PublicState::Waiting);
        let results = d.c.parent_results(&ch).await.unwrap();
        let want =
            [(&a, "ra"), (&b, "rb"), (&c, "rc")].map(|(p, r)| (p.clone(), r.as_bytes().to_vec()));
        assert_eq!(
            results,
            BTreeMap::from(want),
            "created first: {created_first}"
        );
        assert_eq!(d.c.get(&ch).await.unwrap().payload, b"rb");
    }
}

async fn a_result_passed_after_the_join_released_the_child_is_not_kept(store: Arc<dyn Store>) {
    let d = Dag::new(store).await;
    let [a, b, ch] = [d.id(), d.id(), d.id()];
    for p in [&a, &b] {
        d.create(p, JoinPolicy::AllOf).await;
        d.c.add_edge(&d.flow, p, &ch, true).await.unwrap();
    }
    d.create(&ch, JoinPolicy::AnyOf).await;
    d.succeed(&a, "ra").await;
    assert_eq!(d.state(&ch).await, PublicState::Waiting);
    d.succeed(&b, "rb").await;
    let rec = d.c.get(&ch).await.unwrap();
    assert_eq!(rec.payload, b"ra");
    assert_eq!(
        d.c.parent_results(&ch).await.unwrap(),
        BTreeMap::from([(a.clone(), b"ra".to_vec())])
    );
}

async fn data_passing_parents_are_bounded(store: Arc<dyn Store>) {
    let d = Dag::new(store).await;
    let ch = d.id();
    let max = limits::MAX_DATA_PARENTS as usize;
    for i in 0..=max {
        let p = d.id();
        d.create(&p, JoinPolicy::AllOf).await;
        let added = d.c.add_edge(&d.flow, &p, &ch, true).await;
        if i < max {
            added.unwrap();
        } else {
            let e = added.unwrap_err();
            assert!(matches!(e, Error::Rejected(FfError::TooLarge(_))), "{e:?}");
            // Refused before anything was written; without data it may wait.
            assert_eq!(d.edge(&p, &ch).await, EdgeDecision::Recorded);
        }
    }
}

async fn edges_are_checked_cycles_refused_and_nothing_changes(store: Arc<dyn Store>) {
    let d = Dag::new(store.clone()).await;
    let [a, b, c] = [d.id(), d.id(), d.id()];
    d.create(&a, JoinPolicy::AllOf).await;
    d.edge(&a, &b).await;
    d.create(&b, JoinPolicy::AllOf).await;
    d.edge(&b, &c).await;
    d.create(&c, JoinPolicy::AllOf).await;
    let before = all_keys(&*store).await;
    let cycle = d.c.add_edge(&d.flow, &c, &a, false).await.unwrap_err();
    assert!(
        matches!(cycle, Error::Rejected(FfError::Cycle(_))),
        "{cycle:?}"
    );
    let own = d.c.add_edge(&d.flow, &b, &b, false).await.unwrap_err();
    assert!(matches!(own, Error::Rejected(FfError::Cycle(_))), "{own:?}");
    // Duplicate edge: accepted, nothing changes.
    let dup = d.c.add_edge(&d.flow, &a, &b, false).await.unwrap();
    assert!(!dup.added);
    // A parent that is not a member.
    let stranger = d.id();
    let e =
        d.c.add_edge(&d.flow, &stranger, &c, false)
            .await
            .unwrap_err();
    assert!(matches!(e, Error::Rejected(FfError::NotFound)), "{e:?}");
    assert_eq!(all_keys(&*store).await, before);
    // A child that already started is refused.
    let cl = d.claim_all().await;
    assert!(cl.contains_key(&a));
    let z = d.id();
    d.create(&z, JoinPolicy::AllOf).await;
    let e = d.c.add_edge(&d.flow, &z, &a, false).await.unwrap_err();
    assert!(
        matches!(e, Error::Rejected(FfError::InvalidState(_))),
        "{e:?}"
    );
}

async fn an_edge_to_an_eligible_child_holds_it_back(store: Arc<dyn Store>) {
    let d = Dag::new(store).await;
    let [p, ch] = [d.id(), d.id()];
    d.create(&p, JoinPolicy::AllOf).await;
    assert_eq!(d.create(&ch, JoinPolicy::AllOf).await, PublicState::Waiting);
    assert_eq!(d.edge(&p, &ch).await, EdgeDecision::Waiting);
    assert_eq!(d.state(&ch).await, PublicState::WaitingChildren);
    let claimed = d.claim_all().await;
    assert_eq!(claimed.len(), 1, "only the parent is claimable");
    let lease = &claimed[&p].lease;
    d.c.complete(lease, b"").await.unwrap();
    assert_eq!(d.state(&ch).await, PublicState::Waiting);
    // An edge from a parent that already succeeded resolves at once.
    let late = d.id();
    d.create(&late, JoinPolicy::AllOf).await;
    assert_eq!(d.edge(&p, &late).await, EdgeDecision::Ready);
    assert_eq!(d.state(&late).await, PublicState::Waiting);
}

async fn fan_out_past_the_inline_budget_is_queued_then_drained(store: Arc<dyn Store>) {
    let d = Dag::new(store.clone()).await;
    let root = d.id();
    d.create(&root, JoinPolicy::AllOf).await;
    let children: Vec<ExecutionId> = (0..1000).map(|_| d.id()).collect();
    for ch in &children {
        d.edge(&root, ch).await;
        d.create(ch, JoinPolicy::AllOf).await;
    }
    d.succeed(&root, "").await;
    let pk = PartitionKeys::new(flow_partition(&d.flow, d.c.config()));
    assert_eq!(
        zmembers(&*store, &pk.flow_work()).await,
        vec![format!("d:{root}")],
        "the rest of the fan-out is queued"
    );
    let mut rounds = 0;
    while d.drain().await.remaining > 0 {
        rounds += 1;
        assert!(rounds < 10);
    }
    for ch in &children {
        assert_eq!(d.state(ch).await, PublicState::Waiting);
    }
    assert!(zmembers(&*store, &pk.flow_work()).await.is_empty());
}

async fn fan_in_waits_for_every_parent(store: Arc<dyn Store>) {
    let d = Dag::new(store).await;
    let sink = d.id();
    let parents: Vec<ExecutionId> = (0..1000).map(|_| d.id()).collect();
    for p in &parents {
        d.create(p, JoinPolicy::AllOf).await;
        d.edge(p, &sink).await;
    }
    d.create(&sink, JoinPolicy::AllOf).await;
    let claimed = d.claim_all().await;
    assert_eq!(claimed.len(), 1000);
    for (i, p) in parents.iter().enumerate() {
        assert_eq!(d.state(&sink).await == PublicState::Waiting, i == 1000);
        d.c.complete(&claimed[p].lease, b"").await.unwrap();
    }
    assert_eq!(d.state(&sink).await, PublicState::Waiting);
}

async fn cancelling_a_flow_cancels_every_live_member_in_bounded_steps(store: Arc<dyn Store>) {
    let d = Dag::new(store).await;
    let members: Vec<ExecutionId> = (0..300).map(|_| d.id()).collect();
    for m in &members {
        d.create(m, JoinPolicy::AllOf).await;
    }
    let claimed = d.claim_all().await;
    let done = &members[0];
    d.c.complete(&claimed[done].lease, b"").await.unwrap();
    assert!(d.c.cancel_flow(&d.flow, "stop").await.unwrap());
    assert!(!d.c.cancel_flow(&d.flow, "stop").await.unwrap());
    // No new members or edges.
    let e =
        d.c.create(ExecutionSpec::new("x").in_flow(&d.flow, JoinPolicy::AllOf))
            .await
            .unwrap_err();
    assert!(
        matches!(e, Error::Rejected(FfError::FlowCancelled(_))),
        "{e:?}"
    );
    while d.drain().await.remaining > 0 {}
    assert_eq!(d.state(done).await, PublicState::Completed);
    for m in &members[1..] {
        assert_eq!(d.state(m).await, PublicState::Cancelled);
    }
    // The leases of cancelled members are dead.
    let e =
        d.c.complete(&claimed[&members[1]].lease, b"")
            .await
            .unwrap_err();
    assert!(e.is_fenced_out(), "{e:?}");
    let f = d.c.get_flow(&d.flow).await.unwrap();
    assert_eq!((f.summary.cancelled, f.summary.success), (299, 1));
    assert_eq!(f.summary.state(), FlowState::Cancelled);
    assert_eq!(f.cancel_reason.as_deref(), Some("stop"));
}

/// The flow projector recounts a flow whose counters drifted and repairs
/// them; a second look finds them right. Under an instance-tag filter too: a
/// flow carries no tags, so only a namespace filter leaves it to others.
async fn the_projector_repairs_drifted_counters(store: Arc<dyn Store>) {
    use ff_engine::core::contract::scan::{BatchFunction::ProjectFlows, ScannerFilter};
    use ff_engine::core::keys::FlowKeys;
    use ff_engine::core::TagName;
    use ff_engine::store::cmd;
    let d = Dag::new(store).await;
    let [a, b] = [d.id(), d.id()];
    d.create(&a, JoinPolicy::AllOf).await;
    d.create(&b, JoinPolicy::AllOf).await;
    d.succeed(&a, "ok").await;
    let fk = FlowKeys::new(&d.flow, d.c.config());
    let p = flow_partition(&d.flow, d.c.config());
    let flows = PartitionKeys::new(p).flows();
    let store = d.c.store();
    let drift = cmd([
        "HSET",
        fk.flow().as_str(),
        "n",
        "7",
        "done",
        "0",
        "success",
        "0",
    ]);
    let due_now = cmd(["ZADD", flows.as_str(), "0", d.flow.as_str()]);
    let tagged = ScannerFilter {
        namespace: None,
        instance_tag: Some((TagName::new("region").unwrap(), "eu".to_owned())),
    };
    for filter in [ScannerFilter::default(), tagged] {
        store.command(&drift).await.unwrap();
        store.command(&due_now).await.unwrap();
        let project = ff_engine::engine::scan_once(&**store, ProjectFlows, p, &filter, 100);
        let out = project.await.unwrap();
        assert_eq!((out.acted, out.repaired), (0, 1), "{filter:?}: {out:?}");
        let s = d.c.get_flow(&d.flow).await.unwrap().summary;
        assert_eq!((s.members, s.done, s.success), (2, 1, 1));
        store.command(&due_now).await.unwrap();
        let out = run_scan(&d.c, ProjectFlows, p).await;
        assert_eq!((out.acted, out.repaired), (1, 0));
    }
}

/// A flow's members in pages, each with its state and incoming edges: pending,
/// satisfied and impossible, passing data or not.
async fn members_and_edges_are_listed_in_pages(store: Arc<dyn Store>) {
    use fl::EdgeState::{Impossible, Pending, Satisfied};
    let d = Dag::new(store).await;
    let [a, b, c, x] = [d.id(), d.id(), d.id(), d.id()];
    d.create(&a, JoinPolicy::AllOf).await;
    d.create(&b, JoinPolicy::AllOf).await;
    d.c.add_edge(&d.flow, &a, &c, true).await.unwrap();
    d.edge(&b, &c).await;
    d.create(&c, JoinPolicy::AnyOf).await;
    d.edge(&c, &x).await;
    d.create(&x, JoinPolicy::AllOf).await;
    d.succeed(&a, "ra").await;
    d.fail(&b).await;

    let mut seen = Vec::new();
    let mut offset = 0;
    let mut pages = 0;
    loop {
        let pg = d.c.flow_members(&d.flow, offset, 3).await.unwrap();
        assert_eq!(pg.total, 4);
        assert!(pg.members.len() <= 3);
        pages += 1;
        seen.extend(pg.members);
        match pg.next {
            Some(n) => offset = n,
            None => break,
        }
    }
    assert_eq!(pages, 2);
    let mut ids: Vec<&ExecutionId> = seen.iter().map(|m| &m.execution).collect();
    let sorted = {
        let mut v = ids.clone();
        v.sort();
        v
    };
    assert_eq!(ids, sorted, "in id order");
    ids.dedup();
    assert_eq!(ids.len(), 4);
    let get = |id: &ExecutionId| seen.iter().find(|m| &m.execution == id).unwrap();
    assert_eq!(get(&a).state, PublicState::Completed);
    assert_eq!(get(&b).state, PublicState::Failed);
    assert!(get(&a).parents.is_empty());
    let mut cp: Vec<(ExecutionId, fl::EdgeState, bool)> = get(&c)
        .parents
        .iter()
        .map(|e| (e.parent.clone(), e.state, e.pass_data))
        .collect();
    cp.sort_by(|l, r| l.0.cmp(&r.0));
    let mut want = vec![(a.clone(), Satisfied, true), (b.clone(), Impossible, false)];
    want.sort_by(|l, r| l.0.cmp(&r.0));
    assert_eq!(cp, want);
    assert_eq!(get(&c).join, JoinPolicy::AnyOf);
    assert_eq!(get(&c).state, PublicState::Waiting, "any-of: a succeeded");
    let xe = &get(&x).parents;
    assert_eq!(
        (xe.len(), xe[0].state, xe[0].pass_data),
        (1, Pending, false)
    );
    assert_eq!(get(&x).state, PublicState::WaitingChildren);
    assert_eq!(get(&x).kind.as_str(), "step");

    // Refusals: an unknown flow, a limit or offset out of range.
    let nobody = FlowId::parse(&"0".repeat(32)).unwrap();
    let e = d.c.flow_members(&nobody, 0, 10).await.unwrap_err();
    assert!(matches!(e, Error::Rejected(FfError::NotFound)), "{e:?}");
    for (off, lim) in [(0, 0), (0, limits::MAX_FLOW_PAGE + 1), (u64::MAX, 1)] {
        let e = d.c.flow_members(&d.flow, off, lim).await.unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    }
    let past = d.c.flow_members(&d.flow, 10, 10).await.unwrap();
    assert!(past.members.is_empty() && past.next.is_none());
}

/// An execution of the flow's partition created outside it.
async fn outsider(d: &Dag) -> ExecutionId {
    let id = d.id();
    d.create_spec(&id, ExecutionSpec::new("outside")).await;
    id
}

/// Existing executions join a live flow: with parents they wait as a member
/// created after its edges does (released or skipped at once by parents that
/// ended), without parents they stay as they are (even running).
async fn an_existing_execution_joins_a_flow_with_its_edges(store: Arc<dyn Store>) {
    let d = Dag::new(store).await;
    let [p, q, r] = [d.id(), d.id(), d.id()];
    for id in [&p, &q, &r] {
        d.create(id, JoinPolicy::AllOf).await;
    }
    d.succeed(&q, "rq").await;
    d.fail(&r).await;

    // Waits on a live parent (passing data) and one that succeeded.
    let x = outsider(&d).await;
    assert!(d.c.get(&x).await.unwrap().flow.is_none());
    let args = fl::AddToFlowArgs::new(&d.flow, &x)
        .parent(&p, true)
        .parent(&q, false);
    let got = d.c.add_to_flow(&args).await.unwrap();
    assert_eq!((got.added, got.state), (true, PublicState::WaitingChildren));
    let rec = d.c.get(&x).await.unwrap();
    assert_eq!(rec.flow, Some((d.flow.clone(), JoinPolicy::AllOf)));
    d.succeed(&p, "rp").await;
    assert_eq!(d.state(&x).await, PublicState::Waiting);
    assert_eq!(d.c.get(&x).await.unwrap().payload, b"rp");

    // A parent that already failed: an all-of join is skipped at once, and
    // the flow counts it.
    let y = outsider(&d).await;
    let got =
        d.c.add_to_flow(&fl::AddToFlowArgs::new(&d.flow, &y).parent(&r, false))
            .await
            .unwrap();
    assert_eq!(got.state, PublicState::Skipped);
    // Only parents that succeeded: eligible at once.
    let z = outsider(&d).await;
    let args = fl::AddToFlowArgs::new(&d.flow, &z)
        .join(JoinPolicy::AnyOf)
        .parent(&q, false);
    assert_eq!(
        d.c.add_to_flow(&args).await.unwrap().state,
        PublicState::Waiting
    );

    // Without parents, a running execution joins as it is; its end counts.
    let w = outsider(&d).await;
    let claimed = d.claim_all().await;
    let lease = claimed.get(&w).expect("w is eligible").lease.clone();
    for (other, cl) in &claimed {
        if other != &w {
            d.c.release(&cl.lease).await.unwrap();
        }
    }
    let got =
        d.c.add_to_flow(&fl::AddToFlowArgs::new(&d.flow, &w))
            .await
            .unwrap();
    assert_eq!(got.state, PublicState::Active);
    // A joined member is a parent like any other.
    let v = d.id();
    assert_eq!(d.edge(&w, &v).await, EdgeDecision::Recorded);
    assert_eq!(
        d.create(&v, JoinPolicy::AllOf).await,
        PublicState::WaitingChildren
    );
    d.c.complete(&lease, b"rw").await.unwrap();
    assert_eq!(d.state(&v).await, PublicState::Waiting);
    let s = d.c.get_flow(&d.flow).await.unwrap().summary;
    assert_eq!(
        (s.members, s.done, s.success, s.failed, s.skipped),
        (8, 5, 3, 1, 1),
        "{s:?}"
    );
    let m = d.c.flow_members(&d.flow, 0, 100).await.unwrap();
    assert_eq!(m.total, 8);
    let xm = m.members.iter().find(|m| m.execution == x).unwrap();
    assert_eq!(xm.parents.len(), 2);
}

/// Every refusal of ff_add_execution_to_flow, each leaving the execution and
/// the flow as they were.
async fn adding_to_a_flow_is_refused_and_writes_nothing(store: Arc<dyn Store>) {
    let d = Dag::new(store).await;
    let p = d.id();
    d.create(&p, JoinPolicy::AllOf).await;
    let x = outsider(&d).await;
    let before = d.c.get(&x).await.unwrap();
    let members = d.c.flow_members(&d.flow, 0, 100).await.unwrap();
    let refused = |r: Result<fl::AddedToFlow, Error>| match r {
        Err(Error::Rejected(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let add = |args: fl::AddToFlowArgs| {
        let c = d.c.clone();
        async move { c.add_to_flow(&args).await }
    };

    // Another partition: refused by the client, and by the data plane.
    let part = flow_partition(&d.flow, d.c.config()).index;
    let far = ExecutionId::new((part + 1) % d.c.config().flow_partitions, 7);
    let e = add(fl::AddToFlowArgs::new(&d.flow, &far))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Invalid {
                field: "execution",
                ..
            }
        ),
        "{e:?}"
    );
    let e = add(fl::AddToFlowArgs::new(&d.flow, &x).parent(&far, false))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Invalid {
                field: "parent",
                ..
            }
        ),
        "{e:?}"
    );
    let fk = keys::FlowKeys::new(&d.flow, d.c.config());
    let raw = fl::add_execution_to_flow(&fk, &fl::AddToFlowArgs::new(&d.flow, &far));
    let e = fl::decode_add_execution_to_flow(&d.c.store().fcall(&raw).await.unwrap()).unwrap_err();
    assert!(
        matches!(&e, ff_engine::core::contract::CallError::Rejected(FfError::InvalidArgument { field, .. }) if field == "execution"),
        "{e:?}"
    );

    // Unknown flow, execution, parent (an id of the partition, no member).
    let cfg = *d.c.config();
    let mut in_part = (1u128..)
        .map(FlowId::from_u128)
        .filter(|f| flow_partition(f, &cfg).index == part);
    let nobody = in_part.next().unwrap();
    let other_flow = in_part.next().unwrap();
    let ns = ff_engine::core::Namespace::new("default").unwrap();
    let create = fl::create_flow(&keys::FlowKeys::new(&other_flow, &cfg), &other_flow, &ns);
    d.c.store().fcall(&create).await.unwrap();
    assert_eq!(
        refused(add(fl::AddToFlowArgs::new(&nobody, &x)).await),
        FfError::NotFound
    );
    let unknown = d.id();
    assert_eq!(
        refused(add(fl::AddToFlowArgs::new(&d.flow, &unknown)).await),
        FfError::NotFound
    );
    let stranger = outsider(&d).await;
    assert_eq!(
        refused(add(fl::AddToFlowArgs::new(&d.flow, &x).parent(&stranger, false)).await),
        FfError::NotFound,
        "a parent must be a member"
    );
    assert!(matches!(
        refused(add(fl::AddToFlowArgs::new(&d.flow, &x).parent(&x, false)).await),
        FfError::Cycle(_)
    ));

    // A member of another flow; a member of this one with other edges.
    let m = d.c.new_member_id(&other_flow);
    d.c.create(
        ExecutionSpec::new("k")
            .in_flow(&other_flow, JoinPolicy::AllOf)
            .id(m.clone()),
    )
    .await
    .unwrap();
    assert!(matches!(
        refused(add(fl::AddToFlowArgs::new(&d.flow, &m)).await),
        FfError::InvalidState(_)
    ));
    assert!(matches!(
        refused(add(fl::AddToFlowArgs::new(&d.flow, &p).parent(&stranger, false)).await),
        FfError::InvalidState(_)
    ));

    // An ended execution; a started one with parents (without, it may join).
    let ended = outsider(&d).await;
    d.c.cancel(&ended, "stop").await.unwrap();
    assert!(matches!(
        refused(add(fl::AddToFlowArgs::new(&d.flow, &ended)).await),
        FfError::AlreadyTerminal(o) if o == "cancelled"
    ));
    let running = outsider(&d).await;
    let claimed = d.claim_all().await;
    for (id, cl) in &claimed {
        if id != &running {
            d.c.release(&cl.lease).await.unwrap();
        }
    }
    assert!(matches!(
        refused(add(fl::AddToFlowArgs::new(&d.flow, &running).parent(&p, false)).await),
        FfError::InvalidState(_)
    ));

    // A cancelled flow takes no member.
    d.c.cancel_flow(&other_flow, "stop").await.unwrap();
    assert!(matches!(
        refused(add(fl::AddToFlowArgs::new(&other_flow, &x)).await),
        FfError::FlowCancelled(_)
    ));

    // Nothing written by any of them.
    let after = d.c.get(&x).await.unwrap();
    assert_eq!(
        (after.public_state, &after.flow),
        (before.public_state, &before.flow)
    );
    let now = d.c.flow_members(&d.flow, 0, 100).await.unwrap();
    assert_eq!(now, members);
    assert_eq!(d.c.get_flow(&d.flow).await.unwrap().summary.members, 1);
    for id in [&x, &stranger, &running] {
        assert!(!d.has_key(&keys::deps(id)).await, "{id}");
        assert!(d.c.get(id).await.unwrap().flow.is_none());
    }

    // A flow whose members all ended takes no member either.
    d.c.cancel(&p, "done with it").await.unwrap();
    assert!(matches!(
        refused(add(fl::AddToFlowArgs::new(&d.flow, &x)).await),
        FfError::FlowEnded(_)
    ));
    assert!(d.c.get(&x).await.unwrap().flow.is_none());
}

on_both_stores!(
    members_and_edges_are_listed_in_pages,
    an_existing_execution_joins_a_flow_with_its_edges,
    adding_to_a_flow_is_refused_and_writes_nothing,
    diamond_runs_each_child_once_its_parents_succeed,
    the_projector_repairs_drifted_counters,
    a_fifty_level_chain_advances_one_call_per_level,
    a_failure_skips_the_subtree_and_nothing_else,
    any_of_with_cancel_remaining_cancels_the_losers,
    quorum_decides_on_the_nth_success_or_when_out_of_reach,
    a_parent_result_becomes_the_child_payload,
    a_child_with_three_data_parents_reads_each_result_by_parent,
    data_parents_added_after_one_passed_keep_every_result,
    a_result_passed_after_the_join_released_the_child_is_not_kept,
    data_passing_parents_are_bounded,
    edges_are_checked_cycles_refused_and_nothing_changes,
    an_edge_to_an_eligible_child_holds_it_back,
    fan_out_past_the_inline_budget_is_queued_then_drained,
    fan_in_waits_for_every_parent,
    cancelling_a_flow_cancels_every_live_member_in_bounded_steps,
);
