//! Content ids: blake3 hashes with a readable text form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A text id could not be parsed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("not a valid {what}: expected {expected} hex digits")]
pub struct ParseIdError {
    what: &'static str,
    expected: usize,
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// The first 12 hex digits, for logs and tables.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..6])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = ParseIdError { what: $what, expected: $len * 2 };
                if s.len() != $len * 2 {
                    return Err(err);
                }
                let mut out = [0u8; $len];
                hex::decode_to_slice(s, &mut out).map_err(|_| err)?;
                Ok(Self(out))
            }
        }
    };
}

hex_id!(
    /// The id of a bundle: the blake3 hash of its signed manifest bytes.
    BundleId, 32, "bundle id"
);
hex_id!(
    /// The address of a blob: the blake3 hash of its bytes.
    BlobHash, 32, "blob hash"
);
hex_id!(
    /// The id of a key certificate: the blake3 hash of its signed bytes.
    CertId, 32, "certificate id"
);
hex_id!(
    /// A story's id, stable across its versions, chosen by the newsroom.
    StoryId, 16, "story id"
);

impl BlobHash {
    /// Hashes `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

impl BundleId {
    /// The id of the bundle whose signed manifest is `signed_manifest`.
    pub fn of(signed_manifest: &[u8]) -> Self {
        Self(*blake3::hash(signed_manifest).as_bytes())
    }
}

impl CertId {
    /// The id of the certificate whose signed bytes are `signed_certificate`.
    pub fn of(signed_certificate: &[u8]) -> Self {
        Self(*blake3::hash(signed_certificate).as_bytes())
    }
}

impl StoryId {
    /// A story id derived from a newsroom's own stable identifier for the
    /// story (a feed item's guid, a CMS id), so that re-imports map to the
    /// same story.
    pub fn derive(publisher: &crate::proto::PublicKey, external_id: &str) -> Self {
        let mut h = blake3::Hasher::new_derive_key("kolokol/v1/story-id");
        h.update(publisher.as_bytes());
        h.update(external_id.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        Self(out)
    }
}
