//! Drive executions through their whole life against a running Redis/Valkey:
//!
//! ```text
//! cargo run -p ff-engine --example lifecycle -- redis://127.0.0.1:6379
//! ```
//!
//! Creates a few executions, claims them as a worker would, completes one,
//! fails one into a retry, delays one, cancels one, and shows each state.

use ff_engine::core::retry::RetryPolicy;
use ff_engine::core::{Lane, WorkerInstance, WorkerName};
use ff_engine::store::{RedisStore, RedisStoreOptions};
use ff_engine::{Client, ExecutionSpec};
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let store =
        RedisStore::connect(std::slice::from_ref(&url), RedisStoreOptions::default()).await?;
    let client = Client::new(Arc::new(store)).await?;
    println!("connected to {url}");

    let mut ids = Vec::new();
    for i in 0..4 {
        let spec = ExecutionSpec::new("email.send")
            .payload(format!("{{\"to\":\"user{i}@example.com\"}}"))
            .retry(RetryPolicy::exponential(2, 200, 5_000));
        let created = client.create(spec).await?;
        println!("created {} -> {}", created.execution, created.state);
        ids.push(created.execution);
    }

    let lane = Lane::default_lane();
    let worker = WorkerName::new("example")?;
    let instance = WorkerInstance::new("example-1")?;
    let claimed = client
        .claim(&lane, &worker, &instance, Duration::from_secs(30), 4)
        .await?;
    println!("claimed {} executions", claimed.len());

    for (i, c) in claimed.iter().enumerate() {
        let lease = &c.lease;
        let ended = match i {
            0 => client.complete(lease, b"sent").await?,
            1 => client.fail(lease, "smtp timeout", true).await?,
            2 => client.delay(lease, Duration::from_secs(60)).await?,
            _ => client.cancel(&lease.execution, "user unsubscribed").await?,
        };
        let record = client.get(&lease.execution).await?;
        println!(
            "{} attempt {}: {:?} -> {}",
            lease.execution, c.attempt, ended.outcome, record.public_state
        );
    }
    Ok(())
}
