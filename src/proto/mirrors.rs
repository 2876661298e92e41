//! The mirror list: a publisher's signed list of the mirrors that carry its
//! stories, so that a reader who loses one can find the others.
//!
//! It is signed, like a head, by a certified signing key, and names the
//! certificate it was signed under. A newer list (higher `issued_at`)
//! replaces an older one; an expired list is still kept and shown, but not
//! dialed. Addresses are checked here only as text (proto knows nothing of
//! libp2p); the node parses them before it dials, and skips what it cannot.

use serde::{Deserialize, Serialize};

use super::error::DecodeError;
use super::ids::CertId;
use super::keys::{PublicKey, SecretKey};
use super::objects::FORMAT_VERSION;
use super::policy::PolicyError;
use super::signed::{ObjectKind, sign_and_encode};
use super::time::Timestamp;

/// Largest encoded, signed mirror list: small enough for one gossip message.
pub const MAX_MIRROR_LIST_BYTES: usize = 32 * 1024;
/// Most libp2p addresses in one list.
pub const MAX_MIRROR_ADDRS: usize = 64;
/// Most web-tree URLs in one list.
pub const MAX_MIRROR_URLS: usize = 32;
/// Longest libp2p address, in bytes.
pub const MAX_MIRROR_ADDR_LEN: usize = 256;
/// Longest web-tree URL, in bytes.
pub const MAX_MIRROR_URL_LEN: usize = 512;
/// Longest a list may stay valid (`expires_at - issued_at`): 366 days.
pub const MAX_MIRROR_LIST_VALIDITY_SECS: u64 = 366 * 24 * 3600;

/// A publisher's signed list of mirrors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorList {
    /// Always [`FORMAT_VERSION`].
    pub format: u16,
    /// The publisher's root key.
    pub publisher: PublicKey,
    /// The certificate of the key that signed this list.
    pub certificate: CertId,
    /// When the list was signed; a higher value replaces a lower one.
    pub issued_at: Timestamp,
    /// After this the list is not used for dialing.
    pub expires_at: Timestamp,
    /// libp2p multiaddresses of mirrors, each ending in `/p2p/<peer id>`.
    pub libp2p: Vec<String>,
    /// `https://` base URLs of web trees.
    pub https: Vec<String>,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> PolicyError {
    PolicyError::InvalidField {
        field,
        reason: reason.into(),
    }
}

fn too_large(field: &'static str, len: usize, max: usize) -> PolicyError {
    PolicyError::FieldTooLarge { field, len, max }
}

/// Checks a libp2p address as text: printable ASCII, starting with `/`,
/// no empty segment, and ending in `/p2p/<base58 peer id>`.
pub fn check_mirror_addr(addr: &str) -> Result<(), PolicyError> {
    const FIELD: &str = "mirror address";
    if addr.len() > MAX_MIRROR_ADDR_LEN {
        return Err(too_large(FIELD, addr.len(), MAX_MIRROR_ADDR_LEN));
    }
    if !addr.starts_with('/') || !addr.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            FIELD,
            format!("{addr:?} is not a multiaddress (printable text starting with '/')"),
        ));
    }
    let segments: Vec<&str> = addr[1..].split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(invalid(FIELD, format!("{addr:?} has an empty segment")));
    }
    let n = segments.len();
    let base58 = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() && !matches!(b, b'0' | b'O' | b'I' | b'l'))
    };
    if n < 4 || segments[n - 2] != "p2p" || !base58(segments[n - 1]) {
        return Err(invalid(
            FIELD,
            format!("{addr:?} must end in /p2p/<peer id>, as every dial address must"),
        ));
    }
    Ok(())
}

/// Checks a web-tree URL as text: `https://`, a host, printable ASCII, and
/// no query, fragment or user name.
pub fn check_mirror_url(url: &str) -> Result<(), PolicyError> {
    const FIELD: &str = "mirror URL";
    if url.len() > MAX_MIRROR_URL_LEN {
        return Err(too_large(FIELD, url.len(), MAX_MIRROR_URL_LEN));
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(invalid(
            FIELD,
            format!("{url:?} does not start with https://"),
        ));
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty()
        || !url.bytes().all(|b| b.is_ascii_graphic())
        || url.contains(['?', '#', '@', '\\'])
    {
        return Err(invalid(
            FIELD,
            format!(
                "{url:?} is not a plain https:// base URL (a host, no query, fragment or user)"
            ),
        ));
    }
    Ok(())
}

impl MirrorList {
    /// Checks the rules between fields.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.format != FORMAT_VERSION {
            return Err(PolicyError::Decode(DecodeError::UnknownFormat {
                what: "mirror list",
                version: self.format,
                supported: FORMAT_VERSION,
            }));
        }
        if self.expires_at < self.issued_at {
            return Err(invalid(
                "mirror list expiry",
                "expires_at is before issued_at",
            ));
        }
        if self.expires_at.0 - self.issued_at.0 > MAX_MIRROR_LIST_VALIDITY_SECS {
            return Err(invalid(
                "mirror list expiry",
                format!(
                    "a mirror list may be valid for at most {MAX_MIRROR_LIST_VALIDITY_SECS} seconds"
                ),
            ));
        }
        if self.libp2p.len() > MAX_MIRROR_ADDRS {
            return Err(too_large(
                "mirror addresses",
                self.libp2p.len(),
                MAX_MIRROR_ADDRS,
            ));
        }
        if self.https.len() > MAX_MIRROR_URLS {
            return Err(too_large("mirror URLs", self.https.len(), MAX_MIRROR_URLS));
        }
        for a in &self.libp2p {
            check_mirror_addr(a)?;
        }
        for u in &self.https {
            check_mirror_url(u)?;
        }
        Ok(())
    }

    /// Signs with a certified signing key, after checking the fields.
    pub fn sign(&self, key: &SecretKey) -> Result<Vec<u8>, PolicyError> {
        self.validate()?;
        Ok(sign_and_encode(ObjectKind::MirrorList, self, key)?)
    }

    /// Whether the list has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now > self.expires_at
    }

    /// Whether this list should replace `old`: same publisher, issued later.
    pub fn replaces(&self, old: &MirrorList) -> bool {
        self.publisher == old.publisher && self.issued_at > old.issued_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let id = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
        for ok in [
            format!("/ip4/192.0.2.1/tcp/4001/p2p/{id}"),
            format!("/ip4/192.0.2.1/udp/4001/quic-v1/p2p/{id}"),
            format!("/dns4/m.example/tcp/443/tls/ws/p2p/{id}"),
        ] {
            check_mirror_addr(&ok).unwrap();
        }
        for bad in [
            "/ip4/192.0.2.1/tcp/4001".to_string(),
            format!("ip4/192.0.2.1/tcp/4001/p2p/{id}"),
            format!("/ip4//tcp/4001/p2p/{id}"),
            format!("/ip4/192.0.2.1/tcp/4001/p2p/{id}0"),
            format!("/ip4/192.0.2.1/tcp/4001/p2p/{id} "),
            format!("/p2p/{id}/x"),
            format!("/ip4/1.2.3.4/tcp/1/p2p/{}", "a".repeat(300)),
        ] {
            assert!(check_mirror_addr(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        for ok in ["https://cdn.example/kolokol", "https://192.0.2.1:8443/"] {
            check_mirror_url(ok).unwrap();
        }
        for bad in [
            "http://cdn.example/",
            "https://",
            "https:///x",
            "https://a.example/?q",
            "https://u@a.example/",
            "https://a.example/x y",
            "ftp://a.example",
        ] {
            assert!(check_mirror_url(bad).is_err(), "{bad}");
        }
    }
}
