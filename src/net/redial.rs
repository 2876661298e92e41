//! The actor's side of the address book ([`super::book`]): it ticks the
//! planner, makes the dials it plans, tells it what came of them, and
//! keeps it in the store.
//!
//! The bootstrap dial at start stays as it was; the book adds what
//! follows it: a mirror not reachable at start is dialed again on a
//! back-off, one that drops is dialed again soon, and mirrors met or
//! learned are remembered across restarts.

use std::time::{Duration, Instant};

use libp2p::swarm::DialError;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId};
use tracing::{debug, info, warn};

use super::actor::Actor;
use super::book::{Book, BookConfig, MAX_ADDRS, MAX_PEERS, Source};
use super::worker::Job;

/// How often the planner is asked what to dial.
pub(super) const BOOK_TICK: Duration = Duration::from_secs(1);
/// A changed book is saved at most this often (and at shutdown).
pub(super) const BOOK_SAVE_EVERY: Duration = Duration::from_secs(10);
/// Addresses a peer's identify listing may teach the book, per listing.
const LEARNED_PER_LISTING: usize = MAX_ADDRS;

/// The book as the actor starts it: from what the store kept, if it
/// decodes; a damaged value costs only the memory of mirrors.
pub(super) fn start_book(saved: Option<Vec<u8>>) -> Book {
    let mut book = Book::new(BookConfig::default(), rand::random());
    if let Some(bytes) = saved {
        match book.load(&bytes) {
            Ok(n) => debug!(peers = n, "address book loaded"),
            Err(e) => warn!("the saved address book is ignored: {e}"),
        }
    }
    book
}

/// When the book was last ticked and saved.
#[derive(Default)]
pub(super) struct BookTimes {
    ticked: Option<Instant>,
    saved: Option<Instant>,
}

impl Actor {
    /// Asks the planner what to dial, once a [`BOOK_TICK`], and dials it.
    pub(super) fn book_tick(&mut self) {
        if self
            .book_times
            .ticked
            .is_some_and(|t| t.elapsed() < BOOK_TICK)
        {
            return;
        }
        self.book_times.ticked = Some(Instant::now());
        let now = self.now().at;
        let connected = self.discovery.dialed_count();
        for dial in self.book.plan(now, connected) {
            let peer = dial.peer;
            if self.is_banned(&peer) {
                self.book.dial_failed(&peer, now);
                continue;
            }
            debug!(peer = %peer, addresses = dial.addrs.len(), "dialing a mirror from the address book");
            let opts = DialOpts::peer_id(peer)
                .addresses(dial.addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            match self.swarm.dial(opts) {
                Ok(()) => {}
                Err(DialError::DialPeerConditionFalse(_)) => self.book.dial_dropped(&peer),
                Err(e) => {
                    debug!(peer = %peer, "cannot dial: {e}");
                    self.book.dial_failed(&peer, now);
                }
            }
        }
        self.save_book(false);
    }

    /// Hands the book to the store thread if it changed, at most once a
    /// [`BOOK_SAVE_EVERY`] unless `now_anyway`.
    pub(super) fn save_book(&mut self, now_anyway: bool) {
        if !now_anyway
            && self
                .book_times
                .saved
                .is_some_and(|t| t.elapsed() < BOOK_SAVE_EVERY)
        {
            return;
        }
        if self.book.take_changed() {
            self.book_times.saved = Some(Instant::now());
            self.job(Job::SaveBook(self.book.save()));
        }
    }

    /// The book's encoding, if it changed since it was last saved: for
    /// the shutdown to write before its flush.
    pub(super) fn book_to_save(&mut self) -> Option<Vec<u8>> {
        self.book.take_changed().then(|| self.book.save())
    }

    /// Takes the configured bootstrap address `addr` into the book, as
    /// being dialed now. The peer it names.
    pub(super) fn book_bootstrap(&mut self, addr: &Multiaddr) -> Option<PeerId> {
        if let Err(e) = self.book.learn(addr, Source::Config) {
            warn!("bootstrap peer {addr} not kept in the address book: {e}");
        }
        let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
            return None;
        };
        let now = self.now().at;
        self.book.dialing(&peer, now);
        Some(peer)
    }

    /// Addresses from `source` for the book; how many were new.
    pub(super) fn learn(&mut self, addrs: &[Multiaddr], source: Source) -> usize {
        let mut new = 0;
        for addr in addrs.iter().take(MAX_PEERS * MAX_ADDRS) {
            match self.book.learn(addr, source) {
                Ok(true) => new += 1,
                Ok(false) => {}
                Err(e) => debug!("address not learned: {e}"),
            }
        }
        if new > 0 {
            info!(new, source = ?source, "mirror addresses learned");
        }
        new
    }

    /// A peer the book knows told its own addresses (identify): kept as
    /// learned, so that it can be found again where it moved.
    pub(super) fn book_listing(&mut self, peer: PeerId, addrs: &[Multiaddr]) {
        if !self.book.knows(&peer) {
            return;
        }
        for addr in addrs.iter().take(LEARNED_PER_LISTING) {
            let _ = self.book.learn_peer(peer, addr.clone(), Source::Learned);
        }
    }

    /// A connection came up: over `dialed` when the node dialed it.
    pub(super) fn book_connected(&mut self, peer: PeerId, dialed: Option<&Multiaddr>) {
        let now = self.now().at;
        self.book.connected(peer, dialed, now);
    }

    /// The last connection to `peer` closed.
    pub(super) fn book_disconnected(&mut self, peer: &PeerId) {
        let now = self.now().at;
        self.book.disconnected(peer, now);
    }

    /// A dial of `peer` failed.
    pub(super) fn book_dial_failed(&mut self, peer: &PeerId) {
        let now = self.now().at;
        self.book.dial_failed(peer, now);
    }
}
