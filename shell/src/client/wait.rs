//! Waiting for an execution's end, event-driven: one subscription to
//! [`ENDED_CHANNEL`] per client (started by the first wait), one entry per
//! execution waited on, and a re-read of the record whenever an
//! announcement may have been missed (the subscription was re-established)
//! or a slow net timer fires.

use super::Client;
use crate::error::{Error, Result};
use crate::failure::Failure;
use crate::store::SubEvent;
use ff_core::contract::execution::ExecutionRecord;
use ff_core::contract::watch::{self, ENDED_CHANNEL};
use ff_core::state::PublicState;
use ff_core::ExecutionId;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

/// A waiter re-reads the record this often even without an announcement:
/// the net under one lost in a way the subscription did not notice.
const REREAD_EVERY: Duration = Duration::from_secs(30);

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// Completed, with its result.
    Succeeded(T),
    /// Failed for good (retries spent, or a fatal failure).
    Failed {
        /// The last attempt's failure.
        failure: Failure,
        /// Attempts run.
        attempt: u32,
    },
    /// Cancelled (by a caller, a flow, or a budget breach).
    Cancelled {
        /// Why.
        reason: String,
    },
    /// Its deadline or an attempt timeout passed.
    Expired {
        /// Why.
        reason: String,
    },
    /// Skipped: a flow dependency could not be satisfied.
    Skipped {
        /// Why.
        reason: String,
    },
}

impl Outcome<Vec<u8>> {
    /// The outcome a terminal record holds; `None` while it is not terminal.
    pub fn of(r: &ExecutionRecord) -> Option<Self> {
        let reason = || r.last_error.clone().unwrap_or_default();
        Some(match r.public_state {
            PublicState::Completed => Outcome::Succeeded(r.result.clone().unwrap_or_default()),
            PublicState::Failed => Outcome::Failed {
                failure: Failure::decode(&reason()),
                attempt: r.attempt,
            },
            PublicState::Cancelled => Outcome::Cancelled { reason: reason() },
            PublicState::Expired => Outcome::Expired { reason: reason() },
            PublicState::Skipped => Outcome::Skipped { reason: reason() },
            _ => return None,
        })
    }
}

impl<T> Outcome<T> {
    /// The output of a success, converted; other outcomes as they are.
    pub fn try_map<U, E>(
        self,
        f: impl FnOnce(T) -> std::result::Result<U, E>,
    ) -> std::result::Result<Outcome<U>, E> {
        Ok(match self {
            Outcome::Succeeded(t) => Outcome::Succeeded(f(t)?),
            Outcome::Failed { failure, attempt } => Outcome::Failed { failure, attempt },
            Outcome::Cancelled { reason } => Outcome::Cancelled { reason },
            Outcome::Expired { reason } => Outcome::Expired { reason },
            Outcome::Skipped { reason } => Outcome::Skipped { reason },
        })
    }

    /// The output of a success.
    pub fn succeeded(self) -> Option<T> {
        match self {
            Outcome::Succeeded(t) => Some(t),
            _ => None,
        }
    }
}

/// A count of events that wakes its waiters in the order they began
/// waiting. (tokio's `watch` spreads its waiters over 8 queues chosen by a
/// process-wide RNG, so two runs of one simulator seed in one process woke
/// them in different orders.)
#[derive(Default)]
struct Counter {
    n: AtomicU64,
    notify: Notify,
}

impl Counter {
    fn bump(&self) {
        self.n.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn get(&self) -> u64 {
        self.n.load(Ordering::SeqCst)
    }

    /// Wait until the count is no longer `seen`; the new count.
    async fn changed_from(&self, seen: u64) -> u64 {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a bump in between still wakes it.
            notified.as_mut().enable();
            let n = self.get();
            if n != seen {
                return n;
            }
            notified.await;
        }
    }
}

/// One execution waited on: its announcements counted, and how many wait.
struct Entry {
    ended: Arc<Counter>,
    waiting: usize,
}

struct Shared {
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Counts re-subscriptions: each may have missed announcements.
    resubscribed: Counter,
}

/// A client's waiters. Dropping the last clone of the client ends the
/// subscription.
pub(crate) struct Waiters {
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

impl Waiters {
    /// Subscribe and wait until the subscription is live.
    async fn start(client: &Client) -> Result<Waiters> {
        let mut rx = client.store.subscribe(ENDED_CHANNEL).await?;
        // Nobody is registered before the first confirmation, so anything
        // before it concerns nobody.
        loop {
            match rx.recv().await {
                Some(SubEvent::Subscribed) => break,
                Some(SubEvent::Message(_)) => {}
                None => {
                    return Err(Error::Store(crate::error::StoreError::Unavailable(
                        "the done-announcement subscription ended".into(),
                    )))
                }
            }
        }
        let shared = Arc::new(Shared {
            entries: Mutex::new(BTreeMap::new()),
            resubscribed: Counter::default(),
        });
        let (stop, mut stopped) = oneshot::channel::<()>();
        let s = shared.clone();
        tokio::spawn(async move {
            loop {
                let ev = tokio::select! {
                    biased;
                    _ = &mut stopped => return,
                    ev = rx.recv() => ev,
                };
                match ev {
                    Some(SubEvent::Subscribed) => s.resubscribed.bump(),
                    Some(SubEvent::Message(m)) => {
                        let id = String::from_utf8_lossy(&m);
                        if let Some(e) = s.entries.lock().expect("waiters lock").get(id.as_ref()) {
                            e.ended.bump();
                        }
                    }
                    None => return,
                }
            }
        });
        Ok(Waiters {
            shared,
            _stop: stop,
        })
    }

    fn register(&self, id: &ExecutionId) -> Registration {
        let mut entries = self.shared.entries.lock().expect("waiters lock");
        let e = entries.entry(id.to_string()).or_insert_with(|| Entry {
            ended: Arc::default(),
            waiting: 0,
        });
        e.waiting += 1;
        Registration {
            shared: self.shared.clone(),
            id: id.to_string(),
            ended_seen: e.ended.get(),
            ended: e.ended.clone(),
            resubscribed_seen: self.shared.resubscribed.get(),
        }
    }

    /// Executions waited on right now (for tests and metrics).
    pub(crate) fn len(&self) -> usize {
        self.shared.entries.lock().expect("waiters lock").len()
    }
}

/// One waiter's interest; dropping it forgets the execution when nobody
/// else in this client waits on it.
struct Registration {
    shared: Arc<Shared>,
    id: String,
    ended: Arc<Counter>,
    ended_seen: u64,
    resubscribed_seen: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut entries = self.shared.entries.lock().expect("waiters lock");
        if let Some(e) = entries.get_mut(&self.id) {
            e.waiting -= 1;
            if e.waiting == 0 {
                entries.remove(&self.id);
            }
        }
    }
}

impl Client {
    async fn waiters(&self) -> Result<&Waiters> {
        self.waiters.get_or_try_init(|| Waiters::start(self)).await
    }

    /// Wait until `execution` is terminal, at most `timeout`; its outcome
    /// (the result as bytes: [`crate::JobHandle`] decodes typed ones).
    /// Event-driven: the execution's end is announced to this client, and
    /// the record is read again whenever an announcement may have been
    /// missed. [`Error::TimedOut`] when it is still running after `timeout`.
    pub async fn wait(
        &self,
        execution: &ExecutionId,
        timeout: Duration,
    ) -> Result<Outcome<Vec<u8>>> {
        self.wait_until(execution, Instant::now().checked_add(timeout))
            .await
    }

    pub(crate) async fn wait_until(
        &self,
        execution: &ExecutionId,
        deadline: Option<Instant>,
    ) -> Result<Outcome<Vec<u8>>> {
        let mut reg = self.waiters().await?.register(execution);
        // Marked after the registration: an end from now on is announced to it.
        let mut ended = watch::decode_watch(&self.call(&watch::watch(execution)).await?)?;
        loop {
            if ended {
                let r = self.get(execution).await?;
                if let Some(o) = Outcome::of(&r) {
                    return Ok(o);
                }
            }
            // (biased: an unbiased select draws from a process-wide RNG,
            // which the simulator does not control)
            ended = tokio::select! {
                biased;
                n = reg.ended.changed_from(reg.ended_seen) => {
                    reg.ended_seen = n;
                    true
                }
                n = reg.shared.resubscribed.changed_from(reg.resubscribed_seen) => {
                    reg.resubscribed_seen = n;
                    // Announcements may have been missed, and a restored
                    // server may have lost the mark.
                    watch::decode_watch(&self.call(&watch::watch(execution)).await?)?;
                    true
                }
                _ = tokio::time::sleep(REREAD_EVERY) => true,
                _ = sleep_until(deadline), if deadline.is_some() => {
                    return Err(Error::TimedOut {
                        execution: execution.clone(),
                    });
                }
            };
        }
    }

    /// Executions some `wait` of this client is waiting on.
    pub fn waiting(&self) -> usize {
        self.waiters.get().map_or(0, Waiters::len)
    }
}
