//! Catch-up between real nodes on 127.0.0.1: after being offline, between
//! halves, and the cost of it when there is nothing to catch up.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::net::{DEADLINE, TestNode, connect, memory_store, poll, spawn_on, wait_for};
use common::*;
use common::{numbered as version, numbered_head as head};
use futures::StreamExt;
use kolokol::net::wire::{PublisherState, SyncBundle, SyncCodec, SyncRequest, SyncResponse};
use kolokol::net::{NetConfig, NodeEvent};
use kolokol::proto::bundle::BundleFile;
use kolokol::proto::*;
use kolokol::store::{Store, StoreConfig};
use libp2p::StreamProtocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use tokio::time::timeout;

fn bundle_file(p: &Publisher, seq: u64) -> (BundleFile, BundleId) {
    version(p, seq, 200).bundle_file(vec![head(p, seq)])
}

/// Puts `seqs` and a head for `head_seq` straight into a store.
fn fill(store: &Store, p: &Publisher, seqs: impl Iterator<Item = u64>, head_seq: u64) {
    let mut policy = p.policy();
    store_certificate(store, p);
    let bundles: Vec<VerifiedBundle> = seqs.map(|s| version(p, s, 200).verified()).collect();
    for chunk in bundles.chunks(256) {
        store.ingest(chunk).unwrap();
    }
    let h = policy
        .verify_head(&head(p, head_seq), now().plus(DAY))
        .unwrap();
    store.record_head(&h).unwrap();
    policy.accept_head(h);
}

async fn wait_held(n: &TestNode, count: u64) {
    poll(&format!("{count} stories"), async || {
        let s = n.node.status().await.unwrap();
        (s.publishers.iter().map(|p| p.held).sum::<u64>() >= count).then_some(())
    })
    .await
}

fn quiet() -> NetConfig {
    NetConfig {
        // Catch-up only when a connection comes up, so counts are exact.
        sync_interval_secs: 3600,
        ..NetConfig::for_tests()
    }
}

/// A peer that answers catch-up summaries with the head for `head_seq`
/// and `ranges`, and bundle requests with `bundle` (a manifest and blobs).
async fn lying_peer(
    p: &Publisher,
    target: libp2p::Multiaddr,
    head_seq: u64,
    ranges: Option<Vec<(u64, u64)>>,
    bundle: Option<(Vec<u8>, Vec<Vec<u8>>)>,
    cut_at: Option<u64>,
) -> tokio::task::JoinHandle<()> {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(kolokol::net::transport::tcp_only)
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                SyncCodec::default(),
                [(
                    StreamProtocol::new(kolokol::net::wire::SYNC_PROTOCOL),
                    ProtocolSupport::Full,
                )],
                request_response::Config::default(),
            )
        })
        .unwrap()
        .build();
    let publisher = p.public();
    let cert = p.cert.clone();
    let head = head(p, head_seq);
    swarm.dial(target).unwrap();
    tokio::spawn(async move {
        loop {
            let SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) = swarm.select_next_some().await
            else {
                continue;
            };
            let response = match request {
                SyncRequest::Summary { .. } => SyncResponse::Summary {
                    publishers: vec![PublisherState {
                        publisher,
                        head: Some((cert.clone(), head.clone())),
                        revocations: vec![],
                        ranges: ranges.clone(),
                        more: None,
                    }],
                },
                SyncRequest::Bundles { .. } => SyncResponse::Bundles {
                    certificates: vec![cert.clone()],
                    bundles: bundle
                        .iter()
                        .map(|(m, b)| SyncBundle {
                            manifest: m.clone(),
                            blobs: Some(b.clone()),
                        })
                        .collect(),
                    cut_at,
                },
                SyncRequest::Holds { .. } => SyncResponse::Refused,
            };
            let _ = swarm.behaviour_mut().send_response(channel, response);
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_during_three_publications_catches_up_and_refuses_a_rollback() {
    let p = Publisher::new(1);
    let dir = tempfile::tempdir().unwrap();
    let open = || Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
    let mut newsroom = spawn_on(&[&p], memory_store(), quiet()).await;
    let mut reader = spawn_on(&[&p], open(), quiet()).await;
    connect(&mut reader, &newsroom).await;
    let (file, first) = bundle_file(&p, 1);
    newsroom.node.publish(file).await.unwrap();
    wait_for(&mut reader.events, "the first story", |e| {
        *e == NodeEvent::Stored(first)
    })
    .await;

    // The reader goes away; three stories are published meanwhile.
    reader.node.shutdown().await.unwrap();
    let TestNode { node, store, .. } = reader;
    drop(node);
    timeout(DEADLINE, async {
        while Arc::strong_count(&store) > 1 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the stopped node lets go of its store");
    drop(store);
    let mut missed = HashSet::new();
    for seq in 2..=4 {
        let (file, id) = bundle_file(&p, seq);
        newsroom.node.publish(file).await.unwrap();
        missed.insert(id);
    }

    // Back: it catches up from the newsroom when they connect.
    let mut reader = spawn_on(&[&p], open(), quiet()).await;
    connect(&mut newsroom, &reader).await;
    let mut pending = missed.clone();
    let mut head_seen = false;
    wait_for(
        &mut reader.events,
        "the three missed stories and the head",
        |e| {
            match e {
                NodeEvent::Stored(id) => {
                    pending.remove(id);
                }
                NodeEvent::Head { sequence: 4, .. } => head_seen = true,
                _ => {}
            }
            pending.is_empty() && head_seen
        },
    )
    .await;
    for id in &missed {
        assert!(reader.store.has_bundle(id).unwrap());
    }
    assert_eq!(reader.store.held_ranges(&p.public()).unwrap(), vec![(1, 4)]);

    // A peer offering an older head is refused; the newest stays.
    let _stale = lying_peer(&p, reader.addr.clone(), 2, None, None, None).await;
    wait_for(&mut reader.events, "the old head refused", |e| {
        matches!(e, NodeEvent::Rejected { reason, .. } if reason.contains("older than the trusted head"))
    })
    .await;
    let (_, h) = reader.store.head(&p.public()).unwrap().unwrap();
    assert_eq!(h.sequence, 4);
    let status = reader.node.status().await.unwrap();
    assert_eq!(status.publishers[0].head_sequence, Some(4));
    assert!(status.publishers[0].missing.is_empty());
    newsroom.node.shutdown().await.unwrap();
    reader.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_halves_of_1000_stories_make_a_whole_and_a_settled_pair_costs_little() {
    let p = Publisher::new(1);
    let odd = memory_store();
    let even = memory_store();
    fill(&odd, &p, (1..=1000).filter(|s| s % 2 == 1), 1000);
    fill(&even, &p, (1..=1000).filter(|s| s % 2 == 0), 1000);
    let mut a = spawn_on(&[&p], odd.clone(), quiet()).await;
    let b = spawn_on(&[&p], even.clone(), quiet()).await;
    connect(&mut a, &b).await;
    wait_held(&a, 1000).await;
    wait_held(&b, 1000).await;
    for store in [&odd, &even] {
        assert_eq!(store.held_ranges(&p.public()).unwrap(), vec![(1, 1000)]);
        assert!(store.missing(&p.public()).unwrap().is_empty());
    }
    let sa = a.node.status().await.unwrap().sync;
    let sb = b.node.status().await.unwrap().sync;
    println!("halves: {sa:?} / {sb:?}");
    // 500 stories each way in batches of at most 64, plus the summaries.
    assert!(sa.messages_sent <= 2 * (2 + 500usize.div_ceil(64) as u64 + 4));
    a.node.shutdown().await.unwrap();
    b.node.shutdown().await.unwrap();

    // The same two stores meet again: nothing to do, and it shows.
    let mut a = spawn_on(&[&p], odd.clone(), quiet()).await;
    let b = spawn_on(&[&p], even.clone(), quiet()).await;
    connect(&mut a, &b).await;
    let settled = |s: &kolokol::net::SyncTraffic| s.messages_sent >= 2 && s.messages_received >= 2;
    let (sa, sb) = timeout(DEADLINE, async {
        loop {
            let sa = a.node.status().await.unwrap().sync;
            let sb = b.node.status().await.unwrap().sync;
            if settled(&sa) && settled(&sb) {
                return (sa, sb);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("both sides exchange summaries");
    println!("settled: {sa:?} / {sb:?}");
    // One summary request and one response each way: four messages in
    // all, each a few hundred bytes, for 1,000 stories (or 100,000).
    for s in [sa, sb] {
        assert_eq!((s.messages_sent, s.messages_received), (2, 2), "{s:?}");
        assert!(s.bytes_sent + s.bytes_received < 1024, "{s:?}");
    }
    a.node.shutdown().await.unwrap();
    b.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_a_tampered_bundle_in_catch_up_is_banned() {
    let p = Publisher::new(1);
    let store = memory_store();
    fill(&store, &p, 1..=4, 4);
    let mut reader = spawn_on(&[&p], store.clone(), quiet()).await;
    // A real manifest for sequence 5, with a body that is not the one it
    // signed; and a real head for 5, so that the reader asks for it.
    let (manifest, mut blobs) = version(&p, 5, 200).signed();
    blobs[0][0] ^= 1;
    let id = BundleId::of(&manifest);
    let _liar = lying_peer(
        &p,
        reader.addr.clone(),
        5,
        Some(vec![(1, 5)]),
        Some((manifest, blobs)),
        None,
    )
    .await;
    wait_for(
        &mut reader.events,
        "the liar banned",
        |e| matches!(e, NodeEvent::Rejected { reason, .. } if reason.contains("catch-up blob")),
    )
    .await;
    assert!(!store.has_bundle(&id).unwrap());
    let status = reader.node.status().await.unwrap();
    assert_eq!(status.banned, 1);
    assert_eq!(status.publishers[0].head_sequence, Some(5));
    assert_eq!(status.publishers[0].missing, vec![(5, 5)]);
    reader.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_from_a_peer_under_an_upload_cap_completes_within_the_cap() {
    const RATE: u64 = 100 * 1024;
    const STORIES: u64 = 20;
    const LEN: usize = 20 * 1024;
    let p = Publisher::new(1);
    let full = memory_store();
    store_certificate(&full, &p);
    let bundles: Vec<VerifiedBundle> = (1..=STORIES)
        .map(|s| version(&p, s, LEN).verified())
        .collect();
    full.ingest(&bundles).unwrap();
    let policy = p.policy();
    let h = policy.verify_head(&head(&p, STORIES), now()).unwrap();
    full.record_head(&h).unwrap();
    let capped = spawn_on(
        &[&p],
        full,
        NetConfig {
            max_upload_bytes_per_sec: Some(RATE),
            ..quiet()
        },
    )
    .await;
    let mut fresh = spawn_on(&[&p], memory_store(), quiet()).await;
    let start = std::time::Instant::now();
    connect(&mut fresh, &capped).await;
    wait_held(&fresh, STORIES).await;
    let took = start.elapsed();
    // A full bucket holds one second of the rate; the rest waits for it.
    let least = (STORIES * LEN as u64 - RATE) as f64 / RATE as f64;
    assert!(
        took.as_secs_f64() >= least * 0.9,
        "{took:?} for {} bytes at {RATE}/s",
        STORIES * LEN as u64
    );
    capped.node.shutdown().await.unwrap();
    fresh.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_cuts_before_what_it_sent_is_banned() {
    let p = Publisher::new(1);
    let store = memory_store();
    fill(&store, &p, 1..=4, 4);
    let mut reader = spawn_on(&[&p], store.clone(), quiet()).await;
    // A real bundle for 5, and a cut at 5 too: "the rest from 5 did not
    // fit", which would have the same asked again without end.
    let (manifest, blobs) = version(&p, 5, 200).signed();
    let _liar = lying_peer(
        &p,
        reader.addr.clone(),
        5,
        Some(vec![(1, 5)]),
        Some((manifest, blobs)),
        Some(5),
    )
    .await;
    wait_for(&mut reader.events, "the liar banned", |e| {
        matches!(e, NodeEvent::Rejected { reason, .. } if reason.contains("cut before what it sent"))
    })
    .await;
    assert_eq!(reader.node.status().await.unwrap().banned, 1);
    reader.node.shutdown().await.unwrap();
}
