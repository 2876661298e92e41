//! A newsroom's keys and state on disk, and turning articles into signed
//! bundles.
//!
//! Layout of a newsroom folder:
//! - `newsroom.toml`: name and root public key.
//! - `root.key`, `signing.key`: secret keys, mode 0600, plain or encrypted
//!   under a passphrase (see [`keyfile`]). `root.key` may be moved to an
//!   offline machine (see [`offline`]); only `rotate`, `revoke` and
//!   `sign-request` need it.
//! - `signing.key.pending`: a new signing key waiting for its certificate
//!   from the offline root.
//! - `state.toml`: the next sequence number and the current certificate.
//! - `certs/SERIAL.cert`, `revocations/KEY.rev`: signed certificates and
//!   revocations, carried in every bundle file.
//! - `published/SEQUENCE.kolokol`: every bundle the newsroom signed.
//! - `published.index`: a record per bundle in `published/`, so that
//!   publishing does not read them all (see `index.rs`); rebuilt from the
//!   folder whenever it is missing or disagrees with it.
//! - `NAME.toml`: the public publisher file for readers' trust lists.
//!
//! The code follows the same seams: the folder and its keys on disk
//! (`folder`), rotating and revoking signing keys (`signing`), story
//! drafts for articles and feed items alike (`draft`, with [`article`] and
//! [`feed`] feeding them), and signing a draft as the next bundle
//! (`publish`).

pub mod article;
pub mod checks;
pub mod demo;
mod draft;
pub mod feed;
pub mod fetch;
mod folder;
mod index;
pub mod keyfile;
mod keys;
mod mirrors;
pub mod offline;
mod publish;
mod signing;

pub use draft::{
    ArticleDraft, Draft, DraftBuilder, DraftError, MediaFile, Relation, content_entries,
};
pub use index::{Fingerprint, INDEX_FILE, PublishedEntry};
pub use keys::Converted;
pub use mirrors::{MIRROR_LIST_FILE, SignedMirrorList};
pub use publish::{PublishOptions, Published, read_manifest};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::files::FilesError;
use crate::proto::bundle::FileError;
use crate::proto::{DecodeError, PolicyError, PublicKey, Timestamp};

/// Default validity of a new signing key's certificate: one year.
pub const DEFAULT_KEY_VALIDITY_SECS: u64 = 365 * 24 * 3600;
/// Default lifetime of a head: seven days without news before it expires.
pub const DEFAULT_HEAD_VALIDITY_SECS: u64 = 7 * 24 * 3600;

/// Why a newsroom operation failed.
#[derive(Debug, Error)]
pub enum NewsroomError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A newsroom file is not valid.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `init` found an existing newsroom.
    #[error("{0} already holds a newsroom; refusing to overwrite its keys")]
    AlreadyExists(PathBuf),
    /// The folder is not a newsroom.
    #[error(
        "{0} is not a newsroom folder (no newsroom.toml); create one with `kolokol newsroom init`"
    )]
    NotANewsroom(PathBuf),
    /// The root key is needed but not present.
    #[error(
        "{0} is missing: the root key is needed for this. If it is kept offline, run this command on the offline machine, or get a new signing key with `kolokol newsroom request` here, `sign-request` there and `install-cert` back here"
    )]
    NoRootKey(PathBuf),
    /// A secret key file could not be read, written or unlocked.
    #[error(transparent)]
    Key(#[from] keyfile::KeyFileError),
    /// Another process holds the newsroom.
    #[error("another kolokol process is using the newsroom at {0}")]
    Busy(PathBuf),
    /// A name that cannot be used.
    #[error("newsroom name {0:?} must be 1 to 64 lower-case letters, digits or '-'")]
    BadName(String),
    /// A display name readers could be misled by.
    #[error("{0}")]
    BadDisplayName(String),
    /// The key to revoke is not one of this newsroom's signing keys.
    #[error("{0} is not a signing key certified by this newsroom")]
    UnknownKey(String),
    /// The current signing key is revoked or expired.
    #[error("the current signing key cannot sign now: {0}; run `kolokol newsroom rotate`")]
    CannotSign(PolicyError),
    /// The key is already revoked at least as widely.
    #[error(
        "{key} is already revoked from {effective_from}{}; a revocation can move earlier or lower its cut-off, never narrow",
        last_sequence.map(|n| format!(" and above sequence {n}")).unwrap_or_default()
    )]
    AlreadyRevoked {
        /// The key.
        key: String,
        /// The effective time in force.
        effective_from: Timestamp,
        /// The sequence cut-off in force, if any.
        last_sequence: Option<u64>,
    },
    /// The folder does not hold every bundle it numbered, so the sequence
    /// cut-off of a revocation must be given.
    #[error(
        "this folder holds {found} of the {issued} bundles the newsroom numbered (an offline copy?), so it cannot tell which the key signed; give the cut-off with --last-sequence N: the highest sequence number of the newsroom's own bundles by this key"
    )]
    CutOffUnknown {
        /// Sequence numbers issued, by the folder's state.
        issued: u64,
        /// Published bundles found in the folder.
        found: u64,
    },
    /// A bundle named for correction or retraction is not among this newsroom's.
    #[error("bundle {0} was not published by this newsroom")]
    NoSuchBundle(String),
    /// A bundle named on the command line is not known.
    #[error(
        "{0:?} is neither a bundle id, a bundle id prefix of this newsroom, nor a .kolokol file"
    )]
    UnknownBundle(String),
    /// A bundle id prefix matches more than one bundle.
    #[error("{0:?} matches several bundles; give more digits")]
    AmbiguousBundle(String),
    /// A signed object could not be made.
    #[error("signing failed: {0}")]
    Encode(#[from] DecodeError),
    /// The result failed the newsroom's own verification.
    #[error("the new bundle failed verification: {0}")]
    Policy(#[from] PolicyError),
    /// A file could not be read or written whole.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// A story draft is not complete or not valid.
    #[error(transparent)]
    Draft(#[from] DraftError),
    /// The `--out` copy of a bundle cannot be written; nothing was
    /// published.
    #[error("--out {}: {reason}; nothing was published", path.display())]
    Out {
        /// The file asked for.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A check before signing refused the article.
    #[error(transparent)]
    Check(#[from] checks::CheckError),
    /// A file of the newsroom's own could not be read as a bundle.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: Box<FileError>,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> NewsroomError + '_ {
    move |source| NewsroomError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `newsroom.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewsroomConfig {
    /// Short name.
    pub name: String,
    /// Name shown to readers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The newsroom's own site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    /// Root public key in text form.
    pub root_key: String,
    /// How long a head stays fresh, in seconds (at most
    /// [`crate::proto::limits::MAX_HEAD_VALIDITY_SECS`]).
    #[serde(default = "default_head_validity")]
    pub head_validity_secs: u64,
}

fn default_head_validity() -> u64 {
    DEFAULT_HEAD_VALIDITY_SECS
}

/// Options for [`Newsroom::init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Short name.
    pub name: String,
    /// Name shown to readers.
    pub display_name: Option<String>,
    /// The newsroom's own site.
    pub homepage: Option<String>,
    /// Validity of the first signing key, in seconds.
    pub key_validity_secs: u64,
    /// Languages the first signing key may sign; empty for any.
    pub languages: Vec<String>,
}

/// How to unlock and seal encrypted key files: where the passphrase comes
/// from, and the Argon2id cost for files written from now on.
#[derive(Clone)]
pub struct Unlock {
    /// Asked whenever an encrypted key file is read or written.
    pub source: Arc<dyn keyfile::PassphraseSource>,
    /// Cost parameters for newly encrypted files.
    pub kdf: keyfile::KdfParams,
}

impl std::fmt::Debug for Unlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unlock").field("kdf", &self.kdf).finish()
    }
}

/// A newsroom folder.
#[derive(Debug)]
pub struct Newsroom {
    dir: PathBuf,
    config: NewsroomConfig,
    root_public: PublicKey,
    unlock: Option<Unlock>,
    /// The index of `published/`, once read.
    index: std::sync::Mutex<Option<index::Index>>,
}
