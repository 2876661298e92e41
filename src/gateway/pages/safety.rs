//! The Safety page: what this node keeps on disk, who can see what, and
//! how to wipe it. The same as the note `kolokol node` prints on first
//! start, at any time.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use super::layout::{Page, html_page};
use crate::gateway::GatewayState;
use crate::sync::Role;

/// How long the page waits for a busy node to say its role.
const ROLE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the page says of the node's own role, when it runs in a node.
fn this_node(role: Option<Role>) -> Markup {
    match role {
        Some(Role::Quiet) => html! {
            p class="meta" { strong { "This node is a quiet reader." }
                " It listens only on this machine, answers no peer and shares nothing." }
        },
        Some(Role::Share) => html! {
            p class="meta" { strong { "This node shares (--share)." }
                " Peers that reach it can learn which publishers it carries and which \
                  stories it holds." }
        },
        Some(Role::Mirror) => html! {
            p class="meta" { strong { "This node is a mirror." }
                " It serves, relays and announces in the DHT the publishers it carries." }
        },
        None => html! {},
    }
}

/// `GET /safety`.
pub(crate) async fn safety(State(state): State<GatewayState>) -> Response {
    let role = match state.node_view() {
        Some(node) => match tokio::time::timeout(ROLE_TIMEOUT, node.network()).await {
            Ok(Ok(figures)) => Some(figures.role),
            _ => None,
        },
        None => None,
    };
    let content = html! {
        h1 { "Safety" }
        (this_node(role))
        h2 { "What is on this device" }
        p {
            "Everything in the node's data directory: the stories, photos and \
             corrections of the publishers you trust, your trust list, and the \
             node's settings. They are stored in the clear. Anyone who holds this \
             device, or a copy of its disk, can read every story it stored."
        }
        h2 { "Who can see what" }
        ul {
            li {
                strong { "The mirrors your node connects to" }
                " see your IP address, when you are online and how much you fetch. \
                  They see that you follow the whole log of what they carry, not which \
                  outlets among them you read, except when your node fetches a story too \
                  large to come with the others (over 32 KiB, with photos): that fetch \
                  tells the mirror you wanted that story. Setting \
                  large_story_budget_bytes_per_day to 0 in the node's settings stops \
                  those fetches."
            }
            li {
                strong { "Other peers" }
                " can reach a quiet reader not at all: it listens only on this \
                  machine, answers no request, takes a new peer id at every start and \
                  names no outlet in what it asks. A node started with --share answers \
                  them: they can learn which stories it holds and which publishers it \
                  carries, under a peer id that stays."
            }
            li {
                strong { "Someone watching your connection" }
                " sees that you connect to a Kolokol mirror, and when; the content \
                  is encrypted."
            }
            li {
                strong { "This page" }
                " is served by your own node, on this machine only unless it was \
                  started with --gateway-public."
            }
        }
        h2 { "How to wipe it" }
        p {
            "Stop the node (Ctrl-C, or stop its service), then delete its data \
             directory (by default "
            code { "~/.local/share/kolokol" }
            ", or the folder given with "
            code { "--data-dir" }
            "). That removes every story, the trust list and the settings."
        }
    };
    html_page(&Page::titled("Safety"), content)
}
