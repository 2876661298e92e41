//! A reader's first steps with the built binary: a newsroom's publisher
//! file handed over as text, a QR code or a URL; `trust add` from each;
//! `peer add` to a running node; `status` with no node; the gateway's
//! "Add a newsroom" page.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::process::{BIN, NodeProcess, s, wait_until};
use kolokol::trust::share::{TEXT_PREFIX, decode_text};
use tempfile::TempDir;

/// Runs kolokol on `data` with the newsroom folder `newsroom`, `stdin`
/// written to its standard input.
fn run_in(data: &Path, newsroom: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("KOLOKOL_NEWSROOM", newsroom)
        .env_remove("RUST_LOG")
        .env_remove("KOLOKOL_PASSPHRASE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

struct Env {
    tmp: TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            tmp: TempDir::new().unwrap(),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn run(&self, data: &str, args: &[&str], stdin: Option<&str>) -> Output {
        run_in(&self.path(data), &self.path("newsroom"), args, stdin)
    }

    fn ok(&self, data: &str, args: &[&str]) -> String {
        self.ok_in(data, args, None)
    }

    fn ok_in(&self, data: &str, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(data, args, stdin);
        assert!(
            out.status.success(),
            "kolokol {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, data: &str, args: &[&str]) -> String {
        let out = self.run(data, args, None);
        assert_eq!(out.status.code(), Some(1), "kolokol {args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    /// A newsroom `name` with a mirror address, and its text.
    fn newsroom(&self, name: &str, mirror: &str) -> String {
        self.ok(
            "newsroom-data",
            &["newsroom", "init", "--name", name, "--mirror", mirror],
        );
        let text = self.ok("newsroom-data", &["newsroom", "share"]);
        text.trim().to_owned()
    }

    fn public_file(&self, name: &str) -> PathBuf {
        self.path("newsroom").join(format!("{name}.toml"))
    }
}

const PEER: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";

fn mirror_addr() -> String {
    format!("/ip4/192.0.2.7/tcp/4001/p2p/{PEER}")
}

/// The value after `label` on the line starting with it.
fn line_value(out: &str, label: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{out}"))
        .trim()
        .to_owned()
}

#[test]
fn the_text_round_trips_and_names_the_mirrors() {
    let env = Env::new();
    let text = env.newsroom("text-news", &mirror_addr());
    assert!(text.starts_with(TEXT_PREFIX), "{text}");
    assert!(!text.contains(char::is_whitespace), "one line: {text}");
    // The text holds the publisher file's bytes, exactly.
    let file = std::fs::read_to_string(env.public_file("text-news")).unwrap();
    assert_eq!(decode_text(&text).unwrap(), file);
    // The file carries the mirror, in its signed list.
    let info = env.ok("newsroom-data", &["newsroom", "info"]);
    assert!(info.contains(&mirror_addr()), "{info}");

    let out = env.ok("reader", &["trust", "add", &text]);
    assert!(out.contains("trusted text-news"), "{out}");
    assert!(
        out.contains(&format!("mirror:      {}", mirror_addr())),
        "{out}"
    );
    // The fingerprint people compare aloud is the newsroom's own.
    assert_eq!(
        line_value(&out, "fingerprint:"),
        line_value(&info, "fingerprint:")
    );
    let fp = line_value(&info, "fingerprint:");
    assert_eq!(fp.split(' ').count(), 8, "{fp}");
    let trusted = std::fs::read_to_string(env.path("reader/trust/text-news.toml")).unwrap();
    assert!(trusted.contains("mirror_list"), "{trusted}");

    // The mirrors changed later: the file, and so the text, carry the new ones.
    let second = format!("/ip4/192.0.2.8/tcp/4001/p2p/{PEER}");
    env.ok(
        "newsroom-data",
        &["newsroom", "mirrors", "--mirror", &second],
    );
    let info = env.ok("newsroom-data", &["newsroom", "info"]);
    assert!(
        info.contains(&second) && !info.contains(&mirror_addr()),
        "{info}"
    );
    let again = env.ok("newsroom-data", &["newsroom", "share"]);
    assert_ne!(again.trim(), text);
    let shown = env.ok("other-reader", &["trust", "add", "--dry-run", again.trim()]);
    assert!(shown.contains(&second), "{shown}");
}

#[test]
fn a_damaged_text_is_refused_and_nothing_is_trusted() {
    let env = Env::new();
    let text = env.newsroom("damaged-news", &mirror_addr());
    // One character changed, in the middle.
    let mut bytes = text.clone().into_bytes();
    let i = TEXT_PREFIX.len() + (bytes.len() - TEXT_PREFIX.len()) / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let damaged = String::from_utf8(bytes).unwrap();
    let err = env.fails("reader", &["trust", "add", &damaged]);
    assert!(err.contains("checksum"), "{err}");
    // Cut short.
    let err = env.fails("reader", &["trust", "add", &text[..text.len() / 2]]);
    assert!(err.contains("publisher text"), "{err}");
    // Not a publisher file at all.
    let junk = env.path("junk.toml");
    std::fs::write(&junk, "hello = 1\n").unwrap();
    let err = env.fails("reader", &["trust", "add", s(&junk)]);
    assert!(err.contains("not a valid publisher file"), "{err}");
    // Too large, said before it is decoded.
    let huge = format!("{TEXT_PREFIX}{}", "A".repeat(200_000));
    let big = env.path("big.txt");
    std::fs::write(&big, &huge).unwrap();
    let err = env.fails("reader", &["trust", "add", s(&big)]);
    assert!(err.contains("too large"), "{err}");
    let list = env.ok("reader", &["trust", "list"]);
    assert!(!list.contains("damaged-news"), "{list}");
}

/// A reader whose node dials through a proxy fetches a publisher file's
/// URL through it too: with a proxy that answers, the file comes; with
/// one where nothing answers, given on the command line or in
/// config.toml, the fetch fails rather than going around it.
#[test]
fn trust_add_fetches_a_url_through_the_proxy_and_never_around_it() {
    let env = Env::new();
    env.newsroom("proxied-news", &mirror_addr());
    let file = env.public_file("proxied-news");
    let server = Server::start(vec![(
        "/proxied-news.toml",
        200,
        std::fs::read(&file).unwrap(),
    )]);
    // Asked by name: the proxy resolves it.
    let url = server
        .url("/proxied-news.toml")
        .replace("127.0.0.1", "localhost");
    let dead = format!("socks5h://127.0.0.1:{}", common::process::free_port());

    // Nothing answers at the proxy: no fetch, nothing added.
    let err = env.fails("dead", &["trust", "add", &url, "--proxy", &dead]);
    assert!(
        err.contains("proxied-news.toml") || err.contains("fetching"),
        "{err}"
    );
    assert!(!env.path("dead/trust/proxied-news.toml").exists());
    // The same from config.toml.
    std::fs::create_dir_all(env.path("configured")).unwrap();
    std::fs::write(
        env.path("configured/config.toml"),
        format!("[net]\nproxy = \"{dead}\"\n"),
    )
    .unwrap();
    let err = env.fails("configured", &["trust", "add", &url]);
    assert!(err.contains("fetching"), "{err}");
    assert!(!env.path("configured/trust/proxied-news.toml").exists());
    // Without a proxy the reader is told the fetch went directly.
    let direct = env.run("direct", &["trust", "add", &url, "--dry-run"], None);
    assert!(direct.status.success());
    assert!(
        String::from_utf8_lossy(&direct.stderr).contains("directly"),
        "{direct:?}"
    );

    let port = common::process::free_port();
    let Ok(child) = Command::new("microsocks")
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        common::lab::skip("microsocks is not installed: the SOCKS5 half is skipped");
        return;
    };
    let _socks = common::process::Killed(child);
    wait_until("microsocks to listen", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let proxy = format!("socks5h://127.0.0.1:{port}");
    let out = env.run("through", &["trust", "add", &url, "--proxy", &proxy], None);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("trusted proxied-news"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("directly"));
    assert!(env.path("through/trust/proxied-news.toml").exists());
}

#[test]
fn trust_add_takes_a_file_stdin_and_a_url() {
    let env = Env::new();
    let text = env.newsroom("many-news", &mirror_addr());
    let file = env.public_file("many-news");
    let want = line_value(
        &env.ok("newsroom-data", &["newsroom", "info"]),
        "fingerprint:",
    );

    let out = env.ok("from-file", &["trust", "add", s(&file)]);
    assert_eq!(line_value(&out, "fingerprint:"), want);
    assert!(out.contains("trusted many-news"), "{out}");

    // The text on standard input, wrapped as a chat app might.
    let wrapped: String = text
        .chars()
        .enumerate()
        .flat_map(|(i, c)| if i % 64 == 63 { vec![c, '\n'] } else { vec![c] })
        .collect();
    let out = env.ok_in("from-stdin", &["trust", "add", "-"], Some(&wrapped));
    assert_eq!(line_value(&out, "fingerprint:"), want);
    assert!(env.path("from-stdin/trust/many-news.toml").exists());

    // A saved text, as a file.
    let saved = env.path("many-news.txt");
    std::fs::write(&saved, format!("{text}\n")).unwrap();
    let out = env.ok("from-saved", &["trust", "add", s(&saved)]);
    assert_eq!(line_value(&out, "fingerprint:"), want);

    // A URL of the file and one of the text, from a server on loopback.
    let body = std::fs::read(&file).unwrap();
    let server = Server::start(vec![
        ("/many-news.toml", 200, body),
        ("/many-news.txt", 200, text.clone().into_bytes()),
    ]);
    let out = env.ok(
        "from-url",
        &["trust", "add", &server.url("/many-news.toml")],
    );
    assert_eq!(line_value(&out, "fingerprint:"), want);
    let out = env.ok(
        "from-url-text",
        &["trust", "add", &server.url("/many-news.txt")],
    );
    assert_eq!(line_value(&out, "fingerprint:"), want);
    let err = env.fails("from-missing", &["trust", "add", &server.url("/gone")]);
    assert!(err.contains("status 404"), "{err}");
    assert!(!env.path("from-missing/trust/many-news.toml").exists());

    // --dry-run shows and adds nothing.
    let out = env.ok("dry", &["trust", "add", "--dry-run", &text]);
    assert_eq!(line_value(&out, "fingerprint:"), want);
    assert!(!env.path("dry/trust/many-news.toml").exists());
}

#[test]
fn the_qr_code_is_a_png_that_reads_back_as_the_text() {
    let env = Env::new();
    env.newsroom("qr-news", &mirror_addr());
    let png_path = env.path("qr-news.png");
    let text = env.ok(
        "newsroom-data",
        &["newsroom", "share", "--qr", s(&png_path)],
    );
    let text = text.trim();
    let file = std::fs::File::open(&png_path).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (w, h) = (info.width as usize, info.height as usize);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| pixels[y * w + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    let (_, content) = grids[0].decode().unwrap();
    assert_eq!(content, text);
    // And what it reads is trusted like the text.
    let out = env.ok("reader", &["trust", "add", &content]);
    assert!(out.contains("trusted qr-news"), "{out}");
}

/// Every file under `dir`, with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.push((p.clone(), Vec::new()));
                todo.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn status_with_no_node_says_how_to_start_one_and_creates_nothing() {
    let env = Env::new();
    // No data directory at all: it stays absent.
    let out = env.run("absent", &["status"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no node is running"), "{err}");
    assert!(err.contains("kolokol node"), "{err}");
    assert!(!err.contains("  "), "evenly spaced: {err}");
    assert!(!env.path("absent").exists());
    // A data directory with a trust list, and a stale node.toml of a
    // node that stopped: unchanged, byte for byte.
    env.ok(
        "used",
        &[
            "trust",
            "add",
            s(&Path::new(env!("CARGO_MANIFEST_DIR")).join("keys/demo/kolokol-demo.toml")),
        ],
    );
    std::fs::write(
        env.path("used/node.toml"),
        "peer_id = \"x\"\nlisten = []\ncontrol = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let before = snapshot(&env.path("used"));
    let out = env.run("used", &["status"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(snapshot(&env.path("used")), before);
    assert!(!env.path("used/store").exists());
}

#[test]
fn peer_add_makes_a_running_node_connect() {
    let env = Env::new();
    let err = env.fails("lonely", &["peer", "add", &mirror_addr()]);
    assert!(err.contains("no node is running"), "{err}");
    let err = env.fails("lonely", &["peer", "add", "/ip4/127.0.0.1/tcp/1"]);
    assert!(err.contains("/p2p/"), "{err}");

    let a = NodeProcess::start(&env.path("a"), &[]);
    let mut b = NodeProcess::start(&env.path("b"), &[]);
    let status = env.ok("b", &["status"]);
    assert!(status.contains("peers:     0"), "{status}");
    assert!(
        status.contains("advice: no peers are connected"),
        "{status}"
    );
    assert!(status.contains("peer add"), "{status}");
    assert!(
        status.contains("advice: no newsroom is trusted"),
        "{status}"
    );
    for advice in status.lines().filter(|l| l.starts_with("advice:")) {
        assert!(!advice.contains("  "), "one line, evenly spaced: {advice}");
    }
    let out = env.ok("b", &["peer", "add", &a.addr()]);
    assert!(out.contains("dialing"), "{out}");
    wait_until("b to connect to a", || {
        env.ok("b", &["status"]).contains("peers:     1")
    });
    let status = env.ok("b", &["status"]);
    assert!(!status.contains("advice: no peers"), "{status}");
    // Kept in the address book: after a restart, with no --bootstrap, it
    // is dialed again.
    assert!(b.terminate().success());
    drop(b);
    let _b = NodeProcess::start(&env.path("b"), &[]);
    wait_until("b, restarted, to connect to a again", || {
        env.ok("b", &["status"]).contains("peers:     1")
    });
}

#[test]
fn trust_add_reaches_a_running_node_and_the_gateway_page_adds_after_a_preview() {
    let env = Env::new();
    let mirror = NodeProcess::start(&env.path("mirror"), &[]);
    // The newsroom names the running mirror; the reader's node, started
    // knowing no peer, dials it once the file is trusted.
    let text = env.newsroom("live-news", &mirror.addr());
    let _reader = NodeProcess::start(&env.path("reader"), &[]);
    let out = env.ok("reader", &["trust", "add", &text]);
    assert!(out.contains("running node"), "{out}");
    wait_until("the reader to dial the newsroom's mirror", || {
        env.ok("reader", &["status"]).contains("peers:     1")
    });
    let status = env.ok("reader", &["status"]);
    assert!(status.contains("publisher live-news"), "{status}");

    // The gateway: a second newsroom, added from its page.
    env.ok(
        "other-data",
        &[
            "newsroom",
            "init",
            "--name",
            "page-news",
            "--dir",
            s(&env.path("other")),
        ],
    );
    let other = env.ok(
        "other-data",
        &["newsroom", "share", "--dir", s(&env.path("other"))],
    );
    let other = other.trim();
    let gateway = gateway_of(&env.path("reader"));
    let origin = format!("http://{gateway}");
    let home = http(&gateway, "GET", "/", None, "");
    assert!(home.body.contains("href=\"/add\""), "{}", home.body);
    let page = http(&gateway, "GET", "/add", None, "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("textarea"), "{}", page.body);
    assert!(
        page.head.contains("referrer-policy: same-origin"),
        "{}",
        page.head
    );
    let form = format!("step=preview&text={}", percent(other));
    // From another site, or with no origin: refused.
    for o in [Some("http://evil.example"), None, Some("null")] {
        let r = http(&gateway, "POST", "/add", o, &form);
        assert_eq!(r.status, 403, "{o:?}");
    }
    let preview = http(&gateway, "POST", "/add", Some(&origin), &form);
    assert_eq!(preview.status, 200, "{}", preview.body);
    let fp = line_value(
        &env.ok(
            "other-data",
            &["newsroom", "info", "--dir", s(&env.path("other"))],
        ),
        "fingerprint:",
    );
    assert!(preview.body.contains(&fp), "{}", preview.body);
    assert!(preview.body.contains("page-news"), "{}", preview.body);
    // Previewing added nothing.
    assert!(!env.ok("reader", &["trust", "list"]).contains("page-news"));
    let confirm = format!("step=confirm&text={}", percent(other));
    let added = http(&gateway, "POST", "/add", Some(&origin), &confirm);
    assert_eq!(added.status, 200, "{}", added.body);
    assert!(env.ok("reader", &["trust", "list"]).contains("page-news"));
    // A damaged text is refused with the reason.
    let bad = http(
        &gateway,
        "POST",
        "/add",
        Some(&origin),
        &format!("step=preview&text={}", percent(&other[..other.len() - 3])),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("publisher text"), "{}", bad.body);
    // The publisher file itself, uploaded with the text box empty: the
    // same preview as its text.
    let toml = kolokol::trust::share::decode_text(other).unwrap();
    let boundary = "kolokol-test-boundary";
    let upload = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"step\"\r\n\r\npreview\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"page-news.toml\"\r\n\
         Content-Type: application/toml\r\n\r\n{toml}\r\n--{boundary}--\r\n"
    );
    let r = http_typed(
        &gateway,
        "/add",
        Some(&origin),
        &format!("multipart/form-data; boundary={boundary}"),
        &upload,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(&fp), "{}", r.body);
    // An upload that is not a publisher file is refused with the reason.
    let junk = upload.replace(&toml, "not a publisher file");
    let r = http_typed(
        &gateway,
        "/add",
        Some(&origin),
        &format!("multipart/form-data; boundary={boundary}"),
        &junk,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // By URL: the node fetches the file from where the newsroom put it.
    let server = Server::start(vec![
        ("/page-news.toml", 200, toml.clone().into_bytes()),
        ("/gone", 404, b"gone".to_vec()),
    ]);
    let by_url = format!(
        "step=preview&text=&url={}",
        percent(&server.url("/page-news.toml"))
    );
    let r = http(&gateway, "POST", "/add", Some(&origin), &by_url);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(&fp), "{}", r.body);
    let gone = format!("step=preview&text=&url={}", percent(&server.url("/gone")));
    let r = http(&gateway, "POST", "/add", Some(&origin), &gone);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("404"), "{}", r.body);
    // A body over the bound is refused before it is read whole.
    // (A server that stops reading may reset the connection before its
    // answer is read: status 0 here. Taken, the text would be a 400.)
    let huge = format!("step=preview&text={}", "A".repeat(2_000_000));
    let r = http(&gateway, "POST", "/add", Some(&origin), &huge);
    assert!(r.status == 413 || r.status == 0, "{}", r.status);
}

/// The gateway address of the node running on `data`.
fn gateway_of(data: &Path) -> String {
    let text = std::fs::read_to_string(data.join("node.toml")).unwrap();
    let file: kolokol::node::control::NodeFile = toml::from_str(&text).unwrap();
    file.gateway.unwrap()
}

fn percent(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

fn http(addr: &str, method: &str, path: &str, origin: Option<&str>, body: &str) -> Reply {
    request(
        addr,
        method,
        path,
        origin,
        "application/x-www-form-urlencoded",
        body,
    )
}

/// A POST of `body` as `content_type`.
fn http_typed(
    addr: &str,
    path: &str,
    origin: Option<&str>,
    content_type: &str,
    body: &str,
) -> Reply {
    request(addr, "POST", path, origin, content_type, body)
}

fn request(
    addr: &str,
    method: &str,
    path: &str,
    origin: Option<&str>,
    content_type: &str,
    body: &str,
) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(o) = origin {
        req.push_str(&format!("Origin: {o}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!("Content-Type: {content_type}\r\n"));
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    // A refusal may come before the whole body is sent.
    let _ = stream.write_all(req.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Reply {
            status: 0,
            head: String::new(),
            body: text,
        };
    };
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        head: head.to_lowercase(),
        body: body.to_owned(),
    }
}

/// A tiny HTTP server on loopback answering fixed paths, one request per
/// connection, until dropped.
struct Server {
    addr: String,
    _thread: std::thread::JoinHandle<()>,
}

impl Server {
    fn start(routes: Vec<(&'static str, u16, Vec<u8>)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                let (status, body) = routes
                    .iter()
                    .find(|(p, _, _)| *p == path)
                    .map(|(_, st, b)| (*st, b.clone()))
                    .unwrap_or((404, b"not found".to_vec()));
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        Self {
            addr,
            _thread: thread,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}
