//! Lists of stories: the home page with the trusted publishers, and one
//! publisher's stories by language and section. The pieces of a list (an
//! item, the pager) serve search too.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::layout::{Page, error_page, html_page, time};
use super::query::{ListParams, ListQuery, PAGE_SIZE};
use crate::gateway::catalog::{Filter, Item};
use crate::gateway::html::{ago, dir_of, display_url, lang_attr, rfc3339, url_param};
use crate::gateway::{GatewayState, Trusted, now};
use crate::proto::Kind;

/// The checked parameters of a page's query, or what is wrong with them.
pub(crate) fn page_params(
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<ListParams, String> {
    query
        .map_err(|e| e.body_text())
        .and_then(|Query(q)| q.check(PAGE_SIZE))
}

/// One story in a list.
pub(crate) fn list_item(item: &Item, trusted: &Trusted, show_publisher: bool) -> Markup {
    let lang = lang_attr(&item.language);
    let publisher = if show_publisher {
        trusted.by_key(&item.publisher)
    } else {
        None
    };
    html! {
        li class="item" {
            article lang=(lang) dir=(dir_of(lang)) {
                h3 { a href={ "/story/" (item.id.to_string()) } { (item.title) } }
                p class="meta" dir="ltr" lang="en" {
                    @match item.kind {
                        Kind::Retraction => { span class="badge retracted" { "Retracted" } " " }
                        Kind::Correction => { span class="badge corrected" { "Corrected" } " " }
                        Kind::Story => {}
                    }
                    @if let Some(p) = publisher {
                        a href={ "/p/" (p.name) } { (p.shown_name()) } " · "
                    }
                    @if let Some(s) = &item.section {
                        (s) " · "
                    }
                    (time(item.published)) " · " (lang)
                }
                @if let Some(s) = &item.summary {
                    p class="summary" { (s) }
                }
            }
        }
    }
}

/// Links to other pages of a list; `base` already carries the other
/// parameters and ends in `?` or `&`.
pub(crate) fn pager(base: &str, page: usize, per_page: usize, total: usize) -> Markup {
    let pages = total.div_ceil(per_page).max(1);
    html! {
        @if pages > 1 {
            nav class="pager" aria-label="Pages" {
                @if page > 1 {
                    a rel="prev" href={ (base) "page=" (page - 1) } { "← Newer" } " "
                }
                span { "Page " (page) " of " (pages) }
                @if page < pages {
                    " " a rel="next" href={ (base) "page=" (page + 1) } { "Older →" }
                }
            }
        }
    }
}

/// The home page: trusted publishers with freshness and holdings, then
/// the newest stories.
pub(crate) async fn home(State(state): State<GatewayState>) -> Response {
    let catalog = state.catalog();
    let trusted = state.trusted();
    let now = now();
    let listed = catalog
        .page(&Filter::default(), 1, PAGE_SIZE)
        .and_then(|page| {
            let infos = trusted
                .list
                .iter()
                .map(|p| catalog.publisher(&p.root_key))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((page, infos))
        });
    let ((total, items), infos) = match listed {
        Ok(l) => l,
        Err(s) => return error_page(s, "The store could not be read."),
    };
    let content = html! {
        h1 { "Your newsrooms" }
        @if trusted.list.is_empty() {
            p { "You trust no publisher yet. Add one with " code { "kolokol trust add FILE" } "." }
        }
        p class="add" { a href="/add" { "Add a newsroom" } }
        ul class="publishers" {
            @for (p, info) in trusted.list.iter().zip(&infos) {
                li class="publisher" {
                    h2 { a href={ "/p/" (p.name) } dir="auto" { (p.shown_name()) } }
                    @if p.is_demo() {
                        p class="warning" {
                            "Demo newsroom: its secret key is public. Nothing it signs is real news."
                        }
                    }
                    @match &info.head {
                        Some(h) => {
                            p class="fresh" {
                                "Last heard from "
                                time dir="ltr" datetime=(rfc3339(h.issued_at)) {
                                    (ago(now.since(h.issued_at))) " ago"
                                }
                                " (sequence " (h.sequence) ")."
                            }
                            @if h.is_expired(now) {
                                p class="warning expired" role="alert" {
                                    "Warning: the newest word from this newsroom expired "
                                    (ago(now.since(h.expires_at)))
                                    " ago. Someone may be keeping its new stories from reaching you."
                                }
                            }
                        }
                        None => { p class="fresh" { "Not heard from yet." } }
                    }
                    p class="counts" {
                        (info.stories) " stories held (" (info.bundles) " bundles); "
                        (info.missing_count()) " missing."
                    }
                    p { a href={ "/p/" (p.name) "/feed.atom" } { "Atom feed" } }
                }
            }
        }
        h2 { "Latest stories" }
        @if total == 0 {
            p { "No stories yet." }
        }
        ol class="stories" {
            @for i in &items {
                (list_item(i, &trusted, true))
            }
        }
    };
    html_page(&Page::titled("Home"), content)
}

/// Links that narrow a publisher's list to one value of `param`, with
/// how many stories have it; shown when there is a choice to make.
fn facets(
    name: &str,
    label: &str,
    param: &str,
    values: &BTreeMap<String, usize>,
    current: Option<&str>,
) -> Markup {
    html! {
        @if values.len() >= 2 || current.is_some() {
            p class="facets" {
                (label) ": " a href={ "/p/" (name) } { "all" }
                @for (v, n) in values {
                    " · "
                    a href={ "/p/" (name) "?" (param) "=" (url_param(v)) }
                        aria-current=[(current == Some(v.as_str())).then_some("page")]
                        dir="auto" { (v) }
                    " (" (n) ")"
                }
            }
        }
    }
}

/// A publisher's stories, newest first, by language and section.
pub(crate) async fn publisher(
    State(state): State<GatewayState>,
    Path(name): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let params = match page_params(query) {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let trusted = state.trusted();
    let Some(p) = trusted.by_name(&name).cloned() else {
        return error_page(StatusCode::NOT_FOUND, "No trusted publisher has that name.");
    };
    let catalog = state.catalog();
    let filter = Filter {
        publisher: Some(p.root_key),
        language: params.lang.clone(),
        section: params.section.clone(),
        query: None,
    };
    let listed = catalog
        .publisher(&p.root_key)
        .and_then(|info| Ok((info, catalog.page(&filter, params.page, PAGE_SIZE)?)));
    let (info, (total, items)) = match listed {
        Ok(l) => l,
        Err(s) => return error_page(s, "The store could not be read."),
    };
    let mut base = format!("/p/{}?", p.name);
    if let Some(l) = &params.lang {
        base.push_str(&format!("lang={}&", url_param(l)));
    }
    if let Some(s) = &params.section {
        base.push_str(&format!("section={}&", url_param(s)));
    }
    let feed = format!("/p/{}/feed.atom", p.name);
    let content = html! {
        h1 dir="auto" { (p.shown_name()) }
        @if let Some(h) = &p.homepage {
            p class="meta" { "Own site (may be blocked where you are): " (display_url(h)) }
        }
        (facets(&p.name, "Languages", "lang", &info.languages, params.lang.as_deref()))
        (facets(&p.name, "Sections", "section", &info.sections, params.section.as_deref()))
        p class="meta" { (total) " stories." }
        ol class="stories" {
            @for i in &items {
                (list_item(i, &trusted, false))
            }
        }
        (pager(&base, params.page, PAGE_SIZE, total))
        p { a href=(feed) { "Atom feed" } }
    };
    html_page(
        &Page {
            title: p.shown_name(),
            feed: Some(&feed),
            query: "",
        },
        content,
    )
}
