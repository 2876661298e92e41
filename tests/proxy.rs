//! A quiet reader that dials through a proxy (`--proxy`): Debian's
//! microsocks as the SOCKS5 server, and a small CONNECT proxy of the
//! test's own. Every connection the reader holds goes to the proxy, and
//! the story arrives.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::process::{
    Killed, NodeProcess, free_port, newsroom_and_reader, ok, publish, wait_until,
};
use common::sockets::connected_to;
use kolokol::node::control::NodeFile;

/// A mirror (the newsroom's node) on loopback TCP, a reader dialing it
/// by name through `proxy`; checks that the story comes and that every
/// connection of the reader is to the proxy.
fn through(proxy_url: &str, proxy: SocketAddr) {
    let dir = tempfile::TempDir::new().unwrap();
    let (mirror, reader, newsroom) = newsroom_and_reader(dir.path(), "mirror", "reader", "proxied");
    let m = NodeProcess::start(&mirror, &[]);
    let file: NodeFile =
        toml::from_str(&std::fs::read_to_string(mirror.join("node.toml")).unwrap()).unwrap();
    let port = file.listen[0].rsplit('/').next().unwrap().to_owned();
    // By name: the proxy resolves it.
    let addr = format!("/dns4/localhost/tcp/{port}/p2p/{}", file.peer_id);
    let r = NodeProcess::start_with(&reader, &["--proxy", proxy_url, "--bootstrap", &addr]);
    wait_until("the reader to connect through the proxy", || {
        ok(&reader, &["status"]).contains("peers:     1")
    });
    let start = Instant::now();
    publish(&mirror, &newsroom, "By way of the proxy");
    wait_until("the story at the reader", || {
        ok(&reader, &["status"]).contains("stories held: 1")
    });
    eprintln!("{proxy_url}: the story came in {:?}", start.elapsed());
    // The reader's own control API connections aside (from `status`, to
    // its loopback port, now closed), it holds only connections to the
    // proxy.
    let control: SocketAddr =
        toml::from_str::<NodeFile>(&std::fs::read_to_string(reader.join("node.toml")).unwrap())
            .unwrap()
            .control
            .parse()
            .unwrap();
    let held = connected_to(r.child.id());
    let to_peers: Vec<_> = held.iter().filter(|a| **a != control).collect();
    assert!(!to_peers.is_empty(), "{held:?}");
    assert!(
        to_peers.iter().all(|a| **a == proxy),
        "{held:?}, proxy {proxy}"
    );
    drop(m);
}

#[test]
fn a_quiet_reader_reaches_its_mirror_through_a_socks5_proxy() {
    let port = free_port();
    let spawned = Command::new("microsocks")
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = spawned else {
        common::lab::skip(
            "microsocks is not installed (Debian's microsocks): the SOCKS5 test is skipped",
        );
        return;
    };
    let _socks = Killed(child);
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until("microsocks to listen", || TcpStream::connect(proxy).is_ok());
    through(&format!("socks5h://127.0.0.1:{port}"), proxy);
}

#[test]
fn a_quiet_reader_reaches_its_mirror_through_an_http_connect_proxy() {
    let (proxy, asked) = common::connect::connect_proxy();
    through(&format!("http://{proxy}"), proxy);
    let asked = asked.lock().unwrap();
    assert!(
        asked.iter().all(|t| t.starts_with("localhost:")),
        "the name went to the proxy unresolved: {asked:?}"
    );
}

#[test]
fn a_proxy_that_refuses_gets_no_connection_and_no_direct_dial() {
    // A port where nothing answers: the reader must not dial around it.
    let dead = free_port();
    let dir = tempfile::TempDir::new().unwrap();
    let (mirror, reader, _newsroom) =
        newsroom_and_reader(dir.path(), "mirror", "reader", "proxied");
    let _m = NodeProcess::start(&mirror, &[]);
    let file: NodeFile =
        toml::from_str(&std::fs::read_to_string(mirror.join("node.toml")).unwrap()).unwrap();
    let addr = format!("{}/p2p/{}", file.listen[0], file.peer_id);
    let _r = NodeProcess::start_with(
        &reader,
        &[
            "--proxy",
            &format!("socks5h://127.0.0.1:{dead}"),
            "--bootstrap",
            &addr,
        ],
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(ok(&reader, &["status"]).contains("peers:     0"));
}
