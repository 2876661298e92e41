//! Gossip on topics the node follows, and nothing else.
//!
//! Gossipsub keeps every message it receives in its cache before it looks
//! at whether the node subscribed to the message's topic, and keeps it for
//! `history_length` heartbeats. Its data transform is the earliest point a
//! received message passes through after decoding, before the duplicate
//! check and the cache: [`Followed`] refuses there every topic that is not
//! one of the node's subscriptions, so a peer streaming large messages on
//! random topics costs the node its decoding and nothing it keeps.
//! Gossip's other paths are bounded already: an IHAVE on a topic not
//! followed is skipped, so nothing is asked for it, and an IWANT is
//! answered from the cache only.

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, PoisonError, RwLock};

use libp2p::gossipsub::{DataTransform, Message, RawMessage, TopicHash};
use prometheus_client::metrics::counter::Counter;

/// The topics followed, shared by the actor (which changes them as it
/// subscribes and unsubscribes) and gossipsub's transform (which reads
/// them for every message).
#[derive(Clone, Default)]
pub(super) struct Followed {
    topics: Arc<RwLock<HashSet<TopicHash>>>,
    /// Messages dropped for their topic.
    pub(super) dropped: Counter,
}

impl Followed {
    /// Follows `topic` from now on.
    pub(super) fn follow(&self, topic: TopicHash) {
        self.topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic);
    }

    /// Stops following `topic`.
    pub(super) fn unfollow(&self, topic: &TopicHash) {
        self.topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(topic);
    }

    fn follows(&self, topic: &TopicHash) -> bool {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(topic)
    }
}

impl DataTransform for Followed {
    /// Refuses a topic not followed. Gossipsub counts the refusal against
    /// the sender only on topics with score parameters, which are the
    /// followed ones, so a peer whose message crossed our unsubscribing is
    /// not blamed.
    fn inbound_transform(&self, raw: RawMessage) -> Result<Message, io::Error> {
        if !self.follows(&raw.topic) {
            self.dropped.inc();
            return Err(io::Error::other("a topic this node does not follow"));
        }
        Ok(Message {
            source: raw.source,
            data: raw.data,
            sequence_number: raw.sequence_number,
            topic: raw.topic,
        })
    }

    fn outbound_transform(&self, _topic: &TopicHash, data: Vec<u8>) -> Result<Vec<u8>, io::Error> {
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(topic: &str) -> RawMessage {
        RawMessage {
            source: None,
            data: vec![1, 2, 3],
            sequence_number: None,
            topic: TopicHash::from_raw(topic),
            signature: None,
            key: None,
            validated: false,
        }
    }

    #[test]
    fn only_followed_topics_pass() {
        let f = Followed::default();
        assert!(f.inbound_transform(raw("a")).is_err());
        f.follow(TopicHash::from_raw("a"));
        assert_eq!(f.inbound_transform(raw("a")).unwrap().data, vec![1, 2, 3]);
        assert!(f.inbound_transform(raw("b")).is_err());
        f.unfollow(&TopicHash::from_raw("a"));
        assert!(f.inbound_transform(raw("a")).is_err());
        assert_eq!(f.dropped.get(), 3);
    }
}
