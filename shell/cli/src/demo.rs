//! `ff demo`: a realistic workload end to end — the engine and in-process
//! workers of the [`Worker`] runtime on one store (in-process by default, or a
//! real server). Some executions succeed, some fail and retry, some are
//! delayed, and some are claimed by a "worker" that dies without a word, so
//! their leases expire and the engine hands them to the live workers.

use ff_core::retry::RetryPolicy;
use ff_core::state::PublicState;
use ff_core::{ExecutionId, Lane, WorkerInstance, WorkerName};
use ff_engine::engine::{Engine, EngineConfig};
use ff_engine::error::Result;
use ff_engine::store::Store;
use ff_engine::worker::{Job, JobError, Worker};
use ff_engine::{Client, ExecutionSpec};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How big the demo is.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Executions to create.
    pub executions: usize,
    /// Give up (and fail) if not everything is terminal by then.
    pub bound: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            executions: 300,
            bound: Duration::from_secs(60),
        }
    }
}

/// What the demo did.
#[derive(Debug, Clone, Default)]
pub struct DemoSummary {
    /// Executions created.
    pub created: usize,
    /// Executions per public state at the end.
    pub states: BTreeMap<&'static str, usize>,
    /// Attempts started, over all executions.
    pub attempts: u64,
    /// Retries scheduled after failures.
    pub retries: u64,
    /// Expired leases reclaimed by the engine.
    pub reclaims: u64,
    /// Wall time of the run.
    pub seconds: f64,
    /// Whether every execution was terminal in time.
    pub all_terminal: bool,
}

/// The handlers of the demo's workers, by kind.
async fn handle(job: Job) -> ff_engine::worker::JobResult {
    let n = job.payload.first().copied().unwrap_or(0) as u64;
    match job.kind.as_str() {
        "thumbnail" => {
            tokio::time::sleep(Duration::from_millis(5 + n % 40)).await;
            Ok(format!("thumb-{n}.png").into_bytes())
        }
        // Fails its first attempt, then succeeds on the retry.
        "charge" if job.attempt == 1 => Err(JobError::retry("card network timeout")),
        "charge" => Ok(b"charged".to_vec()),
        // Never works: retries run out and it fails.
        "import" => Err(JobError::retry("upstream returned 503")),
        // Asks to be run again a little later, once.
        "poll" if job.attempt == 1 => Err(JobError::Delay(Duration::from_millis(300))),
        "poll" => Ok(b"ready".to_vec()),
        other => Err(JobError::fatal(format!("no handler for {other}"))),
    }
}

fn spec(i: usize) -> ExecutionSpec {
    let payload = vec![(i % 256) as u8];
    match i % 10 {
        0..=4 => ExecutionSpec::new("thumbnail").payload(payload),
        5 | 6 => ExecutionSpec::new("charge")
            .payload(payload)
            .retry(RetryPolicy::exponential(3, 100, 1_000)),
        7 => ExecutionSpec::new("import")
            .payload(payload)
            .retry(RetryPolicy::exponential(2, 100, 400)),
        8 => ExecutionSpec::new("poll").payload(payload),
        _ => ExecutionSpec::new("thumbnail")
            .payload(payload)
            .delay(Duration::from_millis(200 + (i as u64 * 37) % 1_500)),
    }
}

/// Run the demo on `store`, printing progress lines to stderr.
pub async fn run(store: Arc<dyn Store>, opts: DemoOptions) -> Result<DemoSummary> {
    let started = Instant::now();
    let client = Client::new(store.clone()).await?;
    let engine = Engine::start(EngineConfig::default(), store.clone()).await?;
    // A worker that claims a few and dies without a word: their leases expire
    // and the engine hands them to the live workers.
    let mut ids: Vec<ExecutionId> = Vec::with_capacity(opts.executions);
    for i in 0..opts.executions.min(5) {
        ids.push(client.create(spec(i * 10)).await?.execution);
    }
    let ghost = (WorkerName::new("ghost")?, WorkerInstance::new("ghost-1")?);
    let lost = client
        .claim(
            &Lane::default_lane(),
            &ghost.0,
            &ghost.1,
            Duration::from_millis(500),
            5,
        )
        .await?;
    let workers: Vec<Worker> = (0..2)
        .map(|i| {
            Worker::builder(client.clone(), "demo")
                .instance(format!("demo-{i}"))
                .concurrency(16)
                .lease_ttl(Duration::from_secs(2))
                .fallback(handle)
                .start()
        })
        .collect::<Result<_>>()?;
    for i in ids.len()..opts.executions {
        ids.push(client.create(spec(i)).await?.execution);
    }
    eprintln!(
        "demo: created {} executions; a worker claimed {} and vanished",
        ids.len(),
        lost.len()
    );

    // A bar on a terminal; otherwise a line per look.
    let bar = crate::progress::terminal_bar("demo", ids.len() as u64);
    let summary = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut states: BTreeMap<&'static str, usize> = BTreeMap::new();
        let (mut attempts, mut retries, mut reclaims) = (0u64, 0u64, 0u64);
        let records = futures::future::join_all(ids.iter().map(|e| client.get(e))).await;
        for r in records {
            let r = r?;
            *states.entry(r.public_state.as_str()).or_default() += 1;
            attempts += r.attempt as u64;
            retries += r.retries as u64;
            reclaims += r.reclaims as u64;
        }
        let terminal: usize = states
            .iter()
            .filter(|(s, _)| PublicState::parse(s).is_some_and(|p| p.is_terminal()))
            .map(|(_, n)| n)
            .sum();
        match &bar {
            Some(bar) => {
                bar.set_position(terminal as u64);
                bar.set_message(format!("{states:?}"));
            }
            None => eprintln!(
                "demo: {:>5.1}s  {terminal}/{} done  {:?}",
                started.elapsed().as_secs_f64(),
                ids.len(),
                states
            ),
        }
        let summary = DemoSummary {
            created: ids.len(),
            states,
            attempts,
            retries,
            reclaims,
            seconds: started.elapsed().as_secs_f64(),
            all_terminal: terminal == ids.len(),
        };
        if summary.all_terminal || started.elapsed() >= opts.bound {
            break summary;
        }
    };
    if let Some(bar) = bar {
        bar.abandon();
    }
    for w in workers {
        w.shutdown().await;
    }
    let stats = engine.metrics();
    engine.shutdown().await;
    for s in stats.iter().filter(|s| s.acted > 0 || s.repaired > 0) {
        eprintln!(
            "demo: engine {:<18} acted {:>5}  repaired {:>3}  cycles {:>4}",
            s.scanner, s.acted, s.repaired, s.cycles
        );
    }
    Ok(summary)
}
