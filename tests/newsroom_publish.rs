//! `kolokol bundle create` and `kolokol publish` of one article: no
//! sequence number used without its bundle stored, and the checks made
//! before anything is signed.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::process::{BIN, s};
use tempfile::TempDir;

struct Env {
    tmp: TempDir,
}

impl Env {
    /// A newsroom, and a reader data directory.
    fn new() -> Self {
        let env = Self {
            tmp: TempDir::new().unwrap(),
        };
        env.ok(&["newsroom", "init", "--name", "checks"]);
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

    /// Expects success; returns standard error (where warnings go).
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kolokol {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Expects failure; returns standard error.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(1), "kolokol {args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    fn write(&self, name: &str, contents: &[u8]) -> String {
        let p = self.path(name);
        std::fs::write(&p, contents).unwrap();
        s(&p).to_owned()
    }

    fn article(&self, name: &str, front: &str, body: &str) -> String {
        self.write(name, format!("---\n{front}\n---\n{body}\n").as_bytes())
    }

    /// The sequence numbers of the bundles in `published/`, by file name.
    fn published(&self) -> Vec<u64> {
        let mut seqs: Vec<u64> = std::fs::read_dir(self.path("newsroom/published"))
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".kolokol").map(|n| n.parse().unwrap())
            })
            .collect();
        seqs.sort();
        seqs
    }

    fn next_sequence(&self) -> String {
        std::fs::read_to_string(self.path("newsroom/state.toml"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("next_sequence"))
            .unwrap()
            .to_owned()
    }
}

#[test]
fn a_failed_out_uses_no_sequence_number() {
    let env = Env::new();
    let a = env.article("a.md", "title: One\nlang: en", "Text.");
    for cmd in ["bundle create", "publish"] {
        let mut args: Vec<&str> = cmd.split(' ').collect();
        args.push(&a);
        // A folder that does not exist.
        let missing = env.path("no-such-folder/a.kolokol");
        let err = env.fails(&[args.as_slice(), &["--out", s(&missing)]].concat());
        assert!(
            err.contains("--out") && err.contains("does not exist"),
            "{err}"
        );
        // A folder where a file should be.
        let dir = env.path("");
        let err = env.fails(&[args.as_slice(), &["--out", s(&dir)]].concat());
        assert!(
            err.contains("--out") && err.contains("is a folder"),
            "{err}"
        );
        assert_eq!(env.published(), Vec::<u64>::new(), "{cmd}");
        assert_eq!(env.next_sequence(), "next_sequence = 1", "{cmd}");
    }
    // Nothing from the failures is in the reader's store either, and the
    // next publish takes number 1.
    let out = env.path("a.kolokol");
    env.ok(&["bundle", "create", &a, "--out", s(&out)]);
    assert_eq!(env.published(), vec![1]);
    let v = String::from_utf8(env.run(&["inspect", s(&out)]).stdout).unwrap();
    assert!(v.contains("sequence 1"), "{v}");
}

#[test]
fn publishes_in_a_row_keep_sequences_contiguous() {
    let env = Env::new();
    let a = env.article("a.md", "title: One\nlang: en", "Text one.");
    let b = env.article("b.md", "title: Two\nlang: en", "Text two.");
    env.ok(&["bundle", "create", &a]);
    env.ok(&["publish", &b]);
    // A refused publish in between takes no number.
    env.fails(&["bundle", "create", &a, "--lang", "english"]);
    env.ok(&["bundle", "create", &b, "--title", "Three"]);
    assert_eq!(env.published(), vec![1, 2, 3]);
    assert_eq!(env.next_sequence(), "next_sequence = 4");
    // The index agrees with the folder (`newsroom info` reads it).
    let out = env.run(&["newsroom", "info"]);
    let info = String::from_utf8(out.stdout).unwrap();
    assert!(info.contains("published:  3 bundles"), "{info}");
    assert!(env.path("newsroom/published.index").exists());
}

#[test]
fn an_identical_republication_is_refused_unless_forced() {
    let env = Env::new();
    let a = env.article("a.md", "title: Same\nlang: en\nstory: same-story", "Text.");
    env.ok(&["bundle", "create", &a]);
    let err = env.fails(&["bundle", "create", &a]);
    assert!(
        err.contains("already says exactly this") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(env.published(), vec![1]);
    // Changed, it is a new version.
    let changed = env.article(
        "b.md",
        "title: Same\nlang: en\nstory: same-story",
        "Text, amended.",
    );
    env.ok(&["bundle", "create", &changed]);
    env.ok(&["bundle", "create", &changed, "--force"]);
    assert_eq!(env.published(), vec![1, 2, 3]);
}

#[test]
fn a_language_that_is_not_a_tag_is_refused_unless_forced() {
    let env = Env::new();
    let a = env.article("a.md", "title: T", "Text.");
    let err = env.fails(&["bundle", "create", &a, "--lang", "Belarusian"]);
    assert!(
        err.contains("--lang \"Belarusian\"") && err.contains("BCP 47"),
        "{err}"
    );
    let fm = env.article("b.md", "title: T\nlang: english", "Text.");
    let err = env.fails(&["bundle", "create", &fm]);
    assert!(err.contains("\"english\""), "{err}");
    assert_eq!(env.published(), Vec::<u64>::new());
    env.ok(&["bundle", "create", &a, "--lang", "be-Cyrl-BY"]);
    env.ok(&["bundle", "create", &fm, "--force"]);
    assert_eq!(env.published(), vec![1, 2]);
}

#[test]
fn an_empty_body_is_refused_unless_forced() {
    let env = Env::new();
    let a = env.article("a.md", "title: Empty\nlang: en", "   ");
    let err = env.fails(&["bundle", "create", &a]);
    assert!(err.contains("a.md") && err.contains("no text"), "{err}");
    env.ok(&["bundle", "create", &a, "--force"]);
    assert_eq!(env.published(), vec![1]);
}

#[test]
fn images_given_and_referenced_must_match() {
    let env = Env::new();
    let png = env.write(
        "photo.png",
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/demo/stories/bell.png"
        ))
        .unwrap(),
    );
    // Given but never referenced: a warning, and it is published.
    let a = env.article("a.md", "title: Photo\nlang: en", "No picture here.");
    let err = env.ok(&["bundle", "create", &a, "--image", &png]);
    assert!(
        err.contains("warning: --image") && err.contains("never refers to photo.png"),
        "{err}"
    );
    // Referenced but not given: refused, naming the file.
    let b = env.article("b.md", "title: Photo\nlang: en", "![a photo](lost.png)");
    let err = env.fails(&["bundle", "create", &b]);
    assert!(
        err.contains("\"lost.png\"") && err.contains("--image"),
        "{err}"
    );
    assert_eq!(env.published(), vec![1]);
    // Referenced and given: neither.
    let c = env.article("c.md", "title: Photo\nlang: en", "![a photo](photo.png)");
    let err = env.ok(&["bundle", "create", &c, "--image", &png]);
    assert!(!err.contains("warning"), "{err}");
    // Remote images are the reader's browser's business, not a check's.
    let d = env.article(
        "d.md",
        "title: Remote\nlang: en",
        "![x](https://img.example/x.png)",
    );
    env.ok(&["bundle", "create", &d]);
    env.ok(&["bundle", "create", &b, "--force"]);
    assert_eq!(env.published(), vec![1, 2, 3, 4]);
}

#[test]
fn an_oversized_body_is_refused_naming_the_limit() {
    let env = Env::new();
    let path = env.path("huge.md");
    // Sparse: its size is what is checked, before it is read.
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(kolokol::proto::limits::MAX_BLOB_BYTES + 1)
        .unwrap();
    let err = env.fails(&["bundle", "create", s(&path), "--title", "Huge", "--force"]);
    assert!(
        err.contains("huge.md")
            && err.contains("MAX_BLOB_BYTES")
            && err.contains(&kolokol::proto::limits::MAX_BLOB_BYTES.to_string()),
        "{err}"
    );
    assert_eq!(env.published(), Vec::<u64>::new());
}
