//! A revocation end to end across real nodes on 127.0.0.1: announced by
//! the newsroom's node, it reaches every node, which then removes what the
//! key signed from its effective time and refuses anything more it signs;
//! a node that joins later learns it through catch-up.

mod common;

use common::net::{TestNode, connect, memory_store, poll, spawn, spawn_on, wait_for};
use common::*;
use kolokol::net::{NetConfig, NodeEvent};
use kolokol::proto::bundle::BundleFile;
use kolokol::proto::*;

/// Story `n` (sequence `n`), signed `n` hours after T0, as a bundle file.
fn file(p: &Publisher, n: u8) -> (BundleFile, BundleId) {
    story(p, n as u64, n, format!("<p>Story {n}</p>").as_bytes()).bundle_file(vec![])
}

async fn wait_gone(n: &TestNode, id: &BundleId) {
    poll(
        &format!("bundle {} to be dropped", id.short()),
        async || (!n.store.has_bundle(id).unwrap()).then_some(()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_three_nodes_and_every_one_refuses_the_key() {
    let p = Publisher::new(1);
    let mut newsroom = spawn(&p).await;
    let mut b = spawn(&p).await;
    let mut c = spawn(&p).await;
    connect(&mut newsroom, &b).await;
    connect(&mut b, &c).await;

    // Two stories, signed one and three hours after T0, reach everyone.
    let (one, id1) = file(&p, 1);
    let (three, id3) = file(&p, 3);
    for (f, id) in [(one, id1), (three, id3)] {
        newsroom.node.publish(f).await.unwrap();
        wait_for(&mut c.events, "a story at the far end", |e| {
            *e == NodeEvent::Stored(id)
        })
        .await;
    }

    // The key turns out to have been stolen two hours after T0.
    let revocation = p.revocation(p.signing.public(), T0.plus(2 * 3600));
    let removed = newsroom.node.revoke(revocation.clone()).await.unwrap();
    assert_eq!(removed, 1, "the story signed after the effective time");
    for n in [&newsroom, &b, &c] {
        wait_gone(n, &id3).await;
        assert!(n.store.has_bundle(&id1).unwrap(), "signed before: kept");
    }

    // Whatever the thief signs now is refused by every node.
    let (stolen, stolen_id) = file(&p, 4);
    for n in [&newsroom, &b, &c] {
        let err = n.node.publish(stolen.clone()).await.unwrap_err();
        assert!(err.to_string().contains("revoked"), "{err}");
        assert!(!n.store.has_bundle(&stolen_id).unwrap());
    }

    // A node that was away, holding the thief's story, joins: it learns
    // the revocation in catch-up and drops the story.
    let store = memory_store();
    let policy = p.policy();
    store_certificate(&store, &p);
    let (m, blobs) = story(&p, 4, 4, b"<p>Story 4</p>").signed();
    let vm = policy.verify_manifest(&m, now()).unwrap();
    store
        .ingest(&[policy.verify_bundle(vm, blobs).unwrap()])
        .unwrap();
    assert!(store.has_bundle(&stolen_id).unwrap());
    let mut late = spawn_on(&[&p], store, NetConfig::for_tests()).await;
    connect(&mut late, &c).await;
    wait_gone(&late, &stolen_id).await;
    for n in [&newsroom, &b, &c] {
        assert!(!n.store.has_bundle(&stolen_id).unwrap());
    }
    for n in [&newsroom, &b, &c, &late] {
        n.node.shutdown().await.unwrap();
    }
}
