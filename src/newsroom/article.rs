//! Reading an article (Markdown or HTML, with optional YAML front matter)
//! into a body and its metadata.

use serde::Deserialize;
use thiserror::Error;

use crate::proto::Timestamp;

/// Why an article could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ArticleError {
    /// The YAML front matter is not valid.
    #[error("front matter: {0}")]
    FrontMatter(String),
    /// The front matter opens with `---` but never closes.
    #[error("front matter starts with '---' but has no closing '---' line")]
    UnclosedFrontMatter,
    /// A date is not RFC 3339 or YYYY-MM-DD.
    #[error("{field}: {value:?} is not a date (use 2026-05-01 or 2026-05-01T12:00:00Z)")]
    BadDate {
        /// The field.
        field: &'static str,
        /// The text.
        value: String,
    },
}

/// Metadata an article's front matter may carry; every field is optional
/// and command-line flags override it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontMatter {
    /// Headline.
    pub title: Option<String>,
    /// Language tag.
    #[serde(alias = "language")]
    pub lang: Option<String>,
    /// One author.
    pub author: Option<String>,
    /// Several authors.
    #[serde(default)]
    pub authors: Vec<String>,
    /// Section.
    pub section: Option<String>,
    /// Original URL.
    #[serde(alias = "original_url")]
    pub url: Option<String>,
    /// Summary.
    #[serde(alias = "description")]
    pub summary: Option<String>,
    /// First publication date.
    #[serde(alias = "published")]
    pub date: Option<String>,
    /// The newsroom's own id of the story, stable across versions.
    pub story: Option<String>,
}

/// An article read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    /// Metadata from the front matter.
    pub front: FrontMatter,
    /// The body as HTML.
    pub html: String,
    /// A title found in the body (first `# ` heading, `<h1>` or `<title>`).
    pub body_title: Option<String>,
}

/// The format of an article file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CommonMark with tables and strikethrough.
    Markdown,
    /// HTML, kept as written (readers' gateways sanitize it).
    Html,
}

impl Format {
    /// Chooses by file extension: `.html`/`.htm` are HTML, anything else Markdown.
    pub fn from_path(path: &std::path::Path) -> Self {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("html" | "htm") => Format::Html,
            _ => Format::Markdown,
        }
    }
}

fn split_front_matter(text: &str) -> Result<(Option<&str>, &str), ArticleError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return Ok((None, text));
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return Ok((Some(&rest[..offset]), &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    Err(ArticleError::UnclosedFrontMatter)
}

/// Parses a date: RFC 3339, or a bare `YYYY-MM-DD` taken as midnight UTC.
pub fn parse_date(field: &'static str, value: &str) -> Result<Timestamp, ArticleError> {
    let v = value.trim();
    let full = if v.len() == 10 {
        format!("{v}T00:00:00Z")
    } else {
        v.to_owned()
    };
    humantime::parse_rfc3339_weak(&full)
        .map(Timestamp::from_system)
        .map_err(|_| ArticleError::BadDate {
            field,
            value: value.to_owned(),
        })
}

fn between<'a>(html: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let lower = html.to_ascii_lowercase();
    let start = lower.find(open)?;
    let after = lower[start..].find('>')? + start + 1;
    let end = lower[after..].find(close)? + after;
    Some(&html[after..end])
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads an article's text.
pub fn parse(text: &str, format: Format) -> Result<Article, ArticleError> {
    let (front, body) = split_front_matter(text)?;
    let front: FrontMatter = match front {
        Some(yaml) if !yaml.trim().is_empty() => {
            serde_norway::from_str(yaml).map_err(|e| ArticleError::FrontMatter(e.to_string()))?
        }
        _ => FrontMatter::default(),
    };
    let (html, body_title) = match format {
        Format::Markdown => {
            let title = body
                .lines()
                .find_map(|l| l.strip_prefix("# ").map(|t| t.trim().to_owned()));
            let opts = pulldown_cmark::Options::ENABLE_TABLES
                | pulldown_cmark::Options::ENABLE_STRIKETHROUGH
                | pulldown_cmark::Options::ENABLE_FOOTNOTES;
            let parser = pulldown_cmark::Parser::new_ext(body, opts);
            let mut html = String::with_capacity(body.len() * 3 / 2);
            pulldown_cmark::html::push_html(&mut html, parser);
            (html, title)
        }
        Format::Html => {
            let title = between(body, "<h1", "</h1>")
                .or_else(|| between(body, "<title", "</title>"))
                .map(strip_tags)
                .filter(|t| !t.is_empty());
            (body.to_owned(), title)
        }
    };
    Ok(Article {
        front,
        html,
        body_title,
    })
}

/// Percent-encodes what a Markdown renderer encodes in a link target:
/// everything but ASCII letters, digits and `-._~/`.
fn percent_encode(name: &str) -> String {
    const LINK: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(name, LINK).to_string()
}

/// Points references to a media file at its place in the bundle
/// (`media/NAME`): `src` and `href` attributes naming the bare file name,
/// as written or percent-encoded.
pub fn rewrite_media_refs(html: &str, file_name: &str) -> String {
    let mut out = html.to_owned();
    let encoded = percent_encode(file_name);
    let mut forms = vec![file_name.to_owned()];
    if encoded != file_name {
        forms.push(encoded);
    }
    for form in &forms {
        for attr in ["src", "href"] {
            for quote in ['"', '\''] {
                for prefix in ["", "./"] {
                    let from = format!("{attr}={quote}{prefix}{form}{quote}");
                    let to = format!("{attr}={quote}media/{form}{quote}");
                    out = out.replace(&from, &to);
                }
            }
        }
    }
    out
}

/// The media type of an image or other media file, by extension.
pub fn media_type_of(path: &std::path::Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "svg" => "image/svg+xml",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" => "audio/ogg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_and_markdown() {
        let a = parse(
            "---\ntitle: Заголовок\nlang: ru\nauthors: [A, B]\n---\n# Heading\n\nТекст.\n",
            Format::Markdown,
        )
        .unwrap();
        assert_eq!(a.front.title.as_deref(), Some("Заголовок"));
        assert_eq!(a.front.authors, vec!["A", "B"]);
        assert_eq!(a.body_title.as_deref(), Some("Heading"));
        assert!(a.html.contains("<p>Текст.</p>"));
    }

    #[test]
    fn unclosed_front_matter_is_an_error() {
        assert_eq!(
            parse("---\ntitle: x\n", Format::Markdown),
            Err(ArticleError::UnclosedFrontMatter)
        );
    }

    #[test]
    fn unknown_front_matter_field_is_an_error() {
        assert!(matches!(
            parse("---\ntitel: x\n---\nbody", Format::Markdown),
            Err(ArticleError::FrontMatter(_))
        ));
    }

    #[test]
    fn html_title() {
        let a = parse(
            "<html><title>T</title><h1 class=x>Big <b>news</b></h1></html>",
            Format::Html,
        )
        .unwrap();
        assert_eq!(a.body_title.as_deref(), Some("Big news"));
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("date", "1970-01-02").unwrap(), Timestamp(86400));
        assert_eq!(
            parse_date("date", "1970-01-01T00:01:00Z").unwrap(),
            Timestamp(60)
        );
        assert!(parse_date("date", "yesterday").is_err());
    }

    #[test]
    fn media_refs() {
        let html = r#"<img src="a.png"> <img src="./a.png"> <img src="xa.png">"#;
        assert_eq!(
            rewrite_media_refs(html, "a.png"),
            r#"<img src="media/a.png"> <img src="media/a.png"> <img src="xa.png">"#
        );
        assert_eq!(
            rewrite_media_refs(r#"<img src="%D1%84.png">"#, "ф.png"),
            r#"<img src="media/%D1%84.png">"#
        );
    }
}
