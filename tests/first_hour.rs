//! A reader's first hour, end to end, with the `kolokol` binary only and
//! the commands the README gives: a newsroom names its mirror, publishes a
//! story that reaches the mirror, and hands out its publisher file as one
//! line of text; a reader with an empty data directory trusts the text,
//! starts a node (a quiet reader, knowing no peer), and reads the story in
//! its gateway over HTTP.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::process::{NodeProcess, ok, s, wait_until};
use tempfile::TempDir;

const TITLE: &str = "The bell rings past the border";

/// GET `path` from the gateway at `addr`: status and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_owned(),
    )
}

fn gateway_of(data: &Path) -> String {
    let text = std::fs::read_to_string(data.join("node.toml")).unwrap();
    let file: kolokol::node::control::NodeFile = toml::from_str(&text).unwrap();
    file.gateway.unwrap()
}

#[test]
fn a_reader_trusts_a_pasted_text_and_reads_the_first_story() {
    let started = Instant::now();
    let dir = TempDir::new().unwrap();
    let (mirror_data, newsroom_data, reader) = (
        dir.path().join("mirror"),
        dir.path().join("newsroom-data"),
        dir.path().join("reader"),
    );
    let newsroom = dir.path().join("newsroom");

    // A volunteer's mirror, on loopback.
    let mirror = NodeProcess::start(&mirror_data, &["--mirror"]);
    let mirror_addr = mirror.addr();

    // The newsroom: its publisher file names the mirror.
    ok(
        &newsroom_data,
        &[
            "newsroom",
            "init",
            "--name",
            "first-news",
            "--display-name",
            "First News",
            "--dir",
            s(&newsroom),
            "--mirror",
            &mirror_addr,
        ],
    );
    let text = ok(
        &newsroom_data,
        &["newsroom", "share", "--dir", s(&newsroom)],
    );
    let text = text.trim().to_owned();
    assert!(text.starts_with("kolokol-publisher:"), "{text}");
    assert!(!text.contains(char::is_whitespace));

    // The mirror carries the newsroom (the volunteer trusts its text, and
    // the running mirror takes it at once).
    let out = ok(&mirror_data, &["trust", "add", &text]);
    assert!(out.contains("running node"), "{out}");

    // The newsroom's own node, connected to its mirror, publishes.
    ok(
        &newsroom_data,
        &["trust", "add", s(&newsroom.join("first-news.toml"))],
    );
    let _newsroom_node = NodeProcess::start(&newsroom_data, &["--bootstrap", &mirror_addr]);
    wait_until("the newsroom's node to reach its mirror", || {
        ok(&newsroom_data, &["status"]).contains("peers:     1")
    });
    let article = dir.path().join("first.md");
    std::fs::write(
        &article,
        format!("---\ntitle: {TITLE}\nlang: en\n---\nThe first story a reader gets.\n"),
    )
    .unwrap();
    let id = ok(
        &newsroom_data,
        &["publish", s(&article), "--newsroom", s(&newsroom)],
    );
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 64, "{id}");
    wait_until("the story to reach the mirror", || {
        ok(&mirror_data, &["status"]).contains("stories held: 1")
    });

    // The reader: an empty data directory, the pasted text, `kolokol node`.
    assert!(!reader.exists());
    let out = ok(&reader, &["trust", "add", &text]);
    assert!(out.contains("trusted first-news"), "{out}");
    assert!(out.contains(&mirror_addr), "the mirror is shown: {out}");
    let _reader_node = NodeProcess::start_with(&reader, &["--no-mdns"]);
    let status = ok(&reader, &["status"]);
    assert!(status.contains("quiet reader"), "{status}");
    let gateway = gateway_of(&reader);

    // The story, through the reader's gateway.
    wait_until("the story at the reader's gateway", || {
        get(&gateway, "/api/v1/stories").1.contains(&id)
    });
    let (code, page) = get(&gateway, &format!("/story/{id}"));
    assert_eq!(code, 200);
    assert!(page.contains(TITLE), "{page}");
    assert!(page.contains("First News"), "{page}");
    let (_, home) = get(&gateway, "/");
    assert!(home.contains(TITLE), "{home}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the first hour took {:?}",
        started.elapsed()
    );
}
