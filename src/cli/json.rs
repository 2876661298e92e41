//! The `--json` output of the command line: one object on standard output
//! per command, in the stable format docs/cli-json.md describes. Every
//! type here is that format; a change to a field is a change to
//! [`FORMAT`].

use std::io::Write;

use serde::Serialize;

use crate::proto::{PublicKey, Timestamp};

/// The version of the format, in every object's `format` field. Fields
/// may be added without a change; a field renamed, removed or given
/// another meaning raises it.
pub(super) const FORMAT: u32 = 1;

/// A key as lowercase hex, without the `ed25519:` prefix of its text form.
pub(super) fn key_hex(key: &PublicKey) -> String {
    hex::encode(key.as_bytes())
}

/// A key given in its text form (as the control API gives it), as
/// lowercase hex; a text that is not a key is kept as it is.
pub(super) fn key_text_hex(text: &str) -> String {
    text.parse::<PublicKey>()
        .map_or_else(|_| text.to_owned(), |k| key_hex(&k))
}

/// A time as unix seconds.
pub(super) fn secs(t: Timestamp) -> u64 {
    t.0
}

/// Writes `value` as one line of JSON on standard output.
pub(super) fn print<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A failure, as `--json` reports it on standard output.
#[derive(Debug, Serialize)]
pub(super) struct ErrorReport {
    /// Always [`FORMAT`].
    pub format: u32,
    /// What went wrong.
    pub error: ErrorBody,
}

/// The `error` object of an [`ErrorReport`].
#[derive(Debug, Serialize)]
pub(super) struct ErrorBody {
    /// The error and its causes, as the text output says them.
    pub message: String,
    /// A word for the kind of failure (see [`Kind`]).
    pub kind: Kind,
}

/// The kinds of failure `--json` names, for scripts to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Kind {
    /// No node runs on the data directory (`status`).
    NoNode,
    /// Reading or writing a file failed.
    Io,
    /// The store could not be opened or read.
    Store,
    /// The trust list could not be read or changed.
    Trust,
    /// The running node's control API failed or refused.
    Control,
    /// A file is not what it should be (undecodable, damaged).
    InvalidFile,
    /// Anything else.
    Other,
}

/// A failure whose kind the command knows, for [`kind_of`] to find.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(super) struct Failure {
    /// Its kind.
    pub kind: Kind,
    /// What went wrong.
    pub message: String,
}

/// The kind of `e`, by the types in its chain: the first one known wins.
pub(super) fn kind_of(e: &anyhow::Error) -> Kind {
    for cause in e.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.kind;
        }
        if cause.is::<crate::node::control::ControlError>() {
            return Kind::Control;
        }
        if cause.is::<crate::store::StoreError>() {
            return Kind::Store;
        }
        if cause.is::<crate::trust::TrustError>() {
            return Kind::Trust;
        }
        if cause.is::<crate::proto::bundle::FileError>() {
            return Kind::InvalidFile;
        }
        if cause.is::<std::io::Error>() {
            return Kind::Io;
        }
    }
    Kind::Other
}

/// `e` as `--json` reports it.
pub(super) fn error_report(e: &anyhow::Error) -> ErrorReport {
    ErrorReport {
        format: FORMAT,
        error: ErrorBody {
            message: super::report::chain(e),
            kind: kind_of(e),
        },
    }
}

/// `kolokol status --json`.
#[derive(Debug, Serialize)]
pub(super) struct Status {
    /// Always [`FORMAT`].
    pub format: u32,
    /// Whether the node is locked (a sealed data directory waiting for
    /// its passphrase); the other fields are then empty or zero.
    pub locked: bool,
    /// Where a locked node is unlocked (`http://ADDR/`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unlock_url: Option<String>,
    /// The node's peer id (libp2p's base58 text).
    pub peer_id: String,
    /// `quiet`, `share` or `mirror`.
    pub role: String,
    /// Reachability as autonat last found it (its own words), absent until
    /// it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reachability: Option<String>,
    /// Listening multiaddresses.
    pub listen: Vec<String>,
    /// Connected peers' ids.
    pub peers: Vec<String>,
    /// Gossip topics followed.
    pub topics: Vec<String>,
    /// Bundles being fetched.
    pub fetching: u64,
    /// Messages refused since start (failed verification).
    pub rejected: u64,
    /// Peers banned.
    pub banned: u64,
    /// Gossip messages received, duplicates included.
    pub gossip_received: u64,
    /// New gossip messages received.
    pub gossip_unique: u64,
    /// Blob chunks served to peers.
    pub served_chunks: u64,
    /// Catch-up traffic since start.
    pub sync: Traffic,
    /// Log traffic since start.
    pub log: Traffic,
    /// Mirrors whose log a quiet reader follows.
    pub followed: u64,
    /// Per trusted publisher carried.
    pub publishers: Vec<StatusPublisher>,
    /// What to do about what is wrong, one sentence each.
    pub advice: Vec<String>,
}

/// Messages and bytes, both ways.
#[derive(Debug, Default, Serialize)]
pub(super) struct Traffic {
    /// Messages sent.
    pub messages_sent: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Bytes received.
    pub bytes_received: u64,
}

impl From<&crate::net::SyncTraffic> for Traffic {
    fn from(t: &crate::net::SyncTraffic) -> Self {
        Self {
            messages_sent: t.messages_sent,
            bytes_sent: t.bytes_sent,
            messages_received: t.messages_received,
            bytes_received: t.bytes_received,
        }
    }
}

/// One publisher in [`Status`].
#[derive(Debug, Serialize)]
pub(super) struct StatusPublisher {
    /// Its name in the trust list.
    pub name: String,
    /// Its root key.
    pub root_key: String,
    /// Stories held.
    pub held: u64,
    /// Sequence numbers missing, as inclusive `[first, last]` ranges.
    pub missing: Vec<[u64; 2]>,
    /// The newest head, if one is known.
    pub head: Option<HeadInfo>,
}

/// A publisher's newest head.
#[derive(Debug, Serialize)]
pub(super) struct HeadInfo {
    /// Its sequence number.
    pub sequence: u64,
    /// When it was issued (unix seconds).
    pub issued_at: u64,
    /// Whether it has expired.
    pub expired: bool,
}

/// Inclusive ranges as pairs.
pub(super) fn ranges(r: &[(u64, u64)]) -> Vec<[u64; 2]> {
    r.iter().map(|&(a, b)| [a, b]).collect()
}

/// `kolokol trust list --json`.
#[derive(Debug, Serialize)]
pub(super) struct TrustList {
    /// Always [`FORMAT`].
    pub format: u32,
    /// The trusted publishers, by name.
    pub publishers: Vec<TrustedPublisher>,
}

/// One publisher of [`TrustList`].
#[derive(Debug, Serialize)]
pub(super) struct TrustedPublisher {
    /// Its name in the trust list.
    pub name: String,
    /// Its root key.
    pub root_key: String,
    /// Its fingerprint, as `kolokol newsroom info` shows it.
    pub fingerprint: String,
    /// Its home page, if the file gives one.
    pub homepage: Option<String>,
    /// Whether it is the demo newsroom, whose secret key is public.
    pub demo: bool,
}

/// `kolokol verify --json`.
#[derive(Debug, Serialize)]
pub(super) struct Verify {
    /// Always [`FORMAT`].
    pub format: u32,
    /// Whether every file verified.
    pub ok: bool,
    /// One per file, in the order given.
    pub files: Vec<VerifiedFile>,
}

/// One file of [`Verify`].
#[derive(Debug, Serialize)]
pub(super) struct VerifiedFile {
    /// The path as given.
    pub path: String,
    /// Whether it verified.
    pub ok: bool,
    /// Why not, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it holds, when it verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<BundleInfo>,
}

/// A verified bundle, in [`VerifiedFile`].
#[derive(Debug, Serialize)]
pub(super) struct BundleInfo {
    /// The bundle id.
    pub id: String,
    /// The publisher's root key.
    pub publisher: String,
    /// Its name in the trust list.
    pub publisher_name: Option<String>,
    /// The story id.
    pub story: String,
    /// The story's version.
    pub version: u32,
    /// `story`, `correction` or `retraction`.
    pub kind: String,
    /// The publisher's sequence number.
    pub sequence: u64,
    /// The headline.
    pub title: String,
    /// The language tag.
    pub language: String,
    /// When it was signed (unix seconds).
    pub signed_at: u64,
    /// Files in the bundle.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The key that signed it.
    pub signing_key: SigningKey,
}

/// The certificate of the key that signed a bundle.
#[derive(Debug, Serialize)]
pub(super) struct SigningKey {
    /// The certificate id.
    pub certificate: String,
    /// The signing key.
    pub key: String,
    /// The certificate's serial number.
    pub serial: u64,
    /// Valid from (unix seconds).
    pub not_before: u64,
    /// Valid until (unix seconds).
    pub not_after: u64,
}

/// `kolokol inspect --json`: nothing in it has been verified.
#[derive(Debug, Serialize)]
pub(super) struct Inspect {
    /// Always [`FORMAT`].
    pub format: u32,
    /// Always false: inspect checks nothing.
    pub verified: bool,
    /// The path as given.
    pub path: String,
    /// `bundle` or `archive`.
    pub file_kind: String,
    /// The frames, in file order.
    pub frames: Vec<Frame>,
    /// Where reading stopped on a damaged file, if it did.
    pub error: Option<String>,
}

/// One frame of an inspected file, by its `type`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Frame {
    /// A key certificate.
    Certificate {
        /// Its id.
        id: String,
        /// The publisher's root key.
        publisher: String,
        /// The key it certifies.
        signing_key: String,
        /// Its serial number.
        serial: u64,
        /// Valid from (unix seconds).
        not_before: u64,
        /// Valid until (unix seconds).
        not_after: u64,
        /// Languages it is limited to (empty: any).
        languages: Vec<String>,
    },
    /// A revocation.
    Revocation {
        /// The publisher's root key.
        publisher: String,
        /// The key revoked.
        key: String,
        /// From when (unix seconds).
        effective_from: u64,
        /// The reason given.
        reason: String,
    },
    /// A head.
    Head {
        /// The publisher's root key.
        publisher: String,
        /// Its sequence number.
        sequence: u64,
        /// When it was issued (unix seconds).
        issued_at: u64,
        /// When it expires (unix seconds).
        expires_at: u64,
    },
    /// A manifest.
    Manifest {
        /// The bundle id.
        id: String,
        /// The publisher's root key.
        publisher: String,
        /// The headline.
        title: String,
        /// The language tag.
        language: String,
        /// The authors.
        authors: Vec<String>,
        /// The story id.
        story: String,
        /// The story's version.
        version: u32,
        /// `story`, `correction` or `retraction`.
        kind: String,
        /// The publisher's sequence number.
        sequence: u64,
        /// The bundle it supersedes.
        supersedes: Option<String>,
        /// When it was signed (unix seconds).
        signed_at: u64,
        /// The certificate id of its signing key.
        certificate: String,
        /// Files listed.
        entries: u64,
    },
    /// A blob.
    Blob {
        /// The path its manifest entry gives, if there is one.
        path: Option<String>,
        /// The media type its manifest entry gives.
        media_type: Option<String>,
        /// Its bytes.
        size: u64,
        /// Its BLAKE3 hash.
        blake3: String,
    },
    /// A mirror list.
    MirrorList {
        /// The publisher's root key.
        publisher: String,
        /// libp2p addresses.
        libp2p: Vec<String>,
        /// Web trees.
        https: Vec<String>,
        /// When it was issued (unix seconds).
        issued_at: u64,
        /// When it expires (unix seconds).
        expires_at: u64,
    },
    /// A frame that could not be decoded.
    Undecodable {
        /// What frame it was.
        frame: String,
        /// Why it could not be decoded.
        error: String,
    },
}

/// `kolokol store stats --json`.
#[derive(Debug, Serialize)]
pub(super) struct StoreStats {
    /// Always [`FORMAT`].
    pub format: u32,
    /// The store's folder.
    pub path: String,
    /// Whether it is sealed.
    pub sealed: bool,
    /// Bundles held.
    pub bundles: u64,
    /// Distinct blobs held.
    pub blobs: u64,
    /// Bytes of manifests and blobs (what the quota counts).
    pub payload_bytes: u64,
    /// Bytes the database's files take on disk.
    pub disk_bytes: u64,
    /// The quota, if one is set.
    pub quota_bytes: Option<u64>,
    /// Per publisher held.
    pub publishers: Vec<StorePublisher>,
}

/// One publisher of [`StoreStats`].
#[derive(Debug, Serialize)]
pub(super) struct StorePublisher {
    /// Its name in the trust list, if it is trusted.
    pub name: Option<String>,
    /// Its root key.
    pub root_key: String,
    /// Sequence numbers held, as inclusive ranges.
    pub held: Vec<[u64; 2]>,
    /// Sequence numbers missing, as inclusive ranges.
    pub missing: Vec<[u64; 2]>,
    /// The newest head, if one is known.
    pub head: Option<HeadInfo>,
}

/// `kolokol import --json`.
#[derive(Debug, Serialize)]
pub(super) struct Import {
    /// Always [`FORMAT`].
    pub format: u32,
    /// Whether nothing was rejected and no file was damaged.
    pub ok: bool,
    /// Whether the running node imported (else this command did).
    pub by_node: bool,
    /// One per file, in the order given.
    pub files: Vec<ImportedFile>,
}

/// One file of [`Import`].
#[derive(Debug, Serialize)]
pub(super) struct ImportedFile {
    /// The path as given.
    pub path: String,
    /// Bundles stored now.
    pub new: u64,
    /// Bundles already held.
    pub duplicate: u64,
    /// Bundles and objects refused, in all.
    pub rejected: u64,
    /// The first refused, with the reason.
    pub rejected_examples: Vec<RejectedItem>,
    /// Refused, by kind.
    pub rejected_by_kind: std::collections::BTreeMap<String, u64>,
    /// Certificates accepted.
    pub certificates: u64,
    /// Revocations accepted.
    pub revocations: u64,
    /// Heads that became the newest known.
    pub heads: u64,
    /// Mirror lists that became the newest known.
    pub mirror_lists: u64,
    /// Bundles removed by a revocation in the file.
    pub purged: u64,
    /// The damage that stopped reading, if any; what came before was kept.
    pub file_error: Option<String>,
}

/// One refused bundle or object.
#[derive(Debug, Serialize)]
pub(super) struct RejectedItem {
    /// The bundle id, or where in the file it was.
    pub what: String,
    /// Why.
    pub reason: String,
}

impl ImportedFile {
    /// A file's import report in this format.
    pub(super) fn of(path: String, r: &crate::store::archive::ImportReport) -> Self {
        Self {
            path,
            new: r.new,
            duplicate: r.duplicate,
            rejected: r.refused.max(r.rejected.len() as u64),
            rejected_examples: r
                .rejected
                .iter()
                .map(|x| RejectedItem {
                    what: x.what.clone(),
                    reason: x.reason.clone(),
                })
                .collect(),
            rejected_by_kind: r.refused_by_kind.clone(),
            certificates: r.certificates,
            revocations: r.revocations,
            heads: r.heads,
            mirror_lists: r.mirror_lists,
            purged: r.purged,
            file_error: r.file_error.clone(),
        }
    }

    /// Whether nothing in it was refused.
    pub(super) fn ok(&self) -> bool {
        self.rejected_examples.is_empty() && self.file_error.is_none()
    }
}
