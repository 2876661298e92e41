//! A revocation end to end across real nodes on 127.0.0.1: announced by
//! the newsroom's node, it reaches every node, which then removes what the
//! key signed from its effective time and refuses anything more it signs;
//! a node that joins later learns it through catch-up.

mod common;

use common::net::{TestNode, connect, memory_store, poll, spawn, spawn_on, wait_for};
use common::*;
use kolokol::net::{NetConfig, NodeEvent};
use kolokol::proto::bundle::BundleFile;
use kolokol::proto::*;

/// Story `n` (sequence `n`), signed `n` hours after T0, as a bundle file.
fn file(p: &Publisher, n: u8) -> (BundleFile, BundleId) {
    story(p, n as u64, n, format!("<p>Story {n}</p>").as_bytes()).bundle_file(vec![])
}

async fn wait_gone(n: &TestNode, id: &BundleId) {
    poll(
        &format!("bundle {} to be dropped", id.short()),
        async || (!n.store.has_bundle(id).unwrap()).then_some(()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_three_nodes_and_every_one_refuses_the_key() {
    let p = Publisher::new(1);
    let mut newsroom = spawn(&p).await;
    let mut b = spawn(&p).await;
    let mut c = spawn(&p).await;
    connect(&mut newsroom, &b).await;
    connect(&mut b, &c).await;

    // Two stories, signed one and three hours after T0, reach everyone.
    let (one, id1) = file(&p, 1);
    let (three, id3) = file(&p, 3);
    for (f, id) in [(one, id1), (three, id3)] {
        newsroom.node.publish(f).await.unwrap();
        wait_for(&mut c.events, "a story at the far end", |e| {
            *e == NodeEvent::Stored(id)
        })
        .await;
    }

    // The key turns out to have been stolen two hours after T0.
    let revocation = p.revocation(p.signing.public(), T0.plus(2 * 3600));
    let removed = newsroom.node.revoke(revocation.clone()).await.unwrap();
    assert_eq!(removed, 1, "the story signed after the effective time");
    for n in [&newsroom, &b, &c] {
        wait_gone(n, &id3).await;
        assert!(n.store.has_bundle(&id1).unwrap(), "signed before: kept");
    }

    // Whatever the thief signs now is refused by every node.
    let (stolen, stolen_id) = file(&p, 4);
    for n in [&newsroom, &b, &c] {
        let err = n.node.publish(stolen.clone()).await.unwrap_err();
        assert!(err.to_string().contains("revoked"), "{err}");
        assert!(!n.store.has_bundle(&stolen_id).unwrap());
    }

    // A node that was away, holding the thief's story, joins: it learns
    // the revocation in catch-up and drops the story.
    let store = memory_store();
    let policy = p.policy();
    store_certificate(&store, &p);
    let (m, blobs) = story(&p, 4, 4, b"<p>Story 4</p>").signed();
    let vm = policy.verify_manifest(&m, now()).unwrap();
    store
        .ingest(&[policy.verify_bundle(vm, blobs).unwrap()])
        .unwrap();
    assert!(store.has_bundle(&stolen_id).unwrap());
    let mut late = spawn_on(&[&p], store, NetConfig::for_tests()).await;
    connect(&mut late, &c).await;
    wait_gone(&late, &stolen_id).await;
    for n in [&newsroom, &b, &c] {
        assert!(!n.store.has_bundle(&stolen_id).unwrap());
    }
    for n in [&newsroom, &b, &c, &late] {
        n.node.shutdown().await.unwrap();
    }
}

/// The newsroom after rotating: the same root, a new signing key (seed 9)
/// certified with serial 2.
fn rotated() -> Publisher {
    Publisher {
        root: seed(1),
        signing: seed(9),
        cert: certificate(&seed(1), &seed(9), 2, T0, T0.plus(30 * DAY), vec![]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_contains_a_thief_who_backdates_and_the_newsroom_takes_its_slot_back() {
    let p = Publisher::new(1);
    let mut newsroom = spawn(&p).await;
    let mut reader = spawn(&p).await;
    let mut thief = spawn(&p).await;
    connect(&mut newsroom, &reader).await;
    connect(&mut thief, &reader).await;

    // Two genuine stories, sequence 1 and 2.
    let (one, id1) = file(&p, 1);
    let (two, id2) = file(&p, 2);
    for (f, id) in [(one, id1), (two, id2)] {
        newsroom.node.publish(f).await.unwrap();
        wait_for(&mut reader.events, "a genuine story", |e| {
            *e == NodeEvent::Stored(id)
        })
        .await;
    }

    // The thief, with the stolen key, takes the next numbers with bundles
    // it backdates to one hour after T0: a story of its own, and a fake
    // retraction of story 1 (version 2, superseding the genuine one).
    let mut own = story(&p, 3, 30, b"<p>planted</p>");
    own.published = T0.plus(3600);
    let (planted, planted_id) = own.bundle_file(vec![p.head(3, T0.plus(3600))]);
    let mut fake = story(&p, 4, 1, b"<p>retracted</p>");
    fake.version = 2;
    fake.kind = Kind::Retraction;
    fake.supersedes = Some(id1);
    fake.published = T0.plus(3600);
    let (retraction, fake_id) = fake.bundle_file(vec![p.head(4, T0.plus(3600))]);
    for (f, id) in [(planted, planted_id), (retraction.clone(), fake_id)] {
        thief.node.publish(f).await.unwrap();
        wait_for(&mut reader.events, "the thief's bundle", |e| {
            *e == NodeEvent::Stored(id)
        })
        .await;
    }
    let s1 = StoryId([1; 16]);
    assert_eq!(
        reader.store.story_kinds(&p.public(), &s1).unwrap(),
        [Kind::Story, Kind::Retraction],
        "the fake retraction took story 1 before the revocation"
    );

    // The newsroom learns of the theft at three hours after T0. Both of
    // the thief's bundles claim an earlier time, so the effective time
    // alone would keep them; the cut-off (its own last number, 2) does not.
    let revocation = p.revocation_cut(p.signing.public(), T0.plus(3 * 3600), 2);
    newsroom.node.revoke(revocation).await.unwrap();
    for id in [planted_id, fake_id] {
        wait_gone(&reader, &id).await;
    }
    assert!(reader.store.has_bundle(&id1).unwrap());
    assert!(reader.store.has_bundle(&id2).unwrap());
    assert_eq!(
        reader.store.story_kinds(&p.public(), &s1).unwrap(),
        [Kind::Story],
        "the reader's page shows the genuine story again"
    );
    let latest = reader.store.latest_stories(&p.public(), 0, 10).unwrap();
    assert!(latest.iter().any(|m| m.id == id1));
    // The thief's numbers are free again: not held, not known.
    assert_eq!(reader.store.known_ranges(&p.public()).unwrap(), [(1, 2)]);

    // Offered again, even backdated, the fake retraction is refused.
    let err = reader.node.publish(retraction).await.unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    assert!(!reader.store.has_bundle(&fake_id).unwrap());

    // The newsroom, with its new key, publishes its own bundle at number 3,
    // the slot the thief held: the reader takes it.
    let r = rotated();
    let mut genuine = story(&r, 3, 3, b"<p>Story 3, genuine</p>");
    genuine.published = T0.plus(4 * 3600);
    let (g, genuine_id) = genuine.bundle_file(vec![r.head(3, T0.plus(4 * 3600))]);
    newsroom.node.publish(g).await.unwrap();
    wait_for(
        &mut reader.events,
        "the newsroom's bundle at the thief's slot",
        |e| *e == NodeEvent::Stored(genuine_id),
    )
    .await;
    assert_eq!(
        reader.store.held_at(&p.public(), 3).unwrap(),
        Some(genuine_id)
    );
    assert_eq!(reader.store.known_ranges(&p.public()).unwrap(), [(1, 3)]);

    for n in [&newsroom, &reader, &thief] {
        n.node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_holder_cannot_claim_a_head_that_never_expires_nor_a_version_out_of_reach() {
    let p = Publisher::new(1);
    let mut reader = spawn(&p).await;
    let mut thief = spawn(&p).await;
    connect(&mut thief, &reader).await;

    // A head fresh for a year: refused by the thief's own node and by the
    // reader alike.
    let forever = Head {
        format: FORMAT_VERSION,
        publisher: p.public(),
        certificate: p.cert_id(),
        sequence: 1,
        issued_at: T0.plus(3600),
        expires_at: T0.plus(365 * DAY),
    }
    .sign(&p.signing)
    .unwrap();
    let (f, id) = file(&p, 1);
    let mut with_forever = f.clone();
    with_forever.heads = vec![forever];
    for n in [&thief, &reader] {
        let err = n.node.publish(with_forever.clone()).await.unwrap_err();
        assert!(err.to_string().contains("head expiry"), "{err}");
    }

    // A version far above any sequence number the publisher issued.
    let mut high = story(&p, 2, 2, b"<p>v1000</p>");
    high.version = 1000;
    high.supersedes = Some(id);
    high.kind = Kind::Correction;
    let (high, high_id) = high.bundle_file(vec![]);
    for n in [&thief, &reader] {
        let err = n.node.publish(high.clone()).await.unwrap_err();
        assert!(err.to_string().contains("version"), "{err}");
        assert!(!n.store.has_bundle(&high_id).unwrap());
    }

    // The same bundle with an honest head goes through.
    thief.node.publish(f).await.unwrap();
    wait_for(&mut reader.events, "the honest bundle", |e| {
        *e == NodeEvent::Stored(id)
    })
    .await;
    for n in [&reader, &thief] {
        n.node.shutdown().await.unwrap();
    }
}
