//! The gateway in the readers' languages, over HTTP on loopback: the
//! language from `Accept-Language`, the switch and its cookie winning
//! over the header, `lang` and `dir` of the page apart from each story's
//! own, plurals and dates, the explained "missing", and the headers
//! (`no-store` everywhere, `Vary` on what depends on the language).

mod common;

use std::sync::Arc;

use common::gateway::{Response, demo_gateway, get_with, serve};
use common::{Publisher, T0};
use kolokol::gateway::GatewayState;
use kolokol::store::{Store, StoreConfig};
use kolokol::trust::PublisherFile;
use tempfile::TempDir;

fn html_of(r: &Response) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        r.header("vary"),
        Some("Accept-Language, Cookie"),
        "{:?}",
        r.headers
    );
    r.text()
}

async fn page(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> String {
    html_of(&get_with(addr, path, headers).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_language_picks_the_pages_language_and_direction() {
    let dir = TempDir::new().unwrap();
    let (samples, _store, g) = demo_gateway(&dir.path().join("newsroom")).await;
    let a = g.addr;

    // No header: English, as before.
    let en = page(a, "/", &[]).await;
    assert!(en.contains("<html lang=\"en\" dir=\"ltr\">"), "{en}");
    assert!(en.contains("Your newsrooms"));

    // Russian, with the quality values of a real browser.
    let ru = page(a, "/", &[("Accept-Language", "ru-RU,ru;q=0.9,en-US;q=0.8")]).await;
    assert!(ru.contains("<html lang=\"ru\" dir=\"ltr\">"), "{ru}");
    for want in [
        "Ваши редакции",
        "Последние материалы",
        "Хранится 4 материала (6 пакетов).",
        "Ничего не упущено",
        "Последний сигнал от редакции",
        "назад",
        "placeholder=\"Поиск\"",
        ">Безопасность</a>",
        ">Добавить редакцию</a>",
    ] {
        assert!(ru.contains(want), "{want:?} not in {ru}");
    }
    // The page that adds a newsroom speaks the reader's language too.
    let add = page(a, "/add", &[("Accept-Language", "ar")]).await;
    assert!(add.contains("<html lang=\"ar\" dir=\"rtl\">"), "{add}");
    assert!(add.contains("إضافة غرفة أخبار"), "{add}");
    assert!(!ru.contains("Your newsrooms"));
    // A story keeps its own language and direction inside a Russian page.
    assert!(ru.contains("<article lang=\"ar\" dir=\"rtl\">"), "{ru}");

    // Arabic: right to left, with the Arabic plural forms.
    let ar = page(a, "/", &[("Accept-Language", "ar")]).await;
    assert!(ar.contains("<html lang=\"ar\" dir=\"rtl\">"), "{ar}");
    for want in [
        "مؤسساتك الإخبارية",
        "أحدث الأخبار",
        "4 أخبار محفوظة (6 حزم).",
        "منذ",
    ] {
        assert!(ar.contains(want), "{want:?} not in {ar}");
    }
    // The Russian story stays Russian and left to right in an Arabic page.
    let story = page(
        a,
        &format!("/story/{}", samples.id(2)),
        &[("Accept-Language", "ar")],
    )
    .await;
    assert!(story.contains("<html lang=\"ar\" dir=\"rtl\">"), "{story}");
    assert!(
        story.contains("<article class=\"story\" lang=\"ru\" dir=\"ltr\">"),
        "{story}"
    );
    assert!(story.contains("«Колокол» звонит снова"));
    for want in ["التحقق", "مفتاح التوقيع", "الإصدار الذي فتحته"]
    {
        assert!(story.contains(want), "{want:?} not in {story}");
    }

    // The corrected story in Ukrainian: banners and panel, a genitive
    // month in each date.
    let uk = page(
        a,
        &format!("/story/{}", samples.id(1)),
        &[("Accept-Language", "uk")],
    )
    .await;
    for want in [
        "Перевірка",
        "Ключ підпису",
        "серійний номер 1, чинний з",
        "<dd>2 (виправлення)</dd>",
        "Версія 1</a> · матеріал",
        "Виправлено",
        " р., ",
    ] {
        assert!(uk.contains(want), "{want:?} not in {uk}");
    }
    let months = [
        "січня",
        "лютого",
        "березня",
        "квітня",
        "травня",
        "червня",
        "липня",
        "серпня",
        "вересня",
        "жовтня",
        "листопада",
        "грудня",
    ];
    assert!(months.iter().any(|m| uk.contains(m)), "{uk}");
    // Search in Belarusian, with the plural of one.
    let be = page(
        a,
        "/search?q=%D0%9A%D0%9E%D0%9B%D0%9E%D0%9A%D0%9E%D0%9B",
        &[("Accept-Language", "be")],
    )
    .await; // КОЛОКОЛ
    assert!(be.contains("знойдзены 1 матэрыял."), "{be}");
    // Persian, right to left; an error page too.
    let fa = page(a, "/safety", &[("Accept-Language", "fa;q=0.8, de")]).await;
    assert!(fa.contains("<html lang=\"fa\" dir=\"rtl\">"), "{fa}");
    assert!(fa.contains("چه چیزی روی این دستگاه است"), "{fa}");
    let missing = get_with(a, "/nothing-here", &[("Accept-Language", "uk")]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("cache-control"), Some("no-store"));
    let missing = missing.text();
    assert!(
        missing.contains("<html lang=\"uk\" dir=\"ltr\">"),
        "{missing}"
    );
    assert!(missing.contains("Не знайдено"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_hostile_headers_fall_back_to_english() {
    let dir = TempDir::new().unwrap();
    let (_samples, _store, g) = demo_gateway(&dir.path().join("newsroom")).await;
    let big = "xx-YY;q=0.5,".repeat(900);
    assert!(big.len() > 10_000);
    for header in [
        "de-DE, fr;q=0.8",
        "*",
        "ru;q=0",
        ";;;,,,q=,",
        "ru;q=5",
        "русский, ру",
        big.as_str(),
    ] {
        let r = get_with(g.addr, "/", &[("Accept-Language", header)]).await;
        let text = html_of(&r);
        assert!(
            text.contains("<html lang=\"en\" dir=\"ltr\">"),
            "{header:?}: {}",
            text.chars().take(200).collect::<String>()
        );
    }
    // A long header whose first entries name a language still works.
    let long = format!("ar;q=0.9,{big}");
    let text = page(g.addr, "/", &[("Accept-Language", &long)]).await;
    assert!(text.contains("<html lang=\"ar\" dir=\"rtl\">"));
    // An address that looks like another site's does not leak into the
    // language links.
    let r = get_with(g.addr, "//elsewhere.example/page?ui=ru", &[]).await;
    assert_eq!(r.status, 404);
    let text = r.text();
    assert!(!text.contains("elsewhere"), "{text}");
    assert!(text.contains("href=\"/?ui=ar\""), "{text}");
    // A cookie naming an unknown language is ignored too.
    let text = page(
        g.addr,
        "/",
        &[("Cookie", "kolokol-lang=xx"), ("Accept-Language", "ru")],
    )
    .await;
    assert!(text.contains("<html lang=\"ru\" dir=\"ltr\">"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_sets_a_session_cookie_that_wins_over_the_header() {
    let dir = TempDir::new().unwrap();
    let (_samples, _store, g) = demo_gateway(&dir.path().join("newsroom")).await;
    let a = g.addr;
    // Every page links to itself in every language, keeping its query.
    let search = page(a, "/search?q=bell&ui=ru", &[]).await;
    for tag in ["en", "ru", "uk", "be", "ar", "fa"] {
        assert!(
            search.contains(&format!("href=\"/search?q=bell&amp;ui={tag}\"")),
            "{tag}: {search}"
        );
    }
    assert!(
        search.contains("aria-current=\"true\">Русский</a>"),
        "{search}"
    );
    assert!(search.contains(">العربية</a>"));

    // Following a link: the page in that language, and the cookie.
    let r = get_with(a, "/?ui=ar", &[("Accept-Language", "ru")]).await;
    let text = html_of(&r);
    assert!(text.contains("<html lang=\"ar\" dir=\"rtl\">"));
    let cookie = r.header("set-cookie").expect("a cookie").to_owned();
    assert_eq!(cookie, "kolokol-lang=ar; Path=/; SameSite=Strict; HttpOnly");
    let lower = cookie.to_ascii_lowercase();
    assert!(!lower.contains("max-age") && !lower.contains("expires"));

    // The browser sends it back: Arabic although the header says Russian.
    let pair = cookie.split(';').next().unwrap();
    let r = get_with(
        a,
        "/p/kolokol-demo",
        &[("Cookie", pair), ("Accept-Language", "ru")],
    )
    .await;
    let text = html_of(&r);
    assert!(text.contains("<html lang=\"ar\" dir=\"rtl\">"), "{text}");
    assert!(text.contains("4 أخبار."), "{text}");
    assert_eq!(r.header("set-cookie"), None, "only a choice sets it");
    // A new choice replaces it.
    let r = get_with(a, "/?ui=en", &[("Cookie", pair)]).await;
    assert!(html_of(&r).contains("<html lang=\"en\" dir=\"ltr\">"));
    assert_eq!(
        r.header("set-cookie"),
        Some("kolokol-lang=en; Path=/; SameSite=Strict; HttpOnly")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_feeds_are_not_translated() {
    let dir = TempDir::new().unwrap();
    let (_samples, _store, g) = demo_gateway(&dir.path().join("newsroom")).await;
    for path in ["/api/v1/status", "/api/v1/stories", "/feed.atom"] {
        let plain = get_with(g.addr, path, &[]).await;
        let ru = get_with(
            g.addr,
            path,
            &[("Accept-Language", "ru"), ("Cookie", "kolokol-lang=ar")],
        )
        .await;
        assert_eq!(ru.status, 200, "{path}");
        assert_eq!(ru.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(ru.header("vary"), None, "{path}");
        if path != "/api/v1/status" {
            assert_eq!(plain.body, ru.body, "{path}");
        }
    }
    let css = get_with(g.addr, "/static/style.css", &[("Accept-Language", "ar")]).await;
    assert_eq!(css.header("vary"), None);
    assert_eq!(css.header("cache-control"), Some("no-store"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_stories_are_explained_in_each_language() {
    let store = Arc::new(Store::memory(StoreConfig::default()));
    let p = Publisher::new(70);
    let policy = p.policy();
    store
        .put_certificate(&policy.verify_certificate(&p.cert).unwrap())
        .unwrap();
    // The newsroom says it published 7; this node holds 1 and 2.
    let head = policy.verify_head(&p.head(7, T0.plus(60)), T0.plus(120));
    store.record_head(&head.unwrap()).unwrap();
    for seq in 1..=2 {
        store
            .ingest(&[common::story(&p, seq, seq as u8, b"<p>text</p>").verified()])
            .unwrap();
    }
    let file = PublisherFile::parse(
        &common::trust_file(&p, "gaps"),
        std::path::Path::new("gaps.toml"),
    )
    .unwrap();
    let g = serve(GatewayState::new(store, vec![file])).await;
    let en = page(g.addr, "/", &[]).await;
    assert!(en.contains("2 stories held (2 bundles)."), "{en}");
    assert!(
        en.contains("5 missing: stories, corrections or retractions this newsroom has published have not reached this node yet."),
        "{en}"
    );
    let ru = page(g.addr, "/", &[("Accept-Language", "ru")]).await;
    assert!(
        ru.contains("Не хватает 5 публикаций: редакция уже выпустила"),
        "{ru}"
    );
    assert!(ru.contains("Хранится 2 материала (2 пакета)."), "{ru}");
    // Its head expired long ago: the warning, translated.
    assert!(
        ru.contains("срок действия последнего сигнала этой редакции истёк"),
        "{ru}"
    );
    let ar = page(g.addr, "/", &[("Accept-Language", "ar")]).await;
    assert!(ar.contains("تنقص 5 منشورات: أخبار أو تصحيحات"), "{ar}");
    assert!(ar.contains("خبران محفوظان (حزمتان)."), "{ar}");
    let fa = page(g.addr, "/", &[("Accept-Language", "fa")]).await;
    assert!(fa.contains("5 مورد کم است:"), "{fa}");
}
