//! The key layout: what each one-byte prefix holds, and the encodings of
//! keys and index values.
//!
//! Keys, all in one sled tree (sled 0.34 makes a batch atomic within one
//! tree only), by one-byte prefix:
//!
//! | prefix | key after it | value |
//! |---|---|---|
//! | `M` | name | meta: schema version, counters |
//! | `e` | bundle id | the number (u64 BE) of its signed manifest under `v` |
//! | `g` | blob hash | for blobs up to 16 KiB: use count (u32 BE), then the number (u64 BE) of its bytes under `v` |
//! | `v` | number (u64 BE), growing | a manifest or a small blob: its kind, its id or hash, its bytes (see `values`) |
//! | `r` | blob hash | for larger blobs, kept as files: use count (u32 BE) |
//! | `S` | publisher, block (u64 BE): sequence ÷ 32 | each slot of the block: state byte, bundle id (see `slots`) |
//! | `t` | publisher, story | the newest version: number, bundle id, first publication, language, section |
//! | `h` | publisher | the newest signed head |
//! | `c` | certificate id | signed certificate |
//! | `x` | publisher, revoked key | signed revocation |
//! | `p` | publisher, story | empty: the story is pinned |
//! | `L` | block (u64 BE): position ÷ 32 | what the store took at the block's positions (see `log`) |
//! | `w` | publisher | the newest signed mirror list (see `mirrors`) |
//! | `i` | publisher, facet, inverted time (u64 BE) | a block of the facet's stories up to that time, newest first, each with its `t` value (see `catalog`) |
//! | `n` | publisher, facet | stories in the facet, and its name; for the facet of all ones, held bundles and known sequence ranges |
//!
//! Blobs up to [`INLINE_BLOB_MAX`] are values under `v`; larger ones are
//! files beside the database (see `blobs`), made durable before the
//! batch that makes their bundle visible. A story's older versions are
//! found by following `supersedes` back from its newest. Every bundle
//! costs six writes (manifest and blob, each a value and its entry,
//! sequence slot, story entry), and the catalog index rewrites a block
//! and a counter per facet of a new story version (all, language,
//! section, both): the indices are kept to what sync, lists and eviction
//! need.

use super::StoreError;
use crate::proto::{BundleId, Manifest, PublicKey, StoryId, Timestamp};

/// Version of this key layout; a store of another version is refused,
/// except versions 1 (manifests and small blobs whole under `m` and `b`)
/// and 2 (the log and the sequence slots an entry per item under `l` and
/// `s`), which are converted at open.
pub const SCHEMA_VERSION: u32 = 3;

pub(super) const META: u8 = b'M';
pub(super) const MANIFEST: u8 = b'e';
pub(super) const BLOB: u8 = b'g';
pub(super) const VALUE: u8 = b'v';
/// Where schema 1 kept manifests and small blobs whole.
pub(super) const OLD_MANIFEST: u8 = b'm';
pub(super) const OLD_BLOB: u8 = b'b';

pub(super) const REFS: u8 = b'r';
pub(super) const SEQ: u8 = b'S';
/// Where schema 2 kept the sequence slots, an entry per slot.
pub(super) const OLD_SEQ: u8 = b's';
pub(super) const STORY: u8 = b't';
pub(super) const HEAD: u8 = b'h';
pub(super) const CERT: u8 = b'c';
pub(super) const REVOCATION: u8 = b'x';
pub(super) const PIN: u8 = b'p';
pub(super) const LOG: u8 = b'L';
/// Where schema 2 kept the log, an entry per position.
pub(super) const OLD_LOG: u8 = b'l';
pub(super) const MIRRORS: u8 = b'w';
pub(super) const INDEX: u8 = b'i';
pub(super) const COUNTS: u8 = b'n';

/// Blobs up to this size are kept in the index database, in the same
/// batch as their bundle; larger ones are files (see `blobs`). Small values
/// are cheap in sled and their space is reused; a file per small blob
/// would cost more in file-system operations than the blob itself.
pub const INLINE_BLOB_MAX: u64 = 16 * 1024;

pub(super) const META_SCHEMA: &[u8] = b"schema";
pub(super) const META_PAYLOAD: &[u8] = b"payload";
pub(super) const META_BUNDLES: &[u8] = b"bundles";
/// Followed by a publisher's key: the bytes of its bundles (manifests and
/// blobs, each bundle counted whole, shared blobs in each).
pub(super) const META_PUBLISHER: &[u8] = b"publisher-bytes/";
/// Present once the per-publisher byte counters are complete (stores made
/// before they existed get them counted at open).
pub(super) const META_PUBLISHER_COUNTED: &[u8] = b"publisher-bytes-counted";
pub(super) const META_BLOBS: &[u8] = b"blobs";
/// The position the log's next entry gets.
pub(super) const META_LOG_NEXT: &[u8] = b"log-next";
/// The name of the store's log, set once it is complete.
pub(super) const META_LOG_ID: &[u8] = b"log-id";
/// Followed by a mirror's peer id: where this reader is in its log.
pub(super) const META_LOG_CURSOR: &[u8] = b"log-cursor/";
/// Present once the catalog index (`i`, `n`) is complete (stores made
/// before it existed, or repaired, get it built at open).
pub(super) const META_CATALOG: &[u8] = b"catalog-blocks";
/// The mark of the catalog index when it had an entry per story and
/// facet: removed when the blocks are built, so that a build of that
/// time rebuilds its own index instead of misreading blocks, and found
/// again if such a build has done so.
pub(super) const META_CATALOG_ENTRIES: &[u8] = b"catalog-indexed";
pub(super) const META_BLOB_DISK: &[u8] = b"blobdisk";
/// The number the next value under `v` gets.
pub(super) const META_VALUE_NEXT: &[u8] = b"value-next";
/// The node's address book (see `book`).
pub(super) const META_ADDRESS_BOOK: &[u8] = b"address-book";

/// What a sequence number's index entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqState {
    /// The bundle is stored.
    Held = 0,
    /// It was stored and evicted under the quota; not fetched again.
    Evicted = 1,
    /// It was removed because its signing key was revoked for that time.
    Revoked = 2,
}

impl SeqState {
    pub(super) fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Held,
            1 => Self::Evicted,
            2 => Self::Revoked,
            _ => return None,
        })
    }
}

pub(super) fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// A bundle's bytes as counted per publisher: its manifest and every blob.
pub(super) fn bundle_bytes(manifest_bytes: &[u8], m: &Manifest) -> u64 {
    manifest_bytes.len() as u64 + m.entries.iter().map(|e| e.size).sum::<u64>()
}

pub(super) fn id_from(bytes: &[u8]) -> Result<BundleId, StoreError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("an index entry is not a bundle id".into()))?;
    Ok(BundleId(arr))
}

pub(super) fn u64_of(v: Option<Vec<u8>>) -> u64 {
    v.and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

pub(super) fn story_key(publisher: &PublicKey, story: &StoryId) -> Vec<u8> {
    key(STORY, &[publisher.as_bytes(), story.as_bytes()])
}

/// What the store keeps of a story's newest version, so lists need not
/// decode manifests: the value of its `t` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryEntry {
    /// The publisher.
    pub publisher: PublicKey,
    /// The story.
    pub story: StoryId,
    /// Its newest stored version.
    pub version: u32,
    /// That version's bundle.
    pub id: BundleId,
    /// First publication of the story.
    pub published: Timestamp,
    /// Language of the newest version.
    pub language: String,
    /// Section of the newest version, if any.
    pub section: Option<String>,
}

impl StoryEntry {
    pub(super) fn of(m: &Manifest, id: BundleId) -> Self {
        Self {
            publisher: m.publisher,
            story: m.story,
            version: m.version,
            id,
            published: m.metadata.published,
            language: m.metadata.language.to_ascii_lowercase(),
            section: m.metadata.section.clone(),
        }
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let section = self.section.as_deref().unwrap_or("");
        let mut v = Vec::with_capacity(48 + self.language.len() + section.len());
        v.extend_from_slice(&self.version.to_be_bytes());
        v.extend_from_slice(self.id.as_bytes());
        v.extend_from_slice(&self.published.0.to_be_bytes());
        // Both are bounded by the manifest limits (35 and 128 bytes).
        v.push(self.language.len() as u8);
        v.extend_from_slice(self.language.as_bytes());
        v.push(section.len() as u8);
        v.extend_from_slice(section.as_bytes());
        v
    }

    pub(super) fn decode(k: &[u8], v: &[u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt("story entry".into());
        if k.len() != 1 + 32 + 16 || v.len() < 4 + 32 + 8 + 2 {
            return Err(bad());
        }
        let publisher = PublicKey(k[1..33].try_into().map_err(|_| bad())?);
        let story = StoryId(k[33..49].try_into().map_err(|_| bad())?);
        let version = u32::from_be_bytes(v[0..4].try_into().map_err(|_| bad())?);
        let id = BundleId(v[4..36].try_into().map_err(|_| bad())?);
        let published = Timestamp(u64::from_be_bytes(v[36..44].try_into().map_err(|_| bad())?));
        let ll = v[44] as usize;
        let language = std::str::from_utf8(v.get(45..45 + ll).ok_or_else(bad)?)
            .map_err(|_| bad())?
            .to_owned();
        let sl = *v.get(45 + ll).ok_or_else(bad)? as usize;
        let section = std::str::from_utf8(v.get(46 + ll..46 + ll + sl).ok_or_else(bad)?)
            .map_err(|_| bad())?;
        let section = (!section.is_empty()).then(|| section.to_owned());
        Ok(Self {
            publisher,
            story,
            version,
            id,
            published,
            language,
            section,
        })
    }
}
