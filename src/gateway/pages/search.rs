//! Search over the titles and summaries of the newest versions.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::layout::{Page, html_page, store_error};
use super::lists::{bad_query, list_item, page_params, pager};
use super::query::{ListQuery, PAGE_SIZE};
use crate::gateway::GatewayState;
use crate::gateway::catalog::{Filter, SEARCH_HITS};
use crate::gateway::html::url_param;
use crate::gateway::locale::Locale;

/// The search page: the form's answer, or what to type when empty.
pub(crate) async fn search(
    State(state): State<GatewayState>,
    loc: Locale,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let params = match page_params(query) {
        Ok(p) => p,
        Err(e) => return bad_query(&loc, e),
    };
    let q = params.q.clone().unwrap_or_default();
    let results = if q.is_empty() {
        None
    } else {
        let catalog = state.catalog();
        let trusted = state.trusted();
        let filter = Filter {
            query: Some(q.clone()),
            language: params.lang.clone(),
            ..Default::default()
        };
        let page = params.page;
        // A search reads many manifests: off the request threads.
        let found = tokio::task::spawn_blocking(move || catalog.page(&filter, page, PAGE_SIZE))
            .await
            .unwrap_or(Err(StatusCode::INTERNAL_SERVER_ERROR));
        let (total, items) = match found {
            Ok(f) => f,
            Err(s) => return store_error(&loc, s),
        };
        let base = format!("/search?q={}&", url_param(&q));
        Some(html! {
            p class="meta" {
                (loc.markup(
                    "search-found",
                    &[("count", total.into())],
                    &[("query", html! { q dir="auto" { (q) } })],
                ))
            }
            ol class="stories" {
                @for i in &items {
                    (list_item(&loc, i, &trusted, true))
                }
            }
            // Pages go only as deep as the index ranks.
            (pager(&loc, &base, params.page, PAGE_SIZE, total.min(SEARCH_HITS)))
        })
    };
    let title = loc.t("search-title");
    let content = html! {
        h1 { (title) }
        @match results {
            Some(r) => { (r) }
            None => { p { (loc.t("search-hint")) } }
        }
    };
    html_page(
        &loc,
        &Page {
            title: &title,
            feed: None,
            query: &q,
        },
        content,
    )
}
