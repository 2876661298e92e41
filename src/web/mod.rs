//! The plain-HTTPS channel: a web tree any static host, CDN or object
//! store can serve ([`tree`], written by [`export`]), and a reader's
//! puller that reads it in small checked pieces, so that a flow the
//! censor freezes costs one piece and not the story ([`http`], [`fetch`],
//! [`pull`]).

pub mod export;
pub mod fetch;
pub mod http;
pub mod pull;
pub mod tree;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use export::{WebExport, export_web};
pub use pull::{PullReport, Puller};

/// What went wrong on the web channel.
#[derive(Debug, Error)]
pub enum WebError {
    /// A file of the tree could not be read or written.
    #[error(transparent)]
    File(#[from] crate::files::FilesError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A source's address is not one this node reads.
    #[error("web source {url:?}: {reason}")]
    Source {
        /// The address as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// A connection failed or the host answered badly.
    #[error("{0}")]
    Http(String),
    /// No byte came for a while: the flow is frozen.
    #[error("no progress for {0:?}")]
    Stalled(std::time::Duration),
    /// The host sent something that is not what it names.
    #[error("the web host sent a damaged or false file: {0}")]
    Malformed(String),
    /// The host does not have the file.
    #[error("not found: {0}")]
    NotFound(String),
    /// The node it feeds is gone.
    #[error("the node stopped")]
    NodeGone,
}

/// The web channel's settings (`[web]` in `config.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Web trees to pull from (`https://host/path/`); signed mirror lists
    /// add their own.
    pub sources: Vec<String>,
    /// Seconds between polls of a source's index.
    pub poll_secs: u64,
    /// Seconds without a byte after which a flow counts as frozen.
    pub stall_secs: u64,
    /// Flows opened at once to one source.
    pub flows: usize,
    /// Extra certificate authorities (PEM files) trusted for web sources,
    /// besides the built-in web roots: a newsroom's own, or a test's.
    pub roots: Vec<PathBuf>,
    /// A folder the node keeps its own web tree in, for a web server,
    /// CDN or object store sync to publish (a mirror's; none by default).
    pub export_dir: Option<PathBuf>,
    /// Seconds between updates of `export_dir`.
    pub export_secs: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            sources: Vec::new(),
            poll_secs: 300,
            stall_secs: 3,
            flows: 4,
            roots: Vec::new(),
            export_dir: None,
            export_secs: 60,
        }
    }
}
