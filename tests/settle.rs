//! A node that stops after writing much has sled write its snapshot, so
//! that its next start does not read everything again; one that wrote
//! little leaves the snapshot as it was.

mod common;

use std::path::Path;

use common::*;
use kolokol::config::Config;
use kolokol::net::NetConfig;
use kolokol::trust::TrustList;
use tempfile::TempDir;

/// The log position of sled's newest snapshot in the store of `data`
/// (its files are named `snap.` and the position in hex), if any.
fn newest_snapshot(data: &Path) -> Option<u64> {
    std::fs::read_dir(data.join("store").join("index"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            u64::from_str_radix(name.strip_prefix("snap.")?, 16).ok()
        })
        .max()
}

/// Starts a node on `data` with `settle_after_bytes`, stores three
/// stories through it and stops it: sled's newest snapshot before the
/// stop and after.
async fn run_and_stop(data: &Path, settle_after_bytes: u64) -> (Option<u64>, Option<u64>) {
    let p = Publisher::new(1);
    TrustList::open(data)
        .unwrap()
        .add_file(&publisher_file(&p, "settle-news"))
        .unwrap();
    let mut config = Config {
        net: NetConfig::for_tests(),
        ..Config::default()
    };
    // Every task that holds the store runs: the gateway, the search
    // indexer, the network.
    config.gateway.address = "127.0.0.1:0".into();
    config.store.settle_after_bytes = settle_after_bytes;
    let running = kolokol::node::start(data, config).await.unwrap();
    for n in 1..=3u8 {
        let seq = u64::from(n);
        let (file, _) = story(&p, seq, n, b"<p>Settled</p>")
            .bundle_file(vec![p.head(seq, T0.plus(3600 * seq))]);
        running.network.publish(file).await.unwrap();
    }
    let before = newest_snapshot(data);
    running.stop().await.unwrap();
    (before, newest_snapshot(data))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_wrote_much_writes_the_snapshot_when_it_stops() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("node");
    let (before, after) = run_and_stop(&data, 1).await;
    assert!(
        after.is_some() && after > before,
        "snapshot at {before:?} before the stop, {after:?} after"
    );
    // The store opens with everything in it.
    let store = kolokol::store::Store::open(&data.join("store"), Default::default()).unwrap();
    assert_eq!(store.totals().unwrap().bundles, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_wrote_little_leaves_the_snapshot_to_its_next_start() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("node");
    let (before, after) = run_and_stop(&data, kolokol::store::SETTLE_AFTER).await;
    assert_eq!(before, after);
}
