//! The local store: everything a node has verified, on sled, with an
//! in-memory twin for tests.
//!
//! It accepts only values that passed the trust policy (`VerifiedBundle`,
//! `Verified<…>`), so it never holds anything unchecked, and it records the
//! trust policy's verdicts (`RevocationChange`, `TrustPolicy::accept_head`)
//! instead of deciding them again. A bundle becomes
//! visible whole or not at all: its blobs are written and made durable
//! first, then its manifest and index entries in one atomic batch. Callers learn that bundles are stored only
//! after a flush, and one flush covers a whole group of bundles.
//!
//! Keys, all in one sled tree (sled 0.34 makes a batch atomic within one
//! tree only), by one-byte prefix:
//!
//! | prefix | key after it | value |
//! |---|---|---|
//! | `M` | name | meta: schema version, counters |
//! | `m` | bundle id | signed manifest |
//! | `b` | blob hash | for blobs up to 16 KiB: use count (u32 BE), then the bytes |
//! | `r` | blob hash | for larger blobs, kept as files: use count (u32 BE) |
//! | `s` | publisher, sequence (u64 BE) | state byte, bundle id |
//! | `t` | publisher, story | the newest version: number, bundle id, first publication, language, section |
//! | `h` | publisher | the newest signed head |
//! | `c` | certificate id | signed certificate |
//! | `x` | publisher, revoked key | signed revocation |
//! | `p` | publisher, story | empty: the story is pinned |
//!
//! Blobs up to [`INLINE_BLOB_MAX`] are values under `b`; larger ones are
//! files beside the database (see `blobs`), made durable before the
//! batch that makes their bundle visible. A story's older versions are
//! found by following `supersedes` back from its newest. Every bundle
//! costs four writes (manifest, blob with its use count, sequence slot,
//! story entry): the indices are kept to what sync, lists and eviction need.

pub mod archive;
mod blobs;
mod kv;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::proto::{
    BlobHash, BundleId, CertId, Head, KeyCertificate, Kind, Manifest, PolicyError, PublicKey,
    Revocation, RevocationChange, StoryId, Timestamp, TrustPolicy, Verified, VerifiedBundle,
    decode_unverified, revokes,
};
use blobs::{Blobs, disk_cost};
use kv::{Kv, Op};

/// Version of the key layout above; a store of another version is refused.
pub const SCHEMA_VERSION: u32 = 1;

const META: u8 = b'M';
const MANIFEST: u8 = b'm';
const BLOB: u8 = b'b';

const REFS: u8 = b'r';
const SEQ: u8 = b's';
const STORY: u8 = b't';
const HEAD: u8 = b'h';
const CERT: u8 = b'c';
const REVOCATION: u8 = b'x';
const PIN: u8 = b'p';

/// Blobs up to this size are kept in the index database, in the same
/// batch as their bundle; larger ones are files (see `blobs`). Small values
/// are cheap in sled and their space is reused; a file per small blob
/// would cost more in file-system operations than the blob itself.
pub const INLINE_BLOB_MAX: u64 = 16 * 1024;

const META_SCHEMA: &[u8] = b"schema";
const META_PAYLOAD: &[u8] = b"payload";
const META_BUNDLES: &[u8] = b"bundles";
/// Followed by a publisher's key: the bytes of its bundles (manifests and
/// blobs, each bundle counted whole, shared blobs in each).
const META_PUBLISHER: &[u8] = b"publisher-bytes/";
/// Present once the per-publisher byte counters are complete (stores made
/// before they existed get them counted at open).
const META_PUBLISHER_COUNTED: &[u8] = b"publisher-bytes-counted";
const META_BLOBS: &[u8] = b"blobs";
const META_BLOB_DISK: &[u8] = b"blobdisk";

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Another process has the store open.
    #[error(
        "the store at {0} is in use by another kolokol process (a running node?); stop it, or use the node's control API"
    )]
    Locked(PathBuf),
    /// The database reported an error.
    #[error("store backend: {0}")]
    Backend(sled::Error),
    /// A thread panicked while holding the store.
    #[error("the store's lock was poisoned by a crashed thread")]
    Poisoned,
    /// Stored data is not what the store wrote.
    #[error("corrupt store entry: {0}; run `kolokol store check --repair`")]
    Corrupt(String),
    /// A bundle's certificate must be stored before the bundle.
    #[error("certificate {0} is not in the store")]
    MissingCertificate(CertId),
    /// A head lower than the stored one.
    #[error("head with sequence {offered} is older than the stored head with sequence {stored}")]
    HeadRollback {
        /// The stored head's sequence.
        stored: u64,
        /// The offered head's sequence.
        offered: u64,
    },
    /// A file of the store could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A store written by another version of Kolokol.
    #[error("the store has schema version {found}; this build reads version {SCHEMA_VERSION}")]
    SchemaMismatch {
        /// The version found.
        found: u32,
    },
}

/// Store settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Largest size on disk before eviction starts; `None` for no limit.
    pub quota_bytes: Option<u64>,
    /// Eviction never touches a publisher's newest this many stories.
    pub keep_newest: usize,
    /// Most bytes of one publisher's bundles (each bundle counted whole);
    /// its oldest stories go first beyond it. `None` for no limit.
    pub publisher_quota_bytes: Option<u64>,
    /// Stories first published longer ago than this many days are evicted
    /// (pins and each publisher's newest `keep_newest` excepted). `None`
    /// keeps them while the quotas allow.
    pub retention_days: Option<u64>,
    /// sled's page cache.
    pub cache_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            quota_bytes: None,
            keep_newest: 20,
            publisher_quota_bytes: None,
            retention_days: None,
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What happened to one bundle given to [`Store::ingest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored now.
    New,
    /// Already held.
    Duplicate,
    /// Another bundle holds this publisher's sequence number: a sign that
    /// the signing key made two different bundles for one number.
    SequenceConflict {
        /// The bundle already stored under the number.
        existing: BundleId,
    },
    /// Refused: the key that signed it was revoked for its signing time.
    Revoked,
}

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
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Held,
            1 => Self::Evicted,
            2 => Self::Revoked,
            _ => return None,
        })
    }
}

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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

/// What eviction removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Eviction {
    /// Stories evicted, with every version.
    pub stories: Vec<(PublicKey, StoryId)>,
    /// Bundles removed.
    pub bundles: u64,
    /// Payload bytes removed.
    pub bytes: u64,
}

/// What an integrity check found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Manifests checked.
    pub manifests: u64,
    /// Blobs checked.
    pub blobs: u64,
    /// Problems, each with the entry it concerns.
    pub problems: Vec<String>,
    /// Bundles removed by `--repair`; peers can supply them again.
    pub removed_bundles: Vec<BundleId>,
}

/// Writes gathered for one atomic batch, read back before they are
/// applied, with the counter changes they make.
struct Tx<'a> {
    kv: &'a Kv,
    writes: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    payload: i64,
    bundles: i64,
    blobs: i64,
    blob_disk: i64,
    per_publisher: HashMap<PublicKey, i64>,
}

impl<'a> Tx<'a> {
    fn new(kv: &'a Kv) -> Self {
        Self {
            kv,
            writes: Default::default(),
            payload: 0,
            bundles: 0,
            blobs: 0,
            blob_disk: 0,
            per_publisher: HashMap::new(),
        }
    }

    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(k) {
            Some(v) => Ok(v.clone()),
            None => self.kv.get(k),
        }
    }

    fn contains(&self, k: &[u8]) -> Result<bool, StoreError> {
        match self.writes.get(k) {
            Some(v) => Ok(v.is_some()),
            None => self.kv.contains(k),
        }
    }

    fn put(&mut self, k: Vec<u8>, v: Vec<u8>) {
        self.writes.insert(k, Some(v));
    }

    fn delete(&mut self, k: Vec<u8>) {
        self.writes.insert(k, None);
    }

    /// Applies every write and the counter changes as one batch.
    fn commit(mut self) -> Result<(), StoreError> {
        for (name, delta) in [
            (META_PAYLOAD, self.payload),
            (META_BUNDLES, self.bundles),
            (META_BLOBS, self.blobs),
            (META_BLOB_DISK, self.blob_disk),
        ] {
            if delta != 0 {
                let k = key(META, &[name]);
                let v = u64_of(self.kv.get(&k)?).saturating_add_signed(delta);
                self.writes.insert(k, Some(v.to_be_bytes().to_vec()));
            }
        }
        for (publisher, delta) in std::mem::take(&mut self.per_publisher) {
            if delta != 0 {
                let k = key(META, &[META_PUBLISHER, publisher.as_bytes()]);
                let v = u64_of(self.kv.get(&k)?).saturating_add_signed(delta);
                self.writes.insert(k, Some(v.to_be_bytes().to_vec()));
            }
        }
        if self.writes.is_empty() {
            return Ok(());
        }
        let ops = std::mem::take(&mut self.writes)
            .into_iter()
            .map(|(k, v)| match v {
                Some(v) => Op::Put(k, v),
                None => Op::Delete(k),
            })
            .collect();
        self.kv.apply(ops)
    }
}

/// The local store.
pub struct Store {
    kv: Kv,
    blobs: Blobs,
    config: StoreConfig,
    path: Option<PathBuf>,
    /// Signing key of each certificate, by id (certificates never change).
    cert_keys: Mutex<HashMap<CertId, PublicKey>>,
    /// Writers go one at a time: each batch is built from reads that no
    /// other writer may change before it is applied.
    write: Mutex<()>,
}

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// A bundle's bytes as counted per publisher: its manifest and every blob.
fn bundle_bytes(manifest_bytes: &[u8], m: &Manifest) -> u64 {
    manifest_bytes.len() as u64 + m.entries.iter().map(|e| e.size).sum::<u64>()
}

fn id_from(bytes: &[u8]) -> Result<BundleId, StoreError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("an index entry is not a bundle id".into()))?;
    Ok(BundleId(arr))
}

fn u64_of(v: Option<Vec<u8>>) -> u64 {
    v.and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// How many stored manifests use a blob: for an inline blob the first four
/// bytes of its value (saving a write per bundle), for a file its `r` entry.
fn ref_count(tx: &Tx<'_>, hash: &BlobHash) -> Result<u32, StoreError> {
    let v = match tx.get(&key(BLOB, &[hash.as_bytes()]))? {
        Some(v) => v,
        None => tx.get(&key(REFS, &[hash.as_bytes()]))?.unwrap_or_default(),
    };
    Ok(v.get(..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes))
}

/// Sets a blob's count; 0 removes its entry. An inline blob's value is
/// rewritten with the count in front (`data` when it is new).
fn set_ref_count(
    tx: &mut Tx<'_>,
    hash: &BlobHash,
    count: u32,
    inline: bool,
    data: Option<&[u8]>,
) -> Result<(), StoreError> {
    let k = if inline {
        key(BLOB, &[hash.as_bytes()])
    } else {
        key(REFS, &[hash.as_bytes()])
    };
    if count == 0 {
        tx.delete(k);
        return Ok(());
    }
    let mut v = if inline {
        match tx.get(&k)? {
            Some(v) => v,
            None => {
                let mut v = vec![0; 4];
                v.extend_from_slice(
                    data.ok_or_else(|| StoreError::Corrupt(format!("blob {hash} is missing")))?,
                );
                v
            }
        }
    } else {
        vec![0; 4]
    };
    if v.len() < 4 {
        return Err(StoreError::Corrupt(format!(
            "blob {hash} entry is too short"
        )));
    }
    v[..4].copy_from_slice(&count.to_be_bytes());
    tx.put(k, v);
    Ok(())
}

fn story_key(publisher: &PublicKey, story: &StoryId) -> Vec<u8> {
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
    fn of(m: &Manifest, id: BundleId) -> Self {
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

    fn encode(&self) -> Vec<u8> {
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

    fn decode(k: &[u8], v: &[u8]) -> Result<Self, StoreError> {
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

/// Merges sorted sequence numbers into inclusive ranges.
pub fn to_ranges(seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in seqs {
        match out.last_mut() {
            Some((_, end)) if s == end.saturating_add(1) => *end = s,
            Some((_, end)) if s <= *end => {}
            _ => out.push((s, s)),
        }
    }
    out
}

/// The numbers in `1..=upto` that no range covers.
pub fn gaps(ranges: &[(u64, u64)], upto: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut next = 1u64;
    for &(a, b) in ranges {
        if a > upto {
            break;
        }
        if a > next {
            out.push((next, a - 1));
        }
        next = next.max(b.saturating_add(1));
    }
    if next <= upto {
        out.push((next, upto));
    }
    out
}

impl Store {
    /// Opens (or creates) the store in the folder `path`: the index
    /// database in `path/index`, blob files in `path/blobs`.
    pub fn open(path: &Path, config: StoreConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path).map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })?;
        // The database lock comes first: nothing else is touched while
        // another process holds the store.
        let kv = Kv::open_sled(&path.join("index"), config.cache_bytes).map_err(|e| match e {
            StoreError::Locked(_) => StoreError::Locked(path.to_owned()),
            other => other,
        })?;
        let blobs = Blobs::open(&path.join("blobs"))?;
        let store = Self::init(kv, blobs, config, Some(path.to_owned()))?;
        store.sweep_orphans()?;
        store.count_publishers()?;
        Ok(store)
    }

    /// A store in memory, with the same behaviour, for tests.
    pub fn memory(config: StoreConfig) -> Self {
        match Self::init(Kv::memory(), Blobs::memory(), config, None) {
            Ok(s) => s,
            // The memory backend has no failure mode at init.
            Err(e) => unreachable!("in-memory store init failed: {e}"),
        }
    }

    fn init(
        kv: Kv,
        blobs: Blobs,
        config: StoreConfig,
        path: Option<PathBuf>,
    ) -> Result<Self, StoreError> {
        let schema_key = key(META, &[META_SCHEMA]);
        match kv.get(&schema_key)? {
            None => {
                kv.apply(vec![Op::Put(
                    schema_key,
                    SCHEMA_VERSION.to_be_bytes().to_vec(),
                )])?;
                kv.flush()?;
            }
            Some(v) => {
                let found = v.try_into().map(u32::from_be_bytes).unwrap_or(0);
                if found != SCHEMA_VERSION {
                    return Err(StoreError::SchemaMismatch { found });
                }
            }
        }
        Ok(Self {
            kv,
            blobs,
            config,
            path,
            cert_keys: Mutex::new(HashMap::new()),
            write: Mutex::new(()),
        })
    }

    /// Removes blob files no stored bundle refers to: left by a crash after
    /// a blob was written and before its bundle's batch was applied.
    fn sweep_orphans(&self) -> Result<(), StoreError> {
        let _w = self.lock()?;
        let mut removed = 0;
        for hash in self.blobs.list()? {
            if !self.kv.contains(&key(REFS, &[hash.as_bytes()]))? {
                self.blobs.remove(&hash)?;
                removed += 1;
            }
        }
        if removed > 0 {
            info!(removed, "removed blob files of bundles never stored");
        }
        Ok(())
    }

    /// Counts each publisher's bytes from the manifests, once, for a
    /// store made before the counters existed (and after a repair).
    fn count_publishers(&self) -> Result<(), StoreError> {
        if self.kv.contains(&key(META, &[META_PUBLISHER_COUNTED]))? {
            return Ok(());
        }
        let _w = self.lock()?;
        let mut sums: HashMap<PublicKey, u64> = HashMap::new();
        for item in self.kv.scan(&[MANIFEST], false) {
            let (_, v) = item?;
            if let Ok(m) = decode_unverified::<Manifest>(&v) {
                *sums.entry(m.publisher).or_default() += bundle_bytes(&v, &m);
            }
        }
        let mut ops = Vec::new();
        for item in self.kv.scan(&key(META, &[META_PUBLISHER]), false) {
            let (k, _) = item?;
            ops.push(Op::Delete(k));
        }
        for (p, n) in sums {
            ops.push(Op::Put(
                key(META, &[META_PUBLISHER, p.as_bytes()]),
                n.to_be_bytes().to_vec(),
            ));
        }
        ops.push(Op::Put(key(META, &[META_PUBLISHER_COUNTED]), vec![1]));
        self.kv.apply(ops)?;
        self.kv.flush()
    }

    /// The bytes of a publisher's stored bundles, each counted whole.
    pub fn publisher_bytes(&self, publisher: &PublicKey) -> Result<u64, StoreError> {
        Ok(u64_of(self.kv.get(&key(
            META,
            &[META_PUBLISHER, publisher.as_bytes()],
        ))?))
    }

    /// Where the store lives on disk, if it does.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The settings.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, ()>, StoreError> {
        self.write.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.kv.flush()
    }

    // ---- trust objects ----

    /// Keeps a verified certificate. Returns whether it was new.
    pub fn put_certificate(&self, cert: &Verified<KeyCertificate>) -> Result<bool, StoreError> {
        let _w = self.lock()?;
        let k = key(CERT, &[cert.id().as_bytes()]);
        if self.kv.contains(&k)? {
            return Ok(false);
        }
        self.kv.apply(vec![Op::Put(k, cert.bytes().to_vec())])?;
        Ok(true)
    }

    /// Records what the policy decided a revocation changed
    /// ([`TrustPolicy::add_revocation`]): keeps the revocation when it is
    /// new or wider, drops the stored head when the policy dropped its own,
    /// and removes the bundles the revocation covers. Those could no longer
    /// be verified, so they must not be shown as verified; their sequence
    /// numbers are marked revoked so they are not fetched again. Returns
    /// the removed bundles.
    pub fn record_revocation(
        &self,
        change: &RevocationChange,
    ) -> Result<Vec<BundleId>, StoreError> {
        if !change.changed && !change.head_dropped {
            return Ok(Vec::new());
        }
        let _w = self.lock()?;
        let rev = &change.revocation;
        let mut ops = Vec::new();
        if change.changed {
            ops.push(Op::Put(
                key(REVOCATION, &[rev.publisher.as_bytes(), rev.key.as_bytes()]),
                rev.bytes().to_vec(),
            ));
        }
        if change.head_dropped {
            ops.push(Op::Delete(key(HEAD, &[rev.publisher.as_bytes()])));
            warn!(key = %rev.key.short(), "dropped a head signed by a revoked key");
        }
        self.kv.apply(ops)?;
        let mut doomed = Vec::new();
        if change.changed {
            for item in self.kv.scan(&key(SEQ, &[rev.publisher.as_bytes()]), false) {
                let (_, v) = item?;
                if v.first() != Some(&(SeqState::Held as u8)) {
                    continue;
                }
                let id = id_from(&v[1..])?;
                if let Some(m) = self.manifest(&id)?
                    && change.covers(&m.manifest.certificate, m.manifest.signed_at)
                {
                    doomed.push(id);
                }
            }
            for id in &doomed {
                self.remove_bundle(id, SeqState::Revoked)?;
            }
        }
        if !doomed.is_empty() {
            warn!(count = doomed.len(), key = %rev.key.short(), "removed bundles signed by a revoked key");
        }
        self.kv.flush()?;
        Ok(doomed)
    }

    /// Records a head the policy accepted as its trusted head
    /// ([`TrustPolicy::accept_head`], which refuses rollbacks and knows the
    /// stored head through [`Store::load_trust`]). As a defence against a
    /// caller that skipped the policy, a head with a lower sequence number
    /// than the stored one is refused, also across restarts.
    pub fn record_head(&self, head: &Verified<Head>) -> Result<(), StoreError> {
        let _w = self.lock()?;
        let k = key(HEAD, &[head.publisher.as_bytes()]);
        if let Some(old) = self.kv.get(&k)? {
            let old = decode_unverified::<Head>(&old)
                .map_err(|e| StoreError::Corrupt(format!("head: {e}")))?;
            if head.sequence < old.sequence {
                return Err(StoreError::HeadRollback {
                    stored: old.sequence,
                    offered: head.sequence,
                });
            }
        }
        self.kv.apply(vec![Op::Put(k, head.bytes().to_vec())])
    }

    /// The newest stored head of `publisher`.
    pub fn head(&self, publisher: &PublicKey) -> Result<Option<(Vec<u8>, Head)>, StoreError> {
        match self.kv.get(&key(HEAD, &[publisher.as_bytes()]))? {
            None => Ok(None),
            Some(b) => {
                let h = decode_unverified::<Head>(&b)
                    .map_err(|e| StoreError::Corrupt(format!("head: {e}")))?;
                Ok(Some((b, h)))
            }
        }
    }

    /// Teaches `policy` the stored certificates, revocations and heads, so
    /// rollback protection and revocations hold across restarts. Objects of
    /// publishers the policy does not trust are skipped.
    pub fn load_trust(&self, policy: &mut TrustPolicy, now: Timestamp) -> Result<(), StoreError> {
        for item in self.kv.scan(&[CERT], false) {
            let (_, v) = item?;
            match policy.learn_certificate(&v) {
                Ok(_) | Err(PolicyError::UnknownPublisher { .. }) => {}
                Err(e) => warn!("stored certificate no longer verifies: {e}"),
            }
        }
        for item in self.kv.scan(&[REVOCATION], false) {
            let (_, v) = item?;
            match policy.learn_revocation(&v) {
                Ok(_) | Err(PolicyError::UnknownPublisher { .. }) => {}
                Err(e) => warn!("stored revocation no longer verifies: {e}"),
            }
        }
        for item in self.kv.scan(&[HEAD], false) {
            let (_, v) = item?;
            match policy.verify_head(&v, now) {
                Ok(h) => {
                    policy.accept_head(h);
                }
                Err(PolicyError::UnknownPublisher { .. }) => {}
                Err(e) => warn!("stored head not used: {e}"),
            }
        }
        Ok(())
    }

    /// Signed certificates of `publisher`.
    pub fn certificates_of(&self, publisher: &PublicKey) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        for item in self.kv.scan(&[CERT], false) {
            let (_, v) = item?;
            if decode_unverified::<KeyCertificate>(&v).is_ok_and(|c| &c.publisher == publisher) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// A stored certificate by its id, decoded (it was verified when it
    /// was stored).
    pub fn certificate(&self, id: &CertId) -> Result<Option<KeyCertificate>, StoreError> {
        match self.kv.get(&key(CERT, &[id.as_bytes()]))? {
            Some(v) => Ok(decode_unverified::<KeyCertificate>(&v).ok()),
            None => Ok(None),
        }
    }

    /// Signed revocations of `publisher`.
    pub fn revocations_of(&self, publisher: &PublicKey) -> Result<Vec<Vec<u8>>, StoreError> {
        self.kv
            .scan(&key(REVOCATION, &[publisher.as_bytes()]), false)
            .map(|r| r.map(|(_, v)| v))
            .collect()
    }

    /// Every publisher the store has certificates of.
    pub fn publishers(&self) -> Result<Vec<PublicKey>, StoreError> {
        let mut set = std::collections::BTreeSet::new();
        for item in self.kv.scan(&[CERT], false) {
            let (_, v) = item?;
            if let Ok(c) = decode_unverified::<KeyCertificate>(&v) {
                set.insert(c.publisher);
            }
        }
        Ok(set.into_iter().collect())
    }

    // ---- bundles ----

    /// Stores bundles, each whole or not at all, then flushes once for all
    /// of them (group commit). Every `New` outcome is durable when this
    /// returns. The whole group is one atomic batch: a crash loses the
    /// group, none of which was reported stored, or nothing.
    pub fn ingest(&self, bundles: &[VerifiedBundle]) -> Result<Vec<Ingested>, StoreError> {
        let _w = self.lock()?;
        // Large blobs first, made durable together; only then the batch
        // that makes the bundles visible. A crash in between leaves only
        // files nothing refers to, which the next open removes.
        let mut wrote = false;
        for b in bundles {
            if self.kv.contains(&key(MANIFEST, &[b.id().as_bytes()]))? {
                continue;
            }
            for (entry, data) in b.blobs() {
                if entry.size > INLINE_BLOB_MAX {
                    wrote |= self.blobs.write(&entry.hash, data)?;
                }
            }
        }
        if wrote {
            self.blobs.sync()?;
        }
        let mut tx = Tx::new(&self.kv);
        let mut out = Vec::with_capacity(bundles.len());
        for b in bundles {
            out.push(self.ingest_one(&mut tx, b)?);
        }
        tx.commit()?;
        if out.contains(&Ingested::New) {
            self.kv.flush()?;
        }
        Ok(out)
    }

    /// The signing key a stored certificate certifies, cached: every
    /// bundle's revocation check needs it.
    fn signing_key_of(&self, tx: &Tx<'_>, cert: &CertId) -> Result<Option<PublicKey>, StoreError> {
        if let Some(k) = self
            .cert_keys
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .get(cert)
        {
            return Ok(Some(*k));
        }
        let Some(bytes) = tx.get(&key(CERT, &[cert.as_bytes()]))? else {
            return Ok(None);
        };
        let c = decode_unverified::<KeyCertificate>(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("certificate {cert}: {e}")))?;
        self.cert_keys
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .insert(*cert, c.signing_key);
        Ok(Some(c.signing_key))
    }

    fn ingest_one(&self, tx: &mut Tx<'_>, b: &VerifiedBundle) -> Result<Ingested, StoreError> {
        let id = b.id();
        let m = b.manifest();
        let mkey = key(MANIFEST, &[id.as_bytes()]);
        if tx.contains(&mkey)? {
            return Ok(Ingested::Duplicate);
        }
        let Some(signing_key) = self.signing_key_of(tx, &m.certificate)? else {
            return Err(StoreError::MissingCertificate(m.certificate));
        };
        let seq_key = key(SEQ, &[m.publisher.as_bytes(), &m.sequence.to_be_bytes()]);
        if let Some(v) = tx.get(&seq_key)? {
            let existing = id_from(&v[1..])?;
            match SeqState::from_u8(v[0]) {
                _ if existing != id => return Ok(Ingested::SequenceConflict { existing }),
                Some(SeqState::Revoked) => return Ok(Ingested::Revoked),
                // An evicted bundle offered again (for example after a pin)
                // is stored again.
                _ => {}
            }
        }
        // A revocation stored earlier applies to bundles arriving later.
        if let Some(rev) = tx.get(&key(
            REVOCATION,
            &[m.publisher.as_bytes(), signing_key.as_bytes()],
        ))? && let Ok(rev) = decode_unverified::<Revocation>(&rev)
            && revokes(&rev, m.signed_at)
        {
            return Ok(Ingested::Revoked);
        }

        tx.put(mkey, m.bytes().to_vec());
        tx.payload += m.bytes().len() as i64;
        let mut increments: HashMap<BlobHash, (u32, &[u8])> = HashMap::new();
        for (entry, data) in b.blobs() {
            increments.entry(entry.hash).or_insert((0, data)).0 += 1;
        }
        for (hash, (inc, data)) in increments {
            let count = ref_count(tx, &hash)?;
            if count == 0 {
                if data.len() as u64 > INLINE_BLOB_MAX {
                    if !self.blobs.contains(&hash)? {
                        return Err(StoreError::Corrupt(format!(
                            "blob {hash} vanished before its bundle was stored"
                        )));
                    }
                    tx.blob_disk += disk_cost(data.len() as u64) as i64;
                }
                tx.payload += data.len() as i64;
                tx.blobs += 1;
            }
            set_ref_count(
                tx,
                &hash,
                count + inc,
                data.len() as u64 <= INLINE_BLOB_MAX,
                Some(data),
            )?;
        }
        let mut seq_val = vec![SeqState::Held as u8];
        seq_val.extend_from_slice(id.as_bytes());
        tx.put(seq_key, seq_val);
        // The story's entry names its newest version; a version arriving
        // after a newer one leaves it alone.
        let skey = story_key(&m.publisher, &m.story);
        let newer = match tx.get(&skey)? {
            Some(v) => {
                let cur = StoryEntry::decode(&skey, &v)?;
                (m.version, id) > (cur.version, cur.id)
            }
            None => true,
        };
        if newer {
            tx.put(skey, StoryEntry::of(m, id).encode());
        }
        tx.bundles += 1;
        *tx.per_publisher.entry(m.publisher).or_default() += bundle_bytes(m.bytes(), m) as i64;
        debug!(bundle = %id.short(), seq = m.sequence, "stored");
        Ok(Ingested::New)
    }

    fn manifest_in(
        &self,
        tx: &Tx<'_>,
        id: &BundleId,
    ) -> Result<Option<StoredManifest>, StoreError> {
        match tx.get(&key(MANIFEST, &[id.as_bytes()]))? {
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
    /// bundle, then each `supersedes` back while it is stored, skipping
    /// `except`. Bounded by the manifest's version number, so a loop in
    /// signed data cannot run forever.
    fn versions_in(
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
            if m.manifest.story != *story || out.len() > m.manifest.version as usize {
                break;
            }
            next = m.manifest.supersedes;
            out.push(m);
        }
        Ok(out)
    }

    /// Removes one bundle and its index entries, leaves `state` in its
    /// sequence slot, and points the story's lists at the next newest
    /// version, in one atomic batch. Caller holds the write lock.
    fn remove_bundle(&self, id: &BundleId, state: SeqState) -> Result<u64, StoreError> {
        let mut tx = Tx::new(&self.kv);
        let Some(sm) = self.manifest_in(&tx, id)? else {
            return Ok(0);
        };
        let m = &sm.manifest;
        tx.delete(key(MANIFEST, &[id.as_bytes()]));
        let mut removed = sm.bytes.len() as u64;
        let mut unlink = Vec::new();
        let mut decrements: HashMap<BlobHash, u32> = HashMap::new();
        for e in &m.entries {
            *decrements.entry(e.hash).or_default() += 1;
        }
        for (hash, dec) in decrements {
            let count = ref_count(&tx, &hash)?;
            let size = m
                .entries
                .iter()
                .find(|e| e.hash == hash)
                .map_or(0, |e| e.size);
            let inline = size <= INLINE_BLOB_MAX;
            if count <= dec {
                removed += size;
                if !inline {
                    tx.blob_disk -= disk_cost(size) as i64;
                    unlink.push(hash);
                }
                tx.blobs -= 1;
            }
            set_ref_count(&mut tx, &hash, count.saturating_sub(dec), inline, None)?;
        }
        let mut seq_val = vec![state as u8];
        seq_val.extend_from_slice(id.as_bytes());
        tx.put(
            key(SEQ, &[m.publisher.as_bytes(), &m.sequence.to_be_bytes()]),
            seq_val,
        );
        // If this was the story's newest version, the entry falls back to
        // the version it superseded, when that is stored.
        let skey = story_key(&m.publisher, &m.story);
        if let Some(v) = tx.get(&skey)?
            && StoryEntry::decode(&skey, &v)?.id == *id
        {
            match m
                .supersedes
                .map(|prev| self.manifest_in(&tx, &prev))
                .transpose()?
                .flatten()
            {
                Some(prev) if prev.manifest.story == m.story => {
                    tx.put(skey, StoryEntry::of(&prev.manifest, prev.id).encode());
                }
                _ => tx.delete(skey),
            }
        }
        tx.payload -= removed as i64;
        tx.bundles -= 1;
        *tx.per_publisher.entry(m.publisher).or_default() -= bundle_bytes(&sm.bytes, m) as i64;
        tx.commit()?;
        // Files go after the index no longer names them.
        for hash in unlink {
            self.blobs.remove(&hash)?;
        }
        Ok(removed)
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
        if let Some(v) = self.kv.get(&key(BLOB, &[hash.as_bytes()]))? {
            return Ok(v.get(4..).map(<[u8]>::to_vec));
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
        if let Some(v) = self.kv.get(&key(BLOB, &[hash.as_bytes()]))? {
            let data = v.get(4..).unwrap_or_default();
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
        Ok(self
            .kv
            .get(&key(SEQ, &[publisher.as_bytes(), &sequence.to_be_bytes()]))?
            .and_then(|v| v.first().and_then(|b| SeqState::from_u8(*b))))
    }

    /// The bundle held under a publisher's sequence number, if any.
    pub fn held_at(
        &self,
        publisher: &PublicKey,
        sequence: u64,
    ) -> Result<Option<BundleId>, StoreError> {
        match self
            .kv
            .get(&key(SEQ, &[publisher.as_bytes(), &sequence.to_be_bytes()]))?
        {
            Some(v) if v.first() == Some(&(SeqState::Held as u8)) => Ok(Some(id_from(&v[1..])?)),
            _ => Ok(None),
        }
    }

    /// A blob's bytes, inline or in its file, whether referenced or not.
    fn blob_bytes(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StoreError> {
        match self.kv.get(&key(BLOB, &[hash.as_bytes()]))? {
            Some(v) => Ok(v.get(4..).map(<[u8]>::to_vec)),
            None => self.blobs.get(hash),
        }
    }

    fn blob_exists(&self, hash: &BlobHash) -> Result<bool, StoreError> {
        Ok(self.kv.contains(&key(BLOB, &[hash.as_bytes()]))? || self.blobs.contains(hash)?)
    }

    /// Every blob present, inline or as a file.
    fn all_blobs(&self) -> Result<Vec<BlobHash>, StoreError> {
        let mut out = self.blobs.list()?;
        for item in self.kv.scan(&[BLOB], false) {
            let (k, _) = item?;
            out.push(BlobHash(
                k[1..]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("blob key".into()))?,
            ));
        }
        Ok(out)
    }

    fn delete_blob(&self, hash: &BlobHash) -> Result<(), StoreError> {
        self.kv
            .apply(vec![Op::Delete(key(BLOB, &[hash.as_bytes()]))])?;
        self.blobs.remove(hash)
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
        for item in self.kv.scan(&key(SEQ, &[publisher.as_bytes()]), false) {
            let (k, v) = item?;
            let state = v.first().and_then(|b| SeqState::from_u8(*b));
            if state.is_some_and(|s| states.contains(&s)) {
                let seq: [u8; 8] = k[33..41]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("sequence key".into()))?;
                seqs.push(u64::from_be_bytes(seq));
            }
        }
        Ok(to_ranges(seqs))
    }

    /// Sequence numbers of `publisher` whose bundles are held.
    pub fn held_ranges(&self, publisher: &PublicKey) -> Result<Vec<(u64, u64)>, StoreError> {
        self.seq_ranges(publisher, &[SeqState::Held])
    }

    /// Sequence numbers of `publisher` the store knows (held, evicted or
    /// revoked): the ones it should not fetch again.
    pub fn known_ranges(&self, publisher: &PublicKey) -> Result<Vec<(u64, u64)>, StoreError> {
        self.seq_ranges(
            publisher,
            &[SeqState::Held, SeqState::Evicted, SeqState::Revoked],
        )
    }

    /// Sequence numbers below the newest head of `publisher` that the store
    /// has never held: what to fetch.
    pub fn missing(&self, publisher: &PublicKey) -> Result<Vec<(u64, u64)>, StoreError> {
        let upto = self.head(publisher)?.map_or(0, |(_, h)| h.sequence);
        Ok(gaps(&self.known_ranges(publisher)?, upto))
    }

    /// A number that changes whenever anything is written to the store
    /// (bundles, heads, certificates, evictions), counted since it was
    /// opened. Cheap: no read of the database. Views derived from the store
    /// compare it to know when they are stale.
    pub fn changes(&self) -> u64 {
        self.kv.changes()
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

    // ---- pins and quota ----

    /// Pins a story: eviction never removes it.
    pub fn pin(&self, publisher: &PublicKey, story: &StoryId) -> Result<(), StoreError> {
        let _w = self.lock()?;
        self.kv.apply(vec![Op::Put(
            key(PIN, &[publisher.as_bytes(), story.as_bytes()]),
            Vec::new(),
        )])?;
        self.kv.flush()
    }

    /// Unpins a story.
    pub fn unpin(&self, publisher: &PublicKey, story: &StoryId) -> Result<(), StoreError> {
        let _w = self.lock()?;
        self.kv.apply(vec![Op::Delete(key(
            PIN,
            &[publisher.as_bytes(), story.as_bytes()],
        ))])?;
        self.kv.flush()
    }

    /// Applies retention and the per-publisher quota, then the overall
    /// quota ([`Store::enforce_quota`]). Eviction is by whole stories,
    /// oldest first by first publication, never pinned ones nor each
    /// publisher's newest `keep_newest`; their sequence numbers are marked
    /// evicted so that they are not fetched again.
    pub fn enforce_limits(&self, now: Timestamp) -> Result<Eviction, StoreError> {
        let mut report = Eviction::default();
        if self.config.retention_days.is_some() || self.config.publisher_quota_bytes.is_some() {
            let _w = self.lock()?;
            let cutoff = self
                .config
                .retention_days
                .map(|d| now.minus(d.saturating_mul(86_400)));
            for (publisher, stories) in self.eviction_candidates()? {
                let mut bytes = self.publisher_bytes(&publisher)?;
                // Above the quota, down to 90% of it, so that it is not
                // crossed again by the next story.
                let target = self
                    .config
                    .publisher_quota_bytes
                    .filter(|q| bytes > *q)
                    .map(|q| q / 10 * 9);
                for (published, story) in stories {
                    let expired = cutoff.is_some_and(|c| published < c);
                    let over = target.is_some_and(|t| bytes > t);
                    // Oldest first: past the first story neither expired
                    // nor needed for the quota, none is.
                    if !expired && !over {
                        break;
                    }
                    let freed = self.evict_story(&publisher, &story, &mut report)?;
                    bytes = bytes.saturating_sub(freed);
                }
            }
            self.kv.flush()?;
        }
        let overall = self.enforce_quota()?;
        report.bytes += overall.bytes;
        report.bundles += overall.bundles;
        report.stories.extend(overall.stories);
        if report.bundles > 0 {
            info!(
                stories = report.stories.len(),
                bundles = report.bundles,
                bytes = report.bytes,
                "evicted under retention and quotas"
            );
        }
        Ok(report)
    }

    /// Per publisher, the stories eviction may take, oldest first.
    fn eviction_candidates(
        &self,
    ) -> Result<HashMap<PublicKey, Vec<(Timestamp, StoryId)>>, StoreError> {
        let mut per_publisher: HashMap<PublicKey, Vec<(Timestamp, StoryId)>> = HashMap::new();
        for item in self.kv.scan(&[STORY], false) {
            let (k, v) = item?;
            let e = StoryEntry::decode(&k, &v)?;
            per_publisher
                .entry(e.publisher)
                .or_default()
                .push((e.published, e.story));
        }
        let mut out = HashMap::new();
        for (publisher, mut stories) in per_publisher {
            stories.sort();
            let keep_from = stories.len().saturating_sub(self.config.keep_newest);
            let mut can = Vec::new();
            for (published, story) in stories.into_iter().take(keep_from) {
                if !self
                    .kv
                    .contains(&key(PIN, &[publisher.as_bytes(), story.as_bytes()]))?
                {
                    can.push((published, story));
                }
            }
            out.insert(publisher, can);
        }
        Ok(out)
    }

    /// Evicts every version of a story; returns the bytes it counted for
    /// its publisher. Caller holds the write lock.
    fn evict_story(
        &self,
        publisher: &PublicKey,
        story: &StoryId,
        report: &mut Eviction,
    ) -> Result<u64, StoreError> {
        let before = self.publisher_bytes(publisher)?;
        let versions = self.history(publisher, story)?;
        for m in versions {
            report.bytes += self.remove_bundle(&m.id, SeqState::Evicted)?;
            report.bundles += 1;
        }
        report.stories.push((*publisher, *story));
        Ok(before.saturating_sub(self.publisher_bytes(publisher)?))
    }

    /// Evicts stories while the store is over its quota.
    ///
    /// Policy: whole stories go (every version, so corrections and
    /// retractions stay with their story), oldest first publication first,
    /// across publishers; never a pinned story, and never one of a
    /// publisher's newest `keep_newest` stories. The size compared with the
    /// quota is sled's size on disk. sled frees disk space lazily, so the
    /// payload to remove is estimated from the measured ratio of disk size
    /// to payload, aiming 10% under the quota.
    pub fn enforce_quota(&self) -> Result<Eviction, StoreError> {
        let Some(quota) = self.config.quota_bytes else {
            return Ok(Eviction::default());
        };
        let disk = self.totals()?.disk_bytes;
        let _w = self.lock()?;
        if disk <= quota {
            return Ok(Eviction::default());
        }
        let payload = u64_of(self.kv.get(&key(META, &[META_PAYLOAD]))?).max(1);
        let overhead = (disk as f64 / payload as f64).max(1.0);
        let target = (quota as f64 * 0.9 / overhead) as u64;

        // Candidates: (published, publisher, story), oldest first across
        // publishers.
        let mut candidates: Vec<(Timestamp, PublicKey, StoryId)> = self
            .eviction_candidates()?
            .into_iter()
            .flat_map(|(publisher, stories)| {
                stories
                    .into_iter()
                    .map(move |(published, story)| (published, publisher, story))
            })
            .collect();
        candidates.sort();

        let mut report = Eviction::default();
        let mut payload_now = payload;
        for (_, publisher, story) in candidates {
            if payload_now <= target {
                break;
            }
            let before = report.bytes;
            self.evict_story(&publisher, &story, &mut report)?;
            payload_now = payload_now.saturating_sub(report.bytes - before);
        }
        self.kv.flush()?;
        if report.bundles > 0 {
            info!(
                stories = report.stories.len(),
                bundles = report.bundles,
                bytes = report.bytes,
                disk,
                quota,
                "evicted under the quota"
            );
        }
        Ok(report)
    }

    // ---- integrity ----

    /// Rehashes every manifest and blob. With `repair`, removes what is
    /// damaged, and every bundle left incomplete by that, then rebuilds the
    /// indices; the removed bundles count as missing, so peers supply them
    /// again.
    pub fn check(&self, repair: bool) -> Result<CheckReport, StoreError> {
        let _w = self.lock()?;
        let mut report = CheckReport::default();
        let mut bad_blobs = HashSet::new();
        for hash in self.all_blobs()? {
            report.blobs += 1;
            let Some(v) = self.blob_bytes(&hash)? else {
                continue;
            };
            if BlobHash::of(&v) != hash {
                report
                    .problems
                    .push(format!("blob {hash} does not match its hash"));
                bad_blobs.insert(hash);
            }
        }
        let mut bad_bundles = Vec::new();
        for item in self.kv.scan(&[MANIFEST], false) {
            let (k, v) = item?;
            report.manifests += 1;
            let id = id_from(&k[1..])?;
            if BundleId::of(&v) != id {
                report
                    .problems
                    .push(format!("manifest {id} does not match its id"));
                bad_bundles.push(id);
                continue;
            }
            let m = match decode_unverified::<Manifest>(&v) {
                Ok(m) => m,
                Err(e) => {
                    report
                        .problems
                        .push(format!("manifest {id} does not decode: {e}"));
                    bad_bundles.push(id);
                    continue;
                }
            };
            for e in &m.entries {
                if bad_blobs.contains(&e.hash) || !self.blob_exists(&e.hash)? {
                    report.problems.push(format!(
                        "bundle {id}: blob {} ({}) is missing or damaged",
                        e.hash, e.path
                    ));
                    bad_bundles.push(id);
                    break;
                }
            }
        }
        if repair && !report.problems.is_empty() {
            for h in &bad_blobs {
                self.delete_blob(h)?;
            }
            let mut ops = Vec::new();
            for id in &bad_bundles {
                ops.push(Op::Delete(key(MANIFEST, &[id.as_bytes()])));
            }
            self.kv.apply(ops)?;
            self.reindex(&bad_bundles)?;
            self.kv.flush()?;
            report.removed_bundles = bad_bundles;
        }
        Ok(report)
    }

    /// Rebuilds every index and counter from the stored manifests. Removed
    /// bundles' sequence slots are cleared so the bundles count as missing.
    fn reindex(&self, removed: &[BundleId]) -> Result<(), StoreError> {
        let removed: HashSet<&BundleId> = removed.iter().collect();
        let mut ops = Vec::new();
        for prefix in [SEQ, STORY, REFS] {
            for item in self.kv.scan(&[prefix], false) {
                let (k, v) = item?;
                if prefix == SEQ
                    && v.first().is_some_and(|s| *s != SeqState::Held as u8)
                    && !id_from(&v[1..]).is_ok_and(|id| removed.contains(&id))
                {
                    continue;
                }
                ops.push(Op::Delete(k));
            }
        }
        for name in [
            META_PAYLOAD,
            META_BUNDLES,
            META_BLOBS,
            META_BLOB_DISK,
            META_PUBLISHER_COUNTED,
        ] {
            ops.push(Op::Delete(key(META, &[name])));
        }
        self.kv.apply(ops)?;
        let mut manifests = Vec::new();
        for item in self.kv.scan(&[MANIFEST], false) {
            let (k, v) = item?;
            manifests.push((id_from(&k[1..])?, v));
        }
        let mut refs: HashMap<BlobHash, u32> = HashMap::new();
        let mut payload = 0u64;
        let mut latest: HashMap<(PublicKey, StoryId), (u32, BundleId, Manifest)> = HashMap::new();
        let mut ops = Vec::new();
        for (id, bytes) in &manifests {
            let Ok(m) = decode_unverified::<Manifest>(bytes) else {
                continue;
            };
            payload += bytes.len() as u64;
            for e in &m.entries {
                *refs.entry(e.hash).or_default() += 1;
            }
            let mut seq_val = vec![SeqState::Held as u8];
            seq_val.extend_from_slice(id.as_bytes());
            ops.push(Op::Put(
                key(SEQ, &[m.publisher.as_bytes(), &m.sequence.to_be_bytes()]),
                seq_val,
            ));
            let slot = latest.entry((m.publisher, m.story));
            match slot {
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    if (m.version, *id) > (o.get().0, o.get().1) {
                        o.insert((m.version, *id, m));
                    }
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert((m.version, *id, m));
                }
            }
        }
        for (_, id, m) in latest.values() {
            ops.push(Op::Put(
                story_key(&m.publisher, &m.story),
                StoryEntry::of(m, *id).encode(),
            ));
        }
        let mut blobs = 0u64;
        let mut blob_disk = 0u64;
        let mut unreferenced = Vec::new();
        for hash in self.all_blobs()? {
            match refs.get(&hash) {
                Some(n) => {
                    let bytes = self.blob_bytes(&hash)?.unwrap_or_default();
                    let len = bytes.len() as u64;
                    if len > INLINE_BLOB_MAX {
                        ops.push(Op::Put(
                            key(REFS, &[hash.as_bytes()]),
                            n.to_be_bytes().to_vec(),
                        ));
                        blob_disk += disk_cost(len);
                    } else {
                        let mut v = n.to_be_bytes().to_vec();
                        v.extend_from_slice(&bytes);
                        ops.push(Op::Put(key(BLOB, &[hash.as_bytes()]), v));
                    }
                    payload += len;
                    blobs += 1;
                }
                None => unreferenced.push(hash),
            }
        }
        ops.push(Op::Put(
            key(META, &[META_PAYLOAD]),
            payload.to_be_bytes().to_vec(),
        ));
        ops.push(Op::Put(
            key(META, &[META_BUNDLES]),
            (manifests.len() as u64).to_be_bytes().to_vec(),
        ));
        ops.push(Op::Put(
            key(META, &[META_BLOBS]),
            blobs.to_be_bytes().to_vec(),
        ));
        ops.push(Op::Put(
            key(META, &[META_BLOB_DISK]),
            blob_disk.to_be_bytes().to_vec(),
        ));
        self.kv.apply(ops)?;
        for hash in unreferenced {
            self.delete_blob(&hash)?;
        }
        Ok(())
    }

    /// Every held bundle of `publisher`, in sequence order: (sequence, id).
    pub fn held_bundles(&self, publisher: &PublicKey) -> Result<Vec<(u64, BundleId)>, StoreError> {
        let mut out = Vec::new();
        for item in self.kv.scan(&key(SEQ, &[publisher.as_bytes()]), false) {
            let (k, v) = item?;
            if v.first() == Some(&(SeqState::Held as u8)) {
                let seq = u64::from_be_bytes(
                    k[33..41]
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("sequence key".into()))?,
                );
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

    /// Damages a stored blob (tests of `check` only).
    #[doc(hidden)]
    pub fn corrupt_blob_for_test(&self, hash: &BlobHash) -> Result<(), StoreError> {
        let k = key(BLOB, &[hash.as_bytes()]);
        if let Some(mut v) = self.kv.get(&k)? {
            if let Some(b) = v.get_mut(4) {
                *b ^= 0xff;
            }
            return self.kv.apply(vec![Op::Put(k, v)]);
        }
        self.blobs.damage(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_gaps() {
        assert_eq!(to_ranges([1, 2, 3, 5, 7, 8]), vec![(1, 3), (5, 5), (7, 8)]);
        assert_eq!(
            gaps(&[(1, 3), (5, 5), (7, 8)], 10),
            vec![(4, 4), (6, 6), (9, 10)]
        );
        assert_eq!(gaps(&[], 3), vec![(1, 3)]);
        assert_eq!(gaps(&[(2, 9)], 3), vec![(1, 1)]);
        assert_eq!(gaps(&[(1, 3)], 0), vec![]);
    }
}
