//! What the gateway may see of the node it runs in: a few status figures,
//! nothing that changes anything. The node hands the gateway a
//! [`NodeView`] rather than its network handle, so the reader cannot
//! publish, untrust or revoke through it; the one change it may ask for,
//! trusting a publisher the reader confirmed, goes through a
//! [`TrustDesk`].

use futures::future::BoxFuture;

/// Why a node could not give its figures, as its own error says.
pub type ViewError = Box<dyn std::error::Error + Send + Sync>;

/// The network figures the status route shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkFigures {
    /// The node's peer id.
    pub peer_id: String,
    /// Addresses it listens on.
    pub listen: Vec<String>,
    /// Connected peers.
    pub peers: usize,
    /// Gossip topics it is subscribed to.
    pub topics: usize,
    /// Bundles being fetched.
    pub fetching: usize,
    /// Messages refused since start.
    pub rejected: u64,
    /// Peers refused for serving false data.
    pub banned: usize,
    /// What the node does for others.
    pub role: crate::sync::Role,
}

/// A read-only view of a running node, implemented by the node's side
/// (the gateway never names the network itself).
pub trait NodeView: Send + Sync {
    /// The node's network figures now. A busy node may take a while; the
    /// caller bounds the wait.
    fn network(&self) -> BoxFuture<'_, Result<NetworkFigures, ViewError>>;
}

/// What the gateway's "Add a newsroom" page may ask of the node it runs
/// in: to trust one publisher file, as `kolokol trust add` does. Nothing
/// else changes through the gateway.
pub trait TrustDesk: Send + Sync {
    /// Adds `file` to the trust list and to the node, which subscribes and
    /// dials the mirrors it names.
    fn trust(&self, file: crate::trust::PublisherFile) -> BoxFuture<'_, Result<(), ViewError>>;
}
