//! Exact counts kept by the transitions themselves: per partition, one hash
//! of executions per (lane, state) and, per minute, one hash of how many of
//! each lane completed, failed for good or failed and were retried.
//!
//! A counter field is `<lane>:<word>` ([`field`]); a series field is
//! `<minute>:<lane>:<kind>` in the hash of its hour; the word is the stored
//! dimension that says the state ([`Counted`]): the eligibility of a runnable
//! execution, the phase of an active or suspended one, the outcome of a
//! terminal one. Lane names cannot hold `:` ([`crate::name`]), so a field
//! splits at its first one. The Lua (prelude.lua's `count`, execution.lua's
//! `count_move`) writes them; the shell sums them over partitions.

use crate::name::Lane;
use crate::state::{Eligibility, LifecyclePhase, PublicState, StateVector, TerminalOutcome};
use std::fmt;

/// The fixed part of a partition's counters: `ff:counts:<tag>` (a hash).
pub const COUNTS_PREFIX: &str = "ff:counts:";
/// The fixed part of a partition's per-minute series, one hash per hour:
/// `ff:series:<tag>:<hour>` (hours since the Unix epoch; so the last hour
/// is two reads per partition, not sixty).
pub const SERIES_PREFIX: &str = "ff:series:";
/// An hour's series hash lives this long after its first write (s): the
/// hour, the hour after it (when it is still in the last 60 minutes) and a
/// little more, then the server drops it.
pub const SERIES_TTL_S: u64 = 7_500;
/// A flow's hash counts its members per live state under
/// `live:<word>` (outcomes are counted under their own names).
pub const FLOW_LIVE_PREFIX: &str = "live:";
/// Minutes a reader asks for at most (the series' history).
pub const SERIES_MINUTES: u64 = 60;

/// The state a counter counts: the stored dimension word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counted {
    /// Runnable, with this eligibility.
    Runnable(Eligibility),
    /// Active (leased).
    Active,
    /// Suspended.
    Suspended,
    /// Terminal, with this outcome.
    Terminal(TerminalOutcome),
}

impl Counted {
    /// Every counted state.
    pub fn all() -> impl Iterator<Item = Counted> {
        Eligibility::ALL
            .iter()
            .map(|e| Counted::eligibility(*e))
            .chain([Counted::Active, Counted::Suspended])
            .chain(TerminalOutcome::ALL.iter().map(|o| Counted::outcome(*o)))
    }

    /// Runnable with `e`.
    pub fn eligibility(e: Eligibility) -> Self {
        Counted::Runnable(e)
    }

    /// Terminal with `o`.
    pub fn outcome(o: TerminalOutcome) -> Self {
        Counted::Terminal(o)
    }

    /// What a record in `s` is counted as; `None` for a runnable record not
    /// yet placed (a flow member between its create and its placement).
    pub fn of(s: &StateVector) -> Option<Self> {
        Some(match s.phase {
            LifecyclePhase::Runnable => Counted::eligibility(s.eligibility?),
            LifecyclePhase::Active => Counted::Active,
            LifecyclePhase::Suspended => Counted::Suspended,
            LifecyclePhase::Terminal => Counted::outcome(s.outcome?),
        })
    }

    /// The word stored in the field.
    pub fn word(self) -> &'static str {
        match self {
            Counted::Runnable(e) => e.as_str(),
            Counted::Active => LifecyclePhase::Active.as_str(),
            Counted::Suspended => LifecyclePhase::Suspended.as_str(),
            Counted::Terminal(o) => o.as_str(),
        }
    }

    /// The state a word stands for.
    pub fn parse(word: &str) -> Option<Self> {
        Counted::all().find(|c| c.word() == word)
    }

    /// The public state it is part of.
    pub fn public_state(self) -> PublicState {
        let s = match self {
            Counted::Runnable(e) => StateVector {
                phase: LifecyclePhase::Runnable,
                eligibility: Some(e),
                outcome: None,
            },
            Counted::Active => StateVector {
                phase: LifecyclePhase::Active,
                eligibility: None,
                outcome: None,
            },
            Counted::Suspended => StateVector {
                phase: LifecyclePhase::Suspended,
                eligibility: None,
                outcome: None,
            },
            Counted::Terminal(o) => StateVector {
                phase: LifecyclePhase::Terminal,
                eligibility: None,
                outcome: Some(o),
            },
        };
        s.public_state()
            .expect("every counted state has a public state")
    }
}

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// A counter's field: `<lane>:<word>`.
pub fn field(lane: &Lane, c: Counted) -> String {
    format!("{}:{}", lane.as_str(), c.word())
}

/// A counter field's lane and state; `None` when it is not one.
pub fn parse_field(f: &str) -> Option<(Lane, Counted)> {
    let (lane, word) = f.split_once(':')?;
    Some((Lane::new(lane).ok()?, Counted::parse(word)?))
}

/// What a minute's series counts per lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SeriesKind {
    /// Completed.
    Completed,
    /// Failed for good (retries spent or a fatal failure).
    Failed,
    /// Failed and scheduled to run again.
    Retried,
}

impl SeriesKind {
    /// Every kind.
    pub const ALL: [SeriesKind; 3] = [
        SeriesKind::Completed,
        SeriesKind::Failed,
        SeriesKind::Retried,
    ];

    /// The word stored in the field (`<lane>:<word>`).
    pub fn word(self) -> &'static str {
        match self {
            SeriesKind::Completed => "completed",
            SeriesKind::Failed => "failed",
            SeriesKind::Retried => "retried",
        }
    }

    /// The kind a word stands for.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.word() == word)
    }
}

/// A series field: `<minute>:<lane>:<kind>`.
pub fn series_field(minute: u64, lane: &Lane, kind: SeriesKind) -> String {
    format!("{minute}:{}:{}", lane.as_str(), kind.word())
}

/// A series field's minute, lane and kind; `None` when it is not one.
pub fn parse_series_field(f: &str) -> Option<(u64, Lane, SeriesKind)> {
    let (minute, rest) = f.split_once(':')?;
    let (lane, word) = rest.split_once(':')?;
    Some((
        minute.parse().ok()?,
        Lane::new(lane).ok()?,
        SeriesKind::parse(word)?,
    ))
}

/// The minute (since the Unix epoch) of a time in ms.
pub fn minute_of(ms: u64) -> u64 {
    ms / 60_000
}

/// The hour (since the Unix epoch) a minute is in.
pub fn hour_of_minute(minute: u64) -> u64 {
    minute / 60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_parses_back_and_words_are_distinct() {
        let all: Vec<_> = Counted::all().collect();
        assert_eq!(
            all.len(),
            Eligibility::ALL.len() + 2 + TerminalOutcome::ALL.len()
        );
        for c in &all {
            assert_eq!(Counted::parse(c.word()), Some(*c), "{c}");
        }
        let mut words: Vec<_> = all.iter().map(|c| c.word()).collect();
        words.sort();
        words.dedup();
        assert_eq!(words.len(), all.len());
    }

    #[test]
    fn fields_split_at_the_lane() {
        let lane = Lane::new("mail.eu-1").unwrap();
        let c = Counted::eligibility(Eligibility::WaitingChildren);
        assert_eq!(field(&lane, c), "mail.eu-1:waiting_children");
        assert_eq!(parse_field("mail.eu-1:waiting_children"), Some((lane, c)));
        assert_eq!(parse_field("mail:runnable"), None);
        assert_eq!(parse_field("mail"), None);
        assert_eq!(parse_field(":active"), None);
        let x = Lane::new("x").unwrap();
        assert_eq!(
            series_field(29_000_123, &x, SeriesKind::Retried),
            "29000123:x:retried"
        );
        assert_eq!(
            parse_series_field("29000123:x:retried"),
            Some((29_000_123, x, SeriesKind::Retried))
        );
        assert_eq!(parse_series_field("1:x:success"), None);
        assert_eq!(parse_series_field("x:retried"), None);
        assert_eq!(parse_series_field("-1:x:retried"), None);
    }

    #[test]
    fn counted_states_map_to_their_public_states() {
        use PublicState::*;
        let want = [
            ("eligible", Waiting),
            ("blocked_route", Waiting),
            ("delayed", Delayed),
            ("waiting_children", WaitingChildren),
            ("blocked_budget", RateLimited),
            ("blocked_quota", RateLimited),
            ("active", Active),
            ("suspended", Suspended),
            ("success", Completed),
            ("failed", Failed),
            ("cancelled", Cancelled),
            ("expired", Expired),
            ("skipped", Skipped),
        ];
        for (w, p) in want {
            assert_eq!(Counted::parse(w).map(Counted::public_state), Some(p), "{w}");
        }
        let unplaced = StateVector {
            phase: LifecyclePhase::Runnable,
            eligibility: None,
            outcome: None,
        };
        assert_eq!(Counted::of(&unplaced), None);
        let sv = |phase, eligibility, outcome| StateVector {
            phase,
            eligibility,
            outcome,
        };
        use LifecyclePhase as L;
        assert_eq!(
            Counted::of(&sv(L::Runnable, Some(Eligibility::Delayed), None)),
            Some(Counted::Runnable(Eligibility::Delayed))
        );
        assert_eq!(
            Counted::of(&sv(L::Active, None, None)),
            Some(Counted::Active)
        );
        assert_eq!(
            Counted::of(&sv(L::Suspended, None, None)),
            Some(Counted::Suspended)
        );
        assert_eq!(
            Counted::of(&sv(L::Terminal, None, Some(TerminalOutcome::Skipped))),
            Some(Counted::Terminal(TerminalOutcome::Skipped))
        );
        assert_eq!(Counted::of(&sv(L::Terminal, None, None)), None);
        assert_eq!(Counted::Active.to_string(), "active");
    }

    #[test]
    fn minutes() {
        assert_eq!(minute_of(0), 0);
        assert_eq!(minute_of(59_999), 0);
        assert_eq!(minute_of(60_000), 1);
        assert_eq!(hour_of_minute(59), 0);
        assert_eq!(hour_of_minute(60), 1);
    }
}
