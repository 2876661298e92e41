//! The fetcher's shares on virtual time: one peer's fetches capped, a
//! stalling peer moved away from, struck and banned, a late answer that
//! judges nobody, the per-peer entries pruned, and catch-up asking again
//! every number a cut left out.

use std::time::Duration;

use super::core_tests::{at, drain, fixture_with, verdicts};
use super::world::Newsroom;
use crate::sync::fetch::{FetchLimits, MAX_STRIKES};
use crate::sync::messages::{
    Announcement, FetchRequest, FetchResponse, PublisherState, SyncBundle, SyncRequest,
    SyncResponse, topic_name,
};
use crate::sync::{Action, Kind, Now, Origin, State, Token, Verdict};

fn limits(max_fetches: usize, per_peer: usize, reserved: usize, stall: u64) -> FetchLimits {
    FetchLimits {
        max_fetches,
        max_requests_per_peer: 4,
        deadline: Duration::from_secs(300),
        per_peer,
        reserved,
        stall: Duration::from_secs(stall),
    }
}

/// Announces story `story` from `from` as gossip message `message`.
fn announce(
    s: &mut State<u32, u64>,
    news: &Newsroom,
    story: usize,
    from: u32,
    message: u64,
    now: Now,
) {
    let (bundle, _) = &news.bundles[story];
    let data = Announcement::Bundle {
        certificate: news.cert.clone(),
        manifest: bundle.manifest().bytes().to_vec(),
    }
    .encode();
    let origin = Origin {
        message,
        source: from,
    };
    s.gossip(origin, &topic_name(&news.root), &data, now);
}

/// The fetch requests among `out`: peer, token, blob hash and request.
fn fetches(out: &[Action<u32, u64>]) -> Vec<(u32, Token, crate::proto::BlobHash, FetchRequest)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Fetch {
                peer,
                token,
                request,
            } => Some((*peer, *token, request.hash(), request.clone())),
            _ => None,
        })
        .collect()
}

/// An honest answer to `request` for blob `hash` of story `story`.
fn chunk(
    news: &Newsroom,
    story: usize,
    hash: crate::proto::BlobHash,
    request: FetchRequest,
) -> FetchResponse {
    let blob = news.bundles[story]
        .0
        .blobs()
        .find(|(e, _)| e.hash == hash)
        .map(|(_, b)| b.to_vec())
        .expect("a blob of the story");
    let (offset, len) = match request {
        FetchRequest::Blob { offset, .. } => (offset, crate::sync::messages::CHUNK),
        FetchRequest::Range { offset, len, .. } => (offset, u64::from(len)),
        FetchRequest::Outboard { .. } => {
            return FetchResponse::Outboard {
                total: blob.len() as u64,
                data: crate::proto::pieces::Outboard::compute(&blob).encode(),
            };
        }
    };
    let start = offset as usize;
    let end = (start + len as usize).min(blob.len());
    FetchResponse::Chunk {
        total: blob.len() as u64,
        offset,
        data: blob[start..end].to_vec(),
    }
}

#[test]
fn one_peer_gets_its_share_and_the_others_are_still_served() {
    let (mut s, news) = fixture_with(limits(8, 2, 2, 5));
    s.peer_up(7, at(0));
    s.peer_up(8, at(0));
    drain(&mut s);
    // The hog announces five stories: two are fetched; the other three,
    // verified, are forwarded (accepted) but not fetched from it.
    for story in 0..5 {
        announce(&mut s, &news, story, 7, story as u64, at(1));
    }
    let out = drain(&mut s);
    assert_eq!(s.fetcher().sponsored(&7), 2);
    assert_eq!(fetches(&out).iter().filter(|f| f.0 == 7).count(), 2);
    assert_eq!(
        verdicts(&out),
        vec![
            (2, Verdict::Accept),
            (3, Verdict::Accept),
            (4, Verdict::Accept)
        ]
    );
    // Another peer's announcement is served meanwhile.
    announce(&mut s, &news, 5, 8, 5, at(1));
    let out = drain(&mut s);
    assert!(
        fetches(&out).iter().any(|f| f.0 == 8),
        "the honest announcement is fetched: {out:?}"
    );
    // The hog never answers: past the stall time its fetches ask the other
    // peer, it is struck, and not asked while it backs off.
    s.tick(at(3));
    assert!(
        fetches(&drain(&mut s)).is_empty(),
        "not before the stall time"
    );
    s.tick(at(6));
    let out = drain(&mut s);
    let moved = fetches(&out);
    assert_eq!(moved.iter().filter(|f| f.0 == 8).count(), 2, "{out:?}");
    assert!(moved.iter().all(|f| f.0 != 7));
    assert_eq!(s.fetcher().strikes(&7, at(6).at), 1);
    // Its stalled requests still count against it until they end.
    assert_eq!(s.fetcher().open_requests(&7), 2);
    assert!(!out.iter().any(|a| matches!(a, Action::Ban { .. })));
}

#[test]
fn a_peer_that_keeps_stalling_is_struck_backed_off_and_banned() {
    let (mut s, news) = fixture_with(limits(8, 2, 2, 5));
    s.peer_up(7, at(0));
    drain(&mut s);
    let mut message = 0;
    let mut asked = Vec::new();
    let mut open: Vec<(Token, u64)> = Vec::new();
    let mut banned_at = None;
    for t in 0..200 {
        if s.fetching() == 0 {
            message += 1;
            announce(&mut s, &news, 0, 7, message, at(t));
        }
        s.tick(at(t));
        let mut out = drain(&mut s);
        // The transport times out what the fetch left behind; that
        // failure is the same stall, not a second strike.
        for (token, _) in open.iter().filter(|(_, sent)| t >= sent + 6) {
            s.fetch_response(*token, Err("timed out".into()), at(t));
        }
        open.retain(|(_, sent)| t < sent + 6);
        out.extend(drain(&mut s));
        for f in fetches(&out) {
            asked.push(t);
            open.push((f.1, t));
        }
        if out.iter().any(
            |a| matches!(a, Action::Ban { peer: 7, refusal } if refusal.kind == Kind::Unresponsive),
        ) {
            banned_at = Some(t);
            break;
        }
    }
    let banned_at = banned_at.expect("a peer that never answers is banned");
    assert!(s.is_banned(&7, at(banned_at).at));
    // One request per strike: it was not asked again while backing off.
    assert_eq!(asked.len(), MAX_STRIKES as usize, "asked at {asked:?}");
    assert!(asked.windows(2).all(|w| w[1] - w[0] >= 5), "{asked:?}");
}

#[test]
fn a_late_answer_to_an_aborted_fetch_judges_nobody() {
    let mut l = limits(8, 8, 0, 600);
    l.deadline = Duration::from_secs(30);
    let (mut s, news) = fixture_with(l);
    s.peer_up(7, at(0));
    drain(&mut s);
    // Story 5 has a body and an image of two chunks.
    announce(&mut s, &news, 4, 7, 1, at(0));
    let (_, first, body, _) = fetches(&drain(&mut s))[0];
    // The announcement verified: its verdict came at the end of its hold,
    // whatever became of the fetch.
    s.tick(at(31));
    assert_eq!(verdicts(&drain(&mut s)), vec![(1, Verdict::Accept)]);
    // Fetched again; the body comes, then the image's first chunk is asked.
    announce(&mut s, &news, 4, 7, 2, at(32));
    let (_, t, hash, req) = fetches(&drain(&mut s))[0].clone();
    s.fetch_response(t, Ok(chunk(&news, 4, hash, req)), at(33));
    let (_, t, image, req) = fetches(&drain(&mut s))[0].clone();
    assert_ne!(image, body);
    // The first fetch's answer arrives now: the body at offset 0, which
    // the new fetch (on the image) would take for a malformed chunk.
    let whole = FetchRequest::Blob {
        hash: body,
        offset: 0,
    };
    assert!(s.fetch_response(first, Ok(chunk(&news, 4, body, whole)), at(34)));
    let out = drain(&mut s);
    assert!(
        !out.iter().any(|a| matches!(a, Action::Ban { .. })),
        "{out:?}"
    );
    assert!(!s.is_banned(&7, at(34).at));
    // The new fetch goes on and completes.
    s.fetch_response(t, Ok(chunk(&news, 4, image, req)), at(35));
    let mut out = drain(&mut s);
    for _ in 0..64 {
        let Some((_, t, hash, req)) = fetches(&out).first().cloned() else {
            break;
        };
        assert_eq!(hash, image);
        s.fetch_response(t, Ok(chunk(&news, 4, image, req)), at(35));
        out = drain(&mut s);
    }
    assert!(
        out.iter().any(|a| matches!(a, Action::Store { .. })),
        "the bundle goes to the store"
    );
}

#[test]
fn a_peer_that_leaves_leaves_no_entry_and_its_fetches_ask_another() {
    let (mut s, news) = fixture_with(limits(8, 8, 0, 600));
    s.peer_up(7, at(0));
    s.peer_up(8, at(0));
    drain(&mut s);
    for story in 0..3 {
        announce(&mut s, &news, story, 7, story as u64, at(1));
    }
    drain(&mut s);
    assert_eq!(s.fetcher().open_requests(&7), 3);
    s.peer_down(&7, at(2));
    let out = drain(&mut s);
    assert_eq!(s.fetcher().open_requests(&7), 0);
    assert_eq!(s.fetcher().peer_entries(), 1, "only 8's open requests");
    assert_eq!(fetches(&out).iter().filter(|f| f.0 == 8).count(), 3);
}

#[test]
fn a_cut_in_an_unsorted_ask_puts_every_number_back() {
    // One slot: a bundle catch-up lists while it is taken goes to the end
    // of the queue, so the next ask is out of order.
    let (mut s, news) = fixture_with(limits(1, 1, 0, 600));
    let (_, head) = &news.bundles[5];
    let data = Announcement::Head {
        certificate: news.cert.clone(),
        head: head.clone(),
    }
    .encode();
    s.gossip(
        Origin {
            message: 99,
            source: 7,
        },
        &topic_name(&news.root),
        &data,
        at(0),
    );
    s.peer_up(7, at(1));
    s.peer_up(8, at(1));
    let summaries: Vec<Token> = drain(&mut s)
        .into_iter()
        .filter_map(|a| match a {
            Action::Sync {
                peer: 7,
                token,
                request: SyncRequest::Summary { .. },
            } => Some(token),
            _ => None,
        })
        .collect();
    let summary = SyncResponse::Summary {
        publishers: vec![PublisherState {
            publisher: news.root,
            head: None,
            revocations: vec![],
            ranges: Some(vec![(1, 6)]),
            more: None,
        }],
    };
    s.sync_response(summaries[0], Ok(summary), false, at(1));
    let asked = bundles_asked(&drain(&mut s));
    assert_eq!(
        asked.iter().map(|a| a.1.clone()).collect::<Vec<_>>(),
        vec![vec![1, 2, 3, 4, 5, 6]]
    );
    // Meanwhile peer 8 announces story 1: it takes the one slot.
    announce(&mut s, &news, 0, 8, 1, at(2));
    let (_, fetch_token, hash, req) = fetches(&drain(&mut s))[0].clone();
    // 2 to 4 come whole, 5 (too large to come inline) finds no slot, and
    // the answer is cut at 6.
    let whole = |story: usize| SyncBundle {
        manifest: news.bundles[story].0.manifest().bytes().to_vec(),
        blobs: Some(
            news.bundles[story]
                .0
                .blobs()
                .map(|(_, b)| b.to_vec())
                .collect(),
        ),
    };
    let reply = SyncResponse::Bundles {
        certificates: vec![news.cert.clone()],
        bundles: vec![
            whole(1),
            whole(2),
            whole(3),
            SyncBundle {
                manifest: news.bundles[4].0.manifest().bytes().to_vec(),
                blobs: None,
            },
        ],
        cut_at: Some(6),
    };
    s.sync_response(asked[0].0, Ok(reply), false, at(2));
    drain(&mut s);
    // The slot frees: the next ask is 6 then 5.
    s.fetch_response(fetch_token, Ok(chunk(&news, 0, hash, req)), at(3));
    let asked = bundles_asked(&drain(&mut s));
    assert_eq!(asked[0].1, vec![6, 5]);
    // Cut at once (the peer is over its upload cap): both are asked again.
    let reply = SyncResponse::Bundles {
        certificates: vec![],
        bundles: vec![],
        cut_at: Some(6),
    };
    s.sync_response(asked[0].0, Ok(reply), false, at(3));
    drain(&mut s);
    s.tick(at(5));
    let asked = bundles_asked(&drain(&mut s));
    assert_eq!(asked[0].1, vec![5, 6], "no number lost to the cut");
}

fn bundles_asked(out: &[Action<u32, u64>]) -> Vec<(Token, Vec<u64>)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Sync {
                token,
                request: SyncRequest::Bundles { sequences, .. },
                ..
            } => Some((*token, sequences.clone())),
            _ => None,
        })
        .collect()
}
