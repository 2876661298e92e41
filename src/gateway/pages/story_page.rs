//! A story version's page: banners for retractions, corrections and older
//! versions, the headline and byline, the sanitized body, and the
//! verification panel saying who signed what, when, with which key.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, PreEscaped, html};

use super::layout::{Page, error_page, html_page, kind_label, time};
use crate::gateway::GatewayState;
use crate::gateway::html::{dir_of, display_url, lang_attr};
use crate::gateway::story::{StoryError, StoryView};
use crate::proto::{BundleId, Kind};

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
            // The error may name a bundle: at debug only.
            tracing::warn!("gateway: the store could not be read");
            tracing::debug!("gateway: {e}");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The store could not be read.",
            );
        }
    };
    let feed = format!("/p/{}/feed.atom", v.publisher.name);
    html_page(
        &Page {
            title: &v.shown().manifest.metadata.title,
            feed: Some(&feed),
            query: "",
        },
        render_story(&v),
    )
}

fn render_story(v: &StoryView) -> Markup {
    let shown = v.shown();
    let m = &shown.manifest;
    let meta = &m.metadata;
    let lang = lang_attr(&meta.language);
    let newest = v.newest();
    let retraction = v.retraction();
    html! {
        article class="story" lang=(lang) dir=(dir_of(lang)) {
            @if let Some(r) = retraction {
                div class="banner retracted" role="alert" lang="en" dir="ltr" {
                    strong { "Retracted." }
                    " The newsroom withdrew this story on " (time(r.manifest.signed_at))
                    ". Its notice is shown instead of the story."
                }
            } @else if newest.id != v.asked.id {
                div class="banner" lang="en" dir="ltr" {
                    "You are reading version " (v.asked.manifest.version) " of this story. "
                    a href={ "/story/" (newest.id.to_string()) } {
                        "Read the current version (" (newest.manifest.version) ", "
                        (kind_label(newest.manifest.kind)) ")"
                    }
                    "."
                }
            }
            @if m.kind == Kind::Correction {
                div class="banner corrected" lang="en" dir="ltr" {
                    strong { "Corrected" } " on " (time(m.signed_at)) "."
                    @if let Some(p) = m.supersedes {
                        " " a href={ "/story/" (p.to_string()) } { "See the version it corrects" } "."
                    }
                }
            }
            h1 { (meta.title) }
            p class="meta" {
                @if !meta.authors.is_empty() {
                    span { (meta.authors.join(", ")) } " · "
                }
                @if let Some(s) = &meta.section {
                    span { (s) } " · "
                }
                (time(meta.published))
                @if let Some(u) = meta.updated {
                    " · updated " (time(u))
                }
            }
            div class=(if retraction.is_some() { "body notice" } else { "body" }) {
                // The one markup passed through unescaped: the body, which
                // `sanitize_body` cleaned when the story was first shown.
                (PreEscaped(without_leading_h1(&v.body)))
            }
        }
        (verification(v))
    }
}

/// The verification panel: who signed what, when, with which key.
fn verification(v: &StoryView) -> Markup {
    let shown = v.shown();
    let m = &shown.manifest;
    html! {
        aside class="verify" aria-labelledby="verify-h" lang="en" dir="ltr" {
            h2 id="verify-h" { "Verification" }
            p class="ok" {
                "Verified: the signature, the signing key's certificate and every file's \
                 hash were checked before this node stored the story."
            }
            dl {
                dt { "Publisher" }
                dd {
                    a href={ "/p/" (v.publisher.name) } dir="auto" { (v.publisher.shown_name()) }
                    " (" (v.publisher.name) ")"
                }
                @if v.publisher.is_demo() {
                    dd class="warning" {
                        "Demo newsroom: its secret key is public, so anyone can sign as it."
                    }
                }
                dt { "Publisher's root key" }
                dd { code { (m.publisher.to_string()) } }
                @match &v.certificate {
                    Some(c) => {
                        dt { "Signing key" }
                        dd { code { (c.signing_key.to_string()) } }
                        dt { "Key certificate" }
                        dd {
                            "serial " (c.serial) ", valid from " (time(c.not_before))
                            " to " (time(c.not_after))
                        }
                    }
                    None => {
                        dt { "Key certificate" }
                        dd { code { (m.certificate.to_string()) } }
                    }
                }
                dt { "Signed" }
                dd { (time(m.signed_at)) }
                dt { "Bundle id" }
                dd { code class="id" { (shown.id.to_string()) } }
                dt { "Sequence" }
                dd { (m.sequence) }
                dt { "Version" }
                dd { (m.version) " (" (kind_label(m.kind)) ")" }
                @if let Some(u) = &m.metadata.original_url {
                    dt { "Original address" }
                    dd class="url" { (display_url(u)) }
                }
            }
            h3 { "Versions" }
            ol class="versions" {
                @for h in &v.history {
                    li {
                        a href={ "/story/" (h.id.to_string()) } { "Version " (h.manifest.version) }
                        " · " (kind_label(h.manifest.kind)) " · signed " (time(h.manifest.signed_at))
                        @if h.id == v.asked.id {
                            " · " strong { "the version you opened" }
                        }
                    }
                }
            }
        }
    }
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
