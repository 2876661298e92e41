//! Errors of decoding untrusted bytes.

use thiserror::Error;

/// Why a sequence of bytes could not be read as a protocol object.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input is larger than the limit for what it claims to be.
    #[error("{what} is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// What was being decoded.
        what: &'static str,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The input ended before the object did.
    #[error("{what} is truncated")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
    },
    /// The bytes do not form a valid object.
    #[error("{what} is malformed: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The bytes decode, but not in the one encoding a signer produces.
    #[error("{what} is not canonically encoded")]
    NonCanonical {
        /// What was being decoded.
        what: &'static str,
    },
    /// A format version this build does not know.
    #[error("{what} has format version {version}, this build reads version {supported}")]
    UnknownFormat {
        /// What was being decoded.
        what: &'static str,
        /// The version found.
        version: u16,
        /// The version understood.
        supported: u16,
    },
    /// Bytes follow the end of a complete object.
    #[error("{what} has {extra} unexpected bytes after its end")]
    TrailingBytes {
        /// What was being decoded.
        what: &'static str,
        /// How many bytes follow.
        extra: usize,
    },
}
