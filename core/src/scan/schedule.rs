//! One scanner's schedule as a plain value, in quinn-proto's shape: events
//! come in through `handle_*` (wake-ups, ownership, replies), what to do goes
//! out through [`Schedule::poll_reads`] / [`Schedule::poll_calls`], and when to
//! run next through [`Schedule::poll_timeout`]. Time is server milliseconds,
//! always passed in. The shell's runner only carries out what this asks.
//!
//! A cycle: the driver reads the server clock, [`Schedule::begin_cycle`], then
//! alternately sends what `poll_reads` / `poll_calls` return (each one
//! pipelined round) and feeds the replies back, until both are empty; then
//! [`Schedule::end_cycle`] gives what the cycle did.

use super::admission::{AdmissionCycle, AdmissionScan, Needs};
use super::batch::BatchCycle;
use super::fire::FireCycle;
use crate::contract::scan::{BatchFunction, ScannerFilter};
use crate::contract::Call;
use crate::partition::{Partition, PartitionConfig, PartitionFamily};
use crate::reply::Reply;
use crate::tracker::FailureTracker;

/// What a scanner does in a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanWork {
    /// Batch calls of one function on the due members of one index of each
    /// flow partition.
    Batch(BatchFunction),
    /// An admission scanner: partitions of its family, reads on other slots
    /// before single-slot moves.
    Admission(AdmissionScan),
    /// The schedule scanner: due schedules of each flow partition, their
    /// records read and their fires decided here, then one fenced fire call
    /// per partition.
    Schedules,
}

impl ScanWork {
    /// The index it reads, as in wake-up messages and metric labels.
    pub fn index_name(self) -> &'static str {
        match self {
            ScanWork::Batch(f) => f.index_name(),
            ScanWork::Admission(a) => a.index_name(),
            ScanWork::Schedules => "schedules",
        }
    }

    /// Walks every partition each interval rather than following due times.
    pub fn is_sweep(self) -> bool {
        match self {
            ScanWork::Batch(f) => f.is_sweep(),
            ScanWork::Admission(a) => a.is_sweep(),
            ScanWork::Schedules => false,
        }
    }

    /// The partitions it walks.
    pub fn family(self) -> PartitionFamily {
        match self {
            ScanWork::Batch(_) | ScanWork::Schedules => PartitionFamily::Flow,
            ScanWork::Admission(a) => a.family(),
        }
    }
}

/// A nudge from outside the schedule.
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

/// After a failed read or call, a partition is looked at again after at most this.
const RETRY_AFTER_ERROR_MS: u64 = 1_000;

/// What the schedule knows of one partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slot {
    /// Earliest future due time known (server ms).
    pub next_due: Option<u64>,
    /// Must be read at the next cycle whatever `next_due` says.
    pub dirty: bool,
}

/// A scanner's settings, as the schedule needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// What it does.
    pub work: ScanWork,
    /// Its longest sleep (ms).
    pub interval_ms: u64,
    /// Members per batch call (and per read).
    pub batch: usize,
    /// Re-read every partition this often (ms), unless the shared rescan
    /// tells this scanner its heads ([`Schedule::shared_rescan`]).
    pub rescan_ms: u64,
    /// The partition counts.
    pub config: PartitionConfig,
    /// Which executions this engine acts on.
    pub filter: ScannerFilter,
}

/// Something the driver should log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A partition's index read failed (looked at again soon).
    ReadFailed {
        /// The partition.
        partition: u16,
        /// Why.
        error: String,
    },
    /// A batch call failed as a whole (split into single-member calls).
    BatchFailed {
        /// The partition.
        partition: u16,
        /// Why.
        error: String,
        /// Members it carried.
        batch: usize,
    },
    /// Members of successful calls failed.
    MembersFailed {
        /// How many.
        failed: usize,
        /// Of those, how many entered failure backoff.
        entered_backoff: usize,
    },
    /// Malformed index entries found (and removed by the data plane).
    Malformed(u32),
    /// Whether admission is in use could not be read.
    InUseUnknown(String),
    /// An admission cycle failed (its partitions are looked at again soon).
    AdmissionFailed {
        /// Partitions the cycle was given.
        partitions: usize,
        /// Why.
        error: String,
    },
}

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Members acted on (for reconcilers: checked and consistent; for
    /// unblock: unblocked and cancelled).
    pub acted: u64,
    /// Of `acted`, blocked executions cancelled for a breach (unblock).
    pub cancelled: u64,
    /// Index entries or records repaired.
    pub repaired: u64,
    /// Malformed entries found.
    pub malformed: u64,
    /// Due members left aside (failure backoff, another engine's filter).
    pub skipped: u64,
    /// Failed reads, calls and member actions.
    pub errors: u64,
    /// Due members seen at the cycle's first read (what is left to do).
    pub backlog: u64,
    /// What to log.
    pub notices: Vec<Notice>,
}

/// What a cycle wants next.
pub(super) enum Want {
    /// One pipelined round of read commands.
    Reads(Vec<Vec<String>>),
    /// One pipelined round of FCALLs.
    Calls(Vec<Call>),
    /// Nothing more.
    Done,
}

/// Everything but the cycle in progress: what cycles read and update.
pub(super) struct State {
    pub settings: Settings,
    pub partitions: Vec<Partition>,
    pub slots: Vec<Slot>,
    /// Per slot, the lease epoch it is scanned under; `None`: not ours.
    pub held: Vec<Option<u64>>,
    pub tracker: FailureTracker,
    /// Server time of the cycle in progress.
    pub now_ms: u64,
    pub report: CycleReport,
    /// Admission has been used in this store (cached once seen).
    pub admission_in_use: bool,
    /// What blocked executions draw on (the unblock scanner).
    pub needs: Needs,
    /// The schedule scanner's compiled records.
    pub fire_cache: super::fire::FireCache,
}

impl State {
    pub fn is_held(&self, slot: usize) -> bool {
        self.held.get(slot).is_some_and(Option::is_some)
    }

    fn is_due(&self, slot: usize, now: u64) -> bool {
        let s = &self.slots[slot];
        self.is_held(slot) && (s.dirty || s.next_due.is_some_and(|d| d <= now))
    }

    /// Look at a partition again soon, not at once: a store that keeps
    /// failing must not make the runner spin.
    pub fn retry_soon(&mut self, slot: usize) {
        let now = self.now_ms;
        let at = now + self.settings.interval_ms.clamp(1, RETRY_AFTER_ERROR_MS);
        let s = &mut self.slots[slot];
        // A known due time still ahead stays if it is sooner; a past one is spent.
        s.next_due = Some(match s.next_due {
            Some(d) if d > now => d.min(at),
            _ => at,
        });
    }

    pub fn partition(&self, slot: usize) -> Partition {
        self.partitions[slot]
    }
}

enum Cycle {
    Batch(BatchCycle),
    Admission(AdmissionCycle),
    Fire(FireCycle),
}

/// One scanner's schedule: which partitions are due, dirty or held, the
/// failure backoff, and the cycle in progress.
pub struct Schedule {
    st: State,
    own_rescan: bool,
    last_rescan_ms: Option<u64>,
    last_sweep_ms: Option<u64>,
    cycle: Option<Cycle>,
    pending: Option<Want>,
}

impl Schedule {
    /// A schedule with every partition of its family held and to be read.
    pub fn new(settings: Settings) -> Self {
        let partitions: Vec<Partition> =
            settings.config.partitions(settings.work.family()).collect();
        let n = partitions.len();
        Self {
            st: State {
                settings,
                partitions,
                slots: vec![
                    Slot {
                        next_due: None,
                        dirty: true
                    };
                    n
                ],
                held: vec![Some(0); n],
                tracker: FailureTracker::default(),
                now_ms: 0,
                report: CycleReport::default(),
                admission_in_use: false,
                needs: Needs::default(),
                fire_cache: Default::default(),
            },
            own_rescan: true,
            last_rescan_ms: None,
            last_sweep_ms: None,
            cycle: None,
            pending: None,
        }
    }

    /// Leave rescans to the engine's shared one: no own periodic re-read, and
    /// no read at start (the shared rescan's first round tells this schedule
    /// where its due members are).
    pub fn shared_rescan(mut self) -> Self {
        self.own_rescan = false;
        for s in &mut self.st.slots {
            s.dirty = false;
        }
        self
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.st.settings
    }

    /// The partitions it walks, by slot.
    pub fn partitions(&self) -> &[Partition] {
        &self.st.partitions
    }

    /// What it knows of the partition in `slot`.
    pub fn slot(&self, slot: usize) -> Slot {
        self.st.slots[slot]
    }

    /// Per slot, the epoch it is held under (`None`: not held).
    pub fn held(&self) -> &[Option<u64>] {
        &self.st.held
    }

    /// What this replica holds now (per slot, the epoch it holds it under):
    /// a partition newly held (or held again under a new epoch: someone else
    /// may have had it meanwhile) is read at once; one no longer held is
    /// forgotten. Returns how many were gained and lost.
    pub fn handle_ownership(&mut self, held: &[Option<u64>]) -> (usize, usize) {
        let (mut gained, mut lost) = (0, 0);
        for (i, (now, was)) in held.iter().zip(self.st.held.iter_mut()).enumerate() {
            if now == was {
                continue;
            }
            if now.is_some() {
                gained += 1;
            } else {
                lost += 1;
            }
            *was = *now;
            self.st.slots[i] = Slot {
                next_due: None,
                dirty: now.is_some(),
            };
        }
        (gained, lost)
    }

    /// A nudge from the data plane or the engine.
    pub fn handle_wake(&mut self, w: Wake, now_ms: u64) {
        match w {
            Wake::At { partition, due_ms } => {
                // Another replica's partition: its owner got the same message.
                if self.st.is_held(usize::from(partition)) {
                    let s = &mut self.st.slots[usize::from(partition)];
                    s.next_due = Some(s.next_due.map_or(due_ms, |d| d.min(due_ms)));
                }
            }
            Wake::Rescan => self.mark_all_dirty(now_ms),
            Wake::Changed => {
                for (s, held) in self.st.slots.iter_mut().zip(&self.st.held) {
                    s.dirty |= held.is_some() && s.next_due.is_some();
                }
            }
        }
    }

    fn mark_all_dirty(&mut self, now_ms: u64) {
        for (s, held) in self.st.slots.iter_mut().zip(&self.st.held) {
            s.dirty = held.is_some();
        }
        self.last_rescan_ms = Some(now_ms);
    }

    /// When the next cycle should start (server ms; at or before `now_ms`:
    /// at once). A due own rescan marks every held partition for a read.
    /// Periodic work counts from the first call: the first sweep waits one
    /// interval (at start the engine has due work to drain first, and a
    /// sweep then would compete with it).
    pub fn poll_timeout(&mut self, now_ms: u64) -> u64 {
        let interval = self.st.settings.interval_ms;
        let last_rescan = *self.last_rescan_ms.get_or_insert(now_ms);
        if self.own_rescan && now_ms >= last_rescan.saturating_add(self.st.settings.rescan_ms) {
            self.mark_all_dirty(now_ms);
        }
        if self.st.settings.work.is_sweep() {
            return *self.last_sweep_ms.get_or_insert(now_ms) + interval;
        }
        let held = (0..self.st.slots.len()).filter(|&i| self.st.is_held(i));
        let mut earliest: Option<u64> = None;
        for i in held {
            let s = self.st.slots[i];
            if s.dirty {
                return now_ms;
            }
            earliest = match (earliest, s.next_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        super::next_wake(earliest, now_ms, interval)
    }

    /// Reading the server clock failed: a sweep waits its interval again
    /// rather than trying at once.
    pub fn handle_clock_failure(&mut self, now_ms: u64) {
        if self.st.settings.work.is_sweep() {
            self.last_sweep_ms = Some(now_ms);
        }
    }

    /// Start a cycle at server time `now_ms` (just read) over the partitions
    /// that are due, dirty (or, for a sweep, held).
    pub fn begin_cycle(&mut self, now_ms: u64) {
        let st = &mut self.st;
        st.now_ms = now_ms;
        st.report = CycleReport::default();
        self.pending = None;
        let work = st.settings.work;
        if work.is_sweep() {
            self.last_sweep_ms = Some(now_ms);
        }
        let selected: Vec<usize> = (0..st.slots.len())
            .filter(|&i| {
                if work.is_sweep() {
                    st.is_held(i)
                } else {
                    st.is_due(i, now_ms)
                }
            })
            .collect();
        self.cycle = Some(match work {
            ScanWork::Batch(f) => {
                st.tracker.advance_cycle();
                Cycle::Batch(BatchCycle::new(f, selected))
            }
            ScanWork::Admission(scan) => {
                for &i in &selected {
                    st.slots[i] = Slot::default();
                }
                Cycle::Admission(AdmissionCycle::new(scan, st, selected))
            }
            ScanWork::Schedules => {
                st.tracker.advance_cycle();
                Cycle::Fire(FireCycle::new(selected))
            }
        });
    }

    fn pending(&mut self) -> &mut Want {
        if self.pending.is_none() {
            let want = match &mut self.cycle {
                Some(Cycle::Batch(c)) => c.want(&mut self.st),
                Some(Cycle::Admission(c)) => c.want(&mut self.st),
                Some(Cycle::Fire(c)) => c.want(&mut self.st),
                None => Want::Done,
            };
            self.pending = Some(want);
        }
        self.pending.get_or_insert(Want::Done)
    }

    /// The reads to make now, as one pipelined round (empty: none now).
    pub fn poll_reads(&mut self) -> Vec<Vec<String>> {
        match self.pending() {
            Want::Reads(r) => std::mem::take(r),
            _ => Vec::new(),
        }
    }

    /// The FCALLs to make now, as one pipelined round (empty: none now).
    pub fn poll_calls(&mut self) -> Vec<Call> {
        match self.pending() {
            Want::Calls(c) => std::mem::take(c),
            _ => Vec::new(),
        }
    }

    /// The replies to the last [`Schedule::poll_reads`], in order.
    pub fn handle_reads(&mut self, replies: Vec<Result<Reply, String>>) {
        self.feed(replies);
    }

    /// The replies to the last [`Schedule::poll_calls`], in order.
    pub fn handle_results(&mut self, replies: Vec<Result<Reply, String>>) {
        self.feed(replies);
    }

    fn feed(&mut self, replies: Vec<Result<Reply, String>>) {
        self.pending = None;
        match &mut self.cycle {
            Some(Cycle::Batch(c)) => c.feed(&mut self.st, replies),
            Some(Cycle::Admission(c)) => c.feed(&mut self.st, replies),
            Some(Cycle::Fire(c)) => c.feed(&mut self.st, replies),
            None => {}
        }
    }

    /// End the cycle: what it did.
    pub fn end_cycle(&mut self) -> CycleReport {
        self.pending = None;
        if let Some(Cycle::Admission(c)) = self.cycle.take() {
            c.finish(&mut self.st);
        }
        std::mem::take(&mut self.st.report)
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
