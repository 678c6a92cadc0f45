//! Where to look for the executions of a public state: the index that
//! already holds them (its cardinality answers counts, its members list
//! them), or the partition's `all` set where no index does (a suspended
//! execution without a timeout is in none).

use crate::state::PublicState;

/// A place executions of one state are listed from, per partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The lane's eligible index.
    Eligible,
    /// A sorted-set index of the partition, by name.
    Index(&'static str),
    /// The partition's `all` set (every record read and filtered).
    All,
}

/// Where executions in `state` are, per partition; terminal ones are in the
/// `terminal` index (listed newest first), filtered by outcome.
pub fn sources(state: PublicState) -> &'static [Source] {
    use PublicState::*;
    use Source::*;
    match state {
        Waiting => &[Eligible, Index("blocked_route")],
        Delayed => &[Index("delayed")],
        Active => &[Index("lease_expiry")],
        Suspended => &[All],
        WaitingChildren => &[Index("waiting_children")],
        RateLimited => &[Index("blocked_budget"), Index("blocked_quota")],
        Completed | Failed | Cancelled | Expired | Skipped => &[Index("terminal")],
    }
}

/// Whether a source lists newest first (terminal executions).
pub fn newest_first(source: Source) -> bool {
    source == Source::Index("terminal")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariant::state_index;
    use crate::state::{Eligibility, LifecyclePhase, StateVector, TerminalOutcome};

    /// Every state's index (by the invariant's rule) is among its sources.
    #[test]
    fn the_sources_follow_the_index_rule() {
        for phase in LifecyclePhase::ALL {
            let eligs: Vec<Option<Eligibility>> = if *phase == LifecyclePhase::Runnable {
                Eligibility::ALL.iter().copied().map(Some).collect()
            } else {
                vec![None]
            };
            let outcomes: Vec<Option<TerminalOutcome>> = if *phase == LifecyclePhase::Terminal {
                TerminalOutcome::ALL.iter().copied().map(Some).collect()
            } else {
                vec![None]
            };
            for e in &eligs {
                for o in &outcomes {
                    let v = StateVector {
                        phase: *phase,
                        eligibility: *e,
                        outcome: *o,
                    };
                    let public = v.public_state().expect("a public state");
                    let want = match state_index(*phase, *e) {
                        Some("eligible") => Source::Eligible,
                        Some(name) => Source::Index(name),
                        None => Source::All,
                    };
                    let have = sources(public);
                    assert!(
                        have.contains(&want) || have.contains(&Source::All),
                        "{v:?} ({public}) is in {want:?}, not listed from {have:?}"
                    );
                }
            }
        }
    }
}
