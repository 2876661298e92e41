//! Forgetting a publisher: every trace of one outlet taken out of the
//! index, for a reader who risks punishment for holding its stories.
//!
//! Gone: its bundles (manifests, and blobs no other bundle uses), its
//! sequence slots of every state, story entries and their catalog index
//! and counters, pins, head, certificates,
//! revocations and mirror list, its byte counter, the log entries that
//! stand for any of them, and what the node kept only because of its
//! mirror list (positions in the web trees and mirror logs it named, and
//! the addresses it gave the address book).
//!
//! Bundles go in batches of [`BATCH`], each with its sequence slots and
//! log entries, so that a crash between batches leaves a store that is
//! whole and a later call that finds what is left: everything else is
//! found by the publisher's key, and goes in the last batch. This is the
//! logical removal: sled may keep removed bytes in its files until the
//! database is rewritten.

use std::collections::{HashMap, HashSet};

use super::catalog::slot_change;
use super::ingest::release_blobs;
use super::log::LogItem;
use super::tables::{
    CERT, COUNTS, HEAD, INDEX, META, META_ADDRESS_BOOK, META_LOG_CURSOR, META_PUBLISHER, MIRRORS,
    PIN, REVOCATION, STORY, SeqState, bundle_bytes, id_from, key,
};
use super::tx::Tx;
use super::{Store, StoreError};
use crate::proto::mirrors::MirrorList;
use crate::proto::{BundleId, CertId, KeyCertificate, PublicKey, decode_unverified};

/// Bundles removed per atomic batch.
const BATCH: usize = 256;

/// The prefix, after [`META_LOG_CURSOR`], of a web tree's position (the
/// web channel keeps it under the tree's address).
const WEB_CURSOR: &[u8] = b"web ";

/// What [`Store::forget_publisher`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Bundles removed (those held; evicted and revoked ones only had
    /// their sequence slots).
    pub bundles: u64,
    /// Blobs removed: those no other publisher's bundle uses.
    pub blobs: u64,
    /// Bytes of manifests and blobs removed.
    pub bytes: u64,
}

/// What only one publisher's mirror list names among the stored lists.
#[derive(Default)]
struct NamedOnly {
    /// libp2p addresses.
    addresses: Vec<String>,
    /// Web-tree URLs.
    urls: Vec<String>,
    /// Mirrors' peer ids, as bytes.
    peers: Vec<Vec<u8>>,
}

impl Store {
    /// Removes everything the store holds of `publisher` (see the module
    /// text), then flushes. Shared blobs stay, with their use counts right;
    /// the store's totals follow. Forgetting a publisher the store knows
    /// nothing of removes nothing.
    pub fn forget_publisher(&self, publisher: &PublicKey) -> Result<Forgotten, StoreError> {
        let _w = self.lock()?;
        // Read before the list goes, in the last batch.
        let named = self.named_only_by(publisher)?;
        let slots: Vec<(u64, BundleId, Option<SeqState>)> =
            super::slots::scan(&self.kv, Some(publisher))
                .map(|item| {
                    let (_, seq, v) = item?;
                    let state = v.first().and_then(|b| SeqState::from_u8(*b));
                    Ok((seq, id_from(v.get(1..).unwrap_or_default())?, state))
                })
                .collect::<Result<_, StoreError>>()?;
        let ids: HashSet<BundleId> = slots.iter().map(|(_, id, _)| *id).collect();
        let mut bundle_log: HashMap<BundleId, Vec<u64>> = HashMap::new();
        let mut own_log = Vec::new();
        for item in super::log::entries(self, 0) {
            let (position, item) = item?;
            match item {
                LogItem::Bundle(id) if ids.contains(&id) => {
                    bundle_log.entry(id).or_default().push(position)
                }
                LogItem::Head(p) | LogItem::Revocation(p, _) | LogItem::MirrorList(p)
                    if p == *publisher =>
                {
                    own_log.push(position)
                }
                _ => {}
            }
        }

        let mut report = Forgotten::default();
        for chunk in slots.chunks(BATCH) {
            let mut tx = Tx::new(&self.kv);
            let mut unlink = Vec::new();
            for (seq, id, state) in chunk {
                if let Some(sm) = self.manifest_in(&tx, id)? {
                    super::values::delete_manifest(&mut tx, id)?;
                    let (bytes, blobs) = release_blobs(&mut tx, &sm.manifest, &mut unlink)?;
                    let removed = sm.bytes.len() as u64 + bytes;
                    tx.payload -= removed as i64;
                    tx.bundles -= 1;
                    *tx.per_publisher.entry(*publisher).or_default() -=
                        bundle_bytes(&sm.bytes, &sm.manifest) as i64;
                    report.bundles += 1;
                    report.blobs += blobs;
                    report.bytes += removed;
                }
                super::slots::set_slot(&mut tx, publisher, *seq, None)?;
                slot_change(&mut tx, publisher, *seq, *state, None)?;
                super::log::remove(&mut tx, &bundle_log.remove(id).unwrap_or_default())?;
            }
            tx.commit()?;
            // Files go after the index no longer names them.
            for hash in unlink {
                self.blobs.remove(&hash)?;
            }
        }

        let mut tx = Tx::new(&self.kv);
        for prefix in [STORY, PIN, REVOCATION, INDEX, COUNTS] {
            for item in self.kv.scan(&key(prefix, &[publisher.as_bytes()]), false) {
                tx.delete(item?.0);
            }
        }
        tx.delete(key(HEAD, &[publisher.as_bytes()]));
        tx.delete(key(MIRRORS, &[publisher.as_bytes()]));
        tx.delete(key(META, &[META_PUBLISHER, publisher.as_bytes()]));
        let mut certs = Vec::new();
        for item in self.kv.scan(&[CERT], false) {
            let (k, v) = item?;
            if decode_unverified::<KeyCertificate>(&v).is_ok_and(|c| c.publisher == *publisher) {
                certs.push(CertId(
                    k.get(1..)
                        .and_then(|b| b.try_into().ok())
                        .ok_or_else(|| StoreError::Corrupt("certificate key".into()))?,
                ));
                tx.delete(k);
            }
        }
        super::log::remove(&mut tx, &own_log)?;
        for url in &named.urls {
            tx.delete(key(META, &[META_LOG_CURSOR, WEB_CURSOR, url.as_bytes()]));
        }
        for peer in &named.peers {
            tx.delete(key(META, &[META_LOG_CURSOR, peer]));
        }
        if let Some(book) = self.kv.get(&key(META, &[META_ADDRESS_BOOK]))? {
            match crate::net::book::forget_listed(&book, &named.addresses) {
                Ok(Some(kept)) => tx.put(key(META, &[META_ADDRESS_BOOK]), kept),
                Ok(None) => {}
                // A book that cannot be read is of no use to the node
                // either (it starts afresh), and may name the mirrors.
                Err(e) => {
                    tracing::warn!("dropped a damaged address book: {e}");
                    tx.delete(key(META, &[META_ADDRESS_BOOK]));
                }
            }
        }
        tx.commit()?;
        let mut cache = self.cert_keys.lock().map_err(|_| StoreError::Poisoned)?;
        for id in &certs {
            cache.remove(id);
        }
        drop(cache);
        self.kv.flush()?;
        tracing::info!(
            bundles = report.bundles,
            blobs = report.blobs,
            bytes = report.bytes,
            "forgot a publisher"
        );
        Ok(report)
    }

    /// What `publisher`'s stored mirror list names that no other stored
    /// list does: those stay the others' to keep.
    fn named_only_by(&self, publisher: &PublicKey) -> Result<NamedOnly, StoreError> {
        let mut own = None;
        let mut others: Vec<MirrorList> = Vec::new();
        for item in self.kv.scan(&[MIRRORS], false) {
            let (k, v) = item?;
            // A damaged list names nothing to keep or to forget.
            let Ok(list) = decode_unverified::<MirrorList>(&v) else {
                continue;
            };
            if k.get(1..) == Some(publisher.as_bytes().as_slice()) {
                own = Some(list);
            } else {
                others.push(list);
            }
        }
        let Some(own) = own else {
            return Ok(NamedOnly::default());
        };
        let addresses: HashSet<&String> = others.iter().flat_map(|l| &l.libp2p).collect();
        let urls: HashSet<&String> = others.iter().flat_map(|l| &l.https).collect();
        let peers: HashSet<Vec<u8>> = others
            .iter()
            .flat_map(|l| &l.libp2p)
            .filter_map(|a| crate::net::book::listed_peer(a))
            .collect();
        let mut named = NamedOnly {
            addresses: own
                .libp2p
                .iter()
                .filter(|a| !addresses.contains(a))
                .cloned()
                .collect(),
            urls: own
                .https
                .iter()
                .filter(|u| !urls.contains(u))
                .cloned()
                .collect(),
            peers: Vec::new(),
        };
        for a in &own.libp2p {
            if let Some(p) = crate::net::book::listed_peer(a)
                && !peers.contains(&p)
                && !named.peers.contains(&p)
            {
                named.peers.push(p);
            }
        }
        Ok(named)
    }

    /// Every key and value in the index, for tests that look for what
    /// must be gone.
    #[doc(hidden)]
    pub fn raw_pairs_for_test(&self) -> Result<Vec<super::kv::Pair>, StoreError> {
        self.kv.scan(&[], false).collect()
    }
}
