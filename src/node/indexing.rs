//! The node's indexer: keeps the full-text index up with the store, about
//! a second behind it at most, in steps short enough that a stop or a
//! lock never waits long for one.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::search::{Indexer, Search};
use crate::store::Store;

/// Log entries read per step: a few hundred milliseconds of work, then
/// a commit, so that a new story is searchable within about a second and
/// a stop waits at most one step.
const BUDGET: usize = 2_000;
/// How often the store is looked at when nothing changed.
const IDLE: Duration = Duration::from_millis(500);
/// The pause after a failed step, so that a broken index does not spin.
const AFTER_FAILURE: Duration = Duration::from_secs(30);

/// Starts the indexer; it ends when `stopped` changes.
pub(super) fn spawn(
    store: Arc<Store>,
    search: Arc<Search>,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let indexer = Arc::new(Indexer::new(store.clone(), search));
        let mut seen = None;
        loop {
            let changes = store.changes();
            let mut pause = IDLE;
            if seen != Some(changes) {
                let i = indexer.clone();
                match tokio::task::spawn_blocking(move || i.step(BUDGET)).await {
                    Ok(Ok(done)) => {
                        if done.entries < BUDGET {
                            seen = Some(changes);
                        } else {
                            // Behind: the next step at once.
                            pause = Duration::ZERO;
                        }
                        if done.added + done.removed > 0 {
                            tracing::debug!(
                                added = done.added,
                                removed = done.removed,
                                "search index updated"
                            );
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!("the search index could not be updated: {e}");
                        pause = AFTER_FAILURE;
                    }
                    Err(_) => return,
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stopped.changed() => return,
            }
        }
    })
}
