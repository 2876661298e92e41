//! The gate: what a sealed node's gateway listener serves. While the node
//! is locked, a lock page on every path that asks for the passphrase and
//! says nothing of what the store holds; once unlocked, the node's
//! gateway, on the same listener and the same connections.
//!
//! A passphrase is taken only from a form posted by the lock page itself
//! (its `Origin` is the address it was served at), so that a web page
//! elsewhere cannot submit guesses or the duress passphrase. Attempts
//! run one at a time, and a failed one holds the next back for
//! [`FAILURE_DELAY`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use super::{GatewayState, Limited, MAX_CONNECTIONS, loopback_host, pages};

/// Largest form body read from the lock page: one passphrase, encoded.
pub const MAX_FORM: usize = 4096;
/// How long a failed attempt holds the next one back.
pub const FAILURE_DELAY: Duration = Duration::from_secs(1);

/// A passphrase typed on the lock page, for the node to try.
pub struct Attempt {
    /// The passphrase as typed.
    pub passphrase: Zeroizing<Vec<u8>>,
    /// Where the node answers once it started, or why it did not.
    pub reply: oneshot::Sender<Result<(), Refusal>>,
}

/// Why an attempt did not unlock the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The passphrase does not open the data key.
    WrongPassphrase,
    /// The key opened, but the node could not start: why.
    Failed(String),
}

struct Inner {
    /// The gateway of the unlocked node; none while locked.
    current: RwLock<Option<Router>>,
    attempts: mpsc::Sender<Attempt>,
    local: SocketAddr,
    public: bool,
    /// Held while an attempt runs (and its failure delay).
    trying: tokio::sync::Mutex<()>,
}

/// The switch between the lock page and the gateway. Cheap to clone.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

impl Gate {
    /// A gate, locked, for a gateway bound at `local` (`public` as in
    /// [`super::GatewayConfig`]); and where its attempts arrive.
    pub fn new(local: SocketAddr, public: bool) -> (Self, mpsc::Receiver<Attempt>) {
        // One at a time: the gate never has two attempts out.
        let (attempts, rx) = mpsc::channel(1);
        let gate = Self {
            inner: Arc::new(Inner {
                current: RwLock::new(None),
                attempts,
                local,
                public,
                trying: tokio::sync::Mutex::new(()),
            }),
        };
        (gate, rx)
    }

    /// The address the gate serves at.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// Serves `state`'s gateway from now on.
    pub fn open(&self, state: GatewayState) {
        let _ = state.inner.local.set(self.inner.local);
        let state = state.public(self.inner.public);
        *self.current() = Some(super::router(state));
    }

    /// Back to the lock page: the gateway (and the store it holds) is let
    /// go of once the requests it is answering are done.
    pub fn close(&self) {
        let old = self.current().take();
        drop(old);
    }

    /// Whether the gateway is being served.
    pub fn is_open(&self) -> bool {
        self.current().is_some()
    }

    fn current(&self) -> std::sync::RwLockWriteGuard<'_, Option<Router>> {
        self.inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The gate's router: every request goes to the lock page or the
    /// gateway, whichever is current when it comes.
    pub fn router(&self) -> Router {
        Router::new().fallback(dispatch).with_state(self.clone())
    }
}

/// Serves the gate on `listener` until `shutdown` completes, with the
/// gateway's connection limit.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gate: Gate,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = Limited {
        inner: listener,
        permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
    };
    axum::serve(listener, gate.router())
        .with_graceful_shutdown(shutdown)
        .await
}

async fn dispatch(State(gate): State<Gate>, req: Request) -> Response {
    let current = gate
        .inner
        .current
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match current {
        Some(mut router) => match tower_service::Service::call(&mut router, req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        },
        None => {
            let mut resp = locked(&gate, req).await;
            secure(resp.headers_mut());
            resp
        }
    }
}

/// What the locked gate answers.
async fn locked(gate: &Gate, req: Request) -> Response {
    let host_ok = gate.inner.public
        || req
            .headers()
            .get(header::HOST)
            .is_none_or(|h| h.to_str().is_ok_and(loopback_host));
    if !host_ok {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "This gateway answers only to localhost and loopback addresses.\n",
        )
            .into_response();
    }
    let method = req.method().clone();
    if method == Method::GET || method == Method::HEAD {
        // The page's own stylesheet and icon; nothing else is served.
        return match req.uri().path() {
            "/static/style.css" => pages::style().await,
            "/static/icon.png" | "/favicon.ico" => pages::icon().await,
            _ => page(StatusCode::OK, None),
        };
    }
    if method != Method::POST {
        return page(StatusCode::METHOD_NOT_ALLOWED, None);
    }
    if !same_origin(req.headers(), gate.inner.local, gate.inner.public) {
        return page(
            StatusCode::FORBIDDEN,
            Some("Refused: the passphrase is taken only from this node's own page."),
        );
    }
    let Ok(_trying) = gate.inner.trying.try_lock() else {
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Another attempt is under way: try again in a moment."),
        );
    };
    let Ok(body) = axum::body::to_bytes(req.into_body(), MAX_FORM).await else {
        return page(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("The form is too large."),
        );
    };
    let body = Zeroizing::new(Vec::from(body));
    let passphrase = passphrase_field(&body);
    let (reply, answer) = oneshot::channel();
    let attempt = Attempt { passphrase, reply };
    if gate.inner.attempts.send(attempt).await.is_err() {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("The node is stopping."),
        );
    }
    match answer.await {
        Ok(Ok(())) => (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response(),
        Ok(Err(Refusal::WrongPassphrase)) => {
            // Guessing gets one try a second at most, the delay held
            // with the lock.
            tokio::time::sleep(FAILURE_DELAY).await;
            page(StatusCode::OK, Some("Wrong passphrase."))
        }
        Ok(Err(Refusal::Failed(why))) => page(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(&format!("The node could not start: {why}")),
        ),
        Err(_) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("The node is stopping."),
        ),
    }
}

/// The `passphrase` field of a form body.
fn passphrase_field(body: &[u8]) -> Zeroizing<Vec<u8>> {
    for (name, value) in url::form_urlencoded::parse(body) {
        if name == "passphrase" {
            let value = Zeroizing::new(value.into_owned());
            return Zeroizing::new(value.as_bytes().to_vec());
        }
    }
    Zeroizing::new(Vec::new())
}

/// Whether a request comes from the lock page (or another of the
/// gateway's own pages) itself: its `Origin` is
/// the address the request was made to (`Host`), and that is this
/// gateway's loopback address and port. A page on another site sends its
/// own origin, or `null`. On a public gateway only an IP address counts,
/// which no DNS rebinding can give.
pub(crate) fn same_origin(headers: &HeaderMap, local: SocketAddr, public: bool) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let (Some(origin), Some(host)) = (text(header::ORIGIN), text(header::HOST)) else {
        return false;
    };
    let Some(authority) = origin.strip_prefix("http://") else {
        return false;
    };
    if authority != host {
        return false;
    }
    let (name, port) = match authority.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && !name.ends_with(':') => {
            (name, port.parse::<u16>().ok())
        }
        _ => (authority, Some(80)),
    };
    if port != Some(local.port()) {
        return false;
    }
    if public {
        let ip = name.trim_start_matches('[').trim_end_matches(']');
        return ip.parse::<std::net::IpAddr>().is_ok();
    }
    loopback_host(authority)
}

/// The headers of every locked answer: the gateway's, but nothing is
/// kept in a cache, and the page's own form posts carry its origin
/// (`same-origin`, which sends nothing to any other site).
fn secure(h: &mut HeaderMap) {
    super::secure_headers(h, "same-origin");
}

/// The lock page, with `message` when an attempt failed.
fn page(status: StatusCode, message: Option<&str>) -> Response {
    (status, Html(lock_page(message).into_string())).into_response()
}

fn lock_page(message: Option<&str>) -> Markup {
    html! {
        (DOCTYPE) "\n"
        html lang="en" dir="ltr" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { "Locked · Kolokol" }
                link rel="stylesheet" href="/static/style.css";
                link rel="icon" type="image/png" href="/static/icon.png";
            }
            body {
                header class="top" {
                    span class="brand" { "Kolokol" }
                }
                main {
                    h1 { "Locked" }
                    p { "This node keeps its data encrypted. Type the passphrase to unlock it." }
                    @if let Some(m) = message {
                        p class="warning expired" role="alert" { (m) }
                    }
                    form class="search" method="post" action="/" {
                        input type="password" name="passphrase" aria-label="Passphrase"
                            placeholder="Passphrase" autocomplete="current-password"
                            maxlength="1024" required autofocus;
                        button type="submit" { "Unlock" }
                    }
                }
                footer {
                    p { "Served by your own Kolokol node." }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        if let Some(host) = host {
            h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        h
    }

    #[test]
    fn only_the_pages_own_origin_may_post() {
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        for (origin, host) in [
            ("http://127.0.0.1:8080", "127.0.0.1:8080"),
            ("http://localhost:8080", "localhost:8080"),
        ] {
            assert!(
                same_origin(&headers(Some(origin), Some(host)), local, false),
                "{origin}"
            );
        }
        for (origin, host) in [
            (None, Some("127.0.0.1:8080")),
            (Some("null"), Some("127.0.0.1:8080")),
            (Some("http://evil.example"), Some("127.0.0.1:8080")),
            (Some("http://evil.example:8080"), Some("evil.example:8080")),
            (Some("https://127.0.0.1:8080"), Some("127.0.0.1:8080")),
            (Some("http://127.0.0.1:9999"), Some("127.0.0.1:9999")),
            (Some("http://127.0.0.1:8080"), None),
            (Some("http://127.0.0.1:8080"), Some("localhost:8080")),
        ] {
            assert!(
                !same_origin(&headers(origin, host), local, false),
                "{origin:?} {host:?}"
            );
        }
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert!(same_origin(
            &headers(Some("http://[::1]"), Some("[::1]")),
            v6,
            false
        ));
        // A public gateway takes its IP addresses, never a name.
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(same_origin(
            &headers(Some("http://192.0.2.7:8080"), Some("192.0.2.7:8080")),
            any,
            true
        ));
        assert!(!same_origin(
            &headers(
                Some("http://rebound.example:8080"),
                Some("rebound.example:8080")
            ),
            any,
            true
        ));
    }

    #[test]
    fn the_form_field_is_decoded() {
        assert_eq!(
            &**passphrase_field(b"x=1&passphrase=correct+horse%21"),
            b"correct horse!"
        );
        assert!(passphrase_field(b"other=1").is_empty());
    }
}
