//! A mirror's TLS front on loopback: a quiet reader reaches the mirror
//! by WebSocket inside TLS on the front's secret path, and everyone else
//! sees an ordinary web site. And the handshake that answers only those
//! who dial a node by its peer id.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::process::{NodeProcess, kolokol, newsroom_and_reader, ok, publish, s, wait_until};
use common::tls::{certs, plain_exchange, status_of, tls_exchange};
use futures::StreamExt;
use kolokol::node::control::NodeFile;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, noise, ping, tcp, yamux};

const NAME: &str = "mirror.test";
const SECRET: &str = "/k3y-0f-th3-fr0nt-d00r";

fn node_file(data: &Path) -> NodeFile {
    toml::from_str(&std::fs::read_to_string(data.join("node.toml")).unwrap()).unwrap()
}

/// Starts a mirror on `data` behind a front on loopback; returns it and
/// the front's address.
fn mirror_with_front(
    data: &Path,
    certs: &common::tls::Certs,
    extra: &[&str],
) -> (NodeProcess, SocketAddr) {
    let mut args = vec![
        "--mirror",
        "--no-mdns",
        "--front",
        "127.0.0.1:0",
        "--front-cert",
        s(&certs.cert),
        "--front-key",
        s(&certs.key),
        "--front-path",
        SECRET,
    ];
    args.extend_from_slice(extra);
    let node = NodeProcess::start_with(data, &args);
    let front = node_file(data)
        .front
        .expect("the front runs")
        .parse()
        .unwrap();
    (node, front)
}

/// The address a reader dials: the front, as WebSocket inside TLS.
fn front_address(front: SocketAddr, peer: &str) -> String {
    let ma = Multiaddr::empty()
        .with(front.ip().into())
        .with(libp2p::multiaddr::Protocol::Tcp(front.port()))
        .with(libp2p::multiaddr::Protocol::Tls)
        .with(libp2p::multiaddr::Protocol::Sni(NAME.into()))
        .with(libp2p::multiaddr::Protocol::Ws(SECRET.into()));
    format!("{ma}/p2p/{peer}")
}

fn upgrade(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {NAME}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn a_quiet_reader_reaches_a_mirror_through_its_tls_front() {
    let dir = tempfile::TempDir::new().unwrap();
    let certs = certs(&dir.path().join("certs"), NAME);
    let (mirror, reader, newsroom) =
        newsroom_and_reader(dir.path(), "mirror", "reader", "front-news");
    let (_m, front) = mirror_with_front(&mirror, &certs, &[]);
    // Behind its front the mirror listens on loopback WebSocket only:
    // no port speaks libp2p in the clear.
    let listen = node_file(&mirror).listen;
    assert_eq!(listen.len(), 1, "{listen:?}");
    assert!(
        listen[0].starts_with("/ip4/127.0.0.1/tcp/") && listen[0].ends_with("/ws"),
        "{listen:?}"
    );

    let addr = front_address(front, &node_file(&mirror).peer_id);
    let _r = NodeProcess::start_with(&reader, &["--bootstrap", &addr, "--tls-root", s(&certs.ca)]);
    wait_until("the reader to connect through the front", || {
        ok(&reader, &["status"]).contains("peers:     1")
    });
    let start = Instant::now();
    publish(&mirror, &newsroom, "Through the front door");
    wait_until("the story at the reader", || {
        ok(&reader, &["status"]).contains("stories held: 1")
    });
    eprintln!(
        "a story reached the reader through the front in {:?}",
        start.elapsed()
    );
}

#[test]
fn a_reader_that_does_not_trust_the_fronts_certificate_does_not_connect() {
    let dir = tempfile::TempDir::new().unwrap();
    let certs = certs(&dir.path().join("certs"), NAME);
    let (mirror, reader, _newsroom) =
        newsroom_and_reader(dir.path(), "mirror", "reader", "front-news");
    let (_m, front) = mirror_with_front(&mirror, &certs, &[]);
    let addr = front_address(front, &node_file(&mirror).peer_id);
    let _r = NodeProcess::start_with(&reader, &["--bootstrap", &addr]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(ok(&reader, &["status"]).contains("peers:     0"));
}

#[test]
fn a_probe_of_the_front_sees_a_web_site_and_nothing_of_libp2p() {
    let dir = tempfile::TempDir::new().unwrap();
    let certs = certs(&dir.path().join("certs"), NAME);
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("about")).unwrap();
    std::fs::write(
        site.join("index.html"),
        "<html><body>Garden notes</body></html>",
    )
    .unwrap();
    std::fs::write(site.join("about/index.html"), "<html>About</html>").unwrap();
    let (mirror, _reader, _newsroom) =
        newsroom_and_reader(dir.path(), "mirror", "reader", "front-news");
    let (_m, front) = mirror_with_front(&mirror, &certs, &["--front-site", s(&site)]);
    let get =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n");
    let probe = |req: &[u8]| tls_exchange(front, NAME, &certs.ca_pem, req).unwrap();

    let home = probe(get("/").as_bytes());
    let text = String::from_utf8_lossy(&home);
    assert_eq!(status_of(&home), 200, "{text}");
    assert!(
        text.contains("Server: nginx") && text.contains("Garden notes"),
        "{text}"
    );
    let head =
        probe(format!("HEAD / HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n").as_bytes());
    assert!(
        !String::from_utf8_lossy(&head).contains("Garden"),
        "HEAD has no body"
    );
    assert_eq!(status_of(&probe(get("/about").as_bytes())), 301);
    assert_eq!(status_of(&probe(get("/about/").as_bytes())), 200);
    // The secret path, asked without the upgrade, is any missing page.
    let missing = probe(get("/nothing-here").as_bytes());
    let secret = probe(get(SECRET).as_bytes());
    assert_eq!(status_of(&missing), 404);
    assert_eq!(status_of(&secret), 404);
    let body = |r: &[u8]| {
        let t = String::from_utf8_lossy(r).into_owned();
        t.split("\r\n\r\n").nth(1).unwrap_or("").to_owned()
    };
    assert_eq!(body(&missing), body(&secret), "the same page");
    // An upgrade on any other path is refused as a web server refuses it.
    assert_eq!(status_of(&probe(&upgrade("/ws"))), 404);
    assert_eq!(status_of(&probe(&upgrade("/k3y-0f-th3-fr0nt-d00R"))), 404);
    assert_eq!(
        status_of(&probe(
            format!("POST / HTTP/1.1\r\nHost: {NAME}\r\nContent-Length: 0\r\n\r\n").as_bytes()
        )),
        405
    );
    // libp2p's first bytes, inside TLS or in the clear, get no libp2p.
    let inside = probe(b"\x13/multistream/1.0.0\n\x07/noise\n");
    assert_eq!(
        status_of(&inside),
        400,
        "{}",
        String::from_utf8_lossy(&inside)
    );
    let clear = plain_exchange(front, b"\x13/multistream/1.0.0\n\x07/noise\n");
    assert!(
        !String::from_utf8_lossy(&clear).contains("multistream"),
        "{clear:?}"
    );
    // The upgrade on the secret path is the node's: 101.
    let up = probe(&upgrade(SECRET));
    assert_eq!(status_of(&up), 101, "{}", String::from_utf8_lossy(&up));
}

#[test]
fn a_front_with_a_bad_setting_fails_the_start_and_says_why() {
    let dir = tempfile::TempDir::new().unwrap();
    let certs = certs(&dir.path().join("certs"), NAME);
    let data = dir.path().join("d");
    let run = |args: &[&str]| {
        let out = kolokol(&data, &[&["node", "--no-gateway"], args].concat());
        assert!(!out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A front on a free loopback port with this certificate and key.
    let front = |cert: &Path, key: &Path| -> Vec<String> {
        [
            "--front",
            "127.0.0.1:0",
            "--front-cert",
            s(cert),
            "--front-key",
            s(key),
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let with = |mut a: Vec<String>, more: &[&str]| -> Vec<String> {
        a.extend(more.iter().map(|m| (*m).to_owned()));
        a
    };
    let run_owned = |a: Vec<String>| run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let e = run_owned(front(&certs.cert, &certs.key));
    assert!(e.contains("quiet reader"), "{e}");
    let e = run_owned(with(front(&certs.ca, &certs.ca), &["--mirror"]));
    assert!(e.contains("not a PEM private key"), "{e}");
    let e = run_owned(with(
        front(&certs.cert, &certs.key),
        &["--mirror", "--front-path", "/short"],
    ));
    assert!(e.contains("hard to guess"), "{e}");
    let e = run(&["--bootstrap", "/ip4/127.0.0.1/tcp/4001"]);
    assert!(e.contains("names no peer"), "{e}");
    let e = run(&["--proxy", "ftp://127.0.0.1:21"]);
    assert!(e.contains("unknown scheme"), "{e}");
}

// ---- the handshake answers only a dialer who names the node ----

fn probe_swarm(stock_noise: bool) -> Swarm<ping::Behaviour> {
    use libp2p::Transport;
    let key = libp2p::identity::Keypair::generate_ed25519();
    let transport = if stock_noise {
        tcp::tokio::Transport::new(tcp::Config::default())
            .upgrade(libp2p::core::upgrade::Version::V1Lazy)
            .authenticate(noise::Config::new(&key).unwrap())
            .multiplex(yamux::Config::default())
            .map(|(p, m), _| (p, libp2p::core::muxing::StreamMuxerBox::new(m)))
            .boxed()
    } else {
        kolokol::net::transport::tcp_only(&key)
    };
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|_| transport)
        .unwrap()
        .with_behaviour(|_| ping::Behaviour::default())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(5)))
        .build()
}

/// Dials `addr`; the peer id the connection came up with, or the error.
async fn dial(swarm: &mut Swarm<ping::Behaviour>, addr: Multiaddr) -> Result<PeerId, String> {
    swarm.dial(addr).unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => return Ok(peer_id),
                SwarmEvent::OutgoingConnectionError { error, .. } => return Err(error.to_string()),
                _ => {}
            }
        }
    })
    .await
    .expect("the dial ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_dialer_that_names_the_node_completes_the_handshake() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("m");
    let node = NodeProcess::start(&data, &[]);
    let file = node_file(&data);
    let bare: Multiaddr = file.listen[0].parse().unwrap();
    let named: Multiaddr = node.addr().parse().unwrap();
    let peer: PeerId = file.peer_id.parse().unwrap();

    // Named: the handshake completes, with the node's id.
    assert_eq!(dial(&mut probe_swarm(false), named.clone()).await, Ok(peer));
    // Not named, as a scan of addresses dials: the handshake fails, and
    // the scanner never learns the id, nor anything past it.
    let e = dial(&mut probe_swarm(false), bare.clone())
        .await
        .unwrap_err();
    eprintln!("a dial that names no peer: {e}");
    // A stock libp2p dialer, even with the id: it fails the same way.
    let e = dial(&mut probe_swarm(true), named).await.unwrap_err();
    eprintln!("a stock libp2p dial: {e}");
    let e = dial(&mut probe_swarm(true), bare).await.unwrap_err();
    assert!(!e.contains(&peer.to_string()), "{e}");
    drop(node);
}

/// A mirror's front serves the web tree its node keeps inside the site:
/// a reader that knows only the tree's address reads the story from it,
/// in ranges, as from any static server.
#[test]
fn a_front_serves_the_web_tree_its_node_keeps() {
    let dir = tempfile::TempDir::new().unwrap();
    let certs = certs(&dir.path().join("certs"), "localhost");
    let (mirror, reader, newsroom) =
        newsroom_and_reader(dir.path(), "mirror", "reader", "front-tree");
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("tree")).unwrap();
    std::fs::write(site.join("index.html"), "<html><body>A blog</body></html>").unwrap();
    std::fs::create_dir_all(&mirror).unwrap();
    std::fs::write(
        mirror.join("config.toml"),
        format!(
            "[web]\nexport_dir = {:?}\nexport_secs = 1\n",
            site.join("tree").display().to_string()
        ),
    )
    .unwrap();
    let (_m, front) = mirror_with_front(&mirror, &certs, &["--front-site", s(&site)]);
    publish(&mirror, &newsroom, "From the front's own tree");
    std::fs::write(reader.join("config.toml"), "[web]\npoll_secs = 1\n").unwrap();
    let _r = NodeProcess::start_with(
        &reader,
        &[
            "--no-mdns",
            "--web-source",
            &format!("https://localhost:{}/tree/", front.port()),
            "--tls-root",
            s(&certs.ca),
        ],
    );
    wait_until("the story from the front's tree", || {
        ok(&reader, &["status"]).contains("stories held: 1")
    });
}
