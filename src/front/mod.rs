//! The front: a mirror's TLS listener on 443 that looks like an ordinary
//! web site to everyone but Kolokol's own peers.
//!
//! A reader dials `/dns4/NAME/tcp/443/tls/sni/NAME/x-parity-ws/PATH`:
//! TLS from the first byte, then a WebSocket upgrade on the front's
//! secret path, which the front passes to the node's own WebSocket
//! listener on loopback; libp2p runs inside. Anything else (a browser, a
//! censor's probe, an upgrade on another path, a request that is not
//! HTTP) is answered as a static web server answers: the site's files,
//! or its error pages. The same split works with nginx or a CDN in front
//! instead (docs/censorship.md); this front is for a mirror that has no
//! web server of its own.

mod http;
mod site;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

pub use site::Site;

/// The front's settings (`[front]` of the configuration file). It runs
/// when `listen` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrontConfig {
    /// Where the front listens, e.g. `0.0.0.0:443`; unset: no front.
    pub listen: Option<String>,
    /// The certificate chain (PEM) the front shows: one for the name
    /// readers dial, from a public authority (e.g. Let's Encrypt) unless
    /// readers are given the root (`tls_roots`).
    pub cert: Option<PathBuf>,
    /// Its private key (PEM: PKCS #8, PKCS #1 or SEC1).
    pub key: Option<PathBuf>,
    /// The secret path of the WebSocket upgrade, e.g. `/a7Rk...`. Unset:
    /// one is drawn at first start and kept in `DATA_DIR/front.path`. It
    /// belongs in publisher files and mirror lists, never on the site.
    pub path: Option<String>,
    /// A folder of static files served to everyone else (`index.html`
    /// for folders). Unset: a built-in page, the same on every mirror that
    /// keeps it, so set one.
    pub site: Option<PathBuf>,
    /// The `Server` header the site sends.
    pub server: String,
    /// Most connections open at once; more wait for the accept queue.
    pub max_connections: usize,
}

impl Default for FrontConfig {
    fn default() -> Self {
        Self {
            listen: None,
            cert: None,
            key: None,
            path: None,
            site: None,
            server: "nginx".into(),
            max_connections: 1024,
        }
    }
}

/// Why the front could not start.
#[derive(Debug, Error)]
pub enum FrontError {
    /// A setting is missing or wrong.
    #[error("front: {0}")]
    Config(String),
    /// A file or the listening socket failed.
    #[error("front: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The certificate or key is unusable.
    #[error("front: {0}")]
    Tls(String),
}

/// How long a client may take for the TLS handshake and for a request
/// head; a kept-alive connection may idle this long between requests.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
const KEEP_ALIVE: Duration = Duration::from_secs(75);

/// Length of a drawn secret path, in base-32 characters (130 bits).
const DRAWN_PATH_CHARS: usize = 26;

/// A bound front, ready to run.
pub struct Front {
    listener: TcpListener,
    tls: TlsAcceptor,
    path: String,
    site: Arc<Site>,
    permits: Arc<Semaphore>,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> FrontError {
    let what = what.into();
    move |source| FrontError::Io { what, source }
}

impl Front {
    /// Loads the certificate and key, the site and the secret path, and
    /// binds the listening socket. `None` when `listen` is unset.
    pub async fn bind(config: &FrontConfig, data_dir: &Path) -> Result<Option<Self>, FrontError> {
        let Some(listen) = &config.listen else {
            return Ok(None);
        };
        let (Some(cert), Some(key)) = (&config.cert, &config.key) else {
            return Err(FrontError::Config(
                "listen is set but cert or key is not: the front speaks only TLS".into(),
            ));
        };
        let tls = acceptor(cert, key)?;
        let path = match &config.path {
            Some(p) => check_path(p)?,
            None => drawn_path(data_dir)?,
        };
        let site = Site::new(config.site.clone(), config.server.clone())?;
        if config.site.is_none() {
            warn!(
                "front: no site set; probes see the built-in page, the same on every mirror that keeps it (set front.site)"
            );
        }
        let listener = TcpListener::bind(listen)
            .await
            .map_err(io_err(format!("listening on {listen}")))?;
        Ok(Some(Self {
            listener,
            tls,
            path,
            site: Arc::new(site),
            permits: Arc::new(Semaphore::new(config.max_connections.max(1))),
        }))
    }

    /// Where it listens.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// The secret path of the WebSocket upgrade.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Serves until dropped: each connection on a task of its own, the
    /// upgrades passed to `backend` (the node's WebSocket listener).
    pub async fn run(self, backend: std::net::SocketAddr) {
        info!(addr = ?self.listener.local_addr().ok(), "front running");
        let path = Arc::new(self.path);
        loop {
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                return;
            };
            let (tcp, remote) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors, say: wait rather than spin.
                    warn!("front: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (tls, site, path) = (self.tls.clone(), self.site.clone(), path.clone());
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = serve(tcp, tls, &site, &path, backend).await {
                    debug!(%remote, "front: connection ended: {e}");
                }
            });
        }
    }
}

/// The TLS acceptor of the front's certificate and key. It offers
/// HTTP/1.1 only, as a web server without HTTP/2 does.
fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, FrontError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let read = |p: &Path| {
        crate::files::read_bounded_text(p, 1024 * 1024)
            .map_err(|e| FrontError::Tls(format!("{}: {e}", p.display())))
    };
    let chain = CertificateDer::pem_slice_iter(read(cert)?.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FrontError::Tls(format!("{}: not a PEM certificate: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(FrontError::Tls(format!(
            "{}: holds no PEM certificate",
            cert.display()
        )));
    }
    let secret = PrivateKeyDer::from_pem_slice(read(key)?.as_bytes())
        .map_err(|e| FrontError::Tls(format!("{}: not a PEM private key: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FrontError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, secret)
        .map_err(|e| {
            FrontError::Tls(format!(
                "{} and {} do not make a usable certificate: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A configured secret path: `/` and URL-safe characters, long enough
/// not to be guessed.
fn check_path(path: &str) -> Result<String, FrontError> {
    let ok = path.starts_with('/')
        && path.len() >= 17
        && path.len() <= 200
        && path[1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
    if ok {
        Ok(path.to_owned())
    } else {
        Err(FrontError::Config(format!(
            "path {path:?} must start with /, hold 16 to 199 more of A-Z a-z 0-9 - . _ ~ /, and be hard to guess"
        )))
    }
}

/// The secret path kept in `DATA_DIR/front.path`, drawn at first start.
fn drawn_path(data_dir: &Path) -> Result<String, FrontError> {
    let file = data_dir.join("front.path");
    if let Ok(text) = crate::files::read_bounded_text(&file, 4096)
        && let Ok(p) = check_path(text.trim())
    {
        return Ok(p);
    }
    const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let path: String = std::iter::once('/')
        .chain((0..DRAWN_PATH_CHARS).map(|_| BASE32[rand::random::<u8>() as usize % 32] as char))
        .collect();
    crate::files::write_private(&file, path.as_bytes())
        .map_err(|e| FrontError::Config(format!("{}: {e}", file.display())))?;
    Ok(path)
}

/// One connection: TLS, then requests until one is the upgrade (passed
/// to the backend) or the client goes.
async fn serve(
    tcp: TcpStream,
    tls: TlsAcceptor,
    site: &Site,
    path: &str,
    backend: std::net::SocketAddr,
) -> Result<(), String> {
    let _ = tcp.set_nodelay(true);
    let mut stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let mut reader = http::HeadReader::default();
    let mut wait = HEAD_TIMEOUT;
    loop {
        let head = match tokio::time::timeout(wait, reader.next(&mut stream)).await {
            Err(_) => return Ok(()),
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(http::HeadError::Malformed | http::HeadError::TooLarge)) => {
                let _ = site.error(&mut stream, 400, true).await;
                return Ok(());
            }
            Ok(Err(http::HeadError::Io(e))) => return Err(e.to_string()),
        };
        if head.is_upgrade_to(path) {
            return pass(stream, head.raw, reader.take_rest(), backend).await;
        }
        let close = site
            .answer(&mut stream, &head)
            .await
            .map_err(|e| e.to_string())?;
        if close {
            let _ = stream.shutdown().await;
            return Ok(());
        }
        wait = KEEP_ALIVE;
    }
}

/// Hands an upgrade to the node's WebSocket listener: the request head
/// as it came, then bytes both ways until either side closes.
async fn pass<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: S,
    head: Vec<u8>,
    rest: Vec<u8>,
    backend: std::net::SocketAddr,
) -> Result<(), String> {
    let mut node = TcpStream::connect(backend)
        .await
        .map_err(|e| format!("the node's WebSocket listener {backend}: {e}"))?;
    let _ = node.set_nodelay(true);
    node.write_all(&head).await.map_err(|e| e.to_string())?;
    node.write_all(&rest).await.map_err(|e| e.to_string())?;
    tokio::io::copy_bidirectional(&mut client, &mut node)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_paths_are_checked_and_drawn_once() {
        assert!(check_path("/0123456789abcdef").is_ok());
        for bad in [
            "short",
            "/short",
            "no-slash-0123456789",
            "/with space 0123456789",
            "/ünïcode-0123456789",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        let dir = tempfile::TempDir::new().unwrap();
        let a = drawn_path(dir.path()).unwrap();
        assert_eq!(a.len(), 1 + DRAWN_PATH_CHARS);
        assert_eq!(drawn_path(dir.path()).unwrap(), a, "kept across starts");
    }
}
