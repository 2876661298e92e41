//! Lists of stories: the home page with the trusted publishers, and one
//! publisher's stories by language and section. The pieces of a list (an
//! item, the pager) serve search too.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::layout::{Page, error_page, html_page, store_error, time};
use super::query::{ListParams, ListQuery, PAGE_SIZE};
use crate::gateway::catalog::{Filter, Item};
use crate::gateway::html::{dir_of, display_url, lang_attr, rfc3339, url_param};
use crate::gateway::locale::Locale;
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

/// The error page of a query [`page_params`] refused.
pub(crate) fn bad_query(loc: &Locale, detail: String) -> Response {
    // The detail names the parameter, in English as the API says it.
    let message = loc.t_args("error-bad-query", &[("detail", detail.into())]);
    error_page(loc, StatusCode::BAD_REQUEST, &message)
}

/// One story in a list.
pub(crate) fn list_item(
    loc: &Locale,
    item: &Item,
    trusted: &Trusted,
    show_publisher: bool,
) -> Markup {
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
                p class="meta" dir=(loc.dir()) lang=(loc.tag()) {
                    @match item.kind {
                        Kind::Retraction => {
                            span class="badge retracted" { (loc.t("badge-retracted")) } " "
                        }
                        Kind::Correction => {
                            span class="badge corrected" { (loc.t("badge-corrected")) } " "
                        }
                        Kind::Story => {}
                    }
                    @if let Some(p) = publisher {
                        a href={ "/p/" (p.name) } dir="auto" { (p.shown_name()) } " · "
                    }
                    @if let Some(s) = &item.section {
                        span lang=(lang) dir="auto" { (s) } " · "
                    }
                    (time(loc, item.published)) " · " span dir="ltr" { (lang) }
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
pub(crate) fn pager(
    loc: &Locale,
    base: &str,
    page: usize,
    per_page: usize,
    total: usize,
) -> Markup {
    let pages = total.div_ceil(per_page).max(1);
    html! {
        @if pages > 1 {
            nav class="pager" aria-label=(loc.t("pager-label")) {
                @if page > 1 {
                    a rel="prev" href={ (base) "page=" (page - 1) } { (loc.t("pager-newer")) } " "
                }
                span {
                    (loc.t_args("pager-position", &[("page", page.into()), ("pages", pages.into())]))
                }
                @if page < pages {
                    " " a rel="next" href={ (base) "page=" (page + 1) } { (loc.t("pager-older")) }
                }
            }
        }
    }
}

/// The home page: trusted publishers with freshness and holdings, then
/// the newest stories.
pub(crate) async fn home(State(state): State<GatewayState>, loc: Locale) -> Response {
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
        Err(s) => return store_error(&loc, s),
    };
    let content = html! {
        h1 { (loc.t("home-heading")) }
        @if trusted.list.is_empty() {
            p { (loc.t("home-no-publishers")) " " code dir="ltr" { "kolokol trust add FILE" } }
        }
        p class="add" { a href="/add" { (loc.t("add-link")) } }
        ul class="publishers" {
            @for (p, info) in trusted.list.iter().zip(&infos) {
                li class="publisher" {
                    h2 { a href={ "/p/" (p.name) } dir="auto" { (p.shown_name()) } }
                    @if p.is_demo() {
                        p class="warning" { (loc.t("home-demo-warning")) }
                    }
                    @match &info.head {
                        Some(h) => {
                            p class="fresh" {
                                (loc.markup(
                                    "home-last-heard",
                                    &[("sequence", h.sequence.into())],
                                    &[("ago", html! {
                                        time datetime=(rfc3339(h.issued_at)) {
                                            (loc.ago(now.since(h.issued_at)))
                                        }
                                    })],
                                ))
                            }
                            @if h.is_expired(now) {
                                p class="warning expired" role="alert" {
                                    (loc.t_args(
                                        "home-expired",
                                        &[("ago", loc.ago(now.since(h.expires_at)).into())],
                                    ))
                                }
                            }
                        }
                        None => { p class="fresh" { (loc.t("home-not-heard")) } }
                    }
                    p class="counts" {
                        (loc.t_args(
                            "home-held",
                            &[("stories", info.stories.into()), ("bundles", info.bundles.into())],
                        ))
                        " "
                        @match info.missing_count() {
                            0 => { (loc.t("home-missing-none")) }
                            n => {
                                span class="missing" {
                                    (loc.t_args("home-missing", &[("missing", n.into())]))
                                }
                            }
                        }
                    }
                    p { a href={ "/p/" (p.name) "/feed.atom" } { (loc.t("home-feed")) } }
                }
            }
        }
        h2 { (loc.t("home-latest")) }
        @if total == 0 {
            p { (loc.t("home-no-stories")) }
        }
        ol class="stories" {
            @for i in &items {
                (list_item(&loc, i, &trusted, true))
            }
        }
    };
    html_page(&loc, &Page::titled(&loc.t("home-title")), content)
}

/// Links that narrow a publisher's list to one value of `param`, with
/// how many stories have it; shown when there is a choice to make.
fn facets(
    loc: &Locale,
    name: &str,
    label: &str,
    param: &str,
    values: &BTreeMap<String, usize>,
    current: Option<&str>,
) -> Markup {
    html! {
        @if values.len() >= 2 || current.is_some() {
            p class="facets" {
                (label) ": " a href={ "/p/" (name) } { (loc.t("facet-all")) }
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
    loc: Locale,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let params = match page_params(query) {
        Ok(p) => p,
        Err(e) => return bad_query(&loc, e),
    };
    let trusted = state.trusted();
    let Some(p) = trusted.by_name(&name).cloned() else {
        return error_page(&loc, StatusCode::NOT_FOUND, &loc.t("error-no-publisher"));
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
        Err(s) => return store_error(&loc, s),
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
            p class="meta" {
                (loc.markup(
                    "publisher-own-site",
                    &[],
                    &[("address", html! { span dir="ltr" { (display_url(h)) } })],
                ))
            }
        }
        (facets(
            &loc,
            &p.name,
            &loc.t("facet-languages"),
            "lang",
            &info.languages,
            params.lang.as_deref(),
        ))
        (facets(
            &loc,
            &p.name,
            &loc.t("facet-sections"),
            "section",
            &info.sections,
            params.section.as_deref(),
        ))
        p class="meta" { (loc.count("publisher-count", total as u64)) }
        ol class="stories" {
            @for i in &items {
                (list_item(&loc, i, &trusted, false))
            }
        }
        (pager(&loc, &base, params.page, PAGE_SIZE, total))
        p { a href=(feed) { (loc.t("home-feed")) } }
    };
    html_page(
        &loc,
        &Page {
            title: p.shown_name(),
            feed: Some(&feed),
            query: "",
        },
        content,
    )
}
