//! Running a node: the store, the trust list, the network actor and the
//! local control API together, until a shutdown signal.

pub mod control;
mod indexing;
mod lifecycle;
mod metrics;
pub mod note;
pub mod vault;
mod view;
mod web;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tracing::info;

use crate::config::Config;
use crate::net::{NetError, Network};
use crate::proto::Timestamp;
use crate::seal::DataDir;
use crate::store::{Store, StoreError};
use crate::sync::Role;
use crate::trust::{PublisherFile, TrustError};
use control::{ApiState, NodeFile};
pub use lifecycle::{run, shutdown_signal};
use web::web_tasks;

/// Why a node could not run.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The trust list failed.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The network failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The reader's gateway could not start.
    #[error(transparent)]
    Gateway(#[from] crate::gateway::GatewayError),
    /// The full-text index could not be opened.
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),
    /// The metrics address could not be listened on.
    #[error(
        "cannot serve metrics on {addr} (the metrics port, --metrics or `metrics` in config.toml): {source}"
    )]
    Metrics {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `carry` names a publisher the trust list does not have.
    #[error("carry names {0:?}, which is not in the trust list (kolokol trust list)")]
    NotTrusted(String),
    /// The web channel's settings are wrong.
    #[error(transparent)]
    Web(#[from] crate::web::WebError),
    /// The front could not start.
    #[error(transparent)]
    Front(#[from] crate::front::FrontError),
    /// A front was set on a quiet reader, which is never reachable.
    #[error(
        "front.listen makes the node reachable, which a quiet reader never is: run a mirror (--mirror) or a sharing node (--share)"
    )]
    FrontOnQuiet,
    /// A file of the node could not be read or written.
    #[error(transparent)]
    File(#[from] crate::files::FilesError),
    /// The data directory could not be opened or unlocked.
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
    /// A file of the node could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// A running node and what it was started with.
pub struct RunningNode {
    /// The network handle.
    pub network: Network,
    /// The node's store.
    pub store: Arc<Store>,
    /// The control API's address.
    pub control: std::net::SocketAddr,
    /// Where it listens.
    pub listen: Vec<String>,
    /// The reader's gateway's address, unless it is switched off.
    pub gateway: Option<std::net::SocketAddr>,
    /// The address of `/metrics` and `/healthz`, when configured.
    pub metrics: Option<std::net::SocketAddr>,
    /// The front's address and the multiaddress suffix readers dial
    /// through it (`/tls/sni/NAME/x-parity-ws/PATH`, NAME to fill in).
    pub front: Option<(std::net::SocketAddr, String)>,
    server: (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
    front_task: Option<tokio::task::JoinHandle<()>>,
    metrics_task: Option<tokio::task::JoinHandle<()>>,
    gateway_task: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
    web_stop: tokio::sync::watch::Sender<bool>,
    web_tasks: Vec<tokio::task::JoinHandle<()>>,
    data_dir: PathBuf,
    stop_requested: Arc<tokio::sync::Notify>,
    lock_requested: Arc<tokio::sync::Notify>,
    /// The gate the gateway is served through, on a sealed node.
    gate: Option<crate::gateway::gate::Gate>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Largest control token file read; a token is 64 hex digits.
const MAX_TOKEN_FILE: u64 = 4096;

/// The control token: kept across restarts, created (mode 0600) if absent
/// or unusable.
fn control_token(data_dir: &Path) -> Result<String, NodeError> {
    let path = data_dir.join("control.token");
    if let Ok(t) = crate::files::read_bounded_text(&path, MAX_TOKEN_FILE) {
        let t = t.trim().to_owned();
        if t.len() >= 32 {
            return Ok(t);
        }
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    crate::files::write_private(&path, token.as_bytes())?;
    Ok(token)
}

/// The node's libp2p identity. A mirror or a sharing reader keeps one in
/// `node.key`, so that peers and publisher files can name it. A quiet
/// reader takes a new one at every start and never reads or writes that
/// file: nothing dials a quiet reader, so nothing needs its id to stay,
/// and a peer id that stayed would tie every run of the reader together
/// for whoever saw it twice. A rotated id would still tie the runs within
/// one period; a new one per start ties none.
fn identity(dir: &DataDir, role: Role) -> Result<libp2p::identity::Keypair, NodeError> {
    if role.serves() {
        Ok(dir.identity()?)
    } else {
        Ok(libp2p::identity::Keypair::generate_ed25519())
    }
}

/// Starts a node on the plain data directory `data_dir`: see [`start_dir`].
pub async fn start(data_dir: &Path, config: Config) -> Result<RunningNode, NodeError> {
    start_dir(DataDir::plain(data_dir)?, config).await
}

/// Starts a node on an opened (for a sealed one, unlocked) data
/// directory: opens the store (holding its lock), loads the trust list and
/// what the store knows, starts the network and the control API, and
/// writes `node.toml` with its peer id and addresses.
pub async fn start_dir(dir: DataDir, config: Config) -> Result<RunningNode, NodeError> {
    start_gated(dir, config, None).await
}

/// [`start_dir`], serving the gateway through `gate` (already bound, the
/// lock page until now) instead of binding its own. A sealed node so
/// started can be locked again through the control API.
pub async fn start_gated(
    dir: DataDir,
    config: Config,
    gate: Option<crate::gateway::gate::Gate>,
) -> Result<RunningNode, NodeError> {
    let data_dir = dir.root().to_owned();
    let data_dir = data_dir.as_path();
    // The token travels in clear text: the control API stays on loopback.
    let loopback = config
        .control
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback());
    if !loopback {
        return Err(NodeError::Io {
            path: PathBuf::from(&config.control),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the control API must listen on a loopback address (127.0.0.1 or [::1])",
            ),
        });
    }
    crate::files::create_private_dir_all(data_dir).map_err(io(data_dir))?;
    // The store's lock first: a second node on this data directory is told
    // so, rather than that the gateway's port is taken (by the first).
    let store = Arc::new(dir.open_store(config.store.clone())?);
    // Then the modes, once sled has made its files (with the umask's).
    crate::files::tighten_data_dir(data_dir, &dir.store_path().join("index"));
    // Then the gateway's port, before the network starts: a port in use
    // fails the start with nothing to undo.
    let gateway_listener = if config.gateway.enabled && gate.is_none() {
        Some(crate::gateway::bind(&config.gateway).await?)
    } else {
        None
    };
    // The operator's endpoints, bound early for the same reason.
    let metrics_listener = match &config.metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| NodeError::Metrics {
                    addr: addr.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    let token = control_token(data_dir)?;
    let listener = tokio::net::TcpListener::bind(&config.control)
        .await
        .map_err(io(Path::new(&config.control)))?;
    let control = listener
        .local_addr()
        .map_err(io(Path::new(&config.control)))?;
    let trust = dir.trust()?;
    let mut publishers = trust.list()?;
    // A mirror may carry some of the publishers it trusts, not all.
    if !config.carry.is_empty() {
        for name in &config.carry {
            if !publishers.iter().any(|p| &p.name == name) {
                return Err(NodeError::NotTrusted(name.clone()));
            }
        }
        publishers.retain(|p| config.carry.contains(&p.name));
    }
    let mut policy = crate::trust::policy_of(&publishers)?;
    // Publisher files may name nodes that carry the publisher: dial them too.
    let mut config = config;
    for p in &publishers {
        for addr in &p.bootstrap {
            if addr.parse::<libp2p::Multiaddr>().is_ok() {
                if !config.net.bootstrap.contains(addr) {
                    config.net.bootstrap.push(addr.clone());
                }
            } else {
                // Which publisher, at debug only: a name in a log says
                // what the device reads.
                tracing::warn!(
                    "a publisher file names a bootstrap address that is not a multiaddress; skipped"
                );
                tracing::debug!(
                    "publisher file {}: bootstrap address {addr:?} skipped",
                    p.name
                );
            }
        }
    }
    let wall = Timestamp::from_system(std::time::SystemTime::now());
    store.load_trust(&mut policy, wall)?;
    // Mirror lists that came in publisher files: stored when they verify
    // and are newer than what the store holds, so they travel on from here.
    for p in &publishers {
        learn_file_certificate(&store, &mut policy, p);
        if let Ok(Some(bytes)) = p.mirror_list_bytes() {
            match store.put_mirror_list(&bytes, &policy, wall) {
                Ok(true) => tracing::debug!("stored the mirror list of {}", p.name),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!("a publisher file's mirror list was not used");
                    tracing::debug!("publisher file {}: mirror list not used: {e}", p.name);
                }
            }
        }
    }
    // The front, bound before the network starts (a taken port or a bad
    // certificate fails the start with nothing to undo). Behind it the
    // node listens for WebSocket on loopback, and, unless told to listen
    // elsewhere too, nowhere else: a port that speaks libp2p in the clear
    // beside it would give the mirror away.
    if config.front.listen.is_some() && !config.net.role().serves() {
        return Err(NodeError::FrontOnQuiet);
    }
    let front = crate::front::Front::bind(&config.front, data_dir).await?;
    if front.is_some() {
        let mut listen = match config.net.listen {
            Some(_) => config.net.listen_addresses(),
            None => Vec::new(),
        };
        listen.push(FRONT_BACKEND.into());
        config.net.listen = Some(listen);
    }
    let keypair = identity(&dir, config.net.role())?;
    let node = Network::spawn(config.net.clone(), keypair, store.clone(), policy).await?;

    // Wait briefly for the listeners to come up, so they can be reported.
    let listen: Vec<String> = node
        .wait_listening(config.net.listen_addresses().len(), Duration::from_secs(5))
        .await?
        .iter()
        .map(|a| a.to_string())
        .collect();

    let (front, front_task) = match front {
        Some(front) => {
            let backend = listen.iter().find_map(|a| backend_of(a)).ok_or_else(|| {
                NodeError::Net(NetError::Listen {
                    addr: FRONT_BACKEND.into(),
                    reason: "the front's WebSocket listener did not come up".into(),
                })
            })?;
            let addr = front.local_addr().map_err(io(Path::new("front")))?;
            let suffix = libp2p::Multiaddr::empty()
                .with(libp2p::multiaddr::Protocol::Tls)
                .with(libp2p::multiaddr::Protocol::Sni("NAME".into()))
                .with(libp2p::multiaddr::Protocol::Ws(
                    front.path().to_owned().into(),
                ))
                .to_string();
            (Some((addr, suffix)), Some(tokio::spawn(front.run(backend))))
        }
        None => (None, None),
    };
    // The settings that can still be wrong are checked before the control
    // API starts, so that a failure here leaves no server holding the
    // trust list behind.
    let (web_stop, mut web_tasks) = web_tasks(&config, &node, &store)?;
    let search = Arc::new(dir.open_search()?);
    web_tasks.push(indexing::spawn(
        store.clone(),
        search.clone(),
        web_stop.subscribe(),
    ));
    let stop_requested = Arc::new(tokio::sync::Notify::new());
    let lock_requested = Arc::new(tokio::sync::Notify::new());
    let state = ApiState {
        node: node.clone(),
        token,
        trust: trust.clone(),
        carry: config.carry.clone(),
        stop: stop_requested.clone(),
        lock: (gate.is_some() && dir.sealed()).then(|| lock_requested.clone()),
    };
    // Stopped gracefully: a connection kept open would otherwise keep the
    // API's state, and with it the trust list's key, alive.
    let (server_stop, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, control::router(state))
            .with_graceful_shutdown(async move {
                let _ = server_stopped.await;
            })
            .await;
    });
    let desk = view::NodeDesk {
        node: node.clone(),
        trust: trust.clone(),
        carry: config.carry.clone(),
    };
    let fetch_proxy = match &config.net.proxy {
        Some(p) => Some(crate::net::proxy::Proxy::parse(p)?),
        None => None,
    };
    let gated = gate.as_ref().map(|g| {
        let state = crate::gateway::GatewayState::with_trust_list(store.clone(), trust.clone())
            .node(node.clone())
            .trust_desk(desk.clone())
            .search(search.clone())
            .proxy(fetch_proxy.clone());
        (g.clone(), state)
    });
    let (gateway, gateway_task) = match gateway_listener {
        None if gate.is_some() => (gate.as_ref().map(|g| g.local_addr()), None),
        Some(listener) => {
            let addr = listener
                .local_addr()
                .map_err(io(Path::new(&config.gateway.address)))?;
            let state = crate::gateway::GatewayState::with_trust_list(store.clone(), trust.clone())
                .node(node.clone())
                .trust_desk(desk.clone())
                .search(search.clone())
                .proxy(fetch_proxy.clone())
                .public(config.gateway.public);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.await;
                };
                if let Err(e) = crate::gateway::serve(listener, state, shutdown).await {
                    tracing::error!("the reader's gateway stopped: {e}");
                }
            });
            (Some(addr), Some((stop, task)))
        }
        None => (None, None),
    };
    let (metrics, metrics_task) = match metrics_listener {
        Some(listener) => {
            let addr = listener.local_addr().map_err(io(Path::new("metrics")))?;
            let router = metrics::router(node.clone());
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
            (Some(addr), Some(task))
        }
        None => (None, None),
    };
    let file = NodeFile {
        peer_id: node.peer_id().to_string(),
        listen: listen.clone(),
        control: control.to_string(),
        gateway: gateway.map(|a| a.to_string()),
        metrics: metrics.map(|a| a.to_string()),
        front: front.as_ref().map(|(a, _)| a.to_string()),
    };
    let running = RunningNode {
        network: node,
        store,
        control,
        listen,
        gateway,
        metrics,
        front,
        server: (server_stop, server),
        front_task,
        metrics_task,
        gateway_task,
        web_stop,
        web_tasks,
        data_dir: data_dir.to_owned(),
        stop_requested,
        lock_requested,
        gate: None,
    };
    let path = data_dir.join("node.toml");
    let text = toml::to_string(&file).unwrap_or_default();
    if let Err(e) = crate::files::write_private(&path, text.as_bytes()) {
        let _ = running.stop().await;
        return Err(e.into());
    }
    // The gateway last, once nothing can fail.
    let mut running = running;
    if let Some((gate, state)) = gated {
        gate.open(state);
        running.gate = Some(gate);
    }
    // No gateway: the field is left out, rather than written "None".
    info!(
        peer_id = %running.network.peer_id(),
        %control,
        gateway = gateway.map(tracing::field::display),
        "node running"
    );
    Ok(running)
}

impl RunningNode {
    /// Resolves when a client of the control API asked the node to stop.
    pub async fn stop_requested(&self) {
        self.stop_requested.notified().await
    }

    /// Resolves when a client of the control API asked the node to lock
    /// (only a sealed node started through a gate is ever asked).
    pub async fn lock_requested(&self) {
        self.lock_requested.notified().await
    }

    /// Stops the gateway, the control API and the network, flushes the
    /// store, removes `node.toml` and closes the store (see
    /// [`Store::close`]).
    pub async fn stop(self) -> Result<(), NodeError> {
        let store = Arc::clone(&self.store);
        self.stop_quickly().await?;
        if store.should_settle() {
            close_when_free(store).await?;
        }
        Ok(())
    }

    /// [`RunningNode::stop`] without sled's snapshot: for a lock, which
    /// must let go of the store and its key at once.
    pub async fn stop_quickly(self) -> Result<(), NodeError> {
        // The gate first: no new request reaches the store.
        if let Some(gate) = &self.gate {
            gate.close();
        }
        let (server_stop, server) = self.server;
        let _ = server_stop.send(());
        let abort = server.abort_handle();
        if tokio::time::timeout(Duration::from_secs(2), server)
            .await
            .is_err()
        {
            abort.abort();
        }
        if let Some(t) = &self.front_task {
            t.abort();
        }
        if let Some(t) = &self.metrics_task {
            t.abort();
        }
        if let Some((stop, task)) = self.gateway_task {
            // Requests in flight get a moment to finish; then it is ended.
            let _ = stop.send(());
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        let _ = self.web_stop.send(true);
        for t in self.web_tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), t)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        let _ = self.network.shutdown().await;
        self.store.flush()?;
        let _ = std::fs::remove_file(self.data_dir.join("node.toml"));
        Ok(())
    }
}

/// Closes the store once nothing else holds it: tasks that were ended
/// let go of theirs when next polled, and the network's worker threads
/// as they stop. A store still held after a few seconds is only flushed.
async fn close_when_free(mut store: Arc<Store>) -> Result<(), NodeError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match Arc::try_unwrap(store) {
            Ok(only) => {
                return match tokio::task::spawn_blocking(move || only.close()).await {
                    Ok(closed) => closed.map_err(NodeError::from),
                    // The store was flushed before; only the snapshot is
                    // lost, and the next open makes it.
                    Err(e) => {
                        tracing::warn!("closing the store stopped: {e}");
                        Ok(())
                    }
                };
            }
            Err(shared) if tokio::time::Instant::now() < deadline => {
                store = shared;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                tracing::info!("the store is still held; its snapshot waits for its next open");
                return Ok(());
            }
        }
    }
}

/// Where the node listens for its front's upgrades: loopback, any port.
const FRONT_BACKEND: &str = "/ip4/127.0.0.1/tcp/0/ws";

/// The socket address of a loopback WebSocket listen address.
fn backend_of(addr: &str) -> Option<std::net::SocketAddr> {
    use libp2p::multiaddr::Protocol;
    let addr: libp2p::Multiaddr = addr.parse().ok()?;
    let mut it = addr.iter();
    let ip = match it.next()? {
        Protocol::Ip4(ip) if ip.is_loopback() => std::net::IpAddr::V4(ip),
        Protocol::Ip6(ip) if ip.is_loopback() => std::net::IpAddr::V6(ip),
        _ => return None,
    };
    let Protocol::Tcp(port) = it.next()? else {
        return None;
    };
    matches!(it.next()?, Protocol::Ws(_)).then_some(std::net::SocketAddr::new(ip, port))
}

/// Learns and stores the certificate a publisher file brings for its
/// mirror list, so that the list verifies before the newsroom's keys have
/// come in any other way. It is root-signed: one that does not verify is
/// skipped with a warning.
pub(crate) fn learn_file_certificate(
    store: &Store,
    policy: &mut crate::proto::TrustPolicy,
    file: &PublisherFile,
) {
    let Ok(Some(bytes)) = file.mirror_certificate_bytes() else {
        return;
    };
    match policy.learn_certificate(&bytes) {
        Ok(cert) => {
            if let Err(e) = store.put_certificate(&cert) {
                tracing::warn!("a publisher file's certificate was not stored");
                tracing::debug!("publisher file {}: certificate not stored: {e}", file.name);
            }
        }
        Err(e) => {
            tracing::warn!("a publisher file's certificate was not used");
            tracing::debug!("publisher file {}: certificate not used: {e}", file.name);
        }
    }
}
