//! Blob bytes, one file per blob under `STORE/blobs/`, named by hash.
//!
//! Blobs live beside sled rather than in it: sled 0.34 keeps the space of
//! large deleted values (measured here: six rounds of storing and deleting
//! 4 MB of 100 KiB values left 23 MB on disk and no live data), so a quota
//! measured on sled's size could never hold. A file is gone from the disk
//! when it is removed. The index in sled says which blobs belong to which
//! bundle; a file nobody refers to (left by a crash between writing a blob
//! and storing its bundle) is removed when the store opens.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use super::StoreError;
use crate::proto::BlobHash;

/// Disk space a blob is counted for: its length rounded up to 4 KiB blocks.
pub(crate) fn disk_cost(len: u64) -> u64 {
    len.div_ceil(4096) * 4096
}

pub(crate) enum Blobs {
    Files { dir: PathBuf },
    Memory(RwLock<HashMap<BlobHash, Vec<u8>>>),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Io {
        path: path.to_owned(),
        source: e,
    }
}

impl Blobs {
    pub(crate) fn open(dir: &Path) -> Result<Self, StoreError> {
        crate::files::create_private_dir_all(dir).map_err(io(dir))?;
        Ok(Blobs::Files {
            dir: dir.to_owned(),
        })
    }

    pub(crate) fn memory() -> Self {
        Blobs::Memory(RwLock::new(HashMap::new()))
    }

    fn path(dir: &Path, hash: &BlobHash) -> PathBuf {
        let hex = hash.to_string();
        dir.join(&hex[..2]).join(hex)
    }

    pub(crate) fn contains(&self, hash: &BlobHash) -> Result<bool, StoreError> {
        match self {
            Blobs::Files { dir } => Ok(Self::path(dir, hash).exists()),
            Blobs::Memory(m) => Ok(m
                .read()
                .map_err(|_| StoreError::Poisoned)?
                .contains_key(hash)),
        }
    }

    pub(crate) fn get(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Blobs::Files { dir } => {
                let p = Self::path(dir, hash);
                match fs::read(&p) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io(&p)(e)),
                }
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
            Blobs::Files { dir } => {
                use std::io::{Read, Seek, SeekFrom};
                let p = Self::path(dir, hash);
                let mut f = match fs::File::open(&p) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(io(&p)(e)),
                };
                let total = f.metadata().map_err(io(&p))?.len();
                let start = offset.min(total);
                let n = len.min(total - start);
                f.seek(SeekFrom::Start(start)).map_err(io(&p))?;
                let mut buf = vec![0u8; n as usize];
                f.read_exact(&mut buf).map_err(io(&p))?;
                Ok(Some((total, buf)))
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
            Blobs::Files { dir } => {
                let p = Self::path(dir, hash);
                if p.exists() {
                    return Ok(false);
                }
                let parent = p.parent().unwrap_or(dir);
                crate::files::create_private_dir_all(parent).map_err(io(parent))?;
                let tmp = p.with_extension("tmp");
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
            Blobs::Files { dir } => {
                let d = fs::File::open(dir).map_err(io(dir))?;
                rustix::fs::syncfs(&d).map_err(|e| io(dir)(e.into()))
            }
            Blobs::Memory(_) => Ok(()),
        }
    }

    pub(crate) fn remove(&self, hash: &BlobHash) -> Result<(), StoreError> {
        match self {
            Blobs::Files { dir } => {
                let p = Self::path(dir, hash);
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

    /// Every stored blob's hash (files with other names are ignored, and
    /// leftover temporary files removed).
    pub(crate) fn list(&self) -> Result<Vec<BlobHash>, StoreError> {
        match self {
            Blobs::Files { dir } => {
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
                        if let Some(h) = f
                            .file_name()
                            .and_then(|n| n.to_str())
                            .and_then(|n| n.parse().ok())
                        {
                            out.push(h);
                        }
                    }
                }
                Ok(out)
            }
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
