//! A failed attempt as it is stored and read back: what kind of error, its
//! message, the chain of causes, and whether it was retryable — not just a
//! string.
//!
//! Stored in the record's `error` field as a small JSON object (the worker
//! writes it, bounded to fit the field); a failure the engine wrote itself
//! (an attempt timeout, a lease reclaimed too often) is plain text and reads
//! back with kind [`Failure::ENGINE`].

use ff_core::contract::limits::MAX_REASON_BYTES;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of error: the error's type for one converted from a
    /// `std::error::Error`, [`Failure::MESSAGE`] for a plain message,
    /// [`Failure::PANIC`], [`Failure::DECODE`], or [`Failure::ENGINE`].
    pub kind: String,
    /// The error's own message.
    pub message: String,
    /// Its causes, outermost first (`source()` after `source()`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
    /// Whether the handler asked for a retry (the policy may have had none left).
    #[serde(default)]
    pub retryable: bool,
}

impl Failure {
    /// Kind of a failure made from a message.
    pub const MESSAGE: &'static str = "message";
    /// Kind of a handler that panicked.
    pub const PANIC: &'static str = "panic";
    /// Kind of a payload that did not decode.
    pub const DECODE: &'static str = "decode";
    /// Kind of a failure the engine recorded (timeouts, reclaims).
    pub const ENGINE: &'static str = "engine";

    /// A failure with only a message.
    pub fn message(kind: &str, message: impl fmt::Display, retryable: bool) -> Self {
        Self {
            kind: kind.to_owned(),
            message: message.to_string(),
            chain: Vec::new(),
            retryable,
        }
    }

    /// A failure from an error: its type, message and chain of causes.
    pub fn from_error<E: std::error::Error + ?Sized>(kind: &str, e: &E, retryable: bool) -> Self {
        let mut chain = Vec::new();
        let mut cause = e.source();
        while let Some(c) = cause {
            chain.push(c.to_string());
            cause = c.source();
        }
        Self {
            kind: kind.to_owned(),
            message: e.to_string(),
            chain,
            retryable,
        }
    }

    /// As stored: JSON, cut to fit the record's field (the chain's tail
    /// first, then the message).
    pub fn encode(&self) -> String {
        let mut f = self.clone();
        loop {
            let text = serde_json::to_string(&f).unwrap_or_default();
            if text.len() <= MAX_REASON_BYTES {
                return text;
            }
            if f.chain.pop().is_none() {
                if f.message.is_empty() {
                    f.kind.truncate(64);
                }
                let keep = f
                    .message
                    .len()
                    .saturating_sub(text.len() - MAX_REASON_BYTES + 8);
                let mut cut = keep;
                while !f.message.is_char_boundary(cut) {
                    cut -= 1;
                }
                f.message.truncate(cut);
                f.message.push('…');
            }
        }
    }

    /// Read back what [`Failure::encode`] stored, or a failure the engine
    /// wrote as text.
    pub fn decode(stored: &str) -> Self {
        serde_json::from_str(stored)
            .ok()
            .unwrap_or_else(|| Failure::message(Failure::ENGINE, stored, false))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        for c in &self.chain {
            write!(f, ": {c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("sending failed")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_error_keeps_its_kind_and_chain_through_the_store() {
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "smtp timed out",
        ));
        let f = Failure::from_error("mail::Outer", &e, true);
        assert_eq!(f.chain, vec!["smtp timed out".to_owned()]);
        let back = Failure::decode(&f.encode());
        assert_eq!(back, f);
        assert_eq!(
            back.to_string(),
            "mail::Outer: sending failed: smtp timed out"
        );
    }

    #[test]
    fn text_the_engine_wrote_reads_as_an_engine_failure() {
        let f = Failure::decode("attempt timed out");
        assert_eq!(
            (f.kind.as_str(), f.message.as_str()),
            (Failure::ENGINE, "attempt timed out")
        );
    }

    #[test]
    fn a_long_failure_is_cut_to_fit_the_field_and_still_decodes() {
        let mut f = Failure::message(Failure::MESSAGE, "é".repeat(5_000), true);
        f.chain = vec!["x".repeat(3_000); 3];
        let text = f.encode();
        assert!(text.len() <= MAX_REASON_BYTES, "{}", text.len());
        let back = Failure::decode(&text);
        assert_eq!(back.kind, Failure::MESSAGE);
        assert!(back.chain.is_empty());
        assert!(back.message.starts_with("éé") && back.message.ends_with('…'));
    }
}
