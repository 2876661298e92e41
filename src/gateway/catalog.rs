//! The catalog: the newest version of every story of every trusted
//! publisher, in memory, newest first, with what lists, search, feeds and
//! the home page need. It is rebuilt when the store changes (the store
//! counts its writes) or the trust list does, so requests never scan the
//! database.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::Trusted;
use crate::proto::{BundleId, Head, Kind, PublicKey, StoryId, Timestamp};
use crate::store::{Store, StoreError, gaps};

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
    /// Title and summary, lower case, for search.
    search: String,
}

impl Item {
    /// Whether the story has been retracted.
    pub(crate) fn retracted(&self) -> bool {
        self.kind == Kind::Retraction
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

/// Newest versions of all stories of trusted publishers.
pub(crate) struct Catalog {
    changes: u64,
    trust_version: u64,
    built: Instant,
    /// Newest first by first publication.
    items: Vec<Item>,
    publishers: HashMap<PublicKey, PublisherInfo>,
}

/// Filters for a list of stories.
#[derive(Debug, Default, Clone)]
pub(crate) struct Filter<'a> {
    /// One publisher only.
    pub(crate) publisher: Option<PublicKey>,
    /// One language (compared case-insensitively).
    pub(crate) language: Option<&'a str>,
    /// One section.
    pub(crate) section: Option<&'a str>,
    /// Words that must all appear in the title or summary.
    pub(crate) query: Option<&'a str>,
}

impl Catalog {
    /// Reads the store's story index and the newest manifest of every story
    /// of the trusted publishers.
    pub(crate) fn build(
        store: &Store,
        trusted: &Trusted,
        changes: u64,
    ) -> Result<Self, StoreError> {
        let started = Instant::now();
        let mut items = Vec::new();
        let mut publishers = HashMap::new();
        for p in trusted.list.iter() {
            let key = p.root_key;
            let mut info = PublisherInfo {
                bundles: store
                    .held_ranges(&key)?
                    .iter()
                    .map(|(a, b)| b - a + 1)
                    .sum(),
                head: store.head(&key)?.map(|(_, h)| h),
                ..Default::default()
            };
            let upto = info.head.as_ref().map_or(0, |h| h.sequence);
            info.missing = gaps(&store.known_ranges(&key)?, upto);
            for e in store.stories(Some(&key), None, None)? {
                let Some(m) = store.manifest(&e.id)? else {
                    continue;
                };
                let m = m.manifest;
                let meta = m.metadata;
                let mut search = meta.title.to_lowercase();
                if let Some(s) = &meta.summary {
                    search.push('\n');
                    search.push_str(&s.to_lowercase());
                }
                *info.languages.entry(e.language.clone()).or_default() += 1;
                if let Some(s) = &e.section {
                    *info.sections.entry(s.clone()).or_default() += 1;
                }
                info.stories += 1;
                items.push(Item {
                    publisher: key,
                    story: e.story,
                    id: e.id,
                    version: m.version,
                    kind: m.kind,
                    title: meta.title,
                    summary: meta.summary,
                    language: e.language,
                    section: meta.section,
                    authors: meta.authors,
                    published: meta.published,
                    signed_at: m.signed_at,
                    search,
                });
            }
            publishers.insert(key, info);
        }
        items.sort_by_key(|i| std::cmp::Reverse((i.published, i.story)));
        tracing::debug!(
            stories = items.len(),
            ms = started.elapsed().as_millis() as u64,
            "gateway catalog built"
        );
        Ok(Self {
            changes,
            trust_version: trusted.version,
            built: Instant::now(),
            items,
            publishers,
        })
    }

    /// Whether the catalog still shows the store and the trust list. While
    /// the store keeps changing (a node catching up), a catalog less than a
    /// second old is kept, so a busy node rebuilds at most once a second.
    pub(crate) fn is_current(&self, changes: u64, trust_version: u64) -> bool {
        trust_version == self.trust_version
            && (changes == self.changes || self.built.elapsed().as_millis() < 1000)
    }

    /// What is known of a publisher.
    pub(crate) fn publisher(&self, key: &PublicKey) -> Option<&PublisherInfo> {
        self.publishers.get(key)
    }

    /// The stories matching `filter`, newest first.
    pub(crate) fn select(&self, filter: &Filter<'_>) -> impl Iterator<Item = &Item> + '_ {
        let words: Vec<String> = filter
            .query
            .map(|q| {
                q.to_lowercase()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let language = filter.language.map(str::to_ascii_lowercase);
        let section = filter.section.map(str::to_owned);
        let publisher = filter.publisher;
        self.items.iter().filter(move |i| {
            publisher.is_none_or(|p| p == i.publisher)
                && language.as_ref().is_none_or(|l| *l == i.language)
                && section
                    .as_deref()
                    .is_none_or(|s| i.section.as_deref() == Some(s))
                && words.iter().all(|w| i.search.contains(w.as_str()))
        })
    }

    /// The stories matching `filter`: how many in all, and page `page`
    /// (from 1) of `per_page`.
    pub(crate) fn page(
        &self,
        filter: &Filter<'_>,
        page: usize,
        per_page: usize,
    ) -> (usize, Vec<&Item>) {
        let mut total = 0;
        let skip = page.saturating_sub(1).saturating_mul(per_page);
        let mut out = Vec::with_capacity(per_page);
        for i in self.select(filter) {
            if total >= skip && out.len() < per_page {
                out.push(i);
            }
            total += 1;
        }
        (total, out)
    }
}
