//! Which of a peer's gossip subscriptions the node records.
//!
//! gossipsub's default filter caps a peer at 100 topics (and 100
//! subscriptions a message) and past it drops the peer's whole
//! subscription message with nothing but a log line: a mirror carrying
//! more than 100 publishers would be known to follow none of them, so
//! announcements would never reach it over gossip, and any string of any
//! length counted as a topic. Here the bound is explicit: only topics of
//! Kolokol's shape are recorded (a fixed length, so one costs a fixed few
//! bytes; anything else is dropped one by one and counted in
//! `kolokol_subscriptions_dropped`), and at most [`MAX_PEER_TOPICS`] per
//! peer. A message that would take a peer past the bound is ignored whole
//! (gossipsub logs it; the actor counts peers at the bound in
//! `kolokol_peers_at_topic_bound`): the peer's earlier subscriptions stay,
//! and no other peer's are touched, so a peer over it only loses its own.

use libp2p::gossipsub::{MaxCountSubscriptionFilter, TopicHash, TopicSubscriptionFilter};
use prometheus_client::metrics::counter::Counter;

/// Topics recorded per peer, at most, and subscriptions in one message.
/// An honest peer follows one topic per publisher it carries.
pub const MAX_PEER_TOPICS: usize = 256;

/// The beginning of every publisher topic (see `wire::topic_name`).
const TOPIC_PREFIX: &str = "kolokol/v1/publisher/";
/// A publisher topic: the prefix and a 32-byte key in hex.
const TOPIC_LEN: usize = TOPIC_PREFIX.len() + 64;

/// Publisher topics only, counting what it drops.
pub(super) struct Shaped {
    dropped: Counter,
}

/// The node's subscription filter.
pub(super) type Topics = MaxCountSubscriptionFilter<Shaped>;

/// The filter, counting dropped subscriptions in `dropped`.
pub(super) fn filter(dropped: Counter) -> Topics {
    MaxCountSubscriptionFilter {
        filter: Shaped { dropped },
        max_subscribed_topics: MAX_PEER_TOPICS,
        max_subscriptions_per_request: MAX_PEER_TOPICS,
    }
}

/// Whether `topic` is a publisher topic.
fn shaped(topic: &TopicHash) -> bool {
    let t = topic.as_str();
    t.len() == TOPIC_LEN
        && t.starts_with(TOPIC_PREFIX)
        && t[TOPIC_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl TopicSubscriptionFilter for Shaped {
    // Asked for the node's own subscriptions and for each of a peer's:
    // the node's own are always publisher topics, so what is dropped here
    // is a peer's.
    fn can_subscribe(&mut self, topic: &TopicHash) -> bool {
        let ok = shaped(topic);
        if !ok {
            self.dropped.inc();
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::SecretKey;
    use crate::sync::messages::topic_name;

    #[test]
    fn only_publisher_topics_pass() {
        let dropped = Counter::default();
        let mut f = filter(dropped.clone());
        let real = TopicHash::from_raw(topic_name(&SecretKey::from_seed(&[1; 32]).public()));
        assert!(f.can_subscribe(&real));
        for junk in [
            "junk".to_string(),
            "x".repeat(60_000),
            format!("{TOPIC_PREFIX}{}", "G".repeat(64)),
            format!("{TOPIC_PREFIX}{}", "a".repeat(63)),
        ] {
            assert!(!f.can_subscribe(&TopicHash::from_raw(junk)));
        }
        assert_eq!(dropped.get(), 4);
    }
}
