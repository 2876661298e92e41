//! What the swarm reports, and peers' requests: each goes to the core, to
//! the store thread, or to discovery and reports.

use libp2p::gossipsub;
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::{ConnectionDenied, DialError, ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, connection_limits, identify, mdns, relay};
use tracing::{debug, info, warn};

use super::NodeEvent;
use super::actor::{Actor, Asker};
use super::gate::GateDenied;
use super::metrics::ReasonLabel;
use super::swarm::BehaviourEvent;
use super::topics::MAX_PEER_TOPICS;
use super::wire::{self, FetchRequest, FetchResponse, SyncRequest, SyncResponse};
use super::worker::Job;
use crate::sync::Origin;
use crate::sync::share::Busy;

impl Actor {
    /// A peer asked for a piece of a blob: read on the store thread,
    /// within the peer's share ("not here" over it: the peer asks another).
    fn serve_blob(
        &mut self,
        peer: PeerId,
        request: FetchRequest,
        channel: ResponseChannel<FetchResponse>,
    ) {
        if self.refuse_quietly(peer, "fetch") {
            return;
        }
        let now = self.now().at;
        let job = Job::ServeBlob {
            peer,
            request,
            channel,
        };
        let refused = match self.state.begin_serving(peer, now) {
            Ok(()) => self.serve_job(peer, job),
            Err(busy) => {
                self.busy(busy);
                Some(job)
            }
        };
        if let Some(Job::ServeBlob { channel, .. }) = refused {
            let _ = self
                .swarm
                .behaviour_mut()
                .fetch
                .send_response(channel, FetchResponse::NotFound);
        }
    }

    /// Whether a request must go unanswered because the node is a quiet
    /// reader. Its protocols are outbound only, so none should arrive;
    /// should one anyway, the channel is dropped unanswered: even "not
    /// here" would answer, and an answer's timing can tell what is held.
    fn refuse_quietly(&self, peer: PeerId, what: &str) -> bool {
        let quiet = !self.config.role().serves();
        if quiet {
            debug!(peer = %peer, "a {what} request reached a quiet reader; not answered");
        }
        quiet
    }

    /// Hands a serving job to the store thread; when the queue is full,
    /// the read ends unserved and the job comes back to be refused.
    fn serve_job(&mut self, peer: PeerId, job: Job) -> Option<Job> {
        let back = self.peer_job(job);
        if back.is_some() {
            let now = self.now().at;
            self.state.end_serving(peer, 0, now);
        }
        back
    }

    fn busy(&mut self, busy: Busy) {
        debug!("not serving now: {busy:?}");
        self.metrics
            .serve_refused
            .get_or_create(&ReasonLabel {
                reason: match busy {
                    Busy::Upload => "upload_cap",
                    Busy::Rate => "peer_rate",
                    Busy::PeerJobs => "peer_reads",
                    Busy::Jobs => "reads",
                    Busy::Quiet => "quiet",
                },
            })
            .inc();
    }

    /// A peer asked a catch-up question.
    fn serve_sync(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        if self.refuse_quietly(peer, "catch-up") {
            return;
        }
        let now = self.now();
        if let SyncRequest::Summary { publishers } = &request {
            let response = self.state.serve_summary(peer, publishers, now);
            return self.answer(channel, response);
        }
        // Bundles and holds read the store: within the peer's share.
        if let Err(busy) = self.state.begin_serving(peer, now.at) {
            self.busy(busy);
            let response = match request {
                // "Ask again from the first", as under the upload cap.
                SyncRequest::Bundles { sequences, .. } => SyncResponse::Bundles {
                    certificates: Vec::new(),
                    bundles: Vec::new(),
                    cut_at: sequences.first().copied(),
                },
                _ => SyncResponse::Refused,
            };
            return self.answer(channel, response);
        }
        let job = match request {
            SyncRequest::Summary { .. } => return,
            SyncRequest::Bundles {
                publisher,
                sequences,
            } => match self.state.plan_bundles(peer, publisher, sequences, now.at) {
                Ok(plan) => Job::ServeBundles {
                    peer,
                    plan,
                    channel,
                },
                Err(response) => {
                    self.state.end_serving(peer, 0, now.at);
                    return self.answer(channel, response);
                }
            },
            SyncRequest::Holds { publisher, story } => {
                if !self.state.allow_holds(peer, &publisher, now.at) {
                    self.state.end_serving(peer, 0, now.at);
                    return self.answer(channel, SyncResponse::Refused);
                }
                Job::ServeHolds {
                    peer,
                    publisher,
                    story,
                    channel,
                }
            }
        };
        // A full store queue: refused, the peer asks again later.
        if let Some(Job::ServeBundles { channel, .. } | Job::ServeHolds { channel, .. }) =
            self.serve_job(peer, job)
        {
            self.answer(channel, SyncResponse::Refused);
        }
    }

    fn answer(&mut self, channel: ResponseChannel<SyncResponse>, response: SyncResponse) {
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response);
    }

    fn sync_response(
        &mut self,
        peer: PeerId,
        rid: request_response::OutboundRequestId,
        response: Result<SyncResponse, String>,
        unsupported: bool,
    ) {
        match self.sync_requests.remove(&rid) {
            Some(Asker::Core(token)) => {
                let now = self.now();
                self.state.sync_response(token, response, unsupported, now);
            }
            Some(Asker::Report(id)) => self.report_response(id, rid, peer, response),
            None => {}
        }
    }

    /// A connection was refused by a cap: counted by which.
    fn denied(&mut self, cause: &ConnectionDenied, direction: &'static str, from: &Multiaddr) {
        let reason = match cause.downcast_ref::<GateDenied>() {
            Some(g) => g.label(),
            None if cause
                .downcast_ref::<connection_limits::Exceeded>()
                .is_some() =>
            {
                direction
            }
            None => "other",
        };
        debug!(%from, reason, "connection refused: {cause}");
        self.metrics
            .connections_denied
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// A message from `peer` was refused by the codec; over the
    /// protocol's limits, it costs the peer a ban like any such message.
    fn refused_by_codec(&mut self, peer: PeerId, over_limits: bool, what: &str) {
        if over_limits {
            let now = self.now().at;
            debug!(peer = %peer, "{what} over the protocol's limits");
            self.state
                .over_limits(peer, &format!("{what} over its limits"), now);
        }
    }

    /// Something happened in the swarm.
    pub(super) fn swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!("listening on {address}");
                // A mirror is run where it can be reached: what it listens
                // on is what it tells peers (and relay clients) to use,
                // unless addresses to announce are configured.
                // A loopback WebSocket listener is a front's or a reverse
                // proxy's backend: of no use to peers, and the public
                // address in front of it stays out of the DHT.
                if self.config.mirror
                    && self.config.external_addresses.is_empty()
                    && !address
                        .iter()
                        .any(|p| p == libp2p::multiaddr::Protocol::P2pCircuit)
                    && !super::gate::is_backend(&address)
                {
                    self.swarm.add_external_address(address.clone());
                }
                self.emit(NodeEvent::Listening(address));
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                addresses,
                reason,
            } => {
                if let Err(e) = reason {
                    warn!("stopped listening on {addresses:?}: {e}");
                }
                self.listener_closed(listener_id);
            }
            SwarmEvent::ListenerError { error, .. } => warn!("listener error: {error}"),
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                send_back_addr,
                ..
            } => self.denied(&cause, "incoming", &send_back_addr),
            SwarmEvent::OutgoingConnectionError {
                error: DialError::Denied { cause },
                peer_id,
                ..
            } => {
                self.denied(&cause, "outgoing", &Multiaddr::empty());
                if let Some(peer) = peer_id {
                    self.book_dial_failed(&peer);
                    self.report_unreachable(peer, cause.to_string());
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(
                relay::client::Event::ReservationReqAccepted { relay_peer_id, .. },
            )) => info!(relay = %relay_peer_id, "reachable through a relay"),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(e)) => debug!("relay: {e:?}"),
            SwarmEvent::ConnectionEstablished { peer_id, .. } if self.is_banned(&peer_id) => {
                let _ = self.swarm.disconnect_peer_id(peer_id);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                endpoint,
                ..
            } => {
                debug!(peer = %peer_id, address = %endpoint.get_remote_address(), "connected");
                if endpoint.is_dialer() {
                    self.discovery
                        .dialed(peer_id, endpoint.get_remote_address());
                }
                let dialed = endpoint
                    .is_dialer()
                    .then(|| endpoint.get_remote_address().clone());
                self.book_connected(peer_id, dialed.as_ref());
                self.emit(NodeEvent::Connected(peer_id));
                if num_established.get() == 1 {
                    let now = self.now();
                    if !self.state.peer_up(peer_id, now) {
                        let _ = self.swarm.disconnect_peer_id(peer_id);
                    }
                    self.report_connected(peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                self.book_dial_failed(&peer);
                self.report_unreachable(peer, error.to_string())
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                let now = self.now();
                self.held_logs.forget(&peer_id);
                self.state.peer_down(&peer_id, now);
                self.discovery.peer_gone(&peer_id);
                self.book_disconnected(&peer_id);
                self.peer_topics.remove(&peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.serve_sync(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.sync_response(peer, request_id, Ok(response), false),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Sync(
                request_response::Event::OutboundFailure {
                    peer,
                    request_id,
                    error,
                    ..
                },
            )) => {
                let unsupported = matches!(
                    error,
                    request_response::OutboundFailure::UnsupportedProtocols
                );
                self.refused_by_codec(peer, outbound_over_limits(&error), "catch-up response");
                self.sync_response(peer, request_id, Err(error.to_string()), unsupported)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(
                request_response::Event::InboundFailure { peer, error, .. },
            )) => self.refused_by_codec(peer, inbound_over_limits(&error), "catch-up request"),
            SwarmEvent::Behaviour(BehaviourEvent::Fetch(
                request_response::Event::InboundFailure { peer, error, .. },
            )) => self.refused_by_codec(peer, inbound_over_limits(&error), "fetch request"),
            SwarmEvent::Behaviour(BehaviourEvent::Log(e)) => self.log_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.kad_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(e)) => self.autonat_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let now = self.now();
                let origin = Origin {
                    message: message_id,
                    source: propagation_source,
                };
                self.state
                    .gossip(origin, message.topic.as_str(), &message.data, now);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed {
                peer_id,
                ..
            })) => {
                let n = self.peer_topics.entry(peer_id).or_default();
                *n += 1;
                if *n == MAX_PEER_TOPICS {
                    warn!(peer = %peer_id, "peer at the bound of {MAX_PEER_TOPICS} topics: its further subscriptions are ignored");
                    self.metrics.peers_at_topic_bound.inc();
                }
                self.flush_outbox()
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Unsubscribed {
                peer_id,
                ..
            })) => {
                if let Some(n) = self.peer_topics.get_mut(&peer_id) {
                    *n = n.saturating_sub(1);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Fetch(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.serve_blob(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.fetch_response(request_id, Ok(response)),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Fetch(
                request_response::Event::OutboundFailure {
                    peer,
                    request_id,
                    error,
                    ..
                },
            )) => {
                self.refused_by_codec(peer, outbound_over_limits(&error), "fetch response");
                self.fetch_response(request_id, Err(error.to_string()))
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(list))) => {
                for (peer, addr) in list {
                    if !self.swarm.is_connected(&peer) && !self.is_banned(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                debug!(peer = %peer_id, agent = %info.agent_version, "identified");
                self.identified(peer_id, info);
            }
            _ => {}
        }
    }
}

fn outbound_over_limits(e: &request_response::OutboundFailure) -> bool {
    matches!(e, request_response::OutboundFailure::Io(io) if wire::over_limits(io))
}

fn inbound_over_limits(e: &request_response::InboundFailure) -> bool {
    matches!(e, request_response::InboundFailure::Io(io) if wire::over_limits(io))
}
