//! The catalog index: the newest version of every story, newest first,
//! per publisher and per facet of a publisher (a language, a section, or
//! both), and small counters per facet and per publisher, so that a list
//! page is one range scan whatever the size of the archive.
//!
//! Entries (see `tables`): under `i`, publisher, facet and an inverted
//! time, a block of up to [`BLOCK`] stories of the facet, those whose
//! inverted first publication is after the previous block's time and at
//! most this one's; under `n`, publisher, facet, the facet's count and
//! name, and under the facet [`SLOTS`] the publisher's held bundles and
//! known sequence ranges. They change in the same batch as the story
//! entries and sequence slots they follow ([`index_change`],
//! [`slot_change`]), so they never disagree with them, also after a
//! crash. A store made before they existed gets them at open
//! ([`Store::index_catalog`]), as does a repaired one.
//!
//! Why blocks: sled 0.34 keeps some 500 bytes in memory for every page of
//! its tree, from the moment it opens, and a page holds at most 16
//! entries; an entry per story and facet (four for a story with a
//! section) was a third of all the entries of a large store, so of its
//! memory and of its open time. A block is rewritten whole when a story
//! comes or goes, a few kilobytes. Blocks are split only between seconds,
//! because their keys hold only the time: sealed, the time keeps its
//! order and a story id would not, so a key with the story in it could
//! not say where a story of the same second belongs.

use std::collections::{BTreeMap, HashMap};

use super::kv::Op;
use super::tables::{
    COUNTS, INDEX, META, META_CATALOG, META_CATALOG_ENTRIES, STORY, SeqState, StoryEntry, key,
    story_key,
};
use super::tx::Tx;
use super::{Store, StoreError};
use crate::proto::{PublicKey, StoryId, Timestamp};

/// Bytes of a facet's name in a key.
pub(super) const FACET_LEN: usize = 16;
/// The facet of all of a publisher's stories.
const ALL: [u8; FACET_LEN] = [0; FACET_LEN];
/// Under `n`: the publisher's held bundles and known sequence ranges.
pub(super) const SLOTS: [u8; FACET_LEN] = [0xff; FACET_LEN];
/// Entries deleted per batch before the index is built.
const BUILD_BATCH: usize = 4096;
/// Stories indexed per batch while the index is built: each batch holds
/// the blocks it rewrote until it commits.
const BUILD_STORIES: usize = 1024;
/// Most stories in a block, unless more share one second of first
/// publication (a block is split only between seconds).
pub(super) const BLOCK: usize = 16;
/// Bytes of a block's item before the story's entry: inverted time,
/// story, the entry's length.
const ITEM_HEAD: usize = 8 + 16 + 2;
/// Most known sequence ranges kept per publisher: a value larger than
/// this is refused as damaged rather than allocated.
const MAX_RANGES: usize = 1 << 20;

/// Which of a publisher's stories a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facet<'a> {
    /// All of them.
    All,
    /// Those in one language (compared in lower case).
    Language(&'a str),
    /// Those in one section (compared exactly).
    Section(&'a str),
    /// Those in one language and one section.
    Both(&'a str, &'a str),
}

impl Facet<'_> {
    /// The facet for optional language and section filters.
    pub fn of<'a>(language: Option<&'a str>, section: Option<&'a str>) -> Facet<'a> {
        match (language, section) {
            (None, None) => Facet::All,
            (Some(l), None) => Facet::Language(l),
            (None, Some(s)) => Facet::Section(s),
            (Some(l), Some(s)) => Facet::Both(l, s),
        }
    }

    /// Its name in keys: a hash, so keys have one length and the names
    /// (bounded by the manifest limits) stay in the values.
    fn bytes(&self) -> [u8; FACET_LEN] {
        let mut h = blake3::Hasher::new();
        match self {
            Facet::All => return ALL,
            Facet::Language(l) => {
                h.update(b"kolokol index language\0");
                h.update(l.to_ascii_lowercase().as_bytes());
            }
            Facet::Section(s) => {
                h.update(b"kolokol index section\0");
                h.update(s.as_bytes());
            }
            Facet::Both(l, s) => {
                h.update(b"kolokol index language and section\0");
                h.update(l.to_ascii_lowercase().as_bytes());
                h.update(b"\0");
                h.update(s.as_bytes());
            }
        }
        let mut out = [0u8; FACET_LEN];
        out.copy_from_slice(&h.finalize().as_bytes()[..FACET_LEN]);
        out
    }

    /// How its counter names it: a kind byte, then the name.
    fn label(&self) -> Vec<u8> {
        match self {
            Facet::All => vec![0],
            Facet::Language(l) => [&[1u8][..], l.as_bytes()].concat(),
            Facet::Section(s) => [&[2u8][..], s.as_bytes()].concat(),
            Facet::Both(..) => vec![3],
        }
    }
}

/// Where a list stopped: the last story shown, to go on after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexCursor {
    /// Its first publication.
    pub published: Timestamp,
    /// The story.
    pub story: StoryId,
}

/// The counters of one publisher.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublisherCounts {
    /// Stories held (their newest versions).
    pub stories: u64,
    /// Bundles held.
    pub bundles: u64,
    /// Sequence numbers known (held or evicted), as ranges.
    pub known: Vec<(u64, u64)>,
    /// Stories per language.
    pub languages: BTreeMap<String, u64>,
    /// Stories per section.
    pub sections: BTreeMap<String, u64>,
}

fn facets(e: &StoryEntry) -> Vec<Facet<'_>> {
    let mut f = vec![Facet::All, Facet::Language(&e.language)];
    if let Some(s) = &e.section {
        f.push(Facet::Section(s));
        f.push(Facet::Both(&e.language, s));
    }
    f
}

/// The key of a block of `publisher`'s `facet` whose stories have an
/// inverted first publication of at most `inverted`.
fn block_key(publisher: &PublicKey, facet: &[u8; FACET_LEN], inverted: u64) -> Vec<u8> {
    key(
        INDEX,
        &[publisher.as_bytes(), facet, &inverted.to_be_bytes()],
    )
}

/// Inverted, so that a forward scan gives the newest first.
fn inverted(t: Timestamp) -> u64 {
    u64::MAX - t.0
}

/// One story in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    /// Inverted first publication.
    inverted: u64,
    story: StoryId,
    /// The story's entry, as under `t`.
    entry: Vec<u8>,
}

impl Item {
    fn of(e: &StoryEntry) -> Self {
        Self {
            inverted: inverted(e.published),
            story: e.story,
            entry: e.encode(),
        }
    }

    /// A block's order: newest first, and among stories of one second the
    /// larger id first.
    fn order(&self) -> (u64, std::cmp::Reverse<[u8; 16]>) {
        (self.inverted, std::cmp::Reverse(self.story.0))
    }

    fn decode(&self, publisher: &PublicKey) -> Result<StoryEntry, StoreError> {
        StoryEntry::decode(&story_key(publisher, &self.story), &self.entry)
    }
}

fn encode_block(items: &[Item]) -> Vec<u8> {
    let size = items
        .iter()
        .map(|i| ITEM_HEAD + i.entry.len())
        .sum::<usize>();
    let mut v = Vec::with_capacity(4 + size);
    v.extend_from_slice(&(items.len() as u32).to_be_bytes());
    for i in items {
        v.extend_from_slice(&i.inverted.to_be_bytes());
        v.extend_from_slice(&i.story.0);
        // An entry is bounded by the manifest limits (under 300 bytes).
        v.extend_from_slice(&(i.entry.len() as u16).to_be_bytes());
        v.extend_from_slice(&i.entry);
    }
    v
}

fn decode_block(v: &[u8]) -> Result<Vec<Item>, StoreError> {
    let bad = || StoreError::Corrupt("catalog index block".into());
    let n = v
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(bad)? as usize;
    // Checked before the allocation: every item takes at least its head.
    if n == 0 || n > (v.len() - 4) / ITEM_HEAD {
        return Err(bad());
    }
    let mut items = Vec::with_capacity(n);
    let mut rest = &v[4..];
    for _ in 0..n {
        let head = rest.get(..ITEM_HEAD).ok_or_else(bad)?;
        let inverted = u64::from_be_bytes(head[..8].try_into().map_err(|_| bad())?);
        let story = StoryId(head[8..24].try_into().map_err(|_| bad())?);
        let len = u16::from_be_bytes(head[24..26].try_into().map_err(|_| bad())?) as usize;
        let entry = rest
            .get(ITEM_HEAD..ITEM_HEAD + len)
            .ok_or_else(bad)?
            .to_vec();
        rest = &rest[ITEM_HEAD + len..];
        items.push(Item {
            inverted,
            story,
            entry,
        });
    }
    if !rest.is_empty() || !items.is_sorted_by_key(Item::order) {
        return Err(bad());
    }
    Ok(items)
}

/// Where to split a block that has grown past [`BLOCK`] by the item now
/// at `at`: always between two seconds; at the end it grew at, so that a
/// block filled from one end (new stories at the front, or an archive
/// taken oldest last) is left full and the next one starts small, the
/// way a B-tree splits under appends; in the middle otherwise.
fn split_point(items: &[Item], at: usize) -> Option<usize> {
    let boundary =
        |i: usize| i > 0 && i < items.len() && items[i - 1].inverted != items[i].inverted;
    if at == 0 {
        return (1..items.len()).find(|&i| boundary(i));
    }
    if at + 1 == items.len() {
        return (1..items.len()).rev().find(|&i| boundary(i));
    }
    let mid = items.len() / 2;
    (0..=mid)
        .flat_map(|d| [mid + d, mid.wrapping_sub(d)])
        .find(|&i| boundary(i))
}

/// Adds `item` to `publisher`'s `facet` in `tx`.
fn block_insert(
    tx: &mut Tx<'_>,
    publisher: &PublicKey,
    facet: &[u8; FACET_LEN],
    item: Item,
) -> Result<(), StoreError> {
    let prefix = key(INDEX, &[publisher.as_bytes(), facet]);
    let at = block_key(publisher, facet, item.inverted);
    let (block, mut items) = match tx.first_from(&prefix, &at)? {
        Some((k, v)) => (k, decode_block(&v)?),
        // Older than every block: the last one takes it, under the new
        // story's time, while it has room.
        None => match tx.last_under(&prefix)? {
            Some((k, v)) => {
                let items = decode_block(&v)?;
                if items.len() < BLOCK {
                    tx.delete(k);
                    (at, items)
                } else {
                    (at, Vec::new())
                }
            }
            None => (at, Vec::new()),
        },
    };
    let at = match items.binary_search_by_key(&item.order(), Item::order) {
        Ok(i) => {
            items[i] = item;
            i
        }
        Err(i) => {
            items.insert(i, item);
            i
        }
    };
    if items.len() > BLOCK
        && let Some(cut) = split_point(&items, at)
    {
        let newer = block_key(publisher, facet, items[cut - 1].inverted);
        tx.put(newer, encode_block(&items[..cut]));
        items.drain(..cut);
    }
    tx.put(block, encode_block(&items));
    Ok(())
}

/// Removes the story `story` first published at `published` from
/// `publisher`'s `facet` in `tx`; nothing when it is not there.
fn block_remove(
    tx: &mut Tx<'_>,
    publisher: &PublicKey,
    facet: &[u8; FACET_LEN],
    published: Timestamp,
    story: &StoryId,
) -> Result<(), StoreError> {
    let prefix = key(INDEX, &[publisher.as_bytes(), facet]);
    let at = inverted(published);
    let Some((block, v)) = tx.first_from(&prefix, &block_key(publisher, facet, at))? else {
        return Ok(());
    };
    let mut items = decode_block(&v)?;
    let before = items.len();
    items.retain(|i| !(i.inverted == at && i.story == *story));
    if items.len() == before {
        return Ok(());
    }
    if items.is_empty() {
        tx.delete(block);
    } else {
        tx.put(block, encode_block(&items));
    }
    Ok(())
}

fn count_key(publisher: &PublicKey, facet: &[u8; FACET_LEN]) -> Vec<u8> {
    key(COUNTS, &[publisher.as_bytes(), facet])
}

fn count_of(v: &[u8]) -> u64 {
    v.get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// Adds `delta` to a facet's counter in `tx`; a counter at zero goes.
fn bump(
    tx: &mut Tx<'_>,
    publisher: &PublicKey,
    facet: &Facet<'_>,
    delta: i64,
) -> Result<(), StoreError> {
    let k = count_key(publisher, &facet.bytes());
    let n = tx
        .get(&k)?
        .map_or(0, |v| count_of(&v))
        .saturating_add_signed(delta);
    if n == 0 {
        tx.delete(k);
    } else {
        let mut v = n.to_be_bytes().to_vec();
        v.extend_from_slice(&facet.label());
        tx.put(k, v);
    }
    Ok(())
}

/// Moves a story's index entries and counters, in `tx`, from its entry
/// `old` to `new` (either absent when the story comes or goes).
pub(super) fn index_change(
    tx: &mut Tx<'_>,
    old: Option<&StoryEntry>,
    new: Option<&StoryEntry>,
) -> Result<(), StoreError> {
    if old == new {
        return Ok(());
    }
    if let Some(e) = old {
        for f in facets(e) {
            block_remove(tx, &e.publisher, &f.bytes(), e.published, &e.story)?;
            bump(tx, &e.publisher, &f, -1)?;
        }
    }
    if let Some(e) = new {
        let item = Item::of(e);
        for f in facets(e) {
            block_insert(tx, &e.publisher, &f.bytes(), item.clone())?;
            bump(tx, &e.publisher, &f, 1)?;
        }
    }
    Ok(())
}

/// A publisher's held bundles and known ranges.
#[derive(Debug, Default)]
struct Slots {
    held: u64,
    known: Vec<(u64, u64)>,
}

impl Slots {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(12 + 16 * self.known.len());
        v.extend_from_slice(&self.held.to_be_bytes());
        v.extend_from_slice(&(self.known.len() as u32).to_be_bytes());
        for (a, b) in &self.known {
            v.extend_from_slice(&a.to_be_bytes());
            v.extend_from_slice(&b.to_be_bytes());
        }
        v
    }

    fn decode(v: &[u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt("catalog sequence counters".into());
        let head = v.get(..12).ok_or_else(bad)?;
        let held = u64::from_be_bytes(head[..8].try_into().map_err(|_| bad())?);
        let n = u32::from_be_bytes(head[8..12].try_into().map_err(|_| bad())?) as usize;
        if n > MAX_RANGES || v.len() != 12 + 16 * n {
            return Err(bad());
        }
        let known = v[12..]
            .chunks_exact(16)
            .map(|c| (count_of(&c[..8]), count_of(&c[8..])))
            .collect();
        Ok(Self { held, known })
    }
}

/// Adds `s` to sorted, disjoint, non-adjacent ranges.
fn range_insert(r: &mut Vec<(u64, u64)>, s: u64) {
    let i = r.partition_point(|&(_, b)| b.saturating_add(1) < s);
    match r.get(i).copied() {
        Some((a, b)) if a <= s.saturating_add(1) => {
            if s.checked_add(1) == Some(a) {
                r[i].0 = s;
            } else if s > b {
                r[i].1 = s;
                if r.get(i + 1).is_some_and(|n| n.0 == s.saturating_add(1)) {
                    r[i].1 = r[i + 1].1;
                    r.remove(i + 1);
                }
            }
        }
        _ => r.insert(i, (s, s)),
    }
}

/// Takes `s` out of sorted, disjoint ranges.
fn range_remove(r: &mut Vec<(u64, u64)>, s: u64) {
    let i = r.partition_point(|&(_, b)| b < s);
    let Some((a, b)) = r.get(i).copied() else {
        return;
    };
    if a > s {
        return;
    }
    match (a == s, b == s) {
        (true, true) => {
            r.remove(i);
        }
        (true, false) => r[i].0 = s + 1,
        (false, true) => r[i].1 = s - 1,
        (false, false) => {
            r[i].1 = s - 1;
            r.insert(i + 1, (s + 1, b));
        }
    }
}

fn known(state: Option<SeqState>) -> bool {
    matches!(state, Some(SeqState::Held | SeqState::Evicted))
}

/// Follows, in `tx`, a sequence slot of `publisher` going from `old` to
/// `new` (absent: no slot).
pub(super) fn slot_change(
    tx: &mut Tx<'_>,
    publisher: &PublicKey,
    seq: u64,
    old: Option<SeqState>,
    new: Option<SeqState>,
) -> Result<(), StoreError> {
    if old == new {
        return Ok(());
    }
    let k = count_key(publisher, &SLOTS);
    let mut slots = match tx.get(&k)? {
        Some(v) => Slots::decode(&v)?,
        None => Slots::default(),
    };
    let held = |s: Option<SeqState>| u64::from(s == Some(SeqState::Held));
    slots.held = (slots.held + held(new)).saturating_sub(held(old));
    match (known(old), known(new)) {
        (false, true) => range_insert(&mut slots.known, seq),
        (true, false) => range_remove(&mut slots.known, seq),
        _ => {}
    }
    if slots.held == 0 && slots.known.is_empty() {
        tx.delete(k);
    } else {
        tx.put(k, slots.encode());
    }
    Ok(())
}

impl Store {
    /// Up to `limit` newest versions of `publisher`'s stories in `facet`,
    /// newest first by first publication, after `after` when given. Costs
    /// one range scan of `limit` entries.
    pub fn index_page(
        &self,
        publisher: &PublicKey,
        facet: Facet<'_>,
        after: Option<&IndexCursor>,
        limit: usize,
    ) -> Result<Vec<StoryEntry>, StoreError> {
        self.index_iter(publisher, facet, after)
            .take(limit)
            .collect()
    }

    /// The newest versions of `publisher`'s stories in `facet`, newest
    /// first, after `after` when given, read from the index as they are
    /// taken.
    pub fn index_iter<'a>(
        &'a self,
        publisher: &PublicKey,
        facet: Facet<'_>,
        after: Option<&IndexCursor>,
    ) -> impl Iterator<Item = Result<StoryEntry, StoreError>> + 'a {
        let f = facet.bytes();
        let prefix = key(INDEX, &[publisher.as_bytes(), &f]);
        let after = after.map(|c| (inverted(c.published), std::cmp::Reverse(c.story.0)));
        // Only the first block can hold the cursor and stories before it.
        let start = block_key(publisher, &f, after.map_or(0, |a| a.0));
        let publisher = *publisher;
        self.kv.range_from(&prefix, &start).flat_map(move |r| {
            match r.and_then(|(_, v)| decode_block(&v)) {
                Ok(items) => items
                    .into_iter()
                    .filter(|i| after.is_none_or(|a| i.order() > a))
                    .map(|i| i.decode(&publisher))
                    .collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            }
        })
    }

    /// How many of `publisher`'s stories are in `facet`: one read.
    pub fn facet_count(&self, publisher: &PublicKey, facet: Facet<'_>) -> Result<u64, StoreError> {
        Ok(self
            .kv
            .get(&count_key(publisher, &facet.bytes()))?
            .map_or(0, |v| count_of(&v)))
    }

    /// The counters of `publisher`: a scan of its few counter entries.
    pub fn publisher_counts(&self, publisher: &PublicKey) -> Result<PublisherCounts, StoreError> {
        let mut out = PublisherCounts::default();
        for item in self.kv.scan(&key(COUNTS, &[publisher.as_bytes()]), false) {
            let (k, v) = item?;
            if k.get(33..) == Some(&SLOTS[..]) {
                let s = Slots::decode(&v)?;
                out.bundles = s.held;
                out.known = s.known;
                continue;
            }
            let n = count_of(&v);
            let name = || {
                std::str::from_utf8(v.get(9..).unwrap_or_default())
                    .map(str::to_owned)
                    .map_err(|_| StoreError::Corrupt("catalog counter".into()))
            };
            match v.get(8) {
                Some(0) => out.stories = n,
                Some(1) => {
                    out.languages.insert(name()?, n);
                }
                Some(2) => {
                    out.sections.insert(name()?, n);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Builds the catalog index from the story entries and sequence slots
    /// when the store has none yet (made before it existed, or repaired).
    /// A crash while building leaves no mark, so the next open starts over.
    pub(super) fn index_catalog(&self) -> Result<(), StoreError> {
        // The mark of an index of entries per story means a build that
        // kept the index that way wrote to this store: built again.
        if self.kv.contains(&key(META, &[META_CATALOG]))?
            && !self.kv.contains(&key(META, &[META_CATALOG_ENTRIES]))?
        {
            return Ok(());
        }
        let _w = self.lock()?;
        self.index_catalog_locked()
    }

    /// [`Store::index_catalog`] with the write lock held.
    pub(super) fn index_catalog_locked(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let mut ops = Vec::new();
        for table in [INDEX, COUNTS] {
            for item in self.kv.scan(&[table], false) {
                ops.push(Op::Delete(item?.0));
                if ops.len() >= BUILD_BATCH {
                    self.kv.apply(std::mem::take(&mut ops))?;
                }
            }
        }
        self.kv.apply(std::mem::take(&mut ops))?;
        // Story by story, as ingest indexes them, in batches that each
        // see their own blocks; the entries come in story id order, so
        // blocks fill and split at random times as they would in use.
        let mut stories = 0u64;
        let mut tx = Tx::new(&self.kv);
        for item in self.kv.scan(&[STORY], false) {
            let (k, v) = item?;
            let e = StoryEntry::decode(&k, &v)?;
            index_change(&mut tx, None, Some(&e))?;
            stories += 1;
            if stories.is_multiple_of(BUILD_STORIES as u64) {
                std::mem::replace(&mut tx, Tx::new(&self.kv)).commit()?;
            }
        }
        tx.commit()?;
        let mut slots: HashMap<PublicKey, Slots> = HashMap::new();
        for item in super::slots::scan(&self.kv, None) {
            let (publisher, seq, v) = item?;
            let state = v.first().and_then(|b| SeqState::from_u8(*b));
            let s = slots.entry(publisher).or_default();
            if state == Some(SeqState::Held) {
                s.held += 1;
            }
            if known(state) {
                range_insert(&mut s.known, seq);
            }
        }
        for (publisher, s) in slots {
            ops.push(Op::Put(count_key(&publisher, &SLOTS), s.encode()));
        }
        ops.push(Op::Put(key(META, &[META_CATALOG]), vec![1]));
        ops.push(Op::Delete(key(META, &[META_CATALOG_ENTRIES])));
        self.kv.apply(ops)?;
        self.kv.flush()?;
        if stories > 0 {
            tracing::info!(
                stories,
                ms = started.elapsed().as_millis() as u64,
                "built the catalog index"
            );
        }
        Ok(())
    }

    /// Removes the catalog index and its mark, as a store made before it
    /// existed has neither, for tests of the upgrade.
    #[doc(hidden)]
    pub fn drop_catalog_index_for_test(&self) -> Result<(), StoreError> {
        let mut ops = vec![Op::Delete(key(META, &[META_CATALOG]))];
        for table in [INDEX, COUNTS] {
            for item in self.kv.scan(&[table], false) {
                ops.push(Op::Delete(item?.0));
            }
        }
        self.kv.apply(ops)?;
        self.kv.flush()
    }
}

#[cfg(test)]
mod tests;
