//! Verdicts on what peers send: accept (and forward), ignore (no blame),
//! or reject (the sender loses score, or is banned for false data), and
//! the kind of each refusal, from a small fixed set, for metrics.

use std::fmt;

use crate::proto::PolicyError;

/// What to tell gossip about a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid and new: forward it.
    Accept,
    /// Not forwarded, at no cost to its sender.
    Ignore,
    /// False: not forwarded, and its sender loses score.
    Reject,
}

/// The kind of a refusal. Metrics label refusals by kind, never by text a
/// peer could vary, so a peer cannot grow the number of series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A signature that does not verify.
    BadSignature,
    /// A publisher's object on another publisher's topic.
    WrongTopic,
    /// An object signed under another certificate than the one it came with.
    NotAttached,
    /// Bytes that do not decode.
    Undecodable,
    /// A blob that does not match its manifest.
    FalseBlob,
    /// A message that breaks the protocol's shape.
    Malformed,
    /// A message over the protocol's limits.
    OverLimits,
    /// An older head than the trusted one.
    Rollback,
    /// Something sent that was not asked for.
    Unasked,
    /// Any other invalid object.
    Invalid,
    /// Requests left unanswered, again and again.
    Unresponsive,
}

impl Kind {
    /// Every kind, for metrics that show each from the start, at 0.
    pub const ALL: [Kind; 11] = [
        Kind::BadSignature,
        Kind::WrongTopic,
        Kind::NotAttached,
        Kind::Undecodable,
        Kind::FalseBlob,
        Kind::Malformed,
        Kind::OverLimits,
        Kind::Rollback,
        Kind::Unasked,
        Kind::Invalid,
        Kind::Unresponsive,
    ];

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Kind::BadSignature => "bad_signature",
            Kind::WrongTopic => "wrong_topic",
            Kind::NotAttached => "not_attached",
            Kind::Undecodable => "undecodable",
            Kind::FalseBlob => "false_blob",
            Kind::Malformed => "malformed",
            Kind::OverLimits => "over_limits",
            Kind::Rollback => "rollback",
            Kind::Unasked => "unasked",
            Kind::Invalid => "invalid",
            Kind::Unresponsive => "unresponsive",
        }
    }

    /// The kind of a policy error.
    pub fn of(e: &PolicyError) -> Kind {
        match e {
            PolicyError::BadSignature { .. } => Kind::BadSignature,
            PolicyError::Decode(_) => Kind::Undecodable,
            PolicyError::BlobHashMismatch { .. }
            | PolicyError::BlobSizeMismatch { .. }
            | PolicyError::MissingBlob { .. }
            | PolicyError::UnexpectedBlob { .. } => Kind::FalseBlob,
            PolicyError::FieldTooLarge { .. } => Kind::OverLimits,
            PolicyError::HeadRollback { .. } => Kind::Rollback,
            PolicyError::CertificateFromOtherPublisher { .. }
            | PolicyError::OtherPublisher { .. } => Kind::WrongTopic,
            PolicyError::NotAttachedCertificate { .. } => Kind::NotAttached,
            _ => Kind::Invalid,
        }
    }
}

/// Why something a peer sent was refused: its kind and a sentence for
/// logs and events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The kind, for metrics.
    pub kind: Kind,
    /// What was wrong.
    pub text: String,
}

impl Refusal {
    /// A refusal of `kind`.
    pub fn new(kind: Kind, text: impl Into<String>) -> Self {
        Self {
            kind,
            text: text.into(),
        }
    }

    /// A refusal of `what` for a policy error.
    pub fn policy(what: &str, e: &PolicyError) -> Self {
        Self::new(Kind::of(e), format!("{what}: {e}"))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// How far past our own allowance for clock skew a signing time may lie
/// and still be forgiven: a forwarder whose clock runs ahead (a wrong time
/// zone on a home machine is off by up to 14 hours) passes such an object
/// on in good faith. Farther than this, no honest clock is that wrong.
pub const FORGIVEN_SKEW_SECS: u64 = 24 * 3600;

/// How a policy error on something a peer passed on is judged.
///
/// The policy checks signatures before anything that depends on our clock
/// or on what we happen to know, so by the time one of those errors comes
/// up, the object was really signed by its publisher's certified key; an
/// honest node may pass it on, and it is ignored without blame:
/// - an unknown publisher or certificate: the sender may trust or know
///   more than we do (on gossip, an object's certificate comes with it and
///   its publisher is the topic's, so these are refused before: see
///   `gossip.rs`);
/// - a revoked key: the sender may not have the revocation yet;
/// - a signing time in the future within [`FORGIVEN_SKEW_SECS`]: the
///   sender's clock may run ahead of ours;
/// - an older head than ours: the sender may not have the newer one yet.
///
/// Everything else no honest node passes on, since it checks the same
/// thing the same way before forwarding: bad signatures, malformed or
/// oversized objects, a certificate of another publisher, an object not
/// signed under the certificate it came with, a time outside the
/// certificate's window, a blob that does not match. Those are rejected.
pub fn judge(e: &PolicyError) -> Verdict {
    match e {
        PolicyError::UnknownPublisher { .. }
        | PolicyError::UnknownCertificate { .. }
        | PolicyError::KeyRevoked { .. }
        | PolicyError::HeadRollback { .. } => Verdict::Ignore,
        PolicyError::SignedInFuture { signed_at, now }
            if *signed_at
                <= now.plus(crate::proto::limits::CLOCK_SKEW_SECS + FORGIVEN_SKEW_SECS) =>
        {
            Verdict::Ignore
        }
        _ => Verdict::Reject,
    }
}
