//! A hostile peer speaking the real protocols, running every attack of the
//! threat model at once against one node:
//!
//! - catch-up: it answers the node's summary request either with the
//!   amplified reply (millions of empty revocations within the size limit)
//!   or with a claim to hold every sequence number, then never answers the
//!   bundles requests that claim draws (it hogs fetch and catch-up slots);
//! - gossip: over raw gossipsub streams it streams near-maximal messages on
//!   random topics the node does not follow, and signed forgeries (a
//!   publisher the node does not trust) on the trusted publisher's topic;
//! - serving: it asks the node for bundles and blobs as fast as it may;
//! - connections: sybil identities from its own address take connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use kolokol::net::wire::{
    self, Announcement, FetchCodec, FetchRequest, FetchResponse, SyncCodec, SyncRequest,
};
use kolokol::proto::{BlobHash, PublicKey};
use libp2p::core::transport::Transport;
use libp2p::core::upgrade;
use libp2p::gossipsub::{self, MessageId};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, Codec, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, StreamProtocol, Swarm, noise, ping, yamux};
use rand::Rng;

use crate::common::Publisher;
use crate::common::net::BoundTcp;

/// Off-topic messages and forgeries sent per tick, and the tick.
const JUNK_PER_TICK: usize = 2;
const FORGERIES_PER_TICK: usize = 2;
const TICK: Duration = Duration::from_millis(100);
/// Bytes of one off-topic message: near the node's gossip limit.
const JUNK_BYTES: usize = 60 * 1024;
/// Catch-up requests it keeps unanswered at most (then they are dropped,
/// which resets their streams).
const HELD: usize = 512;
/// What the attackers did and what they got, summed over all of them.
#[derive(Default, Debug)]
pub(crate) struct Tally {
    /// Bytes the attackers wrote to the node.
    pub bytes_sent: AtomicU64,
    /// Bytes the node served them (bundles and blob chunks).
    pub bytes_served: AtomicU64,
    /// Connections of attackers and sybils that the node accepted.
    pub connected: AtomicU64,
    /// Connections the node refused or closed.
    pub closed: AtomicU64,
    /// Catch-up requests of the node left unanswered.
    pub stalled: AtomicU64,
    /// Amplified replies sent.
    pub amplified: AtomicU64,
}

/// Raw gossipsub: protobuf RPC frames written as they are, so that a
/// message can go to a topic the node never subscribed to.
#[derive(Clone, Default)]
struct RawGossip;

impl Codec for RawGossip {
    type Protocol = StreamProtocol;
    type Request = Vec<Vec<u8>>;
    type Response = ();

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> std::io::Result<Self::Request> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> std::io::Result<()> {
        Ok(())
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        frames: Self::Request,
    ) -> std::io::Result<()> {
        for frame in frames {
            let mut len = Vec::new();
            varint(&mut len, frame.len() as u64);
            io.write_all(&len).await?;
            io.write_all(&frame).await?;
        }
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: (),
    ) -> std::io::Result<()> {
        Ok(())
    }
}

/// Catch-up with raw responses: the hostile peer writes bytes no honest
/// encoder would produce.
#[derive(Clone, Default)]
struct RawSync;

impl Codec for RawSync {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<SyncRequest> {
        SyncCodec::default().read_request(p, io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        // Only counted: whatever the node serves, up to its own limit.
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let len = u64::from(u32::from_le_bytes(len));
        futures::io::copy(io.take(len), &mut futures::io::sink()).await?;
        Ok(len.to_le_bytes().to_vec())
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
        req: SyncRequest,
    ) -> std::io::Result<()> {
        SyncCodec::default().write_request(p, io, req).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> std::io::Result<()> {
        io.write_all(&(bytes.len() as u32).to_le_bytes()).await?;
        io.write_all(&bytes).await?;
        io.close().await
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    // Keeps the node's gossipsub handler enabled for this connection; it
    // follows nothing and publishes nothing itself.
    gossipsub: gossipsub::Behaviour,
    raw: request_response::Behaviour<RawGossip>,
    sync: request_response::Behaviour<RawSync>,
    fetch: request_response::Behaviour<FetchCodec>,
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    varint(out, number << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// One gossipsub RPC frame publishing `data` on `topic`, signed by `key`
/// as strict validation demands.
fn rpc(key: &Keypair, topic: &str, data: &[u8]) -> Vec<u8> {
    let from = key.public().to_peer_id().to_bytes();
    let seqno: [u8; 8] = rand::random();
    let mut message = Vec::with_capacity(data.len() + 200);
    field(&mut message, 1, &from);
    field(&mut message, 2, data);
    field(&mut message, 3, &seqno);
    field(&mut message, 4, topic.as_bytes());
    let mut signed = b"libp2p-pubsub:".to_vec();
    signed.extend_from_slice(&message);
    let signature = key.sign(&signed).unwrap_or_default();
    field(&mut message, 5, &signature);
    let mut frame = Vec::with_capacity(message.len() + 8);
    field(&mut frame, 2, &message);
    frame
}

/// A summary reply of `bytes` on the wire that decodes into millions of
/// empty revocations: one byte each on the wire.
fn amplified(publisher: &PublicKey, bytes: usize) -> Vec<u8> {
    let head = postcard::to_allocvec(publisher).unwrap_or_default();
    let tail_ranges = postcard::to_allocvec(&Some(vec![(1u64, 1_000_000u64)])).unwrap_or_default();
    let tail_more = postcard::to_allocvec(&None::<u64>).unwrap_or_default();
    let fixed = 2 + head.len() + 1 + 5 + tail_ranges.len() + tail_more.len();
    let n = bytes.saturating_sub(fixed);
    // Variant 0 (Summary), one publisher.
    let mut out = vec![0u8, 1];
    out.extend_from_slice(&head);
    out.push(0); // no head
    varint(&mut out, n as u64);
    out.resize(out.len() + n, 0);
    out.extend_from_slice(&tail_ranges);
    out.extend_from_slice(&tail_more);
    out
}

/// A claim to hold every sequence number of `publisher`, with nothing else.
fn greedy_summary(publisher: &PublicKey) -> Vec<u8> {
    let state = wire::PublisherState {
        publisher: *publisher,
        head: None,
        revocations: vec![],
        ranges: Some(vec![(1, 1_000_000)]),
        more: None,
    };
    postcard::to_allocvec(&wire::SyncResponse::Summary {
        publishers: vec![state],
    })
    .unwrap_or_default()
}

/// TCP dialing from `ip`, upgraded as libp2p's own.
fn bound(
    key: &Keypair,
    ip: [u8; 4],
) -> Result<
    libp2p::core::transport::Boxed<(libp2p::PeerId, libp2p::core::muxing::StreamMuxerBox)>,
    Box<dyn std::error::Error + Send + Sync>,
> {
    Ok(BoundTcp(ip.into())
        .upgrade(upgrade::Version::V1)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(|(p, m), _| (p, libp2p::core::muxing::StreamMuxerBox::new(m)))
        .boxed())
}

fn swarm_on(ip: [u8; 4]) -> Option<Swarm<Behaviour>> {
    let swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(|key| bound(key, ip))
        .ok()?
        .with_behaviour(|key| {
            let config = gossipsub::ConfigBuilder::default()
                .message_id_fn(|m: &gossipsub::Message| {
                    MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
                })
                .max_transmit_size(4 << 20)
                .build()
                .map_err(std::io::Error::other)?;
            let rr = request_response::Config::default()
                .with_request_timeout(Duration::from_secs(3600))
                .with_max_concurrent_streams(HELD * 2);
            Ok(Behaviour {
                gossipsub: gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(key.clone()),
                    config,
                )
                .map_err(std::io::Error::other)?,
                raw: request_response::Behaviour::with_codec(
                    RawGossip,
                    [(
                        StreamProtocol::new("/meshsub/1.1.0"),
                        ProtocolSupport::Outbound,
                    )],
                    request_response::Config::default(),
                ),
                sync: request_response::Behaviour::with_codec(
                    RawSync,
                    [(
                        StreamProtocol::new(wire::SYNC_PROTOCOL),
                        ProtocolSupport::Full,
                    )],
                    rr.clone(),
                ),
                fetch: request_response::Behaviour::with_codec(
                    FetchCodec,
                    [(
                        StreamProtocol::new(wire::FETCH_PROTOCOL),
                        ProtocolSupport::Full,
                    )],
                    rr,
                ),
            })
        })
        .ok()?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Some(swarm)
}

/// Aborts the sybils' tasks when the attacker's task ends or is dropped.
struct Sybils(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Sybils {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Runs one attacker from `ip` against `target` until the task is dropped.
/// Whenever the node bans or drops it, it comes back under a new identity,
/// as identities cost nothing.
pub(crate) async fn attack(
    ip: [u8; 4],
    target: Multiaddr,
    publisher: PublicKey,
    sybils: usize,
    tally: Arc<Tally>,
) {
    let _sybils = Sybils(
        (0..sybils)
            .map(|_| tokio::spawn(sybil(ip, target.clone(), tally.clone())))
            .collect(),
    );
    // Its own publisher: well-formed, signed objects from a key the node
    // does not trust, on the trusted publisher's topic.
    let forger = Publisher::new(rand::thread_rng().gen_range(100..200));
    let mut seq = 1u64;
    loop {
        session(ip, &target, publisher, &forger, &mut seq, &tally).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One identity's attack, until its connection ends or cannot be made.
async fn session(
    ip: [u8; 4],
    target: &Multiaddr,
    publisher: PublicKey,
    forger: &Publisher,
    seq: &mut u64,
    tally: &Tally,
) {
    let Some(mut swarm) = swarm_on(ip) else {
        return;
    };
    let key = Keypair::generate_ed25519();
    let topic = wire::topic_name(&publisher);
    let amplify = ip[2].is_multiple_of(2);
    let _ = swarm.dial(target.clone());
    let mut held = std::collections::VecDeque::new();
    let mut tick = tokio::time::interval(TICK);
    let mut node = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let Some(peer) = node else {
                    continue;
                };
                let mut frames = Vec::new();
                for _ in 0..JUNK_PER_TICK {
                    let mut junk = vec![0u8; JUNK_BYTES];
                    rand::thread_rng().fill(&mut junk[..]);
                    let t = format!("junk/{:016x}", rand::random::<u64>());
                    frames.push(rpc(&key, &t, &junk));
                }
                for _ in 0..FORGERIES_PER_TICK {
                    *seq += 1;
                    let manifest = forger.signed_manifest(*seq, b"forged", crate::common::now());
                    let a = Announcement::Bundle { certificate: forger.cert.clone(), manifest };
                    frames.push(rpc(&key, &topic, &a.encode()));
                }
                let sent: usize = frames.iter().map(Vec::len).sum();
                tally.bytes_sent.fetch_add(sent as u64, Relaxed);
                swarm.behaviour_mut().raw.send_request(&peer, frames);
                let b = swarm.behaviour_mut();
                b.sync.send_request(&peer, SyncRequest::Bundles {
                    publisher,
                    sequences: (1..=wire::MAX_SYNC_SEQS as u64).collect(),
                });
                b.fetch.send_request(&peer, FetchRequest::Blob {
                    hash: BlobHash::of(&rand::random::<[u8; 32]>()),
                    offset: 0,
                });
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    tally.connected.fetch_add(1, Relaxed);
                    node = Some(peer_id);
                }
                SwarmEvent::ConnectionClosed { num_established: 0, cause, endpoint, .. } => {
                    if std::env::var("KOLOKOL_BENCH_DEBUG").is_ok() {
                        eprintln!("attacker closed: {cause:?} {endpoint:?}");
                    }
                    tally.closed.fetch_add(1, Relaxed);
                    return;
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    if std::env::var("KOLOKOL_BENCH_DEBUG").is_ok() {
                        eprintln!("attacker dial: {error}");
                    }
                    tally.closed.fetch_add(1, Relaxed);
                    return;
                }
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                    message, ..
                })) => match message {
                    request_response::Message::Request { request, channel, .. } => match request {
                        SyncRequest::Summary { .. } if amplify => {
                            tally.amplified.fetch_add(1, Relaxed);
                            // As large as the node reads, so that it must decode it.
                            let reply = amplified(&publisher, wire::MAX_SYNC_RESPONSE - 64);
                            tally.bytes_sent.fetch_add(reply.len() as u64, Relaxed);
                            let _ = swarm.behaviour_mut().sync.send_response(channel, reply);
                        }
                        SyncRequest::Summary { .. } => {
                            let _ = swarm
                                .behaviour_mut()
                                .sync
                                .send_response(channel, greedy_summary(&publisher));
                        }
                        _ => {
                            tally.stalled.fetch_add(1, Relaxed);
                            held.push_back(channel);
                            if held.len() > HELD {
                                held.pop_front();
                            }
                        }
                    },
                    request_response::Message::Response { response, .. } => {
                        let len = response.get(..8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes);
                        tally.bytes_served.fetch_add(len, Relaxed);
                    }
                },
                SwarmEvent::Behaviour(BehaviourEvent::Fetch(request_response::Event::Message {
                    message, ..
                })) => match message {
                    request_response::Message::Request { .. } => {
                        // A blob request from the node: never answered.
                        tally.stalled.fetch_add(1, Relaxed);
                    }
                    request_response::Message::Response { response, .. } => {
                        if let FetchResponse::Chunk { data, .. } = response {
                            tally.bytes_served.fetch_add(data.len() as u64, Relaxed);
                        }
                    }
                },
                _ => {}
            }
        }
    }
}

#[derive(NetworkBehaviour)]
struct SybilBehaviour {
    ping: ping::Behaviour,
}

fn sybil_swarm(ip: [u8; 4]) -> Option<Swarm<SybilBehaviour>> {
    let swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(|key| bound(key, ip))
        .ok()?
        .with_behaviour(|_| SybilBehaviour {
            ping: ping::Behaviour::default(),
        })
        .ok()?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Some(swarm)
}

/// An identity that only holds a connection slot, from the attacker's IP.
async fn sybil(ip: [u8; 4], target: Multiaddr, tally: Arc<Tally>) {
    let Some(mut swarm) = sybil_swarm(ip) else {
        return;
    };
    let _ = swarm.dial(target.clone());
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::ConnectionEstablished { .. } => {
                tally.connected.fetch_add(1, Relaxed);
            }
            SwarmEvent::ConnectionClosed { .. } | SwarmEvent::OutgoingConnectionError { .. } => {
                tally.closed.fetch_add(1, Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = swarm.dial(target.clone());
            }
            _ => {}
        }
    }
}
