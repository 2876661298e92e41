//! Verifying a publisher's mirror list.

use super::announced::check_attached;
use super::{PolicyError, TrustPolicy, Verified};
use crate::proto::mirrors::MirrorList;
use crate::proto::objects::KeyCertificate;
use crate::proto::signed::{self, ObjectKind};
use crate::proto::time::Timestamp;

impl TrustPolicy {
    /// Verifies a mirror list: fields, a trusted publisher, a signature by
    /// the signing key its certificate certifies, valid at `issued_at` and
    /// not revoked. An expired list still verifies (it is shown, not
    /// dialed): ask [`MirrorList::is_expired`].
    pub fn verify_mirror_list(
        &self,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<Verified<MirrorList>, PolicyError> {
        self.verify_mirror_list_under(bytes, None, now)
    }

    /// [`TrustPolicy::verify_mirror_list`] for a list that came with
    /// `attached`, its signing key's certificate (a gossip announcement):
    /// one that names another certificate or publisher is refused before
    /// its signature is checked.
    pub fn verify_mirror_list_with(
        &self,
        bytes: &[u8],
        attached: &Verified<KeyCertificate>,
        now: Timestamp,
    ) -> Result<Verified<MirrorList>, PolicyError> {
        self.verify_mirror_list_under(bytes, Some(attached), now)
    }

    fn verify_mirror_list_under(
        &self,
        bytes: &[u8],
        attached: Option<&Verified<KeyCertificate>>,
        now: Timestamp,
    ) -> Result<Verified<MirrorList>, PolicyError> {
        let obj = signed::decode::<MirrorList>(ObjectKind::MirrorList, bytes)?;
        let list = &obj.value;
        if let Some(attached) = attached {
            check_attached(attached, &list.publisher, &list.certificate)?;
        }
        list.validate()?;
        let (cert, key) = self.signing_certificate(&list.publisher, &list.certificate)?;
        if !obj.check_signature(&key) {
            return Err(PolicyError::BadSignature {
                what: "mirror list",
            });
        }
        // A list carries no sequence number: the key must not be revoked
        // at all, as for heads, so a backdated list of a stolen key is
        // refused whatever time it claims.
        self.check_signing_time(&list.publisher, &list.certificate, 0, list.issued_at, now)?;
        if let Some(rev) = self
            .publishers
            .get(&list.publisher)
            .and_then(|p| p.revocations.get(&cert.signing_key))
        {
            return Err(PolicyError::KeyRevoked {
                key: cert.signing_key,
                effective_from: rev.effective_from,
                signed_at: list.issued_at,
            });
        }
        Ok(Verified::new(obj.value, bytes))
    }
}
