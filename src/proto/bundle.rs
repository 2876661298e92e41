//! The `.kolokol` file format: a header and a stream of typed,
//! length-prefixed frames, closed by an end frame that counts the frames and
//! hashes everything before it.
//!
//! The same framing carries one bundle (a `.kolokol` bundle file) or many
//! (an archive). Each frame's length is checked against the limit for its
//! type before its payload is read, so a reader never allocates more than
//! one frame's limit at a time.

use std::io::{self, Read, Write};

use thiserror::Error;

use super::limits;
use super::objects::{Head, KeyCertificate};
use super::policy::{PolicyError, TrustPolicy, Verified, VerifiedBundle};
use super::signed::ObjectKind;
use super::time::Timestamp;

/// The first eight bytes of every `.kolokol` file.
pub const MAGIC: &[u8; 8] = b"KOLOKOL\n";
/// The file format version this build writes and reads.
pub const FILE_FORMAT: u16 = 1;
/// Length of the header: magic, format (u16 LE), file kind (u8), reserved (u8).
pub const HEADER_LEN: usize = 12;
/// Length of a frame header: tag (u8), payload length (u32 LE).
pub const FRAME_HEADER_LEN: usize = 5;
/// Length of the end frame's payload: frame count (u64 LE), blake3 (32 bytes).
pub const END_LEN: usize = 40;

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// Exactly one bundle.
    Bundle = 0,
    /// Any number of bundles, certificates, revocations and heads.
    Archive = 1,
}

/// The type of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameTag {
    /// A signed key certificate.
    Certificate = 1,
    /// A signed revocation.
    Revocation = 2,
    /// A signed head.
    Head = 3,
    /// A signed manifest; the blobs of its entries follow it, in order.
    Manifest = 4,
    /// The bytes of one entry of the preceding manifest.
    Blob = 5,
    /// A publisher's signed mirror list (archives only).
    MirrorList = 6,
    /// The end of the file.
    End = 0xFF,
}

impl FrameTag {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Certificate,
            2 => Self::Revocation,
            3 => Self::Head,
            4 => Self::Manifest,
            5 => Self::Blob,
            6 => Self::MirrorList,
            0xFF => Self::End,
            _ => return None,
        })
    }

    /// The largest payload allowed for this frame type.
    pub fn max_len(self) -> u64 {
        match self {
            Self::Certificate => ObjectKind::Certificate.max_len() as u64,
            Self::Revocation => ObjectKind::Revocation.max_len() as u64,
            Self::Head => ObjectKind::Head.max_len() as u64,
            Self::Manifest => ObjectKind::Manifest.max_len() as u64,
            Self::Blob => limits::MAX_BLOB_BYTES,
            Self::MirrorList => ObjectKind::MirrorList.max_len() as u64,
            Self::End => END_LEN as u64,
        }
    }

    /// A name for messages.
    pub fn what(self) -> &'static str {
        match self {
            Self::Certificate => "certificate frame",
            Self::Revocation => "revocation frame",
            Self::Head => "head frame",
            Self::Manifest => "manifest frame",
            Self::Blob => "blob frame",
            Self::MirrorList => "mirror list frame",
            Self::End => "end frame",
        }
    }
}

/// Why a `.kolokol` file could not be read or verified.
#[derive(Debug, Error)]
pub enum FileError {
    /// Reading or writing failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// Not a `.kolokol` file.
    #[error("not a kolokol file (bad magic bytes)")]
    BadMagic,
    /// A file format this build does not read.
    #[error("file format version {0} is not supported (this build reads version {FILE_FORMAT})")]
    UnsupportedFormat(u16),
    /// A file of the other kind (an archive where a bundle was expected).
    #[error("unexpected file kind {found} (expected {expected:?})")]
    WrongKind {
        /// The kind byte found.
        found: u8,
        /// The kind expected.
        expected: FileKind,
    },
    /// A file kind this build does not know.
    #[error("unknown file kind {0} (a newer format?)")]
    UnknownKind(u8),
    /// A frame of unknown type.
    #[error("unknown frame type {tag} at byte {offset}")]
    UnknownFrame {
        /// The tag byte.
        tag: u8,
        /// Where the frame starts.
        offset: u64,
    },
    /// A frame longer than its type allows.
    #[error("{what} at byte {offset} is {len} bytes, more than the limit of {max}")]
    FrameTooLarge {
        /// The frame type.
        what: &'static str,
        /// Where the frame starts.
        offset: u64,
        /// The declared length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The file ends before its end frame.
    #[error("the file is truncated at byte {offset}")]
    Truncated {
        /// Bytes read before the end.
        offset: u64,
    },
    /// The end frame's count or hash does not match what came before it.
    #[error("the file is damaged: its end-frame checksum does not match its contents")]
    ChecksumMismatch,
    /// Bytes follow the end frame.
    #[error("unexpected bytes after the end of the file")]
    TrailingData,
    /// Frames in an order or number the format does not allow.
    #[error("malformed file: {0}")]
    Structure(String),
    /// An object in the file failed verification.
    #[error("{what} failed verification: {source}")]
    Rejected {
        /// Which object.
        what: &'static str,
        /// Why.
        #[source]
        source: Box<PolicyError>,
    },
}

/// One frame read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its type.
    pub tag: FrameTag,
    /// Its payload.
    pub payload: Vec<u8>,
    /// The byte offset of the frame in the file, for messages.
    pub offset: u64,
}

/// Reads frames one at a time, checking limits and the closing checksum.
pub struct FrameReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    offset: u64,
    frames: u64,
    kind: FileKind,
    done: bool,
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8], offset: u64) -> Result<(), FileError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FileError::Truncated { offset },
        _ => FileError::Io(e),
    })
}

impl<R: Read> FrameReader<R> {
    /// Reads and checks the header.
    pub fn new(mut inner: R) -> Result<Self, FileError> {
        let mut header = [0u8; HEADER_LEN];
        inner.read_exact(&mut header).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => FileError::BadMagic,
            _ => FileError::Io(e),
        })?;
        if &header[..8] != MAGIC {
            return Err(FileError::BadMagic);
        }
        let format = u16::from_le_bytes([header[8], header[9]]);
        if format != FILE_FORMAT {
            return Err(FileError::UnsupportedFormat(format));
        }
        let kind = match header[10] {
            0 => FileKind::Bundle,
            1 => FileKind::Archive,
            other => return Err(FileError::UnknownKind(other)),
        };
        if header[11] != 0 {
            return Err(FileError::Structure(
                "reserved header byte is not zero".into(),
            ));
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(&header);
        Ok(Self {
            inner,
            hasher,
            offset: HEADER_LEN as u64,
            frames: 0,
            kind,
            done: false,
        })
    }

    /// Whether the file holds one bundle or is an archive.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next frame, or `None` once the end frame has been read and checked
    /// and nothing follows it.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FileError> {
        if self.done {
            return Ok(None);
        }
        let start = self.offset;
        let mut fh = [0u8; FRAME_HEADER_LEN];
        read_full(&mut self.inner, &mut fh, start)?;
        let tag = FrameTag::from_u8(fh[0]).ok_or(FileError::UnknownFrame {
            tag: fh[0],
            offset: start,
        })?;
        let len = u64::from(u32::from_le_bytes([fh[1], fh[2], fh[3], fh[4]]));
        if len > tag.max_len() {
            return Err(FileError::FrameTooLarge {
                what: tag.what(),
                offset: start,
                len,
                max: tag.max_len(),
            });
        }
        // The length was bounded by the frame type's limit just above.
        let mut payload = vec![0u8; len as usize];
        read_full(
            &mut self.inner,
            &mut payload,
            start + FRAME_HEADER_LEN as u64,
        )?;
        self.offset += FRAME_HEADER_LEN as u64 + len;
        if tag == FrameTag::End {
            if payload.len() != END_LEN {
                return Err(FileError::ChecksumMismatch);
            }
            let count = u64::from_le_bytes(payload[..8].try_into().unwrap_or([0; 8]));
            let hash = self.hasher.finalize();
            if count != self.frames || hash.as_bytes() != &payload[8..] {
                return Err(FileError::ChecksumMismatch);
            }
            let mut probe = [0u8; 1];
            loop {
                match self.inner.read(&mut probe) {
                    Ok(0) => break,
                    Ok(_) => return Err(FileError::TrailingData),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(FileError::Io(e)),
                }
            }
            self.done = true;
            return Ok(None);
        }
        self.hasher.update(&fh);
        self.hasher.update(&payload);
        self.frames += 1;
        Ok(Some(Frame {
            tag,
            payload,
            offset: start,
        }))
    }
}

/// Writes frames and closes the file with the end frame.
pub struct FrameWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    frames: u64,
}

impl<W: Write> FrameWriter<W> {
    /// Writes the header.
    pub fn new(mut inner: W, kind: FileKind) -> io::Result<Self> {
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..10].copy_from_slice(&FILE_FORMAT.to_le_bytes());
        header[10] = kind as u8;
        inner.write_all(&header)?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(&header);
        Ok(Self {
            inner,
            hasher,
            frames: 0,
        })
    }

    /// Writes one frame. The payload must respect the frame type's limit.
    pub fn write_frame(&mut self, tag: FrameTag, payload: &[u8]) -> io::Result<()> {
        if tag == FrameTag::End || payload.len() as u64 > tag.max_len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} of {} bytes exceeds its limit of {}",
                    tag.what(),
                    payload.len(),
                    tag.max_len()
                ),
            ));
        }
        let mut fh = [0u8; FRAME_HEADER_LEN];
        fh[0] = tag as u8;
        fh[1..].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        self.inner.write_all(&fh)?;
        self.inner.write_all(payload)?;
        self.hasher.update(&fh);
        self.hasher.update(payload);
        self.frames += 1;
        Ok(())
    }

    /// Writes the end frame and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let mut end = [0u8; FRAME_HEADER_LEN + END_LEN];
        end[0] = FrameTag::End as u8;
        end[1..5].copy_from_slice(&(END_LEN as u32).to_le_bytes());
        end[5..13].copy_from_slice(&self.frames.to_le_bytes());
        end[13..].copy_from_slice(self.hasher.finalize().as_bytes());
        self.inner.write_all(&end)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

/// The raw contents of a single-bundle file, not yet verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleFile {
    /// Signed key certificates.
    pub certificates: Vec<Vec<u8>>,
    /// Signed revocations.
    pub revocations: Vec<Vec<u8>>,
    /// Signed heads.
    pub heads: Vec<Vec<u8>>,
    /// The signed manifest.
    pub manifest: Vec<u8>,
    /// The blobs, in manifest entry order.
    pub blobs: Vec<Vec<u8>>,
}

/// Most certificates, revocations or heads one bundle file may carry.
pub const MAX_SIDE_OBJECTS: usize = 64;

impl BundleFile {
    /// Reads a whole single-bundle file, enforcing every limit as it goes.
    pub fn read<R: Read>(reader: R) -> Result<Self, FileError> {
        let mut frames = FrameReader::new(reader)?;
        if frames.kind() != FileKind::Bundle {
            return Err(FileError::WrongKind {
                found: frames.kind() as u8,
                expected: FileKind::Bundle,
            });
        }
        let mut file = BundleFile::default();
        let mut have_manifest = false;
        let mut total: u64 = 0;
        while let Some(frame) = frames.next_frame()? {
            let side = |v: &mut Vec<Vec<u8>>, what: &str| -> Result<(), FileError> {
                if v.len() >= MAX_SIDE_OBJECTS {
                    return Err(FileError::Structure(format!(
                        "more than {MAX_SIDE_OBJECTS} {what}"
                    )));
                }
                Ok(())
            };
            match frame.tag {
                FrameTag::Certificate | FrameTag::Revocation | FrameTag::Head if have_manifest => {
                    return Err(FileError::Structure(format!(
                        "{} at byte {} comes after the manifest",
                        frame.tag.what(),
                        frame.offset
                    )));
                }
                FrameTag::Certificate => {
                    side(&mut file.certificates, "certificates")?;
                    file.certificates.push(frame.payload);
                }
                FrameTag::Revocation => {
                    side(&mut file.revocations, "revocations")?;
                    file.revocations.push(frame.payload);
                }
                FrameTag::Head => {
                    side(&mut file.heads, "heads")?;
                    file.heads.push(frame.payload);
                }
                FrameTag::Manifest => {
                    if have_manifest {
                        return Err(FileError::Structure(
                            "a bundle file holds exactly one manifest".into(),
                        ));
                    }
                    have_manifest = true;
                    file.manifest = frame.payload;
                }
                FrameTag::Blob => {
                    if !have_manifest {
                        return Err(FileError::Structure(format!(
                            "blob at byte {} comes before the manifest",
                            frame.offset
                        )));
                    }
                    if file.blobs.len() >= limits::MAX_ENTRIES {
                        return Err(FileError::Structure(format!(
                            "more than {} blobs",
                            limits::MAX_ENTRIES
                        )));
                    }
                    total += frame.payload.len() as u64;
                    if total > limits::MAX_BUNDLE_BYTES {
                        return Err(FileError::Structure(format!(
                            "blobs exceed the bundle limit of {} bytes",
                            limits::MAX_BUNDLE_BYTES
                        )));
                    }
                    file.blobs.push(frame.payload);
                }
                // A bundle file is one story: a mirror list travels in
                // archives, gossip and logs.
                FrameTag::MirrorList => {
                    return Err(FileError::Structure(format!(
                        "{} at byte {}: a bundle file holds none",
                        frame.tag.what(),
                        frame.offset
                    )));
                }
                FrameTag::End => unreachable_end()?,
            }
        }
        if !have_manifest {
            return Err(FileError::Structure("the file holds no manifest".into()));
        }
        Ok(file)
    }

    /// Writes the file: certificates, revocations, heads, the manifest, then
    /// the blobs in entry order.
    pub fn write<W: Write>(&self, writer: W) -> io::Result<W> {
        for (what, n) in [
            ("certificates", self.certificates.len()),
            ("revocations", self.revocations.len()),
            ("heads", self.heads.len()),
        ] {
            if n > MAX_SIDE_OBJECTS {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{n} {what}, more than the {MAX_SIDE_OBJECTS} a bundle file may carry"),
                ));
            }
        }
        let mut w = FrameWriter::new(writer, FileKind::Bundle)?;
        for c in &self.certificates {
            w.write_frame(FrameTag::Certificate, c)?;
        }
        for r in &self.revocations {
            w.write_frame(FrameTag::Revocation, r)?;
        }
        for h in &self.heads {
            w.write_frame(FrameTag::Head, h)?;
        }
        w.write_frame(FrameTag::Manifest, &self.manifest)?;
        for b in &self.blobs {
            w.write_frame(FrameTag::Blob, b)?;
        }
        w.finish()
    }

    /// The encoded file; fails only when a limit is exceeded.
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        self.write(Vec::new())
    }
}

fn unreachable_end() -> Result<(), FileError> {
    Err(FileError::Structure("end frame returned as data".into()))
}

/// Everything a verified bundle file held.
#[derive(Debug, Clone)]
pub struct VerifiedBundleFile {
    /// The bundle, with every blob checked.
    pub bundle: VerifiedBundle,
    /// The heads it carried, each verified.
    pub heads: Vec<Verified<Head>>,
    /// The certificate of the key that signed the manifest.
    pub certificate: Verified<KeyCertificate>,
}

/// Verifies a bundle file: every certificate and revocation it carries
/// (against the trusted root keys), then the manifest, every blob and every
/// head. Nothing in the file is left unchecked: one bad object fails it.
///
/// A head older than one the policy already trusts is not an error here: an
/// old bundle file is still a good bundle. Such heads are left out of the
/// result, so they can never replace a newer one.
pub fn verify_bundle_file(
    policy: &TrustPolicy,
    file: BundleFile,
    now: Timestamp,
) -> Result<VerifiedBundleFile, FileError> {
    let mut policy = policy.clone();
    let rejected = |what| {
        move |source| FileError::Rejected {
            what,
            source: Box::new(source),
        }
    };
    for c in &file.certificates {
        policy
            .learn_certificate(c)
            .map_err(rejected("certificate"))?;
    }
    for r in &file.revocations {
        policy.learn_revocation(r).map_err(rejected("revocation"))?;
    }
    let manifest = policy
        .verify_manifest(&file.manifest, now)
        .map_err(rejected("manifest"))?;
    let bundle = policy
        .verify_bundle(manifest, file.blobs)
        .map_err(rejected("blob"))?;
    let mut heads = Vec::new();
    for h in &file.heads {
        let head = match policy.verify_head(h, now) {
            Ok(head) => head,
            // Heads are advisory: an old one, or one by a key revoked since,
            // does not make the bundle beside it any less valid.
            Err(PolicyError::HeadRollback { .. } | PolicyError::KeyRevoked { .. }) => continue,
            Err(e) => return Err(rejected("head")(e)),
        };
        if head.publisher != bundle.manifest().publisher {
            return Err(FileError::Structure("a head of another publisher".into()));
        }
        heads.push(head);
    }
    let certificate = policy
        .publisher(&bundle.manifest().publisher)
        .and_then(|p| {
            p.certificates()
                .find(|c| c.id() == bundle.manifest().certificate)
        })
        .cloned()
        .ok_or_else(|| {
            FileError::Structure("the signing certificate vanished during verification".into())
        })?;
    Ok(VerifiedBundleFile {
        bundle,
        heads,
        certificate,
    })
}
