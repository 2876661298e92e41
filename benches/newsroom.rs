//! `cargo bench --bench newsroom`: what publishing costs as a newsroom
//! grows. One story published, and a 500-item feed imported, into an
//! empty newsroom and into one that already published 100,000 bundles
//! (2,000 in the quick mode of `cargo test --bench newsroom`); each pair's
//! ratio should stay near 1 (target: at most 1.2), since a publish reads
//! the index of `published/`, not the bundles. Prints figures; asserts
//! nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use kolokol::newsroom::feed::{self, FeedSource, ImportOptions, LatestVersions, Prepared};
use kolokol::newsroom::fetch::Fetcher;
use kolokol::newsroom::{Draft, INDEX_FILE, InitOptions, Newsroom, Relation};
use kolokol::proto::bundle::BundleFile;
use kolokol::proto::{
    BODY_MEDIA_TYPE, BODY_PATH, BlobHash, CertId, Entry, FORMAT_VERSION, Head, Kind, Manifest,
    Metadata, SecretKey, StoryId, Timestamp,
};

/// Items in the imported feed.
const FEED_ITEMS: usize = 500;
/// Single publishes timed, for a median.
const SINGLE_RUNS: usize = 21;
/// Import rounds of each kind, for a median.
const IMPORT_ROUNDS: usize = 3;

fn now() -> Timestamp {
    Timestamp::from_system(std::time::SystemTime::now())
}

fn newsroom(dir: &Path) -> Newsroom {
    let opts = InitOptions {
        name: "bench".into(),
        display_name: None,
        homepage: None,
        key_validity_secs: 365 * 86_400,
        languages: Vec::new(),
    };
    Newsroom::init_with_keys(
        dir,
        &opts,
        now().minus(60),
        SecretKey::from_seed(&[1; 32]),
        SecretKey::from_seed(&[2; 32]),
    )
    .unwrap()
}

fn draft(n: usize) -> Draft {
    Draft {
        title: format!("Story {n}"),
        language: "en".into(),
        authors: vec!["Reporter".into()],
        section: None,
        original_url: None,
        summary: None,
        published: None,
        body_html: format!("<p>Story {n}: {}</p>", "text ".repeat(100)),
        media: Vec::new(),
        story: None,
        relation: Relation::Story,
    }
}

/// Fills a newsroom with `count` small stories. Each is signed as a
/// publish signs it (manifest and head by the newsroom's signing key, its
/// certificate beside them) and written to `published/` under its
/// sequence number, without the per-story syncs of a real publish, which
/// would make 100,000 of them take most of an hour; `state.toml` then
/// names the next number and the index is rebuilt from the folder, as
/// for a folder from before the index. Returns the time to sign and
/// write, and the time of the rebuild.
fn fill(dir: &Path, count: usize) -> (Duration, Duration) {
    let start = Instant::now();
    let n = newsroom(dir);
    let signing = SecretKey::from_seed(&[2; 32]);
    let cert = n.certificates().unwrap().remove(0);
    let signed_at = now();
    for i in 0..count {
        let seq = i as u64 + 1;
        let d = draft(i);
        let body = d.body_html.into_bytes();
        let mut story = [0u8; 16];
        story[..8].copy_from_slice(&seq.to_be_bytes());
        let manifest = Manifest {
            format: FORMAT_VERSION,
            publisher: n.root_public(),
            certificate: CertId::of(&cert),
            story: StoryId(story),
            version: 1,
            kind: Kind::Story,
            sequence: seq,
            supersedes: None,
            signed_at,
            metadata: Metadata {
                title: d.title,
                language: d.language,
                authors: d.authors,
                section: None,
                published: signed_at,
                updated: None,
                original_url: None,
                summary: None,
            },
            entries: vec![Entry {
                path: BODY_PATH.into(),
                media_type: BODY_MEDIA_TYPE.into(),
                size: body.len() as u64,
                hash: BlobHash::of(&body),
            }],
        };
        let head = Head {
            format: FORMAT_VERSION,
            publisher: n.root_public(),
            certificate: CertId::of(&cert),
            sequence: seq,
            issued_at: signed_at,
            expires_at: signed_at.plus(86_400),
        };
        let file = BundleFile {
            certificates: vec![cert.clone()],
            revocations: Vec::new(),
            heads: vec![head.sign(&signing).unwrap()],
            manifest: manifest.sign(&signing).unwrap(),
            blobs: vec![body],
        };
        let path = dir.join("published").join(format!("{seq:010}.kolokol"));
        std::fs::write(path, file.to_bytes().unwrap()).unwrap();
    }
    std::fs::write(
        dir.join("state.toml"),
        format!("next_sequence = {}\ncurrent_serial = 1\n", count + 1),
    )
    .unwrap();
    let _ = std::fs::remove_file(dir.join(INDEX_FILE));
    let written = start.elapsed();
    let start = Instant::now();
    assert_eq!(
        Newsroom::open(dir).unwrap().published_count().unwrap(),
        count
    );
    (written, start.elapsed())
}

/// The median times of publishing one new story into each of two
/// newsrooms, taken in turns so that the machine's state (the disk's
/// write-back after the setup) weighs on both alike; each newsroom is
/// opened afresh every time, as `kolokol publish` opens it.
fn single_pair(a: &Path, b: &Path) -> (Duration, Duration) {
    let once = |dir: &Path, i: usize| {
        let start = Instant::now();
        let n = Newsroom::open(dir).unwrap();
        n.publish(draft(1_000_000 + i), now()).unwrap();
        start.elapsed()
    };
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for i in 0..SINGLE_RUNS {
        ta.push(once(a, i));
        tb.push(once(b, i));
    }
    ta.sort();
    tb.sort();
    (ta[SINGLE_RUNS / 2], tb[SINGLE_RUNS / 2])
}

fn write_feed(path: &Path, round: usize) {
    let mut xml = String::from(
        r#"<?xml version="1.0"?><rss version="2.0"><channel><title>Bench</title><link>https://news.example/</link><description>bench</description><language>en</language>"#,
    );
    for i in 0..FEED_ITEMS {
        xml.push_str(&format!(
            "<item><guid>item-{round}-{i}</guid><title>Item {i}</title><description>&lt;p&gt;Item {i}: {}&lt;/p&gt;</description></item>",
            "words ".repeat(80)
        ));
    }
    xml.push_str("</channel></rss>");
    std::fs::write(path, xml).unwrap();
}

/// One import round of the feed at `feed_path`, as `kolokol publish
/// --feed` runs it (delivery to a store aside): load, compare with what
/// was published, sign the new items. Returns the time and the count
/// signed.
fn import(dir: &Path, feed_path: &Path) -> (Duration, usize) {
    let start = Instant::now();
    let n = Newsroom::open(dir).unwrap();
    let source = FeedSource::File(feed_path.to_owned());
    let fetcher = Fetcher::default().allow_local(true);
    let loaded = feed::load(&source, &fetcher).unwrap();
    let opts = ImportOptions::default();
    let latest = LatestVersions::load(&n).unwrap();
    let mut signed = 0;
    for prepared in feed::prepare(&loaded, &n.root_public(), &fetcher, &opts) {
        let Prepared::Ready(item) = prepared else {
            panic!("an item was skipped");
        };
        if matches!(latest.change(&item), feed::Change::New) {
            n.publish(item.draft, now()).unwrap();
            signed += 1;
        }
    }
    (start.elapsed(), signed)
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let big = if quick { 2_000 } else { 100_000 };
    let tmp = tempfile::tempdir().unwrap();

    let empty = tmp.path().join("empty");
    let full = tmp.path().join("full");
    newsroom(&empty);
    let (written, rebuilt) = fill(&full, big);
    println!(
        "setup: {big} stories signed and written in {:.1} s; the index rebuilt from them in {:.2} s",
        written.as_secs_f64(),
        rebuilt.as_secs_f64()
    );

    let (one_empty, one_full) = single_pair(&empty, &full);
    println!(
        "publish one story: {:.2} ms with 0 published, {:.2} ms with {big}: ratio {:.2} (target <= 1.2)",
        ms(one_empty),
        ms(one_full),
        one_full.as_secs_f64() / one_empty.as_secs_f64()
    );

    // In turns, as above; each round into a fresh empty newsroom, and
    // into the full one with another feed (its earlier rounds add a few
    // hundred stories, nothing beside `big`).
    let (mut t_empty, mut t_full) = (Vec::new(), Vec::new());
    for round in 0..IMPORT_ROUNDS {
        let feed_path = tmp.path().join(format!("feed{round}.xml"));
        write_feed(&feed_path, round);
        let fresh = tmp.path().join(format!("empty-{round}"));
        newsroom(&fresh);
        let (t, signed) = import(&fresh, &feed_path);
        assert_eq!(signed, FEED_ITEMS);
        t_empty.push(t);
        let (t, signed) = import(&full, &feed_path);
        assert_eq!(signed, FEED_ITEMS);
        t_full.push(t);
    }
    t_empty.sort();
    t_full.sort();
    let (t_empty, t_full) = (t_empty[IMPORT_ROUNDS / 2], t_full[IMPORT_ROUNDS / 2]);
    println!(
        "import a {FEED_ITEMS}-item feed: {:.2} s with 0 published, {:.2} s with {big}: ratio {:.2} (target <= 1.2)",
        t_empty.as_secs_f64(),
        t_full.as_secs_f64(),
        t_full.as_secs_f64() / t_empty.as_secs_f64()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
