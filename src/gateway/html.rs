//! What pages, feeds and the API share: URLs on this node, time and
//! direction helpers (dates and durations for readers are in `locale`),
//! and the sanitizer for article bodies.
//!
//! Pages are built with maud's `html!`, which escapes every value it is
//! given; the one markup passed through as it is is an article body, and
//! only after [`sanitize_body`] has cleaned it.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::proto::{BundleId, Manifest, Timestamp};

/// What a query parameter value keeps as is: the unreserved characters
/// of RFC 3986.
const PARAM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What an entry path in a media URL keeps as is: as [`PARAM`], and `/`
/// between its parts.
const MEDIA_PATH: &AsciiSet = &PARAM.remove(b'/');

/// Percent-encodes a query parameter value.
pub(crate) fn url_param(s: &str) -> String {
    utf8_percent_encode(s, PARAM).to_string()
}

/// Languages written right to left, by primary subtag.
const RTL: &[&str] = &[
    "ar", "arc", "ckb", "dv", "fa", "he", "iw", "ks", "ku", "ps", "sd", "syr", "ug", "ur", "yi",
];

/// The writing direction of a language tag: `rtl` for right-to-left
/// scripts, else `ltr`. A script subtag (`-Arab`, `-Latn`…) takes precedence.
pub(crate) fn dir_of(lang: &str) -> &'static str {
    let lower = lang.to_ascii_lowercase();
    let mut parts = lower.split('-');
    let primary = parts.next().unwrap_or("");
    for p in parts {
        match p {
            "arab" | "hebr" | "thaa" | "syrc" | "nkoo" | "adlm" | "rohg" => return "rtl",
            "latn" | "cyrl" => return "ltr",
            _ => {}
        }
    }
    if RTL.contains(&primary) { "rtl" } else { "ltr" }
}

/// A language tag fit for a `lang` attribute: letters, digits and `-`,
/// as the manifest rules require; anything else becomes `und`.
pub(crate) fn lang_attr(lang: &str) -> &str {
    if !lang.is_empty()
        && lang.len() <= 35
        && lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        lang
    } else {
        "und"
    }
}

/// A timestamp as RFC 3339 (`2026-11-20T08:00:00Z`), clamped to the
/// largest time RFC 3339 can write so no signed value breaks a feed.
pub(crate) fn rfc3339(t: Timestamp) -> String {
    let t = Timestamp(t.0.min(253_402_300_799));
    humantime::format_rfc3339_seconds(t.to_system()).to_string()
}

/// A URL for display only, never as a link: the scheme is dropped so the
/// text names the address without making the page refer to another
/// origin. Readers where the site is blocked can still copy it.
pub(crate) fn display_url(url: &str) -> &str {
    url.strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url)
}

/// How a bundle's body refers to its media: the paths of its entries
/// (other than the body), mapped to their URLs on this node.
pub(crate) fn media_urls(id: &BundleId, manifest: &Manifest) -> HashMap<String, String> {
    manifest
        .entries
        .iter()
        .skip(1)
        .map(|e| (e.path.clone(), media_url(id, &e.path)))
        .collect()
}

/// The URL of one entry of a bundle on this node. Entry paths are safe
/// relative paths (checked when the manifest was verified), so only
/// non-ASCII needs encoding.
pub(crate) fn media_url(id: &BundleId, path: &str) -> String {
    format!("/media/{id}/{}", utf8_percent_encode(path, MEDIA_PATH))
}

/// Decodes `%XX` escapes (a `%` not followed by two hex digits stays as
/// it is); `None` when the result is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

/// Makes an article body safe to serve: removes scripts, styles, forms,
/// frames, event handlers and every URL with a scheme other than `mailto:`
/// (so `javascript:` links go, and so do images and links to other
/// origins: a page of this node loads and points to nothing outside it).
/// Relative references to the bundle's own media are rewritten to their
/// URLs on this node; other relative references are dropped, except
/// in-page anchors.
pub(crate) fn sanitize_body(html: &str, media: HashMap<String, String>) -> String {
    let mut b = ammonia::Builder::default();
    b.url_schemes(HashSet::from(["mailto"]))
        .url_relative(ammonia::UrlRelative::Custom(Box::new(MediaRefs(media))))
        // Links inside a story lead nowhere else on the web, but a mailto:
        // link opens another program: keep no referrer in any case.
        .link_rel(Some("noopener noreferrer nofollow"));
    b.clean(html).to_string()
}

/// Maps a body's relative references: to its own media on this node, or
/// to an in-page anchor; anything else is dropped.
struct MediaRefs(HashMap<String, String>);

impl<'a> ammonia::UrlRelativeEvaluate<'a> for MediaRefs {
    fn evaluate<'url>(&self, url: &'url str) -> Option<Cow<'url, str>> {
        if let Some(frag) = url.strip_prefix('#') {
            let ok = !frag.is_empty()
                && frag.len() <= 128
                && frag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            return ok.then_some(Cow::Borrowed(url));
        }
        let path = url.strip_prefix("./").unwrap_or(url);
        let decoded = percent_decode(path)?;
        self.0.get(&decoded).map(|u| Cow::Owned(u.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions() {
        assert_eq!(dir_of("ar"), "rtl");
        assert_eq!(dir_of("fa-IR"), "rtl");
        assert_eq!(dir_of("ru"), "ltr");
        assert_eq!(dir_of("en"), "ltr");
        assert_eq!(dir_of("az-Arab"), "rtl");
        assert_eq!(dir_of("ku-Latn"), "ltr");
        assert_eq!(lang_attr("x\" onload=\""), "und");
    }

    #[test]
    fn rfc3339_is_clamped() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(Timestamp(u64::MAX)), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn sanitizer_removes_active_content_and_other_origins() {
        let mut media = HashMap::new();
        media.insert("media/a.png".to_owned(), "/media/x/media/a.png".to_owned());
        let html = concat!(
            "<p onclick=\"evil()\">Hi<script>alert(1)</script></p>",
            "<img src=\"media/a.png\" onerror=\"evil()\" alt=\"a\">",
            "<img src=\"https://tracker.example/p.gif\">",
            "<img src=\"//tracker.example/p.gif\">",
            "<a href=\"javascript:alert(1)\">j</a>",
            "<a href=\"JaVaScRiPt:alert(1)\">k</a>",
            "<a href=\"https://elsewhere.example/\">out</a>",
            "<a href=\"#fn-1\">note</a>",
            "<style>body{}</style><iframe src=\"media/a.png\"></iframe>",
        );
        let out = sanitize_body(html, media);
        for bad in [
            "script",
            "onclick",
            "onerror",
            "javascript",
            "JaVaScRiPt",
            "tracker",
            "elsewhere",
            "<style",
            "<iframe",
        ] {
            assert!(!out.contains(bad), "{bad} left in {out}");
        }
        assert!(out.contains("src=\"/media/x/media/a.png\""), "{out}");
        assert!(out.contains("href=\"#fn-1\""), "{out}");
        assert!(out.contains(">out</a>"), "{out}");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("media/%D1%84.png").as_deref(),
            Some("media/ф.png")
        );
        assert_eq!(percent_decode("a%2").as_deref(), Some("a%2"));
        assert_eq!(percent_decode("%FF"), None);
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(url_param("a b&c=ф~"), "a%20b%26c%3D%D1%84~");
        let id = BundleId([0; 32]);
        assert_eq!(
            media_url(&id, "media/ф a.png"),
            format!("/media/{id}/media/%D1%84%20a.png")
        );
    }
}
