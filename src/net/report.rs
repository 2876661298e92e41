//! A newsroom's report: which peers and mirrors say they hold a story.
//!
//! The node asks every connected peer over the catch-up protocol
//! ([`SyncRequest::Holds`]), looks up the publisher's mirrors in the DHT,
//! connects to those it is not connected to and asks them too, and
//! answers when every peer asked has answered or the time is up.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::request_response::OutboundRequestId;
use libp2p::{PeerId, kad};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::NetError;
use super::actor::{Actor, Asker};
use super::wire::{self, MAX_HELD_VERSIONS, SyncRequest, SyncResponse};
use crate::proto::{BundleId, PublicKey, StoryId};

/// Reports running at once; more are refused.
const MAX_REPORTS: usize = 8;
/// Peers asked in one report.
const MAX_ASKED: usize = 256;
/// Mirrors found in the DHT that one report connects to.
const MAX_DIALED: usize = 16;

/// What one peer said it holds of a story.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holding {
    /// The peer.
    pub peer: String,
    /// Whether the DHT names it a mirror of the publisher.
    pub mirror: bool,
    /// The bundles of the story it holds, oldest first (empty: none).
    pub bundles: Vec<BundleId>,
    /// Why there is no answer, when there is none.
    pub error: Option<String>,
}

/// A report being gathered.
pub(super) struct Report {
    publisher: PublicKey,
    story: StoryId,
    deadline: Instant,
    reply: Option<oneshot::Sender<Result<Vec<Holding>, NetError>>>,
    asked: HashSet<PeerId>,
    pending: HashSet<OutboundRequestId>,
    /// Mirrors found in the DHT and being connected to.
    dialing: HashSet<PeerId>,
    mirrors: HashSet<PeerId>,
    lookup: Option<kad::QueryId>,
    results: HashMap<PeerId, Holding>,
}

/// The reports of the actor.
#[derive(Default)]
pub(super) struct Reports {
    running: HashMap<u64, Report>,
    next: u64,
    lookups: HashMap<kad::QueryId, u64>,
}

impl Reports {
    /// The report a DHT lookup belongs to.
    pub(super) fn of_lookup(&self, q: &kad::QueryId) -> Option<u64> {
        self.lookups.get(q).copied()
    }
}

impl Actor {
    /// Starts a report; `reply` gets the answers within `wait`.
    pub(super) fn start_report(
        &mut self,
        publisher: PublicKey,
        story: StoryId,
        wait: Duration,
        reply: oneshot::Sender<Result<Vec<Holding>, NetError>>,
    ) {
        if self.reports.running.len() >= MAX_REPORTS {
            let _ = reply.send(Err(NetError::Busy(format!(
                "{MAX_REPORTS} reports are running; try again when one ends"
            ))));
            return;
        }
        // The report asks peers and the DHT about one publisher's story.
        if !self.config.role().serves() {
            let _ = reply.send(Err(NetError::QuietRefuses("ask peers who holds a story")));
            return;
        }
        let id = self.reports.next;
        self.reports.next += 1;
        let key = kad::RecordKey::new(&wire::mirror_key(&publisher));
        let lookup = self.swarm.behaviour_mut().kad.get_providers(key);
        self.reports.lookups.insert(lookup, id);
        self.reports.running.insert(
            id,
            Report {
                publisher,
                story,
                deadline: Instant::now() + wait,
                reply: Some(reply),
                asked: HashSet::new(),
                pending: HashSet::new(),
                dialing: HashSet::new(),
                mirrors: HashSet::new(),
                lookup: Some(lookup),
                results: HashMap::new(),
            },
        );
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in peers {
            self.ask_holds(id, p);
        }
    }

    fn ask_holds(&mut self, id: u64, peer: PeerId) {
        if self.is_banned(&peer) {
            return;
        }
        let Some(r) = self.reports.running.get_mut(&id) else {
            return;
        };
        if r.asked.len() >= MAX_ASKED || !r.asked.insert(peer) {
            return;
        }
        let request = SyncRequest::Holds {
            publisher: r.publisher,
            story: r.story,
        };
        let rid = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        r.pending.insert(rid);
        self.sync_requests.insert(rid, Asker::Report(id));
    }

    /// Mirrors of the report's publisher found in the DHT: the connected
    /// ones are asked now, the others when their connection comes up.
    pub(super) fn report_providers(&mut self, id: u64, providers: &HashSet<PeerId>) {
        let me = *self.swarm.local_peer_id();
        let found: Vec<(PeerId, bool, bool)> = providers
            .iter()
            .filter(|p| **p != me)
            .map(|p| (*p, self.swarm.is_connected(p), self.is_banned(p)))
            .collect();
        let mut connected = Vec::new();
        let mut to_dial = Vec::new();
        let Some(r) = self.reports.running.get_mut(&id) else {
            return;
        };
        for (p, is_connected, banned) in found {
            r.mirrors.insert(p);
            if is_connected {
                connected.push(p);
            } else if !banned
                && !r.dialing.contains(&p)
                && !r.results.contains_key(&p)
                && r.dialing.len() + to_dial.len() < MAX_DIALED
            {
                to_dial.push(p);
            }
        }
        for p in to_dial {
            // The lookup's own addresses for the provider serve while it
            // runs (kad's pending-dial hook).
            match self
                .swarm
                .dial(libp2p::swarm::dial_opts::DialOpts::peer_id(p).build())
            {
                Ok(()) => {
                    if let Some(r) = self.reports.running.get_mut(&id) {
                        r.dialing.insert(p);
                    }
                }
                Err(e) => self.report_unreachable_in(id, p, e.to_string()),
            }
        }
        for p in connected {
            self.ask_holds(id, p);
        }
    }

    fn report_unreachable_in(&mut self, id: u64, peer: PeerId, error: String) {
        if let Some(r) = self.reports.running.get_mut(&id) {
            r.dialing.remove(&peer);
            r.results.insert(
                peer,
                Holding {
                    peer: peer.to_string(),
                    mirror: true,
                    bundles: Vec::new(),
                    error: Some(format!("unreachable: {error}")),
                },
            );
        }
    }

    /// The report's DHT lookup ended.
    pub(super) fn report_lookup_done(&mut self, q: &kad::QueryId) {
        if let Some(id) = self.reports.lookups.remove(q)
            && let Some(r) = self.reports.running.get_mut(&id)
        {
            r.lookup = None;
        }
        self.finish_reports(false);
    }

    /// A connection came up: reports waiting for this mirror ask it.
    pub(super) fn report_connected(&mut self, peer: PeerId) {
        let waiting: Vec<u64> = self
            .reports
            .running
            .iter_mut()
            .filter_map(|(id, r)| r.dialing.remove(&peer).then_some(*id))
            .collect();
        for id in waiting {
            self.ask_holds(id, peer);
        }
    }

    /// A mirror a report waited for could not be connected to.
    pub(super) fn report_unreachable(&mut self, peer: PeerId, error: String) {
        let mut any = false;
        for r in self.reports.running.values_mut() {
            if r.dialing.remove(&peer) {
                any = true;
                r.results.insert(
                    peer,
                    Holding {
                        peer: peer.to_string(),
                        mirror: true,
                        bundles: Vec::new(),
                        error: Some(format!("unreachable: {error}")),
                    },
                );
            }
        }
        if any {
            self.finish_reports(false);
        }
    }

    /// A peer answered (or failed to).
    pub(super) fn report_response(
        &mut self,
        id: u64,
        rid: OutboundRequestId,
        peer: PeerId,
        response: Result<SyncResponse, String>,
    ) {
        let Some(r) = self.reports.running.get_mut(&id) else {
            return;
        };
        r.pending.remove(&rid);
        let (bundles, error) = match response {
            Ok(SyncResponse::Holds { mut bundles }) => {
                bundles.truncate(MAX_HELD_VERSIONS);
                (bundles, None)
            }
            Ok(SyncResponse::Refused) => (Vec::new(), Some("refused".to_owned())),
            Ok(_) => (Vec::new(), Some("an answer of another kind".to_owned())),
            Err(e) => (Vec::new(), Some(e)),
        };
        r.results.insert(
            peer,
            Holding {
                peer: peer.to_string(),
                mirror: false,
                bundles,
                error,
            },
        );
        self.finish_reports(false);
    }

    /// Answers the reports that are complete, or all that are due.
    pub(super) fn finish_reports(&mut self, tick: bool) {
        let now = Instant::now();
        let done: Vec<u64> = self
            .reports
            .running
            .iter()
            .filter(|(_, r)| {
                let settled = r.pending.is_empty() && r.lookup.is_none() && r.dialing.is_empty();
                settled || (tick && now >= r.deadline)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            let Some(mut r) = self.reports.running.remove(&id) else {
                continue;
            };
            if let Some(q) = r.lookup {
                self.reports.lookups.remove(&q);
            }
            for p in &r.dialing {
                r.results.entry(*p).or_insert_with(|| Holding {
                    peer: p.to_string(),
                    mirror: true,
                    bundles: Vec::new(),
                    error: Some("could not be reached in time".into()),
                });
            }
            // Asked, but no answer by the deadline: listed as such.
            for p in &r.asked {
                r.results.entry(*p).or_insert_with(|| Holding {
                    peer: p.to_string(),
                    mirror: false,
                    bundles: Vec::new(),
                    error: Some("no answer in time".into()),
                });
            }
            let mut out: Vec<Holding> = r
                .results
                .into_iter()
                .map(|(p, mut h)| {
                    h.mirror = r.mirrors.contains(&p);
                    h
                })
                .collect();
            out.sort_by(|a, b| (b.mirror, &a.peer).cmp(&(a.mirror, &b.peer)));
            if let Some(reply) = r.reply.take() {
                let _ = reply.send(Ok(out));
            }
        }
    }
}
