//! Verdicts on gossip announcements. Nothing is forwarded until our own
//! verification accepts it: a certificate, a head or a revocation as soon
//! as it is checked and new; a bundle only once its blobs were fetched,
//! checked and stored whole.

use super::messages::{Announcement, topic_name};
use super::verdict::{Kind, Refusal, judge};
use super::{Action, Now, Origin, Peer, State, Verdict};
use crate::proto::{BundleId, PolicyError, PublicKey};

impl<P: Peer, M: Clone> State<P, M> {
    fn give(&mut self, origin: Origin<P, M>, verdict: Verdict) {
        self.out.push_back(Action::Verdict { origin, verdict });
    }

    fn reject(&mut self, origin: Origin<P, M>, refusal: Refusal) {
        tracing::debug!(peer = ?origin.source, "rejected message: {refusal}");
        self.out.push_back(Action::Refused {
            peer: origin.source,
            refusal,
        });
        self.give(origin, Verdict::Reject);
    }

    /// Rejects what no honest node would pass on; ignores the rest.
    fn refuse(&mut self, origin: Origin<P, M>, what: &str, e: PolicyError) {
        match judge(&e) {
            Verdict::Reject => self.reject(origin, Refusal::policy(what, &e)),
            other => {
                tracing::debug!(peer = ?origin.source, "ignored {what}: {e}");
                self.give(origin, other);
            }
        }
    }

    fn off_topic(&mut self, origin: Origin<P, M>, text: &str) {
        self.reject(origin, Refusal::new(Kind::WrongTopic, text));
    }

    /// A gossip message arrived on `topic`. Its verdict comes out as an
    /// [`Action::Verdict`], at once or when its bundle is stored.
    pub fn gossip(&mut self, origin: Origin<P, M>, topic: &str, data: &[u8], now: Now) {
        let Some(announcement) = Announcement::decode(data) else {
            return self.reject(
                origin,
                Refusal::new(Kind::Undecodable, "undecodable announcement"),
            );
        };
        // Each publisher's objects belong on its own topic only.
        let on_topic = |publisher: &PublicKey| topic == topic_name(publisher);
        match announcement {
            Announcement::Bundle {
                certificate,
                manifest,
            } => {
                // Certificate first, so the manifest can be checked.
                let cert = match self.policy.verify_certificate(&certificate) {
                    Ok(c) => c,
                    Err(e) => return self.refuse(origin, "certificate", e),
                };
                if !on_topic(&cert.publisher) {
                    return self.off_topic(origin, "announcement on another publisher's topic");
                }
                if self.busy_with_bundle(&BundleId::of(&manifest)) {
                    return self.give(origin, Verdict::Ignore);
                }
                let publisher = cert.publisher;
                self.add_certificate(cert);
                match self.policy.verify_manifest(&manifest, now.wall) {
                    Ok(m) if m.publisher != publisher => self.off_topic(
                        origin,
                        "a manifest of another publisher than its certificate",
                    ),
                    // Held, or evicted under the quota, or removed by a
                    // revocation: not fetched again.
                    Ok(m) if self.knows(&m.publisher, m.sequence) => {
                        self.give(origin, Verdict::Ignore)
                    }
                    Ok(m) => {
                        let source = origin.source;
                        self.start_fetch(m, Some(origin), Some(source), now.at);
                    }
                    Err(e) => self.refuse(origin, "manifest", e),
                }
            }
            Announcement::Head { certificate, head } => {
                match self.policy.verify_certificate(&certificate) {
                    Ok(c) if !on_topic(&c.publisher) => {
                        return self.off_topic(origin, "announcement on another publisher's topic");
                    }
                    Ok(c) => {
                        self.add_certificate(c);
                    }
                    Err(e) => return self.refuse(origin, "certificate", e),
                }
                match self.policy.verify_head(&head, now.wall) {
                    Ok(h) if !on_topic(&h.publisher) => {
                        self.off_topic(origin, "a head of another publisher than its topic")
                    }
                    Ok(h) => {
                        let verdict = if self.accept_head(h) {
                            Verdict::Accept
                        } else {
                            Verdict::Ignore
                        };
                        self.give(origin, verdict);
                    }
                    Err(e) => self.refuse(origin, "head", e),
                }
            }
            Announcement::Certificate(bytes) => match self.policy.verify_certificate(&bytes) {
                Ok(c) if !on_topic(&c.publisher) => {
                    self.off_topic(origin, "announcement on another publisher's topic")
                }
                Ok(c) => {
                    let verdict = if self.add_certificate(c) {
                        Verdict::Accept
                    } else {
                        Verdict::Ignore
                    };
                    self.give(origin, verdict);
                }
                Err(e) => self.refuse(origin, "certificate", e),
            },
            Announcement::Revocation(bytes) => match self.policy.verify_revocation(&bytes) {
                Ok(r) if !on_topic(&r.publisher) => {
                    self.off_topic(origin, "announcement on another publisher's topic")
                }
                Ok(r) => {
                    let change = self.add_revocation(r);
                    let verdict = if change.changed {
                        Verdict::Accept
                    } else {
                        Verdict::Ignore
                    };
                    self.give(origin, verdict);
                }
                Err(e) => self.refuse(origin, "revocation", e),
            },
        }
    }
}
