//! The address book on real nodes (loopback, real libp2p): a reader whose
//! mirror is not there yet keeps dialing it on a back-off and gets
//! through soon after it comes up; a reader remembers the mirrors it met
//! across a restart and reaches one that is not in its configuration.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::net::{DEADLINE, TestNode, connect, memory_store, spawn_on, wait_for};
use common::*;
use kolokol::net::book::Source;
use kolokol::net::{NetConfig, Network, NodeEvent};
use kolokol::store::{Store, StoreConfig};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use tokio::time::timeout;

/// A quiet reader dialing `bootstrap`.
fn reader(bootstrap: Vec<String>) -> NetConfig {
    NetConfig {
        share: false,
        bootstrap,
        ..NetConfig::for_tests()
    }
}

/// A port free on loopback now (nothing listens there until a test
/// starts a node on it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A mirror with `key` listening at `port`, trusting `p`.
async fn mirror_at(p: &Publisher, key: libp2p::identity::Keypair, port: u16) -> Network {
    let store = Arc::new(Store::memory(StoreConfig::default()));
    let mut policy = bare_policy(p);
    store.load_trust(&mut policy, now()).unwrap();
    let config = NetConfig {
        listen: Some(vec![format!("/ip4/127.0.0.1/tcp/{port}")]),
        mirror: true,
        ..NetConfig::for_tests()
    };
    let node = Network::spawn(config, key, store, policy).await.unwrap();
    node.wait_listening(1, DEADLINE).await.unwrap();
    node
}

/// Stops `node` and waits until it has let go of its store, so that the
/// next run can open it.
async fn stopped(node: TestNode) {
    node.node.shutdown().await.unwrap();
    let TestNode { node, store, .. } = node;
    drop(node);
    timeout(DEADLINE, async {
        while Arc::strong_count(&store) > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the stopped node lets go of its store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_started_before_its_mirror_gets_through_once_the_mirror_is_up() {
    let p = Publisher::new(1);
    let key = libp2p::identity::Keypair::generate_ed25519();
    let mirror_id = key.public().to_peer_id();
    let port = free_port();
    let addr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{mirror_id}");
    let mut reader = spawn_on(&[&p], memory_store(), reader(vec![addr])).await;

    // Nothing listens there yet: every dial fails, and the reader backs
    // off, longer each time.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let status = reader.node.status().await.unwrap();
    assert!(status.peers.is_empty(), "{:?}", status.peers);

    let up = Instant::now();
    let _mirror = mirror_at(&p, key, port).await;
    wait_for(&mut reader.events, "the connection to the mirror", |e| {
        *e == NodeEvent::Connected(mirror_id)
    })
    .await;
    let took = up.elapsed();
    // The longest back-off (15 s and a quarter of jitter), a tick of the
    // planner and the dial itself.
    assert!(
        took < Duration::from_secs(21),
        "connected {took:?} after the mirror came up"
    );
    eprintln!("redial: connected {took:?} after the mirror came up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_that_goes_away_and_comes_back_is_dialed_again() {
    let p = Publisher::new(1);
    let key = libp2p::identity::Keypair::generate_ed25519();
    let mirror_id = key.public().to_peer_id();
    let port = free_port();
    let mirror = mirror_at(&p, key.clone(), port).await;
    let addr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{mirror_id}");
    let mut reader = spawn_on(&[&p], memory_store(), reader(vec![addr])).await;
    wait_for(&mut reader.events, "the first connection", |e| {
        *e == NodeEvent::Connected(mirror_id)
    })
    .await;

    mirror.shutdown().await.unwrap();
    drop(mirror);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let up = Instant::now();
    let _mirror = mirror_at(&p, key, port).await;
    wait_for(&mut reader.events, "the connection again", |e| {
        *e == NodeEvent::Connected(mirror_id)
    })
    .await;
    assert!(up.elapsed() < Duration::from_secs(21), "{:?}", up.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_reader_reaches_a_mirror_it_met_that_is_not_in_its_configuration() {
    let p = Publisher::new(1);
    let dir = tempfile::tempdir().unwrap();
    let open = || Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
    let first = spawn_on(&[&p], memory_store(), NetConfig::for_tests()).await;
    let second = spawn_on(&[&p], memory_store(), NetConfig::for_tests()).await;
    let config = reader(vec![first.addr.to_string()]);

    let mut r = spawn_on(&[&p], open(), config.clone()).await;
    let first_id = first.node.peer_id();
    wait_for(&mut r.events, "the configured mirror", |e| {
        *e == NodeEvent::Connected(first_id)
    })
    .await;
    // The reader meets the second mirror.
    connect(&mut r, &second).await;
    stopped(r).await;

    // The first mirror is gone; the second is in no configuration.
    first.node.shutdown().await.unwrap();
    drop(first);
    let mut r = spawn_on(&[&p], open(), config).await;
    let second_id = second.node.peer_id();
    wait_for(&mut r.events, "the remembered mirror", |e| {
        *e == NodeEvent::Connected(second_id)
    })
    .await;
    stopped(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_taught_from_a_mirror_list_are_dialed() {
    let p = Publisher::new(1);
    let mirror = spawn_on(&[&p], memory_store(), NetConfig::for_tests()).await;
    let mut r = spawn_on(&[&p], memory_store(), reader(Vec::new())).await;
    let bare: Multiaddr = mirror
        .addr
        .iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect();
    // One address with no peer id is skipped; the other is new.
    let new = r
        .node
        .learn(vec![bare, mirror.addr.clone()], Source::MirrorList)
        .await
        .unwrap();
    assert_eq!(new, 1);
    let id = mirror.node.peer_id();
    wait_for(&mut r.events, "the listed mirror", |e| {
        *e == NodeEvent::Connected(id)
    })
    .await;
}
