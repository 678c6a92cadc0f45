//! The run: its state (leases, corruption and taint, what was seen), and
//! one FCALL with its answer checked, raw writes, taint.

use super::*;

/// A subscription's receiver, polled without a runtime.
pub(crate) type Inbox = Box<dyn FnMut() -> Option<SubEvent>>;

/// What the calls of one run answered, by function: successes, refusals and
/// raised errors (the seeds' tests check they reach the paths they mean to).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub ok: BTreeMap<&'static str, u32>,
    pub refused: BTreeMap<String, u32>,
    pub raised: u32,
}

pub(crate) struct Run {
    pub(crate) store: MemoryStore,
    pub(crate) wake: Inbox,
    pub(crate) ready: Inbox,
    pub(crate) stats: Stats,
    pub(crate) leases: Vec<Lease>,
    pub(crate) next_lease: u128,
    /// Executions whose record the input wrote to directly.
    pub(crate) corrupted: BTreeSet<String>,
    /// Members whose record or index entries the input wrote to directly.
    pub(crate) tainted: BTreeSet<String>,
    /// Records at the last look.
    pub(crate) seen: BTreeMap<String, ExecutionRecord>,
    /// The first terminal state seen of each execution, while it exists.
    pub(crate) terminal: BTreeMap<String, PublicState>,
    pub(crate) log: Vec<String>,
}

impl Run {
    pub(crate) fn new() -> Self {
        let store = MemoryStore::with_clock(Arc::new(|| START_MS));
        let inbox = |channel: &str| -> Inbox {
            let mut rx = block_on(store.subscribe(channel)).expect("subscribe");
            Box::new(move || rx.try_recv().ok())
        };
        Self {
            wake: inbox(WakeMessage::CHANNEL),
            ready: inbox(ReadyMessage::CHANNEL),
            store,
            stats: Stats::default(),
            leases: Vec::new(),
            next_lease: 0,
            corrupted: BTreeSet::new(),
            tainted: BTreeSet::new(),
            seen: BTreeMap::new(),
            terminal: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    #[track_caller]
    pub(crate) fn finding(&self, what: String) -> ! {
        panic!(
            "data_plane finding: {what}\nsteps so far:\n  {}",
            self.log.join("\n  ")
        );
    }

    pub(crate) fn command(&self, parts: &[&[u8]]) -> Result<Reply, StoreError> {
        block_on(
            self.store
                .command(&parts.iter().map(|p| p.to_vec()).collect::<Vec<_>>()),
        )
    }

    pub(crate) fn lease(&self, sel: &LeaseSel) -> Lease {
        let mut lease = if self.leases.is_empty() {
            Lease {
                execution: exec_id(sel.index),
                id: LeaseId::from_u128(1),
                epoch: 1,
            }
        } else {
            self.leases[usize::from(sel.index) % self.leases.len()].clone()
        };
        match sel.tweak % 4 {
            1 => lease.epoch += 1,
            2 => {
                let v = u128::from_str_radix(lease.id.as_str(), 16).unwrap_or(0);
                lease.id = LeaseId::from_u128(v.wrapping_add(0x1000));
            }
            3 => lease.epoch = 0,
            _ => {}
        }
        lease
    }

    pub(crate) fn fresh_lease_id(&mut self) -> String {
        self.next_lease += 1;
        format!("{:032x}", self.next_lease)
    }

    /// Run one FCALL and check its answer (see the module doc).
    pub(crate) fn fcall(&mut self, call: &Call) {
        // The records the call reads, for the exception of per-execution calls.
        let mut reads: Vec<String> = Vec::new();
        if let Some(eid) = call.keys.first().and_then(|k| k.strip_prefix("ff:exec:")) {
            reads.push(eid.to_owned());
        }
        if call.function == "ff_create" {
            if let Some(idem) = call.keys.get(1) {
                if let Ok(r) = self.command(&[b"GET", idem.as_bytes()]) {
                    reads.extend(r.text());
                }
            }
        }
        if call.function == "ff_create_many" {
            // (shape, eid, payload, idempotency record) per creation, after
            // the shapes: a duplicate reads the execution its record names.
            let n = call.args.len();
            let count = call.args.first().and_then(|a| std::str::from_utf8(a).ok());
            let count = count.and_then(|c| c.parse::<usize>().ok()).unwrap_or(0);
            for idem in call
                .args
                .iter()
                .skip(n.saturating_sub(4 * count) + 3)
                .step_by(4)
            {
                if !idem.is_empty() {
                    if let Ok(r) = self.command(&[b"GET", idem]) {
                        reads.extend(r.text());
                    }
                }
            }
        }
        if call.function == "ff_end_many" {
            // (op, eid, lease, epoch, text, flag) per report
            reads.extend(
                call.args
                    .iter()
                    .skip(2)
                    .step_by(6)
                    .map(|a| String::from_utf8_lossy(a).into_owned()),
            );
        }
        if call.function == "ff_add_edge" {
            // The parent and the child.
            reads.extend(
                call.args
                    .iter()
                    .skip(1)
                    .take(2)
                    .map(|a| String::from_utf8_lossy(a).into_owned()),
            );
        }
        let tag = call
            .keys
            .first()
            .and_then(|k| hash_tag(k))
            .map(str::to_owned);
        let trusted_corrupt = (per_execution(call.function)
            && reads.iter().any(|e| self.corrupted.contains(e)))
            || tag.as_deref().is_some_and(|t| self.flow_corrupted(t));
        let result = block_on(self.store.fcall(call));
        self.log.push(format!(
            "{} {:?} {:?} -> {}",
            call.function,
            call.keys,
            call.args
                .iter()
                .map(|a| String::from_utf8_lossy(&a[..a.len().min(80)]).into_owned())
                .collect::<Vec<_>>(),
            match &result {
                Ok(r) => format!("{r:?}").chars().take(300).collect::<String>(),
                Err(e) => format!("error {e}"),
            }
        ));
        match &result {
            Ok(Reply::Array(v)) if v.first() == Some(&Reply::Int(0)) => {
                let code = v.get(1).and_then(Reply::text).unwrap_or_default();
                *self
                    .stats
                    .refused
                    .entry(format!("{} {code}", call.function))
                    .or_default() += 1;
            }
            Ok(_) => *self.stats.ok.entry(call.function).or_default() += 1,
            Err(_) => self.stats.raised += 1,
        }
        match result {
            Ok(reply) => match decode(call, &reply) {
                Ok(leases) => {
                    if let Some(leases) = leases {
                        if leases.len() > called_claim(call).1 {
                            self.finding(format!("claim handed out {} leases", leases.len()));
                        }
                        self.leases.extend(leases);
                    }
                }
                Err(CallError::Rejected(FfError::Other { code, detail })) => self.finding(format!(
                    "{} refused with an unknown code {code:?} ({detail:?})",
                    call.function
                )),
                Err(CallError::Rejected(_)) => {}
                Err(CallError::Decode(e)) if !trusted_corrupt => {
                    self.finding(format!("{}: reply does not decode: {e}", call.function))
                }
                Err(CallError::Decode(_)) => self.taint_partition(tag.as_deref()),
            },
            Err(StoreError::Server(e)) if !trusted_corrupt => {
                self.finding(format!("{} raised: {e}", call.function))
            }
            Err(StoreError::Server(_)) => self.taint_partition(tag.as_deref()),
            Err(e) => self.finding(format!("{}: store error {e}", call.function)),
        }
    }

    /// Is a corrupted execution of partition `tag` tied to a flow (a member,
    /// or has edges)? Then flow cascades may reach its record from any call.
    pub(crate) fn flow_corrupted(&self, tag: &str) -> bool {
        self.corrupted.iter().any(|eid| {
            hash_tag(eid) == Some(tag)
                && [
                    vec![b"EXISTS".to_vec(), format!("ff:deps:{eid}").into_bytes()],
                    vec![b"EXISTS".to_vec(), format!("ff:out:{eid}").into_bytes()],
                    vec![
                        b"HEXISTS".to_vec(),
                        format!("ff:exec:{eid}").into_bytes(),
                        b"flow".to_vec(),
                    ],
                ]
                .iter()
                .any(|c| matches!(block_on(self.store.command(c)), Ok(Reply::Int(1))))
        })
    }

    /// A call raised or answered garbage on corrupted data: the writes it made
    /// before may have touched any execution of its partition.
    pub(crate) fn taint_partition(&mut self, tag: Option<&str>) {
        let Some(tag) = tag else { return };
        for i in 0..EXECS as u8 {
            let eid = exec_id(i).to_string();
            if hash_tag(&eid) == Some(tag) {
                self.tainted.insert(eid);
            }
        }
    }

    /// Does the input's tainting reach partition `p`'s flows?
    pub(crate) fn partition_tainted(&self, p: u16) -> bool {
        (0..EXECS as u8)
            .map(exec_id)
            .any(|e| e.partition_index() == p && self.tainted.contains(e.as_str()))
    }

    /// A raw write; its result does not matter (it may well be an error).
    pub(crate) fn corrupt(&mut self, parts: &[&[u8]], member: String, record: bool) {
        let r = self.command(parts);
        self.log.push(format!(
            "{:?} -> {r:?}",
            parts
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect::<Vec<_>>()
        ));
        if record {
            self.corrupted.insert(member.clone());
        }
        self.tainted.insert(member);
    }
}
