//! Integrity: the check and repair of what is stored, the rebuild of the
//! indices, and the clean-up at open after a crash or an older version.

use std::collections::{HashMap, HashSet, hash_map};

use tracing::info;

use super::blobs::disk_cost;
use super::kv::Op;
use super::slots;
use super::tables::{
    BLOB, MANIFEST, META, META_BLOB_DISK, META_BLOBS, META_BUNDLES, META_CATALOG, META_PAYLOAD,
    META_PUBLISHER, META_PUBLISHER_COUNTED, META_SCHEMA, OLD_BLOB, OLD_MANIFEST, REFS,
    SCHEMA_VERSION, STORY, SeqState, StoryEntry, VALUE, bundle_bytes, id_from, key, story_key,
};
use super::tx::Tx;
use super::values::{
    HEADER, KIND_BLOB, KIND_MANIFEST, blob_entry, blob_entry_value, blob_number, delete_manifest,
    header, manifest_number, number_of_key, put_manifest, set_blob_count, value_key,
};
use super::{Store, StoreError};
use crate::proto::{BlobHash, BundleId, Manifest, PublicKey, StoryId, decode_unverified};

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

impl Store {
    /// Rehashes every manifest and blob. With `repair`, removes what is
    /// damaged, and every bundle left incomplete by that, then rebuilds the
    /// indices; the removed bundles count as missing, so peers supply them
    /// again.
    ///
    /// Values are read in the order they were stored, and entries in key
    /// order: every read is part of a scan, none a lookup by a random id,
    /// so the check costs in proportion to the store whatever its size.
    pub fn check(&self, repair: bool) -> Result<CheckReport, StoreError> {
        let _w = self.lock()?;
        let mut report = CheckReport::default();
        let mut bad_blobs: HashSet<BlobHash> = HashSet::new();
        // Values whose entry is missing, or which are not what they say.
        let mut stray: Vec<u64> = Vec::new();
        // Small blobs: by number, the hash a value says it holds.
        let mut blob_at: HashMap<u64, BlobHash> = HashMap::new();
        let mut manifest_at: HashMap<u64, BundleId> = HashMap::new();
        for item in self.kv.scan(&[VALUE], false) {
            let (k, v) = item?;
            let n = number_of_key(&k)?;
            match header(&v) {
                Some((KIND_BLOB, hash)) => {
                    let hash = BlobHash(hash);
                    report.blobs += 1;
                    if BlobHash::of(&v[HEADER..]) != hash {
                        report
                            .problems
                            .push(format!("blob {hash} does not match its hash"));
                        bad_blobs.insert(hash);
                    }
                    blob_at.insert(n, hash);
                }
                Some((KIND_MANIFEST, id)) => {
                    manifest_at.insert(n, BundleId(id));
                }
                _ => {
                    report.problems.push(format!("stored value {n} is damaged"));
                    stray.push(n);
                }
            }
        }
        // Every blob a manifest may use: small ones whose entry points at
        // their bytes, and files.
        let mut present: HashSet<BlobHash> = HashSet::new();
        for item in self.kv.scan(&[BLOB], false) {
            let (k, v) = item?;
            let hash = hash_of_key(&k)?;
            let n = blob_number(&v);
            match n.and_then(|n| blob_at.remove(&n).map(|h| (n, h))) {
                Some((_, h)) if h == hash => {
                    present.insert(hash);
                }
                Some((n, _)) => {
                    report
                        .problems
                        .push(format!("blob {hash}: its entry points at another value"));
                    bad_blobs.insert(hash);
                    stray.push(n);
                }
                None => {
                    report
                        .problems
                        .push(format!("blob {hash}: its bytes are missing"));
                    bad_blobs.insert(hash);
                }
            }
        }
        for (n, hash) in blob_at {
            report.problems.push(format!(
                "blob {hash}: stored bytes no entry names (value {n})"
            ));
            stray.push(n);
        }
        for hash in self.blobs.list()? {
            report.blobs += 1;
            let Some(v) = self.blobs.get(&hash)? else {
                continue;
            };
            if BlobHash::of(&v) == hash {
                present.insert(hash);
            } else {
                report
                    .problems
                    .push(format!("blob {hash} does not match its hash"));
                bad_blobs.insert(hash);
            }
        }
        let mut bad_bundles = Vec::new();
        // Manifest entries, each to point at its own value.
        let mut pointed: HashSet<u64> = HashSet::new();
        for item in self.kv.scan(&[MANIFEST], false) {
            let (k, v) = item?;
            let id = id_from(&k[1..])?;
            let n = manifest_number(&v);
            match n.map(|n| (n, manifest_at.remove(&n))) {
                Some((n, Some(at))) if at == id => {
                    pointed.insert(n);
                }
                Some((n, Some(_))) => {
                    report
                        .problems
                        .push(format!("manifest {id}: its entry points at another value"));
                    bad_bundles.push(id);
                    stray.push(n);
                }
                _ => {
                    report
                        .problems
                        .push(format!("manifest {id}: its bytes are missing"));
                    bad_bundles.push(id);
                }
            }
        }
        for (n, id) in manifest_at {
            report.problems.push(format!(
                "manifest {id}: stored bytes no entry names (value {n})"
            ));
            stray.push(n);
        }
        // The manifests themselves, in stored order.
        for item in self.kv.scan(&[VALUE], false) {
            let (k, v) = item?;
            let n = number_of_key(&k)?;
            let Some((KIND_MANIFEST, id)) = header(&v) else {
                continue;
            };
            if !pointed.contains(&n) {
                continue;
            }
            let id = BundleId(id);
            let bytes = &v[HEADER..];
            report.manifests += 1;
            if BundleId::of(bytes) != id {
                report
                    .problems
                    .push(format!("manifest {id} does not match its id"));
                bad_bundles.push(id);
                continue;
            }
            let m = match decode_unverified::<Manifest>(bytes) {
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
                if bad_blobs.contains(&e.hash) || !present.contains(&e.hash) {
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
            let mut tx = Tx::new(&self.kv);
            for id in &bad_bundles {
                delete_manifest(&mut tx, id)?;
            }
            tx.commit()?;
            self.kv.apply(
                stray
                    .into_iter()
                    .map(|n| Op::Delete(value_key(n)))
                    .collect(),
            )?;
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
        // Slots of bundles not held (evicted, revoked) stay, unless
        // their bundle was removed; the held ones are made again from the
        // manifests below, and all are written back in fresh blocks.
        let mut kept_slots = Vec::new();
        for item in slots::scan(&self.kv, None) {
            let (p, seq, v) = item?;
            if v.first().is_some_and(|s| *s != SeqState::Held as u8)
                && !id_from(&v[1..]).is_ok_and(|id| removed.contains(&id))
            {
                kept_slots.push((p, seq, v));
            }
        }
        for k in slots::block_keys(&self.kv) {
            ops.push(Op::Delete(k?));
        }
        for prefix in [STORY, REFS] {
            for item in self.kv.scan(&[prefix], false) {
                let (k, _) = item?;
                ops.push(Op::Delete(k));
            }
        }
        for name in [
            META_PAYLOAD,
            META_BUNDLES,
            META_BLOBS,
            META_BLOB_DISK,
            META_PUBLISHER_COUNTED,
            META_CATALOG,
        ] {
            ops.push(Op::Delete(key(META, &[name])));
        }
        self.kv.apply(ops)?;
        // The manifests with an entry, read in stored order, one at a time.
        let mut pointed: HashSet<u64> = HashSet::new();
        for item in self.kv.scan(&[MANIFEST], false) {
            let (_, v) = item?;
            if let Some(n) = manifest_number(&v) {
                pointed.insert(n);
            }
        }
        let mut refs: HashMap<BlobHash, u32> = HashMap::new();
        let mut small: HashMap<u64, u64> = HashMap::new();
        let mut payload = 0u64;
        let mut bundles = 0u64;
        let mut latest: HashMap<(PublicKey, StoryId), StoryEntry> = HashMap::new();
        let mut ops = Vec::new();
        for item in self.kv.scan(&[VALUE], false) {
            let (k, v) = item?;
            let n = number_of_key(&k)?;
            match header(&v) {
                Some((KIND_BLOB, _)) => {
                    small.insert(n, (v.len() - HEADER) as u64);
                    continue;
                }
                Some((KIND_MANIFEST, id)) if pointed.contains(&n) => {
                    let id = BundleId(id);
                    let bytes = &v[HEADER..];
                    let Ok(m) = decode_unverified::<Manifest>(bytes) else {
                        continue;
                    };
                    payload += bytes.len() as u64;
                    bundles += 1;
                    for e in &m.entries {
                        *refs.entry(e.hash).or_default() += 1;
                    }
                    let mut seq_val = vec![SeqState::Held as u8];
                    seq_val.extend_from_slice(id.as_bytes());
                    kept_slots.push((m.publisher, m.sequence, seq_val));
                    match latest.entry((m.publisher, m.story)) {
                        hash_map::Entry::Occupied(mut o) => {
                            if (m.version, id) > (o.get().version, o.get().id) {
                                o.insert(StoryEntry::of(&m, id));
                            }
                        }
                        hash_map::Entry::Vacant(slot) => {
                            slot.insert(StoryEntry::of(&m, id));
                        }
                    }
                }
                _ => {}
            }
        }
        for entry in latest.values() {
            ops.push(Op::Put(
                story_key(&entry.publisher, &entry.story),
                entry.encode(),
            ));
        }
        ops.extend(slots::fresh_blocks(kept_slots));
        let mut blobs = 0u64;
        let mut blob_disk = 0u64;
        let mut unreferenced = Vec::new();
        for item in self.kv.scan(&[BLOB], false) {
            let (k, v) = item?;
            let hash = hash_of_key(&k)?;
            let n = blob_number(&v);
            match (
                refs.get(&hash),
                n.and_then(|n| small.get(&n).map(|len| (n, *len))),
            ) {
                (Some(count), Some((n, len))) => {
                    ops.push(Op::Put(k, blob_entry_value(*count, n)));
                    payload += len;
                    blobs += 1;
                }
                _ => unreferenced.push(hash),
            }
        }
        for hash in self.blobs.list()? {
            match refs.get(&hash) {
                Some(n) => {
                    let len = self.blobs.get(&hash)?.map_or(0, |bytes| bytes.len() as u64);
                    ops.push(Op::Put(
                        key(REFS, &[hash.as_bytes()]),
                        n.to_be_bytes().to_vec(),
                    ));
                    blob_disk += disk_cost(len);
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
            bundles.to_be_bytes().to_vec(),
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
        self.index_catalog_locked()
    }

    /// Converts a store of schema 1, which kept manifests and small blobs
    /// whole under their ids, to values by number (see `values`), in
    /// batches. Each batch moves its entries atomically, so a crash leaves
    /// some converted and the rest where they were, and the next open goes
    /// on; the schema says 2 only once nothing is left to move.
    pub(super) fn convert_values(&self) -> Result<(), StoreError> {
        let schema_key = key(META, &[META_SCHEMA]);
        let found = self
            .kv
            .get(&schema_key)?
            .and_then(|v| v.try_into().ok())
            .map(u32::from_be_bytes);
        if found != Some(1) {
            return Ok(());
        }
        let _w = self.lock()?;
        let mut moved = 0u64;
        for table in [OLD_MANIFEST, OLD_BLOB] {
            loop {
                let mut batch = Vec::with_capacity(CONVERT_BATCH);
                for item in self.kv.scan(&[table], false).take(CONVERT_BATCH) {
                    batch.push(item?);
                }
                if batch.is_empty() {
                    break;
                }
                let mut tx = Tx::new(&self.kv);
                for (k, v) in batch {
                    let name: [u8; 32] = k
                        .get(1..)
                        .and_then(|n| n.try_into().ok())
                        .ok_or_else(|| StoreError::Corrupt("a schema 1 entry's key".into()))?;
                    tx.delete(k);
                    if table == OLD_MANIFEST {
                        put_manifest(&mut tx, &BundleId(name), &v)?;
                    } else {
                        let count = v
                            .get(..4)
                            .and_then(|b| b.try_into().ok())
                            .map(u32::from_be_bytes)
                            .ok_or_else(|| StoreError::Corrupt("a schema 1 blob entry".into()))?;
                        set_blob_count(&mut tx, &BlobHash(name), count, Some(&v[4..]))?;
                    }
                    moved += 1;
                }
                tx.commit()?;
                self.kv.flush()?;
            }
        }
        self.kv.apply(vec![Op::Put(
            schema_key,
            SCHEMA_VERSION.to_be_bytes().to_vec(),
        )])?;
        self.kv.flush()?;
        info!(moved, "converted the store to schema {SCHEMA_VERSION}");
        Ok(())
    }

    /// Removes blob files no stored bundle refers to: left by a crash after
    /// a blob was written and before its bundle's batch was applied.
    pub(super) fn sweep_orphans(&self) -> Result<(), StoreError> {
        let _w = self.lock()?;
        let mut referenced = Vec::new();
        for item in self.kv.scan(&[REFS], false) {
            let (k, _) = item?;
            referenced.push(hash_of_key(&k)?);
        }
        let removed = self.blobs.remove_others(&referenced)?;
        if removed > 0 {
            info!(removed, "removed blob files of bundles never stored");
        }
        Ok(())
    }

    /// Counts each publisher's bytes from the manifests, once, for a
    /// store made before the counters existed (and after a repair).
    pub(super) fn count_publishers(&self) -> Result<(), StoreError> {
        if self.kv.contains(&key(META, &[META_PUBLISHER_COUNTED]))? {
            return Ok(());
        }
        let _w = self.lock()?;
        let mut sums: HashMap<PublicKey, u64> = HashMap::new();
        for item in self.kv.scan(&[VALUE], false) {
            let (_, v) = item?;
            if let Some((KIND_MANIFEST, _)) = header(&v)
                && let Ok(m) = decode_unverified::<Manifest>(&v[HEADER..])
            {
                *sums.entry(m.publisher).or_default() += bundle_bytes(&v[HEADER..], &m);
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

    /// Removes a blob, small or a file, whatever uses it.
    fn delete_blob(&self, hash: &BlobHash) -> Result<(), StoreError> {
        let mut tx = Tx::new(&self.kv);
        set_blob_count(&mut tx, hash, 0, None)?;
        tx.commit()?;
        self.blobs.remove(hash)
    }

    /// Damages a stored blob (tests of `check` only).
    #[doc(hidden)]
    pub fn corrupt_blob_for_test(&self, hash: &BlobHash) -> Result<(), StoreError> {
        if let Some((_, n)) = blob_entry(&Tx::new(&self.kv), hash)? {
            let k = value_key(n);
            if let Some(mut v) = self.kv.get(&k)? {
                if let Some(b) = v.get_mut(HEADER) {
                    *b ^= 0xff;
                }
                return self.kv.apply(vec![Op::Put(k, v)]);
            }
        }
        self.blobs.damage(hash)
    }
}

/// Entries moved per batch when a schema 1 store is converted.
const CONVERT_BATCH: usize = 2_000;

/// The hash in a `g` or `r` key.
fn hash_of_key(k: &[u8]) -> Result<BlobHash, StoreError> {
    k.get(1..)
        .and_then(|h| h.try_into().ok())
        .map(BlobHash)
        .ok_or_else(|| StoreError::Corrupt("a blob entry's key".into()))
}
