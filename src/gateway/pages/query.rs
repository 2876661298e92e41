//! The parameters of lists and search, shared by the pages and the API,
//! each checked against its limit.

use serde::Deserialize;

use crate::proto::{StoryId, Timestamp};
use crate::store::IndexCursor;

/// Stories on one page of a list.
pub(crate) const PAGE_SIZE: usize = 20;
/// The highest page number accepted.
pub(crate) const MAX_PAGE: usize = 100_000;
/// The longest search query, in characters.
pub(crate) const MAX_QUERY_CHARS: usize = 200;

/// Query parameters of lists and search, all optional. Numbers arrive as
/// text so that a bad one gets a clear 400 rather than a generic rejection.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    pub(crate) lang: Option<String>,
    pub(crate) section: Option<String>,
    pub(crate) page: Option<String>,
    pub(crate) per_page: Option<String>,
    pub(crate) q: Option<String>,
    pub(crate) publisher: Option<String>,
    pub(crate) after: Option<String>,
}

/// Checked list parameters.
pub(crate) struct ListParams {
    pub(crate) lang: Option<String>,
    pub(crate) section: Option<String>,
    pub(crate) page: usize,
    pub(crate) per_page: usize,
    pub(crate) q: Option<String>,
    pub(crate) publisher: Option<String>,
    /// Go on after this story (the API's `next`), instead of by page.
    pub(crate) after: Option<IndexCursor>,
}

/// A list's cursor as text: first publication, a dot, the story id.
pub(crate) fn cursor_text(c: &IndexCursor) -> String {
    format!("{}.{}", c.published.0, c.story)
}

fn parse_cursor(s: &str) -> Option<IndexCursor> {
    let (t, story) = s.split_once('.')?;
    Some(IndexCursor {
        published: Timestamp(t.parse().ok()?),
        story: story.parse::<StoryId>().ok()?,
    })
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl ListQuery {
    /// Checks every parameter against its limit; the message says which
    /// one is wrong.
    pub(crate) fn check(self, max_per_page: usize) -> Result<ListParams, String> {
        let number = |name: &str, v: Option<String>, default: usize, max: usize| match v {
            None => Ok(default),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(format!("{name} must be a number from 1 to {max}")),
            },
        };
        let page = number("page", self.page, 1, MAX_PAGE)?;
        let per_page = number("per_page", self.per_page, PAGE_SIZE, max_per_page)?;
        let lang = nonempty(self.lang);
        if lang.as_deref().is_some_and(|l| {
            l.len() > 35 || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }) {
            return Err("lang must be a language tag such as en or pt-BR".into());
        }
        let section = nonempty(self.section);
        if section.as_deref().is_some_and(|s| s.len() > 128) {
            return Err("section is longer than 128 bytes".into());
        }
        let q = nonempty(self.q);
        if q.as_deref()
            .is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS)
        {
            return Err(format!(
                "the search text is longer than {MAX_QUERY_CHARS} characters"
            ));
        }
        let publisher = nonempty(self.publisher);
        if publisher.as_deref().is_some_and(|p| p.len() > 64) {
            return Err("publisher is longer than 64 bytes".into());
        }
        let after = match nonempty(self.after) {
            None => None,
            Some(_) if q.is_some() => return Err("after does not combine with q".into()),
            Some(_) if page != 1 => return Err("after does not combine with page".into()),
            Some(a) => Some(
                parse_cursor(&a)
                    .ok_or_else(|| "after must be the next value of a list answer".to_owned())?,
            ),
        };
        Ok(ListParams {
            lang,
            section,
            page,
            per_page,
            q,
            publisher,
            after,
        })
    }
}
