//! Manifests and small blobs kept by number, in the order they were
//! stored, with only their number under their id.
//!
//! Ids and blob hashes are random, so entries keyed by them land in
//! random places of the tree: a store that has outgrown sled's cache reads
//! a page from disk for nearly every one it writes, and rewrites it. When
//! those entries held whole manifests and blob bytes (kilobytes each), a
//! page held few of them and the tree was many times the cache, so ingest
//! slowed as the store grew. Now the bytes go to `v` under a number that
//! only grows, so new values fill the tree's last pages and are not
//! touched again, and what is keyed by id is a number: small entries, many
//! to a page, a tree a fraction of the size. `store check` reads the
//! values in stored order instead of by id.
//!
//! A value starts with its kind and its id (or hash), so that it names
//! itself: a check finds a value its entry does not point to, and an
//! entry pointing at another value is refused rather than read as it.

use super::StoreError;
use super::tables::{BLOB, MANIFEST, VALUE, key};
use super::tx::Tx;
use crate::proto::{BlobHash, BundleId};

/// A value holding a manifest.
pub(super) const KIND_MANIFEST: u8 = b'm';
/// A value holding a small blob.
pub(super) const KIND_BLOB: u8 = b'b';
/// Kind and id before a value's bytes.
pub(super) const HEADER: usize = 1 + 32;

pub(super) fn value_key(n: u64) -> Vec<u8> {
    key(VALUE, &[&n.to_be_bytes()])
}

/// The number in a `v` key.
pub(super) fn number_of_key(k: &[u8]) -> Result<u64, StoreError> {
    k.get(1..9)
        .filter(|_| k.len() == 9)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt("a value key".into()))
}

fn number_at(v: &[u8], at: usize, what: &str) -> Result<u64, StoreError> {
    v.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: the entry is too short")))
}

/// The value number in a manifest's entry, as scanned.
pub(super) fn manifest_number(entry: &[u8]) -> Option<u64> {
    number_at(entry, 0, "").ok()
}

/// The value number in a small blob's entry (after its use count).
pub(super) fn blob_number(entry: &[u8]) -> Option<u64> {
    number_at(entry, 4, "").ok()
}

/// A value's bytes, framed with its kind and name.
pub(super) fn framed(kind: u8, name: &[u8; 32], bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + bytes.len());
    v.push(kind);
    v.extend_from_slice(name);
    v.extend_from_slice(bytes);
    v
}

/// The kind and name a stored value says it holds, if it has a header.
pub(super) fn header(v: &[u8]) -> Option<(u8, [u8; 32])> {
    let name = v.get(1..HEADER)?.try_into().ok()?;
    Some((*v.first()?, name))
}

/// A value's bytes, once it is checked to be the one expected.
fn unframe(kind: u8, name: &[u8; 32], mut v: Vec<u8>, what: &str) -> Result<Vec<u8>, StoreError> {
    if header(&v) != Some((kind, *name)) {
        return Err(StoreError::Corrupt(format!(
            "{what}: its entry points at another value"
        )));
    }
    v.drain(..HEADER);
    Ok(v)
}

fn read_value(tx: &Tx<'_>, n: u64, what: &str) -> Result<Vec<u8>, StoreError> {
    tx.get(&value_key(n))?
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: its bytes are missing")))
}

/// A stored manifest's bytes.
pub(super) fn manifest_bytes(tx: &Tx<'_>, id: &BundleId) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(entry) = tx.get(&key(MANIFEST, &[id.as_bytes()]))? else {
        return Ok(None);
    };
    let what = format!("manifest {id}");
    let n = number_at(&entry, 0, &what)?;
    unframe(
        KIND_MANIFEST,
        id.as_bytes(),
        read_value(tx, n, &what)?,
        &what,
    )
    .map(Some)
}

/// Stores a manifest's bytes under a new number, and the number under its
/// id.
pub(super) fn put_manifest(tx: &mut Tx<'_>, id: &BundleId, bytes: &[u8]) -> Result<(), StoreError> {
    let n = tx.new_value()?;
    tx.put(value_key(n), framed(KIND_MANIFEST, id.as_bytes(), bytes));
    tx.put(key(MANIFEST, &[id.as_bytes()]), n.to_be_bytes().to_vec());
    Ok(())
}

/// Removes a manifest: its entry and its bytes.
pub(super) fn delete_manifest(tx: &mut Tx<'_>, id: &BundleId) -> Result<(), StoreError> {
    let k = key(MANIFEST, &[id.as_bytes()]);
    if let Some(entry) = tx.get(&k)? {
        let n = number_at(&entry, 0, &format!("manifest {id}"))?;
        tx.delete(value_key(n));
    }
    tx.delete(k);
    Ok(())
}

/// A small blob's use count and the number its bytes are under.
pub(super) fn blob_entry(tx: &Tx<'_>, hash: &BlobHash) -> Result<Option<(u32, u64)>, StoreError> {
    let Some(v) = tx.get(&key(BLOB, &[hash.as_bytes()]))? else {
        return Ok(None);
    };
    let what = format!("blob {hash}");
    let count = v
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: the entry is too short")))?;
    Ok(Some((count, number_at(&v, 4, &what)?)))
}

/// A small blob's bytes.
pub(super) fn blob_bytes(tx: &Tx<'_>, hash: &BlobHash) -> Result<Option<Vec<u8>>, StoreError> {
    let Some((_, n)) = blob_entry(tx, hash)? else {
        return Ok(None);
    };
    let what = format!("blob {hash}");
    unframe(KIND_BLOB, hash.as_bytes(), read_value(tx, n, &what)?, &what).map(Some)
}

/// Sets a small blob's use count: 0 removes it and its bytes; a blob not
/// stored yet gets `data` under a new number.
pub(super) fn set_blob_count(
    tx: &mut Tx<'_>,
    hash: &BlobHash,
    count: u32,
    data: Option<&[u8]>,
) -> Result<(), StoreError> {
    let k = key(BLOB, &[hash.as_bytes()]);
    let n = match blob_entry(tx, hash)? {
        Some((_, n)) if count == 0 => {
            tx.delete(value_key(n));
            tx.delete(k);
            return Ok(());
        }
        Some((_, n)) => n,
        None if count == 0 => return Ok(()),
        None => {
            let data =
                data.ok_or_else(|| StoreError::Corrupt(format!("blob {hash} is missing")))?;
            let n = tx.new_value()?;
            tx.put(value_key(n), framed(KIND_BLOB, hash.as_bytes(), data));
            n
        }
    };
    tx.put(k, blob_entry_value(count, n));
    Ok(())
}

/// A small blob's entry: its use count and its value's number.
pub(super) fn blob_entry_value(count: u32, n: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(12);
    v.extend_from_slice(&count.to_be_bytes());
    v.extend_from_slice(&n.to_be_bytes());
    v
}
