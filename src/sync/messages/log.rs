//! The log: how a quiet reader learns every story a mirror carries
//! without naming one.
//!
//! A mirror numbers what it stores (bundles, heads, revocations, mirror
//! lists) in the order it stored them: its log. A reader asks "what comes after
//! position `from`?" and gets a page of entries of every publisher the
//! mirror carries; it keeps those its trust list names and drops the
//! rest unwritten. Asked at the end of the log with `wait`, the mirror
//! holds the request until something new is stored (or [`LOG_WAIT`]
//! passes), so a connected reader hears of a story as soon as the mirror
//! has it, without gossip and without a subscription that would name a
//! publisher. The request names nothing but a position in the mirror's
//! own numbering.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SyncBundle;
use crate::proto::bounded;
use crate::proto::limits;
use crate::proto::mirrors::MAX_MIRROR_LIST_BYTES;

/// Protocol name of the log.
pub const LOG_PROTOCOL: &str = "/kolokol/log/1";
/// Entries in one page at most.
pub const MAX_LOG_ENTRIES: usize = 256;
/// Bytes of manifests, heads, revocations, certificates and inline blobs a
/// mirror puts in one page before it stops (the reader asks on from
/// `next`). The first entry always goes.
pub const LOG_BUDGET: usize = 2 * 1024 * 1024;
/// A bundle whose blobs together stay under this travels whole in a page:
/// a story's text and small images, about 5 KiB for most stories. Larger
/// bundles come as their manifest only; a reader fetches their blobs by
/// hash if it trusts the publisher, which the mirror then sees (see
/// docs/threat-model.md).
pub const LOG_INLINE: u64 = 32 * 1024;
/// How long a mirror holds a request made at the end of its log before it
/// answers with an empty page. Under the request timeout of readers, over
/// what idle connections tolerate.
pub const LOG_WAIT: Duration = Duration::from_secs(20);
/// Largest log request read.
pub const MAX_LOG_REQUEST: usize = 64;
/// Largest log response read: a page at its budget, one entry past it
/// (a manifest at its limit and its inline blobs) and a certificate per
/// entry (pinned by a test).
pub const MAX_LOG_RESPONSE: usize = 3 * 1024 * 1024 + 512 * 1024;
/// Most bytes a decoded log message may hold.
pub const LOG_DECODE_CEILING: usize = bounded::ceiling(MAX_LOG_RESPONSE);
/// A reader that comes back asks from its position rounded down to a
/// multiple of this, so that the position it asks from does not single out
/// the session it left (see docs/threat-model.md); the entries in between
/// come again and cost a few hundred KiB at most.
pub const LOG_GRAIN: u64 = 64;

/// A reader's question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRequest {
    /// Send entries from this position on.
    pub from: u64,
    /// At the end of the log, wait for the next entry (up to
    /// [`LOG_WAIT`]) instead of answering at once.
    pub wait: bool,
}

/// One entry of a mirror's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogEntry {
    /// A bundle: its manifest, and its blobs when the bundle is small
    /// ([`LOG_INLINE`]).
    Bundle(SyncBundle),
    /// A publisher's newest head (its certificate in the page's list).
    Head(
        #[serde(deserialize_with = "bounded::fields::signed::<{ limits::MAX_HEAD_BYTES }, _>")]
        Vec<u8>,
    ),
    /// A revocation.
    Revocation(
        #[serde(
            deserialize_with = "bounded::fields::signed::<{ limits::MAX_REVOCATION_BYTES }, _>"
        )]
        Vec<u8>,
    ),
    /// A publisher's newest mirror list (its certificate in the page's
    /// list). New variants go last: the index is the wire tag.
    MirrorList(
        #[serde(deserialize_with = "bounded::fields::signed::<{ MAX_MIRROR_LIST_BYTES }, _>")]
        Vec<u8>,
    ),
}

/// A mirror's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogResponse {
    /// A page of the log.
    Page {
        /// Names this log: a mirror whose store was made anew numbers
        /// from the start again under another name, and a reader's
        /// position in the old one means nothing there.
        log: [u8; 16],
        /// The certificates the page's manifests and heads need (each
        /// once).
        #[serde(
            deserialize_with = "bounded::fields::signed_list::<MAX_LOG_ENTRIES, { limits::MAX_CERTIFICATE_BYTES }, _>"
        )]
        certificates: Vec<Vec<u8>>,
        /// The entries, in log order.
        #[serde(deserialize_with = "bounded::fields::at_most::<MAX_LOG_ENTRIES, _, _>")]
        entries: Vec<LogEntry>,
        /// Where to ask from next.
        next: u64,
        /// Where the log ends now: with `next < end` there is more to
        /// ask for at once.
        end: u64,
    },
    /// Not answered now (the reader is banned, or the mirror busy): ask
    /// again later.
    Refused,
}

/// Where a reader coming back asks from (see [`LOG_GRAIN`]).
pub fn resume_from(next: u64) -> u64 {
    next - next % LOG_GRAIN
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::messages::SyncBundle;

    #[test]
    fn the_largest_honest_page_fits_the_limit() {
        let signed = |n: usize| vec![0xa5u8; n];
        let mut entries = Vec::new();
        let mut used = 0;
        let blob = LOG_INLINE as usize / limits::MAX_ENTRIES;
        while entries.len() < MAX_LOG_ENTRIES && used <= LOG_BUDGET {
            used += limits::MAX_MANIFEST_BYTES + LOG_INLINE as usize;
            entries.push(LogEntry::Bundle(SyncBundle {
                manifest: signed(limits::MAX_MANIFEST_BYTES),
                blobs: Some(vec![vec![7; blob]; limits::MAX_ENTRIES]),
            }));
        }
        let page = LogResponse::Page {
            log: [1; 16],
            certificates: vec![signed(limits::MAX_CERTIFICATE_BYTES); entries.len()],
            entries,
            next: u64::MAX,
            end: u64::MAX,
        };
        let bytes = postcard::to_allocvec(&page).unwrap();
        assert!(bytes.len() <= MAX_LOG_RESPONSE, "{}", bytes.len());
        let back: LogResponse = bounded::postcard(&bytes, LOG_DECODE_CEILING).unwrap();
        assert_eq!(back, page);
        let request = postcard::to_allocvec(&LogRequest {
            from: u64::MAX,
            wait: true,
        })
        .unwrap();
        assert!(request.len() <= MAX_LOG_REQUEST);
    }

    #[test]
    fn coming_back_rounds_the_position_down() {
        assert_eq!(resume_from(0), 0);
        assert_eq!(resume_from(63), 0);
        assert_eq!(resume_from(64), 64);
        assert_eq!(resume_from(130), 128);
    }
}
