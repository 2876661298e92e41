//! Keeping the index up with the store: the store's log names every
//! bundle in the order it was stored, and the index remembers, in the
//! same commit as the words, the log position it has read up to. So a
//! crash loses nothing (the next start reads on from the last commit),
//! and a store rebuilt under a new log name is indexed again from the
//! start.

use std::sync::Arc;

use super::{Doc, Search, SearchError, plain_text};
use crate::proto::{BODY_PATH, Kind};
use crate::store::{LogItem, Store, StoreError};

/// Most HTML bytes read from one body for its text: four times what is
/// indexed, as markup is most of a page's bytes.
const MAX_BODY_HTML: usize = 4 * super::MAX_BODY_TEXT;

/// What a pass of the indexer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Indexed {
    /// Log entries read.
    pub entries: usize,
    /// Stories added or replaced.
    pub added: usize,
    /// Stories removed (retracted).
    pub removed: usize,
}

/// Why indexing stopped.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    /// The index failed.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// The store failed.
    #[error("reading the store for the search index: {0}")]
    Store(#[from] StoreError),
}

/// Feeds one store's stories into one index.
pub struct Indexer {
    store: Arc<Store>,
    search: Arc<Search>,
}

fn cursor_text(log: &[u8; 16], position: u64) -> String {
    format!("{}:{position}", hex::encode(log))
}

fn parse_cursor(text: &str) -> Option<([u8; 16], u64)> {
    let (log, position) = text.split_once(':')?;
    let log: [u8; 16] = hex::decode(log).ok()?.try_into().ok()?;
    Some((log, position.parse().ok()?))
}

impl Indexer {
    /// An indexer of `store` into `search`.
    pub fn new(store: Arc<Store>, search: Arc<Search>) -> Self {
        Self { store, search }
    }

    /// The index.
    pub fn search(&self) -> &Arc<Search> {
        &self.search
    }

    /// Where to read the log from: the index's cursor if it is for this
    /// store's log, otherwise the start, with the index emptied.
    fn start(&self) -> Result<u64, IndexerError> {
        let log = self.store.log_id()?;
        match self.search.payload()?.as_deref().and_then(parse_cursor) {
            Some((l, position)) if l == log => Ok(position),
            _ => {
                self.search.clear()?;
                Ok(0)
            }
        }
    }

    /// Reads up to `budget` log entries past the index's cursor, indexes
    /// their stories and commits, with the new cursor. Call it again while
    /// it reads a full budget.
    pub fn step(&self, budget: usize) -> Result<Indexed, IndexerError> {
        let from = self.start()?;
        let items = self.store.log_items(from, budget)?;
        let mut done = Indexed {
            entries: items.len(),
            ..Indexed::default()
        };
        let Some(last) = items.last().map(|(p, _)| *p) else {
            return Ok(done);
        };
        for (_, item) in items {
            match item {
                LogItem::Bundle(id) => self.bundle(&id, &mut done)?,
                // A revocation can take bundles away and give a story its
                // earlier version back: the publisher's stories are read
                // again. (Stories it took away entirely stay in the index;
                // a search shows only what the store still holds.)
                LogItem::Revocation(publisher, _) => {
                    for (_, id) in self.store.held_bundles(&publisher)? {
                        self.bundle(&id, &mut done)?;
                    }
                }
                LogItem::Head(_) | LogItem::MirrorList(_) => {}
            }
        }
        let log = self.store.log_id()?;
        self.search.commit_with(Some(cursor_text(&log, last + 1)))?;
        Ok(done)
    }

    /// Steps until the index holds everything the store has logged.
    pub fn catch_up(&self, budget: usize) -> Result<Indexed, IndexerError> {
        let mut all = Indexed::default();
        loop {
            let d = self.step(budget)?;
            all.entries += d.entries;
            all.added += d.added;
            all.removed += d.removed;
            if d.entries < budget {
                return Ok(all);
            }
        }
    }

    fn bundle(&self, id: &crate::proto::BundleId, done: &mut Indexed) -> Result<(), IndexerError> {
        let Some(stored) = self.store.manifest(id)? else {
            // Evicted or replaced since it was logged.
            return Ok(());
        };
        let m = &stored.manifest;
        // Only the newest version held speaks for the story: an older one
        // caught up later must not replace it.
        let newest = self
            .store
            .history(&m.publisher, &m.story)?
            .into_iter()
            .max_by_key(|v| v.manifest.version);
        if newest.is_some_and(|n| n.manifest.version > m.version) {
            return Ok(());
        }
        if m.kind == Kind::Retraction {
            self.search.remove(&m.publisher, &m.story)?;
            done.removed += 1;
            return Ok(());
        }
        let html = match m.entries.iter().find(|e| e.path == BODY_PATH) {
            Some(e) if e.size as usize <= MAX_BODY_HTML => self.store.blob(&e.hash)?,
            Some(e) => self
                .store
                .blob_range(&e.hash, 0, MAX_BODY_HTML as u64)?
                .map(|(_, bytes)| bytes),
            None => None,
        };
        let body = html
            .map(|h| plain_text(&String::from_utf8_lossy(&h)))
            .unwrap_or_default();
        self.search.add(&Doc {
            publisher: &m.publisher,
            story: &m.story,
            language: &m.metadata.language,
            title: &m.metadata.title,
            summary: m.metadata.summary.as_deref(),
            section: m.metadata.section.as_deref(),
            body: &body,
        })?;
        done.added += 1;
        Ok(())
    }
}
