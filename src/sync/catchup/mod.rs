//! Catch-up: what gossip missed while a node was away.
//!
//! When a connection comes up, and every `sync_interval` after, each side
//! sends the other a summary request: per publisher, its newest head, a
//! digest of its revocations and a digest of the sequence ranges it holds.
//! The answer carries a newer head if there is one, revocations if the
//! digests differ, and the peer's held ranges only when the range digests
//! differ. Two nodes holding the same stories thus settle in one request
//! and one response each way, whatever the number of stories.
//!
//! The asker then takes what the peer holds and it has never known (held,
//! evicted or revoked), up to the newest head it trusts, and asks for it in
//! batches of [`MAX_SYNC_SEQS`] bundles. Small bundles come back whole and
//! are verified and stored in one batch; larger ones go through the normal
//! blob fetch, from this peer first. A peer that sends anything that fails
//! verification for reasons no honest node could have is banned.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use super::messages::{
    MAX_SYNC_PUBLISHERS, PublisherQuery, SyncRequest, SyncResponse, revocations_digest,
};
use super::window::RateWindow;

mod bundles;
mod summary;
use super::{Action, Now, Peer, State, Time, Token};
use crate::proto::PublicKey;

/// How long a peer that said "later" is left alone.
const LATER: Duration = Duration::from_secs(1);
/// "Later"s in a row before a peer's queue is dropped until its next
/// summary: a peer cannot keep us asking without end.
const MAX_LATER: u32 = 120;
/// Bundles requests outstanding to one peer.
const IN_FLIGHT_PER_PEER: usize = 2;
/// Ranges waiting to be asked of one peer; beyond, the next round brings
/// the rest.
const MAX_QUEUED_RANGES: usize = 16 * 1024;
/// A peer gets at most [`SUMMARIES_PER_WINDOW`] summary and holds requests
/// (each may compute a publisher's ranges afresh, or read a story's
/// history) in this window. A node with many publishers asks in several
/// requests of [`MAX_SYNC_PUBLISHERS`], and pages follow, hence more than
/// one.
pub(super) const SUMMARY_WINDOW: Duration = Duration::from_secs(1);
/// See [`SUMMARY_WINDOW`].
pub(super) const SUMMARIES_PER_WINDOW: u32 = 16;

/// What was asked in an outstanding catch-up request.
#[derive(Debug)]
enum Asked {
    /// The publishers asked about, each with the `from` of its page.
    Summary(HashMap<PublicKey, u64>),
    /// Bundles of one publisher.
    Bundles {
        publisher: PublicKey,
        sequences: Vec<u64>,
    },
}

/// Catch-up with one peer.
#[derive(Debug, Default)]
struct PeerSync {
    /// Sequence ranges to ask for, per publisher, in order.
    queue: VecDeque<(PublicKey, u64, u64)>,
    in_flight: usize,
    summaries_in_flight: usize,
    last_summary: Option<Time>,
    /// A peer over its upload cap said "later": not asked before this.
    later: Option<Time>,
    /// "Later"s in a row; past [`MAX_LATER`] its queue is dropped.
    laters: u32,
}

/// The catch-up state.
#[derive(Debug)]
pub(super) struct CatchUp<P> {
    peers: BTreeMap<P, PeerSync>,
    requests: HashMap<Token, (P, Asked)>,
    /// Which connected peers said they carry each publisher.
    carriers: HashMap<PublicKey, BTreeSet<P>>,
    /// Peers that do not speak the catch-up protocol.
    unsupported: HashSet<P>,
    /// Summaries and holds served to each peer in its current window.
    pub(super) served: RateWindow<P>,
}

impl<P: Peer> Default for CatchUp<P> {
    fn default() -> Self {
        Self {
            peers: BTreeMap::new(),
            requests: HashMap::new(),
            carriers: HashMap::new(),
            unsupported: HashSet::new(),
            served: RateWindow::new(SUMMARY_WINDOW, SUMMARIES_PER_WINDOW),
        }
    }
}

impl<P: Peer> CatchUp<P> {
    /// A peer's connections are all gone.
    pub(super) fn peer_gone(&mut self, peer: &P) {
        self.peers.remove(peer);
        self.unsupported.remove(peer);
        self.served.forget(peer);
        for set in self.carriers.values_mut() {
            set.remove(peer);
        }
    }

    /// A publisher is no longer trusted: nothing more is asked of it.
    pub(super) fn forget_publisher(&mut self, publisher: &PublicKey) {
        self.carriers.remove(publisher);
        for p in self.peers.values_mut() {
            p.queue.retain(|(k, _, _)| k != publisher);
        }
    }

    fn drop_queue(&mut self, peer: &P, publisher: &PublicKey) {
        if let Some(s) = self.peers.get_mut(peer) {
            s.queue.retain(|(p, _, _)| p != publisher);
        }
    }
}

impl<P: Peer, M: Clone> State<P, M> {
    /// Whether a connected peer carries `publisher`.
    pub fn carried(&self, publisher: &PublicKey) -> bool {
        self.catchup
            .carriers
            .get(publisher)
            .is_some_and(|s| !s.is_empty())
    }

    /// Whether catch-up of `publisher` is waiting on or asking some peer.
    pub fn busy_with(&self, publisher: &PublicKey) -> bool {
        self.catchup
            .peers
            .values()
            .any(|p| p.queue.iter().any(|(k, _, _)| k == publisher))
            || self
                .catchup
                .requests
                .values()
                .any(|(_, a)| matches!(a, Asked::Bundles { publisher: p, .. } if p == publisher))
    }

    fn query(&mut self, publisher: &PublicKey, from: u64) -> PublisherQuery {
        let head = self.head_sequence(publisher);
        let revocations = revocations_digest(
            self.policy
                .publisher(publisher)
                .into_iter()
                .flat_map(|p| p.revocations().map(|r| r.bytes())),
        );
        PublisherQuery {
            publisher: *publisher,
            head,
            revocations,
            digest: self.ranges_mut(publisher).digest(),
            from,
        }
    }

    /// Asks `peer` what it holds of every trusted publisher.
    pub(super) fn sync_with(&mut self, peer: P, now: Now) {
        // A summary names every trusted publisher: never from a quiet
        // reader.
        if self.config.role == super::Role::Quiet
            || self.catchup.unsupported.contains(&peer)
            || self.bans.is_banned(&peer, now.at)
        {
            return;
        }
        let state = self.catchup.peers.entry(peer).or_default();
        if state.summaries_in_flight > 0 {
            return;
        }
        state.last_summary = Some(now.at);
        let publishers: Vec<PublicKey> = self.policy.publishers().map(|(k, _)| *k).collect();
        for chunk in publishers.chunks(MAX_SYNC_PUBLISHERS) {
            let queries = chunk.iter().map(|p| self.query(p, 0)).collect();
            self.send_summary(peer, queries);
        }
    }

    fn send_summary(&mut self, peer: P, publishers: Vec<PublisherQuery>) {
        let asked = publishers.iter().map(|q| (q.publisher, q.from)).collect();
        let token = self.tokens.fresh();
        self.catchup
            .requests
            .insert(token, (peer, Asked::Summary(asked)));
        self.catchup
            .peers
            .entry(peer)
            .or_default()
            .summaries_in_flight += 1;
        self.out.push_back(Action::Sync {
            peer,
            token,
            request: SyncRequest::Summary { publishers },
        });
    }

    /// Catches up with every connected peer not asked for a while.
    pub(super) fn sync_tick(&mut self, now: Now) {
        let every = self.config.sync_interval.max(Duration::from_secs(1));
        let due: Vec<P> = self
            .connected
            .iter()
            .copied()
            .filter(|p| {
                self.catchup
                    .peers
                    .get(p)
                    .and_then(|s| s.last_summary)
                    .is_none_or(|t| now.at.since(t) >= every)
            })
            .collect();
        for p in due {
            self.sync_with(p, now);
        }
        self.pump_sync(now);
    }

    /// A catch-up response arrived, or the request failed (`Err`: why;
    /// `unsupported`: the peer does not speak the protocol). Returns false
    /// when `token` is not a catch-up request of the core.
    pub fn sync_response(
        &mut self,
        token: Token,
        response: Result<SyncResponse, String>,
        unsupported: bool,
        now: Now,
    ) -> bool {
        let Some((peer, asked)) = self.catchup.requests.remove(&token) else {
            return false;
        };
        if unsupported {
            self.catchup.unsupported.insert(peer);
        }
        match asked {
            Asked::Summary(asked) => {
                if let Some(s) = self.catchup.peers.get_mut(&peer) {
                    s.summaries_in_flight = s.summaries_in_flight.saturating_sub(1);
                }
                match response {
                    Ok(SyncResponse::Summary { publishers }) => {
                        self.on_summary(peer, asked, publishers, now)
                    }
                    Ok(_) => tracing::debug!(peer = ?peer, "catch-up summary refused"),
                    Err(e) => tracing::debug!(peer = ?peer, "catch-up summary failed: {e}"),
                }
            }
            Asked::Bundles {
                publisher,
                sequences,
            } => {
                if let Some(s) = self.catchup.peers.get_mut(&peer) {
                    s.in_flight = s.in_flight.saturating_sub(1);
                }
                match response {
                    Ok(SyncResponse::Bundles {
                        certificates,
                        bundles,
                        cut_at,
                    }) => self.on_bundles(
                        peer,
                        publisher,
                        &sequences,
                        certificates,
                        bundles,
                        cut_at,
                        now,
                    ),
                    Ok(_) => self.catchup.drop_queue(&peer, &publisher),
                    Err(e) => {
                        tracing::debug!(peer = ?peer, "catch-up request failed: {e}");
                        self.catchup.drop_queue(&peer, &publisher);
                    }
                }
            }
        }
        self.pump_sync(now);
        true
    }
}
