//! `cargo bench --bench search`: the full-text index at a mirror's size.
//!
//! Builds an index of `KOLOKOL_BENCH_STORIES` stories (1,000,000 by
//! default; 2,000 without `--bench`, to check that it runs), half
//! Russian and half English, each a headline, a summary and a body of
//! about 4 KiB of words drawn with Zipf's law from a vocabulary of 50,000
//! per language (the shape of word frequencies in real text), from 50
//! publishers. Then it searches as the gateway's search page does (a page
//! of 20 with the count of all matches, narrowed to the trusted
//! publishers, here all 50, and sometimes to a language, one publisher or
//! a later page) for queries of several kinds, new words each time, and
//! prints p50 and p99 per kind: the target is p99 ≤ 50 ms at a million.
//!
//! `KOLOKOL_BENCH_INDEX=<folder>` keeps the index there and uses it again
//! when it holds as many stories, so that a second run only searches.

use std::time::{Duration, Instant};

use kolokol::proto::{PublicKey, StoryId};
use kolokol::search::{Doc, Narrow, Search};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Words in each language's vocabulary.
const VOCABULARY: usize = 50_000;
/// Words in a body: about 4 KiB of text.
const BODY_WORDS: usize = 600;
/// Hits on a page, as on the gateway's search page.
const PAGE: usize = 20;
/// Publishers the stories are spread over.
const PUBLISHERS: u8 = 50;
/// Searches per kind of query.
const QUERIES: usize = 300;
/// Stories added between commits while building.
const COMMIT_EVERY: u64 = 100_000;

const LATIN: &[&str] = &[
    "ba", "ce", "di", "fo", "gu", "ha", "je", "ki", "lo", "mu", "na", "pe", "qui", "ro", "su",
    "ta", "ve", "wi", "xo", "za", "bre", "cla", "dro", "fli", "gra", "pro", "str", "tri",
];
const CYRILLIC: &[&str] = &[
    "ба", "ве", "ги", "до", "жу", "за", "ки", "ло", "му", "на", "по", "ру", "си", "то", "фу", "ха",
    "це", "чи", "ша", "щу", "бра", "гро", "дре", "кла", "при", "ство", "тре", "зна",
];
/// Endings, so that the stemmer has forms of one word to join.
const LATIN_ENDINGS: &[&str] = &["", "s", "ed", "ing"];
const CYRILLIC_ENDINGS: &[&str] = &["", "а", "ов", "ами", "ой"];

/// The `k`-th word of a vocabulary made of `syllables`.
fn word(syllables: &[&str], mut k: usize) -> String {
    let n = syllables.len();
    let mut w = String::new();
    // Two syllables at least, so that no word is a stop word by accident.
    for _ in 0..2 {
        w.push_str(syllables[k % n]);
        k /= n;
    }
    while k > 0 {
        w.push_str(syllables[k % n]);
        k /= n;
    }
    w
}

struct Language {
    tag: &'static str,
    words: Vec<String>,
    endings: &'static [&'static str],
}

impl Language {
    fn new(tag: &'static str, syllables: &[&str], endings: &'static [&'static str]) -> Self {
        Self {
            tag,
            words: (0..VOCABULARY).map(|k| word(syllables, k)).collect(),
            endings,
        }
    }
}

/// Draws ranks from Zipf's law (exponent 1) over the vocabulary.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|r| {
                total += 1.0 / r as f64;
                total
            })
            .collect::<Vec<_>>();
        Self {
            cumulative: cumulative.iter().map(|c| c / total).collect(),
        }
    }

    fn draw(&self, rng: &mut StdRng) -> usize {
        let x: f64 = rng.r#gen();
        self.cumulative
            .partition_point(|&c| c < x)
            .min(self.cumulative.len() - 1)
    }
}

fn text(lang: &Language, zipf: &Zipf, rng: &mut StdRng, words: usize) -> String {
    let mut s = String::with_capacity(words * 8);
    for i in 0..words {
        if i > 0 {
            s.push(if i % 12 == 0 { '.' } else { ' ' });
            if i % 12 == 0 {
                s.push(' ');
            }
        }
        s.push_str(&lang.words[zipf.draw(rng)]);
        s.push_str(lang.endings[rng.gen_range(0..lang.endings.len())]);
    }
    s
}

fn stories() -> u64 {
    let quick = !std::env::args().any(|a| a == "--bench");
    std::env::var("KOLOKOL_BENCH_STORIES")
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(if quick { 2_000 } else { 1_000_000 })
}

/// Memory of this process in MiB: resident, resident at peak, and of
/// the resident part what is the index's files mapped into memory (pages
/// the kernel can drop and read again) rather than the process's own.
fn rss_mib() -> (f64, f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"), field("RssFile:"))
}

fn disk_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// A word of rank `lo..hi` in `lang`.
fn band(rng: &mut StdRng, lo: usize, hi: usize, lang: &Language) -> String {
    lang.words[rng.gen_range(lo..hi)].clone()
}

/// Gives a query's text.
type Pick<'a> = Box<dyn Fn(&mut StdRng) -> String + 'a>;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let count = stories();
    let languages = [
        Language::new("ru", CYRILLIC, CYRILLIC_ENDINGS),
        Language::new("en", LATIN, LATIN_ENDINGS),
    ];
    let zipf = Zipf::new(VOCABULARY);
    let publishers: Vec<PublicKey> = (0..PUBLISHERS).map(|i| PublicKey([i; 32])).collect();
    let dir = tempfile::TempDir::new().unwrap();
    let path = std::env::var_os("KOLOKOL_BENCH_INDEX")
        .map_or_else(|| dir.path().join("search"), std::path::PathBuf::from);
    let mut rng = StdRng::seed_from_u64(17);

    let search = Search::open(&path, None).unwrap();
    let kept = search.len() == count;
    if !kept && !search.is_empty() {
        search.clear().unwrap();
        search.commit().unwrap();
    }
    let t = Instant::now();
    for n in (0..count).filter(|_| !kept) {
        let publisher = &publishers[(n % u64::from(PUBLISHERS)) as usize];
        let lang = &languages[(n % 2) as usize];
        let mut story = [0u8; 16];
        story[..8].copy_from_slice(&n.to_be_bytes());
        let title = text(lang, &zipf, &mut rng, 8);
        let summary = text(lang, &zipf, &mut rng, 25);
        let body = text(lang, &zipf, &mut rng, BODY_WORDS);
        search
            .add(&Doc {
                publisher,
                story: &StoryId(story),
                language: lang.tag,
                title: &title,
                summary: Some(&summary),
                section: None,
                body: &body,
            })
            .unwrap();
        if (n + 1) % COMMIT_EVERY == 0 {
            search.commit().unwrap();
        }
    }
    search.commit().unwrap();
    let built = t.elapsed();
    assert_eq!(search.len(), count);
    if kept {
        println!(
            "used the index of {count} stories kept in {}: {:.0} bytes on disk per story",
            path.display(),
            disk_bytes(&path) as f64 / count as f64
        );
    } else {
        println!(
            "indexed {count} stories (about 4 KiB of text each) in {:.1} s: {:.0} stories/s, {:.0} bytes on disk per story",
            built.as_secs_f64(),
            count as f64 / built.as_secs_f64(),
            disk_bytes(&path) as f64 / count as f64
        );
    }
    drop(search);
    // The queries are the same whether the index was built or kept.
    let mut rng = StdRng::seed_from_u64(18);

    // A node starting: the index opened afresh, as after a restart.
    let t = Instant::now();
    let search = Search::open(&path, None).unwrap();
    println!("opened in {:.1} ms", t.elapsed().as_secs_f64() * 1000.0);
    let (before, _, _) = rss_mib();

    // Kinds of query, each with new words every time: `pick` gives the
    // query's text from the two vocabularies; each is narrowed as the
    // gateway narrows it (to the trusted publishers at least).
    let ru = &languages[0];
    let en = &languages[1];
    let everyone = Narrow {
        publishers: Some(&publishers),
        ..Narrow::default()
    };
    let russian = Narrow {
        language: Some("ru"),
        ..everyone
    };
    // Publisher 4 has Russian stories (they go to publishers in turn,
    // languages alternating).
    let one = Narrow {
        publishers: Some(&publishers[4..5]),
        ..Narrow::default()
    };
    let kinds: Vec<(&str, Pick<'_>, Narrow<'_>, usize)> = vec![
        (
            "one common word (rank 10-100)",
            Box::new(|r| band(r, 10, 100, ru)),
            everyone,
            0,
        ),
        (
            "one middling word (rank 1,000-5,000)",
            Box::new(|r| band(r, 1_000, 5_000, en)),
            everyone,
            0,
        ),
        (
            "one rare word (rank 20,000-50,000)",
            Box::new(|r| band(r, 20_000, 50_000, ru)),
            everyone,
            0,
        ),
        (
            "two common words",
            Box::new(|r| format!("{} {}", band(r, 10, 200, en), band(r, 10, 200, en))),
            everyone,
            0,
        ),
        (
            "a common and a rare word",
            Box::new(|r| format!("{} {}", band(r, 10, 200, ru), band(r, 20_000, 50_000, ru))),
            everyone,
            0,
        ),
        (
            "three middling words",
            Box::new(|r| {
                format!(
                    "{} {} {}",
                    band(r, 200, 2_000, en),
                    band(r, 200, 2_000, en),
                    band(r, 200, 2_000, en)
                )
            }),
            everyone,
            0,
        ),
        (
            "one common word, Russian only",
            Box::new(|r| band(r, 10, 100, ru)),
            russian,
            0,
        ),
        (
            "one common word, one publisher",
            Box::new(|r| band(r, 10, 100, ru)),
            one,
            0,
        ),
        (
            "one common word, page 10",
            Box::new(|r| band(r, 10, 100, ru)),
            everyone,
            9 * PAGE,
        ),
    ];
    println!(
        "\n| query ({count} stories, a page of {PAGE} and the count, {QUERIES} searches) | p50 ms | p99 ms | max ms | matches (median) |"
    );
    println!("|---|---|---|---|---|");
    let mut worst_p99: f64 = 0.0;
    // A first search of each kind warms the index's files into memory, as
    // a running node's are.
    for (what, pick, narrow, skip) in &kinds {
        let _ = search
            .search(&pick(&mut rng), *narrow, *skip, PAGE)
            .unwrap();
        let mut took = Vec::with_capacity(QUERIES);
        let mut totals = Vec::with_capacity(QUERIES);
        for _ in 0..QUERIES {
            let q = pick(&mut rng);
            let t = Instant::now();
            let found = search.search(&q, *narrow, *skip, PAGE).unwrap();
            took.push(t.elapsed());
            assert!(found.hits.len() <= PAGE);
            totals.push(found.total);
        }
        took.sort();
        totals.sort();
        let p99 = percentile(&took, 0.99);
        worst_p99 = worst_p99.max(p99);
        println!(
            "| {what} | {:.2} | {p99:.2} | {:.2} | {} |",
            percentile(&took, 0.5),
            took.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            totals[totals.len() / 2]
        );
    }
    let (now, peak, mapped) = rss_mib();
    println!(
        "\nsearch p99 at {count} stories, worst kind: {worst_p99:.1} ms (target <= 50 ms); process memory {now:.0} MiB resident now ({mapped:.0} MiB of it the index's mapped files), {before:.0} MiB before searching, {peak:.0} MiB at peak (building included)"
    );
}
