//! The simulated workload: executions with random policies, and the handlers
//! the workers run for each kind.

use ff_core::contract::suspension::{TimeoutBehaviour, WaitpointToken};
use ff_core::retry::RetryPolicy;
use ff_core::{ExecutionId, WaitpointId};
use ff_engine::client::Suspension;
use ff_engine::worker::{Job, JobError, JobResult};
use ff_engine::{Client, ExecutionSpec};
use rand::Rng;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The kinds of work, and what their handler does.
pub const KINDS: &[&str] = &[
    "ok",    // succeeds after a short while
    "slow",  // succeeds after several lease lengths (heartbeats keep it)
    "flaky", // fails retryably on some attempts
    "fatal", // fails for good
    "delay", // asks to run again later, then succeeds
    "hang",  // never returns (its attempt timeout ends it)
    "wait",  // suspends on a waitpoint (the signaller signals it, or not), then succeeds
];

/// A waitpoint a handler handed out: the signaller's to signal (or not).
#[derive(Debug, Clone)]
pub struct Mail {
    pub execution: ExecutionId,
    pub waitpoint: WaitpointId,
    pub token: WaitpointToken,
}

/// Waitpoints handed out, for the signaller.
pub type Mailbox = Arc<Mutex<Vec<Mail>>>;

/// A random execution: kind, retry policy, delay, deadline, timeout.
pub fn random_spec(rng: &mut impl Rng, idempotency_key: String) -> ExecutionSpec {
    let kind = match rng.random_range(0..100) {
        0..42 => "ok",
        42..50 => "wait",
        50..60 => "slow",
        60..80 => "flaky",
        80..85 => "fatal",
        85..95 => "delay",
        _ => "hang",
    };
    let mut spec = ExecutionSpec::new(kind)
        .retry(RetryPolicy::exponential(
            rng.random_range(0..4),
            rng.random_range(20..300),
            2_000,
        ))
        .max_reclaims(rng.random_range(1..4))
        .priority(rng.random_range(0..10))
        .retention(Duration::from_secs(24 * 3600))
        .idempotency_key(idempotency_key, Duration::from_secs(24 * 3600));
    if rng.random_ratio(1, 3) {
        spec = spec.delay(Duration::from_millis(rng.random_range(1..3_000)));
    }
    if rng.random_ratio(1, 10) {
        spec = spec.deadline(Duration::from_millis(rng.random_range(500..20_000)));
    }
    if kind == "hang" || rng.random_ratio(1, 5) {
        spec = spec.attempt_timeout(Duration::from_millis(rng.random_range(500..5_000)));
    }
    spec
}

/// A number from the execution id and attempt, so handlers decide without
/// shared randomness (and the same way on every replay).
fn coin(job: &Job) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in job
        .execution
        .as_str()
        .bytes()
        .chain(job.attempt.to_le_bytes())
    {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The first attempt of a "wait" execution: a pending waitpoint (so that a
/// signal sent before the suspension is kept), its token to the signaller,
/// then the suspension, always with a timeout (so that everything ends once
/// faults stop) and a behaviour from the coin. Sometimes a second pending
/// waitpoint is made and never used: pending-waitpoint expiry closes it.
async fn suspend(job: &Job, c: u64, client: &Client, mail: &Mailbox) -> JobResult {
    let ttl = Duration::from_secs(30);
    let wp = client
        .create_waitpoint(&job.execution, ttl)
        .await
        .map_err(JobError::retry)?;
    if c % 5 == 0 {
        let spare = Duration::from_millis(500 + c % 2_000);
        client
            .create_waitpoint(&job.execution, spare)
            .await
            .map_err(JobError::retry)?;
    }
    mail.lock().expect("mailbox lock").push(Mail {
        execution: job.execution.clone(),
        waitpoint: wp.id.clone(),
        token: wp.token,
    });
    let behaviour = [
        TimeoutBehaviour::Resume,
        TimeoutBehaviour::Fail,
        TimeoutBehaviour::Cancel,
        TimeoutBehaviour::Expire,
    ][(c / 7 % 4) as usize];
    Err(JobError::Suspend(Suspension::on([wp.id]).timeout(
        Duration::from_millis(1_000 + c % 5_000),
        behaviour,
    )))
}

/// The handler for every kind; "wait" needs a client and the mailbox.
pub async fn handle(job: Job, waits: Option<(Client, Mailbox)>) -> JobResult {
    let c = coin(&job);
    match job.kind.as_str() {
        "wait" if job.attempt == 1 => match &waits {
            Some((client, mail)) => suspend(&job, c, client, mail).await,
            None => Err(JobError::fatal("no mailbox")),
        },
        "wait" => Ok(b"resumed".to_vec()),
        "ok" => {
            tokio::time::sleep(Duration::from_millis(c % 200)).await;
            Ok(b"ok".to_vec())
        }
        "slow" => {
            tokio::time::sleep(Duration::from_millis(1_000 + c % 3_000)).await;
            Ok(b"slow".to_vec())
        }
        "flaky" if c % 2 == 0 => Err(JobError::retry("flaky failure")),
        "flaky" => Ok(b"flaky".to_vec()),
        "fatal" => Err(JobError::fatal("fatal failure")),
        "delay" if job.attempt == 1 => Err(JobError::Delay(Duration::from_millis(100 + c % 500))),
        "delay" => Ok(b"delayed".to_vec()),
        "hang" => std::future::pending().await,
        other => Err(JobError::fatal(format!("unknown kind {other}"))),
    }
}
