//! Verdicts on gossip announcements. Nothing is forwarded until our own
//! verification accepts it: a certificate, a head or a revocation as soon
//! as it is checked and new; a bundle once its certificate and its
//! manifest are and its blobs are in, or after a short hold while they are
//! fetched (see `fetch.rs`): never as late as a fetch's deadline. A false
//! blob costs the peer that served it, not the announcement, which was
//! true.
//!
//! Checks run cheapest and most decisive first, so that junk is refused
//! before it costs a signature check where it can be: the sender (banned
//! or not), the bytes' shape, the topic's publisher against the object's,
//! the certificate it came with (one already known costs no signature),
//! the certificate its object names against that one, then signatures;
//! what depends on our clock or on what we know comes last (see
//! [`judge`]). Every reject is a strike against the sender; a few get it
//! banned.

use super::messages::Announcement;
use super::verdict::{Kind, Refusal, judge};
use super::{Action, Now, Origin, Peer, State, Verdict};
use crate::proto::{BundleId, PolicyError, PublicKey};

/// The prefix of a publisher's gossip topic (see
/// [`topic_name`](super::messages::topic_name)).
const TOPIC_PREFIX: &str = "kolokol/v1/publisher/";

/// The publisher whose topic `topic` is, if it is one.
fn topic_publisher(topic: &str) -> Option<PublicKey> {
    let hex = topic.strip_prefix(TOPIC_PREFIX)?;
    let bytes: [u8; 32] = hex::decode(hex).ok()?.try_into().ok()?;
    Some(PublicKey(bytes))
}

impl<P: Peer, M: Clone> State<P, M> {
    fn give(&mut self, origin: Origin<P, M>, verdict: Verdict) {
        self.out.push_back(Action::Verdict { origin, verdict });
    }

    /// Rejects a message: gossip scoring penalizes its sender, and the
    /// strike counts toward a ban.
    fn reject(&mut self, origin: Origin<P, M>, refusal: Refusal, now: Now) {
        tracing::debug!(peer = ?origin.source, "rejected message: {refusal}");
        let peer = origin.source;
        self.give(origin, Verdict::Reject);
        if self.strikes.strike(peer, now.at) {
            let text = format!("banned after repeated junk, the last: {refusal}");
            let (_, _, mut ctx) = self.ctx(now.at);
            ctx.ban(peer, Refusal::new(refusal.kind, text));
        } else {
            self.out.push_back(Action::Refused { peer, refusal });
        }
    }

    /// Rejects what no honest node would pass on; ignores the rest.
    fn refuse(&mut self, origin: Origin<P, M>, what: &str, e: PolicyError, now: Now) {
        match judge(&e) {
            Verdict::Reject => self.reject(origin, Refusal::policy(what, &e), now),
            other => {
                tracing::debug!(peer = ?origin.source, "ignored {what}: {e}");
                self.give(origin, other);
            }
        }
    }

    /// A gossip message arrived on `topic`. Its verdict comes out as an
    /// [`Action::Verdict`], at once or within the fetch's short hold, so
    /// gossip need keep a message only briefly.
    pub fn gossip(&mut self, origin: Origin<P, M>, topic: &str, data: &[u8], now: Now) {
        // Still in flight from a peer banned meanwhile: not even read.
        if self.bans.is_banned(&origin.source, now.at) {
            return self.give(origin, Verdict::Reject);
        }
        let Some(announcement) = Announcement::decode(data) else {
            let refusal = Refusal::new(Kind::Undecodable, "undecodable announcement");
            return self.reject(origin, refusal, now);
        };
        // The driver follows trusted publishers' topics only; one given up
        // a moment ago may still deliver, at no fault of the sender.
        let Some(publisher) = topic_publisher(topic).filter(|p| self.policy.is_trusted(p)) else {
            return self.give(origin, Verdict::Ignore);
        };
        match announcement {
            Announcement::Bundle {
                certificate,
                manifest,
            } => {
                let cert = match self.policy.verify_certificate_of(&publisher, &certificate) {
                    Ok(c) => c,
                    Err(e) => return self.refuse(origin, "certificate", e, now),
                };
                self.add_certificate(cert.clone());
                if self.busy_with_bundle(&BundleId::of(&manifest)) {
                    return self.give(origin, Verdict::Ignore);
                }
                match self.policy.verify_manifest_with(&manifest, &cert, now.wall) {
                    // Held, or evicted under the quota, or removed by a
                    // revocation: not fetched again.
                    Ok(m) if self.knows(&m.publisher, m.sequence) => {
                        self.give(origin, Verdict::Ignore)
                    }
                    Ok(m) => {
                        // True as announced: accepted once the blobs are in
                        // or the hold ends. Peers that hear it from us
                        // before we hold them find them missing for a
                        // moment and ask again.
                        let source = origin.source;
                        self.start_fetch(m, Some(origin), Some(source), now.at);
                    }
                    Err(e) => self.refuse(origin, "manifest", e, now),
                }
            }
            Announcement::Head { certificate, head } => {
                let cert = match self.policy.verify_certificate_of(&publisher, &certificate) {
                    Ok(c) => c,
                    Err(e) => return self.refuse(origin, "certificate", e, now),
                };
                self.add_certificate(cert.clone());
                match self.policy.verify_head_with(&head, &cert, now.wall) {
                    Ok(h) => {
                        let verdict = if self.accept_head(h) {
                            Verdict::Accept
                        } else {
                            Verdict::Ignore
                        };
                        self.give(origin, verdict);
                    }
                    Err(e) => self.refuse(origin, "head", e, now),
                }
            }
            Announcement::MirrorList { certificate, list } => {
                let cert = match self.policy.verify_certificate_of(&publisher, &certificate) {
                    Ok(c) => c,
                    Err(e) => return self.refuse(origin, "certificate", e, now),
                };
                self.add_certificate(cert.clone());
                match self.policy.verify_mirror_list_with(&list, &cert, now.wall) {
                    Ok(l) => {
                        // An expired or older list is true but of no use:
                        // not passed on, at no cost to the sender.
                        let verdict = if self.accept_mirror_list(l, now.wall) {
                            Verdict::Accept
                        } else {
                            Verdict::Ignore
                        };
                        self.give(origin, verdict);
                    }
                    Err(e) => self.refuse(origin, "mirror list", e, now),
                }
            }
            Announcement::Certificate(bytes) => {
                match self.policy.verify_certificate_of(&publisher, &bytes) {
                    Ok(c) => {
                        let verdict = if self.add_certificate(c) {
                            Verdict::Accept
                        } else {
                            Verdict::Ignore
                        };
                        self.give(origin, verdict);
                    }
                    Err(e) => self.refuse(origin, "certificate", e, now),
                }
            }
            Announcement::Revocation(bytes) => {
                match self.policy.verify_revocation_of(&publisher, &bytes) {
                    Ok(r) => {
                        let change = self.add_revocation(r);
                        let verdict = if change.changed {
                            Verdict::Accept
                        } else {
                            Verdict::Ignore
                        };
                        self.give(origin, verdict);
                    }
                    Err(e) => self.refuse(origin, "revocation", e, now),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::messages::topic_name;

    #[test]
    fn a_topic_names_its_publisher() {
        let p = PublicKey([7; 32]);
        assert_eq!(topic_publisher(&topic_name(&p)), Some(p));
        assert_eq!(topic_publisher("kolokol/v1/publisher/07"), None);
        assert_eq!(topic_publisher("elsewhere"), None);
    }
}
