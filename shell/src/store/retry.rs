//! Riding through a lost connection: every request of a [`RedisStore`]
//! that fails with [`StoreError::Unavailable`] (connection dropped or
//! refused, a timeout, a server loading its data, a cluster failing over) is
//! sent again after a jittered exponential backoff, until it answers or the
//! retry window has passed since the first send; then the caller sees the
//! last `Unavailable`.
//!
//! A repeat may reach a server that applied the first send and lost only
//! the reply. That is safe because every data-plane function answers its
//! own repeat (each contract in `ff_core::contract` says how: replayed from
//! a fence, deduplicated by id or sequence, or idempotent by nature), and
//! the plain commands the shell sends are reads or idempotent writes. A
//! call built `not_repeatable` (nothing tells its repeat from a second
//! call) is sent once.
//!
//! [`RedisStore`]: super::RedisStore

use crate::engine::prometheus::counter;
use crate::error::StoreError;
use backon::{ExponentialBuilder, Retryable};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The first backoff; it doubles up to [`MAX_DELAY`], each one jittered.
const MIN_DELAY: Duration = Duration::from_millis(20);
/// A restarting server is tried at least this often.
const MAX_DELAY: Duration = Duration::from_secs(1);

/// How a store's requests fared with the retry (all counts since connect).
#[derive(Debug, Default)]
pub struct RetryStats {
    /// Requests sent again after a transient failure.
    pub retries: AtomicU64,
    /// Requests that answered after at least one retry.
    pub recovered: AtomicU64,
    /// Requests that gave up: the window passed (or was zero) and the
    /// caller saw `Unavailable`.
    pub gave_up: AtomicU64,
}

/// The retry rule of one store.
#[derive(Debug, Clone)]
pub(crate) struct Retry {
    window: Duration,
    stats: Arc<RetryStats>,
}

impl Retry {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            stats: Arc::default(),
        }
    }

    pub(crate) fn stats(&self) -> &Arc<RetryStats> {
        &self.stats
    }

    /// Run `send` until it answers with anything but `Unavailable`, or the
    /// window has passed.
    pub(crate) async fn run<T, F, Fut>(&self, what: &str, send: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let started = Instant::now();
        let retried = AtomicU64::new(0);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(MIN_DELAY)
            .with_max_delay(MAX_DELAY)
            .with_jitter()
            .without_max_times();
        let result = send
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| {
                matches!(e, StoreError::Unavailable(_)) && started.elapsed() < self.window
            })
            .notify(|e, delay| {
                if retried.fetch_add(1, Relaxed) == 0 {
                    tracing::warn!(request = what, error = %e, "store unavailable; retrying");
                } else {
                    tracing::debug!(request = what, error = %e, ?delay, "store still unavailable; retrying");
                }
                self.stats.retries.fetch_add(1, Relaxed);
            })
            .await;
        let retried = retried.into_inner();
        match &result {
            Err(StoreError::Unavailable(e)) => {
                self.stats.gave_up.fetch_add(1, Relaxed);
                tracing::warn!(request = what, error = %e, retried, elapsed = ?started.elapsed(), "store unavailable; giving up");
            }
            _ if retried > 0 => {
                self.stats.recovered.fetch_add(1, Relaxed);
                tracing::info!(request = what, retried, elapsed = ?started.elapsed(), "store answered again");
            }
            _ => {}
        }
        result
    }

    /// Put the counters into `registry`, read at each scrape.
    pub(crate) fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(RetryCollector(self.stats.clone())));
    }
}

#[derive(Debug)]
struct RetryCollector(Arc<RetryStats>);

type Field = (&'static str, &'static str, fn(&RetryStats) -> &AtomicU64);

/// (family without `_total`, help, counter).
const COUNTERS: &[Field] = &[
    (
        "ff_store_retries",
        "Requests sent again after the store was unavailable.",
        |s| &s.retries,
    ),
    (
        "ff_store_recovered",
        "Requests that answered after at least one retry.",
        |s| &s.recovered,
    ),
    (
        "ff_store_unavailable",
        "Requests that gave up after the retry window.",
        |s| &s.gave_up,
    ),
];

impl Collector for RetryCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        for (name, help, get) in COUNTERS {
            counter(
                &mut e,
                name,
                help,
                [(Vec::new(), get(&self.0).load(Relaxed))],
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::prometheus::encode;
    use std::sync::Mutex;

    fn unavailable() -> StoreError {
        StoreError::Unavailable("connection refused".into())
    }

    #[tokio::test]
    async fn retries_only_unavailable_within_the_window() {
        let retry = Retry::new(Duration::from_secs(30));
        let sent = Mutex::new(0);
        let r = retry
            .run("test", || async {
                let mut n = sent.lock().unwrap();
                *n += 1;
                if *n < 4 {
                    Err(unavailable())
                } else {
                    Ok(*n)
                }
            })
            .await;
        assert_eq!(r, Ok(4));
        assert_eq!(retry.stats().retries.load(Relaxed), 3);
        assert_eq!(retry.stats().recovered.load(Relaxed), 1);

        // Any other error is the answer: it is not sent again.
        let sent = Mutex::new(0);
        let r: Result<(), _> = retry
            .run("test", || async {
                *sent.lock().unwrap() += 1;
                Err(StoreError::Server("ERR wrong".into()))
            })
            .await;
        assert_eq!(r, Err(StoreError::Server("ERR wrong".into())));
        assert_eq!(*sent.lock().unwrap(), 1);
    }

    #[test]
    fn gives_up_after_the_window_with_the_last_error() {
        // Real time: the window is measured on the clock the requests take.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let retry = Retry::new(Duration::from_millis(150));
        let sent = Mutex::new(0u32);
        let started = Instant::now();
        let r: Result<(), _> = rt.block_on(retry.run("test", || async {
            *sent.lock().unwrap() += 1;
            Err(unavailable())
        }));
        let took = started.elapsed();
        assert_eq!(r, Err(unavailable()));
        assert!(took >= Duration::from_millis(150), "{took:?}");
        assert!(
            took < Duration::from_millis(150) + 2 * MAX_DELAY,
            "{took:?}"
        );
        assert!(*sent.lock().unwrap() >= 3);
        assert_eq!(retry.stats().gave_up.load(Relaxed), 1);

        // A zero window never retries.
        let none = Retry::new(Duration::ZERO);
        let sent = Mutex::new(0u32);
        let r: Result<(), _> = rt.block_on(none.run("test", || async {
            *sent.lock().unwrap() += 1;
            Err(unavailable())
        }));
        assert_eq!(r, Err(unavailable()));
        assert_eq!(*sent.lock().unwrap(), 1);
    }

    #[test]
    fn the_metrics_page_lists_every_store_family() {
        let page = include_str!("../../../docs/metrics.md");
        let mut r = Registry::default();
        Retry::new(Duration::ZERO).register_metrics(&mut r);
        let text = encode(&r);
        assert_eq!(text.matches("# TYPE ").count(), COUNTERS.len());
        for family in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let (name, kind) = family.split_once(' ').unwrap();
            let row = format!("| `{name}` | {kind} |");
            assert!(page.contains(&row), "docs/metrics.md lacks {row:?}");
        }
    }
}
