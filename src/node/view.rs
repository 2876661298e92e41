//! The gateway's view of the network handle: its status figures and
//! nothing else. It lives on the node's side so that the gateway never
//! depends on the network.

use futures::future::BoxFuture;

use crate::gateway::{NetworkFigures, NodeView, ViewError};
use crate::net::Network;

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
