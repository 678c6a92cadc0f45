//! Steps: what is sent, identically, to both sides, how their outcomes are normalised, and the canonical dump
//! compared at the end of a sequence.

use super::*;

#[derive(Debug, Clone)]
pub(crate) enum Step {
    Call(Call),
    Cmd(Vec<Vec<u8>>),
}

pub(crate) type Outcome = Result<Reply, StoreError>;

pub(crate) async fn run_step(store: &dyn Store, step: &Step) -> Outcome {
    match step {
        Step::Call(c) => store.fcall(c).await,
        Step::Cmd(c) => store.command(c).await,
    }
}

/// RedisStore spells an error nested in an array as the driver's Debug text;
/// read the code and detail back out of it.
pub(crate) fn nested_error_text(s: &str) -> String {
    let grab = |from: &str, to: &str| {
        s.find(from)
            .map(|i| &s[i + from.len()..])
            .and_then(|rest| rest.find(to).map(|j| rest[..j].to_owned()))
    };
    if s.starts_with("ServerError(") {
        let code = grab("code: \"", "\"")
            .or_else(|| grab("kind: ", ","))
            .unwrap_or_default();
        let detail = grab("detail: Some(\"", "\")").unwrap_or_default();
        format!("{code} {detail}").trim_end().to_owned()
    } else {
        s.trim_end().to_owned()
    }
}

pub(crate) fn norm_reply(r: &Reply) -> Reply {
    match r {
        Reply::Error(e) => Reply::Error(nested_error_text(e)),
        Reply::Array(items) => Reply::Array(items.iter().map(norm_reply).collect()),
        other => other.clone(),
    }
}

/// The comparable form of an outcome.
pub(crate) fn norm(step: &Step, o: &Outcome) -> Result<Reply, String> {
    match o {
        Ok(r) => {
            let mut r = norm_reply(r);
            // Calls listing a hash or set in the order the store keeps it.
            if let (Step::Call(c), Reply::Array(items)) = (step, &mut r) {
                let unordered = |skip: usize, width: usize, items: &mut Vec<Reply>| {
                    let mut groups: Vec<Vec<Reply>> =
                        items[skip..].chunks(width).map(<[Reply]>::to_vec).collect();
                    groups.sort_by_key(|g| format!("{g:?}"));
                    items.truncate(skip);
                    items.extend(groups.into_iter().flatten());
                };
                if items.first() == Some(&Reply::Int(1)) {
                    match c.function {
                        "ff_budget_get" if items.len() > 2 => unordered(2, 2, items),
                        "ff_workers_live" => unordered(1, 2, items),
                        "ff_quota_reconcile" if items.len() > 3 => unordered(3, 3, items),
                        "ff_get_waitpoint" if items.len() > 2 => unordered(2, 2, items),
                        "ff_flow_get" | "ff_parent_results" if items.len() > 1 => {
                            unordered(1, 2, items)
                        }
                        _ => {}
                    }
                }
                if c.function == "ff_get" && items.len() > 2 && items[0] == Reply::Int(1) {
                    let mut pairs: Vec<Vec<Reply>> =
                        items[2..].chunks(2).map(<[Reply]>::to_vec).collect();
                    pairs.sort_by_key(|p| format!("{:?}", p[0]));
                    items.truncate(2);
                    items.extend(pairs.into_iter().flatten());
                }
            }
            Ok(r)
        }
        Err(StoreError::Server(t)) => Err(format!("server: {}", t.trim_end())),
        Err(StoreError::FunctionNotFound(t)) => Err(format!("function not found: {t}")),
        Err(e) => Err(format!("other: {e}")),
    }
}

/// One key of a dump: name, type, expiry, contents (canonical order).
pub(crate) type DumpEntry = (Vec<u8>, String, i64, Vec<Vec<u8>>);

pub(crate) fn parse_dump(r: &Outcome) -> Result<(u64, Vec<DumpEntry>), String> {
    let Ok(Reply::Array(items)) = r else {
        return Err(format!("dump failed: {r:?}"));
    };
    let secs = items.first().and_then(Reply::int).ok_or("dump: no time")?;
    let micros = items.get(1).and_then(Reply::int).ok_or("dump: no time")?;
    let mut out = Vec::new();
    for e in &items[2..] {
        let Reply::Array(parts) = e else {
            return Err(format!("dump: bad entry {e:?}"));
        };
        let bytes = |r: &Reply| match r {
            Reply::Bulk(b) => b.clone(),
            Reply::Int(i) => i.to_string().into_bytes(),
            other => format!("{other:?}").into_bytes(),
        };
        let key = bytes(&parts[0]);
        let ty = String::from_utf8_lossy(&bytes(&parts[1])).into_owned();
        let exp = parts[2].int().unwrap_or(-99);
        let Reply::Array(data) = &parts[3] else {
            return Err(format!("dump: bad data {e:?}"));
        };
        let mut data: Vec<Vec<u8>> = data.iter().map(bytes).collect();
        match ty.as_str() {
            "hash" => {
                let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = data
                    .chunks(2)
                    .map(|p| (p[0].clone(), p.get(1).cloned().unwrap_or_default()))
                    .collect();
                pairs.sort();
                data = pairs.into_iter().flat_map(|(k, v)| [k, v]).collect();
            }
            "set" => data.sort(),
            _ => {}
        }
        out.push((key, ty, exp, data));
    }
    out.sort();
    Ok((secs as u64 * 1000 + micros as u64 / 1000, out))
}

pub(crate) fn show(e: &DumpEntry) -> String {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    format!(
        "{} ({}, exp {}): {:?}",
        s(&e.0),
        e.1,
        e.2,
        e.3.iter().map(|b| s(b)).collect::<Vec<_>>()
    )
}

pub(crate) fn dump_diff(redis: &[DumpEntry], mem: &[DumpEntry]) -> Option<String> {
    if redis == mem {
        return None;
    }
    let mut out = String::new();
    for e in redis.iter().filter(|e| !mem.contains(e)) {
        out.push_str(&format!("\n  redis : {}", show(e)));
    }
    for e in mem.iter().filter(|e| !redis.contains(e)) {
        out.push_str(&format!("\n  memory: {}", show(e)));
    }
    Some(out)
}

/// When the server's dump judged expiry: a function sees keys as of its
/// start, a little before it read TIME, so a key the server still listed
/// although its expiry had passed by that TIME says the start was earlier.
pub(crate) fn dump_time(at: u64, redis: &[DumpEntry]) -> u64 {
    redis
        .iter()
        .filter_map(|e| u64::try_from(e.2).ok())
        .filter(|&exp| exp < at)
        .fold(at, u64::min)
}

/// The dumps agree, but for expiries off by at most `slack` ms: returns the
/// keys whose expiry differs, with the server's.
pub(crate) fn dump_match(
    redis: &[DumpEntry],
    mem: &[DumpEntry],
    slack: u64,
) -> Result<Vec<(Vec<u8>, i64)>, String> {
    let differ = || dump_diff(redis, mem).unwrap_or_default();
    if redis.len() != mem.len() {
        return Err(differ());
    }
    let mut fix = Vec::new();
    for (r, m) in redis.iter().zip(mem) {
        if r.0 != m.0 || r.1 != m.1 || r.3 != m.3 {
            return Err(differ());
        }
        if r.2 != m.2 {
            if r.2 >= 0 && m.2 >= 0 && (r.2 - m.2).unsigned_abs() <= slack {
                fix.push((r.0.clone(), r.2));
            } else {
                return Err(differ());
            }
        }
    }
    Ok(fix)
}

pub(crate) fn dump_call() -> Call {
    Call::new("difftest_dump", vec![]).read_only()
}
