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
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::fetch::FetchLimits;
use super::{Config, Now, State, Time};
use crate::proto::{Timestamp, TrustPolicy};

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
    /// Publication to storage, over every (story, node) pair of the
    /// honest nodes linked from the start: the median.
    pub delay_p50: Duration,
    /// The same, 99th percentile.
    pub delay_p99: Duration,
}

#[cfg(test)]
mod core_tests;
#[cfg(test)]
mod fetch_tests;
#[cfg(test)]
mod follow_tests;
#[cfg(test)]
mod mirror_tests;
mod step;
mod world;

use world::{Ev, Newsroom, Node, SimNode, SimStore, T0, newsroom};

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
    /// When each sequence number was announced.
    published: HashMap<u64, Time>,
    /// Publication to storage at the nodes linked from the start.
    delays: Vec<Duration>,
}

impl Sim {
    /// Sets up the nodes and their links; `None` if the newsroom's objects
    /// could not be signed.
    pub fn new(config: SimConfig) -> Option<Self> {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let newsroom = newsroom(config.stories, config.body_bytes, &mut rng)?;
        let core = Config {
            fetch: FetchLimits::shared(64, 16, Duration::from_secs(30), Duration::from_secs(10)),
            sync_interval: Duration::from_secs(5),
            upload_rate: None,
            download_rate: None,
            serve_rate: None,
            role: crate::sync::Role::Share,
            large_budget: u64::MAX,
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
            published: HashMap::new(),
            delays: Vec::new(),
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

    /// Notes that node `i` stored sequence `seq` now, for the delays of
    /// the nodes that were linked from the start.
    fn stored_at(&mut self, i: Node, seq: u64) {
        let on_time = i != 0 && self.nodes[i as usize].lie.is_none() && !self.late.contains(&i);
        if let Some(at) = self.published.get(&seq).filter(|_| on_time) {
            self.delays.push(self.now.since(*at));
        }
    }

    fn held(&self, i: usize) -> u64 {
        self.nodes[i].store.by_seq.len() as u64
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
        self.delays.sort_unstable();
        let at = |p: f64| {
            let last = self.delays.len().saturating_sub(1);
            self.delays
                .get((last as f64 * p).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        self.report.delay_p50 = at(0.50);
        self.report.delay_p99 = at(0.99);
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
        // Every delay is at least one link's latency, and the slowest
        // on-time delivery comes before the late joiners settle.
        let one_link = Duration::from_millis(config.latency_ms.0);
        assert!(r.delay_p50 >= one_link, "{r:?}");
        assert!(
            r.delay_p50 <= r.delay_p99 && r.delay_p99 <= r.settled,
            "{r:?}"
        );
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
