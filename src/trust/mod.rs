//! The trust list: publisher files (name, root key, homepage, bootstrap
//! addresses, mirror list) kept as small TOML files in the data directory.
//!
//! A new data directory starts with the publishers shipped in the
//! repository's `keys/` folder. The demo newsroom is never among them: its
//! file lives in `keys/demo/`, is marked `demo = true`, and is trusted only
//! where a user adds it by hand (`kolokol trust add`) or in `kolokol demo`'s
//! own throwaway data directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::files::{self, FilesError};
use crate::proto::limits::MAX_CERTIFICATE_BYTES;
use crate::proto::mirrors::{MAX_MIRROR_LIST_BYTES, MirrorList};
use crate::proto::{KeyCertificate, PublicKey, TrustPolicy};
use crate::seal::Sealer;

pub mod share;

include!(concat!(env!("OUT_DIR"), "/bundled_keys.rs"));

/// Largest publisher file read, in bytes: room for a mirror list at its
/// limit as hex (64 KiB) and the other fields.
pub const MAX_PUBLISHER_FILE: u64 = 96 * 1024;
/// Most bootstrap addresses in one publisher file.
pub const MAX_BOOTSTRAP: usize = 32;

/// The demo newsroom's root public key. Its secret key is public
/// knowledge (derived in `newsroom::demo`, whose tests check the two
/// agree), so a publisher file with this key is the demo newsroom whatever
/// its flag says.
pub const DEMO_ROOT_KEY: PublicKey = PublicKey([
    0xaf, 0x62, 0x40, 0x2f, 0x9e, 0xca, 0xa6, 0x5f, 0x73, 0xcd, 0x63, 0x7a, 0xc6, 0xa7, 0xaf, 0xc9,
    0xbc, 0x15, 0x99, 0x6e, 0x65, 0xf3, 0xe8, 0xa0, 0x3c, 0x0a, 0x9c, 0x84, 0x24, 0xad, 0x3f, 0xde,
]);

/// Why the trust list could not be read or changed.
#[derive(Debug, Error)]
pub enum TrustError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A publisher file is not valid.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A publisher of that name is already trusted, with another key.
    #[error(
        "a publisher named {name:?} is already trusted with a different root key; remove it first"
    )]
    Conflict {
        /// The name.
        name: String,
    },
    /// That root key is already trusted under another name.
    #[error("root key {key} is already trusted as {existing:?}")]
    DuplicateKey {
        /// The key.
        key: PublicKey,
        /// The name it is trusted under.
        existing: String,
    },
    /// No publisher of that name.
    #[error("no trusted publisher is named {0:?}")]
    NotFound(String),
    /// A publisher file could not be read or written.
    #[error(transparent)]
    File(#[from] FilesError),
}

impl TrustError {
    /// Whether adding was refused because the name or the root key is
    /// already trusted (the other way round).
    pub fn is_already_trusted(&self) -> bool {
        matches!(self, Self::Conflict { .. } | Self::DuplicateKey { .. })
    }
}

/// One publisher as described in a `keys/*.toml` file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherFile {
    /// Short name: lower-case letters, digits and '-'; also the file name.
    pub name: String,
    /// The name shown to readers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The root public key, `ed25519:` and 64 hex digits.
    #[serde(with = "as_text")]
    pub root_key: PublicKey,
    /// The newsroom's own site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    /// Multiaddresses of nodes that carry this publisher.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bootstrap: Vec<String>,
    /// Marks the demo newsroom, whose secret key is public.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub demo: bool,
    /// The publisher's signed mirror list, as hex of its signed bytes (at
    /// most [`MAX_MIRROR_LIST_BYTES`]), so that a reader who adds the file
    /// learns the mirrors. Verified by the node that stores it, like any
    /// mirror list; here only its size, its encoding and its publisher are
    /// checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_list: Option<String>,
    /// The certificate that signs `mirror_list`, as hex of its signed bytes
    /// (at most `MAX_CERTIFICATE_BYTES`): a reader who adds the file before
    /// it has heard of the newsroom's keys can verify the list at once.
    /// Root-signed, so it is checked like one from anywhere else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_certificate: Option<String>,
}

mod as_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::proto::PublicKey;

    pub(super) fn serialize<S: Serializer>(k: &PublicKey, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(k)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PublicKey, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Longest display name, in bytes.
pub const MAX_DISPLAY_NAME: usize = 128;

/// Checks a display name: at most [`MAX_DISPLAY_NAME`] bytes, not blank,
/// and free of control characters and of the invisible formatting ones
/// (bidirectional controls, zero-width characters) with which an impostor
/// could make its name look like another newsroom's.
pub fn check_display_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_DISPLAY_NAME {
        return Err(format!(
            "display_name is {} bytes; at most {MAX_DISPLAY_NAME}",
            name.len()
        ));
    }
    if name.trim().is_empty() {
        return Err("display_name is blank".into());
    }
    if let Some(c) = name.chars().find(|&c| {
        c.is_control()
            || crate::proto::is_bidi_override(c)
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{061C}')
    }) {
        return Err(format!(
            "display_name contains the invisible or control character U+{:04X}",
            c as u32
        ));
    }
    Ok(())
}

/// Whether `name` is a valid publisher name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

impl PublisherFile {
    /// Parses and checks a publisher file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TrustError> {
        let invalid = |reason: String| TrustError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let file: PublisherFile =
            toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;
        if !valid_name(&file.name) {
            return Err(invalid(format!(
                "name {:?} must be 1 to 64 lower-case letters, digits or '-'",
                file.name
            )));
        }
        if let Some(d) = &file.display_name {
            check_display_name(d).map_err(invalid)?;
        }
        if file.bootstrap.len() > MAX_BOOTSTRAP {
            return Err(invalid(format!(
                "more than {MAX_BOOTSTRAP} bootstrap addresses"
            )));
        }
        file.mirror_list_bytes().map_err(invalid)?;
        file.mirror_certificate_bytes().map_err(invalid)?;
        Ok(file)
    }

    /// The signed bytes of the certificate of the file's mirror list, if
    /// it has one; why not when its text is too long, not hex, not a
    /// certificate, or another publisher's. Its signature is checked by the
    /// node that learns it.
    pub fn mirror_certificate_bytes(&self) -> Result<Option<Vec<u8>>, String> {
        let Some(text) = &self.mirror_certificate else {
            return Ok(None);
        };
        let text = text.trim();
        if text.len() > 2 * MAX_CERTIFICATE_BYTES {
            return Err(format!(
                "mirror_certificate is {} hex digits; at most {}",
                text.len(),
                2 * MAX_CERTIFICATE_BYTES
            ));
        }
        let bytes = hex::decode(text)
            .map_err(|e| format!("mirror_certificate is not hex of a certificate: {e}"))?;
        let cert = crate::proto::decode_unverified::<KeyCertificate>(&bytes)
            .map_err(|e| format!("mirror_certificate: {e}"))?;
        if cert.publisher != self.root_key {
            return Err(format!(
                "mirror_certificate is of publisher {}, not this file's root key",
                cert.publisher
            ));
        }
        Ok(Some(bytes))
    }

    /// The signed bytes of the file's mirror list, if it has one; why not
    /// when its text is too long, not hex, not a mirror list, or another
    /// publisher's. Its signature is not checked here (the node's trust
    /// policy does, with the publisher's certificates).
    pub fn mirror_list_bytes(&self) -> Result<Option<Vec<u8>>, String> {
        let Some(text) = &self.mirror_list else {
            return Ok(None);
        };
        let text = text.trim();
        if text.len() > 2 * MAX_MIRROR_LIST_BYTES {
            return Err(format!(
                "mirror_list is {} hex digits; at most {}",
                text.len(),
                2 * MAX_MIRROR_LIST_BYTES
            ));
        }
        let bytes = hex::decode(text)
            .map_err(|e| format!("mirror_list is not hex of a signed mirror list: {e}"))?;
        let list = crate::proto::decode_unverified::<MirrorList>(&bytes)
            .map_err(|e| format!("mirror_list: {e}"))?;
        if list.publisher != self.root_key {
            return Err(format!(
                "mirror_list is signed for publisher {}, not this file's root key",
                list.publisher
            ));
        }
        Ok(Some(bytes))
    }

    /// Sets the file's mirror list to `signed` (its signed bytes), with the
    /// certificate that signs it.
    pub fn set_mirror_list(&mut self, signed: &[u8], certificate: &[u8]) {
        self.mirror_list = Some(hex::encode(signed));
        self.mirror_certificate = Some(hex::encode(certificate));
    }

    /// Where the file says its publisher's stories are carried: its
    /// bootstrap addresses, then its mirror list's libp2p addresses and web
    /// trees. The list is read unverified (for showing before the file is
    /// trusted; the node verifies it before it uses it).
    pub fn mirror_addresses(&self) -> Vec<String> {
        let mut out = self.bootstrap.clone();
        if let Ok(Some(bytes)) = self.mirror_list_bytes()
            && let Ok(list) = crate::proto::decode_unverified::<MirrorList>(&bytes)
        {
            out.extend(list.libp2p);
            out.extend(list.https);
        }
        out
    }

    /// Reads and checks a publisher file.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let text = files::read_bounded_text(path, MAX_PUBLISHER_FILE)?;
        Self::parse(&text, path)
    }

    /// The TOML text of this file.
    pub fn to_toml(&self) -> String {
        let mut text = String::new();
        if self.demo {
            text.push_str("# DEMO ONLY: the secret key of this publisher is public. Never trust it for real news.\n");
        }
        text.push_str(&toml::to_string_pretty(self).unwrap_or_default());
        text
    }

    /// Whether this is the demo newsroom, by its flag or by its key (a copy
    /// with the flag removed is still the demo newsroom).
    pub fn is_demo(&self) -> bool {
        self.demo || self.root_key == DEMO_ROOT_KEY
    }

    /// The name for readers.
    pub fn shown_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }
}

/// The trust list in a data directory.
#[derive(Debug, Clone)]
pub struct TrustList {
    dir: PathBuf,
    /// Sealed, each file is encrypted and named by the keyed name of the
    /// publisher's name: the folder does not say which outlets are trusted.
    sealer: Option<Arc<Sealer>>,
}

/// The keyed-name domain of sealed publisher files.
const SEALED_DOMAIN: &[u8] = b"trust file";
/// The extension of sealed publisher files.
const SEALED_EXT: &str = "sealed";

impl TrustList {
    /// Opens the trust list under `data_dir`, creating it from the bundled
    /// publisher files the first time.
    pub fn open(data_dir: &Path) -> Result<Self, TrustError> {
        Self::open_in(&data_dir.join("trust"), None)
    }

    /// Opens the trust list in the folder `dir`, sealed when `sealer` is
    /// given, creating it from the bundled publisher files the first time.
    pub fn open_in(dir: &Path, sealer: Option<Arc<Sealer>>) -> Result<Self, TrustError> {
        let list = Self {
            dir: dir.to_owned(),
            sealer,
        };
        if !dir.exists() {
            files::create_private_dir_all(dir).map_err(|source| TrustError::Io {
                path: dir.to_owned(),
                source,
            })?;
            for (file_name, text) in BUNDLED_KEYS {
                let file = PublisherFile::parse(text, Path::new(file_name))?;
                if file.is_demo() {
                    continue;
                }
                list.write(&file.name, text)?;
            }
        }
        Ok(list)
    }

    /// Whether the files are sealed.
    pub fn is_sealed(&self) -> bool {
        self.sealer.is_some()
    }

    fn path_of(&self, name: &str) -> PathBuf {
        match &self.sealer {
            Some(s) => self.dir.join(format!(
                "{}.{SEALED_EXT}",
                hex::encode(s.name(SEALED_DOMAIN, name.as_bytes()))
            )),
            None => self.dir.join(format!("{name}.toml")),
        }
    }

    fn write(&self, name: &str, text: &str) -> Result<(), TrustError> {
        let path = self.path_of(name);
        match &self.sealer {
            Some(s) => {
                let file_name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let sealed = s
                    .seal_value(file_name.as_bytes(), name.as_bytes(), text.as_bytes())
                    .map_err(|e| TrustError::Invalid {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                files::write_private(&path, &sealed)?;
            }
            None => files::write_private(&path, text.as_bytes())?,
        }
        Ok(())
    }

    fn read_sealed(&self, s: &Sealer, path: &Path) -> Result<PublisherFile, TrustError> {
        let bytes = files::read_bounded(path, 2 * MAX_PUBLISHER_FILE)?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let invalid = |reason: &str| TrustError::Invalid {
            path: path.to_owned(),
            reason: reason.into(),
        };
        let (name, text) = s
            .open_value(file_name.as_bytes(), &bytes)
            .map_err(|_| invalid("does not open under this data directory's key"))?;
        let name = String::from_utf8(name).map_err(|_| invalid("damaged name"))?;
        let text = String::from_utf8(text).map_err(|_| invalid("not UTF-8 text"))?;
        PublisherFile::parse(&text, Path::new(&format!("{name}.toml")))
    }

    /// The folder holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every trusted publisher, sorted by name.
    pub fn list(&self) -> Result<Vec<PublisherFile>, TrustError> {
        let rd = fs::read_dir(&self.dir).map_err(|source| TrustError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|source| TrustError::Io {
                path: self.dir.clone(),
                source,
            })?;
            let path = entry.path();
            match &self.sealer {
                Some(s) if path.extension().is_some_and(|e| e == SEALED_EXT) => {
                    out.push(self.read_sealed(s, &path)?)
                }
                None if path.extension().is_some_and(|e| e == "toml") => {
                    out.push(PublisherFile::load(&path)?)
                }
                _ => {}
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Adds the publisher file at `path`. Adding the same file again is a
    /// no-op; a different key under a trusted name, or a trusted key under a
    /// new name, is refused.
    pub fn add(&self, path: &Path) -> Result<PublisherFile, TrustError> {
        let file = PublisherFile::load(path)?;
        self.add_file(&file)?;
        Ok(file)
    }

    /// Adds a publisher file already read; same rules as [`TrustList::add`].
    pub fn add_file(&self, file: &PublisherFile) -> Result<(), TrustError> {
        self.check_add(file)?;
        self.write(&file.name, &file.to_toml())
    }

    /// Whether [`TrustList::add_file`] would take `file`, without adding
    /// it: refused ([`TrustError::is_already_trusted`]) when another key is
    /// trusted under its name or its key under another name.
    pub fn check_add(&self, file: &PublisherFile) -> Result<(), TrustError> {
        for existing in self.list()? {
            if existing.name == file.name && existing.root_key != file.root_key {
                return Err(TrustError::Conflict {
                    name: file.name.clone(),
                });
            }
            if existing.root_key == file.root_key && existing.name != file.name {
                return Err(TrustError::DuplicateKey {
                    key: file.root_key,
                    existing: existing.name,
                });
            }
        }
        Ok(())
    }

    /// Removes the publisher named `name`.
    pub fn remove(&self, name: &str) -> Result<(), TrustError> {
        if !valid_name(name) {
            return Err(TrustError::NotFound(name.to_owned()));
        }
        let path = self.path_of(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(TrustError::NotFound(name.to_owned()))
            }
            Err(source) => Err(TrustError::Io { path, source }),
        }
    }

    /// A trust policy trusting every listed publisher.
    pub fn policy(&self) -> Result<TrustPolicy, TrustError> {
        policy_of(&self.list()?)
    }
}

/// A trust policy trusting exactly `files`.
pub fn policy_of(files: &[PublisherFile]) -> Result<TrustPolicy, TrustError> {
    let mut policy = TrustPolicy::new();
    for f in files {
        policy
            .trust(f.root_key, f.name.clone())
            .map_err(|e| TrustError::Invalid {
                path: PathBuf::from(format!("{}.toml", f.name)),
                reason: format!("root_key: {e}"),
            })?;
    }
    Ok(policy)
}

/// The publisher files shipped with this build (`keys/*.toml`).
pub fn bundled() -> Result<Vec<PublisherFile>, TrustError> {
    BUNDLED_KEYS
        .iter()
        .map(|(name, text)| PublisherFile::parse(text, Path::new(name)))
        .collect()
}
