//! Real libp2p nodes on 127.0.0.1: gossip, fetching and verification.

mod common;

use common::net::{spawn, wait_for};
use common::*;
use kolokol::net::NodeEvent;
use kolokol::proto::bundle::BundleFile;
use kolokol::proto::*;

/// A bundle file with a body and a 600 KiB image (three fetch chunks).
fn bundle_file(p: &Publisher, seq: u64) -> (BundleFile, BundleId) {
    let image: Vec<u8> = (0..600 * 1024)
        .map(|i| (i * 7 + seq as usize) as u8)
        .collect();
    let mut s = story(p, seq, seq as u8, format!("<p>Story {seq}</p>").as_bytes());
    s.published = now().minus(3600);
    s.blobs.push(image);
    s.bundle_file(vec![p.head(seq, now().minus(60))])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_story_crosses_six_nodes_in_a_line() {
    let p = Publisher::new(1);
    let mut nodes = Vec::new();
    for _ in 0..6 {
        nodes.push(spawn(&p).await);
    }
    // Each node connects only to the next.
    for i in 0..5 {
        let next = nodes[i + 1].addr.clone();
        let peer = nodes[i + 1].node.peer_id();
        nodes[i].node.dial(next).await.unwrap();
        wait_for(&mut nodes[i].events, "connection", |e| {
            *e == NodeEvent::Connected(peer)
        })
        .await;
    }
    let (file, id) = bundle_file(&p, 1);
    let blobs = file.blobs.clone();
    assert_eq!(nodes[0].node.publish(file).await.unwrap(), id);
    let last = nodes.last_mut().unwrap();
    wait_for(&mut last.events, "the story at the far end", |e| {
        *e == NodeEvent::Stored(id)
    })
    .await;
    // Verified and stored whole at the far end, blobs included.
    let store = &nodes[5].store;
    let m = store.manifest(&id).unwrap().expect("manifest stored");
    for (entry, blob) in m.manifest.entries.iter().zip(&blobs) {
        assert_eq!(
            store.blob(&entry.hash).unwrap().as_deref(),
            Some(blob.as_slice())
        );
    }
    // Every node on the way has it too, and the head.
    for n in &nodes {
        assert!(n.store.has_bundle(&id).unwrap());
    }
    let status = nodes[5].node.status().await.unwrap();
    assert_eq!(status.publishers[0].held, 1);
    for n in &nodes {
        n.node.shutdown().await.unwrap();
    }
}

/// A publisher untrusted and trusted again while the node runs: what the
/// store kept of it (its certificate and its newest head) is learned
/// again, so rollback protection holds as it did before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusting_a_publisher_again_relearns_its_stored_head() {
    let p = Publisher::new(1);
    let mut n = spawn(&p).await;
    let (file, id) = bundle_file(&p, 5);
    n.node.publish(file).await.unwrap();
    wait_for(&mut n.events, "the story stored", |e| {
        *e == NodeEvent::Stored(id)
    })
    .await;
    let head = |s: &kolokol::net::Status| s.publishers.first().and_then(|p| p.head_sequence);
    assert_eq!(head(&n.node.status().await.unwrap()), Some(5));

    assert!(n.node.untrust(p.public()).await.unwrap());
    let text = trust_file(&p, "test-publisher");
    let file = kolokol::trust::PublisherFile::parse(&text, std::path::Path::new("p.toml")).unwrap();
    n.node.trust(file).await.unwrap();
    let deadline = std::time::Instant::now() + common::net::DEADLINE;
    while head(&n.node.status().await.unwrap()) != Some(5) {
        assert!(
            std::time::Instant::now() < deadline,
            "the stored head was not relearned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // An older head is refused again, and the story is still held.
    let (older, _) = bundle_file(&p, 3);
    n.node.publish(older).await.unwrap();
    assert_eq!(head(&n.node.status().await.unwrap()), Some(5));
    assert!(n.store.has_bundle(&id).unwrap());
    n.node.shutdown().await.unwrap();
}

/// The newsroom after rotating: the same root, a new signing key (seed 9).
fn rotated() -> Publisher {
    Publisher {
        root: seed(1),
        signing: seed(9),
        cert: certificate(&seed(1), &seed(9), 2, T0, T0.plus(30 * DAY), vec![]),
    }
}

/// A head by a stolen, later revoked key, with a huge sequence number:
/// after the publisher is trusted again, and after a restart, it must be
/// refused, and never block the newsroom's genuine heads as rollbacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_keys_head_blocks_no_genuine_head_after_retrust_or_restart() {
    use common::net::{memory_store, spawn_on};
    let p = Publisher::new(1);
    let r = rotated();
    let store = memory_store();
    let n = spawn_on(&[&p], store.clone(), kolokol::net::NetConfig::for_tests()).await;
    let head = |s: &kolokol::net::Status| s.publishers.first().and_then(|p| p.head_sequence);
    let with_head = |pb: &Publisher, seq: u64, head: Vec<u8>| {
        let (mut f, id) = story(pb, seq, seq as u8, b"<p>x</p>").bundle_file(vec![]);
        f.heads = vec![head];
        (f, id)
    };

    // The thief's head, sequence 1000, taken while the key was valid.
    let thief_head = p.head(1000, T0.plus(3600));
    let (f, _) = with_head(&p, 1, thief_head.clone());
    n.node.publish(f).await.unwrap();
    assert_eq!(head(&n.node.status().await.unwrap()), Some(1000));
    // The revocation drops it; the newsroom's next key heads the feed.
    n.node
        .revoke(p.revocation_cut(p.signing.public(), T0.plus(2 * 3600), 1))
        .await
        .unwrap();
    assert_eq!(head(&n.node.status().await.unwrap()), None);
    let (f, _) = with_head(&r, 2, r.head(2, T0.plus(3 * 3600)));
    n.node.publish(f).await.unwrap();
    assert_eq!(head(&n.node.status().await.unwrap()), Some(2));

    // Untrusted and trusted again: the store's revocation, certificates
    // and head are learned with the trust, before anything else arrives.
    assert!(n.node.untrust(p.public()).await.unwrap());
    let text = trust_file(&p, "test-publisher");
    let file = kolokol::trust::PublisherFile::parse(&text, std::path::Path::new("p.toml")).unwrap();
    n.node.trust(file).await.unwrap();
    assert_eq!(
        head(&n.node.status().await.unwrap()),
        Some(2),
        "the stored head, at once"
    );
    // The thief offers its head again, with a bundle of the old key below
    // the cut-off (which still verifies): the head is refused.
    let (f, _) = with_head(&p, 1, thief_head.clone());
    n.node.publish(f).await.unwrap();
    assert_eq!(head(&n.node.status().await.unwrap()), Some(2));
    let (f, _) = with_head(&r, 3, r.head(3, T0.plus(4 * 3600)));
    n.node.publish(f).await.unwrap();
    assert_eq!(head(&n.node.status().await.unwrap()), Some(3));
    n.node.shutdown().await.unwrap();

    // A store written before revocations dropped heads still holds the
    // thief's head beside the revocation: a restart drops it, and genuine
    // heads are taken again.
    let h = p.policy().verify_head(&thief_head, now()).unwrap();
    store.record_head(&h).unwrap();
    let n = spawn_on(&[&p], store.clone(), kolokol::net::NetConfig::for_tests()).await;
    assert_eq!(head(&n.node.status().await.unwrap()), None);
    assert!(store.head(&p.public()).unwrap().is_none());
    let (f, _) = with_head(&r, 4, r.head(4, T0.plus(5 * 3600)));
    n.node.publish(f).await.unwrap();
    assert_eq!(head(&n.node.status().await.unwrap()), Some(4));
    // The store thread records a head after the policy took it: once the
    // node has stopped (its store work done), the store holds it.
    n.node.shutdown().await.unwrap();
    assert_eq!(store.head(&p.public()).unwrap().unwrap().1.sequence, 4);
}
