//! Standalone `redis-server` and the standalone test target.

use std::path::{Path, PathBuf};

use super::process::{self, RedisProcess};
use super::resp;

/// Environment variable naming an external standalone server to test
/// against instead of starting one (e.g. `redis://127.0.0.1:6379`).
pub const FF_TEST_REDIS_URL: &str = "FF_TEST_REDIS_URL";

/// A standalone `redis-server` child on `127.0.0.1`, without persistence,
/// running in its own temp dir. Dropping it kills the process and removes
/// the directory.
#[derive(Debug)]
pub struct RedisServer {
    process: RedisProcess,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers
    /// `PING`. Panics (with the log's tail) if it cannot be started, e.g.
    /// because `redis-server` is not installed.
    pub fn start() -> RedisServer {
        RedisServer {
            process: RedisProcess::start(|_| Vec::new()),
        }
    }

    /// Starts a server that persists every write before answering (AOF on,
    /// `appendfsync always`), so a SIGKILL loses nothing acknowledged.
    pub fn start_with_aof() -> RedisServer {
        RedisServer {
            process: RedisProcess::start(|_| {
                ["--appendonly", "yes", "--appendfsync", "always"]
                    .map(str::to_owned)
                    .to_vec()
            }),
        }
    }

    /// Kills the server with SIGKILL; [`RedisServer::restart`] brings it back.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same port and directory; it reloads
    /// its AOF, if on (data and, in Redis 7, the function library).
    pub fn restart(&mut self) {
        self.process.restart();
    }

    /// Sends one command on a fresh connection (e.g. `CLIENT PAUSE`); the
    /// reply as text, or the server's error.
    pub fn command(&self, args: &[&str]) -> Result<String, String> {
        Self::command_on(self.port(), args)
    }

    /// [`RedisServer::command`] to the server on `port` (for a thread that
    /// does not hold the server).
    pub fn command_on(port: u16, args: &[&str]) -> Result<String, String> {
        match resp::command(port, args).map_err(|e| e.to_string())? {
            resp::Reply::Status(s) | resp::Reply::Bulk(Some(s)) => Ok(s),
            resp::Reply::Integer(i) => Ok(i.to_string()),
            resp::Reply::Bulk(None) => Ok(String::new()),
            resp::Reply::Error(e) => Err(e),
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// The process id of the server.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.process.dir().join(process::LOG_FILE)
    }

    /// The server's working directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }
}

/// The standalone server a test runs against.
#[derive(Debug)]
pub enum TestRedis {
    /// A server started for this test, stopped on drop.
    Owned(RedisServer),
    /// An external server from `FF_TEST_REDIS_URL`; shared, so tests must
    /// not assume it is empty.
    External(String),
}

impl TestRedis {
    /// `FF_TEST_REDIS_URL` if set and non-empty, otherwise a freshly started
    /// [`RedisServer`] (panics if `redis-server` cannot be started).
    pub fn standalone() -> TestRedis {
        match std::env::var(FF_TEST_REDIS_URL) {
            Ok(url) if !url.trim().is_empty() => TestRedis::External(url.trim().to_owned()),
            _ => TestRedis::Owned(RedisServer::start()),
        }
    }

    /// The URL to connect to.
    pub fn url(&self) -> String {
        match self {
            TestRedis::Owned(server) => server.url(),
            TestRedis::External(url) => url.clone(),
        }
    }

    /// Whether this target was started by the harness (and is private to
    /// the test).
    pub fn is_owned(&self) -> bool {
        matches!(self, TestRedis::Owned(_))
    }
}
