//! The network at each size: real nodes in this process on loopback, and
//! the IO-less core's simulation in virtual time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kolokol::net::{NetConfig, NodeEvent};
use kolokol::proto::bundle::BundleFile;
use kolokol::proto::*;
use kolokol::store::{Store, StoreConfig};
use kolokol::sync::sim::{SimConfig, run as simulate};
use rand::{Rng, SeedableRng};

use crate::common::{BODY, Fixture};
use crate::plot::Curves;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let last = sorted.len().saturating_sub(1);
    sorted
        .get((last as f64 * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

/// Payload bytes a node sent and received by gossip (duplicates
/// included) and by fetch, from its metrics.
fn payload_bytes(metrics: &str) -> u64 {
    const COUNTERS: [&str; 4] = [
        "gossipsub_topic_msg_sent_bytes_total",
        "gossipsub_topic_msg_recv_bytes_unfiltered_total",
        "kolokol_fetched_bytes_total",
        "kolokol_served_bytes_total",
    ];
    metrics
        .lines()
        .filter(|l| COUNTERS.iter().any(|c| l.starts_with(c)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

struct Run {
    nodes: usize,
    p50: Duration,
    p99: Duration,
    delivery: f64,
    duplicates: f64,
    bytes_per_node: f64,
}

/// `n` nodes, each dialing two others (degree about 4); `stories`
/// published one after another at the first, each awaited at every node
/// (or for 10 s).
async fn propagate(f: &Fixture, n: usize, stories: u64) -> Run {
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        nodes.push(
            f.node_with(
                Arc::new(Store::memory(StoreConfig::default())),
                NetConfig::for_tests(),
            )
            .await,
        );
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..n {
        // Two distinct others: a node that dialed the same one twice
        // would have one peer, and the wait for two below would time out.
        let mut first = None;
        for _ in 0..2 {
            let mut j = rng.gen_range(0..n);
            while j == i || Some(j) == first {
                j = rng.gen_range(0..n);
            }
            first = Some(j);
            nodes[i].0.dial(nodes[j].1.clone()).await.unwrap();
        }
    }
    let start = Instant::now();
    loop {
        let mut ready = 0;
        for (node, _) in &nodes {
            if node.status().await.unwrap().peers.len() >= 2 {
                ready += 1;
            }
        }
        if ready == n || start.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Gossip meshes form over a few heartbeats.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, BundleId, Instant)>();
    for (i, (node, _)) in nodes.iter().enumerate() {
        let mut events = node.events();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(e) = events.recv().await {
                if let NodeEvent::Stored(id) = e {
                    let _ = tx.send((i, id, Instant::now()));
                }
            }
        });
    }
    let mut delays = Vec::new();
    let mut got: HashMap<usize, u64> = HashMap::new();
    for seq in 1..=stories {
        let (manifest, body) = f.bundle(seq);
        let id = BundleId::of(&manifest);
        let file = BundleFile {
            certificates: vec![f.cert.clone()],
            revocations: vec![],
            heads: vec![],
            manifest,
            blobs: vec![body],
        };
        let t0 = Instant::now();
        nodes[0].0.publish(file).await.unwrap();
        let mut reached = 1;
        let deadline = t0 + Duration::from_secs(10);
        while reached < n {
            match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                Ok(Some((i, stored, t))) if stored == id && i != 0 => {
                    reached += 1;
                    *got.entry(i).or_default() += 1;
                    delays.push(t.duration_since(t0));
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    }
    delays.sort();
    let (mut received, mut unique, mut bytes) = (0, 0, 0);
    for (node, _) in &nodes {
        let st = node.status().await.unwrap();
        received += st.gossip_received;
        unique += st.gossip_unique;
        bytes += payload_bytes(&node.metrics().await.unwrap_or_default());
        bytes += st.sync.bytes_sent + st.sync.bytes_received;
        bytes += st.log.bytes_sent + st.log.bytes_received;
    }
    for (node, _) in &nodes {
        let _ = node.shutdown().await;
    }
    let complete = got.values().filter(|&&k| k == stories).count();
    Run {
        nodes: n,
        p50: percentile(&delays, 0.50),
        p99: percentile(&delays, 0.99),
        delivery: complete as f64 / (n - 1) as f64,
        duplicates: received.saturating_sub(unique) as f64 / unique.max(1) as f64,
        bytes_per_node: bytes as f64 / n as f64,
    }
}

/// Real nodes at each size.
pub fn real(rt: &tokio::runtime::Runtime, sizes: &[usize], stories: u64, curves: &mut Curves) {
    let f = Fixture::new();
    let mut runs = Vec::new();
    for &n in sizes {
        let started = Instant::now();
        let r = rt.block_on(propagate(&f, n, stories));
        println!(
            "{n:>4} real nodes, {stories} stories of {} KiB: publish-to-stored p50 {:.1} ms, p99 {:.1} ms (target <= 1 s), every story at {:.0} % of nodes (target 100 %), {:.2} duplicate transmissions per new message per node, {:.0} KiB per node ({:.0} s)",
            BODY / 1024,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.delivery * 100.0,
            r.duplicates,
            r.bytes_per_node / 1024.0,
            started.elapsed().as_secs_f64()
        );
        runs.push(r);
    }
    let curve = |get: fn(&Run) -> f64| {
        runs.iter()
            .map(|r| (r.nodes as f64, get(r)))
            .collect::<Vec<_>>()
    };
    let size = "nodes (real, loopback)";
    curves.add(
        "net-p50",
        "publish to stored, p50, ms",
        size,
        curve(|r| r.p50.as_secs_f64() * 1e3),
    );
    curves.add(
        "net-p99",
        "publish to stored, p99, ms",
        size,
        curve(|r| r.p99.as_secs_f64() * 1e3),
    );
    curves.add(
        "net-duplicates",
        "duplicate transmissions per message per node",
        size,
        curve(|r| r.duplicates),
    );
    curves.add(
        "net-bytes",
        "bytes sent and received per node",
        size,
        curve(|r| r.bytes_per_node),
    );
}

/// The simulation at each size: a tenth of the nodes liars, a tenth
/// joining late.
pub fn sim(sizes: &[usize], stories: u64, curves: &mut Curves) {
    let mut points = Vec::new();
    for &nodes in sizes {
        let config = SimConfig {
            nodes,
            liars: nodes / 10,
            late: nodes / 10,
            stories,
            ..SimConfig::default()
        };
        let started = Instant::now();
        let Some(r) = simulate(config) else {
            eprintln!("the simulated newsroom could not sign its stories");
            return;
        };
        let wall = started.elapsed().as_secs_f64();
        println!(
            "{nodes:>6} simulated nodes ({} liars), {stories} stories: {}/{} honest complete, delay p50 {:.0} ms, p99 {:.0} ms (virtual), settled {:.1} s virtual, {:.1} messages and {:.0} KiB per node, {} honest nodes banned ({wall:.1} s wall)",
            nodes / 10,
            r.complete,
            r.honest,
            r.delay_p50.as_secs_f64() * 1e3,
            r.delay_p99.as_secs_f64() * 1e3,
            r.settled.as_secs_f64(),
            r.messages as f64 / nodes as f64,
            r.bytes as f64 / nodes as f64 / 1024.0,
            r.honest_bans
        );
        points.push((nodes as f64, r, wall));
    }
    let size = "nodes (simulated)";
    let curve = |get: &dyn Fn(&kolokol::sync::sim::SimReport) -> f64| {
        points
            .iter()
            .map(|(n, r, _)| (*n, get(r)))
            .collect::<Vec<_>>()
    };
    curves.add(
        "sim-p99",
        "publish to stored, p99, virtual ms",
        size,
        curve(&|r| r.delay_p99.as_secs_f64() * 1e3),
    );
    curves.add(
        "sim-messages",
        "messages per node",
        size,
        curve(&|r| r.messages as f64 / r.nodes as f64),
    );
    curves.add(
        "sim-wall",
        "simulation wall time, s",
        size,
        points.iter().map(|(n, _, w)| (*n, *w)).collect(),
    );
}
