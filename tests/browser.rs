//! The reader's gateway in a real browser: headless Chromium driven over
//! WebDriver (chromedriver), against a gateway over the demo samples.
//! Opens the home page, follows a link to a story, reads the verification
//! panel, checks that the image loaded and the stylesheet applied under
//! the Content-Security-Policy, that a retracted story shows its notice
//! and not its old text, that the language links turn the pages Russian
//! and Arabic (right to left), and saves screenshots.
//!
//! Needs `chromium` and `chromium-driver` (Debian), which `.ci/run`
//! installs; without them the test fails and says so. Other locations can
//! be given with `KOLOKOL_CHROMIUM` and `KOLOKOL_CHROMEDRIVER`. Screenshots
//! go to `$KOLOKOL_ARTIFACTS`, else `target/artifacts/`.

mod common;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::gateway::{demo_gateway, send};
use serde_json::{Value, json};
use tempfile::TempDir;

const DEADLINE: Duration = Duration::from_secs(60);

fn find_program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver and the browsers it started share a process group
        // of their own: end them all, also when an assertion failed before
        // the session was closed.
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver(path: &Path) -> Driver {
    let port = free_port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
    let driver = Driver {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    let start = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(driver.addr).await.is_ok() {
            let status = call(driver.addr, "GET", "/status", None).await;
            if status["value"]["ready"] == true {
                return driver;
            }
        }
        assert!(start.elapsed() < DEADLINE, "chromedriver did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One WebDriver command; returns the answer's JSON.
async fn call(driver: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let r = send(
        driver,
        method,
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await;
    let v: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {}", r.text()));
    assert_eq!(r.status, 200, "{method} {path}: {v}");
    v
}

struct Session {
    driver: SocketAddr,
    id: String,
}

impl Session {
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        call(
            self.driver,
            method,
            &format!("/session/{}{path}", self.id),
            body,
        )
        .await["value"]
            .clone()
    }

    async fn open(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    async fn script(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    async fn text_of(&self, css: &str) -> String {
        let e = self.element(css).await;
        self.cmd("GET", &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.cmd("GET", "/screenshot", None).await;
        let png = base64_decode(b64.as_str().expect("a screenshot"));
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
        let dir = std::env::var_os("KOLOKOL_ARTIFACTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .parent()
                    .expect("the target folder")
                    .join("artifacts")
            });
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Waits until `script` returns true.
    async fn wait_for(&self, what: &str, script: &str) {
        let start = Instant::now();
        while self.script(script).await != true {
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_reads_verified_stories_in_chromium() {
    let chromium = find_program("KOLOKOL_CHROMIUM", &["chromium", "chromium-browser"]).expect(
        "Chromium is not installed: `apt-get install -y chromium chromium-driver` \
             (as .ci/run does), or set KOLOKOL_CHROMIUM",
    );
    let chromedriver = find_program("KOLOKOL_CHROMEDRIVER", &["chromedriver"]).expect(
        "chromedriver is not installed: `apt-get install -y chromium chromium-driver` \
         (as .ci/run does), or set KOLOKOL_CHROMEDRIVER",
    );
    let dir = TempDir::new().unwrap();
    let (samples, _store, g) = demo_gateway(&dir.path().join("newsroom")).await;
    let base = format!("http://{}", g.addr);
    let driver = start_driver(&chromedriver).await;
    let profile = dir.path().join("chromium-profile");
    let caps = json!({ "capabilities": { "alwaysMatch": {
        "browserName": "chrome",
        "goog:loggingPrefs": { "browser": "ALL" },
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
                "--window-size=1100,1400",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    }}});
    let created = call(driver.addr, "POST", "/session", Some(caps)).await;
    let s = Session {
        driver: driver.addr,
        id: created["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned(),
    };

    // Home: the newsroom and its stories.
    s.open(&format!("{base}/")).await;
    let home = s.text_of("main").await;
    assert!(home.contains("Kolokol Demo Newsroom"), "{home}");
    assert!(
        home.contains("4 stories held (6 bundles). Nothing missing"),
        "{home}"
    );
    s.screenshot("gateway-home.png").await;

    // Follow the link to the corrected story with its image.
    let corrected = samples.id(1);
    let link = s.element(&format!("a[href='/story/{corrected}']")).await;
    s.cmd("POST", &format!("/element/{link}/click"), Some(json!({})))
        .await;
    s.wait_for(
        "the story page",
        &format!("return location.pathname === '/story/{corrected}' && document.readyState === 'complete';"),
    )
    .await;
    let panel = s.text_of("aside.verify").await;
    for want in [
        "Verification",
        "Verified",
        "Signing key",
        "serial 1",
        corrected.as_str(),
        "Version 1",
        "Version 2",
    ] {
        assert!(panel.contains(want), "the panel lacks {want:?}: {panel}");
    }
    assert!(panel.contains(&samples.publisher.root_key.to_string()));
    s.wait_for(
        "the image",
        "const i = document.querySelector('article.story img'); return !!i && i.complete;",
    )
    .await;
    let width = s
        .script("return document.querySelector('article.story img').naturalWidth;")
        .await;
    assert!(
        width.as_u64().unwrap_or(0) > 0,
        "the image did not load: {width}"
    );
    // The node's own stylesheet applied under the CSP.
    let border = s
        .script("return getComputedStyle(document.querySelector('aside.verify')).borderTopStyle;")
        .await;
    assert_eq!(border, "solid", "the stylesheet did not apply");
    s.screenshot("gateway-story.png").await;

    // A retracted story: the notice, never the old text.
    s.open(&format!("{base}/story/{}", samples.id(4))).await;
    let article = s.text_of("article.story").await;
    assert!(
        article.contains("We have retracted this story"),
        "{article}"
    );
    assert!(article.contains("Retracted."), "{article}");
    assert!(!article.contains("A single source reported"), "{article}");
    s.screenshot("gateway-retracted.png").await;

    // The language links: Russian, then Arabic, laid out right to left.
    let ru_link = s.element("nav.languages a[hreflang='ru']").await;
    s.cmd(
        "POST",
        &format!("/element/{ru_link}/click"),
        Some(json!({})),
    )
    .await;
    s.wait_for(
        "the Russian page",
        "return document.documentElement.lang === 'ru' && document.readyState === 'complete';",
    )
    .await;
    s.open(&format!("{base}/")).await;
    // The cookie keeps the choice for the next page.
    let lang = s.script("return document.documentElement.lang;").await;
    assert_eq!(lang, "ru", "the choice was not kept");
    let home = s.text_of("main").await;
    for want in [
        "Ваши редакции",
        "Хранится 4 материала (6 пакетов).",
        "Последние материалы",
    ] {
        assert!(home.contains(want), "{want:?} not in {home}");
    }
    let button = s.text_of("form.search button").await;
    assert_eq!(button, "Найти");
    s.screenshot("gateway-ru.png").await;

    s.open(&format!("{base}/?ui=ar")).await;
    let (lang, dir) = (
        s.script("return document.documentElement.lang;").await,
        s.script("return getComputedStyle(document.body).direction;")
            .await,
    );
    assert_eq!((lang.as_str(), dir.as_str()), (Some("ar"), Some("rtl")));
    let home = s.text_of("main").await;
    for want in ["مؤسساتك الإخبارية", "4 أخبار محفوظة (6 حزم).", "أحدث الأخبار"]
    {
        assert!(home.contains(want), "{want:?} not in {home}");
    }
    // Right to left: the name of the site stands to the right of the
    // search box, and a Russian story's title still reads left to right.
    let mirrored = s
        .script(
            "const b = document.querySelector('.brand').getBoundingClientRect(); \
             const f = document.querySelector('form.search').getBoundingClientRect(); \
             return b.left > f.left;",
        )
        .await;
    assert_eq!(mirrored, true, "the header is not mirrored");
    let story_dir = s
        .script("return getComputedStyle(document.querySelector('article[lang=ru]')).direction;")
        .await;
    assert_eq!(story_dir, "ltr");
    s.screenshot("gateway-ar.png").await;

    // Arabic is laid out right to left, at a phone's width too.
    s.cmd(
        "POST",
        "/window/rect",
        Some(json!({ "width": 412, "height": 915 })),
    )
    .await;
    s.open(&format!("{base}/story/{}", samples.id(3))).await;
    let dir_value = s
        .script("return getComputedStyle(document.querySelector('article.story')).direction;")
        .await;
    assert_eq!(dir_value, "rtl");
    let overflow = s
        .script("return document.documentElement.scrollWidth <= window.innerWidth;")
        .await;
    assert_eq!(overflow, true, "the page is wider than a phone's screen");
    let shot = s.screenshot("gateway-arabic-phone.png").await;

    // Nothing was refused by the CSP and nothing failed to load.
    let log = call(
        driver.addr,
        "POST",
        &format!("/session/{}/se/log", s.id),
        Some(json!({ "type": "browser" })),
    )
    .await;
    let problems: Vec<&Value> = log["value"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| {
                    e["level"] == "SEVERE"
                        || e["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("Content Security Policy"))
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(problems.is_empty(), "browser console: {problems:?}");

    call(driver.addr, "DELETE", &format!("/session/{}", s.id), None).await;
    println!("screenshots in {}", shot.parent().unwrap().display());
}
