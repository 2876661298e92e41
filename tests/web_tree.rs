//! The plain-HTTPS channel with a real web server: a newsroom's store
//! exported as a web tree (`kolokol export --web`), served as static files
//! by Debian's nginx over TLS, read by a quiet reader's node that knows no
//! peer at all. A damaged file on the host is refused and, once the host
//! serves it right again, read.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::process::{
    Killed, NodeProcess, free_port, newsroom_and_reader, ok, publish, s, wait_until,
};
use common::tls::certs;

/// nginx serving `root` as the tree at `/tree/` over TLS, as
/// docs/censorship.md sets one up.
fn nginx_conf(dir: &Path, port: u16, root: &Path, certs: &common::tls::Certs) -> String {
    common::nginx::conf(
        dir,
        &format!(
            "        listen 127.0.0.1:{port} ssl;\n        server_name localhost;\n        \
             ssl_certificate {};\n        ssl_certificate_key {};\n{}",
            certs.cert.display(),
            certs.key.display(),
            common::nginx::tree_locations(root)
        ),
    )
}

/// Publishes a story with an image of `bytes` incompressible bytes.
fn publish_with_image(data: &Path, newsroom: &Path, title: &str, bytes: usize) {
    let article = newsroom.join("with-image.md");
    std::fs::write(
        &article,
        format!("---\ntitle: {title}\nlang: en\n---\nSee the photo.\n\n![a photo](photo.jpg)\n"),
    )
    .unwrap();
    let image = newsroom.join("photo.jpg");
    let data_bytes: Vec<u8> = (0..bytes as u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect();
    std::fs::write(&image, data_bytes).unwrap();
    ok(
        data,
        &[
            "publish",
            s(&article),
            "--newsroom",
            s(newsroom),
            "--image",
            s(&image),
        ],
    );
}

/// nginx serving `tree` at `/tree/` on a free port, once it listens;
/// `None` (the test skipped, and saying so) without nginx.
fn nginx(dir: &Path, tree: &Path, certs: &common::tls::Certs) -> Option<(Killed, u16)> {
    let web = dir.join("nginx");
    std::fs::create_dir_all(&web).unwrap();
    let port = free_port();
    std::fs::write(web.join("nginx.conf"), nginx_conf(&web, port, tree, certs)).unwrap();
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
            "nginx is not installed (Debian's nginx-light): the web tree test is skipped",
        );
        return None;
    };
    let nginx = Killed(child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until("nginx to listen", || TcpStream::connect(addr).is_ok());
    Some((nginx, port))
}

fn held(reader: &Path, n: usize) -> bool {
    ok(reader, &["status"]).contains(&format!("stories held: {n}"))
}

#[test]
fn a_quiet_reader_reads_a_web_tree_from_nginx_and_refuses_a_damaged_file() {
    let dir = tempfile::TempDir::new().unwrap();
    let certs = certs(&dir.path().join("certs"), "localhost");
    let (newsroom_data, reader, newsroom) =
        newsroom_and_reader(dir.path(), "newsroom-data", "reader", "web-news");
    publish(&newsroom_data, &newsroom, "A story over plain HTTPS");
    // 300 KiB: well past what travels inline, so read in checked pieces.
    publish_with_image(
        &newsroom_data,
        &newsroom,
        "A story with a photo",
        300 * 1024,
    );
    let tree = dir.path().join("tree");
    let out = ok(&newsroom_data, &["export", "--web", s(&tree)]);
    assert!(out.contains("web tree"), "{out}");
    assert!(tree.join("index.kolokol").is_file());

    // The image's blob, damaged on the host: one byte in its middle.
    let image = std::fs::read_dir(tree.join("o"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let good = std::fs::read(&image).unwrap();
    assert!(good.len() >= 300 * 1024, "{}", good.len());
    let mut bad = good.clone();
    bad[150 * 1024] ^= 0xFF;
    std::fs::write(&image, &bad).unwrap();

    let Some((_nginx, port)) = nginx(dir.path(), &tree, &certs) else {
        return;
    };

    std::fs::write(
        reader.join("config.toml"),
        "[web]\npoll_secs = 1\nstall_secs = 2\n",
    )
    .unwrap();
    let started = Instant::now();
    let _r = NodeProcess::start_with(
        &reader,
        &[
            "--no-mdns",
            "--web-source",
            &format!("https://localhost:{port}/tree/"),
            "--tls-root",
            s(&certs.ca),
        ],
    );
    // The story that travels inline is kept; the one whose photo the host
    // damaged is not.
    wait_until("the first story from the web tree", || held(&reader, 1));
    eprintln!("a story came from the web tree in {:?}", started.elapsed());
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(held(&reader, 1), "{}", ok(&reader, &["status"]));

    // The host serves the photo right again: it is read at the next poll.
    std::fs::write(&image, &good).unwrap();
    wait_until("the story with its photo", || held(&reader, 2));

    // A later story, exported incrementally, arrives too.
    publish(&newsroom_data, &newsroom, "Breaking, later");
    let out = ok(&newsroom_data, &["export", "--web", s(&tree)]);
    assert!(out.contains("1 new segments"), "{out}");
    let later = Instant::now();
    wait_until("the later story", || held(&reader, 3));
    eprintln!(
        "a later story came in {:?} after its export",
        later.elapsed()
    );
}

#[test]
fn a_web_tree_named_only_by_the_signed_mirror_list_is_read() {
    let dir = tempfile::TempDir::new().unwrap();
    let certs = certs(&dir.path().join("certs"), "localhost");
    let newsroom_data = dir.path().join("newsroom-data");
    let reader = dir.path().join("reader");
    let newsroom = dir.path().join("newsroom");
    ok(
        &newsroom_data,
        &[
            "newsroom",
            "init",
            "--name",
            "listed-web",
            "--dir",
            s(&newsroom),
        ],
    );
    publish(&newsroom_data, &newsroom, "Found through the list");
    let tree = dir.path().join("tree");
    ok(&newsroom_data, &["export", "--web", s(&tree)]);
    let Some((_nginx, port)) = nginx(dir.path(), &tree, &certs) else {
        return;
    };
    let url = format!("https://localhost:{port}/tree/");
    ok(
        &newsroom_data,
        &[
            "newsroom",
            "mirrors",
            "--dir",
            s(&newsroom),
            "--https",
            &url,
        ],
    );
    // The reader is handed the publisher file, list inside, and nothing
    // else: no peer, no web source of its own.
    ok(
        &reader,
        &["trust", "add", s(&newsroom.join("listed-web.toml"))],
    );
    std::fs::write(reader.join("config.toml"), "[web]\npoll_secs = 1\n").unwrap();
    let _r = NodeProcess::start_with(&reader, &["--no-mdns", "--tls-root", s(&certs.ca)]);
    wait_until("the story from the listed web tree", || held(&reader, 1));
}

#[test]
fn a_blob_missing_from_the_host_skips_its_bundle_not_the_tree() {
    let dir = tempfile::TempDir::new().unwrap();
    let certs = certs(&dir.path().join("certs"), "localhost");
    let (newsroom_data, reader, newsroom) =
        newsroom_and_reader(dir.path(), "newsroom-data", "reader", "web-gaps");
    publish_with_image(
        &newsroom_data,
        &newsroom,
        "A photo the host lost",
        100 * 1024,
    );
    publish(&newsroom_data, &newsroom, "A later story");
    let tree = dir.path().join("tree");
    ok(&newsroom_data, &["export", "--web", s(&tree)]);
    // The host lost the photo (the largest file) and its outboard.
    let image = std::fs::read_dir(tree.join("o"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    std::fs::remove_file(&image).unwrap();
    let Some((_nginx, port)) = nginx(dir.path(), &tree, &certs) else {
        return;
    };
    std::fs::write(reader.join("config.toml"), "[web]\npoll_secs = 1\n").unwrap();
    let _r = NodeProcess::start_with(
        &reader,
        &[
            "--no-mdns",
            "--web-source",
            &format!("https://localhost:{port}/tree/"),
            "--tls-root",
            s(&certs.ca),
        ],
    );
    wait_until("the later story", || held(&reader, 1));
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(held(&reader, 1), "{}", ok(&reader, &["status"]));
}

#[test]
fn the_web_channel_goes_through_the_proxy_option() {
    let dir = tempfile::TempDir::new().unwrap();
    let certs = certs(&dir.path().join("certs"), "localhost");
    let (newsroom_data, reader, newsroom) =
        newsroom_and_reader(dir.path(), "newsroom-data", "reader", "web-proxied");
    publish(&newsroom_data, &newsroom, "Through the proxy");
    let tree = dir.path().join("tree");
    ok(&newsroom_data, &["export", "--web", s(&tree)]);
    let Some((_nginx, port)) = nginx(dir.path(), &tree, &certs) else {
        return;
    };
    let (proxy, asked) = common::connect::connect_proxy();
    std::fs::write(reader.join("config.toml"), "[web]\npoll_secs = 1\n").unwrap();
    let _r = NodeProcess::start_with(
        &reader,
        &[
            "--no-mdns",
            "--proxy",
            &format!("http://{proxy}"),
            "--web-source",
            &format!("https://localhost:{port}/tree/"),
            "--tls-root",
            s(&certs.ca),
        ],
    );
    wait_until("the story through the proxy", || held(&reader, 1));
    let asked = asked.lock().unwrap();
    assert!(
        asked.iter().any(|t| *t == format!("localhost:{port}")),
        "the web source's name went to the proxy unresolved: {asked:?}"
    );
}
