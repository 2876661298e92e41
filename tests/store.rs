//! The local store on both backends: ingest, queries, rollback, revocation,
//! quota, integrity and locking.

mod common;

use common::*;
use kolokol::proto::*;
use kolokol::store::{Ingested, SCHEMA_VERSION, Store, StoreConfig, StoreError, gaps};
use tempfile::TempDir;

/// Runs `test` on the in-memory store and on a sled store in a temp dir.
fn both(test: impl Fn(&Store)) {
    test(&Store::memory(StoreConfig::default()));
    let dir = TempDir::new().unwrap();
    test(&Store::open(&dir.path().join("store"), StoreConfig::default()).unwrap());
}

/// Takes a head as a node does: the policy decides, the store records.
/// Returns whether it became the trusted head.
fn accept_head(store: &Store, policy: &mut TrustPolicy, head: &Verified<Head>) -> bool {
    let accepted = policy.accept_head(head.clone());
    if accepted {
        store.record_head(head).unwrap();
    }
    accepted
}

#[test]
fn ingest_is_idempotent_and_shares_blobs() {
    both(|store| {
        let p = Publisher::new(1);
        store_certificate(store, &p);
        let image = vec![9u8; 5000];
        let mut a = story(&p, 1, 1, b"<p>one</p>");
        a.blobs.push(image.clone());
        let mut b = story(&p, 2, 2, b"<p>two</p>");
        b.blobs.push(image.clone());
        let (a, b) = (a.verified(), b.verified());
        assert_eq!(
            store.ingest(&[a.clone(), b.clone()]).unwrap(),
            vec![Ingested::New, Ingested::New]
        );
        assert_eq!(
            store.ingest(std::slice::from_ref(&a)).unwrap(),
            vec![Ingested::Duplicate]
        );
        let t = store.totals().unwrap();
        assert_eq!(t.bundles, 2);
        assert_eq!(t.blobs, 3, "the shared image is stored once");
        assert_eq!(store.blob(&BlobHash::of(&image)).unwrap().unwrap(), image);
        assert!(store.has_bundle(&a.id()).unwrap());
    });
}

#[test]
fn a_bundle_needs_its_certificate_stored_first() {
    both(|store| {
        let p = Publisher::new(1);
        let err = store
            .ingest(&[story(&p, 1, 1, b"x").verified()])
            .unwrap_err();
        assert!(matches!(err, StoreError::MissingCertificate(_)), "{err}");
    });
}

#[test]
fn a_story_retracted_twice_keeps_every_version() {
    both(|store| {
        let p = Publisher::new(1);
        store_certificate(store, &p);
        let v1 = story(&p, 1, 1, b"<p>first</p>").verified();
        let mut r = story(&p, 2, 1, b"<p>retracted</p>");
        r.version = 2;
        r.kind = Kind::Retraction;
        r.supersedes = Some(v1.id());
        let v2 = r.verified();
        let mut r = story(&p, 3, 1, b"<p>retracted again</p>");
        r.version = 3;
        r.kind = Kind::Retraction;
        r.supersedes = Some(v2.id());
        let v3 = r.verified();
        store.ingest(&[v1, v2, v3]).unwrap();
        let versions: Vec<u32> = store
            .history(&p.public(), &StoryId([1; 16]))
            .unwrap()
            .iter()
            .map(|m| m.manifest.version)
            .collect();
        assert_eq!(versions, [1, 2, 3]);
    });
}

#[test]
fn versions_latest_lists_and_languages() {
    both(|store| {
        let p = Publisher::new(1);
        store_certificate(store, &p);
        let v1 = story(&p, 1, 1, b"<p>first</p>").verified();
        let other = {
            let mut s = story(&p, 2, 2, b"<p>other</p>");
            s.language = "ru";
            s.verified()
        };
        let mut c = story(&p, 3, 1, b"<p>corrected</p>");
        c.version = 2;
        c.kind = Kind::Correction;
        c.supersedes = Some(v1.id());
        let v2 = c.verified();
        // The correction arrives before the original: lists still end on v2.
        store
            .ingest(&[v2.clone(), other.clone(), v1.clone()])
            .unwrap();

        let history = store.history(&p.public(), &StoryId([1; 16])).unwrap();
        assert_eq!(
            history
                .iter()
                .map(|m| m.manifest.version)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(
            store.story_kinds(&p.public(), &StoryId([1; 16])).unwrap(),
            [Kind::Story, Kind::Correction]
        );

        let latest = store.latest_stories(&p.public(), 0, 10).unwrap();
        assert_eq!(
            latest.iter().map(|m| m.id).collect::<Vec<_>>(),
            [other.id(), v2.id()],
            "newest first, one per story"
        );
        assert_eq!(
            store.latest_stories(&p.public(), 1, 10).unwrap().len(),
            1,
            "offset"
        );
        assert_eq!(
            store.latest_stories(&p.public(), 0, 1).unwrap().len(),
            1,
            "limit"
        );

        let ru = store.latest_in_language("RU", None, 0, 10).unwrap();
        assert_eq!(ru.iter().map(|m| m.id).collect::<Vec<_>>(), [other.id()]);
        let en = store
            .latest_in_language("en", Some(&p.public()), 0, 10)
            .unwrap();
        assert_eq!(en.iter().map(|m| m.id).collect::<Vec<_>>(), [v2.id()]);
    });
}

#[test]
fn held_and_missing_sequence_numbers() {
    both(|store| {
        let p = Publisher::new(1);
        store_certificate(store, &p);
        let bundles: Vec<_> = [1u64, 2, 3, 5, 8]
            .iter()
            .map(|&s| story(&p, s, s as u8, format!("<p>{s}</p>").as_bytes()).verified())
            .collect();
        store.ingest(&bundles).unwrap();
        assert_eq!(
            store.held_ranges(&p.public()).unwrap(),
            [(1, 3), (5, 5), (8, 8)]
        );
        // Nothing is missing until a head says how far the publisher got.
        assert_eq!(store.missing(&p.public()).unwrap(), []);
        let head = p
            .policy()
            .verify_head(&p.head(10, T0.plus(100)), now())
            .unwrap();
        assert!(accept_head(store, &mut p.policy(), &head));
        assert_eq!(
            store.missing(&p.public()).unwrap(),
            [(4, 4), (6, 7), (9, 10)]
        );
        assert_eq!(
            gaps(&store.held_ranges(&p.public()).unwrap(), 10),
            store.missing(&p.public()).unwrap()
        );
    });
}

#[test]
fn a_second_bundle_for_one_sequence_number_is_a_conflict() {
    both(|store| {
        let p = Publisher::new(1);
        store_certificate(store, &p);
        let a = story(&p, 1, 1, b"<p>a</p>").verified();
        let b = story(&p, 1, 2, b"<p>b</p>").verified();
        store.ingest(std::slice::from_ref(&a)).unwrap();
        assert_eq!(
            store.ingest(&[b]).unwrap(),
            [Ingested::SequenceConflict { existing: a.id() }]
        );
    });
}

/// sled lets go of its lock a moment after the store is dropped; opening
/// it again at once, as a lock and unlock or a restart in one process do,
/// must wait for that rather than call the store held elsewhere.
#[test]
fn a_store_closed_and_opened_again_at_once_opens() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store");
    let p = Publisher::new(1);
    for round in 1..=40u64 {
        let store = Store::open(&path, StoreConfig::default()).unwrap();
        if round == 1 {
            store_certificate(&store, &p);
        }
        let b = story(&p, round, round as u8, b"<p>again</p>").verified();
        assert_eq!(store.ingest(&[b]).unwrap(), [Ingested::New]);
        assert_eq!(store.totals().unwrap().bundles, round);
    }
}

#[test]
fn rollback_is_refused_across_a_restart() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store");
    let p = Publisher::new(1);
    {
        let store = Store::open(&path, StoreConfig::default()).unwrap();
        store_certificate(&store, &p);
        let h = p
            .policy()
            .verify_head(&p.head(7, T0.plus(10)), now())
            .unwrap();
        store.record_head(&h).unwrap();
        store.flush().unwrap();
    }
    let store = Store::open(&path, StoreConfig::default()).unwrap();
    // The store itself refuses a lower head...
    let older = p
        .policy()
        .verify_head(&p.head(6, T0.plus(20)), now())
        .unwrap();
    assert!(matches!(
        store.record_head(&older),
        Err(StoreError::HeadRollback {
            stored: 7,
            offered: 6
        })
    ));
    // ...and a policy loaded from the store refuses it before that.
    let mut policy = bare_policy(&p);
    store.load_trust(&mut policy, now()).unwrap();
    let err = policy
        .verify_head(&p.head(6, T0.plus(20)), now())
        .unwrap_err();
    assert_eq!(
        err,
        PolicyError::HeadRollback {
            trusted: 7,
            offered: 6
        }
    );
}

#[test]
fn a_revocation_removes_what_it_covers_and_refuses_later_arrivals() {
    both(|store| {
        let p = Publisher::new(1);
        store_certificate(store, &p);
        // Signed at T0 + 1h + 1s and T0 + 5h + 1s.
        let early = story(&p, 1, 1, b"<p>early</p>").verified();
        let late = story(&p, 2, 5, b"<p>late</p>").verified();
        store.ingest(&[early.clone(), late.clone()]).unwrap();
        let rev_bytes = p.revocation(p.signing.public(), T0.plus(3 * 3600));
        let rev = p.policy().verify_revocation(&rev_bytes).unwrap();
        let purged = store
            .record_revocation(&p.policy().add_revocation(rev))
            .unwrap();
        assert_eq!(
            purged,
            [late.id()],
            "only what was signed from the effective time on"
        );
        assert!(store.has_bundle(&early.id()).unwrap());
        assert!(!store.has_bundle(&late.id()).unwrap());
        // Not held, and not known either: the newsroom's own bundle for
        // that number is still to be fetched.
        assert_eq!(store.known_ranges(&p.public()).unwrap(), [(1, 1)]);
        assert_eq!(store.held_ranges(&p.public()).unwrap(), [(1, 1)]);
        // Offered again later, it is refused.
        assert_eq!(store.ingest(&[late]).unwrap(), [Ingested::Revoked]);
        let later = story(&p, 3, 6, b"<p>later</p>").verified();
        assert_eq!(store.ingest(&[later]).unwrap(), [Ingested::Revoked]);
        assert_eq!(store.totals().unwrap().bundles, 1);
    });
}

#[test]
fn check_finds_and_repairs_damage() {
    both(|store| {
        let p = Publisher::new(1);
        store_certificate(store, &p);
        let a = story(&p, 1, 1, b"<p>a</p>").verified();
        let b = story(&p, 2, 2, b"<p>b</p>").verified();
        store.ingest(&[a.clone(), b.clone()]).unwrap();
        assert!(store.check(false).unwrap().problems.is_empty());
        store
            .corrupt_blob_for_test(&BlobHash::of(b"<p>b</p>"))
            .unwrap();
        let report = store.check(false).unwrap();
        assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
        assert!(
            store.has_bundle(&b.id()).unwrap(),
            "check without repair changes nothing"
        );
        let report = store.check(true).unwrap();
        assert_eq!(report.removed_bundles, [b.id()]);
        assert!(!store.has_bundle(&b.id()).unwrap());
        assert!(store.has_bundle(&a.id()).unwrap());
        assert!(store.check(false).unwrap().problems.is_empty());
        // The removed bundle counts as missing again, so it can be refetched.
        let head = p
            .policy()
            .verify_head(&p.head(2, T0.plus(100)), now())
            .unwrap();
        store.record_head(&head).unwrap();
        assert_eq!(store.missing(&p.public()).unwrap(), [(2, 2)]);
        assert_eq!(store.ingest(&[b]).unwrap(), [Ingested::New]);
        let t = store.totals().unwrap();
        assert_eq!((t.bundles, t.blobs), (2, 2));
    });
}

#[test]
fn a_store_held_by_another_process_is_named() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store");
    let _first = Store::open(&path, StoreConfig::default()).unwrap();
    // sled's lock is per process: a second process must be refused.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kolokol"))
        .args(["--data-dir", dir.path().to_str().unwrap(), "store", "stats"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use by another kolokol process") && err.contains(path.to_str().unwrap()),
        "{err}"
    );
}

#[test]
fn quota_eviction_follows_the_policy() {
    let dir = TempDir::new().unwrap();
    let config = StoreConfig {
        quota_bytes: Some(2 * 1024 * 1024),
        keep_newest: 3,
        ..StoreConfig::default()
    };
    let store = Store::open(&dir.path().join("store"), config).unwrap();
    let p = Publisher::new(1);
    let q = Publisher::new(20);
    store_certificate(&store, &p);
    store_certificate(&store, &q);
    let body = |n: u8| vec![n; 100 * 1024];
    // Publisher p: stories 1..=30 (story 2 pinned, story 1 corrected);
    // publisher q: 3 stories, its newest 3, never evicted.
    let s1 = story(&p, 1, 1, &body(1)).verified();
    store.ingest(std::slice::from_ref(&s1)).unwrap();
    let mut corr = story(&p, 2, 1, &body(101));
    corr.version = 2;
    corr.kind = Kind::Correction;
    corr.supersedes = Some(s1.id());
    store.ingest(&[corr.verified()]).unwrap();
    let s2 = story(&p, 3, 2, &body(2)).verified();
    store.ingest(std::slice::from_ref(&s2)).unwrap();
    store.pin(&p.public(), &StoryId([2; 16])).unwrap();
    for n in 3..=30u8 {
        store
            .ingest(&[story(&p, n as u64 + 1, n, &body(n)).verified()])
            .unwrap();
    }
    for n in 1..=3u8 {
        store
            .ingest(&[story(&q, n as u64, n, &body(200 + n)).verified()])
            .unwrap();
    }
    let before = store.totals().unwrap();
    assert!(
        before.disk_bytes > 2 * 1024 * 1024,
        "the test must start over quota: {before:?}"
    );
    let evicted = store.enforce_quota().unwrap();
    assert!(!evicted.stories.is_empty());
    let after = store.totals().unwrap();
    eprintln!(
        "quota test: before {before:?}, after {after:?}, evicted {} stories",
        evicted.stories.len()
    );
    assert!(after.payload_bytes < before.payload_bytes);

    // Oldest first: the evicted stories of p are the oldest unpinned ones.
    let evicted_p: Vec<u8> = evicted
        .stories
        .iter()
        .filter(|(k, _)| k == &p.public())
        .map(|(_, s)| s.0[0])
        .collect();
    let mut expected: Vec<u8> = (1..=27u8).filter(|n| *n != 2).collect();
    expected.truncate(evicted_p.len());
    assert_eq!(evicted_p, expected);
    // A correction goes with its story.
    if evicted_p.contains(&1) {
        assert!(
            store
                .history(&p.public(), &StoryId([1; 16]))
                .unwrap()
                .is_empty()
        );
    }
    // Never pinned, never a publisher's newest 3.
    assert!(store.has_bundle(&s2.id()).unwrap());
    for n in 28..=30u8 {
        assert_eq!(
            store.history(&p.public(), &StoryId([n; 16])).unwrap().len(),
            1
        );
    }
    assert!(evicted.stories.iter().all(|(k, _)| k != &q.public()));
    // Evicted numbers are known, so they are not fetched again.
    let head = p
        .policy()
        .verify_head(&p.head(31, T0.plus(100)), now())
        .unwrap();
    store.record_head(&head).unwrap();
    assert_eq!(store.missing(&p.public()).unwrap(), []);
}

#[test]
fn the_quota_holds_under_a_stream_of_stories() {
    let dir = TempDir::new().unwrap();
    let quota = 8 * 1024 * 1024;
    let config = StoreConfig {
        quota_bytes: Some(quota),
        keep_newest: 2,
        ..StoreConfig::default()
    };
    let store = Store::open(&dir.path().join("store"), config).unwrap();
    let p = Publisher::new(1);
    store_certificate(&store, &p);
    let story_size = 60 * 1024;
    for n in 1..=400u64 {
        let body: Vec<u8> = (0..story_size).map(|i| (i as u64 * 31 + n) as u8).collect();
        let mut s = story(&p, n, 0, &body);
        s.story = StoryId([(n % 256) as u8; 16]);
        s.published = T0.plus(n * 60);
        store.ingest(&[s.verified()]).unwrap();
        store.enforce_quota().unwrap();
        let t = store.totals().unwrap();
        assert!(t.disk_bytes <= quota, "after story {n}: {t:?}");
    }
    // The newest stories are the ones kept.
    let held = store.held_ranges(&p.public()).unwrap();
    assert_eq!(held.last().map(|r| r.1), Some(400));
}

#[test]
fn a_shared_blob_stays_while_any_bundle_uses_it() {
    both(|store| {
        let p = Publisher::new(1);
        store_certificate(store, &p);
        for size in [5_000usize, 40_000] {
            // Small blobs live in the index, large ones in files: both counted.
            let image: Vec<u8> = (0..size).map(|i| (i % 241) as u8).collect();
            let base = if size == 5_000 { 0 } else { 10 };
            let mut a = story(
                &p,
                base + 1,
                base as u8 + 1,
                format!("<p>a{size}</p>").as_bytes(),
            );
            a.blobs.push(image.clone());
            let mut b = story(
                &p,
                base + 2,
                base as u8 + 2,
                format!("<p>b{size}</p>").as_bytes(),
            );
            b.blobs.push(image.clone());
            b.published = T0.plus(10 * DAY);
            let (a, b) = (a.verified(), b.verified());
            store.ingest(&[a, b]).unwrap();
            assert!(store.has_blob(&BlobHash::of(&image)).unwrap());
        }
        // Revoke from a time that covers the second bundle of each pair only.
        let rev = p
            .policy()
            .verify_revocation(&p.revocation(p.signing.public(), T0.plus(5 * DAY)))
            .unwrap();
        let purged = store
            .record_revocation(&p.policy().add_revocation(rev))
            .unwrap();
        assert_eq!(purged.len(), 2);
        for size in [5_000usize, 40_000] {
            let image: Vec<u8> = (0..size).map(|i| (i % 241) as u8).collect();
            assert_eq!(
                store.blob(&BlobHash::of(&image)).unwrap().as_deref(),
                Some(image.as_slice()),
                "{size}"
            );
        }
        assert!(store.check(false).unwrap().problems.is_empty());
        let t = store.totals().unwrap();
        assert_eq!((t.bundles, t.blobs), (2, 4));
    });
}

#[test]
fn a_revoked_keys_head_stops_being_the_floor() {
    both(|store| {
        let p = Publisher::new(1);
        store_certificate(store, &p);
        let mut node_policy = p.policy();
        let stolen = node_policy
            .verify_head(&p.head(1_000_000, T0.plus(5)), now())
            .unwrap();
        accept_head(store, &mut node_policy, &stolen);
        let rev = p
            .policy()
            .verify_revocation(&p.revocation(p.signing.public(), T0.plus(100)))
            .unwrap();
        store
            .record_revocation(&node_policy.add_revocation(rev.clone()))
            .unwrap();
        assert!(store.head(&p.public()).unwrap().is_none());
        // The newsroom's next key's heads are accepted again.
        let key2 = seed(40);
        let cert2 = certificate(&p.root, &key2, 2, T0, T0.plus(30 * DAY), vec![]);
        let mut policy = p.policy();
        policy.learn_revocation(rev.bytes()).unwrap();
        let c2 = policy.learn_certificate(&cert2).unwrap();
        store.put_certificate(&c2).unwrap();
        let head = Head {
            format: FORMAT_VERSION,
            publisher: p.public(),
            certificate: CertId::of(&cert2),
            sequence: 3,
            issued_at: T0.plus(200),
            expires_at: T0.plus(300),
        }
        .sign(&key2)
        .unwrap();
        let h = policy.verify_head(&head, now()).unwrap();
        assert!(accept_head(store, &mut policy, &h));
    });
}

#[test]
fn retention_and_the_per_publisher_quota_evict_only_what_they_must() {
    let dir = TempDir::new().unwrap();
    let config = StoreConfig {
        keep_newest: 2,
        retention_days: Some(1),
        publisher_quota_bytes: Some(10 * 1024),
        ..StoreConfig::default()
    };
    let store = Store::open(&dir.path().join("store"), config.clone()).unwrap();
    let p = Publisher::new(1);
    let q = Publisher::new(20);
    store_certificate(&store, &p);
    store_certificate(&store, &q);
    // p: 12 stories of 2 KiB published hourly from T0 + 1 h: well over its
    // 10 KiB quota. q: 5 small stories published from T0 + 30 h.
    for n in 1..=12u8 {
        store
            .ingest(&[story(&p, n as u64, n, &[n; 2048]).verified()])
            .unwrap();
    }
    for n in 1..=5u8 {
        let mut s = story(&q, n as u64, n, b"small");
        s.published = T0.plus((30 + n as u64) * 3600);
        store.ingest(&[s.verified()]).unwrap();
    }
    let p_before = store.publisher_bytes(&p.public()).unwrap();
    assert!(p_before > 12 * 2048, "{p_before}");
    // At T0 + 1 day + 30 min nothing of q is past retention; p's stories
    // of the first day are, and p is over its quota anyway.
    let now = T0.plus(DAY + 1800);
    let ev = store.enforce_limits(now).unwrap();
    let p_after = store.publisher_bytes(&p.public()).unwrap();
    assert!(p_after <= 10 * 1024 / 10 * 9, "{p_after}");
    assert!(ev.bundles >= 1 && ev.stories.iter().all(|(k, _)| *k == p.public()));
    // Oldest first, the newest 2 kept; q untouched.
    let held = store.held_ranges(&p.public()).unwrap();
    assert_eq!(held.last().map(|r| r.1), Some(12));
    assert!(held.iter().all(|&(a, _)| a > 1), "{held:?}");
    assert_eq!(
        store.seq_state(&p.public(), 1).unwrap(),
        Some(kolokol::store::SeqState::Evicted)
    );
    assert_eq!(store.held_ranges(&q.public()).unwrap(), vec![(1, 5)]);

    // Retention alone: two days later q's stories are past it, but q's
    // newest 2 stay.
    let later = T0.plus(3 * DAY);
    store.enforce_limits(later).unwrap();
    assert_eq!(store.held_ranges(&q.public()).unwrap(), vec![(4, 5)]);

    // The per-publisher counts survive a reopen and a repair.
    let counted = store.publisher_bytes(&q.public()).unwrap();
    drop(store);
    let store = Store::open(&dir.path().join("store"), config.clone()).unwrap();
    assert_eq!(store.publisher_bytes(&q.public()).unwrap(), counted);
    store.check(true).unwrap();
    drop(store);
    let store = Store::open(&dir.path().join("store"), config).unwrap();
    assert_eq!(store.publisher_bytes(&q.public()).unwrap(), counted);
}

/// The store's own tree, opened directly, for tests that write what an
/// older version or damage would have left.
fn raw_tree(path: &std::path::Path) -> (sled::Db, sled::Tree) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let db = loop {
        match sled::open(path.join("index")) {
            Ok(db) => break db,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("{e}"),
        }
    };
    let tree = db.open_tree("kolokol").unwrap();
    (db, tree)
}

#[test]
fn a_schema_1_store_is_converted_at_open() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store");
    let p = Publisher::new(1);
    let large = vec![7u8; 40_000];
    let bundles = [
        story(&p, 1, 1, b"<p>shared</p>").verified(),
        story(&p, 2, 2, b"<p>shared</p>").verified(),
        story(&p, 3, 3, b"<p>own</p>").verified(),
        story(&p, 4, 4, &large).verified(),
    ];
    let before = {
        let store = Store::open(&path, StoreConfig::default()).unwrap();
        store_certificate(&store, &p);
        store.ingest(&bundles).unwrap();
        store.totals().unwrap()
    };
    // Back to schema 1: manifests and small blobs whole under `m` and `b`.
    {
        let (db, tree) = raw_tree(&path);
        let value = |n: &[u8]| {
            let mut k = vec![b'v'];
            k.extend_from_slice(n);
            tree.get(k).unwrap().unwrap()[33..].to_vec()
        };
        let mut batch = sled::Batch::default();
        for item in tree.scan_prefix([b'e']) {
            let (k, v) = item.unwrap();
            let mut old = vec![b'm'];
            old.extend_from_slice(&k[1..]);
            batch.insert(old, value(&v));
            batch.remove(k);
        }
        for item in tree.scan_prefix([b'g']) {
            let (k, v) = item.unwrap();
            let mut old = vec![b'b'];
            old.extend_from_slice(&k[1..]);
            let mut val = v[..4].to_vec();
            val.extend_from_slice(&value(&v[4..12]));
            batch.insert(old, val);
            batch.remove(k);
        }
        for item in tree.scan_prefix([b'v']) {
            batch.remove(item.unwrap().0);
        }
        batch.remove(b"Mvalue-next".to_vec());
        batch.insert(b"Mschema".to_vec(), 1u32.to_be_bytes().to_vec());
        tree.apply_batch(batch).unwrap();
        assert!(tree.scan_prefix([b'v']).next().is_none());
        db.flush().unwrap();
    }
    let store = Store::open(&path, StoreConfig::default()).unwrap();
    for b in &bundles {
        assert_eq!(
            store.manifest(&b.id()).unwrap().unwrap().bytes,
            b.manifest().bytes()
        );
        for (e, data) in b.blobs() {
            assert_eq!(store.blob(&e.hash).unwrap().unwrap(), data);
        }
    }
    let after = store.totals().unwrap();
    assert_eq!(
        (after.bundles, after.blobs, after.payload_bytes),
        (before.bundles, before.blobs, before.payload_bytes)
    );
    assert!(store.check(false).unwrap().problems.is_empty());
    // The shared blob's count came along: one use gone, the other stays.
    let more = story(&p, 5, 5, b"<p>shared</p>").verified();
    assert_eq!(store.ingest(&[more]).unwrap(), [Ingested::New]);
    assert!(store.check(false).unwrap().problems.is_empty());
    drop(store);
    let (_db, tree) = raw_tree(&path);
    assert!(tree.scan_prefix([b'm']).next().is_none());
    assert!(tree.scan_prefix([b'b']).next().is_none());
    assert_eq!(
        tree.get(b"Mschema").unwrap().unwrap().as_ref(),
        SCHEMA_VERSION.to_be_bytes()
    );
}

#[test]
fn check_finds_entries_and_values_that_disagree() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store");
    let p = Publisher::new(1);
    let a = story(&p, 1, 1, b"<p>a</p>").verified();
    let b = story(&p, 2, 2, b"<p>b</p>").verified();
    {
        let store = Store::open(&path, StoreConfig::default()).unwrap();
        store_certificate(&store, &p);
        store.ingest(&[a.clone(), b.clone()]).unwrap();
    }
    {
        let (db, tree) = raw_tree(&path);
        // b's manifest bytes go missing, and a value nothing names appears.
        let mut k = vec![b'e'];
        k.extend_from_slice(b.id().as_bytes());
        let n = tree.get(&k).unwrap().unwrap();
        let mut vk = vec![b'v'];
        vk.extend_from_slice(&n);
        tree.remove(vk).unwrap();
        let mut stray = vec![b'v'];
        stray.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut val = vec![b'b'];
        val.extend_from_slice(BlobHash::of(b"stray").as_bytes());
        val.extend_from_slice(b"stray");
        tree.insert(stray, val).unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(&path, StoreConfig::default()).unwrap();
    let report = store.check(false).unwrap();
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("bytes are missing")),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems.iter().any(|p| p.contains("no entry names")),
        "{:?}",
        report.problems
    );
    let report = store.check(true).unwrap();
    assert_eq!(report.removed_bundles, [b.id()]);
    assert!(store.check(false).unwrap().problems.is_empty());
    assert!(store.has_bundle(&a.id()).unwrap());
    assert_eq!(store.totals().unwrap().bundles, 1);
    assert_eq!(store.ingest(&[b]).unwrap(), [Ingested::New]);
    assert!(store.check(false).unwrap().problems.is_empty());
}
