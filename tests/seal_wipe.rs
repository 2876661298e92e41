//! Wiping: the wrapped key goes first, in well under a second whatever
//! the store's size, and nothing can unlock the directory afterwards.

mod common;

use std::path::Path;
use std::process::Command;

use common::process::BIN;
use common::sealed::copy_tree;
use common::*;
use kolokol::seal::{DataDir, SealError};
use tempfile::TempDir;

const PASS: &str = "a passphrase for the wipe test";

fn kolokol(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("KOLOKOL_PASSPHRASE", PASS)
        .env("KOLOKOL_KDF_COST", "m=64,t=1,p=1")
        .output()
        .unwrap()
}

fn ok(data: &Path, args: &[&str]) -> String {
    let out = kolokol(data, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A sealed directory holding `n` stories.
fn sealed_with(dir: &Path, n: u64) -> (std::path::PathBuf, Publisher) {
    let p = Publisher::new(3);
    let archive_path = dir.join("archive.kolokol");
    std::fs::write(&archive_path, archive(&p, n, 512)).unwrap();
    let trust = dir.join("trust.toml");
    std::fs::write(&trust, trust_file(&p, "wipe-test")).unwrap();
    let data = dir.join("data");
    ok(&data, &["trust", "add", trust.to_str().unwrap()]);
    ok(&data, &["import", archive_path.to_str().unwrap()]);
    ok(&data, &["seal"]);
    assert!(DataDir::is_sealed(&data));
    (data, p)
}

#[test]
fn wiping_ten_thousand_stories_destroys_the_key_within_a_second() {
    let dir = TempDir::new().unwrap();
    let (data, _) = sealed_with(dir.path(), 10_000);
    let stats = ok(&data, &["store", "stats"]);
    assert!(stats.contains("bundles:   10000"), "{stats}");
    // A copy of the sealed store, as a seizure might have made before the
    // wipe, to show it no longer opens.
    let kept = dir.path().join("kept");
    copy_tree(&data.join("sealed"), &kept);
    std::fs::remove_file(kept.join("seal.key")).unwrap();

    let report = kolokol::seal::wipe(&data).unwrap();
    println!(
        "wipe of 10,000 stories: key destroyed in {:?}, everything in {:?} ({} files)",
        report.key_time, report.total_time, report.files_removed
    );
    assert!(report.key_destroyed);
    assert!(
        report.key_time.as_secs_f64() < 1.0,
        "destroying the key took {:?}",
        report.key_time
    );
    assert!(!data.exists(), "the data directory is left");

    // Put the store back without its key: nothing opens it.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::rename(&kept, data.join("sealed")).unwrap();
    assert!(!DataDir::is_sealed(&data));
    match DataDir::unlock_with(&data, PASS.as_bytes()) {
        Err(SealError::State(_)) => {}
        other => panic!("a wiped directory unlocked: {other:?}"),
    }
    let out = kolokol(&data, &["store", "stats"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("10000"));
}

#[test]
fn the_wipe_command_asks_and_then_removes_everything() {
    let dir = TempDir::new().unwrap();
    let (data, _) = sealed_with(dir.path(), 20);
    std::fs::write(data.join("mine.txt"), "the owner's own file").unwrap();
    // No terminal and no --yes: refused, nothing touched.
    let out = kolokol(&data, &["wipe"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert!(DataDir::is_sealed(&data));
    let out = ok(&data, &["wipe", "--yes"]);
    assert!(out.contains("destroyed"), "{out}");
    assert!(!data.join("sealed").exists());
    assert!(!data.join("config.toml").exists());
    // What Kolokol did not put there stays.
    assert!(data.join("mine.txt").exists());
    let out = kolokol(&data, &["store", "stats"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("wipe-test"));
}
