//! `cargo bench --bench adversarial`: a reader's node (the real binary)
//! with one honest path to a newsroom's node, and N hostile peers (N = 10
//! and 40) running every attack of `hostile.rs` at once, each from its own
//! loopback subnet with sybil identities. The newsroom publishes stories one
//! after another; the bench prints the honest stories delivered, their
//! publish-to-held time and the reader's peak resident memory, each as a
//! ratio to the same run without attackers, and what the attackers got.
//!
//! Without `--bench` (as `cargo test --benches` runs it) it does a short
//! run with fewer stories and attackers.

#[path = "../../tests/common/mod.rs"]
mod common;
mod hostile;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use common::process::{NodeProcess, ok, wait_until};
use kolokol::node::control::ControlClient;
use kolokol::trust::PublisherFile;
use libp2p::Multiaddr;

/// Sybil identities each attacker adds from its own address.
const SYBILS: usize = 8;
/// How long a story may take before it counts as not delivered.
const GIVE_UP: Duration = Duration::from_secs(60);
/// Bytes of the image every other story carries: over the inline limit, so
/// it travels by blob fetch, not inside the catch-up reply.
const IMAGE_BYTES: usize = 300 * 1024;

struct Outcome {
    attackers: usize,
    stories: usize,
    delivered: usize,
    times: Vec<Duration>,
    peak_rss: u64,
    tally: hostile::Tally,
    rejected: u64,
    peers_at_end: usize,
}

impl Outcome {
    fn mean(&self) -> Duration {
        if self.times.is_empty() {
            return Duration::ZERO;
        }
        self.times.iter().sum::<Duration>() / self.times.len() as u32
    }

    fn max(&self) -> Duration {
        self.times.iter().max().copied().unwrap_or_default()
    }
}

/// Kibibytes of the process's peak resident set (`VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn write_story(dir: &Path, n: usize) -> (std::path::PathBuf, Option<std::path::PathBuf>) {
    let article = dir.join(format!("story-{n}.md"));
    let image = (n % 2 == 1).then(|| {
        let path = dir.join(format!("photo-{n}.jpg"));
        let bytes: Vec<u8> = (0..IMAGE_BYTES as u32)
            .map(|x| (x.wrapping_mul(2_654_435_761).wrapping_add(n as u32) >> 7) as u8)
            .collect();
        std::fs::write(&path, bytes).expect("write the image");
        path
    });
    let body = match &image {
        Some(p) => format!(
            "---\ntitle: Story {n}\nlang: en\n---\nText of story {n}.\n\n![photo]({})\n",
            p.file_name().and_then(|f| f.to_str()).unwrap_or_default()
        ),
        None => format!("---\ntitle: Story {n}\nlang: en\n---\nText of story {n}.\n"),
    };
    std::fs::write(&article, body).expect("write the article");
    (article, image)
}

fn run(rt: &tokio::runtime::Runtime, attackers: usize, stories: usize) -> Outcome {
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    let (a, b, newsroom) = (
        dir.path().join("newsroom-node"),
        dir.path().join("reader"),
        dir.path().join("newsroom"),
    );
    let newsroom_s = newsroom.to_str().unwrap_or_default().to_owned();
    ok(
        &a,
        &[
            "newsroom",
            "init",
            "--name",
            "bench-news",
            "--dir",
            &newsroom_s,
        ],
    );
    let file = newsroom.join("bench-news.toml");
    ok(&b, &["trust", "add", file.to_str().unwrap_or_default()]);
    let publisher = PublisherFile::load(&file)
        .expect("the publisher file")
        .root_key;

    let node_a = NodeProcess::start(&a, &["--mirror"]);
    let node_b = NodeProcess::start(&b, &["--bootstrap", &node_a.addr()]);
    let client = ControlClient::for_data_dir(&b).expect("the reader's control API");
    wait_until("the reader to reach the newsroom", || {
        client.status().is_ok_and(|s| !s.peers.is_empty())
    });

    let target: Multiaddr = node_b.addr().parse().expect("the reader's address");
    let tally = Arc::new(hostile::Tally::default());
    let tasks: Vec<_> = (0..attackers)
        .map(|i| {
            let ip = [127, 1, 1 + i as u8, 1];
            rt.spawn(hostile::attack(
                ip,
                target.clone(),
                publisher,
                SYBILS,
                tally.clone(),
            ))
        })
        .collect();
    // Let the attacks get under way before the first story.
    std::thread::sleep(Duration::from_secs(if attackers > 0 { 5 } else { 1 }));

    let mut times = Vec::new();
    for n in 1..=stories {
        let (article, image) = write_story(dir.path(), n);
        let mut args = vec![
            "publish".to_owned(),
            article.to_str().unwrap_or_default().to_owned(),
            "--newsroom".to_owned(),
            newsroom_s.clone(),
        ];
        if let Some(image) = &image {
            args.push("--image".to_owned());
            args.push(image.to_str().unwrap_or_default().to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&a, &args);
        let start = Instant::now();
        loop {
            let held = client
                .status()
                .ok()
                .and_then(|s| s.publishers.first().map(|p| p.held))
                .unwrap_or(0);
            if held >= n as u64 {
                times.push(start.elapsed());
                break;
            }
            if start.elapsed() > GIVE_UP {
                eprintln!("  story {n} not delivered within {GIVE_UP:?}");
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let status = client.status().ok();
    let peak_rss = peak_rss(node_b.child.id());
    for t in tasks {
        t.abort();
    }
    let tally = Arc::try_unwrap(tally).unwrap_or_else(|t| hostile::Tally {
        bytes_sent: t.bytes_sent.load(Relaxed).into(),
        bytes_served: t.bytes_served.load(Relaxed).into(),
        connected: t.connected.load(Relaxed).into(),
        closed: t.closed.load(Relaxed).into(),
        stalled: t.stalled.load(Relaxed).into(),
        amplified: t.amplified.load(Relaxed).into(),
    });
    drop(node_b);
    drop(node_a);
    Outcome {
        attackers,
        stories,
        delivered: times.len(),
        times,
        peak_rss,
        tally,
        rejected: status.as_ref().map_or(0, |s| s.rejected),
        peers_at_end: status.map_or(0, |s| s.peers.len()),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (stories, mut sizes) = if full {
        (10, vec![10, 40])
    } else {
        (2, vec![4])
    };
    // KOLOKOL_BENCH_ATTACKERS=10,40 chooses the runs with attackers,
    // KOLOKOL_BENCH_STORIES the stories of each run; KOLOKOL_BENCH_DEBUG
    // prints why each attacker connection ended.
    let stories = std::env::var("KOLOKOL_BENCH_STORIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(stories);
    if let Ok(list) = std::env::var("KOLOKOL_BENCH_ATTACKERS") {
        sizes = list
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let quiet = run(&rt, 0, stories);
    println!(
        "quiet: {}/{} stories, mean {:.2?}, max {:.2?}, reader peak RSS {:.1} MiB",
        quiet.delivered,
        quiet.stories,
        quiet.mean(),
        quiet.max(),
        mib(quiet.peak_rss)
    );
    for n in sizes {
        let o = run(&rt, n, stories);
        let t = &o.tally;
        println!(
            "N = {:>2}: {}/{} stories ({:.0} %), mean {:.2?} ({:.2}x quiet), max {:.2?}, \
             reader peak RSS {:.1} MiB ({:.2}x quiet)",
            o.attackers,
            o.delivered,
            o.stories,
            100.0 * o.delivered as f64 / o.stories as f64,
            o.mean(),
            o.mean().as_secs_f64() / quiet.mean().as_secs_f64().max(1e-6),
            o.max(),
            mib(o.peak_rss),
            o.peak_rss as f64 / quiet.peak_rss.max(1) as f64,
        );
        println!(
            "        attackers sent {:.1} MiB ({} amplified replies), got {:.2} MiB served; \
             {} node requests stalled; {} connections accepted, {} refused or closed; \
             reader: {} messages refused, {} peers at the end",
            mib(t.bytes_sent.load(Relaxed)),
            t.amplified.load(Relaxed),
            mib(t.bytes_served.load(Relaxed)),
            t.stalled.load(Relaxed),
            t.connected.load(Relaxed),
            t.closed.load(Relaxed),
            o.rejected,
            o.peers_at_end,
        );
    }
}
