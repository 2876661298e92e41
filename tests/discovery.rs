//! Finding mirrors through Kademlia and reaching a node with no open port
//! through a mirror's relay: real nodes on 127.0.0.1.

mod common;

use std::sync::Arc;

use common::net::{DEADLINE, connect, memory_store, spawn_on, wait_for};
use common::*;
use kolokol::net::{NetConfig, NodeEvent};
use kolokol::proto::*;
use kolokol::store::Store;
use libp2p::multiaddr::Protocol;

/// A store holding one story of `p` (sequence 1) and its head.
fn store_with_story(p: &Publisher, n: u8) -> (Arc<Store>, BundleId) {
    let store = memory_store();
    let policy = p.policy();
    store_certificate(&store, p);
    let bundle = story(p, 1, n, format!("<p>Story of publisher {n}</p>").as_bytes()).verified();
    let id = bundle.id();
    store.ingest(&[bundle]).unwrap();
    let h = policy
        .verify_head(&p.head(1, T0.plus(3600)), now())
        .unwrap();
    store.record_head(&h).unwrap();
    (store, id)
}

fn mirror() -> NetConfig {
    NetConfig {
        mirror: true,
        ..NetConfig::for_tests()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_node_finds_a_second_mirror_through_the_dht() {
    let p1 = Publisher::new(1);
    let p2 = Publisher::new(11);
    // The first mirror carries only P1; the second carries both and holds
    // a story of P2. The second knows the first.
    let first = spawn_on(&[&p1], memory_store(), mirror()).await;
    let (store, story) = store_with_story(&p2, 2);
    let mut second = spawn_on(&[&p1, &p2], store, mirror()).await;
    connect(&mut second, &first).await;

    // A reader of P2 that knows only the first mirror.
    let mut reader = spawn_on(&[&p1, &p2], memory_store(), NetConfig::for_tests()).await;
    connect(&mut reader, &first).await;
    let second_id = second.node.peer_id();
    wait_for(
        &mut reader.events,
        "the story from the second mirror",
        |e| *e == NodeEvent::Stored(story),
    )
    .await;
    let status = reader.node.status().await.unwrap();
    assert!(
        status.peers.contains(&second_id.to_string()),
        "connected to the mirror found: {:?}",
        status.peers
    );
    assert!(reader.store.has_bundle(&story).unwrap());
    assert!(!first.store.has_bundle(&story).unwrap());
    for n in [&first, &second, &reader] {
        n.node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_no_open_port_is_reached_through_a_relay() {
    let p = Publisher::new(1);
    // The relay carries another publisher only: the story can reach the
    // reader through the circuit and no other way.
    let other = Publisher::new(21);
    let relay = spawn_on(&[&other], memory_store(), mirror()).await;
    // Listens on no address of its own: only through the relay.
    let (store, story) = store_with_story(&p, 3);
    let mut hidden = spawn_on(
        &[&p],
        store,
        NetConfig {
            listen: Some(vec![]),
            relays: vec![relay.addr.to_string()],
            ..NetConfig::for_tests()
        },
    )
    .await;
    let relayed = |l: &[libp2p::Multiaddr]| {
        !l.is_empty()
            && l.iter()
                .all(|a| a.iter().any(|p| p == Protocol::P2pCircuit))
    };
    let listeners = tokio::time::timeout(DEADLINE, async {
        loop {
            let l = hidden.node.listeners().await.unwrap();
            if relayed(&l) {
                return l;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a reservation on the relay");
    assert!(
        listeners
            .iter()
            .all(|a| a.iter().any(|p| p == Protocol::P2pCircuit)),
        "no direct address: {listeners:?}"
    );

    // Another node dials it by its relayed address and gets its story.
    let mut reader = spawn_on(&[&p], memory_store(), NetConfig::for_tests()).await;
    let addr = relay
        .addr
        .clone()
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(hidden.node.peer_id()));
    reader.node.dial(addr).await.unwrap();
    let hidden_id = hidden.node.peer_id();
    let (mut connected, mut stored) = (false, false);
    wait_for(&mut reader.events, "the hidden node's story", |e| {
        connected |= *e == NodeEvent::Connected(hidden_id);
        stored |= *e == NodeEvent::Stored(story);
        connected && stored
    })
    .await;
    assert!(reader.store.has_bundle(&story).unwrap());
    assert!(!relay.store.has_bundle(&story).unwrap());
    // And the other way: a story published by the reader reaches it.
    let (file, back) = common::story(&p, 2, 4, b"<p>Back the other way</p>")
        .bundle_file(vec![p.head(2, T0.plus(7200))]);
    reader.node.publish(file).await.unwrap();
    wait_for(&mut hidden.events, "the reader's story", |e| {
        *e == NodeEvent::Stored(back)
    })
    .await;
    for n in [&relay, &hidden, &reader] {
        n.node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_finds_itself_private_reserves_on_a_mirror_by_itself() {
    let p = Publisher::new(1);
    let other = Publisher::new(21);
    // Reachability is judged over loopback here; everywhere else only
    // over global addresses.
    let probing = |c: NetConfig| NetConfig {
        autonat_probe_secs: 1,
        autonat_global_only: false,
        ..c
    };
    let relay = spawn_on(&[&other], memory_store(), probing(mirror())).await;
    // No address of its own and no relay named: it connects to the mirror,
    // learns it cannot be dialed back, and listens through it.
    let (store, story) = store_with_story(&p, 5);
    let mut hidden = spawn_on(
        &[&p],
        store,
        probing(NetConfig {
            listen: Some(vec![]),
            ..NetConfig::for_tests()
        }),
    )
    .await;
    connect(&mut hidden, &relay).await;
    let circuit = tokio::time::timeout(DEADLINE, async {
        loop {
            let l = hidden.node.listeners().await.unwrap();
            if let Some(a) = l
                .iter()
                .find(|a| a.iter().any(|p| p == Protocol::P2pCircuit))
            {
                return a.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a reservation made after finding itself private");
    let status = hidden.node.status().await.unwrap();
    assert_eq!(status.reachability.as_deref(), Some("private"));

    // Reached at the relayed address it now listens on.
    let mut reader = spawn_on(&[&p], memory_store(), NetConfig::for_tests()).await;
    reader.node.dial(circuit).await.unwrap();
    wait_for(&mut reader.events, "the story through the relay", |e| {
        *e == NodeEvent::Stored(story)
    })
    .await;
    for n in [&relay, &hidden, &reader] {
        n.node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newsroom_report_lists_peers_and_mirrors_found_in_the_dht() {
    let p = Publisher::new(1);
    let other = Publisher::new(21);
    let mut newsroom = spawn_on(&[&p], memory_store(), NetConfig::for_tests()).await;
    let near = spawn_on(&[&p], memory_store(), mirror()).await;
    let mut far = spawn_on(&[&p], memory_store(), mirror()).await;
    // Carries another publisher only: it holds nothing of ours.
    let stranger = spawn_on(&[&other], memory_store(), NetConfig::for_tests()).await;
    connect(&mut newsroom, &near).await;
    connect(&mut far, &near).await;
    connect(&mut newsroom, &stranger).await;

    let (file, id) =
        common::story(&p, 1, 7, b"<p>Reported</p>").bundle_file(vec![p.head(1, T0.plus(3600))]);
    newsroom.node.publish(file).await.unwrap();
    wait_for(&mut far.events, "the story at the far mirror", |e| {
        *e == NodeEvent::Stored(id)
    })
    .await;

    let report = newsroom
        .node
        .report(
            p.public(),
            StoryId([7; 16]),
            std::time::Duration::from_secs(20),
        )
        .await
        .unwrap();
    let find = |peer: libp2p::PeerId| {
        report
            .iter()
            .find(|h| h.peer == peer.to_string())
            .unwrap_or_else(|| panic!("{peer} in {report:?}"))
    };
    for m in [&near, &far] {
        let h = find(m.node.peer_id());
        assert!(h.mirror, "{h:?}");
        assert_eq!(h.bundles, vec![id], "{h:?}");
        assert_eq!(h.error, None);
    }
    let s = find(stranger.node.peer_id());
    assert!(
        !s.mirror && s.bundles.is_empty() && s.error.is_some(),
        "{s:?}"
    );
    for n in [&newsroom, &near, &far, &stranger] {
        n.node.shutdown().await.unwrap();
    }
}
