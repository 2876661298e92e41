//! A publisher's mirror list travelling between real nodes on 127.0.0.1:
//! by gossip from the newsroom's node beside a story, and in a mirror's
//! log to a quiet reader.

mod common;

use common::mirrors::{PEER, list};
use common::net::{connect, memory_store, poll, spawn_on, wait_for};
use common::*;
use kolokol::net::{NetConfig, NodeEvent};
use kolokol::proto::*;

/// A publisher whose certificate is valid from T0 until a month past the
/// real clock, which the nodes go by: a list signed now is in force.
fn publisher() -> (Publisher, Timestamp) {
    let wall = Timestamp::from_system(std::time::SystemTime::now());
    let mut p = Publisher::new(1);
    p.cert = certificate(&p.root, &p.signing, 1, T0, wall.plus(30 * DAY), vec![]);
    (p, wall)
}

fn signed(p: &Publisher, issued_at: Timestamp, port: u16) -> Vec<u8> {
    list(
        p,
        issued_at,
        vec![format!("/ip4/192.0.2.1/tcp/{port}/p2p/{PEER}")],
        vec!["https://cdn.example/k".into()],
    )
    .sign(&p.signing)
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newsrooms_node_passes_its_list_on_beside_a_story() {
    let (p, wall) = publisher();
    let bytes = signed(&p, wall.minus(60), 4001);
    let newsroom_store = memory_store();
    store_certificate(&newsroom_store, &p);
    assert!(
        newsroom_store
            .put_mirror_list(&bytes, &p.policy(), wall)
            .unwrap()
    );
    let newsroom = spawn_on(&[&p], newsroom_store, NetConfig::for_tests()).await;
    let mut reader = spawn_on(&[&p], memory_store(), NetConfig::for_tests()).await;
    connect(&mut reader, &newsroom).await;
    let file = p.bundle_file(1, b"a story");
    let id = newsroom.node.publish(file).await.unwrap();
    wait_for(&mut reader.events, "the story", |e| {
        *e == NodeEvent::Stored(id)
    })
    .await;
    let got = poll("the mirror list", async || {
        reader.store.mirror_list(&p.public()).unwrap()
    })
    .await;
    assert_eq!(got.1, bytes);
    let policy = p.policy();
    assert_eq!(
        reader.store.web_sources(&policy, wall).unwrap(),
        vec!["https://cdn.example/k".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_reader_gets_the_list_from_a_mirrors_log() {
    let (p, wall) = publisher();
    let bytes = signed(&p, wall.minus(60), 4002);
    let mirror_store = memory_store();
    store_certificate(&mirror_store, &p);
    mirror_store
        .put_mirror_list(&bytes, &p.policy(), wall)
        .unwrap();
    let mirror = spawn_on(
        &[&p],
        mirror_store,
        NetConfig {
            mirror: true,
            ..NetConfig::for_tests()
        },
    )
    .await;
    let mut reader = spawn_on(
        &[&p],
        memory_store(),
        NetConfig {
            share: false,
            ..NetConfig::for_tests()
        },
    )
    .await;
    connect(&mut reader, &mirror).await;
    let got = poll("the mirror list", async || {
        reader.store.mirror_list(&p.public()).unwrap()
    })
    .await;
    assert_eq!(got.1, bytes);
    assert_eq!(
        reader.store.mirror_addresses(&p.policy(), wall).unwrap(),
        vec![format!("/ip4/192.0.2.1/tcp/4002/p2p/{PEER}")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_adds_the_publisher_file_learns_the_list_before_the_keys() {
    let (p, wall) = publisher();
    let bytes = signed(&p, wall.minus(60), 4003);
    // A node that has heard nothing of the newsroom: no certificate.
    let reader = spawn_on(&[&p], memory_store(), NetConfig::for_tests()).await;
    let mut file = kolokol::trust::PublisherFile::parse(
        &trust_file(&p, "test-publisher"),
        std::path::Path::new("news.toml"),
    )
    .unwrap();
    file.set_mirror_list(&bytes, &p.cert);
    reader.node.trust(file).await.unwrap();
    let got = poll("the mirror list", async || {
        reader.store.mirror_list(&p.public()).unwrap()
    })
    .await;
    assert_eq!(got.1, bytes);
    assert_eq!(
        reader.store.certificates_of(&p.public()).unwrap(),
        vec![p.cert.clone()]
    );
}
