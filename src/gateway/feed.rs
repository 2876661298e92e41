//! Atom feeds (RFC 4287): one for every trusted publisher and one for all,
//! so a reader's own feed reader can follow the newsrooms through the
//! node. Entries carry the sanitized body (the notice, for a retracted
//! story); their links point at this node.

use std::borrow::Cow;
use std::io;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

use super::GatewayState;
use super::catalog::{Filter, Item};
use super::html::{lang_attr, rfc3339};
use super::locale::Locale;
use super::pages::{error_page, store_error};
use crate::proto::Timestamp;
use crate::trust::PublisherFile;

/// Entries in a feed.
pub(crate) const FEED_ENTRIES: usize = 50;

/// Text fit for XML 1.0: characters XML cannot carry are dropped (the
/// writer escapes markup).
fn xml_chars(s: &str) -> Cow<'_, str> {
    let fits = |c: char| {
        matches!(c, '\t' | '\n' | '\r')
            || ('\u{20}'..='\u{D7FF}').contains(&c)
            || ('\u{E000}'..='\u{FFFD}').contains(&c)
            || c >= '\u{10000}'
    };
    if s.chars().all(fits) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().filter(|&c| fits(c)).collect())
    }
}

/// The feed being written.
type Xml = Writer<Vec<u8>>;

/// `<name>text</name>`, the text escaped by the writer.
fn text_element(w: &mut Xml, name: &str, text: &str) -> io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(&xml_chars(text)))?;
    Ok(())
}

/// `<author><name>name</name></author>`.
fn author(w: &mut Xml, name: &str) -> io::Result<()> {
    w.create_element("author")
        .write_inner_content(|w| text_element(w, "name", name))?;
    Ok(())
}

/// An empty `<link>` to `href` (relative to the feed's `xml:base`).
fn link(w: &mut Xml, rel: &str, media_type: &str, href: &str) -> io::Result<()> {
    w.create_element("link")
        .with_attributes([
            ("rel", rel),
            ("type", media_type),
            ("href", &xml_chars(href)),
        ])
        .write_empty()?;
    Ok(())
}

/// `http://HOST` for links in a feed, from the request's `Host` (checked
/// to be a loopback name unless the gateway is public, and here to hold
/// only host-name characters), else the address the gateway listens on.
fn base_url(state: &GatewayState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(str::to_owned)
        .or_else(|| state.local_addr().map(|a| a.to_string()))
        .unwrap_or_else(|| "127.0.0.1".into());
    format!("http://{host}")
}

fn entry(
    w: &mut Xml,
    state: &GatewayState,
    item: &Item,
    publisher: &PublisherFile,
) -> io::Result<()> {
    let body = state
        .store()
        .manifest(&item.id)
        .ok()
        .flatten()
        .and_then(|m| {
            // For a retraction, the notice is the newest version's own body.
            state.body(&item.id, &m.manifest).ok()
        });
    w.create_element("entry")
        .with_attribute(("xml:lang", lang_attr(&item.language)))
        .write_inner_content(|w| {
            text_element(
                w,
                "id",
                &format!("urn:kolokol:story:{}:{}", hex_key(publisher), item.story),
            )?;
            text_element(w, "title", &item.title)?;
            text_element(w, "updated", &rfc3339(item.signed_at))?;
            text_element(w, "published", &rfc3339(item.published))?;
            link(w, "alternate", "text/html", &format!("story/{}", item.id))?;
            if item.authors.is_empty() {
                author(w, publisher.shown_name())?;
            }
            for a in &item.authors {
                author(w, a)?;
            }
            if let Some(s) = &item.section {
                w.create_element("category")
                    .with_attribute(("term", &*xml_chars(s)))
                    .write_empty()?;
            }
            if item.retracted() {
                w.create_element("category")
                    .with_attribute(("term", "retracted"))
                    .write_empty()?;
            }
            if let Some(s) = &item.summary {
                text_element(w, "summary", s)?;
            }
            if let Some(b) = body {
                // The sanitized body travels as text, escaped like any other.
                w.create_element("content")
                    .with_attribute(("type", "html"))
                    .write_text_content(BytesText::new(&xml_chars(&b)))?;
            }
            Ok(())
        })?;
    Ok(())
}

fn hex_key(p: &PublisherFile) -> String {
    hex::encode(p.root_key.as_bytes())
}

fn atom(xml_text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/atom+xml; charset=utf-8"),
        )],
        xml_text,
    )
        .into_response()
}

async fn feed(
    state: GatewayState,
    loc: Locale,
    headers: HeaderMap,
    publisher: Option<PublisherFile>,
) -> Response {
    let catalog = state.catalog();
    let trusted = state.trusted();
    let filter = Filter {
        publisher: publisher.as_ref().map(|p| p.root_key),
        ..Default::default()
    };
    let items = match catalog.page(&filter, 1, FEED_ENTRIES) {
        Ok((_, items)) => items,
        Err(s) => return store_error(&loc, s),
    };
    let base = base_url(&state, &headers);
    let (id, title, self_path) = match &publisher {
        Some(p) => (
            format!("urn:kolokol:feed:{}", hex_key(p)),
            format!("{} (via Kolokol)", p.shown_name()),
            format!("p/{}/feed.atom", p.name),
        ),
        None => (
            "urn:kolokol:feed:all".to_owned(),
            "All newsrooms (via Kolokol)".to_owned(),
            "feed.atom".to_owned(),
        ),
    };
    // The feed changes when its newest entry does; an empty feed is as
    // old as the epoch.
    let updated = items
        .iter()
        .map(|i| i.signed_at)
        .max()
        .unwrap_or(Timestamp(0));
    let alternate = publisher
        .as_ref()
        .map_or(String::new(), |p| format!("p/{}", p.name));
    let mut w = Writer::new(Vec::with_capacity(64 * 1024));
    let written = (|| -> io::Result<()> {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
        w.write_event(Event::Text(BytesText::new("\n")))?;
        w.create_element("feed")
            .with_attributes([
                ("xmlns", "http://www.w3.org/2005/Atom"),
                ("xml:base", &format!("{}/", xml_chars(&base))),
            ])
            .write_inner_content(|w| {
                text_element(w, "id", &id)?;
                text_element(w, "title", &title)?;
                text_element(w, "updated", &rfc3339(updated))?;
                link(w, "self", "application/atom+xml", &self_path)?;
                link(w, "alternate", "text/html", &alternate)?;
                text_element(w, "generator", "Kolokol")?;
                if let Some(p) = &publisher {
                    author(w, p.shown_name())?;
                }
                for item in &items {
                    if let Some(p) = trusted.by_key(&item.publisher) {
                        entry(w, &state, item, p)?;
                    }
                }
                Ok(())
            })?;
        w.write_event(Event::Text(BytesText::new("\n")))
    })();
    let text = written
        .map_err(|e| e.to_string())
        .and_then(|()| String::from_utf8(w.into_inner()).map_err(|e| e.to_string()));
    match text {
        Ok(text) => atom(text),
        Err(e) => {
            tracing::warn!("gateway: cannot write a feed: {e}");
            error_page(
                &loc,
                StatusCode::INTERNAL_SERVER_ERROR,
                &loc.t("error-feed"),
            )
        }
    }
}

/// `GET /feed.atom`: the newest stories of every trusted publisher.
pub(crate) async fn all_feed(
    State(state): State<GatewayState>,
    loc: Locale,
    headers: HeaderMap,
) -> Response {
    feed(state, loc, headers, None).await
}

/// `GET /p/{name}/feed.atom`: the newest stories of one publisher.
pub(crate) async fn publisher_feed(
    State(state): State<GatewayState>,
    Path(name): Path<String>,
    loc: Locale,
    headers: HeaderMap,
) -> Response {
    let Some(p) = state.trusted().by_name(&name).cloned() else {
        return error_page(&loc, StatusCode::NOT_FOUND, &loc.t("error-no-publisher"));
    };
    feed(state, loc, headers, Some(p)).await
}
