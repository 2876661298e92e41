//! One blob of a fetch: what to ask for next and what an answer is worth.
//!
//! A blob of one piece ([`PIECE_LEN`]) is asked for whole and checked by
//! its hash. A larger one is asked for its outboard first, checked against
//! its hash, and then in ranges of whole pieces, each piece checked as it
//! comes ([`crate::proto::pieces`]). So the pieces so far are kept whoever
//! sent them, across peers and connections, and a false piece is charged
//! at once to the one peer that sent it.
//!
//! Ranges are sized to the link: what the peer delivered lately, for
//! [`TARGET`] of transfer, so that a slow link is asked for little at a
//! time instead of being cut off by the request timeout and asked again
//! from zero; and a request counts as stalled once it has taken several
//! times what its size should take, not a fixed long time.

use std::time::Duration;

use super::super::messages::{CHUNK, FetchRequest, FetchResponse};
use crate::proto::pieces::{Assembly, Outboard, PIECE_LEN, has_outboard};
use crate::proto::{Entry, check_blob};

/// How long one range should take at the peer's measured rate.
pub const TARGET: Duration = Duration::from_secs(2);
/// A range from a peer with no rate measured yet.
pub const FIRST_RANGE: u64 = 4 * PIECE_LEN;
/// Least time a request is given before it counts as stalled, whatever
/// its size: a round trip on a slow path, and the peer's disk.
pub const MIN_STALL: Duration = Duration::from_secs(3);
/// A request is stalled once it took this many times what it should.
const STALL_FACTOR: u32 = 4;

/// Where a blob stands.
#[derive(Debug)]
enum Progress {
    /// Of one piece: asked whole.
    Whole,
    /// Of several pieces, before its outboard came.
    NeedOutboard,
    /// Pieces checked as they come.
    Pieces(Box<Assembly>),
}

/// What was asked, to check the answer against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Asked {
    Whole,
    Outboard,
    Range { offset: u64, len: u64 },
}

impl Asked {
    /// Bytes the answer carries, for the stall time.
    pub(super) fn len(&self, entry: &Entry) -> u64 {
        match *self {
            Asked::Whole => entry.size,
            Asked::Outboard => Outboard::encoded_len(entry.size) as u64,
            Asked::Range { len, .. } => len,
        }
    }
}

/// What an answer did.
#[derive(Debug)]
pub(super) enum Taken {
    /// Good bytes; more to ask.
    More { bytes: u64 },
    /// The blob is whole and checked.
    Done { blob: Vec<u8>, bytes: u64 },
    /// The peer does not hold it (now).
    NotFound,
    /// An answer that does not fit the question.
    Malformed(&'static str),
    /// Bytes that fail their check.
    False(String),
}

/// One blob being fetched.
#[derive(Debug)]
pub(super) struct BlobFetch {
    entry: Entry,
    progress: Progress,
}

impl BlobFetch {
    pub(super) fn new(entry: Entry) -> Self {
        let progress = if has_outboard(entry.size) {
            Progress::NeedOutboard
        } else {
            Progress::Whole
        };
        Self { entry, progress }
    }

    pub(super) fn entry(&self) -> &Entry {
        &self.entry
    }

    /// Bytes of checked pieces held (kept when the fetch changes peers).
    #[cfg(test)]
    pub(super) fn verified_bytes(&self) -> u64 {
        match &self.progress {
            Progress::Pieces(a) => a.verified_bytes(),
            _ => 0,
        }
    }

    /// The next request, with a range of about `len` bytes.
    pub(super) fn next(&self, len: u64) -> (FetchRequest, Asked) {
        let hash = self.entry.hash;
        match &self.progress {
            Progress::Whole => (FetchRequest::Blob { hash, offset: 0 }, Asked::Whole),
            Progress::NeedOutboard => (FetchRequest::Outboard { hash }, Asked::Outboard),
            Progress::Pieces(a) => {
                // Whole pieces only: an answer then never mixes two
                // senders' bytes in one piece.
                let want = (len / PIECE_LEN).max(1) * PIECE_LEN;
                let (offset, len) = a
                    .next_range(0, want.min(CHUNK))
                    .unwrap_or((self.entry.size, 0));
                let request = FetchRequest::Range {
                    hash,
                    offset,
                    len: len as u32,
                };
                (request, Asked::Range { offset, len })
            }
        }
    }

    /// Takes the answer to `asked`.
    pub(super) fn take(&mut self, asked: Asked, response: FetchResponse) -> Taken {
        let size = self.entry.size;
        match (asked, response) {
            (_, FetchResponse::NotFound) => Taken::NotFound,
            (
                Asked::Whole,
                FetchResponse::Chunk {
                    total,
                    offset,
                    data,
                },
            ) => {
                if total != size || offset != 0 || data.len() as u64 != size {
                    return Taken::Malformed("malformed blob chunk");
                }
                if let Err(e) = check_blob(&self.entry, &data) {
                    return Taken::False(format!("tampered blob: {e}"));
                }
                let bytes = data.len() as u64;
                Taken::Done { blob: data, bytes }
            }
            (Asked::Outboard, FetchResponse::Outboard { total, data }) => {
                if total != size {
                    return Taken::Malformed("outboard of another size");
                }
                match Outboard::verify(self.entry.hash, size, &data) {
                    Ok(outboard) => {
                        self.progress = Progress::Pieces(Box::new(Assembly::new(outboard)));
                        Taken::More {
                            bytes: data.len() as u64,
                        }
                    }
                    Err(e) => Taken::False(format!("false outboard: {e}")),
                }
            }
            (
                Asked::Range { offset, len },
                FetchResponse::Chunk {
                    total,
                    offset: at,
                    data,
                },
            ) => {
                let Progress::Pieces(assembly) = &mut self.progress else {
                    return Taken::Malformed("a range before the outboard");
                };
                if total != size || at != offset || data.len() as u64 != len {
                    return Taken::Malformed("malformed blob range");
                }
                if let Err(e) = assembly.put(offset, &data) {
                    return Taken::False(format!("tampered blob: {e}"));
                }
                let bytes = data.len() as u64;
                if !assembly.is_complete() {
                    return Taken::More { bytes };
                }
                let Progress::Pieces(done) = std::mem::replace(&mut self.progress, Progress::Whole)
                else {
                    return Taken::Malformed("an incomplete blob");
                };
                match done.finish() {
                    Some(blob) => Taken::Done { blob, bytes },
                    None => Taken::Malformed("an incomplete blob"),
                }
            }
            _ => Taken::Malformed("an answer of another kind than asked"),
        }
    }
}

/// What a peer delivered lately, in bytes a second, and how much to ask
/// it for at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Rate(f64);

impl Rate {
    /// A measured answer of `bytes` in `took`.
    pub(super) fn sample(old: Option<Rate>, bytes: u64, took: Duration) -> Rate {
        let secs = took.as_secs_f64().max(0.001);
        let sample = bytes as f64 / secs;
        match old {
            Some(Rate(r)) => Rate(0.5 * r + 0.5 * sample),
            None => Rate(sample),
        }
    }

    /// A stalled request: ask for much less next time.
    pub(super) fn stalled(old: Option<Rate>) -> Rate {
        Rate(old.map_or(PIECE_LEN as f64 / TARGET.as_secs_f64(), |Rate(r)| r / 4.0))
    }

    /// Bytes to ask for in one range.
    pub(super) fn range(rate: Option<Rate>) -> u64 {
        match rate {
            None => FIRST_RANGE,
            Some(Rate(r)) => ((r * TARGET.as_secs_f64()) as u64).clamp(PIECE_LEN, CHUNK),
        }
    }

    /// How long a request of `len` bytes may go unanswered before it
    /// counts as stalled: [`STALL_FACTOR`] times what it should take, at
    /// least [`MIN_STALL`], at most `cap` (the transport's own timeout).
    pub(super) fn stall(rate: Option<Rate>, len: u64, cap: Duration) -> Duration {
        let Some(Rate(r)) = rate else {
            return cap;
        };
        let should = Duration::from_secs_f64((len as f64 / r.max(1.0)).min(3600.0));
        (should * STALL_FACTOR).clamp(MIN_STALL.min(cap), cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{BODY_MEDIA_TYPE, BlobHash};

    fn entry(data: &[u8]) -> Entry {
        Entry {
            path: "media/a.png".into(),
            media_type: BODY_MEDIA_TYPE.into(),
            size: data.len() as u64,
            hash: BlobHash::of(data),
        }
    }

    fn answer(data: &[u8], request: &FetchRequest) -> FetchResponse {
        match request {
            FetchRequest::Blob { offset, .. } => FetchResponse::Chunk {
                total: data.len() as u64,
                offset: *offset,
                data: data[*offset as usize..].to_vec(),
            },
            FetchRequest::Outboard { .. } => FetchResponse::Outboard {
                total: data.len() as u64,
                data: Outboard::compute(data).encode(),
            },
            FetchRequest::Range { offset, len, .. } => FetchResponse::Chunk {
                total: data.len() as u64,
                offset: *offset,
                data: data[*offset as usize..][..*len as usize].to_vec(),
            },
        }
    }

    #[test]
    fn a_large_blob_comes_in_checked_pieces_and_a_false_one_costs_one_piece() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let mut b = BlobFetch::new(entry(&data));
        let (r, asked) = b.next(FIRST_RANGE);
        assert_eq!(asked, Asked::Outboard);
        assert!(matches!(
            b.take(asked, answer(&data, &r)),
            Taken::More { .. }
        ));
        // The first range, then a false one from another peer.
        let (r, asked) = b.next(FIRST_RANGE);
        assert_eq!(
            asked,
            Asked::Range {
                offset: 0,
                len: FIRST_RANGE
            }
        );
        assert!(matches!(
            b.take(asked, answer(&data, &r)),
            Taken::More { .. }
        ));
        let (r, asked) = b.next(2 * PIECE_LEN);
        let mut lie = answer(&data, &r);
        if let FetchResponse::Chunk { data, .. } = &mut lie {
            data[PIECE_LEN as usize + 5] ^= 1;
        }
        assert!(matches!(b.take(asked, lie), Taken::False(_)));
        // The good piece of the false answer was kept; the false one is asked again.
        assert_eq!(b.verified_bytes(), FIRST_RANGE + PIECE_LEN);
        let mut blob = None;
        for _ in 0..100 {
            let (r, asked) = b.next(CHUNK);
            match b.take(asked, answer(&data, &r)) {
                Taken::More { .. } => {}
                Taken::Done { blob: d, .. } => {
                    blob = Some(d);
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(blob.unwrap(), data);
    }

    #[test]
    fn answers_that_do_not_fit_are_malformed() {
        let data = vec![7u8; 100_000];
        let mut b = BlobFetch::new(entry(&data));
        let (_, asked) = b.next(FIRST_RANGE);
        // A chunk where the outboard was asked.
        let chunk = FetchResponse::Chunk {
            total: 100_000,
            offset: 0,
            data: vec![7; 10],
        };
        assert!(matches!(b.take(asked, chunk), Taken::Malformed(_)));
        let wrong = FetchResponse::Outboard {
            total: 99_999,
            data: vec![],
        };
        assert!(matches!(b.take(asked, wrong), Taken::Malformed(_)));
        let forged = FetchResponse::Outboard {
            total: 100_000,
            data: vec![0; Outboard::encoded_len(100_000)],
        };
        assert!(matches!(b.take(asked, forged), Taken::False(_)));
        let (r, asked) = b.next(FIRST_RANGE);
        b.take(asked, answer(&data, &r));
        let (r, asked) = b.next(FIRST_RANGE);
        let FetchResponse::Chunk { total, data: d, .. } = answer(&data, &r) else {
            panic!()
        };
        // Short of what was asked, or from elsewhere.
        let short = FetchResponse::Chunk {
            total,
            offset: 0,
            data: d[..100].to_vec(),
        };
        assert!(matches!(b.take(asked, short), Taken::Malformed(_)));
        let moved = FetchResponse::Chunk {
            total,
            offset: PIECE_LEN,
            data: d,
        };
        assert!(matches!(b.take(asked, moved), Taken::Malformed(_)));
    }

    #[test]
    fn a_small_blob_is_asked_whole() {
        let data = vec![3u8; 5000];
        let mut b = BlobFetch::new(entry(&data));
        let (r, asked) = b.next(FIRST_RANGE);
        assert_eq!(asked, Asked::Whole);
        assert!(matches!(
            b.take(asked, answer(&data, &r)),
            Taken::Done { .. }
        ));
    }

    #[test]
    fn ranges_and_stall_times_follow_the_link() {
        let cap = Duration::from_secs(15);
        // 128 kbit/s: 16 KB/s; two seconds' worth is two pieces.
        let slow = Rate::sample(None, 64 * 1024, Duration::from_secs(4));
        assert_eq!(Rate::range(Some(slow)), 2 * PIECE_LEN);
        // Such a range should take 2 s; it is stalled after 8.
        let stall = Rate::stall(Some(slow), 2 * PIECE_LEN, cap);
        assert_eq!(stall, Duration::from_secs(8));
        // A fast link is asked for whole chunks and given the floor.
        let fast = Rate::sample(None, CHUNK, Duration::from_millis(5));
        assert_eq!(Rate::range(Some(fast)), CHUNK);
        assert_eq!(Rate::stall(Some(fast), CHUNK, cap), MIN_STALL);
        // A stall shrinks the next range; nothing is asked below a piece.
        let after = Rate::stalled(Some(slow));
        assert_eq!(Rate::range(Some(after)), PIECE_LEN);
        // Never past the transport's own timeout.
        let crawl = Rate::sample(None, 16 * 1024, Duration::from_secs(60));
        assert_eq!(Rate::stall(Some(crawl), PIECE_LEN, cap), cap);
    }
}
