//! The catalog index: ranges, counters and blocks against references.

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

/// A small generator, so that a failing case is the same every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn list(store: &Store, p: &PublicKey, f: Facet<'_>, page: usize) -> Vec<StoryEntry> {
    let mut out: Vec<StoryEntry> = Vec::new();
    loop {
        let after = out.last().map(|e| IndexCursor {
            published: e.published,
            story: e.story,
        });
        let got = store.index_page(p, f, after.as_ref(), page).unwrap();
        let done = got.len() < page;
        out.extend(got);
        if done {
            return out;
        }
    }
}

/// Stories come, change and go in batches of every size, many in one
/// second, and every facet's list, read whole or a page at a time,
/// stays the reference's, plain and sealed.
#[test]
fn blocks_keep_every_facet_in_order() {
    use crate::proto::BundleId;
    use crate::seal::{DataKey, Sealer};
    use std::sync::Arc;
    for sealer in [None, Some(Arc::new(Sealer::new(&DataKey::random())))] {
        let store = Store::memory_with(super::super::StoreConfig::default(), sealer);
        let publishers = [PublicKey([1; 32]), PublicKey([2; 32])];
        let mut reference: BTreeMap<(u8, [u8; 16]), StoryEntry> = BTreeMap::new();
        let mut rng = Rng(7);
        for round in 0..300 {
            let mut tx = Tx::new(&store.kv);
            for _ in 0..=rng.below(12) {
                let p = rng.below(2) as u8;
                let mut story = [0u8; 16];
                story[0] = rng.below(150) as u8;
                let old = reference.get(&(p, story)).cloned();
                let new = (rng.below(5) != 0).then(|| StoryEntry {
                    publisher: publishers[p as usize],
                    story: StoryId(story),
                    version: old.as_ref().map_or(1, |o| o.version + 1),
                    id: BundleId([rng.below(250) as u8; 32]),
                    // Few seconds, so that blocks fill with one second.
                    published: old
                        .as_ref()
                        .map_or(Timestamp(1_000 + rng.below(40)), |o| o.published),
                    language: ["en", "ru"][rng.below(2) as usize].into(),
                    section: (rng.below(3) != 0).then(|| "News".to_owned()),
                });
                index_change(&mut tx, old.as_ref(), new.as_ref()).unwrap();
                match new {
                    Some(e) => reference.insert((p, story), e),
                    None => reference.remove(&(p, story)),
                };
            }
            tx.commit().unwrap();
            if round % 20 != 19 {
                continue;
            }
            for (i, p) in publishers.iter().enumerate() {
                for f in [
                    Facet::All,
                    Facet::Language("ru"),
                    Facet::Section("News"),
                    Facet::Both("en", "News"),
                ] {
                    let mut want: Vec<StoryEntry> = reference
                        .iter()
                        .filter(|((q, _), e)| {
                            usize::from(*q) == i
                                && match f {
                                    Facet::All => true,
                                    Facet::Language(l) => e.language == l,
                                    Facet::Section(s) => e.section.as_deref() == Some(s),
                                    Facet::Both(l, s) => {
                                        e.language == l && e.section.as_deref() == Some(s)
                                    }
                                }
                        })
                        .map(|(_, e)| e.clone())
                        .collect();
                    want.sort_by_key(|e| (u64::MAX - e.published.0, std::cmp::Reverse(e.story.0)));
                    assert_eq!(list(&store, p, f, 1000), want, "{f:?}, round {round}");
                    assert_eq!(list(&store, p, f, 7), want, "{f:?} by pages, round {round}");
                    assert_eq!(store.facet_count(p, f).unwrap(), want.len() as u64);
                }
            }
            for item in store.kv.scan(&[INDEX], false) {
                let items = decode_block(&item.unwrap().1).unwrap();
                assert!(
                    items.len() <= BLOCK || split_point(&items, items.len() / 2).is_none(),
                    "a block of {} that could be split",
                    items.len()
                );
            }
        }
        let blocks = store.kv.scan(&[INDEX], false).count();
        assert!(
            blocks > 4 && blocks < reference.len(),
            "{blocks} blocks for {}",
            reference.len()
        );
    }
}

/// A store whose index was last written by a build that kept an
/// entry per story and facet (its mark present) is indexed again at
/// open, and that mark goes, so such a build would rebuild too.
#[test]
fn an_index_of_entries_is_rebuilt_as_blocks() {
    let store = Store::memory(super::super::StoreConfig::default());
    let p = PublicKey([3; 32]);
    let mut tx = Tx::new(&store.kv);
    let mut want = Vec::new();
    for n in 0..100u8 {
        let e = StoryEntry {
            publisher: p,
            story: StoryId([n; 16]),
            version: 1,
            id: crate::proto::BundleId([n; 32]),
            published: Timestamp(5_000 - u64::from(n)),
            language: "uk".into(),
            section: None,
        };
        tx.put(story_key(&p, &e.story), e.encode());
        want.push(e);
    }
    tx.commit().unwrap();
    // What such a build left: its mark, and an entry of its shape.
    let old_entry = [key(INDEX, &[p.as_bytes(), &ALL, &[0; 8]]), vec![0xaa; 16]].concat();
    store
        .kv
        .apply(vec![
            Op::Put(key(META, &[META_CATALOG_ENTRIES]), vec![1]),
            Op::Put(old_entry, want[0].encode()),
        ])
        .unwrap();
    store.index_catalog().unwrap();
    assert_eq!(list(&store, &p, Facet::All, 30), want);
    assert_eq!(list(&store, &p, Facet::Language("uk"), 1000), want);
    assert_eq!(store.facet_count(&p, Facet::All).unwrap(), 100);
    assert!(
        !store
            .kv
            .contains(&key(META, &[META_CATALOG_ENTRIES]))
            .unwrap()
    );
    assert!(store.kv.scan(&[INDEX], false).count() <= 2 * 100 / BLOCK + 2);
}

/// Stories that come newest last, or oldest last, leave full blocks.
#[test]
fn blocks_filled_from_one_end_are_left_full() {
    for newest_last in [true, false] {
        let store = Store::memory(super::super::StoreConfig::default());
        let p = PublicKey([4; 32]);
        for n in 0..100u64 {
            let mut tx = Tx::new(&store.kv);
            let t = if newest_last { 1_000 + n } else { 1_000 - n };
            let e = StoryEntry {
                publisher: p,
                story: StoryId([n as u8; 16]),
                version: 1,
                id: crate::proto::BundleId([n as u8; 32]),
                published: Timestamp(t),
                language: "en".into(),
                section: None,
            };
            index_change(&mut tx, None, Some(&e)).unwrap();
            tx.commit().unwrap();
        }
        let sizes: Vec<usize> = store
            .kv
            .scan(&key(INDEX, &[p.as_bytes(), &ALL]), false)
            .map(|r| decode_block(&r.unwrap().1).unwrap().len())
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), 100);
        assert_eq!(sizes.len(), 100usize.div_ceil(BLOCK), "{sizes:?}");
    }
}

#[test]
fn blocks_refuse_bad_bytes_before_allocating() {
    let items = vec![
        Item {
            inverted: 5,
            story: StoryId([9; 16]),
            entry: vec![1, 2, 3],
        },
        Item {
            inverted: 6,
            story: StoryId([1; 16]),
            entry: vec![],
        },
    ];
    let v = encode_block(&items);
    assert_eq!(decode_block(&v).unwrap(), items);
    assert!(decode_block(&v[..v.len() - 1]).is_err());
    assert!(decode_block(&[v.clone(), vec![0]].concat()).is_err());
    let mut huge = v.clone();
    huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(decode_block(&huge).is_err());
    assert!(decode_block(&[0, 0, 0, 0]).is_err());
    assert!(decode_block(&[]).is_err());
    let reversed: Vec<Item> = items.into_iter().rev().collect();
    assert!(decode_block(&encode_block(&reversed)).is_err());
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
