//! The local store: everything a node has verified, on sled, with an
//! in-memory twin for tests.
//!
//! It accepts only values that passed the trust policy (`VerifiedBundle`,
//! `Verified<…>`), so it never holds anything unchecked, and it records the
//! policy's trust verdicts instead of deciding them again. A bundle becomes
//! visible whole or not at all: its blobs are written and made durable
//! first, then its manifest and index entries in one atomic batch. Callers
//! learn that bundles are stored only after a flush, and one flush covers a
//! whole group of bundles.
//!
//! Each file answers one question: `tables` the key layout, `tx` the atomic
//! batch, `trust` certificates, revocations and heads, `ingest` how bundles
//! come in, `read` what is held, `ranges` sequence arithmetic, `limits`
//! retention and quotas, `check` integrity and repair, `mirrors` each
//! publisher's newest mirror list, `book` the node's address book,
//! `forget` the removal of every trace of one publisher, `catalog` the
//! index of stories newest first and its counters that lists read; `kv`
//! and `blobs` are the storage underneath.

pub mod archive;
mod blobs;
mod blocks;
mod book;
mod catalog;
mod check;
mod copy;
mod forget;
mod ingest;
mod kv;
mod limits;
mod log;
mod mirrors;
mod read;
mod sealed;
mod slots;
mod tables;
mod trust;
mod tx;
mod values;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::proto::{CertId, PublicKey};
use crate::seal::Sealer;
use blobs::Blobs;
use kv::{Kv, Op};
use tables::{META, META_SCHEMA, key};

/// The default of [`StoreConfig::settle_after_bytes`]: below it the
/// replay at the next open takes about a tenth of a second at most, less
/// than the extra open of a large store costs.
pub const SETTLE_AFTER: u64 = 256 << 20;

/// Range arithmetic is the protocol's: the store uses the same.
pub use crate::proto::ranges::{gaps, to_ranges};
pub use book::MAX_ADDRESS_BOOK_BYTES;
pub use catalog::{Facet, IndexCursor, PublisherCounts};
pub use check::CheckReport;
pub use copy::Copied;
pub use forget::Forgotten;
pub use ingest::Ingested;
pub use limits::Eviction;
pub use log::{LogCursor, LogItem, LogObject};
pub use read::{StoredManifest, Totals};
pub use tables::{INLINE_BLOB_MAX, SCHEMA_VERSION, SeqState, StoryEntry};

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
    /// A mirror list did not verify under the trust policy.
    #[error("mirror list refused: {0}")]
    MirrorList(#[source] crate::proto::PolicyError),
    /// A mirror list that expired is not taken.
    #[error("the mirror list expired at {expired}; sign a new one")]
    MirrorListExpired {
        /// When it expired.
        expired: crate::proto::Timestamp,
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
    /// The database was written under another sealing key, or sealed and
    /// opened plain, or the reverse.
    #[error(
        "the store does not open this way: it was sealed with another key, or sealed and opened as a plain store (or the reverse)"
    )]
    OtherKey,
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
    /// Bytes written since the store was opened past which closing it
    /// has sled write its snapshot (see [`Store::close`]).
    pub settle_after_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            quota_bytes: None,
            keep_newest: 20,
            publisher_quota_bytes: None,
            retention_days: None,
            cache_bytes: 64 * 1024 * 1024,
            settle_after_bytes: SETTLE_AFTER,
        }
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

impl Store {
    /// Opens (or creates) the store in the folder `path`: the index
    /// database in `path/index`, blob files in `path/blobs`.
    pub fn open(path: &Path, config: StoreConfig) -> Result<Self, StoreError> {
        Self::open_with(path, config, None)
    }

    /// [`Store::open`] for a sealed store when `sealer` is given: every
    /// key is a keyed name and every value and blob file is encrypted.
    /// A store made with another key (or none) is refused, never mixed.
    pub fn open_with(
        path: &Path,
        config: StoreConfig,
        sealer: Option<Arc<Sealer>>,
    ) -> Result<Self, StoreError> {
        crate::files::create_private_dir_all(path).map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })?;
        // The database lock comes first: nothing else is touched while
        // another process holds the store.
        let kv = Kv::open_sled(&path.join("index"), config.cache_bytes, sealer.clone()).map_err(
            |e| match e {
                StoreError::Locked(_) => StoreError::Locked(path.to_owned()),
                other => other,
            },
        )?;
        let blobs = Blobs::open(&path.join("blobs"), sealer)?;
        let store = Self::init(kv, blobs, config, Some(path.to_owned()))?;
        store.convert_values()?;
        store.convert_blocks()?;
        store.sweep_orphans()?;
        store.count_publishers()?;
        store.index_catalog()?;
        store.build_log()?;
        Ok(store)
    }

    /// A store in memory, with the same behaviour, for tests.
    pub fn memory(config: StoreConfig) -> Self {
        Self::memory_with(config, None)
    }

    /// [`Store::memory`], sealed when `sealer` is given.
    pub fn memory_with(config: StoreConfig, sealer: Option<Arc<Sealer>>) -> Self {
        match Self::init(Kv::memory_sealed(sealer), Blobs::memory(), config, None) {
            Ok(s) if s.index_catalog().is_ok() && s.build_log().is_ok() => s,
            Ok(_) => unreachable!("in-memory store init failed: the catalog index or the log"),
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
            // A database with entries but no schema under this key's name
            // for it was written sealed with another key, or sealed while
            // this is not (or the reverse): refused, so the two never mix.
            None if !kv.is_empty()? => return Err(StoreError::OtherKey),
            None => {
                kv.apply(vec![Op::Put(
                    schema_key,
                    SCHEMA_VERSION.to_be_bytes().to_vec(),
                )])?;
                kv.flush()?;
            }
            Some(v) => {
                let found = v.try_into().map(u32::from_be_bytes).unwrap_or(0);
                // Versions 1 and 2 are converted at open
                // (`convert_values`, `convert_blocks`).
                if found != SCHEMA_VERSION && found != 1 && found != 2 {
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

    /// Whether the store is sealed.
    pub fn is_sealed(&self) -> bool {
        self.kv.is_sealed()
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

    /// Whether this store wrote enough since it was opened for
    /// [`Store::close`] to open it once more.
    pub fn should_settle(&self) -> bool {
        self.path.is_some() && self.kv.written() >= self.config.settle_after_bytes
    }

    /// Flushes and closes the store. When it wrote more than
    /// [`StoreConfig::settle_after_bytes`] since it was opened, the database is then
    /// opened once more and closed, so that sled writes its snapshot and
    /// the next open does not read all of it again (see `Kv::settle`).
    /// That last step is a saving, not a need: a store another process
    /// took in between is left as it is, with a note in the log.
    pub fn close(self) -> Result<(), StoreError> {
        self.kv.flush()?;
        let settle = self.should_settle();
        let (path, cache) = (self.path.clone(), self.config.cache_bytes);
        drop(self);
        if let (true, Some(path)) = (settle, path) {
            // Seconds for a large store: said, so that a stop that takes
            // them is not taken for a hang.
            tracing::info!("writing the store's snapshot, so that the next start is quick");
            let started = std::time::Instant::now();
            match Kv::settle(&path.join("index"), cache) {
                Ok(()) => tracing::info!(
                    ms = started.elapsed().as_millis() as u64,
                    "wrote the store's snapshot"
                ),
                Err(e) => tracing::info!("the store's snapshot waits for its next open: {e}"),
            }
        }
        Ok(())
    }

    /// A number that changes whenever anything is written to the store
    /// (bundles, heads, certificates, evictions), counted since it was
    /// opened. Cheap: no read of the database. Views derived from the store
    /// compare it to know when they are stale.
    pub fn changes(&self) -> u64 {
        self.kv.changes()
    }
}
