//! Integration tests of ff against real `redis-server` processes.
//!
//! The [`harness`] module starts throw-away `redis-server` processes (a
//! standalone server or a 3-node cluster) on free loopback ports and stops
//! them when the handle is dropped. Tests live in `tests/tests/`.
//!
//! `redis-server` and `redis-cli` (Redis/Valkey 7+) must be installed; the
//! harness panics with an explanation when they are not. It skips only the
//! TLS tests, and only on a binary from `FF_REDIS_SERVER_BIN` built without
//! TLS, saying so; their certificates need the `openssl` command.

pub mod harness;

pub use harness::{
    ClientAuth, LossyProxy, RedisCluster, RedisServer, TestPki, TestRedis, TlsRedisServer,
};
