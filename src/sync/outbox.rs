//! Announcements waiting to go out: gossip refuses to publish before a
//! peer's subscription has arrived, so what cannot go yet waits here, for a
//! while and in bounded number.

use std::collections::VecDeque;
use std::time::Duration;

use super::Time;

/// Announcements waiting for a subscribed peer.
pub const OUTBOX: usize = 4096;
/// How long an announcement waits for a subscribed peer before it is dropped.
pub const OUTBOX_TTL: Duration = Duration::from_secs(600);

/// What became of one attempt to publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// It went (or an identical one already had).
    Done,
    /// No peer could take it yet: try again later.
    Later,
    /// It cannot go at all.
    Failed,
}

/// The queue of announcements: `(topic, data)` with when each was queued.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: VecDeque<(String, Vec<u8>, Time)>,
}

impl Outbox {
    /// Queues an announcement. Returns false when the queue was full and
    /// the oldest was dropped to make room (catch-up carries it later).
    pub fn push(&mut self, topic: String, data: Vec<u8>, now: Time) -> bool {
        let room = self.queue.len() < OUTBOX;
        if !room {
            self.queue.pop_front();
        }
        self.queue.push_back((topic, data, now));
        room
    }

    /// Tries every waiting announcement with `send`, keeping those it says
    /// to try later, unless they waited longer than [`OUTBOX_TTL`].
    ///
    /// Once a topic's announcement is to go later, the rest of that topic
    /// waits untried: with no peer on the topic, each try builds and signs
    /// a message for nothing, and a full queue tried at every flush cost
    /// thousands of them.
    pub fn flush(&mut self, now: Time, mut send: impl FnMut(&str, &[u8]) -> Sent) {
        let mut keep = VecDeque::new();
        let mut later: Vec<String> = Vec::new();
        while let Some((topic, data, since)) = self.queue.pop_front() {
            let fresh = now.since(since) < OUTBOX_TTL;
            if later.contains(&topic) {
                if fresh {
                    keep.push_back((topic, data, since));
                }
                continue;
            }
            if send(&topic, &data) == Sent::Later {
                later.push(topic.clone());
                if fresh {
                    keep.push_back((topic, data, since));
                }
            }
        }
        self.queue = keep;
    }

    /// Announcements waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_announcements_go_later_or_expire() {
        let mut o = Outbox::default();
        let t = Time::ZERO;
        o.push("a".into(), vec![1], t);
        o.push("b".into(), vec![2], t);
        let mut sent = Vec::new();
        o.flush(t, |topic, _| {
            sent.push(topic.to_owned());
            if topic == "a" {
                Sent::Done
            } else {
                Sent::Later
            }
        });
        assert_eq!(sent, ["a", "b"]);
        assert_eq!(o.len(), 1);
        o.flush(t + OUTBOX_TTL, |_, _| Sent::Later);
        assert!(o.is_empty());
    }

    #[test]
    fn a_topic_that_must_wait_is_tried_once_per_flush() {
        let mut o = Outbox::default();
        for i in 0..100u8 {
            o.push("quiet".into(), vec![i], Time::ZERO);
            o.push("busy".into(), vec![i], Time::ZERO);
        }
        let mut tries = (0, 0);
        o.flush(Time::ZERO, |topic, _| {
            if topic == "quiet" {
                tries.0 += 1;
                Sent::Later
            } else {
                tries.1 += 1;
                Sent::Done
            }
        });
        assert_eq!(tries, (1, 100));
        assert_eq!(o.len(), 100, "the waiting topic keeps all it had");
        let mut order = Vec::new();
        o.flush(Time::ZERO, |_, data| {
            order.push(data[0]);
            Sent::Done
        });
        assert_eq!(order, (0..100).collect::<Vec<u8>>(), "in order");
    }

    #[test]
    fn a_full_outbox_drops_the_oldest() {
        let mut o = Outbox::default();
        for i in 0..OUTBOX {
            assert!(o.push(i.to_string(), vec![], Time::ZERO));
        }
        assert!(!o.push("last".into(), vec![], Time::ZERO));
        assert_eq!(o.len(), OUTBOX);
        let mut first = None;
        o.flush(Time::ZERO, |t, _| {
            first.get_or_insert(t.to_owned());
            Sent::Done
        });
        assert_eq!(first.as_deref(), Some("1"));
    }
}
