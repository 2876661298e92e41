//! The censor lab (tests/common/lab) against the plain-HTTPS channel: a
//! mirror keeps a web tree of its store (`[web] export_dir`), Debian's
//! nginx serves it on 443 outside, and a reader inside that knows no peer
//! at all, only the tree's address, reads the stories through a censor
//! that lets nothing but TLS on 443 pass, and then also through flows the
//! censor freezes after 16 KiB from the server, as Russia's TSPU does to
//! foreign hosting. Each prints its time.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::lab::*;
use common::process::{Killed, newsroom_and_reader};
use common::tls::{Certs, certs};
use tempfile::TempDir;

const WEB_NAME: &str = "web.lab";

struct Setup {
    _dir: TempDir,
    mirror: PathBuf,
    reader: PathBuf,
    newsroom: PathBuf,
    certs: Certs,
    tree: PathBuf,
}

fn setup() -> Setup {
    let dir = TempDir::new().unwrap();
    let (mirror, reader, newsroom) =
        newsroom_and_reader(dir.path(), "mirror", "reader", "lab-web-news");
    let certs = certs(&dir.path().join("certs"), WEB_NAME);
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::create_dir_all(&mirror).unwrap();
    std::fs::create_dir_all(&reader).unwrap();
    std::fs::write(
        mirror.join("config.toml"),
        format!(
            "[web]\nexport_dir = {:?}\nexport_secs = 1\n",
            tree.display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(
        reader.join("config.toml"),
        "[web]\npoll_secs = 1\nstall_secs = 2\n",
    )
    .unwrap();
    Setup {
        _dir: dir,
        mirror,
        reader,
        newsroom,
        certs,
        tree,
    }
}

/// nginx in OUTSIDE on 443, serving `tree` at `/tree/`.
fn nginx(lab: &Lab, s: &Setup) -> Killed {
    let d = lab.dir().join("nginx");
    std::fs::create_dir_all(&d).unwrap();
    let conf = common::nginx::conf(
        &d,
        &format!(
            "        listen {OUTSIDE_IP}:443 ssl;\n        server_name {WEB_NAME};\n        \
             ssl_certificate {};\n        ssl_certificate_key {};\n{}",
            s.certs.cert.display(),
            s.certs.key.display(),
            common::nginx::tree_locations(&s.tree)
        ),
    );
    std::fs::write(d.join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.arg("-p").arg(&d).arg("-c").arg(d.join("nginx.conf"));
    let nginx = Killed(lab.spawn(Side::Outside, cmd));
    let at = std::net::SocketAddr::from(std::net::SocketAddrV4::new(OUTSIDE_IP, 443));
    wait_for("nginx in OUTSIDE", LAB_DEADLINE, || {
        lab.in_ns(Side::Outside, || std::net::TcpStream::connect(at).is_ok())
    });
    nginx
}

fn article(s: &Setup, image_bytes: usize) -> Vec<String> {
    let article = s.newsroom.join("story.md");
    std::fs::write(
        &article,
        "---\ntitle: Past the border by plain HTTPS\nlang: en\n---\nText.\n",
    )
    .unwrap();
    let mut args = vec![
        "publish".to_owned(),
        article.display().to_string(),
        "--newsroom".to_owned(),
        s.newsroom.display().to_string(),
    ];
    if image_bytes > 0 {
        let image = s.newsroom.join("photo.jpg");
        let bytes: Vec<u8> = (0..image_bytes as u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        std::fs::write(&image, bytes).unwrap();
        args.extend(["--image".to_owned(), image.display().to_string()]);
    }
    args
}

/// Publishes at the mirror and waits (up to `within`) for the reader,
/// which knows only the web tree, to hold the story.
fn crosses(lab: &Lab, s: &Setup, image_bytes: usize, within: Duration) -> Duration {
    let _mirror = lab.node(Side::Outside, &s.mirror, &["--mirror", "--no-mdns"]);
    let _nginx = nginx(lab, s);
    lab.hosts(Side::Inside, &[(WEB_NAME, OUTSIDE_IP)]);
    let source = format!("https://{WEB_NAME}/tree/");
    let ca = s.certs.ca.display().to_string();
    let _reader = lab.node(
        Side::Inside,
        &s.reader,
        &[
            "-v",
            "--no-mdns",
            "--web-source",
            &source,
            "--tls-root",
            &ca,
        ],
    );
    let publish = article(s, image_bytes);
    let publish: Vec<&str> = publish.iter().map(String::as_str).collect();
    lab.kolokol_ok(Side::Outside, &s.mirror, &publish);
    let published = Instant::now();
    let mut status = String::new();
    while published.elapsed() < within {
        status = lab.kolokol_ok(Side::Inside, &s.reader, &["status"]);
        if status.contains("stories held: 1") {
            return published.elapsed();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "{}: the story did not reach the reader in {within:?}; its status:\n{status}\nlogs:\n{}",
        lab.name(),
        lab.logs()
    );
}

fn tls_only(lab: &Lab) {
    lab.censor(&Censor::new().drop_udp().tls_only_on_443());
}

#[test]
fn only_a_web_tree_on_443_is_reachable() {
    let Some(lab) = Lab::new("web-only") else {
        return;
    };
    let s = setup();
    tls_only(&lab);
    let took = crosses(&lab, &s, 0, Duration::from_secs(60));
    report(&format!(
        "censor lab, {}: a story reached a reader that knows only a web tree, through TLS \
         only on 443, {took:?} after its publication",
        lab.name()
    ));
}

#[test]
fn a_1_mib_image_crosses_flows_frozen_after_16_kib() {
    let Some(lab) = Lab::new("web-frozen") else {
        return;
    };
    let s = setup();
    tls_only(&lab);
    lab.shape(&Shape {
        freeze_after: Some(16 * 1024),
        ..Shape::default()
    })
    .unwrap();
    let took = crosses(&lab, &s, 1024 * 1024, Duration::from_secs(60));
    // The flows did freeze, and the reader learned at what count.
    let logs = lab.logs();
    assert!(logs.contains("freeze after about"), "{logs}");
    report(&format!(
        "censor lab, {}: a story with a 1 MiB image crossed flows frozen after 16 KiB from the \
         server {took:?} after its publication",
        lab.name()
    ));
}
