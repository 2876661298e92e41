use std::sync::Arc;

use super::*;
use crate::seal::{DataKey, Sealer};

fn p(n: u8) -> PublicKey {
    PublicKey([n; 32])
}

fn s(n: u8) -> StoryId {
    StoryId([n; 16])
}

fn doc<'a>(
    publisher: &'a PublicKey,
    story: &'a StoryId,
    language: &'a str,
    title: &'a str,
    body: &'a str,
) -> Doc<'a> {
    Doc {
        publisher,
        story,
        language,
        title,
        summary: None,
        section: None,
        body,
    }
}

fn found(index: &Search, query: &str) -> Vec<StoryId> {
    index
        .search(query, Narrow::default(), 0, 10)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.story)
        .collect()
}

fn sample(index: &Search) {
    let (a, b) = (p(1), p(2));
    let stories = [s(1), s(2), s(3), s(4), s(5)];
    index
        .add(&doc(
            &a,
            &stories[0],
            "ru",
            "Выборы в городе",
            "Избиратели пришли на участки с утра.",
        ))
        .unwrap();
    index
        .add(&doc(
            &a,
            &stories[1],
            "en",
            "Elections postponed",
            "The voters were sent home.",
        ))
        .unwrap();
    index
        .add(&doc(
            &b,
            &stories[2],
            "uk",
            "Новини дня",
            "Сьогодні у Києві відбулися протести.",
        ))
        .unwrap();
    index
        .add(&doc(
            &b,
            &stories[3],
            "fa",
            "خبر امروز",
            "اعتراضات در تهران ادامه دارد",
        ))
        .unwrap();
    index
        .add(&doc(
            &b,
            &stories[4],
            "en",
            "A story about running",
            "Nothing about elections here.",
        ))
        .unwrap();
    index.commit().unwrap();
}

#[test]
fn russian_and_english_words_are_found_by_their_stems() {
    let index = Search::memory().unwrap();
    sample(&index);
    assert_eq!(index.len(), 5);
    // "выборов" and "выборы" share a stem; "избирателей" and "Избиратели".
    assert_eq!(found(&index, "выборов"), vec![s(1)]);
    assert_eq!(found(&index, "избирателей"), vec![s(1)]);
    // "election" finds both English stories, the one with it in the
    // headline first.
    assert_eq!(found(&index, "election"), vec![s(2), s(5)]);
    assert_eq!(found(&index, "voter"), vec![s(2)]);
    // Languages without a stemmer are still found by their words.
    assert_eq!(found(&index, "Києві"), vec![s(3)]);
    assert_eq!(found(&index, "تهران"), vec![s(4)]);
    // Every word must match.
    assert_eq!(found(&index, "elections voters"), vec![s(2)]);
    assert!(found(&index, "elections протести").is_empty());
}

#[test]
fn a_search_is_narrowed_by_publisher_and_language_and_paged() {
    let index = Search::memory().unwrap();
    sample(&index);
    let (a, b) = (p(1), p(2));
    let search = |narrow: Narrow<'_>, skip, limit| {
        let f = index.search("election", narrow, skip, limit).unwrap();
        (
            f.total,
            f.hits.into_iter().map(|h| h.story).collect::<Vec<_>>(),
        )
    };
    assert_eq!(search(Narrow::default(), 0, 10), (2, vec![s(2), s(5)]));
    let only_a = Narrow {
        section: None,
        publishers: Some(std::slice::from_ref(&a)),
        language: None,
    };
    assert_eq!(search(only_a, 0, 10), (1, vec![s(2)]));
    let only_b = Narrow {
        section: None,
        publishers: Some(std::slice::from_ref(&b)),
        language: Some("EN"),
    };
    assert_eq!(search(only_b, 0, 10), (1, vec![s(5)]));
    let both = [a, b];
    let all = Narrow {
        section: None,
        publishers: Some(&both),
        language: None,
    };
    assert_eq!(search(all, 0, 10), (2, vec![s(2), s(5)]));
    let other = [p(3), b];
    let not_a = Narrow {
        section: None,
        publishers: Some(&other),
        language: None,
    };
    assert_eq!(search(not_a, 0, 10), (1, vec![s(5)]));
    let nobody = Narrow {
        section: None,
        publishers: Some(&[]),
        language: None,
    };
    assert_eq!(search(nobody, 0, 10), (0, vec![]));
    let russian = Narrow {
        section: None,
        publishers: None,
        language: Some("ru"),
    };
    assert_eq!(search(russian, 0, 10), (0, vec![]));
    // The narrowing does not change the rank: the second page of one is
    // the second story of the whole list.
    assert_eq!(search(Narrow::default(), 1, 1), (2, vec![s(5)]));
    assert_eq!(search(Narrow::default(), 0, 1), (2, vec![s(2)]));
    let first = index.search("election", Narrow::default(), 0, 10).unwrap();
    let narrowed = index.search("election", only_b, 0, 10).unwrap();
    assert_eq!(first.hits[1].score, narrowed.hits[0].score);
}

#[test]
fn an_index_of_another_schema_is_emptied_for_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut b = tantivy::schema::Schema::builder();
        let f = b.add_text_field("id", tantivy::schema::STRING | tantivy::schema::STORED);
        let old = tantivy::Index::create_in_dir(dir.path(), b.build()).unwrap();
        let mut w: tantivy::IndexWriter = old.writer_with_num_threads(1, 15_000_000).unwrap();
        w.add_document(tantivy::doc!(f => "old")).unwrap();
        w.commit().unwrap();
    }
    let index = Search::open(dir.path(), None).unwrap();
    assert!(index.is_empty());
    sample(&index);
    drop(index);
    let index = Search::open(dir.path(), None).unwrap();
    assert_eq!(found(&index, "election"), vec![s(2), s(5)]);
}

#[test]
fn a_new_version_replaces_the_old_and_a_retraction_removes_it() {
    let index = Search::memory().unwrap();
    sample(&index);
    let a = p(1);
    index
        .add(&doc(
            &a,
            &s(2),
            "en",
            "Elections held after all",
            "Turnout was high.",
        ))
        .unwrap();
    index.commit().unwrap();
    assert_eq!(index.len(), 5);
    assert_eq!(found(&index, "turnout"), vec![s(2)]);
    assert!(found(&index, "voters").is_empty(), "the old text is gone");
    index.remove(&a, &s(2)).unwrap();
    index.commit().unwrap();
    assert!(found(&index, "turnout").is_empty());
    assert_eq!(index.len(), 4);
    index.clear().unwrap();
    index.commit().unwrap();
    assert!(index.is_empty());
}

#[test]
fn hostile_queries_give_results_or_nothing_never_an_error() {
    let index = Search::memory().unwrap();
    sample(&index);
    for q in [
        "",
        "   ",
        "\"unclosed",
        "title:(",
        "AND OR NOT",
        "*",
        "head_en:elections",
        "[a TO",
        "выборы~2",
        &"слово ".repeat(1000),
        &"x".repeat(10_000),
    ] {
        assert!(index.search(q, Narrow::default(), 0, 10).is_ok(), "{q:.40}");
    }
    let none = index.search("elections", Narrow::default(), 0, 0).unwrap();
    assert!(none.hits.is_empty());
    assert_eq!(none.total, 2, "the count is given without a page");
    let past = index.search("elections", Narrow::default(), 5, 10).unwrap();
    assert!(past.hits.is_empty());
    assert_eq!(past.total, 2);
}

#[test]
fn a_sealed_index_reopens_and_shows_no_word_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let sealer = Arc::new(Sealer::new(&DataKey::random()));
    {
        let index = Search::open(dir.path(), Some(sealer.clone())).unwrap();
        sample(&index);
    }
    let index = Search::open(dir.path(), Some(sealer)).unwrap();
    assert_eq!(index.len(), 5);
    assert_eq!(found(&index, "выборов"), vec![s(1)]);
    let mut files = 0;
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let path = e.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        files += 1;
        for word in [
            "Выборы",
            "Elections",
            "voters",
            "meta.json",
            "тегеран",
            "Києві",
        ] {
            assert!(
                !bytes.windows(word.len()).any(|w| w == word.as_bytes()),
                "{word} in {}",
                path.display()
            );
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(".sealed"), "{name}");
    }
    assert!(files > 3);
    // Another key opens nothing.
    let other = Search::open(dir.path(), Some(Arc::new(Sealer::new(&DataKey::random()))));
    assert!(other.map_or(true, |i| i.is_empty()));
}

#[test]
fn a_plain_index_reopens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let index = Search::open(dir.path(), None).unwrap();
        sample(&index);
    }
    let index = Search::open(dir.path(), None).unwrap();
    assert_eq!(found(&index, "election"), vec![s(2), s(5)]);
}

#[test]
fn html_bodies_give_their_words() {
    let t = plain_text(
        "<p>First&nbsp;line<br>second</p><script>var hidden = 1;</script><STYLE>p{}</style>\
         <p>Tom &amp; Jerry &#1055;&#x440;&lt;</p><p>unclosed &bogus; <b",
    );
    assert!(t.contains("First line"), "{t}");
    assert!(t.contains(" second"), "{t}");
    assert!(!t.contains("hidden") && !t.contains("p{}"), "{t}");
    assert!(t.contains("Tom & Jerry Пр<"), "{t}");
    assert!(t.contains("&bogus;"), "{t}");
    assert_eq!(text::cut("привет", 3), "п");
}
