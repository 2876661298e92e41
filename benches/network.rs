//! `cargo bench --bench network`: 20 nodes on 127.0.0.1 in a random graph
//! of degree about 4; 100 stories of 100 KiB published one after another
//! at one node. Prints publish-to-stored latency percentiles over every
//! (story, node) pair, the share of nodes that got every story, blob chunks
//! sent per needed chunk, and the resident memory of an idle node process.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kolokol::net::{NetConfig, Network, NodeEvent};
use kolokol::proto::bundle::BundleFile;
use kolokol::proto::*;
use kolokol::store::{Store, StoreConfig};
use rand::{Rng, SeedableRng};

const NODES: usize = 20;
const STORIES: u64 = 100;
const STORY_BYTES: usize = 100 * 1024;

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

fn now() -> Timestamp {
    Timestamp::from_system(std::time::SystemTime::now())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn idle_node_rss() -> Option<u64> {
    let dir = tempfile::TempDir::new().ok()?;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kolokol"))
        .args([
            "--data-dir",
            dir.path().to_str()?,
            "node",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            // A default node, gateway included, on a free port.
            "--gateway",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let start = Instant::now();
    while !dir.path().join("node.toml").exists() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Idle for a few heartbeats, then read its resident set.
    std::thread::sleep(Duration::from_secs(5));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok();
    let _ = child.kill();
    let _ = child.wait();
    status?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let stories = if quick { 5 } else { STORIES };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let root = key(1);
        let signing = key(2);
        let cert = KeyCertificate {
            format: FORMAT_VERSION,
            publisher: root.public(),
            signing_key: signing.public(),
            serial: 1,
            not_before: now().minus(86_400),
            not_after: now().plus(86_400),
            scope: Scope::default(),
        }
        .sign(&root)
        .unwrap();

        let mut nodes = Vec::new();
        for _ in 0..NODES {
            let store = Arc::new(Store::memory(StoreConfig::default()));
            let mut policy = TrustPolicy::new();
            policy.trust(root.public(), "bench").unwrap();
            let node = Network::spawn(NetConfig::for_tests(), libp2p::identity::Keypair::generate_ed25519(), store, policy)
                .await
                .unwrap();
            let addr = node.wait_listening(1, Duration::from_secs(10)).await.unwrap().pop().unwrap();
            let addr = addr.with(libp2p::multiaddr::Protocol::P2p(node.peer_id()));
            nodes.push((node, addr));
        }
        // Random graph: each node dials two others, so degree is about 4.
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for i in 0..NODES {
            for _ in 0..2 {
                let mut j = rng.gen_range(0..NODES);
                while j == i {
                    j = rng.gen_range(0..NODES);
                }
                nodes[i].0.dial(nodes[j].1.clone()).await.unwrap();
            }
        }
        // Let connections and subscriptions come up: wait until every node
        // has at least two peers.
        let start = Instant::now();
        loop {
            let mut ready = 0;
            for (n, _) in &nodes {
                if n.status().await.unwrap().peers.len() >= 2 {
                    ready += 1;
                }
            }
            if ready == NODES || start.elapsed() > Duration::from_secs(20) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await; // gossip meshes form over a few heartbeats

        // Every node's Stored events, with their times.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, BundleId, Instant)>();
        for (i, (n, _)) in nodes.iter().enumerate() {
            let mut events = n.events();
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Ok(e) = events.recv().await {
                    if let NodeEvent::Stored(id) = e {
                        let _ = tx.send((i, id, Instant::now()));
                    }
                }
            });
        }
        let mut latencies = Vec::new();
        let mut got: HashMap<usize, u64> = HashMap::new();
        for seq in 1..=stories {
            let body: Vec<u8> = (0..STORY_BYTES).map(|i| (i as u64 * 31 + seq) as u8).collect();
            let m = Manifest {
                format: FORMAT_VERSION,
                publisher: root.public(),
                certificate: CertId::of(&cert),
                story: StoryId([seq as u8; 16]),
                version: 1,
                kind: Kind::Story,
                sequence: seq,
                supersedes: None,
                signed_at: now(),
                metadata: Metadata {
                    title: format!("Story {seq}"),
                    language: "en".into(),
                    authors: vec![],
                    section: None,
                    published: now(),
                    updated: None,
                    original_url: None,
                    summary: None,
                },
                entries: vec![Entry {
                    path: BODY_PATH.into(),
                    media_type: BODY_MEDIA_TYPE.into(),
                    size: body.len() as u64,
                    hash: BlobHash::of(&body),
                }],
            };
            let manifest = m.sign(&signing).unwrap();
            let id = BundleId::of(&manifest);
            let file = BundleFile { certificates: vec![cert.clone()], revocations: vec![], heads: vec![], manifest, blobs: vec![body] };
            let t0 = Instant::now();
            nodes[0].0.publish(file).await.unwrap();
            let mut reached = 1; // the publisher
            let deadline = t0 + Duration::from_secs(10);
            while reached < NODES {
                match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                    Ok(Some((i, sid, t))) if sid == id => {
                        if i != 0 {
                            reached += 1;
                            *got.entry(i).or_default() += 1;
                            latencies.push(t.duration_since(t0));
                        }
                    }
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
        latencies.sort();
        let complete = got.values().filter(|&&n| n == stories).count();
        let (mut served, mut received, mut unique) = (0, 0, 0);
        for (n, _) in &nodes {
            let st = n.status().await.unwrap();
            served += st.served_chunks;
            received += st.gossip_received;
            unique += st.gossip_unique;
        }
        let needed = stories * (NODES as u64 - 1);
        println!(
            "network, {NODES} nodes, degree ~4, {stories} stories of {} KiB: publish-to-stored p50 {:?}, p95 {:?}, p99 {:?} (target p99 <= 1 s) over {} deliveries",
            STORY_BYTES / 1024,
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.95),
            percentile(&latencies, 0.99),
            latencies.len()
        );
        println!(
            "  nodes that got every story: {complete} of {} ({:.0}%) (target 100%); blob chunks sent per chunk needed: {:.2}",
            NODES - 1,
            100.0 * complete as f64 / (NODES - 1) as f64,
            served as f64 / needed as f64
        );
        println!(
            "  gossip: {received} messages received, {unique} new; duplicate transmissions per announcement per node: {:.2}",
            (received.saturating_sub(unique)) as f64 / unique.max(1) as f64
        );
        for (n, _) in &nodes {
            let _ = n.shutdown().await;
        }
    });
    if let Some(rss) = idle_node_rss() {
        println!(
            "idle node (kolokol node, no peers): resident memory {} MiB (target <= 40 MiB)",
            rss >> 20
        );
    }
}
