//! A mirror's side of the log (see [`crate::sync::messages::LogRequest`]):
//! pages read from the store on the store thread, and requests made at the
//! end of the log held until the log grows.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;

use super::wire::{
    LOG_BUDGET, LOG_INLINE, LOG_WAIT, LogEntry, LogResponse, MAX_LOG_ENTRIES, SyncBundle,
};
use crate::store::{LogObject, Store, StoreError};

/// Positions read at most for one page: entries whose objects are gone
/// are skipped, but not without end.
const MAX_SCAN: usize = 4 * MAX_LOG_ENTRIES;
/// Requests held at the end of the log at once, one per peer; past it a
/// new one is answered at once with an empty page.
pub(super) const MAX_HELD: usize = 1024;

/// A page of the log from `from`, within [`LOG_BUDGET`]; with the blob
/// bytes it carries.
pub(crate) fn page(store: &Store, from: u64) -> Result<(LogResponse, u64), StoreError> {
    let log = store.log_id()?;
    let end = store.log_end()?;
    let mut next = from.min(end);
    let mut certificates = Vec::new();
    let mut sent_certs = HashSet::new();
    let mut entries = Vec::new();
    let mut used = 0usize;
    let mut blob_bytes = 0u64;
    let items = store.log_items(next, MAX_SCAN)?;
    // Positions are given in order and an entry is only ever removed, so
    // when the scan ends short, no entry lies between it and `end`: the
    // positions left are holes (entries of a forgotten publisher).
    let whole = items.len() < MAX_SCAN;
    let mut cut = false;
    for (position, item) in items {
        if entries.len() >= MAX_LOG_ENTRIES {
            cut = true;
            break;
        }
        let Some(object) = store.log_object(&item)? else {
            next = position + 1;
            continue;
        };
        let (entry, cert, cost, blobs) = match object {
            LogObject::Bundle(sm) => {
                let size: u64 = sm.manifest.entries.iter().map(|e| e.size).sum();
                let blobs = if size <= LOG_INLINE {
                    sm.manifest
                        .entries
                        .iter()
                        .map(|e| store.blob(&e.hash).ok().flatten())
                        .collect::<Option<Vec<_>>>()
                } else {
                    None
                };
                let inline = blobs.as_ref().map_or(0, |b| b.iter().map(Vec::len).sum());
                let cost = sm.bytes.len() + inline;
                let certificate = sm.manifest.certificate;
                let entry = LogEntry::Bundle(SyncBundle {
                    manifest: sm.bytes,
                    blobs,
                });
                (entry, Some(certificate), cost, inline as u64)
            }
            LogObject::Head(bytes, cert) => {
                let cost = bytes.len();
                (LogEntry::Head(bytes), Some(cert), cost, 0)
            }
            LogObject::Revocation(bytes) => {
                let cost = bytes.len();
                (LogEntry::Revocation(bytes), None, cost, 0)
            }
            LogObject::MirrorList(bytes, cert) => {
                let cost = bytes.len();
                (LogEntry::MirrorList(bytes), Some(cert), cost, 0)
            }
        };
        let cert = match cert {
            Some(id) if !sent_certs.contains(&id) => store.certificate_bytes(&id)?.map(|b| (id, b)),
            _ => None,
        };
        let cost = cost + cert.as_ref().map_or(0, |(_, b)| b.len());
        if !entries.is_empty() && used + cost > LOG_BUDGET {
            cut = true;
            break;
        }
        if let Some((id, bytes)) = cert {
            sent_certs.insert(id);
            certificates.push(bytes);
        }
        used += cost;
        blob_bytes += blobs;
        entries.push(entry);
        next = position + 1;
    }
    if whole && !cut {
        next = next.max(end);
    }
    Ok((
        LogResponse::Page {
            log,
            certificates,
            entries,
            next,
            end,
        },
        blob_bytes,
    ))
}

/// Requests held at the end of the log, by peer.
#[derive(Default)]
pub(super) struct Held {
    waiting: HashMap<PeerId, (u64, Instant, ResponseChannel<LogResponse>)>,
}

impl Held {
    /// Holds `channel` until the log passes `from` or [`LOG_WAIT`] passes.
    /// Returns the channel when it cannot be held (the bound is reached),
    /// and any earlier request of the same peer, which is answered now.
    pub(super) fn hold(
        &mut self,
        peer: PeerId,
        from: u64,
        channel: ResponseChannel<LogResponse>,
    ) -> Option<ResponseChannel<LogResponse>> {
        if self.waiting.len() >= MAX_HELD && !self.waiting.contains_key(&peer) {
            return Some(channel);
        }
        self.waiting
            .insert(peer, (from, Instant::now() + LOG_WAIT, channel))
            .map(|(_, _, c)| c)
    }

    /// The requests the log's growth to `end` answers.
    pub(super) fn grown(&mut self, end: u64) -> Vec<(PeerId, u64, ResponseChannel<LogResponse>)> {
        self.take(|from, _| from < end)
    }

    /// The requests held for [`LOG_WAIT`].
    pub(super) fn expired(&mut self) -> Vec<(PeerId, u64, ResponseChannel<LogResponse>)> {
        let now = Instant::now();
        self.take(|_, deadline| deadline <= now)
    }

    /// A peer went away.
    pub(super) fn forget(&mut self, peer: &PeerId) {
        self.waiting.remove(peer);
    }

    fn take(
        &mut self,
        due: impl Fn(u64, Instant) -> bool,
    ) -> Vec<(PeerId, u64, ResponseChannel<LogResponse>)> {
        let peers: Vec<PeerId> = self
            .waiting
            .iter()
            .filter(|(_, (from, deadline, _))| due(*from, *deadline))
            .map(|(p, _)| *p)
            .collect();
        peers
            .into_iter()
            .filter_map(|p| self.waiting.remove(&p).map(|(from, _, c)| (p, from, c)))
            .collect()
    }
}
