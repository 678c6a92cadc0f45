//! The worker runtime: register handlers by kind, and it claims work (batch
//! claims, pipelined across partitions), runs handlers under a concurrency
//! limit, keeps each lease alive while its handler runs, reports each outcome,
//! and shuts down gracefully (stop claiming, let running handlers finish
//! within a bound, hand back the rest so it is claimable at once).
//!
//! ```no_run
//! # async fn demo(client: ff_engine::Client) -> Result<(), ff_engine::Error> {
//! use ff_engine::worker::{JobError, Worker};
//! let worker = Worker::builder(client, "mailer")
//!     .concurrency(50)
//!     .handle("email.send", |job: ff_engine::worker::Job| async move {
//!         if job.payload.is_empty() {
//!             return Err(JobError::fatal("no recipient"));
//!         }
//!         Ok(b"sent".to_vec())
//!     })
//!     .start()?;
//! // ... later
//! let report = worker.shutdown().await;
//! # Ok(()) }
//! ```

mod data;
mod engine_watch;
mod handler;
mod job;
mod metrics;
mod progress;
mod ready;
mod reporter;
mod typed;

pub use data::Data;
pub use handler::{Handler, Job, JobError, JobResult};

use crate::error::{Error, Result};
use crate::job_type::JobType;
use crate::store::{cmd, SubEvent};
use crate::Client;
use ff_core::contract::execution::Claimed;
use ff_core::contract::limits;
use ff_core::keys::PartitionKeys;
use ff_core::reply::Reply;
use ff_core::scan::ReadyMessage;
use ff_core::{Kind, Lane, Partition, PartitionFamily, WorkerInstance, WorkerName};
use futures::stream::{FuturesUnordered, StreamExt};
use handler::SharedHandler;
use job::{JobSlot, Running};
use ready::{lane_index, ReadySet};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinHandle;

/// The channel the data plane announces newly non-empty eligible indexes on.
pub const READY_CHANNEL: &str = ReadyMessage::CHANNEL;

/// Counters of one worker.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Executions claimed.
    pub claimed: AtomicU64,
    /// Of those, claimed with a report (into the slot its job freed).
    pub refilled: AtomicU64,
    /// Executions completed.
    pub completed: AtomicU64,
    /// Attempts failed (retried or final).
    pub failed: AtomicU64,
    /// Executions delayed by their handler.
    pub delayed: AtomicU64,
    /// Handlers that suspended their execution on waitpoints.
    pub suspended: AtomicU64,
    /// Handlers that panicked (the attempt failed).
    pub panicked: AtomicU64,
    /// Handlers whose lease was lost while they ran (their result was dropped).
    pub lease_lost: AtomicU64,
    /// Executions handed back at shutdown.
    pub released: AtomicU64,
    /// Lease renewals.
    pub renewals: AtomicU64,
    /// Reports (complete/fail/renew) that failed to reach the store.
    pub report_errors: AtomicU64,
    /// Largest number of handlers seen running at once.
    pub max_running: AtomicU64,
    /// 1 while no engine has been seen alive for a minute (a worker that
    /// runs its own engine does not look).
    pub engine_unseen: AtomicU64,
}

/// What graceful shutdown did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Handlers that finished within the bound.
    pub finished: usize,
    /// Executions still running at the bound, handed back (eligible at once).
    pub released: usize,
}

/// Settings of a [`Worker`], from [`Worker::builder`].
pub struct WorkerBuilder {
    client: Client,
    name: String,
    instance: Option<String>,
    lanes: Vec<String>,
    concurrency: usize,
    lease_ttl: Duration,
    claim_batch: usize,
    poll_interval: Duration,
    shutdown_grace: Duration,
    handlers: HashMap<String, SharedHandler>,
    fallback: Option<SharedHandler>,
    capabilities: Vec<String>,
    data: Data,
    warn_without_engine_after: Duration,
}

impl WorkerBuilder {
    /// What this worker can run: it claims executions needing only these,
    /// and registers them (renewed every third of the lease TTL; the
    /// registration expires a lease TTL after the worker stops).
    pub fn capabilities<I: IntoIterator<Item = S>, S: Into<String>>(mut self, caps: I) -> Self {
        self.capabilities = caps.into_iter().map(Into::into).collect();
        self
    }

    /// Its own instance name (default: the worker name and a random suffix).
    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }
    /// Lanes to claim from (default: `default`).
    pub fn lanes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, lanes: I) -> Self {
        self.lanes = lanes.into_iter().map(Into::into).collect();
        self
    }
    /// Most handlers running at once (default 16).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
    /// Lease length; renewed every third of it while a handler runs (default 30 s).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }
    /// Most executions one claim call takes from one partition (default 64).
    pub fn claim_batch(mut self, n: usize) -> Self {
        self.claim_batch = n;
        self
    }
    /// Fallback look at every partition when idle (default 5 s): the net
    /// under lost announcements.
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }
    /// How long shutdown lets running handlers finish (default 10 s).
    pub fn shutdown_grace(mut self, d: Duration) -> Self {
        self.shutdown_grace = d;
        self
    }
    /// Run executions of `kind` with `handler`.
    pub fn handle(mut self, kind: impl Into<String>, handler: impl Handler) -> Self {
        self.handlers.insert(kind.into(), Arc::new(handler));
        self
    }
    /// Run jobs of type `J` with `handler`, given the decoded arguments;
    /// its output is encoded as the result (`J::CODEC`).
    ///
    /// ```
    /// # use ff_engine::{worker::{Job, JobError, Worker}, JobType, Client};
    /// # struct Add;
    /// # impl JobType for Add { const KIND: &'static str = "add"; type Args = (i64, i64); type Output = i64; }
    /// # fn build(client: Client) -> ff_engine::error::Result<Worker> {
    /// Worker::builder(client, "calc")
    ///     .job(Add, |_job: Job, (a, b)| async move { Ok::<_, JobError>(a + b) })
    ///     .start()
    /// # }
    /// ```
    pub fn job<J, F, Fut>(mut self, _job: J, handler: F) -> Self
    where
        J: JobType,
        F: Fn(Job, J::Args) -> Fut + Send + Sync + 'static,
        Fut:
            std::future::Future<Output = std::result::Result<J::Output, JobError>> + Send + 'static,
    {
        self.handlers.insert(
            J::KIND.to_owned(),
            Arc::new(typed::Typed::<J, F>::new(handler)),
        );
        self
    }
    /// Warn (log and `ff_worker_engine_unseen`) when no engine has been
    /// seen alive for this long (default a minute; at least 1 s).
    pub fn warn_without_engine_after(mut self, d: Duration) -> Self {
        self.warn_without_engine_after = d;
        self
    }
    /// Give handlers `value`, found by its type with [`Job::data`] (one
    /// value per type; a database pool, an HTTP client...).
    pub fn data<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.data.insert(value);
        self
    }
    /// Run executions of every kind without its own handler.
    pub fn fallback(mut self, handler: impl Handler) -> Self {
        self.fallback = Some(Arc::new(handler));
        self
    }

    /// Start an [`Engine`](crate::Engine) with `config` on the worker's
    /// store, then the worker: one process with everything a single-process
    /// service needs (retries, delays, timeouts, lease expiry). The engine
    /// stops with the worker's [`shutdown`](Worker::shutdown).
    pub async fn start_with_engine(self, config: crate::EngineConfig) -> Result<Worker> {
        let engine = crate::Engine::start(config, self.client.store().clone()).await?;
        let mut worker = self.start_worker(false)?;
        worker.engine = Some(engine);
        Ok(worker)
    }

    /// Check the settings and start claiming. Without an engine running
    /// somewhere (`ff engine`, or [`start_with_engine`](Self::start_with_engine))
    /// nothing is retried or promoted: the worker warns when it sees none.
    pub fn start(self) -> Result<Worker> {
        self.start_worker(true)
    }

    fn start_worker(self, watch_engines: bool) -> Result<Worker> {
        let invalid = |field: &'static str, reason: String| Error::Invalid { field, reason };
        let name = WorkerName::new(self.name)?;
        let instance = WorkerInstance::new(
            self.instance
                .unwrap_or_else(|| format!("{name}-{:08x}", crate::client::random_u128() as u32)),
        )?;
        let lanes = self
            .lanes
            .into_iter()
            .map(Lane::new)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if lanes.is_empty() {
            return Err(invalid("lanes", "at least one lane".into()));
        }
        for kind in self.handlers.keys() {
            Kind::new(kind.clone())?;
        }
        if self.handlers.is_empty() && self.fallback.is_none() {
            return Err(invalid("handlers", "register at least one handler".into()));
        }
        if self.warn_without_engine_after < Duration::from_secs(1) {
            return Err(invalid(
                "warn_without_engine_after",
                format!("{:?} is under 1 s", self.warn_without_engine_after),
            ));
        }
        if self.concurrency == 0 || self.concurrency > 100_000 {
            return Err(invalid(
                "concurrency",
                format!("{} is outside 1..=100000", self.concurrency),
            ));
        }
        let ttl_ms = self.lease_ttl.as_millis() as u64;
        if !(limits::MIN_LEASE_MS * 3..=limits::MAX_LEASE_MS).contains(&ttl_ms) {
            return Err(invalid(
                "lease_ttl",
                format!(
                    "{ttl_ms} ms is outside {}..={} ms",
                    limits::MIN_LEASE_MS * 3,
                    limits::MAX_LEASE_MS
                ),
            ));
        }
        if self.claim_batch == 0 || self.claim_batch > limits::MAX_CLAIM_BATCH {
            return Err(invalid(
                "claim_batch",
                format!(
                    "{} is outside 1..={}",
                    self.claim_batch,
                    limits::MAX_CLAIM_BATCH
                ),
            ));
        }
        for c in &self.capabilities {
            if ff_core::admission::parse_capabilities(c)?.len() != 1 {
                return Err(invalid("capabilities", format!("{c:?} is not one name")));
            }
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            client: self.client.clone(),
            capabilities: self.capabilities.clone(),
            name: name.clone(),
            instance: instance.clone(),
            lanes: lanes.clone(),
            lease_ttl: self.lease_ttl,
            claim_batch: self.claim_batch,
            poll_interval: self.poll_interval,
            handlers: self.handlers,
            fallback: self.fallback,
            data: Arc::new(self.data),
            permits: Arc::new(Semaphore::new(self.concurrency)),
            stats: Arc::new(WorkerStats::default()),
            running: Mutex::new(HashMap::new()),
            slot_freed: Notify::new(),
            reporter: reporter::Reporter::start(
                self.client.clone(),
                reporter::Claimer {
                    lanes,
                    worker: name,
                    instance,
                    lease_ttl: self.lease_ttl,
                    claim_batch: self.claim_batch,
                    capabilities: self.capabilities,
                },
            ),
            stopping: stop_rx.clone(),
        });
        if !inner.capabilities.is_empty() {
            tokio::spawn(heartbeat(inner.clone(), stop_rx.clone()));
        }
        if watch_engines {
            tokio::spawn(engine_watch::run(
                inner.clone(),
                self.warn_without_engine_after,
                stop_rx.clone(),
            ));
        }
        let claimer = tokio::spawn(claim_loop(inner.clone(), stop_rx));
        tracing::info!(worker = %inner.name, instance = %inner.instance, concurrency = self.concurrency, "worker started");
        Ok(Worker {
            inner,
            stop_tx,
            claimer: Some(claimer),
            grace: self.shutdown_grace,
            engine: None,
        })
    }
}

pub(crate) struct Inner {
    pub(crate) client: Client,
    capabilities: Vec<String>,
    name: WorkerName,
    instance: WorkerInstance,
    lanes: Vec<Lane>,
    pub(crate) lease_ttl: Duration,
    claim_batch: usize,
    poll_interval: Duration,
    handlers: HashMap<String, SharedHandler>,
    fallback: Option<SharedHandler>,
    pub(crate) data: Arc<Data>,
    permits: Arc<Semaphore>,
    pub(crate) stats: Arc<WorkerStats>,
    /// Jobs in flight, by execution id.
    pub(crate) running: Mutex<HashMap<String, Running>>,
    pub(crate) slot_freed: Notify,
    /// Completions and failures, batched.
    pub(crate) reporter: reporter::Reporter,
    /// True once the worker stops (read, never waited on, by its jobs).
    stopping: watch::Receiver<bool>,
}

/// A running worker. Dropping it stops claiming and abandons running handlers
/// (their leases then expire); call [`Worker::shutdown`] to hand them back.
pub struct Worker {
    inner: Arc<Inner>,
    stop_tx: watch::Sender<bool>,
    claimer: Option<JoinHandle<()>>,
    grace: Duration,
    /// Started with it by `start_with_engine`, stopped with it.
    engine: Option<crate::Engine>,
}

impl Worker {
    /// A worker named `name` (its pool or deployment).
    pub fn builder(client: Client, name: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder {
            client,
            name: name.into(),
            instance: None,
            lanes: vec!["default".into()],
            concurrency: 16,
            lease_ttl: Duration::from_secs(30),
            claim_batch: 64,
            poll_interval: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            handlers: HashMap::new(),
            fallback: None,
            capabilities: Vec::new(),
            data: Data::default(),
            warn_without_engine_after: engine_watch::GRACE,
        }
    }

    /// The worker's counters.
    pub fn stats(&self) -> &WorkerStats {
        &self.inner.stats
    }

    /// Handlers running now.
    pub fn running(&self) -> usize {
        self.inner.running.lock().expect("running jobs lock").len()
    }

    /// Stop claiming, let running handlers finish within the grace period,
    /// then hand back what is still running (eligible again at once).
    pub async fn shutdown(mut self) -> ShutdownReport {
        let _ = self.stop_tx.send(true);
        if let Some(c) = self.claimer.take() {
            let _ = c.await;
        }
        let at_start = self.running();
        let deadline = tokio::time::Instant::now() + self.grace;
        while self.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                biased;
                _ = self.inner.slot_freed.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
        let left: Vec<Running> = self
            .inner
            .running
            .lock()
            .expect("running jobs lock")
            .drain()
            .map(|(_, r)| r)
            .collect();
        let released = left.len();
        let calls = left.into_iter().map(|r| {
            let client = self.inner.client.clone();
            let stats = self.inner.stats.clone();
            async move {
                r.abandon();
                match client.release(&r.lease).await {
                    Ok(_) => {
                        stats.released.fetch_add(1, Relaxed);
                    }
                    Err(e) => tracing::warn!(execution = %r.lease.execution, error = %e, "could not hand back at shutdown; its lease will expire"),
                }
            }
        });
        futures::future::join_all(calls).await;
        if let Some(engine) = self.engine.take() {
            engine.shutdown().await;
        }
        tracing::info!(worker = %self.inner.name, finished = at_start - released, released, "worker stopped");
        ShutdownReport {
            finished: at_start - released,
            released,
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.stop_tx.send(true);
    }
}

impl Inner {
    fn handler_for(&self, kind: &Kind) -> Option<SharedHandler> {
        self.handlers
            .get(kind.as_str())
            .cloned()
            .or_else(|| self.fallback.clone())
    }

    /// Look at every partition of every lane (one pipelined round).
    async fn look_everywhere(&self, ready: &mut ReadySet) {
        let partitions: Vec<Partition> = self
            .client
            .config()
            .partitions(PartitionFamily::Flow)
            .collect();
        // Paused lanes are not looked at; their resume announces them.
        let paused = self.client.paused_lanes().await.unwrap_or_default();
        let mut cmds = Vec::new();
        let mut at = Vec::new();
        for (li, lane) in self.lanes.iter().enumerate() {
            if paused.iter().any(|l| l == lane.as_str()) {
                continue;
            }
            for p in &partitions {
                cmds.push(cmd(["ZCARD", &PartitionKeys::new(*p).eligible(lane)]));
                at.push((li, p.index));
            }
        }
        for ((li, p), r) in at
            .into_iter()
            .zip(self.client.store().command_many(&cmds).await)
        {
            match r {
                Ok(Reply::Int(n)) if n > 0 => ready.insert(li, p),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "looking for work failed");
                    return;
                }
            }
        }
    }

    /// Whether the worker is stopping (no more jobs are claimed for it).
    pub(crate) fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Start `claimed`, of the `lane`-th of this worker's lanes.
    pub(crate) fn start_job(
        self: &Arc<Self>,
        claimed: Claimed,
        lane: usize,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        self.stats.claimed.fetch_add(1, Relaxed);
        match self.handler_for(&claimed.kind) {
            Some(h) => JobSlot::start(self.clone(), claimed, lane, h, permit),
            None => {
                // Claimed a kind nobody here handles: give it straight back.
                let client = self.client.clone();
                tokio::spawn(async move {
                    tracing::warn!(kind = %claimed.kind, "no handler for this kind; handing it back");
                    let _ = client.release(&claimed.lease).await;
                    drop(permit);
                });
            }
        }
    }
}

/// Keep this worker's registration (its capabilities) alive until it stops.
async fn heartbeat(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        if let Err(e) = inner
            .client
            .register_worker(&inner.instance, &inner.capabilities, inner.lease_ttl)
            .await
        {
            tracing::warn!(error = %e, "worker registration failed; retrying");
        }
        tokio::select! {
            biased;
            r = stop.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(inner.lease_ttl / 3) => {}
        }
    }
}

async fn claim_loop(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let mut ready = ReadySet::default();
    let mut announcements = match inner.client.store().subscribe(READY_CHANNEL).await {
        Ok(rx) => Some(rx),
        Err(e) => {
            tracing::warn!(error = %e, "cannot follow ready announcements; polling only");
            None
        }
    };
    inner.look_everywhere(&mut ready).await;
    let mut last_look = tokio::time::Instant::now();
    let mut rounds = FuturesUnordered::new();
    loop {
        if *stop.borrow() {
            // Rounds on their way still start what they claimed (shutdown
            // then hands it back at once).
            while rounds.next().await.is_some() {}
            return;
        }
        let free = inner.permits.available_permits();
        if free > 0 && !ready.is_empty() && rounds.len() < CLAIM_ROUNDS_IN_FLIGHT {
            if let Some(round) = claim_round(&inner, &mut ready, free) {
                rounds.push(round);
                continue;
            }
        }
        let poll_at = last_look + inner.poll_interval;
        tokio::select! {
            biased;
            Some(exhausted) = rounds.next(), if !rounds.is_empty() => {
                for pick in exhausted {
                    ready.exhausted(pick);
                }
            }
            _ = inner.slot_freed.notified(), if free == 0 => {}
            ev = async {
                match announcements.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match ev {
                Some(SubEvent::Message(m)) => {
                    if let Some(ReadyMessage { lane, partition: p }) = ReadyMessage::parse(&m) {
                        if let Some(li) = lane_index(&inner.lanes, &lane) {
                            ready.insert(li, p);
                        }
                    }
                }
                Some(SubEvent::Subscribed) => {
                    inner.look_everywhere(&mut ready).await;
                    last_look = tokio::time::Instant::now();
                }
                None => announcements = None,
            },
            _ = tokio::time::sleep_until(poll_at), if free > 0 => {
                inner.look_everywhere(&mut ready).await;
                last_look = tokio::time::Instant::now();
            }
            r = stop.changed() => if r.is_err() { return },
        }
    }
}

/// Claim rounds on their way at once: the next round is sent while the
/// server answers the last (one at a time left the server waiting between
/// rounds).
const CLAIM_ROUNDS_IN_FLIGHT: usize = 2;

/// One pipelined round claiming up to `free` executions from the ready
/// partitions, holding a permit for each it may hand out; it answers the
/// partitions found exhausted (or failing). `None`: no permits left.
fn claim_round(
    inner: &Arc<Inner>,
    ready: &mut ReadySet,
    free: usize,
) -> Option<impl std::future::Future<Output = Vec<ready::Pick>>> {
    let picks = ready.next(free.div_ceil(inner.claim_batch).clamp(1, 32));
    let share = free.div_ceil(picks.len()).min(inner.claim_batch);
    let mut budget = free;
    let mut asks = Vec::new();
    for (li, p, seen) in picks {
        let n = share.min(budget);
        if n == 0 {
            break;
        }
        budget -= n;
        asks.push((li, p, seen, n));
    }
    let asked: usize = asks.iter().map(|a| a.3).sum();
    let mut held = inner
        .permits
        .clone()
        .try_acquire_many_owned(u32::try_from(asked).ok()?)
        .ok()?;
    let inner = inner.clone();
    Some(async move {
        let calls = asks.iter().map(|&(li, p, _, n)| {
            let partition = Partition::new(PartitionFamily::Flow, p);
            inner.client.claim_in_capable(
                partition,
                &inner.lanes[li],
                &inner.name,
                &inner.instance,
                inner.lease_ttl,
                n,
                &inner.capabilities,
            )
        });
        let results = futures::future::join_all(calls).await;
        let mut exhausted = Vec::new();
        for (&(li, p, seen, n), r) in asks.iter().zip(results) {
            match r {
                Ok(claimed) => {
                    if claimed.len() < n {
                        exhausted.push((li, p, seen));
                    }
                    for c in claimed {
                        let permit = held
                            .split(1)
                            .expect("a claim hands out at most what it asked for");
                        inner.start_job(c, li, permit);
                    }
                }
                Err(Error::Rejected(ff_core::FfError::LanePaused(lane))) => {
                    tracing::debug!(partition = p, %lane, "lane paused");
                    exhausted.push((li, p, seen));
                }
                Err(e) => {
                    tracing::warn!(partition = p, error = %e, "claim failed");
                    exhausted.push((li, p, seen));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        // (the permits of what was not handed out go back as `held` drops)
        exhausted
    })
}
