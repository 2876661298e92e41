//! A peer that hammers a mirror with blob and `Bundles` requests, speaking
//! the real protocols: it gets no more than its share of bytes a second,
//! while an honest reader still catches up promptly and gossip keeps
//! flowing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::net::{connect, memory_store, spawn_on, wait_for};
use common::*;
use futures::StreamExt;
use kolokol::net::wire::{
    self, FetchCodec, FetchRequest, FetchResponse, SyncCodec, SyncRequest, SyncResponse,
};
use kolokol::net::{NetConfig, NodeEvent};
use kolokol::proto::BlobHash;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, StreamProtocol};

/// The mirror's rate for each peer.
const RATE: u64 = 1024 * 1024;

#[derive(NetworkBehaviour)]
struct Hammer {
    fetch: request_response::Behaviour<FetchCodec>,
    sync: request_response::Behaviour<SyncCodec>,
}

/// What the hammering peer got.
#[derive(Default)]
struct Got {
    bytes: AtomicU64,
    refused: AtomicU64,
    answers: AtomicU64,
}

/// Dials `target` and keeps `blobs` blob requests and `batches` bundles
/// requests outstanding until `stop`, counting the blob bytes it gets.
fn hammer(
    target: Multiaddr,
    publisher: kolokol::proto::PublicKey,
    blob: (BlobHash, u64),
    sequences: Vec<u64>,
    got: Arc<Got>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(kolokol::net::transport::tcp_only)
        .unwrap()
        .with_behaviour(|_| Hammer {
            fetch: request_response::Behaviour::with_codec(
                FetchCodec,
                [(
                    StreamProtocol::new(wire::FETCH_PROTOCOL),
                    ProtocolSupport::Outbound,
                )],
                request_response::Config::default(),
            ),
            sync: request_response::Behaviour::with_codec(
                SyncCodec::default(),
                [(
                    StreamProtocol::new(wire::SYNC_PROTOCOL),
                    ProtocolSupport::Outbound,
                )],
                request_response::Config::default(),
            ),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let Some(libp2p::multiaddr::Protocol::P2p(peer)) = target.iter().last() else {
        panic!("the target names its peer")
    };
    swarm.dial(target).unwrap();
    tokio::spawn(async move {
        let (hash, size) = blob;
        let mut offset = 0u64;
        let (mut blobs, mut batches) = (0usize, 0usize);
        let mut connected = false;
        while !stop.load(Relaxed) {
            if connected {
                // 32 blob pieces and 8 batches in flight: far above any
                // honest node's requests.
                while blobs < 32 {
                    swarm
                        .behaviour_mut()
                        .fetch
                        .send_request(&peer, FetchRequest::Blob { hash, offset });
                    offset = (offset + wire::CHUNK) % size;
                    blobs += 1;
                }
                while batches < 8 {
                    swarm.behaviour_mut().sync.send_request(
                        &peer,
                        SyncRequest::Bundles {
                            publisher,
                            sequences: sequences.clone(),
                        },
                    );
                    batches += 1;
                }
            }
            let Ok(event) =
                tokio::time::timeout(Duration::from_millis(100), swarm.select_next_some()).await
            else {
                continue;
            };
            match event {
                SwarmEvent::ConnectionEstablished { .. } => connected = true,
                SwarmEvent::Behaviour(HammerEvent::Fetch(e)) => match e {
                    request_response::Event::Message {
                        message: request_response::Message::Response { response, .. },
                        ..
                    } => {
                        blobs -= 1;
                        got.answers.fetch_add(1, Relaxed);
                        match response {
                            FetchResponse::Chunk { data, .. } => {
                                got.bytes.fetch_add(data.len() as u64, Relaxed);
                            }
                            FetchResponse::NotFound => {
                                got.refused.fetch_add(1, Relaxed);
                            }
                            FetchResponse::Outboard { .. } => {}
                        }
                    }
                    request_response::Event::OutboundFailure { .. } => blobs -= 1,
                    _ => {}
                },
                SwarmEvent::Behaviour(HammerEvent::Sync(e)) => match e {
                    request_response::Event::Message {
                        message: request_response::Message::Response { response, .. },
                        ..
                    } => {
                        batches -= 1;
                        got.answers.fetch_add(1, Relaxed);
                        if let SyncResponse::Bundles { bundles, .. } = response {
                            let inline: u64 = bundles
                                .iter()
                                .flat_map(|b| b.blobs.iter().flatten())
                                .map(|b| b.len() as u64)
                                .sum();
                            if inline == 0 {
                                got.refused.fetch_add(1, Relaxed);
                            }
                            got.bytes.fetch_add(inline, Relaxed);
                        } else {
                            got.refused.fetch_add(1, Relaxed);
                        }
                    }
                    request_response::Event::OutboundFailure { .. } => batches -= 1,
                    _ => {}
                },
                _ => {}
            }
        }
    })
}

/// A body of `len` bytes, different for each `n`.
fn body(n: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31) ^ n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_hammering_for_blobs_and_bundles_gets_its_share_and_no_more() {
    let p = Publisher::new(1);
    // A large story fetched by pieces, and five small ones that travel
    // inline in a bundles response.
    let big = body(1, 1024 * 1024);
    let mut files = vec![p.bundle_file(1, &big)];
    for seq in 2..=6u64 {
        files.push(p.bundle_file(seq, &body(seq as u8, 200 * 1024)));
    }
    let mirror_config = NetConfig {
        max_upload_bytes_per_peer_per_sec: Some(RATE),
        ..NetConfig::for_tests()
    };
    let mirror = spawn_on(&[&p], memory_store(), mirror_config).await;
    let mut ids = Vec::new();
    for f in files {
        ids.push(mirror.node.publish(f).await.unwrap());
    }

    let got = Arc::new(Got::default());
    let stop = Arc::new(AtomicBool::new(false));
    let hammering = hammer(
        mirror.addr.clone(),
        p.public(),
        (BlobHash::of(&big), big.len() as u64),
        (2..=6).collect(),
        got.clone(),
        stop.clone(),
    );
    // Its first answers mark the start of the measure.
    common::net::poll("the first answers to the hammering peer", async || {
        (got.answers.load(Relaxed) > 0).then_some(())
    })
    .await;
    let start = Instant::now();
    let at_start = got.bytes.load(Relaxed);

    // An honest reader connects meanwhile and catches up on all six.
    let caught_up = Instant::now();
    let mut reader = spawn_on(&[&p], memory_store(), NetConfig::for_tests()).await;
    connect(&mut reader, &mirror).await;
    let mut pending: std::collections::HashSet<_> = ids.iter().copied().collect();
    wait_for(&mut reader.events, "the reader's catch-up", |e| {
        if let NodeEvent::Stored(id) = e {
            pending.remove(id);
        }
        pending.is_empty()
    })
    .await;
    let catch_up = caught_up.elapsed();

    // Gossip still flows: a new story reaches the reader.
    let published = Instant::now();
    let file = p.bundle_file(7, b"news while hammered");
    let id = mirror.node.publish(file).await.unwrap();
    wait_for(&mut reader.events, "the new story", |e| {
        *e == NodeEvent::Stored(id)
    })
    .await;
    let delivery = published.elapsed();

    // Keep hammering for a while so the measure covers seconds.
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(start.elapsed())).await;
    let secs = start.elapsed().as_secs_f64();
    let bytes = got.bytes.load(Relaxed) - at_start;
    stop.store(true, Relaxed);
    let _ = hammering.await;
    let refused = got.refused.load(Relaxed);
    let rate = bytes as f64 / secs;
    println!(
        "hammering peer: {bytes} bytes in {secs:.2} s ({:.0} KiB/s, its share {} KiB/s), \
         {refused} requests refused; honest catch-up of 2 MiB in {catch_up:?}, \
         gossip delivery in {delivery:?}",
        rate / 1024.0,
        RATE / 1024
    );
    // A bucket one second deep, and one answer of debt at most (a chunk,
    // or one inline bundle).
    let bound = RATE as f64 * (secs + 1.0) + 2.0 * wire::CHUNK as f64;
    assert!(
        (bytes as f64) <= bound,
        "{bytes} bytes in {secs:.2} s: over the share's bound of {bound:.0}"
    );
    assert!(bytes > 0, "the hammering peer still gets its share");
    assert!(refused > 0, "requests over the share are refused");
    assert!(
        catch_up < Duration::from_secs(20),
        "the honest catch-up took {catch_up:?}"
    );
    assert!(
        delivery < Duration::from_secs(10),
        "gossip took {delivery:?}"
    );
    let metrics = mirror.node.metrics().await.unwrap();
    assert!(
        metrics.contains("kolokol_serve_refused_total{reason=\"peer_rate\"}"),
        "refusals are counted: {metrics}"
    );
    for n in [&mirror, &reader] {
        n.node.shutdown().await.unwrap();
    }
}
