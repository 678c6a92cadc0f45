//! The one scanner runner: it drives core's schedule ([`Schedule`]) for every
//! scanner alike. It reads the server clock, starts a cycle, sends the reads
//! and calls the schedule asks for (each round one pipeline; a sweep's one
//! at a time), feeds the
//! replies back, and then sleeps until the schedule's timeout, a wake-up from
//! the data plane, a change of what this replica holds, or shutdown.

use super::metrics::ScannerMetrics;
use super::ownership::Subscriber;
use crate::error::{Error, StoreError};
use crate::store::{cmd, Store};
use ff_core::contract::scan::{self as contract, BatchFunction, BatchOutcome, ScannerFilter};
use ff_core::keys::PartitionKeys;
use ff_core::reply::DecodeError;
use ff_core::scan::{
    self, parse_members, parse_page, read_heads, read_page, CycleReport, Notice, Schedule,
    Settings, Snapshot,
};
use ff_core::tracker::FailureTracker;
use ff_core::{Partition, PartitionConfig};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

pub use ff_core::scan::{ScanWork, Wake};

/// A scanner, as data: one row of [`super::scanners`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannerSpec {
    /// Its name in logs and metrics.
    pub name: &'static str,
    /// What it does (and so the index it reads).
    pub work: ScanWork,
    /// Its longest sleep.
    pub interval: Duration,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Send what `schedule` asks for until its cycle is done; `between` runs
/// before each round (a long drain re-checks ownership between rounds) and
/// ends the cycle there when it answers false (shutdown).
async fn drive(
    store: &dyn Store,
    schedule: &mut Schedule,
    mut between: impl FnMut(&mut Schedule) -> bool,
) {
    let text = |replies: Vec<Result<_, StoreError>>| -> Vec<_> {
        replies
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    };
    let in_flight = if schedule.settings().work.is_sweep() {
        SWEEP_CALLS_IN_FLIGHT
    } else {
        usize::MAX
    };
    loop {
        if !between(schedule) {
            return;
        }
        let reads = schedule.poll_reads();
        if !reads.is_empty() {
            let cmds: Vec<Vec<Vec<u8>>> = reads.iter().map(cmd).collect();
            let mut replies = Vec::with_capacity(cmds.len());
            for chunk in cmds.chunks(in_flight) {
                replies.extend(store.command_many(chunk).await);
            }
            schedule.handle_reads(text(replies));
            continue;
        }
        let calls = schedule.poll_calls();
        if calls.is_empty() {
            return;
        }
        let mut replies = Vec::with_capacity(calls.len());
        for chunk in calls.chunks(in_flight) {
            replies.extend(store.fcall_many(chunk).await);
        }
        schedule.handle_results(text(replies));
    }
}

/// A sweep's reads and calls go one at a time: they are background work
/// whose calls each take the server a few ms, so no more than one is ever
/// queued ahead of another scanner's (a fire of a schedule waited behind a
/// whole round of them). The other scanners send a round in one pipeline.
const SWEEP_CALLS_IN_FLIGHT: usize = 1;

/// One look at one partition, outside any runner: read its due members, act
/// on up to `batch` of them. For tests, tools and operators.
pub async fn scan_once(
    store: &dyn Store,
    f: BatchFunction,
    partition: Partition,
    filter: &ScannerFilter,
    batch: usize,
) -> Result<BatchOutcome, Error> {
    let keys = PartitionKeys::new(partition);
    let decode_error = |function, reason| DecodeError { function, reason };
    let ids = if f.is_sweep() {
        let reply = store.command(&cmd(read_page(f, &keys, "0", batch))).await?;
        parse_page(&reply).map_err(|r| decode_error("SSCAN", r))?.1
    } else {
        let now = store.time_ms().await?;
        let reply = store.command(&cmd(read_heads(f, &keys, batch))).await?;
        let members = parse_members(&reply).map_err(|r| decode_error("ZRANGEBYSCORE", r))?;
        let snap = Snapshot {
            now_ms: now,
            members,
            limit: batch,
        };
        scan::plan(&snap, &FailureTracker::default(), batch).act
    };
    let ids: Vec<String> = ids.into_iter().take(batch).collect();
    let reply = store
        .fcall(&contract::batch(f, partition, filter, &ids))
        .await?;
    Ok(contract::decode_batch(f.function(), &reply)?)
}

/// One cycle of a scanner over every partition of its family, outside any
/// runner (for tests, tools and operators). Fails with the first failure the
/// cycle met.
pub(crate) async fn cycle_once(
    store: &dyn Store,
    settings: Settings,
) -> Result<CycleReport, Error> {
    let now = store.time_ms().await?;
    let mut schedule = Schedule::new(settings);
    schedule.begin_cycle(now);
    drive(store, &mut schedule, |_| true).await;
    let report = schedule.end_cycle();
    match report.notices.iter().find_map(failure) {
        Some(e) => Err(Error::Cycle(e)),
        None => Ok(report),
    }
}

fn failure(n: &Notice) -> Option<String> {
    match n {
        Notice::ReadFailed { error, .. }
        | Notice::BatchFailed { error, .. }
        | Notice::InUseUnknown(error)
        | Notice::AdmissionFailed { error, .. } => Some(error.clone()),
        Notice::MembersFailed { .. } | Notice::Malformed(_) => None,
    }
}

pub(crate) struct Runner {
    spec: ScannerSpec,
    store: Arc<dyn Store>,
    pub(super) schedule: Schedule,
    metrics: Arc<ScannerMetrics>,
    /// Server time at a local instant, to turn due times into sleeps.
    clock: (u64, Instant),
    /// The partitions this replica holds (`None`: ownership off, all of them).
    owned: Option<Subscriber>,
}

impl Runner {
    pub(crate) fn new(
        spec: ScannerSpec,
        store: Arc<dyn Store>,
        partitions: &PartitionConfig,
        filter: ScannerFilter,
        batch: usize,
        rescan: Duration,
        metrics: Arc<ScannerMetrics>,
    ) -> Self {
        let schedule = Schedule::new(Settings {
            work: spec.work,
            interval_ms: millis(spec.interval),
            batch,
            rescan_ms: millis(rescan),
            config: *partitions,
            filter,
        });
        Self {
            spec,
            store,
            schedule,
            metrics,
            clock: (0, Instant::now()),
            owned: None,
        }
    }

    /// Leave rescans to the engine's shared one ([`super::heads`]).
    pub(crate) fn with_shared_rescan(mut self) -> Self {
        self.schedule = self.schedule.shared_rescan();
        self
    }

    /// Scan only the partitions `owned` says this replica holds (a budget
    /// or quota partition goes with the flow partition of its number).
    pub(crate) fn with_ownership(mut self, owned: Subscriber) -> Self {
        let none = vec![None; self.schedule.held().len()];
        self.schedule.handle_ownership(&none);
        self.owned = Some(owned);
        self.refresh_ownership();
        self
    }

    /// Tell the schedule what this replica holds now.
    fn refresh_ownership(&mut self) {
        refresh(&self.owned, &mut self.schedule, self.spec.name);
    }

    /// The earliest local expiry among the leases held (ownership on only).
    fn ownership_expiry(&self) -> Option<Instant> {
        let now = Instant::now();
        let owned = self.owned.as_ref()?.current();
        owned
            .0
            .iter()
            .flatten()
            .map(|h| h.until)
            .filter(|u| *u > now)
            .min()
    }

    fn server_now(&self) -> u64 {
        self.clock.0 + self.clock.1.elapsed().as_millis() as u64
    }

    fn instant_at(&self, server_ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(server_ms.saturating_sub(self.server_now()))
    }

    /// Is a cycle due now?
    #[cfg(test)]
    pub(super) fn has_work(&mut self) -> bool {
        let now = self.server_now();
        self.schedule.poll_timeout(now) <= now
    }

    pub(super) fn on_wake(&mut self, w: Wake) {
        let now = self.server_now();
        self.schedule.handle_wake(w, now);
    }

    /// Run until shutdown is signalled or the engine is dropped.
    pub(crate) async fn run(
        mut self,
        mut wakes: Option<&mut UnboundedReceiver<Wake>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        tracing::info!(scanner = self.spec.name, interval = ?self.spec.interval, partitions = self.schedule.partitions().len(), "scanner started");
        // Due times are server times: the server's clock is read before
        // anything is judged due. A failed read pauses.
        loop {
            if *shutdown.borrow() {
                tracing::info!(scanner = self.spec.name, "scanner stopped");
                return;
            }
            if self.refresh_clock().await.is_some() {
                break;
            }
        }
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.refresh_ownership();
            // Wake-ups queued meanwhile (a burst of announcements) join one cycle.
            if let Some(rx) = wakes.as_mut() {
                while let Ok(w) = rx.try_recv() {
                    self.on_wake(w);
                }
            }
            let now = self.server_now();
            let at = self.schedule.poll_timeout(now);
            if at <= now {
                let span = tracing::info_span!("scanner_cycle", scanner = self.spec.name);
                self.cycle(Some(&shutdown)).instrument(span).await;
                continue;
            }
            // A lease lapsing locally (its renewal is late) must stop the scanning.
            let wake_at = self
                .ownership_expiry()
                .map_or(self.instant_at(at), |l| l.min(self.instant_at(at)));
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(wake_at) => {}
                w = async {
                    match wakes.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match w {
                    Some(w) => self.on_wake(w),
                    // The wake-up listener is gone: rely on the schedule alone.
                    None => wakes = None,
                },
                r = shutdown.changed() => if r.is_err() { break },
                // What this replica holds changed: refreshed at the loop's top.
                _ = async {
                    match self.owned.as_ref() {
                        Some(rx) => rx.changed().await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
        tracing::info!(scanner = self.spec.name, "scanner stopped");
    }

    async fn refresh_clock(&mut self) -> Option<u64> {
        match self.store.time_ms().await {
            Ok(t) => {
                self.clock = (t, Instant::now());
                Some(t)
            }
            Err(e) => {
                ScannerMetrics::add(&self.metrics.errors, 1);
                tracing::warn!(scanner = self.spec.name, error = %e, "cannot read server time; skipping this cycle");
                // Do not spin on a dead store: try again after a short pause.
                tokio::time::sleep(self.spec.interval.min(Duration::from_secs(1))).await;
                None
            }
        }
    }

    /// One cycle, as the schedule asks for it; a shutdown signalled meanwhile
    /// ends it between rounds (what was done is done: every call is fenced or
    /// idempotent, and what is left stays due).
    pub(super) async fn cycle(&mut self, shutdown: Option<&watch::Receiver<bool>>) {
        let started = Instant::now();
        let Some(now) = self.refresh_clock().await else {
            let now = self.server_now();
            self.schedule.handle_clock_failure(now);
            return;
        };
        ScannerMetrics::add(&self.metrics.cycles, 1);
        self.schedule.begin_cycle(now);
        let (owned, name) = (&self.owned, self.spec.name);
        let stopping = || shutdown.is_some_and(|rx| *rx.borrow());
        drive(self.store.as_ref(), &mut self.schedule, |s| {
            refresh(owned, s, name);
            !stopping()
        })
        .await;
        let report = self.schedule.end_cycle();
        self.finish_cycle(started, report);
    }

    fn finish_cycle(&self, started: Instant, r: CycleReport) {
        let m = &self.metrics;
        for (counter, n) in [
            (&m.acted, r.acted),
            (&m.repaired, r.repaired),
            (&m.malformed, r.malformed),
            (&m.skipped, r.skipped),
            (&m.errors, r.errors),
        ] {
            ScannerMetrics::add(counter, n);
        }
        let name = self.spec.name;
        for n in &r.notices {
            match n {
                Notice::ReadFailed { partition, error } => {
                    tracing::warn!(scanner = name, partition, error = %error, "read failed")
                }
                Notice::BatchFailed {
                    partition,
                    error,
                    batch,
                } => {
                    tracing::warn!(scanner = name, partition, error = %error, batch, "batch call failed")
                }
                Notice::MembersFailed {
                    failed,
                    entered_backoff,
                } => tracing::warn!(scanner = name, failed, entered_backoff, "members failed"),
                Notice::Malformed(malformed) => {
                    tracing::warn!(scanner = name, malformed, "malformed index entries removed")
                }
                Notice::InUseUnknown(error) => {
                    tracing::warn!(scanner = name, error = %error, "cannot tell whether admission is used")
                }
                Notice::AdmissionFailed { partitions, error } => {
                    tracing::warn!(scanner = name, partitions, error = %error, "admission cycle failed")
                }
            }
        }
        let micros = started.elapsed().as_micros() as u64;
        m.backlog.store(r.backlog, Relaxed);
        m.last_cycle_micros.store(micros, Relaxed);
        m.cycle_duration.record_micros(micros);
        if r.acted > 0 || r.backlog > 0 {
            tracing::info!(
                scanner = name,
                acted = r.acted,
                backlog = r.backlog,
                micros,
                "scan cycle"
            );
        } else {
            tracing::debug!(scanner = name, micros, "scan cycle: nothing due");
        }
    }
}

/// Tell `schedule` what this replica holds now (per slot; a budget or quota
/// partition goes with the flow partition of its number).
fn refresh(owned: &Option<Subscriber>, schedule: &mut Schedule, name: &'static str) {
    let Some(rx) = owned else { return };
    let owned = rx.current();
    let now = Instant::now();
    let flow = owned.0.len().max(1);
    let held: Vec<Option<u64>> = (0..schedule.held().len())
        .map(|i| owned.epoch(i % flow, now))
        .collect();
    let (gained, lost) = schedule.handle_ownership(&held);
    if gained + lost > 0 {
        tracing::info!(scanner = name, gained, lost, "owned partitions changed");
    }
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
