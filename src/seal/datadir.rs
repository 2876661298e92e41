//! Opening a data directory, sealed or not: the one place that knows
//! where the store, the trust list, the identity and the settings live.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use super::keyfile::{Opened, WrappedKey};
use super::{KEY_FILE, SEALED_DIR, SealError, Sealer};
use crate::config::Config;
use crate::store::{Store, StoreConfig, StoreError};
use crate::trust::{TrustError, TrustList};

/// Where a passphrase comes from when a sealed directory is opened: asked
/// only then, so that a plain directory never prompts.
pub trait Passphrase {
    /// The passphrase, or why there is none.
    fn get(&self) -> Result<Zeroizing<String>, SealError>;
}

impl<F: Fn() -> Result<Zeroizing<String>, SealError>> Passphrase for F {
    fn get(&self) -> Result<Zeroizing<String>, SealError> {
        self()
    }
}

/// Largest sealed identity or settings file read.
const MAX_SMALL_SEALED: u64 = 2 * 1024 * 1024;
/// The sealed settings, inside [`SEALED_DIR`].
pub(crate) const CONFIG_FILE: &str = "config";
/// The sealed identity, inside [`SEALED_DIR`].
pub(crate) const IDENTITY_FILE: &str = "node.key";
/// The full-text index's folder. It is never converted: a conversion
/// removes it and the node rebuilds it from the store, so that a plain
/// index never outlives sealing.
pub(crate) const SEARCH_DIR: &str = "search";

/// An opened data directory: its path and, when sealed, the unlocked key.
#[derive(Clone)]
pub struct DataDir {
    root: PathBuf,
    sealer: Option<Arc<Sealer>>,
}

impl std::fmt::Debug for DataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDir")
            .field("root", &self.root)
            .field("sealed", &self.sealer.is_some())
            .finish()
    }
}

impl DataDir {
    /// Whether the directory at `root` is sealed.
    pub fn is_sealed(root: &Path) -> bool {
        root.join(SEALED_DIR).join(KEY_FILE).exists()
    }

    /// Opens the directory at `root`: first finishes or undoes a
    /// conversion a crash interrupted, then, if it is sealed, unlocks it
    /// with the passphrase `passphrase` gives. The duress passphrase wipes
    /// the directory and is then reported as a wrong one.
    pub fn open(root: &Path, passphrase: &dyn Passphrase) -> Result<Self, SealError> {
        super::recover(root)?;
        if !Self::is_sealed(root) {
            return Ok(Self::plain_unchecked(root));
        }
        let wrapped = WrappedKey::read(&root.join(SEALED_DIR).join(KEY_FILE))?;
        let pass = passphrase.get()?;
        Self::unlock(root, &wrapped, pass.as_bytes())
    }

    /// Opens a sealed directory with `passphrase` (the gateway's lock page
    /// and the prompt come here).
    pub fn unlock_with(root: &Path, passphrase: &[u8]) -> Result<Self, SealError> {
        super::recover(root)?;
        if !Self::is_sealed(root) {
            return Err(SealError::State(format!(
                "{} is not sealed",
                root.display()
            )));
        }
        let wrapped = WrappedKey::read(&root.join(SEALED_DIR).join(KEY_FILE))?;
        Self::unlock(root, &wrapped, passphrase)
    }

    fn unlock(root: &Path, wrapped: &WrappedKey, passphrase: &[u8]) -> Result<Self, SealError> {
        match wrapped.open(passphrase)? {
            Opened::Key(key) => Ok(Self {
                root: root.to_owned(),
                sealer: Some(Arc::new(Sealer::new(&key))),
            }),
            Opened::Duress => {
                // Told apart from a wrong passphrase by nothing the person
                // watching can see.
                let _ = super::wipe(root);
                Err(SealError::WrongPassphrase)
            }
        }
    }

    /// Opens a directory that must not be sealed (tests, the demo's own
    /// throwaway directory).
    pub fn plain(root: &Path) -> Result<Self, SealError> {
        super::recover(root)?;
        if Self::is_sealed(root) {
            return Err(SealError::State(format!(
                "{} is sealed: unlock it first",
                root.display()
            )));
        }
        Ok(Self::plain_unchecked(root))
    }

    /// A directory already unlocked (conversions, which hold its lock).
    pub(crate) fn from_parts(root: &Path, sealer: Option<Arc<Sealer>>) -> Self {
        Self {
            root: root.to_owned(),
            sealer,
        }
    }

    fn plain_unchecked(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            sealer: None,
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The unlocked key, when sealed.
    pub fn sealer(&self) -> Option<Arc<Sealer>> {
        self.sealer.clone()
    }

    /// Whether it is sealed.
    pub fn sealed(&self) -> bool {
        self.sealer.is_some()
    }

    fn part(&self, name: &str) -> PathBuf {
        match self.sealer {
            Some(_) => self.root.join(SEALED_DIR).join(name),
            None => self.root.join(name),
        }
    }

    /// The store's folder.
    pub fn store_path(&self) -> PathBuf {
        self.part("store")
    }

    /// Opens the store.
    pub fn open_store(&self, config: StoreConfig) -> Result<Store, StoreError> {
        Store::open_with(&self.store_path(), config, self.sealer.clone())
    }

    /// Where the full-text index lives: beside the store, sealed with it.
    pub fn search_path(&self) -> PathBuf {
        self.part(SEARCH_DIR)
    }

    /// Opens the full-text index, creating it (empty) the first time; the
    /// node's indexer fills it from the store.
    pub fn open_search(&self) -> Result<crate::search::Search, crate::search::SearchError> {
        crate::search::Search::open(&self.search_path(), self.sealer.clone())
    }

    /// Opens the trust list.
    pub fn trust(&self) -> Result<TrustList, TrustError> {
        TrustList::open_in(&self.part("trust"), self.sealer.clone())
    }

    /// The node's persistent libp2p identity, created the first time.
    pub fn identity(&self) -> Result<libp2p::identity::Keypair, SealError> {
        let Some(s) = &self.sealer else {
            return crate::net::load_identity(&self.root.join("node.key"))
                .map_err(|e| SealError::KeyFile(e.to_string()));
        };
        let path = self.part(IDENTITY_FILE);
        let bytes = if path.exists() {
            let sealed = crate::files::read_bounded(&path, MAX_SMALL_SEALED)?;
            let (_, plain) = s
                .open_value(IDENTITY_FILE.as_bytes(), &sealed)
                .map_err(|_| SealError::Damaged)?;
            Zeroizing::new(plain)
        } else {
            let plain = Zeroizing::new(
                libp2p::identity::Keypair::generate_ed25519()
                    .to_protobuf_encoding()
                    .map_err(|e| SealError::KeyFile(e.to_string()))?,
            );
            let sealed =
                s.seal_value(IDENTITY_FILE.as_bytes(), IDENTITY_FILE.as_bytes(), &plain)?;
            crate::files::write_private(&path, &sealed)?;
            plain
        };
        libp2p::identity::Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
            SealError::KeyFile(format!("{}: not a node identity: {e}", path.display()))
        })
    }

    /// The settings: `config.toml` (or `file`, when given), over the
    /// sealed settings when the directory is sealed.
    pub fn config(&self, file: Option<&Path>) -> Result<Config, SealError> {
        let plain_path = file
            .map(Path::to_owned)
            .unwrap_or_else(|| self.root.join("config.toml"));
        let sealed = self.sealed_config_text()?;
        Ok(Config::load_layered(
            sealed.as_ref().map(|s| s.as_str()),
            &plain_path,
        )?)
    }

    /// The sealed settings' text, if there are any.
    pub(crate) fn sealed_config_text(&self) -> Result<Option<Zeroizing<String>>, SealError> {
        let Some(s) = &self.sealer else {
            return Ok(None);
        };
        let path = self.part(CONFIG_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let sealed = crate::files::read_bounded(&path, MAX_SMALL_SEALED)?;
        let (_, plain) = s
            .open_value(CONFIG_FILE.as_bytes(), &sealed)
            .map_err(|_| SealError::Damaged)?;
        let text = String::from_utf8(plain).map_err(|_| SealError::Damaged)?;
        Ok(Some(Zeroizing::new(text)))
    }
}
