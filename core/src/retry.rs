//! Retry policy and the backoff computation.
//!
//! The Lua `fail` function applies the same formula to the policy stored with the
//! execution (`lua/execution.lua`, `retry_delay_ms`); the integration tests check
//! the two agree.

use crate::error::ParseError;
use crate::id::ExecutionId;

/// How long to wait before retry number `n` (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// The same delay before every retry.
    Fixed {
        /// The delay, in ms.
        delay_ms: u64,
    },
    /// `initial_ms * 2^(n-1)`, capped at `max_ms`.
    Exponential {
        /// The first retry's delay, in ms.
        initial_ms: u64,
        /// The longest delay, in ms.
        max_ms: u64,
    },
}

/// How much of each backoff is left to chance, so that executions failing
/// together (an outage) do not all retry at the same moments.
///
/// The chance is not random: it is a hash of the execution id and the retry
/// number, computed the same way here and in the Lua, so the delay is the same
/// on a replica, in a replay and in the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// The backoff as computed.
    #[default]
    None,
    /// Uniform in `[0, d]` for a backoff `d`: the widest spread.
    Full,
    /// `d/2` plus uniform in `[0, d/2]`: spread, but at least half the backoff.
    Equal,
}

impl Jitter {
    /// The suffix of the stored policy (`None` has none: policies stored
    /// before jitter existed read as `None`).
    fn suffix(self) -> &'static str {
        match self {
            Jitter::None => "",
            Jitter::Full => ":full",
            Jitter::Equal => ":equal",
        }
    }
}

/// How an execution's failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 means a failure is final.
    pub max_retries: u32,
    /// The delay before each retry.
    pub backoff: Backoff,
    /// How the delay is spread.
    pub jitter: Jitter,
}

/// Upper bound for any single backoff and the retry count (keeps the encoded
/// policy and the Lua arithmetic well inside exact double range).
pub const MAX_BACKOFF_MS: u64 = 30 * 24 * 3600 * 1000;
/// Most retries a policy may allow.
pub const MAX_RETRIES: u32 = 10_000;

/// Bits of the jitter fraction: `(d + 1) * r` stays below 2^53 (exact in the
/// Lua's doubles) for every `d <= MAX_BACKOFF_MS < 2^32`.
const JITTER_BITS: u32 = 21;

/// The jitter fraction of retry `n` of `execution`, in `[0, 2^21)`: FNV-1a 32
/// over `<execution id>:<n>`, then murmur3's finalizer (FNV-1a alone moves a
/// change in the last bytes, the retry number, into few high bits). The Lua
/// twin is `jitter_fraction` in `lua/execution.lua`.
fn jitter_fraction(execution: &ExecutionId, n: u32) -> u64 {
    let h = fmix32(fnv1a32(format!("{execution}:{n}").as_bytes()));
    u64::from(h >> (32 - JITTER_BITS))
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

impl Default for RetryPolicy {
    /// 3 retries, exponential from 1 s to 60 s, equal jitter: an outage fails
    /// many executions at once, and without jitter they would all retry at
    /// the same moments; equal jitter keeps at least half of each delay.
    fn default() -> Self {
        Self::exponential(3, 1_000, 60_000).jitter(Jitter::Equal)
    }
}

impl RetryPolicy {
    /// No retries: a failure is final.
    pub fn none() -> Self {
        Self::fixed(0, 0)
    }

    /// Up to `max_retries` retries, `delay_ms` apart (no jitter).
    pub fn fixed(max_retries: u32, delay_ms: u64) -> Self {
        Self {
            max_retries,
            backoff: Backoff::Fixed { delay_ms },
            jitter: Jitter::None,
        }
    }

    /// Up to `max_retries` retries, doubling from `initial_ms` up to `max_ms`
    /// (no jitter).
    pub fn exponential(max_retries: u32, initial_ms: u64, max_ms: u64) -> Self {
        Self {
            max_retries,
            backoff: Backoff::Exponential { initial_ms, max_ms },
            jitter: Jitter::None,
        }
    }

    /// The same policy with its delays spread by `jitter`, e.g.
    /// `RetryPolicy::exponential(5, 100, 10_000).jitter(Jitter::Full)`.
    pub fn jitter(self, jitter: Jitter) -> Self {
        Self { jitter, ..self }
    }

    /// The delay before retry number `n` (1-based) of `execution`: the
    /// backoff with its jitter applied, as the data plane schedules it.
    pub fn delay_ms(&self, execution: &ExecutionId, n: u32) -> u64 {
        let d = self.backoff_ms(n);
        let r = u128::from(jitter_fraction(execution, n));
        // uniform in [0, span], in steps of 2^-21 of it (u128: no overflow
        // for a policy built by hand past the bounds)
        let spread = |span: u64| (((u128::from(span) + 1) * r) >> JITTER_BITS) as u64;
        match self.jitter {
            Jitter::None => d,
            Jitter::Full => spread(d),
            Jitter::Equal => d - d / 2 + spread(d / 2),
        }
    }

    /// The backoff before retry number `n` (1-based; `n = 0` is treated as
    /// 1) without jitter: the longest [`delay_ms`](Self::delay_ms) may be.
    pub fn backoff_ms(&self, n: u32) -> u64 {
        match self.backoff {
            Backoff::Fixed { delay_ms } => delay_ms,
            Backoff::Exponential { initial_ms, max_ms } => {
                let shift = n.max(1) - 1;
                let factor = if shift >= 63 { u64::MAX } else { 1u64 << shift };
                initial_ms.saturating_mul(factor).min(max_ms)
            }
        }
    }

    /// Check the bounds; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_retries > MAX_RETRIES {
            return Err(format!(
                "max_retries {} exceeds {MAX_RETRIES}",
                self.max_retries
            ));
        }
        match self.backoff {
            Backoff::Fixed { delay_ms } if delay_ms > MAX_BACKOFF_MS => {
                Err(format!("backoff delay {delay_ms} ms exceeds {MAX_BACKOFF_MS} ms"))
            }
            Backoff::Exponential { initial_ms, max_ms } if max_ms > MAX_BACKOFF_MS || initial_ms > max_ms => {
                Err(format!("exponential backoff needs initial ({initial_ms}) <= max ({max_ms}) <= {MAX_BACKOFF_MS} ms"))
            }
            _ => Ok(()),
        }
    }

    /// The stored form: `<max>:f:<delay>` or `<max>:e:<initial>:<max_ms>`,
    /// then `:full` or `:equal` when jittered.
    pub fn encode(&self) -> String {
        let jitter = self.jitter.suffix();
        match self.backoff {
            Backoff::Fixed { delay_ms } => format!("{}:f:{delay_ms}{jitter}", self.max_retries),
            Backoff::Exponential { initial_ms, max_ms } => {
                format!("{}:e:{initial_ms}:{max_ms}{jitter}", self.max_retries)
            }
        }
    }

    /// Parse the stored form (the inverse of `encode`).
    pub fn decode(s: &str) -> Result<Self, ParseError> {
        let bad = |reason| ParseError::Malformed {
            kind: "retry policy",
            value: s.chars().take(80).collect(),
            reason,
        };
        let mut parts: Vec<&str> = s.split(':').collect();
        let jitter = match parts.last() {
            Some(&"full") => Jitter::Full,
            Some(&"equal") => Jitter::Equal,
            _ => Jitter::None,
        };
        if jitter != Jitter::None {
            parts.pop();
        }
        let num = |p: &str| p.parse::<u64>().map_err(|_| bad("expected a number"));
        let policy = match parts.as_slice() {
            [max, "f", d] => RetryPolicy::fixed(num(max)? as u32, num(d)?),
            [max, "e", i, m] => RetryPolicy::exponential(num(max)? as u32, num(i)?, num(m)?),
            _ => return Err(bad(
                "expected <max>:f:<ms> or <max>:e:<initial>:<max>, optionally then :full or :equal",
            )),
        };
        if num(parts[0])? > MAX_RETRIES as u64 {
            return Err(bad("max_retries out of range"));
        }
        policy.validate().map_err(|_| bad("out of range"))?;
        Ok(policy.jitter(jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn jitter() -> impl Strategy<Value = Jitter> {
        prop_oneof![Just(Jitter::None), Just(Jitter::Full), Just(Jitter::Equal)]
    }

    fn policy() -> impl Strategy<Value = RetryPolicy> {
        let backoff = prop_oneof![
            (0..=MAX_RETRIES, 0..=MAX_BACKOFF_MS).prop_map(|(m, d)| RetryPolicy::fixed(m, d)),
            (0..=MAX_RETRIES, 0..=MAX_BACKOFF_MS, 0..=MAX_BACKOFF_MS)
                .prop_map(|(m, a, b)| RetryPolicy::exponential(m, a.min(b), a.max(b))),
        ];
        (backoff, jitter()).prop_map(|(p, j)| p.jitter(j))
    }

    fn execution() -> impl Strategy<Value = ExecutionId> {
        (0u16..256, any::<u128>()).prop_map(|(p, r)| ExecutionId::new(p, r))
    }

    proptest! {
        #[test]
        fn backoff_is_monotone_and_capped(p in policy(), n in 1u32..200) {
            let (a, b) = (p.backoff_ms(n), p.backoff_ms(n + 1));
            prop_assert!(a <= b);
            if let Backoff::Exponential { max_ms, .. } = p.backoff {
                prop_assert!(b <= max_ms);
            }
        }

        #[test]
        fn delay_is_within_the_jitter_window(p in policy(), e in execution(), n in 1u32..=MAX_RETRIES) {
            let (d, delay) = (p.backoff_ms(n), p.delay_ms(&e, n));
            match p.jitter {
                Jitter::None => prop_assert_eq!(delay, d),
                Jitter::Full => prop_assert!(delay <= d),
                Jitter::Equal => prop_assert!(d - d / 2 <= delay && delay <= d, "{} of {}", delay, d),
            }
        }

        #[test]
        fn delay_is_a_function_of_the_execution_and_the_retry(p in policy(), e in execution(), n in 1u32..100) {
            let again = ExecutionId::parse(e.as_str()).unwrap();
            prop_assert_eq!(p.delay_ms(&e, n), p.delay_ms(&again, n));
            let decoded = RetryPolicy::decode(&p.encode()).unwrap();
            prop_assert_eq!(p.delay_ms(&e, n), decoded.delay_ms(&e, n));
        }

        #[test]
        fn different_executions_get_different_delays(base in any::<u128>(), n in 1u32..20, j in prop_oneof![Just(Jitter::Full), Just(Jitter::Equal)]) {
            // Ids one apart, the hardest case for a weak hash.
            let p = RetryPolicy::fixed(20, 60_000).jitter(j);
            let delays: std::collections::BTreeSet<u64> = (0..32u128)
                .map(|i| p.delay_ms(&ExecutionId::new(7, base.wrapping_add(i)), n))
                .collect();
            // 32 draws from ~30,000-60,000 values: a collision or two at most.
            prop_assert!(delays.len() >= 30, "{:?}", delays);
        }

        #[test]
        fn encode_round_trips(p in policy()) {
            prop_assert_eq!(RetryPolicy::decode(&p.encode()), Ok(p));
        }

        #[test]
        fn decode_never_panics(s in ".{0,40}") {
            let _ = RetryPolicy::decode(&s);
        }
    }

    #[test]
    fn exponential_doubles() {
        let p = RetryPolicy::exponential(5, 100, 1_000);
        let seq: Vec<u64> = (1..=6).map(|n| p.backoff_ms(n)).collect();
        assert_eq!(seq, vec![100, 200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn policies_stored_before_jitter_decode_unjittered() {
        let p = RetryPolicy::decode("3:e:1000:60000").unwrap();
        assert_eq!(p, RetryPolicy::exponential(3, 1_000, 60_000));
        assert_eq!(p.jitter, Jitter::None);
        assert_eq!(RetryPolicy::fixed(2, 50).encode(), "2:f:50");
        let full = RetryPolicy::fixed(2, 50).jitter(Jitter::Full);
        assert_eq!(full.encode(), "2:f:50:full");
        assert_eq!(RetryPolicy::default().encode(), "3:e:1000:60000:equal");
        for bad in [
            "2:f:50:none",
            "2:f:50:FULL",
            "2:f:full",
            "2:f:50:full:full",
            "2:e:1:2:",
        ] {
            assert!(RetryPolicy::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_hash_is_fnv1a_32_then_murmur3s_finalizer() {
        // FNV-1a 32 test vectors (the reference's).
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
        assert_eq!(fmix32(0), 0);
    }

    #[test]
    fn jitter_spreads_evenly_over_executions_and_retries() {
        // Ten equal buckets of [0, d]: sequential ids and consecutive retries
        // each fill every bucket to within a fifth of its share.
        let p = RetryPolicy::fixed(10_000, 1_000_000).jitter(Jitter::Full);
        let check = |delays: Vec<u64>| {
            let mut buckets = [0usize; 10];
            for d in &delays {
                buckets[(*d as usize * 10 / 1_000_001).min(9)] += 1;
            }
            let share = delays.len() / 10;
            assert!(
                buckets
                    .iter()
                    .all(|b| b * 5 > share * 4 && b * 5 < share * 6),
                "{buckets:?}"
            );
        };
        check(
            (0..10_000u128)
                .map(|i| p.delay_ms(&ExecutionId::new(3, i), 1))
                .collect(),
        );
        let one = ExecutionId::new(3, 42);
        check((1..=10_000u32).map(|n| p.delay_ms(&one, n)).collect());
    }
}
