//! The full-text index kept up with a real store: stories found by their
//! words once indexed, a new version replacing the old, a retraction
//! removing it, the cursor kept across restarts (sealed and plain), and a
//! rebuilt store indexed again from the start.

mod common;

use std::sync::Arc;

use common::{Publisher, store_certificate, story};
use kolokol::proto::*;
use kolokol::seal::{DataKey, Sealer};
use kolokol::search::{Indexed, Indexer, Narrow, Search};
use kolokol::store::{Store, StoreConfig};

fn found(search: &Search, query: &str) -> Vec<StoryId> {
    search
        .search(query, Narrow::default(), 0, 10)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.story)
        .collect()
}

fn fill(p: &Publisher, store: &Store) -> Vec<BundleId> {
    store_certificate(store, p);
    let bodies: [&[u8]; 3] = [
        b"<p>\xd0\x92\xd1\x8b\xd0\xb1\xd0\xbe\xd1\x80\xd1\x8b \xd0\xb2 \xd0\x9c\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb5</p>",
        b"<p>The <b>elections</b> were postponed.</p><script>hidden()</script>",
        b"<p>A harvest festival in the valley.</p>",
    ];
    let mut ids = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let mut v = story(p, i as u64 + 1, i as u8 + 1, body);
        if i == 0 {
            v.language = "ru";
        }
        let b = v.verified();
        ids.push(b.id());
        store.ingest(&[b]).unwrap();
    }
    ids
}

fn both(sealer: Option<Arc<Sealer>>) {
    let p = Publisher::new(10);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open_with(
            &dir.path().join("store"),
            StoreConfig::default(),
            sealer.clone(),
        )
        .unwrap(),
    );
    let ids = fill(&p, &store);
    let open = || Arc::new(Search::open(&dir.path().join("search"), sealer.clone()).unwrap());
    let indexer = Indexer::new(store.clone(), open());
    let done = indexer.catch_up(2).unwrap();
    assert_eq!(done.added, 3, "{done:?}");
    let search = indexer.search().clone();
    // "Москве" is found by "москва": one Russian stem.
    assert_eq!(found(&search, "москва"), vec![StoryId([1; 16])]);
    assert_eq!(found(&search, "election"), vec![StoryId([2; 16])]);
    assert!(
        found(&search, "hidden").is_empty(),
        "script text is not indexed"
    );

    // A new version replaces the old text; a retraction removes the story.
    let mut v2 = story(&p, 4, 3, b"<p>A flood in the valley.</p>");
    v2.version = 2;
    v2.supersedes = Some(ids[2]);
    store.ingest(&[v2.verified()]).unwrap();
    let mut gone = story(&p, 5, 2, b"<p>withdrawn</p>");
    gone.version = 2;
    gone.kind = Kind::Retraction;
    gone.supersedes = Some(ids[1]);
    store.ingest(&[gone.verified()]).unwrap();
    let done = indexer.catch_up(100).unwrap();
    assert_eq!((done.added, done.removed), (1, 1), "{done:?}");
    assert_eq!(found(&search, "flood"), vec![StoryId([3; 16])]);
    assert!(found(&search, "harvest").is_empty());
    assert!(found(&search, "elections").is_empty());
    assert_eq!(search.len(), 2);
    drop((indexer, search));

    // Reopened, the index goes on from its cursor: nothing read twice.
    let indexer = Indexer::new(store.clone(), open());
    assert_eq!(indexer.catch_up(100).unwrap(), Indexed::default());
    assert_eq!(found(indexer.search(), "flood"), vec![StoryId([3; 16])]);
    drop(indexer);

    // A store rebuilt from nothing has a new log: the index starts over.
    drop(store);
    std::fs::remove_dir_all(dir.path().join("store")).unwrap();
    let store = Arc::new(
        Store::open_with(
            &dir.path().join("store"),
            StoreConfig::default(),
            sealer.clone(),
        )
        .unwrap(),
    );
    store_certificate(&store, &p);
    store
        .ingest(&[story(&p, 1, 9, b"<p>Only this one now.</p>").verified()])
        .unwrap();
    let indexer = Indexer::new(store, open());
    assert_eq!(indexer.catch_up(100).unwrap().added, 1);
    assert_eq!(indexer.search().len(), 1);
    assert!(found(indexer.search(), "flood").is_empty());
    assert_eq!(found(indexer.search(), "only"), vec![StoryId([9; 16])]);
}

#[test]
fn a_plain_index_follows_its_store() {
    both(None);
}

#[test]
fn a_sealed_index_follows_its_sealed_store() {
    both(Some(Arc::new(Sealer::new(&DataKey::random()))));
}

/// The gateway's search page, answered from the index: a word of a
/// Russian body found in another case, and a retracted story gone.
#[tokio::test]
async fn the_gateway_searches_bodies_through_the_index() {
    use common::gateway::{Samples, get, serve};
    let dir = tempfile::tempdir().unwrap();
    let samples = Samples::sign(dir.path());
    let store = Arc::new(Store::memory(StoreConfig::default()));
    samples.store_into(&store);
    // A publisher the gateway does not trust, whose story has the same
    // word: neither listed nor counted.
    let stranger = Publisher::new(40);
    store_certificate(&store, &stranger);
    let mut other = story(&stranger, 1, 1, "<p>Новости о Лондоне</p>".as_bytes());
    other.language = "ru";
    store.ingest(&[other.verified()]).unwrap();
    let index = Arc::new(Search::memory().unwrap());
    Indexer::new(store.clone(), index.clone())
        .catch_up(100)
        .unwrap();
    let state =
        kolokol::gateway::GatewayState::new(store, vec![samples.publisher.clone()]).search(index);
    let served = serve(state).await;
    // The body says "в Лондоне"; the headline and summary do not.
    let r = get(
        served.addr,
        "/search?q=%D0%9B%D0%BE%D0%BD%D0%B4%D0%BE%D0%BD",
    )
    .await;
    assert_eq!(r.status, 200);
    let page = r.text();
    assert!(page.contains("звонит снова"), "{page}");
    assert!(
        page.contains("1 stories match") || page.contains("1 story match"),
        "{page}"
    );
    // The rumour was retracted: its words find nothing.
    let page = get(served.addr, "/search?q=printing+press+raid")
        .await
        .text();
    assert!(!page.contains("Unconfirmed report"), "{page}");
    // A language filter keeps out the rest.
    let page = get(served.addr, "/search?q=Kolokol&lang=ar").await.text();
    assert!(page.contains("الأخبار تصل رغم الحجب"), "{page}");
    assert!(!page.contains("звонит"), "{page}");
    // The API narrows by section too, in the index: a section no story
    // has finds none.
    let all = get(served.addr, "/api/v1/stories?q=Kolokol").await.text();
    assert!(!all.contains("\"total\":0"), "{all}");
    let none = get(served.addr, "/api/v1/stories?q=Kolokol&section=Nowhere")
        .await
        .text();
    assert!(none.contains("\"total\":0"), "{none}");
}
