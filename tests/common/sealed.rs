//! Sealed data directories for tests: the CLI run with a cheap key
//! derivation, a reader holding a story of a newsroom it trusts, and
//! copies of directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::process::{BIN, s};

/// Argon2id at its cheapest: the tests are about what is stored and
/// when, not the cost of guessing.
pub const KDF: &str = "m=64,t=1,p=1";

/// Runs kolokol on `data` with `envs`, no newsroom folder or passphrase
/// from the caller's environment, and the cheap key derivation.
pub fn run(data: &Path, envs: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.arg("--data-dir").arg(data).args(args);
    c.env_remove("KOLOKOL_NEWSROOM")
        .env_remove("KOLOKOL_PASSPHRASE")
        .env_remove("KOLOKOL_PASSPHRASE_FD")
        .env("KOLOKOL_KDF_COST", KDF)
        .stdin(std::process::Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// [`run`], expecting success; standard output.
pub fn ok(data: &Path, envs: &[(&str, &str)], args: &[&str]) -> String {
    let out = run(data, envs, args);
    assert!(
        out.status.success(),
        "kolokol {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A plain reader directory in `dir` trusting the newsroom `name`, holding
/// one story published from `article` (Markdown with front matter), with
/// `image` attached when given. Returns the reader's directory, the
/// newsroom's folder and the story's bundle id.
pub fn reader_with_story(
    dir: &Path,
    name: &str,
    article: &str,
    image: Option<&[u8]>,
) -> (PathBuf, PathBuf, String) {
    let (nr, reader, newsroom) = (dir.join("nr"), dir.join("reader"), dir.join("newsroom"));
    ok(
        &nr,
        &[],
        &["newsroom", "init", "--name", name, "--dir", s(&newsroom)],
    );
    ok(
        &reader,
        &[],
        &["trust", "add", s(&newsroom.join(format!("{name}.toml")))],
    );
    let path = dir.join("story.md");
    std::fs::write(&path, article).unwrap();
    let mut args = vec!["publish", s(&path), "--newsroom", s(&newsroom)];
    let img = dir.join("photo.png");
    if let Some(bytes) = image {
        std::fs::write(&img, bytes).unwrap();
        args.extend(["--image", s(&img)]);
    }
    let id = ok(&reader, &[], &args).trim().to_owned();
    (reader, newsroom, id)
}

/// Copies the folder `from` to `to`, recursively.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}
