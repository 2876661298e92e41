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

/// A trust desk that keeps what the page hands it.
struct Desk(std::sync::Mutex<Vec<String>>);

impl kolokol::gateway::TrustDesk for Desk {
    fn trust(
        &self,
        file: kolokol::trust::PublisherFile,
    ) -> futures::future::BoxFuture<'_, Result<(), kolokol::gateway::ViewError>> {
        self.0.lock().unwrap().push(file.name);
        Box::pin(async { Ok(()) })
    }
}

/// The "Add a newsroom" page of a node with a proxy fetches a URL through
/// it: the demo publisher file comes through microsocks, and with a proxy
/// where nothing answers the page says the fetch failed (nothing went
/// around it).
#[tokio::test]
async fn the_add_page_fetches_a_url_through_the_nodes_proxy() {
    use common::gateway::{send, serve};
    let toml = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/keys/demo/kolokol-demo.toml"
    ))
    .unwrap();
    let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web_port = web.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in web.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                toml.len()
            );
            let _ = s.write_all(&toml);
        }
    });
    let url = format!("http://localhost:{web_port}/kolokol-demo.toml");
    let form = format!(
        "step=preview&text=&url={}",
        url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()
    );
    let page = |proxy: &str| {
        let store = std::sync::Arc::new(kolokol::store::Store::memory(Default::default()));
        let state = kolokol::gateway::GatewayState::new(store, vec![])
            .trust_desk(Desk(Default::default()))
            .proxy(Some(kolokol::net::proxy::Proxy::parse(proxy).unwrap()));
        let form = form.clone();
        async move {
            let served = serve(state).await;
            let origin = format!("http://{}", served.addr);
            send(
                served.addr,
                "POST",
                "/add",
                &[
                    ("Origin", &origin),
                    ("Content-Type", "application/x-www-form-urlencoded"),
                ],
                form.as_bytes(),
            )
            .await
        }
    };
    let dead = page(&format!("socks5h://127.0.0.1:{}", free_port())).await;
    assert_eq!(dead.status, 400, "{}", dead.text());

    let port = free_port();
    let Ok(child) = Command::new("microsocks")
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        common::lab::skip("microsocks is not installed: the SOCKS5 half is skipped");
        return;
    };
    let _socks = Killed(child);
    wait_until("microsocks to listen", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let through = page(&format!("socks5h://127.0.0.1:{port}")).await;
    assert_eq!(through.status, 200, "{}", through.text());
    assert!(
        through.text().contains("kolokol-demo"),
        "{}",
        through.text()
    );
}
