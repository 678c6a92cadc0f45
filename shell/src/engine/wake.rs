//! The wake-up listener: follows the data plane's `ff:wake` channel and nudges
//! the scanner whose index got a new earliest member. After every (re)subscribe
//! every scanner rescans, since announcements made meanwhile were lost.

use super::runner::Wake;
use crate::store::{Store, SubEvent};
use ff_core::scan::WakeMessage;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

/// Index name → the scanner that reads it.
pub(crate) type Routes = Vec<(&'static str, UnboundedSender<Wake>)>;

pub(crate) async fn listen(
    store: Arc<dyn Store>,
    routes: Routes,
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
                    for (_, tx) in &routes {
                        let _ = tx.send(Wake::Rescan);
                    }
                }
                Some(SubEvent::Message(m)) => match WakeMessage::parse(&m) {
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
