//! The checks after every step: messages parse (rule 2), and the store's
//! records, indexes and flows (rules 3 to 5).

use super::*;

impl Run {
    pub(crate) fn check_messages(&mut self) {
        let mut got = Vec::new();
        for (rx, wake) in [(&mut self.wake, true), (&mut self.ready, false)] {
            while let Some(ev) = rx() {
                if let SubEvent::Message(m) = ev {
                    got.push((wake, m));
                }
            }
        }
        if !self.tainted.is_empty() {
            return;
        }
        for (wake, m) in got {
            let ok = if wake {
                WakeMessage::parse(&m).is_some()
            } else {
                ReadyMessage::parse(&m).is_some()
            };
            if !ok {
                self.finding(format!(
                    "unparsable {} message {:?}",
                    if wake { "wake" } else { "ready" },
                    String::from_utf8_lossy(&m)
                ));
            }
        }
    }

    /// Read everything and check the invariants (see the module doc).
    pub(crate) fn check_store(&mut self) {
        let read = |parts: &[&str]| -> Reply {
            block_on(self.store.command(&cmd(parts.iter().copied())))
                .unwrap_or_else(|e| self.finding(format!("{parts:?}: {e}")))
        };
        let mut records = BTreeMap::new();
        let mut zsets: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut alls: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        // Indexes of other things than executions (flow_work, flows).
        let mut others: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut problems = Vec::new();
        let hash = |k: &str| -> BTreeMap<String, String> {
            texts(&read(&["HGETALL", k]))
                .chunks(2)
                .filter(|p| p.len() == 2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect()
        };
        for k in texts(&read(&["KEYS", "*"])) {
            let ty = read(&["TYPE", &k]);
            let ty = match &ty {
                Reply::Status(s) => s.as_str(),
                _ => "",
            };
            if let Some(eid) = k.strip_prefix("ff:exec:") {
                if ty != "hash" {
                    continue; // only a raw write could make it
                }
                let Reply::Array(flat) = read(&["HGETALL", &k]) else {
                    continue;
                };
                let m: BTreeMap<String, Vec<u8>> = flat
                    .chunks(2)
                    .filter(|p| p.len() == 2)
                    .filter_map(|p| match (&p[0], &p[1]) {
                        (Reply::Bulk(f), Reply::Bulk(v)) => {
                            Some((String::from_utf8_lossy(f).into_owned(), v.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                match ExecutionRecord::from_hash(eid, &m, 0) {
                    Ok(rec) => {
                        records.insert(eid.to_owned(), rec);
                    }
                    Err(e) => {
                        problems.push((eid.to_owned(), format!("{k}: malformed record: {e}")))
                    }
                }
            } else if k.starts_with("ff:idx:{fp:") && ty == "set" {
                alls.insert(
                    k.clone(),
                    texts(&read(&["SMEMBERS", &k])).into_iter().collect(),
                );
            } else if k.starts_with("ff:idx:") && ty == "zset" && !holds_executions(&k) {
                others.insert(k.clone(), texts(&read(&["ZRANGE", &k, "0", "-1"])));
            } else if k.starts_with("ff:idx:") && ty == "zset" {
                let flat = texts(&read(&["ZRANGE", &k, "0", "-1", "WITHSCORES"]));
                let members = flat
                    .chunks(2)
                    .filter(|p| p.len() == 2)
                    .map(|p| (p[0].clone(), p[1].parse::<f64>().unwrap_or(-1.0) as u64))
                    .collect();
                zsets.insert(k.clone(), members);
            } else if let Some(eid) = k.strip_prefix("ff:deps:").filter(|_| ty == "hash") {
                let m = hash(&k);
                let (n, s, i) = (count(&m, "#n"), count(&m, "#s"), count(&m, "#i"));
                if n < 0 || s < 0 || i < 0 || s + i > n {
                    problems.push((eid.to_owned(), format!("{k}: #n {n}, #s {s}, #i {i}")));
                }
            } else if k.starts_with("ff:flow:") && !k.ends_with(":members") && ty == "hash" {
                let p = hash_tag(&k)
                    .and_then(|t| t.strip_prefix("{fp:")?.strip_suffix('}')?.parse().ok());
                if p.is_some_and(|p| self.partition_tainted(p)) {
                    continue;
                }
                let m = hash(&k);
                let (n, done) = (count(&m, "n"), count(&m, "done"));
                let outcomes: i64 = ["success", "failed", "cancelled", "expired", "skipped"]
                    .iter()
                    .map(|o| count(&m, o))
                    .sum();
                if n < 0 || done < 0 || done > n || outcomes != done {
                    problems.push((
                        String::new(),
                        format!("{k}: n {n}, done {done}, outcomes sum to {outcomes}: {m:?}"),
                    ));
                }
            }
        }
        for p in 0..PARTITIONS {
            let key = PartitionKeys::new(partition(p as u8)).flow_work();
            for item in others.get(&key).into_iter().flatten() {
                let ok = match item.split_at_checked(2) {
                    Some(("d:" | "x:", eid)) => {
                        ExecutionId::parse(eid).is_ok_and(|e| e.partition_index() == p)
                    }
                    Some(("f:", flow)) => FlowId::parse(flow).is_ok(),
                    _ => false,
                };
                if !ok {
                    problems.push((String::new(), format!("{key} holds {item:?}")));
                }
            }
        }
        for v in index_violations(&records, &zsets, &alls) {
            problems.push((v.member, v.message));
        }
        let now = self.store.now_ms();
        for (eid, before) in &self.seen {
            if records.contains_key(eid) {
                continue;
            }
            let purgeable = before.public_state.is_terminal()
                && before.ended_at_ms.unwrap_or(0) + before.retention_ms <= now;
            if !purgeable {
                problems.push((
                    eid.clone(),
                    format!("{eid} ({}) disappeared", before.public_state),
                ));
            }
        }
        self.terminal.retain(|eid, _| records.contains_key(eid));
        for (eid, rec) in &records {
            match self.terminal.get(eid) {
                Some(first) if *first != rec.public_state => problems.push((
                    eid.clone(),
                    format!(
                        "{eid}: terminal state changed from {first} to {}",
                        rec.public_state
                    ),
                )),
                Some(_) => {}
                None if rec.public_state.is_terminal() => {
                    self.terminal.insert(eid.clone(), rec.public_state);
                }
                None => {}
            }
        }
        problems.retain(|(member, _)| !self.tainted.contains(member));
        if !problems.is_empty() {
            let text: Vec<String> = problems.into_iter().map(|(_, p)| p).collect();
            self.finding(format!("invariant violated:\n    {}", text.join("\n    ")));
        }
        self.seen = records;
    }
}

/// The hash tag (`{fp:N}`) in a key or execution id.
pub(crate) fn hash_tag(s: &str) -> Option<&str> {
    let start = s.find('{')?;
    let end = start + s[start..].find('}')?;
    Some(&s[start..=end])
}

/// A count field of a flow or deps hash (absent: 0; not a number: -1, which
/// fails every check).
pub(crate) fn count(m: &BTreeMap<String, String>, field: &str) -> i64 {
    m.get(field).map_or(0, |v| v.parse().unwrap_or(-1))
}
