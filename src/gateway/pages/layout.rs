//! The chrome every HTML page shares (head, search box, footer), error
//! pages, and the small pieces many pages repeat.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::gateway::html::{date, rfc3339};
use crate::proto::{Kind, Timestamp};

/// What the shared layout needs besides the content.
pub(crate) struct Page<'a> {
    /// The `<title>`.
    pub(crate) title: &'a str,
    /// A feed to advertise in `<head>`, as a path on this node.
    pub(crate) feed: Option<&'a str>,
    /// The search box's current text.
    pub(crate) query: &'a str,
}

impl<'a> Page<'a> {
    /// A page with the default feed and an empty search box.
    pub(crate) fn titled(title: &'a str) -> Self {
        Self {
            title,
            feed: None,
            query: "",
        }
    }
}

/// Wraps `content` in the page layout shared by every HTML page. The page
/// chrome is English and left-to-right; each story carries its own `lang`
/// and `dir`.
pub(crate) fn layout(page: &Page<'_>, content: Markup) -> Markup {
    layout_with(page, content, "no-referrer")
}

/// The layout with the referrer policy `referrer`.
fn layout_with(page: &Page<'_>, content: Markup, referrer: &str) -> Markup {
    html! {
        (DOCTYPE) "\n"
        html lang="en" dir="ltr" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content=(referrer);
                title { (page.title) " · Kolokol" }
                link rel="stylesheet" href="/static/style.css";
                link rel="icon" type="image/png" href="/static/icon.png";
                link rel="alternate" type="application/atom+xml" title="Atom feed"
                    href=(page.feed.unwrap_or("/feed.atom"));
            }
            body {
                header class="top" {
                    a class="brand" href="/" { "Kolokol" }
                    form class="search" action="/search" method="get" role="search" {
                        input type="search" name="q" aria-label="Search titles and summaries"
                            placeholder="Search" dir="auto" maxlength="200" value=(page.query);
                        button type="submit" { "Search" }
                    }
                }
                main { (content) }
                footer {
                    p {
                        "Served by your own Kolokol node. Every story here was checked \
                         against its newsroom's key before it was stored. "
                        a href="/safety" { "Safety" }
                        " · "
                        a href="/feed.atom" { "Atom feed" }
                        " · "
                        a href="/api/v1/status" { "API" }
                    }
                }
            }
        }
    }
}

/// A page's response: `content` in the layout.
pub(crate) fn html_page(page: &Page<'_>, content: Markup) -> Response {
    Html(layout(page, content).into_string()).into_response()
}

/// A page whose forms post back to the gateway: its referrer policy is
/// `same-origin`, so that the browser sends the page's origin with them
/// (with `no-referrer` it sends `null`), which the gateway checks.
pub(crate) fn form_page(status: StatusCode, page: &Page<'_>, content: Markup) -> Response {
    let mut resp = (
        status,
        Html(layout_with(page, content, "same-origin").into_string()),
    )
        .into_response();
    resp.headers_mut().insert(
        axum::http::header::REFERRER_POLICY,
        axum::http::HeaderValue::from_static("same-origin"),
    );
    resp
}

/// An HTML error page.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let content = html! {
        h1 { (title) }
        p { (message) }
        p { a href="/" { "Home" } }
    };
    (
        status,
        Html(layout(&Page::titled(title), content).into_string()),
    )
        .into_response()
}

/// Any path the gateway does not serve.
pub(crate) async fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, "There is nothing at this address.")
}

/// A moment, machine-readable in `datetime` and as a date for readers.
pub(crate) fn time(t: Timestamp) -> Markup {
    html! { time dir="ltr" datetime=(rfc3339(t)) { (date(t)) } }
}

/// How a kind of bundle is named on the pages.
pub(crate) fn kind_label(k: Kind) -> &'static str {
    match k {
        Kind::Story => "story",
        Kind::Correction => "correction",
        Kind::Retraction => "retraction",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_in_the_layout_is_escaped() {
        let page = Page {
            title: "<b>&\"",
            feed: Some("/p/x\"onload=\"y/feed.atom"),
            query: "\"><script>",
        };
        let out = layout(&page, html! { p { "<i>" } }).into_string();
        assert!(
            out.contains("<title>&lt;b&gt;&amp;&quot; · Kolokol</title>"),
            "{out}"
        );
        assert!(
            out.contains("href=\"/p/x&quot;onload=&quot;y/feed.atom\""),
            "{out}"
        );
        assert!(out.contains("value=\"&quot;&gt;&lt;script&gt;\""), "{out}");
        assert!(out.contains("<p>&lt;i&gt;</p>"), "{out}");
        assert!(
            out.contains("Every story here was checked against its newsroom's key before"),
            "{out}"
        );
        assert!(
            out.starts_with("<!DOCTYPE html>\n<html lang=\"en\" dir=\"ltr\">"),
            "{out}"
        );
    }
}
