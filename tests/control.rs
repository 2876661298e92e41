//! The control API of a real node process, from a local client: a large
//! request without the token is refused before its body is read, and the
//! node's memory does not grow with it; with the token, an import works.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::process::NodeProcess;
use common::*;
use kolokol::node::control::{ControlClient, NodeFile};
use tempfile::TempDir;

/// The node's peak resident memory so far, in bytes (Linux's VmHWM).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// What an unauthenticated caller claims to send.
const CLAIMED: u64 = 200 * 1024 * 1024;

#[test]
fn a_large_request_without_the_token_is_refused_before_its_body_is_read() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("node");
    let node = NodeProcess::start(&data, &[]);
    let text = std::fs::read_to_string(data.join("node.toml")).unwrap();
    let file: NodeFile = toml::from_str(&text).unwrap();
    let before = peak_rss(node.child.id());

    let mut s = TcpStream::connect(&file.control).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /v1/publish HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {CLAIMED}\r\n\r\n",
        file.control
    )
    .unwrap();
    // Send the body until the node stops taking it.
    let chunk = vec![0x5a; 1024 * 1024];
    let mut sent = 0u64;
    let start = Instant::now();
    while sent < CLAIMED {
        match s.write(&chunk) {
            Ok(n) => sent += n as u64,
            Err(_) => break,
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no end");
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let after = peak_rss(node.child.id());
    eprintln!(
        "unauthenticated POST of {CLAIMED} bytes: {sent} sent before the node closed; \
         peak RSS {before} -> {after} bytes"
    );
    // The node closed the connection long before the body was through,
    // and held none of it.
    assert!(sent < CLAIMED / 4, "{sent} bytes were taken");
    assert!(
        after.saturating_sub(before) < 16 * 1024 * 1024,
        "peak RSS grew from {before} to {after}"
    );

    // A body over the small limit on another endpoint, with the token:
    // refused by its size.
    let client = ControlClient::for_data_dir(&data).unwrap();
    let big = "x".repeat(kolokol::node::control::MAX_SMALL_BODY + 1);
    let err = client.untrust(&big).unwrap_err();
    assert!(
        matches!(
            err,
            kolokol::node::control::ControlError::Refused { status: 413, .. }
        ),
        "{err:?}"
    );

    // With the token, an import is read and done.
    let p = Publisher::new(31);
    client.trust(&trust_file(&p, "control-news")).unwrap();
    let archive_path = dir.path().join("a.kolokol");
    std::fs::write(&archive_path, archive(&p, 3, 2000)).unwrap();
    let report = client.import(&archive_path).unwrap();
    assert_eq!(report.new, 3, "{report:?}");
}
