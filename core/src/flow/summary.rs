//! A flow's summary: the counters the Lua keeps in the flow's record as its
//! members are added and end, and the flow state derived from them.

use std::fmt;

/// The flow record's counters, exactly as the Lua keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowSummary {
    /// Members added.
    pub members: u64,
    /// Members that ended (any outcome, skipped included).
    pub done: u64,
    /// Members that ended with success.
    pub success: u64,
    /// Members that ended failed.
    pub failed: u64,
    /// Members that ended cancelled.
    pub cancelled: u64,
    /// Members that ended expired.
    pub expired: u64,
    /// Members skipped because their join became impossible.
    pub skipped: u64,
    /// The flow was asked to cancel.
    pub cancel_requested: bool,
}

/// The state of a flow, derived from its summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowState {
    /// No members yet.
    Open,
    /// Some members have not ended.
    Running,
    /// Cancel requested; some members have not ended.
    Cancelling,
    /// Every member ended, none failed or expired.
    Completed,
    /// Every member ended, at least one failed or expired.
    Failed,
    /// Cancel requested and every member ended (or there were none).
    Cancelled,
}

impl FlowState {
    /// Every state, for tests and exhaustive checks.
    pub const ALL: &'static [FlowState] = &[
        FlowState::Open,
        FlowState::Running,
        FlowState::Cancelling,
        FlowState::Completed,
        FlowState::Failed,
        FlowState::Cancelled,
    ];

    /// The spelling users see.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowState::Open => "open",
            FlowState::Running => "running",
            FlowState::Cancelling => "cancelling",
            FlowState::Completed => "completed",
            FlowState::Failed => "failed",
            FlowState::Cancelled => "cancelled",
        }
    }

    /// Completed, Failed or Cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            FlowState::Completed | FlowState::Failed | FlowState::Cancelled
        )
    }
}

impl fmt::Display for FlowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FlowSummary {
    /// Members that have not ended (0 for inconsistent counters).
    pub fn running(&self) -> u64 {
        self.members.saturating_sub(self.done)
    }

    /// `done <= members` and the per-outcome counters add up to `done`.
    pub fn is_consistent(&self) -> bool {
        let sum = [
            self.success,
            self.failed,
            self.cancelled,
            self.expired,
            self.skipped,
        ]
        .iter()
        .map(|&n| u128::from(n))
        .sum::<u128>();
        self.done <= self.members && sum == u128::from(self.done)
    }

    /// The flow's state. An empty flow is Open (Cancelled once cancel is
    /// requested); a cancelled flow is Cancelled whatever its members' outcomes.
    pub fn state(&self) -> FlowState {
        if self.members == 0 {
            if self.cancel_requested {
                FlowState::Cancelled
            } else {
                FlowState::Open
            }
        } else if self.done < self.members {
            if self.cancel_requested {
                FlowState::Cancelling
            } else {
                FlowState::Running
            }
        } else if self.cancel_requested {
            FlowState::Cancelled
        } else if self.failed > 0 || self.expired > 0 {
            FlowState::Failed
        } else {
            FlowState::Completed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ended(success: u64, failed: u64, cancelled: u64, expired: u64, skipped: u64) -> FlowSummary {
        let done = success + failed + cancelled + expired + skipped;
        FlowSummary {
            members: done,
            done,
            success,
            failed,
            cancelled,
            expired,
            skipped,
            cancel_requested: false,
        }
    }

    #[test]
    fn states() {
        assert_eq!(FlowSummary::default().state(), FlowState::Open);
        let cancel = FlowSummary {
            cancel_requested: true,
            ..FlowSummary::default()
        };
        assert_eq!(cancel.state(), FlowState::Cancelled);
        let running = FlowSummary {
            members: 3,
            done: 1,
            success: 1,
            ..FlowSummary::default()
        };
        assert_eq!(running.state(), FlowState::Running);
        assert_eq!(running.running(), 2);
        let cancelling = FlowSummary {
            cancel_requested: true,
            ..running
        };
        assert_eq!(cancelling.state(), FlowState::Cancelling);
        assert_eq!(ended(3, 0, 0, 0, 0).state(), FlowState::Completed);
        assert_eq!(
            ended(1, 0, 1, 0, 2).state(),
            FlowState::Completed,
            "cancelled and skipped members do not fail the flow"
        );
        assert_eq!(ended(2, 1, 0, 0, 0).state(), FlowState::Failed);
        assert_eq!(ended(2, 0, 0, 1, 0).state(), FlowState::Failed);
        let done_after_cancel = FlowSummary {
            cancel_requested: true,
            ..ended(0, 1, 2, 0, 0)
        };
        assert_eq!(done_after_cancel.state(), FlowState::Cancelled);
        let spellings: Vec<&str> = FlowState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            spellings,
            [
                "open",
                "running",
                "cancelling",
                "completed",
                "failed",
                "cancelled"
            ]
        );
    }

    #[test]
    fn consistency() {
        assert!(ended(1, 2, 3, 4, 5).is_consistent());
        let mut s = ended(1, 1, 0, 0, 0);
        s.members = 5;
        assert!(s.is_consistent());
        s.done = 6;
        assert!(!s.is_consistent(), "done above members");
        let mut s = ended(1, 1, 0, 0, 0);
        s.success = 2;
        assert!(!s.is_consistent(), "outcomes above done");
        let huge = FlowSummary {
            members: u64::MAX,
            done: u64::MAX,
            success: u64::MAX,
            failed: 1,
            ..FlowSummary::default()
        };
        assert!(!huge.is_consistent(), "the sum does not wrap");
        assert_eq!(
            FlowSummary {
                done: 3,
                ..FlowSummary::default()
            }
            .running(),
            0
        );
    }

    proptest! {
        /// A flow is terminal exactly when it has members and all ended, or it
        /// is an empty cancelled one; cancel always wins over failure.
        #[test]
        fn state_laws(members in 0u64..6, outcomes in prop::collection::vec(0u8..5, 0..6), cancel in any::<bool>()) {
            let mut s = FlowSummary { members, cancel_requested: cancel, ..FlowSummary::default() };
            for o in outcomes.iter().take(members as usize) {
                s.done += 1;
                match o {
                    0 => s.success += 1,
                    1 => s.failed += 1,
                    2 => s.cancelled += 1,
                    3 => s.expired += 1,
                    _ => s.skipped += 1,
                }
            }
            prop_assert!(s.is_consistent());
            let st = s.state();
            prop_assert_eq!(st.is_terminal(), (members > 0 && s.done == members) || (members == 0 && cancel));
            if cancel { prop_assert!(matches!(st, FlowState::Cancelled | FlowState::Cancelling)); }
            if st == FlowState::Failed { prop_assert!(s.failed + s.expired > 0); }
            prop_assert_eq!(s.running(), members - s.done);
        }
    }
}
