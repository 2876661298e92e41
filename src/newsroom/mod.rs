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
//! - `NAME.toml`: the public publisher file for readers' trust lists.

pub mod article;
pub mod demo;
pub mod feed;
pub mod fetch;
pub mod keyfile;
mod keys;
pub mod offline;

pub use keys::Converted;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::proto::bundle::{BundleFile, FileError, FrameReader, FrameTag};
use crate::proto::{
    BODY_MEDIA_TYPE, BODY_PATH, BlobHash, BundleId, CertId, DecodeError, Entry, FORMAT_VERSION,
    Head, KeyCertificate, Kind, Manifest, Metadata, PolicyError, PublicKey, Revocation, Scope,
    SecretKey, StoryId, Timestamp, TrustPolicy, Verified, VerifiedBundle, decode_unverified,
};
use crate::trust::{PublisherFile, read_bounded, valid_name, write_atomic};

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
    /// The key to revoke is not one of this newsroom's signing keys.
    #[error("{0} is not a signing key certified by this newsroom")]
    UnknownKey(String),
    /// The current signing key is revoked or expired.
    #[error("the current signing key cannot sign now: {0}; run `kolokol newsroom rotate`")]
    CannotSign(PolicyError),
    /// The key is already revoked from the same or an earlier time.
    #[error(
        "{key} is already revoked from {effective_from}; a revocation can move earlier, never later"
    )]
    AlreadyRevoked {
        /// The key.
        key: String,
        /// The effective time in force.
        effective_from: Timestamp,
    },
    /// A bundle named for correction or retraction is not among this newsroom's.
    #[error("bundle {0} was not published by this newsroom")]
    NoSuchBundle(String),
    /// A signed object could not be made.
    #[error("signing failed: {0}")]
    Encode(#[from] DecodeError),
    /// The result failed the newsroom's own verification.
    #[error("the new bundle failed verification: {0}")]
    Policy(#[from] PolicyError),
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
    /// How long a head stays fresh, in seconds.
    #[serde(default = "default_head_validity")]
    pub head_validity_secs: u64,
}

fn default_head_validity() -> u64 {
    DEFAULT_HEAD_VALIDITY_SECS
}

/// `state.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewsroomState {
    next_sequence: u64,
    current_serial: u64,
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

/// A media file to bundle with a story.
#[derive(Debug, Clone)]
pub struct MediaFile {
    /// File name, used as `media/NAME` in the bundle.
    pub name: String,
    /// MIME type.
    pub media_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What a new bundle is to earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// A new story, or a new version of the story given by `story`.
    Story,
    /// A correction of the story that bundle belongs to.
    CorrectionOf(BundleId),
    /// A retraction of the story that bundle belongs to.
    RetractionOf(BundleId),
}

/// Everything needed to sign a story version.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Headline.
    pub title: String,
    /// Language tag.
    pub language: String,
    /// Bylines.
    pub authors: Vec<String>,
    /// Section.
    pub section: Option<String>,
    /// Original URL.
    pub original_url: Option<String>,
    /// Summary.
    pub summary: Option<String>,
    /// First publication time; defaults to now for a new story.
    pub published: Option<Timestamp>,
    /// Body as HTML.
    pub body_html: String,
    /// Media files.
    pub media: Vec<MediaFile>,
    /// The story this is a version of; a new id when `None`.
    pub story: Option<StoryId>,
    /// Correction, retraction or plain story.
    pub relation: Relation,
}

/// A bundle the newsroom just signed.
#[derive(Debug, Clone)]
pub struct Published {
    /// The verified bundle.
    pub bundle: VerifiedBundle,
    /// The file's contents.
    pub file: BundleFile,
    /// The file as written.
    pub bytes: Vec<u8>,
    /// Where the newsroom keeps it.
    pub path: PathBuf,
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
}

/// Writes a secret key file readable only by its owner, refusing to
/// replace an existing file. With `seal`, the key is encrypted under the
/// passphrase `seal` gives.
fn write_secret(
    path: &Path,
    key: &SecretKey,
    role: &str,
    name: &str,
    seal: Option<&Unlock>,
) -> Result<(), NewsroomError> {
    let text = match seal {
        Some(u) => {
            let passphrase = u.source.passphrase(path, keyfile::Purpose::NewKey)?;
            zeroize::Zeroizing::new(keyfile::encrypted_text(
                key,
                passphrase.as_bytes(),
                u.kdf,
                role,
                name,
            )?)
        }
        None => keyfile::plain_text(key, role, name),
    };
    // Never over an existing key; and whole or not at all: a crash leaves
    // at most a stray `.partial` file, never a truncated key at `path`.
    if path.exists() {
        return Err(io_err(path)(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "a key file is already there",
        )));
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = fs::remove_file(&partial);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&partial).map_err(io_err(&partial))?;
    f.write_all(text.as_bytes()).map_err(io_err(&partial))?;
    f.sync_all().map_err(io_err(&partial))?;
    drop(f);
    fs::rename(&partial, path).map_err(io_err(path))
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, NewsroomError> {
    let text = read_bounded(path, 64 * 1024).map_err(|e| NewsroomError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| NewsroomError::Invalid {
        path: path.to_owned(),
        reason: e.message().to_string(),
    })
}

fn write_toml<T: Serialize>(path: &Path, value: &T) -> Result<(), NewsroomError> {
    let text = toml::to_string_pretty(value).map_err(|e| NewsroomError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes()).map_err(io_err(path))
}

fn read_dir_sorted(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, NewsroomError> {
    let mut out = Vec::new();
    match fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd {
                let p = e.map_err(io_err(dir))?.path();
                if p.extension().is_some_and(|x| x == ext) {
                    out.push(p);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(dir)(e)),
    }
    out.sort();
    Ok(out)
}

/// Holds the newsroom's lock file until dropped.
struct Lock(#[allow(dead_code)] fs::File);

impl Newsroom {
    /// Creates a newsroom in `dir`: a root key, a first signing key and its
    /// certificate, and the public publisher file. Refuses to overwrite.
    pub fn init(dir: &Path, opts: &InitOptions, now: Timestamp) -> Result<Self, NewsroomError> {
        Self::init_with_keys(dir, opts, now, SecretKey::generate(), SecretKey::generate())
    }

    /// [`Newsroom::init`] with both secret keys encrypted under the
    /// passphrase `unlock` gives.
    pub fn init_encrypted(
        dir: &Path,
        opts: &InitOptions,
        now: Timestamp,
        unlock: Unlock,
    ) -> Result<Self, NewsroomError> {
        Self::init_inner(
            dir,
            opts,
            now,
            SecretKey::generate(),
            SecretKey::generate(),
            Some(unlock),
        )
    }

    /// [`Newsroom::init`] with given keys (the demo newsroom and tests).
    pub fn init_with_keys(
        dir: &Path,
        opts: &InitOptions,
        now: Timestamp,
        root: SecretKey,
        signing: SecretKey,
    ) -> Result<Self, NewsroomError> {
        Self::init_inner(dir, opts, now, root, signing, None)
    }

    fn init_inner(
        dir: &Path,
        opts: &InitOptions,
        now: Timestamp,
        root: SecretKey,
        signing: SecretKey,
        seal: Option<Unlock>,
    ) -> Result<Self, NewsroomError> {
        if !valid_name(&opts.name) {
            return Err(NewsroomError::BadName(opts.name.clone()));
        }
        let config_path = dir.join("newsroom.toml");
        if config_path.exists() || dir.join("root.key").exists() || dir.join("signing.key").exists()
        {
            return Err(NewsroomError::AlreadyExists(dir.to_owned()));
        }
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
        }
        for sub in ["certs", "revocations", "published"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        write_secret(
            &dir.join("root.key"),
            &root,
            "root",
            &opts.name,
            seal.as_ref(),
        )?;
        write_secret(
            &dir.join("signing.key"),
            &signing,
            "signing",
            &opts.name,
            seal.as_ref(),
        )?;
        let cert = KeyCertificate {
            format: FORMAT_VERSION,
            publisher: root.public(),
            signing_key: signing.public(),
            serial: 1,
            not_before: now,
            not_after: now.plus(opts.key_validity_secs),
            scope: Scope {
                languages: opts.languages.clone(),
            },
        };
        cert.validate()?;
        let cert_path = dir.join("certs").join(format!("{:010}.cert", 1));
        write_atomic(&cert_path, &cert.sign(&root)?).map_err(io_err(&cert_path))?;
        write_toml(
            &dir.join("state.toml"),
            &NewsroomState {
                next_sequence: 1,
                current_serial: 1,
            },
        )?;
        let config = NewsroomConfig {
            name: opts.name.clone(),
            display_name: opts.display_name.clone(),
            homepage: opts.homepage.clone(),
            root_key: root.public().to_string(),
            head_validity_secs: DEFAULT_HEAD_VALIDITY_SECS,
        };
        // Written last: its presence marks a complete newsroom.
        write_toml(&config_path, &config)?;
        let newsroom = Self {
            dir: dir.to_owned(),
            config,
            root_public: root.public(),
            unlock: seal,
        };
        let public_path = newsroom.public_file_path();
        write_atomic(&public_path, newsroom.public_file().to_toml().as_bytes())
            .map_err(io_err(&public_path))?;
        Ok(newsroom)
    }

    /// Opens an existing newsroom folder.
    pub fn open(dir: &Path) -> Result<Self, NewsroomError> {
        let config_path = dir.join("newsroom.toml");
        if !config_path.exists() {
            return Err(NewsroomError::NotANewsroom(dir.to_owned()));
        }
        let config: NewsroomConfig = read_toml(&config_path)?;
        let root_public = config
            .root_key
            .parse()
            .map_err(|e: crate::proto::KeyError| NewsroomError::Invalid {
                path: config_path.clone(),
                reason: format!("root_key: {e}"),
            })?;
        Ok(Self {
            dir: dir.to_owned(),
            config,
            root_public,
            unlock: None,
        })
    }

    /// Gives the newsroom a way to unlock (and seal) encrypted key files.
    /// Without one, an encrypted key file cannot be used.
    pub fn with_unlock(mut self, unlock: Unlock) -> Self {
        self.unlock = Some(unlock);
        self
    }

    /// Reads a secret key file, asking for the passphrase if it is
    /// encrypted.
    fn read_secret(&self, path: &Path) -> Result<SecretKey, NewsroomError> {
        let file = keyfile::KeyFile::read(path)?;
        let encrypted = file.is_encrypted();
        let key = file.unlock(path, self.unlock.as_ref().map(|u| &*u.source))?;
        tracing::debug!(path = %path.display(), encrypted, "secret key read");
        Ok(key)
    }

    /// Whether the key file `name` in the folder is encrypted; `None` when
    /// it is absent.
    pub fn key_encrypted(&self, name: &str) -> Result<Option<bool>, NewsroomError> {
        let path = self.dir.join(name);
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(keyfile::KeyFile::read(&path)?.is_encrypted()))
    }

    /// How a new key file should be written: encrypted when the folder's
    /// keys are (the signing key, or the root key where no signing key is).
    fn seal_for_new_key(&self) -> Result<Option<&Unlock>, NewsroomError> {
        let encrypted = match self.key_encrypted("signing.key")? {
            Some(e) => e,
            None => self.key_encrypted("root.key")?.unwrap_or(false),
        };
        if !encrypted {
            return Ok(None);
        }
        self.unlock
            .as_ref()
            .map(Some)
            .ok_or_else(|| keyfile::KeyFileError::NoPassphrase(self.dir.join("signing.key")).into())
    }

    /// Writes `key` to `name` in the folder, replacing any file there
    /// whole: written beside it, then renamed over it.
    fn replace_secret(
        &self,
        name: &str,
        key: &SecretKey,
        role: &str,
        seal: Option<&Unlock>,
    ) -> Result<(), NewsroomError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.new"));
        let _ = fs::remove_file(&tmp);
        write_secret(&tmp, key, role, &self.config.name, seal)?;
        fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration.
    pub fn config(&self) -> &NewsroomConfig {
        &self.config
    }

    /// The root public key, which identifies the publisher.
    pub fn root_public(&self) -> PublicKey {
        self.root_public
    }

    /// The public publisher file to share with readers (and for `keys/`).
    pub fn public_file(&self) -> PublisherFile {
        PublisherFile {
            name: self.config.name.clone(),
            display_name: self.config.display_name.clone(),
            root_key: self.root_public,
            homepage: self.config.homepage.clone(),
            bootstrap: Vec::new(),
            demo: self.root_public == demo::root_key().public(),
        }
    }

    /// Where the public publisher file is written.
    pub fn public_file_path(&self) -> PathBuf {
        self.dir.join(format!("{}.toml", self.config.name))
    }

    fn lock(&self) -> Result<Lock, NewsroomError> {
        let path = self.dir.join("newsroom.lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        match f.try_lock() {
            Ok(()) => Ok(Lock(f)),
            Err(fs::TryLockError::WouldBlock) => Err(NewsroomError::Busy(self.dir.clone())),
            Err(fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
        }
    }

    fn root_key(&self) -> Result<SecretKey, NewsroomError> {
        let path = self.dir.join("root.key");
        if !path.exists() {
            return Err(NewsroomError::NoRootKey(path));
        }
        self.read_secret(&path)
    }

    fn state(&self) -> Result<NewsroomState, NewsroomError> {
        read_toml(&self.dir.join("state.toml"))
    }

    /// Every certificate the newsroom issued, as signed bytes, oldest first.
    pub fn certificates(&self) -> Result<Vec<Vec<u8>>, NewsroomError> {
        read_dir_sorted(&self.dir.join("certs"), "cert")?
            .iter()
            .map(|p| fs::read(p).map_err(io_err(p)))
            .collect()
    }

    /// Every revocation the newsroom issued, as signed bytes.
    pub fn revocations(&self) -> Result<Vec<Vec<u8>>, NewsroomError> {
        read_dir_sorted(&self.dir.join("revocations"), "rev")?
            .iter()
            .map(|p| fs::read(p).map_err(io_err(p)))
            .collect()
    }

    /// The newest revocations (by issue time) that fit in a bundle file.
    fn newest_revocations(&self) -> Result<Vec<Vec<u8>>, NewsroomError> {
        let mut revs: Vec<(Timestamp, Vec<u8>)> = self
            .revocations()?
            .into_iter()
            .map(|b| {
                let t = decode_unverified::<Revocation>(&b).map_or(Timestamp(0), |r| r.issued_at);
                (t, b)
            })
            .collect();
        revs.sort_by_key(|r| std::cmp::Reverse(r.0));
        revs.truncate(crate::proto::bundle::MAX_SIDE_OBJECTS);
        Ok(revs.into_iter().map(|(_, b)| b).collect())
    }

    /// A trust policy that trusts this newsroom and knows its certificates
    /// and revocations.
    pub fn policy(&self) -> Result<TrustPolicy, NewsroomError> {
        let mut policy = TrustPolicy::new();
        policy
            .trust(self.root_public, self.config.name.clone())
            .map_err(|e| NewsroomError::Invalid {
                path: self.dir.join("newsroom.toml"),
                reason: format!("root_key: {e}"),
            })?;
        for c in self.certificates()? {
            policy.learn_certificate(&c)?;
        }
        for r in self.revocations()? {
            policy.learn_revocation(&r)?;
        }
        Ok(policy)
    }

    fn current_certificate(
        &self,
        state: &NewsroomState,
    ) -> Result<(Vec<u8>, KeyCertificate), NewsroomError> {
        let path = self
            .dir
            .join("certs")
            .join(format!("{:010}.cert", state.current_serial));
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let cert =
            decode_unverified::<KeyCertificate>(&bytes).map_err(|e| NewsroomError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        Ok((bytes, cert))
    }

    /// The current signing key's certificate.
    pub fn current_key(&self) -> Result<KeyCertificate, NewsroomError> {
        Ok(self.current_certificate(&self.state()?)?.1)
    }

    /// Makes a new signing key with a certificate valid from `now` for
    /// `validity_secs`, and makes it current. Needs the root key.
    pub fn rotate(
        &self,
        now: Timestamp,
        validity_secs: u64,
    ) -> Result<Verified<KeyCertificate>, NewsroomError> {
        let _lock = self.lock()?;
        let root = self.root_key()?;
        let seal = self.seal_for_new_key()?;
        let mut state = self.state()?;
        let (_, old) = self.current_certificate(&state)?;
        let signing = SecretKey::generate();
        let serial = state.current_serial + 1;
        let cert = KeyCertificate {
            format: FORMAT_VERSION,
            publisher: self.root_public,
            signing_key: signing.public(),
            serial,
            not_before: now,
            not_after: now.plus(validity_secs),
            scope: old.scope,
        };
        cert.validate()?;
        let bytes = cert.sign(&root)?;
        let verified = self.policy()?.verify_certificate(&bytes)?;
        let cert_path = self.dir.join("certs").join(format!("{serial:010}.cert"));
        write_atomic(&cert_path, &bytes).map_err(io_err(&cert_path))?;
        // The new key goes in place before the state names its certificate;
        // the old key file is replaced whole, encrypted if it was.
        self.replace_secret("signing.key", &signing, "signing", seal)?;
        state.current_serial = serial;
        write_toml(&self.dir.join("state.toml"), &state)?;
        Ok(verified)
    }

    /// Revokes a signing key (given as its public key text, or its
    /// certificate serial) for everything signed from `effective_from` on.
    /// Needs the root key.
    pub fn revoke(
        &self,
        key: &str,
        effective_from: Timestamp,
        reason: &str,
        now: Timestamp,
    ) -> Result<Verified<Revocation>, NewsroomError> {
        let _lock = self.lock()?;
        let root = self.root_key()?;
        let certs: Vec<KeyCertificate> = self
            .certificates()?
            .iter()
            .filter_map(|b| decode_unverified::<KeyCertificate>(b).ok())
            .collect();
        let target = certs
            .iter()
            .find(|c| c.signing_key.to_string() == key.trim() || c.serial.to_string() == key.trim())
            .ok_or_else(|| NewsroomError::UnknownKey(key.to_owned()))?;
        // Readers keep the earliest effective time they have seen, so a
        // later one would be ignored by some and obeyed by others.
        let existing = self
            .revocations()?
            .iter()
            .filter_map(|b| decode_unverified::<Revocation>(b).ok())
            .find(|r| r.key == target.signing_key);
        if let Some(old) = existing
            && old.effective_from <= effective_from
        {
            return Err(NewsroomError::AlreadyRevoked {
                key: old.key.to_string(),
                effective_from: old.effective_from,
            });
        }
        let rev = Revocation {
            format: FORMAT_VERSION,
            publisher: self.root_public,
            key: target.signing_key,
            effective_from,
            issued_at: now,
            reason: reason.to_owned(),
        };
        rev.validate()?;
        let bytes = rev.sign(&root)?;
        let verified = self.policy()?.verify_revocation(&bytes)?;
        let path = self.dir.join("revocations").join(format!(
            "{}.rev",
            hex::encode(target.signing_key.as_bytes())
        ));
        write_atomic(&path, &bytes).map_err(io_err(&path))?;
        Ok(verified)
    }

    /// Every bundle this newsroom published: (path, id, manifest), in
    /// sequence order. Reads only each file's manifest.
    pub fn published(&self) -> Result<Vec<(PathBuf, BundleId, Manifest)>, NewsroomError> {
        let mut out = Vec::new();
        for path in read_dir_sorted(&self.dir.join("published"), "kolokol")? {
            let (id, m) = read_manifest(&path)?;
            out.push((path, id, m));
        }
        Ok(out)
    }

    fn latest_version(
        &self,
        story: &StoryId,
    ) -> Result<Option<(BundleId, Manifest)>, NewsroomError> {
        Ok(self
            .published()?
            .into_iter()
            .filter(|(_, _, m)| &m.story == story)
            .max_by_key(|(_, _, m)| m.version)
            .map(|(_, id, m)| (id, m)))
    }

    /// Signs `draft` as the next bundle of this newsroom, writes it to
    /// `published/`, and returns it verified by the newsroom's own policy.
    pub fn publish(&self, draft: Draft, now: Timestamp) -> Result<Published, NewsroomError> {
        let _lock = self.lock()?;
        let mut state = self.state()?;
        let (cert_bytes, cert) = self.current_certificate(&state)?;
        let signing = self.read_secret(&self.dir.join("signing.key"))?;
        if signing.public() != cert.signing_key {
            return Err(NewsroomError::Invalid {
                path: self.dir.join("signing.key"),
                reason: "the signing key does not match the current certificate".into(),
            });
        }
        let policy = self.policy()?;
        // A key with any revocation, even one taking effect later, signs
        // nothing more: readers refuse the head it would sign beside the
        // story.
        if let Some(rev) = policy
            .publisher(&self.root_public)
            .and_then(|p| p.revocations().find(|r| r.key == cert.signing_key))
        {
            return Err(NewsroomError::CannotSign(PolicyError::KeyRevoked {
                key: rev.key,
                effective_from: rev.effective_from,
                signed_at: now,
            }));
        }

        // Where the story stands: a new story, or the next version of one.
        let (story, kind, previous) = match draft.relation {
            Relation::Story => {
                let story = draft.story.unwrap_or_else(|| StoryId(rand::random()));
                (story, Kind::Story, self.latest_version(&story)?)
            }
            Relation::CorrectionOf(of) | Relation::RetractionOf(of) => {
                let (_, _, m) = self
                    .published()?
                    .into_iter()
                    .find(|(_, id, _)| *id == of)
                    .ok_or_else(|| NewsroomError::NoSuchBundle(of.to_string()))?;
                let kind = if matches!(draft.relation, Relation::CorrectionOf(_)) {
                    Kind::Correction
                } else {
                    Kind::Retraction
                };
                (m.story, kind, self.latest_version(&m.story)?)
            }
        };

        let (body_html, entries) = content_entries(&draft.body_html, &draft.media);
        let mut blobs = Vec::with_capacity(draft.media.len() + 1);
        blobs.push(body_html.into_bytes());
        blobs.extend(draft.media.into_iter().map(|m| m.bytes));

        let published = draft
            .published
            .or(previous.as_ref().map(|(_, m)| m.metadata.published))
            .unwrap_or(now);
        let manifest = Manifest {
            format: FORMAT_VERSION,
            publisher: self.root_public,
            certificate: CertId::of(&cert_bytes),
            story,
            version: previous.as_ref().map_or(1, |(_, m)| m.version + 1),
            kind,
            sequence: state.next_sequence,
            supersedes: previous.as_ref().map(|(id, _)| *id),
            signed_at: now,
            metadata: Metadata {
                title: draft.title,
                language: draft.language,
                authors: draft.authors,
                section: draft.section,
                published,
                updated: previous.as_ref().map(|_| now),
                original_url: draft.original_url,
                summary: draft.summary,
            },
            entries,
        };
        manifest.validate()?;
        let manifest_bytes = manifest.sign(&signing)?;
        let verified = policy
            .verify_manifest(&manifest_bytes, now)
            .map_err(|e| match e {
                e @ (PolicyError::KeyRevoked { .. }
                | PolicyError::CertificateExpired { .. }
                | PolicyError::CertificateNotYetValid { .. }) => NewsroomError::CannotSign(e),
                e => NewsroomError::Policy(e),
            })?;
        let head = Head {
            format: FORMAT_VERSION,
            publisher: self.root_public,
            certificate: CertId::of(&cert_bytes),
            sequence: state.next_sequence,
            issued_at: now,
            expires_at: now.plus(self.config.head_validity_secs),
        };
        let head_bytes = head.sign(&signing)?;
        let file = BundleFile {
            // Only the certificate this bundle needs, and the newest
            // revocations (up to the side-object limit) so readers learn
            // of them.
            certificates: vec![cert_bytes.clone()],
            revocations: self.newest_revocations()?,
            heads: vec![head_bytes],
            manifest: manifest_bytes,
            blobs: blobs.clone(),
        };
        let bundle = policy.verify_bundle(verified, blobs)?;

        let path = self
            .dir
            .join("published")
            .join(format!("{:010}.kolokol", state.next_sequence));
        if path.exists() {
            return Err(NewsroomError::Invalid {
                path,
                reason: "a bundle with this sequence number exists already; state.toml is behind"
                    .into(),
            });
        }
        let bytes = file.to_bytes().map_err(io_err(&path))?;
        write_atomic(&path, &bytes).map_err(io_err(&path))?;
        state.next_sequence += 1;
        write_toml(&self.dir.join("state.toml"), &state)?;
        Ok(Published {
            bundle,
            file,
            bytes,
            path,
        })
    }
}

/// The body as it will be signed (media references pointed at
/// `media/NAME`) and the entries a bundle of this body and media lists, in
/// blob order. Feed import compares these with a published version to tell
/// whether an item changed.
pub fn content_entries(body_html: &str, media: &[MediaFile]) -> (String, Vec<Entry>) {
    let mut body_html = body_html.to_owned();
    for m in media {
        body_html = article::rewrite_media_refs(&body_html, &m.name);
    }
    let mut entries = Vec::with_capacity(media.len() + 1);
    entries.push(Entry {
        path: BODY_PATH.into(),
        media_type: BODY_MEDIA_TYPE.into(),
        size: body_html.len() as u64,
        hash: BlobHash::of(body_html.as_bytes()),
    });
    for m in media {
        entries.push(Entry {
            path: format!("media/{}", m.name),
            media_type: m.media_type.clone(),
            size: m.bytes.len() as u64,
            hash: BlobHash::of(&m.bytes),
        });
    }
    (body_html, entries)
}

/// Reads only the manifest of a `.kolokol` file, without verifying it.
pub fn read_manifest(path: &Path) -> Result<(BundleId, Manifest), NewsroomError> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    let file_err = |source: FileError| NewsroomError::File {
        path: path.to_owned(),
        source: Box::new(source),
    };
    let mut frames = FrameReader::new(std::io::BufReader::new(file)).map_err(file_err)?;
    while let Some(frame) = frames.next_frame().map_err(file_err)? {
        if frame.tag == FrameTag::Manifest {
            let m = decode_unverified::<Manifest>(&frame.payload).map_err(|e| {
                NewsroomError::Invalid {
                    path: path.to_owned(),
                    reason: e.to_string(),
                }
            })?;
            return Ok((BundleId::of(&frame.payload), m));
        }
    }
    Err(NewsroomError::Invalid {
        path: path.to_owned(),
        reason: "no manifest in the file".into(),
    })
}
