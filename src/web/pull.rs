//! A reader's side of the web channel: polls each source's index, reads
//! the segments it has not read, and hands what they hold to the node's
//! import, which checks every object as an archive's. Blobs too large to
//! travel inline are read in checked pieces, and only for bundles whose
//! manifests already verify: nothing of a publisher the reader does not
//! trust is fetched.
//!
//! The position in each source's log is kept in the store, as a mirror's
//! log position is, under the source's address: a restart goes on where
//! it stopped, a change of the trust list reads the tree again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::fetch::Flows;
use super::http::{HttpClient, Source};
use super::tree::{self, INDEX, WebIndex};
use super::{WebConfig, WebError};
use crate::net::Network;
use crate::net::wire::{LogEntry, LogResponse};
use crate::proto::bundle::{FileKind, FrameTag, FrameWriter};
use crate::proto::pieces::Assembly;
use crate::proto::{BundleId, Timestamp, TrustPolicy};
use crate::store::Store;
use crate::store::archive::{self, ImportReport};

/// Partly read blobs kept for the next try, at most.
const MAX_PARTIAL: usize = 4;
/// Bytes of partly read blobs kept, at most (each holds its whole size).
const MAX_PARTIAL_BYTES: u64 = 128 * 1024 * 1024;
/// Waits at most this long between looks at the sources.
const TICK: Duration = Duration::from_secs(5);
/// The first wait after a source failed; doubled up to the poll interval.
const FIRST_BACKOFF: Duration = Duration::from_secs(10);

/// Where what the web channel reads goes.
pub enum Sink {
    /// A running node: imported and announced as an archive would be.
    Node(Network),
    /// A store with no node, checked against this policy.
    Store(TrustPolicy),
}

/// What one pull of a source did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullReport {
    /// Segments read.
    pub segments: u64,
    /// Bundles stored now.
    pub new: u64,
    /// Bundles already held.
    pub duplicate: u64,
    /// Objects refused.
    pub refused: u64,
    /// Large blobs read in pieces.
    pub blobs: u64,
}

impl PullReport {
    fn add(&mut self, r: &ImportReport) {
        self.new += r.new;
        self.duplicate += r.duplicate;
        self.refused += r.refused;
    }
}

/// Reads web trees into a store.
pub struct Puller {
    store: Arc<Store>,
    sink: Sink,
    partial: HashMap<[u8; 32], Assembly>,
}

fn now() -> Timestamp {
    Timestamp::from_system(std::time::SystemTime::now())
}

fn cursor_key(source: &Source) -> Vec<u8> {
    [b"web ".as_slice(), source.url().as_bytes()].concat()
}

impl Puller {
    /// A puller into `store` through `sink`.
    pub fn new(store: Arc<Store>, sink: Sink) -> Self {
        Self {
            store,
            sink,
            partial: HashMap::new(),
        }
    }

    async fn policy(&self) -> Result<TrustPolicy, WebError> {
        match &self.sink {
            Sink::Node(n) => n.policy().await.map_err(|_| WebError::NodeGone),
            Sink::Store(p) => Ok(p.clone()),
        }
    }

    async fn import(&mut self, bytes: Vec<u8>) -> Result<ImportReport, WebError> {
        match &mut self.sink {
            Sink::Node(n) => n.import_bytes(bytes).await.map_err(|e| match e {
                crate::net::NetError::Store(s) => WebError::Store(s),
                _ => WebError::NodeGone,
            }),
            Sink::Store(policy) => Ok(archive::import(
                &self.store,
                policy,
                std::io::Cursor::new(bytes),
                now(),
                &mut |_| {},
            )?),
        }
    }

    /// Reads what is new in the tree `flows` reach.
    pub async fn pull(&mut self, flows: &Flows) -> Result<PullReport, WebError> {
        let bytes = flows
            .fetch_raw(INDEX, tree::MAX_INDEX_BYTES, Vec::new())
            .await?;
        let index = WebIndex::decode(&bytes)?;
        let key = cursor_key(flows.source());
        let policy = self.policy().await?;
        let trust = crate::sync::trust_digest(&policy);
        let store = self.store.clone();
        let cursor = tokio::task::spawn_blocking(move || store.log_cursors())
            .await
            .map_err(|e| WebError::Http(format!("reading the store: {e}")))??
            .into_iter()
            .find(|(k, ..)| *k == key);
        let from = match cursor {
            Some((_, log, next, t)) if log == index.log && t == trust => next,
            _ => 0,
        };
        let mut report = PullReport::default();
        for seg in index.from_position(from).to_vec() {
            let started = Instant::now();
            let bytes = flows
                .fetch_object(&seg.hash, seg.len, None)
                .await
                .map_err(|(e, _)| e)?;
            let fetched = started.elapsed();
            let page = tree::decode_segment(&bytes)?;
            self.segment(flows, page, &mut report).await?;
            debug!(
                from = seg.from,
                bytes = seg.len,
                ?fetched,
                imported = ?(started.elapsed() - fetched),
                "web segment read"
            );
            report.segments += 1;
            let store = self.store.clone();
            let key = key.clone();
            tokio::task::spawn_blocking(move || {
                store.set_log_cursor(&key, index.log, seg.next, trust)
            })
            .await
            .map_err(|e| WebError::Http(format!("writing the store: {e}")))??;
        }
        Ok(report)
    }

    /// Imports one segment: the small bundles in one archive, each bundle
    /// with large blobs in its own once they are read.
    async fn segment(
        &mut self,
        flows: &Flows,
        page: LogResponse,
        report: &mut PullReport,
    ) -> Result<(), WebError> {
        let LogResponse::Page {
            certificates,
            entries,
            ..
        } = page
        else {
            return Err(WebError::Malformed(
                "a segment that is not a log page".into(),
            ));
        };
        let mut policy = self.policy().await?;
        for c in &certificates {
            let _ = policy.learn_certificate(c);
        }
        let mut archive = Archive::new(&certificates)?;
        for entry in entries {
            match entry {
                LogEntry::Head(h) => archive.frame(FrameTag::Head, &h)?,
                LogEntry::MirrorList(l) => archive.frame(FrameTag::MirrorList, &l)?,
                LogEntry::Revocation(r) => {
                    let _ = policy.learn_revocation(&r);
                    archive.frame(FrameTag::Revocation, &r)?;
                }
                LogEntry::Bundle(b) => match b.blobs {
                    Some(blobs) => {
                        archive.frame(FrameTag::Manifest, &b.manifest)?;
                        for blob in &blobs {
                            archive.frame(FrameTag::Blob, blob)?;
                        }
                    }
                    None => {
                        if self.store.has_bundle(&BundleId::of(&b.manifest))? {
                            report.duplicate += 1;
                            continue;
                        }
                        let Some(Ok(m)) = policy
                            .verify_manifests(&[b.manifest.as_slice()], now())
                            .pop()
                        else {
                            // Not a trusted publisher's, or false: the
                            // import would refuse it; its blobs are not read.
                            report.refused += 1;
                            continue;
                        };
                        let done = std::mem::replace(&mut archive, Archive::new(&certificates)?);
                        if !done.is_empty() {
                            let r = self.import(done.finish()?).await?;
                            report.add(&r);
                        }
                        let mut one = Archive::new(&certificates)?;
                        one.frame(FrameTag::Manifest, &b.manifest)?;
                        let mut whole = true;
                        for e in &m.entries {
                            let blob = match self.store.blob(&e.hash)? {
                                Some(b) => b,
                                None => {
                                    report.blobs += 1;
                                    match self.blob(flows, e.hash.as_bytes(), e.size).await {
                                        Ok(b) => b,
                                        // The export writes blobs before the
                                        // segments naming them: a host
                                        // without one is broken, and waiting
                                        // on it would stop the whole tree
                                        // here. The bundle is skipped (other
                                        // channels may bring it).
                                        Err(WebError::NotFound(file)) => {
                                            warn!("a web tree lacks a blob: bundle skipped");
                                            debug!(
                                                source = flows.source().url(),
                                                "{file} is missing: bundle skipped"
                                            );
                                            whole = false;
                                            break;
                                        }
                                        Err(e) => return Err(e),
                                    }
                                }
                            };
                            one.frame(FrameTag::Blob, &blob)?;
                        }
                        if whole {
                            let r = self.import(one.finish()?).await?;
                            report.add(&r);
                        } else {
                            report.refused += 1;
                        }
                    }
                },
            }
        }
        if !archive.is_empty() {
            let r = self.import(archive.finish()?).await?;
            report.add(&r);
        }
        Ok(())
    }

    /// Reads a large blob, going on from a part kept from an earlier try.
    async fn blob(
        &mut self,
        flows: &Flows,
        hash: &[u8; 32],
        size: u64,
    ) -> Result<Vec<u8>, WebError> {
        let partial = self.partial.remove(hash);
        match flows.fetch_object(hash, size, partial).await {
            Ok(b) => Ok(b),
            Err((e, kept)) => {
                if let Some(a) = kept {
                    let size = a.outboard().size();
                    let held = |p: &HashMap<[u8; 32], Assembly>| -> u64 {
                        p.values().map(|a| a.outboard().size()).sum()
                    };
                    while !self.partial.is_empty()
                        && (self.partial.len() >= MAX_PARTIAL
                            || held(&self.partial) + size > MAX_PARTIAL_BYTES)
                    {
                        // The one with the least checked is given up first.
                        let Some(k) = self
                            .partial
                            .iter()
                            .min_by_key(|(_, a)| a.verified_bytes())
                            .map(|(k, _)| *k)
                        else {
                            break;
                        };
                        self.partial.remove(&k);
                    }
                    if size <= MAX_PARTIAL_BYTES {
                        self.partial.insert(*hash, a);
                    }
                }
                Err(e)
            }
        }
    }

    /// The web trees the signed mirror lists of trusted publishers name.
    async fn listed_sources(&self) -> Vec<String> {
        let Ok(policy) = self.policy().await else {
            return Vec::new();
        };
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.web_sources(&policy, now()))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    }

    /// Polls the configured sources and those the stored mirror lists name
    /// until `stop` fires: each source every `poll_secs`, one that failed
    /// again sooner, backing off.
    pub async fn run(
        mut self,
        config: WebConfig,
        client: HttpClient,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let poll = Duration::from_secs(config.poll_secs.max(1));
        let stall = Duration::from_secs(config.stall_secs.max(1));
        // By address: the flows (and what they learned), when next due,
        // and the current back-off.
        let mut sources: HashMap<String, (Arc<Flows>, Instant, Duration)> = HashMap::new();
        loop {
            let mut wanted: Vec<String> = config.sources.clone();
            wanted.extend(self.listed_sources().await);
            wanted.sort();
            wanted.dedup();
            sources.retain(|url, _| wanted.contains(url));
            for url in wanted {
                if sources.contains_key(&url) || sources.len() >= 64 {
                    continue;
                }
                match Source::parse(&url) {
                    Ok(s) => {
                        let flows = Flows::new(s, client.clone(), stall, config.flows);
                        sources.insert(
                            url,
                            (Arc::new(flows), Instant::now(), FIRST_BACKOFF.min(poll)),
                        );
                    }
                    Err(e) => {
                        // The error names the source: at debug only.
                        warn!("a web source is not usable");
                        debug!("{e}");
                    }
                }
            }
            let due: Vec<(String, Arc<Flows>)> = sources
                .iter()
                .filter(|(_, (_, at, _))| *at <= Instant::now())
                .map(|(u, (f, ..))| (u.clone(), f.clone()))
                .collect();
            for (url, flows) in due {
                let result = tokio::select! {
                    r = self.pull(&flows) => r,
                    _ = stop.changed() => return,
                };
                let Some((_, at, backoff)) = sources.get_mut(&url) else {
                    continue;
                };
                match result {
                    Ok(r) => {
                        if r.new > 0 {
                            info!(new = r.new, "stories read from a web tree");
                            debug!(source = %url, new = r.new, "stories read from a web tree");
                        } else {
                            debug!(source = %url, "web tree read: nothing new");
                        }
                        *at = Instant::now() + jitter(poll);
                        *backoff = FIRST_BACKOFF.min(poll);
                    }
                    Err(WebError::NodeGone) => return,
                    Err(e) => {
                        warn!("reading a web tree failed");
                        debug!(source = %url, "reading a web tree: {e}");
                        *at = Instant::now() + jitter(*backoff);
                        *backoff = (*backoff * 2).min(poll);
                    }
                }
            }
            let next = sources
                .values()
                .map(|(_, at, _)| *at)
                .min()
                .unwrap_or_else(|| Instant::now() + TICK)
                .min(Instant::now() + TICK);
            tokio::select! {
                _ = tokio::time::sleep_until(next.into()) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// `d` give or take a tenth, so that readers do not poll in step.
fn jitter(d: Duration) -> Duration {
    let tenth = d.as_millis() as u64 / 10;
    d - Duration::from_millis(tenth)
        + Duration::from_millis(rand::random::<u64>() % (2 * tenth + 1))
}

/// An archive being built in memory.
struct Archive(FrameWriter<Vec<u8>>, usize);

fn io(e: std::io::Error) -> WebError {
    WebError::Malformed(format!("building an archive: {e}"))
}

impl Archive {
    fn new(certificates: &[Vec<u8>]) -> Result<Self, WebError> {
        let mut w = FrameWriter::new(Vec::new(), FileKind::Archive).map_err(io)?;
        for c in certificates {
            w.write_frame(FrameTag::Certificate, c).map_err(io)?;
        }
        Ok(Self(w, 0))
    }

    fn frame(&mut self, tag: FrameTag, bytes: &[u8]) -> Result<(), WebError> {
        self.1 += 1;
        self.0.write_frame(tag, bytes).map_err(io)
    }

    fn is_empty(&self) -> bool {
        self.1 == 0
    }

    fn finish(self) -> Result<Vec<u8>, WebError> {
        self.0.finish().map_err(io)
    }
}
