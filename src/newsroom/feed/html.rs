//! Text and HTML from feeds and article pages: plain text of titles and
//! summaries, cleaned bodies, the article within a page, and a small tag
//! scanner for the HTML ammonia writes.

use feed_rs::model::Text;

/// A feed text field as plain text: HTML titles and summaries lose their
/// tags and entities.
pub(super) fn text_of(t: &Text) -> String {
    let ct = t.content_type.to_string();
    let text = if ct.contains("html") {
        html_to_text(&t.content)
    } else {
        t.content.clone()
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Plain text of an HTML fragment: tags dropped, the common entities
/// decoded. Used for titles and summaries only; bodies stay HTML.
pub fn html_to_text(html: &str) -> String {
    let cleaned = ammonia::Builder::empty().clean(html).to_string();
    decode_entities(&cleaned)
}

pub(super) fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| match &rest[1..e] {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
                .ok()
                .and_then(char::from_u32),
            n if n.starts_with('#') => n[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        });
        match (decoded, end) {
            (Some(c), Some(e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Plain text as HTML paragraphs, one per blank-line-separated block.
pub(super) fn plain_to_html(text: &str) -> String {
    text.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| format!("<p>{}</p>\n", escape_html(p)))
        .collect()
}

/// Truncates to at most `max` bytes at a character boundary, marking the
/// cut with an ellipsis.
pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let ellipsis = '…';
    let mut end = max.saturating_sub(ellipsis.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &s[..end])
}

fn cleaner() -> ammonia::Builder<'static> {
    let mut b = ammonia::Builder::default();
    // Kept so that the article can be found in a whole page; script and
    // style (with their content) are dropped by ammonia's defaults, and so
    // are event handlers and script URLs.
    b.add_tags(["article", "main", "section", "figure", "figcaption"]);
    b.add_clean_content_tags(["title", "template", "iframe", "object", "svg", "math"]);
    b
}

/// Cleans article HTML from a feed: scripts, styles, event handlers and
/// unknown elements removed, the text and structure kept.
pub fn clean_html(html: &str) -> String {
    cleaner().clean(html).to_string()
}

/// The article content of a whole page: the first `<article>` element,
/// else `<main>`, else the page's body; cleaned as by [`clean_html`].
pub fn extract_article(page: &str) -> String {
    let cleaned = clean_html(page);
    for name in ["article", "main"] {
        if let Some(inner) = element_inner(&cleaned, name) {
            return inner.trim().to_owned();
        }
    }
    cleaned.trim().to_owned()
}

/// A page's text in the character set its server or its own `<meta>`
/// names (Russian and Arabic sites still use windows-1251 and the like),
/// else UTF-8; undecodable bytes become U+FFFD.
pub fn decode_page(bytes: &[u8], content_type: Option<&str>) -> String {
    fn charset_in(text: &str) -> Option<&str> {
        let lower = text.to_ascii_lowercase();
        let at = lower.find("charset=")? + "charset=".len();
        let rest = text[at..].trim_start_matches(['"', '\'', ' ']);
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        Some(&rest[..end])
    }
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(2048)]);
    let encoding = encoding_rs::Encoding::for_bom(bytes)
        .map(|(e, _)| e)
        .or_else(|| {
            content_type
                .and_then(charset_in)
                .and_then(|c| encoding_rs::Encoding::for_label(c.as_bytes()))
        })
        .or_else(|| charset_in(&head).and_then(|c| encoding_rs::Encoding::for_label(c.as_bytes())))
        .unwrap_or(encoding_rs::UTF_8);
    encoding.decode(bytes).0.into_owned()
}

/// One tag in serialized HTML.
#[derive(Debug)]
pub(super) struct Tag {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) name: String,
    pub(super) closing: bool,
    pub(super) self_closing: bool,
}

/// The next tag at or after `from`. Meant for HTML as ammonia serializes
/// it (no comments, `<` escaped in text), but safe on any input: quoted
/// attribute values are skipped whole, so a `>` inside one does not end
/// the tag.
pub(super) fn next_tag(html: &str, mut from: usize) -> Option<Tag> {
    let bytes = html.as_bytes();
    loop {
        let start = from + html.get(from..)?.find('<')?;
        let mut i = start + 1;
        let closing = bytes.get(i) == Some(&b'/');
        if closing {
            i += 1;
        }
        let name_start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-') {
            i += 1;
        }
        if i == name_start {
            from = start + 1;
            continue;
        }
        let name = html[name_start..i].to_ascii_lowercase();
        let mut quote = None;
        while i < bytes.len() {
            match (quote, bytes[i]) {
                (None, b'"' | b'\'') => quote = Some(bytes[i]),
                (Some(q), c) if c == q => quote = None,
                (None, b'>') => break,
                _ => {}
            }
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        let self_closing = bytes[i - 1] == b'/';
        return Some(Tag {
            start,
            end: i + 1,
            name,
            closing,
            self_closing,
        });
    }
}

/// The inner HTML of the first `name` element, nested ones counted.
fn element_inner<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let mut pos = 0;
    let open = loop {
        let t = next_tag(html, pos)?;
        pos = t.end;
        if t.name == name && !t.closing && !t.self_closing {
            break t;
        }
    };
    let mut depth = 1usize;
    while let Some(t) = next_tag(html, pos) {
        pos = t.end;
        if t.name != name || t.self_closing {
            continue;
        }
        if t.closing {
            depth -= 1;
            if depth == 0 {
                return Some(&html[open.end..t.start]);
            }
        } else {
            depth += 1;
        }
    }
    Some(&html[open.end..])
}

/// The value span (start, end) of attribute `attr` in the tag text, when
/// written as `attr="..."` or `attr='...'`.
pub(super) fn attr_span(tag: &str, attr: &str) -> Option<(usize, usize)> {
    let lower = tag.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut from = 0;
    while let Some(i) = lower[from..].find(attr).map(|i| i + from) {
        from = i + attr.len();
        let before_ok = i > 0 && bytes[i - 1].is_ascii_whitespace();
        let mut j = i + attr.len();
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        if !before_ok || bytes.get(j) != Some(&b'=') {
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        let q = *bytes.get(j)?;
        if q != b'"' && q != b'\'' {
            continue;
        }
        let end = lower[j + 1..].find(q as char)? + j + 1;
        return Some((j + 1, end));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn article_extraction_prefers_article_then_main() {
        let page = r#"<html><head><title>Site</title><style>p{}</style>
            <script>alert(1)</script></head><body><nav>Menu</nav>
            <main><article class="story"><h1>Headline</h1><p onclick="x()">Text <b>bold</b>.</p>
            <article><p>nested</p></article><p>after</p></article></main>
            <footer>Footer</footer></body></html>"#;
        let a = extract_article(page);
        assert!(a.starts_with("<h1>Headline</h1>"), "{a}");
        assert!(a.contains("<p>Text <b>bold</b>.</p>"), "{a}");
        assert!(a.contains("nested") && a.ends_with("<p>after</p>"), "{a}");
        assert!(!a.contains("Menu") && !a.contains("Footer"), "{a}");
        assert!(!a.contains("alert") && !a.contains("onclick"), "{a}");

        let main_only = extract_article("<body><p>x</p><main><p>in main</p></main></body>");
        assert_eq!(main_only, "<p>in main</p>");
        let body_only = extract_article("<html><title>T</title><body><p>all</p></body></html>");
        assert_eq!(body_only, "<p>all</p>");
    }

    #[test]
    fn tag_scanner_skips_quoted_gt() {
        let html = r#"<img alt="a > b" src="x.png"><p>t</p>"#;
        let t = next_tag(html, 0).unwrap();
        assert_eq!(t.name, "img");
        assert_eq!(&html[t.start..t.end], r#"<img alt="a > b" src="x.png">"#);
        let (s, e) = attr_span(&html[t.start..t.end], "src").unwrap();
        assert_eq!(&html[s..e], "x.png");
        assert!(attr_span(r#"<img data-src="y">"#, "src").is_none());
    }

    #[test]
    fn text_fields() {
        assert_eq!(
            decode_entities("a &amp; b &#1092; &#x444; &bogus; &"),
            "a & b ф ф &bogus; &"
        );
        assert_eq!(html_to_text("<b>Big</b> &amp; <i>bold</i>"), "Big & bold");
        assert_eq!(truncate("абв", 4), "…");
        assert_eq!(truncate("abcdef", 5), "ab…");
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(plain_to_html("a < b\n\nc"), "<p>a &lt; b</p>\n<p>c</p>\n");
    }

    #[test]
    fn pages_are_decoded_by_their_charset() {
        // "Мир" in windows-1251.
        let cp1251 = b"<p>\xcc\xe8\xf0</p>";
        assert_eq!(
            decode_page(cp1251, Some("text/html; charset=windows-1251")),
            "<p>Мир</p>"
        );
        let with_meta = [
            &b"<head><meta charset=\"windows-1251\"></head><p>"[..],
            &b"\xcc\xe8\xf0</p>"[..],
        ]
        .concat();
        assert!(decode_page(&with_meta, Some("text/html")).ends_with("<p>Мир</p>"));
        assert_eq!(decode_page("<p>Мир</p>".as_bytes(), None), "<p>Мир</p>");
    }
}
