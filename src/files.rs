//! Small files on disk, read and written the same way everywhere: reads
//! bounded before anything is allocated, writes whole or not at all, and
//! secrets readable only by their owner.
//!
//! An atomic write goes to a temporary file in the same directory, is
//! synced, renamed over the target, and the directory is synced too, so a
//! crash leaves the old file or the new one, never half of one, and the
//! rename itself survives a power cut.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;
use zeroize::Zeroizing;

/// Why a file could not be read or written.
#[derive(Debug, Error)]
pub enum FilesError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than the caller accepts.
    #[error("{path}: the file is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size, or the size it had grown past while being read.
        size: u64,
        /// The largest size accepted.
        limit: u64,
    },
    /// The file was expected to hold UTF-8 text.
    #[error("{path}: not UTF-8 text")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// A file that must not be replaced is already there.
    #[error("{path}: a file is already there; refusing to replace it")]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
}

impl FilesError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::TooLarge { path, .. }
            | Self::NotUtf8 { path }
            | Self::AlreadyExists { path } => path,
        }
    }

    /// The underlying I/O error, if the file system refused.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            Self::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads `path` into `into`, refusing a file larger than `max` bytes. The
/// size is checked before anything is allocated, and the read is capped in
/// case the file grows in between.
fn read_into(path: &Path, max: u64, into: &mut Vec<u8>) -> Result<(), FilesError> {
    let file = fs::File::open(path).map_err(io(path))?;
    let size = file.metadata().map_err(io(path))?.len();
    if size > max {
        return Err(FilesError::TooLarge {
            path: path.to_owned(),
            size,
            limit: max,
        });
    }
    into.reserve_exact(usize::try_from(size).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(into)
        .map_err(io(path))?;
    if into.len() as u64 > max {
        return Err(FilesError::TooLarge {
            path: path.to_owned(),
            size: into.len() as u64,
            limit: max,
        });
    }
    Ok(())
}

/// Reads a file of at most `max` bytes.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, FilesError> {
    let mut bytes = Vec::new();
    read_into(path, max, &mut bytes)?;
    Ok(bytes)
}

/// Reads a UTF-8 text file of at most `max` bytes.
pub fn read_bounded_text(path: &Path, max: u64) -> Result<String, FilesError> {
    String::from_utf8(read_bounded(path, max)?).map_err(|_| FilesError::NotUtf8 {
        path: path.to_owned(),
    })
}

/// Reads a secret file of at most `max` bytes into memory that is wiped
/// when dropped.
pub fn read_bounded_secret(path: &Path, max: u64) -> Result<Zeroizing<Vec<u8>>, FilesError> {
    let mut bytes = Zeroizing::new(Vec::new());
    read_into(path, max, &mut bytes)?;
    Ok(bytes)
}

/// A temporary name beside `path`: hidden, and unique so that two writers
/// of the same file never share one.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tag: u64 = rand::random();
    path.with_file_name(format!(".{name}.{tag:016x}.tmp"))
}

/// Writes `bytes` to a new temporary file beside `path` (mode 0600 when
/// `private`, on unix) and syncs it. Returns the temporary path.
fn write_temp(path: &Path, bytes: &[u8], private: bool) -> Result<PathBuf, FilesError> {
    let tmp = temp_path(path);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let written = opts.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    match written {
        Ok(()) => Ok(tmp),
        Err(source) => {
            let _ = fs::remove_file(&tmp);
            Err(FilesError::Io { path: tmp, source })
        }
    }
}

/// Syncs the directory holding `path`, so that a rename or a new name in
/// it is on disk. A no-op where directories cannot be opened (Windows).
pub fn sync_parent(path: &Path) -> Result<(), FilesError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn replace(path: &Path, bytes: &[u8], private: bool) -> Result<(), FilesError> {
    let tmp = write_temp(path, bytes, private)?;
    if let Err(source) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(FilesError::Io {
            path: path.to_owned(),
            source,
        });
    }
    sync_parent(path)
}

/// Writes `path` atomically as [`write_atomic`] does, with the contents
/// streamed by `write` into the temporary file; if `write` fails, the
/// temporary file is removed and `path` is left as it was.
pub fn write_atomic_with<T, E>(
    path: &Path,
    write: impl FnOnce(&mut fs::File) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<FilesError>,
{
    let tmp = temp_path(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io(&tmp))?;
    let result = write(&mut file).and_then(|value| {
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(io(path))?;
        Ok(value)
    });
    match result {
        Ok(value) => {
            sync_parent(path)?;
            Ok(value)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes `bytes` to `path` atomically, replacing any file there: readers
/// see the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FilesError> {
    replace(path, bytes, false)
}

/// [`write_atomic`] for a file only its owner may read (mode 0600 on
/// unix, set when the file is created, so it is never readable by others
/// even for a moment).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), FilesError> {
    replace(path, bytes, true)
}

fn create(path: &Path, bytes: &[u8], private: bool) -> Result<(), FilesError> {
    let exists = || FilesError::AlreadyExists {
        path: path.to_owned(),
    };
    if fs::symlink_metadata(path).is_ok() {
        return Err(exists());
    }
    let tmp = write_temp(path, bytes, private)?;
    // A hard link, unlike a rename, never replaces its target.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists()),
        // File systems without hard links (FAT on a USB stick, where an
        // exported root key may go): create the file itself, exclusively,
        // and remove it again if it cannot be written whole.
        Err(_) => {
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            if private {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = match opts.open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists()),
                Err(source) => {
                    return Err(FilesError::Io {
                        path: path.to_owned(),
                        source,
                    });
                }
            };
            if let Err(source) = f.write_all(bytes).and_then(|()| f.sync_all()) {
                drop(f);
                let _ = fs::remove_file(path);
                return Err(FilesError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
            sync_parent(path)
        }
    }
}

/// Writes a new file whole (as [`write_atomic`]) that must not replace
/// anything: fails with [`FilesError::AlreadyExists`] if `path` exists,
/// even when another process creates it at the same moment.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<(), FilesError> {
    create(path, bytes, false)
}

/// [`write_new`] for a file only its owner may read, like
/// [`write_private`].
pub fn write_private_new(path: &Path, bytes: &[u8]) -> Result<(), FilesError> {
    create(path, bytes, true)
}

/// Reads the private file at `path` (at most `max` bytes), or, when there
/// is none, creates it with the bytes `make` gives and returns those. Two
/// processes creating it at once agree on one file: the loser reads what
/// the winner wrote.
pub fn read_or_create_private<E>(
    path: &Path,
    max: u64,
    make: impl FnOnce() -> Result<Vec<u8>, E>,
) -> Result<Zeroizing<Vec<u8>>, E>
where
    E: From<FilesError>,
{
    match read_bounded_secret(path, max) {
        Ok(bytes) => return Ok(bytes),
        Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    let bytes = Zeroizing::new(make()?);
    match write_private_new(path, &bytes) {
        Ok(()) => Ok(bytes),
        Err(FilesError::AlreadyExists { .. }) => Ok(read_bounded_secret(path, max)?),
        Err(e) => Err(e.into()),
    }
}

/// The mode of every folder in a data directory: its owner's only.
#[cfg(unix)]
const PRIVATE_DIR_MODE: u32 = 0o700;
/// The mode of every file in a data directory: its owner's only.
#[cfg(unix)]
const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates the folder `path` and any missing parents, as
/// `std::fs::create_dir_all` does, but with mode 0700 (on unix) set as
/// each is made, so that none is open to others even for a moment,
/// whatever the umask. A folder already there keeps its mode
/// ([`tighten_tree`] fixes that).
pub fn create_private_dir_all(path: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(PRIVATE_DIR_MODE);
    }
    builder.create(path)
}

/// Opens `path` for writing, created (or emptied) with mode 0600 on unix
/// whatever the umask; a file left there earlier with another mode is
/// given 0600 too.
pub fn create_private_file(path: &Path) -> std::io::Result<fs::File> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(PRIVATE_FILE_MODE);
    }
    let file = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The mode above applies only when the file is new.
        file.set_permissions(fs::Permissions::from_mode(PRIVATE_FILE_MODE))?;
    }
    Ok(file)
}

/// Gives every folder under `root` (and `root` itself) mode 0700 and
/// every regular file mode 0600, and returns the paths it had to change.
/// Symbolic links are never followed (only `root` itself may be one, for
/// a data directory kept elsewhere), and other kinds of file are left
/// alone. A path removed while the walk runs is skipped. Does nothing off
/// unix.
///
/// Files made by code that does not set modes itself (sled's) and a data
/// directory opened up by hand are fixed this way when it is next opened.
pub fn tighten_tree(root: &Path) -> Result<Vec<PathBuf>, FilesError> {
    let mut changed = Vec::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
        let mut pending = vec![root.to_owned()];
        while let Some(path) = pending.pop() {
            let meta = if path == root {
                fs::metadata(&path)
            } else {
                fs::symlink_metadata(&path)
            };
            let meta = match meta {
                Ok(m) => m,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(io(&path)(e)),
            };
            let kind = meta.file_type();
            let want = if kind.is_dir() {
                PRIVATE_DIR_MODE
            } else if kind.is_file() {
                PRIVATE_FILE_MODE
            } else {
                continue;
            };
            if meta.permissions().mode() & 0o7777 != want {
                match fs::set_permissions(&path, fs::Permissions::from_mode(want)) {
                    Ok(()) => changed.push(path.clone()),
                    Err(e) if gone(&e) => continue,
                    Err(e) => return Err(io(&path)(e)),
                }
            }
            // A folder is tightened before it is read: one that was too
            // tight to list (0000) can be read once it is 0700.
            if kind.is_dir() {
                let entries = match fs::read_dir(&path) {
                    Ok(entries) => entries,
                    Err(e) if gone(&e) => continue,
                    Err(e) => return Err(io(&path)(e)),
                };
                for entry in entries {
                    pending.push(entry.map_err(io(&path))?.path());
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = root;
    Ok(changed)
}

/// [`tighten_tree`] on a data directory, with what it did logged: how
/// many paths it changed, at warn, and which, at debug only (file names
/// such as `trust/NAME.toml` say what the device reads). `library` is a
/// folder in it whose files a library makes itself, with the umask's
/// modes, every time it opens them (sled's snapshot): tightened first
/// and without a warning, since nobody opened those up. A failure is
/// logged and does not stop the caller: the modes it could set stay set.
pub(crate) fn tighten_data_dir(root: &Path, library: &Path) {
    let tightened = tighten_tree(library).and_then(|made| {
        if !made.is_empty() {
            tracing::debug!(?made, "modes of the library's own files tightened");
        }
        tighten_tree(root)
    });
    match tightened {
        Ok(changed) if changed.is_empty() => {}
        Ok(changed) => {
            tracing::warn!(
                "{} path(s) in the data directory were open to other users: now 0700 (folders) and 0600 (files)",
                changed.len()
            );
            tracing::debug!(?changed, "modes tightened");
        }
        Err(e) => {
            tracing::warn!(
                "the modes in the data directory could not all be tightened: {}",
                e.io_kind()
                    .map_or_else(|| "not a file system error".to_owned(), |k| k.to_string())
            );
            tracing::debug!("tightening modes: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_reads_refuse_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"12345").unwrap();
        assert_eq!(read_bounded(&path, 5).unwrap(), b"12345");
        let err = read_bounded(&path, 4).unwrap_err();
        assert!(matches!(
            err,
            FilesError::TooLarge {
                size: 5,
                limit: 4,
                ..
            }
        ));
        let text = err.to_string();
        assert!(text.contains("limit of 4") && text.contains("/f"), "{text}");
        fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_bounded_text(&path, 10),
            Err(FilesError::NotUtf8 { .. })
        ));
        let missing = read_bounded(&dir.path().join("none"), 10).unwrap_err();
        assert_eq!(missing.io_kind(), Some(std::io::ErrorKind::NotFound));
    }

    #[test]
    fn atomic_writes_replace_whole_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.toml")]);
    }

    #[test]
    fn streamed_writes_leave_the_old_file_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        fs::write(&path, b"old").unwrap();
        let failed: Result<(), FilesError> = write_atomic_with(&path, |f| {
            f.write_all(b"half").map_err(io(&path))?;
            Err(FilesError::NotUtf8 { path: path.clone() })
        });
        assert!(failed.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomic_with(&path, |f| f.write_all(b"new").map_err(io(&path))).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn private_files_are_owner_only_and_new_ones_never_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_private_new(&path, b"first").unwrap();
        assert!(matches!(
            write_private_new(&path, b"second"),
            Err(FilesError::AlreadyExists { .. })
        ));
        assert_eq!(fs::read(&path).unwrap(), b"first");
        write_private(&path, b"third").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"third");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn read_or_create_makes_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        let made =
            read_or_create_private(&path, 64, || Ok::<_, FilesError>(b"key".to_vec())).unwrap();
        assert_eq!(&*made, b"key");
        let again = read_or_create_private(&path, 64, || -> Result<Vec<u8>, FilesError> {
            panic!("must not make a second one")
        })
        .unwrap();
        assert_eq!(&*again, b"key");
    }

    #[cfg(unix)]
    #[test]
    fn tighten_tree_sets_owner_only_modes_and_skips_links() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        let outside = tempfile::tempdir().unwrap();
        let shared = outside.path().join("shared");
        fs::write(&shared, b"x").unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o644)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        create_private_dir_all(&root.join("a/b")).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("a/b")), 0o700);
        drop(create_private_file(&root.join("a/f")).unwrap());
        assert_eq!(mode(&root.join("a/f")), 0o600);
        assert!(tighten_tree(&root).unwrap().is_empty());
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(root.join("a/f"), fs::Permissions::from_mode(0o4666)).unwrap();
        fs::set_permissions(root.join("a/b"), fs::Permissions::from_mode(0o000)).unwrap();
        std::os::unix::fs::symlink(&shared, root.join("link")).unwrap();
        let mut changed = tighten_tree(&root).unwrap();
        changed.sort();
        assert_eq!(
            changed,
            vec![root.clone(), root.join("a/b"), root.join("a/f")]
        );
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("a/b")), 0o700);
        assert_eq!(mode(&root.join("a/f")), 0o600);
        assert_eq!(mode(&shared), 0o644, "a link's target is left alone");
        // A file left with a loose mode is tightened when opened again.
        fs::set_permissions(root.join("a/f"), fs::Permissions::from_mode(0o666)).unwrap();
        drop(create_private_file(&root.join("a/f")).unwrap());
        assert_eq!(mode(&root.join("a/f")), 0o600);
        assert!(tighten_tree(&dir.path().join("none")).unwrap().is_empty());
    }
}
