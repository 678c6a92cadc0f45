//! The wake-up listener: follows the data plane's `ff:wake` channel and nudges
//! the scanner whose index got a new earliest member (`admission - 0`: the
//! unblock scanner, for a change anywhere). After every (re)subscribe the
//! scanners rescan, since announcements made meanwhile were lost: those the
//! shared rescan covers through it ([`super::heads`]), the others themselves.

use super::heads;
use super::runner::Wake;
use crate::store::{Store, SubEvent};
use ff_core::scan::WakeMessage;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

/// The announcement of an admission change anywhere (`admission - 0`).
pub(crate) const ADMISSION: &str = "admission";

/// Index name → the scanner that reads it.
pub(crate) type Routes = Vec<(&'static str, UnboundedSender<Wake>)>;

pub(crate) async fn listen(
    store: Arc<dyn Store>,
    routes: Routes,
    rescan: UnboundedSender<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rx = loop {
        match store.subscribe(WakeMessage::CHANNEL).await {
            Ok(rx) => break rx,
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow wake-ups; scanners run on their schedule until it works");
                tokio::select! {
                    biased;
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
                }
            }
        }
    };
    let mut malformed = 0u64;
    loop {
        tokio::select! {
            biased;
            ev = rx.recv() => match ev {
                Some(SubEvent::Subscribed) => {
                    tracing::debug!("wake-up subscription (re)established; rescanning");
                    for (index, tx) in &routes {
                        if !heads::covers(index) {
                            let _ = tx.send(Wake::Rescan);
                        }
                    }
                    let _ = rescan.send(());
                }
                Some(SubEvent::Message(m)) => match WakeMessage::parse(&m) {
                    Some(w) if w.index == ADMISSION => {
                        for (index, tx) in &routes {
                            if *index == ADMISSION {
                                let _ = tx.send(Wake::Changed);
                            }
                        }
                    }
                    Some(w) => {
                        for (index, tx) in &routes {
                            if *index == w.index {
                                let _ = tx.send(Wake::At { partition: w.partition, due_ms: w.due_ms });
                            }
                        }
                    }
                    None => {
                        malformed += 1;
                        tracing::warn!(malformed, "ignoring a malformed wake-up message");
                    }
                },
                None => return,
            },
            r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
        }
    }
}
