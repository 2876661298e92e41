//! Many peer ids from a few addresses try to take every connection slot of
//! a node (an eclipse), and a peer floods it with topic subscriptions:
//! real libp2p peers on loopback, each bound to its own 127.0.x.y address.
//! The per-address and per-subnet caps hold, the node still dials a mirror
//! and gets its story, a reserved peer still gets in, and an honest
//! subscription is never forgotten.

mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::net::{BoundTcp, DEADLINE, TestNode, memory_store, poll, spawn_on, wait_for};
use common::*;
use futures::StreamExt;
use kolokol::net::wire::{self, Announcement};
use kolokol::net::{MAX_PEER_TOPICS, NetConfig, NodeEvent};
use libp2p::core::transport::Transport;
use libp2p::gossipsub::{self, IdentTopic, MessageId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, ping};

/// A peer with `key` that dials from `ip`, and dials `target` again
/// whenever it is not connected, until the test ends. `up` holds the ids
/// of such peers connected now.
fn sybil(
    key: libp2p::identity::Keypair,
    ip: &str,
    target: Multiaddr,
    up: Arc<Mutex<HashSet<PeerId>>>,
) -> PeerId {
    let from: Ipv4Addr = ip.parse().unwrap();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            let key = key.clone();
            BoundTcp(from)
                .and_then(move |io, endpoint| kolokol::net::transport::secure(io, endpoint, key))
        })
        .unwrap()
        .with_behaviour(|_| ping::Behaviour::default())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let id = *swarm.local_peer_id();
    tokio::spawn(async move {
        let mut redial = tokio::time::interval(Duration::from_millis(300));
        loop {
            tokio::select! {
                _ = redial.tick() => {
                    if swarm.connected_peers().next().is_none() {
                        let _ = swarm.dial(target.clone());
                    }
                }
                e = swarm.select_next_some() => match e {
                    SwarmEvent::ConnectionEstablished { .. } => {
                        up.lock().unwrap().insert(id);
                    }
                    SwarmEvent::ConnectionClosed { num_established: 0, .. } => {
                        up.lock().unwrap().remove(&id);
                    }
                    _ => {}
                },
            }
        }
    });
    id
}

fn fresh() -> libp2p::identity::Keypair {
    libp2p::identity::Keypair::generate_ed25519()
}

/// The victim's connected peers among `ids`.
async fn connected(node: &TestNode, ids: &[PeerId]) -> usize {
    let status = node.node.status().await.unwrap();
    let peers: HashSet<String> = status.peers.into_iter().collect();
    ids.iter()
        .filter(|p| peers.contains(&p.to_string()))
        .count()
}

/// A counter's value in the metrics text, 0 when absent.
fn counter(metrics: &str, line_start: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_peer_ids_from_a_few_addresses_cannot_eclipse_a_node() {
    let p = Publisher::new(1);
    let (reserved_key, reserved_id) = {
        let k = libp2p::identity::Keypair::generate_ed25519();
        let id = k.public().to_peer_id();
        (k, id)
    };
    let victim_config = NetConfig {
        max_connections: 10,
        max_incoming: 6,
        max_outgoing: 4,
        max_incoming_per_address: 2,
        max_incoming_per_subnet: 3,
        reserved_peers: vec![reserved_id.to_string()],
        ..NetConfig::for_tests()
    };
    let mut victim = spawn_on(&[&p], memory_store(), victim_config).await;

    // 8 ids on 127.0.0.2, 4 on 127.0.0.3 (the same /24), and one on each
    // of 6 other /24s: 18 ids for 6 incoming slots.
    let up = Arc::new(Mutex::new(HashSet::new()));
    let (mut same_address, mut same_subnet, mut all) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..8 {
        let id = sybil(fresh(), "127.0.0.2", victim.addr.clone(), up.clone());
        same_address.push(id);
        same_subnet.push(id);
    }
    for _ in 0..4 {
        same_subnet.push(sybil(fresh(), "127.0.0.3", victim.addr.clone(), up.clone()));
    }
    all.extend(&same_subnet);
    for net in 1..=6 {
        all.push(sybil(
            fresh(),
            &format!("127.0.{net}.9"),
            victim.addr.clone(),
            up.clone(),
        ));
    }
    // The incoming slots fill up.
    poll("the incoming slots to fill", async || {
        (connected(&victim, &all).await >= 6).then_some(())
    })
    .await;
    // Let the flood go on (every refused id dials again) and look at
    // what holds, several times.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let from_address = connected(&victim, &same_address).await;
        let from_subnet = connected(&victim, &same_subnet).await;
        let incoming = connected(&victim, &all).await;
        assert!(from_address <= 2, "{from_address} from one address");
        assert!(from_subnet <= 3, "{from_subnet} from one /24");
        assert!(incoming <= 6, "{incoming} incoming");
    }
    let metrics = victim.node.metrics().await.unwrap();
    let per_address = counter(
        &metrics,
        "kolokol_connections_denied_total{reason=\"per_address\"}",
    );
    let per_subnet = counter(
        &metrics,
        "kolokol_connections_denied_total{reason=\"per_subnet\"}",
    );
    let incoming = counter(
        &metrics,
        "kolokol_connections_denied_total{reason=\"incoming\"}",
    );
    println!(
        "18 ids from 8 addresses: {} connected; refused {per_address} per address, \
         {per_subnet} per subnet, {incoming} over the incoming cap",
        connected(&victim, &all).await
    );
    assert!(
        per_address > 0.0 && per_subnet > 0.0 && incoming > 0.0,
        "{metrics}"
    );

    // While flooded, the node dials a mirror (outgoing room is its own)
    // and gets the story the mirror holds.
    let mirror = spawn_on(&[&p], memory_store(), NetConfig::for_tests()).await;
    let (file, story) = bundle_file(&p, 1);
    mirror.node.publish(file).await.unwrap();
    victim.node.dial(mirror.addr.clone()).await.unwrap();
    wait_for(
        &mut victim.events,
        "the mirror's story while flooded",
        |e| *e == NodeEvent::Stored(story),
    )
    .await;

    // A reserved peer dialing in from a fresh subnet gets in though the
    // incoming slots are full.
    sybil(reserved_key, "127.0.9.1", victim.addr.clone(), up.clone());
    poll("the reserved peer to get in", async || {
        (connected(&victim, &[reserved_id]).await == 1).then_some(())
    })
    .await;
    assert!(connected(&victim, &all).await <= 6);
    for n in [&victim.node, &mirror.node] {
        n.shutdown().await.unwrap();
    }
}

/// Builds a signed, not yet published, bundle file and its id.
fn bundle_file(
    p: &Publisher,
    seq: u64,
) -> (kolokol::proto::bundle::BundleFile, kolokol::proto::BundleId) {
    let file = p.bundle_file(seq, format!("story {seq}").as_bytes());
    let id = kolokol::proto::BundleId::of(&file.manifest);
    (file, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_flooding_subscriptions_cannot_make_the_node_forget_an_honest_one() {
    let p = Publisher::new(1);
    let node = spawn_on(&[&p], memory_store(), NetConfig::for_tests()).await;
    let topic = IdentTopic::new(wire::topic_name(&p.public()));

    // The flooding peer: real gossipsub, which takes any topic.
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(kolokol::net::transport::tcp_only)
        .unwrap()
        .with_behaviour(|key| {
            let config = gossipsub::ConfigBuilder::default()
                .heartbeat_interval(Duration::from_millis(200))
                .message_id_fn(|m: &gossipsub::Message| {
                    MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
                })
                .max_transmit_size(1024 * 1024)
                .build()
                .unwrap();
            gossipsub::Behaviour::<
                gossipsub::IdentityTransform,
                gossipsub::AllowAllSubscriptionFilter,
            >::new(gossipsub::MessageAuthenticity::Signed(key.clone()), config)
            .unwrap()
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    // It follows the publisher's topic honestly first.
    swarm.behaviour_mut().subscribe(&topic).unwrap();
    swarm.dial(node.addr.clone()).unwrap();
    let node_id = node.node.peer_id();
    let flood = async move {
        let mut sent = false;
        loop {
            match tokio::time::timeout(Duration::from_millis(100), swarm.select_next_some()).await {
                Ok(SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. })) => {
                    return message;
                }
                Ok(SwarmEvent::Behaviour(gossipsub::Event::Subscribed { peer_id, .. }))
                    if peer_id == node_id && !sent =>
                {
                    sent = true;
                    // Then topics of the right shape past the bound, and
                    // long junk strings.
                    for n in 0..(MAX_PEER_TOPICS as u32 + 100) {
                        let t = IdentTopic::new(format!("kolokol/v1/publisher/{n:064x}"));
                        swarm.behaviour_mut().subscribe(&t).unwrap();
                    }
                    for n in 0..50 {
                        let t = IdentTopic::new(format!("{n}{}", "junk".repeat(2000)));
                        swarm.behaviour_mut().subscribe(&t).unwrap();
                    }
                }
                _ => {}
            }
        }
    };
    // An honest peer on the same node.
    let mut honest = spawn_on(&[&p], memory_store(), NetConfig::for_tests()).await;
    common::net::connect(&mut honest, &node).await;

    let flooder = tokio::spawn(async move { tokio::time::timeout(DEADLINE, flood).await });
    // Once the flood has been recorded as far as it goes...
    poll("the flood to reach the bound", async || {
        let m = node.node.metrics().await.unwrap();
        (counter(&m, "kolokol_peers_at_topic_bound_total") >= 1.0
            && counter(&m, "kolokol_subscriptions_dropped_total") >= 50.0)
            .then_some(())
    })
    .await;
    // ...a story published on the node reaches both peers over gossip:
    // neither subscription to the publisher's topic was forgotten.
    let (file, story) = bundle_file(&p, 1);
    node.node.publish(file).await.unwrap();
    wait_for(&mut honest.events, "the story at the honest peer", |e| {
        *e == NodeEvent::Stored(story)
    })
    .await;
    let message = flooder
        .await
        .unwrap()
        .expect("the flooding peer still gets the publisher's announcements");
    assert_eq!(message.topic, topic.hash());
    assert!(matches!(
        Announcement::decode(&message.data),
        Some(Announcement::Bundle { .. } | Announcement::Head { .. })
    ));
    for n in [&node, &honest] {
        n.node.shutdown().await.unwrap();
    }
}
