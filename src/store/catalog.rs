//! The catalog index: the newest version of every story, newest first,
//! per publisher and per facet of a publisher (a language, a section, or
//! both), and small counters per facet and per publisher, so that a list
//! page is one range scan whatever the size of the archive.
//!
//! Entries (see `tables`): under `i`, publisher, facet, inverted first
//! publication, inverted story id, the story's entry; under `n`,
//! publisher, facet, the facet's count and name, and under the facet
//! [`SLOTS`] the publisher's held bundles and known sequence ranges. They
//! change in the same batch as the story entries and sequence slots they
//! follow ([`index_change`], [`slot_change`]), so they never disagree with
//! them, also after a crash. A store made before they existed gets them at
//! open ([`Store::index_catalog`]), as does a repaired one.

use std::collections::{BTreeMap, HashMap};

use super::kv::Op;
use super::tables::{
    COUNTS, INDEX, META, META_CATALOG, SEQ, STORY, SeqState, StoryEntry, key, story_key,
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
/// Entries written per batch while the index is built.
const BUILD_BATCH: usize = 4096;
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

fn index_key(publisher: &PublicKey, facet: &[u8; FACET_LEN], at: &IndexCursor) -> Vec<u8> {
    // Inverted, so that a forward scan gives the newest first, and among
    // stories published at the same second the larger id first.
    let time = (u64::MAX - at.published.0).to_be_bytes();
    let story: Vec<u8> = at.story.as_bytes().iter().map(|b| !b).collect();
    key(INDEX, &[publisher.as_bytes(), facet, &time, &story])
}

fn count_key(publisher: &PublicKey, facet: &[u8; FACET_LEN]) -> Vec<u8> {
    key(COUNTS, &[publisher.as_bytes(), facet])
}

fn decode_index(k: &[u8], v: &[u8]) -> Result<StoryEntry, StoreError> {
    let bad = || StoreError::Corrupt("catalog index entry".into());
    if k.len() != 1 + 32 + FACET_LEN + 8 + 16 {
        return Err(bad());
    }
    let publisher = PublicKey(k[1..33].try_into().map_err(|_| bad())?);
    let mut story = [0u8; 16];
    for (o, b) in story.iter_mut().zip(&k[1 + 32 + FACET_LEN + 8..]) {
        *o = !b;
    }
    StoryEntry::decode(&story_key(&publisher, &StoryId(story)), v)
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
        let at = IndexCursor {
            published: e.published,
            story: e.story,
        };
        for f in facets(e) {
            tx.delete(index_key(&e.publisher, &f.bytes(), &at));
            bump(tx, &e.publisher, &f, -1)?;
        }
    }
    if let Some(e) = new {
        let at = IndexCursor {
            published: e.published,
            story: e.story,
        };
        let v = e.encode();
        for f in facets(e) {
            tx.put(index_key(&e.publisher, &f.bytes(), &at), v.clone());
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
        let start = after.map(|c| index_key(publisher, &f, c));
        let skip = start.clone();
        self.kv
            .range_from(&prefix, start.as_deref().unwrap_or(&prefix))
            .filter(move |r| !matches!((r, &skip), (Ok((k, _)), Some(s)) if k == s))
            .map(|r| r.and_then(|(k, v)| decode_index(&k, &v)))
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
        if self.kv.contains(&key(META, &[META_CATALOG]))? {
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
        let mut counts: HashMap<(PublicKey, [u8; FACET_LEN]), (u64, Vec<u8>)> = HashMap::new();
        let mut stories = 0u64;
        for item in self.kv.scan(&[STORY], false) {
            let (k, v) = item?;
            let e = StoryEntry::decode(&k, &v)?;
            let at = IndexCursor {
                published: e.published,
                story: e.story,
            };
            for f in facets(&e) {
                let fb = f.bytes();
                ops.push(Op::Put(index_key(&e.publisher, &fb, &at), v.clone()));
                counts.entry((e.publisher, fb)).or_insert((0, f.label())).0 += 1;
            }
            stories += 1;
            if ops.len() >= BUILD_BATCH {
                self.kv.apply(std::mem::take(&mut ops))?;
            }
        }
        let mut slots: HashMap<PublicKey, Slots> = HashMap::new();
        for item in self.kv.scan(&[SEQ], false) {
            let (k, v) = item?;
            let bad = || StoreError::Corrupt("sequence key".into());
            let publisher = PublicKey(
                k.get(1..33)
                    .ok_or_else(bad)?
                    .try_into()
                    .map_err(|_| bad())?,
            );
            let seq = count_of(k.get(33..41).ok_or_else(bad)?);
            let state = v.first().and_then(|b| SeqState::from_u8(*b));
            let s = slots.entry(publisher).or_default();
            if state == Some(SeqState::Held) {
                s.held += 1;
            }
            if known(state) {
                range_insert(&mut s.known, seq);
            }
        }
        for ((publisher, f), (n, label)) in counts {
            let mut v = n.to_be_bytes().to_vec();
            v.extend_from_slice(&label);
            ops.push(Op::Put(count_key(&publisher, &f), v));
        }
        for (publisher, s) in slots {
            ops.push(Op::Put(count_key(&publisher, &SLOTS), s.encode()));
        }
        ops.push(Op::Put(key(META, &[META_CATALOG]), vec![1]));
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
mod tests {
    use super::*;
    use crate::proto::ranges::to_ranges;

    #[test]
    fn ranges_follow_a_set() {
        let mut set = std::collections::BTreeSet::new();
        let mut r = Vec::new();
        let mut x = 12345u64;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let s = (x >> 33) % 200 + 1;
            if (x >> 20) & 1 == 0 {
                set.insert(s);
                range_insert(&mut r, s);
            } else {
                set.remove(&s);
                range_remove(&mut r, s);
            }
            assert_eq!(r, to_ranges(set.iter().copied()), "after {s}");
        }
    }

    #[test]
    fn slots_round_trip_and_refuse_bad_lengths() {
        let s = Slots {
            held: 7,
            known: vec![(1, 5), (9, 9)],
        };
        let v = s.encode();
        let d = Slots::decode(&v).unwrap();
        assert_eq!((d.held, d.known), (7, vec![(1, 5), (9, 9)]));
        assert!(Slots::decode(&v[..v.len() - 1]).is_err());
        let mut huge = v.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Slots::decode(&huge).is_err());
    }

    #[test]
    fn facets_have_distinct_names() {
        let names = [
            Facet::All.bytes(),
            Facet::Language("en").bytes(),
            Facet::Section("en").bytes(),
            Facet::Both("en", "en").bytes(),
        ];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(Facet::Language("EN").bytes(), Facet::Language("en").bytes());
        assert_ne!(
            Facet::Section("News").bytes(),
            Facet::Section("news").bytes()
        );
    }
}
