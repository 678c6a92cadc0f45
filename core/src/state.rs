//! The execution state model: the stored dimensions (lifecycle phase,
//! eligibility, terminal outcome, attempt state) and the public state derived
//! from them. The stored spellings are the ones the Lua writes.

use std::fmt;

macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $(#[doc = concat!("Stored as `", $text, "`.")] $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The stored spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            /// The value of a stored spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(
    /// Where an execution is in its life.
    LifecyclePhase {
        Runnable => "runnable",
        Active => "active",
        Suspended => "suspended",
        Terminal => "terminal",
    }
);

str_enum!(
    /// For a runnable execution: may it be claimed now, and if not, why not.
    Eligibility {
        Eligible => "eligible",
        Delayed => "delayed",
        WaitingChildren => "waiting_children",
        BlockedBudget => "blocked_budget",
        BlockedQuota => "blocked_quota",
        BlockedRoute => "blocked_route",
    }
);

str_enum!(
    /// How a terminal execution ended.
    TerminalOutcome {
        Success => "success",
        Failed => "failed",
        Cancelled => "cancelled",
        Expired => "expired",
        Skipped => "skipped",
    }
);

str_enum!(
    /// The state of the current (latest) attempt.
    AttemptState {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        TimedOut => "timed_out",
        Cancelled => "cancelled",
        Reclaimed => "reclaimed",
        Delayed => "delayed",
        Released => "released",
        Suspended => "suspended",
    }
);

str_enum!(
    /// The state users see, derived from the stored dimensions.
    PublicState {
        Waiting => "waiting",
        Delayed => "delayed",
        Active => "active",
        Suspended => "suspended",
        WaitingChildren => "waiting_children",
        RateLimited => "rate_limited",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
        Expired => "expired",
        Skipped => "skipped",
    }
);

/// Who holds the execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Nobody holds it.
    Unowned,
    /// A worker holds a lease on it.
    Leased,
}

/// Why a runnable execution cannot be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockingReason {
    /// Delayed until a due time.
    Delay,
    /// Waiting for its parents in a flow.
    Dependencies,
    /// Blocked by a budget.
    Budget,
    /// Blocked by a quota.
    Quota,
    /// No worker can take its route.
    Route,
}

/// The stored dimensions of one execution's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateVector {
    /// Where it is in its life.
    pub phase: LifecyclePhase,
    /// Runnable executions only: whether it may be claimed.
    pub eligibility: Option<Eligibility>,
    /// Terminal executions only: how it ended.
    pub outcome: Option<TerminalOutcome>,
}

impl StateVector {
    /// Who holds it.
    pub fn ownership(&self) -> Ownership {
        match self.phase {
            LifecyclePhase::Active => Ownership::Leased,
            _ => Ownership::Unowned,
        }
    }

    /// Why a runnable execution cannot be claimed (`None` if it can, or is not runnable).
    pub fn blocking_reason(&self) -> Option<BlockingReason> {
        if self.phase != LifecyclePhase::Runnable {
            return None;
        }
        match self.eligibility? {
            Eligibility::Eligible => None,
            Eligibility::Delayed => Some(BlockingReason::Delay),
            Eligibility::WaitingChildren => Some(BlockingReason::Dependencies),
            Eligibility::BlockedBudget => Some(BlockingReason::Budget),
            Eligibility::BlockedQuota => Some(BlockingReason::Quota),
            Eligibility::BlockedRoute => Some(BlockingReason::Route),
        }
    }

    /// The public state, or `None` when the dimensions contradict each other
    /// (e.g. terminal without an outcome): such a record is malformed.
    pub fn public_state(&self) -> Option<PublicState> {
        Some(match self.phase {
            LifecyclePhase::Active => PublicState::Active,
            LifecyclePhase::Suspended => PublicState::Suspended,
            LifecyclePhase::Terminal => match self.outcome? {
                TerminalOutcome::Success => PublicState::Completed,
                TerminalOutcome::Failed => PublicState::Failed,
                TerminalOutcome::Cancelled => PublicState::Cancelled,
                TerminalOutcome::Expired => PublicState::Expired,
                TerminalOutcome::Skipped => PublicState::Skipped,
            },
            LifecyclePhase::Runnable => match self.eligibility? {
                Eligibility::Eligible | Eligibility::BlockedRoute => PublicState::Waiting,
                Eligibility::Delayed => PublicState::Delayed,
                Eligibility::WaitingChildren => PublicState::WaitingChildren,
                Eligibility::BlockedBudget | Eligibility::BlockedQuota => PublicState::RateLimited,
            },
        })
    }
}

impl PublicState {
    /// Completed, failed, cancelled, expired or skipped: it will not change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            PublicState::Completed
                | PublicState::Failed
                | PublicState::Cancelled
                | PublicState::Expired
                | PublicState::Skipped
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for p in LifecyclePhase::ALL {
            assert_eq!(LifecyclePhase::parse(p.as_str()), Some(*p));
        }
        for p in PublicState::ALL {
            assert_eq!(PublicState::parse(p.as_str()), Some(*p));
        }
        for p in AttemptState::ALL {
            assert_eq!(AttemptState::parse(p.as_str()), Some(*p));
        }
    }

    #[test]
    fn terminal_needs_an_outcome() {
        let v = StateVector {
            phase: LifecyclePhase::Terminal,
            eligibility: None,
            outcome: None,
        };
        assert_eq!(v.public_state(), None);
        let v = StateVector {
            outcome: Some(TerminalOutcome::Skipped),
            ..v
        };
        assert_eq!(v.public_state(), Some(PublicState::Skipped));
        assert!(PublicState::Skipped.is_terminal());
    }
}
