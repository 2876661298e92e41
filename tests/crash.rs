//! Crash safety: `kolokol import` killed with SIGKILL at random moments.
//! After each kill the store opens, every bundle the importer reported as
//! stored is there and verifies, and no bundle is half there.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::BIN;
use common::*;
use kolokol::proto::*;
use kolokol::store::{Store, StoreConfig};
use rand::{Rng, SeedableRng};
use tempfile::TempDir;

const BUNDLES: u64 = 3000;
const KILLS: usize = 20;

struct Run {
    reported: Vec<BundleId>,
    finished: bool,
}

/// Imports `archive` into `data`, killing the process after `kill_after`
/// (if it is still running). Returns the ids it reported as stored.
fn import(data: &std::path::Path, archive: &std::path::Path, kill_after: Option<Duration>) -> Run {
    let mut child = Command::new(BIN)
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "import",
            "--print-stored",
            archive.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Lines are read on their own thread, so the pipe never fills and
    // everything printed before the kill is collected.
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| {
                l.strip_prefix("stored ")
                    .map(|id| id.parse::<BundleId>().unwrap())
            })
            .collect::<Vec<_>>()
    });
    let mut finished = false;
    if let Some(delay) = kill_after {
        let deadline = Instant::now() + delay;
        loop {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            if Instant::now() >= deadline {
                child.kill().unwrap(); // SIGKILL
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let status = child.wait().unwrap();
    finished |= status.success();
    Run {
        reported: reader.join().unwrap(),
        finished,
    }
}

/// Everything the store holds is whole and verifies; every reported id is held.
fn check(data: &std::path::Path, p: &Publisher, reported: &[BundleId]) -> u64 {
    let store = Store::open(&data.join("store"), StoreConfig::default())
        .expect("the store opens after a kill");
    let report = store.check(false).unwrap();
    assert!(
        report.problems.is_empty(),
        "half-stored bundles: {:?}",
        report.problems
    );
    let policy = p.policy();
    for id in reported {
        assert_stored_verifies(&store, &policy, id);
    }
    let totals = store.totals().unwrap();
    let held: u64 = store
        .held_ranges(&p.public())
        .unwrap()
        .iter()
        .map(|(a, b)| b - a + 1)
        .sum();
    assert_eq!(totals.bundles, held, "counters agree with the index");
    assert_eq!(
        totals.bundles, totals.blobs,
        "one body blob per bundle, none orphaned"
    );
    totals.bundles
}

#[test]
fn sigkill_during_import_never_loses_or_splits_a_bundle() {
    let dir = TempDir::new().unwrap();
    let p = Publisher::new(1);
    let archive_path = dir.path().join("archive.kolokol");
    std::fs::write(&archive_path, archive(&p, BUNDLES, 4096)).unwrap();
    let trust = dir.path().join("trust.toml");
    std::fs::write(&trust, trust_file(&p, "crash-test")).unwrap();
    let new_data = |name: &str| {
        let d = dir.path().join(name);
        let ok = Command::new(BIN)
            .args([
                "--data-dir",
                d.to_str().unwrap(),
                "trust",
                "add",
                trust.to_str().unwrap(),
            ])
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok);
        d
    };

    // How long an uninterrupted import takes here, to aim the kills inside it.
    let base = new_data("base");
    let start = Instant::now();
    let full = import(&base, &archive_path, None);
    let full_time = start.elapsed();
    assert!(full.finished);
    assert_eq!(full.reported.len() as u64, BUNDLES);
    assert_eq!(check(&base, &p, &full.reported), BUNDLES);

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6b6f6c6f6b6f6c);
    let mut interrupted = 0;
    // Each kill hits a fresh store mid-import; every fifth store is then
    // killed once more during the re-import, which skips what it holds.
    let mut stores = Vec::new();
    for i in 0..KILLS {
        let data = new_data(&format!("s{i}"));
        let fraction = rng.gen_range(0.02..0.95);
        let run = import(&data, &archive_path, Some(full_time.mul_f64(fraction)));
        if !run.finished {
            interrupted += 1;
        }
        let mut reported = run.reported;
        let held = check(&data, &p, &reported);
        assert!(held >= reported.len() as u64);
        if i % 5 == 0 {
            let again = import(
                &data,
                &archive_path,
                Some(full_time.mul_f64(rng.gen_range(0.05..0.5))),
            );
            reported.extend(again.reported);
            check(&data, &p, &reported);
        }
        stores.push((data, reported));
    }
    assert!(
        interrupted >= KILLS / 2,
        "only {interrupted} of {KILLS} runs were cut short; the kills missed"
    );

    // A final uninterrupted run completes every store.
    for (data, mut reported) in stores {
        let run = import(&data, &archive_path, None);
        assert!(run.finished);
        reported.extend(run.reported);
        assert_eq!(check(&data, &p, &reported), BUNDLES);
    }
}
