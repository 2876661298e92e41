//! The actor: one task that owns the swarm and the network's decisions
//! ([`State`]), carries out the decisions' actions, and hands store work to
//! the store thread. The loop is `select!` with commands first, then the
//! store's results, the swarm, and a periodic tick (which also keeps
//! gossipsub's heartbeat going on a quiet network).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::request_response::OutboundRequestId;
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use super::discovery::DiscoveryState;
use super::followed::Followed;
use super::handle::Command;
use super::report::Reports;
use super::swarm::{Behaviour, build_swarm};
use super::wire::{self, Announcement, SyncCodec};
use super::worker::{self, Done, GossipOrigin, Job};
use super::{NetConfig, NetError, NodeEvent, TICK, metrics};
use crate::proto::{PublicKey, Timestamp, TrustPolicy};
use crate::store::Store;
use crate::sync::fetch::FetchLimits;
use crate::sync::outbox::{Outbox, Sent};
use crate::sync::{Action, Config, Now, Refusal, State, Time, Token, Verdict};

/// Who waits for a catch-up response.
pub(super) enum Asker {
    /// The core, under this token.
    Core(Token),
    /// The report with this number.
    Report(u64),
}

/// The actor's state.
pub(super) struct Actor {
    pub(super) swarm: Swarm<Behaviour>,
    /// The network's decisions, and the trust policy.
    pub(super) state: State<PeerId, MessageId>,
    pub(super) config: NetConfig,
    /// Where the core's clock starts.
    origin: Instant,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<NodeEvent>,
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<Done>,
    /// The node's own store jobs that did not fit the queue yet.
    backlog: VecDeque<Job>,
    fetch_requests: HashMap<OutboundRequestId, Token>,
    pub(super) sync_requests: HashMap<OutboundRequestId, Asker>,
    /// The core's log requests out.
    pub(super) log_requests: HashMap<OutboundRequestId, Token>,
    /// Readers' log requests held at the end of the log.
    pub(super) held_logs: super::logserve::Held,
    /// The name of the store's log, and where it ends.
    pub(super) log_id: [u8; 16],
    pub(super) log_end: u64,
    outbox: Outbox,
    pub(super) topics: HashSet<TopicHash>,
    /// Topics each connected peer is recorded on, to tell when one
    /// reaches the bound of [`super::topics`].
    pub(super) peer_topics: HashMap<PeerId, usize>,
    /// The topics gossipsub lets in: the ones subscribed to.
    followed: Followed,
    pub(super) rejected: u64,
    pub(super) served_chunks: u64,
    /// Gossipsub's own counters (received messages with and without
    /// duplicates, among others) and the node's, in one registry.
    pub(super) registry: prometheus_client::registry::Registry,
    /// Catch-up traffic, counted by the codec.
    pub(super) sync_counters: Arc<wire::SyncCounters>,
    /// Log traffic, counted by the codec.
    pub(super) log_counters: Arc<wire::SyncCounters>,
    pub(super) metrics: metrics::Metrics,
    pub(super) discovery: DiscoveryState,
    /// The mirrors the node dials by its own choice, and when.
    pub(super) book: super::book::Book,
    pub(super) book_times: super::redial::BookTimes,
    pub(super) reports: Reports,
    /// When retention and quotas were last applied on the tick.
    last_limits: Option<Instant>,
    /// Revocations made here waiting for the store to say what they removed.
    pub(super) revokes: HashMap<(PublicKey, PublicKey), oneshot::Sender<Result<usize, NetError>>>,
}

impl Actor {
    /// Builds the swarm and the store thread, listens, subscribes and dials:
    /// everything but running the loop.
    pub(super) async fn start(
        config: NetConfig,
        keypair: libp2p::identity::Keypair,
        store: Arc<Store>,
        policy: TrustPolicy,
        commands: mpsc::Receiver<Command>,
        events: broadcast::Sender<NodeEvent>,
    ) -> Result<Actor, NetError> {
        let mut registry = prometheus_client::registry::Registry::default();
        let sync_codec = SyncCodec::default();
        let sync_counters = sync_codec.counters.clone();
        let log_codec = wire::LogCodec::default();
        let log_counters = log_codec.counters.clone();
        let followed = Followed::default();
        let own_metrics = metrics::Metrics::default();
        let mut swarm = build_swarm(
            keypair,
            &config,
            &mut registry,
            sync_codec,
            log_codec,
            own_metrics.subscriptions_dropped.clone(),
            followed.clone(),
        )
        .await?;
        own_metrics.register(&mut registry);
        own_metrics.register_unfollowed(&mut registry, followed.dropped.clone());
        if !config.role().serves() {
            if !config.relays.is_empty() {
                return Err(NetError::QuietReachable("a relay (relays, --relay)"));
            }
            if !config.external_addresses.is_empty() {
                return Err(NetError::QuietReachable(
                    "an address to announce (external_addresses, --external)",
                ));
            }
        }
        let listen = config.listen_addresses();
        // Every port checked before any is taken: a node's own IPv4
        // listener would otherwise fail the check of a dual-stack IPv6
        // address on the same port.
        for addr in &listen {
            let ma: Multiaddr = addr
                .parse()
                .map_err(|_| NetError::BadAddress(addr.clone()))?;
            check_port_free(addr, &ma)?;
        }
        for addr in &listen {
            let ma: Multiaddr = addr
                .parse()
                .map_err(|_| NetError::BadAddress(addr.clone()))?;
            swarm.listen_on(ma).map_err(|e| NetError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        }
        // What the store holds, read before the loop starts, off the
        // runtime's threads.
        let publishers: Vec<PublicKey> = policy.publishers().map(|(k, _)| *k).collect();
        let reader = store.clone();
        let (ranges, log_id, log_end, cursors, lists, book) =
            tokio::task::spawn_blocking(move || {
                // A book that cannot be read costs the mirrors it remembered,
                // never the start.
                let book = reader.address_book().unwrap_or_else(|e| {
                    warn!("cannot read the saved address book: {e}");
                    None
                });
                Ok::<_, crate::store::StoreError>((
                    worker::ranges_of(&reader, publishers)?,
                    reader.log_id()?,
                    reader.log_end()?,
                    reader.log_cursors()?,
                    reader.mirror_lists()?,
                    book,
                ))
            })
            .await
            .map_err(|e| NetError::Setup(format!("reading the store: {e}")))??;
        let (jobs, done) = worker::spawn(store)?;
        let origin = Instant::now();
        let core = Config {
            // A request the transport has not timed out is not stalled yet.
            fetch: FetchLimits::shared(
                config.max_fetches,
                config.max_requests_per_peer,
                Duration::from_secs(config.fetch_deadline_secs),
                Duration::from_secs(config.request_timeout_secs.max(1)),
            ),
            sync_interval: Duration::from_secs(config.sync_interval_secs),
            upload_rate: config.max_upload_bytes_per_sec,
            download_rate: config.max_download_bytes_per_sec,
            serve_rate: config.max_upload_bytes_per_peer_per_sec,
            role: config.role(),
            large_budget: config.large_story_budget_bytes_per_day,
        };
        let mut state = State::new(core, policy, Time::ZERO);
        for (p, held, known) in ranges {
            state.set_ranges(p, held, known);
        }
        // The stored lists, as the core's policy verifies them now: the
        // newest known of each publisher, to pass on and to compare with.
        let wall = Timestamp::from_system(std::time::SystemTime::now());
        let mut listed = Vec::new();
        for (_, bytes) in lists {
            if let Ok(list) = state.policy().verify_mirror_list(&bytes, wall) {
                listed.extend(list_addresses(&list));
                state.know_mirror_list(list);
            }
        }
        for (mirror, log, next, trust) in cursors {
            if let Ok(peer) = PeerId::from_bytes(&mirror) {
                let cursor = crate::sync::Cursor { log, next, trust };
                state.set_cursor(peer, cursor, Time::ZERO);
            }
        }
        let mut actor = Actor {
            swarm,
            state,
            config: config.clone(),
            origin,
            commands,
            events,
            jobs,
            done,
            backlog: VecDeque::new(),
            fetch_requests: HashMap::new(),
            sync_requests: HashMap::new(),
            log_requests: HashMap::new(),
            held_logs: Default::default(),
            log_id,
            log_end,
            outbox: Outbox::default(),
            topics: HashSet::new(),
            peer_topics: HashMap::new(),
            followed,
            rejected: 0,
            served_chunks: 0,
            registry,
            sync_counters,
            log_counters,
            metrics: own_metrics,
            discovery: DiscoveryState::default(),
            book: super::redial::start_book(book),
            book_times: Default::default(),
            reports: Reports::default(),
            last_limits: None,
            revokes: HashMap::new(),
        };
        for addr in &config.external_addresses {
            let ma: Multiaddr = addr
                .parse()
                .map_err(|_| NetError::BadAddress(addr.clone()))?;
            actor.swarm.add_external_address(ma);
        }
        actor.listen_via_relays();
        // Mirrors the stored signed lists name: dialed by the book with
        // the others, best first.
        actor.learn(&listed, super::book::Source::MirrorList);
        let publishers: Vec<PublicKey> =
            actor.state.policy().publishers().map(|(k, _)| *k).collect();
        for p in publishers {
            actor.subscribe(&p);
        }
        for peer in super::swarm::exempt_peers(&config) {
            actor.discovery.choose(peer);
        }
        for addr in &config.bootstrap {
            let ma: Multiaddr = addr
                .parse()
                .map_err(|_| NetError::BadAddress(addr.clone()))?;
            if !super::transport::names_a_peer(&ma) {
                return Err(NetError::NoPeerId(addr.clone()));
            }
            actor.discovery.choose_address(&ma);
            let peer = actor.book_bootstrap(&ma);
            if let Err(e) = actor.swarm.dial(ma) {
                warn!("cannot dial bootstrap peer {addr}: {e}");
                // Dialed again from the book, after a back-off.
                if let Some(peer) = peer {
                    actor.book_dial_failed(&peer);
                }
            }
        }
        Ok(actor)
    }

    /// The time now, for the core: the one place the network reads a clock.
    pub(super) fn now(&self) -> Now {
        Now {
            at: Time::after(self.origin.elapsed()),
            wall: Timestamp::from_system(std::time::SystemTime::now()),
        }
    }

    pub(super) fn emit(&self, e: NodeEvent) {
        let _ = self.events.send(e);
    }

    pub(super) fn is_banned(&self, peer: &PeerId) -> bool {
        self.state.is_banned(peer, self.now().at)
    }

    /// Runs the loop until shutdown or the last handle is dropped.
    pub(super) async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd),
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                Some(done) = self.done.recv() => self.store_done(done),
                event = futures::StreamExt::select_next_some(&mut self.swarm) => self.swarm_event(event),
                _ = tick.tick() => self.tick(),
            }
            self.execute();
        }
    }

    /// Drops the fetches; waits for the store thread to finish what it was
    /// given and flush.
    async fn shutdown(&mut self) {
        let dropped = self.state.shutdown();
        while let Some(job) = self.backlog.pop_front() {
            if self.jobs.send(job).await.is_err() {
                break;
            }
        }
        if let Some(book) = self.book_to_save() {
            let _ = self.jobs.send(Job::SaveBook(book)).await;
        }
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Flush(tx)).await.is_ok() {
            // Results that come back meanwhile are not waited for.
            let drain = async {
                loop {
                    if self.done.recv().await.is_none() {
                        break;
                    }
                }
            };
            tokio::select! {
                _ = rx => {}
                _ = drain => {}
            }
        }
        info!(dropped_fetches = dropped, "node stopped");
    }

    // ---- store jobs ----

    /// Hands a job of the node's own to the store thread, or keeps it for
    /// later when the queue is full.
    pub(super) fn job(&mut self, job: Job) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(job);
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(job)) = self.jobs.try_send(job) {
            self.backlog.push_back(job);
        }
    }

    /// Hands a peer's request to the store thread; gives it back when the
    /// queue is full, for the caller to refuse.
    pub(super) fn peer_job(&mut self, job: Job) -> Option<Job> {
        match self.jobs.try_send(job) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
                Some(job)
            }
        }
    }

    fn drain_backlog(&mut self) {
        while let Some(job) = self.backlog.pop_front() {
            match self.jobs.try_send(job) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(job)) => {
                    self.backlog.push_front(job);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.backlog.clear();
                    return;
                }
            }
        }
    }

    // ---- the core's actions ----

    /// Carries out what the core decided.
    pub(super) fn execute(&mut self) {
        while let Some(action) = self.state.poll_action() {
            match action {
                Action::Fetch {
                    peer,
                    token,
                    request,
                } => {
                    let rid = self
                        .swarm
                        .behaviour_mut()
                        .fetch
                        .send_request(&peer, request);
                    self.fetch_requests.insert(rid, token);
                }
                Action::Sync {
                    peer,
                    token,
                    request,
                } => {
                    let rid = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                    self.sync_requests.insert(rid, Asker::Core(token));
                }
                Action::Log {
                    peer,
                    token,
                    request,
                } => self.ask_log(peer, token, request),
                Action::Cursor { peer, cursor } => self.save_cursor(peer, cursor),
                Action::Verdict { origin, verdict } => self.report(origin, verdict),
                Action::Refused { peer, refusal } => {
                    self.rejected += 1;
                    self.noted(peer, refusal);
                }
                Action::Noted { peer, refusal } => self.noted(peer, refusal),
                Action::Reconnect { peer } => self.reconnect(peer),
                Action::Ban { peer, refusal } => {
                    self.rejected += 1;
                    let _ = self.swarm.disconnect_peer_id(peer);
                    self.noted(peer, refusal);
                }
                Action::Received(bytes) => {
                    self.metrics.fetched_bytes.inc_by(bytes);
                }
                Action::Store { manifest, blobs } => self.job(Job::Store { manifest, blobs }),
                Action::StoreBatch { bundles } => self.job(Job::StoreBatch { bundles }),
                Action::Record(r) => {
                    // A newer mirror list's mirrors go into the book.
                    if let crate::sync::Record::MirrorList(l) = &r {
                        let addrs = list_addresses(l);
                        self.learn(&addrs, super::book::Source::MirrorList);
                    }
                    self.job(Job::Record(r))
                }
                Action::Head {
                    publisher,
                    sequence,
                } => self.emit(NodeEvent::Head {
                    publisher,
                    sequence,
                }),
            }
        }
        self.drain_backlog();
    }

    fn noted(&mut self, peer: PeerId, refusal: Refusal) {
        self.metrics.reject(refusal.kind);
        self.emit(NodeEvent::Rejected {
            peer,
            reason: refusal.text,
        });
    }

    fn report(&mut self, origin: GossipOrigin, verdict: Verdict) {
        let acceptance = match verdict {
            Verdict::Accept => MessageAcceptance::Accept,
            Verdict::Ignore => MessageAcceptance::Ignore,
            Verdict::Reject => MessageAcceptance::Reject,
        };
        let delivered = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&origin.message, &origin.source, acceptance);
        if !delivered && verdict == Verdict::Accept {
            debug!("a validated message had left the cache before it could be forwarded");
        }
    }

    /// A fetch request was answered or failed.
    pub(super) fn fetch_response(
        &mut self,
        rid: OutboundRequestId,
        response: Result<wire::FetchResponse, String>,
    ) {
        if let Some(token) = self.fetch_requests.remove(&rid) {
            let now = self.now();
            self.state.fetch_response(token, response, now);
        }
    }

    // ---- topics and announcements ----

    pub(super) fn subscribe(&mut self, publisher: &PublicKey) {
        // A topic is named after its publisher: a quiet reader subscribes
        // to none, and learns from mirrors' logs instead.
        if !self.config.role().serves() {
            return;
        }
        let topic = IdentTopic::new(wire::topic_name(publisher));
        let gs = &mut self.swarm.behaviour_mut().gossipsub;
        // Refused messages on a topic cost their sender: the P4 penalty.
        let params = gossipsub::TopicScoreParams {
            invalid_message_deliveries_weight: -100.0,
            invalid_message_deliveries_decay: 0.9,
            ..Default::default()
        };
        if let Err(e) = gs.set_topic_params(topic.clone(), params) {
            warn!("topic score parameters refused: {e}");
        }
        // Let the topic in before subscribing, so nothing a peer sends on
        // it as soon as it hears of the subscription is dropped.
        self.followed.follow(topic.hash());
        match gs.subscribe(&topic) {
            Ok(_) => {
                self.topics.insert(topic.hash());
            }
            Err(e) => {
                if !self.topics.contains(&topic.hash()) {
                    self.followed.unfollow(&topic.hash());
                }
                // The topic names the publisher's key: at debug only.
                warn!("cannot subscribe to a publisher's topic: {e}");
                debug!("cannot subscribe to {topic}: {e}")
            }
        }
    }

    pub(super) fn untrust(&mut self, publisher: &PublicKey) -> bool {
        let was = self.state.untrust(publisher);
        let topic = IdentTopic::new(wire::topic_name(publisher));
        if self.swarm.behaviour_mut().gossipsub.unsubscribe(&topic) {
            self.topics.remove(&topic.hash());
        }
        self.followed.unfollow(&topic.hash());
        if was {
            debug!(publisher = %publisher, "no longer trusted or carried");
        }
        was
    }

    pub(super) fn announce(&mut self, publisher: &PublicKey, a: Announcement) {
        self.queue_announcement(publisher, a);
        self.flush_outbox();
    }

    /// Queues an announcement without publishing: many at once (an
    /// import's) are queued, then flushed once, since every flush tries
    /// again all that wait for a peer.
    pub(super) fn queue_announcement(&mut self, publisher: &PublicKey, a: Announcement) {
        let now = self.now().at;
        if !self
            .outbox
            .push(wire::topic_name(publisher), a.encode(), now)
        {
            warn!("announcement queue full; dropped the oldest (catch-up will carry it)");
        }
    }

    /// Publishes what waits; an announcement with no subscribed peer yet
    /// waits for one.
    pub(super) fn flush_outbox(&mut self) {
        let now = self.now().at;
        let gs = &mut self.swarm.behaviour_mut().gossipsub;
        self.outbox.flush(now, |topic, data| {
            match gs.publish(IdentTopic::new(topic), data.to_vec()) {
                Ok(_) | Err(gossipsub::PublishError::Duplicate) => Sent::Done,
                Err(gossipsub::PublishError::NoPeersSubscribedToTopic)
                | Err(gossipsub::PublishError::AllQueuesFull(_)) => Sent::Later,
                Err(e) => {
                    warn!("cannot publish on a publisher's topic: {e}");
                    debug!("cannot publish on {topic}: {e}");
                    Sent::Failed
                }
            }
        });
    }

    // ---- time ----

    fn tick(&mut self) {
        self.flush_outbox();
        // Retention and quotas also on a quiet node, and after a change of
        // settings: once a minute (and at the first tick).
        if self
            .last_limits
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            self.last_limits = Some(Instant::now());
            self.job(Job::Limits);
        }
        let now = self.now();
        self.state.tick(now);
        self.log_tick();
        self.discovery_tick();
        self.book_tick();
        self.finish_reports(true);
    }
}

/// The libp2p addresses of a verified mirror list that parse.
pub(super) fn list_addresses(list: &crate::proto::MirrorList) -> Vec<Multiaddr> {
    list.libp2p.iter().filter_map(|a| a.parse().ok()).collect()
}

/// Fails when the fixed port `ma` names is taken. libp2p's TCP listeners
/// set `SO_REUSEPORT` (so that dials can leave from the listening port),
/// and a second node listening on the same port then starts too, the
/// kernel sharing the connections out between the two; and a port held by
/// another program fails only later, in an event. A plain bind, which
/// sets no `SO_REUSEPORT`, finds both before anything starts.
fn check_port_free(addr: &str, ma: &Multiaddr) -> Result<(), NetError> {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    let mut port = None;
    for p in ma.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(n) if port.is_none() => port = Some(("TCP", n)),
            Protocol::Udp(n) if port.is_none() => port = Some(("UDP", n)),
            _ => {}
        }
    }
    let (Some(ip), Some((transport, n))) = (ip, port) else {
        return Ok(());
    };
    if n == 0 {
        return Ok(());
    }
    let at = std::net::SocketAddr::new(ip, n);
    let bound = if transport == "TCP" {
        std::net::TcpListener::bind(at).map(drop)
    } else {
        std::net::UdpSocket::bind(at).map(drop)
    };
    match bound {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(NetError::PortInUse {
            addr: addr.to_owned(),
            transport,
            port: n,
        }),
        // Any other refusal (an address not on this machine) is libp2p's
        // to report, as before.
        _ => Ok(()),
    }
}
