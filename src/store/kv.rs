//! The key-value layer under the store: one sled tree, or an in-memory
//! map with the same behaviour for tests.
//!
//! Everything lives in one tree under one-byte key prefixes, because sled
//! 0.34 applies a batch atomically (also across a crash) only within one
//! tree.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::StoreError;
use super::sealed::sealed_key;
use crate::seal::Sealer;

/// One write in an atomic batch.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// A key and its value.
pub(crate) type Pair = (Vec<u8>, Vec<u8>);

enum Backend {
    Sled { db: sled::Db, tree: sled::Tree },
    Memory(RwLock<BTreeMap<Vec<u8>, Vec<u8>>>),
}

pub(crate) struct Kv {
    backend: Backend,
    /// When the store is sealed: keys become keyed names and values are
    /// encrypted (see `sealed`). Everything above this layer sees plain
    /// keys and values either way.
    sealer: Option<Arc<Sealer>>,
    /// Batches applied since the store was opened: readers that keep
    /// something derived from the store compare it to know when to
    /// rebuild, without a scan.
    changes: AtomicU64,
    /// Bytes of keys and values put since the store was opened: what the
    /// next open of sled would read again (see [`Kv::settle`]).
    written: AtomicU64,
}

/// How long an open waits for a lock on the database to be let go.
const LOCK_WAIT: Duration = Duration::from_millis(1500);

fn sled_err(e: sled::Error) -> StoreError {
    StoreError::Backend(e)
}

/// Whether another process holds the lock on the database at `path`.
///
/// sled takes an exclusive lock on its `db` file but reports a refusal as
/// an `ErrorKind::Other` with only a message, so after an I/O error at open
/// the lock is asked about directly. Only asked after sled failed, so the
/// probe never races with a successful open.
fn held_elsewhere(path: &Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path.join("db"))
    else {
        return false;
    };
    // The probe's own lock, if it got one, goes with the file when it is
    // dropped here.
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

fn sealed_damage() -> StoreError {
    StoreError::Corrupt(
        "a sealed entry does not open under this store's key (damaged, or moved from another store)"
            .into(),
    )
}

/// The first key after every key starting with `prefix`, if any.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl Kv {
    pub(crate) fn open_sled(
        path: &Path,
        cache_bytes: u64,
        sealer: Option<Arc<Sealer>>,
    ) -> Result<Self, StoreError> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            // Flushes are explicit (group commit); sled's own background
            // flush every 500 ms stays on as a safety net.
            .flush_every_ms(Some(500));
        // sled 0.34 lets go of its file lock only when its flusher thread
        // ends, some time after the last handle is dropped (sled issues
        // 1234 and 1289), so a store closed and opened again at once,
        // by a lock, a seal or a restart in one process, can find its own
        // old lock still held. It is waited for, briefly and with a
        // deadline: a lock another process really holds is reported
        // after that, not waited on forever.
        let deadline = Instant::now() + LOCK_WAIT;
        let mut pause = Duration::from_millis(5);
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(_)) if held_elsewhere(path) => {
                    if Instant::now() + pause > deadline {
                        return Err(StoreError::Locked(path.to_owned()));
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(other) => return Err(sled_err(other)),
            }
        };
        let tree = db.open_tree("kolokol").map_err(sled_err)?;
        Ok(Kv::new(Backend::Sled { db, tree }, sealer))
    }

    fn new(backend: Backend, sealer: Option<Arc<Sealer>>) -> Self {
        Self {
            backend,
            sealer,
            changes: AtomicU64::new(0),
            written: AtomicU64::new(0),
        }
    }

    /// Whether keys and values are sealed.
    pub(crate) fn is_sealed(&self) -> bool {
        self.sealer.is_some()
    }

    fn name(&self, key: &[u8], prefix: bool) -> Vec<u8> {
        match &self.sealer {
            Some(s) => sealed_key(s, key, prefix),
            None => key.to_vec(),
        }
    }

    /// A stored pair as the layers above see it.
    fn open_pair(&self, (k, v): Pair) -> Result<Pair, StoreError> {
        match &self.sealer {
            Some(s) => s.open_value(&k, &v).map_err(|_| sealed_damage()),
            None => Ok((k, v)),
        }
    }

    fn seal_op(&self, op: Op) -> Result<Op, StoreError> {
        let Some(s) = &self.sealer else {
            return Ok(op);
        };
        Ok(match op {
            Op::Put(k, v) => {
                let name = sealed_key(s, &k, false);
                let sealed = s
                    .seal_value(&name, &k, &v)
                    .map_err(|e| StoreError::Corrupt(format!("sealing an entry: {e}")))?;
                Op::Put(name, sealed)
            }
            Op::Delete(k) => Op::Delete(sealed_key(s, &k, false)),
        })
    }

    /// How many batches were applied since the store was opened.
    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Bytes of keys and values put since the store was opened.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Opens the sled database at `path` and closes it again, so that it
    /// writes its snapshot. sled 0.34 writes one only when it starts
    /// (`snapshot_after_ops` does nothing in this version): everything
    /// written since it last started is read again at the next start, a
    /// replay of 3.6 s after a fill of a million stories. Done when a
    /// store that wrote much is closed, the replay is paid by the process
    /// that is ending, not by the next start a reader waits on.
    pub(crate) fn settle(path: &Path, cache_bytes: u64) -> Result<(), StoreError> {
        let kv = Kv::open_sled(path, cache_bytes, None)?;
        kv.flush()
    }

    pub(crate) fn memory_sealed(sealer: Option<Arc<Sealer>>) -> Self {
        Kv::new(Backend::Memory(RwLock::new(BTreeMap::new())), sealer)
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let name = self.name(key, false);
        match self.raw_get(&name)? {
            None => Ok(None),
            Some(v) => {
                let (k, v) = self.open_pair((name, v))?;
                // A sealed value names the key it was stored under.
                if k != key {
                    return Err(sealed_damage());
                }
                Ok(Some(v))
            }
        }
    }

    fn raw_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Sled { tree, .. } => Ok(tree.get(key).map_err(sled_err)?.map(|v| v.to_vec())),
            Backend::Memory(m) => Ok(m
                .read()
                .map_err(|_| StoreError::Poisoned)?
                .get(key)
                .cloned()),
        }
    }

    pub(crate) fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        let key = self.name(key, false);
        let key = key.as_slice();
        match &self.backend {
            Backend::Sled { tree, .. } => tree.contains_key(key).map_err(sled_err),
            Backend::Memory(m) => Ok(m
                .read()
                .map_err(|_| StoreError::Poisoned)?
                .contains_key(key)),
        }
    }

    /// Applies every op or none, also across a crash.
    pub(crate) fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let bytes: usize = ops
            .iter()
            .map(|op| match op {
                Op::Put(k, v) => k.len() + v.len(),
                Op::Delete(k) => k.len(),
            })
            .sum();
        self.written.fetch_add(bytes as u64, Ordering::Relaxed);
        // Counted after the batch is in, so a reader that sees the new count
        // also sees the batch.
        let result = ops
            .into_iter()
            .map(|op| self.seal_op(op))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|ops| self.apply_batch(ops));
        self.changes.fetch_add(1, Ordering::AcqRel);
        result
    }

    fn apply_batch(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled { tree, .. } => {
                let mut batch = sled::Batch::default();
                for op in ops {
                    match op {
                        Op::Put(k, v) => batch.insert(k, v),
                        Op::Delete(k) => batch.remove(k),
                    }
                }
                tree.apply_batch(batch).map_err(sled_err)
            }
            Backend::Memory(m) => {
                let mut m = m.write().map_err(|_| StoreError::Poisoned)?;
                for op in ops {
                    match op {
                        Op::Put(k, v) => {
                            m.insert(k, v);
                        }
                        Op::Delete(k) => {
                            m.remove(&k);
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Every pair whose key starts with `prefix`, in key order (or reverse).
    pub(crate) fn scan(
        &self,
        prefix: &[u8],
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<Pair, StoreError>> + '_> {
        let prefix = self.name(prefix, true);
        let raw = self.raw_scan(&prefix, reverse);
        if self.sealer.is_none() {
            return raw;
        }
        Box::new(raw.map(move |r| r.and_then(|p| self.open_pair(p))))
    }

    fn raw_scan(
        &self,
        prefix: &[u8],
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<Pair, StoreError>> + '_> {
        match &self.backend {
            Backend::Sled { tree, .. } => {
                let it = tree
                    .scan_prefix(prefix)
                    .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(sled_err));
                if reverse {
                    Box::new(it.rev())
                } else {
                    Box::new(it)
                }
            }
            Backend::Memory(m) => {
                let Ok(m) = m.read() else {
                    return Box::new(std::iter::once(Err(StoreError::Poisoned)));
                };
                let end = match prefix_end(prefix) {
                    Some(e) => Bound::Excluded(e),
                    None => Bound::Unbounded,
                };
                let mut items: Vec<_> = m
                    .range::<Vec<u8>, _>((Bound::Included(prefix.to_vec()), end))
                    .map(|(k, v)| Ok((k.clone(), v.clone())))
                    .collect();
                if reverse {
                    items.reverse();
                }
                Box::new(items.into_iter())
            }
        }
    }

    /// The pairs whose key starts with `prefix`, from `start` (a key
    /// under `prefix`) on, in key order, read as they are taken: a page
    /// costs what it shows, not what the prefix holds.
    pub(crate) fn range_from(
        &self,
        prefix: &[u8],
        start: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Pair, StoreError>> + '_> {
        let (prefix, start) = (self.name(prefix, true), self.name(start, false));
        let raw: Box<dyn Iterator<Item = Result<Pair, StoreError>> + '_> = match &self.backend {
            Backend::Sled { tree, .. } => Box::new(
                tree.range(start..)
                    .take_while(move |r| r.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
                    .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(sled_err)),
            ),
            // The twin for tests copies the range at once.
            Backend::Memory(m) => match m.read() {
                Ok(m) => Box::new(
                    m.range::<Vec<u8>, _>(start..)
                        .take_while(|(k, _)| k.starts_with(&prefix))
                        .map(|(k, v)| Ok((k.clone(), v.clone())))
                        .collect::<Vec<_>>()
                        .into_iter(),
                ),
                Err(_) => Box::new(std::iter::once(Err(StoreError::Poisoned))),
            },
        };
        if self.sealer.is_none() {
            return raw;
        }
        Box::new(raw.map(move |r| r.and_then(|p| self.open_pair(p))))
    }

    /// Every pair, plain, in stored order: what a conversion copies.
    pub(crate) fn all(&self) -> Box<dyn Iterator<Item = Result<Pair, StoreError>> + '_> {
        self.scan(&[], false)
    }

    /// Whether the database holds no entry at all.
    pub(crate) fn is_empty(&self) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sled { tree, .. } => Ok(tree.is_empty()),
            Backend::Memory(m) => Ok(m.read().map_err(|_| StoreError::Poisoned)?.is_empty()),
        }
    }

    /// Makes every applied batch durable.
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled { db, .. } => db.flush().map(|_| ()).map_err(sled_err),
            Backend::Memory(_) => Ok(()),
        }
    }

    /// Bytes the database takes on disk (for the memory twin, its payload).
    pub(crate) fn disk_size(&self) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sled { db, .. } => db.size_on_disk().map_err(sled_err),
            Backend::Memory(m) => Ok(m
                .read()
                .map_err(|_| StoreError::Poisoned)?
                .iter()
                .map(|(k, v)| (k.len() + v.len()) as u64)
                .sum()),
        }
    }
}
