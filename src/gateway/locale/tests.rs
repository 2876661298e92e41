use std::collections::BTreeSet;

use fluent_syntax::ast;

use super::*;

fn languages() -> Languages {
    let (l, errors) = Languages::load();
    assert!(errors.is_empty(), "{errors:#?}");
    l
}

fn locale(tag: &str) -> Locale {
    let uri: Uri = format!("/?ui={tag}").parse().unwrap();
    let (l, how) = Locale::of(&uri, &HeaderMap::new()).unwrap();
    assert_eq!(how, Chosen::Param);
    assert_eq!(l.tag(), tag);
    l
}

fn negotiated(accept: &str) -> Option<&'static str> {
    languages().negotiate(accept).map(|l| l.tag)
}

#[test]
fn every_file_parses() {
    let l = languages();
    assert_eq!(l.all.len(), SOURCES.len());
    assert_eq!(l.english().unwrap().tag, "en");
}

#[test]
fn a_bad_file_is_reported_with_its_line() {
    let source = "ok = fine\n= no id\nnext = fine\n";
    let Err((_, errs)) = FluentResource::try_new(source.to_owned()) else {
        panic!("the file parsed");
    };
    assert_eq!(line_of(source, errs[0].pos.start), 2);
}

/// The variables a pattern uses, through selectors and variants.
fn variables<'s>(p: &ast::Pattern<&'s str>, out: &mut BTreeSet<&'s str>) {
    fn inline<'s>(e: &ast::InlineExpression<&'s str>, out: &mut BTreeSet<&'s str>) {
        match e {
            ast::InlineExpression::VariableReference { id } => {
                out.insert(id.name);
            }
            ast::InlineExpression::FunctionReference { arguments, .. } => {
                for a in &arguments.positional {
                    inline(a, out);
                }
            }
            ast::InlineExpression::Placeable { expression } => expr(expression, out),
            _ => {}
        }
    }
    fn expr<'s>(e: &ast::Expression<&'s str>, out: &mut BTreeSet<&'s str>) {
        match e {
            ast::Expression::Select { selector, variants } => {
                inline(selector, out);
                for v in variants {
                    variables(&v.value, out);
                }
            }
            ast::Expression::Inline(i) => inline(i, out),
        }
    }
    for el in &p.elements {
        if let ast::PatternElement::Placeable { expression } = el {
            expr(expression, out);
        }
    }
}

/// Each message id of a file, with the variables it uses.
fn messages(source: &str) -> Vec<(String, BTreeSet<String>)> {
    let r = FluentResource::try_new(source.to_owned()).unwrap_or_else(|(r, _)| r);
    r.entries()
        .filter_map(|e| match e {
            ast::Entry::Message(m) => {
                let mut vars = BTreeSet::new();
                if let Some(v) = &m.value {
                    variables(v, &mut vars);
                }
                Some((
                    m.id.name.to_owned(),
                    vars.into_iter().map(str::to_owned).collect(),
                ))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn every_language_has_every_message_and_each_formats_cleanly() {
    let l = languages();
    let english = messages(SOURCES[0].1);
    assert!(english.len() > 50, "{}", english.len());
    for &(tag, source) in SOURCES {
        let lang = l.find(tag).unwrap();
        let own: Vec<String> = messages(source).into_iter().map(|(id, _)| id).collect();
        for id in &own {
            assert!(
                english.iter().any(|(e, _)| e == id),
                "{tag}: {id} is not an English message"
            );
        }
        for (id, vars) in &english {
            assert!(own.contains(id), "{tag}: no message {id}");
            let pattern = lang.bundle.get_message(id).unwrap().value().unwrap();
            // Every plural category's number, a name and a text.
            for n in [0u64, 1, 2, 3, 5, 11, 21, 100, 101, 1_000_000] {
                let mut args = FluentArgs::new();
                for v in vars {
                    match v.as_str() {
                        "query" | "detail" | "address" | "title" | "month" | "duration"
                        | "first" | "second" | "kind" | "date" | "ago" | "from" | "to"
                        | "corrected" | "default" | "flag" | "time" | "day" | "year" | "why" => {
                            args.set(v.as_str(), "x")
                        }
                        _ => args.set(v.as_str(), n),
                    }
                }
                let mut errors = Vec::new();
                let out = lang
                    .bundle
                    .format_pattern(pattern, Some(&args), &mut errors);
                assert!(errors.is_empty(), "{tag} {id} ({n}): {errors:?}");
                assert!(!out.trim().is_empty(), "{tag} {id}: empty");
            }
            // A translation uses no argument English does not give.
            let own_vars = messages(source)
                .into_iter()
                .find(|(i, _)| i == id)
                .map(|(_, v)| v)
                .unwrap_or_default();
            assert!(
                own_vars.is_subset(vars),
                "{tag} {id}: uses {own_vars:?}, English gives {vars:?}"
            );
        }
    }
}

#[test]
fn russian_plurals() {
    let ru = locale("ru");
    let held = |n: u64| ru.count("publisher-count", n);
    assert_eq!(held(1), "1 материал.");
    assert_eq!(held(2), "2 материала.");
    assert_eq!(held(5), "5 материалов.");
    assert_eq!(held(21), "21 материал.");
    assert_eq!(held(11), "11 материалов.");
    assert_eq!(held(22), "22 материала.");
    assert_eq!(ru.duration(60), "1 минуту");
    assert_eq!(ru.duration(3 * 3600 + 5 * 60), "3 часа 5 минут");
    assert_eq!(ru.ago(21 * 86_400), "21 день назад");
}

#[test]
fn arabic_plurals() {
    let ar = locale("ar");
    let held = |n: u64| ar.count("publisher-count", n);
    assert_eq!(held(0), "لا توجد أخبار.");
    assert_eq!(held(1), "خبر واحد.");
    assert_eq!(held(2), "خبران.");
    assert_eq!(held(3), "3 أخبار.");
    assert_eq!(held(11), "11 خبرًا.");
    assert_eq!(held(100), "100 خبر.");
    assert_eq!(ar.duration(2 * 3600), "ساعتين");
    assert_eq!(ar.ago(3 * 3600 + 5 * 60), "منذ 3 ساعات و5 دقائق");
    assert_eq!(ar.dir(), "rtl");
}

#[test]
fn other_plurals() {
    let uk = locale("uk");
    assert_eq!(uk.count("publisher-count", 3), "3 матеріали.");
    assert_eq!(uk.count("publisher-count", 11), "11 матеріалів.");
    let be = locale("be");
    assert_eq!(be.count("publisher-count", 21), "21 матэрыял.");
    assert_eq!(be.count("publisher-count", 5), "5 матэрыялаў.");
    let fa = locale("fa");
    assert_eq!(fa.count("publisher-count", 1), "1 خبر.");
    assert_eq!(fa.count("publisher-count", 7), "7 خبر.");
    assert_eq!(fa.dir(), "rtl");
    let en = locale("en");
    assert_eq!(en.count("publisher-count", 1), "1 story.");
    assert_eq!(en.count("publisher-count", 2), "2 stories.");
    assert_eq!(en.duration(0), "0 seconds");
    assert_eq!(en.duration(2 * 86_400 + 1), "2 days 1 second");
}

#[test]
fn dates_in_each_language() {
    // 2026-11-20 08:05 UTC.
    let t = Timestamp(1_795_161_900);
    assert_eq!(locale("en").date(t), "20 November 2026, 08:05 UTC");
    assert_eq!(locale("ru").date(t), "20 ноября 2026 г., 08:05 UTC");
    assert_eq!(locale("uk").date(t), "20 листопада 2026 р., 08:05 UTC");
    assert_eq!(locale("be").date(t), "20 лістапада 2026 г., 08:05 UTC");
    assert_eq!(locale("ar").date(t), "20 نوفمبر 2026، 08:05 UTC");
    assert_eq!(locale("fa").date(t), "20 نوامبر 2026، ساعت 08:05 UTC");
    assert_eq!(locale("en").date(Timestamp(0)), "1 January 1970, 00:00 UTC");
}

#[test]
fn negotiation_honours_quality() {
    assert_eq!(negotiated("ru"), Some("ru"));
    assert_eq!(negotiated("ru-RU,ru;q=0.9,en;q=0.8"), Some("ru"));
    assert_eq!(negotiated("de;q=1, fa;q=0.4, ar;q=0.5"), Some("ar"));
    assert_eq!(negotiated("en;q=0.1, uk"), Some("uk"));
    assert_eq!(negotiated("BE-by"), Some("be"));
    // Equal qualities keep the header's order.
    assert_eq!(negotiated("fa;q=0.5, ar;q=0.5"), Some("fa"));
    // q=0 means "not this one".
    assert_eq!(negotiated("ru;q=0, ar;q=0.001"), Some("ar"));
    assert_eq!(negotiated("ru;q=0"), None);
    assert_eq!(negotiated("ru;q=0.000, uk;q=1.000"), Some("uk"));
}

#[test]
fn negotiation_falls_back_to_english() {
    assert_eq!(negotiated("de, fr;q=0.5"), None);
    assert_eq!(negotiated("*"), None);
    assert_eq!(negotiated(""), None);
    let uri: Uri = "/".parse().unwrap();
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("zh-CN"));
    assert_eq!(Locale::of(&uri, &h).unwrap().0.tag(), "en");
}

#[test]
fn negotiation_ignores_garbage() {
    for bad in [
        "ru;q=2",
        "ru;q=1.5",
        "ru;q=0.5555",
        "ru;q=abc",
        "ru;q=-1",
        "ru;q=",
        "ru;q",
        "r u",
        "ru!",
        "123",
        "ruuuuuuuu",
        "-ru",
        "ru-",
        ";;;,,,",
        "ar;q=0.5;q=x",
        "фа",
    ] {
        assert_eq!(negotiated(bad), None, "{bad:?}");
    }
    // Garbage beside a good entry leaves the good one.
    assert_eq!(negotiated("???, ar;q=0.3, ru;q=7"), Some("ar"));
}

#[test]
fn negotiation_is_bounded() {
    // A 10 KB header: only its first entries are read, fast.
    let mut big = String::from("ar;q=0.2,");
    while big.len() < 10 * 1024 {
        big.push_str("xx;q=0.9,");
    }
    big.push_str("ru;q=1");
    let start = std::time::Instant::now();
    assert_eq!(negotiated(&big), Some("ar"));
    assert!(accept_language(&big).len() <= MAX_ACCEPT_ENTRIES);
    // Past the first entries nothing counts, even a better one.
    let many = format!("{}ru", "de,".repeat(MAX_ACCEPT_ENTRIES));
    assert_eq!(negotiated(&many), None);
    // A multi-byte character at the cut does not break the parse.
    let cut = format!("{}фа", "a".repeat(MAX_ACCEPT_LANGUAGE - 1));
    assert!(accept_language(&cut).is_empty());
    assert!(start.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn an_explicit_choice_wins_over_the_header() {
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("ar"));
    let uri: Uri = "/".parse().unwrap();
    assert_eq!(Locale::of(&uri, &h).unwrap().0.tag(), "ar");
    h.insert(
        header::COOKIE,
        HeaderValue::from_static("a=b; kolokol-lang=uk"),
    );
    let (l, how) = Locale::of(&uri, &h).unwrap();
    assert_eq!((l.tag(), how), ("uk", Chosen::Kept));
    let uri: Uri = "/search?q=x&ui=fa&page=2".parse().unwrap();
    let (l, how) = Locale::of(&uri, &h).unwrap();
    assert_eq!((l.tag(), how), ("fa", Chosen::Param));
    // The links keep the page's other parameters.
    assert_eq!(&*l.here, "/search?q=x&page=2");
    // An unknown choice is no choice.
    let uri: Uri = "/?ui=xx".parse().unwrap();
    assert_eq!(Locale::of(&uri, &h).unwrap().0.tag(), "uk");
}

#[test]
fn the_links_stay_on_this_node() {
    for (uri, here) in [
        ("/p/x?lang=ru&ui=ar", "/p/x?lang=ru"),
        ("//elsewhere.example/a?ui=ru", "/"),
        ("/\\elsewhere.example", "/"),
        ("/?ui=ru&ui=ar", "/"),
    ] {
        let uri: Uri = uri.parse().unwrap();
        assert_eq!(here_of(&uri), here, "{uri}");
    }
    let uri: Uri = "//elsewhere.example/".parse().unwrap();
    let (l, _) = Locale::of(&uri, &HeaderMap::new()).unwrap();
    let links = l.switch().into_string();
    assert!(!links.contains("href=\"//"), "{links}");
    assert!(links.contains("href=\"/?ui=ar\""), "{links}");
}

#[test]
fn markup_slots_are_placed_and_text_escaped() {
    let en = locale("en");
    let m = en.markup(
        "search-found",
        &[("count", 2u64.into())],
        &[("query", html! { q { "<b>" } })],
    );
    assert_eq!(m.into_string(), "2 stories match <q>&lt;b&gt;</q>.");
    let ru = locale("ru");
    let m = ru.markup(
        "verify-certificate-validity",
        &[("serial", 1u64.into())],
        &[("from", html! { i { "a" } }), ("to", html! { i { "b" } })],
    );
    assert_eq!(
        m.into_string(),
        "серийный номер 1, действует с <i>a</i> по <i>b</i>"
    );
}
