//! Admission: what an execution draws on (budgets, quotas), where their keys
//! live, and the pure decisions the Lua (`lua/admission.lua`) and the unblock
//! scanner share: is a budget breached, may a quota admit one more, how many
//! more can it admit now, when is a periodic reset next due.
//!
//! Budgets live on `{b:M}` partitions and quotas on `{q:K}` partitions, never
//! on an execution's `{fp:N}` partition: a call never spans both. Admission
//! is therefore a second single-slot call made right after the claim (see
//! `shell/src/admission.rs`).

use crate::error::ParseError;
use crate::id::{BudgetId, QuotaId};
use crate::keys::{BUDGET_PREFIX, IDX_PREFIX, QUOTA_PREFIX};
use crate::partition::{Partition, PartitionConfig, PartitionFamily};
use std::collections::BTreeMap;

/// Most budgets or quotas one execution may name (each is one more call at claim).
pub const MAX_PER_EXECUTION: usize = 8;

/// The budgets and quotas an execution draws on and the capabilities a
/// worker needs to run it, stored in its hash (`adm`) as `b1,b2;q1;gpu`
/// (names cannot contain `,` or `;`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// Budgets it draws on.
    pub budgets: Vec<BudgetId>,
    /// Quotas that must admit it.
    pub quotas: Vec<QuotaId>,
    /// Capability names (same rules as other names).
    pub capabilities: Vec<String>,
}

impl Admission {
    /// Names nothing (no `adm` field is stored).
    pub fn is_empty(&self) -> bool {
        !self.needs_admission() && self.capabilities.is_empty()
    }

    /// Draws on a budget or quota: the claimer must admit it.
    pub fn needs_admission(&self) -> bool {
        !self.budgets.is_empty() || !self.quotas.is_empty()
    }

    /// The budgets, quotas and capabilities parts, as `ff_create` takes them.
    pub fn encode_parts(&self) -> (String, String, String) {
        let join = |v: Vec<&str>| v.join(",");
        (
            join(self.budgets.iter().map(BudgetId::as_str).collect()),
            join(self.quotas.iter().map(QuotaId::as_str).collect()),
            self.capabilities.join(","),
        )
    }

    /// Read the stored form (`''` = nothing).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() {
            return Ok(Self::default());
        }
        let mut parts = s.split(';');
        let (Some(b), Some(q), caps, None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::Malformed {
                kind: "admission",
                value: s.to_owned(),
                reason: "expected <budgets>;<quotas>[;<capabilities>]",
            });
        };
        Ok(Self {
            budgets: names(b).map(BudgetId::parse).collect::<Result<_, _>>()?,
            quotas: names(q).map(QuotaId::parse).collect::<Result<_, _>>()?,
            capabilities: parse_capabilities(caps.unwrap_or(""))?,
        })
    }
}

/// A comma-separated list of capability names.
pub fn parse_capabilities(s: &str) -> Result<Vec<String>, ParseError> {
    names(s)
        .map(|n| {
            crate::name::validate_name("capability", n, crate::name::MAX_NAME_LEN)
                .map(|_| n.to_owned())
        })
        .collect()
}

/// Can a worker with `have` run an execution that needs `need`?
pub fn capable(need: &[String], have: &[String]) -> bool {
    need.iter().all(|n| have.contains(n))
}

fn names(part: &str) -> impl Iterator<Item = &str> {
    part.split(',').filter(|n| !n.is_empty())
}

/// Set once anything admission-related exists (a budget or quota defined, a
/// worker registered, an execution parked for its route): until then the
/// engine's admission pass costs one `EXISTS` per interval.
pub const IN_USE: &str = "ff:admission";

/// A budget's hash: limits, usage, breach marker, reset schedule.
pub fn budget_key(config: &PartitionConfig, b: &BudgetId) -> String {
    format!("{BUDGET_PREFIX}{}:{b}", budget_partition(config, b))
}

/// Applied usage reports of a budget: `<execution>:<attempt>` → last sequence number.
pub fn budget_seen_key(config: &PartitionConfig, b: &BudgetId) -> String {
    format!("{}:seen", budget_key(config, b))
}

/// The budget partition of a budget (CRC16 of its name).
pub fn budget_partition(config: &PartitionConfig, b: &BudgetId) -> Partition {
    config.partition_of(PartitionFamily::Budget, b.as_str())
}

/// The budgets of a partition (a set of names; the reconciler walks it).
pub fn budgets_index(p: Partition) -> String {
    format!("{IDX_PREFIX}{p}:budgets")
}

/// Budgets with a periodic reset, scored by when it is next due (ms).
pub fn resets_index(p: Partition) -> String {
    format!("{IDX_PREFIX}{p}:resets")
}

/// A quota's hash: window, rate and concurrency limits.
pub fn quota_key(config: &PartitionConfig, q: &QuotaId) -> String {
    format!("{QUOTA_PREFIX}{}:{q}", quota_partition(config, q))
}

/// Admissions inside the window: `<execution>:<epoch>` scored by admission time.
pub fn quota_window_key(config: &PartitionConfig, q: &QuotaId) -> String {
    format!("{}:win", quota_key(config, q))
}

/// Concurrency slot holders: execution id → the lease epoch it was admitted under.
pub fn quota_holders_key(config: &PartitionConfig, q: &QuotaId) -> String {
    format!("{}:holders", quota_key(config, q))
}

/// The quota partition of a quota (CRC16 of its name).
pub fn quota_partition(config: &PartitionConfig, q: &QuotaId) -> Partition {
    config.partition_of(PartitionFamily::Quota, q.as_str())
}

/// The quotas of a partition (a set of names; the reconciler walks it).
pub fn quotas_index(p: Partition) -> String {
    format!("{IDX_PREFIX}{p}:quotas")
}

/// A hard limit is breached once usage reaches it in any dimension: the next
/// execution would overrun it.
pub fn breached(usage: &BTreeMap<String, u64>, hard: &BTreeMap<String, u64>) -> bool {
    hard.iter()
        .any(|(dim, limit)| usage.get(dim).copied().unwrap_or(0) >= *limit)
}

/// A quota's limits; 0 means "no limit" for `max_per_window` and `concurrency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaLimits {
    /// Length of the sliding window (ms).
    pub window_ms: u64,
    /// Most admissions inside one window (0: no rate limit).
    pub max_per_window: u64,
    /// Most executions holding a slot at once (0: no cap).
    pub concurrency: u64,
}

/// Why a quota refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaDecision {
    /// One more may be admitted now.
    Admit,
    /// The window is full; the oldest admission leaves it at `retry_at_ms`.
    Rate {
        /// When the oldest admission leaves the window (server ms).
        retry_at_ms: u64,
    },
    /// Every concurrency slot is held.
    Concurrency,
}

/// Admissions still inside the window at `now`: the window is `(now - window_ms, now]`.
pub fn in_window(limits: &QuotaLimits, now: u64, admitted_at: &[u64]) -> Vec<u64> {
    let floor = now.saturating_sub(limits.window_ms);
    let mut v: Vec<u64> = admitted_at.iter().copied().filter(|&t| t > floor).collect();
    v.sort_unstable();
    v
}

/// May one more execution be admitted at `now`?
pub fn quota_decision(
    limits: &QuotaLimits,
    now: u64,
    admitted_at: &[u64],
    holders: u64,
) -> QuotaDecision {
    let inside = in_window(limits, now, admitted_at);
    if limits.max_per_window > 0 && inside.len() as u64 >= limits.max_per_window {
        // The admission that must leave for a place to open.
        let k = inside.len() - limits.max_per_window as usize;
        return QuotaDecision::Rate {
            retry_at_ms: inside[k] + limits.window_ms,
        };
    }
    if limits.concurrency > 0 && holders >= limits.concurrency {
        return QuotaDecision::Concurrency;
    }
    QuotaDecision::Admit
}

/// How many more executions the quota can admit at `now` (`u64::MAX`: no limit).
pub fn free_slots(limits: &QuotaLimits, now: u64, admitted_at: &[u64], holders: u64) -> u64 {
    let rate = if limits.max_per_window > 0 {
        limits
            .max_per_window
            .saturating_sub(in_window(limits, now, admitted_at).len() as u64)
    } else {
        u64::MAX
    };
    let conc = if limits.concurrency > 0 {
        limits.concurrency.saturating_sub(holders)
    } else {
        u64::MAX
    };
    rate.min(conc)
}

/// The next reset after `now` of a budget reset every `every_ms` whose reset
/// was due at `due`: on the same grid, so a late scanner does not drift it.
pub fn next_reset(due: u64, now: u64, every_ms: u64) -> u64 {
    let every = every_ms.max(1);
    if now < due {
        return due;
    }
    due + ((now - due) / every + 1) * every
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn admission_round_trips() {
        let a = Admission {
            budgets: vec![BudgetId::parse("t1.month").unwrap()],
            quotas: vec![
                QuotaId::parse("api").unwrap(),
                QuotaId::parse("gpu").unwrap(),
            ],
            capabilities: Vec::new(),
        };
        let (b, q, caps) = a.encode_parts();
        assert_eq!(Admission::parse(&format!("{b};{q};{caps}")).unwrap(), a);
        assert_eq!(Admission::parse(&format!("{b};{q}")).unwrap(), a);
        let gpu = Admission::parse(";;gpu,ssd").unwrap();
        assert_eq!(gpu.capabilities, ["gpu", "ssd"]);
        assert!(!gpu.needs_admission() && !gpu.is_empty());
        assert!(capable(
            &gpu.capabilities,
            &["ssd".into(), "gpu".into(), "x".into()]
        ));
        assert!(!capable(&gpu.capabilities, &["gpu".into()]));
        assert!(Admission::parse(";;;").is_err());
        assert!(Admission::parse("").unwrap().is_empty());
        assert!(Admission::parse(";").unwrap().is_empty());
        assert!(Admission::parse("nosemicolon").is_err());
        assert!(Admission::parse("a b;").is_err());
    }

    #[test]
    fn breach_is_reaching_the_limit() {
        let hard: BTreeMap<String, u64> = [("tokens".to_owned(), 10)].into();
        let mut usage = BTreeMap::new();
        assert!(!breached(&usage, &hard));
        usage.insert("tokens".to_owned(), 9);
        assert!(!breached(&usage, &hard));
        usage.insert("tokens".to_owned(), 10);
        assert!(breached(&usage, &hard));
        // A dimension without a hard limit never breaches.
        assert!(!breached(
            &[("cost".to_owned(), 99)].into(),
            &BTreeMap::new()
        ));
    }

    #[test]
    fn window_boundary() {
        let l = QuotaLimits {
            window_ms: 1000,
            max_per_window: 2,
            concurrency: 0,
        };
        assert_eq!(
            quota_decision(&l, 1500, &[600, 900], 0),
            QuotaDecision::Rate { retry_at_ms: 1600 }
        );
        // At 1600 the admission of 600 has left the window (it is (600, 1600]).
        assert_eq!(
            quota_decision(&l, 1600, &[600, 900], 0),
            QuotaDecision::Admit
        );
    }

    proptest! {
        #[test]
        fn decision_agrees_with_free_slots(
            window_ms in 1u64..5000, max in 0u64..6, conc in 0u64..6,
            now in 0u64..20000, admitted in proptest::collection::vec(0u64..20000, 0..12),
            holders in 0u64..8,
        ) {
            let l = QuotaLimits { window_ms, max_per_window: max, concurrency: conc };
            let admitted: Vec<u64> = admitted.into_iter().filter(|&t| t <= now).collect();
            let d = quota_decision(&l, now, &admitted, holders);
            prop_assert_eq!(d == QuotaDecision::Admit, free_slots(&l, now, &admitted, holders) > 0);
            if let QuotaDecision::Rate { retry_at_ms } = d {
                // Refused until retry_at, admitted (by rate) from then on.
                prop_assert!(retry_at_ms > now);
                let at = quota_decision(&QuotaLimits { concurrency: 0, ..l }, retry_at_ms, &admitted, 0);
                prop_assert_eq!(at, QuotaDecision::Admit);
                let before = quota_decision(&QuotaLimits { concurrency: 0, ..l }, retry_at_ms - 1, &admitted, 0);
                let refused = matches!(before, QuotaDecision::Rate { .. });
                prop_assert!(refused);
            }
        }

        #[test]
        fn next_reset_is_on_the_grid_and_in_the_future(
            due in 0u64..1_000_000, late in 0u64..1_000_000, every in 1u64..100_000,
        ) {
            let now = due + late;
            let next = next_reset(due, now, every);
            prop_assert!(next > now);
            prop_assert_eq!((next - due) % every, 0);
            prop_assert!(next - now <= every);
        }
    }
}
