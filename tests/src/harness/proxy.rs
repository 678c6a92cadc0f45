//! A TCP proxy in front of a real server that can lose a reply after the
//! server applied the request: the one fault a retry has to be safe against.
//! Everything else passes through unchanged.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Debug, Default)]
struct Shared {
    /// The request bytes whose reply the proxy loses next (once).
    lose_reply_to: Mutex<Option<Vec<u8>>>,
    /// Replies lost so far.
    lost: AtomicU64,
    /// Connections accepted so far.
    accepted: AtomicU64,
    stopped: AtomicBool,
}

/// A proxy on a free loopback port forwarding to `127.0.0.1:<target>`.
/// Dropping it stops accepting; open connections end with the server's.
#[derive(Debug)]
pub struct LossyProxy {
    port: u16,
    shared: Arc<Shared>,
}

impl LossyProxy {
    /// Starts forwarding to the server on `target_port`.
    pub fn start(target_port: u16) -> LossyProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cannot bind the proxy: {e}"));
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                if s.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, target_port)) else {
                    continue;
                };
                s.accepted.fetch_add(1, Ordering::SeqCst);
                pair(client, server, s.clone());
            }
        });
        LossyProxy { port, shared }
    }

    /// `redis://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The next request whose bytes contain `needle` (e.g. a function's
    /// name) reaches the server; its reply does not reach the client, whose
    /// connection is closed instead. Once.
    pub fn lose_reply_to(&self, needle: &str) {
        *self.shared.lose_reply_to.lock().unwrap() = Some(needle.as_bytes().to_vec());
    }

    /// Replies lost so far.
    pub fn lost(&self) -> u64 {
        self.shared.lost.load(Ordering::SeqCst)
    }

    /// Connections accepted so far (a reconnect adds one).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Pump both ways; the client-to-server half arms `drop_next` before it
/// forwards a matching request, so its reply cannot overtake the mark.
fn pair(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let drop_next = Arc::new(AtomicBool::new(false));
    let (mut c_in, mut s_out) = (
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
    );
    let (arm, sh) = (drop_next.clone(), shared.clone());
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match c_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            {
                let mut want = sh.lose_reply_to.lock().unwrap();
                if want.as_deref().is_some_and(|w| contains(&buf[..n], w)) {
                    *want = None;
                    arm.store(true, Ordering::SeqCst);
                }
            }
            if s_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_out.shutdown(Shutdown::Both);
    });
    let (mut s_in, mut c_out) = (server, client);
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match s_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if drop_next.swap(false, Ordering::SeqCst) {
                shared.lost.fetch_add(1, Ordering::SeqCst);
                break;
            }
            if c_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_out.shutdown(Shutdown::Both);
        let _ = s_in.shutdown(Shutdown::Both);
    });
}
