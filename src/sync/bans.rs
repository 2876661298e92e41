//! Peers refused for serving false data, for a while, in a bounded list;
//! and the strikes that bring a peer there for passing on junk.

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

/// Rejected messages that get a peer banned, when they come within
/// [`STRIKE_WINDOW`] of each other. More than one: a node of another
/// version may pass on an object we refuse once; no honest node keeps
/// doing it. Gossip scoring graylists such a peer after two rejects, until
/// its score decays; the third after that is the last.
pub const STRIKES_TO_BAN: u32 = 3;
/// How long a strike is remembered.
pub const STRIKE_WINDOW: Duration = Duration::from_secs(600);
/// Most peers with strikes remembered (the oldest goes first).
pub const MAX_STRUCK: usize = 4096;

/// Rejected messages per peer, in a bounded map.
#[derive(Debug)]
pub struct Strikes<P> {
    peers: HashMap<P, (u32, Time)>,
    max: usize,
}

impl<P: Copy + Eq + Hash> Default for Strikes<P> {
    fn default() -> Self {
        Self::new(MAX_STRUCK)
    }
}

impl<P: Copy + Eq + Hash> Strikes<P> {
    /// No strikes yet; at most `max` peers remembered.
    pub fn new(max: usize) -> Self {
        Self {
            peers: HashMap::new(),
            max: max.max(1),
        }
    }

    /// Counts a rejected message of `peer` at `now`; returns whether that
    /// makes [`STRIKES_TO_BAN`] (its strikes are then forgotten).
    pub fn strike(&mut self, peer: P, now: Time) -> bool {
        if self.peers.len() >= self.max && !self.peers.contains_key(&peer) {
            self.peers.retain(|_, (_, t)| now.since(*t) < STRIKE_WINDOW);
            if self.peers.len() >= self.max
                && let Some(oldest) = self
                    .peers
                    .iter()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(p, _)| *p)
            {
                self.peers.remove(&oldest);
            }
        }
        let entry = self.peers.entry(peer).or_insert((0, now));
        if now.since(entry.1) >= STRIKE_WINDOW {
            entry.0 = 0;
        }
        *entry = (entry.0 + 1, now);
        if entry.0 >= STRIKES_TO_BAN {
            self.peers.remove(&peer);
            return true;
        }
        false
    }

    /// Peers with strikes.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether none has any.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
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

    #[test]
    fn strikes_ban_at_the_third_and_stay_bounded() {
        let mut s = Strikes::new(2);
        let t = Time::ZERO;
        assert!(!s.strike(1u32, t));
        assert!(!s.strike(1, t + Duration::from_secs(1)));
        assert!(s.strike(1, t + Duration::from_secs(2)));
        assert!(s.is_empty());
        // Strikes far apart do not add up.
        assert!(!s.strike(2, t));
        assert!(!s.strike(2, t + STRIKE_WINDOW));
        assert!(!s.strike(2, t + STRIKE_WINDOW * 2));
        for p in 3..10 {
            s.strike(p, t + STRIKE_WINDOW * 2);
        }
        assert_eq!(s.len(), 2);
    }
}
