//! The operator's guide true to the binary: the example config of
//! docs/operations.md, taken from the file between its
//! `operator-guide-config` markers, starts a real node whose control API,
//! gateway and metrics answer.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::process::{BIN, Killed, free_port, ok, s, wait_until};
use tempfile::TempDir;

const GUIDE: &str = include_str!("../docs/operations.md");
const BEGIN: &str = "<!-- operator-guide-config: begin -->";
const END: &str = "<!-- operator-guide-config: end -->";
/// The metrics address the example uses, the one text the test changes.
const EXAMPLE_METRICS: &str = "127.0.0.1:9464";

/// The TOML between the markers, without its code fence.
fn example_config() -> String {
    let start = GUIDE.find(BEGIN).expect("the begin marker") + BEGIN.len();
    let end = GUIDE[start..].find(END).expect("the end marker") + start;
    let block = GUIDE[start..end].trim();
    let body = block
        .strip_prefix("```toml")
        .and_then(|b| b.strip_suffix("```"))
        .expect("a ```toml block between the markers");
    assert_eq!(GUIDE.matches(BEGIN).count(), 1, "one example");
    body.trim_start_matches('\n').to_owned()
}

/// A GET on `addr` with the gateway's loopback host; the status and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// Trusts a fresh newsroom `name` on `data`.
fn trust_newsroom(dir: &Path, data: &Path, name: &str) {
    let room = dir.join(format!("room-{name}"));
    ok(
        &dir.join(format!("nr-{name}")),
        &["newsroom", "init", "--name", name, "--dir", s(&room)],
    );
    ok(
        data,
        &["trust", "add", s(&room.join(format!("{name}.toml")))],
    );
}

#[test]
fn the_guides_example_config_starts_a_node_that_answers() {
    let config = example_config();
    assert!(
        config.contains(EXAMPLE_METRICS),
        "the substitution's text is in the example"
    );
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    for name in ["newsroom-a", "newsroom-b", "newsroom-c"] {
        trust_newsroom(dir.path(), &data, name);
    }
    let metrics = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        data.join("config.toml"),
        config.replace(EXAMPLE_METRICS, &metrics),
    )
    .unwrap();
    let gateway = format!("127.0.0.1:{}", free_port());
    let listen = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["node", "--listen", &listen, "--gateway", &gateway])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut node = Killed(child);
    wait_until("the node to start", || {
        if let Some(status) = node.0.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(e) = node.0.stderr.as_mut() {
                let _ = std::io::Read::read_to_string(e, &mut err);
            }
            panic!("the example config did not start a node ({status}): {err}");
        }
        data.join("node.toml").exists()
    });

    // The control API's /v1/status, by its client and by `kolokol status`.
    let client =
        kolokol::node::control::ControlClient::for_data_dir(&data).expect("the node's control API");
    let st = client.status().unwrap();
    assert!(st.mirror, "the example runs a mirror");
    let names: Vec<&str> = st.publishers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let status = ok(&data, &["status"]);
    assert!(status.contains("role:      mirror"), "{status}");

    wait_until("the gateway", || {
        std::net::TcpStream::connect(&gateway).is_ok()
    });
    let (code, body) = get(&gateway, "/api/v1/status");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["publishers"].as_array().unwrap().len(), 3);

    let (code, body) = get(&metrics, "/metrics");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("kolokol_store_disk_bytes"), "{body}");
    assert!(body.contains("kolokol_rejected_total"), "{body}");
    let (code, _) = get(&metrics, "/healthz");
    assert_eq!(code, 200);
}
