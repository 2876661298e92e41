//! `kolokol export --web DIR`: the store's log cut into segments, and the
//! blobs too large to travel inline, as a web tree ([`super::tree`]).
//!
//! Incremental: a second export reads the index, writes only the log's
//! new part, and rewrites only the index. A short last segment is cut
//! again, longer, so that a tree exported after every story does not
//! become thousands of tiny segments. Every file is written atomically and
//! the index last, so a host copying the folder at any moment serves a
//! tree whose index names only files that are there.

use std::path::Path;

use tracing::debug;

use super::WebError;
use super::tree::{self, INDEX, OBJECTS, SegmentRef, WebIndex};
use crate::net::logserve;
use crate::net::wire::{LOG_BUDGET, LogEntry, LogResponse, MAX_LOG_ENTRIES};
use crate::proto::pieces::{Outboard, has_outboard};
use crate::proto::{BlobHash, BundleId};
use crate::store::Store;

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebExport {
    /// Segments written now.
    pub segments: u64,
    /// Segments in the index in all.
    pub total_segments: u64,
    /// Blobs (and their outboards) written now.
    pub blobs: u64,
    /// Bytes written now, the index included.
    pub bytes: u64,
    /// The log position the tree reaches.
    pub end: u64,
}

/// A segment this short (in entries and bytes) is cut again by the next
/// export, so that exports after every story still make full segments.
fn is_short(s: &SegmentRef) -> bool {
    (s.entries as usize) < MAX_LOG_ENTRIES / 2 && s.len < (LOG_BUDGET / 2) as u64
}

/// Writes (or brings up to date) the web tree of `store` in `dir`.
pub fn export_web(store: &Store, dir: &Path) -> Result<WebExport, WebError> {
    let objects = dir.join(OBJECTS);
    std::fs::create_dir_all(&objects).map_err(|source| crate::files::FilesError::Io {
        path: objects.clone(),
        source,
    })?;
    let log = store.log_id()?;
    let index_path = dir.join(INDEX);
    let mut index = match crate::files::read_bounded(&index_path, tree::MAX_INDEX_BYTES) {
        Ok(bytes) => match WebIndex::decode(&bytes) {
            Ok(i) if i.log == log => i,
            // Another store's tree, or a damaged index: written anew.
            _ => WebIndex::empty(log),
        },
        Err(_) => WebIndex::empty(log),
    };
    let mut report = WebExport::default();
    let mut replaced = None;
    if index.segments.last().is_some_and(is_short) {
        replaced = index.segments.pop();
    }
    let mut from = index.segments.last().map_or(0, |s| s.next);
    let end = store.log_end()?;
    while from < end {
        if index.segments.len() >= tree::MAX_SEGMENTS {
            return Err(WebError::Malformed(format!(
                "the log needs more than {} segments",
                tree::MAX_SEGMENTS
            )));
        }
        let (page, _) = logserve::page(store, from)?;
        let LogResponse::Page { entries, next, .. } = &page else {
            break;
        };
        if *next <= from {
            break;
        }
        let (entries, next) = (entries.len() as u32, *next);
        for entry in page_entries(&page) {
            report.blobs += write_blobs(store, &objects, entry, &mut report.bytes)?;
        }
        let bytes = postcard::to_allocvec(&page)
            .map_err(|e| WebError::Malformed(format!("encoding a segment: {e}")))?;
        let hash = *blake3::hash(&bytes).as_bytes();
        report.bytes += write_object(&objects, &hash, &bytes)?;
        index.segments.push(SegmentRef {
            from,
            next,
            entries,
            hash,
            len: bytes.len() as u64,
        });
        report.segments += 1;
        from = next;
    }
    index.end = from;
    let encoded = index.encode();
    crate::files::write_atomic(&index_path, &encoded)?;
    report.bytes += encoded.len() as u64;
    if let Some(old) = replaced
        && !index.segments.iter().any(|s| s.hash == old.hash)
    {
        // Readers that fetched the old index find the longer segment at
        // their next poll.
        let _ = std::fs::remove_file(dir.join(tree::object_path(&old.hash)));
        let _ = std::fs::remove_file(dir.join(tree::outboard_path(&old.hash)));
    }
    report.total_segments = index.segments.len() as u64;
    report.end = index.end;
    debug!(
        segments = report.segments,
        blobs = report.blobs,
        "web tree exported"
    );
    Ok(report)
}

fn page_entries(page: &LogResponse) -> &[LogEntry] {
    match page {
        LogResponse::Page { entries, .. } => entries,
        _ => &[],
    }
}

/// Writes the blobs of a bundle that did not travel inline.
fn write_blobs(
    store: &Store,
    objects: &Path,
    entry: &LogEntry,
    bytes: &mut u64,
) -> Result<u64, WebError> {
    let LogEntry::Bundle(b) = entry else {
        return Ok(0);
    };
    if b.blobs.is_some() {
        return Ok(0);
    }
    let Some(stored) = store.manifest(&BundleId::of(&b.manifest))? else {
        return Ok(0);
    };
    let mut written = 0;
    for e in &stored.manifest.entries {
        if objects.join(hex::encode(e.hash.as_bytes())).exists() {
            continue;
        }
        // A blob the store lost is simply not in the tree; readers fetch
        // it elsewhere.
        let Some(blob) = store.blob(&e.hash)? else {
            continue;
        };
        if BlobHash::of(&blob) != e.hash {
            continue;
        }
        *bytes += write_object(objects, e.hash.as_bytes(), &blob)?;
        written += 1;
    }
    Ok(written)
}

/// Writes a content-addressed file and, when it has more than one piece,
/// its outboard (first, so that the file's presence means both are
/// there). Returns the bytes written; a file already there is kept.
fn write_object(objects: &Path, hash: &[u8; 32], bytes: &[u8]) -> Result<u64, WebError> {
    let path = objects.join(hex::encode(hash));
    if path.exists() {
        return Ok(0);
    }
    let mut written = 0;
    if has_outboard(bytes.len() as u64) {
        let ob = Outboard::compute(bytes).encode();
        crate::files::write_atomic(&objects.join(format!("{}.ob", hex::encode(hash))), &ob)?;
        written += ob.len() as u64;
    }
    crate::files::write_atomic(&path, bytes)?;
    Ok(written + bytes.len() as u64)
}
