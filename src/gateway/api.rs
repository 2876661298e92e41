//! The JSON API under `/api/v1/`, described in `docs/api.md`.

use std::time::Duration;

use axum::Json;
use axum::extract::Request;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::catalog::{Catalog, Filter, Item, PublisherInfo};
use super::html::{display_url, media_url};
use super::pages::{ListQuery, cursor_text};
use super::story::{StoryError, StoryView};
use super::{GatewayState, now};
use crate::proto::{BundleId, Kind};
use crate::trust::PublisherFile;

/// Most stories in one API page.
pub(crate) const MAX_PER_PAGE: usize = 100;

/// How long the status route waits for a busy node.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// The routes of the API, each with what it answers: the index at
/// `/api/v1/` lists them, and the router is built from the same paths.
pub(crate) const ROUTES: &[(&str, &str)] = &[
    ("/api/v1/", "this index of the API's routes"),
    (
        "/api/v1/status",
        "the store's totals, the trusted publishers, and the node's network status",
    ),
    (
        "/api/v1/publishers",
        "every trusted publisher, with what is held and missing",
    ),
    (
        "/api/v1/publishers/{name}",
        "one trusted publisher, by name",
    ),
    (
        "/api/v1/stories",
        "the newest version of each story, newest first (publisher, lang, section, q, page, per_page, after)",
    ),
    (
        "/api/v1/stories/{id}",
        "one story version by bundle id, with its sanitized body and verification",
    ),
];

/// An API error: `{"error": {"status": N, "message": "..."}}`.
#[derive(Serialize)]
struct ErrorJson<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: u16,
    message: &'a str,
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    let message = msg.into();
    let body = ErrorJson {
        error: ErrorBody {
            status: status.as_u16(),
            message: &message,
        },
    };
    (status, Json(body)).into_response()
}

#[derive(Serialize)]
struct RouteJson {
    path: &'static str,
    method: &'static str,
    description: &'static str,
}

/// `GET /api/v1/`: the API's routes, one line each.
pub(crate) async fn index() -> Response {
    let routes: Vec<RouteJson> = ROUTES
        .iter()
        .map(|&(path, description)| RouteJson {
            path,
            method: "GET",
            description,
        })
        .collect();
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "routes": routes,
    }))
    .into_response()
}

/// Whether `path` is under the API.
fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Makes every error under `/api/` an API error: an unknown route (the
/// gateway's fallback answers an HTML page), a method other than GET
/// (axum's empty 405), an extractor's or the host check's refusal. A
/// handler's own JSON error passes as it is; the headers already set
/// (`Cache-Control: no-store` among them) are kept.
pub(crate) async fn json_errors(req: Request, next: Next) -> Response {
    if !is_api(req.uri().path()) {
        return next.run(req).await;
    }
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let message = match status {
        StatusCode::NOT_FOUND => "no such API route: GET /api/v1/ lists them".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "the API answers only GET".to_owned(),
        StatusCode::MISDIRECTED_REQUEST => {
            "this gateway answers only to localhost and loopback addresses".to_owned()
        }
        s => s
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_lowercase(),
    };
    let fresh = error(status, message);
    let (mut parts, _) = resp.into_parts();
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &fresh_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, body)
}

#[derive(Serialize)]
struct HeadJson {
    sequence: u64,
    issued_at: u64,
    expires_at: u64,
    age_secs: u64,
    expired: bool,
}

#[derive(Serialize)]
struct PublisherJson {
    name: String,
    display_name: String,
    root_key: String,
    demo: bool,
    stories: usize,
    bundles_held: u64,
    missing: Vec<(u64, u64)>,
    missing_count: u64,
    head: Option<HeadJson>,
    languages: Vec<String>,
    sections: Vec<String>,
}

fn publisher_json(p: &PublisherFile, info: &PublisherInfo) -> PublisherJson {
    let now = now();
    PublisherJson {
        name: p.name.clone(),
        display_name: p.shown_name().to_owned(),
        root_key: p.root_key.to_string(),
        demo: p.is_demo(),
        stories: info.stories,
        bundles_held: info.bundles,
        missing: info.missing.clone(),
        missing_count: info.missing_count(),
        head: info.head.as_ref().map(|h| HeadJson {
            sequence: h.sequence,
            issued_at: h.issued_at.0,
            expires_at: h.expires_at.0,
            age_secs: now.since(h.issued_at),
            expired: h.is_expired(now),
        }),
        languages: info.languages.keys().cloned().collect(),
        sections: info.sections.keys().cloned().collect(),
    }
}

/// What the API says of each of `list`.
fn publishers_json(
    catalog: &Catalog,
    list: &[PublisherFile],
) -> Result<Vec<PublisherJson>, StatusCode> {
    list.iter()
        .map(|p| Ok(publisher_json(p, &catalog.publisher(&p.root_key)?)))
        .collect()
}

/// `GET /api/v1/publishers`: every trusted publisher.
pub(crate) async fn publishers(State(state): State<GatewayState>) -> Response {
    let trusted = state.trusted();
    let list = match publishers_json(&state.catalog(), &trusted.list) {
        Ok(l) => l,
        Err(s) => return error(s, "the store could not be read"),
    };
    Json(serde_json::json!({ "publishers": list })).into_response()
}

/// `GET /api/v1/publishers/{name}`: one trusted publisher.
pub(crate) async fn publisher(
    State(state): State<GatewayState>,
    Path(name): Path<String>,
) -> Response {
    let trusted = state.trusted();
    let Some(p) = trusted.by_name(&name) else {
        return error(StatusCode::NOT_FOUND, "no trusted publisher has that name");
    };
    match state.catalog().publisher(&p.root_key) {
        Ok(info) => Json(publisher_json(p, &info)).into_response(),
        Err(s) => error(s, "the store could not be read"),
    }
}

#[derive(Serialize)]
struct StoryItemJson {
    id: String,
    publisher: String,
    story: String,
    version: u32,
    kind: &'static str,
    retracted: bool,
    title: String,
    summary: Option<String>,
    language: String,
    section: Option<String>,
    authors: Vec<String>,
    published: u64,
    signed_at: u64,
    url: String,
}

fn item_json(i: &Item, publisher: &str) -> StoryItemJson {
    StoryItemJson {
        id: i.id.to_string(),
        publisher: publisher.to_owned(),
        story: i.story.to_string(),
        version: i.version,
        kind: i.kind.as_str(),
        retracted: i.retracted(),
        title: i.title.clone(),
        summary: i.summary.clone(),
        language: i.language.clone(),
        section: i.section.clone(),
        authors: i.authors.clone(),
        published: i.published.0,
        signed_at: i.signed_at.0,
        url: format!("/story/{}", i.id),
    }
}

/// `GET /api/v1/stories`: the newest version of each story, newest
/// first, filtered by publisher, language, section and search words.
pub(crate) async fn stories(
    State(state): State<GatewayState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let params = match query
        .map_err(|e| e.body_text())
        .and_then(|Query(q)| q.check(MAX_PER_PAGE))
    {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let trusted = state.trusted();
    let publisher = match &params.publisher {
        Some(name) => match trusted.by_name(name) {
            Some(p) => Some(p.root_key),
            None => return error(StatusCode::NOT_FOUND, "no trusted publisher has that name"),
        },
        None => None,
    };
    let catalog = state.catalog();
    let filter = Filter {
        publisher,
        language: params.lang.clone(),
        section: params.section.clone(),
        query: params.q.clone(),
    };
    let listed = match &params.after {
        // The count is the index's counters: as cheap as the page.
        Some(after) => catalog.page(&filter, 1, 0).and_then(|(total, _)| {
            Ok((total, catalog.after(&filter, Some(after), params.per_page)?))
        }),
        None if params.q.is_some() => {
            let f = filter.clone();
            let c = catalog.clone();
            let (page, per_page) = (params.page, params.per_page);
            // A search reads many manifests: off the request threads.
            tokio::task::spawn_blocking(move || c.page(&f, page, per_page))
                .await
                .unwrap_or(Err(StatusCode::INTERNAL_SERVER_ERROR))
        }
        None => catalog.page(&filter, params.page, params.per_page),
    };
    let (total, items) = match listed {
        Ok(l) => l,
        Err(s) => return error(s, "the store could not be read"),
    };
    // Where the next page starts, when this one is full (not for a search,
    // whose pages go by number).
    let next = (params.q.is_none() && items.len() == params.per_page)
        .then(|| items.last().map(|i| cursor_text(&i.cursor())))
        .flatten();
    let list: Vec<StoryItemJson> = items
        .iter()
        .map(|i| {
            let name = trusted
                .by_key(&i.publisher)
                .map_or(String::new(), |p| p.name.clone());
            item_json(i, &name)
        })
        .collect();
    Json(serde_json::json!({
        "page": params.page,
        "per_page": params.per_page,
        "total": total,
        "next": next,
        "stories": list,
    }))
    .into_response()
}

#[derive(Serialize)]
struct VersionJson {
    id: String,
    version: u32,
    kind: &'static str,
    signed_at: u64,
    url: String,
}

#[derive(Serialize)]
struct MediaJson {
    path: String,
    media_type: String,
    size: u64,
    hash: String,
    url: String,
}

#[derive(Serialize)]
struct CertificateJson {
    id: String,
    signing_key: String,
    serial: u64,
    not_before: u64,
    not_after: u64,
}

#[derive(Serialize)]
struct VerificationJson {
    publisher: String,
    publisher_name: String,
    root_key: String,
    certificate: Option<CertificateJson>,
    signed_at: u64,
    bundle_id: String,
    sequence: u64,
}

fn story_json(v: &StoryView) -> serde_json::Value {
    let shown = v.shown();
    let m = &shown.manifest;
    let meta = &m.metadata;
    let media: Vec<MediaJson> = m
        .entries
        .iter()
        .skip(1)
        .map(|e| MediaJson {
            path: e.path.clone(),
            media_type: e.media_type.clone(),
            size: e.size,
            hash: e.hash.to_string(),
            url: media_url(&shown.id, &e.path),
        })
        .collect();
    let versions: Vec<VersionJson> = v
        .history
        .iter()
        .map(|h| VersionJson {
            id: h.id.to_string(),
            version: h.manifest.version,
            kind: h.manifest.kind.as_str(),
            signed_at: h.manifest.signed_at.0,
            url: format!("/story/{}", h.id),
        })
        .collect();
    let verification = VerificationJson {
        publisher: v.publisher.name.clone(),
        publisher_name: v.publisher.shown_name().to_owned(),
        root_key: m.publisher.to_string(),
        certificate: v.certificate.as_ref().map(|c| CertificateJson {
            id: m.certificate.to_string(),
            signing_key: c.signing_key.to_string(),
            serial: c.serial,
            not_before: c.not_before.0,
            not_after: c.not_after.0,
        }),
        signed_at: m.signed_at.0,
        bundle_id: shown.id.to_string(),
        sequence: m.sequence,
    };
    serde_json::json!({
        "id": v.asked.id.to_string(),
        "shown_id": shown.id.to_string(),
        "story": m.story.to_string(),
        "version": m.version,
        "kind": m.kind.as_str(),
        "retracted": v.retraction().is_some(),
        "corrected": v.history.iter().any(|h| h.manifest.kind == Kind::Correction),
        "newest_id": v.newest().id.to_string(),
        "title": meta.title,
        "summary": meta.summary,
        "language": meta.language,
        "section": meta.section,
        "authors": meta.authors,
        "published": meta.published.0,
        "updated": meta.updated.map(|t| t.0),
        // Without its scheme, as on the page: a response of the gateway
        // names no other origin (see docs/api.md).
        "original_address": meta.original_url.as_deref().map(display_url),
        "body_html": &*v.body,
        "media": media,
        "verification": verification,
        "versions": versions,
    })
}

/// `GET /api/v1/stories/{id}`: one story version, with the body to show
/// (sanitized; the retraction notice when the story was retracted).
pub(crate) async fn story(State(state): State<GatewayState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<BundleId>() else {
        return error(
            StatusCode::NOT_FOUND,
            "not a bundle id (64 hexadecimal digits)",
        );
    };
    match state.story_view(&id) {
        Ok(v) => Json(story_json(&v)).into_response(),
        Err(StoryError::NotFound) => error(
            StatusCode::NOT_FOUND,
            "no story with that id from a trusted publisher",
        ),
        Err(StoryError::Store(e)) => {
            // The error may name a bundle: at debug only.
            tracing::warn!("gateway: the store could not be read");
            tracing::debug!("gateway: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the store could not be read",
            )
        }
    }
}

/// `GET /api/v1/status`: the store's totals, the publishers, and the
/// node's network status when the gateway runs in a node.
pub(crate) async fn status(State(state): State<GatewayState>) -> Response {
    let store_state = state.clone();
    let Ok(Ok(totals)) = tokio::task::spawn_blocking(move || store_state.store().totals()).await
    else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the store could not be read",
        );
    };
    let network = match state.node_view() {
        Some(node) => match tokio::time::timeout(STATUS_TIMEOUT, node.network()).await {
            Ok(Ok(s)) => serde_json::json!({
                "peer_id": s.peer_id,
                "listen": s.listen,
                "peers": s.peers,
                "topics": s.topics,
                "fetching": s.fetching,
                "rejected": s.rejected,
                "banned": s.banned,
                "role": s.role,
            }),
            Ok(Err(e)) => serde_json::json!({ "error": e.to_string() }),
            Err(_) => serde_json::json!({ "error": "the node did not answer in time" }),
        },
        None => serde_json::Value::Null,
    };
    let trusted = state.trusted();
    let publishers = match publishers_json(&state.catalog(), &trusted.list) {
        Ok(l) => l,
        Err(s) => return error(s, "the store could not be read"),
    };
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "time": now().0,
        "store": totals,
        "network": network,
        "publishers": publishers,
    }))
    .into_response()
}
