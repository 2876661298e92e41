//! Dialing through a proxy the reader already runs: Tor's SOCKS port, a
//! Psiphon or VPN app's local proxy, an HTTP proxy.
//!
//! With a proxy set, every outgoing libp2p connection (TCP, WebSocket,
//! WebSocket inside TLS) is a connection to the proxy that asks it for
//! the peer's address; nothing else is dialed. `socks5h://` hands host
//! names to the proxy unresolved, so no DNS query for a mirror's name
//! leaves the machine; `socks5://` resolves them here first, as curl
//! does. QUIC cannot pass a SOCKS or HTTP proxy and is not used.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncWrite, FutureExt};
use libp2p::Multiaddr;
use libp2p::core::transport::{DialOpts, ListenerId, Transport, TransportError, TransportEvent};
use libp2p::multiaddr::Protocol;
use libp2p::tcp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::NetError;

/// A byte stream of any transport below the security upgrade.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// How long a proxy may take to connect us to the peer: Tor may build a
/// circuit first, which takes seconds on a slow bridge.
pub const PROXY_HANDSHAKE: Duration = Duration::from_secs(60);

/// Largest reply head read from an HTTP proxy.
const MAX_PROXY_REPLY: usize = 8 * 1024;

/// Which proxy protocol, and who resolves names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// SOCKS5, names resolved by the proxy (`socks5h://`).
    Socks5h,
    /// SOCKS5, names resolved here (`socks5://`).
    Socks5,
    /// An HTTP proxy that takes `CONNECT` (`http://`); it resolves names.
    HttpConnect,
}

/// A proxy to dial through, from a URL like `socks5h://127.0.0.1:9050`.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// The protocol.
    pub kind: ProxyKind,
    /// The proxy's host (a name or an address).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// A user name and password, when the URL has them.
    auth: Option<(String, String)>,
}

impl std::fmt::Debug for Proxy {
    // The password stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("auth", &self.auth.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl Proxy {
    /// Parses `socks5h://`, `socks5://` or `http://` URLs, with an
    /// optional `user:password@`.
    pub fn parse(text: &str) -> Result<Self, NetError> {
        let shown = without_credentials(text);
        let bad = |why: &str| NetError::Proxy(format!("{shown:?}: {why}"));
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        let (kind, default_port) = match url.scheme() {
            "socks5h" => (ProxyKind::Socks5h, 1080),
            "socks5" => (ProxyKind::Socks5, 1080),
            "http" => (ProxyKind::HttpConnect, 8080),
            other => {
                return Err(bad(&format!(
                    "unknown scheme {other:?}: use socks5h://, socks5:// or http://"
                )));
            }
        };
        let host = url
            .host_str()
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if url.path() != "/" && !url.path().is_empty() {
            return Err(bad("a proxy URL has no path"));
        }
        let auth = if url.username().is_empty() {
            None
        } else {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            Some((decode(url.username()), decode(url.password().unwrap_or(""))))
        };
        if let Some((u, p)) = &auth
            && (u.len() > 255 || p.len() > 255)
        {
            return Err(bad("user name and password are at most 255 bytes each"));
        }
        Ok(Self {
            kind,
            host,
            port: url.port().unwrap_or(default_port),
            auth,
        })
    }

    /// The proxy as the blocking HTTP client of one-off fetches takes it
    /// (ureq's form: `socks5://` or `http://`, credentials unencoded).
    /// Both SOCKS kinds hand names to the proxy there, which resolves
    /// them: for `socks5://` that reveals less than it promises, never
    /// more.
    pub(crate) fn for_fetch(&self) -> Result<ureq::Proxy, NetError> {
        let scheme = match self.kind {
            ProxyKind::Socks5h | ProxyKind::Socks5 => "socks5",
            ProxyKind::HttpConnect => "http",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let auth = match &self.auth {
            Some((u, p)) => format!("{u}:{p}@"),
            None => String::new(),
        };
        ureq::Proxy::new(format!("{scheme}://{auth}{host}:{}", self.port))
            .map_err(|e| NetError::Proxy(format!("{}:{}: {e}", self.host, self.port)))
    }
}

/// `text` with anything between the scheme and an `@` (a user name and a
/// password) replaced, for error messages: a proxy URL that fails to
/// parse may still hold a password.
fn without_credentials(text: &str) -> String {
    let (scheme, rest) = match text.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), text),
    };
    match rest.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}…@{host}"),
        None => text.to_owned(),
    }
}

/// Where to ask the proxy to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Ip(SocketAddr),
    Name(String, u16),
}

impl Target {
    /// The TCP target of `/ip4|ip6|dns|dns4|dns6/HOST/tcp/PORT[/p2p/ID]`.
    fn of(addr: &Multiaddr) -> Option<Self> {
        let mut it = addr.iter();
        let host = it.next()?;
        let Some(Protocol::Tcp(port)) = it.next() else {
            return None;
        };
        match it.next() {
            None | Some(Protocol::P2p(_)) => {}
            Some(_) => return None,
        }
        match host {
            Protocol::Ip4(ip) => Some(Self::Ip(SocketAddr::new(IpAddr::V4(ip), port))),
            Protocol::Ip6(ip) => Some(Self::Ip(SocketAddr::new(IpAddr::V6(ip), port))),
            Protocol::Dns(n) | Protocol::Dns4(n) | Protocol::Dns6(n) => {
                Some(Self::Name(n.into_owned(), port))
            }
            _ => None,
        }
    }

    fn host_port(&self) -> String {
        match self {
            Self::Ip(a) => a.to_string(),
            Self::Name(n, p) => format!("{n}:{p}"),
        }
    }
}

/// A TCP transport that dials every address through a proxy and listens
/// directly (a quiet reader listens on loopback only).
pub struct ProxyTransport {
    proxy: Proxy,
    listen: tcp::tokio::Transport,
}

impl ProxyTransport {
    /// Dials through `proxy`; listens with a plain TCP transport.
    pub fn new(proxy: Proxy) -> Self {
        Self {
            proxy,
            listen: tcp::tokio::Transport::new(tcp::Config::default().nodelay(true)),
        }
    }
}

fn boxed<T: Io + 'static>(io: T) -> Box<dyn Io> {
    Box::new(io)
}

impl Transport for ProxyTransport {
    type Output = Box<dyn Io>;
    type Error = io::Error;
    type ListenerUpgrade = BoxFuture<'static, Result<Self::Output, io::Error>>;
    type Dial = BoxFuture<'static, Result<Self::Output, io::Error>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        self.listen.listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.listen.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let Some(target) = Target::of(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let proxy = self.proxy.clone();
        Ok(async move {
            let stream = tokio::time::timeout(PROXY_HANDSHAKE, connect(&proxy, target))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the proxy {}:{} did not connect us within {} s",
                            proxy.host,
                            proxy.port,
                            PROXY_HANDSHAKE.as_secs()
                        ),
                    )
                })??;
            Ok(boxed(tcp::tokio::TcpStream(stream)))
        }
        .boxed())
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Pin::new(&mut self.listen)
            .poll(cx)
            .map(|e| e.map_upgrade(|u| async move { u.await.map(boxed) }.boxed()))
    }
}

/// Connects through `proxy` to `host:port` (a name, which a `socks5h://`
/// or `http://` proxy resolves, or an address), within
/// [`PROXY_HANDSHAKE`]: the web channel's flows go this way.
pub(crate) async fn connect_to(proxy: &Proxy, host: &str, port: u16) -> io::Result<TcpStream> {
    let target = match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => Target::Ip(SocketAddr::new(ip, port)),
        Err(_) => Target::Name(host.to_owned(), port),
    };
    tokio::time::timeout(PROXY_HANDSHAKE, connect(proxy, target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the proxy did not connect us"))?
}

/// Connects to the proxy and asks it for `target`.
async fn connect(proxy: &Proxy, target: Target) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect((proxy.host.as_str(), proxy.port)).await?;
    stream.set_nodelay(true)?;
    let target = match (proxy.kind, target) {
        // socks5:// resolves here, as curl does.
        (ProxyKind::Socks5, Target::Name(name, port)) => {
            let addr = tokio::net::lookup_host((name.as_str(), port))
                .await?
                .next()
                .ok_or_else(|| io::Error::other(format!("{name} has no address")))?;
            Target::Ip(addr)
        }
        (_, t) => t,
    };
    match proxy.kind {
        ProxyKind::Socks5 | ProxyKind::Socks5h => {
            socks5(&mut stream, proxy.auth.as_ref(), &target).await?
        }
        ProxyKind::HttpConnect => http_connect(&mut stream, proxy.auth.as_ref(), &target).await?,
    }
    Ok(stream)
}

fn refused(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionRefused, what)
}

/// The SOCKS5 exchange of RFC 1928 (with RFC 1929's user name and
/// password when given), CONNECT only.
async fn socks5(
    s: &mut TcpStream,
    auth: Option<&(String, String)>,
    target: &Target,
) -> io::Result<()> {
    let methods: &[u8] = if auth.is_some() { &[0, 2] } else { &[0] };
    let mut hello = vec![5, methods.len() as u8];
    hello.extend_from_slice(methods);
    s.write_all(&hello).await?;
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).await?;
    if reply[0] != 5 {
        return Err(refused("the proxy does not speak SOCKS5".into()));
    }
    match (reply[1], auth) {
        (0, _) => {}
        (2, Some((user, pass))) => {
            let mut m = vec![1, user.len() as u8];
            m.extend_from_slice(user.as_bytes());
            m.push(pass.len() as u8);
            m.extend_from_slice(pass.as_bytes());
            s.write_all(&m).await?;
            s.read_exact(&mut reply).await?;
            if reply[1] != 0 {
                return Err(refused(
                    "the SOCKS5 proxy refused the user name and password".into(),
                ));
            }
        }
        (0xff, _) | (_, _) => {
            return Err(refused(
                "the SOCKS5 proxy accepts none of our ways to authenticate (none, or a user name and password in the URL)".into(),
            ));
        }
    }
    let mut request = vec![5, 1, 0];
    let port = match target {
        Target::Ip(SocketAddr::V4(a)) => {
            request.push(1);
            request.extend_from_slice(&a.ip().octets());
            a.port()
        }
        Target::Ip(SocketAddr::V6(a)) => {
            request.push(4);
            request.extend_from_slice(&a.ip().octets());
            a.port()
        }
        Target::Name(name, port) => {
            let len = u8::try_from(name.len())
                .map_err(|_| io::Error::other(format!("host name {name:?} is too long")))?;
            request.push(3);
            request.push(len);
            request.extend_from_slice(name.as_bytes());
            *port
        }
    };
    request.extend_from_slice(&port.to_be_bytes());
    s.write_all(&request).await?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await?;
    if head[1] != 0 {
        let why = match head[1] {
            1 => "general failure",
            2 => "not allowed by its rules",
            3 => "network unreachable",
            4 => "host unreachable",
            5 => "connection refused",
            6 => "TTL expired",
            7 => "command not supported",
            8 => "address type not supported",
            _ => "unknown error",
        };
        return Err(refused(format!(
            "the SOCKS5 proxy could not connect to {}: {why}",
            target.host_port()
        )));
    }
    // The bound address, which we do not need: its length by its type.
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len).await?;
            len[0] as usize + 2
        }
        t => return Err(refused(format!("the SOCKS5 proxy sent address type {t}"))),
    };
    let mut skip = [0u8; 258];
    s.read_exact(&mut skip[..rest]).await?;
    Ok(())
}

/// An HTTP `CONNECT`, read up to the end of the proxy's reply head (and
/// not a byte further: what follows is the peer's).
async fn http_connect(
    s: &mut TcpStream,
    auth: Option<&(String, String)>,
    target: &Target,
) -> io::Result<()> {
    let host = match target {
        Target::Ip(SocketAddr::V6(a)) => format!("[{}]:{}", a.ip(), a.port()),
        t => t.host_port(),
    };
    let mut request = format!("CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n");
    if let Some((user, pass)) = auth {
        use base64_lite::encode;
        request.push_str(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            encode(format!("{user}:{pass}").as_bytes())
        ));
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_PROXY_REPLY {
            return Err(refused(format!(
                "the HTTP proxy's reply head is over {MAX_PROXY_REPLY} bytes"
            )));
        }
        // One byte at a time: the reply is small, and reading past its
        // end would swallow the peer's first bytes.
        s.read_exact(&mut byte).await?;
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line.lines().next().unwrap_or("");
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if !code.starts_with('2') {
        return Err(refused(format!(
            "the HTTP proxy refused CONNECT {host}: {status:?}"
        )));
    }
    Ok(())
}

/// Base64 of RFC 4648 for one header, to need no crate for it.
mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub(super) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_and_bad_ones_say_why() {
        let p = Proxy::parse("socks5h://127.0.0.1:9050").unwrap();
        assert_eq!(
            (p.kind, p.host.as_str(), p.port),
            (ProxyKind::Socks5h, "127.0.0.1", 9050)
        );
        let p = Proxy::parse("http://u:p%40ss@[::1]:3128").unwrap();
        assert_eq!(
            (p.kind, p.host.as_str(), p.port),
            (ProxyKind::HttpConnect, "::1", 3128)
        );
        assert_eq!(p.auth, Some(("u".into(), "p@ss".into())));
        assert!(!format!("{p:?}").contains("p@ss"), "no password in logs");
        assert_eq!(Proxy::parse("socks5://localhost").unwrap().port, 1080);
        for (bad, why) in [
            ("ftp://x:1", "unknown scheme"),
            ("socks5h://x:1/path", "no path"),
            ("127.0.0.1:9050", "\"127.0.0.1:9050\""),
            ("ftp://user:secret@x:1", "\"ftp://…@x:1\""),
            ("socks5h://user:secret@x:1/path", "no path"),
        ] {
            let e = Proxy::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("secret"), "no password in errors: {e}");
        }
    }

    #[test]
    fn targets_are_tcp_addresses_with_names_kept() {
        let t = |s: &str| Target::of(&s.parse().unwrap());
        assert_eq!(
            t(
                "/dns4/mirror.example/tcp/443/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
            ),
            Some(Target::Name("mirror.example".into(), 443))
        );
        assert_eq!(
            t("/ip4/198.18.1.2/tcp/4001"),
            Some(Target::Ip("198.18.1.2:4001".parse().unwrap()))
        );
        assert_eq!(t("/ip4/198.18.1.2/udp/4001/quic-v1"), None);
        assert_eq!(t("/ip4/198.18.1.2/tcp/443/ws"), None);
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_lite::encode(plain.as_bytes()), coded);
        }
    }
}
