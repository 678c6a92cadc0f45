//! Helpers the scenarios share: server administration (INFO, FLUSHALL, CONFIG
//! RESETSTAT on every primary), creating many executions concurrently, index
//! sizes, waiting on engine metrics, percentiles and the report.

use super::{BenchResult, Ctx};
use ff_core::keys::PartitionKeys;
use ff_core::reply::Reply;
use ff_core::{ExecutionId, Partition, PartitionConfig, PartitionFamily};
use ff_engine::engine::{Engine, EngineConfig, ScannerStats};
use ff_engine::store::{cmd, Store};
use ff_engine::worker::{Job, Worker};
use ff_engine::ExecutionSpec;
use futures::StreamExt;
use redis::aio::MultiplexedConnection;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;

/// How many requests are kept in flight at once when creating or reading in
/// bulk. The multiplexed connection pipelines them.
pub const IN_FLIGHT: usize = 2000;

/// Print a progress line to stderr (stdout carries only the report).
macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("ff bench: {}", format_args!($($arg)*)) };
}
pub(crate) use progress;

/// One run's figures, in the order they were set; printed as one JSON line.
#[derive(Debug, Clone, Default)]
pub struct Report {
    fields: Map<String, Value>,
}

impl Report {
    /// Set a figure (kept in insertion order).
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    /// Record `target_<figure>` and whether `figure` reached it (at least `target`).
    pub fn set_target(&mut self, figure: &str, target: f64) -> &mut Self {
        let reached = self.get(figure).and_then(|v| v.as_f64()).unwrap_or(0.0) >= target;
        self.set(&format!("target_{figure}"), target);
        self.set("meets_target", reached)
    }

    /// A figure set before.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    /// False when the scenario could not finish or its end state was wrong.
    pub fn ok(&self) -> bool {
        self.fields
            .get("ok")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The figures as one JSON object on one line.
    pub fn to_json_line(&self) -> String {
        Value::Object(self.fields.clone()).to_string()
    }

    /// `key: value` lines, for a person.
    pub fn to_text(&self) -> String {
        self.fields
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect()
    }
}

/// Round to `digits` decimals (keeps the JSON short).
pub fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

/// `count / secs`, 0 when no time passed.
pub fn rate(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// The value at quantile `q` (0..=1) of sorted data (nearest rank).
pub fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Direct connections to every primary, for the server-wide commands a
/// routed store does not send everywhere (INFO, FLUSHALL, CONFIG RESETSTAT).
pub struct Admin {
    nodes: Vec<(String, MultiplexedConnection)>,
}

/// `INFO commandstats`, summed over every primary.
#[derive(Debug, Clone, Default)]
pub struct CommandStats {
    /// command name (`fcall`, `config|resetstat`, …) → (calls, usec)
    pub by_command: BTreeMap<String, (u64, u64)>,
}

impl CommandStats {
    /// Calls of `name`.
    pub fn calls(&self, name: &str) -> u64 {
        self.by_command.get(name).map_or(0, |c| c.0)
    }
    /// Microseconds spent in `name`.
    pub fn usec(&self, name: &str) -> u64 {
        self.by_command.get(name).map_or(0, |c| c.1)
    }
    /// Calls of every command.
    pub fn total_calls(&self) -> u64 {
        self.by_command.values().map(|c| c.0).sum()
    }
    /// Calls with the bench's own bookkeeping taken out: per node, the
    /// CONFIG RESETSTAT (counted once it has run) and the INFO cpu read before
    /// this INFO commandstats (which does not count itself).
    pub fn engine_calls(&self, nodes: usize) -> u64 {
        let own = self.calls("info").min(nodes as u64) + self.calls("config|resetstat");
        self.total_calls().saturating_sub(own)
    }
    /// `{"fcall": calls, …}`, most called first.
    pub fn top(&self, limit: usize) -> Value {
        let mut v: Vec<(&String, u64)> = self.by_command.iter().map(|(k, c)| (k, c.0)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut m = Map::new();
        for (k, c) in v.into_iter().take(limit) {
            m.insert(k.clone(), c.into());
        }
        Value::Object(m)
    }
}

/// Replace the host:port of `url` (keeping scheme, credentials and path).
fn with_address(url: &str, addr: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("redis://", url),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let userinfo = match authority.rfind('@') {
        Some(i) => &authority[..=i],
        None => "",
    };
    format!("{scheme}{userinfo}{addr}{path}")
}

/// The primaries in a `CLUSTER NODES` answer, as `host:port`.
fn cluster_primaries(nodes: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in nodes.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let flags: Vec<&str> = f[2].split(',').collect();
        if !flags.contains(&"master") || flags.iter().any(|x| *x == "fail" || *x == "noaddr") {
            continue;
        }
        // ip:port@cport[,hostname]
        let addr = f[1].split('@').next().unwrap_or("");
        let Some(colon) = addr.rfind(':') else {
            continue;
        };
        let (ip, port) = (&addr[..colon], &addr[colon + 1..]);
        if ip.is_empty() || port == "0" {
            continue;
        }
        if ip.contains(':') {
            out.push(format!("[{ip}]:{port}"));
        } else {
            out.push(format!("{ip}:{port}"));
        }
    }
    out.sort();
    out
}

/// `field:value` lines of an INFO answer.
fn info_fields(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end().split_once(':'))
}

impl Admin {
    /// Connect to the server (standalone) or to every primary of the cluster
    /// that `urls` seed.
    pub async fn connect(urls: &[String], cluster: bool) -> BenchResult<Self> {
        let seed = urls.first().ok_or("no --redis URL given")?;
        let targets = if cluster {
            let mut conn = redis::Client::open(seed.as_str())?
                .get_multiplexed_async_connection()
                .await?;
            let nodes: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async(&mut conn)
                .await?;
            let primaries = cluster_primaries(&nodes);
            if primaries.is_empty() {
                return Err("CLUSTER NODES lists no reachable primary".into());
            }
            primaries.iter().map(|a| with_address(seed, a)).collect()
        } else {
            vec![seed.clone()]
        };
        let mut nodes = Vec::new();
        for url in targets {
            let conn = redis::Client::open(url.as_str())?
                .get_multiplexed_async_connection()
                .await?;
            nodes.push((url, conn));
        }
        Ok(Self { nodes })
    }

    /// Primaries administered.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    async fn each<T: redis::FromRedisValue>(&self, c: &redis::Cmd) -> BenchResult<Vec<T>> {
        let mut out = Vec::new();
        for (url, conn) in &self.nodes {
            let mut conn = conn.clone();
            out.push(
                c.query_async(&mut conn)
                    .await
                    .map_err(|e| format!("{url}: {e}"))?,
            );
        }
        Ok(out)
    }

    /// `INFO <section>` of every primary.
    pub async fn info(&self, section: &str) -> BenchResult<Vec<String>> {
        self.each(redis::cmd("INFO").arg(section)).await
    }

    /// One numeric INFO field summed over every primary.
    pub async fn info_sum(&self, section: &str, field: &str) -> BenchResult<f64> {
        let mut sum = 0.0;
        for text in self.info(section).await? {
            for (k, v) in info_fields(&text) {
                if k == field {
                    sum += v.parse::<f64>().unwrap_or(0.0);
                }
            }
        }
        Ok(sum)
    }

    /// One INFO field of the first primary, as text.
    pub async fn info_text(&self, section: &str, field: &str) -> BenchResult<String> {
        let texts = self.info(section).await?;
        Ok(texts
            .first()
            .and_then(|t| info_fields(t).find(|(k, _)| *k == field))
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default())
    }

    /// Server CPU seconds (user + sys, main and background threads), summed.
    pub async fn cpu_seconds(&self) -> BenchResult<f64> {
        let mut sum = 0.0;
        for text in self.info("cpu").await? {
            for (k, v) in info_fields(&text) {
                if k == "used_cpu_user" || k == "used_cpu_sys" {
                    sum += v.parse::<f64>().unwrap_or(0.0);
                }
            }
        }
        Ok(sum)
    }

    /// Keys in every database of every primary (INFO keyspace).
    pub async fn key_count(&self) -> BenchResult<u64> {
        let mut sum = 0;
        for text in self.info("keyspace").await? {
            for (_, v) in info_fields(&text) {
                // db0:keys=1,expires=0,avg_ttl=0
                for part in v.split(',') {
                    if let Some(n) = part.strip_prefix("keys=") {
                        sum += n.parse::<u64>().unwrap_or(0);
                    }
                }
            }
        }
        Ok(sum)
    }

    /// FLUSHALL ASYNC on every primary: the keys are gone at once, their
    /// memory is freed in the background (a large data set would outlast a
    /// command's timeout with SYNC).
    pub async fn flushall_async(&self) -> BenchResult<()> {
        let _: Vec<String> = self.each(redis::cmd("FLUSHALL").arg("ASYNC")).await?;
        Ok(())
    }

    /// FLUSHALL on every primary.
    pub async fn flushall(&self) -> BenchResult<()> {
        let _: Vec<String> = self.each(redis::cmd("FLUSHALL").arg("SYNC")).await?;
        Ok(())
    }

    /// CONFIG RESETSTAT on every primary.
    pub async fn reset_stats(&self) -> BenchResult<()> {
        let _: Vec<String> = self.each(redis::cmd("CONFIG").arg("RESETSTAT")).await?;
        Ok(())
    }

    /// INFO commandstats summed over the primaries.
    pub async fn command_stats(&self) -> BenchResult<CommandStats> {
        let mut stats = CommandStats::default();
        for text in self.info("commandstats").await? {
            for (k, v) in info_fields(&text) {
                // cmdstat_fcall:calls=12,usec=340,usec_per_call=28.33,…
                let Some(name) = k.strip_prefix("cmdstat_") else {
                    continue;
                };
                let mut calls = 0;
                let mut usec = 0;
                for part in v.split(',') {
                    if let Some(n) = part.strip_prefix("calls=") {
                        calls = n.parse().unwrap_or(0);
                    } else if let Some(n) = part.strip_prefix("usec=") {
                        usec = n.parse().unwrap_or(0);
                    }
                }
                let e = stats.by_command.entry(name.to_owned()).or_default();
                e.0 += calls;
                e.1 += usec;
            }
        }
        Ok(stats)
    }
}

/// What the server did over a stretch of wall time.
#[derive(Debug, Clone)]
pub struct ServerLoad {
    pub stats: CommandStats,
    pub cpu_seconds: f64,
}

impl Admin {
    /// Reset the command counters and note the CPU clock: the start of a
    /// `ServerLoad` measurement.
    pub async fn load_start(&self) -> BenchResult<f64> {
        // CPU first: an INFO after the reset would count as a command.
        let cpu = self.cpu_seconds().await?;
        self.reset_stats().await?;
        Ok(cpu)
    }

    /// Server load since `load_start` returned `cpu_start`.
    pub async fn load_since(&self, cpu_start: f64) -> BenchResult<ServerLoad> {
        let cpu = self.cpu_seconds().await?;
        let stats = self.command_stats().await?;
        Ok(ServerLoad {
            stats,
            cpu_seconds: cpu - cpu_start,
        })
    }
}

impl ServerLoad {
    /// Add the usual load figures to `r`, per item where `items` > 0.
    pub fn report(&self, r: &mut Report, nodes: usize, wall_secs: f64, items: u64) {
        let calls = self.stats.engine_calls(nodes);
        r.set("server_commands", calls);
        if items > 0 {
            r.set(
                "server_commands_per_item",
                round(calls as f64 / items as f64, 3),
            );
            r.set(
                "server_fcalls_per_item",
                round(self.stats.calls("fcall") as f64 / items as f64, 4),
            );
            // Time inside FCALL (the Lua functions, inner commands included).
            r.set(
                "server_fcall_usec_per_item",
                round(self.stats.usec("fcall") as f64 / items as f64, 2),
            );
        }
        if wall_secs > 0.0 {
            // Share of the wall time the server spent running FCALLs, and
            // its CPU use: near 1 means the one server thread was the bottleneck.
            r.set(
                "server_fcall_busy_fraction",
                round(self.stats.usec("fcall") as f64 / 1e6 / wall_secs, 3),
            );
            r.set(
                "server_cpu_fraction",
                round(self.cpu_seconds / wall_secs, 3),
            );
        }
        r.set("server_top_commands", self.stats.top(8));
    }
}

/// Tasks creating in parallel (the client side of a create — building and
/// encoding the call, decoding the reply — is worth a second core).
pub const CREATE_TASKS: u64 = 2;

/// What [`create_many`] did.
pub struct CreatedMany {
    /// The ids, in the order of `i`.
    pub ids: Vec<ExecutionId>,
    pub secs: f64,
    /// Server CPU seconds per wall second while creating.
    pub server_cpu: f64,
}

impl CreatedMany {
    pub fn report(&self, r: &mut Report) {
        let n = self.ids.len() as u64;
        r.set("create_seconds", round(self.secs, 3));
        r.set("create_per_sec", round(rate(n, self.secs), 0));
        r.set("create_server_cpu_fraction", round(self.server_cpu, 3));
    }
}

/// Executions per bulk submit ([`Client::create_many`](ff_engine::Client::create_many)):
/// spread over 256 partitions, about 20 per partition call.
pub const SUBMIT_BATCH: u64 = 5_000;
/// Bulk submits in flight per task: one is built while others wait on the server.
const SUBMITS_IN_FLIGHT: usize = 4;

/// Create `n` executions by bulk submits of [`SUBMIT_BATCH`] from
/// [`CREATE_TASKS`] tasks; `spec(i)` makes the i-th.
pub async fn create_many(
    ctx: &Ctx,
    n: u64,
    spec: impl Fn(u64) -> ExecutionSpec + Send + Sync + 'static,
) -> BenchResult<CreatedMany> {
    let spec = std::sync::Arc::new(spec);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let bar = std::sync::Arc::new(crate::progress::Progress::new("ff bench", "created", n));
    let cpu = ctx.admin.cpu_seconds().await?;
    let t = Instant::now();
    let mut handles = Vec::new();
    for task in 0..CREATE_TASKS {
        let (client, spec, done, bar) =
            (ctx.client.clone(), spec.clone(), done.clone(), bar.clone());
        let range = (n * task / CREATE_TASKS)..(n * (task + 1) / CREATE_TASKS);
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity((range.end - range.start) as usize);
            let chunks = range.clone().step_by(SUBMIT_BATCH as usize).map(|start| {
                let end = (start + SUBMIT_BATCH).min(range.end);
                let (client, spec) = (&client, &spec);
                async move {
                    client
                        .create_many((start..end).map(|i| spec(i)).collect())
                        .await
                }
            });
            let mut stream = futures::stream::iter(chunks).buffered(SUBMITS_IN_FLIGHT);
            while let Some(created) = stream.next().await {
                let k = created.len() as u64;
                for r in created {
                    ids.push(r?.execution);
                }
                bar.set(done.fetch_add(k, std::sync::atomic::Ordering::Relaxed) + k);
            }
            Ok::<_, ff_engine::Error>(ids)
        }));
    }
    let mut ids = Vec::with_capacity(n as usize);
    for h in handles {
        ids.extend(h.await??);
    }
    bar.finish();
    let secs = t.elapsed().as_secs_f64();
    let server_cpu = (ctx.admin.cpu_seconds().await? - cpu) / secs.max(1e-9);
    Ok(CreatedMany {
        ids,
        secs,
        server_cpu,
    })
}

/// The flow partitions of a deployment.
pub fn flow_partitions(config: &PartitionConfig) -> Vec<Partition> {
    config.partitions(PartitionFamily::Flow).collect()
}

/// Members of one index summed over every partition (ZCARD, or SCARD for the
/// `all` set), pipelined.
pub async fn index_total(
    store: &dyn Store,
    config: &PartitionConfig,
    key: impl Fn(&PartitionKeys) -> String,
    set: bool,
) -> BenchResult<u64> {
    let cmds: Vec<Vec<Vec<u8>>> = flow_partitions(config)
        .into_iter()
        .map(|p| {
            cmd([
                if set { "SCARD" } else { "ZCARD" },
                &key(&PartitionKeys::new(p)),
            ])
        })
        .collect();
    let mut sum = 0u64;
    for r in store.command_many(&cmds).await {
        sum += r?.int().unwrap_or(0).max(0) as u64;
    }
    Ok(sum)
}

/// Every member and score of one sorted set per partition.
pub async fn index_members(
    store: &dyn Store,
    config: &PartitionConfig,
    key: impl Fn(&PartitionKeys) -> String,
) -> BenchResult<Vec<(String, f64)>> {
    let cmds: Vec<Vec<Vec<u8>>> = flow_partitions(config)
        .into_iter()
        .map(|p| {
            cmd([
                "ZRANGE",
                &key(&PartitionKeys::new(p)),
                "0",
                "-1",
                "WITHSCORES",
            ])
        })
        .collect();
    let mut out = Vec::new();
    for r in store.command_many(&cmds).await {
        if let Reply::Array(items) = r? {
            for pair in items.chunks(2) {
                if let [m, s] = pair {
                    let score = s.text().and_then(|t| t.parse::<f64>().ok());
                    if let (Some(m), Some(score)) = (m.text(), score) {
                        out.push((m, score));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// One scanner's counters.
pub fn scanner(engine: &Engine, name: &str) -> Option<ScannerStats> {
    engine.metrics().into_iter().find(|s| s.scanner == name)
}

/// Poll until scanner `name` has acted on at least `target` members, or
/// `timeout` passed. Returns whether it got there, the time taken and the
/// counters last seen.
pub async fn wait_acted(
    engine: &Engine,
    name: &str,
    target: u64,
    timeout: Duration,
) -> (bool, Duration, Option<ScannerStats>) {
    let start = Instant::now();
    let bar = crate::progress::Progress::new("ff bench", name, target);
    let (reached, s) = loop {
        let s = scanner(engine, name);
        let acted = s.as_ref().map_or(0, |s| s.acted);
        bar.set(acted);
        if acted >= target {
            break (true, s);
        }
        if start.elapsed() >= timeout {
            break (false, s);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    bar.finish();
    (reached, start.elapsed(), s)
}

/// A scanner's counters as a JSON object.
pub fn stats_json(s: &ScannerStats) -> Value {
    serde_json::json!({
        "cycles": s.cycles,
        "acted": s.acted,
        "repaired": s.repaired,
        "skipped": s.skipped,
        "errors": s.errors,
        "restarts": s.restarts,
        "last_cycle_micros": s.last_cycle_micros,
    })
}

/// The cycles and work of every scanner that ran a cycle: what else ran
/// beside the scanner being measured.
pub fn scanners_json(engine: &Engine) -> Value {
    let mut m = Map::new();
    for s in engine.metrics() {
        if s.cycles > 0 {
            m.insert(
                s.scanner.to_owned(),
                serde_json::json!({"cycles": s.cycles, "acted": s.acted, "repaired": s.repaired}),
            );
        }
    }
    Value::Object(m)
}

/// Errors and restarts summed over every scanner (a clean run has none).
pub fn engine_errors(engine: &Engine) -> u64 {
    engine
        .metrics()
        .iter()
        .map(|s| s.errors + s.restarts + s.malformed)
        .sum()
}

/// A drain: the engine started on a backlog of `n` due members of one
/// scanner's index, and what it took to act on all of them.
pub struct Drain {
    pub reached: bool,
    pub elapsed: Duration,
    pub stats: Option<ScannerStats>,
    pub load: ServerLoad,
    pub engine_errors: u64,
    /// Every scanner's work over the drain (see [`scanners_json`]).
    pub all_scanners: Value,
    pub clean_shutdown: bool,
}

/// Start an engine (default config, its own connection) and time it from
/// `Engine::start` until scanner `name` has acted `n` times.
pub async fn drain(ctx: &Ctx, name: &str, n: u64) -> BenchResult<Drain> {
    let store = ctx.engine_store().await?;
    let cpu = ctx.admin.load_start().await?;
    progress!("starting the engine; draining {n} through {name}");
    let timeout = Duration::from_secs(60) + Duration::from_millis(n);
    let engine = Engine::start(EngineConfig::default(), store).await?;
    let (reached, elapsed, stats) = wait_acted(&engine, name, n, timeout).await;
    let load = ctx.admin.load_since(cpu).await?;
    let engine_errors = engine_errors(&engine);
    let all_scanners = scanners_json(&engine);
    let clean_shutdown = engine.shutdown().await;
    if !reached {
        progress!("timed out after {elapsed:.1?}: {stats:?}");
    }
    Ok(Drain {
        reached,
        elapsed,
        stats,
        load,
        engine_errors,
        all_scanners,
        clean_shutdown,
    })
}

impl Drain {
    /// The figures of a drain: `seconds`, `items_per_sec` and the rest.
    pub fn report(&self, r: &mut Report, ctx: &Ctx, n: u64) {
        let secs = self.elapsed.as_secs_f64();
        let acted = self.stats.as_ref().map_or(0, |s| s.acted);
        r.set("seconds", round(secs, 4));
        r.set("items_per_sec", round(rate(acted.min(n), secs), 0));
        r.set("acted", acted);
        r.set("reached", self.reached);
        if let Some(s) = &self.stats {
            r.set("scanner", stats_json(s));
        }
        r.set("all_scanners", self.all_scanners.clone());
        r.set("engine_errors", self.engine_errors);
        r.set("clean_shutdown", self.clean_shutdown);
        self.load.report(r, ctx.admin.node_count(), secs, n);
    }
}

/// Start one no-op Worker (handlers return at once, batch claims) on a fresh
/// client and wait until it has completed `n` jobs or `limit` passed. The
/// worker is returned still running, with the seconds it took, so the caller
/// reads its stats before shutting it down.
pub(crate) async fn noop_worker_until(
    ctx: &Ctx,
    n: u64,
    concurrency: usize,
    limit: Duration,
) -> BenchResult<(Worker, f64)> {
    let client = ff_engine::Client::new(ctx.engine_store().await?).await?;
    let t = Instant::now();
    let worker = Worker::builder(client, "bench")
        .concurrency(concurrency)
        .claim_batch(128)
        .fallback(|_job: Job| async move { Ok(Vec::new()) })
        .start()?;
    let bar = crate::progress::Progress::new("ff bench", "completed", n);
    // (polled finely: the figure is the time to the last completion)
    while worker.stats().completed.load(Relaxed) < n && t.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(2)).await;
        bar.set(worker.stats().completed.load(Relaxed));
    }
    bar.finish();
    Ok((worker, t.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_replacement_keeps_credentials_and_path() {
        assert_eq!(
            with_address("redis://u:p@10.0.0.1:7000/0", "10.0.0.2:7001"),
            "redis://u:p@10.0.0.2:7001/0"
        );
        assert_eq!(
            with_address("rediss://h:1", "[::1]:7001"),
            "rediss://[::1]:7001"
        );
    }

    #[test]
    fn primaries_from_cluster_nodes() {
        let nodes = "a 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460\n\
                     b 127.0.0.1:7002@17002,host master - 0 0 2 connected 5461-10922\n\
                     c 127.0.0.1:7003@17003 slave a 0 0 1 connected\n\
                     d :0@0 master,noaddr - 0 0 3 disconnected\n";
        assert_eq!(
            cluster_primaries(nodes),
            vec!["127.0.0.1:7001".to_owned(), "127.0.0.1:7002".to_owned()]
        );
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn command_stats_leave_out_the_bench_calls() {
        let mut s = CommandStats::default();
        s.by_command.insert("info".into(), (1, 10));
        s.by_command.insert("config|resetstat".into(), (1, 5));
        s.by_command.insert("zrangebyscore".into(), (40, 100));
        assert_eq!(s.engine_calls(1), 40);
    }
}
