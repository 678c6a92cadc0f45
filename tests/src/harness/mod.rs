//! Test harness: real `redis-server` processes on free loopback ports.
//!
//! * [`RedisServer::start`] starts a standalone server;
//!   [`RedisServer::start_with_aof`] one that fsyncs every write to its AOF,
//!   which [`RedisServer::kill`] (SIGKILL) and [`RedisServer::restart`] (same
//!   port, same directory) put to the test.
//! * [`RedisCluster::start`] starts a 3-master cluster (no replicas);
//!   [`RedisCluster::start_with_replicas`] one with a replica per master, and
//!   [`RedisCluster::failover`] hands a master over to its replica.
//! * [`LossyProxy`] sits in front of a server and loses the reply to a
//!   chosen request after the server applied it (then closes the client's
//!   connection), the fault a retried call must be safe against.
//! * [`TestRedis::standalone`] picks the standalone target for a test:
//!   `FF_TEST_REDIS_URL` if set, otherwise an owned [`RedisServer`].
//!
//! Every process runs in its own temporary directory (no persistence unless
//! asked, log in `redis.log`) and is killed, waited on and cleaned up on drop — including
//! while a panicking test unwinds.
//!
//! The binaries are `redis-server` and `redis-cli` from `PATH`; set
//! `FF_REDIS_SERVER_BIN` / `FF_REDIS_CLI_BIN` to use others (e.g. Valkey).

mod cluster;
mod process;
mod proxy;
mod resp;
mod server;

pub use cluster::RedisCluster;
pub use proxy::LossyProxy;
pub use server::{RedisServer, TestRedis, FF_TEST_REDIS_URL};
