//! `published.index`: what the newsroom published, one fixed-size record
//! per bundle in `published/`, so that a publish or a lookup does not
//! decode every bundle the newsroom ever signed.
//!
//! The folder stays the truth. The index is append-only (a record is
//! appended, and synced, after its bundle is stored) and is checked
//! against `published/` before it is used: by the file names alone (the
//! count and the sequence numbers), never by decoding the bundles. An
//! index that is missing, torn or damaged, or that lists what the folder
//! does not hold, is rebuilt from the folder with a warning; one that only
//! lacks the newest bundles (a crash between storing a bundle and
//! appending its record) gets their records from those bundles alone.
//!
//! A record: sequence (u64 LE), bundle id (32), story id (16), version
//! (u32 LE), kind (1), certificate id (32), signed-at (u64 LE), content
//! fingerprint (32), then the first 8 bytes of the blake3 hash of the
//! preceding 133 bytes, which tells a damaged record from a sound one.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::draft::{Draft, content_entries};
use super::publish::read_manifest;
use super::{Newsroom, NewsroomError, io_err};
use crate::files;
use crate::proto::{BundleId, CertId, Entry, Kind, Manifest, StoryId, Timestamp};

/// The index file in the newsroom folder.
pub const INDEX_FILE: &str = "published.index";
/// The first bytes of an index file: its format.
const MAGIC: &[u8; 8] = b"KKPUBIX1";
/// Bytes of one record.
const RECORD_LEN: usize = 141;
/// Bytes of a record before its check.
const BODY_LEN: usize = RECORD_LEN - 8;
/// Most records an index may hold; a larger file is not read (it is
/// damaged: no newsroom signs ten million stories).
const MAX_RECORDS: u64 = 10_000_000;
/// Most bundles found stored past `state.toml`'s next sequence number
/// that a publish takes up (see [`Newsroom::roll_forward`]).
const MAX_ROLL_FORWARD: u64 = 64;

/// What a published version says, by hash: feed import and the check for
/// identical republication compare these instead of whole manifests.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({})", hex::encode(&self.0[..6]))
    }
}

/// Feeds a length-prefixed string to the hasher, so that field
/// boundaries cannot shift between two different stories.
fn hash_str(h: &mut blake3::Hasher, s: &str) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

fn hash_opt(h: &mut blake3::Hasher, s: Option<&str>) {
    match s {
        None => {
            h.update(&[0]);
        }
        Some(s) => {
            h.update(&[1]);
            hash_str(h, s);
        }
    }
}

/// The fingerprint of a story version's metadata (times aside: a feed's
/// dates alone do not make a new version) and its body and media, by the
/// entries' hashes.
#[allow(clippy::too_many_arguments)]
fn fingerprint_of(
    title: &str,
    language: &str,
    authors: &[String],
    section: Option<&str>,
    original_url: Option<&str>,
    summary: Option<&str>,
    entries: &[Entry],
) -> Fingerprint {
    let mut h = blake3::Hasher::new_derive_key("kolokol/v1/newsroom-content");
    hash_str(&mut h, title);
    hash_str(&mut h, language);
    h.update(&(authors.len() as u64).to_le_bytes());
    for a in authors {
        hash_str(&mut h, a);
    }
    hash_opt(&mut h, section);
    hash_opt(&mut h, original_url);
    hash_opt(&mut h, summary);
    h.update(&(entries.len() as u64).to_le_bytes());
    for e in entries {
        hash_str(&mut h, &e.path);
        hash_str(&mut h, &e.media_type);
        h.update(&e.size.to_le_bytes());
        h.update(e.hash.as_bytes());
    }
    Fingerprint(*h.finalize().as_bytes())
}

impl Fingerprint {
    /// What a published manifest says.
    pub fn of_manifest(m: &Manifest) -> Self {
        let md = &m.metadata;
        fingerprint_of(
            &md.title,
            &md.language,
            &md.authors,
            md.section.as_deref(),
            md.original_url.as_deref(),
            md.summary.as_deref(),
            &m.entries,
        )
    }

    /// What a manifest signed from `draft` would say.
    pub fn of_draft(draft: &Draft) -> Self {
        let (_, entries) = content_entries(&draft.body_html, &draft.media);
        fingerprint_of(
            &draft.title,
            &draft.language,
            &draft.authors,
            draft.section.as_deref(),
            draft.original_url.as_deref(),
            draft.summary.as_deref(),
            &entries,
        )
    }
}

/// One bundle the newsroom published, as its index records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedEntry {
    /// Its sequence number; the file is `published/SEQUENCE.kolokol`.
    pub sequence: u64,
    /// Its bundle id.
    pub id: BundleId,
    /// Its story.
    pub story: StoryId,
    /// The story version it is.
    pub version: u32,
    /// Story, correction or retraction.
    pub kind: Kind,
    /// The certificate of the key that signed it.
    pub certificate: CertId,
    /// When it was signed.
    pub signed_at: Timestamp,
    /// What it says, by hash.
    pub fingerprint: Fingerprint,
}

impl PublishedEntry {
    /// The record of the bundle `id` whose manifest is `m`.
    pub fn of_manifest(id: BundleId, m: &Manifest) -> Self {
        Self {
            sequence: m.sequence,
            id,
            story: m.story,
            version: m.version,
            kind: m.kind,
            certificate: m.certificate,
            signed_at: m.signed_at,
            fingerprint: Fingerprint::of_manifest(m),
        }
    }

    fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0..8].copy_from_slice(&self.sequence.to_le_bytes());
        b[8..40].copy_from_slice(self.id.as_bytes());
        b[40..56].copy_from_slice(self.story.as_bytes());
        b[56..60].copy_from_slice(&self.version.to_le_bytes());
        b[60] = match self.kind {
            Kind::Story => 0,
            Kind::Correction => 1,
            Kind::Retraction => 2,
        };
        b[61..93].copy_from_slice(self.certificate.as_bytes());
        b[93..101].copy_from_slice(&self.signed_at.0.to_le_bytes());
        b[101..133].copy_from_slice(&self.fingerprint.0);
        let check = blake3::hash(&b[..BODY_LEN]);
        b[BODY_LEN..].copy_from_slice(&check.as_bytes()[..8]);
        b
    }

    /// A record, or `None` when it is damaged.
    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != RECORD_LEN || blake3::hash(&b[..BODY_LEN]).as_bytes()[..8] != b[BODY_LEN..] {
            return None;
        }
        let kind = match b[60] {
            0 => Kind::Story,
            1 => Kind::Correction,
            2 => Kind::Retraction,
            _ => return None,
        };
        Some(Self {
            sequence: u64::from_le_bytes(b[0..8].try_into().ok()?),
            id: BundleId(b[8..40].try_into().ok()?),
            story: StoryId(b[40..56].try_into().ok()?),
            version: u32::from_le_bytes(b[56..60].try_into().ok()?),
            kind,
            certificate: CertId(b[61..93].try_into().ok()?),
            signed_at: Timestamp(u64::from_le_bytes(b[93..101].try_into().ok()?)),
            fingerprint: Fingerprint(b[101..133].try_into().ok()?),
        })
    }
}

/// The index in memory: every record in sequence order, and where each
/// story's latest version is.
#[derive(Default)]
pub(super) struct Index {
    entries: Vec<PublishedEntry>,
    latest: HashMap<StoryId, usize>,
    /// The file's length when it was read or last appended to; another
    /// process's publish changes it, and the index is read again.
    disk_len: u64,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl Index {
    fn new(entries: Vec<PublishedEntry>, disk_len: u64) -> Self {
        let mut index = Self {
            entries: Vec::new(),
            latest: HashMap::new(),
            disk_len,
        };
        for e in entries {
            index.push(e);
        }
        index
    }

    fn push(&mut self, e: PublishedEntry) {
        let pos = self.entries.len();
        let newer = self
            .latest
            .get(&e.story)
            .and_then(|&i| self.entries.get(i))
            .is_none_or(|old| e.version > old.version);
        if newer {
            self.latest.insert(e.story, pos);
        }
        self.entries.push(e);
    }

    /// Every record, in sequence order.
    pub(super) fn entries(&self) -> &[PublishedEntry] {
        &self.entries
    }

    /// The story's latest version.
    pub(super) fn latest(&self, story: &StoryId) -> Option<&PublishedEntry> {
        self.latest.get(story).and_then(|&i| self.entries.get(i))
    }

    /// The record of bundle `id`.
    pub(super) fn by_id(&self, id: &BundleId) -> Option<&PublishedEntry> {
        self.entries.iter().find(|e| e.id == *id)
    }

    fn last_sequence(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.sequence)
    }
}

/// The path of the bundle with sequence number `sequence`.
pub(super) fn bundle_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join("published")
        .join(format!("{sequence:010}.kolokol"))
}

/// The index file's records, or why it cannot be used.
fn read_records(path: &Path) -> Result<Result<(Vec<PublishedEntry>, u64), String>, NewsroomError> {
    let len = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Err("missing".into())),
        Err(e) => return Err(io_err(path)(e)),
    };
    let max = MAGIC.len() as u64 + MAX_RECORDS * RECORD_LEN as u64;
    if len > max {
        return Ok(Err(format!("{len} bytes, more than {max}")));
    }
    // Bounded just above by the length checked.
    let bytes = match files::read_bounded(path, max) {
        Ok(b) => b,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let Some(body) = bytes.strip_prefix(MAGIC.as_slice()) else {
        return Ok(Err("not an index file".into()));
    };
    if body.len() % RECORD_LEN != 0 {
        return Ok(Err("its last record is incomplete".into()));
    }
    let mut entries = Vec::with_capacity(body.len() / RECORD_LEN);
    for (i, chunk) in body.chunks_exact(RECORD_LEN).enumerate() {
        let Some(e) = PublishedEntry::decode(chunk) else {
            return Ok(Err(format!("record {} is damaged", i + 1)));
        };
        if entries
            .last()
            .is_some_and(|p: &PublishedEntry| p.sequence >= e.sequence)
        {
            return Ok(Err(format!("record {} is out of order", i + 1)));
        }
        entries.push(e);
    }
    Ok(Ok((entries, bytes.len() as u64)))
}

/// The sequence numbers of the bundle files in `published/`, by their
/// names alone, sorted; `None` when a `.kolokol` file there is not named
/// by a sequence number (only decoding it tells what it is).
fn folder_sequences(dir: &Path) -> Result<Option<Vec<u64>>, NewsroomError> {
    let mut out = Vec::new();
    for p in super::folder::read_dir_sorted(&dir.join("published"), "kolokol")? {
        let seq = p
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| s.len() == 10)
            .and_then(|s| s.parse::<u64>().ok());
        match seq {
            Some(n) => out.push(n),
            None => return Ok(None),
        }
    }
    out.sort_unstable();
    Ok(Some(out))
}

fn encode_all(entries: &[PublishedEntry]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(MAGIC.len() + entries.len() * RECORD_LEN);
    bytes.extend_from_slice(MAGIC);
    for e in entries {
        bytes.extend_from_slice(&e.encode());
    }
    bytes
}

impl Newsroom {
    fn index_path(&self) -> PathBuf {
        self.dir.join(INDEX_FILE)
    }

    /// Runs `f` on the index, read (and checked against `published/`) if
    /// it is not held already or the file changed since.
    pub(super) fn with_index<R>(&self, f: impl FnOnce(&Index) -> R) -> Result<R, NewsroomError> {
        let mut cache = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let disk_len = fs::metadata(self.index_path()).map_or(0, |m| m.len());
        let fresh = cache.as_ref().is_some_and(|i| i.disk_len == disk_len);
        if !fresh {
            *cache = Some(self.load_index()?);
        }
        match cache.as_ref() {
            Some(index) => Ok(f(index)),
            None => Err(NewsroomError::Invalid {
                path: self.index_path(),
                reason: "the index could not be read".into(),
            }),
        }
    }

    /// Forgets the index held in memory and rebuilds the file from
    /// `published/`: a record was found not to match its bundle.
    pub(super) fn rebuild_index(&self, why: &str) -> Result<(), NewsroomError> {
        tracing::warn!(path = %self.index_path().display(), "rebuilding the index of published bundles: {why}");
        let mut cache = self.index.lock().unwrap_or_else(|p| p.into_inner());
        *cache = Some(self.rebuild_from_folder()?);
        Ok(())
    }

    /// Reads the index and checks it against the folder's file names,
    /// repairing or rebuilding it when they disagree.
    fn load_index(&self) -> Result<Index, NewsroomError> {
        let path = self.index_path();
        let (entries, disk_len) = match read_records(&path)? {
            Ok(r) => r,
            Err(why) => {
                if why != "missing" {
                    tracing::warn!(path = %path.display(), "the index of published bundles is damaged ({why}); rebuilding it from published/");
                }
                return self.rebuild_from_folder();
            }
        };
        let Some(on_disk) = folder_sequences(&self.dir)? else {
            return self.rebuild_from_folder();
        };
        // Both lists are sorted: the index must be the folder, or the
        // folder without its newest bundles.
        let last = entries.last().map_or(0, |e| e.sequence);
        let indexed = on_disk.iter().take_while(|&&n| n <= last).count();
        let prefix_matches =
            indexed == entries.len() && entries.iter().zip(&on_disk).all(|(e, &n)| e.sequence == n);
        if !prefix_matches {
            tracing::warn!(path = %path.display(), indexed = entries.len(), found = on_disk.len(), "the index of published bundles does not match published/; rebuilding it");
            return self.rebuild_from_folder();
        }
        let missing = &on_disk[indexed..];
        if missing.is_empty() {
            return Ok(Index::new(entries, disk_len));
        }
        tracing::info!(
            count = missing.len(),
            "adding the newest published bundles to the index"
        );
        let mut entries = entries;
        for &n in missing {
            let p = bundle_path(&self.dir, n);
            let (id, m) = read_manifest(&p)?;
            if m.sequence != n {
                return self.rebuild_from_folder();
            }
            entries.push(PublishedEntry::of_manifest(id, &m));
        }
        Ok(self.write_index(entries))
    }

    /// An index of every bundle in `published/`, each file decoded.
    fn rebuild_from_folder(&self) -> Result<Index, NewsroomError> {
        let mut entries = Vec::new();
        for p in super::folder::read_dir_sorted(&self.dir.join("published"), "kolokol")? {
            let (id, m) = read_manifest(&p)?;
            if p != bundle_path(&self.dir, m.sequence) {
                tracing::warn!(path = %p.display(), sequence = m.sequence, "a bundle file not named by its sequence number is left out of the index");
                continue;
            }
            entries.push(PublishedEntry::of_manifest(id, &m));
        }
        entries.sort_by_key(|e| e.sequence);
        entries.dedup_by_key(|e| e.sequence);
        Ok(self.write_index(entries))
    }

    /// Writes the index whole (atomically); on failure the newsroom goes
    /// on with it in memory, and the next run rebuilds it.
    fn write_index(&self, entries: Vec<PublishedEntry>) -> Index {
        let path = self.index_path();
        let bytes = encode_all(&entries);
        let disk_len = match files::write_atomic(&path, &bytes) {
            Ok(()) => bytes.len() as u64,
            Err(e) => {
                tracing::warn!("the index of published bundles could not be written: {e}");
                let _ = fs::remove_file(&path);
                0
            }
        };
        Index::new(entries, disk_len)
    }

    /// Whether the index on disk ends at `next_sequence - 1`, checked from
    /// its last record and two file names, without reading the rest: the
    /// common case of a publish, which then only appends.
    fn index_tail_ok(&self, next_sequence: u64) -> bool {
        let path = self.index_path();
        let cache = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let disk_len = fs::metadata(&path).map_or(0, |m| m.len());
        if let Some(index) = cache.as_ref()
            && index.disk_len == disk_len
            && disk_len > 0
        {
            return index.last_sequence().saturating_add(1) == next_sequence;
        }
        drop(cache);
        let tail = || -> std::io::Result<Option<u64>> {
            let mut f = fs::File::open(&path)?;
            let len = f.metadata()?.len();
            let mut magic = [0u8; 8];
            f.read_exact(&mut magic)?;
            let body = len.saturating_sub(MAGIC.len() as u64);
            if &magic != MAGIC || body % RECORD_LEN as u64 != 0 {
                return Ok(None);
            }
            if body == 0 {
                return Ok(Some(0));
            }
            f.seek(SeekFrom::Start(len - RECORD_LEN as u64))?;
            let mut rec = [0u8; RECORD_LEN];
            f.read_exact(&mut rec)?;
            Ok(PublishedEntry::decode(&rec).map(|e| e.sequence))
        };
        let Ok(Some(last)) = tail() else {
            return false;
        };
        last.saturating_add(1) == next_sequence
            && (last == 0 || bundle_path(&self.dir, last).exists())
            && !bundle_path(&self.dir, next_sequence).exists()
    }

    /// Makes sure the index ends just before `next_sequence`, so that the
    /// record of the bundle about to be signed can be appended.
    pub(super) fn prepare_index(&self, next_sequence: u64) -> Result<(), NewsroomError> {
        if self.index_tail_ok(next_sequence) {
            return Ok(());
        }
        // Read, checked and repaired against the folder.
        self.with_index(|_| ())
    }

    /// Appends the record of a bundle just stored. A failure costs no
    /// bundle: the index file is removed, to be rebuilt.
    pub(super) fn append_index(&self, entry: PublishedEntry) {
        let path = self.index_path();
        let mut cache = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let appended = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(&entry.encode())?;
                f.sync_data()?;
                f.metadata().map(|m| m.len())
            });
        match appended {
            Ok(len) => {
                if let Some(index) = cache.as_mut() {
                    index.push(entry);
                    index.disk_len = len;
                }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "the index of published bundles could not be appended to ({e}); it will be rebuilt");
                let _ = fs::remove_file(&path);
                *cache = None;
            }
        }
    }

    /// Takes up the sequence numbers of bundles a publish stored before it
    /// could update `state.toml` (it crashed in between): they are stored,
    /// so their numbers are used. Returns the next free number.
    pub(super) fn roll_forward(&self, next_sequence: u64) -> Result<u64, NewsroomError> {
        let mut next = next_sequence;
        while bundle_path(&self.dir, next).exists() {
            let path = bundle_path(&self.dir, next);
            let ours = read_manifest(&path)
                .ok()
                .is_some_and(|(_, m)| m.sequence == next && m.publisher == self.root_public);
            if !ours || next - next_sequence >= MAX_ROLL_FORWARD {
                return Err(NewsroomError::Invalid {
                    path,
                    reason: "a bundle with this sequence number exists already, and state.toml is behind; check the published/ folder".into(),
                });
            }
            tracing::warn!(
                sequence = next,
                "a bundle stored by an interrupted publish takes its sequence number"
            );
            next += 1;
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests;
