//! The chrome every HTML page shares (head, search box, footer), error
//! pages, and the small pieces many pages repeat.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::gateway::html::rfc3339;
use crate::gateway::locale::Locale;
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

/// Wraps `content` in the page layout shared by every HTML page, in the
/// reader's language and its direction; each story carries its own
/// `lang` and `dir`.
pub(crate) fn layout(loc: &Locale, page: &Page<'_>, content: Markup) -> Markup {
    layout_with(loc, page, content, "no-referrer")
}

/// The layout with the referrer policy `referrer`.
fn layout_with(loc: &Locale, page: &Page<'_>, content: Markup, referrer: &str) -> Markup {
    html! {
        (DOCTYPE) "\n"
        html lang=(loc.tag()) dir=(loc.dir()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content=(referrer);
                title { (loc.t_args("page-title", &[("title", page.title.into())])) }
                link rel="stylesheet" href="/static/style.css";
                link rel="icon" type="image/png" href="/static/icon.png";
                link rel="alternate" type="application/atom+xml" title=(loc.t("footer-feed"))
                    href=(page.feed.unwrap_or("/feed.atom"));
            }
            body {
                header class="top" {
                    a class="brand" href="/" { "Kolokol" }
                    form class="search" action="/search" method="get" role="search" {
                        input type="search" name="q" aria-label=(loc.t("search-label"))
                            placeholder=(loc.t("search-placeholder")) dir="auto" maxlength="200"
                            value=(page.query);
                        button type="submit" { (loc.t("search-button")) }
                    }
                    (loc.switch())
                }
                main { (content) }
                footer {
                    p {
                        (loc.t("footer-served")) " "
                        a href="/safety" { (loc.t("footer-safety")) }
                        " · "
                        a href="/feed.atom" { (loc.t("footer-feed")) }
                        " · "
                        a href="/api/v1/status" { (loc.t("footer-api")) }
                    }
                }
            }
        }
    }
}

/// A page's response: `content` in the layout.
pub(crate) fn html_page(loc: &Locale, page: &Page<'_>, content: Markup) -> Response {
    Html(layout(loc, page, content).into_string()).into_response()
}

/// A page whose forms post back to the gateway: its referrer policy is
/// `same-origin`, so that the browser sends the page's origin with them
/// (with `no-referrer` it sends `null`), which the gateway checks.
pub(crate) fn form_page(
    loc: &Locale,
    status: StatusCode,
    page: &Page<'_>,
    content: Markup,
) -> Response {
    let mut resp = (
        status,
        Html(layout_with(loc, page, content, "same-origin").into_string()),
    )
        .into_response();
    resp.headers_mut().insert(
        axum::http::header::REFERRER_POLICY,
        axum::http::HeaderValue::from_static("same-origin"),
    );
    resp
}

/// An HTML error page; `message` is in the reader's language already.
pub(crate) fn error_page(loc: &Locale, status: StatusCode, message: &str) -> Response {
    let title = loc.t_args("error-title", &[("status", status.as_u16().into())]);
    let content = html! {
        h1 { (title) }
        p { (message) }
        p { a href="/" { (loc.t("error-home")) } }
    };
    (
        status,
        Html(layout(loc, &Page::titled(&title), content).into_string()),
    )
        .into_response()
}

/// The error page of a store that could not be read.
pub(crate) fn store_error(loc: &Locale, status: StatusCode) -> Response {
    error_page(loc, status, &loc.t("error-store"))
}

/// Any path the gateway does not serve.
pub(crate) async fn not_found(loc: Locale) -> Response {
    error_page(&loc, StatusCode::NOT_FOUND, &loc.t("error-not-found"))
}

/// A moment, machine-readable in `datetime` and as a date for readers.
/// The date is in the page's language, and so in its direction.
pub(crate) fn time(loc: &Locale, t: Timestamp) -> Markup {
    html! { time lang=(loc.tag()) dir=(loc.dir()) datetime=(rfc3339(t)) { (loc.date(t)) } }
}

/// How a kind of bundle is named on the pages.
pub(crate) fn kind_label(loc: &Locale, k: Kind) -> String {
    loc.t(match k {
        Kind::Story => "kind-story",
        Kind::Correction => "kind-correction",
        Kind::Retraction => "kind-retraction",
    })
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
        let loc = Locale::english();
        let out = layout(&loc, &page, html! { p { "<i>" } }).into_string();
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
