//! A hostile mirror that records every byte a peer sends it after the
//! Noise layer, and what it saw at the level of the behaviours.
//!
//! What a privacy test needs is the plaintext a censor running a mirror
//! gets: multistream-select, yamux frames and every protocol's messages, as
//! the peer wrote them. [`recording_transport`] is TCP upgraded like the
//! node's own (`V1Lazy`, Noise XX, yamux), except that Noise's output stream
//! is wrapped in [`Recorded`], which appends each byte read from the peer,
//! decrypted, to a [`Recording`] of its connection, registered in
//! [`Recordings`] under the peer's id. The Noise handshake itself (the
//! peer's identity key and its signature) is not in a recording: it is
//! Noise's, and the peer id stands for it.
//!
//! [`HostileMirror`] runs a swarm on that transport with the behaviours a
//! mirror offers, built as the node builds them: identify (`/ipfs/id/1.0.0`,
//! a generic agent), ping, Kademlia in server mode under
//! [`wire::KAD_PROTOCOL`], gossipsub (strict, messages identified by the
//! blake3 of their data) subscribed to the topics of
//! [`MirrorConfig::topics`], and request-response for fetch
//! ([`wire::FETCH_PROTOCOL`]) and catch-up ([`wire::SYNC_PROTOCOL`]). By
//! default it answers fetch with `NotFound` and catch-up with `Refused`;
//! [`MirrorConfig::fetch`] and [`MirrorConfig::sync`] choose other answers.
//! Everything it sees is in its [`EventLog`] as [`Observed`] entries.
//!
//! Adding a protocol: the behaviour is generic over one extra behaviour,
//! `MirrorBehaviour<X>::extra` (`dummy::Behaviour` by default). Give it
//! with [`MirrorConfig::with_extra`], for example a
//! `request_response::Behaviour<MyCodec>` (or a derived behaviour bundling
//! several), and a handler that gets every event it emits with the
//! behaviour itself and the log, so it can answer, hold response channels
//! in its own state, and log what it decoded ([`Observed::Other`]). To act
//! later (answer a held request, publish gossip, dial),
//! [`HostileMirror::with_swarm`] runs a closure on the swarm inside the
//! mirror's task.
//!
//! Bounds: [`MAX_RECORDING`] bytes per connection (past it bytes are only
//! counted, in [`Recording::dropped`]), [`MAX_RECORDED_CONNECTIONS`]
//! connections (past it the Noise upgrade fails, so no connection goes
//! unrecorded), [`MAX_EVENTS`] log entries (past it they are counted).
//!
//! [`find_needles`], [`byte_forms`] and [`publisher_needles`] search a
//! recording for the forms in which a key can travel.

use std::collections::{HashMap, HashSet};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncWrite, FutureExt, StreamExt};
use kolokol::net::wire::{
    self, FetchCodec, FetchRequest, FetchResponse, SyncCodec, SyncRequest, SyncResponse,
};
use kolokol::proto::PublicKey;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};
use libp2p::gossipsub::{self, IdentTopic, MessageId, Sha256Topic};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent, dummy};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, Transport, identify, kad, noise, ping, tcp,
};
use tokio::sync::{mpsc, oneshot};

/// Bytes kept of one connection's recording.
pub const MAX_RECORDING: usize = 64 * 1024 * 1024;
/// Connections recorded by one [`Recordings`].
pub const MAX_RECORDED_CONNECTIONS: usize = 256;
/// Entries kept in an [`EventLog`].
pub const MAX_EVENTS: usize = 4096;
/// Addresses of one peer the mirror dials back.
pub const MAX_DIAL_BACKS_PER_PEER: usize = 8;
/// Commands queued for a mirror's task.
const COMMANDS: usize = 16;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Who opened a recorded connection, seen from the recording side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The peer dialed us.
    Inbound,
    /// We dialed the peer.
    Outbound,
}

/// What one connection's peer sent, after Noise.
#[derive(Clone, Debug)]
pub struct Recording {
    /// The remote peer, as Noise authenticated it.
    pub peer: PeerId,
    /// Who dialed.
    pub direction: Direction,
    /// Every byte read from the peer, decrypted, up to [`MAX_RECORDING`].
    pub received: Vec<u8>,
    /// Bytes read past [`MAX_RECORDING`], not kept.
    pub dropped: u64,
    /// Bytes we wrote to the peer (counted, not kept).
    pub sent: u64,
}

impl Recording {
    /// Every byte read from the peer, kept or not.
    pub fn total_received(&self) -> u64 {
        self.received.len() as u64 + self.dropped
    }
}

/// The recordings of every connection of a transport, shared with the
/// test.
#[derive(Clone, Default)]
pub struct Recordings {
    connections: Arc<Mutex<Vec<Arc<Mutex<Recording>>>>>,
}

impl Recordings {
    fn open(&self, peer: PeerId, direction: Direction) -> io::Result<Arc<Mutex<Recording>>> {
        let mut all = lock(&self.connections);
        if all.len() >= MAX_RECORDED_CONNECTIONS {
            return Err(io::Error::other("too many recorded connections"));
        }
        let recording = Arc::new(Mutex::new(Recording {
            peer,
            direction,
            received: Vec::new(),
            dropped: 0,
            sent: 0,
        }));
        all.push(recording.clone());
        Ok(recording)
    }

    /// A copy of every connection's recording, in the order they opened.
    pub fn all(&self) -> Vec<Recording> {
        lock(&self.connections)
            .iter()
            .map(|r| lock(r).clone())
            .collect()
    }

    /// A copy of the recordings of `peer`'s connections.
    pub fn of(&self, peer: &PeerId) -> Vec<Recording> {
        self.all().into_iter().filter(|r| r.peer == *peer).collect()
    }

    /// Bytes `peer` sent over all its connections, kept or not.
    pub fn bytes_from(&self, peer: &PeerId) -> u64 {
        lock(&self.connections)
            .iter()
            .map(|r| lock(r))
            .filter(|r| r.peer == *peer)
            .map(|r| r.total_received())
            .sum()
    }

    /// Whether some connection's recording was cut at [`MAX_RECORDING`].
    pub fn truncated(&self) -> bool {
        lock(&self.connections).iter().any(|r| lock(r).dropped > 0)
    }

    /// The labels of the needles found in the recording of any connection
    /// of `peer` (of every peer when `None`), each connection searched
    /// apart so no match spans two of them; each label once, in the
    /// needles' order.
    pub fn find<L: AsRef<str>>(
        &self,
        peer: Option<&PeerId>,
        needles: &[(L, Vec<u8>)],
    ) -> Vec<String> {
        let found: HashSet<String> = self
            .all()
            .iter()
            .filter(|r| peer.is_none_or(|p| r.peer == *p))
            .flat_map(|r| find_needles(&r.received, needles))
            .collect();
        needles
            .iter()
            .map(|(l, _)| l.as_ref().to_string())
            .filter(|l| found.contains(l))
            .collect()
    }
}

/// A stream whose reads are appended to a [`Recording`].
pub struct Recorded<S> {
    inner: S,
    recording: Arc<Mutex<Recording>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            let mut r = lock(&self.recording);
            let room = MAX_RECORDING.saturating_sub(r.received.len()).min(*n);
            r.received.extend_from_slice(&buf[..room]);
            r.dropped += (*n - room) as u64;
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            lock(&self.recording).sent += *n as u64;
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// Noise XX as the node runs it, its output stream recorded.
#[derive(Clone)]
pub struct RecordingNoise {
    noise: noise::Config,
    recordings: Recordings,
}

impl RecordingNoise {
    /// `noise`, recording into `recordings`.
    pub fn new(noise: noise::Config, recordings: Recordings) -> Self {
        Self { noise, recordings }
    }
}

impl UpgradeInfo for RecordingNoise {
    type Info = <noise::Config as UpgradeInfo>::Info;
    type InfoIter = <noise::Config as UpgradeInfo>::InfoIter;

    fn protocol_info(&self) -> Self::InfoIter {
        self.noise.protocol_info()
    }
}

impl<T> InboundConnectionUpgrade<T> for RecordingNoise
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Output = (PeerId, Recorded<noise::Output<T>>);
    type Error = noise::Error;
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, socket: T, info: Self::Info) -> Self::Future {
        async move {
            let (peer, inner) = self.noise.upgrade_inbound(socket, info).await?;
            let recording = self.recordings.open(peer, Direction::Inbound)?;
            Ok((peer, Recorded { inner, recording }))
        }
        .boxed()
    }
}

impl<T> OutboundConnectionUpgrade<T> for RecordingNoise
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Output = (PeerId, Recorded<noise::Output<T>>);
    type Error = noise::Error;
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_outbound(self, socket: T, info: Self::Info) -> Self::Future {
        async move {
            let (peer, inner) = self.noise.upgrade_outbound(socket, info).await?;
            let recording = self.recordings.open(peer, Direction::Outbound)?;
            Ok((peer, Recorded { inner, recording }))
        }
        .boxed()
    }
}

/// TCP, Noise (recorded into `recordings`) and yamux, upgraded as the
/// node's TCP transport is (with its prologue); for
/// `SwarmBuilder::with_other_transport`.
pub fn recording_transport(
    key: &Keypair,
    recordings: &Recordings,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    let (key, recordings) = (key.clone(), recordings.clone());
    Ok(
        tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .and_then(move |io, endpoint| async move {
                let noise = kolokol::net::transport::noise_for(&key, &endpoint)?;
                let upgrade = RecordingNoise::new(noise, recordings);
                kolokol::net::transport::secure_with(io, endpoint, upgrade).await
            })
            .boxed(),
    )
}

/// Something the mirror saw at the level of its behaviours.
#[derive(Clone, Debug)]
pub enum Observed {
    /// A connection came up.
    Connected {
        /// The peer.
        peer: PeerId,
        /// Who dialed.
        direction: Direction,
        /// The peer's address on it.
        address: Multiaddr,
    },
    /// A connection went down.
    Closed {
        /// The peer.
        peer: PeerId,
    },
    /// The peer's identify.
    Identify {
        /// The peer.
        peer: PeerId,
        /// Its agent string.
        agent: String,
        /// Its protocol version string.
        protocol_version: String,
        /// The addresses it says it listens on.
        listen_addrs: Vec<Multiaddr>,
        /// The protocols it says it speaks.
        protocols: Vec<String>,
        /// Our address as it saw it.
        observed: Multiaddr,
    },
    /// The peer subscribed to a gossip topic (its hash, which for an
    /// `IdentTopic` is the topic's name).
    Subscribed {
        /// The peer.
        peer: PeerId,
        /// The topic hash.
        topic: String,
    },
    /// The peer left a gossip topic.
    Unsubscribed {
        /// The peer.
        peer: PeerId,
        /// The topic hash.
        topic: String,
    },
    /// A gossip message, from the peer that forwarded it.
    Gossip {
        /// The forwarder.
        peer: PeerId,
        /// The topic hash.
        topic: String,
        /// The message's data.
        data: Vec<u8>,
    },
    /// A Kademlia request (libp2p's event names no peer or key; the key
    /// is in the recording).
    Kad {
        /// The request, as libp2p's `Debug` prints it.
        request: String,
    },
    /// A fetch request, decoded.
    Fetch {
        /// The asker.
        peer: PeerId,
        /// The request.
        request: FetchRequest,
    },
    /// A catch-up request, decoded.
    Sync {
        /// The asker.
        peer: PeerId,
        /// The request.
        request: SyncRequest,
    },
    /// The mirror dialed an address the peer listed in identify.
    DialBack {
        /// The peer whose address it was.
        peer: PeerId,
        /// The address.
        address: Multiaddr,
        /// Whether a connection came up, or why not.
        outcome: Result<PeerId, String>,
    },
    /// Anything an extra behaviour's handler logs.
    Other {
        /// The peer, if one.
        peer: Option<PeerId>,
        /// What happened.
        what: String,
    },
}

impl Observed {
    /// The peer the entry is about, if it names one.
    pub fn peer(&self) -> Option<PeerId> {
        match self {
            Observed::Connected { peer, .. }
            | Observed::Closed { peer }
            | Observed::Identify { peer, .. }
            | Observed::Subscribed { peer, .. }
            | Observed::Unsubscribed { peer, .. }
            | Observed::Gossip { peer, .. }
            | Observed::Fetch { peer, .. }
            | Observed::Sync { peer, .. }
            | Observed::DialBack { peer, .. } => Some(*peer),
            Observed::Other { peer, .. } => *peer,
            Observed::Kad { .. } => None,
        }
    }
}

#[derive(Default)]
struct LogInner {
    entries: Vec<Observed>,
    dropped: u64,
}

/// What the mirror saw, in order: the first [`MAX_EVENTS`] entries.
#[derive(Clone, Default)]
pub struct EventLog {
    inner: Arc<Mutex<LogInner>>,
}

impl EventLog {
    /// Appends an entry, or counts it past [`MAX_EVENTS`].
    pub fn push(&self, entry: Observed) {
        let mut log = lock(&self.inner);
        if log.entries.len() < MAX_EVENTS {
            log.entries.push(entry);
        } else {
            log.dropped += 1;
        }
    }

    /// A copy of the entries.
    pub fn entries(&self) -> Vec<Observed> {
        lock(&self.inner).entries.clone()
    }

    /// Entries not kept for lack of room.
    pub fn dropped(&self) -> u64 {
        lock(&self.inner).dropped
    }

    /// Polls the log until `check` gives a value, panicking with `what`
    /// after `deadline`.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        deadline: Duration,
        mut check: impl FnMut(&[Observed]) -> Option<T>,
    ) -> T {
        tokio::time::timeout(deadline, async {
            loop {
                if let Some(v) = check(&lock(&self.inner).entries) {
                    return v;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "timed out waiting for {what}; the mirror saw {:#?}",
                self.entries()
            )
        })
    }
}

/// How the mirror answers fetch requests: `None` leaves the request
/// unanswered (its stream is dropped).
pub type FetchServer = Box<dyn FnMut(PeerId, &FetchRequest) -> Option<FetchResponse> + Send>;
/// How the mirror answers catch-up requests: `None` leaves the request
/// unanswered.
pub type SyncServer = Box<dyn FnMut(PeerId, &SyncRequest) -> Option<SyncResponse> + Send>;
/// What the mirror does with an event of its extra behaviour.
pub type ExtraHandler<X> =
    Box<dyn FnMut(&mut X, <X as NetworkBehaviour>::ToSwarm, &EventLog) + Send>;

/// The mirror's behaviours; `extra` is the slot for one more protocol.
#[derive(NetworkBehaviour)]
pub struct MirrorBehaviour<X: NetworkBehaviour> {
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub gossipsub: gossipsub::Behaviour,
    pub fetch: request_response::Behaviour<FetchCodec>,
    pub sync: request_response::Behaviour<SyncCodec>,
    pub extra: X,
}

/// How a [`HostileMirror`] is built.
pub struct MirrorConfig<X: NetworkBehaviour = dummy::Behaviour> {
    /// Its identity.
    pub key: Keypair,
    /// Gossip topics it subscribes to (names, as `wire::topic_name` gives).
    pub topics: Vec<String>,
    /// Its identify agent.
    pub agent: String,
    /// Gossipsub's heartbeat (the node's tests run 200 ms).
    pub heartbeat: Duration,
    /// Answers to fetch requests (default: `NotFound`).
    pub fetch: FetchServer,
    /// Answers to catch-up requests (default: `Refused`).
    pub sync: SyncServer,
    /// Whether to dial every address a peer lists in identify (at most
    /// [`MAX_DIAL_BACKS_PER_PEER`] a peer), logging [`Observed::DialBack`].
    /// A dial-back that gets through is a connection of its own, recorded
    /// as [`Direction::Outbound`].
    pub dial_back: bool,
    /// One more behaviour.
    pub extra: X,
    /// Its events' handler.
    pub on_extra: ExtraHandler<X>,
}

impl Default for MirrorConfig<dummy::Behaviour> {
    fn default() -> Self {
        Self {
            key: Keypair::generate_ed25519(),
            topics: Vec::new(),
            agent: format!("rust-libp2p/{}", env!("CARGO_PKG_VERSION")),
            heartbeat: Duration::from_millis(200),
            fetch: Box::new(|_, _| Some(FetchResponse::NotFound)),
            sync: Box::new(|_, _| Some(SyncResponse::Refused)),
            dial_back: false,
            extra: dummy::Behaviour,
            on_extra: Box::new(|_, e, _| match e {}),
        }
    }
}

impl<X: NetworkBehaviour> MirrorConfig<X> {
    /// The same configuration with `extra` as the extra behaviour and
    /// `on_extra` handling its events.
    pub fn with_extra<Y: NetworkBehaviour>(
        self,
        extra: Y,
        on_extra: impl FnMut(&mut Y, Y::ToSwarm, &EventLog) + Send + 'static,
    ) -> MirrorConfig<Y> {
        MirrorConfig {
            key: self.key,
            topics: self.topics,
            agent: self.agent,
            heartbeat: self.heartbeat,
            fetch: self.fetch,
            sync: self.sync,
            dial_back: self.dial_back,
            extra,
            on_extra: Box::new(on_extra),
        }
    }
}

type Command<X> = Box<dyn FnOnce(&mut Swarm<MirrorBehaviour<X>>) + Send>;

/// A mirror on 127.0.0.1 that records what its peers send; its task ends
/// when it is dropped.
pub struct HostileMirror<X: NetworkBehaviour = dummy::Behaviour> {
    /// Its peer id.
    pub peer_id: PeerId,
    /// Its TCP address, with `/p2p/<peer id>`.
    pub addr: Multiaddr,
    /// What each connection's peer sent it.
    pub recordings: Recordings,
    /// What it saw.
    pub log: EventLog,
    commands: mpsc::Sender<Command<X>>,
    task: tokio::task::JoinHandle<()>,
}

impl<X: NetworkBehaviour> Drop for HostileMirror<X> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<X> HostileMirror<X>
where
    X: NetworkBehaviour + Send + 'static,
    X::ToSwarm: std::fmt::Debug + Send,
{
    /// Builds the mirror, waits until it listens and runs it.
    pub async fn spawn(config: MirrorConfig<X>) -> Self {
        let recordings = Recordings::default();
        let log = EventLog::default();
        let MirrorConfig {
            key,
            topics,
            agent,
            heartbeat,
            fetch,
            sync,
            dial_back,
            extra,
            on_extra,
        } = config;
        let transport_recordings = recordings.clone();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_other_transport(|key| {
                recording_transport(key, &transport_recordings)
                    .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })
            })
            .expect("the recording transport")
            .with_behaviour(|key| behaviour(key, agent, heartbeat, extra))
            .expect("the mirror's behaviours")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        for t in &topics {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&IdentTopic::new(t))
                .expect("subscribe");
        }
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        let peer_id = *swarm.local_peer_id();
        let addr = addr.with(Protocol::P2p(peer_id));
        let (tx, rx) = mpsc::channel(COMMANDS);
        let task = tokio::spawn(
            Runner {
                swarm,
                log: log.clone(),
                fetch,
                sync,
                dial_back,
                on_extra,
                dialing_back: HashMap::new(),
                dialed_back: HashMap::new(),
            }
            .run(rx),
        );
        Self {
            peer_id,
            addr,
            recordings,
            log,
            commands: tx,
            task,
        }
    }

    /// Runs `f` on the swarm inside the mirror's task and gives back what
    /// it returns.
    pub async fn with_swarm<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Swarm<MirrorBehaviour<X>>) -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = oneshot::channel();
        let command: Command<X> = Box::new(move |swarm| {
            let _ = tx.send(f(swarm));
        });
        self.commands
            .send(command)
            .await
            .expect("the mirror's task runs");
        rx.await.expect("the mirror's task runs")
    }
}

fn behaviour<X: NetworkBehaviour>(
    key: &Keypair,
    agent: String,
    heartbeat: Duration,
    extra: X,
) -> Result<MirrorBehaviour<X>, Box<dyn std::error::Error + Send + Sync>> {
    let peer_id = key.public().to_peer_id();
    let gossip = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(heartbeat)
        .validation_mode(gossipsub::ValidationMode::Strict)
        .message_id_fn(|m: &gossipsub::Message| {
            MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
        })
        .max_transmit_size(wire::MAX_GOSSIP + 1024)
        .build()?;
    let mut kad = kad::Behaviour::with_config(
        peer_id,
        kad::store::MemoryStore::new(peer_id),
        kad::Config::new(StreamProtocol::new(wire::KAD_PROTOCOL)),
    );
    kad.set_mode(Some(kad::Mode::Server));
    Ok(MirrorBehaviour {
        identify: identify::Behaviour::new(
            identify::Config::new("/ipfs/id/1.0.0".into(), key.public()).with_agent_version(agent),
        ),
        ping: ping::Behaviour::default(),
        kad,
        gossipsub: gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossip,
        )?,
        fetch: request_response::Behaviour::with_codec(
            FetchCodec,
            [(
                StreamProtocol::new(wire::FETCH_PROTOCOL),
                ProtocolSupport::Full,
            )],
            request_response::Config::default(),
        ),
        sync: request_response::Behaviour::with_codec(
            SyncCodec::default(),
            [(
                StreamProtocol::new(wire::SYNC_PROTOCOL),
                ProtocolSupport::Full,
            )],
            request_response::Config::default(),
        ),
        extra,
    })
}

/// The mirror's task.
struct Runner<X: NetworkBehaviour> {
    swarm: Swarm<MirrorBehaviour<X>>,
    log: EventLog,
    fetch: FetchServer,
    sync: SyncServer,
    dial_back: bool,
    on_extra: ExtraHandler<X>,
    /// Dial-backs under way: the peer whose address it is, and the address.
    dialing_back: HashMap<ConnectionId, (PeerId, Multiaddr)>,
    /// Addresses dialed back, per peer.
    dialed_back: HashMap<PeerId, HashSet<Multiaddr>>,
}

impl<X> Runner<X>
where
    X: NetworkBehaviour,
    X::ToSwarm: std::fmt::Debug,
{
    async fn run(mut self, mut commands: mpsc::Receiver<Command<X>>) {
        loop {
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(f) => f(&mut self.swarm),
                    None => return,
                },
                event = self.swarm.select_next_some() => self.handle(event),
            }
        }
    }

    fn handle(&mut self, event: SwarmEvent<MirrorBehaviourEvent<X>>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if let Some((peer, address)) = self.dialing_back.remove(&connection_id) {
                    self.log.push(Observed::DialBack {
                        peer,
                        address,
                        outcome: Ok(peer_id),
                    });
                }
                self.log.push(Observed::Connected {
                    peer: peer_id,
                    direction: if endpoint.is_dialer() {
                        Direction::Outbound
                    } else {
                        Direction::Inbound
                    },
                    address: endpoint.get_remote_address().clone(),
                });
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
                if let Some((peer, address)) = self.dialing_back.remove(&connection_id) {
                    self.log.push(Observed::DialBack {
                        peer,
                        address,
                        outcome: Err(error.to_string()),
                    });
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, .. } => {
                self.log.push(Observed::Closed { peer: peer_id });
            }
            SwarmEvent::Behaviour(event) => self.behaviour_event(event),
            _ => {}
        }
    }

    fn behaviour_event(&mut self, event: MirrorBehaviourEvent<X>) {
        match event {
            MirrorBehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if self.dial_back {
                    self.dial_back(peer_id, &info.listen_addrs);
                }
                self.log.push(Observed::Identify {
                    peer: peer_id,
                    agent: info.agent_version,
                    protocol_version: info.protocol_version,
                    listen_addrs: info.listen_addrs,
                    protocols: info.protocols.iter().map(|p| p.to_string()).collect(),
                    observed: info.observed_addr,
                });
            }
            MirrorBehaviourEvent::Gossipsub(gossipsub::Event::Subscribed {
                peer_id,
                topic,
                ..
            }) => self.log.push(Observed::Subscribed {
                peer: peer_id,
                topic: topic.into_string(),
            }),
            MirrorBehaviourEvent::Gossipsub(gossipsub::Event::Unsubscribed { peer_id, topic }) => {
                self.log.push(Observed::Unsubscribed {
                    peer: peer_id,
                    topic: topic.into_string(),
                })
            }
            MirrorBehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message,
                ..
            }) => self.log.push(Observed::Gossip {
                peer: propagation_source,
                topic: message.topic.into_string(),
                data: message.data,
            }),
            MirrorBehaviourEvent::Kad(kad::Event::InboundRequest { request }) => {
                self.log.push(Observed::Kad {
                    request: format!("{request:?}"),
                })
            }
            MirrorBehaviourEvent::Fetch(request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) => {
                let answer = (self.fetch)(peer, &request);
                self.log.push(Observed::Fetch { peer, request });
                if let Some(answer) = answer {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .fetch
                        .send_response(channel, answer);
                }
            }
            MirrorBehaviourEvent::Sync(request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) => {
                let answer = (self.sync)(peer, &request);
                self.log.push(Observed::Sync { peer, request });
                if let Some(answer) = answer {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, answer);
                }
            }
            MirrorBehaviourEvent::Extra(event) => {
                (self.on_extra)(&mut self.swarm.behaviour_mut().extra, event, &self.log)
            }
            _ => {}
        }
    }

    /// Dials the addresses `peer` listed that were not dialed yet, within
    /// the per-peer bound.
    fn dial_back(&mut self, peer: PeerId, addrs: &[Multiaddr]) {
        let done = self.dialed_back.entry(peer).or_default();
        for addr in addrs {
            if done.len() >= MAX_DIAL_BACKS_PER_PEER || !done.insert(addr.clone()) {
                continue;
            }
            // By its id, which the mirror has from the connection: a
            // Kolokol node answers no dialer that does not name it.
            let opts = DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(libp2p::swarm::dial_opts::PeerCondition::Always)
                .build();
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    self.dialing_back.insert(id, (peer, addr.clone()));
                }
                Err(e) => self.log.push(Observed::DialBack {
                    peer,
                    address: addr.clone(),
                    outcome: Err(e.to_string()),
                }),
            }
        }
    }
}

/// Labelled byte strings to look for in a recording.
pub type Needles = Vec<(String, Vec<u8>)>;

/// The labels of the needles that occur in `recording`, in the needles'
/// order. An empty needle never matches.
pub fn find_needles<L: AsRef<str>>(recording: &[u8], needles: &[(L, Vec<u8>)]) -> Vec<String> {
    needles
        .iter()
        .filter(|(_, n)| contains(recording, n))
        .map(|(l, _)| l.as_ref().to_string())
        .collect()
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The forms in which `bytes` can travel, labelled `"<label> <form>"`:
/// raw, lowercase and uppercase hex, standard and URL-safe base64 without
/// padding, base58, and the raw first 8 bytes and the first 16 hex digits
/// (a short form still singles a 32-byte key out).
pub fn byte_forms(label: &str, bytes: &[u8]) -> Needles {
    let hex = hex::encode(bytes);
    let mut forms = vec![
        (format!("{label} raw"), bytes.to_vec()),
        (format!("{label} hex"), hex.clone().into_bytes()),
        (format!("{label} HEX"), hex.to_uppercase().into_bytes()),
        (
            format!("{label} base64"),
            base64(bytes, STANDARD).into_bytes(),
        ),
        (
            format!("{label} base64url"),
            base64(bytes, URL_SAFE).into_bytes(),
        ),
        (format!("{label} base58"), base58(bytes).into_bytes()),
    ];
    if bytes.len() > 8 {
        forms.push((format!("{label} raw[..8]"), bytes[..8].to_vec()));
        forms.push((format!("{label} hex[..16]"), hex.as_bytes()[..16].to_vec()));
    }
    forms
}

/// Every form of `publisher` that names it: its key's [`byte_forms`], its
/// gossip topic's name and gossipsub hashes (an `IdentTopic`'s hash is its
/// name, so it is one needle, `"<label> topic"`; a `Sha256Topic`'s differs),
/// and its DHT key [`wire::mirror_key`] in its forms.
pub fn publisher_needles(label: &str, publisher: &PublicKey) -> Needles {
    let mut needles = byte_forms(label, publisher.as_bytes());
    let topic = wire::topic_name(publisher);
    needles.push((format!("{label} topic"), topic.clone().into_bytes()));
    let ident = IdentTopic::new(topic.clone()).hash().into_string();
    if ident != topic {
        needles.push((format!("{label} topic hash"), ident.into_bytes()));
    }
    needles.push((
        format!("{label} topic sha256 hash"),
        Sha256Topic::new(topic).hash().into_string().into_bytes(),
    ));
    needles.extend(byte_forms(
        &format!("{label} mirror key"),
        &wire::mirror_key(publisher),
    ));
    needles
}

/// A base64 alphabet.
pub struct Alphabet(&'static [u8; 64]);
/// RFC 4648's standard alphabet.
pub const STANDARD: Alphabet =
    Alphabet(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
/// RFC 4648's URL-safe alphabet.
pub const URL_SAFE: Alphabet =
    Alphabet(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");

/// `bytes` in base64 without padding (a padded form only adds `=`).
pub fn base64(bytes: &[u8], alphabet: Alphabet) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(alphabet.0[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// `bytes` in base58 (Bitcoin's alphabet, as peer ids use).
pub fn base58(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut digits: Vec<u8> = Vec::new();
    for &b in bytes {
        let mut carry = b as u32;
        for d in &mut digits {
            carry += (*d as u32) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    std::iter::repeat_n('1', zeros)
        .chain(digits.iter().rev().map(|d| ALPHABET[*d as usize] as char))
        .collect()
}
