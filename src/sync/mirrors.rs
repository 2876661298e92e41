//! Mirror lists in the core: which list of each publisher is the newest
//! known, so that one is recorded and passed on once, and older or
//! expired ones are let go without a write.

use super::{Action, Peer, Record, State};
use crate::proto::mirrors::MirrorList;
use crate::proto::{PublicKey, Timestamp, Verified};

impl<P: Peer, M: Clone> State<P, M> {
    /// Takes a verified mirror list as its publisher's newest when it
    /// replaces the one known ([`MirrorList::replaces`]) and has not
    /// expired at `now`, recording it for the store. Returns whether it was
    /// taken (then it is worth passing on).
    pub fn accept_mirror_list(&mut self, list: Verified<MirrorList>, now: Timestamp) -> bool {
        if list.is_expired(now) || !self.policy.is_trusted(&list.publisher) {
            return false;
        }
        if self
            .mirror_lists
            .get(&list.publisher)
            .is_some_and(|old| !list.replaces(old))
        {
            return false;
        }
        self.mirror_lists.insert(list.publisher, list.clone());
        self.out.push_back(Action::Record(Record::MirrorList(list)));
        true
    }

    /// Learns a list the store already holds (at start), without recording
    /// it again.
    pub fn know_mirror_list(&mut self, list: Verified<MirrorList>) {
        if !self.policy.is_trusted(&list.publisher) {
            return;
        }
        match self.mirror_lists.get(&list.publisher) {
            Some(old) if !list.replaces(old) => {}
            _ => {
                self.mirror_lists.insert(list.publisher, list);
            }
        }
    }

    /// The newest mirror list known of `publisher`, if any.
    pub fn mirror_list(&self, publisher: &PublicKey) -> Option<&Verified<MirrorList>> {
        self.mirror_lists.get(publisher)
    }
}
