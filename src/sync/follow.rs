//! A quiet reader following mirrors' logs (see
//! [`messages::log`](super::messages::LogRequest)): it learns every story
//! a mirror carries, keeps those of the publishers it trusts, and drops
//! the rest without writing them, so that nothing it asks names a
//! publisher or a story.
//!
//! Small bundles come whole in the pages. Larger ones come as manifests;
//! their blobs are fetched by hash, and only for trusted publishers, so
//! those fetches are what a mirror can tell about a reader's interest:
//! they are kept within a daily byte budget (0: never), and the reader's
//! threat model says what they reveal.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use super::fetch::Reason;
use super::messages::{LogEntry, LogRequest, LogResponse, MAX_LOG_ENTRIES, resume_from};
use super::verdict::{Kind, Verdict, judge};
use super::{Action, Now, Peer, State, Time, Token};
use crate::proto::{Manifest, Verified, VerifiedBundle};

/// Mirrors followed at once: each sends the whole log, so more than a few
/// only repeats it; two or three keep a reader fed when one is cut off or
/// leaves stories out.
pub const MAX_FOLLOWED: usize = 3;
/// Mirrors whose position is remembered (the most recent ones).
pub const MAX_CURSORS: usize = 64;
/// Large bundles waiting for room or budget; past it the oldest are
/// dropped (they remain missing, shown as such, and come with a later
/// pass over the log).
pub const MAX_WAITING: usize = 1024;
/// A mirror whose answer failed is asked again after this, doubling up to
/// [`MAX_RETRY`].
const RETRY: Duration = Duration::from_secs(1);
/// See [`RETRY`].
const MAX_RETRY: Duration = Duration::from_secs(60);
/// Least time between two waiting requests to one mirror: a mirror that
/// answers at once with nothing cannot keep the reader asking in a loop.
const MIN_WAIT_GAP: Duration = Duration::from_secs(1);
/// The budget's period.
const DAY: Duration = Duration::from_secs(24 * 3600);

/// A digest of the publishers `policy` trusts: a position in a log read
/// under another trust list is read again from the start, since a
/// publisher trusted since went by unkept.
pub fn trust_digest(policy: &crate::proto::TrustPolicy) -> [u8; 32] {
    let mut keys: Vec<&crate::proto::PublicKey> = policy.publishers().map(|(k, _)| k).collect();
    keys.sort_unstable_by_key(|k| k.as_bytes());
    let mut h = blake3::Hasher::new_derive_key("kolokol/v1/log-trust");
    for k in keys {
        h.update(k.as_bytes());
    }
    *h.finalize().as_bytes()
}

/// Where a reader is in one mirror's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The log's name.
    pub log: [u8; 16],
    /// The position to ask from next.
    pub next: u64,
    /// [`State::trust_digest`] of the trust list the log was read under
    /// up to `next`: under another, it is read again from the start.
    pub trust: [u8; 32],
}

#[derive(Debug, Default)]
struct Following {
    /// The request out, if one is: the answer to any other is not taken.
    asking: Option<Token>,
    /// Not asked again before this.
    not_before: Option<Time>,
    /// Failures in a row.
    failures: u32,
    /// Asked at least once on this connection.
    resumed: bool,
    /// The position asked from, while asking.
    from: u64,
    /// The last page reached the end of the log: the next request waits.
    at_end: bool,
    /// Whether the request out waits at the end of the log.
    waited: bool,
}

/// The follower's state.
#[derive(Debug)]
pub(super) struct Follow<P> {
    following: BTreeMap<P, Following>,
    requests: HashMap<Token, P>,
    cursors: HashMap<P, (Cursor, Time)>,
    /// Large bundles of trusted publishers, and who announced them.
    waiting: VecDeque<(Verified<Manifest>, P)>,
    /// Bytes of large bundles fetched in the budget's current day.
    spent: u64,
    day_started: Option<Time>,
}

impl<P> Default for Follow<P> {
    fn default() -> Self {
        Self {
            following: BTreeMap::new(),
            requests: HashMap::new(),
            cursors: HashMap::new(),
            waiting: VecDeque::new(),
            spent: 0,
            day_started: None,
        }
    }
}

impl<P: Peer> Follow<P> {
    fn cursor(&mut self, peer: P, cursor: Cursor, now: Time) {
        if !self.cursors.contains_key(&peer) && self.cursors.len() >= MAX_CURSORS {
            // The mirror not heard from for longest is forgotten.
            if let Some(oldest) = self
                .cursors
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(p, _)| *p)
            {
                self.cursors.remove(&oldest);
            }
        }
        self.cursors.insert(peer, (cursor, now));
    }
}

impl<P: Peer, M: Clone> State<P, M> {
    /// Where the reader was in `mirror`'s log when it last stopped (read
    /// from the store at start).
    pub fn set_cursor(&mut self, mirror: P, mut cursor: Cursor, now: Time) {
        // A publisher trusted since went by in that log unkept.
        if cursor.trust != self.trust_digest() {
            cursor.next = 0;
        }
        self.follow.cursor(mirror, cursor, now);
    }

    /// A digest of the publishers trusted now.
    pub fn trust_digest(&self) -> [u8; 32] {
        trust_digest(&self.policy)
    }

    /// Reads every log followed or remembered again from its start (a
    /// publisher was trusted: its stories went by earlier). The mirrors
    /// see a reader reading from the start, as on a first start, and not
    /// why.
    pub(super) fn reread_logs(&mut self, now: Now) {
        for (peer, (cursor, _)) in self.follow.cursors.iter_mut() {
            cursor.next = 0;
            self.out.push_back(Action::Cursor {
                peer: *peer,
                cursor: *cursor,
            });
        }
        // A request out (a wait at the end, most often) is let go: its
        // answer is not taken, and the mirror answers it when the new one
        // comes.
        for f in self.follow.following.values_mut() {
            f.at_end = false;
            f.not_before = None;
            f.asking = None;
        }
        self.follow.requests.clear();
        let peers: Vec<P> = self.follow.following.keys().copied().collect();
        for p in peers {
            self.ask_log(p, now);
        }
    }

    /// Mirrors followed now.
    pub fn followed(&self) -> usize {
        self.follow.following.len()
    }

    /// Starts following a mirror that came up, if there is room.
    pub(super) fn follow_up(&mut self, peer: P, now: Now) {
        if self.follow.following.len() >= MAX_FOLLOWED || self.follow.following.contains_key(&peer)
        {
            return;
        }
        self.follow.following.insert(peer, Following::default());
        self.ask_log(peer, now);
    }

    /// A followed mirror went away: another connected one takes its place.
    pub(super) fn follow_down(&mut self, peer: &P, now: Now) {
        if self.follow.following.remove(peer).is_none() {
            return;
        }
        self.follow.requests.retain(|_, p| p != peer);
        self.follow.waiting.retain(|(_, p)| p != peer);
        let next = self
            .connected
            .iter()
            .copied()
            .find(|p| !self.follow.following.contains_key(p));
        if let Some(p) = next {
            self.follow_up(p, now);
        }
    }

    fn ask_log(&mut self, peer: P, now: Now) {
        let cursor = self.follow.cursors.get(&peer).map(|(c, _)| *c);
        let Some(f) = self.follow.following.get_mut(&peer) else {
            return;
        };
        if f.asking.is_some() || f.not_before.is_some_and(|t| t > now.at) {
            return;
        }
        // Coming back, the position is rounded down, so that it does not
        // single out the session that left it; while connected, the next
        // position is the end of the log, which every reader shares.
        let (from, wait) = match cursor {
            None => (0, false),
            Some(c) if !f.resumed => (resume_from(c.next), false),
            Some(c) => (c.next, f.at_end),
        };
        let token = self.tokens.fresh();
        f.asking = Some(token);
        f.resumed = true;
        f.from = from;
        f.waited = wait;
        self.follow.requests.insert(token, peer);
        self.out.push_back(Action::Log {
            peer,
            token,
            request: LogRequest { from, wait },
        });
    }

    /// Asks followed mirrors whose retry time came, fetches waiting large
    /// bundles as room and budget allow.
    pub(super) fn follow_tick(&mut self, now: Now) {
        let due: Vec<P> = self
            .follow
            .following
            .iter()
            .filter(|(_, f)| f.asking.is_none() && f.not_before.is_none_or(|t| t <= now.at))
            .map(|(p, _)| *p)
            .collect();
        for p in due {
            self.ask_log(p, now);
        }
        self.pump_large(now);
    }

    /// A log response arrived, or the request failed. Returns false when
    /// `token` is not a log request.
    pub fn log_response(
        &mut self,
        token: Token,
        response: Result<LogResponse, String>,
        unsupported: bool,
        now: Now,
    ) -> bool {
        let Some(peer) = self.follow.requests.remove(&token) else {
            return false;
        };
        let Some(f) = self.follow.following.get_mut(&peer) else {
            return true;
        };
        if f.asking != Some(token) {
            return true;
        }
        f.asking = None;
        let from = f.from;
        let waited = f.waited;
        match response {
            Ok(LogResponse::Page {
                log,
                certificates,
                entries,
                next,
                end,
            }) => {
                f.failures = 0;
                self.on_page(
                    peer,
                    from,
                    waited,
                    log,
                    certificates,
                    entries,
                    next,
                    end,
                    now,
                );
            }
            Ok(LogResponse::Refused) | Err(_) => {
                if unsupported {
                    // Not a mirror with a log: let another take its place.
                    tracing::debug!(peer = ?peer, "peer has no log to follow");
                    self.follow_down(&peer, now);
                    return true;
                }
                f.failures += 1;
                let pause = RETRY.saturating_mul(1 << f.failures.min(6)).min(MAX_RETRY);
                f.not_before = Some(now.at + pause);
                if let Err(e) = response {
                    tracing::debug!(peer = ?peer, "log request failed: {e}");
                }
            }
        }
        self.ask_log(peer, now);
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn on_page(
        &mut self,
        peer: P,
        from: u64,
        waited: bool,
        log: [u8; 16],
        certificates: Vec<Vec<u8>>,
        entries: Vec<LogEntry>,
        next: u64,
        end: u64,
        now: Now,
    ) {
        let known = self.follow.cursors.get(&peer).map(|(c, _)| *c);
        if known.is_some_and(|c| c.log != log) && from > 0 {
            // Another log under the same mirror (its store was made anew):
            // what was asked means nothing there. Start from its beginning.
            tracing::info!(peer = ?peer, "the mirror's log is new: reading it from the start");
            let trust = self.trust_digest();
            self.follow.cursor(
                peer,
                Cursor {
                    log,
                    next: 0,
                    trust,
                },
                now.at,
            );
            if let Some(f) = self.follow.following.get_mut(&peer) {
                f.at_end = false;
            }
            return;
        }
        // An honest page moves on from where it was asked, and only as far
        // as the entries it holds (or the gone ones it skipped) allow.
        if next < from || next > end || (entries.is_empty() && next == from && from < end) {
            return self.ban(
                peer,
                Kind::Malformed,
                "a log page that does not move on",
                now.at,
            );
        }
        if entries.len() > MAX_LOG_ENTRIES || certificates.len() > MAX_LOG_ENTRIES {
            return self.ban(peer, Kind::OverLimits, "a log page over its limits", now.at);
        }
        let empty = entries.is_empty();
        if !self.take_page(peer, certificates, entries, now) {
            return;
        }
        let cursor = Cursor {
            log,
            next,
            trust: self.trust_digest(),
        };
        self.follow.cursor(peer, cursor, now.at);
        self.out.push_back(Action::Cursor { peer, cursor });
        if let Some(f) = self.follow.following.get_mut(&peer) {
            // Behind the end: ask on at once. At the end: wait there, but
            // not in a loop with a mirror that answers a wait at once with
            // nothing.
            f.at_end = next >= end;
            if next >= end && waited && empty {
                f.not_before = Some(now.at + MIN_WAIT_GAP);
            }
        }
    }

    /// Verifies and takes what a page holds of trusted publishers; the
    /// rest is dropped unwritten. Returns false when the mirror was banned.
    fn take_page(
        &mut self,
        peer: P,
        certificates: Vec<Vec<u8>>,
        entries: Vec<LogEntry>,
        now: Now,
    ) -> bool {
        for c in &certificates {
            if let Err(e) = self.learn_certificate(c)
                && self.refuse_from(peer, "log certificate", &e, now.at)
            {
                return false;
            }
        }
        let mut whole: Vec<VerifiedBundle> = Vec::new();
        for entry in entries {
            match entry {
                LogEntry::Bundle(b) => {
                    let m = match self.policy.verify_manifest(&b.manifest, now.wall) {
                        Ok(m) => m,
                        Err(e) if judge(&e) == Verdict::Reject => {
                            self.refuse_from(peer, "log manifest", &e, now.at);
                            return false;
                        }
                        // Another publisher's, or one not to be judged yet.
                        Err(_) => continue,
                    };
                    let id = m.id();
                    if self.knows(&m.publisher, m.sequence)
                        || self.busy_with_bundle(&id)
                        || whole.iter().any(|w| w.id() == id)
                    {
                        continue;
                    }
                    match b.blobs {
                        Some(blobs) => {
                            let bytes: usize = blobs.iter().map(Vec::len).sum();
                            let (_, _, mut ctx) = self.ctx(now.at);
                            ctx.received(bytes as u64);
                            match self.policy.verify_bundle(m, blobs) {
                                Ok(v) => whole.push(v),
                                Err(e) => {
                                    let refusal = super::Refusal::policy("log blob", &e);
                                    let (_, _, mut ctx) = self.ctx(now.at);
                                    ctx.ban(peer, refusal);
                                    return false;
                                }
                            }
                        }
                        None => {
                            if self.follow.waiting.len() >= MAX_WAITING {
                                self.follow.waiting.pop_front();
                            }
                            self.follow.waiting.push_back((m, peer));
                        }
                    }
                }
                LogEntry::Head(head) => match self.policy.verify_head(&head, now.wall) {
                    Ok(h) => {
                        self.accept_head(h);
                    }
                    Err(e) if judge(&e) == Verdict::Reject => {
                        self.refuse_from(peer, "log head", &e, now.at);
                        return false;
                    }
                    Err(_) => {}
                },
                LogEntry::Revocation(rev) => match self.learn_revocation(&rev) {
                    Ok(_) => {}
                    Err(e) if judge(&e) == Verdict::Reject => {
                        self.refuse_from(peer, "log revocation", &e, now.at);
                        return false;
                    }
                    Err(_) => {}
                },
                LogEntry::MirrorList(list) => {
                    match self.policy.verify_mirror_list(&list, now.wall) {
                        Ok(l) => {
                            self.accept_mirror_list(l, now.wall);
                        }
                        Err(e) if judge(&e) == Verdict::Reject => {
                            self.refuse_from(peer, "log mirror list", &e, now.at);
                            return false;
                        }
                        Err(_) => {}
                    }
                }
            }
        }
        if !whole.is_empty() {
            self.out.push_back(Action::StoreBatch { bundles: whole });
        }
        self.pump_large(now);
        true
    }

    /// Fetches waiting large bundles while there is room and budget.
    fn pump_large(&mut self, now: Now) {
        let budget = self.config.large_budget;
        if self
            .follow
            .day_started
            .is_none_or(|t| now.at.since(t) >= DAY)
        {
            self.follow.day_started = Some(now.at);
            self.follow.spent = 0;
        }
        while let Some((m, peer)) = self.follow.waiting.front() {
            let size: u64 = m.entries.iter().map(|e| e.size).sum();
            if self.follow.spent.saturating_add(size) > budget
                || !self.fetches.has_room(Some(peer), Reason::CatchUp)
            {
                return;
            }
            let Some((m, peer)) = self.follow.waiting.pop_front() else {
                return;
            };
            if self.knows(&m.publisher, m.sequence) || self.busy_with_bundle(&m.id()) {
                continue;
            }
            self.follow.spent += size;
            self.start_fetch(m, None, Some(peer), now.at);
        }
    }
}
