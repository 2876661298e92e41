//! Gateway fixtures: a store holding the demo newsroom's sample stories,
//! a gateway served on 127.0.0.1:0, and a small HTTP client.

use std::net::SocketAddr;
use std::sync::Arc;

use kolokol::gateway::{self, GatewayState};
use kolokol::newsroom::{Published, demo};
use kolokol::proto::Timestamp;
use kolokol::proto::bundle::verify_bundle_file;
use kolokol::store::{Store, StoreConfig};
use kolokol::trust::PublisherFile;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn wall_clock() -> Timestamp {
    Timestamp::from_system(std::time::SystemTime::now())
}

/// The demo newsroom's samples, signed now in `dir`.
pub struct Samples {
    pub publisher: PublisherFile,
    pub published: Vec<Published>,
}

impl Samples {
    pub fn sign(dir: &std::path::Path) -> Self {
        let newsroom = demo::open_or_init(dir, wall_clock()).unwrap();
        let published = demo::publish_samples(&newsroom, wall_clock()).unwrap();
        Self {
            publisher: newsroom.public_file(),
            published,
        }
    }

    /// Verifies every sample bundle file and stores it with its
    /// certificate and heads, as a node would.
    pub fn store_into(&self, store: &Store) {
        let policy = kolokol::trust::policy_of(std::slice::from_ref(&self.publisher)).unwrap();
        for p in &self.published {
            let v = verify_bundle_file(&policy, p.file.clone(), wall_clock()).unwrap();
            store.put_certificate(&v.certificate).unwrap();
            for h in &v.heads {
                store.put_head(h).unwrap();
            }
            store.ingest(&[v.bundle]).unwrap();
        }
    }

    /// The bundle id of sample `i` (publication order: 0 story with image,
    /// 1 its correction, 2 Russian, 3 Arabic, 4 rumour, 5 its retraction).
    pub fn id(&self, i: usize) -> String {
        self.published[i].bundle.id().to_string()
    }
}

/// A gateway served on a free loopback port until the value is dropped.
pub struct Served {
    pub addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn serve(state: GatewayState) -> Served {
    let listener = gateway::bind(&gateway::GatewayConfig {
        enabled: true,
        address: "127.0.0.1:0".into(),
        public: false,
    })
    .await
    .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gateway::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Served { addr, _stop: stop }
}

/// A store with the samples, and a gateway over it.
pub async fn demo_gateway(dir: &std::path::Path) -> (Samples, Arc<Store>, Served) {
    let samples = Samples::sign(dir);
    let store = Arc::new(Store::memory(StoreConfig::default()));
    samples.store_into(&store);
    let state = GatewayState::new(store.clone(), vec![samples.publisher.clone()]);
    let served = serve(state).await;
    (samples, store, served)
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }
}

/// GET `path` with extra request headers, over a fresh connection.
pub async fn get_with(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Response {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    if !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (n, v) in extra {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header end");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Response {
    get_with(addr, path, &[]).await
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(
            std::str::from_utf8(&data[..line_end])
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
