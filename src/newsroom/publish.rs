//! Signing a draft as the newsroom's next bundle, and reading back what it
//! published.

use std::fs;
use std::path::{Path, PathBuf};

use super::draft::{Draft, Relation, content_entries};
use super::folder::{read_dir_sorted, write_toml};
use super::{Newsroom, NewsroomError, io_err};
use crate::files;
use crate::proto::bundle::{BundleFile, FileError, FrameReader, FrameTag};
use crate::proto::{
    BundleId, CertId, FORMAT_VERSION, Head, Kind, Manifest, Metadata, PolicyError, StoryId,
    Timestamp, VerifiedBundle, decode_unverified,
};

/// A bundle the newsroom just signed.
#[derive(Debug, Clone)]
pub struct Published {
    /// The verified bundle.
    pub bundle: VerifiedBundle,
    /// The file's contents.
    pub file: BundleFile,
    /// The file as written.
    pub bytes: Vec<u8>,
    /// Where the newsroom keeps it.
    pub path: PathBuf,
}

impl Newsroom {
    /// Every bundle this newsroom published: (path, id, manifest), in
    /// sequence order. Reads only each file's manifest.
    pub fn published(&self) -> Result<Vec<(PathBuf, BundleId, Manifest)>, NewsroomError> {
        let mut out = Vec::new();
        for path in read_dir_sorted(&self.dir.join("published"), "kolokol")? {
            let (id, m) = read_manifest(&path)?;
            out.push((path, id, m));
        }
        Ok(out)
    }

    /// The bundle `text` names: a bundle id, a `.kolokol` file, or a
    /// prefix (8 digits or more) of the id of one this newsroom published.
    pub fn find_bundle(&self, text: &str) -> Result<BundleId, NewsroomError> {
        if let Ok(id) = text.parse::<BundleId>() {
            return Ok(id);
        }
        let path = Path::new(text);
        if path.exists() {
            return Ok(read_manifest(path)?.0);
        }
        let matches: Vec<BundleId> = self
            .published()?
            .into_iter()
            .map(|(_, id, _)| id)
            .filter(|id| text.len() >= 8 && id.to_string().starts_with(text))
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(NewsroomError::UnknownBundle(text.to_owned())),
            _ => Err(NewsroomError::AmbiguousBundle(text.to_owned())),
        }
    }

    fn latest_version(
        &self,
        story: &StoryId,
    ) -> Result<Option<(BundleId, Manifest)>, NewsroomError> {
        Ok(self
            .published()?
            .into_iter()
            .filter(|(_, _, m)| &m.story == story)
            .max_by_key(|(_, _, m)| m.version)
            .map(|(_, id, m)| (id, m)))
    }

    /// Signs `draft` as the next bundle of this newsroom, writes it to
    /// `published/`, and returns it verified by the newsroom's own policy.
    pub fn publish(&self, draft: Draft, now: Timestamp) -> Result<Published, NewsroomError> {
        let _lock = self.lock()?;
        let mut state = self.state()?;
        let (cert_bytes, cert) = self.current_certificate(&state)?;
        let signing = self.read_secret(&self.dir.join("signing.key"))?;
        if signing.public() != cert.signing_key {
            return Err(NewsroomError::Invalid {
                path: self.dir.join("signing.key"),
                reason: "the signing key does not match the current certificate".into(),
            });
        }
        let policy = self.policy()?;
        // A key with any revocation, even one taking effect later, signs
        // nothing more: readers refuse the head it would sign beside the
        // story.
        if let Some(rev) = policy
            .publisher(&self.root_public)
            .and_then(|p| p.revocations().find(|r| r.key == cert.signing_key))
        {
            return Err(NewsroomError::CannotSign(PolicyError::KeyRevoked {
                key: rev.key,
                effective_from: rev.effective_from,
                signed_at: now,
            }));
        }

        // Where the story stands: a new story, or the next version of one.
        let (story, kind, previous) = match draft.relation {
            Relation::Story => {
                let story = draft.story.unwrap_or_else(|| StoryId(rand::random()));
                (story, Kind::Story, self.latest_version(&story)?)
            }
            Relation::CorrectionOf(of) | Relation::RetractionOf(of) => {
                let (_, _, m) = self
                    .published()?
                    .into_iter()
                    .find(|(_, id, _)| *id == of)
                    .ok_or_else(|| NewsroomError::NoSuchBundle(of.to_string()))?;
                let kind = if matches!(draft.relation, Relation::CorrectionOf(_)) {
                    Kind::Correction
                } else {
                    Kind::Retraction
                };
                (m.story, kind, self.latest_version(&m.story)?)
            }
        };

        let (body_html, entries) = content_entries(&draft.body_html, &draft.media);
        let mut blobs = Vec::with_capacity(draft.media.len() + 1);
        blobs.push(body_html.into_bytes());
        blobs.extend(draft.media.into_iter().map(|m| m.bytes));

        let published = draft
            .published
            .or(previous.as_ref().map(|(_, m)| m.metadata.published))
            .unwrap_or(now);
        let manifest = Manifest {
            format: FORMAT_VERSION,
            publisher: self.root_public,
            certificate: CertId::of(&cert_bytes),
            story,
            version: previous.as_ref().map_or(1, |(_, m)| m.version + 1),
            kind,
            sequence: state.next_sequence,
            supersedes: previous.as_ref().map(|(id, _)| *id),
            signed_at: now,
            metadata: Metadata {
                title: draft.title,
                language: draft.language,
                authors: draft.authors,
                section: draft.section,
                published,
                updated: previous.as_ref().map(|_| now),
                original_url: draft.original_url,
                summary: draft.summary,
            },
            entries,
        };
        manifest.validate()?;
        let manifest_bytes = manifest.sign(&signing)?;
        let verified = policy
            .verify_manifest(&manifest_bytes, now)
            .map_err(|e| match e {
                e @ (PolicyError::KeyRevoked { .. }
                | PolicyError::CertificateExpired { .. }
                | PolicyError::CertificateNotYetValid { .. }) => NewsroomError::CannotSign(e),
                e => NewsroomError::Policy(e),
            })?;
        let head = Head {
            format: FORMAT_VERSION,
            publisher: self.root_public,
            certificate: CertId::of(&cert_bytes),
            sequence: state.next_sequence,
            issued_at: now,
            // Readers refuse a head fresh for longer than the protocol's
            // bound, so a larger setting is held to it.
            expires_at: now.plus(
                self.config
                    .head_validity_secs
                    .min(crate::proto::limits::MAX_HEAD_VALIDITY_SECS),
            ),
        };
        let head_bytes = head.sign(&signing)?;
        let file = BundleFile {
            // Only the certificate this bundle needs, and the newest
            // revocations (up to the side-object limit) so readers learn
            // of them.
            certificates: vec![cert_bytes.clone()],
            revocations: self.newest_revocations()?,
            heads: vec![head_bytes],
            manifest: manifest_bytes,
            blobs: blobs.clone(),
        };
        let bundle = policy.verify_bundle(verified, blobs)?;

        let path = self
            .dir
            .join("published")
            .join(format!("{:010}.kolokol", state.next_sequence));
        if path.exists() {
            return Err(NewsroomError::Invalid {
                path,
                reason: "a bundle with this sequence number exists already; state.toml is behind"
                    .into(),
            });
        }
        let bytes = file.to_bytes().map_err(io_err(&path))?;
        files::write_atomic(&path, &bytes)?;
        state.next_sequence += 1;
        write_toml(&self.dir.join("state.toml"), &state)?;
        Ok(Published {
            bundle,
            file,
            bytes,
            path,
        })
    }
}

/// Reads only the manifest of a `.kolokol` file, without verifying it.
pub fn read_manifest(path: &Path) -> Result<(BundleId, Manifest), NewsroomError> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    let file_err = |source: FileError| NewsroomError::File {
        path: path.to_owned(),
        source: Box::new(source),
    };
    let mut frames = FrameReader::new(std::io::BufReader::new(file)).map_err(file_err)?;
    while let Some(frame) = frames.next_frame().map_err(file_err)? {
        if frame.tag == FrameTag::Manifest {
            let m = decode_unverified::<Manifest>(&frame.payload).map_err(|e| {
                NewsroomError::Invalid {
                    path: path.to_owned(),
                    reason: e.to_string(),
                }
            })?;
            return Ok((BundleId::of(&frame.payload), m));
        }
    }
    Err(NewsroomError::Invalid {
        path: path.to_owned(),
        reason: "no manifest in the file".into(),
    })
}
