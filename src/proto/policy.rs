//! The trust policy: the only place a `Verified<T>` is made.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use ed25519_dalek::VerifyingKey;

use super::ids::{BundleId, CertId};
use super::keys::{KeyError, PublicKey};
use super::limits::CLOCK_SKEW_SECS;
use super::objects::{Entry, Head, KeyCertificate, Manifest, Revocation};
use super::signed::{self, BatchItem, ObjectKind, Unverified};
use super::time::Timestamp;

mod announced;
mod blobs;
mod error;
mod mirrors;
#[cfg(test)]
mod tests;

use announced::check_attached;
pub use blobs::{check_blob, check_bundle};
pub use error::PolicyError;

/// A value that passed the trust policy, with the exact bytes that were
/// verified. Only this module constructs one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified<T> {
    value: T,
    bytes: Arc<[u8]>,
}

impl<T> Verified<T> {
    fn new(value: T, bytes: &[u8]) -> Self {
        Self {
            value,
            bytes: Arc::from(bytes),
        }
    }

    /// The exact signed bytes that were verified.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The verified value.
    pub fn value(&self) -> &T {
        &self.value
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl Verified<Manifest> {
    /// The bundle id: blake3 of the signed manifest bytes.
    pub fn id(&self) -> BundleId {
        BundleId::of(&self.bytes)
    }
}

impl Verified<KeyCertificate> {
    /// The certificate id: blake3 of its signed bytes.
    pub fn id(&self) -> CertId {
        CertId::of(&self.bytes)
    }
}

/// A manifest together with every blob it lists, all verified.
#[derive(Clone, Debug)]
pub struct VerifiedBundle {
    manifest: Verified<Manifest>,
    blobs: Vec<Bytes>,
}

impl VerifiedBundle {
    /// The verified manifest.
    pub fn manifest(&self) -> &Verified<Manifest> {
        &self.manifest
    }

    /// The bundle id.
    pub fn id(&self) -> BundleId {
        self.manifest.id()
    }

    /// Each entry with its verified bytes, in manifest order.
    pub fn blobs(&self) -> impl Iterator<Item = (&Entry, &[u8])> {
        self.manifest
            .entries
            .iter()
            .zip(self.blobs.iter().map(|b| &**b))
    }
}

/// What is trusted about one publisher.
#[derive(Clone, Debug)]
pub struct PublisherTrust {
    /// The name from the trust list.
    pub name: String,
    /// The decoded root key, checked once when the publisher was trusted.
    root_key: VerifyingKey,
    certificates: HashMap<CertId, Verified<KeyCertificate>>,
    /// The decoded signing key of each certificate, so that checking a
    /// signature does not decompress the key again each time.
    keys: HashMap<CertId, VerifyingKey>,
    revocations: HashMap<PublicKey, Verified<Revocation>>,
    head: Option<Verified<Head>>,
}

impl PublisherTrust {
    /// The newest trusted head, if any.
    pub fn head(&self) -> Option<&Verified<Head>> {
        self.head.as_ref()
    }

    /// The known certificates.
    pub fn certificates(&self) -> impl Iterator<Item = &Verified<KeyCertificate>> {
        self.certificates.values()
    }

    /// The known certificate `id`, if any.
    pub fn certificate(&self, id: &CertId) -> Option<&Verified<KeyCertificate>> {
        self.certificates.get(id)
    }

    /// The known revocations.
    pub fn revocations(&self) -> impl Iterator<Item = &Verified<Revocation>> {
        self.revocations.values()
    }
}

/// What remembering a revocation changed: the policy's verdict, for the
/// store to record as it is.
#[derive(Clone, Debug)]
pub struct RevocationChange {
    /// The revocation given.
    pub revocation: Verified<Revocation>,
    /// New, or widened an earlier one for the same key: something to record.
    pub changed: bool,
    /// The known certificates of the revoked key, sorted.
    pub certificates: Vec<CertId>,
    /// The trusted head was signed by the revoked key and is no longer a
    /// floor for rollback checks.
    pub head_dropped: bool,
}

impl RevocationChange {
    /// Whether the revocation takes away something signed under
    /// `certificate` at `sequence` and `signed_at`.
    pub fn covers(&self, certificate: &CertId, sequence: u64, signed_at: Timestamp) -> bool {
        self.certificates.contains(certificate) && self.revocation.revokes(sequence, signed_at)
    }
}

/// Whether `revocation` takes away what its key signed at `sequence` and
/// `signed_at` ([`Revocation::revokes`], the one statement of that rule).
pub fn revokes(revocation: &Revocation, sequence: u64, signed_at: Timestamp) -> bool {
    revocation.revokes(sequence, signed_at)
}

/// The set of trusted publishers and what is known of their keys.
///
/// Pure: every time-dependent check takes `now` from the caller.
#[derive(Clone, Debug, Default)]
pub struct TrustPolicy {
    publishers: HashMap<PublicKey, PublisherTrust>,
}

impl TrustPolicy {
    /// An empty policy that trusts no one.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the publisher with root key `root`, under `name`.
    /// Fails only for a key that is not a usable ed25519 public key.
    pub fn trust(&mut self, root: PublicKey, name: impl Into<String>) -> Result<(), KeyError> {
        let root_key = root.to_verifying_key()?;
        self.publishers
            .entry(root)
            .or_insert_with(|| PublisherTrust {
                name: name.into(),
                root_key,
                certificates: HashMap::new(),
                keys: HashMap::new(),
                revocations: HashMap::new(),
                head: None,
            });
        Ok(())
    }

    /// Stops trusting `root`, with everything learned of it; returns
    /// whether it was trusted.
    pub fn untrust(&mut self, root: &PublicKey) -> bool {
        self.publishers.remove(root).is_some()
    }

    /// Whether `root` is trusted.
    pub fn is_trusted(&self, root: &PublicKey) -> bool {
        self.publishers.contains_key(root)
    }

    /// What is known of a trusted publisher.
    pub fn publisher(&self, root: &PublicKey) -> Option<&PublisherTrust> {
        self.publishers.get(root)
    }

    /// Every trusted publisher.
    pub fn publishers(&self) -> impl Iterator<Item = (&PublicKey, &PublisherTrust)> {
        self.publishers.iter()
    }

    fn trusted(&self, root: &PublicKey) -> Result<&PublisherTrust, PolicyError> {
        self.publishers
            .get(root)
            .ok_or(PolicyError::UnknownPublisher { publisher: *root })
    }

    fn check_root_signed<T>(
        &self,
        obj: &Unverified<'_, T>,
        root: &PublicKey,
    ) -> Result<(), PolicyError> {
        let trust = self.trusted(root)?;
        if !obj.check_signature(&trust.root_key) {
            return Err(PolicyError::BadSignature {
                what: obj.kind.what(),
            });
        }
        Ok(())
    }

    /// Verifies a key certificate against its publisher's root key.
    pub fn verify_certificate(
        &self,
        bytes: &[u8],
    ) -> Result<Verified<KeyCertificate>, PolicyError> {
        let obj = signed::decode::<KeyCertificate>(ObjectKind::Certificate, bytes)?;
        obj.value.validate()?;
        self.check_root_signed(&obj, &obj.value.publisher)?;
        Ok(Verified::new(obj.value, bytes))
    }

    /// Verifies a revocation against its publisher's root key.
    pub fn verify_revocation(&self, bytes: &[u8]) -> Result<Verified<Revocation>, PolicyError> {
        let obj = signed::decode::<Revocation>(ObjectKind::Revocation, bytes)?;
        obj.value.validate()?;
        self.check_root_signed(&obj, &obj.value.publisher)?;
        Ok(Verified::new(obj.value, bytes))
    }

    /// Remembers a verified certificate for later checks.
    pub fn add_certificate(&mut self, cert: Verified<KeyCertificate>) {
        // verify_certificate checked the key already; a failure here means
        // the value did not come from it, and the certificate is not kept.
        let Ok(key) = cert.signing_key.to_verifying_key() else {
            return;
        };
        if let Some(p) = self.publishers.get_mut(&cert.publisher) {
            p.keys.insert(cert.id(), key);
            p.certificates.insert(cert.id(), cert);
        }
    }

    /// Remembers a verified revocation and says what it changed; of two
    /// for one key, the new one is kept only when it widens the old one
    /// ([`Revocation::widens`]), so a revocation is never narrowed.
    pub fn add_revocation(&mut self, rev: Verified<Revocation>) -> RevocationChange {
        let Some(p) = self.publishers.get_mut(&rev.publisher) else {
            return RevocationChange {
                revocation: rev,
                changed: false,
                certificates: Vec::new(),
                head_dropped: false,
            };
        };
        let mut certificates: Vec<CertId> = p
            .certificates
            .iter()
            .filter(|(_, c)| c.signing_key == rev.key)
            .map(|(id, _)| *id)
            .collect();
        certificates.sort();
        // A head signed by a revoked key is no longer a floor for rollback
        // checks: a thief could have signed it with a huge sequence number
        // to lock out the newsroom's real heads.
        let head_dropped = p
            .head
            .as_ref()
            .is_some_and(|h| certificates.contains(&h.certificate));
        if head_dropped {
            p.head = None;
        }
        let changed = p
            .revocations
            .get(&rev.key)
            .is_none_or(|old| rev.widens(old));
        if changed {
            p.revocations.insert(rev.key, rev.clone());
        }
        RevocationChange {
            revocation: rev,
            changed,
            certificates,
            head_dropped,
        }
    }

    /// Verifies, then remembers, a certificate given as bytes.
    pub fn learn_certificate(
        &mut self,
        bytes: &[u8],
    ) -> Result<Verified<KeyCertificate>, PolicyError> {
        let cert = self.verify_certificate(bytes)?;
        self.add_certificate(cert.clone());
        Ok(cert)
    }

    /// Verifies, then remembers, a revocation given as bytes, and says
    /// what it changed.
    pub fn learn_revocation(&mut self, bytes: &[u8]) -> Result<RevocationChange, PolicyError> {
        let rev = self.verify_revocation(bytes)?;
        Ok(self.add_revocation(rev))
    }

    /// Finds the certificate `id` for `publisher` and the key it certifies.
    fn signing_certificate(
        &self,
        publisher: &PublicKey,
        id: &CertId,
    ) -> Result<(&Verified<KeyCertificate>, VerifyingKey), PolicyError> {
        let trust = self.trusted(publisher)?;
        let (Some(cert), Some(key)) = (trust.certificates.get(id), trust.keys.get(id)) else {
            if let Some(other) = self
                .publishers
                .values()
                .find_map(|p| p.certificates.get(id))
            {
                return Err(PolicyError::CertificateFromOtherPublisher {
                    certificate: *id,
                    publisher: *publisher,
                    certificate_publisher: other.publisher,
                });
            }
            return Err(PolicyError::UnknownCertificate { certificate: *id });
        };
        Ok((cert, *key))
    }

    /// Checks that the key certificate `id` certifies could sign at
    /// `sequence` and `signed_at`, as seen at `now`. Run after the signature: these
    /// verdicts depend on our clock and on what we know of revocations, so
    /// a sender may pass such an object on in good faith, and a forgery
    /// must not reach them without paying for its false signature first.
    fn check_signing_time(
        &self,
        publisher: &PublicKey,
        id: &CertId,
        sequence: u64,
        signed_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), PolicyError> {
        let (cert, _) = self.signing_certificate(publisher, id)?;
        let trust = self.trusted(publisher)?;
        if signed_at > now.plus(CLOCK_SKEW_SECS) {
            return Err(PolicyError::SignedInFuture { signed_at, now });
        }
        if signed_at < cert.not_before {
            return Err(PolicyError::CertificateNotYetValid {
                signed_at,
                not_before: cert.not_before,
            });
        }
        if signed_at > cert.not_after {
            return Err(PolicyError::CertificateExpired {
                signed_at,
                not_after: cert.not_after,
            });
        }
        if let Some(rev) = trust.revocations.get(&cert.signing_key)
            && rev.revokes(sequence, signed_at)
        {
            return Err(PolicyError::KeyRevoked {
                key: cert.signing_key,
                effective_from: rev.effective_from,
                signed_at,
            });
        }
        Ok(())
    }

    /// What can be checked before the signature: fields, publisher,
    /// certificate (the one `attached`, when one is) and scope. Returns the
    /// key that must have signed.
    fn precheck_manifest(
        &self,
        obj: &Unverified<'_, Manifest>,
        attached: Option<&Verified<KeyCertificate>>,
    ) -> Result<VerifyingKey, PolicyError> {
        let m = &obj.value;
        m.validate()?;
        if let Some(a) = attached {
            check_attached(a, &m.publisher, &m.certificate)?;
        }
        let (cert, key) = self.signing_certificate(&m.publisher, &m.certificate)?;
        if !cert.scope.allows_language(&m.metadata.language) {
            return Err(PolicyError::OutOfScope {
                language: m.metadata.language.clone(),
                allowed: cert.scope.languages.clone(),
            });
        }
        Ok(key)
    }

    /// Verifies a signed manifest: its fields, its publisher, its signing
    /// key's certificate and revocation status at its signing time, and its
    /// signature (`verify_strict`). Blobs are checked separately.
    pub fn verify_manifest(
        &self,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<Verified<Manifest>, PolicyError> {
        self.verify_manifest_under(bytes, None, now)
    }

    fn verify_manifest_under(
        &self,
        bytes: &[u8],
        attached: Option<&Verified<KeyCertificate>>,
        now: Timestamp,
    ) -> Result<Verified<Manifest>, PolicyError> {
        let obj = signed::decode::<Manifest>(ObjectKind::Manifest, bytes)?;
        let key = self.precheck_manifest(&obj, attached)?;
        if !obj.check_signature(&key) {
            return Err(PolicyError::BadSignature { what: "manifest" });
        }
        let m = &obj.value;
        self.check_signing_time(&m.publisher, &m.certificate, m.sequence, m.signed_at, now)?;
        Ok(Verified::new(obj.value, bytes))
    }

    /// Verifies many manifests, checking their signatures as one batch and
    /// falling back to single checks only to find a bad one. The verdicts
    /// are the ones [`TrustPolicy::verify_manifest`] gives each alone.
    pub fn verify_manifests(
        &self,
        items: &[&[u8]],
        now: Timestamp,
    ) -> Vec<Result<Verified<Manifest>, PolicyError>> {
        let mut out: Vec<Result<Verified<Manifest>, PolicyError>> = Vec::with_capacity(items.len());
        let mut batch = Vec::new();
        let mut pending = Vec::new();
        for (i, bytes) in items.iter().enumerate() {
            let checked = signed::decode::<Manifest>(ObjectKind::Manifest, bytes)
                .map_err(PolicyError::from)
                .and_then(|obj| self.precheck_manifest(&obj, None).map(|key| (obj, key)));
            match checked {
                Ok((obj, key)) => {
                    batch.push(BatchItem {
                        message: signed::signing_message(ObjectKind::Manifest, obj.body),
                        signature: obj.signature,
                        key,
                    });
                    pending.push((i, obj.value));
                    out.push(Err(PolicyError::BadSignature { what: "manifest" }));
                }
                Err(e) => out.push(Err(e)),
            }
        }
        let verdicts = signed::verify_batch_strict(&batch);
        for ((i, value), ok) in pending.into_iter().zip(verdicts) {
            if ok {
                out[i] = self
                    .check_signing_time(
                        &value.publisher,
                        &value.certificate,
                        value.sequence,
                        value.signed_at,
                        now,
                    )
                    .map(|()| Verified::new(value, items[i]));
            }
        }
        out
    }

    /// Checks every blob against the manifest and returns the whole bundle
    /// (the same as [`check_bundle`]: blobs need no trust state).
    pub fn verify_bundle(
        &self,
        manifest: Verified<Manifest>,
        blobs: Vec<Vec<u8>>,
    ) -> Result<VerifiedBundle, PolicyError> {
        check_bundle(manifest, blobs)
    }

    /// Verifies a head: signature, certificate and revocation at its issue
    /// time, and that it does not roll back the trusted head.
    pub fn verify_head(&self, bytes: &[u8], now: Timestamp) -> Result<Verified<Head>, PolicyError> {
        self.verify_head_under(bytes, None, now)
    }

    fn verify_head_under(
        &self,
        bytes: &[u8],
        attached: Option<&Verified<KeyCertificate>>,
        now: Timestamp,
    ) -> Result<Verified<Head>, PolicyError> {
        let obj = signed::decode::<Head>(ObjectKind::Head, bytes)?;
        let h = &obj.value;
        h.validate()?;
        if let Some(a) = attached {
            check_attached(a, &h.publisher, &h.certificate)?;
        }
        let (cert, key) = self.signing_certificate(&h.publisher, &h.certificate)?;
        if !obj.check_signature(&key) {
            return Err(PolicyError::BadSignature { what: "head" });
        }
        self.check_signing_time(&h.publisher, &h.certificate, h.sequence, h.issued_at, now)?;
        // Heads are short-lived and re-issued with the new key after a
        // revocation, so a revoked key's heads are refused whatever time
        // they claim: a backdated head must not pin a false sequence.
        if let Some(rev) = self
            .publishers
            .get(&h.publisher)
            .and_then(|p| p.revocations.get(&cert.signing_key))
        {
            return Err(PolicyError::KeyRevoked {
                key: cert.signing_key,
                effective_from: rev.effective_from,
                signed_at: h.issued_at,
            });
        }
        if let Some(trusted) = self
            .publishers
            .get(&h.publisher)
            .and_then(|p| p.head.as_ref())
            && h.sequence < trusted.sequence
        {
            return Err(PolicyError::HeadRollback {
                trusted: trusted.sequence,
                offered: h.sequence,
            });
        }
        Ok(Verified::new(obj.value, bytes))
    }

    /// Makes `head` the trusted head when it is newer (higher sequence, or
    /// the same sequence issued later) than the current one. Returns whether
    /// it replaced it.
    pub fn accept_head(&mut self, head: Verified<Head>) -> bool {
        let Some(p) = self.publishers.get_mut(&head.publisher) else {
            return false;
        };
        let newer = p
            .head
            .as_ref()
            .is_none_or(|old| (head.sequence, head.issued_at) > (old.sequence, old.issued_at));
        if newer {
            p.head = Some(head);
        }
        newer
    }
}
