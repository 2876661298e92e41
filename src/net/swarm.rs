//! Building the swarm: transports, and the behaviours with the limits and
//! scoring the node runs with.

use std::time::Duration;

use libp2p::gossipsub::{self, MessageId};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, autonat, connection_limits, dcutr, identify, kad,
    mdns, memory_connection_limits, noise, ping, relay, yamux,
};

use tracing::warn;

use super::followed::Followed;
use super::gate::Gate;
use super::topics::{self, Topics};
use super::wire::{self, FetchCodec, LogCodec, SyncCodec};
use super::{NetConfig, NetError, discovery};
use crate::sync::fetch::VERDICT_HOLD;

/// Every behaviour of the node's swarm.
#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    pub(super) gate: Gate,
    pub(super) limits: connection_limits::Behaviour,
    pub(super) memory: memory_connection_limits::Behaviour,
    pub(super) identify: identify::Behaviour,
    pub(super) ping: ping::Behaviour,
    pub(super) gossipsub: gossipsub::Behaviour<Followed, Topics>,
    pub(super) fetch: request_response::Behaviour<FetchCodec>,
    pub(super) sync: request_response::Behaviour<SyncCodec>,
    pub(super) log: request_response::Behaviour<LogCodec>,
    pub(super) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(super) relay_client: relay::client::Behaviour,
    pub(super) relay: Toggle<relay::Behaviour>,
    /// Hole punching, off for a quiet reader (nothing is to reach it).
    pub(super) dcutr: Toggle<dcutr::Behaviour>,
    /// Reachability probes, off for a quiet reader: as client it would
    /// ask peers to dial it back, as server dial others on request.
    pub(super) autonat: Toggle<autonat::Behaviour>,
    pub(super) mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Heartbeats a message stays in gossipsub's cache: near libp2p's default
/// (5), and longer than a bundle announcement's verdict may be held while
/// its blobs come (`VERDICT_HOLD`, 1 s; every other verdict is given as
/// the message is handled). A longer cache would only hold whatever peers
/// send for longer.
fn history_length(config: &NetConfig) -> usize {
    let hold_beats = (VERDICT_HOLD.as_millis() as u64).div_ceil(config.heartbeat_ms.max(1));
    (hold_beats as usize + 3).max(6)
}

/// What identify says a node runs: what rust-libp2p's own examples
/// send, so that it names nothing of Kolokol. Its agent is identify's
/// default, `rust-libp2p/<version>`, the same for every rust-libp2p
/// program that keeps it. Only a peer that dialed with the node's peer
/// id gets this far (see [`super::transport`]), but the id may be
/// public, in a publisher file: the software stays unnamed all the same.
pub(super) const GENERIC_PROTOCOL_VERSION: &str = "/ipfs/id/1.0.0";

/// Identify as the node's role wants it: a mirror or a sharing reader
/// tells where it listens; a quiet reader keeps its addresses (loopback,
/// or a LAN's private ones) to itself.
fn identify_config(key: &libp2p::identity::Keypair, serves: bool) -> identify::Config {
    identify::Config::new(GENERIC_PROTOCOL_VERSION.into(), key.public())
        .with_hide_listen_addrs(!serves)
}

/// The connection caps: incoming and outgoing apart, so that peers
/// dialing in never take the room the node's own dials need.
fn connection_limits(config: &NetConfig) -> connection_limits::ConnectionLimits {
    let outgoing = config.max_outgoing.min(config.max_connections);
    let incoming = config
        .max_incoming
        .min(config.max_connections.saturating_sub(outgoing));
    connection_limits::ConnectionLimits::default()
        .with_max_established(Some(config.max_connections))
        .with_max_established_incoming(Some(incoming))
        .with_max_established_outgoing(Some(outgoing))
        .with_max_established_per_peer(Some(config.max_connections_per_peer))
        .with_max_pending_incoming(Some(config.max_pending_incoming))
        .with_max_pending_outgoing(Some(config.max_pending_outgoing))
}

/// Peers let in past every cap: the bootstrap peers and relays named by
/// id in the configuration, and the reserved peers. Their number is the
/// configuration's, not a peer's, to choose.
pub(super) fn exempt_peers(config: &NetConfig) -> Vec<PeerId> {
    let by_address = config
        .bootstrap
        .iter()
        .chain(&config.relays)
        .filter_map(|a| a.parse::<Multiaddr>().ok())
        .filter_map(|a| {
            a.iter().find_map(|p| match p {
                Protocol::P2p(peer) => Some(peer),
                _ => None,
            })
        });
    let reserved = config.reserved_peers.iter().filter_map(|p| {
        let peer = p.parse::<PeerId>();
        if peer.is_err() {
            warn!("reserved peer {p:?} is not a peer id; ignored");
        }
        peer.ok()
    });
    by_address.chain(reserved).collect()
}

/// Builds the swarm: every transport, and the behaviours within the
/// node's limits.
pub(super) async fn build_swarm(
    keypair: libp2p::identity::Keypair,
    config: &NetConfig,
    registry: &mut prometheus_client::registry::Registry,
    sync_codec: SyncCodec,
    log_codec: LogCodec,
    subscriptions_dropped: prometheus_client::metrics::counter::Counter,
    followed: Followed,
) -> Result<Swarm<Behaviour>, NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let gossip_config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(Duration::from_millis(config.heartbeat_ms))
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| {
            MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
        })
        .max_transmit_size(wire::MAX_GOSSIP + 1024)
        .history_length(history_length(config))
        .history_gossip(3)
        .duplicate_cache_time(Duration::from_secs(300))
        .build()
        .map_err(|e| setup(&e))?;
    let mut score = gossipsub::PeerScoreParams::default();
    if config.same_ip_ok {
        score.ip_colocation_factor_weight = 0.0;
    }
    let thresholds = gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 20.0,
    };
    let limits = connection_limits(config);
    let exempt = exempt_peers(config);
    let fetch_config = request_response::Config::default()
        .with_request_timeout(Duration::from_secs(config.request_timeout_secs))
        .with_max_concurrent_streams(64);
    // mDNS would tell the LAN the node runs, around any proxy.
    let mdns_on = config.mdns && !config.mirror && config.proxy.is_none();
    let mirror = config.mirror;
    let role = config.role();
    let serves = role.serves();
    // A quiet reader asks and never answers: peers that ask it are
    // refused as the streams open (unsupported protocol), before any of
    // its code reads their requests.
    let support = if serves {
        ProtocolSupport::Full
    } else {
        ProtocolSupport::Outbound
    };
    let relay_limits = config.relay.clone();
    let probe = Duration::from_secs(config.autonat_probe_secs.max(1));
    let autonat_config = autonat::Config {
        boot_delay: probe.min(Duration::from_secs(15)),
        retry_interval: probe,
        throttle_server_period: probe,
        only_global_ips: config.autonat_global_only,
        ..Default::default()
    };
    let sync_config = request_response::Config::default()
        .with_request_timeout(Duration::from_secs(config.request_timeout_secs.max(30)))
        .with_max_concurrent_streams(16);
    // A held log request waits up to LOG_WAIT before its empty answer.
    let log_config = request_response::Config::default()
        .with_request_timeout(
            wire::LOG_WAIT + Duration::from_secs(config.request_timeout_secs.max(10)),
        )
        .with_max_concurrent_streams(8);
    // A quiet reader asks for the log and answers no one's request.
    let log_support = if config.role().serves() {
        ProtocolSupport::Full
    } else {
        ProtocolSupport::Outbound
    };
    let memory_fraction = config.max_memory_fraction;
    let mut gate = Gate::new(
        config.max_incoming_per_address,
        config.max_incoming_per_subnet,
    );
    let mut limits = connection_limits::Behaviour::new(limits);
    for peer in exempt {
        gate.exempt(peer);
        limits.bypass_peer_id(&peer);
    }
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| {
            super::transport::build(key, config)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|e| setup(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| setup(&e))?
        .with_behaviour(move |key, relay_client| {
            let peer_id = key.public().to_peer_id();
            let mut gossipsub = gossipsub::Behaviour::new_with_subscription_filter_and_transform(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
                topics::filter(subscriptions_dropped),
                followed,
            )?;
            gossipsub.with_peer_score(score, thresholds)?;
            gossipsub = gossipsub.with_metrics(
                registry.sub_registry_with_prefix("gossipsub"),
                Default::default(),
            );
            let mdns = if mdns_on {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    key.public().to_peer_id(),
                )?)
            } else {
                None
            };
            Ok(Behaviour {
                gate,
                limits,
                memory: memory_connection_limits::Behaviour::with_max_percentage(memory_fraction),
                identify: identify::Behaviour::new(identify_config(key, serves)),
                ping: ping::Behaviour::default(),
                gossipsub,
                fetch: request_response::Behaviour::with_codec(
                    FetchCodec,
                    [(StreamProtocol::new(wire::FETCH_PROTOCOL), support.clone())],
                    fetch_config,
                ),
                sync: request_response::Behaviour::with_codec(
                    sync_codec,
                    [(StreamProtocol::new(wire::SYNC_PROTOCOL), support)],
                    sync_config,
                ),
                log: request_response::Behaviour::with_codec(
                    log_codec,
                    [(StreamProtocol::new(wire::LOG_PROTOCOL), log_support)],
                    log_config,
                ),
                kad: discovery::kademlia(peer_id, role),
                relay_client,
                relay: Toggle::from(
                    mirror.then(|| discovery::relay_server(peer_id, &relay_limits)),
                ),
                dcutr: Toggle::from(serves.then(|| dcutr::Behaviour::new(peer_id))),
                autonat: Toggle::from(
                    serves.then(|| autonat::Behaviour::new(peer_id, autonat_config)),
                ),
                mdns: Toggle::from(mdns),
            })
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}
