//! The `tracker` target: the scanners' failure tracker driven by arbitrary
//! event sequences, checked against a direct model of its rules, and
//! [`plan`] on arbitrary snapshots, checked against its laws.
//!
//! Input format (every byte string is valid; missing bytes read as 0):
//!
//! * byte 0: the tracker's capacity, `1 + b % 8` (8 item names exist, so
//!   small capacities force evictions);
//! * then one event per byte `b`, item `m{b >> 5}`, kind `b % 8`:
//!   0–1 failure, 2 success, 3 set aside, 4–5 advance a cycle, 6 plan,
//!   7 a batch of results fed through [`record_results`].
//!   A plan reads: batch size `b % 12`, `now` `b * 8`, read limit `b % 16`,
//!   member count `b % 9`, then one byte per member (item `b % 8`, score
//!   `(b >> 3) * 16`). A result batch reads a count `b % 5`, then one byte per
//!   result (item `b >> 5`, result `b % 3`: done, filtered, failed).

use ff_core::scan::{next_wake, plan, read_limit, record_results, ItemResult, Member, Snapshot};
use ff_core::tracker::{FailureTracker, BACKOFF_CYCLES, FAILURE_THRESHOLD};
use std::collections::BTreeMap;

const ITEMS: u8 = 8;

/// The tracker's rules, per item, written out directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    failures: u32,
    /// Skipped while `cycle < skip_until` once `failures >= FAILURE_THRESHOLD`.
    skip_until: u64,
    last_failure: u64,
}

#[derive(Debug)]
struct Model {
    cycle: u64,
    capacity: usize,
    entries: BTreeMap<String, Entry>,
    /// The cycle each tracked item last entered backoff.
    entered_at: BTreeMap<String, u64>,
}

impl Model {
    fn skipped(&self, item: &str) -> bool {
        self.entries
            .get(item)
            .is_some_and(|e| e.failures >= FAILURE_THRESHOLD && self.cycle < e.skip_until)
    }

    /// Beyond capacity, the entry that failed least recently goes (ties: the
    /// smallest name), never the one just recorded.
    fn evict(&mut self, keep: &str) {
        while self.entries.len() > self.capacity {
            let oldest = self
                .entries
                .iter()
                .filter(|(k, _)| k.as_str() != keep)
                .min_by_key(|(k, e)| (e.last_failure, (*k).clone()))
                .map(|(k, _)| k.clone())
                .expect("non-empty");
            self.entries.remove(&oldest);
            self.entered_at.remove(&oldest);
        }
    }

    /// Returns whether the item enters backoff.
    fn fail(&mut self, item: &str) -> bool {
        let cycle = self.cycle;
        let e = self.entries.entry(item.to_owned()).or_insert(Entry {
            failures: 0,
            skip_until: 0,
            last_failure: cycle,
        });
        if e.failures >= FAILURE_THRESHOLD && cycle >= e.skip_until {
            e.failures = 0; // its backoff is over: a fresh count
        }
        e.failures += 1;
        e.last_failure = cycle;
        let entered = e.failures == FAILURE_THRESHOLD;
        if entered {
            e.skip_until = cycle + 1 + BACKOFF_CYCLES;
            self.entered_at.insert(item.to_owned(), cycle);
        }
        self.evict(item);
        entered
    }

    fn set_aside(&mut self, item: &str) {
        let cycle = self.cycle;
        self.entries.insert(
            item.to_owned(),
            Entry {
                failures: FAILURE_THRESHOLD,
                skip_until: cycle + 1 + BACKOFF_CYCLES,
                last_failure: cycle,
            },
        );
        self.entered_at.insert(item.to_owned(), cycle);
        self.evict(item);
    }

    fn succeed(&mut self, item: &str) {
        self.entries.remove(item);
        self.entered_at.remove(item);
    }

    fn advance(&mut self) {
        self.cycle += 1;
        let cycle = self.cycle;
        self.entries
            .retain(|_, e| e.last_failure + 2 * BACKOFF_CYCLES > cycle);
        let entries = &self.entries;
        self.entered_at.retain(|k, _| entries.contains_key(k));
    }
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

fn item(i: u8) -> String {
    format!("m{}", i % ITEMS)
}

/// Fuzz target `tracker`.
pub fn tracker(data: &[u8]) {
    let mut input = Bytes(data);
    let capacity = 1 + usize::from(input.next() % 8);
    let mut t = FailureTracker::with_capacity(capacity);
    let mut m = Model {
        cycle: 0,
        capacity,
        entries: BTreeMap::new(),
        entered_at: BTreeMap::new(),
    };
    while !input.0.is_empty() {
        let b = input.next();
        let name = item(b >> 5);
        match b % 8 {
            0 | 1 => {
                let entered = t.record_failure(&name);
                assert_eq!(entered, m.fail(&name), "failure of {name}");
            }
            2 => {
                t.record_success(&name);
                m.succeed(&name);
                assert!(!t.is_skipped(&name), "a success clears {name}");
            }
            3 => {
                t.set_aside(&name);
                m.set_aside(&name);
                assert!(t.is_skipped(&name), "{name} set aside is skipped at once");
            }
            4 | 5 => {
                t.advance_cycle();
                m.advance();
            }
            6 => check_plan(&mut input, &t),
            _ => {
                let n = input.next() % 5;
                let results: Vec<(String, ItemResult)> = (0..n)
                    .map(|_| {
                        let r = input.next();
                        let result = match r % 3 {
                            0 => ItemResult::Done,
                            1 => ItemResult::Filtered,
                            _ => ItemResult::Failed("boom".into()),
                        };
                        (item(r >> 5), result)
                    })
                    .collect();
                let mut entered = 0;
                for (id, r) in &results {
                    match r {
                        ItemResult::Done => m.succeed(id),
                        ItemResult::Filtered => m.set_aside(id),
                        ItemResult::Failed(_) => entered += usize::from(m.fail(id)),
                    }
                }
                let got = record_results(&mut t, results.iter().map(|(i, r)| (i.as_str(), r)));
                assert_eq!(got, entered, "entries into backoff reported");
            }
        }
        // The laws, after every event.
        assert!(
            t.len() <= capacity,
            "{} entries over capacity {capacity}",
            t.len()
        );
        assert_eq!(t.len(), m.entries.len());
        assert_eq!(t.cycle(), m.cycle);
        let mut skipped = 0;
        for i in 0..ITEMS {
            let name = item(i);
            let s = t.is_skipped(&name);
            assert_eq!(
                s,
                m.skipped(&name),
                "is_skipped({name}) at cycle {}",
                m.cycle
            );
            skipped += usize::from(s);
            // Skipped exactly in the cycle it entered backoff and the
            // BACKOFF_CYCLES after it, unless it was forgotten or cleared.
            let in_backoff = m
                .entered_at
                .get(&name)
                .is_some_and(|&start| m.cycle <= start + BACKOFF_CYCLES);
            assert_eq!(s, in_backoff, "{name} at cycle {}", m.cycle);
        }
        assert_eq!(t.skipped_count(), skipped);
    }
}

/// [`plan`]'s laws on a snapshot read from the input, with the tracker as it is.
fn check_plan(input: &mut Bytes<'_>, t: &FailureTracker) {
    let batch = usize::from(input.next() % 12);
    let now = u64::from(input.next()) * 8;
    let limit = usize::from(input.next() % 16);
    let n = input.next() % 9;
    let mut members: Vec<Member> = Vec::new();
    for _ in 0..n {
        let b = input.next();
        let id = item(b % 8);
        // An index holds each member once.
        if members.iter().all(|m| m.id != id) {
            members.push(Member {
                id,
                score: u64::from(b >> 3) * 16,
            });
        }
    }
    members.sort_by(|a, b| (a.score, &a.id).cmp(&(b.score, &b.id)));
    let s = Snapshot {
        now_ms: now,
        members,
        limit,
    };
    let p = plan(&s, t, batch);
    let due: Vec<&Member> = s.members.iter().filter(|m| m.score <= now).collect();
    assert!(p.act.len() <= batch);
    assert_eq!(p.due, due.len());
    assert_eq!(
        p.skipped,
        due.iter().filter(|m| t.is_skipped(&m.id)).count()
    );
    // The earliest due, not skipped members, in order.
    let expect: Vec<String> = due
        .iter()
        .filter(|m| !t.is_skipped(&m.id))
        .take(batch)
        .map(|m| m.id.clone())
        .collect();
    assert_eq!(p.act, expect);
    // The first future score, if any.
    assert_eq!(
        p.next_due_ms,
        s.members.iter().map(|m| m.score).find(|&sc| sc > now)
    );
    // Another round right away only when something due was left, or the read
    // was full of due members (more may be unread).
    let left = due.len() - p.skipped > p.act.len();
    let full = p.next_due_ms.is_none() && s.members.len() >= s.limit && !p.act.is_empty();
    assert_eq!(p.again, left || full);
    assert_eq!(read_limit(batch, t), batch + t.skipped_count() + 1);
    let w = next_wake(p.next_due_ms, now, 500);
    assert!(w <= now + 500);
    if let Some(d) = p.next_due_ms {
        assert!(w <= d);
    }
}

/// The seeds of `corpus/tracker/`.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    // Event bytes: item i, kind k.
    let ev = |i: u8, k: u8| (i << 5) | k;
    let fail = |i| ev(i, 0);
    let advance = ev(0, 4);
    let mut backoff = vec![7, fail(1), fail(1), fail(1)];
    backoff.extend(std::iter::repeat_n(advance, 12));
    let mut evicting = vec![1];
    for i in 0..8 {
        evicting.extend([fail(i), advance]);
    }
    vec![
        ("three_failures_then_backoff", backoff),
        (
            "success_clears",
            vec![7, fail(2), fail(2), ev(2, 2), fail(2), advance],
        ),
        ("set_aside", vec![7, ev(3, 3), advance, ev(3, 3), ev(3, 2)]),
        ("capacity_one_evicts", evicting),
        (
            // m0 in backoff; plan: batch 2, now 800, limit 4, 4 members.
            "plan_skips_backoff",
            vec![
                7,
                fail(0),
                fail(0),
                fail(0),
                ev(0, 6),
                2,
                100,
                4,
                4,
                0,
                1 | 8,
                2 | 16,
                3 | 0xf8,
            ],
        ),
        (
            // A batch of results: done, filtered, failed x2 (m4).
            "results_batch",
            vec![
                7,
                ev(0, 7),
                4,
                (1 << 5),
                (2 << 5) | 1,
                (4 << 5) | 2,
                (4 << 5) | 2,
                fail(4),
            ],
        ),
        // Found by the deterministic sweep: at capacity, the item just set
        // aside lost the tie-break to an entry of the same cycle.
        ("regress_evict_just_recorded", vec![0, fail(5), ev(3, 3)]),
        ("gc_after_twenty_cycles", {
            let mut v = vec![7, fail(5)];
            v.extend(std::iter::repeat_n(advance, 21));
            v
        }),
    ]
}
