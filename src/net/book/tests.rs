use std::time::Duration;

use libp2p::{Multiaddr, PeerId};

use super::*;
use crate::sync::Time;

fn peer(n: u8) -> PeerId {
    let key = libp2p::identity::Keypair::ed25519_from_bytes([n; 32]).unwrap();
    key.public().to_peer_id()
}

fn tcp(n: u16) -> Multiaddr {
    format!("/ip4/10.0.0.1/tcp/{n}").parse().unwrap()
}

fn book() -> Book {
    Book::new(BookConfig::default(), 7)
}

fn at(secs: f64) -> Time {
    Time::after(Duration::from_secs_f64(secs))
}

/// The longest a failed peer waits: the cap and all its jitter.
fn longest_wait() -> Duration {
    let c = BookConfig::default();
    c.backoff_max + c.backoff_max * JITTER_PER_1024 as u32 / 1024
}

#[test]
fn a_blocked_mirror_is_reached_within_the_cap_once_unblocked() {
    let mut b = book();
    let p = peer(1);
    b.learn_peer(p, tcp(1), Source::Config).unwrap();
    let unblock = 120.0;
    let mut dials = Vec::new();
    let mut reached = None;
    // The driver ticks once a second; while blocked every dial fails at
    // once, after that the first dial succeeds.
    for tick in 0..300 {
        let now = at(tick as f64);
        for d in b.plan(now, b.connected_count()) {
            assert_eq!(d.peer, p);
            dials.push(now);
            if (tick as f64) < unblock {
                b.dial_failed(&d.peer, now);
            } else {
                b.connected(d.peer, Some(&d.addrs[0]), now);
                reached = Some(now);
            }
        }
        if reached.is_some() {
            break;
        }
    }
    let reached = reached.expect("reached once unblocked");
    let waited = reached.since(at(unblock));
    assert!(
        waited <= longest_wait() + Duration::from_secs(1),
        "reached {waited:?} after the block was lifted"
    );
    // It backed off: far fewer dials than ticks while blocked.
    assert!(dials.len() < 20, "{} dials in two minutes", dials.len());
    assert_eq!(b.failures(&p), 0);
    assert_eq!(b.transport(&p), Some(Transport::Tcp));
}

#[test]
fn back_off_doubles_up_to_the_cap_with_jitter() {
    let mut b = book();
    let p = peer(1);
    b.learn_peer(p, tcp(1), Source::Config).unwrap();
    let mut last: Option<Time> = None;
    let mut gaps = Vec::new();
    let mut t = Time::ZERO;
    for _ in 0..40_000 {
        for d in b.plan(t, 0) {
            if let Some(l) = last {
                gaps.push(t.since(l));
            }
            last = Some(t);
            b.dial_failed(&d.peer, t);
        }
        t = t + Duration::from_millis(10);
    }
    assert!(gaps.len() > 12, "{gaps:?}");
    let cap = BookConfig::default().backoff_max;
    // Roughly doubling first: 1 s, 2 s, 4 s, 8 s, each plus jitter.
    for (i, g) in gaps.iter().take(4).enumerate() {
        let base = Duration::from_secs(1 << i);
        assert!(
            *g >= base && *g <= base * 5 / 4 + Duration::from_millis(20),
            "{gaps:?}"
        );
    }
    // Then at the cap, never past it and its jitter.
    for g in &gaps[5..] {
        assert!(
            *g >= cap && *g <= longest_wait() + Duration::from_millis(20),
            "{gaps:?}"
        );
    }
    // The jitter differs from one back-off to the next.
    let tail: std::collections::HashSet<_> = gaps[5..].iter().collect();
    assert!(tail.len() > 3, "{gaps:?}");
}

#[test]
fn the_same_seed_gives_the_same_dials() {
    let run = |seed| {
        let mut b = Book::new(BookConfig::default(), seed);
        b.learn_peer(peer(1), tcp(1), Source::Config).unwrap();
        let mut times = Vec::new();
        for ms in (0..120_000).step_by(10) {
            let now = Time::from_millis(ms);
            for d in b.plan(now, 0) {
                times.push(ms);
                b.dial_failed(&d.peer, now);
            }
        }
        times
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn several_are_dialed_at_once_and_no_more_than_the_bound() {
    let mut b = book();
    for n in 1..=6 {
        b.learn_peer(peer(n), tcp(n.into()), Source::Config)
            .unwrap();
    }
    let first = b.plan(Time::ZERO, 0);
    assert_eq!(first.len(), 3);
    // While they are out, nothing more.
    assert!(b.plan(at(1.0), 0).is_empty());
    // One fails: one more goes out in its place.
    b.dial_failed(&first[0].peer, at(1.0));
    let next = b.plan(at(1.5), 0);
    assert_eq!(next.len(), 1);
    assert!(first.iter().all(|d| d.peer != next[0].peer));
    // Two connect: the target is met, no more dials.
    b.connected(first[1].peer, Some(&first[1].addrs[0]), at(2.0));
    b.connected(first[2].peer, Some(&first[2].addrs[0]), at(2.0));
    b.dial_failed(&next[0].peer, at(2.0));
    assert!(b.plan(at(100.0), b.connected_count()).is_empty());
}

#[test]
fn best_first_worked_then_config_then_signed_then_learned_fewer_failures_first() {
    let mut b = book();
    let (worked, config, listed, learned, failing) = (peer(1), peer(2), peer(3), peer(4), peer(5));
    b.learn_peer(failing, tcp(5), Source::Learned).unwrap();
    b.learn_peer(learned, tcp(4), Source::Learned).unwrap();
    b.learn_peer(listed, tcp(3), Source::MirrorList).unwrap();
    b.learn_peer(config, tcp(2), Source::Config).unwrap();
    // A learned peer that worked, then dropped.
    b.connected(worked, Some(&tcp(1)), Time::ZERO);
    b.disconnected(&worked, Time::ZERO);
    // One failure for `failing`, long ago.
    let d = b.plan(Time::ZERO, 10);
    assert!(d.is_empty(), "the target is met");
    b.dialing(&failing, Time::ZERO);
    b.dial_failed(&failing, Time::ZERO);
    let cfg = BookConfig {
        parallel: 5,
        target: 5,
        ..BookConfig::default()
    };
    b.config = cfg;
    let order: Vec<PeerId> = b.plan(at(60.0), 0).into_iter().map(|d| d.peer).collect();
    assert_eq!(order, vec![worked, config, listed, learned, failing]);
}

#[test]
fn a_mirror_that_drops_is_redialed_after_a_short_delay() {
    let mut b = book();
    let p = peer(1);
    b.learn_peer(p, tcp(1), Source::Config).unwrap();
    let d = b.plan(Time::ZERO, 0);
    b.connected(p, Some(&d[0].addrs[0]), Time::ZERO);
    assert!(b.plan(at(5.0), b.connected_count()).is_empty());
    b.disconnected(&p, at(10.0));
    assert!(b.plan(at(10.5), b.connected_count()).is_empty());
    let again = b.plan(at(11.0), b.connected_count());
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].peer, p);
}

#[test]
fn a_dial_with_no_outcome_counts_as_failed() {
    let mut b = book();
    let p = peer(1);
    b.learn_peer(p, tcp(1), Source::Config).unwrap();
    assert_eq!(b.plan(Time::ZERO, 0).len(), 1);
    let timeout = BookConfig::default().dial_timeout;
    assert!(b.plan(Time::ZERO + timeout / 2, 0).is_empty());
    assert!(b.plan(Time::ZERO + timeout, 0).is_empty());
    assert_eq!(b.failures(&p), 1);
    assert_eq!(b.plan(Time::ZERO + timeout * 2, 0).len(), 1);
}

#[test]
fn addresses_that_worked_come_first_in_a_dial() {
    let mut b = book();
    let p = peer(1);
    for n in 1..=3 {
        b.learn_peer(p, tcp(n), Source::Learned).unwrap();
    }
    b.connected(p, Some(&tcp(3)), Time::ZERO);
    b.disconnected(&p, Time::ZERO);
    let d = b.plan(at(5.0), 0);
    assert_eq!(d[0].addrs[0], tcp(3));
    assert_eq!(d[0].addrs.len(), 3);
}

#[test]
fn a_flood_of_learned_addresses_stays_bounded_and_keeps_the_configured() {
    let mut b = book();
    let mine = peer(1);
    b.learn_peer(mine, tcp(1), Source::Config).unwrap();
    let worked = peer(2);
    b.connected(worked, Some(&tcp(2)), Time::ZERO);
    for i in 0..5_000u32 {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let p = key.public().to_peer_id();
        for port in 0..20u16 {
            let _ = b.learn_peer(p, tcp(port), Source::Learned);
        }
        // And a flood of addresses for the known peers.
        let _ = b.learn_peer(mine, tcp(1000 + (i % 60_000) as u16), Source::Learned);
        let _ = b.learn_peer(worked, tcp(1000 + (i % 60_000) as u16), Source::Learned);
    }
    assert!(b.len() <= MAX_PEERS);
    assert!(b.knows(&mine) && b.knows(&worked));
    for p in b.peers.keys() {
        assert!(b.addresses(p).len() <= MAX_ADDRS);
    }
    // The configured and the working address stayed.
    assert!(b.addresses(&mine).contains(&tcp(1)));
    assert!(b.addresses(&worked).contains(&tcp(2)));
    // A peer from a signed list still finds room.
    let listed = peer(3);
    assert!(b.learn_peer(listed, tcp(3), Source::MirrorList).unwrap());
    assert!(b.knows(&listed) && b.len() <= MAX_PEERS);
    // Too long an address is refused.
    let long: Multiaddr = format!("/dns4/{}/tcp/1", "a".repeat(300)).parse().unwrap();
    assert!(matches!(
        b.learn_peer(peer(4), long, Source::Learned),
        Err(BookError::TooLong(_))
    ));
}

#[test]
fn learning_needs_the_peer_in_the_address() {
    let mut b = book();
    assert!(matches!(
        b.learn(&tcp(1), Source::MirrorList),
        Err(BookError::NoPeer(_))
    ));
    let p = peer(1);
    let named = tcp(1).with(libp2p::multiaddr::Protocol::P2p(p));
    assert!(b.learn(&named, Source::MirrorList).unwrap());
    assert!(!b.learn(&named, Source::MirrorList).unwrap());
    assert_eq!(b.addresses(&p), vec![tcp(1)]);
    // Another peer's id on the address is refused.
    assert!(b.learn_peer(peer(2), named, Source::Learned).is_err());
}

#[test]
fn the_saved_book_comes_back_with_config_as_learned() {
    let mut b = book();
    let (a, c) = (peer(1), peer(2));
    b.learn_peer(a, tcp(1), Source::Config).unwrap();
    b.connected(a, Some(&tcp(1)), Time::ZERO);
    b.learn_peer(c, tcp(2), Source::MirrorList).unwrap();
    b.dialing(&c, Time::ZERO);
    b.dial_failed(&c, Time::ZERO);
    assert!(b.take_changed());
    assert!(!b.take_changed());
    let bytes = b.save();
    assert!(bytes.len() <= MAX_SAVED_BYTES);
    let mut back = book();
    assert_eq!(back.load(&bytes).unwrap(), 2);
    assert_eq!(back.addresses(&a), vec![tcp(1)]);
    assert_eq!(back.peers[&a].addrs[0].source, Source::Learned);
    assert!(back.peers[&a].addrs[0].worked);
    assert_eq!(back.transport(&a), Some(Transport::Tcp));
    assert_eq!(back.failures(&c), 1);
    // No back-off and no connection carried over: both dialed at start,
    // the one that worked first.
    let d = back.plan(Time::ZERO, 0);
    assert_eq!(d.iter().map(|d| d.peer).collect::<Vec<_>>(), vec![a, c]);
}

#[test]
fn a_damaged_or_oversized_saved_book_is_refused() {
    let mut b = book();
    b.learn_peer(peer(1), tcp(1), Source::Learned).unwrap();
    let bytes = b.save();
    let mut back = book();
    assert!(back.load(&bytes[..bytes.len() - 3]).is_err());
    assert!(back.load(&[0xff; 16]).is_err());
    assert!(back.load(&vec![0; MAX_SAVED_BYTES + 1]).is_err());
    let mut other = bytes.clone();
    other[0] = 9;
    assert!(back.load(&other).is_err());
    assert!(back.is_empty());
    // A saved peer id or address that does not parse is skipped alone.
    let saved = saved_with(vec![
        (vec![1, 2, 3], vec![tcp(1).to_vec()]),
        (peer(2).to_bytes(), vec![vec![0xff, 0xff], tcp(2).to_vec()]),
    ]);
    assert_eq!(back.load(&saved).unwrap(), 1);
    assert_eq!(back.addresses(&peer(2)), vec![tcp(2)]);
}

/// A saved book of raw peer ids and addresses, as a damaged store might hold.
fn saved_with(peers: Vec<(Vec<u8>, Vec<Vec<u8>>)>) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct P {
        peer: Vec<u8>,
        failures: u32,
        worked: bool,
        transport: Option<Transport>,
        addrs: Vec<(Vec<u8>, Source, bool)>,
    }
    let peers: Vec<P> = peers
        .into_iter()
        .map(|(peer, addrs)| P {
            peer,
            failures: 0,
            worked: false,
            transport: None,
            addrs: addrs
                .into_iter()
                .map(|a| (a, Source::Learned, false))
                .collect(),
        })
        .collect();
    postcard::to_stdvec(&(1u8, peers)).unwrap()
}

#[test]
fn transports_are_told_from_the_address() {
    let of = |s: &str| Transport::of(&s.parse().unwrap());
    assert_eq!(of("/ip4/1.2.3.4/tcp/1"), Transport::Tcp);
    assert_eq!(of("/ip4/1.2.3.4/tcp/1/ws"), Transport::Ws);
    assert_eq!(
        of("/dns4/a.example/tcp/443/tls/sni/a.example/ws"),
        Transport::Front
    );
    assert_eq!(of("/ip4/1.2.3.4/udp/1/quic-v1"), Transport::Quic);
    assert_eq!(
        of(
            "/ip4/1.2.3.4/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit"
        ),
        Transport::Relay
    );
    assert_eq!(of("/memory/5"), Transport::Other);
}

#[test]
fn a_full_book_fits_the_store_bound() {
    let mut b = book();
    let long = format!("/dns4/{}/tcp/65535/ws", "a".repeat(MAX_ADDR_BYTES - 16));
    let long: Multiaddr = long.parse().unwrap();
    assert!(long.as_ref().len() <= MAX_ADDR_BYTES);
    for _ in 0..MAX_PEERS {
        let p = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        for n in 0..MAX_ADDRS as u16 {
            let a: Multiaddr = long.clone().with(libp2p::multiaddr::Protocol::Udp(n));
            b.learn_peer(p, a, Source::Learned).unwrap();
        }
    }
    assert_eq!(b.len(), MAX_PEERS);
    assert!(b.save().len() <= MAX_SAVED_BYTES);
}
