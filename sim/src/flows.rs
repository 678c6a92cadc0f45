//! Flow workloads: small random DAGs whose members run the normal random
//! kinds, created through faults (every call retried until answered), and
//! the checks that every child's end agrees with its join, a child that ran
//! after all its parents succeeded reads each data-passing parent's result by
//! parent, and its flow's counters are exact.

use crate::workload;
use ff_core::contract::execution::ExecutionRecord;
use ff_core::counts::Counted;
use ff_core::flow::{EdgeCounts, JoinDecision, JoinPolicy};
use ff_core::state::PublicState;
use ff_core::{ExecutionId, FlowId};
use ff_engine::{Client, Error};
use rand::Rng;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// One flow as the client built it.
#[derive(Debug, Clone)]
pub struct SimFlow {
    pub flow: FlowId,
    pub members: Vec<ExecutionId>,
    /// (parent index, child index, passes its result)
    pub edges: Vec<(usize, usize, bool)>,
    pub joins: Vec<JoinPolicy>,
}

/// Retry a call while the store fails (faults); a refusal is returned.
async fn retried<T, F, Fut>(mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    loop {
        match f().await {
            Err(Error::Store(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            other => return other,
        }
    }
}

/// Build a random DAG of 2..=8 members (edges only from lower to higher
/// index; each member's edges declared before it is created).
pub async fn build(client: &Client, rng: &mut impl Rng, name: &str) -> Result<SimFlow, Error> {
    let flow = retried(|| client.create_flow("default")).await?;
    let n = rng.random_range(2..=8usize);
    let mut sim = SimFlow {
        flow: flow.clone(),
        members: Vec::new(),
        edges: Vec::new(),
        joins: Vec::new(),
    };
    for j in 0..n {
        let id = client.new_member_id(&flow);
        let parents: Vec<usize> = (0..j).filter(|_| rng.random_ratio(1, 2)).collect();
        let join = match (parents.len(), rng.random_range(0..3)) {
            (0, _) | (_, 0) => JoinPolicy::AllOf,
            (_, 1) => JoinPolicy::AnyOf,
            (k, _) => JoinPolicy::quorum(rng.random_range(1..=k as u32)).expect("quorum in range"),
        };
        for &p in &parents {
            let parent = sim.members[p].clone();
            let pass_data = rng.random_ratio(1, 4);
            retried(|| client.add_edge(&flow, &parent, &id, pass_data)).await?;
            sim.edges.push((p, j, pass_data));
        }
        let spec = workload::random_spec(rng, format!("{name}-{j}"))
            .in_flow(&flow, join)
            .id(id.clone());
        retried(|| client.create(spec.clone())).await?;
        sim.members.push(id);
        sim.joins.push(join);
    }
    Ok(sim)
}

/// An `AllOf` member that ran: every parent succeeded while it waited, so
/// exactly its data-passing parents passed it their results (compared where
/// the parent's record is still there to say what it was).
async fn check_passed(
    client: &Client,
    f: &SimFlow,
    j: usize,
    records: &BTreeMap<String, ExecutionRecord>,
) -> Vec<String> {
    let data: Vec<&ExecutionId> = f
        .edges
        .iter()
        .filter(|(_, ch, d)| *ch == j && *d)
        .map(|(p, _, _)| &f.members[*p])
        .collect();
    let got = match client.parent_results(&f.members[j]).await {
        Ok(got) => got,
        Err(e) => {
            return vec![format!(
                "flow {}: member {j}: parent results unreadable: {e}",
                f.flow
            )]
        }
    };
    let mut out = Vec::new();
    if got.len() != data.len() || data.iter().any(|p| !got.contains_key(*p)) {
        out.push(format!(
            "flow {}: member {j} was passed results by {:?}, its data-passing parents are {data:?}",
            f.flow,
            got.keys().collect::<Vec<_>>()
        ));
    }
    for p in data {
        let result = records
            .get(p.as_str())
            .map(|r| r.result.clone().unwrap_or_default());
        if let (Some(want), Some(passed)) = (result, got.get(p)) {
            if &want != passed {
                out.push(format!(
                    "flow {}: member {j} was passed {passed:?} by {p}, whose result is {want:?}",
                    f.flow
                ));
            }
        }
    }
    out
}

/// Once everything is terminal: every member's end agrees with its join over
/// its parents' outcomes, and the flow's counters equal a recount.
pub async fn check(
    client: &Client,
    flows: &[SimFlow],
    records: &BTreeMap<String, ExecutionRecord>,
) -> Vec<String> {
    let mut out = Vec::new();
    for f in flows {
        let state = |i: usize| records.get(f.members[i].as_str()).map(|r| r.public_state);
        for (j, join) in f.joins.iter().enumerate() {
            let mut c = EdgeCounts::default();
            for &(p, _, _) in f.edges.iter().filter(|(_, ch, _)| *ch == j) {
                c.total += 1;
                match state(p) {
                    Some(PublicState::Completed) => c.satisfied += 1,
                    Some(s) if s.is_terminal() => c.impossible += 1,
                    _ => {}
                }
            }
            let decision = join.decide(c);
            let ran = records
                .get(f.members[j].as_str())
                .is_some_and(|r| r.attempt > 0);
            match state(j) {
                Some(PublicState::Skipped) if decision != JoinDecision::Impossible => {
                    out.push(format!(
                        "flow {}: member {j} skipped although its join says {decision:?} ({c:?})",
                        f.flow
                    ))
                }
                _ if ran && decision != JoinDecision::Ready => out.push(format!(
                    "flow {}: member {j} ran although its join says {decision:?} ({c:?})",
                    f.flow
                )),
                _ => {}
            }
            if ran && *join == JoinPolicy::AllOf {
                out.extend(check_passed(client, f, j, records).await);
            }
        }
        match client.get_flow(&f.flow).await {
            Ok(rec) => {
                let s = rec.summary;
                let count = |want: PublicState| {
                    (0..f.members.len())
                        .filter(|&i| state(i) == Some(want))
                        .count() as u64
                };
                let recount = (
                    f.members.len() as u64,
                    count(PublicState::Completed),
                    count(PublicState::Failed),
                    count(PublicState::Skipped),
                    count(PublicState::Expired),
                );
                if (s.members, s.success, s.failed, s.skipped, s.expired) != recount
                    || !s.is_consistent()
                {
                    out.push(format!(
                        "flow {}: counters {s:?} disagree with its members {recount:?}",
                        f.flow
                    ));
                }
                // Its members not ended, per state, exactly.
                let mut live = BTreeMap::new();
                for m in &f.members {
                    let c = records
                        .get(m.as_str())
                        .filter(|r| !r.public_state.is_terminal())
                        .and_then(|r| Counted::of(&r.state));
                    if let Some(c) = c {
                        *live.entry(c).or_insert(0u64) += 1;
                    }
                }
                if rec.live != live {
                    out.push(format!(
                        "flow {}: live counts {:?} disagree with its members {live:?}",
                        f.flow, rec.live
                    ));
                }
            }
            Err(e) => out.push(format!("flow {}: unreadable: {e}", f.flow)),
        }
    }
    out
}
