//! Two quiet readers, trusting different publishers, against a hostile
//! mirror that records every byte they send after Noise and serves them
//! its whole log: each gets its own publisher's stories, and neither
//! recording holds a publisher key, a topic or DHT key derived from one, a
//! story id, a bundle id or a blob hash; what the two sent cannot be told
//! apart by any of those, nor by what they asked.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::net::{TestNode, memory_store, poll, spawn_on};
use common::recording::*;
use common::*;
use kolokol::net::NetConfig;
use kolokol::net::wire::{self, LogCodec, LogEntry, LogRequest, LogResponse, SyncBundle};
use kolokol::proto::*;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::{PeerId, StreamProtocol};
use tokio::time::timeout;

const QUICK: Duration = Duration::from_secs(30);
const STORIES: u64 = 4;

fn quiet() -> NetConfig {
    NetConfig {
        share: false,
        ..NetConfig::for_tests()
    }
}

/// Every story of both publishers, with what identifies it.
struct Content {
    entries: Vec<LogEntry>,
    certificates: Vec<Vec<u8>>,
    needles: Needles,
    ids: Vec<(PublicKey, BundleId)>,
}

fn content(publishers: &[&Publisher]) -> Content {
    let mut entries = Vec::new();
    let mut needles = Needles::new();
    let mut ids = Vec::new();
    for (k, p) in publishers.iter().enumerate() {
        needles.extend(publisher_needles(&format!("publisher {k}"), &p.public()));
        for seq in 1..=STORIES {
            let s = story(
                p,
                seq,
                (k as u8) * 16 + seq as u8,
                format!("<p>Story {seq} of {k}</p>").as_bytes(),
            );
            let (manifest, blobs) = s.signed();
            let id = BundleId::of(&manifest);
            needles.extend(byte_forms(&format!("bundle {k}/{seq}"), id.as_bytes()));
            needles.extend(byte_forms(&format!("story {k}/{seq}"), &s.story.0));
            for b in &blobs {
                needles.extend(byte_forms(
                    &format!("blob {k}/{seq}"),
                    BlobHash::of(b).as_bytes(),
                ));
            }
            ids.push((p.public(), id));
            entries.push(LogEntry::Bundle(SyncBundle {
                manifest,
                blobs: Some(blobs),
            }));
        }
        entries.push(LogEntry::Head(p.head(STORIES, T0.plus(3600))));
    }
    Content {
        entries,
        certificates: publishers.iter().map(|p| p.cert.clone()).collect(),
        needles,
        ids,
    }
}

/// The log requests each peer sent, in order.
type Asked = Arc<Mutex<Vec<(PeerId, LogRequest)>>>;

async fn mirror(
    content: &Content,
    asked: Asked,
) -> HostileMirror<request_response::Behaviour<LogCodec>> {
    let end = content.entries.len() as u64;
    let entries = content.entries.clone();
    let certificates = content.certificates.clone();
    let log_behaviour = request_response::Behaviour::with_codec(
        LogCodec::default(),
        [(
            StreamProtocol::new(wire::LOG_PROTOCOL),
            ProtocolSupport::Full,
        )],
        request_response::Config::default(),
    );
    let config = MirrorConfig::default().with_extra(log_behaviour, move |b, event, _log| {
        if let request_response::Event::Message {
            peer,
            message:
                request_response::Message::Request {
                    request, channel, ..
                },
            ..
        } = event
        {
            asked.lock().unwrap().push((peer, request));
            let from = request.from.min(end) as usize;
            let page = LogResponse::Page {
                log: [7; 16],
                certificates: if from < end as usize {
                    certificates.clone()
                } else {
                    vec![]
                },
                entries: entries[from..].to_vec(),
                next: end,
                end,
            };
            let _ = b.send_response(channel, page);
        }
    });
    HostileMirror::spawn(config).await
}

async fn reader(
    p: &Publisher,
    mirror: &HostileMirror<request_response::Behaviour<LogCodec>>,
) -> TestNode {
    let node = spawn_on(&[p], memory_store(), quiet()).await;
    node.node.dial(mirror.addr.clone()).await.unwrap();
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_readers_name_nothing_they_trust_and_cannot_be_told_apart() {
    timeout(QUICK, async {
        let a = Publisher::new(1);
        let b = Publisher::new(3);
        let content = content(&[&a, &b]);
        let asked: Asked = Arc::default();
        let mirror = mirror(&content, asked.clone()).await;
        let ra = reader(&a, &mirror).await;
        let rb = reader(&b, &mirror).await;
        for (r, p) in [(&ra, &a), (&rb, &b)] {
            let mine: Vec<BundleId> = content
                .ids
                .iter()
                .filter(|(k, _)| *k == p.public())
                .map(|(_, id)| *id)
                .collect();
            poll("the reader's own stories", async || {
                mine.iter()
                    .all(|id| r.store.has_bundle(id).unwrap())
                    .then_some(())
            })
            .await;
            // Only its own: the other publisher's came and were dropped.
            assert_eq!(r.store.totals().unwrap().bundles, STORIES);
        }
        // Each waits at the end of the log now; let a few more requests,
        // identify and the DHT's own traffic come.
        let (ida, idb) = (ra.node.peer_id(), rb.node.peer_id());
        mirror
            .log
            .wait_for("both readers' identify", Duration::from_secs(10), |log| {
                let seen = |id: &PeerId| {
                    log.iter()
                        .any(|e| matches!(e, Observed::Identify { peer, .. } if peer == id))
                };
                (seen(&ida) && seen(&idb)).then_some(())
            })
            .await;
        tokio::time::sleep(Duration::from_millis(2500)).await;

        for id in [&ida, &idb] {
            assert!(mirror.recordings.bytes_from(id) > 0);
            let found = mirror.recordings.find(Some(id), &content.needles);
            assert!(found.is_empty(), "reader {id} sent {found:?}");
        }
        assert!(!mirror.recordings.truncated());

        // What each did, field by field, is the same.
        let entries = mirror.log.entries();
        for id in [&ida, &idb] {
            let named: Vec<&Observed> = entries
                .iter()
                .filter(|e| e.peer() == Some(*id))
                .filter(|e| {
                    matches!(
                        e,
                        Observed::Subscribed { .. }
                            | Observed::Gossip { .. }
                            | Observed::Fetch { .. }
                            | Observed::Sync { .. }
                    )
                })
                .collect();
            assert!(named.is_empty(), "reader {id}: {named:?}");
        }
        let identify = |id: &PeerId| {
            entries.iter().find_map(|e| match e {
                Observed::Identify {
                    peer,
                    agent,
                    protocol_version,
                    listen_addrs,
                    protocols,
                    ..
                } if peer == id => {
                    let mut protocols = protocols.clone();
                    protocols.sort();
                    Some((
                        agent.clone(),
                        protocol_version.clone(),
                        listen_addrs.clone(),
                        protocols,
                    ))
                }
                _ => None,
            })
        };
        assert_eq!(identify(&ida), identify(&idb));
        let requests = |id: &PeerId| -> Vec<LogRequest> {
            asked
                .lock()
                .unwrap()
                .iter()
                .filter(|(p, _)| p == id)
                .map(|(_, r)| *r)
                .collect()
        };
        let (qa, qb) = (requests(&ida), requests(&idb));
        let n = qa.len().min(qb.len());
        assert!(n >= 2, "{qa:?} {qb:?}");
        assert_eq!(qa[..n], qb[..n]);
        assert_eq!(
            qa[0],
            LogRequest {
                from: 0,
                wait: false
            }
        );
        let end = content.entries.len() as u64;
        assert!(
            qa[1..n].iter().all(|r| *r
                == LogRequest {
                    from: end,
                    wait: true
                }),
            "{qa:?}"
        );
    })
    .await
    .expect("the test finishes in time");
}

/// What a quiet reader imports (an archive carried by hand, a web tree it
/// read) it keeps to itself: a mirror subscribed to the publisher's topic
/// receives no announcement of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_reader_does_not_announce_what_it_imports() {
    timeout(QUICK, async {
        let p = Publisher::new(5);
        let mirror = HostileMirror::spawn(MirrorConfig {
            topics: vec![wire::topic_name(&p.public())],
            ..MirrorConfig::default()
        })
        .await;
        let r = spawn_on(&[&p], memory_store(), quiet()).await;
        let id = r.node.peer_id();
        r.node.dial(mirror.addr.clone()).await.unwrap();
        mirror
            .log
            .wait_for("the reader's identify", Duration::from_secs(10), |log| {
                log.iter()
                    .any(|e| matches!(e, Observed::Identify { peer, .. } if *peer == id))
                    .then_some(())
            })
            .await;
        let report = r.node.import_bytes(archive(&p, 5, 200)).await.unwrap();
        assert_eq!(report.new, 5);
        // Gossipsub's heartbeat is 200 ms: an announcement would be out.
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let gossip: Vec<Observed> = mirror
            .log
            .entries()
            .into_iter()
            .filter(|e| e.peer() == Some(id) && matches!(e, Observed::Gossip { .. }))
            .collect();
        assert!(gossip.is_empty(), "the reader announced {gossip:?}");
    })
    .await
    .expect("the test finishes in time");
}
