//! A story version's page: banners for retractions, corrections and older
//! versions, the headline and byline, the sanitized body, and the
//! verification panel saying who signed what, when, with which key.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, PreEscaped, html};

use super::layout::{Page, error_page, html_page, kind_label, store_error, time};
use crate::gateway::GatewayState;
use crate::gateway::html::{dir_of, display_url, lang_attr};
use crate::gateway::locale::Locale;
use crate::gateway::story::{StoryError, StoryView};
use crate::proto::{BundleId, Kind};

/// A story version with its verification panel.
pub(crate) async fn story(
    State(state): State<GatewayState>,
    Path(id): Path<String>,
    loc: Locale,
) -> Response {
    let Ok(id) = id.parse::<BundleId>() else {
        return error_page(&loc, StatusCode::NOT_FOUND, &loc.t("error-not-bundle-id"));
    };
    let v = match state.story_view(&id) {
        Ok(v) => v,
        Err(StoryError::NotFound) => {
            return error_page(&loc, StatusCode::NOT_FOUND, &loc.t("error-no-story"));
        }
        Err(StoryError::Store(e)) => {
            // The error may name a bundle: at debug only.
            tracing::warn!("gateway: the store could not be read");
            tracing::debug!("gateway: {e}");
            return store_error(&loc, StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let feed = format!("/p/{}/feed.atom", v.publisher.name);
    html_page(
        &loc,
        &Page {
            title: &v.shown().manifest.metadata.title,
            feed: Some(&feed),
            query: "",
        },
        render_story(&loc, &v),
    )
}

fn render_story(loc: &Locale, v: &StoryView) -> Markup {
    let shown = v.shown();
    let m = &shown.manifest;
    let meta = &m.metadata;
    let lang = lang_attr(&meta.language);
    let newest = v.newest();
    let retraction = v.retraction();
    // The banners and the byline's dates are the page's words, in the
    // reader's language; the story's own text keeps its language.
    let (ui, ui_dir) = (loc.tag(), loc.dir());
    html! {
        article class="story" lang=(lang) dir=(dir_of(lang)) {
            @if let Some(r) = retraction {
                div class="banner retracted" role="alert" lang=(ui) dir=(ui_dir) {
                    strong { (loc.t("story-retracted")) }
                    " "
                    (loc.markup(
                        "story-retracted-notice",
                        &[],
                        &[("date", time(loc, r.manifest.signed_at))],
                    ))
                }
            } @else if newest.id != v.asked.id {
                div class="banner" lang=(ui) dir=(ui_dir) {
                    (loc.t_args("story-old-version", &[("version", v.asked.manifest.version.into())]))
                    " "
                    a href={ "/story/" (newest.id.to_string()) } {
                        (loc.t_args(
                            "story-current-version",
                            &[
                                ("version", newest.manifest.version.into()),
                                ("kind", kind_label(loc, newest.manifest.kind).into()),
                            ],
                        ))
                    }
                }
            }
            @if m.kind == Kind::Correction {
                div class="banner corrected" lang=(ui) dir=(ui_dir) {
                    (loc.markup(
                        "story-corrected",
                        &[],
                        &[
                            ("corrected", html! { strong { (loc.t("story-corrected-word")) } }),
                            ("date", time(loc, m.signed_at)),
                        ],
                    ))
                    @if let Some(p) = m.supersedes {
                        " " a href={ "/story/" (p.to_string()) } { (loc.t("story-corrects")) }
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
                (time(loc, meta.published))
                @if let Some(u) = meta.updated {
                    " · "
                    span lang=(ui) dir=(ui_dir) {
                        (loc.markup("story-updated", &[], &[("date", time(loc, u))]))
                    }
                }
            }
            div class=(if retraction.is_some() { "body notice" } else { "body" }) {
                // The one markup passed through unescaped: the body, which
                // `sanitize_body` cleaned when the story was first shown.
                (PreEscaped(without_leading_h1(&v.body)))
            }
        }
        (verification(loc, v))
    }
}

/// The verification panel: who signed what, when, with which key.
fn verification(loc: &Locale, v: &StoryView) -> Markup {
    let shown = v.shown();
    let m = &shown.manifest;
    html! {
        aside class="verify" aria-labelledby="verify-h" {
            h2 id="verify-h" { (loc.t("verify-heading")) }
            p class="ok" { (loc.t("verify-ok")) }
            dl {
                dt { (loc.t("verify-publisher")) }
                dd {
                    a href={ "/p/" (v.publisher.name) } dir="auto" { (v.publisher.shown_name()) }
                    " (" span dir="ltr" { (v.publisher.name) } ")"
                }
                @if v.publisher.is_demo() {
                    dd class="warning" { (loc.t("verify-demo")) }
                }
                dt { (loc.t("verify-root")) }
                dd { code dir="ltr" { (m.publisher.to_string()) } }
                @match &v.certificate {
                    Some(c) => {
                        dt { (loc.t("verify-signing-key")) }
                        dd { code dir="ltr" { (c.signing_key.to_string()) } }
                        dt { (loc.t("verify-certificate")) }
                        dd {
                            (loc.markup(
                                "verify-certificate-validity",
                                &[("serial", c.serial.into())],
                                &[("from", time(loc, c.not_before)), ("to", time(loc, c.not_after))],
                            ))
                        }
                    }
                    None => {
                        dt { (loc.t("verify-certificate")) }
                        dd { code dir="ltr" { (m.certificate.to_string()) } }
                    }
                }
                dt { (loc.t("verify-signed")) }
                dd { (time(loc, m.signed_at)) }
                dt { (loc.t("verify-bundle")) }
                dd { code class="id" dir="ltr" { (shown.id.to_string()) } }
                dt { (loc.t("verify-sequence")) }
                dd { (m.sequence) }
                dt { (loc.t("verify-version")) }
                dd {
                    (loc.t_args(
                        "verify-version-kind",
                        &[("version", m.version.into()), ("kind", kind_label(loc, m.kind).into())],
                    ))
                }
                @if let Some(u) = &m.metadata.original_url {
                    dt { (loc.t("verify-original")) }
                    dd class="url" dir="ltr" { (display_url(u)) }
                }
            }
            h3 { (loc.t("verify-versions")) }
            ol class="versions" {
                @for h in &v.history {
                    li {
                        a href={ "/story/" (h.id.to_string()) } {
                            (loc.t_args("verify-version-n", &[("version", h.manifest.version.into())]))
                        }
                        " · " (kind_label(loc, h.manifest.kind)) " · "
                        (loc.markup("verify-signed-on", &[], &[("date", time(loc, h.manifest.signed_at))]))
                        @if h.id == v.asked.id {
                            " · " strong { (loc.t("verify-opened")) }
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
