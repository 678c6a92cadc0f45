//! Ids: execution, flow, edge, budget, quota, lease, attempt, waitpoint, signal.
//!
//! Generated ids are 128 random bits written as 32 lowercase hex digits; the
//! randomness comes from the caller (the shell), so core stays pure and the
//! simulator stays deterministic. An execution id carries its partition's hash
//! tag (`{fp:N}:<hex>`): the partition is read from the id, never re-hashed, and
//! every key built from the id lands in that partition's slot.

use crate::error::ParseError;
use crate::name::validate_name;
use crate::partition::{Partition, PartitionFamily};
use std::fmt;
use std::str::FromStr;

const HEX_LEN: usize = 32;

fn hex128(v: u128) -> String {
    format!("{v:032x}")
}

fn check_hex(kind: &'static str, s: &str) -> Result<(), ParseError> {
    if s.len() != HEX_LEN || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ParseError::Malformed {
            kind,
            value: s.chars().take(80).collect(),
            reason: "expected 32 lowercase hex digits",
        });
    }
    Ok(())
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Build from 128 random bits supplied by the caller.
            pub fn from_u128(v: u128) -> Self {
                Self(hex128(v))
            }
            /// Parse 32 lowercase hex digits.
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                check_hex($kind, s)?;
                Ok(Self(s.to_owned()))
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse(s)
            }
        }
    };
}

hex_id!(
    /// A flow (a DAG of executions). Its partition is CRC16 of the id.
    FlowId, "flow id"
);
hex_id!(
    /// A dependency edge of a flow.
    EdgeId, "edge id"
);
hex_id!(
    /// One lease handed to a worker; with the epoch it fences stale workers.
    LeaseId, "lease id"
);
hex_id!(
    /// A waitpoint an execution suspends on.
    WaitpointId, "waitpoint id"
);
hex_id!(
    /// A signal delivered to a waitpoint.
    SignalId, "signal id"
);

macro_rules! named_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validate as a name and wrap.
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                validate_name($kind, s, crate::name::MAX_NAME_LEN)?;
                Ok(Self(s.to_owned()))
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse(s)
            }
        }
    };
}

named_id!(
    /// A budget, named by its owner (e.g. `tenant-7.monthly`).
    BudgetId, "budget id"
);
named_id!(
    /// A quota, named by its owner.
    QuotaId, "quota id"
);

/// An execution: `{fp:N}:<32 hex>`, where `{fp:N}` is its partition's hash tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionId {
    text: String,
    partition: u16,
}

impl ExecutionId {
    /// A new id in `partition` from 128 random bits.
    pub fn new(partition: u16, random: u128) -> Self {
        Self {
            text: format!("{{fp:{partition}}}:{}", hex128(random)),
            partition,
        }
    }

    /// Parse `{fp:N}:<32 hex>`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let bad = |reason| ParseError::Malformed {
            kind: "execution id",
            value: s.chars().take(80).collect(),
            reason,
        };
        let rest = s
            .strip_prefix("{fp:")
            .ok_or_else(|| bad("expected prefix {fp:N}:"))?;
        let (num, hex) = rest
            .split_once("}:")
            .ok_or_else(|| bad("expected prefix {fp:N}:"))?;
        if num.is_empty() || num.len() > 5 || !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("partition is not a number"));
        }
        if num.len() > 1 && num.starts_with('0') {
            return Err(bad("partition has a leading zero"));
        }
        let partition: u16 = num.parse().map_err(|_| bad("partition out of range"))?;
        check_hex("execution id", hex)?;
        Ok(Self {
            text: s.to_owned(),
            partition,
        })
    }

    /// The partition index this execution lives in.
    pub fn partition_index(&self) -> u16 {
        self.partition
    }

    /// The partition this execution lives in.
    pub fn partition(&self) -> Partition {
        Partition::new(PartitionFamily::Flow, self.partition)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for ExecutionId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

/// One attempt of an execution: `<execution id>/<n>`, n counting from 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttemptId {
    /// The execution.
    pub execution: ExecutionId,
    /// Attempt number, from 1.
    pub index: u32,
}

impl AttemptId {
    /// Parse `<execution id>/<n>`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let bad = |reason| ParseError::Malformed {
            kind: "attempt id",
            value: s.chars().take(80).collect(),
            reason,
        };
        let (eid, n) = s
            .rsplit_once('/')
            .ok_or_else(|| bad("expected <execution id>/<n>"))?;
        if n.is_empty()
            || n.len() > 10
            || !n.bytes().all(|b| b.is_ascii_digit())
            || n.starts_with('0')
        {
            return Err(bad("attempt number is not a positive integer"));
        }
        let index: u32 = n.parse().map_err(|_| bad("attempt number out of range"))?;
        Ok(Self {
            execution: ExecutionId::parse(eid)?,
            index,
        })
    }
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.execution, self.index)
    }
}

impl FromStr for AttemptId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}
