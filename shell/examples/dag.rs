//! A DAG: fetch → (resize, thumbnail) → publish, with data passing (publish
//! reads both its parents' results by parent), an `AnyOf` race whose loser is
//! cancelled, and a failure that skips its subtree.
//!
//! ```text
//! cargo run -p ff-engine --example dag                          # in-process store
//! cargo run -p ff-engine --example dag -- redis://127.0.0.1:6379
//! ```
//!
//! A flow's members live in the flow's partition, so the call that completes
//! a parent releases its children itself; the engine's completion listener
//! and reconcilers handle large fan-outs and lost messages.

use ff_engine::core::flow::JoinPolicy;
use ff_engine::store::{MemoryStore, RedisStore, RedisStoreOptions, Store};
use ff_engine::worker::{Job, JobError, Worker};
use ff_engine::{Client, Engine, EngineConfig, ExecutionSpec};
use std::sync::Arc;
use std::time::Duration;

async fn step(job: Job) -> Result<Vec<u8>, JobError> {
    let input = String::from_utf8_lossy(&job.payload).into_owned();
    match job.kind.as_str() {
        "fetch" => Ok(b"image-bytes".to_vec()),
        // The parent's result arrived as this member's payload.
        "resize" | "thumbnail" => Ok(format!("{}({input})", job.kind).into_bytes()),
        // Two data-passing parents: each result, by parent id.
        "publish" => {
            let results = job.parent_results().await.map_err(JobError::fatal)?;
            let parts: Vec<_> = results
                .values()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .collect();
            Ok(format!("published {}", parts.join(" + ")).into_bytes())
        }
        "mirror.fast" => Ok(b"mirrored".to_vec()),
        "mirror.slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(b"too late".to_vec())
        }
        "audit" => Err(JobError::fatal("audit service down")),
        _ => Ok(Vec::new()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store: Arc<dyn Store> = match std::env::args().nth(1) {
        Some(url) => Arc::new(RedisStore::connect(&[url], RedisStoreOptions::default()).await?),
        None => Arc::new(MemoryStore::new()),
    };
    let client = Client::new(store.clone()).await?;
    let engine = Engine::start(EngineConfig::default(), store).await?;
    let flow = client.create_flow("default").await?;

    // A member is created after the edges it waits on, under an id allocated
    // beforehand, so it can never run early.
    let member = |kind: &str, join: JoinPolicy| ExecutionSpec::new(kind).in_flow(&flow, join);
    let fetch = client
        .create(member("fetch", JoinPolicy::AllOf))
        .await?
        .execution;
    let mut named = vec![("fetch", fetch.clone())];
    for kind in ["resize", "thumbnail"] {
        let id = client.new_member_id(&flow);
        client.add_edge(&flow, &fetch, &id, true).await?;
        client
            .create(member(kind, JoinPolicy::AllOf).id(id.clone()))
            .await?;
        named.push((kind, id));
    }
    let publish = client.new_member_id(&flow);
    client.add_edge(&flow, &named[1].1, &publish, true).await?;
    client.add_edge(&flow, &named[2].1, &publish, true).await?;
    client
        .create(member("publish", JoinPolicy::AllOf).id(publish.clone()))
        .await?;
    named.push(("publish", publish.clone()));

    // A race: whichever mirror finishes first releases `notify`; the other
    // is cancelled.
    let mirrors = [
        client
            .create(member("mirror.fast", JoinPolicy::AllOf))
            .await?
            .execution,
        client
            .create(member("mirror.slow", JoinPolicy::AllOf))
            .await?
            .execution,
    ];
    let notify = client.new_member_id(&flow);
    for m in &mirrors {
        client.add_edge(&flow, m, &notify, false).await?;
    }
    client
        .create(
            member("notify", JoinPolicy::AnyOf)
                .cancel_remaining_parents()
                .id(notify.clone()),
        )
        .await?;
    named.extend([
        ("mirror.fast", mirrors[0].clone()),
        ("mirror.slow", mirrors[1].clone()),
        ("notify", notify),
    ]);

    // A failure skips what depends on it.
    let audit = client
        .create(member("audit", JoinPolicy::AllOf))
        .await?
        .execution;
    let archive = client.new_member_id(&flow);
    client.add_edge(&flow, &audit, &archive, false).await?;
    client
        .create(member("archive", JoinPolicy::AllOf).id(archive.clone()))
        .await?;
    named.extend([("audit", audit), ("archive", archive)]);

    let worker = Worker::builder(client.clone(), "dag-example")
        .concurrency(8)
        .fallback(step)
        .start()?;
    for _ in 0..200 {
        let summary = client.get_flow(&flow).await?.summary;
        if summary.done == summary.members {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (name, id) in &named {
        let r = client.get(id).await?;
        let result = r.result.map(|b| String::from_utf8_lossy(&b).into_owned());
        println!(
            "{name:12} {:10} {}",
            r.public_state.as_str(),
            result.unwrap_or_default()
        );
    }
    let f = client.get_flow(&flow).await?;
    println!("flow: {} {:?}", f.summary.state().as_str(), f.summary);
    worker.shutdown().await;
    engine.shutdown().await;
    Ok(())
}
