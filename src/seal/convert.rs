//! Converting a data directory between plain and sealed, safely across a
//! crash: killed at any moment, it is afterwards the old directory or the
//! new one, never damaged and never half of each.
//!
//! A conversion builds the new form whole in a staging folder
//! (`.stage-seal`, `.stage-unseal`) beside the old, syncs it, and then
//! writes `PLAN` in it: the list of renames and removals that put it in
//! place. Writing the plan is the moment of commit. Every step of a plan
//! can be done again without harm, so whoever opens the directory next
//! (`recover`, run by every opening) finishes a plan it finds, and throws
//! away a staging folder that has none.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::datadir::{CONFIG_FILE, IDENTITY_FILE, SEARCH_DIR};
use super::keyfile::{Opened, WrappedKey};
use super::wipe::remove_tree;
use super::{DataDir, DataKey, KEY_FILE, SEALED_DIR, SealError, Sealer, io};
use crate::config::Config;
use crate::newsroom::keyfile::KdfParams;
use crate::store::{Store, StoreConfig};
use crate::trust::TrustList;

/// Names of staging folders start with this.
pub const STAGE_PREFIX: &str = ".stage-";
const PLAN: &str = "PLAN";
const LOCK: &str = ".lock";

/// One step of a plan; paths are relative to the data directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "do", rename_all = "lowercase", deny_unknown_fields)]
enum Step {
    /// Put `from` at `to`, replacing what is there (overwritten first when
    /// `scrub`, since it may be plain text).
    Move {
        from: String,
        to: String,
        scrub: bool,
    },
    /// Remove `path`, overwriting its files first when `scrub`.
    Remove { path: String, scrub: bool },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Plan {
    steps: Vec<Step>,
}

/// The directory's conversion lock: held while converting or recovering,
/// so that two processes never work on one staging folder.
struct DirLock(#[allow(dead_code)] fs::File);

fn lock(root: &Path) -> Result<DirLock, SealError> {
    crate::files::create_private_dir_all(root).map_err(io(root))?;
    let path = root.join(LOCK);
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?
    };
    match file.try_lock() {
        Ok(()) => Ok(DirLock(file)),
        Err(fs::TryLockError::WouldBlock) => Err(SealError::Busy(root.to_owned())),
        Err(fs::TryLockError::Error(e)) => Err(io(&path)(e)),
    }
}

fn stages(root: &Path) -> Result<Vec<PathBuf>, SealError> {
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(root)(e)),
    };
    Ok(rd
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(STAGE_PREFIX))
        .map(|e| e.path())
        .collect())
}

/// Finishes a conversion whose plan was written, and removes a staging
/// folder that has none (the conversion did not commit: the old form is
/// whole). Cheap when there is nothing to do: no lock is taken.
pub fn recover(root: &Path) -> Result<(), SealError> {
    if stages(root)?.is_empty() {
        return Ok(());
    }
    let _lock = lock(root)?;
    recover_locked(root)
}

fn recover_locked(root: &Path) -> Result<(), SealError> {
    for stage in stages(root)? {
        let plan_path = stage.join(PLAN);
        if plan_path.exists() {
            let text = crate::files::read_bounded_text(&plan_path, 64 * 1024)?;
            let plan: Plan = toml::from_str(&text).map_err(|e| {
                SealError::State(format!("{}: {}", plan_path.display(), e.message()))
            })?;
            run(root, &plan)?;
            tracing::info!("finished an interrupted conversion of the data directory");
        }
        // What is left of a staging folder may be plain text.
        remove_tree(&stage, true)?;
    }
    crate::files::sync_parent(&root.join(LOCK))?;
    Ok(())
}

fn run(root: &Path, plan: &Plan) -> Result<(), SealError> {
    for step in &plan.steps {
        match step {
            Step::Move { from, to, scrub } => {
                let (from, to) = (root.join(from), root.join(to));
                if fs::symlink_metadata(&from).is_err() {
                    continue; // done before
                }
                if fs::symlink_metadata(&to).is_ok() && (*scrub || to.is_dir()) {
                    remove_tree(&to, *scrub)?;
                }
                fs::rename(&from, &to).map_err(io(&to))?;
                crate::files::sync_parent(&to)?;
            }
            Step::Remove { path, scrub } => {
                remove_tree(&root.join(path), *scrub)?;
            }
        }
    }
    crate::files::sync_parent(&root.join(LOCK))?;
    Ok(())
}

fn new_stage(root: &Path, name: &str) -> Result<PathBuf, SealError> {
    let stage = root.join(format!("{STAGE_PREFIX}{name}"));
    remove_tree(&stage, true)?;
    crate::files::create_private_dir_all(&stage).map_err(io(&stage))?;
    Ok(stage)
}

/// Makes everything written under `dir` durable.
fn sync_tree(dir: &Path) -> Result<(), SealError> {
    let d = fs::File::open(dir).map_err(io(dir))?;
    rustix::fs::syncfs(&d).map_err(|e| io(dir)(e.into()))
}

fn commit(root: &Path, stage: &Path, steps: Vec<Step>) -> Result<(), SealError> {
    sync_tree(stage)?;
    let plan = Plan { steps };
    let text = toml::to_string(&plan).map_err(|e| SealError::State(e.to_string()))?;
    crate::files::write_private(&stage.join(PLAN), text.as_bytes())?;
    run(root, &plan)?;
    remove_tree(stage, true)?;
    Ok(())
}

/// What a conversion carried over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converted {
    /// Store entries.
    pub entries: u64,
    /// Blob files.
    pub files: u64,
    /// Publisher files.
    pub publishers: usize,
}

fn rel(stage: &Path, name: &str) -> String {
    format!(
        "{}/{name}",
        stage
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    )
}

/// Seals the plain data directory at `root` under `passphrase` (and
/// `duress`, the passphrase that wipes), in place. A directory with no
/// store yet becomes an empty sealed one (`kolokol node --sealed`).
pub fn seal(
    root: &Path,
    passphrase: &[u8],
    duress: Option<&[u8]>,
    params: KdfParams,
    store_config: &StoreConfig,
) -> Result<Converted, SealError> {
    let _lock = lock(root)?;
    recover_locked(root)?;
    if DataDir::is_sealed(root) {
        return Err(SealError::State(format!(
            "{} is sealed already",
            root.display()
        )));
    }
    // The old store first: while a node runs on it, nothing is started.
    let old = match root.join("store").exists() {
        true => Some(Store::open(&root.join("store"), store_config.clone())?),
        false => None,
    };
    let key = DataKey::random();
    let wrapped = WrappedKey::wrap(&key, passphrase, duress, params)?;
    let sealer = Arc::new(Sealer::new(&key));
    let stage = new_stage(root, "seal")?;
    let sealed = stage.join(SEALED_DIR);
    crate::files::create_private_dir_all(&sealed).map_err(io(&sealed))?;
    let mut done = Converted::default();
    if let Some(old) = old {
        let c = old.copy_to(&sealed.join("store"), Some(sealer.clone()))?;
        done.entries = c.entries;
        done.files = c.files;
    }
    if root.join("trust").exists() {
        let from = TrustList::open(root)?;
        let to = TrustList::open_in(&sealed.join("trust"), Some(sealer.clone()))?;
        // A fresh list starts with the bundled files: replaced by the
        // directory's own, which may have removed some.
        for p in to.list()? {
            to.remove(&p.name)?;
        }
        for p in from.list()? {
            to.add_file(&p)?;
            done.publishers += 1;
        }
    }
    let identity = root.join("node.key");
    if identity.exists() {
        let plain = crate::files::read_bounded_secret(&identity, 4096)?;
        let s = sealer.seal_value(IDENTITY_FILE.as_bytes(), IDENTITY_FILE.as_bytes(), &plain)?;
        crate::files::write_private(&sealed.join(IDENTITY_FILE), &s)?;
    }
    let mut steps = vec![Step::Move {
        from: rel(&stage, SEALED_DIR),
        to: SEALED_DIR.into(),
        scrub: false,
    }];
    let config = root.join("config.toml");
    if config.exists() {
        let text = crate::files::read_bounded_text(&config, 1024 * 1024)?;
        let parsed = Config::load_file(&config)?;
        let s = sealer.seal_value(CONFIG_FILE.as_bytes(), b"config.toml", text.as_bytes())?;
        crate::files::write_private(&sealed.join(CONFIG_FILE), &s)?;
        crate::files::write_private(
            &stage.join("config.toml"),
            parsed.unlocking_part().as_bytes(),
        )?;
        steps.push(Step::Move {
            from: rel(&stage, "config.toml"),
            to: "config.toml".into(),
            scrub: true,
        });
    }
    crate::files::write_private(&sealed.join(KEY_FILE), wrapped.to_toml().as_bytes())?;
    // The plain index goes with the plain store; the node indexes the
    // sealed store again into a sealed index.
    for path in ["store", "trust", "node.key", SEARCH_DIR] {
        steps.push(Step::Remove {
            path: path.into(),
            scrub: true,
        });
    }
    commit(root, &stage, steps)?;
    Ok(done)
}

/// Turns the sealed data directory at `root` back into a plain one, for
/// those who want it; `passphrase` must open it.
pub fn unseal(
    root: &Path,
    passphrase: &[u8],
    store_config: &StoreConfig,
) -> Result<Converted, SealError> {
    let lock_guard = lock(root)?;
    recover_locked(root)?;
    if !DataDir::is_sealed(root) {
        return Err(SealError::State(format!(
            "{} is not sealed",
            root.display()
        )));
    }
    let wrapped = WrappedKey::read(&root.join(SEALED_DIR).join(KEY_FILE))?;
    let key = match wrapped.open(passphrase)? {
        Opened::Key(k) => k,
        Opened::Duress => {
            drop(lock_guard);
            let _ = super::wipe(root);
            return Err(SealError::WrongPassphrase);
        }
    };
    let sealer = Arc::new(Sealer::new(&key));
    let opened = DataDir::from_parts(root, Some(sealer.clone()));
    let sealed_store = root.join(SEALED_DIR).join("store");
    let old = match sealed_store.exists() {
        true => Some(Store::open_with(
            &sealed_store,
            store_config.clone(),
            Some(sealer.clone()),
        )?),
        false => None,
    };
    let stage = new_stage(root, "unseal")?;
    let mut done = Converted::default();
    if let Some(old) = old {
        let c = old.copy_to(&stage.join("store"), None)?;
        done.entries = c.entries;
        done.files = c.files;
    }
    let sealed_trust = root.join(SEALED_DIR).join("trust");
    if sealed_trust.exists() {
        let from = TrustList::open_in(&sealed_trust, Some(sealer.clone()))?;
        let to = TrustList::open_in(&stage.join("trust"), None)?;
        for p in to.list()? {
            to.remove(&p.name)?;
        }
        for p in from.list()? {
            to.add_file(&p)?;
            done.publishers += 1;
        }
    }
    let mut steps = Vec::new();
    for name in ["store", "trust"] {
        if stage.join(name).exists() {
            steps.push(Step::Move {
                from: rel(&stage, name),
                to: name.into(),
                scrub: false,
            });
        }
    }
    if root.join(SEALED_DIR).join(IDENTITY_FILE).exists() {
        let keypair = opened.identity()?;
        let bytes = keypair
            .to_protobuf_encoding()
            .map_err(|e| SealError::KeyFile(e.to_string()))?;
        crate::files::write_private(&stage.join("node.key"), &bytes)?;
        steps.push(Step::Move {
            from: rel(&stage, "node.key"),
            to: "node.key".into(),
            scrub: false,
        });
    }
    if let Some(text) = opened.sealed_config_text()? {
        // The plain settings file of a sealed directory lies over the
        // sealed one; unsealed, the two become one file again.
        let out = Config::layered_text(&text, &root.join("config.toml"))?;
        crate::files::write_private(&stage.join("config.toml"), out.as_bytes())?;
        steps.push(Step::Move {
            from: rel(&stage, "config.toml"),
            to: "config.toml".into(),
            scrub: false,
        });
    }
    steps.push(Step::Remove {
        path: SEALED_DIR.into(),
        scrub: false,
    });
    commit(root, &stage, steps)?;
    Ok(done)
}

/// Wraps the data key of the sealed directory at `root` anew: another
/// passphrase, or a duress passphrase set or changed. Nothing else is
/// rewritten.
pub fn rewrap(
    root: &Path,
    old: &[u8],
    new: &[u8],
    duress: Option<&[u8]>,
    params: KdfParams,
) -> Result<(), SealError> {
    let _lock = lock(root)?;
    recover_locked(root)?;
    let path = root.join(SEALED_DIR).join(KEY_FILE);
    let key = match WrappedKey::read(&path)?.open(old)? {
        Opened::Key(k) => k,
        Opened::Duress => {
            drop(_lock);
            let _ = super::wipe(root);
            return Err(SealError::WrongPassphrase);
        }
    };
    let wrapped = WrappedKey::wrap(&key, new, duress, params)?;
    crate::files::write_private(&path, wrapped.to_toml().as_bytes())?;
    Ok(())
}

/// Rewrites the store of the opened directory `dir` into fresh files and
/// puts them in place of the old ones, crash-safely: what was removed
/// from it (`kolokol forget`) no longer lies in sled's old segments.
/// `store` is that store, open; it is closed before the swap.
pub fn rewrite_store(dir: &DataDir, store: Store) -> Result<crate::store::Copied, SealError> {
    let root = dir.root();
    let _lock = lock(root)?;
    recover_locked(root)?;
    let stage = new_stage(root, "rewrite")?;
    let copied = store.copy_to(&stage.join("store"), dir.sealer())?;
    store.flush()?;
    drop(store);
    let to = if dir.sealed() {
        format!("{SEALED_DIR}/store")
    } else {
        "store".into()
    };
    // The old plain store is overwritten as it goes: it held what was
    // forgotten. A sealed one is noise without its entries' names.
    // The index holds the forgotten stories' words: it goes, and the node
    // indexes the rewritten store again.
    let search = if dir.sealed() {
        format!("{SEALED_DIR}/{SEARCH_DIR}")
    } else {
        SEARCH_DIR.into()
    };
    commit(
        root,
        &stage,
        vec![
            Step::Move {
                from: rel(&stage, "store"),
                to,
                scrub: !dir.sealed(),
            },
            Step::Remove {
                path: search,
                scrub: !dir.sealed(),
            },
        ],
    )?;
    Ok(copied)
}
