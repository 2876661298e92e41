//! The store's side of the node: one thread that carries out store jobs in
//! the order they were given, so that serving and ingest never stall
//! gossip or connection handling on the network task. Each job's result
//! comes back to the actor as a [`Done`].
//!
//! The actor sends jobs without waiting: peers' requests are refused when
//! the queue is full (they ask elsewhere); the node's own jobs (storing
//! what it verified, recording what its policy learned) wait in the
//! actor's backlog, bounded by the fetches and requests that produce them.

use std::collections::BTreeSet;
use std::sync::Arc;

use libp2p::PeerId;
use libp2p::gossipsub::MessageId;
use libp2p::request_response::ResponseChannel;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::NetError;
use super::blobserve;
use super::wire::{FetchRequest, FetchResponse, LogResponse, MAX_HELD_VERSIONS, SyncResponse};
use crate::proto::mirrors::MirrorList;
use crate::proto::{
    BundleId, Head, Manifest, PublicKey, StoryId, Timestamp, TrustPolicy, Verified, VerifiedBundle,
    check_bundle,
};
use crate::store::archive::{self, ImportReport};
use crate::store::{Ingested, Store, StoreError, Totals};
use crate::sync::{BundlesPlan, Cursor, Origin, Record, Stored};

/// Jobs waiting for the store thread.
pub const JOB_QUEUE: usize = 1024;
/// Results waiting for the actor.
pub const DONE_QUEUE: usize = 1024;

/// Held and known sequence ranges of one publisher.
pub(super) type PublisherRanges = (PublicKey, Vec<(u64, u64)>, Vec<(u64, u64)>);

/// A gossip message waiting for its verdict.
pub(super) type GossipOrigin = Origin<PeerId, MessageId>;

/// A bundle this node publishes, verified, with what goes out with it.
pub(super) struct Publication {
    pub(super) bundle: VerifiedBundle,
    pub(super) heads: Vec<Verified<Head>>,
    pub(super) certificate: Vec<u8>,
    pub(super) reply: oneshot::Sender<Result<BundleId, NetError>>,
}

/// Something for the store to do.
pub(super) enum Job {
    /// Check a fetched bundle's blobs, store it, apply the limits.
    Store {
        manifest: Box<Verified<Manifest>>,
        blobs: Vec<Vec<u8>>,
    },
    /// Store bundles that came whole from catch-up.
    StoreBatch { bundles: Vec<VerifiedBundle> },
    /// Record what the policy learned.
    Record(Record),
    /// Store a bundle published here.
    Publish(Box<Publication>),
    /// Import an archive, checking it against a copy of the policy.
    Import {
        source: super::handle::ImportSource,
        policy: Box<TrustPolicy>,
        reply: oneshot::Sender<Result<ImportReport, NetError>>,
    },
    /// A piece of a blob for a peer.
    ServeBlob {
        peer: PeerId,
        request: FetchRequest,
        channel: ResponseChannel<FetchResponse>,
    },
    /// Bundles for a peer, packed within the plan's budget.
    ServeBundles {
        peer: PeerId,
        plan: BundlesPlan,
        channel: ResponseChannel<SyncResponse>,
    },
    /// The versions of a story held, for a peer.
    ServeHolds {
        peer: PeerId,
        publisher: PublicKey,
        story: StoryId,
        channel: ResponseChannel<SyncResponse>,
    },
    /// The stored certificates, revocations and head of a publisher
    /// trusted again, checked by a policy of its own, for the core to learn.
    Relearn {
        publisher: PublicKey,
        name: String,
        /// The publisher file's mirror list, to verify and store, and the
        /// certificate that signs it.
        mirror_list: Option<Vec<u8>>,
        mirror_certificate: Option<Vec<u8>>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// Retention and quotas.
    Limits,
    /// The store's totals, for the metrics.
    Totals { reply: oneshot::Sender<String> },
    /// Held and known ranges of these publishers.
    Ranges(Vec<PublicKey>),
    /// A page of the log for a reader.
    ServeLog {
        peer: PeerId,
        from: u64,
        channel: ResponseChannel<LogResponse>,
    },
    /// Where this reader is in a mirror's log.
    SaveCursor { mirror: Vec<u8>, cursor: Cursor },
    /// The address book, encoded, in place of the saved one.
    SaveBook(Vec<u8>),
    /// Everything before this is done and flushed.
    Flush(oneshot::Sender<()>),
}

/// What a job came to.
pub(super) enum Done {
    /// A fetched bundle was stored, or not.
    Stored {
        publisher: PublicKey,
        sequence: u64,
        id: BundleId,
        result: Stored,
    },
    /// Bundles from catch-up stored now.
    Batch(Vec<(PublicKey, u64, BundleId)>),
    /// A revocation was recorded: these bundles were removed.
    Revoked {
        publisher: PublicKey,
        key: PublicKey,
        removed: usize,
    },
    /// A published bundle was stored, or refused.
    Published {
        publication: Box<Publication>,
        result: Result<Ingested, StoreError>,
    },
    /// An archive was imported: the bundles stored, to announce, and the
    /// policy that checked them, to learn from.
    Imported {
        report: ImportReport,
        announce: Vec<(PublicKey, BundleId, Vec<u8>, Manifest)>,
        policy: Box<TrustPolicy>,
        reply: oneshot::Sender<Result<ImportReport, NetError>>,
    },
    /// An answer for a peer's fetch request, with the blob bytes in it.
    Blob {
        peer: PeerId,
        channel: ResponseChannel<FetchResponse>,
        response: FetchResponse,
        bytes: u64,
    },
    /// An answer for a peer's catch-up request, with the blob bytes in it.
    Sync {
        peer: PeerId,
        channel: ResponseChannel<SyncResponse>,
        response: SyncResponse,
        bytes: u64,
    },
    /// A policy that learned what the store holds of a publisher about to
    /// be trusted, or why it cannot be.
    Relearned {
        publisher: PublicKey,
        name: String,
        learned: Result<Box<TrustPolicy>, NetError>,
        /// The newest stored mirror list of the publisher, verified.
        mirror_list: Option<Box<Verified<MirrorList>>>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// The store's totals, for the metrics that wait for them.
    Totals {
        totals: Option<Totals>,
        reply: oneshot::Sender<String>,
    },
    /// Held and known ranges of publishers, as the store has them now.
    Ranges(Vec<PublisherRanges>),
    /// A page of the log for a reader, with the blob bytes in it.
    Log {
        peer: PeerId,
        channel: ResponseChannel<LogResponse>,
        response: LogResponse,
        bytes: u64,
    },
    /// The log grew: it ends here now.
    LogGrew(u64),
    /// A store call failed: the one way a failure is reported.
    Failed {
        what: &'static str,
        error: StoreError,
    },
}

/// Starts the store thread. It ends when the job sender is dropped.
pub(super) fn spawn(
    store: Arc<Store>,
) -> Result<(mpsc::Sender<Job>, mpsc::Receiver<Done>), NetError> {
    let (jobs, mut rx) = mpsc::channel::<Job>(JOB_QUEUE);
    let (done, done_rx) = mpsc::channel::<Done>(DONE_QUEUE);
    std::thread::Builder::new()
        .name("kolokol-store".into())
        .spawn(move || {
            let log_end = store.log_end().unwrap_or(0);
            let w = Worker {
                store,
                done,
                outboards: blobserve::Outboards::default(),
            };
            let mut log_end = log_end;
            while let Some(job) = rx.blocking_recv() {
                if !w.run(job) {
                    break;
                }
                // Whatever the job, held log requests learn the log grew.
                if let Ok(end) = w.store.log_end()
                    && end > log_end
                {
                    log_end = end;
                    if !w.send(Done::LogGrew(end)) {
                        break;
                    }
                }
            }
            if let Err(e) = w.store.flush() {
                warn!("store flush at stop failed: {e}");
            }
        })
        .map_err(|e| NetError::Setup(format!("cannot start the store thread: {e}")))?;
    Ok((jobs, done_rx))
}

/// Held and known ranges of each publisher.
pub(super) fn ranges_of(
    store: &Store,
    publishers: impl IntoIterator<Item = PublicKey>,
) -> Result<Vec<PublisherRanges>, StoreError> {
    publishers
        .into_iter()
        .map(|p| Ok((p, store.held_ranges(&p)?, store.known_ranges(&p)?)))
        .collect()
}

fn wall() -> Timestamp {
    Timestamp::from_system(std::time::SystemTime::now())
}

struct Worker {
    store: Arc<Store>,
    done: mpsc::Sender<Done>,
    outboards: blobserve::Outboards,
}

impl Worker {
    /// Sends a result; false when the actor is gone.
    fn send(&self, d: Done) -> bool {
        self.done.blocking_send(d).is_ok()
    }

    fn failed(&self, what: &'static str, error: StoreError) -> bool {
        self.send(Done::Failed { what, error })
    }

    /// Sends fresh ranges of `publishers`.
    fn ranges(&self, publishers: impl IntoIterator<Item = PublicKey>) -> bool {
        match ranges_of(&self.store, publishers) {
            Ok(r) if r.is_empty() => true,
            Ok(r) => self.send(Done::Ranges(r)),
            Err(e) => self.failed("reading held ranges", e),
        }
    }

    /// Applies retention and quotas; the publishers whose stories went
    /// get fresh ranges.
    fn limits(&self) -> bool {
        match self.store.enforce_limits(wall()) {
            Ok(e) if e.stories.is_empty() => true,
            Ok(e) => {
                let touched: BTreeSet<PublicKey> = e.stories.iter().map(|(p, _)| *p).collect();
                self.ranges(touched)
            }
            Err(e) => self.failed("applying retention and quotas", e),
        }
    }

    fn run(&self, job: Job) -> bool {
        match job {
            Job::Store { manifest, blobs } => {
                let (publisher, sequence, id) =
                    (manifest.publisher, manifest.sequence, manifest.id());
                let result = match check_bundle(*manifest, blobs) {
                    Err(e) => Stored::Failed(e.to_string()),
                    Ok(b) => match self.store.ingest(std::slice::from_ref(&b)) {
                        Ok(o) => match o.first() {
                            Some(Ingested::New) => Stored::New,
                            Some(Ingested::Duplicate) => Stored::Duplicate,
                            other => {
                                debug!(bundle = %id.short(), "fetched bundle refused by the store: {other:?}");
                                Stored::Refused
                            }
                        },
                        Err(e) => {
                            warn!("a fetched bundle was not stored");
                            debug!(bundle = %id.short(), "fetched bundle not stored: {e}");
                            Stored::Failed(e.to_string())
                        }
                    },
                };
                let new = result == Stored::New;
                self.send(Done::Stored {
                    publisher,
                    sequence,
                    id,
                    result,
                }) && (!new || self.limits())
            }
            Job::StoreBatch { bundles } => {
                let keys: Vec<(PublicKey, u64, BundleId)> = bundles
                    .iter()
                    .map(|b| (b.manifest().publisher, b.manifest().sequence, b.id()))
                    .collect();
                match self.store.ingest(&bundles) {
                    Ok(outcome) => {
                        let stored: Vec<_> = keys
                            .into_iter()
                            .zip(outcome)
                            .filter(|(_, o)| *o == Ingested::New)
                            .map(|(k, _)| k)
                            .collect();
                        let any = !stored.is_empty();
                        self.send(Done::Batch(stored)) && (!any || self.limits())
                    }
                    Err(e) => {
                        let publishers: BTreeSet<PublicKey> = keys.iter().map(|k| k.0).collect();
                        self.send(Done::Batch(Vec::new()))
                            && self.failed("storing caught-up bundles", e)
                            && self.ranges(publishers)
                    }
                }
            }
            Job::Record(record) => self.record(record),
            Job::Publish(publication) => {
                let result = self
                    .store
                    .ingest(std::slice::from_ref(&publication.bundle))
                    .map(|o| o.into_iter().next().unwrap_or(Ingested::Duplicate));
                let new = matches!(result, Ok(Ingested::New));
                self.send(Done::Published {
                    publication,
                    result,
                }) && (!new || self.limits())
            }
            Job::Import {
                source,
                mut policy,
                reply,
            } => self.import(source, &mut policy, reply),
            Job::ServeBlob {
                peer,
                request,
                channel,
            } => {
                let (response, bytes) = blobserve::answer(&self.store, &self.outboards, &request);
                self.send(Done::Blob {
                    peer,
                    channel,
                    response,
                    bytes,
                })
            }
            Job::ServeBundles {
                peer,
                plan,
                channel,
            } => {
                let (response, bytes) = self.pack(&plan);
                self.send(Done::Sync {
                    peer,
                    channel,
                    response,
                    bytes,
                })
            }
            Job::ServeHolds {
                peer,
                publisher,
                story,
                channel,
            } => {
                let history = self.store.history(&publisher, &story).unwrap_or_default();
                let skip = history.len().saturating_sub(MAX_HELD_VERSIONS);
                let response = SyncResponse::Holds {
                    bundles: history.into_iter().skip(skip).map(|m| m.id).collect(),
                };
                self.send(Done::Sync {
                    peer,
                    channel,
                    response,
                    bytes: 0,
                })
            }
            Job::Relearn {
                publisher,
                name,
                mirror_list,
                mirror_certificate,
                reply,
            } => {
                let mut policy = TrustPolicy::new();
                let learned = match policy.trust(publisher, name.clone()) {
                    Err(e) => Err(NetError::Rejected(e.to_string())),
                    Ok(()) => match self.store.load_trust(&mut policy, wall()) {
                        Ok(()) => {
                            self.learn_certificate(&mut policy, mirror_certificate);
                            Ok(Box::new(policy))
                        }
                        Err(e) => Err(NetError::Store(e)),
                    },
                };
                let mirror_list = match &learned {
                    Ok(policy) => self.relearn_mirror_list(&publisher, policy, mirror_list),
                    Err(_) => None,
                };
                self.send(Done::Relearned {
                    publisher,
                    name,
                    learned,
                    mirror_list,
                    reply,
                })
            }
            Job::ServeLog {
                peer,
                from,
                channel,
            } => {
                let (response, bytes) = match super::logserve::page(&self.store, from) {
                    Ok(p) => p,
                    Err(e) => {
                        warn!("the log could not be read");
                        debug!("reading the log: {e}");
                        (LogResponse::Refused, 0)
                    }
                };
                self.send(Done::Log {
                    peer,
                    channel,
                    response,
                    bytes,
                })
            }
            Job::SaveCursor { mirror, cursor } => {
                match self
                    .store
                    .set_log_cursor(&mirror, cursor.log, cursor.next, cursor.trust)
                {
                    Ok(()) => true,
                    Err(e) => self.failed("keeping the position in a mirror's log", e),
                }
            }
            Job::SaveBook(bytes) => match self.store.set_address_book(&bytes) {
                Ok(()) => true,
                Err(e) => self.failed("keeping the address book", e),
            },
            Job::Limits => self.limits(),
            Job::Totals { reply } => self.send(Done::Totals {
                totals: self.store.totals().ok(),
                reply,
            }),
            Job::Ranges(publishers) => self.ranges(publishers),
            Job::Flush(reply) => {
                if let Err(e) = self.store.flush() {
                    warn!("store flush failed: {e}");
                }
                let _ = reply.send(());
                true
            }
        }
    }

    fn record(&self, record: Record) -> bool {
        match record {
            Record::Certificate(c) => match self.store.put_certificate(&c) {
                Ok(_) => true,
                Err(e) => self.failed("recording a certificate", e),
            },
            Record::Head(h) => match self.store.record_head(&h) {
                Ok(_) => true,
                Err(e) => self.failed("recording a head", e),
            },
            Record::MirrorList(l) => match self.store.record_mirror_list(&l, wall()) {
                Ok(_) => true,
                Err(e) => self.failed("recording a mirror list", e),
            },
            Record::Revocation(change) => {
                let (publisher, key) = (change.revocation.publisher, change.revocation.key);
                match self.store.record_revocation(&change) {
                    Ok(removed) => {
                        self.send(Done::Revoked {
                            publisher,
                            key,
                            removed: removed.len(),
                        }) && (removed.is_empty() || self.ranges([publisher]))
                    }
                    Err(e) => {
                        self.send(Done::Revoked {
                            publisher,
                            key,
                            removed: 0,
                        }) && self.failed("recording a revocation", e)
                            && self.ranges([publisher])
                    }
                }
            }
        }
    }

    /// Learns and keeps the certificate a publisher file brought for its
    /// mirror list, so the list verifies before the newsroom's keys came
    /// any other way. Root-signed: one that does not verify is skipped.
    fn learn_certificate(&self, policy: &mut TrustPolicy, bytes: Option<Vec<u8>>) {
        let Some(bytes) = bytes else { return };
        match policy.learn_certificate(&bytes) {
            Ok(cert) => {
                if let Err(e) = self.store.put_certificate(&cert) {
                    warn!("the publisher file's certificate was not stored");
                    debug!("the publisher file's certificate was not stored: {e}");
                }
            }
            Err(e) => {
                warn!("the publisher file's certificate was not used");
                debug!("the publisher file's certificate was not used: {e}");
            }
        }
    }

    /// Stores the mirror list a publisher file brought (when it verifies
    /// and is newer), and returns the newest stored one in force, for the
    /// core to know. A list that does not verify is not the publisher's
    /// fault nor the reader's: it is skipped with a warning.
    fn relearn_mirror_list(
        &self,
        publisher: &PublicKey,
        policy: &TrustPolicy,
        from_file: Option<Vec<u8>>,
    ) -> Option<Box<Verified<MirrorList>>> {
        let now = wall();
        if let Some(bytes) = from_file
            && let Err(e) = self.store.put_mirror_list(&bytes, policy, now)
        {
            warn!("the publisher file's mirror list was not stored");
            debug!("the publisher file's mirror list was not stored: {e}");
        }
        let (_, bytes) = self.store.mirror_list(publisher).ok()??;
        policy
            .verify_mirror_list(&bytes, now)
            .ok()
            .filter(|l| !l.is_expired(now))
            .map(Box::new)
    }

    fn import(
        &self,
        source: super::handle::ImportSource,
        policy: &mut TrustPolicy,
        reply: oneshot::Sender<Result<ImportReport, NetError>>,
    ) -> bool {
        let reader: Box<dyn std::io::Read> = match source {
            super::handle::ImportSource::Path(path) => match std::fs::File::open(&path) {
                Ok(f) => Box::new(std::io::BufReader::new(f)),
                Err(source) => {
                    let _ = reply.send(Err(NetError::Store(StoreError::Io { path, source })));
                    return true;
                }
            },
            super::handle::ImportSource::Bytes(b) => Box::new(std::io::Cursor::new(b)),
        };
        let mut stored = Vec::new();
        let result = archive::import(&self.store, policy, reader, wall(), &mut |id| {
            stored.push(*id)
        });
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return self.ranges(policy.publishers().map(|(k, _)| *k).collect::<Vec<_>>());
            }
        };
        let mut announce = Vec::new();
        for id in stored {
            if let Ok(Some(m)) = self.store.manifest(&id) {
                announce.push((m.manifest.publisher, id, m.bytes, m.manifest));
            }
        }
        let publishers: Vec<PublicKey> = policy.publishers().map(|(k, _)| *k).collect();
        self.send(Done::Imported {
            report,
            announce,
            policy: Box::new(std::mem::take(policy)),
            reply,
        }) && self.ranges(publishers)
            && self.limits()
    }

    /// Reads the bundles asked, in order, into a response within budget.
    fn pack(&self, plan: &BundlesPlan) -> (SyncResponse, u64) {
        let store = &self.store;
        plan.pack(
            |seq| {
                let id = store.held_at(&plan.publisher, seq).ok()??;
                let m = store.manifest(&id).ok()??;
                Some((m.bytes, m.manifest))
            },
            |hash| store.blob(hash).ok().flatten(),
        )
    }
}
