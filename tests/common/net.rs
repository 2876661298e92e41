//! Real nodes for network tests: spawning on 127.0.0.1 and waiting on
//! events with a deadline.

use std::sync::Arc;
use std::time::Duration;

use kolokol::net::{NetConfig, Node, NodeEvent};
use kolokol::store::{Store, StoreConfig};
use libp2p::Multiaddr;
use tokio::sync::broadcast;
use tokio::time::timeout;

use super::{Publisher, bare_policy, now};

/// How long any one wait in a network test may take.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub struct TestNode {
    pub node: Node,
    pub store: Arc<Store>,
    pub addr: Multiaddr,
    pub events: broadcast::Receiver<NodeEvent>,
}

/// A node trusting `p`, with an in-memory store, listening on loopback.
pub async fn spawn(p: &Publisher) -> TestNode {
    let store = Arc::new(Store::memory(StoreConfig::default()));
    let mut policy = bare_policy(p);
    store.load_trust(&mut policy, now()).unwrap();
    let node = Node::spawn(
        NetConfig::for_tests(),
        libp2p::identity::Keypair::generate_ed25519(),
        store.clone(),
        policy,
    )
    .await
    .unwrap();
    let events = node.events();
    let addr = node
        .wait_listening(1, DEADLINE)
        .await
        .unwrap()
        .pop()
        .expect("the node listens");
    let addr = addr.with(libp2p::multiaddr::Protocol::P2p(node.peer_id()));
    TestNode {
        node,
        store,
        addr,
        events,
    }
}

/// Connects `a` to `b` and waits for the connection.
pub async fn connect(a: &mut TestNode, b: &TestNode) {
    a.node.dial(b.addr.clone()).await.unwrap();
    let peer = b.node.peer_id();
    wait_for(&mut a.events, "connection", |e| {
        *e == NodeEvent::Connected(peer)
    })
    .await;
}

/// Waits for an event `want` accepts, failing after [`DEADLINE`].
pub async fn wait_for(
    events: &mut broadcast::Receiver<NodeEvent>,
    what: &str,
    mut want: impl FnMut(&NodeEvent) -> bool,
) {
    timeout(DEADLINE, async {
        loop {
            match events.recv().await {
                Ok(e) if want(&e) => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    panic!("events closed while waiting for {what}")
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}
