//! Story drafts: everything a story version says before it is signed,
//! built the same way for a single article and for a feed item.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::article::{self, ArticleError, Format};
use super::{Newsroom, NewsroomError};
use crate::files::{self, FilesError};
use crate::proto::limits::MAX_BLOB_BYTES;
use crate::proto::{
    BODY_MEDIA_TYPE, BODY_PATH, BlobHash, BundleId, CertId, Entry, FORMAT_VERSION, Kind, Manifest,
    Metadata, PolicyError, PublicKey, SecretKey, StoryId, Timestamp,
};

/// Why a story draft could not be made.
#[derive(Debug, Error)]
pub enum DraftError {
    /// The article or a media file could not be read (or is too large).
    #[error(transparent)]
    File(#[from] FilesError),
    /// The article's front matter or a date in it is not valid.
    #[error("{path}: {source}", path = .path.display())]
    Article {
        /// The article.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: ArticleError,
    },
    /// Neither the flags, the front matter nor the body give a title.
    #[error("{}: no title: pass --title or put `title:` in the front matter", .0.display())]
    NoTitle(PathBuf),
    /// A media file of a type bundles do not carry.
    #[error("{}: unsupported media type (png, jpeg, gif, webp, avif, svg, mp3, ogg, mp4, webm, pdf)", .0.display())]
    UnsupportedMedia(PathBuf),
    /// A media file whose name cannot be a path in a bundle.
    #[error("{}: the file name is not usable in a bundle", .0.display())]
    BadMediaName(PathBuf),
    /// Two media files of one story with the same name.
    #[error("{path}: two media files are named {name}", path = .path.display())]
    DuplicateMedia {
        /// The second file.
        path: PathBuf,
        /// The name both have.
        name: String,
    },
    /// The draft breaks a rule of the manifest (a length, a count).
    #[error("not a valid story: {0}")]
    Invalid(#[source] PolicyError),
}

/// A media file to bundle with a story.
#[derive(Debug, Clone)]
pub struct MediaFile {
    /// File name, used as `media/NAME` in the bundle.
    pub name: String,
    /// MIME type.
    pub media_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What a new bundle is to earlier ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Relation {
    /// A new story, or a new version of the story given by `story`.
    #[default]
    Story,
    /// A correction of the story that bundle belongs to.
    CorrectionOf(BundleId),
    /// A retraction of the story that bundle belongs to.
    RetractionOf(BundleId),
}

/// Everything needed to sign a story version.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Headline.
    pub title: String,
    /// Language tag.
    pub language: String,
    /// Bylines.
    pub authors: Vec<String>,
    /// Section.
    pub section: Option<String>,
    /// Original URL.
    pub original_url: Option<String>,
    /// Summary.
    pub summary: Option<String>,
    /// First publication time; defaults to now for a new story.
    pub published: Option<Timestamp>,
    /// Body as HTML.
    pub body_html: String,
    /// Media files.
    pub media: Vec<MediaFile>,
    /// The story this is a version of; a new id when `None`.
    pub story: Option<StoryId>,
    /// Correction, retraction or plain story.
    pub relation: Relation,
}

/// The body as it will be signed (media references pointed at
/// `media/NAME`) and the entries a bundle of this body and media lists, in
/// blob order. Feed import compares these with a published version to tell
/// whether an item changed.
pub fn content_entries(body_html: &str, media: &[MediaFile]) -> (String, Vec<Entry>) {
    let mut body_html = body_html.to_owned();
    for m in media {
        body_html = article::rewrite_media_refs(&body_html, &m.name);
    }
    let mut entries = Vec::with_capacity(media.len() + 1);
    entries.push(Entry {
        path: BODY_PATH.into(),
        media_type: BODY_MEDIA_TYPE.into(),
        size: body_html.len() as u64,
        hash: BlobHash::of(body_html.as_bytes()),
    });
    for m in media {
        entries.push(Entry {
            path: format!("media/{}", m.name),
            media_type: m.media_type.clone(),
            size: m.bytes.len() as u64,
            hash: BlobHash::of(&m.bytes),
        });
    }
    (body_html, entries)
}

/// The parts of a story version, gathered from wherever they come (an
/// article with its front matter and flags, a feed item, the demo's
/// samples), and turned into a [`Draft`] by one check of the manifest's
/// rules, so that signing cannot fail for a reason known in advance.
#[derive(Debug, Clone, Default)]
pub struct DraftBuilder {
    /// Headline.
    pub title: String,
    /// Language tag; `und` when none is known.
    pub language: Option<String>,
    /// Bylines.
    pub authors: Vec<String>,
    /// Section.
    pub section: Option<String>,
    /// Original URL.
    pub original_url: Option<String>,
    /// Summary.
    pub summary: Option<String>,
    /// First publication time.
    pub published: Option<Timestamp>,
    /// Body as HTML.
    pub body_html: String,
    /// Media files.
    pub media: Vec<MediaFile>,
    /// The story this is a version of.
    pub story: Option<StoryId>,
    /// Correction, retraction or plain story.
    pub relation: Relation,
}

/// What the person publishing an article says about it besides the file;
/// each field given overrides the article's front matter.
#[derive(Debug, Clone, Default)]
pub struct ArticleDraft {
    /// Headline.
    pub title: Option<String>,
    /// Language tag.
    pub lang: Option<String>,
    /// Bylines; when empty, the front matter's.
    pub authors: Vec<String>,
    /// Section.
    pub section: Option<String>,
    /// Original URL.
    pub url: Option<String>,
    /// Summary.
    pub summary: Option<String>,
    /// First publication date (RFC 3339 or YYYY-MM-DD).
    pub date: Option<String>,
    /// Story id: 32 hex digits, or the newsroom's own name for it.
    pub story: Option<String>,
    /// Media files, referred to by file name in the article.
    pub images: Vec<PathBuf>,
    /// The bundle (id, id prefix or `.kolokol` file) this corrects.
    pub correction_of: Option<String>,
    /// The bundle (id, id prefix or `.kolokol` file) this retracts.
    pub retraction_of: Option<String>,
}

impl DraftBuilder {
    /// A builder for the article `text` read from `path` (Markdown, or
    /// HTML by its extension): its body, and its metadata from `over`,
    /// then the front matter, then the body's first heading. A story name
    /// that is not a story id is turned into one under `publisher`.
    pub fn from_article(
        path: &Path,
        text: &str,
        over: &ArticleDraft,
        publisher: &PublicKey,
    ) -> Result<Self, DraftError> {
        let article_err = |source| DraftError::Article {
            path: path.to_owned(),
            source,
        };
        let art = article::parse(text, Format::from_path(path)).map_err(article_err)?;
        let front = art.front;
        let title = over
            .title
            .clone()
            .or(front.title)
            .or(art.body_title)
            .ok_or_else(|| DraftError::NoTitle(path.to_owned()))?;
        let mut authors = over.authors.clone();
        if authors.is_empty() {
            authors = front.authors;
            authors.extend(front.author);
        }
        let published = match over.date.clone().or(front.date) {
            Some(d) => Some(article::parse_date("date", &d).map_err(article_err)?),
            None => None,
        };
        let story = over.story.clone().or(front.story).map(|s| {
            s.parse::<StoryId>()
                .unwrap_or_else(|_| StoryId::derive(publisher, &s))
        });
        Ok(Self {
            title,
            language: over.lang.clone().or(front.lang),
            authors,
            section: over.section.clone().or(front.section),
            original_url: over.url.clone().or(front.url),
            summary: over.summary.clone().or(front.summary),
            published,
            body_html: art.html,
            media: Vec::new(),
            story,
            relation: Relation::Story,
        })
    }

    /// Adds the media file at `path`, named in the bundle by its file name
    /// and typed by its extension.
    pub fn add_media_file(&mut self, path: &Path) -> Result<(), DraftError> {
        let media_type = article::media_type_of(path)
            .ok_or_else(|| DraftError::UnsupportedMedia(path.to_owned()))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| crate::proto::is_safe_path(n))
            .ok_or_else(|| DraftError::BadMediaName(path.to_owned()))?
            .to_owned();
        if self.media.iter().any(|m| m.name == name) {
            return Err(DraftError::DuplicateMedia {
                path: path.to_owned(),
                name,
            });
        }
        let bytes = files::read_bounded(path, MAX_BLOB_BYTES)?;
        self.media.push(MediaFile {
            name,
            media_type: media_type.into(),
            bytes,
        });
        Ok(())
    }

    /// The draft, checked against the manifest's rules.
    pub fn build(self) -> Result<Draft, DraftError> {
        let draft = Draft {
            title: self.title,
            language: self.language.unwrap_or_else(|| "und".into()),
            authors: self.authors,
            section: self.section,
            original_url: self.original_url,
            summary: self.summary,
            published: self.published,
            body_html: self.body_html,
            media: self.media,
            story: self.story,
            relation: self.relation,
        };
        check(&draft)?;
        Ok(draft)
    }
}

/// Checks a draft as a manifest of it would be checked, with stand-ins for
/// what only signing gives (key, certificate, sequence).
fn check(draft: &Draft) -> Result<(), DraftError> {
    let (_, entries) = content_entries(&draft.body_html, &draft.media);
    let probe = Manifest {
        format: FORMAT_VERSION,
        publisher: SecretKey::from_seed(&[0; 32]).public(),
        certificate: CertId::of(b""),
        story: StoryId([0; 16]),
        version: 1,
        kind: Kind::Story,
        sequence: 1,
        supersedes: None,
        signed_at: Timestamp(0),
        metadata: Metadata {
            title: draft.title.clone(),
            language: draft.language.clone(),
            authors: draft.authors.clone(),
            section: draft.section.clone(),
            published: Timestamp(0),
            updated: None,
            original_url: draft.original_url.clone(),
            summary: draft.summary.clone(),
        },
        entries,
    };
    probe.validate().map_err(DraftError::Invalid)
}

impl Newsroom {
    /// The draft of the article at `path`, with what `over` says about it:
    /// its media files read, and the bundle it corrects or retracts found
    /// among this newsroom's.
    pub fn article_draft(&self, path: &Path, over: &ArticleDraft) -> Result<Draft, NewsroomError> {
        let text = match files::read_bounded_text(path, MAX_BLOB_BYTES) {
            Ok(t) => t,
            // Named as the protocol's limit on a story's body.
            Err(FilesError::TooLarge { size, .. }) => {
                return Err(super::checks::CheckError::BodyTooLarge {
                    path: path.to_owned(),
                    size,
                }
                .into());
            }
            Err(e) => return Err(DraftError::from(e).into()),
        };
        let mut builder = DraftBuilder::from_article(path, &text, over, &self.root_public())?;
        for image in &over.images {
            builder.add_media_file(image)?;
        }
        builder.relation = match (&over.correction_of, &over.retraction_of) {
            (Some(id), _) => Relation::CorrectionOf(self.find_bundle(id)?),
            (None, Some(id)) => Relation::RetractionOf(self.find_bundle(id)?),
            (None, None) => Relation::Story,
        };
        Ok(builder.build()?)
    }
}
