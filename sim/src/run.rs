//! One simulated run (madsim build only): build the system for a seed, run the
//! fault phase, then the liveness phase, and report.

use crate::faults::{CutStore, Faults, FaultyStore};
use crate::invariants::{ownership_violations, Checker, Observation};
use crate::workload;
use ff_core::state::PublicState;
use ff_core::{ExecutionId, PartitionConfig};
use ff_engine::store::{MemoryStore, Store};
use ff_engine::worker::Worker;
use ff_engine::{Client, Engine, EngineConfig, Outcome};
use madsim::runtime::{Handle, NodeHandle, Runtime};
use madsim::task::JoinHandle;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// `None`: a random mix drawn from the seed.
    pub faults: Option<Faults>,
    pub executions: usize,
    pub workers: usize,
    /// Engine replicas sharing the partitions; `None`: 1–5, drawn from the seed.
    pub engines: Option<usize>,
    /// Faults are injected during this much simulated time.
    pub fault_window: Duration,
    /// After faults stop, everything must be terminal within this.
    pub liveness_bound: Duration,
}

impl SimConfig {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            faults: None,
            executions: 120,
            workers: 3,
            engines: None,
            fault_window: Duration::from_secs(40),
            liveness_bound: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimReport {
    pub seed: u64,
    pub faults: Vec<&'static str>,
    pub partitions: u16,
    pub engines: usize,
    /// Whether the replicas shared the partitions (ownership on).
    pub ownership: bool,
    pub created: usize,
    pub records: usize,
    pub outcomes: Vec<(PublicState, usize)>,
    pub violations: Vec<String>,
    pub trace_hash: u64,
    pub trace_events: u64,
    pub simulated_ms: u64,
    pub engine_crashes: u32,
    /// Times an engine replica was cut off from the store.
    pub engine_cuts: u32,
    pub worker_crashes: u32,
    pub store_restarts: u32,
    pub clock_jumps: u32,
    pub zombie_attempts: u32,
    /// Executions that resumed from a suspension (by a signal or a timeout),
    /// and how many of those a signal resumed.
    pub resumes: u32,
    pub resumed_by_signal: u32,
    /// Callers that awaited an execution's end, and how many resolved.
    pub waiters: usize,
    pub waited: usize,
    /// What the operator did: requeues, deletes, lane pauses.
    pub requeued: usize,
    pub deleted: usize,
    pub pauses: u32,
    /// The first store events, readable (to find where two runs diverge).
    pub log: Vec<String>,
}

impl SimReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Shared between the actors of a run.
#[derive(Default)]
struct Model {
    created: Vec<ExecutionId>,
    flows: Vec<crate::flows::SimFlow>,
    violations: Vec<String>,
    zombie_attempts: u32,
    /// Signals whose (first) reply said they resumed their execution.
    resumed_by_signal: u32,
    /// Tokens reported (once each) to the ledger budget.
    ledger: u64,
    /// Waiters started on executions (`Client::wait`).
    waiters: usize,
    /// What each waiter resolved to.
    waited: Vec<(ExecutionId, Outcome<Vec<u8>>)>,
    /// Executions some caller waits on (the operator leaves them alone).
    waited_on: std::collections::BTreeSet<ExecutionId>,
    /// Executions an operator requeued, with their attempt before.
    requeued: Vec<(ExecutionId, u32)>,
    /// Executions an operator deleted.
    deleted: Vec<ExecutionId>,
    /// Lane pauses an operator made (each resumed).
    pauses: u32,
    /// Whether the contested lane is surely paused now (set once a pause
    /// answered, cleared before its resume is sent), and a count of those
    /// changes: a claim sent and answered within one paused stretch ran
    /// while the lane was paused.
    contested_paused: (bool, u64),
    /// Resumes the deleted executions had counted.
    deleted_resumes: u32,
    /// The schedules firing through the run.
    schedules: Vec<crate::schedules::SimSchedule>,
    /// When they were paused (server ms) and how far behind they may be then.
    schedules_paused: Option<(u64, u64)>,
}

type Shared = Arc<Mutex<Model>>;

fn violation(model: &Shared, v: String) {
    let mut m = model.lock().expect("model lock");
    if m.violations.len() < 50 {
        m.violations.push(v);
    }
}

/// Run one seed to the end.
pub fn run_seed(cfg: SimConfig) -> SimReport {
    let rt = Runtime::with_seed_and_config(cfg.seed, madsim::Config::default());
    rt.block_on(scenario(cfg))
}

/// A client that retries until the store answers (faults may be on).
async fn connect(store: Arc<dyn Store>, partitions: PartitionConfig) -> Client {
    loop {
        match Client::with_partitions(store.clone(), partitions).await {
            Ok(c) => return c,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The lane only the zombie claims from.
fn contested_lane() -> ff_core::Lane {
    ff_core::Lane::new("contested").expect("a valid lane name")
}

/// `ownership`: on as by default (6 s leases renewed every 2 s), or off
/// (every replica scans every partition).
fn engine_config(partitions: PartitionConfig, ownership: bool) -> EngineConfig {
    EngineConfig {
        partitions: Some(partitions),
        rescan_interval: Duration::from_secs(20),
        ownership,
        ..Default::default()
    }
}

/// What each running engine replica believes it owns: (member id, partitions).
type Beliefs = Arc<Mutex<Vec<Option<(String, Vec<u16>)>>>>;

/// What every actor of a run shares: what the seed drew and the stores.
struct World {
    faults: Faults,
    partitions: PartitionConfig,
    replicas: usize,
    ownership: bool,
    memory: Arc<MemoryStore>,
    faulty: Arc<FaultyStore>,
    /// The faulty store every actor talks through.
    store: Arc<dyn Store>,
    model: Shared,
    handle: Handle,
    started: tokio::time::Instant,
}

/// The engine replicas, each on its own line to the store (which a fault can cut).
struct Engines {
    nodes: Vec<NodeHandle>,
    cuts: Vec<Arc<AtomicBool>>,
    beliefs: Beliefs,
}

/// The fault phase's tally.
#[derive(Default)]
struct FaultCounts {
    engine_crashes: u32,
    engine_cuts: u32,
    worker_crashes: u32,
    store_restarts: u32,
    clock_jumps: u32,
}

/// One run: draw the world, start the engines, workers, client, signaller,
/// zombie and checker, inject faults, then wait for liveness and judge.
/// The order of the seed's draws and of the nodes' creation is part of the
/// run: changing it changes what every seed replays.
async fn scenario(cfg: SimConfig) -> SimReport {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let world = draw_world(&cfg, &mut rng).await;
    let engines = start_engines(&world);
    let mailbox: workload::Mailbox = Default::default();
    let workers = start_workers(&world, cfg.workers, &mailbox);
    // (The signaller rotates a second key only after the first is everywhere:
    // a retry of the first after that would be refused as a reused key id.)
    let first_key = Arc::new(AtomicBool::new(false));
    let creator = start_client(&world, &cfg, rng.random(), first_key.clone());
    let signaller = start_signaller(&world, rng.random(), mailbox.clone(), first_key.clone());
    let zombie_on = Arc::new(AtomicBool::new(world.faults.zombies));
    let zombie = world
        .faults
        .zombies
        .then(|| start_zombie(&world, rng.random(), zombie_on.clone()));
    let (checker, watcher) = start_watcher(&world);
    let operator = start_operator(&world, rng.random(), checker.clone());

    let counts = fault_phase(&world, &cfg, &mut rng, &engines, &workers).await;
    operator.abort();
    resume_contested_lane(&world).await;
    let _ = creator.await;
    zombie_on.store(false, Ordering::SeqCst);

    let (obs, owners) = liveness_phase(&world, &cfg, &checker, &engines.beliefs).await;
    watcher.abort();
    signaller.abort();
    if let Some(z) = zombie {
        z.abort();
    }
    judge(&world, &cfg, obs, owners, counts).await
}

/// What the seed draws first (faults, partition count, replicas, ownership)
/// and the stores; returns once a client could connect.
async fn draw_world(cfg: &SimConfig, rng: &mut StdRng) -> World {
    let faults = cfg.faults.unwrap_or_else(|| Faults::random_mix(rng));
    let partitions = PartitionConfig {
        flow_partitions: [4u16, 16, 64][rng.random_range(0..3)],
        ..Default::default()
    };
    let replicas = cfg.engines.unwrap_or_else(|| rng.random_range(1..=5));
    // Ownership off in one run of four: every replica then scans everything.
    let ownership = rng.random_range(0..4) != 0;
    let memory = Arc::new(MemoryStore::new());
    let faulty = Arc::new(FaultyStore::new(memory.clone(), faults, rng.random()));
    let store: Arc<dyn Store> = faulty.clone();
    let model: Shared = Arc::new(Mutex::new(Model::default()));
    let handle = Handle::current();
    let started = tokio::time::Instant::now();
    connect(store.clone(), partitions).await;
    World {
        faults,
        partitions,
        replicas,
        ownership,
        memory,
        faulty,
        store,
        model,
        handle,
        started,
    }
}

/// The engine replicas, each a node that (re)starts an engine and reports
/// what it believes it owns every 250 ms.
fn start_engines(w: &World) -> Engines {
    let (partitions, ownership) = (w.partitions, w.ownership);
    let cuts: Vec<Arc<AtomicBool>> = (0..w.replicas).map(|_| Arc::default()).collect();
    let beliefs: Beliefs = Arc::new(Mutex::new(vec![None; w.replicas]));
    let nodes: Vec<NodeHandle> = (0..w.replicas)
        .map(|i| {
            let store: Arc<dyn Store> = Arc::new(CutStore::new(w.store.clone(), cuts[i].clone()));
            let beliefs = beliefs.clone();
            w.handle
                .create_node()
                .name(format!("engine-{i}"))
                .init(move || {
                    let (store, beliefs) = (store.clone(), beliefs.clone());
                    async move {
                        beliefs.lock().expect("beliefs lock")[i] = None;
                        // Starting checks the store (partition counts); faults may fail it.
                        let engine = loop {
                            match Engine::start(engine_config(partitions, ownership), store.clone())
                                .await
                            {
                                Ok(e) => break e,
                                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                            }
                        };
                        let member = engine.member_id().unwrap_or_default().to_owned();
                        loop {
                            let owned = engine.owned_partitions();
                            beliefs.lock().expect("beliefs lock")[i] =
                                Some((member.clone(), owned));
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                    }
                })
                .build()
        })
        .collect();
    Engines {
        nodes,
        cuts,
        beliefs,
    }
}

/// The workers, each a node running a [`Worker`] over the simulated workload.
fn start_workers(w: &World, n: usize, mailbox: &workload::Mailbox) -> Vec<NodeHandle> {
    let partitions = w.partitions;
    (0..n)
        .map(|i| {
            let (store, mailbox) = (w.store.clone(), mailbox.clone());
            w.handle
                .create_node()
                .name(format!("worker-{i}"))
                .init(move || {
                    let (store, mailbox) = (store.clone(), mailbox.clone());
                    async move {
                        let client = connect(store, partitions).await;
                        let waits = Some((client.clone(), mailbox));
                        let worker = Worker::builder(client, "sim")
                            .instance(format!("w{i}"))
                            .concurrency(8)
                            .lease_ttl(Duration::from_millis(900))
                            .fallback(move |job| workload::handle(job, waits.clone()))
                            .start()
                            .expect("worker config");
                        std::future::pending::<()>().await;
                        drop(worker);
                    }
                })
                .build()
        })
        .collect()
}

/// The client: creates executions over the first part of the fault window.
fn start_client(
    w: &World,
    cfg: &SimConfig,
    seed: u64,
    first_key: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let (store, model, partitions) = (w.store.clone(), w.model.clone(), w.partitions);
    let (n, window, zombies) = (
        cfg.executions,
        cfg.fault_window.mul_f64(0.6),
        w.faults.zombies,
    );
    w.handle
        .create_node()
        .name("client")
        .build()
        .spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let client = connect(store, partitions).await;
            while client.register_lane(&contested_lane()).await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            rotate(&client, "k1").await;
            first_key.store(true, std::sync::atomic::Ordering::SeqCst);
            if let Err(e) = crate::admission::define(&client).await {
                violation(&model, format!("budget/quota definition refused: {e}"));
            }
            let schedules = crate::schedules::define(&client).await;
            model.lock().expect("model lock").schedules = schedules;
            for i in 0..n {
                tokio::time::sleep(window.mul_f64(rng.random_range(0.0..2.0) / n as f64)).await;
                // Some of the work comes as small random DAGs.
                if rng.random_ratio(1, 8) {
                    match crate::flows::build(&client, &mut rng, &format!("sim-{i}")).await {
                        Ok(f) => {
                            let mut m = model.lock().expect("model lock");
                            m.created.extend(f.members.iter().cloned());
                            m.flows.push(f);
                        }
                        Err(e) => violation(&model, format!("flow refused: {e}")),
                    }
                    continue;
                }
                let mut spec = workload::random_spec(&mut rng, format!("sim-{i}"));
                // Some work only the zombie takes: its stale reports are then certain.
                if rng.random_ratio(1, 8) && zombies {
                    spec = spec.lane(contested_lane().as_str());
                }
                let (spec, tight) = crate::admission::draw(&mut rng, spec);
                let ledger = rng.random_ratio(1, 4).then(|| rng.random_range(1..100u64));
                // Retried under the same idempotency key: a lost reply makes no duplicate.
                loop {
                    match client.create(spec.clone()).await {
                        Ok(c) => {
                            use crate::admission::{report, LEDGER, TIGHT};
                            if tight {
                                if let Err(e) = report(&client, TIGHT, &c.execution, 1).await {
                                    violation(&model, format!("usage report: {e}"));
                                }
                            }
                            if let Some(n) = ledger {
                                match report(&client, LEDGER, &c.execution, n).await {
                                    Ok(()) => model.lock().expect("model lock").ledger += n,
                                    Err(e) => violation(&model, format!("usage report: {e}")),
                                }
                            }
                            model
                                .lock()
                                .expect("model lock")
                                .created
                                .push(c.execution.clone());
                            // Some callers await the end.
                            if rng.random_ratio(1, 4) {
                                let mut m = model.lock().expect("model lock");
                                m.waiters += 1;
                                m.waited_on.insert(c.execution.clone());
                                drop(m);
                                tokio::spawn(await_end(client.clone(), c.execution, model.clone()));
                            }
                            break;
                        }
                        Err(ff_engine::Error::Store(_)) => {
                            tokio::time::sleep(Duration::from_millis(50)).await
                        }
                        Err(e) => {
                            violation(&model, format!("create refused: {e}"));
                            break;
                        }
                    }
                }
            }
        })
}

/// A caller awaiting an execution's end, through store errors (a wait
/// that fails is simply waited again).
async fn await_end(client: Client, id: ExecutionId, model: Shared) {
    loop {
        match client.wait(&id, Duration::from_secs(3_600)).await {
            Ok(o) => {
                model.lock().expect("model lock").waited.push((id, o));
                return;
            }
            Err(ff_engine::Error::Store(_)) | Err(ff_engine::Error::TimedOut { .. }) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => {
                violation(&model, format!("wait on {id}: {e}"));
                return;
            }
        }
    }
}

/// An operator, while faults are on: requeues an execution that ended
/// badly, deletes a terminal one, or pauses the contested lane for a while
/// (then resumes it). It holds the checker while it acts, so the checker
/// never sees half of it: a requeued execution's terminal state is
/// forgotten, a deleted one leaves the executions that must not be lost.
/// Executions someone waits on and flow members are left alone.
fn start_operator(
    w: &World,
    seed: u64,
    checker: Arc<tokio::sync::Mutex<Checker>>,
) -> JoinHandle<()> {
    let (store, model, partitions) = (w.store.clone(), w.model.clone(), w.partitions);
    w.handle
        .create_node()
        .name("operator")
        .build()
        .spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let client = connect(store, partitions).await;
            loop {
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..2_500))).await;
                let pick = {
                    let m = model.lock().expect("model lock");
                    let flows: std::collections::BTreeSet<&ExecutionId> =
                        m.flows.iter().flat_map(|f| f.members.iter()).collect();
                    let free: Vec<ExecutionId> = m
                        .created
                        .iter()
                        .filter(|e| !m.waited_on.contains(*e) && !flows.contains(e))
                        .cloned()
                        .collect();
                    (!free.is_empty()).then(|| free[rng.random_range(0..free.len())].clone())
                };
                match rng.random_range(0..3) {
                    0 => {
                        let Some(id) = pick else { continue };
                        let mut checker = checker.lock().await;
                        let before = match client.get(&id).await {
                            Ok(r)
                                if matches!(
                                    r.public_state,
                                    PublicState::Failed
                                        | PublicState::Cancelled
                                        | PublicState::Expired
                                ) =>
                            {
                                r.attempt
                            }
                            _ => continue,
                        };
                        checker.forget(id.as_str());
                        // (sent until answered: a repeat of an applied one
                        // answers live; a refusal requeued nothing)
                        let requeued = loop {
                            match client.requeue(&id).await {
                                Ok(_) => break true,
                                Err(ff_engine::Error::Store(_)) => {
                                    tokio::time::sleep(Duration::from_millis(50)).await
                                }
                                Err(_) => break false,
                            }
                        };
                        if requeued {
                            let mut m = model.lock().expect("model lock");
                            m.requeued.push((id, before));
                        }
                    }
                    1 => {
                        let Some(id) = pick else { continue };
                        let _checker = checker.lock().await;
                        let resumes = match client.get(&id).await {
                            // (one with waitpoints may still be signalled: the signaller would be refused)
                            Ok(r) if r.public_state.is_terminal() && r.waitpoints.is_empty() => {
                                r.resumes
                            }
                            _ => continue,
                        };
                        // Sent until answered (a lost reply may hide that it
                        // applied; a repeat answers absent): then it is gone.
                        while client.delete(&id).await.is_err() {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        let mut m = model.lock().expect("model lock");
                        m.created.retain(|e| *e != id);
                        m.deleted.push(id);
                        m.deleted_resumes += resumes;
                    }
                    _ => {
                        if client.pause_lane(contested_lane().as_str()).await.is_ok() {
                            let mut m = model.lock().expect("model lock");
                            m.pauses += 1;
                            m.contested_paused = (true, m.contested_paused.1 + 1);
                        }
                        tokio::time::sleep(Duration::from_millis(rng.random_range(200..2_000)))
                            .await;
                        {
                            let mut m = model.lock().expect("model lock");
                            m.contested_paused = (false, m.contested_paused.1 + 1);
                        }
                        while client.resume_lane(contested_lane().as_str()).await.is_err() {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        })
}

/// After the operator stops: the contested lane must not stay paused (it
/// may have been stopped between a pause and its resume).
async fn resume_contested_lane(w: &World) {
    {
        let mut m = w.model.lock().expect("model lock");
        m.contested_paused = (false, m.contested_paused.1 + 1);
    }
    let client = connect(w.memory.clone(), w.partitions).await;
    while client.resume_lane(contested_lane().as_str()).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The signaller: signals suspended executions (see [`signal_loop`]).
fn start_signaller(
    w: &World,
    seed: u64,
    mailbox: workload::Mailbox,
    first_key: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let (store, model, partitions) = (w.store.clone(), w.model.clone(), w.partitions);
    w.handle
        .create_node()
        .name("signaller")
        .build()
        .spawn(async move {
            let client = connect(store, partitions).await;
            signal_loop(client, mailbox, model, seed, first_key).await
        })
}

/// A zombie: the only worker of the contested lane. While faults are on it
/// often claims, sleeps past its lease (the engine reclaims it), then reports
/// as if nothing happened — that report must be refused. Otherwise (and
/// once faults stop) it finishes what it claims, so the lane drains.
fn start_zombie(w: &World, seed: u64, on: Arc<AtomicBool>) -> JoinHandle<()> {
    let (store, model, partitions) = (w.store.clone(), w.model.clone(), w.partitions);
    w.handle
        .create_node()
        .name("zombie")
        .build()
        .spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let client = connect(store, partitions).await;
            let (lane, w, i) = (
                contested_lane(),
                ff_core::WorkerName::new("zombie").unwrap(),
                ff_core::WorkerInstance::new("z").unwrap(),
            );
            loop {
                tokio::time::sleep(Duration::from_millis(rng.random_range(50..300))).await;
                let paused = model.lock().expect("model lock").contested_paused;
                let Ok(mut got) = client
                    .claim(&lane, &w, &i, Duration::from_millis(100), 1)
                    .await
                else {
                    continue;
                };
                let Some(claimed) = got.pop() else { continue };
                if paused.0 && model.lock().expect("model lock").contested_paused == paused {
                    violation(
                        &model,
                        format!(
                            "{}: claimed from the paused lane {lane}",
                            claimed.lease.execution
                        ),
                    );
                }
                let stale = on.load(std::sync::atomic::Ordering::SeqCst) && rng.random_ratio(2, 3);
                if !stale {
                    let _ = client.complete(&claimed.lease, b"zombie, in time").await;
                    continue;
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(300..1_500))).await;
                let Ok(rec) = client.get(&claimed.lease.execution).await else {
                    continue;
                };
                if rec.lease.as_ref() == Some(&claimed.lease) {
                    // Nobody reclaimed it yet (the engine may be down): still ours.
                    let _ = client
                        .complete(&claimed.lease, b"zombie, late but valid")
                        .await;
                    continue;
                }
                model.lock().expect("model lock").zombie_attempts += 1;
                let report = if rng.random_ratio(1, 2) {
                    client.complete(&claimed.lease, b"zombie").await
                } else {
                    client.fail(&claimed.lease, "zombie", false).await
                };
                if let Ok(ended) = report {
                    if !ended.replayed {
                        violation(
                            &model,
                            format!(
                                "{}: a fenced-out report was accepted: {ended:?}",
                                claimed.lease.execution
                            ),
                        );
                    }
                }
            }
        })
}

/// The checker: invariants after every step (every 200 ms of simulated time).
fn start_watcher(w: &World) -> (Arc<tokio::sync::Mutex<Checker>>, JoinHandle<()>) {
    let checker = Arc::new(tokio::sync::Mutex::new(Checker::default()));
    let (memory, model, checker2) = (w.memory.clone(), w.model.clone(), checker.clone());
    let (partitions, started) = (w.partitions, w.started);
    let watcher = tokio::spawn(async move {
        let checker = checker2;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            // (what must exist is read under the checker: the operator
            // deletes while it holds it)
            let mut checker = checker.lock().await;
            let created = model.lock().expect("model lock").created.clone();
            let obs = checker.check(&*memory, &created).await;
            drop(checker);
            for v in obs.violations {
                violation(
                    &model,
                    format!("t={}ms: {v}", started.elapsed().as_millis()),
                );
            }
            let held = crate::admission::holders(&*memory, &partitions).await;
            if held > crate::admission::QUOTA_CAP {
                violation(
                    &model,
                    format!(
                        "t={}ms: quota {} has {held} slot holders, cap {}",
                        started.elapsed().as_millis(),
                        crate::admission::QUOTA,
                        crate::admission::QUOTA_CAP
                    ),
                );
            }
        }
    });
    (checker, watcher)
}

/// Fault phase: for the fault window, one fault of the seed's mix every
/// 0.5–3 s (engine crash, replica cut off, worker crash, store restart,
/// clock jump), with the store's own faults on.
async fn fault_phase(
    w: &World,
    cfg: &SimConfig,
    rng: &mut StdRng,
    engines: &Engines,
    workers: &[NodeHandle],
) -> FaultCounts {
    let (faults, handle) = (w.faults, &w.handle);
    let mut n = FaultCounts::default();
    w.faulty.set_active(true);
    let fault_end = tokio::time::Instant::now() + cfg.fault_window;
    while tokio::time::Instant::now() < fault_end {
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..3_000))).await;
        match rng.random_range(0..5) {
            0 if faults.engine_crash => {
                let e = &engines.nodes[rng.random_range(0..engines.nodes.len())];
                handle.kill(e.id());
                tokio::time::sleep(Duration::from_millis(rng.random_range(100..3_000))).await;
                handle.restart(e.id());
                n.engine_crashes += 1;
            }
            // Cut one replica off, sometimes past its leases (6 s).
            4 if faults.partitions => {
                let cut = &engines.cuts[rng.random_range(0..engines.cuts.len())];
                cut.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..10_000))).await;
                cut.store(false, Ordering::SeqCst);
                n.engine_cuts += 1;
            }
            1 if faults.worker_crash => {
                let wk = &workers[rng.random_range(0..workers.len())];
                handle.kill(wk.id());
                tokio::time::sleep(Duration::from_millis(rng.random_range(100..3_000))).await;
                handle.restart(wk.id());
                n.worker_crashes += 1;
            }
            2 if faults.store_restart => {
                w.memory.restart();
                n.store_restarts += 1;
            }
            3 if faults.clock_jumps => {
                w.memory.advance_clock(rng.random_range(200..10_000));
                n.clock_jumps += 1;
            }
            _ => {}
        }
    }
    w.faulty.set_active(false);
    n
}

/// Liveness phase: no faults; everything must end, and the replicas must
/// settle on exactly one owner per partition. Returns the last observation
/// and what is wrong with ownership (empty when settled).
async fn liveness_phase(
    w: &World,
    cfg: &SimConfig,
    checker: &tokio::sync::Mutex<Checker>,
    beliefs: &Beliefs,
) -> (Observation, Vec<String>) {
    let deadline = tokio::time::Instant::now() + cfg.liveness_bound;
    // The schedules run on fault-free for a while (ownership settles, the
    // scanner catches up), then stop: their executions must end too.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let schedules = w.model.lock().expect("model lock").schedules.clone();
    let now = w.memory.now_ms();
    crate::schedules::pause(&connect(w.memory.clone(), w.partitions).await, &schedules).await;
    w.model.lock().expect("model lock").schedules_paused = Some((now, 5_000));
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let created = w.model.lock().expect("model lock").created.clone();
        let obs = checker.lock().await.check(&*w.memory, &created).await;
        let believed: Vec<(String, Vec<u16>)> = beliefs
            .lock()
            .expect("beliefs lock")
            .iter()
            .flatten()
            .cloned()
            .collect();
        let mut owners = if w.ownership {
            ownership_violations(&*w.memory, w.partitions.flow_partitions, &believed).await
        } else {
            Vec::new()
        };
        if believed.len() < w.replicas {
            owners.push(format!(
                "ownership: {} of {} replicas running",
                believed.len(),
                w.replicas
            ));
        }
        if (obs.all_terminal() && !obs.records.is_empty() && owners.is_empty())
            || tokio::time::Instant::now() >= deadline
        {
            return (obs, owners);
        }
    }
}

/// The end-of-run checks (flows, usage, liveness, signals, counters) and
/// the report.
async fn judge(
    w: &World,
    cfg: &SimConfig,
    obs: Observation,
    owners: Vec<String>,
    counts: FaultCounts,
) -> SimReport {
    // Flows: every member's end agrees with its join; counters are exact.
    let flow_violations = if obs.all_terminal() {
        let flows = w.model.lock().expect("model lock").flows.clone();
        let client = connect(w.memory.clone(), w.partitions).await;
        let mut v = crate::flows::check(&client, &flows, &obs.records).await;
        // Usage: every distinct report counted exactly once.
        let want = w.model.lock().expect("model lock").ledger;
        match crate::admission::ledger_usage(&client).await {
            Ok(got) if got == want => {}
            Ok(got) => v.push(format!(
                "usage: ledger counts {got} tokens, {want} reported"
            )),
            Err(e) => v.push(format!("usage: reading the ledger failed: {e}")),
        }
        let (schedules, paused) = {
            let m = w.model.lock().expect("model lock");
            (m.schedules.clone(), m.schedules_paused)
        };
        v.extend(crate::schedules::check(&client, &schedules, &obs.records, paused).await);
        // The counters the transitions keep equal a count of the records.
        match ff_engine::inspect::recount(&client).await {
            Ok(r) if r.drift.is_empty() => {}
            Ok(r) => v.push(format!("counters differ from the records: {:?}", r.drift)),
            Err(e) => v.push(format!("recount failed: {e}")),
        }
        v
    } else {
        Vec::new()
    };
    // Every waiter resolves to the record's outcome (a missed announcement
    // is caught by the re-read every 30 s).
    if obs.all_terminal() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            let (started, done) = {
                let m = w.model.lock().expect("model lock");
                (m.waiters, m.waited.len())
            };
            if done >= started || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let mut model = w.model.lock().expect("model lock");
    if obs.all_terminal() {
        let mut wrong = Vec::new();
        if model.waited.len() < model.waiters {
            wrong.push(format!(
                "waiters: {} of {} resolved 40 s after every execution ended",
                model.waited.len(),
                model.waiters
            ));
        }
        for (id, got) in &model.waited {
            let want = obs.records.get(id.as_str()).and_then(Outcome::of);
            if want.as_ref() != Some(got) {
                wrong.push(format!(
                    "waiter on {id} resolved to {got:?}, the record ends {want:?}"
                ));
            }
        }
        // A requeued execution that ran again did so as a new attempt; a
        // deleted one is gone.
        for (id, before) in &model.requeued {
            if let Some(r) = obs.records.get(id.as_str()) {
                let ran = matches!(r.public_state, PublicState::Completed | PublicState::Failed);
                if ran && r.attempt <= *before {
                    wrong.push(format!(
                        "requeued {id} ended {} at attempt {}, not after attempt {before}",
                        r.public_state, r.attempt
                    ));
                }
            }
        }
        for id in &model.deleted {
            if obs.records.contains_key(id.as_str()) {
                wrong.push(format!("deleted {id} is still there"));
            }
        }
        model.violations.extend(wrong);
    }
    if !obs.all_terminal() {
        let stuck: Vec<String> = obs
            .records
            .iter()
            .filter(|(_, r)| !r.public_state.is_terminal())
            .take(5)
            .map(|(e, r)| format!("{e} ({})", r.public_state))
            .collect();
        model.violations.push(format!(
            "liveness: {} executions not terminal {:?} after faults stopped: {stuck:?}",
            obs.records
                .values()
                .filter(|r| !r.public_state.is_terminal())
                .count(),
            cfg.liveness_bound
        ));
    }
    model.violations.extend(obs.violations.iter().cloned());
    model.violations.extend(flow_violations);
    model.violations.extend(owners.into_iter().take(5));
    // Every resume a signal reported is one the executions counted.
    let resumes: u32 = obs.records.values().map(|r| r.resumes).sum();
    let by_signal = model.resumed_by_signal;
    if by_signal > resumes + model.deleted_resumes {
        model.violations.push(format!(
            "signals report {by_signal} resumes, executions count {resumes}"
        ));
    }
    let created = model.created.len();
    if obs.records.len() < created {
        model.violations.push(format!(
            "counters: {created} created, {} records",
            obs.records.len()
        ));
    }
    let outcomes = [
        PublicState::Completed,
        PublicState::Failed,
        PublicState::Cancelled,
        PublicState::Expired,
        PublicState::Skipped,
    ]
    .into_iter()
    .map(|s| (s, obs.count(s)))
    .collect::<Vec<_>>();
    let terminal: usize = outcomes.iter().map(|(_, n)| n).sum();
    if obs.all_terminal() && terminal != obs.records.len() {
        model.violations.push(format!(
            "counters: {terminal} terminal outcomes for {} records",
            obs.records.len()
        ));
    }
    let trace = w.faulty.trace();
    SimReport {
        seed: cfg.seed,
        faults: w.faults.names(),
        partitions: w.partitions.flow_partitions,
        engines: w.replicas,
        ownership: w.ownership,
        created: model.created.len(),
        records: obs.records.len(),
        outcomes,
        violations: std::mem::take(&mut model.violations),
        trace_hash: trace.hash(),
        trace_events: trace.events,
        simulated_ms: w.started.elapsed().as_millis() as u64,
        engine_crashes: counts.engine_crashes,
        engine_cuts: counts.engine_cuts,
        worker_crashes: counts.worker_crashes,
        store_restarts: counts.store_restarts,
        clock_jumps: counts.clock_jumps,
        zombie_attempts: model.zombie_attempts,
        resumes,
        resumed_by_signal: by_signal,
        waiters: model.waiters,
        waited: model.waited.len(),
        requeued: model.requeued.len(),
        deleted: model.deleted.len(),
        pauses: model.pauses,
        log: w.faulty.log(),
    }
}

/// Rotate a waitpoint secret in, retrying store errors until every partition
/// has it (a repeat is harmless). The previous key stays valid for a minute.
async fn rotate(client: &Client, kid: &str) {
    let kid = ff_core::contract::suspension::SecretKid::new(kid).expect("a valid key id");
    let secret =
        ff_core::contract::suspension::WaitpointSecret::new(kid.as_str().repeat(16).into_bytes())
            .expect("a valid secret");
    while client
        .rotate_waitpoint_secret(&kid, &secret, Duration::from_secs(60))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the signaller does with one waitpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Never signalled (the suspension times out).
    Lost,
    /// One signal.
    Once,
    /// The same signal twice (same idempotency key): the second is a duplicate.
    Repeat,
    /// Two different signals: at most one may resume.
    Twice,
}

/// Signals the waitpoints the handlers hand out, early or late (a random
/// delay from when the token is known, so before or after the suspension),
/// duplicated, or never; a store error is retried with the same idempotency
/// key (a lost reply must not deliver twice). Checks on the replies: a token
/// handed out is never refused as invalid, a repeat is answered as a
/// duplicate, and no waitpoint resumes its execution twice. Halfway through,
/// a new secret is rotated in.
async fn signal_loop(
    client: Client,
    mailbox: workload::Mailbox,
    model: Shared,
    seed: u64,
    first_key: Arc<std::sync::atomic::AtomicBool>,
) {
    use ff_core::contract::suspension::SignalEffect;
    use ff_engine::client::Signal;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut queue: Vec<(tokio::time::Instant, workload::Mail, Plan, u8)> = Vec::new();
    let started = tokio::time::Instant::now();
    let mut rotated = false;
    loop {
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..200))).await;
        if !rotated
            && started.elapsed() > Duration::from_secs(15)
            && first_key.load(std::sync::atomic::Ordering::SeqCst)
        {
            rotate(&client, "k2").await;
            rotated = true;
        }
        let fresh: Vec<workload::Mail> =
            std::mem::take(&mut *mailbox.lock().expect("mailbox lock"));
        for mail in fresh {
            let plan = match rng.random_range(0..10) {
                0 => Plan::Lost,
                1 | 2 => Plan::Repeat,
                3 | 4 => Plan::Twice,
                _ => Plan::Once,
            };
            let at =
                tokio::time::Instant::now() + Duration::from_millis(rng.random_range(0..3_000));
            queue.push((at, mail, plan, 0));
        }
        let now = tokio::time::Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = queue.into_iter().partition(|(at, ..)| *at <= now);
        queue = later;
        for (_, mail, plan, sent) in due {
            if plan == Plan::Lost {
                continue;
            }
            let key = if plan == Plan::Twice && sent == 1 {
                "second"
            } else {
                "first"
            };
            let signal = Signal::new("go").idempotency_key(format!("{}-{key}", mail.waitpoint));
            let reply = loop {
                match client
                    .signal(
                        &mail.execution,
                        &mail.waitpoint,
                        &mail.token,
                        signal.clone(),
                    )
                    .await
                {
                    Err(ff_engine::Error::Store(_)) => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    other => break other,
                }
            };
            let what = format!("{} waitpoint {}", mail.execution, mail.waitpoint);
            match reply {
                Ok(r) => {
                    let mut m = model.lock().expect("model lock");
                    if plan == Plan::Repeat && sent == 1 && !r.duplicate {
                        drop(m);
                        violation(
                            &model,
                            format!("{what}: a repeated signal was not a duplicate"),
                        );
                        continue;
                    }
                    if (!r.duplicate || sent == 0) && r.effect == SignalEffect::Resumed {
                        m.resumed_by_signal += 1;
                    }
                }
                Err(ff_engine::Error::Rejected(
                    ff_core::FfError::WaitpointClosed(_) | ff_core::FfError::AlreadyTerminal(_),
                )) => {}
                Err(e) => violation(&model, format!("{what}: signal refused: {e}")),
            }
            if plan != Plan::Once && sent == 0 {
                let at =
                    tokio::time::Instant::now() + Duration::from_millis(rng.random_range(0..2_000));
                queue.push((at, mail, plan, 1));
            }
        }
    }
}
