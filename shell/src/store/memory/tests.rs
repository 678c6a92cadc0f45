//! MemoryStore through its public face: commands, the function engine and
//! pub/sub. Expected texts were taken from redis-server 7.0.15.

use super::*;
use crate::store::cmd;
use std::sync::atomic::AtomicU64;

/// A store on a clock the test sets.
fn manual(start: u64) -> (MemoryStore, Arc<AtomicU64>) {
    let t = Arc::new(AtomicU64::new(start));
    let c = t.clone();
    (
        MemoryStore::with_clock(Arc::new(move || c.load(Ordering::SeqCst))),
        t,
    )
}

fn run(s: &MemoryStore, parts: &[&str]) -> Result<Reply, StoreError> {
    s.execute(&cmd(parts))
}

fn ok(s: &MemoryStore, parts: &[&str]) -> Reply {
    run(s, parts).unwrap_or_else(|e| panic!("{parts:?}: {e}"))
}

fn server_err(s: &MemoryStore, parts: &[&str]) -> String {
    match run(s, parts) {
        Err(StoreError::Server(t)) | Err(StoreError::FunctionNotFound(t)) => t,
        other => panic!("{parts:?}: expected an error, got {other:?}"),
    }
}

fn bulks(items: &[&str]) -> Reply {
    Reply::Array(items.iter().map(|s| Reply::bulk(*s)).collect())
}

#[test]
fn strings_hashes_sets_and_type_errors() {
    let (s, _) = manual(1_000);
    assert_eq!(ok(&s, &["SET", "k", "v"]), Reply::Status("OK".into()));
    assert_eq!(ok(&s, &["GET", "k"]), Reply::bulk("v"));
    assert_eq!(ok(&s, &["HSET", "h", "a", "1", "b", "2"]), Reply::Int(2));
    assert_eq!(ok(&s, &["HSET", "h", "a", "3"]), Reply::Int(0));
    assert_eq!(
        ok(&s, &["HMGET", "h", "a", "x", "b"]),
        Reply::Array(vec![Reply::bulk("3"), Reply::Nil, Reply::bulk("2")])
    );
    assert_eq!(ok(&s, &["HGETALL", "h"]), bulks(&["a", "3", "b", "2"]));
    assert_eq!(ok(&s, &["HSETNX", "h", "a", "9"]), Reply::Int(0));
    assert_eq!(ok(&s, &["SADD", "s", "x", "y", "x"]), Reply::Int(2));
    assert_eq!(ok(&s, &["SISMEMBER", "s", "y"]), Reply::Int(1));
    assert_eq!(ok(&s, &["SMEMBERS", "s"]), bulks(&["x", "y"]));
    assert_eq!(ok(&s, &["TYPE", "h"]), Reply::Status("hash".into()));
    assert_eq!(ok(&s, &["TYPE", "nope"]), Reply::Status("none".into()));
    assert_eq!(ok(&s, &["EXISTS", "h", "s", "nope", "h"]), Reply::Int(3));
    assert_eq!(ok(&s, &["KEYS", "*"]), bulks(&["h", "k", "s"]));
    assert_eq!(ok(&s, &["DBSIZE"]), Reply::Int(3));
    let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
    for bad in [
        &["HGET", "k", "a"][..],
        &["SADD", "h", "x"],
        &["ZADD", "s", "1", "m"],
        &["GET", "h"],
        &["ZRANGE", "h", "0", "-1"],
        &["SSCAN", "h", "0"],
    ] {
        assert_eq!(server_err(&s, bad), wrongtype, "{bad:?}");
    }
    // The last field / member takes the key with it.
    assert_eq!(ok(&s, &["HDEL", "h", "a", "b", "zz"]), Reply::Int(2));
    assert_eq!(ok(&s, &["SREM", "s", "x", "y"]), Reply::Int(2));
    assert_eq!(ok(&s, &["EXISTS", "h", "s"]), Reply::Int(0));
    assert_eq!(ok(&s, &["DEL", "k", "k", "nope"]), Reply::Int(1));
    assert_eq!(ok(&s, &["FLUSHALL"]), Reply::Status("OK".into()));
    assert_eq!(ok(&s, &["DBSIZE"]), Reply::Int(0));
}

#[test]
fn sorted_sets_like_redis() {
    let (s, _) = manual(0);
    ok(
        &s,
        &[
            "ZADD", "q", "1", "a", "2", "b", "3", "c", "3", "bb", "3", "ba",
        ],
    );
    assert_eq!(
        ok(&s, &["ZRANGE", "q", "-2", "-1", "WITHSCORES"]),
        bulks(&["bb", "3", "c", "3"])
    );
    assert_eq!(
        ok(&s, &["ZRANGEBYSCORE", "q", "(1", "(3", "WITHSCORES"]),
        bulks(&["b", "2"])
    );
    assert_eq!(
        ok(
            &s,
            &["ZRANGEBYSCORE", "q", "-inf", "+inf", "LIMIT", "1", "2"]
        ),
        bulks(&["b", "ba"])
    );
    assert_eq!(
        ok(&s, &["ZRANGE", "q", "3", "1", "BYSCORE", "REV"]),
        bulks(&["c", "bb", "ba", "b", "a"])
    );
    assert_eq!(
        ok(
            &s,
            &["ZRANGE", "q", "1", "3", "BYSCORE", "LIMIT", "1", "-1"]
        ),
        bulks(&["b", "ba", "bb", "c"])
    );
    assert_eq!(
        ok(
            &s,
            &["ZRANGE", "q", "1", "3", "BYSCORE", "LIMIT", "-1", "2"]
        ),
        bulks(&[])
    );
    assert_eq!(ok(&s, &["ZSCORE", "q", "b"]), Reply::bulk("2"));
    assert_eq!(ok(&s, &["ZSCORE", "q", "zz"]), Reply::Nil);
    assert_eq!(ok(&s, &["ZCARD", "q"]), Reply::Int(5));
    assert_eq!(ok(&s, &["ZREM", "q", "a", "zz"]), Reply::Int(1));
    // Scores print as Redis 7.0 prints them.
    ok(
        &s,
        &[
            "ZADD",
            "t",
            "4399841840956577",
            "big",
            "0.1",
            "tenth",
            "1e17",
            "e17",
        ],
    );
    assert_eq!(
        ok(&s, &["ZRANGE", "t", "0", "-1", "WITHSCORES"]),
        bulks(&[
            "tenth",
            "0.10000000000000001",
            "big",
            "4399841840956577",
            "e17",
            "1e+17"
        ])
    );
    for (args, want) in [
        (
            &["ZRANGE", "q", "0"][..],
            "ERR wrong number of arguments for 'zrange' command",
        ),
        (
            &["ZRANGE", "q", "a", "b"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["ZRANGE", "q", "+1", "2"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["ZRANGE", "q", "0", "1", "WITHSCORES", "LIMIT", "0", "1"],
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ),
        (&["ZRANGE", "q", "0", "1", "bogus"], "ERR syntax error"),
        (
            &["ZRANGEBYSCORE", "q", "a", "b"],
            "ERR min or max is not a float",
        ),
        (
            &["ZRANGEBYSCORE", "q", "((1", "3"],
            "ERR min or max is not a float",
        ),
        (&["ZADD", "q", "nan", "x"], "ERR value is not a valid float"),
        (&["ZADD", "q", "1", "a", "2"], "ERR syntax error"),
        (
            &["ZADD", "q", "xx", "nx", "1", "a"],
            "ERR XX and NX options at the same time are not compatible",
        ),
    ] {
        assert_eq!(server_err(&s, args), want, "{args:?}");
    }
}

#[test]
fn ttl_expires_on_the_manual_clock() {
    let (s, t) = manual(10_000);
    ok(&s, &["SET", "idem", "e1", "PX", "100"]);
    assert_eq!(ok(&s, &["PTTL", "idem"]), Reply::Int(100));
    assert_eq!(ok(&s, &["PEXPIRETIME", "idem"]), Reply::Int(10_100));
    t.store(10_100, Ordering::SeqCst);
    assert_eq!(ok(&s, &["GET", "idem"]), Reply::bulk("e1"));
    s.advance_clock(1);
    assert_eq!(ok(&s, &["GET", "idem"]), Reply::Nil);
    assert_eq!(ok(&s, &["EXISTS", "idem"]), Reply::Int(0));
    assert_eq!(ok(&s, &["PTTL", "idem"]), Reply::Int(-2));
    assert_eq!(s.now_ms(), 10_101);
    assert_eq!(
        ok(&s, &["TIME"]),
        bulks(&["10", "101000"]),
        "TIME is [seconds, microseconds]"
    );
    for bad in [
        &["SET", "k", "v", "PX", "0"][..],
        &["SET", "k", "v", "PX", "-1"],
        &["SET", "k", "v", "PX", "9223372036854775807"],
    ] {
        assert_eq!(
            server_err(&s, bad),
            "ERR invalid expire time in 'set' command"
        );
    }
    assert_eq!(
        server_err(&s, &["SET", "k", "v", "EX", "1", "PX", "2"]),
        "ERR syntax error"
    );
}

#[test]
fn bad_commands_answer_like_redis() {
    let (s, _) = manual(0);
    assert_eq!(
        server_err(&s, &["foo", "a", "b"]),
        "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
    );
    assert_eq!(
        server_err(&s, &["HSET", "h", "a"]),
        "ERR wrong number of arguments for 'hset' command"
    );
    assert_eq!(
        server_err(&s, &["HSET", "h", "a", "1", "b"]),
        "ERR wrong number of arguments for 'hset' command"
    );
    assert_eq!(server_err(&s, &["SSCAN", "s", "x"]), "ERR invalid cursor");
    assert!(s.execute(&[]).is_err());
    assert!(s.execute(&[vec![0xff, 0x00], vec![1, 2, 3]]).is_err());
}

#[test]
fn sscan_pages_without_losing_members() {
    let (s, _) = manual(0);
    let members: Vec<String> = (0..25).map(|i| format!("m{i:02}")).collect();
    let mut add = vec!["SADD", "all"];
    add.extend(members.iter().map(String::as_str));
    ok(&s, &add);
    let mut seen = Vec::new();
    let mut cursor = "0".to_owned();
    let mut removed = false;
    loop {
        let Reply::Array(parts) = ok(&s, &["SSCAN", "all", &cursor, "COUNT", "10"]) else {
            panic!()
        };
        cursor = parts[0].text().unwrap();
        let Reply::Array(page) = &parts[1] else {
            panic!()
        };
        seen.extend(page.iter().filter_map(Reply::text));
        if !removed {
            // Removing members already returned must not make the scan skip.
            ok(&s, &["SREM", "all", "m00", "m01", "m02"]);
            removed = true;
        }
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen, members);
}

const TEST_LIB: &str = r#"#!lua name=t
local function f1(keys, args)
  local x = nil
  return x.y
end
local function f2(keys, args)
  redis.call('SET', 'str', 'v')
  return redis.call('HGET', 'str', 'f')
end
local function f3(keys, args)
  return redis.pcall('HGET', 'str', 'f')
end
local function f4(keys, args)
  error('custom')
end
local function f5(keys, args)
  error({err='TAB custom'})
end
local function f6(keys, args)
  return redis.call('NOSUCH', 'x')
end
local function f7(keys, args)
  return redis.call('HGET', 'onlyone')
end
local function f8(keys, args)
  return redis.call('SET', 'x', 'y')
end
local function f9(keys, args)
  return redis.call()
end
local function f10(keys, args)
  return redis.call('GET', {})
end
local function f11(keys, args)
  return redis.pcall('NOSUCH')
end
local function f12(keys, args)
  return {keys, args, #keys, #args}
end
local function f13(keys, args)
  return redis.call('TIME')
end
local function f14(keys, args)
  return {redis.call('SET', 'a', 'b'), redis.call('GET', 'nokey'), redis.pcall('GET')}
end
local function f16(keys, args)
  return type(os)
end
local function f17(keys, args)
  return redis.call('ZADD', 'zz', 'nan', 'x')
end
local function f18(keys, args)
  return redis.error_reply('X y')
end
redis.register_function('f1', f1)
redis.register_function('f2', f2)
redis.register_function('f3', f3)
redis.register_function('f4', f4)
redis.register_function('f5', f5)
redis.register_function('f6', f6)
redis.register_function('f7', f7)
redis.register_function{function_name='f8', callback=f8, flags={'no-writes'}}
redis.register_function('f9', f9)
redis.register_function('f10', f10)
redis.register_function('f11', f11)
redis.register_function('f12', f12)
redis.register_function{function_name='f13', callback=f13, flags={'no-writes'}}
redis.register_function('f14', f14)
redis.register_function('f16', f16)
redis.register_function('f17', f17)
redis.register_function('f18', f18)
"#;

#[test]
fn functions_answer_like_redis_7_0() {
    let (s, _) = manual(1_795_331_011_212);
    assert_eq!(
        ok(&s, &["FUNCTION", "LOAD", "REPLACE", TEST_LIB]),
        Reply::bulk("t")
    );
    let fcall = |f: &str| run(&s, &["FCALL", f, "2", "k1", "k2", "a1", "a2"]);
    let e = |f: &str| match fcall(f) {
        Err(StoreError::Server(t)) => t,
        other => panic!("{f}: {other:?}"),
    };
    assert_eq!(e("f1"), "ERR user_function:4: attempt to index local 'x' (a nil value) script: f1, on @user_function:4.");
    assert_eq!(e("f2"), "WRONGTYPE Operation against a key holding the wrong kind of value script: f2, on @user_function:8.");
    assert_eq!(
        e("f3"),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(
        e("f4"),
        "ERR user_function:14: custom script: f4, on @user_function:14."
    );
    assert_eq!(e("f5"), "TAB custom script: f5, on @user_function:17.");
    assert_eq!(
        e("f6"),
        "ERR Unknown Redis command called from script script: f6, on @user_function:20."
    );
    assert_eq!(e("f7"), "ERR Wrong number of args calling Redis command from script script: f7, on @user_function:23.");
    assert_eq!(e("f8"), "ERR Write commands are not allowed from read-only scripts. script: f8, on @user_function:26.");
    assert_eq!(e("f9"), "ERR Please specify at least one argument for this redis lib call script: f9, on @user_function:29.");
    assert_eq!(e("f10"), "ERR Lua redis lib command arguments must be strings or integers script: f10, on @user_function:32.");
    assert_eq!(e("f11"), "ERR Unknown Redis command called from script");
    assert_eq!(
        fcall("f12").unwrap(),
        Reply::Array(vec![
            bulks(&["k1", "k2"]),
            bulks(&["a1", "a2"]),
            Reply::Int(2),
            Reply::Int(2)
        ])
    );
    assert_eq!(fcall("f13").unwrap(), bulks(&["1795331011", "212000"]));
    assert_eq!(
        fcall("f14").unwrap(),
        Reply::Array(vec![
            Reply::Status("OK".into()),
            Reply::Nil,
            Reply::Error("ERR Wrong number of args calling Redis command from script".into())
        ])
    );
    assert_eq!(e("f16"), "ERR user_function:47: Script attempted to access nonexistent global variable 'os' script: f16, on @user_function:47.");
    assert_eq!(
        e("f17"),
        "ERR value is not a valid float script: f17, on @user_function:50."
    );
    assert_eq!(e("f18"), "X y");
    assert_eq!(
        server_err(&s, &["FCALL_RO", "f2", "0"]),
        "ERR Can not execute a script with write flag using *_ro command."
    );
    assert_eq!(
        ok(&s, &["FCALL_RO", "f13", "0"]),
        bulks(&["1795331011", "212000"])
    );
    assert!(matches!(
        run(&s, &["FCALL", "nosuch", "0"]),
        Err(StoreError::FunctionNotFound(t)) if t == "ERR Function not found"
    ));
    assert_eq!(
        server_err(&s, &["FCALL", "f1", "x"]),
        "ERR Bad number of keys provided"
    );
    assert_eq!(
        server_err(&s, &["FCALL", "f1", "-1"]),
        "ERR Number of keys can't be negative"
    );
    assert_eq!(
        server_err(&s, &["FCALL", "f1", "3", "a"]),
        "ERR Number of keys can't be greater than number of args"
    );
    assert_eq!(
        server_err(&s, &["FUNCTION", "LOAD", TEST_LIB]),
        "ERR Library 't' already exists"
    );
}

#[test]
fn function_load_errors_like_redis_7_0() {
    let (s, _) = manual(0);
    ok(
        &s,
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=t\nredis.register_function('f1', function() return 1 end)",
        ],
    );
    for (code, want) in [
        ("#!lua name=t3\nredis.call('SET','a','b')\n", "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'call'"),
        ("#!lua name=t3\nlocal x = \n", "ERR Error compiling function: user_function:3: unexpected symbol near '<eof>'"),
        ("#!lua name=t3\nredis.register_function('f1', function() return 1 end)\n", "ERR Function f1 already exists"),
        ("#!lua name=t3\nredis.register_function('a b', function() return 1 end)\n", "ERR Error registering functions: ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"),
        ("#!lua name=t3\nredis.register_function('x', function() return 1 end)\nredis.register_function('x', function() return 1 end)\n", "ERR Error registering functions: ERR Function already exists in the library"),
        ("#!lua name=t3\n", "ERR No functions registered"),
        ("redis.register_function('x', function() return 1 end)\n", "ERR Missing library metadata"),
        ("#!lua name=t3\nredis.register_function{function_name='x', callback=function() return 1 end, flags={'bogus'}}\n", "ERR Error registering functions: ERR unknown flag given"),
        ("#!lua name=t3\nfoo = 1\n", "ERR Error registering functions: ERR user_function:2: Attempt to modify a readonly table"),
        ("#!lua name=t3\nlocal y = undefinedglobal\n", "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'undefinedglobal'"),
        ("#!lua name=t3\nredis.register_function('x', 5)\n", "ERR Error registering functions: ERR second argument to redis.register_function must be a function"),
        ("#!lua name=t3 engine=x\nredis.register_function('x', 5)\n", "ERR Invalid metadata value given: engine=x"),
        ("#!js name=t3\nredis.register_function('x', 5)\n", "ERR Engine 'js' not found"),
    ] {
        assert_eq!(server_err(&s, &["FUNCTION", "LOAD", code]), want, "{code}");
    }
    assert_eq!(
        ok(&s, &["FUNCTION", "LOAD", "#!lua name=t3\nredis.register_function{function_name='x', callback=function() return 1 end, flags={'no-writes', 'allow-stale'}, description='d'}\n"]),
        Reply::bulk("t3")
    );
    assert_eq!(ok(&s, &["FCALL_RO", "x", "0"]), Reply::Int(1));
    assert_eq!(ok(&s, &["FUNCTION", "FLUSH"]), Reply::Status("OK".into()));
    assert!(matches!(
        run(&s, &["FCALL", "f1", "0"]),
        Err(StoreError::FunctionNotFound(_))
    ));
}

#[test]
fn lua_values_convert_like_redis() {
    let (s, _) = manual(0);
    ok(
        &s,
        &[
            "FUNCTION",
            "LOAD",
            r#"#!lua name=c
redis.register_function('mixed', function() return {1, 2.7, -2.7, 'x', true, false, nil, 5} end)
redis.register_function('huge', function() return 1e30 end)
redis.register_function('okr', function() return {ok='fine'} end)
redis.register_function('errr', function() return {err='bad thing'} end)
redis.register_function('er1', function() return redis.error_reply('oops') end)
redis.register_function('st', function() return redis.status_reply('yo') end)
redis.register_function('dbl', function() return {double=1.5} end)
redis.register_function('args', function()
  redis.call('SET', 'n1', 0.1)
  redis.call('SET', 'n2', 4398046511104000 + 1795329852577)
  redis.call('SET', 'n3', 1e20)
  return {redis.call('GET', 'n1'), redis.call('GET', 'n2'), redis.call('GET', 'n3'),
          tostring(4398046511104000 + 1795329852577)}
end)
redis.register_function('status', function() return redis.call('SET', 'k', 'v') end)
"#,
        ],
    );
    assert_eq!(
        ok(&s, &["FCALL", "mixed", "0"]),
        Reply::Array(vec![
            Reply::Int(1),
            Reply::Int(2),
            Reply::Int(-2),
            Reply::bulk("x"),
            Reply::Int(1),
            Reply::Nil
        ]),
        "false is nil, a nil ends the array"
    );
    assert_eq!(ok(&s, &["FCALL", "huge", "0"]), Reply::Int(i64::MIN));
    assert_eq!(ok(&s, &["FCALL", "okr", "0"]), Reply::Status("fine".into()));
    assert_eq!(server_err(&s, &["FCALL", "errr", "0"]), "bad thing");
    assert_eq!(server_err(&s, &["FCALL", "er1", "0"]), "ERR oops");
    assert_eq!(ok(&s, &["FCALL", "st", "0"]), Reply::Status("yo".into()));
    assert_eq!(ok(&s, &["FCALL", "dbl", "0"]), Reply::bulk("1.5"));
    assert_eq!(
        ok(&s, &["FCALL", "args", "0"]),
        bulks(&[
            "0.10000000000000001",
            "4399841840956577",
            "1e+20",
            "4.3998418409566e+15"
        ])
    );
    assert_eq!(
        ok(&s, &["FCALL", "status", "0"]),
        Reply::Status("OK".into())
    );
}

#[test]
fn a_failing_function_keeps_its_writes_and_its_messages() {
    let (s, _) = manual(0);
    let mut rx = s.lock().pubsub.subscribe(b"ch");
    ok(
        &s,
        &[
            "FUNCTION",
            "LOAD",
            r#"#!lua name=w
redis.register_function('half', function()
  redis.call('SET', 'written', '1')
  redis.call('PUBLISH', 'ch', 'before the error')
  error('boom')
end)
"#,
        ],
    );
    assert!(run(&s, &["FCALL", "half", "0"]).is_err());
    assert_eq!(
        ok(&s, &["GET", "written"]),
        Reply::bulk("1"),
        "Redis does not roll back"
    );
    assert_eq!(rx.try_recv(), Ok(SubEvent::Subscribed));
    assert_eq!(
        rx.try_recv(),
        Ok(SubEvent::Message(b"before the error".to_vec()))
    );
}

#[tokio::test]
async fn library_reloads_after_a_restart_and_subscriptions_come_back() {
    let (s, _) = manual(5_000);
    s.ensure_library().await.unwrap();
    assert!(s.has_library("ff"));
    let mut rx = s.subscribe("ff:wake").await.unwrap();
    assert_eq!(rx.recv().await, Some(SubEvent::Subscribed));
    let version = Call::new("ff_version", vec![]).read_only();
    let lib = library();
    assert_eq!(s.fcall(&version).await.unwrap(), bulks(&[&lib.version]));
    s.restart();
    assert!(!s.has_library("ff"));
    assert_eq!(rx.recv().await, Some(SubEvent::Subscribed), "resubscribed");
    // The call heals the lost library by itself.
    assert_eq!(s.fcall(&version).await.unwrap(), bulks(&[&lib.version]));
    s.flush_functions();
    s.ensure_library().await.unwrap();
    assert!(s.has_library("ff"));
    assert_eq!(
        s.command(&cmd(["PUBLISH", "ff:wake", "hello"]))
            .await
            .unwrap(),
        Reply::Int(1)
    );
    assert_eq!(rx.recv().await, Some(SubEvent::Message(b"hello".to_vec())));
    drop(rx);
    assert_eq!(s.subscribers(), 0);
    assert_eq!(
        s.command(&cmd(["PUBLISH", "ff:wake", "nobody"]))
            .await
            .unwrap(),
        Reply::Int(0)
    );
}

mod arbitrary_input {
    use super::*;
    use proptest::prelude::*;

    const NAMES: &[&str] = &[
        "GET",
        "SET",
        "DEL",
        "HSET",
        "HGET",
        "HMGET",
        "HDEL",
        "HGETALL",
        "SADD",
        "SREM",
        "SMEMBERS",
        "SSCAN",
        "ZADD",
        "ZREM",
        "ZSCORE",
        "ZRANGE",
        "ZRANGEBYSCORE",
        "ZCARD",
        "TYPE",
        "KEYS",
        "FCALL",
        "FCALL_RO",
        "FUNCTION",
        "PUBLISH",
        "TIME",
        "EXPIRE",
        "PTTL",
        "INCR",
        "HINCRBY",
        "ZINCRBY",
        "ZCOUNT",
        "ZREVRANGE",
        "nosuch",
    ];

    fn arg() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"k".to_vec()),
            Just(b"ff_create".to_vec()),
            Just(b"-1".to_vec()),
            Just(b"(1".to_vec()),
            Just(b"+inf".to_vec()),
            Just(b"WITHSCORES".to_vec()),
            Just(b"LIMIT".to_vec()),
            Just(b"BYSCORE".to_vec()),
            Just(b"REV".to_vec()),
            Just(b"PX".to_vec()),
            Just(b"LOAD".to_vec()),
            Just(b"1".to_vec()),
            "[0-9]{0,20}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..12),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn never_panics(cmds in proptest::collection::vec(
            (proptest::sample::select(NAMES), proptest::collection::vec(arg(), 0..6)), 1..12)
        ) {
            let (s, _) = manual(1_000);
            for (name, args) in cmds {
                let mut argv = vec![name.as_bytes().to_vec()];
                argv.extend(args);
                let _ = s.execute(&argv);
            }
        }
    }
}
