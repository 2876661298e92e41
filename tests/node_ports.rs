//! A node's ports and what it says of them: a second node on the same
//! libp2p port fails naming the port; a metrics port in use is named as
//! the metrics port; the JSON log of the start leaves out a gateway not
//! served; `/metrics` has `kolokol_rejected_total` from the start.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::process::{BIN, DEADLINE, Killed, NodeProcess, free_port, wait_until};
use tempfile::TempDir;

/// Runs `kolokol node` on `data` with `args`, expecting it to stop by
/// itself; killed (and the test failed) after the deadline.
fn node_fails(data: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .arg("node")
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("kolokol node {args:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_second_node_on_the_same_libp2p_port_fails_naming_it() {
    let dir = TempDir::new().unwrap();
    let port = free_port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let first = NodeProcess::start(&dir.path().join("a"), &["--listen", &listen]);
    let out = node_fails(
        &dir.path().join("b"),
        &[
            "--listen",
            &listen,
            "--share",
            "--no-mdns",
            "--gateway",
            "127.0.0.1:0",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("port {port}")), "{err}");
    assert!(err.contains("already in use"), "{err}");
    // The first node still holds the port.
    let file = std::fs::read_to_string(dir.path().join("a/node.toml")).unwrap();
    assert!(file.contains(&format!("/tcp/{port}\"")), "{file}");
    drop(first);
}

#[test]
fn a_metrics_port_in_use_is_named_as_the_metrics_port() {
    let dir = TempDir::new().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = node_fails(
        &dir.path().join("a"),
        &["--gateway", "127.0.0.1:0", "--metrics", &addr],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("metrics port"), "{err}");
    assert!(err.contains(&addr), "{err}");
}

/// Reads standard error of `child` until a line holds `what`.
fn line_with(child: &mut std::process::Child, what: &str) -> String {
    use std::io::BufRead;
    let err = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(err).lines();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("no line with {what}"))
            .unwrap();
        if line.contains(what) {
            return line;
        }
    }
}

#[test]
fn the_json_log_of_a_start_without_gateway_has_no_none_and_metrics_start_at_zero() {
    let dir = TempDir::new().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let data = dir.path().join("a");
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["--log-format", "json", "--log-level", "info", "node"])
        .args(["--no-gateway", "--metrics", &metrics])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut node = Killed(child);
    let line = line_with(&mut node.0, "node running");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let fields = &v["fields"];
    assert!(fields["control"].is_string(), "{line}");
    assert!(fields.get("gateway").is_none_or(|g| g.is_null()), "{line}");
    assert!(!line.contains("None"), "{line}");

    wait_until("metrics", || std::net::TcpStream::connect(&metrics).is_ok());
    let body = http_get(&metrics, "/metrics");
    let rejected: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("kolokol_rejected_total{"))
        .collect();
    assert!(!rejected.is_empty(), "{body}");
    assert!(rejected.iter().all(|l| l.ends_with(" 0")), "{rejected:?}");
    assert!(
        rejected
            .iter()
            .any(|l| l.contains("reason=\"bad_signature\"")),
        "{rejected:?}"
    );
}

/// A plain GET over a fresh connection; the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}
