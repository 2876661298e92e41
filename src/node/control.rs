//! The node's local control API: JSON over HTTP on 127.0.0.1, protected by
//! a bearer token kept in the data directory (mode 0600). While a node runs
//! it holds the store, so `kolokol publish`, `import`, `trust add` and
//! `status` come through here.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::net::Node;
use crate::proto::bundle::BundleFile;
use crate::trust::{PublisherFile, TrustList};

/// Largest request body: a bundle file at its limit, and framing.
pub const MAX_BODY: usize = 300 * 1024 * 1024;
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
}

#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) node: Node,
    pub(crate) token: String,
    pub(crate) data_dir: std::path::PathBuf,
    /// The publishers the node carries, by name; empty for all.
    pub(crate) carry: Vec<String>,
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
    let req: ReportRequest = match serde_json::from_slice(&body) {
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
    let req: ImportRequest = match serde_json::from_slice(&body) {
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
    let list = match TrustList::open(&s.data_dir) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
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
    let list = match TrustList::open(&s.data_dir) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    if let Err(e) = list.add_file(&file) {
        return error(StatusCode::CONFLICT, e);
    }
    // Trusted, but carried only if the carry list names it (or is empty).
    if !s.carry.is_empty() && !s.carry.contains(&file.name) {
        return axum::Json(serde_json::json!({
            "name": file.name,
            "root_key": file.root_key.to_string(),
            "carried": false,
        }))
        .into_response();
    }
    match s.node.trust(file.clone()).await {
        Ok(()) => axum::Json(
            serde_json::json!({ "name": file.name, "root_key": file.root_key.to_string() }),
        )
        .into_response(),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/publish", post(publish))
        .route("/v1/import", post(import))
        .route("/v1/trust", post(trust))
        .route("/v1/untrust", post(untrust))
        .route(
            "/v1/revoke",
            post(revoke).layer(DefaultBodyLimit::max(
                crate::proto::limits::MAX_REVOCATION_BYTES,
            )),
        )
        .route("/v1/report", post(report))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The node could not be reached.
    #[error("cannot reach the node's control API at {addr}: {reason}")]
    Unreachable {
        /// Its address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The node answered with an error.
    #[error("the node refused: {0}")]
    Refused(String),
    /// The answer was not understood.
    #[error("unexpected answer from the node: {0}")]
    BadReply(String),
}

/// A client of a running node's control API.
#[derive(Debug, Clone)]
pub struct ControlClient {
    addr: SocketAddr,
    token: String,
}

impl ControlClient {
    /// The client of the node running on `data_dir`, if one is: its
    /// `node.toml` names a control address that answers.
    pub fn for_data_dir(data_dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(data_dir.join("node.toml")).ok()?;
        let file: NodeFile = toml::from_str(&text).ok()?;
        let token = std::fs::read_to_string(data_dir.join("control.token"))
            .ok()?
            .trim()
            .to_owned();
        let addr: SocketAddr = file.control.parse().ok()?;
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        Some(Self { addr, token })
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<serde_json::Value, ControlError> {
        let unreachable = |e: std::io::Error| ControlError::Unreachable {
            addr: self.addr.to_string(),
            reason: e.to_string(),
        };
        let mut s =
            TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).map_err(unreachable)?;
        s.set_read_timeout(Some(Duration::from_secs(600)))
            .map_err(unreachable)?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            self.token,
            body.len()
        );
        s.write_all(head.as_bytes()).map_err(unreachable)?;
        s.write_all(body).map_err(unreachable)?;
        let mut reply = Vec::new();
        s.take(MAX_REPLY as u64)
            .read_to_end(&mut reply)
            .map_err(unreachable)?;
        let text = String::from_utf8_lossy(&reply);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| ControlError::BadReply("no header end".into()))?;
        let code: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| ControlError::BadReply("no status code".into()))?;
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|e| ControlError::BadReply(e.to_string()))?;
        if code != 200 {
            let msg = value
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("unknown error")
                .to_owned();
            return Err(ControlError::Refused(msg));
        }
        Ok(value)
    }

    /// The node's status, as JSON.
    pub fn status(&self) -> Result<crate::net::Status, ControlError> {
        let v = self.request("GET", "/v1/status", "application/json", b"")?;
        serde_json::from_value(v).map_err(|e| ControlError::BadReply(e.to_string()))
    }

    /// Hands a bundle file to the node, which stores and announces it.
    pub fn publish(&self, bundle_file: &[u8]) -> Result<String, ControlError> {
        let v = self.request(
            "POST",
            "/v1/publish",
            "application/octet-stream",
            bundle_file,
        )?;
        v.get("id")
            .and_then(|i| i.as_str())
            .map(str::to_owned)
            .ok_or_else(|| ControlError::BadReply("no id".into()))
    }

    /// Has the node import a file on this machine.
    pub fn import(&self, path: &Path) -> Result<crate::store::archive::ImportReport, ControlError> {
        let body = serde_json::to_vec(&ImportRequest {
            path: path.display().to_string(),
        })
        .unwrap_or_default();
        let v = self.request("POST", "/v1/import", "application/json", &body)?;
        serde_json::from_value(v).map_err(|e| ControlError::BadReply(e.to_string()))
    }

    /// Has the node store and announce a signed revocation; returns how
    /// many stored bundles it removed.
    pub fn revoke(&self, revocation: &[u8]) -> Result<u64, ControlError> {
        let v = self.request("POST", "/v1/revoke", "application/octet-stream", revocation)?;
        v.get("removed")
            .and_then(|n| n.as_u64())
            .ok_or_else(|| ControlError::BadReply("no count".into()))
    }

    /// Asks the network, through the node, which peers hold a story.
    pub fn report(
        &self,
        publisher: &crate::proto::PublicKey,
        story: &crate::proto::StoryId,
        wait: Duration,
    ) -> Result<Vec<crate::net::Holding>, ControlError> {
        let body = serde_json::to_vec(&ReportRequest {
            publisher: publisher.to_string(),
            story: story.to_string(),
            wait_secs: wait.as_secs(),
        })
        .unwrap_or_default();
        let v = self.request("POST", "/v1/report", "application/json", &body)?;
        serde_json::from_value(v).map_err(|e| ControlError::BadReply(e.to_string()))
    }

    /// Has the node remove a publisher, by name, from the trust list and
    /// stop carrying it.
    pub fn untrust(&self, name: &str) -> Result<(), ControlError> {
        self.request("POST", "/v1/untrust", "text/plain", name.as_bytes())
            .map(|_| ())
    }

    /// Has the node trust a publisher file's publisher.
    pub fn trust(&self, publisher_toml: &str) -> Result<(), ControlError> {
        self.request("POST", "/v1/trust", "text/plain", publisher_toml.as_bytes())
            .map(|_| ())
    }
}
