//! The signed protocol objects: key certificates, revocations, manifests
//! and heads. Their exact bytes are described in `docs/protocol.md`.

use serde::{Deserialize, Serialize};

use super::error::DecodeError;
use super::ids::{BlobHash, BundleId, CertId, StoryId};
use super::keys::{PublicKey, SecretKey};
use super::limits::*;
use super::policy::PolicyError;
use super::signed::{ObjectKind, sign_and_encode};
use super::time::Timestamp;

/// Format version of every object this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// Format of a revocation that carries a sequence cut-off
/// ([`Revocation::last_sequence`]); format 1 revocations, without one, are
/// still read.
pub const REVOCATION_FORMAT_CUTOFF: u16 = 2;

/// A root key's statement that a signing key may sign for the publisher
/// during a window of time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCertificate {
    /// Always [`FORMAT_VERSION`].
    pub format: u16,
    /// The publisher's root key, which signs this certificate.
    pub publisher: PublicKey,
    /// The certified signing key.
    pub signing_key: PublicKey,
    /// Increases with each certificate the publisher issues.
    pub serial: u64,
    /// The first second at which signatures by the key are valid.
    pub not_before: Timestamp,
    /// The last second at which signatures by the key are valid.
    pub not_after: Timestamp,
    /// What the key may sign.
    pub scope: Scope,
}

/// Limits on what a signing key may sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Scope {
    /// Languages the key may sign stories in; empty means any language.
    pub languages: Vec<String>,
}

impl Scope {
    /// Whether a story in `language` is within this scope.
    pub fn allows_language(&self, language: &str) -> bool {
        self.languages.is_empty()
            || self
                .languages
                .iter()
                .any(|l| l.eq_ignore_ascii_case(language))
    }
}

/// A root key's statement that a signing key must not be trusted for
/// anything it signed at or after `effective_from`, nor, in format 2, for
/// anything at a sequence number above `last_sequence`.
///
/// The encoding is format 1's fields, then `last_sequence` only in format
/// 2 (see `docs/protocol.md`), so format 1 bytes decode unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// Always [`FORMAT_VERSION`].
    pub format: u16,
    /// The publisher's root key, which signs this revocation.
    pub publisher: PublicKey,
    /// The revoked signing key.
    pub key: PublicKey,
    /// Signatures made at or after this time are refused.
    pub effective_from: Timestamp,
    /// When the revocation was issued.
    pub issued_at: Timestamp,
    /// A short human-readable reason.
    pub reason: String,
    /// The highest sequence number at which the key's signatures stay
    /// valid: `Some` exactly in format [`REVOCATION_FORMAT_CUTOFF`]. Unlike
    /// a signing time, which the key's holder writes, a thief cannot move
    /// its bundles below this cut-off: the slots under it are the
    /// newsroom's.
    pub last_sequence: Option<u64>,
}

impl Serialize for Revocation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(6 + usize::from(self.last_sequence.is_some()))?;
        t.serialize_element(&self.format)?;
        t.serialize_element(&self.publisher)?;
        t.serialize_element(&self.key)?;
        t.serialize_element(&self.effective_from)?;
        t.serialize_element(&self.issued_at)?;
        t.serialize_element(&self.reason)?;
        if let Some(last) = &self.last_sequence {
            t.serialize_element(last)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Revocation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Revocation;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a revocation")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Revocation, A::Error> {
                fn next<'de, T: Deserialize<'de>, A: serde::de::SeqAccess<'de>>(
                    a: &mut A,
                    i: usize,
                ) -> Result<T, A::Error> {
                    a.next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &"a revocation"))
                }
                let format: u16 = next(&mut a, 0)?;
                Ok(Revocation {
                    format,
                    publisher: next(&mut a, 1)?,
                    key: next(&mut a, 2)?,
                    effective_from: next(&mut a, 3)?,
                    issued_at: next(&mut a, 4)?,
                    reason: next(&mut a, 5)?,
                    // Only a format that has the field reads it; any other
                    // format is refused by `validate`.
                    last_sequence: if format == REVOCATION_FORMAT_CUTOFF {
                        Some(next(&mut a, 6)?)
                    } else {
                        None
                    },
                })
            }
        }
        d.deserialize_tuple(7, V)
    }
}

/// What a bundle is to its story.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A story, or a plain update of one.
    Story,
    /// A corrected version; readers are shown that it corrects the earlier one.
    Correction,
    /// The story is withdrawn; its body is the retraction notice.
    Retraction,
}

impl Kind {
    /// Lower-case name for text output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Story => "story",
            Kind::Correction => "correction",
            Kind::Retraction => "retraction",
        }
    }
}

/// Descriptive metadata of a story version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Headline.
    pub title: String,
    /// BCP 47 language tag, `und` when unknown.
    pub language: String,
    /// Bylines.
    pub authors: Vec<String>,
    /// Section of the publication.
    pub section: Option<String>,
    /// First publication of the story.
    pub published: Timestamp,
    /// Last update, when this is not the first version.
    pub updated: Option<Timestamp>,
    /// Where the story stands on the newsroom's own (possibly blocked) site.
    pub original_url: Option<String>,
    /// A short summary for lists and feeds.
    pub summary: Option<String>,
}

/// One file of a bundle: the body or a media file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative path, e.g. `index.html` or `media/photo.jpg`.
    pub path: String,
    /// MIME type.
    pub media_type: String,
    /// Exact size in bytes.
    pub size: u64,
    /// blake3 of the bytes.
    pub hash: BlobHash,
}

/// Path of the body entry, which is always the first entry.
pub const BODY_PATH: &str = "index.html";
/// Media type of the body entry.
pub const BODY_MEDIA_TYPE: &str = "text/html; charset=utf-8";

/// A signed description of one version of one story.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_VERSION`].
    pub format: u16,
    /// The publisher's root key.
    pub publisher: PublicKey,
    /// The certificate of the key that signed this manifest.
    pub certificate: CertId,
    /// Stable across all versions of the story.
    pub story: StoryId,
    /// 1 for the first version, one more for each later one.
    pub version: u32,
    /// Story, correction or retraction.
    pub kind: Kind,
    /// The publisher's sequence number: 1, 2, 3, … with no gaps.
    pub sequence: u64,
    /// The bundle this version replaces; `None` exactly for version 1.
    pub supersedes: Option<BundleId>,
    /// When the signing key signed this manifest.
    pub signed_at: Timestamp,
    /// Title, language, authors and the rest.
    pub metadata: Metadata,
    /// The body first, then media files.
    pub entries: Vec<Entry>,
}

/// The publisher's signed heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Always [`FORMAT_VERSION`].
    pub format: u16,
    /// The publisher's root key.
    pub publisher: PublicKey,
    /// The certificate of the key that signed this head.
    pub certificate: CertId,
    /// The newest sequence number the publisher has issued.
    pub sequence: u64,
    /// When the head was signed.
    pub issued_at: Timestamp,
    /// After this, the head is stale: a sign the feed may be frozen.
    pub expires_at: Timestamp,
}

fn too_large(field: &'static str, len: usize, max: usize) -> PolicyError {
    PolicyError::FieldTooLarge { field, len, max }
}

fn check_len(field: &'static str, s: &str, max: usize) -> Result<(), PolicyError> {
    if s.len() > max {
        Err(too_large(field, s.len(), max))
    } else {
        Ok(())
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> PolicyError {
    PolicyError::InvalidField {
        field,
        reason: reason.into(),
    }
}

fn check_format(what: &'static str, format: u16) -> Result<(), PolicyError> {
    if format != FORMAT_VERSION {
        return Err(PolicyError::Decode(DecodeError::UnknownFormat {
            what,
            version: format,
            supported: FORMAT_VERSION,
        }));
    }
    Ok(())
}

pub(super) fn check_language(field: &'static str, lang: &str) -> Result<(), PolicyError> {
    check_len(field, lang, MAX_LANGUAGE)?;
    if lang.is_empty() || !lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(invalid(field, "a language tag is letters, digits and '-'"));
    }
    Ok(())
}

/// Whether a path is safe to use as a relative URL, an HTML attribute value
/// and a file name: no empty, `.` or `..` segments, no leading slash, no
/// leading dot in a segment, and none of the characters that could make it
/// a scheme (`:`), an escape (`%`, `\\`), a query or fragment (`?`, `#`),
/// leave an attribute (`"`, `'`, `<`, `>`, `&`), or hide in whitespace.
pub fn is_safe_path(path: &str) -> bool {
    const FORBIDDEN: &[char] = &[':', '%', '\\', '?', '#', '"', '\'', '<', '>', '&', '`'];
    !path.is_empty()
        && path.len() <= MAX_PATH
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && !seg.starts_with('.'))
        && path.chars().all(|c| {
            !c.is_control()
                && !c.is_whitespace()
                && !is_invisible_format(c)
                && !FORBIDDEN.contains(&c)
        })
}

/// Bidirectional embedding, override and isolate controls: they can make
/// text display in an order other than its bytes.
pub fn is_bidi_override(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that format text without being seen: bidirectional
/// controls and marks, zero-width characters and the byte-order mark.
fn is_invisible_format(c: char) -> bool {
    is_bidi_override(c)
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{061C}')
}

impl KeyCertificate {
    /// Checks the fields that do not depend on trust or time.
    pub fn validate(&self) -> Result<(), PolicyError> {
        check_format("key certificate", self.format)?;
        if self.not_after < self.not_before {
            return Err(invalid(
                "certificate validity",
                "not_after is before not_before",
            ));
        }
        if self.scope.languages.len() > MAX_SCOPE_LANGUAGES {
            return Err(too_large(
                "scope languages",
                self.scope.languages.len(),
                MAX_SCOPE_LANGUAGES,
            ));
        }
        for l in &self.scope.languages {
            check_language("scope language", l)?;
        }
        self.signing_key
            .to_verifying_key()
            .map_err(|e| invalid("signing key", e.to_string()))?;
        Ok(())
    }

    /// Signs with the publisher's root key.
    pub fn sign(&self, root: &SecretKey) -> Result<Vec<u8>, DecodeError> {
        sign_and_encode(ObjectKind::Certificate, self, root)
    }
}

impl Revocation {
    /// Checks the fields that do not depend on trust or time.
    pub fn validate(&self) -> Result<(), PolicyError> {
        match (self.format, self.last_sequence) {
            (FORMAT_VERSION, None) | (REVOCATION_FORMAT_CUTOFF, Some(_)) => {}
            (REVOCATION_FORMAT_CUTOFF, None) => {
                return Err(invalid("last_sequence", "format 2 carries a cut-off"));
            }
            (FORMAT_VERSION, Some(_)) => {
                return Err(invalid("last_sequence", "format 1 carries no cut-off"));
            }
            (version, _) => {
                return Err(PolicyError::Decode(DecodeError::UnknownFormat {
                    what: "revocation",
                    version,
                    supported: REVOCATION_FORMAT_CUTOFF,
                }));
            }
        }
        check_len("revocation reason", &self.reason, MAX_REASON)
    }

    /// Whether this revocation takes away what its key signed at
    /// `sequence` and `signed_at`: everything from its effective time on,
    /// and everything above its cut-off, whatever time it claims. The one
    /// statement of that rule, for the policy and the store alike.
    pub fn revokes(&self, sequence: u64, signed_at: Timestamp) -> bool {
        signed_at >= self.effective_from || self.last_sequence.is_some_and(|last| sequence > last)
    }

    /// Whether this revocation takes away everything `old` (of the same
    /// key) does, and more: an effective time no later, a cut-off no
    /// higher (none counts as no cut-off), and one of them strictly. A
    /// revocation can be widened this way, never narrowed.
    pub fn widens(&self, old: &Revocation) -> bool {
        let cut = |r: &Revocation| r.last_sequence.unwrap_or(u64::MAX);
        let covers = self.effective_from <= old.effective_from && cut(self) <= cut(old);
        let more = self.effective_from < old.effective_from
            || cut(self) < cut(old)
            || (self.last_sequence.is_some() && old.last_sequence.is_none());
        covers && more
    }

    /// Signs with the publisher's root key.
    pub fn sign(&self, root: &SecretKey) -> Result<Vec<u8>, DecodeError> {
        sign_and_encode(ObjectKind::Revocation, self, root)
    }
}

impl Manifest {
    /// Checks every field's size and the rules between fields.
    pub fn validate(&self) -> Result<(), PolicyError> {
        check_format("manifest", self.format)?;
        let m = &self.metadata;
        check_len("title", &m.title, MAX_TITLE)?;
        if m.title.trim().is_empty() {
            return Err(invalid("title", "it is empty"));
        }
        check_language("language", &m.language)?;
        if m.authors.len() > MAX_AUTHORS {
            return Err(too_large("authors", m.authors.len(), MAX_AUTHORS));
        }
        for a in &m.authors {
            check_len("author", a, MAX_AUTHOR)?;
        }
        if let Some(s) = &m.section {
            check_len("section", s, MAX_SECTION)?;
        }
        if let Some(u) = &m.original_url {
            check_len("original URL", u, MAX_URL)?;
        }
        if let Some(s) = &m.summary {
            check_len("summary", s, MAX_SUMMARY)?;
        }
        if self.version == 0 {
            return Err(invalid("version", "versions start at 1"));
        }
        if self.sequence == 0 {
            return Err(invalid("sequence", "sequence numbers start at 1"));
        }
        match (self.version, self.supersedes.is_some()) {
            (1, true) => return Err(invalid("supersedes", "version 1 supersedes nothing")),
            (v, false) if v > 1 => {
                return Err(invalid(
                    "supersedes",
                    "a later version must name the bundle it supersedes",
                ));
            }
            _ => {}
        }
        // Every version of a story is a bundle with its own sequence
        // number, so version v needs at least v of them: a key holder
        // cannot claim a version far above anything real to win a story.
        if u64::from(self.version) > self.sequence {
            return Err(invalid(
                "version",
                "a story's version cannot exceed the publisher's sequence number",
            ));
        }
        if self.version == 1 && self.kind != Kind::Story {
            return Err(invalid(
                "kind",
                "a correction or retraction must be a later version of a story",
            ));
        }
        if self.entries.is_empty() {
            return Err(invalid("entries", "a bundle needs at least its body"));
        }
        if self.entries.len() > MAX_ENTRIES {
            return Err(too_large("entries", self.entries.len(), MAX_ENTRIES));
        }
        let body = &self.entries[0];
        if body.path != BODY_PATH || body.media_type != BODY_MEDIA_TYPE {
            return Err(invalid(
                "entries",
                format!("the first entry must be the body, {BODY_PATH} ({BODY_MEDIA_TYPE})"),
            ));
        }
        let mut total: u64 = 0;
        let mut paths = std::collections::HashSet::new();
        for e in &self.entries {
            check_len("entry path", &e.path, MAX_PATH)?;
            check_len("media type", &e.media_type, MAX_MEDIA_TYPE)?;
            if !is_safe_path(&e.path) {
                return Err(invalid(
                    "entry path",
                    format!("{:?} is not a safe relative path", e.path),
                ));
            }
            if !paths.insert(e.path.as_str()) {
                return Err(invalid("entry path", format!("{:?} appears twice", e.path)));
            }
            if e.size > MAX_BLOB_BYTES {
                return Err(PolicyError::FieldTooLarge {
                    field: "entry size",
                    len: usize::try_from(e.size).unwrap_or(usize::MAX),
                    max: MAX_BLOB_BYTES as usize,
                });
            }
            total = total.saturating_add(e.size);
        }
        if total > MAX_BUNDLE_BYTES {
            return Err(PolicyError::FieldTooLarge {
                field: "bundle size",
                len: usize::try_from(total).unwrap_or(usize::MAX),
                max: MAX_BUNDLE_BYTES as usize,
            });
        }
        Ok(())
    }

    /// Signs with a certified signing key.
    pub fn sign(&self, key: &SecretKey) -> Result<Vec<u8>, DecodeError> {
        sign_and_encode(ObjectKind::Manifest, self, key)
    }

    /// The sum of all entry sizes.
    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

impl Head {
    /// Checks the rules between fields.
    pub fn validate(&self) -> Result<(), PolicyError> {
        check_format("head", self.format)?;
        if self.expires_at < self.issued_at {
            return Err(invalid("head expiry", "expires_at is before issued_at"));
        }
        // A head that never expires would hide a frozen feed for good.
        if self.expires_at.0 - self.issued_at.0 > MAX_HEAD_VALIDITY_SECS {
            return Err(invalid(
                "head expiry",
                format!("a head may be valid for at most {MAX_HEAD_VALIDITY_SECS} seconds"),
            ));
        }
        Ok(())
    }

    /// Signs with a certified signing key.
    pub fn sign(&self, key: &SecretKey) -> Result<Vec<u8>, DecodeError> {
        sign_and_encode(ObjectKind::Head, self, key)
    }

    /// Whether the head has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now > self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::is_safe_path;

    #[test]
    fn safe_paths() {
        for ok in [
            "index.html",
            "media/photo.jpg",
            "media/фото.png",
            "a/b-c_d.webp",
        ] {
            assert!(is_safe_path(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "./a",
            "a//b",
            ".hidden",
            "javascript:alert(1)",
            "%2e%2e/x",
            "a\\b",
            "a?b",
            "a#b",
            "a\"b",
            "a<b",
            "a b",
            "a\u{202E}gnp.exe",
            "a\u{200B}b",
            "a\nb",
        ] {
            assert!(!is_safe_path(bad), "{bad:?}");
        }
    }
}
