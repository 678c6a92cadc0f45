//! A minimal HTTP/1.1 responder for Prometheus scrapes: `GET /metrics`
//! answers a [`Registry`] in the Prometheus text format
//! ([`super::prometheus::encode`]); anything else is 404 (405 for
//! other methods). One request per connection (`Connection: close`), with
//! a bound on the request's size and on how long a client may take, so a
//! slow or hostile client costs one short-lived task. Real sockets: not built
//! under madsim.

use super::prometheus;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Longest request head read, in bytes.
const MAX_REQUEST: usize = 8 * 1024;
/// A client must send its request and take the reply within this.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Serve scrapes on `listener` until `shutdown` turns true (or its sender
/// is dropped). Connections are answered on their own tasks.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let registry = registry.clone();
                    tokio::spawn(async move {
                        if tokio::time::timeout(CLIENT_TIMEOUT, answer(stream, &registry)).await.is_err() {
                            tracing::debug!("metrics client too slow; dropped");
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

async fn answer(mut stream: TcpStream, registry: &Registry) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > MAX_REQUEST {
            let _ = respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            )
            .await;
            return;
        }
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let result = match (method, path) {
        ("GET", "/metrics") => {
            let body = prometheus::encode(registry);
            respond(&mut stream, "200 OK", prometheus::CONTENT_TYPE, &body).await
        }
        ("GET", _) => {
            respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                "not found; try /metrics\n",
            )
            .await
        }
        _ => respond(&mut stream, "405 Method Not Allowed", "text/plain", "").await,
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "metrics endpoint: reply not sent");
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
