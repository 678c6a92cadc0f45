//! The `cascade` target: the pure half of flow settlement.
//!
//! * The completion listener's [`DispatchPlanner`] under an arbitrary event
//!   sequence (completions, polls, drain reports, failures, resets), against
//!   a plain model of its rules, with its bounds checked after every event;
//!   then events stop and a driver answers every drain with nothing left:
//!   the planner must go idle within a bounded number of drains, each
//!   partition still waiting drained once.
//! * [`settle`] on an arbitrary small DAG (edges forced acyclic): it ends,
//!   every member's fate is what its join rule says of its parents' fates
//!   (counted here, the rule written here), and it agrees with one pass in
//!   topological order.

use ff_core::flow::{
    settle, CompletionMessage, Dag, DispatchLimits, DispatchPlanner, DispatchStats, EdgeCounts,
    Fate, FlowState, FlowSummary, JoinDecision, JoinPolicy,
};
use ff_core::state::TerminalOutcome;
use ff_core::ExecutionId;

/// Partitions the events name (few, so they collide).
pub const PARTITIONS: u8 = 8;
/// Most DAG members.
pub const MAX_NODES: usize = 12;
/// Most DAG edges.
pub const MAX_EDGES: usize = 40;

/// Event opcodes (the low 3 bits of an event byte).
pub mod op {
    /// Completion, not pending: partition in bits 3..6.
    pub const DONE: u8 = 0;
    /// Completion, pending: partition in bits 3..6.
    pub const PENDING: u8 = 1;
    /// Also a pending completion (pending messages are what matters).
    pub const PENDING2: u8 = 2;
    pub const POLL: u8 = 3;
    /// Drain report: next byte, low 3 bits pick the flight, the rest is
    /// `remaining`.
    pub const DRAINED: u8 = 4;
    /// Drain failure: next byte picks the flight.
    pub const FAILED: u8 = 5;
    pub const RESET: u8 = 6;
    /// End of the planner's events: the rest of the input is the DAG.
    pub const END: u8 = 7;
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
}

/// Fuzz target `cascade`.
pub fn cascade(data: &[u8]) {
    let mut input = Bytes(data);
    planner(&mut input);
    dag(&mut input);
}

/// The planner's rules, written plainly over vectors.
struct Model {
    limits: DispatchLimits,
    wanted: Vec<(u16, u32)>,
    /// (partition, round, extra drain asked)
    flights: Vec<(u16, u32, bool)>,
    stats: DispatchStats,
}

impl Model {
    fn want(&mut self, p: u16, round: u32) {
        if self.wanted.len() < self.limits.max_wanted {
            self.wanted.push((p, round));
        } else {
            self.stats.dropped_full += 1;
        }
    }

    fn completion(&mut self, p: u16, pending: bool) {
        self.stats.completions += 1;
        if !pending {
            return;
        }
        if let Some(f) = self.flights.iter_mut().find(|f| f.0 == p) {
            if f.2 {
                self.stats.deduplicated += 1;
            } else {
                f.2 = true;
            }
        } else if self.wanted.iter().any(|w| w.0 == p) {
            self.stats.deduplicated += 1;
        } else {
            self.want(p, 1);
        }
    }

    fn poll(&mut self) -> Option<u16> {
        if self.flights.len() >= self.limits.max_in_flight || self.wanted.is_empty() {
            return None;
        }
        let (p, round) = self.wanted.remove(0);
        self.flights.push((p, round, false));
        self.stats.dispatched += 1;
        Some(p)
    }

    fn drained(&mut self, i: usize, remaining: u64) -> u16 {
        let (p, round, again) = self.flights.remove(i);
        if remaining > 0 || again {
            if round >= self.limits.max_rounds {
                self.stats.handed_to_reconciler += 1;
            } else {
                self.want(p, round + 1);
            }
        }
        p
    }
}

fn planner(input: &mut Bytes<'_>) {
    let b = input.next();
    let limits = DispatchLimits {
        max_in_flight: 1 + usize::from(b % 4),
        max_rounds: 1 + u32::from((b >> 2) % 4),
        max_wanted: 1 + usize::from(b >> 4) % 8,
    };
    let mut d = DispatchPlanner::new(limits);
    assert_eq!(d.limits(), limits);
    let mut m = Model {
        limits,
        wanted: Vec::new(),
        flights: Vec::new(),
        stats: DispatchStats::default(),
    };
    // Dispatches of each partition since its last pending message: a burst
    // starts only with one and is at most max_rounds long.
    let mut since_msg = [0u32; PARTITIONS as usize];
    while !input.0.is_empty() {
        let b = input.next();
        match b % 8 {
            op::DONE | op::PENDING | op::PENDING2 => {
                let p = u16::from((b >> 3) % PARTITIONS);
                let pending = b % 8 != op::DONE;
                let outcome =
                    TerminalOutcome::ALL[usize::from(b >> 6) % TerminalOutcome::ALL.len()];
                let msg = CompletionMessage {
                    execution: ExecutionId::new(p, u128::from(b)),
                    outcome,
                    pending,
                };
                assert_eq!(
                    CompletionMessage::parse(msg.encode().as_bytes()).as_ref(),
                    Ok(&msg)
                );
                d.on_completion(&msg);
                m.completion(p, pending);
                if pending {
                    since_msg[usize::from(p)] = 0;
                }
            }
            op::POLL => {
                let got = d.poll_dispatch();
                assert_eq!(got, m.poll(), "poll");
                if let Some(p) = got {
                    since_msg[usize::from(p)] += 1;
                    assert!(
                        since_msg[usize::from(p)] <= limits.max_rounds,
                        "partition {p} drained more than max_rounds times for one message"
                    );
                }
            }
            op::DRAINED => {
                let x = input.next();
                if m.flights.is_empty() {
                    // A report for a partition not in flight is ignored.
                    let before = d.stats();
                    d.on_drained(u16::from(x % PARTITIONS), u64::from(x >> 3));
                    assert_eq!(d.stats(), before);
                } else {
                    let i = usize::from(x % 8) % m.flights.len();
                    let remaining = u64::from(x >> 3);
                    let p = m.drained(i, remaining);
                    d.on_drained(p, remaining);
                }
            }
            op::FAILED => {
                let x = input.next();
                if m.flights.is_empty() {
                    d.on_failed(u16::from(x % PARTITIONS));
                } else {
                    let (p, _, _) = m.flights.remove(usize::from(x) % m.flights.len());
                    d.on_failed(p);
                    m.stats.handed_to_reconciler += 1;
                }
            }
            op::RESET => {
                d.on_reset();
                m.stats.handed_to_reconciler += m.wanted.len() as u64;
                m.wanted.clear();
                for f in &mut m.flights {
                    f.2 = false;
                }
            }
            _ => break,
        }
        // The bounds and the model, after every event.
        assert_eq!(d.stats(), m.stats, "stats");
        assert_eq!(d.in_flight(), m.flights.len());
        assert_eq!(d.wanted(), m.wanted.len());
        assert!(d.in_flight() <= limits.max_in_flight);
        assert!(d.wanted() <= limits.max_wanted);
        assert!(m
            .flights
            .iter()
            .all(|f| (1..=limits.max_rounds).contains(&f.1)));
        for (i, f) in m.flights.iter().enumerate() {
            assert!(
                m.flights[i + 1..].iter().all(|g| g.0 != f.0),
                "two drains of partition {} in flight",
                f.0
            );
            assert!(m.wanted.iter().all(|w| w.0 != f.0));
        }
        assert_eq!(d.is_idle(), m.wanted.is_empty() && m.flights.is_empty());
    }

    // Events stop; the driver answers every drain with nothing left. Each
    // partition waiting is drained once; one in flight with an extra drain
    // asked is drained once more; nothing else.
    let waiting: Vec<u16> = m.wanted.iter().map(|w| w.0).collect();
    let again = m.flights.iter().filter(|f| f.2).count();
    let before = d.stats();
    for f in &m.flights {
        d.on_drained(f.0, 0);
    }
    let mut drained = Vec::new();
    while let Some(p) = d.poll_dispatch() {
        assert!(
            !drained.contains(&p),
            "partition {p} drained twice after events stopped"
        );
        drained.push(p);
        assert!(drained.len() <= waiting.len() + again, "does not settle");
        d.on_drained(p, 0);
    }
    assert!(d.is_idle());
    let after = d.stats();
    assert!(waiting.iter().all(|p| drained.contains(p)));
    assert_eq!(
        drained.len() as u64 + after.dropped_full + after.handed_to_reconciler,
        (waiting.len() + again) as u64 + before.dropped_full + before.handed_to_reconciler,
        "each extra drain asked is done or handed off"
    );
}

/// The join rule, written from the definition: `need` successes make the
/// member ready; fewer than `need` edges left that could succeed make it
/// impossible.
fn rule(join: JoinPolicy, c: EdgeCounts) -> JoinDecision {
    let need = match join {
        JoinPolicy::AllOf => c.total,
        JoinPolicy::AnyOf => 1,
        JoinPolicy::Quorum(k) => k,
    };
    if c.total == 0 || c.satisfied >= need {
        JoinDecision::Ready
    } else if c.total - c.impossible < need {
        JoinDecision::Impossible
    } else {
        JoinDecision::Waiting
    }
}

fn dag(input: &mut Bytes<'_>) {
    let n = 1 + usize::from(input.next()) % MAX_NODES;
    let mut joins = Vec::with_capacity(n);
    let mut outcomes = Vec::with_capacity(n);
    for _ in 0..n {
        let b = input.next();
        joins.push(match b % 4 {
            0 | 1 => JoinPolicy::AllOf,
            2 => JoinPolicy::AnyOf,
            _ => JoinPolicy::Quorum(1 + u32::from((b >> 2) % 4)),
        });
        // Mostly successes, so cascades go deep.
        outcomes.push(match b >> 4 {
            0..=7 => Some(TerminalOutcome::Success),
            8..=12 => Some(TerminalOutcome::ALL[usize::from(b >> 4) % TerminalOutcome::ALL.len()]),
            _ => None,
        });
    }
    let mut edges = Vec::new();
    while !input.0.is_empty() && edges.len() < MAX_EDGES {
        let a = usize::from(input.next()) % n;
        let b = usize::from(input.next()) % n;
        if a != b {
            edges.push((a.min(b), a.max(b)));
        }
    }
    let d = Dag { joins, edges };
    let fates = settle(&d, |i| outcomes[i]);
    assert_eq!(fates.len(), n);

    let mut summary = FlowSummary {
        members: n as u64,
        ..FlowSummary::default()
    };
    for (i, fate) in fates.iter().enumerate() {
        // Count the incoming edges from the parents' fates.
        let mut c = EdgeCounts::default();
        for &(p, _) in d.edges.iter().filter(|e| e.1 == i) {
            c.total += 1;
            match fates[p] {
                Fate::Ran(TerminalOutcome::Success) => c.satisfied += 1,
                Fate::Ran(_) | Fate::Skipped => c.impossible += 1,
                Fate::Waiting | Fate::Ready => {}
            }
        }
        assert!(c.is_consistent());
        let decision = rule(d.joins[i], c);
        assert_eq!(d.joins[i].decide(c), decision, "member {i}: {c:?}");
        let want = match decision {
            JoinDecision::Waiting => Fate::Waiting,
            JoinDecision::Ready => outcomes[i].map_or(Fate::Ready, Fate::Ran),
            JoinDecision::Impossible => Fate::Skipped,
        };
        assert_eq!(*fate, want, "member {i} of {d:?}");
        match fate {
            Fate::Ran(o) => {
                summary.done += 1;
                match o {
                    TerminalOutcome::Success => summary.success += 1,
                    TerminalOutcome::Failed => summary.failed += 1,
                    TerminalOutcome::Cancelled => summary.cancelled += 1,
                    TerminalOutcome::Expired => summary.expired += 1,
                    TerminalOutcome::Skipped => summary.skipped += 1,
                }
            }
            Fate::Skipped => {
                summary.done += 1;
                summary.skipped += 1;
            }
            Fate::Waiting | Fate::Ready => {}
        }
    }

    // One pass in index order sees every parent settled first (edges go
    // forward), so it must reach the same fates.
    let mut one_pass = vec![Fate::Waiting; n];
    for i in 0..n {
        one_pass[i] = match d.joins[i].decide(d.incoming(&one_pass, i)) {
            JoinDecision::Waiting => Fate::Waiting,
            JoinDecision::Ready => outcomes[i].map_or(Fate::Ready, Fate::Ran),
            JoinDecision::Impossible => Fate::Skipped,
        };
    }
    assert_eq!(fates, one_pass);

    // The flow's state from the counters the members' fates imply.
    assert!(summary.is_consistent());
    let state = summary.state();
    if outcomes.iter().all(Option::is_some) {
        // Every member that becomes ready ends, so every member ends.
        assert_eq!(summary.done, summary.members);
        assert!(state.is_terminal());
        assert_eq!(
            state == FlowState::Failed,
            summary.failed + summary.expired > 0
        );
    } else if state.is_terminal() {
        assert_eq!(summary.done, summary.members);
    }
}

/// The seeds of `corpus/cascade/`.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let pending = |p: u8| (p << 3) | op::PENDING;
    let done = |p: u8| (p << 3) | op::DONE;
    let drained = |flight: u8, remaining: u8| [op::DRAINED, (remaining << 3) | flight];
    // Limits byte: in flight 1 + b%4, rounds 1 + (b>>2)%4, wanted 1 + (b>>4)%8.
    let limits = |in_flight: u8, rounds: u8, wanted: u8| {
        (in_flight - 1) | ((rounds - 1) << 2) | ((wanted - 1) << 4)
    };
    let mut burst = vec![limits(2, 3, 8), pending(1)];
    for _ in 0..4 {
        burst.push(op::POLL);
        burst.extend(drained(0, 5));
    }
    let mut dedup = vec![limits(1, 4, 8), pending(2), pending(3), op::POLL];
    dedup.extend([pending(2), pending(2), pending(2), done(2)]);
    dedup.extend(drained(0, 0));
    dedup.extend([op::POLL, op::POLL]);
    let mut full = vec![limits(4, 4, 2)];
    full.extend((0..6).map(pending));
    full.extend([op::POLL, op::POLL, op::FAILED, 0, op::RESET, op::POLL]);
    // DAG: member count, then per member a byte: join in bits 0..2 (quorum
    // n in bits 2..4), outcome in bits 4..8 (0-7 success, 8-12 another
    // outcome, 13-15 not run); then edges as byte pairs. Here 0 -> 1 -> 2
    // (fails) -> 3 (any-of) and 1, 2, 3 -> 4 (quorum 2) -> 5: everything
    // after 2 is skipped.
    let chain = vec![
        0, // limits
        op::END,
        5, // 6 members
        0x00,
        0x00,
        0xb0, // member 2 fails
        0x02, // any-of
        0x07, // quorum 2
        0xe0, // ready, not run
        0,
        1,
        1,
        2,
        2,
        3,
        1,
        4,
        3,
        4,
        2,
        4,
        4,
        5,
    ];
    let mut both = dedup.clone();
    both.push(op::END);
    both.extend_from_slice(&chain[2..]);
    vec![
        ("burst_reaches_max_rounds", burst),
        ("dedup_while_in_flight", dedup),
        ("full_queue_failure_reset", full),
        ("dag_fail_skips_descendants", chain),
        ("planner_then_dag", both),
    ]
}
