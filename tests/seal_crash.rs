//! Crash safety of sealing: `kolokol seal` killed with SIGKILL at random
//! moments. Afterwards the directory is the plain store or the sealed one,
//! whole either way, and a new `seal` finishes the job.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::BIN;
use common::sealed::copy_tree;
use common::*;
use kolokol::seal::{DataDir, SealError};
use kolokol::store::StoreConfig;
use rand::{Rng, SeedableRng};
use tempfile::TempDir;
use zeroize::Zeroizing;

/// Bundles of 20 KiB: each body is a blob file, so the conversion writes
/// files as well as index entries.
const BUNDLES: u64 = 300;
const KILLS: usize = 20;
const PASS: &str = "a passphrase for the crash test";

fn seal(data: &Path, kill_after: Option<Duration>) -> bool {
    let mut child = Command::new(BIN)
        .args(["--data-dir", data.to_str().unwrap(), "seal"])
        .env("KOLOKOL_PASSPHRASE", PASS)
        .env("KOLOKOL_KDF_COST", "m=64,t=1,p=1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    if let Some(delay) = kill_after {
        let deadline = Instant::now() + delay;
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() >= deadline {
                child.kill().unwrap(); // SIGKILL
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    child.wait().unwrap().success()
}

/// Opens the directory as any command would (which finishes or undoes an
/// interrupted conversion), checks every bundle, and says whether it is
/// sealed.
fn check(data: &Path, p: &Publisher) -> bool {
    let pass = || -> Result<Zeroizing<String>, SealError> { Ok(Zeroizing::new(PASS.into())) };
    let dir = DataDir::open(data, &pass).expect("the directory opens after a kill");
    let leftovers: Vec<_> = std::fs::read_dir(data)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".stage-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "staging left after opening: {leftovers:?}"
    );
    let sealed = dir.sealed();
    // Never both: a sealed directory has no plain store beside it.
    assert!(
        !(sealed && data.join("store").exists()),
        "both stores at once"
    );
    let store = dir.open_store(StoreConfig::default()).unwrap();
    assert_eq!(store.is_sealed(), sealed);
    let report = store.check(false).unwrap();
    assert!(report.problems.is_empty(), "damage: {:?}", report.problems);
    let totals = store.totals().unwrap();
    assert_eq!(totals.bundles, BUNDLES, "bundles lost (sealed: {sealed})");
    let policy = p.policy();
    for (_, id) in store.held_bundles(&p.public()).unwrap() {
        assert_stored_verifies(&store, &policy, &id);
    }
    let names: Vec<_> = dir.trust().unwrap().list().unwrap();
    assert!(
        names.iter().any(|f| f.name == "crash-test"),
        "trust list lost"
    );
    sealed
}

#[test]
fn sigkill_during_sealing_leaves_the_old_store_or_the_sealed_one() {
    let dir = TempDir::new().unwrap();
    let p = Publisher::new(1);
    let archive_path = dir.path().join("archive.kolokol");
    std::fs::write(&archive_path, archive(&p, BUNDLES, 20 * 1024)).unwrap();
    let trust = dir.path().join("trust.toml");
    std::fs::write(&trust, trust_file(&p, "crash-test")).unwrap();
    let base = dir.path().join("base");
    for args in [
        vec!["trust", "add", trust.to_str().unwrap()],
        vec!["import", archive_path.to_str().unwrap()],
    ] {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(&base)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!check(&base, &p));

    // How long an uninterrupted conversion takes, to aim the kills inside it.
    let timed = dir.path().join("timed");
    copy_tree(&base, &timed);
    let start = Instant::now();
    assert!(seal(&timed, None));
    let full = start.elapsed();
    assert!(check(&timed, &p));
    println!("sealing {BUNDLES} bundles of 20 KiB took {full:?}");

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7365616c);
    let (mut plain, mut sealed) = (0, 0);
    for i in 0..KILLS {
        let data = dir.path().join(format!("k{i}"));
        copy_tree(&base, &data);
        let at = full.mul_f64(rng.gen_range(0.02..1.1));
        let finished = seal(&data, Some(at));
        match check(&data, &p) {
            true => sealed += 1,
            false => {
                assert!(!finished, "a finished seal left a plain store");
                plain += 1;
                // Sealing again after the kill completes.
                assert!(seal(&data, None));
                assert!(check(&data, &p));
            }
        }
        std::fs::remove_dir_all(&data).unwrap();
    }
    println!("after {KILLS} kills: {plain} plain, {sealed} sealed, none damaged");
    assert!(plain > 0, "no kill landed before the commit");
}
