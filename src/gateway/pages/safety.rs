//! The Safety page: what this node keeps on disk, who can see what, and
//! how to wipe it. The same as the note `kolokol node` prints on first
//! start, at any time.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use super::layout::{Page, html_page};
use crate::gateway::GatewayState;
use crate::gateway::locale::Locale;
use crate::sync::Role;

/// How long the page waits for a busy node to say its role.
const ROLE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the page says of the node's own role, when it runs in a node.
fn this_node(loc: &Locale, role: Option<Role>) -> Markup {
    let (strong, rest) = match role {
        Some(Role::Quiet) => ("safety-quiet-strong", "safety-quiet"),
        Some(Role::Share) => ("safety-share-strong", "safety-share"),
        Some(Role::Mirror) => ("safety-mirror-strong", "safety-mirror"),
        None => return html! {},
    };
    html! { p class="meta" { strong { (loc.t(strong)) } " " (loc.t(rest)) } }
}

/// `GET /safety`.
pub(crate) async fn safety(State(state): State<GatewayState>, loc: Locale) -> Response {
    let role = match state.node_view() {
        Some(node) => match tokio::time::timeout(ROLE_TIMEOUT, node.network()).await {
            Ok(Ok(figures)) => Some(figures.role),
            _ => None,
        },
        None => None,
    };
    let who = [
        ("safety-mirrors-strong", "safety-mirrors"),
        ("safety-peers-strong", "safety-peers"),
        ("safety-watch-strong", "safety-watch"),
        ("safety-page-strong", "safety-page"),
        ("safety-language-strong", "safety-language"),
    ];
    let title = loc.t("safety-title");
    let content = html! {
        h1 { (title) }
        (this_node(&loc, role))
        h2 { (loc.t("safety-device-heading")) }
        p { (loc.t("safety-device")) }
        h2 { (loc.t("safety-who-heading")) }
        ul {
            @for (strong, rest) in who {
                li { strong { (loc.t(strong)) } " " (loc.t(rest)) }
            }
        }
        h2 { (loc.t("safety-wipe-heading")) }
        p {
            (loc.markup(
                "safety-wipe",
                &[],
                &[
                    ("default", html! { code dir="ltr" { "~/.local/share/kolokol" } }),
                    ("flag", html! { code dir="ltr" { "--data-dir" } }),
                ],
            ))
        }
    };
    html_page(&loc, &Page::titled(&title), content)
}
