//! The "Add a newsroom" page: the reader pastes a newsroom's publisher
//! text (`kolokol-publisher:...`, from `kolokol newsroom share`) or its
//! publisher file, sees its name, fingerprint and mirrors, and confirms:
//! two steps, so nothing is trusted that the reader did not look at.
//!
//! Both steps are POSTs taken only from the gateway's own pages (their
//! `Origin`, as the lock page checks it): a web page elsewhere cannot make
//! the node trust a publisher. The body is bounded by [`MAX_ADD_BODY`].
//! The page's visible strings are kept together in [`EN`], to move to
//! message files when the gateway is localised.

use std::path::Path;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::layout::{Page, form_page};
use crate::gateway::GatewayState;
use crate::gateway::html::display_url;
use crate::trust::PublisherFile;
use crate::trust::share;

/// Largest body of a POST to `/add`: a publisher text at its limit,
/// form-encoded (some characters take three bytes), and the other field.
pub(crate) const MAX_ADD_BODY: usize = 3 * share::MAX_TEXT + 1024;
/// How long the page waits for the node to take the publisher.
const TRUST_TIMEOUT: Duration = Duration::from_secs(10);

/// The page's visible strings.
struct Strings {
    title: &'static str,
    intro: &'static str,
    label: &'static str,
    preview: &'static str,
    check_heading: &'static str,
    check_intro: &'static str,
    name: &'static str,
    fingerprint: &'static str,
    root_key: &'static str,
    homepage: &'static str,
    mirrors: &'static str,
    no_mirrors: &'static str,
    demo: &'static str,
    confirm: &'static str,
    cancel: &'static str,
    added_heading: &'static str,
    added: &'static str,
    home: &'static str,
    not_text: &'static str,
    not_file: &'static str,
    failed: &'static str,
    no_desk: &'static str,
    wrong_origin: &'static str,
}

/// English.
const EN: Strings = Strings {
    title: "Add a newsroom",
    intro: "Paste the text a newsroom gave you (it starts with kolokol-publisher:), or the \
            contents of its publisher file. You will see its name and fingerprint before \
            anything is added.",
    label: "Publisher text or file",
    preview: "Check it",
    check_heading: "Is this the newsroom you meant?",
    check_intro: "Compare the fingerprint with the one the newsroom gives you through another \
                  channel (read aloud, on its site, on paper). Anyone can make a file with any \
                  name; only the fingerprint tells them apart.",
    name: "Name",
    fingerprint: "Fingerprint",
    root_key: "Root key",
    homepage: "Site",
    mirrors: "Mirrors",
    no_mirrors: "none: the node finds its stories only through peers it already knows",
    demo: "This is the demo newsroom: its secret key is public, so anyone can sign as it. \
           Never trust it for real news.",
    confirm: "Add this newsroom",
    cancel: "Cancel",
    added_heading: "Added",
    added: "The node trusts it now and dials its mirrors; its stories appear on the home \
            page as they arrive.",
    home: "Home",
    not_text: "This is not a publisher text or file",
    not_file: "This is not a valid publisher file",
    failed: "The node did not add it",
    no_desk: "This gateway does not run inside a node, so it cannot add newsrooms. Use \
              kolokol trust add on the command line.",
    wrong_origin: "This form is taken only from this gateway's own page. Open the Add a \
                   newsroom page of your node and try again.",
};

/// `GET /add`.
pub(crate) async fn add_form(State(state): State<GatewayState>) -> Response {
    form(&state, StatusCode::OK, "", None)
}

/// The first step: the text box, with `message` when the last try failed.
fn form(state: &GatewayState, status: StatusCode, text: &str, message: Option<&str>) -> Response {
    let t = &EN;
    let content = html! {
        h1 { (t.title) }
        @if state.desk().is_none() {
            p class="warning" { (t.no_desk) }
        } @else {
            p { (t.intro) }
            @if let Some(m) = message {
                p class="warning" role="alert" { (m) }
            }
            form method="post" action="/add" {
                input type="hidden" name="step" value="preview";
                p {
                    label for="publisher-text" { (t.label) }
                    br;
                    textarea id="publisher-text" name="text" rows="8" cols="60"
                        spellcheck="false" autocomplete="off" required { (text) }
                }
                p { button type="submit" { (t.preview) } }
            }
        }
    };
    form_page(status, &Page::titled(t.title), content)
}

/// The publisher file in what the reader pasted.
fn parse(text: &str) -> Result<PublisherFile, String> {
    let t = &EN;
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
fn preview(text: &str, p: &PublisherFile) -> Markup {
    let t = &EN;
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
    State(state): State<GatewayState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let t = &EN;
    let own = state
        .local_addr()
        .is_some_and(|local| crate::gateway::gate::same_origin(&headers, local, state.is_public()));
    if !own {
        return form(&state, StatusCode::FORBIDDEN, "", Some(t.wrong_origin));
    }
    let Some(desk) = state.desk() else {
        return form(&state, StatusCode::NOT_FOUND, "", None);
    };
    let mut step = String::new();
    let mut text = String::new();
    for (k, v) in url::form_urlencoded::parse(&body[..]) {
        match &*k {
            "step" => step = v.into_owned(),
            "text" => text = v.into_owned(),
            _ => {}
        }
    }
    let file = match parse(&text) {
        Ok(f) => f,
        Err(m) => return form(&state, StatusCode::BAD_REQUEST, &text, Some(&m)),
    };
    if step != "confirm" {
        return form_page(
            StatusCode::OK,
            &Page::titled(t.title),
            preview(&text, &file),
        );
    }
    let shown = file.shown_name().to_owned();
    let result = match tokio::time::timeout(TRUST_TIMEOUT, desk.trust(file)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the node did not answer in time".to_owned()),
    };
    match result {
        Ok(()) => {
            let content = html! {
                h1 { (t.added_heading) ": " span dir="auto" { (shown) } }
                p { (t.added) }
                p { a href="/" { (t.home) } }
            };
            form_page(StatusCode::OK, &Page::titled(t.added_heading), content)
        }
        Err(e) => form(
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            &text,
            Some(&format!("{}: {e}", t.failed)),
        ),
    }
}
