//! A peer that lies, speaking the real protocols: forged signatures, an
//! unknown publisher, an oversized message, a tampered blob, a response that
//! never ends, and no answer at all. Honest nodes refuse it, do not pass its
//! lies on, penalize it, keep working, and still get the real bundle from an
//! honest peer.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::net::{DEADLINE, connect, spawn, wait_for};
use common::*;
use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use kolokol::net::NodeEvent;
use kolokol::net::wire::{self, Announcement, FetchCodec, FetchRequest, FetchResponse};
use kolokol::proto::*;
use kolokol::store::Store;
use libp2p::gossipsub::{self, IdentTopic, MessageId};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm};
use tokio::time::timeout;

/// How the liar answers blob requests.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// With the right length and wrong bytes.
    Tampered,
    /// With a length prefix of 4 GiB, then bytes without end.
    Endless,
    /// Never.
    Silent,
}

/// The fetch codec, except that responses can lie about their length.
#[derive(Clone)]
struct LiarCodec {
    mode: Arc<Mutex<Mode>>,
}

impl request_response::Codec for LiarCodec {
    type Protocol = StreamProtocol;
    type Request = FetchRequest;
    type Response = FetchResponse;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<FetchRequest> {
        FetchCodec.read_request(p, io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<FetchResponse> {
        FetchCodec.read_response(p, io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
        r: FetchRequest,
    ) -> std::io::Result<()> {
        FetchCodec.write_request(p, io, r).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
        r: FetchResponse,
    ) -> std::io::Result<()> {
        let mode = *self.mode.lock().unwrap();
        if mode == Mode::Endless {
            io.write_all(&u32::MAX.to_le_bytes()).await?;
            let junk = vec![0x55u8; 64 * 1024];
            loop {
                io.write_all(&junk).await?;
            }
        }
        FetchCodec.write_response(p, io, r).await
    }
}

#[derive(NetworkBehaviour)]
struct LiarBehaviour {
    gossipsub: gossipsub::Behaviour,
    fetch: request_response::Behaviour<LiarCodec>,
}

struct Liar {
    swarm: Swarm<LiarBehaviour>,
    mode: Arc<Mutex<Mode>>,
    held: Vec<request_response::ResponseChannel<FetchResponse>>,
    blobs: std::collections::HashMap<BlobHash, Vec<u8>>,
}

impl Liar {
    fn new(mode: Mode) -> Self {
        let mode = Arc::new(Mutex::new(mode));
        let codec_mode = mode.clone();
        let swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_other_transport(kolokol::net::transport::tcp_only)
            .unwrap()
            .with_behaviour(|key| {
                let config = gossipsub::ConfigBuilder::default()
                    .heartbeat_interval(Duration::from_millis(200))
                    .message_id_fn(|m: &gossipsub::Message| {
                        MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
                    })
                    // It will send more than honest nodes accept.
                    .max_transmit_size(4 * 1024 * 1024)
                    .build()
                    .unwrap();
                LiarBehaviour {
                    gossipsub: gossipsub::Behaviour::new(
                        gossipsub::MessageAuthenticity::Signed(key.clone()),
                        config,
                    )
                    .unwrap(),
                    fetch: request_response::Behaviour::with_codec(
                        LiarCodec { mode: codec_mode },
                        [(
                            StreamProtocol::new(wire::FETCH_PROTOCOL),
                            ProtocolSupport::Full,
                        )],
                        request_response::Config::default(),
                    ),
                }
            })
            .unwrap()
            .build();
        Self {
            swarm,
            mode,
            held: Vec::new(),
            blobs: Default::default(),
        }
    }

    fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Runs the liar's event loop until `until` says stop, answering blob
    /// requests the way its mode says.
    async fn drive(&mut self, mut until: impl FnMut(&SwarmEvent<LiarBehaviourEvent>) -> bool) {
        timeout(DEADLINE, async {
            loop {
                let event = match self.swarm.select_next_some().await {
                    SwarmEvent::Behaviour(LiarBehaviourEvent::Fetch(
                        request_response::Event::Message {
                            message:
                                request_response::Message::Request {
                                    request: FetchRequest::Blob { hash, .. },
                                    channel,
                                    ..
                                },
                            ..
                        },
                    )) => {
                        let mode = *self.mode.lock().unwrap();
                        match mode {
                            Mode::Silent => self.held.push(channel),
                            Mode::Endless => {
                                let _ = self
                                    .swarm
                                    .behaviour_mut()
                                    .fetch
                                    .send_response(channel, FetchResponse::NotFound);
                            }
                            Mode::Tampered => {
                                let mut data = self.blobs.get(&hash).cloned().unwrap_or_default();
                                if let Some(b) = data.first_mut() {
                                    *b ^= 0xff;
                                }
                                let total = data.len() as u64;
                                data.truncate(wire::CHUNK as usize);
                                let _ = self.swarm.behaviour_mut().fetch.send_response(
                                    channel,
                                    FetchResponse::Chunk {
                                        total,
                                        offset: 0,
                                        data,
                                    },
                                );
                            }
                        }
                        continue;
                    }
                    other => other,
                };
                if until(&event) {
                    return;
                }
            }
        })
        .await
        .expect("the liar's expected event came");
    }

    /// Runs the liar's event loop for `time`, so what it queued is sent.
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
        self.drive(|e| matches!(e, SwarmEvent::Behaviour(LiarBehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { topic, .. })) if *topic == hash)).await;
    }

    fn publish(&mut self, topic: &IdentTopic, data: Vec<u8>) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic.clone(), data)
            .unwrap();
    }
}

/// A valid bundle of `p`, stored (not announced) at `holder`, and the
/// announcement a node would make of it.
fn real_bundle(p: &Publisher, seq: u64, holder: &Store) -> (BundleId, Vec<u8>, Vec<Vec<u8>>) {
    let image: Vec<u8> = (0..300 * 1024)
        .map(|i| (i * 13 + seq as usize) as u8)
        .collect();
    let mut s = story(p, seq, seq as u8, format!("<p>real {seq}</p>").as_bytes());
    s.published = now().minus(3600);
    s.blobs.push(image);
    let (manifest, blobs) = s.signed();
    let policy = p.policy();
    store_certificate(holder, p);
    let vb = policy
        .verify_bundle(
            policy.verify_manifest(&manifest, now()).unwrap(),
            blobs.clone(),
        )
        .unwrap();
    holder.ingest(&[vb]).unwrap();
    let ann = Announcement::Bundle {
        certificate: p.cert.clone(),
        manifest: manifest.clone(),
    }
    .encode();
    (BundleId::of(&manifest), ann, blobs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_nodes_refuse_a_liar_and_still_get_the_real_bundle() {
    let p = Publisher::new(1);
    let topic = IdentTopic::new(wire::topic_name(&p.public()));
    // h0 holds the real bundles; h1 is the target; h2 hears only h1.
    let h0 = spawn(&p).await;
    let mut h1 = spawn(&p).await;
    let mut h2 = spawn(&p).await;
    connect(&mut h1, &h0).await;
    connect(&mut h2, &h1).await;
    let mut h2_events = h2.node.events();

    let mut liar = Liar::new(Mode::Tampered);
    let liar_id = liar.peer_id();
    liar.connect_and_wait_subscribed(h1.addr.clone(), &topic)
        .await;

    // 1. A forged signature: the real certificate, a manifest signed by another key.
    let mut forged = p.manifest(50, b"<p>forged</p>", now().minus(60));
    forged.metadata.title = "Forged".into();
    let forged = forged.sign(&seed(99)).unwrap();
    liar.publish(
        &topic,
        Announcement::Bundle {
            certificate: p.cert.clone(),
            manifest: forged,
        }
        .encode(),
    );
    wait_for(&mut h1.events, "the forged announcement refused", |e| matches!(e, NodeEvent::Rejected { peer, reason } if *peer == liar_id && reason.contains("signature"))).await;

    // 2. An unknown publisher: ignored, never stored.
    let stranger = Publisher::new(70);
    let unknown = stranger.signed_manifest(1, b"<p>who?</p>", now().minus(60));
    liar.publish(
        &topic,
        Announcement::Bundle {
            certificate: stranger.cert.clone(),
            manifest: unknown.clone(),
        }
        .encode(),
    );

    // 3. An oversized message: dropped by gossip before we see it.
    liar.publish(&topic, vec![7u8; wire::MAX_GOSSIP + 10 * 1024]);

    // Gossip scoring now holds the first lie against this liar: a real
    // announcement from it is not even looked at (graylisted).
    let (graylisted, announcement, _) = real_bundle(&p, 9, &h0.store);
    liar.publish(&topic, announcement);
    liar.pump(Duration::from_secs(1)).await;

    // 4. A tampered blob, from a second liar: the announcement is real, the
    // bytes it serves are not.
    let mut liar = Liar::new(Mode::Tampered);
    let liar_id = liar.peer_id();
    liar.connect_and_wait_subscribed(h1.addr.clone(), &topic)
        .await;
    let (real, announcement, blobs) = real_bundle(&p, 1, &h0.store);
    for b in &blobs {
        liar.blobs.insert(BlobHash::of(b), b.clone());
    }
    liar.publish(&topic, announcement);
    let mut saw_tamper = false;
    let h1_events = &mut h1.events;
    let liar_task = async {
        liar.drive(|e| matches!(e, SwarmEvent::ConnectionClosed { .. }))
            .await;
    };
    let watch = async {
        wait_for(h1_events, "the real bundle at h1", |e| {
            if matches!(e, NodeEvent::Rejected { peer, reason } if *peer == liar_id && reason.contains("tampered")) {
                saw_tamper = true;
            }
            *e == NodeEvent::Stored(real)
        })
        .await;
    };
    tokio::join!(liar_task, watch);
    assert!(saw_tamper, "the tampered blob was noticed");
    // Penalized: disconnected and refused.
    let status = h1.node.status().await.unwrap();
    assert_eq!(status.banned, 1);
    assert!(!status.peers.contains(&liar_id.to_string()));
    // The real bundle went on to h2, through h1.
    wait_for(&mut h2.events, "the real bundle at h2", |e| {
        *e == NodeEvent::Stored(real)
    })
    .await;

    // 5. A response that never ends, and 6. a peer that never answers:
    // fresh liars, since the first one is refused now.
    for (seq, mode) in [(2u64, Mode::Endless), (3, Mode::Silent)] {
        let mut liar = Liar::new(mode);
        liar.connect_and_wait_subscribed(h1.addr.clone(), &topic)
            .await;
        let (real, announcement, _) = real_bundle(&p, seq, &h0.store);
        liar.publish(&topic, announcement);
        let h1_events = &mut h1.events;
        tokio::select! {
            _ = liar.drive(|_| false) => {}
            _ = wait_for(h1_events, "the real bundle despite the liar", |e| *e == NodeEvent::Stored(real)) => {}
        }
        assert!(h1.store.has_bundle(&real).unwrap(), "{mode:?}");
    }

    // Nothing false was stored, and nothing false reached h2.
    assert!(!h1.store.has_bundle(&BundleId::of(&unknown)).unwrap());
    assert!(
        !h1.store.has_bundle(&graylisted).unwrap(),
        "the penalized liar was not heard again"
    );
    assert_eq!(h1.store.totals().unwrap().bundles, 3);
    let mut forwarded_lies = 0;
    while let Ok(e) = h2_events.try_recv() {
        if matches!(e, NodeEvent::Rejected { .. }) {
            forwarded_lies += 1;
        }
    }
    assert_eq!(forwarded_lies, 0, "h1 passed on something h2 refused");
    // h1 keeps working.
    assert!(h1.node.status().await.unwrap().rejected >= 2);
}
