//! `seal.key`: the data key wrapped under a passphrase.
//!
//! TOML, like the newsroom's encrypted key files, and with the same KDF:
//!
//! ```toml
//! format = "kolokol-sealed-store v1"
//! kdf = "argon2id"
//! memory_kib = 65536
//! iterations = 3
//! parallelism = 1
//! salt = "<32 hex digits>"
//! nonce = "<48 hex digits>"
//! ciphertext = "<96 hex digits>"   # 32-byte data key + tag
//! duress = "<64 hex digits>"
//! ```
//!
//! `duress` is derived from a second passphrase with the same salt and
//! parameters, so that trying a passphrase costs one Argon2id run whether
//! it turns out to be the real one, the duress one or neither. A file
//! without a duress passphrase has random bytes there: the file does not
//! say whether one is set.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::SealError;
use super::cipher::DataKey;
use crate::newsroom::keyfile::KdfParams;

/// The first field of a wrapped data key.
pub const FORMAT: &str = "kolokol-sealed-store v1";
/// Largest `seal.key` read.
const MAX_FILE: u64 = 4096;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    format: String,
    kdf: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
    nonce: String,
    ciphertext: String,
    duress: String,
}

/// What a passphrase opened.
pub enum Opened {
    /// The data key.
    Key(DataKey),
    /// The duress passphrase: the caller wipes.
    Duress,
}

/// A wrapped data key, read from or about to be written to `seal.key`.
#[derive(Debug)]
pub struct WrappedKey {
    params: KdfParams,
    salt: [u8; 16],
    nonce: [u8; 24],
    ciphertext: Vec<u8>,
    duress: [u8; 32],
}

fn ad(params: &KdfParams, salt: &[u8; 16]) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(FORMAT.as_bytes());
    v.push(0);
    v.extend_from_slice(&params.memory_kib.to_le_bytes());
    v.extend_from_slice(&params.iterations.to_le_bytes());
    v.extend_from_slice(&params.parallelism.to_le_bytes());
    v.extend_from_slice(salt);
    v
}

fn duress_tag(kek: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key("kolokol sealed store 2026 duress", kek)
}

fn hex_of<const N: usize>(field: &str, text: &str) -> Result<[u8; N], SealError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out)
        .map_err(|_| SealError::KeyFile(format!("{field} is not {} hex digits", 2 * N)))?;
    Ok(out)
}

fn kdf(params: &KdfParams, pass: &[u8], salt: &[u8; 16]) -> Result<Zeroizing<[u8; 32]>, SealError> {
    params
        .derive(pass, salt)
        .map_err(|e| SealError::KeyFile(e.to_string()))
}

impl WrappedKey {
    /// Wraps `key` under `passphrase`, with `duress` as the passphrase that
    /// wipes instead (or none).
    pub fn wrap(
        key: &DataKey,
        passphrase: &[u8],
        duress: Option<&[u8]>,
        params: KdfParams,
    ) -> Result<Self, SealError> {
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let kek = kdf(&params, passphrase, &salt)?;
        let ciphertext = XChaCha20Poly1305::new(kek.as_ref().into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: key.bytes(),
                    aad: &ad(&params, &salt),
                },
            )
            .map_err(|_| SealError::Cipher)?;
        let duress = match duress {
            Some(d) if d == passphrase => {
                return Err(SealError::Passphrase(
                    "the duress passphrase must differ from the passphrase".into(),
                ));
            }
            Some(d) => duress_tag(&*kdf(&params, d, &salt)?),
            None => {
                let mut r = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut r);
                r
            }
        };
        Ok(Self {
            params,
            salt,
            nonce,
            ciphertext,
            duress,
        })
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        let raw = Raw {
            format: FORMAT.into(),
            kdf: "argon2id".into(),
            memory_kib: self.params.memory_kib,
            iterations: self.params.iterations,
            parallelism: self.params.parallelism,
            salt: hex::encode(self.salt),
            nonce: hex::encode(self.nonce),
            ciphertext: hex::encode(&self.ciphertext),
            duress: hex::encode(self.duress),
        };
        toml::to_string(&raw).unwrap_or_default()
    }

    /// Reads `seal.key`.
    pub fn read(path: &Path) -> Result<Self, SealError> {
        let text = crate::files::read_bounded_text(path, MAX_FILE)?;
        let raw: Raw = toml::from_str(&text)
            .map_err(|e| SealError::KeyFile(format!("{}: {}", path.display(), e.message())))?;
        if raw.format != FORMAT || raw.kdf != "argon2id" {
            return Err(SealError::KeyFile(format!(
                "{}: not a sealed store key of this version ({:?})",
                path.display(),
                raw.format
            )));
        }
        let params = KdfParams {
            memory_kib: raw.memory_kib,
            iterations: raw.iterations,
            parallelism: raw.parallelism,
        };
        params
            .check()
            .map_err(|e| SealError::KeyFile(e.to_string()))?;
        let ciphertext = hex::decode(&raw.ciphertext)
            .ok()
            .filter(|c| c.len() == 48)
            .ok_or_else(|| SealError::KeyFile("ciphertext is not 96 hex digits".into()))?;
        Ok(Self {
            params,
            salt: hex_of("salt", &raw.salt)?,
            nonce: hex_of("nonce", &raw.nonce)?,
            ciphertext,
            duress: hex_of("duress", &raw.duress)?,
        })
    }

    /// Tries `passphrase`: the data key, the duress signal, or
    /// [`SealError::WrongPassphrase`].
    pub fn open(&self, passphrase: &[u8]) -> Result<Opened, SealError> {
        let kek = kdf(&self.params, passphrase, &self.salt)?;
        let plain = XChaCha20Poly1305::new(kek.as_ref().into()).decrypt(
            XNonce::from_slice(&self.nonce),
            Payload {
                msg: &self.ciphertext,
                aad: &ad(&self.params, &self.salt),
            },
        );
        if let Ok(p) = plain {
            let p = Zeroizing::new(p);
            let mut k = [0u8; 32];
            k.copy_from_slice(&p[..32]);
            return Ok(Opened::Key(DataKey::from_bytes(k)));
        }
        // Compared without an early exit, like a MAC.
        let tag = duress_tag(&kek);
        let same = tag
            .iter()
            .zip(self.duress.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if same {
            Ok(Opened::Duress)
        } else {
            Err(SealError::WrongPassphrase)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn opens_with_the_passphrase_and_tells_duress_apart() {
        let key = DataKey::from_bytes([5; 32]);
        let w = WrappedKey::wrap(&key, b"correct horse", Some(b"duress word"), fast()).unwrap();
        let back = WrappedKey::read_str(&w.to_toml()).unwrap();
        assert!(
            matches!(back.open(b"correct horse").unwrap(), Opened::Key(k) if k.bytes() == &[5; 32])
        );
        assert!(matches!(back.open(b"duress word").unwrap(), Opened::Duress));
        assert!(matches!(
            back.open(b"wrong"),
            Err(SealError::WrongPassphrase)
        ));
        let none = WrappedKey::wrap(&key, b"correct horse", None, fast()).unwrap();
        assert!(matches!(
            none.open(b"duress word"),
            Err(SealError::WrongPassphrase)
        ));
        assert!(WrappedKey::wrap(&key, b"same", Some(b"same"), fast()).is_err());
    }

    impl WrappedKey {
        fn read_str(text: &str) -> Result<Self, SealError> {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("seal.key");
            std::fs::write(&p, text).unwrap();
            Self::read(&p)
        }
    }
}
