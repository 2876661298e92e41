//! What nodes say to each other: gossip announcements, the fetch and
//! catch-up messages, their limits and digests. Only the formats live
//! here; the network's codecs (`net::wire`) frame them on streams, with
//! the size of every message bounded before it is read.

use serde::{Deserialize, Serialize};

mod log;
pub use log::*;

use crate::proto::bounded::{self, BoundedError};
use crate::proto::mirrors::MAX_MIRROR_LIST_BYTES;
use crate::proto::pieces::MAX_OUTBOARD_BYTES;
use crate::proto::{BlobHash, PublicKey, limits};

/// Protocol name of blob fetching.
pub const FETCH_PROTOCOL: &str = "/kolokol/fetch/1";
/// Bytes of a blob sent in one fetch response.
pub const CHUNK: u64 = 256 * 1024;
/// Largest fetch request read.
pub const MAX_REQUEST: usize = 1024;
/// Largest fetch response read: one chunk and its framing.
pub const MAX_RESPONSE: usize = CHUNK as usize + 1024;
// An outboard answers in one response.
const _: () = assert!(MAX_OUTBOARD_BYTES <= CHUNK as usize);
/// Largest gossip message: a manifest and its certificate, with framing.
pub const MAX_GOSSIP: usize = limits::MAX_MANIFEST_BYTES + limits::MAX_CERTIFICATE_BYTES + 64;
// A mirror list and its certificate travel in one message.
const _: () = assert!(MAX_MIRROR_LIST_BYTES + limits::MAX_CERTIFICATE_BYTES + 64 <= MAX_GOSSIP);

/// The gossip topic of a publisher.
pub fn topic_name(publisher: &PublicKey) -> String {
    format!("kolokol/v1/publisher/{}", hex::encode(publisher.as_bytes()))
}

/// A gossip message. Each carries the certificate its signature needs, so
/// a node that has not seen the certificate yet can still verify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Announcement {
    /// A new bundle: its signing key's certificate and its manifest. The
    /// blobs are fetched separately.
    Bundle {
        /// Signed key certificate.
        #[serde(
            deserialize_with = "bounded::fields::bytes::<{ limits::MAX_CERTIFICATE_BYTES }, _>"
        )]
        certificate: Vec<u8>,
        /// Signed manifest.
        #[serde(deserialize_with = "bounded::fields::bytes::<{ limits::MAX_MANIFEST_BYTES }, _>")]
        manifest: Vec<u8>,
    },
    /// The publisher's heartbeat.
    Head {
        /// Signed key certificate.
        #[serde(
            deserialize_with = "bounded::fields::bytes::<{ limits::MAX_CERTIFICATE_BYTES }, _>"
        )]
        certificate: Vec<u8>,
        /// Signed head.
        #[serde(deserialize_with = "bounded::fields::bytes::<{ limits::MAX_HEAD_BYTES }, _>")]
        head: Vec<u8>,
    },
    /// A new signing key.
    Certificate(
        #[serde(
            deserialize_with = "bounded::fields::bytes::<{ limits::MAX_CERTIFICATE_BYTES }, _>"
        )]
        Vec<u8>,
    ),
    /// A revoked signing key.
    Revocation(
        #[serde(
            deserialize_with = "bounded::fields::bytes::<{ limits::MAX_REVOCATION_BYTES }, _>"
        )]
        Vec<u8>,
    ),
    /// The publisher's newest mirror list. New variants go last: the
    /// index is the wire tag, and older nodes refuse only the new kind.
    MirrorList {
        /// Signed key certificate.
        #[serde(
            deserialize_with = "bounded::fields::bytes::<{ limits::MAX_CERTIFICATE_BYTES }, _>"
        )]
        certificate: Vec<u8>,
        /// Signed mirror list.
        #[serde(deserialize_with = "bounded::fields::bytes::<{ MAX_MIRROR_LIST_BYTES }, _>")]
        list: Vec<u8>,
    },
}

impl Announcement {
    /// The encoded message.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a message already bounded by gossipsub's transmit limit.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        Self::decode_bounded(bytes).ok()
    }

    /// Decodes a message, saying why it was refused: over its limits
    /// (no honest node sends it) or garbled.
    pub fn decode_bounded(bytes: &[u8]) -> Result<Self, BoundedError> {
        if bytes.len() > MAX_GOSSIP {
            return Err(BoundedError::OverLimits {
                what: "a gossip message",
                limit: MAX_GOSSIP,
            });
        }
        bounded::postcard(bytes, bounded::ceiling(MAX_GOSSIP))
    }
}

/// A fetch request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchRequest {
    /// Up to [`CHUNK`] bytes of a blob from `offset`: how a blob of one
    /// piece ([`PIECE_LEN`](crate::proto::pieces::PIECE_LEN)) is asked for, whole.
    Blob {
        /// The blob.
        hash: BlobHash,
        /// Where to start.
        offset: u64,
    },
    /// The outboard of a blob of more than one piece
    /// ([`crate::proto::pieces`]): what each piece is then checked against.
    Outboard {
        /// The blob.
        hash: BlobHash,
    },
    /// `len` bytes (at most [`CHUNK`]) of a blob from `offset`: the asker
    /// sizes them to what the link carries, so that a slow link is asked
    /// for less rather than cut off.
    Range {
        /// The blob.
        hash: BlobHash,
        /// Where to start: the start of a piece.
        offset: u64,
        /// How many bytes.
        len: u32,
    },
}

impl FetchRequest {
    /// The blob asked about.
    pub fn hash(&self) -> BlobHash {
        match self {
            Self::Blob { hash, .. } | Self::Outboard { hash } | Self::Range { hash, .. } => *hash,
        }
    }
}

/// A fetch response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchResponse {
    /// A piece of the blob.
    Chunk {
        /// The blob's whole size.
        total: u64,
        /// Where this piece starts.
        offset: u64,
        /// The piece, at most [`CHUNK`] bytes.
        #[serde(deserialize_with = "bounded::fields::bytes::<{ CHUNK as usize }, _>")]
        data: Vec<u8>,
    },
    /// The peer does not hold the blob.
    NotFound,
    /// A blob's outboard.
    Outboard {
        /// The blob's whole size.
        total: u64,
        /// The chaining value of each piece.
        #[serde(deserialize_with = "bounded::fields::bytes::<{ MAX_OUTBOARD_BYTES }, _>")]
        data: Vec<u8>,
    },
}

/// Protocol name of catch-up.
pub const SYNC_PROTOCOL: &str = "/kolokol/sync/1";
/// Publishers asked about in one summary request.
pub const MAX_SYNC_PUBLISHERS: usize = 32;
/// Sequence ranges of one publisher in one summary response; more are
/// paged with [`PublisherState::more`].
pub const MAX_RANGES: usize = 1024;
/// Revocations of one publisher in one summary response.
pub const MAX_SYNC_REVOCATIONS: usize = 16;
/// Bundles asked for in one request.
pub const MAX_SYNC_SEQS: usize = 64;
/// Bytes of manifests and inline blobs a responder puts in one bundles
/// response before it stops (the asker asks again for the rest).
pub const SYNC_BUDGET: usize = 2 * 1024 * 1024;
/// A bundle whose blobs together stay under this travels inline in a
/// bundles response; larger ones are fetched blob by blob.
pub const INLINE_BUNDLE: u64 = 256 * 1024;
/// Largest catch-up request read.
pub const MAX_SYNC_REQUEST: usize = 16 * 1024;
/// Largest catch-up response read. The largest an honest node sends is a
/// full summary page: [`MAX_SYNC_PUBLISHERS`] publishers, each with a head
/// and its certificate, [`MAX_SYNC_REVOCATIONS`] revocations and
/// [`MAX_RANGES`] ranges, about 2.8 MiB; a bundles response stays within
/// [`SYNC_BUDGET`], one bundle past it and a certificate per bundle, about
/// 2.4 MiB (both pinned by tests).
pub const MAX_SYNC_RESPONSE: usize = 3 * 1024 * 1024;
/// Most bytes a decoded catch-up message may hold.
pub const SYNC_DECODE_CEILING: usize = bounded::ceiling(MAX_SYNC_RESPONSE);

/// What a node asks a peer during catch-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// "Here is what I hold of these publishers; what do you hold?"
    Summary {
        /// At most [`MAX_SYNC_PUBLISHERS`].
        #[serde(deserialize_with = "bounded::fields::at_most::<MAX_SYNC_PUBLISHERS, _, _>")]
        publishers: Vec<PublisherQuery>,
    },
    /// "Send me these bundles of one publisher."
    Bundles {
        /// The publisher.
        publisher: PublicKey,
        /// Sequence numbers, at most [`MAX_SYNC_SEQS`].
        #[serde(deserialize_with = "bounded::fields::at_most::<MAX_SYNC_SEQS, _, _>")]
        sequences: Vec<u64>,
    },
    /// "Which versions of this story do you hold?" (a newsroom's report).
    Holds {
        /// The publisher.
        publisher: PublicKey,
        /// The story.
        story: crate::proto::StoryId,
    },
}

/// Versions of one story listed in a [`SyncResponse::Holds`].
pub const MAX_HELD_VERSIONS: usize = 64;

/// The asker's side of one publisher in a summary request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublisherQuery {
    /// The publisher.
    pub publisher: PublicKey,
    /// The sequence number of the asker's newest head (0: none).
    pub head: u64,
    /// [`revocations_digest`] of the revocations of this publisher the
    /// asker knows: when the peer's differs, it sends its own.
    pub revocations: [u8; 32],
    /// [`ranges_digest`] of the sequence numbers the asker holds: when the
    /// peer's is the same, it sends no ranges.
    pub digest: [u8; 32],
    /// Send ranges from this sequence number on (paging).
    pub from: u64,
}

/// The responder's side of one publisher in a summary response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublisherState {
    /// The publisher.
    pub publisher: PublicKey,
    /// The responder's newest head and its signing certificate, when it is
    /// newer than the asker's.
    #[serde(
        deserialize_with = "bounded::fields::opt_bytes_pair::<{ limits::MAX_HEAD_BYTES }, { limits::MAX_CERTIFICATE_BYTES }, _>"
    )]
    pub head: Option<(Vec<u8>, Vec<u8>)>,
    /// The responder's revocations, newest first and at most
    /// [`MAX_SYNC_REVOCATIONS`], when its digest differs from the asker's.
    #[serde(
        deserialize_with = "bounded::fields::signed_list::<MAX_SYNC_REVOCATIONS, { limits::MAX_REVOCATION_BYTES }, _>"
    )]
    pub revocations: Vec<Vec<u8>>,
    /// The sequence ranges it holds from `from` on; `None` when its digest
    /// equals the asker's.
    #[serde(deserialize_with = "bounded::fields::opt_at_most::<MAX_RANGES, _, _>")]
    pub ranges: Option<Vec<(u64, u64)>>,
    /// Where the next page starts, if `ranges` was cut at [`MAX_RANGES`].
    pub more: Option<u64>,
}

/// One bundle in a bundles response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncBundle {
    /// Its signed manifest.
    #[serde(deserialize_with = "bounded::fields::bytes::<{ limits::MAX_MANIFEST_BYTES }, _>")]
    pub manifest: Vec<u8>,
    /// Its blobs in manifest order, when small enough to travel inline.
    #[serde(
        deserialize_with = "bounded::fields::opt_bytes_list::<{ limits::MAX_ENTRIES }, { INLINE_BUNDLE as usize }, _>"
    )]
    pub blobs: Option<Vec<Vec<u8>>>,
}

/// A catch-up response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    /// One entry per asked publisher the responder carries.
    Summary {
        /// The publishers' states.
        #[serde(deserialize_with = "bounded::fields::at_most::<MAX_SYNC_PUBLISHERS, _, _>")]
        publishers: Vec<PublisherState>,
    },
    /// Bundles asked for, in the order asked, skipping those not held.
    Bundles {
        /// Certificates the manifests need (each once).
        #[serde(
            deserialize_with = "bounded::fields::signed_list::<MAX_SYNC_SEQS, { limits::MAX_CERTIFICATE_BYTES }, _>"
        )]
        certificates: Vec<Vec<u8>>,
        /// The bundles.
        #[serde(deserialize_with = "bounded::fields::at_most::<MAX_SYNC_SEQS, _, _>")]
        bundles: Vec<SyncBundle>,
        /// The first asked sequence number left out for lack of room
        /// (asked again later); `None` when every held one was sent.
        cut_at: Option<u64>,
    },
    /// The request was refused: the asker is banned, asked for bundles of
    /// a publisher not carried, or asked for full summaries too often.
    /// (A request over its limits gets no response: its stream is reset.)
    Refused,
    /// The bundle ids of the versions of the story held, oldest first, at
    /// most [`MAX_HELD_VERSIONS`] (the newest ones).
    Holds {
        /// The bundles held.
        #[serde(deserialize_with = "bounded::fields::at_most::<MAX_HELD_VERSIONS, _, _>")]
        bundles: Vec<crate::proto::BundleId>,
    },
}

/// The digest of a set of sequence ranges, compared instead of the ranges.
pub fn ranges_digest(ranges: &[(u64, u64)]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("kolokol/v1/sync-ranges");
    for (a, b) in ranges {
        h.update(&a.to_le_bytes());
        h.update(&b.to_le_bytes());
    }
    *h.finalize().as_bytes()
}

/// The digest of a publisher's revocations (their signed bytes, in any
/// order), compared instead of the revocations.
pub fn revocations_digest<'a>(revocations: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut ids: Vec<[u8; 32]> = revocations
        .into_iter()
        .map(|r| *blake3::hash(r).as_bytes())
        .collect();
    ids.sort_unstable();
    let mut h = blake3::Hasher::new_derive_key("kolokol/v1/sync-revocations");
    for id in &ids {
        h.update(id);
    }
    *h.finalize().as_bytes()
}

/// The Kademlia protocol name: our own, so the network's DHT holds only
/// Kolokol nodes.
pub const KAD_PROTOCOL: &str = "/kolokol/kad/1";

/// The DHT key under which mirrors of `publisher` put provider records.
pub fn mirror_key(publisher: &PublicKey) -> Vec<u8> {
    let mut h = blake3::Hasher::new_derive_key("kolokol/v1/mirrors");
    h.update(publisher.as_bytes());
    h.finalize().as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_and_refuse_trailing_bytes() {
        let a = Announcement::Bundle {
            certificate: vec![1, 2],
            manifest: vec![3; 10],
        };
        let bytes = a.encode();
        assert_eq!(Announcement::decode(&bytes), Some(a));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Announcement::decode(&longer), None);
        assert_eq!(Announcement::decode(&vec![0; MAX_GOSSIP + 1]), None);
    }

    /// Decodes `bytes` as `T`, asserting that what it charged stays within
    /// `k` times the input (plus the slack every decode has).
    fn charged<T: serde::de::DeserializeOwned>(bytes: &[u8], k: usize) -> Result<T, BoundedError> {
        let meter = bounded::Meter::new(bounded::budget(bytes.len(), SYNC_DECODE_CEILING));
        let out = bounded::postcard_take_metered::<T>(bytes, &meter);
        assert!(
            meter.used() <= k * bytes.len() + bounded::SLACK,
            "{} charged for {} bytes",
            meter.used(),
            bytes.len()
        );
        out.map(|(v, _)| v)
    }

    fn signed(len: usize) -> Vec<u8> {
        vec![0xa5; len]
    }

    /// The largest summary page an honest node sends.
    fn full_summary() -> SyncResponse {
        let state = |i: u8| PublisherState {
            publisher: PublicKey([i; 32]),
            head: Some((
                signed(limits::MAX_HEAD_BYTES),
                signed(limits::MAX_CERTIFICATE_BYTES),
            )),
            revocations: vec![signed(limits::MAX_REVOCATION_BYTES); MAX_SYNC_REVOCATIONS],
            ranges: Some(
                (0..MAX_RANGES as u64)
                    .map(|r| (u64::MAX / 2 + 4 * r, u64::MAX / 2 + 4 * r + 1))
                    .collect(),
            ),
            more: Some(u64::MAX),
        };
        SyncResponse::Summary {
            publishers: (0..MAX_SYNC_PUBLISHERS as u8).map(state).collect(),
        }
    }

    /// The largest bundles response an honest node packs: manifests at
    /// their limit, each with as many inline blobs as a manifest may list
    /// and its own certificate.
    fn full_bundles() -> SyncResponse {
        let mut packer = crate::sync::Packer::new(SYNC_BUDGET);
        let blob = INLINE_BUNDLE as usize / limits::MAX_ENTRIES;
        for seq in 0..MAX_SYNC_SEQS as u64 {
            let manifest = signed(limits::MAX_MANIFEST_BYTES);
            if !packer.fits(seq, manifest.len(), INLINE_BUNDLE) {
                break;
            }
            let cert = signed(limits::MAX_CERTIFICATE_BYTES);
            let id = crate::proto::CertId::of(&cert);
            let blobs = vec![vec![7; blob]; limits::MAX_ENTRIES];
            packer.push(manifest, INLINE_BUNDLE, Some((id, &cert)), Some(blobs));
        }
        packer.finish()
    }

    #[test]
    fn the_largest_honest_responses_fit_the_limit_and_their_budget() {
        for response in [full_summary(), full_bundles()] {
            let bytes = postcard::to_allocvec(&response).unwrap();
            assert!(
                bytes.len() <= MAX_SYNC_RESPONSE,
                "{} bytes over {MAX_SYNC_RESPONSE}",
                bytes.len()
            );
            assert!(bytes.len() > MAX_SYNC_RESPONSE / 2, "{}", bytes.len());
            // Byte strings dominate: what they hold is about what came.
            assert_eq!(charged::<SyncResponse>(&bytes, 2).unwrap(), response);
        }
    }

    #[test]
    fn a_summary_of_empty_revocations_is_refused_while_decoding() {
        // What an attacker can fit in the frame: millions of empty
        // revocations, one byte each.
        let n = MAX_SYNC_RESPONSE - 64;
        let mut bytes = vec![0u8]; // Summary
        bytes.push(1); // one publisher
        bytes.extend_from_slice(&[9; 32]);
        bytes.push(0); // no head
        let mut len = n;
        while len >= 0x80 {
            bytes.push((len as u8) | 0x80);
            len >>= 7;
        }
        bytes.push(len as u8);
        bytes.resize(bytes.len() + n, 0);
        bytes.extend_from_slice(&[0, 0]); // no ranges, no more
        assert!(bytes.len() <= MAX_SYNC_RESPONSE);
        let err = charged::<SyncResponse>(&bytes, 1).unwrap_err();
        assert!(err.is_over_limits(), "{err}");
        // The same shape without the limits takes them all, 24 bytes each.
        type Loose = (
            u8,
            Vec<(
                [u8; 32],
                Option<(Vec<u8>, Vec<u8>)>,
                Vec<Vec<u8>>,
                Option<Vec<(u64, u64)>>,
                Option<u64>,
            )>,
        );
        let (_, publishers): Loose = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(publishers[0].2.len(), n);
    }

    #[test]
    fn every_message_holds_a_small_multiple_of_its_wire_size() {
        let small = SyncResponse::Summary {
            publishers: vec![PublisherState {
                publisher: PublicKey([1; 32]),
                head: None,
                revocations: vec![],
                ranges: Some((1..=MAX_RANGES as u64).map(|i| (2 * i, 2 * i)).collect()),
                more: None,
            }],
        };
        let bytes = postcard::to_allocvec(&small).unwrap();
        assert_eq!(charged::<SyncResponse>(&bytes, 8).unwrap(), small);
        let request = SyncRequest::Bundles {
            publisher: PublicKey([1; 32]),
            sequences: (0..MAX_SYNC_SEQS as u64).collect(),
        };
        let bytes = postcard::to_allocvec(&request).unwrap();
        assert_eq!(charged::<SyncRequest>(&bytes, 8).unwrap(), request);
        let chunk = FetchResponse::Chunk {
            total: 1,
            offset: 0,
            data: vec![1; CHUNK as usize],
        };
        let bytes = postcard::to_allocvec(&chunk).unwrap();
        assert_eq!(charged::<FetchResponse>(&bytes, 2).unwrap(), chunk);
        let a = Announcement::Bundle {
            certificate: signed(100),
            manifest: signed(limits::MAX_MANIFEST_BYTES),
        };
        let bytes = a.encode();
        assert_eq!(charged::<Announcement>(&bytes, 2).unwrap(), a);
    }

    #[test]
    fn counts_and_sizes_past_their_limits_are_refused() {
        let over = [
            postcard::to_allocvec(&SyncRequest::Bundles {
                publisher: PublicKey([1; 32]),
                sequences: (0..=MAX_SYNC_SEQS as u64).collect(),
            })
            .unwrap(),
            postcard::to_allocvec(&SyncRequest::Summary {
                publishers: vec![
                    PublisherQuery {
                        publisher: PublicKey([1; 32]),
                        head: 0,
                        revocations: [0; 32],
                        digest: [0; 32],
                        from: 0,
                    };
                    MAX_SYNC_PUBLISHERS + 1
                ],
            })
            .unwrap(),
        ];
        for bytes in over {
            let err = bounded::postcard::<SyncRequest>(&bytes, SYNC_DECODE_CEILING).unwrap_err();
            assert!(err.is_over_limits(), "{err}");
        }
        let big_head = Announcement::Head {
            certificate: signed(100),
            head: signed(limits::MAX_HEAD_BYTES + 1),
        };
        let err = Announcement::decode_bounded(&big_head.encode()).unwrap_err();
        assert!(err.is_over_limits(), "{err}");
        let held = SyncResponse::Holds {
            bundles: vec![crate::proto::BundleId::of(b"x"); MAX_HELD_VERSIONS + 1],
        };
        let bytes = postcard::to_allocvec(&held).unwrap();
        let err = bounded::postcard::<SyncResponse>(&bytes, SYNC_DECODE_CEILING).unwrap_err();
        assert!(err.is_over_limits(), "{err}");
    }
}
