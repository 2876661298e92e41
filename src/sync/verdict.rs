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
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Kind::BadSignature => "bad_signature",
            Kind::WrongTopic => "wrong_topic",
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

/// How a policy error on something a peer passed on is judged. Errors that
/// depend on what we happen to know or on our clock (an unknown publisher
/// or certificate, a revocation the sender may not have seen yet, a time
/// just outside a window, an old head) are ignored without blame; errors no
/// honest node would pass on (bad signatures, malformed or oversized
/// objects) are rejected.
pub fn judge(e: &PolicyError) -> Verdict {
    match e {
        PolicyError::UnknownPublisher { .. }
        | PolicyError::UnknownCertificate { .. }
        | PolicyError::KeyRevoked { .. }
        | PolicyError::SignedInFuture { .. }
        | PolicyError::HeadRollback { .. } => Verdict::Ignore,
        _ => Verdict::Reject,
    }
}
