//! Random DAGs through the real Lua data plane (on MemoryStore, which the
//! differential test holds to redis-server) against the naive reference
//! `ff_core::flow::reference::settle`: every member ends as the reference says,
//! the settlement terminates, and every edge is resolved exactly once.

mod common;

use common::*;
use ff_engine::core::contract::flow as fl;
use ff_engine::core::flow::reference::{settle, Dag, Fate};
use ff_engine::core::flow::JoinPolicy;
use ff_engine::core::keys::{self, flow_partition};
use ff_engine::core::reply::Reply;
use ff_engine::core::state::{PublicState, TerminalOutcome};
use ff_engine::core::ExecutionId;
use ff_engine::store::{cmd, MemoryStore, Store};
use ff_engine::ExecutionSpec;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
struct Case {
    dag: Dag,
    /// Whether each member succeeds when it runs.
    succeeds: Vec<bool>,
    /// Cancel the losers of a decided join.
    cancel_remaining: Vec<bool>,
}

fn join() -> impl Strategy<Value = JoinPolicy> {
    prop_oneof![
        Just(JoinPolicy::AllOf),
        Just(JoinPolicy::AnyOf),
        (1u32..4).prop_map(|k| JoinPolicy::quorum(k).unwrap()),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (2usize..14).prop_flat_map(|n| {
        (
            proptest::collection::vec(join(), n),
            proptest::collection::vec((0..n, 0..n), 0..n * 2),
            proptest::collection::vec(prop::bool::weighted(0.7), n),
        )
            .prop_map(|(joins, pairs, succeeds)| {
                let mut edges: Vec<(usize, usize)> = pairs
                    .into_iter()
                    .filter(|(a, b)| a != b)
                    .map(|(a, b)| (a.min(b), a.max(b)))
                    .collect();
                edges.sort_unstable();
                edges.dedup();
                let n = joins.len();
                Case {
                    dag: Dag { joins, edges },
                    succeeds,
                    cancel_remaining: vec![false; n],
                }
            })
    })
}

fn expected(case: &Case) -> Vec<PublicState> {
    settle(&case.dag, |i| {
        Some(if case.succeeds[i] {
            TerminalOutcome::Success
        } else {
            TerminalOutcome::Failed
        })
    })
    .into_iter()
    .map(|f| match f {
        Fate::Ran(TerminalOutcome::Success) => PublicState::Completed,
        Fate::Ran(_) => PublicState::Failed,
        Fate::Skipped => PublicState::Skipped,
        Fate::Waiting => PublicState::WaitingChildren,
        Fate::Ready => PublicState::Waiting,
    })
    .collect()
}

async fn run(case: Case) -> Result<(), TestCaseError> {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let c = client_on(store.clone()).await;
    let flow = c.create_flow("default").await.unwrap();
    let n = case.dag.joins.len();
    let ids: Vec<ExecutionId> = (0..n).map(|_| c.new_member_id(&flow)).collect();
    for (j, id) in ids.iter().enumerate() {
        for &(p, _) in case.dag.edges.iter().filter(|e| e.1 == j) {
            c.add_edge(&flow, &ids[p], id, false).await.unwrap();
        }
        let mut spec = ExecutionSpec::new("step")
            .in_flow(&flow, case.dag.joins[j])
            .id(id.clone());
        if case.cancel_remaining[j] {
            spec = spec.cancel_remaining_parents();
        }
        c.create(spec).await.unwrap();
    }
    let index: BTreeMap<ExecutionId, usize> = ids
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, e)| (e, i))
        .collect();
    let (lane, w, inst) = worker();
    let p = flow_partition(&flow, c.config());
    // Run everything runnable, drain queued flow work, until nothing moves.
    for round in 0.. {
        prop_assert!(round <= n + 1, "settlement did not terminate");
        let claimed = c.claim_in(p, &lane, &w, &inst, LEASE, 1000).await.unwrap();
        let drained = fl::decode_drain(&store.fcall(&fl::drain(p, 1000)).await.unwrap()).unwrap();
        prop_assert_eq!(drained.remaining, 0);
        if claimed.is_empty() && drained.worked == 0 {
            break;
        }
        for cl in claimed {
            let i = index[&cl.lease.execution];
            if case.succeeds[i] {
                c.complete(&cl.lease, b"").await.unwrap();
            } else {
                c.fail(&cl.lease, "no", false).await.unwrap();
            }
        }
    }
    let want = expected(&case);
    for (i, id) in ids.iter().enumerate() {
        let got = c.get(id).await.unwrap().public_state;
        prop_assert_eq!(got, want[i], "member {} of {:?}", i, case);
    }
    // Every edge resolved exactly once: no pending state left, counts add up.
    for (j, id) in ids.iter().enumerate() {
        let parents = case.dag.edges.iter().filter(|e| e.1 == j).count();
        if parents == 0 {
            continue;
        }
        let Reply::Array(flat) = store
            .command(&cmd(["HGETALL", &keys::deps(id)]))
            .await
            .unwrap()
        else {
            panic!("HGETALL")
        };
        let m: BTreeMap<String, String> = flat
            .chunks(2)
            .map(|kv| (kv[0].text().unwrap(), kv[1].text().unwrap()))
            .collect();
        let count = |k: &str| m.get(k).map_or(0, |v| v.parse::<usize>().unwrap());
        let states: Vec<&String> = m
            .iter()
            .filter(|(k, _)| !k.starts_with('#'))
            .map(|(_, v)| v)
            .collect();
        prop_assert_eq!(states.len(), parents);
        prop_assert!(states.iter().all(|s| *s == "s" || *s == "i"), "{:?}", m);
        prop_assert_eq!(count("#n"), parents);
        prop_assert_eq!(count("#s") + count("#i"), parents);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_dags_settle_as_the_reference_says(case in case()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(case))?;
    }
}
