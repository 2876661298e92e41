//! Signed mirror lists for tests.

use kolokol::proto::*;

use super::{DAY, Publisher};

/// A peer id that parses, for addresses that are never dialed.
pub const PEER: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";

/// A mirror list of `p` issued at `issued_at`, valid for 30 days.
pub fn list(
    p: &Publisher,
    issued_at: Timestamp,
    libp2p: Vec<String>,
    https: Vec<String>,
) -> MirrorList {
    MirrorList {
        format: FORMAT_VERSION,
        publisher: p.public(),
        certificate: p.cert_id(),
        issued_at,
        expires_at: issued_at.plus(30 * DAY),
        libp2p,
        https,
    }
}

/// The same, signed by `p`'s signing key.
pub fn signed_list(
    p: &Publisher,
    issued_at: Timestamp,
    libp2p: Vec<String>,
    https: Vec<String>,
) -> Vec<u8> {
    list(p, issued_at, libp2p, https)
        .sign(&p.signing)
        .expect("a test mirror list signs")
}
