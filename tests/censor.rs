//! The censor lab (tests/common/lab.rs): that it builds and cleans up,
//! that each censor rule blocks what it says and passes the rest, that a
//! capture reassembles what crossed, and a story crossing the lab from a
//! mirror outside to a reader inside, with no censor and against one.
//!
//! Every test needs root and the lab's tools; elsewhere it says so and
//! passes without running (`KOLOKOL_LAB=require` makes that a failure).

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::lab::probe::{self, Served};
use common::lab::*;
use common::process::newsroom_and_reader;
use common::tls::{Certs, certs};
use tempfile::TempDir;

/// The first bytes of every libp2p TCP connection, each way: the length
/// of the multistream-select header, then the header.
const MULTISTREAM: &[u8] = b"\x13/multistream/1.0.0\n";

/// How long a probe that the censor should stop is given.
const BLOCKED: Duration = Duration::from_secs(2);

/// How long a probe that should pass is given.
const PASSES: Duration = Duration::from_secs(10);

fn v4(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

/// A TCP listener bound to `ip:port` in `side`.
fn listen(lab: &Lab, side: Side, ip: Ipv4Addr, port: u16) -> TcpListener {
    lab.in_ns(side, || {
        TcpListener::bind(v4(ip, port)).expect("binding in the lab")
    })
}

/// An echo server at `ip:port` in OUTSIDE.
fn echo_outside(lab: &Lab, ip: Ipv4Addr, port: u16) -> Served {
    probe::echo(listen(lab, Side::Outside, ip, port))
}

/// What INSIDE gets back after sending `bytes` to `to` within `wait`.
fn exchange(lab: &Lab, to: SocketAddr, bytes: &[u8], wait: Duration) -> std::io::Result<Vec<u8>> {
    lab.in_ns(Side::Inside, || probe::tcp_exchange(to, bytes, wait))
}

/// Whether INSIDE gets `bytes` echoed back in full from `to`.
fn echoed(lab: &Lab, to: SocketAddr, bytes: &[u8], wait: Duration) -> bool {
    exchange(lab, to, bytes, wait).is_ok_and(|got| got == bytes)
}

/// Whether INSIDE can open a TCP connection to `to`.
fn connects(lab: &Lab, to: SocketAddr, wait: Duration) -> bool {
    lab.in_ns(Side::Inside, || probe::connects(to, wait))
}

/// How many of `count` datagrams INSIDE sends to the UDP echo at `to`
/// come back.
fn udp_echoes(lab: &Lab, to: SocketAddr, count: usize, wait: Duration) -> usize {
    lab.in_ns(Side::Inside, || {
        probe::udp_echoes(to, b"datagram", count, wait)
    })
}

fn udp_echo_outside(lab: &Lab, ip: Ipv4Addr, port: u16) -> Served {
    udp_echo_in(lab, Side::Outside, ip, port)
}

fn udp_echo_in(lab: &Lab, side: Side, ip: Ipv4Addr, port: u16) -> Served {
    probe::udp_echo(lab.in_ns(side, || {
        UdpSocket::bind(v4(ip, port)).expect("binding UDP in the lab")
    }))
}

// ---- the lab itself ----

#[test]
fn the_lab_builds_and_cleans_up() {
    // A namespace of the lab scheme whose process cannot exist (above
    // pid_max): the next lab sweeps it.
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(4_194_304);
    let stale = format!("kk{}n0r", pid_max + 1);
    let made_stale = rustix::process::geteuid().is_root()
        && std::process::Command::new("ip")
            .args(["netns", "add", &stale])
            .status()
            .is_ok_and(|s| s.success());

    let Some(lab) = Lab::new("builds") else {
        return;
    };
    if made_stale {
        assert!(
            namespaces_with_prefix(&stale).is_empty(),
            "the stale lab namespace {stale} was not swept"
        );
    }
    let prefix = lab.prefix().to_owned();
    let mut names = namespaces_with_prefix(&prefix);
    names.sort();
    assert_eq!(
        names,
        [
            lab.ns(Side::Inside),
            lab.ns(Side::Outside),
            lab.ns(Side::Router)
        ]
    );

    // INSIDE reaches both of OUTSIDE's addresses through the router.
    let _mirror = echo_outside(&lab, OUTSIDE_IP, 7000);
    let _proxy = echo_outside(&lab, PROXY_IP, 7000);
    assert!(echoed(
        &lab,
        v4(OUTSIDE_IP, 7000),
        b"hello from inside",
        PASSES
    ));
    assert!(echoed(&lab, v4(PROXY_IP, 7000), b"hello again", PASSES));
    // And the other way: OUTSIDE reaches the reader's address.
    let _reader = probe::echo(listen(&lab, Side::Inside, INSIDE_IP, 7001));
    let back = lab.in_ns(Side::Outside, || {
        probe::tcp_exchange(v4(INSIDE_IP, 7001), b"hi in", PASSES)
    });
    assert_eq!(back.unwrap(), b"hi in");
    // The router itself answers on both of its addresses.
    let _router = probe::echo(listen(&lab, Side::Router, ROUTER_INSIDE_IP, 7002));
    assert!(echoed(&lab, v4(ROUTER_INSIDE_IP, 7002), b"router", PASSES));

    // A name of the lab's own resolves in INSIDE only.
    lab.hosts(Side::Inside, &[("mirror.lab", OUTSIDE_IP)]);
    let inside = lab
        .command(Side::Inside, "getent")
        .args(["hosts", "mirror.lab"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&inside.stdout).contains("198.18.1.2"),
        "{inside:?}"
    );
    let outside = lab
        .command(Side::Outside, "getent")
        .args(["hosts", "mirror.lab"])
        .output()
        .unwrap();
    assert!(
        !outside.status.success(),
        "mirror.lab resolves in OUTSIDE: {outside:?}"
    );
    let hosts_dir = PathBuf::from("/etc/netns").join(lab.ns(Side::Inside));
    assert!(hosts_dir.join("hosts").exists());

    // A process the lab started, and one it did not keep, die with it.
    let mut kept = lab.spawn(Side::Outside, {
        let mut c = std::process::Command::new("sleep");
        c.arg("600");
        c
    });
    let mut loose = lab
        .command(Side::Inside, "sleep")
        .arg("600")
        .spawn()
        .unwrap();
    lab.socks(Side::Outside, SocketAddrV4::new(PROXY_IP, 1080));
    let dir = lab.dir().to_owned();
    drop(lab);

    for child in [&mut kept, &mut loose] {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < LAB_DEADLINE,
                "a lab process outlived the lab"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!status.success(), "{status}");
    }
    assert!(
        namespaces_with_prefix(&prefix).is_empty(),
        "{:?}",
        namespaces_with_prefix(&prefix)
    );
    assert!(!hosts_dir.exists(), "{} is left", hosts_dir.display());
    assert!(!dir.exists(), "{} is left", dir.display());
}

// ---- one test per censor rule ----

#[test]
fn the_prefix_rule_drops_multistream_both_ways_and_passes_other_bytes() {
    let Some(lab) = Lab::new("prefix") else {
        return;
    };
    let _echo = echo_outside(&lab, OUTSIDE_IP, 7000);
    let mut hello = MULTISTREAM.to_vec();
    hello.extend_from_slice(b"\x07/noise\n");
    let echo = v4(OUTSIDE_IP, 7000);
    assert!(echoed(&lab, echo, &hello, PASSES), "before the censor");

    lab.censor(&Censor::new().drop_payload_prefix(MULTISTREAM));
    // The client's first segment is dropped (and every retransmission).
    let got = exchange(&lab, echo, &hello, BLOCKED).unwrap();
    assert!(got.is_empty(), "came back through the censor: {got:?}");
    // One byte off, or the same bytes later in the stream, pass.
    assert!(echoed(&lab, echo, b"\x13/multistream/1.0.1\n", PASSES));
    assert!(echoed(&lab, echo, b"\x12/multistream/1.0.0\n", PASSES));
    assert!(echoed(&lab, echo, b"x\x13/multistream/1.0.0\n", PASSES));
    // The prefix is matched in full, past the 16 bytes one match takes:
    // a difference in byte 19 is enough.
    assert!(echoed(&lab, echo, b"\x13/multistream/1.0.0\r", PASSES));

    // The server's side: a server that speaks first is dropped too.
    let _speaks =
        probe::send_then_drain(listen(&lab, Side::Outside, OUTSIDE_IP, 7001), hello.clone());
    let _speaks_other = probe::send_then_drain(
        listen(&lab, Side::Outside, OUTSIDE_IP, 7002),
        b"other".to_vec(),
    );
    let got = exchange(&lab, v4(OUTSIDE_IP, 7001), b"", BLOCKED).unwrap();
    assert!(
        got.is_empty(),
        "the server's multistream came through: {got:?}"
    );
    assert_eq!(
        exchange(&lab, v4(OUTSIDE_IP, 7002), b"", PASSES).unwrap(),
        b"other"
    );

    // Without the censor the same bytes pass again.
    lab.uncensor();
    assert!(echoed(&lab, echo, &hello, PASSES), "after the censor");
    assert_eq!(
        exchange(&lab, v4(OUTSIDE_IP, 7001), b"", PASSES).unwrap(),
        hello
    );
}

#[test]
fn the_udp_rule_drops_udp_and_passes_tcp() {
    let Some(lab) = Lab::new("udp") else { return };
    let _udp = udp_echo_outside(&lab, OUTSIDE_IP, 4001);
    let _tcp = echo_outside(&lab, OUTSIDE_IP, 4001);
    assert_eq!(
        udp_echoes(&lab, v4(OUTSIDE_IP, 4001), 5, PASSES),
        5,
        "before the censor"
    );

    lab.censor(&Censor::new().drop_udp());
    assert_eq!(udp_echoes(&lab, v4(OUTSIDE_IP, 4001), 5, BLOCKED), 0);
    assert!(echoed(&lab, v4(OUTSIDE_IP, 4001), b"tcp still", PASSES));

    lab.uncensor();
    assert_eq!(
        udp_echoes(&lab, v4(OUTSIDE_IP, 4001), 5, PASSES),
        5,
        "after the censor"
    );
}

#[test]
fn the_tls_rule_passes_only_flows_that_start_with_a_handshake_to_443() {
    let Some(lab) = Lab::new("tls443") else {
        return;
    };
    let raw = v4(OUTSIDE_IP, 443);
    let tls = v4(PROXY_IP, 443);
    let _raw = echo_outside(&lab, OUTSIDE_IP, 443);
    let tls_server = probe::tls_server(
        listen(&lab, Side::Outside, PROXY_IP, 443),
        b"a story".to_vec(),
    );
    let _other = echo_outside(&lab, OUTSIDE_IP, 80);
    let _udp = udp_echo_outside(&lab, OUTSIDE_IP, 443);
    let plain = b"GET / HTTP/1.1\r\nhost: mirror.lab\r\n\r\n";
    assert!(echoed(&lab, raw, plain, PASSES), "before the censor");
    assert!(
        connects(&lab, v4(OUTSIDE_IP, 80), PASSES),
        "before the censor"
    );

    lab.censor(&Censor::new().tls_only_on_443());
    // A real TLS exchange passes.
    let (head, body) = lab
        .in_ns(Side::Inside, || {
            probe::tls_get(tls, "mirror.lab", "/", PASSES)
        })
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"a story");
    // So does anything that starts with 0x16: the censor looks at one byte.
    let hello_like = b"\x16\x03\x01\x00\x05hello, and then anything at all";
    assert!(echoed(&lab, raw, hello_like, PASSES));
    // A flow that starts otherwise gets nothing back, and stays dead.
    let got = exchange(&lab, raw, plain, BLOCKED).unwrap();
    assert!(got.is_empty(), "plain HTTP on 443 came back: {got:?}");
    // Another port does not even connect, and UDP to 443 is dropped.
    assert!(!connects(&lab, v4(OUTSIDE_IP, 80), BLOCKED));
    assert_eq!(udp_echoes(&lab, raw, 3, BLOCKED), 0);

    // A server that speaks first on 443 is not heard.
    drop(tls_server);
    let _speaks = probe::send_then_drain(
        listen(&lab, Side::Outside, PROXY_IP, 443),
        b"SSH-2.0-x\r\n".to_vec(),
    );
    let got = exchange(&lab, tls, b"", BLOCKED).unwrap();
    assert!(
        got.is_empty(),
        "a server's first bytes came through: {got:?}"
    );

    lab.uncensor();
    assert!(echoed(&lab, raw, plain, PASSES), "after the censor");
}

#[test]
fn the_proxy_rule_passes_only_tcp_to_the_proxy() {
    let Some(lab) = Lab::new("proxy") else { return };
    let proxy = SocketAddrV4::new(PROXY_IP, 1080);
    lab.socks(Side::Outside, proxy);
    let mirror = SocketAddrV4::new(OUTSIDE_IP, 7000);
    let _mirror = echo_outside(&lab, OUTSIDE_IP, 7000);
    let _beside = echo_outside(&lab, PROXY_IP, 7000);
    let _udp = udp_echo_outside(&lab, PROXY_IP, 1080);
    assert!(
        echoed(&lab, mirror.into(), b"direct", PASSES),
        "before the censor"
    );

    lab.censor(&Censor::new().only_tcp_to(proxy));
    assert!(
        !connects(&lab, mirror.into(), BLOCKED),
        "the mirror is reached directly"
    );
    assert!(
        !connects(&lab, v4(PROXY_IP, 7000), BLOCKED),
        "another port of the proxy's host"
    );
    assert_eq!(
        udp_echoes(&lab, proxy.into(), 3, BLOCKED),
        0,
        "UDP to the proxy's port"
    );
    // Through the proxy, the mirror answers.
    let got = lab.in_ns(Side::Inside, || {
        let mut s = probe::socks5_connect(proxy.into(), mirror, PASSES).expect("through the proxy");
        // microsocks closes both ways at the first EOF: no shutdown here.
        std::io::Write::write_all(&mut s, b"through the proxy").unwrap();
        let mut got = vec![0u8; b"through the proxy".len()];
        std::io::Read::read_exact(&mut s, &mut got).unwrap();
        got
    });
    assert_eq!(got, b"through the proxy");

    lab.uncensor();
    assert!(connects(&lab, mirror.into(), PASSES), "after the censor");
}

#[test]
fn the_ip_rule_blocks_one_address_and_passes_the_other() {
    let Some(lab) = Lab::new("blockip") else {
        return;
    };
    let _mirror = echo_outside(&lab, OUTSIDE_IP, 7000);
    let _proxy = echo_outside(&lab, PROXY_IP, 7000);
    let _udp = udp_echo_outside(&lab, PROXY_IP, 7000);
    lab.censor(&Censor::new().block_ip(PROXY_IP));
    assert!(!connects(&lab, v4(PROXY_IP, 7000), BLOCKED));
    assert_eq!(udp_echoes(&lab, v4(PROXY_IP, 7000), 3, BLOCKED), 0);
    assert!(echoed(&lab, v4(OUTSIDE_IP, 7000), b"the other", PASSES));
    // Nor can the blocked host reach in, while the other one can.
    let _reader = udp_echo_in(&lab, Side::Inside, INSIDE_IP, 7001);
    let from = |ip| {
        lab.in_ns(Side::Outside, || {
            probe::udp_echoes_from(ip, v4(INSIDE_IP, 7001), b"in", 3, BLOCKED)
        })
    };
    assert_eq!(from(PROXY_IP), 0);
    assert_eq!(from(OUTSIDE_IP), 3);
}

#[test]
fn the_censor_rules_combine_drops_first_then_the_allowed() {
    let Some(lab) = Lab::new("combined") else {
        return;
    };
    let proxy = SocketAddrV4::new(PROXY_IP, 1080);
    let _proxy = echo_outside(&lab, PROXY_IP, 1080);
    let _tls = echo_outside(&lab, OUTSIDE_IP, 443);
    let _udp = udp_echo_outside(&lab, OUTSIDE_IP, 443);
    let censor = Censor::new()
        .drop_udp()
        .drop_payload_prefix(MULTISTREAM)
        .tls_only_on_443()
        .only_tcp_to(proxy);
    lab.censor(&censor);
    assert!(echoed(&lab, proxy.into(), b"to the proxy", PASSES));
    assert!(echoed(
        &lab,
        v4(OUTSIDE_IP, 443),
        b"\x16\x03\x01tls",
        PASSES
    ));
    assert!(
        exchange(&lab, proxy.into(), MULTISTREAM, BLOCKED)
            .unwrap()
            .is_empty()
    );
    assert_eq!(udp_echoes(&lab, v4(OUTSIDE_IP, 443), 3, BLOCKED), 0);
    // A censor replaces the one before.
    lab.censor(&Censor::new().drop_udp());
    assert!(echoed(&lab, proxy.into(), MULTISTREAM, PASSES));
    let rules = lab.ruleset();
    assert!(!rules.contains("tls_first"), "{rules}");
}

#[test]
fn shaping_limits_the_rate_and_drops_a_share_of_packets() {
    let Some(lab) = Lab::new("shape") else { return };
    let download: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
    let _server = probe::send_then_drain(
        listen(&lab, Side::Outside, OUTSIDE_IP, 7000),
        download.clone(),
    );
    let fetch = || {
        let start = Instant::now();
        let got = exchange(&lab, v4(OUTSIDE_IP, 7000), b"", Duration::from_secs(30)).unwrap();
        assert_eq!(got.len(), download.len());
        start.elapsed()
    };
    let free = fetch();

    // 2 Mbit/s: 256 KiB take about a second.
    lab.shape(&Shape {
        rate_kbit: Some(2000),
        ..Shape::default()
    })
    .unwrap();
    let shaped = fetch();
    eprintln!("256 KiB: {free:?} unshaped, {shaped:?} at 2 Mbit/s");
    assert!(
        shaped >= Duration::from_millis(800),
        "{shaped:?} at 2 Mbit/s"
    );
    assert!(free < shaped / 2, "{free:?} unshaped");

    // 30% loss each way: about half the echoes come back.
    let _udp = udp_echo_outside(&lab, OUTSIDE_IP, 7001);
    lab.shape(&Shape::default()).unwrap();
    let batch = Duration::from_millis(300);
    let all = udp_echoes(&lab, v4(OUTSIDE_IP, 7001), 400, batch);
    assert_eq!(all, 400, "with no loss");
    lab.shape(&Shape {
        loss_percent: Some(30),
        ..Shape::default()
    })
    .unwrap();
    let lossy = udp_echoes(&lab, v4(OUTSIDE_IP, 7001), 400, batch);
    eprintln!("UDP echoes with 30% loss each way: {lossy} of 400 (0.49 expected)");
    assert!((120..=280).contains(&lossy), "{lossy} of 400");

    // 100 ms each way: an echo takes 200 ms more (by netem, or by the
    // relay where the kernel has none).
    lab.shape(&Shape::default()).unwrap();
    let _echo = echo_outside(&lab, OUTSIDE_IP, 7002);
    let round_trip = || {
        let start = Instant::now();
        assert!(echoed(&lab, v4(OUTSIDE_IP, 7002), b"ping", PASSES));
        start.elapsed()
    };
    let fast = round_trip();
    let delay = Shape {
        delay: Some(Duration::from_millis(100)),
        ..Shape::default()
    };
    lab.shape(&delay).unwrap();
    let slow = round_trip();
    let by = if lab.has_netem() {
        "netem"
    } else {
        "the relay"
    };
    eprintln!("an echo: {fast:?}, and {slow:?} with 100 ms each way by {by}");
    assert!(
        slow >= Duration::from_millis(200) && slow >= fast + Duration::from_millis(150),
        "{slow:?}"
    );
    // The censor still sees delayed flows (the relay's own included).
    let _tls = probe::tls_server(
        listen(&lab, Side::Outside, OUTSIDE_IP, 443),
        b"late".to_vec(),
    );
    lab.censor(&Censor::new().tls_only_on_443());
    let (_, body) = lab
        .in_ns(Side::Inside, || {
            probe::tls_get(v4(OUTSIDE_IP, 443), "mirror.lab", "/", PASSES)
        })
        .unwrap();
    assert_eq!(body, b"late");
    let got = exchange(
        &lab,
        v4(OUTSIDE_IP, 443),
        b"GET / HTTP/1.1\r\n\r\n",
        BLOCKED,
    )
    .unwrap();
    assert!(got.is_empty(), "plain HTTP on 443 came back: {got:?}");
    assert!(
        exchange(&lab, v4(OUTSIDE_IP, 7002), b"ping", BLOCKED)
            .unwrap_or_default()
            .is_empty()
    );
    lab.uncensor();
    lab.shape(&Shape::default()).unwrap();
    let again = fetch();
    assert!(again < shaped / 2, "{again:?} after shaping was taken away");
}

// ---- captures ----

#[test]
fn a_capture_reassembles_flows() {
    let Some(lab) = Lab::new("capture") else {
        return;
    };
    // Known bytes each way, larger than a segment.
    let up: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let down: Vec<u8> = (0..200_000u32).map(|i| (i * 13 % 253) as u8).collect();
    let server = {
        let (up, down) = (up.clone(), down.clone());
        probe::serve(
            listen(&lab, Side::Outside, OUTSIDE_IP, 7000),
            move |mut s| {
                let mut got = Vec::new();
                std::io::Read::read_to_end(&mut s, &mut got).unwrap();
                assert_eq!(got, up);
                std::io::Write::write_all(&mut s, &down).unwrap();
            },
        )
    };
    let capture = lab.capture(Side::Inside);
    let got = exchange(&lab, v4(OUTSIDE_IP, 7000), &up, PASSES).unwrap();
    assert_eq!(got, down);
    // Every byte each way, not the ends: under load the capture has been
    // seen to miss the server's FIN (a flake of the capture, not of the
    // reassembly this checks).
    let flows = capture.wait_for("the flow's bytes both ways", |f| {
        f.iter()
            .any(|f| f.to_server.len() == up.len() && f.to_client.len() == down.len())
    });
    let flows_later = capture.stop();
    assert!(flows_later.len() >= flows.len());
    let flow = flows_later
        .iter()
        .find(|f| f.server == SocketAddrV4::new(OUTSIDE_IP, 7000))
        .expect("the flow in the capture");
    assert_eq!(flow.client.ip(), &INSIDE_IP);
    assert!(flow.syn && !flow.holes, "{flow:?}");
    assert!(flow.to_server == up, "{flow:?}");
    assert!(flow.to_client == down, "{flow:?}");
    drop(server);

    // A real TLS exchange is TLS records from byte 0, each way.
    let _tls = probe::tls_server(
        listen(&lab, Side::Outside, OUTSIDE_IP, 443),
        vec![b'x'; 40_000],
    );
    let capture = lab.capture(Side::Outside);
    let (head, body) = lab
        .in_ns(Side::Inside, || {
            probe::tls_get(v4(OUTSIDE_IP, 443), "mirror.lab", "/", PASSES)
        })
        .unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200") && body.len() == 40_000,
        "{head}"
    );
    capture.wait_for("the TLS flow closed", |f| f.iter().any(Flow::closed));
    let flows = capture.stop();
    let flow = flows
        .iter()
        .find(|f| f.server.port() == 443)
        .expect("the TLS flow");
    // The router's NAT-free forwarding keeps the reader's address.
    assert_eq!(flow.client.ip(), &INSIDE_IP);
    let hello = tls_records(&flow.to_server).unwrap();
    let answer = tls_records(&flow.to_client).unwrap();
    assert!(
        hello >= 2 && answer >= 4,
        "{hello} and {answer} records: {flow:?}"
    );
    // A cut-off capture is still TLS.
    let cut = &flow.to_client[..flow.to_client.len() - 100];
    assert!(tls_records(cut).is_ok());

    // And libp2p's first bytes are not, from byte 0.
    let e = tls_records(MULTISTREAM).unwrap_err();
    assert!(e.starts_with("byte 0:"), "{e}");
    let mut after = flow.to_server.clone();
    let at = after.len();
    after.extend_from_slice(MULTISTREAM);
    let e = tls_records(&after).unwrap_err();
    assert!(e.starts_with(&format!("byte {at}:")), "{e}");
}

/// A pcap written here, with segments out of order and retransmitted: the
/// parser puts each byte once, in order. Needs no root.
#[test]
fn the_pcap_parser_orders_and_dedupes_segments() {
    let client = SocketAddrV4::new(INSIDE_IP, 40000);
    let server = SocketAddrV4::new(OUTSIDE_IP, 443);
    let mut pcap = Vec::new();
    for w in [0xa1b2c3d4u32, 0x0002_0004] {
        pcap.extend_from_slice(&w.to_le_bytes());
    }
    pcap.extend_from_slice(&[0; 8]);
    pcap.extend_from_slice(&65535u32.to_le_bytes());
    pcap.extend_from_slice(&1u32.to_le_bytes());
    let isn_c = 0xffff_fff0u32; // wraps within the flow
    let isn_s = 1000u32;
    let segments: Vec<(SocketAddrV4, SocketAddrV4, u32, u8, &[u8])> = vec![
        (client, server, isn_c, 0x02, b""),
        (server, client, isn_s, 0x12, b""),
        (client, server, isn_c.wrapping_add(7), 0x18, b"world"),
        (client, server, isn_c.wrapping_add(1), 0x18, b"hello "),
        (client, server, isn_c.wrapping_add(1), 0x18, b"hello "),
        (server, client, isn_s + 1, 0x18, b"ok"),
        (client, server, isn_c.wrapping_add(12), 0x11, b""),
        (server, client, isn_s + 3, 0x11, b""),
    ];
    for (src, dst, seq, flags, payload) in segments {
        let frame = frame(src, dst, seq, flags, payload);
        for w in [0u32, 0, frame.len() as u32, frame.len() as u32] {
            pcap.extend_from_slice(&w.to_le_bytes());
        }
        pcap.extend_from_slice(&frame);
    }
    // A record cut off where the file ends is left out.
    pcap.extend_from_slice(&[0; 20]);
    let flows = parse_pcap(&pcap).unwrap();
    assert_eq!(flows.len(), 1, "{flows:?}");
    let f = &flows[0];
    assert_eq!((f.client, f.server), (client, server));
    assert_eq!(f.to_server, b"hello world");
    assert_eq!(f.to_client, b"ok");
    assert!(f.syn && !f.holes && f.closed(), "{f:?}");
    assert_eq!(f.packets, 8);

    assert_eq!(tls_records(b""), Ok(0));
    assert_eq!(
        tls_records(b"\x16\x03\x01\x00\x02ab\x17\x03\x03\x00\x05ab"),
        Ok(2)
    );
    assert_eq!(tls_records(b"\x16\x03"), Ok(1));
    assert!(
        tls_records(b"\x16\x03\x01\x00\x02ab\x16\x02\x01")
            .unwrap_err()
            .starts_with("byte 7:")
    );
    assert!(
        tls_records(b"\x16\x03\x01\x48\x01")
            .unwrap_err()
            .contains("18433 bytes")
    );
}

/// An Ethernet frame with an IPv4 TCP segment (checksums left zero), and
/// Ethernet padding after it.
fn frame(src: SocketAddrV4, dst: SocketAddrV4, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = 20 + 20 + payload.len();
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ]);
    f.extend_from_slice(&src.ip().octets());
    f.extend_from_slice(&dst.ip().octets());
    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f.resize(f.len().max(60), 0);
    f
}

// ---- a story across the lab ----

/// Says a figure of the lab ([`report`]), formatted.
macro_rules! report {
    ($($arg:tt)*) => {
        report(&format!($($arg)*))
    };
}

/// The name on the mirror's certificate, resolved in OUTSIDE only (by the
/// proxy there); the reader is told to trust the certificate's root.
const MIRROR_NAME: &str = "mirror.lab";
/// The front's secret WebSocket path.
const SECRET: &str = "/lab-front-path-only-readers-know";

/// A mirror's data directory with a newsroom, a reader's that trusts it,
/// the newsroom's folder, an article to publish, and a certificate for
/// the mirror's front.
struct Newsroom {
    _dir: TempDir,
    mirror: PathBuf,
    reader: PathBuf,
    newsroom: PathBuf,
    article: PathBuf,
    certs: Certs,
}

fn newsroom(name: &str) -> Newsroom {
    let dir = TempDir::new().unwrap();
    let (mirror, reader, newsroom) = newsroom_and_reader(dir.path(), "mirror", "reader", name);
    let article = dir.path().join("article.md");
    std::fs::write(
        &article,
        "---\ntitle: Across the border\nlang: en\n---\nText.\n",
    )
    .unwrap();
    let certs = certs(&dir.path().join("certs"), MIRROR_NAME);
    Newsroom {
        _dir: dir,
        mirror,
        reader,
        newsroom,
        article,
        certs,
    }
}

/// How the mirror listens, and how the reader reaches it, for one way
/// across the border.
struct Crossing {
    /// `kolokol node` arguments for the mirror (after `--mirror`).
    mirror: fn(&Certs) -> Vec<String>,
    /// The reader's `kolokol node` arguments, given the mirror.
    reader: fn(&Certs, &LabNode) -> Vec<String>,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// The mirror over plain TCP on 198.18.1.2:4001, the reader bootstrapped
/// with that address.
const PLAIN_TCP: Crossing = Crossing {
    mirror: |_| strings(&["--listen", "/ip4/198.18.1.2/tcp/4001"]),
    reader: |_, m| vec!["--bootstrap".into(), m.tcp_addr(OUTSIDE_IP, 4001)],
};

/// The mirror's front on 443, as a mirror that takes no risk runs it.
fn front_args(c: &Certs) -> Vec<String> {
    vec![
        "--front".into(),
        format!("{OUTSIDE_IP}:443"),
        "--front-cert".into(),
        c.cert.display().to_string(),
        "--front-key".into(),
        c.key.display().to_string(),
        "--front-path".into(),
        SECRET.into(),
    ]
}

/// The front's address, WebSocket inside TLS, with the mirror's id; by
/// IP or, for a proxy to resolve, by name.
fn front_address(m: &LabNode, by_name: bool) -> String {
    let host = if by_name {
        format!("/dns4/{MIRROR_NAME}")
    } else {
        format!("/ip4/{OUTSIDE_IP}")
    };
    let ws = libp2p::Multiaddr::empty()
        .with(libp2p::multiaddr::Protocol::Tls)
        .with(libp2p::multiaddr::Protocol::Sni(MIRROR_NAME.into()))
        .with(libp2p::multiaddr::Protocol::Ws(SECRET.into()));
    format!("{host}/tcp/443{ws}/p2p/{}", m.peer_id())
}

/// The mirror on every transport: TCP and QUIC on 4001 for friendly
/// networks, its front on 443; the reader given all three addresses, to
/// use whichever gets through.
const EVERY_WAY: Crossing = Crossing {
    mirror: |c| {
        let mut a = strings(&[
            "--listen",
            "/ip4/198.18.1.2/tcp/4001",
            "--listen",
            "/ip4/198.18.1.2/udp/4001/quic-v1",
        ]);
        a.extend(front_args(c));
        a
    },
    reader: |c, m| {
        vec![
            "--tls-root".into(),
            c.ca.display().to_string(),
            "--bootstrap".into(),
            m.tcp_addr(OUTSIDE_IP, 4001),
            "--bootstrap".into(),
            format!("/ip4/{OUTSIDE_IP}/udp/4001/quic-v1/p2p/{}", m.peer_id()),
            "--bootstrap".into(),
            front_address(m, false),
        ]
    },
};

/// A mirror behind its front only, as one where mirrors are probed
/// runs: nothing of it answers but a web site and, on the secret path,
/// libp2p inside TLS.
const FRONT_ONLY: Crossing = Crossing {
    mirror: front_args,
    reader: |c, m| {
        vec![
            "--tls-root".into(),
            c.ca.display().to_string(),
            "--bootstrap".into(),
            front_address(m, false),
        ]
    },
};

/// Starts the mirror in OUTSIDE and the reader in INSIDE as `crossing`
/// says, publishes a story at the mirror, and waits up to `within` for the
/// reader to hold it. Returns how long that took from the publication, or
/// the reader's last status.
fn story_crosses(lab: &Lab, crossing: &Crossing, within: Duration) -> Result<Duration, String> {
    story_crosses_probed(lab, crossing, within, |_| {})
}

/// [`story_crosses`], with `probe` run once the mirror is up and before
/// the reader starts.
fn story_crosses_probed(
    lab: &Lab,
    crossing: &Crossing,
    within: Duration,
    probe: impl FnOnce(&Lab),
) -> Result<Duration, String> {
    story_with_media_crosses(lab, crossing, within, probe, 0)
}

/// [`story_crosses_probed`] with an image of `image_bytes` in the story
/// (none if 0).
fn story_with_media_crosses(
    lab: &Lab,
    crossing: &Crossing,
    within: Duration,
    probe: impl FnOnce(&Lab),
    image_bytes: usize,
) -> Result<Duration, String> {
    let n = newsroom("lab-news");
    let image = n.article.with_file_name("photo.jpg");
    if image_bytes > 0 {
        // Bytes that do not compress, as a photo's do not.
        let bytes: Vec<u8> = (0..image_bytes as u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        std::fs::write(&image, bytes).unwrap();
    }
    let mut args = vec!["--mirror".to_owned()];
    args.extend((crossing.mirror)(&n.certs));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mirror = lab.node(Side::Outside, &n.mirror, &args);
    probe(lab);
    let reader_args = (crossing.reader)(&n.certs, &mirror);
    let reader_args: Vec<&str> = reader_args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let _reader = lab.node(Side::Inside, &n.reader, &reader_args);
    let mut publish = vec![
        "publish",
        n.article.to_str().unwrap(),
        "--newsroom",
        n.newsroom.to_str().unwrap(),
    ];
    if image_bytes > 0 {
        publish.extend(["--image", image.to_str().unwrap()]);
    }
    lab.kolokol_ok(Side::Outside, &n.mirror, &publish);
    let published = Instant::now();
    let mut status = String::new();
    while published.elapsed() < within {
        status = lab.kolokol_ok(Side::Inside, &n.reader, &["status"]);
        if status.contains("stories held: 1") {
            let took = published.elapsed();
            report!(
                "censor lab, {}: the story reached the reader {took:?} after its publication \
                 ({:?} after the reader started)",
                lab.name(),
                started.elapsed()
            );
            return Ok(took);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(status)
}

/// [`story_crosses`] within the issue's 60 s, or a failure that shows the
/// reader's status.
fn must_cross(lab: &Lab, crossing: &Crossing) -> Duration {
    must_cross_probed(lab, crossing, |_| {})
}

/// [`must_cross`] with a probe, as [`story_crosses_probed`] runs it.
fn must_cross_probed(lab: &Lab, crossing: &Crossing, probe: impl FnOnce(&Lab)) -> Duration {
    match story_crosses_probed(lab, crossing, Duration::from_secs(60), probe) {
        Ok(t) => t,
        Err(status) => panic!(
            "{}: the story did not reach the reader in 60 s; its status:\n{status}\nlogs:\n{}",
            lab.name(),
            lab.logs()
        ),
    }
}

#[test]
fn a_story_crosses_the_lab_with_no_censor() {
    let Some(lab) = Lab::new("story") else { return };
    must_cross(&lab, &PLAIN_TCP);
}

#[test]
fn a_story_crosses_a_slow_lossy_link() {
    let Some(lab) = Lab::new("story-slow") else {
        return;
    };
    let slow = Shape {
        delay: Some(Duration::from_millis(150)),
        rate_kbit: Some(1000),
        loss_percent: Some(2),
        freeze_after: None,
    };
    lab.shape(&slow).unwrap();
    must_cross(&lab, &PLAIN_TCP);
}

/// A 1 MiB image over 128 kbit/s with loss and delay: about 70 s of
/// transfer at the link's rate, so every request must be sized to the
/// link. Before pieces were sized to it, a 256 KiB chunk needed about 16 s
/// against a 15 s request timeout and the image never arrived.
#[test]
fn a_large_image_crosses_a_128_kbit_lossy_link() {
    let Some(lab) = Lab::new("image-slow") else {
        return;
    };
    let slow = Shape {
        delay: Some(Duration::from_millis(150)),
        rate_kbit: Some(128),
        loss_percent: Some(3),
        freeze_after: None,
    };
    lab.shape(&slow).unwrap();
    let within = Duration::from_secs(120);
    match story_with_media_crosses(&lab, &PLAIN_TCP, within, |_| {}, 1024 * 1024) {
        Ok(took) => report!(
            "censor lab, {}: a story with a 1 MiB image over 128 kbit/s, 150 ms each way and \
             3 % loss took {took:?}",
            lab.name()
        ),
        Err(status) => panic!(
            "{}: the image did not reach the reader in 120 s; its status:\n{status}\nlogs:\n{}",
            lab.name(),
            lab.logs()
        ),
    }
}

#[test]
fn the_multistream_rule_keeps_a_plain_tcp_reader_from_the_mirror() {
    let Some(lab) = Lab::new("story-blocked") else {
        return;
    };
    lab.censor(&Censor::new().drop_payload_prefix(MULTISTREAM));
    let capture = lab.capture(Side::Outside);
    let took = story_crosses(&lab, &PLAIN_TCP, Duration::from_secs(10));
    let status = match took {
        Ok(t) => panic!("the story crossed a censor of libp2p's first bytes in {t:?}"),
        Err(status) => status,
    };
    assert!(status.contains("peers:     0"), "{status}");
    // The reader did dial the mirror: its SYNs passed, its first bytes
    // (and the mirror's) did not.
    let flows = capture.stop();
    let dials: Vec<&Flow> = flows
        .iter()
        .filter(|f| f.server == SocketAddrV4::new(OUTSIDE_IP, 4001))
        .collect();
    assert!(!dials.is_empty(), "the reader never dialed: {flows:?}");
    for f in dials {
        assert!(f.syn, "{f:?}");
        assert!(!f.to_server.starts_with(MULTISTREAM), "{f:?}");
        assert!(!f.to_client.starts_with(MULTISTREAM), "{f:?}");
    }
}

// ---- the censor's scenarios: each a story within 60 s ----

#[test]
fn a_story_crosses_a_censor_that_drops_the_libp2p_handshake() {
    let Some(lab) = Lab::new("cross-handshake") else {
        return;
    };
    lab.censor(&Censor::new().drop_payload_prefix(MULTISTREAM));
    must_cross(&lab, &EVERY_WAY);
}

#[test]
fn a_story_crosses_a_censor_that_drops_quic() {
    let Some(lab) = Lab::new("cross-quic") else {
        return;
    };
    lab.censor(&Censor::new().drop_udp());
    must_cross(&lab, &EVERY_WAY);
}

/// The strictest censor of the lab: no UDP, no libp2p handshake, and on
/// TCP only port 443 for flows that start like TLS.
fn tls_only_on_443() -> Censor {
    Censor::new()
        .drop_udp()
        .drop_payload_prefix(MULTISTREAM)
        .tls_only_on_443()
}

#[test]
fn a_story_crosses_a_censor_that_passes_only_tls_on_443() {
    let Some(lab) = Lab::new("cross-tls") else {
        return;
    };
    lab.censor(&tls_only_on_443());
    let capture = lab.capture(Side::Inside);
    must_cross(&lab, &EVERY_WAY);
    let flows = capture.stop();
    // What the censor saw of the reader on 443 is TLS from byte 0, each
    // way.
    let tls: Vec<&Flow> = flows
        .iter()
        .filter(|f| *f.client.ip() == INSIDE_IP && f.server.port() == 443)
        .collect();
    assert!(!tls.is_empty(), "no flow on 443: {flows:?}");
    for f in &tls {
        if let Err(e) = tls_records(&f.to_server).and(tls_records(&f.to_client)) {
            panic!("not TLS: {e}: {f:?}");
        }
        report!(
            "censor lab, cross-tls: a flow on 443: {} bytes to the mirror, {} back, all TLS records; first bytes {:02x?} / {:02x?}",
            f.to_server.len(),
            f.to_client.len(),
            &f.to_server[..f.to_server.len().min(6)],
            &f.to_client[..f.to_client.len().min(6)],
        );
    }
}

#[test]
fn a_censor_that_probes_the_mirror_sees_a_web_site_and_the_story_still_crosses() {
    let Some(lab) = Lab::new("cross-probe") else {
        return;
    };
    lab.censor(&tls_only_on_443());
    must_cross_probed(&lab, &FRONT_ONLY, probe_the_front);
}

/// The censor, on its router, dials the address a reader was seen to
/// use: a web server, nothing else.
fn probe_the_front(lab: &Lab) {
    let front = SocketAddr::from(SocketAddrV4::new(OUTSIDE_IP, 443));
    let wait = Duration::from_secs(5);
    let (home, missing, guessed, libp2p, tcp_4001, ws_4443) = lab.in_ns(Side::Router, move || {
        (
            probe::tls_get(front, MIRROR_NAME, "/", wait),
            probe::tls_get(front, MIRROR_NAME, "/no-such-page", wait),
            probe::tls_get(front, MIRROR_NAME, SECRET, wait),
            probe::tcp_exchange(front, b"\x13/multistream/1.0.0\n", wait),
            probe::connects(SocketAddr::from(SocketAddrV4::new(OUTSIDE_IP, 4001)), wait),
            probe::connects(SocketAddr::from(SocketAddrV4::new(OUTSIDE_IP, 4443)), wait),
        )
    });
    let (head, body) = home.unwrap();
    report!(
        "censor lab, cross-probe: GET / answered {:?}",
        head.lines().next()
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Server: nginx"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("<html"), "a page");
    let (missing, _) = missing.unwrap();
    let (guessed, _) = guessed.unwrap();
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(
        guessed.starts_with("HTTP/1.1 404"),
        "the secret path without the upgrade: {guessed}"
    );
    let reply = libp2p.unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&reply).contains("multistream"),
        "{reply:?}"
    );
    assert!(
        !tcp_4001 && !ws_4443,
        "a mirror behind its front listens on nothing else"
    );
}

/// The reader behind a censor that lets it reach only a SOCKS5 proxy
/// outside, which resolves the mirror's name: the reader has no DNS and
/// no route but through it.
const THROUGH_SOCKS: Crossing = Crossing {
    mirror: |c| {
        let mut a = strings(&["--listen", "/ip4/198.18.1.2/tcp/4001"]);
        a.extend(front_args(c));
        a
    },
    reader: |c, m| {
        vec![
            "--proxy".into(),
            format!("socks5h://{PROXY_IP}:1080"),
            "--tls-root".into(),
            c.ca.display().to_string(),
            "--bootstrap".into(),
            format!("/dns4/{MIRROR_NAME}/tcp/4001/p2p/{}", m.peer_id()),
            "--bootstrap".into(),
            front_address(m, true),
        ]
    },
};

#[test]
fn a_story_crosses_a_censor_that_passes_only_a_socks_proxy() {
    let Some(lab) = Lab::new("cross-socks") else {
        return;
    };
    // The name resolves where the proxy runs, and nowhere inside.
    lab.hosts(Side::Outside, &[(MIRROR_NAME, OUTSIDE_IP)]);
    let proxy = SocketAddrV4::new(PROXY_IP, 1080);
    lab.socks(Side::Outside, proxy);
    lab.censor(&Censor::new().only_tcp_to(proxy));
    must_cross(&lab, &THROUGH_SOCKS);
}
