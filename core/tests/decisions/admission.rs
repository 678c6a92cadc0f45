//! Admission decisions: what an execution draws on, capabilities, quota
//! windows and free places, and the periodic reset grid.

use ff_core::admission::*;
use ff_core::{BudgetId, QuotaId};

fn adm(b: &[&str], q: &[&str], caps: &[&str]) -> Admission {
    Admission {
        budgets: b.iter().map(|s| BudgetId::parse(s).unwrap()).collect(),
        quotas: q.iter().map(|s| QuotaId::parse(s).unwrap()).collect(),
        capabilities: caps.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn what_an_execution_draws_on() {
    assert_eq!(MAX_PER_EXECUTION, 8);
    let none = Admission::default();
    assert!(none.is_empty() && !none.needs_admission());
    assert!(!adm(&["b"], &[], &[]).is_empty());
    assert!(adm(&["b"], &[], &[]).needs_admission());
    assert!(adm(&[], &["q"], &[]).needs_admission());
    assert!(!adm(&[], &["q"], &[]).is_empty());
    assert!(!adm(&[], &[], &["gpu"]).needs_admission());
    assert!(!adm(&[], &[], &["gpu"]).is_empty());
    assert_eq!(
        adm(&["b1", "b2"], &["q"], &["gpu", "ssd"]).encode_parts(),
        ("b1,b2".into(), "q".into(), "gpu,ssd".into())
    );
    assert_eq!(
        none.encode_parts(),
        (String::new(), String::new(), String::new())
    );
    assert_eq!(
        Admission::parse("b1,,b2;q;gpu"),
        Ok(adm(&["b1", "b2"], &["q"], &["gpu"]))
    );
    assert_eq!(Admission::parse(";q"), Ok(adm(&[], &["q"], &[])));
    assert!(Admission::parse(";a b").is_err());
    assert!(Admission::parse(";;a b").is_err());
}

#[test]
fn capabilities() {
    assert_eq!(parse_capabilities(""), Ok(vec![]));
    assert_eq!(parse_capabilities("a,,b"), Ok(vec!["a".into(), "b".into()]));
    assert!(parse_capabilities("a,b c").is_err());
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(capable(&[], &[]));
    assert!(capable(&s(&["a"]), &s(&["b", "a"])));
    assert!(!capable(&s(&["a", "c"]), &s(&["a"])));
    assert!(!capable(&s(&["a"]), &[]));
}

#[test]
fn windows_and_free_places() {
    let l = QuotaLimits {
        window_ms: 100,
        max_per_window: 3,
        concurrency: 2,
    };
    // The window is (now - 100, now], sorted.
    assert_eq!(
        in_window(&l, 1000, &[950, 900, 901, 1000, 899]),
        [901, 950, 1000]
    );
    assert_eq!(in_window(&l, 50, &[0, 49]), [49]);
    assert_eq!(
        in_window(
            &QuotaLimits {
                window_ms: 100,
                ..l
            },
            100,
            &[0, 1]
        ),
        [1]
    );
    assert_eq!(free_slots(&l, 1000, &[950], 0), 2);
    assert_eq!(free_slots(&l, 1000, &[950], 1), 1);
    assert_eq!(free_slots(&l, 1000, &[950, 960, 970], 0), 0);
    assert_eq!(free_slots(&l, 1000, &[], 5), 0);
    let unlimited = QuotaLimits {
        window_ms: 100,
        max_per_window: 0,
        concurrency: 0,
    };
    assert_eq!(free_slots(&unlimited, 1000, &[999; 9], 9), u64::MAX);
    assert_eq!(
        quota_decision(&unlimited, 1000, &[999; 9], 9),
        QuotaDecision::Admit
    );
    let rate_only = QuotaLimits {
        concurrency: 0,
        ..l
    };
    assert_eq!(free_slots(&rate_only, 1000, &[950], 99), 2);
    let conc_only = QuotaLimits {
        max_per_window: 0,
        ..l
    };
    assert_eq!(free_slots(&conc_only, 1000, &[999; 9], 1), 1);
    assert_eq!(
        quota_decision(&conc_only, 1000, &[], 2),
        QuotaDecision::Concurrency
    );
    assert_eq!(
        quota_decision(&conc_only, 1000, &[], 1),
        QuotaDecision::Admit
    );
    // Full window: the place opens when the oldest that must leave does.
    assert_eq!(
        quota_decision(&l, 1000, &[990, 950, 960, 970], 0),
        QuotaDecision::Rate { retry_at_ms: 1060 }
    );
    assert_eq!(
        quota_decision(&l, 1000, &[950, 960, 970], 0),
        QuotaDecision::Rate { retry_at_ms: 1050 }
    );
    assert_eq!(
        quota_decision(&l, 1000, &[950, 960], 1),
        QuotaDecision::Admit
    );
    // Rate is checked before concurrency.
    assert_eq!(
        quota_decision(&l, 1000, &[950, 960, 970], 2),
        QuotaDecision::Rate { retry_at_ms: 1050 }
    );
}

#[test]
fn resets_stay_on_their_grid() {
    assert_eq!(next_reset(1000, 500, 100), 1000);
    assert_eq!(next_reset(1000, 1000, 100), 1100);
    assert_eq!(next_reset(1000, 1099, 100), 1100);
    assert_eq!(next_reset(1000, 1100, 100), 1200);
    assert_eq!(next_reset(1000, 1250, 100), 1300);
    // A zero period is read as 1 ms.
    assert_eq!(next_reset(10, 12, 0), 13);
}
