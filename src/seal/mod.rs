//! The sealed data directory: what a seized device gives away.
//!
//! Sealed, a data directory keeps everything that says what its owner
//! reads under one random data key: the store's values and blob files are
//! encrypted (XChaCha20-Poly1305), every key that would name content is a
//! keyed hash, and the trust list, the node's identity and the sensitive
//! part of its settings are encrypted too. The data key is wrapped under
//! a passphrase (Argon2id) in `sealed/seal.key`; destroying that one small
//! file makes the rest unreadable, whatever the store's size.
//!
//! Layout of a sealed data directory:
//!
//! | path | holds |
//! |---|---|
//! | `sealed/seal.key` | the wrapped data key (see `keyfile`) |
//! | `sealed/store/` | the sealed store |
//! | `sealed/trust/` | publisher files, sealed, under keyed names |
//! | `sealed/node.key` | the node's identity, sealed (mirrors, sharing readers) |
//! | `sealed/config` | `config.toml` as it was, sealed |
//! | `config.toml` | only what is needed before unlocking: `control`, `[gateway]`, `metrics` |
//!
//! `cipher` holds the cryptography, `keyfile` the wrapped key, `datadir`
//! the opening of a directory either way, `convert` the crash-safe
//! conversions and `wipe` the destruction.

mod cipher;
pub mod convert;
mod datadir;
pub mod keyfile;
pub mod wipe;

use std::path::PathBuf;

use thiserror::Error;

pub use cipher::{DataKey, FILE_CHUNK, NAME_LEN, Sealer, padme};
pub use convert::{recover, seal, unseal};
pub use datadir::{DataDir, Passphrase};
pub use wipe::{WipeReport, wipe};

/// The folder of a sealed data directory's sealed parts.
pub const SEALED_DIR: &str = "sealed";
/// The wrapped data key, inside [`SEALED_DIR`].
pub const KEY_FILE: &str = "seal.key";

/// Why sealing, unsealing, unlocking or wiping failed.
#[derive(Debug, Error)]
pub enum SealError {
    /// The passphrase does not open the data key.
    #[error("wrong passphrase: the data directory stays locked, and nothing was changed")]
    WrongPassphrase,
    /// A passphrase was needed and none could be had.
    #[error(
        "the data directory is sealed: set KOLOKOL_PASSPHRASE, pass --passphrase-fd, or run the command in a terminal to be asked"
    )]
    NoPassphrase,
    /// A passphrase was refused (too short, not confirmed, reused).
    #[error("passphrase refused: {0}")]
    Passphrase(String),
    /// The data key file cannot be used.
    #[error("the sealed store's key file: {0}")]
    KeyFile(String),
    /// A sealed value or file does not open: damaged, or another key's.
    #[error("a sealed entry is damaged or belongs to another store")]
    Damaged,
    /// Encryption failed (a value too large for the cipher).
    #[error("encryption failed")]
    Cipher,
    /// A value too large to seal.
    #[error("a value of {0} bytes is too large to seal")]
    TooLarge(usize),
    /// A sealed file could not be read.
    #[error("reading a sealed file: {0}")]
    Read(#[source] std::io::Error),
    /// The directory is already sealed, or not sealed, for the operation.
    #[error("{0}")]
    State(String),
    /// Another kolokol process is converting or using the directory.
    #[error("{0} is in use by another kolokol process (a running node?); stop it first")]
    Busy(PathBuf),
    /// A file could not be read or written.
    #[error(transparent)]
    File(#[from] crate::files::FilesError),
    /// A file or folder could not be changed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The trust list failed.
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    /// The settings could not be read.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> SealError + '_ {
    move |source| SealError::Io {
        path: path.to_owned(),
        source,
    }
}
