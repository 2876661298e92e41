//! The catalog: lists of the newest versions of stories of the trusted
//! publishers, read from the store's catalog index (see
//! `store::catalog`) at each request. A page is one range scan per
//! publisher it draws on, of the stories it shows (and, for a later page,
//! those before them), whatever the size of the archive; counts are the
//! index's counters. Nothing is copied into memory or rebuilt: a story
//! stored is in the next answer. The trust list, which is small, is
//! applied as the lists are read: only trusted publishers' indexes are
//! scanned, so a change of it shows at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;

use super::Trusted;
use crate::proto::{BundleId, Head, Kind, PublicKey, StoryId, Timestamp};
use crate::search::Search;
use crate::store::{Facet, IndexCursor, Store, StoreError, StoryEntry, gaps};

/// Most stories a search reads, newest first, where there is no
/// full-text index (a gateway over a store in memory): it reads every
/// manifest it looks at. Its count is of the matches among them.
pub(crate) const SEARCH_SCAN: usize = 10_000;
/// How deep a reader can page through the full-text index's hits, best
/// first: a deeper page would cost the ranking of all before it.
pub(crate) const SEARCH_HITS: usize = 1_000;

/// The newest version of one story.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// The publisher.
    pub(crate) publisher: PublicKey,
    /// The story.
    pub(crate) story: StoryId,
    /// The newest version's bundle.
    pub(crate) id: BundleId,
    /// Its version number.
    pub(crate) version: u32,
    /// Its kind: a retraction means the story is withdrawn.
    pub(crate) kind: Kind,
    /// Headline of the newest version.
    pub(crate) title: String,
    /// Summary of the newest version.
    pub(crate) summary: Option<String>,
    /// Language tag, lower case.
    pub(crate) language: String,
    /// Section.
    pub(crate) section: Option<String>,
    /// Bylines.
    pub(crate) authors: Vec<String>,
    /// First publication of the story.
    pub(crate) published: Timestamp,
    /// When the newest version was signed.
    pub(crate) signed_at: Timestamp,
}

impl Item {
    /// The item of bundle `id`, its manifest `m`, in `language` (lower
    /// case, as the index keeps it).
    fn of(id: BundleId, m: crate::proto::Manifest, language: String) -> Self {
        Self {
            publisher: m.publisher,
            story: m.story,
            id,
            version: m.version,
            kind: m.kind,
            title: m.metadata.title,
            summary: m.metadata.summary,
            language,
            section: m.metadata.section,
            authors: m.metadata.authors,
            published: m.metadata.published,
            signed_at: m.signed_at,
        }
    }

    /// Whether the story has been retracted.
    pub(crate) fn retracted(&self) -> bool {
        self.kind == Kind::Retraction
    }

    /// Where a list that ends with this item goes on.
    pub(crate) fn cursor(&self) -> IndexCursor {
        IndexCursor {
            published: self.published,
            story: self.story,
        }
    }

    /// Whether every word (lower case) is in the title or the summary.
    fn matches(&self, words: &[String]) -> bool {
        let title = self.title.to_lowercase();
        let summary = self.summary.as_deref().map(str::to_lowercase);
        words.iter().all(|w| {
            title.contains(w.as_str()) || summary.as_deref().is_some_and(|s| s.contains(w.as_str()))
        })
    }
}

/// What the catalog knows of one trusted publisher.
#[derive(Debug, Clone, Default)]
pub(crate) struct PublisherInfo {
    /// Stories held (newest versions).
    pub(crate) stories: usize,
    /// Bundles held.
    pub(crate) bundles: u64,
    /// Sequence numbers below the newest head never held.
    pub(crate) missing: Vec<(u64, u64)>,
    /// The newest head.
    pub(crate) head: Option<Head>,
    /// Languages of its stories, with counts.
    pub(crate) languages: BTreeMap<String, usize>,
    /// Sections of its stories, with counts.
    pub(crate) sections: BTreeMap<String, usize>,
}

impl PublisherInfo {
    /// How many sequence numbers are missing.
    pub(crate) fn missing_count(&self) -> u64 {
        self.missing.iter().map(|(a, b)| b - a + 1).sum()
    }
}

/// Filters for a list of stories.
#[derive(Debug, Default, Clone)]
pub(crate) struct Filter {
    /// One publisher only.
    pub(crate) publisher: Option<PublicKey>,
    /// One language (compared case-insensitively).
    pub(crate) language: Option<String>,
    /// One section.
    pub(crate) section: Option<String>,
    /// Words that must all appear in the title or summary.
    pub(crate) query: Option<String>,
}

/// The lists of the trusted publishers, over the store. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Catalog {
    store: Arc<Store>,
    trusted: Trusted,
    search: Option<Arc<Search>>,
}

fn store_failed(e: StoreError) -> StatusCode {
    tracing::warn!("gateway: cannot read the store");
    tracing::debug!("gateway: cannot read the store: {e}");
    StatusCode::INTERNAL_SERVER_ERROR
}

type Entries<'a> = Box<dyn Iterator<Item = Result<StoryEntry, StoreError>> + 'a>;

/// Several publishers' index scans, newest first, merged: each step takes
/// the newest of the streams' next entries.
struct Merge<'a> {
    streams: Vec<(Option<Result<StoryEntry, StoreError>>, Entries<'a>)>,
}

impl Iterator for Merge<'_> {
    type Item = Result<StoryEntry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut best: Option<usize> = None;
        for (i, (head, _)) in self.streams.iter().enumerate() {
            match head {
                None => {}
                // An error goes out first, and ends the list there.
                Some(Err(_)) => {
                    best = Some(i);
                    break;
                }
                Some(Ok(e)) => {
                    let newer = best.is_none_or(|b| match &self.streams[b].0 {
                        Some(Ok(o)) => (e.published, e.story) > (o.published, o.story),
                        _ => false,
                    });
                    if newer {
                        best = Some(i);
                    }
                }
            }
        }
        let (head, rest) = &mut self.streams[best?];
        let out = head.take();
        *head = rest.next();
        out
    }
}

impl Catalog {
    /// The lists of `trusted`'s publishers in `store`.
    pub(crate) fn new(store: Arc<Store>, trusted: Trusted, search: Option<Arc<Search>>) -> Self {
        Self {
            store,
            trusted,
            search,
        }
    }

    /// What is known of a publisher: its counters and head, a few reads.
    pub(crate) fn publisher(&self, key: &PublicKey) -> Result<PublisherInfo, StatusCode> {
        let counts = self.store.publisher_counts(key).map_err(store_failed)?;
        let head = self.store.head(key).map_err(store_failed)?.map(|(_, h)| h);
        let upto = head.as_ref().map_or(0, |h| h.sequence);
        let size = |m: BTreeMap<String, u64>| m.into_iter().map(|(k, n)| (k, n as usize)).collect();
        Ok(PublisherInfo {
            stories: counts.stories as usize,
            bundles: counts.bundles,
            missing: gaps(&counts.known, upto),
            head,
            languages: size(counts.languages),
            sections: size(counts.sections),
        })
    }

    /// The publishers a filter draws on: one, or every trusted one.
    fn publishers(&self, filter: &Filter) -> Vec<PublicKey> {
        match filter.publisher {
            Some(p) => vec![p],
            None => self.trusted.list.iter().map(|p| p.root_key).collect(),
        }
    }

    /// The entries matching the filter's publisher, language and section,
    /// newest first, after `after` when given.
    fn entries<'a>(&'a self, filter: &'a Filter, after: Option<&IndexCursor>) -> Merge<'a> {
        let facet = Facet::of(filter.language.as_deref(), filter.section.as_deref());
        let streams = self
            .publishers(filter)
            .iter()
            .map(|p| {
                let mut it: Entries<'a> = Box::new(self.store.index_iter(p, facet, after));
                (it.next(), it)
            })
            .collect();
        Merge { streams }
    }

    fn item(&self, e: &StoryEntry) -> Result<Option<Item>, StatusCode> {
        // An entry whose bundle is gone (a publisher being forgotten) is
        // left out.
        let Some(m) = self.store.manifest(&e.id).map_err(store_failed)? else {
            return Ok(None);
        };
        Ok(Some(Item::of(e.id, m.manifest, e.language.clone())))
    }

    /// The stories matching `filter`: how many in all, and page `page`
    /// (from 1) of `per_page`. Without search words the count is the
    /// index's counters and the page a scan of the stories up to it; a
    /// search reads the newest [`SEARCH_SCAN`] stories at most.
    pub(crate) fn page(
        &self,
        filter: &Filter,
        page: usize,
        per_page: usize,
    ) -> Result<(usize, Vec<Item>), StatusCode> {
        let skip = page.saturating_sub(1).saturating_mul(per_page);
        if let Some(q) = &filter.query {
            return self.search(filter, q, skip, per_page);
        }
        let facet = Facet::of(filter.language.as_deref(), filter.section.as_deref());
        let mut total = 0u64;
        for p in self.publishers(filter) {
            total += self.store.facet_count(&p, facet).map_err(store_failed)?;
        }
        let total = total as usize;
        let mut out = Vec::with_capacity(per_page.min(total));
        if skip < total {
            for e in self.entries(filter, None).skip(skip).take(per_page) {
                if let Some(i) = self.item(&e.map_err(store_failed)?)? {
                    out.push(i);
                }
            }
        }
        Ok((total, out))
    }

    /// Up to `limit` stories matching `filter` (search words aside), after
    /// `after`: a cursor's page costs what it shows, however deep.
    pub(crate) fn after(
        &self,
        filter: &Filter,
        after: Option<&IndexCursor>,
        limit: usize,
    ) -> Result<Vec<Item>, StatusCode> {
        let mut out = Vec::with_capacity(limit);
        for e in self.entries(filter, after).take(limit) {
            if let Some(i) = self.item(&e.map_err(store_failed)?)? {
                out.push(i);
            }
        }
        Ok(out)
    }

    fn search(
        &self,
        filter: &Filter,
        q: &str,
        skip: usize,
        per_page: usize,
    ) -> Result<(usize, Vec<Item>), StatusCode> {
        if let Some(index) = &self.search {
            return self.full_text(index, filter, q, skip, per_page);
        }
        let words: Vec<String> = q
            .to_lowercase()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let mut total = 0;
        let mut out = Vec::with_capacity(per_page);
        for e in self.entries(filter, None).take(SEARCH_SCAN) {
            let Some(i) = self.item(&e.map_err(store_failed)?)? else {
                continue;
            };
            if i.matches(&words) {
                if total >= skip && out.len() < per_page {
                    out.push(i);
                }
                total += 1;
            }
        }
        Ok((total, out))
    }

    /// Search through the full-text index: ranked by BM25 over headline,
    /// summary and body, stemmed per language. The index narrows the hits
    /// to the publishers shown (the one asked for, or the trusted ones),
    /// the language and the section, and gives the page and the count; only the
    /// page's stories are read from the store, and one no longer held is
    /// skipped. Pages go [`SEARCH_HITS`] deep at most.
    fn full_text(
        &self,
        index: &Search,
        filter: &Filter,
        q: &str,
        skip: usize,
        per_page: usize,
    ) -> Result<(usize, Vec<Item>), StatusCode> {
        let publishers = self.publishers(filter);
        let narrow = crate::search::Narrow {
            publishers: Some(&publishers),
            language: filter.language.as_deref(),
            section: filter.section.as_deref(),
        };
        let limit = per_page.min(SEARCH_HITS.saturating_sub(skip));
        let found = index.search(q, narrow, skip, limit).map_err(|e| {
            tracing::warn!("gateway: the search index failed");
            tracing::debug!("gateway: the search index failed: {e}");
            StatusCode::INTERNAL_SERVER_ERROR
        })?;
        let mut out = Vec::with_capacity(found.hits.len());
        for h in found.hits {
            if let Some(i) = self.newest(&h.publisher, &h.story)? {
                out.push(i);
            }
        }
        Ok((found.total, out))
    }

    /// The newest version held of one story, if any.
    fn newest(&self, publisher: &PublicKey, story: &StoryId) -> Result<Option<Item>, StatusCode> {
        let newest = self
            .store
            .history(publisher, story)
            .map_err(store_failed)?
            .into_iter()
            .max_by_key(|v| v.manifest.version);
        Ok(newest.map(|v| {
            let language = v.manifest.metadata.language.to_lowercase();
            Item::of(v.id, v.manifest, language)
        }))
    }
}
