//! Fetching a bundle's blobs: which peer to ask, which chunk next, when to
//! give up, and what a false chunk or a stalled request costs the peer.
//!
//! A fetch asks one candidate at a time for the next chunk of the next
//! blob, checks every chunk's shape and every whole blob's hash, and moves
//! to the next candidate on a miss, a lie or a stall. A peer that sends a
//! chunk that does not fit, or a blob that does not match its manifest, is
//! banned. A peer that does not have the blob yet is asked again later: it
//! may have forwarded the announcement while it fetches the blobs itself.
//!
//! The announcement's verdict waits for the bundle [`VERDICT_HOLD`] at
//! most, never the fetch's deadline: it is accepted when the bundle is
//! stored, when the hold ends, or when the fetch ends, whichever comes
//! first, since it was verified before the fetch began. Holding it that
//! long lets peers that hear it from us find the blobs here in the common
//! case, and lets gossip form its mesh with a peer that just connected
//! (gossip forwards to mesh peers only); it is short enough for gossip's
//! cache of a few heartbeats to still hold the message.
//!
//! Fair shares: no peer can hold the fetcher. Each fetch is charged to the
//! peer that brought it (its announcer, or the catch-up peer that listed
//! it), and a peer may bring at most [`FetchLimits::per_peer`] fetches at
//! once; [`FetchLimits::reserved`] slots are kept for catch-up, so gossip
//! cannot starve it. A peer holds at most
//! [`FetchLimits::max_requests_per_peer`] requests open (a request left
//! behind by a fetch that moved on still counts until it is answered or
//! fails); a fetch whose peer is at that cap, or backing off, asks another
//! candidate instead of waiting. A request unanswered after
//! [`FetchLimits::stall`] moves its fetch on and strikes the peer: it is
//! not asked for a while (longer each time), and banned after
//! [`MAX_STRIKES`].
//!
//! Every request belongs to the fetch that sent it: a fetch knows the one
//! request it has in flight, and an answer to any other (a request from
//! before the fetch moved on, was given up or started again) is dropped
//! without judging anyone.

mod blob;
mod peers;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

pub use peers::{MAX_REMEMBERED, MAX_STRIKES};

/// Longest an announcement's verdict waits for its blobs.
pub const VERDICT_HOLD: Duration = Duration::from_secs(1);
/// How long a fetch waits, once every candidate said it lacks a blob,
/// before asking them again.
pub const RETRY_PAUSE: Duration = Duration::from_millis(500);

use super::messages::FetchResponse;
use super::verdict::{Kind, Refusal};
use super::{Action, Ctx, Origin, Peer, Time, Token, Verdict};
use crate::proto::{BundleId, Manifest, PublicKey, Verified};
use blob::{Asked, BlobFetch, Rate, Taken};
pub use blob::{FIRST_RANGE, MIN_STALL, TARGET};
use peers::Peers;

/// Most peers asked for one bundle before giving up.
pub const MAX_CANDIDATES: usize = 8;

/// Limits on fetching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchLimits {
    /// Bundles fetched at once.
    pub max_fetches: usize,
    /// Requests outstanding to one peer.
    pub max_requests_per_peer: usize,
    /// How long one bundle may take.
    pub deadline: Duration,
    /// Fetches one peer may have brought (announced, or listed in
    /// catch-up) at once.
    pub per_peer: usize,
    /// Of `max_fetches`, the slots that only catch-up may take.
    pub reserved: usize,
    /// How long a request may go unanswered before its fetch moves on and
    /// the peer is struck.
    pub stall: Duration,
}

impl FetchLimits {
    /// Limits with the shares derived from the totals: a quarter of the
    /// slots per peer and a quarter kept for catch-up (at least one each).
    pub fn shared(
        max_fetches: usize,
        max_requests_per_peer: usize,
        deadline: Duration,
        stall: Duration,
    ) -> Self {
        Self {
            max_fetches,
            max_requests_per_peer,
            deadline,
            per_peer: (max_fetches / 4).max(1),
            reserved: (max_fetches / 4).max(1).min(max_fetches.saturating_sub(1)),
            stall,
        }
    }
}

/// Why a fetch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A gossip announcement.
    Gossip,
    /// Catch-up listed it.
    CatchUp,
}

/// The request a fetch has in flight.
#[derive(Debug)]
struct Request<P> {
    bundle: BundleId,
    peer: P,
    sent: Time,
    asked: Asked,
    /// When it counts as stalled: sized to what it asked for.
    stall: Duration,
}

/// One bundle being fetched.
#[derive(Debug)]
struct Fetch<P, M> {
    manifest: Verified<Manifest>,
    origin: Option<Origin<P, M>>,
    /// The peer charged for this fetch's slot.
    sponsor: Option<P>,
    entry: usize,
    /// The blob of `entry`: its checked pieces are kept whichever peer
    /// sends the rest.
    blob: Option<BlobFetch>,
    blobs: Vec<Vec<u8>>,
    candidates: VecDeque<P>,
    current: Option<P>,
    /// The one request whose answer this fetch takes.
    in_flight: Option<Token>,
    /// Candidates in a row that lacked the blob asked.
    misses: usize,
    /// Every candidate lacked it: none is asked again before this.
    paused_until: Option<Time>,
    started: Time,
    /// When good bytes last came: a fetch is given up only after its
    /// deadline passes with none, so that a large story on a slow link
    /// that is getting through is never cut off.
    progressed: Time,
}

/// The bundles being fetched.
#[derive(Debug)]
pub struct Fetches<P, M> {
    limits: FetchLimits,
    fetches: BTreeMap<BundleId, Fetch<P, M>>,
    /// Every request not yet answered, its fetch's or left behind.
    requests: HashMap<Token, Request<P>>,
    peers: Peers<P>,
    /// Announcements of bundles gone to the store, with when their fetch
    /// began: accepted when the store is done or their hold ends.
    storing: Vec<(BundleId, Origin<P, M>, Time)>,
}

impl<P: Peer, M: Clone> Fetches<P, M> {
    /// No fetches yet.
    pub fn new(limits: FetchLimits) -> Self {
        Self {
            limits,
            fetches: BTreeMap::new(),
            requests: HashMap::new(),
            peers: Peers::default(),
            storing: Vec::new(),
        }
    }

    /// Bundles being fetched.
    pub fn len(&self) -> usize {
        self.fetches.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.fetches.is_empty()
    }

    /// Whether no more may start, for any reason.
    pub fn is_full(&self) -> bool {
        self.fetches.len() >= self.limits.max_fetches
    }

    /// Fetches `peer` brought that are still going.
    pub fn sponsored(&self, peer: &P) -> usize {
        self.fetches
            .values()
            .filter(|f| f.sponsor.as_ref() == Some(peer))
            .count()
    }

    /// Requests `peer` holds open.
    pub fn open_requests(&self, peer: &P) -> usize {
        self.peers.open(peer)
    }

    /// Strikes against `peer` now.
    pub fn strikes(&self, peer: &P, now: Time) -> u32 {
        self.peers.strikes(peer, now)
    }

    /// Peers the fetcher keeps an entry for (bounded: see `peers`).
    pub fn peer_entries(&self) -> usize {
        self.peers.entries()
    }

    /// Whether a fetch brought by `sponsor` for `reason` may start now.
    pub fn has_room(&self, sponsor: Option<&P>, reason: Reason) -> bool {
        let cap = match reason {
            Reason::CatchUp => self.limits.max_fetches,
            Reason::Gossip => self.limits.max_fetches.saturating_sub(self.limits.reserved),
        };
        self.fetches.len() < cap && sponsor.is_none_or(|p| self.sponsored(p) < self.limits.per_peer)
    }

    /// Whether `id` is being fetched.
    pub fn contains(&self, id: &BundleId) -> bool {
        self.fetches.contains_key(id)
    }

    /// The sequence numbers of `publisher` being fetched.
    pub fn sequences_of<'a>(&'a self, publisher: &'a PublicKey) -> impl Iterator<Item = u64> + 'a {
        self.fetches
            .values()
            .filter(move |f| f.manifest.publisher == *publisher)
            .map(|f| f.manifest.sequence)
    }

    /// Starts fetching a verified manifest's blobs, from `first` (charged
    /// for the slot) and then from connected peers. Returns false (and
    /// gives the origin no verdict yet) when there is no room for it.
    pub fn start(
        &mut self,
        manifest: Verified<Manifest>,
        origin: Option<Origin<P, M>>,
        first: Option<P>,
        reason: Reason,
        ctx: &mut Ctx<'_, P, M>,
    ) -> bool {
        if !self.has_room(first.as_ref(), reason) {
            return false;
        }
        let mut candidates = VecDeque::new();
        if let Some(source) = first {
            candidates.push_back(source);
        }
        for p in ctx.connected.iter() {
            if candidates.len() >= MAX_CANDIDATES {
                break;
            }
            if !candidates.contains(p) && !ctx.bans.is_banned(p, ctx.now) {
                candidates.push_back(*p);
            }
        }
        let id = manifest.id();
        let entries = manifest.entries.len();
        let blob = manifest.entries.first().cloned().map(BlobFetch::new);
        self.fetches.insert(
            id,
            Fetch {
                manifest,
                origin,
                sponsor: first,
                entry: 0,
                blob,
                blobs: Vec::with_capacity(entries),
                candidates,
                current: None,
                in_flight: None,
                misses: 0,
                paused_until: None,
                started: ctx.now,
                progressed: ctx.now,
            },
        );
        self.advance(id, ctx);
        true
    }

    /// Whether `peer` can be asked now.
    fn askable(&self, peer: &P, ctx: &Ctx<'_, P, M>) -> bool {
        self.peers.open(peer) < self.limits.max_requests_per_peer
            && !self.peers.backing_off(peer, ctx.now)
    }

    /// Sends the next request of a fetch, or finishes it.
    fn advance(&mut self, id: BundleId, ctx: &mut Ctx<'_, P, M>) {
        let Some(f) = self.fetches.get(&id) else {
            return;
        };
        if f.in_flight.is_some() || f.paused_until.is_some_and(|t| ctx.now < t) {
            return;
        }
        if f.entry == f.manifest.entries.len() {
            return self.complete(id, ctx);
        }
        // Pick who to ask: the current peer if it can be asked, else the
        // first candidate that can (the others keep their turn), so a
        // fetch never waits on one busy or stalling peer while another
        // could serve it.
        let current = f
            .current
            .filter(|p| !ctx.bans.is_banned(p, ctx.now) && self.askable(p, ctx));
        let mut pick = current;
        let mut kept = VecDeque::new();
        let mut candidates = f.candidates.clone();
        if pick.is_none() {
            while let Some(p) = candidates.pop_front() {
                if ctx.bans.is_banned(&p, ctx.now) {
                    continue;
                }
                if self.askable(&p, ctx) {
                    pick = Some(p);
                    break;
                }
                kept.push_back(p);
            }
        }
        let Some(f) = self.fetches.get_mut(&id) else {
            return;
        };
        let Some(peer) = pick else {
            // Nobody can be asked now; the banned are dropped for good.
            f.candidates = kept;
            if f.current.is_none() && f.candidates.is_empty() {
                // A peer that came back (a replaced connection) or a new
                // one may hold the blobs: the pieces so far are kept.
                for p in ctx.connected.iter() {
                    if f.candidates.len() >= MAX_CANDIDATES {
                        break;
                    }
                    if !ctx.bans.is_banned(p, ctx.now) {
                        f.candidates.push_back(*p);
                    }
                }
            }
            if f.current.is_some_and(|p| ctx.bans.is_banned(&p, ctx.now)) {
                f.current = None;
            }
            // With nobody to ask, the fetch waits (its pieces kept) for a
            // peer to come, up to its deadline: a connection replaced
            // after a stall goes down before the new one is up.
            return; // asked again on the next tick
        };
        if f.current != Some(peer) {
            kept.extend(candidates);
            // A peer still usable later (busy, backing off) keeps a turn.
            if let Some(p) = f.current.take()
                && !ctx.bans.is_banned(&p, ctx.now)
                && !kept.contains(&p)
            {
                kept.push_back(p);
            }
            f.candidates = kept;
            f.current = Some(peer);
        }
        if !ctx.download.open(ctx.now) {
            return; // asked again on the next tick
        }
        let Some(blob) = &f.blob else {
            return self.complete(id, ctx);
        };
        let rate = self.peers.rate(&peer);
        let (request, asked) = blob.next(Rate::range(rate));
        let stall = Rate::stall(rate, asked.len(blob.entry()), self.limits.stall);
        let token = ctx.tokens.fresh();
        f.in_flight = Some(token);
        self.peers.sent(peer);
        self.requests.insert(
            token,
            Request {
                bundle: id,
                peer,
                sent: ctx.now,
                asked,
                stall,
            },
        );
        ctx.out.push_back(Action::Fetch {
            peer,
            token,
            request,
        });
    }

    /// Moves a fetch on to its next candidate peer, dropping the current
    /// one from its candidates.
    fn next_peer(&mut self, id: BundleId, ctx: &mut Ctx<'_, P, M>) {
        if let Some(f) = self.fetches.get_mut(&id) {
            f.current = None;
            f.in_flight = None;
        }
        self.advance(id, ctx);
    }

    /// `peer` lacked a chunk (not there yet, or over its serving share)
    /// or let a request fail. It stays a candidate while connected; once
    /// every candidate missed in a row, all wait a pause. The next
    /// candidate is asked, and the chunks so far are kept should it be
    /// the same peer (a rate-limited mirror that said "not now", a slow
    /// link whose request timed out), so that a large blob does not start
    /// over each time.
    fn missed(&mut self, id: BundleId, peer: P, ctx: &mut Ctx<'_, P, M>) {
        if let Some(f) = self.fetches.get_mut(&id) {
            if ctx.connected.contains(&peer) && !f.candidates.contains(&peer) {
                f.candidates.push_back(peer);
            }
            f.misses += 1;
            if f.misses >= f.candidates.len() {
                f.misses = 0;
                f.paused_until = Some(ctx.now + RETRY_PAUSE);
            }
            f.current = None;
            f.in_flight = None;
        }
        self.advance(id, ctx);
    }

    /// Strikes `peer` for a request it left unanswered; bans it on its
    /// last strike.
    fn strike(&mut self, peer: P, ctx: &mut Ctx<'_, P, M>) {
        if self.peers.strike(peer, ctx.now) {
            ctx.ban(
                peer,
                Refusal::new(
                    Kind::Unresponsive,
                    format!("left {MAX_STRIKES} fetch requests unanswered"),
                ),
            );
        }
    }

    /// Whether `token` is one of this fetcher's requests.
    pub fn owns(&self, token: &Token) -> bool {
        self.requests.contains_key(token)
    }

    /// A fetch request was answered, or failed (`Err`: why).
    pub fn response(
        &mut self,
        token: Token,
        response: Result<FetchResponse, String>,
        ctx: &mut Ctx<'_, P, M>,
    ) {
        let Some(Request {
            bundle: id,
            peer,
            sent,
            asked,
            stall,
        }) = self.requests.remove(&token)
        else {
            return;
        };
        self.peers.answered(&peer);
        let Some(f) = self.fetches.get_mut(&id) else {
            return;
        };
        if f.in_flight != Some(token) {
            // Its fetch moved on, ended or started again since: what it
            // says is about another request, and judges nobody.
            tracing::debug!(peer = ?peer, bundle = %id.short(), "late fetch answer dropped");
            return;
        }
        f.in_flight = None;
        let Ok(response) = response else {
            // A failure that came only after the stall time is a stall
            // (the transport's own timeout); a quick one (connection
            // closed, refused) is not held against the peer.
            if ctx.now.since(sent) >= stall {
                self.stalled(peer, ctx);
            }
            // Still connected, it keeps a turn (after any back-off its
            // strikes earned); a failure counts as a miss, so that a
            // peer whose every request fails at once is not asked
            // again in a loop.
            return self.missed(id, peer, ctx);
        };
        let Some(blob) = f.blob.as_mut() else {
            return self.complete(id, ctx);
        };
        match blob.take(asked, response) {
            Taken::NotFound => self.missed(id, peer, ctx),
            Taken::Malformed(why) => {
                ctx.ban(peer, Refusal::new(Kind::Malformed, why));
                self.next_peer(id, ctx)
            }
            Taken::False(why) => {
                ctx.ban(peer, Refusal::new(Kind::FalseBlob, why));
                self.next_peer(id, ctx)
            }
            Taken::More { bytes } => {
                f.misses = 0;
                f.progressed = ctx.now;
                ctx.received(bytes);
                self.peers.delivered(peer, bytes, ctx.now.since(sent));
                self.advance(id, ctx)
            }
            Taken::Done { blob, bytes } => {
                f.misses = 0;
                f.progressed = ctx.now;
                ctx.received(bytes);
                f.blobs.push(blob);
                f.entry += 1;
                f.blob = f.manifest.entries.get(f.entry).cloned().map(BlobFetch::new);
                self.peers.delivered(peer, bytes, ctx.now.since(sent));
                self.advance(id, ctx)
            }
        }
    }

    /// A request of `peer` went unanswered past its stall time: the peer
    /// is struck, asked for less next time, and its connection is to be
    /// replaced (a censor that freezes a flow leaves it open and silent,
    /// and every later request on it would hang the same way). Several
    /// requests stalled at once are one incident.
    fn stalled(&mut self, peer: P, ctx: &mut Ctx<'_, P, M>) {
        let first = !self.peers.backing_off(&peer, ctx.now);
        self.peers.slowed(peer);
        self.strike(peer, ctx);
        if first && !ctx.bans.is_banned(&peer, ctx.now) {
            ctx.out.push_back(Action::Reconnect { peer });
        }
    }

    /// Every blob is here: the bundle goes to be checked and stored.
    fn complete(&mut self, id: BundleId, ctx: &mut Ctx<'_, P, M>) {
        let Some(f) = self.fetches.remove(&id) else {
            return;
        };
        if let Some(origin) = f.origin {
            self.storing.push((id, origin, f.started));
        }
        ctx.out.push_back(Action::Store {
            manifest: Box::new(f.manifest),
            blobs: f.blobs,
        });
    }

    /// Gives up on a fetch; catch-up brings the bundle later if a peer
    /// holds it.
    fn fail(&mut self, id: BundleId, why: &'static str, ctx: &mut Ctx<'_, P, M>) {
        let Some(f) = self.fetches.remove(&id) else {
            return;
        };
        tracing::debug!(bundle = %id.short(), "fetch failed: {why}");
        // The announcement was true all the same.
        if let Some(origin) = f.origin {
            ctx.out.push_back(Action::Verdict {
                origin,
                verdict: Verdict::Accept,
            });
        }
    }

    /// Gives the announcements whose hold ended their verdict.
    fn hold_ended(&mut self, ctx: &mut Ctx<'_, P, M>) {
        let now = ctx.now;
        let (due, waiting) = std::mem::take(&mut self.storing)
            .into_iter()
            .partition(|(_, _, started)| now.since(*started) >= VERDICT_HOLD);
        self.storing = waiting;
        let fetching = self.fetches.values_mut().filter_map(|f| {
            if now.since(f.started) >= VERDICT_HOLD {
                f.origin.take()
            } else {
                None
            }
        });
        let due: Vec<Origin<P, M>> = due
            .into_iter()
            .map(|(_, origin, _)| origin)
            .chain(fetching)
            .collect();
        for origin in due {
            ctx.out.push_back(Action::Verdict {
                origin,
                verdict: Verdict::Accept,
            });
        }
    }

    /// The store is done with bundle `id`: its announcement, if it still
    /// waits, gets `verdict`.
    pub fn stored(&mut self, id: &BundleId, verdict: Verdict, ctx: &mut Ctx<'_, P, M>) {
        if let Some(i) = self.storing.iter().position(|(b, _, _)| b == id) {
            let (_, origin, _) = self.storing.swap_remove(i);
            ctx.out.push_back(Action::Verdict { origin, verdict });
        }
    }

    /// Gives held announcements their verdict, moves stalled fetches on,
    /// gives up on fetches past their deadline, and moves idle ones on.
    pub fn tick(&mut self, ctx: &mut Ctx<'_, P, M>) {
        self.hold_ended(ctx);
        let stalled: Vec<(BundleId, P)> = self
            .fetches
            .iter()
            .filter_map(|(id, f)| {
                let r = self.requests.get(&f.in_flight?)?;
                (ctx.now.since(r.sent) >= r.stall).then_some((*id, r.peer))
            })
            .collect();
        for (id, peer) in stalled {
            // The request stays open (and counted against the peer) until
            // it is answered or fails; its answer is then dropped. The
            // fetch moves on to another candidate with the pieces so far;
            // with no other, the peer is asked again after its back-off,
            // over the fresh connection (a link that froze may come back).
            self.stalled(peer, ctx);
            self.next_peer(id, ctx);
        }
        let overdue: Vec<BundleId> = self
            .fetches
            .iter()
            .filter(|(_, f)| ctx.now.since(f.progressed) > self.limits.deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in overdue {
            self.fail(id, "deadline passed", ctx);
        }
        let idle: Vec<BundleId> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.in_flight.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            self.advance(id, ctx);
        }
    }

    /// A peer's last connection closed: its requests died with it, and the
    /// fetches that waited on it ask someone else.
    pub fn peer_gone(&mut self, peer: &P, ctx: &mut Ctx<'_, P, M>) {
        self.peers.gone(peer);
        self.requests.retain(|_, r| r.peer != *peer);
        let mut waiting = Vec::new();
        for (id, f) in &mut self.fetches {
            f.candidates.retain(|p| p != peer);
            if f.current.as_ref() == Some(peer) {
                f.current = None;
                f.in_flight = None;
                waiting.push(*id);
            }
        }
        for id in waiting {
            self.advance(id, ctx);
        }
    }

    /// Drops every fetch (at shutdown); returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.fetches.len();
        self.fetches.clear();
        self.requests.clear();
        self.peers.clear();
        self.storing.clear();
        n
    }
}
