//! The failure tracker at its boundaries: the backoff window, forgetting,
//! setting aside, and which entry goes when full.

use ff_core::tracker::*;

fn advance(t: &mut FailureTracker, n: u64) {
    for _ in 0..n {
        t.advance_cycle();
    }
}

#[test]
fn constants() {
    assert_eq!(
        (FAILURE_THRESHOLD, BACKOFF_CYCLES, DEFAULT_CAPACITY),
        (3, 10, 10_000)
    );
}

#[test]
fn cycles_count_and_stale_entries_go_after_twenty() {
    let mut t = FailureTracker::default();
    assert_eq!(t.cycle(), 0);
    assert!(t.is_empty());
    assert!(!t.record_failure("a"));
    assert_eq!((t.len(), t.is_empty()), (1, false));
    // Kept while last failure + 20 > cycle.
    advance(&mut t, 19);
    assert_eq!(t.cycle(), 19);
    assert_eq!(t.len(), 1);
    t.advance_cycle();
    assert_eq!(t.len(), 0);
}

#[test]
fn the_backoff_window_and_a_fresh_count_after_it() {
    let mut t = FailureTracker::default();
    assert!(!t.record_failure("x"));
    assert!(!t.record_failure("x"));
    assert!(t.record_failure("x"));
    assert_eq!(t.skipped_count(), 1);
    // A fourth failure while in backoff does not enter it again.
    assert!(!t.record_failure("x"));
    advance(&mut t, 10);
    assert!(t.is_skipped("x"));
    t.advance_cycle();
    assert!(!t.is_skipped("x"));
    assert_eq!(t.skipped_count(), 0);
    // Its backoff over, it counts from one again.
    assert!(!t.record_failure("x"));
    assert!(!t.record_failure("x"));
    assert!(t.record_failure("x"));
    assert!(t.is_skipped("x"));
}

#[test]
fn set_aside_skips_for_one_backoff() {
    let mut t = FailureTracker::default();
    t.set_aside("f");
    assert!(t.is_skipped("f"));
    assert_eq!(t.skipped_count(), 1);
    advance(&mut t, 10);
    assert!(t.is_skipped("f"));
    t.advance_cycle();
    assert!(!t.is_skipped("f"));
    t.record_success("f");
    assert!(t.is_empty());
}

#[test]
fn when_full_the_least_recently_failing_goes_first() {
    let mut t = FailureTracker::with_capacity(2);
    t.record_failure("b");
    t.advance_cycle();
    t.record_failure("a");
    t.advance_cycle();
    t.record_failure("c");
    // b failed longest ago: it goes, a and c stay.
    assert_eq!(t.len(), 2);
    t.record_failure("c");
    t.record_failure("c");
    t.record_failure("a");
    t.record_failure("a");
    assert!(t.is_skipped("a") && t.is_skipped("c"));
    // Ties on the cycle go by key: of d, e (both now), d goes before e.
    let mut t = FailureTracker::with_capacity(2);
    t.set_aside("e");
    t.set_aside("d");
    t.set_aside("f");
    assert!(t.is_skipped("e") && t.is_skipped("f") && !t.is_skipped("d"));
    // A capacity of 0 keeps one.
    let mut t = FailureTracker::with_capacity(0);
    t.set_aside("x");
    t.set_aside("y");
    assert_eq!(t.len(), 1);
    assert!(t.is_skipped("y"));
}
