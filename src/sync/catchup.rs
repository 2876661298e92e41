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
    MAX_RANGES, MAX_SYNC_PUBLISHERS, MAX_SYNC_REVOCATIONS, MAX_SYNC_SEQS, PublisherQuery,
    PublisherState, SyncBundle, SyncRequest, SyncResponse, revocations_digest,
};
use super::verdict::{Kind, judge};
use super::window::RateWindow;
use super::{Action, Now, Peer, State, Time, Token, Verdict};
use crate::proto::ranges::{subtract, to_ranges};
use crate::proto::{PublicKey, VerifiedBundle};

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
        if self.catchup.unsupported.contains(&peer) || self.bans.is_banned(&peer, now.at) {
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

    fn on_summary(
        &mut self,
        peer: P,
        mut asked: HashMap<PublicKey, u64>,
        states: Vec<PublisherState>,
        now: Now,
    ) {
        let mut pages = Vec::new();
        for st in states {
            let publisher = st.publisher;
            // Each publisher asked about, once: an honest peer answers
            // nothing else, and a repeat would cost a store scan each.
            let Some(from) = asked.remove(&publisher) else {
                return self.ban(
                    peer,
                    Kind::Unasked,
                    "catch-up summary names a publisher not asked",
                    now.at,
                );
            };
            if !self.policy.is_trusted(&publisher) {
                continue;
            }
            self.catchup
                .carriers
                .entry(publisher)
                .or_default()
                .insert(peer);
            if st.revocations.len() > MAX_SYNC_REVOCATIONS {
                return self.ban(
                    peer,
                    Kind::OverLimits,
                    "catch-up summary over its limits",
                    now.at,
                );
            }
            for r in &st.revocations {
                if let Err(e) = self.learn_revocation(r)
                    && self.refuse_from(peer, "catch-up revocation", &e, now.at)
                {
                    return;
                }
            }
            if let Some((cert, head)) = &st.head {
                self.learn_head(peer, cert, head, now);
            }
            let Some(ranges) = st.ranges else {
                continue;
            };
            // At most a page, ascending and disjoint, from where it was
            // asked; a next page past this one: so paging always moves on.
            let ordered = ranges.iter().all(|&(a, b)| a <= b && a >= from)
                && ranges.windows(2).all(|w| w[1].0 > w[0].1);
            let next_ok = st.more.is_none_or(|m| {
                ranges.len() == MAX_RANGES && ranges.last().is_some_and(|&(_, b)| m > b)
            });
            if ranges.len() > MAX_RANGES || !ordered || !next_ok {
                return self.ban(
                    peer,
                    Kind::OverLimits,
                    "catch-up summary over its limits",
                    now.at,
                );
            }
            // Only what a signed head vouches for is asked: a peer cannot
            // send us chasing sequence numbers that do not exist.
            let upto = self.head_sequence(&publisher);
            let known = self.ranges_mut(&publisher).known.clone();
            let mut wanted = subtract(&ranges, &known, upto);
            let busy = to_ranges({
                let mut s: Vec<u64> = self.fetches.sequences_of(&publisher).collect();
                s.sort_unstable();
                s
            });
            if !busy.is_empty() {
                wanted = wanted
                    .into_iter()
                    .flat_map(|(a, b)| subtract(&[(a, b)], &busy, b))
                    .collect();
            }
            let state = self.catchup.peers.entry(peer).or_default();
            // A first page replaces what was queued for the publisher from
            // this peer: the new summary says what it holds now.
            if from == 0 {
                state.queue.retain(|(p, _, _)| *p != publisher);
            }
            for (a, b) in wanted {
                if state.queue.len() >= MAX_QUEUED_RANGES {
                    break;
                }
                state.queue.push_back((publisher, a, b));
            }
            // Pages past the trusted head would bring nothing we ask for.
            if let Some(next) = st.more
                && next <= upto
                && state.queue.len() < MAX_QUEUED_RANGES
            {
                pages.push((publisher, next));
            }
        }
        for (publisher, from) in pages {
            let q = self.query(&publisher, from);
            self.send_summary(peer, vec![q]);
        }
    }

    fn learn_head(&mut self, peer: P, cert: &[u8], head: &[u8], now: Now) {
        if let Err(e) = self.learn_certificate(cert) {
            self.refuse_from(peer, "catch-up certificate", &e, now.at);
            return;
        }
        match self.policy.verify_head(head, now.wall) {
            Ok(h) => {
                self.accept_head(h);
            }
            // An older head than ours (rollback), or one we cannot judge
            // yet, is refused without blame.
            Err(e) => {
                if !self.refuse_from(peer, "catch-up head", &e, now.at) {
                    self.out.push_back(Action::Noted {
                        peer,
                        refusal: super::Refusal::policy("catch-up head", &e),
                    });
                }
            }
        }
    }

    /// Sends bundles requests while peers have work queued and the node
    /// has room for more fetches.
    pub(super) fn pump_sync(&mut self, now: Now) {
        let peers: Vec<P> = self
            .catchup
            .peers
            .iter()
            .filter(|(_, s)| {
                !s.queue.is_empty()
                    && s.in_flight < IN_FLIGHT_PER_PEER
                    && s.later.is_none_or(|t| t <= now.at)
            })
            .map(|(p, _)| *p)
            .collect();
        for peer in peers {
            while !self.fetches.is_full() && self.download.open(now.at) {
                let Some(state) = self.catchup.peers.get_mut(&peer) else {
                    break;
                };
                if state.in_flight >= IN_FLIGHT_PER_PEER {
                    break;
                }
                let Some(&(publisher, _, _)) = state.queue.front() else {
                    break;
                };
                let mut sequences = Vec::with_capacity(MAX_SYNC_SEQS);
                while sequences.len() < MAX_SYNC_SEQS {
                    match state.queue.front_mut() {
                        Some((p, a, b)) if *p == publisher => {
                            sequences.push(*a);
                            if *a == *b {
                                state.queue.pop_front();
                            } else {
                                *a += 1;
                            }
                        }
                        _ => break,
                    }
                }
                state.in_flight += 1;
                let token = self.tokens.fresh();
                self.catchup.requests.insert(
                    token,
                    (
                        peer,
                        Asked::Bundles {
                            publisher,
                            sequences: sequences.clone(),
                        },
                    ),
                );
                self.out.push_back(Action::Sync {
                    peer,
                    token,
                    request: SyncRequest::Bundles {
                        publisher,
                        sequences,
                    },
                });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_bundles(
        &mut self,
        peer: P,
        publisher: PublicKey,
        asked: &[u64],
        certificates: Vec<Vec<u8>>,
        bundles: Vec<SyncBundle>,
        cut_at: Option<u64>,
        now: Now,
    ) {
        if bundles.len() > asked.len() || certificates.len() > asked.len() {
            return self.ban(
                peer,
                Kind::OverLimits,
                "catch-up response over its limits",
                now.at,
            );
        }
        for c in &certificates {
            if let Err(e) = self.learn_certificate(c)
                && self.refuse_from(peer, "catch-up certificate", &e, now.at)
            {
                return;
            }
        }
        let items: Vec<&[u8]> = bundles.iter().map(|b| b.manifest.as_slice()).collect();
        let verdicts = self.policy.verify_manifests(&items, now.wall);
        let mut whole: Vec<VerifiedBundle> = Vec::new();
        let mut received = HashSet::new();
        for (b, verdict) in bundles.into_iter().zip(verdicts) {
            let m = match verdict {
                Ok(m) => m,
                Err(e) if judge(&e) == Verdict::Reject => {
                    self.refuse_from(peer, "catch-up manifest", &e, now.at);
                    return;
                }
                Err(e) => {
                    tracing::debug!(peer = ?peer, "catch-up manifest not taken: {e}");
                    continue;
                }
            };
            if m.publisher != publisher || !asked.contains(&m.sequence) {
                return self.ban(
                    peer,
                    Kind::Unasked,
                    "catch-up sent a bundle not asked for",
                    now.at,
                );
            }
            received.insert(m.sequence);
            let id = m.id();
            if self.knows(&m.publisher, m.sequence) || self.busy_with_bundle(&id) {
                continue;
            }
            if let Some(blobs) = &b.blobs {
                let bytes: usize = blobs.iter().map(Vec::len).sum();
                let (_, _, mut ctx) = self.ctx(now.at);
                ctx.received(bytes as u64);
            }
            match b.blobs {
                Some(blobs) => match self.policy.verify_bundle(m, blobs) {
                    Ok(v) => whole.push(v),
                    Err(e) => {
                        let refusal = super::Refusal::policy("catch-up blob", &e);
                        let (_, _, mut ctx) = self.ctx(now.at);
                        return ctx.ban(peer, refusal);
                    }
                },
                None => {
                    let seq = m.sequence;
                    if !self.start_fetch(m, None, Some(peer), now.at) {
                        // No room now: asked again once fetches finish.
                        if let Some(state) = self.catchup.peers.get_mut(&peer) {
                            state.queue.push_back((publisher, seq, seq));
                        }
                    }
                }
            }
        }
        if !whole.is_empty() {
            self.out.push_back(Action::StoreBatch { bundles: whole });
        }
        // An honest responder cuts after everything it sent.
        if let Some(cut) = cut_at {
            let cut_pos = asked.iter().position(|s| *s == cut);
            let sent_after = received.iter().any(|s| {
                asked
                    .iter()
                    .position(|x| x == s)
                    .is_some_and(|p| cut_pos.is_none_or(|c| p >= c))
            });
            if cut_pos.is_none() || sent_after {
                return self.ban(
                    peer,
                    Kind::Malformed,
                    "catch-up cut before what it sent",
                    now.at,
                );
            }
            // The rest did not fit: ask again, first. With nothing sent,
            // the peer is over its upload cap: ask again a little later,
            // but not without end.
            let rest: Vec<u64> = asked.iter().copied().skip_while(|s| *s != cut).collect();
            let Some(state) = self.catchup.peers.get_mut(&peer) else {
                return;
            };
            if received.is_empty() {
                state.laters += 1;
                state.later = Some(now.at + LATER);
                if state.laters > MAX_LATER {
                    return self.catchup.drop_queue(&peer, &publisher);
                }
            } else {
                state.laters = 0;
            }
            for (a, b) in to_ranges(rest).into_iter().rev() {
                state.queue.push_front((publisher, a, b));
            }
        } else if received.is_empty() {
            // It no longer holds what it said: stop asking it for this
            // publisher until the next summary.
            self.catchup.drop_queue(&peer, &publisher);
        }
    }
}
