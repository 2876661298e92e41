//! Finding peers and being found: Kademlia under our own protocol name,
//! provider records per publisher ("who mirrors P"), and reachability
//! behind NAT through mirrors' relays.
//!
//! Mirrors answer the DHT (server mode) and put one provider record per
//! publisher they carry under [`wire::mirror_key`]. A node that has no
//! connected peer carrying a trusted publisher, or knows of stories of it
//! it does not hold, looks the key up and dials the mirrors found; catch-up
//! does the rest when the connection comes up.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, StreamProtocol, autonat, identify, kad, relay};
use tracing::{debug, info, warn};

use super::actor::Actor;
use super::{RelayLimits, wire};
use crate::proto::PublicKey;
use crate::sync::Role;

/// Providers dialed per batch of a lookup's results.
const DIALS_PER_LOOKUP: usize = 8;
/// Relays a node behind NAT reserves on by itself.
const AUTO_RELAYS: usize = 2;
/// Connected peers remembered as relays it could reserve on.
const MAX_RELAY_CANDIDATES: usize = 8;
/// Peers and addresses remembered as the node's own choice (bootstrap
/// peers, dials asked for, mirrors found in a lookup); past it the oldest
/// choices are not forgotten, new ones are not taken.
const MAX_CHOSEN: usize = 256;
/// A configured relay whose reservation ended is tried again after this,
/// or after five discovery intervals if that is sooner.
const RELAY_RETRY: Duration = Duration::from_secs(30);

/// Why the node listens through a relay.
enum RelayListen {
    /// Named in the configuration: kept up.
    Configured(Multiaddr),
    /// Chosen because autonat found the node private.
    Auto(PeerId),
}

/// The DHT behaviour: our protocol name, provider records only (no
/// values), and bounded storage, since peers fill it. A mirror answers
/// (server mode); a quiet reader never does, whatever its reachability
/// (client mode), so that it cannot be found or crawled through the DHT;
/// a sharing reader lets Kademlia decide from its confirmed addresses.
pub(super) fn kademlia(peer_id: PeerId, role: Role) -> kad::Behaviour<kad::store::MemoryStore> {
    let mut config = kad::Config::new(StreamProtocol::new(wire::KAD_PROTOCOL));
    config.set_query_timeout(Duration::from_secs(30));
    let store = kad::store::MemoryStore::with_config(
        peer_id,
        kad::store::MemoryStoreConfig {
            // Values are never used: refuse them all.
            max_records: 0,
            max_value_bytes: 0,
            max_providers_per_key: 20,
            max_provided_keys: 4096,
        },
    );
    let mut kad = kad::Behaviour::with_config(peer_id, store, config);
    match role {
        Role::Mirror => kad.set_mode(Some(kad::Mode::Server)),
        Role::Quiet => kad.set_mode(Some(kad::Mode::Client)),
        Role::Share => {}
    }
    kad
}

/// A mirror's relay server, within its configured caps.
pub(super) fn relay_server(peer_id: PeerId, limits: &RelayLimits) -> relay::Behaviour {
    let config = relay::Config {
        max_reservations: limits.max_reservations,
        max_circuits: limits.max_circuits,
        max_circuits_per_peer: limits.max_circuits_per_peer,
        max_circuit_bytes: limits.max_circuit_bytes,
        max_circuit_duration: Duration::from_secs(limits.max_circuit_duration_secs),
        ..Default::default()
    };
    relay::Behaviour::new(peer_id, config)
}

/// Discovery's state in the actor.
#[derive(Default)]
pub(super) struct DiscoveryState {
    /// Outstanding provider lookups.
    lookups: HashMap<kad::QueryId, PublicKey>,
    last_lookup: Option<Instant>,
    last_provide: Option<Instant>,
    /// Whether some provider record went out since the routing table
    /// last was empty.
    provided: bool,
    /// Connected peers that offer a relay and that the node chose to
    /// connect to: a peer that dials in and claims the relay protocol is
    /// not reserved on (it could then see and cut every relayed
    /// connection).
    relays: HashMap<PeerId, Multiaddr>,
    /// Peers the node chose: named in the configuration, dialed on
    /// request, or found as a mirror in a provider lookup.
    chosen: HashSet<PeerId>,
    /// Addresses dialed by choice with no peer id in them: the peer that
    /// answers there becomes chosen.
    chosen_addresses: HashSet<Multiaddr>,
    /// Relays we listen through by our own choice.
    reserved: HashSet<PeerId>,
    /// Listeners through relays.
    relay_listeners: HashMap<ListenerId, RelayListen>,
    /// Configured relays to try again, and when.
    relay_retry: Vec<(Multiaddr, Instant)>,
    /// The last reachability autonat found.
    pub(super) nat: Option<String>,
    /// Where each peer the node dialed was reached (while connected), so
    /// that a connection whose requests stall can be replaced by a fresh
    /// one to the same place.
    dialed: HashMap<PeerId, Multiaddr>,
}

impl DiscoveryState {
    pub(super) fn peer_gone(&mut self, peer: &PeerId) {
        self.relays.remove(peer);
        self.dialed.remove(peer);
    }

    /// Peers connected now that the node dialed.
    pub(super) fn dialed_count(&self) -> usize {
        self.dialed.len()
    }

    /// The node chose `peer` (a bootstrap or reserved peer, a mirror
    /// found): it may serve as a relay.
    pub(super) fn choose(&mut self, peer: PeerId) {
        if self.chosen.len() < MAX_CHOSEN {
            self.chosen.insert(peer);
        }
    }

    /// The node dials `addr` by choice: the peer there, if it names none,
    /// is chosen once connected.
    pub(super) fn choose_address(&mut self, addr: &Multiaddr) {
        match addr.iter().last() {
            Some(Protocol::P2p(peer)) => self.choose(peer),
            _ if self.chosen_addresses.len() < MAX_CHOSEN => {
                self.chosen_addresses.insert(addr.clone());
            }
            _ => {}
        }
    }

    /// An outgoing connection to `peer` at `addr` came up.
    pub(super) fn dialed(&mut self, peer: PeerId, addr: &Multiaddr) {
        self.dialed.insert(peer, addr.clone());
        let bare: Multiaddr = addr
            .iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect();
        if self.chosen_addresses.contains(&bare) {
            self.choose(peer);
        }
    }
}

impl Actor {
    /// A request to `peer` stalled: its connections are closed and, if
    /// the node dialed it, it is dialed again at the same address, so the
    /// requests that follow go over a fresh flow. A peer that dialed in is
    /// left to dial again itself.
    pub(super) fn reconnect(&mut self, peer: PeerId) {
        let Some(addr) = self.discovery.dialed.get(&peer).cloned() else {
            return;
        };
        debug!(peer = %peer, "a request stalled; replacing the connection");
        let _ = self.swarm.disconnect_peer_id(peer);
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr])
            .condition(PeerCondition::Always)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            debug!(peer = %peer, "redial failed: {e}");
        }
    }

    /// Listens through the relays named in the configuration.
    pub(super) fn listen_via_relays(&mut self) {
        for addr in self.config.relays.clone() {
            match addr.parse::<Multiaddr>() {
                Ok(ma) if matches!(ma.iter().last(), Some(Protocol::P2p(_))) => {
                    self.listen_via(ma);
                }
                _ => warn!("relay address {addr:?} must end in /p2p/PEER_ID; ignored"),
            }
        }
    }

    fn listen_via(&mut self, relay: Multiaddr) {
        match self
            .swarm
            .listen_on(relay.clone().with(Protocol::P2pCircuit))
        {
            Ok(id) => {
                self.discovery
                    .relay_listeners
                    .insert(id, RelayListen::Configured(relay));
            }
            Err(e) => {
                warn!("cannot listen through relay {relay}: {e}");
                self.discovery
                    .relay_retry
                    .push((relay, Instant::now() + self.relay_retry()));
            }
        }
    }

    fn relay_retry(&self) -> Duration {
        RELAY_RETRY.min(Duration::from_secs(
            self.config.discovery_interval_secs.max(1) * 5,
        ))
    }

    /// A listener closed: a relay reservation that ended is renewed (a
    /// configured relay) or its slot freed (one chosen automatically).
    pub(super) fn listener_closed(&mut self, id: ListenerId) {
        match self.discovery.relay_listeners.remove(&id) {
            Some(RelayListen::Configured(relay)) => {
                debug!(%relay, "relay reservation ended; trying again later");
                self.discovery
                    .relay_retry
                    .push((relay, Instant::now() + self.relay_retry()));
            }
            Some(RelayListen::Auto(peer)) => {
                self.discovery.reserved.remove(&peer);
                if self.discovery.nat.as_deref() == Some("private") {
                    self.reserve_on_relays();
                }
            }
            None => {}
        }
    }

    /// Identify told us a peer's addresses and protocols.
    pub(super) fn identified(&mut self, peer: PeerId, info: identify::Info) {
        self.book_listing(peer, &info.listen_addrs);
        let kad_protocol = StreamProtocol::new(wire::KAD_PROTOCOL);
        if info.protocols.contains(&kad_protocol) {
            for addr in info.listen_addrs.iter().take(16) {
                // Relayed addresses are reached through a relay the
                // routing table would not know; keep direct ones.
                if !addr.iter().any(|p| p == Protocol::P2pCircuit) {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                }
            }
        }
        // A relay is reserved on at an address it listens on directly, so
        // that the circuit address we then listen on is one others can dial.
        let direct = info
            .listen_addrs
            .iter()
            .find(|a| !a.iter().any(|p| p == Protocol::P2pCircuit))
            .cloned();
        let offers = info.protocols.contains(&relay::HOP_PROTOCOL_NAME);
        let room = self.discovery.relays.len() < MAX_RELAY_CANDIDATES
            || self.discovery.relays.contains_key(&peer);
        if let (true, true, true, Some(addr)) =
            (offers, self.discovery.chosen.contains(&peer), room, direct)
        {
            self.discovery.relays.insert(peer, addr);
            if self.discovery.nat.as_deref() == Some("private") {
                self.reserve_on_relays();
            }
        }
    }

    /// Puts a provider record for every publisher this mirror carries.
    fn provide_all(&mut self) {
        let publishers: Vec<PublicKey> =
            self.state.policy().publishers().map(|(k, _)| *k).collect();
        for p in publishers {
            let key = kad::RecordKey::new(&wire::mirror_key(&p));
            if let Err(e) = self.swarm.behaviour_mut().kad.start_providing(key) {
                warn!("cannot put a provider record: {e}");
            }
        }
        self.discovery.provided = true;
        self.discovery.last_provide = Some(Instant::now());
    }

    /// Periodic discovery: mirrors renew their records; mirrors and
    /// sharing readers look up mirrors of publishers they lack. A quiet
    /// reader never looks a publisher up: the key is one anyone can
    /// compute from the publisher's key, so whoever sits near it in the
    /// DHT would learn who reads that outlet. It finds mirrors from its
    /// bootstrap peers and publisher files instead.
    pub(super) fn discovery_tick(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.discovery.relay_retry)
            .into_iter()
            .partition(|(_, at)| *at <= now);
        self.discovery.relay_retry = later;
        for (relay, _) in due {
            self.listen_via(relay);
        }
        if self.config.mirror {
            let every = Duration::from_secs(self.config.provide_interval_secs.max(1));
            if self
                .discovery
                .last_provide
                .is_none_or(|t| t.elapsed() >= every)
            {
                self.provide_all();
            }
        }
        let every = Duration::from_secs(self.config.discovery_interval_secs.max(1));
        if !self.config.role().serves()
            || self
                .discovery
                .last_lookup
                .is_some_and(|t| t.elapsed() < every)
            || !self.discovery.lookups.is_empty()
        {
            return;
        }
        self.discovery.last_lookup = Some(Instant::now());
        let publishers: Vec<PublicKey> =
            self.state.policy().publishers().map(|(k, _)| *k).collect();
        for p in publishers {
            let lacking = !self.state.carried(&p)
                || (!self.state.busy_with(&p) && !self.state.missing(&p).is_empty());
            if lacking {
                let key = kad::RecordKey::new(&wire::mirror_key(&p));
                let q = self.swarm.behaviour_mut().kad.get_providers(key);
                self.discovery.lookups.insert(q, p);
            }
        }
    }

    pub(super) fn kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::RoutingUpdated { peer, .. } => {
                debug!(peer = %peer, "DHT routing table updated");
                if self.config.mirror && !self.discovery.provided {
                    self.provide_all();
                }
            }
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => match result {
                kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders {
                    providers,
                    ..
                })) => {
                    if let Some(report) = self.reports.of_lookup(&id) {
                        self.report_providers(report, &providers);
                    }
                    let publisher = self.discovery.lookups.get(&id).copied();
                    let me = *self.swarm.local_peer_id();
                    // At most this many of each batch of providers found.
                    let new: Vec<PeerId> = providers
                        .into_iter()
                        .filter(|p| *p != me && !self.swarm.is_connected(p) && !self.is_banned(p))
                        .take(DIALS_PER_LOOKUP)
                        .collect();
                    for p in new {
                        self.discovery.choose(p);
                        if let Some(publisher) = &publisher {
                            info!(peer = %p, "found a mirror; connecting");
                            debug!(peer = %p, publisher = %publisher, "the mirror carries");
                        }
                        // The query's own addresses for the provider are
                        // used while it runs (kad's pending-dial hook).
                        if let Err(e) = self.swarm.dial(DialOpts::peer_id(p).build()) {
                            debug!(peer = %p, "cannot dial a found mirror: {e}");
                        }
                    }
                    if step.last {
                        self.discovery.lookups.remove(&id);
                        self.report_lookup_done(&id);
                    }
                }
                kad::QueryResult::GetProviders(_) if step.last => {
                    self.discovery.lookups.remove(&id);
                    self.report_lookup_done(&id);
                }
                kad::QueryResult::StartProviding(Err(e)) => {
                    debug!("provider record not placed: {e:?}");
                    self.discovery.provided = false;
                }
                _ => {}
            },
            _ => {}
        }
    }

    pub(super) fn autonat_event(&mut self, event: autonat::Event) {
        let autonat::Event::StatusChanged { new, .. } = event else {
            return;
        };
        info!("reachability: {new:?}");
        self.discovery.nat = Some(match &new {
            autonat::NatStatus::Public(a) => format!("public ({a})"),
            autonat::NatStatus::Private => "private".into(),
            autonat::NatStatus::Unknown => "unknown".into(),
        });
        if new == autonat::NatStatus::Private {
            self.reserve_on_relays();
        }
    }

    /// Behind NAT: listens through up to [`AUTO_RELAYS`] connected relays,
    /// so that peers can reach this node through them.
    pub(super) fn reserve_on_relays(&mut self) {
        // A quiet reader is never reachable, through a relay or otherwise.
        if !self.config.role().serves() {
            return;
        }
        let candidates: Vec<(PeerId, Multiaddr)> = self
            .discovery
            .relays
            .iter()
            .filter(|(p, _)| !self.discovery.reserved.contains(p))
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        for (relay, direct) in candidates {
            if self.discovery.reserved.len() >= AUTO_RELAYS {
                break;
            }
            // The peer's own listing may end in any /p2p/: ours decides.
            let mut addr: Multiaddr = direct
                .iter()
                .filter(|p| !matches!(p, Protocol::P2p(_)))
                .collect();
            addr.push(Protocol::P2p(relay));
            let addr = addr.with(Protocol::P2pCircuit);
            match self.swarm.listen_on(addr) {
                Ok(id) => {
                    info!(relay = %relay, "listening through a relay");
                    self.discovery.reserved.insert(relay);
                    self.discovery
                        .relay_listeners
                        .insert(id, RelayListen::Auto(relay));
                }
                Err(e) => debug!(relay = %relay, "cannot listen through relay: {e}"),
            }
        }
    }
}
