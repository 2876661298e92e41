//! Every size limit the decoders and the trust policy enforce.
//!
//! Limits are checked before anything is allocated for the data they bound:
//! a frame's length is compared with the limit for its kind before its
//! payload is read, and a signed object's length before it is decoded. Field
//! limits are checked right after decoding, on input that is already bounded
//! by the object limit, so no field can make the decoder allocate more than
//! its enclosing object's limit.

/// Largest encoded, signed manifest. Small enough to travel as one gossip
/// message (gossipsub caps messages at 64 KiB; the announcement adds a tag).
pub const MAX_MANIFEST_BYTES: usize = 60 * 1024;
/// Largest encoded, signed key certificate.
pub const MAX_CERTIFICATE_BYTES: usize = 4 * 1024;
/// Largest encoded, signed revocation.
pub const MAX_REVOCATION_BYTES: usize = 4 * 1024;
/// Largest encoded, signed certificate request.
pub const MAX_CERTIFICATE_REQUEST_BYTES: usize = 4 * 1024;
/// Longest validity a certificate request may ask for: five years.
pub const MAX_REQUEST_VALIDITY_SECS: u64 = 5 * 366 * 24 * 3600;
/// Shortest validity a certificate request may ask for: one hour.
pub const MIN_REQUEST_VALIDITY_SECS: u64 = 3600;
/// Largest encoded, signed head.
pub const MAX_HEAD_BYTES: usize = 1024;
/// Longest a head may claim to stay fresh (`expires_at - issued_at`): 31
/// days. A newsroom re-issues its head far more often (7 days by default).
pub const MAX_HEAD_VALIDITY_SECS: u64 = 31 * 24 * 3600;
/// Largest single blob (article body or media file).
pub const MAX_BLOB_BYTES: u64 = 64 * 1024 * 1024;
/// Largest sum of all blob sizes of one bundle.
pub const MAX_BUNDLE_BYTES: u64 = 256 * 1024 * 1024;
/// Most entries (body plus media files) in one manifest.
pub const MAX_ENTRIES: usize = 256;

/// Longest title, in bytes of UTF-8.
pub const MAX_TITLE: usize = 512;
/// Longest language tag (BCP 47 allows 35 characters in practice).
pub const MAX_LANGUAGE: usize = 35;
/// Most authors of one story.
pub const MAX_AUTHORS: usize = 32;
/// Longest author name.
pub const MAX_AUTHOR: usize = 256;
/// Longest section name.
pub const MAX_SECTION: usize = 128;
/// Longest original URL.
pub const MAX_URL: usize = 2048;
/// Longest summary.
pub const MAX_SUMMARY: usize = 4096;
/// Longest entry path.
pub const MAX_PATH: usize = 256;
/// Longest media type.
pub const MAX_MEDIA_TYPE: usize = 128;
/// Most languages in a certificate's scope.
pub const MAX_SCOPE_LANGUAGES: usize = 64;
/// Longest revocation reason.
pub const MAX_REASON: usize = 1024;

/// How far in the future a signing time or issue time may lie before it is
/// refused, to tolerate clocks that are a little off.
pub const CLOCK_SKEW_SECS: u64 = 10 * 60;
