//! Rotating and revoking the newsroom's signing keys with the root key.

use super::{Newsroom, NewsroomError, folder::write_toml};
use crate::files;
use crate::proto::{
    CertId, FORMAT_VERSION, KeyCertificate, REVOCATION_FORMAT_CUTOFF, Revocation, SecretKey,
    Timestamp, Verified, decode_unverified,
};

impl Newsroom {
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
        files::write_atomic(&cert_path, &bytes)?;
        // The new key goes in place before the state names its certificate;
        // the old key file is replaced whole, encrypted if it was.
        self.replace_secret("signing.key", &signing, "signing", seal)?;
        state.current_serial = serial;
        write_toml(&self.dir.join("state.toml"), &state)?;
        Ok(verified)
    }

    /// Revokes a signing key (given as its public key text, or its
    /// certificate serial) for everything signed from `effective_from` on
    /// and everything at a sequence number above the cut-off. The cut-off
    /// is `last_sequence`, or else the highest sequence number this
    /// newsroom's own record shows the key signed before `effective_from`
    /// (0 if none): a thief can backdate a signing time, but not take a
    /// number under the cut-off, whose slots the newsroom's bundles hold.
    /// Needs the root key.
    pub fn revoke(
        &self,
        key: &str,
        effective_from: Timestamp,
        last_sequence: Option<u64>,
        reason: &str,
        now: Timestamp,
    ) -> Result<Verified<Revocation>, NewsroomError> {
        let _lock = self.lock()?;
        let root = self.root_key()?;
        let certs: Vec<(CertId, KeyCertificate)> = self
            .certificates()?
            .iter()
            .filter_map(|b| Some((CertId::of(b), decode_unverified::<KeyCertificate>(b).ok()?)))
            .collect();
        let target = certs
            .iter()
            .map(|(_, c)| c)
            .find(|c| c.signing_key.to_string() == key.trim() || c.serial.to_string() == key.trim())
            .ok_or_else(|| NewsroomError::UnknownKey(key.to_owned()))?
            .clone();
        let last_sequence = match last_sequence {
            Some(n) => n,
            None => {
                let of_key: Vec<CertId> = certs
                    .iter()
                    .filter(|(_, c)| c.signing_key == target.signing_key)
                    .map(|(id, _)| *id)
                    .collect();
                let published = self.published()?;
                // A folder without every bundle it numbered (the offline
                // root's copy) cannot tell what the key signed.
                let issued = self.state()?.next_sequence.saturating_sub(1);
                if (published.len() as u64) < issued {
                    return Err(NewsroomError::CutOffUnknown {
                        issued,
                        found: published.len() as u64,
                    });
                }
                published
                    .iter()
                    .filter(|e| of_key.contains(&e.certificate) && e.signed_at < effective_from)
                    .map(|e| e.sequence)
                    .max()
                    .unwrap_or(0)
            }
        };
        let rev = Revocation {
            format: REVOCATION_FORMAT_CUTOFF,
            publisher: self.root_public,
            key: target.signing_key,
            effective_from,
            issued_at: now,
            reason: reason.to_owned(),
            last_sequence: Some(last_sequence),
        };
        // Readers keep a revocation only if it widens the one they have,
        // so a narrower one would be ignored by some and obeyed by others.
        let existing = self
            .revocations()?
            .iter()
            .filter_map(|b| decode_unverified::<Revocation>(b).ok())
            .find(|r| r.key == target.signing_key);
        if let Some(old) = existing
            && !rev.widens(&old)
        {
            return Err(NewsroomError::AlreadyRevoked {
                key: old.key.to_string(),
                effective_from: old.effective_from,
                last_sequence: old.last_sequence,
            });
        }
        rev.validate()?;
        let bytes = rev.sign(&root)?;
        let verified = self.policy()?.verify_revocation(&bytes)?;
        let path = self.dir.join("revocations").join(format!(
            "{}.rev",
            hex::encode(target.signing_key.as_bytes())
        ));
        files::write_atomic(&path, &bytes)?;
        Ok(verified)
    }
}
