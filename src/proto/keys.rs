//! Ed25519 keys: public keys with a text form, secret keys that never print.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Prefix of a public key's text form, so a key is recognisable in a file.
pub const PUBLIC_KEY_PREFIX: &str = "ed25519:";

/// A public key text could not be parsed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Not `ed25519:` followed by 64 hex digits.
    #[error("not a public key: expected \"ed25519:\" followed by 64 hex digits")]
    Format,
    /// The bytes are not a point on the curve.
    #[error("not a valid ed25519 public key")]
    Invalid,
    /// A small-order or mixed-order key, which could validate signatures on
    /// almost any message or make verifiers disagree.
    #[error("weak ed25519 public key (small order or torsion component)")]
    Weak,
    /// A secret key file's text is not 64 hex digits.
    #[error("not a secret key: expected 64 hex digits")]
    SecretFormat,
}

/// An ed25519 public key, compared by its 32 encoded bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 12 hex digits, for logs and tables.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }

    /// The dalek key, refusing points off the curve, small-order points
    /// and points with a torsion component (which no honest key generator
    /// makes, and on which batch and single verification could disagree).
    pub fn to_verifying_key(&self) -> Result<VerifyingKey, KeyError> {
        let vk = VerifyingKey::from_bytes(&self.0).map_err(|_| KeyError::Invalid)?;
        if vk.is_weak() {
            return Err(KeyError::Weak);
        }
        let torsion_free = curve25519_dalek::edwards::CompressedEdwardsY(self.0)
            .decompress()
            .is_some_and(|p| p.is_torsion_free());
        if !torsion_free {
            return Err(KeyError::Weak);
        }
        Ok(vk)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_KEY_PREFIX}{}", hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.short())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s
            .trim()
            .strip_prefix(PUBLIC_KEY_PREFIX)
            .ok_or(KeyError::Format)?;
        let mut out = [0u8; 32];
        if hex_part.len() != 64 {
            return Err(KeyError::Format);
        }
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| KeyError::Format)?;
        let key = Self(out);
        key.to_verifying_key()?;
        Ok(key)
    }
}

/// An ed25519 secret key. Its `Debug` output is redacted and its memory is
/// zeroized when dropped (ed25519-dalek's `SigningKey` does both halves).
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        Self(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// The key whose 32-byte seed is `seed` (test vectors and the demo).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// Parses 64 hex digits of seed, as written by [`SecretKey::to_hex`].
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        let text = text.trim();
        if text.len() != 64 {
            return Err(KeyError::SecretFormat);
        }
        hex::decode_to_slice(text, seed.as_mut()).map_err(|_| KeyError::SecretFormat)?;
        Ok(Self::from_seed(&seed))
    }

    /// The seed as 64 hex digits, for the owner's key file only.
    pub fn to_hex(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(hex::encode(self.0.to_bytes()))
    }

    /// The 32-byte seed, for sealing in an encrypted key file.
    pub fn to_seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `msg` (the domain-separated message, see `signed`).
    pub(crate) fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<redacted>, public {})", self.public().short())
    }
}
