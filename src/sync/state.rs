//! The state of one node's network decisions, and the inputs that are not
//! catch-up, gossip or serving (those have their own files).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use super::bandwidth::Bucket;
use super::bans::{Bans, Strikes};
use super::catchup::CatchUp;
use super::fetch::{FetchLimits, Fetches, Reason};
use super::messages::{FetchResponse, ranges_digest};
use super::share::Shares;
use super::verdict::{Kind, Refusal, judge};
use super::{Action, Ctx, Now, Origin, Peer, Record, Time, Token, Tokens, Verdict};
use crate::proto::ranges::{self as seqs, gaps};
use crate::proto::{
    BundleId, Head, KeyCertificate, KeyError, PolicyError, PublicKey, RevocationChange,
    TrustPolicy, Verified,
};

/// Settings of the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// What the node does for others.
    pub role: super::Role,
    /// Limits on fetching blobs.
    pub fetch: FetchLimits,
    /// How often each connected peer is asked for a summary.
    pub sync_interval: Duration,
    /// Upload cap in bytes per second (`None`: no cap).
    pub upload_rate: Option<u64>,
    /// Download cap in bytes per second (`None`: no cap).
    pub download_rate: Option<u64>,
    /// Each peer's serving rate in bytes per second (`None`: only the
    /// upload cap).
    pub serve_rate: Option<u64>,
    /// A quiet reader fetches at most this many bytes a day of bundles
    /// too large to come whole in a mirror's log (each such fetch tells
    /// the mirror the reader wants that story); 0: never.
    pub large_budget: u64,
}

/// What storing one bundle came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Stored now.
    New,
    /// Already held.
    Duplicate,
    /// Refused for what the store knows (a revocation, another bundle
    /// under the number): the sender may not know it yet.
    Refused,
    /// Not stored: the blobs did not verify, or the store failed.
    Failed(String),
}

/// Held and known sequence ranges of one publisher, as the store has them.
#[derive(Clone, Debug, Default)]
pub(super) struct Ranges {
    /// Held now.
    pub(super) held: Vec<(u64, u64)>,
    /// Held or evicted: never fetched again.
    pub(super) known: Vec<(u64, u64)>,
    /// [`ranges_digest`] of `held`, computed when first asked.
    digest: Option<[u8; 32]>,
}

impl Ranges {
    pub(super) fn digest(&mut self) -> [u8; 32] {
        *self.digest.get_or_insert_with(|| ranges_digest(&self.held))
    }

    fn insert(&mut self, seq: u64) {
        insert(&mut self.held, seq);
        insert(&mut self.known, seq);
        self.digest = None;
    }
}

/// Adds `seq` to sorted, disjoint ranges.
fn insert(ranges: &mut Vec<(u64, u64)>, seq: u64) {
    if seqs::covers(ranges, seq) {
        return;
    }
    let i = ranges.partition_point(|&(_, b)| b < seq);
    let joins_prev = i > 0 && ranges[i - 1].1.checked_add(1) == Some(seq);
    let joins_next = ranges
        .get(i)
        .is_some_and(|&(a, _)| seq.checked_add(1) == Some(a));
    match (joins_prev, joins_next) {
        (true, true) => {
            ranges[i - 1].1 = ranges[i].1;
            ranges.remove(i);
        }
        (true, false) => ranges[i - 1].1 = seq,
        (false, true) => ranges[i].0 = seq,
        (false, false) => ranges.insert(i, (seq, seq)),
    }
}

/// Per trusted publisher: what is held and missing, and its newest head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublisherFigures {
    /// The publisher.
    pub publisher: PublicKey,
    /// Its name in the trust list.
    pub name: String,
    /// Bundles held.
    pub held: u64,
    /// Sequence ranges missing below the newest head.
    pub missing: Vec<(u64, u64)>,
    /// The newest trusted head.
    pub head: Option<Head>,
}

/// One node's network decisions. `P` names peers, `M` gossip messages.
#[derive(Debug)]
pub struct State<P, M> {
    pub(super) config: Config,
    pub(super) policy: TrustPolicy,
    pub(super) ranges: HashMap<PublicKey, Ranges>,
    pub(super) connected: BTreeSet<P>,
    pub(super) fetches: Fetches<P, M>,
    pub(super) catchup: CatchUp<P>,
    /// Mirrors' logs followed (a quiet reader).
    pub(super) follow: super::follow::Follow<P>,
    pub(super) bans: Bans<P>,
    /// Rejected messages per peer, toward a ban.
    pub(super) strikes: Strikes<P>,
    pub(super) upload: Bucket,
    pub(super) download: Bucket,
    /// Each peer's share of serving.
    pub(super) shares: Shares<P>,
    /// Bundles handed to the store and not yet reported back.
    pub(super) storing: HashSet<BundleId>,
    /// The newest mirror list known of each trusted publisher (see
    /// `mirrors`): at most one per publisher of the trust list.
    pub(super) mirror_lists: HashMap<PublicKey, Verified<crate::proto::mirrors::MirrorList>>,
    pub(super) tokens: Tokens,
    pub(super) out: VecDeque<Action<P, M>>,
}

impl<P: Peer, M: Clone> State<P, M> {
    /// A node's state at `now`, trusting what `policy` trusts. The store's
    /// ranges come in through [`State::set_ranges`].
    pub fn new(config: Config, policy: TrustPolicy, now: Time) -> Self {
        Self {
            fetches: Fetches::new(config.fetch.clone()),
            upload: Bucket::new(config.upload_rate, now),
            download: Bucket::new(config.download_rate, now),
            shares: Shares::new(config.serve_rate),
            config,
            policy,
            ranges: HashMap::new(),
            connected: BTreeSet::new(),
            catchup: CatchUp::default(),
            follow: Default::default(),
            bans: Bans::default(),
            strikes: Strikes::default(),
            storing: HashSet::new(),
            mirror_lists: HashMap::new(),
            tokens: Tokens::default(),
            out: VecDeque::new(),
        }
    }

    /// The next action for the driver, if any.
    pub fn poll_action(&mut self) -> Option<Action<P, M>> {
        let action = self.out.pop_front()?;
        // What goes to the store is not fetched again while it is there.
        match &action {
            Action::Store { manifest, .. } => {
                self.storing.insert(manifest.id());
            }
            Action::StoreBatch { bundles } => self.storing.extend(bundles.iter().map(|b| b.id())),
            _ => {}
        }
        Some(action)
    }

    /// The trust policy, to read.
    pub fn policy(&self) -> &TrustPolicy {
        &self.policy
    }

    pub(super) fn ctx(
        &mut self,
        now: Time,
    ) -> (&mut Fetches<P, M>, &mut CatchUp<P>, Ctx<'_, P, M>) {
        (
            &mut self.fetches,
            &mut self.catchup,
            Ctx {
                now,
                connected: &self.connected,
                bans: &mut self.bans,
                download: &mut self.download,
                tokens: &mut self.tokens,
                out: &mut self.out,
            },
        )
    }

    // ---- what the store holds ----

    /// The store's held and known ranges of `publisher` (after a start,
    /// an eviction or a revocation).
    pub fn set_ranges(
        &mut self,
        publisher: PublicKey,
        held: Vec<(u64, u64)>,
        known: Vec<(u64, u64)>,
    ) {
        self.ranges.insert(
            publisher,
            Ranges {
                held,
                known,
                digest: None,
            },
        );
    }

    /// The ranges of `publisher` held now.
    pub fn held(&self, publisher: &PublicKey) -> &[(u64, u64)] {
        self.ranges.get(publisher).map_or(&[], |r| &r.held)
    }

    /// Whether the sequence number is held or was evicted.
    pub fn knows(&self, publisher: &PublicKey, sequence: u64) -> bool {
        self.ranges
            .get(publisher)
            .is_some_and(|r| seqs::covers(&r.known, sequence))
    }

    pub(super) fn ranges_mut(&mut self, publisher: &PublicKey) -> &mut Ranges {
        self.ranges.entry(*publisher).or_default()
    }

    /// The newest trusted head's sequence number (0: none).
    pub fn head_sequence(&self, publisher: &PublicKey) -> u64 {
        self.policy
            .publisher(publisher)
            .and_then(|p| p.head())
            .map_or(0, |h| h.sequence)
    }

    /// The sequence ranges of `publisher` below its newest head never held.
    pub fn missing(&self, publisher: &PublicKey) -> Vec<(u64, u64)> {
        let known = self.ranges.get(publisher).map_or(&[][..], |r| &r.known);
        gaps(known, self.head_sequence(publisher))
    }

    /// Per trusted publisher, sorted by name.
    pub fn figures(&self) -> Vec<PublisherFigures> {
        let mut out: Vec<PublisherFigures> = self
            .policy
            .publishers()
            .map(|(key, trust)| {
                let ranges = self.ranges.get(key);
                let head = trust.head().map(|h| h.value().clone());
                let upto = head.as_ref().map_or(0, |h| h.sequence);
                PublisherFigures {
                    publisher: *key,
                    name: trust.name.clone(),
                    held: ranges.map_or(0, |r| seqs::count(&r.held)),
                    missing: gaps(ranges.map_or(&[], |r| &r.known), upto),
                    head,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    // ---- trust ----

    /// Trusts a publisher.
    pub fn trust(&mut self, root: PublicKey, name: String, now: Now) -> Result<(), KeyError> {
        let new = !self.policy.is_trusted(&root);
        self.policy.trust(root, name)?;
        // A quiet reader went past the new publisher's stories in every
        // log it follows: it reads them again from the start.
        if new && self.config.role == super::Role::Quiet {
            self.reread_logs(now);
        }
        Ok(())
    }

    /// Stops trusting (and carrying) a publisher; nothing more is asked of
    /// it. Returns whether it was trusted.
    pub fn untrust(&mut self, root: &PublicKey) -> bool {
        let was = self.policy.untrust(root);
        self.catchup.forget_publisher(root);
        self.ranges.remove(root);
        self.mirror_lists.remove(root);
        was
    }

    /// Verifies and remembers a certificate, recording it when new.
    pub fn learn_certificate(
        &mut self,
        bytes: &[u8],
    ) -> Result<Verified<KeyCertificate>, PolicyError> {
        let cert = self.policy.verify_certificate(bytes)?;
        self.add_certificate(cert.clone());
        Ok(cert)
    }

    /// Remembers a verified certificate; returns whether it was new.
    pub(super) fn add_certificate(&mut self, cert: Verified<KeyCertificate>) -> bool {
        let known = self
            .policy
            .publisher(&cert.publisher)
            .is_some_and(|p| p.certificates().any(|c| c.id() == cert.id()));
        if known {
            return false;
        }
        self.policy.add_certificate(cert.clone());
        self.out
            .push_back(Action::Record(Record::Certificate(cert)));
        true
    }

    /// Verifies and remembers a revocation, recording what it changed.
    pub fn learn_revocation(&mut self, bytes: &[u8]) -> Result<RevocationChange, PolicyError> {
        let rev = self.policy.verify_revocation(bytes)?;
        Ok(self.add_revocation(rev))
    }

    pub(super) fn add_revocation(
        &mut self,
        rev: Verified<crate::proto::Revocation>,
    ) -> RevocationChange {
        let change = self.policy.add_revocation(rev);
        if change.changed || change.head_dropped {
            self.out
                .push_back(Action::Record(Record::Revocation(change.clone())));
        }
        change
    }

    /// Makes a verified head the trusted one when it is newer, recording it
    /// and telling. Returns whether it was.
    pub fn accept_head(&mut self, head: Verified<Head>) -> bool {
        let (publisher, sequence) = (head.publisher, head.sequence);
        if !self.policy.accept_head(head.clone()) {
            return false;
        }
        self.out.push_back(Action::Record(Record::Head(head)));
        self.out.push_back(Action::Head {
            publisher,
            sequence,
        });
        true
    }

    // ---- peers and time ----

    /// A peer's first connection came up. Returns false when it is banned
    /// (the driver closes it); otherwise it is asked for a summary.
    pub fn peer_up(&mut self, peer: P, now: Now) -> bool {
        if self.bans.is_banned(&peer, now.at) {
            return false;
        }
        self.connected.insert(peer);
        // A quiet reader names no publisher: it follows the mirror's whole
        // log instead of comparing what each side holds.
        if self.config.role == super::Role::Quiet {
            self.follow_up(peer, now);
        } else {
            self.sync_with(peer, now);
        }
        true
    }

    /// A peer's last connection closed.
    pub fn peer_down(&mut self, peer: &P, now: Now) {
        self.connected.remove(peer);
        self.catchup.peer_gone(peer);
        self.shares.forget(peer);
        self.follow_down(peer, now);
        let (fetches, _, mut ctx) = self.ctx(now.at);
        fetches.peer_gone(peer, &mut ctx);
    }

    /// Whether `peer` is banned now.
    pub fn is_banned(&self, peer: &P, now: Time) -> bool {
        self.bans.is_banned(peer, now)
    }

    /// Peers banned.
    pub fn banned(&self) -> usize {
        self.bans.len()
    }

    /// Bundles being fetched.
    pub fn fetching(&self) -> usize {
        self.fetches.len()
    }

    /// Time passed: summaries due, catch-up requests, fetch deadlines and
    /// retries, bans that ran out.
    pub fn tick(&mut self, now: Now) {
        if self.config.role == super::Role::Quiet {
            self.follow_tick(now);
        } else {
            self.sync_tick(now);
        }
        self.bans.expire(now.at);
        let (fetches, _, mut ctx) = self.ctx(now.at);
        fetches.tick(&mut ctx);
    }

    /// Drops every fetch (the node stops); returns how many there were.
    pub fn shutdown(&mut self) -> usize {
        self.fetches.clear()
    }

    // ---- fetching ----

    /// Starts fetching a verified manifest's blobs, from `first` (charged
    /// for the slot) and then from connected peers; a verified
    /// announcement `origin` is accepted within
    /// [`VERDICT_HOLD`](super::fetch::VERDICT_HOLD). Returns false when
    /// there is no room (the node is at its limit, or `first` at its
    /// share): the origin is then accepted at once, since it verified, and
    /// catch-up brings the bundle later.
    pub(super) fn start_fetch(
        &mut self,
        manifest: Verified<crate::proto::Manifest>,
        origin: Option<Origin<P, M>>,
        first: Option<P>,
        now: Time,
    ) -> bool {
        let reason = if origin.is_some() {
            Reason::Gossip
        } else {
            Reason::CatchUp
        };
        let (fetches, _, mut ctx) = self.ctx(now);
        if !fetches.has_room(first.as_ref(), reason) {
            if let Some(origin) = origin {
                ctx.out.push_back(Action::Verdict {
                    origin,
                    verdict: Verdict::Accept,
                });
            }
            return false;
        }
        fetches.start(manifest, origin, first, reason, &mut ctx)
    }

    /// The fetcher, to read its figures.
    pub fn fetcher(&self) -> &Fetches<P, M> {
        &self.fetches
    }

    /// A fetch request was answered or failed. Returns false when `token`
    /// is not a fetch request.
    pub fn fetch_response(
        &mut self,
        token: Token,
        response: Result<FetchResponse, String>,
        now: Now,
    ) -> bool {
        let (fetches, _, mut ctx) = self.ctx(now.at);
        if !fetches.owns(&token) {
            return false;
        }
        fetches.response(token, response, &mut ctx);
        self.pump_sync(now);
        true
    }

    /// Whether `id` is being fetched or stored.
    pub fn busy_with_bundle(&self, id: &BundleId) -> bool {
        self.fetches.contains(id) || self.storing.contains(id)
    }

    /// The store finished with a fetched bundle (see [`Action::Store`]).
    pub fn stored(
        &mut self,
        publisher: PublicKey,
        sequence: u64,
        id: BundleId,
        result: Stored,
        now: Now,
    ) {
        self.storing.remove(&id);
        // Refused by what the store knows (a revocation, another bundle
        // under the number): not forwarded, the sender may not know it.
        let verdict = match result {
            Stored::New | Stored::Duplicate => {
                self.ranges_mut(&publisher).insert(sequence);
                Verdict::Accept
            }
            Stored::Refused | Stored::Failed(_) => Verdict::Ignore,
        };
        let (fetches, _, mut ctx) = self.ctx(now.at);
        fetches.stored(&id, verdict, &mut ctx);
        self.pump_sync(now);
    }

    /// The store took bundles that came whole from catch-up: `stored` lists
    /// those it holds now.
    pub fn stored_batch(&mut self, stored: &[(PublicKey, u64, BundleId)], now: Now) {
        for (publisher, sequence, id) in stored {
            self.storing.remove(id);
            self.ranges_mut(publisher).insert(*sequence);
        }
        self.pump_sync(now);
    }

    // ---- serving ----

    /// Whether the upload cap lets anything go now.
    pub fn upload_open(&mut self, now: Time) -> bool {
        self.upload.open(now)
    }

    /// Counts bytes sent to peers.
    pub fn uploaded(&mut self, bytes: u64, now: Time) {
        self.upload.take(bytes, now);
    }

    /// Judges a policy error on something `peer` sent outside gossip:
    /// false data bans it; what we cannot judge yet is only noted.
    pub(super) fn refuse_from(&mut self, peer: P, what: &str, e: &PolicyError, now: Time) -> bool {
        let refusal = Refusal::policy(what, e);
        if judge(e) == Verdict::Reject {
            let (_, _, mut ctx) = self.ctx(now);
            ctx.ban(peer, refusal);
            true
        } else {
            tracing::debug!(peer = ?peer, "{refusal}: not taken");
            false
        }
    }

    /// `peer` sent a message over the protocol's limits, refused while it
    /// was read or decoded (so it never reached the core): banned like
    /// any message over its limits.
    pub fn over_limits(&mut self, peer: P, what: &str, now: Time) {
        self.ban(peer, Kind::OverLimits, what, now);
    }

    /// Bans `peer` for breaking the protocol.
    pub(super) fn ban(&mut self, peer: P, kind: Kind, text: &str, now: Time) {
        let (_, _, mut ctx) = self.ctx(now);
        ctx.ban(peer, Refusal::new(kind, text));
    }
}

#[cfg(test)]
mod tests {
    use super::insert;

    #[test]
    fn insert_merges_neighbours() {
        let mut r = vec![(1, 2), (5, 6)];
        insert(&mut r, 3);
        assert_eq!(r, vec![(1, 3), (5, 6)]);
        insert(&mut r, 4);
        assert_eq!(r, vec![(1, 6)]);
        insert(&mut r, 9);
        insert(&mut r, 8);
        insert(&mut r, 8);
        assert_eq!(r, vec![(1, 6), (8, 9)]);
        insert(&mut r, u64::MAX);
        assert_eq!(r, vec![(1, 6), (8, 9), (u64::MAX, u64::MAX)]);
    }
}
