//! Forgetting a publisher: on a store on disk, nothing of it is left in
//! the index or the blob files while the others stay whole; a reader
//! still catches up from a mirror that forgot one; and `kolokol forget`
//! on a data directory.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::mirrors::signed_list;
use common::net::{TestNode, connect, memory_store, poll, spawn_on, wait_for};
use common::process::{NodeProcess, kolokol, ok};
use common::*;
use kolokol::net::book::{Book, BookConfig, Source, forget_listed};
use kolokol::net::{NetConfig, NodeEvent};
use kolokol::proto::*;
use kolokol::store::{Forgotten, Store, StoreConfig};
use libp2p::Multiaddr;
use tempfile::TempDir;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// No key and no value of the index holds any of `needles`.
fn assert_gone(store: &Store, needles: &[(&str, Vec<u8>)]) {
    for (k, v) in store.raw_pairs_for_test().unwrap() {
        for (what, n) in needles {
            assert!(
                !contains(&k, n) && !contains(&v, n),
                "{what} is still in the entry {:?}",
                String::from_utf8_lossy(&k[..k.len().min(24)])
            );
        }
    }
}

fn blob_file(store_dir: &Path, hash: &BlobHash) -> std::path::PathBuf {
    let hex = hash.to_string();
    store_dir.join("blobs").join(&hex[..2]).join(hex)
}

fn peer() -> String {
    libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id()
        .to_string()
}

/// Every stored bundle of `p` reads back whole: its manifest and blobs,
/// each matching its hash.
fn assert_whole(store: &Store, ids: &[BundleId]) {
    for id in ids {
        let m = store.manifest(id).unwrap().expect("the manifest is kept");
        for e in &m.manifest.entries {
            let b = store.blob(&e.hash).unwrap().expect("the blob is kept");
            assert_eq!(BlobHash::of(&b), e.hash);
        }
    }
}

#[test]
fn a_forgotten_publisher_leaves_nothing_and_the_others_stay_whole() {
    let dir = TempDir::new().unwrap();
    let store_dir = dir.path().join("store");
    let store = Store::open(&store_dir, StoreConfig::default()).unwrap();
    let kept = Publisher::new(1);
    let gone = Publisher::new(3);
    let image = vec![0x5au8; 6000];
    let large: Vec<u8> = (0..40 * 1024).map(|i| (i % 251) as u8).collect();

    // The publisher that stays: two stories, one with the image.
    store_certificate(&store, &kept);
    let mut k1 = story(&kept, 1, 1, b"<p>kept one</p>");
    k1.blobs.push(image.clone());
    let k2 = story(&kept, 2, 2, b"<p>kept two</p>");
    let kept_ids: Vec<BundleId> = [k1.verified(), k2.verified()]
        .iter()
        .map(|b| b.id())
        .collect();
    store.ingest(&[k1.verified(), k2.verified()]).unwrap();
    let kh = kept.policy().verify_head(&kept.head(2, T0), now()).unwrap();
    store.record_head(&kh).unwrap();
    let before = store.totals().unwrap();
    let kept_bytes = store.publisher_bytes(&kept.public()).unwrap();

    // The one forgotten: the same image, a large blob, a story pinned, a
    // story its revoked key took away, a head, a mirror list.
    store_certificate(&store, &gone);
    let mut stories = Vec::new();
    for (seq, n, body) in [
        (1, 1, b"<p>gone one</p>".to_vec()),
        (2, 2, b"<p>gone two</p>".to_vec()),
        (3, 5, b"<p>gone late</p>".to_vec()),
    ] {
        let mut s = story(&gone, seq, n, &body);
        s.story = StoryId([0xf0 + n; 16]);
        stories.push(s);
    }
    stories[0].blobs.push(image.clone());
    stories[1].blobs.push(large.clone());
    let gone_bundles: Vec<VerifiedBundle> = stories.iter().map(|s| s.verified()).collect();
    store.ingest(&gone_bundles).unwrap();
    store.pin(&gone.public(), &stories[0].story).unwrap();
    let gh = gone.policy().verify_head(&gone.head(3, T0), now()).unwrap();
    store.record_head(&gh).unwrap();
    let rev = gone
        .policy()
        .verify_revocation(&gone.revocation(gone.signing.public(), T0.plus(3 * 3600)))
        .unwrap();
    let purged = store
        .record_revocation(&gone.policy().add_revocation(rev))
        .unwrap();
    assert_eq!(purged, vec![gone_bundles[2].id()]);
    assert!(blob_file(&store_dir, &BlobHash::of(&large)).exists());

    // Mirror lists: one address and one web tree shared, one of each its own.
    let (shared_peer, own_peer) = (peer(), peer());
    let shared_addr = format!("/ip4/198.51.100.1/tcp/443/p2p/{shared_peer}");
    let own_addr = format!("/ip4/203.0.113.9/tcp/4001/p2p/{own_peer}");
    let (shared_url, own_url) = (
        "https://trees.example.net/k/",
        "https://gone.example.org/tree/",
    );
    store
        .put_mirror_list(
            &signed_list(
                &kept,
                T0,
                vec![shared_addr.clone()],
                vec![shared_url.into()],
            ),
            &kept.policy(),
            now(),
        )
        .unwrap();
    store
        .put_mirror_list(
            &signed_list(
                &gone,
                T0,
                vec![shared_addr.clone(), own_addr.clone()],
                vec![shared_url.into(), own_url.into()],
            ),
            &gone.policy(),
            now(),
        )
        .unwrap();
    // What the node kept of them: log positions and the address book.
    let peer_bytes = |p: &str| p.parse::<libp2p::PeerId>().unwrap().to_bytes();
    for cursor in [
        [b"web ".as_slice(), shared_url.as_bytes()].concat(),
        [b"web ".as_slice(), own_url.as_bytes()].concat(),
        peer_bytes(&shared_peer),
        peer_bytes(&own_peer),
    ] {
        store.set_log_cursor(&cursor, [1; 16], 3, [2; 32]).unwrap();
    }
    let met = format!("/ip4/192.0.2.7/tcp/4001/p2p/{}", peer());
    let mut book = Book::new(BookConfig::default(), 7);
    for (addr, source) in [
        (&shared_addr, Source::MirrorList),
        (&own_addr, Source::MirrorList),
        (&met, Source::Learned),
    ] {
        book.learn(&addr.parse::<Multiaddr>().unwrap(), source)
            .unwrap();
    }
    store.set_address_book(&book.save()).unwrap();
    store.flush().unwrap();

    let report = store.forget_publisher(&gone.public()).unwrap();
    let manifests: u64 = gone_bundles[..2]
        .iter()
        .map(|b| b.manifest().bytes().len() as u64)
        .sum();
    let own_blobs = (stories[0].blobs[0].len() + large.len() + stories[1].blobs[0].len()) as u64;
    assert_eq!(
        report,
        Forgotten {
            bundles: 2,
            blobs: 3,
            bytes: manifests + own_blobs,
        }
    );

    let check = |store: &Store| {
        let mut needles = vec![
            ("its root key", gone.public().as_bytes().to_vec()),
            ("its signing key", gone.signing.public().as_bytes().to_vec()),
            ("its certificate id", gone.cert_id().as_bytes().to_vec()),
            ("its own web tree", own_url.as_bytes().to_vec()),
            ("its own mirror", peer_bytes(&own_peer)),
        ];
        for b in &gone_bundles {
            needles.push(("a bundle id", b.id().as_bytes().to_vec()));
        }
        for s in &stories {
            needles.push(("a story id", s.story.as_bytes().to_vec()));
        }
        assert_gone(store, &needles);
        // Its own blob files are gone; the shared image is kept.
        assert!(!blob_file(&store_dir, &BlobHash::of(&large)).exists());
        assert_eq!(store.blob(&BlobHash::of(&image)).unwrap().unwrap(), image);
        assert_whole(store, &kept_ids);
        let after = store.totals().unwrap();
        assert_eq!(
            (after.bundles, after.blobs, after.payload_bytes),
            (before.bundles, before.blobs, before.payload_bytes)
        );
        assert_eq!(store.publisher_bytes(&kept.public()).unwrap(), kept_bytes);
        assert_eq!(store.publisher_bytes(&gone.public()).unwrap(), 0);
        let report = store.check(false).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        // The other publisher's traces stay.
        assert!(store.head(&kept.public()).unwrap().is_some());
        assert_eq!(store.mirror_lists().unwrap().len(), 1);
        let cursors: Vec<Vec<u8>> = store
            .log_cursors()
            .unwrap()
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(cursors.len(), 2, "{cursors:?}");
        assert!(cursors.contains(&peer_bytes(&shared_peer)));
        let mut saved = Book::new(BookConfig::default(), 7);
        assert_eq!(
            saved.load(&store.address_book().unwrap().unwrap()).unwrap(),
            2
        );
        let shared: Multiaddr = shared_addr.parse().unwrap();
        assert!(
            saved
                .addresses(&shared_peer.parse().unwrap())
                .iter()
                .any(|a| shared.to_string().starts_with(&a.to_string()))
        );
        assert!(!saved.knows(&own_peer.parse().unwrap()));
        // The log names none of it.
        for (_, item) in store.log_items(0, 1000).unwrap() {
            if let kolokol::store::LogItem::Bundle(id) = item {
                assert!(kept_ids.contains(&id), "{id}");
            }
        }
    };
    check(&store);
    // And so it stays once the store is opened again.
    drop(store);
    let store = Store::open(&store_dir, StoreConfig::default()).unwrap();
    check(&store);
    // Forgetting again finds nothing.
    assert_eq!(
        store.forget_publisher(&gone.public()).unwrap(),
        Forgotten::default()
    );
}

#[test]
fn the_book_loses_only_what_the_list_gave_it() {
    let p = peer();
    let listed = format!("/ip4/203.0.113.9/tcp/4001/p2p/{p}");
    let met = format!("/ip4/192.0.2.1/tcp/4001/p2p/{p}");
    let mut book = Book::new(BookConfig::default(), 1);
    book.learn(&listed.parse().unwrap(), Source::MirrorList)
        .unwrap();
    book.learn(&met.parse().unwrap(), Source::Learned).unwrap();
    let saved = book.save();
    assert_eq!(forget_listed(&saved, &[]).unwrap(), None);
    let kept = forget_listed(&saved, std::slice::from_ref(&listed))
        .unwrap()
        .unwrap();
    let mut back = Book::new(BookConfig::default(), 1);
    back.load(&kept).unwrap();
    let peer_id = p.parse().unwrap();
    assert_eq!(back.addresses(&peer_id).len(), 1);
    // An address the book learned from a peer is not the list's to take.
    assert_eq!(forget_listed(&kept, &[met]).unwrap(), None);
    assert!(forget_listed(b"not a book", &[listed]).is_err());
}

fn mirror_config() -> NetConfig {
    NetConfig {
        mirror: true,
        ..NetConfig::for_tests()
    }
}

fn quiet_config() -> NetConfig {
    NetConfig {
        share: false,
        ..NetConfig::for_tests()
    }
}

/// Stories `seqs` of `p` into `store`; their ids.
fn fill(store: &Store, p: &Publisher, seqs: std::ops::RangeInclusive<u64>) -> Vec<BundleId> {
    let bundles: Vec<VerifiedBundle> = seqs.map(|s| numbered(p, s, 300).verified()).collect();
    store.ingest(&bundles).unwrap();
    bundles.iter().map(|b| b.id()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_catches_up_from_a_mirror_that_forgot_a_publisher() {
    let kept = Publisher::new(1);
    let gone = Publisher::new(3);
    let mirror_store: Arc<Store> = memory_store();
    store_certificate(&mirror_store, &kept);
    store_certificate(&mirror_store, &gone);
    // The forgotten publisher's entries lie between the other's, and after
    // them up to the log's end.
    let mut ids = fill(&mirror_store, &kept, 1..=10);
    fill(&mirror_store, &gone, 1..=10);
    ids.extend(fill(&mirror_store, &kept, 11..=20));
    let h = kept
        .policy()
        .verify_head(&numbered_head(&kept, 20), now().plus(DAY))
        .unwrap();
    mirror_store.record_head(&h).unwrap();
    fill(&mirror_store, &gone, 11..=400);
    let end = mirror_store.log_end().unwrap();
    mirror_store.forget_publisher(&gone.public()).unwrap();
    assert_eq!(mirror_store.totals().unwrap().bundles, 20);

    let mirror = spawn_on(&[&kept], mirror_store.clone(), mirror_config()).await;
    let mut reader: TestNode = spawn_on(&[&kept], memory_store(), quiet_config()).await;
    connect(&mut reader, &mirror).await;
    let mut pending: std::collections::HashSet<BundleId> = ids.iter().copied().collect();
    wait_for(&mut reader.events, "the kept publisher's stories", |e| {
        if let NodeEvent::Stored(id) = e {
            pending.remove(id);
        }
        pending.is_empty()
    })
    .await;
    // Read to the end of the log, holes and all, and waiting there.
    poll("the reader at the log's end", async || {
        let c = reader.store.log_cursors().unwrap();
        c.iter().any(|c| c.2 == end).then_some(())
    })
    .await;
    // Still following: a new story reaches it.
    let (file, id) = numbered(&kept, 21, 300).bundle_file(vec![numbered_head(&kept, 21)]);
    mirror.node.publish(file).await.unwrap();
    wait_for(
        &mut reader.events,
        "the new story",
        |e| matches!(e, NodeEvent::Stored(i) if *i == id),
    )
    .await;
    assert_eq!(reader.store.totals().unwrap().bundles, 21);
}

/// A data directory trusting `publishers` (by name), with their stories
/// 1..=3 in its store.
fn data_dir(dir: &Path, publishers: &[(&Publisher, &str)]) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("trust")).unwrap();
    let store = Store::open(&data.join("store"), StoreConfig::default()).unwrap();
    for (p, name) in publishers {
        std::fs::write(
            data.join("trust").join(format!("{name}.toml")),
            trust_file(p, name),
        )
        .unwrap();
        store_certificate(&store, p);
        fill(&store, p, 1..=3);
    }
    data
}

/// Every file under `root` whose bytes contain `needle`.
fn files_holding(root: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if contains(&std::fs::read(&p).unwrap(), needle) {
                out.push(p);
            }
        }
    }
    out
}

fn bundles_of(data: &Path, p: &Publisher) -> usize {
    let store = Store::open(&data.join("store"), StoreConfig::default()).unwrap();
    store.held_bundles(&p.public()).unwrap().len()
}

#[test]
fn kolokol_forget_by_name_and_by_key() {
    let dir = TempDir::new().unwrap();
    let (a, b, c) = (Publisher::new(1), Publisher::new(3), Publisher::new(5));
    let data = data_dir(dir.path(), &[(&a, "alpha"), (&b, "bravo"), (&c, "charlie")]);

    // Not on a terminal, and no --yes: nothing is touched.
    let out = kolokol(&data, &["forget", "alpha"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert_eq!(bundles_of(&data, &a), 3);

    let before = files_holding(&data, a.public().as_bytes());
    assert!(
        !before.is_empty(),
        "the store should hold alpha's key before"
    );
    let printed = ok(&data, &["forget", "alpha", "--yes"]);
    assert!(printed.contains("3 bundles"), "{printed}");
    // Not in any file: the store was rewritten, so no old sled segment
    // keeps it, and its trust file is gone.
    let left = files_holding(&data, a.public().as_bytes());
    assert!(left.is_empty(), "alpha's key is still in {left:?}");
    let hex_key = hex::encode(a.public().as_bytes());
    let left = files_holding(&data, hex_key.as_bytes());
    assert!(left.is_empty(), "alpha's key in hex is still in {left:?}");
    assert_eq!(bundles_of(&data, &a), 0);
    assert!(!ok(&data, &["trust", "list"]).contains("alpha"));

    // By the root key, with or without its prefix.
    let hex = b
        .public()
        .to_string()
        .trim_start_matches("ed25519:")
        .to_owned();
    ok(&data, &["forget", &hex, "--yes"]);
    assert_eq!(bundles_of(&data, &b), 0);
    assert!(!ok(&data, &["trust", "list"]).contains("bravo"));
    assert_eq!(bundles_of(&data, &c), 3);
    let printed = ok(&data, &["store", "check"]);
    assert!(!printed.contains("problem:"), "{printed}");

    let out = kolokol(&data, &["forget", "nobody", "--yes"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody"));
}

#[test]
fn kolokol_forget_refuses_while_a_node_runs() {
    let dir = TempDir::new().unwrap();
    let p = Publisher::new(1);
    let data = data_dir(dir.path(), &[(&p, "alpha")]);
    let mut node = NodeProcess::start(&data, &[]);
    let out = kolokol(&data, &["forget", "alpha", "--yes"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("node is running"), "{err}");
    node.terminate();
    assert_eq!(bundles_of(&data, &p), 3);
    assert!(ok(&data, &["trust", "list"]).contains("alpha"));
}
