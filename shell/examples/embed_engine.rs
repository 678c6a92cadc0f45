//! Embed the engine in a tokio service: the service's own tasks create work
//! through the `Client`, the engine runs in the same process, and the
//! engine's counters are served on the service's own metrics port in the
//! Prometheus format; Ctrl-C (or `--seconds N`) stops everything in order.
//!
//! ```text
//! cargo run -p ff-engine --example embed_engine                     # in-process store
//! cargo run -p ff-engine --example embed_engine -- --redis redis://127.0.0.1:6379 --seconds 10
//! curl http://127.0.0.1:9464/metrics
//! ```

use ff_engine::engine::metrics_http;
use ff_engine::prometheus_client::registry::Registry;
use ff_engine::store::{MemoryStore, RedisStore, RedisStoreOptions, Store};
use ff_engine::{Client, Engine, EngineConfig, JobType};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A reminder to send later; its handler runs in another service.
struct Remind;
impl JobType for Remind {
    const KIND: &'static str = "reminder";
    type Args = u64;
    type Output = ();
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let store: Arc<dyn Store> = match arg("--redis") {
        Some(url) => Arc::new(RedisStore::connect(&[url], RedisStoreOptions::default()).await?),
        None => Arc::new(MemoryStore::new()),
    };
    let config = EngineConfig {
        batch_size: 500,
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, store.clone()).await?;
    let client = Client::new(store).await?;
    let (stop_tx, stop_rx) = watch::channel(false);

    // The engine's counters in the service's own registry (beside the
    // service's metrics), served on its metrics port.
    let mut registry = Registry::default();
    engine.register_metrics(&mut registry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:9464").await?;
    let metrics = tokio::spawn(metrics_http::serve(
        listener,
        Arc::new(registry),
        stop_rx.clone(),
    ));
    println!("metrics on http://127.0.0.1:9464/metrics");

    // The service's own work: a delayed reminder every 100 ms.
    let mut producer_stop = stop_rx;
    let producer = tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            tokio::select! {
                biased;
                _ = producer_stop.changed() => return n,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            let later = |s: ff_engine::ExecutionSpec| s.delay(Duration::from_millis(250));
            if client.enqueue_with(Remind, &n, later).await.is_ok() {
                n += 1;
            }
        }
    });

    match arg("--seconds").and_then(|s| s.parse().ok()) {
        Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
        None => tokio::signal::ctrl_c().await?,
    }
    // In order: stop producing and serving, then the engine within its bound.
    let _ = stop_tx.send(true);
    let created = producer.await?;
    metrics.await?;
    let promoted = engine
        .metrics()
        .iter()
        .find(|s| s.scanner == "delayed_promoter")
        .map_or(0, |s| s.acted);
    println!("created {created} reminders; the engine promoted {promoted}");
    engine.shutdown().await;
    Ok(())
}
