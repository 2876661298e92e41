//! The HTML pages: home, a publisher's stories, a story with its
//! verification panel, search, media and the stylesheet.

use std::fmt::Write;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::catalog::{Filter, Item};
use super::html::{Page, ago, date, dir_of, display_url, esc, lang_attr, layout, url_param};
use super::story::{StoryError, StoryView};
use super::{GatewayState, Trusted, now};
use crate::proto::{BundleId, Kind};

/// Stories on one page of a list.
pub(crate) const PAGE_SIZE: usize = 20;
/// The highest page number accepted.
pub(crate) const MAX_PAGE: usize = 100_000;
/// The longest search query, in characters.
pub(crate) const MAX_QUERY_CHARS: usize = 200;

const STYLE: &str = include_str!("style.css");
/// The bell, the project's emblem, as the pages' icon.
const ICON: &[u8] = include_bytes!("../demo/stories/bell.png");

/// Query parameters of lists and search, all optional. Numbers arrive as
/// text so that a bad one gets a clear 400 rather than a generic rejection.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    pub(crate) lang: Option<String>,
    pub(crate) section: Option<String>,
    pub(crate) page: Option<String>,
    pub(crate) per_page: Option<String>,
    pub(crate) q: Option<String>,
    pub(crate) publisher: Option<String>,
}

/// Checked list parameters.
pub(crate) struct ListParams {
    pub(crate) lang: Option<String>,
    pub(crate) section: Option<String>,
    pub(crate) page: usize,
    pub(crate) per_page: usize,
    pub(crate) q: Option<String>,
    pub(crate) publisher: Option<String>,
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl ListQuery {
    /// Checks every parameter against its limit; the message says which
    /// one is wrong.
    pub(crate) fn check(self, max_per_page: usize) -> Result<ListParams, String> {
        let number = |name: &str, v: Option<String>, default: usize, max: usize| match v {
            None => Ok(default),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(format!("{name} must be a number from 1 to {max}")),
            },
        };
        let page = number("page", self.page, 1, MAX_PAGE)?;
        let per_page = number("per_page", self.per_page, PAGE_SIZE, max_per_page)?;
        let lang = nonempty(self.lang);
        if lang.as_deref().is_some_and(|l| {
            l.len() > 35 || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }) {
            return Err("lang must be a language tag such as en or pt-BR".into());
        }
        let section = nonempty(self.section);
        if section.as_deref().is_some_and(|s| s.len() > 128) {
            return Err("section is longer than 128 bytes".into());
        }
        let q = nonempty(self.q);
        if q.as_deref()
            .is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS)
        {
            return Err(format!(
                "the search text is longer than {MAX_QUERY_CHARS} characters"
            ));
        }
        let publisher = nonempty(self.publisher);
        if publisher.as_deref().is_some_and(|p| p.len() > 64) {
            return Err("publisher is longer than 64 bytes".into());
        }
        Ok(ListParams {
            lang,
            section,
            page,
            per_page,
            q,
            publisher,
        })
    }
}

/// An HTML error page.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let content = format!(
        "<h1>{}</h1><p>{}</p><p><a href=\"/\">Home</a></p>",
        esc(title),
        esc(message)
    );
    (
        status,
        Html(layout(
            &Page {
                title,
                feed: None,
                query: "",
            },
            &content,
        )),
    )
        .into_response()
}

/// Any path the gateway does not serve.
pub(crate) async fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, "There is nothing at this address.")
}

fn html_page(page: &Page<'_>, content: &str) -> Response {
    Html(layout(page, content)).into_response()
}

/// The stylesheet: the only one pages use, served by the node itself.
pub(crate) async fn style(headers: HeaderMap) -> Response {
    static ETAG: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("\"{}\"", &blake3::hash(STYLE.as_bytes()).to_hex()[..16])
    });
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    if let Some(not_modified) = etag(&mut h, &headers, &ETAG) {
        return not_modified;
    }
    (h, STYLE).into_response()
}

/// The pages' icon, also at `/favicon.ico` where browsers look for it
/// unasked.
pub(crate) async fn icon() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        ICON,
    )
        .into_response()
}

/// One story in a list.
fn list_item(out: &mut String, item: &Item, trusted: &Trusted, show_publisher: bool) {
    let lang = lang_attr(&item.language);
    let _ = write!(
        out,
        "<li class=\"item\"><article lang=\"{lang}\" dir=\"{}\"><h3><a href=\"/story/{}\">{}</a></h3>",
        dir_of(lang),
        item.id,
        esc(&item.title)
    );
    out.push_str("<p class=\"meta\" dir=\"ltr\" lang=\"en\">");
    match item.kind {
        Kind::Retraction => out.push_str("<span class=\"badge retracted\">Retracted</span> "),
        Kind::Correction => out.push_str("<span class=\"badge corrected\">Corrected</span> "),
        Kind::Story => {}
    }
    if show_publisher && let Some(p) = trusted.by_key(&item.publisher) {
        let _ = write!(
            out,
            "<a href=\"/p/{}\">{}</a> · ",
            esc(&p.name),
            esc(p.shown_name())
        );
    }
    if let Some(s) = &item.section {
        let _ = write!(out, "{} · ", esc(s));
    }
    let _ = write!(
        out,
        "<time dir=\"ltr\" datetime=\"{}\">{}</time> · {}</p>",
        super::html::rfc3339(item.published),
        date(item.published),
        esc(lang)
    );
    if let Some(s) = &item.summary {
        let _ = write!(out, "<p class=\"summary\">{}</p>", esc(s));
    }
    out.push_str("</article></li>");
}

/// Links to other pages of a list; `base` already carries the other
/// parameters and ends in `?` or `&`.
fn pager(out: &mut String, base: &str, page: usize, per_page: usize, total: usize) {
    let pages = total.div_ceil(per_page).max(1);
    if pages <= 1 {
        return;
    }
    out.push_str("<nav class=\"pager\" aria-label=\"Pages\">");
    if page > 1 {
        let _ = write!(
            out,
            "<a rel=\"prev\" href=\"{}page={}\">← Newer</a> ",
            esc(base),
            page - 1
        );
    }
    let _ = write!(out, "<span>Page {page} of {pages}</span>");
    if page < pages {
        let _ = write!(
            out,
            " <a rel=\"next\" href=\"{}page={}\">Older →</a>",
            esc(base),
            page + 1
        );
    }
    out.push_str("</nav>");
}

/// The home page: trusted publishers with freshness and holdings, then
/// the newest stories.
pub(crate) async fn home(State(state): State<GatewayState>) -> Response {
    let catalog = match state.catalog().await {
        Ok(c) => c,
        Err(s) => return error_page(s, "The store could not be read."),
    };
    let trusted = state.trusted();
    let now = now();
    let mut out = String::with_capacity(16 * 1024);
    out.push_str("<h1>Your newsrooms</h1>");
    if trusted.list.is_empty() {
        out.push_str(
            "<p>You trust no publisher yet. Add one with <code>kolokol trust add FILE</code>.</p>",
        );
    }
    out.push_str("<ul class=\"publishers\">");
    for p in trusted.list.iter() {
        let info = catalog.publisher(&p.root_key).cloned().unwrap_or_default();
        let _ = write!(
            out,
            "<li class=\"publisher\"><h2><a href=\"/p/{}\" dir=\"auto\">{}</a></h2>",
            esc(&p.name),
            esc(p.shown_name())
        );
        if p.is_demo() {
            out.push_str(
                "<p class=\"warning\">Demo newsroom: its secret key is public. \
                 Nothing it signs is real news.</p>",
            );
        }
        match &info.head {
            Some(h) => {
                let _ = write!(
                    out,
                    "<p class=\"fresh\">Last heard from <time dir=\"ltr\" datetime=\"{}\">{} ago</time> \
                     (sequence {}).</p>",
                    super::html::rfc3339(h.issued_at),
                    ago(now.since(h.issued_at)),
                    h.sequence
                );
                if h.is_expired(now) {
                    let _ = write!(
                        out,
                        "<p class=\"warning expired\" role=\"alert\">Warning: the newest word \
                         from this newsroom expired {} ago. Someone may be keeping its new \
                         stories from reaching you.</p>",
                        ago(now.since(h.expires_at))
                    );
                }
            }
            None => out.push_str("<p class=\"fresh\">Not heard from yet.</p>"),
        }
        let _ = write!(
            out,
            "<p class=\"counts\">{} stories held ({} bundles); {} missing.</p>\
             <p><a href=\"/p/{}/feed.atom\">Atom feed</a></p></li>",
            info.stories,
            info.bundles,
            info.missing_count(),
            esc(&p.name)
        );
    }
    out.push_str("</ul><h2>Latest stories</h2>");
    let filter = Filter::default();
    let (total, items) = catalog.page(&filter, 1, PAGE_SIZE);
    if total == 0 {
        out.push_str("<p>No stories yet.</p>");
    }
    out.push_str("<ol class=\"stories\">");
    for i in items {
        list_item(&mut out, i, &trusted, true);
    }
    out.push_str("</ol>");
    html_page(
        &Page {
            title: "Home",
            feed: None,
            query: "",
        },
        &out,
    )
}

fn facets(
    out: &mut String,
    name: &str,
    label: &str,
    param: &str,
    values: &std::collections::BTreeMap<String, usize>,
    current: Option<&str>,
) {
    if values.len() < 2 && current.is_none() {
        return;
    }
    let _ = write!(
        out,
        "<p class=\"facets\">{label}: <a href=\"/p/{}\">all</a>",
        esc(name)
    );
    for (v, n) in values {
        let here = current == Some(v.as_str());
        let _ = write!(
            out,
            " · <a href=\"/p/{}?{param}={}\"{} dir=\"auto\">{}</a> ({n})",
            esc(name),
            url_param(v),
            if here { " aria-current=\"page\"" } else { "" },
            esc(v)
        );
    }
    out.push_str("</p>");
}

/// A publisher's stories, newest first, by language and section.
pub(crate) async fn publisher(
    State(state): State<GatewayState>,
    Path(name): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let params = match query
        .map_err(|e| e.body_text())
        .and_then(|Query(q)| q.check(PAGE_SIZE))
    {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let trusted = state.trusted();
    let Some(p) = trusted.by_name(&name).cloned() else {
        return error_page(StatusCode::NOT_FOUND, "No trusted publisher has that name.");
    };
    let catalog = match state.catalog().await {
        Ok(c) => c,
        Err(s) => return error_page(s, "The store could not be read."),
    };
    let info = catalog.publisher(&p.root_key).cloned().unwrap_or_default();
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(out, "<h1 dir=\"auto\">{}</h1>", esc(p.shown_name()));
    if let Some(h) = &p.homepage {
        let _ = write!(
            out,
            "<p class=\"meta\">Own site (may be blocked where you are): {}</p>",
            esc(display_url(h))
        );
    }
    facets(
        &mut out,
        &p.name,
        "Languages",
        "lang",
        &info.languages,
        params.lang.as_deref(),
    );
    facets(
        &mut out,
        &p.name,
        "Sections",
        "section",
        &info.sections,
        params.section.as_deref(),
    );
    let filter = Filter {
        publisher: Some(p.root_key),
        language: params.lang.as_deref(),
        section: params.section.as_deref(),
        query: None,
    };
    let (total, items) = catalog.page(&filter, params.page, PAGE_SIZE);
    let _ = write!(
        out,
        "<p class=\"meta\">{total} stories.</p><ol class=\"stories\">"
    );
    for i in &items {
        list_item(&mut out, i, &trusted, false);
    }
    out.push_str("</ol>");
    let mut base = format!("/p/{}?", p.name);
    if let Some(l) = &params.lang {
        let _ = write!(base, "lang={}&", url_param(l));
    }
    if let Some(s) = &params.section {
        let _ = write!(base, "section={}&", url_param(s));
    }
    pager(&mut out, &base, params.page, PAGE_SIZE, total);
    let feed = format!("/p/{}/feed.atom", p.name);
    let _ = write!(out, "<p><a href=\"{}\">Atom feed</a></p>", esc(&feed));
    html_page(
        &Page {
            title: p.shown_name(),
            feed: Some(&feed),
            query: "",
        },
        &out,
    )
}

/// Search over the titles and summaries of the newest versions.
pub(crate) async fn search(
    State(state): State<GatewayState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let params = match query
        .map_err(|e| e.body_text())
        .and_then(|Query(q)| q.check(PAGE_SIZE))
    {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let q = params.q.clone().unwrap_or_default();
    let mut out = String::with_capacity(8 * 1024);
    out.push_str("<h1>Search</h1>");
    if q.is_empty() {
        out.push_str("<p>Type words to find in the titles and summaries of stories.</p>");
    } else {
        let catalog = match state.catalog().await {
            Ok(c) => c,
            Err(s) => return error_page(s, "The store could not be read."),
        };
        let trusted = state.trusted();
        let filter = Filter {
            query: Some(&q),
            language: params.lang.as_deref(),
            ..Default::default()
        };
        let (total, items) = catalog.page(&filter, params.page, PAGE_SIZE);
        let _ = write!(
            out,
            "<p class=\"meta\">{total} stories match <q dir=\"auto\">{}</q>.</p><ol class=\"stories\">",
            esc(&q)
        );
        for i in &items {
            list_item(&mut out, i, &trusted, true);
        }
        out.push_str("</ol>");
        let base = format!("/search?q={}&", url_param(&q));
        pager(&mut out, &base, params.page, PAGE_SIZE, total);
    }
    html_page(
        &Page {
            title: "Search",
            feed: None,
            query: &q,
        },
        &out,
    )
}

fn kind_label(k: Kind) -> &'static str {
    match k {
        Kind::Story => "story",
        Kind::Correction => "correction",
        Kind::Retraction => "retraction",
    }
}

/// The verification panel: who signed what, when, with which key.
fn verification(out: &mut String, v: &StoryView) {
    let shown = v.shown();
    let m = &shown.manifest;
    out.push_str(
        "<aside class=\"verify\" aria-labelledby=\"verify-h\" lang=\"en\" dir=\"ltr\">\
         <h2 id=\"verify-h\">Verification</h2>\
         <p class=\"ok\">Verified: the signature, the signing key's certificate and every \
         file's hash were checked before this node stored the story.</p><dl>",
    );
    let _ = write!(
        out,
        "<dt>Publisher</dt><dd><a href=\"/p/{}\" dir=\"auto\">{}</a> ({})</dd>",
        esc(&v.publisher.name),
        esc(v.publisher.shown_name()),
        esc(&v.publisher.name)
    );
    if v.publisher.is_demo() {
        out.push_str(
            "<dd class=\"warning\">Demo newsroom: its secret key is public, so anyone \
             can sign as it.</dd>",
        );
    }
    let _ = write!(
        out,
        "<dt>Publisher's root key</dt><dd><code>{}</code></dd>",
        m.publisher
    );
    match &v.certificate {
        Some(c) => {
            let _ = write!(
                out,
                "<dt>Signing key</dt><dd><code>{}</code></dd>\
                 <dt>Key certificate</dt><dd>serial {}, valid from \
                 <time dir=\"ltr\" datetime=\"{}\">{}</time> to <time dir=\"ltr\" datetime=\"{}\">{}</time></dd>",
                c.signing_key,
                c.serial,
                super::html::rfc3339(c.not_before),
                date(c.not_before),
                super::html::rfc3339(c.not_after),
                date(c.not_after)
            );
        }
        None => {
            let _ = write!(
                out,
                "<dt>Key certificate</dt><dd><code>{}</code></dd>",
                m.certificate
            );
        }
    }
    let _ = write!(
        out,
        "<dt>Signed</dt><dd><time dir=\"ltr\" datetime=\"{}\">{}</time></dd>\
         <dt>Bundle id</dt><dd><code class=\"id\">{}</code></dd>\
         <dt>Sequence</dt><dd>{}</dd><dt>Version</dt><dd>{} ({})</dd>",
        super::html::rfc3339(m.signed_at),
        date(m.signed_at),
        shown.id,
        m.sequence,
        m.version,
        kind_label(m.kind)
    );
    if let Some(u) = &m.metadata.original_url {
        let _ = write!(
            out,
            "<dt>Original address</dt><dd class=\"url\">{}</dd>",
            esc(display_url(u))
        );
    }
    out.push_str("</dl><h3>Versions</h3><ol class=\"versions\">");
    for h in &v.history {
        let hm = &h.manifest;
        let _ = write!(
            out,
            "<li><a href=\"/story/{}\">Version {}</a> · {} · signed <time dir=\"ltr\" datetime=\"{}\">{}</time>",
            h.id,
            hm.version,
            kind_label(hm.kind),
            super::html::rfc3339(hm.signed_at),
            date(hm.signed_at)
        );
        if h.id == v.asked.id {
            out.push_str(" · <strong>the version you opened</strong>");
        }
        out.push_str("</li>");
    }
    out.push_str("</ol></aside>");
}

/// A story version with its verification panel.
pub(crate) async fn story(State(state): State<GatewayState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<BundleId>() else {
        return error_page(
            StatusCode::NOT_FOUND,
            "That is not a bundle id (64 hexadecimal digits).",
        );
    };
    let v = match state.story_view(&id) {
        Ok(v) => v,
        Err(StoryError::NotFound) => {
            return error_page(
                StatusCode::NOT_FOUND,
                "This node holds no story with that id from a publisher you trust.",
            );
        }
        Err(StoryError::Store(e)) => {
            tracing::warn!("gateway: {e}");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The store could not be read.",
            );
        }
    };
    let html = render_story(&v);
    let title = v.shown().manifest.metadata.title.clone();
    html_page(
        &Page {
            title: &title,
            feed: Some(&format!("/p/{}/feed.atom", v.publisher.name)),
            query: "",
        },
        &html,
    )
}

fn render_story(v: &StoryView) -> String {
    let shown = v.shown();
    let m = &shown.manifest;
    let meta = &m.metadata;
    let lang = lang_attr(&meta.language);
    let mut out = String::with_capacity(v.body.len() + 8 * 1024);
    let _ = write!(
        out,
        "<article class=\"story\" lang=\"{lang}\" dir=\"{}\">",
        dir_of(lang)
    );
    let newest = v.newest();
    if let Some(r) = v.retraction() {
        let _ = write!(
            out,
            "<div class=\"banner retracted\" role=\"alert\" lang=\"en\" dir=\"ltr\">\
             <strong>Retracted.</strong> The newsroom withdrew this story on \
             <time dir=\"ltr\" datetime=\"{}\">{}</time>. Its notice is shown instead of the story.</div>",
            super::html::rfc3339(r.manifest.signed_at),
            date(r.manifest.signed_at)
        );
    } else if newest.id != v.asked.id {
        let _ = write!(
            out,
            "<div class=\"banner\" lang=\"en\" dir=\"ltr\">You are reading version {} of this \
             story. <a href=\"/story/{}\">Read the current version ({}, {})</a>.</div>",
            v.asked.manifest.version,
            newest.id,
            newest.manifest.version,
            kind_label(newest.manifest.kind)
        );
    }
    if m.kind == Kind::Correction {
        let prev = m
            .supersedes
            .map(|p| format!(" <a href=\"/story/{p}\">See the version it corrects</a>."))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<div class=\"banner corrected\" lang=\"en\" dir=\"ltr\"><strong>Corrected</strong> \
             on <time dir=\"ltr\" datetime=\"{}\">{}</time>.{prev}</div>",
            super::html::rfc3339(m.signed_at),
            date(m.signed_at)
        );
    }
    let _ = write!(out, "<h1>{}</h1><p class=\"meta\">", esc(&meta.title));
    if !meta.authors.is_empty() {
        let authors: Vec<_> = meta.authors.iter().map(|a| esc(a).into_owned()).collect();
        let _ = write!(out, "<span>{}</span> · ", authors.join(", "));
    }
    if let Some(s) = &meta.section {
        let _ = write!(out, "<span>{}</span> · ", esc(s));
    }
    let _ = write!(
        out,
        "<time dir=\"ltr\" datetime=\"{}\">{}</time>",
        super::html::rfc3339(meta.published),
        date(meta.published)
    );
    if let Some(u) = meta.updated {
        let _ = write!(
            out,
            " · updated <time dir=\"ltr\" datetime=\"{}\">{}</time>",
            super::html::rfc3339(u),
            date(u)
        );
    }
    out.push_str("</p>");
    if v.retraction().is_some() {
        out.push_str("<div class=\"body notice\">");
    } else {
        out.push_str("<div class=\"body\">");
    }
    out.push_str(without_leading_h1(&v.body));
    out.push_str("</div></article>");
    verification(&mut out, v);
    out
}

/// The body without its first heading when it opens with one: articles
/// usually repeat their headline there, and the page shows it already.
fn without_leading_h1(body: &str) -> &str {
    let trimmed = body.trim_start();
    if trimmed.starts_with("<h1>")
        && let Some(end) = trimmed.find("</h1>")
    {
        return &trimmed[end + "</h1>".len()..];
    }
    body
}

/// Media types served for display in the page; anything else is offered
/// as a download only.
const INLINE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "audio/mpeg",
    "audio/ogg",
    "video/mp4",
    "video/webm",
];

/// A media file of a bundle, with its type from the signed manifest and
/// cached for good: its URL names its bundle, and bundles never change.
pub(crate) async fn media(
    State(state): State<GatewayState>,
    Path((id, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let not_found = || error_page(StatusCode::NOT_FOUND, "No such media file.");
    let Ok(id) = id.parse::<BundleId>() else {
        return not_found();
    };
    let stored = match state.store().manifest(&id) {
        Ok(Some(m)) => m,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::warn!("gateway: {e}");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The store could not be read.",
            );
        }
    };
    if state.trusted().by_key(&stored.manifest.publisher).is_none() {
        return not_found();
    }
    // The body (entry 0) is shown only sanitized, in its page.
    let Some(entry) = stored
        .manifest
        .entries
        .iter()
        .skip(1)
        .find(|e| e.path == path)
    else {
        return not_found();
    };
    let tag = format!("\"{}\"", entry.hash);
    let mut h = HeaderMap::new();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if let Some(not_modified) = etag(&mut h, &headers, &tag) {
        return not_modified;
    }
    let media_type = entry.media_type.to_ascii_lowercase();
    let inline = INLINE_TYPES.contains(&media_type.as_str());
    let content_type = if inline {
        HeaderValue::from_str(&media_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream"))
    } else {
        HeaderValue::from_static("application/octet-stream")
    };
    h.insert(header::CONTENT_TYPE, content_type);
    if !inline {
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
    // Opened on its own, a media file runs nothing.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    let hash = entry.hash;
    let store_state = state.clone();
    let bytes = match tokio::task::spawn_blocking(move || store_state.store().blob(&hash)).await {
        Ok(Ok(Some(b))) => b,
        Ok(Ok(None)) => return not_found(),
        Ok(Err(e)) => {
            tracing::warn!("gateway: {e}");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The store could not be read.",
            );
        }
        Err(_) => {
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The store could not be read.",
            );
        }
    };
    (h, bytes).into_response()
}

/// Sets `tag` as the response's ETag; the 304 answer when the request
/// already has it.
fn etag(h: &mut HeaderMap, request: &HeaderMap, tag: &str) -> Option<Response> {
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == tag.as_bytes())
        .then(|| (StatusCode::NOT_MODIFIED, h.clone()).into_response())
}
