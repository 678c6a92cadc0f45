//! The harness: one server per test, a MemoryStore whose clock follows the
//! server's, every step run on both sides and compared (with the replay when
//! the server's millisecond moved), and one whole sequence.

use super::*;

pub(crate) struct Env {
    pub(crate) redis: Arc<RedisStore>,
    pub(crate) _server: RedisServer,
    pub(crate) rt: tokio::runtime::Runtime,
}

pub(crate) fn env() -> Env {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let redis = rt.block_on(async {
        let s = RedisStore::connect(&[server.url()], RedisStoreOptions::default())
            .await
            .expect("connect");
        s.command(&cmd(["FUNCTION", "LOAD", "REPLACE", DUMP_LIB]))
            .await
            .expect("load the dump function");
        Arc::new(s)
    });
    Env {
        redis,
        _server: server,
        rt,
    }
}

pub(crate) fn memory_store(clock: &Arc<AtomicU64>) -> MemoryStore {
    let c = clock.clone();
    let mem = MemoryStore::with_clock(Arc::new(move || c.load(Ordering::SeqCst)));
    mem.execute(&cmd(["FUNCTION", "LOAD", DUMP_LIB]))
        .expect("load the dump function");
    mem
}

pub(crate) struct Run<'a> {
    pub(crate) redis: &'a RedisStore,
    pub(crate) mem: MemoryStore,
    pub(crate) clock: Arc<AtomicU64>,
    /// Every call and command so far, with the time it ran at.
    pub(crate) history: Vec<(Step, u64)>,
    /// Leases handed out (current and stale ones), from the server's replies.
    pub(crate) leases: Vec<Lease>,
    pub(crate) next_lease: u128,
    /// The lease id and count the last claim sent (its reply hands the id
    /// to each execution it claimed).
    pub(crate) claim: (LeaseId, usize),
    /// Waitpoint tokens handed out, from the server's replies.
    pub(crate) tokens: std::collections::BTreeMap<(usize, usize), WaitpointToken>,
    pub(crate) log: Vec<String>,
}

/// Calls compared, and those during which the server's millisecond moved.
pub(crate) static STEPS: AtomicU64 = AtomicU64::new(0);
pub(crate) static AMBIGUOUS: AtomicU64 = AtomicU64::new(0);
/// What the server answered, by kind (printed with FF_DIFF_STATS=1).
pub(crate) static KINDS: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

pub(crate) fn count_kind(step: &Step, o: &Outcome) {
    let what = match step {
        Step::Call(c) => c.function.to_owned(),
        Step::Cmd(c) => String::from_utf8_lossy(&c[0]).into_owned(),
    };
    let how = match o {
        Ok(Reply::Array(v)) => match (v.first(), v.get(1)) {
            (Some(Reply::Int(0)), Some(code)) => format!(
                "refused {} {}",
                code.text().unwrap_or_default(),
                v.get(2)
                    .and_then(Reply::text)
                    .unwrap_or_default()
                    .split(':')
                    .next()
                    .unwrap_or_default()
            ),
            (Some(Reply::Int(1)), Some(Reply::Int(n))) if what.starts_with("ff_claim") => {
                format!("claimed {n}")
            }
            (Some(Reply::Int(1)), Some(_)) if what == "ff_own_sync" || what == "ff_own_view" => {
                format!(
                    "ok members={} leases={}",
                    v.get(2).and_then(Reply::int).unwrap_or(0),
                    v.len().saturating_sub(
                        3 + 2 * v.get(2).and_then(Reply::int).unwrap_or(0) as usize
                    ) / 4
                )
            }
            (Some(Reply::Int(1)), Some(Reply::Int(n)))
                if what != "ff_get" && what != "ff_renew" =>
            {
                format!(
                    "ok acted={n} repaired={:?} exceptions={}",
                    v.get(2).and_then(Reply::int),
                    v.len().saturating_sub(4) / 2
                )
            }
            (Some(Reply::Int(1)), Some(x)) if what == "ff_get" || what == "ff_renew" => {
                let _ = x;
                "ok".into()
            }
            (Some(Reply::Int(1)), Some(x)) => format!("ok {}", x.text().unwrap_or_default()),
            _ => "array".into(),
        },
        Ok(r) => format!("{r:?}").chars().take(20).collect(),
        Err(e) => format!(
            "error {}",
            e.to_string().chars().take(60).collect::<String>()
        ),
    };
    let mut k = KINDS.lock().unwrap_or_else(|e| e.into_inner());
    *k.entry(format!("{what}: {how}")).or_default() += 1;
}

pub(crate) fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

impl<'a> Run<'a> {
    pub(crate) async fn redis_time(&self) -> (u64, u64) {
        match self.redis.command(&cmd(["TIME"])).await {
            Ok(Reply::Array(v)) if v.len() == 2 => {
                let s = v[0].int().unwrap_or(0) as u64;
                let us = v[1].int().unwrap_or(0) as u64;
                (s * 1000 + us / 1000, us % 1000)
            }
            other => panic!("TIME answered {other:?}"),
        }
    }

    /// The server's ms, early enough in it that a call fits before the next.
    pub(crate) async fn fresh_ms(&self) -> u64 {
        loop {
            let (ms, us) = self.redis_time().await;
            if us < 600 {
                return ms;
            }
        }
    }

    pub(crate) async fn redis_dump(&self) -> Result<(u64, Vec<DumpEntry>), String> {
        parse_dump(&self.redis.fcall(&dump_call()).await)
    }

    pub(crate) async fn mem_dump(
        &self,
        mem: &MemoryStore,
        clock: &AtomicU64,
        at: u64,
    ) -> Vec<DumpEntry> {
        clock.store(at, Ordering::SeqCst);
        parse_dump(&mem.fcall(&dump_call()).await)
            .expect("memory dump")
            .1
    }

    /// A read both sides must answer the same (no time involved).
    pub(crate) async fn read_both(&mut self, step: Step) -> Result<Outcome, TestCaseError> {
        let (ms, _) = self.redis_time().await;
        let r = run_step(self.redis, &step).await;
        self.clock.store(ms, Ordering::SeqCst);
        let m = run_step(&self.mem, &step).await;
        self.log.push(format!("  read {step:?}"));
        // Set members come in hash order from the server.
        let sorted = |o: &Outcome| match norm(&step, o) {
            Ok(Reply::Array(mut v)) => {
                v.sort_by_key(|r| format!("{r:?}"));
                Ok(Reply::Array(v))
            }
            other => other,
        };
        if sorted(&r) != sorted(&m) {
            return Err(fail(format!(
                "read {step:?}\n  redis : {r:?}\n  memory: {m:?}"
            )));
        }
        Ok(r)
    }

    /// Run one step on both sides at the same server millisecond; returns the
    /// server's outcome.
    pub(crate) async fn step(&mut self, step: Step) -> Result<Outcome, TestCaseError> {
        STEPS.fetch_add(1, Ordering::Relaxed);
        let t0 = self.fresh_ms().await;
        let r = run_step(self.redis, &step).await;
        let (t1, _) = self.redis_time().await;
        count_kind(&step, &r);
        if let Err(StoreError::Unavailable(e)) = &r {
            panic!("redis unavailable: {e}");
        }
        if t0 == t1 {
            self.clock.store(t0, Ordering::SeqCst);
            let m = run_step(&self.mem, &step).await;
            if norm(&step, &r) != norm(&step, &m) {
                return Err(fail(format!(
                    "{step:?} at {t0}\n  redis : {r:?}\n  memory: {m:?}"
                )));
            }
            self.history.push((step, t0));
            return Ok(r);
        }
        // The server's millisecond moved during the call: find the one it
        // ran at by replaying on fresh stores.
        let (at, redis_dump) = self.redis_dump().await.map_err(fail)?;
        let mut report = String::new();
        AMBIGUOUS.fetch_add(1, Ordering::Relaxed);
        for t in (t0..=t1).rev() {
            let clock = Arc::new(AtomicU64::new(0));
            let mem = memory_store(&clock);
            for (s, when) in &self.history {
                clock.store(*when, Ordering::SeqCst);
                let _ = run_step(&mem, s).await;
            }
            clock.store(t, Ordering::SeqCst);
            let m = run_step(&mem, &step).await;
            let dump = self
                .mem_dump(&mem, &clock, dump_time(at, &redis_dump))
                .await;
            let same_reply = norm(&step, &r) == norm(&step, &m);
            match dump_match(&redis_dump, &dump, t1 - t0) {
                Ok(fix) if same_reply => {
                    self.history.push((step, t));
                    // Inside a function the server reads its clock afresh for
                    // SET … PX, so when its millisecond moved during the call
                    // an expiry may be a little later than the function's
                    // TIME; MemoryStore uses one time per call. Align it.
                    for (key, exp) in fix {
                        let align = Step::Cmd(vec![
                            b"PEXPIREAT".to_vec(),
                            key,
                            exp.to_string().into_bytes(),
                        ]);
                        clock.store(t, Ordering::SeqCst);
                        let _ = run_step(&mem, &align).await;
                        self.history.push((align, t));
                    }
                    self.mem = mem;
                    self.clock = clock;
                    return Ok(r);
                }
                result => {
                    if report.len() < 20_000 {
                        report.push_str(&format!(
                            "\n at {t}: memory {m:?}{}",
                            result.err().unwrap_or_default()
                        ));
                    }
                }
            }
        }
        Err(fail(format!(
            "{step:?} between {t0} and {t1}\n  redis : {r:?}{report}"
        )))
    }
}

pub(crate) async fn run_sequence(redis: &RedisStore, ops: &[Op]) -> Result<(), TestCaseError> {
    redis.command(&cmd(["FLUSHALL"])).await.expect("FLUSHALL");
    let clock = Arc::new(AtomicU64::new(0));
    let mem = memory_store(&clock);
    let mut run = Run {
        redis,
        mem,
        clock,
        history: Vec::new(),
        leases: Vec::new(),
        next_lease: 0,
        claim: (LeaseId::from_u128(0), 0),
        tokens: Default::default(),
        log: Vec::new(),
    };
    // The same start on both sides: what Client::new records.
    let (ms, _) = run.redis_time().await;
    run.clock.store(ms, Ordering::SeqCst);
    let redis_arc: Arc<dyn Store> = Arc::new(redis.clone());
    Client::with_partitions(redis_arc, config())
        .await
        .expect("client on redis");
    Client::with_partitions(Arc::new(run.mem.clone()), config())
        .await
        .expect("client on memory");
    for (k, v) in [
        ("flow_partitions", PARTITIONS.to_string()),
        ("budget_partitions", config().budget_partitions.to_string()),
        ("quota_partitions", config().quota_partitions.to_string()),
    ] {
        run.history
            .push((Step::Cmd(cmd(["HSETNX", keys::CONFIG, k, &v])), ms));
    }
    run.history
        .push((Step::Cmd(cmd(["SADD", keys::LANES, "default"])), ms));
    run.step(Step::Cmd(cmd(["SADD", keys::LANES, "l2"])))
        .await?
        .map_err(|e| fail(format!("SADD: {e}")))?;
    // Mostly a secret from the start (without one, waitpoints are refused).
    if ops.len() % 4 != 0 {
        for p in 0..PARTITIONS as usize {
            run.step(Step::Call(rotate_call(p, 0, 1, 0)))
                .await?
                .map_err(|e| fail(format!("rotate: {e}")))?;
        }
    }

    // Most sequences work with flows that exist (so members and edges land).
    let flows = (0..FLOWS).filter(|_| ops.len() % 5 != 0);
    for (i, op) in flows
        .map(|flow| Op::CreateFlow { flow })
        .chain(ops.iter().cloned())
        .enumerate()
    {
        if let Err(e) = run.apply(&op).await {
            return Err(fail(format!("op #{i}: {e}\nlog:\n{}", run.log.join("\n"))));
        }
    }
    let (at, redis_dump) = run.redis_dump().await.map_err(fail)?;
    let mem_dump = run
        .mem_dump(&run.mem, &run.clock, dump_time(at, &redis_dump))
        .await;
    if let Some(diff) = dump_diff(&redis_dump, &mem_dump) {
        return Err(fail(format!(
            "final dump at {at} differs:{diff}\nlog:\n{}",
            run.log.join("\n")
        )));
    }
    Ok(())
}
