//! The gateway's pages in the reader's language: Fluent messages, one
//! file per language under `locales/`, built into the binary and parsed
//! once, when the router is built.
//!
//! A request's language is, in order: the `ui` query parameter (the
//! language links on every page), the cookie it sets, the
//! `Accept-Language` header, English. Only the chrome is translated: a
//! story keeps its own `lang` and `dir`, and the JSON API and the feeds
//! stay as they are.
//!
//! Pages get a [`Locale`] and ask it for messages: [`Locale::t`],
//! [`Locale::t_args`], and [`Locale::markup`] for a sentence with markup
//! (a date, a link) in the middle.

use std::sync::{Arc, LazyLock};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::middleware::Next;
use axum::response::Response;
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use maud::{Markup, PreEscaped, html};
use thiserror::Error;
use unic_langid::LanguageIdentifier;

use super::html::{dir_of, rfc3339};
use crate::proto::Timestamp;

/// The message files, by language tag. English comes first: it is the
/// fallback, and the file the others are checked against.
const SOURCES: &[(&str, &str)] = &[
    ("en", include_str!("locales/en/gateway.ftl")),
    ("ru", include_str!("locales/ru/gateway.ftl")),
    ("uk", include_str!("locales/uk/gateway.ftl")),
    ("be", include_str!("locales/be/gateway.ftl")),
    ("ar", include_str!("locales/ar/gateway.ftl")),
    ("fa", include_str!("locales/fa/gateway.ftl")),
];

/// The cookie keeping the reader's explicit choice for the browser
/// session.
pub(crate) const COOKIE: &str = "kolokol-lang";
/// The query parameter of the language links. Not `lang`, which filters
/// lists by the stories' language.
pub(crate) const PARAM: &str = "ui";
/// The longest `Accept-Language` value read; the rest is ignored.
const MAX_ACCEPT_LANGUAGE: usize = 512;
/// The most `Accept-Language` entries considered.
const MAX_ACCEPT_ENTRIES: usize = 16;
/// The longest `Cookie` header looked into.
const MAX_COOKIE: usize = 4096;
/// The longest address kept for the language links; a longer one links
/// to its path alone.
const MAX_HERE: usize = 2048;

/// Why a message file could not be loaded whole.
#[derive(Debug, Error)]
pub(crate) enum LocaleError {
    /// A syntax error.
    #[error("locales/{tag}/gateway.ftl, line {line}: {what}")]
    Syntax {
        /// The language.
        tag: &'static str,
        /// The line, from 1.
        line: usize,
        /// What the parser found.
        what: String,
    },
    /// A message defined twice, or another error adding the file.
    #[error("locales/{tag}/gateway.ftl: {what}")]
    Bundle {
        /// The language.
        tag: &'static str,
        /// What was wrong.
        what: String,
    },
    /// The tag is not a language identifier.
    #[error("locales/{0}: not a language tag")]
    Tag(&'static str),
}

/// One language of the chrome.
pub(crate) struct Language {
    tag: &'static str,
    dir: &'static str,
    bundle: FluentBundle<FluentResource>,
}

/// Every language of the chrome, loaded from [`SOURCES`].
pub(crate) struct Languages {
    all: Vec<Language>,
}

impl Languages {
    /// Loads every file; what went wrong is returned beside what could be
    /// loaded (a file with an error keeps its good messages, and English
    /// stands in for the rest).
    pub(crate) fn load() -> (Self, Vec<LocaleError>) {
        let mut errors = Vec::new();
        let mut all = Vec::new();
        for &(tag, source) in SOURCES {
            let Ok(id) = tag.parse::<LanguageIdentifier>() else {
                errors.push(LocaleError::Tag(tag));
                continue;
            };
            let resource = match FluentResource::try_new(source.to_owned()) {
                Ok(r) => r,
                Err((r, errs)) => {
                    for e in errs {
                        errors.push(LocaleError::Syntax {
                            tag,
                            line: line_of(source, e.pos.start),
                            what: e.kind.to_string(),
                        });
                    }
                    r
                }
            };
            let mut bundle = FluentBundle::new_concurrent(vec![id]);
            // Names and queries sit in elements of their own with `dir`;
            // the marks Fluent would add around each argument would only
            // show up in copied text.
            bundle.set_use_isolating(false);
            if let Err(errs) = bundle.add_resource(resource) {
                for e in errs {
                    errors.push(LocaleError::Bundle {
                        tag,
                        what: e.to_string(),
                    });
                }
            }
            all.push(Language {
                tag,
                dir: dir_of(tag),
                bundle,
            });
        }
        (Self { all }, errors)
    }

    /// The language with this tag's primary subtag, if the chrome has it.
    pub(crate) fn find(&self, tag: &str) -> Option<&Language> {
        let primary = tag.split(['-', '_']).next().unwrap_or("");
        self.all
            .iter()
            .find(|l| l.tag.eq_ignore_ascii_case(primary))
    }

    fn english(&self) -> Option<&Language> {
        self.all.first()
    }

    /// The first acceptable language of an `Accept-Language` value that
    /// the chrome has, by quality.
    pub(crate) fn negotiate(&self, accept: &str) -> Option<&Language> {
        accept_language(accept)
            .iter()
            .find_map(|(tag, _)| self.find(tag))
    }
}

/// The line (from 1) of byte `pos` of `source`.
fn line_of(source: &str, pos: usize) -> usize {
    source
        .as_bytes()
        .iter()
        .take(pos)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

static LANGUAGES: LazyLock<Languages> = LazyLock::new(|| {
    let (languages, errors) = Languages::load();
    for e in errors {
        tracing::warn!("gateway: {e}");
    }
    languages
});

/// Parses the message files now, so that a fault in one is logged when
/// the gateway starts rather than at a reader's first request.
pub(crate) fn init() {
    LazyLock::force(&LANGUAGES);
}

/// The tags of an `Accept-Language` value, best first, without those of
/// quality 0 or with a malformed quality or tag. Reads at most
/// [`MAX_ACCEPT_LANGUAGE`] bytes and [`MAX_ACCEPT_ENTRIES`] entries.
fn accept_language(value: &str) -> Vec<(&str, u16)> {
    let mut end = value.len().min(MAX_ACCEPT_LANGUAGE);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: Vec<(&str, u16)> = value[..end]
        .split(',')
        .take(MAX_ACCEPT_ENTRIES)
        .filter_map(|entry| {
            let mut parts = entry.split(';');
            let tag = parts.next()?.trim();
            if !language_range(tag) {
                return None;
            }
            let mut q = 1000;
            for p in parts {
                let (k, v) = p.split_once('=')?;
                if k.trim().eq_ignore_ascii_case("q") {
                    q = quality(v.trim())?;
                }
            }
            (q > 0).then_some((tag, q))
        })
        .collect();
    // Stable: among equal qualities the header's order stays.
    out.sort_by_key(|e| std::cmp::Reverse(e.1));
    out
}

/// A language range of RFC 4647: `*`, or subtags of 1 to 8 letters and
/// digits joined by `-`, the first letters only.
fn language_range(tag: &str) -> bool {
    if tag == "*" {
        return true;
    }
    let mut parts = tag.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    first_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A quality value (RFC 9110: `0`, `1`, up to three decimals) in
/// thousandths.
fn quality(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.len() <= MAX_COOKIE)
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then_some(v.trim())
        })
}

/// The value of query parameter `name`.
fn param<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// The request's address without the `ui` parameter, for the language
/// links.
fn here_of(uri: &Uri) -> String {
    let path = uri.path();
    // A path such as `//elsewhere.example/` would make the links point
    // to another site: such a page's links lead home instead.
    if !path.starts_with('/') || path.starts_with("//") || path.contains('\\') {
        return "/".to_owned();
    }
    let rest: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some(PARAM))
        .collect();
    let here = if rest.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", rest.join("&"))
    };
    if here.len() > MAX_HERE {
        path.chars().take(MAX_HERE).collect()
    } else {
        here
    }
}

/// The language a request is answered in, and what the pages need to
/// say it. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Locale {
    lang: &'static Language,
    english: &'static Language,
    all: &'static [Language],
    /// The address of the page, for the language links.
    here: Arc<str>,
}

/// What chose a request's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chosen {
    /// The `ui` parameter: remember it in the cookie.
    Param,
    /// The cookie, the header, or the default.
    Kept,
}

impl Locale {
    /// The language of a request: the `ui` parameter, else the cookie,
    /// else `Accept-Language`, else English. `None` only if English
    /// itself could not be loaded, which a unit test rules out.
    pub(crate) fn of(uri: &Uri, headers: &HeaderMap) -> Option<(Self, Chosen)> {
        let languages: &'static Languages = &LANGUAGES;
        let english = languages.english()?;
        let (lang, chosen) = if let Some(l) = param(uri, PARAM).and_then(|t| languages.find(t)) {
            (l, Chosen::Param)
        } else if let Some(l) = cookie(headers, COOKIE).and_then(|t| languages.find(t)) {
            (l, Chosen::Kept)
        } else {
            let accepted = headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| languages.negotiate(v));
            (accepted.unwrap_or(english), Chosen::Kept)
        };
        Some((
            Self {
                lang,
                english,
                all: &languages.all,
                here: here_of(uri).into(),
            },
            chosen,
        ))
    }

    /// English, for tests of the pages.
    #[cfg(test)]
    pub(crate) fn english() -> Self {
        let uri = Uri::from_static("/");
        Self::of(&uri, &HeaderMap::new())
            .map(|(l, _)| l)
            .expect("English loads")
    }

    /// The tag to remember in the cookie, when the choice was made with
    /// the links.
    pub(crate) fn remembered(&self, how: Chosen) -> Option<&'static str> {
        (how == Chosen::Param).then_some(self.lang.tag)
    }

    /// The tag of the page's language, for `lang`.
    pub(crate) fn tag(&self) -> &'static str {
        self.lang.tag
    }

    /// `ltr` or `rtl`, for `dir`.
    pub(crate) fn dir(&self) -> &'static str {
        self.lang.dir
    }

    /// Message `id`.
    pub(crate) fn t(&self, id: &str) -> String {
        self.format(id, None)
    }

    /// Message `id` with its arguments.
    pub(crate) fn t_args(&self, id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
        let mut a = FluentArgs::new();
        for (k, v) in args {
            a.set(*k, v.clone());
        }
        self.format(id, Some(&a))
    }

    /// A message with a count, in the plural form the count takes.
    pub(crate) fn count(&self, id: &str, count: u64) -> String {
        self.t_args(id, &[("count", count.into())])
    }

    /// Message `id` as markup: `args` as text, each of `slots` put in
    /// as the markup given (a date, a link, a query in its own element).
    pub(crate) fn markup(
        &self,
        id: &str,
        args: &[(&str, FluentValue<'_>)],
        slots: &[(&str, Markup)],
    ) -> Markup {
        let mut a = FluentArgs::new();
        for (k, v) in args {
            a.set(*k, v.clone());
        }
        // Each slot becomes a private-use character the messages never
        // contain; user text never reaches the message as an argument.
        for (i, (k, _)) in slots.iter().enumerate() {
            a.set(*k, slot_mark(i).to_string());
        }
        let text = self.format(id, Some(&a));
        let mut out = String::with_capacity(text.len() + 64);
        let mut rest = text.as_str();
        while let Some((pos, c)) = rest.char_indices().find(|(_, c)| slot_index(*c).is_some()) {
            out.push_str(&html! { (&rest[..pos]) }.into_string());
            if let Some((_, m)) = slot_index(c).and_then(|i| slots.get(i)) {
                out.push_str(&m.0);
            }
            rest = &rest[pos + c.len_utf8()..];
        }
        out.push_str(&html! { (rest) }.into_string());
        PreEscaped(out)
    }

    fn format(&self, id: &str, args: Option<&FluentArgs<'_>>) -> String {
        for lang in [self.lang, self.english] {
            let Some(pattern) = lang.bundle.get_message(id).and_then(|m| m.value()) else {
                continue;
            };
            let mut errors = Vec::new();
            let s = lang.bundle.format_pattern(pattern, args, &mut errors);
            if !errors.is_empty() {
                tracing::debug!(
                    "gateway: message {id} of {} formatted with errors: {errors:?}",
                    lang.tag
                );
            }
            return s.into_owned();
        }
        tracing::debug!("gateway: no message {id}");
        id.to_owned()
    }

    /// A moment for readers: day, month, year and time (UTC), in the
    /// page's language.
    pub(crate) fn date(&self, t: Timestamp) -> String {
        let s = rfc3339(t);
        // "YYYY-MM-DDTHH:MM:SSZ" is ASCII, so byte slicing is safe.
        let (Some(year), Some(month), Some(day), Some(time)) =
            (s.get(..4), s.get(5..7), s.get(8..10), s.get(11..16))
        else {
            return s;
        };
        let month = self.t(&format!("month-{}", month.trim_start_matches('0')));
        self.t_args(
            "date",
            &[
                ("day", day.trim_start_matches('0').to_owned().into()),
                ("month", month.into()),
                ("year", year.to_owned().into()),
                ("time", time.to_owned().into()),
            ],
        )
    }

    /// A duration to its two largest units: `3 hours 5 minutes`.
    pub(crate) fn duration(&self, secs: u64) -> String {
        const UNITS: &[(u64, &str)] = &[
            (86_400, "duration-days"),
            (3_600, "duration-hours"),
            (60, "duration-minutes"),
            (1, "duration-seconds"),
        ];
        let mut parts = Vec::new();
        let mut rest = secs;
        for &(size, id) in UNITS {
            if rest >= size {
                parts.push(self.count(id, rest / size));
                rest %= size;
            }
            if parts.len() == 2 {
                break;
            }
        }
        match parts.as_slice() {
            [] => self.count("duration-seconds", 0),
            [one] => one.clone(),
            [first, second, ..] => self.t_args(
                "duration-pair",
                &[
                    ("first", first.clone().into()),
                    ("second", second.clone().into()),
                ],
            ),
        }
    }

    /// How long ago: `3 hours 5 minutes ago`.
    pub(crate) fn ago(&self, secs: u64) -> String {
        self.t_args("ago", &[("duration", self.duration(secs).into())])
    }

    /// Links to the page in every language of the chrome, each named in
    /// its own language.
    pub(crate) fn switch(&self) -> Markup {
        let sep = if self.here.contains('?') { '&' } else { '?' };
        html! {
            nav class="languages" aria-label=(self.t("language-switch")) {
                @for l in self.all {
                    a href={ (self.here) (sep) (PARAM) "=" (l.tag) } hreflang=(l.tag) lang=(l.tag)
                        dir=(l.dir) aria-current=[(l.tag == self.lang.tag).then_some("true")] {
                        (message_of(l, "language-name"))
                    }
                }
            }
        }
    }
}

/// A message of one language, without fallback.
fn message_of(l: &Language, id: &str) -> String {
    l.bundle
        .get_message(id)
        .and_then(|m| m.value())
        .map(|p| {
            let mut errors = Vec::new();
            l.bundle.format_pattern(p, None, &mut errors).into_owned()
        })
        .unwrap_or_else(|| l.tag.to_owned())
}

const SLOT_BASE: u32 = 0xE000;
const MAX_SLOTS: u32 = 16;

fn slot_mark(i: usize) -> char {
    char::from_u32(SLOT_BASE + (i as u32).min(MAX_SLOTS - 1)).unwrap_or('\u{E000}')
}

fn slot_index(c: char) -> Option<usize> {
    let v = c as u32;
    (SLOT_BASE..SLOT_BASE + MAX_SLOTS)
        .contains(&v)
        .then(|| (v - SLOT_BASE) as usize)
}

impl<S: Send + Sync> FromRequestParts<S> for Locale {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(l) = parts.extensions.get::<Locale>() {
            return Ok(l.clone());
        }
        Self::of(&parts.uri, &parts.headers)
            .map(|(l, _)| l)
            .ok_or_else(|| {
                axum::response::IntoResponse::into_response((
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "The gateway's messages could not be loaded.",
                ))
            })
    }
}

/// Chooses each request's language for the pages, remembers an explicit
/// choice in a cookie for the browser session, and says on HTML answers
/// that they vary with the header and the cookie.
pub(crate) async fn localize(mut req: Request, next: Next) -> Response {
    let remember = match Locale::of(req.uri(), req.headers()) {
        Some((locale, how)) => {
            let tag = locale.remembered(how);
            req.extensions_mut().insert(locale);
            tag
        }
        None => None,
    };
    let mut resp = next.run(req).await;
    mark(resp.headers_mut(), remember);
    resp
}

/// What an answer needs for its language: `Vary` when it is a page, and
/// the cookie remembering `chosen`, a language picked with the links.
pub(crate) fn mark(h: &mut HeaderMap, chosen: Option<&'static str>) {
    let is_html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        h.append(
            header::VARY,
            HeaderValue::from_static("Accept-Language, Cookie"),
        );
    }
    if let Some(tag) = chosen {
        // No Max-Age or Expires: the choice ends with the browser session.
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{COOKIE}={tag}; Path=/; SameSite=Strict; HttpOnly"
        )) {
            h.append(header::SET_COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests;
