//! Two processes of the real binary on 127.0.0.1: a newsroom's node and a
//! reader's node bootstrapped from it.

mod common;

use std::path::Path;

use common::process::{NodeProcess, kolokol, newsroom_and_reader, ok, wait_until};
use tempfile::TempDir;

/// Starts a node on `a`, then one on `b` bootstrapped from it, and waits
/// until they are connected.
fn connected_pair(a: &Path, b: &Path) -> (NodeProcess, NodeProcess) {
    let node_a = NodeProcess::start(a, &[]);
    let node_b = NodeProcess::start(b, &["--bootstrap", &node_a.addr()]);
    wait_until("the nodes to connect", || {
        ok(b, &["status"]).contains("peers:     1")
    });
    (node_a, node_b)
}

#[test]
fn a_story_published_into_one_process_reaches_the_other() {
    let dir = TempDir::new().unwrap();
    let (a, b, newsroom) =
        newsroom_and_reader(dir.path(), "newsroom-node", "reader-node", "proc-news");
    let (mut node_a, mut node_b) = connected_pair(&a, &b);

    let article = dir.path().join("a.md");
    std::fs::write(
        &article,
        "---\ntitle: Across processes\nlang: en\n---\nText.\n",
    )
    .unwrap();
    let id = ok(
        &a,
        &[
            "publish",
            article.to_str().unwrap(),
            "--newsroom",
            newsroom.to_str().unwrap(),
        ],
    );
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 64);

    // The story shows in the second node's status, then in its store.
    wait_until("the story at the reader's node", || {
        ok(&b, &["status"]).contains("stories held: 1")
    });
    let status = ok(&b, &["status"]);
    assert!(status.contains("proc-news"), "{status}");
    assert!(status.contains("newest head:  sequence 1"), "{status}");

    // While the node runs, the store is reached through it, not opened.
    let busy = kolokol(&b, &["store", "stats"]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&busy.stderr).contains("in use by another kolokol process"));

    assert!(node_b.terminate().success(), "clean exit on SIGTERM");
    assert!(node_a.terminate().success());
    assert!(
        !b.join("node.toml").exists(),
        "node.toml is removed at shutdown"
    );
    let stats = ok(&b, &["store", "stats"]);
    assert!(stats.contains("bundles:   1"), "{stats}");
    let check = ok(&b, &["store", "check"]);
    assert!(check.contains("no problems"), "{check}");
    // The identity persists across restarts.
    let peer_before = std::fs::read(b.join("node.key")).unwrap();
    let _again = NodeProcess::start(&b, &[]);
    assert_eq!(std::fs::read(b.join("node.key")).unwrap(), peer_before);
    let _ = id;
}

#[test]
fn sigterm_during_a_fetch_leaves_no_partial_bundle() {
    let dir = TempDir::new().unwrap();
    let (a, b, newsroom) = newsroom_and_reader(dir.path(), "a", "b", "big-news");
    let (mut node_a, mut node_b) = connected_pair(&a, &b);

    // A story with 40 MB of media: 160 fetch chunks.
    let mut media = Vec::new();
    for i in 0..4 {
        let p = dir.path().join(format!("m{i}.mp4"));
        std::fs::write(
            &p,
            (0..10_000_000u32)
                .map(|x| (x.wrapping_mul(2654435761) >> (i + 3)) as u8)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        media.push(p);
    }
    let article = dir.path().join("a.md");
    std::fs::write(&article, "---\ntitle: Big\nlang: en\n---\nText.\n").unwrap();
    let mut args = vec![
        "publish",
        article.to_str().unwrap(),
        "--newsroom",
        newsroom.to_str().unwrap(),
    ];
    for m in &media {
        args.push("--image");
        args.push(m.to_str().unwrap());
    }
    ok(&a, &args);
    // Usually this lands mid-fetch; on a fast machine the fetch may be done
    // already, and the checks below hold either way.
    wait_until("the fetch to start", || {
        let s = ok(&b, &["status"]);
        s.contains("fetching:  1") || s.contains("stories held: 1")
    });
    assert!(node_b.terminate().success());
    node_a.terminate();

    // Whatever the moment, the store holds the bundle whole or not at all.
    let check = ok(&b, &["store", "check"]);
    assert!(check.contains("no problems"), "{check}");
    let stats = ok(&b, &["store", "stats"]);
    assert!(
        stats.contains("bundles:   0") || stats.contains("bundles:   1"),
        "{stats}"
    );
    if stats.contains("bundles:   0") {
        assert!(
            stats.contains("blobs:     0"),
            "no blob of the unfinished bundle is kept: {stats}"
        );
    }
}

#[test]
fn a_node_listens_on_tcp_quic_and_websocket() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("n");
    let mut node = NodeProcess::start(
        &data,
        &[
            "--listen",
            "/ip4/127.0.0.1/udp/0/quic-v1",
            "--listen",
            "/ip4/127.0.0.1/tcp/0/ws",
        ],
    );
    let text = std::fs::read_to_string(data.join("node.toml")).unwrap();
    let file: kolokol::node::control::NodeFile = toml::from_str(&text).unwrap();
    assert!(file.listen.iter().any(|a| a.contains("/quic-v1")), "{text}");
    assert!(file.listen.iter().any(|a| a.ends_with("/ws")), "{text}");
    // A control address off loopback is refused.
    let out = kolokol(
        &dir.path().join("m"),
        &[
            "node",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--no-gateway",
            "--control",
            "0.0.0.0:0",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    assert!(node.terminate().success());
}

#[test]
fn a_publisher_files_bootstrap_addresses_are_dialed() {
    let dir = TempDir::new().unwrap();
    let a = dir.path().join("mirror");
    let b = dir.path().join("reader");
    let newsroom = dir.path().join("newsroom");
    ok(
        &a,
        &[
            "newsroom",
            "init",
            "--name",
            "boot-news",
            "--dir",
            newsroom.to_str().unwrap(),
        ],
    );
    let mut mirror = NodeProcess::start(&a, &[]);
    // The publisher file names the mirror; the reader gives no --bootstrap.
    let public = std::fs::read_to_string(newsroom.join("boot-news.toml")).unwrap();
    let with_bootstrap = dir.path().join("boot-news.toml");
    std::fs::write(
        &with_bootstrap,
        format!(
            "{public}bootstrap = [\"{}\", \"not an address\"]\n",
            mirror.addr()
        ),
    )
    .unwrap();
    ok(&b, &["trust", "add", with_bootstrap.to_str().unwrap()]);
    let mut reader = NodeProcess::start(&b, &[]);
    wait_until("the reader to reach the mirror", || {
        ok(&b, &["status"]).contains("peers:     1")
    });
    assert!(reader.terminate().success());
    assert!(mirror.terminate().success());
}

#[test]
fn a_reader_started_late_catches_up_from_a_mirror_process() {
    let dir = TempDir::new().unwrap();
    let (a, b, newsroom) = newsroom_and_reader(dir.path(), "mirror", "reader", "late-news");
    let mut mirror = NodeProcess::start(&a, &["--mirror"]);
    let article = dir.path().join("a.md");
    std::fs::write(
        &article,
        "---\ntitle: Published while away\nlang: en\n---\nText.\n",
    )
    .unwrap();
    let id = ok(
        &a,
        &[
            "publish",
            article.to_str().unwrap(),
            "--newsroom",
            newsroom.to_str().unwrap(),
        ],
    );
    let status = ok(&a, &["status"]);
    assert!(status.contains("role:      mirror"), "{status}");
    // The reader starts after the publication: gossip is long gone, and
    // catch-up brings the story and the head.
    let mut reader = NodeProcess::start(&b, &["--bootstrap", &mirror.addr()]);
    wait_until("the story caught up", || {
        ok(&b, &["status"]).contains("stories held: 1")
    });
    let status = ok(&b, &["status"]);
    assert!(status.contains("newest head:  sequence 1"), "{status}");
    assert!(status.contains("catch-up:"), "{status}");

    // The newsroom asks the network who holds the story.
    let report = ok(
        &a,
        &[
            "newsroom",
            "report",
            &id.trim()[..12],
            "--dir",
            newsroom.to_str().unwrap(),
            "--wait",
            "20s",
        ],
    );
    assert!(report.contains("holds v1"), "{report}");
    assert!(
        report.contains("1 of 1 peers asked hold the latest version"),
        "{report}"
    );

    // The newsroom revokes its key from before the story: the running
    // node announces it, and the reader drops the story too.
    let info = ok(
        &a,
        &["newsroom", "info", "--dir", newsroom.to_str().unwrap()],
    );
    let key = info
        .split_whitespace()
        .find(|w| w.starts_with("ed25519:") && !info.contains(&format!("root key:   {w}")))
        .expect("a signing key in newsroom info")
        .to_owned();
    let out = ok(
        &a,
        &[
            "newsroom",
            "revoke",
            &key,
            "--dir",
            newsroom.to_str().unwrap(),
            "--effective",
            "2000-01-01T00:00:00Z",
        ],
    );
    assert!(
        out.contains(
            "announced to the network through the running node (1 stored bundles removed)"
        ),
        "{out}"
    );
    wait_until("the story dropped after the revocation", || {
        ok(&b, &["status"]).contains("stories held: 0")
    });

    // Removing the publisher while the node runs reaches the node at once.
    assert!(ok(&b, &["trust", "remove", "late-news"]).contains("removed late-news"));
    let status = ok(&b, &["status"]);
    assert!(!status.contains("publisher late-news"), "{status}");
    assert!(!ok(&b, &["trust", "list"]).contains("late-news"));
    assert!(reader.terminate().success());
    assert!(mirror.terminate().success());
}
