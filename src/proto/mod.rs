//! The formats and the rules: ids, keys, signed objects, the `.kolokol` file
//! format and the trust policy.
//!
//! Pure by design: nothing here reads a clock, a file or a socket. Functions
//! that depend on time take `now`. The only way to obtain a [`Verified`]
//! value is through [`TrustPolicy`], so the layers above can hold nothing
//! that was not checked.

pub mod bounded;
pub mod bundle;
mod error;
mod ids;
mod keys;
pub mod limits;
pub mod mirrors;
mod objects;
pub mod pieces;
mod policy;
pub mod ranges;
mod request;
mod signed;
mod time;

pub use error::DecodeError;
pub use ids::{BlobHash, BundleId, CertId, ParseIdError, StoryId};
pub use keys::{KeyError, PUBLIC_KEY_PREFIX, PublicKey, SecretKey};
pub use mirrors::MirrorList;
pub use objects::{
    BODY_MEDIA_TYPE, BODY_PATH, Entry, FORMAT_VERSION, Head, KeyCertificate, Kind, Manifest,
    Metadata, REVOCATION_FORMAT_CUTOFF, Revocation, Scope, is_bidi_override, is_safe_path,
};
pub use policy::{
    PolicyError, PublisherTrust, RevocationChange, TrustPolicy, Verified, VerifiedBundle,
    check_blob, check_bundle, revokes,
};
pub use request::CertificateRequest;
pub use signed::{ObjectKind, SIGNATURE_LEN};
pub use time::Timestamp;

/// A signed object type, for decoding without verification.
pub trait SignedObject: serde::Serialize + serde::de::DeserializeOwned {
    /// Which kind of object.
    const KIND: ObjectKind;
}

impl SignedObject for KeyCertificate {
    const KIND: ObjectKind = ObjectKind::Certificate;
}
impl SignedObject for Revocation {
    const KIND: ObjectKind = ObjectKind::Revocation;
}
impl SignedObject for Manifest {
    const KIND: ObjectKind = ObjectKind::Manifest;
}
impl SignedObject for Head {
    const KIND: ObjectKind = ObjectKind::Head;
}
impl SignedObject for MirrorList {
    const KIND: ObjectKind = ObjectKind::MirrorList;
}
impl SignedObject for CertificateRequest {
    const KIND: ObjectKind = ObjectKind::CertificateRequest;
}

/// Decodes a signed object **without checking its signature or trust**.
/// For display of untrusted input only (`kolokol inspect`); never store or
/// act on the result.
pub fn decode_unverified<T: SignedObject>(bytes: &[u8]) -> Result<T, DecodeError> {
    signed::decode::<T>(T::KIND, bytes).map(|u| u.value)
}
