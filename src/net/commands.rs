//! What the actor does for the handle's commands, and with the store
//! thread's results: publishing, importing, revoking, trusting, and bringing
//! the policy in step with what an import taught a copy of it.

use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::actor::Actor;
use super::handle::Command;
use super::wire::{self, Announcement};
use super::worker::{Done, Job, Publication};
use super::{NetError, NodeEvent};
use crate::proto::bundle::{BundleFile, verify_bundle_file};
use crate::proto::{BundleId, PublicKey, TrustPolicy};
use crate::store::Ingested;

impl Actor {
    // ---- commands ----

    pub(super) fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Publish { file, reply } => self.publish(*file, reply),
            Command::Import { source, reply } => {
                let policy = Box::new(self.state.policy().clone());
                self.job(Job::Import {
                    source,
                    policy,
                    reply,
                });
            }
            Command::Policy { reply } => {
                let _ = reply.send(Box::new(self.state.policy().clone()));
            }
            Command::Trust { file, reply } => {
                // What the store kept of it (from before it was last
                // untrusted) is read first and learned in the same step as
                // the trust: a policy that trusted it bare meanwhile would
                // take a head by a revoked key, which would then refuse
                // the newsroom's genuine heads as rollbacks.
                self.job(Job::Relearn {
                    publisher: file.root_key,
                    name: file.name.clone(),
                    // Checked as text when the file was read.
                    mirror_list: file.mirror_list_bytes().ok().flatten(),
                    mirror_certificate: file.mirror_certificate_bytes().ok().flatten(),
                    reply,
                });
            }
            Command::Untrust { publisher, reply } => {
                let _ = reply.send(self.untrust(&publisher));
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Dial { addr, reply } => {
                if !super::transport::names_a_peer(&addr) {
                    let _ = reply.send(Err(NetError::NoPeerId(addr.to_string())));
                    return;
                }
                self.discovery.choose_address(&addr);
                // Kept in the book like a configured peer: dialed again
                // after a drop, and remembered across restarts.
                let peer = self.book_bootstrap(&addr);
                let result = self.swarm.dial(addr.clone()).map_err(|e| NetError::Dial {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                });
                if result.is_err()
                    && let Some(peer) = peer
                {
                    self.book_dial_failed(&peer);
                }
                let _ = reply.send(result);
            }
            Command::Report {
                publisher,
                story,
                wait,
                reply,
            } => self.start_report(publisher, story, wait, reply),
            Command::Revoke { revocation, reply } => self.revoke(revocation, reply),
            Command::Metrics { reply } => self.job(Job::Totals { reply }),
            Command::Listeners { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Learn {
                addrs,
                source,
                reply,
            } => {
                let _ = reply.send(self.learn(&addrs, source));
            }
            Command::Shutdown { .. } => {}
        }
    }

    fn revoke(&mut self, bytes: Vec<u8>, reply: oneshot::Sender<Result<usize, NetError>>) {
        let change = match self.state.learn_revocation(&bytes) {
            Ok(c) => c,
            Err(e) => {
                let _ = reply.send(Err(NetError::Rejected(format!("revocation: {e}"))));
                return;
            }
        };
        let rev = &change.revocation;
        info!("revocation announced");
        debug!(key = %rev.key, "revocation announced");
        self.announce(&rev.publisher, Announcement::Revocation(bytes));
        if change.changed || change.head_dropped {
            // The store says what it removed.
            self.revokes.insert((rev.publisher, rev.key), reply);
        } else {
            let _ = reply.send(Ok(0));
        }
    }

    fn publish(&mut self, file: BundleFile, reply: oneshot::Sender<Result<BundleId, NetError>>) {
        for c in &file.certificates {
            if let Err(e) = self.state.learn_certificate(c) {
                let _ = reply.send(Err(NetError::Rejected(format!("certificate: {e}"))));
                return;
            }
        }
        for r in &file.revocations {
            if let Err(e) = self.state.learn_revocation(r) {
                let _ = reply.send(Err(NetError::Rejected(format!("revocation: {e}"))));
                return;
            }
        }
        let verified = match verify_bundle_file(self.state.policy(), file, self.now().wall) {
            Ok(v) => v,
            Err(e) => {
                let _ = reply.send(Err(NetError::Rejected(e.to_string())));
                return;
            }
        };
        // The trust objects go to the store before the bundle that needs them.
        self.execute();
        self.job(Job::Publish(Box::new(Publication {
            bundle: verified.bundle,
            heads: verified.heads,
            certificate: verified.certificate.bytes().to_vec(),
            reply,
        })));
    }

    /// A published bundle is stored: it is announced, with the
    /// publisher's revocations and any newer head.
    fn published(&mut self, p: Publication, result: Result<Ingested, crate::store::StoreError>) {
        let ingested = match result {
            Ok(i @ (Ingested::New | Ingested::Duplicate)) => i,
            Ok(other) => {
                let _ = p.reply.send(Err(NetError::Rejected(format!("{other:?}"))));
                return;
            }
            Err(e) => {
                let _ = p.reply.send(Err(e.into()));
                return;
            }
        };
        let manifest = p.bundle.manifest();
        let (publisher, id) = (manifest.publisher, p.bundle.id());
        if ingested == Ingested::New {
            let now = self.now();
            self.state
                .stored_batch(&[(publisher, manifest.sequence, id)], now);
        }
        // Revocations travel too, so every node refuses the revoked key.
        let revocations: Vec<Vec<u8>> = self
            .state
            .policy()
            .publisher(&publisher)
            .map(|t| t.revocations().map(|r| r.bytes().to_vec()).collect())
            .unwrap_or_default();
        for r in revocations {
            self.announce(&publisher, Announcement::Revocation(r));
        }
        self.announce(
            &publisher,
            Announcement::Bundle {
                certificate: p.certificate.clone(),
                manifest: manifest.bytes().to_vec(),
            },
        );
        for head in p.heads {
            let bytes = head.bytes().to_vec();
            if self.state.accept_head(head) {
                self.announce(
                    &publisher,
                    Announcement::Head {
                        certificate: p.certificate.clone(),
                        head: bytes,
                    },
                );
            }
        }
        // The publisher's mirror list travels with its stories, so that a
        // node that came up since hears of it too; one that knows it
        // ignores it.
        if let Some(a) = self.mirror_list_announcement(&publisher) {
            self.announce(&publisher, a);
        }
        self.emit(NodeEvent::Stored(id));
        debug!(bundle = %id.short(), "published");
        let _ = p.reply.send(Ok(id));
    }

    /// The announcement of `publisher`'s newest mirror list, when one is
    /// known and still in force under the policy (not expired, its key not
    /// revoked since).
    pub(super) fn mirror_list_announcement(&self, publisher: &PublicKey) -> Option<Announcement> {
        let wall = self.now().wall;
        let policy = self.state.policy();
        let list = self.state.mirror_list(publisher)?;
        let fresh = policy.verify_mirror_list(list.bytes(), wall).ok()?;
        if fresh.is_expired(wall) {
            return None;
        }
        let certificate = policy
            .publisher(publisher)?
            .certificates()
            .find(|c| c.id() == fresh.certificate)?
            .bytes()
            .to_vec();
        Some(Announcement::MirrorList {
            certificate,
            list: fresh.bytes().to_vec(),
        })
    }

    // ---- store results ----

    pub(super) fn store_done(&mut self, done: Done) {
        let now = self.now();
        match done {
            Done::Stored {
                publisher,
                sequence,
                id,
                result,
            } => {
                if matches!(
                    result,
                    crate::sync::Stored::New | crate::sync::Stored::Duplicate
                ) {
                    self.emit(NodeEvent::Stored(id));
                    debug!(bundle = %id.short(), "fetched and stored");
                }
                self.state.stored(publisher, sequence, id, result, now);
            }
            Done::Batch(stored) => {
                self.state.stored_batch(&stored, now);
                for (_, _, id) in stored {
                    self.emit(NodeEvent::Stored(id));
                }
            }
            Done::Revoked {
                publisher,
                key,
                removed,
            } => {
                if let Some(reply) = self.revokes.remove(&(publisher, key)) {
                    let _ = reply.send(Ok(removed));
                }
            }
            Done::Published {
                publication,
                result,
            } => self.published(*publication, result),
            Done::Imported {
                report,
                announce,
                policy,
                reply,
            } => {
                self.absorb(&policy);
                // What a quiet reader imports (an archive carried by hand,
                // a web tree it read) is never announced: mirrors
                // subscribed to the topic would learn what it holds.
                let serves = self.config.role().serves();
                for (publisher, id, manifest, m) in announce {
                    if !serves {
                        self.emit(NodeEvent::Stored(id));
                        continue;
                    }
                    let cert = policy
                        .publisher(&publisher)
                        .and_then(|t| t.certificates().find(|c| c.id() == m.certificate))
                        .map(|c| c.bytes().to_vec());
                    if let Some(certificate) = cert {
                        self.queue_announcement(
                            &publisher,
                            Announcement::Bundle {
                                certificate,
                                manifest,
                            },
                        );
                        self.emit(NodeEvent::Stored(id));
                    }
                }
                self.flush_outbox();
                let _ = reply.send(Ok(report));
            }
            Done::Blob {
                peer,
                channel,
                response,
                bytes,
            } => {
                if matches!(response, wire::FetchResponse::Chunk { .. }) {
                    self.served_chunks += 1;
                }
                self.served(peer, bytes);
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .fetch
                    .send_response(channel, response);
            }
            Done::Sync {
                peer,
                channel,
                response,
                bytes,
            } => {
                self.served(peer, bytes);
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response);
            }
            Done::Log {
                peer,
                channel,
                response,
                bytes,
            } => {
                self.served(peer, bytes);
                self.answer_log(channel, response);
            }
            Done::LogGrew(end) => self.log_grew(end),
            Done::Relearned {
                publisher,
                name,
                learned,
                mirror_list,
                reply,
            } => {
                let now = self.now();
                let result = learned.and_then(|policy| {
                    self.state
                        .trust(publisher, name, now)
                        .map_err(|e| NetError::Rejected(e.to_string()))?;
                    self.absorb(&policy);
                    if let Some(list) = mirror_list {
                        // Its mirrors go into the book, which dials them:
                        // a newsroom trusted while the node runs is
                        // reached without a restart.
                        let addrs = super::actor::list_addresses(&list);
                        self.learn(&addrs, super::book::Source::MirrorList);
                        self.state.know_mirror_list(*list);
                    }
                    Ok(())
                });
                if result.is_ok() {
                    self.subscribe(&publisher);
                    self.job(Job::Ranges(vec![publisher]));
                }
                let _ = reply.send(result);
            }
            Done::Totals { totals, reply } => {
                let _ = reply.send(self.encode_metrics(totals));
            }
            Done::Ranges(ranges) => {
                for (p, held, known) in ranges {
                    if self.state.policy().is_trusted(&p) {
                        self.state.set_ranges(p, held, known);
                    }
                }
            }
            Done::Failed { what, error } => {
                // The policy keeps what it decided; the store is asked for
                // its own view of what it holds, so the two meet again.
                // The error may name a bundle or a publisher: at debug.
                warn!("store: {what} failed");
                debug!("store: {what} failed: {error}");
                let publishers = self.state.policy().publishers().map(|(k, _)| *k).collect();
                self.job(Job::Ranges(publishers));
            }
        }
    }

    /// A read for `peer` was answered: its bytes count against the
    /// peer's share and the upload cap.
    fn served(&mut self, peer: libp2p::PeerId, bytes: u64) {
        self.metrics.served_bytes.inc_by(bytes);
        let now = self.now().at;
        self.state.end_serving(peer, bytes, now);
    }

    /// Learns what an archive import taught a copy of the policy, so the
    /// node's own policy is in step with the store again.
    fn absorb(&mut self, learned: &TrustPolicy) {
        let now = self.now();
        for (key, trust) in learned.publishers() {
            if !self.state.policy().is_trusted(key) {
                continue;
            }
            for c in trust.certificates() {
                let _ = self.state.learn_certificate(c.bytes());
            }
            for r in trust.revocations() {
                let _ = self.state.learn_revocation(r.bytes());
            }
            if let Some(h) = trust.head()
                && let Ok(h) = self.state.policy().verify_head(h.bytes(), now.wall)
            {
                self.state.accept_head(h);
            }
        }
    }
}
