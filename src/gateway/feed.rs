//! Atom feeds (RFC 4287): one for every trusted publisher and one for all,
//! so a reader's own feed reader can follow the newsrooms through the
//! node. Entries carry the sanitized body (the notice, for a retracted
//! story); their links point at this node.

use std::fmt::Write;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::GatewayState;
use super::catalog::{Filter, Item};
use super::html::{esc, lang_attr, rfc3339};
use super::pages::error_page;
use crate::proto::Timestamp;
use crate::trust::PublisherFile;

/// Entries in a feed.
pub(crate) const FEED_ENTRIES: usize = 50;

/// Text fit for XML 1.0: characters XML cannot carry are dropped, then
/// markup is escaped.
fn xml(s: &str) -> String {
    let clean: String = s
        .chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r')
                || ('\u{20}'..='\u{D7FF}').contains(&c)
                || ('\u{E000}'..='\u{FFFD}').contains(&c)
                || c >= '\u{10000}'
        })
        .collect();
    esc(&clean).into_owned()
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

fn entry(out: &mut String, state: &GatewayState, item: &Item, publisher: &PublisherFile) {
    let body = state
        .store()
        .manifest(&item.id)
        .ok()
        .flatten()
        .and_then(|m| {
            // For a retraction, the notice is the newest version's own body.
            state.body(&item.id, &m.manifest).ok()
        });
    let lang = lang_attr(&item.language);
    let _ = write!(
        out,
        "<entry xml:lang=\"{lang}\"><id>urn:kolokol:story:{}:{}</id><title>{}</title>\
         <updated>{}</updated><published>{}</published>\
         <link rel=\"alternate\" type=\"text/html\" href=\"story/{}\"/>",
        hex_key(publisher),
        item.story,
        xml(&item.title),
        rfc3339(item.signed_at),
        rfc3339(item.published),
        item.id
    );
    if item.authors.is_empty() {
        let _ = write!(
            out,
            "<author><name>{}</name></author>",
            xml(publisher.shown_name())
        );
    }
    for a in &item.authors {
        let _ = write!(out, "<author><name>{}</name></author>", xml(a));
    }
    if let Some(s) = &item.section {
        let _ = write!(out, "<category term=\"{}\"/>", xml(s));
    }
    if item.retracted() {
        out.push_str("<category term=\"retracted\"/>");
    }
    if let Some(s) = &item.summary {
        let _ = write!(out, "<summary>{}</summary>", xml(s));
    }
    if let Some(b) = body {
        let _ = write!(out, "<content type=\"html\">{}</content>", xml(&b));
    }
    out.push_str("</entry>");
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
    headers: HeaderMap,
    publisher: Option<PublisherFile>,
) -> Response {
    let catalog = match state.catalog().await {
        Ok(c) => c,
        Err(s) => return error_page(s, "The store could not be read."),
    };
    let trusted = state.trusted();
    let filter = Filter {
        publisher: publisher.as_ref().map(|p| p.root_key),
        ..Default::default()
    };
    let (_, items) = catalog.page(&filter, 1, FEED_ENTRIES);
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
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <feed xmlns=\"http://www.w3.org/2005/Atom\" xml:base=\"{}/\">\
         <id>{}</id><title>{}</title><updated>{}</updated>\
         <link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>\
         <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\
         <generator>Kolokol</generator>",
        xml(&base),
        id,
        xml(&title),
        rfc3339(updated),
        self_path,
        publisher
            .as_ref()
            .map_or(String::new(), |p| format!("p/{}", p.name))
    );
    if let Some(p) = &publisher {
        let _ = write!(out, "<author><name>{}</name></author>", xml(p.shown_name()));
    }
    for item in items {
        if let Some(p) = trusted.by_key(&item.publisher) {
            entry(&mut out, &state, item, p);
        }
    }
    out.push_str("</feed>\n");
    atom(out)
}

/// `GET /feed.atom`: the newest stories of every trusted publisher.
pub(crate) async fn all_feed(State(state): State<GatewayState>, headers: HeaderMap) -> Response {
    feed(state, headers, None).await
}

/// `GET /p/{name}/feed.atom`: the newest stories of one publisher.
pub(crate) async fn publisher_feed(
    State(state): State<GatewayState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(p) = state.trusted().by_name(&name).cloned() else {
        return error_page(StatusCode::NOT_FOUND, "No trusted publisher has that name.");
    };
    feed(state, headers, Some(p)).await
}
