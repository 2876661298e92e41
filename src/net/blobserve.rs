//! A mirror's answers to fetch requests, read on the store thread: a piece
//! of a blob, a range sized by the asker, or a blob's outboard.
//!
//! An outboard costs a read and a hash of the whole blob (64 MiB at most)
//! for a reply of 1/512 of it, so the last few computed are kept: a reader
//! fetching a large image asks once per source and connection, and a peer
//! asking for the same outboards over and over costs one computation each.

use std::cell::RefCell;
use std::collections::VecDeque;

use super::wire::{CHUNK, FetchRequest, FetchResponse};
use crate::proto::BlobHash;
use crate::proto::pieces::Outboard;
use crate::store::{Store, StoreError};

/// Outboards kept (each at most 128 KiB).
const CACHED_OUTBOARDS: usize = 32;

/// Recently computed outboards, newest last.
#[derive(Default)]
pub(super) struct Outboards(RefCell<VecDeque<(BlobHash, u64, Vec<u8>)>>);

impl Outboards {
    fn get(&self, store: &Store, hash: &BlobHash) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let mut cache = self.0.borrow_mut();
        if let Some(hit) = cache
            .iter()
            .position(|(h, _, _)| h == hash)
            .and_then(|i| cache.remove(i))
        {
            let answer = (hit.1, hit.2.clone());
            cache.push_back(hit);
            return Ok(Some(answer));
        }
        let Some(blob) = store.blob(hash)? else {
            return Ok(None);
        };
        let outboard = Outboard::compute(&blob);
        if outboard.hash() != *hash {
            // A damaged file: not served (the store's check finds it).
            return Ok(None);
        }
        let encoded = outboard.encode();
        if cache.len() >= CACHED_OUTBOARDS {
            cache.pop_front();
        }
        cache.push_back((*hash, blob.len() as u64, encoded.clone()));
        Ok(Some((blob.len() as u64, encoded)))
    }
}

/// The answer to `request`, and the bytes it sends (charged to the
/// peer's serving share).
pub(super) fn answer(
    store: &Store,
    outboards: &Outboards,
    request: &FetchRequest,
) -> (FetchResponse, u64) {
    let range = |hash: &BlobHash, offset: u64, len: u64| match store.blob_range(hash, offset, len) {
        Ok(Some((total, data))) => {
            let bytes = data.len() as u64;
            let response = FetchResponse::Chunk {
                total,
                offset: offset.min(total),
                data,
            };
            (response, bytes)
        }
        _ => (FetchResponse::NotFound, 0),
    };
    match request {
        FetchRequest::Blob { hash, offset } => range(hash, *offset, CHUNK),
        FetchRequest::Range { hash, offset, len } => {
            range(hash, *offset, u64::from(*len).min(CHUNK))
        }
        FetchRequest::Outboard { hash } => match outboards.get(store, hash) {
            Ok(Some((total, data))) => {
                let bytes = data.len() as u64;
                (FetchResponse::Outboard { total, data }, bytes)
            }
            _ => (FetchResponse::NotFound, 0),
        },
    }
}
