//! Signed objects: a postcard body followed by a 64-byte ed25519 signature
//! over a domain-separated message.
//!
//! Layout of every signed object: `body || signature`, where `body` is the
//! postcard encoding of the object and `signature` is ed25519 over
//! `domain || 0x00 || body`. The enclosing frame or message gives the total
//! length, so the body is everything but the last 64 bytes. Signatures are
//! checked over the exact bytes received; nothing is re-serialized to verify.

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::DecodeError;
use super::keys::SecretKey;
use super::limits;

/// Length of an ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// The kinds of signed object, each with its own signing domain and size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// A key certificate, signed by a publisher's root key.
    Certificate,
    /// A revocation, signed by a publisher's root key.
    Revocation,
    /// A story manifest, signed by a certified signing key.
    Manifest,
    /// A head (heartbeat), signed by a certified signing key.
    Head,
}

impl ObjectKind {
    /// The domain-separation string; no two kinds share one, so a signature
    /// made for one kind of object never verifies as another.
    pub fn domain(self) -> &'static str {
        match self {
            ObjectKind::Certificate => "kolokol/v1/key-certificate",
            ObjectKind::Revocation => "kolokol/v1/revocation",
            ObjectKind::Manifest => "kolokol/v1/manifest",
            ObjectKind::Head => "kolokol/v1/head",
        }
    }

    /// The largest signed object of this kind, in bytes.
    pub fn max_len(self) -> usize {
        match self {
            ObjectKind::Certificate => limits::MAX_CERTIFICATE_BYTES,
            ObjectKind::Revocation => limits::MAX_REVOCATION_BYTES,
            ObjectKind::Manifest => limits::MAX_MANIFEST_BYTES,
            ObjectKind::Head => limits::MAX_HEAD_BYTES,
        }
    }

    /// A name for messages.
    pub fn what(self) -> &'static str {
        match self {
            ObjectKind::Certificate => "key certificate",
            ObjectKind::Revocation => "revocation",
            ObjectKind::Manifest => "manifest",
            ObjectKind::Head => "head",
        }
    }
}

/// The message a signature covers: `domain || 0x00 || body`.
pub(crate) fn signing_message(kind: ObjectKind, body: &[u8]) -> Vec<u8> {
    let domain = kind.domain().as_bytes();
    let mut msg = Vec::with_capacity(domain.len() + 1 + body.len());
    msg.extend_from_slice(domain);
    msg.push(0);
    msg.extend_from_slice(body);
    msg
}

/// Encodes `value` and signs it with `key`, giving the signed object's bytes.
pub(crate) fn sign_and_encode<T: Serialize>(
    kind: ObjectKind,
    value: &T,
    key: &SecretKey,
) -> Result<Vec<u8>, DecodeError> {
    let mut out = postcard::to_allocvec(value).map_err(|e| DecodeError::Malformed {
        what: kind.what(),
        reason: e.to_string(),
    })?;
    if out.len() + SIGNATURE_LEN > kind.max_len() {
        return Err(DecodeError::TooLarge {
            what: kind.what(),
            len: (out.len() + SIGNATURE_LEN) as u64,
            max: kind.max_len() as u64,
        });
    }
    let sig = key.sign_raw(&signing_message(kind, &out));
    out.extend_from_slice(&sig);
    Ok(out)
}

/// A signed object split into its decoded body and signature, not yet checked.
pub(crate) struct Unverified<'a, T> {
    pub(crate) value: T,
    pub(crate) body: &'a [u8],
    pub(crate) signature: [u8; SIGNATURE_LEN],
    pub(crate) kind: ObjectKind,
}

/// Checks the size, splits off the signature and decodes the body, refusing
/// trailing bytes and any encoding other than the canonical one.
pub(crate) fn decode<T: Serialize + DeserializeOwned>(
    kind: ObjectKind,
    bytes: &[u8],
) -> Result<Unverified<'_, T>, DecodeError> {
    let what = kind.what();
    if bytes.len() > kind.max_len() {
        return Err(DecodeError::TooLarge {
            what,
            len: bytes.len() as u64,
            max: kind.max_len() as u64,
        });
    }
    if bytes.len() <= SIGNATURE_LEN {
        return Err(DecodeError::Truncated { what });
    }
    let (body, sig) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
    let (value, rest): (T, &[u8]) = postcard::take_from_bytes(body).map_err(|e| match e {
        postcard::Error::DeserializeUnexpectedEnd => DecodeError::Truncated { what },
        other => DecodeError::Malformed {
            what,
            reason: other.to_string(),
        },
    })?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes {
            what,
            extra: rest.len(),
        });
    }
    // postcard accepts some overlong varints; insisting on the signer's own
    // encoding keeps one object to one byte string, and so to one id.
    let canonical = postcard::to_allocvec(&value).map_err(|e| DecodeError::Malformed {
        what,
        reason: e.to_string(),
    })?;
    if canonical != body {
        return Err(DecodeError::NonCanonical { what });
    }
    let mut signature = [0u8; SIGNATURE_LEN];
    signature.copy_from_slice(sig);
    Ok(Unverified {
        value,
        body,
        signature,
        kind,
    })
}

impl<T> Unverified<'_, T> {
    /// `verify_strict` of the signature by `key`.
    pub(crate) fn check_signature(&self, key: &VerifyingKey) -> bool {
        let sig = Signature::from_bytes(&self.signature);
        key.verify_strict(&signing_message(self.kind, self.body), &sig)
            .is_ok()
    }
}

/// One signature to check in a batch.
pub(crate) struct BatchItem {
    pub(crate) message: Vec<u8>,
    pub(crate) signature: [u8; SIGNATURE_LEN],
    pub(crate) key: VerifyingKey,
}

/// Checks many signatures at once; returns one verdict per item, each equal
/// to what `verify_strict` says of that item alone for every signature an
/// honest signer can produce.
///
/// The batch equation is checked first, after the same encoding and
/// small-order checks `verify_strict` makes; only when the batch fails is
/// each item checked alone, to find the bad ones.
pub(crate) fn verify_batch_strict(items: &[BatchItem]) -> Vec<bool> {
    if items.is_empty() {
        return Vec::new();
    }
    let prechecked = items.iter().all(|it| {
        let r = CompressedEdwardsY(it.signature[..32].try_into().unwrap_or([0u8; 32]));
        !it.key.is_weak()
            && r.decompress()
                .is_some_and(|p| !p.is_small_order() && p.compress() == r)
    });
    if prechecked {
        let msgs: Vec<&[u8]> = items.iter().map(|it| it.message.as_slice()).collect();
        let sigs: Vec<Signature> = items
            .iter()
            .map(|it| Signature::from_bytes(&it.signature))
            .collect();
        let keys: Vec<VerifyingKey> = items.iter().map(|it| it.key).collect();
        if ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok() {
            return vec![true; items.len()];
        }
    }
    items
        .iter()
        .map(|it| {
            it.key
                .verify_strict(&it.message, &Signature::from_bytes(&it.signature))
                .is_ok()
        })
        .collect()
}
