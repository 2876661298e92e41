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
        let mut policy = kolokol::trust::policy_of(std::slice::from_ref(&self.publisher)).unwrap();
        for p in &self.published {
            let v = verify_bundle_file(&policy, p.file.clone(), wall_clock()).unwrap();
            store.put_certificate(&v.certificate).unwrap();
            for h in &v.heads {
                if policy.accept_head(h.clone()) {
                    store.record_head(h).unwrap();
                }
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
    send(addr, "GET", path, extra, b"").await
}

/// Sends one request over a fresh connection and reads the whole answer.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    if !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (n, v) in extra {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    // Read the head, then exactly the body it announces: some servers
    // (chromedriver) keep the connection open despite `Connection: close`.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "the connection closed before the header end");
        raw.extend_from_slice(&buf[..n]);
    };
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
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let no_body = status == 304 || status == 204 || method == "HEAD";
    if let Some(len) = find("content-length").and_then(|l| l.parse::<usize>().ok()) {
        while body.len() < len {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the connection closed inside the body");
            body.extend_from_slice(&buf[..n]);
        }
        body.truncate(len);
    } else if find("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        while !body.ends_with(b"0\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the connection closed inside the body");
            body.extend_from_slice(&buf[..n]);
        }
        body = dechunk(&body);
    } else if !no_body {
        s.read_to_end(&mut body).await.unwrap();
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
