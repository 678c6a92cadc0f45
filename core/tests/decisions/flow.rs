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

#[test]
fn dispatch_planner_scenario() {
    use ff_core::flow::dispatch::{DispatchLimits, DispatchPlanner, DispatchStats};
    let msg = |p: u16, pending| CompletionMessage {
        execution: ExecutionId::new(p, 1),
        outcome: TerminalOutcome::Success,
        pending,
    };
    assert_eq!(
        DispatchLimits::default(),
        DispatchLimits {
            max_in_flight: 16,
            max_rounds: 64,
            max_wanted: 4096
        }
    );
    // Zero limits are read as one.
    let mut d = DispatchPlanner::new(DispatchLimits {
        max_in_flight: 0,
        max_rounds: 0,
        max_wanted: 0,
    });
    assert_eq!(
        d.limits(),
        DispatchLimits {
            max_in_flight: 1,
            max_rounds: 1,
            max_wanted: 1
        }
    );
    assert!(d.is_idle());
    d.on_completion(&msg(1, false));
    assert!(d.is_idle());
    d.on_completion(&msg(1, true));
    d.on_completion(&msg(1, true)); // queued already
    d.on_completion(&msg(2, true)); // the queue is full
    assert_eq!((d.wanted(), d.in_flight(), d.is_idle()), (1, 0, false));
    assert_eq!(d.poll_dispatch(), Some(1));
    assert_eq!(d.poll_dispatch(), None);
    assert_eq!((d.wanted(), d.in_flight(), d.is_idle()), (0, 1, false));
    d.on_completion(&msg(1, true)); // in flight: drain it again after
    d.on_completion(&msg(1, true)); // already marked
                                    // Drained with nothing left, but marked again: one more round is past
                                    // the one-round limit, so the reconciler takes it.
    d.on_drained(1, 0);
    assert!(d.is_idle());
    d.on_drained(1, 0); // not in flight: ignored
    assert_eq!(
        d.stats(),
        DispatchStats {
            completions: 6,
            dispatched: 1,
            deduplicated: 2,
            handed_to_reconciler: 1,
            dropped_full: 1
        }
    );

    let mut d = DispatchPlanner::new(DispatchLimits {
        max_in_flight: 2,
        max_rounds: 2,
        max_wanted: 8,
    });
    for p in [3, 4, 5] {
        d.on_completion(&msg(p, true));
    }
    assert_eq!(
        (d.poll_dispatch(), d.poll_dispatch(), d.poll_dispatch()),
        (Some(3), Some(4), None)
    );
    // Some left: another round, queued behind 5.
    d.on_drained(3, 7);
    assert_eq!(d.wanted(), 2);
    // Done: nothing more.
    d.on_drained(4, 0);
    assert_eq!(d.poll_dispatch(), Some(5));
    assert_eq!(d.poll_dispatch(), Some(3));
    // The second round of 3 is the last one.
    d.on_drained(3, 1);
    d.on_failed(5);
    d.on_failed(5);
    assert!(d.is_idle());
    assert_eq!(d.stats().handed_to_reconciler, 2);
    assert_eq!(d.stats().dispatched, 4);
    // A reset hands the queue to the reconciler and forgets the marks.
    d.on_completion(&msg(6, true));
    d.on_completion(&msg(7, true));
    assert_eq!(d.poll_dispatch(), Some(6));
    d.on_completion(&msg(6, true));
    d.on_reset();
    assert_eq!((d.wanted(), d.in_flight()), (0, 1));
    assert_eq!(d.stats().handed_to_reconciler, 3);
    d.on_drained(6, 0);
    assert!(d.is_idle());
    assert_eq!(d.stats().handed_to_reconciler, 3);
}

#[test]
fn join_refusals_say_why() {
    let reason = |s: &str| match JoinPolicy::parse(s) {
        Err(ff_core::ParseError::Malformed { reason, .. }) => reason,
        other => panic!("{s}: {other:?}"),
    };
    let nan = "quorum is not a number";
    let range = "quorum must be 1..=10000 without leading zeros";
    assert_eq!(reason("q:"), nan);
    assert_eq!(reason("q:123456"), nan);
    assert_eq!(reason("q:+1"), nan);
    assert_eq!(reason("q:1x"), nan);
    assert_eq!(reason("q:012"), range);
    assert_eq!(reason("q:0"), range);
    assert_eq!(reason("q:10001"), range);
    assert_eq!(reason("some"), "expected all, any or q:<n>");
    match JoinPolicy::quorum(0) {
        Err(ff_core::ParseError::Malformed { value, reason, .. }) => {
            assert_eq!(
                (value.as_str(), reason),
                ("q:0", "quorum must be 1..=10000")
            );
        }
        other => panic!("{other:?}"),
    }
}
