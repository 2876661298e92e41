//! The libp2p network: the driver of the decisions in [`crate::sync`].
//!
//! One actor task owns the swarm and the core's [`State`](crate::sync::State)
//! (and with it the trust policy); [`Network`] is its cheap, cloneable handle,
//! talking to it over a bounded channel with a oneshot reply per command.
//! Store work runs on a store thread of its own (`worker`), its results
//! fed back to the actor as events, so a heavy store call never stalls the
//! swarm.
//!
//! Gossip carries announcements (manifests, heads, certificates,
//! revocations), one topic per trusted publisher. Every message waits for
//! our own verification (`validate_messages`): a bundle announcement is
//! accepted, and so forwarded, only once its blobs were fetched, checked and
//! stored whole. Blobs travel over `/kolokol/fetch/1` request-response, in
//! bounded chunks; catch-up over `/kolokol/sync/1`.
//!
//! Files: `handle` (the handle and its commands), `actor` (the loop and the
//! core's actions), `events` (the swarm's events and peers' requests),
//! `worker` (the store thread), `swarm` (building it), `gate` (the
//! per-address cap on incoming connections), `topics` (which of a peer's
//! subscriptions are recorded), `status`,
//! `discovery`, `report`, `metrics`, `wire` (the codecs), `book` (the
//! address book: which mirrors to dial, and when) and `redial` (its side
//! in the actor).

mod actor;
mod blobserve;
pub mod book;
mod commands;
mod discovery;
mod events;
mod followed;
mod gate;
mod handle;
mod log;
pub(crate) mod logserve;
mod metrics;
pub mod proxy;
mod redial;
mod report;
mod status;
mod swarm;
mod topics;
pub mod transport;
pub mod wire;
mod worker;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::sync::bans::{BAN_TIME, MAX_BANNED};
pub use crate::sync::fetch::MAX_CANDIDATES;
pub use crate::sync::outbox::{OUTBOX, OUTBOX_TTL};
pub use handle::{COMMAND_QUEUE, EVENT_QUEUE, Network};
pub use report::Holding;
pub use topics::MAX_PEER_TOPICS;
pub use worker::{DONE_QUEUE, JOB_QUEUE};

use crate::proto::{BundleId, PublicKey};
use crate::store::StoreError;
use libp2p::{Multiaddr, PeerId};

/// The actor's periodic tick: retries, timeouts, and keeping gossipsub's
/// heartbeat going on a quiet network.
pub const TICK: Duration = Duration::from_millis(250);

/// Why a network operation failed.
#[derive(Debug, Error)]
pub enum NetError {
    /// The actor has stopped.
    #[error("the node has stopped")]
    ActorDropped,
    /// The transport could not be set up.
    #[error("network setup failed: {0}")]
    Setup(String),
    /// A setting asks a quiet reader to be reachable (a relay to listen
    /// through, an address to announce): only a mirror or a sharing
    /// reader may be.
    #[error(
        "{0} makes the node reachable, which a quiet reader never is: remove it, or run with --share"
    )]
    QuietReachable(&'static str),
    /// Asked of a quiet reader something that would name a publisher to
    /// peers (a report of who holds a story).
    #[error("a quiet reader does not {0}: run the node with --share or --mirror")]
    QuietRefuses(&'static str),
    /// The proxy setting is wrong, or the proxy failed.
    #[error("proxy {0}")]
    Proxy(String),
    /// Listening on an address failed.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A port to listen on is taken, by another node or program.
    #[error(
        "cannot listen on {addr}: {transport} port {port} is already in use (by another kolokol node, or another program); stop it, or choose another port with --listen"
    )]
    PortInUse {
        /// The address.
        addr: String,
        /// `TCP` or `UDP`.
        transport: &'static str,
        /// The port.
        port: u16,
    },
    /// An address to dial does not end in `/p2p/PEER_ID`.
    #[error(
        "{0} names no peer: add /p2p/PEER_ID at its end (a Kolokol node answers only dialers who name it)"
    )]
    NoPeerId(String),
    /// An address is not a multiaddress.
    #[error("{0:?} is not a valid multiaddress")]
    BadAddress(String),
    /// Dialing failed.
    #[error("cannot dial {addr}: {reason}")]
    Dial {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Too much is running already.
    #[error("busy: {0}")]
    Busy(String),
    /// A bundle offered for publishing did not verify.
    #[error("the bundle does not verify: {0}")]
    Rejected(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file of the node's could not be read or written.
    #[error(transparent)]
    File(#[from] crate::files::FilesError),
}

/// Where a quiet reader listens unless told: loopback only, any free
/// port. Nothing off the machine can reach it (it dials out for all it
/// gets); local tools still can.
pub const QUIET_LISTEN: &[&str] = &["/ip4/127.0.0.1/tcp/0"];

/// Where a mirror or a sharing reader listens unless told: every
/// interface, TCP and QUIC on 4001, WebSocket on 4443.
pub const SERVING_LISTEN: &[&str] = &[
    "/ip4/0.0.0.0/tcp/4001",
    "/ip4/0.0.0.0/udp/4001/quic-v1",
    "/ip4/0.0.0.0/tcp/4443/ws",
];

/// Network settings, with defaults for a reader's node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetConfig {
    /// Addresses to listen on (none: reachable only through relays);
    /// unset for the role's own (see [`NetConfig::listen_addresses`]):
    /// loopback only for a quiet reader, every interface for a mirror or
    /// a sharing reader.
    pub listen: Option<Vec<String>>,
    /// Peers to connect to at start.
    pub bootstrap: Vec<String>,
    /// Find peers on the local network (mDNS, `--lan`), and so tell
    /// everyone on it that this node runs. Off by default; never on a
    /// mirror.
    pub mdns: bool,
    /// Most established connections, both ways (exempt peers aside).
    pub max_connections: u32,
    /// Most connections to one peer.
    pub max_connections_per_peer: u32,
    /// Most incoming connections being set up at once.
    pub max_pending_incoming: u32,
    /// Most outgoing connections being set up at once.
    pub max_pending_outgoing: u32,
    /// Most established incoming connections. Never more than
    /// `max_connections - max_outgoing`: the node's own dials (bootstrap
    /// peers, mirrors it looked up) keep their room however many peers
    /// dial in.
    pub max_incoming: u32,
    /// Most established outgoing connections, kept for the node's own
    /// dials.
    pub max_outgoing: u32,
    /// Most incoming connections from one address (an IPv4 address, an
    /// IPv6 /64), pending or established; 0 for no cap.
    pub max_incoming_per_address: u32,
    /// Most incoming connections from one subnet (an IPv4 /24, an IPv6
    /// /48), pending or established; 0 for no cap.
    pub max_incoming_per_subnet: u32,
    /// Peer ids let in past every connection cap, as bootstrap peers and
    /// configured relays are (a newsroom's own mirrors, say).
    pub reserved_peers: Vec<String>,
    /// Refuse new connections above this share of system memory in use.
    pub max_memory_fraction: f64,
    /// Gossipsub heartbeat, in milliseconds.
    pub heartbeat_ms: u64,
    /// Timeout of one fetch request, in seconds.
    pub request_timeout_secs: u64,
    /// Bundles fetched at once.
    pub max_fetches: usize,
    /// Fetch requests outstanding to one peer.
    pub max_requests_per_peer: usize,
    /// Give up a bundle after this many seconds.
    pub fetch_deadline_secs: u64,
    /// Switch off peer scoring's same-IP penalty, so that many nodes can
    /// share one address (tests on 127.0.0.1; never on the internet).
    pub same_ip_ok: bool,
    /// Run as a mirror: carry every trusted publisher, answer the DHT
    /// (Kademlia server mode), put provider records, relay for peers
    /// behind NAT, no mDNS.
    pub mirror: bool,
    /// A reader's node that serves and gossips what it holds, as mirrors
    /// do (`--share`): it listens on every interface, and any peer that
    /// reaches it learns what it holds (by asking for a blob or a story)
    /// and which publishers it carries (its topics and summaries). Off, a
    /// reader's node is quiet (see [`crate::sync::Role`]). With `mirror`
    /// set too, the node is a mirror: the mirror does all a sharing
    /// reader does and more.
    pub share: bool,
    /// Catch up with every connected peer this often, in seconds (and
    /// always when a connection comes up).
    pub sync_interval_secs: u64,
    /// Look up mirrors of publishers no connected peer carries, or with
    /// stories missing, this often, in seconds.
    pub discovery_interval_secs: u64,
    /// A mirror renews its provider records this often, in seconds.
    pub provide_interval_secs: u64,
    /// Relays to be reachable through (multiaddresses ending in
    /// `/p2p/PEER_ID`), for a node with no open port.
    pub relays: Vec<String>,
    /// Addresses at which peers can reach this node, told to them (a
    /// mirror behind port forwarding, say). A mirror with none announces
    /// what it listens on.
    pub external_addresses: Vec<String>,
    /// Caps of the relay server a mirror runs.
    pub relay: RelayLimits,
    /// How often autonat asks a peer to dial this node back, in seconds,
    /// while its reachability is unsettled.
    pub autonat_probe_secs: u64,
    /// Judge reachability only over global IP addresses, as client and as
    /// server (off only for tests on loopback).
    pub autonat_global_only: bool,
    /// Most blob bytes sent to peers per second (fetch and catch-up);
    /// `None` for no cap. Over it, requests are answered "not here" and
    /// peers ask elsewhere or later.
    pub max_upload_bytes_per_sec: Option<u64>,
    /// Most blob bytes sent to one peer per second (fetch and catch-up);
    /// `None` for no per-peer rate. Over it, the peer's requests are
    /// answered "not here" and it asks elsewhere or later; a peer also has
    /// at most a few store reads waiting at once (see
    /// [`crate::sync::share`]).
    pub max_upload_bytes_per_peer_per_sec: Option<u64>,
    /// A quiet reader fetches at most this many bytes a day of stories too
    /// large to come whole in a mirror's log (over 32 KiB of text and
    /// media): each such fetch tells the mirror which story the reader
    /// wants. 0: never; those stories are then listed as missing.
    pub large_story_budget_bytes_per_day: u64,
    /// Most blob bytes fetched from peers per second; `None` for no cap.
    /// Over it, no new request goes out until the rate allows.
    pub max_download_bytes_per_sec: Option<u64>,
    /// Dial every peer through this proxy (`socks5h://HOST:PORT`, with
    /// names resolved by the proxy; `socks5://`; `http://` for CONNECT):
    /// Tor's SOCKS port, a Psiphon or VPN app's local proxy. QUIC is then
    /// off, and mDNS too: nothing leaves but through the proxy.
    pub proxy: Option<String>,
    /// Certificates (PEM files) trusted, beside the public authorities,
    /// for mirrors reached by WebSocket inside TLS (`/tls/sni/NAME/ws`):
    /// a mirror with a certificate of its newsroom's own, say.
    pub tls_roots: Vec<std::path::PathBuf>,
}

/// What a mirror's relay server allows. Defaults are raised from libp2p's
/// (2 minutes and 128 KiB per circuit) so that a circuit carries bundles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayLimits {
    /// Peers holding a reservation at once.
    pub max_reservations: usize,
    /// Circuits open at once.
    pub max_circuits: usize,
    /// Circuits open at once for one peer.
    pub max_circuits_per_peer: usize,
    /// Bytes one circuit may carry (both directions together) before it
    /// is closed.
    pub max_circuit_bytes: u64,
    /// How long one circuit may stay open, in seconds.
    pub max_circuit_duration_secs: u64,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            max_reservations: 128,
            max_circuits: 64,
            max_circuits_per_peer: 4,
            max_circuit_bytes: 64 * 1024 * 1024,
            max_circuit_duration_secs: 30 * 60,
        }
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            listen: None,
            bootstrap: Vec::new(),
            mdns: false,
            max_connections: 128,
            max_connections_per_peer: 2,
            max_pending_incoming: 32,
            max_pending_outgoing: 32,
            max_incoming: 96,
            max_outgoing: 32,
            max_incoming_per_address: 4,
            max_incoming_per_subnet: 16,
            reserved_peers: Vec::new(),
            max_memory_fraction: 0.9,
            heartbeat_ms: 700,
            request_timeout_secs: 15,
            max_fetches: 64,
            max_requests_per_peer: 8,
            fetch_deadline_secs: 120,
            same_ip_ok: false,
            mirror: false,
            share: false,
            sync_interval_secs: 300,
            discovery_interval_secs: 60,
            provide_interval_secs: 3600,
            relays: Vec::new(),
            external_addresses: Vec::new(),
            relay: RelayLimits::default(),
            autonat_probe_secs: 90,
            autonat_global_only: true,
            max_upload_bytes_per_sec: None,
            max_upload_bytes_per_peer_per_sec: Some(4 * 1024 * 1024),
            max_download_bytes_per_sec: None,
            large_story_budget_bytes_per_day: 256 * 1024 * 1024,
            proxy: None,
            tls_roots: Vec::new(),
        }
    }
}

impl NetConfig {
    /// What the node does for others.
    pub fn role(&self) -> crate::sync::Role {
        use crate::sync::Role;
        if self.mirror {
            Role::Mirror
        } else if self.share {
            Role::Share
        } else {
            Role::Quiet
        }
    }

    /// The addresses to listen on: the configured ones, or else the
    /// role's ([`QUIET_LISTEN`] for a quiet reader, [`SERVING_LISTEN`]
    /// for the others).
    pub fn listen_addresses(&self) -> Vec<String> {
        if let Some(listen) = &self.listen {
            return listen.clone();
        }
        let defaults = if self.role().serves() {
            SERVING_LISTEN
        } else {
            QUIET_LISTEN
        };
        defaults.iter().map(|a| (*a).to_owned()).collect()
    }

    /// Settings for tests: loopback only, a random port, no mDNS, short
    /// timers, and the same-IP penalty and per-address caps off (every
    /// node of a test shares 127.0.0.1).
    pub fn for_tests() -> Self {
        Self {
            listen: Some(vec!["/ip4/127.0.0.1/tcp/0".into()]),
            mdns: false,
            heartbeat_ms: 200,
            request_timeout_secs: 5,
            fetch_deadline_secs: 30,
            same_ip_ok: true,
            // Nodes of tests serve one another unless a test makes one
            // quiet.
            share: true,
            max_incoming_per_address: 0,
            max_incoming_per_subnet: 0,
            // Benchmarks compare runs on one machine: no per-peer rate
            // unless a test sets one.
            max_upload_bytes_per_peer_per_sec: None,
            sync_interval_secs: 5,
            discovery_interval_secs: 1,
            provide_interval_secs: 2,
            ..Self::default()
        }
    }
}

/// Something that happened, for tests, status and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// Listening on an address.
    Listening(Multiaddr),
    /// A connection to a peer is up.
    Connected(PeerId),
    /// A bundle was stored whole (fetched from a peer, or published here).
    Stored(BundleId),
    /// A message from a peer was refused.
    Rejected {
        /// Who sent it.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// A head became the newest known of its publisher.
    Head {
        /// The publisher.
        publisher: PublicKey,
        /// Its sequence number.
        sequence: u64,
    },
}

/// One publisher in the node's status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublisherStatus {
    /// Name in the trust list.
    pub name: String,
    /// Root key.
    pub root_key: String,
    /// Bundles held.
    pub held: u64,
    /// Sequence ranges missing below the newest head.
    pub missing: Vec<(u64, u64)>,
    /// Newest head's sequence number.
    pub head_sequence: Option<u64>,
    /// When it was issued.
    pub head_issued_at: Option<u64>,
    /// Whether it has expired.
    pub head_expired: bool,
}

/// What a node reports about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    /// Its peer id.
    pub peer_id: String,
    /// Addresses it listens on.
    pub listen: Vec<String>,
    /// Connected peers.
    pub peers: Vec<String>,
    /// Gossip topics it is subscribed to.
    pub topics: Vec<String>,
    /// Bundles being fetched.
    pub fetching: usize,
    /// Messages refused since start.
    pub rejected: u64,
    /// Peers refused for serving false data.
    pub banned: usize,
    /// Blob chunks served to peers since start.
    pub served_chunks: u64,
    /// Gossip messages received, duplicates included.
    pub gossip_received: u64,
    /// Gossip messages received that were new (duplicates filtered out).
    pub gossip_unique: u64,
    /// Per trusted publisher.
    pub publishers: Vec<PublisherStatus>,
    /// Whether it runs as a mirror.
    pub mirror: bool,
    /// What it does for others: quiet, sharing or a mirror.
    pub role: crate::sync::Role,
    /// Reachability as autonat last found it, if it has.
    pub reachability: Option<String>,
    /// Catch-up traffic since start.
    pub sync: SyncTraffic,
    /// Log traffic since start (a quiet reader's requests and the pages
    /// it got; a mirror's pages sent).
    #[serde(default)]
    pub log: SyncTraffic,
    /// Mirrors whose log it follows (a quiet reader).
    #[serde(default)]
    pub followed: usize,
}

/// Catch-up messages and bytes since start, both ways.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyncTraffic {
    /// Messages sent (requests and responses).
    pub messages_sent: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Bytes received.
    pub bytes_received: u64,
}

impl SyncTraffic {
    fn of(c: &wire::SyncCounters) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        Self {
            messages_sent: c.messages_sent.load(Relaxed),
            bytes_sent: c.bytes_sent.load(Relaxed),
            messages_received: c.messages_received.load(Relaxed),
            bytes_received: c.bytes_received.load(Relaxed),
        }
    }
}

/// Reads or creates the node's persistent libp2p identity (mode 0600).
pub fn load_identity(path: &std::path::Path) -> Result<libp2p::identity::Keypair, NetError> {
    let bytes = crate::files::read_or_create_private(path, MAX_IDENTITY_FILE, || {
        libp2p::identity::Keypair::generate_ed25519()
            .to_protobuf_encoding()
            .map_err(|e| NetError::Setup(e.to_string()))
    })?;
    libp2p::identity::Keypair::from_protobuf_encoding(&bytes)
        .map_err(|e| NetError::Setup(format!("{}: not a node identity: {e}", path.display())))
}

/// Largest identity file read: an ed25519 key in libp2p's encoding is
/// under a hundred bytes.
const MAX_IDENTITY_FILE: u64 = 4096;
