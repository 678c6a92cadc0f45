//! Retry policy and the backoff computation.
//!
//! The Lua `fail` function applies the same formula to the policy stored with the
//! execution (`lua/execution.lua`, `backoff_ms`); the integration tests check the
//! two agree.

use crate::error::ParseError;

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

/// How an execution's failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 means a failure is final.
    pub max_retries: u32,
    /// The delay before each retry.
    pub backoff: Backoff,
}

/// Upper bound for any single backoff and the retry count (keeps the encoded
/// policy and the Lua arithmetic well inside exact double range).
pub const MAX_BACKOFF_MS: u64 = 30 * 24 * 3600 * 1000;
/// Most retries a policy may allow.
pub const MAX_RETRIES: u32 = 10_000;

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            backoff: Backoff::Exponential {
                initial_ms: 1_000,
                max_ms: 60_000,
            },
        }
    }
}

impl RetryPolicy {
    /// No retries: a failure is final.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            backoff: Backoff::Fixed { delay_ms: 0 },
        }
    }

    /// Up to `max_retries` retries, `delay_ms` apart.
    pub fn fixed(max_retries: u32, delay_ms: u64) -> Self {
        Self {
            max_retries,
            backoff: Backoff::Fixed { delay_ms },
        }
    }

    /// Up to `max_retries` retries, doubling from `initial_ms` up to `max_ms`.
    pub fn exponential(max_retries: u32, initial_ms: u64, max_ms: u64) -> Self {
        Self {
            max_retries,
            backoff: Backoff::Exponential { initial_ms, max_ms },
        }
    }

    /// Delay before retry number `n` (1-based; `n = 0` is treated as 1).
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

    /// The stored form: `<max>:f:<delay>` or `<max>:e:<initial>:<max_ms>`.
    pub fn encode(&self) -> String {
        match self.backoff {
            Backoff::Fixed { delay_ms } => format!("{}:f:{delay_ms}", self.max_retries),
            Backoff::Exponential { initial_ms, max_ms } => {
                format!("{}:e:{initial_ms}:{max_ms}", self.max_retries)
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
        let parts: Vec<&str> = s.split(':').collect();
        let num = |p: &str| p.parse::<u64>().map_err(|_| bad("expected a number"));
        let policy = match parts.as_slice() {
            [max, "f", d] => RetryPolicy::fixed(num(max)? as u32, num(d)?),
            [max, "e", i, m] => RetryPolicy::exponential(num(max)? as u32, num(i)?, num(m)?),
            _ => return Err(bad("expected <max>:f:<ms> or <max>:e:<initial>:<max>")),
        };
        if num(parts[0])? > MAX_RETRIES as u64 {
            return Err(bad("max_retries out of range"));
        }
        policy.validate().map_err(|_| bad("out of range"))?;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> impl Strategy<Value = RetryPolicy> {
        prop_oneof![
            (0..=MAX_RETRIES, 0..=MAX_BACKOFF_MS).prop_map(|(m, d)| RetryPolicy::fixed(m, d)),
            (0..=MAX_RETRIES, 0..=MAX_BACKOFF_MS, 0..=MAX_BACKOFF_MS)
                .prop_map(|(m, a, b)| RetryPolicy::exponential(m, a.min(b), a.max(b))),
        ]
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
}
