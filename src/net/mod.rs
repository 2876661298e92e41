//! The libp2p network. One actor task owns the swarm, the trust policy and
//! the node's side of the store; [`Node`] is its cheap, cloneable handle,
//! talking to it over a bounded channel with a oneshot reply per command.
//!
//! Gossip carries announcements (manifests, heads, certificates,
//! revocations), one topic per trusted publisher. Every message waits for
//! our own verification (`validate_messages`): a bundle announcement is
//! accepted, and so forwarded, only once its blobs were fetched, checked and
//! stored whole. Blobs travel over `/kolokol/fetch/1` request-response, in
//! bounded chunks.

mod bandwidth;
mod catchup;
mod discovery;
mod metrics;
mod report;
pub mod wire;

pub use report::Holding;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, autonat, connection_limits, dcutr, identify, kad,
    mdns, memory_connection_limits, noise, ping, relay, tcp, yamux,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::proto::bundle::{BundleFile, verify_bundle_file};
use crate::proto::{
    BundleId, Manifest, PolicyError, PublicKey, Timestamp, TrustPolicy, Verified, check_blob,
};
use crate::store::archive::{self, ImportReport};
use crate::store::{Ingested, Store, StoreError};
use crate::trust::PublisherFile;
use wire::{Announcement, CHUNK, FetchCodec, FetchRequest, FetchResponse, SyncCodec};

/// Commands waiting for the actor; senders wait when it is full.
pub const COMMAND_QUEUE: usize = 64;
/// Events kept for slow subscribers before the oldest are dropped.
pub const EVENT_QUEUE: usize = 4096;
/// Announcements waiting for a subscribed peer.
pub const OUTBOX: usize = 4096;
/// How long an announcement waits for a subscribed peer before it is dropped.
pub const OUTBOX_TTL: Duration = Duration::from_secs(600);
/// The actor's periodic tick: retries, timeouts, and keeping gossipsub's
/// heartbeat going on a quiet network.
pub const TICK: Duration = Duration::from_millis(250);
/// Most peers asked for one bundle before giving up.
pub const MAX_CANDIDATES: usize = 8;
/// How long a peer that served false data is refused.
pub const BAN_TIME: Duration = Duration::from_secs(3600);
/// Most peers remembered as banned; a liar with many identities cannot
/// grow the list without end (the oldest ban goes first).
pub const MAX_BANNED: usize = 4096;

/// Why a network operation failed.
#[derive(Debug, Error)]
pub enum NetError {
    /// The actor has stopped.
    #[error("the node has stopped")]
    ActorDropped,
    /// The transport could not be set up.
    #[error("network setup failed: {0}")]
    Setup(String),
    /// Listening on an address failed.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
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
}

/// Network settings, with defaults for a reader's node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetConfig {
    /// Addresses to listen on.
    pub listen: Vec<String>,
    /// Peers to connect to at start.
    pub bootstrap: Vec<String>,
    /// Find peers on the local network (mDNS).
    pub mdns: bool,
    /// Most established connections.
    pub max_connections: u32,
    /// Most connections to one peer.
    pub max_connections_per_peer: u32,
    /// Most incoming connections being set up at once.
    pub max_pending_incoming: u32,
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
    /// Most blob bytes fetched from peers per second; `None` for no cap.
    /// Over it, no new request goes out until the rate allows.
    pub max_download_bytes_per_sec: Option<u64>,
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
            listen: vec![
                "/ip4/0.0.0.0/tcp/4001".into(),
                "/ip4/0.0.0.0/udp/4001/quic-v1".into(),
                "/ip4/0.0.0.0/tcp/4443/ws".into(),
            ],
            bootstrap: Vec::new(),
            mdns: true,
            max_connections: 128,
            max_connections_per_peer: 2,
            max_pending_incoming: 32,
            max_memory_fraction: 0.9,
            heartbeat_ms: 700,
            request_timeout_secs: 15,
            max_fetches: 64,
            max_requests_per_peer: 8,
            fetch_deadline_secs: 120,
            same_ip_ok: false,
            mirror: false,
            sync_interval_secs: 300,
            discovery_interval_secs: 60,
            provide_interval_secs: 3600,
            relays: Vec::new(),
            external_addresses: Vec::new(),
            relay: RelayLimits::default(),
            autonat_probe_secs: 90,
            autonat_global_only: true,
            max_upload_bytes_per_sec: None,
            max_download_bytes_per_sec: None,
        }
    }
}

impl NetConfig {
    /// Settings for tests: loopback only, a random port, no mDNS, short
    /// timers, and the same-IP penalty off.
    pub fn for_tests() -> Self {
        Self {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            mdns: false,
            heartbeat_ms: 200,
            request_timeout_secs: 5,
            fetch_deadline_secs: 30, // under 200 heartbeats of 200 ms
            same_ip_ok: true,
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
    /// Reachability as autonat last found it, if it has.
    pub reachability: Option<String>,
    /// Catch-up traffic since start.
    pub sync: SyncTraffic,
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

enum Command {
    Publish {
        file: Box<BundleFile>,
        reply: oneshot::Sender<Result<BundleId, NetError>>,
    },
    Import {
        path: PathBuf,
        reply: oneshot::Sender<Result<ImportReport, NetError>>,
    },
    Trust {
        file: PublisherFile,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Untrust {
        publisher: PublicKey,
        reply: oneshot::Sender<bool>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Listeners {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Metrics {
        reply: oneshot::Sender<String>,
    },
    Revoke {
        revocation: Vec<u8>,
        reply: oneshot::Sender<Result<usize, NetError>>,
    },
    Report {
        publisher: PublicKey,
        story: crate::proto::StoryId,
        wait: Duration,
        reply: oneshot::Sender<Result<Vec<Holding>, NetError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    memory: memory_connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
    fetch: request_response::Behaviour<FetchCodec>,
    sync: request_response::Behaviour<SyncCodec>,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    relay_client: relay::client::Behaviour,
    relay: Toggle<relay::Behaviour>,
    dcutr: dcutr::Behaviour,
    autonat: autonat::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Aborts the actor when the last handle is gone.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A handle to a running node.
#[derive(Clone)]
pub struct Node {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<NodeEvent>,
    peer_id: PeerId,
    _task: Arc<AbortOnDrop>,
}

/// A bundle being fetched.
struct Fetch {
    manifest: Verified<Manifest>,
    /// The gossip message to accept once stored, and who sent it.
    message: Option<(MessageId, PeerId)>,
    entry: usize,
    buf: Vec<u8>,
    blobs: Vec<Vec<u8>>,
    candidates: VecDeque<PeerId>,
    current: Option<PeerId>,
    in_flight: bool,
    /// The announcer served a blob that does not match: it lied.
    announcer_lied: bool,
    started: Instant,
}

struct Actor {
    swarm: Swarm<Behaviour>,
    store: Arc<Store>,
    policy: TrustPolicy,
    config: NetConfig,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<NodeEvent>,
    fetches: HashMap<BundleId, Fetch>,
    requests: HashMap<OutboundRequestId, (BundleId, PeerId)>,
    per_peer: HashMap<PeerId, usize>,
    outbox: VecDeque<(IdentTopic, Vec<u8>, Instant)>,
    topics: HashSet<TopicHash>,
    rejected: u64,
    /// Peers that served false data, and since when.
    banned: HashMap<PeerId, Instant>,
    served_chunks: u64,
    /// Gossipsub's own counters (received messages with and without
    /// duplicates, among others).
    metrics: prometheus_client::registry::Registry,
    /// Catch-up traffic, counted by the codec.
    sync_counters: Arc<wire::SyncCounters>,
    /// The node's own metrics, registered in `metrics`.
    own_metrics: metrics::Metrics,
    sync: catchup::SyncState,
    discovery: discovery::DiscoveryState,
    reports: report::Reports,
    upload: bandwidth::Bucket,
    download: bandwidth::Bucket,
    /// When retention and quotas were last applied on the tick.
    last_limits: Option<Instant>,
}

fn now() -> Timestamp {
    Timestamp::from_system(std::time::SystemTime::now())
}

/// Heartbeats a message stays in gossipsub's cache: at least 200, and
/// always longer than the fetch deadline, so a verdict given at the
/// deadline still finds its message.
fn history_length(config: &NetConfig) -> usize {
    let deadline_beats = (config.fetch_deadline_secs * 1000).div_ceil(config.heartbeat_ms.max(1));
    (deadline_beats as usize + 20).max(200)
}

async fn build_swarm(
    keypair: libp2p::identity::Keypair,
    config: &NetConfig,
    registry: &mut prometheus_client::registry::Registry,
    sync_codec: SyncCodec,
) -> Result<Swarm<Behaviour>, NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let gossip_config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(Duration::from_millis(config.heartbeat_ms))
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| {
            MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
        })
        .max_transmit_size(wire::MAX_GOSSIP + 1024)
        // Bundle announcements wait in the cache while their blobs are
        // fetched; the cache (200 heartbeats, 140 s by default) must outlast
        // a fetch's deadline (120 s), or a late verdict could not forward.
        .history_length(history_length(config))
        .history_gossip(3)
        .duplicate_cache_time(Duration::from_secs(300))
        .build()
        .map_err(|e| setup(&e))?;
    let mut score = gossipsub::PeerScoreParams::default();
    if config.same_ip_ok {
        score.ip_colocation_factor_weight = 0.0;
    }
    let thresholds = gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 20.0,
    };
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(config.max_connections))
        .with_max_established_per_peer(Some(config.max_connections_per_peer))
        .with_max_pending_incoming(Some(config.max_pending_incoming))
        .with_max_pending_outgoing(Some(config.max_pending_incoming));
    let fetch_config = request_response::Config::default()
        .with_request_timeout(Duration::from_secs(config.request_timeout_secs))
        .with_max_concurrent_streams(64);
    let mdns_on = config.mdns && !config.mirror;
    let mirror = config.mirror;
    let relay_limits = config.relay.clone();
    let probe = Duration::from_secs(config.autonat_probe_secs.max(1));
    let autonat_config = autonat::Config {
        boot_delay: probe.min(Duration::from_secs(15)),
        retry_interval: probe,
        throttle_server_period: probe,
        only_global_ips: config.autonat_global_only,
        ..Default::default()
    };
    let sync_config = request_response::Config::default()
        .with_request_timeout(Duration::from_secs(config.request_timeout_secs.max(30)))
        .with_max_concurrent_streams(16);
    let memory_fraction = config.max_memory_fraction;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        .with_quic()
        .with_dns()
        .map_err(|e| setup(&e))?
        .with_websocket(noise::Config::new, yamux::Config::default)
        .await
        .map_err(|e| setup(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| setup(&e))?
        .with_behaviour(move |key, relay_client| {
            let peer_id = key.public().to_peer_id();
            let mut gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
            )?;
            gossipsub.with_peer_score(score, thresholds)?;
            gossipsub = gossipsub.with_metrics(
                registry.sub_registry_with_prefix("gossipsub"),
                Default::default(),
            );
            let mdns = if mdns_on {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    key.public().to_peer_id(),
                )?)
            } else {
                None
            };
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                memory: memory_connection_limits::Behaviour::with_max_percentage(memory_fraction),
                identify: identify::Behaviour::new(
                    identify::Config::new("/kolokol/1.0.0".into(), key.public())
                        .with_agent_version(format!("kolokol/{}", env!("CARGO_PKG_VERSION"))),
                ),
                ping: ping::Behaviour::default(),
                gossipsub,
                fetch: request_response::Behaviour::with_codec(
                    FetchCodec,
                    [(
                        StreamProtocol::new(wire::FETCH_PROTOCOL),
                        ProtocolSupport::Full,
                    )],
                    fetch_config,
                ),
                sync: request_response::Behaviour::with_codec(
                    sync_codec,
                    [(
                        StreamProtocol::new(wire::SYNC_PROTOCOL),
                        ProtocolSupport::Full,
                    )],
                    sync_config,
                ),
                kad: discovery::kademlia(peer_id, mirror),
                relay_client,
                relay: Toggle::from(
                    mirror.then(|| discovery::relay_server(peer_id, &relay_limits)),
                ),
                dcutr: dcutr::Behaviour::new(peer_id),
                autonat: autonat::Behaviour::new(peer_id, autonat_config),
                mdns: Toggle::from(mdns),
            })
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}

impl Node {
    /// Starts a node: builds the swarm, listens, subscribes to every trusted
    /// publisher's topic and dials the bootstrap peers. `policy` should
    /// already know what the store holds (`Store::load_trust`).
    pub async fn spawn(
        config: NetConfig,
        keypair: libp2p::identity::Keypair,
        store: Arc<Store>,
        policy: TrustPolicy,
    ) -> Result<Node, NetError> {
        let peer_id = keypair.public().to_peer_id();
        let mut registry = prometheus_client::registry::Registry::default();
        let sync_codec = SyncCodec::default();
        let sync_counters = sync_codec.counters.clone();
        let mut swarm = build_swarm(keypair, &config, &mut registry, sync_codec).await?;
        let own_metrics = metrics::Metrics::default();
        own_metrics.register(&mut registry);
        for addr in &config.listen {
            let ma: Multiaddr = addr
                .parse()
                .map_err(|_| NetError::BadAddress(addr.clone()))?;
            swarm.listen_on(ma).map_err(|e| NetError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        }
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let mut actor = Actor {
            swarm,
            store,
            policy,
            config: config.clone(),
            commands: rx,
            events: events.clone(),
            fetches: HashMap::new(),
            requests: HashMap::new(),
            per_peer: HashMap::new(),
            outbox: VecDeque::new(),
            topics: HashSet::new(),
            rejected: 0,
            banned: HashMap::new(),
            served_chunks: 0,
            metrics: registry,
            sync_counters,
            own_metrics,
            sync: catchup::SyncState::default(),
            discovery: discovery::DiscoveryState::default(),
            reports: report::Reports::default(),
            upload: bandwidth::Bucket::new(config.max_upload_bytes_per_sec, Instant::now()),
            download: bandwidth::Bucket::new(config.max_download_bytes_per_sec, Instant::now()),
            last_limits: None,
        };
        for addr in &config.external_addresses {
            let ma: Multiaddr = addr
                .parse()
                .map_err(|_| NetError::BadAddress(addr.clone()))?;
            actor.swarm.add_external_address(ma);
        }
        actor.listen_via_relays();
        let publishers: Vec<PublicKey> = actor.policy.publishers().map(|(k, _)| *k).collect();
        for p in publishers {
            actor.subscribe(&p);
        }
        for addr in &config.bootstrap {
            let ma: Multiaddr = addr
                .parse()
                .map_err(|_| NetError::BadAddress(addr.clone()))?;
            if let Err(e) = actor.swarm.dial(ma) {
                warn!("cannot dial bootstrap peer {addr}: {e}");
            }
        }
        let task = tokio::spawn(actor.run());
        Ok(Node {
            commands: tx,
            events,
            peer_id,
            _task: Arc::new(AbortOnDrop(task.abort_handle())),
        })
    }

    /// The node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Events from now on.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetError::ActorDropped)?;
        rx.await.map_err(|_| NetError::ActorDropped)
    }

    /// Verifies and stores a bundle file made here, then announces it.
    pub async fn publish(&self, file: BundleFile) -> Result<BundleId, NetError> {
        self.ask(|reply| Command::Publish {
            file: Box::new(file),
            reply,
        })
        .await?
    }

    /// Imports an archive or bundle file from a path on this machine, and
    /// announces the new bundles.
    pub async fn import(&self, path: PathBuf) -> Result<ImportReport, NetError> {
        self.ask(|reply| Command::Import { path, reply }).await?
    }

    /// Trusts a publisher from now on (the caller keeps the trust list file).
    pub async fn trust(&self, file: PublisherFile) -> Result<(), NetError> {
        self.ask(|reply| Command::Trust { file, reply }).await?
    }

    /// Stops trusting, and carrying, a publisher (the caller keeps the
    /// trust list file); returns whether it was trusted. What the store
    /// holds of it stays, no longer offered in catch-up.
    pub async fn untrust(&self, publisher: PublicKey) -> Result<bool, NetError> {
        self.ask(|reply| Command::Untrust { publisher, reply })
            .await
    }

    /// The node's status.
    pub async fn status(&self) -> Result<Status, NetError> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// Connects to a peer.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }

    /// Announces a revocation a newsroom made: verifies it, stores it
    /// (removing the bundles it covers) and announces it, so that every
    /// node refuses what the key signs from its effective time on. Returns
    /// how many stored bundles it removed here.
    pub async fn revoke(&self, revocation: Vec<u8>) -> Result<usize, NetError> {
        self.ask(|reply| Command::Revoke { revocation, reply })
            .await?
    }

    /// Asks connected peers, and the publisher's mirrors found in the DHT,
    /// which versions of a story they hold; answers within `wait`.
    pub async fn report(
        &self,
        publisher: PublicKey,
        story: crate::proto::StoryId,
        wait: Duration,
    ) -> Result<Vec<Holding>, NetError> {
        self.ask(|reply| Command::Report {
            publisher,
            story,
            wait,
            reply,
        })
        .await?
    }

    /// The node's metrics (its own and gossipsub's) in the Prometheus text
    /// format.
    pub async fn metrics(&self) -> Result<String, NetError> {
        self.ask(|reply| Command::Metrics { reply }).await
    }

    /// Addresses the node listens on.
    pub async fn listeners(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(|reply| Command::Listeners { reply }).await
    }

    /// Waits until the node listens on `count` addresses or `deadline`
    /// passes, and returns what it listens on.
    pub async fn wait_listening(
        &self,
        count: usize,
        deadline: Duration,
    ) -> Result<Vec<Multiaddr>, NetError> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let l = self.listeners().await?;
            if l.len() >= count || tokio::time::Instant::now() >= until {
                return Ok(l);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the node: in-flight fetches are dropped whole (nothing of them
    /// was stored), and the store is flushed.
    pub async fn shutdown(&self) -> Result<(), NetError> {
        self.ask(|reply| Command::Shutdown { reply }).await
    }
}

impl Actor {
    fn emit(&self, e: NodeEvent) {
        let _ = self.events.send(e);
    }

    fn untrust(&mut self, publisher: &PublicKey) -> bool {
        let was = self.policy.untrust(publisher);
        let topic = IdentTopic::new(wire::topic_name(publisher));
        if self.swarm.behaviour_mut().gossipsub.unsubscribe(&topic) {
            self.topics.remove(&topic.hash());
        }
        self.sync.forget_publisher(publisher);
        if was {
            info!(publisher = %publisher, "no longer trusted or carried");
        }
        was
    }

    fn subscribe(&mut self, publisher: &PublicKey) {
        let topic = IdentTopic::new(wire::topic_name(publisher));
        let gs = &mut self.swarm.behaviour_mut().gossipsub;
        // Refused messages on a topic cost their sender: the P4 penalty.
        let params = gossipsub::TopicScoreParams {
            invalid_message_deliveries_weight: -100.0,
            invalid_message_deliveries_decay: 0.9,
            ..Default::default()
        };
        if let Err(e) = gs.set_topic_params(topic.clone(), params) {
            warn!("topic score parameters refused: {e}");
        }
        match gs.subscribe(&topic) {
            Ok(_) => {
                self.topics.insert(topic.hash());
            }
            Err(e) => warn!("cannot subscribe to {topic}: {e}"),
        }
    }

    async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => {
                        self.shutdown();
                        let _ = reply.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd),
                    None => {
                        self.shutdown();
                        return;
                    }
                },
                event = self.swarm.select_next_some() => self.swarm_event(event),
                _ = tick.tick() => self.tick(),
            }
        }
    }

    fn shutdown(&mut self) {
        let dropped = self.fetches.len();
        self.fetches.clear();
        if let Err(e) = self.store.flush() {
            warn!("store flush at shutdown failed: {e}");
        }
        info!(dropped_fetches = dropped, "node stopped");
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Publish { file, reply } => {
                let _ = reply.send(self.publish_local(*file));
            }
            Command::Import { path, reply } => {
                let _ = reply.send(self.import(path));
            }
            Command::Trust { file, reply } => {
                let result = self
                    .policy
                    .trust(file.root_key, file.name.clone())
                    .map_err(|e| NetError::Rejected(e.to_string()));
                if result.is_ok() {
                    self.subscribe(&file.root_key);
                }
                let _ = reply.send(result);
            }
            Command::Untrust { publisher, reply } => {
                let _ = reply.send(self.untrust(&publisher));
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Dial { addr, reply } => {
                let result = self.swarm.dial(addr.clone()).map_err(|e| NetError::Dial {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                });
                let _ = reply.send(result);
            }
            Command::Report {
                publisher,
                story,
                wait,
                reply,
            } => self.start_report(publisher, story, wait, reply),
            Command::Revoke { revocation, reply } => {
                let _ = reply.send(self.revoke(revocation));
            }
            Command::Metrics { reply } => {
                let _ = reply.send(self.encode_metrics());
            }
            Command::Listeners { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Shutdown { .. } => {}
        }
    }

    fn certificate_of(&self, m: &Manifest) -> Option<Vec<u8>> {
        self.policy
            .publisher(&m.publisher)?
            .certificates()
            .find(|c| c.id() == m.certificate)
            .map(|c| c.bytes().to_vec())
    }

    fn announce(&mut self, publisher: &PublicKey, a: Announcement) {
        let topic = IdentTopic::new(wire::topic_name(publisher));
        let data = a.encode();
        if self.outbox.len() >= OUTBOX {
            warn!("announcement queue full; dropping the oldest (catch-up will carry it)");
            self.outbox.pop_front();
        }
        self.outbox.push_back((topic, data, Instant::now()));
        self.flush_outbox();
    }

    /// Publishes what waits; an announcement with no subscribed peer yet
    /// waits for one (up to [`OUTBOX_TTL`]).
    fn flush_outbox(&mut self) {
        let mut keep = VecDeque::new();
        while let Some((topic, data, since)) = self.outbox.pop_front() {
            match self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(topic.clone(), data.clone())
            {
                Ok(_) | Err(gossipsub::PublishError::Duplicate) => {}
                Err(gossipsub::PublishError::NoPeersSubscribedToTopic)
                | Err(gossipsub::PublishError::AllQueuesFull(_)) => {
                    if since.elapsed() < OUTBOX_TTL {
                        keep.push_back((topic, data, since));
                    }
                }
                Err(e) => warn!("cannot publish on {topic}: {e}"),
            }
        }
        self.outbox = keep;
    }

    fn store_trust_objects(&mut self, file: &BundleFile) -> Result<(), NetError> {
        for c in &file.certificates {
            match self.policy.learn_certificate(c) {
                Ok(v) => {
                    self.store.put_certificate(&v)?;
                }
                Err(e) => return Err(NetError::Rejected(format!("certificate: {e}"))),
            }
        }
        for r in &file.revocations {
            match self.policy.learn_revocation(r) {
                Ok(change) => {
                    self.store.record_revocation(&change)?;
                }
                Err(e) => return Err(NetError::Rejected(format!("revocation: {e}"))),
            }
        }
        Ok(())
    }

    fn revoke(&mut self, bytes: Vec<u8>) -> Result<usize, NetError> {
        let change = self
            .policy
            .learn_revocation(&bytes)
            .map_err(|e| NetError::Rejected(format!("revocation: {e}")))?;
        let removed = tokio::task::block_in_place(|| self.store.record_revocation(&change))?;
        let rev = &change.revocation;
        self.sync.store_changed();
        info!(key = %rev.key, removed = removed.len(), "revocation announced");
        self.announce(&rev.publisher, Announcement::Revocation(bytes));
        Ok(removed.len())
    }

    fn publish_local(&mut self, file: BundleFile) -> Result<BundleId, NetError> {
        self.store_trust_objects(&file)?;
        let verified = verify_bundle_file(&self.policy, file, now())
            .map_err(|e| NetError::Rejected(e.to_string()))?;
        let id = verified.bundle.id();
        let outcome = tokio::task::block_in_place(|| {
            self.store.ingest(std::slice::from_ref(&verified.bundle))
        })?;
        match outcome.first() {
            Some(Ingested::New) | Some(Ingested::Duplicate) => {}
            Some(other) => return Err(NetError::Rejected(format!("{other:?}"))),
            None => {}
        }
        let manifest = verified.bundle.manifest();
        let publisher = manifest.publisher;
        let certificate = verified.certificate.bytes().to_vec();
        // Revocations travel too, so every node refuses the revoked key.
        let revocations: Vec<Vec<u8>> = self
            .policy
            .publisher(&publisher)
            .map(|p| p.revocations().map(|r| r.bytes().to_vec()).collect())
            .unwrap_or_default();
        for r in revocations {
            self.announce(&publisher, Announcement::Revocation(r));
        }
        self.announce(
            &publisher,
            Announcement::Bundle {
                certificate: certificate.clone(),
                manifest: manifest.bytes().to_vec(),
            },
        );
        for head in verified.heads {
            if self.policy.accept_head(head.clone()) && self.store.record_head(&head).is_ok() {
                let bytes = head.bytes().to_vec();
                self.announce(
                    &publisher,
                    Announcement::Head {
                        certificate: certificate.clone(),
                        head: bytes,
                    },
                );
            }
        }
        self.sync.store_changed();
        self.emit(NodeEvent::Stored(id));
        info!(bundle = %id.short(), "published");
        self.enforce_quota();
        Ok(id)
    }

    fn import(&mut self, path: PathBuf) -> Result<ImportReport, NetError> {
        let file = std::fs::File::open(&path).map_err(|e| {
            NetError::Store(StoreError::Io {
                path: path.clone(),
                source: e,
            })
        })?;
        let mut stored = Vec::new();
        let report = tokio::task::block_in_place(|| {
            archive::import(
                &self.store,
                &mut self.policy,
                std::io::BufReader::new(file),
                now(),
                &mut |id| stored.push(*id),
            )
        })?;
        self.sync.store_changed();
        for id in stored {
            if let Ok(Some(m)) = self.store.manifest(&id)
                && let Some(cert) = self.certificate_of(&m.manifest)
            {
                let publisher = m.manifest.publisher;
                self.announce(
                    &publisher,
                    Announcement::Bundle {
                        certificate: cert,
                        manifest: m.bytes,
                    },
                );
                self.emit(NodeEvent::Stored(id));
            }
        }
        Ok(report)
    }

    /// The sum over all labels of one counter in gossipsub's registry.
    fn metric_sum(&self, name: &str) -> u64 {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.metrics).is_err() {
            return 0;
        }
        text.lines()
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Updates the gauges read from the store, then encodes everything.
    fn encode_metrics(&self) -> String {
        tokio::task::block_in_place(|| self.encode_metrics_now())
    }

    fn encode_metrics_now(&self) -> String {
        let m = &self.own_metrics;
        m.peers.set(self.swarm.connected_peers().count() as i64);
        let now = now();
        for p in self.publisher_statuses() {
            let label = metrics::PublisherLabel { publisher: p.name };
            let missing: u64 = p.missing.iter().map(|(a, b)| b - a + 1).sum();
            m.held.get_or_create(&label).set(p.held as i64);
            m.missing.get_or_create(&label).set(missing as i64);
            if let (Some(seq), Some(at)) = (p.head_sequence, p.head_issued_at) {
                m.head_sequence.get_or_create(&label).set(seq as i64);
                m.head_age
                    .get_or_create(&label)
                    .set(now.since(Timestamp(at)) as i64);
            }
        }
        if let Ok(t) = self.store.totals() {
            m.store_bytes.set(t.disk_bytes as i64);
            m.store_bundles.set(t.bundles as i64);
        }
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.metrics).is_err() {
            warn!("metrics could not be encoded");
        }
        text
    }

    /// Per trusted publisher, by name: what is held and missing, and its
    /// newest head (for the status and the metrics alike).
    fn publisher_statuses(&self) -> Vec<PublisherStatus> {
        let mut publishers = Vec::new();
        for (key, trust) in self.policy.publishers() {
            let held = self
                .store
                .held_ranges(key)
                .unwrap_or_default()
                .iter()
                .map(|(a, b)| b - a + 1)
                .sum();
            let missing = self.store.missing(key).unwrap_or_default();
            let head = self.store.head(key).ok().flatten().map(|(_, h)| h);
            publishers.push(PublisherStatus {
                name: trust.name.clone(),
                root_key: key.to_string(),
                held,
                missing,
                head_sequence: head.as_ref().map(|h| h.sequence),
                head_issued_at: head.as_ref().map(|h| h.issued_at.0),
                head_expired: head.as_ref().is_some_and(|h| h.is_expired(now())),
            });
        }
        publishers.sort_by(|a, b| a.name.cmp(&b.name));
        publishers
    }

    fn status(&self) -> Status {
        let publishers = self.publisher_statuses();
        Status {
            peer_id: self.swarm.local_peer_id().to_string(),
            listen: self.swarm.listeners().map(|a| a.to_string()).collect(),
            peers: self
                .swarm
                .connected_peers()
                .map(|p| p.to_string())
                .collect(),
            topics: self.topics.iter().map(|t| t.to_string()).collect(),
            fetching: self.fetches.len(),
            rejected: self.rejected,
            banned: self.banned.len(),
            served_chunks: self.served_chunks,
            gossip_received: self.metric_sum("gossipsub_topic_msg_recv_counts_unfiltered_total"),
            gossip_unique: self.metric_sum("gossipsub_topic_msg_recv_counts_total"),
            publishers,
            mirror: self.config.mirror,
            reachability: self.discovery.nat.clone(),
            sync: {
                use std::sync::atomic::Ordering::Relaxed;
                let c = &self.sync_counters;
                SyncTraffic {
                    messages_sent: c.messages_sent.load(Relaxed),
                    bytes_sent: c.bytes_sent.load(Relaxed),
                    messages_received: c.messages_received.load(Relaxed),
                    bytes_received: c.bytes_received.load(Relaxed),
                }
            },
        }
    }

    fn report(&mut self, id: &MessageId, source: &PeerId, acceptance: MessageAcceptance) {
        let delivered = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, source, acceptance);
        if !delivered && matches!(acceptance, MessageAcceptance::Accept) {
            debug!("a validated message had left the cache before it could be forwarded");
        }
    }

    /// Accepts (and so forwards) what is new; ignores the rest, at no
    /// cost to the sender.
    fn accept_if(&mut self, id: &MessageId, source: &PeerId, new: bool) {
        let verdict = if new {
            MessageAcceptance::Accept
        } else {
            MessageAcceptance::Ignore
        };
        self.report(id, source, verdict);
    }

    fn reject(&mut self, id: &MessageId, source: &PeerId, reason: String) {
        self.rejected += 1;
        self.own_metrics.reject(&reason);
        debug!(peer = %source, "rejected message: {reason}");
        self.report(id, source, MessageAcceptance::Reject);
        self.emit(NodeEvent::Rejected {
            peer: *source,
            reason,
        });
    }

    /// How a refused announcement is reported. Errors that depend on what
    /// we happen to know or on our clock (an unknown publisher or
    /// certificate, a revocation the sender may not have seen yet, a time
    /// just outside a window, an old head) are ignored without penalty;
    /// errors no honest node would pass on (bad signatures, malformed or
    /// oversized objects) are rejected, which costs the sender score.
    fn verdict(e: &PolicyError) -> MessageAcceptance {
        match e {
            PolicyError::UnknownPublisher { .. }
            | PolicyError::UnknownCertificate { .. }
            | PolicyError::KeyRevoked { .. }
            | PolicyError::SignedInFuture { .. }
            | PolicyError::HeadRollback { .. } => MessageAcceptance::Ignore,
            _ => MessageAcceptance::Reject,
        }
    }

    fn refuse(&mut self, id: &MessageId, source: &PeerId, what: &str, e: PolicyError) {
        match Self::verdict(&e) {
            MessageAcceptance::Reject => self.reject(id, source, format!("{what}: {e}")),
            other => {
                debug!(peer = %source, "ignored {what}: {e}");
                self.report(id, source, other);
            }
        }
    }

    fn gossip_message(&mut self, source: PeerId, id: MessageId, message: gossipsub::Message) {
        let Some(announcement) = Announcement::decode(&message.data) else {
            return self.reject(&id, &source, "undecodable announcement".into());
        };
        let now = now();
        // Each publisher's objects belong on its own topic only.
        let on_topic = |publisher: &PublicKey| {
            message.topic == IdentTopic::new(wire::topic_name(publisher)).hash()
        };
        match announcement {
            Announcement::Bundle {
                certificate,
                manifest,
            } => {
                // Certificate first, so the manifest can be checked.
                let cert = match self.policy.verify_certificate(&certificate) {
                    Ok(c) => c,
                    Err(e) => return self.refuse(&id, &source, "certificate", e),
                };
                if !on_topic(&cert.publisher) {
                    return self.reject(
                        &id,
                        &source,
                        "announcement on another publisher's topic".into(),
                    );
                }
                let bundle_id = BundleId::of(&manifest);
                if self.store.has_bundle(&bundle_id).unwrap_or(false)
                    || self.fetches.contains_key(&bundle_id)
                {
                    return self.report(&id, &source, MessageAcceptance::Ignore);
                }
                self.policy.add_certificate(cert.clone());
                let _ = self.store.put_certificate(&cert);
                match self.policy.verify_manifest(&manifest, now) {
                    Ok(m) if m.publisher != cert.publisher => self.reject(
                        &id,
                        &source,
                        "a manifest of another publisher than its certificate".into(),
                    ),
                    Ok(m) => {
                        // Evicted under the quota, or removed by a revocation:
                        // not fetched again.
                        if matches!(self.store.seq_state(&m.publisher, m.sequence), Ok(Some(s)) if s != crate::store::SeqState::Held)
                        {
                            return self.report(&id, &source, MessageAcceptance::Ignore);
                        }
                        self.start_fetch(m, Some((id, source)))
                    }
                    Err(e) => self.refuse(&id, &source, "manifest", e),
                }
            }
            Announcement::Head { certificate, head } => {
                match self.policy.learn_certificate(&certificate) {
                    Ok(c) => {
                        if !on_topic(&c.publisher) {
                            return self.reject(
                                &id,
                                &source,
                                "announcement on another publisher's topic".into(),
                            );
                        }
                        let _ = self.store.put_certificate(&c);
                    }
                    Err(e) => return self.refuse(&id, &source, "certificate", e),
                }
                match self.policy.verify_head(&head, now) {
                    Ok(h)
                        if IdentTopic::new(wire::topic_name(&h.publisher)).hash()
                            != message.topic =>
                    {
                        self.reject(
                            &id,
                            &source,
                            "a head of another publisher than its topic".into(),
                        )
                    }
                    Ok(h) => {
                        let (publisher, sequence) = (h.publisher, h.sequence);
                        if self.policy.accept_head(h.clone()) && self.store.record_head(&h).is_ok()
                        {
                            self.report(&id, &source, MessageAcceptance::Accept);
                            self.emit(NodeEvent::Head {
                                publisher,
                                sequence,
                            });
                        } else {
                            self.report(&id, &source, MessageAcceptance::Ignore);
                        }
                    }
                    Err(e) => self.refuse(&id, &source, "head", e),
                }
            }
            Announcement::Certificate(bytes) => match self.policy.verify_certificate(&bytes) {
                Ok(c) if !on_topic(&c.publisher) => self.reject(
                    &id,
                    &source,
                    "announcement on another publisher's topic".into(),
                ),
                Ok(c) => {
                    let new = self.store.put_certificate(&c).unwrap_or(false);
                    self.policy.add_certificate(c);
                    self.accept_if(&id, &source, new);
                }
                Err(e) => self.refuse(&id, &source, "certificate", e),
            },
            Announcement::Revocation(bytes) => match self.policy.verify_revocation(&bytes) {
                Ok(r) if !on_topic(&r.publisher) => self.reject(
                    &id,
                    &source,
                    "announcement on another publisher's topic".into(),
                ),
                Ok(r) => {
                    let change = self.policy.add_revocation(r);
                    let stored =
                        tokio::task::block_in_place(|| self.store.record_revocation(&change));
                    self.sync.store_changed();
                    if let Err(e) = &stored {
                        warn!("storing a revocation failed: {e}");
                    }
                    let accept = change.changed && stored.is_ok();
                    self.accept_if(&id, &source, accept);
                }
                Err(e) => self.refuse(&id, &source, "revocation", e),
            },
        }
    }

    fn start_fetch(&mut self, manifest: Verified<Manifest>, message: Option<(MessageId, PeerId)>) {
        let first = message.as_ref().map(|(_, source)| *source);
        self.start_fetch_inner(manifest, message, first);
    }

    /// Fetches a bundle a catch-up peer holds, from that peer first.
    /// Returns false when the node is at `max_fetches`.
    fn start_fetch_from(&mut self, manifest: Verified<Manifest>, peer: PeerId) -> bool {
        self.start_fetch_inner(manifest, None, Some(peer))
    }

    fn start_fetch_inner(
        &mut self,
        manifest: Verified<Manifest>,
        message: Option<(MessageId, PeerId)>,
        first: Option<PeerId>,
    ) -> bool {
        if self.fetches.len() >= self.config.max_fetches {
            // Too busy: not forwarded, not held against the sender; catch-up
            // brings it later.
            if let Some((id, source)) = message {
                self.report(&id, &source, MessageAcceptance::Ignore);
            }
            return false;
        }
        let mut candidates = VecDeque::new();
        if let Some(source) = first {
            candidates.push_back(source);
        }
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in connected {
            if candidates.len() >= MAX_CANDIDATES {
                break;
            }
            if !candidates.contains(&p) && !self.is_banned(&p) {
                candidates.push_back(p);
            }
        }
        let id = manifest.id();
        let entries = manifest.entries.len();
        self.fetches.insert(
            id,
            Fetch {
                manifest,
                message,
                entry: 0,
                buf: Vec::new(),
                blobs: Vec::with_capacity(entries),
                candidates,
                current: None,
                in_flight: false,
                announcer_lied: false,
                started: Instant::now(),
            },
        );
        self.advance(id);
        true
    }

    /// Sends the next request of a fetch, or finishes it.
    fn advance(&mut self, id: BundleId) {
        let Some(f) = self.fetches.get_mut(&id) else {
            return;
        };
        if f.in_flight {
            return;
        }
        if f.entry == f.manifest.entries.len() {
            return self.complete(id);
        }
        while f.current.is_none() {
            match f.candidates.pop_front() {
                Some(p) if self.banned.get(&p).is_some_and(|t| t.elapsed() < BAN_TIME) => continue,
                Some(p) => f.current = Some(p),
                None => break,
            }
        }
        let Some(peer) = f.current else {
            return self.fail(id, "no peer could supply every blob");
        };
        if self.per_peer.get(&peer).copied().unwrap_or(0) >= self.config.max_requests_per_peer
            || !self.download.open(Instant::now())
        {
            return; // retried on the next tick
        }
        let entry = &f.manifest.entries[f.entry];
        let request = FetchRequest::Blob {
            hash: entry.hash,
            offset: f.buf.len() as u64,
        };
        f.in_flight = true;
        let rid = self
            .swarm
            .behaviour_mut()
            .fetch
            .send_request(&peer, request);
        *self.per_peer.entry(peer).or_default() += 1;
        self.requests.insert(rid, (id, peer));
    }

    /// Moves a fetch on to its next candidate peer.
    fn next_peer(&mut self, id: BundleId, lied: bool) {
        if let Some(f) = self.fetches.get_mut(&id) {
            if lied
                && f.message
                    .as_ref()
                    .is_some_and(|(_, s)| Some(*s) == f.current)
            {
                f.announcer_lied = true;
            }
            f.current = None;
            f.buf.clear();
        }
        self.advance(id);
    }

    fn fetch_response(&mut self, rid: OutboundRequestId, response: Result<FetchResponse, String>) {
        let Some((id, peer)) = self.requests.remove(&rid) else {
            return;
        };
        if let Some(n) = self.per_peer.get_mut(&peer) {
            *n = n.saturating_sub(1);
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
                    self.ban(peer, "malformed blob chunk".into());
                    return self.next_peer(id, true);
                }
                f.buf.extend_from_slice(&data);
                self.own_metrics.fetched_bytes.inc_by(data.len() as u64);
                self.download.take(data.len() as u64, Instant::now());
                if f.buf.len() as u64 == entry.size {
                    let blob = std::mem::take(&mut f.buf);
                    if let Err(e) = check_blob(&entry, &blob) {
                        self.ban(peer, format!("tampered blob: {e}"));
                        return self.next_peer(id, true);
                    }
                    f.blobs.push(blob);
                    f.entry += 1;
                }
                self.advance(id);
            }
            Ok(FetchResponse::NotFound) => self.next_peer(id, false),
            Err(e) => {
                debug!(peer = %peer, "fetch request failed: {e}");
                self.next_peer(id, false)
            }
        }
    }

    /// A peer served false data: it is disconnected and refused for
    /// [`BAN_TIME`]. Gossip's own scoring handles false announcements.
    fn ban(&mut self, peer: PeerId, reason: String) {
        self.rejected += 1;
        self.own_metrics.reject(&reason);
        warn!(peer = %peer, "refusing a peer that served false data: {reason}");
        if self.banned.len() >= MAX_BANNED
            && let Some(oldest) = self.banned.iter().min_by_key(|(_, t)| **t).map(|(p, _)| *p)
        {
            self.banned.remove(&oldest);
        }
        self.banned.insert(peer, Instant::now());
        let _ = self.swarm.disconnect_peer_id(peer);
        self.emit(NodeEvent::Rejected { peer, reason });
    }

    fn is_banned(&self, peer: &PeerId) -> bool {
        self.banned
            .get(peer)
            .is_some_and(|t| t.elapsed() < BAN_TIME)
    }

    fn complete(&mut self, id: BundleId) {
        let Some(f) = self.fetches.remove(&id) else {
            return;
        };
        let message = f.message;
        let result = self
            .policy
            .verify_bundle(f.manifest, f.blobs)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                tokio::task::block_in_place(|| self.store.ingest(&[b])).map_err(|e| e.to_string())
            });
        match result {
            Ok(outcome) if matches!(outcome.first(), Some(Ingested::New | Ingested::Duplicate)) => {
                if let Some((mid, source)) = message {
                    self.report(&mid, &source, MessageAcceptance::Accept);
                }
                self.sync.store_changed();
                self.emit(NodeEvent::Stored(id));
                debug!(bundle = %id.short(), "fetched and stored");
                self.enforce_quota();
            }
            Ok(outcome) => {
                // Refused for what this store knows (a revocation, another
                // bundle under the number); the sender may not know it yet.
                debug!(bundle = %id.short(), "fetched bundle refused by the store: {outcome:?}");
                if let Some((mid, source)) = message {
                    self.report(&mid, &source, MessageAcceptance::Ignore);
                }
            }
            Err(e) => {
                warn!(bundle = %id.short(), "fetched bundle not stored: {e}");
                if let Some((mid, source)) = message {
                    self.report(&mid, &source, MessageAcceptance::Ignore);
                }
            }
        }
    }

    fn enforce_quota(&mut self) {
        match tokio::task::block_in_place(|| self.store.enforce_limits(now())) {
            Ok(e) if e != Default::default() => self.sync.store_changed(),
            Ok(_) => {}
            Err(e) => warn!("quota enforcement failed: {e}"),
        }
    }

    fn fail(&mut self, id: BundleId, why: &str) {
        let Some(f) = self.fetches.remove(&id) else {
            return;
        };
        debug!(bundle = %id.short(), "fetch failed: {why}");
        if let Some((mid, source)) = f.message {
            if f.announcer_lied {
                // It announced a bundle it then served falsely.
                self.reject(
                    &mid,
                    &source,
                    format!("announced bundle {} but served a tampered blob", id.short()),
                );
            } else {
                self.report(&mid, &source, MessageAcceptance::Ignore);
            }
        }
    }

    fn serve(
        &mut self,
        request: FetchRequest,
        channel: request_response::ResponseChannel<FetchResponse>,
    ) {
        let FetchRequest::Blob { hash, offset } = request;
        if !self.upload.open(Instant::now()) {
            // Over the upload cap: "not here", and the peer asks another.
            let _ = self
                .swarm
                .behaviour_mut()
                .fetch
                .send_response(channel, FetchResponse::NotFound);
            return;
        }
        let read = tokio::task::block_in_place(|| self.store.blob_range(&hash, offset, CHUNK));
        let response = match read {
            Ok(Some((total, data))) => {
                self.served_chunks += 1;
                self.own_metrics.served_bytes.inc_by(data.len() as u64);
                self.upload.take(data.len() as u64, Instant::now());
                FetchResponse::Chunk {
                    total,
                    offset: offset.min(total),
                    data,
                }
            }
            _ => FetchResponse::NotFound,
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .fetch
            .send_response(channel, response);
    }

    fn tick(&mut self) {
        self.flush_outbox();
        // Retention and quotas also on a quiet node, and after a change of
        // settings: once a minute (and at the first tick).
        if self
            .last_limits
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            self.last_limits = Some(Instant::now());
            self.enforce_quota();
        }
        self.sync_tick();
        self.discovery_tick();
        self.finish_reports(true);
        self.banned.retain(|_, t| t.elapsed() < BAN_TIME);
        let deadline = Duration::from_secs(self.config.fetch_deadline_secs);
        let overdue: Vec<BundleId> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.started.elapsed() > deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in overdue {
            self.fail(id, "deadline passed");
        }
        let idle: Vec<BundleId> = self
            .fetches
            .iter()
            .filter(|(_, f)| !f.in_flight)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            self.advance(id);
        }
    }

    fn swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!("listening on {address}");
                // A mirror is run where it can be reached: what it listens
                // on is what it tells peers (and relay clients) to use,
                // unless addresses to announce are configured.
                if self.config.mirror
                    && self.config.external_addresses.is_empty()
                    && !address
                        .iter()
                        .any(|p| p == libp2p::multiaddr::Protocol::P2pCircuit)
                {
                    self.swarm.add_external_address(address.clone());
                }
                self.emit(NodeEvent::Listening(address));
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                addresses,
                reason,
            } => {
                if let Err(e) = reason {
                    warn!("stopped listening on {addresses:?}: {e}");
                }
                self.listener_closed(listener_id);
            }
            SwarmEvent::ListenerError { error, .. } => warn!("listener error: {error}"),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(
                relay::client::Event::ReservationReqAccepted { relay_peer_id, .. },
            )) => info!(relay = %relay_peer_id, "reachable through a relay"),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(e)) => debug!("relay: {e:?}"),
            SwarmEvent::ConnectionEstablished { peer_id, .. } if self.is_banned(&peer_id) => {
                let _ = self.swarm.disconnect_peer_id(peer_id);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                endpoint,
                ..
            } => {
                debug!(peer = %peer_id, address = %endpoint.get_remote_address(), "connected");
                self.emit(NodeEvent::Connected(peer_id));
                if num_established.get() == 1 {
                    self.sync_with(peer_id);
                    self.report_connected(peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => self.report_unreachable(peer, error.to_string()),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.sync.peer_gone(&peer_id);
                self.discovery.peer_gone(&peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.serve_sync(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.sync_response(request_id, Ok(response), false),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Sync(
                request_response::Event::OutboundFailure {
                    request_id, error, ..
                },
            )) => {
                let unsupported = matches!(
                    error,
                    request_response::OutboundFailure::UnsupportedProtocols
                );
                self.sync_response(request_id, Err(error.to_string()), unsupported)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.kad_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(e)) => self.autonat_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.gossip_message(propagation_source, message_id, message),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed {
                ..
            })) => self.flush_outbox(),
            SwarmEvent::Behaviour(BehaviourEvent::Fetch(request_response::Event::Message {
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.serve(request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.fetch_response(request_id, Ok(response)),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Fetch(
                request_response::Event::OutboundFailure {
                    request_id, error, ..
                },
            )) => self.fetch_response(request_id, Err(error.to_string())),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(list))) => {
                for (peer, addr) in list {
                    if !self.swarm.is_connected(&peer) && !self.is_banned(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                debug!(peer = %peer_id, agent = %info.agent_version, "identified");
                self.identified(peer_id, info);
            }
            _ => {}
        }
    }
}

/// Reads or creates the node's persistent libp2p identity (mode 0600).
pub fn load_identity(path: &std::path::Path) -> Result<libp2p::identity::Keypair, NetError> {
    let io = |e: std::io::Error| NetError::Setup(format!("{}: {e}", path.display()));
    if path.exists() {
        let bytes = std::fs::read(path).map_err(io)?;
        return libp2p::identity::Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| NetError::Setup(format!("{}: not a node identity: {e}", path.display())));
    }
    let key = libp2p::identity::Keypair::generate_ed25519();
    let bytes = key
        .to_protobuf_encoding()
        .map_err(|e| NetError::Setup(e.to_string()))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(key)
}
