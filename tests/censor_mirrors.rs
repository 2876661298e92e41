//! The censor lab (tests/common/lab) against mirror blocking: the address
//! a reader knows is blocked, and the reader finds the newsroom's other
//! mirror only from the signed mirror list in its publisher file, at a
//! cold start and again after a restart; and a reader started while its
//! only mirror is blocked gets through once the block is lifted. Each
//! within 60 s, printed.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::lab::*;
use common::process::{ok, s};
use tempfile::TempDir;

const MIRROR_PORT: u16 = 4001;
const SECOND_PORT: u16 = 4002;

struct Setup {
    _dir: TempDir,
    mirror: PathBuf,
    second: PathBuf,
    reader: PathBuf,
    newsroom: PathBuf,
    name: &'static str,
}

fn setup(name: &'static str) -> Setup {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let (mirror, second, reader, newsroom) = (
        d.join("mirror"),
        d.join("second"),
        d.join("reader"),
        d.join("newsroom"),
    );
    ok(
        &mirror,
        &["newsroom", "init", "--name", name, "--dir", s(&newsroom)],
    );
    ok(
        &second,
        &["trust", "add", s(&newsroom.join(format!("{name}.toml")))],
    );
    Setup {
        _dir: dir,
        mirror,
        second,
        reader,
        newsroom,
        name,
    }
}

impl Setup {
    fn publisher_file(&self) -> PathBuf {
        self.newsroom.join(format!("{}.toml", self.name))
    }

    fn publish(&self, lab: &Lab, title: &str) {
        let article = self
            .newsroom
            .join(format!("{}.md", title.replace(' ', "-")));
        std::fs::write(
            &article,
            format!("---\ntitle: {title}\nlang: en\n---\nText.\n"),
        )
        .unwrap();
        lab.kolokol_ok(
            Side::Outside,
            &self.mirror,
            &["publish", s(&article), "--newsroom", s(&self.newsroom)],
        );
    }
}

fn listen(ip: std::net::Ipv4Addr, port: u16) -> String {
    format!("/ip4/{ip}/tcp/{port}")
}

/// Waits up to 60 s for the reader to hold `n` stories; the time taken.
fn held(lab: &Lab, reader: &Path, n: usize) -> Duration {
    let start = Instant::now();
    let mut status = String::new();
    while start.elapsed() < Duration::from_secs(60) {
        status = lab.kolokol_ok(Side::Inside, reader, &["status"]);
        if status.contains(&format!("stories held: {n}")) {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "{}: the reader did not hold {n} stories in 60 s; its status:\n{status}\nlogs:\n{}",
        lab.name(),
        lab.logs()
    );
}

#[test]
fn a_blocked_mirror_is_bypassed_by_the_signed_list_at_start_and_restart() {
    let Some(lab) = Lab::new("mirrors-list") else {
        return;
    };
    let n = setup("lab-listed");
    let m1 = lab.node(
        Side::Outside,
        &n.mirror,
        &[
            "--mirror",
            "--no-mdns",
            "--listen",
            &listen(OUTSIDE_IP, MIRROR_PORT),
        ],
    );
    let first = m1.tcp_addr(OUTSIDE_IP, MIRROR_PORT);
    let m2 = lab.node(
        Side::Outside,
        &n.second,
        &[
            "--mirror",
            "--no-mdns",
            "--listen",
            &listen(PROXY_IP, SECOND_PORT),
            "--bootstrap",
            &first,
        ],
    );
    let second = m2.tcp_addr(PROXY_IP, SECOND_PORT);
    // The newsroom lists both mirrors; its publisher file carries the list.
    ok(
        &n.mirror,
        &[
            "newsroom",
            "mirrors",
            "--dir",
            s(&n.newsroom),
            "--libp2p",
            &first,
            &second,
        ],
    );
    ok(&n.reader, &["trust", "add", s(&n.publisher_file())]);
    // The mirror the reader was told of is blocked.
    lab.censor(&Censor::new().block_ip(OUTSIDE_IP));
    let started = Instant::now();
    let mut reader = lab.node(
        Side::Inside,
        &n.reader,
        &["--no-mdns", "--bootstrap", &first],
    );
    n.publish(&lab, "Past the blocked mirror");
    let took = held(&lab, &n.reader, 1);
    report(&format!(
        "censor lab, {}: with the known mirror blocked, a story came through the second mirror of \
         the signed list {took:?} after its publication ({:?} after a cold start)",
        lab.name(),
        started.elapsed()
    ));

    // Restarted, still told only of the blocked one.
    reader.terminate();
    drop(reader);
    n.publish(&lab, "While the reader was away");
    let restarted = Instant::now();
    let _reader = lab.node(
        Side::Inside,
        &n.reader,
        &["--no-mdns", "--bootstrap", &first],
    );
    let took = held(&lab, &n.reader, 2);
    report(&format!(
        "censor lab, {}: after a restart, the story published meanwhile came through the listed \
         mirror {took:?} after the start ({:?} in all)",
        lab.name(),
        restarted.elapsed()
    ));
}

#[test]
fn a_block_lifted_while_the_reader_runs_lets_it_through() {
    let Some(lab) = Lab::new("mirrors-lift") else {
        return;
    };
    let n = setup("lab-lifted");
    ok(&n.reader, &["trust", "add", s(&n.publisher_file())]);
    let m1 = lab.node(
        Side::Outside,
        &n.mirror,
        &[
            "--mirror",
            "--no-mdns",
            "--listen",
            &listen(OUTSIDE_IP, MIRROR_PORT),
        ],
    );
    let first = m1.tcp_addr(OUTSIDE_IP, MIRROR_PORT);
    lab.censor(&Censor::new().block_ip(OUTSIDE_IP));
    let _reader = lab.node(
        Side::Inside,
        &n.reader,
        &["--no-mdns", "--bootstrap", &first],
    );
    n.publish(&lab, "Behind the block");
    std::thread::sleep(Duration::from_secs(15));
    assert!(
        lab.kolokol_ok(Side::Inside, &n.reader, &["status"])
            .contains("stories held: 0"),
        "nothing crosses while the block stands"
    );
    lab.uncensor();
    let took = held(&lab, &n.reader, 1);
    report(&format!(
        "censor lab, {}: a block of the only mirror lifted after 15 s; the reader redialed and \
         held the story {took:?} after the lift",
        lab.name()
    ));
}
