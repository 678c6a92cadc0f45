//! Pub/sub: subscriptions by channel, messages delivered in publish order
//! once the call that published has finished.
//!
//! A subscription models the connection RedisStore keeps: it says
//! [`SubEvent::Subscribed`] when it (re)subscribes, and a store restart
//! cycles it (the old connection is gone, the subscription comes back at
//! once and says `Subscribed` again; anything published in between — here,
//! nothing, since a restart is instantaneous — is lost).

use crate::store::SubEvent;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

#[derive(Debug)]
struct Subscription {
    channel: Vec<u8>,
    tx: UnboundedSender<SubEvent>,
}

#[derive(Debug, Default)]
pub struct PubSub {
    subs: Vec<Subscription>,
}

impl PubSub {
    pub fn subscribe(&mut self, channel: &[u8]) -> UnboundedReceiver<SubEvent> {
        let (tx, rx) = unbounded_channel();
        // Cannot fail: the receiver is right here.
        let _ = tx.send(SubEvent::Subscribed);
        self.prune();
        self.subs.push(Subscription {
            channel: channel.to_vec(),
            tx,
        });
        rx
    }

    /// Forget subscriptions whose receiver was dropped.
    fn prune(&mut self) {
        self.subs.retain(|s| !s.tx.is_closed());
    }

    /// Live subscribers of `channel` (what PUBLISH answers).
    pub fn count(&mut self, channel: &[u8]) -> usize {
        self.prune();
        self.subs.iter().filter(|s| s.channel == channel).count()
    }

    /// Deliver messages, in order, to every live subscriber of their channel.
    pub fn deliver(&mut self, messages: Vec<(Vec<u8>, Vec<u8>)>) {
        for (channel, msg) in messages {
            for s in self.subs.iter().filter(|s| s.channel == channel) {
                let _ = s.tx.send(SubEvent::Message(msg.clone()));
            }
        }
    }

    /// The store restarted: every subscription reconnects and says so.
    pub fn reconnect_all(&mut self) {
        self.prune();
        for s in &self.subs {
            let _ = s.tx.send(SubEvent::Subscribed);
        }
    }

    /// Subscriptions still followed (receivers not dropped).
    pub fn live(&mut self) -> usize {
        self.prune();
        self.subs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_publish_restart() {
        let mut ps = PubSub::default();
        let mut a = ps.subscribe(b"ch");
        let mut b = ps.subscribe(b"other");
        assert_eq!(a.try_recv(), Ok(SubEvent::Subscribed));
        assert_eq!(b.try_recv(), Ok(SubEvent::Subscribed));
        assert_eq!(ps.count(b"ch"), 1);
        ps.deliver(vec![
            (b"ch".to_vec(), b"1".to_vec()),
            (b"other".to_vec(), b"x".to_vec()),
            (b"ch".to_vec(), b"2".to_vec()),
        ]);
        assert_eq!(a.try_recv(), Ok(SubEvent::Message(b"1".to_vec())));
        assert_eq!(a.try_recv(), Ok(SubEvent::Message(b"2".to_vec())));
        assert!(a.try_recv().is_err());
        assert_eq!(b.try_recv(), Ok(SubEvent::Message(b"x".to_vec())));
        ps.reconnect_all();
        assert_eq!(a.try_recv(), Ok(SubEvent::Subscribed));
        drop(b);
        assert_eq!(ps.count(b"other"), 0);
        assert_eq!(ps.live(), 1);
    }
}
