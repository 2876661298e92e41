//! What the network decides, as state machines without I/O.
//!
//! In the style of iroh-gossip's `proto`: the driver (`net`) feeds a
//! [`State`] what happened (a peer came or went, a message or a response
//! arrived, the store finished a job, time passed) together with the time
//! now, and carries out the [`Action`]s it returns (send this request,
//! give that message this verdict, ban that peer, store this bundle). No
//! tokio, libp2p, sled, file or clock in here: tests drive the core with
//! seeded randomness on virtual time, hundreds of nodes in seconds
//! ([`sim`]).
//!
//! The state owns the [`TrustPolicy`](crate::proto::TrustPolicy): every
//! trust decision is taken here, and what it changed comes out as a
//! [`Record`] for the store to write as it is.

pub mod bandwidth;
pub mod bans;
mod catchup;
pub mod fetch;
mod follow;
mod gossip;
pub mod messages;
mod mirrors;
pub mod outbox;
mod serve;
pub mod share;
pub mod sim;
mod state;
mod time;
pub mod verdict;
pub mod window;

use std::collections::{BTreeSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;

pub use follow::{Cursor, MAX_CURSORS, MAX_FOLLOWED, MAX_WAITING, trust_digest};
pub use serve::{BundlesPlan, Packer};
pub use state::{Config, PublisherFigures, State, Stored};
pub use time::Time;
pub use verdict::{Kind, Refusal, Verdict};

use crate::proto::mirrors::MirrorList;
use crate::proto::{
    Head, KeyCertificate, Manifest, PublicKey, RevocationChange, Timestamp, Verified,
    VerifiedBundle,
};
use bandwidth::Bucket;
use bans::Bans;
use messages::{FetchRequest, LogRequest, SyncRequest};

/// What a node does for others, and so what it lets them learn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A reader's node, the default: it asks and never serves, forwards
    /// or names a publisher or a story in what it sends.
    #[default]
    Quiet,
    /// A reader's node that serves and gossips what it holds (`--share`),
    /// as mirrors do, for friends on a LAN when the border is cut.
    Share,
    /// A mirror: serves, gossips, relays and answers the DHT.
    Mirror,
}

impl Role {
    /// Whether the node answers peers' requests and forwards gossip.
    pub fn serves(self) -> bool {
        self != Role::Quiet
    }
}

/// What identifies a peer: libp2p's `PeerId` in the node, a number in tests.
pub trait Peer: Copy + Eq + Ord + Hash + Debug {}
impl<T: Copy + Eq + Ord + Hash + Debug> Peer for T {}

/// The time now, both ways: `at` on the driver's monotonic clock for
/// timers and windows, `wall` for the signed objects' validity windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time.
    pub at: Time,
    /// Wall-clock time.
    pub wall: Timestamp,
}

/// Names an outstanding request, so its answer finds its way back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub u64);

/// Hands out tokens.
#[derive(Debug, Default)]
pub struct Tokens(u64);

impl Tokens {
    /// A token not handed out before.
    pub fn fresh(&mut self) -> Token {
        self.0 += 1;
        Token(self.0)
    }
}

/// A gossip message waiting for its verdict, and who sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin<P, M> {
    /// The message's id.
    pub message: M,
    /// The peer it came from.
    pub source: P,
}

/// What the policy learned, for the store to record as it is.
#[derive(Clone, Debug)]
pub enum Record {
    /// A certificate to keep.
    Certificate(Verified<KeyCertificate>),
    /// A revocation and what it changed.
    Revocation(RevocationChange),
    /// The new trusted head.
    Head(Verified<Head>),
    /// A publisher's mirror list, newer than any known before.
    MirrorList(Verified<MirrorList>),
}

/// What the driver is to do.
#[derive(Debug)]
pub enum Action<P, M> {
    /// Send a fetch request; its answer comes back with `token`.
    Fetch {
        /// To whom.
        peer: P,
        /// Names the request.
        token: Token,
        /// What to ask.
        request: FetchRequest,
    },
    /// Send a catch-up request; its answer comes back with `token`.
    Sync {
        /// To whom.
        peer: P,
        /// Names the request.
        token: Token,
        /// What to ask.
        request: SyncRequest,
    },
    /// Send a log request; its answer comes back with `token`.
    Log {
        /// To whom.
        peer: P,
        /// Names the request.
        token: Token,
        /// What to ask.
        request: LogRequest,
    },
    /// Remember where the reader is in a mirror's log (across restarts).
    Cursor {
        /// The mirror.
        peer: P,
        /// Its log and the position to ask from next.
        cursor: Cursor,
    },
    /// Give a gossip message its verdict.
    Verdict {
        /// The message.
        origin: Origin<P, M>,
        /// What to do with it.
        verdict: Verdict,
    },
    /// Something a peer sent was refused: count it and tell.
    Refused {
        /// Who sent it.
        peer: P,
        /// Why.
        refusal: Refusal,
    },
    /// Something a peer sent was not taken, without counting against it:
    /// tell only.
    Noted {
        /// Who sent it.
        peer: P,
        /// Why.
        refusal: Refusal,
    },
    /// A request to the peer stalled: close its connections and dial it
    /// again, so that what follows goes over a fresh flow (a frozen one
    /// stays open and silent). Not a ban: the peer may be blameless.
    Reconnect {
        /// The peer.
        peer: P,
    },
    /// A peer served false data: it is banned; disconnect it.
    Ban {
        /// The peer.
        peer: P,
        /// Why.
        refusal: Refusal,
    },
    /// Blob bytes arrived from peers (for metrics).
    Received(u64),
    /// Check a fetched bundle's blobs and store it, then report with
    /// [`State::stored`].
    Store {
        /// The manifest.
        manifest: Box<Verified<Manifest>>,
        /// Its blobs, in order.
        blobs: Vec<Vec<u8>>,
    },
    /// Store bundles that came whole from catch-up, then report with
    /// [`State::stored_batch`].
    StoreBatch {
        /// The bundles.
        bundles: Vec<VerifiedBundle>,
    },
    /// Record what the policy learned.
    Record(Record),
    /// A head became the newest known of its publisher.
    Head {
        /// The publisher.
        publisher: PublicKey,
        /// Its sequence number.
        sequence: u64,
    },
}

/// The parts of the state a sub-machine works with, borrowed for one step.
pub struct Ctx<'a, P, M> {
    /// The time now.
    pub now: Time,
    /// Connected peers.
    pub connected: &'a BTreeSet<P>,
    /// The ban list.
    pub bans: &'a mut Bans<P>,
    /// The download cap.
    pub download: &'a mut Bucket,
    /// Request tokens.
    pub tokens: &'a mut Tokens,
    /// Actions for the driver.
    pub out: &'a mut VecDeque<Action<P, M>>,
}

impl<P: Peer, M> Ctx<'_, P, M> {
    /// Bans `peer` now.
    pub fn ban(&mut self, peer: P, refusal: Refusal) {
        // The refusal's text may name the publisher or the bundle: at debug.
        tracing::warn!(peer = ?peer, kind = ?refusal.kind, "refusing a peer that served false data");
        tracing::debug!(peer = ?peer, "refused: {refusal}");
        self.bans.ban(peer, self.now);
        self.out.push_back(Action::Ban { peer, refusal });
    }

    /// Counts blob bytes that arrived.
    pub fn received(&mut self, bytes: u64) {
        self.download.take(bytes, self.now);
        self.out.push_back(Action::Received(bytes));
    }
}
