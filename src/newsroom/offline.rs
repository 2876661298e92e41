//! Keeping the root key on an offline machine.
//!
//! The flow, with one newsroom folder on each machine:
//! 1. `export-root --out DIR` moves `root.key` out of a newsroom folder into
//!    a new folder `DIR` with copies of the public files (configuration,
//!    state, certificates, revocations). `DIR` goes to the offline machine;
//!    the original folder, now without a root key, stays online.
//! 2. Online, [`Newsroom::request`] makes a new signing key, kept as
//!    `signing.key.pending`, and a request file signed by that key.
//! 3. Offline, [`Newsroom::sign_request`] checks the request and signs a
//!    certificate for the key.
//! 4. Online, [`Newsroom::install_cert`] checks the certificate against the
//!    root public key and the pending key, and makes the key current.
//!
//! Revocations are made offline with `revoke` as usual and carried back to
//! [`Newsroom::install_revocation`].

use std::fs;
use std::path::{Path, PathBuf};

use super::folder::{read_dir_sorted, write_toml};
use super::keyfile::{KeyFile, MAX_KEY_FILE_BYTES};
use super::{Newsroom, NewsroomError, io_err};
use crate::files;
use crate::proto::limits::{MAX_CERTIFICATE_BYTES, MAX_REVOCATION_BYTES};
use crate::proto::{
    CertificateRequest, FORMAT_VERSION, KeyCertificate, PublicKey, Revocation, Scope, SecretKey,
    Timestamp, Verified, decode_unverified,
};
use crate::trust::MAX_PUBLISHER_FILE;

/// The file name of a signing key waiting for its certificate.
pub const PENDING_KEY: &str = "signing.key.pending";

/// Reads a small binary file, refusing one larger than `max` before
/// reading it.
fn read_small(path: &Path, max: usize) -> Result<Vec<u8>, NewsroomError> {
    Ok(files::read_bounded(path, max as u64)?)
}

fn invalid(path: &Path, reason: impl Into<String>) -> NewsroomError {
    NewsroomError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// A request that passed [`Newsroom::check_request`], with the certificate
/// the root key would sign for it.
#[derive(Debug, Clone)]
pub struct CheckedRequest {
    /// The request as decoded and verified.
    pub request: CertificateRequest,
    /// The certificate that signing it would make.
    pub certificate: KeyCertificate,
}

impl Newsroom {
    /// Every certificate in the folder, decoded (they were verified when
    /// written; [`Newsroom::policy`] checks them again).
    fn known_certificates(&self) -> Result<Vec<KeyCertificate>, NewsroomError> {
        Ok(self
            .certificates()?
            .iter()
            .filter_map(|b| decode_unverified::<KeyCertificate>(b).ok())
            .collect())
    }

    /// Moves the root key out of this folder into a new folder `out` for
    /// the offline machine, with copies of everything public the offline
    /// side needs (configuration, state, certificates, revocations and the
    /// publisher file). The key file is copied as it is (encrypted stays
    /// encrypted), read back and compared, and only then removed here.
    pub fn export_root(&self, out: &Path) -> Result<PathBuf, NewsroomError> {
        let _lock = self.lock()?;
        let root_path = self.dir.join("root.key");
        if !root_path.exists() {
            return Err(NewsroomError::NoRootKey(root_path));
        }
        if out.join("newsroom.toml").exists() || out.join("root.key").exists() {
            return Err(NewsroomError::AlreadyExists(out.to_owned()));
        }
        fs::create_dir_all(out).map_err(io_err(out))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(out, fs::Permissions::from_mode(0o700)).map_err(io_err(out))?;
        }
        for sub in ["certs", "revocations", "published"] {
            let p = out.join(sub);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        for (sub, ext, max) in [
            ("certs", "cert", MAX_CERTIFICATE_BYTES),
            ("revocations", "rev", MAX_REVOCATION_BYTES),
        ] {
            for p in read_dir_sorted(&self.dir.join(sub), ext)? {
                let Some(name) = p.file_name() else { continue };
                let bytes = read_small(&p, max)?;
                files::write_atomic(&out.join(sub).join(name), &bytes)?;
            }
        }
        let public = self.public_file_path();
        for p in [self.dir.join("state.toml"), public] {
            let Some(name) = p.file_name() else { continue };
            let bytes = files::read_bounded(&p, MAX_PUBLISHER_FILE)?;
            files::write_atomic(&out.join(name), &bytes)?;
        }
        let key_bytes = files::read_bounded_secret(&root_path, MAX_KEY_FILE_BYTES)?;
        let to = out.join("root.key");
        files::write_private_new(&to, &key_bytes)?;
        let copied = files::read_bounded_secret(&to, MAX_KEY_FILE_BYTES)?;
        if *copied != *key_bytes {
            return Err(invalid(
                &to,
                "the copy of the root key differs; nothing removed",
            ));
        }
        // Last, so that a failure anywhere above leaves the folder whole.
        let config = self.dir.join("newsroom.toml");
        let config_bytes = files::read_bounded(&config, MAX_PUBLISHER_FILE)?;
        files::write_atomic(&out.join("newsroom.toml"), &config_bytes)?;
        fs::remove_file(&root_path).map_err(io_err(&root_path))?;
        tracing::info!(to = %out.display(), "root key moved out of the newsroom folder");
        Ok(to)
    }

    /// Makes a new signing key, kept as [`PENDING_KEY`] (encrypted if the
    /// folder's keys are), and returns a request for its certificate,
    /// signed by the new key. A pending key from an earlier request is
    /// replaced: a certificate for it will no longer install.
    pub fn request(
        &self,
        now: Timestamp,
        validity_secs: u64,
        languages: Option<Vec<String>>,
    ) -> Result<(PublicKey, Vec<u8>), NewsroomError> {
        let _lock = self.lock()?;
        let certs = self.known_certificates()?;
        let last_serial = certs.iter().map(|c| c.serial).max().unwrap_or(0);
        let scope = match languages {
            Some(languages) => Scope { languages },
            None => self.current_key()?.scope,
        };
        let key = SecretKey::generate();
        let request = CertificateRequest {
            format: FORMAT_VERSION,
            publisher: self.root_public,
            name: self.config.name.clone(),
            signing_key: key.public(),
            validity_secs,
            scope,
            last_serial,
            created_at: now,
        };
        let bytes = request.sign(&key)?;
        let seal = self.seal_for_new_key()?;
        self.replace_secret(PENDING_KEY, &key, "pending signing", seal)?;
        tracing::info!(key = %key.public().short(), "pending signing key made");
        Ok((key.public(), bytes))
    }

    /// Checks a request for this newsroom (its self-signature, its fields,
    /// that it names this newsroom's root key and name, and that the key is
    /// not certified already) and says what certificate would be signed.
    pub fn check_request(
        &self,
        bytes: &[u8],
        path: &Path,
        now: Timestamp,
    ) -> Result<CheckedRequest, NewsroomError> {
        let request = CertificateRequest::verify(bytes, now)
            .map_err(|e| invalid(path, format!("refused: {e}")))?;
        if request.publisher != self.root_public || request.name != self.config.name {
            return Err(invalid(
                path,
                format!(
                    "refused: the request is for newsroom {:?} ({}), not {:?} ({})",
                    request.name, request.publisher, self.config.name, self.root_public
                ),
            ));
        }
        let certs = self.known_certificates()?;
        if certs.iter().any(|c| c.signing_key == request.signing_key) {
            return Err(invalid(
                path,
                format!("refused: {} is certified already", request.signing_key),
            ));
        }
        let serial = certs
            .iter()
            .map(|c| c.serial)
            .max()
            .unwrap_or(0)
            .max(request.last_serial)
            .checked_add(1)
            .ok_or_else(|| invalid(path, "refused: serial numbers are exhausted"))?;
        let certificate = KeyCertificate {
            format: FORMAT_VERSION,
            publisher: self.root_public,
            signing_key: request.signing_key,
            serial,
            not_before: now,
            not_after: now.plus(request.validity_secs),
            scope: request.scope.clone(),
        };
        certificate.validate()?;
        Ok(CheckedRequest {
            request,
            certificate,
        })
    }

    /// Signs the certificate for a checked request with the root key,
    /// keeps it in `certs/` and returns it. Needs the root key.
    pub fn sign_request(
        &self,
        checked: &CheckedRequest,
    ) -> Result<Verified<KeyCertificate>, NewsroomError> {
        let _lock = self.lock()?;
        let root = self.root_key()?;
        let cert = &checked.certificate;
        let cert_path = self
            .dir
            .join("certs")
            .join(format!("{:010}.cert", cert.serial));
        if cert_path.exists() {
            return Err(invalid(&cert_path, "a certificate with this serial exists"));
        }
        let bytes = cert.sign(&root)?;
        let verified = self.policy()?.verify_certificate(&bytes)?;
        files::write_atomic(&cert_path, &bytes)?;
        tracing::info!(serial = cert.serial, key = %cert.signing_key.short(), "certificate signed");
        Ok(verified)
    }

    /// Installs a certificate signed offline for the pending key: checks
    /// it against the root public key and the pending key, keeps it, and
    /// makes the pending key the current signing key.
    pub fn install_cert(&self, path: &Path) -> Result<Verified<KeyCertificate>, NewsroomError> {
        let _lock = self.lock()?;
        let bytes = read_small(path, MAX_CERTIFICATE_BYTES)?;
        let verified = self
            .policy()?
            .verify_certificate(&bytes)
            .map_err(|e| invalid(path, format!("refused: {e}")))?;
        let pending_path = self.dir.join(PENDING_KEY);
        if !pending_path.exists() {
            return Err(invalid(
                &pending_path,
                "no pending signing key: run `kolokol newsroom request` first",
            ));
        }
        let pending = KeyFile::read(&pending_path)?;
        // The public key is all that is compared, but an encrypted pending
        // key must be unlocked to learn it; this also proves the passphrase
        // before the key becomes the one everything is signed with.
        let pending = pending.unlock(&pending_path, self.unlock.as_ref().map(|u| &*u.source))?;
        if verified.signing_key != pending.public() {
            return Err(invalid(
                path,
                format!(
                    "refused: the certificate is for {}, not for the pending key {}",
                    verified.signing_key,
                    pending.public()
                ),
            ));
        }
        let certs = self.known_certificates()?;
        if let Some(max) = certs.iter().map(|c| c.serial).max()
            && verified.serial <= max
        {
            return Err(invalid(
                path,
                format!(
                    "refused: serial {} is not above the newest known serial {max}",
                    verified.serial
                ),
            ));
        }
        let cert_path = self
            .dir
            .join("certs")
            .join(format!("{:010}.cert", verified.serial));
        files::write_atomic(&cert_path, &bytes)?;
        // As in `rotate`: the key goes in place, then the state names it.
        let key_path = self.dir.join("signing.key");
        fs::rename(&pending_path, &key_path).map_err(io_err(&key_path))?;
        files::sync_parent(&key_path)?;
        let mut state = self.state()?;
        state.current_serial = verified.serial;
        write_toml(&self.dir.join("state.toml"), &state)?;
        tracing::info!(serial = verified.serial, "certificate installed");
        Ok(verified)
    }

    /// Installs a revocation made where the root key is: checks it against
    /// the root public key and keeps it, unless the one kept already for
    /// the same key is at least as wide ([`Revocation::widens`]). Returns `None` when nothing changed.
    pub fn install_revocation(
        &self,
        path: &Path,
    ) -> Result<Option<Verified<Revocation>>, NewsroomError> {
        let _lock = self.lock()?;
        let bytes = read_small(path, MAX_REVOCATION_BYTES)?;
        let rev = self
            .policy()?
            .verify_revocation(&bytes)
            .map_err(|e| invalid(path, format!("refused: {e}")))?;
        if !self
            .known_certificates()?
            .iter()
            .any(|c| c.signing_key == rev.key)
        {
            return Err(NewsroomError::UnknownKey(rev.key.to_string()));
        }
        let existing = self
            .revocations()?
            .iter()
            .filter_map(|b| decode_unverified::<Revocation>(b).ok())
            .find(|r| r.key == rev.key);
        if let Some(old) = existing
            && !rev.widens(&old)
        {
            return Ok(None);
        }
        let to = self
            .dir
            .join("revocations")
            .join(format!("{}.rev", hex::encode(rev.key.as_bytes())));
        files::write_atomic(&to, &bytes)?;
        tracing::info!(key = %rev.key.short(), "revocation installed");
        Ok(Some(rev))
    }

    /// Where `revoke` keeps the revocation of `key`.
    pub fn revocation_path(&self, key: &PublicKey) -> PathBuf {
        self.dir
            .join("revocations")
            .join(format!("{}.rev", hex::encode(key.as_bytes())))
    }
}

/// Writes a request or certificate for carrying to the other machine,
/// refusing to replace an existing file.
pub fn write_carry_file(path: &Path, bytes: &[u8]) -> Result<(), NewsroomError> {
    Ok(files::write_new(path, bytes)?)
}

/// Reads a request file, bounded by the request size limit.
pub fn read_request(path: &Path) -> Result<Vec<u8>, NewsroomError> {
    read_small(path, crate::proto::limits::MAX_CERTIFICATE_REQUEST_BYTES)
}
