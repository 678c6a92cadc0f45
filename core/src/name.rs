//! Validated names: lanes, namespaces, workers and worker instances.
//!
//! A name becomes part of Valkey keys and index names, so it is bounded and
//! limited to characters that cannot break a key: ASCII letters, digits, `-`,
//! `_`, `.` (no `:`, no braces, no spaces, no control characters).

use crate::error::ParseError;
use std::fmt;

/// Longest accepted name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

pub(crate) fn validate_name(kind: &'static str, s: &str, max: usize) -> Result<(), ParseError> {
    if s.is_empty() {
        return Err(ParseError::Empty { kind });
    }
    if s.len() > max {
        return Err(ParseError::TooLong {
            kind,
            len: s.len(),
            max,
        });
    }
    for (at, ch) in s.char_indices() {
        if !(ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '.') {
            return Err(ParseError::BadChar { kind, ch, at });
        }
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validate and wrap.
            pub fn new(s: impl Into<String>) -> Result<Self, ParseError> {
                let s = s.into();
                validate_name($kind, &s, MAX_NAME_LEN)?;
                Ok(Self(s))
            }
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::new(s)
            }
        }
    };
}

name_type!(
    /// A lane: a named queue executions wait in and workers claim from.
    Lane, "lane"
);
name_type!(
    /// A namespace: the tenant an execution belongs to (scanner filters use it).
    Namespace, "namespace"
);
name_type!(
    /// A worker's name (the pool or deployment it belongs to).
    WorkerName, "worker name"
);
name_type!(
    /// One running worker process (instance) of a worker name.
    WorkerInstance, "worker instance"
);
name_type!(
    /// What kind of work an execution is: workers route it to a handler by kind.
    Kind, "kind"
);
name_type!(
    /// The name of a tag attached to an execution.
    TagName, "tag name"
);
name_type!(
    /// The name of a signal (resume conditions name the signals they wait for).
    SignalName, "signal name"
);

impl Lane {
    /// The lane every deployment has.
    pub fn default_lane() -> Self {
        Self("default".to_owned())
    }
}

impl Namespace {
    /// The namespace executions get when none is given: `default`.
    pub fn default_namespace() -> Self {
        Self(crate::contract::record::DEFAULT_NAMESPACE.to_owned())
    }
}
