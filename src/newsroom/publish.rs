//! Signing a draft as the newsroom's next bundle, and reading back what it
//! published.

use std::fs;
use std::path::{Path, PathBuf};

use super::draft::{Draft, Relation, content_entries};
use super::folder::write_toml;
use super::index::{Index, PublishedEntry, bundle_path};
use super::{Newsroom, NewsroomError, io_err};
use crate::files;
use crate::proto::bundle::{BundleFile, FileError, FrameReader, FrameTag};
use crate::proto::{
    BundleId, CertId, FORMAT_VERSION, Head, Kind, Manifest, Metadata, PolicyError, StoryId,
    Timestamp, VerifiedBundle, decode_unverified,
};

/// How to publish, besides the draft.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Also write the bundle file here. Checked before signing; when it
    /// cannot be written after all, the publish is undone.
    pub out: Option<PathBuf>,
}

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
    /// Every bundle this newsroom published, in sequence order, from the
    /// index (no bundle is decoded unless the index must be rebuilt).
    pub fn published(&self) -> Result<Vec<PublishedEntry>, NewsroomError> {
        self.with_index(|i| i.entries().to_vec())
    }

    /// How many bundles the folder holds.
    pub fn published_count(&self) -> Result<usize, NewsroomError> {
        self.with_index(|i| i.entries().len())
    }

    /// Where the bundle of `entry` is kept.
    pub fn published_path(&self, entry: &PublishedEntry) -> PathBuf {
        bundle_path(&self.dir, entry.sequence)
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
        if text.len() < 8 {
            return Err(NewsroomError::UnknownBundle(text.to_owned()));
        }
        let matches: Vec<BundleId> = self.with_index(|i| {
            i.entries()
                .iter()
                .map(|e| e.id)
                .filter(|id| id.to_string().starts_with(text))
                .take(2)
                .collect()
        })?;
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(NewsroomError::UnknownBundle(text.to_owned())),
            _ => Err(NewsroomError::AmbiguousBundle(text.to_owned())),
        }
    }

    /// The latest version of `story`: its record, and its manifest, the
    /// one bundle decoded.
    pub fn latest_version(
        &self,
        story: &StoryId,
    ) -> Result<Option<(PublishedEntry, Manifest)>, NewsroomError> {
        self.indexed_manifest(|i| i.latest(story).cloned())
    }

    /// The record found by `find` and its bundle's manifest. A record that
    /// does not match its bundle has the index rebuilt, and is looked up
    /// once more.
    fn indexed_manifest(
        &self,
        find: impl Fn(&Index) -> Option<PublishedEntry>,
    ) -> Result<Option<(PublishedEntry, Manifest)>, NewsroomError> {
        for attempt in 0..2 {
            let Some(entry) = self.with_index(&find)? else {
                return Ok(None);
            };
            let path = bundle_path(&self.dir, entry.sequence);
            match read_manifest(&path) {
                Ok((id, m)) if id == entry.id => return Ok(Some((entry, m))),
                Ok(_) if attempt == 0 => {
                    self.rebuild_index(&format!("{} is not the bundle it lists", path.display()))?
                }
                Err(NewsroomError::Io { .. }) if attempt == 0 => {
                    self.rebuild_index(&format!("{} is missing", path.display()))?
                }
                Ok(_) => {
                    return Err(NewsroomError::Invalid {
                        path,
                        reason: "the bundle does not match its index record".into(),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Signs `draft` as the next bundle of this newsroom, writes it to
    /// `published/`, and returns it verified by the newsroom's own policy.
    pub fn publish(&self, draft: Draft, now: Timestamp) -> Result<Published, NewsroomError> {
        self.publish_with(draft, now, &PublishOptions::default())
    }

    /// [`Newsroom::publish`] with options. Nothing uses a sequence number
    /// unless its bundle is stored: every check that can fail is made
    /// before signing, and a `--out` copy that cannot be written undoes
    /// the publish.
    pub fn publish_with(
        &self,
        draft: Draft,
        now: Timestamp,
        opts: &PublishOptions,
    ) -> Result<Published, NewsroomError> {
        if let Some(out) = &opts.out {
            check_out_path(out)?;
        }
        let _lock = self.lock()?;
        let mut state = self.state()?;
        let next = self.roll_forward(state.next_sequence)?;
        if next != state.next_sequence {
            state.next_sequence = next;
            write_toml(&self.dir.join("state.toml"), &state)?;
        }
        self.prepare_index(state.next_sequence)?;
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
        // A new story's fresh id needs no look-up.
        let (story, kind, previous) = match draft.relation {
            Relation::Story => match draft.story {
                None => (StoryId(rand::random()), Kind::Story, None),
                Some(story) => (story, Kind::Story, self.latest_version(&story)?),
            },
            Relation::CorrectionOf(of) | Relation::RetractionOf(of) => {
                let story = self
                    .with_index(|i| i.by_id(&of).map(|e| e.story))?
                    .ok_or_else(|| NewsroomError::NoSuchBundle(of.to_string()))?;
                let kind = if matches!(draft.relation, Relation::CorrectionOf(_)) {
                    Kind::Correction
                } else {
                    Kind::Retraction
                };
                (story, kind, self.latest_version(&story)?)
            }
        };
        let previous = previous.map(|(e, m)| (e.id, m));

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

        let path = bundle_path(&self.dir, state.next_sequence);
        let bytes = file.to_bytes().map_err(io_err(&path))?;
        // The bundle file is the commit point: once it is stored, its
        // number is used (a crash before state.toml is written is rolled
        // forward by the next publish).
        files::write_new(&path, &bytes)?;
        if let Some(out) = &opts.out
            && let Err(e) = files::write_atomic(out, &bytes)
        {
            // Undone whole: the copy did not leave this machine, so the
            // number goes back unused.
            let _ = fs::remove_file(&path);
            let _ = files::sync_parent(&path);
            return Err(NewsroomError::Out {
                path: out.clone(),
                reason: e.to_string(),
            });
        }
        state.next_sequence += 1;
        write_toml(&self.dir.join("state.toml"), &state)?;
        self.append_index(PublishedEntry::of_manifest(bundle.id(), bundle.manifest()));
        Ok(Published {
            bundle,
            file,
            bytes,
            path,
        })
    }
}

/// Checks, before anything is signed, that a copy of the bundle can be
/// written to `out`: it is not a folder, its folder exists, and a file can
/// be made there.
fn check_out_path(out: &Path) -> Result<(), NewsroomError> {
    let bad = |reason: &str| NewsroomError::Out {
        path: out.to_owned(),
        reason: reason.to_owned(),
    };
    if out.is_dir() {
        return Err(bad("is a folder; give a file name, e.g. story.kolokol"));
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(bad(&format!(
            "the folder {} does not exist",
            parent.display()
        )));
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let probe = parent.join(format!(".{name}.{:016x}.probe", rand::random::<u64>()));
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(bad(&format!(
            "no file can be written in {}: {e}",
            parent.display()
        ))),
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
