//! Archives: many bundles with their certificates, revocations, heads and
//! mirror lists in one `.kolokol` file, for carrying by hand; and store summaries, so an
//! export holds only what the receiving machine lacks.

use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::{debug, warn};

use super::{Ingested, Store, StoreError};
use crate::proto::bundle::{FileKind, FrameReader, FrameTag, FrameWriter};
use crate::proto::limits::{MAX_BUNDLE_BYTES, MAX_ENTRIES};
use crate::proto::{BundleId, PolicyError, PublicKey, Timestamp, TrustPolicy};

/// Bundles verified and stored together: one signature batch, one flush.
pub const IMPORT_BATCH_BUNDLES: usize = 256;
/// Blob bytes held in memory before a batch is verified and stored early.
pub const IMPORT_BATCH_BYTES: u64 = 32 * 1024 * 1024;
/// Refused objects an import report describes one by one; the rest are
/// only counted, so a file of bad frames cannot grow the report.
pub const MAX_REJECTED_EXAMPLES: usize = 16;
/// Largest summary file read.
pub const MAX_SUMMARY_BYTES: u64 = 16 * 1024 * 1024;

/// Why an export or a summary failed.
#[derive(Debug, Error)]
pub enum ArchiveError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing or reading a file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A summary file is not valid.
    #[error("summary: {0}")]
    BadSummary(String),
}

/// What a store holds, by publisher and sequence ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// One entry per publisher.
    #[serde(default, rename = "publisher")]
    pub publishers: Vec<PublisherSummary>,
}

/// The sequence numbers held of one publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherSummary {
    /// Root key in text form.
    pub root_key: String,
    /// Inclusive ranges of sequence numbers known (held, evicted or revoked).
    pub known: Vec<[u64; 2]>,
}

impl Summary {
    /// Summarises `store`.
    pub fn of(store: &Store) -> Result<Self, StoreError> {
        let mut publishers = Vec::new();
        for p in store.publishers()? {
            let known = store
                .known_ranges(&p)?
                .into_iter()
                .map(|(a, b)| [a, b])
                .collect();
            publishers.push(PublisherSummary {
                root_key: p.to_string(),
                known,
            });
        }
        Ok(Self { publishers })
    }

    /// Reads a summary file.
    pub fn load(path: &Path) -> Result<Self, ArchiveError> {
        let meta = std::fs::metadata(path)?;
        if meta.len() > MAX_SUMMARY_BYTES {
            return Err(ArchiveError::BadSummary(format!(
                "{} bytes, more than {MAX_SUMMARY_BYTES}",
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path)?;
        toml::from_str(&text).map_err(|e| ArchiveError::BadSummary(e.message().to_string()))
    }

    /// The summary as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    fn covers(&self, publisher: &PublicKey, seq: u64) -> bool {
        self.publishers
            .iter()
            .filter(|p| {
                p.root_key
                    .parse::<PublicKey>()
                    .is_ok_and(|k| &k == publisher)
            })
            .any(|p| p.known.iter().any(|[a, b]| (*a..=*b).contains(&seq)))
    }
}

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Only these publishers (all when empty).
    pub publishers: Vec<PublicKey>,
    /// Only bundles signed at or after this time.
    pub since: Option<Timestamp>,
    /// Leave out what this summary says the receiver has.
    pub have: Option<Summary>,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Bundles written.
    pub bundles: u64,
    /// Bundles left out because the receiver has them.
    pub skipped: u64,
    /// Bytes written.
    pub bytes: u64,
}

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes an archive of what `store` holds, filtered; `progress` is called
/// with the number of bundles written so far.
pub fn export<W: Write>(
    store: &Store,
    filter: &ExportFilter,
    out: W,
    progress: &mut dyn FnMut(u64),
) -> Result<ExportReport, ArchiveError> {
    let publishers = if filter.publishers.is_empty() {
        store.publishers()?
    } else {
        filter.publishers.clone()
    };
    let mut w = FrameWriter::new(
        CountingWriter {
            inner: out,
            count: 0,
        },
        FileKind::Archive,
    )?;
    let mut report = ExportReport::default();
    for p in &publishers {
        for c in store.certificates_of(p)? {
            w.write_frame(FrameTag::Certificate, &c)?;
        }
        for r in store.revocations_of(p)? {
            w.write_frame(FrameTag::Revocation, &r)?;
        }
        if let Some((h, _)) = store.head(p)? {
            w.write_frame(FrameTag::Head, &h)?;
        }
        if let Some((_, list)) = store.mirror_list(p)? {
            w.write_frame(FrameTag::MirrorList, &list)?;
        }
    }
    for p in &publishers {
        for (seq, id) in store.held_bundles(p)? {
            if filter.have.as_ref().is_some_and(|h| h.covers(p, seq)) {
                report.skipped += 1;
                continue;
            }
            let Some(m) = store.manifest(&id)? else {
                continue;
            };
            if filter.since.is_some_and(|t| m.manifest.signed_at < t) {
                continue;
            }
            let mut blobs = Vec::with_capacity(m.manifest.entries.len());
            for e in &m.manifest.entries {
                match store.blob(&e.hash)? {
                    Some(b) => blobs.push(b),
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "bundle {id} lacks blob {}",
                            e.hash
                        ))
                        .into());
                    }
                }
            }
            w.write_frame(FrameTag::Manifest, &m.bytes)?;
            for b in &blobs {
                w.write_frame(FrameTag::Blob, b)?;
            }
            report.bundles += 1;
            progress(report.bundles);
        }
    }
    let cw = w.finish()?;
    report.bytes = cw.count;
    Ok(report)
}

/// One bundle refused by an import, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The bundle id, or where in the file the object was.
    pub what: String,
    /// Why.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportReport {
    /// Bundles stored now.
    pub new: u64,
    /// Bundles already held.
    pub duplicate: u64,
    /// The first [`MAX_REJECTED_EXAMPLES`] bundles and objects refused,
    /// each with its reason.
    pub rejected: Vec<Rejected>,
    /// Bundles and objects refused, in all.
    #[serde(default)]
    pub refused: u64,
    /// Bundles and objects refused, by kind ("bundle", "head frame"...).
    #[serde(default)]
    pub refused_by_kind: std::collections::BTreeMap<String, u64>,
    /// Certificates, revocations and heads accepted.
    pub certificates: u64,
    /// Revocations accepted.
    pub revocations: u64,
    /// Heads that became the newest known.
    pub heads: u64,
    /// Mirror lists that became the newest known of their publisher.
    #[serde(default)]
    pub mirror_lists: u64,
    /// Bundles removed because a revocation in the file covered them.
    pub purged: u64,
    /// The file itself was damaged or cut short; what came before was kept.
    pub file_error: Option<String>,
}

struct Pending {
    manifest: Vec<u8>,
    blobs: Vec<Vec<u8>>,
    offset: u64,
    /// Blob bytes seen for this bundle.
    bytes: u64,
    /// Over a limit: its blobs are skipped, and it is not stored.
    refused: bool,
}

struct Importer<'a> {
    store: &'a Store,
    policy: &'a mut TrustPolicy,
    now: Timestamp,
    report: ImportReport,
    batch: Vec<Pending>,
    batch_bytes: u64,
    on_stored: &'a mut dyn FnMut(&BundleId),
}

impl Importer<'_> {
    fn reject(&mut self, kind: &'static str, what: String, reason: impl ToString) {
        let r = &mut self.report;
        r.refused += 1;
        // The kinds are a handful of fixed names.
        *r.refused_by_kind.entry(kind.to_owned()).or_default() += 1;
        if r.rejected.len() < MAX_REJECTED_EXAMPLES {
            r.rejected.push(Rejected {
                what,
                reason: reason.to_string(),
            });
        }
    }

    fn process(&mut self) -> Result<(), StoreError> {
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        if batch.is_empty() {
            return Ok(());
        }
        // Bundles held already need no signature check.
        let mut todo = Vec::with_capacity(batch.len());
        for p in batch {
            if self.store.has_bundle(&BundleId::of(&p.manifest))? {
                self.report.duplicate += 1;
            } else {
                todo.push(p);
            }
        }
        let refs: Vec<&[u8]> = todo.iter().map(|p| p.manifest.as_slice()).collect();
        let verdicts = self.policy.verify_manifests(&refs, self.now);
        let mut verified = Vec::with_capacity(todo.len());
        for (p, verdict) in todo.into_iter().zip(verdicts) {
            let id = BundleId::of(&p.manifest);
            match verdict.and_then(|m| self.policy.verify_bundle(m, p.blobs)) {
                Ok(b) => verified.push(b),
                Err(e) => self.reject("bundle", format!("bundle {id} (at byte {})", p.offset), e),
            }
        }
        let outcomes = self.store.ingest(&verified)?;
        for (b, outcome) in verified.iter().zip(outcomes) {
            let id = b.id();
            match outcome {
                Ingested::New => {
                    self.report.new += 1;
                    (self.on_stored)(&id);
                }
                Ingested::Duplicate => self.report.duplicate += 1,
                Ingested::SequenceConflict { existing } => self.reject(
                    "bundle",
                    format!("bundle {id}"),
                    format!(
                        "sequence {} of this publisher is already bundle {existing}: the signing key made two bundles for one number",
                        b.manifest().sequence
                    ),
                ),
                Ingested::Revoked => self.reject("bundle", format!("bundle {id}"), "signed by a key revoked for its signing time"),
            }
        }
        Ok(())
    }

    fn finish_bundle(&mut self, pending: Option<Pending>) -> Result<(), StoreError> {
        if let Some(p) = pending.filter(|p| !p.refused) {
            self.batch_bytes += p.blobs.iter().map(|b| b.len() as u64).sum::<u64>();
            self.batch.push(p);
            if self.batch.len() >= IMPORT_BATCH_BUNDLES || self.batch_bytes >= IMPORT_BATCH_BYTES {
                self.process()?;
            }
        }
        Ok(())
    }
}

/// Imports an archive or bundle file from `reader`: every object is
/// verified before anything is kept; bundles are stored whole, in groups,
/// and `on_stored` is called for each once it is durable. A damaged or
/// truncated file keeps what verified before the damage and says so in
/// `file_error`. Only a failure of the store itself is an `Err`.
pub fn import<R: Read>(
    store: &Store,
    policy: &mut TrustPolicy,
    reader: R,
    now: Timestamp,
    on_stored: &mut dyn FnMut(&BundleId),
) -> Result<ImportReport, StoreError> {
    let mut imp = Importer {
        store,
        policy,
        now,
        report: ImportReport::default(),
        batch: Vec::new(),
        batch_bytes: 0,
        on_stored,
    };
    let mut frames = match FrameReader::new(reader) {
        Ok(f) => f,
        Err(e) => {
            imp.report.file_error = Some(e.to_string());
            return Ok(imp.report);
        }
    };
    let mut pending: Option<Pending> = None;
    loop {
        let frame = match frames.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                // The bundle being read when the damage showed is checked
                // like any other: whole, it verifies and is kept; cut short,
                // it fails with the blob it lacks. Whole bundles before the
                // damage were verified one by one and are kept.
                let last = pending.take();
                imp.finish_bundle(last)?;
                // Bundles before the damage were each verified by
                // signature and hash, so they are kept.
                imp.report.file_error = Some(e.to_string());
                break;
            }
        };
        let at = format!("{} at byte {}", frame.tag.what(), frame.offset);
        match frame.tag {
            FrameTag::Blob => match pending.as_mut() {
                Some(p) if p.refused => {}
                Some(p) => {
                    p.bytes += frame.payload.len() as u64;
                    if p.blobs.len() >= MAX_ENTRIES || p.bytes > MAX_BUNDLE_BYTES {
                        // Refused at once, before more of it is held.
                        p.refused = true;
                        p.blobs = Vec::new();
                        let id = BundleId::of(&p.manifest);
                        let what = format!("bundle {id} (at byte {})", p.offset);
                        imp.reject(
                            "bundle",
                            what,
                            format!("more than {MAX_ENTRIES} blobs or {MAX_BUNDLE_BYTES} bytes"),
                        );
                    } else {
                        p.blobs.push(frame.payload);
                        // Blobs waiting in memory stay within the batch limit.
                        if imp.batch_bytes + p.bytes >= IMPORT_BATCH_BYTES {
                            imp.process()?;
                        }
                    }
                }
                None => imp.reject(frame.tag.what(), at, "a blob outside any bundle"),
            },
            tag => {
                let done = pending.take();
                imp.finish_bundle(done)?;
                match tag {
                    FrameTag::Manifest => {
                        pending = Some(Pending {
                            manifest: frame.payload,
                            blobs: Vec::new(),
                            offset: frame.offset,
                            bytes: 0,
                            refused: false,
                        });
                    }
                    FrameTag::Certificate => match imp.policy.learn_certificate(&frame.payload) {
                        Ok(c) => {
                            if imp.store.put_certificate(&c)? {
                                imp.report.certificates += 1;
                            }
                        }
                        Err(e) => imp.reject(tag.what(), at, e),
                    },
                    FrameTag::Revocation => match imp.policy.learn_revocation(&frame.payload) {
                        Ok(change) => {
                            // Bundles waiting in the batch are checked against it too.
                            imp.process()?;
                            let purged = imp.store.record_revocation(&change)?;
                            imp.report.revocations += 1;
                            imp.report.purged += purged.len() as u64;
                        }
                        Err(e) => imp.reject(tag.what(), at, e),
                    },
                    FrameTag::Head => match imp.policy.verify_head(&frame.payload, now) {
                        Ok(h) => {
                            if imp.policy.accept_head(h.clone()) {
                                match imp.store.record_head(&h) {
                                    Ok(()) => imp.report.heads += 1,
                                    // Only a policy not taught the stored
                                    // head (`Store::load_trust`) gets here.
                                    Err(StoreError::HeadRollback { .. }) => {}
                                    Err(e) => return Err(e),
                                }
                            }
                        }
                        // An older head than one already known is no error
                        // in an archive: it is simply not news.
                        Err(PolicyError::HeadRollback { .. }) => {}
                        Err(e) => imp.reject(tag.what(), at, e),
                    },
                    FrameTag::MirrorList => {
                        match imp.store.put_mirror_list(&frame.payload, imp.policy, now) {
                            Ok(true) => imp.report.mirror_lists += 1,
                            // As old as the one held, or older: not news.
                            Ok(false) => {}
                            // An archive carried a while may hold a list
                            // that expired on the way: not news either.
                            Err(StoreError::MirrorListExpired { .. }) => {}
                            Err(StoreError::MirrorList(e)) => imp.reject(tag.what(), at, e),
                            Err(e) => return Err(e),
                        }
                    }
                    FrameTag::Blob | FrameTag::End => {}
                }
            }
        }
    }
    if let Some(p) = pending.take()
        && imp.report.file_error.is_none()
    {
        imp.finish_bundle(Some(p))?;
    }
    imp.process()?;
    if let Err(e) = store.enforce_limits(now) {
        warn!("quota enforcement after import failed");
        debug!("quota enforcement after import failed: {e}");
    }
    Ok(imp.report)
}

/// Sequence ranges as text: `1-40, 42, 45-50`.
pub fn ranges_text(ranges: &[(u64, u64)]) -> String {
    if ranges.is_empty() {
        return "none".into();
    }
    ranges
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
