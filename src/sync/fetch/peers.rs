//! What fetching charges each peer: the requests it holds open, and the
//! strikes it earns by leaving requests unanswered. Both maps are bounded:
//! a peer has an entry in `open` only while it holds requests (at most
//! [`FetchLimits::max_requests_per_peer`](super::FetchLimits)), and
//! `strikes` keeps at most [`MAX_REMEMBERED`] peers.

use std::collections::HashMap;
use std::time::Duration;

use super::super::{Peer, Time};
use super::blob::Rate;
use crate::proto::pieces::PIECE_LEN;

/// Strikes that get a peer banned. A strike earned while the peer is still
/// backing off from the last one is the same incident and is not counted,
/// so one stalled link (many requests at once) costs one strike.
pub const MAX_STRIKES: u32 = 6;
/// One strike is forgiven per this much time without a new one.
const FORGIVE: Duration = Duration::from_secs(60);
/// The first back-off; each strike doubles it, up to [`MAX_BACKOFF`].
const BACKOFF: Duration = Duration::from_secs(1);
/// The longest back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Peers whose strikes are remembered (connected or not): beyond, the one
/// struck longest ago is forgotten.
pub const MAX_REMEMBERED: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Strikes {
    count: u32,
    last: Time,
    until: Time,
}

impl Strikes {
    /// The count with the time since the last strike forgiven.
    fn now(&self, now: Time) -> u32 {
        let forgiven = now.since(self.last).as_secs() / FORGIVE.as_secs();
        self.count
            .saturating_sub(u32::try_from(forgiven).unwrap_or(u32::MAX))
    }
}

/// The per-peer accounting of the fetcher.
#[derive(Debug)]
pub(super) struct Peers<P> {
    /// Requests each peer holds open (answered or not by the fetch that
    /// sent them): what it serves counts against its cap until it answers
    /// or the request fails.
    open: HashMap<P, usize>,
    strikes: HashMap<P, Strikes>,
    /// What each connected peer delivered lately (dropped when it goes,
    /// so bounded by the connections).
    rates: HashMap<P, Rate>,
}

impl<P> Default for Peers<P> {
    fn default() -> Self {
        Self {
            open: HashMap::new(),
            strikes: HashMap::new(),
            rates: HashMap::new(),
        }
    }
}

impl<P: Peer> Peers<P> {
    /// Requests `peer` holds open.
    pub(super) fn open(&self, peer: &P) -> usize {
        self.open.get(peer).copied().unwrap_or(0)
    }

    pub(super) fn sent(&mut self, peer: P) {
        *self.open.entry(peer).or_default() += 1;
    }

    pub(super) fn answered(&mut self, peer: &P) {
        if let Some(n) = self.open.get_mut(peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.open.remove(peer);
            }
        }
    }

    /// Whether `peer` is not to be asked now.
    pub(super) fn backing_off(&self, peer: &P, now: Time) -> bool {
        self.strikes.get(peer).is_some_and(|s| s.until > now)
    }

    /// Strikes now against `peer`.
    pub(super) fn strikes(&self, peer: &P, now: Time) -> u32 {
        self.strikes.get(peer).map_or(0, |s| s.now(now))
    }

    /// `peer` left a request unanswered. Returns true when that was its
    /// last strike: it is to be banned (and is forgotten here).
    pub(super) fn strike(&mut self, peer: P, now: Time) -> bool {
        if self.backing_off(&peer, now) {
            return false;
        }
        let count = self.strikes(&peer, now) + 1;
        if count >= MAX_STRIKES {
            self.strikes.remove(&peer);
            return true;
        }
        if self.strikes.len() >= MAX_REMEMBERED && !self.strikes.contains_key(&peer) {
            self.forget_oldest();
        }
        let backoff = BACKOFF
            .saturating_mul(1 << (count - 1).min(6))
            .min(MAX_BACKOFF);
        self.strikes.insert(
            peer,
            Strikes {
                count,
                last: now,
                until: now + backoff,
            },
        );
        false
    }

    fn forget_oldest(&mut self) {
        if let Some(oldest) = self
            .strikes
            .iter()
            .min_by_key(|(_, s)| s.last)
            .map(|(p, _)| *p)
        {
            self.strikes.remove(&oldest);
        }
    }

    /// `peer` disconnected: its open requests died with the connection.
    /// Its strikes stay, so coming back does not wipe them.
    pub(super) fn gone(&mut self, peer: &P) {
        self.open.remove(peer);
        self.rates.remove(peer);
    }

    /// What `peer` delivered lately, if measured.
    pub(super) fn rate(&self, peer: &P) -> Option<Rate> {
        self.rates.get(peer).copied()
    }

    /// `peer` answered with `bytes` good bytes in `took`. An answer of a
    /// piece or more forgives one strike: a peer behind a link that
    /// freezes and comes back on a fresh connection is making progress,
    /// and is not to be banned as one that holds requests and sends
    /// nothing.
    pub(super) fn delivered(&mut self, peer: P, bytes: u64, took: Duration) {
        if bytes < PIECE_LEN {
            // The time of a small answer is the round trip, not the link.
            return;
        }
        let rate = Rate::sample(self.rates.get(&peer).copied(), bytes, took);
        self.rates.insert(peer, rate);
        if bytes >= PIECE_LEN
            && let Some(s) = self.strikes.get_mut(&peer)
        {
            s.count = s.count.saturating_sub(1);
        }
    }

    /// A request of `peer` stalled: ask it for less.
    pub(super) fn slowed(&mut self, peer: P) {
        let rate = Rate::stalled(self.rates.get(&peer).copied());
        self.rates.insert(peer, rate);
    }

    /// Peers with an entry (for tests of the bound).
    pub(super) fn entries(&self) -> usize {
        self.open.len() + self.strikes.len()
    }

    pub(super) fn clear(&mut self) {
        self.open.clear();
        self.rates.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> Time {
        Time::after(Duration::from_secs(secs))
    }

    #[test]
    fn strikes_back_off_coalesce_are_forgiven_and_end_in_a_ban() {
        let mut p: Peers<u32> = Peers::default();
        assert!(!p.strike(1, t(0)));
        assert!(p.backing_off(&1, t(0)));
        // The same incident (still backing off): not counted again.
        assert!(!p.strike(1, t(0)));
        assert_eq!(p.strikes(&1, t(0)), 1);
        assert!(!p.backing_off(&1, t(1)));
        // Forgiven after a quiet minute.
        assert_eq!(p.strikes(&1, t(61)), 0);
        let mut now = 100;
        let mut banned = false;
        for _ in 0..MAX_STRIKES {
            banned = p.strike(1, t(now));
            now += 40; // past every back-off but the longest, before forgiveness
        }
        assert!(banned, "{MAX_STRIKES} strikes in a row ban");
    }

    #[test]
    fn strikes_remember_a_bounded_number_of_peers() {
        let mut p: Peers<u32> = Peers::default();
        for i in 0..(MAX_REMEMBERED as u32 + 100) {
            p.strike(i, t(u64::from(i)));
        }
        assert_eq!(p.strikes.len(), MAX_REMEMBERED);
        assert!(p.strikes.contains_key(&(MAX_REMEMBERED as u32 + 99)));
        assert!(!p.strikes.contains_key(&0), "the oldest is forgotten");
    }
}
