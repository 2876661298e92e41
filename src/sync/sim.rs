//! A deterministic simulation of many nodes running the core, for tests and
//! benchmarks: no runtime, no sockets, virtual time, seeded randomness.
//!
//! Each node is a [`State`] with a small in-memory store. Links carry
//! messages with a random latency; gossip is flooded along links (each node
//! forwards what it accepted to its other neighbours, once), fetches and
//! catch-up requests are answered from the peer's store. A newsroom node
//! publishes stories one after another; some nodes join late and must
//! catch up; liars answer requests falsely (tampered blobs, summaries out
//! of order, bundles not asked for). The report says who got what and who
//! was banned.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::fetch::FetchLimits;
use super::messages::{
    Announcement, FetchRequest, FetchResponse, SyncBundle, SyncRequest, SyncResponse, topic_name,
};
use super::{Action, Config, Now, Origin, Packer, State, Stored, Time, Token, Verdict};
use crate::proto::{
    BODY_MEDIA_TYPE, BODY_PATH, BlobHash, BundleId, Entry, FORMAT_VERSION, Head, KeyCertificate,
    Kind, Manifest, Metadata, PublicKey, Scope, SecretKey, StoryId, Timestamp, TrustPolicy,
    VerifiedBundle,
};

/// How a liar lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lie {
    /// Serves every blob with one byte flipped.
    TamperedBlob,
    /// Answers summaries with ranges out of order.
    FalseSummary,
    /// Answers bundles requests with a bundle not asked for.
    Unasked,
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Nodes in all, the newsroom and liars included.
    pub nodes: usize,
    /// Liars among them, each lying in one of the three ways in turn.
    pub liars: usize,
    /// Links each node makes to random others (beyond a ring that keeps
    /// the honest nodes connected).
    pub degree: usize,
    /// Stories the newsroom publishes.
    pub stories: u64,
    /// Nodes (honest) that join only after the newsroom has published.
    pub late: usize,
    /// Bytes of each story's body; every fifth story also has an image
    /// too large to travel inline.
    pub body_bytes: usize,
    /// One-way latency of a link, at least and at most.
    pub latency_ms: (u64, u64),
    /// How long the simulation may run, in virtual time.
    pub limit: Duration,
    /// The seed of every random choice.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nodes: 200,
            liars: 20,
            degree: 4,
            stories: 20,
            late: 20,
            body_bytes: 2048,
            latency_ms: (5, 60),
            limit: Duration::from_secs(120),
            seed: 1,
        }
    }
}

/// What happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    /// Nodes simulated.
    pub nodes: usize,
    /// Honest nodes (the newsroom included).
    pub honest: usize,
    /// Honest nodes that hold every story.
    pub complete: usize,
    /// Stories held by honest nodes, summed (the best is honest × stories).
    pub delivered: u64,
    /// Messages sent in all (gossip, requests and responses).
    pub messages: u64,
    /// Bytes of those messages' payloads.
    pub bytes: u64,
    /// Bans by honest nodes of liars.
    pub liar_bans: usize,
    /// Liars banned by at least one honest node.
    pub liars_banned: usize,
    /// Bans by honest nodes of honest nodes (should be none).
    pub honest_bans: usize,
    /// Virtual time when the last honest node held every story (or the
    /// limit, if not all did).
    pub settled: Duration,
    /// Events processed.
    pub steps: u64,
}

type Node = u32;

/// A node's store: bundles by id and by sequence number, blobs by hash.
#[derive(Default)]
struct SimStore {
    manifests: HashMap<BundleId, Vec<u8>>,
    by_seq: BTreeMap<u64, BundleId>,
    blobs: HashMap<BlobHash, Vec<u8>>,
    manifest_of: HashMap<BundleId, Manifest>,
}

impl SimStore {
    fn put(&mut self, b: &VerifiedBundle) -> bool {
        let m = b.manifest();
        if self.manifests.contains_key(&b.id()) || self.by_seq.contains_key(&m.sequence) {
            return false;
        }
        self.manifests.insert(b.id(), m.bytes().to_vec());
        self.manifest_of.insert(b.id(), m.value().clone());
        self.by_seq.insert(m.sequence, b.id());
        for (e, bytes) in b.blobs() {
            self.blobs.insert(e.hash, bytes.to_vec());
        }
        true
    }
}

struct SimNode {
    state: State<Node, u64>,
    store: SimStore,
    lie: Option<Lie>,
    links: BTreeSet<Node>,
    seen: HashSet<u64>,
    /// Gossip messages waiting for a verdict, with their bytes.
    pending: HashMap<u64, (Arc<Vec<u8>>, String)>,
}

enum Ev {
    Tick(Node),
    Link(Node, Node),
    Publish(u64),
    Gossip {
        to: Node,
        from: Node,
        id: u64,
        topic: String,
        data: Arc<Vec<u8>>,
    },
    FetchReq {
        to: Node,
        from: Node,
        token: Token,
        request: FetchRequest,
    },
    FetchResp {
        to: Node,
        token: Token,
        response: Result<FetchResponse, String>,
    },
    SyncReq {
        to: Node,
        from: Node,
        token: Token,
        request: SyncRequest,
    },
    SyncResp {
        to: Node,
        token: Token,
        response: Result<SyncResponse, String>,
    },
}

/// The newsroom's signed objects.
struct Newsroom {
    root: PublicKey,
    cert: Vec<u8>,
    bundles: Vec<(VerifiedBundle, Vec<u8>)>,
}

const T0: Timestamp = Timestamp(1_750_000_000);
const TICK: Duration = Duration::from_millis(250);

fn newsroom(stories: u64, body_bytes: usize, rng: &mut StdRng) -> Option<Newsroom> {
    let root = SecretKey::from_seed(&[1; 32]);
    let signing = SecretKey::from_seed(&[2; 32]);
    let cert = KeyCertificate {
        format: FORMAT_VERSION,
        publisher: root.public(),
        signing_key: signing.public(),
        serial: 1,
        not_before: T0,
        not_after: T0.plus(365 * 86_400),
        scope: Scope::default(),
    }
    .sign(&root)
    .ok()?;
    let mut policy = TrustPolicy::new();
    policy.trust(root.public(), "sim").ok()?;
    policy.learn_certificate(&cert).ok()?;
    let mut bundles = Vec::new();
    for seq in 1..=stories {
        let mut blobs = vec![
            (0..body_bytes)
                .map(|_| rng.r#gen::<u8>())
                .collect::<Vec<u8>>(),
        ];
        if seq % 5 == 0 {
            blobs.push((0..300 * 1024).map(|i| (i as u64 * seq) as u8).collect());
        }
        let entries = blobs
            .iter()
            .enumerate()
            .map(|(i, b)| Entry {
                path: if i == 0 {
                    BODY_PATH.into()
                } else {
                    format!("img{i}.jpg")
                },
                media_type: if i == 0 {
                    BODY_MEDIA_TYPE.into()
                } else {
                    "image/jpeg".into()
                },
                size: b.len() as u64,
                hash: BlobHash::of(b),
            })
            .collect();
        let signed_at = T0.plus(60 + seq);
        let manifest = Manifest {
            format: FORMAT_VERSION,
            publisher: root.public(),
            certificate: crate::proto::CertId::of(&cert),
            story: StoryId([seq as u8; 16]),
            version: 1,
            kind: Kind::Story,
            sequence: seq,
            supersedes: None,
            signed_at,
            metadata: Metadata {
                title: format!("Story {seq}"),
                language: "en".into(),
                authors: vec![],
                section: None,
                published: signed_at,
                updated: None,
                original_url: None,
                summary: None,
            },
            entries,
        }
        .sign(&signing)
        .ok()?;
        let head = Head {
            format: FORMAT_VERSION,
            publisher: root.public(),
            certificate: crate::proto::CertId::of(&cert),
            sequence: seq,
            issued_at: signed_at,
            expires_at: signed_at.plus(7 * 86_400),
        }
        .sign(&signing)
        .ok()?;
        let m = policy.verify_manifest(&manifest, T0.plus(86_400)).ok()?;
        let b = policy.verify_bundle(m, blobs).ok()?;
        bundles.push((b, head));
    }
    Some(Newsroom {
        root: root.public(),
        cert,
        bundles,
    })
}

/// The simulation.
pub struct Sim {
    config: SimConfig,
    rng: StdRng,
    nodes: Vec<SimNode>,
    newsroom: Newsroom,
    queue: BinaryHeap<Reverse<(Time, u64)>>,
    events: HashMap<u64, Ev>,
    next: u64,
    now: Time,
    report: SimReport,
    late: BTreeSet<Node>,
}

impl Sim {
    /// Sets up the nodes and their links; `None` if the newsroom's objects
    /// could not be signed.
    pub fn new(config: SimConfig) -> Option<Self> {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let newsroom = newsroom(config.stories, config.body_bytes, &mut rng)?;
        let core = Config {
            fetch: FetchLimits {
                max_fetches: 64,
                max_requests_per_peer: 16,
                deadline: Duration::from_secs(30),
            },
            sync_interval: Duration::from_secs(5),
            upload_rate: None,
            download_rate: None,
        };
        let n = config.nodes.max(2);
        let liars = config.liars.min(n - 1);
        // Liars are spread over the numbers; node 0 is the newsroom.
        let liar_at: BTreeSet<usize> = (0..liars).map(|i| 1 + i * (n - 1) / liars.max(1)).collect();
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let mut policy = TrustPolicy::new();
            policy.trust(newsroom.root, "sim").ok()?;
            let lie = liar_at
                .contains(&i)
                .then(|| [Lie::TamperedBlob, Lie::FalseSummary, Lie::Unasked][nodes.len() % 3]);
            nodes.push(SimNode {
                state: State::new(core.clone(), policy, Time::ZERO),
                store: SimStore::default(),
                lie,
                links: BTreeSet::new(),
                seen: HashSet::new(),
                pending: HashMap::new(),
            });
        }
        let honest: Vec<Node> = (0..n as Node)
            .filter(|i| nodes[*i as usize].lie.is_none())
            .collect();
        // The late joiners: honest, not the newsroom.
        let late: BTreeSet<Node> = honest
            .iter()
            .rev()
            .take(config.late.min(honest.len().saturating_sub(1)))
            .copied()
            .collect();
        let mut sim = Sim {
            report: SimReport {
                nodes: n,
                honest: honest.len(),
                ..SimReport::default()
            },
            config,
            rng,
            nodes,
            newsroom,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            next: 0,
            now: Time::ZERO,
            late,
        };
        // A ring over the honest nodes keeps them connected whatever the
        // liars do; random links on top.
        let mut links = BTreeSet::new();
        for w in honest.windows(2) {
            links.insert((w[0].min(w[1]), w[0].max(w[1])));
        }
        for i in 0..n as Node {
            for _ in 0..sim.config.degree / 2 {
                let j = sim.rng.gen_range(0..n as Node);
                if j != i {
                    links.insert((i.min(j), i.max(j)));
                }
            }
        }
        let join = Duration::from_millis(100 * sim.config.stories + 2000);
        for (a, b) in links {
            let late = sim.late.contains(&a) || sim.late.contains(&b);
            let at = if late {
                join
            } else {
                Duration::from_millis(sim.rng.gen_range(0..50))
            };
            sim.at(Time::after(at), Ev::Link(a, b));
        }
        // The newsroom holds what it publishes.
        for (b, _) in &sim.newsroom.bundles {
            sim.nodes[0].store.put(b);
        }
        let cert = sim.newsroom.cert.clone();
        let _ = sim.nodes[0].state.learn_certificate(&cert);
        for i in 0..sim.config.stories {
            sim.at(Time::from_millis(200 + 100 * i), Ev::Publish(i));
        }
        for i in 0..n as Node {
            let t = Time::from_millis(sim.rng.gen_range(0..250));
            sim.at(t, Ev::Tick(i));
        }
        Some(sim)
    }

    fn at(&mut self, t: Time, ev: Ev) {
        self.next += 1;
        self.queue.push(Reverse((t, self.next)));
        self.events.insert(self.next, ev);
    }

    fn later(&mut self, ev: Ev, bytes: usize) {
        let (lo, hi) = self.config.latency_ms;
        let d = self.rng.gen_range(lo..=hi.max(lo));
        self.report.messages += 1;
        self.report.bytes += bytes as u64;
        let t = self.now + Duration::from_millis(d);
        self.at(t, ev);
    }

    fn wall(&self) -> Timestamp {
        T0.plus(86_400 + self.now.since_origin().as_secs())
    }

    fn stamp(&self) -> Now {
        Now {
            at: self.now,
            wall: self.wall(),
        }
    }

    fn linked(&self, a: Node, b: Node) -> bool {
        self.nodes[a as usize].links.contains(&b)
    }

    fn held(&self, i: usize) -> u64 {
        self.nodes[i].store.by_seq.len() as u64
    }

    fn event(&mut self, ev: Ev) {
        match ev {
            Ev::Tick(i) => {
                let now = self.stamp();
                self.nodes[i as usize].state.tick(now);
                self.drive(i);
                self.at(self.now + TICK, Ev::Tick(i));
            }
            Ev::Link(a, b) => {
                if a == b || self.linked(a, b) {
                    return;
                }
                let now = self.stamp();
                let a_ok = !self.nodes[a as usize].state.is_banned(&b, now.at);
                let b_ok = !self.nodes[b as usize].state.is_banned(&a, now.at);
                if !(a_ok && b_ok) {
                    return;
                }
                self.nodes[a as usize].links.insert(b);
                self.nodes[b as usize].links.insert(a);
                self.nodes[a as usize].state.peer_up(b, now);
                self.nodes[b as usize].state.peer_up(a, now);
                self.drive(a);
                self.drive(b);
            }
            Ev::Publish(i) => self.publish(i),
            Ev::Gossip {
                to,
                from,
                id,
                topic,
                data,
            } => {
                if !self.linked(to, from) || !self.nodes[to as usize].seen.insert(id) {
                    return;
                }
                let now = self.stamp();
                let node = &mut self.nodes[to as usize];
                node.pending.insert(id, (data.clone(), topic.clone()));
                node.state.gossip(
                    Origin {
                        message: id,
                        source: from,
                    },
                    &topic,
                    &data,
                    now,
                );
                self.drive(to);
            }
            Ev::FetchReq {
                to,
                from,
                token,
                request,
            } => {
                let response = if self.linked(to, from) {
                    Ok(self.serve_blob(to, request))
                } else {
                    Err("closed".to_owned())
                };
                let bytes = match &response {
                    Ok(FetchResponse::Chunk { data, .. }) => data.len(),
                    _ => 8,
                };
                self.later(
                    Ev::FetchResp {
                        to: from,
                        token,
                        response,
                    },
                    bytes,
                );
            }
            Ev::FetchResp {
                to,
                token,
                response,
            } => {
                let now = self.stamp();
                self.nodes[to as usize]
                    .state
                    .fetch_response(token, response, now);
                self.drive(to);
            }
            Ev::SyncReq {
                to,
                from,
                token,
                request,
            } => {
                let response = if self.linked(to, from) {
                    Ok(self.serve_sync(to, from, request))
                } else {
                    Err("closed".to_owned())
                };
                let bytes = response
                    .as_ref()
                    .map_or(8, |r| postcard::to_allocvec(r).map_or(0, |v| v.len()));
                self.later(
                    Ev::SyncResp {
                        to: from,
                        token,
                        response,
                    },
                    bytes,
                );
            }
            Ev::SyncResp {
                to,
                token,
                response,
            } => {
                let now = self.stamp();
                self.nodes[to as usize]
                    .state
                    .sync_response(token, response, false, now);
                self.drive(to);
            }
        }
    }

    /// The newsroom announces a story and its head to its neighbours.
    fn publish(&mut self, i: u64) {
        let Some((bundle, head)) = self.newsroom.bundles.get(i as usize) else {
            return;
        };
        let (bundle, head) = (bundle.clone(), head.clone());
        let topic = topic_name(&self.newsroom.root);
        let now = self.stamp();
        if let Ok(h) = self.nodes[0].state.policy().verify_head(&head, now.wall) {
            self.nodes[0].state.accept_head(h);
        }
        let seq = bundle.manifest().sequence;
        self.nodes[0]
            .state
            .stored_batch(&[(self.newsroom.root, seq, bundle.id())], now);
        let cert = self.newsroom.cert.clone();
        for a in [
            Announcement::Bundle {
                certificate: cert.clone(),
                manifest: bundle.manifest().bytes().to_vec(),
            },
            Announcement::Head {
                certificate: cert,
                head,
            },
        ] {
            let data = Arc::new(a.encode());
            let id = message_id(&data);
            self.nodes[0].seen.insert(id);
            self.flood(0, None, id, &topic, data);
        }
        self.drive(0);
    }

    fn flood(
        &mut self,
        from: Node,
        except: Option<Node>,
        id: u64,
        topic: &str,
        data: Arc<Vec<u8>>,
    ) {
        let links: Vec<Node> = self.nodes[from as usize].links.iter().copied().collect();
        for to in links {
            if Some(to) != except {
                let bytes = data.len();
                self.later(
                    Ev::Gossip {
                        to,
                        from,
                        id,
                        topic: topic.to_owned(),
                        data: data.clone(),
                    },
                    bytes,
                );
            }
        }
    }

    fn serve_blob(&self, at: Node, request: FetchRequest) -> FetchResponse {
        let FetchRequest::Blob { hash, offset } = request;
        let node = &self.nodes[at as usize];
        let Some(blob) = node.store.blobs.get(&hash) else {
            return FetchResponse::NotFound;
        };
        let start = (offset as usize).min(blob.len());
        let end = (start + super::messages::CHUNK as usize).min(blob.len());
        let mut data = blob[start..end].to_vec();
        if node.lie == Some(Lie::TamperedBlob)
            && let Some(b) = data.first_mut()
        {
            *b ^= 0xff;
        }
        FetchResponse::Chunk {
            total: blob.len() as u64,
            offset: start as u64,
            data,
        }
    }

    fn serve_sync(&mut self, at: Node, from: Node, request: SyncRequest) -> SyncResponse {
        let now = self.stamp();
        let lie = self.nodes[at as usize].lie;
        let node = &mut self.nodes[at as usize];
        match request {
            SyncRequest::Summary { publishers } => {
                let mut r = node.state.serve_summary(from, &publishers, now);
                if lie == Some(Lie::FalseSummary)
                    && let SyncResponse::Summary { publishers } = &mut r
                {
                    for p in publishers.iter_mut() {
                        p.ranges = Some(vec![(5, 9), (1, 3)]);
                    }
                }
                r
            }
            SyncRequest::Bundles {
                publisher,
                sequences,
            } => {
                let plan = match node.state.plan_bundles(from, publisher, sequences, now.at) {
                    Ok(p) => p,
                    Err(r) => return r,
                };
                let mut packer = Packer::new(plan.budget);
                for &seq in &plan.sequences {
                    let Some(id) = node.store.by_seq.get(&seq) else {
                        continue;
                    };
                    let (Some(bytes), Some(m)) =
                        (node.store.manifests.get(id), node.store.manifest_of.get(id))
                    else {
                        continue;
                    };
                    let blob_bytes: u64 = m.entries.iter().map(|e| e.size).sum();
                    if !packer.fits(seq, bytes.len(), blob_bytes) {
                        break;
                    }
                    let blobs = Packer::inline(blob_bytes).then(|| {
                        m.entries
                            .iter()
                            .filter_map(|e| node.store.blobs.get(&e.hash).cloned())
                            .collect()
                    });
                    let cert = plan
                        .certificates
                        .get(&m.certificate)
                        .map(|c| (m.certificate, c.as_slice()));
                    packer.push(bytes.clone(), blob_bytes, cert, blobs);
                }
                let mut r = packer.finish();
                if lie == Some(Lie::Unasked)
                    && let SyncResponse::Bundles { bundles, .. } = &mut r
                    && let Some((_, id)) = node.store.by_seq.iter().next_back()
                    && let Some(bytes) = node.store.manifests.get(id)
                {
                    bundles.push(SyncBundle {
                        manifest: bytes.clone(),
                        blobs: None,
                    });
                    // A bundle not asked: the one it holds last, again.
                }
                r
            }
            SyncRequest::Holds { .. } => SyncResponse::Refused,
        }
    }

    /// Carries out a node's actions.
    fn drive(&mut self, i: Node) {
        while let Some(action) = self.nodes[i as usize].state.poll_action() {
            match action {
                Action::Fetch {
                    peer,
                    token,
                    request,
                } => self.later(
                    Ev::FetchReq {
                        to: peer,
                        from: i,
                        token,
                        request,
                    },
                    48,
                ),
                Action::Sync {
                    peer,
                    token,
                    request,
                } => {
                    let bytes = postcard::to_allocvec(&request).map_or(0, |v| v.len());
                    self.later(
                        Ev::SyncReq {
                            to: peer,
                            from: i,
                            token,
                            request,
                        },
                        bytes,
                    );
                }
                Action::Verdict { origin, verdict } => {
                    let pending = self.nodes[i as usize].pending.remove(&origin.message);
                    if verdict == Verdict::Accept
                        && let Some((data, topic)) = pending
                    {
                        self.flood(i, Some(origin.source), origin.message, &topic, data);
                    }
                }
                Action::Ban { peer, .. } => {
                    let banner_honest = self.nodes[i as usize].lie.is_none();
                    if banner_honest {
                        if self.nodes[peer as usize].lie.is_some() {
                            self.report.liar_bans += 1;
                        } else {
                            self.report.honest_bans += 1;
                        }
                    }
                    self.nodes[i as usize].links.remove(&peer);
                    self.nodes[peer as usize].links.remove(&i);
                    self.nodes[i as usize].state.peer_down(&peer);
                    self.nodes[peer as usize].state.peer_down(&i);
                }
                Action::Store {
                    manifest,
                    blobs,
                    origin,
                } => {
                    let (publisher, sequence, id) =
                        (manifest.publisher, manifest.sequence, manifest.id());
                    let result = match TrustPolicy::new().verify_bundle(*manifest, blobs) {
                        Ok(b) if self.nodes[i as usize].store.put(&b) => Stored::New,
                        Ok(_) => Stored::Duplicate,
                        Err(e) => Stored::Failed(e.to_string()),
                    };
                    let now = self.stamp();
                    self.nodes[i as usize]
                        .state
                        .stored(publisher, sequence, id, result, origin, now);
                }
                Action::StoreBatch { bundles } => {
                    let mut stored = Vec::new();
                    for b in &bundles {
                        if self.nodes[i as usize].store.put(b) {
                            let m = b.manifest();
                            stored.push((m.publisher, m.sequence, b.id()));
                        }
                    }
                    let now = self.stamp();
                    self.nodes[i as usize].state.stored_batch(&stored, now);
                }
                Action::Refused { .. }
                | Action::Noted { .. }
                | Action::Received(_)
                | Action::Record(_)
                | Action::Head { .. } => {}
            }
        }
    }
}

fn message_id(data: &[u8]) -> u64 {
    let h = blake3::hash(data);
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(b)
}

/// Runs a simulation; `None` if the newsroom's objects could not be signed.
pub fn run(config: SimConfig) -> Option<SimReport> {
    Some(Sim::new(config)?.run())
}

impl Sim {
    /// Runs until every honest node holds every story, or the limit.
    pub fn run(mut self) -> SimReport {
        let stories = self.config.stories;
        let honest: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].lie.is_none())
            .collect();
        let limit = Time::after(self.config.limit);
        let mut settled = None;
        while let Some(Reverse((t, id))) = self.queue.pop() {
            if t > limit {
                break;
            }
            self.now = t;
            let Some(ev) = self.events.remove(&id) else {
                continue;
            };
            self.report.steps += 1;
            self.event(ev);
            if self.report.steps.is_multiple_of(64)
                && honest.iter().all(|i| self.held(*i) == stories)
            {
                settled = Some(self.now);
                break;
            }
        }
        if settled.is_none() && honest.iter().all(|i| self.held(*i) == stories) {
            settled = Some(self.now);
        }
        let now = self.now;
        self.report.liars_banned = (0..self.nodes.len() as Node)
            .filter(|l| self.nodes[*l as usize].lie.is_some())
            .filter(|l| {
                self.nodes
                    .iter()
                    .filter(|n| n.lie.is_none())
                    .any(|n| n.state.is_banned(l, now))
            })
            .count();
        self.report.settled = settled.unwrap_or(limit).since_origin();
        self.report.complete = honest.iter().filter(|i| self.held(**i) == stories).count();
        self.report.delivered = honest.iter().map(|i| self.held(*i)).sum();
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_hundred_nodes_with_liars_all_get_every_story_and_ban_the_liars() {
        let config = SimConfig::default();
        let r = run(config.clone()).expect("the newsroom signs");
        println!("{r:?}");
        assert_eq!(r.nodes, 200);
        assert_eq!(r.complete, r.honest, "{r:?}");
        assert_eq!(r.delivered, r.honest as u64 * config.stories, "{r:?}");
        assert_eq!(r.honest_bans, 0, "{r:?}");
        assert!(r.liar_bans > 0, "{r:?}");
        assert!(r.liars_banned >= config.liars / 2, "{r:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        let config = SimConfig {
            nodes: 40,
            liars: 6,
            late: 4,
            stories: 8,
            ..SimConfig::default()
        };
        let a = run(config.clone());
        let b = run(config);
        assert_eq!(a, b);
    }
}
