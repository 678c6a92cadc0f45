//! Fault injection: which faults a run has, and the store wrapper that injects
//! the store-level ones (the run injects crashes, restarts and clock jumps).

use crate::trace::Trace;
use ff_core::contract::Call;
use ff_core::reply::Reply;
use ff_engine::error::StoreError;
use ff_engine::store::{Store, SubEvent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// The faults of one run; each switchable, all on by default in a random mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// Every store call takes 0–20 ms.
    pub latency: bool,
    /// Some calls fail before reaching the store.
    pub errors: bool,
    /// Some calls apply, then the caller sees a timeout.
    pub lost_replies: bool,
    /// Some pub/sub messages never arrive.
    pub pubsub_drops: bool,
    /// The engine crashes (all its tasks and memory gone) and restarts.
    pub engine_crash: bool,
    /// Workers crash without a word and restart.
    pub worker_crash: bool,
    /// The store restarts and loses its function library (data kept).
    pub store_restart: bool,
    /// The store's clock jumps forward.
    pub clock_jumps: bool,
    /// A worker keeps working after its lease was taken and reports late.
    pub zombies: bool,
    /// An engine replica is cut off from the store for a while (its calls
    /// fail, its wake-ups are lost), sometimes longer than its leases.
    pub partitions: bool,
}

impl Faults {
    pub fn none() -> Self {
        Self {
            latency: false,
            errors: false,
            lost_replies: false,
            pubsub_drops: false,
            engine_crash: false,
            worker_crash: false,
            store_restart: false,
            clock_jumps: false,
            zombies: false,
            partitions: false,
        }
    }

    pub fn all() -> Self {
        Self {
            latency: true,
            errors: true,
            lost_replies: true,
            pubsub_drops: true,
            engine_crash: true,
            worker_crash: true,
            store_restart: true,
            clock_jumps: true,
            zombies: true,
            partitions: true,
        }
    }

    /// A random mix: each fault on with probability 2/3.
    pub fn random_mix(rng: &mut impl Rng) -> Self {
        let mut on = || rng.random_ratio(2, 3);
        Self {
            latency: on(),
            errors: on(),
            lost_replies: on(),
            pubsub_drops: on(),
            engine_crash: on(),
            worker_crash: on(),
            store_restart: on(),
            clock_jumps: on(),
            zombies: on(),
            partitions: on(),
        }
    }

    /// Names of the faults that are on, for reports.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.latency, "latency"),
            (self.errors, "errors"),
            (self.lost_replies, "lost_replies"),
            (self.pubsub_drops, "pubsub_drops"),
            (self.engine_crash, "engine_crash"),
            (self.worker_crash, "worker_crash"),
            (self.store_restart, "store_restart"),
            (self.clock_jumps, "clock_jumps"),
            (self.zombies, "zombies"),
            (self.partitions, "partitions"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect()
    }
}

/// A store that injects the store-level faults while `active`, and records
/// every call in the run's trace.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: Faults,
    active: Arc<AtomicBool>,
    rng: Mutex<StdRng>,
    trace: Mutex<Trace>,
    /// The first events, readable, to show where two runs diverge.
    log: Mutex<Vec<String>>,
}

/// How many events the readable log keeps.
const LOG_EVENTS: usize = 5_000;

/// Probability (per mille) of an injected error / a lost reply / a dropped message.
const ERROR_PERMILLE: u32 = 20;
const LOST_REPLY_PERMILLE: u32 = 20;
const DROP_PERMILLE: u32 = 100;

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>, faults: Faults, seed: u64) -> Self {
        Self {
            inner,
            faults,
            active: Arc::new(AtomicBool::new(false)),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            trace: Mutex::new(Trace::default()),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Turn the store-level faults on or off (off for setup and the liveness phase).
    pub fn set_active(&self, on: bool) {
        self.active.store(on, Ordering::SeqCst);
    }

    /// The first events of the run, readable.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    pub fn trace(&self) -> Trace {
        *self.trace.lock().expect("trace lock")
    }

    fn roll(&self, permille: u32) -> bool {
        self.rng.lock().expect("rng lock").random_range(0..1000) < permille
    }

    fn on(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    fn record(&self, what: &[u8], outcome: &Result<Reply, StoreError>) {
        let tag: &[u8] = match outcome {
            Ok(_) => b"ok",
            Err(StoreError::Unavailable(_)) => b"unavailable",
            Err(StoreError::Server(_)) => b"server",
            Err(StoreError::FunctionNotFound(_)) => b"nofunction",
            Err(StoreError::Config(_)) => b"config",
        };
        let digest = match outcome {
            Ok(r) => format!("{r:?}"),
            Err(e) => e.to_string(),
        };
        self.trace
            .lock()
            .expect("trace lock")
            .record(&[what, tag, digest.as_bytes()]);
        let mut log = self.log.lock().expect("log lock");
        if log.len() < LOG_EVENTS {
            log.push(format!(
                "{} {} {digest}",
                String::from_utf8_lossy(what),
                String::from_utf8_lossy(tag)
            ));
        }
    }

    /// Before a call: latency, and maybe an error that keeps the call from the store.
    async fn before(&self) -> Result<(), StoreError> {
        if !self.on() {
            return Ok(());
        }
        if self.faults.latency {
            let ms = self.rng.lock().expect("rng lock").random_range(0..20);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if self.faults.errors && self.roll(ERROR_PERMILLE) {
            return Err(StoreError::Unavailable("injected: connection error".into()));
        }
        Ok(())
    }

    /// After a call that applied: maybe the reply is lost.
    fn after(&self, r: Result<Reply, StoreError>) -> Result<Reply, StoreError> {
        if self.on() && self.faults.lost_replies && r.is_ok() && self.roll(LOST_REPLY_PERMILLE) {
            return Err(StoreError::Unavailable(
                "injected: reply lost after the write applied".into(),
            ));
        }
        r
    }
}

#[async_trait::async_trait]
impl Store for FaultyStore {
    async fn fcall(&self, call: &Call) -> Result<Reply, StoreError> {
        self.before().await?;
        let r = self.inner.fcall(call).await;
        self.record(call.function.as_bytes(), &r);
        self.after(r)
    }

    async fn fcall_many(&self, calls: &[Call]) -> Vec<Result<Reply, StoreError>> {
        let mut out = Vec::with_capacity(calls.len());
        for c in calls {
            out.push(self.fcall(c).await);
        }
        out
    }

    async fn command(&self, args: &[Vec<u8>]) -> Result<Reply, StoreError> {
        self.before().await?;
        let r = self.inner.command(args).await;
        self.record(args.first().map_or(&b""[..], |a| a.as_slice()), &r);
        self.after(r)
    }

    async fn command_many(&self, cmds: &[Vec<Vec<u8>>]) -> Vec<Result<Reply, StoreError>> {
        let mut out = Vec::with_capacity(cmds.len());
        for c in cmds {
            out.push(self.command(c).await);
        }
        out
    }

    async fn time_ms(&self) -> Result<u64, StoreError> {
        self.before().await?;
        self.inner.time_ms().await
    }

    async fn ensure_library(&self) -> Result<(), StoreError> {
        self.before().await?;
        self.inner.ensure_library().await
    }

    async fn subscribe(&self, channel: &str) -> Result<UnboundedReceiver<SubEvent>, StoreError> {
        let mut rx = self.inner.subscribe(channel).await?;
        if !self.faults.pubsub_drops {
            return Ok(rx);
        }
        let (tx, out) = unbounded_channel();
        let drops = StdRng::seed_from_u64(self.rng.lock().expect("rng lock").random());
        let active = self.active.clone();
        tokio::spawn(async move {
            let mut drops = drops;
            while let Some(ev) = rx.recv().await {
                let lose = matches!(ev, SubEvent::Message(_))
                    && active.load(Ordering::SeqCst)
                    && drops.random_range(0..1000) < DROP_PERMILLE;
                if !lose && tx.send(ev).is_err() {
                    return;
                }
            }
        });
        Ok(out)
    }
}

/// One engine replica's line to the store, which the run can cut: while cut,
/// every call fails before reaching the store and pub/sub messages are lost;
/// once restored, the subscription reports itself re-established (as a real
/// reconnect would), so the replica rescans.
pub struct CutStore {
    inner: Arc<dyn Store>,
    cut: Arc<AtomicBool>,
}

impl CutStore {
    pub fn new(inner: Arc<dyn Store>, cut: Arc<AtomicBool>) -> Self {
        Self { inner, cut }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.cut.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "injected: partitioned from the store".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for CutStore {
    async fn fcall(&self, call: &Call) -> Result<Reply, StoreError> {
        self.check()?;
        self.inner.fcall(call).await
    }

    async fn fcall_many(&self, calls: &[Call]) -> Vec<Result<Reply, StoreError>> {
        if let Err(e) = self.check() {
            return calls.iter().map(|_| Err(e.clone())).collect();
        }
        self.inner.fcall_many(calls).await
    }

    async fn command(&self, args: &[Vec<u8>]) -> Result<Reply, StoreError> {
        self.check()?;
        self.inner.command(args).await
    }

    async fn command_many(&self, cmds: &[Vec<Vec<u8>>]) -> Vec<Result<Reply, StoreError>> {
        if let Err(e) = self.check() {
            return cmds.iter().map(|_| Err(e.clone())).collect();
        }
        self.inner.command_many(cmds).await
    }

    async fn time_ms(&self) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.time_ms().await
    }

    async fn ensure_library(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.ensure_library().await
    }

    async fn subscribe(&self, channel: &str) -> Result<UnboundedReceiver<SubEvent>, StoreError> {
        self.check()?;
        let mut rx = self.inner.subscribe(channel).await?;
        let (tx, out) = unbounded_channel();
        let cut = self.cut.clone();
        tokio::spawn(async move {
            let mut lost = false;
            while let Some(ev) = rx.recv().await {
                if cut.load(Ordering::SeqCst) {
                    lost = true;
                    continue;
                }
                if std::mem::take(&mut lost) && tx.send(SubEvent::Subscribed).is_err() {
                    return;
                }
                if tx.send(ev).is_err() {
                    return;
                }
            }
        });
        Ok(out)
    }
}
