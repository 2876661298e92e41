//! Reads: manifests, blobs, story lists, sequence ranges and counts.

use super::slots;
use super::tables::{
    BLOB, MANIFEST, META, META_BLOB_DISK, META_BLOBS, META_BUNDLES, META_PAYLOAD, META_PUBLISHER,
    REFS, STORY, SeqState, StoryEntry, id_from, key, story_key, u64_of,
};
use super::tx::Tx;
use super::{Store, StoreError, gaps, to_ranges};
use crate::proto::{BlobHash, BundleId, Kind, Manifest, PublicKey, StoryId, decode_unverified};

/// A stored manifest, decoded (it was verified when it was stored).
#[derive(Debug, Clone)]
pub struct StoredManifest {
    /// Its bundle id.
    pub id: BundleId,
    /// The signed bytes.
    pub bytes: Vec<u8>,
    /// The decoded manifest.
    pub manifest: Manifest,
}

/// Counts of what the store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Bundles held.
    pub bundles: u64,
    /// Distinct blobs held.
    pub blobs: u64,
    /// Bytes of manifests and blobs.
    pub payload_bytes: u64,
    /// Bytes the database takes on disk.
    pub disk_bytes: u64,
}

impl Store {
    /// The bytes of a publisher's stored bundles, each counted whole.
    pub fn publisher_bytes(&self, publisher: &PublicKey) -> Result<u64, StoreError> {
        Ok(u64_of(self.kv.get(&key(
            META,
            &[META_PUBLISHER, publisher.as_bytes()],
        ))?))
    }

    pub(super) fn manifest_in(
        &self,
        tx: &Tx<'_>,
        id: &BundleId,
    ) -> Result<Option<StoredManifest>, StoreError> {
        match super::values::manifest_bytes(tx, id)? {
            None => Ok(None),
            Some(bytes) => {
                let manifest = decode_unverified::<Manifest>(&bytes)
                    .map_err(|e| StoreError::Corrupt(format!("manifest {id}: {e}")))?;
                Ok(Some(StoredManifest {
                    id: *id,
                    bytes,
                    manifest,
                }))
            }
        }
    }

    /// Every stored version of a story, newest first: the story entry's
    /// bundle, then each `supersedes` back while it is stored. Each step
    /// must go to a lower version number, so a loop in signed data cannot
    /// run forever (and a chain of three or more versions keeps its
    /// first).
    pub(super) fn versions_in(
        &self,
        tx: &Tx<'_>,
        publisher: &PublicKey,
        story: &StoryId,
    ) -> Result<Vec<StoredManifest>, StoreError> {
        let skey = story_key(publisher, story);
        let Some(v) = tx.get(&skey)? else {
            return Ok(Vec::new());
        };
        let entry = StoryEntry::decode(&skey, &v)?;
        let mut out = Vec::new();
        let mut next = Some(entry.id);
        while let Some(id) = next {
            let Some(m) = self.manifest_in(tx, &id)? else {
                break;
            };
            let lower = out
                .last()
                .is_none_or(|newer: &StoredManifest| m.manifest.version < newer.manifest.version);
            if m.manifest.story != *story || !lower {
                break;
            }
            next = m.manifest.supersedes;
            out.push(m);
        }
        Ok(out)
    }

    /// Whether the bundle is held.
    pub fn has_bundle(&self, id: &BundleId) -> Result<bool, StoreError> {
        self.kv.contains(&key(MANIFEST, &[id.as_bytes()]))
    }

    /// A stored manifest.
    pub fn manifest(&self, id: &BundleId) -> Result<Option<StoredManifest>, StoreError> {
        self.manifest_in(&Tx::new(&self.kv), id)
    }

    /// A stored blob.
    pub fn blob(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = super::values::blob_bytes(&Tx::new(&self.kv), hash)? {
            return Ok(Some(v));
        }
        if !self.kv.contains(&key(REFS, &[hash.as_bytes()]))? {
            return Ok(None);
        }
        self.blobs.get(hash)
    }

    /// Up to `len` bytes of a stored blob from `offset`, with its whole
    /// size; a large blob's file is read only where asked.
    pub fn blob_range(
        &self,
        hash: &BlobHash,
        offset: u64,
        len: u64,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        if let Some(data) = super::values::blob_bytes(&Tx::new(&self.kv), hash)? {
            let total = data.len() as u64;
            let start = offset.min(total) as usize;
            let end = offset.saturating_add(len).min(total) as usize;
            return Ok(Some((total, data[start..end].to_vec())));
        }
        if !self.kv.contains(&key(REFS, &[hash.as_bytes()]))? {
            return Ok(None);
        }
        self.blobs.get_range(hash, offset, len)
    }

    /// The state of a publisher's sequence number, if the store knows it.
    pub fn seq_state(
        &self,
        publisher: &PublicKey,
        sequence: u64,
    ) -> Result<Option<SeqState>, StoreError> {
        Ok(slots::slot(|k| self.kv.get(k), publisher, sequence)?
            .and_then(|v| v.first().and_then(|b| SeqState::from_u8(*b))))
    }

    /// The bundle held under a publisher's sequence number, if any.
    pub fn held_at(
        &self,
        publisher: &PublicKey,
        sequence: u64,
    ) -> Result<Option<BundleId>, StoreError> {
        match slots::slot(|k| self.kv.get(k), publisher, sequence)? {
            Some(v) if v.first() == Some(&(SeqState::Held as u8)) => Ok(Some(id_from(&v[1..])?)),
            _ => Ok(None),
        }
    }

    /// Whether a blob is stored.
    pub fn has_blob(&self, hash: &BlobHash) -> Result<bool, StoreError> {
        Ok(self.kv.contains(&key(BLOB, &[hash.as_bytes()]))?
            || (self.kv.contains(&key(REFS, &[hash.as_bytes()]))? && self.blobs.contains(hash)?))
    }

    /// Story entries, newest first by first publication: of one publisher
    /// or all, in one language or all, in one section or all.
    pub fn stories(
        &self,
        publisher: Option<&PublicKey>,
        language: Option<&str>,
        section: Option<&str>,
    ) -> Result<Vec<StoryEntry>, StoreError> {
        let prefix = match publisher {
            Some(p) => key(STORY, &[p.as_bytes()]),
            None => vec![STORY],
        };
        let language = language.map(str::to_ascii_lowercase);
        let mut out = Vec::new();
        for item in self.kv.scan(&prefix, false) {
            let (k, v) = item?;
            let e = StoryEntry::decode(&k, &v)?;
            if language.as_ref().is_some_and(|l| *l != e.language)
                || section.is_some_and(|s| e.section.as_deref() != Some(s))
            {
                continue;
            }
            out.push(e);
        }
        out.sort_by_key(|e| std::cmp::Reverse((e.published, e.story)));
        Ok(out)
    }

    fn manifests_of(
        &self,
        entries: Vec<StoryEntry>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<StoredManifest>, StoreError> {
        let mut out = Vec::new();
        for e in entries.into_iter().skip(offset).take(limit) {
            if let Some(m) = self.manifest(&e.id)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// The newest version of each story of `publisher`, newest first by
    /// first publication, skipping `offset` and returning at most `limit`.
    pub fn latest_stories(
        &self,
        publisher: &PublicKey,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<StoredManifest>, StoreError> {
        self.manifests_of(self.stories(Some(publisher), None, None)?, offset, limit)
    }

    /// The newest version of each story in `language`, across publishers
    /// or of one, newest first.
    pub fn latest_in_language(
        &self,
        language: &str,
        publisher: Option<&PublicKey>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<StoredManifest>, StoreError> {
        self.manifests_of(
            self.stories(publisher, Some(language), None)?,
            offset,
            limit,
        )
    }

    /// Every stored version of a story, oldest first.
    pub fn history(
        &self,
        publisher: &PublicKey,
        story: &StoryId,
    ) -> Result<Vec<StoredManifest>, StoreError> {
        let mut v = self.versions_in(&Tx::new(&self.kv), publisher, story)?;
        v.reverse();
        Ok(v)
    }

    /// The sequence numbers of `publisher` in a given state, as ranges.
    fn seq_ranges(
        &self,
        publisher: &PublicKey,
        states: &[SeqState],
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        let mut seqs = Vec::new();
        for item in slots::scan(&self.kv, Some(publisher)) {
            let (_, seq, v) = item?;
            let state = v.first().and_then(|b| SeqState::from_u8(*b));
            if state.is_some_and(|s| states.contains(&s)) {
                seqs.push(seq);
            }
        }
        Ok(to_ranges(seqs))
    }

    /// Sequence numbers of `publisher` whose bundles are held.
    pub fn held_ranges(&self, publisher: &PublicKey) -> Result<Vec<(u64, u64)>, StoreError> {
        self.seq_ranges(publisher, &[SeqState::Held])
    }

    /// Sequence numbers of `publisher` the store knows (held or evicted):
    /// the ones it should not fetch again. A slot whose bundle a revocation
    /// took away is not among them: a thief held it, and the newsroom's own
    /// bundle for that number is still to be fetched.
    pub fn known_ranges(&self, publisher: &PublicKey) -> Result<Vec<(u64, u64)>, StoreError> {
        self.seq_ranges(publisher, &[SeqState::Held, SeqState::Evicted])
    }

    /// Sequence numbers below the newest head of `publisher` that the store
    /// has never held: what to fetch.
    pub fn missing(&self, publisher: &PublicKey) -> Result<Vec<(u64, u64)>, StoreError> {
        let upto = self.head(publisher)?.map_or(0, |(_, h)| h.sequence);
        Ok(gaps(&self.known_ranges(publisher)?, upto))
    }

    /// Every held bundle of `publisher`, in sequence order: (sequence, id).
    pub fn held_bundles(&self, publisher: &PublicKey) -> Result<Vec<(u64, BundleId)>, StoreError> {
        let mut out = Vec::new();
        for item in slots::scan(&self.kv, Some(publisher)) {
            let (_, seq, v) = item?;
            if v.first() == Some(&(SeqState::Held as u8)) {
                out.push((seq, id_from(&v[1..])?));
            }
        }
        Ok(out)
    }

    /// The kinds of a story's versions, for tests and displays.
    pub fn story_kinds(
        &self,
        publisher: &PublicKey,
        story: &StoryId,
    ) -> Result<Vec<Kind>, StoreError> {
        Ok(self
            .history(publisher, story)?
            .into_iter()
            .map(|m| m.manifest.kind)
            .collect())
    }

    /// Counts of what is held, and the size on disk.
    pub fn totals(&self) -> Result<Totals, StoreError> {
        Ok(Totals {
            bundles: u64_of(self.kv.get(&key(META, &[META_BUNDLES]))?),
            blobs: u64_of(self.kv.get(&key(META, &[META_BLOBS]))?),
            payload_bytes: u64_of(self.kv.get(&key(META, &[META_PAYLOAD]))?),
            disk_bytes: self.kv.disk_size()? + u64_of(self.kv.get(&key(META, &[META_BLOB_DISK]))?),
        })
    }
}
