//! `cargo bench --bench catchup`: a fresh node (store on disk) catching up
//! from one peer that holds 10,000 stories with a 4 KiB body, against the
//! raw transfer of the same bytes over one TCP connection on loopback in
//! the same run; then the messages and bytes two nodes already in sync at
//! 100,000 stories exchange to find out that they are.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{BODY, Fixture, wait_stored};
use kolokol::net::{Network, SyncTraffic};
use kolokol::seal::{DataKey, Sealer};
use kolokol::store::{Store, StoreConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const STORIES: u64 = 10_000;
const SETTLED: u64 = 100_000;

/// Seconds to send `bytes` over one loopback TCP connection, 64 KiB at a
/// time, until the receiver has read them all.
async fn raw_tcp(bytes: u64) -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0u64;
        while got < bytes {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        got
    });
    let start = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(chunk.len() as u64) as usize;
        s.write_all(&chunk[..n]).await.unwrap();
        sent += n as u64;
    }
    assert_eq!(reader.await.unwrap(), bytes);
    start.elapsed().as_secs_f64()
}

/// A fresh node on a store on disk (sealed or not) catching up from a
/// node on `full`: seconds taken, and the fresh node (still running, for
/// its traffic figures) with its folder.
async fn catch_up(
    f: &Fixture,
    full: &Arc<Store>,
    stories: u64,
    sealed: bool,
) -> (f64, Network, tempfile::TempDir) {
    let dir = tempfile::TempDir::new().unwrap();
    let sealer = sealed.then(|| Arc::new(Sealer::new(&DataKey::random())));
    let fresh = Arc::new(Store::open_with(dir.path(), StoreConfig::default(), sealer).unwrap());
    let (a, a_addr) = f.node(full.clone()).await;
    let (b, _) = f.node(fresh.clone()).await;
    let mut events = b.events();
    let start = Instant::now();
    b.dial(a_addr).await.unwrap();
    let done = wait_stored(&mut events, stories).await;
    let took = start.elapsed().as_secs_f64();
    assert!(done, "the fresh node caught up");
    assert_eq!(
        fresh.held_ranges(&f.root.public()).unwrap(),
        vec![(1, stories)]
    );
    a.shutdown().await.unwrap();
    (took, b, dir)
}

async fn traffic(node: &Network) -> SyncTraffic {
    node.status().await.unwrap().sync
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let (stories, settled) = if quick {
        (200, 1_000)
    } else {
        (STORIES, SETTLED)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let f = Fixture::new();

        // A fresh node catching up from one peer.
        let full = Arc::new(Store::memory(StoreConfig::default()));
        let bytes = f.store(&full, stories);
        let (took, b, _dir) = catch_up(&f, &full, stories, false).await;
        let t = traffic(&b).await;
        let raw = raw_tcp(bytes).await;
        println!(
            "catch-up of {stories} stories ({} KiB body, {:.1} MB signed) from one peer: {:.2} s, {:.0} stories/s (target >= 2,000)",
            BODY / 1024,
            bytes as f64 / 1e6,
            took,
            stories as f64 / took
        );
        println!(
            "  raw TCP transfer of the same bytes on loopback: {:.3} s ({:.0} MB/s); catch-up speed as a share of raw: {:.3}",
            raw,
            bytes as f64 / raw / 1e6,
            raw / took
        );
        println!(
            "  catch-up messages: {} sent, {} received; {:.2} MB received",
            t.messages_sent,
            t.messages_received,
            t.bytes_received as f64 / 1e6
        );
        b.shutdown().await.unwrap();

        // The same into a sealed store, alternating with plain runs: the
        // better of two runs of each, so that a burst of other work on the
        // machine does not decide the ratio.
        let (sealed, node, _d) = catch_up(&f, &full, stories, true).await;
        node.shutdown().await.unwrap();
        let (again, node, _d) = catch_up(&f, &full, stories, false).await;
        node.shutdown().await.unwrap();
        let (sealed_again, node, _d) = catch_up(&f, &full, stories, true).await;
        node.shutdown().await.unwrap();
        let plain = took.min(again);
        let sealed = sealed.min(sealed_again);
        println!(
            "  into a sealed store: {:.2} s, {:.0} stories/s; plain {:.0} stories/s; ratio {:.2} (target >= 0.8)",
            sealed,
            stories as f64 / sealed,
            stories as f64 / plain,
            plain / sealed
        );

        // Two nodes already in sync.
        let one = Arc::new(Store::memory(StoreConfig::default()));
        let two = Arc::new(Store::memory(StoreConfig::default()));
        f.store(&one, settled);
        f.store(&two, settled);
        let (a, a_addr) = f.node(one).await;
        let (b, _) = f.node(two).await;
        let start = Instant::now();
        b.dial(a_addr).await.unwrap();
        let settled_pair = |t: &SyncTraffic| t.messages_sent >= 2 && t.messages_received >= 2;
        let (ta, tb) = loop {
            let (ta, tb) = (traffic(&a).await, traffic(&b).await);
            if (settled_pair(&ta) && settled_pair(&tb)) || start.elapsed() > Duration::from_secs(60) {
                break (ta, tb);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let took = start.elapsed();
        // Give anything further a moment to show, so it is counted.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (ta2, tb2) = (traffic(&a).await, traffic(&b).await);
        println!(
            "reconciliation of two nodes in sync at {settled} stories: {} messages in all, {} bytes in all, settled in {:.1} ms",
            ta2.messages_sent + tb2.messages_sent,
            ta2.bytes_sent + tb2.bytes_sent,
            took.as_secs_f64() * 1e3
        );
        assert_eq!((ta, tb), (ta2, tb2), "nothing more after the summaries");
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
    });
}
