//! Feed items into story drafts: which story each item is, and its body,
//! images and metadata.

use std::collections::HashMap;
use std::path::Path;

use feed_rs::model::Entry as FeedEntry;

use super::html::{
    clean_html, decode_page, extract_article, html_to_text, plain_to_html, text_of, truncate,
};
use super::images::{ImageSet, resolve, rewrite_images};
use super::{ImportOptions, LoadedFeed, MAX_ITEMS, MAX_PAGE_BYTES};
use crate::newsroom::fetch::{FetchError, Fetcher};
use crate::newsroom::{Draft, DraftBuilder, Relation};
use crate::proto::limits::{MAX_AUTHOR, MAX_AUTHORS, MAX_SECTION, MAX_SUMMARY, MAX_TITLE, MAX_URL};
use crate::proto::{PublicKey, StoryId, Timestamp};

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
                    crate::newsroom::article::media_type_of(Path::new(u.path()))
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
    DraftBuilder {
        title: truncate(&title, MAX_TITLE),
        language: Some(language),
        authors,
        section,
        original_url: link.map(String::from).filter(|u| u.len() <= MAX_URL),
        summary,
        published,
        body_html: body,
        media: images.into_media(),
        story: None,
        relation: Relation::Story,
    }
    .build()
    .map_err(|e| (e.to_string(), false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::newsroom::feed::parse_feed;

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
}
