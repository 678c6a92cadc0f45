//! Command dispatch: the plain commands MemoryStore answers, with Redis 7.0's
//! arities, options, replies and error texts. FUNCTION / FCALL / FCALL_RO
//! are declared here (for arity and script rules) but run by the store,
//! which owns the Lua engine.

use super::data::{Fields, Keyspace, Value, WRONGTYPE};
use super::glob;
use super::numbers::{fmt_score, parse_f64_loose, parse_f64_strict, parse_i64};
use super::pubsub::PubSub;
use super::zset::{Score, ScoreBound};
use ff_core::reply::Reply;
use std::collections::BTreeMap;

pub const SYNTAX: &str = "ERR syntax error";
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const NOT_FLOAT: &str = "ERR value is not a valid float";

/// What the command table knows about a command.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Lower-case name, as Redis spells it in errors.
    pub name: &'static str,
    /// Redis arity: `n` exactly n arguments (with the name), `-n` at least n.
    pub arity: i32,
    /// Writes (or may replicate): refused in read-only scripts.
    pub write: bool,
    /// Not callable from scripts (the commands the store runs itself:
    /// FUNCTION, FCALL, FCALL_RO).
    pub noscript: bool,
}

const fn spec(name: &'static str, arity: i32, write: bool) -> Spec {
    Spec {
        name,
        arity,
        write,
        noscript: false,
    }
}

const fn engine(name: &'static str, arity: i32) -> Spec {
    Spec {
        name,
        arity,
        write: true,
        noscript: true,
    }
}

const TABLE: &[Spec] = &[
    // keyspace and server
    spec("get", 2, false),
    spec("set", -3, true),
    spec("del", -2, true),
    spec("unlink", -2, true),
    spec("exists", -2, false),
    spec("type", 2, false),
    spec("keys", 2, false),
    spec("dbsize", 1, false),
    spec("flushall", -1, true),
    spec("flushdb", -1, true),
    spec("ping", -1, false),
    spec("echo", 2, false),
    spec("time", 1, false),
    spec("pexpire", -3, true),
    spec("expire", -3, true),
    spec("pexpireat", -3, true),
    spec("expireat", -3, true),
    spec("persist", 2, true),
    spec("pttl", 2, false),
    spec("ttl", 2, false),
    spec("pexpiretime", 2, false),
    spec("expiretime", 2, false),
    spec("incr", 2, true),
    spec("decr", 2, true),
    spec("incrby", 3, true),
    spec("decrby", 3, true),
    // hashes
    spec("hset", -4, true),
    spec("hmset", -4, true),
    spec("hsetnx", 4, true),
    spec("hget", 3, false),
    spec("hmget", -3, false),
    spec("hdel", -3, true),
    spec("hgetall", 2, false),
    spec("hexists", 3, false),
    spec("hlen", 2, false),
    spec("hkeys", 2, false),
    spec("hvals", 2, false),
    spec("hincrby", 4, true),
    // sets
    spec("sadd", -3, true),
    spec("srem", -3, true),
    spec("sismember", 3, false),
    spec("smismember", -3, false),
    spec("smembers", 2, false),
    spec("scard", 2, false),
    spec("sscan", -3, false),
    // sorted sets
    spec("zadd", -4, true),
    spec("zincrby", 4, true),
    spec("zrem", -3, true),
    spec("zscore", 3, false),
    spec("zmscore", -3, false),
    spec("zcard", 2, false),
    spec("zcount", 4, false),
    spec("zremrangebyscore", 4, true),
    spec("zrange", -4, false),
    spec("zrevrange", -4, false),
    spec("zrangebyscore", -4, false),
    spec("zrevrangebyscore", -4, false),
    // pub/sub: may replicate, so a read-only script may not publish
    spec("publish", 3, true),
    // run by the store
    engine("function", -2),
    engine("fcall", -3),
    engine("fcall_ro", -3),
];

pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    let lower = name.to_ascii_lowercase();
    TABLE.iter().find(|s| s.name.as_bytes() == lower.as_slice())
}

pub fn arity_ok(spec: &Spec, argc: usize) -> bool {
    let argc = argc as i64;
    let arity = i64::from(spec.arity);
    if arity > 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

/// Redis's answer to a command it does not know.
pub fn unknown_command(args: &[Vec<u8>]) -> String {
    let name = args.first().map(|a| lossy(a)).unwrap_or_default();
    let mut rest = String::new();
    for a in args.iter().skip(1) {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        let a: String = lossy(a).chars().take(room).collect();
        rest.push_str(&format!("'{a}' "));
    }
    let name: String = name.chars().take(128).collect();
    sanitize(format!(
        "ERR unknown command '{name}', with args beginning with: {rest}"
    ))
}

pub fn wrong_arity(spec: &Spec) -> String {
    format!("ERR wrong number of arguments for '{}' command", spec.name)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Error texts are one line.
pub fn sanitize(s: String) -> String {
    if s.contains(['\r', '\n']) {
        s.replace(['\r', '\n'], " ")
    } else {
        s
    }
}

/// Where a command runs: the keyspace, the time of the call, subscribers
/// (for PUBLISH's count) and the messages to deliver once the call is done.
pub struct Ctx<'a> {
    pub db: &'a mut Keyspace,
    pub now_ms: u64,
    pub pubsub: &'a mut PubSub,
    pub outbox: &'a mut Vec<(Vec<u8>, Vec<u8>)>,
    pub cursors: &'a mut Cursors,
}

/// SSCAN cursors: a cursor names the last member returned, so members
/// removed or added between calls never make a full iteration skip a member
/// that was there throughout (the guarantee Redis gives).
#[derive(Debug, Default)]
pub struct Cursors {
    next_id: u64,
    open: BTreeMap<u64, (Vec<u8>, Vec<u8>)>,
}

impl Cursors {
    const MAX_OPEN: usize = 4096;

    fn open(&mut self, key: &[u8], last: &[u8]) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.open.insert(id, (key.to_vec(), last.to_vec()));
        while self.open.len() > Self::MAX_OPEN {
            self.open.pop_first();
        }
        id
    }

    fn resume(&mut self, id: u64, key: &[u8]) -> Option<Vec<u8>> {
        match self.open.remove(&id) {
            Some((k, last)) if k == key => Some(last),
            _ => None,
        }
    }

    pub fn clear(&mut self) {
        self.open.clear();
    }
}

fn err(s: &str) -> Reply {
    Reply::Error(s.to_owned())
}

fn ok() -> Reply {
    Reply::Status("OK".into())
}

fn bulk(b: &[u8]) -> Reply {
    Reply::Bulk(b.to_vec())
}

fn int(i: usize) -> Reply {
    Reply::Int(i64::try_from(i).unwrap_or(i64::MAX))
}

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// Run one command whose name and arity have been checked.
pub fn execute(ctx: &mut Ctx<'_>, spec: &Spec, args: &[Vec<u8>]) -> Reply {
    let now = ctx.now_ms;
    let a = args;
    match spec.name {
        "get" => match ctx.db.string(&a[1], now) {
            Ok(Some(v)) => bulk(v),
            Ok(None) => Reply::Nil,
            Err(_) => err(WRONGTYPE),
        },
        "set" => set(ctx, a),
        "del" | "unlink" => int(a[1..]
            .iter()
            .filter(|k| ctx.db.remove(k, now).is_some())
            .count()),
        "exists" => int(a[1..].iter().filter(|k| ctx.db.exists(k, now)).count()),
        "type" => Reply::Status(
            ctx.db
                .get(&a[1], now)
                .map_or("none", |e| e.value.type_name())
                .into(),
        ),
        "keys" => Reply::Array(
            ctx.db
                .keys(now)
                .filter(|k| glob::matches(&a[1], k))
                .map(bulk)
                .collect(),
        ),
        "dbsize" => int(ctx.db.len(now)),
        "flushall" | "flushdb" => {
            if a.len() > 2 || (a.len() == 2 && !eq(&a[1], "sync") && !eq(&a[1], "async")) {
                return err(SYNTAX);
            }
            ctx.db.clear();
            ctx.cursors.clear();
            ok()
        }
        "ping" => match a.len() {
            1 => Reply::Status("PONG".into()),
            2 => bulk(&a[1]),
            _ => err(&wrong_arity(spec)),
        },
        "echo" => bulk(&a[1]),
        "time" => {
            let secs = now / 1000;
            let micros = (now % 1000) * 1000;
            Reply::Array(vec![
                bulk(secs.to_string().as_bytes()),
                bulk(micros.to_string().as_bytes()),
            ])
        }
        "pexpire" | "expire" | "pexpireat" | "expireat" => expire(ctx, a, spec.name),
        "persist" => match ctx.db.get_entry_mut(&a[1], now) {
            Some(e) if e.expires_at.is_some() => {
                e.expires_at = None;
                Reply::Int(1)
            }
            _ => Reply::Int(0),
        },
        "pttl" | "ttl" | "pexpiretime" | "expiretime" => match ctx.db.get(&a[1], now) {
            None => Reply::Int(-2),
            Some(e) => match e.expires_at {
                None => Reply::Int(-1),
                Some(t) => {
                    let v = match spec.name {
                        "pttl" => t.saturating_sub(now),
                        "ttl" => (t.saturating_sub(now) + 500) / 1000,
                        "pexpiretime" => t,
                        _ => (t + 500) / 1000,
                    };
                    Reply::Int(i64::try_from(v).unwrap_or(i64::MAX))
                }
            },
        },
        "incr" | "decr" | "incrby" | "decrby" => {
            let by = match spec.name {
                "incr" => 1,
                "decr" => -1,
                _ => match parse_i64(&a[2]) {
                    Some(v) if spec.name == "incrby" => v,
                    Some(v) if v != i64::MIN => -v,
                    Some(_) => return err("ERR decrement would overflow"),
                    None => return err(NOT_INTEGER),
                },
            };
            incr(ctx, &a[1], by)
        }
        "hset" | "hmset" => {
            if a.len() % 2 != 0 {
                return err(&wrong_arity(spec));
            }
            let Ok(h) = ctx.db.hash_mut(&a[1], now) else {
                return err(WRONGTYPE);
            };
            let added = a[2..]
                .chunks(2)
                .filter(|p| h.insert(p[0].clone(), p[1].clone()).is_none())
                .count();
            if spec.name == "hmset" {
                ok()
            } else {
                int(added)
            }
        }
        "hsetnx" => {
            let Ok(h) = ctx.db.hash_mut(&a[1], now) else {
                return err(WRONGTYPE);
            };
            if h.contains_key(&a[2]) {
                Reply::Int(0)
            } else {
                h.insert(a[2].clone(), a[3].clone());
                Reply::Int(1)
            }
        }
        "hget" => match ctx.db.hash(&a[1], now) {
            Ok(h) => h.and_then(|h| h.get(&a[2])).map_or(Reply::Nil, |v| bulk(v)),
            Err(_) => err(WRONGTYPE),
        },
        "hmget" => match ctx.db.hash(&a[1], now) {
            Ok(h) => Reply::Array(
                a[2..]
                    .iter()
                    .map(|f| h.and_then(|h| h.get(f)).map_or(Reply::Nil, |v| bulk(v)))
                    .collect(),
            ),
            Err(_) => err(WRONGTYPE),
        },
        "hdel" => {
            let removed = match ctx.db.hash(&a[1], now) {
                Err(_) => return err(WRONGTYPE),
                Ok(None) => 0,
                Ok(Some(_)) => {
                    let Ok(h) = ctx.db.hash_mut(&a[1], now) else {
                        return err(WRONGTYPE);
                    };
                    a[2..]
                        .iter()
                        .filter(|f| h.shift_remove(*f).is_some())
                        .count()
                }
            };
            ctx.db.drop_if_empty(&a[1]);
            int(removed)
        }
        "hgetall" | "hkeys" | "hvals" => match ctx.db.hash(&a[1], now) {
            Ok(h) => Reply::Array(
                h.into_iter()
                    .flatten()
                    .flat_map(|(k, v)| match spec.name {
                        "hgetall" => vec![bulk(k), bulk(v)],
                        "hkeys" => vec![bulk(k)],
                        _ => vec![bulk(v)],
                    })
                    .collect(),
            ),
            Err(_) => err(WRONGTYPE),
        },
        "hexists" => match ctx.db.hash(&a[1], now) {
            Ok(h) => Reply::Int(h.is_some_and(|h| h.contains_key(&a[2])).into()),
            Err(_) => err(WRONGTYPE),
        },
        "hlen" => match ctx.db.hash(&a[1], now) {
            Ok(h) => int(h.map_or(0, Fields::len)),
            Err(_) => err(WRONGTYPE),
        },
        "hincrby" => {
            let Some(by) = parse_i64(&a[3]) else {
                return err(NOT_INTEGER);
            };
            let cur = match ctx.db.hash(&a[1], now) {
                Err(_) => return err(WRONGTYPE),
                Ok(h) => h.and_then(|h| h.get(&a[2])).cloned(),
            };
            let cur = match cur {
                None => 0,
                Some(v) => match parse_i64(&v) {
                    Some(n) => n,
                    None => return err("ERR hash value is not an integer"),
                },
            };
            let Some(new) = cur.checked_add(by) else {
                return err("ERR increment or decrement would overflow");
            };
            if let Ok(h) = ctx.db.hash_mut(&a[1], now) {
                h.insert(a[2].clone(), new.to_string().into_bytes());
            }
            Reply::Int(new)
        }
        "sadd" => {
            let Ok(s) = ctx.db.set_mut(&a[1], now) else {
                return err(WRONGTYPE);
            };
            int(a[2..].iter().filter(|m| s.insert((*m).clone())).count())
        }
        "srem" => {
            let removed = match ctx.db.set(&a[1], now) {
                Err(_) => return err(WRONGTYPE),
                Ok(None) => 0,
                Ok(Some(_)) => {
                    let Ok(s) = ctx.db.set_mut(&a[1], now) else {
                        return err(WRONGTYPE);
                    };
                    a[2..].iter().filter(|m| s.remove(*m)).count()
                }
            };
            ctx.db.drop_if_empty(&a[1]);
            int(removed)
        }
        "sismember" => match ctx.db.set(&a[1], now) {
            Ok(s) => Reply::Int(s.is_some_and(|s| s.contains(&a[2])).into()),
            Err(_) => err(WRONGTYPE),
        },
        "smismember" => match ctx.db.set(&a[1], now) {
            Ok(s) => Reply::Array(
                a[2..]
                    .iter()
                    .map(|m| Reply::Int(s.is_some_and(|s| s.contains(m)).into()))
                    .collect(),
            ),
            Err(_) => err(WRONGTYPE),
        },
        "smembers" => match ctx.db.set(&a[1], now) {
            Ok(s) => Reply::Array(s.into_iter().flatten().map(|m| bulk(m)).collect()),
            Err(_) => err(WRONGTYPE),
        },
        "scard" => match ctx.db.set(&a[1], now) {
            Ok(s) => int(s.map_or(0, |s| s.len())),
            Err(_) => err(WRONGTYPE),
        },
        "sscan" => sscan(ctx, a),
        "zadd" => zadd(ctx, a),
        "zincrby" => {
            let Some(by) = parse_f64_strict(&a[2]) else {
                return err(NOT_FLOAT);
            };
            zadd_one(ctx, &a[1], &a[3], by, ZaddFlags::incr())
        }
        "zrem" => {
            let removed = match ctx.db.zset(&a[1], now) {
                Err(_) => return err(WRONGTYPE),
                Ok(None) => 0,
                Ok(Some(_)) => {
                    let Ok(z) = ctx.db.zset_mut(&a[1], now) else {
                        return err(WRONGTYPE);
                    };
                    a[2..].iter().filter(|m| z.remove(m)).count()
                }
            };
            ctx.db.drop_if_empty(&a[1]);
            int(removed)
        }
        "zscore" => match ctx.db.zset(&a[1], now) {
            Ok(z) => z
                .and_then(|z| z.score(&a[2]))
                .map_or(Reply::Nil, |s| bulk(fmt_score(s).as_bytes())),
            Err(_) => err(WRONGTYPE),
        },
        "zmscore" => match ctx.db.zset(&a[1], now) {
            Ok(z) => Reply::Array(
                a[2..]
                    .iter()
                    .map(|m| {
                        z.and_then(|z| z.score(m))
                            .map_or(Reply::Nil, |s| bulk(fmt_score(s).as_bytes()))
                    })
                    .collect(),
            ),
            Err(_) => err(WRONGTYPE),
        },
        "zcard" => match ctx.db.zset(&a[1], now) {
            Ok(z) => int(z.map_or(0, |z| z.len())),
            Err(_) => err(WRONGTYPE),
        },
        "zcount" => {
            let Some((min, max)) = score_range(&a[2], &a[3]) else {
                return err("ERR min or max is not a float");
            };
            match ctx.db.zset(&a[1], now) {
                Ok(z) => int(z.map_or(0, |z| z.count_in(min, max))),
                Err(_) => err(WRONGTYPE),
            }
        }
        "zremrangebyscore" => {
            let Some((min, max)) = score_range(&a[2], &a[3]) else {
                return err("ERR min or max is not a float");
            };
            let removed = match ctx.db.zset_mut(&a[1], now) {
                Err(_) => return err(WRONGTYPE),
                Ok(z) => {
                    let gone: Vec<Vec<u8>> = z
                        .range_by_score(min, max, false, 0, None)
                        .into_iter()
                        .map(|(m, _)| m.to_vec())
                        .collect();
                    gone.iter().filter(|m| z.remove(m)).count()
                }
            };
            ctx.db.drop_if_empty(&a[1]);
            int(removed)
        }
        "zrange" => zrange(ctx, a, RangeCmd::Zrange),
        "zrevrange" => zrange(ctx, a, RangeCmd::Zrevrange),
        "zrangebyscore" => zrange(ctx, a, RangeCmd::ByScore),
        "zrevrangebyscore" => zrange(ctx, a, RangeCmd::RevByScore),
        "publish" => {
            let n = ctx.pubsub.count(&a[1]);
            ctx.outbox.push((a[1].clone(), a[2].clone()));
            int(n)
        }
        other => Reply::Error(format!("ERR command '{other}' is not run here")),
    }
}

fn set(ctx: &mut Ctx<'_>, a: &[Vec<u8>]) -> Reply {
    let now = ctx.now_ms;
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    // (value, unit in ms, absolute)
    let mut expire: Option<(&[u8], u64, bool)> = None;
    let mut j = 3;
    while j < a.len() {
        let opt = &a[j];
        let has_next = j + 1 < a.len();
        if eq(opt, "nx") && !xx {
            nx = true;
        } else if eq(opt, "xx") && !nx {
            xx = true;
        } else if eq(opt, "get") {
            get = true;
        } else if eq(opt, "keepttl") && expire.is_none() {
            keepttl = true;
        } else if expire.is_none() && !keepttl && has_next {
            let (unit, absolute) = if eq(opt, "ex") {
                (1000, false)
            } else if eq(opt, "px") {
                (1, false)
            } else if eq(opt, "exat") {
                (1000, true)
            } else if eq(opt, "pxat") {
                (1, true)
            } else {
                return err(SYNTAX);
            };
            expire = Some((&a[j + 1], unit, absolute));
            j += 1;
        } else {
            return err(SYNTAX);
        }
        j += 1;
    }
    let expires_at = match expire {
        None => None,
        Some((v, unit, absolute)) => {
            let Some(v) = parse_i64(v) else {
                return err(NOT_INTEGER);
            };
            let invalid = "ERR invalid expire time in 'set' command";
            if v <= 0 || (unit == 1000 && v > i64::MAX / 1000) {
                return err(invalid);
            }
            let ms = v * unit as i64;
            if absolute {
                Some(ms as u64)
            } else {
                match ms.checked_add(now as i64) {
                    Some(t) => Some(t as u64),
                    None => return err(invalid),
                }
            }
        }
    };
    let old = match ctx.db.get(&a[1], now) {
        None => None,
        Some(e) => match &e.value {
            Value::Str(s) => Some((s.clone(), e.expires_at)),
            _ if get => return err(WRONGTYPE),
            _ => Some((Vec::new(), e.expires_at)),
        },
    };
    let exists = old.is_some();
    let answer = |applied: bool| {
        if get {
            old.as_ref().map_or(Reply::Nil, |(v, _)| bulk(v))
        } else if applied {
            ok()
        } else {
            Reply::Nil
        }
    };
    if (nx && exists) || (xx && !exists) {
        return answer(false);
    }
    let keep = if keepttl {
        old.as_ref().and_then(|(_, t)| *t)
    } else {
        None
    };
    let reply = answer(true);
    ctx.db
        .put(&a[1], Value::Str(a[2].clone()), expires_at.or(keep));
    reply
}

fn expire(ctx: &mut Ctx<'_>, a: &[Vec<u8>], name: &str) -> Reply {
    let now = ctx.now_ms;
    let seconds = name == "expire" || name == "expireat";
    let absolute = name.ends_with("at");
    let Some(v) = parse_i64(&a[2]) else {
        return err(NOT_INTEGER);
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &a[3..] {
        if eq(opt, "nx") {
            nx = true;
        } else if eq(opt, "xx") {
            xx = true;
        } else if eq(opt, "gt") {
            gt = true;
        } else if eq(opt, "lt") {
            lt = true;
        } else {
            return Reply::Error(format!("ERR Unsupported option {}", lossy(opt)));
        }
    }
    if nx && (xx || gt || lt) {
        return err("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return err("ERR GT and LT options at the same time are not compatible");
    }
    let ms = if seconds {
        v.checked_mul(1000)
    } else {
        Some(v)
    };
    let base = if absolute { 0 } else { now as i64 };
    let Some(when) = ms.and_then(|ms| ms.checked_add(base)) else {
        return Reply::Error(format!("ERR invalid expire time in '{name}' command"));
    };
    let Some(e) = ctx.db.get_entry_mut(&a[1], now) else {
        return Reply::Int(0);
    };
    let cur = e.expires_at;
    let refused = (nx && cur.is_some())
        || (xx && cur.is_none())
        || (gt && cur.is_none_or(|c| when <= c as i64))
        || (lt && cur.is_some_and(|c| when >= c as i64));
    if refused {
        return Reply::Int(0);
    }
    if when <= now as i64 {
        ctx.db.remove(&a[1], now);
    } else {
        e.expires_at = Some(when as u64);
    }
    Reply::Int(1)
}

fn incr(ctx: &mut Ctx<'_>, key: &[u8], by: i64) -> Reply {
    let now = ctx.now_ms;
    let (cur, ttl) = match ctx.db.get(key, now) {
        None => (0, None),
        Some(e) => match &e.value {
            Value::Str(s) => match parse_i64(s) {
                Some(n) => (n, e.expires_at),
                None => return err(NOT_INTEGER),
            },
            _ => return err(WRONGTYPE),
        },
    };
    let Some(new) = cur.checked_add(by) else {
        return err("ERR increment or decrement would overflow");
    };
    ctx.db
        .put(key, Value::Str(new.to_string().into_bytes()), ttl);
    Reply::Int(new)
}

/// Parse an SSCAN cursor as `strtoul` would (Redis: `parseScanCursorOrReply`).
fn parse_cursor(s: &[u8]) -> Option<u64> {
    if s.first().is_some_and(|c| c.is_ascii_whitespace()) {
        return None;
    }
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if s.is_empty() {
        return Some(0);
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

fn sscan(ctx: &mut Ctx<'_>, a: &[Vec<u8>]) -> Reply {
    let now = ctx.now_ms;
    let Some(cursor) = parse_cursor(&a[2]) else {
        return err("ERR invalid cursor");
    };
    let empty = || Reply::Array(vec![bulk(b"0"), Reply::Array(Vec::new())]);
    let members = match ctx.db.set(&a[1], now) {
        Err(_) => return err(WRONGTYPE),
        Ok(None) => return empty(),
        Ok(Some(s)) => s,
    };
    let mut count = 10usize;
    let mut pattern: Option<&[u8]> = None;
    let mut j = 3;
    while j < a.len() {
        if eq(&a[j], "count") && j + 1 < a.len() {
            match parse_i64(&a[j + 1]) {
                None => return err(NOT_INTEGER),
                Some(n) if n < 1 => return err(SYNTAX),
                Some(n) => count = usize::try_from(n).unwrap_or(usize::MAX),
            }
            j += 2;
        } else if eq(&a[j], "match") && j + 1 < a.len() {
            pattern = Some(&a[j + 1]);
            j += 2;
        } else {
            return err(SYNTAX);
        }
    }
    let after = if cursor == 0 {
        None
    } else {
        match ctx.cursors.resume(cursor, &a[1]) {
            Some(last) => Some(last),
            None => return empty(),
        }
    };
    let range: Vec<&Vec<u8>> = match &after {
        None => members.iter().take(count.saturating_add(1)).collect(),
        Some(last) => members
            .range::<Vec<u8>, _>((std::ops::Bound::Excluded(last), std::ops::Bound::Unbounded))
            .take(count.saturating_add(1))
            .collect(),
    };
    let more = range.len() > count;
    let page: Vec<&Vec<u8>> = range.into_iter().take(count).collect();
    let next = match (more, page.last()) {
        (true, Some(last)) => {
            let last = (*last).clone();
            ctx.cursors.open(&a[1], &last)
        }
        _ => 0,
    };
    let items = page
        .into_iter()
        .filter(|m| pattern.is_none_or(|p| glob::matches(p, m)))
        .map(|m| bulk(m))
        .collect();
    Reply::Array(vec![bulk(next.to_string().as_bytes()), Reply::Array(items)])
}

#[derive(Default, Clone, Copy)]
struct ZaddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

impl ZaddFlags {
    fn incr() -> Self {
        Self {
            incr: true,
            ..Default::default()
        }
    }
}

fn zadd(ctx: &mut Ctx<'_>, a: &[Vec<u8>]) -> Reply {
    let mut f = ZaddFlags::default();
    let mut j = 2;
    while j < a.len() {
        let o = &a[j];
        if eq(o, "nx") {
            f.nx = true;
        } else if eq(o, "xx") {
            f.xx = true;
        } else if eq(o, "gt") {
            f.gt = true;
        } else if eq(o, "lt") {
            f.lt = true;
        } else if eq(o, "ch") {
            f.ch = true;
        } else if eq(o, "incr") {
            f.incr = true;
        } else {
            break;
        }
        j += 1;
    }
    let pairs = &a[j..];
    if pairs.is_empty() || pairs.len() % 2 != 0 {
        return err(SYNTAX);
    }
    if f.nx && f.xx {
        return err("ERR XX and NX options at the same time are not compatible");
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return err("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if f.incr && pairs.len() > 2 {
        return err("ERR INCR option supports a single increment-element pair");
    }
    let mut scores = Vec::with_capacity(pairs.len() / 2);
    for p in pairs.chunks(2) {
        match parse_f64_strict(&p[0]) {
            Some(s) => scores.push(s),
            None => return err(NOT_FLOAT),
        }
    }
    if ctx.db.zset(&a[1], ctx.now_ms).is_err() {
        return err(WRONGTYPE);
    }
    if f.incr {
        return zadd_one(ctx, &a[1], &pairs[1], scores[0], f);
    }
    let now = ctx.now_ms;
    if f.xx && ctx.db.zset(&a[1], now).ok().flatten().is_none() {
        return Reply::Int(0);
    }
    let Ok(z) = ctx.db.zset_mut(&a[1], now) else {
        return err(WRONGTYPE);
    };
    let (mut added, mut changed) = (0, 0);
    for (p, score) in pairs.chunks(2).zip(scores) {
        let member = &p[1];
        let Some(score) = Score::new(score) else {
            continue;
        };
        match z.score(member) {
            None => {
                if !f.xx {
                    z.insert(member, score);
                    added += 1;
                }
            }
            Some(cur) => {
                if f.nx || (f.gt && score.get() <= cur) || (f.lt && score.get() >= cur) {
                    continue;
                }
                if cur != score.get() {
                    z.insert(member, score);
                    changed += 1;
                }
            }
        }
    }
    ctx.db.drop_if_empty(&a[1]);
    int(if f.ch { added + changed } else { added })
}

/// ZADD … INCR and ZINCRBY: one member, reply the new score (nil when a
/// condition refused it).
fn zadd_one(ctx: &mut Ctx<'_>, key: &[u8], member: &[u8], by: f64, f: ZaddFlags) -> Reply {
    let now = ctx.now_ms;
    let cur = match ctx.db.zset(key, now) {
        Err(_) => return err(WRONGTYPE),
        Ok(z) => z.and_then(|z| z.score(member)),
    };
    if (f.nx && cur.is_some()) || (f.xx && cur.is_none()) {
        return Reply::Nil;
    }
    let new = cur.unwrap_or(0.0) + by;
    let Some(score) = Score::new(new) else {
        return err("ERR resulting score is not a number (NaN)");
    };
    if let Some(c) = cur {
        if (f.gt && new <= c) || (f.lt && new >= c) {
            return Reply::Nil;
        }
    }
    match ctx.db.zset_mut(key, now) {
        Ok(z) => {
            z.insert(member, score);
        }
        Err(_) => return err(WRONGTYPE),
    }
    bulk(fmt_score(score.get()).as_bytes())
}

fn score_bound(s: &[u8]) -> Option<ScoreBound> {
    let (exclusive, num) = match s.first() {
        Some(b'(') => (true, &s[1..]),
        _ => (false, s),
    };
    Some(ScoreBound {
        value: parse_f64_loose(num)?,
        exclusive,
    })
}

fn score_range(min: &[u8], max: &[u8]) -> Option<(ScoreBound, ScoreBound)> {
    Some((score_bound(min)?, score_bound(max)?))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeCmd {
    Zrange,
    Zrevrange,
    ByScore,
    RevByScore,
}

fn zrange(ctx: &mut Ctx<'_>, a: &[Vec<u8>], cmd: RangeCmd) -> Reply {
    #[derive(PartialEq, Eq)]
    enum By {
        Auto,
        Rank,
        Score,
        Lex,
    }
    let (mut by, mut rev) = match cmd {
        RangeCmd::Zrange => (By::Auto, None),
        RangeCmd::Zrevrange => (By::Rank, Some(true)),
        RangeCmd::ByScore => (By::Score, Some(false)),
        RangeCmd::RevByScore => (By::Score, Some(true)),
    };
    let mut withscores = false;
    let mut limit: Option<(i64, i64)> = None;
    let mut j = 4;
    while j < a.len() {
        let o = &a[j];
        let left = a.len() - j - 1;
        if eq(o, "withscores") {
            withscores = true;
        } else if eq(o, "limit") && left >= 2 {
            match (parse_i64(&a[j + 1]), parse_i64(&a[j + 2])) {
                (Some(off), Some(cnt)) => limit = Some((off, cnt)),
                _ => return err(NOT_INTEGER),
            }
            j += 2;
        } else if rev.is_none() && eq(o, "rev") {
            rev = Some(true);
        } else if by == By::Auto && eq(o, "bylex") {
            by = By::Lex;
        } else if by == By::Auto && eq(o, "byscore") {
            by = By::Score;
        } else {
            return err(SYNTAX);
        }
        j += 1;
    }
    if by == By::Auto {
        by = By::Rank;
    }
    let rev = rev.unwrap_or(false);
    let (offset, count) = limit.unwrap_or((0, -1));
    if by == By::Rank && count != -1 {
        return err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
    }
    if by == By::Lex {
        if withscores {
            return err("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
        }
        return err("ERR BYLEX is not supported by MemoryStore");
    }
    let now = ctx.now_ms;
    let items: Vec<(Vec<u8>, f64)> = if by == By::Rank {
        let (Some(start), Some(stop)) = (parse_i64(&a[2]), parse_i64(&a[3])) else {
            return err(NOT_INTEGER);
        };
        match ctx.db.zset(&a[1], now) {
            Err(_) => return err(WRONGTYPE),
            Ok(None) => Vec::new(),
            Ok(Some(z)) => z
                .range_by_index(start, stop, rev)
                .into_iter()
                .map(|(m, s)| (m.to_vec(), s))
                .collect(),
        }
    } else {
        // Z…BYSCORE takes min max; with REV (or ZREVRANGEBYSCORE) max min.
        let (lo, hi) = if rev { (&a[3], &a[2]) } else { (&a[2], &a[3]) };
        let Some((min, max)) = score_range(lo, hi) else {
            return err("ERR min or max is not a float");
        };
        match ctx.db.zset(&a[1], now) {
            Err(_) => return err(WRONGTYPE),
            Ok(None) => Vec::new(),
            Ok(Some(_)) if offset < 0 => Vec::new(),
            Ok(Some(z)) => z
                .range_by_score(
                    min,
                    max,
                    rev,
                    usize::try_from(offset).unwrap_or(usize::MAX),
                    usize::try_from(count).ok(),
                )
                .into_iter()
                .map(|(m, s)| (m.to_vec(), s))
                .collect(),
        }
    };
    let mut out = Vec::with_capacity(items.len() * if withscores { 2 } else { 1 });
    for (m, s) in items {
        out.push(Reply::Bulk(m));
        if withscores {
            out.push(bulk(fmt_score(s).as_bytes()));
        }
    }
    Reply::Array(out)
}
