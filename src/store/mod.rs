//! The local store: everything a node has verified, on sled, with an
//! in-memory twin for tests.
//!
//! It accepts only values that passed the trust policy (`VerifiedBundle`,
//! `Verified<…>`), so it never holds anything unchecked. A bundle becomes
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
//! | `r` | blob hash | how many stored manifests use the blob (u32 BE) |
//! | `s` | publisher, sequence (u64 BE) | state byte, bundle id |
//! | `v` | publisher, story, version (u32 BE), bundle id | empty |
//! | `t` | publisher, published (u64 BE), story | bundle id of the latest version |
//! | `l` | language length, language, published, publisher, story | bundle id of the latest version |
//! | `h` | publisher | the newest signed head |
//! | `c` | certificate id | signed certificate |
//! | `x` | publisher, revoked key | signed revocation |
//! | `p` | publisher, story | empty: the story is pinned |
//!
//! Blob bytes are files beside the database (see `blobs`); a bundle's
//! blobs are made durable before the batch that makes the bundle visible.

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
    Revocation, StoryId, Timestamp, TrustPolicy, Verified, VerifiedBundle, decode_unverified,
};
use blobs::{Blobs, disk_cost};
use kv::{Kv, Op};

/// Version of the key layout above; a store of another version is refused.
pub const SCHEMA_VERSION: u32 = 1;

const META: u8 = b'M';
const MANIFEST: u8 = b'm';

const REFS: u8 = b'r';
const SEQ: u8 = b's';
const VERSION: u8 = b'v';
const TIMELINE: u8 = b't';
const LANG: u8 = b'l';
const HEAD: u8 = b'h';
const CERT: u8 = b'c';
const REVOCATION: u8 = b'x';
const PIN: u8 = b'p';

const META_SCHEMA: &[u8] = b"schema";
const META_PAYLOAD: &[u8] = b"payload";
const META_BUNDLES: &[u8] = b"bundles";
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
    Backend(String),
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
    /// sled's page cache.
    pub cache_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            quota_bytes: None,
            keep_newest: 20,
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

/// The local store.
pub struct Store {
    kv: Kv,
    blobs: Blobs,
    config: StoreConfig,
    path: Option<PathBuf>,
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

fn timeline_key(m: &Manifest) -> Vec<u8> {
    key(
        TIMELINE,
        &[
            m.publisher.as_bytes(),
            &m.metadata.published.0.to_be_bytes(),
            m.story.as_bytes(),
        ],
    )
}

fn lang_key(m: &Manifest) -> Vec<u8> {
    let lang = m.metadata.language.to_ascii_lowercase();
    key(
        LANG,
        &[
            &[lang.len() as u8],
            lang.as_bytes(),
            &m.metadata.published.0.to_be_bytes(),
            m.publisher.as_bytes(),
            m.story.as_bytes(),
        ],
    )
}

fn version_key(m: &Manifest, id: &BundleId) -> Vec<u8> {
    key(
        VERSION,
        &[
            m.publisher.as_bytes(),
            m.story.as_bytes(),
            &m.version.to_be_bytes(),
            id.as_bytes(),
        ],
    )
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

    fn certificate(&self, id: &CertId) -> Result<Option<KeyCertificate>, StoreError> {
        match self.kv.get(&key(CERT, &[id.as_bytes()]))? {
            None => Ok(None),
            Some(b) => decode_unverified::<KeyCertificate>(&b)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("certificate {id}: {e}"))),
        }
    }

    /// Keeps a verified revocation and removes the bundles it invalidates:
    /// those signed by the revoked key at or after its effective time. They
    /// could no longer be verified, so they must not be shown as verified;
    /// their sequence numbers are marked revoked so they are not fetched
    /// again. Returns the removed bundles.
    pub fn put_revocation(&self, rev: &Verified<Revocation>) -> Result<Vec<BundleId>, StoreError> {
        let _w = self.lock()?;
        let k = key(REVOCATION, &[rev.publisher.as_bytes(), rev.key.as_bytes()]);
        if let Some(old) = self.kv.get(&k)?
            && let Ok(old) = decode_unverified::<Revocation>(&old)
            && old.effective_from <= rev.effective_from
        {
            return Ok(Vec::new());
        }
        self.kv.apply(vec![Op::Put(k, rev.bytes().to_vec())])?;
        // Which certificates certify the revoked key.
        let mut certs = HashSet::new();
        for item in self.kv.scan(&[CERT], false) {
            let (k, v) = item?;
            if let Ok(c) = decode_unverified::<KeyCertificate>(&v)
                && c.publisher == rev.publisher
                && c.signing_key == rev.key
            {
                certs.insert(CertId(
                    k[1..]
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("certificate key".into()))?,
                ));
            }
        }
        let mut doomed = Vec::new();
        for item in self.kv.scan(&key(SEQ, &[rev.publisher.as_bytes()]), false) {
            let (_, v) = item?;
            if v.first() != Some(&(SeqState::Held as u8)) {
                continue;
            }
            let id = id_from(&v[1..])?;
            if let Some(m) = self.manifest(&id)?
                && certs.contains(&m.manifest.certificate)
                && m.manifest.signed_at >= rev.effective_from
            {
                doomed.push(id);
            }
        }
        for id in &doomed {
            self.remove_bundle(id, SeqState::Revoked)?;
        }
        if !doomed.is_empty() {
            warn!(count = doomed.len(), key = %rev.key.short(), "removed bundles signed by a revoked key");
        }
        self.kv.flush()?;
        Ok(doomed)
    }

    /// Keeps a verified head if it is newer than the stored one; refuses
    /// one with a lower sequence number, also across restarts. Returns
    /// whether it replaced the stored head.
    pub fn put_head(&self, head: &Verified<Head>) -> Result<bool, StoreError> {
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
            if (head.sequence, head.issued_at) <= (old.sequence, old.issued_at) {
                return Ok(false);
            }
        }
        self.kv.apply(vec![Op::Put(k, head.bytes().to_vec())])?;
        Ok(true)
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

    /// Stores bundles, each atomically, then flushes once for all of them
    /// (group commit). Every `New` outcome is durable when this returns.
    pub fn ingest(&self, bundles: &[VerifiedBundle]) -> Result<Vec<Ingested>, StoreError> {
        let _w = self.lock()?;
        // Blobs first, made durable together; only then the batches that
        // make the bundles visible. A crash in between leaves only blob
        // files that nothing refers to, which the next open removes.
        let mut wrote = false;
        for b in bundles {
            if self.kv.contains(&key(MANIFEST, &[b.id().as_bytes()]))? {
                continue;
            }
            for (entry, data) in b.blobs() {
                wrote |= self.blobs.write(&entry.hash, data)?;
            }
        }
        if wrote {
            self.blobs.sync()?;
        }
        let mut out = Vec::with_capacity(bundles.len());
        for b in bundles {
            out.push(self.ingest_one(b)?);
        }
        if out.contains(&Ingested::New) {
            self.kv.flush()?;
        }
        Ok(out)
    }

    fn ingest_one(&self, b: &VerifiedBundle) -> Result<Ingested, StoreError> {
        let id = b.id();
        let m = b.manifest();
        let mkey = key(MANIFEST, &[id.as_bytes()]);
        if self.kv.contains(&mkey)? {
            return Ok(Ingested::Duplicate);
        }
        if !self.kv.contains(&key(CERT, &[m.certificate.as_bytes()]))? {
            return Err(StoreError::MissingCertificate(m.certificate));
        }
        let seq_key = key(SEQ, &[m.publisher.as_bytes(), &m.sequence.to_be_bytes()]);
        if let Some(v) = self.kv.get(&seq_key)? {
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
        if let Some(cert) = self.certificate(&m.certificate)?
            && let Some(rev) = self.kv.get(&key(
                REVOCATION,
                &[m.publisher.as_bytes(), cert.signing_key.as_bytes()],
            ))?
            && let Ok(rev) = decode_unverified::<Revocation>(&rev)
            && m.signed_at >= rev.effective_from
        {
            return Ok(Ingested::Revoked);
        }

        let mut ops = Vec::new();
        let mut added = m.bytes().len() as u64;
        let mut new_blobs = 0u64;
        let mut blob_disk = 0u64;
        ops.push(Op::Put(mkey, m.bytes().to_vec()));
        let mut increments: HashMap<BlobHash, (u32, &[u8])> = HashMap::new();
        for (entry, data) in b.blobs() {
            increments.entry(entry.hash).or_insert((0, data)).0 += 1;
        }
        for (hash, (inc, data)) in increments {
            let rkey = key(REFS, &[hash.as_bytes()]);
            let count = self
                .kv
                .get(&rkey)?
                .and_then(|v| v.try_into().ok())
                .map_or(0, u32::from_be_bytes);
            if count == 0 {
                if !self.blobs.contains(&hash)? {
                    return Err(StoreError::Corrupt(format!(
                        "blob {hash} vanished before its bundle was stored"
                    )));
                }
                added += data.len() as u64;
                blob_disk += disk_cost(data.len() as u64);
                new_blobs += 1;
            }
            ops.push(Op::Put(rkey, (count + inc).to_be_bytes().to_vec()));
        }
        let mut seq_val = vec![SeqState::Held as u8];
        seq_val.extend_from_slice(id.as_bytes());
        ops.push(Op::Put(seq_key, seq_val));
        ops.push(Op::Put(version_key(m, &id), Vec::new()));
        // The story's lists point at its newest version.
        let latest = self.latest_version(&m.publisher, &m.story)?;
        let newer = latest
            .as_ref()
            .is_none_or(|(v, lid, _)| (m.version, id) > (*v, *lid));
        if newer {
            if let Some((_, _, old)) = &latest {
                ops.push(Op::Delete(timeline_key(old)));
                ops.push(Op::Delete(lang_key(old)));
            }
            ops.push(Op::Put(timeline_key(m), id.as_bytes().to_vec()));
            ops.push(Op::Put(lang_key(m), id.as_bytes().to_vec()));
        }
        self.bump_counters(
            &mut ops,
            added as i64,
            1,
            new_blobs as i64,
            blob_disk as i64,
        )?;
        self.kv.apply(ops)?;
        debug!(bundle = %id.short(), seq = m.sequence, "stored");
        Ok(Ingested::New)
    }

    fn bump_counters(
        &self,
        ops: &mut Vec<Op>,
        payload: i64,
        bundles: i64,
        blobs: i64,
        blob_disk: i64,
    ) -> Result<(), StoreError> {
        for (name, delta) in [
            (META_PAYLOAD, payload),
            (META_BUNDLES, bundles),
            (META_BLOBS, blobs),
            (META_BLOB_DISK, blob_disk),
        ] {
            if delta == 0 {
                continue;
            }
            let k = key(META, &[name]);
            let v = u64_of(self.kv.get(&k)?).saturating_add_signed(delta);
            ops.push(Op::Put(k, v.to_be_bytes().to_vec()));
        }
        Ok(())
    }

    /// The newest stored version of a story: (version, id, manifest).
    fn latest_version(
        &self,
        publisher: &PublicKey,
        story: &StoryId,
    ) -> Result<Option<(u32, BundleId, Manifest)>, StoreError> {
        self.latest_version_except(publisher, story, None)
    }

    fn latest_version_except(
        &self,
        publisher: &PublicKey,
        story: &StoryId,
        except: Option<&BundleId>,
    ) -> Result<Option<(u32, BundleId, Manifest)>, StoreError> {
        for item in self.kv.scan(
            &key(VERSION, &[publisher.as_bytes(), story.as_bytes()]),
            true,
        ) {
            let (k, _) = item?;
            let id = id_from(&k[k.len() - 32..])?;
            if Some(&id) == except {
                continue;
            }
            let m = self.manifest(&id)?.ok_or_else(|| {
                StoreError::Corrupt(format!("version index names missing bundle {id}"))
            })?;
            return Ok(Some((m.manifest.version, id, m.manifest)));
        }
        Ok(None)
    }

    /// Removes one bundle and its index entries, leaves `state` in its
    /// sequence slot, and points the story's lists at the next newest
    /// version. Caller holds the write lock.
    fn remove_bundle(&self, id: &BundleId, state: SeqState) -> Result<u64, StoreError> {
        let Some(sm) = self.manifest(id)? else {
            return Ok(0);
        };
        let m = &sm.manifest;
        let mut ops = vec![Op::Delete(key(MANIFEST, &[id.as_bytes()]))];
        let mut removed = sm.bytes.len() as u64;
        let mut gone_blobs = 0i64;
        let mut gone_disk = 0i64;
        let mut unlink = Vec::new();
        let mut decrements: HashMap<BlobHash, u32> = HashMap::new();
        for e in &m.entries {
            *decrements.entry(e.hash).or_default() += 1;
        }
        for (hash, dec) in decrements {
            let rkey = key(REFS, &[hash.as_bytes()]);
            let count = self
                .kv
                .get(&rkey)?
                .and_then(|v| v.try_into().ok())
                .map_or(0, u32::from_be_bytes);
            if count <= dec {
                if let Some(e) = m.entries.iter().find(|e| e.hash == hash) {
                    removed += e.size;
                    gone_disk += disk_cost(e.size) as i64;
                }
                gone_blobs += 1;
                unlink.push(hash);
                ops.push(Op::Delete(rkey));
            } else {
                ops.push(Op::Put(rkey, (count - dec).to_be_bytes().to_vec()));
            }
        }
        let mut seq_val = vec![state as u8];
        seq_val.extend_from_slice(id.as_bytes());
        ops.push(Op::Put(
            key(SEQ, &[m.publisher.as_bytes(), &m.sequence.to_be_bytes()]),
            seq_val,
        ));
        ops.push(Op::Delete(version_key(m, id)));
        if self.kv.get(&timeline_key(m))?.as_deref() == Some(id.as_bytes().as_slice()) {
            ops.push(Op::Delete(timeline_key(m)));
            ops.push(Op::Delete(lang_key(m)));
            if let Some((_, next_id, next)) =
                self.latest_version_except(&m.publisher, &m.story, Some(id))?
            {
                ops.push(Op::Put(timeline_key(&next), next_id.as_bytes().to_vec()));
                ops.push(Op::Put(lang_key(&next), next_id.as_bytes().to_vec()));
            }
        }
        self.bump_counters(&mut ops, -(removed as i64), -1, -gone_blobs, -gone_disk)?;
        self.kv.apply(ops)?;
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
        match self.kv.get(&key(MANIFEST, &[id.as_bytes()]))? {
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

    /// A stored blob.
    pub fn blob(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.kv.contains(&key(REFS, &[hash.as_bytes()]))? {
            return Ok(None);
        }
        self.blobs.get(hash)
    }

    /// Whether a blob is stored.
    pub fn has_blob(&self, hash: &BlobHash) -> Result<bool, StoreError> {
        Ok(self.kv.contains(&key(REFS, &[hash.as_bytes()]))? && self.blobs.contains(hash)?)
    }

    fn manifests_of_index(
        &self,
        prefix: Vec<u8>,
        publisher: Option<&PublicKey>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<StoredManifest>, StoreError> {
        let mut out = Vec::new();
        let mut skipped = 0;
        for item in self.kv.scan(&prefix, true) {
            let (_, v) = item?;
            let id = id_from(&v)?;
            let Some(m) = self.manifest(&id)? else {
                continue;
            };
            if publisher.is_some_and(|p| p != &m.manifest.publisher) {
                continue;
            }
            if skipped < offset {
                skipped += 1;
                continue;
            }
            out.push(m);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The latest version of each story of `publisher`, newest first by
    /// first publication, skipping `offset` and returning at most `limit`.
    pub fn latest_stories(
        &self,
        publisher: &PublicKey,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<StoredManifest>, StoreError> {
        self.manifests_of_index(key(TIMELINE, &[publisher.as_bytes()]), None, offset, limit)
    }

    /// The latest version of each story in `language`, across publishers
    /// or of one, newest first.
    pub fn latest_in_language(
        &self,
        language: &str,
        publisher: Option<&PublicKey>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<StoredManifest>, StoreError> {
        let lang = language.to_ascii_lowercase();
        self.manifests_of_index(
            key(LANG, &[&[lang.len() as u8], lang.as_bytes()]),
            publisher,
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
        let mut out = Vec::new();
        for item in self.kv.scan(
            &key(VERSION, &[publisher.as_bytes(), story.as_bytes()]),
            false,
        ) {
            let (k, _) = item?;
            let id = id_from(&k[k.len() - 32..])?;
            if let Some(m) = self.manifest(&id)? {
                out.push(m);
            }
        }
        Ok(out)
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

        // Candidates: (published, publisher, story), oldest first.
        let mut per_publisher: HashMap<PublicKey, Vec<(Timestamp, StoryId)>> = HashMap::new();
        for item in self.kv.scan(&[TIMELINE], false) {
            let (k, _) = item?;
            if k.len() != 1 + 32 + 8 + 16 {
                return Err(StoreError::Corrupt("timeline key".into()));
            }
            let publisher = PublicKey(k[1..33].try_into().unwrap_or([0; 32]));
            let published = Timestamp(u64::from_be_bytes(k[33..41].try_into().unwrap_or([0; 8])));
            let story = StoryId(k[41..57].try_into().unwrap_or([0; 16]));
            per_publisher
                .entry(publisher)
                .or_default()
                .push((published, story));
        }
        let mut candidates = Vec::new();
        for (publisher, mut stories) in per_publisher {
            stories.sort();
            let keep_from = stories.len().saturating_sub(self.config.keep_newest);
            for (published, story) in stories.into_iter().take(keep_from) {
                if !self
                    .kv
                    .contains(&key(PIN, &[publisher.as_bytes(), story.as_bytes()]))?
                {
                    candidates.push((published, publisher, story));
                }
            }
        }
        candidates.sort();

        let mut report = Eviction::default();
        let mut payload_now = payload;
        for (_, publisher, story) in candidates {
            if payload_now <= target {
                break;
            }
            let ids: Vec<BundleId> = self
                .history(&publisher, &story)?
                .into_iter()
                .map(|m| m.id)
                .collect();
            for id in ids {
                let freed = self.remove_bundle(&id, SeqState::Evicted)?;
                payload_now = payload_now.saturating_sub(freed);
                report.bytes += freed;
                report.bundles += 1;
            }
            report.stories.push((publisher, story));
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
        for hash in self.blobs.list()? {
            report.blobs += 1;
            let Some(v) = self.blobs.get(&hash)? else {
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
                if bad_blobs.contains(&e.hash) || !self.blobs.contains(&e.hash)? {
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
                self.blobs.remove(h)?;
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
        for prefix in [SEQ, VERSION, TIMELINE, LANG, REFS] {
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
        for name in [META_PAYLOAD, META_BUNDLES, META_BLOBS, META_BLOB_DISK] {
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
            ops.push(Op::Put(version_key(&m, id), Vec::new()));
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
            ops.push(Op::Put(timeline_key(m), id.as_bytes().to_vec()));
            ops.push(Op::Put(lang_key(m), id.as_bytes().to_vec()));
        }
        let mut blobs = 0u64;
        let mut blob_disk = 0u64;
        let mut unreferenced = Vec::new();
        for hash in self.blobs.list()? {
            match refs.get(&hash) {
                Some(n) => {
                    ops.push(Op::Put(
                        key(REFS, &[hash.as_bytes()]),
                        n.to_be_bytes().to_vec(),
                    ));
                    let len = self.blobs.get(&hash)?.map_or(0, |b| b.len() as u64);
                    payload += len;
                    blob_disk += disk_cost(len);
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
            self.blobs.remove(&hash)?;
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
