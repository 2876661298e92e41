//! The node's network handle: cheap to clone, it talks to the actor over
//! a bounded channel, each command carrying a oneshot for its answer.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::actor::Actor;
use super::report::Holding;
use super::{NetConfig, NetError, NodeEvent, Status};
use crate::proto::bundle::BundleFile;
use crate::proto::{BundleId, PublicKey, StoryId, TrustPolicy};
use crate::store::Store;
use crate::store::archive::ImportReport;
use crate::trust::PublisherFile;

/// Where an import's archive is.
pub(super) enum ImportSource {
    /// A file on this machine.
    Path(PathBuf),
    /// Bytes in memory.
    Bytes(Vec<u8>),
}

/// Commands waiting for the actor; senders wait when it is full.
pub const COMMAND_QUEUE: usize = 64;
/// Events kept for slow subscribers before the oldest are dropped.
pub const EVENT_QUEUE: usize = 4096;

/// What the handle asks of the actor.
pub(super) enum Command {
    Publish {
        file: Box<BundleFile>,
        reply: oneshot::Sender<Result<BundleId, NetError>>,
    },
    Import {
        source: ImportSource,
        reply: oneshot::Sender<Result<ImportReport, NetError>>,
    },
    Policy {
        reply: oneshot::Sender<Box<TrustPolicy>>,
    },
    Trust {
        file: PublisherFile,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Untrust {
        publisher: PublicKey,
        reply: oneshot::Sender<bool>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Listeners {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Learn {
        addrs: Vec<Multiaddr>,
        source: super::book::Source,
        reply: oneshot::Sender<usize>,
    },
    Metrics {
        reply: oneshot::Sender<String>,
    },
    Revoke {
        revocation: Vec<u8>,
        reply: oneshot::Sender<Result<usize, NetError>>,
    },
    Report {
        publisher: PublicKey,
        story: StoryId,
        wait: Duration,
        reply: oneshot::Sender<Result<Vec<Holding>, NetError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Aborts the actor when the last handle is gone.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A handle to a running node's network.
#[derive(Clone)]
pub struct Network {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<NodeEvent>,
    peer_id: PeerId,
    _task: Arc<AbortOnDrop>,
}

impl Network {
    /// Starts a node: builds the swarm, listens, subscribes to every trusted
    /// publisher's topic and dials the bootstrap peers. `policy` should
    /// already know what the store holds (`Store::load_trust`).
    pub async fn spawn(
        config: NetConfig,
        keypair: libp2p::identity::Keypair,
        store: Arc<Store>,
        policy: TrustPolicy,
    ) -> Result<Network, NetError> {
        let peer_id = keypair.public().to_peer_id();
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let actor = Actor::start(config, keypair, store, policy, rx, events.clone()).await?;
        let task = tokio::spawn(actor.run());
        Ok(Network {
            commands: tx,
            events,
            peer_id,
            _task: Arc::new(AbortOnDrop(task.abort_handle())),
        })
    }

    /// The node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Events from now on.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetError::ActorDropped)?;
        rx.await.map_err(|_| NetError::ActorDropped)
    }

    /// Verifies and stores a bundle file made here, then announces it.
    pub async fn publish(&self, file: BundleFile) -> Result<BundleId, NetError> {
        self.ask(|reply| Command::Publish {
            file: Box::new(file),
            reply,
        })
        .await?
    }

    /// Imports an archive or bundle file from a path on this machine, and
    /// announces the new bundles.
    pub async fn import(&self, path: PathBuf) -> Result<ImportReport, NetError> {
        self.ask(|reply| Command::Import {
            source: ImportSource::Path(path),
            reply,
        })
        .await?
    }

    /// Imports an archive held in memory (what the web channel read), and
    /// announces the new bundles.
    pub async fn import_bytes(&self, archive: Vec<u8>) -> Result<ImportReport, NetError> {
        self.ask(|reply| Command::Import {
            source: ImportSource::Bytes(archive),
            reply,
        })
        .await?
    }

    /// A copy of the trust policy the node checks everything against now.
    pub async fn policy(&self) -> Result<TrustPolicy, NetError> {
        Ok(*self.ask(|reply| Command::Policy { reply }).await?)
    }

    /// Trusts a publisher from now on (the caller keeps the trust list file).
    pub async fn trust(&self, file: PublisherFile) -> Result<(), NetError> {
        self.ask(|reply| Command::Trust { file, reply }).await?
    }

    /// Stops trusting, and carrying, a publisher (the caller keeps the
    /// trust list file); returns whether it was trusted. What the store
    /// holds of it stays, no longer offered in catch-up.
    pub async fn untrust(&self, publisher: PublicKey) -> Result<bool, NetError> {
        self.ask(|reply| Command::Untrust { publisher, reply })
            .await
    }

    /// The node's status.
    pub async fn status(&self) -> Result<Status, NetError> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// Connects to a peer.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }

    /// Announces a revocation a newsroom made: verifies it, stores it
    /// (removing the bundles it covers) and announces it, so that every
    /// node refuses what the key signs from its effective time on. Returns
    /// how many stored bundles it removed here.
    pub async fn revoke(&self, revocation: Vec<u8>) -> Result<usize, NetError> {
        self.ask(|reply| Command::Revoke { revocation, reply })
            .await?
    }

    /// Asks connected peers, and the publisher's mirrors found in the DHT,
    /// which versions of a story they hold; answers within `wait`.
    pub async fn report(
        &self,
        publisher: PublicKey,
        story: StoryId,
        wait: Duration,
    ) -> Result<Vec<Holding>, NetError> {
        self.ask(|reply| Command::Report {
            publisher,
            story,
            wait,
            reply,
        })
        .await?
    }

    /// Teaches the address book where mirrors are: each address must end
    /// in `/p2p/ID`; those that do not, or that the book has no room for,
    /// are skipped. The node dials them when it needs mirrors, as it does
    /// its configured ones. How many addresses were new to the book.
    pub async fn learn(
        &self,
        addrs: Vec<Multiaddr>,
        source: super::book::Source,
    ) -> Result<usize, NetError> {
        self.ask(|reply| Command::Learn {
            addrs,
            source,
            reply,
        })
        .await
    }

    /// The node's metrics (its own and gossipsub's) in the Prometheus text
    /// format.
    pub async fn metrics(&self) -> Result<String, NetError> {
        self.ask(|reply| Command::Metrics { reply }).await
    }

    /// Addresses the node listens on.
    pub async fn listeners(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(|reply| Command::Listeners { reply }).await
    }

    /// Waits until the node listens on `count` addresses or `deadline`
    /// passes, and returns what it listens on.
    pub async fn wait_listening(
        &self,
        count: usize,
        deadline: Duration,
    ) -> Result<Vec<Multiaddr>, NetError> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let l = self.listeners().await?;
            if l.len() >= count || tokio::time::Instant::now() >= until {
                return Ok(l);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the node: in-flight fetches are dropped whole (nothing of them
    /// was stored), and the store is flushed.
    pub async fn shutdown(&self) -> Result<(), NetError> {
        self.ask(|reply| Command::Shutdown { reply }).await
    }
}
