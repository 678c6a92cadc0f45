//! Flows: the join counters' consistency, the flow summary's state, the
//! reference settlement and the completion message.

use ff_core::flow::dispatch::{CompletionMessage, COMPLETION_CHANNEL};
use ff_core::flow::join::{EdgeCounts, JoinDecision, JoinPolicy};
use ff_core::flow::reference::{settle, Dag, Fate};
use ff_core::flow::{FlowState, FlowSummary};
use ff_core::state::TerminalOutcome;
use ff_core::ExecutionId;

fn c(total: u32, satisfied: u32, impossible: u32) -> EdgeCounts {
    EdgeCounts {
        total,
        satisfied,
        impossible,
    }
}

#[test]
fn edge_counts_consistency() {
    assert!(c(0, 0, 0).is_consistent());
    assert!(c(3, 2, 1).is_consistent());
    assert!(c(3, 3, 0).is_consistent());
    assert!(!c(3, 2, 2).is_consistent());
    assert!(!c(3, 1, 3).is_consistent());
    assert!(!c(0, 1, 0).is_consistent());
    // No overflow: the sum is taken wide.
    assert!(!c(u32::MAX, u32::MAX, 1).is_consistent());
    assert!(c(u32::MAX, u32::MAX - 1, 1).is_consistent());
    assert_eq!(c(5, 2, 1).unresolved(), 2);
    assert_eq!(c(5, 0, 0).unresolved(), 5);
    assert_eq!(c(1, 2, 3).unresolved(), 0);
}

#[test]
fn join_policy_display_and_quorum_bounds() {
    assert_eq!(JoinPolicy::Quorum(3).to_string(), "q:3");
    assert_eq!(JoinPolicy::AllOf.to_string(), "all");
    assert_eq!(JoinPolicy::AnyOf.to_string(), "any");
    assert_eq!(JoinPolicy::parse("q:9999"), Ok(JoinPolicy::Quorum(9999)));
    assert!(JoinPolicy::parse("q:123456").is_err());
    assert!(JoinPolicy::quorum(1).is_ok());
    assert!(JoinPolicy::quorum(10_000).is_ok());
    // AllOf is impossible at the first impossible edge, not before.
    assert_eq!(JoinPolicy::AllOf.decide(c(2, 1, 0)), JoinDecision::Waiting);
    assert_eq!(JoinPolicy::AnyOf.decide(c(2, 0, 1)), JoinDecision::Waiting);
    assert_eq!(
        JoinPolicy::Quorum(2).decide(c(3, 1, 1)),
        JoinDecision::Waiting
    );
    assert_eq!(
        JoinPolicy::Quorum(2).decide(c(3, 1, 2)),
        JoinDecision::Impossible
    );
}

fn s(members: u64, done: u64, outcomes: [u64; 5], cancel: bool) -> FlowSummary {
    FlowSummary {
        members,
        done,
        success: outcomes[0],
        failed: outcomes[1],
        cancelled: outcomes[2],
        expired: outcomes[3],
        skipped: outcomes[4],
        cancel_requested: cancel,
    }
}

#[test]
fn flow_summary_states() {
    use FlowState::*;
    let cases = [
        (s(0, 0, [0; 5], false), Open),
        (s(0, 0, [0; 5], true), Cancelled),
        (s(3, 2, [2, 0, 0, 0, 0], false), Running),
        (s(3, 2, [2, 0, 0, 0, 0], true), Cancelling),
        (s(3, 3, [3, 0, 0, 0, 0], true), Cancelled),
        (s(3, 3, [3, 0, 0, 0, 0], false), Completed),
        (s(3, 3, [2, 1, 0, 0, 0], false), Failed),
        (s(3, 3, [2, 0, 0, 1, 0], false), Failed),
        (s(3, 3, [1, 0, 1, 0, 1], false), Completed),
        // More done than members: ended.
        (s(3, 4, [4, 0, 0, 0, 0], false), Completed),
    ];
    for (summary, want) in cases {
        assert_eq!(summary.state(), want, "{summary:?}");
    }
    assert_eq!(s(5, 2, [2, 0, 0, 0, 0], false).running(), 3);
    assert_eq!(s(2, 5, [0; 5], false).running(), 0);
    assert!(s(3, 3, [1, 1, 0, 0, 1], false).is_consistent());
    assert!(s(3, 2, [0, 0, 1, 1, 0], false).is_consistent());
    assert!(!s(3, 2, [1, 0, 0, 0, 0], false).is_consistent());
    assert!(!s(2, 3, [3, 0, 0, 0, 0], false).is_consistent());
    assert!(!s(3, 3, [u64::MAX, 4, 0, 0, 0], false).is_consistent());
    let names: Vec<String> = FlowState::ALL.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        names,
        [
            "open",
            "running",
            "cancelling",
            "completed",
            "failed",
            "cancelled"
        ]
    );
    for st in FlowState::ALL {
        assert_eq!(
            st.is_terminal(),
            matches!(st, Completed | Failed | Cancelled),
            "{st}"
        );
        assert_eq!(st.as_str(), st.to_string());
    }
}

#[test]
fn reference_settlement() {
    use TerminalOutcome::*;
    assert_eq!(Fate::Ran(Success).resolves(), Some(true));
    assert_eq!(Fate::Ran(Failed).resolves(), Some(false));
    assert_eq!(Fate::Skipped.resolves(), Some(false));
    assert_eq!(Fate::Waiting.resolves(), None);
    assert_eq!(Fate::Ready.resolves(), None);
    // 0 -> 2, 1 -> 2, 2 -> 3; 0 succeeds, 1 fails.
    let dag = Dag {
        joins: vec![
            JoinPolicy::AllOf,
            JoinPolicy::AllOf,
            JoinPolicy::AnyOf,
            JoinPolicy::AllOf,
        ],
        edges: vec![(0, 2), (1, 2), (2, 3)],
    };
    let fates = [
        Fate::Ran(Success),
        Fate::Ran(Failed),
        Fate::Waiting,
        Fate::Ready,
    ];
    assert_eq!(dag.incoming(&fates, 2), c(2, 1, 1));
    assert_eq!(dag.incoming(&fates, 3), c(1, 0, 0));
    assert_eq!(dag.incoming(&fates, 0), c(0, 0, 0));
    let outcome = |i: usize| match i {
        1 => Some(Failed),
        3 => None,
        _ => Some(Success),
    };
    assert_eq!(
        settle(&dag, outcome),
        [
            Fate::Ran(Success),
            Fate::Ran(Failed),
            Fate::Ran(Success),
            Fate::Ready
        ]
    );
    // With AllOf at 2, it is skipped, and so is 3 after it.
    let mut all = dag.clone();
    all.joins[2] = JoinPolicy::AllOf;
    assert_eq!(
        settle(&all, outcome),
        [
            Fate::Ran(Success),
            Fate::Ran(Failed),
            Fate::Skipped,
            Fate::Skipped
        ]
    );
    // A cycle stays waiting.
    let cycle = Dag {
        joins: vec![JoinPolicy::AllOf; 2],
        edges: vec![(0, 1), (1, 0)],
    };
    assert_eq!(
        settle(&cycle, |_| Some(Success)),
        [Fate::Waiting, Fate::Waiting]
    );
    assert!(settle(&Dag::default(), |_| None).is_empty());
}

#[test]
fn completion_messages() {
    assert_eq!(COMPLETION_CHANNEL, "ff:done");
    let e = ExecutionId::new(3, 1);
    let m = CompletionMessage::parse(format!("{e} failed 1").as_bytes()).unwrap();
    assert_eq!(
        m,
        CompletionMessage {
            execution: e.clone(),
            outcome: TerminalOutcome::Failed,
            pending: true
        }
    );
    assert_eq!(m.encode(), format!("{e} failed 1"));
    let m = CompletionMessage::parse(format!("{e} success 0").as_bytes()).unwrap();
    assert!(!m.pending);
    assert_eq!(m.encode(), format!("{e} success 0"));
    for bad in [
        format!("{e} success 2"),
        format!("{e} success"),
        format!("{e} success 0 x"),
        format!("{e} won 0"),
        "x success 0".to_owned(),
    ] {
        assert!(CompletionMessage::parse(bad.as_bytes()).is_err(), "{bad}");
    }
    assert!(CompletionMessage::parse(b"\xff success 0").is_err());
}
