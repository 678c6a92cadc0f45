//! Operations into calls: how each [`Op`] becomes the identical calls sent
//! to both sides (leases, tokens, create arguments, admission calls, scanner
//! looks).

use super::*;

impl Run<'_> {
    pub(crate) fn lease(&self, i: usize) -> Lease {
        if self.leases.is_empty() {
            Lease {
                execution: exec_id(i),
                id: LeaseId::from_u128(0xbad),
                epoch: 1,
            }
        } else {
            self.leases[i % self.leases.len()].clone()
        }
    }

    pub(crate) fn suspend_args(
        &self,
        lease: usize,
        wps: &[usize],
        condition: usize,
        timeout_ms: u64,
        behaviour: usize,
    ) -> SuspendArgs {
        let names = |v: &[&str]| v.iter().map(|n| SignalName::new(*n).unwrap()).collect();
        let mut ids: Vec<WaitpointId> = wps.iter().map(|w| wp_id(*w)).collect();
        ids.dedup();
        SuspendArgs {
            lease: self.lease(lease),
            waitpoints: ids,
            condition: match condition {
                0 => ResumeCondition::any(),
                1 => ResumeCondition::Count(2),
                2 => ResumeCondition::AnyOf(names(&["b", "c"])),
                3 => ResumeCondition::AllOf(names(&["a", "b"])),
                _ => ResumeCondition::Count(0),
            },
            timeout_ms,
            on_timeout: [
                TimeoutBehaviour::Fail,
                TimeoutBehaviour::Cancel,
                TimeoutBehaviour::Expire,
                TimeoutBehaviour::Resume,
            ][behaviour % 4],
        }
    }

    pub(crate) fn token(&self, exec: usize, wp: usize, how: usize) -> WaitpointToken {
        let forged = || WaitpointToken::parse(&format!("k0.{}", "0".repeat(64))).unwrap();
        match how {
            0 => self.tokens.get(&(exec, wp)).cloned().unwrap_or_else(forged),
            1 => self.tokens.get(&(exec, wp)).map_or_else(forged, |t| {
                let s = t.expose();
                WaitpointToken::parse(&format!(
                    "{}{}",
                    &s[..s.len() - 1],
                    if s.ends_with('0') { '1' } else { '0' }
                ))
                .unwrap()
            }),
            _ => self
                .tokens
                .get(&(exec, (wp + 1) % WAITPOINTS))
                .cloned()
                .unwrap_or_else(forged),
        }
    }

    pub(crate) fn index_key(&self, exec: usize, index: Index, foreign: bool) -> String {
        let p = if foreign { exec + 1 } else { exec };
        let pk = PartitionKeys::new(partition(p));
        match index {
            Index::Delayed => pk.delayed(),
            Index::LeaseExpiry => pk.lease_expiry(),
            Index::AttemptTimeout => pk.attempt_timeout(),
            Index::Deadline => pk.deadline(),
            Index::Terminal => pk.terminal(),
            Index::SuspensionTimeout => pk.suspension_timeout(),
            Index::Eligible(l) => pk.eligible(&Lane::new(LANES[l]).unwrap()),
        }
    }

    pub(crate) fn create_call(&self, c: &CreateOp) -> Call {
        ex::create(&self.create_args(c))
    }

    pub(crate) fn create_args(&self, c: &CreateOp) -> CreateArgs {
        let ns = Namespace::new(["ns1", "ns2"][c.ns]).unwrap();
        let (max, kind, a, b) = c.retry;
        let retry = if kind % 2 == 0 {
            RetryPolicy::fixed(max, a)
        } else {
            RetryPolicy::exponential(max, a, a + b)
        }
        .jitter([Jitter::None, Jitter::Full, Jitter::Equal][kind as usize / 2]);
        CreateArgs {
            execution: exec_id(c.exec),
            namespace: ns,
            lane: Lane::new(LANES[c.lane]).unwrap(),
            kind: Kind::new("job").unwrap(),
            priority: c.priority,
            payload: c.payload.clone(),
            delay_ms: c.delay_ms,
            attempt_timeout_ms: c.attempt_timeout_ms,
            deadline_ms: c.deadline_ms,
            retry,
            max_reclaims: c.max_reclaims,
            retention_ms: c.retention_ms,
            idempotency: c
                .idempotency
                .map(|(k, ttl)| (IdempotencyKey::new(format!("k{k}")).unwrap(), ttl)),
            tags: c
                .tag
                .map(|v| (TagName::new("t").unwrap(), ["a", "b"][v].to_owned()))
                .into_iter()
                .collect(),
            // (the flow of the member's partition, sometimes the other one)
            flow: c.flow.map(|(f, join, cancel_remaining)| Membership {
                flow: flow_id(if f == 0 { 1 - c.exec % 2 } else { c.exec % 2 }),
                join: [
                    JoinPolicy::AllOf,
                    JoinPolicy::AnyOf,
                    JoinPolicy::Quorum(1),
                    JoinPolicy::Quorum(2),
                ][join],
                cancel_remaining,
            }),
            // Every third execution draws on a budget, a quota or needs a capability.
            admission: match c.exec % 9 {
                0 => Admission::parse("b0;;").unwrap(),
                3 => Admission::parse(";q0,q1;").unwrap(),
                6 => Admission::parse("b1;q0;gpu").unwrap(),
                _ => Admission::default(),
            },
        }
    }

    /// One call of lua/admission.lua.
    pub(crate) fn admission_call(&self, what: usize, target: usize, n: u64) -> Call {
        let cfg = config();
        let b = BudgetId::parse(["b0", "b1"][target % 2]).unwrap();
        let q = QuotaId::parse(["q0", "q1"][target % 2]).unwrap();
        let lease = self.lease(target);
        let reason = [BlockReason::Budget, BlockReason::Quota, BlockReason::Route][n as usize % 3];
        match what {
            0 => ad::define_quota(
                &cfg,
                &q,
                &QuotaLimits {
                    window_ms: [1, 5, 60_000][n as usize % 3],
                    max_per_window: n % 3,
                    concurrency: n % 4 / 2,
                },
            ),
            1 => ad::admit(&cfg, &q, &lease),
            2 => ad::release_slot(&cfg, &q, &lease.execution, lease.epoch, n % 2 == 0),
            3 => ad::define_budget(
                &cfg,
                &b,
                &BudgetDef {
                    limits: [(
                        "tokens".to_owned(),
                        DimensionLimits {
                            hard: n % 4,
                            soft: 1,
                        },
                    )]
                    .into(),
                    reset_every_ms: [0, 3, 60_000][n as usize % 3],
                    on_breach: [ad::BreachPolicy::Block, ad::BreachPolicy::Cancel]
                        [n as usize / 3 % 2],
                },
            ),
            4 => ad::report_usage(
                &cfg,
                &b,
                &UsageReport {
                    execution: exec_id(target),
                    attempt: 1,
                    seq: n % 3 + 1,
                    deltas: vec![("tokens".to_owned(), n)],
                },
            ),
            5 if n % 3 == 2 => ad::cancel_for_breach(&lease, &b),
            5 => ad::block(
                &lease,
                [BlockReason::Budget, BlockReason::Quota][n as usize % 2],
                "x",
            ),
            6 => ad::unblock(
                partition(target),
                reason,
                &[exec_id(target), exec_id(target + 1)],
            ),
            // (a few reset ids: some resets repeat the last one)
            7 => ad::reset_budget(&cfg, &b, u128::from(n % 3)),
            8 => ad::budget_resets(budget_partition(&cfg, &b), 10),
            9 => ad::budget_reconcile(budget_partition(&cfg, &b), "0", 1000),
            10 => ad::quota_reconcile(quota_partition(&cfg, &q), "0", 1000),
            11 => ad::block_route(&exec_id(target)),
            12 => ad::register_worker(
                ["wa", "wb"][target % 2],
                100 + n,
                &[["gpu", "ssd"][n as usize % 2].to_owned()],
            ),
            13 => ad::live_workers(),
            14 => ad::get_budget(&cfg, &b),
            15 => ff_engine::core::contract::scan::partition_heads(partition(target)),
            17 => ad::watch_quota(&cfg, &q),
            16 => ad::breach_cancel(
                partition(target),
                reason,
                &b,
                &[exec_id(target), exec_id(target + 1)],
            ),
            _ => ad::get_quota(&cfg, &q),
        }
    }

    pub(crate) async fn scan_step(
        &mut self,
        function: usize,
        p: usize,
        filter: usize,
        batch: usize,
    ) -> Result<Step, TestCaseError> {
        let f = BatchFunction::ALL[function % BatchFunction::ALL.len()];
        let partition = partition(p);
        let key = f.index(&PartitionKeys::new(partition));
        let ids: Vec<String> = if f.is_sweep() {
            // SSCAN pages differ (hash order on the server): read all, sorted.
            let r = self
                .read_both(Step::Cmd(cmd(["SMEMBERS", key.as_str()])))
                .await?;
            let mut ids: Vec<String> = match r {
                Ok(Reply::Array(v)) => v.iter().filter_map(Reply::text).collect(),
                _ => Vec::new(),
            };
            ids.sort();
            ids.truncate(batch);
            ids
        } else {
            let (now, _) = self.redis_time().await;
            let r = self
                .read_both(Step::Cmd(cmd([
                    "ZRANGEBYSCORE",
                    key.as_str(),
                    "-inf",
                    "+inf",
                    "WITHSCORES",
                    "LIMIT",
                    "0",
                    &batch.to_string(),
                ])))
                .await?;
            let members = match r {
                Ok(Reply::Array(v)) => v
                    .chunks(2)
                    .filter_map(|p| {
                        let id = p[0].text()?;
                        let score: f64 = p.get(1)?.text()?.parse().ok()?;
                        Some(Member {
                            id,
                            score: if score <= 0.0 { 0 } else { score as u64 },
                        })
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let snap = Snapshot {
                now_ms: now,
                members,
                limit: batch,
            };
            plan(&snap, &FailureTracker::default(), batch).act
        };
        let filter = match filter {
            0 => ScannerFilter::default(),
            1 => ScannerFilter {
                namespace: Some(Namespace::new("ns1").unwrap()),
                instance_tag: None,
            },
            _ => ScannerFilter {
                namespace: None,
                instance_tag: Some((TagName::new("t").unwrap(), "a".into())),
            },
        };
        Ok(Step::Call(sc::batch(f, partition, &filter, &ids)))
    }

    pub(crate) async fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.log.push(format!("{op:?}"));
        let step = match op {
            Op::Sleep { ms } => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                return Ok(());
            }
            Op::Create(c) => Step::Call(self.create_call(c)),
            Op::CreateMany(cs) => {
                let args: Vec<CreateArgs> = cs.iter().map(|c| self.create_args(c)).collect();
                Step::Call(ex::create_many(args[0].execution.partition(), &args))
            }
            Op::EndMany(items) => {
                let reports: Vec<Report> = items
                    .iter()
                    .map(|&(lease, how)| {
                        let lease = self.lease(lease);
                        match how {
                            0 => Report::Complete {
                                lease,
                                result: b"r".to_vec(),
                            },
                            n => Report::Fail {
                                lease,
                                error: "boom".into(),
                                retryable: n == 1,
                            },
                        }
                    })
                    .collect();
                Step::Call(ex::end_many(
                    reports[0].lease().execution.partition(),
                    &reports,
                ))
            }
            Op::Claim {
                partition: p,
                lane,
                n,
                ttl_ms,
            } => {
                self.next_lease += 1;
                let lease_id = LeaseId::from_u128(0x0001_ea5e_0000 + self.next_lease);
                self.claim = (lease_id.clone(), *n);
                Step::Call(ex::claim(&ClaimArgs {
                    partition: partition(*p),
                    lane: Lane::new(LANES[*lane]).unwrap(),
                    worker: WorkerName::new("w").unwrap(),
                    instance: WorkerInstance::new("i1").unwrap(),
                    lease_ttl_ms: *ttl_ms,
                    max: *n,
                    lease_id,
                    capabilities: if *n == 3 {
                        vec!["gpu".into()]
                    } else {
                        Vec::new()
                    },
                    // Now and then past the first entries (as after skipped ones).
                    skip: u32::from(*ttl_ms == 100 && *n == 2),
                }))
            }
            Op::Renew { lease, ttl_ms } => Step::Call(ex::renew(&self.lease(*lease), *ttl_ms)),
            Op::Complete { lease, result } => Step::Call(ex::complete(&self.lease(*lease), result)),
            Op::Fail { lease, retryable } => {
                Step::Call(ex::fail(&self.lease(*lease), "boom", *retryable))
            }
            Op::Delay { lease, delay_ms } => Step::Call(ex::delay(&self.lease(*lease), *delay_ms)),
            Op::Release { lease } => Step::Call(ex::release(&self.lease(*lease))),
            Op::Cancel { exec } => Step::Call(ex::cancel(&exec_id(*exec), "stop")),
            Op::Get { exec } => Step::Call(ex::get(&exec_id(*exec))),
            Op::ParentResults { exec } => Step::Call(fl::parent_results(&exec_id(*exec))),
            Op::CreateFlow { flow } => {
                let f = flow_id(*flow);
                Step::Call(fl::create_flow(
                    &FlowKeys::new(&f, &config()),
                    &f,
                    &Namespace::new("ns1").unwrap(),
                ))
            }
            Op::AddEdge {
                flow,
                parent,
                child,
                data,
            } => {
                let f = flow_id(*flow);
                Step::Call(fl::add_edge(
                    &FlowKeys::new(&f, &config()),
                    &fl::EdgeArgs {
                        flow: f.clone(),
                        parent: exec_id(*parent),
                        child: exec_id(*child),
                        pass_data: *data,
                    },
                ))
            }
            Op::AddToFlow {
                flow,
                exec,
                join,
                parents,
            } => {
                let f = flow_id(*flow);
                let join = [JoinPolicy::AllOf, JoinPolicy::AnyOf, JoinPolicy::Quorum(2)][*join];
                let mut args = fl::AddToFlowArgs::new(&f, &exec_id(*exec)).join(join);
                for (p, d) in parents {
                    args = args.parent(&exec_id(*p), *d);
                }
                Step::Call(fl::add_execution_to_flow(
                    &FlowKeys::new(&f, &config()),
                    &args,
                ))
            }
            Op::FlowMembers {
                flow,
                offset,
                limit,
            } => {
                let f = flow_id(*flow);
                Step::Call(fl::flow_members(
                    &FlowKeys::new(&f, &config()),
                    &f,
                    *offset,
                    *limit,
                ))
            }
            Op::CancelFlow { flow } => {
                let f = flow_id(*flow);
                Step::Call(fl::cancel_flow(&FlowKeys::new(&f, &config()), &f, "halt"))
            }
            Op::Drain {
                partition: p,
                budget,
            } => Step::Call(fl::drain(partition(*p), *budget)),
            Op::Scan {
                function,
                partition,
                filter,
                batch,
            } => {
                self.scan_step(*function, *partition, *filter, *batch)
                    .await?
            }
            Op::ZAdd {
                exec,
                index,
                score,
                foreign,
            } => Step::Cmd(cmd([
                "ZADD",
                &self.index_key(*exec, *index, *foreign),
                score,
                exec_id(*exec).as_str(),
            ])),
            Op::ZRem { exec, index } => Step::Cmd(cmd([
                "ZREM",
                &self.index_key(*exec, *index, false),
                exec_id(*exec).as_str(),
            ])),
            Op::HSet { exec, field, value } => {
                Step::Cmd(cmd(["HSET", &keys::exec(&exec_id(*exec)), field, value]))
            }
            Op::SAdd { exec, garbage } => {
                let pk = PartitionKeys::of(&exec_id(*exec));
                let member = if *garbage {
                    "garbage".to_owned()
                } else {
                    exec_id(*exec).to_string()
                };
                Step::Cmd(cmd(["SADD", &pk.all(), &member]))
            }
            Op::SRem { exec } => {
                let pk = PartitionKeys::of(&exec_id(*exec));
                Step::Cmd(cmd(["SREM", &pk.all(), exec_id(*exec).as_str()]))
            }
            Op::Del { exec } => Step::Cmd(cmd(["DEL", &keys::exec(&exec_id(*exec))])),
            Op::OwnSync {
                member,
                ttl_ms,
                claim,
                release,
            } => Step::Call(own::sync(
                &own::Ring::default(),
                MEMBERS[*member],
                *ttl_ms,
                OWN_PARTITIONS,
                claim,
                release,
            )),
            Op::OwnLeave { member } => {
                Step::Call(own::leave(&own::Ring::default(), MEMBERS[*member]))
            }
            Op::OwnView => Step::Call(own::view(&own::Ring::default())),
            Op::Rotate {
                partition,
                kid,
                secret,
                grace_ms,
            } => Step::Call(rotate_call(*partition, *kid, *secret, *grace_ms)),
            Op::CreateWaitpoint { exec, wp, ttl_ms } => {
                Step::Call(sp::create_waitpoint(&exec_id(*exec), &wp_id(*wp), *ttl_ms))
            }
            Op::Suspend {
                lease,
                wps,
                condition,
                timeout_ms,
                behaviour,
            } => Step::Call(sp::suspend(&self.suspend_args(
                *lease,
                wps,
                *condition,
                *timeout_ms,
                *behaviour,
            ))),
            Op::Signal {
                exec,
                wp,
                token,
                name,
                idempotency,
            } => {
                // A valid token mostly goes where it belongs (the exec and
                // waitpoint then pick one of those handed out).
                let (exec, wp) = match self
                    .tokens
                    .keys()
                    .nth((exec * WAITPOINTS + wp) % self.tokens.len().max(1))
                {
                    Some(k) if *token == 0 => *k,
                    _ => (*exec, *wp),
                };
                Step::Call(sp::signal(&SignalArgs {
                    execution: exec_id(exec),
                    waitpoint: wp_id(wp),
                    token: self.token(exec, wp, *token),
                    name: SignalName::new(["a", "b", "c"][*name]).unwrap(),
                    payload: vec![*name as u8; *name],
                    idempotency: idempotency.map(|k| IdempotencyKey::new(format!("s{k}")).unwrap()),
                }))
            }
            Op::GetWaitpoint { exec, wp } => {
                Step::Call(sp::get_waitpoint(&exec_id(*exec), &wp_id(*wp)))
            }
            Op::ClaimSuspend {
                exec,
                wps,
                condition,
                timeout_ms,
                behaviour,
            } => {
                let create = self.create_call(&CreateOp {
                    exec: *exec,
                    ns: 0,
                    lane: 0,
                    priority: 0,
                    payload: Vec::new(),
                    delay_ms: 0,
                    attempt_timeout_ms: 0,
                    deadline_ms: 0,
                    retry: (0, 0, 0, 1),
                    max_reclaims: 0,
                    retention_ms: 60_000,
                    idempotency: None,
                    tag: None,
                    flow: None,
                });
                let _ = self.step(Step::Call(create)).await?;
                self.next_lease += 1;
                let lease_id = LeaseId::from_u128(0x0001_ea5e_0000 + self.next_lease);
                let claim = Step::Call(ex::claim(&ClaimArgs {
                    partition: partition(*exec),
                    lane: Lane::new(LANES[0]).unwrap(),
                    worker: WorkerName::new("w").unwrap(),
                    instance: WorkerInstance::new("i1").unwrap(),
                    lease_ttl_ms: 30_000,
                    max: 1,
                    lease_id: lease_id.clone(),
                    capabilities: Vec::new(),
                    skip: 0,
                }));
                let got = match self.step(claim).await? {
                    Ok(reply) => ex::decode_claim(&reply, &lease_id, 1).unwrap_or_default(),
                    Err(_) => Vec::new(),
                };
                let Some(c) = got.into_iter().next() else {
                    return Ok(());
                };
                self.leases.push(c.lease);
                let op = Op::Suspend {
                    lease: self.leases.len() - 1,
                    wps: wps.clone(),
                    condition: *condition,
                    timeout_ms: *timeout_ms,
                    behaviour: *behaviour,
                };
                return Box::pin(self.apply(&op)).await;
            }
            Op::Admission { what, target, n } => {
                Step::Call(self.admission_call(*what, *target, *n))
            }
        };
        let r = self.step(step).await?;
        match (op, &r) {
            (Op::CreateWaitpoint { exec, wp, .. }, Ok(reply)) => {
                if let Ok(c) = sp::decode_create_waitpoint(reply) {
                    self.tokens.insert((*exec, *wp), c.token);
                }
            }
            (
                Op::Suspend {
                    lease,
                    wps,
                    condition,
                    timeout_ms,
                    behaviour,
                },
                Ok(reply),
            ) => {
                let args = self.suspend_args(*lease, wps, *condition, *timeout_ms, *behaviour);
                if let Ok(s) = sp::decode_suspend(&args, reply) {
                    let exec = (0..EXECS)
                        .find(|i| exec_id(*i) == args.lease.execution)
                        .unwrap_or(0);
                    for (i, (_, t)) in s.tokens.into_iter().enumerate() {
                        self.tokens.insert((exec, wps[i]), t);
                    }
                }
            }
            _ => {}
        }
        if let (Op::Claim { .. }, Ok(reply)) = (op, &r) {
            if let Ok(claimed) = ex::decode_claim(reply, &self.claim.0, self.claim.1) {
                self.leases.extend(claimed.into_iter().map(|c| c.lease));
            }
        }
        Ok(())
    }
}
