//! Tables kept in blocks: many small entries whose keys follow each other
//! (log positions, a publisher's sequence numbers) put together under the
//! key of their block, 32 to a block.
//!
//! Why: sled 0.34 keeps some 500 bytes in memory for each page of its
//! tree, and a page holds at most 16 entries, whatever their size; what a
//! large store costs in memory and in time to open follows the count of
//! its entries. An entry per stored bundle, in each such table, was a
//! tenth of a large store's entries.
//!
//! A block is the count of its items, then each item: its offset in the
//! block, its length and its bytes, by offset.

use std::collections::HashMap;

use super::kv::{Kv, Op};
use super::tables::{META, META_SCHEMA, OLD_LOG, OLD_SEQ, SCHEMA_VERSION, key};
use super::{Store, StoreError};

/// Items per block: offsets go from 0 to `BLOCK - 1`.
pub(super) const BLOCK: u64 = 32;
/// Blocks written per batch while entries of an older schema are moved.
const MOVE_BLOCKS: usize = 128;

/// The items of one block: offset in the block and bytes, by offset.
pub(super) type Block = Vec<(u8, Vec<u8>)>;

pub(super) fn encode(items: &Block) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + items.iter().map(|(_, b)| 2 + b.len()).sum::<usize>());
    v.push(items.len() as u8);
    for (offset, bytes) in items {
        v.push(*offset);
        v.push(bytes.len() as u8);
        v.extend_from_slice(bytes);
    }
    v
}

/// Decodes a block whose items are at most `item_max` bytes long, `what`
/// naming the table in the error.
pub(super) fn decode(v: &[u8], item_max: usize, what: &str) -> Result<Block, StoreError> {
    let bad = || StoreError::Corrupt(what.into());
    let (&n, mut rest) = v.split_first().ok_or_else(bad)?;
    if n == 0 || u64::from(n) > BLOCK {
        return Err(bad());
    }
    let mut items: Block = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (&offset, after) = rest.split_first().ok_or_else(bad)?;
        let (&len, after) = after.split_first().ok_or_else(bad)?;
        let len = len as usize;
        if u64::from(offset) >= BLOCK
            || len > item_max
            || items.last().is_some_and(|(o, _)| *o >= offset)
        {
            return Err(bad());
        }
        items.push((offset, after.get(..len).ok_or_else(bad)?.to_vec()));
        rest = &after[len..];
    }
    if !rest.is_empty() {
        return Err(bad());
    }
    Ok(items)
}

/// Puts `bytes` at `offset` in `items`, or removes what is there when
/// `bytes` is `None`.
pub(super) fn set(items: &mut Block, offset: u8, bytes: Option<Vec<u8>>) {
    match (items.binary_search_by_key(&offset, |(o, _)| *o), bytes) {
        (Ok(i), Some(b)) => items[i].1 = b,
        (Ok(i), None) => {
            items.remove(i);
        }
        (Err(i), Some(b)) => items.insert(i, (offset, b)),
        (Err(_), None) => {}
    }
}

/// Where an entry of an older schema goes: its block's key and its
/// offset there.
pub(super) type Place = (Vec<u8>, u8);

/// Moves every entry under `old` (a table of an older schema, an entry
/// per item) into blocks, `place` saying where each goes, whole blocks per
/// batch: each batch writes its blocks and removes their entries at once,
/// so a crash leaves every item in one place, and the next call goes on.
/// A block already written (before a crash) keeps its items. Returns the
/// entries moved. Caller holds the write lock.
pub(super) fn move_into_blocks(
    kv: &Kv,
    old: u8,
    item_max: usize,
    what: &str,
    place: impl Fn(&[u8], &[u8]) -> Result<Place, StoreError>,
) -> Result<u64, StoreError> {
    let mut ops = Vec::new();
    // This batch's blocks: a block met again later in the same batch
    // (entries out of block order) is merged, not overwritten.
    let mut pending: HashMap<Vec<u8>, Block> = HashMap::new();
    let mut moved = 0u64;
    let write = |ops: &mut Vec<Op>, pending: &mut HashMap<Vec<u8>, Block>| {
        for (k, items) in pending.drain() {
            ops.push(Op::Put(k, encode(&items)));
        }
        kv.apply(std::mem::take(ops))
    };
    for item in kv.scan(&[old], false) {
        let (k, v) = item?;
        if v.len() > item_max {
            return Err(StoreError::Corrupt(format!("{what}: an entry too long")));
        }
        let (block, offset) = place(&k, &v)?;
        if !pending.contains_key(&block) {
            if pending.len() >= MOVE_BLOCKS {
                write(&mut ops, &mut pending)?;
            }
            let held = match kv.get(&block)? {
                Some(b) => decode(&b, item_max, what)?,
                None => Vec::new(),
            };
            pending.insert(block.clone(), held);
        }
        if let Some(items) = pending.get_mut(&block) {
            set(items, offset, Some(v));
        }
        ops.push(Op::Delete(k));
        moved += 1;
    }
    write(&mut ops, &mut pending)?;
    Ok(moved)
}

impl Store {
    /// Moves the tables schema 2 kept an entry per item (the log, the
    /// sequence slots) into blocks, then marks the store as of this
    /// schema. A crash leaves it of schema 2, and the next open goes on.
    pub(super) fn convert_blocks(&self) -> Result<(), StoreError> {
        let schema_key = key(META, &[META_SCHEMA]);
        let current = self.kv.get(&schema_key)?.as_deref() == Some(&SCHEMA_VERSION.to_be_bytes());
        let left = |t: u8| self.kv.scan(&[t], false).next().is_some();
        if current && !left(OLD_LOG) && !left(OLD_SEQ) {
            return Ok(());
        }
        let _w = self.lock()?;
        let log = self.move_log()?;
        let slots = self.move_slots()?;
        self.kv.apply(vec![Op::Put(
            schema_key,
            SCHEMA_VERSION.to_be_bytes().to_vec(),
        )])?;
        self.kv.flush()?;
        if log + slots > 0 {
            tracing::info!(
                log,
                slots,
                "moved the log and the sequence slots into blocks"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_refuse_bad_bytes() {
        let good = encode(&vec![(1, vec![7; 33]), (5, vec![8; 20])]);
        assert_eq!(decode(&good, 65, "t").unwrap().len(), 2);
        assert!(decode(&good, 32, "t").is_err(), "an item past the limit");
        assert!(decode(&good[..good.len() - 1], 65, "t").is_err());
        assert!(decode(&[good.clone(), vec![0]].concat(), 65, "t").is_err());
        assert!(decode(&[], 65, "t").is_err());
        assert!(decode(&[0], 65, "t").is_err());
        assert!(decode(&[33], 65, "t").is_err());
        // Out of order, and an offset past the block.
        assert!(decode(&encode(&vec![(5, vec![]), (1, vec![])]), 65, "t").is_err());
        assert!(decode(&encode(&vec![(32, vec![])]), 65, "t").is_err());
    }

    #[test]
    fn set_keeps_items_in_order() {
        let mut b = Block::new();
        for o in [5u8, 1, 31, 0, 5] {
            set(&mut b, o, Some(vec![o]));
        }
        set(&mut b, 1, None);
        set(&mut b, 2, None);
        assert_eq!(b, vec![(0, vec![0]), (5, vec![5]), (31, vec![31])]);
        assert_eq!(decode(&encode(&b), 1, "t").unwrap(), b);
    }
}
