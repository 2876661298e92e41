//! The catalog index: it follows every change of the store (new stories
//! and versions, retraction, eviction, revocation, forgetting, repair) in
//! plain and sealed stores alike, an existing store gets it at open, and
//! the gateway's lists read it at once.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::gateway::{get, serve};
use common::{DAY, Publisher, StoryVersion, T0, publisher_file};
use kolokol::gateway::GatewayState;
use kolokol::proto::{Kind, StoryId};
use kolokol::seal::{DataKey, Sealer};
use kolokol::store::{Facet, IndexCursor, Store, StoreConfig, StoryEntry};
use tempfile::TempDir;

const LANGUAGES: [&str; 3] = ["en", "ru", "ar"];

/// Story `n` of `p` at sequence `seq`, in a language that depends on `n`.
fn story(p: &Publisher, seq: u64, n: u8) -> StoryVersion<'_> {
    let mut s = common::story(p, seq, n, format!("body {n}").as_bytes());
    s.language = LANGUAGES[n as usize % LANGUAGES.len()];
    s
}

/// Every list and counter of the index, against what the story entries
/// and sequence slots say.
fn assert_consistent(store: &Store, p: &Publisher) {
    let key = p.public();
    let all = store.stories(Some(&key), None, None).unwrap();
    let page = |f: Facet<'_>| store.index_page(&key, f, None, 100_000).unwrap();
    assert_eq!(page(Facet::All), all, "all stories");
    let mut languages = BTreeMap::new();
    let mut sections = BTreeMap::new();
    for e in &all {
        *languages.entry(e.language.clone()).or_insert(0u64) += 1;
        if let Some(s) = &e.section {
            *sections.entry(s.clone()).or_insert(0u64) += 1;
        }
    }
    for l in languages.keys() {
        let want = store.stories(Some(&key), Some(l), None).unwrap();
        assert_eq!(page(Facet::Language(l)), want, "language {l}");
        assert_eq!(
            store.facet_count(&key, Facet::Language(l)).unwrap(),
            want.len() as u64
        );
        for s in sections.keys() {
            let want = store.stories(Some(&key), Some(l), Some(s)).unwrap();
            assert_eq!(page(Facet::Both(l, s)), want, "language {l}, section {s}");
        }
    }
    for s in sections.keys() {
        assert_eq!(
            page(Facet::Section(s)),
            store.stories(Some(&key), None, Some(s)).unwrap(),
            "section {s}"
        );
    }
    // Pages by cursor give the same list, without a gap or a repeat.
    let mut walked: Vec<StoryEntry> = Vec::new();
    loop {
        let after = walked.last().map(|e| IndexCursor {
            published: e.published,
            story: e.story,
        });
        let next = store
            .index_page(&key, Facet::All, after.as_ref(), 3)
            .unwrap();
        if next.is_empty() {
            break;
        }
        walked.extend(next);
    }
    assert_eq!(walked, all, "pages by cursor");
    let counts = store.publisher_counts(&key).unwrap();
    assert_eq!(counts.stories, all.len() as u64);
    assert_eq!(counts.languages, languages);
    assert_eq!(counts.sections, sections);
    let held: u64 = store
        .held_ranges(&key)
        .unwrap()
        .iter()
        .map(|(a, b)| b - a + 1)
        .sum();
    assert_eq!(counts.bundles, held);
    assert_eq!(counts.known, store.known_ranges(&key).unwrap());
}

fn stores() -> Vec<(&'static str, Store)> {
    let config = StoreConfig {
        keep_newest: 2,
        ..Default::default()
    };
    vec![
        ("plain", Store::memory(config.clone())),
        (
            "sealed",
            Store::memory_with(config, Some(Arc::new(Sealer::new(&DataKey::random())))),
        ),
    ]
}

#[test]
fn the_index_follows_every_change_of_the_store() {
    for (what, store) in stores() {
        eprintln!("{what} store");
        let p = Publisher::new(30);
        let other = Publisher::new(31);
        common::store_certificate(&store, &p);
        common::store_certificate(&store, &other);
        // Stories, some in one batch, out of order, with gaps in sequence.
        let batch: Vec<_> = [(5, 5), (1, 1), (3, 3)]
            .iter()
            .map(|&(seq, n)| story(&p, seq, n).verified())
            .collect();
        store.ingest(&batch).unwrap();
        store.ingest(&[story(&p, 2, 2).verified()]).unwrap();
        store.ingest(&[story(&other, 1, 4).verified()]).unwrap();
        assert_consistent(&store, &p);
        assert_consistent(&store, &other);
        assert_eq!(
            store.publisher_counts(&p.public()).unwrap().known,
            vec![(1, 3), (5, 5)]
        );

        // A correction in another language replaces the story's entries.
        let first = story(&p, 1, 1);
        let mut fix = story(&p, 6, 1);
        fix.version = 2;
        fix.kind = Kind::Correction;
        fix.supersedes = Some(first.verified().id());
        fix.language = "uk";
        store.ingest(&[fix.verified()]).unwrap();
        assert_consistent(&store, &p);
        let uk = store
            .index_page(&p.public(), Facet::Language("UK"), None, 10)
            .unwrap();
        assert_eq!(uk.len(), 1);
        assert_eq!(uk[0].version, 2);
        // An older version arriving later changes nothing.
        store.ingest(&[first.verified()]).unwrap();
        assert_consistent(&store, &p);
        // A retraction is listed as the story's newest version.
        let mut retract = story(&p, 7, 3);
        retract.version = 2;
        retract.kind = Kind::Retraction;
        retract.supersedes = Some(story(&p, 3, 3).verified().id());
        store.ingest(&[retract.verified()]).unwrap();
        assert_consistent(&store, &p);

        // A revocation removes what the key signed after its cut.
        let rev = p
            .policy()
            .verify_revocation(&p.revocation(p.signing.public(), T0.plus(4 * 3600)))
            .unwrap();
        let purged = store
            .record_revocation(&p.policy().add_revocation(rev))
            .unwrap();
        assert!(!purged.is_empty(), "{what}");
        assert_consistent(&store, &p);

        // Forgetting leaves no entry and no counter.
        store.forget_publisher(&p.public()).unwrap();
        assert_consistent(&store, &p);
        assert_eq!(
            store.publisher_counts(&p.public()).unwrap(),
            Default::default()
        );
        assert_consistent(&store, &other);

        // A repair rebuilds the same index.
        let before = store
            .index_page(&other.public(), Facet::All, None, 100)
            .unwrap();
        store.check(true).unwrap();
        assert_eq!(
            store
                .index_page(&other.public(), Facet::All, None, 100)
                .unwrap(),
            before
        );
        assert_consistent(&store, &other);
    }
}

#[test]
fn eviction_keeps_the_index_and_the_known_ranges() {
    let sealer = Arc::new(Sealer::new(&DataKey::random()));
    for (what, sealer) in [("plain", None), ("sealed", Some(sealer))] {
        let config = StoreConfig {
            retention_days: Some(1),
            keep_newest: 2,
            ..Default::default()
        };
        let store = Store::memory_with(config, sealer);
        let p = Publisher::new(32);
        common::store_certificate(&store, &p);
        for n in 1..=6u8 {
            store
                .ingest(&[story(&p, u64::from(n), n).verified()])
                .unwrap();
        }
        let ev = store.enforce_limits(T0.plus(400 * DAY)).unwrap();
        assert_eq!(ev.stories.len(), 4, "{what}");
        assert_consistent(&store, &p);
        let counts = store.publisher_counts(&p.public()).unwrap();
        assert_eq!((counts.stories, counts.bundles), (2, 2));
        assert_eq!(counts.known, vec![(1, 6)]);
    }
}

#[test]
fn a_store_made_before_the_index_gets_it_at_open() {
    let dir = TempDir::new().unwrap();
    let sealer = Arc::new(Sealer::new(&DataKey::random()));
    for (what, sealer) in [("plain", None), ("sealed", Some(sealer))] {
        let path = dir.path().join(what);
        let p = Publisher::new(33);
        {
            let store = Store::open_with(&path, StoreConfig::default(), sealer.clone()).unwrap();
            common::store_certificate(&store, &p);
            for n in 1..=9u8 {
                store
                    .ingest(&[story(&p, u64::from(n), n).verified()])
                    .unwrap();
            }
            // As a store written by the version before the index.
            store.drop_catalog_index_for_test().unwrap();
            assert!(
                store
                    .index_page(&p.public(), Facet::All, None, 10)
                    .unwrap()
                    .is_empty()
            );
        }
        let store = Store::open_with(&path, StoreConfig::default(), sealer.clone()).unwrap();
        assert_eq!(
            store
                .index_page(&p.public(), Facet::All, None, 100)
                .unwrap()
                .len(),
            9,
            "{what}"
        );
        assert_consistent(&store, &p);
        // And it keeps following new stories after the upgrade.
        store.ingest(&[story(&p, 10, 10).verified()]).unwrap();
        assert_consistent(&store, &p);
    }
}

fn json(r: &common::gateway::Response) -> serde_json::Value {
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_show_a_stored_story_at_once_and_only_trusted_publishers() {
    let store = Arc::new(Store::memory(StoreConfig::default()));
    let (a, b) = (Publisher::new(34), Publisher::new(35));
    common::store_certificate(&store, &a);
    common::store_certificate(&store, &b);
    for n in 1..=30u8 {
        store
            .ingest(&[story(&a, u64::from(n), n).verified()])
            .unwrap();
    }
    store.ingest(&[story(&b, 1, 100).verified()]).unwrap();
    // Only `a` is trusted: `b`'s story, the newest, is not listed.
    let g = serve(GatewayState::new(
        store.clone(),
        vec![publisher_file(&a, "a")],
    ))
    .await;
    let all = json(&get(g.addr, "/api/v1/stories?per_page=100").await);
    assert_eq!(all["total"], 30);
    let shown = all["stories"].as_array().unwrap();
    assert!(shown.iter().all(|s| s["publisher"] == "a"));
    assert!(
        !get(g.addr, "/")
            .await
            .text()
            .contains(&StoryId([100; 16]).short())
    );

    // A story stored is in the very next answer.
    store.ingest(&[story(&a, 31, 40).verified()]).unwrap();
    let now = json(&get(g.addr, "/api/v1/stories?per_page=1").await);
    assert_eq!(now["total"], 31);
    assert_eq!(now["stories"][0]["story"], StoryId([40; 16]).to_string());
    let home = get(g.addr, "/").await.text();
    assert!(
        home.contains("31 stories held (31 bundles). Nothing missing"),
        "{home}"
    );

    // Trusting both shows both at once, merged newest first.
    let g2 = serve(GatewayState::new(
        store.clone(),
        vec![publisher_file(&a, "a"), publisher_file(&b, "b")],
    ))
    .await;
    let both = json(&get(g2.addr, "/api/v1/stories?per_page=3").await);
    assert_eq!(both["total"], 32);
    assert_eq!(both["stories"][0]["publisher"], "b");
    assert_eq!(both["stories"][1]["story"], StoryId([40; 16]).to_string());

    // Pages by cursor walk the whole merged list, as pages by number do.
    let by_number = json(&get(g2.addr, "/api/v1/stories?per_page=100").await);
    let mut walked = Vec::new();
    let mut next = String::new();
    loop {
        let path = if next.is_empty() {
            "/api/v1/stories?per_page=7".to_owned()
        } else {
            format!("/api/v1/stories?per_page=7&after={next}")
        };
        let page = json(&get(g2.addr, &path).await);
        assert_eq!(page["total"], 32);
        walked.extend(page["stories"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(n) => next = n.to_owned(),
            None => break,
        }
    }
    assert_eq!(&walked, by_number["stories"].as_array().unwrap());
    // A filtered list by cursor.
    let ru = json(&get(g2.addr, "/api/v1/stories?publisher=a&lang=ru&per_page=2").await);
    let after = ru["next"].as_str().unwrap();
    let more = json(
        &get(
            g2.addr,
            &format!("/api/v1/stories?publisher=a&lang=ru&per_page=2&after={after}"),
        )
        .await,
    );
    assert!(
        more["stories"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["language"] == "ru")
    );
    assert_ne!(more["stories"][0]["id"], ru["stories"][1]["id"]);
    for bad in [
        "after=nonsense",
        "after=1.00&q=x",
        "after=5.00000000000000000000000000000000&page=2",
    ] {
        let r = get(g2.addr, &format!("/api/v1/stories?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
}
