//! The address book: the peers a node dials by its own choice (its
//! configured mirrors, the mirrors it met, those a signed mirror list
//! names), where each was reached, and when to dial it again.
//!
//! Pure: no clock and no IO. The driver (the net actor) tells it of dials
//! that failed, connections that came up or dropped, addresses learned,
//! and calls [`Book::plan`] with the time now; the book answers with the
//! dials to make. Failed peers are retried after an exponential back-off
//! with jitter, so a reader started while its mirror is blocked gets
//! through soon after the block is lifted, and a thousand readers cut off
//! at once do not redial in step. Jitter comes from a seed given to the
//! book: tests run it on virtual time and get the same dials every run.
//!
//! Everything is bounded: [`MAX_PEERS`] peers, [`MAX_ADDRS`] addresses
//! each, [`MAX_ADDR_BYTES`] per address. A flood of learned addresses
//! pushes out other learned ones, never a configured peer.

mod saved;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::sync::Time;

pub use saved::{MAX_SAVED_BYTES, forget_listed, listed_peer};

/// Peers the book holds at most.
pub const MAX_PEERS: usize = 256;
/// Addresses kept per peer at most.
pub const MAX_ADDRS: usize = 8;
/// Longest address kept, encoded: real ones are far shorter.
pub const MAX_ADDR_BYTES: usize = 256;

/// Where the book learned an address. The order is the order of trust:
/// what the user configured first, then what a publisher signed, then
/// what peers said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Source {
    /// Named in the node's configuration (bootstrap peers).
    Config,
    /// From a publisher's signed mirror list.
    MirrorList,
    /// Learned from a peer: a mirror it dialed and met, or what a known
    /// peer said of its own addresses.
    Learned,
}

/// The transport an address goes over, as its multiaddr says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Transport {
    /// Plain TCP.
    Tcp,
    /// WebSocket, plain or `wss`.
    Ws,
    /// WebSocket inside TLS (`/tls/sni/NAME/ws`): a mirror's front.
    Front,
    /// QUIC.
    Quic,
    /// Through a relay (`/p2p-circuit`).
    Relay,
    /// Anything else (memory, say).
    Other,
}

impl Transport {
    /// The transport `addr` goes over.
    pub fn of(addr: &Multiaddr) -> Self {
        let mut tls = false;
        let mut found = Transport::Other;
        for p in addr.iter() {
            match p {
                Protocol::P2pCircuit => return Transport::Relay,
                Protocol::Tls | Protocol::Sni(_) => tls = true,
                Protocol::Ws(_) | Protocol::Wss(_) if tls => found = Transport::Front,
                Protocol::Ws(_) | Protocol::Wss(_) => found = Transport::Ws,
                Protocol::Quic | Protocol::QuicV1 => found = Transport::Quic,
                Protocol::Tcp(_) if found == Transport::Other => found = Transport::Tcp,
                _ => {}
            }
        }
        found
    }
}

/// How the book paces its dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookConfig {
    /// Below this many connected mirrors, the book dials.
    pub target: usize,
    /// Dials in flight at once, at most.
    pub parallel: usize,
    /// The first back-off after a failure.
    pub backoff_min: Duration,
    /// The longest back-off, before jitter.
    pub backoff_max: Duration,
    /// A mirror that dropped is dialed again after this.
    pub redial: Duration,
    /// A dial with no outcome after this counts as failed.
    pub dial_timeout: Duration,
}

impl Default for BookConfig {
    fn default() -> Self {
        Self {
            target: 2,
            parallel: 3,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(15),
            redial: Duration::from_secs(1),
            dial_timeout: Duration::from_secs(45),
        }
    }
}

/// Jitter adds up to this fraction of a back-off (in 1/1024ths), so that
/// readers cut off together do not redial together.
const JITTER_PER_1024: u64 = 256;

/// One dial to make: a peer, and its addresses best first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    /// The peer.
    pub peer: PeerId,
    /// Where to reach it, best first, without `/p2p/` at the end.
    pub addrs: Vec<Multiaddr>,
}

/// Why an address was not taken.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BookError {
    /// The address does not end in `/p2p/ID`.
    #[error("the address {0} names no peer (it must end in /p2p/ID)")]
    NoPeer(String),
    /// The address is longer than [`MAX_ADDR_BYTES`].
    #[error("an address of {0} bytes is over the bound of {MAX_ADDR_BYTES}")]
    TooLong(usize),
    /// The book is full of peers it trusts more.
    #[error("the address book is full")]
    Full,
    /// A saved book is damaged or over its bounds.
    #[error("the saved address book is damaged: {0}")]
    Damaged(String),
}

/// An address of a peer and what is known of it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Addr {
    addr: Multiaddr,
    source: Source,
    /// A connection came up over it (in this run or an earlier one).
    worked: bool,
}

/// One peer.
#[derive(Debug, Clone, Default)]
struct Entry {
    addrs: Vec<Addr>,
    /// The last connection that came up, in this run.
    last_success: Option<Time>,
    /// The last dial that failed, in this run.
    last_failure: Option<Time>,
    /// Dials failed since the last that worked.
    failures: u32,
    /// The transport of the last connection that came up.
    transport: Option<Transport>,
    /// A connection came up once, perhaps in an earlier run.
    worked: bool,
    connected: bool,
    /// A dial of the book's own is out since then.
    dialing: Option<Time>,
    /// Not dialed before this.
    not_before: Option<Time>,
}

impl Entry {
    /// The most trusted source of any of its addresses.
    fn source(&self) -> Source {
        self.addrs
            .iter()
            .map(|a| a.source)
            .min()
            .unwrap_or(Source::Learned)
    }

    /// Whether it stays when a peer from `source` needs room.
    fn kept_against(&self, source: Source) -> bool {
        if self.connected || self.dialing.is_some() {
            return true;
        }
        let own = self.source();
        !(own > source || (own == Source::Learned && !self.worked))
    }

    /// Sort key, smallest first: worked and not failing since, then by
    /// source, then fewer failures.
    fn rank(&self) -> (bool, Source, u32, std::cmp::Reverse<Option<Time>>) {
        let worked_lately = self.worked && self.failures == 0;
        (
            !worked_lately,
            self.source(),
            self.failures,
            std::cmp::Reverse(self.last_success),
        )
    }

    fn dial_addrs(&self) -> Vec<Multiaddr> {
        let mut addrs: Vec<&Addr> = self.addrs.iter().collect();
        addrs.sort_by_key(|a| (!a.worked, a.source));
        addrs.into_iter().map(|a| a.addr.clone()).collect()
    }
}

/// The address book.
#[derive(Debug)]
pub struct Book {
    config: BookConfig,
    peers: HashMap<PeerId, Entry>,
    rng: SplitMix,
    /// Something worth saving changed since [`Book::take_changed`].
    changed: bool,
}

/// The address without `/p2p/ID` at its end, and the peer it names.
fn split(addr: &Multiaddr) -> (Multiaddr, Option<PeerId>) {
    let mut bare = addr.clone();
    match bare.pop() {
        Some(Protocol::P2p(peer)) => (bare, Some(peer)),
        _ => (addr.clone(), None),
    }
}

impl Book {
    /// An empty book pacing dials by `config`, its jitter drawn from `seed`.
    pub fn new(config: BookConfig, seed: u64) -> Self {
        Self {
            config,
            peers: HashMap::new(),
            rng: SplitMix(seed),
            changed: false,
        }
    }

    /// Peers in the book.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Whether `peer` is in the book.
    pub fn knows(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// The addresses kept for `peer`, in no particular order.
    pub fn addresses(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.peers
            .get(peer)
            .map(|e| e.addrs.iter().map(|a| a.addr.clone()).collect())
            .unwrap_or_default()
    }

    /// The transport `peer` was last reached over.
    pub fn transport(&self, peer: &PeerId) -> Option<Transport> {
        self.peers.get(peer).and_then(|e| e.transport)
    }

    /// Dials failed in a row for `peer`.
    pub fn failures(&self, peer: &PeerId) -> u32 {
        self.peers.get(peer).map_or(0, |e| e.failures)
    }

    /// Book peers connected now.
    pub fn connected_count(&self) -> usize {
        self.peers.values().filter(|e| e.connected).count()
    }

    /// Whether something worth saving changed since the last call; resets.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Learns `addr`, which names its peer (`.../p2p/ID`), from `source`.
    pub fn learn(&mut self, addr: &Multiaddr, source: Source) -> Result<bool, BookError> {
        match split(addr) {
            (bare, Some(peer)) => self.learn_peer(peer, bare, source),
            (_, None) => Err(BookError::NoPeer(addr.to_string())),
        }
    }

    /// Learns that `peer` may be reached at `addr` (which may end in its
    /// `/p2p/ID`), from `source`. Whether the book holds something new.
    pub fn learn_peer(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        source: Source,
    ) -> Result<bool, BookError> {
        let addr = match split(&addr) {
            (bare, Some(p)) if p == peer => bare,
            (_, Some(_)) => return Err(BookError::NoPeer(addr.to_string())),
            (bare, None) => bare,
        };
        let len = addr.as_ref().len();
        if len > MAX_ADDR_BYTES {
            return Err(BookError::TooLong(len));
        }
        if addr.is_empty() {
            return Err(BookError::NoPeer(addr.to_string()));
        }
        if !self.peers.contains_key(&peer) {
            self.make_room(source)?;
            self.peers.insert(peer, Entry::default());
        }
        let Some(entry) = self.peers.get_mut(&peer) else {
            return Err(BookError::Full);
        };
        if let Some(known) = entry.addrs.iter_mut().find(|a| a.addr == addr) {
            if source < known.source {
                known.source = source;
                self.changed = true;
                return Ok(true);
            }
            return Ok(false);
        }
        if entry.addrs.len() >= MAX_ADDRS {
            // Room is made by the least trusted address that never
            // worked, if it is no more trusted than the new one.
            let worst = entry
                .addrs
                .iter()
                .enumerate()
                .filter(|(_, a)| !a.worked && a.source >= source)
                .max_by_key(|(_, a)| a.source)
                .map(|(i, _)| i);
            match worst {
                Some(i) => {
                    entry.addrs.remove(i);
                }
                None => return Ok(false),
            }
        }
        entry.addrs.push(Addr {
            addr,
            source,
            worked: false,
        });
        self.changed = true;
        Ok(true)
    }

    /// Makes room for one more peer learned from `source`: the worst
    /// learned peer that is neither connected nor being dialed goes.
    fn make_room(&mut self, source: Source) -> Result<(), BookError> {
        if self.peers.len() < MAX_PEERS {
            return Ok(());
        }
        // A learned peer that never worked gives way to any newcomer (so a
        // flood churns only among such peers); any peer not connected
        // gives way to one from a more trusted source.
        let worst = self
            .peers
            .iter()
            .filter(|(_, e)| !e.kept_against(source))
            .max_by_key(|(p, e)| (e.rank(), p.to_bytes()))
            .map(|(p, _)| *p);
        match worst {
            Some(p) => {
                self.peers.remove(&p);
                Ok(())
            }
            None => Err(BookError::Full),
        }
    }

    /// What to dial now: when fewer than the target of mirrors are
    /// `connected`, up to the parallel bound of dials in flight, best
    /// first, none still in back-off.
    pub fn plan(&mut self, now: Time, connected: usize) -> Vec<Dial> {
        // Dials that never came to anything count as failed.
        let stale: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, e)| {
                e.dialing
                    .is_some_and(|t| now.since(t) >= self.config.dial_timeout)
            })
            .map(|(p, _)| *p)
            .collect();
        for p in stale {
            self.dial_failed(&p, now);
        }
        let in_flight = self.peers.values().filter(|e| e.dialing.is_some()).count();
        let wanted = self.config.target.saturating_sub(connected);
        let room = self.config.parallel.saturating_sub(in_flight);
        if wanted == 0 || room == 0 {
            return Vec::new();
        }
        let mut ready: Vec<(&PeerId, &Entry)> = self
            .peers
            .iter()
            .filter(|(_, e)| {
                !e.connected
                    && e.dialing.is_none()
                    && !e.addrs.is_empty()
                    && e.not_before.is_none_or(|t| t <= now)
            })
            .collect();
        ready.sort_by_key(|(p, e)| (e.rank(), p.to_bytes()));
        let dials: Vec<Dial> = ready
            .into_iter()
            .take(room.min(self.config.parallel))
            .map(|(p, e)| Dial {
                peer: *p,
                addrs: e.dial_addrs(),
            })
            .collect();
        for d in &dials {
            if let Some(e) = self.peers.get_mut(&d.peer) {
                e.dialing = Some(now);
            }
        }
        dials
    }

    /// A dial of `peer` is out, made by the driver outside [`Book::plan`]
    /// (the bootstrap dial at start).
    pub fn dialing(&mut self, peer: &PeerId, now: Time) {
        if let Some(e) = self.peers.get_mut(peer)
            && !e.connected
        {
            e.dialing = Some(now);
        }
    }

    /// A dial of `peer` did not happen after all (another was out): no
    /// failure, no back-off.
    pub fn dial_dropped(&mut self, peer: &PeerId) {
        if let Some(e) = self.peers.get_mut(peer) {
            e.dialing = None;
        }
    }

    /// A dial of `peer` failed: it is not dialed again before its
    /// back-off ends.
    pub fn dial_failed(&mut self, peer: &PeerId, now: Time) {
        let failures = match self.peers.get(peer) {
            Some(e) if !e.connected => e.failures.saturating_add(1),
            _ => return,
        };
        let backoff = self.backoff(failures);
        let Some(e) = self.peers.get_mut(peer) else {
            return;
        };
        e.dialing = None;
        e.failures = failures;
        e.last_failure = Some(now);
        e.not_before = Some(now + backoff);
        self.changed = true;
    }

    /// The back-off after `failures` in a row: doubling from the least,
    /// capped, plus jitter.
    fn backoff(&mut self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        let base = self
            .config
            .backoff_min
            .saturating_mul(1u32 << doublings)
            .min(self.config.backoff_max);
        let jitter = self.rng.next() % (JITTER_PER_1024 + 1);
        let extra = base.as_millis() as u64 * jitter / 1024;
        base + Duration::from_millis(extra)
    }

    /// A connection to `peer` came up. Over `addr` when the node dialed
    /// it: a peer it dialed and met is learned if new, one that dialed in
    /// is only marked connected if known.
    pub fn connected(&mut self, peer: PeerId, addr: Option<&Multiaddr>, now: Time) {
        if let Some(addr) = addr {
            let (bare, _) = split(addr);
            // A full book of peers it trusts more keeps them.
            let _ = self.learn_peer(peer, bare, Source::Learned);
        }
        let Some(e) = self.peers.get_mut(&peer) else {
            return;
        };
        e.connected = true;
        e.dialing = None;
        e.not_before = None;
        e.last_success = Some(now);
        if e.failures != 0 || !e.worked {
            self.changed = true;
        }
        e.failures = 0;
        e.worked = true;
        if let Some(addr) = addr {
            let (bare, _) = split(addr);
            if let Some(a) = e.addrs.iter_mut().find(|a| a.addr == bare) {
                if !a.worked {
                    self.changed = true;
                }
                a.worked = true;
            }
            let transport = Transport::of(&bare);
            if e.transport != Some(transport) {
                self.changed = true;
            }
            e.transport = Some(transport);
        }
    }

    /// The last connection to `peer` closed: it is dialed again after a
    /// short delay, if the node needs it then.
    pub fn disconnected(&mut self, peer: &PeerId, now: Time) {
        if let Some(e) = self.peers.get_mut(peer)
            && e.connected
        {
            e.connected = false;
            e.dialing = None;
            e.not_before = Some(now + self.config.redial);
        }
    }
}

/// A small seeded generator for jitter (SplitMix64): the same seed gives
/// the same back-offs on every platform and version.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
