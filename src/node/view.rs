//! The gateway's view of the network handle: its status figures, and
//! the desk its "Add a newsroom" page trusts a publisher through. It lives on the node's side so that the gateway never
//! depends on the network.

use futures::future::BoxFuture;

use crate::gateway::{NetworkFigures, NodeView, TrustDesk, ViewError};
use crate::net::Network;
use crate::trust::{PublisherFile, TrustList};

impl NodeView for Network {
    fn network(&self) -> BoxFuture<'_, Result<NetworkFigures, ViewError>> {
        Box::pin(async move {
            let s = Network::status(self).await?;
            Ok(NetworkFigures {
                peer_id: s.peer_id,
                listen: s.listen,
                peers: s.peers.len(),
                topics: s.topics.len(),
                fetching: s.fetching,
                rejected: s.rejected,
                banned: s.banned,
                role: s.role,
            })
        })
    }
}

/// The node's side of the gateway's [`TrustDesk`]: what the control API's
/// `/v1/trust` does.
#[derive(Clone)]
pub(crate) struct NodeDesk {
    pub(crate) node: Network,
    pub(crate) trust: TrustList,
    pub(crate) carry: Vec<String>,
}

impl TrustDesk for NodeDesk {
    fn trust(&self, file: PublisherFile) -> BoxFuture<'_, Result<(), ViewError>> {
        Box::pin(async move {
            super::control::add_publisher(&self.trust, &self.carry, &self.node, file).await?;
            Ok(())
        })
    }
}
