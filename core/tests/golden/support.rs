//! Reply builders and argument readers shared by the golden tests.

use ff_core::contract::{Call, CallError};
use ff_core::reply::Reply;
use ff_core::FfError;

/// `{1, items...}`: a success reply.
pub fn ok(items: Vec<Reply>) -> Reply {
    let mut v = vec![Reply::Int(1)];
    v.extend(items);
    Reply::Array(v)
}

/// An integer field.
pub fn i(n: i64) -> Reply {
    Reply::Int(n)
}

/// A bulk string field.
pub fn b(s: &str) -> Reply {
    Reply::bulk(s)
}

/// The call's ARGV as text (every golden argument here is UTF-8).
pub fn args(c: &Call) -> Vec<String> {
    c.args
        .iter()
        .map(|a| String::from_utf8(a.clone()).unwrap())
        .collect()
}

/// Asserts a call's function, keys, ARGV and flags at once.
#[track_caller]
pub fn assert_call(c: &Call, function: &str, keys: &[&str], argv: &[&str], read_only: bool) {
    assert_eq!(c.function, function);
    assert_eq!(c.keys, keys);
    assert_eq!(args(c), argv);
    assert_eq!(c.read_only, read_only, "read_only of {function}");
}

/// A reply whose decode must fail as malformed (not a refusal).
#[track_caller]
pub fn assert_decode_error<T: std::fmt::Debug>(r: Result<T, CallError>) {
    match r {
        Err(CallError::Decode(_)) => {}
        other => panic!("expected a decode error, got {other:?}"),
    }
}

/// `{0, code, detail}`: a refusal reply must decode to the typed refusal.
pub fn refusal() -> Reply {
    Reply::Array(vec![i(0), b("stale_lease"), b("")])
}

#[track_caller]
pub fn assert_refused<T: std::fmt::Debug>(r: Result<T, CallError>) {
    assert_eq!(
        r.unwrap_err(),
        CallError::Rejected(FfError::StaleLease),
        "refusal"
    );
}
