//! Join policies: when a flow member whose parents end one by one becomes
//! ready, or can never become ready.
//!
//! The Lua data plane keeps per-member edge counters and applies the same
//! rules when a parent's ending resolves an edge; this is the reference the
//! tests hold it to.

use crate::error::ParseError;
use std::fmt;

/// Largest `n` of [`JoinPolicy::Quorum`] (keeps the encoding short and the
/// Lua arithmetic trivially exact).
pub const MAX_QUORUM: u32 = 10_000;

/// How a member's incoming edges combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinPolicy {
    /// Every parent must succeed.
    AllOf,
    /// One successful parent is enough.
    AnyOf,
    /// At least `n` parents must succeed (`1 <= n <= MAX_QUORUM`).
    Quorum(u32),
}

/// A member's incoming edges, by resolution. Consistent counts have
/// `satisfied + impossible <= total`; the rest are unresolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EdgeCounts {
    /// Incoming edges.
    pub total: u32,
    /// Edges whose parent succeeded.
    pub satisfied: u32,
    /// Edges whose parent ended any other way (or was skipped).
    pub impossible: u32,
}

impl EdgeCounts {
    /// `satisfied + impossible <= total` (no overflow).
    pub fn is_consistent(&self) -> bool {
        u64::from(self.satisfied) + u64::from(self.impossible) <= u64::from(self.total)
    }

    /// Edges not resolved yet (0 for inconsistent counts).
    pub fn unresolved(&self) -> u32 {
        self.total
            .saturating_sub(self.satisfied)
            .saturating_sub(self.impossible)
    }
}

/// What the join says about a member now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinDecision {
    /// Not decided: unresolved edges could still go either way.
    Waiting,
    /// The member may run.
    Ready,
    /// The member can never run (it is skipped).
    Impossible,
}

impl JoinPolicy {
    /// `Quorum(n)`, checked against `1..=MAX_QUORUM`.
    pub fn quorum(n: u32) -> Result<Self, ParseError> {
        if (1..=MAX_QUORUM).contains(&n) {
            Ok(JoinPolicy::Quorum(n))
        } else {
            Err(ParseError::Malformed {
                kind: "join policy",
                value: format!("q:{n}"),
                reason: "quorum must be 1..=10000",
            })
        }
    }

    /// The stored spelling: `all`, `any` or `q:<n>`.
    pub fn encode(&self) -> String {
        match self {
            JoinPolicy::AllOf => "all".to_owned(),
            JoinPolicy::AnyOf => "any".to_owned(),
            JoinPolicy::Quorum(n) => format!("q:{n}"),
        }
    }

    /// Parse the stored spelling. Only the canonical form is accepted (no
    /// sign, no leading zero), so `parse(s)?.encode() == s`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let bad = |reason| ParseError::Malformed {
            kind: "join policy",
            value: s.chars().take(80).collect(),
            reason,
        };
        match s {
            "all" => return Ok(JoinPolicy::AllOf),
            "any" => return Ok(JoinPolicy::AnyOf),
            _ => {}
        }
        let n = s
            .strip_prefix("q:")
            .ok_or_else(|| bad("expected all, any or q:<n>"))?;
        if n.is_empty() || n.len() > 5 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("quorum is not a number"));
        }
        if n.starts_with('0') {
            return Err(bad("quorum must be 1..=10000 without leading zeros"));
        }
        let n: u32 = n.parse().map_err(|_| bad("quorum is not a number"))?;
        if n > MAX_QUORUM {
            return Err(bad("quorum must be 1..=10000 without leading zeros"));
        }
        Ok(JoinPolicy::Quorum(n))
    }

    /// Decide from the counts. Ready is checked before Impossible (they
    /// cannot both hold for consistent counts). A member without incoming
    /// edges is Ready whatever its policy; a quorum larger than the edges is
    /// Impossible as soon as there is one edge.
    pub fn decide(&self, c: EdgeCounts) -> JoinDecision {
        if c.total == 0 {
            return JoinDecision::Ready;
        }
        let (ready, impossible) = match *self {
            JoinPolicy::AllOf => (c.satisfied == c.total, c.impossible > 0),
            JoinPolicy::AnyOf => (c.satisfied >= 1, c.impossible == c.total),
            JoinPolicy::Quorum(k) => (c.satisfied >= k, c.total.saturating_sub(c.impossible) < k),
        };
        if ready {
            JoinDecision::Ready
        } else if impossible {
            JoinDecision::Impossible
        } else {
            JoinDecision::Waiting
        }
    }
}

impl fmt::Display for JoinPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use JoinDecision::{Impossible, Ready, Waiting};

    fn c(total: u32, satisfied: u32, impossible: u32) -> EdgeCounts {
        EdgeCounts {
            total,
            satisfied,
            impossible,
        }
    }

    #[test]
    fn decisions() {
        let all = JoinPolicy::AllOf;
        let any = JoinPolicy::AnyOf;
        let q2 = JoinPolicy::Quorum(2);
        for p in [all, any, q2, JoinPolicy::Quorum(7)] {
            assert_eq!(p.decide(c(0, 0, 0)), Ready, "{p}: no edges");
        }
        assert_eq!(all.decide(c(3, 2, 0)), Waiting);
        assert_eq!(all.decide(c(3, 3, 0)), Ready);
        assert_eq!(all.decide(c(3, 2, 1)), Impossible);
        assert_eq!(all.decide(c(3, 0, 1)), Impossible, "decided early");
        assert_eq!(any.decide(c(3, 0, 2)), Waiting);
        assert_eq!(any.decide(c(3, 1, 0)), Ready, "decided early");
        assert_eq!(any.decide(c(3, 0, 3)), Impossible);
        assert_eq!(q2.decide(c(4, 1, 1)), Waiting);
        assert_eq!(q2.decide(c(4, 2, 0)), Ready);
        assert_eq!(q2.decide(c(4, 1, 3)), Impossible);
        assert_eq!(q2.decide(c(4, 0, 2)), Waiting, "two left, two needed");
        assert_eq!(q2.decide(c(4, 0, 3)), Impossible);
        assert_eq!(q2.decide(c(1, 0, 0)), Impossible, "quorum above the edges");
    }

    #[test]
    fn spellings() {
        for (s, p) in [
            ("all", JoinPolicy::AllOf),
            ("any", JoinPolicy::AnyOf),
            ("q:1", JoinPolicy::Quorum(1)),
            ("q:10000", JoinPolicy::Quorum(MAX_QUORUM)),
        ] {
            assert_eq!(JoinPolicy::parse(s), Ok(p));
            assert_eq!(p.encode(), s);
        }
        for bad in [
            "", "All", "q:", "q:0", "q:01", "q:10001", "q:+1", "q:-1", "q:1 ", "q:99999",
            "q:100000", "q:x", "quorum:2", "any ",
        ] {
            assert!(JoinPolicy::parse(bad).is_err(), "{bad:?}");
        }
        assert!(JoinPolicy::quorum(0).is_err());
        assert!(JoinPolicy::quorum(MAX_QUORUM + 1).is_err());
        assert_eq!(JoinPolicy::quorum(3), Ok(JoinPolicy::Quorum(3)));
    }

    fn policy() -> impl Strategy<Value = JoinPolicy> {
        prop_oneof![
            Just(JoinPolicy::AllOf),
            Just(JoinPolicy::AnyOf),
            (1u32..8).prop_map(JoinPolicy::Quorum),
        ]
    }

    /// Consistent counts over up to 8 edges.
    fn counts() -> impl Strategy<Value = EdgeCounts> {
        (0u32..8)
            .prop_flat_map(|t| (Just(t), 0..=t))
            .prop_flat_map(|(t, s)| (Just(t), Just(s), 0..=t - s))
            .prop_map(|(t, s, i)| c(t, s, i))
    }

    proptest! {
        #[test]
        fn parse_round_trips(p in policy(), s in ".{0,12}") {
            prop_assert_eq!(JoinPolicy::parse(&p.encode()), Ok(p));
            if let Ok(q) = JoinPolicy::parse(&s) {
                prop_assert_eq!(q.encode(), s);
            }
        }

        /// One rule for all policies: `need` successes make it Ready, and it
        /// is Impossible once fewer than `need` edges can still succeed.
        #[test]
        fn agrees_with_the_need_model(p in policy(), c in counts()) {
            let need = match p {
                JoinPolicy::AllOf => c.total,
                JoinPolicy::AnyOf => 1,
                JoinPolicy::Quorum(k) => k,
            };
            let want = if c.total == 0 || c.satisfied >= need {
                Ready
            } else if c.total - c.impossible < need {
                Impossible
            } else {
                Waiting
            };
            prop_assert_eq!(p.decide(c), want);
        }

        /// Resolving one more edge, either way, never takes back a decision,
        /// and once every edge is resolved the join has decided.
        #[test]
        fn decisions_are_final(p in policy(), c0 in counts(), succeed in any::<bool>()) {
            let d0 = p.decide(c0);
            if c0.unresolved() == 0 {
                prop_assert_ne!(d0, Waiting);
                return Ok(());
            }
            let mut c1 = c0;
            if succeed { c1.satisfied += 1 } else { c1.impossible += 1 }
            let d1 = p.decide(c1);
            if d0 != Waiting {
                prop_assert_eq!(d1, d0);
            } else if succeed {
                // A success never makes a waiting member Impossible...
                prop_assert_ne!(d1, Impossible);
            } else {
                // ...and a failure never makes it Ready.
                prop_assert_ne!(d1, Ready);
            }
        }
    }
}
