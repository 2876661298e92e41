//! The newsroom's mirror list: signed with the current signing key, kept
//! in the folder as [`MIRROR_LIST_FILE`] and carried by the publisher file
//! the folder holds, so that a reader who adds that file learns where the
//! newsroom's stories are mirrored.

use std::path::PathBuf;

use super::{Newsroom, NewsroomError};
use crate::files;
use crate::proto::mirrors::{MAX_MIRROR_LIST_BYTES, MirrorList};
use crate::proto::{CertId, FORMAT_VERSION, PolicyError, Timestamp, decode_unverified};

/// The signed mirror list in the newsroom folder.
pub const MIRROR_LIST_FILE: &str = "mirrors.list";

/// A mirror list's signed bytes and its certificate's.
pub(super) type Signed = (Vec<u8>, Vec<u8>);

/// A mirror list the newsroom signed, and where it went.
#[derive(Debug, Clone)]
pub struct SignedMirrorList {
    /// The list.
    pub list: MirrorList,
    /// Its signed bytes.
    pub bytes: Vec<u8>,
    /// Where they were written.
    pub path: PathBuf,
    /// The publisher file rewritten with the list in it.
    pub public_file: PathBuf,
}

impl Newsroom {
    /// Where the signed mirror list is kept.
    pub fn mirror_list_path(&self) -> PathBuf {
        self.dir().join(MIRROR_LIST_FILE)
    }

    /// The signed mirror list kept in the folder, if there is one.
    pub fn mirror_list(&self) -> Result<Option<Vec<u8>>, NewsroomError> {
        let path = self.mirror_list_path();
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(files::read_bounded(
            &path,
            MAX_MIRROR_LIST_BYTES as u64,
        )?))
    }

    /// The kept mirror list and the certificate of the key that signed it.
    pub(super) fn mirror_list_with_certificate(&self) -> Result<Option<Signed>, NewsroomError> {
        let Some(list) = self.mirror_list()? else {
            return Ok(None);
        };
        let path = self.mirror_list_path();
        let named = decode_unverified::<MirrorList>(&list)
            .map_err(|e| NewsroomError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?
            .certificate;
        let cert = self
            .certificates()?
            .into_iter()
            .find(|c| CertId::of(c) == named)
            .ok_or_else(|| NewsroomError::Invalid {
                path,
                reason: format!("signed under certificate {named}, not in certs/"),
            })?;
        Ok(Some((list, cert)))
    }

    /// Signs a mirror list of these libp2p addresses and `https://` URLs,
    /// valid for `validity_secs` from `now`, with the current signing key;
    /// keeps it in the folder and rewrites the publisher file with it. The
    /// addresses and URLs are checked first, each error naming the one at
    /// fault. The new list always replaces the one kept before, even when
    /// signed within the same second.
    pub fn sign_mirror_list(
        &self,
        libp2p: Vec<String>,
        https: Vec<String>,
        validity_secs: u64,
        now: Timestamp,
    ) -> Result<SignedMirrorList, NewsroomError> {
        let _lock = self.lock()?;
        let state = self.state()?;
        let (cert_bytes, cert) = self.current_certificate(&state)?;
        let issued_at = match self.mirror_list()? {
            Some(old) => match decode_unverified::<MirrorList>(&old) {
                Ok(old) if old.issued_at >= now => old.issued_at.plus(1),
                _ => now,
            },
            None => now,
        };
        let list = MirrorList {
            format: FORMAT_VERSION,
            publisher: self.root_public(),
            certificate: CertId::of(&cert_bytes),
            issued_at,
            expires_at: issued_at.plus(validity_secs),
            libp2p,
            https,
        };
        // Before the key is unlocked: a typo costs no passphrase.
        list.validate()?;
        let signing = self.read_secret(&self.dir().join("signing.key"))?;
        if signing.public() != cert.signing_key {
            return Err(NewsroomError::Invalid {
                path: self.dir().join("signing.key"),
                reason: "the signing key does not match the current certificate".into(),
            });
        }
        let bytes = list.sign(&signing)?;
        // The newsroom's own policy checks what readers will: a revoked or
        // expired key signs no list they would take.
        self.policy()?
            .verify_mirror_list(&bytes, now)
            .map_err(|e| match e {
                e @ (PolicyError::KeyRevoked { .. }
                | PolicyError::CertificateExpired { .. }
                | PolicyError::CertificateNotYetValid { .. }) => NewsroomError::CannotSign(e),
                e => NewsroomError::Policy(e),
            })?;
        let path = self.mirror_list_path();
        files::write_atomic(&path, &bytes)?;
        let public_file = self.public_file_path();
        files::write_atomic(&public_file, self.public_file().to_toml().as_bytes())?;
        Ok(SignedMirrorList {
            list,
            bytes,
            path,
            public_file,
        })
    }
}
