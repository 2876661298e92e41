//! Verified pieces of a large blob: a blob is cut into pieces of
//! [`PIECE_LEN`], and its *outboard* lists the blake3 chaining value of
//! each piece. The outboard is checked once against the blob's hash (the
//! chaining values merge, by blake3's own tree, into that hash); after that
//! each piece is checked on its own as it arrives.
//!
//! So partial progress is worth keeping: a piece that checks is right
//! whoever sent it and over whichever channel, a piece that does not is
//! charged to its sender at once, and a transfer cut off by a frozen flow
//! goes on from the last good piece on another connection or source.
//!
//! A piece is a whole subtree of blake3's tree (16 chunks of 1 KiB, the
//! last piece possibly short), so the outboard is one level of the tree
//! that bao also uses; only the levels above it are recomputed, which for
//! the largest blob ([`MAX_BLOB_BYTES`], 4,096 pieces) is 4,095 merges.
//! A blob of one piece or less has no outboard: its hash checks it whole.

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};
use thiserror::Error;

use super::ids::BlobHash;
use super::limits::MAX_BLOB_BYTES;

/// Bytes in a piece: 16 blake3 chunks. Small enough that a flow frozen
/// after 16 KiB from the server still yields most of a piece, large enough
/// that the outboard is 1/512 of the blob.
pub const PIECE_LEN: u64 = 16 * 1024;
/// Bytes of one chaining value in an outboard.
pub const CV_LEN: usize = 32;
/// The largest outboard: that of a blob of [`MAX_BLOB_BYTES`].
pub const MAX_OUTBOARD_BYTES: usize = (MAX_BLOB_BYTES.div_ceil(PIECE_LEN) as usize) * CV_LEN;

/// Why an outboard or a piece was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PieceError {
    /// The blob is larger than any blob may be.
    #[error("a blob of {size} bytes is larger than the limit of {MAX_BLOB_BYTES}")]
    BlobTooLarge {
        /// The size claimed.
        size: u64,
    },
    /// The outboard's length is not one chaining value per piece.
    #[error("an outboard for {size} bytes is {expected} bytes long, not {len}")]
    OutboardLength {
        /// The blob's size.
        size: u64,
        /// What it should be.
        expected: usize,
        /// What came.
        len: usize,
    },
    /// The outboard's chaining values do not merge into the blob's hash.
    #[error("the outboard does not match the blob's hash")]
    OutboardMismatch,
    /// A piece index past the end of the blob.
    #[error("piece {index} is past the end of a blob of {pieces} pieces")]
    NoSuchPiece {
        /// The index given.
        index: u64,
        /// Pieces in the blob.
        pieces: u64,
    },
    /// Bytes that do not line up with what is still missing.
    #[error("{len} bytes at offset {offset} do not continue piece {index}")]
    Misplaced {
        /// Where they were to go.
        offset: u64,
        /// How many.
        len: usize,
        /// The piece they fall in.
        index: u64,
    },
    /// A complete piece whose bytes do not hash to its chaining value.
    #[error("piece {index} does not match the outboard")]
    BadPiece {
        /// The piece.
        index: u64,
    },
}

/// Pieces in a blob of `size` bytes (an empty blob has one, empty).
pub fn piece_count(size: u64) -> u64 {
    size.div_ceil(PIECE_LEN).max(1)
}

/// Whether a blob of `size` bytes has an outboard (more than one piece).
pub fn has_outboard(size: u64) -> bool {
    size > PIECE_LEN
}

/// The byte range `(offset, len)` of piece `index` of a blob of `size`.
fn piece_span(size: u64, index: u64) -> (u64, u64) {
    let offset = index * PIECE_LEN;
    (offset, (size - offset).min(PIECE_LEN))
}

fn piece_cv(index: u64, bytes: &[u8]) -> ChainingValue {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(index * PIECE_LEN);
    hasher.update(bytes);
    hasher.finalize_non_root()
}

/// Merges the chaining values of pieces `[first, first + n)` into the
/// chaining value of their subtree, splitting as blake3 does: the left
/// subtree holds the largest power of two of pieces less than `n`.
fn merge(cvs: &[ChainingValue]) -> ChainingValue {
    if cvs.len() == 1 {
        return cvs[0];
    }
    let left = left_len(cvs.len());
    merge_subtrees_non_root(&merge(&cvs[..left]), &merge(&cvs[left..]), Mode::Hash)
}

fn left_len(n: usize) -> usize {
    debug_assert!(n > 1);
    // The largest power of two strictly below n.
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

fn root(cvs: &[ChainingValue]) -> blake3::Hash {
    let left = left_len(cvs.len());
    merge_subtrees_root(&merge(&cvs[..left]), &merge(&cvs[left..]), Mode::Hash)
}

/// A blob's outboard whose chaining values are known to merge into its
/// hash. The only ways to get one are to compute it from the blob or to
/// check received bytes against the hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outboard {
    hash: BlobHash,
    size: u64,
    cvs: Vec<ChainingValue>,
}

impl Outboard {
    /// Computes the outboard of `data` (a mirror serving it, or an export).
    /// For a blob of one piece the outboard is empty.
    pub fn compute(data: &[u8]) -> Self {
        let size = data.len() as u64;
        let cvs = if has_outboard(size) {
            data.chunks(PIECE_LEN as usize)
                .enumerate()
                .map(|(i, piece)| piece_cv(i as u64, piece))
                .collect()
        } else {
            Vec::new()
        };
        Self {
            hash: BlobHash::of(data),
            size,
            cvs,
        }
    }

    /// The outboard's length for a blob of `size` bytes.
    pub fn encoded_len(size: u64) -> usize {
        if has_outboard(size) {
            piece_count(size) as usize * CV_LEN
        } else {
            0
        }
    }

    /// Checks `bytes` as the outboard of the blob `hash` of `size` bytes:
    /// its length before anything else, then that its chaining values
    /// merge into `hash`.
    pub fn verify(hash: BlobHash, size: u64, bytes: &[u8]) -> Result<Self, PieceError> {
        if size > MAX_BLOB_BYTES {
            return Err(PieceError::BlobTooLarge { size });
        }
        let expected = Self::encoded_len(size);
        if bytes.len() != expected {
            return Err(PieceError::OutboardLength {
                size,
                expected,
                len: bytes.len(),
            });
        }
        if expected == 0 {
            return Ok(Self {
                hash,
                size,
                cvs: Vec::new(),
            });
        }
        let cvs: Vec<ChainingValue> = bytes
            .chunks_exact(CV_LEN)
            .map(|c| {
                let mut cv = [0u8; CV_LEN];
                cv.copy_from_slice(c);
                cv
            })
            .collect();
        if root(&cvs).as_bytes() != hash.as_bytes() {
            return Err(PieceError::OutboardMismatch);
        }
        Ok(Self { hash, size, cvs })
    }

    /// The encoded outboard: the chaining values in order.
    pub fn encode(&self) -> Vec<u8> {
        self.cvs.concat()
    }

    /// The blob's hash.
    pub fn hash(&self) -> BlobHash {
        self.hash
    }

    /// The blob's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Pieces in the blob.
    pub fn pieces(&self) -> u64 {
        piece_count(self.size)
    }

    /// The byte range `(offset, len)` of piece `index`.
    pub fn span(&self, index: u64) -> Result<(u64, u64), PieceError> {
        if index >= self.pieces() {
            return Err(PieceError::NoSuchPiece {
                index,
                pieces: self.pieces(),
            });
        }
        Ok(piece_span(self.size, index))
    }

    /// Checks piece `index`, whole.
    pub fn check(&self, index: u64, bytes: &[u8]) -> Result<(), PieceError> {
        let (_, len) = self.span(index)?;
        let good = if bytes.len() as u64 != len {
            false
        } else if self.cvs.is_empty() {
            // One piece: the piece is the blob.
            BlobHash::of(bytes) == self.hash
        } else {
            piece_cv(index, bytes) == self.cvs[index as usize]
        };
        if good {
            Ok(())
        } else {
            Err(PieceError::BadPiece { index })
        }
    }
}

/// A blob being put together from pieces that may come from several
/// sources, in any order, cut anywhere: bytes are taken at the point where
/// their piece stands, each piece is checked as soon as it is complete, and
/// only checked pieces count.
#[derive(Debug)]
pub struct Assembly {
    outboard: Outboard,
    data: Vec<u8>,
    /// Bytes held of each piece so far (== its length once checked).
    filled: Vec<u32>,
    verified: Vec<bool>,
    missing: u64,
}

/// What a [`Assembly::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Put {
    /// Pieces completed and checked by this put.
    pub verified: u64,
    /// Bytes of the put that were new (the rest were already held).
    pub new_bytes: u64,
}

impl Assembly {
    /// Starts a blob with nothing yet. Allocates the blob's size, which the
    /// checked outboard bounds by [`MAX_BLOB_BYTES`].
    pub fn new(outboard: Outboard) -> Self {
        let pieces = outboard.pieces() as usize;
        Self {
            data: vec![0; outboard.size as usize],
            filled: vec![0; pieces],
            verified: vec![false; pieces],
            missing: pieces as u64,
            outboard,
        }
    }

    /// The outboard the pieces are checked against.
    pub fn outboard(&self) -> &Outboard {
        &self.outboard
    }

    /// Whether every piece has been checked.
    pub fn is_complete(&self) -> bool {
        self.missing == 0
    }

    /// Pieces still to check.
    pub fn missing_pieces(&self) -> u64 {
        self.missing
    }

    /// Bytes held in checked pieces.
    pub fn verified_bytes(&self) -> u64 {
        (0..self.outboard.pieces())
            .filter(|&i| self.verified[i as usize])
            .map(|i| piece_span(self.outboard.size, i).1)
            .sum()
    }

    /// Where the bytes of piece `index` go on from: its start plus what is
    /// held of it, or `None` if it is checked (or past the end).
    pub fn resume_at(&self, index: u64) -> Option<u64> {
        let i = usize::try_from(index).ok()?;
        if i >= self.verified.len() || self.verified[i] {
            return None;
        }
        Some(index * PIECE_LEN + u64::from(self.filled[i]))
    }

    /// The first range of at most `max_len` bytes still wanted at or after
    /// piece `from_piece`: it starts where the first unchecked piece goes on
    /// from and runs over following unchecked pieces.
    pub fn next_range(&self, from_piece: u64, max_len: u64) -> Option<(u64, u64)> {
        let pieces = self.outboard.pieces();
        let first = (from_piece..pieces).find(|&i| !self.verified[i as usize])?;
        let start = self.resume_at(first)?;
        let mut end = start;
        let mut i = first;
        while i < pieces && !self.verified[i as usize] && end - start < max_len {
            let (offset, len) = piece_span(self.outboard.size, i);
            end = offset + len;
            i += 1;
        }
        Some((start, (end - start).min(max_len.max(1))))
    }

    /// Takes `bytes` found at `offset` of the blob. Bytes of checked pieces
    /// are skipped; bytes of an unchecked piece must continue exactly where
    /// it stands (a range answered from where it was asked does). A piece
    /// that completes and fails its check is emptied, and the error names
    /// it: the sender sent a false piece.
    pub fn put(&mut self, offset: u64, bytes: &[u8]) -> Result<Put, PieceError> {
        let size = self.outboard.size;
        let end = offset.saturating_add(bytes.len() as u64);
        if end > size {
            return Err(PieceError::Misplaced {
                offset,
                len: bytes.len(),
                index: offset / PIECE_LEN,
            });
        }
        let mut put = Put::default();
        let mut at = offset;
        while at < end {
            let index = at / PIECE_LEN;
            let i = index as usize;
            let (start, len) = piece_span(size, index);
            let piece_end = start + len;
            let take = (piece_end.min(end) - at) as usize;
            let src = &bytes[(at - offset) as usize..][..take];
            if !self.verified[i] {
                let stands = start + u64::from(self.filled[i]);
                if at > stands {
                    return Err(PieceError::Misplaced {
                        offset: at,
                        len: take,
                        index,
                    });
                }
                // Bytes already held of this piece are skipped.
                let skip = (stands - at) as usize;
                if skip < take {
                    let fresh = &src[skip..];
                    let dst = stands as usize;
                    self.data[dst..dst + fresh.len()].copy_from_slice(fresh);
                    self.filled[i] += fresh.len() as u32;
                    put.new_bytes += fresh.len() as u64;
                    if u64::from(self.filled[i]) == len {
                        let piece = &self.data[start as usize..piece_end as usize];
                        if let Err(e) = self.outboard.check(index, piece) {
                            self.filled[i] = 0;
                            return Err(e);
                        }
                        self.verified[i] = true;
                        self.missing -= 1;
                        put.verified += 1;
                    }
                }
            }
            at += take as u64;
        }
        Ok(put)
    }

    /// The whole blob, once every piece is checked (`None` before).
    pub fn finish(self) -> Option<Vec<u8>> {
        self.is_complete().then_some(self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn outboards_merge_into_the_blob_hash_at_every_shape() {
        let k = PIECE_LEN as usize;
        for len in [
            0,
            1,
            k - 1,
            k,
            k + 1,
            2 * k,
            3 * k - 7,
            3 * k,
            4 * k + 1,
            5 * k,
            7 * k + 100,
            8 * k,
            9 * k,
            17 * k + 3,
            64 * k,
            1024 * 1024 + 5,
        ] {
            let d = data(len);
            let ob = Outboard::compute(&d);
            assert_eq!(
                ob.encode().len(),
                Outboard::encoded_len(len as u64),
                "{len}"
            );
            let checked = Outboard::verify(BlobHash::of(&d), len as u64, &ob.encode())
                .unwrap_or_else(|e| panic!("{len}: {e}"));
            for i in 0..checked.pieces() {
                let (o, l) = checked.span(i).unwrap();
                checked.check(i, &d[o as usize..(o + l) as usize]).unwrap();
            }
        }
    }

    #[test]
    fn a_false_outboard_or_piece_is_refused() {
        let d = data(5 * PIECE_LEN as usize + 9);
        let hash = BlobHash::of(&d);
        let mut ob = Outboard::compute(&d).encode();
        assert!(matches!(
            Outboard::verify(hash, d.len() as u64, &ob[1..]),
            Err(PieceError::OutboardLength { .. })
        ));
        ob[40] ^= 1;
        assert_eq!(
            Outboard::verify(hash, d.len() as u64, &ob),
            Err(PieceError::OutboardMismatch)
        );
        // A true outboard of other bytes does not pass for this hash.
        let other = Outboard::compute(&data(5 * PIECE_LEN as usize + 10));
        assert!(Outboard::verify(hash, d.len() as u64, &other.encode()).is_err());
        assert!(matches!(
            Outboard::verify(hash, MAX_BLOB_BYTES + 1, &[]),
            Err(PieceError::BlobTooLarge { .. })
        ));

        let good = Outboard::compute(&d);
        let mut piece = d[..PIECE_LEN as usize].to_vec();
        piece[3] ^= 0x80;
        assert_eq!(
            good.check(0, &piece),
            Err(PieceError::BadPiece { index: 0 })
        );
        // A piece is bound to its place: piece 0's bytes are not piece 1.
        assert!(good.check(1, &d[..PIECE_LEN as usize]).is_err());
        assert!(matches!(
            good.check(9, &[]),
            Err(PieceError::NoSuchPiece { .. })
        ));
    }

    #[test]
    fn an_assembly_takes_pieces_cut_anywhere_from_anyone() {
        let d = data(6 * PIECE_LEN as usize + 1000);
        let ob = Outboard::compute(&d);
        let mut a = Assembly::new(ob.clone());
        // A flow frozen after 5,000 bytes, then another from where it stood.
        assert_eq!(a.put(0, &d[..5000]).unwrap().verified, 0);
        assert_eq!(
            a.next_range(0, 1 << 20),
            Some((5000, d.len() as u64 - 5000))
        );
        let p = a.put(5000, &d[5000..40_000]).unwrap();
        assert_eq!(p.verified, 2);
        // A repeat of held bytes is skipped, a gap is refused.
        assert_eq!(a.put(0, &d[..40_000]).unwrap().new_bytes, 0);
        assert!(matches!(
            a.put(50_000, &d[50_000..51_000]),
            Err(PieceError::Misplaced { .. })
        ));
        // A false piece is emptied and named; the next sender starts it over.
        let mut bad = d[2 * PIECE_LEN as usize..3 * PIECE_LEN as usize].to_vec();
        bad[PIECE_LEN as usize - 1] ^= 1;
        let at = a.resume_at(2).unwrap();
        let skip = (at - 2 * PIECE_LEN) as usize;
        assert_eq!(
            a.put(at, &bad[skip..]),
            Err(PieceError::BadPiece { index: 2 })
        );
        assert_eq!(a.resume_at(2), Some(2 * PIECE_LEN));
        // The last piece first, then the rest in one go.
        let last = 6 * PIECE_LEN;
        assert_eq!(a.put(last, &d[last as usize..]).unwrap().verified, 1);
        let from = 2 * PIECE_LEN as usize;
        a.put(from as u64, &d[from..last as usize]).unwrap();
        assert!(a.is_complete());
        assert_eq!(a.verified_bytes(), d.len() as u64);
        assert_eq!(a.finish().unwrap(), d);
    }

    #[test]
    fn next_range_spans_unchecked_pieces_only() {
        let d = data(4 * PIECE_LEN as usize);
        let mut a = Assembly::new(Outboard::compute(&d));
        let k = PIECE_LEN as usize;
        a.put(k as u64, &d[k..2 * k]).unwrap();
        assert_eq!(a.next_range(0, 1 << 20), Some((0, PIECE_LEN)));
        assert_eq!(
            a.next_range(1, 1 << 20),
            Some((2 * PIECE_LEN, 2 * PIECE_LEN))
        );
        assert_eq!(a.next_range(0, 100), Some((0, 100)));
        a.put(0, &d[..100]).unwrap();
        assert_eq!(a.next_range(0, 1 << 20), Some((100, PIECE_LEN - 100)));
        a.put(100, &d[100..k]).unwrap();
        a.put(2 * k as u64, &d[2 * k..]).unwrap();
        assert_eq!(a.next_range(0, 1 << 20), None);
    }

    #[test]
    fn a_blob_of_one_piece_checks_whole() {
        let d = data(1000);
        let ob = Outboard::verify(BlobHash::of(&d), 1000, &[]).unwrap();
        let mut a = Assembly::new(ob);
        a.put(0, &d[..10]).unwrap();
        assert_eq!(a.put(10, &d[10..]).unwrap().verified, 1);
        assert_eq!(a.finish().unwrap(), d);
        let mut a = Assembly::new(Outboard::verify(BlobHash::of(&d), 1000, &[]).unwrap());
        let mut bad = d.clone();
        bad[999] ^= 1;
        assert_eq!(a.put(0, &bad), Err(PieceError::BadPiece { index: 0 }));
    }
}
