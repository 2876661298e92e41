//! A mirror behind Debian's nginx, as docs/censorship.md sets it up:
//! nginx terminates TLS and serves the site; only its secret location
//! goes, upgraded, to the mirror's WebSocket listener on loopback. A
//! quiet reader gets a story through it; a probe gets nginx's site.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::process::{
    Killed, NodeProcess, free_port, newsroom_and_reader, ok, publish, s, wait_until,
};
use common::tls::{certs, status_of, tls_exchange};
use kolokol::node::control::NodeFile;
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

const NAME: &str = "mirror.test";
const SECRET: &str = "/a-location-only-readers-know";

/// The configuration of docs/censorship.md, on loopback ports.
fn nginx_conf(dir: &Path, port: u16, backend: u16, certs: &common::tls::Certs) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {NAME};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {d}/site;
        location = {SECRET} {{
            proxy_pass http://127.0.0.1:{backend};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            proxy_buffering off;
        }}
    }}
}}
"#,
        cert = certs.cert.display(),
        key = certs.key.display(),
    )
}

#[test]
fn a_quiet_reader_reaches_a_mirror_behind_nginx() {
    let dir = tempfile::TempDir::new().unwrap();
    let certs = certs(&dir.path().join("certs"), NAME);
    let web = dir.path().join("nginx");
    std::fs::create_dir_all(web.join("site")).unwrap();
    std::fs::write(
        web.join("site/index.html"),
        "<html><body>A cooking blog</body></html>",
    )
    .unwrap();
    let (port, backend) = (free_port(), free_port());
    std::fs::write(
        web.join("nginx.conf"),
        nginx_conf(&web, port, backend, &certs),
    )
    .unwrap();
    let spawned = Command::new("nginx")
        .arg("-p")
        .arg(&web)
        .arg("-c")
        .arg(web.join("nginx.conf"))
        .arg("-e")
        .arg(web.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(child) = spawned else {
        common::lab::skip(
            "nginx is not installed (Debian's nginx-light): the test behind nginx is skipped",
        );
        return;
    };
    let _nginx = Killed(child);
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until("nginx to listen", || TcpStream::connect(front).is_ok());

    let (mirror, reader, newsroom) =
        newsroom_and_reader(dir.path(), "mirror", "reader", "behind-nginx");
    let backend_addr = format!("/ip4/127.0.0.1/tcp/{backend}/ws");
    let _m = NodeProcess::start_with(
        &mirror,
        &["--mirror", "--no-mdns", "--listen", &backend_addr],
    );
    let peer =
        toml::from_str::<NodeFile>(&std::fs::read_to_string(mirror.join("node.toml")).unwrap())
            .unwrap()
            .peer_id;
    let addr = Multiaddr::empty()
        .with(Protocol::Ip4([127, 0, 0, 1].into()))
        .with(Protocol::Tcp(port))
        .with(Protocol::Tls)
        .with(Protocol::Sni(NAME.into()))
        .with(Protocol::Ws(SECRET.into()));
    let _r = NodeProcess::start_with(
        &reader,
        &[
            "--bootstrap",
            &format!("{addr}/p2p/{peer}"),
            "--tls-root",
            s(&certs.ca),
        ],
    );
    wait_until("the reader to connect through nginx", || {
        ok(&reader, &["status"]).contains("peers:     1")
    });
    let start = Instant::now();
    publish(&mirror, &newsroom, "Past the reverse proxy");
    wait_until("the story at the reader", || {
        ok(&reader, &["status"]).contains("stories held: 1")
    });
    eprintln!(
        "a story reached the reader behind nginx in {:?}",
        start.elapsed()
    );

    // A probe sees nginx's site; the secret location without an upgrade
    // gets nothing from the node that names it.
    let get =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n");
    let home = tls_exchange(front, NAME, &certs.ca_pem, get("/").as_bytes()).unwrap();
    assert_eq!(status_of(&home), 200);
    assert!(String::from_utf8_lossy(&home).contains("A cooking blog"));
    let bare = tls_exchange(front, NAME, &certs.ca_pem, get(SECRET).as_bytes()).unwrap();
    let text = String::from_utf8_lossy(&bare);
    assert!(
        !text.to_lowercase().contains("kolokol") && !text.contains("libp2p"),
        "{text}"
    );
}
