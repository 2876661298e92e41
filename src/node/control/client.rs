//! The CLI's side of the control API: a client for the node's local
//! endpoint, with its errors.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use super::*;

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
    #[error("the node refused: {message}")]
    Refused {
        /// The HTTP status it answered with.
        status: u16,
        /// What it said.
        message: String,
    },
    /// The answer was not understood.
    #[error("unexpected answer from the node: {0}")]
    BadReply(String),
}

impl ControlError {
    /// Whether the node refused because what was asked clashes with what
    /// it already holds (a publisher already trusted under another name or
    /// key), so a caller that only wants it present can go on.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Refused { status: 409, .. })
    }
}

/// How long the client waits to connect to the node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one read or write may stall: an import of a large file
/// answers only when it is done.
const IO_TIMEOUT: Duration = Duration::from_secs(600);

/// A client of a running node's control API.
#[derive(Clone)]
pub struct ControlClient {
    addr: SocketAddr,
    token: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for ControlClient {
    // The token is the API's only secret: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlClient")
            .field("addr", &self.addr)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
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
        // A node that stopped without removing its node.toml leaves an
        // address nobody listens on: only one that accepts counts.
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        Some(Self::new(addr, token))
    }

    pub(super) fn new(addr: SocketAddr, token: String) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(IO_TIMEOUT)
            .timeout_write(IO_TIMEOUT)
            // The API never redirects; an answer that does is not its own.
            .redirects(0)
            .build();
        Self { addr, token, agent }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<serde_json::Value, ControlError> {
        let unreachable = |reason: String| ControlError::Unreachable {
            addr: self.addr.to_string(),
            reason,
        };
        let request = self
            .agent
            .request(method, &format!("http://{}{path}", self.addr))
            .set("Authorization", &format!("Bearer {}", self.token))
            .set("Content-Type", content_type);
        let response = match request.send_bytes(body) {
            Ok(r) => r,
            // An error status still carries the node's JSON explanation.
            Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => return Err(unreachable(t.to_string())),
        };
        let status = response.status();
        let mut reply = Vec::new();
        response
            .into_reader()
            .take(MAX_REPLY as u64 + 1)
            .read_to_end(&mut reply)
            .map_err(|e| unreachable(e.to_string()))?;
        if reply.len() > MAX_REPLY {
            return Err(ControlError::BadReply(format!(
                "the answer is over {MAX_REPLY} bytes"
            )));
        }
        if status != 200 && serde_json::from_slice::<serde_json::Value>(&reply).is_err() {
            // A refusal made before the API's handlers (a body over its
            // limit) comes as plain text.
            return Err(ControlError::Refused {
                status,
                message: String::from_utf8_lossy(&reply).trim().to_owned(),
            });
        }
        let value: serde_json::Value =
            serde_json::from_slice(&reply).map_err(|e| ControlError::BadReply(e.to_string()))?;
        if status != 200 {
            let message = value
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("unknown error")
                .to_owned();
            return Err(ControlError::Refused { status, message });
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

    /// Asks the node to stop at once.
    pub fn stop(&self) -> Result<(), ControlError> {
        self.request("POST", "/v1/stop", "text/plain", b"")
            .map(|_| ())
    }

    /// Asks the node to lock; it answers before it does.
    pub fn lock(&self) -> Result<(), ControlError> {
        self.request("POST", "/v1/lock", "text/plain", b"")
            .map(|_| ())
    }

    /// Has the node dial a peer (a multiaddress ending in `/p2p/<peer
    /// id>`) now and keep it in its address book.
    pub fn peer(&self, addr: &str) -> Result<(), ControlError> {
        self.request("POST", "/v1/peer", "text/plain", addr.as_bytes())
            .map(|_| ())
    }

    /// Has the node trust a publisher file's publisher. Whether the node
    /// carries it (false when its carry list leaves it out).
    pub fn trust(&self, publisher_toml: &str) -> Result<bool, ControlError> {
        let v = self.request("POST", "/v1/trust", "text/plain", publisher_toml.as_bytes())?;
        Ok(v.get("carried").and_then(|c| c.as_bool()).unwrap_or(true))
    }
}
