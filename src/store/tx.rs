//! One atomic batch: writes gathered and read back before they are
//! applied, with the counter changes they make, and the blob use counts
//! kept inside it.

use std::collections::{BTreeMap, HashMap};

use super::StoreError;
use super::kv::{Kv, Op};
use super::tables::{
    BLOB, LOG, META, META_BLOB_DISK, META_BLOBS, META_BUNDLES, META_LOG_NEXT, META_PAYLOAD,
    META_PUBLISHER, REFS, key, u64_of,
};
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
        }
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
        if !self.log.is_empty() {
            let mut next = u64_of(self.kv.get(&key(META, &[META_LOG_NEXT]))?);
            for item in std::mem::take(&mut self.log) {
                self.writes
                    .insert(key(LOG, &[&next.to_be_bytes()]), Some(item.encode()));
                next += 1;
            }
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

/// How many stored manifests use a blob: for an inline blob the first four
/// bytes of its value (saving a write per bundle), for a file its `r` entry.
pub(super) fn ref_count(tx: &Tx<'_>, hash: &BlobHash) -> Result<u32, StoreError> {
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
pub(super) fn set_ref_count(
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
