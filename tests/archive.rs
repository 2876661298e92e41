//! Archives: export, import, incremental updates, and damage.

mod common;

use common::process::kolokol;
use common::*;
use kolokol::proto::*;
use kolokol::store::archive::{self, ExportFilter, Summary};
use kolokol::store::{Store, StoreConfig};
use tempfile::TempDir;

fn policy_for(p: &Publisher) -> TrustPolicy {
    bare_policy(p)
}

fn import_bytes(store: &Store, p: &Publisher, bytes: &[u8]) -> archive::ImportReport {
    let mut policy = policy_for(p);
    store.load_trust(&mut policy, now()).unwrap();
    archive::import(
        store,
        &mut policy,
        bytes,
        now().plus(400 * DAY),
        &mut |_| {},
    )
    .unwrap()
}

#[test]
fn import_then_export_round_trips() {
    let p = Publisher::new(1);
    let bytes = archive(&p, 50, 2000);
    let a = Store::memory(StoreConfig::default());
    let report = import_bytes(&a, &p, &bytes);
    assert_eq!(
        (report.new, report.duplicate, report.rejected.len()),
        (50, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.heads, 1);
    assert!(report.file_error.is_none());
    let again = import_bytes(&a, &p, &bytes);
    assert_eq!((again.new, again.duplicate), (0, 50));

    let mut out = Vec::new();
    let exported = archive::export(&a, &ExportFilter::default(), &mut out, &mut |_| {}).unwrap();
    assert_eq!(exported.bundles, 50);
    let b = Store::memory(StoreConfig::default());
    let report = import_bytes(&b, &p, &out);
    assert_eq!(report.new, 50);
    assert_eq!(b.held_ranges(&p.public()).unwrap(), [(1, 50)]);
    assert_eq!(b.head(&p.public()).unwrap().unwrap().1.sequence, 50);
}

#[test]
fn a_summary_makes_the_export_incremental() {
    let p = Publisher::new(1);
    let full = archive(&p, 40, 500);
    let sender = Store::memory(StoreConfig::default());
    import_bytes(&sender, &p, &full);
    // The receiver got the first 25 some other day.
    let first = archive(&p, 25, 500);
    let receiver = Store::memory(StoreConfig::default());
    import_bytes(&receiver, &p, &first);
    let summary = Summary::of(&receiver).unwrap();
    let summary: Summary = toml::from_str(&summary.to_toml()).unwrap();
    let filter = ExportFilter {
        have: Some(summary),
        ..ExportFilter::default()
    };
    let mut out = Vec::new();
    let report = archive::export(&sender, &filter, &mut out, &mut |_| {}).unwrap();
    assert_eq!((report.bundles, report.skipped), (15, 25));
    let imported = import_bytes(&receiver, &p, &out);
    assert_eq!((imported.new, imported.duplicate), (15, 0));
    assert_eq!(receiver.held_ranges(&p.public()).unwrap(), [(1, 40)]);
    assert_eq!(receiver.missing(&p.public()).unwrap(), []);
}

#[test]
fn export_filters_by_publisher_and_time() {
    let p = Publisher::new(1);
    let q = Publisher::new(20);
    let store = Store::memory(StoreConfig::default());
    import_bytes(&store, &p, &archive(&p, 10, 100));
    import_bytes(&store, &q, &archive(&q, 5, 100));
    let mut out = Vec::new();
    let only_q = ExportFilter {
        publishers: vec![q.public()],
        ..ExportFilter::default()
    };
    assert_eq!(
        archive::export(&store, &only_q, &mut out, &mut |_| {})
            .unwrap()
            .bundles,
        5
    );
    // Bundles of the fixture are signed at T0 + seq + 1.
    let since = ExportFilter {
        publishers: vec![p.public()],
        since: Some(T0.plus(8)),
        ..ExportFilter::default()
    };
    let mut out = Vec::new();
    assert_eq!(
        archive::export(&store, &since, &mut out, &mut |_| {})
            .unwrap()
            .bundles,
        4
    );
}

#[test]
fn a_tampered_archive_names_the_bad_bundle_and_keeps_the_good() {
    let p = Publisher::new(1);
    let mut bytes = archive(&p, 20, 1000);
    // Find the 7th blob frame and change a byte inside it.
    let mut reader = kolokol::proto::bundle::FrameReader::new(bytes.as_slice()).unwrap();
    let mut blob_offsets = Vec::new();
    let mut manifests = Vec::new();
    while let Some(f) = reader.next_frame().unwrap() {
        match f.tag {
            kolokol::proto::bundle::FrameTag::Blob => blob_offsets.push(f.offset),
            kolokol::proto::bundle::FrameTag::Manifest => manifests.push(BundleId::of(&f.payload)),
            _ => {}
        }
    }
    bytes[blob_offsets[6] as usize + 5 + 100] ^= 0x01;
    let store = Store::memory(StoreConfig::default());
    let report = import_bytes(&store, &p, &bytes);
    assert_eq!(report.new, 19);
    assert_eq!(report.rejected.len(), 1, "{:?}", report.rejected);
    assert!(
        report.rejected[0].what.contains(&manifests[6].to_string()),
        "{:?}",
        report.rejected
    );
    assert!(
        report.rejected[0].reason.contains("does not match"),
        "{:?}",
        report.rejected
    );
    assert!(
        report
            .file_error
            .as_deref()
            .is_some_and(|e| e.contains("damaged"))
    );
    assert!(!store.has_bundle(&manifests[6]).unwrap());
    assert_eq!(store.held_ranges(&p.public()).unwrap(), [(1, 6), (8, 20)]);
}

#[test]
fn a_truncated_archive_keeps_whole_bundles_only() {
    let p = Publisher::new(1);
    let bytes = archive(&p, 20, 1000);
    let cut = &bytes[..bytes.len() / 2];
    let store = Store::memory(StoreConfig::default());
    let report = import_bytes(&store, &p, cut);
    assert!(report.new > 0 && report.new < 20);
    assert!(
        report
            .file_error
            .as_deref()
            .is_some_and(|e| e.contains("truncated"))
    );
    // Every bundle held is whole.
    assert!(store.check(false).unwrap().problems.is_empty());
    assert_eq!(store.totals().unwrap().bundles, report.new);
}

#[test]
fn an_untrusted_publishers_archive_is_rejected_whole() {
    let p = Publisher::new(1);
    let stranger = Publisher::new(30);
    let store = Store::memory(StoreConfig::default());
    let mut policy = policy_for(&p);
    let report = archive::import(
        &store,
        &mut policy,
        archive(&stranger, 3, 10).as_slice(),
        now(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.new, 0);
    assert!(
        report
            .rejected
            .iter()
            .all(|r| r.reason.contains("not in the trust list")),
        "{:?}",
        report.rejected
    );
    assert_eq!(report.rejected.len(), 5, "certificate, 3 bundles, head");
}

// ---- the command line ----

fn data_dir_trusting(dir: &TempDir, name: &str, p: &Publisher) -> std::path::PathBuf {
    let data = dir.path().join(name);
    let file = dir.path().join(format!("{name}-trust.toml"));
    std::fs::write(&file, trust_file(p, "test-publisher")).unwrap();
    assert!(
        kolokol(&data, &["trust", "add", file.to_str().unwrap()])
            .status
            .success()
    );
    data
}

#[test]
fn cli_export_import_and_incremental_update() {
    let dir = TempDir::new().unwrap();
    let p = Publisher::new(1);
    let src = dir.path().join("all.kolokol");
    std::fs::write(&src, archive(&p, 30, 300)).unwrap();
    let a = data_dir_trusting(&dir, "a", &p);
    let b = data_dir_trusting(&dir, "b", &p);

    let out = kolokol(&a, &["import", src.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("30 new, 0 duplicate, 0 rejected"), "{text}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains('['),
        "no progress bar off a terminal"
    );

    // b has nothing; its summary makes a's export complete.
    let summary = dir.path().join("b-summary.toml");
    assert!(
        kolokol(
            &b,
            &["store", "summary", "--out", summary.to_str().unwrap()]
        )
        .status
        .success()
    );
    let update = dir.path().join("update.kolokol");
    let out = kolokol(
        &a,
        &[
            "export",
            "--have",
            summary.to_str().unwrap(),
            "--out",
            update.to_str().unwrap(),
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("30 bundles"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        kolokol(&b, &["import", update.to_str().unwrap()])
            .status
            .success()
    );
    // Now b has everything; the next update is empty.
    assert!(
        kolokol(
            &b,
            &["store", "summary", "--out", summary.to_str().unwrap()]
        )
        .status
        .success()
    );
    let out = kolokol(
        &a,
        &[
            "export",
            "--have",
            summary.to_str().unwrap(),
            "--publisher",
            "test-publisher",
            "--out",
            update.to_str().unwrap(),
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 bundles"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let stats = String::from_utf8(kolokol(&b, &["store", "stats"]).stdout).unwrap();
    assert!(
        stats.contains("bundles:   30") && stats.contains("held:    1-30"),
        "{stats}"
    );
    let check = kolokol(&b, &["store", "check"]);
    assert!(
        check.status.success() && String::from_utf8_lossy(&check.stdout).contains("no problems")
    );

    // A damaged file: exit 1, the bad bundle named.
    let mut bytes = std::fs::read(&src).unwrap();
    let n = bytes.len();
    bytes[n - 500] ^= 0x40;
    let bad = dir.path().join("bad.kolokol");
    std::fs::write(&bad, bytes).unwrap();
    let c = data_dir_trusting(&dir, "c", &p);
    let out = kolokol(&c, &["import", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 rejected") && text.contains("rejected bundle"),
        "{text}"
    );
}

#[test]
fn cli_publish_signs_and_stores() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let newsroom = dir.path().join("newsroom");
    let n = newsroom.to_str().unwrap();
    assert!(
        kolokol(
            &data,
            &["newsroom", "init", "--name", "pub-news", "--dir", n]
        )
        .status
        .success()
    );
    let article = dir.path().join("a.md");
    std::fs::write(&article, "---\ntitle: Published\nlang: en\n---\nText.\n").unwrap();
    let out = kolokol(
        &data,
        &["publish", article.to_str().unwrap(), "--newsroom", n],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(id.len(), 64);
    let store = Store::open(&data.join("store"), StoreConfig::default()).unwrap();
    let m = store.manifest(&id.parse().unwrap()).unwrap().unwrap();
    assert_eq!(m.manifest.metadata.title, "Published");
    assert_eq!(
        store
            .head(&m.manifest.publisher)
            .unwrap()
            .unwrap()
            .1
            .sequence,
        1
    );
}

#[test]
fn an_archive_ending_in_a_bundle_keeps_it_when_only_the_checksum_is_bad() {
    use kolokol::proto::bundle::{FileKind, FrameTag, FrameWriter};
    let p = Publisher::new(1);
    let mut w = FrameWriter::new(Vec::new(), FileKind::Archive).unwrap();
    w.write_frame(FrameTag::Certificate, &p.cert).unwrap();
    for n in 1..=3u64 {
        let (m, blobs) = story(&p, n, n as u8, format!("<p>{n}</p>").as_bytes()).signed();
        w.write_frame(FrameTag::Manifest, &m).unwrap();
        w.write_frame(FrameTag::Blob, &blobs[0]).unwrap();
    }
    let mut bytes = w.finish().unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1; // the checksum itself
    let store = Store::memory(StoreConfig::default());
    let report = import_bytes(&store, &p, &bytes);
    assert_eq!(report.new, 3, "{report:?}");
    assert!(report.rejected.is_empty());
    assert!(report.file_error.is_some());
}

#[test]
fn an_oversized_bundle_is_refused_before_it_is_held() {
    use kolokol::proto::bundle::{FileKind, FrameTag, FrameWriter};
    let p = Publisher::new(1);
    let mut w = FrameWriter::new(Vec::new(), FileKind::Archive).unwrap();
    w.write_frame(FrameTag::Certificate, &p.cert).unwrap();
    let (m, _) = story(&p, 1, 1, b"<p>x</p>").signed();
    w.write_frame(FrameTag::Manifest, &m).unwrap();
    // 257 blobs: one more than any bundle may have.
    for _ in 0..=limits::MAX_ENTRIES {
        w.write_frame(FrameTag::Blob, b"y").unwrap();
    }
    let (m2, b2) = story(&p, 2, 2, b"<p>fine</p>").signed();
    w.write_frame(FrameTag::Manifest, &m2).unwrap();
    w.write_frame(FrameTag::Blob, &b2[0]).unwrap();
    let bytes = w.finish().unwrap();
    let store = Store::memory(StoreConfig::default());
    let report = import_bytes(&store, &p, &bytes);
    assert_eq!(report.new, 1);
    assert_eq!(report.rejected.len(), 1, "{:?}", report.rejected);
    assert!(report.rejected[0].reason.contains("more than"));
}

#[test]
fn a_file_of_bad_frames_gives_a_report_of_bounded_size() {
    use kolokol::proto::bundle::{FileKind, FrameTag, FrameWriter};
    let dir = TempDir::new().unwrap();
    let p = Publisher::new(7);
    // A real file: 30,000 blobs outside any bundle, 30,000 certificates
    // and 30,000 heads that are not signed objects, then a good archive.
    let mut w = FrameWriter::new(Vec::new(), FileKind::Archive).unwrap();
    for i in 0..30_000u32 {
        w.write_frame(FrameTag::Blob, &i.to_le_bytes()).unwrap();
        w.write_frame(FrameTag::Certificate, &[0xee; 80]).unwrap();
        w.write_frame(FrameTag::Head, &[0xdd; 70]).unwrap();
    }
    let bad = w.finish().unwrap();
    let path = dir.path().join("bad.kolokol");
    std::fs::write(&path, &bad).unwrap();
    let store = Store::memory(StoreConfig::default());
    let report = import_bytes(&store, &p, &std::fs::read(&path).unwrap());
    assert_eq!(report.refused, 90_000, "{:?}", report.refused_by_kind);
    assert_eq!(report.rejected.len(), archive::MAX_REJECTED_EXAMPLES);
    assert_eq!(
        report.refused_by_kind.len(),
        3,
        "{:?}",
        report.refused_by_kind
    );
    assert!(report.refused_by_kind.values().all(|&n| n == 30_000));
    // What the report costs, whatever the number of bad frames.
    let json = serde_json::to_vec(&report).unwrap();
    eprintln!(
        "{} bad frames in {} bytes: a report of {} bytes",
        report.refused,
        bad.len(),
        json.len()
    );
    assert!(json.len() < 8 * 1024, "{}", json.len());
    // Good bundles after bad frames still go in.
    let report = import_bytes(&store, &p, &archive(&p, 5, 500));
    assert_eq!((report.new, report.refused), (5, 0), "{report:?}");
}
