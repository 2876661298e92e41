//! Asking a peer for the bundles it holds and we lack, and taking what it
//! sends: whole bundles to the store, larger ones to the blob fetch, and
//! what did not fit asked again.

use std::collections::HashSet;

use super::super::fetch::Reason;
use super::super::messages::{MAX_SYNC_SEQS, SyncBundle, SyncRequest};
use super::super::verdict::{Kind, judge};
use super::super::{Action, Now, Peer, State, Verdict};
use super::{Asked, IN_FLIGHT_PER_PEER, LATER, MAX_LATER};
use crate::proto::ranges::to_ranges;
use crate::proto::{PublicKey, VerifiedBundle};

impl<P: Peer, M: Clone> State<P, M> {
    /// Sends bundles requests while peers have work queued and the node
    /// has room for more fetches.
    pub(in crate::sync) fn pump_sync(&mut self, now: Now) {
        let peers: Vec<P> = self
            .catchup
            .peers
            .iter()
            .filter(|(_, s)| {
                !s.queue.is_empty()
                    && s.in_flight < IN_FLIGHT_PER_PEER
                    && s.later.is_none_or(|t| t <= now.at)
            })
            .map(|(p, _)| *p)
            .collect();
        for peer in peers {
            // Only while this peer could bring one more fetch: the bundles
            // it lists may need one, and its share is its own.
            while self.fetches.has_room(Some(&peer), Reason::CatchUp) && self.download.open(now.at)
            {
                let Some(state) = self.catchup.peers.get_mut(&peer) else {
                    break;
                };
                if state.in_flight >= IN_FLIGHT_PER_PEER {
                    break;
                }
                let Some(&(publisher, _, _)) = state.queue.front() else {
                    break;
                };
                let mut sequences = Vec::with_capacity(MAX_SYNC_SEQS);
                while sequences.len() < MAX_SYNC_SEQS {
                    match state.queue.front_mut() {
                        Some((p, a, b)) if *p == publisher => {
                            sequences.push(*a);
                            if *a == *b {
                                state.queue.pop_front();
                            } else {
                                *a += 1;
                            }
                        }
                        _ => break,
                    }
                }
                state.in_flight += 1;
                let token = self.tokens.fresh();
                self.catchup.requests.insert(
                    token,
                    (
                        peer,
                        Asked::Bundles {
                            publisher,
                            sequences: sequences.clone(),
                        },
                    ),
                );
                self.out.push_back(Action::Sync {
                    peer,
                    token,
                    request: SyncRequest::Bundles {
                        publisher,
                        sequences,
                    },
                });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_bundles(
        &mut self,
        peer: P,
        publisher: PublicKey,
        asked: &[u64],
        certificates: Vec<Vec<u8>>,
        bundles: Vec<SyncBundle>,
        cut_at: Option<u64>,
        now: Now,
    ) {
        if bundles.len() > asked.len() || certificates.len() > asked.len() {
            return self.ban(
                peer,
                Kind::OverLimits,
                "catch-up response over its limits",
                now.at,
            );
        }
        for c in &certificates {
            if let Err(e) = self.learn_certificate(c)
                && self.refuse_from(peer, "catch-up certificate", &e, now.at)
            {
                return;
            }
        }
        let items: Vec<&[u8]> = bundles.iter().map(|b| b.manifest.as_slice()).collect();
        let verdicts = self.policy.verify_manifests(&items, now.wall);
        let mut whole: Vec<VerifiedBundle> = Vec::new();
        let mut received = HashSet::new();
        for (b, verdict) in bundles.into_iter().zip(verdicts) {
            let m = match verdict {
                Ok(m) => m,
                Err(e) if judge(&e) == Verdict::Reject => {
                    self.refuse_from(peer, "catch-up manifest", &e, now.at);
                    return;
                }
                Err(e) => {
                    tracing::debug!(peer = ?peer, "catch-up manifest not taken: {e}");
                    continue;
                }
            };
            if m.publisher != publisher || !asked.contains(&m.sequence) {
                return self.ban(
                    peer,
                    Kind::Unasked,
                    "catch-up sent a bundle not asked for",
                    now.at,
                );
            }
            received.insert(m.sequence);
            let id = m.id();
            if self.knows(&m.publisher, m.sequence) || self.busy_with_bundle(&id) {
                continue;
            }
            if let Some(blobs) = &b.blobs {
                let bytes: usize = blobs.iter().map(Vec::len).sum();
                let (_, _, mut ctx) = self.ctx(now.at);
                ctx.received(bytes as u64);
            }
            match b.blobs {
                Some(blobs) => match self.policy.verify_bundle(m, blobs) {
                    Ok(v) => whole.push(v),
                    Err(e) => {
                        let refusal = super::super::Refusal::policy("catch-up blob", &e);
                        let (_, _, mut ctx) = self.ctx(now.at);
                        return ctx.ban(peer, refusal);
                    }
                },
                None => {
                    let seq = m.sequence;
                    if !self.start_fetch(m, None, Some(peer), now.at) {
                        // No room now: asked again once fetches finish.
                        if let Some(state) = self.catchup.peers.get_mut(&peer) {
                            state.queue.push_back((publisher, seq, seq));
                        }
                    }
                }
            }
        }
        if !whole.is_empty() {
            self.out.push_back(Action::StoreBatch { bundles: whole });
        }
        // An honest responder cuts after everything it sent.
        if let Some(cut) = cut_at {
            let cut_pos = asked.iter().position(|s| *s == cut);
            let sent_after = received.iter().any(|s| {
                asked
                    .iter()
                    .position(|x| x == s)
                    .is_some_and(|p| cut_pos.is_none_or(|c| p >= c))
            });
            if cut_pos.is_none() || sent_after {
                return self.ban(
                    peer,
                    Kind::Malformed,
                    "catch-up cut before what it sent",
                    now.at,
                );
            }
            // The rest did not fit: ask again, first. With nothing sent,
            // the peer is over its upload cap: ask again a little later,
            // but not without end.
            // The asked list need not be sorted (a number put back when no
            // fetch had room goes to the end of the queue): sort before
            // making ranges, or numbers out of order are lost.
            let mut rest: Vec<u64> = asked.iter().copied().skip_while(|s| *s != cut).collect();
            rest.sort_unstable();
            rest.dedup();
            let Some(state) = self.catchup.peers.get_mut(&peer) else {
                return;
            };
            if received.is_empty() {
                state.laters += 1;
                state.later = Some(now.at + LATER);
                if state.laters > MAX_LATER {
                    return self.catchup.drop_queue(&peer, &publisher);
                }
            } else {
                state.laters = 0;
            }
            for (a, b) in to_ranges(rest).into_iter().rev() {
                state.queue.push_front((publisher, a, b));
            }
        } else if received.is_empty() {
            // It no longer holds what it said: stop asking it for this
            // publisher until the next summary.
            self.catchup.drop_queue(&peer, &publisher);
        }
    }
}
