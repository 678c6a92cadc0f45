//! Completion messages and the dispatch planner of the engine's completion
//! listener.
//!
//! When a flow member ends, the Lua resolves its outgoing edges in the same
//! call when there are few; what is left (a large fan-out, a cascade of
//! skips) goes to a durable per-partition work index, and the message the
//! Lua publishes on [`COMPLETION_CHANNEL`] says so (`pending`). The listener
//! feeds those messages to a [`DispatchPlanner`], which decides which
//! partition to drain next; the shell performs the drain calls and reports
//! back. The planner is sans-I/O (events in, actions polled out), holds
//! bounded memory, and never retries on its own: whatever it gives up on
//! stays in the work index, which the reconciler scanner drains as a net.

use crate::error::ParseError;
use crate::id::ExecutionId;
use crate::state::TerminalOutcome;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The channel the Lua publishes completion messages on.
pub const COMPLETION_CHANNEL: &str = "ff:done";

/// A flow member ended: `<execution id> <outcome> <0|1>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionMessage {
    /// The member that ended.
    pub execution: ExecutionId,
    /// How it ended.
    pub outcome: TerminalOutcome,
    /// The member's partition still has flow work queued (`1`).
    pub pending: bool,
}

impl CompletionMessage {
    /// Parse a message as published. Total: any bytes give a value or an error.
    pub fn parse(msg: &[u8]) -> Result<Self, ParseError> {
        let text = String::from_utf8_lossy(msg);
        let bad = |reason| ParseError::Malformed {
            kind: "completion message",
            value: text.chars().take(80).collect(),
            reason,
        };
        if std::str::from_utf8(msg).is_err() {
            return Err(bad("not UTF-8"));
        }
        let mut it = text.split(' ');
        let (Some(eid), Some(outcome), Some(pending), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(bad("expected <execution id> <outcome> <0|1>"));
        };
        let execution = ExecutionId::parse(eid)?;
        let outcome = TerminalOutcome::parse(outcome).ok_or_else(|| bad("unknown outcome"))?;
        let pending = match pending {
            "0" => false,
            "1" => true,
            _ => return Err(bad("pending flag is not 0 or 1")),
        };
        Ok(Self {
            execution,
            outcome,
            pending,
        })
    }

    /// The message as the Lua publishes it.
    pub fn encode(&self) -> String {
        format!(
            "{} {} {}",
            self.execution,
            self.outcome,
            u8::from(self.pending)
        )
    }
}

/// The planner's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchLimits {
    /// Most drains in flight at once (over all partitions).
    pub max_in_flight: usize,
    /// Most back-to-back drains of one partition (a burst) before the rest is
    /// left to the reconciler.
    pub max_rounds: u32,
    /// Most partitions waiting for a drain; beyond it they are left to the
    /// reconciler.
    pub max_wanted: usize,
}

impl Default for DispatchLimits {
    fn default() -> Self {
        Self {
            max_in_flight: 16,
            max_rounds: 64,
            max_wanted: 4096,
        }
    }
}

/// What the planner did so far (monotonic counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DispatchStats {
    /// Completion messages seen (pending or not).
    pub completions: u64,
    /// Drains handed out by [`DispatchPlanner::poll_dispatch`].
    pub dispatched: u64,
    /// Pending messages that asked for nothing new: the partition was
    /// already waiting, or already had its one extra drain after the current.
    pub deduplicated: u64,
    /// Partitions given up with work possibly left: a burst reached
    /// `max_rounds`, a drain failed, or a reset dropped them while waiting.
    pub handed_to_reconciler: u64,
    /// Partitions not queued because `max_wanted` were already waiting.
    pub dropped_full: u64,
}

/// One drain in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flight {
    /// Its place in the partition's burst, from 1.
    round: u32,
    /// A pending message arrived meanwhile: drain once more afterwards.
    again: bool,
}

/// Decides which partition's flow work to drain next. See the module docs.
#[derive(Debug, Clone)]
pub struct DispatchPlanner {
    limits: DispatchLimits,
    /// Partitions waiting for a drain, with the round that drain will be,
    /// oldest first. Never in flight at the same time.
    wanted: VecDeque<(u16, u32)>,
    /// The partitions of `wanted`, for lookups.
    queued: BTreeSet<u16>,
    in_flight: BTreeMap<u16, Flight>,
    stats: DispatchStats,
}

impl DispatchPlanner {
    /// A planner with these limits (each raised to at least 1).
    pub fn new(limits: DispatchLimits) -> Self {
        Self {
            limits: DispatchLimits {
                max_in_flight: limits.max_in_flight.max(1),
                max_rounds: limits.max_rounds.max(1),
                max_wanted: limits.max_wanted.max(1),
            },
            wanted: VecDeque::new(),
            queued: BTreeSet::new(),
            in_flight: BTreeMap::new(),
            stats: DispatchStats::default(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> DispatchLimits {
        self.limits
    }

    /// A completion message arrived. Pending: its partition wants a drain
    /// (once more after the current one, if one is in flight).
    pub fn on_completion(&mut self, msg: &CompletionMessage) {
        self.stats.completions += 1;
        if !msg.pending {
            return;
        }
        let p = msg.execution.partition_index();
        if let Some(f) = self.in_flight.get_mut(&p) {
            if f.again {
                self.stats.deduplicated += 1;
            } else {
                f.again = true;
            }
        } else if self.queued.contains(&p) {
            self.stats.deduplicated += 1;
        } else {
            self.enqueue(p, 1);
        }
    }

    /// The next partition to drain, if any may start now: the one waiting
    /// longest, while fewer than `max_in_flight` drains are in flight.
    pub fn poll_dispatch(&mut self) -> Option<u16> {
        if self.in_flight.len() >= self.limits.max_in_flight {
            return None;
        }
        let (p, round) = self.wanted.pop_front()?;
        self.queued.remove(&p);
        self.in_flight.insert(
            p,
            Flight {
                round,
                again: false,
            },
        );
        self.stats.dispatched += 1;
        Some(p)
    }

    /// A drain of `partition` finished with `remaining` work items left.
    /// Work left, or a message that arrived meanwhile, means one more drain
    /// (queued behind the partitions already waiting), unless the burst has
    /// had `max_rounds` drains: then it is the reconciler's. A report for a
    /// partition not in flight is ignored.
    pub fn on_drained(&mut self, partition: u16, remaining: u64) {
        let Some(f) = self.in_flight.remove(&partition) else {
            return;
        };
        if remaining == 0 && !f.again {
            return;
        }
        if f.round >= self.limits.max_rounds {
            self.stats.handed_to_reconciler += 1;
        } else {
            self.enqueue(partition, f.round + 1);
        }
    }

    /// A drain of `partition` failed: the reconciler takes it from here (a
    /// retry here would hammer a store that is failing). A report for a
    /// partition not in flight is ignored.
    pub fn on_failed(&mut self, partition: u16) {
        if self.in_flight.remove(&partition).is_some() {
            self.stats.handed_to_reconciler += 1;
        }
    }

    /// The listener reconnected: messages may have been lost, and those are
    /// the reconciler's, so the planner forgets what it wanted (the waiting
    /// partitions and the extra drains asked for during a flight). Drains in
    /// flight stay tracked until they report.
    pub fn on_reset(&mut self) {
        self.stats.handed_to_reconciler += self.wanted.len() as u64;
        self.wanted.clear();
        self.queued.clear();
        for f in self.in_flight.values_mut() {
            f.again = false;
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> DispatchStats {
        self.stats
    }

    /// Drains in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Partitions waiting for a drain.
    pub fn wanted(&self) -> usize {
        self.wanted.len()
    }

    /// Nothing waiting and nothing in flight.
    pub fn is_idle(&self) -> bool {
        self.wanted.is_empty() && self.in_flight.is_empty()
    }

    fn enqueue(&mut self, p: u16, round: u32) {
        if self.wanted.len() >= self.limits.max_wanted {
            self.stats.dropped_full += 1;
        } else {
            self.wanted.push_back((p, round));
            self.queued.insert(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn done(p: u16, pending: bool) -> CompletionMessage {
        CompletionMessage {
            execution: ExecutionId::new(p, 0xabcd),
            outcome: TerminalOutcome::Success,
            pending,
        }
    }

    fn planner(max_in_flight: usize, max_rounds: u32, max_wanted: usize) -> DispatchPlanner {
        DispatchPlanner::new(DispatchLimits {
            max_in_flight,
            max_rounds,
            max_wanted,
        })
    }

    #[test]
    fn messages_round_trip() {
        let m = CompletionMessage {
            execution: ExecutionId::new(17, 1),
            outcome: TerminalOutcome::Failed,
            pending: true,
        };
        let text = "{fp:17}:00000000000000000000000000000001 failed 1";
        assert_eq!(m.encode(), text);
        assert_eq!(CompletionMessage::parse(text.as_bytes()), Ok(m));
        let ok = "{fp:0}:0000000000000000000000000000000a skipped 0";
        let m = CompletionMessage::parse(ok.as_bytes()).unwrap();
        assert!(!m.pending);
        assert_eq!(m.outcome, TerminalOutcome::Skipped);
        assert_eq!(m.execution.partition_index(), 0);
        for bad in [
            &b""[..],
            b"{fp:0}:0000000000000000000000000000000a",
            b"{fp:0}:0000000000000000000000000000000a success",
            b"{fp:0}:0000000000000000000000000000000a success 2",
            b"{fp:0}:0000000000000000000000000000000a success 1 x",
            b"{fp:0}:0000000000000000000000000000000a success  1",
            b"{fp:0}:0000000000000000000000000000000a done 1",
            b"{fp:0}:0000000000000000000000000000000A success 1",
            b"{fp:70000}:0000000000000000000000000000000a success 1",
            b"{fp:0}:0000000000000000000000000000000a success \xff",
            b"\xff\xfe",
        ] {
            assert!(CompletionMessage::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fifo_bounded_and_never_twice_in_flight() {
        let mut d = planner(2, 64, 100);
        for p in [5, 3, 5, 9] {
            d.on_completion(&done(p, true));
        }
        d.on_completion(&done(1, false));
        assert_eq!(d.stats().deduplicated, 1, "5 was already waiting");
        assert_eq!(d.poll_dispatch(), Some(5));
        assert_eq!(d.poll_dispatch(), Some(3));
        assert_eq!(d.poll_dispatch(), None, "two in flight");
        d.on_completion(&done(5, true));
        d.on_completion(&done(5, true));
        d.on_completion(&done(5, true));
        assert_eq!(
            d.stats().deduplicated,
            3,
            "one extra drain for 5, two deduplicated"
        );
        d.on_drained(5, 0);
        assert_eq!(d.poll_dispatch(), Some(9));
        assert_eq!(d.poll_dispatch(), None);
        d.on_drained(3, 0);
        assert_eq!(d.poll_dispatch(), Some(5), "the extra drain");
        d.on_drained(5, 0);
        d.on_drained(9, 0);
        assert!(d.is_idle());
        assert_eq!(d.poll_dispatch(), None);
        let s = d.stats();
        assert_eq!(
            (s.completions, s.dispatched, s.handed_to_reconciler),
            (8, 4, 0)
        );
    }

    #[test]
    fn bursts_end_at_max_rounds() {
        let mut d = planner(4, 3, 100);
        d.on_completion(&done(7, true));
        for _ in 0..3 {
            assert_eq!(d.poll_dispatch(), Some(7));
            d.on_drained(7, 1000);
        }
        assert_eq!(d.poll_dispatch(), None);
        assert!(d.is_idle());
        assert_eq!(d.stats().handed_to_reconciler, 1);
        // A new message starts a new burst.
        d.on_completion(&done(7, true));
        assert_eq!(d.poll_dispatch(), Some(7));
        d.on_drained(7, 0);
        assert!(d.is_idle());
    }

    #[test]
    fn failures_resets_and_a_full_queue_hand_off() {
        let mut d = planner(1, 64, 2);
        for p in [1, 2, 3] {
            d.on_completion(&done(p, true));
        }
        assert_eq!(d.stats().dropped_full, 1);
        assert_eq!(d.poll_dispatch(), Some(1));
        d.on_completion(&done(1, true));
        d.on_failed(1);
        assert_eq!(
            d.stats().handed_to_reconciler,
            1,
            "no retry of a failed drain"
        );
        assert_eq!(d.poll_dispatch(), Some(2));
        d.on_completion(&done(2, true));
        d.on_completion(&done(4, true));
        d.on_reset();
        assert_eq!(d.stats().handed_to_reconciler, 2, "4 was waiting");
        assert_eq!(d.poll_dispatch(), None);
        d.on_drained(2, 0);
        assert!(
            d.is_idle(),
            "the extra drain asked before the reset is forgotten"
        );
        // Reports for partitions not in flight change nothing.
        d.on_drained(2, 5);
        d.on_failed(9);
        assert!(d.is_idle());
        assert_eq!(d.stats().handed_to_reconciler, 2);
    }

    #[test]
    fn zero_limits_are_raised_to_one() {
        let d = planner(0, 0, 0);
        assert_eq!(
            d.limits(),
            DispatchLimits {
                max_in_flight: 1,
                max_rounds: 1,
                max_wanted: 1
            }
        );
        assert_eq!(
            DispatchPlanner::new(DispatchLimits::default())
                .limits()
                .max_in_flight,
            16
        );
    }

    #[derive(Debug, Clone)]
    enum Ev {
        Done(u16, bool),
        Poll,
        /// Report the in-flight drain at this index (mod their count).
        Drained(usize, u64),
        Failed(usize),
        Reset,
    }

    fn ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            4 => (0u16..6, any::<bool>()).prop_map(|(p, b)| Ev::Done(p, b)),
            4 => Just(Ev::Poll),
            3 => (any::<usize>(), prop_oneof![Just(0u64), 1u64..3]).prop_map(|(i, r)| Ev::Drained(i, r)),
            1 => any::<usize>().prop_map(Ev::Failed),
            1 => Just(Ev::Reset),
        ]
    }

    /// The planner's rules, written plainly over vectors.
    #[derive(Default)]
    struct Model {
        wanted: Vec<(u16, u32)>,
        /// (partition, round, again)
        flights: Vec<(u16, u32, bool)>,
        stats: DispatchStats,
    }

    impl Model {
        fn want(&mut self, l: &DispatchLimits, p: u16, round: u32) {
            if self.wanted.len() < l.max_wanted {
                self.wanted.push((p, round));
            } else {
                self.stats.dropped_full += 1;
            }
        }
    }

    proptest! {
        #[test]
        fn agrees_with_a_model_and_keeps_its_bounds(
            max_in_flight in 1usize..4,
            max_rounds in 1u32..4,
            max_wanted in 1usize..5,
            evs in prop::collection::vec(ev(), 0..200),
        ) {
            let l = DispatchLimits { max_in_flight, max_rounds, max_wanted };
            let mut d = DispatchPlanner::new(l);
            let mut m = Model::default();
            // Dispatches of each partition since its last pending message: a
            // burst is never longer than max_rounds, so neither is this.
            let mut since_msg = [0u32; 6];
            for e in evs {
                match e {
                    Ev::Done(p, pending) => {
                        d.on_completion(&done(p, pending));
                        m.stats.completions += 1;
                        if pending {
                            since_msg[usize::from(p)] = 0;
                            if let Some(f) = m.flights.iter_mut().find(|f| f.0 == p) {
                                if f.2 { m.stats.deduplicated += 1 } else { f.2 = true }
                            } else if m.wanted.iter().any(|w| w.0 == p) {
                                m.stats.deduplicated += 1;
                            } else {
                                m.want(&l, p, 1);
                            }
                        }
                    }
                    Ev::Poll => {
                        let got = d.poll_dispatch();
                        let want = if m.flights.len() < max_in_flight && !m.wanted.is_empty() {
                            let (p, round) = m.wanted.remove(0);
                            m.flights.push((p, round, false));
                            m.stats.dispatched += 1;
                            Some(p)
                        } else {
                            None
                        };
                        prop_assert_eq!(got, want);
                        if let Some(p) = got {
                            since_msg[usize::from(p)] += 1;
                            prop_assert!(since_msg[usize::from(p)] <= max_rounds);
                        }
                    }
                    Ev::Drained(i, remaining) if !m.flights.is_empty() => {
                        let (p, round, again) = m.flights.remove(i % m.flights.len());
                        d.on_drained(p, remaining);
                        if remaining > 0 || again {
                            if round >= max_rounds {
                                m.stats.handed_to_reconciler += 1;
                            } else {
                                m.want(&l, p, round + 1);
                            }
                        }
                    }
                    Ev::Failed(i) if !m.flights.is_empty() => {
                        let (p, _, _) = m.flights.remove(i % m.flights.len());
                        d.on_failed(p);
                        m.stats.handed_to_reconciler += 1;
                    }
                    Ev::Drained(..) | Ev::Failed(_) => {}
                    Ev::Reset => {
                        d.on_reset();
                        m.stats.handed_to_reconciler += m.wanted.len() as u64;
                        m.wanted.clear();
                        for f in &mut m.flights { f.2 = false; }
                    }
                }
                prop_assert_eq!(d.stats(), m.stats);
                prop_assert_eq!(d.in_flight(), m.flights.len());
                prop_assert_eq!(d.wanted(), m.wanted.len());
                prop_assert!(d.in_flight() <= max_in_flight);
                prop_assert!(d.wanted() <= max_wanted);
                prop_assert!(m.flights.iter().all(|f| f.1 <= max_rounds));
                let mut flying: Vec<u16> = m.flights.iter().map(|f| f.0).collect();
                flying.sort();
                flying.dedup();
                prop_assert_eq!(flying.len(), m.flights.len(), "one drain per partition at a time");
                prop_assert!(m.wanted.iter().all(|w| !flying.contains(&w.0)));
            }

            // Events stop; the driver answers every drain with nothing left.
            // Each partition waiting or in flight is drained at most once more
            // (twice for one in flight with an extra drain asked).
            let waiting: Vec<u16> = m.wanted.iter().map(|w| w.0).collect();
            let bound = m.wanted.len() + m.flights.len();
            let before = d.stats();
            for f in &m.flights { d.on_drained(f.0, 0); }
            let mut drained = Vec::new();
            while let Some(p) = d.poll_dispatch() {
                drained.push(p);
                prop_assert!(drained.len() <= bound);
                d.on_drained(p, 0);
            }
            prop_assert!(d.is_idle());
            let after = d.stats();
            let handed = (after.dropped_full - before.dropped_full) as usize;
            for p in waiting {
                prop_assert!(drained.contains(&p), "{} was waiting and never drained", p);
            }
            prop_assert!(drained.len() + handed <= bound);
        }
    }
}
