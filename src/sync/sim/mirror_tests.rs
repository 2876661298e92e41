//! Mirror lists in the core: by gossip on the publisher's topic, and in a
//! mirror's log, verified, recorded once, and refused when false.

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::core_tests::{at, drain, fixture_with, verdicts};
use super::world::{Newsroom, T0, newsroom_of};
use crate::proto::mirrors::MirrorList;
use crate::proto::{CertId, FORMAT_VERSION, SecretKey, Timestamp};
use crate::sync::messages::{Announcement, LogEntry, LogResponse, topic_name};
use crate::sync::{Action, Origin, Record, State, Verdict};

const PEER: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";

/// `news`'s mirror list issued at `issued_at`, valid for 30 days, signed by
/// its signing key (seed 2 for the fixture's newsroom of seed 1).
fn list(news: &Newsroom, seed: u8, issued_at: Timestamp, port: u16) -> Vec<u8> {
    list_for(news, seed, issued_at, 30 * 86_400, port)
}

fn list_for(news: &Newsroom, seed: u8, issued_at: Timestamp, valid: u64, port: u16) -> Vec<u8> {
    MirrorList {
        format: FORMAT_VERSION,
        publisher: news.root,
        certificate: CertId::of(&news.cert),
        issued_at,
        expires_at: issued_at.plus(valid),
        libp2p: vec![format!("/ip4/192.0.2.1/tcp/{port}/p2p/{PEER}")],
        https: vec![],
    }
    .sign(&SecretKey::from_seed(&[seed + 1; 32]))
    .expect("a test list signs")
}

fn gossip(s: &mut State<u32, u64>, news: &Newsroom, id: u64, bytes: &[u8], secs: u64) {
    let data = Announcement::MirrorList {
        certificate: news.cert.clone(),
        list: bytes.to_vec(),
    }
    .encode();
    s.gossip(
        Origin {
            message: id,
            source: 7,
        },
        &topic_name(&news.root),
        &data,
        at(secs),
    );
}

fn recorded(out: &[Action<u32, u64>]) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|a| match a {
            Action::Record(Record::MirrorList(l)) => Some(l.bytes().to_vec()),
            _ => None,
        })
        .collect()
}

fn fixture() -> (State<u32, u64>, Newsroom) {
    fixture_with(crate::sync::fetch::FetchLimits::shared(
        8,
        4,
        std::time::Duration::from_secs(30),
        std::time::Duration::from_secs(10),
    ))
}

#[test]
fn a_newer_list_by_gossip_is_recorded_and_passed_on_once() {
    let (mut s, news) = fixture();
    let first = list(&news, 1, T0.plus(3600), 1);
    gossip(&mut s, &news, 1, &first, 0);
    let out = drain(&mut s);
    assert_eq!(verdicts(&out), vec![(1, Verdict::Accept)]);
    assert_eq!(recorded(&out), vec![first.clone()]);
    assert_eq!(
        s.mirror_list(&news.root).map(|l| l.bytes()),
        Some(&first[..])
    );
    // The same again, and an older one: true, of no use, not passed on.
    gossip(&mut s, &news, 2, &first, 1);
    let older = list(&news, 1, T0.plus(60), 2);
    gossip(&mut s, &news, 3, &older, 1);
    let out = drain(&mut s);
    assert_eq!(
        verdicts(&out),
        vec![(2, Verdict::Ignore), (3, Verdict::Ignore)]
    );
    assert!(recorded(&out).is_empty());
    // A newer one replaces it.
    let second = list(&news, 1, T0.plus(7200), 3);
    gossip(&mut s, &news, 4, &second, 2);
    let out = drain(&mut s);
    assert_eq!(verdicts(&out), vec![(4, Verdict::Accept)]);
    assert_eq!(recorded(&out), vec![second]);
}

#[test]
fn an_expired_list_is_ignored_and_a_forged_one_rejected() {
    let (mut s, news) = fixture();
    // Valid for a minute, an hour after T0: past by the clock of a day on.
    let expired = list_for(&news, 1, T0.plus(3600), 60, 1);
    gossip(&mut s, &news, 1, &expired, 0);
    let out = drain(&mut s);
    assert_eq!(verdicts(&out), vec![(1, Verdict::Ignore)]);
    assert!(recorded(&out).is_empty());
    let mut forged = list(&news, 1, T0.plus(3600), 1);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    gossip(&mut s, &news, 2, &forged, 1);
    let out = drain(&mut s);
    assert_eq!(verdicts(&out), vec![(2, Verdict::Reject)]);
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::Refused { peer: 7, .. }))
    );
    assert!(s.mirror_list(&news.root).is_none());
}

#[test]
fn another_publishers_list_on_the_topic_is_rejected() {
    let (mut s, news) = fixture();
    let mut rng = StdRng::seed_from_u64(9);
    let other = newsroom_of(40, 1, 10, &mut rng).expect("the newsroom signs");
    // Signed by the other newsroom, carried with our certificate on our
    // topic: not the certificate it names.
    let theirs = list(&other, 40, T0.plus(3600), 1);
    gossip(&mut s, &news, 1, &theirs, 0);
    assert_eq!(verdicts(&drain(&mut s)), vec![(1, Verdict::Reject)]);
}

#[test]
fn a_quiet_reader_takes_the_list_from_a_log_page_and_bans_a_forger() {
    let (mut s, news) = super::follow_tests::quiet_of(u64::MAX);
    s.peer_up(9, at(0));
    let token = super::follow_tests::asked(&drain(&mut s)).expect("it asks");
    let good = list(&news, 1, T0.plus(3600), 1);
    let page = |entries| LogResponse::Page {
        log: [3; 16],
        certificates: vec![news.cert.clone()],
        entries,
        next: 1,
        end: 1,
    };
    assert!(s.log_response(
        token,
        Ok(page(vec![LogEntry::MirrorList(good.clone())])),
        false,
        at(1)
    ));
    let out = drain(&mut s);
    assert_eq!(recorded(&out), vec![good]);
    let token = super::follow_tests::asked(&out).expect("it asks on");
    let mut forged = list(&news, 1, T0.plus(7200), 2);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    s.log_response(
        token,
        Ok(page(vec![LogEntry::MirrorList(forged)])),
        false,
        at(2),
    );
    let out = drain(&mut s);
    assert!(recorded(&out).is_empty());
    assert!(out.iter().any(|a| matches!(a, Action::Ban { peer: 9, .. })));
}
