//! What the node tells about itself: its status and its metrics, both from
//! what the actor and the core hold in memory (the store's totals come
//! from the store thread).

use tracing::warn;

use super::actor::Actor;
use super::{PublisherStatus, Status, SyncTraffic, metrics};
use crate::proto::Timestamp;
use crate::store::Totals;

impl Actor {
    /// The sum over all labels of one counter in gossipsub's registry.
    fn metric_sum(&self, name: &str) -> u64 {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            return 0;
        }
        text.lines()
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Per trusted publisher, by name: what is held and missing, and its
    /// newest head (for the status and the metrics alike).
    fn publisher_statuses(&self) -> Vec<PublisherStatus> {
        let wall = self.now().wall;
        self.state
            .figures()
            .into_iter()
            .map(|f| PublisherStatus {
                name: f.name,
                root_key: f.publisher.to_string(),
                held: f.held,
                missing: f.missing,
                head_sequence: f.head.as_ref().map(|h| h.sequence),
                head_issued_at: f.head.as_ref().map(|h| h.issued_at.0),
                head_expired: f.head.as_ref().is_some_and(|h| h.is_expired(wall)),
            })
            .collect()
    }

    /// The node's status.
    pub(super) fn status(&self) -> Status {
        Status {
            peer_id: self.swarm.local_peer_id().to_string(),
            listen: self.swarm.listeners().map(|a| a.to_string()).collect(),
            peers: self
                .swarm
                .connected_peers()
                .map(|p| p.to_string())
                .collect(),
            topics: self.topics.iter().map(|t| t.to_string()).collect(),
            fetching: self.state.fetching(),
            rejected: self.rejected,
            banned: self.state.banned(),
            served_chunks: self.served_chunks,
            gossip_received: self.metric_sum("gossipsub_topic_msg_recv_counts_unfiltered_total"),
            gossip_unique: self.metric_sum("gossipsub_topic_msg_recv_counts_total"),
            publishers: self.publisher_statuses(),
            mirror: self.config.mirror,
            role: self.config.role(),
            reachability: self.discovery.nat.clone(),
            sync: SyncTraffic::of(&self.sync_counters),
            log: SyncTraffic::of(&self.log_counters),
            followed: self.state.followed(),
        }
    }

    /// Updates the gauges, then encodes every metric.
    pub(super) fn encode_metrics(&self, totals: Option<Totals>) -> String {
        let m = &self.metrics;
        m.peers.set(self.swarm.connected_peers().count() as i64);
        let now: Timestamp = self.now().wall;
        for p in self.publisher_statuses() {
            let label = metrics::PublisherLabel { publisher: p.name };
            let missing: u64 = p.missing.iter().map(|(a, b)| b - a + 1).sum();
            m.held.get_or_create(&label).set(p.held as i64);
            m.missing.get_or_create(&label).set(missing as i64);
            if let (Some(seq), Some(at)) = (p.head_sequence, p.head_issued_at) {
                m.head_sequence.get_or_create(&label).set(seq as i64);
                m.head_age
                    .get_or_create(&label)
                    .set(now.since(Timestamp(at)) as i64);
            }
        }
        if let Some(t) = totals {
            m.store_bytes.set(t.disk_bytes as i64);
            m.store_bundles.set(t.bundles as i64);
        }
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            warn!("metrics could not be encoded");
        }
        text
    }
}
