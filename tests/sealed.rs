//! A sealed data directory gives nothing away: every byte of it is
//! scanned for what it holds, in every form a forensic tool would try.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use common::process::s;
use common::sealed::{self, ok, run};

const PASS: &str = "correct horse battery staple";
const TITLE: &str = "Секретный доклад о цензуре в регионах";
const WORDS: [&str; 3] = ["Новгородского", "расследование", "Zhivopisnaya"];
const NEWSROOM: &str = "nezavisimaya-gazeta";

fn image() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    png.extend((0..50_000).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    png
}

/// A reader's data directory holding one story with an image, published
/// by a newsroom it trusts; and the story's bundle id.
fn reader_with_story(dir: &Path) -> (PathBuf, PathBuf, String) {
    let article = format!(
        "---\ntitle: {TITLE}\nlang: ru\n---\n{} {} {}.\n\n![photo](photo.png)\n",
        WORDS[0], WORDS[1], WORDS[2]
    );
    sealed::reader_with_story(dir, NEWSROOM, &article, Some(&image()))
}

fn utf16(text: &str, big: bool) -> Vec<u8> {
    text.encode_utf16()
        .flat_map(|u| {
            if big {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            }
        })
        .collect()
}

/// Every form of what the directory must not show, by what it is.
fn needles(newsroom: &Path, bundle_id: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut text = |what: &str, t: &str| {
        out.push((format!("{what} (UTF-8)"), t.as_bytes().to_vec()));
        out.push((format!("{what} (UTF-16LE)"), utf16(t, false)));
        out.push((format!("{what} (UTF-16BE)"), utf16(t, true)));
    };
    text("title", TITLE);
    for w in WORDS {
        text("body word", w);
    }
    text("newsroom name", NEWSROOM);
    let img = image();
    for at in [8, 20_000, 49_000] {
        out.push((format!("image bytes at {at}"), img[at..at + 24].to_vec()));
    }
    let file = std::fs::read_to_string(newsroom.join(format!("{NEWSROOM}.toml"))).unwrap();
    let key_hex = file
        .lines()
        .find_map(|l| l.strip_prefix("root_key = \""))
        .unwrap()
        .trim_end_matches('"')
        .trim_start_matches("ed25519:")
        .to_owned();
    let key = hex::decode(&key_hex).unwrap();
    forms(&mut out, "publisher key", &key);
    let id = hex::decode(bundle_id).unwrap();
    forms(&mut out, "bundle id", &id);
    out
}

fn forms(out: &mut Vec<(String, Vec<u8>)>, what: &str, bytes: &[u8]) {
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes);
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let b58 = bs58::encode(bytes).into_string();
    let b32 = data_encoding::BASE32_NOPAD.encode(bytes);
    for (form, v) in [
        ("raw", bytes.to_vec()),
        ("hex", hex::encode(bytes).into_bytes()),
        ("HEX", hex::encode_upper(bytes).into_bytes()),
        ("base64", b64.into_bytes()),
        ("base64url", b64url.into_bytes()),
        ("base58", b58.into_bytes()),
        ("base32", b32.clone().into_bytes()),
        ("base32 lower", b32.to_lowercase().into_bytes()),
    ] {
        // A prefix long enough to be unmistakable, short enough to catch
        // a truncated copy.
        let n = v.len().min(16);
        out.push((format!("{what} ({form})"), v[..n].to_vec()));
    }
}

fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn found(root: &Path, needles: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut hits = Vec::new();
    for (path, bytes) in files(root) {
        for (what, n) in needles {
            if bytes.windows(n.len()).any(|w| w == n.as_slice()) {
                hits.push(format!("{what} in {}", path.display()));
            }
        }
    }
    hits
}

#[test]
fn a_sealed_directory_holds_nothing_recognisable() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, newsroom, id) = reader_with_story(dir.path());
    let needles = needles(&newsroom, &id);
    // The scan can fail: the plain directory shows all of it.
    let before = found(&reader, &needles);
    for what in [
        "title (UTF-8)",
        "image bytes at 20000",
        "publisher key (raw)",
        "bundle id (raw)",
    ] {
        assert!(
            before.iter().any(|h| h.starts_with(what)),
            "the plain store should show {what}: {before:?}"
        );
    }
    let env = [("KOLOKOL_PASSPHRASE", PASS)];
    let out = ok(&reader, &env, &["seal"]);
    assert!(out.contains("sealed"), "{out}");
    let hits = found(&reader, &needles);
    assert!(hits.is_empty(), "the sealed directory shows: {hits:#?}");

    // Everything is still there for the owner.
    let check = ok(&reader, &env, &["store", "check"]);
    assert!(!check.contains("damaged"), "{check}");
    let stats = ok(&reader, &env, &["store", "stats"]);
    assert!(
        stats.contains(NEWSROOM) && stats.contains("held:    1"),
        "{stats}"
    );
    let trust = ok(&reader, &env, &["trust", "list"]);
    assert!(trust.contains(NEWSROOM), "{trust}");
    let archive = dir.path().join("out.kolokol");
    ok(&reader, &env, &["export", "--out", s(&archive)]);
    let bytes = std::fs::read(&archive).unwrap();
    assert!(bytes.windows(TITLE.len()).any(|w| w == TITLE.as_bytes()));
    assert!(bytes.windows(24).any(|w| w == &image()[20_000..20_024]));

    // And it unseals back to the plain store, whole.
    ok(&reader, &env, &["unseal"]);
    assert!(!reader.join("sealed").exists());
    let stats = ok(&reader, &[], &["store", "stats"]);
    assert!(
        stats.contains(NEWSROOM) && stats.contains("held:    1"),
        "{stats}"
    );
}

#[test]
fn a_wrong_passphrase_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, _, _) = reader_with_story(dir.path());
    ok(&reader, &[("KOLOKOL_PASSPHRASE", PASS)], &["seal"]);
    let before = files(&reader);
    for args in [
        &["store", "stats"][..],
        &["trust", "list"],
        &["unseal"],
        &["store", "check"],
    ] {
        let out = run(
            &reader,
            &[("KOLOKOL_PASSPHRASE", "not the passphrase")],
            args,
        );
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("wrong passphrase"), "{args:?}: {err}");
    }
    // No passphrase at all, and no terminal: told how to give one.
    let out = run(&reader, &[], &["store", "stats"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("KOLOKOL_PASSPHRASE"));
    assert_eq!(
        files(&reader),
        before,
        "a refused passphrase changed the directory"
    );
}

#[test]
fn the_duress_passphrase_wipes() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, _, _) = reader_with_story(dir.path());
    ok(
        &reader,
        &[
            ("KOLOKOL_PASSPHRASE", PASS),
            ("KOLOKOL_DURESS_PASSPHRASE", "the other one"),
        ],
        &["seal", "--duress"],
    );
    let out = run(
        &reader,
        &[("KOLOKOL_PASSPHRASE", "the other one")],
        &["store", "stats"],
    );
    assert!(!out.status.success());
    // Reported like any wrong passphrase.
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    assert!(
        !reader.join("sealed").exists(),
        "the duress passphrase left the store"
    );
    let out = run(
        &reader,
        &[("KOLOKOL_PASSPHRASE", PASS)],
        &["store", "stats"],
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(NEWSROOM));
}
