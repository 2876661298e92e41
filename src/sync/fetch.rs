//! Fetching a bundle's blobs: which peer to ask, which chunk next, when to
//! give up, and what a false chunk costs the peer that sent it.
//!
//! A fetch asks one candidate at a time for the next chunk of the next
//! blob, checks every chunk's shape and every whole blob's hash, and moves
//! to the next candidate on a miss or a lie. A peer that sends a chunk that
//! does not fit, or a blob that does not match its manifest, is banned. A
//! peer that does not have the blob yet is asked again later: it may have
//! forwarded the announcement while it fetches the blobs itself.
//!
//! The announcement's verdict waits for the bundle [`VERDICT_HOLD`] at
//! most, never the fetch's deadline: it is accepted when the bundle is
//! stored, when the hold ends, or when the fetch ends, whichever comes
//! first, since it was verified before the fetch began. Holding it that
//! long lets peers that hear it from us find the blobs here in the common
//! case, and lets gossip form its mesh with a peer that just connected
//! (gossip forwards to mesh peers only); it is short enough for gossip's
//! cache of a few heartbeats to still hold the message.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use super::messages::{CHUNK, FetchRequest, FetchResponse};
use super::verdict::{Kind, Refusal};
use super::{Action, Ctx, Origin, Peer, Time, Token, Verdict};
use crate::proto::{BundleId, Manifest, PublicKey, Verified, check_blob};

/// Most peers asked for one bundle before giving up.
pub const MAX_CANDIDATES: usize = 8;
/// Longest an announcement's verdict waits for its blobs.
pub const VERDICT_HOLD: Duration = Duration::from_secs(1);
/// How long a fetch waits, once every candidate said it lacks a blob,
/// before asking them again.
pub const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Limits on fetching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchLimits {
    /// Bundles fetched at once.
    pub max_fetches: usize,
    /// Requests outstanding to one peer.
    pub max_requests_per_peer: usize,
    /// How long one bundle may take.
    pub deadline: Duration,
}

/// One bundle being fetched.
#[derive(Debug)]
struct Fetch<P, M> {
    manifest: Verified<Manifest>,
    /// The announcement waiting for its verdict, until the hold ends.
    origin: Option<Origin<P, M>>,
    entry: usize,
    buf: Vec<u8>,
    blobs: Vec<Vec<u8>>,
    candidates: VecDeque<P>,
    current: Option<P>,
    in_flight: bool,
    /// Candidates in a row that lacked the blob asked.
    misses: usize,
    /// Every candidate lacked it: none is asked again before this.
    paused_until: Option<Time>,
    started: Time,
}

/// The bundles being fetched.
#[derive(Debug)]
pub struct Fetches<P, M> {
    limits: FetchLimits,
    fetches: BTreeMap<BundleId, Fetch<P, M>>,
    requests: HashMap<Token, (BundleId, P)>,
    per_peer: HashMap<P, usize>,
    /// Announcements of bundles gone to the store, with when they came:
    /// accepted when the store is done or their hold ends.
    storing: Vec<(BundleId, Origin<P, M>, Time)>,
}

impl<P: Peer, M> Fetches<P, M> {
    /// No fetches yet.
    pub fn new(limits: FetchLimits) -> Self {
        Self {
            limits,
            fetches: BTreeMap::new(),
            requests: HashMap::new(),
            per_peer: HashMap::new(),
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

    /// Whether no more may start.
    pub fn is_full(&self) -> bool {
        self.fetches.len() >= self.limits.max_fetches
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

    /// Starts fetching a verified manifest's blobs, from `first` and then
    /// from connected peers; `origin`, the verified announcement, gets its
    /// verdict within [`VERDICT_HOLD`]. Returns false (and gives the origin
    /// no verdict) when the node is at its limit.
    pub fn start(
        &mut self,
        manifest: Verified<Manifest>,
        origin: Option<Origin<P, M>>,
        first: Option<P>,
        ctx: &mut Ctx<'_, P, M>,
    ) -> bool {
        if self.is_full() {
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
        self.fetches.insert(
            id,
            Fetch {
                manifest,
                origin,
                entry: 0,
                buf: Vec::new(),
                blobs: Vec::with_capacity(entries),
                candidates,
                current: None,
                in_flight: false,
                misses: 0,
                paused_until: None,
                started: ctx.now,
            },
        );
        self.advance(id, ctx);
        true
    }

    /// Sends the next request of a fetch, or finishes it.
    fn advance(&mut self, id: BundleId, ctx: &mut Ctx<'_, P, M>) {
        let Some(f) = self.fetches.get_mut(&id) else {
            return;
        };
        if f.in_flight || f.paused_until.is_some_and(|t| ctx.now < t) {
            return;
        }
        if f.entry == f.manifest.entries.len() {
            return self.complete(id, ctx);
        }
        while f.current.is_none() {
            match f.candidates.pop_front() {
                Some(p) if ctx.bans.is_banned(&p, ctx.now) => continue,
                Some(p) => f.current = Some(p),
                None => break,
            }
        }
        let Some(peer) = f.current else {
            return self.fail(id, "no peer could supply every blob", ctx);
        };
        if self.per_peer.get(&peer).copied().unwrap_or(0) >= self.limits.max_requests_per_peer
            || !ctx.download.open(ctx.now)
        {
            return; // asked again on the next tick
        }
        let entry = &f.manifest.entries[f.entry];
        let request = FetchRequest::Blob {
            hash: entry.hash,
            offset: f.buf.len() as u64,
        };
        f.in_flight = true;
        let token = ctx.tokens.fresh();
        *self.per_peer.entry(peer).or_default() += 1;
        self.requests.insert(token, (id, peer));
        ctx.out.push_back(Action::Fetch {
            peer,
            token,
            request,
        });
    }

    /// Moves a fetch on to its next candidate peer.
    fn next_peer(&mut self, id: BundleId, ctx: &mut Ctx<'_, P, M>) {
        if let Some(f) = self.fetches.get_mut(&id) {
            f.current = None;
            f.buf.clear();
        }
        self.advance(id, ctx);
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
        let Some((id, peer)) = self.requests.remove(&token) else {
            return;
        };
        if let Some(n) = self.per_peer.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_peer.remove(&peer);
            }
        }
        let Some(f) = self.fetches.get_mut(&id) else {
            return;
        };
        f.in_flight = false;
        let entry = f.manifest.entries[f.entry].clone();
        match response {
            Ok(FetchResponse::Chunk {
                total,
                offset,
                data,
            }) => {
                let ok = total == entry.size
                    && offset == f.buf.len() as u64
                    && data.len() as u64 <= CHUNK
                    && offset + data.len() as u64 <= total
                    && (!data.is_empty() || total == 0);
                if !ok {
                    ctx.ban(peer, Refusal::new(Kind::Malformed, "malformed blob chunk"));
                    return self.next_peer(id, ctx);
                }
                f.misses = 0;
                f.buf.extend_from_slice(&data);
                ctx.received(data.len() as u64);
                if f.buf.len() as u64 == entry.size {
                    let blob = std::mem::take(&mut f.buf);
                    if let Err(e) = check_blob(&entry, &blob) {
                        ctx.ban(
                            peer,
                            Refusal::new(Kind::FalseBlob, format!("tampered blob: {e}")),
                        );
                        return self.next_peer(id, ctx);
                    }
                    f.blobs.push(blob);
                    f.entry += 1;
                }
                self.advance(id, ctx);
            }
            // Not there yet, perhaps: the peer stays a candidate while it
            // is connected. Once every candidate missed, all wait a pause.
            Ok(FetchResponse::NotFound) => {
                if ctx.connected.contains(&peer) {
                    f.candidates.push_back(peer);
                }
                f.misses += 1;
                if f.misses >= f.candidates.len() {
                    f.misses = 0;
                    f.paused_until = Some(ctx.now + RETRY_PAUSE);
                }
                self.next_peer(id, ctx)
            }
            Err(_) => self.next_peer(id, ctx),
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

    /// Gives up on fetches past their deadline, gives held announcements
    /// their verdict, and moves idle fetches on.
    pub fn tick(&mut self, ctx: &mut Ctx<'_, P, M>) {
        let now = ctx.now;
        let (due, waiting) = std::mem::take(&mut self.storing)
            .into_iter()
            .partition(|(_, _, started)| now.since(*started) >= VERDICT_HOLD);
        self.storing = waiting;
        for (_, origin, _) in due {
            ctx.out.push_back(Action::Verdict {
                origin,
                verdict: Verdict::Accept,
            });
        }
        for f in self.fetches.values_mut() {
            if ctx.now.since(f.started) >= VERDICT_HOLD
                && let Some(origin) = f.origin.take()
            {
                ctx.out.push_back(Action::Verdict {
                    origin,
                    verdict: Verdict::Accept,
                });
            }
        }
        let overdue: Vec<BundleId> = self
            .fetches
            .iter()
            .filter(|(_, f)| ctx.now.since(f.started) > self.limits.deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in overdue {
            self.fail(id, "deadline passed", ctx);
        }
        let idle: Vec<BundleId> = self
            .fetches
            .iter()
            .filter(|(_, f)| !f.in_flight)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            self.advance(id, ctx);
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

    /// Drops every fetch (at shutdown); returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.fetches.len();
        self.fetches.clear();
        self.requests.clear();
        self.per_peer.clear();
        self.storing.clear();
        n
    }
}
