//! Importing a newsroom's RSS 2.0, Atom or JSON Feed as stories.
//!
//! An import never leaves a story half-published: [`load`] reads and
//! parses the whole feed first (a broken feed publishes nothing), then
//! [`prepare`] turns each item into a complete [`Draft`] (article page and
//! images fetched, HTML cleaned, metadata checked against the manifest's
//! limits); each draft is compared with what the newsroom already published
//! ([`LatestVersions`]) and the caller signs it, whole, if it is new or
//! changed, before the next item is fetched (so one item's media at most is
//! held in memory).
//!
//! Each item's story id is derived from the newsroom's key and the item's
//! guid or id (its link when it has neither), so the same item maps to the
//! same story on every run. An item is new when the newsroom has no
//! version of that story, unchanged when its latest version lists exactly
//! the metadata and blobs the draft would (compared through the content
//! fingerprint in the index of `published/`, rebuilt from the folder
//! whenever they disagree, so the folder is the only state and a crash
//! between two items cannot make the next run disagree with it), and
//! otherwise updated: it becomes the story's next version.

mod html;
mod images;
mod items;
mod lang;

pub use html::{clean_html, decode_page, extract_article, html_to_text};
pub use items::{Prepared, PreparedItem, item_key, prepare, story_id};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use feed_rs::model::Feed;
use thiserror::Error;
use url::Url;

use super::fetch::{FetchError, Fetcher};
use super::{Draft, Fingerprint, Newsroom, NewsroomError, PublishedEntry};
use crate::files::{self, FilesError};
use crate::proto::{Kind, Manifest, StoryId};

/// Largest feed document read.
pub const MAX_FEED_BYTES: u64 = 8 * 1024 * 1024;
/// Largest article page read.
pub const MAX_PAGE_BYTES: u64 = 8 * 1024 * 1024;
/// Largest image read; well under the protocol's blob limit, since one
/// story may carry several.
pub const MAX_IMAGE_BYTES: u64 = 16 * 1024 * 1024;
/// Most images bundled with one story; further ones are left out with a
/// warning.
pub const MAX_IMAGES_PER_ITEM: usize = 32;
/// Most bytes of images bundled with one story; well under the
/// protocol's bundle limit.
pub const MAX_MEDIA_BYTES_PER_ITEM: u64 = 128 * 1024 * 1024;
/// Most items imported from one feed document.
pub const MAX_ITEMS: usize = 1000;

/// Why a feed could not be imported.
#[derive(Debug, Error)]
pub enum FeedError {
    /// The feed's source is neither an http(s) URL nor a file path.
    #[error("{0:?}: a feed is an http or https URL or a file path")]
    BadSource(String),
    /// The feed could not be fetched.
    #[error("fetching the feed: {0}")]
    Fetch(#[from] FetchError),
    /// The feed file could not be read.
    #[error(transparent)]
    Read(FilesError),
    /// The feed file is larger than [`MAX_FEED_BYTES`].
    #[error("{0}: larger than the limit of {MAX_FEED_BYTES} bytes for a feed")]
    TooLarge(String),
    /// The document is not a feed that can be read.
    #[error("{feed}: not a readable RSS, Atom or JSON feed: {reason}")]
    Parse {
        /// The URL or file.
        feed: String,
        /// What the parser said.
        reason: String,
    },
    /// The newsroom could not be read or could not sign.
    #[error(transparent)]
    Newsroom(#[from] NewsroomError),
}

/// Where a feed comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedSource {
    /// Fetched over HTTP(S).
    Url(Url),
    /// Read from a file.
    File(PathBuf),
}

impl FeedSource {
    /// `http://` and `https://` are URLs; anything else with `://` is
    /// refused; the rest is a file path.
    pub fn parse(text: &str) -> Result<Self, FeedError> {
        let lower = text.trim().to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Url::parse(text.trim())
                .map(FeedSource::Url)
                .map_err(|_| FeedError::BadSource(text.to_owned()));
        }
        if lower.contains("://") || text.trim().is_empty() {
            return Err(FeedError::BadSource(text.to_owned()));
        }
        Ok(FeedSource::File(PathBuf::from(text)))
    }
}

impl std::fmt::Display for FeedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeedSource::Url(u) => write!(f, "{u}"),
            FeedSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A parsed feed and where it came from.
#[derive(Debug)]
pub struct LoadedFeed {
    /// The feed.
    pub feed: Feed,
    /// Its URL, after redirects; `None` for a file.
    pub url: Option<Url>,
    /// How to name it in messages.
    pub source: String,
}

/// Reads and parses a feed: fetched with [`MAX_FEED_BYTES`] as the cap,
/// or read from a file under the same cap.
pub fn load(source: &FeedSource, fetcher: &Fetcher) -> Result<LoadedFeed, FeedError> {
    let (bytes, url) = match source {
        FeedSource::Url(url) => {
            let fetched = fetcher.get(url, MAX_FEED_BYTES, None)?;
            (fetched.bytes, Some(fetched.url))
        }
        FeedSource::File(path) => (read_capped(path)?, None),
    };
    let name = source.to_string();
    let mut feed = parse_feed(&bytes, url.as_ref()).map_err(|reason| FeedError::Parse {
        feed: name.clone(),
        reason,
    })?;
    // An item's own language wins over the channel's; the parser reads
    // only the channel's. Matched by position, so only when both readings
    // count the same items.
    match lang::item_languages(&bytes, MAX_ITEMS) {
        Some(langs) if langs.len() == feed.entries.len().min(MAX_ITEMS) => {
            for (entry, lang) in feed.entries.iter_mut().zip(langs) {
                if lang.is_some() {
                    entry.language = lang;
                }
            }
        }
        _ => tracing::debug!(feed = %name, "the items' own languages could not be read"),
    }
    Ok(LoadedFeed {
        feed,
        url,
        source: name,
    })
}

fn read_capped(path: &Path) -> Result<Vec<u8>, FeedError> {
    files::read_bounded(path, MAX_FEED_BYTES).map_err(|e| match e {
        FilesError::TooLarge { path, .. } => FeedError::TooLarge(path.display().to_string()),
        e => FeedError::Read(e),
    })
}

/// Parses feed bytes. Items without a guid or id keep an empty id (the
/// parser would otherwise invent one from the title, which changes when
/// the title is edited), so that the link can stand in for it.
fn parse_feed(bytes: &[u8], base: Option<&Url>) -> Result<Feed, String> {
    let parser = feed_rs::parser::Builder::new()
        .base_uri(base.map(Url::as_str))
        .id_generator(|_, _, _| String::new())
        .build();
    let feed = parser.parse(bytes).map_err(|e| e.to_string())?;
    Ok(feed)
}

/// What import settings a newsroom's feed gets.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Hosts article pages may be fetched from: the feed's own host and the
    /// newsroom's homepage host.
    pub page_hosts: Vec<String>,
    /// Language for items and feeds that name none.
    pub default_language: Option<String>,
}

impl ImportOptions {
    /// The page hosts for a feed from `feed_url` by a newsroom whose
    /// homepage is `homepage`.
    pub fn for_newsroom(feed_url: Option<&Url>, homepage: Option<&str>) -> Self {
        let homepage_host = homepage
            .and_then(|h| Url::parse(h).ok())
            .and_then(|u| u.host_str().map(str::to_owned));
        let feed_host = feed_url.and_then(Url::host_str).map(str::to_owned);
        let mut hosts: Vec<String> = Vec::new();
        for host in feed_host.into_iter().chain(homepage_host) {
            let host = host.to_ascii_lowercase();
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        Self {
            page_hosts: hosts,
            default_language: None,
        }
    }
}

/// What an import will do with an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The newsroom has no version of the story.
    New,
    /// The story's latest version differs; this becomes version `version`.
    Updated {
        /// The version the draft will be.
        version: u32,
    },
    /// The latest version already says exactly this.
    Unchanged {
        /// That version.
        version: u32,
    },
    /// The newsroom retracted the story; the feed does not bring it back.
    Retracted,
}

/// The latest published version of each of a newsroom's stories.
#[derive(Debug, Default)]
pub struct LatestVersions(HashMap<StoryId, PublishedEntry>);

impl LatestVersions {
    /// Reads the newsroom's index of `published/` (no bundle is decoded).
    pub fn load(newsroom: &Newsroom) -> Result<Self, FeedError> {
        let mut latest: HashMap<StoryId, PublishedEntry> = HashMap::new();
        for e in newsroom.published()? {
            let newer = latest
                .get(&e.story)
                .is_none_or(|old| e.version > old.version);
            if newer {
                latest.insert(e.story, e);
            }
        }
        Ok(Self(latest))
    }

    /// What publishing `item` would be, given the story's latest version.
    pub fn change(&self, item: &PreparedItem) -> Change {
        match self.0.get(&item.story) {
            None => Change::New,
            Some(e) if e.kind == Kind::Retraction => Change::Retracted,
            Some(e) if e.fingerprint == Fingerprint::of_draft(&item.draft) => {
                Change::Unchanged { version: e.version }
            }
            Some(e) => Change::Updated {
                version: e.version.saturating_add(1),
            },
        }
    }
}

/// Whether a published manifest lists exactly what `draft` would: the same
/// metadata (times aside: a feed's dates alone do not make a new version)
/// and the same body and media, by hash.
pub fn same_content(m: &Manifest, draft: &Draft) -> bool {
    Fingerprint::of_manifest(m) == Fingerprint::of_draft(draft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert!(matches!(
            FeedSource::parse("https://n.example/feed.xml"),
            Ok(FeedSource::Url(_))
        ));
        assert!(matches!(
            FeedSource::parse("feeds/rss.xml"),
            Ok(FeedSource::File(_))
        ));
        assert!(FeedSource::parse("ftp://n.example/feed").is_err());
    }

    #[test]
    fn page_hosts() {
        let feed = Url::parse("https://News.example/rss").unwrap();
        let o = ImportOptions::for_newsroom(Some(&feed), Some("https://www.news.example/"));
        assert_eq!(o.page_hosts, vec!["news.example", "www.news.example"]);
        let o = ImportOptions::for_newsroom(None, None);
        assert!(o.page_hosts.is_empty());
    }
}
