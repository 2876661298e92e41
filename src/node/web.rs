//! The web channel's tasks of a running node: pulling web trees and
//! exporting its own.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::NodeError;
use crate::config::Config;
use crate::net::Network;
use crate::store::Store;

/// The web channel's tasks: the puller (always, since signed mirror lists
/// may name sources later) and, on a node told to keep one, the export of
/// its own tree.
pub(super) fn web_tasks(
    config: &Config,
    node: &Network,
    store: &Arc<Store>,
) -> Result<
    (
        tokio::sync::watch::Sender<bool>,
        Vec<tokio::task::JoinHandle<()>>,
    ),
    NodeError,
> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let proxy = match &config.net.proxy {
        Some(p) => Some(crate::net::proxy::Proxy::parse(p)?),
        None => None,
    };
    for s in &config.web.sources {
        crate::web::http::Source::parse(s)?;
    }
    // Roots trusted for mirrors' TLS are trusted for their web trees too.
    let roots: Vec<PathBuf> = config
        .web
        .roots
        .iter()
        .chain(&config.net.tls_roots)
        .cloned()
        .collect();
    let client = crate::web::http::HttpClient::new(&roots, proxy)?;
    let puller = crate::web::Puller::new(store.clone(), crate::web::pull::Sink::Node(node.clone()));
    let mut tasks = vec![tokio::spawn(puller.run(
        config.web.clone(),
        client,
        stopped.clone(),
    ))];
    if let Some(dir) = config.web.export_dir.clone() {
        let store = store.clone();
        let every = Duration::from_secs(config.web.export_secs.max(1));
        let mut stopped = stopped;
        tasks.push(tokio::spawn(async move {
            loop {
                let (s, d) = (store.clone(), dir.clone());
                match tokio::task::spawn_blocking(move || crate::web::export_web(&s, &d)).await {
                    Ok(Ok(r)) if r.segments > 0 => {
                        tracing::debug!(segments = r.segments, "web tree updated")
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!("updating the web tree in {}: {e}", dir.display()),
                    Err(_) => return,
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return,
                }
            }
        }));
    }
    Ok((stop, tasks))
}
