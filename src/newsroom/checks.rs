//! Checks of an article before it is signed: mistakes a signature would
//! make permanent (a story can be corrected, never unsigned).
//!
//! Refused unless `--force` is given: republishing exactly what the
//! story's current version says, a language that is not a BCP 47 tag, an
//! empty body, and a reference to a media file that is not given. Refused
//! always: a body over the protocol's limit ([`MAX_BLOB_BYTES`]) or a
//! story over [`MAX_BUNDLE_BYTES`], which no reader would take. Only a
//! warning: a media file given that the text never refers to (it may be
//! meant as an attachment).

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::article::rewrite_media_refs;
use super::draft::{Draft, Relation, content_entries};
use super::feed::html_to_text;
use super::{Fingerprint, Newsroom, NewsroomError};
use crate::proto::StoryId;
use crate::proto::limits::{MAX_BLOB_BYTES, MAX_BUNDLE_BYTES, MAX_LANGUAGE};

/// Why an article was not signed.
#[derive(Debug, Error)]
pub enum CheckError {
    /// The story's current version says exactly this already.
    #[error(
        "story {story} version {version} already says exactly this (same text, media and metadata); nothing new to publish. Pass --force to sign it again anyway"
    )]
    Identical {
        /// The story.
        story: StoryId,
        /// Its current version.
        version: u32,
    },
    /// The language is not a BCP 47 tag.
    #[error(
        "--lang {0:?} is not a BCP 47 language tag (like en, be, pt-BR or zh-Hant); fix it in --lang or the front matter's `lang:`, or pass --force to sign it anyway"
    )]
    BadLanguage(String),
    /// The article has no text, no media and refers to none.
    #[error("{}: the article has no text; pass --force to publish an empty story", .0.display())]
    EmptyBody(PathBuf),
    /// The article refers to a media file that is not given.
    #[error(
        "{}: the article refers to {name:?}, but no --image {name} is given; add --image PATH/{name}, or pass --force to publish with the reference broken",
        path.display()
    )]
    MissingMedia {
        /// The article.
        path: PathBuf,
        /// The name it refers to.
        name: String,
    },
    /// The body is larger than one blob may be.
    #[error(
        "{}: the article's body is {size} bytes, more than the protocol's limit of {MAX_BLOB_BYTES} bytes for one file of a story (MAX_BLOB_BYTES); split it into several stories",
        path.display()
    )]
    BodyTooLarge {
        /// The article.
        path: PathBuf,
        /// The body's size.
        size: u64,
    },
    /// The body and media together are larger than a bundle may be.
    #[error(
        "the story's body and media are {size} bytes, more than the protocol's limit of {MAX_BUNDLE_BYTES} bytes for one story (MAX_BUNDLE_BYTES); leave some --image files out"
    )]
    BundleTooLarge {
        /// The sum of the blobs' sizes.
        size: u64,
    },
}

/// Whether `tag` has the shape of a BCP 47 language tag: a primary
/// language subtag of 2 or 3 letters, then subtags of 1 to 8 letters or
/// digits, separated by `-` (the registry itself is not consulted).
pub fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    primary_ok
        && tag.len() <= MAX_LANGUAGE
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The values of the `src` attributes in `html`, as written.
fn src_values(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("src=") {
        rest = &rest[i + 4..];
        let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        rest = &rest[1..];
        let Some(end) = rest.find(quote) else {
            break;
        };
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

/// A `src` that names a file beside the article: no scheme, not absolute,
/// not a fragment.
fn is_local_ref(value: &str) -> bool {
    let v = value.trim();
    !v.is_empty()
        && !v.starts_with('/')
        && !v.starts_with('#')
        && !v.split('/').next().is_some_and(|first| first.contains(':'))
}

/// Checks the article at `path` drafted as `draft` (with media from
/// `images`), before it is signed. Returns the warnings to show; a refusal
/// is an error. With `force`, only the limits of the protocol refuse.
pub fn check_article(
    path: &Path,
    images: &[PathBuf],
    draft: &Draft,
    force: bool,
) -> Result<Vec<String>, CheckError> {
    let (body, entries) = content_entries(&draft.body_html, &draft.media);
    if body.len() as u64 > MAX_BLOB_BYTES {
        return Err(CheckError::BodyTooLarge {
            path: path.to_owned(),
            size: body.len() as u64,
        });
    }
    let total: u64 = entries.iter().map(|e| e.size).sum();
    if total > MAX_BUNDLE_BYTES {
        return Err(CheckError::BundleTooLarge { size: total });
    }
    let mut warnings = Vec::new();
    for (m, file) in draft.media.iter().zip(images) {
        if rewrite_media_refs(&draft.body_html, &m.name) == draft.body_html {
            warnings.push(format!(
                "--image {}: the article never refers to {}; it is bundled, but readers will not see it in the text",
                file.display(),
                m.name
            ));
        }
    }
    if force {
        return Ok(warnings);
    }
    if !is_language_tag(&draft.language) {
        return Err(CheckError::BadLanguage(draft.language.clone()));
    }
    // A picture alone is not empty.
    if html_to_text(&body).trim().is_empty()
        && draft.media.is_empty()
        && src_values(&body).is_empty()
    {
        return Err(CheckError::EmptyBody(path.to_owned()));
    }
    for value in src_values(&body) {
        // Markdown percent-encodes what it links to.
        let decoded = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        let name = decoded.trim().trim_start_matches("./");
        let given = name
            .strip_prefix("media/")
            .is_some_and(|n| draft.media.iter().any(|m| m.name == n));
        if is_local_ref(value) && !given {
            return Err(CheckError::MissingMedia {
                path: path.to_owned(),
                name: name.to_owned(),
            });
        }
    }
    Ok(warnings)
}

impl Newsroom {
    /// Refuses (unless `force`) a draft that says exactly what its story's
    /// current version says, found through the index.
    pub fn check_republication(&self, draft: &Draft, force: bool) -> Result<(), NewsroomError> {
        if force {
            return Ok(());
        }
        let story = match draft.relation {
            Relation::Story => draft.story,
            Relation::CorrectionOf(of) | Relation::RetractionOf(of) => {
                self.with_index(|i| i.by_id(&of).map(|e| e.story))?
            }
        };
        let Some(story) = story else {
            return Ok(());
        };
        let current = self.with_index(|i| i.latest(&story).cloned())?;
        match current {
            Some(e) if e.fingerprint == Fingerprint::of_draft(draft) => {
                Err(CheckError::Identical {
                    story,
                    version: e.version,
                }
                .into())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags() {
        for good in [
            "en",
            "be",
            "und",
            "pt-BR",
            "zh-Hant-TW",
            "sr-Latn",
            "de-1996",
        ] {
            assert!(is_language_tag(good), "{good}");
        }
        for bad in [
            "",
            "e",
            "english",
            "en_US",
            "en-",
            "-en",
            "en--us",
            "ru-123456789",
            "€n",
        ] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn local_references() {
        let html = r#"<img src="photo.jpg"><img src='https://x.example/a.png'><img src="/abs.png"><img src="media/given.png">"#;
        let local: Vec<&str> = src_values(html)
            .into_iter()
            .filter(|v| is_local_ref(v))
            .collect();
        assert_eq!(local, vec!["photo.jpg", "media/given.png"]);
        assert!(!is_local_ref("data:image/png;base64,AAAA"));
    }
}
