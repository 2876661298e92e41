//! One node's core driven by hand on virtual time: each test feeds inputs
//! and checks the actions that come out.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::world::{Newsroom, T0, newsroom, newsroom_of};
use crate::proto::pieces::{Outboard, PIECE_LEN};
use crate::proto::{PublicKey, SecretKey, Timestamp, TrustPolicy};
use crate::sync::fetch::{FIRST_RANGE, FetchLimits};
use crate::sync::messages::{
    Announcement, FetchRequest, FetchResponse, PublisherState, SyncRequest, SyncResponse,
    topic_name,
};
use crate::sync::{Action, Config, Kind, Now, Origin, State, Stored, Time, Token, Verdict};

fn fixture() -> (State<u32, u64>, Newsroom) {
    fixture_with(limits())
}

fn limits() -> FetchLimits {
    FetchLimits {
        max_fetches: 8,
        max_requests_per_peer: 4,
        deadline: Duration::from_secs(30),
        per_peer: 8,
        reserved: 0,
        stall: Duration::from_secs(30),
    }
}

pub(super) fn fixture_with(fetch: FetchLimits) -> (State<u32, u64>, Newsroom) {
    let mut rng = StdRng::seed_from_u64(7);
    let news = newsroom(6, 1000, &mut rng).expect("the newsroom signs");
    (state_for(&news, fetch), news)
}

/// A sharing node's core that trusts `news`.
fn state_for(news: &Newsroom, fetch: FetchLimits) -> State<u32, u64> {
    let mut policy = TrustPolicy::new();
    policy.trust(news.root, "test").expect("a valid name");
    let config = Config {
        fetch,
        sync_interval: Duration::from_secs(300),
        upload_rate: None,
        download_rate: None,
        serve_rate: None,
        role: crate::sync::Role::Share,
        large_budget: u64::MAX,
    };
    State::new(config, policy, Time::ZERO)
}

pub(super) fn at(secs: u64) -> Now {
    Now {
        at: Time::after(Duration::from_secs(secs)),
        wall: Timestamp(T0.0 + 86_400 + secs),
    }
}

pub(super) fn drain(s: &mut State<u32, u64>) -> Vec<Action<u32, u64>> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

fn announce(s: &mut State<u32, u64>, news: &Newsroom, story: usize, from: u32, now: Now) {
    let (bundle, _) = &news.bundles[story];
    let data = Announcement::Bundle {
        certificate: news.cert.clone(),
        manifest: bundle.manifest().bytes().to_vec(),
    }
    .encode();
    let origin = Origin {
        message: story as u64,
        source: from,
    };
    s.gossip(origin, &topic_name(&news.root), &data, now);
}

pub(super) fn verdicts(actions: &[Action<u32, u64>]) -> Vec<(u64, Verdict)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Verdict { origin, verdict } => Some((origin.message, *verdict)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_fetch_nobody_answers_gives_up_at_its_deadline() {
    let (mut s, news) = fixture();
    announce(&mut s, &news, 0, 7, at(0));
    let out = drain(&mut s);
    assert!(verdicts(&out).is_empty(), "held while the blobs come");
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::Fetch { peer: 7, .. })),
        "{out:?}"
    );
    // The announcement was true: forwarded after the hold, not at the
    // fetch's deadline.
    s.tick(at(1));
    assert_eq!(verdicts(&drain(&mut s)), vec![(0, Verdict::Accept)]);
    s.tick(at(29));
    assert_eq!(s.fetching(), 1, "not before the deadline");
    s.tick(at(31));
    assert!(verdicts(&drain(&mut s)).is_empty());
    assert_eq!(s.fetching(), 0);
}

#[test]
fn a_peer_without_the_blobs_yet_is_asked_again_after_a_pause() {
    let (mut s, news) = fixture();
    s.peer_up(7, at(0));
    drain(&mut s);
    announce(&mut s, &news, 0, 7, at(1));
    let token = |out: &[Action<u32, u64>]| {
        out.iter().find_map(|a| match a {
            Action::Fetch { peer: 7, token, .. } => Some(*token),
            _ => None,
        })
    };
    let first = token(&drain(&mut s)).expect("the announcer is asked");
    // It forwarded the announcement before it held the blobs.
    s.fetch_response(first, Ok(FetchResponse::NotFound), at(1));
    assert!(token(&drain(&mut s)).is_none(), "not again at once");
    s.tick(at(2));
    let again = token(&drain(&mut s)).expect("asked again after the pause");
    assert_ne!(again, first);
    assert_eq!(s.fetching(), 1);
}

/// The one fetch request among `out`: its peer, token and request.
fn request_of(out: &[Action<u32, u64>]) -> Option<(u32, Token, FetchRequest)> {
    out.iter().find_map(|a| match a {
        Action::Fetch {
            peer,
            token,
            request,
        } => Some((*peer, *token, request.clone())),
        _ => None,
    })
}

/// A newsroom of one story whose body takes three chunks, the core of a
/// node trusting it, and the body.
fn large_story() -> (State<u32, u64>, Newsroom, Vec<u8>) {
    let mut rng = StdRng::seed_from_u64(11);
    let len = 2 * crate::sync::messages::CHUNK as usize + 100;
    let news = newsroom(1, len, &mut rng).expect("the newsroom signs");
    let s = state_for(&news, limits());
    let body = news.bundles[0]
        .0
        .blobs()
        .map(|(_, b)| b.to_vec())
        .max_by_key(|b| b.len())
        .expect("a body");
    (s, news, body)
}

/// An honest answer to `request` from a peer holding `body`.
fn serve(body: &[u8], request: &FetchRequest) -> FetchResponse {
    let c = crate::sync::messages::CHUNK;
    let (offset, len) = match *request {
        FetchRequest::Outboard { .. } => {
            return FetchResponse::Outboard {
                total: body.len() as u64,
                data: Outboard::compute(body).encode(),
            };
        }
        FetchRequest::Blob { offset, .. } => (offset, c),
        FetchRequest::Range { offset, len, .. } => (offset, u64::from(len)),
    };
    let start = offset as usize;
    FetchResponse::Chunk {
        total: body.len() as u64,
        offset,
        data: body[start..(start + len as usize).min(body.len())].to_vec(),
    }
}

/// Answers every request of a fetch honestly until the bundle goes to
/// the store; false if it never does.
fn serve_to_the_end(
    s: &mut State<u32, u64>,
    body: &[u8],
    mut out: Vec<Action<u32, u64>>,
    now: Now,
) -> bool {
    for _ in 0..200 {
        if out.iter().any(|a| matches!(a, Action::Store { .. })) {
            return true;
        }
        let Some((_, token, request)) = request_of(&out) else {
            return false;
        };
        s.fetch_response(token, Ok(serve(body, &request)), now);
        out = drain(s);
    }
    false
}

#[test]
fn a_blob_the_peer_refuses_midway_resumes_from_its_last_piece() {
    let (mut s, news, body) = large_story();
    s.peer_up(7, at(0));
    drain(&mut s);
    announce(&mut s, &news, 0, 7, at(1));
    let (peer, token, request) = request_of(&drain(&mut s)).expect("asked");
    assert_eq!(peer, 7);
    assert!(
        matches!(request, FetchRequest::Outboard { .. }),
        "{request:?}"
    );
    s.fetch_response(token, Ok(serve(&body, &request)), at(1));
    let (_, token, request) = request_of(&drain(&mut s)).expect("the first range");
    assert!(matches!(request, FetchRequest::Range { offset: 0, .. }));
    s.fetch_response(token, Ok(serve(&body, &request)), at(1));
    let (_, token, request) = request_of(&drain(&mut s)).expect("the next range");
    let FetchRequest::Range { offset: next, .. } = request else {
        panic!("{request:?}")
    };
    assert_eq!(next, FIRST_RANGE);
    // "Not now" (over its share, say), then a request that fails: each
    // time the same peer is asked again from where it stopped.
    s.fetch_response(token, Ok(FetchResponse::NotFound), at(1));
    s.tick(at(2));
    let (peer, token, request) = request_of(&drain(&mut s)).expect("asked again");
    assert!(matches!(request, FetchRequest::Range { offset, .. } if offset == next));
    assert_eq!(peer, 7);
    s.fetch_response(token, Err("timed out".into()), at(2));
    assert!(request_of(&drain(&mut s)).is_none(), "not again at once");
    s.tick(at(3));
    let out = drain(&mut s);
    let (peer, _, request) = request_of(&out).expect("asked again");
    assert_eq!(peer, 7);
    assert!(matches!(request, FetchRequest::Range { offset, .. } if offset == next));
    assert!(
        serve_to_the_end(&mut s, &body, out, at(3)),
        "the story is whole"
    );
}

#[test]
fn another_peer_takes_over_from_the_last_checked_piece() {
    let (mut s, news, body) = large_story();
    s.peer_up(7, at(0));
    s.peer_up(8, at(0));
    drain(&mut s);
    announce(&mut s, &news, 0, 7, at(1));
    let (peer, token, request) = request_of(&drain(&mut s)).expect("asked");
    assert_eq!(peer, 7);
    s.fetch_response(token, Ok(serve(&body, &request)), at(1));
    let (_, token, request) = request_of(&drain(&mut s)).expect("a range");
    s.fetch_response(token, Ok(serve(&body, &request)), at(1));
    let (_, token, _) = request_of(&drain(&mut s)).expect("the next range");
    s.fetch_response(token, Ok(FetchResponse::NotFound), at(1));
    // Pieces are checked one by one, so the next peer goes on where the
    // first stopped, without the outboard again.
    let (peer, token, request) = request_of(&drain(&mut s)).expect("the other peer");
    assert_eq!(peer, 8);
    assert!(
        matches!(request, FetchRequest::Range { offset, .. } if offset == FIRST_RANGE),
        "{request:?}"
    );
    // A false piece from it bans it at once; what was checked stays.
    let mut lie = serve(&body, &request);
    if let FetchResponse::Chunk { data, .. } = &mut lie {
        data[20] ^= 1;
    }
    s.fetch_response(token, Ok(lie), at(1));
    let out = drain(&mut s);
    assert!(
        out.iter().any(
            |a| matches!(a, Action::Ban { peer: 8, refusal } if refusal.kind == Kind::FalseBlob)
        )
    );
    let (peer, _, request) = request_of(&out).expect("back to the first");
    assert_eq!(peer, 7);
    assert!(matches!(request, FetchRequest::Range { offset, .. } if offset == FIRST_RANGE));
    assert!(serve_to_the_end(&mut s, &body, out, at(1)));
}

#[test]
fn a_slow_link_is_asked_for_less_and_a_stall_replaces_the_connection() {
    let (mut s, news, body) = large_story();
    s.peer_up(7, at(0));
    drain(&mut s);
    announce(&mut s, &news, 0, 7, at(1));
    let (_, token, request) = request_of(&drain(&mut s)).expect("asked");
    s.fetch_response(token, Ok(serve(&body, &request)), at(1));
    // 128 kbit/s: the first range of 64 KiB takes 4 s.
    let (_, token, request) = request_of(&drain(&mut s)).expect("a range");
    s.fetch_response(token, Ok(serve(&body, &request)), at(5));
    let (_, token, request) = request_of(&drain(&mut s)).expect("the next range");
    let FetchRequest::Range { len, .. } = request else {
        panic!("{request:?}")
    };
    assert_eq!(u64::from(len), 2 * PIECE_LEN, "two seconds' worth");
    // Answered within four times what it should take: not a stall.
    s.tick(at(12));
    assert!(request_of(&drain(&mut s)).is_none());
    s.fetch_response(token, Ok(serve(&body, &request)), at(12));
    let (_, _, request) = request_of(&drain(&mut s)).expect("the next range");
    // This one the link freezes: after four times its time it is a stall,
    // the connection is replaced and the peer asked for one piece.
    s.tick(at(30));
    let out = drain(&mut s);
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::Reconnect { peer: 7 })),
        "{out:?}"
    );
    assert!(!out.iter().any(|a| matches!(a, Action::Ban { .. })));
    s.tick(at(32));
    let out = drain(&mut s);
    let (_, _, again) = request_of(&out).expect("asked again after its back-off");
    assert!(
        matches!((&request, &again), (
            FetchRequest::Range { offset: a, .. },
            FetchRequest::Range { offset: b, len, .. },
        ) if a == b && u64::from(*len) == PIECE_LEN),
        "{again:?}"
    );
    assert!(serve_to_the_end(&mut s, &body, out, at(32)));
}

#[test]
fn a_tampered_chunk_bans_its_sender_and_the_next_peer_is_asked() {
    let (mut s, news) = fixture();
    s.peer_up(7, at(0));
    s.peer_up(8, at(0));
    drain(&mut s);
    announce(&mut s, &news, 0, 7, at(1));
    let found = drain(&mut s).into_iter().find_map(|a| match a {
        Action::Fetch {
            peer: 7,
            token,
            request: FetchRequest::Blob { hash, .. },
        } => Some((token, hash)),
        _ => None,
    });
    let Some((token, hash)) = found else {
        panic!("no fetch from the announcer")
    };
    let (bundle, _) = &news.bundles[0];
    let body = bundle
        .blobs()
        .find(|(e, _)| e.hash == hash)
        .map(|(_, b)| b.to_vec())
        .expect("the body");
    let mut false_body = body.clone();
    false_body[0] ^= 1;
    let chunk = |data: Vec<u8>| FetchResponse::Chunk {
        total: data.len() as u64,
        offset: 0,
        data,
    };
    s.fetch_response(token, Ok(chunk(false_body)), at(1));
    let out = drain(&mut s);
    assert!(
        out.iter().any(|a| matches!(
            a,
            Action::Ban { peer: 7, refusal } if refusal.kind == Kind::FalseBlob
        )),
        "{out:?}"
    );
    assert!(s.is_banned(&7, at(2).at));
    let token = out
        .iter()
        .find_map(|a| match a {
            Action::Fetch { peer: 8, token, .. } => Some(*token),
            _ => None,
        })
        .expect("the next candidate is asked");
    s.fetch_response(token, Ok(chunk(body)), at(2));
    let out = drain(&mut s);
    let Some(Action::Store { manifest, .. }) =
        out.into_iter().find(|a| matches!(a, Action::Store { .. }))
    else {
        panic!("the bundle goes to the store")
    };
    assert!(
        s.busy_with_bundle(&manifest.id()),
        "not fetched twice meanwhile"
    );
    s.stored(
        manifest.publisher,
        manifest.sequence,
        manifest.id(),
        Stored::New,
        at(2),
    );
    // The announcer lied about nothing but the blob: the announcement is
    // accepted once the bundle is stored.
    assert_eq!(verdicts(&drain(&mut s)), vec![(0, Verdict::Accept)]);
    assert!(s.knows(&news.root, manifest.sequence));
    // Announced again: held, so ignored without a fetch.
    announce(&mut s, &news, 0, 8, at(3));
    let out = drain(&mut s);
    assert_eq!(verdicts(&out), vec![(0, Verdict::Ignore)]);
    assert!(!out.iter().any(|a| matches!(a, Action::Fetch { .. })));
}

#[test]
fn catch_up_asks_only_what_the_trusted_head_vouches_for() {
    let (mut s, news) = fixture();
    // The head of story 3 arrives by gossip.
    let (_, head) = &news.bundles[2];
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
    let out = drain(&mut s);
    assert_eq!(verdicts(&out), vec![(99, Verdict::Accept)]);
    assert_eq!(s.head_sequence(&news.root), 3);
    s.peer_up(7, at(1));
    let token = drain(&mut s)
        .into_iter()
        .find_map(|a| match a {
            Action::Sync {
                peer: 7,
                token,
                request: SyncRequest::Summary { .. },
            } => Some(token),
            _ => None,
        })
        .expect("a summary on connect");
    // The peer says it holds 1 to 10: only 1 to 3 are asked.
    let summary = SyncResponse::Summary {
        publishers: vec![PublisherState {
            publisher: news.root,
            head: None,
            revocations: vec![],
            ranges: Some(vec![(1, 10)]),
            more: None,
        }],
    };
    s.sync_response(token, Ok(summary), false, at(1));
    let asked: Vec<Vec<u64>> = drain(&mut s)
        .into_iter()
        .filter_map(|a| match a {
            Action::Sync {
                request: SyncRequest::Bundles { sequences, .. },
                ..
            } => Some(sequences),
            _ => None,
        })
        .collect();
    assert_eq!(asked, vec![vec![1, 2, 3]]);
}

#[test]
fn a_summary_about_a_publisher_not_asked_bans_its_sender() {
    let (mut s, _news) = fixture();
    s.peer_up(7, at(0));
    let token = drain(&mut s)
        .into_iter()
        .find_map(|a| match a {
            Action::Sync { token, .. } => Some(token),
            _ => None,
        })
        .expect("a summary on connect");
    let stranger: PublicKey = SecretKey::from_seed(&[9; 32]).public();
    let summary = SyncResponse::Summary {
        publishers: vec![PublisherState {
            publisher: stranger,
            head: None,
            revocations: vec![],
            ranges: Some(vec![(1, 1)]),
            more: None,
        }],
    };
    s.sync_response(token, Ok(summary), false, at(0));
    let out = drain(&mut s);
    assert!(
        out.iter().any(|a| matches!(
            a,
            Action::Ban { peer: 7, refusal } if refusal.kind == Kind::Unasked
        )),
        "{out:?}"
    );
    // A banned peer that comes back is turned away.
    s.peer_down(&7, at(1));
    assert!(!s.peer_up(7, at(10)));
}

#[test]
fn a_peer_asking_without_pause_gets_its_serving_share_and_another_is_still_served() {
    use crate::sync::share::{Busy, MAX_SERVE_JOBS_PER_PEER};
    let (mut s, news) = fixture();
    let rate = 256 * 1024;
    s = State::new(
        Config {
            serve_rate: Some(rate),
            role: crate::sync::Role::Share,
            large_budget: u64::MAX,
            ..s.config.clone()
        },
        s.policy().clone(),
        Time::ZERO,
    );
    s.peer_up(1, at(0));
    s.peer_up(2, at(0));
    let chunk = crate::sync::messages::CHUNK;
    let (mut hostile, mut honest) = (0u64, 0u64);
    // For 20 virtual seconds, one peer asks every 10 ms and keeps its
    // reads waiting as long as it may; the other asks once a second.
    let mut waiting = 0usize;
    for ms in (0..20_000u64).step_by(10) {
        let now = Time::after(Duration::from_millis(ms));
        match s.begin_serving(1, now) {
            Ok(()) => waiting += 1,
            Err(Busy::Rate | Busy::PeerJobs) => {}
            Err(other) => panic!("unexpected refusal {other:?}"),
        }
        assert!(waiting <= MAX_SERVE_JOBS_PER_PEER);
        // The store answers one read every 10 ms.
        if waiting > 0 {
            s.end_serving(1, chunk, now);
            hostile += chunk;
            waiting -= 1;
        }
        if ms % 1000 == 0 {
            assert_eq!(s.begin_serving(2, now), Ok(()), "the quiet peer at {ms} ms");
            s.end_serving(2, 64 * 1024, now);
            honest += 64 * 1024;
        }
    }
    // A bucket one second deep, in debt by one answer at most.
    assert!(hostile <= rate * 21 + chunk, "{hostile} bytes in 20 s");
    assert!(
        hostile >= rate * 15,
        "{hostile} bytes in 20 s: its share is served"
    );
    assert_eq!(honest, 20 * 64 * 1024);
    let _ = news;
}

/// Gossip of `data` on the newsroom's topic from `from`, as message `id`.
fn gossip(s: &mut State<u32, u64>, news: &Newsroom, id: u64, from: u32, data: &[u8], now: Now) {
    let origin = Origin {
        message: id,
        source: from,
    };
    s.gossip(origin, &topic_name(&news.root), data, now);
}

#[test]
fn forgeries_are_rejected_before_their_signatures_and_three_ban_the_sender() {
    let (mut s, news) = fixture();
    s.peer_up(7, at(0));
    drain(&mut s);
    let mut rng = StdRng::seed_from_u64(9);
    let other = newsroom_of(40, 1, 100, &mut rng).expect("another newsroom");
    let (bundle, _) = &news.bundles[0];
    let manifest = bundle.manifest().bytes().to_vec();
    // Another publisher's certificate on this topic.
    let foreign = Announcement::Bundle {
        certificate: other.cert.clone(),
        manifest: other.bundles[0].0.manifest().bytes().to_vec(),
    }
    .encode();
    gossip(&mut s, &news, 1, 7, &foreign, at(1));
    // A manifest of this publisher with another publisher's certificate.
    let mismatched = Announcement::Bundle {
        certificate: other.cert.clone(),
        manifest: manifest.clone(),
    }
    .encode();
    gossip(&mut s, &news, 2, 7, &mismatched, at(1));
    let out = drain(&mut s);
    assert_eq!(
        verdicts(&out),
        vec![(1, Verdict::Reject), (2, Verdict::Reject)]
    );
    let kinds: Vec<Kind> = out
        .iter()
        .filter_map(|a| match a {
            Action::Refused { refusal, .. } => Some(refusal.kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec![Kind::WrongTopic, Kind::WrongTopic]);
    // A bad manifest signature: the third reject bans.
    let mut forged = manifest.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let forged = Announcement::Bundle {
        certificate: news.cert.clone(),
        manifest: forged,
    }
    .encode();
    gossip(&mut s, &news, 3, 7, &forged, at(2));
    let out = drain(&mut s);
    assert_eq!(verdicts(&out), vec![(3, Verdict::Reject)]);
    assert!(
        out.iter().any(|a| matches!(
            a,
            Action::Ban { peer: 7, refusal } if refusal.kind == Kind::BadSignature
        )),
        "{out:?}"
    );
    assert!(s.is_banned(&7, at(3).at));
    // Whatever it still has in flight is refused unread.
    announce(&mut s, &news, 0, 7, at(3));
    assert_eq!(verdicts(&drain(&mut s)), vec![(0, Verdict::Reject)]);
    // An honest peer's true announcement is fetched, and forwarded after
    // the hold.
    announce(&mut s, &news, 0, 8, at(3));
    let out = drain(&mut s);
    assert!(verdicts(&out).is_empty(), "{out:?}");
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::Fetch { peer: 8, .. }))
    );
    s.tick(at(4));
    assert_eq!(verdicts(&drain(&mut s)), vec![(0, Verdict::Accept)]);
}
