//! Just enough HTTP/1.1 over TLS for reading a web tree: `GET` with a
//! `Range`, keep-alive, and a body read by progress. Each read has to
//! bring a byte within the stall time, however long the whole answer
//! takes: a slow link that keeps delivering is never cut off, a frozen
//! flow is noticed within seconds. The bytes read off each socket are
//! counted, since a censor that freezes flows does so after a byte count.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::WebError;
use crate::net::proxy::{self, Proxy};

/// Largest response head read.
const MAX_HEAD: usize = 16 * 1024;
/// Headers parsed at most.
const MAX_HEADERS: usize = 64;
/// Connecting (TCP, proxy and TLS together) may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest root certificate file read.
const MAX_ROOTS_FILE: u64 = 1024 * 1024;

/// A web tree's address, checked: `https://host[:port]/path/`, or
/// `http://` to a loopback host only (a test's or a local proxy's: plain
/// HTTP beyond the machine would show the censor every name read).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source {
    url: String,
    host: String,
    port: u16,
    tls: bool,
    base: String,
}

impl Source {
    /// Parses and checks a source's address.
    pub fn parse(text: &str) -> Result<Self, WebError> {
        let bad = |reason: &str| WebError::Source {
            url: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.len() > 512 {
            return Err(bad("longer than 512 bytes"));
        }
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        let host = url
            .host_str()
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = match url.scheme() {
            "https" => true,
            "http" if is_loopback(&host) => false,
            "http" => {
                return Err(bad(
                    "plain http:// shows every request to the network: use https://",
                ));
            }
            other => return Err(bad(&format!("scheme {other:?}: use https://"))),
        };
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(bad("a web source has no query, fragment or user name"));
        }
        let mut base = url.path().to_owned();
        if !base.ends_with('/') {
            base.push('/');
        }
        Ok(Self {
            url: text.to_owned(),
            port: url
                .port_or_known_default()
                .unwrap_or(if tls { 443 } else { 80 }),
            host,
            tls,
            base,
        })
    }

    /// The address as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The request path of a file of the tree.
    fn path_of(&self, file: &str) -> String {
        format!("{}{file}", self.base)
    }

    /// The `Host` header's value.
    fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Opens connections to web sources: TLS with the web's roots (and any
/// extra ones), through the proxy when one is set. One TLS configuration
/// serves every connection, so later handshakes resume the session and
/// cost the censor's byte count less.
#[derive(Clone)]
pub struct HttpClient {
    tls: TlsConnector,
    proxy: Option<Proxy>,
}

impl HttpClient {
    /// A client trusting the built-in web roots and the PEM files `roots`.
    pub fn new(roots: &[std::path::PathBuf], proxy: Option<Proxy>) -> Result<Self, WebError> {
        let mut store = rustls::RootCertStore::empty();
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for path in roots {
            let pem = crate::files::read_bounded(path, MAX_ROOTS_FILE)?;
            let mut any = false;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    WebError::Http(format!("{}: not a PEM certificate: {e}", path.display()))
                })?;
                store.add(cert).map_err(|e| {
                    WebError::Http(format!("{}: unusable certificate: {e}", path.display()))
                })?;
                any = true;
            }
            if !any {
                return Err(WebError::Http(format!(
                    "{}: holds no PEM certificate",
                    path.display()
                )));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| WebError::Http(format!("TLS setup: {e}")))?
            .with_root_certificates(store)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            proxy,
        })
    }

    /// Opens a fresh connection (a new flow) to `source`.
    pub async fn connect(&self, source: &Source) -> Result<Conn, WebError> {
        let fail = |e: std::io::Error| {
            WebError::Http(format!(
                "connecting to {}:{}: {e}",
                source.host, source.port
            ))
        };
        let open = async {
            let tcp = match &self.proxy {
                Some(p) => proxy::connect_to(p, &source.host, source.port)
                    .await
                    .map_err(fail)?,
                None => TcpStream::connect((source.host.as_str(), source.port))
                    .await
                    .map_err(fail)?,
            };
            let _ = tcp.set_nodelay(true);
            let read = Arc::new(AtomicU64::new(0));
            let counted = Counted {
                inner: tcp,
                read: read.clone(),
            };
            let stream = if source.tls {
                let name = ServerName::try_from(source.host.clone()).map_err(|e| {
                    WebError::Http(format!("{}: not a host name: {e}", source.host))
                })?;
                let tls = self
                    .tls
                    .connect(name, counted)
                    .await
                    .map_err(|e| WebError::Http(format!("TLS with {}: {e}", source.host)))?;
                Stream::Tls(Box::new(tls))
            } else {
                Stream::Plain(counted)
            };
            Ok(Conn {
                stream,
                read,
                reusable: true,
                buffered: Vec::new(),
            })
        };
        tokio::time::timeout(CONNECT_TIMEOUT, open)
            .await
            .map_err(|_| WebError::Http(format!("connecting to {} timed out", source.host)))?
    }
}

/// A TCP stream that counts the bytes read off it.
struct Counted {
    inner: TcpStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

enum Stream {
    Plain(Counted),
    Tls(Box<TlsStream<Counted>>),
}

impl Stream {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf).await,
            Self::Tls(s) => s.read(buf).await,
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.write_all(buf).await,
            Self::Tls(s) => s.write_all(buf).await,
        }
    }
}

/// Takes an answer's body as it comes: the file offset of each part and
/// its bytes; failing stops the read.
pub type BodySink<'a> = dyn FnMut(u64, &[u8]) -> Result<(), WebError> + Send + 'a;

/// One connection to a source.
pub struct Conn {
    stream: Stream,
    read: Arc<AtomicU64>,
    reusable: bool,
    /// Bytes read past the last answer's end (none, with a server that
    /// answers one request at a time).
    buffered: Vec<u8>,
}

/// The head of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Where in the file the body starts.
    pub offset: u64,
    /// The body's length.
    pub len: u64,
    /// The whole file's length, when the host said.
    pub total: Option<u64>,
}

impl Conn {
    /// Bytes read off this connection's socket so far, TLS included.
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Whether another request may go on this connection.
    pub fn is_reusable(&self) -> bool {
        self.reusable
    }

    async fn read_some(&mut self, buf: &mut [u8], stall: Duration) -> Result<usize, WebError> {
        if !self.buffered.is_empty() {
            let n = self.buffered.len().min(buf.len());
            buf[..n].copy_from_slice(&self.buffered[..n]);
            self.buffered.drain(..n);
            return Ok(n);
        }
        match tokio::time::timeout(stall, self.stream.read(buf)).await {
            Err(_) => {
                self.reusable = false;
                Err(WebError::Stalled(stall))
            }
            Ok(Err(e)) => {
                self.reusable = false;
                Err(WebError::Http(format!("reading: {e}")))
            }
            Ok(Ok(0)) => {
                self.reusable = false;
                Err(WebError::Http("the host closed the connection".into()))
            }
            Ok(Ok(n)) => Ok(n),
        }
    }

    /// Asks for `file` of `source` (bytes `range.0` to `range.0 +
    /// range.1`, or the whole file), and hands the body to `body` as it
    /// comes, with the file offset of each part; `body` may stop the read
    /// by failing. A body over `max_len` is refused before it is read.
    pub async fn get(
        &mut self,
        source: &Source,
        file: &str,
        range: Option<(u64, u64)>,
        max_len: u64,
        stall: Duration,
        body: &mut BodySink<'_>,
    ) -> Result<Answer, WebError> {
        let mut request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\n",
            source.path_of(file),
            source.host_header()
        );
        if let Some((start, len)) = range {
            request.push_str(&format!(
                "Range: bytes={start}-{}\r\n",
                start + len.max(1) - 1
            ));
        }
        request.push_str("\r\n");
        let sent = tokio::time::timeout(stall.max(Duration::from_secs(5)), async {
            self.stream.write_all(request.as_bytes()).await
        })
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            self.reusable = false;
            return Err(WebError::Http(format!("sending the request for {file}")));
        }
        let (answer, keep_alive) = self.read_head(file, range, max_len, stall).await?;
        let mut left = answer.len;
        let mut at = answer.offset;
        let mut buf = vec![0u8; 16 * 1024];
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = self.read_some(&mut buf[..want], stall).await?;
            left -= n as u64;
            if let Err(e) = body(at, &buf[..n]) {
                self.reusable = false;
                return Err(e);
            }
            at += n as u64;
        }
        self.reusable &= keep_alive;
        Ok(answer)
    }

    async fn read_head(
        &mut self,
        file: &str,
        range: Option<(u64, u64)>,
        max_len: u64,
        stall: Duration,
    ) -> Result<(Answer, bool), WebError> {
        let mut head = Vec::with_capacity(1024);
        let mut buf = [0u8; 2048];
        let end = loop {
            if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if head.len() > MAX_HEAD {
                self.reusable = false;
                return Err(WebError::Http(format!(
                    "an answer head over {MAX_HEAD} bytes"
                )));
            }
            let n = self.read_some(&mut buf, stall).await?;
            head.extend_from_slice(&buf[..n]);
        };
        self.buffered = head.split_off(end);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        let bad = |what: String| WebError::Http(format!("{file}: {what}"));
        match parsed.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => {
                self.reusable = false;
                return Err(bad("not an HTTP answer".into()));
            }
        }
        let status = parsed.code.unwrap_or(0);
        let header = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(str::trim)
        };
        let keep_alive = parsed.version == Some(1)
            && !header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if header("transfer-encoding").is_some() {
            self.reusable = false;
            return Err(bad(
                "a chunked or encoded answer (a static file has a length)".into(),
            ));
        }
        let length = header("content-length").and_then(|v| v.parse::<u64>().ok());
        let fail = |this: &mut Self, e: WebError| {
            this.reusable = false;
            Err(e)
        };
        let answer = match status {
            206 => {
                let Some((offset, last, total)) = header("content-range").and_then(content_range)
                else {
                    return fail(self, bad("206 without a usable Content-Range".into()));
                };
                let asked = range.map_or(0, |r| r.0);
                if offset != asked || last < offset {
                    return fail(
                        self,
                        bad(format!("asked from {asked}, got {offset}-{last}")),
                    );
                }
                Answer {
                    offset,
                    len: last - offset + 1,
                    total,
                }
            }
            200 => {
                let Some(len) = length else {
                    return fail(self, bad("200 without Content-Length".into()));
                };
                // A host that ignores Range sends the whole file: its
                // start is only useful when the start was asked.
                if range.is_some_and(|r| r.0 > 0) {
                    return fail(self, bad("the host ignores Range".into()));
                }
                Answer {
                    offset: 0,
                    len,
                    total: Some(len),
                }
            }
            404 | 410 => {
                // The body of a not-found page is skipped when short.
                self.skip_body(length, stall).await;
                return Err(WebError::NotFound(file.to_owned()));
            }
            code => {
                self.skip_body(length, stall).await;
                return Err(bad(format!("HTTP {code}")));
            }
        };
        if length.is_some_and(|l| l != answer.len) {
            return fail(
                self,
                bad("Content-Length and Content-Range disagree".into()),
            );
        }
        if answer.len > max_len {
            return fail(
                self,
                bad(format!(
                    "{} bytes, more than the {max_len} expected",
                    answer.len
                )),
            );
        }
        Ok((answer, keep_alive))
    }

    async fn skip_body(&mut self, length: Option<u64>, stall: Duration) {
        match length {
            Some(mut left) if left <= 64 * 1024 => {
                let mut buf = [0u8; 4096];
                while left > 0 {
                    let want = buf.len().min(left as usize);
                    match self.read_some(&mut buf[..want], stall).await {
                        Ok(n) => left -= n as u64,
                        Err(_) => return,
                    }
                }
            }
            _ => self.reusable = false,
        }
    }
}

/// `bytes FIRST-LAST/TOTAL` (TOTAL may be `*`).
fn content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((first.trim().parse().ok()?, last.trim().parse().ok()?, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_https_or_loopback_http_only() {
        let s = Source::parse("https://cdn.example.org/tree").unwrap();
        assert_eq!(s.path_of("index.kolokol"), "/tree/index.kolokol");
        assert_eq!(s.host_header(), "cdn.example.org");
        let s = Source::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(s.host_header(), "127.0.0.1:8080");
        assert!(Source::parse("http://example.org/").is_err());
        assert!(Source::parse("ftp://example.org/").is_err());
        assert!(Source::parse("https://example.org/?q=1").is_err());
        assert!(Source::parse("https://user@example.org/").is_err());
        assert!(Source::parse(&format!("https://e.org/{}", "a".repeat(600))).is_err());
    }

    #[test]
    fn content_ranges_parse() {
        assert_eq!(content_range("bytes 0-99/1000"), Some((0, 99, Some(1000))));
        assert_eq!(content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(content_range("bytes=0-9/10"), None);
        assert_eq!(content_range("bytes 9-x/10"), None);
    }
}
