//! Real nodes for network tests: spawning on 127.0.0.1 and waiting on
//! events with a deadline.

use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use libp2p::core::transport::{
    DialOpts as TransportDialOpts, ListenerId, Transport, TransportError, TransportEvent,
};
use libp2p::multiaddr::Protocol;

use kolokol::net::{NetConfig, Network, NodeEvent};
use kolokol::store::{Store, StoreConfig};
use libp2p::Multiaddr;
use tokio::sync::broadcast;
use tokio::time::timeout;

use super::{Publisher, bare_policy, now};

/// How long any one wait in a network test may take.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub struct TestNode {
    pub node: Network,
    pub store: Arc<Store>,
    pub addr: Multiaddr,
    pub events: broadcast::Receiver<NodeEvent>,
}

/// An empty in-memory store.
pub fn memory_store() -> Arc<Store> {
    Arc::new(Store::memory(StoreConfig::default()))
}

/// A node trusting `p`, with an in-memory store, listening on loopback.
pub async fn spawn(p: &Publisher) -> TestNode {
    spawn_on(&[p], memory_store(), NetConfig::for_tests()).await
}

/// A node trusting `publishers`, on `store`, with `config`.
#[allow(dead_code)] // not every test crate uses every helper
pub async fn spawn_on(publishers: &[&Publisher], store: Arc<Store>, config: NetConfig) -> TestNode {
    let mut policy = bare_policy(publishers[0]);
    for (i, p) in publishers.iter().enumerate().skip(1) {
        policy.trust(p.public(), format!("publisher-{i}")).unwrap();
    }
    store.load_trust(&mut policy, now()).unwrap();
    let listens = !config.listen_addresses().is_empty();
    let node = Network::spawn(
        config,
        libp2p::identity::Keypair::generate_ed25519(),
        store.clone(),
        policy,
    )
    .await
    .unwrap();
    let events = node.events();
    if !listens {
        // Reachable only through a relay: its address is the circuit's.
        let addr = Multiaddr::empty().with(libp2p::multiaddr::Protocol::P2p(node.peer_id()));
        return TestNode {
            node,
            store,
            addr,
            events,
        };
    }
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

/// Polls `check` until it gives a value, failing after [`DEADLINE`].
pub async fn poll<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    timeout(DEADLINE, async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
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

/// TCP that dials from a chosen local address: libp2p's own binds dials
/// to the unspecified address, so every peer on loopback would come from
/// 127.0.0.1. It does not listen.
pub struct BoundTcp(pub Ipv4Addr);

impl Transport for BoundTcp {
    type Output = libp2p::tcp::tokio::TcpStream;
    type Error = std::io::Error;
    type ListenerUpgrade = futures::future::Pending<Result<Self::Output, Self::Error>>;
    type Dial = futures::future::BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn listen_on(
        &mut self,
        _: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        Err(TransportError::MultiaddrNotSupported(addr))
    }

    fn remove_listener(&mut self, _: ListenerId) -> bool {
        false
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _: TransportDialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let mut parts = addr.iter();
        let (Some(Protocol::Ip4(ip)), Some(Protocol::Tcp(port))) = (parts.next(), parts.next())
        else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let from = self.0;
        Ok(async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(from.into(), 0))?;
            let stream = socket.connect(SocketAddr::new(ip.into(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(libp2p::tcp::tokio::TcpStream(stream))
        }
        .boxed())
    }

    fn poll(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Poll::Pending
    }
}
