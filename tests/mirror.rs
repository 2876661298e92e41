//! A mirror under a stream of new stories: its quota holds, eviction
//! follows the store's policy, and catch-up does not bring evicted
//! stories back.

mod common;

use std::sync::Arc;

use common::net::{DEADLINE, connect, memory_store, spawn_on, wait_for};
use common::*;
use kolokol::net::{NetConfig, NodeEvent};
use kolokol::store::{SeqState, Store, StoreConfig};

const STORIES: u64 = 30;
const BODY: usize = 100 * 1024;
const QUOTA: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirrors_quota_holds_under_a_stream_of_stories() {
    let p = Publisher::new(1);
    let mut newsroom = spawn_on(
        &[&p],
        memory_store(),
        NetConfig {
            sync_interval_secs: 1,
            ..NetConfig::for_tests()
        },
    )
    .await;
    let store = Arc::new(Store::memory(StoreConfig {
        publisher_quota_bytes: Some(QUOTA),
        keep_newest: 2,
        ..StoreConfig::default()
    }));
    let mut mirror = spawn_on(
        &[&p],
        store.clone(),
        NetConfig {
            mirror: true,
            sync_interval_secs: 1,
            ..NetConfig::for_tests()
        },
    )
    .await;
    connect(&mut newsroom, &mirror).await;

    let mut ids = Vec::new();
    for seq in 1..=STORIES {
        let mut body = format!("<p>Story {seq}</p>").into_bytes();
        body.resize(BODY, b'.');
        let mut s = story(&p, seq, seq as u8, &body);
        s.published = T0.plus(seq * 3600);
        let (file, id) = s.bundle_file(vec![p.head(seq, T0.plus(seq * 3600 + 60))]);
        newsroom.node.publish(file).await.unwrap();
        wait_for(&mut mirror.events, "the story at the mirror", |e| {
            *e == NodeEvent::Stored(id)
        })
        .await;
        // Eviction follows each story stored: one story over at most.
        let bytes = store.publisher_bytes(&p.public()).unwrap();
        assert!(bytes <= QUOTA + BODY as u64 + 4096, "{bytes} after {seq}");
        ids.push(id);
    }
    let bytes = store.publisher_bytes(&p.public()).unwrap();
    assert!(bytes <= QUOTA, "{bytes}");

    // The oldest went first; the newest are held.
    let held = store.held_ranges(&p.public()).unwrap();
    assert_eq!(held.len(), 1, "one run of the newest: {held:?}");
    let (first, last) = held[0];
    assert_eq!(last, STORIES);
    assert!(
        first > 1 && (last - first + 1) * BODY as u64 <= QUOTA,
        "{held:?}"
    );
    for seq in 1..first {
        assert_eq!(
            store.seq_state(&p.public(), seq).unwrap(),
            Some(SeqState::Evicted)
        );
    }

    // Catch-up rounds with the newsroom, which holds everything, bring
    // nothing evicted back.
    let before = mirror.node.status().await.unwrap().sync;
    tokio::time::timeout(DEADLINE, async {
        loop {
            let now = mirror.node.status().await.unwrap().sync;
            if now.messages_received >= before.messages_received + 4 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("more catch-up rounds");
    assert_eq!(store.held_ranges(&p.public()).unwrap(), held);
    assert!(store.publisher_bytes(&p.public()).unwrap() <= QUOTA);
    assert_eq!(
        mirror.node.status().await.unwrap().publishers[0].missing,
        vec![],
        "evicted is not missing"
    );
    newsroom.node.shutdown().await.unwrap();
    mirror.node.shutdown().await.unwrap();
}
