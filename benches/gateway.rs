//! `cargo bench --bench gateway`: the reader's gateway over a sled store
//! of `KOLOKOL_BENCH_STORIES` stories (10,000 unless set), served on
//! 127.0.0.1, under a load generator written here (tokio, keep-alive
//! HTTP/1.1 connections). The store is filled first; then a fresh process
//! opens it, as a node starting would, and measures the first home page
//! after start, the most requests per second and their latency for story
//! pages, the home page and a filtered list, latency at a fixed 1,000
//! requests per second, how long a story stored while serving takes to
//! show on the home page, and the serving process's memory; then a third
//! process starts again on the same store (first page and memory). Up to 10,000
//! stories (or with `KOLOKOL_BENCH_SEALED=1`), the same pages from a
//! sealed store are compared with a plain one. Prints figures; asserts
//! nothing.
//!
//! The server runs on a two-thread runtime; the generator on one thread
//! of its own, in the same process: on a two-core machine they share the
//! cores, as a browser and the node would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kolokol::gateway::{self, GatewayConfig, GatewayState};
use kolokol::proto::*;
use kolokol::seal::{DataKey, Sealer};
use kolokol::store::{Facet, IndexCursor, Store, StoreConfig};
use kolokol::trust::PublisherFile;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Set in the serving process: the folder of the filled store.
const SERVE_ENV: &str = "KOLOKOL_BENCH_SERVE";
/// Set, with [`SERVE_ENV`], in a process that only starts again after
/// the first serving process: its first page and memory.
const RESTART_ENV: &str = "KOLOKOL_BENCH_RESTART";
/// Most story pages the story-page runs go through in turn.
const STORY_SAMPLE: u64 = 10_000;
const CONNECTIONS: usize = 64;
const RUN: Duration = Duration::from_secs(5);
const FIXED_RATE: u64 = 1_000;
const FIXED_CONNECTIONS: u64 = 16;

const LANGUAGES: &[&str] = &["en", "ru", "ar", "fa", "uk"];
const SECTIONS: &[&str] = &["News", "Politics", "Culture", "Technology"];

/// An article body of about 4 KiB: paragraphs, a link, emphasis.
fn body(n: u64) -> Vec<u8> {
    let mut s = format!("<h1>Story {n}</h1>");
    for p in 0..8 {
        s.push_str(&format!(
            "<p>Paragraph {p} of story {n}. Reporters <em>confirmed</em> the account with \
             two sources; the <a href=\"#note-{p}\">note</a> explains how. Readers where the \
             site is blocked receive this text from volunteers' mirrors, signed.</p>"
        ));
    }
    s.into_bytes()
}

/// How many stories to store.
fn stories() -> u64 {
    std::env::var("KOLOKOL_BENCH_STORIES")
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(10_000)
}

fn wall() -> Timestamp {
    Timestamp::from_system(std::time::SystemTime::now())
}

/// The bench newsroom: its keys and a policy trusting it, the same in
/// every process of a run.
struct Newsroom {
    root: SecretKey,
    signing: SecretKey,
    cert: Vec<u8>,
    policy: TrustPolicy,
}

impl Newsroom {
    fn new() -> Self {
        let root = SecretKey::from_seed(&[9; 32]);
        let signing = SecretKey::from_seed(&[10; 32]);
        let cert = KeyCertificate {
            format: FORMAT_VERSION,
            publisher: root.public(),
            signing_key: signing.public(),
            serial: 1,
            not_before: Timestamp(1_600_000_000),
            // Fixed, so that every process of a run makes the same certificate.
            not_after: Timestamp(4_000_000_000),
            scope: Scope::default(),
        }
        .sign(&root)
        .unwrap();
        let mut policy = TrustPolicy::new();
        policy.trust(root.public(), "bench-news").unwrap();
        policy.learn_certificate(&cert).unwrap();
        Self {
            root,
            signing,
            cert,
            policy,
        }
    }

    fn file(&self) -> PublisherFile {
        PublisherFile {
            name: "bench-news".into(),
            display_name: Some("Bench News".into()),
            root_key: self.root.public(),
            homepage: None,
            bootstrap: vec![],
            demo: false,
            mirror_list: None,
            mirror_certificate: None,
        }
    }

    /// Story `n` with sequence `n`, first published at `published`.
    fn bundle(&self, n: u64, published: Timestamp, now: Timestamp) -> VerifiedBundle {
        let b = body(n);
        let mut story = [0u8; 16];
        story[..8].copy_from_slice(&n.to_be_bytes());
        let m = Manifest {
            format: FORMAT_VERSION,
            publisher: self.root.public(),
            certificate: CertId::of(&self.cert),
            story: StoryId(story),
            version: 1,
            kind: Kind::Story,
            sequence: n,
            supersedes: None,
            signed_at: published,
            metadata: Metadata {
                title: format!("Story number {n}: the mirrors keep the archive"),
                language: LANGUAGES[n as usize % LANGUAGES.len()].into(),
                authors: vec!["Bench Desk".into()],
                section: Some(SECTIONS[n as usize % SECTIONS.len()].into()),
                published,
                updated: None,
                original_url: None,
                summary: Some(format!("Summary of story {n}, for lists and feeds.")),
            },
            entries: vec![Entry {
                path: BODY_PATH.into(),
                media_type: BODY_MEDIA_TYPE.into(),
                size: b.len() as u64,
                hash: BlobHash::of(&b),
            }],
        };
        let signed = m.sign(&self.signing).unwrap();
        let vm = self.policy.verify_manifest(&signed, now).unwrap();
        self.policy.verify_bundle(vm, vec![b]).unwrap()
    }
}

/// Stores `count` stories, one a minute up to an hour ago, and a head;
/// returns the ids of up to [`STORY_SAMPLE`] of them, spread evenly.
fn fill(store: &Store, newsroom: &Newsroom, count: u64) -> Vec<BundleId> {
    let t0 = wall().minus(count * 60 + 3600);
    store
        .put_certificate(&newsroom.policy.verify_certificate(&newsroom.cert).unwrap())
        .unwrap();
    let now = wall();
    let step = count.div_ceil(STORY_SAMPLE).max(1);
    let mut ids = Vec::new();
    let mut group = Vec::new();
    for n in 1..=count {
        let vb = newsroom.bundle(n, t0.plus(n * 60), now);
        if n % step == 0 {
            ids.push(vb.id());
        }
        group.push(vb);
        if group.len() == 256 {
            store.ingest(&group).unwrap();
            group.clear();
        }
    }
    store.ingest(&group).unwrap();
    let head = Head {
        format: FORMAT_VERSION,
        publisher: newsroom.root.public(),
        certificate: CertId::of(&newsroom.cert),
        sequence: count,
        issued_at: now.minus(30),
        expires_at: now.plus(86_400),
    }
    .sign(&newsroom.signing)
    .unwrap();
    store
        .record_head(&newsroom.policy.verify_head(&head, now).unwrap())
        .unwrap();
    store.flush().unwrap();
    ids
}

/// One keep-alive connection: sends a GET and reads the whole answer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    host: String,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            host: addr.to_string(),
        }
    }

    /// Whether the last answer holds `needle`.
    fn holds(&self, needle: &[u8]) -> bool {
        self.buf.windows(needle.len()).any(|w| w == needle)
    }

    /// Returns the status code.
    async fn get(&mut self, path: &str) -> u16 {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.stream.write_all(req.as_bytes()).await.unwrap();
        self.buf.clear();
        let mut chunk = [0u8; 32 * 1024];
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).unwrap();
                let status: u16 = head[9..12].parse().unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .expect("a content length");
                while self.buf.len() < end + 4 + len {
                    let n = self.stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "connection closed");
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                return status;
            }
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

struct Figures {
    requests: usize,
    per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

fn figures(mut lat: Vec<u64>, elapsed: Duration) -> Figures {
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Figures {
        requests: lat.len(),
        per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        max_us: *lat.last().unwrap(),
    }
}

/// As many requests as `CONNECTIONS` connections can make in `RUN`, each
/// sending the next as soon as the last answer is in.
async fn closed_loop(addr: SocketAddr, paths: Arc<Vec<String>>) -> Figures {
    let start = Instant::now();
    let until = start + RUN;
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let paths = paths.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await;
            let mut lat = Vec::new();
            let mut i = c;
            while Instant::now() < until {
                let t = Instant::now();
                let status = conn.get(&paths[i % paths.len()]).await;
                assert_eq!(status, 200);
                lat.push(t.elapsed().as_micros() as u64);
                i += CONNECTIONS;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    figures(all, start.elapsed())
}

/// `FIXED_RATE` requests a second for `RUN`, spread over
/// `FIXED_CONNECTIONS` connections on a fixed schedule. Latency counts
/// from when a request was due, so a stall delays the requests behind it
/// and shows in the figures.
async fn fixed_rate(addr: SocketAddr, paths: Arc<Vec<String>>) -> Figures {
    let start = Instant::now();
    let per_conn = Duration::from_micros(1_000_000 * FIXED_CONNECTIONS / FIXED_RATE);
    let count = (RUN.as_micros() / per_conn.as_micros()) as usize;
    let mut tasks = Vec::new();
    for c in 0..FIXED_CONNECTIONS {
        let paths = paths.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await;
            // Connections start staggered across one period.
            let offset = per_conn * c as u32 / FIXED_CONNECTIONS as u32;
            let first = tokio::time::Instant::now() + offset;
            let mut ticks = tokio::time::interval_at(first, per_conn);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut lat = Vec::with_capacity(count);
            for n in 0..count {
                let due = ticks.tick().await;
                let status = conn
                    .get(&paths[(n * FIXED_CONNECTIONS as usize + c as usize) % paths.len()])
                    .await;
                assert_eq!(status, 200);
                lat.push(due.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    figures(all, start.elapsed())
}

fn row(what: &str, f: &Figures) {
    println!(
        "| {what} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
        f.per_sec,
        f.p50_us as f64 / 1000.0,
        f.p99_us as f64 / 1000.0,
        f.max_us as f64 / 1000.0,
        f.requests
    );
}

/// A gateway on `store`, served by `server`.
fn serve(
    server: &tokio::runtime::Runtime,
    store: Arc<Store>,
    publisher: PublisherFile,
) -> SocketAddr {
    let state = GatewayState::new(store, vec![publisher]);
    server.block_on(async {
        let listener = gateway::bind(&GatewayConfig {
            enabled: true,
            address: "127.0.0.1:0".into(),
            public: false,
        })
        .await
        .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(gateway::serve(listener, state, std::future::pending()));
        addr
    })
}

fn two_threads() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn one_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The same pages from a plain store and a sealed one holding the same
/// stories, measured in turn in one run.
async fn sealed_vs_plain(
    plain: SocketAddr,
    sealed: SocketAddr,
    ids: &[BundleId],
    sealed_ids: &[BundleId],
) {
    let paths = |ids: &[BundleId]| {
        Arc::new(
            ids.iter()
                .map(|id| format!("/story/{id}"))
                .collect::<Vec<_>>(),
        )
    };
    let home = Arc::new(vec!["/".to_owned()]);
    println!(
        "\n| Sealed against plain ({CONNECTIONS} connections, {} s each) | plain requests/s | sealed requests/s | ratio (target >= 0.8) | sealed p99 |",
        RUN.as_secs()
    );
    println!("|---|---|---|---|---|");
    for (what, on_plain, on_sealed) in [
        (
            format!("story page, {} in turn", ids.len()),
            paths(ids),
            paths(sealed_ids),
        ),
        ("home page".to_owned(), home.clone(), home.clone()),
    ] {
        // Both warmed, then two runs of each in turn, the better of each
        // kept: the ratio should not depend on which ran beside a burst of
        // other work.
        let _ = closed_loop(sealed, on_sealed.clone()).await;
        let _ = closed_loop(plain, on_plain.clone()).await;
        let mut p = closed_loop(plain, on_plain.clone()).await;
        let mut s = closed_loop(sealed, on_sealed.clone()).await;
        let p2 = closed_loop(plain, on_plain).await;
        let s2 = closed_loop(sealed, on_sealed).await;
        if p2.per_sec > p.per_sec {
            p = p2;
        }
        if s2.per_sec > s.per_sec {
            s = s2;
        }
        println!(
            "| {what} | {:.0} | {:.0} | {:.2} | {:.2} ms |",
            p.per_sec,
            s.per_sec,
            s.per_sec / p.per_sec,
            s.p99_us as f64 / 1000.0
        );
    }
}

/// This process's resident memory now and at its peak, in MiB.
fn rss_mib() -> (f64, f64) {
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

/// The serving process: opens the filled store in `dir` as a node
/// starting would, and measures.
fn serve_and_measure(dir: &std::path::Path, count: u64) {
    let newsroom = Newsroom::new();
    let server = two_threads();
    let start = Instant::now();
    let store = Arc::new(Store::open(dir, StoreConfig::default()).unwrap());
    let opened = start.elapsed();
    let addr = serve(&server, store.clone(), newsroom.file());
    let client = one_thread();
    let restart = std::env::var_os(RESTART_ENV).is_some();
    client.block_on(async {
        let mut c = Conn::open(addr).await;
        assert_eq!(c.get("/").await, 200);
        println!(
            "first home page after {}, {count} stories: {:.1} ms (of which opening the store {:.1} ms)",
            if restart {
                "a second start"
            } else {
                "the first start since the store was filled"
            },
            start.elapsed().as_secs_f64() * 1000.0,
            opened.as_secs_f64() * 1000.0
        );
        if restart {
            return;
        }
        let t = Instant::now();
        assert_eq!(c.get("/p/bench-news?lang=ru&page=3").await, 200);
        println!(
            "first filtered list after start: {:.2} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
    });
    if restart {
        let (now, peak) = rss_mib();
        println!("after a second start: {now:.0} MiB resident, {peak:.0} MiB at peak");
        return;
    }
    // Story pages to go through: evenly spread over the archive, read
    // from the index in pages.
    let step = count.div_ceil(STORY_SAMPLE).max(1) as usize;
    let key = newsroom.root.public();
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .index_page(&key, Facet::All, after.as_ref(), 1000)
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(IndexCursor {
            published: last.published,
            story: last.story,
        });
        ids.extend(page.iter().step_by(step).map(|e| e.id));
    }
    let sample = ids.len();
    client.block_on(async {
        let mut c = Conn::open(addr).await;
        let t = Instant::now();
        assert_eq!(c.get(&format!("/story/{}", ids[0])).await, 200);
        println!(
            "first story page (sanitizes its body): {:.2} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );

        let one_story = Arc::new(vec![format!("/story/{}", ids[ids.len() / 2])]);
        // Stories in turn: bodies not yet sanitized at first, then more
        // stories than the body cache holds.
        let all_stories = Arc::new(
            ids.iter()
                .map(|id| format!("/story/{id}"))
                .collect::<Vec<_>>(),
        );
        let home = Arc::new(vec!["/".to_owned()]);
        let list = Arc::new(vec!["/p/bench-news?lang=ru&page=3".to_owned()]);

        // Warm up connections and caches.
        let _ = closed_loop(addr, one_story.clone()).await;
        println!(
            "\n| What ({count} stories, {CONNECTIONS} connections, {} s) | requests/s | p50 | p99 | max | requests |",
            RUN.as_secs()
        );
        println!("|---|---|---|---|---|---|");
        row(
            "story page, one story",
            &closed_loop(addr, one_story.clone()).await,
        );
        row(
            &format!("story page, {sample} in turn"),
            &closed_loop(addr, all_stories.clone()).await,
        );
        row("home page", &closed_loop(addr, home.clone()).await);
        row(
            "publisher list, language filter, page 3",
            &closed_loop(addr, list.clone()).await,
        );
        println!(
            "\n| What ({count} stories, fixed {FIXED_RATE} requests/s, {FIXED_CONNECTIONS} connections, {} s) | requests/s | p50 | p99 | max | requests |",
            RUN.as_secs()
        );
        println!("|---|---|---|---|---|---|");
        row(
            &format!("story page, {sample} in turn"),
            &fixed_rate(addr, all_stories.clone()).await,
        );
        row("home page", &fixed_rate(addr, home.clone()).await);
        row(
            "publisher list, language filter, page 3",
            &fixed_rate(addr, list.clone()).await,
        );

        // A story stored while serving: from the ingest returning to the
        // first home page that lists it, asking again at once.
        let mut c = Conn::open(addr).await;
        let mut worst = Duration::ZERO;
        let mut ingest = Duration::ZERO;
        for k in 1..=5u64 {
            let n = count + k;
            let b = newsroom.bundle(n, wall(), wall());
            let t = Instant::now();
            store.ingest(&[b]).unwrap();
            ingest = ingest.max(t.elapsed());
            let t = Instant::now();
            let title = format!("Story number {n}:");
            loop {
                assert_eq!(c.get("/").await, 200);
                if c.holds(title.as_bytes()) {
                    break;
                }
                assert!(t.elapsed() < Duration::from_secs(60), "story {n} never showed");
            }
            worst = worst.max(t.elapsed());
        }
        println!(
            "\nstored story on the home page (worst of 5): {:.2} ms after its ingest returned (ingest itself at most {:.1} ms)",
            worst.as_secs_f64() * 1000.0,
            ingest.as_secs_f64() * 1000.0
        );
    });
    let (now, peak) = rss_mib();
    println!(
        "serving process memory: {now:.0} MiB resident now, {peak:.0} MiB at peak (sled cache {} MiB)",
        StoreConfig::default().cache_bytes >> 20
    );
    drop(server);
}

fn main() {
    let count = stories();
    if let Ok(dir) = std::env::var(SERVE_ENV) {
        serve_and_measure(std::path::Path::new(&dir), count);
        return;
    }
    let dir = tempfile::TempDir::new().unwrap();
    // `KOLOKOL_BENCH_STORE=<folder>` keeps the filled store there and uses
    // it again when it holds as many stories (its first start is then not
    // the first since it was filled).
    let kept = std::env::var_os("KOLOKOL_BENCH_STORE").map(std::path::PathBuf::from);
    let plain_dir = kept.clone().unwrap_or_else(|| dir.path().join("store"));
    let newsroom = Newsroom::new();
    let ids = {
        let store = Store::open(&plain_dir, StoreConfig::default()).unwrap();
        let ids = if kept.is_some() && store.totals().unwrap().bundles >= count {
            println!(
                "used the store kept in {}: {} stories",
                plain_dir.display(),
                store.totals().unwrap().bundles
            );
            None
        } else {
            let t = Instant::now();
            let ids = fill(&store, &newsroom, count);
            println!(
                "stored {count} stories (about 4 KiB each) in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            Some(ids)
        };
        // As a node that stops does (a killed one leaves the snapshot to
        // its next start: see `Store::close`).
        let t = Instant::now();
        let settled = store.should_settle();
        store.close().unwrap();
        if settled {
            println!(
                "closed the store, its snapshot written, in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
        ids
    };
    // A fresh process serves, so that its memory and first page are a
    // node's after a start, not the filler's.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(std::env::args().skip(1))
        .env(SERVE_ENV, &plain_dir)
        .env("KOLOKOL_BENCH_STORIES", count.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "the serving process failed");
    // sled replays its log from where it last started, so a second start
    // replays only what the first serving process wrote.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(std::env::args().skip(1))
        .env(SERVE_ENV, &plain_dir)
        .env(RESTART_ENV, "1")
        .env("KOLOKOL_BENCH_STORIES", count.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "the restarted serving process failed");

    let sealed_too = std::env::var("KOLOKOL_BENCH_SEALED").map_or(count <= 10_000, |v| v == "1");
    let Some(ids) = ids.filter(|_| sealed_too) else {
        return;
    };
    let sealed_store = Arc::new(
        Store::open_with(
            &dir.path().join("sealed"),
            StoreConfig::default(),
            Some(Arc::new(Sealer::new(&DataKey::random()))),
        )
        .unwrap(),
    );
    let t = Instant::now();
    let sealed_ids = fill(&sealed_store, &newsroom, count);
    println!(
        "\nstored the same stories in a sealed store in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let store = Arc::new(Store::open(&plain_dir, StoreConfig::default()).unwrap());
    let server = two_threads();
    let addr = serve(&server, store, newsroom.file());
    let sealed_addr = serve(&server, sealed_store, newsroom.file());
    one_thread().block_on(sealed_vs_plain(addr, sealed_addr, &ids, &sealed_ids));
    drop(server);
}
