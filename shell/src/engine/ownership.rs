//! Partition ownership, the shell half: a task heartbeats this replica in
//! Valkey, asks core what to claim or hand back ([`ff_core::ownership::decide`])
//! and publishes the partitions it holds to every scanner runner. A runner
//! scans only what it holds; a lease is trusted locally only until the time it
//! was granted for, measured from *before* the call that granted it, so a
//! replica cut off from the store stops scanning before anyone else may take
//! its partitions over (bar clock drift — the Lua re-checks cover that).

use crate::store::Store;
use ff_core::contract::ownership as contract;
use ff_core::ownership::{self, View};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// One partition held: its lease epoch and until when this replica trusts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    pub epoch: u64,
    pub until: Instant,
}

/// What a runner may scan: per partition index, held or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owned(pub Vec<Option<Held>>);

impl Owned {
    pub fn nothing(partitions: u16) -> Self {
        Self(vec![None; partitions as usize])
    }

    /// The epoch under which partition `p` is held at `now`, if it is.
    pub fn epoch(&self, p: usize, now: Instant) -> Option<u64> {
        self.0
            .get(p)
            .copied()
            .flatten()
            .filter(|h| h.until > now)
            .map(|h| h.epoch)
    }
}

/// What the ownership task publishes to the runners: the current [`Owned`],
/// and one [`Notify`] per runner woken (in a fixed order) when it changes.
/// Not a `tokio::sync::watch`: a watch spreads its waiters over several
/// queues picked by a per-thread random number, so the order receivers wake
/// in would differ between two simulator runs of the same seed.
#[derive(Clone)]
pub(crate) struct Publisher {
    owned: Arc<Mutex<Owned>>,
    subscribers: Arc<Mutex<Vec<Arc<Notify>>>>,
}

/// A runner's view of what its replica holds.
#[derive(Clone)]
pub(crate) struct Subscriber {
    owned: Arc<Mutex<Owned>>,
    notify: Arc<Notify>,
}

/// A publisher starting at `initial`, and its first subscriber.
pub(crate) fn channel(initial: Owned) -> (Publisher, Subscriber) {
    let p = Publisher {
        owned: Arc::new(Mutex::new(initial)),
        subscribers: Arc::default(),
    };
    let s = p.subscribe();
    (p, s)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data is a plain value: a panic elsewhere leaves it whole.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Publisher {
    pub fn subscribe(&self) -> Subscriber {
        let notify = Arc::new(Notify::new());
        lock(&self.subscribers).push(notify.clone());
        Subscriber {
            owned: self.owned.clone(),
            notify,
        }
    }

    /// Replace what is held; wake every subscriber if it changed.
    pub fn publish(&self, owned: Owned) {
        {
            let mut cur = lock(&self.owned);
            if *cur == owned {
                return;
            }
            *cur = owned;
        }
        for n in lock(&self.subscribers).iter() {
            // A permit is kept if the runner is not waiting right now.
            n.notify_one();
        }
    }
}

impl Subscriber {
    pub fn current(&self) -> Owned {
        lock(&self.owned).clone()
    }

    /// Wait until what is held changes (at once if it changed since the last wait).
    pub async fn changed(&self) {
        self.notify.notified().await
    }
}

/// Settings of the ownership task.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The ring of engines with this engine's filter.
    pub ring: contract::Ring,
    pub member: String,
    pub partitions: u16,
    pub lease_ttl: Duration,
    pub heartbeat: Duration,
}

/// A fresh member id for this replica (`e-` and 64 random bits).
pub(crate) fn new_member_id() -> String {
    format!("e-{:016x}", crate::client::random_u128() as u64)
}

/// What this replica holds in `view`, trusted until `sent + (expiry - now)`.
fn held(view: &View, s: &Settings, sent: Instant) -> Owned {
    let mut v = vec![None; s.partitions as usize];
    for (p, lease) in view.held_by(&s.member, s.partitions) {
        v[p as usize] = Some(Held {
            epoch: lease.epoch,
            until: sent + Duration::from_millis(lease.expires_ms.saturating_sub(view.now_ms)),
        });
    }
    Owned(v)
}

async fn sync(
    store: &dyn Store,
    s: &Settings,
    claim: &[u16],
    release: &[u16],
) -> Result<(View, Instant), String> {
    let sent = Instant::now();
    let call = contract::sync(
        &s.ring,
        &s.member,
        s.lease_ttl.as_millis() as u64,
        s.partitions,
        claim,
        release,
    );
    let reply = store.fcall(&call).await.map_err(|e| e.to_string())?;
    let view = contract::decode_view(contract::SYNC, &reply).map_err(|e| e.to_string())?;
    Ok((view, sent))
}

/// One heartbeat: renew, then claim/release what core says (a second call
/// only when something changes). Returns what is held afterwards, and
/// whether that is less than this replica's fair share (others still have
/// to hand some back: look again soon).
async fn beat(store: &dyn Store, s: &Settings) -> Result<(Owned, bool), String> {
    let (view, sent) = sync(store, s, &[], &[]).await?;
    let d = ownership::decide(&view, &s.member, s.partitions);
    if d.is_empty() {
        let owned = held(&view, s, sent);
        let short =
            owned.0.iter().flatten().count() < ownership::target(&view, &s.member, s.partitions);
        return Ok((owned, short));
    }
    let (after, sent) = sync(store, s, &d.claim, &d.release).await?;
    let owned = held(&after, s, sent);
    let count = owned.0.iter().flatten().count();
    let short = count < ownership::target(&after, &s.member, s.partitions);
    tracing::info!(
        member = %s.member,
        claimed = d.claim.len(),
        released = d.release.len(),
        members = after.live_members().len(),
        held = count,
        "partition ownership changed"
    );
    Ok((owned, short))
}

/// Run until shutdown: heartbeat every `heartbeat`, publish what is held; on
/// shutdown hand every lease back so the others take over at once.
pub(crate) async fn maintain(
    store: Arc<dyn Store>,
    s: Settings,
    tx: Publisher,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::info!(member = %s.member, ttl = ?s.lease_ttl, heartbeat = ?s.heartbeat, "partition ownership on");
    loop {
        if *shutdown.borrow() {
            break;
        }
        let mut pause = s.heartbeat;
        match beat(store.as_ref(), &s).await {
            Ok((owned, short)) => {
                tx.publish(owned);
                // Short of the fair share: the others release theirs at their
                // next heartbeat; pick them up soon after, not a heartbeat later.
                if short {
                    pause = s.heartbeat / 4;
                }
            }
            // What is held stays trusted until its local expiry, then lapses.
            Err(e) => tracing::warn!(member = %s.member, error = %e, "ownership heartbeat failed"),
        }
        tokio::select! {
            biased;
            r = shutdown.changed() => if r.is_err() { break },
            _ = tokio::time::sleep(pause) => {}
        }
    }
    // Stop scanning first, then hand the leases back.
    tx.publish(Owned::nothing(s.partitions));
    match store.fcall(&contract::leave(&s.ring, &s.member)).await {
        Ok(r) => match contract::decode_leave(&r) {
            Ok(n) => tracing::info!(member = %s.member, released = n, "left partition ownership"),
            Err(e) => tracing::warn!(member = %s.member, error = %e, "leave refused"),
        },
        Err(e) => {
            tracing::warn!(member = %s.member, error = %e, "cannot leave; leases lapse on their own")
        }
    }
}
