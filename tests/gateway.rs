//! The reader's gateway over HTTP: every page and API route, filters and
//! pages, feeds, the sanitizer, the security headers, and that nothing a
//! response holds points outside the node.

mod common;

use std::sync::Arc;

use common::gateway::{Samples, demo_gateway, get, get_with, serve, wall_clock};
use common::{DAY, Publisher, StoryVersion, T0};
use kolokol::gateway::GatewayState;
use kolokol::proto::{Kind, StoryId};
use kolokol::store::{Store, StoreConfig};
use kolokol::trust::PublisherFile;
use tempfile::TempDir;

fn json(r: &common::gateway::Response) -> serde_json::Value {
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        r.headers
    );
    serde_json::from_slice(&r.body).expect("JSON")
}

/// Checks the headers every response must carry: the security headers,
/// and `no-store`, since a browser's cache would keep what the reader
/// read on the device, outside the store.
fn secure(r: &common::gateway::Response, what: &str) {
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    assert_eq!(r.header("etag"), None, "{what}: nothing to revalidate");
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(
        csp == kolokol::gateway::CSP || csp == "default-src 'none'; sandbox",
        "{what}: CSP {csp:?}"
    );
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
}

/// Every `http://` or `https://` in a body names this node; the Atom
/// namespace, an identifier that is never fetched, is the one exception.
fn only_this_origin(body: &str, addr: std::net::SocketAddr, what: &str) {
    let body = body.replace("xmlns=\"http://www.w3.org/2005/Atom\"", "");
    let own = format!("http://{addr}");
    for scheme in ["http://", "https://", "HTTP://", "HTTPS://"] {
        for (i, _) in body.match_indices(scheme) {
            assert!(
                body[i..].starts_with(&own),
                "{what}: refers to another origin: {}",
                &body[i..(i + 80).min(body.len())]
            );
        }
    }
    for attr in ["src=\"//", "href=\"//", "src='//", "href='//", "url("] {
        assert!(!body.contains(attr), "{what}: {attr} in {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_and_api_route_answers() {
    let dir = TempDir::new().unwrap();
    let (samples, _store, g) = demo_gateway(&dir.path().join("newsroom")).await;
    let a = g.addr;
    let first = samples.id(0);
    let image = format!("/media/{first}/media/bell.png");
    let mut pages = vec![
        "/".to_owned(),
        "/p/kolokol-demo".into(),
        "/p/kolokol-demo?lang=ru".into(),
        "/p/kolokol-demo?section=Technology".into(),
        "/search?q=volunteers".into(),
        "/search".into(),
        "/safety".into(),
        "/feed.atom".into(),
        "/p/kolokol-demo/feed.atom".into(),
        "/static/style.css".into(),
        "/static/icon.png".into(),
        "/favicon.ico".into(),
        "/api/v1/status".into(),
        "/api/v1/publishers".into(),
        "/api/v1/publishers/kolokol-demo".into(),
        "/api/v1/stories".into(),
        "/api/v1/stories?publisher=kolokol-demo&lang=ar".into(),
        image.clone(),
    ];
    for i in 0..samples.published.len() {
        pages.push(format!("/story/{}", samples.id(i)));
        pages.push(format!("/api/v1/stories/{}", samples.id(i)));
    }
    for p in &pages {
        let r = get(a, p).await;
        assert_eq!(r.status, 200, "{p}: {}", String::from_utf8_lossy(&r.body));
        secure(&r, p);
        let ct = r.header("content-type").unwrap_or_default().to_owned();
        if p.starts_with("/media/") || p.contains("icon") {
            assert_eq!(ct, "image/png");
            assert!(r.body.starts_with(b"\x89PNG"), "{p}");
            continue;
        }
        assert!(
            ct.contains("charset=utf-8") || ct == "application/json",
            "{p}: {ct}"
        );
        only_this_origin(&r.text(), a, p);
    }

    // Home: the publisher, its freshness and holdings, the newest stories.
    let home = get(a, "/").await.text();
    assert!(home.contains("Kolokol Demo Newsroom"), "{home}");
    assert!(home.contains("Last heard from"), "{home}");
    assert!(
        home.contains("4 stories held (6 bundles). Nothing missing"),
        "{home}"
    );
    assert!(home.contains("Demo newsroom: its secret key is public"));
    assert!(home.contains("<meta name=\"viewport\""));
    assert!(home.contains("<link rel=\"stylesheet\" href=\"/static/style.css\">"));

    // The image, like everything, is never kept by the browser; there is
    // no ETag, and a request that offers one gets the image again.
    let img = get(a, &image).await;
    assert_eq!(img.header("cache-control"), Some("no-store"));
    let again = get_with(a, &image, &[("If-None-Match", "\"anything\"")]).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, img.body);
    secure(&again, "revalidated image");

    // The API's publisher and story.
    let p = json(&get(a, "/api/v1/publishers/kolokol-demo").await);
    assert_eq!(p["stories"], 4);
    assert_eq!(p["bundles_held"], 6);
    assert_eq!(p["missing_count"], 0);
    assert_eq!(p["head"]["sequence"], 6);
    assert_eq!(p["head"]["expired"], false);
    let s = json(&get(a, &format!("/api/v1/stories/{}", samples.id(1))).await);
    assert_eq!(s["kind"], "correction");
    assert_eq!(s["versions"].as_array().unwrap().len(), 2);
    assert_eq!(s["verification"]["bundle_id"], samples.id(1));
    assert_eq!(s["verification"]["certificate"]["serial"], 1);
    assert_eq!(s["media"][0]["media_type"], "image/png");
    assert!(
        s["body_html"]
            .as_str()
            .unwrap()
            .contains(&format!("/media/{}/media/bell.png", samples.id(1)))
    );
    let status = json(&get(a, "/api/v1/status").await);
    assert_eq!(status["store"]["bundles"], 6);
    assert!(status["network"].is_null(), "no node behind this gateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_page_shows_the_verification_panel_and_versions() {
    let dir = TempDir::new().unwrap();
    let (samples, _store, g) = demo_gateway(&dir.path().join("newsroom")).await;
    let corrected = samples.id(1);
    let page = get(g.addr, &format!("/story/{corrected}")).await.text();
    let key = samples.publisher.root_key.to_string();
    for want in [
        "Verification",
        key.as_str(),
        "Signing key",
        "serial 1, valid from",
        corrected.as_str(),
        "Version 1",
        "Version 2",
        "correction",
        "Corrected",
        "the version you opened",
    ] {
        assert!(page.contains(want), "missing {want:?} in {page}");
    }
    assert!(page.contains(&format!("href=\"/story/{}\"", samples.id(0))));
    assert!(page.contains(&format!("<img src=\"/media/{corrected}/media/bell.png\"")));
    // The older version says a newer one exists.
    let old = get(g.addr, &format!("/story/{}", samples.id(0)))
        .await
        .text();
    assert!(old.contains("You are reading version 1"), "{old}");
    assert!(old.contains(&format!("href=\"/story/{corrected}\"")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retraction_replaces_the_body_everywhere() {
    let dir = TempDir::new().unwrap();
    let (samples, _store, g) = demo_gateway(&dir.path().join("newsroom")).await;
    let old_text = "A single source reported";
    let notice = "We have retracted this story";
    // Both the rumour's own id and the retraction's show the notice only.
    for id in [samples.id(4), samples.id(5)] {
        let page = get(g.addr, &format!("/story/{id}")).await.text();
        assert!(page.contains(notice), "{page}");
        assert!(page.contains("Retracted."), "{page}");
        assert!(!page.contains(old_text), "the old body is shown: {page}");
        let api = json(&get(g.addr, &format!("/api/v1/stories/{id}")).await);
        assert_eq!(api["retracted"], true);
        let body = api["body_html"].as_str().unwrap();
        assert!(body.contains(notice) && !body.contains(old_text), "{body}");
    }
    for path in ["/feed.atom", "/p/kolokol-demo/feed.atom", "/"] {
        let text = get(g.addr, path).await.text();
        assert!(!text.contains(old_text), "{path}: {text}");
    }
    let feed = get(g.addr, "/feed.atom").await.text();
    assert!(feed.contains(notice), "{feed}");
    let home = get(g.addr, "/").await.text();
    assert!(home.contains("badge retracted"), "{home}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cyrillic_and_arabic_keep_their_text_language_and_direction() {
    let dir = TempDir::new().unwrap();
    let (samples, _store, g) = demo_gateway(&dir.path().join("newsroom")).await;
    let ru = get(g.addr, &format!("/story/{}", samples.id(2))).await;
    assert_eq!(ru.header("content-type"), Some("text/html; charset=utf-8"));
    let ru = ru.text();
    assert!(ru.contains("<article class=\"story\" lang=\"ru\" dir=\"ltr\">"));
    assert!(ru.contains("«Колокол» звонит снова"), "{ru}");
    let ar = get(g.addr, &format!("/story/{}", samples.id(3)))
        .await
        .text();
    assert!(
        ar.contains("<article class=\"story\" lang=\"ar\" dir=\"rtl\">"),
        "{ar}"
    );
    assert!(ar.contains("الأخبار تصل رغم الحجب"));
    // Lists carry each story's own language and direction.
    let home = get(g.addr, "/").await.text();
    assert!(home.contains("<article lang=\"ar\" dir=\"rtl\">"), "{home}");
    // Search is case-insensitive in Cyrillic too.
    let found = get(
        g.addr,
        "/search?q=%D0%9A%D0%9E%D0%9B%D0%9E%D0%9A%D0%9E%D0%9B",
    )
    .await; // КОЛОКОЛ
    let found = found.text();
    assert!(found.contains("1 story matches"), "{found}");
    assert!(found.contains("«Колокол» звонит снова"));
    let api = json(&get(g.addr, "/api/v1/stories?lang=ru").await);
    assert_eq!(api["total"], 1);
    assert_eq!(api["stories"][0]["language"], "ru");
}

/// The Atom child element `name` of `n`.
fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| {
        c.tag_name().name() == name
            && c.tag_name().namespace() == Some("http://www.w3.org/2005/Atom")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atom_feeds_are_valid_atom() {
    let dir = TempDir::new().unwrap();
    let (samples, _store, g) = demo_gateway(&dir.path().join("newsroom")).await;
    const ATOM: &str = "http://www.w3.org/2005/Atom";
    for path in ["/feed.atom", "/p/kolokol-demo/feed.atom"] {
        let r = get(g.addr, path).await;
        assert_eq!(
            r.header("content-type"),
            Some("application/atom+xml; charset=utf-8")
        );
        let text = r.text();
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        let feed = doc.root_element();
        assert_eq!(feed.tag_name().name(), "feed");
        assert_eq!(feed.tag_name().namespace(), Some(ATOM));
        let rfc3339 = |s: &str| humantime::parse_rfc3339(s).is_ok();
        for name in ["id", "title", "updated"] {
            assert!(child(feed, name).is_some(), "{path}: feed has no {name}");
        }
        assert!(rfc3339(child(feed, "updated").unwrap().text().unwrap()));
        let entries: Vec<_> = feed
            .children()
            .filter(|c| c.tag_name().name() == "entry")
            .collect();
        assert_eq!(entries.len(), 4, "{path}: one entry per story");
        let feed_author = child(feed, "author").is_some();
        for e in &entries {
            for name in ["id", "title", "updated", "content"] {
                assert!(child(*e, name).is_some(), "{path}: entry has no {name}");
            }
            assert!(rfc3339(child(*e, "updated").unwrap().text().unwrap()));
            assert!(feed_author || child(*e, "author").is_some());
            let link = child(*e, "link").unwrap();
            let href = link.attribute("href").unwrap();
            assert!(href.starts_with("story/"), "{href}");
            let id = child(*e, "id").unwrap().text().unwrap();
            assert!(id.starts_with("urn:kolokol:story:"), "{id}");
        }
        // Links resolve against the node itself.
        assert_eq!(
            feed.attribute(("http://www.w3.org/XML/1998/namespace", "base")),
            Some(format!("http://{}/", g.addr).as_str())
        );
        // Entry ids stay the same across versions: the corrected story
        // appears once, under its newest version.
        assert!(text.contains(&samples.id(1)) && !text.contains(&samples.id(0)));
    }
}

/// A second publisher, with a hostile story and many plain ones.
fn hostile_publisher(store: &Store, stories: u8) -> (Publisher, PublisherFile) {
    let p = Publisher::new(40);
    let policy = p.policy();
    store
        .put_certificate(&policy.verify_certificate(&p.cert).unwrap())
        .unwrap();
    // Its newest head expired long ago: the feed may be frozen.
    let head = policy.verify_head(&p.head(u64::from(stories) + 1, T0.plus(60)), T0.plus(120));
    store.record_head(&head.unwrap()).unwrap();
    let png = include_bytes!("../src/demo/stories/bell.png").to_vec();
    let body = concat!(
        "<h1>Hostile</h1><p onclick=\"steal()\">Text<script>steal()</script></p>",
        "<img src=\"media/1.png\" onerror=\"steal()\" alt=\"own image\">",
        "<img src=\"https://tracker.example/pixel.gif\">",
        "<a href=\"javascript:steal()\">click</a>",
        "<a href=\" JAVASCRIPT:steal()\">click</a>",
        "<a href=\"https://elsewhere.example/page\">elsewhere</a>",
        "<iframe src=\"https://elsewhere.example/\"></iframe>",
        "<form action=\"https://elsewhere.example/\"><input name=x></form>",
        "<svg><script>steal()</script></svg>",
        "<p style=\"background:url(https://tracker.example/x)\">styled</p>",
    );
    let mut s = StoryVersion {
        publisher: &p,
        sequence: 1,
        story: StoryId([1; 16]),
        version: 1,
        kind: Kind::Story,
        supersedes: None,
        published: T0.plus(DAY),
        language: "en",
        blobs: vec![body.as_bytes().to_vec(), png],
    };
    store.ingest(&[s.verified()]).unwrap();
    for n in 0..stories {
        s = common::story(&p, u64::from(n) + 2, n + 2, format!("plain {n}").as_bytes());
        s.language = if n % 2 == 0 { "en" } else { "ru" };
        store.ingest(&[s.verified()]).unwrap();
    }
    let file = PublisherFile {
        name: "test-publisher".into(),
        display_name: Some("Test <Publisher>".into()),
        root_key: p.public(),
        homepage: Some("https://blocked.example/".into()),
        bootstrap: vec![],
        demo: false,
        mirror_list: None,
        mirror_certificate: None,
    };
    (p, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn article_html_is_sanitized_before_it_is_served() {
    let store = Arc::new(Store::memory(StoreConfig::default()));
    let (p, file) = hostile_publisher(&store, 0);
    let g = serve(GatewayState::new(store.clone(), vec![file])).await;
    let id = store.held_bundles(&p.public()).unwrap()[0].1;
    let page = get(g.addr, &format!("/story/{id}")).await;
    secure(&page, "story");
    let api = get(g.addr, &format!("/api/v1/stories/{id}")).await.text();
    let feed = get(g.addr, "/feed.atom").await.text();
    let home = get(g.addr, "/").await.text();
    let list = get(g.addr, "/p/test-publisher").await.text();
    let page = page.text();
    for (what, text) in [
        ("page", &page),
        ("api", &api),
        ("feed", &feed),
        ("home", &home),
        ("list", &list),
    ] {
        let lower = text.to_lowercase();
        for bad in [
            "<script",
            "&lt;script",
            "onerror",
            "onclick",
            "javascript:",
            "<iframe",
            "tracker.example",
            "elsewhere.example",
            "steal()",
        ] {
            assert!(!lower.contains(bad), "{what}: {bad} in {text}");
        }
        only_this_origin(text, g.addr, what);
    }
    // The story's own image is kept and points at this node.
    assert!(
        page.contains(&format!("<img src=\"/media/{id}/media/1.png\"")),
        "{page}"
    );
    // The publisher's name is escaped; its own site shown as text only.
    assert!(list.contains("Test &lt;Publisher&gt;"), "{list}");
    assert!(list.contains("blocked.example/"), "{list}");
    // Its head expired: a visible warning.
    assert!(home.contains("class=\"warning expired\""), "{home}");
    let api = json(&get(g.addr, "/api/v1/publishers/test-publisher").await);
    assert_eq!(api["head"]["expired"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_paginate_and_filter() {
    let store = Arc::new(Store::memory(StoreConfig::default()));
    let (_p, file) = hostile_publisher(&store, 44);
    let g = serve(GatewayState::new(store.clone(), vec![file])).await;
    let count = |t: &str| t.matches("<li class=\"item\">").count();
    let first = get(g.addr, "/p/test-publisher").await.text();
    assert!(first.contains("45 stories."), "{first}");
    assert_eq!(count(&first), 20);
    assert!(first.contains("Page 1 of 3"));
    assert!(
        first.contains("href=\"/p/test-publisher?page=2\""),
        "{first}"
    );
    let third = get(g.addr, "/p/test-publisher?page=3").await.text();
    assert_eq!(count(&third), 5);
    let beyond = get(g.addr, "/p/test-publisher?page=9").await;
    assert_eq!(beyond.status, 200);
    assert_eq!(count(&beyond.text()), 0);
    // Newest first: page 1 starts with the latest publication.
    let api = json(&get(g.addr, "/api/v1/stories?per_page=100").await);
    let times: Vec<u64> = api["stories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["published"].as_u64().unwrap())
        .collect();
    assert_eq!(times.len(), 45);
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    // Language filter: 22 of the plain stories are Russian.
    let ru = get(g.addr, "/p/test-publisher?lang=ru").await.text();
    assert!(ru.contains("22 stories."), "{ru}");
    let ru_api = json(&get(g.addr, "/api/v1/stories?lang=RU&per_page=5&page=5").await);
    assert_eq!(ru_api["total"], 22);
    assert_eq!(ru_api["stories"].as_array().unwrap().len(), 2);
    // Section filter.
    let news = json(&get(g.addr, "/api/v1/stories?section=News").await);
    assert_eq!(news["total"], 45);
    let none = json(&get(g.addr, "/api/v1/stories?section=Sport").await);
    assert_eq!(none["total"], 0);
    // Search over titles (each title names its story id).
    let hit = json(&get(g.addr, "/api/v1/stories?q=v1").await);
    assert_eq!(hit["total"], 45);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_things_are_404_and_bad_parameters_400() {
    let dir = TempDir::new().unwrap();
    let (samples, _store, g) = demo_gateway(&dir.path().join("newsroom")).await;
    let unknown = "0".repeat(64);
    let first = samples.id(0);
    for path in [
        format!("/story/{unknown}"),
        "/story/not-hex".into(),
        format!("/story/{first}x"),
        "/p/nobody".into(),
        "/p/nobody/feed.atom".into(),
        format!("/media/{first}/media/none.png"),
        // The body is served only sanitized, inside its page.
        format!("/media/{first}/index.html"),
        format!("/media/{unknown}/media/bell.png"),
        "/nothing/here".into(),
        format!("/api/v1/stories/{unknown}"),
        "/api/v1/publishers/nobody".into(),
        "/api/v1/stories?publisher=nobody".into(),
    ] {
        let r = get(g.addr, &path).await;
        assert_eq!(r.status, 404, "{path}");
        secure(&r, &path);
    }
    let long = "a".repeat(201);
    for path in [
        "/p/kolokol-demo?page=abc".to_owned(),
        "/p/kolokol-demo?page=0".into(),
        "/p/kolokol-demo?page=-1".into(),
        "/p/kolokol-demo?page=99999999999999999999999".into(),
        "/p/kolokol-demo?lang=%3Cscript%3E".into(),
        format!("/search?q={long}"),
        "/api/v1/stories?per_page=101".into(),
        "/api/v1/stories?page=x".into(),
        format!("/api/v1/stories?section={}", "s".repeat(200)),
    ] {
        let r = get(g.addr, &path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        secure(&r, &path);
        // The bad value is never echoed unescaped.
        assert!(!r.text().contains("<script>"));
    }
    // A method no route takes is refused with the same headers.
    let r = common::gateway::send(g.addr, "POST", "/", &[], b"x").await;
    assert_eq!(r.status, 405);
    secure(&r, "POST /");
}

/// Checks that `r` is an API error: JSON `{"error": {"status", "message"}}`
/// with the response's status, never the HTML page.
fn api_error(r: &common::gateway::Response, status: u16, what: &str) -> String {
    assert_eq!(
        r.status,
        status,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    secure(r, what);
    let v = json(r);
    assert_eq!(v["error"]["status"], status, "{what}: {v}");
    let message = v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!message.is_empty(), "{what}: {v}");
    assert!(!r.text().contains("<html"), "{what}");
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_json_and_its_index_lists_the_routes() {
    let dir = TempDir::new().unwrap();
    let (_samples, _store, g) = demo_gateway(&dir.path().join("newsroom")).await;
    let unknown = "0".repeat(64);
    for path in [
        "/api/v1/nothing".to_owned(),
        "/api/v2/status".into(),
        "/api/".into(),
        "/api".into(),
        format!("/api/v1/stories/{unknown}"),
        "/api/v1/stories/not-hex".into(),
        "/api/v1/publishers/nobody".into(),
        "/api/v1/stories?publisher=nobody".into(),
    ] {
        let m = api_error(&get(g.addr, &path).await, 404, &path);
        if path.contains("nothing") {
            assert!(m.contains("/api/v1/"), "{path}: {m}");
        }
    }
    for path in [
        "/api/v1/stories?per_page=101",
        "/api/v1/stories?page=x",
        "/api/v1/stories?per_page=0",
    ] {
        api_error(&get(g.addr, path).await, 400, path);
    }
    for path in ["/api/v1/status", "/api/v1/stories", "/api/v1/"] {
        let r = common::gateway::send(g.addr, "POST", path, &[], b"x").await;
        api_error(&r, 405, &format!("POST {path}"));
    }
    // The host check's refusal, under /api/, is an API error too.
    let r = get_with(g.addr, "/api/v1/status", &[("Host", "evil.example")]).await;
    api_error(&r, 421, "other host");
    // Outside /api/ the pages stay HTML.
    let r = get(g.addr, "/nothing/here").await;
    assert_eq!(r.status, 404);
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html")
    );

    // The index, with or without its slash, lists every route once, and
    // each route without a parameter in it answers.
    for path in ["/api/v1/", "/api/v1"] {
        let r = get(g.addr, path).await;
        assert_eq!(r.status, 200, "{path}");
        secure(&r, path);
        let v = json(&r);
        let routes = v["routes"].as_array().unwrap();
        let paths: Vec<&str> = routes.iter().map(|r| r["path"].as_str().unwrap()).collect();
        for want in [
            "/api/v1/status",
            "/api/v1/publishers",
            "/api/v1/publishers/{name}",
            "/api/v1/stories",
            "/api/v1/stories/{id}",
        ] {
            assert_eq!(
                paths.iter().filter(|p| **p == want).count(),
                1,
                "{want}: {v}"
            );
        }
        for route in routes {
            let d = route["description"].as_str().unwrap();
            assert!(!d.is_empty() && !d.contains('\n'), "{route}");
            let p = route["path"].as_str().unwrap();
            if !p.contains('{') {
                assert_eq!(get(g.addr, p).await.status, 200, "{p}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_host_names_are_refused_unless_public() {
    let dir = TempDir::new().unwrap();
    let samples = Samples::sign(&dir.path().join("newsroom"));
    let store = Arc::new(Store::memory(StoreConfig::default()));
    samples.store_into(&store);
    let local = serve(GatewayState::new(
        store.clone(),
        vec![samples.publisher.clone()],
    ))
    .await;
    for host in ["localhost:8080", "127.0.0.1", "[::1]:8080"] {
        assert_eq!(
            get_with(local.addr, "/", &[("Host", host)]).await.status,
            200,
            "{host}"
        );
    }
    // A page elsewhere that rebinds its name to 127.0.0.1 gets nothing.
    let r = get_with(
        local.addr,
        "/api/v1/status",
        &[("Host", "evil.example:8080")],
    )
    .await;
    assert_eq!(r.status, 421);
    secure(&r, "refused");
    // Read whole: a loopback address with a name glued on is not loopback.
    for host in [
        "[::1]evil.example",
        "[::1]evil.example:8080",
        "127.0.0.1:80evil",
    ] {
        let r = get_with(local.addr, "/api/v1/status", &[("Host", host)]).await;
        assert_eq!(r.status, 421, "{host}");
    }
    let public =
        serve(GatewayState::new(store.clone(), vec![samples.publisher.clone()]).public(true)).await;
    let r = get_with(public.addr, "/", &[("Host", "news.example")]).await;
    assert_eq!(r.status, 200);
    let _ = wall_clock();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_its_gateway_and_says_where() {
    use kolokol::config::Config;
    use kolokol::net::NetConfig;
    let dir = TempDir::new().unwrap();
    let mut config = Config {
        net: NetConfig::for_tests(),
        ..Config::default()
    };
    config.gateway.address = "127.0.0.1:0".into();
    let data = dir.path().join("node");
    let running = kolokol::node::start(&data, config.clone()).await.unwrap();
    let addr = running.gateway.expect("the gateway runs");
    assert!(addr.ip().is_loopback());
    let node_file = std::fs::read_to_string(data.join("node.toml")).unwrap();
    assert!(
        node_file.contains(&format!("gateway = \"{addr}\"")),
        "{node_file}"
    );
    let status = json(&get(addr, "/api/v1/status").await);
    assert_eq!(
        status["network"]["peer_id"],
        running.network.peer_id().to_string()
    );
    assert_eq!(status["network"]["role"], "share");
    // The Safety page, linked from every page's footer, says this node's
    // role, what is on disk, who sees what and how to wipe it.
    let home = get(addr, "/").await.text();
    assert!(home.contains("href=\"/safety\""), "{home}");
    let safety = get(addr, "/safety").await.text();
    for said in [
        "This node shares (--share).",
        "What is on this device",
        "not which outlets among them you read",
        "then delete its data directory",
    ] {
        assert!(safety.contains(said), "{said:?} not in {safety}");
    }

    // A publisher trusted while the node runs appears at once.
    let p = Publisher::new(60);
    let file = PublisherFile::parse(
        &common::trust_file(&p, "late-news"),
        std::path::Path::new("late-news.toml"),
    )
    .unwrap();
    kolokol::trust::TrustList::open(&data)
        .unwrap()
        .add_file(&file)
        .unwrap();
    let home = get(addr, "/").await.text();
    assert!(home.contains("href=\"/p/late-news\""), "{home}");

    // Its port taken, a second node refuses to start, and says why.
    let mut taken = config.clone();
    taken.gateway.address = addr.to_string();
    let err = kolokol::node::start(&dir.path().join("other"), taken)
        .await
        .err()
        .expect("the port is taken")
        .to_string();
    assert!(
        err.contains(&addr.to_string()) && err.contains("gateway"),
        "{err}"
    );
    // Beyond loopback only when asked for.
    let mut open = config.clone();
    open.gateway.address = "0.0.0.0:0".into();
    let err = kolokol::node::start(&dir.path().join("third"), open)
        .await
        .err()
        .expect("not loopback")
        .to_string();
    assert!(err.contains("public = true"), "{err}");
    // Switched off, there is none.
    let mut off = config;
    off.gateway.enabled = false;
    let quiet = kolokol::node::start(&dir.path().join("fourth"), off)
        .await
        .unwrap();
    assert!(quiet.gateway.is_none());
    quiet.stop().await.unwrap();
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_story_stored_while_serving_shows_up_and_connections_are_bounded() {
    let store = Arc::new(Store::memory(StoreConfig::default()));
    let (p, file) = hostile_publisher(&store, 1);
    let g = serve(GatewayState::new(store.clone(), vec![file])).await;
    let before = get(g.addr, "/p/test-publisher").await.text();
    assert!(before.contains("2 stories."), "{before}");
    // A node stores a new story: lists follow within about a second.
    let mut s = common::story(&p, 3, 9, b"arrived later");
    s.language = "en";
    store.ingest(&[s.verified()]).unwrap();
    let start = std::time::Instant::now();
    loop {
        let now = get(g.addr, "/p/test-publisher").await.text();
        if now.contains("3 stories.") {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the new story never showed: {now}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Idle connections up to the limit hold every place...
    let mut idle = Vec::new();
    for _ in 0..kolokol::gateway::MAX_CONNECTIONS {
        idle.push(tokio::net::TcpStream::connect(g.addr).await.unwrap());
    }
    // ... so one more waits (the kernel accepts it; the gateway does not
    // answer yet) ...
    let waiting = tokio::spawn(get(g.addr, "/api/v1/publishers"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a connection beyond the limit was served"
    );
    // ... until one closes.
    idle.pop();
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("served once a place is free")
        .unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn kolokol_node_says_when_the_gateway_port_is_taken() {
    let dir = TempDir::new().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kolokol"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["node", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"])
        .args(["--gateway", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr) && err.contains("--gateway"), "{err}");
    // And beyond loopback only with --gateway-public.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kolokol"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["node", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"])
        .args(["--gateway", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not loopback"));
}
