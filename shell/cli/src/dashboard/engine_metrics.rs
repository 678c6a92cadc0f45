//! The overview's engine panel: each engine's scanners (backlog, members
//! acted on, errors, cycles) read from its Prometheus endpoint
//! (`ff engine --metrics-addr`), when the dashboard is given its URL.
//!
//! The scrape is an HTTP/1.0 GET (the reply ends when the connection
//! closes: no chunking to undo) with a short timeout, and the text format is
//! read only for the four `ff_scanner_*` families it shows: a whole HTTP
//! client and Prometheus parser would be two dependencies for twenty lines.

use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A scrape that takes longer is shown as unreachable.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(800);
/// Largest reply read.
const MAX_REPLY: u64 = 4 << 20;

/// One scanner's figures from one engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ScannerRow {
    pub backlog: f64,
    pub acted: f64,
    pub errors: f64,
    pub cycles: f64,
}

/// What one engine's endpoint said: its scanners by name, or why not.
pub(crate) type Scrape = Result<BTreeMap<String, ScannerRow>, String>;

/// Scrape `url` (`http://host:port/path`).
pub(crate) async fn scrape(url: &str) -> Scrape {
    match tokio::time::timeout(SCRAPE_TIMEOUT, fetch(url)).await {
        Ok(Ok(body)) => Ok(parse(&body)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "no answer within {} ms",
            SCRAPE_TIMEOUT.as_millis()
        )),
    }
}

async fn fetch(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| "only http:// URLs are scraped".to_owned())?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    let mut s = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| format!("connect {host}: {e}"))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.take(MAX_REPLY)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "not an HTTP reply".to_owned())?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("answered {status}"));
    }
    Ok(body.to_owned())
}

/// The `ff_scanner_*` samples of a Prometheus text exposition, by scanner
/// (summed over a family's other labels, e.g. backlog's `index`).
pub(crate) fn parse(text: &str) -> BTreeMap<String, ScannerRow> {
    let mut out: BTreeMap<String, ScannerRow> = BTreeMap::new();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, labels)) = series.split_once('{') else {
            continue;
        };
        let (Some(scanner), Ok(v)) = (label(labels, "scanner"), value.parse::<f64>()) else {
            continue;
        };
        let row = out.entry(scanner.to_owned()).or_default();
        match name {
            "ff_scanner_backlog" => row.backlog += v,
            "ff_scanner_acted_total" => row.acted += v,
            "ff_scanner_errors_total" => row.errors += v,
            "ff_scanner_cycles_total" => row.cycles += v,
            _ => {}
        }
    }
    out
}

/// The value of `key` in a label set `a="x",b="y"}` (our label values hold
/// no quotes or commas).
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels
        .trim_end_matches('}')
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scanner_families_and_nothing_else() {
        let text = "# HELP ff_scanner_backlog due members\n\
ff_scanner_backlog{scanner=\"delayed_promoter\",index=\"delayed\"} 12\n\
ff_scanner_acted_total{scanner=\"delayed_promoter\"} 340\n\
ff_scanner_errors_total{scanner=\"lease_expiry\"} 2\n\
ff_scanner_cycles_total{scanner=\"lease_expiry\"} 9\n\
ff_listener_messages_total 5\n\
ff_scanner_acted_total{scanner=\"x\"} not-a-number\n";
        let got = parse(text);
        assert_eq!(got.len(), 2);
        assert_eq!(got["delayed_promoter"].backlog, 12.0);
        assert_eq!(got["delayed_promoter"].acted, 340.0);
        assert_eq!(got["lease_expiry"].errors, 2.0);
        assert_eq!(got["lease_expiry"].cycles, 9.0);
    }
}
