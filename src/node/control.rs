//! The node's local control API: JSON over HTTP on 127.0.0.1, protected by
//! a bearer token kept in the data directory (mode 0600). While a node runs
//! it holds the store, so `kolokol publish`, `import`, `trust add`,
//! `peer add` and `status` come through here.

use std::path::Path;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::net::Network;
use crate::proto::bundle::BundleFile;
use crate::trust::{PublisherFile, TrustList};

/// Largest request body of `/v1/publish`: a bundle file at its limit, and
/// framing. Read only once the token has been checked.
pub const MAX_BODY: usize = 300 * 1024 * 1024;
/// Largest request body of every other endpoint (JSON, a publisher file).
pub const MAX_SMALL_BODY: usize = 64 * 1024;
/// Largest response the client reads.
pub const MAX_REPLY: usize = 16 * 1024 * 1024;

/// Where a running node can be reached: written to `DATA_DIR/node.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeFile {
    /// The node's peer id.
    pub peer_id: String,
    /// Addresses it listens on.
    pub listen: Vec<String>,
    /// The control API's address.
    pub control: String,
    /// The reader's gateway address, when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The address of `/metrics` and `/healthz`, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// The front's address, when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub front: Option<String>,
}

#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) node: Network,
    pub(crate) token: String,
    /// The node's trust list (sealed when the data directory is).
    pub(crate) trust: TrustList,
    /// The publishers the node carries, by name; empty for all.
    pub(crate) carry: Vec<String>,
    /// Told when a client asks the node to stop (`kolokol wipe`).
    pub(crate) stop: std::sync::Arc<tokio::sync::Notify>,
    /// Told when a client asks the node to lock (`kolokol lock`); none
    /// when there is nothing to lock or no lock page to unlock it from.
    pub(crate) lock: Option<std::sync::Arc<tokio::sync::Notify>>,
}

/// Asks the node to stop at once: it drops its key and its store.
async fn stop(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong control token");
    }
    s.stop.notify_one();
    axum::Json(serde_json::json!({ "stopping": true })).into_response()
}

/// Asks the node to lock: it drops its store and key and its gateway
/// asks for the passphrase again.
async fn lock(State(s): State<ApiState>) -> Response {
    match &s.lock {
        Some(lock) => {
            lock.notify_one();
            axum::Json(serde_json::json!({ "locking": true })).into_response()
        }
        None => error(
            StatusCode::CONFLICT,
            "this node cannot be locked: its data directory is not sealed, or it serves no \
             gateway to unlock it from (stop it instead)",
        ),
    }
}

#[derive(Serialize, Deserialize)]
struct ImportRequest {
    path: String,
}

/// Asks the network which peers hold a story.
#[derive(Serialize, Deserialize)]
struct ReportRequest {
    publisher: String,
    story: String,
    /// Seconds to wait for answers, at most [`MAX_REPORT_WAIT`].
    wait_secs: u64,
}

/// The longest a report may wait for answers, in seconds.
pub const MAX_REPORT_WAIT: u64 = 120;

fn authorized(state: &ApiState, headers: &HeaderMap) -> bool {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare in constant time: the token is the only secret here.
    given.len() == state.token.len()
        && given
            .bytes()
            .zip(state.token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Refuses a request without the token before anything reads its body,
/// so an unauthenticated caller costs the node its headers only.
async fn require_token(State(s): State<ApiState>, request: Request, next: Next) -> Response {
    if !authorized(&s, request.headers()) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong control token");
    }
    next.run(request).await
}

/// Decodes a JSON request within the memory budget of its length.
fn json_request<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, crate::proto::bounded::BoundedError> {
    crate::proto::bounded::json(body, crate::proto::bounded::ceiling(MAX_SMALL_BODY))
}

fn error(status: StatusCode, msg: impl ToString) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": msg.to_string() })),
    )
        .into_response()
}

async fn status(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong control token");
    }
    match s.node.status().await {
        Ok(st) => axum::Json(st).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn publish(State(s): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong control token");
    }
    let file = match BundleFile::read(body.as_ref()) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a bundle file: {e}")),
    };
    match s.node.publish(file).await {
        Ok(id) => axum::Json(serde_json::json!({ "id": id.to_string() })).into_response(),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

async fn revoke(State(s): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong control token");
    }
    if body.len() > crate::proto::limits::MAX_REVOCATION_BYTES {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "not a revocation: too large");
    }
    match s.node.revoke(body.to_vec()).await {
        Ok(removed) => axum::Json(serde_json::json!({ "removed": removed })).into_response(),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

async fn report(State(s): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong control token");
    }
    let req: ReportRequest = match json_request(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not a report request: {e}"),
            );
        }
    };
    let Ok(publisher) = req.publisher.parse::<crate::proto::PublicKey>() else {
        return error(StatusCode::BAD_REQUEST, "publisher is not a public key");
    };
    let Ok(story) = req.story.parse::<crate::proto::StoryId>() else {
        return error(StatusCode::BAD_REQUEST, "story is not a story id");
    };
    let wait = std::time::Duration::from_secs(req.wait_secs.clamp(1, MAX_REPORT_WAIT));
    match s.node.report(publisher, story, wait).await {
        Ok(h) => axum::Json(h).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn import(State(s): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    // The token first, then the body: nothing about a request is
    // answered to a caller without it.
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong control token");
    }
    let req: ImportRequest = match json_request(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not an import request: {e}"),
            );
        }
    };
    match s.node.import(req.path.into()).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

/// Removes a publisher, by its name, from the trust list and the node.
async fn untrust(State(s): State<ApiState>, headers: HeaderMap, body: String) -> Response {
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong control token");
    }
    let name = body.trim();
    let list = &s.trust;
    let key = match list.list() {
        Ok(all) => all.into_iter().find(|p| p.name == name).map(|p| p.root_key),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let Some(key) = key else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no trusted publisher is named {name:?}"),
        );
    };
    if let Err(e) = list.remove(name) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e);
    }
    match s.node.untrust(key).await {
        Ok(_) => axum::Json(serde_json::json!({ "name": name, "root_key": key.to_string() }))
            .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn trust(State(s): State<ApiState>, headers: HeaderMap, body: String) -> Response {
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong control token");
    }
    let file = match PublisherFile::parse(&body, Path::new("request")) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (name, root_key) = (file.name.clone(), file.root_key.to_string());
    match add_publisher(&s.trust, &s.carry, &s.node, file).await {
        Ok(true) => {
            axum::Json(serde_json::json!({ "name": name, "root_key": root_key })).into_response()
        }
        Ok(false) => axum::Json(serde_json::json!({
            "name": name,
            "root_key": root_key,
            "carried": false,
        }))
        .into_response(),
        Err(e) => error(e.status(), e),
    }
}

/// Why a publisher could not be added to a running node.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AddError {
    /// The trust list refused or failed to write it.
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    /// The network refused it.
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
}

impl AddError {
    /// The control API's status for it: 409 means only "clashes with a
    /// publisher already trusted", so that a client can tell it from a
    /// failure by the status alone.
    fn status(&self) -> StatusCode {
        match self {
            Self::Trust(e) if e.is_already_trusted() => StatusCode::CONFLICT,
            Self::Trust(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Net(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

/// Adds `file` to the running node's trust list and, unless the carry
/// list leaves it out, to the node, which subscribes and dials the
/// mirrors the file names (its bootstrap addresses now; its mirror list's
/// through the address book). Whether the node carries it.
pub(crate) async fn add_publisher(
    trust: &TrustList,
    carry: &[String],
    node: &Network,
    file: PublisherFile,
) -> Result<bool, AddError> {
    trust.add_file(&file)?;
    if !carry.is_empty() && !carry.contains(&file.name) {
        return Ok(false);
    }
    let bootstrap = file.bootstrap.clone();
    node.trust(file).await?;
    for addr in bootstrap.iter().take(crate::trust::MAX_BOOTSTRAP) {
        let Ok(ma) = addr.parse::<libp2p::Multiaddr>() else {
            tracing::debug!("a publisher file's bootstrap address {addr:?} is not a multiaddress");
            continue;
        };
        if let Err(e) = node.dial(ma).await {
            tracing::debug!("cannot dial a publisher file's bootstrap address: {e}");
        }
    }
    Ok(true)
}

/// Dials a peer now and keeps it in the address book.
async fn peer(State(s): State<ApiState>, headers: HeaderMap, body: String) -> Response {
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong control token");
    }
    let text = body.trim();
    let addr = match text.parse::<libp2p::Multiaddr>() {
        Ok(a) => a,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("{text:?} is not a multiaddress: {e}"),
            );
        }
    };
    match s.node.dial(addr).await {
        Ok(()) => axum::Json(serde_json::json!({ "dialing": text })).into_response(),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route(
            "/v1/publish",
            post(publish).layer(DefaultBodyLimit::max(MAX_BODY)),
        )
        .route("/v1/import", post(import))
        .route(
            "/v1/trust",
            // A publisher file may carry a mirror list: larger than the
            // other small bodies.
            post(trust).layer(DefaultBodyLimit::max(
                crate::trust::MAX_PUBLISHER_FILE as usize,
            )),
        )
        .route("/v1/untrust", post(untrust))
        .route("/v1/peer", post(peer))
        .route(
            "/v1/revoke",
            post(revoke).layer(DefaultBodyLimit::max(
                crate::proto::limits::MAX_REVOCATION_BYTES,
            )),
        )
        .route("/v1/report", post(report))
        .route("/v1/stop", post(stop))
        .route("/v1/lock", post(lock))
        .layer(DefaultBodyLimit::max(MAX_SMALL_BODY))
        // Outermost: the token is checked before any limit or handler
        // touches the body.
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

mod client;
pub use client::{ControlClient, ControlError};

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A server on loopback that reads one request and answers `reply`
    /// whole; returns a client of it and the request it got.
    fn answering(reply: Vec<u8>) -> (ControlClient, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let head_end = loop {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                if let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    break p + 4;
                }
                assert!(n > 0, "the request ended inside its head");
            };
            let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while got.len() < head_end + len {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "the request ended inside its body");
                got.extend_from_slice(&buf[..n]);
            }
            // A client that stops reading at its cap closes early.
            let _ = s.write_all(&reply);
            String::from_utf8_lossy(&got).into_owned()
        });
        (ControlClient::new(addr, "secret".into()), server)
    }

    fn reply(status: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn a_request_carries_the_token_and_an_answer_is_read() {
        let (client, server) = answering(reply("200 OK", br#"{"id":"abc"}"#));
        assert_eq!(client.publish(b"bundle").unwrap(), "abc");
        let request = server.join().unwrap();
        assert!(
            request.starts_with("POST /v1/publish HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("Authorization: Bearer secret\r\n"),
            "{request}"
        );
        assert!(request.ends_with("\r\n\r\nbundle"), "{request}");
    }

    #[test]
    fn a_refusal_keeps_its_status_and_message() {
        let (client, server) = answering(reply(
            "409 Conflict",
            br#"{"error":"root key is already trusted as \"x\""}"#,
        ));
        let err = client.trust("name = \"y\"").unwrap_err();
        server.join().unwrap();
        assert!(err.is_conflict(), "{err:?}");
        assert_eq!(
            err.to_string(),
            "the node refused: root key is already trusted as \"x\""
        );

        let (client, server) = answering(reply(
            "401 Unauthorized",
            br#"{"error":"missing or wrong control token"}"#,
        ));
        let err = client.untrust("y").unwrap_err();
        server.join().unwrap();
        assert!(
            matches!(&err, ControlError::Refused { status: 401, message } if message == "missing or wrong control token"),
            "{err:?}"
        );
        assert!(!err.is_conflict());
    }

    #[test]
    fn an_answer_over_the_cap_or_not_json_is_refused() {
        let mut big = br#"{"id":""#.to_vec();
        big.resize(MAX_REPLY + 10, b'a');
        big.extend_from_slice(br#""}"#);
        let (client, server) = answering(reply("200 OK", &big));
        let err = client.publish(b"bundle").unwrap_err();
        server.join().unwrap();
        assert!(matches!(err, ControlError::BadReply(_)), "{err:?}");

        let (client, server) = answering(reply("200 OK", b"<html>"));
        let err = client.status().unwrap_err();
        server.join().unwrap();
        assert!(matches!(err, ControlError::BadReply(_)), "{err:?}");
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let client = ControlClient::new("127.0.0.1:1".parse().unwrap(), "secret".into());
        assert!(!format!("{client:?}").contains("secret"));
    }
}
