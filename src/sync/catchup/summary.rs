//! Reading a peer's summary: what it holds that we lack, the heads and
//! revocations it brings, and the next page to ask for.

use std::collections::HashMap;

use super::super::messages::{MAX_RANGES, MAX_SYNC_REVOCATIONS, PublisherState};
use super::super::verdict::Kind;
use super::super::{Action, Now, Peer, State};
use super::MAX_QUEUED_RANGES;
use crate::proto::PublicKey;
use crate::proto::ranges::{subtract, to_ranges};

impl<P: Peer, M: Clone> State<P, M> {
    pub(super) fn on_summary(
        &mut self,
        peer: P,
        mut asked: HashMap<PublicKey, u64>,
        states: Vec<PublisherState>,
        now: Now,
    ) {
        let mut pages = Vec::new();
        for st in states {
            let publisher = st.publisher;
            // Each publisher asked about, once: an honest peer answers
            // nothing else, and a repeat would cost a store scan each.
            let Some(from) = asked.remove(&publisher) else {
                return self.ban(
                    peer,
                    Kind::Unasked,
                    "catch-up summary names a publisher not asked",
                    now.at,
                );
            };
            if !self.policy.is_trusted(&publisher) {
                continue;
            }
            self.catchup
                .carriers
                .entry(publisher)
                .or_default()
                .insert(peer);
            if st.revocations.len() > MAX_SYNC_REVOCATIONS {
                return self.ban(
                    peer,
                    Kind::OverLimits,
                    "catch-up summary over its limits",
                    now.at,
                );
            }
            for r in &st.revocations {
                if let Err(e) = self.learn_revocation(r)
                    && self.refuse_from(peer, "catch-up revocation", &e, now.at)
                {
                    return;
                }
            }
            if let Some((cert, head)) = &st.head {
                self.learn_head(peer, cert, head, now);
            }
            let Some(ranges) = st.ranges else {
                continue;
            };
            // At most a page, ascending and disjoint, from where it was
            // asked; a next page past this one: so paging always moves on.
            let ordered = ranges.iter().all(|&(a, b)| a <= b && a >= from)
                && ranges.windows(2).all(|w| w[1].0 > w[0].1);
            let next_ok = st.more.is_none_or(|m| {
                ranges.len() == MAX_RANGES && ranges.last().is_some_and(|&(_, b)| m > b)
            });
            if ranges.len() > MAX_RANGES || !ordered || !next_ok {
                return self.ban(
                    peer,
                    Kind::OverLimits,
                    "catch-up summary over its limits",
                    now.at,
                );
            }
            // Only what a signed head vouches for is asked: a peer cannot
            // send us chasing sequence numbers that do not exist.
            let upto = self.head_sequence(&publisher);
            let known = self.ranges_mut(&publisher).known.clone();
            let mut wanted = subtract(&ranges, &known, upto);
            let busy = to_ranges({
                let mut s: Vec<u64> = self.fetches.sequences_of(&publisher).collect();
                s.sort_unstable();
                s
            });
            if !busy.is_empty() {
                wanted = wanted
                    .into_iter()
                    .flat_map(|(a, b)| subtract(&[(a, b)], &busy, b))
                    .collect();
            }
            let state = self.catchup.peers.entry(peer).or_default();
            // A first page replaces what was queued for the publisher from
            // this peer: the new summary says what it holds now.
            if from == 0 {
                state.queue.retain(|(p, _, _)| *p != publisher);
            }
            for (a, b) in wanted {
                if state.queue.len() >= MAX_QUEUED_RANGES {
                    break;
                }
                state.queue.push_back((publisher, a, b));
            }
            // Pages past the trusted head would bring nothing we ask for.
            if let Some(next) = st.more
                && next <= upto
                && state.queue.len() < MAX_QUEUED_RANGES
            {
                pages.push((publisher, next));
            }
        }
        for (publisher, from) in pages {
            let q = self.query(&publisher, from);
            self.send_summary(peer, vec![q]);
        }
    }

    pub(super) fn learn_head(&mut self, peer: P, cert: &[u8], head: &[u8], now: Now) {
        if let Err(e) = self.learn_certificate(cert) {
            self.refuse_from(peer, "catch-up certificate", &e, now.at);
            return;
        }
        match self.policy.verify_head(head, now.wall) {
            Ok(h) => {
                self.accept_head(h);
            }
            // An older head than ours (rollback), or one we cannot judge
            // yet, is refused without blame.
            Err(e) => {
                if !self.refuse_from(peer, "catch-up head", &e, now.at) {
                    self.out.push_back(Action::Noted {
                        peer,
                        refusal: super::super::Refusal::policy("catch-up head", &e),
                    });
                }
            }
        }
    }
}
