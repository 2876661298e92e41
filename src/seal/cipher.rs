//! The sealed store's cryptography: keyed names, sealed values and sealed
//! files, all from one random data key.
//!
//! Every subkey is derived from the data key with blake3's key derivation
//! under its own context string, so that a name can never be mistaken for
//! a value's key or a file's. Lengths are padded with Padmé (Nikitin et
//! al., "Reducing Metadata Leakage from Encrypted Files and Communication
//! with PURBs", PETS 2019): a sealed value or file reveals its length only
//! to within about 12 %, so the size of a known image or article no longer
//! picks it out among the files.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::SealError;

/// Length of a keyed name: 128 bits, far from any collision among the
/// entries of one store, and half the size of the hashes it replaces.
pub const NAME_LEN: usize = 16;
/// Bytes a sealed value or file chunk adds for its nonce.
const NONCE_LEN: usize = 24;
/// Bytes the AEAD adds for its tag.
const TAG_LEN: usize = 16;
/// Plaintext bytes per chunk of a sealed file: a range read decrypts at
/// most two chunks more than it asked for.
pub const FILE_CHUNK: usize = 64 * 1024;
/// Bytes before a sealed file's first chunk: the random nonce prefix.
const FILE_HEADER: usize = 16;
/// Largest value sealed: sled values are far smaller (inline blobs stop at
/// 16 KiB, the address book at 64 KiB); this only bounds the length field.
const MAX_VALUE: usize = 16 * 1024 * 1024;

/// The data key: 32 random bytes, wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; 32]);

impl DataKey {
    /// A new random key.
    pub fn random() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Self(k)
    }

    /// The key's bytes (only to wrap it).
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key from its bytes (only from an unwrapped key file).
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// Everything derived from one data key. Holds only subkeys; each is
/// zeroized when the sealer is dropped (the node drops it on stop and on
/// `kolokol lock`).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Sealer {
    names: [u8; 32],
    values: [u8; 32],
    files: [u8; 32],
    order: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// Padmé: the length rounded up so that only its top bits vary.
pub fn padme(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = 63 - u64::from(len.leading_zeros());
    let s = 64 - u64::from(e.leading_zeros());
    let z = e - s;
    let mask = (1u64 << z) - 1;
    (len + mask) & !mask
}

impl Sealer {
    /// The subkeys of `key`.
    pub fn new(key: &DataKey) -> Self {
        let derive = |context: &str| blake3::derive_key(context, key.bytes());
        Self {
            names: derive("kolokol sealed store 2026 names"),
            values: derive("kolokol sealed store 2026 values"),
            files: derive("kolokol sealed store 2026 files"),
            order: derive("kolokol sealed store 2026 order"),
        }
    }

    /// The keyed name of `bytes` in `domain`: equal inputs give equal
    /// names, and nothing about the input can be learned without the key.
    pub fn name(&self, domain: &[u8], bytes: &[u8]) -> [u8; NAME_LEN] {
        let mut h = blake3::Hasher::new_keyed(&self.names);
        h.update(&(domain.len() as u64).to_le_bytes());
        h.update(domain);
        h.update(bytes);
        let mut out = [0u8; NAME_LEN];
        out.copy_from_slice(&h.finalize().as_bytes()[..NAME_LEN]);
        out
    }

    /// An offset added to the ordinal numbers under `scope` (a
    /// publisher's sequence numbers): order within the scope is kept, so
    /// range scans still work, but the numbers themselves, which would
    /// match a publisher's public sequence, are not stored.
    pub fn offset(&self, scope: &[u8]) -> u64 {
        let h = blake3::keyed_hash(&self.order, scope);
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_bytes()[..8]);
        u64::from_le_bytes(b)
    }

    fn aead(key: &[u8; 32]) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(key.into())
    }

    /// Seals `key` and `value` together (a scan must give back the plain
    /// key), bound to `ad`, the name it is stored under, so that a sealed
    /// value moved to another name no longer opens. Layout: nonce, then
    /// ciphertext of key length (u16 LE), value length (u32 LE), key,
    /// value, zero padding, then the tag. Encrypted in place, in the one
    /// buffer that is returned: no copy of the plain text is left behind
    /// in freed memory by this function (the caller's own copies are the
    /// caller's).
    pub fn seal_value(&self, ad: &[u8], key: &[u8], value: &[u8]) -> Result<Vec<u8>, SealError> {
        if key.len() > u16::MAX as usize || value.len() > MAX_VALUE {
            return Err(SealError::TooLarge(key.len() + value.len()));
        }
        let padded = padme((6 + key.len() + value.len()) as u64) as usize;
        let mut out = Vec::with_capacity(NONCE_LEN + padded + TAG_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&(key.len() as u16).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(value);
        out.resize(NONCE_LEN + padded, 0);
        let tag = Self::aead(&self.values)
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), ad, &mut out[NONCE_LEN..])
            .map_err(|_| SealError::Cipher)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens what [`Sealer::seal_value`] made under the name `ad`: the
    /// plain key and value.
    pub fn open_value(&self, ad: &[u8], sealed: &[u8]) -> Result<(Vec<u8>, Vec<u8>), SealError> {
        if sealed.len() < NONCE_LEN + TAG_LEN + 6 {
            return Err(SealError::Damaged);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut plain = ct.to_vec();
        Self::aead(&self.values)
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                ad,
                &mut plain,
                chacha20poly1305::Tag::from_slice(tag),
            )
            .map_err(|_| SealError::Damaged)?;
        let kl = u16::from_le_bytes([plain[0], plain[1]]) as usize;
        let vl = u32::from_le_bytes([plain[2], plain[3], plain[4], plain[5]]) as usize;
        if kl.checked_add(vl).is_none_or(|n| n > plain.len() - 6) {
            return Err(SealError::Damaged);
        }
        let key = plain[6..6 + kl].to_vec();
        // The value stays in the decrypted buffer: moved down, not copied
        // into a new allocation.
        plain.drain(..6 + kl);
        plain.truncate(vl);
        Ok((key, plain))
    }

    fn chunk_nonce(prefix: &[u8; FILE_HEADER], index: u64) -> XNonce {
        let mut n = [0u8; NONCE_LEN];
        n[..FILE_HEADER].copy_from_slice(prefix);
        n[FILE_HEADER..].copy_from_slice(&index.to_be_bytes());
        *XNonce::from_slice(&n)
    }

    /// A file's chunk's associated data: the file's name, and whether the
    /// chunk is the last (so that cutting chunks off the end is caught).
    fn chunk_ad(name: &[u8], last: bool) -> Vec<u8> {
        let mut ad = Vec::with_capacity(name.len() + 1);
        ad.extend_from_slice(name);
        ad.push(u8::from(last));
        ad
    }

    /// Seals a file's bytes under `name`. The plaintext stream is a
    /// header (`id`, 32 bytes, and the length, u64 LE), the bytes, and
    /// Padmé padding; it is cut in [`FILE_CHUNK`]-byte chunks, each its
    /// own AEAD message (tag after it) with a nonce of the file's random
    /// prefix and the chunk's index, so that a range is read without the
    /// rest. The stream is laid out and encrypted in place in the buffer
    /// returned: one copy of the bytes, no plain text left elsewhere.
    pub fn seal_file(
        &self,
        name: &[u8],
        id: &[u8; 32],
        bytes: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let padded = padme(40 + bytes.len() as u64) as usize;
        let chunks = padded.div_ceil(FILE_CHUNK);
        let per = FILE_CHUNK + TAG_LEN;
        // Zeroed, so the padding is in place already.
        let mut out = vec![0u8; FILE_HEADER + padded + chunks * TAG_LEN];
        let mut prefix = [0u8; FILE_HEADER];
        rand::thread_rng().fill_bytes(&mut prefix);
        out[..FILE_HEADER].copy_from_slice(&prefix);
        let mut header = [0u8; 40];
        header[..32].copy_from_slice(id);
        header[32..].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        // Stream position p lives at FILE_HEADER + (p / C) * per + p % C.
        let mut at = 0usize;
        for src in [&header[..], bytes] {
            let mut src = src;
            while !src.is_empty() {
                let (i, off) = (at / FILE_CHUNK, at % FILE_CHUNK);
                let n = src.len().min(FILE_CHUNK - off);
                let dst = FILE_HEADER + i * per + off;
                out[dst..dst + n].copy_from_slice(&src[..n]);
                src = &src[n..];
                at += n;
            }
        }
        let aead = Self::aead(&self.files);
        for i in 0..chunks {
            let len = FILE_CHUNK.min(padded - i * FILE_CHUNK);
            let start = FILE_HEADER + i * per;
            let (data, rest) = out[start..].split_at_mut(len);
            let ad = Self::chunk_ad(name, i + 1 == chunks);
            let tag = aead
                .encrypt_in_place_detached(&Self::chunk_nonce(&prefix, i as u64), &ad, data)
                .map_err(|_| SealError::Cipher)?;
            rest[..TAG_LEN].copy_from_slice(&tag);
        }
        Ok(out)
    }

    /// The number of chunks of a sealed file of `file_len` bytes, if the
    /// length is one a sealed file can have.
    fn chunks_of(file_len: u64) -> Option<u64> {
        let body = file_len.checked_sub(FILE_HEADER as u64)?;
        let per = (FILE_CHUNK + TAG_LEN) as u64;
        let n = body.div_ceil(per);
        let last = body - (n.checked_sub(1)?) * per;
        (last > TAG_LEN as u64).then_some(n)
    }

    /// Opens one chunk of a sealed file in place: `buf` holds its
    /// ciphertext and tag, and keeps the plain text.
    fn open_chunk(
        &self,
        name: &[u8],
        prefix: &[u8; FILE_HEADER],
        index: u64,
        last: bool,
        mut buf: Vec<u8>,
    ) -> Result<Vec<u8>, SealError> {
        let ad = Self::chunk_ad(name, last);
        let split = buf.len().checked_sub(TAG_LEN).ok_or(SealError::Damaged)?;
        let (data, tag) = buf.split_at_mut(split);
        Self::aead(&self.files)
            .decrypt_in_place_detached(
                &Self::chunk_nonce(prefix, index),
                &ad,
                data,
                chacha20poly1305::Tag::from_slice(tag),
            )
            .map_err(|_| SealError::Damaged)?;
        buf.truncate(split);
        Ok(buf)
    }

    /// Reads `len` bytes from `offset` of the sealed file `name` through
    /// `read_at(file_offset, buf)`, the file being `file_len` bytes long:
    /// the file's id, its plain length and the bytes asked for.
    pub fn open_file_range(
        &self,
        name: &[u8],
        file_len: u64,
        offset: u64,
        len: u64,
        mut read_at: impl FnMut(u64, &mut [u8]) -> std::io::Result<()>,
    ) -> Result<([u8; 32], u64, Vec<u8>), SealError> {
        let chunks = Self::chunks_of(file_len).ok_or(SealError::Damaged)?;
        let mut prefix = [0u8; FILE_HEADER];
        read_at(0, &mut prefix).map_err(SealError::Read)?;
        let per = (FILE_CHUNK + TAG_LEN) as u64;
        let mut chunk = |i: u64| -> Result<Vec<u8>, SealError> {
            let start = FILE_HEADER as u64 + i * per;
            let end = (start + per).min(file_len);
            let mut ct = vec![0u8; (end - start) as usize];
            read_at(start, &mut ct).map_err(SealError::Read)?;
            self.open_chunk(name, &prefix, i, i + 1 == chunks, ct)
        };
        let mut first = Some(chunk(0)?);
        let head = first.as_ref().ok_or(SealError::Damaged)?;
        if head.len() < 40 {
            return Err(SealError::Damaged);
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&head[..32]);
        let total = u64::from_le_bytes(head[32..40].try_into().map_err(|_| SealError::Damaged)?);
        // The length must be one that gives exactly this many chunks.
        let stream = padme(40 + total);
        if stream.div_ceil(FILE_CHUNK as u64) != chunks {
            return Err(SealError::Damaged);
        }
        let start = offset.min(total);
        let n = len.min(total - start);
        let mut out = Vec::with_capacity(n as usize);
        let (from, to) = (40 + start, 40 + start + n);
        let mut at = from;
        while at < to {
            let i = at / FILE_CHUNK as u64;
            let plain = match (i, first.take()) {
                (0, Some(c)) => c,
                _ => chunk(i)?,
            };
            let lo = (at - i * FILE_CHUNK as u64) as usize;
            let hi = ((to - i * FILE_CHUNK as u64) as usize).min(plain.len());
            if lo >= hi {
                return Err(SealError::Damaged);
            }
            out.extend_from_slice(&plain[lo..hi]);
            at += (hi - lo) as u64;
        }
        Ok((id, total, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&DataKey::from_bytes([7; 32]))
    }

    #[test]
    fn padme_pads_a_little_and_never_shrinks() {
        for len in [0u64, 1, 2, 3, 9, 100, 1000, 4096, 65_537, 1 << 30] {
            let p = padme(len);
            assert!(p >= len);
            assert!(p - len <= len / 8 + 1, "{len} -> {p}");
        }
        assert_eq!(padme(1000), 1024);
    }

    #[test]
    fn values_open_under_their_name_only() {
        let s = sealer();
        let v = s.seal_value(b"name", b"key", b"value").unwrap();
        assert_eq!(
            s.open_value(b"name", &v).unwrap(),
            (b"key".to_vec(), b"value".to_vec())
        );
        assert!(s.open_value(b"other", &v).is_err());
        let mut bad = v.clone();
        bad[30] ^= 1;
        assert!(s.open_value(b"name", &bad).is_err());
        assert!(s.open_value(b"name", &v[..20]).is_err());
    }

    #[test]
    fn names_depend_on_key_and_domain() {
        let s = sealer();
        let t = Sealer::new(&DataKey::from_bytes([8; 32]));
        assert_eq!(s.name(b"m", b"x"), s.name(b"m", b"x"));
        assert_ne!(s.name(b"m", b"x"), s.name(b"b", b"x"));
        assert_ne!(s.name(b"m", b"x"), t.name(b"m", b"x"));
    }

    fn read(file: &[u8]) -> impl FnMut(u64, &mut [u8]) -> std::io::Result<()> + '_ {
        move |at, buf| {
            let at = at as usize;
            let src = file
                .get(at..at + buf.len())
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    #[test]
    fn files_read_back_in_any_range() {
        let s = sealer();
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let f = s.seal_file(b"n", &[3; 32], &bytes).unwrap();
        let len = f.len() as u64;
        for (off, n) in [
            (0, 10),
            (65_000, 2_000),
            (199_990, 100),
            (0, 200_000),
            (300_000, 5),
        ] {
            let (id, total, got) = s.open_file_range(b"n", len, off, n, read(&f)).unwrap();
            assert_eq!(id, [3; 32]);
            assert_eq!(total, 200_000);
            let lo = (off as usize).min(bytes.len());
            let hi = (off as usize + n as usize).min(bytes.len());
            assert_eq!(got, bytes[lo..hi]);
        }
        // Cut off the end, or read under another name: refused.
        let cut = &f[..f.len() - FILE_CHUNK - TAG_LEN];
        assert!(
            s.open_file_range(b"n", cut.len() as u64, 0, 1, read(cut))
                .is_err()
        );
        assert!(s.open_file_range(b"m", len, 0, 1, read(&f)).is_err());
        let empty = s.seal_file(b"e", &[0; 32], b"").unwrap();
        let (_, total, got) = s
            .open_file_range(b"e", empty.len() as u64, 0, 9, read(&empty))
            .unwrap();
        assert_eq!((total, got.len()), (0, 0));
    }
}
