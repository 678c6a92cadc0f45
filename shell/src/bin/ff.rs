//! The `ff` command.

use clap::{Parser, Subcommand, ValueEnum};
use ff_engine::store::library::library;

/// ff — an execution engine on Valkey / Redis 7+.
#[derive(Debug, Parser)]
#[command(name = "ff", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the crate version and the function library version.
    Version,
    /// Run one measured scenario against a server and print its figures.
    ///
    /// THE BENCH WIPES THE SERVER: it refuses to start on a server that holds
    /// keys unless --flush is given (then it runs FLUSHALL on every primary),
    /// and it runs FLUSHALL again when done (unless --keep), so the next
    /// scenario starts clean. Progress goes to stderr; the figures to stdout.
    Bench(BenchArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScenarioArg {
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
}

#[derive(Debug, clap::Args)]
#[cfg_attr(madsim, allow(dead_code))]
struct BenchArgs {
    /// The scenario to run.
    scenario: ScenarioArg,
    /// Server URL (redis://[user:pass@]host:port, rediss:// for TLS); repeat
    /// for several cluster seeds.
    #[arg(long = "redis", value_name = "URL", required = true)]
    redis: Vec<String>,
    /// The URLs are seeds of a Redis Cluster.
    #[arg(long)]
    cluster: bool,
    /// Executions to create (default: 100000; lateness 5000; idle none).
    #[arg(long, value_name = "N")]
    n: Option<u64>,
    /// Length of the timed scenarios: idle (default 30) and lateness's
    /// creation period (default 10).
    #[arg(long, value_name = "SECONDS")]
    seconds: Option<f64>,
    /// FLUSHALL a server that holds keys instead of refusing to run.
    #[arg(long)]
    flush: bool,
    /// Leave the scenario's data on the server (skip the final FLUSHALL).
    #[arg(long)]
    keep: bool,
    /// Print the figures as one JSON line.
    #[arg(long)]
    json: bool,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!(
                "ff {} (function library {})",
                env!("CARGO_PKG_VERSION"),
                library().version
            );
        }
        Command::Bench(args) => std::process::exit(bench(args)),
    }
}

#[cfg(not(madsim))]
fn bench(args: BenchArgs) -> i32 {
    use ff_engine::bench::{self, BenchOptions, Scenario};
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let scenario = match args.scenario {
        ScenarioArg::DelayedDrain => Scenario::DelayedDrain,
        ScenarioArg::LeaseDrain => Scenario::LeaseDrain,
        ScenarioArg::Idle => Scenario::Idle,
        ScenarioArg::Lateness => Scenario::Lateness,
        ScenarioArg::Memory => Scenario::Memory,
    };
    let opts = BenchOptions {
        urls: args.redis,
        cluster: args.cluster,
        n: args.n,
        seconds: args.seconds,
        flush: args.flush,
        keep: args.keep,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ff bench: cannot start the runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(bench::run(scenario, opts)) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json_line());
            } else {
                print!("{}", report.to_text());
            }
            if report.ok() {
                0
            } else {
                eprintln!("ff bench: {scenario} did not reach its expected end state (ok: false)");
                1
            }
        }
        Err(e) => {
            eprintln!("ff bench: {scenario}: {e}");
            1
        }
    }
}

#[cfg(madsim)]
fn bench(_: BenchArgs) -> i32 {
    eprintln!("ff bench needs a real server; it is not built under madsim");
    1
}
