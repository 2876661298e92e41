//! Converting a newsroom folder's secret keys between plain and encrypted
//! files.

use super::keyfile::KeyFile;
use super::{Newsroom, NewsroomError};

/// The secret key files a folder may hold, with their roles.
const KEY_FILES: [(&str, &str); 3] = [
    ("root.key", "root"),
    ("signing.key", "signing"),
    ("signing.key.pending", "pending signing"),
];

/// What a conversion did to one key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The file name in the folder.
    pub file: &'static str,
    /// False when the file was already in the wanted form.
    pub changed: bool,
}

impl Newsroom {
    /// Encrypts every plain secret key file in the folder under the
    /// passphrase the newsroom's [`super::Unlock`] gives. Each file is
    /// replaced whole (a new file, then a rename), so an interruption
    /// leaves either the old file or the new one.
    pub fn encrypt_keys(&self) -> Result<Vec<Converted>, NewsroomError> {
        let seal = self
            .unlock
            .as_ref()
            .ok_or_else(|| super::keyfile::KeyFileError::NoPassphrase(self.dir.clone()))?;
        self.convert(true, Some(seal))
    }

    /// Decrypts every encrypted secret key file in the folder, asking for
    /// the passphrase, and writes it back as a plain file.
    pub fn decrypt_keys(&self) -> Result<Vec<Converted>, NewsroomError> {
        self.convert(false, None)
    }

    fn convert(
        &self,
        encrypt: bool,
        seal: Option<&super::Unlock>,
    ) -> Result<Vec<Converted>, NewsroomError> {
        let _lock = self.lock()?;
        // Every key is read (and so unlocked) before any is rewritten: a
        // wrong passphrase then changes nothing.
        let mut keys = Vec::new();
        for (file, role) in KEY_FILES {
            let path = self.dir.join(file);
            if !path.exists() {
                continue;
            }
            let was_encrypted = KeyFile::read(&path)?.is_encrypted();
            if was_encrypted == encrypt {
                keys.push((file, role, None));
            } else {
                keys.push((file, role, Some(self.read_secret(&path)?)));
            }
        }
        let mut out = Vec::new();
        for (file, role, key) in keys {
            match key {
                Some(key) => {
                    self.replace_secret(file, &key, role, seal)?;
                    tracing::info!(file, encrypt, "key file converted");
                    out.push(Converted {
                        file,
                        changed: true,
                    });
                }
                None => out.push(Converted {
                    file,
                    changed: false,
                }),
            }
        }
        Ok(out)
    }
}
