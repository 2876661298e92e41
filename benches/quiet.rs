//! `cargo bench --bench quiet`: a mirror carrying several outlets and
//! quiet readers following its log on 127.0.0.1. Stories are published at
//! the mirror, one of each outlet per round; each reader trusts one
//! outlet. Prints the time from the mirror storing a story to a connected
//! reader storing it (p50, p99 over every story and reader), the bytes each
//! reader received per story in the log and per story it kept, and what an
//! idle reader's waiting requests cost.
//!
//! `KOLOKOL_BENCH_OUTLETS` (default 10), `KOLOKOL_BENCH_READERS` (default
//! 4) and `KOLOKOL_BENCH_STORIES` (per outlet, default 100) change the
//! set-up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kolokol::net::wire::LOG_WAIT;
use kolokol::net::{NetConfig, Network, NodeEvent};
use kolokol::proto::bundle::BundleFile;
use kolokol::proto::*;
use kolokol::store::{Store, StoreConfig};

/// Stories of each outlet (`KOLOKOL_BENCH_STORIES`).
const STORIES: usize = 100;
/// A story's text: about what a news story's HTML body weighs.
const BODY_BYTES: usize = 5 * 1024;
/// Time between rounds.
const PACE: Duration = Duration::from_millis(100);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

struct Outlet {
    root: SecretKey,
    signing: SecretKey,
    cert: Vec<u8>,
}

impl Outlet {
    fn new(n: u8) -> Self {
        let root = SecretKey::from_seed(&[n; 32]);
        let signing = SecretKey::from_seed(&[n.wrapping_add(100); 32]);
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
        Self {
            root,
            signing,
            cert,
        }
    }

    fn story(&self, seq: u64) -> (BundleFile, BundleId) {
        let body: Vec<u8> = format!(
            "<p>{}</p>",
            "Lorem ipsum dolor sit amet. ".repeat(BODY_BYTES / 28)
        )
        .into_bytes()
        .into_iter()
        .take(BODY_BYTES)
        .collect();
        let mut story = [0u8; 16];
        story[..8].copy_from_slice(&seq.to_be_bytes());
        story[8..].copy_from_slice(&self.root.public().as_bytes()[..8]);
        let m = Manifest {
            format: FORMAT_VERSION,
            publisher: self.root.public(),
            certificate: CertId::of(&self.cert),
            story: StoryId(story),
            version: 1,
            kind: Kind::Story,
            sequence: seq,
            supersedes: None,
            signed_at: now(),
            metadata: Metadata {
                title: format!("A headline of about the usual length, number {seq}"),
                language: "en".into(),
                authors: vec!["A. Correspondent".into()],
                section: Some("World".into()),
                published: now(),
                updated: None,
                original_url: Some(format!("https://news.example/2026/12/story-{seq}")),
                summary: Some("A summary of two sentences, as feeds carry them. ".repeat(4)),
            },
            entries: vec![Entry {
                path: BODY_PATH.into(),
                media_type: BODY_MEDIA_TYPE.into(),
                size: body.len() as u64,
                hash: BlobHash::of(&body),
            }],
        };
        let manifest = m.sign(&self.signing).unwrap();
        let id = BundleId::of(&manifest);
        let file = BundleFile {
            certificates: vec![self.cert.clone()],
            revocations: vec![],
            heads: vec![],
            manifest,
            blobs: vec![body],
        };
        (file, id)
    }
}

async fn spawn(config: NetConfig, trusted: &[&Outlet]) -> (Network, libp2p::Multiaddr) {
    let mut policy = TrustPolicy::new();
    for (i, o) in trusted.iter().enumerate() {
        policy
            .trust(o.root.public(), format!("outlet-{i}"))
            .unwrap();
    }
    let store = Arc::new(Store::memory(StoreConfig::default()));
    let node = Network::spawn(
        config,
        libp2p::identity::Keypair::generate_ed25519(),
        store,
        policy,
    )
    .await
    .unwrap();
    let addr = node
        .wait_listening(1, Duration::from_secs(10))
        .await
        .unwrap()
        .pop()
        .unwrap()
        .with(libp2p::multiaddr::Protocol::P2p(node.peer_id()));
    (node, addr)
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let outlets_n = env("KOLOKOL_BENCH_OUTLETS", 10).clamp(1, 250);
    let readers_n = env("KOLOKOL_BENCH_READERS", 4).max(1);
    let stories = if quick {
        3
    } else {
        env("KOLOKOL_BENCH_STORIES", STORIES).max(1) as u64
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let outlets: Vec<Outlet> = (0..outlets_n).map(|i| Outlet::new(i as u8 + 1)).collect();
        let all: Vec<&Outlet> = outlets.iter().collect();
        let (mirror, mirror_addr) = spawn(
            NetConfig {
                mirror: true,
                ..NetConfig::for_tests()
            },
            &all,
        )
        .await;
        let mut readers = Vec::new();
        for r in 0..readers_n {
            let trusted = &outlets[r % outlets_n];
            let (node, _) = spawn(
                NetConfig {
                    share: false,
                    ..NetConfig::for_tests()
                },
                &[trusted],
            )
            .await;
            node.dial(mirror_addr.clone()).await.unwrap();
            readers.push((node, r % outlets_n));
        }
        let start = Instant::now();
        for (r, _) in &readers {
            while r.status().await.unwrap().peers.is_empty() && start.elapsed() < Duration::from_secs(20) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // Every node's Stored events, with their times (the mirror is 0).
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, BundleId, Instant)>();
        let nodes: Vec<&Network> = std::iter::once(&mirror).chain(readers.iter().map(|(n, _)| n)).collect();
        for (i, n) in nodes.iter().enumerate() {
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
        let before: Vec<u64> = {
            let mut v = Vec::new();
            for (r, _) in &readers {
                v.push(r.status().await.unwrap().log.bytes_received);
            }
            v
        };

        // Which outlet each story is of, and when the mirror stored it.
        let mut outlet_of: HashMap<BundleId, usize> = HashMap::new();
        let mut stored_at: HashMap<(usize, BundleId), Instant> = HashMap::new();
        for seq in 1..=stories {
            for (o, outlet) in outlets.iter().enumerate() {
                let (file, id) = outlet.story(seq);
                outlet_of.insert(id, o);
                mirror.publish(file).await.unwrap();
            }
            while let Ok((i, id, t)) = rx.try_recv() {
                stored_at.insert((i, id), t);
            }
            tokio::time::sleep(PACE).await;
        }
        let expected = readers_n as u64 * stories;
        let deadline = Instant::now() + Duration::from_secs(30);
        let kept = |m: &HashMap<(usize, BundleId), Instant>| m.keys().filter(|(i, _)| *i > 0).count() as u64;
        while kept(&stored_at) < expected {
            match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                Ok(Some((i, id, t))) => {
                    stored_at.insert((i, id), t);
                }
                _ => break,
            }
        }
        let mut latencies = Vec::new();
        for ((i, id), t) in &stored_at {
            if *i == 0 {
                continue;
            }
            if let Some(m) = stored_at.get(&(0, *id)) {
                latencies.push(t.saturating_duration_since(*m));
            }
        }
        latencies.sort();
        let mut received = Vec::new();
        let mut wrong = 0;
        for (k, (r, trusted)) in readers.iter().enumerate() {
            let s = r.status().await.unwrap();
            received.push(s.log.bytes_received - before[k]);
            wrong += stored_at
                .keys()
                .filter(|(i, id)| *i == k + 1 && outlet_of.get(id) != Some(trusted))
                .count();
        }
        let total_stories = stories * outlets_n as u64;
        let mean_received = received.iter().sum::<u64>() as f64 / readers_n as f64;

        // Idle: what waiting at the end of the log costs.
        let idle = if quick { Duration::from_secs(1) } else { LOG_WAIT * 2 + Duration::from_secs(2) };
        let idle_before = readers[0].0.status().await.unwrap().log;
        tokio::time::sleep(idle).await;
        let idle_after = readers[0].0.status().await.unwrap().log;
        let idle_bytes = (idle_after.bytes_received + idle_after.bytes_sent)
            - (idle_before.bytes_received + idle_before.bytes_sent);
        // One waiting request and its empty page per LOG_WAIT.
        let cycles = (idle_after.messages_received - idle_before.messages_received).max(1);
        let per_cycle = idle_bytes as f64 / cycles as f64;
        let per_day = per_cycle * 86_400.0 / LOG_WAIT.as_secs_f64();

        println!("quiet readers following a mirror: {outlets_n} outlets, {readers_n} readers, {stories} stories per outlet ({BODY_BYTES} B bodies)");
        println!(
            "  mirror stored -> reader stored: p50 {:?}, p99 {:?}, max {:?} ({} of {} kept)",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or_default(),
            latencies.len(),
            expected
        );
        println!("  stories of other outlets kept: {wrong}");
        println!(
            "  log bytes received per reader: {:.0} in all; {:.0} per story in the log; {:.0} per story kept",
            mean_received,
            mean_received / total_stories as f64,
            mean_received / stories as f64
        );
        println!(
            "  idle: {idle_bytes} bytes both ways in {idle:?}, {cycles} waits of {LOG_WAIT:?}: {per_cycle:.0} bytes a wait, about {:.0} KiB a day",
            per_day / 1024.0
        );
        for (r, _) in &readers {
            let _ = r.shutdown().await;
        }
        let _ = mirror.shutdown().await;
    });
}
