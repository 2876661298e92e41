//! The node's own Prometheus metrics, kept beside gossipsub's in one
//! registry and encoded in the text format on request.
//!
//! Label values come from small fixed sets (a publisher's name from the
//! trust list, a rejection's kind), never from what a peer sends, so a
//! peer cannot grow the number of series.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::sync::Kind;

/// A publisher, by its name in the trust list.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PublisherLabel {
    pub(super) publisher: String,
}

/// The kind of a refused message or false data.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReasonLabel {
    pub(super) reason: &'static str,
}

/// The node's metrics.
#[derive(Default)]
pub(super) struct Metrics {
    pub(super) rejected: Family<ReasonLabel, Counter>,
    pub(super) fetched_bytes: Counter,
    pub(super) served_bytes: Counter,
    pub(super) serve_refused: Family<ReasonLabel, Counter>,
    pub(super) peers: Gauge,
    pub(super) connections_denied: Family<ReasonLabel, Counter>,
    pub(super) subscriptions_dropped: Counter,
    pub(super) peers_at_topic_bound: Counter,
    pub(super) held: Family<PublisherLabel, Gauge>,
    pub(super) missing: Family<PublisherLabel, Gauge>,
    pub(super) head_sequence: Family<PublisherLabel, Gauge>,
    pub(super) head_age: Family<PublisherLabel, Gauge>,
    pub(super) store_bytes: Gauge,
    pub(super) store_bundles: Gauge,
}

impl Metrics {
    /// Registers every metric under the `kolokol` prefix.
    pub(super) fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("kolokol");
        // Every kind from the start, at 0: a rate or an alert on it then
        // has a series to read before the first refusal.
        for kind in Kind::ALL {
            drop(self.rejected.get_or_create(&ReasonLabel {
                reason: kind.label(),
            }));
        }
        r.register(
            "rejected",
            "Messages refused and peers banned for false data, by kind",
            self.rejected.clone(),
        );
        r.register(
            "fetched_bytes",
            "Blob bytes received from peers (fetch and catch-up)",
            self.fetched_bytes.clone(),
        );
        r.register(
            "served_bytes",
            "Blob bytes sent to peers (fetch and catch-up)",
            self.served_bytes.clone(),
        );
        r.register(
            "serve_refused",
            "Peers' blob and bundle requests refused: upload cap, the peer's rate, reads waiting",
            self.serve_refused.clone(),
        );
        r.register("peers", "Connected peers", self.peers.clone());
        r.register(
            "connections_denied",
            "Connections refused by a cap: per address, per subnet, incoming, outgoing",
            self.connections_denied.clone(),
        );
        r.register(
            "subscriptions_dropped",
            "Peers' topic subscriptions not recorded: not a publisher topic",
            self.subscriptions_dropped.clone(),
        );
        r.register(
            "peers_at_topic_bound",
            "Peers that reached the bound of topics recorded per peer; more from them are ignored",
            self.peers_at_topic_bound.clone(),
        );
        r.register(
            "bundles_held",
            "Bundles held (every version of a story counts), per publisher",
            self.held.clone(),
        );
        r.register(
            "catchup_lag",
            "Sequence numbers below the newest head never held, per publisher",
            self.missing.clone(),
        );
        r.register(
            "head_sequence",
            "Sequence number of the newest trusted head, per publisher",
            self.head_sequence.clone(),
        );
        r.register(
            "head_age_seconds",
            "Seconds since the newest trusted head was issued, per publisher",
            self.head_age.clone(),
        );
        r.register(
            "store_disk_bytes",
            "Bytes the store takes on disk",
            self.store_bytes.clone(),
        );
        r.register(
            "store_bundles",
            "Bundles in the store",
            self.store_bundles.clone(),
        );
    }

    /// Registers the count of gossip dropped for a topic not followed.
    pub(super) fn register_unfollowed(&self, registry: &mut Registry, dropped: Counter) {
        registry.sub_registry_with_prefix("kolokol").register(
            "gossip_unfollowed",
            "Gossip messages dropped before gossip kept them: on a topic not followed",
            dropped,
        );
    }

    /// Counts one refusal, by its kind.
    pub(super) fn reject(&self, kind: Kind) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: kind.label(),
            })
            .inc();
    }
}
