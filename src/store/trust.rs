//! Trust objects: certificates, revocations and heads, recorded as the
//! trust policy decided them, and taught back to a policy at start.
//!
//! The store decides nothing about trust here: which revocation wins,
//! whether a head is newer, and whether a head stops being a floor are the
//! policy's verdicts ([`RevocationChange`], [`TrustPolicy::accept_head`]),
//! which these methods write down.

use tracing::{debug, warn};

use super::kv::Op;
use super::log::LogItem;
use super::tables::{CERT, HEAD, REVOCATION, SeqState, id_from, key};
use super::{Store, StoreError};
use crate::proto::{
    BundleId, CertId, Head, KeyCertificate, PolicyError, PublicKey, RevocationChange, Timestamp,
    TrustPolicy, Verified, decode_unverified,
};

impl Store {
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
            ops.extend(self.log_ops(&[LogItem::Revocation(rev.publisher, rev.key)])?);
        }
        if change.head_dropped {
            ops.push(Op::Delete(key(HEAD, &[rev.publisher.as_bytes()])));
            warn!("dropped a head signed by a revoked key");
            debug!(key = %rev.key.short(), "dropped a head signed by a revoked key");
        }
        self.kv.apply(ops)?;
        let mut doomed = Vec::new();
        if change.changed {
            for item in super::slots::scan(&self.kv, Some(&rev.publisher)) {
                let (_, _, v) = item?;
                if v.first() != Some(&(SeqState::Held as u8)) {
                    continue;
                }
                let id = id_from(&v[1..])?;
                if let Some(m) = self.manifest(&id)?
                    && change.covers(
                        &m.manifest.certificate,
                        m.manifest.sequence,
                        m.manifest.signed_at,
                    )
                {
                    doomed.push(id);
                }
            }
            for id in &doomed {
                self.remove_bundle(id, SeqState::Revoked)?;
            }
        }
        if !doomed.is_empty() {
            warn!(
                count = doomed.len(),
                "removed bundles signed by a revoked key"
            );
            debug!(key = %rev.key.short(), "the revoked key");
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
        let mut ops = vec![Op::Put(k, head.bytes().to_vec())];
        ops.extend(self.log_ops(&[LogItem::Head(head.publisher)])?);
        self.kv.apply(ops)
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
    /// publishers the policy does not trust are skipped. A stored head its
    /// revocations refuse is deleted, so that it is no floor here either.
    pub fn load_trust(&self, policy: &mut TrustPolicy, now: Timestamp) -> Result<(), StoreError> {
        for item in self.kv.scan(&[CERT], false) {
            let (_, v) = item?;
            match policy.learn_certificate(&v) {
                Ok(_) | Err(PolicyError::UnknownPublisher { .. }) => {}
                Err(e) => {
                    warn!("a stored certificate no longer verifies");
                    debug!("stored certificate no longer verifies: {e}");
                }
            }
        }
        for item in self.kv.scan(&[REVOCATION], false) {
            let (_, v) = item?;
            match policy.learn_revocation(&v) {
                Ok(_) | Err(PolicyError::UnknownPublisher { .. }) => {}
                Err(e) => {
                    warn!("a stored revocation no longer verifies");
                    debug!("stored revocation no longer verifies: {e}");
                }
            }
        }
        let mut revoked = Vec::new();
        for item in self.kv.scan(&[HEAD], false) {
            let (k, v) = item?;
            match policy.verify_head(&v, now) {
                Ok(h) => {
                    policy.accept_head(h);
                }
                Err(PolicyError::UnknownPublisher { .. }) => {}
                // Kept, it would still be the floor of `record_head`'s
                // rollback check and refuse every genuine head below it.
                Err(e @ PolicyError::KeyRevoked { .. }) => {
                    warn!("dropped a stored head signed by a revoked key");
                    debug!("dropped a stored head: {e}");
                    revoked.push(Op::Delete(k.to_vec()));
                }
                Err(e) => {
                    warn!("a stored head was not used");
                    debug!("stored head not used: {e}");
                }
            }
        }
        if !revoked.is_empty() {
            let _w = self.lock()?;
            self.kv.apply(revoked)?;
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
}
