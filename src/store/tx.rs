//! One atomic batch: writes gathered and read back before they are
//! applied, with the counter changes they make, and the blob use counts
//! kept inside it.

use std::collections::{BTreeMap, HashMap};

use super::StoreError;
use super::kv::{Kv, Op, Pair};
use super::tables::{
    META, META_BLOB_DISK, META_BLOBS, META_BUNDLES, META_LOG_NEXT, META_PAYLOAD, META_PUBLISHER,
    META_VALUE_NEXT, REFS, key, u64_of,
};
use super::values::{blob_entry, set_blob_count};
use crate::proto::{BlobHash, PublicKey};

/// Writes gathered for one atomic batch, read back before they are
/// applied, with the counter changes they make.
pub(super) struct Tx<'a> {
    kv: &'a Kv,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    pub(super) payload: i64,
    pub(super) bundles: i64,
    pub(super) blobs: i64,
    pub(super) blob_disk: i64,
    pub(super) per_publisher: HashMap<PublicKey, i64>,
    /// Appended to the log at commit, in order.
    pub(super) log: Vec<super::log::LogItem>,
    /// The next value number, once one was taken in this batch.
    value_next: Option<u64>,
}

impl<'a> Tx<'a> {
    pub(super) fn new(kv: &'a Kv) -> Self {
        Self {
            kv,
            writes: Default::default(),
            payload: 0,
            bundles: 0,
            blobs: 0,
            blob_disk: 0,
            per_publisher: HashMap::new(),
            log: Vec::new(),
            value_next: None,
        }
    }

    /// A number for a new value under `v`, never given before: the
    /// counter is read once and written back with the batch. Batches
    /// that write are made under the store's write lock, one at a time.
    pub(super) fn new_value(&mut self) -> Result<u64, StoreError> {
        let n = match self.value_next {
            Some(n) => n,
            None => u64_of(self.kv.get(&key(META, &[META_VALUE_NEXT]))?),
        };
        self.value_next = Some(n + 1);
        Ok(n)
    }

    pub(super) fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(k) {
            Some(v) => Ok(v.clone()),
            None => self.kv.get(k),
        }
    }

    pub(super) fn contains(&self, k: &[u8]) -> Result<bool, StoreError> {
        match self.writes.get(k) {
            Some(v) => Ok(v.is_some()),
            None => self.kv.contains(k),
        }
    }

    /// The first pair under `prefix` at or after `start`, as the store
    /// would hold it after this batch. The batch's keys are compared
    /// plain, so this is only for tables whose stored order is their
    /// plain order (true of the catalog's blocks, sealed or not).
    pub(super) fn first_from(
        &self,
        prefix: &[u8],
        start: &[u8],
    ) -> Result<Option<Pair>, StoreError> {
        let mut stored = None;
        for item in self.kv.range_from(prefix, start) {
            let (k, v) = item?;
            match self.writes.get(&k) {
                Some(None) => continue,
                Some(Some(w)) => stored = Some((k, w.clone())),
                None => stored = Some((k, v)),
            }
            break;
        }
        let pending = self
            .writes
            .range::<Vec<u8>, _>(start.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .find_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())));
        Ok(match (stored, pending) {
            (Some(s), Some(p)) => Some(if p.0 < s.0 { p } else { s }),
            (s, p) => s.or(p),
        })
    }

    /// The last pair under `prefix`, as the store would hold it after
    /// this batch (with the same limit as [`Tx::first_from`]).
    pub(super) fn last_under(&self, prefix: &[u8]) -> Result<Option<Pair>, StoreError> {
        let mut stored = None;
        for item in self.kv.scan(prefix, true) {
            let (k, v) = item?;
            match self.writes.get(&k) {
                Some(None) => continue,
                Some(Some(w)) => stored = Some((k, w.clone())),
                None => stored = Some((k, v)),
            }
            break;
        }
        let pending = self
            .writes
            .range::<Vec<u8>, _>(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
            .last()
            .map(|(k, v)| (k.clone(), v.clone()));
        Ok(match (stored, pending) {
            (Some(s), Some(p)) => Some(if p.0 > s.0 { p } else { s }),
            (s, p) => s.or(p),
        })
    }

    pub(super) fn put(&mut self, k: Vec<u8>, v: Vec<u8>) {
        self.writes.insert(k, Some(v));
    }

    pub(super) fn delete(&mut self, k: Vec<u8>) {
        self.writes.insert(k, None);
    }

    /// Applies every write and the counter changes as one batch.
    pub(super) fn commit(mut self) -> Result<(), StoreError> {
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
        if let Some(next) = self.value_next {
            self.writes.insert(
                key(META, &[META_VALUE_NEXT]),
                Some(next.to_be_bytes().to_vec()),
            );
        }
        if !self.log.is_empty() {
            let start = u64_of(self.kv.get(&key(META, &[META_LOG_NEXT]))?);
            let items = std::mem::take(&mut self.log);
            for (k, v) in super::log::append(|k| self.get(k), start, &items)? {
                self.writes.insert(k, Some(v));
            }
            let next = start + items.len() as u64;
            self.writes.insert(
                key(META, &[META_LOG_NEXT]),
                Some(next.to_be_bytes().to_vec()),
            );
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

/// How many stored manifests use a blob: for a small blob the count in
/// its entry, for a file its `r` entry.
pub(super) fn ref_count(tx: &Tx<'_>, hash: &BlobHash) -> Result<u32, StoreError> {
    if let Some((count, _)) = blob_entry(tx, hash)? {
        return Ok(count);
    }
    let v = tx.get(&key(REFS, &[hash.as_bytes()]))?.unwrap_or_default();
    Ok(v.get(..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes))
}

/// Sets a blob's count; 0 removes its entry (and a small blob's bytes).
/// A small blob not stored yet is stored from `data`.
pub(super) fn set_ref_count(
    tx: &mut Tx<'_>,
    hash: &BlobHash,
    count: u32,
    inline: bool,
    data: Option<&[u8]>,
) -> Result<(), StoreError> {
    if inline {
        return set_blob_count(tx, hash, count, data);
    }
    let k = key(REFS, &[hash.as_bytes()]);
    if count == 0 {
        tx.delete(k);
    } else {
        tx.put(k, count.to_be_bytes().to_vec());
    }
    Ok(())
}
