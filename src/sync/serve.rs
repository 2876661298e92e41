//! Answering peers' catch-up requests: summaries from what is held, the
//! plan of a bundles response, and the packing of one within its budget.

use std::collections::{HashMap, HashSet};

use super::messages::{
    INLINE_BUNDLE, MAX_RANGES, MAX_SYNC_REVOCATIONS, PublisherQuery, PublisherState, SYNC_BUDGET,
    SyncBundle, SyncResponse, revocations_digest,
};
use super::share::Busy;
use super::{Now, Peer, State, Time};
use crate::proto::{BlobHash, CertId, Manifest, PublicKey};

/// What a bundles response may hold: the driver reads the store and packs
/// it with a [`Packer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundlesPlan {
    /// The publisher.
    pub publisher: PublicKey,
    /// The sequence numbers asked, in order.
    pub sequences: Vec<u64>,
    /// Bytes of manifests, certificates and inline blobs it may carry.
    pub budget: usize,
    /// The publisher's certificates, by id, for the manifests that need one.
    pub certificates: HashMap<CertId, Vec<u8>>,
}

impl BundlesPlan {
    /// Packs the response in the order asked, reading each bundle held
    /// with `manifest` (its signed bytes and decoded manifest) and each blob
    /// with `blob`; a small bundle whose blobs are not all there goes
    /// without them. Returns the response and the blob bytes it carries.
    pub fn pack(
        &self,
        mut manifest: impl FnMut(u64) -> Option<(Vec<u8>, Manifest)>,
        mut blob: impl FnMut(&BlobHash) -> Option<Vec<u8>>,
    ) -> (SyncResponse, u64) {
        let mut packer = Packer::new(self.budget);
        let mut bytes = 0;
        for &seq in &self.sequences {
            let Some((signed, m)) = manifest(seq) else {
                continue;
            };
            let blob_bytes: u64 = m.entries.iter().map(|e| e.size).sum();
            if !packer.fits(seq, signed.len(), blob_bytes) {
                break;
            }
            let blobs = if Packer::inline(blob_bytes) {
                m.entries.iter().map(|e| blob(&e.hash)).collect()
            } else {
                None
            };
            let cert = self
                .certificates
                .get(&m.certificate)
                .map(|c| (m.certificate, c.as_slice()));
            bytes += packer.push(signed, blob_bytes, cert, blobs);
        }
        (packer.finish(), bytes)
    }
}

/// Packs a bundles response in the order asked, within a budget: the first
/// bundle always goes, so a response is never empty while anything is
/// held; the first that does not fit is where the response is cut.
#[derive(Debug)]
pub struct Packer {
    budget: usize,
    used: usize,
    sent_certs: HashSet<CertId>,
    certificates: Vec<Vec<u8>>,
    bundles: Vec<SyncBundle>,
    cut_at: Option<u64>,
}

impl Packer {
    /// An empty response within `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            used: 0,
            sent_certs: HashSet::new(),
            certificates: Vec::new(),
            bundles: Vec::new(),
            cut_at: None,
        }
    }

    /// Whether the blobs of a bundle of `blob_bytes` travel inline.
    pub fn inline(blob_bytes: u64) -> bool {
        blob_bytes <= INLINE_BUNDLE
    }

    /// Whether the bundle at `seq` (a manifest of `manifest_len` bytes,
    /// blobs of `blob_bytes`) fits; when it does not, the response is cut
    /// there and nothing more fits.
    pub fn fits(&mut self, seq: u64, manifest_len: usize, blob_bytes: u64) -> bool {
        if self.cut_at.is_some() {
            return false;
        }
        let cost = manifest_len
            + if Self::inline(blob_bytes) {
                blob_bytes as usize
            } else {
                0
            };
        if self.used > 0 && self.used + cost > self.budget {
            self.cut_at = Some(seq);
            return false;
        }
        true
    }

    /// Adds a bundle that [`Packer::fits`], with its certificate the
    /// first time one is needed. Returns the inline blob bytes added.
    pub fn push(
        &mut self,
        manifest: Vec<u8>,
        blob_bytes: u64,
        certificate: Option<(CertId, &[u8])>,
        blobs: Option<Vec<Vec<u8>>>,
    ) -> u64 {
        if let Some((id, bytes)) = certificate
            && self.sent_certs.insert(id)
        {
            self.used += bytes.len();
            self.certificates.push(bytes.to_vec());
        }
        let inline = if Self::inline(blob_bytes) {
            blob_bytes as usize
        } else {
            0
        };
        self.used += manifest.len() + inline;
        let sent = blobs
            .as_ref()
            .map_or(0, |b| b.iter().map(|x| x.len() as u64).sum());
        self.bundles.push(SyncBundle { manifest, blobs });
        sent
    }

    /// The response.
    pub fn finish(self) -> SyncResponse {
        SyncResponse::Bundles {
            certificates: self.certificates,
            bundles: self.bundles,
            cut_at: self.cut_at,
        }
    }
}

impl<P: Peer, M: Clone> State<P, M> {
    /// Answers a summary request from what is held and trusted.
    pub fn serve_summary(&mut self, peer: P, queries: &[PublisherQuery], now: Now) -> SyncResponse {
        // A summary names the publishers carried and digests what is held.
        if !self.config.role.serves()
            || self.bans.is_banned(&peer, now.at)
            || !self.catchup.served.take(peer, now.at)
        {
            return SyncResponse::Refused;
        }
        SyncResponse::Summary {
            publishers: queries
                .iter()
                .filter_map(|q| self.publisher_state(q))
                .collect(),
        }
    }

    fn publisher_state(&mut self, q: &PublisherQuery) -> Option<PublisherState> {
        let trust = self.policy.publisher(&q.publisher)?;
        let head = trust.head().filter(|h| h.sequence > q.head).and_then(|h| {
            let cert = trust.certificates().find(|c| c.id() == h.certificate)?;
            Some((cert.bytes().to_vec(), h.bytes().to_vec()))
        });
        let revocations =
            if revocations_digest(trust.revocations().map(|r| r.bytes())) != q.revocations {
                // Newest first: with more than fit, the latest matter most.
                let mut all: Vec<_> = trust.revocations().collect();
                all.sort_by_key(|r| std::cmp::Reverse(r.effective_from));
                all.iter()
                    .take(MAX_SYNC_REVOCATIONS)
                    .map(|r| r.bytes().to_vec())
                    .collect()
            } else {
                Vec::new()
            };
        let ranges = self.ranges_mut(&q.publisher);
        let (ranges, more) = if q.from == 0 && ranges.digest() == q.digest {
            (None, None)
        } else {
            let page: Vec<(u64, u64)> = ranges
                .held
                .iter()
                .filter(|(_, b)| *b >= q.from)
                .map(|&(a, b)| (a.max(q.from), b))
                .take(MAX_RANGES + 1)
                .collect();
            if page.len() > MAX_RANGES {
                let next = page[MAX_RANGES].0;
                (Some(page[..MAX_RANGES].to_vec()), Some(next))
            } else {
                (Some(page), None)
            }
        };
        Some(PublisherState {
            publisher: q.publisher,
            head,
            revocations,
            ranges,
            more,
        })
    }

    /// Plans the answer to a bundles request, or answers it at once: a
    /// banned asker or an untrusted publisher is refused; over the upload
    /// cap, nothing goes now ("ask again from the first").
    pub fn plan_bundles(
        &mut self,
        peer: P,
        publisher: PublicKey,
        sequences: Vec<u64>,
        now: Time,
    ) -> Result<BundlesPlan, SyncResponse> {
        if self.bans.is_banned(&peer, now) || !self.policy.is_trusted(&publisher) {
            return Err(SyncResponse::Refused);
        }
        if !self.upload.open(now) {
            return Err(SyncResponse::Bundles {
                certificates: Vec::new(),
                bundles: Vec::new(),
                cut_at: sequences.first().copied(),
            });
        }
        let certificates = self
            .policy
            .publisher(&publisher)
            .map(|p| {
                p.certificates()
                    .map(|c| (c.id(), c.bytes().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(BundlesPlan {
            publisher,
            sequences,
            // Within the upload cap and the peer's share too.
            budget: SYNC_BUDGET
                .min(self.upload.allowance(now))
                .min(self.shares.allowance(peer, now)),
            certificates,
        })
    }

    /// Starts a store read to answer `peer` (a blob piece, bundles, the
    /// versions of a story), or says why not now: the upload cap is spent,
    /// the peer's rate is, or too many reads wait (for it, or in all).
    /// Each read started ends with [`State::end_serving`].
    pub fn begin_serving(&mut self, peer: P, now: Time) -> Result<(), Busy> {
        // Serving proves what the node holds: a quiet reader never does.
        if !self.config.role.serves() {
            return Err(Busy::Quiet);
        }
        if !self.upload.open(now) {
            return Err(Busy::Upload);
        }
        self.shares.begin(peer, now)
    }

    /// A read started with [`State::begin_serving`] ended, sending
    /// `bytes` to `peer` (0 when it was not served after all).
    pub fn end_serving(&mut self, peer: P, bytes: u64, now: Time) {
        self.shares.end(peer, bytes, now);
        self.upload.take(bytes, now);
    }

    /// Store reads for peers waiting now.
    pub fn serving(&self) -> usize {
        self.shares.waiting()
    }

    /// Whether a holds request from `peer` about `publisher` is answered:
    /// each is a store read, so it counts in the summaries' window.
    pub fn allow_holds(&mut self, peer: P, publisher: &PublicKey, now: Time) -> bool {
        !self.bans.is_banned(&peer, now)
            && self.catchup.served.take(peer, now)
            && self.policy.is_trusted(publisher)
    }
}
