//! A worker loop on the typed API: job types, a retry, a delay, a failure
//! you can match, results awaited, then a graceful stop.
//!
//! ```text
//! cargo run -p ff-engine --example worker_loop                          # in-process store
//! cargo run -p ff-engine --example worker_loop -- redis://127.0.0.1:6379
//! ```
//!
//! The `Worker` runtime claims executions of its lanes, runs the handler of
//! each job type on its own task, renews the lease while it runs and reports
//! the outcome. Started with its engine, retries with backoff and delays come
//! back through the engine's delayed promoter in the same process.

use ff_engine::core::retry::RetryPolicy;
use ff_engine::store::{MemoryStore, RedisStore, RedisStoreOptions, Store};
use ff_engine::worker::{Job, JobError, Worker};
use ff_engine::{Client, EngineConfig, JobType, Outcome};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
struct Email {
    to: String,
}

struct SendEmail;
impl JobType for SendEmail {
    const KIND: &'static str = "email.send";
    type Args = Email;
    type Output = String;
}

struct RenderReport;
impl JobType for RenderReport {
    const KIND: &'static str = "report.render";
    type Args = u32; // the month
    type Output = String;
}

async fn send_email(job: Job, email: Email) -> Result<String, JobError> {
    if email.to.ends_with("@bounce.example") {
        // `?` on any std error: a retryable failure that keeps its type.
        std::fs::read("/nonexistent/smtp.conf")?;
    }
    // The first attempt to this domain times out; the retry goes through.
    if email.to.ends_with("@slow.example") && job.attempt == 1 {
        return Err(JobError::retry("smtp timeout"));
    }
    Ok(format!("sent to {}", email.to))
}

async fn render_report(job: Job, month: u32) -> Result<String, JobError> {
    job.progress(serde_json::json!({ "month": month, "step": "render" }));
    // Not ready yet on the first attempt: come back in 200 ms.
    if job.attempt == 1 {
        return Err(JobError::delay(Duration::from_millis(200)));
    }
    Ok(format!("report-{month}.pdf"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store: Arc<dyn Store> = match std::env::args().nth(1) {
        Some(url) => Arc::new(RedisStore::connect(&[url], RedisStoreOptions::default()).await?),
        None => Arc::new(MemoryStore::new()),
    };
    let client = Client::new(store).await?;
    let worker = Worker::builder(client.clone(), "example")
        .concurrency(8)
        .job(SendEmail, send_email)
        .job(RenderReport, render_report)
        .start_with_engine(EngineConfig::default())
        .await?;

    let retry = RetryPolicy::exponential(2, 100, 1_000);
    let mut mails = Vec::new();
    for to in ["ada@example.com", "bob@slow.example", "eve@bounce.example"] {
        let email = Email { to: to.into() };
        mails.push(
            client
                .enqueue_with(SendEmail, &email, |s| s.retry(retry))
                .await?,
        );
    }
    let report = client.enqueue(RenderReport, &11).await?;

    for mail in &mails {
        match mail.result_within(Duration::from_secs(10)).await? {
            Outcome::Succeeded(said) => println!("{}: {said}", mail.id()),
            Outcome::Failed { failure, attempt } => {
                println!("{}: failed after {attempt} attempts: {failure}", mail.id())
            }
            other => println!("{}: {other:?}", mail.id()),
        }
    }
    println!(
        "report: {:?}",
        report.result_within(Duration::from_secs(10)).await?
    );
    let stats = worker.stats();
    println!(
        "worker: {} completed, {} failed, {} delayed",
        stats.completed.load(Relaxed),
        stats.failed.load(Relaxed),
        stats.delayed.load(Relaxed)
    );
    // Stop claiming, let running handlers finish (or hand them back), then
    // the engine within its bound.
    worker.shutdown().await;
    Ok(())
}
