//! The `ff` command.

use clap::{Parser, Subcommand};
use ff_cli::bench::Scenario;
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
    /// Run the engine (every scanner) against a server until SIGINT or
    /// SIGTERM, then stop within the shutdown bound.
    ///
    /// Configuration: defaults, overridden by the TOML file (--config), then
    /// by FF_<FIELD> environment variables, then by the flags below.
    /// Durations take a unit: "1500ms", "2s", "1m", "1h". Logs go to stderr,
    /// filtered by RUST_LOG (default info).
    Engine(EngineArgs),
    /// Run a realistic workload end to end — engine and in-process workers —
    /// on the in-process store (no server needed), or on a server with --redis.
    Demo(DemoArgs),
    /// Counts per state, per lane and per index, and the oldest due item of
    /// each scanner, across every partition: the first look when something
    /// seems stuck.
    Inspect(InspectArgs),
    /// Run one measured scenario against a server and print its figures.
    ///
    /// THE BENCH WIPES THE SERVER: it refuses to start on a server that holds
    /// keys unless --flush is given (then it runs FLUSHALL on every primary),
    /// and it runs FLUSHALL again when done (unless --keep), so the next
    /// scenario starts clean. Progress goes to stderr; the figures to stdout.
    Bench(BenchArgs),
    /// Schedules (cron and interval jobs): list, show, pause, resume,
    /// delete, and preview an expression's next fire times.
    Schedule(ScheduleArgs),
    /// One execution: state, attempts, worker, failure, progress, payload.
    Get {
        /// The execution id.
        id: String,
        #[command(flatten)]
        conn: ConnArgs,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// One flow: its state and counts, and a page of its members (id
    /// order) with the parents each waits on.
    Flow {
        /// The flow id.
        id: String,
        /// Where the page starts (an offset a previous page printed).
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Members per page (1..=1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        conn: ConnArgs,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// A page of a lane's executions in one state (newest first when ended).
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        conn: ConnArgs,
        /// Print one JSON object ({"items": [...], "next": cursor}).
        #[arg(long)]
        json: bool,
    },
    /// Run a failed, cancelled or expired execution again (its next
    /// attempt), or every match of a filter (--lane, --state ...).
    Retry {
        /// The execution id; without it, every execution the filter matches.
        id: Option<String>,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Cancel an execution that has not ended.
    Cancel {
        /// The execution id.
        id: String,
        /// Why (kept as its failure).
        #[arg(long, default_value = "cancelled by an operator")]
        reason: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Delete a terminal execution now (before its retention ends).
    Delete {
        /// The execution id.
        id: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Pause a lane: its claims hand out nothing until it is resumed.
    Pause {
        /// The lane.
        lane: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Resume a paused lane (its workers start at once).
    Resume {
        /// The lane.
        lane: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Serve the web dashboard: counts, executions, flows, budgets and
    /// quotas, with retry, cancel, pause and resume buttons.
    ///
    /// Binds to loopback by default; any other address needs --token or
    /// --basic-auth. Runs until SIGINT or SIGTERM.
    Dashboard(DashboardArgs),
}

#[derive(Debug, clap::Args)]
struct DashboardArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Where to listen.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:9470",
        env = "FF_DASHBOARD_ADDR"
    )]
    addr: std::net::SocketAddr,
    /// Show no buttons and refuse every action.
    #[arg(long, env = "FF_DASHBOARD_READ_ONLY")]
    read_only: bool,
    /// An engine's metrics endpoint (`http://host:port/metrics`, as
    /// `ff engine --metrics-addr` serves it): the overview shows its
    /// scanners. Repeat for each engine.
    #[arg(long = "engine-metrics", value_name = "URL")]
    engine_metrics: Vec<String>,
    /// Require this bearer token (at least 16 characters); a browser opens
    /// any page once with ?token=T and keeps it in a cookie.
    #[arg(
        long,
        value_name = "T",
        env = "FF_DASHBOARD_TOKEN",
        conflicts_with = "basic_auth",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Require HTTP basic auth with this user and password.
    #[arg(
        long,
        value_name = "USER:PASS",
        env = "FF_DASHBOARD_BASIC_AUTH",
        hide_env_values = true
    )]
    basic_auth: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ScheduleArgs {
    #[command(subcommand)]
    verb: ScheduleVerb,
}

#[derive(Debug, Subcommand)]
enum ScheduleVerb {
    /// Every schedule with its state, next fire time and counts.
    List {
        #[command(flatten)]
        server: ConnArgs,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// One schedule: its definition, counts and next fire times.
    Show {
        /// The schedule's name.
        name: String,
        #[command(flatten)]
        server: ConnArgs,
        /// Next fire times to print.
        #[arg(short = 'n', long, default_value_t = 5)]
        next: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Stop a schedule firing until resumed.
    Pause {
        /// The schedule's name.
        name: String,
        #[command(flatten)]
        server: ConnArgs,
    },
    /// Fire a paused schedule again, from its next fire time after now.
    Resume {
        /// The schedule's name.
        name: String,
        #[command(flatten)]
        server: ConnArgs,
    },
    /// Delete a schedule (the executions it made stay).
    Delete {
        /// The schedule's name.
        name: String,
        #[command(flatten)]
        server: ConnArgs,
    },
    /// The next fire times of a cron expression (or an interval) in a zone,
    /// after this machine's clock; needs no server.
    Preview {
        /// A cron expression: 5 fields, or 6 with seconds first.
        #[arg(required_unless_present = "every")]
        expr: Option<String>,
        /// An interval instead ("10s", "1h"), aligned to the Unix epoch.
        #[arg(long, conflicts_with = "expr")]
        every: Option<String>,
        /// IANA time zone.
        #[arg(long, default_value = "UTC")]
        zone: String,
        /// How many fire times.
        #[arg(short = 'n', long, default_value_t = 5)]
        n: usize,
        /// Print one JSON array of Unix ms.
        #[arg(long)]
        json: bool,
    },
}

/// Where the server is.
#[derive(Debug, Clone, clap::Args)]
struct ConnArgs {
    /// Server URL; repeat (or separate with commas) for cluster seeds.
    #[arg(
        long = "redis",
        value_name = "URL",
        env = "FF_REDIS",
        value_delimiter = ',',
        required = true
    )]
    redis: Vec<String>,
    /// The URLs are seeds of a Redis Cluster.
    #[arg(long, env = "FF_CLUSTER")]
    cluster: bool,
    #[command(flatten)]
    tls: ff_cli::tls::TlsArgs,
}

/// Which executions (`list`, and `retry` without an id).
#[derive(Debug, Clone, clap::Args)]
struct FilterArgs {
    /// The lane.
    #[arg(long, default_value = "default")]
    lane: String,
    /// The state: waiting, delayed, active, suspended, waiting_children,
    /// rate_limited, completed, failed, cancelled, expired, skipped.
    #[arg(long, default_value = "failed")]
    state: String,
    /// Only this kind.
    #[arg(long)]
    kind: Option<String>,
    /// Only failures whose message starts with this.
    #[arg(long)]
    error_prefix: Option<String>,
    /// Executions per page (1..=1000).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Start at this cursor (printed by the previous page).
    #[arg(long)]
    cursor: Option<String>,
}

impl FilterArgs {
    fn list_args(&self) -> ff_cli::ops::ListArgs {
        ff_cli::ops::ListArgs {
            lane: self.lane.clone(),
            state: self.state.clone(),
            kind: self.kind.clone(),
            error_prefix: self.error_prefix.clone(),
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
    }
}

#[derive(Debug, clap::Args)]
struct EngineArgs {
    /// Server URL (redis://[user:pass@]host:port, rediss:// for TLS); repeat
    /// (or separate with commas) for several cluster seeds.
    #[arg(
        long = "redis",
        value_name = "URL",
        env = "FF_REDIS",
        value_delimiter = ',',
        required_unless_present = "print_config"
    )]
    redis: Vec<String>,
    /// The URLs are seeds of a Redis Cluster.
    #[arg(long, env = "FF_CLUSTER")]
    cluster: bool,
    /// A TOML file of engine configuration fields (the flags' names with
    /// `_` for `-`); an unknown key is an error.
    #[arg(long, value_name = "PATH", env = "FF_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Answer Prometheus scrapes at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR", env = "FF_METRICS_ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Log JSON lines instead of text.
    #[arg(long, env = "FF_LOG_JSON")]
    log_json: bool,
    /// Print the configuration the sources give, as TOML, and exit.
    #[arg(long)]
    print_config: bool,
    #[command(flatten)]
    tls: ff_cli::tls::TlsArgs,
    #[command(flatten)]
    fields: ff_cli::config_source::ConfigFlags,
}

#[derive(Debug, clap::Args)]
struct InspectArgs {
    /// Server URL; repeat for several cluster seeds.
    #[arg(long = "redis", value_name = "URL", required = true)]
    redis: Vec<String>,
    /// The URLs are seeds of a Redis Cluster.
    #[arg(long)]
    cluster: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Also count every record and compare with the counters (O(executions);
    /// exit status 3 when they differ).
    #[arg(long)]
    recount: bool,
    #[command(flatten)]
    tls: ff_cli::tls::TlsArgs,
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Run against this server instead of the in-process store (it must be empty
    /// of ff data you care about: the demo leaves its executions behind).
    #[arg(long = "redis", value_name = "URL")]
    redis: Option<String>,
    /// Executions to create.
    #[arg(long, default_value_t = 300)]
    n: usize,
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// The scenario to run.
    scenario: Scenario,
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
    /// Length of the timed scenarios: idle (default 30), lateness's
    /// creation period (default 10) and replicas' idle count (default 10).
    #[arg(long, value_name = "SECONDS")]
    seconds: Option<f64>,
    /// FLUSHALL a server that holds keys instead of refusing to run.
    #[arg(long)]
    flush: bool,
    /// Leave the scenario's data on the server (skip the final FLUSHALL).
    #[arg(long)]
    keep: bool,
    /// schedules: the engine's index reconciler interval in seconds (its
    /// sweep walks every execution the fires made; default the engine's).
    #[arg(long, value_name = "SECONDS")]
    index_reconciler: Option<u64>,
    /// Print the figures as one JSON line.
    #[arg(long)]
    json: bool,
}

// A worker allocates per job on its claim → report path; under glibc's
// malloc the bench worker spent about 40% of its CPU in the allocator
// (perf, `ff bench e2e`), and it shares the machine with Valkey.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Command::Engine(args) => std::process::exit(engine(args)),
        Command::Bench(args) => std::process::exit(bench(args)),
        Command::Demo(args) => std::process::exit(demo(args)),
        Command::Inspect(args) => std::process::exit(inspect(args)),
        Command::Schedule(args) => std::process::exit(schedule(args.verb)),
        Command::Get { id, conn, json } => std::process::exit(op(&conn, "get", |c| async move {
            ff_cli::ops::get(&c, &id, json).await
        })),
        Command::Flow {
            id,
            offset,
            limit,
            conn,
            json,
        } => std::process::exit(op(&conn, "flow", |c| async move {
            ff_cli::ops::flow(&c, &id, offset, limit, json).await
        })),
        Command::List { filter, conn, json } => {
            std::process::exit(op(&conn, "list", |c| async move {
                ff_cli::ops::list(&c, &filter.list_args(), json).await
            }))
        }
        Command::Retry { id, filter, conn } => {
            std::process::exit(op(&conn, "retry", |c| async move {
                match id {
                    Some(id) => ff_cli::ops::retry(&c, &id).await,
                    None => ff_cli::ops::retry_all(&c, &filter.list_args()).await,
                }
            }))
        }
        Command::Cancel { id, reason, conn } => {
            std::process::exit(op(&conn, "cancel", |c| async move {
                ff_cli::ops::cancel(&c, &id, &reason).await
            }))
        }
        Command::Delete { id, conn } => std::process::exit(op(&conn, "delete", |c| async move {
            ff_cli::ops::delete(&c, &id).await
        })),
        Command::Pause { lane, conn } => std::process::exit(op(&conn, "pause", |c| async move {
            ff_cli::ops::pause(&c, &lane, true).await
        })),
        Command::Resume { lane, conn } => std::process::exit(op(&conn, "resume", |c| async move {
            ff_cli::ops::pause(&c, &lane, false).await
        })),
        Command::Dashboard(args) => std::process::exit(dashboard(args)),
    }
}

/// `ff dashboard`: 2 for a refused address or bad credentials, 1 when it
/// cannot connect or listen, 0 after a clean stop.
fn dashboard(args: DashboardArgs) -> i32 {
    use ff_cli::dashboard::{self, Auth, DashboardOptions};
    use ff_engine::store::{RedisStore, RedisStoreOptions};
    let auth = match (&args.token, &args.basic_auth) {
        (Some(t), _) => Auth::token(t),
        (None, Some(b)) => Auth::basic(b),
        (None, None) => Ok(Auth::None),
    };
    let auth = match auth {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ff dashboard: {e}");
            return 2;
        }
    };
    if let Err(e) = dashboard::check_bind(args.addr, &auth) {
        eprintln!("ff dashboard: {e}");
        return 2;
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let Some(runtime) = runtime("dashboard", true) else {
        return 1;
    };
    runtime.block_on(async {
        let stop = match ff_cli::serve::stop_signal() {
            Ok(stop) => stop,
            Err(e) => {
                eprintln!("ff dashboard: cannot handle SIGINT/SIGTERM: {e}");
                return 1;
            }
        };
        let tls = match args.conn.tls.options() {
            Ok(tls) => tls,
            Err(e) => {
                eprintln!("ff dashboard: {e}");
                return 2;
            }
        };
        let opts = RedisStoreOptions {
            cluster: args.conn.cluster,
            tls,
            ..Default::default()
        };
        let client = match RedisStore::connect(&args.conn.redis, opts).await {
            Ok(store) => match ff_engine::Client::new(std::sync::Arc::new(store)).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ff dashboard: {e}");
                    return 1;
                }
            },
            Err(e) => {
                eprintln!("ff dashboard: {e}");
                return 1;
            }
        };
        let listener = match tokio::net::TcpListener::bind(args.addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ff dashboard: cannot listen on {}: {e}", args.addr);
                return 1;
            }
        };
        let read_only = args.read_only;
        let app = auth.layer(dashboard::router(
            client,
            DashboardOptions {
                read_only,
                engine_metrics: args.engine_metrics.clone(),
            },
        ));
        let shown = listener.local_addr().map_or(args.addr, |a| a);
        eprintln!(
            "ff dashboard: http://{shown}/{}",
            if read_only { " (read-only)" } else { "" }
        );
        match dashboard::serve(listener, app, stop).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("ff dashboard: {e}");
                1
            }
        }
    })
}

/// Connect, run one operator verb, print its answer; 0, or 1 with the
/// error on stderr.
fn op<F, Fut>(conn: &ConnArgs, verb: &str, f: F) -> i32
where
    F: FnOnce(ff_engine::Client) -> Fut,
    Fut: std::future::Future<Output = Result<String, ff_cli::ops::OpsError>>,
{
    let Some(runtime) = runtime(verb, false) else {
        return 1;
    };
    let result = runtime.block_on(async {
        let client = connect_client(&conn.redis, conn.cluster, &conn.tls).await?;
        f(client).await
    });
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            0
        }
        Err(e) => {
            eprintln!("ff {verb}: {e}");
            1
        }
    }
}

fn schedule(verb: ScheduleVerb) -> i32 {
    use ff_cli::schedule as sch;
    use ff_engine::core::schedule::Trigger;
    if let ScheduleVerb::Preview {
        expr,
        every,
        zone,
        n,
        json,
    } = &verb
    {
        let trigger = match (expr, every) {
            (Some(e), _) => Trigger::Cron(e.clone()),
            (None, Some(d)) => match ff_cli::config_source::parse_duration(d) {
                Ok(d) => Trigger::Every(d.as_millis() as u64),
                Err(e) => {
                    eprintln!("ff schedule preview: --every: {e}");
                    return 2;
                }
            },
            (None, None) => unreachable!("clap requires one"),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        return match sch::preview(&trigger, zone, now, *n) {
            Ok(times) if *json => {
                println!("{}", serde_json::json!(times));
                0
            }
            Ok(times) => {
                for t in times {
                    println!("{}  {}", sch::utc(t), sch::zoned(t, zone));
                }
                0
            }
            Err(e) => {
                eprintln!("ff schedule preview: {e}");
                2
            }
        };
    }
    let server = match &verb {
        ScheduleVerb::List { server, .. }
        | ScheduleVerb::Show { server, .. }
        | ScheduleVerb::Pause { server, .. }
        | ScheduleVerb::Resume { server, .. }
        | ScheduleVerb::Delete { server, .. } => server,
        ScheduleVerb::Preview { .. } => unreachable!("answered above"),
    };
    let Some(runtime) = runtime("schedule", false) else {
        return 1;
    };
    let result: Result<i32, ff_engine::Error> = runtime.block_on(async {
        let client = connect_client(&server.redis, server.cluster, &server.tls).await?;
        let said = |what: &str, changed: bool, name: &str| {
            println!(
                "{name}: {}",
                if changed {
                    what.to_owned()
                } else {
                    format!("{what} already")
                }
            );
            0
        };
        Ok(match &verb {
            ScheduleVerb::List { json, .. } => {
                let all = sch::list(&client).await?;
                if *json {
                    let v: Vec<_> = all.iter().map(|r| sch::to_json(r, 3)).collect();
                    println!("{}", serde_json::Value::Array(v));
                } else {
                    print!("{}", sch::list_text(&all));
                }
                0
            }
            ScheduleVerb::Show {
                name, next, json, ..
            } => match client.get_schedule(name).await? {
                Some(r) if *json => {
                    println!("{}", sch::to_json(&r, *next));
                    0
                }
                Some(r) => {
                    print!("{}", sch::show_text(&r, *next));
                    0
                }
                None => {
                    eprintln!("ff schedule show: no schedule {name:?}");
                    1
                }
            },
            ScheduleVerb::Pause { name, .. } => {
                said("paused", client.pause_schedule(name).await?, name)
            }
            ScheduleVerb::Resume { name, .. } => {
                said("resumed", client.resume_schedule(name).await?, name)
            }
            ScheduleVerb::Delete { name, .. } => {
                if client.delete_schedule(name).await? {
                    println!("{name}: deleted");
                    0
                } else {
                    eprintln!("ff schedule delete: no schedule {name:?}");
                    1
                }
            }
            ScheduleVerb::Preview { .. } => unreachable!("answered above"),
        })
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ff schedule: {e}");
            1
        }
    }
}

fn engine(args: EngineArgs) -> i32 {
    use ff_cli::config_source::{self, Sources};
    use ff_cli::serve::{serve, stop_signal, ServeOptions};
    let file = match &args.config {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some((path.display().to_string(), text)),
            Err(e) => {
                eprintln!("ff engine: cannot read {}: {e}", path.display());
                return 2;
            }
        },
        None => None,
    };
    let env = |name: &str| std::env::var(name).ok();
    let sources = Sources {
        file: file.as_ref().map(|(p, t)| (p.as_str(), t.as_str())),
        env: &env,
        flags: &args.fields.0,
    };
    let config = match config_source::load(sources) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ff engine: {e}");
            return 2;
        }
    };
    if args.print_config {
        print!("{}", config_source::to_toml(&config));
        return 0;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if args.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    let Some(runtime) = runtime("engine", true) else {
        return 1;
    };
    runtime.block_on(async {
        let metrics = match args.metrics_addr {
            Some(addr) => match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => Some(l),
                Err(e) => {
                    eprintln!("ff engine: cannot listen on {addr} for metrics: {e}");
                    return 1;
                }
            },
            None => None,
        };
        let tls = match args.tls.options() {
            Ok(tls) => tls,
            Err(e) => {
                eprintln!("ff engine: {e}");
                return 2;
            }
        };
        let opts = ServeOptions {
            urls: args.redis,
            cluster: args.cluster,
            tls,
            config,
            metrics,
        };
        let stop = match stop_signal() {
            Ok(stop) => stop,
            Err(e) => {
                eprintln!("ff engine: cannot handle SIGINT/SIGTERM: {e}");
                return 1;
            }
        };
        match serve(opts, stop).await {
            Ok(true) => 0,
            Ok(false) => {
                eprintln!("ff engine: the shutdown bound ran out; some tasks were abandoned");
                1
            }
            Err(e) => {
                eprintln!("ff engine: {e}");
                1
            }
        }
    })
}

fn inspect(args: InspectArgs) -> i32 {
    let Some(runtime) = runtime("inspect", false) else {
        return 1;
    };
    let result = runtime.block_on(async {
        let client = connect_client(&args.redis, args.cluster, &args.tls).await?;
        let i = ff_engine::inspect::inspect(&client).await?;
        let r = match args.recount {
            true => Some(ff_engine::inspect::recount(&client).await?),
            false => None,
        };
        Ok::<_, ff_engine::Error>((i, r))
    });
    let drift = |r: &ff_engine::inspect::Recount| -> Vec<serde_json::Value> {
        r.drift
            .iter()
            .map(|(lane, c, stored, records)| serde_json::json!({"lane": lane, "state": c.word(), "counter": stored, "records": records}))
            .collect()
    };
    let status = |r: &Option<ff_engine::inspect::Recount>| match r {
        Some(r) if !r.drift.is_empty() => 3,
        _ => 0,
    };
    match result {
        Ok((i, r)) if args.json => {
            let oldest: serde_json::Map<String, serde_json::Value> = i
                .oldest_due
                .iter()
                .map(|(k, (m, due))| (k.clone(), serde_json::json!({"member": m, "due_ms": due, "age_ms": i.now_ms as i64 - *due as i64})))
                .collect();
            let v = serde_json::json!({
                "now_ms": i.now_ms,
                "executions": i.executions,
                "by_state": i.by_state,
                "by_lane": i.by_lane,
                "index_sizes": i.index_sizes,
                "oldest_due": oldest,
                "malformed": i.malformed,
                "blocked": i.blocked,
                "oldest_blocked": i.oldest_blocked.iter().map(|(k, (m, at))| (k.clone(), serde_json::json!({"member": m, "blocked_at_ms": at, "age_ms": i.now_ms.saturating_sub(*at)}))).collect::<serde_json::Map<_, _>>(),
                "budgets": i.budgets.iter().map(|(name, b)| (name.clone(), serde_json::json!({
                    "breached": b.breached,
                    "soft_reached": b.soft_reached,
                    "on_breach": b.on_breach.as_str(),
                    "usage": b.usage,
                    "hard": b.limits.iter().map(|(d, l)| (d.clone(), l.hard)).collect::<std::collections::BTreeMap<_, _>>(),
                    "soft": b.limits.iter().map(|(d, l)| (d.clone(), l.soft)).collect::<std::collections::BTreeMap<_, _>>(),
                    "reset_every_ms": b.reset_every_ms,
                    "next_reset_ms": b.next_reset_ms,
                }))).collect::<serde_json::Map<_, _>>(),
                "quotas": i.quotas.iter().map(|(name, (q, holders))| (name.clone(), serde_json::json!({
                    "concurrency": q.limits.concurrency,
                    "holders": holders.iter().map(|(e, ep)| serde_json::json!({"execution": e, "epoch": ep})).collect::<Vec<_>>(),
                    "max_per_window": q.limits.max_per_window,
                    "window_ms": q.limits.window_ms,
                    "in_window": q.admitted_at.len(),
                }))).collect::<serde_json::Map<_, _>>(),
                "recount": r.as_ref().map(|r| serde_json::json!({"drift": drift(r), "malformed_records": r.malformed_records})),
            });
            println!("{v}");
            status(&r)
        }
        Ok((i, r)) => {
            print!("{}", i.to_text());
            if let Some(rc) = &r {
                println!(
                    "recount: {} records unreadable; counters that differ: {}",
                    rc.malformed_records,
                    if rc.drift.is_empty() {
                        "none".to_owned()
                    } else {
                        serde_json::Value::from(drift(rc)).to_string()
                    }
                );
            }
            status(&r)
        }
        Err(e) => {
            eprintln!("ff inspect: {e}");
            1
        }
    }
}

fn demo(args: DemoArgs) -> i32 {
    use ff_cli::demo::{self, DemoOptions};
    use ff_engine::store::{MemoryStore, RedisStore, RedisStoreOptions, Store};
    use std::sync::Arc;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    let Some(runtime) = runtime("demo", true) else {
        return 1;
    };
    let result = runtime.block_on(async {
        let store: Arc<dyn Store> = match &args.redis {
            Some(url) => Arc::new(
                RedisStore::connect(std::slice::from_ref(url), RedisStoreOptions::default())
                    .await?,
            ),
            None => Arc::new(MemoryStore::new()),
        };
        demo::run(
            store,
            DemoOptions {
                executions: args.n,
                ..Default::default()
            },
        )
        .await
    });
    match result {
        Ok(s) => {
            println!(
                "ff demo: {} executions in {:.1}s on {}: {:?}; {} attempts, {} retries, {} lease reclaims",
                s.created,
                s.seconds,
                args.redis.as_deref().unwrap_or("the in-process store"),
                s.states,
                s.attempts,
                s.retries,
                s.reclaims
            );
            if s.all_terminal {
                0
            } else {
                eprintln!("ff demo: not every execution finished in time");
                1
            }
        }
        Err(e) => {
            eprintln!("ff demo: {e}");
            1
        }
    }
}

fn bench(args: BenchArgs) -> i32 {
    use ff_cli::bench::{self, BenchOptions};
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let scenario = args.scenario;
    let opts = BenchOptions {
        urls: args.redis,
        cluster: args.cluster,
        n: args.n,
        seconds: args.seconds,
        flush: args.flush,
        keep: args.keep,
        index_reconciler: args.index_reconciler.map(std::time::Duration::from_secs),
    };
    let Some(runtime) = runtime("bench", true) else {
        return 1;
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

/// The runtime a verb runs on, or `None` after printing why it could not start.
fn runtime(verb: &str, multi_thread: bool) -> Option<tokio::runtime::Runtime> {
    let mut b = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    match b.enable_all().build() {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("ff {verb}: cannot start the runtime: {e}");
            None
        }
    }
}

/// Connect to the server(s) and attach a client (the recorded partition counts).
async fn connect_client(
    redis: &[String],
    cluster: bool,
    tls: &ff_cli::tls::TlsArgs,
) -> Result<ff_engine::Client, ff_engine::Error> {
    use ff_engine::store::{RedisStore, RedisStoreOptions};
    let opts = RedisStoreOptions {
        cluster,
        tls: tls.options()?,
        ..Default::default()
    };
    let store = RedisStore::connect(redis, opts).await?;
    ff_engine::Client::new(std::sync::Arc::new(store)).await
}
