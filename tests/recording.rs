//! The recording mirror sees what a peer sends after Noise: a sharing
//! node's trust list (its topic subscriptions and catch-up summaries name
//! the publisher), and a story it announces, byte for byte; and nothing of
//! a key the node never used.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::net::{memory_store, spawn_on, wait_for};
use common::recording::*;
use common::*;
use kolokol::net::wire::{
    self, FetchCodec, FetchRequest, FetchResponse, SyncRequest, SyncResponse,
};
use kolokol::net::{NetConfig, NodeEvent};
use kolokol::proto::{BlobHash, PublicKey};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::{PeerId, StreamProtocol};
use tokio::time::timeout;

/// How long any one test may take.
const QUICK: Duration = Duration::from_secs(10);
/// How long one wait on the mirror may take.
const WAIT: Duration = Duration::from_secs(8);
/// A protocol only the mirror speaks.
const EXTRA: &str = "/kolokol/test-extra/1";

/// A sharing node trusting `p`, connected to a mirror that follows `p`'s
/// topic, once the node's identify, its subscription to `p`'s topic and
/// its catch-up summary naming `p` have reached the mirror.
async fn node_against_mirror(p: &Publisher) -> (common::net::TestNode, HostileMirror) {
    let mirror = HostileMirror::spawn(MirrorConfig {
        topics: vec![wire::topic_name(&p.public())],
        ..Default::default()
    })
    .await;
    let mut node = spawn_on(&[p], memory_store(), NetConfig::for_tests()).await;
    node.node.dial(mirror.addr.clone()).await.unwrap();
    let peer = mirror.peer_id;
    wait_for(&mut node.events, "the connection to the mirror", |e| {
        *e == NodeEvent::Connected(peer)
    })
    .await;
    let node_id = node.node.peer_id();
    let topic = wire::topic_name(&p.public());
    let publisher = p.public();
    mirror
        .log
        .wait_for("the node's identify, subscription and summary", WAIT, |log| {
            let subscribed = log.iter().any(|e| {
                matches!(e, Observed::Subscribed { peer, topic: t } if *peer == node_id && *t == topic)
            });
            let summary = log.iter().any(|e| match e {
                Observed::Sync {
                    peer,
                    request: SyncRequest::Summary { publishers },
                } => *peer == node_id && publishers.iter().any(|q| q.publisher == publisher),
                _ => false,
            });
            let identified = log
                .iter()
                .any(|e| matches!(e, Observed::Identify { peer, .. } if *peer == node_id));
            (subscribed && summary && identified).then_some(())
        })
        .await;
    (node, mirror)
}

fn identified(mirror: &HostileMirror, node: &PeerId) -> Option<String> {
    mirror.log.entries().into_iter().find_map(|e| match e {
        Observed::Identify { peer, agent, .. } if peer == *node => Some(agent),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_holds_the_plaintext_a_sharing_node_sends() {
    timeout(QUICK, async {
        let p = Publisher::new(1);
        let (node, mirror) = node_against_mirror(&p).await;
        let node_id = node.node.peer_id();
        let recordings = mirror.recordings.of(&node_id);
        assert_eq!(recordings.len(), 1, "one connection, the node's");
        assert_eq!(recordings[0].direction, Direction::Inbound);
        assert!(!mirror.recordings.truncated());

        // After Noise: multistream-select's protocol names are plaintext.
        let protocols = [
            ("yamux", b"/yamux/1.0.0".to_vec()),
            ("sync", wire::SYNC_PROTOCOL.as_bytes().to_vec()),
            ("gossipsub", b"/meshsub/".to_vec()),
            ("identify", b"/ipfs/id/1.0.0".to_vec()),
        ];
        let labels: Vec<&str> = protocols.iter().map(|(l, _)| *l).collect();
        assert_eq!(
            mirror.recordings.find(Some(&node_id), &protocols),
            labels,
            "protocol names after Noise"
        );
        // The trust list: its topic and its key are in what the node sent.
        let found = mirror
            .recordings
            .find(Some(&node_id), &publisher_needles("publisher", &p.public()));
        for want in ["publisher raw", "publisher hex", "publisher topic"] {
            assert!(found.iter().any(|f| f == want), "{want} not in {found:?}");
        }
        // An IdentTopic's hash is its name: the subscription is the name.
        assert!(!found.iter().any(|f| f == "publisher topic sha256 hash"));
        assert!(
            identified(&mirror, &node_id).is_some_and(|a| a.starts_with("rust-libp2p/")),
            "the node's identify was seen, naming no Kolokol"
        );

        // The recording grows by what the node sends: a story's
        // announcement carries its signed manifest whole.
        let before = mirror.recordings.bytes_from(&node_id);
        let mut s = story(&p, 1, 1, b"<p>A story</p>");
        s.published = now().minus(3600);
        let (file, _) = s.bundle_file(vec![p.head(1, now().minus(60))]);
        let manifest = file.manifest.clone();
        node.node.publish(file).await.unwrap();
        let topic = wire::topic_name(&p.public());
        mirror
            .log
            .wait_for("the story's announcement", WAIT, |log| {
                log.iter()
                    .any(|e| matches!(e, Observed::Gossip { topic: t, .. } if *t == topic))
                    .then_some(())
            })
            .await;
        let after = mirror.recordings.bytes_from(&node_id);
        eprintln!(
            "recorded {before} bytes before the story, {after} after; a manifest of {}",
            manifest.len()
        );
        assert!(
            after >= before + manifest.len() as u64,
            "{before} -> {after} bytes, for a manifest of {}",
            manifest.len()
        );
        assert_eq!(
            mirror
                .recordings
                .find(Some(&node_id), &[("manifest", manifest)]),
            ["manifest"]
        );
    })
    .await
    .expect("the test's deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_holds_no_key_the_node_never_used() {
    timeout(QUICK, async {
        let p = Publisher::new(1);
        let (node, mirror) = node_against_mirror(&p).await;
        let node_id = node.node.peer_id();
        // The same scan finds the trusted publisher, so it can find.
        let trusted = mirror
            .recordings
            .find(Some(&node_id), &publisher_needles("trusted", &p.public()));
        assert!(trusted.iter().any(|f| f == "trusted raw"), "{trusted:?}");
        // A publisher the node was never told of, and random bytes.
        let stranger = Publisher::new(100).public();
        let random = PublicKey(rand::random());
        let mut needles = publisher_needles("stranger", &stranger);
        needles.extend(publisher_needles("random", &random));
        assert_eq!(
            mirror.recordings.find(None, &needles),
            Vec::<String>::new(),
            "in {} bytes",
            mirror.recordings.bytes_from(&node_id)
        );
    })
    .await
    .expect("the test's deadline");
}

#[test]
fn needle_forms_are_the_usual_encodings() {
    assert_eq!(base64(b"foobar", STANDARD), "Zm9vYmFy");
    assert_eq!(base64(b"fooba", STANDARD), "Zm9vYmE");
    assert_eq!(base64(&[0xfb, 0xff], URL_SAFE), "-_8");
    assert_eq!(base58(b"hello world"), "StV1DL6CwTryKyV");
    assert_eq!(base58(&[0, 0, 1]), "112");
    let key = PublicKey([0xab; 32]);
    let needles = publisher_needles("p", &key);
    let get = |l: &str| needles.iter().find(|(n, _)| n == l).unwrap().1.clone();
    assert_eq!(get("p raw"), vec![0xab; 32]);
    assert_eq!(get("p HEX"), "AB".repeat(32).into_bytes());
    assert_eq!(get("p topic"), wire::topic_name(&key).into_bytes());
    assert_eq!(get("p mirror key raw"), wire::mirror_key(&key));
    let haystack = [b"xx".as_slice(), &wire::mirror_key(&key), b"yy"].concat();
    assert_eq!(
        find_needles(&haystack, &needles),
        ["p mirror key raw", "p mirror key raw[..8]"]
    );
    assert!(find_needles(b"", &[("empty", vec![])]).is_empty());
}

/// The extension points work: custom catch-up answers, one more
/// request-response protocol driven through `with_swarm`, and dial-backs
/// to the addresses the node lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_takes_answers_a_protocol_more_and_dials_back() {
    timeout(QUICK, async {
        let p = Publisher::new(1);
        let answered = Arc::new(AtomicUsize::new(0));
        let counted = answered.clone();
        let extra = request_response::Behaviour::with_codec(
            FetchCodec,
            [(StreamProtocol::new(EXTRA), ProtocolSupport::Full)],
            request_response::Config::default(),
        );
        let config = MirrorConfig {
            dial_back: true,
            sync: Box::new(move |_, request| {
                matches!(request, SyncRequest::Summary { .. }).then(|| {
                    counted.fetch_add(1, Ordering::Relaxed);
                    SyncResponse::Summary { publishers: vec![] }
                })
            }),
            ..Default::default()
        }
        .with_extra(
            extra,
            |_, event: request_response::Event<FetchRequest, FetchResponse>, log| {
                if let request_response::Event::OutboundFailure { peer, error, .. } = event {
                    log.push(Observed::Other {
                        peer: Some(peer),
                        what: format!("extra failed: {error}"),
                    });
                }
            },
        );
        let mirror = HostileMirror::spawn(config).await;
        let mut node = spawn_on(&[&p], memory_store(), NetConfig::for_tests()).await;
        let node_id = node.node.peer_id();
        node.node.dial(mirror.addr.clone()).await.unwrap();
        let peer = mirror.peer_id;
        wait_for(&mut node.events, "the connection to the mirror", |e| {
            *e == NodeEvent::Connected(peer)
        })
        .await;
        // The node listens on loopback: the mirror gets through to it.
        let listening = node.addr.clone();
        let back = mirror
            .log
            .wait_for("a dial-back", WAIT, |log| {
                log.iter().find_map(|e| match e {
                    Observed::DialBack {
                        peer,
                        address,
                        outcome,
                    } if *peer == node_id => Some((address.clone(), outcome.clone())),
                    _ => None,
                })
            })
            .await;
        assert_eq!(back.1, Ok(node_id), "dial-back to {}", back.0);
        assert!(listening.to_string().starts_with(&back.0.to_string()));
        // The extra protocol is the mirror's own: the node does not speak
        // it, and the handler hears of it.
        mirror
            .with_swarm(move |swarm| {
                swarm.behaviour_mut().extra.send_request(
                    &node_id,
                    FetchRequest::Blob {
                        hash: BlobHash::of(b"x"),
                        offset: 0,
                    },
                );
            })
            .await;
        let failure = mirror
            .log
            .wait_for("the extra protocol's failure", WAIT, |log| {
                log.iter().find_map(|e| match e {
                    Observed::Other { peer, what } if *peer == Some(node_id) => Some(what.clone()),
                    _ => None,
                })
            })
            .await;
        assert!(failure.contains("protocol"), "{failure}");
        mirror
            .log
            .wait_for("a summary answered", WAIT, |_| {
                (answered.load(Ordering::Relaxed) > 0).then_some(())
            })
            .await;
    })
    .await
    .expect("the test's deadline");
}
