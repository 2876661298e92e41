//! The "Add a newsroom" page: the reader pastes a newsroom's publisher
//! text (`kolokol-publisher:...`, from `kolokol newsroom share`) or its
//! publisher file, sees its name, fingerprint and mirrors, and confirms:
//! two steps, so nothing is trusted that the reader did not look at.
//!
//! Both steps are POSTs taken only from the gateway's own pages (their
//! `Origin`, as the lock page checks it): a web page elsewhere cannot make
//! the node trust a publisher. The body is bounded by [`MAX_ADD_BODY`].
//! Its strings are the `add-*` messages of the gateway's message files.

use std::path::Path;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use maud::{Markup, html};

use super::layout::{Page, form_page};
use crate::gateway::GatewayState;
use crate::gateway::html::display_url;
use crate::gateway::locale::Locale;
use crate::trust::PublisherFile;
use crate::trust::share;

/// Largest body of a POST to `/add`: a publisher text at its limit,
/// form-encoded (some characters take three bytes), and the other field.
pub(crate) const MAX_ADD_BODY: usize = 3 * share::MAX_TEXT + 1024;
/// How long the page waits for the node to take the publisher.
const TRUST_TIMEOUT: Duration = Duration::from_secs(10);

/// The page's visible strings, in the reader's language.
struct Strings {
    title: String,
    intro: String,
    label: String,
    file_label: String,
    url_label: String,
    url_failed: String,
    preview: String,
    check_heading: String,
    check_intro: String,
    name: String,
    fingerprint: String,
    root_key: String,
    homepage: String,
    mirrors: String,
    no_mirrors: String,
    demo: String,
    confirm: String,
    cancel: String,
    added_heading: String,
    added: String,
    home: String,
    not_text: String,
    not_file: String,
    failed: String,
    timeout: String,
    no_desk: String,
    wrong_origin: String,
}

impl Strings {
    fn of(loc: &Locale) -> Self {
        Self {
            title: loc.t("add-title"),
            intro: loc.t("add-intro"),
            label: loc.t("add-label"),
            file_label: loc.t("add-file-label"),
            url_label: loc.t("add-url-label"),
            url_failed: loc.t("add-url-failed"),
            preview: loc.t("add-preview"),
            check_heading: loc.t("add-check-heading"),
            check_intro: loc.t("add-check-intro"),
            name: loc.t("add-name"),
            fingerprint: loc.t("add-fingerprint"),
            root_key: loc.t("add-root-key"),
            homepage: loc.t("add-homepage"),
            mirrors: loc.t("add-mirrors"),
            no_mirrors: loc.t("add-no-mirrors"),
            demo: loc.t("add-demo"),
            confirm: loc.t("add-confirm"),
            cancel: loc.t("add-cancel"),
            added_heading: loc.t("add-added-heading"),
            added: loc.t("add-added"),
            home: loc.t("add-home"),
            not_text: loc.t("add-not-text"),
            not_file: loc.t("add-not-file"),
            failed: loc.t("add-failed"),
            timeout: loc.t("add-timeout"),
            no_desk: loc.t("add-no-desk"),
            wrong_origin: loc.t("add-wrong-origin"),
        }
    }
}

/// `GET /add`.
pub(crate) async fn add_form(loc: Locale, State(state): State<GatewayState>) -> Response {
    form(&loc, &state, StatusCode::OK, "", None)
}

/// The first step: the text box, with `message` when the last try failed.
fn form(
    loc: &Locale,
    state: &GatewayState,
    status: StatusCode,
    text: &str,
    message: Option<&str>,
) -> Response {
    let t = Strings::of(loc);
    let content = html! {
        h1 { (t.title) }
        @if state.desk().is_none() {
            p class="warning" { (t.no_desk) }
        } @else {
            p { (t.intro) }
            @if let Some(m) = message {
                p class="warning" role="alert" { (m) }
            }
            form method="post" action="/add" enctype="multipart/form-data" {
                input type="hidden" name="step" value="preview";
                p {
                    label for="publisher-text" { (t.label) }
                    br;
                    textarea id="publisher-text" name="text" rows="8" cols="60"
                        spellcheck="false" autocomplete="off" { (text) }
                }
                p {
                    label for="publisher-file" { (t.file_label) }
                    br;
                    input id="publisher-file" type="file" name="file";
                }
                p {
                    label for="publisher-url" { (t.url_label) }
                    br;
                    input id="publisher-url" type="url" name="url" size="60"
                        autocomplete="off" dir="ltr";
                }
                p { button type="submit" { (t.preview) } }
            }
        }
    };
    form_page(loc, status, &Page::titled(&t.title), content)
}

/// The publisher file in what the reader pasted.
fn parse(t: &Strings, text: &str) -> Result<PublisherFile, String> {
    let toml = if share::is_text(text) {
        share::decode_text(text).map_err(|e| format!("{}: {e}", t.not_text))?
    } else {
        text.to_owned()
    };
    PublisherFile::parse(&toml, Path::new("the pasted text"))
        .map_err(|e| format!("{}: {e}", t.not_file))
}

/// The second step: what the file says, and the button that adds it.
/// Its site and web trees are shown as text without their scheme, as
/// everywhere in the gateway: no response names another origin.
fn preview(t: &Strings, text: &str, p: &PublisherFile) -> Markup {
    let mirrors = p.mirror_addresses();
    html! {
        h1 { (t.check_heading) }
        p { (t.check_intro) }
        @if p.is_demo() {
            p class="warning" { (t.demo) }
        }
        dl class="verification" {
            dt { (t.name) }
            dd dir="auto" { (p.shown_name()) " (" (p.name) ")" }
            dt { (t.fingerprint) }
            dd { code class="fingerprint" dir="ltr" { (share::fingerprint(&p.root_key)) } }
            dt { (t.root_key) }
            dd { code dir="ltr" { (p.root_key) } }
            @if let Some(h) = &p.homepage {
                dt { (t.homepage) }
                dd dir="ltr" { (display_url(h)) }
            }
            dt { (t.mirrors) }
            @if mirrors.is_empty() {
                dd { (t.no_mirrors) }
            }
            @for m in &mirrors {
                dd { code dir="ltr" { (display_url(m)) } }
            }
        }
        form method="post" action="/add" {
            input type="hidden" name="step" value="confirm";
            input type="hidden" name="text" value=(text);
            p {
                button type="submit" { (t.confirm) }
                " "
                a href="/add" { (t.cancel) }
            }
        }
    }
}

/// `POST /add`: `step=preview` shows the file, `step=confirm` adds it.
pub(crate) async fn add_post(
    loc: Locale,
    State(state): State<GatewayState>,
    req: Request,
) -> Response {
    let headers = req.headers().clone();
    let t = Strings::of(&loc);
    let own = state
        .local_addr()
        .is_some_and(|local| crate::gateway::gate::same_origin(&headers, local, state.is_public()));
    if !own {
        return form(
            &loc,
            &state,
            StatusCode::FORBIDDEN,
            "",
            Some(&t.wrong_origin),
        );
    }
    let Some(desk) = state.desk() else {
        return form(&loc, &state, StatusCode::NOT_FOUND, "", None);
    };
    let (step, text, url) = match read_form(req).await {
        Ok(form) => form,
        Err(FormError::TooLarge) => {
            return form(&loc, &state, StatusCode::PAYLOAD_TOO_LARGE, "", None);
        }
        Err(FormError::Bad) => {
            return form(&loc, &state, StatusCode::BAD_REQUEST, "", Some(&t.not_file));
        }
    };
    let text = match url {
        Some(url) if text.trim().is_empty() => {
            match fetch(url.clone(), state.fetch_proxy().cloned()).await {
                Ok(fetched) => fetched,
                Err(e) => {
                    let m = format!("{}: {e}", t.url_failed);
                    return form(&loc, &state, StatusCode::BAD_REQUEST, "", Some(&m));
                }
            }
        }
        _ => text,
    };
    let file = match parse(&t, &text) {
        Ok(f) => f,
        Err(m) => return form(&loc, &state, StatusCode::BAD_REQUEST, &text, Some(&m)),
    };
    if step != "confirm" {
        return form_page(
            &loc,
            StatusCode::OK,
            &Page::titled(&t.title),
            preview(&t, &text, &file),
        );
    }
    let shown = file.shown_name().to_owned();
    let result = match tokio::time::timeout(TRUST_TIMEOUT, desk.trust(file)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(t.timeout.clone()),
    };
    match result {
        Ok(()) => {
            let content = html! {
                h1 { (t.added_heading) ": " span dir="auto" { (shown) } }
                p { (t.added) }
                p { a href="/" { (t.home) } }
            };
            form_page(
                &loc,
                StatusCode::OK,
                &Page::titled(&t.added_heading),
                content,
            )
        }
        Err(e) => form(
            &loc,
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            &text,
            Some(&format!("{}: {e}", t.failed)),
        ),
    }
}

/// Why a posted form was not read.
enum FormError {
    /// Over [`MAX_ADD_BODY`].
    TooLarge,
    /// Not a form, or a file that is not text.
    Bad,
}

/// The step and the publisher text of a POST: a form with the text
/// (the confirm step, and the text box), or a file upload, whose
/// contents stand for the text when the box is empty. Both are bounded
/// by the route's body limit ([`MAX_ADD_BODY`]).
async fn read_form(req: Request) -> Result<(String, String, Option<String>), FormError> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let mut step = String::new();
    let mut text = String::new();
    let mut url = String::new();
    if !multipart {
        let body = Bytes::from_request(req, &()).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                FormError::TooLarge
            } else {
                FormError::Bad
            }
        })?;
        for (k, v) in url::form_urlencoded::parse(&body[..]) {
            match &*k {
                "step" => step = v.into_owned(),
                "text" => text = v.into_owned(),
                "url" => url = v.into_owned(),
                _ => {}
            }
        }
        return Ok((step, text, given(url)));
    }
    let mut parts = Multipart::from_request(req, &())
        .await
        .map_err(|_| FormError::Bad)?;
    let mut file = Vec::new();
    loop {
        let field = match parts.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(FormError::TooLarge);
            }
            Err(_) => return Err(FormError::Bad),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(FormError::TooLarge);
            }
            Err(_) => return Err(FormError::Bad),
        };
        match name.as_str() {
            "step" => step = String::from_utf8_lossy(&bytes).into_owned(),
            "text" => text = String::from_utf8_lossy(&bytes).into_owned(),
            "file" => file = bytes.to_vec(),
            "url" => url = String::from_utf8_lossy(&bytes).into_owned(),
            _ => {}
        }
    }
    if text.trim().is_empty() && !file.is_empty() {
        text = String::from_utf8(file).map_err(|_| FormError::Bad)?;
    }
    Ok((step, text, given(url)))
}

fn given(url: String) -> Option<String> {
    let url = url.trim();
    (!url.is_empty()).then(|| url.to_owned())
}

/// Time allowed to connect when fetching a publisher file by URL.
const URL_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for the whole fetch.
const URL_TIMEOUT: Duration = Duration::from_secs(30);

/// Fetches a publisher file or its text from `url`, bounded in time and
/// size, as `kolokol trust add URL` does, through the node's proxy when
/// it has one (and then never directly). The URL is the reader's own
/// choice, typed on this node's own page (the POST is Origin-checked), so
/// one on this machine or the local network is fetched too.
async fn fetch(url: String, proxy: Option<crate::net::proxy::Proxy>) -> Result<String, String> {
    let parsed = url::Url::parse(&url).map_err(|e| format!("{url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?}: only http and https URLs are fetched"));
    }
    let got = tokio::task::spawn_blocking(move || {
        let mut fetcher = crate::newsroom::fetch::Fetcher::new(URL_CONNECT_TIMEOUT, URL_TIMEOUT)
            .allow_local(true);
        if let Some(p) = &proxy {
            fetcher = fetcher.via_proxy(p)?;
        }
        fetcher.get(&parsed, share::MAX_TEXT as u64 * 2, None)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    String::from_utf8(got.bytes).map_err(|_| "not UTF-8 text".to_owned())
}
