//! One story as the gateway shows it: the version asked for, its history,
//! the body to show (the retraction notice when the story was retracted),
//! and what the verification panel says. Shared by the page, the API and
//! the feeds, so a retraction replaces the body everywhere alike.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::GatewayState;
use super::html::{media_urls, sanitize_body};
use crate::proto::{BundleId, KeyCertificate, Kind, Manifest};
use crate::store::{StoreError, StoredManifest};
use crate::trust::PublisherFile;

/// Bodies larger than this are not rendered inline: sanitizing them would
/// hold a request for too long, and no news article is this large.
pub(crate) const MAX_RENDERED_BODY: u64 = 4 * 1024 * 1024;

/// Most bytes of sanitized bodies kept in one generation of the cache.
const CACHE_GENERATION_BYTES: usize = 32 * 1024 * 1024;
/// Most bodies kept in one generation of the cache.
const CACHE_GENERATION_ENTRIES: usize = 4096;

/// Sanitized article bodies by bundle id. Bundles never change, so an
/// entry never goes stale; the cache is bounded by keeping two generations:
/// when the newer one is full, the older is dropped and the newer takes its
/// place, and a hit in the older one moves the body back to the newer.
#[derive(Default)]
pub(crate) struct BodyCache {
    inner: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    young: HashMap<BundleId, Arc<str>>,
    young_bytes: usize,
    old: HashMap<BundleId, Arc<str>>,
}

impl BodyCache {
    fn get(&self, id: &BundleId) -> Option<Arc<str>> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = g.young.get(id) {
            return Some(b.clone());
        }
        let b = g.old.remove(id)?;
        g.insert(*id, b.clone());
        Some(b)
    }

    fn put(&self, id: BundleId, body: Arc<str>) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, body);
    }
}

impl Generations {
    fn insert(&mut self, id: BundleId, body: Arc<str>) {
        if self.young.len() >= CACHE_GENERATION_ENTRIES
            || self.young_bytes + body.len() > CACHE_GENERATION_BYTES
        {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
        self.young_bytes += body.len();
        self.young.insert(id, body);
    }
}

/// Why a story cannot be shown.
#[derive(Debug)]
pub(crate) enum StoryError {
    /// No such bundle, or its publisher is not trusted (any more).
    NotFound,
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for StoryError {
    fn from(e: StoreError) -> Self {
        StoryError::Store(e)
    }
}

/// A story version ready to show.
pub(crate) struct StoryView {
    /// The version asked for.
    pub(crate) asked: StoredManifest,
    /// Every stored version, oldest first (includes `asked`).
    pub(crate) history: Vec<StoredManifest>,
    /// The publisher, from the trust list.
    pub(crate) publisher: PublisherFile,
    /// The certificate of the key that signed the shown version.
    pub(crate) certificate: Option<KeyCertificate>,
    /// The body to show, sanitized: the retraction notice when the story
    /// was retracted, else the version asked for.
    pub(crate) body: Arc<str>,
}

impl StoryView {
    /// The newest stored version.
    pub(crate) fn newest(&self) -> &StoredManifest {
        self.history.last().unwrap_or(&self.asked)
    }

    /// The retraction, if the story was retracted.
    pub(crate) fn retraction(&self) -> Option<&StoredManifest> {
        self.history
            .iter()
            .rev()
            .find(|m| m.manifest.kind == Kind::Retraction)
    }

    /// The bundle whose body is shown and whose metadata heads the page:
    /// the retraction when there is one, else the version asked for.
    pub(crate) fn shown(&self) -> &StoredManifest {
        self.retraction().unwrap_or(&self.asked)
    }
}

impl GatewayState {
    /// Reads a story version, its history and the body to show.
    pub(crate) fn story_view(&self, id: &BundleId) -> Result<StoryView, StoryError> {
        let store = self.store();
        let asked = store.manifest(id)?.ok_or(StoryError::NotFound)?;
        let publisher = self
            .trusted()
            .by_key(&asked.manifest.publisher)
            .cloned()
            .ok_or(StoryError::NotFound)?;
        let mut history = store.history(&asked.manifest.publisher, &asked.manifest.story)?;
        if !history.iter().any(|m| m.id == asked.id) {
            // An older version no longer on the chain from the newest (its
            // successor was evicted): show it with what is known.
            history.push(asked.clone());
            history.sort_by_key(|m| m.manifest.version);
        }
        let shown = history
            .iter()
            .rev()
            .find(|m| m.manifest.kind == Kind::Retraction)
            .unwrap_or(&asked);
        let certificate = store.certificate(&shown.manifest.certificate)?;
        let body = self.body(&shown.id, &shown.manifest)?;
        Ok(StoryView {
            asked,
            history,
            publisher,
            certificate,
            body,
        })
    }

    /// The sanitized body of a bundle, from the cache or rendered now.
    pub(crate) fn body(&self, id: &BundleId, m: &Manifest) -> Result<Arc<str>, StoreError> {
        if let Some(b) = self.bodies().get(id) {
            return Ok(b);
        }
        let Some(entry) = m.entries.first() else {
            return Ok(Arc::from(""));
        };
        let html: Arc<str> = if entry.size > MAX_RENDERED_BODY {
            Arc::from(
                "<p class=\"notice\">This story's text is too large to show here. \
                 It is held by this node and can be exported as a bundle.</p>",
            )
        } else {
            match self.store().blob(&entry.hash)? {
                Some(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    Arc::from(sanitize_body(&text, media_urls(id, m)))
                }
                None => {
                    Arc::from("<p class=\"notice\">This story's text is not held by this node.</p>")
                }
            }
        };
        self.bodies().put(*id, html.clone());
        Ok(html)
    }
}
