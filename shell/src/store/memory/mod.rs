//! MemoryStore: the [`Store`] in process — the embedded default and the
//! simulator's store.
//!
//! It keeps a Redis-like keyspace (strings with TTL, hashes, sets, sorted
//! sets; `data.rs`), answers the plain commands the shell and the tests send
//! (`commands.rs`), runs the *same* `lua/` library through mlua with Redis
//! 7.0's Functions semantics (`lua.rs`, `host.lua`), and delivers pub/sub
//! messages (`pubsub.rs`). Everything sits behind one mutex, so a call is
//! atomic as on a real server; nothing is held across an `.await`.
//!
//! Time comes from an injectable clock in milliseconds (the wall clock by
//! default, simulated under madsim) plus an offset the simulator can push
//! forward ([`MemoryStore::advance_clock`]). A call sees one time throughout.
//!
//! Differences from Redis worth knowing: listings (KEYS, SMEMBERS, SSCAN,
//! HGETALL) come in byte order, not hash order; SSCAN pages by COUNT exactly;
//! a `-0` score reads back as `0`; expired keys disappear the moment they
//! expire (no lazily-counted DBSIZE); a function reads the clock once (Redis
//! reads it afresh for SET … PX inside a function); scripts get `bit` but
//! not `cjson`, `struct`, `cmsgpack` or `redis.sha1hex` (the library uses
//! none of them); tables the library code could reach (`string`, `math`, …)
//! are not write-protected; ZRANGE … BYLEX is refused; RESP3 is not spoken.

mod bit;
mod commands;
mod data;
mod glob;
mod lua;
mod numbers;
mod pubsub;
mod zset;

use super::library::library;
use super::{Store, SubEvent};
use crate::error::StoreError;
use commands::{arity_ok, execute, lookup, unknown_command, wrong_arity, Ctx, Cursors, Spec};
use data::Keyspace;
use ff_core::contract::Call;
use ff_core::reply::Reply;
use lua::FunctionEngine;
use numbers::parse_i64;
use pubsub::PubSub;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc::UnboundedReceiver;

/// A clock in milliseconds since the Unix epoch.
pub type ClockFn = Arc<dyn Fn() -> u64 + Send + Sync>;

fn system_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

struct State {
    db: Keyspace,
    engine: FunctionEngine,
    pubsub: PubSub,
    cursors: Cursors,
}

struct Shared {
    state: Mutex<State>,
    clock: ClockFn,
    offset: AtomicU64,
}

/// The in-process Store. Cheap to clone: clones share one keyspace.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("now_ms", &self.now_ms())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

fn new_engine() -> FunctionEngine {
    // The host chunk is part of this crate: failing to start it is a bug.
    FunctionEngine::new().expect("MemoryStore: starting the Lua function engine")
}

/// A reply as the Store returns it: an error reply is an `Err`.
fn to_result(r: Reply) -> Result<Reply, StoreError> {
    match r {
        Reply::Error(text) if text.contains("Function not found") => {
            Err(StoreError::FunctionNotFound(text))
        }
        Reply::Error(text) => Err(StoreError::Server(text)),
        r => Ok(r),
    }
}

fn fcall_args(call: &Call) -> Vec<Vec<u8>> {
    let mut args = Vec::with_capacity(3 + call.keys.len() + call.args.len());
    args.push(if call.read_only { "FCALL_RO" } else { "FCALL" }.into());
    args.push(call.function.into());
    args.push(call.keys.len().to_string().into_bytes());
    args.extend(call.keys.iter().map(|k| k.as_bytes().to_vec()));
    args.extend(call.args.iter().cloned());
    args
}

impl State {
    fn new() -> Self {
        Self {
            db: Keyspace::new(),
            engine: new_engine(),
            pubsub: PubSub::default(),
            cursors: Cursors::default(),
        }
    }

    /// Run one command at time `now`; messages it published are delivered
    /// once it is done.
    fn run(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let mut outbox = Vec::new();
        let reply = self.dispatch(args, now, &mut outbox);
        self.pubsub.deliver(outbox);
        reply
    }

    fn dispatch(
        &mut self,
        args: &[Vec<u8>],
        now: u64,
        outbox: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Reply {
        let Some(spec) = args.first().and_then(|name| lookup(name)) else {
            return Reply::Error(unknown_command(args));
        };
        if !arity_ok(spec, args.len()) {
            return Reply::Error(wrong_arity(spec));
        }
        match spec.name {
            "function" => self.function(args),
            "fcall" | "fcall_ro" => self.fcall(args, spec.name == "fcall_ro", now, outbox),
            _ => {
                let mut ctx = Ctx {
                    db: &mut self.db,
                    now_ms: now,
                    pubsub: &mut self.pubsub,
                    outbox,
                    cursors: &mut self.cursors,
                };
                execute(&mut ctx, spec, args)
            }
        }
    }

    fn function(&mut self, args: &[Vec<u8>]) -> Reply {
        let sub = args[1].to_ascii_lowercase();
        let sub_spec = |name: &'static str, arity: i32| Spec {
            name,
            arity,
            write: true,
            noscript: true,
        };
        let check = |spec: Spec| -> Option<Reply> {
            (!arity_ok(&spec, args.len())).then(|| Reply::Error(wrong_arity(&spec)))
        };
        match sub.as_slice() {
            b"load" => {
                if let Some(e) = check(sub_spec("function|load", -3)) {
                    return e;
                }
                let mut replace = false;
                for opt in &args[2..args.len() - 1] {
                    if opt.eq_ignore_ascii_case(b"replace") {
                        replace = true;
                    } else {
                        return Reply::Error(commands::sanitize(format!(
                            "ERR Unknown option given: {}",
                            String::from_utf8_lossy(opt)
                        )));
                    }
                }
                match self.engine.load(&args[args.len() - 1], replace) {
                    Ok(name) => Reply::Bulk(name.into_bytes()),
                    Err(e) => Reply::Error(e),
                }
            }
            b"flush" => {
                if let Some(e) = check(sub_spec("function|flush", -2)) {
                    return e;
                }
                let mode_ok = match args.len() {
                    2 => true,
                    3 => {
                        args[2].eq_ignore_ascii_case(b"sync")
                            || args[2].eq_ignore_ascii_case(b"async")
                    }
                    _ => false,
                };
                if !mode_ok {
                    return Reply::Error(
                        "ERR FUNCTION FLUSH only supports SYNC|ASYNC option".into(),
                    );
                }
                self.engine.flush();
                Reply::Status("OK".into())
            }
            b"delete" => {
                if let Some(e) = check(sub_spec("function|delete", 3)) {
                    return e;
                }
                if self.engine.delete(&String::from_utf8_lossy(&args[2])) {
                    Reply::Status("OK".into())
                } else {
                    Reply::Error("ERR Library not found".into())
                }
            }
            b"list" => self.engine.list(),
            _ => Reply::Error(commands::sanitize(format!(
                "ERR unknown subcommand '{}'. Try FUNCTION HELP.",
                String::from_utf8_lossy(&args[1])
            ))),
        }
    }

    fn fcall(
        &mut self,
        args: &[Vec<u8>],
        read_only_call: bool,
        now: u64,
        outbox: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Reply {
        let Some(info) = self.engine.function(&args[1]) else {
            return Reply::Error("ERR Function not found".into());
        };
        let Some(numkeys) = parse_i64(&args[2]) else {
            return Reply::Error("ERR Bad number of keys provided".into());
        };
        if numkeys < 0 {
            return Reply::Error("ERR Number of keys can't be negative".into());
        }
        let rest = &args[3..];
        let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
        if numkeys > rest.len() {
            return Reply::Error("ERR Number of keys can't be greater than number of args".into());
        }
        if read_only_call && !info.no_writes {
            return Reply::Error(
                "ERR Can not execute a script with write flag using *_ro command.".into(),
            );
        }
        let (keys, argv) = rest.split_at(numkeys);
        let State {
            db,
            engine,
            pubsub,
            cursors,
            ..
        } = self;
        let mut exec = |cmd: &[Vec<u8>]| -> Reply {
            let mut ctx = Ctx {
                db,
                now_ms: now,
                pubsub,
                outbox,
                cursors,
            };
            script_command(&mut ctx, cmd, info.no_writes)
        };
        engine.call(&args[1], keys, argv, &mut exec)
    }
}

/// A command called from a function, under Redis's rules for scripts.
fn script_command(ctx: &mut Ctx<'_>, args: &[Vec<u8>], read_only: bool) -> Reply {
    let Some(spec) = args.first().and_then(|n| lookup(n)) else {
        return Reply::Error("ERR Unknown Redis command called from script".into());
    };
    if !arity_ok(spec, args.len()) {
        return Reply::Error("ERR Wrong number of args calling Redis command from script".into());
    }
    if spec.noscript {
        return Reply::Error("ERR This Redis command is not allowed from script".into());
    }
    if spec.write && read_only {
        return Reply::Error("ERR Write commands are not allowed from read-only scripts.".into());
    }
    execute(ctx, spec, args)
}

impl MemoryStore {
    /// An empty store on the wall clock (madsim's simulated clock in a
    /// simulation), with the function library of this build loaded.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(system_ms))
    }

    /// An empty store on `clock` (ms since the Unix epoch), with the function
    /// library of this build loaded.
    pub fn with_clock(clock: ClockFn) -> Self {
        let store = Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::new()),
                clock,
                offset: AtomicU64::new(0),
            }),
        };
        if let Err(e) = store.load_library() {
            tracing::error!(error = %e, "MemoryStore: the function library does not load");
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the data as it was at the
        // panic; carrying on with it is what a server would do too.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The store's time: the clock plus every [`advance_clock`](Self::advance_clock).
    pub fn now_ms(&self) -> u64 {
        (self.shared.clock)().saturating_add(self.shared.offset.load(Ordering::SeqCst))
    }

    /// Jump the store's clock forward by `ms` (keys expire, TIME moves).
    pub fn advance_clock(&self, ms: u64) {
        self.shared.offset.fetch_add(ms, Ordering::SeqCst);
    }

    /// Run one command (any the store knows, FCALL and FUNCTION included),
    /// synchronously.
    pub fn execute(&self, args: &[Vec<u8>]) -> Result<Reply, StoreError> {
        let now = self.now_ms();
        to_result(self.lock().run(args, now))
    }

    fn load_library(&self) -> Result<(), StoreError> {
        let lib = library();
        tracing::debug!(version = %lib.version, "MemoryStore: loading the ff function library");
        let args = vec![
            b"FUNCTION".to_vec(),
            b"LOAD".to_vec(),
            b"REPLACE".to_vec(),
            lib.source.clone().into_bytes(),
        ];
        self.execute(&args).map(drop)
    }

    fn run_fcall(&self, call: &Call) -> Result<Reply, StoreError> {
        let args = fcall_args(call);
        match self.execute(&args) {
            Err(StoreError::FunctionNotFound(e)) => {
                tracing::warn!(function = call.function, error = %e, "function library missing; reloading and retrying once");
                self.load_library()?;
                self.execute(&args)
            }
            r => r,
        }
    }

    /// Drop every function library (FUNCTION FLUSH); data stays.
    pub fn flush_functions(&self) {
        self.lock().engine.flush();
    }

    /// Whether a library of this name is loaded.
    pub fn has_library(&self, name: &str) -> bool {
        self.lock().engine.has_library(name)
    }

    /// A server restart that keeps the data: the function libraries are lost
    /// (a fresh Lua state) and every subscription's connection drops; each
    /// subscription reconnects at once and sends [`SubEvent::Subscribed`]
    /// again, as RedisStore's do, so its follower knows to rescan.
    pub fn restart(&self) {
        let mut state = self.lock();
        state.engine = new_engine();
        state.cursors.clear();
        state.pubsub.reconnect_all();
    }

    /// Subscriptions whose receiver is still alive.
    pub fn subscribers(&self) -> usize {
        self.lock().pubsub.live()
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn fcall(&self, call: &Call) -> Result<Reply, StoreError> {
        let r = self.run_fcall(call);
        if let Err(e) = &r {
            tracing::debug!(function = call.function, error = %e, "fcall failed");
        }
        r
    }

    async fn fcall_many(&self, calls: &[Call]) -> Vec<Result<Reply, StoreError>> {
        calls.iter().map(|c| self.run_fcall(c)).collect()
    }

    async fn command(&self, args: &[Vec<u8>]) -> Result<Reply, StoreError> {
        self.execute(args)
    }

    async fn command_many(&self, cmds: &[Vec<Vec<u8>>]) -> Vec<Result<Reply, StoreError>> {
        cmds.iter().map(|c| self.execute(c)).collect()
    }

    async fn time_ms(&self) -> Result<u64, StoreError> {
        Ok(self.now_ms())
    }

    async fn ensure_library(&self) -> Result<(), StoreError> {
        let lib = library();
        let check = vec![b"FCALL_RO".to_vec(), b"ff_version".to_vec(), b"0".to_vec()];
        if let Ok(Reply::Array(v)) = self.execute(&check) {
            if v.len() == 1 && v[0].text().as_deref() == Some(lib.version.as_str()) {
                return Ok(());
            }
        }
        self.load_library()
    }

    async fn subscribe(&self, channel: &str) -> Result<UnboundedReceiver<SubEvent>, StoreError> {
        Ok(self.lock().pubsub.subscribe(channel.as_bytes()))
    }
}

#[cfg(test)]
mod tests;
