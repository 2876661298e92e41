//! One step of the simulation: an event delivered, and the actions it
//! caused carried out, the way the node's driver would.

use std::sync::Arc;

use super::world::{Ev, Node, TICK};
use super::{Lie, Sim, message_id};
use crate::proto::check_bundle;
use crate::proto::pieces::Outboard;
use crate::sync::messages::{
    Announcement, CHUNK, FetchRequest, FetchResponse, SyncBundle, SyncRequest, SyncResponse,
    topic_name,
};
use crate::sync::{Action, Origin, Stored, Verdict};

impl Sim {
    pub(super) fn event(&mut self, ev: Ev) {
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
                    Ok(
                        FetchResponse::Chunk { data, .. } | FetchResponse::Outboard { data, .. },
                    ) => data.len(),
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
        self.published.insert(seq, self.now);
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
        let node = &self.nodes[at as usize];
        let Some(blob) = node.store.blobs.get(&request.hash()) else {
            return FetchResponse::NotFound;
        };
        let (offset, len) = match request {
            FetchRequest::Blob { offset, .. } => (offset, CHUNK),
            FetchRequest::Range { offset, len, .. } => (offset, u64::from(len).min(CHUNK)),
            FetchRequest::Outboard { .. } => {
                return FetchResponse::Outboard {
                    total: blob.len() as u64,
                    data: Outboard::compute(blob).encode(),
                };
            }
        };
        let start = (offset as usize).min(blob.len());
        let end = (start + len as usize).min(blob.len());
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
                let store = &node.store;
                let (mut r, _) = plan.pack(
                    |seq| {
                        let id = store.by_seq.get(&seq)?;
                        Some((
                            store.manifests.get(id)?.clone(),
                            store.manifest_of.get(id)?.clone(),
                        ))
                    },
                    |hash| store.blobs.get(hash).cloned(),
                );
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
                    let now = self.stamp();
                    self.nodes[i as usize].state.peer_down(&peer, now);
                    self.nodes[peer as usize].state.peer_down(&i, now);
                }
                Action::Store { manifest, blobs } => {
                    let (publisher, sequence, id) =
                        (manifest.publisher, manifest.sequence, manifest.id());
                    let result = match check_bundle(*manifest, blobs) {
                        Ok(b) if self.nodes[i as usize].store.put(&b) => {
                            self.stored_at(i, sequence);
                            Stored::New
                        }
                        Ok(_) => Stored::Duplicate,
                        Err(e) => Stored::Failed(e.to_string()),
                    };
                    let now = self.stamp();
                    self.nodes[i as usize]
                        .state
                        .stored(publisher, sequence, id, result, now);
                }
                Action::StoreBatch { bundles } => {
                    let mut stored = Vec::new();
                    for b in &bundles {
                        if self.nodes[i as usize].store.put(b) {
                            let m = b.manifest();
                            self.stored_at(i, m.sequence);
                            stored.push((m.publisher, m.sequence, b.id()));
                        }
                    }
                    let now = self.stamp();
                    self.nodes[i as usize].state.stored_batch(&stored, now);
                }
                Action::Refused { .. }
                | Action::Reconnect { .. }
                | Action::Noted { .. }
                | Action::Received(_)
                | Action::Record(_)
                | Action::Head { .. } => {}
                // The simulated nodes share what they hold; none is a
                // quiet reader following a log (the real network's tests
                // cover those).
                Action::Log { .. } | Action::Cursor { .. } => {}
            }
        }
    }
}
