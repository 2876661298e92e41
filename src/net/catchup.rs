//! Catch-up: what gossip missed while a node was away.
//!
//! When a connection comes up, and every `sync_interval_secs` after, each
//! side sends the other a summary request: per publisher, its newest head,
//! how many revocations it knows, and a digest of the sequence ranges it
//! holds. The answer carries a newer head if there is one, revocations if
//! the peer knows more, and the peer's held ranges only when the digests
//! differ. Two nodes holding the same stories thus settle in one request
//! and one response each way, whatever the number of stories.
//!
//! The asker then takes what the peer holds and it has never known (held,
//! evicted or revoked), up to the newest head it trusts, and asks for it in
//! batches of [`MAX_SYNC_SEQS`] bundles. Small bundles come back whole and
//! are verified and stored in one batch; larger ones go through the normal
//! blob fetch, from this peer first. A peer that sends anything that fails
//! verification for reasons no honest node could have is banned.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::request_response::{self, OutboundRequestId};
use tracing::{debug, warn};

use super::wire::{
    INLINE_BUNDLE, MAX_RANGES, MAX_SYNC_PUBLISHERS, MAX_SYNC_REVOCATIONS, MAX_SYNC_SEQS,
    PublisherQuery, PublisherState, SYNC_BUDGET, SyncBundle, SyncRequest, SyncResponse,
    ranges_digest, revocations_digest,
};
use super::{Actor, NodeEvent, now};
use crate::proto::{CertId, PublicKey, VerifiedBundle};
use crate::store::{Ingested, SeqState};

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
const SUMMARY_WINDOW: Duration = Duration::from_secs(1);
/// See [`SUMMARY_WINDOW`].
const SUMMARIES_PER_WINDOW: u32 = 16;

/// Held sequence ranges and their digest.
type HeldRanges = (std::sync::Arc<Vec<(u64, u64)>>, [u8; 32]);

/// What was asked in an outstanding catch-up request.
pub(super) enum Asked {
    /// The publishers asked about, each with the `from` of its page.
    Summary(HashMap<PublicKey, u64>),
    Bundles {
        publisher: PublicKey,
        sequences: Vec<u64>,
    },
    /// For the report with this number.
    Holds { report: u64 },
}

/// Catch-up with one peer.
#[derive(Default)]
pub(super) struct PeerSync {
    /// Sequence ranges to ask for, per publisher, in order.
    queue: VecDeque<(PublicKey, u64, u64)>,
    in_flight: usize,
    summaries_in_flight: usize,
    last_summary: Option<Instant>,
    /// A peer over its upload cap said "later": not asked before this.
    later: Option<Instant>,
    /// "Later"s in a row; past [`MAX_LATER`] its queue is dropped.
    laters: u32,
}

/// The catch-up state of the actor.
#[derive(Default)]
pub(super) struct SyncState {
    peers: HashMap<PeerId, PeerSync>,
    requests: HashMap<OutboundRequestId, (PeerId, Asked)>,
    /// Which connected peers said they carry each publisher.
    pub(super) carriers: HashMap<PublicKey, HashSet<PeerId>>,
    /// Held ranges and their digest, per publisher, until the store changes.
    ranges: HashMap<PublicKey, HeldRanges>,
    /// Peers that do not speak the catch-up protocol.
    unsupported: HashSet<PeerId>,
    /// Full summaries served to each connected peer in its current window.
    served: HashMap<PeerId, (Instant, u32)>,
}

/// The parts of `theirs` that `known` does not cover, up to `upto`.
pub(crate) fn subtract(theirs: &[(u64, u64)], known: &[(u64, u64)], upto: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut k = 0;
    for &(a, b) in theirs {
        let b = b.min(upto);
        let mut start = a.max(1);
        while start <= b {
            while k < known.len() && known[k].1 < start {
                k += 1;
            }
            match known.get(k) {
                Some(&(ka, kb)) if ka <= start => {
                    if kb >= b {
                        break;
                    }
                    start = kb + 1;
                }
                Some(&(ka, _)) if ka <= b => {
                    out.push((start, ka - 1));
                    start = ka;
                }
                _ => {
                    out.push((start, b));
                    break;
                }
            }
        }
    }
    out
}

impl SyncState {
    /// A peer's connections are all gone.
    pub(super) fn peer_gone(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
        self.unsupported.remove(peer);
        self.served.remove(peer);
        for set in self.carriers.values_mut() {
            set.remove(peer);
        }
    }

    /// A publisher is no longer trusted: nothing more is asked of it.
    pub(super) fn forget_publisher(&mut self, publisher: &PublicKey) {
        self.carriers.remove(publisher);
        self.ranges.remove(publisher);
        for p in self.peers.values_mut() {
            p.queue.retain(|(k, _, _)| k != publisher);
        }
    }

    /// The store changed: cached ranges are stale.
    pub(super) fn store_changed(&mut self) {
        self.ranges.clear();
    }

    /// Whether a connected peer carries `publisher`.
    pub(super) fn carried(&self, publisher: &PublicKey) -> bool {
        self.carriers.get(publisher).is_some_and(|s| !s.is_empty())
    }

    /// Whether catch-up of `publisher` is waiting on or asking some peer.
    pub(super) fn busy_with(&self, publisher: &PublicKey) -> bool {
        self.peers
            .values()
            .any(|p| p.queue.iter().any(|(k, _, _)| k == publisher))
            || self
                .requests
                .values()
                .any(|(_, a)| matches!(a, Asked::Bundles { publisher: p, .. } if p == publisher))
    }
}

impl Actor {
    fn held_ranges_cached(&mut self, publisher: &PublicKey) -> HeldRanges {
        if let Some(r) = self.sync.ranges.get(publisher) {
            return r.clone();
        }
        let ranges =
            tokio::task::block_in_place(|| self.store.held_ranges(publisher)).unwrap_or_default();
        let digest = ranges_digest(&ranges);
        let ranges = std::sync::Arc::new(ranges);
        self.sync
            .ranges
            .insert(*publisher, (ranges.clone(), digest));
        (ranges, digest)
    }

    fn head_sequence(&self, publisher: &PublicKey) -> u64 {
        self.policy
            .publisher(publisher)
            .and_then(|p| p.head())
            .map_or(0, |h| h.sequence)
    }

    fn query(&mut self, publisher: &PublicKey, from: u64) -> PublisherQuery {
        let (_, digest) = self.held_ranges_cached(publisher);
        PublisherQuery {
            publisher: *publisher,
            head: self.head_sequence(publisher),
            revocations: revocations_digest(
                self.policy
                    .publisher(publisher)
                    .into_iter()
                    .flat_map(|p| p.revocations().map(|r| r.bytes())),
            ),
            digest,
            from,
        }
    }

    /// Asks `peer` what it holds of every trusted publisher.
    pub(super) fn sync_with(&mut self, peer: PeerId) {
        if self.sync.unsupported.contains(&peer) || self.is_banned(&peer) {
            return;
        }
        let state = self.sync.peers.entry(peer).or_default();
        if state.summaries_in_flight > 0 {
            return;
        }
        state.last_summary = Some(Instant::now());
        let publishers: Vec<PublicKey> = self.policy.publishers().map(|(k, _)| *k).collect();
        for chunk in publishers.chunks(MAX_SYNC_PUBLISHERS) {
            let queries = chunk.iter().map(|p| self.query(p, 0)).collect();
            self.send_summary(peer, queries);
        }
    }

    /// Remembers an outstanding catch-up request.
    pub(super) fn sync_asked(&mut self, rid: OutboundRequestId, peer: PeerId, asked: Asked) {
        self.sync.requests.insert(rid, (peer, asked));
    }

    fn send_summary(&mut self, peer: PeerId, publishers: Vec<PublisherQuery>) {
        let asked = publishers.iter().map(|q| (q.publisher, q.from)).collect();
        let rid = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, SyncRequest::Summary { publishers });
        self.sync
            .requests
            .insert(rid, (peer, Asked::Summary(asked)));
        self.sync.peers.entry(peer).or_default().summaries_in_flight += 1;
    }

    /// Catches up with every connected peer not asked for a while.
    pub(super) fn sync_tick(&mut self) {
        let every = Duration::from_secs(self.config.sync_interval_secs.max(1));
        let due: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .copied()
            .filter(|p| {
                self.sync
                    .peers
                    .get(p)
                    .and_then(|s| s.last_summary)
                    .is_none_or(|t| t.elapsed() >= every)
            })
            .collect();
        for p in due {
            self.sync_with(p);
        }
        self.pump_sync();
    }

    // ---- answering ----

    /// Answers a peer's catch-up request.
    pub(super) fn serve_sync(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: request_response::ResponseChannel<SyncResponse>,
    ) {
        let response = if self.is_banned(&peer) {
            SyncResponse::Refused
        } else {
            match request {
                SyncRequest::Summary { publishers } => {
                    let window = self.sync.served.entry(peer).or_insert((Instant::now(), 0));
                    if window.0.elapsed() >= SUMMARY_WINDOW {
                        *window = (Instant::now(), 0);
                    }
                    if window.1 >= SUMMARIES_PER_WINDOW {
                        SyncResponse::Refused
                    } else {
                        window.1 += 1;
                        SyncResponse::Summary {
                            publishers: publishers
                                .iter()
                                .filter_map(|q| self.publisher_state(q))
                                .collect(),
                        }
                    }
                }
                SyncRequest::Bundles {
                    publisher,
                    sequences,
                } => self.bundles_for(&publisher, &sequences),
                SyncRequest::Holds { publisher, story } => {
                    // A store read each, like a summary: in the same window.
                    let window = self.sync.served.entry(peer).or_insert((Instant::now(), 0));
                    if window.0.elapsed() >= SUMMARY_WINDOW {
                        *window = (Instant::now(), 0);
                    }
                    if window.1 >= SUMMARIES_PER_WINDOW {
                        SyncResponse::Refused
                    } else {
                        window.1 += 1;
                        self.holds(&publisher, &story)
                    }
                }
            }
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response);
    }

    fn publisher_state(&mut self, q: &PublisherQuery) -> Option<PublisherState> {
        let trust = self.policy.publisher(&q.publisher)?;
        let head = trust.head().filter(|h| h.sequence > q.head).and_then(|h| {
            let cert = trust.certificates().find(|c| c.id() == h.certificate)?;
            Some((cert.bytes().to_vec(), h.bytes().to_vec()))
        });
        let revocations =
            if revocations_digest(trust.revocations().map(|r| r.bytes())) != q.revocations {
                // Newest first: with more than fit, the latest matter most.
                let mut all: Vec<_> = trust.revocations().collect();
                all.sort_by_key(|r| std::cmp::Reverse(r.effective_from));
                all.iter()
                    .take(MAX_SYNC_REVOCATIONS)
                    .map(|r| r.bytes().to_vec())
                    .collect()
            } else {
                Vec::new()
            };
        let (held, digest) = self.held_ranges_cached(&q.publisher);
        let (ranges, more) = if q.from == 0 && digest == q.digest {
            (None, None)
        } else {
            let page: Vec<(u64, u64)> = held
                .iter()
                .filter(|(_, b)| *b >= q.from)
                .map(|&(a, b)| (a.max(q.from), b))
                .take(MAX_RANGES + 1)
                .collect();
            if page.len() > MAX_RANGES {
                let next = page[MAX_RANGES].0;
                (Some(page[..MAX_RANGES].to_vec()), Some(next))
            } else {
                (Some(page), None)
            }
        };
        Some(PublisherState {
            publisher: q.publisher,
            head,
            revocations,
            ranges,
            more,
        })
    }

    fn bundles_for(&mut self, publisher: &PublicKey, sequences: &[u64]) -> SyncResponse {
        if !self.policy.is_trusted(publisher) {
            return SyncResponse::Refused;
        }
        if !self.upload.open(Instant::now()) {
            // Over the upload cap: nothing now; "ask again from the first".
            return SyncResponse::Bundles {
                certificates: Vec::new(),
                bundles: Vec::new(),
                cut_at: sequences.first().copied(),
            };
        }
        let mut certificates = Vec::new();
        let mut cert_ids: HashSet<CertId> = HashSet::new();
        let mut bundles = Vec::new();
        let mut used = 0usize;
        let mut cut_at = None;
        // Within the upload cap too: the first bundle always goes, so a
        // response is never empty while the cap allows anything.
        let budget = SYNC_BUDGET.min(self.upload.allowance(Instant::now()));
        tokio::task::block_in_place(|| {
            for &seq in sequences {
                let Ok(Some(id)) = self.store.held_at(publisher, seq) else {
                    continue;
                };
                let Ok(Some(m)) = self.store.manifest(&id) else {
                    continue;
                };
                let blob_bytes: u64 = m.manifest.entries.iter().map(|e| e.size).sum();
                let inline = blob_bytes <= INLINE_BUNDLE;
                let cost = m.bytes.len() + if inline { blob_bytes as usize } else { 0 };
                if used > 0 && used + cost > budget {
                    cut_at = Some(seq);
                    break;
                }
                if cert_ids.insert(m.manifest.certificate)
                    && let Some(c) = self.certificate_of(&m.manifest)
                {
                    used += c.len();
                    certificates.push(c);
                }
                let blobs = if inline {
                    let mut out = Vec::with_capacity(m.manifest.entries.len());
                    for e in &m.manifest.entries {
                        match self.store.blob(&e.hash) {
                            Ok(Some(b)) => out.push(b),
                            _ => break,
                        }
                    }
                    (out.len() == m.manifest.entries.len()).then_some(out)
                } else {
                    None
                };
                used += cost;
                if let Some(b) = &blobs {
                    let bytes: usize = b.iter().map(Vec::len).sum();
                    self.own_metrics.served_bytes.inc_by(bytes as u64);
                    self.upload.take(bytes as u64, Instant::now());
                }
                bundles.push(SyncBundle {
                    manifest: m.bytes,
                    blobs,
                });
            }
        });
        SyncResponse::Bundles {
            certificates,
            bundles,
            cut_at,
        }
    }

    // ---- asking ----

    /// A catch-up response arrived, or the request failed.
    pub(super) fn sync_response(
        &mut self,
        rid: OutboundRequestId,
        response: Result<SyncResponse, String>,
        unsupported: bool,
    ) {
        let Some((peer, asked)) = self.sync.requests.remove(&rid) else {
            return;
        };
        if unsupported {
            self.sync.unsupported.insert(peer);
        }
        match asked {
            Asked::Holds { report } => self.report_response(report, rid, peer, response),
            Asked::Summary(asked) => {
                if let Some(s) = self.sync.peers.get_mut(&peer) {
                    s.summaries_in_flight = s.summaries_in_flight.saturating_sub(1);
                }
                match response {
                    Ok(SyncResponse::Summary { publishers }) => {
                        self.on_summary(peer, asked, publishers)
                    }
                    Ok(_) => debug!(peer = %peer, "catch-up summary refused"),
                    Err(e) => debug!(peer = %peer, "catch-up summary failed: {e}"),
                }
            }
            Asked::Bundles {
                publisher,
                sequences,
            } => {
                if let Some(s) = self.sync.peers.get_mut(&peer) {
                    s.in_flight = s.in_flight.saturating_sub(1);
                }
                match response {
                    Ok(SyncResponse::Bundles {
                        certificates,
                        bundles,
                        cut_at,
                    }) => {
                        self.on_bundles(peer, publisher, &sequences, certificates, bundles, cut_at)
                    }
                    Ok(_) => self.drop_queue(&peer, &publisher),
                    Err(e) => {
                        debug!(peer = %peer, "catch-up request failed: {e}");
                        self.drop_queue(&peer, &publisher);
                    }
                }
            }
        }
        self.pump_sync();
    }

    fn drop_queue(&mut self, peer: &PeerId, publisher: &PublicKey) {
        if let Some(s) = self.sync.peers.get_mut(peer) {
            s.queue.retain(|(p, _, _)| p != publisher);
        }
    }

    fn on_summary(
        &mut self,
        peer: PeerId,
        mut asked: HashMap<PublicKey, u64>,
        states: Vec<PublisherState>,
    ) {
        let now = now();
        let mut pages = Vec::new();
        for st in states {
            let publisher = st.publisher;
            // Each publisher asked about, once: an honest peer answers
            // nothing else, and a repeat would cost a store scan each.
            let Some(from) = asked.remove(&publisher) else {
                return self.ban(peer, "catch-up summary names a publisher not asked".into());
            };
            if !self.policy.is_trusted(&publisher) {
                continue;
            }
            self.sync
                .carriers
                .entry(publisher)
                .or_default()
                .insert(peer);
            if st.revocations.len() > MAX_SYNC_REVOCATIONS {
                self.ban(peer, "catch-up summary over its limits".into());
                return;
            }
            for r in &st.revocations {
                if !self.learn_revocation_bytes(peer, r) {
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
                return self.ban(peer, "catch-up summary over its limits".into());
            }
            // Only what a signed head vouches for is asked: a peer cannot
            // send us chasing sequence numbers that do not exist.
            let upto = self.head_sequence(&publisher);
            let known = tokio::task::block_in_place(|| self.store.known_ranges(&publisher))
                .unwrap_or_default();
            let mut wanted = subtract(&ranges, &known, upto);
            let fetching: HashSet<u64> = self
                .fetches
                .values()
                .filter(|f| f.manifest.publisher == publisher)
                .map(|f| f.manifest.sequence)
                .collect();
            if !fetching.is_empty() {
                wanted = wanted
                    .into_iter()
                    .flat_map(|(a, b)| {
                        let known: Vec<(u64, u64)> = crate::store::to_ranges(
                            fetching.iter().copied().filter(|s| *s >= a && *s <= b),
                        );
                        subtract(&[(a, b)], &known, b)
                    })
                    .collect();
            }
            let state = self.sync.peers.entry(peer).or_default();
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

    /// Learns a revocation from a summary; false when the peer was banned
    /// for it.
    fn learn_revocation_bytes(&mut self, peer: PeerId, bytes: &[u8]) -> bool {
        match self.policy.learn_revocation(bytes) {
            Ok(change) => {
                match tokio::task::block_in_place(|| self.store.record_revocation(&change)) {
                    Ok(removed) if !removed.is_empty() => self.sync.store_changed(),
                    Ok(_) => {}
                    Err(e) => warn!("storing a revocation failed: {e}"),
                }
                true
            }
            Err(e)
                if matches!(
                    Self::verdict(&e),
                    libp2p::gossipsub::MessageAcceptance::Reject
                ) =>
            {
                self.ban(peer, format!("catch-up revocation: {e}"));
                false
            }
            Err(e) => {
                debug!(peer = %peer, "catch-up revocation not taken: {e}");
                true
            }
        }
    }

    fn learn_head(&mut self, peer: PeerId, cert: &[u8], head: &[u8], now: crate::proto::Timestamp) {
        match self.policy.learn_certificate(cert) {
            Ok(c) => {
                let _ = self.store.put_certificate(&c);
            }
            Err(e) => {
                if matches!(
                    Self::verdict(&e),
                    libp2p::gossipsub::MessageAcceptance::Reject
                ) {
                    self.ban(peer, format!("catch-up certificate: {e}"));
                }
                return;
            }
        }
        match self.policy.verify_head(head, now) {
            Ok(h) => {
                let (publisher, sequence) = (h.publisher, h.sequence);
                if self.policy.accept_head(h.clone()) && self.store.record_head(&h).is_ok() {
                    self.emit(NodeEvent::Head {
                        publisher,
                        sequence,
                    });
                }
            }
            // An older head than ours (rollback), or one we cannot judge
            // yet, is refused without blame.
            Err(e)
                if matches!(
                    Self::verdict(&e),
                    libp2p::gossipsub::MessageAcceptance::Reject
                ) =>
            {
                self.ban(peer, format!("catch-up head: {e}"));
            }
            Err(e) => {
                debug!(peer = %peer, "catch-up head refused: {e}");
                self.own_metrics.reject(&e.to_string());
                self.emit(NodeEvent::Rejected {
                    peer,
                    reason: format!("catch-up head: {e}"),
                });
            }
        }
    }

    /// Sends bundles requests while peers have work queued and the node
    /// has room for more fetches.
    pub(super) fn pump_sync(&mut self) {
        let peers: Vec<PeerId> = self
            .sync
            .peers
            .iter()
            .filter(|(_, s)| {
                !s.queue.is_empty()
                    && s.in_flight < IN_FLIGHT_PER_PEER
                    && s.later.is_none_or(|t| t <= Instant::now())
            })
            .map(|(p, _)| *p)
            .collect();
        for peer in peers {
            while self.fetches.len() < self.config.max_fetches && self.download.open(Instant::now())
            {
                let Some(state) = self.sync.peers.get_mut(&peer) else {
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
                let rid = self.swarm.behaviour_mut().sync.send_request(
                    &peer,
                    SyncRequest::Bundles {
                        publisher,
                        sequences: sequences.clone(),
                    },
                );
                self.sync.requests.insert(
                    rid,
                    (
                        peer,
                        Asked::Bundles {
                            publisher,
                            sequences,
                        },
                    ),
                );
            }
        }
    }

    fn on_bundles(
        &mut self,
        peer: PeerId,
        publisher: PublicKey,
        asked: &[u64],
        certificates: Vec<Vec<u8>>,
        bundles: Vec<SyncBundle>,
        cut_at: Option<u64>,
    ) {
        use libp2p::gossipsub::MessageAcceptance::Reject;
        if bundles.len() > asked.len() || certificates.len() > asked.len() {
            return self.ban(peer, "catch-up response over its limits".into());
        }
        for c in &certificates {
            match self.policy.learn_certificate(c) {
                Ok(v) => {
                    let _ = self.store.put_certificate(&v);
                }
                Err(e) if matches!(Self::verdict(&e), Reject) => {
                    return self.ban(peer, format!("catch-up certificate: {e}"));
                }
                Err(e) => debug!(peer = %peer, "catch-up certificate not taken: {e}"),
            }
        }
        let now = now();
        let items: Vec<&[u8]> = bundles.iter().map(|b| b.manifest.as_slice()).collect();
        let verdicts = self.policy.verify_manifests(&items, now);
        let mut whole: Vec<VerifiedBundle> = Vec::new();
        let mut received = HashSet::new();
        for (b, verdict) in bundles.into_iter().zip(verdicts) {
            let m = match verdict {
                Ok(m) => m,
                Err(e) if matches!(Self::verdict(&e), Reject) => {
                    return self.ban(peer, format!("catch-up manifest: {e}"));
                }
                Err(e) => {
                    debug!(peer = %peer, "catch-up manifest not taken: {e}");
                    continue;
                }
            };
            if m.publisher != publisher || !asked.contains(&m.sequence) {
                return self.ban(peer, "catch-up sent a bundle not asked for".into());
            }
            received.insert(m.sequence);
            let id = m.id();
            let known = matches!(
                self.store.seq_state(&m.publisher, m.sequence),
                Ok(Some(s)) if s != SeqState::Held
            ) || self.store.has_bundle(&id).unwrap_or(false)
                || self.fetches.contains_key(&id);
            if known {
                continue;
            }
            if let Some(blobs) = &b.blobs {
                let bytes: usize = blobs.iter().map(Vec::len).sum();
                self.own_metrics.fetched_bytes.inc_by(bytes as u64);
                self.download.take(bytes as u64, Instant::now());
            }
            match b.blobs {
                Some(blobs) => match self.policy.verify_bundle(m, blobs) {
                    Ok(v) => whole.push(v),
                    Err(e) => return self.ban(peer, format!("catch-up blob: {e}")),
                },
                None => {
                    let seq = m.sequence;
                    if !self.start_fetch_from(m, peer) {
                        // No room now: asked again once fetches finish.
                        if let Some(state) = self.sync.peers.get_mut(&peer) {
                            state.queue.push_back((publisher, seq, seq));
                        }
                    }
                }
            }
        }
        if !whole.is_empty() {
            let ids: Vec<_> = whole.iter().map(|b| b.id()).collect();
            match tokio::task::block_in_place(|| self.store.ingest(&whole)) {
                Ok(outcome) => {
                    self.sync.store_changed();
                    for (id, o) in ids.iter().zip(outcome) {
                        if o == Ingested::New {
                            self.emit(NodeEvent::Stored(*id));
                        }
                    }
                    self.enforce_quota();
                }
                Err(e) => warn!("storing caught-up bundles failed: {e}"),
            }
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
                return self.ban(peer, "catch-up cut before what it sent".into());
            }
        }
        if let Some(cut) = cut_at {
            // The rest did not fit: ask again, first. With nothing sent,
            // the peer is over its upload cap: ask again a little later,
            // but not without end.
            let rest: Vec<u64> = asked.iter().copied().skip_while(|s| *s != cut).collect();
            let Some(state) = self.sync.peers.get_mut(&peer) else {
                return;
            };
            if received.is_empty() {
                state.laters += 1;
                state.later = Some(Instant::now() + LATER);
                if state.laters > MAX_LATER {
                    return self.drop_queue(&peer, &publisher);
                }
            } else {
                state.laters = 0;
            }
            for (a, b) in crate::store::to_ranges(rest).into_iter().rev() {
                state.queue.push_front((publisher, a, b));
            }
        } else if received.is_empty() {
            // It no longer holds what it said: stop asking it for this
            // publisher until the next summary.
            self.drop_queue(&peer, &publisher);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::subtract;

    #[test]
    fn subtract_leaves_what_is_not_known() {
        assert_eq!(subtract(&[(1, 10)], &[], 100), vec![(1, 10)]);
        assert_eq!(subtract(&[(1, 10)], &[(1, 10)], 100), vec![]);
        assert_eq!(
            subtract(&[(1, 10)], &[(3, 4), (8, 20)], 100),
            vec![(1, 2), (5, 7)]
        );
        assert_eq!(
            subtract(&[(1, 10), (20, 30)], &[(5, 25)], 100),
            vec![(1, 4), (26, 30)]
        );
        assert_eq!(subtract(&[(1, 10)], &[], 6), vec![(1, 6)]);
        assert_eq!(
            subtract(&[(0, u64::MAX)], &[(1, u64::MAX)], u64::MAX),
            vec![]
        );
        assert_eq!(subtract(&[(5, 9)], &[(1, 2)], 0), vec![]);
    }
}
