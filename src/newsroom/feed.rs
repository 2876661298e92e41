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
//! the metadata and blobs the draft would (compared through the hashes in
//! the manifest, so the `published/` folder is the only state and a crash
//! between two items cannot make the next run disagree with it), and
//! otherwise updated: it becomes the story's next version.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use feed_rs::model::{Entry as FeedEntry, Feed, Text};
use thiserror::Error;
use tracing::{debug, warn};
use url::Url;

use super::fetch::{FetchError, Fetcher};
use super::{Draft, MediaFile, Newsroom, NewsroomError, Relation, content_entries};
use crate::proto::limits::{MAX_AUTHOR, MAX_AUTHORS, MAX_SECTION, MAX_SUMMARY, MAX_TITLE, MAX_URL};
use crate::proto::{
    BundleId, CertId, FORMAT_VERSION, Kind, Manifest, Metadata, PublicKey, StoryId, Timestamp,
};

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
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
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
    let feed = parse_feed(&bytes, url.as_ref()).map_err(|reason| FeedError::Parse {
        feed: name.clone(),
        reason,
    })?;
    Ok(LoadedFeed {
        feed,
        url,
        source: name,
    })
}

fn read_capped(path: &Path) -> Result<Vec<u8>, FeedError> {
    use std::io::Read;
    let read_err = |source| FeedError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_FEED_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FEED_BYTES {
        return Err(FeedError::TooLarge(path.display().to_string()));
    }
    Ok(bytes)
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

/// An item ready to publish.
#[derive(Debug, Clone)]
pub struct PreparedItem {
    /// The item's guid, id or link, as the feed gives it.
    pub key: String,
    /// The story it maps to.
    pub story: StoryId,
    /// The complete story version.
    pub draft: Draft,
}

/// What became of one item while preparing.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// Ready to compare and publish.
    Ready(Box<PreparedItem>),
    /// Left out, and why.
    Skipped {
        /// The item's guid, id, link or title, whichever it has.
        item: String,
        /// Why.
        reason: String,
        /// Whether a failure (a page that could not be fetched) rather
        /// than the item itself is the cause, so that a later run may
        /// succeed.
        failed: bool,
    },
}

/// The story id of a feed item: derived from the newsroom's root key and
/// the item's guid/id (or link), so it is the same on every run and the
/// same as `kolokol publish --story KEY` gives.
pub fn story_id(publisher: &PublicKey, key: &str) -> StoryId {
    StoryId::derive(publisher, key)
}

/// The item's own stable key: its guid or id, else its link.
pub fn item_key(entry: &FeedEntry) -> Option<String> {
    let id = entry.id.trim();
    if !id.is_empty() {
        return Some(id.to_owned());
    }
    entry_link(entry).map(|l| l.to_owned())
}

fn entry_link(entry: &FeedEntry) -> Option<&str> {
    entry
        .links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or(entry.links.first())
        .map(|l| l.href.trim())
        .filter(|h| !h.is_empty())
}

/// Turns the items of a feed into drafts one at a time, fetching article
/// pages (only from `opts.page_hosts`) and images as each is asked for, so
/// that only one item's media is held at once. Never fails as a whole:
/// items that cannot be made come out as skipped, with the reason.
pub fn prepare<'a>(
    loaded: &'a LoadedFeed,
    publisher: &'a PublicKey,
    fetcher: &'a Fetcher,
    opts: &'a ImportOptions,
) -> impl Iterator<Item = Prepared> + 'a {
    let entries = &loaded.feed.entries;
    let mut seen: HashMap<StoryId, String> = HashMap::new();
    let mut n = 0;
    std::iter::from_fn(move || {
        let entry = entries.get(n)?;
        n += 1;
        if n > MAX_ITEMS {
            // One line for all the rest, then the end.
            n = entries.len();
            return Some(Prepared::Skipped {
                item: format!("items {MAX_ITEMS} and later"),
                reason: format!("only the first {MAX_ITEMS} items of a feed are imported"),
                failed: false,
            });
        }
        let Some(key) = item_key(entry) else {
            let name = entry
                .title
                .as_ref()
                .map(text_of)
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| format!("item {n}"));
            return Some(Prepared::Skipped {
                item: name,
                reason: "it has no guid, id or link to identify its story".into(),
                failed: false,
            });
        };
        let story = story_id(publisher, &key);
        if let Some(first) = seen.get(&story) {
            return Some(Prepared::Skipped {
                item: key,
                reason: format!("the feed lists the same guid/id twice (first as {first:?})"),
                failed: false,
            });
        }
        seen.insert(story, key.clone());
        Some(match prepare_item(loaded, entry, fetcher, opts) {
            Ok(draft) => Prepared::Ready(Box::new(PreparedItem {
                key,
                story,
                draft: Draft {
                    story: Some(story),
                    ..draft
                },
            })),
            Err((reason, failed)) => Prepared::Skipped {
                item: key,
                reason,
                failed,
            },
        })
    })
}

/// Builds one item's draft; on failure, the reason and whether it is a
/// failure (rather than something about the item).
fn prepare_item(
    loaded: &LoadedFeed,
    entry: &FeedEntry,
    fetcher: &Fetcher,
    opts: &ImportOptions,
) -> Result<Draft, (String, bool)> {
    let feed = &loaded.feed;
    let link = entry_link(entry).and_then(|l| resolve(loaded.url.as_ref(), l));
    let title = entry
        .title
        .as_ref()
        .map(text_of)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ("it has no title".to_owned(), false))?;
    // RSS descriptions are HTML more often than their type says: a
    // summary is always read as HTML and kept as plain text.
    let summary = entry
        .summary
        .as_ref()
        .map(|t| {
            html_to_text(&t.content)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|s| !s.is_empty())
        .map(|s| truncate(&s, MAX_SUMMARY));

    // The body: the feed's full content, else the article page on the
    // newsroom's own server, else (an item with no page) its summary.
    let content = entry
        .content
        .as_ref()
        .and_then(|c| c.body.as_deref().map(|b| (b, c.content_type.to_string())))
        .filter(|(b, _)| !b.trim().is_empty());
    let (raw_body, base) = match content {
        Some((body, ctype)) if ctype.starts_with("text/plain") => {
            (plain_to_html(body), link.clone().or(loaded.url.clone()))
        }
        Some((body, _)) => (clean_html(body), link.clone().or(loaded.url.clone())),
        None => match &link {
            Some(page_url) => {
                let page = fetcher
                    .get(page_url, MAX_PAGE_BYTES, Some(&opts.page_hosts))
                    .map_err(|e| {
                        let failed = !matches!(e, FetchError::HostNotAllowed { .. });
                        (format!("the feed has only a summary and the article page could not be fetched: {e}"), failed)
                    })?;
                let ctype = page.content_type.as_deref().unwrap_or("text/html");
                let mime = ctype.split(';').next().unwrap_or_default().trim();
                if !mime.eq_ignore_ascii_case("text/html")
                    && !mime.eq_ignore_ascii_case("application/xhtml+xml")
                {
                    return Err((
                        format!("the article page {} is {mime}, not HTML", page.url),
                        false,
                    ));
                }
                let html = decode_page(&page.bytes, page.content_type.as_deref());
                (extract_article(&html), Some(page.url))
            }
            None => match &summary {
                Some(s) => (plain_to_html(s), loaded.url.clone()),
                None => return Err(("it has no content, summary or link".into(), false)),
            },
        },
    };
    if raw_body.trim().is_empty() {
        return Err(("its article content is empty".into(), false));
    }

    // Images: those the body shows, then enclosures and media elements.
    let mut images = ImageSet::default();
    let body = rewrite_images(&raw_body, base.as_ref(), fetcher, &mut images);
    let mut lead = String::new();
    for media in &entry.media {
        let urls = media
            .content
            .iter()
            .filter(|c| match &c.content_type {
                Some(t) => t.to_string().starts_with("image/"),
                // Untyped: only what is named like an image, rather than
                // fetching audio or video just to find out.
                None => c.url.as_ref().is_some_and(|u| {
                    super::article::media_type_of(Path::new(u.path()))
                        .is_some_and(|t| t.starts_with("image/"))
                }),
            })
            .filter_map(|c| c.url.clone())
            .chain(
                media
                    .thumbnails
                    .iter()
                    .filter_map(|t| resolve(base.as_ref(), &t.image.uri)),
            );
        for url in urls {
            if let Some(name) = images.fetch(&url, fetcher)
                && !body.contains(&format!("\"media/{name}\""))
                && !lead.contains(&format!("\"media/{name}\""))
            {
                lead.push_str(&format!(
                    "<figure><img src=\"media/{name}\" alt=\"\"></figure>\n"
                ));
            }
        }
    }
    let body = lead + &body;

    let authors: Vec<String> = if entry.authors.is_empty() {
        &feed.authors
    } else {
        &entry.authors
    }
    .iter()
    .filter_map(|p| p.name.as_deref())
    .map(|n| truncate(n.trim(), MAX_AUTHOR))
    .filter(|n| !n.is_empty())
    .take(MAX_AUTHORS)
    .collect();
    let section = entry
        .categories
        .first()
        .map(|c| c.label.clone().unwrap_or_else(|| c.term.clone()))
        .map(|s| truncate(s.trim(), MAX_SECTION))
        .filter(|s| !s.is_empty());
    let language = entry
        .language
        .clone()
        .or_else(|| feed.language.clone())
        .or_else(|| opts.default_language.clone())
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "und".into());
    let published = entry
        .published
        .or(entry.updated)
        .and_then(|t| u64::try_from(t.timestamp()).ok())
        .map(Timestamp);
    let draft = Draft {
        title: truncate(&title, MAX_TITLE),
        language,
        authors,
        section,
        original_url: link.map(String::from).filter(|u| u.len() <= MAX_URL),
        summary,
        published,
        body_html: body,
        media: images.into_media(),
        story: None,
        relation: Relation::Story,
    };
    check_draft(&draft).map_err(|e| (e, false))?;
    Ok(draft)
}

/// Checks a draft against the manifest's rules before anything is signed,
/// so that publishing cannot fail half-way through a feed for a reason
/// known in advance.
fn check_draft(draft: &Draft) -> Result<(), String> {
    let (_, entries) = content_entries(&draft.body_html, &draft.media);
    let probe = Manifest {
        format: FORMAT_VERSION,
        publisher: crate::proto::SecretKey::from_seed(&[0; 32]).public(),
        certificate: CertId::of(b""),
        story: StoryId([0; 16]),
        version: 1,
        kind: Kind::Story,
        sequence: 1,
        supersedes: None,
        signed_at: Timestamp(0),
        metadata: metadata_of(draft, Timestamp(0)),
        entries,
    };
    probe
        .validate()
        .map_err(|e| format!("not a valid story: {e}"))
}

fn metadata_of(draft: &Draft, published: Timestamp) -> Metadata {
    Metadata {
        title: draft.title.clone(),
        language: draft.language.clone(),
        authors: draft.authors.clone(),
        section: draft.section.clone(),
        published,
        updated: None,
        original_url: draft.original_url.clone(),
        summary: draft.summary.clone(),
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
pub struct LatestVersions(BTreeMap<StoryId, (BundleId, Manifest)>);

impl LatestVersions {
    /// Reads the manifests in the newsroom's `published/` folder.
    pub fn load(newsroom: &Newsroom) -> Result<Self, FeedError> {
        let mut latest: BTreeMap<StoryId, (BundleId, Manifest)> = BTreeMap::new();
        for (_, id, m) in newsroom.published()? {
            let newer = latest
                .get(&m.story)
                .is_none_or(|(_, old)| m.version > old.version);
            if newer {
                latest.insert(m.story, (id, m));
            }
        }
        Ok(Self(latest))
    }

    /// What publishing `item` would be, given the story's latest version.
    pub fn change(&self, item: &PreparedItem) -> Change {
        match self.0.get(&item.story) {
            None => Change::New,
            Some((_, m)) if m.kind == Kind::Retraction => Change::Retracted,
            Some((_, m)) if same_content(m, &item.draft) => {
                Change::Unchanged { version: m.version }
            }
            Some((_, m)) => Change::Updated {
                version: m.version.saturating_add(1),
            },
        }
    }
}

/// Whether a published manifest lists exactly what `draft` would: the same
/// metadata (times aside: a feed's dates alone do not make a new version)
/// and the same body and media, by hash.
pub fn same_content(m: &Manifest, draft: &Draft) -> bool {
    let (_, entries) = content_entries(&draft.body_html, &draft.media);
    let md = &m.metadata;
    md.title == draft.title
        && md.language == draft.language
        && md.authors == draft.authors
        && md.section == draft.section
        && md.original_url == draft.original_url
        && md.summary == draft.summary
        && m.entries == entries
}

// ---------------------------------------------------------------------------
// Text and HTML.

/// A feed text field as plain text: HTML titles and summaries lose their
/// tags and entities.
fn text_of(t: &Text) -> String {
    let ct = t.content_type.to_string();
    let text = if ct.contains("html") {
        html_to_text(&t.content)
    } else {
        t.content.clone()
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Plain text of an HTML fragment: tags dropped, the common entities
/// decoded. Used for titles and summaries only; bodies stay HTML.
pub fn html_to_text(html: &str) -> String {
    let cleaned = ammonia::Builder::empty().clean(html).to_string();
    decode_entities(&cleaned)
}

fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| match &rest[1..e] {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
                .ok()
                .and_then(char::from_u32),
            n if n.starts_with('#') => n[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        });
        match (decoded, end) {
            (Some(c), Some(e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Plain text as HTML paragraphs, one per blank-line-separated block.
fn plain_to_html(text: &str) -> String {
    text.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| format!("<p>{}</p>\n", escape_html(p)))
        .collect()
}

/// Truncates to at most `max` bytes at a character boundary, marking the
/// cut with an ellipsis.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let ellipsis = '…';
    let mut end = max.saturating_sub(ellipsis.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &s[..end])
}

fn cleaner() -> ammonia::Builder<'static> {
    let mut b = ammonia::Builder::default();
    // Kept so that the article can be found in a whole page; script and
    // style (with their content) are dropped by ammonia's defaults, and so
    // are event handlers and script URLs.
    b.add_tags(["article", "main", "section", "figure", "figcaption"]);
    b.add_clean_content_tags(["title", "template", "iframe", "object", "svg", "math"]);
    b
}

/// Cleans article HTML from a feed: scripts, styles, event handlers and
/// unknown elements removed, the text and structure kept.
pub fn clean_html(html: &str) -> String {
    cleaner().clean(html).to_string()
}

/// The article content of a whole page: the first `<article>` element,
/// else `<main>`, else the page's body; cleaned as by [`clean_html`].
pub fn extract_article(page: &str) -> String {
    let cleaned = clean_html(page);
    for name in ["article", "main"] {
        if let Some(inner) = element_inner(&cleaned, name) {
            return inner.trim().to_owned();
        }
    }
    cleaned.trim().to_owned()
}

/// A page's text in the character set its server or its own `<meta>`
/// names (Russian and Arabic sites still use windows-1251 and the like),
/// else UTF-8; undecodable bytes become U+FFFD.
pub fn decode_page(bytes: &[u8], content_type: Option<&str>) -> String {
    fn charset_in(text: &str) -> Option<&str> {
        let lower = text.to_ascii_lowercase();
        let at = lower.find("charset=")? + "charset=".len();
        let rest = text[at..].trim_start_matches(['"', '\'', ' ']);
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        Some(&rest[..end])
    }
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(2048)]);
    let encoding = encoding_rs::Encoding::for_bom(bytes)
        .map(|(e, _)| e)
        .or_else(|| {
            content_type
                .and_then(charset_in)
                .and_then(|c| encoding_rs::Encoding::for_label(c.as_bytes()))
        })
        .or_else(|| charset_in(&head).and_then(|c| encoding_rs::Encoding::for_label(c.as_bytes())))
        .unwrap_or(encoding_rs::UTF_8);
    encoding.decode(bytes).0.into_owned()
}

/// One tag in serialized HTML.
#[derive(Debug)]
struct Tag {
    start: usize,
    end: usize,
    name: String,
    closing: bool,
    self_closing: bool,
}

/// The next tag at or after `from`. Meant for HTML as ammonia serializes
/// it (no comments, `<` escaped in text), but safe on any input: quoted
/// attribute values are skipped whole, so a `>` inside one does not end
/// the tag.
fn next_tag(html: &str, mut from: usize) -> Option<Tag> {
    let bytes = html.as_bytes();
    loop {
        let start = from + html.get(from..)?.find('<')?;
        let mut i = start + 1;
        let closing = bytes.get(i) == Some(&b'/');
        if closing {
            i += 1;
        }
        let name_start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-') {
            i += 1;
        }
        if i == name_start {
            from = start + 1;
            continue;
        }
        let name = html[name_start..i].to_ascii_lowercase();
        let mut quote = None;
        while i < bytes.len() {
            match (quote, bytes[i]) {
                (None, b'"' | b'\'') => quote = Some(bytes[i]),
                (Some(q), c) if c == q => quote = None,
                (None, b'>') => break,
                _ => {}
            }
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        let self_closing = bytes[i - 1] == b'/';
        return Some(Tag {
            start,
            end: i + 1,
            name,
            closing,
            self_closing,
        });
    }
}

/// The inner HTML of the first `name` element, nested ones counted.
fn element_inner<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let mut pos = 0;
    let open = loop {
        let t = next_tag(html, pos)?;
        pos = t.end;
        if t.name == name && !t.closing && !t.self_closing {
            break t;
        }
    };
    let mut depth = 1usize;
    while let Some(t) = next_tag(html, pos) {
        pos = t.end;
        if t.name != name || t.self_closing {
            continue;
        }
        if t.closing {
            depth -= 1;
            if depth == 0 {
                return Some(&html[open.end..t.start]);
            }
        } else {
            depth += 1;
        }
    }
    Some(&html[open.end..])
}

/// The value span (start, end) of attribute `attr` in the tag text, when
/// written as `attr="..."` or `attr='...'`.
fn attr_span(tag: &str, attr: &str) -> Option<(usize, usize)> {
    let lower = tag.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut from = 0;
    while let Some(i) = lower[from..].find(attr).map(|i| i + from) {
        from = i + attr.len();
        let before_ok = i > 0 && bytes[i - 1].is_ascii_whitespace();
        let mut j = i + attr.len();
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        if !before_ok || bytes.get(j) != Some(&b'=') {
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        let q = *bytes.get(j)?;
        if q != b'"' && q != b'\'' {
            continue;
        }
        let end = lower[j + 1..].find(q as char)? + j + 1;
        return Some((j + 1, end));
    }
    None
}

/// Images fetched for one story, by source URL.
#[derive(Default)]
struct ImageSet {
    by_url: HashMap<String, Option<String>>,
    media: Vec<MediaFile>,
    bytes: u64,
}

impl ImageSet {
    /// Fetches an image once; its bundle file name, or `None` (with a
    /// warning) when it cannot be had. A failed image never fails the item.
    fn fetch(&mut self, url: &Url, fetcher: &Fetcher) -> Option<String> {
        if let Some(done) = self.by_url.get(url.as_str()) {
            return done.clone();
        }
        let result = if self.media.len() >= MAX_IMAGES_PER_ITEM {
            warn!("{url}: image left out: more than {MAX_IMAGES_PER_ITEM} images in one story");
            None
        } else {
            match fetcher.get(url, MAX_IMAGE_BYTES, None) {
                Ok(f) if self.bytes + f.bytes.len() as u64 > MAX_MEDIA_BYTES_PER_ITEM => {
                    warn!(
                        "{url}: image left out: the story's images would pass {MAX_MEDIA_BYTES_PER_ITEM} bytes"
                    );
                    None
                }
                Ok(f) => match sniff_image(&f.bytes) {
                    Some((ext, media_type)) => {
                        let hash = blake3::hash(&f.bytes);
                        let name = format!("img-{}.{ext}", &hash.to_hex()[..16]);
                        if !self.media.iter().any(|m| m.name == name) {
                            self.bytes += f.bytes.len() as u64;
                            self.media.push(MediaFile {
                                name: name.clone(),
                                media_type: media_type.into(),
                                bytes: f.bytes,
                            });
                        }
                        Some(name)
                    }
                    None => {
                        warn!("{url}: image left out: not a PNG, JPEG, GIF, WebP or AVIF image");
                        None
                    }
                },
                Err(e) => {
                    warn!("image left out: {e}");
                    None
                }
            }
        };
        self.by_url.insert(url.to_string(), result.clone());
        result
    }

    fn into_media(self) -> Vec<MediaFile> {
        self.media
    }
}

/// The image format, by the bytes themselves rather than what a server
/// claims. SVG is not imported: it can carry scripts.
fn sniff_image(b: &[u8]) -> Option<(&'static str, &'static str)> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(("png", "image/png"))
    } else if b.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(("jpg", "image/jpeg"))
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some(("gif", "image/gif"))
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some(("webp", "image/webp"))
    } else if b.len() >= 12 && &b[4..8] == b"ftyp" && (&b[8..12] == b"avif" || &b[8..12] == b"avis")
    {
        Some(("avif", "image/avif"))
    } else {
        None
    }
}

fn resolve(base: Option<&Url>, href: &str) -> Option<Url> {
    let href = decode_entities(href.trim());
    let url = match Url::parse(&href) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) => match base {
            Some(b) => b.join(&href).ok()?,
            None => {
                warn!("{href}: left out: a relative URL in a feed read from a file");
                return None;
            }
        },
        Err(e) => {
            warn!("{href}: left out: {e}");
            return None;
        }
    };
    matches!(url.scheme(), "http" | "https").then_some(url)
}

/// Fetches the images `<img src>` points at and points each `src` at the
/// bundled copy; images that cannot be fetched keep their address.
fn rewrite_images(
    html: &str,
    base: Option<&Url>,
    fetcher: &Fetcher,
    images: &mut ImageSet,
) -> String {
    let mut out = String::with_capacity(html.len());
    let mut copied = 0;
    let mut pos = 0;
    while let Some(tag) = next_tag(html, pos) {
        pos = tag.end;
        if tag.name != "img" || tag.closing {
            continue;
        }
        let text = &html[tag.start..tag.end];
        let Some((s, e)) = attr_span(text, "src") else {
            continue;
        };
        let src = &text[s..e];
        if src.starts_with("media/") {
            continue;
        }
        let Some(url) = resolve(base, src) else {
            continue;
        };
        if let Some(name) = images.fetch(&url, fetcher) {
            debug!("{url} bundled as media/{name}");
            out.push_str(&html[copied..tag.start + s]);
            out.push_str("media/");
            out.push_str(&name);
            copied = tag.start + e;
        }
    }
    out.push_str(&html[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn story_ids_are_stable_and_distinct() {
        let k = crate::proto::SecretKey::from_seed(&[3; 32]).public();
        let other = crate::proto::SecretKey::from_seed(&[4; 32]).public();
        let a = story_id(&k, "https://news.example/2026/05/a");
        assert_eq!(a, story_id(&k, "https://news.example/2026/05/a"));
        assert_ne!(a, story_id(&k, "https://news.example/2026/05/b"));
        assert_ne!(a, story_id(&other, "https://news.example/2026/05/a"));
        // The same id `kolokol publish --story KEY` gives.
        assert_eq!(a, StoryId::derive(&k, "https://news.example/2026/05/a"));
    }

    #[test]
    fn item_key_prefers_guid_then_link() {
        let rss = br#"<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>
            <item><title>A</title><guid isPermaLink="false">guid-a</guid><link>https://n.example/a</link></item>
            <item><title>B</title><link>https://n.example/b</link></item>
            <item><title>C</title><description>no id</description></item>
            </channel></rss>"#;
        let feed = parse_feed(rss, None).unwrap();
        let keys: Vec<_> = feed.entries.iter().map(item_key).collect();
        assert_eq!(
            keys,
            vec![
                Some("guid-a".to_owned()),
                Some("https://n.example/b".to_owned()),
                None
            ]
        );
    }

    #[test]
    fn article_extraction_prefers_article_then_main() {
        let page = r#"<html><head><title>Site</title><style>p{}</style>
            <script>alert(1)</script></head><body><nav>Menu</nav>
            <main><article class="story"><h1>Headline</h1><p onclick="x()">Text <b>bold</b>.</p>
            <article><p>nested</p></article><p>after</p></article></main>
            <footer>Footer</footer></body></html>"#;
        let a = extract_article(page);
        assert!(a.starts_with("<h1>Headline</h1>"), "{a}");
        assert!(a.contains("<p>Text <b>bold</b>.</p>"), "{a}");
        assert!(a.contains("nested") && a.ends_with("<p>after</p>"), "{a}");
        assert!(!a.contains("Menu") && !a.contains("Footer"), "{a}");
        assert!(!a.contains("alert") && !a.contains("onclick"), "{a}");

        let main_only = extract_article("<body><p>x</p><main><p>in main</p></main></body>");
        assert_eq!(main_only, "<p>in main</p>");
        let body_only = extract_article("<html><title>T</title><body><p>all</p></body></html>");
        assert_eq!(body_only, "<p>all</p>");
    }

    #[test]
    fn tag_scanner_skips_quoted_gt() {
        let html = r#"<img alt="a > b" src="x.png"><p>t</p>"#;
        let t = next_tag(html, 0).unwrap();
        assert_eq!(t.name, "img");
        assert_eq!(&html[t.start..t.end], r#"<img alt="a > b" src="x.png">"#);
        let (s, e) = attr_span(&html[t.start..t.end], "src").unwrap();
        assert_eq!(&html[s..e], "x.png");
        assert!(attr_span(r#"<img data-src="y">"#, "src").is_none());
    }

    #[test]
    fn text_fields() {
        assert_eq!(
            decode_entities("a &amp; b &#1092; &#x444; &bogus; &"),
            "a & b ф ф &bogus; &"
        );
        assert_eq!(html_to_text("<b>Big</b> &amp; <i>bold</i>"), "Big & bold");
        assert_eq!(truncate("абв", 4), "…");
        assert_eq!(truncate("abcdef", 5), "ab…");
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(plain_to_html("a < b\n\nc"), "<p>a &lt; b</p>\n<p>c</p>\n");
    }

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

    #[test]
    fn pages_are_decoded_by_their_charset() {
        // "Мир" in windows-1251.
        let cp1251 = b"<p>\xcc\xe8\xf0</p>";
        assert_eq!(
            decode_page(cp1251, Some("text/html; charset=windows-1251")),
            "<p>Мир</p>"
        );
        let with_meta = [
            &b"<head><meta charset=\"windows-1251\"></head><p>"[..],
            &b"\xcc\xe8\xf0</p>"[..],
        ]
        .concat();
        assert!(decode_page(&with_meta, Some("text/html")).ends_with("<p>Мир</p>"));
        assert_eq!(decode_page("<p>Мир</p>".as_bytes(), None), "<p>Мир</p>");
    }

    #[test]
    fn images_are_sniffed() {
        assert_eq!(
            sniff_image(b"\x89PNG\r\n\x1a\nrest").map(|s| s.0),
            Some("png")
        );
        assert_eq!(sniff_image(b"<svg xmlns=...>"), None);
        assert_eq!(sniff_image(b""), None);
    }
}
