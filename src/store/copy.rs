//! Copying a whole store into a new folder, sealed or plain: what sealing,
//! unsealing and forgetting use to leave no old bytes behind in sled's
//! files (sled keeps removed and overwritten values in its segments until
//! it happens to reuse them).

use std::path::Path;
use std::sync::Arc;

use super::blobs::Blobs;
use super::kv::{Kv, Op};
use super::tables::REFS;
use super::{Store, StoreError};
use crate::proto::BlobHash;
use crate::seal::Sealer;

/// Entries per batch of the copy: large enough to cost few flushes,
/// small enough to hold in memory whatever the store's size.
const BATCH: usize = 1024;

/// What a copy wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Index entries.
    pub entries: u64,
    /// Blob files.
    pub files: u64,
}

impl Store {
    /// Writes every entry and blob file of this store into a new store at
    /// `path` (which must not hold one), sealed under `sealer` or plain,
    /// and makes it durable. The copy is opened like any store afterwards.
    pub fn copy_to(&self, path: &Path, sealer: Option<Arc<Sealer>>) -> Result<Copied, StoreError> {
        let _w = self.lock()?;
        crate::files::create_private_dir_all(path).map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })?;
        let kv = Kv::open_sled(&path.join("index"), self.config.cache_bytes, sealer.clone())?;
        if !kv.is_empty()? {
            return Err(StoreError::Io {
                path: path.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a store is already there",
                ),
            });
        }
        let blobs = Blobs::open(&path.join("blobs"), sealer)?;
        let mut copied = Copied::default();
        // Blob files first, so that no entry of the copy ever names a file
        // it does not have.
        for item in self.kv.scan(&[REFS], false) {
            let (k, _) = item?;
            let hash = BlobHash(
                k[1..]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("blob use count key".into()))?,
            );
            if let Some(bytes) = self.blobs.get(&hash)? {
                blobs.write(&hash, &bytes)?;
                copied.files += 1;
            }
        }
        blobs.sync()?;
        let mut ops = Vec::with_capacity(BATCH);
        for item in self.kv.all() {
            let (k, v) = item?;
            ops.push(Op::Put(k, v));
            copied.entries += 1;
            if ops.len() == BATCH {
                kv.apply(std::mem::take(&mut ops))?;
            }
        }
        kv.apply(ops)?;
        kv.flush()?;
        // A copy is all written at once: its snapshot is written now
        // rather than by its first open (see `Store::close`).
        let settle = kv.written() >= self.config.settle_after_bytes;
        drop(kv);
        if settle && let Err(e) = Kv::settle(&path.join("index"), self.config.cache_bytes) {
            tracing::info!("the copy's snapshot waits for its first open: {e}");
        }
        Ok(copied)
    }
}
