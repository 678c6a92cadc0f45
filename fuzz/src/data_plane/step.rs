//! One step: each [`Op`] carried out on the store, with the calls the
//! typed builders cannot carry (fenced calls with bad arguments, scanner
//! batches with invalid filters).

use super::*;

impl Run {
    pub(crate) fn step(&mut self, op: &Op) {
        match op {
            Op::Create(c) => {
                let plain;
                let c = match &c.membership {
                    Some(m) if m.place % 4 == 3 => {
                        plain = CreateOp::plain(c.exec, c.membership.clone());
                        &plain
                    }
                    _ => c,
                };
                self.fcall(&create_call(c));
            }
            Op::Claim {
                partition: p,
                lane,
                worker,
                instance,
                ttl_ms,
                count,
            } => {
                let n = count % 6;
                let lane = lane.render();
                let key = format!(
                    "ff:idx:{}:eligible:{}",
                    partition(*p).hash_tag(),
                    String::from_utf8_lossy(&lane)
                );
                let call = Call::new("ff_claim", vec![key])
                    .arg_bytes(&lane)
                    .arg_bytes(&worker.render())
                    .arg_bytes(&instance.render())
                    .arg_bytes(&ttl_ms.render())
                    .arg(n)
                    .arg(self.fresh_lease_id());
                self.fcall(&call);
            }
            Op::Renew { lease, ttl_ms } => {
                let lease = self.lease(lease);
                let call = match ttl_ms.as_u64() {
                    Some(ttl) => ex::renew(&lease, ttl),
                    None => fenced("ff_renew", &lease).arg_bytes(&ttl_ms.render()),
                };
                self.fcall(&call);
            }
            Op::Complete { lease, result } => {
                let lease = self.lease(lease);
                self.fcall(&ex::complete(&lease, &result.bytes()));
            }
            Op::Fail {
                lease,
                error,
                retryable,
            } => {
                let lease = self.lease(lease);
                let call = match (std::str::from_utf8(&error.0), retryable.as_u64()) {
                    (Ok(e), Some(r @ (0 | 1))) => ex::fail(&lease, e, r == 1),
                    _ => fenced("ff_fail", &lease)
                        .arg_bytes(&error.0)
                        .arg_bytes(&retryable.render()),
                };
                self.fcall(&call);
            }
            Op::Delay { lease, delay_ms } => {
                let lease = self.lease(lease);
                let call = match delay_ms.as_u64() {
                    Some(d) => ex::delay(&lease, d),
                    None => fenced("ff_delay", &lease).arg_bytes(&delay_ms.render()),
                };
                self.fcall(&call);
            }
            Op::Release { lease } => {
                let lease = self.lease(lease);
                self.fcall(&ex::release(&lease));
            }
            Op::Cancel { exec, reason } => {
                let eid = exec_id(*exec);
                let call = match std::str::from_utf8(&reason.0) {
                    Ok(r) => ex::cancel(&eid, r),
                    Err(_) => Call::new("ff_cancel", vec![keys::exec(&eid)])
                        .arg(&eid)
                        .arg_bytes(&reason.0),
                };
                self.fcall(&call);
            }
            Op::Get { exec } => self.fcall(&ex::get(&exec_id(*exec))),
            Op::Scan {
                function,
                partition: p,
                filter,
                ids,
            } => {
                let f = BatchFunction::ALL[usize::from(*function) % BatchFunction::ALL.len()];
                let ids: Vec<String> = ids.0.iter().map(Member::render).collect();
                self.fcall(&batch_call(f, partition(*p), filter, &ids));
            }
            Op::ScanDue {
                function,
                partition: p,
                filter,
                batch,
            } => {
                let f = BatchFunction::ALL[usize::from(*function) % BatchFunction::ALL.len()];
                let limit = (usize::from(*batch) % 8 + 1).to_string();
                let key = f.index(&PartitionKeys::new(partition(*p)));
                let now = self.store.now_ms().to_string();
                let read = if f.is_sweep() {
                    self.command(&[b"SMEMBERS", key.as_bytes()]).map(|r| {
                        texts(&r)
                            .into_iter()
                            .take(usize::from(*batch) % 8 + 1)
                            .collect()
                    })
                } else {
                    self.command(&[
                        b"ZRANGEBYSCORE",
                        key.as_bytes(),
                        b"-inf",
                        now.as_bytes(),
                        b"LIMIT",
                        b"0",
                        limit.as_bytes(),
                    ])
                    .map(|r| texts(&r))
                };
                let ids: Vec<String> = match read {
                    Ok(ids) => ids,
                    Err(e) => self.finding(format!("reading {key}: {e}")),
                };
                self.fcall(&batch_call(f, partition(*p), filter, &ids));
            }
            Op::HSet { exec, field, value } => {
                let eid = exec_id(*exec);
                self.corrupt(
                    &[
                        b"HSET",
                        keys::exec(&eid).as_bytes(),
                        &field.render(),
                        &value.render(),
                    ],
                    eid.to_string(),
                    true,
                );
            }
            Op::HDel { exec, field } => {
                let eid = exec_id(*exec);
                self.corrupt(
                    &[b"HDEL", keys::exec(&eid).as_bytes(), &field.render()],
                    eid.to_string(),
                    true,
                );
            }
            Op::Del { exec } => {
                let eid = exec_id(*exec);
                self.corrupt(
                    &[b"DEL", keys::exec(&eid).as_bytes()],
                    eid.to_string(),
                    true,
                );
            }
            // Corruption keeps each key's type (a ZADD could otherwise make
            // `all` a sorted set, which no function is meant to survive): on
            // `all`, ZADD and ZREM act as SADD and SREM.
            Op::ZAdd {
                partition: p,
                index: IndexSel::All,
                member,
                ..
            }
            | Op::SAdd {
                partition: p,
                member,
            } => {
                let m = member.render();
                let key = PartitionKeys::new(partition(*p)).all();
                self.corrupt(&[b"SADD", key.as_bytes(), m.as_bytes()], m.clone(), false);
            }
            Op::ZRem {
                partition: p,
                index: IndexSel::All,
                member,
            }
            | Op::SRem {
                partition: p,
                member,
            } => {
                let m = member.render();
                let key = PartitionKeys::new(partition(*p)).all();
                self.corrupt(&[b"SREM", key.as_bytes(), m.as_bytes()], m.clone(), false);
            }
            Op::ZAdd {
                partition: p,
                index,
                member,
                score,
            } => {
                let m = member.render();
                self.corrupt(
                    &[
                        b"ZADD",
                        index.key(*p).as_bytes(),
                        &score.render(),
                        m.as_bytes(),
                    ],
                    m.clone(),
                    false,
                );
            }
            Op::ZRem {
                partition: p,
                index,
                member,
            } => {
                let m = member.render();
                self.corrupt(
                    &[b"ZREM", index.key(*p).as_bytes(), m.as_bytes()],
                    m.clone(),
                    false,
                );
            }
            Op::Advance { ms } => {
                let ms = match ms {
                    Num::Any(v) => v % (1 << 32),
                    other => other.as_u64().unwrap_or(0).min(1 << 32),
                };
                self.store.advance_clock(ms);
                self.log.push(format!("advance {ms} ms"));
            }
            Op::Raw {
                function,
                keys: ks,
                args,
            } => {
                let function = FUNCTIONS[usize::from(*function) % FUNCTIONS.len()];
                let keys = ks.0.iter().map(|k| self.key(k)).collect();
                let mut call = Call::new(function, keys);
                for a in &args.0 {
                    call = call.arg_bytes(&self.arg(a));
                }
                self.fcall(&call);
            }
            Op::CreateFlow { flow, namespace } => {
                let flow = flow_id(*flow);
                let call = Call::new("ff_create_flow", vec![flow_keys(&flow).flow()])
                    .arg(&flow)
                    .arg_bytes(&namespace.render());
                self.fcall(&call);
            }
            Op::AddEdge {
                flow: f,
                parent,
                child,
                pass_data,
                twist,
            } => {
                let flow = flow_id(*f);
                let fk = flow_keys(&flow);
                let p = flow_partition(&flow, &config()).index;
                // Two distinct executions of the partition (the child named as
                // an offset from the parent), unless twist says otherwise.
                let per = (EXECS / PARTITIONS as usize) as u8;
                let mut a = fl::EdgeArgs {
                    flow: flow.clone(),
                    parent: local_exec(*parent, p),
                    child: local_exec(parent % per + 1 + child % (per - 1), p),
                    pass_data: *pass_data,
                };
                let mut key = fk.flow();
                let mut data = u8::from(*pass_data).to_string();
                match twist % 8 {
                    0 => a.parent = exec_id(*parent),
                    1 => a.child = exec_id(*child),
                    2 => a.child = a.parent.clone(),
                    3 => data = "2".to_owned(),
                    4 => key = flow_keys(&flow_id(f.wrapping_add(1))).flow(),
                    _ => {}
                }
                let call = Call::new("ff_add_edge", vec![key])
                    .arg(&a.flow)
                    .arg(&a.parent)
                    .arg(&a.child)
                    .arg(data);
                self.fcall(&call);
            }
            Op::CancelFlow { flow, reason } => {
                let flow = flow_id(*flow);
                let fk = flow_keys(&flow);
                let call = match std::str::from_utf8(&reason.0) {
                    Ok(r) => fl::cancel_flow(&fk, &flow, r),
                    Err(_) => Call::new("ff_cancel_flow", vec![fk.flow()])
                        .arg(&flow)
                        .arg_bytes(&reason.0),
                };
                self.fcall(&call);
            }
            Op::Drain {
                partition: p,
                budget,
            } => {
                let call = match budget.as_u64() {
                    Some(b) if b <= 1 << 20 => fl::drain(partition(*p), b as usize),
                    _ => Call::new(
                        "ff_flow_drain",
                        vec![PartitionKeys::new(partition(*p)).flow_work()],
                    )
                    .arg_bytes(&budget.render()),
                };
                self.fcall(&call);
            }
            Op::GetFlow { flow } => {
                let flow = flow_id(*flow);
                self.fcall(&fl::get_flow(&flow_keys(&flow), &flow));
            }
            Op::CreateMany(cs) => {
                let Some(first) = cs.0.first() else { return };
                let all = PartitionKeys::new(exec_id(first.exec).partition()).all();
                // Each creation as its own shape (its ff_create ARGV without
                // the id and the payload), so malformed ones stay malformed.
                let mut call = Call::new("ff_create_many", vec![all])
                    .arg(cs.0.len())
                    .arg(cs.0.len());
                let mut tail = Vec::new();
                for (i, c) in cs.0.iter().enumerate() {
                    let one = create_call(c);
                    let idem = one.keys.get(1).cloned().unwrap_or_default();
                    let mut one = one.args.into_iter();
                    let eid = one.next().unwrap_or_default();
                    let mut shape: Vec<Vec<u8>> = one.by_ref().take(4).collect();
                    let payload = one.next().unwrap_or_default();
                    shape.extend(one);
                    call = call.arg(shape.len());
                    call.args.extend(shape);
                    tail.extend([
                        (i + 1).to_string().into_bytes(),
                        eid,
                        payload,
                        idem.into_bytes(),
                    ]);
                }
                call.args.extend(tail);
                self.fcall(&call);
            }
            Op::EndMany(items) => {
                let Some(first) = items.0.first() else { return };
                let key = PartitionKeys::of(&self.lease(&first.lease).execution).lease_expiry();
                let mut call = Call::new("ff_end_many", vec![key]).arg(items.0.len());
                for ReportOp { lease, how, text } in &items.0 {
                    let lease = self.lease(lease);
                    let op = ["complete", "fail", "fail", "explode"][usize::from(how % 4)];
                    call = call
                        .arg(op)
                        .arg(&lease.execution)
                        .arg(&lease.id)
                        .arg(lease.epoch)
                        .arg_bytes(&text.0)
                        .arg(u8::from(how % 4 == 1));
                }
                self.fcall(&call);
            }
        }
        self.check_messages();
        self.check_store();
    }

    pub(crate) fn key(&self, k: &Key) -> String {
        match k {
            Key::Exec(i) => keys::exec(&exec_id(*i)),
            Key::Index(p, idx) => idx.key(*p),
            Key::Idempotency(p, t) => format!("ff:idem:{}:{}", partition(*p).hash_tag(), t.lossy()),
            Key::Raw(t) => t.lossy(),
            Key::Flow(f) => flow_keys(&flow_id(*f)).flow(),
            Key::Budget(i) => budget_key(&config(), &budget_name(*i)),
            Key::Quota(i) => quota_key(&config(), &quota_name(*i)),
            Key::Workers => ad::WORKERS.to_owned(),
            Key::Blocked(p, r) => ad::BlockReason::ALL
                [usize::from(*r) % ad::BlockReason::ALL.len()]
            .index(partition(*p)),
        }
    }

    pub(crate) fn arg(&self, a: &Arg) -> Vec<u8> {
        match a {
            Arg::Exec(i) => exec_id(*i).to_string().into_bytes(),
            Arg::LeaseId(l) => self.lease(l).id.as_str().as_bytes().to_vec(),
            Arg::Epoch(l) => self.lease(l).epoch.to_string().into_bytes(),
            Arg::Name(n) => n.render(),
            Arg::Num(n) => n.render(),
            Arg::Text(t) => t.0.clone(),
            Arg::Flow(f) => flow_id(*f).to_string().into_bytes(),
            Arg::Budget(i) => budget_name(*i).as_str().as_bytes().to_vec(),
            Arg::Quota(i) => quota_name(*i).as_str().as_bytes().to_vec(),
        }
    }
}

/// A fenced call's KEYS and first three ARGV, for arguments the contract's
/// typed builders cannot carry.
pub(crate) fn fenced(function: &'static str, lease: &Lease) -> Call {
    Call::new(function, vec![keys::exec(&lease.execution)])
        .arg(&lease.execution)
        .arg(&lease.id)
        .arg(lease.epoch)
}

/// [`ff_core::contract::scan::batch`], with filter names that need not be valid.
pub(crate) fn batch_call(f: BatchFunction, p: Partition, filter: &Filter, ids: &[String]) -> Call {
    let keys = PartitionKeys::new(p);
    let (tag_name, tag_value) = match &filter.tag {
        Some((n, v)) => (n.render(), v.0.clone()),
        None => (Vec::new(), Vec::new()),
    };
    let mut call = Call::new(f.function(), vec![f.index(&keys)])
        .arg_bytes(&filter.namespace.as_ref().map_or(Vec::new(), Name::render))
        .arg_bytes(&tag_name)
        .arg_bytes(&tag_value);
    for id in ids {
        call = call.arg(id);
    }
    call
}
