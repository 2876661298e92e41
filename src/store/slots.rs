//! The sequence slots: for each sequence number of a publisher the store
//! has seen, its state (held, evicted, revoked) and the bundle's id, the
//! slot's value (`[state, id…]`, 33 bytes).
//!
//! Kept in blocks (see `blocks`): `S` + publisher + block (u64 BE,
//! sequence ÷ 32) → the block's slots. A publisher's numbers follow each
//! other, so a block fills as its stories arrive, and a new story rewrites
//! one block of about 600 bytes on average. Schema 2 kept an entry per
//! slot under `s`; `Store::convert_blocks` moves them at open.

use super::blocks::{self, BLOCK, Block};
use super::kv::{Kv, Op};
use super::tables::{OLD_SEQ, SEQ, key};
use super::tx::Tx;
use super::{Store, StoreError};
use crate::proto::PublicKey;

/// A slot's value: its state byte, then the bundle's id.
pub(super) const SLOT_LEN: usize = 33;
const WHAT: &str = "sequence slots";

fn block_key(publisher: &PublicKey, sequence: u64) -> Vec<u8> {
    key(
        SEQ,
        &[publisher.as_bytes(), &(sequence / BLOCK).to_be_bytes()],
    )
}

fn offset(sequence: u64) -> u8 {
    (sequence % BLOCK) as u8
}

fn decode(v: &[u8]) -> Result<Block, StoreError> {
    let items = blocks::decode(v, SLOT_LEN, WHAT)?;
    if items.iter().any(|(_, b)| b.len() != SLOT_LEN) {
        return Err(StoreError::Corrupt(WHAT.into()));
    }
    Ok(items)
}

/// The slot of `publisher`'s `sequence`, read by `get`.
pub(super) fn slot(
    get: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, StoreError>,
    publisher: &PublicKey,
    sequence: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(v) = get(&block_key(publisher, sequence))? else {
        return Ok(None);
    };
    let items = decode(&v)?;
    Ok(items
        .binary_search_by_key(&offset(sequence), |(o, _)| *o)
        .ok()
        .map(|i| items[i].1.clone()))
}

/// Sets (or, with `None`, clears) the slot of `publisher`'s `sequence`
/// in `tx`.
pub(super) fn set_slot(
    tx: &mut Tx<'_>,
    publisher: &PublicKey,
    sequence: u64,
    value: Option<Vec<u8>>,
) -> Result<(), StoreError> {
    debug_assert!(value.as_ref().is_none_or(|v| v.len() == SLOT_LEN));
    let k = block_key(publisher, sequence);
    let mut items = match tx.get(&k)? {
        Some(v) => decode(&v)?,
        None => Vec::new(),
    };
    blocks::set(&mut items, offset(sequence), value);
    if items.is_empty() {
        tx.delete(k);
    } else {
        tx.put(k, blocks::encode(&items));
    }
    Ok(())
}

/// The writes that set `slots` (publisher, sequence, value), all new to
/// a table that holds none of their blocks (a rebuild).
pub(super) fn fresh_blocks(slots: impl IntoIterator<Item = (PublicKey, u64, Vec<u8>)>) -> Vec<Op> {
    let mut by_block: std::collections::BTreeMap<Vec<u8>, Block> = Default::default();
    for (p, seq, v) in slots {
        blocks::set(
            by_block.entry(block_key(&p, seq)).or_default(),
            offset(seq),
            Some(v),
        );
    }
    by_block
        .into_iter()
        .map(|(k, items)| Op::Put(k, blocks::encode(&items)))
        .collect()
}

/// Every slot, of one publisher or of all, in key order: publisher,
/// sequence, value.
pub(super) fn scan<'a>(
    kv: &'a Kv,
    publisher: Option<&PublicKey>,
) -> impl Iterator<Item = Result<(PublicKey, u64, Vec<u8>), StoreError>> + 'a {
    let prefix = match publisher {
        Some(p) => key(SEQ, &[p.as_bytes()]),
        None => vec![SEQ],
    };
    kv.scan(&prefix, false).flat_map(|r| {
        let block = r.and_then(|(k, v)| {
            let (p, n) = publisher_and_number(&k, "sequence slot key")?;
            Ok((p, n, decode(&v)?))
        });
        match block {
            Ok((p, n, items)) => items
                .into_iter()
                .map(|(o, v)| Ok((p, n * BLOCK + u64::from(o), v)))
                .collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        }
    })
}

/// The publisher and the number of a key of either layout (`S` or `s`):
/// prefix, publisher, u64 BE, nothing after.
fn publisher_and_number(k: &[u8], what: &str) -> Result<(PublicKey, u64), StoreError> {
    let bad = || StoreError::Corrupt(what.into());
    let p: [u8; 32] = k
        .get(1..33)
        .ok_or_else(bad)?
        .try_into()
        .map_err(|_| bad())?;
    let n: [u8; 8] = k
        .get(33..41)
        .filter(|_| k.len() == 41)
        .ok_or_else(bad)?
        .try_into()
        .map_err(|_| bad())?;
    Ok((PublicKey(p), u64::from_be_bytes(n)))
}

/// The key of every block of slots, to clear the table.
pub(super) fn block_keys(kv: &Kv) -> impl Iterator<Item = Result<Vec<u8>, StoreError>> + '_ {
    kv.scan(&[SEQ], false).map(|r| r.map(|(k, _)| k))
}

impl Store {
    /// Moves the slots of schema 2, an entry per slot under `s`, into
    /// blocks (see `blocks::move_into_blocks`). Caller holds the write
    /// lock.
    pub(super) fn move_slots(&self) -> Result<u64, StoreError> {
        blocks::move_into_blocks(&self.kv, OLD_SEQ, SLOT_LEN, WHAT, |k, v| {
            const WHAT_OLD: &str = "a schema 2 sequence slot";
            if v.len() != SLOT_LEN {
                return Err(StoreError::Corrupt(WHAT_OLD.into()));
            }
            let (p, seq) = publisher_and_number(k, WHAT_OLD)?;
            Ok((block_key(&p, seq), offset(seq)))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::seal::{DataKey, Sealer};
    use crate::store::StoreConfig;
    use crate::store::tables::{META, META_SCHEMA, SCHEMA_VERSION};

    fn value(n: u64) -> Vec<u8> {
        let mut v = vec![(n % 3) as u8];
        v.extend_from_slice(&[(n % 251) as u8; 32]);
        v
    }

    fn stores() -> Vec<Store> {
        vec![
            Store::memory(StoreConfig::default()),
            Store::memory_with(
                StoreConfig::default(),
                Some(Arc::new(Sealer::new(&DataKey::random()))),
            ),
        ]
    }

    /// Slots set and cleared in batches, out of order, for three
    /// publishers: every read, point or scan, gives what is left.
    #[test]
    fn slots_in_blocks_read_back_as_set() {
        for store in stores() {
            let ps = [
                PublicKey([1; 32]),
                PublicKey([2; 32]),
                PublicKey([0xff; 32]),
            ];
            let mut reference: BTreeMap<(PublicKey, u64), Vec<u8>> = BTreeMap::new();
            for round in 0..30u64 {
                let mut tx = Tx::new(&store.kv);
                for i in 0..40u64 {
                    let seq = (round * 37 + i * 11) % 300;
                    let p = ps[((round + i) % 3) as usize];
                    if (round + i) % 5 == 0 {
                        set_slot(&mut tx, &p, seq, None).unwrap();
                        reference.remove(&(p, seq));
                    } else {
                        set_slot(&mut tx, &p, seq, Some(value(seq + round))).unwrap();
                        reference.insert((p, seq), value(seq + round));
                    }
                }
                tx.commit().unwrap();
            }
            for p in &ps {
                for seq in 0..310 {
                    assert_eq!(
                        slot(|k| store.kv.get(k), p, seq).unwrap(),
                        reference.get(&(*p, seq)).cloned(),
                        "{seq}"
                    );
                }
                let scanned: Vec<_> = scan(&store.kv, Some(p)).map(|r| r.unwrap()).collect();
                let want: Vec<_> = reference
                    .iter()
                    .filter(|((q, _), _)| q == p)
                    .map(|((q, s), v)| (*q, *s, v.clone()))
                    .collect();
                assert_eq!(scanned, want);
            }
            let all: Vec<_> = scan(&store.kv, None).map(|r| r.unwrap()).collect();
            assert_eq!(all.len(), reference.len());
            // At most one block per 32 numbers of each publisher.
            assert!(block_keys(&store.kv).count() <= 3 * 310usize.div_ceil(32));
            // A rebuild from the same slots gives the same blocks.
            let rebuilt = Store::memory(StoreConfig::default());
            rebuilt.kv.apply(fresh_blocks(all.iter().cloned())).unwrap();
            let again: Vec<_> = scan(&rebuilt.kv, None).map(|r| r.unwrap()).collect();
            if !store.kv.is_sealed() {
                assert_eq!(again, all);
            } else {
                assert_eq!(again.len(), all.len());
            }
        }
    }

    /// Slots of schema 2, an entry each, are moved into blocks at open,
    /// plain and sealed, also when a crash left part of them moved.
    #[test]
    fn slots_of_entries_are_moved_into_blocks() {
        for store in stores() {
            let p = PublicKey([7; 32]);
            let q = PublicKey([8; 32]);
            let mut want = Vec::new();
            let mut ops = vec![Op::Put(
                key(META, &[META_SCHEMA]),
                2u32.to_be_bytes().to_vec(),
            )];
            for (who, seqs) in [(p, 1..200u64), (q, 30..70)] {
                for seq in seqs.filter(|s| s % 9 != 4) {
                    want.push((who, seq, value(seq)));
                    ops.push(Op::Put(
                        key(OLD_SEQ, &[who.as_bytes(), &seq.to_be_bytes()]),
                        value(seq),
                    ));
                }
            }
            store.kv.apply(ops).unwrap();
            // Before the crash: p's block 0 was written, and all but one
            // of its entries removed.
            let mut tx = Tx::new(&store.kv);
            for seq in (1..32u64).filter(|s| s % 9 != 4) {
                set_slot(&mut tx, &p, seq, Some(value(seq))).unwrap();
                if seq != 5 {
                    tx.delete(key(OLD_SEQ, &[p.as_bytes(), &seq.to_be_bytes()]));
                }
            }
            tx.commit().unwrap();
            store.convert_blocks().unwrap();
            let got: Vec<_> = scan(&store.kv, None).map(|r| r.unwrap()).collect();
            let mut sorted = got.clone();
            sorted.sort();
            let mut want_sorted = want.clone();
            want_sorted.sort();
            assert_eq!(sorted, want_sorted);
            assert!(store.kv.scan(&[OLD_SEQ], false).next().is_none());
            assert_eq!(
                store.kv.get(&key(META, &[META_SCHEMA])).unwrap().unwrap(),
                SCHEMA_VERSION.to_be_bytes()
            );
            assert_eq!(store.held_at(&p, 7).unwrap(), None, "state 1 is not held");
            assert_eq!(
                store.seq_state(&p, 9).unwrap(),
                Some(crate::store::SeqState::Held)
            );
        }
    }

    #[test]
    fn slot_blocks_refuse_items_of_another_length() {
        let short = blocks::encode(&vec![(0, vec![0; 32])]);
        assert!(decode(&short).is_err());
        let good = blocks::encode(&vec![(0, vec![0; 33]), (31, vec![1; 33])]);
        assert_eq!(decode(&good).unwrap().len(), 2);
    }
}
