//! Integrity: the check and repair of what is stored, the rebuild of the
//! indices, and the clean-up at open after a crash or an older version.

use std::collections::{HashMap, HashSet, hash_map};

use tracing::info;

use super::blobs::disk_cost;
use super::kv::Op;
use super::tables::{
    BLOB, INLINE_BLOB_MAX, MANIFEST, META, META_BLOB_DISK, META_BLOBS, META_BUNDLES, META_CATALOG,
    META_PAYLOAD, META_PUBLISHER, META_PUBLISHER_COUNTED, REFS, SEQ, STORY, SeqState, StoryEntry,
    bundle_bytes, id_from, key, story_key,
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
            META_CATALOG,
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
                hash_map::Entry::Occupied(mut o) => {
                    if (m.version, *id) > (o.get().0, o.get().1) {
                        o.insert((m.version, *id, m));
                    }
                }
                hash_map::Entry::Vacant(v) => {
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
        self.index_catalog_locked()
    }

    /// Removes blob files no stored bundle refers to: left by a crash after
    /// a blob was written and before its bundle's batch was applied.
    pub(super) fn sweep_orphans(&self) -> Result<(), StoreError> {
        let _w = self.lock()?;
        let mut referenced = Vec::new();
        for item in self.kv.scan(&[REFS], false) {
            let (k, _) = item?;
            let hash: [u8; 32] = k[1..]
                .try_into()
                .map_err(|_| StoreError::Corrupt("blob use count key".into()))?;
            referenced.push(BlobHash(hash));
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
