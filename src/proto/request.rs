//! Certificate requests: how a newsroom whose root key is kept offline asks
//! for a new signing key to be certified.
//!
//! The online machine makes a new signing key and a request naming it; the
//! request is carried (on a USB stick, say) to the offline machine, which
//! checks it and signs a [`KeyCertificate`]. The request is signed by the
//! new key itself, under its own domain string, so it proves that whoever
//! wrote it holds the key, and a request changed on the way no longer
//! verifies. It is not a protocol object: readers and nodes never see one.

use serde::{Deserialize, Serialize};

use super::error::DecodeError;
use super::keys::{PublicKey, SecretKey};
use super::limits::{
    CLOCK_SKEW_SECS, MAX_REQUEST_VALIDITY_SECS, MAX_SCOPE_LANGUAGES, MIN_REQUEST_VALIDITY_SECS,
};
use super::objects::{FORMAT_VERSION, Scope, check_language};
use super::policy::PolicyError;
use super::signed::{self, ObjectKind, sign_and_encode};
use super::time::Timestamp;

/// Longest newsroom name a request may carry (names are 1 to 64 characters).
const MAX_REQUEST_NAME: usize = 64;

/// A signing key's request to be certified by its newsroom's root key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRequest {
    /// Always [`FORMAT_VERSION`].
    pub format: u16,
    /// The root key of the newsroom asked to certify the key.
    pub publisher: PublicKey,
    /// The newsroom's short name, to show on the offline machine.
    pub name: String,
    /// The key to certify; it signs the request.
    pub signing_key: PublicKey,
    /// How long the certificate should be valid, from the time it is signed.
    pub validity_secs: u64,
    /// What the key should be allowed to sign.
    pub scope: Scope,
    /// The highest certificate serial the requesting folder knows, so the
    /// new certificate's serial can be higher even if the offline folder's
    /// record is behind.
    pub last_serial: u64,
    /// When the request was made.
    pub created_at: Timestamp,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> PolicyError {
    PolicyError::InvalidField {
        field,
        reason: reason.into(),
    }
}

impl CertificateRequest {
    /// Checks the fields that do not depend on a signature.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.format != FORMAT_VERSION {
            return Err(PolicyError::Decode(DecodeError::UnknownFormat {
                what: "certificate request",
                version: self.format,
                supported: FORMAT_VERSION,
            }));
        }
        if self.name.is_empty() || self.name.len() > MAX_REQUEST_NAME {
            return Err(invalid("request name", "a newsroom name is 1 to 64 bytes"));
        }
        if !(MIN_REQUEST_VALIDITY_SECS..=MAX_REQUEST_VALIDITY_SECS).contains(&self.validity_secs) {
            return Err(invalid(
                "request validity",
                format!(
                    "{} s is outside {MIN_REQUEST_VALIDITY_SECS} s to {MAX_REQUEST_VALIDITY_SECS} s",
                    self.validity_secs
                ),
            ));
        }
        if self.scope.languages.len() > MAX_SCOPE_LANGUAGES {
            return Err(PolicyError::FieldTooLarge {
                field: "scope languages",
                len: self.scope.languages.len(),
                max: MAX_SCOPE_LANGUAGES,
            });
        }
        for l in &self.scope.languages {
            check_language("scope language", l)?;
        }
        if self.signing_key == self.publisher {
            return Err(invalid(
                "signing key",
                "the root key cannot be certified as a signing key",
            ));
        }
        self.signing_key
            .to_verifying_key()
            .map_err(|e| invalid("signing key", e.to_string()))?;
        Ok(())
    }

    /// Signs with the key being requested for, which must be
    /// `self.signing_key`.
    pub fn sign(&self, key: &SecretKey) -> Result<Vec<u8>, PolicyError> {
        if key.public() != self.signing_key {
            return Err(invalid(
                "signing key",
                "a request must be signed by the key it asks to certify",
            ));
        }
        self.validate()?;
        Ok(sign_and_encode(ObjectKind::CertificateRequest, self, key)?)
    }

    /// Decodes a request and checks it: size, canonical encoding, fields,
    /// the self-signature by the requested key, and a creation time not in
    /// the future at `now`. Says nothing about whether the key should be
    /// certified: that is for the root key's holder to decide.
    pub fn verify(bytes: &[u8], now: Timestamp) -> Result<Self, PolicyError> {
        let obj = signed::decode::<Self>(ObjectKind::CertificateRequest, bytes)?;
        obj.value.validate()?;
        let key = obj
            .value
            .signing_key
            .to_verifying_key()
            .map_err(|e| invalid("signing key", e.to_string()))?;
        if !obj.check_signature(&key) {
            return Err(PolicyError::BadSignature {
                what: obj.kind.what(),
            });
        }
        if obj.value.created_at > now.plus(CLOCK_SKEW_SECS) {
            return Err(PolicyError::SignedInFuture {
                signed_at: obj.value.created_at,
                now,
            });
        }
        Ok(obj.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: &SecretKey) -> CertificateRequest {
        CertificateRequest {
            format: FORMAT_VERSION,
            publisher: SecretKey::from_seed(&[1; 32]).public(),
            name: "test-news".into(),
            signing_key: key.public(),
            validity_secs: 90 * 24 * 3600,
            scope: Scope {
                languages: vec!["en".into()],
            },
            last_serial: 3,
            created_at: Timestamp(1_000_000),
        }
    }

    #[test]
    fn round_trip_and_tamper() {
        let key = SecretKey::from_seed(&[2; 32]);
        let req = request(&key);
        let bytes = req.sign(&key).unwrap();
        assert_eq!(
            CertificateRequest::verify(&bytes, Timestamp(1_000_000)).unwrap(),
            req
        );
        // Every single-bit change of the body is refused.
        for i in 0..bytes.len() - crate::proto::SIGNATURE_LEN {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(
                CertificateRequest::verify(&bad, Timestamp(1_000_000)).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn only_the_requested_key_signs_and_the_domain_is_its_own() {
        let key = SecretKey::from_seed(&[2; 32]);
        let other = SecretKey::from_seed(&[3; 32]);
        assert!(request(&key).sign(&other).is_err());
        // The same body signed as a certificate does not pass as a request.
        let body = postcard::to_allocvec(&request(&key)).unwrap();
        let mut forged = body.clone();
        forged.extend_from_slice(
            &key.sign_raw(&signed::signing_message(ObjectKind::Certificate, &body)),
        );
        assert!(matches!(
            CertificateRequest::verify(&forged, Timestamp(1_000_000)),
            Err(PolicyError::BadSignature { .. })
        ));
    }

    #[test]
    fn insane_requests_are_refused() {
        let key = SecretKey::from_seed(&[2; 32]);
        let mut long = request(&key);
        long.validity_secs = MAX_REQUEST_VALIDITY_SECS + 1;
        assert!(long.sign(&key).is_err());
        let mut future = request(&key);
        future.created_at = Timestamp(2_000_000);
        let bytes = future.sign(&key).unwrap();
        assert!(CertificateRequest::verify(&bytes, Timestamp(1_000_000)).is_err());
        assert!(CertificateRequest::verify(&[0u8; 5000], Timestamp(0)).is_err());
    }
}
