//! The layout of a web tree: what `kolokol export --web DIR` writes and a
//! reader's node reads over plain HTTPS from any static host.
//!
//! ```text
//! index.kolokol      the only file that changes: the log's segments
//! o/<blake3 hex>     content-addressed, immutable: segments and blobs
//! o/<blake3 hex>.ob  the outboard of a file larger than one piece
//! ```
//!
//! A segment is one page of the exporting node's log, the very
//! [`LogResponse::Page`] a mirror answers over libp2p, so everything in it
//! is checked the same way: certificates, heads, revocations and manifests
//! with the small bundles' blobs inline. Larger blobs stay in `o/` and are
//! read in ranges, piece by piece, against their outboards. Immutable names
//! let a CDN or a browser cache keep everything but the index forever.

use serde::{Deserialize, Serialize};

use super::WebError;
use crate::net::wire::{LOG_DECODE_CEILING, LogResponse, MAX_LOG_RESPONSE};
use crate::proto::bounded;

/// The index's file name.
pub const INDEX: &str = "index.kolokol";
/// The folder of content-addressed files.
pub const OBJECTS: &str = "o";
/// The index's format number.
pub const FORMAT: u16 = 1;
/// Largest index read: about 20,000 segments, five million log entries.
pub const MAX_INDEX_BYTES: u64 = 1024 * 1024;
/// Segments an index lists at most.
pub const MAX_SEGMENTS: usize = 20_000;
/// Largest segment read (a log page's own limit).
pub const MAX_SEGMENT_BYTES: u64 = MAX_LOG_RESPONSE as u64;

/// What a web tree holds: the log it was cut from and its segments in
/// order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebIndex {
    /// [`FORMAT`].
    pub format: u16,
    /// The exporting store's log name: another name means another log, to
    /// be read from its start.
    pub log: [u8; 16],
    /// The log position the last segment ends at.
    pub end: u64,
    /// The segments, in log order, each starting where the one before
    /// ends.
    #[serde(deserialize_with = "bounded::fields::at_most::<MAX_SEGMENTS, _, _>")]
    pub segments: Vec<SegmentRef>,
}

/// One segment of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    /// First log position it covers.
    pub from: u64,
    /// The position after the last it covers.
    pub next: u64,
    /// Entries in it.
    pub entries: u32,
    /// Its blake3 hash: its name under [`OBJECTS`].
    pub hash: [u8; 32],
    /// Its length in bytes.
    pub len: u64,
}

impl WebIndex {
    /// An index with no segments yet.
    pub fn empty(log: [u8; 16]) -> Self {
        Self {
            format: FORMAT,
            log,
            end: 0,
            segments: Vec::new(),
        }
    }

    /// Encodes the index.
    pub fn encode(&self) -> Vec<u8> {
        // Writing a struct of plain fields into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes and checks an index read from a web host: its size, its
    /// format, and that its segments follow one another.
    pub fn decode(bytes: &[u8]) -> Result<Self, WebError> {
        if bytes.len() as u64 > MAX_INDEX_BYTES {
            return Err(WebError::Malformed(format!(
                "an index of {} bytes is over the limit of {MAX_INDEX_BYTES}",
                bytes.len()
            )));
        }
        let index: Self = bounded::postcard(bytes, 4 * MAX_INDEX_BYTES as usize)
            .map_err(|e| WebError::Malformed(format!("index: {e}")))?;
        if index.format != FORMAT {
            return Err(WebError::Malformed(format!(
                "index format {} (this node reads {FORMAT})",
                index.format
            )));
        }
        let mut at = index.segments.first().map_or(0, |s| s.from);
        for s in &index.segments {
            if s.from != at || s.next < s.from || s.len > MAX_SEGMENT_BYTES {
                return Err(WebError::Malformed(format!(
                    "index: segment {} at {}..{} of {} bytes does not follow {at}",
                    hex::encode(s.hash),
                    s.from,
                    s.next,
                    s.len
                )));
            }
            at = s.next;
        }
        if at > index.end {
            return Err(WebError::Malformed(format!(
                "index: segments run to {at}, past its end {}",
                index.end
            )));
        }
        Ok(index)
    }

    /// The segments holding positions from `from` on: the one covering
    /// `from` (a tail segment may have been cut again, longer) and all
    /// after it.
    pub fn from_position(&self, from: u64) -> &[SegmentRef] {
        let first = self.segments.partition_point(|s| s.next <= from);
        &self.segments[first..]
    }
}

/// The path of a content-addressed file under the tree's root.
pub fn object_path(hash: &[u8; 32]) -> String {
    format!("{OBJECTS}/{}", hex::encode(hash))
}

/// The path of a file's outboard under the tree's root.
pub fn outboard_path(hash: &[u8; 32]) -> String {
    format!("{OBJECTS}/{}.ob", hex::encode(hash))
}

/// Decodes a segment whose hash was already checked.
pub fn decode_segment(bytes: &[u8]) -> Result<LogResponse, WebError> {
    bounded::postcard(bytes, LOG_DECODE_CEILING)
        .map_err(|e| WebError::Malformed(format!("segment: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(from: u64, next: u64) -> SegmentRef {
        SegmentRef {
            from,
            next,
            entries: (next - from) as u32,
            hash: [from as u8; 32],
            len: 10,
        }
    }

    #[test]
    fn an_index_round_trips_and_finds_the_segment_covering_a_position() {
        let mut index = WebIndex::empty([7; 16]);
        index.segments = vec![seg(0, 256), seg(256, 512), seg(512, 600)];
        index.end = 600;
        let back = WebIndex::decode(&index.encode()).unwrap();
        assert_eq!(back, index);
        assert_eq!(back.from_position(0).len(), 3);
        assert_eq!(back.from_position(300)[0].from, 256);
        assert_eq!(back.from_position(512)[0].from, 512);
        assert!(back.from_position(600).is_empty());
    }

    #[test]
    fn an_index_with_a_gap_a_wrong_format_or_too_many_bytes_is_refused() {
        let mut index = WebIndex::empty([7; 16]);
        index.segments = vec![seg(0, 256), seg(300, 512)];
        index.end = 512;
        assert!(WebIndex::decode(&index.encode()).is_err());
        let mut index = WebIndex::empty([7; 16]);
        index.format = 9;
        assert!(WebIndex::decode(&index.encode()).is_err());
        let mut index = WebIndex::empty([7; 16]);
        index.segments = vec![seg(0, 256)];
        index.end = 100;
        assert!(WebIndex::decode(&index.encode()).is_err());
        let big = vec![0u8; MAX_INDEX_BYTES as usize + 1];
        assert!(WebIndex::decode(&big).is_err());
        assert!(WebIndex::decode(&[1, 2, 3]).is_err());
    }
}
