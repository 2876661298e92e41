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
    /// A request for a key certificate, signed by the key to be certified
    /// (proof of possession). It never travels on the network: it is
    /// carried to the machine that holds the root key.
    CertificateRequest,
    /// A publisher's mirror list, signed by a certified signing key.
    MirrorList,
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
            ObjectKind::CertificateRequest => "kolokol/v1/certificate-request",
            ObjectKind::MirrorList => "kolokol/v1/mirror-list",
        }
    }

    /// The largest signed object of this kind, in bytes.
    pub fn max_len(self) -> usize {
        match self {
            ObjectKind::Certificate => limits::MAX_CERTIFICATE_BYTES,
            ObjectKind::Revocation => limits::MAX_REVOCATION_BYTES,
            ObjectKind::Manifest => limits::MAX_MANIFEST_BYTES,
            ObjectKind::Head => limits::MAX_HEAD_BYTES,
            ObjectKind::CertificateRequest => limits::MAX_CERTIFICATE_REQUEST_BYTES,
            ObjectKind::MirrorList => super::mirrors::MAX_MIRROR_LIST_BYTES,
        }
    }

    /// A name for messages.
    pub fn what(self) -> &'static str {
        match self {
            ObjectKind::Certificate => "key certificate",
            ObjectKind::Revocation => "revocation",
            ObjectKind::Manifest => "manifest",
            ObjectKind::Head => "head",
            ObjectKind::CertificateRequest => "certificate request",
            ObjectKind::MirrorList => "mirror list",
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
    // Within a budget of a small multiple of the body: a list of empty
    // strings costs more in memory than on the wire.
    let ceiling = super::bounded::ceiling(kind.max_len());
    let (value, rest): (T, &[u8]) =
        super::bounded::postcard_take(body, ceiling).map_err(|e| match e {
            super::bounded::BoundedError::Truncated => DecodeError::Truncated { what },
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

/// An order-8 point; its multiples are the eight small-order points.
const ORDER_8_POINT: [u8; 32] = [
    0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
    0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
];

/// Every encoding of a small-order point, with either sign bit. An R among
/// these is what `verify_strict` refuses as small-order.
fn small_order_encodings() -> &'static [[u8; 32]] {
    static LIST: std::sync::OnceLock<Vec<[u8; 32]>> = std::sync::OnceLock::new();
    LIST.get_or_init(|| {
        let Some(p8) = CompressedEdwardsY(ORDER_8_POINT).decompress() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut q = curve25519_dalek::edwards::EdwardsPoint::default();
        for _ in 0..8 {
            let enc = q.compress().to_bytes();
            let mut flipped = enc;
            flipped[31] ^= 0x80;
            out.push(enc);
            out.push(flipped);
            q += p8;
        }
        out
    })
}

/// Whether R's 32 bytes encode y below the field prime 2^255 - 19, as a
/// canonical encoding must (the top bit is x's sign, not part of y).
fn is_canonical_y(r: &[u8; 32]) -> bool {
    let mut y = *r;
    y[31] &= 0x7f;
    // y >= p exactly when y is one of 2^255-19 .. 2^255-1: the top 31 bytes
    // are all 0xff (0x7f for the last) and the lowest is at least 0xed.
    !(y[0] >= 0xed && y[1..31].iter().all(|&b| b == 0xff) && y[31] == 0x7f)
}

/// Checks many signatures at once; returns one verdict per item, equal to
/// what `verify_strict` says of that item alone.
///
/// Before the batch equation, each R gets the checks `verify_strict` makes
/// of it, by bytes alone: canonical y, and not a small-order point. Keys
/// were checked for small order and torsion when their certificate was
/// accepted. The batch equation is then checked once; only when it fails is
/// each item checked alone with `verify_strict`, to find the bad ones. The
/// two can disagree only on an R with a torsion component, which no honest
/// signer produces and which only the holder of the signing key can make;
/// see docs/protocol.md.
pub(crate) fn verify_batch_strict(items: &[BatchItem]) -> Vec<bool> {
    if items.is_empty() {
        return Vec::new();
    }
    let blocked = small_order_encodings();
    let prechecked = items.iter().all(|it| {
        let mut r = [0u8; 32];
        r.copy_from_slice(&it.signature[..32]);
        !it.key.is_weak() && is_canonical_y(&r) && !blocked.contains(&r)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_small_order_list_is_right() {
        let list = small_order_encodings();
        assert_eq!(list.len(), 16);
        for enc in list {
            if let Some(p) = CompressedEdwardsY(*enc).decompress() {
                assert!(p.is_small_order());
            }
        }
        // The identity and the order-2 point are among them.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(list.contains(&identity));
    }

    #[test]
    fn canonical_y() {
        let mut p = [0xffu8; 32];
        p[31] = 0x7f;
        p[0] = 0xed;
        assert!(!is_canonical_y(&p));
        p[0] = 0xec;
        assert!(is_canonical_y(&p));
        p[31] = 0xff;
        assert!(is_canonical_y(&p));
    }

    #[test]
    fn small_order_r_falls_back_and_is_refused() {
        let key = SecretKey::from_seed(&[5; 32]);
        let vk = VerifyingKey::from_bytes(key.public().as_bytes()).unwrap();
        let good = BatchItem {
            message: b"m".to_vec(),
            signature: key.sign_raw(b"m"),
            key: vk,
        };
        let mut bad_sig = key.sign_raw(b"n");
        bad_sig[..32].copy_from_slice(&small_order_encodings()[0]);
        let bad = BatchItem {
            message: b"n".to_vec(),
            signature: bad_sig,
            key: vk,
        };
        assert_eq!(verify_batch_strict(&[good, bad]), vec![true, false]);
    }
}
