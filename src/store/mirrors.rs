//! Mirror lists: the newest verified list of each publisher, under `w` +
//! the publisher's root key.
//!
//! Which list is newer is the list's own rule ([`MirrorList::replaces`]);
//! the store only writes down the winner, with a log entry so that
//! catch-up and log readers hear of it. What the lists say is handed out
//! only after the trust policy of the moment verifies them again: a
//! publisher untrusted, or a key revoked, since the list was stored takes
//! its list out of use without a write.

use super::kv::Op;
use super::log::LogItem;
use super::tables::{MIRRORS, key};
use super::{Store, StoreError};
use crate::proto::mirrors::MirrorList;
use crate::proto::{PublicKey, Timestamp, TrustPolicy, Verified, decode_unverified};

impl Store {
    /// Verifies a signed mirror list under `policy` and keeps it when it is
    /// the publisher's newest. Returns whether it was stored as new (false:
    /// the stored one is as new or newer). An expired list is refused.
    pub fn put_mirror_list(
        &self,
        bytes: &[u8],
        policy: &TrustPolicy,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let list = policy
            .verify_mirror_list(bytes, now)
            .map_err(StoreError::MirrorList)?;
        self.record_mirror_list(&list, now)
    }

    /// Keeps a mirror list the policy verified, when it replaces the stored
    /// one (or there is none). Returns whether it was stored as new. An
    /// expired list is refused: it would only be shown, never dialed, and
    /// must not push out an older list that is still in force.
    pub fn record_mirror_list(
        &self,
        list: &Verified<MirrorList>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        if list.is_expired(now) {
            return Err(StoreError::MirrorListExpired {
                expired: list.expires_at,
            });
        }
        let _w = self.lock()?;
        let k = key(MIRRORS, &[list.publisher.as_bytes()]);
        if let Some(old) = self.kv.get(&k)? {
            match decode_unverified::<MirrorList>(&old) {
                Ok(old) if !list.replaces(&old) => return Ok(false),
                // A damaged entry is replaced by a list that verified.
                _ => {}
            }
        }
        let mut ops = vec![Op::Put(k, list.bytes().to_vec())];
        ops.extend(self.log_ops(&[LogItem::MirrorList(list.publisher)])?);
        self.kv.apply(ops)?;
        Ok(true)
    }

    /// The stored mirror list of `publisher`, decoded, with its signed
    /// bytes (verified when stored; see [`Store::mirror_addresses`] for
    /// what is still in force).
    pub fn mirror_list(
        &self,
        publisher: &PublicKey,
    ) -> Result<Option<(MirrorList, Vec<u8>)>, StoreError> {
        match self.kv.get(&key(MIRRORS, &[publisher.as_bytes()]))? {
            None => Ok(None),
            Some(bytes) => Ok(Some((decode_list(&bytes)?, bytes))),
        }
    }

    /// Every stored mirror list, by publisher key.
    pub fn mirror_lists(&self) -> Result<Vec<(MirrorList, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.kv.scan(&[MIRRORS], false) {
            let (_, bytes) = item?;
            out.push((decode_list(&bytes)?, bytes));
        }
        Ok(out)
    }

    /// The stored lists that `policy` verifies at `now` and that have not
    /// expired: those of publishers trusted now, signed by keys not revoked.
    fn lists_in_force(
        &self,
        policy: &TrustPolicy,
        now: Timestamp,
    ) -> Result<Vec<MirrorList>, StoreError> {
        let mut out = Vec::new();
        for item in self.kv.scan(&[MIRRORS], false) {
            let (_, bytes) = item?;
            match policy.verify_mirror_list(&bytes, now) {
                Ok(list) if !list.is_expired(now) => out.push((*list).clone()),
                Ok(_) => {}
                Err(e) => tracing::debug!("stored mirror list not used: {e}"),
            }
        }
        Ok(out)
    }

    /// The libp2p addresses of the mirror lists in force under `policy` at
    /// `now` (trusted publishers, keys not revoked, not expired), each once.
    /// They are text the list's rules checked; the caller parses them
    /// before it dials.
    pub fn mirror_addresses(
        &self,
        policy: &TrustPolicy,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        Ok(distinct(self.lists_in_force(policy, now)?, |l| l.libp2p))
    }

    /// The `https://` web-tree URLs of the mirror lists in force under
    /// `policy` at `now`, each once.
    pub fn web_sources(
        &self,
        policy: &TrustPolicy,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        Ok(distinct(self.lists_in_force(policy, now)?, |l| l.https))
    }
}

/// The entries `pick` takes from each list, in order, each once.
fn distinct(lists: Vec<MirrorList>, pick: impl Fn(MirrorList) -> Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    lists
        .into_iter()
        .flat_map(pick)
        .filter(|e| seen.insert(e.clone()))
        .collect()
}

fn decode_list(bytes: &[u8]) -> Result<MirrorList, StoreError> {
    decode_unverified::<MirrorList>(bytes)
        .map_err(|e| StoreError::Corrupt(format!("mirror list: {e}")))
}
