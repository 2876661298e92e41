//! Hostile gossip from real libp2p peers: a flood of near-maximum messages
//! on topics the node does not follow, written straight onto gossipsub's
//! stream (an honest gossipsub never sends them), and forgeries of each
//! kind on the trusted publisher's topic. The node keeps none of the
//! flood, rejects every forgery, bans the forgers, and an honest bundle
//! still arrives.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::net::{DEADLINE, connect, poll, spawn, wait_for};
use common::*;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use kolokol::net::NodeEvent;
use kolokol::net::wire::{self, Announcement};
use kolokol::proto::*;
use libp2p::gossipsub::{self, IdentTopic, MessageId};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm};
use tokio::sync::Semaphore;
use tokio::time::timeout;

/// This process's resident memory now and at its peak (`VmRSS`, `VmHWM`).
fn rss() -> (usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib = |name: &str| -> usize {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
            * 1024
    };
    (kib("VmRSS:"), kib("VmHWM:"))
}

const MIB: usize = 1024 * 1024;

/// A flood to write: `count` messages of `size` bytes, each on a topic of
/// its own, signed by `key`.
#[derive(Clone)]
struct Flood {
    key: Keypair,
    count: u64,
    size: usize,
    /// One permit a frame: the test hands them out as the node reads.
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Flood {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Flood({} x {} bytes)", self.count, self.size)
    }
}

impl Flood {
    /// Message `n`'s frame, made when it is sent so the attacker holds
    /// one at a time.
    fn frame(&self, n: u64) -> Vec<u8> {
        let mut data = vec![0x5a; self.size];
        data[..8].copy_from_slice(&n.to_be_bytes());
        let topic = format!("random/{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        rpc_frame(&self.key, n + 1, &topic, &data)
    }
}

/// Writes gossipsub RPC frames as a "request" on gossipsub's own
/// protocol: the node's gossipsub reads them as it reads any peer's
/// stream. A peer gets five streams a connection, and a stream whose read
/// buffer holds more than one maximum message is dropped, so the frames
/// go one at a time on one stream, each once the node read the last.
#[derive(Clone, Default)]
struct RawRpc;

impl request_response::Codec for RawRpc {
    type Protocol = StreamProtocol;
    type Request = Flood;
    type Response = ();

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> std::io::Result<Flood> {
        Err(std::io::Error::other("sends only"))
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<()> {
        let mut sink = Vec::new();
        let _ = io.take(1024).read_to_end(&mut sink).await;
        Ok(())
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        flood: Flood,
    ) -> std::io::Result<()> {
        for n in 0..flood.count {
            flood
                .permits
                .acquire()
                .await
                .map_err(std::io::Error::other)?
                .forget();
            io.write_all(&flood.frame(n)).await?;
            io.flush().await?;
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

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn field(tag: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint((tag << 3) | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// One length-prefixed gossipsub RPC carrying one message on `topic`,
/// signed by `key` as strict validation wants.
fn rpc_frame(key: &Keypair, seqno: u64, topic: &str, data: &[u8]) -> Vec<u8> {
    let mut message = Vec::new();
    field(1, &key.public().to_peer_id().to_bytes(), &mut message);
    field(2, data, &mut message);
    field(3, &seqno.to_be_bytes(), &mut message);
    field(4, topic.as_bytes(), &mut message);
    let mut signed = b"libp2p-pubsub:".to_vec();
    signed.extend_from_slice(&message);
    field(5, &key.sign(&signed).unwrap(), &mut message);
    let mut rpc = Vec::new();
    field(2, &message, &mut rpc);
    let mut frame = Vec::new();
    varint(rpc.len() as u64, &mut frame);
    frame.extend_from_slice(&rpc);
    frame
}

#[derive(NetworkBehaviour)]
struct HostileBehaviour {
    gossipsub: gossipsub::Behaviour,
    raw: request_response::Behaviour<RawRpc>,
}

/// A real libp2p peer: an ordinary gossipsub, and a way to write any
/// gossipsub frame it likes.
struct Hostile {
    swarm: Swarm<HostileBehaviour>,
    key: Keypair,
}

impl Hostile {
    fn new() -> Self {
        let key = Keypair::generate_ed25519();
        let swarm = libp2p::SwarmBuilder::with_existing_identity(key.clone())
            .with_tokio()
            .with_other_transport(kolokol::net::transport::tcp_only)
            .unwrap()
            .with_behaviour(|key| HostileBehaviour {
                gossipsub: gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(key.clone()),
                    gossipsub::ConfigBuilder::default()
                        .heartbeat_interval(Duration::from_millis(200))
                        .message_id_fn(|m: &gossipsub::Message| {
                            MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
                        })
                        .max_transmit_size(4 * MIB)
                        .build()
                        .unwrap(),
                )
                .unwrap(),
                raw: request_response::Behaviour::with_codec(
                    RawRpc,
                    [(
                        StreamProtocol::new("/meshsub/1.1.0"),
                        ProtocolSupport::Outbound,
                    )],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(30)),
                ),
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        Self { swarm, key }
    }

    fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Runs the swarm until `until` says stop.
    async fn drive(&mut self, mut until: impl FnMut(&SwarmEvent<HostileBehaviourEvent>) -> bool) {
        timeout(DEADLINE, async {
            loop {
                let e = self.swarm.select_next_some().await;
                if until(&e) {
                    return;
                }
            }
        })
        .await
        .expect("the hostile peer's expected event came");
    }

    /// Runs the swarm for `time`.
    async fn pump(&mut self, time: Duration) {
        let _ = timeout(time, async {
            loop {
                self.swarm.select_next_some().await;
            }
        })
        .await;
    }

    async fn connect_and_wait_subscribed(&mut self, addr: Multiaddr, topic: &IdentTopic) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(topic)
            .unwrap();
        self.swarm.dial(addr).unwrap();
        let hash = topic.hash();
        self.drive(|e| matches!(e, SwarmEvent::Behaviour(HostileBehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { topic, .. })) if *topic == hash)).await;
    }

    /// Writes `flood` to `peer` on gossipsub's protocol and waits until
    /// the stream is done.
    async fn send_raw(&mut self, peer: PeerId, flood: Flood) {
        let id = self.swarm.behaviour_mut().raw.send_request(&peer, flood);
        self.drive(|e| match e {
            SwarmEvent::Behaviour(HostileBehaviourEvent::Raw(
                request_response::Event::Message {
                    message: request_response::Message::Response { request_id, .. },
                    ..
                }
                | request_response::Event::OutboundFailure { request_id, .. },
            )) => *request_id == id,
            _ => false,
        })
        .await;
    }

    fn publish(&mut self, topic: &IdentTopic, data: Vec<u8>) -> bool {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic.clone(), data)
            .is_ok()
    }
}

/// The node's metric `name` (0 when absent).
async fn metric(node: &kolokol::net::Network, name: &str) -> f64 {
    let text = node.metrics().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_on_topics_not_followed_is_not_kept_and_honest_stories_go_on() {
    let p = Publisher::new(1);
    let newsroom = spawn(&p).await;
    let mut target = spawn(&p).await;
    connect(&mut target, &newsroom).await;
    let target_id = target.node.peer_id();

    // It subscribes to nothing: its own gossipsub stays quiet, so the
    // stream it writes by hand is the one the node reads from it.
    let mut hostile = Hostile::new();
    hostile.swarm.dial(target.addr.clone()).unwrap();
    hostile
        .drive(|e| matches!(e, SwarmEvent::ConnectionEstablished { .. }))
        .await;
    hostile.pump(Duration::from_millis(500)).await;

    // Near-maximum messages, each on a topic of its own.
    const MESSAGES: u64 = 1024;
    let permits = Arc::new(Semaphore::new(1));
    let flood = Flood {
        key: hostile.key.clone(),
        count: MESSAGES,
        size: wire::MAX_GOSSIP,
        permits: permits.clone(),
    };
    let sent_bytes = flood.frame(0).len() * MESSAGES as usize;
    let (baseline, peak_before) = rss();
    let started = Instant::now();
    let pace = async {
        let mut given = 1;
        while given < MESSAGES {
            let read = metric(&target.node, "kolokol_gossip_unfollowed_total").await as u64;
            if read + 1 > given {
                permits.add_permits((read + 1 - given) as usize);
                given = read + 1;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::join!(hostile.send_raw(target_id, flood), pace);
    let flood_time = started.elapsed();
    let dropped = poll("every flooded message dropped", async || {
        let n = metric(&target.node, "kolokol_gossip_unfollowed_total").await;
        (n >= MESSAGES as f64).then_some(n)
    })
    .await;
    let (now_rss, peak_rss) = rss();
    let peak = peak_rss.saturating_sub(peak_before.max(baseline));
    let after = now_rss.saturating_sub(baseline);
    eprintln!(
        "flood: {MESSAGES} messages, {} MiB in {flood_time:?}; dropped {dropped}; \
         resident peak +{:.1} MiB, after +{:.1} MiB",
        sent_bytes / MIB,
        peak as f64 / MIB as f64,
        after as f64 / MIB as f64,
    );
    assert_eq!(dropped, MESSAGES as f64, "each dropped once, none let in");
    // Everything in this process counts: both peers' buffers in flight.
    // Kept by the node, the flood would be its whole size (64 MiB).
    assert!(
        peak < 16 * MIB,
        "the process held {peak} bytes more at its peak while {sent_bytes} were sent"
    );
    assert!(after < 8 * MIB, "{after} bytes more held after the flood");

    // Honest stories go on, to and through the flooded node.
    let (file, id) = story(&p, 1, 1, b"<p>Still here</p>").bundle_file(vec![]);
    newsroom.node.publish(file).await.unwrap();
    let events = &mut target.events;
    tokio::select! {
        _ = hostile.pump(DEADLINE) => {}
        _ = wait_for(events, "the honest story at the flooded node", |e| *e == NodeEvent::Stored(id)) => {}
    }
    assert!(target.store.has_bundle(&id).unwrap());
}

/// An announcement of a manifest.
fn bundle(certificate: &[u8], manifest: Vec<u8>) -> Vec<u8> {
    Announcement::Bundle {
        certificate: certificate.to_vec(),
        manifest,
    }
    .encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_forgery_is_rejected_and_forgers_are_banned() {
    let p = Publisher::new(1);
    let topic = IdentTopic::new(wire::topic_name(&p.public()));
    let newsroom = spawn(&p).await;
    let mut target = spawn(&p).await;
    connect(&mut target, &newsroom).await;

    let stranger = Publisher::new(70);
    // A second genuine certificate of the publisher, for another key.
    let signing2 = seed(60);
    let cert2 = certificate(&p.root, &signing2, 2, T0, T0.plus(30 * DAY), vec![]);
    // A certificate in the publisher's name, signed by another root.
    let false_cert = KeyCertificate {
        format: FORMAT_VERSION,
        publisher: p.public(),
        signing_key: seed(61).public(),
        serial: 3,
        not_before: T0,
        not_after: T0.plus(30 * DAY),
        scope: Scope::default(),
    }
    .sign(&seed(62))
    .unwrap();
    let forgery = |kind: usize, n: u64| -> (Vec<u8>, &'static str) {
        let body = format!("<p>forged {n}</p>");
        let mut m = p.manifest(100 + n, body.as_bytes(), now().minus(60));
        match kind {
            0 => (
                bundle(
                    &stranger.cert,
                    stranger.signed_manifest(n + 1, body.as_bytes(), now().minus(60)),
                ),
                "wrong_topic",
            ),
            1 => (
                bundle(
                    &stranger.cert,
                    p.signed_manifest(100 + n, body.as_bytes(), now().minus(60)),
                ),
                "wrong_topic",
            ),
            2 => (
                bundle(&false_cert, m.clone().sign(&seed(61)).unwrap()),
                "bad_signature",
            ),
            3 => (bundle(&p.cert, m.sign(&seed(99)).unwrap()), "bad_signature"),
            _ => {
                m.certificate = CertId::of(&cert2);
                (bundle(&p.cert, m.sign(&signing2).unwrap()), "not_attached")
            }
        }
    };
    let rejected = async |reason: &str| {
        metric(
            &target.node,
            &format!("kolokol_rejected_total{{reason=\"{reason}\"}}"),
        )
        .await
    };

    // Two forgers, each sending other kinds; gossip scoring graylists a
    // forger after two, and once its score decays the next one bans it.
    let mut banned = Vec::new();
    for kinds in [[0usize, 2, 4], [1, 3, 3]] {
        let mut forger = Hostile::new();
        let forger_id = forger.peer_id();
        forger
            .connect_and_wait_subscribed(target.addr.clone(), &topic)
            .await;
        for (i, kind) in kinds.into_iter().take(2).enumerate() {
            let (data, reason) = forgery(kind, i as u64);
            let before = rejected(reason).await;
            assert!(forger.publish(&topic, data));
            let events = &mut target.events;
            tokio::select! {
                _ = forger.pump(DEADLINE) => {}
                _ = wait_for(events, "the forgery rejected", |e| matches!(e, NodeEvent::Rejected { peer, .. } if *peer == forger_id)) => {}
            }
            assert_eq!(rejected(reason).await, before + 1.0, "{reason}");
        }
        // The third kind, sent again (fresh bytes each time) until the
        // graylist lets it through: it bans the forger.
        let reason = forgery(kinds[2], 0).1;
        let before = rejected(reason).await;
        let started = Instant::now();
        let mut n = 10;
        let target_id = target.node.peer_id();
        while forger.swarm.is_connected(&target_id) {
            assert!(started.elapsed() < DEADLINE, "the forger was never banned");
            n += 1;
            // Refused by its own gossipsub while the node's subscription
            // is not seen: it tries again.
            let _ = forger.publish(&topic, forgery(kinds[2], n).0);
            let _ = timeout(
                Duration::from_secs(1),
                forger.drive(|e| matches!(e, SwarmEvent::ConnectionClosed { .. })),
            )
            .await;
        }
        assert_eq!(rejected(reason).await, before + 1.0, "{reason}");
        banned.push(forger_id);
    }
    let status = poll("the forgers gone", async || {
        let s = target.node.status().await.unwrap();
        (!banned.iter().any(|id| s.peers.contains(&id.to_string()))).then_some(s)
    })
    .await;
    assert_eq!(status.banned, 2, "both forgers banned");
    for reason in ["wrong_topic", "bad_signature", "not_attached"] {
        assert!(rejected(reason).await >= 1.0, "{reason}");
    }
    // Nothing forged was stored.
    assert_eq!(target.store.totals().unwrap().bundles, 0);

    // An honest peer's bundle still arrives.
    let (file, id) = story(&p, 1, 1, b"<p>Real</p>").bundle_file(vec![]);
    newsroom.node.publish(file).await.unwrap();
    wait_for(&mut target.events, "the honest bundle", |e| {
        *e == NodeEvent::Stored(id)
    })
    .await;
}
