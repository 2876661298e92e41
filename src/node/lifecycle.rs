//! A node's life as a process: started, announced on the terminal, run
//! until a signal or the control API asks it to stop.

use std::future::Future;
use std::path::Path;

use tracing::info;

use super::{NodeError, RunningNode, note, start_dir};
use crate::config::Config;
use crate::seal::DataDir;
use crate::sync::Role;

/// Runs a node until `shutdown` completes.
pub async fn run(
    dir: DataDir,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let role = config.net.role();
    let data_dir = dir.root().to_owned();
    let data_dir = data_dir.as_path();
    let running = start_dir(dir, config).await?;
    announce(&running, data_dir, role);
    tokio::select! {
        _ = shutdown => {}
        _ = running.stop_requested() => {}
    }
    info!("shutting down");
    running.stop().await
}

/// Prints where a node that started listens and serves.
pub(super) fn announce(running: &RunningNode, data_dir: &Path, role: Role) {
    if let Some(note) = note::first_start(data_dir, role) {
        println!("{note}\n");
    }
    println!("peer id: {}", running.network.peer_id());
    for a in &running.listen {
        println!("listening on {a}/p2p/{}", running.network.peer_id());
    }
    println!("control API on {}", running.control);
    if let Some(g) = running.gateway {
        println!("reader's gateway on http://{g}/");
    }
    if let Some((addr, suffix)) = &running.front {
        println!(
            "front on {addr} (TLS); readers dial /dns4/NAME/tcp/{}{suffix}/p2p/{}, NAME the certificate's",
            addr.port(),
            running.network.peer_id()
        );
    }
    if let Some(m) = running.metrics {
        println!("metrics on http://{m}/metrics, health on http://{m}/healthz");
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are in place from the
/// call on (within a runtime), so that a signal sent while the node is
/// still starting stops it cleanly once started rather than killing it.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            match (term, int) {
                (Some(mut term), Some(mut int)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
