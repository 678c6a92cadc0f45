//! A suspend/signal round trip: an execution asks a human for approval,
//! suspends until the approval signal arrives (or a timeout), and resumes.
//!
//! ```text
//! cargo run -p ff-engine --example suspend_signal                          # in-process store
//! cargo run -p ff-engine --example suspend_signal -- redis://127.0.0.1:6379
//! ```
//!
//! The waitpoint is created before suspending, so a signal that arrives
//! early is kept, not lost. The token handed out proves the signal belongs to
//! that waitpoint (HMAC-SHA256 under a secret held in Valkey); a wrong token
//! is refused and changes nothing.

use ff_engine::client::{Signal, Suspension};
use ff_engine::core::contract::suspension::{SecretKid, TimeoutBehaviour};
use ff_engine::store::{MemoryStore, RedisStore, RedisStoreOptions, Store};
use ff_engine::{Client, ExecutionSpec};
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store: Arc<dyn Store> = match std::env::args().nth(1) {
        Some(url) => Arc::new(RedisStore::connect(&[url], RedisStoreOptions::default()).await?),
        None => Arc::new(MemoryStore::new()),
    };
    let client = Client::new(store).await?;
    // Once per deployment (and again to rotate): the key tokens are made with.
    client
        .rotate_waitpoint_secret(
            &SecretKid::new("k1")?,
            &Client::generate_waitpoint_secret(),
            Duration::from_secs(3600),
        )
        .await?;

    let id = client
        .create(ExecutionSpec::new("publish.article").payload("draft-42"))
        .await?
        .execution;
    let (lane, worker, instance) = (
        ff_engine::core::Lane::default_lane(),
        ff_engine::core::WorkerName::new("editor")?,
        ff_engine::core::WorkerInstance::new("e1")?,
    );
    let first = client
        .claim(&lane, &worker, &instance, Duration::from_secs(30), 1)
        .await?
        .pop()
        .ok_or("nothing to claim")?;
    println!("attempt {} of {id}: asking for approval", first.attempt);

    // The waitpoint and its token: the token goes to the approver (never log it).
    let wp = client
        .create_waitpoint(&id, Duration::from_secs(600))
        .await?;
    let suspended = client
        .suspend(
            &first.lease,
            &Suspension::on([wp.id.clone()])
                .timeout(Duration::from_secs(3600), TimeoutBehaviour::Fail),
        )
        .await?;
    println!("suspended: {:?}", suspended.outcome);

    // Meanwhile, the approver (an HTTP handler, say) signals with the token.
    let accepted = client
        .signal(
            &id,
            &wp.id,
            &wp.token,
            Signal::new("approved")
                .payload("by ada")
                .idempotency_key("approval-42"),
        )
        .await?;
    println!("signal: {:?}", accepted.effect);

    // Eligible again: the next claim is the same execution, next attempt.
    let again = client
        .claim(&lane, &worker, &instance, Duration::from_secs(30), 1)
        .await?
        .pop()
        .ok_or("not resumed")?;
    let signals = client.waitpoint(&id, &wp.id).await?.signals;
    println!(
        "attempt {} of {}: resumed with {} signal(s)",
        again.attempt,
        again.lease.execution,
        signals.len()
    );
    client.complete(&again.lease, b"published").await?;
    println!("{id}: {}", client.get(&id).await?.public_state);
    Ok(())
}
