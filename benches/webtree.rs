//! `cargo bench --bench webtree`: the plain-HTTPS channel.
//!
//! 1. A fresh node reading 10,000 stories (4 KiB body) from a web tree
//!    that Debian's nginx serves over TLS on loopback, against the libp2p
//!    catch-up of the same stories from a peer in the same run; the ratio
//!    is the web pull's speed as a share of catch-up's (target >= 0.5).
//! 2. A story with a 1 MiB image read through a relay that freezes every
//!    flow after 16 KiB from the server, as Russia's TSPU does to foreign
//!    hosting (target <= 60 s).
//!
//! Without nginx (Debian's nginx-light) the web figures are skipped, and
//! say so.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Fixture, now, wait_stored};
use kolokol::proto::*;
use kolokol::store::{Store, StoreConfig};
use kolokol::web::fetch::Flows;
use kolokol::web::http::{HttpClient, Source};
use kolokol::web::pull::{Puller, Sink};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const STORIES: u64 = 10_000;
const IMAGE: usize = 1024 * 1024;
const FREEZE_AFTER: u64 = 16 * 1024;

/// A CA and a certificate for `localhost` in `dir`: (ca, cert, key).
fn certs(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let w = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    (
        w("ca.pem", ca.pem()),
        w("cert.pem", leaf.pem()),
        w("key.pem", leaf_key.serialize_pem()),
    )
}

/// nginx serving `root` over TLS on a free loopback port; killed on drop.
struct Nginx(std::process::Child, u16);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx(dir: &Path, root: &Path, cert: &Path, key: &Path) -> Option<Nginx> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n\
         client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{\n\
         listen 127.0.0.1:{port} ssl;\n    server_name localhost;\n    ssl_certificate {};\n\
         ssl_certificate_key {};\n    root {};\n  }}\n}}\n",
        cert.display(),
        key.display(),
        root.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let n = Nginx(child, port);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(n)
}

/// A relay on loopback to `to` that passes the server's first `limit`
/// bytes of each connection and then nothing more, either way, with no
/// end: a frozen flow. Returns its port.
async fn freezing_relay(to: u16, limit: u64) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let f2 = frozen.clone();
                let up = tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if !f2.load(std::sync::atomic::Ordering::Relaxed)
                            && sw.write_all(&buf[..n]).await.is_err()
                        {
                            break;
                        }
                    }
                });
                let mut sent = 0u64;
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let room = (limit - sent).min(n as u64) as usize;
                    if room > 0 && cw.write_all(&buf[..room]).await.is_err() {
                        break;
                    }
                    sent += room as u64;
                    if sent >= limit {
                        frozen.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                // Held open until the client gives up on it.
                let _ = up.await;
                drop(cw);
            });
        }
    });
    port
}

/// One story with a body and an image of `image` bytes.
fn story_with_image(f: &Fixture, image: &[u8]) -> VerifiedBundle {
    let body = b"<p>A photo.</p>".to_vec();
    let signed_at = now().minus(3600);
    let m = Manifest {
        format: FORMAT_VERSION,
        publisher: f.root.public(),
        certificate: CertId::of(&f.cert),
        story: StoryId([9; 16]),
        version: 1,
        kind: Kind::Story,
        sequence: 1,
        supersedes: None,
        signed_at,
        metadata: Metadata {
            title: "A photo".into(),
            language: "en".into(),
            authors: vec![],
            section: None,
            published: signed_at,
            updated: None,
            original_url: None,
            summary: None,
        },
        entries: vec![
            Entry {
                path: BODY_PATH.into(),
                media_type: BODY_MEDIA_TYPE.into(),
                size: body.len() as u64,
                hash: BlobHash::of(&body),
            },
            Entry {
                path: "media/photo.jpg".into(),
                media_type: "image/jpeg".into(),
                size: image.len() as u64,
                hash: BlobHash::of(image),
            },
        ],
    };
    let signed = m.sign(&f.signing).unwrap();
    let vm = f.policy.verify_manifest(&signed, now()).unwrap();
    f.policy
        .verify_bundle(vm, vec![body, image.to_vec()])
        .unwrap()
}

/// Pulls the tree at `url` into a fresh node until `n` bundles are stored;
/// seconds taken, and the flows' figures.
async fn web_pull(
    f: &Fixture,
    url: &str,
    ca: &Path,
    n: u64,
) -> (f64, kolokol::web::fetch::FlowStats) {
    let dir = tempfile::TempDir::new().unwrap();
    let fresh = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
    let (node, _) = f.node(fresh.clone()).await;
    let client = HttpClient::new(&[ca.to_owned()], None).unwrap();
    let flows = Flows::new(
        Source::parse(url).unwrap(),
        client,
        Duration::from_secs(2),
        4,
    );
    let mut puller = Puller::new(fresh.clone(), Sink::Node(node.clone()));
    let start = Instant::now();
    let mut stored = 0;
    while stored < n && start.elapsed() < Duration::from_secs(300) {
        match puller.pull(&flows).await {
            Ok(r) => stored += r.new,
            Err(e) => eprintln!("  (a pull failed and is tried again: {e})"),
        }
    }
    let took = start.elapsed().as_secs_f64();
    assert_eq!(stored, n, "the web pull stored every bundle");
    node.shutdown().await.unwrap();
    (took, flows.stats())
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let stories = if quick { 300 } else { STORIES };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let f = Fixture::new();
        let full = Arc::new(Store::memory(StoreConfig::default()));
        f.store(&full, stories);

        // libp2p catch-up of the stories, for the ratio.
        let dir = tempfile::TempDir::new().unwrap();
        let fresh = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
        let (a, a_addr) = f.node(full.clone()).await;
        let (b, _) = f.node(fresh.clone()).await;
        let mut events = b.events();
        let start = Instant::now();
        b.dial(a_addr).await.unwrap();
        assert!(wait_stored(&mut events, stories).await, "caught up");
        let catchup = start.elapsed().as_secs_f64();
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
        println!(
            "libp2p catch-up of {stories} stories from one peer: {catchup:.2} s ({:.0} stories/s)",
            stories as f64 / catchup
        );

        let work = tempfile::TempDir::new().unwrap();
        let root = work.path().join("www");
        let tree = root.join("tree");
        let start = Instant::now();
        let export = kolokol::web::export_web(&full, &tree).unwrap();
        println!(
            "  web tree export: {} segments, {:.1} MB, {:.2} s",
            export.segments,
            export.bytes as f64 / 1e6,
            start.elapsed().as_secs_f64()
        );
        let image: Vec<u8> = (0..IMAGE as u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        let photo = Arc::new(Store::memory(StoreConfig::default()));
        photo
            .put_certificate(&f.policy.verify_certificate(&f.cert).unwrap())
            .unwrap();
        photo.ingest(&[story_with_image(&f, &image)]).unwrap();
        kolokol::web::export_web(&photo, &root.join("photo")).unwrap();

        let (ca, cert, key) = certs(work.path());
        let Some(server) = nginx(work.path(), &root, &cert, &key) else {
            println!("web-tree figures skipped: nginx (Debian's nginx-light) is not installed");
            return;
        };
        let url = format!("https://localhost:{}/tree/", server.1);
        let (web, stats) = web_pull(&f, &url, &ca, stories).await;
        println!(
            "web-tree pull of {stories} stories from nginx over TLS on loopback: {web:.2} s ({:.0} stories/s), {} connections; \
             speed as a share of libp2p catch-up: {:.2} (target >= 0.5)",
            stories as f64 / web,
            stats.opened,
            catchup / web
        );

        let relay = freezing_relay(server.1, FREEZE_AFTER).await;
        let url = format!("https://localhost:{relay}/photo/");
        let (frozen, stats) = web_pull(&f, &url, &ca, 1).await;
        println!(
            "a 1 MiB image through flows frozen after {} KiB from the server: {frozen:.2} s (target <= 60 s); \
             {} connections, {} stalled, freeze learned at {:?} bytes",
            FREEZE_AFTER / 1024,
            stats.opened,
            stats.stalls,
            stats.freeze_at
        );
    });
}
