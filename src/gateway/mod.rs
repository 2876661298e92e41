//! The reader's gateway: a local web reader, Atom feeds and a JSON API over
//! the store, served by every node (by default on 127.0.0.1:8080).
//!
//! It is read-only, but for its "Add a newsroom" page, which hands a
//! publisher file the reader confirmed to the node's [`TrustDesk`] (and
//! takes its posts only from the gateway's own pages). Everything it shows
//! was verified before the store kept it; it only decides how to show it: article bodies are sanitized, every
//! response carries a strict Content-Security-Policy, and no page loads or
//! links anything outside the node, so it works with the network down and
//! tells no one else what the reader reads.
//!
//! - [`router`] builds the axum router over a [`GatewayState`]; [`bind`]
//!   and [`serve`] run it on a socket until a shutdown future completes.
//! - `catalog`: lists of the newest version of every story, read from
//!   the store's catalog index at each request, for lists, search and
//!   feeds.
//! - `pages`, `api`, `feed`: the HTML pages (built with maud, which
//!   escapes by default), the JSON API and Atom feeds.
//! - `html`: URLs on this node, time and direction helpers, and the
//!   article sanitizer.
//! - `locale`: the pages' words in the reader's language (Fluent files
//!   under `locales/`), chosen per request.
//! - `story`: one story as every view shows it, with its cached body.
//! - [`NodeView`]: all the gateway sees of the node it runs in.
//! - [`gate`]: a sealed node's listener: the lock page while locked, the
//!   gateway once unlocked.

mod api;
mod catalog;
mod feed;
pub mod gate;
mod html;
mod locale;
mod pages;
mod story;
mod view;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::{debug, warn};

use crate::proto::{PublicKey, Timestamp};
use crate::store::Store;
use crate::trust::{PublisherFile, TrustList};
use catalog::Catalog;
pub use view::{NetworkFigures, NodeView, TrustDesk, ViewError};

/// The gateway's default address: loopback only.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8080";

/// Content-Security-Policy of every response: nothing but this node's own
/// images, media and stylesheet; no scripts, frames, fonts or connections.
pub const CSP: &str = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'self'; \
                       form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Gateway settings (`[gateway]` in `config.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Serve the gateway at all.
    pub enabled: bool,
    /// Address to listen on; port 0 picks a free one.
    pub address: String,
    /// Allow an address other than loopback. Anyone who can reach it can
    /// then see what this node holds; off unless asked for explicitly.
    pub public: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            address: DEFAULT_ADDRESS.into(),
            public: false,
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, Error)]
pub enum GatewayError {
    /// The address is not `IP:PORT`.
    #[error("gateway address {0:?} is not IP:PORT (for example 127.0.0.1:8080)")]
    BadAddress(String),
    /// A non-loopback address without `public = true`.
    #[error(
        "gateway address {0} is not loopback: readers' gateways stay on 127.0.0.1 unless \
         `public = true` is set in the [gateway] section of config.toml"
    )]
    NotLoopback(SocketAddr),
    /// The socket could not be bound (for example, the port is taken).
    #[error(
        "cannot listen on {addr} for the gateway: {source} (is another program using the port? choose another with --gateway ADDR)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// Checks the configured address and binds it.
pub async fn bind(config: &GatewayConfig) -> Result<tokio::net::TcpListener, GatewayError> {
    let addr: SocketAddr = config
        .address
        .parse()
        .map_err(|_| GatewayError::BadAddress(config.address.clone()))?;
    if !addr.ip().is_loopback() && !config.public {
        return Err(GatewayError::NotLoopback(addr));
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind { addr, source })
}

/// Most connections the gateway holds open at once. Further ones wait in
/// the listen backlog until one closes: the node's file descriptors are
/// shared with its network, which must not starve because of a flood of
/// local connections.
pub const MAX_CONNECTIONS: usize = 256;

/// Serves the gateway on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: GatewayState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        let _ = state.inner.local.set(addr);
    }
    let listener = Limited {
        inner: listener,
        permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
    };
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A listener that accepts a connection only while fewer than
/// [`MAX_CONNECTIONS`] are open.
struct Limited {
    inner: tokio::net::TcpListener,
    permits: Arc<tokio::sync::Semaphore>,
}

/// A connection holding its place among the open ones until dropped.
struct Counted {
    io: tokio::net::TcpStream,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl axum::serve::Listener for Limited {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        // The semaphore is never closed, so a permit always comes.
        let permit = self.permits.clone().acquire_owned().await.ok();
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        // Pages are small and answered at once: send without delay.
        let _ = io.set_nodelay(true);
        (
            Counted {
                io,
                _permit: permit,
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Where the trusted publishers come from.
enum Publishers {
    /// A fixed list (tests, the benchmark, the demo's reader).
    Fixed(Arc<Vec<PublisherFile>>),
    /// A data directory's trust list, read again when its folder changes
    /// (a publisher added through the control API shows up at once).
    Dir {
        list: TrustList,
        cached: Mutex<(Option<SystemTime>, Arc<Vec<PublisherFile>>)>,
    },
}

/// The trusted publishers at one moment.
#[derive(Clone)]
pub(crate) struct Trusted {
    pub(crate) list: Arc<Vec<PublisherFile>>,
}

impl Trusted {
    pub(crate) fn by_name(&self, name: &str) -> Option<&PublisherFile> {
        self.list.iter().find(|p| p.name == name)
    }

    pub(crate) fn by_key(&self, key: &PublicKey) -> Option<&PublisherFile> {
        self.list.iter().find(|p| &p.root_key == key)
    }
}

struct Inner {
    store: Arc<Store>,
    publishers: Publishers,
    node: OnceLock<Arc<dyn NodeView>>,
    /// Where the "Add a newsroom" page hands a confirmed publisher file.
    desk: OnceLock<Arc<dyn TrustDesk>>,
    /// The node's full-text index, when it runs inside a node.
    search: OnceLock<Arc<crate::search::Search>>,
    /// The proxy the node dials through: a URL the "Add a newsroom" page
    /// fetches goes through it too.
    proxy: OnceLock<crate::net::proxy::Proxy>,
    public: AtomicBool,
    local: OnceLock<SocketAddr>,
    bodies: story::BodyCache,
}

/// What the gateway serves from: the store, the trusted publishers and,
/// when it runs inside a node, a view of the node for its status. Cheap
/// to clone.
#[derive(Clone)]
pub struct GatewayState {
    inner: Arc<Inner>,
}

impl GatewayState {
    fn with(store: Arc<Store>, publishers: Publishers) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                publishers,
                node: OnceLock::new(),
                desk: OnceLock::new(),
                search: OnceLock::new(),
                proxy: OnceLock::new(),
                public: AtomicBool::new(false),
                local: OnceLock::new(),
                bodies: story::BodyCache::default(),
            }),
        }
    }

    /// A gateway over `store` showing the publishers in `publishers`.
    pub fn new(store: Arc<Store>, publishers: Vec<PublisherFile>) -> Self {
        Self::with(store, Publishers::Fixed(Arc::new(publishers)))
    }

    /// A gateway over `store` showing the publishers of a trust list,
    /// following its changes.
    pub fn with_trust_list(store: Arc<Store>, list: TrustList) -> Self {
        Self::with(
            store,
            Publishers::Dir {
                list,
                cached: Mutex::new((None, Arc::new(Vec::new()))),
            },
        )
    }

    /// Adds the node whose status the gateway reports (the first one
    /// given stays). The gateway sees only what [`NodeView`] shows.
    pub fn node(self, node: impl NodeView + 'static) -> Self {
        let _ = self.inner.node.set(Arc::new(node));
        self
    }

    /// Lets the "Add a newsroom" page trust publishers through `desk`
    /// (the first one given stays); without one the page says how to add
    /// one from the command line.
    pub fn trust_desk(self, desk: impl TrustDesk + 'static) -> Self {
        let _ = self.inner.desk.set(Arc::new(desk));
        self
    }

    pub(crate) fn is_public(&self) -> bool {
        self.inner.public.load(Ordering::Relaxed)
    }

    pub(crate) fn desk(&self) -> Option<&dyn TrustDesk> {
        self.inner.desk.get().map(|d| &**d)
    }

    /// Accepts requests for any host name (the gateway listens beyond
    /// loopback). Otherwise only loopback names are answered, which keeps
    /// web pages elsewhere from reading the gateway by DNS rebinding.
    pub fn public(self, public: bool) -> Self {
        self.inner.public.store(public, Ordering::Relaxed);
        self
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn node_view(&self) -> Option<&dyn NodeView> {
        self.inner.node.get().map(|n| &**n)
    }

    pub(crate) fn bodies(&self) -> &story::BodyCache {
        &self.inner.bodies
    }

    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local.get().copied()
    }

    /// The trusted publishers now.
    pub(crate) fn trusted(&self) -> Trusted {
        match &self.inner.publishers {
            Publishers::Fixed(list) => Trusted { list: list.clone() },
            Publishers::Dir { list, cached } => {
                let mtime = std::fs::metadata(list.dir())
                    .and_then(|m| m.modified())
                    .ok();
                let mut c = cached.lock().unwrap_or_else(|e| e.into_inner());
                if c.0.is_none() || c.0 != mtime {
                    match list.list() {
                        Ok(files) => {
                            c.0 = mtime;
                            c.1 = Arc::new(files);
                        }
                        // Its files are named after the publishers.
                        Err(e) => {
                            warn!("gateway: cannot read the trust list");
                            debug!("gateway: cannot read the trust list: {e}");
                        }
                    }
                }
                Trusted { list: c.1.clone() }
            }
        }
    }

    /// The lists of the trusted publishers now, read from the store's
    /// index at each request.
    pub(crate) fn catalog(&self) -> Catalog {
        Catalog::new(
            self.inner.store.clone(),
            self.trusted(),
            self.inner.search.get().cloned(),
        )
    }

    /// Searches through `index` (the node's full-text index) rather than
    /// by reading the newest stories' titles.
    pub fn search(self, index: Arc<crate::search::Search>) -> Self {
        let _ = self.inner.search.set(index);
        self
    }

    /// Fetches what the reader asks for by URL (a publisher file on the
    /// "Add a newsroom" page) through `proxy`, as the node dials.
    pub fn proxy(self, proxy: Option<crate::net::proxy::Proxy>) -> Self {
        if let Some(p) = proxy {
            let _ = self.inner.proxy.set(p);
        }
        self
    }

    /// The proxy URL fetches go through, if any.
    pub(crate) fn fetch_proxy(&self) -> Option<&crate::net::proxy::Proxy> {
        self.inner.proxy.get()
    }
}

/// The current time.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

/// Whether a `Host` header names this machine: `localhost` or a loopback
/// IP, with or without a port. The header is parsed whole: a bracketed
/// IPv6 address followed by anything but `:port` (`[::1]evil.example`),
/// or a port that is not digits, names no host here.
fn loopback_host(host: &str) -> bool {
    let (name, port, bracketed) = if let Some(rest) = host.strip_prefix('[') {
        let Some((name, after)) = rest.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        (name, port, true)
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port), false),
            None => (host, None, false),
        }
    };
    if port.is_some_and(|p| p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    if bracketed {
        name.parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback())
    } else {
        name.eq_ignore_ascii_case("localhost")
            || name
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// Refuses requests for other host names (unless public) and adds the
/// security headers to every response.
async fn guard(State(state): State<GatewayState>, req: Request, next: Next) -> Response {
    let host_ok = state.inner.public.load(Ordering::Relaxed)
        || req
            .headers()
            .get(header::HOST)
            .is_none_or(|h| h.to_str().is_ok_and(loopback_host));
    let mut resp = if host_ok {
        next.run(req).await
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            "This gateway answers only to localhost and loopback addresses.\n",
        )
            .into_response()
    };
    // A page with a form that posts back (the "Add a newsroom" page)
    // asks for `same-origin`, so that its posts carry their origin.
    let referrer = match resp.headers().get(header::REFERRER_POLICY) {
        Some(v) if v == "same-origin" => "same-origin",
        _ => "no-referrer",
    };
    secure_headers(resp.headers_mut(), referrer);
    resp
}

/// The headers of every answer of the gateway and of its lock page.
/// `referrer` is the referrer policy: `no-referrer` for the gateway; the
/// lock page's form needs `same-origin` to carry its origin back.
pub(crate) fn secure_headers(h: &mut axum::http::HeaderMap, referrer: &'static str) {
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static(referrer));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Other sites' pages cannot embed this node's media to probe what the
    // reader holds.
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    // Nothing the gateway answers is kept by the browser: its cache would
    // hold the stories, pictures and searches of the reader outside the
    // store, for whoever takes or shares the device. Set over any a
    // handler chose, so that no route (errors and redirects too) escapes.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The gateway's routes.
pub fn router(state: GatewayState) -> Router {
    locale::init();
    Router::new()
        .route("/", get(pages::home))
        .route("/p/{name}", get(pages::publisher))
        .route("/p/{name}/feed.atom", get(feed::publisher_feed))
        .route("/story/{id}", get(pages::story))
        .route("/media/{id}/{*path}", get(pages::media))
        .route("/search", get(pages::search))
        .route("/safety", get(pages::safety))
        .route(
            "/add",
            get(pages::add_form)
                .post(pages::add_post)
                .layer(axum::extract::DefaultBodyLimit::max(pages::MAX_ADD_BODY)),
        )
        .route("/feed.atom", get(feed::all_feed))
        .route("/static/style.css", get(pages::style))
        .route("/static/icon.png", get(pages::icon))
        .route("/favicon.ico", get(pages::icon))
        .route("/api/v1", get(api::index))
        .route("/api/v1/", get(api::index))
        .route("/api/v1/status", get(api::status))
        .route("/api/v1/publishers", get(api::publishers))
        .route("/api/v1/publishers/{name}", get(api::publisher))
        .route("/api/v1/stories", get(api::stories))
        .route("/api/v1/stories/{id}", get(api::story))
        .fallback(pages::not_found)
        .layer(middleware::from_fn(locale::localize))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        // Outside the guard, so that its refusals under /api/ are JSON too.
        .layer(middleware::from_fn(api::json_errors))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::loopback_host;

    #[test]
    fn loopback_hosts() {
        for ok in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8080",
            "127.0.0.2",
        ] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:8080",
            "localhost.evil.example",
            "[::2]:80",
            "[::1]evil.example",
            "[::1]evil.example:80",
            "[::1]:80evil",
            "127.0.0.1:",
            "127.0.0.1:80:80",
            "::1",
            "[localhost]",
        ] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }
}
