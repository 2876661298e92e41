//! The newsroom folder on disk: creating and opening it, its lock, its
//! state (next sequence number, current certificate), its secret key files
//! and the certificates and revocations it keeps.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    DEFAULT_HEAD_VALIDITY_SECS, InitOptions, Newsroom, NewsroomConfig, NewsroomError, Unlock,
    io_err, keyfile,
};
use crate::files;
use crate::proto::limits::{MAX_CERTIFICATE_BYTES, MAX_REVOCATION_BYTES};
use crate::proto::{
    FORMAT_VERSION, KeyCertificate, PublicKey, Revocation, Scope, SecretKey, Timestamp,
    TrustPolicy, decode_unverified,
};
use crate::trust::{PublisherFile, valid_name};

/// Largest `newsroom.toml` or `state.toml` read.
const MAX_TOML_BYTES: u64 = 64 * 1024;

/// `state.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewsroomState {
    pub(super) next_sequence: u64,
    pub(super) current_serial: u64,
}

/// A secret key file's text: plain, or with `seal` encrypted under the
/// passphrase it gives.
fn secret_text(
    path: &Path,
    key: &SecretKey,
    role: &str,
    name: &str,
    seal: Option<&Unlock>,
) -> Result<zeroize::Zeroizing<String>, NewsroomError> {
    Ok(match seal {
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
    })
}

/// Writes a secret key file readable only by its owner, whole or not at
/// all, refusing to replace an existing file.
fn write_secret(
    path: &Path,
    key: &SecretKey,
    role: &str,
    name: &str,
    seal: Option<&Unlock>,
) -> Result<(), NewsroomError> {
    let text = secret_text(path, key, role, name, seal)?;
    Ok(files::write_private_new(path, text.as_bytes())?)
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, NewsroomError> {
    let text = files::read_bounded_text(path, MAX_TOML_BYTES)?;
    toml::from_str(&text).map_err(|e| NewsroomError::Invalid {
        path: path.to_owned(),
        reason: e.message().to_string(),
    })
}

pub(super) fn write_toml<T: Serialize>(path: &Path, value: &T) -> Result<(), NewsroomError> {
    let text = toml::to_string_pretty(value).map_err(|e| NewsroomError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(files::write_atomic(path, text.as_bytes())?)
}

pub(super) fn read_dir_sorted(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, NewsroomError> {
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
pub(super) struct Lock(#[allow(dead_code)] fs::File);

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
        if let Some(d) = &opts.display_name {
            crate::trust::check_display_name(d).map_err(NewsroomError::BadDisplayName)?;
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
        files::write_atomic(&cert_path, &cert.sign(&root)?)?;
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
            index: Default::default(),
        };
        let public_path = newsroom.public_file_path();
        files::write_atomic(&public_path, newsroom.public_file().to_toml().as_bytes())?;
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
            index: Default::default(),
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
    pub(super) fn read_secret(&self, path: &Path) -> Result<SecretKey, NewsroomError> {
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
    pub(super) fn seal_for_new_key(&self) -> Result<Option<&Unlock>, NewsroomError> {
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

    /// Writes `key` to `name` in the folder (owner-only), replacing any
    /// file there whole.
    pub(super) fn replace_secret(
        &self,
        name: &str,
        key: &SecretKey,
        role: &str,
        seal: Option<&Unlock>,
    ) -> Result<(), NewsroomError> {
        let path = self.dir.join(name);
        let text = secret_text(&path, key, role, &self.config.name, seal)?;
        Ok(files::write_private(&path, text.as_bytes())?)
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
        let mut file = PublisherFile {
            name: self.config.name.clone(),
            display_name: self.config.display_name.clone(),
            root_key: self.root_public,
            homepage: self.config.homepage.clone(),
            bootstrap: Vec::new(),
            demo: self.root_public == crate::trust::DEMO_ROOT_KEY,
            mirror_list: None,
            mirror_certificate: None,
        };
        // The list signed here (`newsroom mirrors`) goes out with the file,
        // and the certificate that signs it.
        match self.mirror_list_with_certificate() {
            Ok(Some((list, cert))) => file.set_mirror_list(&list, &cert),
            Ok(None) => {}
            Err(e) => tracing::warn!("the publisher file goes out without its mirror list: {e}"),
        }
        file
    }

    /// Where the public publisher file is written.
    pub fn public_file_path(&self) -> PathBuf {
        self.dir.join(format!("{}.toml", self.config.name))
    }

    pub(super) fn lock(&self) -> Result<Lock, NewsroomError> {
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

    pub(super) fn root_key(&self) -> Result<SecretKey, NewsroomError> {
        let path = self.dir.join("root.key");
        if !path.exists() {
            return Err(NewsroomError::NoRootKey(path));
        }
        self.read_secret(&path)
    }

    pub(super) fn state(&self) -> Result<NewsroomState, NewsroomError> {
        read_toml(&self.dir.join("state.toml"))
    }

    /// Every certificate the newsroom issued, as signed bytes, oldest first.
    pub fn certificates(&self) -> Result<Vec<Vec<u8>>, NewsroomError> {
        read_dir_sorted(&self.dir.join("certs"), "cert")?
            .iter()
            .map(|p| Ok(files::read_bounded(p, MAX_CERTIFICATE_BYTES as u64)?))
            .collect()
    }

    /// Every revocation the newsroom issued, as signed bytes.
    pub fn revocations(&self) -> Result<Vec<Vec<u8>>, NewsroomError> {
        read_dir_sorted(&self.dir.join("revocations"), "rev")?
            .iter()
            .map(|p| Ok(files::read_bounded(p, MAX_REVOCATION_BYTES as u64)?))
            .collect()
    }

    /// The newest revocations (by issue time) that fit in a bundle file.
    pub(super) fn newest_revocations(&self) -> Result<Vec<Vec<u8>>, NewsroomError> {
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

    pub(super) fn current_certificate(
        &self,
        state: &NewsroomState,
    ) -> Result<(Vec<u8>, KeyCertificate), NewsroomError> {
        let path = self
            .dir
            .join("certs")
            .join(format!("{:010}.cert", state.current_serial));
        let bytes = files::read_bounded(&path, MAX_CERTIFICATE_BYTES as u64)?;
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
}
