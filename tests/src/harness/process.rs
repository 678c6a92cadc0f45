//! One `redis-server` child process in its own temp dir, shared by the
//! standalone server and the cluster nodes.

use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::resp::{self, Reply};

/// How long a server may take to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Poll interval while waiting for a server.
pub(crate) const POLL: Duration = Duration::from_millis(10);
/// Attempts with fresh ports when the server fails to bind (another process
/// took the port between our probe and the server's bind).
const BIND_ATTEMPTS: usize = 5;

pub(crate) const LOG_FILE: &str = "redis.log";
const STDIO_FILE: &str = "stdio.log";

const INSTALL_HINT: &str = "install Redis/Valkey 7+, e.g. `apt-get install -y redis-server`, \
                            or point FF_REDIS_SERVER_BIN / FF_REDIS_CLI_BIN at the binaries";

pub(crate) fn server_bin() -> String {
    std::env::var("FF_REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned())
}

pub(crate) fn cli_bin() -> String {
    std::env::var("FF_REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".to_owned())
}

/// Panics with an installation hint if `err` says the binary is missing.
pub(crate) fn spawn_failed(bin: &str, err: &io::Error) -> ! {
    if err.kind() == io::ErrorKind::NotFound {
        panic!("cannot run `{bin}`: not found on PATH; {INSTALL_HINT}");
    }
    panic!("cannot run `{bin}`: {err}; {INSTALL_HINT}");
}

/// A fresh, unique, empty directory under the system temp dir.
pub(crate) fn unique_temp_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("ff-test-{}-{n}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", dir.display()));
    dir
}

/// A loopback port nobody listens on right now (it may be taken again before
/// we use it; callers retry).
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read the bound port: {e}"))
        .port()
}

/// The last `lines` lines of the server's log and captured stdout/stderr.
pub(crate) fn log_tail(dir: &Path, lines: usize) -> String {
    let mut out = String::new();
    for name in [LOG_FILE, STDIO_FILE] {
        let path = dir.join(name);
        let text = fs::read_to_string(&path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = &all[all.len().saturating_sub(lines)..];
        out.push_str(&format!(
            "--- {} (last {} lines)\n",
            path.display(),
            tail.len()
        ));
        for line in tail {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// What a server listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listen {
    /// Plain TCP on the port.
    Plain,
    /// TLS only on the port (`--port 0 --tls-port PORT`); the TLS settings
    /// come in the extra arguments.
    Tls,
}

/// The line a server logs once it listens (Redis 7.0 ends it there, Valkey 8
/// adds the connection types).
const READY_LINE: &str = "Ready to accept connections";

/// What a server built without TLS logs when given `--tls-port` (Valkey 8,
/// Redis 7.2+), then exits.
pub(crate) const NO_TLS_LINE: &str = "Failed finding TLS support";

/// Spawns `redis-server` on `port` in `dir` (no persistence unless `extra`
/// turns it on: later arguments override earlier ones).
fn spawn(bin: &str, dir: &Path, listen: Listen, port: u16, extra: &[String]) -> io::Result<Child> {
    let stdio = File::options()
        .create(true)
        .append(true)
        .open(dir.join(STDIO_FILE))?;
    let stderr = stdio.try_clone()?;
    let mut cmd = Command::new(bin);
    match listen {
        Listen::Plain => cmd.arg("--port").arg(port.to_string()),
        Listen::Tls => cmd
            .args(["--port", "0", "--tls-port"])
            .arg(port.to_string()),
    };
    cmd.args(["--bind", "127.0.0.1", "--daemonize", "no"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join(LOG_FILE))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(stdio)
        .stderr(stderr)
        .spawn()
}

/// A running `redis-server` child. Drop kills it, waits on it and removes
/// its directory.
#[derive(Debug)]
pub(crate) struct RedisProcess {
    child: Child,
    dir: PathBuf,
    port: u16,
    listen: Listen,
    /// The extra arguments it was started with (a restart reuses them).
    extra: Vec<String>,
}

enum Start {
    Ready,
    Exited(ExitStatus),
    TimedOut,
}

/// Why [`RedisProcess::try_start`] gave up without panicking.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The binary was built without TLS; its log's tail.
    NoTls(String),
}

impl RedisProcess {
    /// Starts `redis-server` on a free port with `extra` arguments appended
    /// and waits until it answers `PING`. `extra` receives a fresh free port
    /// per attempt for arguments that need one (the cluster bus port).
    pub(crate) fn start(extra: impl Fn(u16) -> Vec<String>) -> RedisProcess {
        match Self::try_start(Listen::Plain, |_, bus_port| extra(bus_port)) {
            Ok(process) => process,
            Err(StartError::NoTls(tail)) => panic!("TLS refused without TLS asked\n{tail}"),
        }
    }

    /// As [`RedisProcess::start`], listening as `listen` says; `extra` also
    /// gets the fresh directory (to write certificates into). A server built
    /// without TLS is an error, not a panic, so callers can report it.
    pub(crate) fn try_start(
        listen: Listen,
        extra: impl Fn(&Path, u16) -> Vec<String>,
    ) -> Result<RedisProcess, StartError> {
        let bin = server_bin();
        let mut last_failure = String::new();
        for _ in 0..BIND_ATTEMPTS {
            let dir = unique_temp_dir();
            let port = free_port();
            let extra = extra(&dir, free_port());
            let child = match spawn(&bin, &dir, listen, port, &extra) {
                Ok(child) => child,
                Err(e) => {
                    let _ = fs::remove_dir_all(&dir);
                    spawn_failed(&bin, &e);
                }
            };
            // From here on the guard kills the child if anything panics.
            let mut process = RedisProcess {
                child,
                dir,
                port,
                listen,
                extra,
            };
            match process.wait_ready(0) {
                Start::Ready => return Ok(process),
                Start::TimedOut => panic!(
                    "redis-server on port {port} was not ready (PING, or with TLS its ready log line) within {START_TIMEOUT:?}\n{}",
                    log_tail(&process.dir, 30)
                ),
                Start::Exited(status) => {
                    let tail = log_tail(&process.dir, 30);
                    if listen == Listen::Tls && tail.contains(NO_TLS_LINE) {
                        return Err(StartError::NoTls(tail));
                    }
                    if !tail.contains("Address already in use") {
                        panic!("redis-server on port {port} exited early ({status})\n{tail}");
                    }
                    last_failure = tail;
                }
            }
        }
        panic!(
            "redis-server could not bind a free port in {BIND_ATTEMPTS} attempts\n{last_failure}"
        );
    }

    /// Kills the server with SIGKILL (no chance to save anything) and reaps
    /// it; its directory stays for [`RedisProcess::restart`].
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port, in the same directory, with
    /// the same arguments (it reloads whatever it persisted there), and waits
    /// until it answers `PING`.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let bin = server_bin();
        let ready_lines = self.ready_lines();
        self.child = spawn(&bin, &self.dir, self.listen, self.port, &self.extra)
            .unwrap_or_else(|e| spawn_failed(&bin, &e));
        match self.wait_ready(ready_lines) {
            Start::Ready => {}
            Start::TimedOut => panic!(
                "restarted redis-server on port {} was not ready (PING, or with TLS its ready log line) within {START_TIMEOUT:?}\n{}",
                self.port,
                log_tail(&self.dir, 30)
            ),
            Start::Exited(status) => panic!(
                "restarted redis-server on port {} exited ({status})\n{}",
                self.port,
                log_tail(&self.dir, 30)
            ),
        }
    }

    /// How often the log says the server is ready (once per start: a
    /// restart appends to the same log).
    fn ready_lines(&self) -> usize {
        fs::read_to_string(self.dir.join(LOG_FILE))
            .unwrap_or_default()
            .matches(READY_LINE)
            .count()
    }

    /// Waits until the server answers (plain) or logs its ready line for the
    /// `(before + 1)`th time (TLS).
    fn wait_ready(&mut self, before: usize) -> Start {
        let deadline = Instant::now() + START_TIMEOUT;
        let pid = self.child.id().to_string();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Start::Exited(status),
                Ok(None) => {}
                Err(e) => panic!("cannot poll redis-server: {e}"),
            }
            // No plain port to PING: the log is our child's own, so its
            // ready line means it bound the TLS port.
            if self.listen == Listen::Tls {
                if self.ready_lines() > before {
                    return Start::Ready;
                }
            } else if let Ok(Reply::Status(s)) = resp::command(self.port, &["PING"]) {
                // Make sure the answer comes from our child, not from another
                // server that already owns the port (ours will exit then).
                if s == "PONG"
                    && resp::text(self.port, &["INFO", "server"])
                        .is_ok_and(|info| resp::info_field(&info, "process_id") == Some(&pid))
                {
                    return Start::Ready;
                }
            }
            if Instant::now() >= deadline {
                return Start::TimedOut;
            }
            thread::sleep(POLL);
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
