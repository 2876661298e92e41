//! Why the trust policy refuses an object.

use thiserror::Error;

use crate::proto::error::DecodeError;
use crate::proto::ids::{BlobHash, CertId};
use crate::proto::keys::PublicKey;
use crate::proto::time::Timestamp;

/// Why the trust policy refused an object.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The bytes could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The publisher's root key is not in the trust list.
    #[error("publisher {publisher} is not in the trust list")]
    UnknownPublisher {
        /// The root key named by the object.
        publisher: PublicKey,
    },
    /// The signature does not verify.
    #[error(
        "the {what} signature does not verify: the bytes were changed or signed by another key"
    )]
    BadSignature {
        /// The kind of object.
        what: &'static str,
    },
    /// The certificate the object names is not known.
    #[error(
        "no certificate {certificate} of this publisher is known; the signing key is not certified"
    )]
    UnknownCertificate {
        /// The certificate id named by the object.
        certificate: CertId,
    },
    /// The certificate belongs to a different publisher than the object.
    #[error(
        "certificate {certificate} belongs to publisher {certificate_publisher}, not to {publisher}"
    )]
    CertificateFromOtherPublisher {
        /// The certificate.
        certificate: CertId,
        /// The publisher the object claims.
        publisher: PublicKey,
        /// The publisher the certificate is for.
        certificate_publisher: PublicKey,
    },
    /// The object is another publisher's than the one it was expected of
    /// (it came on that publisher's gossip topic).
    #[error("an object of publisher {found} where one of {expected} belongs")]
    OtherPublisher {
        /// The publisher expected.
        expected: PublicKey,
        /// The publisher the object names.
        found: PublicKey,
    },
    /// The object names another certificate than the one it came with.
    #[error("signed under certificate {named}, but came with certificate {attached}")]
    NotAttachedCertificate {
        /// The certificate the object names.
        named: CertId,
        /// The certificate it came with.
        attached: CertId,
    },
    /// Signed before the signing key's certificate became valid.
    #[error(
        "signed at {signed_at}, before the signing key's certificate became valid at {not_before}"
    )]
    CertificateNotYetValid {
        /// When the object was signed.
        signed_at: Timestamp,
        /// Start of the certificate's window.
        not_before: Timestamp,
    },
    /// Signed after the signing key's certificate expired.
    #[error("signed at {signed_at}, after the signing key's certificate expired at {not_after}")]
    CertificateExpired {
        /// When the object was signed.
        signed_at: Timestamp,
        /// End of the certificate's window.
        not_after: Timestamp,
    },
    /// Signed by a key at or after the time its revocation took effect.
    #[error("signing key {key} was revoked from {effective_from}; this was signed at {signed_at}")]
    KeyRevoked {
        /// The revoked key.
        key: PublicKey,
        /// When the revocation took effect.
        effective_from: Timestamp,
        /// When the object was signed.
        signed_at: Timestamp,
    },
    /// The signing time lies in the future.
    #[error("signed at {signed_at}, which is in the future (now {now})")]
    SignedInFuture {
        /// When the object claims to be signed.
        signed_at: Timestamp,
        /// The verifier's time.
        now: Timestamp,
    },
    /// The signing key's certificate does not cover the story's language.
    #[error("the signing key is certified for languages {allowed:?}, not {language:?}")]
    OutOfScope {
        /// The story's language.
        language: String,
        /// The languages the certificate allows.
        allowed: Vec<String>,
    },
    /// A blob's bytes do not hash to the manifest's entry.
    #[error("blob {path} does not match the manifest: hash {actual} instead of {expected}")]
    BlobHashMismatch {
        /// The entry's path.
        path: String,
        /// The hash in the manifest.
        expected: BlobHash,
        /// The hash of the bytes received.
        actual: BlobHash,
    },
    /// A blob's length differs from the manifest's entry.
    #[error("blob {path} is {actual} bytes, the manifest says {expected}")]
    BlobSizeMismatch {
        /// The entry's path.
        path: String,
        /// The size in the manifest.
        expected: u64,
        /// The size received.
        actual: u64,
    },
    /// A blob the manifest lists was not supplied.
    #[error("blob {path} is missing")]
    MissingBlob {
        /// The entry's path.
        path: String,
    },
    /// More blobs were supplied than the manifest lists.
    #[error("{count} blobs were supplied that the manifest does not list")]
    UnexpectedBlob {
        /// How many extra blobs.
        count: usize,
    },
    /// A head older than the one already trusted: a rollback attempt.
    #[error("head with sequence {offered} is older than the trusted head with sequence {trusted}")]
    HeadRollback {
        /// The trusted sequence number.
        trusted: u64,
        /// The offered sequence number.
        offered: u64,
    },
    /// A field exceeds its documented limit.
    #[error("{field} is {len}, more than the limit of {max}")]
    FieldTooLarge {
        /// The field.
        field: &'static str,
        /// Its size (bytes or items).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A field breaks a rule of the format.
    #[error("{field} is invalid: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// The rule broken.
        reason: String,
    },
}
