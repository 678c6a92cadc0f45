//! The FCALL contracts: each Valkey Function the shell calls is declared here
//! once — its name, how its KEYS and ARGV are built from typed arguments, and
//! how its reply decodes into a typed result.
//!
//! Reply convention (all functions in `lua/`): `{1, ...}` on success, or
//! `{0, code, detail}` for a data-plane error (the call changed nothing).
//!
//! Keys: `KEYS[1]` is the call's anchor (the execution's hash, or a partition
//! index) and routes the call to its slot. Further keys of the same partition
//! are derived inside Lua from the anchor's hash tag (`lua/keys.lua`, built on
//! [`crate::keys`]' prefixes by way of [`crate::lua_facts`]), so they always share the slot; passing them all from the
//! client would cost an extra read before calls like cancel (which index is the
//! execution in?) and claim (which executions are eligible?).
//!
//! Repeats: a store may send a call again when its connection dropped before
//! the reply came, so the first send may have applied ("applied, reply
//! lost"). Every function validates state before it writes, and each
//! contract function's `Repeat:` paragraph says what the second send does;
//! the few that would act twice are built [`Call::not_repeatable`].

pub mod admission;
pub mod execution;
pub mod flow;
pub mod limits;
pub mod operator;
pub mod ownership;
pub mod record;
pub mod scan;
pub mod schedule;
pub mod suspension;
pub mod watch;

use crate::error::FfError;
use crate::reply::{DecodeError, Fields, Reply};
use thiserror::Error;

/// One FCALL, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The function's name in the library.
    pub function: &'static str,
    /// KEYS; the first anchors the call's slot.
    pub keys: Vec<String>,
    /// ARGV, as bytes.
    pub args: Vec<Vec<u8>>,
    /// Sent as FCALL_RO (may run on a replica; never writes).
    pub read_only: bool,
    /// The store may send it again when the connection dropped before the
    /// reply came (the first send may have applied): true for every call but
    /// the few whose repeat would act twice (each contract's `Repeat:` says
    /// what a repeat does; docs/architecture.md has the table).
    pub repeatable: bool,
}

impl Call {
    /// A call of `function` on `keys`, no arguments yet.
    pub fn new(function: &'static str, keys: Vec<String>) -> Self {
        Self {
            function,
            keys,
            args: Vec::new(),
            read_only: false,
            repeatable: true,
        }
    }

    /// Append an argument as its text.
    pub fn arg(mut self, a: impl ToString) -> Self {
        self.args.push(a.to_string().into_bytes());
        self
    }

    /// Append an argument as raw bytes.
    pub fn arg_bytes(mut self, a: &[u8]) -> Self {
        self.args.push(a.to_vec());
        self
    }

    /// Mark it read-only (sent as FCALL_RO).
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Mark it not to be sent again after a lost reply: a repeat would act
    /// twice (the caller decides whether to retry, knowing it may have applied).
    pub fn not_repeatable(mut self) -> Self {
        self.repeatable = false;
        self
    }
}

/// A call's failure as the contract sees it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CallError {
    /// The function ran and refused (nothing changed).
    #[error(transparent)]
    Rejected(#[from] FfError),
    /// The reply did not have the declared shape.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Split a reply into its success fields, or the typed rejection.
pub fn ok_fields<'a>(function: &'static str, reply: &'a Reply) -> Result<Fields<'a>, CallError> {
    let items = match reply {
        Reply::Array(items) => items,
        Reply::Error(e) => {
            return Err(DecodeError {
                function,
                reason: format!("server error: {e}"),
            }
            .into())
        }
        other => {
            return Err(DecodeError {
                function,
                reason: format!("expected an array, got {other:?}"),
            }
            .into())
        }
    };
    let mut f = Fields::new(function, items);
    match f.int("status")? {
        1 => Ok(f),
        0 => {
            let code = f.text("error code")?;
            // The detail may echo a refused argument, which can be any bytes.
            let detail = if f.remaining() > 0 {
                f.lossy_text("error detail")?
            } else {
                String::new()
            };
            Err(FfError::from_code(&code, &detail).into())
        }
        s => Err(f.error(format!("status {s} is neither 0 nor 1")).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_decodes_whatever_bytes_its_detail_echoes() {
        // Found by the `data_plane` fuzz target: Lua's int_arg echoes the
        // refused argument, so the detail may be any bytes; it used to fail
        // to decode (a decode error instead of the typed refusal).
        let reply = Reply::Array(vec![
            Reply::Int(0),
            Reply::bulk("invalid_argument"),
            Reply::Bulk(b"delay_ms:expected an integer, got \xff\xfe".to_vec()),
        ]);
        match ok_fields("ff_delay", &reply) {
            Err(CallError::Rejected(FfError::InvalidArgument { field, reason })) => {
                assert_eq!(field, "delay_ms");
                assert!(reason.starts_with("expected an integer, got "));
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
    }
}
