//! A job's progress reports, throttled: the first goes out at once, later
//! ones at most every [`EVERY`]; a value reported meanwhile replaces the
//! waiting one, so a chatty handler costs at most a few writes a second and
//! the latest value always lands.

use crate::Client;
use ff_core::contract::execution::Lease;
use ff_core::contract::watch;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Shortest time between two progress writes of one job.
pub(crate) const EVERY: Duration = Duration::from_millis(250);

#[derive(Default)]
struct State {
    last_sent: Option<Instant>,
    pending: Option<Vec<u8>>,
    flushing: bool,
}

pub(crate) struct Progress {
    client: Client,
    lease: Lease,
    state: Mutex<State>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("lease", &self.lease)
            .finish()
    }
}

impl Progress {
    pub(crate) fn new(client: Client, lease: Lease) -> Self {
        Self {
            client,
            lease,
            state: Mutex::default(),
        }
    }

    pub(crate) fn report(this: &Arc<Self>, value: Vec<u8>) {
        let mut s = this.state.lock().expect("progress lock");
        s.pending = Some(value);
        if s.flushing {
            return;
        }
        s.flushing = true;
        let at = s.last_sent.map(|t| t + EVERY);
        drop(s);
        let p = this.clone();
        tokio::spawn(async move {
            if let Some(at) = at {
                tokio::time::sleep_until(at).await;
            }
            loop {
                let value = {
                    let mut s = p.state.lock().expect("progress lock");
                    match s.pending.take() {
                        Some(v) => {
                            s.last_sent = Some(Instant::now());
                            v
                        }
                        None => {
                            s.flushing = false;
                            return;
                        }
                    }
                };
                let r = p.client.call(&watch::progress(&p.lease, &value)).await;
                if let Err(e) = r.and_then(|r| Ok(watch::decode_progress(&r)?)) {
                    tracing::debug!(execution = %p.lease.execution, error = %e, "progress not stored");
                }
                tokio::time::sleep(EVERY).await;
            }
        });
    }
}
