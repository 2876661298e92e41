//! The HTML pages: the shared layout, lists (home, a publisher's stories),
//! search, a story with its verification panel, the Safety page (what
//! the node keeps and reveals), the "Add a newsroom" page, and what pages load (the
//! stylesheet, the icon, media).
//!
//! Every page is built with maud's `html!`, which escapes each value it
//! is given, text and attribute alike. The only markup let through as it
//! is is an article body after the sanitizer.

mod add;
mod assets;
mod layout;
mod lists;
mod query;
mod safety;
mod search;
mod story_page;

pub(crate) use add::{MAX_ADD_BODY, add_form, add_post};
pub(crate) use assets::{icon, media, style};
pub(crate) use layout::{error_page, not_found};
pub(crate) use lists::{home, publisher};
pub(crate) use query::{ListQuery, cursor_text};
pub(crate) use safety::safety;
pub(crate) use search::search;
pub(crate) use story_page::story;
