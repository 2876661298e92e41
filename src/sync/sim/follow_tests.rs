//! A quiet reader's core following a mirror's log, driven by hand on
//! virtual time: what it asks, what it keeps, and the pages it refuses.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::core_tests::{at, drain};
use super::world::{Newsroom, newsroom, newsroom_of};
use crate::proto::TrustPolicy;
use crate::sync::fetch::FetchLimits;
use crate::sync::messages::{LogEntry, LogRequest, LogResponse, SyncBundle, SyncResponse};
use crate::sync::share::Busy;
use crate::sync::{Action, Config, Cursor, Role, State, Time, Token};

const MIRROR: u32 = 9;
const LOG: [u8; 16] = [3; 16];

fn quiet(large_budget: u64) -> (State<u32, u64>, Newsroom, Newsroom) {
    let mut rng = StdRng::seed_from_u64(7);
    let ours = newsroom(6, 1000, &mut rng).expect("the newsroom signs");
    let theirs = newsroom_of(40, 6, 1000, &mut rng).expect("the newsroom signs");
    let mut policy = TrustPolicy::new();
    policy.trust(ours.root, "ours").expect("a valid name");
    let config = Config {
        fetch: FetchLimits::shared(8, 4, Duration::from_secs(30), Duration::from_secs(10)),
        sync_interval: Duration::from_secs(300),
        upload_rate: None,
        download_rate: None,
        serve_rate: None,
        role: Role::Quiet,
        large_budget,
    };
    (State::new(config, policy, Time::ZERO), ours, theirs)
}

/// A quiet reader trusting one newsroom (seed 1), and that newsroom.
pub(super) fn quiet_of(large_budget: u64) -> (State<u32, u64>, Newsroom) {
    let (s, ours, _) = quiet(large_budget);
    (s, ours)
}

/// The token of the log request among `actions`.
pub(super) fn asked(actions: &[Action<u32, u64>]) -> Option<Token> {
    log_request(actions).map(|(t, _)| t)
}

fn log_request(actions: &[Action<u32, u64>]) -> Option<(Token, LogRequest)> {
    actions.iter().find_map(|a| match a {
        Action::Log { token, request, .. } => Some((*token, *request)),
        _ => None,
    })
}

/// A page with every bundle of both newsrooms, small ones whole.
fn page(ours: &Newsroom, theirs: &Newsroom, next: u64, end: u64) -> LogResponse {
    let mut entries = Vec::new();
    for news in [ours, theirs] {
        for (b, head) in &news.bundles {
            let size: u64 = b.manifest().entries.iter().map(|e| e.size).sum();
            entries.push(LogEntry::Bundle(SyncBundle {
                manifest: b.manifest().bytes().to_vec(),
                blobs: (size <= crate::sync::messages::LOG_INLINE)
                    .then(|| b.blobs().map(|(_, d)| d.to_vec()).collect()),
            }));
            entries.push(LogEntry::Head(head.clone()));
        }
    }
    LogResponse::Page {
        log: LOG,
        certificates: vec![ours.cert.clone(), theirs.cert.clone()],
        entries,
        next,
        end,
    }
}

#[test]
fn a_quiet_reader_asks_for_the_log_names_nothing_and_keeps_only_what_it_trusts() {
    let (mut s, ours, theirs) = quiet(u64::MAX);
    assert!(s.peer_up(MIRROR, at(0)));
    let out = drain(&mut s);
    assert!(!out.iter().any(|a| matches!(a, Action::Sync { .. })));
    let (token, request) = log_request(&out).expect("it asks for the log");
    assert_eq!(
        request,
        LogRequest {
            from: 0,
            wait: false
        }
    );

    assert!(s.log_response(token, Ok(page(&ours, &theirs, 24, 24)), false, at(1)));
    let out = drain(&mut s);
    let stored: Vec<_> = out
        .iter()
        .filter_map(|a| match a {
            Action::StoreBatch { bundles } => Some(bundles),
            _ => None,
        })
        .flatten()
        .collect();
    // Five of ours came whole; the sixth, with a 300 KiB image, is fetched
    // by hash. None of theirs is kept or fetched.
    assert_eq!(stored.len(), 5);
    assert!(stored.iter().all(|b| b.manifest().publisher == ours.root));
    let fetched: Vec<_> = out
        .iter()
        .filter(|a| matches!(a, Action::Fetch { .. }))
        .collect();
    assert!(!fetched.is_empty());
    assert_eq!(s.fetching(), 1);
    assert_eq!(s.head_sequence(&ours.root), 6);
    assert_eq!(s.head_sequence(&theirs.root), 0);
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Cursor {
            peer: MIRROR,
            cursor: Cursor {
                log: LOG,
                next: 24,
                ..
            }
        }
    )));
    // At the end of the log it waits there.
    let (_, request) = log_request(&out).expect("it asks on");
    assert_eq!(
        request,
        LogRequest {
            from: 24,
            wait: true
        }
    );

    // It serves no one.
    assert_eq!(s.begin_serving(5, at(2).at), Err(Busy::Quiet));
    assert_eq!(s.serve_summary(5, &[], at(2)), SyncResponse::Refused);
}

#[test]
fn with_no_budget_large_stories_are_never_asked_for() {
    let (mut s, ours, theirs) = quiet(0);
    s.peer_up(MIRROR, at(0));
    let (token, _) = log_request(&drain(&mut s)).expect("it asks");
    s.log_response(token, Ok(page(&ours, &theirs, 24, 24)), false, at(1));
    let out = drain(&mut s);
    assert!(!out.iter().any(|a| matches!(a, Action::Fetch { .. })));
    assert_eq!(s.fetching(), 0);
}

#[test]
fn coming_back_it_asks_from_a_rounded_position_and_a_new_log_from_its_start() {
    let (mut s, ours, theirs) = quiet(u64::MAX);
    let trust = s.trust_digest();
    s.set_cursor(
        MIRROR,
        Cursor {
            log: LOG,
            next: 130,
            trust,
        },
        Time::ZERO,
    );
    s.peer_up(MIRROR, at(0));
    let (token, request) = log_request(&drain(&mut s)).expect("it asks");
    assert_eq!(
        request,
        LogRequest {
            from: 128,
            wait: false
        }
    );
    // The mirror's store was made anew: its log has another name.
    let fresh = LogResponse::Page {
        log: [4; 16],
        certificates: vec![],
        entries: vec![],
        next: 0,
        end: 24,
    };
    s.log_response(token, Ok(fresh), false, at(1));
    let (token, request) = log_request(&drain(&mut s)).expect("it asks again");
    assert_eq!(
        request,
        LogRequest {
            from: 0,
            wait: false
        }
    );
    let LogResponse::Page { entries, .. } = page(&ours, &theirs, 24, 24) else {
        unreachable!()
    };
    let again = LogResponse::Page {
        log: [4; 16],
        certificates: vec![ours.cert.clone()],
        entries,
        next: 24,
        end: 24,
    };
    s.log_response(token, Ok(again), false, at(2));
    assert!(
        drain(&mut s)
            .iter()
            .any(|a| matches!(a, Action::StoreBatch { .. }))
    );
}

#[test]
fn a_mirror_whose_page_stands_still_or_lies_is_banned() {
    // Asked from 0 of a log of 10, it answers nothing and stays at 0.
    let (mut s, ours, theirs) = quiet(u64::MAX);
    s.peer_up(MIRROR, at(0));
    let (token, _) = log_request(&drain(&mut s)).expect("it asks");
    let still = LogResponse::Page {
        log: LOG,
        certificates: vec![],
        entries: vec![],
        next: 0,
        end: 10,
    };
    s.log_response(token, Ok(still), false, at(1));
    assert!(
        drain(&mut s)
            .iter()
            .any(|a| matches!(a, Action::Ban { peer: MIRROR, .. }))
    );
    assert!(s.is_banned(&MIRROR, at(1).at));

    // A trusted story whose body is not the one its manifest names.
    let (mut s, _, _) = quiet(u64::MAX);
    s.peer_up(MIRROR, at(0));
    let (token, _) = log_request(&drain(&mut s)).expect("it asks");
    let (b, _) = &ours.bundles[0];
    let forged = LogResponse::Page {
        log: LOG,
        certificates: vec![ours.cert.clone()],
        entries: vec![LogEntry::Bundle(SyncBundle {
            manifest: b.manifest().bytes().to_vec(),
            blobs: Some(vec![vec![0; 1000]]),
        })],
        next: 1,
        end: 1,
    };
    s.log_response(token, Ok(forged), false, at(1));
    let out = drain(&mut s);
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::Ban { peer: MIRROR, .. }))
    );
    assert!(!out.iter().any(|a| matches!(a, Action::StoreBatch { .. })));

    // Another publisher's forgeries cost nothing and ban no one: the
    // reader cannot judge them, and drops them.
    let (mut s, _, _) = quiet(u64::MAX);
    s.peer_up(MIRROR, at(0));
    let (token, _) = log_request(&drain(&mut s)).expect("it asks");
    let (b, _) = &theirs.bundles[0];
    let theirs_forged = LogResponse::Page {
        log: LOG,
        certificates: vec![theirs.cert.clone()],
        entries: vec![LogEntry::Bundle(SyncBundle {
            manifest: b.manifest().bytes().to_vec(),
            blobs: Some(vec![vec![0; 1000]]),
        })],
        next: 1,
        end: 1,
    };
    s.log_response(token, Ok(theirs_forged), false, at(1));
    assert!(
        !drain(&mut s)
            .iter()
            .any(|a| matches!(a, Action::Ban { .. }))
    );
}

#[test]
fn a_wait_answered_at_once_with_nothing_is_asked_again_a_second_later_and_one_with_news_at_once() {
    let (mut s, ours, theirs) = quiet(u64::MAX);
    s.peer_up(MIRROR, at(0));
    let (token, _) = log_request(&drain(&mut s)).expect("it asks");
    s.log_response(token, Ok(page(&ours, &theirs, 24, 24)), false, at(1));
    let (token, request) = log_request(&drain(&mut s)).expect("it waits");
    assert!(request.wait);
    let nothing = |next| LogResponse::Page {
        log: LOG,
        certificates: vec![],
        entries: vec![],
        next,
        end: next,
    };
    s.log_response(token, Ok(nothing(24)), false, at(1));
    assert!(log_request(&drain(&mut s)).is_none());
    s.tick(at(1));
    assert!(log_request(&drain(&mut s)).is_none());
    s.tick(at(3));
    let (token, request) = log_request(&drain(&mut s)).expect("asked again");
    assert_eq!(
        request,
        LogRequest {
            from: 24,
            wait: true
        }
    );
    // A wait answered with a new entry is followed by the next wait at once.
    let (b, _) = &ours.bundles[0];
    let news = LogResponse::Page {
        log: LOG,
        certificates: vec![],
        entries: vec![
            LogEntry::Head(ours.bundles[5].1.clone()),
            LogEntry::Bundle(SyncBundle {
                manifest: b.manifest().bytes().to_vec(),
                blobs: None,
            }),
        ],
        next: 26,
        end: 26,
    };
    s.log_response(token, Ok(news), false, at(4));
    let (_, request) = log_request(&drain(&mut s)).expect("asked at once");
    assert_eq!(
        request,
        LogRequest {
            from: 26,
            wait: true
        }
    );
}

#[test]
fn a_publisher_trusted_later_has_its_past_stories_read_again_from_every_log() {
    let (mut s, ours, theirs) = quiet(u64::MAX);
    s.peer_up(MIRROR, at(0));
    let (token, _) = log_request(&drain(&mut s)).expect("it asks");
    s.log_response(token, Ok(page(&ours, &theirs, 24, 24)), false, at(1));
    let out = drain(&mut s);
    let (waiting, request) = log_request(&out).expect("it waits at the end");
    assert!(request.wait);

    // Trusted now: the log is asked again from its start at once, and the
    // answer to the wait that was out is not taken.
    s.trust(theirs.root, "theirs".into(), at(2))
        .expect("trusted");
    let out = drain(&mut s);
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Cursor {
            cursor: Cursor { next: 0, .. },
            ..
        }
    )));
    let (token, request) = log_request(&out).expect("asked again");
    assert_eq!(
        request,
        LogRequest {
            from: 0,
            wait: false
        }
    );
    let nothing = LogResponse::Page {
        log: LOG,
        certificates: vec![],
        entries: vec![],
        next: 24,
        end: 24,
    };
    assert!(!s.log_response(waiting, Ok(nothing), false, at(2)));
    assert!(drain(&mut s).is_empty());
    s.log_response(token, Ok(page(&ours, &theirs, 24, 24)), false, at(3));
    let stored: usize = drain(&mut s)
        .iter()
        .filter_map(|a| match a {
            Action::StoreBatch { bundles } => Some(
                bundles
                    .iter()
                    .filter(|b| b.manifest().publisher == theirs.root)
                    .count(),
            ),
            _ => None,
        })
        .sum();
    assert_eq!(stored, 5, "theirs, the small ones");

    // A position kept under another trust list is read from the start.
    let (mut s, _, _) = quiet(u64::MAX);
    s.set_cursor(
        MIRROR,
        Cursor {
            log: LOG,
            next: 500,
            trust: [9; 32],
        },
        Time::ZERO,
    );
    s.peer_up(MIRROR, at(0));
    let (_, request) = log_request(&drain(&mut s)).expect("it asks");
    assert_eq!(
        request,
        LogRequest {
            from: 0,
            wait: false
        }
    );
}
