//! The failure tracker: items whose action keeps failing are set aside for a
//! while so they do not take batch slots from healthy ones.
//!
//! A plain value: no mutex, no clock. The owner advances the cycle counter once
//! per scanner cycle and reports each item's result.

use std::collections::BTreeMap;

/// Consecutive failures that put an item in backoff.
pub const FAILURE_THRESHOLD: u32 = 3;
/// Cycles an item in backoff is skipped.
pub const BACKOFF_CYCLES: u64 = 10;
/// Most items tracked at once; beyond it the least recently failing are dropped.
pub const DEFAULT_CAPACITY: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    failures: u32,
    /// Skipped while `cycle < skip_until` (only once `failures >= threshold`):
    /// the `BACKOFF_CYCLES` cycles after the one that put it in backoff.
    skip_until: u64,
    last_failure_cycle: u64,
}

/// Consecutive failures per item, as a plain value: 3 failures in a row put an item in backoff for the next 10 cycles; a success clears it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureTracker {
    cycle: u64,
    capacity: usize,
    entries: BTreeMap<String, Entry>,
}

impl Default for FailureTracker {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl FailureTracker {
    /// A tracker keeping at most `capacity` items.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            cycle: 0,
            capacity: capacity.max(1),
            entries: BTreeMap::new(),
        }
    }

    /// The current cycle number.
    pub fn cycle(&self) -> u64 {
        self.cycle
    }

    /// Items tracked (failing or in backoff).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Start the next cycle; forget entries whose backoff ended long ago.
    pub fn advance_cycle(&mut self) {
        self.cycle += 1;
        let cycle = self.cycle;
        // An entry below the threshold that has not failed for a backoff period
        // is stale: its item succeeded elsewhere or left the index.
        self.entries
            .retain(|_, e| e.last_failure_cycle + 2 * BACKOFF_CYCLES > cycle);
    }

    /// Is this item in backoff now?
    pub fn is_skipped(&self, item: &str) -> bool {
        self.entries
            .get(item)
            .is_some_and(|e| e.failures >= FAILURE_THRESHOLD && self.cycle < e.skip_until)
    }

    /// How many items are in backoff now.
    pub fn skipped_count(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.failures >= FAILURE_THRESHOLD && self.cycle < e.skip_until)
            .count()
    }

    /// Count a failure; returns true when the item enters backoff with it.
    pub fn record_failure(&mut self, item: &str) -> bool {
        let cycle = self.cycle;
        let e = self.entries.entry(item.to_owned()).or_insert(Entry {
            failures: 0,
            skip_until: 0,
            last_failure_cycle: cycle,
        });
        if e.failures >= FAILURE_THRESHOLD && cycle >= e.skip_until {
            // Its backoff ended: it gets a fresh count.
            e.failures = 0;
        }
        e.failures += 1;
        e.last_failure_cycle = cycle;
        let entered = e.failures == FAILURE_THRESHOLD;
        if entered {
            e.skip_until = cycle + 1 + BACKOFF_CYCLES;
        }
        self.enforce_capacity(item);
        entered
    }

    /// Set an item aside for a backoff period at once (e.g. it belongs to
    /// another engine's filter and will keep coming back).
    pub fn set_aside(&mut self, item: &str) {
        let cycle = self.cycle;
        self.entries.insert(
            item.to_owned(),
            Entry {
                failures: FAILURE_THRESHOLD,
                skip_until: cycle + 1 + BACKOFF_CYCLES,
                last_failure_cycle: cycle,
            },
        );
        self.enforce_capacity(item);
    }

    /// A success clears the item.
    pub fn record_success(&mut self, item: &str) {
        self.entries.remove(item);
    }

    /// Drop the least recently failing entries beyond capacity, never `keep`
    /// (the item just recorded: it failed now, whatever the tie-break says).
    fn enforce_capacity(&mut self, keep: &str) {
        while self.entries.len() > self.capacity {
            let oldest = self
                .entries
                .iter()
                .filter(|(k, _)| k.as_str() != keep)
                .min_by_key(|(k, e)| (e.last_failure_cycle, (*k).clone()))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.entries.remove(&k);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Fail(u8),
        Succeed(u8),
        Advance,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..6).prop_map(Op::Fail),
            (0u8..6).prop_map(Op::Succeed),
            Just(Op::Advance)
        ]
    }

    /// A direct model of the rules, per item.
    #[derive(Default, Clone)]
    struct Model {
        failures: u32,
        skip_until: Option<u64>,
        last_failure: u64,
    }

    proptest! {
        #[test]
        fn agrees_with_a_model(ops in prop::collection::vec(op(), 0..300)) {
            let mut t = FailureTracker::with_capacity(6);
            let mut m: BTreeMap<u8, Model> = BTreeMap::new();
            let mut cycle = 0u64;
            for o in ops {
                match o {
                    Op::Advance => {
                        t.advance_cycle();
                        cycle += 1;
                        m.retain(|_, e| e.last_failure + 2 * BACKOFF_CYCLES > cycle);
                    }
                    Op::Succeed(i) => { t.record_success(&i.to_string()); m.remove(&i); }
                    Op::Fail(i) => {
                        let e = m.entry(i).or_default();
                        if e.skip_until.is_some_and(|s| cycle >= s) { *e = Model::default(); }
                        e.failures += 1;
                        e.last_failure = cycle;
                        let entered = t.record_failure(&i.to_string());
                        prop_assert_eq!(entered, e.failures == FAILURE_THRESHOLD);
                        if entered { e.skip_until = Some(cycle + 1 + BACKOFF_CYCLES); }
                    }
                }
                for i in 0u8..6 {
                    let model_skips = m.get(&i).is_some_and(|e| e.skip_until.is_some_and(|s| cycle < s));
                    prop_assert_eq!(t.is_skipped(&i.to_string()), model_skips, "item {}", i);
                }
            }
        }

        #[test]
        fn memory_is_bounded(ops in prop::collection::vec((0u8..50, any::<bool>()), 0..400)) {
            let mut t = FailureTracker::with_capacity(8);
            for (i, advance) in ops {
                t.record_failure(&i.to_string());
                if advance { t.advance_cycle(); }
                prop_assert!(t.len() <= 8);
            }
        }

        #[test]
        fn three_failures_skip_exactly_ten_cycles(start in 0u64..50) {
            let mut t = FailureTracker::default();
            for _ in 0..start { t.advance_cycle(); }
            prop_assert!(!t.record_failure("x"));
            prop_assert!(!t.record_failure("x"));
            prop_assert!(!t.is_skipped("x"));
            prop_assert!(t.record_failure("x"));
            // Skipped in each of the BACKOFF_CYCLES cycles that follow.
            for _ in 0..BACKOFF_CYCLES {
                t.advance_cycle();
                prop_assert!(t.is_skipped("x"));
            }
            t.advance_cycle();
            prop_assert!(!t.is_skipped("x"));
            // Retried: one more failure does not put it straight back.
            prop_assert!(!t.record_failure("x"));
            prop_assert!(!t.is_skipped("x"));
        }
    }

    #[test]
    fn the_item_just_recorded_is_never_the_one_evicted() {
        // Found by the `tracker` fuzz target: at capacity, ties within a
        // cycle went by name, so "m3" set aside after "m5" failed was dropped
        // at once (and a failure entering backoff could be forgotten likewise).
        let mut t = FailureTracker::with_capacity(1);
        t.record_failure("m5");
        t.set_aside("m3");
        assert!(t.is_skipped("m3"));
        assert_eq!(t.len(), 1);
        let mut t = FailureTracker::with_capacity(1);
        t.record_failure("b");
        t.record_failure("a");
        t.record_failure("a");
        assert!(t.record_failure("a"));
        assert!(t.is_skipped("a"), "entered backoff, so skipped");
    }

    #[test]
    fn success_clears_and_gc_forgets() {
        let mut t = FailureTracker::default();
        t.record_failure("a");
        t.record_failure("a");
        t.record_success("a");
        assert!(t.is_empty());
        t.record_failure("b");
        for _ in 0..(2 * BACKOFF_CYCLES) {
            t.advance_cycle();
        }
        assert!(t.is_empty(), "a stale entry is collected");
        t.set_aside("c");
        assert!(t.is_skipped("c"));
        assert_eq!(t.skipped_count(), 1);
    }
}
