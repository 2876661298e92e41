//! A tantivy directory whose files are sealed: each file of the index is
//! kept under its keyed name, in the same chunked AEAD format as the
//! store's sealed blob files, so that a range is read by decrypting only
//! the chunks it spans.
//!
//! tantivy writes each file once and never changes it, which is what the
//! sealed file format needs: a file is sealed whole when its writer is
//! terminated. Until then it is held in memory, which is why the index
//! caps the size of its segments; it is zeroized once sealed, though the
//! copies a growing buffer leaves in freed memory are not.

use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tantivy::HasLen;
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, Lock, OwnedBytes, TerminatingWrite,
    WatchCallback, WatchHandle, WritePtr,
};

use zeroize::Zeroize;

use crate::seal::Sealer;

/// Domain of the keyed names of the index's files.
const DOMAIN: &[u8] = b"search-file";

/// A folder of sealed index files.
#[derive(Clone)]
pub(super) struct SealedDirectory {
    root: PathBuf,
    sealer: Arc<Sealer>,
}

impl std::fmt::Debug for SealedDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedDirectory({})", self.root.display())
    }
}

impl SealedDirectory {
    pub(super) fn new(root: &Path, sealer: Arc<Sealer>) -> Self {
        Self {
            root: root.to_owned(),
            sealer,
        }
    }

    /// The keyed name of a logical path, and the file it is kept in.
    fn locate(&self, path: &Path) -> ([u8; crate::seal::NAME_LEN], PathBuf) {
        let name = self
            .sealer
            .name(DOMAIN, path.as_os_str().as_encoded_bytes());
        let file = self.root.join(format!("{}.sealed", hex::encode(name)));
        (name, file)
    }

    fn read_whole(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        let handle = self.open_handle(path)?;
        handle
            .read_bytes(0..handle.len)
            .map(|b| b.as_slice().to_vec())
            .map_err(|e| OpenReadError::wrap_io_error(e, path.to_owned()))
    }

    fn open_handle(&self, path: &Path) -> Result<SealedFile, OpenReadError> {
        let (name, file) = self.locate(path);
        let f = match std::fs::File::open(&file) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(OpenReadError::FileDoesNotExist(path.to_owned()));
            }
            Err(e) => return Err(OpenReadError::wrap_io_error(e, path.to_owned())),
        };
        let file_len = f
            .metadata()
            .map_err(|e| OpenReadError::wrap_io_error(e, path.to_owned()))?
            .len();
        let mut handle = SealedFile {
            file: Arc::new(f),
            sealer: self.sealer.clone(),
            name,
            file_len,
            len: 0,
        };
        // The plain length is in the first chunk's header.
        let (_, len, _) = handle
            .open(0, 0)
            .map_err(|e| OpenReadError::wrap_io_error(e, path.to_owned()))?;
        handle.len = usize::try_from(len).map_err(|_| {
            OpenReadError::wrap_io_error(io::Error::other("file too large"), path.to_owned())
        })?;
        Ok(handle)
    }

    /// Seals `data` as the file of `path`: written beside it, synced, then
    /// renamed over it, so that a crash leaves the old file or the new.
    fn write_sealed(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let (name, file) = self.locate(path);
        let mut id = [0u8; 32];
        id[..name.len()].copy_from_slice(&name);
        let sealed = self
            .sealer
            .seal_file(&name, &id, data)
            .map_err(io::Error::other)?;
        let tmp = file.with_extension("sealed.tmp");
        let mut f = crate::files::create_private_file(&tmp)?;
        f.write_all(&sealed)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &file)
    }
}

impl Directory for SealedDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        Ok(Arc::new(self.open_handle(path)?))
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        let (_, file) = self.locate(path);
        std::fs::remove_file(&file).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => DeleteError::FileDoesNotExist(path.to_owned()),
            _ => DeleteError::IoError {
                io_error: Arc::new(e),
                filepath: path.to_owned(),
            },
        })
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        Ok(self.locate(path).1.exists())
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        let (_, file) = self.locate(path);
        if file.exists() {
            return Err(OpenWriteError::FileAlreadyExists(path.to_owned()));
        }
        // An empty file at once: tantivy expects a file being written to
        // exist (its lock files are made this way).
        self.write_sealed(path, &[])
            .map_err(|e| OpenWriteError::wrap_io_error(e, path.to_owned()))?;
        Ok(io::BufWriter::new(Box::new(SealedWriter {
            dir: self.clone(),
            path: path.to_owned(),
            data: Vec::new(),
        })))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.read_whole(path)
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.write_sealed(path, data)
    }

    fn sync_directory(&self) -> io::Result<()> {
        std::fs::File::open(&self.root)?.sync_all()
    }

    fn acquire_lock(&self, _: &Lock) -> Result<DirectoryLock, LockError> {
        // The index is opened only with its store, whose own exclusive lock
        // keeps every other process out. A lock file here would outlive a
        // crash and keep the index shut until removed by hand.
        Ok(DirectoryLock::from(Box::new(())))
    }

    fn watch(&self, _: WatchCallback) -> tantivy::Result<WatchHandle> {
        // The index reloads by hand after each commit; nothing to watch.
        Ok(WatchHandle::empty())
    }
}

/// An open sealed file.
struct SealedFile {
    file: Arc<std::fs::File>,
    sealer: Arc<Sealer>,
    name: [u8; crate::seal::NAME_LEN],
    file_len: u64,
    len: usize,
}

impl std::fmt::Debug for SealedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedFile({} bytes)", self.len)
    }
}

impl SealedFile {
    fn open(&self, offset: u64, len: u64) -> io::Result<([u8; 32], u64, Vec<u8>)> {
        self.sealer
            .open_file_range(&self.name, self.file_len, offset, len, |at, buf| {
                self.file.read_exact_at(buf, at)
            })
            .map_err(io::Error::other)
    }
}

impl HasLen for SealedFile {
    fn len(&self) -> usize {
        self.len
    }
}

impl FileHandle for SealedFile {
    fn read_bytes(&self, range: std::ops::Range<usize>) -> io::Result<OwnedBytes> {
        if range.start > range.end || range.end > self.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "range beyond the end of a sealed index file",
            ));
        }
        let (_, _, bytes) = self.open(range.start as u64, range.len() as u64)?;
        Ok(OwnedBytes::new(bytes))
    }
}

/// A file being written: held until terminated, then sealed whole.
struct SealedWriter {
    dir: SealedDirectory,
    path: PathBuf,
    data: Vec<u8>,
}

impl Write for SealedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TerminatingWrite for SealedWriter {
    fn terminate_ref(&mut self, _: AntiCallToken) -> io::Result<()> {
        let mut data = std::mem::take(&mut self.data);
        let written = self.dir.write_sealed(&self.path, &data);
        // The plain words go from memory once sealed (copies left by the
        // buffer's growth are not reached; see the module's comment).
        data.zeroize();
        written
    }
}

impl Drop for SealedWriter {
    fn drop(&mut self) {
        self.data.zeroize();
    }
}
