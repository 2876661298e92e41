//! Secret key files, plain or encrypted under a passphrase.
//!
//! A plain key file is TOML with one field, `secret = "<64 hex digits>"`.
//! An encrypted one is TOML too (so both are recognisable and diffable by
//! eye), with the seed sealed by XChaCha20-Poly1305 under a key derived from
//! the passphrase with Argon2id:
//!
//! ```toml
//! format = "kolokol-secret-key v1"
//! kdf = "argon2id"
//! memory_kib = 65536
//! iterations = 3
//! parallelism = 1
//! salt = "<32 hex digits>"        # 16 random bytes
//! nonce = "<48 hex digits>"       # 24 random bytes
//! ciphertext = "<96 hex digits>"  # 32-byte seed + 16-byte tag
//! ```
//!
//! The KDF parameters live in the file so they can be raised later without
//! breaking old files; they are bounded before use so that a doctored file
//! cannot make us allocate gigabytes. The format line, parameters and salt
//! are the AEAD's associated data: changing any of them fails decryption
//! just as a wrong passphrase does, and the two are reported alike, since
//! they cannot be told apart.

use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::Deserialize;
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::proto::SecretKey;

/// The first field of an encrypted key file.
pub const ENCRYPTED_FORMAT: &str = "kolokol-secret-key v1";
/// The only key derivation function this version knows.
pub const KDF_ARGON2ID: &str = "argon2id";
/// Largest key file read, plain or encrypted; checked before reading.
pub const MAX_KEY_FILE_BYTES: u64 = 4096;
/// Shortest passphrase accepted for a new encrypted key.
pub const MIN_PASSPHRASE_CHARS: usize = 8;

const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const SEED_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// Upper bounds on the parameters read from a file: 1 GiB, 64 passes, 16
/// lanes. Far above the defaults, far below what would exhaust a laptop.
const MAX_MEMORY_KIB: u32 = 1024 * 1024;
const MAX_ITERATIONS: u32 = 64;
const MAX_PARALLELISM: u32 = 16;

/// Why a key file could not be read, written or unlocked.
#[derive(Debug, Error)]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be read or written whole, or is too large.
    #[error(transparent)]
    File(#[from] crate::files::FilesError),
    /// The file is not a key file this version can read.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Decryption failed: the passphrase is wrong, or the file was changed.
    #[error("wrong passphrase or damaged key file: {}", .0.display())]
    WrongPassphrase(PathBuf),
    /// The file is encrypted and no passphrase could be had.
    #[error("{}", passphrase_missing(.0))]
    NoPassphrase(PathBuf),
    /// The passphrase given is not acceptable (too short, not confirmed).
    #[error("passphrase refused: {0}")]
    BadPassphrase(String),
    /// Key derivation parameters out of range.
    #[error("key derivation parameters {0}")]
    BadParams(String),
}

fn passphrase_missing(path: &Path) -> String {
    format!(
        "{} is encrypted: set KOLOKOL_PASSPHRASE or run the command in a terminal to be asked for the passphrase",
        path.display()
    )
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: about a third of a second on this
    /// project's machines, and 64 MiB per guess for an attacker.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// Checks the parameters are within the bounds Argon2 needs and this
    /// reader allows.
    pub fn check(&self) -> Result<(), KeyFileError> {
        if !(1..=MAX_PARALLELISM).contains(&self.parallelism) {
            return Err(KeyFileError::BadParams(format!(
                "parallelism {} is outside 1 to {MAX_PARALLELISM}",
                self.parallelism
            )));
        }
        if !(1..=MAX_ITERATIONS).contains(&self.iterations) {
            return Err(KeyFileError::BadParams(format!(
                "iterations {} is outside 1 to {MAX_ITERATIONS}",
                self.iterations
            )));
        }
        let min_memory = 8 * self.parallelism;
        if !(min_memory..=MAX_MEMORY_KIB).contains(&self.memory_kib) {
            return Err(KeyFileError::BadParams(format!(
                "memory {} KiB is outside {min_memory} to {MAX_MEMORY_KIB} KiB",
                self.memory_kib
            )));
        }
        Ok(())
    }

    /// Parses `m=KIB,t=N,p=N` (any order, all three required).
    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let (mut m, mut t, mut p) = (None, None, None);
        for part in text.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| KeyFileError::BadParams(format!("{text:?}: expected m=,t=,p=")))?;
            let v: u32 = v
                .trim()
                .parse()
                .map_err(|_| KeyFileError::BadParams(format!("{text:?}: {v:?} is not a number")))?;
            match k.trim() {
                "m" => m = Some(v),
                "t" => t = Some(v),
                "p" => p = Some(v),
                other => {
                    return Err(KeyFileError::BadParams(format!(
                        "{text:?}: unknown parameter {other:?}"
                    )));
                }
            }
        }
        let (Some(memory_kib), Some(iterations), Some(parallelism)) = (m, t, p) else {
            return Err(KeyFileError::BadParams(format!(
                "{text:?}: expected m=,t=,p="
            )));
        };
        let params = Self {
            memory_kib,
            iterations,
            parallelism,
        };
        params.check()?;
        Ok(params)
    }

    pub(crate) fn derive(
        &self,
        passphrase: &[u8],
        salt: &[u8; SALT_LEN],
    ) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
        self.check()?;
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|e| KeyFileError::BadParams(e.to_string()))?;
        let mut key = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase, salt, key.as_mut())
            .map_err(|e| KeyFileError::BadParams(e.to_string()))?;
        Ok(key)
    }
}

/// What a passphrase is wanted for: a prompt for a new one asks twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// To unlock an existing encrypted key file.
    Unlock,
    /// To encrypt a key file for the first time.
    NewKey,
}

/// Where passphrases come from (the command line asks the environment or
/// the terminal). Implementations must never log the passphrase.
pub trait PassphraseSource: Send + Sync {
    /// The passphrase for the key file at `path`.
    fn passphrase(&self, path: &Path, purpose: Purpose) -> Result<Zeroizing<String>, KeyFileError>;
}

/// The parsed fields of either kind of key file. Zeroized on drop, since
/// `secret` holds a plain key.
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct RawKeyFile {
    secret: Option<String>,
    format: Option<String>,
    kdf: Option<String>,
    memory_kib: Option<u32>,
    iterations: Option<u32>,
    parallelism: Option<u32>,
    salt: Option<String>,
    nonce: Option<String>,
    ciphertext: Option<String>,
}

/// An encrypted key, parsed but still sealed.
#[derive(Debug, Clone)]
pub struct SealedKey {
    params: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

/// A key file's content.
#[derive(Debug)]
pub enum KeyFile {
    /// A key stored in the clear.
    Plain(SecretKey),
    /// A key encrypted under a passphrase.
    Encrypted(SealedKey),
}

fn invalid(path: &Path, reason: impl Into<String>) -> KeyFileError {
    KeyFileError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn hex_field<const N: usize>(path: &Path, name: &str, text: &str) -> Result<[u8; N], KeyFileError> {
    let mut out = [0u8; N];
    if text.len() != 2 * N {
        return Err(invalid(
            path,
            format!("{name} must be {} hex digits", 2 * N),
        ));
    }
    hex::decode_to_slice(text, &mut out)
        .map_err(|_| invalid(path, format!("{name} is not hex")))?;
    Ok(out)
}

/// The associated data: everything in the file but the nonce and the
/// ciphertext, in a fixed binary layout.
fn associated_data(params: &KdfParams, salt: &[u8; SALT_LEN]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64);
    aad.extend_from_slice(ENCRYPTED_FORMAT.as_bytes());
    aad.push(0);
    aad.extend_from_slice(KDF_ARGON2ID.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&params.memory_kib.to_le_bytes());
    aad.extend_from_slice(&params.iterations.to_le_bytes());
    aad.extend_from_slice(&params.parallelism.to_le_bytes());
    aad.extend_from_slice(salt);
    aad
}

impl KeyFile {
    /// Reads and parses a key file, checking its size before reading it.
    pub fn read(path: &Path) -> Result<Self, KeyFileError> {
        let bytes = crate::files::read_bounded_secret(path, MAX_KEY_FILE_BYTES)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid(path, "not UTF-8 text"))?;
        Self::parse(path, text)
    }

    /// Parses a key file's text; `path` is for messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, KeyFileError> {
        let raw: RawKeyFile =
            toml::from_str(text).map_err(|e| invalid(path, e.message().to_string()))?;
        match (&raw.secret, &raw.format) {
            (Some(secret), None) => {
                if raw.kdf.is_some() || raw.salt.is_some() || raw.ciphertext.is_some() {
                    return Err(invalid(path, "a plain key file has only `secret`"));
                }
                SecretKey::from_hex(secret)
                    .map(KeyFile::Plain)
                    .map_err(|e| invalid(path, e.to_string()))
            }
            (None, Some(format)) => {
                if format != ENCRYPTED_FORMAT {
                    return Err(invalid(
                        path,
                        format!(
                            "unknown key file format {format:?}; this version reads {ENCRYPTED_FORMAT:?}"
                        ),
                    ));
                }
                if raw.kdf.as_deref() != Some(KDF_ARGON2ID) {
                    return Err(invalid(path, format!("kdf must be {KDF_ARGON2ID:?}")));
                }
                let (Some(m), Some(t), Some(p), Some(salt), Some(nonce), Some(ct)) = (
                    raw.memory_kib,
                    raw.iterations,
                    raw.parallelism,
                    &raw.salt,
                    &raw.nonce,
                    &raw.ciphertext,
                ) else {
                    return Err(invalid(path, "an encrypted key file misses a field"));
                };
                let params = KdfParams {
                    memory_kib: m,
                    iterations: t,
                    parallelism: p,
                };
                params.check().map_err(|e| invalid(path, e.to_string()))?;
                let salt = hex_field::<SALT_LEN>(path, "salt", salt)?;
                let nonce = hex_field::<NONCE_LEN>(path, "nonce", nonce)?;
                let ciphertext = hex_field::<{ SEED_LEN + TAG_LEN }>(path, "ciphertext", ct)?;
                Ok(KeyFile::Encrypted(SealedKey {
                    params,
                    salt,
                    nonce,
                    ciphertext: ciphertext.to_vec(),
                }))
            }
            _ => Err(invalid(
                path,
                "not a key file: expected either `secret` or an encrypted key",
            )),
        }
    }

    /// Whether the key is encrypted.
    pub fn is_encrypted(&self) -> bool {
        matches!(self, KeyFile::Encrypted(_))
    }

    /// The key, asking `source` for the passphrase when it is encrypted.
    pub fn unlock(
        self,
        path: &Path,
        source: Option<&dyn PassphraseSource>,
    ) -> Result<SecretKey, KeyFileError> {
        match self {
            KeyFile::Plain(key) => Ok(key),
            KeyFile::Encrypted(sealed) => {
                let source = source.ok_or_else(|| KeyFileError::NoPassphrase(path.to_owned()))?;
                let passphrase = source.passphrase(path, Purpose::Unlock)?;
                sealed.open(path, passphrase.as_bytes())
            }
        }
    }
}

impl SealedKey {
    /// Decrypts with `passphrase`. A wrong passphrase and a changed file
    /// give the same error.
    pub fn open(&self, path: &Path, passphrase: &[u8]) -> Result<SecretKey, KeyFileError> {
        let key = self.params.derive(passphrase, &self.salt)?;
        let cipher = XChaCha20Poly1305::new(key.as_ref().into());
        let seed = Zeroizing::new(
            cipher
                .decrypt(
                    XNonce::from_slice(&self.nonce),
                    Payload {
                        msg: &self.ciphertext,
                        aad: &associated_data(&self.params, &self.salt),
                    },
                )
                .map_err(|_| KeyFileError::WrongPassphrase(path.to_owned()))?,
        );
        let seed: &[u8; SEED_LEN] = seed
            .as_slice()
            .try_into()
            .map_err(|_| KeyFileError::WrongPassphrase(path.to_owned()))?;
        Ok(SecretKey::from_seed(seed))
    }
}

/// The two comment lines at the top of every key file.
fn header(role: &str, name: &str, encrypted: bool) -> String {
    let how = if encrypted {
        ", encrypted under a passphrase"
    } else {
        ""
    };
    format!(
        "# Kolokol SECRET {role} key of newsroom {name:?}{how}.\n# Keep it private: never share, upload or commit this file.\n"
    )
}

/// The text of a plain key file.
pub fn plain_text(key: &SecretKey, role: &str, name: &str) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "{}secret = \"{}\"\n",
        header(role, name, false),
        key.to_hex().as_str()
    ))
}

/// The text of an encrypted key file, with a fresh salt and nonce.
pub fn encrypted_text(
    key: &SecretKey,
    passphrase: &[u8],
    params: KdfParams,
    role: &str,
    name: &str,
) -> Result<String, KeyFileError> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let derived = params.derive(passphrase, &salt)?;
    let cipher = XChaCha20Poly1305::new(derived.as_ref().into());
    let seed = key.to_seed();
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: seed.as_slice(),
                aad: &associated_data(&params, &salt),
            },
        )
        .map_err(|_| KeyFileError::BadParams("encryption failed".into()))?;
    Ok(format!(
        "{}format = \"{ENCRYPTED_FORMAT}\"\nkdf = \"{KDF_ARGON2ID}\"\nmemory_kib = {}\niterations = {}\nparallelism = {}\nsalt = \"{}\"\nnonce = \"{}\"\nciphertext = \"{}\"\n",
        header(role, name, true),
        params.memory_kib,
        params.iterations,
        params.parallelism,
        hex::encode(salt),
        hex::encode(nonce),
        hex::encode(ciphertext),
    ))
}

/// Checks a new passphrase is long enough to be worth the encryption.
pub fn check_new_passphrase(passphrase: &str) -> Result<(), KeyFileError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(KeyFileError::BadPassphrase(format!(
            "use at least {MIN_PASSPHRASE_CHARS} characters (several words are best)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters: the format, not Argon2's strength, is under test.
    const CHEAP: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn path() -> PathBuf {
        PathBuf::from("signing.key")
    }

    fn sealed(text: &str) -> SealedKey {
        match KeyFile::parse(&path(), text).unwrap() {
            KeyFile::Encrypted(s) => s,
            KeyFile::Plain(_) => panic!("expected an encrypted key"),
        }
    }

    #[test]
    fn round_trip() {
        let key = SecretKey::from_seed(&[7; 32]);
        let text = encrypted_text(&key, b"correct horse", CHEAP, "signing", "t").unwrap();
        assert!(!text.contains(key.to_hex().as_str()));
        let back = sealed(&text).open(&path(), b"correct horse").unwrap();
        assert_eq!(back.public(), key.public());
        // Fresh salt and nonce each time.
        let again = encrypted_text(&key, b"correct horse", CHEAP, "signing", "t").unwrap();
        assert_ne!(text, again);
    }

    #[test]
    fn plain_files_still_parse() {
        let key = SecretKey::from_seed(&[8; 32]);
        let text = plain_text(&key, "root", "t");
        match KeyFile::parse(&path(), &text).unwrap() {
            KeyFile::Plain(k) => assert_eq!(k.public(), key.public()),
            KeyFile::Encrypted(_) => panic!("expected a plain key"),
        }
    }

    #[test]
    fn wrong_passphrase_is_a_clear_error() {
        let key = SecretKey::from_seed(&[7; 32]);
        let text = encrypted_text(&key, b"correct horse", CHEAP, "signing", "t").unwrap();
        let err = sealed(&text).open(&path(), b"wrong horse").unwrap_err();
        assert!(matches!(err, KeyFileError::WrongPassphrase(_)));
        assert_eq!(
            err.to_string(),
            "wrong passphrase or damaged key file: signing.key"
        );
    }

    #[test]
    fn any_change_to_the_sealed_fields_fails_like_a_wrong_passphrase() {
        let key = SecretKey::from_seed(&[7; 32]);
        let text = encrypted_text(&key, b"correct horse", CHEAP, "signing", "t").unwrap();
        let s = sealed(&text);
        let mut flipped = s.clone();
        flipped.ciphertext[0] ^= 1;
        let mut salt = s.clone();
        salt.salt[0] ^= 1;
        let mut nonce = s.clone();
        nonce.nonce[0] ^= 1;
        let mut params = s.clone();
        params.params.iterations += 1;
        for bad in [flipped, salt, nonce, params] {
            assert!(matches!(
                bad.open(&path(), b"correct horse"),
                Err(KeyFileError::WrongPassphrase(_))
            ));
        }
    }

    #[test]
    fn truncated_and_malformed_files_are_refused() {
        let key = SecretKey::from_seed(&[7; 32]);
        let text = encrypted_text(&key, b"correct horse", CHEAP, "signing", "t").unwrap();
        for cut in [10, text.len() / 2, text.len() - 5] {
            assert!(KeyFile::parse(&path(), &text[..cut]).is_err(), "cut {cut}");
        }
        let huge_memory = text.replace("memory_kib = 64", "memory_kib = 4000000000");
        assert!(KeyFile::parse(&path(), &huge_memory).is_err());
        let both = format!("{text}secret = \"{}\"\n", key.to_hex().as_str());
        assert!(KeyFile::parse(&path(), &both).is_err());
    }

    #[test]
    fn oversize_file_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("root.key");
        std::fs::write(&p, vec![b'#'; MAX_KEY_FILE_BYTES as usize + 1]).unwrap();
        let err = KeyFile::read(&p).unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
    }

    #[test]
    fn params_parse_and_bounds() {
        assert_eq!(KdfParams::parse("m=64,t=1,p=1").unwrap(), CHEAP);
        assert!(KdfParams::parse("m=4,t=1,p=1").is_err());
        assert!(KdfParams::parse("m=64,t=0,p=1").is_err());
        assert!(KdfParams::parse("m=64,t=1").is_err());
        assert!(KdfParams::default().check().is_ok());
    }

    #[test]
    fn short_new_passphrases_are_refused() {
        assert!(check_new_passphrase("short").is_err());
        assert!(check_new_passphrase("a long enough phrase").is_ok());
    }
}
