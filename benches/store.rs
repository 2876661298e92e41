//! `cargo bench --bench store`: store ingest against raw sled inserts of
//! the same bytes, sealed store ingest against plain, `kolokol import`
//! end to end, and peak memory while importing a 1 GiB archive. Prints
//! figures; asserts nothing.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kolokol::proto::bundle::{FileKind, FrameTag, FrameWriter};
use kolokol::proto::*;
use kolokol::seal::{DataKey, Sealer};
use kolokol::store::{Store, StoreConfig, Totals};
use std::sync::Arc;

const T0: Timestamp = Timestamp(1_750_000_000);
const GROUP: usize = 256;

struct Publisher {
    root: SecretKey,
    signing: SecretKey,
    cert: Vec<u8>,
}

impl Publisher {
    fn new() -> Self {
        let root = SecretKey::from_seed(&[1; 32]);
        let signing = SecretKey::from_seed(&[2; 32]);
        let cert = KeyCertificate {
            format: FORMAT_VERSION,
            publisher: root.public(),
            signing_key: signing.public(),
            serial: 1,
            not_before: T0,
            not_after: T0.plus(3650 * 86_400),
            scope: Scope::default(),
        }
        .sign(&root)
        .unwrap();
        Self {
            root,
            signing,
            cert,
        }
    }

    fn policy(&self) -> TrustPolicy {
        let mut p = TrustPolicy::new();
        p.trust(self.root.public(), "bench").unwrap();
        p.learn_certificate(&self.cert).unwrap();
        p
    }

    fn bundle(&self, seq: u64, body_len: usize) -> (Vec<u8>, Vec<u8>) {
        let mut body: Vec<u8> = (0..body_len)
            .map(|i| (i as u64).wrapping_mul(seq) as u8)
            .collect();
        for (b, x) in body.iter_mut().zip(seq.to_le_bytes()) {
            *b = x;
        }
        let m = Manifest {
            format: FORMAT_VERSION,
            publisher: self.root.public(),
            certificate: CertId::of(&self.cert),
            story: StoryId(
                *blake3::hash(&seq.to_le_bytes())
                    .as_bytes()
                    .first_chunk::<16>()
                    .unwrap(),
            ),
            version: 1,
            kind: Kind::Story,
            sequence: seq,
            supersedes: None,
            signed_at: T0.plus(seq),
            metadata: Metadata {
                title: format!("Story number {seq} with a headline of ordinary length"),
                language: "en".into(),
                authors: vec!["A Reporter".into()],
                section: Some("News".into()),
                published: T0.plus(seq),
                updated: None,
                original_url: Some(format!("https://news.example.org/story/{seq}")),
                summary: Some("One or two sentences of summary.".into()),
            },
            entries: vec![Entry {
                path: BODY_PATH.into(),
                media_type: BODY_MEDIA_TYPE.into(),
                size: body.len() as u64,
                hash: BlobHash::of(&body),
            }],
        };
        (m.sign(&self.signing).unwrap(), body)
    }

    fn archive(&self, path: &Path, n: u64, body_len: usize) {
        let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        let mut w = FrameWriter::new(f, FileKind::Archive).unwrap();
        w.write_frame(FrameTag::Certificate, &self.cert).unwrap();
        for seq in 1..=n {
            let (m, body) = self.bundle(seq, body_len);
            w.write_frame(FrameTag::Manifest, &m).unwrap();
            w.write_frame(FrameTag::Blob, &body).unwrap();
        }
        w.finish().unwrap();
    }

    fn data_dir(&self, dir: &Path) -> std::path::PathBuf {
        let data = dir.join("data");
        std::fs::create_dir_all(data.join("trust")).unwrap();
        std::fs::write(
            data.join("trust/bench.toml"),
            format!("name = \"bench\"\nroot_key = \"{}\"\n", self.root.public()),
        )
        .unwrap();
        data
    }
}

fn ingest_vs_sled(p: &Publisher, n: u64) {
    let policy = p.policy();
    let now = T0.plus(3600 * 24 * 365);
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (1..=n).map(|s| p.bundle(s, 4096)).collect();

    // Raw sled: the same manifest and body bytes, one insert each, with a
    // flush per group of 256 bundles, as the store does.
    let dir = tempfile::TempDir::new().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(64 << 20)
        .open()
        .unwrap();
    let start = Instant::now();
    for group in pairs.chunks(GROUP) {
        for (m, body) in group {
            db.insert(blake3::hash(m).as_bytes(), m.as_slice()).unwrap();
            db.insert(blake3::hash(body).as_bytes(), body.as_slice())
                .unwrap();
        }
        db.flush().unwrap();
    }
    let raw = n as f64 / start.elapsed().as_secs_f64();
    drop(db);

    // The store: already-verified bundles (verification is timed elsewhere),
    // stored in groups of 256 with one blob sync and one flush each.
    let bundles: Vec<VerifiedBundle> = pairs
        .into_iter()
        .map(|(m, body)| {
            policy
                .verify_bundle(policy.verify_manifest(&m, now).unwrap(), vec![body])
                .unwrap()
        })
        .collect();
    let (ingest, t) = ingest_rate(p, &bundles, false);
    println!(
        "store ingest, {n} bundles of 4 KiB: {ingest:.0}/s | raw sled inserts {raw:.0}/s | ratio {:.2} (target >= 0.5) | disk {} MB for {} MB payload",
        ingest / raw,
        t.disk_bytes / 1_000_000,
        t.payload_bytes / 1_000_000
    );
}

/// Ingest rate into a new store on disk, sealed or plain, and what the
/// store then holds.
fn ingest_rate(p: &Publisher, bundles: &[VerifiedBundle], sealed: bool) -> (f64, Totals) {
    let policy = p.policy();
    let dir = tempfile::TempDir::new().unwrap();
    let sealer = sealed.then(|| Arc::new(Sealer::new(&DataKey::random())));
    let store = Store::open_with(dir.path(), StoreConfig::default(), sealer).unwrap();
    store
        .put_certificate(&policy.verify_certificate(&p.cert).unwrap())
        .unwrap();
    let start = Instant::now();
    for group in bundles.chunks(GROUP) {
        black_box(store.ingest(group).unwrap());
    }
    let rate = bundles.len() as f64 / start.elapsed().as_secs_f64();
    (rate, store.totals().unwrap())
}

/// Sealed against plain ingest of the same bundles, in the same run; each
/// measured three times, alternating, and the better of each kept.
fn sealed_vs_plain(p: &Publisher, n: u64, body_len: usize) {
    let policy = p.policy();
    let now = T0.plus(3600 * 24 * 365);
    let bundles: Vec<VerifiedBundle> = (1..=n)
        .map(|s| {
            let (m, body) = p.bundle(s, body_len);
            policy
                .verify_bundle(policy.verify_manifest(&m, now).unwrap(), vec![body])
                .unwrap()
        })
        .collect();
    let (mut plain, mut sealed) = (0f64, 0f64);
    for _ in 0..3 {
        plain = plain.max(ingest_rate(p, &bundles, false).0);
        sealed = sealed.max(ingest_rate(p, &bundles, true).0);
    }
    println!(
        "sealed store ingest, {n} bundles of {} KiB: sealed {sealed:.0}/s | plain {plain:.0}/s | ratio {:.2} (target >= 0.8)",
        body_len / 1024,
        sealed / plain
    );
}

/// Runs the real binary and returns (wall time, peak resident bytes).
fn run_import(data: &Path, archive: &Path) -> (Duration, u64) {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kolokol"))
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "import",
            archive.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        // VmHWM is the process's own high-water mark, so polling cannot
        // miss a peak between two reads, only the last moments before exit.
        if let Ok(s) = std::fs::read_to_string(&status_path)
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb * 1024);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (start.elapsed(), peak)
}

fn import_end_to_end(p: &Publisher, n: u64) {
    let dir = tempfile::TempDir::new().unwrap();
    let archive = dir.path().join("archive.kolokol");
    p.archive(&archive, n, 4096);
    let data = p.data_dir(dir.path());
    let (time, peak) = run_import(&data, &archive);
    let store = Store::open(&data.join("store"), StoreConfig::default()).unwrap();
    assert_eq!(store.totals().unwrap().bundles, n);
    println!(
        "kolokol import, {n}-bundle archive (4 KiB bodies): {:.0} bundles/s end to end ({:.2} s, peak RSS {} MiB) (target >= 5000/s)",
        n as f64 / time.as_secs_f64(),
        time.as_secs_f64(),
        peak >> 20
    );
}

fn import_memory(p: &Publisher, gib: u64) {
    let dir = tempfile::TempDir::new().unwrap();
    let archive = dir.path().join("big.kolokol");
    let n = gib * 1024;
    p.archive(&archive, n, 1 << 20);
    let size = std::fs::metadata(&archive).unwrap().len();
    let data = p.data_dir(dir.path());
    let (time, peak) = run_import(&data, &archive);
    println!(
        "kolokol import, {:.2} GiB archive ({n} bundles of 1 MiB): peak RSS {} MiB (target <= 200 MiB), {:.0} MB/s",
        size as f64 / (1u64 << 30) as f64,
        peak >> 20,
        size as f64 / 1e6 / time.as_secs_f64()
    );
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    // `cargo bench --bench store -- sealed` runs only the measures whose
    // name holds the word, so that one of them can be profiled alone.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let p = Publisher::new();
    if quick {
        ingest_vs_sled(&p, 512);
        sealed_vs_plain(&p, 512, 4096);
        import_end_to_end(&p, 512);
        return;
    }
    if run("ingest") {
        ingest_vs_sled(&p, 10_000);
    }
    if run("sealed") {
        sealed_vs_plain(&p, 10_000, 4096);
        sealed_vs_plain(&p, 1_000, 256 * 1024);
    }
    if run("import") {
        import_end_to_end(&p, 10_000);
        import_memory(&p, 1);
    }
}
