//! Blob bytes, one file per blob under `STORE/blobs/`, named by hash.
//!
//! Blobs live beside sled rather than in it: sled 0.34 keeps the space of
//! large deleted values (measured here: six rounds of storing and deleting
//! 4 MB of 100 KiB values left 23 MB on disk and no live data), so a quota
//! measured on sled's size could never hold. A file is gone from the disk
//! when it is removed. The index in sled says which blobs belong to which
//! bundle; a file nobody refers to (left by a crash between writing a blob
//! and storing its bundle) is removed when the store opens.
//!
//! In a sealed store a file is named by the blob's keyed name and holds
//! it sealed in chunks (`Sealer::seal_file`), padded, so neither names
//! nor sizes match a known image; its plain hash is inside.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::StoreError;
use crate::proto::BlobHash;
use crate::seal::Sealer;

/// Disk space a blob is counted for: its length rounded up to 4 KiB blocks.
pub(crate) fn disk_cost(len: u64) -> u64 {
    len.div_ceil(4096) * 4096
}

pub(crate) enum Blobs {
    Files {
        dir: PathBuf,
        sealer: Option<Arc<Sealer>>,
    },
    Memory(RwLock<HashMap<BlobHash, Vec<u8>>>),
}

/// What reading a blob file gives: the hash inside (sealed files only),
/// the blob's whole length, and the bytes read.
type FileRead = (Option<BlobHash>, u64, Vec<u8>);

/// The keyed-name domain of blob files.
const FILE_DOMAIN: &[u8] = b"blob file";

fn sealed_damage(path: &Path) -> StoreError {
    StoreError::Corrupt(format!(
        "{} does not open under this store's key",
        path.display()
    ))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Io {
        path: path.to_owned(),
        source: e,
    }
}

impl Blobs {
    pub(crate) fn open(dir: &Path, sealer: Option<Arc<Sealer>>) -> Result<Self, StoreError> {
        crate::files::create_private_dir_all(dir).map_err(io(dir))?;
        Ok(Blobs::Files {
            dir: dir.to_owned(),
            sealer,
        })
    }

    pub(crate) fn memory() -> Self {
        Blobs::Memory(RwLock::new(HashMap::new()))
    }

    /// A blob's file name: its hash, or sealed, its keyed name.
    fn file_name(sealer: &Option<Arc<Sealer>>, hash: &BlobHash) -> String {
        match sealer {
            Some(s) => hex::encode(s.name(FILE_DOMAIN, hash.as_bytes())),
            None => hash.to_string(),
        }
    }

    fn path(dir: &Path, sealer: &Option<Arc<Sealer>>, hash: &BlobHash) -> PathBuf {
        let name = Self::file_name(sealer, hash);
        dir.join(&name[..2]).join(name)
    }

    /// Reads part of a file: the blob's hash as the file says (sealed
    /// files carry it), its whole length, and the bytes.
    fn read_file(
        path: &Path,
        sealer: &Option<Arc<Sealer>>,
        offset: u64,
        len: u64,
    ) -> Result<Option<FileRead>, StoreError> {
        use std::io::{Read, Seek, SeekFrom};
        use std::os::unix::fs::FileExt;
        let mut f = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(path)(e)),
        };
        let total = f.metadata().map_err(io(path))?.len();
        match sealer {
            Some(s) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let (id, total, bytes) = s
                    .open_file_range(name.as_bytes(), total, offset, len, |at, buf| {
                        f.read_exact_at(buf, at)
                    })
                    .map_err(|_| sealed_damage(path))?;
                Ok(Some((Some(BlobHash(id)), total, bytes)))
            }
            None => {
                let start = offset.min(total);
                let n = len.min(total - start);
                f.seek(SeekFrom::Start(start)).map_err(io(path))?;
                let mut buf = vec![0u8; n as usize];
                f.read_exact(&mut buf).map_err(io(path))?;
                Ok(Some((None, total, buf)))
            }
        }
    }

    pub(crate) fn contains(&self, hash: &BlobHash) -> Result<bool, StoreError> {
        match self {
            Blobs::Files { dir, sealer } => Ok(Self::path(dir, sealer, hash).exists()),
            Blobs::Memory(m) => Ok(m
                .read()
                .map_err(|_| StoreError::Poisoned)?
                .contains_key(hash)),
        }
    }

    pub(crate) fn get(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Blobs::Files { dir, sealer } => {
                let p = Self::path(dir, sealer, hash);
                if sealer.is_none() {
                    return match fs::read(&p) {
                        Ok(b) => Ok(Some(b)),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                        Err(e) => Err(io(&p)(e)),
                    };
                }
                Ok(self.get_range(hash, 0, u64::MAX)?.map(|(_, b)| b))
            }
            Blobs::Memory(m) => Ok(m
                .read()
                .map_err(|_| StoreError::Poisoned)?
                .get(hash)
                .cloned()),
        }
    }

    /// Up to `len` bytes of a blob from `offset`, and its whole size,
    /// reading only that part of a file.
    pub(crate) fn get_range(
        &self,
        hash: &BlobHash,
        offset: u64,
        len: u64,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        match self {
            Blobs::Files { dir, sealer } => {
                let p = Self::path(dir, sealer, hash);
                match Self::read_file(&p, sealer, offset, len)? {
                    None => Ok(None),
                    // A sealed file must say it holds the blob it is named for.
                    Some((Some(id), _, _)) if id != *hash => Err(sealed_damage(&p)),
                    Some((_, total, bytes)) => Ok(Some((total, bytes))),
                }
            }
            Blobs::Memory(_) => Ok(self.get(hash)?.map(|b| {
                let total = b.len() as u64;
                let start = offset.min(total) as usize;
                let end = offset.saturating_add(len).min(total) as usize;
                (total, b[start..end].to_vec())
            })),
        }
    }

    /// Writes a blob unless it is there already; not yet durable (see
    /// [`Blobs::sync`]). Returns whether it wrote.
    pub(crate) fn write(&self, hash: &BlobHash, bytes: &[u8]) -> Result<bool, StoreError> {
        match self {
            Blobs::Files { dir, sealer } => {
                let p = Self::path(dir, sealer, hash);
                if p.exists() {
                    return Ok(false);
                }
                let parent = p.parent().unwrap_or(dir);
                crate::files::create_private_dir_all(parent).map_err(io(parent))?;
                let tmp = p.with_extension("tmp");
                let sealed;
                let bytes = match sealer {
                    Some(s) => {
                        let name = Self::file_name(sealer, hash);
                        sealed = s
                            .seal_file(name.as_bytes(), hash.as_bytes(), bytes)
                            .map_err(|e| StoreError::Corrupt(format!("sealing a blob: {e}")))?;
                        &sealed
                    }
                    None => bytes,
                };
                {
                    let mut f = crate::files::create_private_file(&tmp).map_err(io(&tmp))?;
                    f.write_all(bytes).map_err(io(&tmp))?;
                }
                fs::rename(&tmp, &p).map_err(io(&p))?;
                Ok(true)
            }
            Blobs::Memory(m) => {
                let mut m = m.write().map_err(|_| StoreError::Poisoned)?;
                Ok(m.insert(*hash, bytes.to_vec()).is_none())
            }
        }
    }

    /// Makes every blob written so far durable: one `syncfs` for a whole
    /// group, instead of one fsync per file.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        match self {
            Blobs::Files { dir, .. } => {
                let d = fs::File::open(dir).map_err(io(dir))?;
                rustix::fs::syncfs(&d).map_err(|e| io(dir)(e.into()))
            }
            Blobs::Memory(_) => Ok(()),
        }
    }

    pub(crate) fn remove(&self, hash: &BlobHash) -> Result<(), StoreError> {
        match self {
            Blobs::Files { dir, sealer } => {
                let p = Self::path(dir, sealer, hash);
                match fs::remove_file(&p) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io(&p)(e)),
                }
            }
            Blobs::Memory(m) => {
                m.write().map_err(|_| StoreError::Poisoned)?.remove(hash);
                Ok(())
            }
        }
    }

    /// Every blob file's path, and leftover temporary files removed.
    fn files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
        let mut out = Vec::new();
        for sub in fs::read_dir(dir).map_err(io(dir))? {
            let sub = sub.map_err(io(dir))?.path();
            if !sub.is_dir() {
                continue;
            }
            for f in fs::read_dir(&sub).map_err(io(&sub))? {
                let f = f.map_err(io(&sub))?.path();
                if f.extension().is_some_and(|e| e == "tmp") {
                    let _ = fs::remove_file(&f);
                    continue;
                }
                out.push(f);
            }
        }
        Ok(out)
    }

    /// Removes every file not named for one of `keep`; how many went.
    /// Cheap: sealed names are computed, files are not opened.
    pub(crate) fn remove_others(&self, keep: &[BlobHash]) -> Result<usize, StoreError> {
        let Blobs::Files { dir, sealer } = self else {
            let mut m = match self {
                Blobs::Memory(m) => m.write().map_err(|_| StoreError::Poisoned)?,
                Blobs::Files { .. } => return Ok(0),
            };
            let before = m.len();
            let keep: std::collections::HashSet<&BlobHash> = keep.iter().collect();
            m.retain(|h, _| keep.contains(h));
            return Ok(before - m.len());
        };
        let names: std::collections::HashSet<String> =
            keep.iter().map(|h| Self::file_name(sealer, h)).collect();
        let mut removed = 0;
        // Only files named as this store names blobs are its own.
        let ours = |n: &str| match sealer {
            Some(_) => n.len() == 2 * crate::seal::NAME_LEN && hex::decode(n).is_ok(),
            None => n.parse::<BlobHash>().is_ok(),
        };
        for f in Self::files(dir)? {
            let Some(name) = f.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            if ours(&name) && !names.contains(&name) {
                fs::remove_file(&f).map_err(io(&f))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Every stored blob's hash (files with other names are ignored, and
    /// leftover temporary files removed). Sealed, each file is opened for
    /// the hash inside: this is for checks, not for every start.
    pub(crate) fn list(&self) -> Result<Vec<BlobHash>, StoreError> {
        match self {
            Blobs::Files {
                dir,
                sealer: Some(s),
            } => {
                let s = Some(s.clone());
                let mut out = Vec::new();
                for f in Self::files(dir)? {
                    match Self::read_file(&f, &s, 0, 0) {
                        Ok(Some((Some(id), ..))) if Self::path(dir, &s, &id) == f => out.push(id),
                        // A file that does not open, or is misnamed, is
                        // not a blob of this store.
                        _ => {}
                    }
                }
                Ok(out)
            }
            Blobs::Files { dir, sealer: None } => Ok(Self::files(dir)?
                .iter()
                .filter_map(|f| f.file_name()?.to_str()?.parse().ok())
                .collect()),
            Blobs::Memory(m) => Ok(m
                .read()
                .map_err(|_| StoreError::Poisoned)?
                .keys()
                .copied()
                .collect()),
        }
    }

    /// Overwrites a blob's first byte (tests of `check` only).
    pub(crate) fn damage(&self, hash: &BlobHash) -> Result<(), StoreError> {
        if let Some(mut b) = self.get(hash)? {
            if let Some(x) = b.first_mut() {
                *x ^= 0xff;
            }
            self.remove(hash)?;
            self.write(hash, &b)?;
        }
        Ok(())
    }
}
