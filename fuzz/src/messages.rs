//! The `messages` target: the pub/sub notifications the data plane publishes
//! and the engine and workers decode — wake-ups (`<index> {fp:N} <due ms>`,
//! [`WakeMessage`]), ready announcements (`<lane> {fp:N}`,
//! [`ReadyMessage`]) and flow member completions (`<execution id> <outcome>
//! <0|1>`, [`CompletionMessage`]).

use ff_core::flow::CompletionMessage;
use ff_core::scan::{ReadyMessage, WakeMessage};

/// Fuzz target `messages`: the input (raw bytes) to every parser. None may
/// panic; what parses satisfies the format and re-encodes to a message that
/// parses to the same value (and to exactly the input when the input was
/// canonical; a completion's parser accepts only canonical text); no input is
/// two kinds.
pub fn messages(data: &[u8]) {
    let wake = WakeMessage::parse(data);
    let ready = ReadyMessage::parse(data);
    assert!(
        wake.is_none() || ready.is_none(),
        "{data:?} parsed as both a wake-up and a ready announcement"
    );
    if let Ok(c) = CompletionMessage::parse(data) {
        assert!(wake.is_none() && ready.is_none(), "{data:?} is two kinds");
        assert_eq!(c.encode().as_bytes(), data);
        // The partition is the one in the id's hash tag.
        let tag = format!("{}:", c.execution.partition().hash_tag());
        assert!(data.starts_with(tag.as_bytes()));
    }
    if let Some(w) = wake {
        assert!(!w.index.is_empty() && w.index.len() <= 32);
        assert!(!w.index.contains(' '));
        let text = format!("{} {{fp:{}}} {}", w.index, w.partition, w.due_ms);
        assert_eq!(WakeMessage::parse(text.as_bytes()).as_ref(), Some(&w));
        assert!(ReadyMessage::parse(text.as_bytes()).is_none());
        if canonical(data) {
            assert_eq!(text.as_bytes(), data);
        }
    }
    if let Some(r) = ready {
        assert!(!r.lane.contains(' '));
        let text = format!("{} {{fp:{}}}", r.lane, r.partition);
        assert_eq!(ReadyMessage::parse(text.as_bytes()).as_ref(), Some(&r));
        assert!(WakeMessage::parse(text.as_bytes()).is_none());
        if canonical(data) {
            assert_eq!(text.as_bytes(), data);
        }
    }
}

/// No number in the message has a sign or a leading zero (as the Lua writes
/// them): such a message must re-encode to itself.
fn canonical(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Some((_, rest)) = text.split_once(" {fp:") else {
        return false;
    };
    rest.split(['}', ' '])
        .filter(|n| !n.is_empty())
        .all(|n| n == "0" || !(n.starts_with('0') || n.starts_with('+')))
}

/// The seeds of `corpus/messages/`, as the Lua publishes them and near misses.
pub fn seeds() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("wake_delayed", b"delayed {fp:17} 1795329852577"),
        ("wake_lease_expiry", b"lease_expiry {fp:0} 1700000030000"),
        ("ready_default", b"default {fp:12}"),
        ("ready_dotted_lane", b"email.send-v2 {fp:65535}"),
        ("near_miss_big_partition", b"default {fp:65536}"),
        ("near_miss_signed_due", b"deadline {fp:3} +5"),
        ("near_miss_extra_field", b"terminal {fp:1} 5 6"),
        (
            "completion_pending",
            b"{fp:17}:00000000000000000000000000000001 failed 1",
        ),
        (
            "completion_done",
            b"{fp:0}:0000000000000000000000000000abcd success 0",
        ),
        (
            "near_miss_completion_flag",
            b"{fp:3}:0000000000000000000000000000abcd skipped 2",
        ),
    ]
}
