//! The data plane's announcements the engine and workers follow.

/// A wake-up the data plane publishes when a member becomes the earliest of
/// its index: `<index> {fp:N} <due ms>` (`{b:N}` for a budget partition's
/// `resets`; `admission - 0` when a budget, quota or worker registration
/// changed in a way that may admit blocked executions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeMessage {
    /// The index that got a new earliest member.
    pub index: String,
    /// The partition of that index.
    pub partition: u16,
    /// The new earliest due time (server ms).
    pub due_ms: u64,
}

impl WakeMessage {
    /// The channel the Lua publishes on.
    pub const CHANNEL: &'static str = "ff:wake";

    /// Parse a message; `None` if it is malformed.
    pub fn parse(msg: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(msg).ok()?;
        let mut it = text.split(' ');
        let index = it.next()?;
        let tag = it.next()?;
        let due = it.next()?;
        if it.next().is_some() || index.is_empty() || index.len() > 32 {
            return None;
        }
        // `-`: an announcement about no partition in particular (admission).
        let partition = if tag == "-" {
            0
        } else {
            let inner = tag.strip_prefix('{')?.strip_suffix('}')?;
            let (family, num) = inner.split_once(':')?;
            if !matches!(family, "fp" | "b" | "q")
                || num.is_empty()
                || num.len() > 5
                || !num.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            num.parse().ok()?
        };
        Some(Self {
            index: index.to_owned(),
            partition,
            due_ms: due.parse().ok()?,
        })
    }
}

/// A worker announcement the data plane publishes when a lane's eligible
/// index in a partition goes from empty to non-empty: `<lane> {fp:N}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyMessage {
    /// The lane that has work.
    pub lane: String,
    /// The partition where it has work.
    pub partition: u16,
}

impl ReadyMessage {
    /// The channel the Lua publishes on.
    pub const CHANNEL: &'static str = "ff:ready";

    /// Parse a message; `None` if it is malformed.
    pub fn parse(msg: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(msg).ok()?;
        let (lane, tag) = text.split_once(' ')?;
        let num = tag.strip_prefix("{fp:")?.strip_suffix('}')?;
        if num.is_empty() || num.len() > 5 || !num.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            lane: lane.to_owned(),
            partition: num.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod wake_tests {
    use super::{ReadyMessage, WakeMessage};

    #[test]
    fn parses_ready_announcements() {
        assert_eq!(
            ReadyMessage::parse(b"default {fp:12}"),
            Some(ReadyMessage {
                lane: "default".into(),
                partition: 12
            })
        );
        for bad in [
            &b""[..],
            b"default fp:12",
            b"default {fp:}",
            b"default {fp:123456}",
            // (more than 5 digits, though its value would fit)
            b"default {fp:000012}",
            b"default {fp:99999}",
            b"default {fp:1} x",
            b"\xff {fp:1}",
        ] {
            assert_eq!(ReadyMessage::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_what_the_lua_publishes() {
        assert_eq!(
            WakeMessage::parse(b"delayed {fp:17} 1795329852577"),
            Some(WakeMessage {
                index: "delayed".into(),
                partition: 17,
                due_ms: 1795329852577
            })
        );
        assert_eq!(
            WakeMessage::parse(b"resets {b:3} 20").map(|w| (w.index, w.partition, w.due_ms)),
            Some(("resets".into(), 3, 20))
        );
        assert_eq!(
            WakeMessage::parse(b"admission - 0").map(|w| (w.index, w.partition)),
            Some(("admission".into(), 0))
        );
        for bad in [
            &b""[..],
            b"delayed",
            b"delayed {fp:x} 1",
            b"delayed {zz:1} 1",
            b"delayed {fp1} 1",
            b"delayed {fp:1} -1",
            b"a {fp:1} 1 extra",
            b"\xff {fp:1} 1",
        ] {
            assert_eq!(WakeMessage::parse(bad), None, "{bad:?}");
        }
    }
}
