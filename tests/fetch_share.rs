//! Fair fetch shares between real nodes on 127.0.0.1: a peer that
//! announces many bundles and never answers gets only its share of the
//! fetch slots while an honest peer delivers every story, and a peer whose
//! first answer comes only after that fetch was given up and started again
//! is not banned for it.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::net::{DEADLINE, connect, memory_store, spawn_on};
use common::*;
use futures::StreamExt;
use kolokol::net::wire::{
    self, Announcement, FetchCodec, FetchRequest, FetchResponse, PublisherState, SyncBundle,
    SyncCodec, SyncRequest, SyncResponse,
};
use kolokol::net::{NetConfig, NodeEvent};
use kolokol::proto::*;
use kolokol::store::Store;
use libp2p::gossipsub::{self, IdentTopic, MessageId};
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{StreamProtocol, Swarm};
use tokio::time::timeout;

#[derive(NetworkBehaviour)]
struct PeerBehaviour {
    gossipsub: gossipsub::Behaviour,
    fetch: request_response::Behaviour<FetchCodec>,
    sync: request_response::Behaviour<SyncCodec>,
}

/// A peer speaking Kolokol's gossip, fetch and catch-up protocols, whose
/// answers the test decides.
fn peer_swarm() -> Swarm<PeerBehaviour> {
    let long = request_response::Config::default().with_request_timeout(Duration::from_secs(60));
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(kolokol::net::transport::tcp_only)
        .unwrap()
        .with_behaviour(|key| {
            let config = gossipsub::ConfigBuilder::default()
                .heartbeat_interval(Duration::from_millis(200))
                .message_id_fn(|m: &gossipsub::Message| {
                    MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
                })
                .build()
                .unwrap();
            PeerBehaviour {
                gossipsub: gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(key.clone()),
                    config,
                )
                .unwrap(),
                fetch: request_response::Behaviour::with_codec(
                    FetchCodec,
                    [(
                        StreamProtocol::new(wire::FETCH_PROTOCOL),
                        ProtocolSupport::Full,
                    )],
                    long.clone(),
                ),
                sync: request_response::Behaviour::with_codec(
                    SyncCodec::default(),
                    [(
                        StreamProtocol::new(wire::SYNC_PROTOCOL),
                        ProtocolSupport::Full,
                    )],
                    long,
                ),
            }
        })
        .unwrap()
        .build()
}

/// A story `seq` with an image too large to travel inline in catch-up: its
/// manifest and blobs.
fn large_story(p: &Publisher, seq: u64) -> (Vec<u8>, Vec<Vec<u8>>) {
    let image: Vec<u8> = (0..300 * 1024)
        .map(|i| (i * 7 + seq as usize) as u8)
        .collect();
    let mut s = story(p, seq, seq as u8, format!("<p>story {seq}</p>").as_bytes());
    s.published = now().minus(3600);
    s.blobs.push(image);
    s.signed()
}

/// Stores stories `1..=n` and a head for `n` at `holder`.
fn hold(p: &Publisher, n: u64, holder: &Store) -> Vec<(BundleId, Vec<u8>)> {
    let mut policy = p.policy();
    store_certificate(holder, p);
    let mut out = Vec::new();
    for seq in 1..=n {
        let (manifest, blobs) = large_story(p, seq);
        let vb = policy
            .verify_bundle(policy.verify_manifest(&manifest, now()).unwrap(), blobs)
            .unwrap();
        holder.ingest(&[vb]).unwrap();
        out.push((BundleId::of(&manifest), manifest));
    }
    let head = policy
        .verify_head(&p.head(n, now().minus(60)), now())
        .unwrap();
    holder.record_head(&head).unwrap();
    policy.accept_head(head);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_announces_much_and_never_answers_gets_only_its_share() {
    const STORIES: u64 = 12;
    let p = Publisher::new(1);
    let topic = IdentTopic::new(wire::topic_name(&p.public()));
    let config = NetConfig {
        max_fetches: 8,
        max_requests_per_peer: 2,
        request_timeout_secs: 2,
        sync_interval_secs: 2,
        ..NetConfig::for_tests()
    };
    // Two of eight slots per peer, two kept for catch-up.
    let share = (config.max_fetches / 4).max(1);
    let cap = config.max_requests_per_peer;
    // The honest peer holds every story (in its store before it starts).
    let store = memory_store();
    let stories = hold(&p, STORIES, &store);
    let honest = spawn_on(&[&p], store, NetConfig::for_tests()).await;
    let mut target = spawn_on(&[&p], memory_store(), config.clone()).await;

    // The hog connects, announces every story, and never answers.
    let mut hog = peer_swarm();
    hog.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
    hog.dial(target.addr.clone()).unwrap();
    let hash = topic.hash();
    timeout(DEADLINE, async {
        loop {
            if let SwarmEvent::Behaviour(PeerBehaviourEvent::Gossipsub(
                gossipsub::Event::Subscribed { topic, .. },
            )) = hog.select_next_some().await
                && topic == hash
            {
                return;
            }
        }
    })
    .await
    .expect("the target subscribes");
    for (_, manifest) in &stories {
        let ann = Announcement::Bundle {
            certificate: p.cert.clone(),
            manifest: manifest.clone(),
        };
        hog.behaviour_mut()
            .gossipsub
            .publish(topic.clone(), ann.encode())
            .unwrap();
    }
    connect(&mut target, &honest).await;

    let started = Instant::now();
    let mut held: Vec<ResponseChannel<FetchResponse>> = Vec::new();
    let mut arrivals: Vec<(Instant, BlobHash)> = Vec::new();
    let mut most_open = 0;
    let mut most_bundles = 0;
    let mut stored = 0;
    let mut missing: std::collections::HashSet<BundleId> =
        stories.iter().map(|(id, _)| *id).collect();
    // What the target still counts open at the hog: asked less than a
    // request timeout ago (less a margin for the loopback's delay).
    let window = Duration::from_secs(config.request_timeout_secs) - Duration::from_millis(250);
    let events = &mut target.events;
    timeout(DEADLINE, async {
        while !missing.is_empty() {
            tokio::select! {
                e = hog.select_next_some() => {
                    if let SwarmEvent::Behaviour(PeerBehaviourEvent::Fetch(
                        request_response::Event::Message {
                            message: request_response::Message::Request {
                                request, channel, ..
                            },
                            ..
                        },
                    )) = e
                    {
                        let hash = request.hash();
                        let now = Instant::now();
                        arrivals.push((now, hash));
                        arrivals.retain(|(t, _)| now.duration_since(*t) < window);
                        most_open = most_open.max(arrivals.len());
                        let mut bundles: Vec<BlobHash> = arrivals.iter().map(|a| a.1).collect();
                        bundles.sort_unstable_by_key(|h| h.0);
                        bundles.dedup();
                        most_bundles = most_bundles.max(bundles.len());
                        held.push(channel);
                    }
                }
                e = events.recv() => {
                    if let Ok(NodeEvent::Stored(id)) = e && missing.remove(&id) {
                        stored += 1;
                    }
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {stored} of {STORIES} stories arrived"));
    let took = started.elapsed();
    println!(
        "{STORIES} stories in {took:?}; the hog held at most {most_open} requests \
         ({most_bundles} bundles) at once, {} in all",
        held.len()
    );
    assert!(
        most_open <= cap,
        "the hog held {most_open} requests at once, over {cap}"
    );
    assert!(most_bundles <= share.max(cap));
    assert!(took < Duration::from_secs(30), "delivery took {took:?}");
    // The honest peer was never held against.
    let status = target.node.status().await.unwrap();
    assert!(status.peers.contains(&honest.node.peer_id().to_string()));
    assert_eq!(target.store.totals().unwrap().bundles, STORIES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_first_answer_after_the_fetch_started_again_bans_nobody() {
    let p = Publisher::new(1);
    let config = NetConfig {
        fetch_deadline_secs: 2,
        request_timeout_secs: 30,
        sync_interval_secs: 1,
        ..NetConfig::for_tests()
    };
    let mut target = spawn_on(&[&p], memory_store(), config).await;
    let (manifest, blobs) = large_story(&p, 1);
    let id = BundleId::of(&manifest);
    let by_hash: HashMap<BlobHash, Vec<u8>> =
        blobs.iter().map(|b| (BlobHash::of(b), b.clone())).collect();
    let body = BlobHash::of(&blobs[0]);
    let head = p.head(1, now().minus(60));
    let mut slow = peer_swarm();
    slow.dial(target.addr.clone()).unwrap();
    let chunk = |request: &FetchRequest| answer_fetch(&by_hash[&request.hash()], request);
    // The first request is held; it is answered only when the fetch,
    // given up and started again, asks for the image, and that request is
    // answered a little after, so the stale answer arrives first.
    let mut first: Option<(ResponseChannel<FetchResponse>, FetchRequest)> = None;
    let mut answered_late = false;
    let mut delayed: Vec<(
        tokio::time::Instant,
        ResponseChannel<FetchResponse>,
        FetchResponse,
    )> = Vec::new();
    let events = &mut target.events;
    let mut stored = false;
    let started = Instant::now();
    timeout(DEADLINE, async {
        while !stored {
            let next = delayed
                .iter()
                .map(|d| d.0)
                .min()
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                e = slow.select_next_some() => match e {
                    SwarmEvent::Behaviour(PeerBehaviourEvent::Sync(
                        request_response::Event::Message {
                            message: request_response::Message::Request { request, channel, .. },
                            ..
                        },
                    )) => {
                        let response = match request {
                            SyncRequest::Summary { .. } => SyncResponse::Summary {
                                publishers: vec![PublisherState {
                                    publisher: p.public(),
                                    head: Some((p.cert.clone(), head.clone())),
                                    revocations: vec![],
                                    ranges: Some(vec![(1, 1)]),
                                    more: None,
                                }],
                            },
                            SyncRequest::Bundles { .. } => SyncResponse::Bundles {
                                certificates: vec![p.cert.clone()],
                                bundles: vec![SyncBundle { manifest: manifest.clone(), blobs: None }],
                                cut_at: None,
                            },
                            SyncRequest::Holds { .. } => SyncResponse::Refused,
                        };
                        let _ = slow.behaviour_mut().sync.send_response(channel, response);
                    }
                    SwarmEvent::Behaviour(PeerBehaviourEvent::Fetch(
                        request_response::Event::Message {
                            message: request_response::Message::Request {
                                request, channel, ..
                            },
                            ..
                        },
                    )) => {
                        let hash = request.hash();
                        if first.is_none() && !answered_late {
                            assert_eq!(hash, body);
                            first = Some((channel, request));
                        } else if hash != body && let Some((late, asked)) = first.take() {
                            let _ = slow.behaviour_mut().fetch.send_response(late, chunk(&asked));
                            answered_late = true;
                            let at = tokio::time::Instant::now() + Duration::from_millis(300);
                            delayed.push((at, channel, chunk(&request)));
                        } else {
                            let response = chunk(&request);
                            let _ = slow.behaviour_mut().fetch.send_response(channel, response);
                        }
                    }
                    _ => {}
                },
                _ = tokio::time::sleep_until(next) => {
                    let now = tokio::time::Instant::now();
                    let (due, rest): (Vec<_>, Vec<_>) = delayed.drain(..).partition(|d| d.0 <= now);
                    delayed = rest;
                    for (_, channel, response) in due {
                        let _ = slow.behaviour_mut().fetch.send_response(channel, response);
                    }
                }
                e = events.recv() => {
                    match e {
                        Ok(NodeEvent::Stored(s)) if s == id => stored = true,
                        Ok(NodeEvent::Rejected { reason, .. }) => panic!("refused: {reason}"),
                        _ => {}
                    }
                }
            }
        }
    })
    .await
    .expect("the bundle arrives");
    assert!(
        answered_late,
        "the first answer came after the fetch started again"
    );
    println!("stored after {:?}", started.elapsed());
    let status = target.node.status().await.unwrap();
    assert_eq!(status.banned, 0, "the slow peer is not banned");
    assert!(status.peers.contains(&slow.local_peer_id().to_string()));
    assert!(target.store.has_bundle(&id).unwrap());
}
