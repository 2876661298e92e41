//! A quiet reader following a mirror's log, between real nodes on
//! 127.0.0.1: it gets every story of the publishers it trusts, drops the
//! others unwritten, hears of a new story while connected, and picks up
//! where it left after a restart.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::net::{DEADLINE, TestNode, connect, memory_store, poll, spawn_on, wait_for};
use common::*;
use common::{numbered as version, numbered_head as head};
use kolokol::net::{NetConfig, NodeEvent};
use kolokol::proto::bundle::BundleFile;
use kolokol::proto::*;
use kolokol::store::{Store, StoreConfig};
use tokio::time::timeout;

fn bundle_file(p: &Publisher, seq: u64, len: usize) -> (BundleFile, BundleId) {
    version(p, seq, len).bundle_file(vec![head(p, seq)])
}

fn mirror_config() -> NetConfig {
    NetConfig {
        mirror: true,
        ..NetConfig::for_tests()
    }
}

fn quiet_config() -> NetConfig {
    NetConfig {
        share: false,
        ..NetConfig::for_tests()
    }
}

/// Puts stories 1..=n of `p` and a head into a mirror's store.
fn fill(store: &Store, p: &Publisher, n: u64, len: usize) -> Vec<BundleId> {
    store_certificate(store, p);
    let bundles: Vec<VerifiedBundle> = (1..=n).map(|s| version(p, s, len).verified()).collect();
    store.ingest(&bundles).unwrap();
    let policy = p.policy();
    let h = policy.verify_head(&head(p, n), now().plus(DAY)).unwrap();
    store.record_head(&h).unwrap();
    bundles.iter().map(|b| b.id()).collect()
}

async fn wait_stored(reader: &mut TestNode, ids: &[BundleId], what: &str) {
    let mut pending: HashSet<BundleId> = ids.iter().copied().collect();
    for id in ids {
        if reader.store.has_bundle(id).unwrap() {
            pending.remove(id);
        }
    }
    if pending.is_empty() {
        return;
    }
    wait_for(&mut reader.events, what, |e| {
        if let NodeEvent::Stored(id) = e {
            pending.remove(id);
        }
        pending.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_reader_keeps_what_it_trusts_from_the_whole_log_and_hears_of_new_stories() {
    let trusted = Publisher::new(1);
    let other = Publisher::new(2);
    let mirror_store = memory_store();
    let ours = fill(&mirror_store, &trusted, 30, 400);
    let theirs = fill(&mirror_store, &other, 30, 400);
    let mirror = spawn_on(&[&trusted, &other], mirror_store, mirror_config()).await;
    let mut reader = spawn_on(&[&trusted], memory_store(), quiet_config()).await;
    connect(&mut reader, &mirror).await;
    wait_stored(&mut reader, &ours, "the trusted publisher's stories").await;

    // The other publisher's stories came in the same pages and were
    // dropped unwritten; the reader named no publisher on a topic.
    for id in &theirs {
        assert!(!reader.store.has_bundle(id).unwrap());
    }
    let status = reader.node.status().await.unwrap();
    assert!(status.topics.is_empty(), "{:?}", status.topics);
    assert_eq!(reader.store.totals().unwrap().bundles, 30);
    let mine = status
        .publishers
        .iter()
        .find(|p| p.root_key == trusted.public().to_string())
        .unwrap();
    assert_eq!(mine.head_sequence, Some(30));
    assert!(mine.missing.is_empty(), "{:?}", mine.missing);

    // A story the mirror stores now reaches the connected reader at once:
    // its request was waiting at the end of the log.
    let (file, id) = bundle_file(&trusted, 31, 400);
    let start = Instant::now();
    mirror.node.publish(file).await.unwrap();
    wait_stored(&mut reader, &[id], "the new story").await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let (file, id) = bundle_file(&other, 31, 400);
    mirror.node.publish(file).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!reader.store.has_bundle(&id).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_reader_fetches_large_stories_of_its_publishers_within_its_budget() {
    let trusted = Publisher::new(1);
    let other = Publisher::new(2);
    let mirror_store = memory_store();
    // 40 KiB bodies: over the inline limit, so they come as manifests.
    let ours = fill(&mirror_store, &trusted, 3, 40 * 1024);
    let theirs = fill(&mirror_store, &other, 3, 40 * 1024);
    let mirror = spawn_on(&[&trusted, &other], mirror_store, mirror_config()).await;
    let mut reader = spawn_on(&[&trusted], memory_store(), quiet_config()).await;
    connect(&mut reader, &mirror).await;
    wait_stored(&mut reader, &ours, "the large stories").await;
    let s = mirror.node.status().await.unwrap();
    // Each large story's blob was asked for by hash, the others' never.
    assert!(
        s.served_chunks >= 3 && s.served_chunks < 6,
        "{}",
        s.served_chunks
    );
    for id in &theirs {
        assert!(!reader.store.has_bundle(id).unwrap());
    }

    // With no budget, a reader never asks for one.
    let mut frugal = spawn_on(
        &[&trusted],
        memory_store(),
        NetConfig {
            large_story_budget_bytes_per_day: 0,
            ..quiet_config()
        },
    )
    .await;
    connect(&mut frugal, &mirror).await;
    poll("the head", async || {
        let s = frugal.node.status().await.unwrap();
        (s.publishers[0].head_sequence == Some(3)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = mirror.node.status().await.unwrap();
    assert_eq!(after.served_chunks, s.served_chunks);
    assert_eq!(frugal.store.totals().unwrap().bundles, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_reader_back_after_a_restart_asks_on_from_where_it_left() {
    let p = Publisher::new(1);
    let mirror_store = memory_store();
    let first = fill(&mirror_store, &p, 5, 300);
    let mut mirror = spawn_on(&[&p], mirror_store, mirror_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let open = || Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
    let mut reader = spawn_on(&[&p], open(), quiet_config()).await;
    connect(&mut reader, &mirror).await;
    wait_stored(&mut reader, &first, "the first stories").await;
    let cursors = poll("the position kept", async || {
        let c = reader.store.log_cursors().unwrap();
        (!c.is_empty()).then_some(c)
    })
    .await;
    assert_eq!(cursors.len(), 1);
    assert_eq!(cursors[0].0, mirror.node.peer_id().to_bytes());

    reader.node.shutdown().await.unwrap();
    let TestNode { node, store, .. } = reader;
    drop(node);
    timeout(DEADLINE, async {
        while Arc::strong_count(&store) > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the stopped node lets go of its store");
    drop(store);
    let mut missed = Vec::new();
    for seq in 6..=8 {
        let (file, id) = bundle_file(&p, seq, 300);
        mirror.node.publish(file).await.unwrap();
        missed.push(id);
    }
    let before = mirror.node.status().await.unwrap().sync;
    let mut reader = spawn_on(&[&p], open(), quiet_config()).await;
    connect(&mut reader, &mirror).await;
    wait_stored(&mut reader, &missed, "the missed stories").await;
    assert_eq!(reader.store.totals().unwrap().bundles, 8);
    // Not one catch-up summary went either way: nothing named the
    // publisher.
    let after = mirror.node.status().await.unwrap().sync;
    assert_eq!(after.messages_received, before.messages_received);
    let _ = &mut mirror;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_the_mirror_takes_reaches_a_connected_quiet_reader() {
    let p = Publisher::new(1);
    let mirror_store = memory_store();
    let ids = fill(&mirror_store, &p, 4, 300);
    let mirror = spawn_on(&[&p], mirror_store, mirror_config()).await;
    let mut reader = spawn_on(&[&p], memory_store(), quiet_config()).await;
    connect(&mut reader, &mirror).await;
    wait_stored(&mut reader, &ids, "the stories").await;

    // The signing key was stolen before the first story was signed.
    let rev = p.revocation(p.signing.public(), T0);
    let removed = mirror.node.revoke(rev).await.unwrap();
    assert_eq!(removed, 4);
    poll("the stories removed at the reader", async || {
        (reader.store.totals().unwrap().bundles == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_trusted_on_a_running_quiet_reader_brings_its_past_stories() {
    let first = Publisher::new(1);
    let later = Publisher::new(3);
    let mirror_store = memory_store();
    let ours = fill(&mirror_store, &first, 3, 300);
    let theirs = fill(&mirror_store, &later, 3, 300);
    let mirror = spawn_on(&[&first, &later], mirror_store, mirror_config()).await;
    let mut reader = spawn_on(&[&first], memory_store(), quiet_config()).await;
    connect(&mut reader, &mirror).await;
    wait_stored(&mut reader, &ours, "the first publisher's stories").await;
    assert!(!reader.store.has_bundle(&theirs[0]).unwrap());

    let text = trust_file(&later, "later");
    let file = kolokol::trust::PublisherFile::parse(&text, std::path::Path::new("p.toml")).unwrap();
    reader.node.trust(file).await.unwrap();
    wait_stored(&mut reader, &theirs, "the stories that went by before").await;
}
