//! A sealed node's life: locked, serving the lock page on its gateway's
//! address; unlocked, the whole node behind the same listener; and
//! locked again when asked (`kolokol lock`), with its store and key let
//! go of, until it stops.
//!
//! While locked the node holds nothing of the data directory but the
//! plain settings, and its `node.toml` names only the lock page's
//! address: no peer id, no control API.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{NodeError, RunningNode, io, start_gated};
use crate::config::Config;
use crate::gateway::gate::{Attempt, Gate, Refusal};
use crate::seal::{DataDir, SealError, Sealer};
use crate::store::Store;

/// The node's settings: from the plain `config.toml` alone while locked
/// (`None`), or the whole settings of the unlocked directory, with the
/// command line's laid over either.
pub type Configure = Box<dyn Fn(Option<&DataDir>) -> Result<Config, NodeError> + Send + Sync>;

/// How long a lock waits for the last holder of the key to let go.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

/// What `node.toml` says while the node is locked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LockedFile {
    /// The address of the lock page.
    pub gateway: String,
    /// Set when something still held the data key after the node locked
    /// (a request that did not end): the key then stays in memory until
    /// it does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_held: bool,
}

impl LockedFile {
    /// The file of a locked node running on `data_dir`, if that is what
    /// its `node.toml` says.
    pub fn read(data_dir: &Path) -> Option<Self> {
        let text = crate::files::read_bounded_text(&data_dir.join("node.toml"), 4096).ok()?;
        toml::from_str(&text).ok()
    }
}

/// Runs a node on the sealed directory at `root` until `shutdown`
/// completes or a client asks it to stop. `opened`, when the passphrase
/// was at hand at start, starts it unlocked; otherwise it starts locked.
/// Either way it binds the gateway's address from the plain settings and
/// serves it through a [`Gate`] for as long as it runs.
pub async fn run_sealed(
    root: &Path,
    opened: Option<DataDir>,
    configure: Configure,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let plain = configure(None)?;
    let listener = crate::gateway::bind(&plain.gateway).await?;
    let local = listener
        .local_addr()
        .map_err(io(Path::new(&plain.gateway.address)))?;
    let (gate, mut attempts) = Gate::new(local, plain.gateway.public);
    let (gate_stop, gate_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::gateway::gate::serve(listener, gate.clone(), async {
        let _ = gate_stopped.await;
    }));
    tokio::pin!(shutdown);
    let mut opened = opened;
    let mut key_held = false;
    let result = loop {
        let (running, key) = match opened.take() {
            Some(dir) => match start(root, dir, &configure, &gate).await {
                Ok(r) => r,
                // Given at start, a passphrase that fails is reported as
                // it always was.
                Err(e) => break Err(e),
            },
            None => {
                if let Err(e) = write_locked(root, local, key_held) {
                    break Err(e);
                }
                println!("locked: unlock the node at http://{local}/");
                match wait_unlocked(root, &configure, &gate, &mut attempts, &mut shutdown).await {
                    Some(r) => r,
                    None => {
                        let _ = std::fs::remove_file(root.join("node.toml"));
                        break Ok(());
                    }
                }
            }
        };
        let store = Arc::downgrade(&running.store);
        let lock = tokio::select! {
            _ = &mut shutdown => false,
            _ = running.stop_requested() => false,
            _ = running.lock_requested() => true,
        };
        let stopped = match lock {
            true => running.stop_quickly().await,
            false => running.stop().await,
        };
        if !lock || stopped.is_err() {
            break stopped;
        }
        key_held = !released(key, store).await;
        if key_held {
            warn!("locked, but something still held the data key after {RELEASE_WAIT:?}");
        } else {
            info!("locked: the store and its key are let go of");
        }
    };
    let _ = gate_stop.send(());
    let abort = server.abort_handle();
    if tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .is_err()
    {
        abort.abort();
    }
    result
}

/// A started node and a handle on its data key, to see it let go of.
type Started = (RunningNode, Option<Weak<Sealer>>);

/// Starts the node on the unlocked `dir`, its gateway behind `gate`.
async fn start(
    root: &Path,
    dir: DataDir,
    configure: &Configure,
    gate: &Gate,
) -> Result<Started, NodeError> {
    let config = configure(Some(&dir))?;
    let role = config.net.role();
    let key = dir.sealer().map(|s| Arc::downgrade(&s));
    let running = start_gated(dir, config, Some(gate.clone())).await?;
    super::lifecycle::announce(&running, root, role);
    Ok((running, key))
}

/// Waits on the lock page's attempts until one unlocks and starts the
/// node; `None` when `shutdown` came first.
async fn wait_unlocked(
    root: &Path,
    configure: &Configure,
    gate: &Gate,
    attempts: &mut tokio::sync::mpsc::Receiver<Attempt>,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Option<Started> {
    loop {
        let attempt = tokio::select! {
            _ = shutdown.as_mut() => return None,
            a = attempts.recv() => a?,
        };
        let Attempt { passphrase, reply } = attempt;
        let path: PathBuf = root.to_owned();
        // Argon2id takes a while: off the runtime's threads.
        let opened =
            tokio::task::spawn_blocking(move || DataDir::unlock_with(&path, &passphrase)).await;
        let outcome = match opened {
            Ok(Ok(dir)) => match start(root, dir, configure, gate).await {
                Ok(running) => Ok(running),
                Err(e) => {
                    warn!("unlocked, but the node could not start: {e}");
                    Err(Refusal::Failed(e.to_string()))
                }
            },
            Ok(Err(SealError::WrongPassphrase)) => Err(Refusal::WrongPassphrase),
            Ok(Err(e)) => Err(Refusal::Failed(e.to_string())),
            Err(e) => Err(Refusal::Failed(e.to_string())),
        };
        match outcome {
            Ok(running) => {
                let _ = reply.send(Ok(()));
                return Some(running);
            }
            Err(refusal) => {
                // A start that failed half-way may have removed node.toml:
                // say again where the page is, unless the duress
                // passphrase just wiped the directory.
                if DataDir::is_sealed(root) {
                    let _ = write_locked(root, gate.local_addr(), false);
                }
                let _ = reply.send(Err(refusal));
            }
        }
    }
}

/// Writes the locked `node.toml`: the lock page's address only.
fn write_locked(
    root: &Path,
    gateway: std::net::SocketAddr,
    key_held: bool,
) -> Result<(), NodeError> {
    let file = LockedFile {
        gateway: gateway.to_string(),
        key_held,
    };
    let text = toml::to_string(&file).unwrap_or_default();
    crate::files::write_atomic(&root.join("node.toml"), text.as_bytes())?;
    Ok(())
}

/// Waits until nothing holds the store or the data key any more (the
/// network's store thread and requests in flight let go of them when
/// they end); whether that happened within [`RELEASE_WAIT`].
async fn released(key: Option<Weak<Sealer>>, store: Weak<Store>) -> bool {
    let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
    loop {
        let held = store.strong_count() > 0 || key.as_ref().is_some_and(|k| k.strong_count() > 0);
        if !held {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
