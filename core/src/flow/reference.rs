//! A naive reference of flow settlement: where every member of a DAG ends up
//! once every member that could run has run. Tests run random DAGs through
//! the Lua data plane and compare with [`settle`]; obviously correct beats
//! fast here.

use super::join::{EdgeCounts, JoinDecision, JoinPolicy};
use crate::state::TerminalOutcome;

/// A flow's shape: one join policy per member, and edges `(parent, child)`
/// between member indexes (acyclic; test generators use `parent < child`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dag {
    /// The join policy of each member; its length is the member count.
    pub joins: Vec<JoinPolicy>,
    /// Dependency edges, `(parent, child)`.
    pub edges: Vec<(usize, usize)>,
}

/// Where a member ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fate {
    /// Its join has not decided.
    Waiting,
    /// Its join decided Ready, and it has not ended (no outcome given).
    Ready,
    /// It became ready and ran, ending with this outcome.
    Ran(TerminalOutcome),
    /// Its join became impossible.
    Skipped,
}

impl Fate {
    /// What this member's ending does to its outgoing edges: `Some(true)`
    /// satisfied (it succeeded), `Some(false)` impossible (it ended any
    /// other way or was skipped), `None` unresolved.
    pub fn resolves(self) -> Option<bool> {
        match self {
            Fate::Ran(TerminalOutcome::Success) => Some(true),
            Fate::Ran(_) | Fate::Skipped => Some(false),
            Fate::Waiting | Fate::Ready => None,
        }
    }
}

impl Dag {
    /// The counts of `node`'s incoming edges given everyone's fates.
    pub fn incoming(&self, fates: &[Fate], node: usize) -> EdgeCounts {
        let mut c = EdgeCounts::default();
        for &(parent, _) in self.edges.iter().filter(|e| e.1 == node) {
            c.total += 1;
            match fates[parent].resolves() {
                Some(true) => c.satisfied += 1,
                Some(false) => c.impossible += 1,
                None => {}
            }
        }
        c
    }
}

/// Settle `dag`: a member whose join decides Ready (members without incoming
/// edges are Ready) ran with `outcome_of(i)` if that is `Some`, else it is
/// Ready; a member whose join decides Impossible is Skipped; the rest wait.
/// Computed by recomputing every member until nothing changes (fates only
/// move forward, so this ends; cycles just stay Waiting).
///
/// Panics if an edge names a member out of range.
pub fn settle(dag: &Dag, outcome_of: impl Fn(usize) -> Option<TerminalOutcome>) -> Vec<Fate> {
    let n = dag.joins.len();
    assert!(
        dag.edges.iter().all(|&(p, c)| p < n && c < n),
        "edge out of range"
    );
    let mut fates = vec![Fate::Waiting; n];
    loop {
        let mut changed = false;
        for i in 0..n {
            let fate = match dag.joins[i].decide(dag.incoming(&fates, i)) {
                JoinDecision::Waiting => Fate::Waiting,
                JoinDecision::Ready => outcome_of(i).map_or(Fate::Ready, Fate::Ran),
                JoinDecision::Impossible => Fate::Skipped,
            };
            if fate != fates[i] {
                fates[i] = fate;
                changed = true;
            }
        }
        if !changed {
            return fates;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use TerminalOutcome::{Failed, Success};

    fn dag(joins: &[JoinPolicy], edges: &[(usize, usize)]) -> Dag {
        Dag {
            joins: joins.to_vec(),
            edges: edges.to_vec(),
        }
    }

    #[test]
    fn a_failure_skips_its_all_of_descendants() {
        use JoinPolicy::{AllOf, AnyOf};
        // 0 -> 1 -> 3, 2 -> 3 (all), 2 -> 4 (any), 1 -> 4
        let d = dag(
            &[AllOf, AllOf, AllOf, AllOf, AnyOf],
            &[(0, 1), (1, 3), (2, 3), (2, 4), (1, 4)],
        );
        let fates = settle(&d, |i| Some(if i == 0 { Failed } else { Success }));
        assert_eq!(
            fates,
            [
                Fate::Ran(Failed),
                Fate::Skipped,
                Fate::Ran(Success),
                Fate::Skipped,
                Fate::Ran(Success)
            ]
        );
        // Nothing has ended yet: the roots are ready, the rest wait.
        let fates = settle(&d, |_| None);
        assert_eq!(
            fates,
            [
                Fate::Ready,
                Fate::Waiting,
                Fate::Ready,
                Fate::Waiting,
                Fate::Waiting
            ]
        );
    }

    #[test]
    fn quorum_and_cycles() {
        use JoinPolicy::{AllOf, Quorum};
        let d = dag(&[AllOf, AllOf, AllOf, Quorum(2)], &[(0, 3), (1, 3), (2, 3)]);
        let fates = settle(&d, |i| Some(if i == 1 { Failed } else { Success }));
        assert_eq!(fates[3], Fate::Ran(Success));
        let fates = settle(&d, |i| if i == 3 { None } else { Some(Failed) });
        assert_eq!(fates[3], Fate::Skipped);
        let cyclic = dag(&[AllOf, AllOf], &[(0, 1), (1, 0)]);
        assert_eq!(settle(&cyclic, |_| Some(Success)), [Fate::Waiting; 2]);
    }

    fn policy() -> impl Strategy<Value = JoinPolicy> {
        prop_oneof![
            Just(JoinPolicy::AllOf),
            Just(JoinPolicy::AnyOf),
            (1u32..4).prop_map(JoinPolicy::Quorum),
        ]
    }

    /// A DAG of up to 10 members; edges go from a lower to a higher index.
    fn arb_dag() -> impl Strategy<Value = Dag> {
        prop::collection::vec(policy(), 1..10).prop_flat_map(|joins| {
            let n = joins.len();
            let edges = prop::collection::vec((0..n, 0..n), 0..20).prop_map(|es| {
                es.into_iter()
                    .filter(|(a, b)| a != b)
                    .map(|(a, b)| (a.min(b), a.max(b)))
                    .collect()
            });
            (Just(joins), edges).prop_map(|(joins, edges)| Dag { joins, edges })
        })
    }

    fn outcome() -> impl Strategy<Value = Option<TerminalOutcome>> {
        prop_oneof![
            2 => Just(Some(Success)),
            1 => prop::sample::select(TerminalOutcome::ALL).prop_map(Some),
            1 => Just(None),
        ]
    }

    proptest! {
        /// The fixpoint agrees with one pass in topological (index) order, and
        /// every member's fate is what its join says of its parents' fates.
        #[test]
        fn settles_consistently(
            (d, outcomes) in arb_dag().prop_flat_map(|d| {
                let n = d.joins.len();
                (Just(d), prop::collection::vec(outcome(), n))
            })
        ) {
            let fates = settle(&d, |i| outcomes[i]);
            let mut one_pass = vec![Fate::Waiting; d.joins.len()];
            for i in 0..d.joins.len() {
                one_pass[i] = match d.joins[i].decide(d.incoming(&one_pass, i)) {
                    JoinDecision::Waiting => Fate::Waiting,
                    JoinDecision::Ready => outcomes[i].map_or(Fate::Ready, Fate::Ran),
                    JoinDecision::Impossible => Fate::Skipped,
                };
            }
            prop_assert_eq!(&fates, &one_pass);
            for (i, f) in fates.iter().enumerate() {
                let c = d.incoming(&fates, i);
                if c.total == 0 {
                    prop_assert!(matches!(f, Fate::Ready | Fate::Ran(_)), "a root runs");
                }
                if *f == Fate::Waiting {
                    prop_assert!(c.unresolved() > 0, "a waiting member has a parent still open");
                }
            }
            // If every member that becomes ready runs, nothing is left waiting.
            if outcomes.iter().all(Option::is_some) {
                prop_assert!(fates.iter().all(|f| matches!(f, Fate::Ran(_) | Fate::Skipped)));
            }
        }
    }
}
