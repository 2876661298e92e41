//! A quiet reader, the default reader's node: it listens on loopback
//! only, refuses every request a peer sends it as the stream opens,
//! answers no DHT query, identifies as a generic libp2p program with no
//! addresses, and takes a new peer id at every start. A sharing reader
//! (`--share`) serves and keeps its id; a mirror answers the DHT.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use common::net::{DEADLINE, memory_store, spawn_on};
use common::process::NodeProcess;
use common::sockets::open_sockets;
use common::*;
use futures::StreamExt;
use kolokol::net::NetConfig;
use kolokol::net::wire::{self, FetchCodec, FetchRequest, PublisherQuery, SyncCodec, SyncRequest};
use kolokol::proto::{BlobHash, StoryId};
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify};
use tokio::time::timeout;

fn peer_id_of(data: &Path) -> String {
    let text = std::fs::read_to_string(data.join("node.toml")).unwrap();
    let file: kolokol::node::control::NodeFile = toml::from_str(&text).unwrap();
    file.peer_id
}

#[test]
fn a_quiet_reader_listens_on_loopback_only_and_a_sharing_one_everywhere() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("quiet");
    let mut quiet = NodeProcess::start_with(&data, &[]);
    let open = open_sockets(quiet.child.id());
    // Its libp2p listener, its control API and its gateway at least.
    assert!(open.len() >= 3, "{open:?}");
    for (table, local, ip) in &open {
        assert!(
            ip.is_loopback(),
            "a quiet reader takes traffic on {table} {local} ({ip})"
        );
    }
    eprintln!("a quiet reader's open sockets: {open:?}");
    assert!(quiet.terminate().success());
    let stdout = quiet.stdout();
    assert!(stdout.contains("This node is a quiet reader"), "{stdout}");
    assert!(stdout.contains("delete the data directory"), "{stdout}");

    // --share keeps the public defaults: TCP and QUIC 4001, WebSocket
    // 4443, on every interface. Only when those ports are free here.
    let free = std::net::TcpListener::bind("0.0.0.0:4001").is_ok()
        && std::net::TcpListener::bind("0.0.0.0:4443").is_ok()
        && std::net::UdpSocket::bind("0.0.0.0:4001").is_ok();
    if !free {
        eprintln!("ports 4001/4443 are taken on this machine: the --share half is skipped");
        return;
    }
    let data = dir.path().join("sharing");
    let mut sharing = NodeProcess::start_with(&data, &["--share"]);
    let open = open_sockets(sharing.child.id());
    let everywhere: HashSet<(String, String)> = open
        .iter()
        .filter(|(_, _, ip)| ip.is_unspecified())
        .map(|(t, l, _)| (t.clone(), l.clone()))
        .collect();
    for want in [("tcp", ":0FA1"), ("udp", ":0FA1"), ("tcp", ":115B")] {
        assert!(
            everywhere
                .iter()
                .any(|(t, l)| t == want.0 && l.ends_with(want.1)),
            "{want:?} missing from {open:?}"
        );
    }
    assert!(sharing.terminate().success());
}

#[test]
fn a_quiet_reader_takes_a_new_peer_id_at_every_start_a_sharing_one_keeps_its_own() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("quiet");
    let mut first = NodeProcess::start_with(&data, &[]);
    let a = peer_id_of(&data);
    assert!(first.terminate().success());
    let mut second = NodeProcess::start_with(&data, &[]);
    let b = peer_id_of(&data);
    assert!(second.terminate().success());
    assert_ne!(a, b, "a quiet reader's runs share a peer id");
    assert!(
        !data.join("node.key").exists(),
        "a quiet reader wrote an identity"
    );

    let data = dir.path().join("sharing");
    let args = ["--share", "--listen", "/ip4/127.0.0.1/tcp/0"];
    let mut first = NodeProcess::start_with(&data, &args);
    let a = peer_id_of(&data);
    assert!(first.terminate().success());
    let mut second = NodeProcess::start_with(&data, &args);
    let b = peer_id_of(&data);
    let status = common::process::ok(&data, &["status"]);
    assert!(second.terminate().success());
    assert_eq!(a, b);
    assert!(data.join("node.key").exists());
    assert!(status.contains("role:      sharing reader"), "{status}");
}

#[test]
fn a_quiet_reader_refuses_to_be_reachable_through_a_relay() {
    let dir = tempfile::TempDir::new().unwrap();
    let relay = format!("/ip4/127.0.0.1/tcp/1/p2p/{}", PeerId::random());
    let out = common::process::kolokol(dir.path(), &["node", "--no-gateway", "--relay", &relay]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("quiet reader") && err.contains("--share"),
        "{err}"
    );
}

// ---- a peer asking a quiet reader ----

/// A peer that asks: fetch and catch-up requests, identify, and a stream
/// opened under Kademlia's protocol name (the codec never runs against a
/// node that does not offer the protocol).
#[derive(NetworkBehaviour)]
struct Probe {
    identify: identify::Behaviour,
    fetch: request_response::Behaviour<FetchCodec>,
    sync: request_response::Behaviour<SyncCodec>,
    kad: request_response::Behaviour<FetchCodec>,
}

fn probe() -> Swarm<Probe> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(kolokol::net::transport::tcp_only)
        .unwrap()
        .with_behaviour(|key| {
            let out = |name: &'static str| [(StreamProtocol::new(name), ProtocolSupport::Outbound)];
            let config =
                request_response::Config::default().with_request_timeout(Duration::from_secs(20));
            Probe {
                identify: identify::Behaviour::new(identify::Config::new(
                    "/probe/1".into(),
                    key.public(),
                )),
                fetch: request_response::Behaviour::with_codec(
                    FetchCodec,
                    out(wire::FETCH_PROTOCOL),
                    config.clone(),
                ),
                sync: request_response::Behaviour::with_codec(
                    SyncCodec::default(),
                    out(wire::SYNC_PROTOCOL),
                    config.clone(),
                ),
                kad: request_response::Behaviour::with_codec(
                    FetchCodec,
                    out(wire::KAD_PROTOCOL),
                    config,
                ),
            }
        })
        .unwrap()
        .build()
}

/// What became of one request.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Answered, with the response's debug text.
    Answered(String),
    /// The node does not offer the protocol.
    Unsupported,
    /// Failed otherwise.
    Failed(String),
}

/// What a node told and answered the probe.
struct Asked {
    identify: identify::Info,
    outcomes: HashMap<&'static str, Outcome>,
}

/// Dials `target` and asks it for a blob, a blob at an offset, `Holds`,
/// a summary and bundles of `p`'s, and opens a Kademlia stream.
async fn ask(target: &Multiaddr, p: &Publisher, blob: BlobHash) -> Asked {
    let mut swarm = probe();
    let Some(libp2p::multiaddr::Protocol::P2p(peer)) = target.iter().last() else {
        panic!("{target} names no peer")
    };
    swarm.dial(target.clone()).unwrap();
    timeout(DEADLINE, async {
        let mut identify = None;
        // Request ids count per behaviour: keyed by behaviour too.
        let mut pending: HashMap<(&'static str, OutboundRequestId), &'static str> = HashMap::new();
        let mut outcomes = HashMap::new();
        let mut sent = false;
        loop {
            if sent
                && pending.is_empty()
                && let Some(identify) = identify.take()
            {
                return Asked { identify, outcomes };
            }
            let event = swarm.select_next_some().await;
            let (behaviour, e) = match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer && !sent => {
                    sent = true;
                    let b = swarm.behaviour_mut();
                    let blob_at = |offset| FetchRequest::Blob { hash: blob, offset };
                    let summary = SyncRequest::Summary {
                        publishers: vec![PublisherQuery {
                            publisher: p.public(),
                            head: 0,
                            revocations: [0; 32],
                            digest: [0; 32],
                            from: 0,
                        }],
                    };
                    let holds = SyncRequest::Holds {
                        publisher: p.public(),
                        story: StoryId([1; 16]),
                    };
                    let bundles = SyncRequest::Bundles {
                        publisher: p.public(),
                        sequences: vec![1],
                    };
                    for (what, request) in [("blob", 0), ("blob at an offset", 4)] {
                        let id = b.fetch.send_request(&peer, blob_at(request));
                        pending.insert(("fetch", id), what);
                    }
                    for (what, request) in
                        [("holds", holds), ("summary", summary), ("bundles", bundles)]
                    {
                        pending.insert(("sync", b.sync.send_request(&peer, request)), what);
                    }
                    pending.insert(("kad", b.kad.send_request(&peer, blob_at(0))), "kademlia");
                    continue;
                }
                SwarmEvent::Behaviour(ProbeEvent::Identify(identify::Event::Received {
                    peer_id,
                    info,
                    ..
                })) if peer_id == peer => {
                    identify = Some(info);
                    continue;
                }
                SwarmEvent::Behaviour(ProbeEvent::Fetch(e)) => ("fetch", outcome(e)),
                SwarmEvent::Behaviour(ProbeEvent::Kad(e)) => ("kad", outcome(e)),
                SwarmEvent::Behaviour(ProbeEvent::Sync(e)) => ("sync", outcome(e)),
                _ => continue,
            };
            if let Some((id, outcome)) = e
                && let Some(what) = pending.remove(&(behaviour, id))
            {
                outcomes.insert(what, outcome);
            }
        }
    })
    .await
    .expect("the node answered or refused every request in time")
}

fn outcome<Req, Resp: std::fmt::Debug>(
    e: request_response::Event<Req, Resp>,
) -> Option<(OutboundRequestId, Outcome)> {
    match e {
        request_response::Event::Message {
            message:
                request_response::Message::Response {
                    request_id,
                    response,
                },
            ..
        } => Some((request_id, Outcome::Answered(format!("{response:?}")))),
        request_response::Event::OutboundFailure {
            request_id,
            error: OutboundFailure::UnsupportedProtocols,
            ..
        } => Some((request_id, Outcome::Unsupported)),
        request_response::Event::OutboundFailure {
            request_id, error, ..
        } => Some((request_id, Outcome::Failed(error.to_string()))),
        _ => None,
    }
}

/// A store holding story 1 of `p`, and the hash of its body.
fn holding(p: &Publisher) -> (std::sync::Arc<kolokol::store::Store>, BlobHash) {
    let store = memory_store();
    store_certificate(&store, p);
    let body = b"<p>A story held here, long enough to read at an offset.</p>";
    store.ingest(&[story(p, 1, 1, body).verified()]).unwrap();
    (store, BlobHash::of(body))
}

const ASKED: [&str; 5] = ["blob", "blob at an offset", "holds", "summary", "bundles"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_reader_refuses_every_request_and_tells_nothing_of_itself() {
    let p = Publisher::new(1);
    let (store, blob) = holding(&p);
    let quiet = spawn_on(
        &[&p],
        store,
        NetConfig {
            share: false,
            ..NetConfig::for_tests()
        },
    )
    .await;
    let asked = ask(&quiet.addr, &p, blob).await;
    for what in ASKED.into_iter().chain(["kademlia"]) {
        assert_eq!(
            asked.outcomes.get(what),
            Some(&Outcome::Unsupported),
            "{what}: {:?}",
            asked.outcomes
        );
    }
    let info = &asked.identify;
    assert!(
        info.agent_version.starts_with("rust-libp2p/"),
        "{}",
        info.agent_version
    );
    assert!(
        !info.protocol_version.contains("kolokol"),
        "{}",
        info.protocol_version
    );
    assert!(info.listen_addrs.is_empty(), "{:?}", info.listen_addrs);
    for name in [
        wire::FETCH_PROTOCOL,
        wire::SYNC_PROTOCOL,
        wire::KAD_PROTOCOL,
    ] {
        assert!(
            !info.protocols.contains(&StreamProtocol::new(name)),
            "{name} offered: {:?}",
            info.protocols
        );
    }
    let status = quiet.node.status().await.unwrap();
    assert_eq!(status.role, kolokol::sync::Role::Quiet);
    assert_eq!(status.served_chunks, 0);
    quiet.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharing_reader_answers_the_same_requests_and_a_mirror_the_dht() {
    let p = Publisher::new(1);
    let (store, blob) = holding(&p);
    let sharing = spawn_on(&[&p], store, NetConfig::for_tests()).await;
    let asked = ask(&sharing.addr, &p, blob).await;
    for what in ASKED {
        assert!(
            matches!(asked.outcomes.get(what), Some(Outcome::Answered(_))),
            "{what}: {:?}",
            asked.outcomes
        );
    }
    let Some(Outcome::Answered(chunk)) = asked.outcomes.get("blob at an offset") else {
        unreachable!()
    };
    assert!(
        chunk.starts_with("Chunk") && chunk.contains("offset: 4"),
        "{chunk}"
    );
    // Serving or not, identify names no Kolokol; a sharing node tells
    // its addresses.
    assert!(
        asked.identify.agent_version.starts_with("rust-libp2p/"),
        "{}",
        asked.identify.agent_version
    );
    assert_eq!(asked.identify.protocol_version, "/ipfs/id/1.0.0");
    assert!(!asked.identify.listen_addrs.is_empty());
    sharing.node.shutdown().await.unwrap();

    // A mirror offers Kademlia: the stream opens (and the probe's bytes,
    // not a DHT message, are then refused).
    let (store, blob) = holding(&p);
    let mirror = spawn_on(
        &[&p],
        store,
        NetConfig {
            mirror: true,
            ..NetConfig::for_tests()
        },
    )
    .await;
    let asked = ask(&mirror.addr, &p, blob).await;
    assert!(
        !matches!(asked.outcomes.get("kademlia"), Some(Outcome::Unsupported)),
        "{:?}",
        asked.outcomes
    );
    assert!(
        asked
            .identify
            .protocols
            .contains(&StreamProtocol::new(wire::KAD_PROTOCOL))
    );
    mirror.node.shutdown().await.unwrap();
}

#[test]
fn where_a_node_listens_unless_told_follows_its_role() {
    let quiet = NetConfig::default();
    assert_eq!(quiet.listen_addresses(), kolokol::net::QUIET_LISTEN);
    assert!(!quiet.mdns);
    let sharing = NetConfig {
        share: true,
        ..NetConfig::default()
    };
    assert_eq!(sharing.listen_addresses(), kolokol::net::SERVING_LISTEN);
    let mirror = NetConfig {
        mirror: true,
        share: true,
        ..NetConfig::default()
    };
    assert_eq!(mirror.role(), kolokol::sync::Role::Mirror);
    assert_eq!(mirror.listen_addresses(), kolokol::net::SERVING_LISTEN);
    // Told: what it is told, nothing included.
    let nowhere = NetConfig {
        listen: Some(vec![]),
        ..sharing
    };
    assert!(nowhere.listen_addresses().is_empty());
}
