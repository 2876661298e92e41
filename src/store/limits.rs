//! Limits: pins, retention, the per-publisher and overall quotas, and the
//! eviction of whole stories they share.

use std::collections::HashMap;

use tracing::info;

use super::kv::Op;
use super::tables::{META, META_PAYLOAD, PIN, STORY, SeqState, StoryEntry, key, u64_of};
use super::{Store, StoreError};
use crate::proto::{PublicKey, StoryId, Timestamp};

/// What eviction removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Eviction {
    /// Stories evicted, with every version.
    pub stories: Vec<(PublicKey, StoryId)>,
    /// Bundles removed.
    pub bundles: u64,
    /// Payload bytes removed.
    pub bytes: u64,
}

impl Store {
    /// Pins a story: eviction never removes it.
    pub fn pin(&self, publisher: &PublicKey, story: &StoryId) -> Result<(), StoreError> {
        let _w = self.lock()?;
        self.kv.apply(vec![Op::Put(
            key(PIN, &[publisher.as_bytes(), story.as_bytes()]),
            Vec::new(),
        )])?;
        self.kv.flush()
    }

    /// Unpins a story.
    pub fn unpin(&self, publisher: &PublicKey, story: &StoryId) -> Result<(), StoreError> {
        let _w = self.lock()?;
        self.kv.apply(vec![Op::Delete(key(
            PIN,
            &[publisher.as_bytes(), story.as_bytes()],
        ))])?;
        self.kv.flush()
    }

    /// Applies retention and the per-publisher quota, then the overall
    /// quota ([`Store::enforce_quota`]). Eviction is by whole stories,
    /// oldest first by first publication, never pinned ones nor each
    /// publisher's newest `keep_newest`; their sequence numbers are marked
    /// evicted so that they are not fetched again.
    pub fn enforce_limits(&self, now: Timestamp) -> Result<Eviction, StoreError> {
        let mut report = Eviction::default();
        if self.config.retention_days.is_some() || self.config.publisher_quota_bytes.is_some() {
            let _w = self.lock()?;
            let cutoff = self
                .config
                .retention_days
                .map(|d| now.minus(d.saturating_mul(86_400)));
            for (publisher, stories) in self.eviction_candidates()? {
                let mut bytes = self.publisher_bytes(&publisher)?;
                // Above the quota, down to 90% of it, so that it is not
                // crossed again by the next story.
                let target = self
                    .config
                    .publisher_quota_bytes
                    .filter(|q| bytes > *q)
                    .map(|q| q / 10 * 9);
                for (published, story) in stories {
                    let expired = cutoff.is_some_and(|c| published < c);
                    let over = target.is_some_and(|t| bytes > t);
                    // Oldest first: past the first story neither expired
                    // nor needed for the quota, none is.
                    if !expired && !over {
                        break;
                    }
                    let freed = self.evict_story(&publisher, &story, &mut report)?;
                    bytes = bytes.saturating_sub(freed);
                }
            }
            self.kv.flush()?;
        }
        let overall = self.enforce_quota()?;
        report.bytes += overall.bytes;
        report.bundles += overall.bundles;
        report.stories.extend(overall.stories);
        if report.bundles > 0 {
            info!(
                stories = report.stories.len(),
                bundles = report.bundles,
                bytes = report.bytes,
                "evicted under retention and quotas"
            );
        }
        Ok(report)
    }

    /// Per publisher, the stories eviction may take, oldest first.
    fn eviction_candidates(
        &self,
    ) -> Result<HashMap<PublicKey, Vec<(Timestamp, StoryId)>>, StoreError> {
        let mut per_publisher: HashMap<PublicKey, Vec<(Timestamp, StoryId)>> = HashMap::new();
        for item in self.kv.scan(&[STORY], false) {
            let (k, v) = item?;
            let e = StoryEntry::decode(&k, &v)?;
            per_publisher
                .entry(e.publisher)
                .or_default()
                .push((e.published, e.story));
        }
        let mut out = HashMap::new();
        for (publisher, mut stories) in per_publisher {
            stories.sort();
            let keep_from = stories.len().saturating_sub(self.config.keep_newest);
            let mut can = Vec::new();
            for (published, story) in stories.into_iter().take(keep_from) {
                if !self
                    .kv
                    .contains(&key(PIN, &[publisher.as_bytes(), story.as_bytes()]))?
                {
                    can.push((published, story));
                }
            }
            out.insert(publisher, can);
        }
        Ok(out)
    }

    /// Evicts every version of a story; returns the bytes it counted for
    /// its publisher. Caller holds the write lock.
    fn evict_story(
        &self,
        publisher: &PublicKey,
        story: &StoryId,
        report: &mut Eviction,
    ) -> Result<u64, StoreError> {
        let before = self.publisher_bytes(publisher)?;
        let versions = self.history(publisher, story)?;
        for m in versions {
            report.bytes += self.remove_bundle(&m.id, SeqState::Evicted)?;
            report.bundles += 1;
        }
        report.stories.push((*publisher, *story));
        Ok(before.saturating_sub(self.publisher_bytes(publisher)?))
    }

    /// Evicts stories while the store is over its quota.
    ///
    /// Policy: whole stories go (every version, so corrections and
    /// retractions stay with their story), oldest first publication first,
    /// across publishers; never a pinned story, and never one of a
    /// publisher's newest `keep_newest` stories. The size compared with the
    /// quota is sled's size on disk. sled frees disk space lazily, so the
    /// payload to remove is estimated from the measured ratio of disk size
    /// to payload, aiming 20% under the quota: every bundle removed writes
    /// to the catalog index too, and that space also comes back lazily.
    pub fn enforce_quota(&self) -> Result<Eviction, StoreError> {
        let Some(quota) = self.config.quota_bytes else {
            return Ok(Eviction::default());
        };
        let disk = self.totals()?.disk_bytes;
        let _w = self.lock()?;
        if disk <= quota {
            return Ok(Eviction::default());
        }
        let payload = u64_of(self.kv.get(&key(META, &[META_PAYLOAD]))?).max(1);
        let overhead = (disk as f64 / payload as f64).max(1.0);
        let target = (quota as f64 * 0.8 / overhead) as u64;

        // Candidates: (published, publisher, story), oldest first across
        // publishers.
        let mut candidates: Vec<(Timestamp, PublicKey, StoryId)> = self
            .eviction_candidates()?
            .into_iter()
            .flat_map(|(publisher, stories)| {
                stories
                    .into_iter()
                    .map(move |(published, story)| (published, publisher, story))
            })
            .collect();
        candidates.sort();

        let mut report = Eviction::default();
        let mut payload_now = payload;
        for (_, publisher, story) in candidates {
            if payload_now <= target {
                break;
            }
            let before = report.bytes;
            self.evict_story(&publisher, &story, &mut report)?;
            payload_now = payload_now.saturating_sub(report.bytes - before);
        }
        self.kv.flush()?;
        if report.bundles > 0 {
            info!(
                stories = report.stories.len(),
                bundles = report.bundles,
                bytes = report.bytes,
                disk,
                quota,
                "evicted under the quota"
            );
        }
        Ok(report)
    }
}
