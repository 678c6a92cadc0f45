//! The function engine: Redis 7.0 Functions over mlua (Lua 5.1, vendored).
//!
//! FUNCTION LOAD runs a library's code (after its `#!lua name=…` line) in the
//! environment `host.lua` builds; FCALL runs a registered function with
//! `redis.call` / `redis.pcall` bound to the store's commands for the length
//! of the call, and converts values both ways as Redis does (RESP2).

use super::bit;
use super::commands::sanitize;
use super::numbers::{fmt_g, fmt_g17, lua_number_to_i64};
use ff_core::reply::Reply;
use mlua::{Function, Lua, LuaOptions, MultiValue, StdLib, Table, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;

const HOST: &str = include_str!("host.lua");
/// Deeper replies are cut off (Redis stops at Lua's stack limit).
const MAX_REPLY_DEPTH: usize = 500;

/// What a library registered while loading: name, no-writes flag, callback.
type Loaded = Vec<(String, bool, Function)>;

#[derive(Debug)]
struct Registered {
    library: String,
    no_writes: bool,
    callback: Function,
}

/// A registered function, as FCALL needs to know it before running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionInfo {
    pub no_writes: bool,
}

pub struct FunctionEngine {
    lua: Lua,
    host: Table,
    libraries: BTreeMap<String, ()>,
    functions: BTreeMap<String, Registered>,
}

impl std::fmt::Debug for FunctionEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionEngine")
            .field("libraries", &self.libraries.keys().collect::<Vec<_>>())
            .field("functions", &self.functions.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Library metadata from the `#!<engine> name=<name>` line.
struct Metadata<'a> {
    name: String,
    /// The code from the end of the `#!` line on (its newline kept, so line
    /// numbers in errors are those of the whole text, as in Redis).
    body: &'a [u8],
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn parse_metadata(code: &[u8]) -> Result<Metadata<'_>, String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    let Some(nl) = code.iter().position(|&b| b == b'\n') else {
        return Err("ERR Invalid library metadata".into());
    };
    let line = String::from_utf8_lossy(&code[..nl]);
    let mut parts = line.split_ascii_whitespace();
    let engine = parts
        .next()
        .unwrap_or("#!")
        .trim_start_matches("#!")
        .to_owned();
    let mut name: Option<String> = None;
    for part in parts {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case("name=") {
            if name.is_some() {
                return Err(
                    "ERR Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(part[5..].to_owned());
        } else {
            return Err(sanitize(format!(
                "ERR Invalid metadata value given: {part}"
            )));
        }
    }
    let Some(name) = name else {
        return Err("ERR Library name was not given".into());
    };
    if !valid_name(&name) {
        return Err("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(sanitize(format!("ERR Engine '{engine}' not found")));
    }
    Ok(Metadata {
        name,
        body: &code[nl..],
    })
}

/// Store `v` as the value a failing callback raises (see host.lua) and return
/// the failure that makes Lua raise it.
fn raise(host: &Table, v: Value) -> mlua::Error {
    match host.raw_set("pending", v) {
        Ok(()) => mlua::Error::runtime("ff: raised"),
        Err(e) => e,
    }
}

fn err_table(lua: &Lua, text: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", text)?;
    Ok(Value::Table(t))
}

/// A command's reply as Lua sees it (Redis → Lua conversion, RESP2).
fn reply_to_lua(lua: &Lua, r: &Reply) -> mlua::Result<Value> {
    Ok(match r {
        Reply::Nil => Value::Boolean(false),
        Reply::Int(i) => Value::Number(*i as f64),
        Reply::Bulk(b) => Value::String(lua.create_string(b)?),
        Reply::Status(s) => {
            let t = lua.create_table()?;
            t.raw_set("ok", s.as_str())?;
            Value::Table(t)
        }
        Reply::Error(e) => err_table(lua, e)?,
        Reply::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, reply_to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
    })
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        _ => number(v).map(|n| fmt_g(n, 14)),
    }
}

/// A function's result as the caller sees it (Lua → Redis conversion).
fn lua_to_reply(v: &Value, depth: usize) -> Reply {
    match v {
        Value::Nil => Reply::Nil,
        Value::Boolean(true) => Reply::Int(1),
        Value::Boolean(false) => Reply::Nil,
        Value::Integer(_) | Value::Number(_) => {
            Reply::Int(lua_number_to_i64(number(v).unwrap_or(0.0)))
        }
        Value::String(s) => Reply::Bulk(s.as_bytes().to_vec()),
        Value::Table(t) => {
            let field = |k: &str| t.raw_get::<Value>(k).unwrap_or(Value::Nil);
            if let Value::String(e) = field("err") {
                return Reply::Error(sanitize(
                    String::from_utf8_lossy(&e.as_bytes()).into_owned(),
                ));
            }
            if let Value::String(s) = field("ok") {
                return Reply::Status(sanitize(
                    String::from_utf8_lossy(&s.as_bytes()).into_owned(),
                ));
            }
            if let Some(d) = number(&field("double")) {
                return Reply::Bulk(fmt_g17(d).into_bytes());
            }
            if let Value::String(s) = field("big_number") {
                return Reply::Bulk(s.as_bytes().to_vec());
            }
            let mut items = Vec::new();
            if depth < MAX_REPLY_DEPTH {
                for i in 1.. {
                    let item: Value = t.raw_get(i).unwrap_or(Value::Nil);
                    if item.is_nil() {
                        break;
                    }
                    items.push(lua_to_reply(&item, depth + 1));
                }
            }
            Reply::Array(items)
        }
        _ => Reply::Nil,
    }
}

/// The error reply of a function that raised `e` (an error table).
fn raised_to_reply(e: &Value, function: &str) -> Reply {
    let Value::Table(t) = e else {
        let msg = text(e).unwrap_or_else(|| "execution failure".into());
        return Reply::Error(sanitize(format!(
            "ERR Error running script {function}, {msg}"
        )));
    };
    let field = |k: &str| t.raw_get::<Value>(k).unwrap_or(Value::Nil);
    let msg = text(&field("err")).unwrap_or_default();
    let out = match (text(&field("source")), text(&field("line"))) {
        (Some(source), Some(line)) => format!("{msg} script: {function}, on {source}:{line}."),
        _ => msg,
    };
    Reply::Error(sanitize(out))
}

impl FunctionEngine {
    /// A fresh Lua state with no library loaded.
    pub fn new() -> mlua::Result<Self> {
        // SAFETY: `debug` is loaded for the host's message handler only; the
        // code libraries run in an environment without it, and no C module
        // can be loaded (no `package`).
        let lua = unsafe {
            Lua::unsafe_new_with(
                StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
                LuaOptions::default(),
            )
        };
        let prims = lua.create_table()?;
        prims.set("bit", bit::table(&lua)?)?;
        prims.set(
            "log",
            lua.create_function(|_, (level, msg): (f64, mlua::LuaString)| {
                tracing::debug!(level, message = %String::from_utf8_lossy(&msg.as_bytes()), "redis.log");
                Ok(())
            })?,
        )?;
        let host: Table = lua.load(HOST).set_name("=ffhost").call(prims)?;
        lua.set_named_registry_value("ff_host", &host)?;
        Ok(Self {
            lua,
            host,
            libraries: BTreeMap::new(),
            functions: BTreeMap::new(),
        })
    }

    pub fn function(&self, name: &[u8]) -> Option<FunctionInfo> {
        let name = std::str::from_utf8(name).ok()?;
        self.functions.get(name).map(|f| FunctionInfo {
            no_writes: f.no_writes,
        })
    }

    pub fn has_library(&self, name: &str) -> bool {
        self.libraries.contains_key(name)
    }

    /// FUNCTION LOAD [REPLACE]: the library's name, or the error line.
    pub fn load(&mut self, code: &[u8], replace: bool) -> Result<String, String> {
        let md = parse_metadata(code)?;
        if self.libraries.contains_key(&md.name) && !replace {
            return Err(format!("ERR Library '{}' already exists", md.name));
        }
        let loaded = (|| -> mlua::Result<Result<Loaded, String>> {
            let load: Function = self.host.get("load")?;
            let body = self.lua.create_string(md.body)?;
            let (ok, result): (bool, Value) = load.call(body)?;
            if !ok {
                return Ok(Err(text(&result).unwrap_or_default()));
            }
            let Value::Table(list) = result else {
                return Ok(Err("no functions".into()));
            };
            let mut out = Vec::new();
            for entry in list.sequence_values::<Table>() {
                let entry = entry?;
                out.push((
                    entry.get("name")?,
                    entry.get("no_writes")?,
                    entry.get("callback")?,
                ));
            }
            Ok(Ok(out))
        })();
        let registered = match loaded {
            Ok(Ok(r)) => r,
            Ok(Err(msg)) => return Err(sanitize(format!("ERR {msg}"))),
            Err(e) => return Err(sanitize(format!("ERR Error registering functions: {e}"))),
        };
        if registered.is_empty() {
            return Err("ERR No functions registered".into());
        }
        for (name, _, _) in &registered {
            if let Some(f) = self.functions.get(name) {
                if f.library != md.name {
                    return Err(format!("ERR Function {name} already exists"));
                }
            }
        }
        self.remove_library(&md.name);
        for (name, no_writes, callback) in registered {
            self.functions.insert(
                name,
                Registered {
                    library: md.name.clone(),
                    no_writes,
                    callback,
                },
            );
        }
        self.libraries.insert(md.name.clone(), ());
        Ok(md.name)
    }

    fn remove_library(&mut self, name: &str) -> bool {
        self.functions.retain(|_, f| f.library != name);
        self.libraries.remove(name).is_some()
    }

    /// FUNCTION DELETE.
    pub fn delete(&mut self, name: &str) -> bool {
        self.remove_library(name)
    }

    /// FUNCTION FLUSH.
    pub fn flush(&mut self) {
        self.functions.clear();
        self.libraries.clear();
        self.lua.gc_collect().ok();
    }

    /// FUNCTION LIST (RESP2 shape, without descriptions or code).
    pub fn list(&self) -> Reply {
        let b = |s: &str| Reply::Bulk(s.as_bytes().to_vec());
        Reply::Array(
            self.libraries
                .keys()
                .map(|lib| {
                    let functions = self
                        .functions
                        .iter()
                        .filter(|(_, f)| &f.library == lib)
                        .map(|(name, f)| {
                            let flags = if f.no_writes {
                                vec![b("no-writes")]
                            } else {
                                Vec::new()
                            };
                            Reply::Array(vec![
                                b("name"),
                                b(name),
                                b("description"),
                                Reply::Nil,
                                b("flags"),
                                Reply::Array(flags),
                            ])
                        })
                        .collect();
                    Reply::Array(vec![
                        b("library_name"),
                        b(lib),
                        b("engine"),
                        b("LUA"),
                        b("functions"),
                        Reply::Array(functions),
                    ])
                })
                .collect(),
        )
    }

    /// Run a registered function; `exec` carries out each `redis.call`.
    pub fn call(
        &self,
        name: &[u8],
        keys: &[Vec<u8>],
        args: &[Vec<u8>],
        exec: &mut dyn FnMut(&[Vec<u8>]) -> Reply,
    ) -> Reply {
        let fname = String::from_utf8_lossy(name).into_owned();
        let Some(f) = self.functions.get(fname.as_str()) else {
            return Reply::Error("ERR Function not found".into());
        };
        let exec = RefCell::new(exec);
        let host = &self.host;
        let dispatch = |lua: &Lua, argv: MultiValue, raise_errors: bool| -> mlua::Result<Value> {
            let fail = |text: &str| -> mlua::Result<Value> {
                let t = err_table(lua, text)?;
                if raise_errors {
                    Err(raise(host, t))
                } else {
                    Ok(t)
                }
            };
            if argv.is_empty() {
                return fail("ERR Please specify at least one argument for this redis lib call");
            }
            let mut cmd = Vec::with_capacity(argv.len());
            for v in argv.iter() {
                match v {
                    Value::String(s) => cmd.push(s.as_bytes().to_vec()),
                    Value::Integer(_) | Value::Number(_) => {
                        cmd.push(fmt_g17(number(v).unwrap_or(0.0)).into_bytes())
                    }
                    _ => {
                        return fail(
                            "ERR Lua redis lib command arguments must be strings or integers",
                        )
                    }
                }
            }
            let reply = (exec.borrow_mut())(&cmd);
            match reply {
                Reply::Error(e) => fail(&e),
                r => reply_to_lua(lua, &r),
            }
        };
        let result = self.lua.scope(|scope| {
            let call = scope.create_function(|lua, a: MultiValue| dispatch(lua, a, true))?;
            let pcall = scope.create_function(|lua, a: MultiValue| dispatch(lua, a, false))?;
            let lua = &self.lua;
            let to_table = |items: &[Vec<u8>]| -> mlua::Result<Table> {
                let t = lua.create_table_with_capacity(items.len(), 0)?;
                for (i, item) in items.iter().enumerate() {
                    t.raw_set(i + 1, lua.create_string(item)?)?;
                }
                Ok(t)
            };
            let run: Function = host.get("run")?;
            let (ok, result): (bool, Value) = run.call((
                f.callback.clone(),
                to_table(keys)?,
                to_table(args)?,
                call,
                pcall,
            ))?;
            Ok(if ok {
                lua_to_reply(&result, 0)
            } else {
                raised_to_reply(&result, &fname)
            })
        });
        result.unwrap_or_else(|e| {
            Reply::Error(sanitize(format!("ERR Error running script {fname}, {e}")))
        })
    }
}
