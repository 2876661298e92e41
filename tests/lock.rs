//! A sealed node started with no passphrase serves a lock page, unlocks
//! from it, and locks again on `kolokol lock`, letting go of its store.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::process::{BIN, Killed, wait_until};
use common::sealed::{ok, reader_with_story, run};
use kolokol::node::vault::LockedFile;

const PASS: &str = "correct horse battery staple";
const DURESS: &str = "the other passphrase";
const TITLE: &str = "Протесты в Новгороде продолжаются";
const NEWSROOM: &str = "vecherniy-kolokol";

/// A reader's data directory holding one story of a newsroom it trusts,
/// sealed under [`PASS`] (and [`DURESS`] when `duress`).
fn sealed_reader(dir: &Path, duress: bool) -> PathBuf {
    let article = format!("---\ntitle: {TITLE}\nlang: ru\n---\nТекст.\n");
    let (reader, _, _) = reader_with_story(dir, NEWSROOM, &article, None);
    let mut envs = vec![("KOLOKOL_PASSPHRASE", PASS)];
    let mut args = vec!["seal"];
    if duress {
        envs.push(("KOLOKOL_DURESS_PASSPHRASE", DURESS));
        args.push("--duress");
    }
    ok(&reader, &envs, &args);
    reader
}

/// `kolokol node` on `data` as a reader starts it from a service, with
/// stdin not a terminal and `envs`; killed when dropped. Returns it once
/// its node.toml appeared.
fn node(data: &Path, envs: &[(&str, &str)]) -> Killed {
    let _ = std::fs::remove_file(data.join("node.toml"));
    let mut c = Command::new(BIN);
    c.arg("--data-dir")
        .arg(data)
        .args(["node", "--gateway", "127.0.0.1:0", "--no-mdns"])
        .env_remove("KOLOKOL_PASSPHRASE")
        .env_remove("KOLOKOL_PASSPHRASE_FD")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    let child = Killed(c.spawn().unwrap());
    wait_until("node.toml to appear", || data.join("node.toml").exists());
    child
}

/// The gateway's address from node.toml, locked or not.
fn gateway(data: &Path) -> String {
    let text = std::fs::read_to_string(data.join("node.toml")).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    v["gateway"].as_str().unwrap().to_owned()
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// One HTTP/1.1 request to `addr`; `origin` sets the Origin header.
fn http(addr: &str, method: &str, path: &str, origin: Option<&str>, body: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(o) = origin {
        req.push_str(&format!("Origin: {o}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        head: head.to_lowercase(),
        body: body.to_owned(),
    }
}

fn form(passphrase: &str) -> String {
    format!("passphrase={}", passphrase.replace(' ', "+"))
}

/// The lock page, asked at `/` and elsewhere: it names nothing held.
fn assert_locked(addr: &str) {
    for path in ["/", "/feed.atom", "/api/v1/stories"] {
        let r = http(addr, "GET", path, None, "");
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(r.body.contains("Locked"), "{path}: {}", r.body);
        assert!(r.body.contains("type=\"password\""), "{path}: {}", r.body);
        assert!(!r.body.contains(TITLE), "{path} shows the story");
        assert!(!r.body.contains(NEWSROOM), "{path} names the newsroom");
        assert!(r.head.contains("cache-control: no-store"), "{}", r.head);
    }
    // The page's own stylesheet, for the gateway's look.
    let css = http(addr, "GET", "/static/style.css", None, "");
    assert_eq!(css.status, 200);
    assert!(css.head.contains("text/css"), "{}", css.head);
}

fn assert_unlocked(addr: &str) {
    let r = http(addr, "GET", "/", None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains(TITLE),
        "the home page lacks the story: {}",
        r.body
    );
}

#[test]
fn a_locked_node_unlocks_from_its_page_and_locks_again() {
    let dir = tempfile::tempdir().unwrap();
    let reader = sealed_reader(dir.path(), false);
    let _node = node(&reader, &[]);
    // Locked: node.toml says where the page is, and nothing else.
    let locked = LockedFile::read(&reader).expect("a locked node.toml");
    let addr = gateway(&reader);
    assert_eq!(locked.gateway, addr);
    assert_locked(&addr);
    let own = format!("http://{addr}");

    let r = http(&addr, "POST", "/", Some(&own), &form("not the passphrase"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Wrong passphrase"), "{}", r.body);
    assert!(!r.body.contains(TITLE));

    // One attempt at a time: while a wrong one is held back, the next is
    // refused, even the right one.
    let first = {
        let (addr, own) = (addr.clone(), own.clone());
        std::thread::spawn(move || http(&addr, "POST", "/", Some(&own), &form("a wrong one")))
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let second = http(&addr, "POST", "/", Some(&own), &form(PASS));
    assert_eq!(second.status, 429, "{}", second.body);
    assert!(first.join().unwrap().body.contains("Wrong passphrase"));
    assert_locked(&addr);

    // Another site's page cannot submit, not even the right passphrase.
    for origin in [Some("http://evil.example"), Some("null"), None] {
        let r = http(&addr, "POST", "/", origin, &form(PASS));
        assert_eq!(r.status, 403, "{origin:?}: {}", r.body);
    }
    assert_locked(&addr);

    let r = http(&addr, "POST", "/", Some(&own), &form(PASS));
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.head.contains("location: /"), "{}", r.head);
    assert_unlocked(&addr);
    assert!(LockedFile::read(&reader).is_none());
    let status = ok(&reader, &[], &["status"]);
    assert!(status.contains("peer id:"), "{status}");

    let out = ok(&reader, &[], &["lock"]);
    assert!(out.contains("locked the node"), "{out}");
    assert!(out.contains(&addr), "{out}");
    assert_locked(&addr);
    let locked = LockedFile::read(&reader).unwrap();
    assert_eq!(locked.gateway, addr);
    // Nothing in the node holds the data key any more.
    assert!(!locked.key_held, "the node still holds the key");
    assert!(out.contains("data key let go of"), "{out}");
    let status = ok(&reader, &[], &["status"]);
    assert!(status.contains("is locked"), "{status}");
    assert!(!status.contains("peer id"), "{status}");
    // The node let go of the store: another command opens it.
    let stats = ok(
        &reader,
        &[("KOLOKOL_PASSPHRASE", PASS)],
        &["store", "stats"],
    );
    assert!(stats.contains(NEWSROOM), "{stats}");
    // Locked already: said so, and a failure.
    let again = run(&reader, &[], &["lock"]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("locked already"), "{err}");

    let r = http(&addr, "POST", "/", Some(&own), &form(PASS));
    assert_eq!(r.status, 303, "{}", r.body);
    assert_unlocked(&addr);
}

#[test]
fn a_node_given_the_passphrase_starts_unlocked_and_can_lock() {
    let dir = tempfile::tempdir().unwrap();
    let reader = sealed_reader(dir.path(), false);
    let _node = node(&reader, &[("KOLOKOL_PASSPHRASE", PASS)]);
    let addr = gateway(&reader);
    assert_unlocked(&addr);
    ok(&reader, &[], &["lock"]);
    assert_locked(&addr);
}

#[test]
fn the_duress_passphrase_on_the_lock_page_wipes() {
    let dir = tempfile::tempdir().unwrap();
    let reader = sealed_reader(dir.path(), true);
    let _node = node(&reader, &[]);
    let addr = gateway(&reader);
    let own = format!("http://{addr}");
    let r = http(&addr, "POST", "/", Some(&own), &form(DURESS));
    // Told apart from a wrong passphrase by nothing on the page.
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Wrong passphrase"), "{}", r.body);
    assert!(
        !reader.join("sealed").exists(),
        "the duress passphrase left the sealed store"
    );
    assert_locked(&addr);
    let r = http(&addr, "POST", "/", Some(&own), &form(PASS));
    assert!(!r.body.contains(TITLE));
    assert_ne!(r.status, 303, "{}", r.body);
}

#[test]
fn lock_needs_a_sealed_directory_and_an_unlocked_node() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let out = run(&plain, &[], &["lock"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing to lock"), "{err}");

    let reader = sealed_reader(dir.path(), false);
    let out = run(&reader, &[], &["lock"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no unlocked node runs"), "{err}");
}
