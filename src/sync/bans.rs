//! Peers refused for serving false data, for a while, in a bounded list.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use super::Time;

/// How long a peer that served false data is refused.
pub const BAN_TIME: Duration = Duration::from_secs(3600);
/// Most peers remembered as banned; a liar with many identities cannot
/// grow the list without end (the oldest ban goes first).
pub const MAX_BANNED: usize = 4096;

/// The ban list.
#[derive(Debug)]
pub struct Bans<P> {
    since: HashMap<P, Time>,
    time: Duration,
    max: usize,
}

impl<P: Copy + Eq + Hash> Default for Bans<P> {
    fn default() -> Self {
        Self::new(BAN_TIME, MAX_BANNED)
    }
}

impl<P: Copy + Eq + Hash> Bans<P> {
    /// A list that refuses each peer for `time`, holding at most `max`.
    pub fn new(time: Duration, max: usize) -> Self {
        Self {
            since: HashMap::new(),
            time,
            max: max.max(1),
        }
    }

    /// Refuses `peer` from `now` on.
    pub fn ban(&mut self, peer: P, now: Time) {
        if self.since.len() >= self.max
            && !self.since.contains_key(&peer)
            && let Some(oldest) = self.since.iter().min_by_key(|(_, t)| **t).map(|(p, _)| *p)
        {
            self.since.remove(&oldest);
        }
        self.since.insert(peer, now);
    }

    /// Whether `peer` is refused at `now`.
    pub fn is_banned(&self, peer: &P, now: Time) -> bool {
        self.since
            .get(peer)
            .is_some_and(|t| now.since(*t) < self.time)
    }

    /// Forgets bans that ran out.
    pub fn expire(&mut self, now: Time) {
        let time = self.time;
        self.since.retain(|_, t| now.since(*t) < time);
    }

    /// Peers banned (some may have run out since the last [`Bans::expire`]).
    pub fn len(&self) -> usize {
        self.since.len()
    }

    /// Whether none is banned.
    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_run_out_and_the_list_stays_bounded() {
        let mut b = Bans::new(Duration::from_secs(10), 3);
        let t = Time::ZERO;
        for p in 0..5u32 {
            b.ban(p, t + Duration::from_secs(p as u64));
        }
        assert_eq!(b.len(), 3);
        assert!(!b.is_banned(&0, t + Duration::from_secs(5)));
        assert!(b.is_banned(&4, t + Duration::from_secs(5)));
        assert!(!b.is_banned(&4, t + Duration::from_secs(14)));
        b.expire(t + Duration::from_secs(13));
        assert_eq!(b.len(), 1);
    }
}
