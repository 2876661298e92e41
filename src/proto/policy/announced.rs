//! Verifying what a gossip announcement carries: each object comes with its
//! signing key's certificate, on its publisher's topic, and whatever does
//! not match those is refused before a signature is checked.

use super::{PolicyError, TrustPolicy, Verified};
use crate::proto::ids::CertId;
use crate::proto::keys::PublicKey;
use crate::proto::objects::{Head, KeyCertificate, Manifest, Revocation};
use crate::proto::signed::{self, ObjectKind};
use crate::proto::time::Timestamp;

/// Checks that an object of `publisher` signed under `named` names the
/// certificate `attached` it came with: an honest sender attaches the one
/// its object needs.
pub(super) fn check_attached(
    attached: &Verified<KeyCertificate>,
    publisher: &PublicKey,
    named: &CertId,
) -> Result<(), PolicyError> {
    if attached.publisher != *publisher {
        return Err(PolicyError::OtherPublisher {
            expected: attached.publisher,
            found: *publisher,
        });
    }
    if *named != attached.id() {
        return Err(PolicyError::NotAttachedCertificate {
            named: *named,
            attached: attached.id(),
        });
    }
    Ok(())
}

/// The checks of an object the publisher's root key signs, cheapest
/// first: it names `publisher` (the topic's), its fields are valid
/// (`valid`), then its signature.
fn check_root_signed<T>(
    obj: &signed::Unverified<'_, T>,
    publisher: &PublicKey,
    claimed: PublicKey,
    valid: Result<(), PolicyError>,
    trust: &super::PublisherTrust,
) -> Result<(), PolicyError> {
    if claimed != *publisher {
        return Err(PolicyError::OtherPublisher {
            expected: *publisher,
            found: claimed,
        });
    }
    valid?;
    if !obj.check_signature(&trust.root_key) {
        return Err(PolicyError::BadSignature {
            what: obj.kind.what(),
        });
    }
    Ok(())
}

impl TrustPolicy {
    /// Verifies a key certificate that must be `publisher`'s (one carried on
    /// that publisher's topic). A certificate already known is the verified
    /// one, without a second signature check; the claimed publisher is
    /// compared before the signature is checked.
    pub fn verify_certificate_of(
        &self,
        publisher: &PublicKey,
        bytes: &[u8],
    ) -> Result<Verified<KeyCertificate>, PolicyError> {
        let trust = self.trusted(publisher)?;
        if let Some(known) = trust.certificates.get(&CertId::of(bytes)) {
            return Ok(known.clone());
        }
        let obj = signed::decode::<KeyCertificate>(ObjectKind::Certificate, bytes)?;
        check_root_signed(
            &obj,
            publisher,
            obj.value.publisher,
            obj.value.validate(),
            trust,
        )?;
        Ok(Verified::new(obj.value, bytes))
    }

    /// [`TrustPolicy::verify_manifest`] for a manifest that came with
    /// `attached`, its signing key's certificate: one that names another
    /// certificate or publisher is refused before its signature is checked.
    pub fn verify_manifest_with(
        &self,
        bytes: &[u8],
        attached: &Verified<KeyCertificate>,
        now: Timestamp,
    ) -> Result<Verified<Manifest>, PolicyError> {
        self.verify_manifest_under(bytes, Some(attached), now)
    }

    /// [`TrustPolicy::verify_head`] for a head that came with `attached`,
    /// its signing key's certificate (see
    /// [`TrustPolicy::verify_manifest_with`]).
    pub fn verify_head_with(
        &self,
        bytes: &[u8],
        attached: &Verified<KeyCertificate>,
        now: Timestamp,
    ) -> Result<Verified<Head>, PolicyError> {
        self.verify_head_under(bytes, Some(attached), now)
    }

    /// Verifies a revocation that must be `publisher`'s (one carried on
    /// that publisher's topic): the claimed publisher is compared before
    /// the signature is checked.
    pub fn verify_revocation_of(
        &self,
        publisher: &PublicKey,
        bytes: &[u8],
    ) -> Result<Verified<Revocation>, PolicyError> {
        let trust = self.trusted(publisher)?;
        let obj = signed::decode::<Revocation>(ObjectKind::Revocation, bytes)?;
        check_root_signed(
            &obj,
            publisher,
            obj.value.publisher,
            obj.value.validate(),
            trust,
        )?;
        Ok(Verified::new(obj.value, bytes))
    }
}
