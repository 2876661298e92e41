//! `kolokol publish --feed`: feeds served by a small HTTP server inside the
//! test, on loopback, imported by the built binary.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::{BIN, NodeProcess, wait_until};
use kolokol::proto::Manifest;
use kolokol::proto::bundle::BundleFile;
use tempfile::TempDir;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// One served resource.
#[derive(Clone)]
struct Resource {
    status: u16,
    /// Header lines besides Content-Length and Connection.
    headers: Vec<String>,
    body: Vec<u8>,
    /// Leave out Content-Length, so only the end of the stream ends the body.
    no_length: bool,
}

/// A tiny HTTP/1.1 server on 127.0.0.1:0 answering GETs from a table that
/// the test may change between runs, and counting requests per path.
struct Server {
    base: String,
    routes: Arc<Mutex<HashMap<String, Resource>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes: Arc<Mutex<HashMap<String, Resource>>> = Arc::default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (r, h) = (routes.clone(), hits.clone());
        // Lives until the test process ends; each connection is answered
        // in turn (the importer fetches one thing at a time).
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let res = r.lock().unwrap().get(&path).cloned().unwrap_or(Resource {
                    status: 404,
                    headers: vec!["Content-Type: text/plain".into()],
                    body: b"not found".to_vec(),
                    no_length: false,
                });
                // Counted after the answer is chosen, so a test that saw a hit
                // knows which answer it got.
                *h.lock().unwrap().entry(path.clone()).or_default() += 1;
                let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", res.status);
                for line in &res.headers {
                    head.push_str(line);
                    head.push_str("\r\n");
                }
                if !res.no_length {
                    head.push_str(&format!("Content-Length: {}\r\n", res.body.len()));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&res.body);
            }
        });
        Self { base, routes, hits }
    }

    fn put(&self, path: &str, res: Resource) {
        self.routes.lock().unwrap().insert(path.to_owned(), res);
    }

    fn serve(&self, path: &str, ctype: &str, body: impl Into<Vec<u8>>) {
        self.put(
            path,
            Resource {
                status: 200,
                headers: vec![format!("Content-Type: {ctype}")],
                body: body.into(),
                no_length: false,
            },
        );
    }

    fn serve_status(&self, path: &str, status: u16) {
        self.put(
            path,
            Resource {
                status,
                headers: vec!["Content-Type: text/plain".into()],
                body: b"error".to_vec(),
                no_length: false,
            },
        );
    }

    fn redirect(&self, path: &str, location: &str) {
        self.put(
            path,
            Resource {
                status: 302,
                headers: vec![format!("Location: {location}")],
                body: Vec::new(),
                no_length: false,
            },
        );
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

struct Env {
    tmp: TempDir,
}

impl Env {
    /// A fresh data directory and a newsroom made by `kolokol newsroom init`.
    fn new() -> Self {
        let env = Self {
            tmp: TempDir::new().unwrap(),
        };
        let out = env.run(&["newsroom", "init", "--name", "feed-news"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        env
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("KOLOKOL_DATA_DIR", self.path("data"))
            .env("KOLOKOL_NEWSROOM", self.path("newsroom"))
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    /// Imports the feed and expects success; returns standard output.
    fn import(&self, feed: &str) -> String {
        let out = self.run(&["publish", "--feed", feed]);
        assert!(
            out.status.success(),
            "import of {feed} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The newsroom's published bundle files, in sequence order.
    fn published_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.path("newsroom/published"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    /// Every published bundle: manifest, and the files' blobs by entry path.
    fn published(&self) -> Vec<(Manifest, HashMap<String, Vec<u8>>)> {
        self.published_files()
            .iter()
            .map(|p| {
                let (_, manifest) = kolokol::newsroom::read_manifest(p).unwrap();
                let file =
                    BundleFile::read(std::io::BufReader::new(std::fs::File::open(p).unwrap()))
                        .unwrap();
                let blobs = manifest
                    .entries
                    .iter()
                    .map(|e| e.path.clone())
                    .zip(file.blobs)
                    .collect();
                (manifest, blobs)
            })
            .collect()
    }
}

fn body(blobs: &HashMap<String, Vec<u8>>) -> String {
    String::from_utf8(blobs[kolokol::proto::BODY_PATH].clone()).unwrap()
}

fn png() -> Vec<u8> {
    std::fs::read(Path::new(REPO).join("src/demo/stories/bell.png")).unwrap()
}

/// A second, different PNG: the first with bytes appended after its end.
fn png2() -> Vec<u8> {
    let mut p = png();
    p.extend_from_slice(b"second image");
    p
}

fn lines_starting(out: &str, word: &str) -> usize {
    out.lines().filter(|l| l.starts_with(word)).count()
}

fn rss(server: &Server, first_title: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel>
  <title>Feed News</title>
  <link>{base}/</link>
  <description>News</description>
  <language>ru</language>
  <item>
    <title>{first_title}</title>
    <link>{base}/news/1.html</link>
    <guid isPermaLink="false">feed-news-1</guid>
    <category>Политика</category>
    <author>ivan@example.org (Иван Петров)</author>
    <pubDate>Mon, 04 May 2026 10:00:00 GMT</pubDate>
    <description>Краткое содержание.</description>
    <content:encoded><![CDATA[<p>Полный текст первой статьи.</p><p><img src="/img/inline.png" alt="фото"></p><script>alert(1)</script>]]></content:encoded>
    <enclosure url="{base}/img/lead.png" type="image/png" length="1000"/>
  </item>
  <item>
    <title>Second story</title>
    <link>{base}/news/2.html</link>
    <guid>{base}/news/2.html</guid>
    <description>Summary two.</description>
    <content:encoded><![CDATA[<p>Full text of the second story.</p><img src="{base}/img/missing.png">]]></content:encoded>
  </item>
</channel>
</rss>"#,
        base = server.base
    )
}

#[test]
fn rss_with_enclosures_is_imported_with_its_images() {
    let server = Server::start();
    server.serve(
        "/feed.xml",
        "application/rss+xml",
        rss(&server, "Первая статья"),
    );
    server.serve("/img/lead.png", "image/png", png());
    server.serve("/img/inline.png", "image/png", png2());
    let env = Env::new();

    let out = env.import(&server.url("/feed.xml"));
    assert_eq!(lines_starting(&out, "new"), 2, "{out}");
    let published = env.published();
    assert_eq!(published.len(), 2);

    let (m, blobs) = &published[0];
    assert_eq!(m.metadata.title, "Первая статья");
    assert_eq!(m.metadata.language, "ru");
    assert_eq!(m.metadata.section.as_deref(), Some("Политика"));
    assert_eq!(m.metadata.summary.as_deref(), Some("Краткое содержание."));
    assert_eq!(
        m.metadata.original_url.as_deref(),
        Some(server.url("/news/1.html").as_str())
    );
    assert_eq!(m.version, 1);
    let b = body(blobs);
    assert!(b.contains("Полный текст первой статьи."), "{b}");
    assert!(!b.contains("<script") && !b.contains("alert"), "{b}");
    // Both images bundled: the inline one and the enclosure, each
    // referenced from the body by its bundled path.
    let media: Vec<_> = m
        .entries
        .iter()
        .filter(|e| e.path.starts_with("media/"))
        .collect();
    assert_eq!(media.len(), 2, "{:?}", m.entries);
    for e in &media {
        assert_eq!(e.media_type, "image/png");
        assert!(b.contains(&format!("src=\"{}\"", e.path)), "{b}");
    }
    assert!(blobs.values().any(|v| *v == png()));
    assert!(blobs.values().any(|v| *v == png2()));
    assert!(!b.contains("/img/inline.png"), "{b}");

    // A missing image is a warning, not a failure of its item.
    let (m2, blobs2) = &published[1];
    assert_eq!(m2.metadata.title, "Second story");
    assert!(body(blobs2).contains("Full text of the second story."));
    assert_eq!(m2.entries.len(), 1);

    // Story ids come from the guids, and the bundles verify for a reader.
    let root = env.path("newsroom/newsroom.toml");
    let text = std::fs::read_to_string(root).unwrap();
    let key: kolokol::proto::PublicKey = text
        .lines()
        .find_map(|l| l.strip_prefix("root_key = "))
        .unwrap()
        .trim_matches('"')
        .parse()
        .unwrap();
    assert_eq!(
        m.story,
        kolokol::proto::StoryId::derive(&key, "feed-news-1")
    );
    assert_eq!(
        m2.story,
        kolokol::proto::StoryId::derive(&key, &server.url("/news/2.html"))
    );
    let files = env.published_files();
    let out = env.run(&["verify", files[0].to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rerun_publishes_nothing_and_an_edit_is_a_new_version() {
    let server = Server::start();
    server.serve(
        "/feed.xml",
        "application/rss+xml",
        rss(&server, "Первая статья"),
    );
    server.serve("/img/lead.png", "image/png", png());
    server.serve("/img/inline.png", "image/png", png2());
    let env = Env::new();
    let feed = server.url("/feed.xml");

    env.import(&feed);
    let first = env.published();
    assert_eq!(first.len(), 2);

    let again = env.import(&feed);
    assert_eq!(lines_starting(&again, "new"), 0, "{again}");
    assert_eq!(lines_starting(&again, "updated"), 0, "{again}");
    assert_eq!(lines_starting(&again, "unchanged"), 2, "{again}");
    assert_eq!(env.published_files().len(), 2);

    // The first item's title changes: one new version of that story.
    server.serve(
        "/feed.xml",
        "application/rss+xml",
        rss(&server, "Первая статья (обновлено)"),
    );
    let edited = env.import(&feed);
    assert_eq!(lines_starting(&edited, "updated"), 1, "{edited}");
    assert_eq!(lines_starting(&edited, "unchanged"), 1, "{edited}");
    let after = env.published();
    assert_eq!(after.len(), 3);
    let (v2, _) = &after[2];
    let v1_id = kolokol::newsroom::read_manifest(&env.published_files()[0])
        .unwrap()
        .0;
    assert_eq!(v2.story, first[0].0.story);
    assert_eq!(v2.version, 2);
    assert_eq!(v2.supersedes, Some(v1_id));
    assert_eq!(v2.metadata.title, "Первая статья (обновлено)");
    // First publication time carried over from the feed's pubDate.
    assert_eq!(v2.metadata.published, first[0].0.metadata.published);

    // And that version, too, is stable.
    let third = env.import(&feed);
    assert_eq!(lines_starting(&third, "unchanged"), 2, "{third}");
    assert_eq!(env.published_files().len(), 3);
}

#[test]
fn atom_with_full_content() {
    let server = Server::start();
    let atom = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <title>Atom News</title>
  <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <updated>2026-05-04T12:00:00Z</updated>
  <author><name>Newsdesk</name></author>
  <entry>
    <title type="html">Floods &lt;em&gt;in&lt;/em&gt; the north</title>
    <link rel="alternate" href="{base}/2026/floods"/>
    <id>tag:atom.example,2026:floods</id>
    <updated>2026-05-04T12:00:00Z</updated>
    <summary>Short.</summary>
    <content type="html">&lt;p&gt;Rivers rose overnight.&lt;/p&gt;&lt;img src="{base}/img/flood.png"&gt;&lt;style&gt;p{{}}&lt;/style&gt;&lt;p onclick="steal()"&gt;More.&lt;/p&gt;</content>
  </entry>
</feed>"#,
        base = server.base
    );
    server.serve("/atom.xml", "application/atom+xml", atom);
    server.serve("/img/flood.png", "image/png", png());
    let env = Env::new();
    let out = env.import(&server.url("/atom.xml"));
    assert_eq!(lines_starting(&out, "new"), 1, "{out}");
    let published = env.published();
    let (m, blobs) = &published[0];
    assert_eq!(m.metadata.title, "Floods in the north");
    assert_eq!(m.metadata.language, "en");
    assert_eq!(m.metadata.authors, vec!["Newsdesk".to_owned()]);
    let b = body(blobs);
    assert!(
        b.contains("Rivers rose overnight.") && b.contains("More."),
        "{b}"
    );
    assert!(!b.contains("onclick") && !b.contains("<style"), "{b}");
    assert_eq!(m.entries.len(), 2);
    assert!(b.contains(&format!("src=\"{}\"", m.entries[1].path)), "{b}");
    // Full content: no article page was asked for.
    assert_eq!(server.hits("/2026/floods"), 0);
}

#[test]
fn json_feed() {
    let server = Server::start();
    let json = format!(
        r#"{{
  "version": "https://jsonfeed.org/version/1.1",
  "title": "JSON News",
  "home_page_url": "{base}/",
  "language": "ar",
  "items": [
    {{
      "id": "json-1",
      "url": "{base}/json/1",
      "title": "خبر عاجل",
      "content_html": "<p>نص الخبر الكامل.</p><img src=\"{base}/img/j.png\">",
      "summary": "ملخص",
      "date_published": "2026-05-04T08:00:00Z",
      "authors": [{{"name": "سارة"}}],
      "tags": ["عالم"]
    }},
    {{
      "title": "No id, no url",
      "content_text": "Nothing to identify this item by."
    }}
  ]
}}"#,
        base = server.base
    );
    server.serve("/feed.json", "application/feed+json", json);
    server.serve("/img/j.png", "image/png", png());
    let env = Env::new();
    let out = env.import(&server.url("/feed.json"));
    assert_eq!(lines_starting(&out, "new"), 1, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("skipped")
            && l.contains("No id, no url")
            && l.contains("no guid, id or link")),
        "{out}"
    );
    let published = env.published();
    assert_eq!(published.len(), 1);
    let (m, blobs) = &published[0];
    assert_eq!(m.metadata.title, "خبر عاجل");
    assert_eq!(m.metadata.language, "ar");
    assert_eq!(m.metadata.authors, vec!["سارة".to_owned()]);
    assert_eq!(m.metadata.summary.as_deref(), Some("ملخص"));
    assert!(body(blobs).contains("نص الخبر الكامل."));
    assert_eq!(m.entries.len(), 2);
}

#[test]
fn summary_only_feed_fetches_article_pages_from_its_own_server() {
    let server = Server::start();
    // "localhost" names the same server under another host name: a page
    // there is not the newsroom's own and must not be fetched.
    let other_host = server.base.replace("127.0.0.1", "localhost");
    let feed = format!(
        r#"<?xml version="1.0"?>
<rss version="2.0"><channel><title>Summaries</title><link>{base}/</link><description>d</description>
  <item><title>Page story</title><link>{base}/articles/1.html</link><guid>s-1</guid>
    <description>&lt;p&gt;Only a &lt;b&gt;teaser&lt;/b&gt;.&lt;/p&gt;</description></item>
  <item><title>Elsewhere</title><link>{other_host}/articles/2.html</link><guid>s-2</guid>
    <description>Teaser two.</description></item>
</channel></rss>"#,
        base = server.base
    );
    server.serve("/summary.xml", "application/rss+xml", feed);
    server.serve(
        "/articles/1.html",
        "text/html; charset=utf-8",
        r#"<!doctype html><html><head><title>Site name</title><script>track()</script></head>
<body><nav>Home | World</nav><article><h1>Page story</h1><p>The whole article, from the page.</p>
<img src="../img/p.png"></article><footer>© Newsroom</footer></body></html>"#,
    );
    server.serve("/img/p.png", "image/png", png());
    server.serve(
        "/articles/2.html",
        "text/html",
        "<article>should not be fetched</article>",
    );
    let env = Env::new();
    let out = env.import(&server.url("/summary.xml"));
    assert_eq!(lines_starting(&out, "new"), 1, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("skipped")
            && l.contains("s-2")
            && l.contains("not the newsroom's own server")),
        "{out}"
    );
    assert_eq!(server.hits("/articles/1.html"), 1);
    assert_eq!(server.hits("/articles/2.html"), 0);
    let published = env.published();
    assert_eq!(published.len(), 1);
    let (m, blobs) = &published[0];
    let b = body(blobs);
    assert!(b.contains("The whole article, from the page."), "{b}");
    assert!(
        !b.contains("Home | World") && !b.contains("Newsroom"),
        "{b}"
    );
    assert!(!b.contains("track()") && !b.contains("Site name"), "{b}");
    assert_eq!(m.metadata.summary.as_deref(), Some("Only a teaser."));
    // The page's relative image, resolved against the page's URL.
    assert_eq!(m.entries.len(), 2);
    assert!(b.contains(&format!("src=\"{}\"", m.entries[1].path)), "{b}");
}

#[test]
fn broken_feeds_fail_clearly_and_publish_nothing() {
    let server = Server::start();
    server.serve(
        "/feed.xml",
        "application/rss+xml",
        rss(&server, "Первая статья"),
    );
    server.serve(
        "/not-a-feed",
        "text/html",
        "<html><body>Welcome</body></html>",
    );
    server.serve_status("/gone.xml", 500);
    server.serve(
        "/huge.xml",
        "application/rss+xml",
        vec![b' '; 8 * 1024 * 1024 + 1],
    );
    let env = Env::new();
    env.import(&server.url("/feed.xml"));
    let before = env.published_files();
    assert_eq!(before.len(), 2);

    for (path, expect) in [
        ("/not-a-feed", "not a readable RSS, Atom or JSON feed"),
        ("/gone.xml", "HTTP 500"),
        ("/huge.xml", "larger than the limit"),
    ] {
        let url = server.url(path);
        let out = env.run(&["publish", "--feed", &url]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{path}: {stderr}");
        assert!(stderr.contains(&url), "{path}: names the feed: {stderr}");
        assert!(stderr.contains(expect), "{path}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{path}: nothing printed as published"
        );
        assert_eq!(env.published_files(), before, "{path}: nothing published");
    }

    let missing = env.path("no-such-feed.xml");
    let out = env.run(&["publish", "--feed", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-feed.xml"));
    assert_eq!(env.published_files(), before);
}

#[test]
fn feed_from_a_file() {
    let server = Server::start();
    server.serve("/img/lead.png", "image/png", png());
    server.serve("/img/inline.png", "image/png", png2());
    let env = Env::new();
    let path = env.path("feed.xml");
    std::fs::write(&path, rss(&server, "From a file")).unwrap();
    let out = env.import(path.to_str().unwrap());
    assert_eq!(lines_starting(&out, "new"), 2, "{out}");
    let published = env.published();
    // Relative image URLs in the content resolve against the item's own
    // (absolute) link, so a feed file works as well as its URL.
    let media: Vec<_> = published[0]
        .0
        .entries
        .iter()
        .filter(|e| e.path.starts_with("media/"))
        .collect();
    assert_eq!(media.len(), 2, "{:?}", published[0].0.entries);
    assert!(published[0].1.values().any(|v| *v == png()));
}

/// Kills the child process if the test ends early.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_retries_after_a_failed_round_and_stops_on_sigterm() {
    let server = Server::start();
    server.serve_status("/feed.xml", 503);
    server.serve("/img/lead.png", "image/png", png());
    server.serve("/img/inline.png", "image/png", png2());
    let env = Env::new();
    let mut child = Child(
        Command::new(BIN)
            .args([
                "publish",
                "--feed",
                &server.url("/feed.xml"),
                "--watch",
                "10s",
            ])
            .env("KOLOKOL_DATA_DIR", env.path("data"))
            .env("KOLOKOL_NEWSROOM", env.path("newsroom"))
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The first round fails on the server's error; the watch goes on and
    // the next round imports the feed once it is back.
    wait_until("the first round", || server.hits("/feed.xml") >= 1);
    server.serve(
        "/feed.xml",
        "application/rss+xml",
        rss(&server, "Первая статья"),
    );
    wait_until("the second round to publish", || {
        env.published_files().len() == 2
    });
    assert!(child.0.try_wait().unwrap().is_none(), "still watching");
    let pid = rustix::process::Pid::from_raw(child.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let mut status = None;
    wait_until("exit on SIGTERM", || {
        status = child.0.try_wait().unwrap();
        status.is_some()
    });
    assert!(status.unwrap().success(), "clean exit: {status:?}");
}

#[test]
fn an_item_whose_page_fails_is_reported_and_imported_on_the_next_run() {
    let server = Server::start();
    let feed = format!(
        r#"<?xml version="1.0"?>
<rss version="2.0"><channel><title>Summaries</title><link>{base}/</link><description>d</description>
  <item><title>One</title><link>{base}/a/1</link><guid>p-1</guid><description>t1</description></item>
  <item><title>Two</title><link>{base}/a/2</link><guid>p-2</guid><description>t2</description></item>
</channel></rss>"#,
        base = server.base
    );
    server.serve("/feed.xml", "application/rss+xml", feed);
    server.serve("/a/1", "text/html", "<main><p>Page one.</p></main>");
    server.serve_status("/a/2", 404);
    let env = Env::new();
    let url = server.url("/feed.xml");

    let out = env.run(&["publish", "--feed", &url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("1 of the feed's items could not be imported"),
        "{stderr}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("skipped") && l.contains("p-2") && l.contains("HTTP 404")),
        "{stdout}"
    );
    assert_eq!(lines_starting(&stdout, "new"), 1, "{stdout}");
    assert_eq!(env.published_files().len(), 1);

    server.serve("/a/2", "text/html", "<main><p>Page two.</p></main>");
    let out = env.import(&url);
    assert_eq!(lines_starting(&out, "new"), 1, "{out}");
    assert_eq!(lines_starting(&out, "unchanged"), 1, "{out}");
    let published = env.published();
    assert_eq!(published.len(), 2);
    assert!(body(&published[1].1).contains("Page two."));
}

#[test]
fn a_running_node_takes_the_imported_stories() {
    let server = Server::start();
    server.serve(
        "/feed.xml",
        "application/rss+xml",
        rss(&server, "Первая статья"),
    );
    server.serve("/img/lead.png", "image/png", png());
    server.serve("/img/inline.png", "image/png", png2());
    let env = Env::new();
    let data = env.path("data");
    let mut node = NodeProcess::start(&data, &[]);

    let first = env.import(&server.url("/feed.xml"));
    assert_eq!(lines_starting(&first, "new"), 2, "{first}");
    let status = || {
        let out = env.run(&["status"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_until("the node to hold both stories", || {
        status().contains("stories held: 2")
    });
    let again = env.import(&server.url("/feed.xml"));
    assert_eq!(lines_starting(&again, "unchanged"), 2, "{again}");
    assert!(status().contains("stories held: 2"), "{}", status());

    node.terminate();
}

#[test]
fn fetches_are_bounded() {
    use kolokol::newsroom::fetch::{FetchError, Fetcher, MAX_REDIRECTS};
    let server = Server::start();
    let fetcher = Fetcher::new(Duration::from_secs(2), Duration::from_secs(2)).allow_local(true);
    let url = |p: &str| url::Url::parse(&server.url(p)).unwrap();
    let own = vec!["127.0.0.1".to_owned()];

    // Redirects are followed, and each hop is checked against the hosts.
    server.serve("/target", "text/plain", "here");
    server.redirect("/hop", "/target");
    let got = fetcher.get(&url("/hop"), 100, Some(&own)).unwrap();
    assert_eq!(got.bytes, b"here");
    assert_eq!(got.url.path(), "/target");
    server.redirect(
        "/away",
        &server.url("/target").replace("127.0.0.1", "localhost"),
    );
    assert!(matches!(
        fetcher.get(&url("/away"), 100, Some(&own)),
        Err(FetchError::HostNotAllowed { .. })
    ));
    server.redirect("/loop", "/loop");
    assert!(matches!(
        fetcher.get(&url("/loop"), 100, None),
        Err(FetchError::Redirect { .. })
    ));
    assert_eq!(server.hits("/loop"), MAX_REDIRECTS + 1);
    server.redirect("/to-file", "file:///etc/passwd");
    assert!(matches!(
        fetcher.get(&url("/to-file"), 100, None),
        Err(FetchError::Scheme { .. })
    ));

    // The cap holds while reading, whatever the headers say.
    server.put(
        "/unsized",
        Resource {
            status: 200,
            headers: vec!["Content-Type: text/plain".into()],
            body: vec![b'x'; 1001],
            no_length: true,
        },
    );
    assert!(matches!(
        fetcher.get(&url("/unsized"), 1000, None),
        Err(FetchError::TooLarge { cap: 1000, .. })
    ));
    assert_eq!(
        fetcher
            .get(&url("/unsized"), 1001, None)
            .unwrap()
            .bytes
            .len(),
        1001
    );

    // A server that accepts and never answers runs into the timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = url::Url::parse(&format!("http://{}/", silent.local_addr().unwrap())).unwrap();
    let holder = std::thread::spawn(move || {
        let held = silent.accept();
        std::thread::sleep(Duration::from_secs(4));
        drop(held);
    });
    let start = std::time::Instant::now();
    assert!(matches!(
        fetcher.get(&silent_url, 100, None),
        Err(FetchError::Transport { .. })
    ));
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    holder.join().unwrap();
}

#[test]
fn names_that_resolve_inward_are_refused_and_the_checked_address_is_the_one_dialled() {
    use kolokol::newsroom::fetch::{FetchError, Fetcher, Resolve};
    use std::net::SocketAddr;
    use std::sync::Arc;
    let server = Server::start();
    server.serve("/feed.xml", "application/rss+xml", "<rss/>");
    server.serve("/photo.png", "image/png", "png");
    let port: u16 = url::Url::parse(&server.url("/")).unwrap().port().unwrap();
    // A name server under the attacker's control: every name is the test
    // server on loopback, or another inward address.
    let inward: Resolve = Arc::new(move |netloc: &str| {
        let host = netloc.rsplit_once(':').map_or(netloc, |(h, _)| h);
        let ip = match host {
            "metadata.example" => "169.254.169.254",
            "nat64.example" => "64:ff9b::a00:1",
            "mapped.example" => "::ffff:192.168.1.1",
            "mixed.example" => {
                return Ok(vec![
                    SocketAddr::from(([93, 184, 216, 34], port)),
                    SocketAddr::from(([10, 0, 0, 1], port)),
                ]);
            }
            _ => "127.0.0.1",
        };
        Ok(vec![SocketAddr::new(ip.parse().unwrap(), port)])
    });
    let fetcher =
        Fetcher::new(Duration::from_secs(2), Duration::from_secs(2)).with_resolver(inward.clone());
    let get = |f: &Fetcher, u: &str| f.get(&url::Url::parse(u).unwrap(), 100, None);
    for (u, addr) in [
        ("http://news.example/feed.xml", "127.0.0.1"),
        ("http://img.example/photo.png", "127.0.0.1"),
        (
            "http://metadata.example/latest/meta-data/",
            "169.254.169.254",
        ),
        ("http://nat64.example/", "64:ff9b::a00:1"),
        ("http://mapped.example/", "::ffff:192.168.1.1"),
        ("http://mixed.example/", "10.0.0.1"),
    ] {
        let err = get(&fetcher, u).unwrap_err();
        assert!(matches!(err, FetchError::LocalHost { .. }), "{u}: {err}");
        assert!(err.to_string().contains(addr), "{u}: {err}");
    }
    assert_eq!(server.hits("/feed.xml"), 0, "nothing reached the server");
    assert_eq!(server.hits("/photo.png"), 0, "nor an image");

    // With local hosts allowed (a feed on this machine), the resolver's
    // address is the one connected to: the name reaches the test server.
    let local = fetcher.clone().allow_local(true);
    assert_eq!(
        get(&local, "http://img.example/photo.png").unwrap().bytes,
        b"png"
    );
}

#[test]
fn an_items_own_language_wins_over_the_channels() {
    let server = Server::start();
    let feed = format!(
        r#"<?xml version="1.0"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Mixed</title><link>{base}/</link><description>d</description><language>en</language>
  <item><title>Навіны</title><guid>l-1</guid><dc:language>be</dc:language><description>Тэкст.</description></item>
  <item><title>News</title><guid>l-2</guid><description>Text.</description></item>
</channel></rss>"#,
        base = server.base
    );
    server.serve("/feed.xml", "application/rss+xml", feed);
    let env = Env::new();
    env.import(&server.url("/feed.xml"));
    let languages: Vec<String> = env
        .published()
        .into_iter()
        .map(|(m, _)| m.metadata.language)
        .collect();
    assert_eq!(languages, ["be", "en"]);
}

#[test]
fn watch_prints_only_what_changed_with_the_time() {
    let server = Server::start();
    server.serve(
        "/feed.xml",
        "application/rss+xml",
        rss(&server, "Первая статья"),
    );
    server.serve("/img/lead.png", "image/png", png());
    server.serve("/img/inline.png", "image/png", png2());
    let env = Env::new();
    let mut child = Child(
        Command::new(BIN)
            .args([
                "publish",
                "--feed",
                &server.url("/feed.xml"),
                "--watch",
                "10s",
            ])
            .env("KOLOKOL_DATA_DIR", env.path("data"))
            .env("KOLOKOL_NEWSROOM", env.path("newsroom"))
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the first round to publish", || {
        env.published_files().len() == 2
    });
    // The second round finds nothing new: it prints nothing.
    wait_until("the second round", || server.hits("/feed.xml") >= 2);
    let pid = rustix::process::Pid::from_raw(child.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let mut stdout = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in lines {
        // An RFC 3339 time, then what happened.
        let (time, rest) = line.split_once(' ').unwrap();
        assert!(time.len() == 20 && time.ends_with('Z'), "{line}");
        assert!(rest.starts_with("new"), "{line}");
    }
}
