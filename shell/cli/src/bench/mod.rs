//! `ff bench`: measured scenarios against a real server.
//!
//! Each scenario drives the engine through one workload and returns a
//! [`Report`] (printed by `ff bench … --json` as one JSON line):
//!
//! | scenario | figure | target |
//! |---|---|---|
//! | `delayed-drain` | `items_per_sec`: N due delayed executions made eligible | ≥ 100 000/s |
//! | `lease-drain` | `items_per_sec`: N expired leases reclaimed | ≥ 80 000/s |
//! | `idle` | `commands_per_sec` an idle engine sends | ≤ 50/s |
//! | `lateness` | `p99_ms` of (promoted at − due at) of short delays | ≤ 50 ms |
//! | `memory` | `bytes_per_execution` (INFO `used_memory` delta) | ≤ 1 000 |
//! | `e2e` | `jobs_per_sec` one Worker completes; `submit_per_sec` | ≥ 45 000 / ≥ 60 000 |
//! | `dag-chain` | `p50_ms` / `p99_ms` from a 10-level chain's first complete to its last level claimed; each level's complete claims the next in the same call (`Client::report_many_claim`), as a worker's reports do | p50 ≤ 3 ms |
//! | `fanout` | `all_eligible_ms`: one parent's complete → its n children eligible | — |
//! | `replicas` | per 1, 2, 4 replicas: idle `commands_per_sec`, drain `items_per_sec`, rebalance time | — (compared) |
//! | `suspend-signal` | `round_trip_p50_ms` / `p99`: suspend → signal → claimed again, one at a time | — |
//! | `schedules` | lateness `p50`/`p99` of N every-second schedules' fires; idle commands/s with N (and N/10) schedules between fires | p99 ≤ 50 ms; idle flat in N |
//! | `admission` | `admitted_jobs_per_sec` (budget + quota in the path) vs `plain_jobs_per_sec`; `reset_to_all_eligible_ms` | — (compared) |
//! | `dashboard` | `overview_p50_ms` / `p99`, `list_*_p50_ms` / `p99`, `execution_p50_ms` / `p99`: the dashboard's pages with N executions stored (default 1 000 000) | — |
//!
//! **The bench wipes the server.** It starts only on a server whose databases
//! hold no keys, or with `flush` set (FLUSHALL on every primary first); when it
//! is done it runs FLUSHALL again (unless `keep` is set), so the next scenario
//! starts clean. The function library is left loaded.

mod admission;
mod dashboard;
mod delayed_drain;
mod e2e;
mod flows;
mod idle;
mod lateness;
mod lease_drain;
mod memory;
mod replicas;
mod results;
mod schedules;
mod suspend_signal;
mod util;

pub use util::{Admin, CommandStats, Report};

use ff_engine::store::{RedisStore, RedisStoreOptions, Store};
use ff_engine::Client;
use std::sync::Arc;
use std::time::Duration;
use util::progress;

/// Errors of a bench run (setup failures; a scenario that ran but missed its
/// end state reports `ok: false` instead).
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;
/// A bench step's result.
pub type BenchResult<T> = Result<T, BenchError>;

/// The scenarios (their command-line names are clap's kebab-case of the
/// variants: `delayed-drain`, `e2e`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// N due delayed executions made eligible (items/s; target >= 100 000).
    DelayedDrain,
    /// N expired leases reclaimed (items/s; target >= 80 000).
    LeaseDrain,
    /// Commands/s an idle engine sends (target <= 50).
    Idle,
    /// p50/p99 of promoted-at minus due-at for short delays (target p99 <= 50 ms).
    Lateness,
    /// Valkey bytes per delayed execution (target <= 1 000).
    Memory,
    /// N no-op executions submitted, then run by one Worker (jobs/s; target >= 45 000, submit >= 60 000).
    E2e,
    /// N chains of 10 flow levels: first complete to last level claimed, each complete claiming the next (p50 target <= 3 ms).
    DagChain,
    /// One flow parent with N children (default 10 000): its complete to all children eligible.
    Fanout,
    /// 1, 2 and 4 engine replicas: rebalance time, idle commands/s, drain items/s (N: 50 000; idle SECONDS: 10).
    Replicas,
    /// p50/p99 of suspend → signal → claimed again, one at a time (default n 2000).
    SuspendSignal,
    /// Jobs/s with a budget and a quota in the path vs without; unblock time after a budget reset (default n 50 000).
    Admission,
    /// N schedules firing every second for SECONDS: lateness p50/p99, exactly once; idle commands/s with N and N/10 schedules (default n 1 000, 10 s; the size: --n 10000 --seconds 60).
    Schedules,
    /// Page times (p50/p99) of the web dashboard with N executions stored (default 1 000 000).
    Dashboard,
    /// Enqueue → awaited result: p50/p99 one at a time, then results/s and p50/p99 with 1 000 callers waiting at once (default n 20 000).
    Results,
}

impl Scenario {
    /// The scenario's command-line name.
    pub fn name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_owned())
    }

    /// Executions created when `n` is not given (0: the scenario creates none).
    pub fn default_n(self) -> u64 {
        match self {
            Scenario::DelayedDrain | Scenario::LeaseDrain | Scenario::Memory | Scenario::E2e => {
                100_000
            }
            Scenario::Lateness => 5_000,
            Scenario::Replicas => 50_000,
            Scenario::SuspendSignal => 2_000,
            Scenario::Results => 20_000,
            Scenario::Admission => 50_000,
            Scenario::Schedules => 1_000,
            Scenario::Idle => 0,
            Scenario::DagChain => 200,
            Scenario::Fanout => 10_000,
            Scenario::Dashboard => 1_000_000,
        }
    }

    /// The run's length in seconds when `seconds` is not given (scenarios
    /// that run for a set time only).
    pub fn default_seconds(self) -> f64 {
        match self {
            Scenario::Idle => 30.0,
            Scenario::Lateness => 10.0,
            Scenario::Replicas => 10.0,
            Scenario::Schedules => 10.0,
            _ => 0.0,
        }
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// One URL (standalone) or cluster seeds.
    pub urls: Vec<String>,
    /// Treat the URLs as seeds of a Redis Cluster.
    pub cluster: bool,
    /// Executions to create; the scenario's default when `None`.
    pub n: Option<u64>,
    /// Length of timed scenarios (idle, lateness); their default when `None`.
    pub seconds: Option<f64>,
    /// FLUSHALL a server that holds keys instead of refusing to run.
    pub flush: bool,
    /// Leave the scenario's data in place afterwards (no final FLUSHALL).
    pub keep: bool,
    /// `schedules`: the engine's index reconciler interval instead of its
    /// default (its sweep walks every execution the fires made).
    pub index_reconciler: Option<std::time::Duration>,
}

/// What a scenario gets to work with.
pub(crate) struct Ctx {
    pub opts: BenchOptions,
    pub admin: Admin,
    pub store: Arc<dyn Store>,
    pub client: Client,
    pub n: u64,
    pub seconds: f64,
}

impl Ctx {
    /// A store of its own for the engine, so the bench's polling and reads do
    /// not share its connection.
    pub async fn engine_store(&self) -> BenchResult<Arc<dyn Store>> {
        Ok(Arc::new(connect(&self.opts).await?))
    }

    /// A report with the fields every scenario starts with.
    pub fn report(&self, scenario: Scenario) -> Report {
        let mut r = Report::default();
        r.set("scenario", scenario.name());
        r.set("n", self.n);
        r
    }
}

async fn connect(opts: &BenchOptions) -> BenchResult<RedisStore> {
    let o = RedisStoreOptions {
        cluster: opts.cluster,
        // A drain of 100 000 keeps thousands of calls queued on one
        // connection; give them room.
        response_timeout: Duration::from_secs(30),
        ..RedisStoreOptions::default()
    };
    Ok(RedisStore::connect(&opts.urls, o).await?)
}

/// Run one scenario: check (or flush) the server, run, clean up.
pub async fn run(scenario: Scenario, opts: BenchOptions) -> BenchResult<Report> {
    let admin = Admin::connect(&opts.urls, opts.cluster).await?;
    let keys = admin.key_count().await?;
    if keys > 0 {
        if !opts.flush {
            return Err(format!(
                "the server holds {keys} keys; ff bench wipes the server it runs on \
                 (FLUSHALL before and after): pass --flush to allow it"
            )
            .into());
        }
        progress!("FLUSHALL ({keys} keys)");
        admin.flushall().await?;
    }
    let version = admin.info_text("server", "redis_version").await?;
    let store: Arc<dyn Store> = Arc::new(connect(&opts).await?);
    let client = Client::new(store.clone()).await?;
    let ctx = Ctx {
        n: opts.n.unwrap_or(scenario.default_n()),
        seconds: opts.seconds.unwrap_or(scenario.default_seconds()),
        opts,
        admin,
        store,
        client,
    };
    progress!(
        "{scenario}: n={} on {} node(s), server {version}",
        ctx.n,
        ctx.admin.node_count()
    );
    let result = match scenario {
        Scenario::DelayedDrain => delayed_drain::run(&ctx).await,
        Scenario::LeaseDrain => lease_drain::run(&ctx).await,
        Scenario::Idle => idle::run(&ctx).await,
        Scenario::Lateness => lateness::run(&ctx).await,
        Scenario::Memory => memory::run(&ctx).await,
        Scenario::E2e => e2e::run(&ctx).await,
        Scenario::DagChain => flows::dag_chain(&ctx).await,
        Scenario::Fanout => flows::fanout(&ctx).await,
        Scenario::Replicas => replicas::run(&ctx).await,
        Scenario::SuspendSignal => suspend_signal::run(&ctx).await,
        Scenario::Results => results::run(&ctx).await,
        Scenario::Admission => admission::run(&ctx).await,
        Scenario::Schedules => schedules::run(&ctx).await,
        Scenario::Dashboard => dashboard::run(&ctx).await,
    };
    if !ctx.opts.keep {
        if let Err(e) = ctx.admin.flushall().await {
            progress!("final FLUSHALL failed: {e}");
        }
    }
    let mut report = result?;
    report.set("server_version", version);
    report.set("cluster", ctx.opts.cluster);
    report.set("primaries", ctx.admin.node_count());
    Ok(report)
}
