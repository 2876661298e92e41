//! End-to-end tests of the built `kolokol` binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::process::{BIN, s};
use tempfile::TempDir;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

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

    /// Runs kolokol with the reader's data directory and the newsroom folder.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("KOLOKOL_DATA_DIR", self.path("reader"))
            .env("KOLOKOL_NEWSROOM", self.path("newsroom"))
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kolokol {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "kolokol {args:?} should fail with 1"
        );
        String::from_utf8(out.stderr).unwrap()
    }

    fn write(&self, name: &str, contents: &[u8]) -> String {
        let p = self.path(name);
        std::fs::write(&p, contents).unwrap();
        p.display().to_string()
    }

    /// A newsroom, trusted by the reader.
    fn newsroom(&self) {
        self.ok(&["newsroom", "init", "--name", "test-news"]);
        let public = self.path("newsroom/test-news.toml");
        self.ok(&["trust", "add", public.to_str().unwrap()]);
    }

    fn article(&self, name: &str, title: &str) -> String {
        self.write(
            name,
            format!("---\ntitle: {title}\nlang: en\n---\nBody of {title}.\n").as_bytes(),
        )
    }
}

#[test]
fn init_create_verify_with_cyrillic_and_an_image() {
    let env = Env::new();
    env.newsroom();
    let png = std::fs::read(Path::new(REPO).join("src/demo/stories/bell.png")).unwrap();
    let image = env.write("фото.png", &png);
    let article = env.write(
        "statya.md",
        "---\ntitle: Новости из Москвы\nlang: ru\nauthors: [Иван Петров]\nsection: Политика\n---\n# Новости\n\nТекст статьи: «цензура не пройдёт».\n\n![фото](фото.png)\n".as_bytes(),
    );
    let out = env.path("statya.kolokol");
    let id = env.ok(&[
        "bundle",
        "create",
        &article,
        "--image",
        &image,
        "--out",
        s(&out),
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "prints the bundle id: {id}");

    let verified = env.ok(&["verify", s(&out)]);
    assert!(verified.contains("OK "), "{verified}");
    assert!(verified.contains("Новости из Москвы"), "{verified}");
    assert!(verified.contains("test-news"), "{verified}");
    assert!(verified.contains(id), "{verified}");
    assert!(verified.contains("version 1  story"), "{verified}");
    assert!(verified.contains("signing key: ed25519:"), "{verified}");

    let inspected = env.ok(&["inspect", s(&out)]);
    assert!(inspected.starts_with("UNVERIFIED"), "{inspected}");
    assert!(
        inspected.contains("media/фото.png image/png"),
        "{inspected}"
    );
    assert!(
        inspected.contains(&format!("{} bytes", png.len())),
        "{inspected}"
    );

    // The body round-trips with its Cyrillic text and points at the image in the bundle.
    let file =
        kolokol::proto::bundle::BundleFile::read(std::fs::read(&out).unwrap().as_slice()).unwrap();
    let body = String::from_utf8(file.blobs[0].clone()).unwrap();
    assert!(body.contains("«цензура не пройдёт»"), "{body}");
    assert!(
        body.contains(r#"src="media/%D1%84%D0%BE%D1%82%D0%BE.png""#),
        "{body}"
    );
    assert_eq!(file.blobs[1], png);
}

#[test]
fn one_tampered_byte_fails_with_a_reason() {
    let env = Env::new();
    env.newsroom();
    let article = env.article("a.md", "Tamper test");
    let out = env.path("a.kolokol");
    env.ok(&["bundle", "create", &article, "--out", s(&out)]);
    let mut bytes = std::fs::read(&out).unwrap();
    let i = bytes.len() - 60;
    bytes[i] ^= 0x20;
    let bad = env.write("bad.kolokol", &bytes);
    let err = env.fails(&["verify", &bad]);
    assert!(
        err.contains("bad.kolokol") && err.contains("damaged"),
        "{err}"
    );
    // A good file beside a bad one still fails the whole command, naming the bad one.
    let err = env.fails(&["verify", s(&out), &bad]);
    assert!(err.contains("1 of 2 files failed"), "{err}");
}

#[test]
fn a_file_that_does_not_exist_is_named() {
    let env = Env::new();
    let err = env.fails(&["verify", "/nonexistent/story.kolokol"]);
    assert!(err.contains("/nonexistent/story.kolokol"), "{err}");
}

#[test]
fn unknown_publisher_is_rejected() {
    let env = Env::new();
    env.ok(&["newsroom", "init", "--name", "stranger"]);
    let article = env.article("a.md", "Stranger");
    let out = env.path("a.kolokol");
    env.ok(&["bundle", "create", &article, "--out", s(&out)]);
    let err = env.fails(&["verify", s(&out)]);
    assert!(err.contains("not in the trust list"), "{err}");
    // Each cause is said once, and nothing is coloured off a terminal.
    assert_eq!(err.matches("not in the trust list").count(), 1, "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

#[test]
fn revoked_key_is_rejected() {
    let env = Env::new();
    env.newsroom();
    let a = env.article("a.md", "Signed by the old key");
    let old = env.path("old.kolokol");
    env.ok(&["bundle", "create", &a, "--out", s(&old)]);
    env.ok(&["verify", s(&old)]);

    // The key was compromised from the start: revoke it from its first day.
    env.ok(&["newsroom", "revoke", "1", "--effective", "2000-01-01"]);
    // The revoked key may not sign any more.
    let err = env.fails(&["bundle", "create", &a]);
    assert!(err.contains("revoked"), "{err}");
    env.ok(&["newsroom", "rotate"]);
    let b = env.article("b.md", "Signed by the new key");
    let new = env.path("new.kolokol");
    env.ok(&["bundle", "create", &b, "--out", s(&new)]);

    // The new bundle carries the revocation; verifying both rejects the old.
    let out = env.run(&["verify", s(&old), s(&new)]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains(&format!("OK {}", s(&new))), "{stdout}");
    assert!(
        stderr.contains("old.kolokol") && stderr.contains("revoked"),
        "{stderr}"
    );

    // A revocation file given by hand works the same.
    let rev = std::fs::read_dir(env.path("newsroom/revocations"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let err = env.fails(&["verify", s(&old), "--revocation", s(&rev)]);
    assert!(err.contains("revoked"), "{err}");
}

#[test]
fn corrections_and_retractions_form_versions() {
    let env = Env::new();
    env.newsroom();
    let a = env.article("a.md", "First");
    let id = env.ok(&["bundle", "create", &a]).trim().to_owned();
    let c = env.article("c.md", "First, corrected");
    let out = env.path("c.kolokol");
    env.ok(&[
        "bundle",
        "create",
        &c,
        "--correction-of",
        &id,
        "--out",
        s(&out),
    ]);
    let v = env.ok(&["verify", s(&out)]);
    assert!(v.contains("version 2  correction"), "{v}");
    let r = env.article("r.md", "Retracted");
    let out = env.path("r.kolokol");
    // By id prefix this time.
    env.ok(&[
        "bundle",
        "create",
        &r,
        "--retract",
        &id[..16],
        "--out",
        s(&out),
    ]);
    let v = env.ok(&["verify", s(&out)]);
    assert!(v.contains("version 3  retraction"), "{v}");
    assert!(v.contains("sequence:    3"), "{v}");
    let err = env.fails(&[
        "bundle",
        "create",
        &r,
        "--retract",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ]);
    assert!(err.contains("not published by this newsroom"), "{err}");
}

#[test]
fn init_refuses_to_overwrite_and_keeps_secrets_private() {
    let env = Env::new();
    env.ok(&["newsroom", "init", "--name", "private-news"]);
    let err = env.fails(&["newsroom", "init", "--name", "private-news"]);
    assert!(err.contains("refusing to overwrite"), "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["root.key", "signing.key"] {
            let mode = std::fs::metadata(env.path("newsroom").join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
    let err = env.fails(&[
        "newsroom",
        "init",
        "--name",
        "Bad Name",
        "--dir",
        s(&env.path("other")),
    ]);
    assert!(err.contains("Bad Name"), "{err}");
}

#[test]
fn bad_articles_are_named() {
    let env = Env::new();
    env.newsroom();
    let a = env.write("untitled.md", b"no title here\n");
    let err = env.fails(&["bundle", "create", &a]);
    assert!(
        err.contains("untitled.md") && err.contains("no title"),
        "{err}"
    );
    let a = env.write("broken.md", b"---\ntitle: [unclosed\n---\nx\n");
    let err = env.fails(&["bundle", "create", &a]);
    assert!(
        err.contains("broken.md") && err.contains("front matter"),
        "{err}"
    );
    let a = env.article("ok.md", "Fine");
    let bad_image = env.write("notes.txt", b"text");
    let err = env.fails(&["bundle", "create", &a, "--image", &bad_image]);
    assert!(
        err.contains("notes.txt") && err.contains("unsupported media type"),
        "{err}"
    );
}

#[test]
fn trust_add_list_remove() {
    let env = Env::new();
    env.ok(&["newsroom", "init", "--name", "listed-news"]);
    let file = env.path("newsroom/listed-news.toml");
    env.ok(&["trust", "add", s(&file)]);
    env.ok(&["trust", "add", s(&file)]);
    let list = env.ok(&["trust", "list"]);
    assert!(list.contains("listed-news"), "{list}");
    env.ok(&["trust", "remove", "listed-news"]);
    assert!(!env.ok(&["trust", "list"]).contains("listed-news"));
    let err = env.fails(&["trust", "remove", "listed-news"]);
    assert!(err.contains("no trusted publisher"), "{err}");
    let bad = env.write("bad.toml", b"name = \"x\"\nroot_key = \"ed25519:zz\"\n");
    let err = env.fails(&["trust", "add", &bad]);
    assert!(
        err.contains("bad.toml") && err.contains("public key"),
        "{err}"
    );
}

#[test]
fn the_demo_newsroom_is_trusted_only_when_added() {
    let env = Env::new();
    let demo_dir = env.path("demo");
    let run = env.run(&[
        "demo",
        "--dir",
        s(&demo_dir),
        "--gateway",
        "127.0.0.1:0",
        "--exit-after-publish",
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    // A newcomer's first command prints no warnings.
    assert!(!err.contains("WARN"), "{err}");
    let out = String::from_utf8(run.stdout).unwrap();
    // Every sample bundle crossed the three hops to the reader, which
    // verified it, and the reader's gateway answered.
    assert!(out.contains("all 6 bundles reached the reader"), "{out}");
    assert_eq!(
        out.matches("reader    verified and stored").count(),
        6,
        "{out}"
    );
    assert!(out.contains("the gateway answered"), "{out}");
    let first = demo_dir.join("newsroom/published/0000000001.kolokol");

    // A fresh reader trusts nothing of the demo.
    let list = env.ok(&["trust", "list"]);
    assert!(!list.contains("kolokol-demo"), "{list}");
    let err = env.fails(&["verify", s(&first)]);
    assert!(err.contains("not in the trust list"), "{err}");

    // Added by hand, with a warning, it verifies.
    let demo_key = Path::new(REPO).join("keys/demo/kolokol-demo.toml");
    let added = env.run(&["trust", "add", s(&demo_key)]);
    assert!(added.status.success());
    assert!(String::from_utf8_lossy(&added.stderr).contains("DEMO"));
    env.ok(&["verify", s(&first)]);
}

#[test]
fn every_command_has_help() {
    use clap::CommandFactory;
    // clap's own consistency checks (names, conflicts, defaults).
    kolokol::cli::Cli::command().debug_assert();
    // Every command in the tree, found by walking it, so a new command is
    // covered without being listed here.
    let env = Env::new();
    let mut pending = vec![(Vec::<String>::new(), kolokol::cli::Cli::command())];
    let mut walked = 0;
    while let Some((path, cmd)) = pending.pop() {
        let name = [vec!["kolokol".to_owned()], path.clone()]
            .concat()
            .join(" ");
        assert!(
            cmd.get_about()
                .is_some_and(|a| !a.to_string().trim().is_empty()),
            "{name} has no help text"
        );
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            assert!(
                arg.get_help()
                    .is_some_and(|h| !h.to_string().trim().is_empty()),
                "{name}: {} has no help text",
                arg.get_id()
            );
        }
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = env.ok(&args);
        assert!(out.contains("Usage"), "{args:?}");
        walked += 1;
        for sub in cmd.get_subcommands() {
            let mut sub_path = path.clone();
            sub_path.push(sub.get_name().to_owned());
            pending.push((sub_path, sub.clone()));
        }
    }
    // The root, its commands and theirs: more than the top level alone.
    let top = kolokol::cli::Cli::command().get_subcommands().count();
    assert!(walked > top + 1, "walked only {walked} commands");
}

#[test]
fn a_revocation_can_move_earlier_but_not_later() {
    let env = Env::new();
    env.newsroom();
    env.ok(&["newsroom", "revoke", "1", "--effective", "2026-06-01"]);
    let err = env.fails(&["newsroom", "revoke", "1", "--effective", "2026-07-01"]);
    assert!(err.contains("already revoked"), "{err}");
    env.ok(&["newsroom", "revoke", "1", "--effective", "2026-05-01"]);
    let info = env.ok(&["newsroom", "info"]);
    assert!(info.contains("REVOKED from 2026-05-01"), "{info}");
    let err = env.fails(&["newsroom", "revoke", "ed25519:nope"]);
    assert!(err.contains("not a signing key"), "{err}");
}

#[test]
fn many_rotations_keep_bundle_files_readable() {
    let env = Env::new();
    env.newsroom();
    for _ in 0..3 {
        env.ok(&["newsroom", "rotate"]);
    }
    let a = env.article("a.md", "After rotations");
    let out = env.path("a.kolokol");
    env.ok(&["bundle", "create", &a, "--out", s(&out)]);
    let inspected = env.ok(&["inspect", s(&out)]);
    assert_eq!(
        inspected.matches("certificate #").count(),
        1,
        "only the signing certificate: {inspected}"
    );
    assert!(inspected.contains("certificate #4"), "{inspected}");
    env.ok(&["verify", s(&out)]);
}

#[test]
fn logs_can_be_json_lines_at_a_chosen_level() {
    let env = Env::new();
    env.newsroom();
    let a = env.article("a.md", "Logged");
    let out = env.run(&[
        "--log-format",
        "json",
        "--log-level",
        "kolokol=debug",
        "publish",
        &a,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    // The command's own report goes to standard error as text; every log
    // line is one JSON object.
    let logs: Vec<&str> = stderr.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!logs.is_empty(), "debug logging says something: {stderr}");
    for line in logs {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            v.get("level").is_some() && v.get("fields").is_some(),
            "{line}"
        );
    }
    assert!(!stderr.contains(" DEBUG "), "no text log lines: {stderr}");
    let err = env.fails(&["--log-level", "kolokol=[bad", "status"]);
    assert!(err.contains("--log-level"), "{err}");
}

#[test]
fn a_revocation_cuts_off_above_the_last_number_the_key_signed() {
    let env = Env::new();
    env.newsroom();
    for (name, title) in [("a.md", "First"), ("b.md", "Second")] {
        let a = env.article(name, title);
        env.ok(&["bundle", "create", &a]);
    }
    // Both stories were signed before the effective time: the cut-off is
    // the second one's number, whatever time a thief writes.
    let out = env.ok(&["newsroom", "revoke", "1", "--effective", "2100-01-01"]);
    assert!(out.contains("above sequence 2"), "{out}");
    // A higher cut-off would narrow the revocation; a lower one widens it.
    let err = env.fails(&[
        "newsroom",
        "revoke",
        "1",
        "--effective",
        "2100-01-01",
        "--last-sequence",
        "3",
    ]);
    assert!(err.contains("already revoked"), "{err}");
    let out = env.ok(&[
        "newsroom",
        "revoke",
        "1",
        "--effective",
        "2100-01-01",
        "--last-sequence",
        "1",
    ]);
    assert!(out.contains("above sequence 1"), "{out}");
    // A folder missing a bundle it numbered cannot tell the cut-off.
    let published = env.path("newsroom/published");
    let first = std::fs::read_dir(&published)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    std::fs::remove_file(first.path()).unwrap();
    let err = env.fails(&["newsroom", "revoke", "1", "--effective", "2000-01-01"]);
    assert!(err.contains("--last-sequence"), "{err}");
}

#[test]
fn an_impostor_display_name_is_refused() {
    let env = Env::new();
    env.ok(&["newsroom", "init", "--name", "real-news"]);
    let file = env.path("newsroom/real-news.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let root = text
        .lines()
        .find(|l| l.starts_with("root_key"))
        .unwrap()
        .to_owned();
    // A right-to-left override makes "Daily Bugle" of reversed bytes; a
    // name of a kilobyte would push the real one off the page.
    for (name, display) in [
        ("bidi", "\u{202E}elguB yliaD".to_owned()),
        ("zw", "Daily\u{200B}Bugle".to_owned()),
        ("long", "D".repeat(1000)),
    ] {
        let f = env.write(
            &format!("{name}.toml"),
            format!("name = \"imp-{name}\"\ndisplay_name = \"{display}\"\n{root}\n").as_bytes(),
        );
        let err = env.fails(&["trust", "add", &f]);
        assert!(err.contains("display_name"), "{name}: {err}");
    }
    let err = env.fails(&[
        "newsroom",
        "init",
        "--name",
        "other-news",
        "--dir",
        s(&env.path("other")),
        "--display-name",
        "Daily\u{202E}Bugle",
    ]);
    assert!(err.contains("display_name"), "{err}");
}
