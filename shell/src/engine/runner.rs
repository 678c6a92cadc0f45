//! The one scanner runner. A scanner is a description ([`ScannerSpec`]: a
//! name, its work and index, an interval); the runner does for every scanner:
//! read snapshots of the partitions that are due, ask core what to act on
//! ([`ff_core::scan::plan`]), carry it out with one batch FCALL per partition
//! (pipelined across partitions), feed the results back, loop until nothing
//! is due, then sleep until the earliest known due time, a wake-up from the
//! data plane, or the interval — whichever comes first.
//!
//! The admission scanners ([`ScanWork::Admission`]) need reads on other
//! slots (budgets, quotas, executions) between their reads and their moves,
//! so their cycle is [`super::admission::cycle`]; their schedule, wake-ups,
//! ownership, metrics and tracing are the runner's, like every scanner's.

use super::admission::{self, AdmissionScan};
use super::metrics::ScannerMetrics;
use super::ownership::Subscriber;
use crate::error::StoreError;
use crate::store::{cmd, Store};
use ff_core::contract::scan::{self as contract, BatchFunction, BatchOutcome, ScannerFilter};
use ff_core::contract::{Call, CallError};
use ff_core::keys::PartitionKeys;
use ff_core::reply::Reply;
use ff_core::scan::{self, ItemResult, Member, Snapshot};
use ff_core::tracker::FailureTracker;
use ff_core::{Partition, PartitionConfig, PartitionFamily};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

/// A scanner, as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannerSpec {
    /// Its name in logs and metrics.
    pub name: &'static str,
    /// What it does (and so the index it reads).
    pub work: ScanWork,
    /// Its longest sleep.
    pub interval: Duration,
}

/// What a scanner does in a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanWork {
    /// Batch calls of one function on the due members of one index of each
    /// flow partition.
    Batch(BatchFunction),
    /// An admission scanner: partitions of its family, reads on other slots
    /// before single-slot moves.
    Admission(AdmissionScan),
}

impl ScanWork {
    /// The index it reads, as in wake-up messages and metric labels.
    pub fn index_name(self) -> &'static str {
        match self {
            ScanWork::Batch(f) => f.index_name(),
            ScanWork::Admission(a) => a.index_name(),
        }
    }

    /// Walks every partition each interval rather than following due times.
    pub fn is_sweep(self) -> bool {
        match self {
            ScanWork::Batch(f) => f.is_sweep(),
            ScanWork::Admission(a) => a.is_sweep(),
        }
    }

    /// The partitions it walks.
    pub fn family(self) -> PartitionFamily {
        match self {
            ScanWork::Batch(_) => PartitionFamily::Flow,
            ScanWork::Admission(a) => a.family(),
        }
    }
}

/// A nudge from outside the runner's own schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The data plane announced a new earliest due time in a partition.
    At {
        /// The partition.
        partition: u16,
        /// Its new earliest due time (server ms).
        due_ms: u64,
    },
    /// Announcements may have been lost: re-read every partition.
    Rescan,
    /// Something changed everywhere (admission: a breach cleared, a quota
    /// place freed, a worker registered): re-read the partitions that had
    /// something left at their last read.
    Changed,
}

/// One batch call to make: the partition's slot, the member ids, and whether
/// more was due than this batch takes.
type Work = (usize, Vec<String>, bool);

/// After a failed read or call, a partition is looked at again after at most this.
const RETRY_AFTER_ERROR_MS: u64 = 1_000;

#[derive(Debug, Clone, Default)]
struct Slot {
    /// Earliest future due time known (server ms).
    next_due: Option<u64>,
    /// Must be read at the next cycle whatever `next_due` says.
    dirty: bool,
}

pub(crate) struct Runner {
    spec: ScannerSpec,
    store: Arc<dyn Store>,
    partitions: Vec<Partition>,
    config: PartitionConfig,
    filter: ScannerFilter,
    batch: usize,
    rescan: Duration,
    /// Re-read every partition each `rescan` (off when the engine's shared
    /// rescan tells this runner the heads of its index).
    own_rescan: bool,
    /// Admission has been used in this store (cached once seen).
    admission_in_use: bool,
    /// What the blocked executions seen draw on (the unblock scanner).
    needs: admission::Needs,
    metrics: Arc<ScannerMetrics>,
    slots: Vec<Slot>,
    tracker: FailureTracker,
    /// Server time at a local instant, to turn due times into sleeps (first
    /// read when the run starts).
    clock: (u64, Instant),
    last_rescan: Instant,
    last_sweep: Option<Instant>,
    /// The partitions this replica holds (`None`: ownership off, all of them).
    owned: Option<Subscriber>,
    /// Per slot, the lease epoch it is scanned under; `None`: not ours.
    held: Vec<Option<u64>>,
}

/// Parse `ZRANGEBYSCORE … WITHSCORES`: member, score, member, score, …
fn parse_members(reply: &Reply) -> Result<Vec<Member>, String> {
    let Reply::Array(items) = reply else {
        return Err(format!("expected an array, got {reply:?}"));
    };
    items
        .chunks(2)
        .map(|pair| match pair {
            [m, s] => {
                let id = m.text().ok_or("member is not text")?;
                let score = s
                    .text()
                    .and_then(|t| t.parse::<f64>().ok())
                    .ok_or("score is not a number")?;
                Ok(Member {
                    id,
                    score: if score <= 0.0 { 0 } else { score as u64 },
                })
            }
            _ => Err("odd number of elements".to_owned()),
        })
        .collect()
}

/// Parse `SSCAN`: [cursor, [members]].
fn parse_sscan(reply: &Reply) -> Result<(String, Vec<String>), String> {
    match reply {
        Reply::Array(v) if v.len() == 2 => {
            let cursor = v[0].text().ok_or("cursor is not text")?;
            let Reply::Array(ms) = &v[1] else {
                return Err("members are not an array".into());
            };
            Ok((cursor, ms.iter().filter_map(Reply::text).collect()))
        }
        other => Err(format!("unexpected SSCAN reply {other:?}")),
    }
}

fn read_due(f: BatchFunction, p: Partition, limit: usize) -> Vec<Vec<u8>> {
    let key = f.index(&PartitionKeys::new(p));
    cmd([
        "ZRANGEBYSCORE",
        &key,
        "-inf",
        "+inf",
        "WITHSCORES",
        "LIMIT",
        "0",
        &limit.to_string(),
    ])
}

/// One batch call's answer, decoded; a failed call is one error for all.
fn decode(f: BatchFunction, r: Result<Reply, StoreError>) -> Result<BatchOutcome, String> {
    let reply = r.map_err(|e| e.to_string())?;
    contract::decode_batch(f.function(), &reply).map_err(|e: CallError| e.to_string())
}

/// One look at one partition, outside any runner: read its due members, act
/// on up to `batch` of them. For tests, tools and operators.
pub async fn scan_once(
    store: &dyn Store,
    f: BatchFunction,
    partition: Partition,
    filter: &ScannerFilter,
    batch: usize,
) -> Result<BatchOutcome, crate::Error> {
    let ids = if f.is_sweep() {
        let key = f.index(&PartitionKeys::new(partition));
        let reply = store
            .command(&cmd(["SSCAN", &key, "0", "COUNT", &batch.to_string()]))
            .await?;
        parse_sscan(&reply)
            .map_err(|reason| ff_core::reply::DecodeError {
                function: "SSCAN",
                reason,
            })?
            .1
    } else {
        let now = store.time_ms().await?;
        let reply = store.command(&read_due(f, partition, batch)).await?;
        let members = parse_members(&reply).map_err(|reason| ff_core::reply::DecodeError {
            function: "ZRANGEBYSCORE",
            reason,
        })?;
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
        let config = *partitions;
        let partitions: Vec<Partition> = partitions.partitions(spec.work.family()).collect();
        let partitions_len = partitions.len();
        let now = Instant::now();
        Self {
            spec,
            store,
            config,
            own_rescan: true,
            admission_in_use: false,
            needs: admission::Needs::default(),
            slots: vec![
                Slot {
                    next_due: None,
                    dirty: true
                };
                partitions.len()
            ],
            partitions,
            filter,
            batch,
            rescan,
            metrics,
            tracker: FailureTracker::default(),
            clock: (0, now),
            last_rescan: now,
            // The first full sweep waits one interval: at start the engine has
            // due work to drain first, and a sweep then would compete with it.
            last_sweep: Some(now),
            owned: None,
            held: vec![Some(0); partitions_len],
        }
    }

    /// Leave rescans to the engine's shared one ([`super::heads`]): no own
    /// periodic re-read, and no read at start (the shared rescan's first round
    /// tells this runner where its due members are).
    pub(crate) fn with_shared_rescan(mut self) -> Self {
        self.own_rescan = false;
        for s in &mut self.slots {
            s.dirty = false;
        }
        self
    }

    /// Scan only the partitions `owned` says this replica holds (a budget
    /// or quota partition goes with the flow partition of its number).
    pub(crate) fn with_ownership(mut self, owned: Subscriber) -> Self {
        self.held = vec![None; self.slots.len()];
        self.owned = Some(owned);
        self.refresh_ownership();
        self
    }

    /// Follow what this replica holds now: a partition newly held (or held
    /// again under a new epoch: someone else may have had it meanwhile) has its
    /// index read at once; one no longer held is forgotten and not scanned.
    fn refresh_ownership(&mut self) {
        let Some(rx) = self.owned.as_ref() else {
            return;
        };
        let owned = rx.current();
        let now = Instant::now();
        let flow = owned.0.len().max(1);
        let (mut gained, mut lost) = (0usize, 0usize);
        for (i, held) in self.held.iter_mut().enumerate() {
            let epoch = owned.epoch(i % flow, now);
            if epoch == *held {
                continue;
            }
            if epoch.is_some() {
                gained += 1;
            } else {
                lost += 1;
            }
            *held = epoch;
            self.slots[i] = Slot {
                next_due: None,
                dirty: epoch.is_some(),
            };
        }
        if gained + lost > 0 {
            tracing::info!(
                scanner = self.spec.name,
                gained,
                lost,
                "owned partitions changed"
            );
        }
    }

    fn is_held(&self, slot: usize) -> bool {
        self.held[slot].is_some()
    }

    /// The earliest local expiry among the leases held (ownership on only).
    fn ownership_expiry(&self) -> Option<Instant> {
        let rx = self.owned.as_ref()?;
        let now = Instant::now();
        let owned = rx.current();
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

    fn has_work(&self) -> bool {
        if self.spec.work.is_sweep() {
            return self
                .last_sweep
                .is_none_or(|t| t.elapsed() >= self.spec.interval);
        }
        let now = self.server_now();
        self.slots
            .iter()
            .enumerate()
            .any(|(i, s)| self.is_held(i) && (s.dirty || s.next_due.is_some_and(|d| d <= now)))
    }

    fn next_wake(&self) -> Instant {
        // A lease lapsing locally (its renewal is late) must stop the scanning.
        let lapse = self.ownership_expiry();
        let interval_end = Instant::now() + self.spec.interval;
        let wake = if self.spec.work.is_sweep() {
            self.last_sweep
                .map_or(Instant::now(), |t| t + self.spec.interval)
        } else if (0..self.slots.len()).any(|i| self.is_held(i) && self.slots[i].dirty) {
            Instant::now()
        } else {
            let earliest = (0..self.slots.len())
                .filter(|&i| self.is_held(i))
                .filter_map(|i| self.slots[i].next_due)
                .min();
            earliest.map_or(interval_end, |d| self.instant_at(d).min(interval_end))
        };
        lapse.map_or(wake, |l| wake.min(l))
    }

    /// Look at a partition again soon, not at once: a store that keeps
    /// failing must not make the runner spin.
    fn retry_soon(&mut self, slot: usize, now: u64) {
        let at = now + (self.spec.interval.as_millis() as u64).clamp(1, RETRY_AFTER_ERROR_MS);
        let s = &mut self.slots[slot];
        // A known due time still ahead stays if it is sooner; a past one is spent.
        s.next_due = Some(match s.next_due {
            Some(d) if d > now => d.min(at),
            _ => at,
        });
    }

    fn mark_all_dirty(&mut self) {
        for (s, held) in self.slots.iter_mut().zip(&self.held) {
            s.dirty = held.is_some();
        }
        self.last_rescan = Instant::now();
    }

    fn on_wake(&mut self, w: Wake) {
        match w {
            // Another replica's partition: its owner got the same message.
            Wake::At { partition, .. }
                if !self
                    .held
                    .get(partition as usize)
                    .is_some_and(Option::is_some) => {}
            Wake::At { partition, due_ms } => {
                if let Some(s) = self.slots.get_mut(partition as usize) {
                    s.next_due = Some(s.next_due.map_or(due_ms, |d| d.min(due_ms)));
                }
            }
            Wake::Rescan => self.mark_all_dirty(),
            Wake::Changed => {
                for (s, held) in self.slots.iter_mut().zip(&self.held) {
                    s.dirty |= held.is_some() && s.next_due.is_some();
                }
            }
        }
    }

    /// Run until shutdown is signalled or the engine is dropped.
    pub(crate) async fn run(
        mut self,
        mut wakes: Option<&mut UnboundedReceiver<Wake>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        tracing::info!(scanner = self.spec.name, interval = ?self.spec.interval, partitions = self.partitions.len(), "scanner started");
        // Due times are server times: the server's clock is read before
        // anything is judged due (a runner the shared rescan tells its heads
        // has no read of its own to make until one is due, and with the clock
        // unread every due time seemed decades away). A failed read pauses.
        while !*shutdown.borrow() && self.refresh_clock().await.is_none() {}
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.refresh_ownership();
            if self.own_rescan && self.last_rescan.elapsed() >= self.rescan {
                self.mark_all_dirty();
            }
            // Wake-ups queued meanwhile (a burst of announcements) join one cycle.
            if let Some(rx) = wakes.as_mut() {
                while let Ok(w) = rx.try_recv() {
                    self.on_wake(w);
                }
            }
            if self.has_work() {
                let span = tracing::info_span!("scanner_cycle", scanner = self.spec.name);
                match self.spec.work {
                    ScanWork::Batch(f) if f.is_sweep() => self.sweep(f).instrument(span).await,
                    ScanWork::Batch(f) => self.cycle(f).instrument(span).await,
                    ScanWork::Admission(a) => self.admission_cycle(a).instrument(span).await,
                }
                continue;
            }
            let wake_at = self.next_wake();
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

    /// Act on the results of one round of batch calls; returns the slots to
    /// run again at once.
    fn absorb(
        &mut self,
        f: BatchFunction,
        now: u64,
        work: &[Work],
        results: Vec<Result<BatchOutcome, String>>,
    ) -> (Vec<usize>, Vec<Work>) {
        let mut again = Vec::new();
        let mut split = Vec::new();
        for ((slot, ids, more), r) in work.iter().zip(results) {
            match r {
                Ok(out) => {
                    let m = &self.metrics;
                    ScannerMetrics::add(&m.acted, out.acted as u64);
                    ScannerMetrics::add(&m.repaired, out.repaired as u64);
                    ScannerMetrics::add(&m.malformed, out.malformed as u64);
                    let exceptions: std::collections::HashMap<&str, &ItemResult> = out
                        .exceptions
                        .iter()
                        .map(|(id, r)| (id.as_str(), r))
                        .collect();
                    let done = ItemResult::Done;
                    let results = ids.iter().map(|id| {
                        (
                            id.as_str(),
                            exceptions.get(id.as_str()).copied().unwrap_or(&done),
                        )
                    });
                    let entered = scan::record_results(&mut self.tracker, results);
                    let failed = out
                        .exceptions
                        .iter()
                        .filter(|(_, r)| matches!(r, ItemResult::Failed(_)))
                        .count();
                    if failed > 0 {
                        ScannerMetrics::add(&m.errors, failed as u64);
                        tracing::warn!(
                            scanner = self.spec.name,
                            failed,
                            entered_backoff = entered,
                            "members failed"
                        );
                        // Failed members are still due: try them again next cycle.
                        self.retry_soon(*slot, now);
                    }
                    if out.malformed > 0 {
                        tracing::warn!(
                            scanner = self.spec.name,
                            malformed = out.malformed,
                            "malformed index entries removed"
                        );
                    }
                    if let (Some(d), false) = (out.next_due_ms, f.is_sweep()) {
                        if d > now {
                            let s = &mut self.slots[*slot];
                            s.next_due = Some(s.next_due.map_or(d, |x| x.min(d)));
                        }
                    }
                    if *more {
                        again.push(*slot);
                    }
                }
                Err(e) => {
                    ScannerMetrics::add(&self.metrics.errors, 1);
                    tracing::warn!(scanner = self.spec.name, partition = self.partitions[*slot].index, error = %e, batch = ids.len(), "batch call failed");
                    if ids.len() > 1 {
                        // Find the member at fault: retry each on its own.
                        split.push((*slot, ids.clone(), *more));
                    } else {
                        for id in ids {
                            self.tracker.record_failure(id);
                        }
                        self.retry_soon(*slot, now);
                    }
                }
            }
        }
        (again, split)
    }

    async fn call_all(&self, f: BatchFunction, work: &[Work]) -> Vec<Result<BatchOutcome, String>> {
        let calls: Vec<Call> = work
            .iter()
            .map(|(slot, ids, _)| contract::batch(f, self.partitions[*slot], &self.filter, ids))
            .collect();
        self.store
            .fcall_many(&calls)
            .await
            .into_iter()
            .map(|r| decode(f, r))
            .collect()
    }

    /// Carry out `work`, splitting failed batches into single-member calls.
    async fn execute(&mut self, f: BatchFunction, now: u64, work: Vec<Work>) -> Vec<usize> {
        let results = self.call_all(f, &work).await;
        let (mut again, split) = self.absorb(f, now, &work, results);
        if !split.is_empty() {
            // The rest of a split partition is still due: keep it in the loop.
            again.extend(
                split
                    .iter()
                    .filter(|(_, _, more)| *more)
                    .map(|(slot, _, _)| *slot),
            );
            let singles: Vec<Work> = split
                .into_iter()
                .flat_map(|(slot, ids, _)| ids.into_iter().map(move |id| (slot, vec![id], false)))
                .collect();
            let results = self.call_all(f, &singles).await;
            self.absorb(f, now, &singles, results);
        }
        again
    }

    /// One cycle of a due-index scanner.
    async fn cycle(&mut self, f: BatchFunction) {
        let started = Instant::now();
        let Some(now) = self.refresh_clock().await else {
            return;
        };
        self.tracker.advance_cycle();
        ScannerMetrics::add(&self.metrics.cycles, 1);
        let mut selected: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                self.is_held(i)
                    && (self.slots[i].dirty || self.slots[i].next_due.is_some_and(|d| d <= now))
            })
            .collect();
        let (acted_before, mut backlog, mut first) = (self.metrics.acted.load(Relaxed), 0u64, true);
        while !selected.is_empty() {
            // A long drain re-checks ownership between rounds: a partition
            // lost meanwhile is left to its new owner.
            self.refresh_ownership();
            selected.retain(|&i| self.is_held(i));
            let limit = scan::read_limit(self.batch, &self.tracker);
            let reads: Vec<Vec<Vec<u8>>> = selected
                .iter()
                .map(|&i| read_due(f, self.partitions[i], limit))
                .collect();
            let replies = self.store.command_many(&reads).await;
            let mut work = Vec::new();
            for (&i, reply) in selected.iter().zip(replies) {
                let members = match reply
                    .map_err(|e| e.to_string())
                    .and_then(|r| parse_members(&r))
                {
                    Ok(m) => m,
                    Err(e) => {
                        ScannerMetrics::add(&self.metrics.errors, 1);
                        tracing::warn!(scanner = self.spec.name, partition = self.partitions[i].index, error = %e, "snapshot read failed");
                        self.slots[i].dirty = false;
                        self.retry_soon(i, now);
                        continue;
                    }
                };
                let plan = scan::plan(
                    &Snapshot {
                        now_ms: now,
                        members,
                        limit,
                    },
                    &self.tracker,
                    self.batch,
                );
                let slot = &mut self.slots[i];
                slot.dirty = false;
                slot.next_due = plan.next_due_ms;
                if first {
                    backlog += plan.due as u64;
                    ScannerMetrics::add(&self.metrics.skipped, plan.skipped as u64);
                }
                if !plan.act.is_empty() {
                    work.push((i, plan.act, plan.again));
                }
            }
            first = false;
            selected = if work.is_empty() {
                Vec::new()
            } else {
                self.execute(f, now, work).await
            };
        }
        self.finish_cycle(started, backlog, acted_before);
    }

    /// One cycle of an admission scanner over the partitions due (all held
    /// ones for a sweep). Until admission is used in this store, a cycle is
    /// one `EXISTS`.
    async fn admission_cycle(&mut self, scan: AdmissionScan) {
        let started = Instant::now();
        if scan.is_sweep() {
            self.last_sweep = Some(started);
        }
        let Some(now) = self.refresh_clock().await else {
            return;
        };
        ScannerMetrics::add(&self.metrics.cycles, 1);
        let acted_before = self.metrics.acted.load(Relaxed);
        let selected: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                self.is_held(i)
                    && (scan.is_sweep()
                        || self.slots[i].dirty
                        || self.slots[i].next_due.is_some_and(|d| d <= now))
            })
            .collect();
        for &i in &selected {
            self.slots[i] = Slot::default();
        }
        if !self.admission_in_use {
            match admission::in_use(self.store.as_ref()).await {
                Ok(used) => self.admission_in_use = used,
                Err(e) => {
                    ScannerMetrics::add(&self.metrics.errors, 1);
                    tracing::warn!(scanner = self.spec.name, error = %e, "cannot tell whether admission is used");
                    selected.iter().for_each(|&i| self.retry_soon(i, now));
                }
            }
            if !self.admission_in_use {
                self.finish_cycle(started, 0, acted_before);
                return;
            }
        }
        let parts: Vec<Partition> = selected.iter().map(|&i| self.partitions[i]).collect();
        let result = admission::cycle(
            scan,
            &self.store,
            &self.config,
            &parts,
            now,
            self.batch,
            self.spec.interval,
            &mut self.needs,
        )
        .await;
        let backlog = match result {
            Ok(out) => {
                let m = &self.metrics;
                ScannerMetrics::add(&m.acted, out.acted + out.cancelled);
                ScannerMetrics::add(&m.repaired, out.repaired);
                for (k, &i) in selected.iter().enumerate() {
                    let s = &mut self.slots[i];
                    s.next_due = out.next_due[k];
                    s.dirty = out.again[k];
                }
                out.backlog
            }
            Err(e) => {
                ScannerMetrics::add(&self.metrics.errors, 1);
                tracing::warn!(scanner = self.spec.name, partitions = parts.len(), error = %e, "admission cycle failed");
                selected.iter().for_each(|&i| self.retry_soon(i, now));
                0
            }
        };
        self.finish_cycle(started, backlog, acted_before);
    }

    /// One full walk of a sweep scanner's set in every partition.
    async fn sweep(&mut self, f: BatchFunction) {
        let started = Instant::now();
        self.last_sweep = Some(started);
        if self.refresh_clock().await.is_none() {
            return;
        }
        let now = self.server_now();
        self.tracker.advance_cycle();
        ScannerMetrics::add(&self.metrics.cycles, 1);
        let acted_before = self.metrics.acted.load(Relaxed);
        let mut cursors: Vec<(usize, String)> = (0..self.partitions.len())
            .filter(|&i| self.is_held(i))
            .map(|i| (i, "0".to_owned()))
            .collect();
        let mut seen = 0u64;
        while !cursors.is_empty() {
            self.refresh_ownership();
            cursors.retain(|(i, _)| self.is_held(*i));
            let reads: Vec<Vec<Vec<u8>>> = cursors
                .iter()
                .map(|(i, c)| {
                    cmd([
                        "SSCAN",
                        &f.index(&PartitionKeys::new(self.partitions[*i])),
                        c,
                        "COUNT",
                        &self.batch.to_string(),
                    ])
                })
                .collect();
            let replies = self.store.command_many(&reads).await;
            let mut next = Vec::new();
            let mut work = Vec::new();
            for ((i, _), reply) in cursors.iter().zip(replies) {
                match reply
                    .map_err(|e| e.to_string())
                    .and_then(|r| parse_sscan(&r))
                {
                    Ok((cursor, ids)) => {
                        seen += ids.len() as u64;
                        let ids: Vec<String> = ids
                            .into_iter()
                            .filter(|id| !self.tracker.is_skipped(id))
                            .collect();
                        for chunk in ids.chunks(self.batch) {
                            work.push((*i, chunk.to_vec(), false));
                        }
                        if cursor != "0" {
                            next.push((*i, cursor));
                        }
                    }
                    Err(e) => {
                        ScannerMetrics::add(&self.metrics.errors, 1);
                        tracing::warn!(scanner = self.spec.name, partition = self.partitions[*i].index, error = %e, "sweep read failed");
                    }
                }
            }
            if !work.is_empty() {
                self.execute(f, now, work).await;
            }
            cursors = next;
        }
        self.finish_cycle(started, seen, acted_before);
    }

    fn finish_cycle(&self, started: Instant, backlog: u64, acted_before: u64) {
        let m = &self.metrics;
        let micros = started.elapsed().as_micros() as u64;
        m.backlog.store(backlog, Relaxed);
        m.last_cycle_micros.store(micros, Relaxed);
        m.cycle_duration.record_micros(micros);
        let acted = m.acted.load(Relaxed) - acted_before;
        if acted > 0 || backlog > 0 {
            tracing::info!(
                scanner = self.spec.name,
                acted,
                backlog,
                micros,
                "scan cycle"
            );
        } else {
            tracing::debug!(scanner = self.spec.name, micros, "scan cycle: nothing due");
        }
    }
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
