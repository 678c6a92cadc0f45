//! Client API for suspension: waitpoints, their tokens and secret, signals.
//!
//! Tokens are handed to whoever will signal; they are never logged here
//! (their `Debug` is redacted, and no tracing field carries one).

use super::{millis, random_u128, Client};
use crate::error::{Error, Result};
use ff_core::contract::execution::Lease;
use ff_core::contract::limits;
use ff_core::contract::suspension::{
    self as sp, ResumeCondition, SecretKid, SignalAccepted, SignalArgs, SuspendArgs, Suspended,
    TimeoutBehaviour, WaitpointRecord, WaitpointSecret, WaitpointToken,
};
use ff_core::keys::IdempotencyKey;
use ff_core::{ExecutionId, PartitionFamily, SignalName, WaitpointId};
use std::time::Duration;

/// How to suspend: on which waitpoints, until what, for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    /// The waitpoints to wait on (1..=16): pending ones of the execution, or new ids.
    pub waitpoints: Vec<WaitpointId>,
    /// When the execution resumes.
    pub condition: ResumeCondition,
    /// `None`: wait for ever.
    pub timeout: Option<(Duration, TimeoutBehaviour)>,
}

impl Suspension {
    /// Wait for any signal on these waitpoints (pending ones of the execution,
    /// or new ids: see [`Client::new_waitpoint_id`]), with no timeout.
    pub fn on(waitpoints: impl IntoIterator<Item = WaitpointId>) -> Self {
        Self {
            waitpoints: waitpoints.into_iter().collect(),
            condition: ResumeCondition::any(),
            timeout: None,
        }
    }

    /// Resume on `c` instead of any signal.
    pub fn condition(mut self, c: ResumeCondition) -> Self {
        self.condition = c;
        self
    }

    /// After `after` (whole ms, at least 1 ms) without the condition met, apply `then`.
    pub fn timeout(mut self, after: Duration, then: TimeoutBehaviour) -> Self {
        self.timeout = Some((after, then));
        self
    }
}

/// A signal to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// The signal's name (what a resume condition matches).
    pub name: String,
    /// Opaque bytes kept with the signal (at most 64 KiB).
    pub payload: Vec<u8>,
    /// A repeat with the same key is answered as the first delivery was
    /// (`None`: [`Client::signal`] makes a key for the one call).
    pub idempotency_key: Option<String>,
}

impl Signal {
    /// A signal named `name`, with no payload and no idempotency key.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            payload: Vec::new(),
            idempotency_key: None,
        }
    }

    /// Attach a payload (at most 64 KiB).
    pub fn payload(mut self, p: impl Into<Vec<u8>>) -> Self {
        self.payload = p.into();
        self
    }

    /// A repeat with the same key is answered as the first delivery was.
    pub fn idempotency_key(mut self, k: impl Into<String>) -> Self {
        self.idempotency_key = Some(k.into());
        self
    }
}

/// A pending waitpoint, created ahead of a suspension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWaitpoint {
    /// The execution it belongs to.
    pub execution: ExecutionId,
    /// The waitpoint's id.
    pub id: WaitpointId,
    /// Its token, to hand to whoever will signal it (never log it).
    pub token: WaitpointToken,
    /// When it expires unless a suspension takes it up (server ms).
    pub expires_at_ms: u64,
}

impl Client {
    /// A fresh waitpoint id (to suspend on a waitpoint created by the suspend call).
    pub fn new_waitpoint_id(&self) -> WaitpointId {
        WaitpointId::from_u128(random_u128())
    }

    /// Make `kid` the key new waitpoint tokens use, on every partition; the
    /// key it replaces is still accepted for `grace`. Repeating the call
    /// with the same arguments is harmless (do so after a partial failure).
    pub async fn rotate_waitpoint_secret(
        &self,
        kid: &SecretKid,
        secret: &WaitpointSecret,
        grace: Duration,
    ) -> Result<()> {
        let grace = millis("grace", grace, 0, limits::MAX_DURATION_MS)?;
        let calls: Vec<_> = self
            .config
            .partitions(PartitionFamily::Flow)
            .map(|p| sp::rotate_secret(p, kid, secret, grace))
            .collect();
        let mut rotated = 0;
        for reply in self.store.fcall_many(&calls).await {
            rotated += u32::from(sp::decode_rotate_secret(&reply?)?);
        }
        tracing::info!(kid = %kid, partitions_changed = rotated, "waitpoint secret rotated");
        Ok(())
    }

    /// A random secret for [`Client::rotate_waitpoint_secret`] (32 bytes).
    pub fn generate_waitpoint_secret() -> WaitpointSecret {
        let bytes = [random_u128().to_le_bytes(), random_u128().to_le_bytes()].concat();
        WaitpointSecret::new(bytes).expect("32 bytes is a valid secret length")
    }

    /// Create a pending waitpoint for a live execution: signals sent to it
    /// before the execution suspends on it are kept. It expires after `ttl`
    /// unless a suspension takes it up.
    pub async fn create_waitpoint(
        &self,
        execution: &ExecutionId,
        ttl: Duration,
    ) -> Result<PendingWaitpoint> {
        self.check_partition(execution)?;
        let ttl = millis("ttl", ttl, 1, limits::MAX_DURATION_MS)?;
        let id = self.new_waitpoint_id();
        let created = sp::decode_create_waitpoint(
            &self
                .call(&sp::create_waitpoint(execution, &id, ttl))
                .await?,
        )?;
        tracing::debug!(execution = %execution, waitpoint = %id, "waitpoint created");
        Ok(PendingWaitpoint {
            execution: execution.clone(),
            id,
            token: created.token,
            expires_at_ms: created.expires_at_ms,
        })
    }

    /// Suspend the execution `lease` holds: it loses the lease and waits for
    /// the condition (signals already on its waitpoints count, and may resume
    /// it at once) or the timeout. The reply holds each waitpoint's token.
    pub async fn suspend(&self, lease: &Lease, s: &Suspension) -> Result<Suspended> {
        if s.waitpoints.is_empty() || s.waitpoints.len() > limits::MAX_SUSPENSION_WAITPOINTS {
            return Err(Error::Invalid {
                field: "waitpoints",
                reason: format!("expected 1..={}", limits::MAX_SUSPENSION_WAITPOINTS),
            });
        }
        let (timeout_ms, on_timeout) = match s.timeout {
            Some((d, b)) => (millis("timeout", d, 1, limits::MAX_DURATION_MS)?, b),
            None => (0, TimeoutBehaviour::Fail),
        };
        let args = SuspendArgs {
            lease: lease.clone(),
            waitpoints: s.waitpoints.clone(),
            condition: s.condition.clone(),
            timeout_ms,
            on_timeout,
        };
        let out = sp::decode_suspend(&args, &self.call(&sp::suspend(&args)).await?)?;
        tracing::debug!(execution = %lease.execution, outcome = ?out.outcome, replayed = out.replayed, "suspend");
        Ok(out)
    }

    /// Deliver a signal to a waitpoint, proven by its token. A signal sent
    /// without an idempotency key is given one (`auto-<32 hex>`, shown in the
    /// waitpoint's record), so each call delivers once even when the store
    /// sends it again after a lost reply.
    pub async fn signal(
        &self,
        execution: &ExecutionId,
        waitpoint: &WaitpointId,
        token: &WaitpointToken,
        signal: Signal,
    ) -> Result<SignalAccepted> {
        self.check_partition(execution)?;
        if signal.payload.len() > limits::MAX_SIGNAL_PAYLOAD_BYTES {
            return Err(ff_core::FfError::PayloadTooLarge {
                len: signal.payload.len() as u64,
                max: limits::MAX_SIGNAL_PAYLOAD_BYTES as u64,
            }
            .into());
        }
        let args = SignalArgs {
            execution: execution.clone(),
            waitpoint: waitpoint.clone(),
            token: token.clone(),
            name: SignalName::new(signal.name)?,
            payload: signal.payload,
            // A signal without a key of the caller's gets one, so the store
            // may send it again after a lost reply without delivering twice.
            idempotency: Some(match signal.idempotency_key {
                Some(k) => IdempotencyKey::new(k)?,
                None => IdempotencyKey::new(format!("auto-{:032x}", random_u128()))?,
            }),
        };
        let out = sp::decode_signal(&self.call(&sp::signal(&args)).await?)?;
        tracing::debug!(execution = %execution, waitpoint = %waitpoint, effect = ?out.effect, duplicate = out.duplicate, "signal");
        Ok(out)
    }

    /// Read a waitpoint and its signals.
    pub async fn waitpoint(
        &self,
        execution: &ExecutionId,
        waitpoint: &WaitpointId,
    ) -> Result<WaitpointRecord> {
        self.check_partition(execution)?;
        let rec = sp::decode_get_waitpoint(
            waitpoint,
            &self.call(&sp::get_waitpoint(execution, waitpoint)).await?,
        )?;
        if &rec.execution != execution {
            return Err(ff_core::FfError::WaitpointNotFound.into());
        }
        Ok(rec)
    }
}
