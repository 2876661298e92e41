//! One store on disk grown to each size in turn (4 KiB stories of one
//! publisher), and at each size: the ingest rate of the last stories
//! stored, bytes on disk per story, memory, `store check`, a fresh node's
//! catch-up from it, and the reconciliation of two nodes in sync.

use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use kolokol::net::{Network, SyncTraffic};
use kolokol::store::{Store, StoreConfig};

use crate::common::{Fixture, now};
use crate::plot::Curves;

/// Bundles per ingest call, as a mirror's store thread groups them.
const GROUP: u64 = 250;

/// Figures at one size.
struct Point {
    stories: u64,
    ingest_per_sec: f64,
    disk_per_story: f64,
    rss_mib: f64,
    check_secs: f64,
    catch_up_per_sec: f64,
    reconcile_messages: u64,
    reconcile_bytes: u64,
}

/// Resident and peak resident memory of this process, in MiB.
pub fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Bytes the files under `path` take on disk (allocated blocks).
fn disk_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.blocks() * 512,
                Err(_) => {}
            }
        }
    }
    total
}

async fn traffic(node: &Network) -> SyncTraffic {
    node.status().await.unwrap().sync
}

/// A fresh node on disk catching up from a node on `full` (which holds
/// `stories` and a head for them): stories per second, and the fresh
/// store with its folder.
async fn catch_up(
    f: &Fixture,
    full: &Arc<Store>,
    stories: u64,
) -> (f64, Arc<Store>, tempfile::TempDir) {
    let dir = tempfile::TempDir::new().unwrap();
    let fresh = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
    let (a, a_addr) = f.node(full.clone()).await;
    let (b, _) = f.node(fresh.clone()).await;
    let start = Instant::now();
    b.dial(a_addr).await.unwrap();
    // The store's counters, not its events: a broadcast of a million
    // events lags, and a scan per poll would slow what it measures.
    let deadline = Duration::from_secs(3600);
    while fresh.totals().unwrap().bundles < stories && start.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = start.elapsed().as_secs_f64();
    assert_eq!(
        fresh.held_ranges(&f.root.public()).unwrap(),
        vec![(1, stories)],
        "the fresh node caught up"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    (stories as f64 / took, fresh, dir)
}

/// Two nodes on stores already in sync: the sync messages and bytes they
/// exchange to find out.
async fn reconcile(f: &Fixture, one: &Arc<Store>, two: &Arc<Store>) -> (u64, u64) {
    let (a, a_addr) = f.node(one.clone()).await;
    let (b, _) = f.node(two.clone()).await;
    let start = Instant::now();
    b.dial(a_addr).await.unwrap();
    let settled = |t: &SyncTraffic| t.messages_sent >= 2 && t.messages_received >= 2;
    loop {
        let (ta, tb) = (traffic(&a).await, traffic(&b).await);
        if (settled(&ta) && settled(&tb)) || start.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Anything further is given a moment to show, so that it is counted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ta, tb) = (traffic(&a).await, traffic(&b).await);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    (
        ta.messages_sent + tb.messages_sent,
        ta.bytes_sent + tb.bytes_sent,
    )
}

/// Grows one store through `sizes`, measuring at each; `window` is how
/// many of the last stories the ingest rate is taken over.
pub fn run(rt: &tokio::runtime::Runtime, sizes: &[u64], window: u64, curves: &mut Curves) {
    let f = Fixture::new();
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("store");
    let store = Arc::new(Store::open(&path, StoreConfig::default()).unwrap());
    let cert = f.policy.verify_certificate(&f.cert).unwrap();
    store.put_certificate(&cert).unwrap();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let mut points = Vec::new();
    let started = Instant::now();
    std::thread::scope(|s| {
        // Signing and verifying run beside the store, a few groups ahead,
        // so that only ingest is timed.
        let (tx, rx) = sync_channel::<Vec<_>>(8);
        let producer = &f;
        s.spawn(move || {
            let mut batch = Vec::with_capacity(GROUP as usize);
            for seq in 1..=largest {
                let (m, body) = producer.bundle(seq);
                let vm = producer.policy.verify_manifest(&m, now()).unwrap();
                batch.push(producer.policy.verify_bundle(vm, vec![body]).unwrap());
                if (batch.len() as u64 == GROUP || seq == largest)
                    && tx.send(std::mem::take(&mut batch)).is_err()
                {
                    return;
                }
            }
        });
        let mut held = 0u64;
        let mut in_window = Duration::ZERO;
        for &size in sizes {
            while held < size {
                let Ok(batch) = rx.recv() else { break };
                let t = Instant::now();
                store.ingest(&batch).unwrap();
                let took = t.elapsed();
                held += batch.len() as u64;
                if held > size.saturating_sub(window) {
                    in_window += took;
                }
            }
            let ingest_per_sec = window.min(size) as f64 / in_window.as_secs_f64();
            in_window = Duration::ZERO;
            store.flush().unwrap();
            f.record_head(&store, size);
            let disk_per_story = disk_bytes(&path) as f64 / size as f64;
            let (rss_mib, _) = memory();
            let t = Instant::now();
            let report = store.check(false).unwrap();
            let check_secs = t.elapsed().as_secs_f64();
            assert!(report.problems.is_empty(), "{:?}", report.problems);
            let (catch_up_per_sec, fresh, fresh_dir) = rt.block_on(catch_up(&f, &store, size));
            let (reconcile_messages, reconcile_bytes) = rt.block_on(reconcile(&f, &store, &fresh));
            drop(fresh);
            drop(fresh_dir);
            println!(
                "{size:>9} stories: ingest {ingest_per_sec:.0}/s over the last {}, {:.0} bytes on disk per story, RSS {rss_mib:.0} MiB, store check {check_secs:.2} s, catch-up {catch_up_per_sec:.0} stories/s, in sync: {reconcile_messages} messages, {reconcile_bytes} bytes ({:.0} s in all so far)",
                window.min(size),
                disk_per_story,
                started.elapsed().as_secs_f64()
            );
            points.push(Point {
                stories: size,
                ingest_per_sec,
                disk_per_story,
                rss_mib,
                check_secs,
                catch_up_per_sec,
                reconcile_messages,
                reconcile_bytes,
            });
        }
        drop(rx);
    });
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        println!(
            "store ingest at {} stories as a share of its rate at {}: {:.2} (target >= 0.8); two nodes in sync at {} settle in {} messages (target <= 6)",
            last.stories,
            first.stories,
            last.ingest_per_sec / first.ingest_per_sec,
            last.stories,
            last.reconcile_messages
        );
    }
    let curve = |get: fn(&Point) -> f64| {
        points
            .iter()
            .map(|p| (p.stories as f64, get(p)))
            .collect::<Vec<_>>()
    };
    let size = "stories held";
    curves.add(
        "store-ingest",
        "ingest, stories/s",
        size,
        curve(|p| p.ingest_per_sec),
    );
    curves.add(
        "store-disk",
        "bytes on disk per story",
        size,
        curve(|p| p.disk_per_story),
    );
    curves.add(
        "store-memory",
        "bench process RSS, MiB",
        size,
        curve(|p| p.rss_mib),
    );
    curves.add(
        "store-check",
        "store check, s",
        size,
        curve(|p| p.check_secs),
    );
    curves.add(
        "catch-up",
        "catch-up, stories/s",
        size,
        curve(|p| p.catch_up_per_sec),
    );
    curves.add(
        "reconcile-messages",
        "messages to find two nodes in sync",
        size,
        curve(|p| p.reconcile_messages as f64),
    );
    curves.add(
        "reconcile-bytes",
        "bytes to find two nodes in sync",
        size,
        curve(|p| p.reconcile_bytes as f64),
    );
}

/// The ingest rate alone, at finer steps than [`run`] and without its
/// slower measures (`cargo bench --bench scale -- ingest`): how fast a
/// store takes stories as it fills. `KOLOKOL_BENCH_STORIES` caps the size;
/// `KOLOKOL_BENCH_CACHE_MIB` sets the store's cache instead of its
/// default and `KOLOKOL_BENCH_BODY` the bytes of each body instead of
/// 4 KiB, to see what the rate depends on.
pub fn ingest_curve(sizes: &[u64], window: u64, curves: &mut Curves) {
    let cap = std::env::var("KOLOKOL_BENCH_STORIES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    let sizes: Vec<u64> = sizes.iter().copied().filter(|&s| s <= cap).collect();
    let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let mut config = StoreConfig::default();
    if let Some(mib) = number("KOLOKOL_BENCH_CACHE_MIB") {
        config.cache_bytes = mib << 20;
    }
    let mut f = Fixture::new();
    if let Some(body) = number("KOLOKOL_BENCH_BODY") {
        f.body = body as usize;
    }
    println!(
        "store cache {} MiB, bodies of {} bytes",
        config.cache_bytes >> 20,
        f.body
    );
    let dir = tempfile::TempDir::new().unwrap();
    let store = Store::open(&dir.path().join("store"), config).unwrap();
    let cert = f.policy.verify_certificate(&f.cert).unwrap();
    store.put_certificate(&cert).unwrap();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let mut points = Vec::new();
    let started = Instant::now();
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Vec<_>>(8);
        let producer = &f;
        s.spawn(move || {
            let mut batch = Vec::with_capacity(GROUP as usize);
            for seq in 1..=largest {
                let (m, body) = producer.bundle(seq);
                let vm = producer.policy.verify_manifest(&m, now()).unwrap();
                batch.push(producer.policy.verify_bundle(vm, vec![body]).unwrap());
                if (batch.len() as u64 == GROUP || seq == largest)
                    && tx.send(std::mem::take(&mut batch)).is_err()
                {
                    return;
                }
            }
        });
        let mut held = 0u64;
        for &size in &sizes {
            let mut in_window = Duration::ZERO;
            while held < size {
                let Ok(batch) = rx.recv() else { break };
                let t = Instant::now();
                store.ingest(&batch).unwrap();
                if held + batch.len() as u64 > size.saturating_sub(window) {
                    in_window += t.elapsed();
                }
                held += batch.len() as u64;
            }
            let rate = window.min(size) as f64 / in_window.as_secs_f64();
            let (rss, _) = memory();
            println!(
                "{size:>9} stories: ingest {rate:.0}/s over the last {}, RSS {rss:.0} MiB ({:.0} s in all so far)",
                window.min(size),
                started.elapsed().as_secs_f64()
            );
            points.push((size as f64, rate));
        }
        drop(rx);
    });
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        println!(
            "ingest at {} stories as a share of its rate at {}: {:.2}",
            last.0,
            first.0,
            last.1 / first.1
        );
    }
    curves.add("ingest", "ingest, stories/s", "stories held", points);
}
