//! Contracts of suspension, waitpoints and signals (`lua/suspension.lua`).
//!
//! A waitpoint is addressed by its execution id and its own id (it lives on
//! the execution's partition). Whoever signals it must present its token,
//! `<kid>.<hex HMAC-SHA256>` under a server secret held in Valkey; tokens and
//! secrets never show in `Debug` output.

use super::execution::Lease;
use super::{limits, ok_fields, Call, CallError};
use crate::error::ParseError;
use crate::id::{ExecutionId, WaitpointId};
use crate::keys::{self, IdempotencyKey, PartitionKeys};
use crate::name::SignalName;
use crate::partition::Partition;
use crate::reply::{DecodeError, Fields, Reply};
use std::collections::BTreeMap;
use std::fmt;

/// A waitpoint token: proves a signal belongs to its waitpoint. Debug output
/// shows only the key id.
#[derive(Clone, PartialEq, Eq)]
pub struct WaitpointToken(String);

impl WaitpointToken {
    /// Check the shape `<kid>.<64 hex>` (whether it proves anything is the
    /// server's business).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let bad = |reason| ParseError::Malformed {
            kind: "waitpoint token",
            value: "<redacted>".into(),
            reason,
        };
        let (kid, mac) = s.rsplit_once('.').ok_or(bad("expected <kid>.<mac>"))?;
        SecretKid::new(kid).map_err(|_| bad("bad key id"))?;
        if mac.len() != 64 || !mac.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("expected 64 hex digits after the key id"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The token, to hand to whoever will signal (never log it).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The id of the key that made it.
    pub fn kid(&self) -> &str {
        self.0.rsplit_once('.').map_or("", |(k, _)| k)
    }
}

impl fmt::Debug for WaitpointToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WaitpointToken({}.<redacted>)", self.kid())
    }
}

/// A key id of the waitpoint-token keyring: 1..32 of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretKid(String);

impl SecretKid {
    /// Check the shape: 1..32 characters of `[A-Za-z0-9_-]`.
    pub fn new(s: impl Into<String>) -> Result<Self, ParseError> {
        let s = s.into();
        let kind = "secret key id";
        if s.is_empty() {
            return Err(ParseError::Empty { kind });
        }
        if s.len() > 32 {
            return Err(ParseError::TooLong {
                kind,
                len: s.len(),
                max: 32,
            });
        }
        if let Some((at, ch)) = s
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(ParseError::BadChar { kind, ch, at });
        }
        Ok(Self(s))
    }

    /// The key id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretKid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A waitpoint-token secret (16..64 bytes). Debug output shows its length only.
#[derive(Clone, PartialEq, Eq)]
pub struct WaitpointSecret(Vec<u8>);

impl WaitpointSecret {
    /// Check the length: [`limits::MIN_SECRET_BYTES`]..=[`limits::MAX_SECRET_BYTES`] bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, ParseError> {
        let kind = "waitpoint secret";
        if bytes.len() < limits::MIN_SECRET_BYTES {
            return Err(ParseError::Malformed {
                kind,
                value: "<redacted>".into(),
                reason: "shorter than 16 bytes",
            });
        }
        if bytes.len() > limits::MAX_SECRET_BYTES {
            return Err(ParseError::TooLong {
                kind,
                len: bytes.len(),
                max: limits::MAX_SECRET_BYTES,
            });
        }
        Ok(Self(bytes))
    }

    fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for WaitpointSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WaitpointSecret(<{} bytes>)", self.0.len())
    }
}

/// When a suspended execution resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeCondition {
    /// At least this many signals (over all its waitpoints); `Count(1)` is "any signal".
    Count(u32),
    /// A signal with any of these names.
    AnyOf(Vec<SignalName>),
    /// A signal of each of these names.
    AllOf(Vec<SignalName>),
}

impl ResumeCondition {
    /// Resume on any one signal: `Count(1)`.
    pub fn any() -> Self {
        ResumeCondition::Count(1)
    }

    fn encode(&self) -> String {
        let names = |v: &[SignalName]| {
            v.iter()
                .map(SignalName::as_str)
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            ResumeCondition::Count(n) => format!("count:{n}"),
            ResumeCondition::AnyOf(v) => format!("any:{}", names(v)),
            ResumeCondition::AllOf(v) => format!("all:{}", names(v)),
        }
    }
}

/// What a suspension's timeout does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutBehaviour {
    /// The execution fails.
    Fail,
    /// The execution is cancelled.
    Cancel,
    /// The execution expires.
    Expire,
    /// The execution resumes without its condition met.
    Resume,
}

impl TimeoutBehaviour {
    fn as_str(self) -> &'static str {
        match self {
            TimeoutBehaviour::Fail => "fail",
            TimeoutBehaviour::Cancel => "cancel",
            TimeoutBehaviour::Expire => "expire",
            TimeoutBehaviour::Resume => "resume",
        }
    }
}

/// Create a pending waitpoint for an execution; it expires after `ttl_ms`
/// unless a suspension takes it up.
///
/// Repeat: answered `existing` (`created: false`) with the same token and
/// expiry (0 once a suspension took it up); nothing written.
pub fn create_waitpoint(execution: &ExecutionId, waitpoint: &WaitpointId, ttl_ms: u64) -> Call {
    Call::new("ff_create_waitpoint", vec![keys::exec(execution)])
        .arg(execution)
        .arg(waitpoint)
        .arg(ttl_ms)
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// The reply of [`create_waitpoint`].
pub struct WaitpointCreated {
    /// False when it existed already (a repeated call).
    pub created: bool,
    /// The waitpoint's token, to hand to whoever will signal it.
    pub token: WaitpointToken,
    /// When it expires unless taken up (server ms; 0 once taken up).
    pub expires_at_ms: u64,
}

fn token(f: &mut Fields<'_>) -> Result<WaitpointToken, DecodeError> {
    let t = f.text("token")?;
    WaitpointToken::parse(&t).map_err(|e| f.error(e.to_string()))
}

fn non_negative(f: &mut Fields<'_>, what: &str) -> Result<u64, DecodeError> {
    let v = f.int(what)?;
    u64::try_from(v).map_err(|_| f.error(format!("{what} is negative")))
}

/// Decode the reply of [`create_waitpoint`].
pub fn decode_create_waitpoint(reply: &Reply) -> Result<WaitpointCreated, CallError> {
    let mut f = ok_fields("ff_create_waitpoint", reply)?;
    let created = match f.text("outcome")?.as_str() {
        "created" => true,
        "existing" => false,
        o => return Err(f.error(format!("unknown outcome {o:?}")).into()),
    };
    Ok(WaitpointCreated {
        created,
        token: token(&mut f)?,
        expires_at_ms: non_negative(&mut f, "expiry")?,
    })
}

/// Suspend the execution `lease` holds on `waitpoints` (pending ones of this
/// execution are taken up; new ids are created).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspendArgs {
    /// The lease of the execution to suspend (it gives the lease up).
    pub lease: Lease,
    /// The waitpoints to wait on: 1..=[`limits::MAX_SUSPENSION_WAITPOINTS`], none twice.
    pub waitpoints: Vec<WaitpointId>,
    /// When the execution resumes.
    pub condition: ResumeCondition,
    /// 0: no timeout.
    pub timeout_ms: u64,
    /// What the timeout does (unused when `timeout_ms` is 0).
    pub on_timeout: TimeoutBehaviour,
}

/// The `ff_suspend` call for `a`; decode its reply with [`decode_suspend`].
///
/// Repeat: answered from the fence as the first was (suspended with the same
/// timeout, or resumed), `replayed`, with the tokens again; nothing changes.
/// Same limit as [`fail`](super::execution::fail)'s.
pub fn suspend(a: &SuspendArgs) -> Call {
    let mut call = Call::new("ff_suspend", vec![keys::exec(&a.lease.execution)])
        .arg(&a.lease.execution)
        .arg(&a.lease.id)
        .arg(a.lease.epoch)
        .arg(a.condition.encode())
        .arg(a.timeout_ms)
        .arg(a.on_timeout.as_str())
        .arg(a.waitpoints.len());
    for w in &a.waitpoints {
        call = call.arg(w);
    }
    call
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// What a suspend did.
pub enum SuspendOutcome {
    /// Waiting; the timeout (if any) applies at this server time.
    Suspended {
        /// When the timeout applies (server ms); `None`: no timeout.
        timeout_at_ms: Option<u64>,
    },
    /// Signals already on the waitpoints met the condition: eligible again.
    Resumed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// The reply of [`suspend`].
pub struct Suspended {
    /// Waiting, or resumed at once.
    pub outcome: SuspendOutcome,
    /// A repeat of an accepted suspend (nothing changed).
    pub replayed: bool,
    /// The token of each waitpoint, in the order given.
    pub tokens: Vec<(WaitpointId, WaitpointToken)>,
}

/// Decode the reply of [`suspend`]; `a` gives the waitpoint ids the tokens belong to.
pub fn decode_suspend(a: &SuspendArgs, reply: &Reply) -> Result<Suspended, CallError> {
    let mut f = ok_fields("ff_suspend", reply)?;
    let outcome = f.text("outcome")?;
    let due = non_negative(&mut f, "timeout")?;
    let replayed = f.int("replayed")? == 1;
    let outcome = match outcome.as_str() {
        "suspended" => SuspendOutcome::Suspended {
            timeout_at_ms: (due > 0).then_some(due),
        },
        "resumed" => SuspendOutcome::Resumed,
        o => return Err(f.error(format!("unknown outcome {o:?}")).into()),
    };
    let mut tokens = Vec::with_capacity(a.waitpoints.len());
    for w in &a.waitpoints {
        tokens.push((w.clone(), token(&mut f)?));
    }
    Ok(Suspended {
        outcome,
        replayed,
        tokens,
    })
}

/// A signal for a waitpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalArgs {
    /// The execution the waitpoint belongs to.
    pub execution: ExecutionId,
    /// The waitpoint signalled.
    pub waitpoint: WaitpointId,
    /// The waitpoint's token (proves the signal may be delivered).
    pub token: WaitpointToken,
    /// The signal's name (what a resume condition matches).
    pub name: SignalName,
    /// Opaque bytes kept with the signal (at most [`limits::MAX_SIGNAL_PAYLOAD_BYTES`]).
    pub payload: Vec<u8>,
    /// A repeat with the same key is answered as the first was.
    pub idempotency: Option<IdempotencyKey>,
}

/// The `ff_signal` call for `a`; decode its reply with [`decode_signal`].
///
/// Repeat: with an idempotency key, answered `duplicate` with the first
/// delivery's index and effect; nothing written. Without one nothing tells the
/// repeat from a second signal (which would count again towards a `count:`
/// condition): the call is built [`Call::not_repeatable`]. `Client::signal`
/// always sends a key.
pub fn signal(a: &SignalArgs) -> Call {
    let pk = PartitionKeys::of(&a.execution);
    let call = Call::new(
        "ff_signal",
        vec![keys::exec(&a.execution), pk.waitpoint(&a.waitpoint)],
    )
    .arg(&a.execution)
    .arg(&a.waitpoint)
    .arg(a.token.expose())
    .arg(&a.name)
    .arg_bytes(&a.payload)
    .arg(a.idempotency.as_ref().map_or("", |k| k.as_str()));
    // Nothing else tells a repeat from a second signal.
    if a.idempotency.is_none() {
        call.not_repeatable()
    } else {
        call
    }
}

/// What a signal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEffect {
    /// Kept on a pending waitpoint for the suspension to come.
    Buffered,
    /// Recorded; the suspension's condition is not met yet.
    Recorded,
    /// It met the condition: the execution is eligible again.
    Resumed,
}

impl SignalEffect {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "buffered" => SignalEffect::Buffered,
            "recorded" => SignalEffect::Recorded,
            "resumed" => SignalEffect::Resumed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// The reply of [`signal`].
pub struct SignalAccepted {
    /// A repeat of an idempotency key: the first delivery's answer.
    pub duplicate: bool,
    /// Its number on the waitpoint (1-based).
    pub index: u32,
    /// What it did (for a duplicate, what the first delivery did).
    pub effect: SignalEffect,
}

/// Decode the reply of [`signal`].
pub fn decode_signal(reply: &Reply) -> Result<SignalAccepted, CallError> {
    let mut f = ok_fields("ff_signal", reply)?;
    let duplicate = match f.text("outcome")?.as_str() {
        "accepted" => false,
        "duplicate" => true,
        o => return Err(f.error(format!("unknown outcome {o:?}")).into()),
    };
    let index = u32::try_from(f.int("index")?).map_err(|_| f.error("index out of range"))?;
    let effect = f.text("effect")?;
    let effect = SignalEffect::parse(&effect)
        .ok_or_else(|| f.error(format!("unknown effect {effect:?}")))?;
    Ok(SignalAccepted {
        duplicate,
        index,
        effect,
    })
}

/// Read a waitpoint and its signals (read-only); decode with [`decode_get_waitpoint`].
///
/// Repeat: read-only: the waitpoint as it is now.
pub fn get_waitpoint(execution: &ExecutionId, waitpoint: &WaitpointId) -> Call {
    Call::new(
        "ff_get_waitpoint",
        vec![PartitionKeys::of(execution).waitpoint(waitpoint)],
    )
    .arg(waitpoint)
    .read_only()
}

/// Where a waitpoint is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitpointState {
    /// Created, not yet taken up by a suspension: signals are kept.
    Pending,
    /// A suspension waits on it.
    Active,
    /// Its suspension ended (resumed, timed out, or the execution ended).
    Closed,
    /// No suspension took it up in time.
    Expired,
}

impl WaitpointState {
    /// The state stored as `s` (`pending`, `active`, `closed`, `expired`); `None` otherwise.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => WaitpointState::Pending,
            "active" => WaitpointState::Active,
            "closed" => WaitpointState::Closed,
            "expired" => WaitpointState::Expired,
            _ => return None,
        })
    }

    /// The name stored for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitpointState::Pending => "pending",
            WaitpointState::Active => "active",
            WaitpointState::Closed => "closed",
            WaitpointState::Expired => "expired",
        }
    }
}

impl fmt::Display for WaitpointState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One signal as kept on its waitpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalRecord {
    /// Its number on the waitpoint (1-based, arrival order).
    pub index: u32,
    /// The signal's name.
    pub name: SignalName,
    /// Its payload.
    pub payload: Vec<u8>,
    /// When the server accepted it (server ms).
    pub received_at_ms: u64,
    /// What it did when it arrived.
    pub effect: SignalEffect,
    /// The idempotency key it came with, if any.
    pub idempotency_key: Option<String>,
}

/// A waitpoint as stored, with its signals in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitpointRecord {
    /// The waitpoint's id.
    pub id: WaitpointId,
    /// The execution it belongs to.
    pub execution: ExecutionId,
    /// Where it is in its life.
    pub state: WaitpointState,
    /// When it was created (server ms).
    pub created_at_ms: u64,
    /// Pending only: when it expires.
    pub expires_at_ms: Option<u64>,
    /// Its signals, in arrival order.
    pub signals: Vec<SignalRecord>,
    /// Server time when it was read.
    pub read_at_ms: u64,
}

/// Decode the reply of [`get_waitpoint`] for `waitpoint`.
pub fn decode_get_waitpoint(
    waitpoint: &WaitpointId,
    reply: &Reply,
) -> Result<WaitpointRecord, CallError> {
    let mut f = ok_fields("ff_get_waitpoint", reply)?;
    let read_at_ms = non_negative(&mut f, "server time")?;
    let mut m: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    while f.remaining() >= 2 {
        let k = f.text("field")?;
        m.insert(k, f.bytes("value")?);
    }
    Ok(WaitpointRecord::from_fields(waitpoint, &m, read_at_ms)?)
}

impl WaitpointRecord {
    /// Decode the fields of a waitpoint hash (layout in `lua/waitpoint.lua`).
    pub fn from_fields(
        id: &WaitpointId,
        m: &BTreeMap<String, Vec<u8>>,
        read_at_ms: u64,
    ) -> Result<Self, DecodeError> {
        let err = |reason: String| DecodeError {
            function: "ff_get_waitpoint",
            reason,
        };
        let text = |k: &str| m.get(k).map(|v| String::from_utf8_lossy(v).into_owned());
        let num = |k: &str| -> Result<Option<u64>, DecodeError> {
            text(k)
                .map(|s| {
                    s.parse::<u64>()
                        .map_err(|_| err(format!("field {k} = {s:?} is not a number")))
                })
                .transpose()
        };
        let execution = ExecutionId::parse(&text("eid").ok_or_else(|| err("no eid".into()))?)
            .map_err(|e| err(e.to_string()))?;
        let state = text("state").unwrap_or_default();
        let state =
            WaitpointState::parse(&state).ok_or_else(|| err(format!("bad state {state:?}")))?;
        let n = num("n")?.unwrap_or(0);
        if n > limits::MAX_EXECUTION_SIGNALS as u64 {
            return Err(err(format!("{n} signals")));
        }
        let mut signals = Vec::with_capacity(n as usize);
        for i in 1..=n as u32 {
            let name = SignalName::new(text(&format!("s{i}")).unwrap_or_default())
                .map_err(|e| err(format!("signal {i}: {e}")))?;
            // m<i> = '<time>|<effect>|<idempotency key>' (absent only mid-call).
            let meta = text(&format!("m{i}")).unwrap_or_default();
            let mut parts = meta.splitn(3, '|');
            let at = parts.next().and_then(|s| s.parse().ok());
            let effect = parts.next().and_then(SignalEffect::parse);
            let (Some(received_at_ms), Some(effect)) = (at, effect) else {
                return Err(err(format!("signal {i}: bad metadata {meta:?}")));
            };
            signals.push(SignalRecord {
                index: i,
                name,
                payload: m.get(&format!("p{i}")).cloned().unwrap_or_default(),
                received_at_ms,
                effect,
                idempotency_key: parts.next().filter(|s| !s.is_empty()).map(str::to_owned),
            });
        }
        Ok(Self {
            id: id.clone(),
            execution,
            state,
            created_at_ms: num("created")?.unwrap_or(0),
            expires_at_ms: num("expires")?,
            signals,
            read_at_ms,
        })
    }
}

/// Make `kid` the key new tokens use, on one partition (every partition holds
/// a copy so that a signal is verified in its own slot). The key it replaces
/// is accepted for `grace_ms` more.
///
/// Repeat: answered `current` (false): the key is current already; nothing
/// changes.
pub fn rotate_secret(
    partition: Partition,
    kid: &SecretKid,
    secret: &WaitpointSecret,
    grace_ms: u64,
) -> Call {
    Call::new(
        "ff_rotate_secret",
        vec![PartitionKeys::new(partition).secret()],
    )
    .arg(kid)
    .arg(secret.hex())
    .arg(grace_ms)
}

/// True when the key was made current; false when it already was.
pub fn decode_rotate_secret(reply: &Reply) -> Result<bool, CallError> {
    let mut f = ok_fields("ff_rotate_secret", reply)?;
    match f.text("outcome")?.as_str() {
        "rotated" => Ok(true),
        "current" => Ok(false),
        o => Err(f.error(format!("unknown outcome {o:?}")).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_secrets_are_redacted() {
        let t = WaitpointToken::parse(&format!("k1.{}", "ab".repeat(32))).unwrap();
        assert_eq!(format!("{t:?}"), "WaitpointToken(k1.<redacted>)");
        let s = WaitpointSecret::new(vec![7; 32]).unwrap();
        assert_eq!(format!("{s:?}"), "WaitpointSecret(<32 bytes>)");
        let e = WaitpointToken::parse("k1.zz").unwrap_err().to_string();
        assert!(!e.contains("zz"), "{e}");
    }

    #[test]
    fn conditions_encode() {
        let n = |s: &str| SignalName::new(s).unwrap();
        assert_eq!(ResumeCondition::any().encode(), "count:1");
        assert_eq!(
            ResumeCondition::AllOf(vec![n("a"), n("b")]).encode(),
            "all:a,b"
        );
        assert_eq!(ResumeCondition::AnyOf(vec![n("x")]).encode(), "any:x");
    }
}
