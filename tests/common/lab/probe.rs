//! Small clients and servers for [`Lab::in_ns`] and [`Lab::spawn_in`]:
//! a server's socket is bound in the namespace, then served from any
//! thread.

use super::*;

/// How long a served connection may sit idle before it is closed.
const IDLE: Duration = Duration::from_secs(30);

/// A server's accept loop on its own thread; stopped when dropped.
pub struct Served {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves every connection to `listener` with `handle`, each on a
/// thread of its own, until dropped.
pub fn serve(listener: TcpListener, handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Served {
    let addr = listener.local_addr().expect("a bound listener");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let stop = Arc::new(AtomicBool::new(false));
    let handle = Arc::new(handle);
    let thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(IDLE));
                        let _ = s.set_write_timeout(Some(IDLE));
                        let handle = handle.clone();
                        std::thread::spawn(move || handle(s));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })
    };
    Served {
        addr,
        stop,
        thread: Some(thread),
    }
}

/// Echoes what each connection sends until it shuts down its side.
pub fn echo(listener: TcpListener) -> Served {
    serve(listener, |mut s| {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = s.shutdown(Shutdown::Write);
    })
}

/// Sends `bytes` to each connection, reads until it shuts down its
/// side, and closes.
pub fn send_then_drain(listener: TcpListener, bytes: Vec<u8>) -> Served {
    serve(listener, move |mut s| {
        let _ = s.write_all(&bytes);
        let _ = io::copy(&mut s, &mut io::sink());
        let _ = s.shutdown(Shutdown::Write);
    })
}

/// Connects to `addr`, sends `bytes`, shuts down its side and reads
/// until the server closes or `wait` has passed; returns what came back
/// (less than was expected when a censor held it).
pub fn tcp_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> io::Result<Vec<u8>> {
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, wait)?;
    s.write_all(bytes)?;
    s.shutdown(Shutdown::Write)?;
    read_until_closed(&mut s, start + wait)
}

/// Whether a TCP connection to `addr` opens within `wait`.
pub fn connects(addr: SocketAddr, wait: Duration) -> bool {
    TcpStream::connect_timeout(&addr, wait).is_ok()
}

/// Reads until the peer closes, an error, or `deadline`; returns what
/// was read.
pub fn read_until_closed(s: &mut impl ReadTimeout, deadline: Instant) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(out);
        }
        s.set_timeout(left)?;
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(out);
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(out),
            Err(e) => return Err(e),
        }
    }
}

/// A stream whose reads can time out.
pub trait ReadTimeout: Read {
    fn set_timeout(&mut self, t: Duration) -> io::Result<()>;
}

impl ReadTimeout for TcpStream {
    fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))
    }
}

impl ReadTimeout for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
        self.sock.set_read_timeout(Some(t))
    }
}

/// Echoes every UDP datagram to `socket` back to its sender until
/// dropped.
pub fn udp_echo(socket: UdpSocket) -> Served {
    let addr = socket.local_addr().expect("a bound socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("a read timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&buf[..n], from);
                }
            }
        })
    };
    Served {
        addr,
        stop,
        thread: Some(thread),
    }
}

/// How many datagrams [`udp_echoes`] has in flight at once: few
/// enough for the echo's receive buffer.
const UDP_BATCH: usize = 20;

/// Sends `count` datagrams (`bytes` and a number) to `to` (an echo)
/// from a socket bound here, in batches of [`UDP_BATCH`], and counts
/// the datagrams that come back; each batch waits up to `wait` for its
/// answers.
pub fn udp_echoes(to: SocketAddr, bytes: &[u8], count: usize, wait: Duration) -> usize {
    udp_echoes_from(Ipv4Addr::UNSPECIFIED, to, bytes, count, wait)
}

/// Like [`udp_echoes`], from a socket bound to `from`.
pub fn udp_echoes_from(
    from: Ipv4Addr,
    to: SocketAddr,
    bytes: &[u8],
    count: usize,
    wait: Duration,
) -> usize {
    let s = UdpSocket::bind(SocketAddrV4::new(from, 0)).expect("a UDP socket");
    s.connect(to).expect("a UDP destination");
    let mut answered = vec![false; count];
    let mut buf = [0u8; 2048];
    for batch in (0..count).collect::<Vec<_>>().chunks(UDP_BATCH) {
        for &i in batch {
            let mut d = bytes.to_vec();
            d.extend_from_slice(&(i as u32).to_be_bytes());
            let _ = s.send(&d);
        }
        let deadline = Instant::now() + wait;
        while !batch.iter().all(|&i| answered[i]) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s.set_read_timeout(Some(left)).expect("a read timeout");
            match s.recv(&mut buf) {
                Ok(n) if n == bytes.len() + 4 && buf[..bytes.len()] == *bytes => {
                    let tail = [buf[n - 4], buf[n - 3], buf[n - 2], buf[n - 1]];
                    if let Some(a) = answered.get_mut(u32::from_be_bytes(tail) as usize) {
                        *a = true;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    answered.iter().filter(|a| **a).count()
}

/// The crypto this module's TLS uses (kolokol's dependencies build
/// rustls with two providers, so none is chosen by default).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A self-signed certificate for `names`, and its key.
pub fn self_signed(
    names: &[&str],
) -> (
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let ck = rcgen::generate_simple_self_signed(names).expect("a self-signed certificate");
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der());
    (ck.cert.der().clone(), key.into())
}

/// An HTTPS server on `listener` with a self-signed certificate for
/// `mirror.lab`: every request is answered `200 OK` with `body`, then
/// the connection closes.
pub fn tls_server(listener: TcpListener, body: Vec<u8>) -> Served {
    let (cert, key) = self_signed(&["mirror.lab"]);
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("a server certificate");
    let config = Arc::new(config);
    serve(listener, move |s| {
        let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(conn, s);
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let mut reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        reply.extend_from_slice(&body);
        let _ = tls.write_all(&reply);
        tls.conn.send_close_notify();
        let _ = tls.flush();
        let _ = tls.sock.shutdown(Shutdown::Write);
    })
}

/// Accepts any certificate, checking only that the handshake is signed
/// by its key: a probe, not a client to trust.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS client that accepts any certificate.
pub fn tls_client_config() -> Arc<rustls::ClientConfig> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
        .with_no_client_auth();
    Arc::new(config)
}

/// `GET path` over TLS to `addr` with SNI and Host `host`, accepting any
/// certificate; returns the response head and body, or what failed.
pub fn tls_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    wait: Duration,
) -> Result<(String, Vec<u8>), String> {
    let start = Instant::now();
    let s = TcpStream::connect_timeout(&addr, wait)
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    s.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
    let name =
        rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    let conn =
        rustls::ClientConnection::new(tls_client_config(), name).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, s);
    let request = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .map_err(|e| format!("the TLS handshake or request to {addr}: {e}"))?;
    let reply = read_until_closed(&mut tls, start + wait)
        .map_err(|e| format!("reading from {addr}: {e}"))?;
    let Some(end) = reply.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(format!(
            "no response head from {addr} within {wait:?} ({} bytes came)",
            reply.len()
        ));
    };
    let head = String::from_utf8_lossy(&reply[..end]).into_owned();
    Ok((head, reply[end + 4..].to_vec()))
}

/// Opens a TCP connection to `target` through the SOCKS5 proxy at
/// `proxy` (no authentication).
pub fn socks5_connect(
    proxy: SocketAddr,
    target: SocketAddrV4,
    wait: Duration,
) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&proxy, wait)?;
    s.set_read_timeout(Some(wait))?;
    s.write_all(&[5, 1, 0])?;
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice)?;
    if choice != [5, 0] {
        return Err(io::Error::other(format!("the proxy chose {choice:?}")));
    }
    let mut req = vec![5, 1, 0, 1];
    req.extend_from_slice(&target.ip().octets());
    req.extend_from_slice(&target.port().to_be_bytes());
    s.write_all(&req)?;
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply)?;
    if reply[1] != 0 {
        return Err(io::Error::other(format!(
            "the proxy refused: reply code {}",
            reply[1]
        )));
    }
    Ok(s)
}
