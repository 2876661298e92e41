//! The log: everything the store took (bundles, heads, revocations,
//! mirror lists), numbered in the order it took it, so that a quiet reader
//! can follow a mirror without naming what it wants (see
//! `sync::messages::log`).
//!
//! Entries are `L` + block (u64 BE) → the block's [`LOG_BLOCK`]
//! positions that hold something, each with what was taken there: a
//! bundle id, the publisher of a head (the entry stands for its newest
//! head), a revocation's publisher and key, or the publisher of a mirror
//! list (the entry stands for its newest list). Positions are given in
//! the batch that stores the object, under the write lock, so they follow
//! the order of the writes and none is given twice. An entry whose object
//! went (evicted, revoked) stays and is skipped when read; those of a
//! forgotten publisher are removed, and their positions stay empty. Each
//! store names its log with random bytes of its own, so a reader knows its
//! position in one store means nothing in a store made anew.
//!
//! Why blocks: sled 0.34 keeps some 500 bytes in memory for each page of
//! its tree, and a page holds at most 16 entries; an entry per position,
//! one per stored bundle, was a tenth of a large store's entries. An
//! append rewrites the last block, under 600 bytes on average. Schema 2
//! kept an entry per position under `l`; `Store::convert_blocks` moves
//! them into blocks at open.

use super::blocks::{self, Block};
use super::kv::{Op, Pair};
use super::tables::{
    CERT, HEAD, LOG, META, META_LOG_CURSOR, META_LOG_ID, META_LOG_NEXT, MIRRORS, OLD_LOG,
    REVOCATION, SeqState, key, u64_of,
};
use super::tx::Tx;
use super::{Store, StoreError};
use crate::proto::{BundleId, CertId, PublicKey};

/// Entries written per batch while the log of an older store is built.
const BUILD_BATCH: usize = 4096;
/// Positions per block.
pub(super) const LOG_BLOCK: u64 = blocks::BLOCK;
/// The longest encoded [`LogItem`].
const ITEM_MAX: usize = 65;

/// What one log entry stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogItem {
    /// A bundle.
    Bundle(BundleId),
    /// The newest head of a publisher.
    Head(PublicKey),
    /// A publisher's revocation of a key.
    Revocation(PublicKey, PublicKey),
    /// The newest mirror list of a publisher.
    MirrorList(PublicKey),
}

impl LogItem {
    pub(super) fn encode(&self) -> Vec<u8> {
        match self {
            LogItem::Bundle(id) => [&[b'b'][..], id.as_bytes()].concat(),
            LogItem::Head(p) => [&[b'h'][..], p.as_bytes()].concat(),
            LogItem::Revocation(p, k) => [&[b'x'][..], p.as_bytes(), k.as_bytes()].concat(),
            LogItem::MirrorList(p) => [&[b'w'][..], p.as_bytes()].concat(),
        }
    }

    pub(super) fn decode(v: &[u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt("log entry".into());
        let key32 = |r: std::ops::Range<usize>| -> Result<[u8; 32], StoreError> {
            v.get(r).and_then(|b| b.try_into().ok()).ok_or_else(bad)
        };
        match (v.first(), v.len()) {
            (Some(b'b'), 33) => Ok(LogItem::Bundle(BundleId(key32(1..33)?))),
            (Some(b'h'), 33) => Ok(LogItem::Head(PublicKey(key32(1..33)?))),
            (Some(b'x'), 65) => Ok(LogItem::Revocation(
                PublicKey(key32(1..33)?),
                PublicKey(key32(33..65)?),
            )),
            (Some(b'w'), 33) => Ok(LogItem::MirrorList(PublicKey(key32(1..33)?))),
            _ => Err(bad()),
        }
    }
}

fn block_key(block: u64) -> Vec<u8> {
    key(LOG, &[&block.to_be_bytes()])
}

fn decode_block(v: &[u8]) -> Result<Block, StoreError> {
    blocks::decode(v, ITEM_MAX, "log block")
}

/// The writes that put `items` at positions `next` on, with the block
/// `next` falls in read by `get` (the only one that can hold entries
/// already: nothing is ever written after the end).
pub(super) fn append(
    get: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, StoreError>,
    next: u64,
    items: &[LogItem],
) -> Result<Vec<Pair>, StoreError> {
    let mut out = Vec::new();
    let mut block = next / LOG_BLOCK;
    let mut entries = match next % LOG_BLOCK {
        0 => Vec::new(),
        _ => get(&block_key(block))?
            .map(|v| decode_block(&v))
            .transpose()?
            .unwrap_or_default(),
    };
    for (i, item) in items.iter().enumerate() {
        let position = next + i as u64;
        if position / LOG_BLOCK != block {
            if !entries.is_empty() {
                out.push((block_key(block), blocks::encode(&entries)));
            }
            block = position / LOG_BLOCK;
            entries = Vec::new();
        }
        entries.push(((position % LOG_BLOCK) as u8, item.encode()));
    }
    if !entries.is_empty() {
        out.push((block_key(block), blocks::encode(&entries)));
    }
    Ok(out)
}

/// Removes the entries at `positions` in `tx`, rewriting their blocks.
pub(super) fn remove(tx: &mut Tx<'_>, positions: &[u64]) -> Result<(), StoreError> {
    for position in positions {
        let k = block_key(position / LOG_BLOCK);
        let Some(v) = tx.get(&k)? else {
            continue;
        };
        let mut entries = decode_block(&v)?;
        entries.retain(|(o, _)| u64::from(*o) != position % LOG_BLOCK);
        if entries.is_empty() {
            tx.delete(k);
        } else {
            tx.put(k, blocks::encode(&entries));
        }
    }
    Ok(())
}

/// Every entry of the log, in order, read block by block.
pub(super) fn entries(
    store: &Store,
    from: u64,
) -> impl Iterator<Item = Result<(u64, LogItem), StoreError>> + '_ {
    store
        .kv
        .range_from(&[LOG], &block_key(from / LOG_BLOCK))
        .flat_map(move |r| {
            let block = r.and_then(|(k, v)| {
                let n = k
                    .get(1..9)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| StoreError::Corrupt("log block key".into()))?;
                Ok((n, decode_block(&v)?))
            });
            match block {
                Ok((n, items)) => items
                    .into_iter()
                    .map(|(o, bytes)| Ok((n * LOG_BLOCK + u64::from(o), LogItem::decode(&bytes)?)))
                    .filter(|r| r.as_ref().map_or(true, |(p, _)| *p >= from))
                    .collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            }
        })
}

impl Store {
    /// Where the log ends: the position the next entry gets.
    pub fn log_end(&self) -> Result<u64, StoreError> {
        Ok(u64_of(self.kv.get(&key(META, &[META_LOG_NEXT]))?))
    }

    /// The name of this store's log.
    pub fn log_id(&self) -> Result<[u8; 16], StoreError> {
        self.kv
            .get(&key(META, &[META_LOG_ID]))?
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| StoreError::Corrupt("the log has no name".into()))
    }

    /// Up to `limit` log entries from position `from` on, in order.
    pub fn log_items(&self, from: u64, limit: usize) -> Result<Vec<(u64, LogItem)>, StoreError> {
        entries(self, from).take(limit).collect()
    }

    /// The writes that append `items` to the log. Caller holds the write
    /// lock and applies them in the batch that stores the objects.
    pub(super) fn log_ops(&self, items: &[LogItem]) -> Result<Vec<Op>, StoreError> {
        let next = self.log_end()?;
        let mut ops: Vec<Op> = append(|k| self.kv.get(k), next, items)?
            .into_iter()
            .map(|(k, v)| Op::Put(k, v))
            .collect();
        ops.push(Op::Put(
            key(META, &[META_LOG_NEXT]),
            (next + items.len() as u64).to_be_bytes().to_vec(),
        ));
        Ok(ops)
    }

    /// Moves a log of schema 2, an entry per position under `l`, into
    /// blocks (see `blocks::move_into_blocks`). Caller holds the write
    /// lock.
    pub(super) fn move_log(&self) -> Result<u64, StoreError> {
        blocks::move_into_blocks(&self.kv, OLD_LOG, ITEM_MAX, "log block", |k, v| {
            let position = k
                .get(1..9)
                .filter(|_| k.len() == 9)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| StoreError::Corrupt("a schema 2 log position".into()))?;
            LogItem::decode(v)?;
            Ok((
                block_key(position / LOG_BLOCK),
                (position % LOG_BLOCK) as u8,
            ))
        })
    }

    /// Gives a store made before the log its log: every held bundle, by
    /// publisher and sequence number, then heads and revocations. Until it
    /// has a name the log is not finished, and building it again from the
    /// start writes the same entries, so a crash while building loses
    /// nothing.
    pub(super) fn build_log(&self) -> Result<(), StoreError> {
        if self.kv.contains(&key(META, &[META_LOG_ID]))? {
            return Ok(());
        }
        let _w = self.lock()?;
        let mut items = Vec::new();
        for item in super::slots::scan(&self.kv, None) {
            let (_, _, v) = item?;
            if v.first() == Some(&(SeqState::Held as u8)) {
                items.push(LogItem::Bundle(super::tables::id_from(&v[1..])?));
            }
        }
        for item in self.kv.scan(&[HEAD], false) {
            let (k, _) = item?;
            let p: [u8; 32] = k[1..]
                .try_into()
                .map_err(|_| StoreError::Corrupt("head key".into()))?;
            items.push(LogItem::Head(PublicKey(p)));
        }
        for item in self.kv.scan(&[REVOCATION], false) {
            let (k, _) = item?;
            if k.len() != 65 {
                return Err(StoreError::Corrupt("revocation key".into()));
            }
            let p: [u8; 32] = k[1..33]
                .try_into()
                .map_err(|_| StoreError::Corrupt("revocation key".into()))?;
            let r: [u8; 32] = k[33..65]
                .try_into()
                .map_err(|_| StoreError::Corrupt("revocation key".into()))?;
            items.push(LogItem::Revocation(PublicKey(p), PublicKey(r)));
        }
        for item in self.kv.scan(&[MIRRORS], false) {
            let (k, _) = item?;
            let p: [u8; 32] = k[1..]
                .try_into()
                .map_err(|_| StoreError::Corrupt("mirror list key".into()))?;
            items.push(LogItem::MirrorList(PublicKey(p)));
        }
        for (n, chunk) in items.chunks(BUILD_BATCH).enumerate() {
            let start = (n * BUILD_BATCH) as u64;
            let ops = append(|_| Ok(None), start, chunk)?
                .into_iter()
                .map(|(k, v)| Op::Put(k, v))
                .collect();
            self.kv.apply(ops)?;
        }
        let id: [u8; 16] = rand::random();
        self.kv.apply(vec![
            Op::Put(
                key(META, &[META_LOG_NEXT]),
                (items.len() as u64).to_be_bytes().to_vec(),
            ),
            Op::Put(key(META, &[META_LOG_ID]), id.to_vec()),
        ])?;
        self.kv.flush()
    }
}

/// The signed bytes a log entry stands for, as they are now.
#[derive(Debug, Clone)]
pub enum LogObject {
    /// A stored bundle's manifest.
    Bundle(Box<super::StoredManifest>),
    /// A publisher's newest head, and the certificate that signs it.
    Head(Vec<u8>, CertId),
    /// A revocation.
    Revocation(Vec<u8>),
    /// A publisher's newest mirror list, and the certificate that signs it.
    MirrorList(Vec<u8>, CertId),
}

impl Store {
    /// What `item` stands for now; `None` when it is gone (an evicted or
    /// revoked bundle, a head dropped by a revocation).
    pub fn log_object(&self, item: &LogItem) -> Result<Option<LogObject>, StoreError> {
        Ok(match item {
            LogItem::Bundle(id) => self.manifest(id)?.map(|m| LogObject::Bundle(Box::new(m))),
            LogItem::Head(p) => self
                .head(p)?
                .map(|(bytes, h)| LogObject::Head(bytes, h.certificate)),
            LogItem::Revocation(p, k) => self
                .kv
                .get(&key(REVOCATION, &[p.as_bytes(), k.as_bytes()]))?
                .map(LogObject::Revocation),
            LogItem::MirrorList(p) => self
                .mirror_list(p)?
                .map(|(list, bytes)| LogObject::MirrorList(bytes, list.certificate)),
        })
    }

    /// A stored certificate's signed bytes.
    pub fn certificate_bytes(&self, id: &CertId) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv.get(&key(CERT, &[id.as_bytes()]))
    }
}

impl Tx<'_> {
    /// Appends to the log when the batch commits.
    pub(super) fn log(&mut self, item: LogItem) {
        self.log.push(item);
    }
}

/// Where a reader is in one mirror's log: the mirror's peer id as bytes,
/// the log's name, the position to ask from next, and a digest of the
/// trust list it was read under.
pub type LogCursor = (Vec<u8>, [u8; 16], u64, [u8; 32]);

/// Mirrors whose log position a reader keeps, at most (the core keeps
/// the same number).
const MAX_STORED_CURSORS: usize = 64;

impl Store {
    /// Remembers where this reader is in a mirror's log (`mirror`: the
    /// mirror's peer id as bytes), forgetting the oldest past a bound.
    pub fn set_log_cursor(
        &self,
        mirror: &[u8],
        log: [u8; 16],
        next: u64,
        trust: [u8; 32],
    ) -> Result<(), StoreError> {
        let _w = self.lock()?;
        let k = key(META, &[META_LOG_CURSOR, mirror]);
        let mut v = Vec::with_capacity(32);
        v.extend_from_slice(&log);
        v.extend_from_slice(&next.to_be_bytes());
        // Stamped with the store's own log end, which only grows, to tell the
        // oldest apart.
        v.extend_from_slice(&self.log_end()?.to_be_bytes());
        v.extend_from_slice(&trust);
        let mut ops = vec![Op::Put(k.clone(), v)];
        let others: Vec<(Vec<u8>, u64)> = self
            .kv
            .scan(&key(META, &[META_LOG_CURSOR]), false)
            .filter_map(Result::ok)
            .filter(|(key, _)| *key != k)
            .map(|(key, v)| {
                (
                    key,
                    v.get(24..32)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, u64::from_be_bytes),
                )
            })
            .collect();
        if others.len() >= MAX_STORED_CURSORS
            && let Some((oldest, _)) = others.iter().min_by_key(|(_, at)| *at)
        {
            ops.push(Op::Delete(oldest.clone()));
        }
        self.kv.apply(ops)
    }

    /// Where this reader is in each mirror's log it remembers: the
    /// mirror's id bytes, the log's name, the position to ask from.
    pub fn log_cursors(&self) -> Result<Vec<LogCursor>, StoreError> {
        let prefix = key(META, &[META_LOG_CURSOR]);
        let mut out = Vec::new();
        for item in self.kv.scan(&prefix, false) {
            let (k, v) = item?;
            let (Some(log), Some(next)) = (
                v.get(..16).and_then(|b| <[u8; 16]>::try_from(b).ok()),
                v.get(16..24)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes),
            ) else {
                return Err(StoreError::Corrupt("log cursor".into()));
            };
            // Without a digest (or a damaged one) the log is read again.
            let trust = v
                .get(32..64)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .unwrap_or_default();
            out.push((k[prefix.len()..].to_vec(), log, next, trust));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;
    use crate::store::tables::{META_SCHEMA, SCHEMA_VERSION};

    fn slot(publisher: u8, seq: u64, state: SeqState, id: u8) -> (PublicKey, u64, Vec<u8>) {
        let mut v = vec![state as u8];
        v.extend_from_slice(&[id; 32]);
        (PublicKey([publisher; 32]), seq, v)
    }

    #[test]
    fn a_store_made_before_the_log_gets_one_at_open_and_again_after_a_crash() {
        let store = Store::memory(StoreConfig::default());
        assert_eq!(store.log_end().unwrap(), 0);
        let first = store.log_id().unwrap();
        // As an older store: sequence slots, a head, and no log.
        let mut ops = super::super::slots::fresh_blocks([
            slot(1, 1, SeqState::Held, 10),
            slot(1, 2, SeqState::Evicted, 11),
            slot(2, 7, SeqState::Held, 12),
        ]);
        ops.extend([
            Op::Put(key(HEAD, &[&[2; 32]]), vec![0]),
            Op::Delete(key(META, &[META_LOG_ID])),
            Op::Delete(key(META, &[META_LOG_NEXT])),
        ]);
        store.kv.apply(ops).unwrap();
        // A build cut short left entries and no name: built again whole.
        store
            .kv
            .apply(vec![Op::Put(
                block_key(0),
                blocks::encode(&vec![(0, LogItem::Head(PublicKey([9; 32])).encode())]),
            )])
            .unwrap();
        store.build_log().unwrap();
        let items: Vec<LogItem> = store
            .log_items(0, 10)
            .unwrap()
            .into_iter()
            .map(|(_, i)| i)
            .collect();
        assert_eq!(
            items,
            vec![
                LogItem::Bundle(BundleId([10; 32])),
                LogItem::Bundle(BundleId([12; 32])),
                LogItem::Head(PublicKey([2; 32])),
            ]
        );
        assert_eq!(store.log_end().unwrap(), 3);
        assert_ne!(store.log_id().unwrap(), first);
        // Built once: opening again changes nothing.
        let name = store.log_id().unwrap();
        store.build_log().unwrap();
        assert_eq!(store.log_id().unwrap(), name);
        assert_eq!(store.log_items(1, 1).unwrap()[0].0, 1);
    }

    fn item(n: u64) -> LogItem {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&n.to_be_bytes());
        LogItem::Bundle(BundleId(id))
    }

    /// Appends in batches of every size, across blocks, and removals
    /// anywhere: every read from every position gives what is left, in
    /// order.
    #[test]
    fn blocks_give_back_every_position_in_order() {
        let store = Store::memory(StoreConfig::default());
        let mut reference: Vec<(u64, LogItem)> = Vec::new();
        let mut next = 0u64;
        for round in 0..40u64 {
            let mut tx = Tx::new(&store.kv);
            for _ in 0..(round * 7 % 45) {
                tx.log.push(item(next));
                reference.push((next, item(next)));
                next += 1;
            }
            tx.commit().unwrap();
            if round % 3 == 0 {
                // Through the path heads and revocations take.
                let ops = store.log_ops(&[item(next)]).unwrap();
                store.kv.apply(ops).unwrap();
                reference.push((next, item(next)));
                next += 1;
            }
            if round % 5 == 4 {
                let gone: Vec<u64> = reference
                    .iter()
                    .map(|(p, _)| *p)
                    .filter(|p| (p * 13 + round) % 4 == 0)
                    .collect();
                let mut tx = Tx::new(&store.kv);
                remove(&mut tx, &gone).unwrap();
                tx.commit().unwrap();
                reference.retain(|(p, _)| !gone.contains(p));
            }
        }
        assert_eq!(store.log_end().unwrap(), next);
        for from in 0..=next + 1 {
            let want: Vec<_> = reference
                .iter()
                .filter(|(p, _)| *p >= from)
                .cloned()
                .collect();
            assert_eq!(
                store.log_items(from, usize::MAX).unwrap(),
                want,
                "from {from}"
            );
            let few: Vec<_> = want.iter().take(5).cloned().collect();
            assert_eq!(store.log_items(from, 5).unwrap(), few, "5 from {from}");
        }
        assert!(store.log_items(0, 0).unwrap().is_empty());
        let blocks = store.kv.scan(&[LOG], false).count() as u64;
        assert!(blocks <= next.div_ceil(LOG_BLOCK), "{blocks} blocks");
    }

    #[test]
    fn log_blocks_refuse_bad_bytes() {
        let good = blocks::encode(&vec![(1, item(1).encode()), (5, item(5).encode())]);
        assert_eq!(decode_block(&good).unwrap().len(), 2);
        assert!(decode_block(&good[..good.len() - 1]).is_err());
        assert!(decode_block(&[good.clone(), vec![0]].concat()).is_err());
        assert!(decode_block(&[]).is_err());
        assert!(decode_block(&[0]).is_err());
        assert!(decode_block(&[33]).is_err());
        // Offsets out of order, or past the block.
        assert!(decode_block(&blocks::encode(&vec![(5, vec![]), (1, vec![])])).is_err());
        assert!(decode_block(&blocks::encode(&vec![(32, vec![])])).is_err());
    }

    /// A log of schema 2, an entry per position, with gaps, is moved into
    /// blocks at open, also when a crash stopped a conversion halfway.
    #[test]
    fn a_log_of_entries_is_moved_into_blocks() {
        let store = Store::memory(StoreConfig::default());
        let positions: Vec<u64> = (0..200).filter(|p| p % 7 != 3).collect();
        let mut ops: Vec<Op> = positions
            .iter()
            .filter(|p| **p >= 64 || **p == 62)
            .map(|p| Op::Put(key(OLD_LOG, &[&p.to_be_bytes()]), item(*p).encode()))
            .collect();
        ops.push(Op::Put(
            key(META, &[META_SCHEMA]),
            2u32.to_be_bytes().to_vec(),
        ));
        ops.push(Op::Put(
            key(META, &[META_LOG_NEXT]),
            200u64.to_be_bytes().to_vec(),
        ));
        store.kv.apply(ops).unwrap();
        // Positions under 64 were moved before the crash, but for one
        // (no conversion leaves that; the merge is there all the same).
        let mut by_block: std::collections::BTreeMap<u64, Block> = Default::default();
        for p in positions.iter().filter(|p| **p < 64 && **p != 62) {
            by_block
                .entry(p / LOG_BLOCK)
                .or_default()
                .push(((p % LOG_BLOCK) as u8, item(*p).encode()));
        }
        for (n, b) in by_block {
            store
                .kv
                .apply(vec![Op::Put(block_key(n), blocks::encode(&b))])
                .unwrap();
        }
        store.convert_blocks().unwrap();
        let want: Vec<(u64, LogItem)> = positions.iter().map(|p| (*p, item(*p))).collect();
        assert_eq!(store.log_items(0, usize::MAX).unwrap(), want);
        assert!(store.kv.scan(&[OLD_LOG], false).next().is_none());
        assert_eq!(
            store.kv.get(&key(META, &[META_SCHEMA])).unwrap().unwrap(),
            SCHEMA_VERSION.to_be_bytes()
        );
        // Appends go on after the end.
        let ops = store.log_ops(&[item(200)]).unwrap();
        store.kv.apply(ops).unwrap();
        assert_eq!(store.log_items(199, 5).unwrap(), vec![(200, item(200))]);
    }

    #[test]
    fn cursors_are_kept_per_mirror_and_the_oldest_go_past_the_bound() {
        let store = Store::memory(StoreConfig::default());
        store
            .set_log_cursor(b"mirror-a", [1; 16], 5, [0; 32])
            .unwrap();
        store
            .set_log_cursor(b"mirror-a", [1; 16], 9, [4; 32])
            .unwrap();
        assert_eq!(
            store.log_cursors().unwrap(),
            vec![(b"mirror-a".to_vec(), [1; 16], 9, [4; 32])]
        );
        for i in 0..MAX_STORED_CURSORS + 3 {
            // The stamp is the log's end: let it move between cursors.
            store
                .kv
                .apply(vec![Op::Put(
                    key(META, &[META_LOG_NEXT]),
                    (i as u64 + 1).to_be_bytes().to_vec(),
                )])
                .unwrap();
            store
                .set_log_cursor(format!("m{i}").as_bytes(), [2; 16], i as u64, [0; 32])
                .unwrap();
        }
        let cursors = store.log_cursors().unwrap();
        assert_eq!(cursors.len(), MAX_STORED_CURSORS);
        assert!(
            cursors
                .iter()
                .any(|c| c.0 == format!("m{}", MAX_STORED_CURSORS + 2).as_bytes())
        );
        assert!(!cursors.iter().any(|c| c.0 == b"mirror-a"));
    }
}
