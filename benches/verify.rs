//! `cargo bench --bench verify`: bundle verification against the raw
//! primitives it is built from, measured in the same run, and batch
//! against single signature checks. Prints figures; asserts nothing.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, VerifyingKey};
use kolokol::proto::bundle::{BundleFile, verify_bundle_file};
use kolokol::proto::*;

const T0: Timestamp = Timestamp(1_800_000_000);

struct Fixture {
    policy: TrustPolicy,
    bare_policy: TrustPolicy,
    signing: SecretKey,
    root: PublicKey,
    cert_id: CertId,
}

fn fixture() -> Fixture {
    let root = SecretKey::from_seed(&[1; 32]);
    let signing = SecretKey::from_seed(&[2; 32]);
    let cert = KeyCertificate {
        format: FORMAT_VERSION,
        publisher: root.public(),
        signing_key: signing.public(),
        serial: 1,
        not_before: T0,
        not_after: T0.plus(365 * 86_400),
        scope: Scope::default(),
    }
    .sign(&root)
    .unwrap();
    let mut bare_policy = TrustPolicy::new();
    bare_policy.trust(root.public(), "bench").unwrap();
    let mut policy = bare_policy.clone();
    policy.learn_certificate(&cert).unwrap();
    Fixture {
        policy,
        bare_policy,
        signing,
        root: root.public(),
        cert_id: CertId::of(&cert),
    }
}

fn manifest(f: &Fixture, seq: u64, body: &[u8]) -> Vec<u8> {
    Manifest {
        format: FORMAT_VERSION,
        publisher: f.root,
        certificate: f.cert_id,
        story: StoryId([seq as u8; 16]),
        version: 1,
        kind: Kind::Story,
        sequence: seq,
        supersedes: None,
        signed_at: T0.plus(seq),
        metadata: Metadata {
            title: "A story of typical length for a news site headline".into(),
            language: "en".into(),
            authors: vec!["Reporter One".into(), "Reporter Two".into()],
            section: Some("World".into()),
            published: T0.plus(seq),
            updated: None,
            original_url: Some(
                "https://news.example.org/2026/11/29/a-story-of-typical-length".into(),
            ),
            summary: Some("A summary of a sentence or two, as feeds and lists show it.".into()),
        },
        entries: vec![Entry {
            path: BODY_PATH.into(),
            media_type: BODY_MEDIA_TYPE.into(),
            size: body.len() as u64,
            hash: BlobHash::of(body),
        }],
    }
    .sign(&f.signing)
    .unwrap()
}

/// Runs `f` `n` times, five rounds, and returns the best per-second rate.
fn rate(n: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for i in 0..n {
            f(i);
        }
        best = best.min(start.elapsed());
    }
    n as f64 / best.as_secs_f64()
}

fn bundle_case(f: &Fixture, label: &str, body_len: usize, n: usize) {
    let body: Vec<u8> = (0..body_len).map(|i| (i % 251) as u8).collect();
    let signed = manifest(f, 1, &body);
    let now = T0.plus(86_400);
    let key = VerifyingKey::from_bytes(f.signing.public().as_bytes()).unwrap();

    // The primitives a bundle check is made of, with no policy around them:
    // decode the manifest, one verify_strict over its domain-separated
    // message, blake3 of the body.
    let (msg_body, sig) = signed.split_at(signed.len() - SIGNATURE_LEN);
    let sig = Signature::from_bytes(sig.try_into().unwrap());
    // Both loops hash n distinct buffers of the same bytes, so that cache
    // effects are the same for both (hashing one hot buffer n times would
    // flatter the primitives at 1 MiB).
    let fresh = || -> Vec<Vec<u8>> { (0..n).map(|_| body.clone()).collect() };
    let mut primitives = 0.0_f64;
    for _ in 0..5 {
        let bufs = fresh();
        let start = Instant::now();
        for buf in &bufs {
            let m: Manifest = postcard::from_bytes(black_box(msg_body)).unwrap();
            let mut msg = Vec::with_capacity(msg_body.len() + 24);
            msg.extend_from_slice(b"kolokol/v1/manifest\0");
            msg.extend_from_slice(msg_body);
            key.verify_strict(&msg, &sig).unwrap();
            assert_eq!(
                blake3::hash(black_box(buf)).as_bytes(),
                m.entries[0].hash.as_bytes()
            );
        }
        primitives = primitives.max(n as f64 / start.elapsed().as_secs_f64());
    }

    // The policy's bundle check, the certificate already known (as on a
    // node, which verifies a publisher's certificate once, not per bundle).
    // Blob buffers arrive owned from the network; they are prepared outside
    // the timed loop.
    let mut bundle = 0.0_f64;
    for _ in 0..5 {
        let mut blobs: Vec<Option<Vec<Vec<u8>>>> =
            fresh().into_iter().map(|b| Some(vec![b])).collect();
        let start = Instant::now();
        for b in blobs.iter_mut() {
            let m = f.policy.verify_manifest(black_box(&signed), now).unwrap();
            black_box(f.policy.verify_bundle(m, b.take().unwrap()).unwrap());
        }
        bundle = bundle
            .max(n as f64 / start.elapsed().as_secs_f64())
            .min(f64::MAX);
    }

    // A whole .kolokol file from bytes: framing and its checksum, the
    // certificate, the manifest, the blob and the head.
    let head = Head {
        format: FORMAT_VERSION,
        publisher: f.root,
        certificate: f.cert_id,
        sequence: 1,
        issued_at: T0.plus(1),
        expires_at: T0.plus(7 * 86_400),
    }
    .sign(&f.signing)
    .unwrap();
    let cert_bytes = f
        .policy
        .publisher(&f.root)
        .unwrap()
        .certificates()
        .next()
        .unwrap()
        .bytes()
        .to_vec();
    let file = BundleFile {
        certificates: vec![cert_bytes],
        revocations: vec![],
        heads: vec![head],
        manifest: signed.clone(),
        blobs: vec![body.clone()],
    }
    .to_bytes()
    .unwrap();
    let whole_file = rate(n, |_| {
        let parsed = BundleFile::read(black_box(file.as_slice())).unwrap();
        black_box(verify_bundle_file(&f.bare_policy, parsed, now).unwrap());
    });

    println!(
        "bundle {label:>6}: policy {bundle:>9.0} bundles/s | primitives {primitives:>9.0}/s | ratio {:.2} (target >= 0.70) | whole file {whole_file:>8.0}/s ({:.2} of primitives)",
        bundle / primitives,
        whole_file / primitives
    );
}

fn batch_case(f: &Fixture, total: usize, batch: usize) {
    let body = vec![7u8; 64];
    let items: Vec<Vec<u8>> = (1..=total as u64).map(|s| manifest(f, s, &body)).collect();
    let refs: Vec<&[u8]> = items.iter().map(|v| v.as_slice()).collect();
    let now = T0.plus(365 * 86_400);
    let single = rate(1, |_| {
        for r in &refs {
            black_box(f.policy.verify_manifest(r, now).unwrap());
        }
    }) * total as f64;
    let batched = rate(1, |_| {
        for chunk in refs.chunks(batch) {
            let out = f.policy.verify_manifests(chunk, now);
            assert!(out.iter().all(|r| r.is_ok()));
            black_box(out);
        }
    }) * total as f64;
    // One bad signature per batch: the fallback finds it.
    let mut bad = items.clone();
    for i in (0..total).step_by(batch) {
        let last = bad[i].len() - 1;
        bad[i][last] ^= 1;
    }
    let bad_refs: Vec<&[u8]> = bad.iter().map(|v| v.as_slice()).collect();
    let with_bad = rate(1, |_| {
        for chunk in bad_refs.chunks(batch) {
            let out = f.policy.verify_manifests(chunk, now);
            assert_eq!(out.iter().filter(|r| r.is_err()).count(), 1);
            black_box(out);
        }
    }) * total as f64;
    println!(
        "manifests, batches of {batch:>3}: single {single:>8.0}/s | batch {batched:>8.0}/s | ratio {:.2} (target >= 1.5) | one bad per batch {with_bad:>8.0}/s",
        batched / single
    );
}

fn raw_signature_rates() {
    let key = SecretKey::from_seed(&[3; 32]);
    let vk = VerifyingKey::from_bytes(key.public().as_bytes()).unwrap();
    let msgs: Vec<Vec<u8>> = (0..4096u32).map(|i| i.to_le_bytes().repeat(50)).collect();
    let sk = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    use ed25519_dalek::Signer;
    let sigs: Vec<Signature> = msgs.iter().map(|m| sk.sign(m)).collect();
    let single = rate(msgs.len(), |i| {
        vk.verify_strict(&msgs[i], &sigs[i]).unwrap()
    });
    let batch = rate(1, |_| {
        for (m, s) in msgs.chunks(256).zip(sigs.chunks(256)) {
            let refs: Vec<&[u8]> = m.iter().map(|v| v.as_slice()).collect();
            ed25519_dalek::verify_batch(&refs, s, &vec![vk; s.len()]).unwrap();
        }
    }) * msgs.len() as f64;
    let data = vec![1u8; 1 << 20];
    let blake = rate(200, |_| {
        black_box(blake3::hash(black_box(&data)));
    }) * (1 << 20) as f64
        / 1e9;
    println!(
        "raw: verify_strict {single:.0}/s, dalek verify_batch(256) {batch:.0}/s, blake3 {blake:.2} GB/s (one core)"
    );
}

fn main() {
    // `cargo test --benches` runs this once with --bench absent; keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let f = fixture();
    let (n4k, n1m, total) = if quick {
        (50, 5, 512)
    } else {
        (20_000, 300, 10_240)
    };
    raw_signature_rates();
    bundle_case(&f, "4 KiB", 4096, n4k);
    bundle_case(&f, "1 MiB", 1 << 20, n1m);
    for batch in [16, 64, 256] {
        batch_case(&f, total, batch);
    }
}
