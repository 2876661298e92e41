//! Checking blobs against their manifest: no trust state needed.

use bytes::Bytes;

use super::{PolicyError, Verified, VerifiedBundle};
use crate::proto::ids::BlobHash;
use crate::proto::objects::{Entry, Manifest};

/// Checks every blob of a verified manifest and returns the whole bundle.
/// The manifest's signature was checked already; blobs only need to match
/// it, so this needs no trust state and may run anywhere (a store thread).
pub fn check_bundle(
    manifest: Verified<Manifest>,
    blobs: Vec<Vec<u8>>,
) -> Result<VerifiedBundle, PolicyError> {
    if blobs.len() > manifest.entries.len() {
        return Err(PolicyError::UnexpectedBlob {
            count: blobs.len() - manifest.entries.len(),
        });
    }
    if let Some(missing) = manifest.entries.get(blobs.len()) {
        return Err(PolicyError::MissingBlob {
            path: missing.path.clone(),
        });
    }
    for (entry, bytes) in manifest.entries.iter().zip(&blobs) {
        check_blob(entry, bytes)?;
    }
    Ok(VerifiedBundle {
        manifest,
        // Bytes takes over each Vec without copying it.
        blobs: blobs.into_iter().map(Bytes::from).collect(),
    })
}

/// Checks a blob against its manifest entry.
pub fn check_blob(entry: &Entry, bytes: &[u8]) -> Result<(), PolicyError> {
    if bytes.len() as u64 != entry.size {
        return Err(PolicyError::BlobSizeMismatch {
            path: entry.path.clone(),
            expected: entry.size,
            actual: bytes.len() as u64,
        });
    }
    let actual = BlobHash::of(bytes);
    if actual != entry.hash {
        return Err(PolicyError::BlobHashMismatch {
            path: entry.path.clone(),
            expected: entry.hash,
            actual,
        });
    }
    Ok(())
}
