//! A worker loop: handlers by kind, a retry, a delay, then a graceful stop.
//!
//! ```text
//! cargo run -p ff-engine --example worker_loop                          # in-process store
//! cargo run -p ff-engine --example worker_loop -- redis://127.0.0.1:6379
//! ```
//!
//! The `Worker` runtime claims executions of its lanes, runs the handler of
//! each execution's kind on its own task, renews the lease while it runs and
//! reports the outcome. An engine runs beside it: retries with backoff and
//! delays come back through its delayed promoter.

use ff_engine::core::retry::RetryPolicy;
use ff_engine::store::{MemoryStore, RedisStore, RedisStoreOptions, Store};
use ff_engine::worker::{Job, JobError, Worker};
use ff_engine::{Client, Engine, EngineConfig, ExecutionSpec};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

async fn send_email(job: Job) -> Result<Vec<u8>, JobError> {
    let to = String::from_utf8_lossy(&job.payload).into_owned();
    // The first attempt to this domain times out; the retry goes through.
    if to.ends_with("@slow.example") && job.attempt == 1 {
        return Err(JobError::retry("smtp timeout"));
    }
    Ok(format!("sent to {to}").into_bytes())
}

async fn render_report(job: Job) -> Result<Vec<u8>, JobError> {
    // Not ready yet on the first attempt: come back in 200 ms.
    if job.attempt == 1 {
        return Err(JobError::Delay(Duration::from_millis(200)));
    }
    Ok(b"report.pdf".to_vec())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store: Arc<dyn Store> = match std::env::args().nth(1) {
        Some(url) => Arc::new(RedisStore::connect(&[url], RedisStoreOptions::default()).await?),
        None => Arc::new(MemoryStore::new()),
    };
    let client = Client::new(store.clone(), Default::default()).await?;
    let engine = Engine::start(EngineConfig::default(), store).await?;
    let worker = Worker::builder(client.clone(), "example")
        .concurrency(8)
        .handle("email.send", send_email)
        .handle("report.render", render_report)
        .fallback(
            |job: Job| async move { Err(JobError::fatal(format!("no handler for {}", job.kind))) },
        )
        .start()?;

    let mut ids = Vec::new();
    for to in ["ada@example.com", "bob@slow.example", "eve@example.com"] {
        let spec = ExecutionSpec::new("email.send")
            .payload(to)
            .retry(RetryPolicy::exponential(3, 100, 1_000));
        ids.push(client.create(spec).await?.execution);
    }
    ids.push(
        client
            .create(ExecutionSpec::new("report.render"))
            .await?
            .execution,
    );
    ids.push(
        client
            .create(ExecutionSpec::new("unknown.kind"))
            .await?
            .execution,
    );

    // Wait until every execution is terminal (bounded).
    for _ in 0..200 {
        let mut done = 0;
        for id in &ids {
            if client.get(id).await?.public_state.is_terminal() {
                done += 1;
            }
        }
        if done == ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in &ids {
        let r = client.get(id).await?;
        println!("{id}: {} after {} attempt(s)", r.public_state, r.attempt);
    }
    let stats = worker.stats();
    println!(
        "worker: {} completed, {} failed, {} delayed",
        stats.completed.load(Relaxed),
        stats.failed.load(Relaxed),
        stats.delayed.load(Relaxed)
    );
    // Stop claiming, let running handlers finish (or hand them back), then
    // stop the engine within its bound.
    worker.shutdown().await;
    engine.shutdown().await;
    Ok(())
}
