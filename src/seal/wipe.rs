//! Destroying a data directory: the wrapped key first, then the rest.
//!
//! The key file is overwritten with random bytes, synced, unlinked and its
//! folder synced, which takes milliseconds whatever the store's size; from
//! then on the sealed store is noise to anyone, the owner included. What a
//! wipe cannot reach is said in docs/threat-model.md: copies in the
//! browser's memory, swap, file-system journals and flash cells that wear
//! levelling moved aside.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::RngCore;

use super::{KEY_FILE, SEALED_DIR, SealError, io};

/// What a wipe did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WipeReport {
    /// Whether there was a wrapped key to destroy (the directory was sealed).
    pub key_destroyed: bool,
    /// How long destroying the key took: after this the store was unreadable.
    pub key_time: Duration,
    /// Files removed after it.
    pub files_removed: u64,
    /// How long the whole wipe took.
    pub total_time: Duration,
}

/// Overwrites a file with `fill` bytes, in place, and syncs it: on file
/// systems that write in place the old bytes are gone from the disk.
fn overwrite(path: &Path, random: bool) -> Result<(), SealError> {
    let len = fs::metadata(path).map_err(io(path))?.len();
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        if random {
            rand::rngs::OsRng.fill_bytes(&mut buf[..n]);
        }
        f.write_all(&buf[..n]).map_err(io(path))?;
        left -= n as u64;
    }
    f.sync_all().map_err(io(path))
}

/// Destroys the wrapped data key of the sealed directory at `root`:
/// overwrite, sync, unlink, sync the folder. Whether there was one.
pub fn destroy_key(root: &Path) -> Result<bool, SealError> {
    let path = root.join(SEALED_DIR).join(KEY_FILE);
    if !path.exists() {
        return Ok(false);
    }
    overwrite(&path, true)?;
    fs::remove_file(&path).map_err(io(&path))?;
    crate::files::sync_parent(&path)?;
    Ok(true)
}

/// Removes `path` (a file or a folder, recursively), overwriting every
/// file first when `scrub` (for plain text that must not stay on disk).
/// Symbolic links are removed, never followed. How many files went.
pub(crate) fn remove_tree(path: &Path, scrub: bool) -> Result<u64, SealError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(path)(e)),
    };
    if meta.is_dir() {
        let mut n = 0;
        for entry in fs::read_dir(path).map_err(io(path))? {
            n += remove_tree(&entry.map_err(io(path))?.path(), scrub)?;
        }
        fs::remove_dir(path).map_err(io(path))?;
        Ok(n)
    } else {
        if scrub && meta.is_file() {
            overwrite(path, false)?;
        }
        fs::remove_file(path).map_err(io(path))?;
        Ok(1)
    }
}

/// Everything Kolokol keeps in a data directory, by name: a wipe removes
/// these and leaves anything else the owner put there.
const OWN: &[&str] = &[
    SEALED_DIR,
    "store",
    "search",
    "trust",
    "node.key",
    "config.toml",
    "control.token",
    "node.toml",
    "front",
    ".lock",
];

/// Wipes the data directory at `root`: the wrapped key first (if sealed),
/// then every file Kolokol keeps there, the plain ones overwritten first;
/// the directory itself goes too when nothing else is left in it.
pub fn wipe(root: &Path) -> Result<WipeReport, SealError> {
    let started = Instant::now();
    let key_destroyed = destroy_key(root)?;
    let key_time = started.elapsed();
    let mut files_removed = 0;
    let entries = match fs::read_dir(root) {
        Ok(rd) => rd.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(root)(e)),
    };
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let own = OWN.contains(&name.as_str()) || name.starts_with(super::convert::STAGE_PREFIX);
        if !own {
            continue;
        }
        // Sealed parts are noise once the key is gone: removed, not
        // overwritten, which for a large store would take minutes.
        let scrub = name != SEALED_DIR;
        files_removed += remove_tree(&path, scrub)?;
    }
    if fs::read_dir(root).is_ok_and(|mut rd| rd.next().is_none()) {
        let _ = fs::remove_dir(root);
    }
    Ok(WipeReport {
        key_destroyed,
        key_time,
        files_removed,
        total_time: started.elapsed(),
    })
}
