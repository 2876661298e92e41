//! Ingest: verified bundles made visible whole or not at all, and the
//! removal of one bundle that eviction, revocation and repair share.

use std::collections::HashMap;

use tracing::debug;

use super::blobs::disk_cost;
use super::catalog::{index_change, slot_change};
use super::slots;
use super::tables::{
    CERT, INLINE_BLOB_MAX, MANIFEST, REVOCATION, SeqState, StoryEntry, bundle_bytes, id_from, key,
    story_key,
};
use super::tx::{Tx, ref_count, set_ref_count};
use super::values::{delete_manifest, put_manifest};
use super::{Store, StoreError};
use crate::proto::{
    BlobHash, BundleId, CertId, KeyCertificate, Manifest, PublicKey, Revocation, VerifiedBundle,
    decode_unverified, revokes,
};

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

impl Store {
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
        let old_slot = slots::slot(|k| tx.get(k), &m.publisher, m.sequence)?;
        if let Some(v) = &old_slot {
            let existing = id_from(&v[1..])?;
            match SeqState::from_u8(v[0]) {
                // The slot's bundle was taken away by a revocation: a thief
                // held it. Another bundle, which passed the policy with
                // that revocation known and is checked against the stored
                // one below, is the newsroom's and takes the slot.
                Some(SeqState::Revoked) if existing != id => {}
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
            && revokes(&rev, m.sequence, m.signed_at)
        {
            return Ok(Ingested::Revoked);
        }

        put_manifest(tx, &id, m.bytes())?;
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
        slots::set_slot(tx, &m.publisher, m.sequence, Some(seq_val))?;
        let old_state = old_slot.and_then(|v| v.first().and_then(|b| SeqState::from_u8(*b)));
        slot_change(
            tx,
            &m.publisher,
            m.sequence,
            old_state,
            Some(SeqState::Held),
        )?;
        // The story's entry names its newest version; a version arriving
        // after a newer one leaves it alone.
        let skey = story_key(&m.publisher, &m.story);
        let cur = tx
            .get(&skey)?
            .map(|v| StoryEntry::decode(&skey, &v))
            .transpose()?;
        if cur
            .as_ref()
            .is_none_or(|cur| (m.version, id) > (cur.version, cur.id))
        {
            let new = StoryEntry::of(m, id);
            index_change(tx, cur.as_ref(), Some(&new))?;
            tx.put(skey, new.encode());
        }
        tx.bundles += 1;
        tx.log(super::log::LogItem::Bundle(id));
        *tx.per_publisher.entry(m.publisher).or_default() += bundle_bytes(m.bytes(), m) as i64;
        debug!(bundle = %id.short(), seq = m.sequence, "stored");
        Ok(Ingested::New)
    }

    /// Removes one bundle and its index entries, leaves `state` in its
    /// sequence slot, and points the story's lists at the next newest
    /// version, in one atomic batch. Caller holds the write lock.
    pub(super) fn remove_bundle(&self, id: &BundleId, state: SeqState) -> Result<u64, StoreError> {
        let mut tx = Tx::new(&self.kv);
        let Some(sm) = self.manifest_in(&tx, id)? else {
            return Ok(0);
        };
        let m = &sm.manifest;
        delete_manifest(&mut tx, id)?;
        let mut unlink = Vec::new();
        let (freed, _) = release_blobs(&mut tx, m, &mut unlink)?;
        let removed = sm.bytes.len() as u64 + freed;
        let mut seq_val = vec![state as u8];
        seq_val.extend_from_slice(id.as_bytes());
        let old_state = slots::slot(|k| tx.get(k), &m.publisher, m.sequence)?
            .and_then(|v| v.first().and_then(|b| SeqState::from_u8(*b)));
        slots::set_slot(&mut tx, &m.publisher, m.sequence, Some(seq_val))?;
        slot_change(&mut tx, &m.publisher, m.sequence, old_state, Some(state))?;
        // If this was the story's newest version, the entry falls back to
        // the version it superseded, when that is stored.
        let skey = story_key(&m.publisher, &m.story);
        if let Some(v) = tx.get(&skey)?
            && let cur = StoryEntry::decode(&skey, &v)?
            && cur.id == *id
        {
            match m
                .supersedes
                .map(|prev| self.manifest_in(&tx, &prev))
                .transpose()?
                .flatten()
            {
                Some(prev) if prev.manifest.story == m.story => {
                    let prev = StoryEntry::of(&prev.manifest, prev.id);
                    index_change(&mut tx, Some(&cur), Some(&prev))?;
                    tx.put(skey, prev.encode());
                }
                _ => {
                    index_change(&mut tx, Some(&cur), None)?;
                    tx.delete(skey);
                }
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
}

/// Takes one use of each of a removed manifest's blobs, in `tx`: a blob
/// whose last use goes is removed with its bytes counted, and a file's
/// hash is added to `unlink`, for removal once the batch is applied (the
/// index must no longer name it). Returns the bytes and blobs freed.
pub(super) fn release_blobs(
    tx: &mut Tx<'_>,
    m: &Manifest,
    unlink: &mut Vec<BlobHash>,
) -> Result<(u64, u64), StoreError> {
    let mut freed = (0, 0);
    let mut decrements: HashMap<BlobHash, (u32, u64)> = HashMap::new();
    for e in &m.entries {
        decrements.entry(e.hash).or_insert((0, e.size)).0 += 1;
    }
    for (hash, (dec, size)) in decrements {
        let count = ref_count(tx, &hash)?;
        let inline = size <= INLINE_BLOB_MAX;
        if count <= dec {
            freed.0 += size;
            freed.1 += 1;
            if !inline {
                tx.blob_disk -= disk_cost(size) as i64;
                unlink.push(hash);
            }
            tx.blobs -= 1;
        }
        set_ref_count(tx, &hash, count.saturating_sub(dec), inline, None)?;
    }
    Ok(freed)
}
