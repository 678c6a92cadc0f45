//! `ff engine`: the engine as a process. Connect, start the engine, serve
//! the metrics endpoint if asked, wait for the stop signal, then stop the
//! endpoint and shut the engine down within its bound.

use ff_engine::engine::{metrics_http, Engine, EngineConfig};
use ff_engine::error::Result;
use ff_engine::prometheus_client::registry::Registry;
use ff_engine::store::{RedisStore, RedisStoreOptions, TlsOptions};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What `ff engine` runs.
#[derive(Debug)]
pub struct ServeOptions {
    /// Server URLs (several seeds for a cluster).
    pub urls: Vec<String>,
    /// The URLs are seeds of a Redis Cluster.
    pub cluster: bool,
    /// Certificates for `rediss://` URLs (None: the system's trust store).
    pub tls: Option<TlsOptions>,
    /// The engine's configuration.
    pub config: EngineConfig,
    /// Where to answer Prometheus scrapes (`GET /metrics`), already bound so
    /// a bad address fails before anything starts.
    pub metrics: Option<TcpListener>,
}

/// Run until `stop` completes. Returns whether the engine stopped within
/// its shutdown bound.
pub async fn serve(opts: ServeOptions, stop: impl Future<Output = ()>) -> Result<bool> {
    let store = Arc::new(
        RedisStore::connect(
            &opts.urls,
            RedisStoreOptions {
                cluster: opts.cluster,
                tls: opts.tls,
                ..Default::default()
            },
        )
        .await?,
    );
    let engine = Engine::start(opts.config, store.clone()).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let endpoint = opts.metrics.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "metrics endpoint listening on /metrics");
        }
        // The registry reads the engine's counters, not the engine: shutdown
        // needs nothing back from the endpoint.
        let mut registry = Registry::default();
        engine.register_metrics(&mut registry);
        store.register_metrics(&mut registry);
        tokio::spawn(metrics_http::serve(listener, Arc::new(registry), stop_rx))
    });
    stop.await;
    tracing::info!("stop requested; shutting down");
    let _ = stop_tx.send(true);
    if let Some(endpoint) = endpoint {
        let _ = endpoint.await;
    }
    Ok(engine.shutdown().await)
}

/// Take over SIGINT and SIGTERM now (inside a runtime); the future completes
/// on the first of them. Taken before connecting, so a signal at any later
/// point means a clean stop rather than the default exit.
pub fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            biased;
            _ = int.recv() => tracing::info!("SIGINT"),
            _ = term.recv() => tracing::info!("SIGTERM"),
        }
    })
}
